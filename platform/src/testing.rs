//! Fakes for tests of code that runs commands, exported behind the `testing` feature.
//!
//! [`RecordingRunner`] records every [`Cmd`] and answers from a script keyed by program and argv
//! ([`RecordingRunner::ANY`] stands for one argument that is not known in advance, such as a fresh
//! temporary directory; assert it exactly through [`RecordingRunner::recorded`]). A command it was not
//! given fails (bosh-utils' `FakeCmdRunner` answers those with empty output, which
//! lets a forgotten expectation pass silently).
//!
//! [`FakeSpawner`] stands in for the long-lived-process seam [`Spawner`]: it records every spawn
//! (command and options), gives out pids that live until a test marks them dead, and runs a hook
//! after each spawn so a test can play the program (write a pidfile, start a process).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use crate::cmd::{Cmd, CommandRunner, Error, Output};
use crate::cmd::{Signal, SpawnError, SpawnOptions, Spawner};

/// A scripted, recording [`CommandRunner`].
#[derive(Debug, Default)]
pub struct RecordingRunner {
    script: Mutex<Vec<Expectation>>,
    recorded: Mutex<Vec<Cmd>>,
}

#[derive(Debug)]
struct Expectation {
    argv: Vec<String>,
    reply: Reply,
    used: bool,
}

/// How the fake answers a command.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Success with this standard output.
    Ok(String),
    /// Failure with this exit status and standard error.
    Fail(i32, String),
}

impl RecordingRunner {
    /// In a scripted argv, matches any one argument.
    pub const ANY: &'static str = "<any>";

    /// A runner with an empty script.
    pub fn new() -> RecordingRunner {
        RecordingRunner::default()
    }

    /// Answers the next run of `argv` (program first) with `reply`. Each expectation answers once.
    pub fn expect(&self, argv: &[&str], reply: Reply) -> &Self {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Expectation {
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
                reply,
                used: false,
            });
        self
    }

    /// Every command run so far, as argv vectors (program first).
    pub fn recorded(&self) -> Vec<Vec<String>> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(argv)
            .collect()
    }

    /// Every command run so far, whole (with its standard input and environment).
    pub fn recorded_commands(&self) -> Vec<Cmd> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Expectations never used, as argv vectors.
    pub fn unused(&self) -> Vec<Vec<String>> {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| !e.used)
            .map(|e| e.argv.clone())
            .collect()
    }
}

fn argv(cmd: &Cmd) -> Vec<String> {
    std::iter::once(&cmd.program)
        .chain(cmd.args.iter())
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

impl CommandRunner for RecordingRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, Error> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cmd.clone());
        let argv = argv(cmd);
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        let matches = |expected: &Vec<String>| {
            expected.len() == argv.len()
                && expected
                    .iter()
                    .zip(&argv)
                    .all(|(e, a)| e == RecordingRunner::ANY || e == a)
        };
        let Some(expectation) = script.iter_mut().find(|e| !e.used && matches(&e.argv)) else {
            return Err(Error::Unexpected(cmd.to_string()));
        };
        expectation.used = true;
        match &expectation.reply {
            Reply::Ok(stdout) => Ok(Output {
                stdout: stdout.clone().into_bytes(),
                stderr: Vec::new(),
            }),
            Reply::Fail(code, stderr) => Err(Error::Failed {
                program: cmd.program_name(),
                status: format!("exit status: {code}"),
                code: Some(*code),
                stdout: String::new(),
                stderr: stderr.clone(),
            }),
        }
    }
}

/// One command a [`FakeSpawner`] was asked to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawned {
    /// The pid the fake gave it.
    pub pid: u32,
    /// The command.
    pub cmd: Cmd,
    /// How it was to be spawned.
    pub options: SpawnOptions,
}

impl Spawned {
    /// The command's argv, program first.
    pub fn argv(&self) -> Vec<String> {
        argv(&self.cmd)
    }
}

/// What a [`FakeSpawner`] does after recording a spawn; tests use it to play the program (write a
/// pidfile, [`FakeSpawner::start_process`], [`FakeSpawner::mark_dead`]).
pub type SpawnHook = Box<dyn Fn(&Spawned, &FakeSpawner) + Send + Sync>;

/// A recording [`Spawner`] whose processes live until a test says they died.
///
/// Every spawn gets a fresh pid (from 1000 up) that is alive until [`FakeSpawner::mark_dead`];
/// spawns of a program given to [`FakeSpawner::fail_program`] fail instead. Signals are recorded
/// and change nothing; a signal to a pid that is not alive fails with
/// [`SpawnError::NoSuchProcess`], as kill(2) does.
#[derive(Default)]
pub struct FakeSpawner {
    state: Mutex<FakeSpawnerState>,
    hook: Mutex<Option<std::sync::Arc<SpawnHook>>>,
}

#[derive(Debug, Default)]
struct FakeSpawnerState {
    next_pid: u32,
    alive: BTreeSet<u32>,
    spawned: Vec<Spawned>,
    signals: Vec<(u32, Signal)>,
    failing_programs: Vec<String>,
}

impl fmt::Debug for FakeSpawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeSpawner")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl FakeSpawner {
    /// A spawner that has spawned nothing.
    pub fn new() -> FakeSpawner {
        FakeSpawner::default()
    }

    /// Calls `hook` after each spawn is recorded (replacing an earlier hook).
    pub fn on_spawn(&self, hook: impl Fn(&Spawned, &FakeSpawner) + Send + Sync + 'static) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::sync::Arc::new(Box::new(hook)));
    }

    /// Makes every spawn of `program` fail with [`SpawnError::Start`].
    pub fn fail_program(&self, program: &str) {
        self.lock().failing_programs.push(program.to_owned());
    }

    /// A new live process that nobody spawned through the fake (what a start program forks and
    /// writes to its pidfile).
    pub fn start_process(&self) -> u32 {
        let mut state = self.lock();
        let pid = state.allocate_pid();
        state.alive.insert(pid);
        pid
    }

    /// Marks `pid` dead.
    pub fn mark_dead(&self, pid: u32) {
        self.lock().alive.remove(&pid);
    }

    /// Every spawn so far, in order.
    pub fn spawned(&self) -> Vec<Spawned> {
        self.lock().spawned.clone()
    }

    /// The argv of every spawn so far, in order.
    pub fn spawned_argv(&self) -> Vec<Vec<String>> {
        self.lock().spawned.iter().map(Spawned::argv).collect()
    }

    /// Every signal sent so far, in order.
    pub fn signals(&self) -> Vec<(u32, Signal)> {
        self.lock().signals.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeSpawnerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeSpawnerState {
    fn allocate_pid(&mut self) -> u32 {
        if self.next_pid == 0 {
            self.next_pid = 1000;
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        pid
    }
}

impl Spawner for FakeSpawner {
    fn spawn(&self, cmd: &Cmd, options: &SpawnOptions) -> Result<u32, SpawnError> {
        let spawned = {
            let mut state = self.lock();
            let program = cmd.program_name();
            if state.failing_programs.contains(&program) {
                return Err(SpawnError::Start {
                    program,
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            let pid = state.allocate_pid();
            state.alive.insert(pid);
            let spawned = Spawned {
                pid,
                cmd: cmd.clone(),
                options: options.clone(),
            };
            state.spawned.push(spawned.clone());
            spawned
        };
        // The hook runs unlocked, so it may call back into the fake.
        let hook = self.hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(&spawned, self);
        }
        Ok(spawned.pid)
    }

    fn is_alive(&self, pid: u32) -> bool {
        self.lock().alive.contains(&pid)
    }

    fn signal(&self, pid: u32, signal: Signal) -> Result<(), SpawnError> {
        let mut state = self.lock();
        if !state.alive.contains(&pid) {
            return Err(SpawnError::NoSuchProcess { pid });
        }
        state.signals.push((pid, signal));
        Ok(())
    }

    fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), SpawnError> {
        self.signal(pgid, signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscripted_commands_fail() {
        let runner = RecordingRunner::new();
        runner.expect(&["mount", "/dev/sr0", "/mnt"], Reply::Ok(String::new()));
        let err = runner.run(&Cmd::new("umount").arg("/mnt")).unwrap_err();
        assert_eq!(err.to_string(), "unexpected command: umount /mnt");
        assert_eq!(runner.unused(), vec![vec!["mount", "/dev/sr0", "/mnt"]]);
    }

    #[test]
    fn each_expectation_answers_once_and_is_recorded() {
        let runner = RecordingRunner::new();
        runner.expect(&["udevadm", "settle"], Reply::Fail(1, "timeout".into()));
        assert!(runner.run(&Cmd::new("udevadm").arg("settle")).is_err());
        assert!(matches!(
            runner.run(&Cmd::new("udevadm").arg("settle")),
            Err(Error::Unexpected(_))
        ));
        assert_eq!(runner.recorded().len(), 2);
    }

    #[test]
    fn any_matches_one_argument() {
        let runner = RecordingRunner::new();
        runner.expect(&["umount", RecordingRunner::ANY], Reply::Ok(String::new()));
        assert!(
            runner
                .run(&Cmd::new("umount").args(["/tmp/a", "/tmp/b"]))
                .is_err()
        );
        runner.run(&Cmd::new("umount").arg("/tmp/x")).unwrap();
        assert_eq!(runner.recorded()[1], vec!["umount", "/tmp/x"]);
    }

    #[test]
    fn fake_spawns_are_recorded_and_live_until_marked_dead() {
        let spawner = FakeSpawner::new();
        spawner.on_spawn(|spawned, fake| {
            if spawned.argv().last().is_some_and(|a| a == "start") {
                fake.start_process();
            }
        });
        let options = SpawnOptions {
            user: Some("vcap".into()),
            ..SpawnOptions::default()
        };
        let pid = spawner
            .spawn(&Cmd::new("/jobs/web/bin/ctl").arg("start"), &options)
            .unwrap();
        assert_eq!(pid, 1000);
        assert!(spawner.is_alive(1000));
        assert!(spawner.is_alive(1001), "the hook started a process");
        assert_eq!(
            spawner.spawned_argv(),
            vec![vec!["/jobs/web/bin/ctl", "start"]]
        );
        assert_eq!(spawner.spawned()[0].options, options);
        spawner.signal(1001, Signal::Term).unwrap();
        spawner.mark_dead(1001);
        assert!(!spawner.is_alive(1001));
        assert!(matches!(
            spawner.signal(1001, Signal::Kill),
            Err(SpawnError::NoSuchProcess { pid: 1001 })
        ));
        assert_eq!(spawner.signals(), vec![(1001, Signal::Term)]);
    }

    #[test]
    fn fake_spawns_of_a_failing_program_fail() {
        let spawner = FakeSpawner::new();
        spawner.fail_program("/bin/false");
        let err = spawner
            .spawn(&Cmd::new("/bin/false"), &SpawnOptions::default())
            .unwrap_err();
        assert_eq!(err.to_string(), "starting /bin/false");
        assert!(spawner.spawned().is_empty());
    }
}
