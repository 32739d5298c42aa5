//! Running external programs: the only place in the director that spawns a process (CPIs,
//! `nats-server`, the process CPI's VM supervisors and agents, and later the template renderer).
//!
//! [`run`] starts a program from a scrubbed environment in a process group of its own, writes its
//! standard input and closes it, reads standard output and standard error to their ends at the same
//! time (a program filling one pipe while we wait on the other would hang), and waits, up to a
//! deadline: past it the whole group is killed (a hung CPI released only by killing it is the
//! complaint of cloudfoundry/bosh#2276). The exit status is reported, not judged: CPI callers parse
//! standard output whatever the code.
//!
//! [`Daemon`] is a long-lived child the caller owns and stops. [`spawn_detached`] starts a program
//! the caller leaves behind: the process CPI starts a VM's supervisor that way, and the supervisor
//! outlives the CPI call that started it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A program to run to its end.
#[derive(Debug, Clone)]
pub struct Program {
    /// The executable.
    pub path: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Its whole environment: nothing of the director's own is passed on.
    pub env: Vec<(OsString, OsString)>,
    /// Bytes written to its standard input, which is then closed.
    pub stdin: Vec<u8>,
    /// How long it may run before its process group is killed.
    pub timeout: Duration,
}

/// What a program printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Why a program could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It could not be started.
    #[error("starting {}", .path.display())]
    Start {
        /// The executable.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading its output or waiting for it failed.
    #[error("waiting for {}", .path.display())]
    Wait {
        /// The executable.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It ran past its deadline and was killed; what it printed until then is kept.
    #[error("{} did not finish within {} s and was killed", .path.display(), .timeout.as_secs())]
    TimedOut {
        /// The executable.
        path: PathBuf,
        /// The deadline it had.
        timeout: Duration,
        /// Its standard error until it was killed.
        stderr: Vec<u8>,
    },
}

/// Runs `program` to its end (see the module docs).
pub async fn run(program: &Program) -> Result<Output, Error> {
    let mut child = tokio::process::Command::new(&program.path)
        .args(&program.args)
        .env_clear()
        .envs(program.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Start {
            path: program.path.clone(),
            source,
        })?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let input = program.stdin.clone();
    let feed = async move {
        if let Some(pipe) = stdin.as_mut() {
            // A program that exits without reading everything closes the pipe: not our error.
            let _ = pipe.write_all(&input).await;
        }
        // Dropping the pipe closes it: the CPI library reads its request to EOF.
        drop(stdin);
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let read_out = async {
        if let Some(pipe) = stdout.as_mut() {
            pipe.read_to_end(&mut out).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let read_err = async {
        if let Some(pipe) = stderr.as_mut() {
            pipe.read_to_end(&mut err).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let everything = async {
        let ((), read_out, read_err, status) = tokio::join!(feed, read_out, read_err, child.wait());
        read_out?;
        read_err?;
        status
    };
    let wait_error = |source| Error::Wait {
        path: program.path.clone(),
        source,
    };
    let finished = tokio::time::timeout(program.timeout, everything).await;
    match finished {
        Ok(status) => Ok(Output {
            status: status.map_err(wait_error)?,
            stdout: out,
            stderr: err,
        }),
        Err(_) => {
            if let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) {
                // The whole group: a wrapper script's children too. Gone already is fine.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            // Reap it so it leaves no zombie; kill_on_drop covers a failed wait.
            let _ = child.wait().await;
            Err(Error::TimedOut {
                path: program.path.clone(),
                timeout: program.timeout,
                stderr: err,
            })
        }
    }
}

/// A long-lived program the director runs (`nats-server`): started in a process group of its own
/// with its output appended to a file, signalled by the director, killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    path: PathBuf,
    child: tokio::process::Child,
}

impl Daemon {
    /// Starts `path` with `args` and the director's own environment, its standard output and error
    /// appended to `output`.
    pub fn start(
        path: &std::path::Path,
        args: &[OsString],
        output: &std::path::Path,
    ) -> Result<Daemon, Error> {
        Daemon::start_with_env(path, args, &[], output)
    }

    /// Like [`Daemon::start`], with `env` added to the director's own environment.
    pub fn start_with_env(
        path: &std::path::Path,
        args: &[OsString],
        env: &[(OsString, OsString)],
        output: &std::path::Path,
    ) -> Result<Daemon, Error> {
        let start_error = |source| Error::Start {
            path: path.to_owned(),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .map_err(start_error)?;
        let child = tokio::process::Command::new(path)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(start_error)?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(start_error)?;
        Ok(Daemon {
            path: path.to_owned(),
            child,
        })
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it has exited; its status if so.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.child.try_wait().map_err(|source| Error::Wait {
            path: self.path.clone(),
            source,
        })
    }

    /// Waits until it exits; its status.
    pub async fn wait(&mut self) -> Result<ExitStatus, Error> {
        self.child.wait().await.map_err(|source| Error::Wait {
            path: self.path.clone(),
            source,
        })
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        let pid = self
            .pid()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| Error::Wait {
                path: self.path.clone(),
                source: std::io::Error::other("the process has exited"),
            })?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(|errno| Error::Wait {
            path: self.path.clone(),
            source: errno.into(),
        })
    }

    /// Stops it: SIGTERM, then SIGKILL if it is still there after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.signal(Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A program started and left behind by [`spawn_detached`].
#[derive(Debug, Clone)]
pub struct Detached {
    /// The executable.
    pub path: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables added to the caller's environment.
    pub env: Vec<(OsString, OsString)>,
    /// The file its standard output and error are appended to (created if missing).
    pub output: PathBuf,
}

/// Starts `program` with standard input from `/dev/null` and its output appended to
/// `program.output`, and returns its pid without waiting for it.
///
/// The child stays in the caller's session and process group: a process-group leader could not
/// make a session of its own with setsid(2), so a program that must outlive a signal to the
/// caller's group (the director kills a CPI's group past its deadline) calls setsid(2) first
/// thing, as `process-cpi supervise` does. The child is not reaped here: this is for short-lived
/// callers, such as a CPI call, whose exit hands the child to init.
pub fn spawn_detached(program: &Detached) -> Result<u32, Error> {
    let start_error = |source| Error::Start {
        path: program.path.clone(),
        source,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&program.output)
        .map_err(start_error)?;
    let child = std::process::Command::new(&program.path)
        .args(&program.args)
        .envs(program.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(start_error)?)
        .stderr(log)
        .spawn()
        .map_err(start_error)?;
    // Dropping a std `Child` neither kills nor waits for it: the program runs on.
    Ok(child.id())
}
