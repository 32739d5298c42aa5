//! The VM supervisor, `process-cpi supervise <vm dir>`: what the service manager of a real VM is to
//! its agent (runit or systemd on a stemcell).
//!
//! `create_vm` and `reboot_vm` start it detached ([`crate::exec::spawn_detached`]). It first makes a
//! session of its own, so the director's kill of a CPI call's process group and a hang-up of a
//! terminal do not reach the VM, and the session marks the VM's agent for `delete_vm`. It then runs
//! the agent as `vm.json` says, its output appended to `agent.log` and its pid in `agent.pid`, and
//! starts it again whenever it exits: the agent exits 0 to be restarted after `update_settings`
//! changed its mbus or blobstore (`agent/src/action/update_settings.rs`), and a crashed agent comes
//! back as on a VM. A restart waits [`MIN_RESTART_DELAY`]; after a failure the wait doubles up to
//! [`MAX_RESTART_DELAY`], and an agent that ran [`STABLE_RUN`] resets it. SIGTERM or SIGINT stops
//! the agent (SIGTERM, SIGKILL after the VM's grace) and ends the supervisor.

use std::ffi::OsString;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::exec::Daemon;
use crate::process_cpi::error::{Error, Result};
use crate::process_cpi::store;
use crate::process_cpi::vm::VmRecord;

/// The wait before an agent that exited is started again.
pub const MIN_RESTART_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between restarts of a failing agent.
pub const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// How long an agent must have run for its exit not to count as a failure in a row.
pub const STABLE_RUN: Duration = Duration::from_secs(30);

/// Makes the calling process the leader of a new session (setsid(2)); it must not lead a process
/// group already, which a process started by [`crate::exec::spawn_detached`] does not.
pub fn become_session_leader() -> nix::Result<()> {
    nix::unistd::setsid().map(drop)
}

/// Runs the agent of the VM in `vm_dir` until `shutdown` completes.
pub async fn run(vm_dir: &Path, shutdown: impl Future<Output = ()>) -> Result<()> {
    let record: VmRecord = store::read_json(&vm_dir.join(store::VM_FILE))?;
    let command = &record.agent;
    let args: Vec<OsString> = command.args.iter().map(OsString::from).collect();
    let env: Vec<(OsString, OsString)> = command
        .env
        .iter()
        .map(|(key, value)| (key.into(), value.into()))
        .collect();
    let grace = Duration::from_secs(record.stop_grace_secs);
    let agent_log = vm_dir.join(store::AGENT_LOG);
    let pid_file = vm_dir.join(store::AGENT_PID_FILE);
    tokio::pin!(shutdown);
    let mut delay = MIN_RESTART_DELAY;
    loop {
        let started = Instant::now();
        match Daemon::start_with_env(&command.binary, &args, &env, &agent_log) {
            Ok(mut agent) => {
                let pid = agent.pid().unwrap_or_default();
                tracing::info!(pid, "agent started");
                store::write_atomic(&pid_file, format!("{pid}\n").as_bytes())?;
                tokio::select! {
                    () = &mut shutdown => {
                        tracing::info!(pid, "stopping the agent");
                        agent.stop(grace).await;
                        store::remove_file(&pid_file)?;
                        return Ok(());
                    }
                    status = agent.wait() => {
                        let status = status.map_err(|source| Error::Spawn {
                            vm_cid: vm_cid(vm_dir),
                            source,
                        })?;
                        if status.success() || started.elapsed() >= STABLE_RUN {
                            delay = MIN_RESTART_DELAY;
                        }
                        tracing::warn!(pid, %status, delay_secs = delay.as_secs(), "agent exited, restarting it");
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %Error::Spawn { vm_cid: vm_cid(vm_dir), source: err }.message(), "cannot start the agent");
            }
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
}

fn vm_cid(vm_dir: &Path) -> String {
    vm_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}
