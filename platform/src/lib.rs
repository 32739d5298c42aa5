//! The OS boundary of the BOSH agent: everything that runs a command, touches a device or reads a host
//! path outside the base dir goes through this crate (`platform/platform_interface.go`).
//!
//! * [`Platform`]: the operations the agent's actions call, one module per concern for their errors:
//!   [`disk`], [`user`], [`cert`], [`net`], [`power`], [`vitals`], [`owner`]; and the VM's
//!   bootstrap, one [`bootstrap::Step`] at a time in the reference's order;
//! * [`cmd`]: the only place that spawns processes ([`cmd::CommandRunner`], the real
//!   [`cmd::SystemRunner`], and a recording fake in `testing`, behind the `testing` feature);
//! * [`host_paths`]: every host path (`/dev`, `/proc`, `/sys`, `/etc`) under a root that tests move;
//!   [`mount`]: the host's mount table; [`name`]: outside names joined to paths;
//! * [`linux`] and [`dummy`]: the two platforms. The dummy platform is a product feature (the BOSH
//!   director's integration suite runs agents with `-P dummy`): it keeps its state as JSON under the
//!   base dir and writes nothing outside it.
//!
//! The crate also mounts config drives and CD-ROMs for the settings sources
//! ([`settings::source::Mounter`]). On Linux everything is real but iSCSI disk lookup and
//! `BindMountPersistentDisk` (warden and bosh-lite only), which fail with an `Unsupported` error.
//! **Architecture invariant:** `platform` knows no protocol and no message bus.
//!
//! To add an operation: add the method to [`Platform`] with its concern's `Error`, implement it in
//! `dummy/` (state under the base dir, observable by tests) and in `linux/`.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod bootstrap;
pub mod cert;
pub mod cmd;
pub mod disk;
pub mod dns;
pub mod dummy;
pub mod host_paths;
pub mod linux;
pub mod logrotate;
pub mod mount;
pub mod name;
pub mod net;
pub mod owner;
pub mod power;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod user;
pub mod vitals;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use settings::model::DiskSettings;

pub use host_paths::HostPaths;
pub use vitals::Vitals;

/// What the agent's actions ask of the VM. Every method blocks; the agent calls them inside
/// `tokio::task::spawn_blocking`.
pub trait Platform: Send + Sync + fmt::Debug {
    /// Mounts the persistent disk `disk` on `mount_point` (`<base>/store`), creating the directory.
    /// If the disk is already mounted this does nothing; if another disk occupies `mount_point`, the
    /// disk goes on `<base>/store_migration_target` instead, ready for
    /// [`migrate_persistent_disk`](Platform::migrate_persistent_disk). Records the disk CID in
    /// `bosh/managed_disk_settings.json`.
    fn mount_persistent_disk(
        &self,
        disk: &DiskSettings,
        mount_point: &Path,
    ) -> Result<(), disk::Error>;

    /// Unmounts the persistent disk `disk`; `Ok(false)` if it was not mounted.
    fn unmount_persistent_disk(&self, disk: &DiskSettings) -> Result<bool, disk::Error>;

    /// Whether the persistent disk `disk` is mounted (anywhere).
    fn is_persistent_disk_mounted(&self, disk: &DiskSettings) -> Result<bool, disk::Error>;

    /// Whether the persistent disk `disk` looks partitioned, so the bootstrap remounts it
    /// (`IsPersistentDiskMountable`); platforms without partitions say no.
    fn is_persistent_disk_mountable(&self, disk: &DiskSettings) -> Result<bool, disk::Error> {
        let _ = disk;
        Ok(false)
    }

    /// Whether something is mounted exactly on `path`.
    fn is_mount_point(&self, path: &Path) -> Result<bool, disk::Error>;

    /// Moves the data of the disk on `from_mount_point` to the disk on `to_mount_point`, unmounts the
    /// old disk and mounts the new one on `from_mount_point` (`migrate_disk`).
    fn migrate_persistent_disk(
        &self,
        from_mount_point: &Path,
        to_mount_point: &Path,
    ) -> Result<(), disk::Error>;

    /// Makes `disk` known to jobs under `name` (`<base>/instance/disks/<name>` on Linux).
    fn associate_disk(&self, name: &str, disk: &DiskSettings) -> Result<(), disk::Error>;

    /// Makes a dynamic disk (attached and detached by the director at run time, neither formatted nor
    /// mounted) available at `<base>/data/dynamic_disks/<cid>`.
    fn add_dynamic_disk(&self, disk: &DiskSettings) -> Result<(), disk::Error>;

    /// Forgets the dynamic disk `disk_cid`; forgetting an unknown disk is not an error.
    fn remove_dynamic_disk(&self, disk_cid: &str) -> Result<(), disk::Error>;

    /// Creates `user` for `bosh ssh` (groups `vcap`, `admin`, `bosh_sudoers`, `bosh_sshers`) and makes
    /// `public_key` its only authorized key.
    fn setup_ssh(&self, user: &str, public_key: &str) -> Result<(), user::Error>;

    /// Deletes every user whose name starts with `bosh_` and matches `user_regex`.
    fn cleanup_ssh(&self, user_regex: &str) -> Result<(), user::Error>;

    /// The host's SSH public key, for `ssh setup`'s answer.
    fn host_public_key(&self) -> Result<String, user::Error>;

    /// Sets `user`'s crypted password (`env.bosh.password`); empty locks it (`*`).
    fn set_user_password(&self, user: &str, crypted: &str) -> Result<(), user::Error>;

    /// Replaces the director's trusted CA certificates with those of `pem_bundle` (PEM blocks; an
    /// empty bundle removes them all).
    fn update_trusted_certs(&self, pem_bundle: &str) -> Result<(), cert::Error>;

    /// Points the records' names at their addresses (`/etc/hosts` on Linux) for the VM `hostname`.
    fn save_dns_records(&self, records: &dns::DnsRecords, hostname: &str)
    -> Result<(), dns::Error>;

    /// The host's system log directory (`/var/log`), for `fetch_logs system`; `None` where the
    /// platform has none to offer (the dummy platform reads nothing outside the base dir).
    fn system_log_dir(&self) -> Option<std::path::PathBuf>;

    /// Flushes the ARP cache entries of `ips`.
    fn delete_arp_entries(&self, ips: &[String]) -> Result<(), net::Error>;

    /// The network of the default route (IPv6 when `ipv6`): what a DHCP network got.
    fn default_network(&self, ipv6: bool) -> Result<net::DefaultNetwork, net::Error>;

    /// Powers the VM off.
    fn shutdown(&self) -> Result<(), power::Error>;

    /// The VM's vitals now.
    fn vitals(&self) -> Result<Vitals, vitals::Error>;

    /// Who installed jobs and packages must belong to (`root:vcap` on Linux); `None` where owners
    /// are left as they are.
    fn installed_file_owner(&self) -> Result<Option<owner::FileOwner>, owner::Error>;

    /// Sets up the rotation of the jobs' logs under `base` at `size` (on every `apply`).
    fn setup_logrotate(&self, base: &Path, size: &str) -> Result<(), logrotate::Error>;

    /// Runs one step of the VM's bootstrap; the agent runs [`bootstrap::Step::ORDER`] once per
    /// start, after loading the settings. Each step is idempotent across agent and VM restarts.
    fn bootstrap(
        &self,
        step: bootstrap::Step,
        input: &bootstrap::Input<'_>,
    ) -> Result<(), bootstrap::Error>;

    /// Lets only root reach the NATS servers at `targets` (the resolved mbus addresses), called
    /// before every NATS (re)connection; the caller only logs a failure. Nothing by default.
    fn update_nats_firewall(
        &self,
        targets: &[std::net::SocketAddr],
    ) -> Result<(), bootstrap::Error> {
        let _ = targets;
        Ok(())
    }
}

/// The platforms `-P` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformName {
    /// A real Linux VM (`-P ubuntu`, also `linux`).
    Linux,
    /// The dummy platform (`-P dummy`): state in JSON files under the base dir, no host changes.
    Dummy,
}

/// `-P` named a platform this agent does not have.
#[derive(Debug, thiserror::Error)]
#[error("unknown platform '{0}' (expected ubuntu, linux or dummy)")]
pub struct UnknownPlatform(pub String);

impl PlatformName {
    /// Parses `-P`.
    pub fn parse(name: &str) -> Result<PlatformName, UnknownPlatform> {
        match name {
            "ubuntu" | "linux" => Ok(PlatformName::Linux),
            "dummy" => Ok(PlatformName::Dummy),
            other => Err(UnknownPlatform(other.to_owned())),
        }
    }
}

/// The drive mounter of the named platform, for the settings sources; `dirs` is the agent's base dir.
pub fn drive_mounter(
    name: PlatformName,
    dirs: &settings::Dirs,
) -> Arc<dyn settings::source::Mounter> {
    match name {
        PlatformName::Linux => Arc::new(linux::drive::LinuxDriveMounter::new(
            Arc::new(cmd::SystemRunner),
            HostPaths::system(),
        )),
        PlatformName::Dummy => Arc::new(dummy::drive::DummyDriveMounter::new(dirs)),
    }
}

/// The named platform; `dirs` is the agent's base dir. The Linux platform gets default
/// `Platform.Linux` options ([`new_platform_with_options`] takes the agent config's).
pub fn new_platform(name: PlatformName, dirs: &settings::Dirs) -> Arc<dyn Platform> {
    new_platform_with_options(name, dirs, &settings::agent_config::LinuxOptions::default())
}

/// The named platform with the agent config's `Platform.Linux` options (the dummy platform
/// ignores them).
pub fn new_platform_with_options(
    name: PlatformName,
    dirs: &settings::Dirs,
    linux_options: &settings::agent_config::LinuxOptions,
) -> Arc<dyn Platform> {
    match name {
        PlatformName::Linux => Arc::new(linux::LinuxPlatform::with_options(
            HostPaths::system(),
            dirs,
            Arc::new(cmd::SystemRunner),
            linux_options.clone(),
        )),
        PlatformName::Dummy => Arc::new(dummy::DummyPlatform::new(dirs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_platform_builds_the_named_platform() {
        let base = tempfile::tempdir().unwrap();
        let dirs = settings::Dirs::new(base.path());
        let dummy = new_platform(PlatformName::Dummy, &dirs);
        assert_eq!(dummy.host_public_key().unwrap(), "dummy-public-key");
        let linux = new_platform(PlatformName::Linux, &dirs);
        assert_eq!(
            linux.system_log_dir(),
            Some(std::path::PathBuf::from("/var/log"))
        );
    }

    #[test]
    fn platform_names_follow_the_go_agent() {
        assert_eq!(PlatformName::parse("ubuntu").unwrap(), PlatformName::Linux);
        assert_eq!(PlatformName::parse("dummy").unwrap(), PlatformName::Dummy);
        assert_eq!(
            PlatformName::parse("windows").unwrap_err().to_string(),
            "unknown platform 'windows' (expected ubuntu, linux or dummy)"
        );
    }
}
