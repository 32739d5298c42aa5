//! Running commands: the only place in the workspace that spawns a process.
//!
//! A [`Cmd`] holds the program and its argv as separate strings (never a shell line), so quoted
//! arguments cannot break. [`SystemRunner`] runs it for real; `testing::RecordingRunner` records it and
//! answers from a script. A failed command's error carries the program, the exit status and the
//! trimmed stderr, the way bosh-utils' `CmdRunner` reports it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A command to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    /// The program, found on `PATH` unless it is a path.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Bytes fed to its standard input.
    pub stdin: Option<Vec<u8>>,
    /// Its working directory.
    pub dir: Option<PathBuf>,
}

/// What a command printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program could not be started.
    #[error("running {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// How it ended (`exit status: 32`, `signal: 9`).
        status: String,
        /// Its exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// Its standard output (scripts' failures are reported with both streams).
        stdout: String,
        /// Its trimmed standard error.
        stderr: String,
    },
    /// A fake runner was asked to run a command it was not given (tests only).
    #[error("unexpected command: {0}")]
    Unexpected(String),
}

/// Runs commands to completion.
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs `cmd` to completion. A non-zero exit is `Err(Error::Failed { .. })`.
    fn run(&self, cmd: &Cmd) -> Result<Output, Error>;
}

impl Cmd {
    /// A command running `program` with no arguments.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            ..Cmd::default()
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Feeds `bytes` to standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// The program's name for messages.
    pub fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

impl fmt::Display for Cmd {
    /// The command line, for logs and errors (arguments with spaces quoted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program.to_string_lossy())?;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                write!(f, " {arg:?}")?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}

/// Runs commands on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, Error> {
        let started = std::time::Instant::now();
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &cmd.dir {
            command.current_dir(dir);
        }
        let spawn_error = |source| Error::Spawn {
            program: cmd.program_name(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        // Feed stdin from a thread: writing it all before reading stdout could deadlock on full pipes.
        let feeder = match (child.stdin.take(), cmd.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => {
                Some(std::thread::spawn(move || pipe.write_all(&bytes)))
            }
            _ => None,
        };
        // `wait_with_output` drains stdout and stderr together.
        let output = child.wait_with_output().map_err(spawn_error)?;
        if let Some(feeder) = feeder {
            // A child that exits without reading its stdin is not an error of ours.
            let _ = feeder.join();
        }
        tracing::debug!(command = %cmd, status = %output.status, elapsed_ms = started.elapsed().as_millis() as u64, "ran command");
        if output.status.success() {
            Ok(Output {
                stdout: output.stdout,
                stderr: output.stderr,
            })
        } else {
            Err(Error::Failed {
                program: cmd.program_name(),
                status: output.status.to_string(),
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_passed_verbatim_without_a_shell() {
        let output = SystemRunner
            .run(&Cmd::new("printf").args(["%s|", "two words", "$HOME", "'quoted'"]))
            .unwrap();
        assert_eq!(output.stdout, b"two words|$HOME|'quoted'|");
    }

    #[test]
    fn stdin_and_env_reach_the_program() {
        let output = SystemRunner
            .run(
                &Cmd::new("sh")
                    .args(["-c", "cat; printf %s \"$GREETING\""])
                    .env("GREETING", "hi")
                    .stdin("in:"),
            )
            .unwrap();
        assert_eq!(output.stdout, b"in:hi");
    }

    #[test]
    fn a_failure_carries_program_status_and_stderr() {
        let err = SystemRunner
            .run(&Cmd::new("sh").args(["-c", "echo '  no such disk  ' >&2; exit 32"]))
            .unwrap_err();
        assert_eq!(err.to_string(), "sh failed (exit status: 32): no such disk");
        let Error::Failed { code, .. } = err else {
            panic!("not a failure: {err:?}");
        };
        assert_eq!(code, Some(32));
        let err = SystemRunner
            .run(&Cmd::new("sh").args(["-c", "echo partial output; exit 3"]))
            .unwrap_err();
        assert!(
            matches!(err, Error::Failed { ref stdout, .. } if stdout == "partial output\n"),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = SystemRunner
            .run(&Cmd::new("/nonexistent/program"))
            .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    }

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let cmd = Cmd::new("mount").args(["-o", "ro", "/dev/disk/by-label/config 2"]);
        assert_eq!(
            cmd.to_string(),
            "mount -o ro \"/dev/disk/by-label/config 2\""
        );
    }
}
