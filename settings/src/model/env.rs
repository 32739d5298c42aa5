//! The `env` section (`settings.Env`, `settings.BoshEnv`): what the director sets for every VM of an
//! instance group through the manifest's `env` block.

use serde::{Deserialize, Serialize};

use crate::model::{Blobstore, DEFAULT_PARALLEL};

/// The `env` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Env {
    /// `env.bosh`.
    pub bosh: BoshEnv,
    /// Filesystem for persistent disks: `ext4` (the default when empty) or `xfs`.
    pub persistent_disk_fs: String,
    /// Extra mount options for persistent disks.
    pub persistent_disk_mount_options: Vec<String>,
    /// Partitioner for persistent disks: empty (automatic), `parted` or `sfdisk`.
    pub persistent_disk_partitioner: String,
}

/// `env.bosh`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BoshEnv {
    /// `agent.settings.tmpfs`.
    pub agent: AgentEnv,
    /// Crypted password for root and vcap; empty means locked (`*`).
    pub password: String,
    /// Leave root's password alone.
    pub keep_root_password: bool,
    /// Remove the files listed in `bosh/etc/dev_tools_file_list` at boot.
    pub remove_dev_tools: bool,
    /// Remove the files listed in `bosh/etc/static_libraries_list` at boot.
    pub remove_static_libraries: bool,
    /// SSH keys for vcap, in addition to the IaaS key.
    pub authorized_keys: Vec<String>,
    /// Swap size in MiB; `0` means no swap, absent means computed from RAM and disk size.
    pub swap_size: Option<u64>,
    /// mbus certificates and URLs.
    pub mbus: Mbus,
    /// `ipv6.enable`.
    pub ipv6: Ipv6,
    /// tmpfs for `/var/vcap/data/jobs` and `sensitive_blobs`.
    pub job_dir: JobDir,
    /// Size of the `sys/run` tmpfs.
    pub run_dir: RunDir,
    /// Blobstores, the first of which wins over the top-level `blobstore`.
    pub blobstores: Vec<Blobstore>,
    /// NTP servers; when present (even empty) they win over the top-level `ntp`. Go tags this
    /// `omitempty`, so an empty list vanished from its cache and the top-level servers came back on
    /// the next boot from the cache; an empty list is written here, and only an absent one is omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ntp: Option<Vec<String>>,
    /// How many packages `prepare` and `apply` fetch at once (default 5).
    pub parallel: Option<i64>,
}

/// `env.bosh.agent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentEnv {
    /// `env.bosh.agent.settings`.
    pub settings: AgentSettings,
}

/// `env.bosh.agent.settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSettings {
    /// Keep `settings.json` and the disk hints on a tmpfs.
    pub tmpfs: bool,
}

/// `env.bosh.mbus` (also the `mbus` of `update_settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mbus {
    /// The agent's TLS identity and the CA it trusts.
    pub cert: CertKeyPair,
    /// mbus URLs, tried in order.
    pub urls: Vec<String>,
}

/// A CA with a certificate and its private key, in PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertKeyPair {
    /// The CA certificate(s) that sign the peer.
    pub ca: String,
    /// The private key (a secret).
    pub private_key: String,
    /// The certificate.
    pub certificate: String,
}

/// `env.bosh.ipv6`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ipv6 {
    /// Enable IPv6 in the kernel (may reboot).
    pub enable: bool,
}

/// `env.bosh.job_dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobDir {
    /// Put jobs and sensitive blobs on a tmpfs.
    pub tmpfs: bool,
    /// Its size, passed to `mount` as given (default `100m`).
    pub tmpfs_size: String,
}

/// `env.bosh.run_dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunDir {
    /// Size of the `sys/run` tmpfs, passed to `mount` as given (default `16m`).
    pub tmpfs_size: String,
}

impl BoshEnv {
    /// `parallel`, or 5.
    pub fn parallel(&self) -> i64 {
        self.parallel.unwrap_or(DEFAULT_PARALLEL)
    }
}

impl Env {
    /// Swap size in bytes for an ephemeral disk of `disk_bytes` on a VM with `ram_bytes` of memory:
    /// `swap_size` MiB when set, else the RAM size if it fits in half the disk, else half the disk
    /// (`platform/linux_platform.go`, `calculateEphemeralDiskPartitionSizes`).
    pub fn swap_size_bytes(&self, ram_bytes: u64, disk_bytes: u64) -> u64 {
        match self.bosh.swap_size {
            Some(mib) => mib.saturating_mul(1024 * 1024),
            None if ram_bytes <= disk_bytes / 2 => ram_bytes,
            None => disk_bytes / 2,
        }
    }
}
