//! A command started without waiting for it: [`Running`], what [`CommandRunner::start`] returns.
//!
//! Lifecycle scripts that `cancel_task` may stop (drain, errands) need more than
//! [`CommandRunner::run`]: the caller waits in slices, looks at its cancel flag between them, and
//! signals the script's process group, as bosh-utils' `execProcess` does (`Start`, `Wait`,
//! `TerminateNicely`). [`SystemRunner`](super::SystemRunner) starts the command in a process group
//! of its own with both output streams captured by two reader threads; [`Finished`] is the handle
//! fakes give back for a command they ran to completion.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal;
use nix::unistd::Pid;

use super::{Cmd, Error, Output, Signal};

/// A started command.
pub trait Running: Send + fmt::Debug {
    /// Waits up to `timeout` for the command to end; `Some(status)` once it has.
    fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>>;

    /// Sends `signal` to the command's process group; a group that is gone already is not an error.
    fn signal_group(&mut self, signal: Signal) -> io::Result<()>;

    /// What the command printed, once it has ended. It waits until every process holding the
    /// output pipes has closed them, as Go's `Cmd.Wait` does.
    fn into_output(self: Box<Self>) -> io::Result<Output>;
}

/// A command that has ended already: what a fake runner returns from
/// [`CommandRunner::start`](super::CommandRunner::start) after running it to completion.
#[derive(Debug)]
pub struct Finished {
    status: ExitStatus,
    output: Output,
}

impl Finished {
    /// The handle for what [`CommandRunner::run`](super::CommandRunner::run) answered: its output
    /// and exit 0, or a failure's status and streams; any other error stays an error.
    pub fn from_run(result: Result<Output, Error>) -> Result<Finished, Error> {
        match result {
            Ok(output) => Ok(Finished {
                status: ExitStatus::from_raw(0),
                output,
            }),
            Err(Error::Failed {
                status,
                code,
                stdout,
                stderr,
                ..
            }) => Ok(Finished {
                status: ExitStatus::from_raw(raw_status(code, &status)),
                output: Output {
                    stdout: stdout.into_bytes(),
                    stderr: stderr.into_bytes(),
                },
            }),
            Err(err) => Err(err),
        }
    }
}

/// The wait(2) status for an exit `code`, or for the signal named in `status` (`signal: 9 ...`).
fn raw_status(code: Option<i32>, status: &str) -> i32 {
    if let Some(code) = code {
        return (code & 0xff) << 8;
    }
    status
        .strip_prefix("signal: ")
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<i32>().ok()
        })
        .unwrap_or(0x7f)
}

impl Running for Finished {
    fn wait_timeout(&mut self, _timeout: Duration) -> io::Result<Option<ExitStatus>> {
        Ok(Some(self.status))
    }

    fn signal_group(&mut self, _signal: Signal) -> io::Result<()> {
        Ok(())
    }

    fn into_output(self: Box<Self>) -> io::Result<Output> {
        Ok(self.output)
    }
}

/// A command [`SystemRunner`](super::SystemRunner) started.
#[derive(Debug)]
pub(super) struct SystemRunning {
    child: Child,
    stdout: JoinHandle<io::Result<Vec<u8>>>,
    stderr: JoinHandle<io::Result<Vec<u8>>>,
    feeder: Option<JoinHandle<io::Result<()>>>,
}

/// How long the first look at a waited-on command sleeps; each later one sleeps twice as long, up
/// to [`MAX_POLL`]: a short script is seen ending within a millisecond or two, a long one costs
/// twenty wake-ups a second.
const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(50);

/// Starts `cmd` in a process group of its own, its output read by two threads.
pub(super) fn start(cmd: &Cmd) -> Result<SystemRunning, Error> {
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
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &cmd.dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        program: cmd.program_name(),
        source,
    })?;
    let feeder = match (child.stdin.take(), cmd.stdin.clone()) {
        (Some(mut pipe), Some(bytes)) => Some(std::thread::spawn(move || pipe.write_all(&bytes))),
        _ => None,
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    tracing::debug!(command = %cmd, pid = child.id(), "started command");
    Ok(SystemRunning {
        child,
        stdout,
        stderr,
        feeder,
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)?;
        }
        Ok(bytes)
    })
}

impl Running for SystemRunning {
    fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        // A timeout past what an `Instant` can hold is waiting until the command ends.
        let deadline = Instant::now().checked_add(timeout);
        let mut poll = FIRST_POLL;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Ok(None);
            }
            std::thread::sleep(poll.min(left));
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    fn signal_group(&mut self, signal: Signal) -> io::Result<()> {
        // The child leads its group and is not reaped before `wait_timeout` saw it end, so its pid
        // cannot have been reused by another group.
        let pgid = i32::try_from(self.child.id())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
        match signal::killpg(Pid::from_raw(pgid), super::nix_signal(signal)) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    fn into_output(self: Box<Self>) -> io::Result<Output> {
        self.wait_with_output().map(|(_, output)| output)
    }
}

impl SystemRunning {
    /// Waits for the command to end and its output pipes to close.
    pub(super) fn wait_with_output(mut self) -> io::Result<(ExitStatus, Output)> {
        let status = self.child.wait()?;
        let join = |handle: JoinHandle<io::Result<Vec<u8>>>| {
            handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("output reader panicked")))
        };
        let stdout = join(self.stdout)?;
        let stderr = join(self.stderr)?;
        if let Some(feeder) = self.feeder.take() {
            // A child that exits without reading its stdin is not an error of ours.
            let _ = feeder.join();
        }
        Ok((status, Output { stdout, stderr }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CommandRunner, SystemRunner};
    use super::*;

    #[test]
    fn a_started_command_is_waited_on_in_slices_and_gives_its_output() {
        let mut running = SystemRunner
            .start(
                &Cmd::new("sh")
                    .args(["-c", "cat; echo err >&2; exit 4"])
                    .stdin("in"),
            )
            .unwrap();
        let status = running
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(4));
        let output = running.into_output().unwrap();
        assert_eq!(output.stdout, b"in");
        assert_eq!(output.stderr, b"err\n");
    }

    #[test]
    fn a_signal_reaches_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-survived");
        // The script starts a child that would write the marker after a while, then waits.
        let script = format!(
            "(sleep 2; touch {}) & wait",
            marker.display().to_string().replace(' ', "\\ ")
        );
        let mut running = SystemRunner
            .start(&Cmd::new("sh").args(["-c", &script]))
            .unwrap();
        assert_eq!(
            running.wait_timeout(Duration::from_millis(50)).unwrap(),
            None
        );
        running.signal_group(Signal::Term).unwrap();
        let status = running
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(status.signal(), Some(15));
        // The output pipes close only once the background child is gone too.
        running.into_output().unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the background child was not signalled");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = SystemRunner
            .start(&Cmd::new("/nonexistent/program"))
            .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    }

    #[test]
    fn finished_keeps_what_run_answered() {
        let failed = Error::Failed {
            program: "sh".into(),
            status: "exit status: 3".into(),
            code: Some(3),
            stdout: "out".into(),
            stderr: "err".into(),
        };
        let mut finished: Box<dyn Running> = Box::new(Finished::from_run(Err(failed)).unwrap());
        let status = finished.wait_timeout(Duration::ZERO).unwrap().unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(finished.into_output().unwrap().stdout, b"out");
        let killed = Error::Failed {
            program: "sh".into(),
            status: "signal: 9 (SIGKILL)".into(),
            code: None,
            stdout: String::new(),
            stderr: String::new(),
        };
        let mut finished = Finished::from_run(Err(killed)).unwrap();
        let status = finished.wait_timeout(Duration::ZERO).unwrap().unwrap();
        assert_eq!(status.signal(), Some(9));
        assert!(Finished::from_run(Err(Error::Unexpected("x".into()))).is_err());
    }
}
