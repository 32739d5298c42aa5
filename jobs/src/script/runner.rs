//! The seam through which every lifecycle script runs: [`ScriptRunner`].
//!
//! Go runs scripts through bosh-utils' `CmdRunner.RunComplexCommand(Async)`
//! (`system/exec_cmd_runner.go`, `system/exec_process.go`): the script gets its own process group,
//! a non-zero exit is reported with its code (`128 + signal` after a signal), and drain and errands
//! wait with a cancel channel at hand. [`ScriptRunner::run`] has the same contract: it returns what
//! the script printed and how it ended, and terminates the script when the [`CancelToken`] fires.
//!
//! [`CommandScriptRunner`] is the runner. It starts scripts through
//! [`platform::cmd::CommandRunner::start`] (the only place that may spawn processes), which puts
//! the script in a process group of its own and captures its output, and waits with
//! [`wait_cancellable`](crate::script::cancel::wait_cancellable): when the token fires, SIGTERM goes
//! to the group and SIGKILL follows after the grace period.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use platform::cmd::{self, Cmd, CommandRunner, Running, Signal};

use crate::script::cancel::{self, CancelToken};

/// Runs one script to its end.
pub trait ScriptRunner: Send + Sync + fmt::Debug {
    /// Runs `cmd` and returns what it printed and how it ended; a non-zero exit is an output, not an
    /// error. When `cancel` fires while it runs, the script's process group is terminated and the
    /// output says so. When `cancel` has fired already, nothing is started: [`Error::Cancelled`].
    fn run(&self, cmd: &Cmd, cancel: &CancelToken) -> Result<ScriptOutput>;
}

/// What a script printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptOutput {
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
    /// Its exit code; `128 + signal` when a signal ended it, `-1` when neither is known (Go's
    /// `ExitStatus`).
    pub exit_code: i32,
    /// Whether the token fired while it ran.
    pub was_cancelled: bool,
}

/// Runs scripts through a [`CommandRunner`], terminating them when their token fires.
#[derive(Debug, Clone)]
pub struct CommandScriptRunner {
    runner: Arc<dyn CommandRunner>,
    kill_grace: Duration,
}

/// Why a script could not be run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The script could not be started (Go: `Starting command '<cmd>'`).
    #[error("Starting command '{command}'")]
    Start {
        /// The command line.
        command: String,
        /// The cause (boxed: `cmd::Error` is large).
        #[source]
        source: Box<cmd::Error>,
    },
    /// The token had fired before the script would have started.
    #[error("cancelled before it started")]
    Cancelled,
    /// Waiting for the script or terminating it failed.
    #[error("waiting for '{command}'")]
    Wait {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: cancel::Error,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl ScriptOutput {
    /// Whether the script exited with 0.
    pub fn is_success(&self) -> bool {
        self.exit_code == 0
    }
}

impl CommandScriptRunner {
    /// A runner over `runner` (`platform::cmd::SystemRunner` in production), giving a cancelled
    /// script [`KILL_GRACE`](cancel::KILL_GRACE) between SIGTERM and SIGKILL.
    pub fn new(runner: Arc<dyn CommandRunner>) -> CommandScriptRunner {
        CommandScriptRunner {
            runner,
            kill_grace: cancel::KILL_GRACE,
        }
    }

    /// The same runner with another grace period (tests).
    pub fn with_kill_grace(mut self, kill_grace: Duration) -> CommandScriptRunner {
        self.kill_grace = kill_grace;
        self
    }
}

impl ScriptRunner for CommandScriptRunner {
    fn run(&self, cmd: &Cmd, cancel: &CancelToken) -> Result<ScriptOutput> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let running = self.runner.start(cmd).map_err(|source| Error::Start {
            command: cmd.to_string(),
            source: Box::new(source),
        })?;
        let wait_error = |source| Error::Wait {
            command: cmd.to_string(),
            source,
        };
        let mut process = Started(running);
        let ended =
            cancel::wait_cancellable(&mut process, cancel, self.kill_grace).map_err(wait_error)?;
        let output = process
            .0
            .into_output()
            .map_err(|source| wait_error(cancel::Error::Wait(source)))?;
        Ok(ScriptOutput {
            stdout: output.stdout,
            stderr: output.stderr,
            exit_code: ended.exit_code,
            was_cancelled: ended.was_cancelled,
        })
    }
}

/// A started script as [`cancel::wait_cancellable`] sees it.
struct Started(Box<dyn Running>);

impl cancel::ScriptProcess for Started {
    fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<i32>> {
        Ok(self.0.wait_timeout(timeout)?.map(exit_code))
    }

    fn signal_group(&mut self, signal: Signal) -> io::Result<()> {
        self.0.signal_group(signal)
    }
}

/// Go's exit status (bosh-utils `execProcess.wait`): the code, else `128 + signal`, else `-1`.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use platform::cmd::SystemRunner;
    use platform::testing::{RecordingRunner, Reply};

    use super::*;

    #[test]
    fn the_exit_code_follows_go() {
        let cases: &[(i32, i32)] = &[(3 << 8, 3), (9, 137), (15 | 0x80, 143), (0x137f, -1)];
        for (raw, expected) in cases {
            assert_eq!(exit_code(ExitStatus::from_raw(*raw)), *expected, "{raw:#x}");
        }
    }

    #[test]
    fn a_failing_script_is_an_output_with_its_code_and_streams() {
        let output = CommandScriptRunner::new(Arc::new(SystemRunner))
            .run(
                &Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
                &CancelToken::new(),
            )
            .unwrap();
        assert_eq!(output.exit_code, 3);
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        assert!(!output.is_success());
    }

    #[test]
    fn a_script_killed_by_a_signal_reports_128_plus_the_signal() {
        let output = CommandScriptRunner::new(Arc::new(SystemRunner))
            .run(
                &Cmd::new("sh").args(["-c", "kill -TERM $$"]),
                &CancelToken::new(),
            )
            .unwrap();
        assert_eq!(output.exit_code, 143);
    }

    /// Fires `cancel` from another thread after `delay`.
    fn cancel_after(cancel: &CancelToken, delay: Duration) {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            cancel.cancel();
        });
    }

    #[test]
    fn a_running_script_is_terminated_when_its_token_fires() {
        let cancel = CancelToken::new();
        cancel_after(&cancel, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let output = CommandScriptRunner::new(Arc::new(SystemRunner))
            .run(
                &Cmd::new("sh").args(["-c", "echo begun; sleep 30 & wait"]),
                &cancel,
            )
            .unwrap();
        assert!(output.was_cancelled);
        assert_eq!(output.exit_code, 143, "SIGTERM ended it");
        assert_eq!(output.stdout, b"begun\n");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sleep was not killed"
        );
    }

    #[test]
    fn a_script_ignoring_sigterm_is_killed_after_the_grace_period() {
        let cancel = CancelToken::new();
        cancel_after(&cancel, Duration::from_millis(100));
        let output = CommandScriptRunner::new(Arc::new(SystemRunner))
            .with_kill_grace(Duration::from_millis(300))
            .run(
                &Cmd::new("sh").args([
                    "-c",
                    "trap '' TERM; echo trapped; while :; do sleep 0.05; done",
                ]),
                &cancel,
            )
            .unwrap();
        assert!(output.was_cancelled);
        assert_eq!(output.exit_code, 137, "SIGKILL ended it");
        assert_eq!(output.stdout, b"trapped\n");
    }

    #[test]
    fn a_cancelled_token_starts_nothing() {
        let runner = Arc::new(RecordingRunner::new());
        let cancel = CancelToken::new();
        cancel.cancel();
        let err = CommandScriptRunner::new(runner.clone())
            .run(&Cmd::new("/var/vcap/jobs/web/bin/run"), &cancel)
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err:?}");
        assert!(runner.recorded().is_empty());
    }

    #[test]
    fn a_script_that_cannot_start_is_an_error() {
        let runner = Arc::new(RecordingRunner::new());
        runner.expect(&["/jobs/web/bin/run"], Reply::Ok("fine\n".into()));
        let script_runner = CommandScriptRunner::new(runner.clone());
        let output = script_runner
            .run(&Cmd::new("/jobs/web/bin/run"), &CancelToken::new())
            .unwrap();
        assert_eq!(output.stdout, b"fine\n");
        assert!(output.is_success());
        let err = script_runner
            .run(&Cmd::new("/jobs/web/bin/run"), &CancelToken::new())
            .unwrap_err();
        assert_eq!(err.to_string(), "Starting command '/jobs/web/bin/run'");
    }
}
