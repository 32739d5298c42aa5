//! One instance: its VM (created when missing, with its persistent disk attached and mounted), and
//! its update (`reference/director-cpi.md` §2.6 and §2.8): if it ran before, `prepare`, `pre-stop`,
//! `drain`, `stop`, `post-stop`; then the disk converged (created, or a new one of the new size
//! with the data migrated and the old one retired); then `apply`, `pre-start`, `start`, the watch
//! until `running`, `post-start`. Each step is recorded in the state as it completes.

use serde_json::{Value, json};

use crate::agent_client::AgentClient;
use crate::deploy::director::Director;
use crate::deploy::vm::{self, NewVm, VmRequest};
use crate::deploy::{Error, Planned, Result, Target};
use crate::state::{self, Disk};

/// How long an existing agent gets to reconnect to a freshly started director before it counts as
/// unresponsive (agents retry every 2 s × attempt, at most 10 s apart).
pub const RECONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The persistent disk an instance should have.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskWanted {
    /// Size in MiB.
    pub size_mb: u64,
    /// Cloud properties of its disk type.
    pub cloud_properties: Value,
}

/// Finds `planned`'s record in the state, creating it.
pub async fn record(
    director: &Director,
    deployment: &str,
    planned: &Planned,
) -> Result<state::Instance> {
    let mut state = director.state.lock().await;
    let existing = state
        .get()
        .deployments
        .get(deployment)
        .and_then(|d| {
            d.instances
                .iter()
                .find(|i| i.group == planned.group_name && i.index == planned.index())
        })
        .cloned();
    let ips = planned.ips();
    let mut instance = existing.clone().unwrap_or_else(|| state::Instance {
        group: planned.group_name.clone(),
        index: planned.index(),
        id: planned.id.clone(),
        ..state::Instance::default()
    });
    instance.az = planned.placement.az.clone();
    instance.bootstrap = planned.bootstrap;
    instance.ips = ips;
    // Written only when it changed: a converged deploy records nothing.
    if existing.as_ref() != Some(&instance) {
        let saved = instance.clone();
        state.update(|doc| put(doc, deployment, saved))?;
    }
    Ok(instance)
}

/// Writes `instance` into the deployment's records (replacing the one with its group and index).
pub fn put(doc: &mut state::DirectorState, deployment: &str, instance: state::Instance) {
    let instances = &mut doc
        .deployments
        .entry(deployment.to_owned())
        .or_default()
        .instances;
    match instances
        .iter_mut()
        .find(|i| i.group == instance.group && i.index == instance.index)
    {
        Some(slot) => *slot = instance,
        None => {
            instances.push(instance);
            instances.sort_by(|a, b| (&a.group, a.index).cmp(&(&b.group, b.index)));
        }
    }
}

async fn save(director: &Director, deployment: &str, instance: &state::Instance) -> Result<()> {
    let instance = instance.clone();
    director
        .state
        .lock()
        .await
        .update(|doc| put(doc, deployment, instance))?;
    Ok(())
}

/// Gives the instance a VM if it has none: created, recorded, its agent answering, its disk
/// attached and mounted. Returns whether a VM was created.
pub async fn ensure_vm(
    director: &Director,
    target: &Target,
    planned: &Planned,
    instance: &mut state::Instance,
) -> Result<bool> {
    if instance.vm.is_some() {
        return Ok(false);
    }
    let group = planned.group(target);
    let vm_type = target
        .cloud
        .vm_type(&group.vm_type)
        .map(|vm_type| vm_type.cloud_properties.clone())
        .unwrap_or_default();
    let az = planned
        .placement
        .az
        .as_deref()
        .and_then(|az| target.cloud.az(az))
        .map(|az| &az.cloud_properties);
    let name = planned.name();
    let request = VmRequest {
        name: &name,
        stemcell_cid: &target.stemcell_cid,
        stemcell_api_version: target.stemcell_api_version,
        cloud_properties: vm::cloud_properties(&vm_type, az),
        networks: planned.networks.clone(),
        disk_cids: instance.disk.iter().map(|d| d.cid.clone()).collect(),
        group_env: group.env.clone(),
        metadata: json!({
            "director": "thin-director",
            "deployment": target.deployment.name,
            "instance_group": group.name,
            "job": group.name,
            "index": planned.index().to_string(),
            "id": planned.id,
            "name": format!("{}/{}", group.name, planned.id),
        }),
    };
    let stemcell_cid = target.stemcell_cid.clone();
    let deployment = target.deployment.name.clone();
    let new_vm = vm::create(director, &request, async |vm: &NewVm| {
        instance.vm = Some(state::Vm {
            cid: vm.cid.clone(),
            agent_id: vm.agent_id.clone(),
            stemcell_cid: stemcell_cid.clone(),
        });
        // A VM that ran jobs before is a fresh one now.
        instance.applied_spec_sha1 = None;
        save(director, &deployment, instance).await
    })
    .await;
    let new_vm = match new_vm {
        Ok(new_vm) => new_vm,
        Err(err) => {
            // The VM is gone (deleted after its agent stayed silent) or was never made.
            instance.vm = None;
            save(director, &target.deployment.name, instance).await?;
            return Err(err);
        }
    };
    if let Some(disk) = instance.disk.clone() {
        attach_and_mount(director, &new_vm.cid, &new_vm.agent_id, &disk.cid, &name).await?;
    }
    Ok(true)
}

/// `attach_disk`, then the agent's `add_persistent_disk` and `mount_disk`.
async fn attach_and_mount(
    director: &Director,
    vm_cid: &str,
    agent_id: &str,
    disk_cid: &str,
    name: &str,
) -> Result<()> {
    let hint = director.cpi.attach_disk(vm_cid, disk_cid).await?;
    let agent = AgentClient::new(&director.bus, agent_id);
    let agent_error = |source| Error::Agent {
        instance: name.to_owned(),
        source,
    };
    agent
        .wait_until_ready(director.config.agent_wait)
        .await
        .map_err(agent_error)?;
    agent
        .add_persistent_disk(disk_cid, &hint)
        .await
        .map_err(agent_error)?;
    director
        .cpi
        .set_disk_metadata(disk_cid, &json!({"instance": name}))
        .await?;
    agent.mount_disk(disk_cid).await.map_err(agent_error)?;
    Ok(())
}

/// Unmounts, forgets and detaches `disk`, then deletes it.
async fn retire_disk(
    director: &Director,
    vm_cid: &str,
    agent: &AgentClient<'_>,
    disk_cid: &str,
    name: &str,
) -> Result<()> {
    let agent_error = |source| Error::Agent {
        instance: name.to_owned(),
        source,
    };
    if agent
        .list_disk()
        .await
        .map_err(agent_error)?
        .iter()
        .any(|cid| cid == disk_cid)
    {
        agent.unmount_disk(disk_cid).await.map_err(agent_error)?;
    }
    agent
        .remove_persistent_disk(disk_cid)
        .await
        .map_err(agent_error)?;
    director.cpi.detach_disk(vm_cid, disk_cid).await?;
    director.cpi.delete_disk(disk_cid).await?;
    Ok(())
}

/// Makes the instance's disk what `wanted` says (§2.8, the copy path).
async fn converge_disk(
    director: &Director,
    deployment: &str,
    instance: &mut state::Instance,
    wanted: Option<&DiskWanted>,
    name: &str,
) -> Result<()> {
    let vm = instance
        .vm
        .clone()
        .ok_or_else(|| Error::Plan(format!("{name} has no VM")))?;
    let agent = AgentClient::new(&director.bus, &vm.agent_id);
    let current = instance.disk.clone();
    match (current, wanted) {
        (None, None) => Ok(()),
        (Some(disk), Some(wanted))
            if disk.size_mb == wanted.size_mb
                && disk.cloud_properties == wanted.cloud_properties =>
        {
            Ok(())
        }
        (Some(old), None) => {
            retire_disk(director, &vm.cid, &agent, &old.cid, name).await?;
            instance.disk = None;
            save(director, deployment, instance).await
        }
        (old, Some(wanted)) => {
            let cid = director
                .cpi
                .create_disk(wanted.size_mb, &wanted.cloud_properties, Some(&vm.cid))
                .await?;
            attach_and_mount(director, &vm.cid, &vm.agent_id, &cid, name).await?;
            if let Some(old) = &old {
                agent
                    .migrate_disk(&old.cid, &cid)
                    .await
                    .map_err(|source| Error::Agent {
                        instance: name.to_owned(),
                        source,
                    })?;
            }
            instance.disk = Some(Disk {
                cid,
                size_mb: wanted.size_mb,
                cloud_properties: wanted.cloud_properties.clone(),
            });
            save(director, deployment, instance).await?;
            if let Some(old) = old {
                retire_disk(director, &vm.cid, &agent, &old.cid, name).await?;
            }
            Ok(())
        }
    }
}

/// Whether the instance must be updated: a new VM, a changed apply spec, or a disk to change.
pub fn needs_update(
    instance: &state::Instance,
    spec_sha1: &str,
    wanted: Option<&DiskWanted>,
) -> bool {
    let disk_differs = match (&instance.disk, wanted) {
        (None, None) => false,
        (Some(disk), Some(wanted)) => {
            disk.size_mb != wanted.size_mb || disk.cloud_properties != wanted.cloud_properties
        }
        _ => true,
    };
    instance.applied_spec_sha1.as_deref() != Some(spec_sha1) || disk_differs
}

/// Updates the instance to `spec` (see the module docs); `schedule` is its watch schedule.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    director: &Director,
    deployment: &str,
    instance: &mut state::Instance,
    spec: &Value,
    spec_sha1: &str,
    wanted_disk: Option<&DiskWanted>,
    schedule: &[std::time::Duration],
    name: &str,
) -> Result<()> {
    let vm = instance
        .vm
        .clone()
        .ok_or_else(|| Error::Plan(format!("{name} has no VM")))?;
    let agent = AgentClient::new(&director.bus, &vm.agent_id);
    let agent_error = |source| Error::Agent {
        instance: name.to_owned(),
        source,
    };
    // Agents reconnect to a director's NATS within seconds of it starting; nothing sent before
    // that would arrive.
    agent
        .wait_until_ready(director.config.agent_wait)
        .await
        .map_err(agent_error)?;
    let disk_changes = match (&instance.disk, wanted_disk) {
        (Some(disk), Some(wanted)) => disk.size_mb != wanted.size_mb,
        (None, None) => false,
        _ => true,
    };
    if instance.applied_spec_sha1.is_some() {
        agent.prepare(spec).await.map_err(agent_error)?;
        let keep = json!({
            "BOSH_VM_NEXT_STATE": "keep",
            "BOSH_INSTANCE_NEXT_STATE": "keep",
            "BOSH_DEPLOYMENT_NEXT_STATE": "keep",
        });
        agent
            .run_script("pre-stop", keep)
            .await
            .map_err(agent_error)?;
        let kind = if disk_changes { "shutdown" } else { "update" };
        agent.drain(kind, spec).await.map_err(agent_error)?;
        agent.stop().await.map_err(agent_error)?;
        agent
            .run_script("post-stop", json!({}))
            .await
            .map_err(agent_error)?;
    }
    converge_disk(director, deployment, instance, wanted_disk, name).await?;
    agent.apply(spec).await.map_err(agent_error)?;
    agent
        .run_script("pre-start", json!({}))
        .await
        .map_err(agent_error)?;
    agent.start().await.map_err(agent_error)?;
    agent
        .watch_running(name, schedule)
        .await
        .map_err(agent_error)?;
    agent
        .run_script("post-start", json!({}))
        .await
        .map_err(agent_error)?;
    instance.applied_spec_sha1 = Some(spec_sha1.to_owned());
    save(director, deployment, instance).await
}

/// Deletes the instance's VM, keeping its disk (detached) for the VM that replaces it; an agent or
/// VM that is gone already is no obstacle. The instance then has no VM in the state.
pub async fn delete_vm_keeping_disk(
    director: &Director,
    deployment: &str,
    instance: &mut state::Instance,
) -> Result<()> {
    let Some(vm) = instance.vm.clone() else {
        return Ok(());
    };
    // A VM the CPI no longer has (what a resurrection usually finds) has no jobs to stop, no agent
    // worth waiting for and no disk attached; a CPI that cannot tell gets both asked of it.
    let exists = director.cpi.has_vm(&vm.cid).await.unwrap_or(true);
    if exists {
        let agent = AgentClient::new(&director.bus, &vm.agent_id);
        if agent.wait_until_ready(RECONNECT_WAIT).await.is_ok() {
            if let Err(err) = agent.stop().await {
                tracing::warn!(vm = %vm.cid, error = %err, "stopping jobs before deleting their VM");
            }
        }
        if let Some(disk) = &instance.disk {
            director.cpi.detach_disk(&vm.cid, &disk.cid).await?;
        }
    }
    vm::delete(director, &vm.cid).await?;
    instance.vm = None;
    instance.applied_spec_sha1 = None;
    save(director, deployment, instance).await
}

/// Stops an instance that is no longer wanted and deletes its VM and disk.
pub async fn delete(
    director: &Director,
    deployment: &str,
    instance: &state::Instance,
) -> Result<()> {
    let name = format!("{}/{}", instance.group, instance.id);
    if let Some(vm) = &instance.vm {
        let agent = AgentClient::new(&director.bus, &vm.agent_id);
        // An agent that does not answer is no reason to keep a VM the deployment dropped.
        let ready = agent.wait_until_ready(RECONNECT_WAIT).await.is_ok();
        if let (true, Ok(spec)) = (ready, agent.get_state().await) {
            let delete_env = json!({
                "BOSH_VM_NEXT_STATE": "delete",
                "BOSH_INSTANCE_NEXT_STATE": "delete",
                "BOSH_DEPLOYMENT_NEXT_STATE": "keep",
            });
            for step in [
                agent.run_script("pre-stop", delete_env).await,
                agent.drain("shutdown", &spec).await,
                agent.stop().await,
                agent.run_script("post-stop", json!({})).await,
            ] {
                if let Err(err) = step {
                    tracing::warn!(instance = %name, error = %err, "stopping an instance being deleted");
                }
            }
        }
        if let Some(disk) = &instance.disk {
            director.cpi.detach_disk(&vm.cid, &disk.cid).await?;
        }
        vm::delete(director, &vm.cid).await?;
    }
    if let Some(disk) = &instance.disk {
        director.cpi.delete_disk(&disk.cid).await?;
    }
    let (group, index) = (instance.group.clone(), instance.index);
    director.state.lock().await.update(|doc| {
        if let Some(d) = doc.deployments.get_mut(deployment) {
            d.instances
                .retain(|i| !(i.group == group && i.index == index));
        }
    })?;
    Ok(())
}
