//! The built-in, monit-compatible process supervisor: what monit 5.2.5 does for the Go agent
//! (`jobsupervisor/monit_job_supervisor.go` drives it over HTTP), done inside the agent.
//!
//! A [`Supervisor`] holds the process checks of every job's monit file ([`Supervisor::replace_jobs`],
//! [`Supervisor::add_job`]); each check becomes a service with its own task (see `service.rs`)
//! that reads the service's pidfile every cycle ([`Config::cycle`], 1 s by default, not monit's
//! 10 s) and asks the [`Spawner`] whether the pid lives. The agent's operations map to monit's:
//!
//! | Go agent (`monit_job_supervisor.go`) | here |
//! |---|---|
//! | `Reload` after writing `monit/job/*.monitrc` | [`Supervisor::replace_jobs`] |
//! | `Start`: `monit start` each `vcap` service | [`Supervisor::start_all`]: dependencies first, `mode manual` skipped |
//! | `StopAndWait`: `monit stop -g vcap`, poll up to 5 min | [`Supervisor::stop_all`]: dependants first, waits until the processes are gone |
//! | `Unmonitor` before drain | [`Supervisor::unmonitor`]: stop watching, leave processes running |
//! | `Status` | [`Supervisor::job_state`], aggregated as Go does (reference §7) |
//! | `Processes` (`kilobytetotal`, `percenttotal`, `uptime`) | [`Supervisor::processes`], from `/proc` |
//! | SMTP alerts from monit | [`MonitAlert`]s on the bounded channel given to [`Supervisor::new`] |
//!
//! Like the Go agent, starting, stopping, unmonitoring and reporting concern the services of one
//! group ([`Config::group`], `vcap`); services outside it are watched once started (as a
//! dependency, say) but never reported.
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
//!   service); [`Supervisor::start`] starts one by name;
//! * resource and connection tests (`if totalmem > ...`, `if failed port ...`), restart limits,
//!   `every <n> cycles` and per-service `alert` statements are parsed but not honoured: each is
//!   logged once as not honoured when its file is loaded. A restarted dependency does not bounce
//!   its dependants as monit's `do_restart` does.

mod dependency;
mod event;
mod pidfile;
mod procfs;
mod service;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use platform::HostPaths;
use platform::cmd::Spawner;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::monit::{Condition, Kind, Mode, MonitFile, Service};
use crate::process::procfs::{CpuSample, ProcSnapshot};
use crate::supervisor::{Cpu, Memory, MonitAlert, Process, Uptime};

/// How the supervisor watches; [`Config::default`] has monit's and the Go agent's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How often each service's pidfile is checked (monit: 10 s; here 1 s).
    pub cycle: Duration,
    /// How long a start may take when its program has no `with timeout` (monit: 30 s).
    pub start_timeout: Duration,
    /// How long a stop may take when its program has no `with timeout` (monit: 30 s).
    pub stop_timeout: Duration,
    /// How long [`Supervisor::stop_all`] waits for every process to go (Go's `StopAndWait`: 5 min).
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

/// The supervisor: the services of every job, each watched by its own task.
///
/// Dropping it stops watching (the tasks end) but leaves every process running, as killing monit
/// does; a new supervisor given the same monit files adopts them.
#[derive(Debug)]
pub struct Supervisor {
    inner: Arc<Inner>,
    tasks: Mutex<JoinSet<()>>,
}

/// The state every service task shares with the supervisor.
#[derive(Debug)]
struct Inner {
    config: Config,
    spawner: Arc<dyn Spawner>,
    host: HostPaths,
    alerts: mpsc::Sender<MonitAlert>,
    registry: Mutex<Registry>,
    /// Bumped on every change of a service's state, for [`Supervisor::stop_all`] to wait on.
    changed: watch::Sender<u64>,
    is_shut_down: AtomicBool,
    dropped_alerts: AtomicU64,
    /// What was already logged as not honoured, so that reloads do not repeat it.
    reported: Mutex<HashSet<String>>,
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

/// One service: its definition, its task, and what the task and the supervisor share.
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
    /// The last CPU sample [`Supervisor::processes`] took, with its pid.
    cpu_sample: Option<(u32, CpuSample)>,
}

/// What the supervisor asks of a service's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Start,
    Stop,
}

/// What a task needs to know about its service and its neighbours at one moment.
#[derive(Debug, Clone)]
struct View {
    service: Arc<Service>,
    request: Option<Request>,
    is_monitored: bool,
    /// No service this one depends on is still starting.
    dependencies_settled: bool,
    /// No service that depends on this one is still stopping.
    dependants_settled: bool,
}

/// A process service to supervise, from a loaded monit file.
#[derive(Debug)]
struct Planned {
    job: String,
    service: Service,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cycle: Duration::from_secs(1),
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
        let (changed, _) = watch::channel(0);
        Supervisor {
            inner: Arc::new(Inner {
                config,
                spawner,
                host,
                alerts,
                registry: Mutex::new(Registry::default()),
                changed,
                is_shut_down: AtomicBool::new(false),
                dropped_alerts: AtomicU64::new(0),
                reported: Mutex::new(HashSet::new()),
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
        let planned = plan(&jobs)?;
        self.inner.report_unsupported(&jobs);

        let mut registry = self.inner.lock();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Forget tasks that ended (aborted by earlier reloads).
        while tasks.try_join_next().is_some() {}
        let mut previous = std::mem::take(&mut registry.entries);
        let mut order = Vec::with_capacity(planned.len());
        for Planned { job, service } in planned {
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
                    cpu_sample: None,
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

    /// Starts one service (whatever its mode or group) after the services it depends on.
    pub fn start(&self, service: &str) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        if !registry.entries.contains_key(service) {
            return Err(Error::UnknownService(service.to_owned()));
        }
        let targets = registry.dependencies_of(vec![service], true);
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
            for name in &targets {
                if let Some(entry) = registry.entries.get_mut(name) {
                    entry.request = Some(Request::Stop);
                    entry.is_monitored = false;
                    entry.has_stop_failed = false;
                    entry.notify.notify_one();
                }
            }
            targets
        };
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

    /// Stops watching the managed group's services without stopping their processes (before drain
    /// scripts run), as `monit unmonitor` does. Pending starts are dropped.
    pub fn unmonitor(&self) -> Result<()> {
        self.ensure_running()?;
        let mut registry = self.inner.lock();
        for entry in registry.entries.values_mut().filter(|e| e.is_in_group) {
            entry.is_monitored = false;
            if entry.request == Some(Request::Start) {
                entry.request = None;
            }
            entry.notify.notify_one();
        }
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
                d.request != Some(Request::Start) && d.state != ServiceState::Starting
            })
        });
        let dependants_settled = registry
            .entries
            .values()
            .filter(|e| e.service.depends_on.iter().any(|d| d == name))
            .all(|e| e.request != Some(Request::Stop) && e.state != ServiceState::Stopping);
        Some(View {
            service: Arc::clone(&entry.service),
            request: entry.request,
            is_monitored: entry.is_monitored,
            dependencies_settled,
            dependants_settled,
        })
    }

    /// Changes the entry of `name` (at `generation`) and tells whoever waits on changes.
    fn update(&self, name: &str, generation: u64, change: impl FnOnce(&mut Entry)) {
        let mut registry = self.lock();
        if let Some(entry) = registry
            .entries
            .get_mut(name)
            .filter(|e| e.generation == generation)
        {
            change(entry);
            drop(registry);
            self.changed();
        }
    }

    /// Takes `request` off the entry if it is still there. Taking a stop marks the service
    /// stopping in the same critical section, so that nobody waiting for it (its dependencies,
    /// [`Supervisor::stop_all`]) sees it settled before its stop program has run.
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
        if request == Request::Stop {
            entry.state = ServiceState::Stopping;
        }
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

    /// Logs, once each, what the monit files say that the supervisor does not honour.
    fn report_unsupported(&self, jobs: &[(String, MonitFile)]) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        for (job, file) in jobs {
            for unsupported in &file.unsupported {
                if reported.insert(format!("{job}\0{unsupported}")) {
                    tracing::warn!(job = %job, statement = %unsupported, "monit statement not honoured");
                }
            }
            for service in file.services.iter().filter(|s| s.kind == Kind::Process) {
                for test in &service.tests {
                    let is_honoured = matches!(test.condition, Condition::DoesNotExist)
                        && matches!(test.action, crate::monit::Action::Restart)
                        && test.rate.is_none();
                    if !is_honoured
                        && reported.insert(format!("{job}\0{}\0{}", service.name, test.line))
                    {
                        tracing::warn!(job = %job, service = %service.name, line = test.line, condition = ?test.condition, action = ?test.action, "monit test not honoured");
                    }
                }
                if let Some(every) = service.every_cycles {
                    if reported.insert(format!("{job}\0{}\0every", service.name)) {
                        tracing::warn!(job = %job, service = %service.name, every, "monit 'every <n> cycles' not honoured: checked every cycle");
                    }
                }
            }
        }
    }
}

impl Registry {
    /// The managed group's entries, in load order.
    fn group_entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.order
            .iter()
            .filter_map(|name| Some((name, self.entries.get(name)?)))
            .filter(|(_, entry)| entry.is_in_group)
    }

    /// `seeds` and the services they depend on, transitively; `mode manual` dependencies are left
    /// out unless `includes_manual`.
    fn dependencies_of(&self, seeds: Vec<&str>, includes_manual: bool) -> Vec<String> {
        dependency::closure(seeds, |name| {
            self.entries
                .get(name)
                .map(|entry| {
                    entry
                        .service
                        .depends_on
                        .iter()
                        .filter_map(|d| self.entries.get_key_value(d.as_str()))
                        .filter(|(_, d)| includes_manual || d.service.mode != Mode::Manual)
                        .map(|(name, _)| name.as_str())
                        .collect()
                })
                .unwrap_or_default()
        })
        .into_iter()
        .map(str::to_owned)
        .collect()
    }

    /// `seeds` and the services that depend on them, transitively.
    fn dependants_of(&self, seeds: Vec<&str>) -> Vec<String> {
        dependency::closure(seeds, |name| {
            self.entries
                .iter()
                .filter(|(_, entry)| entry.service.depends_on.iter().any(|d| d == name))
                .map(|(dependant, _)| dependant.as_str())
                .collect()
        })
        .into_iter()
        .map(str::to_owned)
        .collect()
    }

    /// Asks the tasks of `targets` to start their services.
    fn request_start(&mut self, targets: &[String]) {
        for name in targets {
            if let Some(entry) = self.entries.get_mut(name) {
                entry.request = Some(Request::Start);
                entry.is_monitored = true;
                entry.has_stop_failed = false;
                if entry.state != ServiceState::Running {
                    entry.state = ServiceState::Starting;
                }
                entry.notify.notify_one();
            }
        }
    }
}

/// The process services of `jobs`, validated: names unique across jobs, every dependency defined,
/// no dependency cycle.
fn plan(jobs: &[(String, MonitFile)]) -> Result<Vec<Planned>> {
    let mut defined: HashMap<&str, &str> = HashMap::new();
    for (job, file) in jobs {
        for service in &file.services {
            if let Some(first_job) = defined.insert(service.name.as_str(), job.as_str()) {
                return Err(Error::DuplicateService {
                    service: service.name.clone(),
                    first_job: first_job.to_owned(),
                    second_job: job.clone(),
                });
            }
        }
    }
    let mut edges: Vec<(&str, &[String])> = Vec::new();
    for (job, file) in jobs {
        for service in &file.services {
            if let Some(dependency) = service
                .depends_on
                .iter()
                .find(|d| !defined.contains_key(d.as_str()))
            {
                return Err(Error::UnknownDependency {
                    job: job.clone(),
                    service: service.name.clone(),
                    dependency: dependency.clone(),
                });
            }
            edges.push((service.name.as_str(), service.depends_on.as_slice()));
        }
    }
    if let Some(cycle) = dependency::find_cycle(&edges) {
        return Err(Error::DependencyCycle { cycle });
    }
    Ok(jobs
        .iter()
        .flat_map(|(job, file)| {
            file.services
                .iter()
                .filter(|s| s.kind == Kind::Process && s.pidfile.is_some())
                .map(move |service| Planned {
                    job: job.clone(),
                    service: service.clone(),
                })
        })
        .collect())
}

#[cfg(test)]
mod tests;
