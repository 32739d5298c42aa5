//! The seam through which every lifecycle script runs: [`ScriptRunner`].
//!
//! Go runs scripts through bosh-utils' `CmdRunner.RunComplexCommand(Async)`
//! (`system/exec_cmd_runner.go`, `system/exec_process.go`): the script gets its own process group,
//! a non-zero exit is reported with its code (`128 + signal` after a signal), and drain and errands
//! wait with a cancel channel at hand. [`ScriptRunner::run`] has the same contract: it returns what
//! the script printed and how it ended, and terminates the script when the [`CancelToken`] fires.
//!
//! [`CommandScriptRunner`] is the runner for now. It runs scripts through
//! [`platform::cmd::CommandRunner`], the only place that may spawn processes, whose `run` blocks to
//! the end and cannot be interrupted. So it honours a token that fired before the script starts
//! (nothing is started), and reports one that fired while it ran, but cannot stop a running script.
//! The runner that can cancel will be built on `platform::cmd`'s `Spawner` seam, which starts a
//! command in a process group of its own with its output appended to files, and signals the group.
//! It implements [`ScriptProcess`](crate::script::cancel::ScriptProcess) for the spawned script and
//! waits with [`wait_cancellable`](crate::script::cancel::wait_cancellable) (SIGTERM to the group,
//! SIGKILL after [`KILL_GRACE`](crate::script::cancel::KILL_GRACE)); callers do not change. For that
//! the spawner must also report how a spawned command ended (its exit status), which it does not
//! yet.

use std::fmt;
use std::sync::Arc;

use platform::cmd::{self, Cmd, CommandRunner};

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

/// Runs scripts through a [`CommandRunner`]; see the module docs for what it cannot cancel.
#[derive(Debug, Clone)]
pub struct CommandScriptRunner {
    runner: Arc<dyn CommandRunner>,
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
    /// A runner over `runner` (`platform::cmd::SystemRunner` in production).
    pub fn new(runner: Arc<dyn CommandRunner>) -> CommandScriptRunner {
        CommandScriptRunner { runner }
    }
}

impl ScriptRunner for CommandScriptRunner {
    fn run(&self, cmd: &Cmd, cancel: &CancelToken) -> Result<ScriptOutput> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let output = match self.runner.run(cmd) {
            Ok(output) => ScriptOutput {
                stdout: output.stdout,
                stderr: output.stderr,
                exit_code: 0,
                was_cancelled: false,
            },
            Err(cmd::Error::Failed {
                status,
                code,
                stdout,
                stderr,
                ..
            }) => ScriptOutput {
                stdout: stdout.into_bytes(),
                stderr: stderr.into_bytes(),
                exit_code: exit_code(code, &status),
                was_cancelled: false,
            },
            Err(source) => {
                return Err(Error::Start {
                    command: cmd.to_string(),
                    source: Box::new(source),
                });
            }
        };
        Ok(ScriptOutput {
            was_cancelled: cancel.is_cancelled(),
            ..output
        })
    }
}

/// Go's exit status from what `platform::cmd` reports: the code, else `128 + signal` read from the
/// status text (`signal: 9 (SIGKILL)`), else `-1`.
fn exit_code(code: Option<i32>, status: &str) -> i32 {
    if let Some(code) = code {
        return code;
    }
    status
        .strip_prefix("signal: ")
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<i32>().ok()
        })
        .map_or(-1, |signal| 128 + signal)
}

#[cfg(test)]
mod tests {
    use platform::cmd::SystemRunner;
    use platform::testing::{RecordingRunner, Reply};

    use super::*;

    #[test]
    fn the_exit_code_follows_go() {
        let cases: &[(Option<i32>, &str, i32)] = &[
            (Some(3), "exit status: 3", 3),
            (None, "signal: 9 (SIGKILL)", 137),
            (None, "signal: 15 (SIGTERM) (core dumped)", 143),
            (None, "stopped", -1),
        ];
        for (code, status, expected) in cases {
            assert_eq!(exit_code(*code, status), *expected, "{status}");
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
        assert_eq!(output.stderr, b"err");
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
