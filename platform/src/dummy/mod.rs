//! The dummy platform (`platform/dummy_platform.go`): what the BOSH director's integration suite runs
//! agents on (`-P dummy`). It keeps its state as JSON files under `<base>/bosh/` and writes nothing
//! outside the base dir; vitals are the host's, read-only.
//!
//! State files (the first five are the Go dummy platform's, with its field names; the director's
//! suite reads `mounts.json`, `disk_migrations.json` and `disk_associations.json`):
//!
//! | File under `bosh/` | Content | Written by |
//! |---|---|---|
//! | `mounts.json` | `[{"MountDir","MountOptions","DiskCid"}]` | mount, unmount, migrate |
//! | `managed_disk_settings.json` | the CID of the last mounted disk, as plain text | mount |
//! | `formatted_disks.json` | `[{"DiskCid"}]` | mount |
//! | `disk_migrations.json` | `[{"FromDiskCid","ToDiskCid"}]` | migrate |
//! | `disk_associations.json` | `["<name>"]` | associate |
//! | `dummy_dynamic_disks.json` | `[{"DiskCid"}]` | add/remove dynamic disk |
//! | `dummy_ssh_users.json` | `[{"User","PublicKeys"}]` | ssh setup/cleanup |
//! | `dummy_trusted_certs.pem` | the last PEM bundle, verbatim | trusted certs |
//! | `dummy_arp_flushes.json` | `["<ip>"]`, every address flushed, in order | delete ARP entries |
//! | `dummy_shutdown` | empty; exists once shutdown was asked for | shutdown |
//!
//! Where we differ from the Go dummy platform (each on purpose, to behave like a real VM):
//! `is_persistent_disk_mounted` and `unmount_persistent_disk` answer from `mounts.json` (Go always
//! answers `true`); a migration also moves the new disk's mount to the old mount point; mounting
//! creates the mount point directory (mode 0700, as Linux does); `formatted_disks.json` keeps every
//! disk ever formatted (Go keeps only the last); names are not repeated in `disk_associations.json`;
//! dynamic disks, SSH users, certificates, ARP flushes and shutdown are recorded (Go ignores them).
//! Mount points outside the base dir and bad names are refused before anything is written.
//! Of the bootstrap steps only the passwords are recorded (`bosh/<user>/password`); the others do
//! nothing.

pub mod drive;
pub mod state;

mod cert;
mod disk;
mod net;
mod power;
mod user;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use settings::Dirs;
use settings::model::DiskSettings;

pub use disk::{DiskMigration, DynamicDisk, FormattedDisk, MountRecord};
pub use user::SshUser;

use crate::vitals::{Vitals, VitalsCollector};
use crate::{HostPaths, Platform};

/// `bosh/mounts.json`: [`MountRecord`]s.
pub const MOUNTS_FILE: &str = "mounts.json";
/// DNS record lines (`sync_dns`), as the Go dummy platform keeps them.
pub const ETC_HOSTS_FILE: &str = "etc_hosts";
/// `bosh/formatted_disks.json`: [`FormattedDisk`]s.
pub const FORMATTED_DISKS_FILE: &str = "formatted_disks.json";
/// `bosh/disk_migrations.json`: [`DiskMigration`]s.
pub const DISK_MIGRATIONS_FILE: &str = "disk_migrations.json";
/// `bosh/disk_associations.json`: disk names.
pub const DISK_ASSOCIATIONS_FILE: &str = "disk_associations.json";
/// `bosh/dummy_dynamic_disks.json`: [`DynamicDisk`]s.
pub const DYNAMIC_DISKS_FILE: &str = "dummy_dynamic_disks.json";
/// `bosh/dummy_ssh_users.json`: [`SshUser`]s.
pub const SSH_USERS_FILE: &str = "dummy_ssh_users.json";
/// `bosh/dummy_trusted_certs.pem`: the last trusted certificate bundle.
pub const TRUSTED_CERTS_FILE: &str = "dummy_trusted_certs.pem";
/// `bosh/dummy_arp_flushes.json`: every IP address whose ARP entry was flushed.
pub const ARP_FLUSHES_FILE: &str = "dummy_arp_flushes.json";
/// `bosh/dummy_shutdown`: exists once shutdown was asked for.
pub const SHUTDOWN_FILE: &str = "dummy_shutdown";

/// The host public key `ssh setup` reports, as the Go dummy platform's.
pub const HOST_PUBLIC_KEY: &str = "dummy-public-key";

/// The dummy platform.
#[derive(Debug)]
pub struct DummyPlatform {
    dirs: Dirs,
    vitals: VitalsCollector,
    /// Held across each read-modify-write of a state file, as actions run concurrently.
    state_lock: Mutex<()>,
}

impl DummyPlatform {
    /// The dummy platform of the base dir of `dirs`; vitals are read from the host.
    pub fn new(dirs: &Dirs) -> DummyPlatform {
        DummyPlatform {
            dirs: dirs.clone(),
            vitals: VitalsCollector::new(HostPaths::system(), dirs),
            state_lock: Mutex::new(()),
        }
    }

    /// The path of the state file `name` (one of this module's `*_FILE` constants).
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.dirs.bosh_dir().join(name)
    }

    fn lock_state(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data, only the order of file operations; a panic elsewhere while
        // holding it leaves no half-done write (writes are atomic), so poisoning is ignored.
        self.state_lock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Platform for DummyPlatform {
    fn mount_persistent_disk(
        &self,
        disk: &DiskSettings,
        mount_point: &Path,
    ) -> Result<(), crate::disk::Error> {
        self.mount_disk(disk, mount_point)
    }

    fn unmount_persistent_disk(&self, disk: &DiskSettings) -> Result<bool, crate::disk::Error> {
        self.unmount_disk(disk)
    }

    fn is_persistent_disk_mounted(&self, disk: &DiskSettings) -> Result<bool, crate::disk::Error> {
        self.is_disk_mounted(disk)
    }

    fn is_mount_point(&self, path: &Path) -> Result<bool, crate::disk::Error> {
        self.has_mount_on(path)
    }

    fn migrate_persistent_disk(
        &self,
        from_mount_point: &Path,
        to_mount_point: &Path,
    ) -> Result<(), crate::disk::Error> {
        self.migrate_disk(from_mount_point, to_mount_point)
    }

    fn associate_disk(&self, name: &str, disk: &DiskSettings) -> Result<(), crate::disk::Error> {
        self.associate(name, disk)
    }

    fn add_dynamic_disk(&self, disk: &DiskSettings) -> Result<(), crate::disk::Error> {
        self.add_dynamic(disk)
    }

    fn remove_dynamic_disk(&self, disk_cid: &str) -> Result<(), crate::disk::Error> {
        self.remove_dynamic(disk_cid)
    }

    fn setup_ssh(&self, user: &str, public_key: &str) -> Result<(), crate::user::Error> {
        self.add_ssh_user(user, public_key)
    }

    fn cleanup_ssh(&self, user_regex: &str) -> Result<(), crate::user::Error> {
        self.delete_ssh_users(user_regex)
    }

    fn set_user_password(&self, user: &str, crypted: &str) -> Result<(), crate::user::Error> {
        self.write_password(user, crypted)
    }

    fn host_public_key(&self) -> Result<String, crate::user::Error> {
        Ok(HOST_PUBLIC_KEY.to_owned())
    }

    fn update_trusted_certs(&self, pem_bundle: &str) -> Result<(), crate::cert::Error> {
        self.write_trusted_certs(pem_bundle)
    }

    fn save_dns_records(
        &self,
        records: &crate::dns::DnsRecords,
        _hostname: &str,
    ) -> Result<(), crate::dns::Error> {
        // The Go dummy platform keeps only the record lines, in `bosh/etc_hosts`.
        let lines = records.lines()?;
        let _state = self.lock_state();
        state::write_bytes(&self.state_file(ETC_HOSTS_FILE), lines.as_bytes())?;
        Ok(())
    }

    fn installed_file_owner(&self) -> Result<Option<crate::owner::FileOwner>, crate::owner::Error> {
        Ok(None)
    }

    fn setup_logrotate(&self, base: &Path, size: &str) -> Result<(), crate::logrotate::Error> {
        // Nothing outside the base dir is written; the size is still checked as on Linux.
        crate::logrotate::config(base, size).map(drop)
    }

    fn system_log_dir(&self) -> Option<PathBuf> {
        None
    }

    fn delete_arp_entries(&self, ips: &[String]) -> Result<(), crate::net::Error> {
        self.record_arp_flushes(ips)
    }

    /// Go's dummy: `bosh/dummy-default-network-settings.json` when there is one, else an empty
    /// network.
    fn default_network(
        &self,
        _ipv6: bool,
    ) -> Result<crate::net::DefaultNetwork, crate::net::Error> {
        let path = self
            .dirs
            .bosh_dir()
            .join("dummy-default-network-settings.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
                crate::net::Error::DefaultNetwork(format!("{}: {err}", path.display()))
            }),
            Err(_) => Ok(crate::net::DefaultNetwork::default()),
        }
    }

    fn shutdown(&self) -> Result<(), crate::power::Error> {
        self.record_shutdown()
    }

    fn vitals(&self) -> Result<Vitals, crate::vitals::Error> {
        self.vitals.collect()
    }

    fn bootstrap(
        &self,
        step: crate::bootstrap::Step,
        input: &crate::bootstrap::Input<'_>,
    ) -> Result<(), crate::bootstrap::Error> {
        match step {
            // Passwords go to `bosh/<user>/password`, as before the bootstrap had steps.
            crate::bootstrap::Step::Passwords => {
                let env = &input.settings.env.bosh;
                if !env.keep_root_password {
                    self.write_password("root", &env.password)?;
                }
                self.write_password("vcap", &env.password)?;
                Ok(())
            }
            // Nothing else touches the host; the base dir has no disk, network or mount to set up.
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_are_the_hosts_without_the_agents_unmounted_disks() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        let vitals = platform.vitals().unwrap();
        for percent in [&vitals.cpu.user, &vitals.cpu.sys, &vitals.cpu.wait] {
            let value: f64 = percent.parse().unwrap();
            assert!((0.0..=100.0).contains(&value), "{vitals:?}");
        }
        assert_eq!(vitals.load.len(), 3);
        // A fresh temporary base dir has no mounted data or store directory.
        assert!(vitals.disk.ephemeral.is_none() && vitals.disk.persistent.is_none());
        // Nothing was written under the base dir.
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_host_key_is_the_go_dummy_key() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        assert_eq!(platform.host_public_key().unwrap(), "dummy-public-key");
    }
}
