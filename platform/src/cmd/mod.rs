//! Running commands: the only place in the workspace that spawns a process.
//!
//! A [`Cmd`] holds the program and its argv as separate strings (never a shell line), so quoted
//! arguments cannot break. [`SystemRunner`] runs it for real; `testing::RecordingRunner` records it and
//! answers from a script. A failed command's error carries the program, the exit status and the
//! stderr (trimmed in its message), the way bosh-utils' `CmdRunner` reports it.
//!
//! Long-lived children (supervised job processes, and the `start`/`stop` programs of monit files) go
//! through the sibling seam [`Spawner`]: [`SystemSpawner`] starts a [`Cmd`] detached, in a process
//! session of its own, with standard input from `/dev/null` and its output appended to files, and
//! answers whether a pid is alive; `testing::FakeSpawner` records spawns and lets tests decide which
//! pids live. Monit 5.2.5 spawns its programs the same way (`src/spawn.c`: a double fork, `setsid`,
//! `/dev/null` on the standard streams), so they survive the supervisor.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::signal;
use nix::unistd::{Gid, Group, Pid, Uid, User};

use crate::HostPaths;

mod running;

pub use running::{Finished, Running};

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
    #[error("{program} failed ({status}): {}", .stderr.trim())]
    Failed {
        /// The program.
        program: String,
        /// How it ended (`exit status: 32`, `signal: 9`).
        status: String,
        /// Its exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// Its standard output (scripts' failures are reported with both streams).
        stdout: String,
        /// Its standard error as printed (the message shows it trimmed).
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

    /// Starts `cmd` in a process group of its own and returns without waiting, so that the caller
    /// can wait in slices and signal the group. A runner that cannot do that (a fake) runs `cmd`
    /// to completion and returns it [`Finished`].
    fn start(&self, cmd: &Cmd) -> Result<Box<dyn Running>, Error> {
        Ok(Box::new(Finished::from_run(self.run(cmd))?))
    }
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
        let (status, output) =
            running::start(cmd)?
                .wait_with_output()
                .map_err(|source| Error::Spawn {
                    program: cmd.program_name(),
                    source,
                })?;
        tracing::debug!(command = %cmd, status = %status, elapsed_ms = started.elapsed().as_millis() as u64, "ran command");
        if status.success() {
            Ok(output)
        } else {
            Err(Error::Failed {
                program: cmd.program_name(),
                status: status.to_string(),
                code: status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    fn start(&self, cmd: &Cmd) -> Result<Box<dyn Running>, Error> {
        Ok(Box::new(running::start(cmd)?))
    }
}

/// A signal [`Spawner::signal`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `SIGTERM`.
    Term,
    /// `SIGKILL`.
    Kill,
    /// `SIGINT`.
    Int,
    /// `SIGQUIT`.
    Quit,
    /// `SIGHUP`.
    Hup,
    /// `SIGUSR1`.
    Usr1,
    /// `SIGUSR2`.
    Usr2,
}

/// How [`Spawner::spawn`] starts a command, beyond what its [`Cmd`] says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnOptions {
    /// Run as this user, a name or a number (monit's `as uid <user>`). Without `group`, the user's
    /// primary group is used, as `chpst -u user` does.
    pub user: Option<String>,
    /// Run with this group, a name or a number (monit's `and gid <group>`).
    pub group: Option<String>,
    /// Append standard output to this file (created if missing); `/dev/null` when `None`.
    pub stdout: Option<PathBuf>,
    /// Append standard error to this file (created if missing); `/dev/null` when `None`.
    pub stderr: Option<PathBuf>,
    /// Start from an empty environment (plus `Cmd::env`) instead of the spawner's own, as monit
    /// does for its programs.
    pub clears_env: bool,
}

/// Why a spawn or a signal failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program could not be started.
    #[error("starting {program}")]
    Start {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be opened.
    #[error("opening {} for the output of {program}", .path.display())]
    Output {
        /// The program.
        program: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A user or group name is not known on this host.
    #[error("{kind} {name} of {program} does not exist")]
    UnknownId {
        /// The program.
        program: String,
        /// `user` or `group`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// The spawner cannot do what was asked (another user's identity without root, standard input
    /// bytes for a detached program).
    #[error("{program}: {what} is not supported")]
    Unsupported {
        /// The program.
        program: String,
        /// What was asked.
        what: String,
    },
    /// The pid does not name a live process.
    #[error("no process with pid {pid}")]
    NoSuchProcess {
        /// The pid.
        pid: u32,
    },
    /// The signal could not be sent.
    #[error("sending {signal:?} to pid {pid}")]
    Signal {
        /// The pid.
        pid: u32,
        /// The signal.
        signal: Signal,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Starts long-lived commands detached, and watches and signals processes by pid.
///
/// Every method blocks briefly (a fork, a `kill(2)`, a read under `/proc`); async callers run them
/// in `tokio::task::spawn_blocking`.
pub trait Spawner: Send + Sync + fmt::Debug {
    /// Starts `cmd` in a session of its own, standard input from `/dev/null`, and returns its
    /// pid without waiting for it. `cmd.stdin` must be `None`.
    fn spawn(&self, cmd: &Cmd, options: &SpawnOptions) -> Result<u32, SpawnError>;

    /// Whether `pid` names a live process (a zombie is not alive).
    fn is_alive(&self, pid: u32) -> bool;

    /// Sends `signal` to the process `pid`.
    fn signal(&self, pid: u32, signal: Signal) -> Result<(), SpawnError>;

    /// Sends `signal` to every process of the process group `pgid` (the pid of a spawned command).
    fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), SpawnError>;
}

/// Spawns commands on this machine.
///
/// It reaps the children it started whenever it is called, so a program that exited never lingers
/// as a zombie, and it reads `/proc/<pid>/stat` (through [`HostPaths`]) to tell zombies of other
/// parents from live processes.
#[derive(Debug)]
pub struct SystemSpawner {
    host: HostPaths,
    children: Mutex<Vec<Child>>,
}

impl SystemSpawner {
    /// A spawner reading the real `/proc`.
    pub fn new() -> SystemSpawner {
        SystemSpawner::with_host(HostPaths::system())
    }

    /// A spawner reading `/proc` under `host`.
    pub fn with_host(host: HostPaths) -> SystemSpawner {
        SystemSpawner {
            host,
            children: Mutex::new(Vec::new()),
        }
    }

    /// Waits for the children that have exited, so they leave no zombies.
    fn reap(&self) {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
    }

    /// Whether `/proc/<pid>/stat` says the process is a zombie (or dead); `false` when unreadable.
    fn is_zombie(&self, pid: u32) -> bool {
        std::fs::read_to_string(self.host.proc(&format!("{pid}/stat")))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            })
            .is_some_and(|state| state == "Z" || state == "X")
    }
}

impl Default for SystemSpawner {
    fn default() -> SystemSpawner {
        SystemSpawner::new()
    }
}

impl Spawner for SystemSpawner {
    fn spawn(&self, cmd: &Cmd, options: &SpawnOptions) -> Result<u32, SpawnError> {
        self.reap();
        let program = cmd.program_name();
        if cmd.stdin.is_some() {
            return Err(SpawnError::Unsupported {
                program,
                what: "standard input for a detached program".to_owned(),
            });
        }
        let ids = resolve_ids(&program, options)?;
        let mut command = Command::new(&cmd.program);
        command.args(&cmd.args);
        if options.clears_env {
            command.env_clear();
        }
        command
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(output(&program, options.stdout.as_deref())?)
            .stderr(output(&program, options.stderr.as_deref())?);
        // A session (and so a process group) of its own, as monit's `spawn.c` gives its programs: a
        // signal to the agent's group or a hang-up of its terminal does not reach job processes,
        // and they keep running when the agent restarts. std has no stable `setsid` for `Command`.
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec and only calls setsid(2), which
        // is async-signal-safe and touches no memory of the parent; it cannot fail in a child that
        // is not a process group leader, and a failure is reported as a spawn error.
        unsafe {
            command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
        }
        if let Some(dir) = &cmd.dir {
            command.current_dir(dir);
        }
        if let Some((uid, gid)) = ids {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        let child = command.spawn().map_err(|source| SpawnError::Start {
            program: program.clone(),
            source,
        })?;
        let pid = child.id();
        tracing::debug!(command = %cmd, pid, "spawned command");
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(pid)
    }

    fn is_alive(&self, pid: u32) -> bool {
        self.reap();
        let Some(target) = target_pid(pid) else {
            return false;
        };
        match signal::kill(target, None) {
            // EPERM: the process exists but belongs to another user.
            Ok(()) | Err(Errno::EPERM) => !self.is_zombie(pid),
            Err(_) => false,
        }
    }

    fn signal(&self, pid: u32, signal: Signal) -> Result<(), SpawnError> {
        let target = target_pid(pid).ok_or(SpawnError::NoSuchProcess { pid })?;
        send(pid, signal, signal::kill(target, nix_signal(signal)))
    }

    fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), SpawnError> {
        let target = target_pid(pgid).ok_or(SpawnError::NoSuchProcess { pid: pgid })?;
        send(pgid, signal, signal::killpg(target, nix_signal(signal)))
    }
}

/// `pid` as a kill(2) target; `None` for 0 and for values that would become negative, which kill(2)
/// reads as "my process group" or "every process".
fn target_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|pid| *pid > 0)
        .map(Pid::from_raw)
}

fn send(pid: u32, signal: Signal, result: nix::Result<()>) -> Result<(), SpawnError> {
    match result {
        Ok(()) => Ok(()),
        Err(Errno::ESRCH) => Err(SpawnError::NoSuchProcess { pid }),
        Err(errno) => Err(SpawnError::Signal {
            pid,
            signal,
            source: errno.into(),
        }),
    }
}

fn nix_signal(signal: Signal) -> signal::Signal {
    match signal {
        Signal::Term => signal::Signal::SIGTERM,
        Signal::Kill => signal::Signal::SIGKILL,
        Signal::Int => signal::Signal::SIGINT,
        Signal::Quit => signal::Signal::SIGQUIT,
        Signal::Hup => signal::Signal::SIGHUP,
        Signal::Usr1 => signal::Signal::SIGUSR1,
        Signal::Usr2 => signal::Signal::SIGUSR2,
    }
}

fn output(program: &str, path: Option<&Path>) -> Result<Stdio, SpawnError> {
    let Some(path) = path else {
        return Ok(Stdio::null());
    };
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|file: File| Stdio::from(file))
        .map_err(|source| SpawnError::Output {
            program: program.to_owned(),
            path: path.to_owned(),
            source,
        })
}

/// The uid and gid `options` ask for, `None` when they ask for none. Switching identity needs root:
/// without it, anything but our own ids is [`SpawnError::Unsupported`].
fn resolve_ids(program: &str, options: &SpawnOptions) -> Result<Option<(Uid, Gid)>, SpawnError> {
    if options.user.is_none() && options.group.is_none() {
        return Ok(None);
    }
    let unknown = |kind: &'static str, name: &str| SpawnError::UnknownId {
        program: program.to_owned(),
        kind,
        name: name.to_owned(),
    };
    let (uid, primary_gid) = match &options.user {
        Some(name) => match parse_id(name) {
            Some(id) => (
                Uid::from_raw(id),
                User::from_uid(Uid::from_raw(id))
                    .ok()
                    .flatten()
                    .map(|user| user.gid),
            ),
            None => {
                let user = User::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| unknown("user", name))?;
                (user.uid, Some(user.gid))
            }
        },
        None => (Uid::effective(), None),
    };
    let gid = match &options.group {
        Some(name) => match parse_id(name) {
            Some(id) => Gid::from_raw(id),
            None => {
                Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| unknown("group", name))?
                    .gid
            }
        },
        None => primary_gid.unwrap_or_else(Gid::effective),
    };
    if !Uid::effective().is_root() && (uid != Uid::effective() || gid != Gid::effective()) {
        return Err(SpawnError::Unsupported {
            program: program.to_owned(),
            what: format!("running as uid {uid} gid {gid} without root"),
        });
    }
    Ok(Some((uid, gid)))
}

/// A numeric user or group id, as monit accepts `as uid 1000`.
fn parse_id(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
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

    /// Polls `condition` every few milliseconds for up to ten seconds.
    fn wait_until(condition: impl Fn() -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if condition() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        condition()
    }

    #[test]
    fn a_spawned_command_runs_in_its_own_session_until_killed() {
        let spawner = SystemSpawner::new();
        let pid = spawner
            .spawn(&Cmd::new("sleep").arg("1000"), &SpawnOptions::default())
            .unwrap();
        assert!(spawner.is_alive(pid));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let (_, rest) = stat.rsplit_once(')').unwrap();
        let fields: Vec<u32> = rest
            .split_whitespace()
            .skip(2)
            .take(2)
            .map(|field| field.parse().unwrap())
            .collect();
        assert_eq!(
            fields,
            [pid, pid],
            "the child leads its own group and session"
        );
        spawner.signal(pid, Signal::Kill).unwrap();
        assert!(
            wait_until(|| !spawner.is_alive(pid)),
            "pid {pid} still alive"
        );
        assert!(matches!(
            spawner.signal(pid, Signal::Term),
            Err(SpawnError::NoSuchProcess { pid: p }) if p == pid
        ));
    }

    #[test]
    fn output_is_appended_to_files_and_the_environment_can_start_empty() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.log");
        std::fs::write(&out, "before\n").unwrap();
        let spawner = SystemSpawner::new();
        let options = SpawnOptions {
            stdout: Some(out.clone()),
            stderr: Some(dir.path().join("err.log")),
            clears_env: true,
            ..SpawnOptions::default()
        };
        let pid = spawner
            .spawn(&Cmd::new("/usr/bin/env").env("GREETING", "hi"), &options)
            .unwrap();
        assert!(wait_until(|| !spawner.is_alive(pid)));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "before\nGREETING=hi\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("err.log")).unwrap(),
            ""
        );
    }

    #[test]
    fn spawn_refuses_what_it_cannot_do() {
        let spawner = SystemSpawner::new();
        let err = spawner
            .spawn(&Cmd::new("cat").stdin("x"), &SpawnOptions::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cat: standard input for a detached program is not supported"
        );
        let err = spawner
            .spawn(
                &Cmd::new("true"),
                &SpawnOptions {
                    user: Some("no-such-user-for-bosh-tests".into()),
                    ..SpawnOptions::default()
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user no-such-user-for-bosh-tests of true does not exist"
        );
        let err = spawner
            .spawn(&Cmd::new("/nonexistent/program"), &SpawnOptions::default())
            .unwrap_err();
        assert!(matches!(err, SpawnError::Start { .. }), "{err:?}");
    }

    #[test]
    fn pids_that_kill_would_widen_are_never_signalled() {
        let spawner = SystemSpawner::new();
        for pid in [0, u32::MAX, 1 << 31] {
            assert!(!spawner.is_alive(pid), "{pid}");
            assert!(matches!(
                spawner.signal(pid, Signal::Kill),
                Err(SpawnError::NoSuchProcess { .. })
            ));
            assert!(matches!(
                spawner.signal_group(pid, Signal::Kill),
                Err(SpawnError::NoSuchProcess { .. })
            ));
        }
    }

    #[test]
    fn zombies_read_from_proc_are_not_alive() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        std::fs::create_dir_all(host.proc("4242")).unwrap();
        std::fs::write(host.proc("4242/stat"), "4242 (a (b) c) Z 1 4242 4242 0").unwrap();
        let spawner = SystemSpawner::with_host(host.clone());
        assert!(spawner.is_zombie(4242));
        std::fs::write(host.proc("4242/stat"), "4242 (sleep) S 1 4242 4242 0").unwrap();
        assert!(!spawner.is_zombie(4242));
        assert!(!spawner.is_zombie(4343));
    }

    #[test]
    fn numeric_ids_are_ids_and_names_are_names() {
        let cases: &[(&str, Option<u32>)] = &[
            ("0", Some(0)),
            ("1000", Some(1000)),
            ("vcap", None),
            ("", None),
            ("-1", None),
            ("1e3", None),
            ("99999999999", None),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_id(name), *expected, "{name}");
        }
    }
}
