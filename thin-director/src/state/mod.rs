//! The director's durable state: what it has created and where it stands, in one JSON document
//! under its state directory ([`Store`]: atomic, locked).
//!
//! Each deploy step is recorded as it completes (a VM once `create_vm` answered, a disk once
//! created, an instance's applied configuration once `apply` succeeded), so a deploy interrupted at
//! any point finds on its next run what exists and converges from there.

pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use store::Store;

/// Everything the director remembers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DirectorState {
    /// The director's UUID (`context.director_uuid` of CPI calls), made once.
    pub director_uuid: String,
    /// The NATS port agents were given (0 before the first run).
    pub nats_port: u16,
    /// The blobstore port agents were given (0 before the first run).
    pub blobstore_port: u16,
    /// The password agents use with the blobstore, made once.
    pub blobstore_password: String,
    /// The URL of the existing NATS agents were given (the director config); `None`: the
    /// director's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_nats_url: Option<String>,
    /// The endpoint of the external blobstore agents were given; `None`: the director's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_blobstore_endpoint: Option<String>,
    /// Deployments by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Stemcells uploaded to the CPI, by `<name>/<version>`.
    pub stemcells: BTreeMap<String, Stemcell>,
    /// Job tarballs put in the blobstore, by `<release>/<job>/<fingerprint>`.
    pub job_blobs: BTreeMap<String, CompiledPackage>,
    /// Compiled packages by their [`CompiledPackageKey`](crate::release::CompiledPackageKey) text.
    pub compiled_packages: BTreeMap<String, CompiledPackage>,
}

impl DirectorState {
    /// The agent ids of every recorded VM: who may be on the bus.
    pub fn agent_ids(&self) -> std::collections::BTreeSet<String> {
        self.deployments
            .values()
            .flat_map(|deployment| deployment.instances.iter())
            .filter_map(|instance| instance.vm.as_ref().map(|vm| vm.agent_id.clone()))
            .collect()
    }
}

/// A deployment: what was asked last, its instances and disks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deployment {
    /// The manifest of the last deploy (its text), what `recreate` and resurrection converge to.
    pub manifest: String,
    /// The cloud config of the last deploy (its text).
    pub cloud_config: String,
    /// The directory relative release URLs of the manifest are read from.
    pub manifest_dir: std::path::PathBuf,
    /// Its instances, in group and index order.
    pub instances: Vec<Instance>,
    /// Disks no instance uses any more, to delete.
    pub orphaned_disks: Vec<String>,
}

/// One instance of an instance group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Instance {
    /// The instance group.
    pub group: String,
    /// Its index in the group.
    pub index: u32,
    /// Its UUID.
    pub id: String,
    /// Its AZ.
    pub az: Option<String>,
    /// Whether it is the group's bootstrap instance.
    pub bootstrap: bool,
    /// Its IPs by network name.
    pub ips: BTreeMap<String, String>,
    /// Its VM, once created.
    pub vm: Option<Vm>,
    /// Its persistent disk, once created.
    pub disk: Option<Disk>,
    /// The SHA-1 of the apply spec last applied and started, to tell changed instances.
    pub applied_spec_sha1: Option<String>,
}

/// A VM the CPI created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vm {
    /// Its cid.
    pub cid: String,
    /// Its agent's id.
    pub agent_id: String,
    /// The stemcell it was created from.
    pub stemcell_cid: String,
}

/// A persistent disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    /// Its cid.
    pub cid: String,
    /// Its size in MiB.
    pub size_mb: u64,
    /// The cloud properties it was created with.
    pub cloud_properties: Value,
}

/// A stemcell the CPI knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stemcell {
    /// Its cid.
    pub cid: String,
    /// `api_version` from its manifest.
    pub api_version: Option<u32>,
}

/// A blob in the director's blobstore: a compiled package or a job tarball.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompiledPackage {
    /// The blob id.
    pub blobstore_id: String,
    /// Its SHA-1.
    pub sha1: String,
}
