//! Lifecycle scripts (`jobs::script`, after the Go agent's `agent/script/*` and
//! `agent/action/run_errand.go`) run for real: shell scripts written into a temporary base dir as
//! `jobs/<job>/bin/<script>`, run through `platform::cmd::SystemRunner`, with drain's waits recorded
//! instead of slept.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::apply_spec::{ApplySpec, JobTemplateSpec, PackageSpec, RenderedTemplatesArchive};
use jobs::script::JobScripts;
use jobs::script::cancel::CancelToken;
use jobs::script::drain::{self, DrainParams, Sleeper};
use jobs::script::run_errand::{self, ErrandResult};
use jobs::script::run_script;
use jobs::script::runner::CommandScriptRunner;
use platform::cmd::{Cmd, CommandRunner, SystemRunner};
use settings::Dirs;

/// Records drain's waits instead of sleeping.
#[derive(Debug, Default)]
struct RecordingSleeper(Mutex<Vec<Duration>>);

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration, _cancel: &CancelToken) {
        self.0.lock().unwrap().push(duration);
    }
}

/// A base dir with job scripts, and the scripts runner over it.
struct Fixture {
    base: tempfile::TempDir,
    sleeper: Arc<RecordingSleeper>,
    scripts: JobScripts,
}

impl Fixture {
    fn new() -> Fixture {
        let base = tempfile::tempdir().unwrap();
        let sleeper = Arc::new(RecordingSleeper::default());
        let scripts = JobScripts::new(
            Dirs::new(base.path()),
            Arc::new(CommandScriptRunner::new(Arc::new(SystemRunner))),
        )
        .with_sleeper(sleeper.clone());
        Fixture {
            base,
            sleeper,
            scripts,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.base.path().join(relative)
    }

    /// Writes `jobs/<job>/bin/<script>` (0755) with `body` after a shebang.
    fn script(&self, job: &str, script: &str, body: &str) -> PathBuf {
        let bin = self.path(&format!("jobs/{job}/bin"));
        fs::create_dir_all(&bin).unwrap();
        let path = bin.join(script);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap()
    }
}

/// A spec whose jobs are `jobs` (installed from a rendered templates archive).
fn spec(jobs: &[&str]) -> ApplySpec {
    let mut spec = ApplySpec {
        rendered_templates_archive: Some(RenderedTemplatesArchive::default()),
        configuration_hash: "hash-1".into(),
        persistent_disk: 1024,
        ..ApplySpec::default()
    };
    spec.job.template = jobs
        .first()
        .map(|job| (*job).to_owned())
        .unwrap_or_default();
    spec.job.templates = jobs
        .iter()
        .map(|name| JobTemplateSpec {
            name: (*name).to_owned(),
            version: "1".into(),
        })
        .collect();
    spec
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The nice value of processes this test starts.
fn own_nice() -> i32 {
    let output = SystemRunner.run(&Cmd::new("nice")).unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn run_script_runs_every_job_at_once_and_appends_to_its_logs() {
    let fixture = Fixture::new();
    // `web` writes into a FIFO that `worker` reads: neither can finish unless both run at once.
    let fifo = fixture.path("handshake");
    SystemRunner
        .run(&Cmd::new("mkfifo").arg(&fifo))
        .expect("mkfifo (coreutils) is needed");
    let body = |job: &str, handshake: &str| {
        format!(
            "{handshake}\necho \"{job} out $DEPLOYMENT $PATH\"\necho \"{job} err\" >&2\necho \"{job} nice $(nice)\""
        )
    };
    fixture.script(
        "web",
        "pre-start",
        &body("web", &format!("echo hello > {}", fifo.display())),
    );
    fixture.script(
        "worker",
        "pre-start",
        &body("worker", &format!("read line < {}", fifo.display())),
    );
    let env = BTreeMap::from([("DEPLOYMENT".to_owned(), "cf".to_owned())]);
    let spec = spec(&["web", "worker", "no-script"]);

    fixture
        .scripts
        .run_script(&spec, "pre-start", &env, &CancelToken::new())
        .unwrap();
    // Run again without the handshake: the logs are appended to, not replaced.
    fixture.script("web", "pre-start", &body("web", ""));
    fixture.script("worker", "pre-start", &body("worker", ""));
    fixture
        .scripts
        .run_script(&spec, "pre-start", &env, &CancelToken::new())
        .unwrap();

    let nice = (own_nice() + 5).min(19);
    for job in ["web", "worker"] {
        let line = format!("{job} out cf /usr/sbin:/usr/bin:/sbin:/bin\n{job} nice {nice}\n");
        assert_eq!(
            fixture.read(&format!("sys/log/{job}/pre-start.stdout.log")),
            line.repeat(2),
            "{job}"
        );
        assert_eq!(
            fixture.read(&format!("sys/log/{job}/pre-start.stderr.log")),
            format!("{job} err\n").repeat(2),
            "{job}"
        );
        assert_eq!(mode(&fixture.path(&format!("sys/log/{job}"))), 0o750);
        assert_eq!(
            mode(&fixture.path(&format!("sys/log/{job}/pre-start.stdout.log"))),
            0o640
        );
    }
    assert!(!fixture.path("sys/log/no-script").exists());
}

#[test]
fn run_script_failures_are_summed_up_as_go_does() {
    let fixture = Fixture::new();
    fixture.script("web", "post-start", "echo started");
    fixture.script("worker", "post-start", "echo 'no database' >&2; exit 1");
    let err = fixture
        .scripts
        .run_script(
            &spec(&["web", "worker", "no-script"]),
            "post-start",
            &BTreeMap::new(),
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(matches!(err, run_script::Error::Failed(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "1 of 2 post-start scripts failed. Failed Jobs: worker. Successful Jobs: web."
    );
    assert_eq!(
        fixture.read("sys/log/worker/post-start.stderr.log"),
        "no database\n"
    );
}

#[test]
fn run_script_refuses_a_script_name_that_leaves_the_bin_dir() {
    let fixture = Fixture::new();
    fixture.script("web", "pre-start", "touch ran");
    let err = fixture
        .scripts
        .run_script(
            &spec(&["web"]),
            "../bin/pre-start",
            &BTreeMap::new(),
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(matches!(err, run_script::Error::Name(_)), "{err:?}");
    assert!(!fixture.path("sys").exists());
}

/// A drain script that logs its arguments and states, then prints what `answer` echoes.
fn drain_body(fixture: &Fixture, job: &str, answer: &str) -> String {
    let calls = fixture.path(&format!("{job}-calls"));
    format!(
        "echo \"$* | $BOSH_JOB_STATE | ${{BOSH_JOB_NEXT_STATE-unset}}\" >> {}\n{answer}",
        calls.display()
    )
}

#[test]
fn a_static_drain_runs_once_with_the_update_arguments() {
    let fixture = Fixture::new();
    fixture.script("web", "drain", &drain_body(&fixture, "web", "echo 0"));
    fixture.script("worker", "drain", &drain_body(&fixture, "worker", "echo 7"));
    let current = spec(&["web", "worker"]);
    let mut next = spec(&["web", "worker"]);
    next.configuration_hash = "hash-2".into();
    next.persistent_disk = 2048;
    next.packages.insert(
        "ruby".into(),
        PackageSpec {
            name: "ruby".into(),
            sha1: "abc".into(),
            ..PackageSpec::default()
        },
    );

    fixture
        .scripts
        .drain(
            &current,
            &DrainParams::update(&current, &next),
            &CancelToken::new(),
        )
        .unwrap();

    let call =
        "job_changed hash_changed ruby | {\"persistent_disk\":1024} | {\"persistent_disk\":2048}\n";
    assert_eq!(fixture.read("web-calls"), call);
    assert_eq!(fixture.read("worker-calls"), call);
    let mut slept = fixture.sleeper.0.lock().unwrap().clone();
    slept.sort();
    assert_eq!(slept, [0, 7].map(Duration::from_secs).to_vec());
}

#[test]
fn a_dynamic_drain_is_asked_again_with_job_check_status() {
    let fixture = Fixture::new();
    fixture.script(
        "web",
        "drain",
        &drain_body(
            &fixture,
            "web",
            "if [ \"$1\" = job_check_status ]; then echo 0; else echo -1; fi",
        ),
    );
    let current = spec(&["web"]);
    fixture
        .scripts
        .drain(
            &current,
            &DrainParams::shutdown(&current, None),
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(
        fixture.read("web-calls"),
        "job_shutdown hash_unchanged | {\"persistent_disk\":1024} | unset\n\
         job_check_status hash_unchanged | {\"persistent_disk\":1024} | unset\n"
    );
    assert_eq!(
        *fixture.sleeper.0.lock().unwrap(),
        [1, 0].map(Duration::from_secs).to_vec()
    );
}

#[test]
fn a_drain_script_must_print_an_integer() {
    let fixture = Fixture::new();
    fixture.script("web", "drain", "echo draining");
    fixture.script("worker", "drain", "echo 0");
    let current = spec(&["web", "worker", "no-script"]);
    let err = fixture
        .scripts
        .drain(
            &current,
            &DrainParams::shutdown(&current, None),
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(matches!(err, drain::Error::Failed(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "1 of 2 drain scripts failed. Failed Jobs: web. Successful Jobs: worker."
    );
}

#[test]
fn an_errand_reports_its_output_and_exit_code() {
    let fixture = Fixture::new();
    fixture.script(
        "smoke-tests",
        "run",
        "echo \"ran on $PATH\"; echo 'one test failed' >&2; exit 3",
    );
    let spec = spec(&["smoke-tests"]);
    let result = fixture
        .scripts
        .run_errand(&spec, Some("smoke-tests"), &CancelToken::new())
        .unwrap();
    assert_eq!(
        result,
        ErrandResult {
            stdout: "ran on /usr/sbin:/usr/bin:/sbin:/bin\n".into(),
            stderr: "one test failed\n".into(),
            exit_code: 3,
        }
    );
    let result = fixture
        .scripts
        .run_errand(&spec, None, &CancelToken::new())
        .unwrap();
    assert_eq!(result.exit_code, 3);
}

#[test]
fn an_unknown_errand_is_refused_with_go_text() {
    let fixture = Fixture::new();
    let err = fixture
        .scripts
        .run_errand(&spec(&["web"]), Some("smoke-tests"), &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, run_errand::Error::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "Could not find errand smoke-tests");
}

#[test]
fn an_errand_without_a_run_script_is_an_error() {
    let fixture = Fixture::new();
    let err = fixture
        .scripts
        .run_errand(&spec(&["web"]), Some("web"), &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, run_errand::Error::Run(_)), "{err:?}");
    assert!(
        settings::source::error_chain(&err)
            .starts_with("Running errand script: Starting command '"),
        "{err:?}"
    );
}
