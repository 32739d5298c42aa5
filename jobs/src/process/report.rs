//! What `monit summary` and `monit status` show (monit 5.2.5's `src/http/cervlet.c`,
//! `status_service_txt`): each service's monitoring state, its first failure and its pending
//! action, which the operator command turns into monit's words (`running`, `not monitored - stop
//! pending`, `Does not exist`, ...), and, for a watched running process, the figures of the
//! `status` block; plus the host's figures for monit's `System` service.
//!
//! The figures come from `/proc` as in `procfs.rs`: the process's own memory and CPU and the totals
//! of its tree, its parent and its number of descendants. CPU shares are measured since the
//! previous report.

use std::time::{Duration, SystemTime};

use crate::process::procfs::{self, CpuSample, HostSample, ProcSnapshot};
use crate::process::{Entry, Inner, Request, ServiceState};

/// Everything `monit summary` and `monit status` show.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// How long the supervisor has run (monit's daemon uptime).
    pub uptime: Duration,
    /// The host's name (monit's system service is `system_<hostname>`).
    pub hostname: String,
    /// When the figures were read.
    pub collected: SystemTime,
    /// Every service, in load order.
    pub services: Vec<ServiceReport>,
    /// The host's figures.
    pub system: SystemReport,
}

/// One service in a [`Report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceReport {
    /// The service name.
    pub name: String,
    /// Monit's monitoring state.
    pub monitor: Monitor,
    /// The failure monit would show first, if any.
    pub failure: Option<Failure>,
    /// The action waiting to be done, if any.
    pub pending: Option<Pending>,
    /// The process's figures, for a watched running process (monit's `Util_hasServiceStatus`).
    pub process: Option<ProcessReport>,
}

/// Monit's monitoring state (`monitornames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// Not watched.
    Not,
    /// Watched.
    Yes,
    /// Being started or just loaded: not checked yet.
    Init,
}

/// A failure of a watched service, in the order monit's event table lists them (the first present
/// is the one shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// A start or stop program failed or timed out.
    ExecutionFailed,
    /// The process is not running.
    DoesNotExist,
    /// A resource test fails.
    ResourceLimit,
    /// A restart limit was reached.
    Timeout,
}

/// An action waiting to be done (monit's `doaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// A start.
    Start,
    /// A stop.
    Stop,
    /// A restart.
    Restart,
    /// Watching again.
    Monitor,
}

/// The figures of a running process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// How many descendants it has.
    pub children: usize,
    /// Its resident kilobytes.
    pub mem_kb: u64,
    /// The resident kilobytes of it and its descendants.
    pub mem_kb_total: u64,
    /// Its share of the host's memory, in percent.
    pub mem_percent: f64,
    /// The share of it and its descendants.
    pub mem_percent_total: f64,
    /// Its share of the CPUs since the previous report, in percent.
    pub cpu_percent: f64,
    /// The share of it and its descendants.
    pub cpu_percent_total: f64,
}

/// The host's figures (monit's `System` service).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SystemReport {
    /// The 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    /// User CPU share since the previous report, in percent.
    pub cpu_user: f64,
    /// System CPU share.
    pub cpu_system: f64,
    /// I/O wait share.
    pub cpu_wait: f64,
    /// Memory in use, in kB.
    pub mem_kb: u64,
    /// Memory in use, in percent of the host's.
    pub mem_percent: f64,
    /// Swap in use, in kB.
    pub swap_kb: u64,
    /// Swap in use, in percent of the swap space.
    pub swap_percent: f64,
}

/// A service's row, read under the registry's lock.
struct Row {
    name: String,
    monitor: Monitor,
    failure: Option<Failure>,
    pending: Option<Pending>,
    pid: Option<u32>,
}

/// Builds the report of `inner`'s services. Blocking: it reads `/proc`.
pub(crate) fn build(inner: &Inner) -> Report {
    let rows: Vec<Row> = {
        let registry = inner.lock();
        registry
            .order
            .iter()
            .filter_map(|name| Some(row(name, registry.entries.get(name)?)))
            .collect()
    };
    let is_any_running = rows.iter().any(|row| row.pid.is_some());
    let snapshot = if is_any_running {
        ProcSnapshot::read(&inner.host)
    } else {
        ProcSnapshot::default()
    };
    let mut services = Vec::with_capacity(rows.len());
    for row in rows {
        let process = row
            .pid
            .and_then(|pid| Some((pid, snapshot.usage(&inner.host, pid)?)))
            .map(|(pid, usage)| {
                let first = CpuSample {
                    ticks: 0,
                    at_secs: usage.started_at_secs,
                };
                let (own_before, total_before) =
                    swap_report_sample(inner, &row.name, pid, usage.own_cpu, usage.cpu)
                        .unwrap_or((first, first));
                ProcessReport {
                    pid,
                    ppid: usage.ppid,
                    uptime_secs: usage.uptime_secs,
                    children: usage.children,
                    mem_kb: usage.own_mem_kb,
                    mem_kb_total: usage.mem_kb,
                    mem_percent: usage.own_mem_percent,
                    mem_percent_total: usage.mem_percent,
                    cpu_percent: procfs::cpu_percent(usage.own_cpu, own_before, snapshot.cpus()),
                    cpu_percent_total: procfs::cpu_percent(
                        usage.cpu,
                        total_before,
                        snapshot.cpus(),
                    ),
                }
            });
        services.push(ServiceReport {
            name: row.name,
            monitor: row.monitor,
            failure: row.failure,
            pending: row.pending,
            process,
        });
    }
    let host = HostSample::read(&inner.host);
    let before = inner
        .host_cpu
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(host.cpu)
        .unwrap_or_default();
    let (cpu_user, cpu_system, cpu_wait) = procfs::cpu_shares(host.cpu, before);
    let hostname = std::fs::read_to_string(inner.host.proc("sys/kernel/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    Report {
        uptime: inner.started.elapsed(),
        hostname,
        collected: SystemTime::now(),
        services,
        system: SystemReport {
            load: host.load,
            cpu_user,
            cpu_system,
            cpu_wait,
            mem_kb: host.mem_used_kb,
            mem_percent: procfs::mem_percent(host.mem_used_kb, host.mem_total_kb),
            swap_kb: host.swap_used_kb,
            swap_percent: procfs::mem_percent(host.swap_used_kb, host.swap_total_kb),
        },
    }
}

/// Monit's view of `entry`, and the pid whose figures to show.
fn row(name: &str, entry: &Entry) -> Row {
    let pending = match (entry.request, entry.state) {
        (Some(Request::Start), _) => Some(Pending::Start),
        (Some(Request::Stop), _) | (None, ServiceState::Stopping) => Some(Pending::Stop),
        (Some(Request::Restart), _) => Some(Pending::Restart),
        (Some(Request::Monitor), _) => Some(Pending::Monitor),
        (None, _) => None,
    };
    let monitor = match entry.state {
        ServiceState::Running | ServiceState::Failing if entry.is_monitored => Monitor::Yes,
        // Monit shows a start it has not begun as `not monitored - start pending`, and a service it
        // has not checked yet (just loaded, or its start program ran) as `initializing`.
        ServiceState::Starting if entry.request != Some(Request::Start) => Monitor::Init,
        _ => Monitor::Not,
    };
    let failure = match entry.state {
        ServiceState::Failing => entry.failure,
        ServiceState::Running if entry.checks.is_resource_failed() => Some(Failure::ResourceLimit),
        _ => None,
    };
    let has_status = monitor == Monitor::Yes && failure != Some(Failure::DoesNotExist);
    Row {
        name: name.to_owned(),
        monitor,
        failure,
        pending,
        pid: entry
            .pid
            .filter(|_| has_status && entry.state == ServiceState::Running),
    }
}

/// Replaces the report's CPU samples of `name` and returns the previous ones if they were for the
/// same pid.
fn swap_report_sample(
    inner: &Inner,
    name: &str,
    pid: u32,
    own: CpuSample,
    total: CpuSample,
) -> Option<(CpuSample, CpuSample)> {
    let mut registry = inner.lock();
    let entry = registry.entries.get_mut(name)?;
    let previous = entry.report_sample.replace((pid, own, total));
    previous
        .filter(|(previous_pid, _, _)| *previous_pid == pid)
        .map(|(_, own, total)| (own, total))
}
