//! One supervised service: the task that runs its programs and follows its process, independently
//! of every other service.
//!
//! Monit 5.2.5 checks services one after another in a single thread, and runs a start program and
//! then *waits* for the process to appear (`src/control.c`, `wait_start`, up to the program's
//! timeout) before it checks the next service: one broken job held every other check for 30 s (see
//! `reference/peers.md` §3.4). Here each service has its own tokio task and its state machine never
//! blocks: a start is a phase ([`Phase::Starting`]) that later rounds resolve, and every file read,
//! `kill(2)` and spawn runs in `spawn_blocking`. A task sleeps until something concerns it: a
//! request, the watcher (`watch.rs`) seeing its process die, change or come back, a start or stop
//! in progress (checked every 100 ms), a restart's back-off running out.
//!
//! What the task does follows monit's `validate.c` (`check_process`) and `control.c`:
//!
//! * a watched process is alive when its pidfile names a live pid; otherwise the event is
//!   `does not exist` and the action `restart` (monit's default), unless the mode is passive;
//! * a restart after a death first stops the watched services that depend on this one, then runs
//!   the `restart program` if there is one, else the `start program` (the process is already gone,
//!   so monit's stop half does nothing); unlike monit, consecutive restarts back off exponentially
//!   ([`backoff`]), and the streak resets once the process has run for the longest back-off;
//! * a start whose pidfile shows no live process within the program's `with timeout` (30 s by
//!   default) is `execution failed`, and the service is failing until a retry brings it up;
//! * a stop runs the `stop program` and waits, within its timeout, for the process to go; a
//!   requested restart is a stop followed by a start;
//! * `depends on`: a start waits until the services it depends on are settled (none is starting,
//!   stopping, about to be restarted or has a request waiting); a stop waits until the services
//!   that depend on it are stopped (`do_start`/`do_stop`/`do_depend` in monit).
//!
//! Programs run as monit runs them: argv as monit split it, no shell, in the root directory, with
//! monit's `PATH=/bin:/usr/bin:/sbin:/usr/sbin` and its `MONIT_*` variables instead of the agent's
//! environment, in a process group of their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use platform::cmd::{Cmd, SpawnOptions};
use tokio::sync::Notify;

use crate::monit::{Mode, Program, Service};
use crate::process::event::{self, Action, Event};
use crate::process::pidfile::{self, Probe};
use crate::process::watch::Watch;
use crate::process::{Failure, Inner, Request, ServiceState, View};

/// The `PATH` monit gives the programs it runs.
pub(crate) const MONIT_PATH: &str = "/bin:/usr/bin:/sbin:/usr/sbin";

/// How often a start or a stop in progress is checked, at most: a process that appears or goes is
/// reported this quickly even when the supervision cycle is long.
const ACTION_POLL: Duration = Duration::from_millis(100);

/// Which program a service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `start program`, asked for.
    Start,
    /// `restart program` (or `start program`) after the process died.
    Restart,
    /// `stop program`.
    Stop,
    /// The program of an `exec` action, for `event` (monit's name) described by `description`.
    Exec {
        /// The event, as monit names it (`Resource limit matched`).
        event: &'static str,
        /// Monit's description of it.
        description: String,
    },
}

/// The delay before restart number `streak` (1 for the first): none for the first, as monit restarts
/// on the cycle that found the death; then `initial`, doubled each time, at most `max`.
pub(crate) fn backoff(streak: u32, initial: Duration, max: Duration) -> Duration {
    if streak <= 1 {
        return Duration::ZERO;
    }
    let doublings = (streak - 2).min(31);
    initial.saturating_mul(1 << doublings).min(max)
}

/// The command monit would run for `program` of `service`: its argv, monit's `PATH` and `MONIT_*`
/// variables, the host's root directory as working directory. `None` when the program has no argv.
pub(crate) fn program_cmd(
    service: &str,
    program: &Program,
    purpose: &Purpose,
    pid: Option<u32>,
    hostname: Option<&str>,
    root: &Path,
    now: SystemTime,
) -> Option<Cmd> {
    let (path, args) = program.argv.split_first()?;
    let (event, description) = match purpose {
        Purpose::Start => ("Started", "Started"),
        Purpose::Stop => ("Stopped", "Stopped"),
        Purpose::Restart => ("Does not exist", "process is not running"),
        Purpose::Exec { event, description } => (*event, description.as_str()),
    };
    let mut cmd = Cmd::new(path)
        .args(args)
        .env("PATH", MONIT_PATH)
        .env("MONIT_DATE", event::rfc1123z(now))
        .env("MONIT_SERVICE", service)
        .env("MONIT_EVENT", event)
        .env("MONIT_DESCRIPTION", description)
        .env("MONIT_PROCESS_PID", pid.unwrap_or(0).to_string());
    if let Some(hostname) = hostname {
        cmd = cmd.env("MONIT_HOST", hostname);
    }
    cmd.dir = Some(root.to_owned());
    Some(cmd)
}

/// Spawns `program` of `service` detached, as monit would run it, through the supervisor's
/// spawner, its output in the service's log. Blocking.
pub(crate) fn spawn_program(
    inner: &Inner,
    service: &str,
    program: &Program,
    purpose: &Purpose,
    pid: Option<u32>,
) -> Result<(), String> {
    let hostname = std::fs::read_to_string(inner.host.proc("sys/kernel/hostname"))
        .ok()
        .map(|name| name.trim().to_owned());
    let cmd = program_cmd(
        service,
        program,
        purpose,
        pid,
        hostname.as_deref(),
        inner.host.root(),
        SystemTime::now(),
    )
    .ok_or_else(|| "the program is empty".to_owned())?;
    let log = inner.output_file(service);
    let options = SpawnOptions {
        user: program.uid.clone(),
        group: program.gid.clone(),
        stdout: log.clone(),
        stderr: log,
        clears_env: true,
    };
    tracing::debug!(service = %service, command = %cmd, purpose = ?purpose, "running program");
    inner
        .spawner
        .spawn(&cmd, &options)
        .map(|_| ())
        .map_err(|error| error_chain(&error))
}

/// Runs the service `name` until it is replaced or the supervisor goes away.
pub(crate) async fn run(inner: Arc<Inner>, name: String, generation: u64, notify: Arc<Notify>) {
    let mut machine = Machine {
        inner,
        name,
        generation,
        phase: Phase::Initializing,
        streak: 0,
        is_failed: false,
        has_exec_alerted: false,
        restarts_after_stop: false,
        watch: Watch::Nothing,
    };
    while let Some(wait) = machine.step().await {
        // A request, the watcher or a neighbour's change wakes the task at once; otherwise it sleeps
        // as long as its phase allows, or until woken.
        match wait {
            Some(wait) => {
                let _ = tokio::time::timeout(wait, notify.notified()).await;
            }
            None => notify.notified().await,
        }
    }
}

/// Where a service's process is in its life, as its task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not checked yet: the first check adopts a live process.
    Initializing,
    /// Not watched: never started, unmonitored, or stopped.
    Idle,
    /// The start program ran; waiting for the pidfile to name a live process.
    Starting { deadline: Instant },
    /// The process runs.
    Running { pid: u32, since: Instant },
    /// The process is gone; restart at `retry_at` (never in passive mode).
    Down { retry_at: Option<Instant> },
    /// The stop program ran; waiting for the process to go.
    Stopping { deadline: Instant },
}

#[derive(Debug)]
struct Machine {
    inner: Arc<Inner>,
    name: String,
    generation: u64,
    phase: Phase,
    /// Consecutive failures (deaths and failed starts) since the process last ran steadily.
    streak: u32,
    /// A failure was alerted and the matching `exists` is still due.
    is_failed: bool,
    /// `execution failed` was alerted for the current failure streak.
    has_exec_alerted: bool,
    /// The stop in progress is the first half of a restart.
    restarts_after_stop: bool,
    /// What the watcher was last told to check.
    watch: Watch,
}

impl Machine {
    /// One round: adopt, take a request, advance the phase. `None` when the service is gone;
    /// otherwise how long to sleep at most (`Some(None)`: until woken).
    async fn step(&mut self) -> Option<Option<Duration>> {
        let view = self.inner.view(&self.name, self.generation)?;
        if self.phase == Phase::Initializing {
            self.initialize(&view).await;
        }
        let is_stopping = matches!(self.phase, Phase::Stopping { .. });
        let due = match view.request {
            Some(request @ (Request::Stop | Request::Restart)) if view.dependants_settled => {
                Some(request)
            }
            Some(Request::Start) if view.dependencies_settled && !is_stopping => {
                Some(Request::Start)
            }
            Some(Request::Monitor) => Some(Request::Monitor),
            _ => None,
        };
        // A request is taken (consumed) even when the phase makes it moot: a stop while stopping,
        // a start while starting.
        if let Some(request) = due
            && self
                .inner
                .take_request(&self.name, self.generation, request)
        {
            match request {
                Request::Stop | Request::Restart => {
                    self.restarts_after_stop = request == Request::Restart;
                    if !is_stopping {
                        self.begin_stop(&view.service).await;
                    }
                }
                Request::Start => {
                    if !matches!(self.phase, Phase::Starting { .. }) {
                        self.begin_start(&view.service).await;
                    }
                }
                Request::Monitor => self.begin_monitor(&view.service).await,
            }
        }
        let now = self.inner.view(&self.name, self.generation)?;
        let is_waiting_to_stop = matches!(now.request, Some(Request::Stop | Request::Restart));
        // Waiting for dependants to stop first: neither restart nor give up the process.
        if !is_waiting_to_stop || now.is_monitored {
            self.advance(&now).await;
        }
        self.sync_watch();
        Some(self.next_wait())
    }

    /// The first check: a live process is adopted and watched without being restarted.
    async fn initialize(&mut self, view: &View) {
        match self.probe(&view.service).await {
            Probe::Alive(pid) => {
                tracing::info!(service = %self.name, pid, "adopted a running process");
                self.phase = Phase::Running {
                    pid,
                    since: Instant::now(),
                };
                self.update(|entry| {
                    entry.state = ServiceState::Running;
                    entry.pid = Some(pid);
                    entry.is_monitored = true;
                });
            }
            _ => {
                self.phase = Phase::Idle;
                let is_start_requested = view.request == Some(Request::Start);
                self.update(|entry| {
                    entry.pid = None;
                    if !is_start_requested {
                        entry.state = ServiceState::Unmonitored;
                    }
                });
            }
        }
    }

    /// A start was asked for: adopt a live process, or run the start program.
    async fn begin_start(&mut self, service: &Service) {
        match self.probe(service).await {
            Probe::Alive(pid) => self.became_running(pid),
            Probe::Missing | Probe::Dead => self.launch(service, Purpose::Start).await,
        }
    }

    /// Watching again was asked for: adopt a live process; a missing one does not exist, and is
    /// restarted as monit's next cycle would.
    async fn begin_monitor(&mut self, service: &Service) {
        if !matches!(self.phase, Phase::Idle | Phase::Down { .. }) {
            return;
        }
        match self.probe(service).await {
            Probe::Alive(pid) => self.became_running(pid),
            Probe::Missing | Probe::Dead => self.died(service, None),
        }
    }

    /// Runs the start (or restart) program and waits for the process in [`Phase::Starting`].
    async fn launch(&mut self, service: &Service, purpose: Purpose) {
        let program = match purpose {
            Purpose::Restart => service.restart.as_ref().or(service.start.as_ref()),
            _ => service.start.as_ref(),
        };
        let Some(program) = program else {
            tracing::warn!(service = %self.name, "service has no start program");
            self.start_failed();
            return;
        };
        if purpose == Purpose::Restart {
            // Monit counts the starts its own events make towards the restart limits.
            self.update(|entry| entry.checks.count_start());
        }
        let timeout = program
            .timeout_secs
            .map_or(self.inner.config.start_timeout, Duration::from_secs);
        match self.run_program(program, purpose, None).await {
            Ok(()) => {
                self.phase = Phase::Starting {
                    deadline: Instant::now() + timeout,
                };
                self.update(|entry| {
                    entry.state = ServiceState::Starting;
                    entry.is_restart_pending = false;
                });
            }
            Err(error) => {
                tracing::warn!(service = %self.name, error = %error, "start program failed");
                self.start_failed();
            }
        }
    }

    /// A stop (or the stop half of a restart) was asked for: run the stop program if the process
    /// is up.
    async fn begin_stop(&mut self, service: &Service) {
        let probe = self.probe(service).await;
        let pid = match probe {
            Probe::Alive(pid) => Some(pid),
            _ => None,
        };
        // A start in progress may write its pidfile any moment: stop it all the same.
        let is_up = pid.is_some() || matches!(self.phase, Phase::Starting { .. });
        if !is_up {
            self.stopped();
            return;
        }
        let Some(program) = service.stop.as_ref() else {
            if self.restarts_after_stop {
                // Monit refuses a restart without a stop program and keeps watching.
                tracing::warn!(service = %self.name, "service has no stop program: it cannot be restarted");
                self.restarts_after_stop = false;
                if let Some(pid) = pid {
                    self.became_running(pid);
                }
                return;
            }
            // Monit only unmonitors a service without a stop program (`do_stop`).
            tracing::warn!(service = %self.name, "service has no stop program: its process is left running");
            self.stopped();
            return;
        };
        let timeout = program
            .timeout_secs
            .map_or(self.inner.config.stop_timeout, Duration::from_secs);
        match self.run_program(program, Purpose::Stop, pid).await {
            Ok(()) => {
                self.phase = Phase::Stopping {
                    deadline: Instant::now() + timeout,
                };
                self.update(|entry| entry.state = ServiceState::Stopping);
            }
            Err(error) => {
                tracing::warn!(service = %self.name, error = %error, "stop program failed");
                self.stop_failed();
            }
        }
    }

    /// Checks the process and moves the phase on.
    async fn advance(&mut self, view: &View) {
        let service = &view.service;
        let now = Instant::now();
        match self.phase {
            Phase::Initializing | Phase::Idle => {}
            Phase::Starting { .. } | Phase::Running { .. } | Phase::Down { .. }
                if !view.is_monitored =>
            {
                self.phase = Phase::Idle;
                self.update(|entry| {
                    entry.state = ServiceState::Unmonitored;
                    entry.is_restart_pending = false;
                });
            }
            Phase::Starting { deadline } => match self.probe(service).await {
                Probe::Alive(pid) => self.became_running(pid),
                _ if now >= deadline => {
                    tracing::warn!(service = %self.name, "process did not start in time");
                    self.start_failed();
                }
                _ => {}
            },
            Phase::Running { pid, since } => match self.probe(service).await {
                Probe::Alive(current) if current == pid => {}
                Probe::Alive(current) => {
                    tracing::info!(service = %self.name, pid = current, previous_pid = pid, "process pid changed");
                    self.alert(
                        Event::PidChanged,
                        Action::Alert,
                        format!("process PID changed to {current}"),
                    );
                    self.phase = Phase::Running {
                        pid: current,
                        since: now,
                    };
                    self.update(|entry| entry.pid = Some(current));
                }
                Probe::Missing | Probe::Dead => {
                    if since.elapsed() >= self.inner.config.restart_backoff_max {
                        // It ran steadily: this death starts a new streak.
                        self.streak = 0;
                    }
                    self.died(service, Some(pid));
                }
            },
            Phase::Down { retry_at } => match self.probe(service).await {
                Probe::Alive(pid) => self.became_running(pid),
                _ if retry_at.is_some_and(|at| now >= at) && view.dependants_settled => {
                    self.launch(service, Purpose::Restart).await;
                }
                _ => {}
            },
            Phase::Stopping { deadline } => match self.probe(service).await {
                Probe::Alive(_) if now >= deadline => {
                    tracing::warn!(service = %self.name, "process did not stop in time");
                    self.stop_failed();
                }
                Probe::Alive(_) => {}
                Probe::Missing | Probe::Dead => self.stopped(),
            },
        }
    }

    fn became_running(&mut self, pid: u32) {
        if self.is_failed {
            tracing::info!(service = %self.name, pid, "process is running again");
            self.alert(
                Event::Exists,
                Action::Alert,
                format!("process is running with pid {pid}"),
            );
        }
        self.is_failed = false;
        self.has_exec_alerted = false;
        self.phase = Phase::Running {
            pid,
            since: Instant::now(),
        };
        self.update(|entry| {
            entry.state = ServiceState::Running;
            entry.pid = Some(pid);
            entry.is_monitored = true;
            entry.failure = None;
            entry.is_restart_pending = false;
        });
    }

    /// The process (`pid`, if it was known) is gone: alert, and unless passive, restart it after
    /// its dependants stopped.
    fn died(&mut self, service: &Service, pid: Option<u32>) {
        self.streak = self.streak.saturating_add(1);
        self.is_failed = true;
        self.has_exec_alerted = false;
        let is_passive = service.mode == Mode::Passive;
        let retry_at = (!is_passive).then(|| Instant::now() + self.backoff());
        tracing::warn!(service = %self.name, pid, streak = self.streak, "process is not running");
        self.alert(
            Event::DoesNotExist,
            if is_passive {
                Action::Alert
            } else {
                Action::Restart
            },
            "process is not running".to_owned(),
        );
        self.phase = Phase::Down { retry_at };
        self.inner
            .record_death(&self.name, self.generation, !is_passive);
    }

    fn start_failed(&mut self) {
        self.streak = self.streak.saturating_add(1);
        if !self.has_exec_alerted {
            self.alert(
                Event::ExecutionFailed,
                Action::Alert,
                "failed to start".to_owned(),
            );
            self.has_exec_alerted = true;
            self.is_failed = true;
        }
        self.phase = Phase::Down {
            retry_at: Some(Instant::now() + self.backoff()),
        };
        self.update(|entry| {
            entry.state = ServiceState::Failing;
            entry.pid = None;
            entry.failure = Some(Failure::ExecutionFailed);
            entry.is_restart_pending = false;
        });
    }

    /// The process is gone after a stop; the second half of a restart starts it again.
    fn stopped(&mut self) {
        self.phase = Phase::Idle;
        self.is_failed = false;
        self.streak = 0;
        let restarts = std::mem::take(&mut self.restarts_after_stop);
        self.update(|entry| {
            entry.pid = None;
            entry.failure = None;
            if restarts {
                entry.state = ServiceState::Starting;
                entry.request = Some(Request::Start);
                entry.is_monitored = true;
            } else {
                entry.state = ServiceState::Stopped;
            }
        });
    }

    fn stop_failed(&mut self) {
        self.alert(
            Event::ExecutionFailed,
            Action::Alert,
            "failed to stop".to_owned(),
        );
        self.restarts_after_stop = false;
        self.phase = Phase::Idle;
        self.update(|entry| {
            entry.state = ServiceState::Unmonitored;
            entry.is_monitored = false;
            entry.has_stop_failed = true;
        });
    }

    fn backoff(&self) -> Duration {
        let config = &self.inner.config;
        backoff(
            self.streak,
            config.restart_backoff_initial,
            config.restart_backoff_max,
        )
    }

    /// Tells the watcher what to check for this service: the running pid, or whether a gone process
    /// comes back.
    fn sync_watch(&mut self) {
        let watch = match self.phase {
            Phase::Running { pid, .. } => Watch::Alive(pid),
            Phase::Down { .. } => Watch::Appear,
            _ => Watch::Nothing,
        };
        if watch != self.watch {
            self.watch = watch;
            self.inner.set_watch(&self.name, self.generation, watch);
        }
    }

    /// How long to sleep before the next round, unless woken first; `None` to sleep until woken.
    fn next_wait(&self) -> Option<Duration> {
        let cycle = self.inner.config.cycle;
        match self.phase {
            Phase::Starting { .. } | Phase::Stopping { .. } => Some(cycle.min(ACTION_POLL)),
            Phase::Down { retry_at: Some(at) } => {
                Some(cycle.min(at.saturating_duration_since(Instant::now())))
            }
            // A request waiting for a neighbour is woken by the neighbour's change; the cycle is a
            // backstop.
            _ if self.inner.has_request(&self.name, self.generation) => Some(cycle),
            _ => None,
        }
    }

    fn alert(&self, event: Event, action: Action, description: String) {
        self.inner.send_alert(event::alert(
            &self.name,
            event,
            action,
            description,
            SystemTime::now(),
        ));
    }

    fn update(&self, change: impl FnOnce(&mut crate::process::Entry)) {
        self.inner.update(&self.name, self.generation, change);
    }

    /// Reads the pidfile and asks the spawner whether its pid lives.
    async fn probe(&self, service: &Service) -> Probe {
        let Some(path) = service.pidfile.clone() else {
            return Probe::Missing;
        };
        let spawner = Arc::clone(&self.inner.spawner);
        tokio::task::spawn_blocking(move || pidfile::probe(&path, spawner.as_ref()))
            .await
            .unwrap_or(Probe::Missing)
    }

    /// Spawns `program` detached, as monit would run it.
    async fn run_program(
        &self,
        program: &Program,
        purpose: Purpose,
        pid: Option<u32>,
    ) -> Result<(), String> {
        let inner = Arc::clone(&self.inner);
        let name = self.name.clone();
        let program = program.clone();
        tokio::task::spawn_blocking(move || spawn_program(&inner, &name, &program, &purpose, pid))
            .await
            .map_err(|error| error.to_string())?
    }
}

/// `error: cause: cause`, for a log field.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where a service's programs write their output, if the supervisor keeps it.
pub(crate) fn output_file(dir: Option<&Path>, service: &str) -> Option<PathBuf> {
    platform::name::join(dir?, "service name", &format!("{service}.monit.log")).ok()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn the_first_restart_is_immediate_then_backoff_doubles_up_to_its_cap() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let cases: &[(u32, u64)] = &[
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 4),
            (7, 32),
            (8, 60),
            (40, 60),
            (u32::MAX, 60),
        ];
        for &(streak, secs) in cases {
            assert_eq!(
                backoff(streak, initial, max),
                Duration::from_secs(secs),
                "{streak}"
            );
        }
    }

    #[test]
    fn programs_run_with_monit_argv_path_and_variables() {
        let program = Program {
            command: "/var/vcap/jobs/web/bin/ctl start 'two words'".to_owned(),
            argv: vec![
                "/var/vcap/jobs/web/bin/ctl".to_owned(),
                "start".to_owned(),
                "two words".to_owned(),
            ],
            uid: None,
            gid: None,
            timeout_secs: None,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        let cmd = program_cmd(
            "web",
            &program,
            &Purpose::Start,
            None,
            Some("vm-1"),
            Path::new("/"),
            now,
        )
        .unwrap();
        assert_eq!(cmd.program, OsString::from("/var/vcap/jobs/web/bin/ctl"));
        assert_eq!(cmd.args, vec![OsString::from("start"), "two words".into()]);
        assert_eq!(cmd.dir.as_deref(), Some(Path::new("/")));
        let env: Vec<(String, String)> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        let expected: Vec<(String, String)> = [
            ("PATH", "/bin:/usr/bin:/sbin:/usr/sbin"),
            ("MONIT_DATE", "Thu, 29 Feb 2024 12:34:56 +0000"),
            ("MONIT_SERVICE", "web"),
            ("MONIT_EVENT", "Started"),
            ("MONIT_DESCRIPTION", "Started"),
            ("MONIT_PROCESS_PID", "0"),
            ("MONIT_HOST", "vm-1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(env, expected);

        let stop = program_cmd(
            "web",
            &program,
            &Purpose::Stop,
            Some(42),
            None,
            Path::new("/"),
            now,
        )
        .unwrap();
        assert!(
            stop.env
                .contains(&("MONIT_PROCESS_PID".into(), "42".into()))
        );
        assert!(stop.env.contains(&("MONIT_EVENT".into(), "Stopped".into())));
        assert!(!stop.env.iter().any(|(k, _)| k == "MONIT_HOST"));

        let exec = program_cmd(
            "web",
            &program,
            &Purpose::Exec {
                event: "Resource limit matched",
                description: "cpu usage of 99.0% matches resource limit [cpu usage>90.0%]".into(),
            },
            Some(42),
            None,
            Path::new("/"),
            now,
        )
        .unwrap();
        assert!(
            exec.env
                .contains(&("MONIT_EVENT".into(), "Resource limit matched".into()))
        );
        assert!(exec.env.contains(&(
            "MONIT_DESCRIPTION".into(),
            "cpu usage of 99.0% matches resource limit [cpu usage>90.0%]".into()
        )));

        let empty = Program {
            argv: Vec::new(),
            ..program
        };
        assert!(
            program_cmd(
                "web",
                &empty,
                &Purpose::Start,
                None,
                None,
                Path::new("/"),
                now
            )
            .is_none()
        );
    }

    #[test]
    fn program_output_goes_to_one_log_per_service() {
        let dir = Path::new("/var/vcap/sys/log/monit");
        assert_eq!(output_file(None, "web"), None);
        assert_eq!(
            output_file(Some(dir), "web"),
            Some(dir.join("web.monit.log"))
        );
        assert_eq!(output_file(Some(dir), "../escape"), None);
    }
}
