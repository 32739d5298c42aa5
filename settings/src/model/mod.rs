//! The settings document the director (through the CPI) hands every VM, and the rules derived from it.
//!
//! Follows `settings/settings.go` and `settings/update_settings.go` of the Go agent. Field names and
//! order match the Go structs' JSON tags, so re-encoding writes what the Go agent writes; decoding goes
//! through [`crate::gojson`] (keys match case-insensitively, unknown keys are ignored, `null` is a zero
//! value). `cloud_properties`, `trusted_certs`, `dns_record_name` and other keys the agent does not use are
//! accepted and dropped, as in Go.

mod disks;
mod env;
mod network;
mod update;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use disks::{DiskIscsi, DiskObject, DiskSettings, DiskSpec, Disks, IscsiSettings};
pub use env::{AgentEnv, AgentSettings, BoshEnv, CertKeyPair, Env, Ipv6, JobDir, Mbus, RunDir};
pub use network::{Network, Networks, Route};
pub use update::{DiskAssociation, UpdateSettings};

/// The default `env.bosh.parallel` (how many packages `prepare` fetches at once).
pub const DEFAULT_PARALLEL: i64 = 5;

/// The whole settings document (`settings.Settings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The agent's identity; the NATS subject is `agent.<agent_id>`.
    pub agent_id: String,
    /// The blobstore of last resort (see [`Settings::blobstore`]).
    pub blobstore: Blobstore,
    /// Where the system, ephemeral, persistent and raw ephemeral disks are.
    pub disks: Disks,
    /// Director-controlled environment: passwords, keys, mbus certificates, swap, tmpfs, ...
    pub env: Env,
    /// Networks by name.
    pub networks: Networks,
    /// NTP servers unless `env.bosh.ntp` is given.
    pub ntp: Vec<String>,
    /// The message bus URL unless `env.bosh.mbus.urls` is given.
    pub mbus: String,
    /// The VM's name at the IaaS.
    pub vm: Vm,
    /// Settings the director changed later with `update_settings`, kept in `bosh/update_settings.json`.
    /// Not part of the document: the Go agent tags it `json:"-"`.
    #[serde(skip)]
    pub update_settings: UpdateSettings,
}

/// A blobstore: `provider` (`local`, `dav`, `s3`, `gcs`, ...) and its options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Blobstore {
    /// The provider; the Go field is `Type`, the JSON key `provider`.
    pub provider: String,
    /// Provider options, passed on untouched (credentials among them: never log them).
    pub options: BTreeMap<String, serde_json::Value>,
}

/// The `vm` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vm {
    /// The VM's name at the IaaS.
    pub name: String,
}

/// Why a persistent disk's settings could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Neither the settings nor the hints know the disk; the text is the Go agent's.
    #[error("Persistent disk with volume id '{0}' could not be found")]
    PersistentDiskNotFound(String),
}

impl Settings {
    /// Parses a settings document with Go's decoding rules.
    pub fn parse(bytes: &[u8]) -> Result<Settings, crate::gojson::Error> {
        crate::gojson::from_slice(bytes)
    }

    /// Encodes the document as the Go agent writes `settings.json` (without `update_settings`).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The first mbus URL: `update_settings.mbus.urls`, then `env.bosh.mbus.urls`, then `mbus`.
    pub fn mbus_url(&self) -> &str {
        self.mbus_urls().first().map_or("", String::as_str)
    }

    /// All mbus URLs, with the precedence of [`Settings::mbus_url`].
    pub fn mbus_urls(&self) -> &[String] {
        if !self.update_settings.mbus.urls.is_empty() {
            &self.update_settings.mbus.urls
        } else if !self.env.bosh.mbus.urls.is_empty() {
            &self.env.bosh.mbus.urls
        } else if self.mbus.is_empty() {
            &[]
        } else {
            std::slice::from_ref(&self.mbus)
        }
    }

    /// The mbus certificates: `update_settings.mbus.cert` when its CA is set, else `env.bosh.mbus.cert`.
    pub fn mbus_certs(&self) -> &CertKeyPair {
        if self.update_settings.mbus.cert.ca.is_empty() {
            &self.env.bosh.mbus.cert
        } else {
            &self.update_settings.mbus.cert
        }
    }

    /// The blobstore: `update_settings.blobstores[0]`, then `env.bosh.blobstores[0]`, then `blobstore`.
    pub fn blobstore(&self) -> &Blobstore {
        self.update_settings
            .blobstores
            .first()
            .or_else(|| self.env.bosh.blobstores.first())
            .unwrap_or(&self.blobstore)
    }

    /// NTP servers: `env.bosh.ntp` when present (even empty), else `ntp`.
    pub fn ntp_servers(&self) -> &[String] {
        self.env.bosh.ntp.as_deref().unwrap_or(&self.ntp)
    }

    /// Whether the agent keeps settings and job secrets on tmpfs (`agent.settings.tmpfs || job_dir.tmpfs`).
    pub fn tmpfs_enabled(&self) -> bool {
        self.env.bosh.agent.settings.tmpfs || self.env.bosh.job_dir.tmpfs
    }

    /// The ephemeral disk, from either form of `disks.ephemeral`; empty when there is none.
    pub fn ephemeral_disk_settings(&self) -> DiskSettings {
        self.disks
            .ephemeral
            .as_ref()
            .map(|spec| spec.to_disk_settings(""))
            .unwrap_or_default()
    }

    /// The raw ephemeral disks.
    pub fn raw_ephemeral_disk_settings(&self) -> &[DiskSettings] {
        &self.disks.raw_ephemeral
    }

    /// A persistent disk the settings list, with the env's filesystem, mount options and partitioner.
    pub fn persistent_disk_settings(&self, disk_cid: &str) -> Option<DiskSettings> {
        self.disks
            .persistent
            .get(disk_cid)
            .map(|spec| self.with_persistent_env(spec.to_disk_settings(disk_cid)))
    }

    /// Every persistent disk: those in the settings, overridden by the hints the director sent later
    /// (`bosh/persistent_disk_hints.json`, see `add_persistent_disk`). Hints win, as in Go.
    pub fn all_persistent_disk_settings(
        &self,
        hints: &BTreeMap<String, DiskSettings>,
    ) -> BTreeMap<String, DiskSettings> {
        let mut all: BTreeMap<String, DiskSettings> = self
            .disks
            .persistent
            .iter()
            .map(|(cid, spec)| {
                (
                    cid.clone(),
                    self.with_persistent_env(spec.to_disk_settings(cid)),
                )
            })
            .collect();
        all.extend(hints.iter().map(|(cid, disk)| (cid.clone(), disk.clone())));
        all
    }

    /// One persistent disk from the settings merged with the hints.
    pub fn persistent_disk_settings_with_hints(
        &self,
        disk_cid: &str,
        hints: &BTreeMap<String, DiskSettings>,
    ) -> Result<DiskSettings, Error> {
        if let Some(hint) = hints.get(disk_cid) {
            return Ok(hint.clone());
        }
        self.persistent_disk_settings(disk_cid)
            .ok_or_else(|| Error::PersistentDiskNotFound(disk_cid.to_owned()))
    }

    /// The disk settings a hint sent by the director describes (`PersistentDiskSettingsFromHint`).
    pub fn persistent_disk_settings_from_hint(
        &self,
        disk_cid: &str,
        hint: &DiskSpec,
    ) -> DiskSettings {
        self.with_persistent_env(hint.to_disk_settings(disk_cid))
    }

    fn with_persistent_env(&self, mut disk: DiskSettings) -> DiskSettings {
        disk.file_system_type = self.env.persistent_disk_fs.clone();
        disk.mount_options = self.env.persistent_disk_mount_options.clone();
        disk.partitioner = self.env.persistent_disk_partitioner.clone();
        disk
    }
}

#[cfg(test)]
mod tests;
