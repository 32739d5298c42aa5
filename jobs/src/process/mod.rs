//! The built-in, monit-compatible process supervisor: what monit 5.2.5 does for the Go agent
//! (`jobsupervisor/monit_job_supervisor.go` drives it over HTTP), done inside the agent.
//!
//! A [`Supervisor`] holds the process checks of every job's monit file ([`Supervisor::replace_jobs`],
//! [`Supervisor::add_job`]); each check becomes a service with its own task (see `service.rs`) that
//! runs its programs and follows its process. One watcher (see `watch.rs`) checks every watched
//! process each [`Config::cycle`] (1 s by default, not monit's 10 s) in a single trip to the
//! blocking pool, and wakes a service's task only when its process died or came back; once per
//! [`Config::poll_cycle`] (monit's 10 s) it also reads the running services' pidfiles (a replaced
//! process: `pid changed`) and evaluates the resource tests and restart limits of the monit files
//! (see `resource.rs`). The agent's operations map to monit's:
//!
//! | Go agent (`monit_job_supervisor.go`) or operator (`monit` CLI) | here |
//! |---|---|
//! | `Reload` after writing `monit/job/*.monitrc`; `monit reload` | [`Supervisor::replace_jobs`] |
//! | `Start`: `monit start` each `vcap` service | [`Supervisor::start_all`]: dependencies first, `mode manual` skipped |
//! | `StopAndWait`: `monit stop -g vcap`, poll up to 5 min | [`Supervisor::stop_all`]: dependants first, waits until the processes are gone |
//! | `Unmonitor` before drain | [`Supervisor::unmonitor_all`]: stop watching, leave processes running |
//! | `monit start\|stop\|restart\|monitor\|unmonitor <name\|all>` | [`Supervisor::start`], [`Supervisor::stop`], [`Supervisor::restart`], [`Supervisor::monitor`], [`Supervisor::unmonitor`] |
//! | `Status` | [`Supervisor::job_state`], aggregated as Go does (reference §7) |
//! | `Processes` (`kilobytetotal`, `percenttotal`, `uptime`) | [`Supervisor::processes`], from `/proc` |
//! | `monit summary`, `monit status` | [`Supervisor::report`] |
//! | SMTP alerts from monit | [`MonitAlert`]s on the bounded channel given to [`Supervisor::new`] |
//!
//! Like the Go agent, [`Supervisor::start_all`], [`Supervisor::stop_all`],
//! [`Supervisor::unmonitor_all`] and the reports of `get_state` concern the services of one group
//! ([`Config::group`], `vcap`); services outside it are watched once started (as a dependency, say)
//! but never reported there. The operator's operations take a service name or `all` ([`Target`]),
//! as monit's command line does, and `all` is every service.
//!
//! `depends on` works as in monit's `control.c`: a start starts the services it depends on first; a
//! stop or unmonitor also stops (unmonitors) the services that depend on it, first; a restart, by
//! the operator, by a resource test or after a death, stops the watched services that depend on it
//! first and starts them again once it runs (`do_restart`/`do_depend`); `monitor` also watches the
//! services it depends on.
//!
//! Where we differ from monit 5.2.5, on purpose:
//!
//! * services are independent: a start that hangs, a pidfile that never appears or a slow stop
//!   delays no other service's checks or starts (monit's serial scheduler made one broken job hold
//!   every other check for 30 s, `reference/peers.md` §3.4);
//! * restarts back off exponentially (1 s, 2 s, 4 s, ... up to 60 s by default) instead of
//!   retrying every cycle;
//! * a service the supervisor has just loaded is not started on its own: if its pidfile names a live
//!   process it is adopted and watched, otherwise it stays unmonitored until [`Supervisor::start_all`].
//!   Job processes live in their own process groups, so they outlive an agent restart and the next
//!   agent adopts them without restarting them;
//! * `mode manual` services are not started by [`Supervisor::start_all`] (Go starts every `vcap`
//!   service); [`Supervisor::start`] starts them by name or with `all`;
//! * a death or a restart bounces only the dependants that are watched; monit starts every
//!   dependant again;
//! * [`Supervisor::stop`] waits until the processes are gone (monit's command returns at once);
//! * connection tests (`if failed port ...`), `every <n> cycles`, per-service `alert` statements,
//!   `start` actions and recovery actions other than `alert` are parsed but not honoured: each is
//!   logged once as not honoured when its file is loaded.

mod dependency;
mod event;
mod pidfile;
mod procfs;
mod registry;
mod report;
mod resource;
mod service;
mod watch;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use platform::HostPaths;
use platform::cmd::Spawner;
use tokio::sync::{Notify, mpsc, watch as tokio_watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::monit::{Mode, MonitFile, Service};
use crate::process::procfs::{CpuSample, CpuTimes, ProcSnapshot};
use crate::process::resource::Checks;
use crate::process::watch::Watch;
use crate::supervisor::{Cpu, Memory, MonitAlert, Process, Uptime};

pub use report::{Failure, Monitor, Pending, ProcessReport, Report, ServiceReport, SystemReport};

/// How the supervisor watches; [`Config::default`] has monit's and the Go agent's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How often every watched process is checked (monit: 10 s; here 1 s).
    pub cycle: Duration,
    /// Monit's poll cycle, the unit of `for <n> cycles` and `<n> restarts within <m> cycles` in monit
    /// files: resource tests and restart limits are evaluated once per poll cycle (BOSH stemcells
    /// run monit with `set daemon 10`, so release authors count in 10 s cycles).
    pub poll_cycle: Duration,
    /// How long a start may take when its program has no `with timeout` (monit: 30 s).
    pub start_timeout: Duration,
    /// How long a stop may take when its program has no `with timeout` (monit: 30 s).
    pub stop_timeout: Duration,
    /// How long [`Supervisor::stop_all`] and [`Supervisor::stop`] wait for the processes to go (Go's
    /// `StopAndWait`: 5 min).
    pub stop_all_timeout: Duration,
    /// The delay before the second restart in a row (the first goes at once); it doubles with each
    /// further failure.
    pub restart_backoff_initial: Duration,
    /// The longest delay between restarts. A process that has run this long resets the back-off.
    pub restart_backoff_max: Duration,
    /// The group the agent manages (`vcap`).
    pub group: String,
    /// Where start and stop programs' output goes, one `<service>.monit.log` per service; `None`
    /// discards it, as monit does.
    pub output_dir: Option<PathBuf>,
}

/// The state of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Its process runs and is watched.
    Running,
    /// It is being started (or was just loaded and not checked yet: monit's "initializing").
    Starting,
    /// It is watched but its process is not running (died, or a start failed); a restart is due.
    Failing,
    /// Its stop program ran; waiting for the process to go (monit's "stop pending").
    Stopping,
    /// It was stopped and its process is gone.
    Stopped,
    /// It is not watched: never started, unmonitored, `mode manual`, or a stop failed.
    Unmonitored,
}

/// The instance's overall state, as `get_state` and heartbeats report it (`job_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Every managed service runs (or there are none).
    Running,
    /// Some managed service is not running or not watched.
    Failing,
    /// Some managed service is starting.
    Starting,
    /// The agent stopped the jobs (its `monit/stopped` marker).
    Stopped,
    /// The supervisor cannot tell (it was shut down; Go: monit unreachable).
    Unknown,
}

/// One service as the supervisor sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The job whose monit file defines it.
    pub job: String,
    /// The service name.
    pub name: String,
    /// Its state.
    pub state: ServiceState,
    /// The pid of its process, while one is known.
    pub pid: Option<u32>,
    /// Whether it belongs to the managed group ([`Config::group`]).
    pub is_in_group: bool,
}

/// Something in a loaded monit file that the supervisor does not do; logged once when loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHonoured {
    /// The job whose monit file says it.
    pub job: String,
    /// The service it belongs to, if any.
    pub service: Option<String>,
    /// The 1-based line (of the `check` for `every <n> cycles`).
    pub line: usize,
    /// What it is.
    pub what: String,
}

/// Which services an operator's operation concerns: monit's `<name|all>` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `all`: every supervised service.
    All,
    /// One service.
    Service(String),
}

/// Why a supervisor operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Two jobs' monit files check the same service name (monit refuses its configuration).
    #[error("service {service} is defined by job {first_job} and by job {second_job}")]
    DuplicateService {
        /// The service.
        service: String,
        /// The job that defined it first.
        first_job: String,
        /// The job that defined it again.
        second_job: String,
    },
    /// A service depends on a service no monit file defines.
    #[error("service {service} of job {job} depends on {dependency}, which no job defines")]
    UnknownDependency {
        /// The job.
        job: String,
        /// The service.
        service: String,
        /// The missing dependency.
        dependency: String,
    },
    /// `depends on` forms a cycle (monit refuses it at start-up).
    #[error("services depend on each other in a cycle: {}", .cycle.join(" -> "))]
    DependencyCycle {
        /// The cycle, its first service repeated at the end.
        cycle: Vec<String>,
    },
    /// No loaded monit file checks this service.
    #[error("service {0} is not supervised")]
    UnknownService(String),
    /// Services can only be watched from inside a tokio runtime.
    #[error("the supervisor needs a tokio runtime to watch its services")]
    NoRuntime,
    /// [`Supervisor::shutdown`] was called.
    #[error("the supervisor is shut down")]
    ShutDown,
    /// Stop programs failed, or the processes outlived their stop timeouts.
    #[error("stopping services {} failed", .services.join(", "))]
    StopFailed {
        /// The services, in load order.
        services: Vec<String>,
    },
    /// [`Config::stop_all_timeout`] passed with services still stopping.
    #[error("timed out waiting for services {} to stop after {} s", .services.join(", "), .timeout.as_secs())]
    StopTimedOut {
        /// The services still stopping, in load order.
        services: Vec<String>,
        /// The timeout.
        timeout: Duration,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The supervisor: the services of every job, each followed by its own task, and one watcher.
///
/// Dropping it stops watching (the tasks end) but leaves every process running, as killing monit
/// does; a new supervisor given the same monit files adopts them.
#[derive(Debug)]
pub struct Supervisor {
    inner: Arc<Inner>,
    tasks: Mutex<JoinSet<()>>,
}

/// The state every service task and the watcher share with the supervisor.
#[derive(Debug)]
struct Inner {
    config: Config,
    spawner: Arc<dyn Spawner>,
    host: HostPaths,
    alerts: mpsc::Sender<MonitAlert>,
    registry: Mutex<Registry>,
    /// Bumped on every change of a service's state, for [`Supervisor::stop_all`] to wait on.
    changed: tokio_watch::Sender<u64>,
    is_shut_down: AtomicBool,
    is_watching: AtomicBool,
    dropped_alerts: AtomicU64,
    /// What was already logged as not honoured, so that reloads do not repeat it.
    reported: Mutex<HashSet<String>>,
    /// What the loaded monit files say that the supervisor does not do.
    not_honoured: Mutex<Vec<NotHonoured>>,
    /// When the supervisor began (monit's daemon uptime).
    started: Instant,
    /// The host's CPU counters at the previous [`Supervisor::report`].
    host_cpu: Mutex<Option<CpuTimes>>,
}

#[derive(Debug, Default)]
struct Registry {
    /// The monit files loaded, by job.
    jobs: Vec<(String, MonitFile)>,
    /// Service names in load order.
    order: Vec<String>,
    entries: HashMap<String, Entry>,
    next_generation: u64,
}

/// One service: its definition, its task, and what the task, the watcher and the supervisor share.
#[derive(Debug)]
struct Entry {
    job: String,
    service: Arc<Service>,
    is_in_group: bool,
    /// Tells the task apart from a task of an earlier definition of the same name.
    generation: u64,
    notify: Arc<Notify>,
    task: Option<AbortHandle>,
    state: ServiceState,
    pid: Option<u32>,
    /// Whether the service is watched (monit's monitoring flag); the task restarts only then.
    is_monitored: bool,
    /// What the supervisor asked the task to do next.
    request: Option<Request>,
    has_stop_failed: bool,
    /// Why a failing service fails (the task's last failure).
    failure: Option<Failure>,
    /// The process died and its restart is due: services that depend on it wait before starting.
    is_restart_pending: bool,
    /// What the watcher checks for the task.
    watch: Watch,
    /// Resource tests and restart limits, evaluated by the watcher.
    checks: Checks,
    /// The last CPU sample [`Supervisor::processes`] took, with its pid.
    cpu_sample: Option<(u32, CpuSample)>,
    /// The last CPU samples (process, tree) [`Supervisor::report`] took, with their pid.
    report_sample: Option<(u32, CpuSample, CpuSample)>,
}

/// What the supervisor asks of a service's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// Start it (after the services it depends on).
    Start,
    /// Stop it (after the services that depend on it) and stop watching it.
    Stop,
    /// Stop it (after its dependants), then start it again.
    Restart,
    /// Watch it again: adopt its process, or restart it.
    Monitor,
}

/// What a task needs to know about its service and its neighbours at one moment.
#[derive(Debug, Clone)]
struct View {
    service: Arc<Service>,
    request: Option<Request>,
    is_monitored: bool,
    /// No service this one depends on is about to change: none has a request pending, is starting
    /// or stopping, or waits to be restarted.
    dependencies_settled: bool,
    /// No service that depends on this one is still to be stopped or stopping.
    dependants_settled: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cycle: Duration::from_secs(1),
            poll_cycle: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(30),
            stop_all_timeout: Duration::from_secs(5 * 60),
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(60),
            group: "vcap".to_owned(),
            output_dir: None,
        }
    }
}

impl Target {
    /// Monit's reading of a command-line argument: `all`, or the name of one service.
    pub fn parse(name: &str) -> Target {
        if name == "all" {
            Target::All
        } else {
            Target::Service(name.to_owned())
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::Service(name) => f.write_str(name),
        }
    }
}

impl ServiceState {
    /// The state as `get_state` reports a process (Go's `jobsupervisor/monit/status.go`): watched
    /// services are `running`, `starting` or `failing`; unwatched ones are `unknown` (monit's
    /// `monitor` 0).
    pub fn status(self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::Starting => "starting",
            ServiceState::Failing => "failing",
            ServiceState::Stopping | ServiceState::Stopped | ServiceState::Unmonitored => "unknown",
        }
    }

    /// Whether the service is watched (monit's `monitor` is not 0).
    pub fn is_monitored(self) -> bool {
        matches!(
            self,
            ServiceState::Running | ServiceState::Starting | ServiceState::Failing
        )
    }
}

impl JobState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Failing => "failing",
            JobState::Starting => "starting",
            JobState::Stopped => "stopped",
            JobState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The overall state of the managed services, exactly as Go's `monitJobSupervisor.Status`: the
/// `stopped` marker wins; then any service starting makes `starting`; then any service not watched
/// or not running makes `failing`; otherwise (and with no services) `running`.
pub fn aggregate(states: impl IntoIterator<Item = ServiceState>, is_stopped: bool) -> JobState {
    if is_stopped {
        return JobState::Stopped;
    }
    let mut job_state = JobState::Running;
    for state in states {
        if state.status() == "starting" {
            return JobState::Starting;
        }
        if !state.is_monitored() || state.status() != "running" {
            job_state = JobState::Failing;
        }
    }
    job_state
}

impl Supervisor {
    /// A supervisor with no services. Programs run through `spawner`; `/proc` is read under `host`;
    /// alerts go to `alerts` (an alert that does not fit is dropped and counted, never waited for).
    pub fn new(
        config: Config,
        spawner: Arc<dyn Spawner>,
        host: HostPaths,
        alerts: mpsc::Sender<MonitAlert>,
    ) -> Supervisor {
        let (changed, _) = tokio_watch::channel(0);
        Supervisor {
            inner: Arc::new(Inner {
                config,
                spawner,
                host,
                alerts,
                registry: Mutex::new(Registry::default()),
                changed,
                is_shut_down: AtomicBool::new(false),
                is_watching: AtomicBool::new(false),
                dropped_alerts: AtomicU64::new(0),
                reported: Mutex::new(HashSet::new()),
                not_honoured: Mutex::new(Vec::new()),
                started: Instant::now(),
                host_cpu: Mutex::new(None),
            }),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Adds (or replaces) the monit file of `job_name`, keeping the other jobs'.
    pub fn add_job(&self, job_name: &str, file: MonitFile) -> Result<()> {
        let mut jobs = self.inner.lock().jobs.clone();
        match jobs.iter_mut().find(|(job, _)| job == job_name) {
            Some((_, existing)) => *existing = file,
            None => jobs.push((job_name.to_owned(), file)),
        }
        self.replace_jobs(jobs)
    }

    /// Supervises exactly the process checks of `jobs` (job name, its monit file), as a monit
    /// reload does. Everything is validated first (duplicate services, unknown dependencies,
    /// dependency cycles); on error nothing changes.
    ///
    /// A service whose definition did not change keeps its state. A new or changed one is checked at
    /// once: a live process is adopted (watched, not restarted); otherwise it stays unmonitored
    /// until started, unless it was watched before the change. A service that is gone is no longer
    /// watched; its process is left alone. Must be called inside a tokio runtime.
    pub fn replace_jobs(&self, jobs: Vec<(String, MonitFile)>) -> Result<()> {
        self.ensure_running()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let planned = registry::plan(&jobs)?;
        self.inner.report_unsupported(&jobs);

        let mut registry = self.inner.lock();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Forget tasks that ended (aborted by earlier reloads).
        while tasks.try_join_next().is_some() {}
        if !self.inner.is_watching.swap(true, Ordering::SeqCst) {
            tasks.spawn_on(watch::run(Arc::clone(&self.inner)), &runtime);
        }
        let mut previous = std::mem::take(&mut registry.entries);
        let mut order = Vec::with_capacity(planned.len());
        for registry::Planned { job, service } in planned {
            let name = service.name.clone();
            order.push(name.clone());
            let mut was_monitored = false;
            if let Some(entry) = previous.remove(&name) {
                if entry.job == job && *entry.service == service {
                    registry.entries.insert(name, entry);
                    continue;
                }
                if let Some(task) = &entry.task {
                    task.abort();
                }
                was_monitored = entry.is_monitored;
            }
            registry.next_generation += 1;
            let generation = registry.next_generation;
            let notify = Arc::new(Notify::new());
            let task = tasks.spawn_on(
                service::run(
                    Arc::clone(&self.inner),
                    name.clone(),
                    generation,
                    Arc::clone(&notify),
                ),
                &runtime,
            );
            let is_in_group = service.groups.contains(&self.inner.config.group);
            let checks = Checks::from_service(&service);
            registry.entries.insert(
                name,
                Entry {
                    job,
                    service: Arc::new(service),
                    is_in_group,
                    generation,
                    notify,
                    task: Some(task),
                    state: ServiceState::Starting,
                    pid: None,
                    is_monitored: was_monitored,
                    // A changed service that was watched keeps being watched: it is started
                    // (or its live process adopted) like any other.
                    request: was_monitored.then_some(Request::Start),
                    has_stop_failed: false,
                    failure: None,
                    is_restart_pending: false,
                    watch: Watch::Nothing,
                    checks,
                    cpu_sample: None,
                    report_sample: None,
                },
            );
        }
        for (name, entry) in previous {
            if let Some(task) = &entry.task {
                task.abort();
            }
            tracing::info!(service = %name, job = %entry.job, "service no longer supervised; its process is left alone");
        }
        registry.order = order;
        registry.jobs = jobs;
        drop(tasks);
        drop(registry);
        self.inner.changed();
        Ok(())
    }

    /// Starts every service of the managed group except `mode manual` ones, each after the services
    /// it depends on (which are started too), and watches them. Returns at once, as monit's HTTP
    /// `start` does; [`Supervisor::job_state`] tells when they run. A running service is left as it
    /// is; a failing one is started again without waiting for its back-off.
    pub fn start_all(&self) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        let seeds: Vec<&str> = registry
            .order
            .iter()
            .filter(|name| {
                registry
                    .entries
                    .get(*name)
                    .is_some_and(|e| e.is_in_group && e.service.mode != Mode::Manual)
            })
            .map(String::as_str)
            .collect();
        let targets = registry.dependencies_of(seeds, false);
        registry.request_start(&targets);
        drop(registry);
        self.inner.changed();
        Ok(())
    }

    /// `monit start <name|all>`: starts the service (whatever its mode or group; `all`: every
    /// service) after the services it depends on, which are started too, and watches them. Returns
    /// at once.
    pub fn start(&self, target: &Target) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        let names = registry.resolve(target)?;
        let targets = registry.dependencies_of(names.iter().map(String::as_str).collect(), true);
        registry.request_start(&targets);
        drop(registry);
        self.inner.changed();
        Ok(())
    }

    /// Stops every service of the managed group, each after the services that depend on it (which
    /// are stopped too), with their stop programs, and waits until their processes are gone or
    /// [`Config::stop_all_timeout`] passes. The services are no longer watched. Writing the
    /// `stopped` marker is the caller's business.
    pub async fn stop_all(&self) -> Result<()> {
        self.ensure_running()?;
        let targets = {
            let mut registry = self.inner.lock();
            let seeds: Vec<&str> = registry
                .order
                .iter()
                .filter(|name| registry.entries.get(*name).is_some_and(|e| e.is_in_group))
                .map(String::as_str)
                .collect();
            let targets = registry.dependants_of(seeds);
            registry.request_stop(&targets);
            targets
        };
        self.stop_and_wait(targets).await
    }

    /// `monit stop <name|all>`: stops the service (`all`: every service) after the services that
    /// depend on it, which are stopped too, and waits until their processes are gone, as
    /// [`Supervisor::stop_all`] does.
    pub async fn stop(&self, target: &Target) -> Result<()> {
        self.ensure_running()?;
        let targets = {
            let mut registry = self.inner.lock();
            let names = registry.resolve(target)?;
            let targets = registry.dependants_of(names.iter().map(String::as_str).collect());
            registry.request_stop(&targets);
            targets
        };
        self.stop_and_wait(targets).await
    }

    /// `monit restart <name|all>`: stops the watched services that depend on the service, then the
    /// service itself, starts it again (after the services it depends on, which are started if they
    /// do not run) and then its dependants. A service that does not run is simply started. Returns
    /// at once.
    pub fn restart(&self, target: &Target) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        let names = registry.resolve(target)?;
        let seeds: Vec<&str> = names.iter().map(String::as_str).collect();
        let dependencies: Vec<String> = registry
            .dependencies_of(seeds.clone(), true)
            .into_iter()
            .filter(|name| !names.contains(name))
            .filter(|name| {
                registry
                    .entries
                    .get(name)
                    .is_some_and(|e| e.state != ServiceState::Running)
            })
            .collect();
        registry.request_start(&dependencies);
        let targets: Vec<String> = registry
            .dependants_of(seeds)
            .into_iter()
            .filter(|name| {
                names.contains(name) || registry.entries.get(name).is_some_and(|e| e.is_monitored)
            })
            .collect();
        registry.request_restart(&targets);
        drop(registry);
        self.inner.changed();
        Ok(())
    }

    /// `monit monitor <name|all>`: watches the service again, and the services it depends on. A live
    /// process is adopted; a missing one is `does not exist` and restarted, as monit's next cycle
    /// would. Returns at once.
    pub fn monitor(&self, target: &Target) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        let names = registry.resolve(target)?;
        let targets = registry.dependencies_of(names.iter().map(String::as_str).collect(), true);
        registry.request_monitor(&targets);
        drop(registry);
        self.inner.changed();
        Ok(())
    }

    /// `monit unmonitor <name|all>`: stops watching the service and the services that depend on it,
    /// leaving their processes running. Pending starts are dropped.
    pub fn unmonitor(&self, target: &Target) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        let names = registry.resolve(target)?;
        let targets = registry.dependants_of(names.iter().map(String::as_str).collect());
        registry.unmonitor(&targets);
        drop(registry);
        self.inner.changed();
        Ok(())
    }

    /// Stops watching the managed group's services without stopping their processes (before drain
    /// scripts run), as the Go agent's `monit unmonitor` of the group does. Pending starts are
    /// dropped.
    pub fn unmonitor_all(&self) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        let targets: Vec<String> = registry
            .group_entries()
            .map(|(name, _)| name.clone())
            .collect();
        registry.unmonitor(&targets);
        drop(registry);
        self.inner.changed();
        Ok(())
    }

    /// The overall state of the managed group ([`aggregate`]); `is_stopped` says whether the
    /// agent's `monit/stopped` marker exists. [`JobState::Unknown`] after a shutdown.
    pub fn job_state(&self, is_stopped: bool) -> JobState {
        if self.inner.is_shut_down.load(Ordering::SeqCst) {
            return JobState::Unknown;
        }
        let registry = self.inner.lock();
        let states: Vec<ServiceState> = registry
            .group_entries()
            .map(|(_, entry)| entry.state)
            .collect();
        aggregate(states, is_stopped)
    }

    /// Every supervised service (of any group), in load order.
    pub fn services(&self) -> Vec<ServiceStatus> {
        let registry = self.inner.lock();
        registry
            .order
            .iter()
            .filter_map(|name| {
                let entry = registry.entries.get(name)?;
                Some(ServiceStatus {
                    job: entry.job.clone(),
                    name: name.clone(),
                    state: entry.state,
                    pid: entry.pid,
                    is_in_group: entry.is_in_group,
                })
            })
            .collect()
    }

    /// The managed group's services as `get_state` reports them, in load order: state, and for a
    /// running process its uptime, and the memory and CPU of it and its descendants (monit's
    /// totals). CPU is measured since the previous call (since the process started, the first
    /// time). Blocking: it reads `/proc`.
    pub fn processes(&self) -> Vec<Process> {
        let rows: Vec<(String, ServiceState, Option<u32>)> = self
            .inner
            .lock()
            .group_entries()
            .map(|(name, entry)| (name.clone(), entry.state, entry.pid))
            .collect();
        let is_any_running = rows
            .iter()
            .any(|(_, state, pid)| *state == ServiceState::Running && pid.is_some());
        let snapshot = if is_any_running {
            ProcSnapshot::read(&self.inner.host)
        } else {
            ProcSnapshot::default()
        };
        let mut processes = Vec::with_capacity(rows.len());
        for (name, state, pid) in rows {
            let usage = pid
                .filter(|_| state == ServiceState::Running)
                .and_then(|pid| Some((pid, snapshot.usage(&self.inner.host, pid)?)));
            let mut process = Process {
                name: name.clone(),
                state: state.status().to_owned(),
                uptime: Uptime { secs: 0 },
                mem: Memory {
                    kb: 0,
                    percent: 0.0,
                },
                cpu: Cpu { total: 0.0 },
            };
            if let Some((pid, usage)) = usage {
                let before =
                    self.inner
                        .swap_cpu_sample(&name, pid, usage.cpu)
                        .unwrap_or(CpuSample {
                            ticks: 0,
                            at_secs: usage.started_at_secs,
                        });
                process.uptime.secs = usage.uptime_secs;
                process.mem = Memory {
                    kb: usage.mem_kb,
                    percent: usage.mem_percent,
                };
                process.cpu.total = procfs::cpu_percent(usage.cpu, before, snapshot.cpus());
            }
            processes.push(process);
        }
        processes
    }

    /// What the loaded monit files say that the supervisor does not do (each is logged once as not
    /// honoured), in job and line order.
    pub fn not_honoured(&self) -> Vec<NotHonoured> {
        self.inner
            .not_honoured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What `monit summary` and `monit status` show: every service (of any group) in load order with
    /// monit's view of it and, for a watched running process, its figures; the host's figures; the
    /// supervisor's uptime. CPU shares are measured since the previous report (since the process
    /// started, or since boot for the host, the first time). Blocking: it reads `/proc`.
    pub fn report(&self) -> Report {
        report::build(&self.inner)
    }

    /// Stops watching for good: every task ends, processes keep running. Later operations fail
    /// with [`Error::ShutDown`] and [`Supervisor::job_state`] is [`JobState::Unknown`].
    pub async fn shutdown(&self) {
        self.inner.is_shut_down.store(true, Ordering::SeqCst);
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.inner.changed();
    }

    fn ensure_running(&self) -> Result<()> {
        if self.inner.is_shut_down.load(Ordering::SeqCst) {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// Waits until the stops of `targets` are done or [`Config::stop_all_timeout`] passes.
    async fn stop_and_wait(&self, targets: Vec<String>) -> Result<()> {
        self.inner.changed();
        let mut changed = self.inner.changed.subscribe();
        let timeout = self.inner.config.stop_all_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let (pending, failed) = {
                let registry = self.inner.lock();
                let in_order = |keep: &dyn Fn(&Entry) -> bool| -> Vec<String> {
                    registry
                        .order
                        .iter()
                        .filter(|name| targets.contains(*name))
                        .filter(|name| registry.entries.get(*name).is_some_and(keep))
                        .cloned()
                        .collect()
                };
                (
                    in_order(&|e| {
                        e.request == Some(Request::Stop) || e.state == ServiceState::Stopping
                    }),
                    in_order(&|e| e.has_stop_failed),
                )
            };
            if pending.is_empty() {
                return if failed.is_empty() {
                    Ok(())
                } else {
                    Err(Error::StopFailed { services: failed })
                };
            }
            self.ensure_running()?;
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::StopTimedOut {
                    services: pending,
                    timeout,
                });
            }
            let wait = (deadline - now).min(self.inner.config.cycle);
            let _ = tokio::time::timeout(wait, changed.changed()).await;
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changed.send_modify(|generation| {
            *generation = generation.wrapping_add(1);
        });
    }

    /// What the task of `name` (at `generation`) needs to know; `None` once it was replaced.
    fn view(&self, name: &str, generation: u64) -> Option<View> {
        let registry = self.lock();
        let entry = registry
            .entries
            .get(name)
            .filter(|e| e.generation == generation)?;
        let dependencies_settled = entry.service.depends_on.iter().all(|dependency| {
            registry.entries.get(dependency).is_none_or(|d| {
                d.request.is_none()
                    && !d.is_restart_pending
                    && !matches!(d.state, ServiceState::Starting | ServiceState::Stopping)
            })
        });
        let dependants_settled = registry
            .entries
            .values()
            .filter(|e| e.service.depends_on.iter().any(|d| d == name))
            .all(|e| {
                !matches!(e.request, Some(Request::Stop | Request::Restart))
                    && e.state != ServiceState::Stopping
            });
        Some(View {
            service: Arc::clone(&entry.service),
            request: entry.request,
            is_monitored: entry.is_monitored,
            dependencies_settled,
            dependants_settled,
        })
    }

    /// Whether the task of `name` (at `generation`) has a request waiting.
    fn has_request(&self, name: &str, generation: u64) -> bool {
        self.lock()
            .entries
            .get(name)
            .is_some_and(|e| e.generation == generation && e.request.is_some())
    }

    /// Changes the entry of `name` (at `generation`) and tells whoever waits on changes: when its
    /// state changed, the tasks with a request waiting (which may wait for this service).
    fn update(&self, name: &str, generation: u64, change: impl FnOnce(&mut Entry)) {
        let mut registry = self.lock();
        let Some(entry) = registry
            .entries
            .get_mut(name)
            .filter(|e| e.generation == generation)
        else {
            return;
        };
        let before = (entry.state, entry.request, entry.is_restart_pending);
        change(entry);
        if (entry.state, entry.request, entry.is_restart_pending) != before {
            registry.notify_waiting();
        }
        drop(registry);
        self.changed();
    }

    /// Records what the watcher should check for the task of `name`.
    fn set_watch(&self, name: &str, generation: u64, watch: Watch) {
        if let Some(entry) = self
            .lock()
            .entries
            .get_mut(name)
            .filter(|e| e.generation == generation)
        {
            entry.watch = watch;
        }
    }

    /// Records the death of `name`'s process: failing, and unless `restarts` is false (passive
    /// mode) a restart is due, and the watched services that depend on it are stopped
    /// to be started again after it (monit's `do_restart`). One critical section, so that no
    /// dependant starts again before the restart is marked pending.
    fn record_death(&self, name: &str, generation: u64, restarts: bool) {
        let mut registry = self.lock();
        let Some(entry) = registry
            .entries
            .get_mut(name)
            .filter(|e| e.generation == generation)
        else {
            return;
        };
        entry.state = ServiceState::Failing;
        entry.pid = None;
        entry.failure = Some(Failure::DoesNotExist);
        entry.is_restart_pending = restarts;
        if restarts {
            registry.bounce_dependants(name);
        }
        registry.notify_waiting();
        drop(registry);
        self.changed();
    }

    /// Takes `request` off the entry if it is still there. Taking a stop (or restart) marks the
    /// service stopping in the same critical section, so that nobody waiting for it (its
    /// dependencies, [`Supervisor::stop_all`]) sees it settled before its stop program has run.
    fn take_request(&self, name: &str, generation: u64, request: Request) -> bool {
        let mut registry = self.lock();
        let Some(entry) = registry
            .entries
            .get_mut(name)
            .filter(|e| e.generation == generation && e.request == Some(request))
        else {
            return false;
        };
        entry.request = None;
        if matches!(request, Request::Stop | Request::Restart) {
            entry.state = ServiceState::Stopping;
        }
        registry.notify_waiting();
        drop(registry);
        self.changed();
        true
    }

    /// Sends `alert` without waiting: a full channel drops it (logged once, then counted).
    fn send_alert(&self, alert: MonitAlert) {
        match self.alerts.try_send(alert) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(alert)) => {
                let dropped = self.dropped_alerts.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped == 1 || dropped.is_power_of_two() {
                    tracing::warn!(service = %alert.service, event = %alert.event, dropped, "alert channel full: alert dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(alert)) => {
                tracing::debug!(service = %alert.service, event = %alert.event, "nobody receives alerts");
            }
        }
    }

    /// Replaces the CPU sample of `name` with `sample` (for `pid`) and returns the previous one if
    /// it was for the same pid.
    fn swap_cpu_sample(&self, name: &str, pid: u32, sample: CpuSample) -> Option<CpuSample> {
        let mut registry = self.lock();
        let entry = registry.entries.get_mut(name)?;
        let previous = entry.cpu_sample.replace((pid, sample));
        previous.filter(|(p, _)| *p == pid).map(|(_, s)| s)
    }

    fn output_file(&self, service: &str) -> Option<PathBuf> {
        service::output_file(self.config.output_dir.as_deref(), service)
    }

    /// Logs, once each, what the monit files say that the supervisor does not honour, and keeps the
    /// list for [`Supervisor::not_honoured`].
    fn report_unsupported(&self, jobs: &[(String, MonitFile)]) {
        let list = registry::not_honoured(jobs);
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        for item in &list {
            let key = format!(
                "{}\0{}\0{}\0{}",
                item.job,
                item.service.as_deref().unwrap_or_default(),
                item.line,
                item.what
            );
            if reported.insert(key) {
                tracing::warn!(job = %item.job, service = item.service.as_deref().unwrap_or_default(), line = item.line, what = %item.what, "monit statement not honoured");
            }
        }
        drop(reported);
        *self.not_honoured.lock().unwrap_or_else(|e| e.into_inner()) = list;
    }
}

#[cfg(test)]
mod tests;
