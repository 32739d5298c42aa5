//! Creating and deleting a VM (`reference/director-cpi.md` §2.5): a new agent id let on the bus,
//! its certificate in `env.bosh.mbus.cert`, the director's blobstore (its own or the external one)
//! in `env.bosh.blobstores`, `create_vm` (retried by the CPI client while the CPI says
//! `ok_to_retry`), `set_vm_metadata`, and the ping loop until the agent answers. A VM whose agent never answers is deleted, and the error
//! carries the end of its agent's log when the director can see it (the process CPI).

use serde_json::{Map, Value, json};

use crate::agent_client::AgentClient;
use crate::cpi::CreateVm;
use crate::deploy::director::{CpiChoice, Director};
use crate::deploy::{Error, Result};

/// A VM and its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVm {
    /// The VM's cid.
    pub cid: String,
    /// Its agent's id.
    pub agent_id: String,
}

/// What a VM is made of.
#[derive(Debug, Clone)]
pub struct VmRequest<'a> {
    /// Its name in messages (`web/0`, `compilation-hello`).
    pub name: &'a str,
    /// The stemcell's cid.
    pub stemcell_cid: &'a str,
    /// The stemcell's api version.
    pub stemcell_api_version: Option<u32>,
    /// The VM type's and AZ's cloud properties, merged.
    pub cloud_properties: Value,
    /// Network settings by name.
    pub networks: Value,
    /// Disks it will attach.
    pub disk_cids: Vec<String>,
    /// The group's `env` (its `bosh` part is merged under the director's).
    pub group_env: Map<String, Value>,
    /// `set_vm_metadata` tags.
    pub metadata: Value,
}

/// Creates a VM and waits for its agent. `on_created` runs once the CPI answered (to record the VM
/// before anything else can fail).
pub async fn create(
    director: &Director,
    request: &VmRequest<'_>,
    on_created: impl AsyncFnOnce(&NewVm) -> Result<()>,
) -> Result<NewVm> {
    let agent_id = uuid::Uuid::new_v4().to_string();
    director.allow_agent(&agent_id).await?;
    let cert = director.mbus.agent_certificate(&agent_id)?;
    let mut env = request.group_env.clone();
    let mut bosh = match env.remove("bosh") {
        Some(Value::Object(bosh)) => bosh,
        _ => Map::new(),
    };
    bosh.insert(
        "mbus".into(),
        json!({"cert": {
            "ca": director.mbus.server_ca(),
            "certificate": cert.certificate,
            "private_key": cert.private_key,
        }}),
    );
    bosh.insert(
        "blobstores".into(),
        Value::Array(vec![director.blobs.agent_settings().clone()]),
    );
    env.insert("bosh".into(), Value::Object(bosh));
    let create = CreateVm {
        agent_id: &agent_id,
        stemcell_cid: request.stemcell_cid,
        cloud_properties: request.cloud_properties.clone(),
        networks: request.networks.clone(),
        disk_cids: request.disk_cids.clone(),
        env: Value::Object(env),
        stemcell_api_version: request.stemcell_api_version,
    };
    let cid = director.cpi.create_vm(&create).await?;
    let vm = NewVm { cid, agent_id };
    on_created(&vm).await?;
    director
        .cpi
        .set_vm_metadata(&vm.cid, &request.metadata)
        .await?;
    if let Err(err) = wait_ready(director, &vm).await {
        let log = agent_log_tail(director, &vm.cid);
        if let Err(delete) = director.cpi.delete_vm(&vm.cid).await {
            tracing::warn!(vm = %vm.cid, error = %delete, "deleting the unresponsive VM failed");
        }
        return Err(Error::AgentUnresponsive {
            name: request.name.to_owned(),
            vm_cid: vm.cid.clone(),
            source: Box::new(err),
            log,
        });
    }
    Ok(vm)
}

/// Waits until the VM's agent answers `ping`.
pub async fn wait_ready(director: &Director, vm: &NewVm) -> crate::agent_client::Result<()> {
    AgentClient::new(&director.bus, &vm.agent_id)
        .wait_until_ready(director.config.agent_wait)
        .await
}

/// Deletes a VM (one that is gone already is fine).
pub async fn delete(director: &Director, vm_cid: &str) -> Result<()> {
    Ok(director.cpi.delete_vm(vm_cid).await?)
}

/// The last lines of the agent log of a process CPI VM; empty for other CPIs.
pub fn agent_log_tail(director: &Director, vm_cid: &str) -> String {
    let CpiChoice::Process { .. } = director.config.cpi else {
        return String::new();
    };
    let path = director
        .config
        .state_dir
        .join("process-cpi/vms")
        .join(vm_cid)
        .join("agent.log");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The VM type's cloud properties with the AZ's under them.
pub fn cloud_properties(vm_type: &Map<String, Value>, az: Option<&Map<String, Value>>) -> Value {
    let mut merged = az.cloned().unwrap_or_default();
    merged.extend(vm_type.clone());
    Value::Object(merged)
}
