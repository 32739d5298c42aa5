//! Job lifecycle scripts: the library behind the `run_script`, `drain` and `run_errand` actions
//! (reference/bosh-agent.md §3.2). Follows the Go agent's `agent/script/`
//! (`concrete_job_script_provider.go`, `generic_script.go`, `parallel_script.go`, `drain/`,
//! `cmd/build_command_unix.go`, `pathenv/pathenv.go`) and `agent/action/run_errand.go`.
//!
//! [`JobScripts`] holds what every script needs: the base dir's paths, the
//! [`ScriptRunner`] and the drain [`Sleeper`]. Its methods live
//! in the module named after the action they serve:
//! - [`JobScripts::run_script`] ([`run_script`]): `jobs/<job>/bin/<name>` of every job at once, at a
//!   lower CPU priority, output appended to `sys/log/<job>/<name>.{stdout,stderr}.log`;
//! - [`JobScripts::drain`] ([`drain`]): every job's `jobs/<job>/bin/drain` at once, with the dynamic
//!   drain loop;
//! - [`JobScripts::run_errand`] ([`run_errand`]): one job's `jobs/<job>/bin/run`, output captured.
//!
//! Every script runs with `PATH=/usr/sbin:/usr/bin:/sbin:/bin` on top of the agent's own environment,
//! as Go's `cmd.BuildCommand` sets it. Several scripts run at once and fail together as
//! [`parallel`] describes. Job and script names become path components only through
//! `platform::name`, so a name such as `../x` is refused before anything runs.
//!
//! The methods block until the scripts end: the agent calls them inside `spawn_blocking`, and turns
//! its task's cancellation into [`CancelToken::cancel`](cancel::CancelToken::cancel). What
//! cancelling does today, and how it will terminate scripts, is in [`runner`] and [`cancel`].

pub mod cancel;
pub mod drain;
pub mod parallel;
pub mod run_errand;
pub mod run_script;
pub mod runner;

use std::path::PathBuf;
use std::sync::Arc;

use platform::cmd::Cmd;
use settings::Dirs;

use crate::script::drain::{Sleeper, SystemSleeper};
use crate::script::runner::ScriptRunner;

/// The `PATH` every script gets (`agent/script/pathenv/pathenv.go`).
pub const SCRIPT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs the scripts of the jobs installed under one base dir (Go's `ConcreteJobScriptProvider`).
#[derive(Debug, Clone)]
pub struct JobScripts {
    dirs: Dirs,
    runner: Arc<dyn ScriptRunner>,
    sleeper: Arc<dyn Sleeper>,
}

impl JobScripts {
    /// Scripts under `dirs`, run by `runner`; drain sleeps for real ([`SystemSleeper`]).
    pub fn new(dirs: Dirs, runner: Arc<dyn ScriptRunner>) -> JobScripts {
        JobScripts {
            dirs,
            runner,
            sleeper: Arc::new(SystemSleeper),
        }
    }

    /// The same, with drain's waits going to `sleeper` (tests record them instead of sleeping).
    pub fn with_sleeper(self, sleeper: Arc<dyn Sleeper>) -> JobScripts {
        JobScripts { sleeper, ..self }
    }

    /// `jobs/<job>/bin/<script>` (Go's `JobBinDir`), with both names checked.
    fn script_path(&self, job: &str, script: &str) -> Result<PathBuf, platform::name::Error> {
        let job_dir = platform::name::join(&self.dirs.jobs_dir(), "job name", job)?;
        platform::name::join(&job_dir.join("bin"), "script name", script)
    }
}

/// The command that runs the script at `path` with the scripts' `PATH` (Go's `cmd.BuildCommand`).
pub fn script_cmd(path: impl Into<PathBuf>) -> Cmd {
    Cmd::new(path.into()).env("PATH", SCRIPT_PATH)
}
