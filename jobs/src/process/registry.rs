//! The supervisor's registry of services: loading monit files (validation, what is not honoured),
//! resolving operator targets, following `depends on` both ways, and the requests the supervisor
//! hands to the services' tasks (monit's `control.c`: `do_start`, `do_stop`, `do_depend`,
//! `do_monitor`, `do_unmonitor`).

use std::collections::HashMap;

use crate::monit::{Kind, Mode, MonitFile, Service};
use crate::process::{
    Entry, Error, NotHonoured, Registry, Request, Result, ServiceState, Target, dependency,
    resource,
};

/// A process service to supervise, from a loaded monit file.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) job: String,
    pub(super) service: Service,
}

impl Registry {
    /// The managed group's entries, in load order.
    pub(super) fn group_entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.order
            .iter()
            .filter_map(|name| Some((name, self.entries.get(name)?)))
            .filter(|(_, entry)| entry.is_in_group)
    }

    /// The services `target` names, in load order.
    pub(super) fn resolve(&self, target: &Target) -> Result<Vec<String>> {
        match target {
            Target::All => Ok(self.order.clone()),
            Target::Service(name) if self.entries.contains_key(name) => Ok(vec![name.clone()]),
            Target::Service(name) => Err(Error::UnknownService(name.clone())),
        }
    }

    /// `seeds` and the services they depend on, transitively; `mode manual` dependencies are left
    /// out unless `includes_manual`.
    pub(super) fn dependencies_of(&self, seeds: Vec<&str>, includes_manual: bool) -> Vec<String> {
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
    pub(super) fn dependants_of(&self, seeds: Vec<&str>) -> Vec<String> {
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

    /// Wakes the tasks that have a request waiting: something they may wait for changed.
    pub(super) fn notify_waiting(&self) {
        for entry in self.entries.values().filter(|e| e.request.is_some()) {
            entry.notify.notify_one();
        }
    }

    /// Asks the tasks of `targets` to start their services.
    pub(super) fn request_start(&mut self, targets: &[String]) {
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

    /// Asks the tasks of `targets` to stop their services and stop watching them.
    pub(super) fn request_stop(&mut self, targets: &[String]) {
        for name in targets {
            if let Some(entry) = self.entries.get_mut(name) {
                entry.request = Some(Request::Stop);
                entry.is_monitored = false;
                entry.has_stop_failed = false;
                entry.is_restart_pending = false;
                entry.checks.reset_limits();
                entry.notify.notify_one();
            }
        }
    }

    /// Asks the tasks of `targets` to stop their services and start them again.
    pub(super) fn request_restart(&mut self, targets: &[String]) {
        for name in targets {
            if let Some(entry) = self.entries.get_mut(name) {
                entry.request = Some(Request::Restart);
                entry.has_stop_failed = false;
                entry.notify.notify_one();
            }
        }
    }

    /// Asks the tasks of `targets` that are not watched to watch their services again.
    pub(super) fn request_monitor(&mut self, targets: &[String]) {
        for name in targets {
            if let Some(entry) = self
                .entries
                .get_mut(name)
                .filter(|e| !e.is_monitored && e.request.is_none())
            {
                entry.request = Some(Request::Monitor);
                entry.is_monitored = true;
                entry.notify.notify_one();
            }
        }
    }

    /// Stops watching `targets`, leaving their processes as they are; pending starts, restarts and
    /// monitors are dropped (a pending stop goes on).
    pub(super) fn unmonitor(&mut self, targets: &[String]) {
        for name in targets {
            if let Some(entry) = self.entries.get_mut(name) {
                entry.is_monitored = false;
                entry.is_restart_pending = false;
                entry.checks.reset_limits();
                if entry.request != Some(Request::Stop) {
                    entry.request = None;
                }
                entry.notify.notify_one();
            }
        }
        self.notify_waiting();
    }

    /// Asks the watched services that depend on `name` (transitively) and have nothing else to do
    /// to stop and start again.
    pub(super) fn bounce_dependants(&mut self, name: &str) {
        let dependants: Vec<String> = self
            .dependants_of(vec![name])
            .into_iter()
            .filter(|dependant| dependant != name)
            .filter(|dependant| {
                self.entries.get(dependant).is_some_and(|e| {
                    e.is_monitored
                        && e.request.is_none()
                        && matches!(
                            e.state,
                            ServiceState::Running | ServiceState::Starting | ServiceState::Failing
                        )
                })
            })
            .collect();
        if !dependants.is_empty() {
            tracing::info!(service = %name, dependants = ?dependants, "restarting the services that depend on a restarted service");
        }
        self.request_restart(&dependants);
    }
}

/// What `jobs` say that the supervisor does not do, in job and line order.
pub(super) fn not_honoured(jobs: &[(String, MonitFile)]) -> Vec<NotHonoured> {
    let mut list = Vec::new();
    for (job, file) in jobs {
        let mut items = Vec::new();
        for unsupported in &file.unsupported {
            items.push(NotHonoured {
                job: job.clone(),
                service: unsupported.service.clone(),
                line: unsupported.line,
                what: unsupported.to_string(),
            });
        }
        for service in file.services.iter().filter(|s| s.kind == Kind::Process) {
            for test in service.tests.iter().filter(|t| !resource::is_honoured(t)) {
                items.push(NotHonoured {
                    job: job.clone(),
                    service: Some(service.name.clone()),
                    line: test.line,
                    what: resource::describe(test),
                });
            }
            if let Some(every) = service.every_cycles {
                items.push(NotHonoured {
                    job: job.clone(),
                    service: Some(service.name.clone()),
                    line: service.line,
                    what: format!("every {every} cycles (checked every cycle)"),
                });
            }
        }
        items.sort_by_key(|item| item.line);
        list.extend(items);
    }
    list
}

/// The process services of `jobs`, validated: names unique across jobs, every dependency defined,
/// no dependency cycle.
pub(super) fn plan(jobs: &[(String, MonitFile)]) -> Result<Vec<Planned>> {
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
