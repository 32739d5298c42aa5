//! A small client of QEMU's QMP monitor over its unix socket (QEMU's `docs/interop/qmp-spec.rst`).
//!
//! QMP is one JSON object a line each way. On connect QEMU sends a greeting (`{"QMP": ...}`);
//! the client sends `qmp_capabilities` to leave negotiation mode; then each `{"execute": ...}`
//! gets one `{"return": ...}` or `{"error": {"class", "desc"}}`, and asynchronous events
//! (`{"event": ...}`) may arrive between them at any time. Events read while waiting for a reply
//! are kept, so [`Qmp::wait_event`] sees an event that came before the reply it followed.
//! Every read has a deadline: a QEMU that stops answering is an error, never a hang.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// How long a command may take to be answered.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected, negotiated QMP client.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: VecDeque<Value>,
}

/// Why talking to QMP failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected.
    #[error("connecting to QMP at {}", .path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("QMP {what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No answer came in time.
    #[error("QMP {what}: no answer within {} s", .timeout.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
    },
    /// QEMU closed the connection.
    #[error("QMP {what}: QEMU closed the connection")]
    Closed {
        /// What was awaited.
        what: String,
    },
    /// QEMU sent something that is not a QMP message.
    #[error("QMP {what}: unexpected message {line:?}")]
    Protocol {
        /// What was awaited.
        what: String,
        /// The line.
        line: String,
    },
    /// QEMU refused the command.
    #[error("QMP {command}: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QMP's error class (`GenericError`, `DeviceNotFound`).
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

/// `pub type Result<T>` of QMP.
pub type Result<T> = std::result::Result<T, Error>;

impl Qmp {
    /// Connects to the socket at `path`, reads the greeting and negotiates capabilities.
    pub fn connect(path: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(path).map_err(|source| Error::Connect {
            path: path.to_owned(),
            source,
        })?;
        let writer = stream.try_clone().map_err(|source| Error::Io {
            what: "cloning the socket".to_owned(),
            source,
        })?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: VecDeque::new(),
        };
        let greeting = qmp.read_message("greeting", Instant::now() + REPLY_TIMEOUT)?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Protocol {
                what: "greeting".to_owned(),
                line: greeting.to_string(),
            });
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` with `arguments` and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut message = Map::new();
        message.insert("execute".to_owned(), json!(command));
        if let Some(arguments) = arguments {
            message.insert("arguments".to_owned(), arguments);
        }
        let mut line = Value::Object(message).to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| Error::Io {
                what: format!("sending {command}"),
                source,
            })?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let message = self.read_message(command, deadline)?;
            if message.get("event").is_some() {
                self.events.push_back(message);
                continue;
            }
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let text = |key: &str| error[key].as_str().unwrap_or_default().to_owned();
                return Err(Error::Command {
                    command: command.to_owned(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            return Err(Error::Protocol {
                what: command.to_owned(),
                line: message.to_string(),
            });
        }
    }

    /// Waits up to `timeout` for an event named `name` whose `data` `matches`; `None` when none
    /// came. Other events are dropped.
    pub fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Option<Value>> {
        let is_it = |event: &Value| event["event"] == name && matches(&event["data"]);
        if let Some(found) = self.events.iter().position(is_it) {
            return Ok(self.events.remove(found));
        }
        self.events.clear();
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_message(&format!("waiting for {name}"), deadline) {
                Ok(event) if is_it(&event) => return Ok(Some(event)),
                Ok(_) => continue,
                Err(Error::Timeout { .. }) => return Ok(None),
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads one message, waiting until `deadline`.
    fn read_message(&mut self, what: &str, deadline: Instant) -> Result<Value> {
        let mut line = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    timeout: REPLY_TIMEOUT,
                });
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|source| Error::Io {
                    what: format!("setting a timeout for {what}"),
                    source,
                })?;
            // A partial line read before a timeout stays in `line`; the next read completes it.
            match self.reader.read_line(&mut line) {
                Ok(0) => {
                    return Err(Error::Closed {
                        what: what.to_owned(),
                    });
                }
                Ok(_) if line.ends_with('\n') => {
                    return serde_json::from_str(line.trim()).map_err(|_| Error::Protocol {
                        what: what.to_owned(),
                        line: line.trim().to_owned(),
                    });
                }
                Ok(_) => continue,
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::Io {
                        what: format!("reading the answer to {what}"),
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A fake QEMU on a socket in `dir`: greets, then answers each line with the next of
    /// `replies` (several lines each), and returns what it was sent.
    fn fake_qemu(
        dir: &Path,
        replies: Vec<Vec<Value>>,
    ) -> (PathBuf, std::thread::JoinHandle<Vec<Value>>) {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            writeln!(
                writer,
                r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#
            )
            .unwrap();
            let mut received = Vec::new();
            for reply in replies {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                received.push(serde_json::from_str(&line).unwrap());
                for message in reply {
                    writeln!(writer, "{message}").unwrap();
                }
            }
            received
        });
        (path, handle)
    }

    #[test]
    fn commands_get_their_returns_and_events_are_kept_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let (path, qemu) = fake_qemu(
            dir.path(),
            vec![
                vec![json!({"return": {}})],
                vec![
                    json!({"event": "DEVICE_DELETED", "data": {"device": "dev-a"}}),
                    json!({"return": {"status": "running", "running": true}}),
                ],
                vec![json!({"error": {"class": "DeviceNotFound", "desc": "Device 'x' not found"}})],
            ],
        );
        let mut qmp = Qmp::connect(&path).unwrap();
        let status = qmp.execute("query-status", None).unwrap();
        assert_eq!(status["status"], "running");
        let err = qmp
            .execute("device_del", Some(json!({"id": "x"})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "QMP device_del: DeviceNotFound: Device 'x' not found"
        );
        let event = qmp
            .wait_event(
                "DEVICE_DELETED",
                |data| data["device"] == "dev-a",
                Duration::from_millis(1),
            )
            .unwrap();
        assert_eq!(event.unwrap()["data"]["device"], "dev-a");
        drop(qmp);
        assert_eq!(
            qemu.join().unwrap(),
            [
                json!({"execute": "qmp_capabilities"}),
                json!({"execute": "query-status"}),
                json!({"execute": "device_del", "arguments": {"id": "x"}}),
            ]
        );
    }

    #[test]
    fn an_event_that_never_comes_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _qemu) = fake_qemu(dir.path(), vec![vec![json!({"return": {}})], vec![]]);
        let mut qmp = Qmp::connect(&path).unwrap();
        let event = qmp
            .wait_event("DEVICE_DELETED", |_| true, Duration::from_millis(50))
            .unwrap();
        assert_eq!(event, None);
    }

    #[test]
    fn a_closed_socket_is_an_error_naming_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        // The fake reads query-status, answers nothing and hangs up.
        let (path, qemu) = fake_qemu(dir.path(), vec![vec![json!({"return": {}})], vec![]]);
        let mut qmp = Qmp::connect(&path).unwrap();
        let err = qmp.execute("query-status", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "QMP query-status: QEMU closed the connection"
        );
        assert_eq!(qemu.join().unwrap().len(), 2);
    }
}
