//! Job supervisors (`jobsupervisor/*`): what `get_state`, heartbeats and `start`/`stop` ask about the
//! instance's processes.
//!
//! `monit` (the default) is the built-in monit-style supervisor of [`crate::process`]; `dummy`
//! (always `running`, no processes) and `dummy-nats` (`jobsupervisor/dummy_nats_job_supervisor.go`:
//! three fixed processes, and a status the BOSH director's integration suite sets over the bus with
//! `set_dummy_status`, `failing` raising a fake monit alert) are the Go agent's test supervisors.

use std::sync::Mutex;

use serde::Serialize;

/// One supervised process, as `get_state` reports it (`jobsupervisor/process.go`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    /// The process name.
    pub name: String,
    /// `running`, `failing`, `starting` or `unknown`.
    pub state: String,
    /// Uptime.
    pub uptime: Uptime,
    /// Memory use.
    pub mem: Memory,
    /// CPU use.
    pub cpu: Cpu,
}

/// A process's uptime; `secs` is left out when 0, as Go's `omitempty` does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uptime {
    /// Seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub secs: u64,
}

/// A process's memory; `kb` is left out when 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    /// Resident kilobytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub kb: u64,
    /// Percent of the VM's memory.
    pub percent: f64,
}

/// A process's CPU use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cpu {
    /// Percent of one CPU.
    pub total: f64,
}

/// An alert in monit's words, before the agent turns it into a health-monitor alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitAlert {
    /// The message id.
    pub id: String,
    /// The monit service.
    pub service: String,
    /// The event (`does not exist`, `pid failed`, ...).
    pub event: String,
    /// What monit did (`start`, `restart`, `alert`).
    pub action: String,
    /// When, in RFC 1123 with a numeric zone.
    pub date: String,
    /// The description.
    pub description: String,
}

/// Why a supervisor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The supervisor is not available.
    #[error("the {0} job supervisor is not available")]
    Unavailable(&'static str),
    /// The process supervisor refused.
    #[error(transparent)]
    Process(#[from] crate::process::Error),
    /// The stopped marker could not be written or removed.
    #[error("updating {}", .path.display())]
    Marker {
        /// The marker file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The `dummy-nats` supervisor was told to fail tasks (the director suite's `fail_task`).
    #[error("fake-task-fail-error")]
    FakeTaskFail,
}

/// What a supervisor did with a bus message meant for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// The value to answer, or `None` to stay silent.
    pub reply: Option<serde_json::Value>,
    /// An alert to raise.
    pub alert: Option<MonitAlert>,
}

/// What the agent asks a supervisor.
pub trait JobSupervisor: Send + Sync + std::fmt::Debug {
    /// The overall job state: `running`, `failing`, `starting`, `stopped` or `unknown`.
    fn status(&self) -> String;

    /// The supervised processes.
    fn processes(&self) -> Vec<Process>;

    /// Stops watching the processes without stopping them (before drain scripts run).
    fn unmonitor(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Replaces the supervised jobs with these (job name, monit file) pairs; running processes of
    /// the new jobs are adopted from their pidfiles.
    fn load_jobs(&self, _jobs: Vec<(String, crate::monit::MonitFile)>) -> Result<(), Error> {
        Ok(())
    }

    /// Starts every job process (answers once the starts are under way, as monit does).
    fn start(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Stops every job process and waits until they are gone.
    fn stop(&self) -> crate::blobstore::BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// The built-in process supervisor behind `-M monit`, for the operator's `monit` command;
    /// `None` for the others.
    fn process_supervisor(&self) -> Option<&crate::process::Supervisor> {
        None
    }

    /// Handles a bus message meant for the supervisor itself (the `dummy-nats` test controls, whose
    /// arguments are top-level keys of the request); `None` when `method` is not one of them.
    fn control(&self, _method: &str, _request: &[u8]) -> Option<Control> {
        None
    }
}

/// `-M dummy`: no processes, always running.
#[derive(Debug, Clone, Copy, Default)]
pub struct DummySupervisor;

impl JobSupervisor for DummySupervisor {
    fn status(&self) -> String {
        "running".to_owned()
    }

    fn processes(&self) -> Vec<Process> {
        Vec::new()
    }
}

/// `-M dummy-nats`: fixed processes and a status the director's integration suite controls.
#[derive(Debug)]
pub struct DummyNatsSupervisor {
    status: Mutex<String>,
}

impl Default for DummyNatsSupervisor {
    fn default() -> Self {
        DummyNatsSupervisor {
            status: Mutex::new("running".to_owned()),
        }
    }
}

impl JobSupervisor for DummyNatsSupervisor {
    fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn processes(&self) -> Vec<Process> {
        [
            ("process-1", "running", 144_987, 100, 0.1),
            ("process-2", "running", 144_988, 200, 0.2),
            ("process-3", "failing", 144_989, 300, 0.3),
        ]
        .into_iter()
        .map(|(name, state, secs, kb, share)| Process {
            name: name.to_owned(),
            state: state.to_owned(),
            uptime: Uptime { secs },
            mem: Memory { kb, percent: share },
            cpu: Cpu { total: share },
        })
        .collect()
    }

    fn start(&self) -> Result<(), Error> {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if *status == "fail_task" {
            return Err(Error::FakeTaskFail);
        }
        if *status != "failing" {
            *status = "running".to_owned();
        }
        Ok(())
    }

    fn stop(&self) -> crate::blobstore::BoxFuture<'_, Result<(), Error>> {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if *status != "failing" && *status != "fail_task" {
            *status = "stopped".to_owned();
        }
        Box::pin(async { Ok(()) })
    }

    fn control(&self, method: &str, request: &[u8]) -> Option<Control> {
        if method != "set_dummy_status" && method != "set_task_fail" {
            return None;
        }
        let status = serde_json::from_slice::<serde_json::Value>(request)
            .ok()
            .and_then(|body| {
                body.get("status")
                    .and_then(|s| s.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status.clone();
        if method == "set_task_fail" {
            // Go answers nothing to this one.
            return Some(Control {
                reply: None,
                alert: None,
            });
        }
        let alert = (status == "failing").then(|| MonitAlert {
            id: "fake-monit-alert".to_owned(),
            service: "fake-monit-service".to_owned(),
            event: "failing".to_owned(),
            action: "start".to_owned(),
            date: "Sun, 22 May 2011 20:07:41 +0500".to_owned(),
            description: "fake-monit-description".to_owned(),
        });
        Some(Control {
            reply: Some(serde_json::Value::from("ok")),
            alert,
        })
    }
}

/// `-M monit`: the built-in monit-style supervisor ([`crate::process`]) with monit's `stopped`
/// marker (`monit/stopped` under the base dir: written by `stop`, removed by `start`, and reported
/// as the `stopped` job state).
#[derive(Debug)]
pub struct MonitSupervisor {
    processes: crate::process::Supervisor,
    stopped_marker: std::path::PathBuf,
}

impl MonitSupervisor {
    /// The supervisor for the base dir of `dirs`, with `processes` doing the work.
    pub fn new(processes: crate::process::Supervisor, dirs: &settings::Dirs) -> MonitSupervisor {
        MonitSupervisor {
            processes,
            stopped_marker: dirs.monit_dir().join("stopped"),
        }
    }
}

impl JobSupervisor for MonitSupervisor {
    fn status(&self) -> String {
        self.processes
            .job_state(self.stopped_marker.exists())
            .to_string()
    }

    fn processes(&self) -> Vec<Process> {
        self.processes.processes()
    }

    fn unmonitor(&self) -> Result<(), Error> {
        Ok(self.processes.unmonitor_all()?)
    }

    fn process_supervisor(&self) -> Option<&crate::process::Supervisor> {
        Some(&self.processes)
    }

    fn load_jobs(&self, jobs: Vec<(String, crate::monit::MonitFile)>) -> Result<(), Error> {
        Ok(self.processes.replace_jobs(jobs)?)
    }

    fn start(&self) -> Result<(), Error> {
        // Start and stop programs log next to the marker (`monit/<service>.monit.log`).
        if let Some(dir) = self.stopped_marker.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Marker {
                path: dir.to_owned(),
                source,
            })?;
        }
        self.processes.start_all()?;
        match std::fs::remove_file(&self.stopped_marker) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::Marker {
                path: self.stopped_marker.clone(),
                source: err,
            }),
            _ => Ok(()),
        }
    }

    fn stop(&self) -> crate::blobstore::BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let marker = self.stopped_marker.clone();
            settings::atomic_file::write(&marker, b"", 0o644).map_err(|source| Error::Marker {
                path: marker,
                source,
            })?;
            Ok(self.processes.stop_all().await?)
        })
    }
}

/// A supervisor that is not available yet (`-M monit` before the jobs issue): state `unknown`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnavailableSupervisor;

impl JobSupervisor for UnavailableSupervisor {
    fn status(&self) -> String {
        "unknown".to_owned()
    }

    fn processes(&self) -> Vec<Process> {
        Vec::new()
    }
}

/// The supervisor `-M` names: `dummy`, `dummy-nats`, or `monit` (the default; built in, through
/// `spawner`, alerts on `alerts`); anything else reports `unknown`.
pub fn by_name(
    name: &str,
    dirs: &settings::Dirs,
    spawner: std::sync::Arc<dyn platform::cmd::Spawner>,
    host: platform::HostPaths,
    alerts: tokio::sync::mpsc::Sender<MonitAlert>,
) -> Box<dyn JobSupervisor> {
    match name {
        "dummy" => Box::new(DummySupervisor),
        "dummy-nats" => Box::new(DummyNatsSupervisor::default()),
        "monit" => {
            let config = crate::process::Config {
                output_dir: Some(dirs.monit_dir()),
                ..crate::process::Config::default()
            };
            let processes = crate::process::Supervisor::new(config, spawner, host, alerts);
            Box::new(MonitSupervisor::new(processes, dirs))
        }
        _ => Box::new(UnavailableSupervisor),
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_nats_status_is_set_over_the_bus_and_failing_raises_an_alert() {
        let supervisor = DummyNatsSupervisor::default();
        assert_eq!(supervisor.status(), "running");
        assert!(supervisor.control("ping", b"{}").is_none());
        let control = supervisor
            .control(
                "set_dummy_status",
                br#"{"method":"set_dummy_status","status":"failing","reply_to":"r"}"#,
            )
            .unwrap();
        assert_eq!(control.reply, Some(serde_json::Value::from("ok")));
        assert_eq!(control.alert.unwrap().id, "fake-monit-alert");
        assert_eq!(supervisor.status(), "failing");
        let silent = supervisor
            .control("set_task_fail", br#"{"status":"fail_task"}"#)
            .unwrap();
        assert_eq!(
            silent,
            Control {
                reply: None,
                alert: None
            }
        );
        assert_eq!(supervisor.status(), "fail_task");
    }

    #[test]
    fn processes_leave_out_zero_uptime_and_memory_as_go_does() {
        let process = Process {
            name: "p".into(),
            state: "running".into(),
            uptime: Uptime { secs: 0 },
            mem: Memory {
                kb: 0,
                percent: 0.0,
            },
            cpu: Cpu { total: 0.0 },
        };
        assert_eq!(
            serde_json::to_value(process).unwrap(),
            serde_json::json!({"name": "p", "state": "running", "uptime": {}, "mem": {"percent": 0.0}, "cpu": {"total": 0.0}})
        );
        assert_eq!(
            DummyNatsSupervisor::default().processes()[2].state,
            "failing"
        );
    }
}
