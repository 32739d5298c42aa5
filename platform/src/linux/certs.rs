//! The director's trusted CA certificates on Linux (`platform/cert/cert_manager.go`,
//! `NewUbuntuCertManager`).
//!
//! [`update_trusted_certs`] splits the bundle first (an unterminated certificate changes nothing),
//! removes every `/usr/local/share/ca-certificates/bosh-trusted-cert-*`, writes each certificate as
//! `bosh-trusted-cert-<n>.crt` (1-based, `0644`, with a final newline where Go writes none, so
//! the system bundle never glues two certificates on one line), then runs
//! `/usr/sbin/update-ca-certificates -f`, which rebuilds `/etc/ssl/certs/ca-certificates.crt`. That
//! command sometimes hangs on Ubuntu, so, as in Go, each attempt may take 60 s, after which its
//! process group gets `SIGTERM` and 5 s more before `SIGKILL`, and it is tried up to 3 times.

use std::path::Path;
use std::time::Duration;

use crate::HostPaths;
use crate::cert::{Error, Result, split_certificates};
use crate::cmd::{Cmd, CommandRunner, Signal};

/// Where the local CA certificates live, under the host root.
pub const CERT_DIR: &str = "usr/local/share/ca-certificates";

/// The prefix of the certificate files the agent owns.
pub const FILE_PREFIX: &str = "bosh-trusted-cert-";

/// The command that rebuilds the system bundle.
pub const UPDATE_COMMAND: &str = "/usr/sbin/update-ca-certificates";

/// How `update-ca-certificates` is waited for and retried (Go's values by default).
#[derive(Debug, Clone, Copy)]
pub struct UpdateRetry {
    /// How long one attempt may run.
    pub timeout: Duration,
    /// How long a terminated attempt gets before it is killed.
    pub grace: Duration,
    /// How many attempts are made.
    pub attempts: u32,
}

impl Default for UpdateRetry {
    fn default() -> UpdateRetry {
        UpdateRetry {
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            attempts: 3,
        }
    }
}

/// Replaces the agent's certificate files with those of `bundle` and rebuilds the system bundle.
pub fn update_trusted_certs(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    bundle: &str,
    retry: UpdateRetry,
) -> Result<()> {
    let certificates = split_certificates(bundle)?;
    let dir = host.root().join(CERT_DIR);
    let removed = remove_agent_files(&dir)?;
    if !certificates.is_empty() {
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            action: "creating directory",
            path: dir.clone(),
            source,
        })?;
    }
    for (index, certificate) in certificates.iter().enumerate() {
        let path = dir.join(format!("{FILE_PREFIX}{}.crt", index + 1));
        settings::atomic_file::write(&path, format!("{certificate}\n").as_bytes(), 0o644).map_err(
            |source| Error::Io {
                action: "writing",
                path,
                source,
            },
        )?;
    }
    tracing::info!(
        removed,
        written = certificates.len(),
        "trusted certificate files replaced"
    );
    run_update(runner, retry)
}

/// Removes `<dir>/bosh-trusted-cert-*`; answers how many there were.
fn remove_agent_files(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(Error::Io {
                action: "listing",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            action: "listing",
            path: dir.to_owned(),
            source,
        })?;
        if !entry.file_name().to_string_lossy().starts_with(FILE_PREFIX) {
            continue;
        }
        let path = entry.path();
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(|source| Error::Io {
            action: "removing",
            path,
            source,
        })?;
        removed += 1;
    }
    Ok(removed)
}

/// `update-ca-certificates -f`, each attempt bounded by `retry.timeout`.
fn run_update(runner: &dyn CommandRunner, retry: UpdateRetry) -> Result<()> {
    let cmd = Cmd::new(UPDATE_COMMAND).arg("-f");
    let mut last = String::from("not run");
    for attempt in 1..=retry.attempts {
        match attempt_update(runner, &cmd, retry) {
            Ok(()) => return Ok(()),
            Err(why) => {
                tracing::warn!(attempt, error = %why, "update-ca-certificates failed");
                last = why;
            }
        }
    }
    Err(Error::Update {
        attempts: retry.attempts,
        last,
    })
}

/// One attempt; the error is a sentence for the log and the final error.
fn attempt_update(
    runner: &dyn CommandRunner,
    cmd: &Cmd,
    retry: UpdateRetry,
) -> std::result::Result<(), String> {
    let mut running = runner
        .start(cmd)
        .map_err(|err| format!("starting {cmd}: {err}"))?;
    let io = |err: std::io::Error| format!("waiting for {cmd}: {err}");
    match running.wait_timeout(retry.timeout).map_err(io)? {
        Some(status) if status.success() => Ok(()),
        Some(status) => {
            let output = running.into_output().map_err(io)?;
            Err(format!(
                "{cmd} exited with {status}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
        None => {
            running.signal_group(Signal::Term).map_err(io)?;
            if running.wait_timeout(retry.grace).map_err(io)?.is_none() {
                running.signal_group(Signal::Kill).map_err(io)?;
                running.wait_timeout(retry.grace).map_err(io)?;
            }
            Err(format!(
                "{cmd} did not finish within {}s",
                retry.timeout.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::ExitStatus;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::cmd::{Output, Running};
    use crate::testing::{RecordingRunner, Reply};

    const A: &str = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
    const B: &str = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----";

    fn quick() -> UpdateRetry {
        UpdateRetry {
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            attempts: 3,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_agents_files_are_replaced_one_per_certificate_and_the_bundle_rebuilt() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let dir = root.path().join(CERT_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "bosh-trusted-cert-1.crt",
            "bosh-trusted-cert-7.crt",
            "site.crt",
        ] {
            std::fs::write(dir.join(name), "old").unwrap();
        }
        let runner = RecordingRunner::new();
        runner.expect(&[UPDATE_COMMAND, "-f"], Reply::Ok(String::new()));
        let bundle = format!("header\n{A}\n\n{B}\n");
        update_trusted_certs(&runner, &host, &bundle, quick()).unwrap();
        assert_eq!(
            names(&dir),
            vec![
                "bosh-trusted-cert-1.crt",
                "bosh-trusted-cert-2.crt",
                "site.crt"
            ]
        );
        let first = dir.join("bosh-trusted-cert-1.crt");
        assert_eq!(std::fs::read_to_string(&first).unwrap(), format!("{A}\n"));
        assert_eq!(
            std::fs::read_to_string(dir.join("bosh-trusted-cert-2.crt")).unwrap(),
            format!("{B}\n")
        );
        assert_eq!(std::fs::metadata(&first).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(runner.recorded(), vec![vec![UPDATE_COMMAND, "-f"]]);

        // An empty bundle removes them all and still rebuilds.
        runner.expect(&[UPDATE_COMMAND, "-f"], Reply::Ok(String::new()));
        update_trusted_certs(&runner, &host, "", quick()).unwrap();
        assert_eq!(names(&dir), vec!["site.crt"]);
        assert_eq!(runner.recorded().len(), 2);
    }

    #[test]
    fn an_unterminated_certificate_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let dir = root.path().join(CERT_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bosh-trusted-cert-1.crt"), "old").unwrap();
        let runner = RecordingRunner::new();
        let err = update_trusted_certs(
            &runner,
            &host,
            "-----BEGIN CERTIFICATE-----\nAAA\n",
            quick(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "trusted_certs: certificate 1 has no '-----END CERTIFICATE-----' line"
        );
        assert_eq!(names(&dir), vec!["bosh-trusted-cert-1.crt"]);
        assert!(runner.recorded().is_empty());
    }

    #[test]
    fn a_failing_update_is_tried_three_times_then_named() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let runner = RecordingRunner::new();
        runner.expect(&[UPDATE_COMMAND, "-f"], Reply::Fail(1, "busy".into()));
        runner.expect(&[UPDATE_COMMAND, "-f"], Reply::Ok(String::new()));
        update_trusted_certs(&runner, &host, A, quick()).unwrap();
        assert_eq!(runner.recorded().len(), 2, "the second attempt succeeded");

        for _ in 0..3 {
            runner.expect(&[UPDATE_COMMAND, "-f"], Reply::Fail(1, "broken".into()));
        }
        let err = update_trusted_certs(&runner, &host, A, quick()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Updating certificates with retries: 3 attempts failed, the last: \
             /usr/sbin/update-ca-certificates -f exited with exit status: 1: broken"
        );
        assert_eq!(runner.recorded().len(), 5);
    }

    /// A command that never ends until it is sent `SIGKILL`, recording the signals and waits.
    #[derive(Debug)]
    struct Hung {
        log: Arc<Mutex<Vec<String>>>,
        killed: bool,
    }

    impl Running for Hung {
        fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
            self.log
                .lock()
                .unwrap()
                .push(format!("wait {}s", timeout.as_secs()));
            Ok(self.killed.then(|| ExitStatus::from_raw(9)))
        }

        fn signal_group(&mut self, signal: Signal) -> io::Result<()> {
            self.log.lock().unwrap().push(format!("{signal:?}"));
            self.killed |= signal == Signal::Kill;
            Ok(())
        }

        fn into_output(self: Box<Self>) -> io::Result<Output> {
            Ok(Output::default())
        }
    }

    #[derive(Debug, Default)]
    struct HangingRunner {
        log: Arc<Mutex<Vec<String>>>,
    }

    impl CommandRunner for HangingRunner {
        fn run(&self, cmd: &Cmd) -> std::result::Result<Output, crate::cmd::Error> {
            Err(crate::cmd::Error::Unexpected(cmd.to_string()))
        }

        fn start(&self, cmd: &Cmd) -> std::result::Result<Box<dyn Running>, crate::cmd::Error> {
            self.log.lock().unwrap().push(format!("start {cmd}"));
            Ok(Box::new(Hung {
                log: self.log.clone(),
                killed: false,
            }))
        }
    }

    #[test]
    fn a_hung_update_is_terminated_killed_and_retried() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let runner = HangingRunner::default();
        let err = update_trusted_certs(&runner, &host, A, quick()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Updating certificates with retries: 3 attempts failed, the last: \
             /usr/sbin/update-ca-certificates -f did not finish within 60s"
        );
        let one = [
            "start /usr/sbin/update-ca-certificates -f",
            "wait 60s",
            "Term",
            "wait 5s",
            "Kill",
            "wait 5s",
        ];
        let expected: Vec<&str> = one.iter().chain(&one).chain(&one).copied().collect();
        assert_eq!(*runner.log.lock().unwrap(), expected);
    }
}
