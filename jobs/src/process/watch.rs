//! The supervisor's watcher: one task that checks every watched service each cycle, in one trip
//! to the blocking pool, instead of each service's task waking and hopping to the pool on its own.
//!
//! Each [`Config::cycle`](crate::process::Config::cycle) the watcher asks the spawner whether the
//! process of every running service still lives, and reads the pidfile of every service waiting for
//! its process to come back, all in a single `spawn_blocking`; it wakes a task only when the answer
//! differs from what the task expects (the running process died, a gone one came back), so an idle
//! supervisor costs one timer and one blocking call per cycle whatever the number of services. The
//! pidfiles of running services are read once per poll cycle, as monit reads them, to notice a
//! process that was replaced while the old one still runs (`pid changed`); a task whose process is
//! gone reads its pidfile itself. Starts and stops in
//! progress are not the watcher's business: their tasks check them, so a start that hangs delays
//! nobody's checks.
//!
//! Once per [`Config::poll_cycle`](crate::process::Config::poll_cycle) (monit's cycle) the watcher
//! also reads the process table for the running services with resource tests, evaluates those tests
//! and every watched service's restart limits (`resource.rs`), and acts: alerts, restarts (with
//! dependants bounced), stops, unmonitors, or runs an `exec` program.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::time::MissedTickBehavior;

use crate::monit::Program;
use crate::process::event::{self, Action};
use crate::process::pidfile::{self, Probe};
use crate::process::procfs::{ProcSnapshot, Usage};
use crate::process::resource::Outcome;
use crate::process::service::{self, Purpose};
use crate::process::{Inner, ServiceState};

/// What the watcher checks for a service, as its task asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Nothing: the task follows its process itself, or there is none to follow.
    Nothing,
    /// That this process still runs: wake the task when the pidfile names another pid or none.
    Alive(u32),
    /// Whether a gone process came back: wake the task when the pidfile names a live pid.
    Appear,
}

/// A service to check this cycle.
#[derive(Debug)]
struct Target {
    name: String,
    generation: u64,
    pidfile: Option<PathBuf>,
    /// The process it runs, when only its liveness needs checking: the pidfile is read once per
    /// poll cycle, and the task reads it itself when the process is gone.
    pid_only: Option<u32>,
    /// Its running process's usage is needed for resource tests.
    wants_usage: bool,
}

/// What the check of one service found.
#[derive(Debug)]
struct Probed {
    name: String,
    generation: u64,
    probe: Option<Probe>,
    usage: Option<(u32, Usage)>,
}

/// An `exec` action to run.
#[derive(Debug)]
struct Exec {
    service: String,
    program: Program,
    purpose: Purpose,
    pid: Option<u32>,
}

/// Watches until the supervisor goes away (its task is aborted).
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut interval = tokio::time::interval(inner.config.cycle);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate: the tasks check their services themselves when they begin.
    interval.tick().await;
    let mut next_poll = Instant::now() + inner.config.poll_cycle;
    loop {
        interval.tick().await;
        let now = Instant::now();
        let is_poll = now >= next_poll;
        if is_poll {
            next_poll = now + inner.config.poll_cycle;
        }
        let targets = targets(&inner, is_poll);
        let (probed, cpus) = if targets.is_empty() {
            (Vec::new(), 1)
        } else {
            let checking = Arc::clone(&inner);
            match tokio::task::spawn_blocking(move || check(&checking, targets)).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(error = %error, "checking the services failed");
                    continue;
                }
            }
        };
        let execs = apply(&inner, probed, cpus, is_poll);
        if !execs.is_empty() {
            let running = Arc::clone(&inner);
            let _ = tokio::task::spawn_blocking(move || {
                for exec in execs {
                    if let Err(error) = service::spawn_program(
                        &running,
                        &exec.service,
                        &exec.program,
                        &exec.purpose,
                        exec.pid,
                    ) {
                        tracing::warn!(service = %exec.service, error = %error, "exec program failed");
                    }
                }
            })
            .await;
        }
    }
}

/// The services to check this cycle: those whose task asked for it, and on a poll cycle the running
/// ones with resource tests.
fn targets(inner: &Inner, is_poll: bool) -> Vec<Target> {
    let registry = inner.lock();
    registry
        .entries
        .iter()
        .filter_map(|(name, entry)| {
            let wants_usage = is_poll
                && entry.is_monitored
                && entry.state == ServiceState::Running
                && entry.checks.has_resource_tests();
            let pid_only = match entry.watch {
                Watch::Alive(pid) if !is_poll => Some(pid),
                _ => None,
            };
            (entry.watch != Watch::Nothing || wants_usage).then(|| Target {
                name: name.clone(),
                generation: entry.generation,
                pidfile: entry.service.pidfile.clone(),
                pid_only,
                wants_usage,
            })
        })
        .collect()
}

/// Probes every target and, when some need it, reads the process table once. Blocking.
fn check(inner: &Inner, targets: Vec<Target>) -> (Vec<Probed>, usize) {
    let snapshot = targets
        .iter()
        .any(|target| target.wants_usage)
        .then(|| ProcSnapshot::read(&inner.host));
    let cpus = snapshot.as_ref().map_or(1, ProcSnapshot::cpus);
    let probed = targets
        .into_iter()
        .map(|target| {
            let probe = match target.pid_only {
                Some(pid) if inner.spawner.is_alive(pid) => Some(Probe::Alive(pid)),
                Some(_) => Some(Probe::Dead),
                None => target
                    .pidfile
                    .as_deref()
                    .map(|path| pidfile::probe(path, inner.spawner.as_ref())),
            };
            let usage = match (target.wants_usage, probe, &snapshot) {
                (true, Some(Probe::Alive(pid)), Some(snapshot)) => {
                    snapshot.usage(&inner.host, pid).map(|usage| (pid, usage))
                }
                _ => None,
            };
            Probed {
                name: target.name,
                generation: target.generation,
                probe,
                usage,
            }
        })
        .collect();
    (probed, cpus)
}

/// Wakes the tasks whose process changed; on a poll cycle, evaluates resource tests and restart
/// limits and acts on them. Returns the `exec` programs to run.
fn apply(inner: &Inner, probed: Vec<Probed>, cpus: usize, is_poll: bool) -> Vec<Exec> {
    let mut registry = inner.lock();
    let mut outcomes: Vec<(String, Option<u32>, Outcome)> = Vec::new();
    for found in probed {
        let Some(entry) = registry
            .entries
            .get_mut(&found.name)
            .filter(|e| e.generation == found.generation)
        else {
            continue;
        };
        let probe = found.probe.unwrap_or(Probe::Missing);
        let is_news = match entry.watch {
            Watch::Nothing => false,
            Watch::Alive(pid) => probe != Probe::Alive(pid),
            Watch::Appear => matches!(probe, Probe::Alive(_)),
        };
        if is_news {
            entry.notify.notify_one();
        }
        if let Some((pid, usage)) = found.usage.filter(|(pid, _)| entry.pid == Some(*pid)) {
            for outcome in entry.checks.evaluate(&found.name, pid, &usage, cpus) {
                outcomes.push((found.name.clone(), Some(pid), outcome));
            }
        }
    }
    if is_poll {
        let names: Vec<String> = registry.order.clone();
        for name in names {
            let Some(entry) = registry.entries.get_mut(&name) else {
                continue;
            };
            if !entry.is_monitored {
                entry.checks.reset_limits();
                continue;
            }
            if let Some(outcome) = entry.checks.tick_limits() {
                outcomes.push((name, entry.pid, outcome));
            }
        }
    }
    let mut alerts = Vec::new();
    let mut execs = Vec::new();
    for (name, pid, outcome) in outcomes {
        tracing::warn!(service = %name, event = outcome.event.name(), action = outcome.action.name(), description = %outcome.description, "monit test failed");
        match outcome.action {
            Action::Alert | Action::Start => {}
            Action::Restart => {
                if let Some(entry) = registry.entries.get_mut(&name) {
                    entry.checks.count_start();
                }
                let mut targets: Vec<String> = registry
                    .dependants_of(vec![name.as_str()])
                    .into_iter()
                    .filter(|dependant| {
                        *dependant == name
                            || registry
                                .entries
                                .get(dependant)
                                .is_some_and(|e| e.is_monitored && e.request.is_none())
                    })
                    .collect();
                targets.sort();
                registry.request_restart(&targets);
            }
            Action::Stop => {
                let targets = registry.dependants_of(vec![name.as_str()]);
                registry.request_stop(&targets);
            }
            Action::Unmonitor => {
                let targets = registry.dependants_of(vec![name.as_str()]);
                registry.unmonitor(&targets);
            }
            Action::Exec => {
                if let Some(program) = outcome.program.clone() {
                    execs.push(Exec {
                        service: name.clone(),
                        program,
                        purpose: Purpose::Exec {
                            event: outcome.event.monit_name(),
                            description: outcome.description.clone(),
                        },
                        pid,
                    });
                }
            }
        }
        alerts.push(event::alert(
            &name,
            outcome.event,
            outcome.action,
            outcome.description,
            SystemTime::now(),
        ));
    }
    let is_changed = !alerts.is_empty();
    drop(registry);
    if is_changed {
        inner.changed();
    }
    for alert in alerts {
        inner.send_alert(alert);
    }
    execs
}
