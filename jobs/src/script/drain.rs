//! `drain`: every job's `jobs/<job>/bin/drain`, all at once, before the director stops, updates or
//! deletes the instance. Follows the Go agent's `agent/script/drain/concrete_script.go`,
//! `agent/script/drain/script_params.go` and `agent/script/drain/presented_job_state.go`; the
//! action around it (`agent/action/drain.go`: the drain type, the shutdown notice, unmonitoring)
//! belongs to the agent.
//!
//! A drain script is called as `drain <job_change> <hash_change> [updated_package...]`
//! ([`DrainParams`]) with `PATH=/usr/sbin:/usr/bin:/sbin:/bin`, `BOSH_JOB_STATE` =
//! `{"persistent_disk":<current MiB>}` and, when there is a next spec, `BOSH_JOB_NEXT_STATE` =
//! `{"persistent_disk":<next MiB>}`. Its stdout, trimmed, must be an integer `n`:
//! - `n >= 0`: wait `n` seconds, done;
//! - `n < 0` (dynamic drain): wait `-n` seconds and call it again as
//!   `drain job_check_status hash_unchanged`, with no next state, until it prints `n >= 0`.
//!
//! As in Go, the exit status is not looked at: a script that prints an integer and exits 1 has
//! drained, and one that prints nothing fails with `Script did not return a signed integer`.
//! Failures sum up as [`parallel`] says (`1 of 2 drain scripts failed. ...`); the action answers
//! `0` whatever the scripts printed. Drain output is not kept in log files.
//!
//! Cancelling: a script is terminated as [`runner`] describes, the waits
//! between calls end at once, and [`JobScripts::drain`] returns [`Error::Cancelled`]. Go's action
//! answers a cancelled drain with `0` without waiting for the scripts; the agent decides.

use std::fmt;
use std::num::ParseIntError;
use std::path::Path;
use std::time::Duration;

use platform::cmd::Cmd;
use serde_json::json;
use settings::digest::MultiDigest;

use crate::apply_spec::{ApplySpec, PackageSpec};
use crate::script::cancel::CancelToken;
use crate::script::parallel::{self, JobScript};
use crate::script::{JobScripts, runner, script_cmd};

/// The name of every job's drain script.
pub const DRAIN_SCRIPT: &str = "drain";

/// How the job changes, the first argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// `job_new`: the current spec has no jobs.
    New,
    /// `job_changed`: an update of an instance that has jobs.
    Changed,
    /// `job_shutdown`: the instance stops or goes away.
    Shutdown,
    /// `job_check_status`: a dynamic drain asks again.
    CheckStatus,
}

/// How the configuration hash changes, the second argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashChange {
    /// `hash_new`: the current spec has no configuration hash.
    New,
    /// `hash_changed`.
    Changed,
    /// `hash_unchanged`.
    Unchanged,
}

/// The arguments and environment of a drain script (Go's `ScriptParams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainParams {
    /// The first argument.
    pub job_change: JobChange,
    /// The second argument.
    pub hash_change: HashChange,
    /// The remaining arguments: packages that are new or whose digest changed, sorted.
    pub updated_packages: Vec<String>,
    /// `persistent_disk` of the current spec, for `BOSH_JOB_STATE`.
    pub persistent_disk: i64,
    /// `persistent_disk` of the next spec, for `BOSH_JOB_NEXT_STATE`; `None` without one.
    pub next_persistent_disk: Option<i64>,
}

/// Waits between drain calls.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// Waits `duration`, or less when `cancel` fires.
    fn sleep(&self, duration: Duration, cancel: &CancelToken);
}

/// Waits for real, on the calling thread (drain runs on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemSleeper;

/// Why draining failed, or why one job's drain failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some drain scripts failed (Go's text); the causes are logged.
    #[error(transparent)]
    Failed(#[from] parallel::Error),
    /// A job name cannot be a path component.
    #[error(transparent)]
    Name(#[from] platform::name::Error),
    /// The token fired (Go's text).
    #[error("Script was cancelled by user request")]
    Cancelled,
    /// One job's script could not be run (Go's text).
    #[error("Running drain script")]
    Run(#[source] runner::Error),
    /// One job's script printed something else than an integer (Go's text).
    #[error("Script did not return a signed integer: parsing {output:?}")]
    NotAnInteger {
        /// What it printed, trimmed.
        output: String,
        /// The cause.
        #[source]
        source: ParseIntError,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl JobChange {
    /// The argument.
    pub fn as_str(self) -> &'static str {
        match self {
            JobChange::New => "job_new",
            JobChange::Changed => "job_changed",
            JobChange::Shutdown => "job_shutdown",
            JobChange::CheckStatus => "job_check_status",
        }
    }
}

impl HashChange {
    /// The argument.
    pub fn as_str(self) -> &'static str {
        match self {
            HashChange::New => "hash_new",
            HashChange::Changed => "hash_changed",
            HashChange::Unchanged => "hash_unchanged",
        }
    }
}

impl DrainParams {
    /// For `drain update` from `current` to `new` (Go's `NewUpdateParams`).
    pub fn update(current: &ApplySpec, new: &ApplySpec) -> DrainParams {
        let job_change = if current.jobs().is_empty() {
            JobChange::New
        } else {
            JobChange::Changed
        };
        let hash_change = if current.configuration_hash.is_empty() {
            HashChange::New
        } else if current.configuration_hash == new.configuration_hash {
            HashChange::Unchanged
        } else {
            HashChange::Changed
        };
        DrainParams {
            job_change,
            hash_change,
            updated_packages: updated_packages(current, new),
            persistent_disk: current.persistent_disk,
            next_persistent_disk: Some(new.persistent_disk),
        }
    }

    /// For `drain shutdown`, with the next spec when the director sent one (Go's
    /// `NewShutdownParams`).
    pub fn shutdown(current: &ApplySpec, new: Option<&ApplySpec>) -> DrainParams {
        DrainParams {
            job_change: JobChange::Shutdown,
            hash_change: HashChange::Unchanged,
            updated_packages: Vec::new(),
            persistent_disk: current.persistent_disk,
            next_persistent_disk: new.map(|new| new.persistent_disk),
        }
    }

    /// For asking a dynamic drain script again: `job_check_status hash_unchanged`, the same current
    /// state and no next state (Go's `ToStatusParams`).
    pub fn status(&self) -> DrainParams {
        DrainParams {
            job_change: JobChange::CheckStatus,
            hash_change: HashChange::Unchanged,
            updated_packages: Vec::new(),
            persistent_disk: self.persistent_disk,
            next_persistent_disk: None,
        }
    }

    /// The script's arguments.
    pub fn args(&self) -> Vec<String> {
        [self.job_change.as_str(), self.hash_change.as_str()]
            .into_iter()
            .map(str::to_owned)
            .chain(self.updated_packages.iter().cloned())
            .collect()
    }

    /// `BOSH_JOB_STATE` and, with a next spec, `BOSH_JOB_NEXT_STATE` (Go's `presentedJobState`).
    pub fn env(&self) -> Vec<(String, String)> {
        let state =
            |persistent_disk: i64| json!({ "persistent_disk": persistent_disk }).to_string();
        std::iter::once(("BOSH_JOB_STATE".to_owned(), state(self.persistent_disk)))
            .chain(
                self.next_persistent_disk
                    .map(|next| ("BOSH_JOB_NEXT_STATE".to_owned(), state(next))),
            )
            .collect()
    }
}

impl Sleeper for SystemSleeper {
    fn sleep(&self, duration: Duration, cancel: &CancelToken) {
        cancel.wait_timeout(duration);
    }
}

impl JobScripts {
    /// Runs the drain script of every job of `spec` (the current spec) at once with `params`, each
    /// through its dynamic drain loop, and waits for all.
    pub fn drain(
        &self,
        spec: &ApplySpec,
        params: &DrainParams,
        cancel: &CancelToken,
    ) -> Result<()> {
        let paths = spec
            .jobs()
            .iter()
            .map(|job| Ok((job.name.clone(), self.script_path(&job.name, DRAIN_SCRIPT)?)))
            .collect::<Result<Vec<_>>>()?;
        let scripts = paths
            .into_iter()
            .map(|(job, path)| JobScript {
                job,
                path: path.clone(),
                run: move || self.drain_one(&path, params, cancel),
            })
            .collect();
        let result = parallel::run(DRAIN_SCRIPT, scripts);
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        Ok(result?)
    }

    /// One job's drain loop (Go's `ConcreteScript.Run`).
    fn drain_one(&self, path: &Path, params: &DrainParams, cancel: &CancelToken) -> Result<()> {
        let mut params = params.clone();
        loop {
            let value = self.drain_once(path, &params, cancel)?;
            self.sleeper
                .sleep(Duration::from_secs(value.unsigned_abs()), cancel);
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if value >= 0 {
                return Ok(());
            }
            params = params.status();
        }
    }

    /// One call of a drain script; its integer (Go's `ConcreteScript.runOnce`).
    fn drain_once(&self, path: &Path, params: &DrainParams, cancel: &CancelToken) -> Result<i64> {
        let output =
            self.runner
                .run(&drain_cmd(path, params), cancel)
                .map_err(|err| match err {
                    runner::Error::Cancelled => Error::Cancelled,
                    err => Error::Run(err),
                })?;
        if output.was_cancelled {
            return Err(Error::Cancelled);
        }
        let value = parse_output(&output.stdout)?;
        tracing::debug!(script = %path.display(), args = ?params.args(), exit_code = output.exit_code, value, "ran drain script");
        Ok(value)
    }
}

/// The command for the drain script at `path` with `params`.
pub fn drain_cmd(path: &Path, params: &DrainParams) -> Cmd {
    params
        .env()
        .into_iter()
        .fold(script_cmd(path).args(params.args()), |cmd, (key, value)| {
            cmd.env(key, value)
        })
}

/// The integer a drain script printed (`strconv.Atoi(strings.TrimSpace(stdout))`).
pub fn parse_output(stdout: &[u8]) -> Result<i64> {
    let output = String::from_utf8_lossy(stdout).trim().to_owned();
    output
        .parse::<i64>()
        .map_err(|source| Error::NotAnInteger { output, source })
}

/// Packages of `new` that `current` lacks or has with another digest, sorted by name.
///
/// As Go, packages are matched by their `name` field and digests compared in their canonical form
/// (`sha1:<hex>` and a bare `<hex>` are the same digest); a digest that does not parse is compared as
/// written.
fn updated_packages(current: &ApplySpec, new: &ApplySpec) -> Vec<String> {
    let mut updated: Vec<String> = new
        .packages
        .values()
        .filter(|package| {
            let old = current
                .packages
                .values()
                .find(|old| old.name == package.name);
            old.is_none_or(|old| canonical_digest(old) != canonical_digest(package))
        })
        .map(|package| package.name.clone())
        .collect();
    updated.sort();
    updated
}

fn canonical_digest(package: &PackageSpec) -> String {
    MultiDigest::parse(&package.sha1)
        .map(|digest| digest.to_string())
        .unwrap_or_else(|_| package.sha1.clone())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use crate::apply_spec::{JobTemplateSpec, RenderedTemplatesArchive};
    use crate::script::runner::{ScriptOutput, ScriptRunner};

    use super::*;

    fn package(name: &str, sha1: &str) -> (String, PackageSpec) {
        (
            name.to_owned(),
            PackageSpec {
                name: name.to_owned(),
                sha1: sha1.to_owned(),
                ..PackageSpec::default()
            },
        )
    }

    fn spec(jobs: &[&str], hash: &str, disk: i64, packages: &[(&str, &str)]) -> ApplySpec {
        let mut spec = ApplySpec {
            configuration_hash: hash.to_owned(),
            persistent_disk: disk,
            packages: packages
                .iter()
                .map(|(name, sha1)| package(name, sha1))
                .collect::<BTreeMap<_, _>>(),
            ..ApplySpec::default()
        };
        spec.job.templates = jobs
            .iter()
            .map(|name| JobTemplateSpec {
                name: (*name).to_owned(),
                version: "1".to_owned(),
            })
            .collect();
        if !jobs.is_empty() {
            spec.rendered_templates_archive = Some(RenderedTemplatesArchive::default());
        }
        spec
    }

    #[test]
    fn update_params_follow_go() {
        let cases: &[(ApplySpec, ApplySpec, &[&str])] = &[
            // No jobs and no hash yet: everything is new.
            (
                spec(&[], "", 0, &[]),
                spec(&["web"], "h1", 1024, &[("ruby", "aaa")]),
                &["job_new", "hash_new", "ruby"],
            ),
            // Same hash; one package changed, one added, one gone, one unchanged.
            (
                spec(
                    &["web"],
                    "h1",
                    0,
                    &[("ruby", "aaa"), ("gone", "ccc"), ("same", "sha1:ddd")],
                ),
                spec(
                    &["web"],
                    "h1",
                    0,
                    &[
                        ("zlib", "eee"),
                        ("ruby", "bbb"),
                        ("same", "ddd"),
                        ("added", "fff"),
                    ],
                ),
                &["job_changed", "hash_unchanged", "added", "ruby", "zlib"],
            ),
            (
                spec(&["web"], "h1", 0, &[]),
                spec(&["web"], "h2", 0, &[]),
                &["job_changed", "hash_changed"],
            ),
            // Jobs without a rendered templates archive are no jobs, as Go's `Jobs()`.
            (
                ApplySpec {
                    configuration_hash: "h1".into(),
                    job: spec(&["web"], "", 0, &[]).job,
                    ..ApplySpec::default()
                },
                spec(&["web"], "h1", 0, &[]),
                &["job_new", "hash_unchanged"],
            ),
        ];
        for (current, new, expected) in cases {
            assert_eq!(
                DrainParams::update(current, new).args(),
                expected.to_vec(),
                "{expected:?}"
            );
        }
    }

    #[test]
    fn the_states_carry_the_persistent_disk_and_status_drops_the_next_one() {
        let current = spec(&["web"], "h1", 1024, &[("ruby", "aaa")]);
        let new = spec(&["web"], "h2", 2048, &[("ruby", "bbb")]);
        let update = DrainParams::update(&current, &new);
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            update.env(),
            env(&[
                ("BOSH_JOB_STATE", r#"{"persistent_disk":1024}"#),
                ("BOSH_JOB_NEXT_STATE", r#"{"persistent_disk":2048}"#),
            ])
        );
        let status = update.status();
        assert_eq!(status.args(), vec!["job_check_status", "hash_unchanged"]);
        assert_eq!(
            status.env(),
            env(&[("BOSH_JOB_STATE", r#"{"persistent_disk":1024}"#)])
        );

        let shutdown = DrainParams::shutdown(&current, None);
        assert_eq!(shutdown.args(), vec!["job_shutdown", "hash_unchanged"]);
        assert_eq!(
            shutdown.env(),
            env(&[("BOSH_JOB_STATE", r#"{"persistent_disk":1024}"#)])
        );
        let shutdown = DrainParams::shutdown(&current, Some(&new));
        assert_eq!(shutdown.args(), vec!["job_shutdown", "hash_unchanged"]);
        assert_eq!(shutdown.env()[1].1, r#"{"persistent_disk":2048}"#);
    }

    #[test]
    fn the_command_is_the_script_with_args_path_and_states() {
        let params = DrainParams::update(
            &spec(&["web"], "h1", 0, &[]),
            &spec(&["web"], "h1", 10, &[("ruby", "aaa")]),
        );
        let cmd = drain_cmd(Path::new("/var/vcap/jobs/web/bin/drain"), &params);
        assert_eq!(
            cmd.to_string(),
            "/var/vcap/jobs/web/bin/drain job_changed hash_unchanged ruby"
        );
        assert_eq!(
            cmd.env,
            vec![
                ("PATH".into(), crate::script::SCRIPT_PATH.into()),
                ("BOSH_JOB_STATE".into(), r#"{"persistent_disk":0}"#.into()),
                (
                    "BOSH_JOB_NEXT_STATE".into(),
                    r#"{"persistent_disk":10}"#.into()
                ),
            ]
        );
    }

    #[test]
    fn output_must_be_a_signed_integer() {
        assert_eq!(parse_output(b" 15\n").unwrap(), 15);
        assert_eq!(parse_output(b"-3\n").unwrap(), -3);
        assert_eq!(parse_output(b"+0").unwrap(), 0);
        let err = parse_output(b"done\n").unwrap_err();
        assert_eq!(
            settings::source::error_chain(&err),
            "Script did not return a signed integer: parsing \"done\": invalid digit found in string"
        );
        assert!(matches!(
            parse_output(b"").unwrap_err(),
            Error::NotAnInteger { .. }
        ));
    }

    /// Answers every script with the next scripted stdout; can fire a token on a given call.
    #[derive(Debug, Default)]
    struct FakeRunner {
        stdouts: Mutex<Vec<&'static str>>,
        calls: Mutex<Vec<Vec<String>>>,
        cancel_on_call: Option<(usize, CancelToken)>,
    }

    impl ScriptRunner for FakeRunner {
        fn run(&self, cmd: &Cmd, cancel: &CancelToken) -> runner::Result<ScriptOutput> {
            if cancel.is_cancelled() {
                return Err(runner::Error::Cancelled);
            }
            let mut calls = self.calls.lock().unwrap();
            calls.push(
                cmd.args
                    .iter()
                    .map(|a| a.to_string_lossy().into())
                    .collect(),
            );
            if let Some((call, token)) = &self.cancel_on_call {
                if *call == calls.len() {
                    token.cancel();
                }
            }
            let stdout = self.stdouts.lock().unwrap().remove(0);
            Ok(ScriptOutput {
                stdout: stdout.into(),
                was_cancelled: cancel.is_cancelled(),
                ..ScriptOutput::default()
            })
        }
    }

    #[derive(Debug, Default)]
    struct RecordingSleeper(Mutex<Vec<Duration>>);

    impl Sleeper for RecordingSleeper {
        fn sleep(&self, duration: Duration, _cancel: &CancelToken) {
            self.0.lock().unwrap().push(duration);
        }
    }

    fn fixture(
        runner: FakeRunner,
    ) -> (
        tempfile::TempDir,
        Arc<FakeRunner>,
        Arc<RecordingSleeper>,
        JobScripts,
    ) {
        let base = tempfile::tempdir().unwrap();
        let bin = base.path().join("jobs/web/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("drain"), "").unwrap();
        let runner = Arc::new(runner);
        let sleeper = Arc::new(RecordingSleeper::default());
        let scripts = JobScripts::new(settings::Dirs::new(base.path()), runner.clone())
            .with_sleeper(sleeper.clone());
        (base, runner, sleeper, scripts)
    }

    #[test]
    fn a_dynamic_drain_asks_again_until_it_prints_a_non_negative_number() {
        let (_base, runner, sleeper, scripts) = fixture(FakeRunner {
            stdouts: Mutex::new(vec!["-5", "-2", "3"]),
            ..FakeRunner::default()
        });
        let current = spec(&["web"], "h1", 0, &[]);
        let params = DrainParams::shutdown(&current, None);
        scripts
            .drain(&current, &params, &CancelToken::new())
            .unwrap();
        assert_eq!(
            *runner.calls.lock().unwrap(),
            vec![
                vec!["job_shutdown", "hash_unchanged"],
                vec!["job_check_status", "hash_unchanged"],
                vec!["job_check_status", "hash_unchanged"],
            ]
        );
        assert_eq!(
            *sleeper.0.lock().unwrap(),
            [5, 2, 3].map(Duration::from_secs).to_vec()
        );
    }

    #[test]
    fn a_cancelled_drain_stops_asking_and_says_so() {
        let cancel = CancelToken::new();
        let (_base, runner, sleeper, scripts) = fixture(FakeRunner {
            stdouts: Mutex::new(vec!["-5", "-5"]),
            cancel_on_call: Some((1, cancel.clone())),
            ..FakeRunner::default()
        });
        let current = spec(&["web"], "h1", 0, &[]);
        let err = scripts
            .drain(&current, &DrainParams::shutdown(&current, None), &cancel)
            .unwrap_err();
        assert_eq!(err.to_string(), "Script was cancelled by user request");
        assert_eq!(runner.calls.lock().unwrap().len(), 1);
        assert!(sleeper.0.lock().unwrap().is_empty());
    }
}
