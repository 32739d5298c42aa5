//! The VM methods: `create_vm`, `delete_vm`, `has_vm`, `reboot_vm`, `set_vm_metadata`
//! (`docs-bosh: content/cpi-api-v2-method/*`).
//!
//! A VM is a directory `<base_dir>/vms/<cid>/` and the processes started for it: a supervisor
//! (`supervise.rs`) running `bosh-agent -P dummy -M <supervisor> -b <vm dir> -C <vm dir>/agent.json`
//! with a File settings source reading `<vm dir>/agent-settings.json`. `create_vm` writes the
//! settings and starts the supervisor, then returns without waiting for the agent to boot, as the
//! contract allows. `delete_vm` stops the VM's processes (`processes.rs`), releases its disks and
//! removes its directory; a VM that is gone is `VMNotFound`, which the director tolerates.
//! `reboot_vm` powers the VM off the same way and starts it again: its job processes stop too, as
//! they would on a real reboot. `has_vm` tells whether the VM's record exists, not whether its
//! agent runs: a VM whose agent died still exists until it is deleted.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::exec;
use crate::process_cpi::error::{Error, Result};
use crate::process_cpi::settings::{self, NewVm};
use crate::process_cpi::store::{self, is_cid};
use crate::process_cpi::wire::Request;
use crate::process_cpi::{ProcessCpi, disk, processes};

/// `vm.json`: what `create_vm` was given (less the environment, which holds secrets and is in
/// the settings) and how the agent runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    /// The agent id.
    pub agent_id: String,
    /// The stemcell the VM was made from.
    pub stemcell_cid: String,
    /// The VM's cloud properties.
    pub cloud_properties: Value,
    /// The networks, as the VM got them.
    pub networks: Value,
    /// The disks the director said it would attach.
    pub disk_cids: Vec<String>,
    /// When it was created, seconds after the epoch.
    pub created_at: u64,
    /// Seconds between SIGTERM and SIGKILL when the agent is stopped.
    pub stop_grace_secs: u64,
    /// The agent's command.
    pub agent: AgentCommand,
}

/// How the supervisor runs the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCommand {
    /// `bosh-agent`.
    pub binary: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to its environment.
    pub env: BTreeMap<String, String>,
}

/// The agent's arguments for the VM in `vm_dir`, run under the job supervisor `supervisor` (`-M`).
pub fn agent_args(vm_dir: &Path, supervisor: &str) -> Vec<String> {
    let vm_dir = vm_dir.to_string_lossy();
    vec![
        "-P".to_owned(),
        "dummy".to_owned(),
        "-M".to_owned(),
        supervisor.to_owned(),
        "-b".to_owned(),
        vm_dir.clone().into_owned(),
        "-C".to_owned(),
        format!("{vm_dir}/{}", store::AGENT_CONFIG_FILE),
    ]
}

/// `create_vm(agent_id, stemcell_cid, cloud_properties, networks, disk_cids, environment)`:
/// `[vm_cid, networks]` (the bare cid to a caller of the first contract).
pub fn create_vm(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let agent_id = args.string(0, "agent_id")?;
    let stemcell_cid = args.string(1, "stemcell_cid")?;
    let cloud_properties = args.object(2, "cloud_properties")?;
    let networks = args.object(3, "networks")?;
    let disk_cids = args.strings(4, "disk_cids")?;
    let env = args.object(5, "environment")?;
    if agent_id.is_empty() {
        return Err(Error::InvalidArgument {
            method: request.method.clone(),
            name: "agent_id",
            problem: "is empty".to_owned(),
        });
    }
    if !is_cid(stemcell_cid) || !cpi.store.stemcell_file(stemcell_cid).is_file() {
        return Err(Error::StemcellNotFound(stemcell_cid.to_owned()));
    }
    let agent = &cpi.config.agent;
    if !is_executable(&agent.binary) {
        return Err(Error::AgentBinary(agent.binary.clone()));
    }

    let vm_cid = store::new_cid("vm");
    let vm_dir = cpi.store.vm_dir(&vm_cid);
    store::create_dir_all(&cpi.store.vms_dir())?;
    std::fs::create_dir(&vm_dir).map_err(Error::io("creating", &vm_dir))?;
    let networks = settings::vm_networks(&networks);
    let record = VmRecord {
        agent_id: agent_id.to_owned(),
        stemcell_cid: stemcell_cid.to_owned(),
        cloud_properties: Value::Object(cloud_properties),
        networks: Value::Object(networks.clone()),
        disk_cids,
        created_at: store::now_secs(),
        stop_grace_secs: cpi.config.stop_grace_secs,
        agent: AgentCommand {
            binary: agent.binary.clone(),
            args: agent_args(&vm_dir, &agent.supervisor),
            env: agent.env.clone(),
        },
    };
    let agent_settings = settings::agent_settings(&NewVm {
        agent_id,
        vm_cid: &vm_cid,
        agent,
        networks: &networks,
        env: &env,
    });
    let started = (|| {
        let settings_path = vm_dir.join(store::SETTINGS_FILE);
        store::write_json(&settings_path, &agent_settings)?;
        store::write_json(
            &vm_dir.join(store::AGENT_CONFIG_FILE),
            &settings::agent_config(&settings_path),
        )?;
        store::write_json(&vm_dir.join(store::VM_FILE), &record)?;
        start(cpi, &vm_cid, &vm_dir)
    })();
    if let Err(err) = started {
        // Nothing was started: the half-made VM goes, so `has_vm` never sees it.
        let _ = store::remove_dir_all(&vm_dir);
        return Err(err);
    }
    tracing::info!(vm_cid, agent_id, "VM created");
    if request.is_v2() {
        Ok(json!([vm_cid, networks]))
    } else {
        Ok(json!(vm_cid))
    }
}

/// `delete_vm(vm_cid)`.
pub fn delete_vm(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    if !cpi.store.has_vm(vm_cid) {
        return Err(Error::VmNotFound(vm_cid.to_owned()));
    }
    let vm_dir = cpi.store.vm_dir(vm_cid);
    stop(cpi, vm_cid, &vm_dir)?;
    let doomed = {
        let _lock = cpi.store.lock()?;
        if !cpi.store.has_vm(vm_cid) {
            // Another delete_vm finished first.
            return Ok(Value::Null);
        }
        disk::release_all(cpi, vm_cid, &vm_dir)?;
        // Renamed under the lock, so no call sees a VM half removed; a dot name is no cid.
        let doomed = cpi.store.vms_dir().join(format!(
            ".{vm_cid}.deleted-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::rename(&vm_dir, &doomed).map_err(Error::io("removing", &vm_dir))?;
        doomed
    };
    store::remove_dir_all(&doomed)?;
    tracing::info!(vm_cid, "VM deleted");
    Ok(Value::Null)
}

/// `has_vm(vm_cid)`.
pub fn has_vm(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    Ok(json!(cpi.store.has_vm(vm_cid)))
}

/// `reboot_vm(vm_cid)`.
pub fn reboot_vm(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    if !cpi.store.has_vm(vm_cid) {
        return Err(Error::VmNotFound(vm_cid.to_owned()));
    }
    let vm_dir = cpi.store.vm_dir(vm_cid);
    stop(cpi, vm_cid, &vm_dir)?;
    store::remove_file(&vm_dir.join(store::AGENT_PID_FILE))?;
    start(cpi, vm_cid, &vm_dir)?;
    tracing::info!(vm_cid, "VM rebooted");
    Ok(Value::Null)
}

/// `set_vm_metadata(vm_cid, metadata)`: kept in the VM's `metadata.json`.
pub fn set_vm_metadata(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let vm_cid = args.string(0, "vm_cid")?;
    let metadata = args.object(1, "metadata")?;
    if !cpi.store.has_vm(vm_cid) {
        return Err(Error::VmNotFound(vm_cid.to_owned()));
    }
    store::write_json(
        &cpi.store.vm_dir(vm_cid).join(store::METADATA_FILE),
        &metadata,
    )?;
    Ok(Value::Null)
}

/// Starts the VM's supervisor and records its pid.
fn start(cpi: &ProcessCpi, vm_cid: &str, vm_dir: &Path) -> Result<()> {
    let program = exec::Detached {
        path: cpi.supervisor_exe.clone(),
        args: vec![OsString::from("supervise"), vm_dir.into()],
        env: Vec::new(),
        output: vm_dir.join(store::SUPERVISOR_LOG),
    };
    let pid = exec::spawn_detached(&program).map_err(|source| Error::Spawn {
        vm_cid: vm_cid.to_owned(),
        source,
    })?;
    store::write_atomic(
        &vm_dir.join(store::SUPERVISOR_PID_FILE),
        format!("{pid}\n").as_bytes(),
    )
}

/// Stops every process of the VM.
fn stop(cpi: &ProcessCpi, vm_cid: &str, vm_dir: &Path) -> Result<()> {
    processes::stop_vm(&cpi.proc_root, vm_dir, cpi.caller, cpi.config.stop_grace()).map_err(
        |pids| Error::StillRunning {
            vm_cid: vm_cid.to_owned(),
            pids,
        },
    )
}

/// A regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_runs_on_the_dummy_platform_in_the_vm_directory() {
        assert_eq!(
            agent_args(Path::new("/cpi/vms/vm-1"), "monit"),
            [
                "-P",
                "dummy",
                "-M",
                "monit",
                "-b",
                "/cpi/vms/vm-1",
                "-C",
                "/cpi/vms/vm-1/agent.json"
            ]
        );
    }
}
