//! What a deploy prints while it runs: stages and their steps with timings, the way the bosh CLI
//! shows a task (`Task 12 | 10:02:41 | Updating instance web: web/3f2a (0) (canary) (00:00:05)`),
//! or one JSON object per line with `--json` for scripts.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where progress goes.
pub struct Reporter {
    json: bool,
    started: Instant,
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

/// One step under way; [`Step::done`] or [`Step::failed`] prints its end.
#[derive(Debug)]
pub struct Step<'a> {
    reporter: &'a Reporter,
    stage: String,
    name: String,
    started: Instant,
}

impl Reporter {
    /// Progress to standard output, as text or JSON lines.
    pub fn stdout(json: bool) -> Reporter {
        Reporter::to(Box::new(std::io::stdout()), json)
    }

    /// Progress to `out`.
    pub fn to(out: Box<dyn std::io::Write + Send>, json: bool) -> Reporter {
        Reporter {
            json,
            started: Instant::now(),
            out: Mutex::new(out),
        }
    }

    /// Starts step `name` of `stage`.
    pub fn step(&self, stage: &str, name: &str) -> Step<'_> {
        Step {
            reporter: self,
            stage: stage.to_owned(),
            name: name.to_owned(),
            started: Instant::now(),
        }
    }

    /// Prints a line of its own (a summary, a table).
    pub fn line(&self, text: &str) {
        if self.json {
            self.write(&serde_json::json!({"type": "info", "message": text}).to_string());
        } else {
            self.write(text);
        }
    }

    /// Prints a result of a command: `text` as is, or with `--json` the object `event` (whose
    /// `type` says what it is) on one line.
    pub fn item(&self, text: &str, event: &serde_json::Value) {
        if self.json {
            self.write(&event.to_string());
        } else {
            self.write(text);
        }
    }

    /// Whether it prints JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints an event of its own kind (the health monitor's): `text` after the clock, or with
    /// `--json` the object `fields` with `"type": kind` added.
    pub fn event(&self, kind: &str, text: &str, fields: serde_json::Value) {
        if self.json {
            let mut fields = fields;
            if let Some(object) = fields.as_object_mut() {
                object.insert("type".to_owned(), serde_json::Value::from(kind));
            }
            self.write(&fields.to_string());
        } else {
            self.write(&format!("{} | {text}", clock(self.started.elapsed())));
        }
    }

    /// How long since the reporter was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn write(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn end(&self, step: &Step<'_>, error: Option<&str>) {
        let took = step.started.elapsed();
        if self.json {
            let mut event = serde_json::json!({
                "type": "step",
                "stage": step.stage,
                "step": step.name,
                "state": if error.is_some() { "failed" } else { "done" },
                "seconds": took.as_secs_f64(),
                "at": self.started.elapsed().as_secs_f64(),
            });
            if let Some(error) = error {
                event["error"] = serde_json::Value::from(error);
            }
            self.write(&event.to_string());
            return;
        }
        let clock = clock(self.started.elapsed());
        let line = match error {
            None => format!("{clock} | {}: {} ({})", step.stage, step.name, hms(took)),
            Some(error) => format!(
                "{clock} | {}: {} ({}) failed: {error}",
                step.stage,
                step.name,
                hms(took)
            ),
        };
        self.write(&line);
    }
}

impl Step<'_> {
    /// The step succeeded.
    pub fn done(self) {
        self.reporter.end(&self, None);
    }

    /// The step failed with `error` (printed with its causes).
    pub fn failed(self, error: &(dyn std::error::Error + 'static)) {
        self.reporter.end(&self, Some(&chain(error)));
    }

    /// Ends the step as `result` says and passes it on.
    pub fn finish<T, E: std::error::Error + 'static>(self, result: Result<T, E>) -> Result<T, E> {
        match &result {
            Ok(_) => self.done(),
            Err(err) => self.failed(err),
        }
        result
    }
}

/// `error` and its causes, `: `-separated, as `anyhow` prints `{:#}`.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `HH:MM:SS`, as the bosh CLI shows step times.
pub fn hms(duration: Duration) -> String {
    let secs = duration.as_secs();
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The time since the deploy started, with tenths of a second.
fn clock(duration: Duration) -> String {
    format!("{:>7.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn steps_print_their_stage_name_and_time() {
        let sink = Sink::default();
        let reporter = Reporter::to(Box::new(sink.clone()), false);
        reporter.step("Creating missing vms", "web/0").done();
        let err: Result<(), std::io::Error> = Err(std::io::Error::other("no capacity"));
        assert!(
            reporter
                .step("Creating missing vms", "web/1")
                .finish(err)
                .is_err()
        );
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.split_once(" | ").unwrap().1)
            .collect();
        assert_eq!(
            lines,
            [
                "Creating missing vms: web/0 (00:00:00)",
                "Creating missing vms: web/1 (00:00:00) failed: no capacity"
            ]
        );
    }

    #[test]
    fn items_print_their_text_or_their_json_event() {
        let event = serde_json::json!({"type": "problems", "count": 0});
        for (json, expected) in [
            (false, "0 problems\n"),
            (true, "{\"count\":0,\"type\":\"problems\"}\n"),
        ] {
            let sink = Sink::default();
            let reporter = Reporter::to(Box::new(sink.clone()), json);
            assert_eq!(reporter.is_json(), json);
            reporter.item("0 problems", &event);
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text, expected);
        }
    }

    #[test]
    fn json_lines_carry_the_same() {
        let sink = Sink::default();
        let reporter = Reporter::to(Box::new(sink.clone()), true);
        reporter.step("Compiling packages", "hello/1").done();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let event: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(event["stage"], "Compiling packages");
        assert_eq!(event["step"], "hello/1");
        assert_eq!(event["state"], "done");
        assert_eq!(hms(Duration::from_secs(3723)), "01:02:03");
    }

    #[test]
    fn events_print_their_text_or_their_fields_with_their_kind() {
        let fields = serde_json::json!({"event": "missing", "instance": "web/abc"});
        let sink = Sink::default();
        Reporter::to(Box::new(sink.clone()), false).event(
            "health",
            "web/abc is missing",
            fields.clone(),
        );
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.trim_end().split_once(" | ").unwrap().1,
            "web/abc is missing"
        );

        let sink = Sink::default();
        Reporter::to(Box::new(sink.clone()), true).event("health", "web/abc is missing", fields);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let event: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            event,
            serde_json::json!({"type": "health", "event": "missing", "instance": "web/abc"})
        );
    }
}
