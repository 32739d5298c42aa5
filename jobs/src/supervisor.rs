//! Job supervisors (`jobsupervisor/*`): what `get_state`, heartbeats and `start`/`stop` ask about the
//! instance's processes.
//!
//! Today there are the `dummy` supervisor of the Go agent (`-M dummy`: always `running`, no
//! processes) and a placeholder for `monit` that reports `unknown`, what the Go agent reports while
//! monit is unreachable; the monit-style supervisor arrives with the jobs issue.

use serde::Serialize;

/// One supervised process, as `get_state` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    /// The process name.
    pub name: String,
    /// `running`, `failing`, `starting` or `unknown`.
    pub state: String,
}

/// What the agent asks a supervisor.
pub trait JobSupervisor: Send + Sync + std::fmt::Debug {
    /// The overall job state: `running`, `failing`, `starting`, `stopped` or `unknown`.
    fn status(&self) -> String;

    /// The supervised processes.
    fn processes(&self) -> Vec<Process>;
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

/// The supervisor `-M` names: `dummy` (also `dummy-nats`, whose NATS controls are not implemented)
/// or anything else (`monit`), which is not available yet.
pub fn by_name(name: &str) -> Box<dyn JobSupervisor> {
    match name {
        "dummy" | "dummy-nats" => Box::new(DummySupervisor),
        _ => Box::new(UnavailableSupervisor),
    }
}
