//! The Linux platform (`platform/linux_platform.go`): real mounts, disks, networks and users.
//!
//! Today it mounts config drives and CD-ROMs for the settings sources ([`drive`]), and of the
//! [`Platform`] operations it implements vitals ([`VitalsCollector`]), `is_mount_point` (from
//! `/proc/self/mountinfo`) and `host_public_key` (`/etc/ssh/ssh_host_rsa_key.pub`). Every other
//! operation fails with its concern's `Unsupported` error, e.g. "mounting persistent disks on linux is
//! not implemented yet"; they arrive with the Linux platform issue.

pub mod drive;

use std::path::Path;
use std::sync::Arc;

use settings::Dirs;
use settings::model::DiskSettings;

use crate::cmd::{Cmd, CommandRunner};
use crate::vitals::{Vitals, VitalsCollector};
use crate::{HostPaths, Platform, cert, disk, dns, logrotate, mount, net, power, user, vitals};

/// The host's SSH public key under `/etc`, as Go reads it.
const HOST_PUBLIC_KEY_FILE: &str = "ssh/ssh_host_rsa_key.pub";

/// The Linux platform.
#[derive(Debug)]
pub struct LinuxPlatform {
    host: HostPaths,
    vitals: VitalsCollector,
    runner: Arc<dyn CommandRunner>,
}

impl LinuxPlatform {
    /// The platform of the host `host`, for the agent whose base dir is that of `dirs`, running
    /// commands through `runner`.
    pub fn new(host: HostPaths, dirs: &Dirs, runner: Arc<dyn CommandRunner>) -> LinuxPlatform {
        LinuxPlatform {
            vitals: VitalsCollector::new(host.clone(), dirs),
            host,
            runner,
        }
    }
}

impl Platform for LinuxPlatform {
    fn mount_persistent_disk(
        &self,
        _disk: &DiskSettings,
        _mount_point: &Path,
    ) -> Result<(), disk::Error> {
        Err(disk::Error::Unsupported("mounting persistent disks"))
    }

    fn unmount_persistent_disk(&self, _disk: &DiskSettings) -> Result<bool, disk::Error> {
        Err(disk::Error::Unsupported("unmounting persistent disks"))
    }

    fn is_persistent_disk_mounted(&self, _disk: &DiskSettings) -> Result<bool, disk::Error> {
        Err(disk::Error::Unsupported(
            "checking whether a persistent disk is mounted",
        ))
    }

    fn is_mount_point(&self, path: &Path) -> Result<bool, disk::Error> {
        mount::is_mount_point(&self.host, path).map_err(disk::Error::Mounts)
    }

    fn migrate_persistent_disk(
        &self,
        _from_mount_point: &Path,
        _to_mount_point: &Path,
    ) -> Result<(), disk::Error> {
        Err(disk::Error::Unsupported("migrating persistent disks"))
    }

    fn associate_disk(&self, _name: &str, _disk: &DiskSettings) -> Result<(), disk::Error> {
        Err(disk::Error::Unsupported("associating disks"))
    }

    fn add_dynamic_disk(&self, _disk: &DiskSettings) -> Result<(), disk::Error> {
        Err(disk::Error::Unsupported("adding dynamic disks"))
    }

    fn remove_dynamic_disk(&self, _disk_cid: &str) -> Result<(), disk::Error> {
        Err(disk::Error::Unsupported("removing dynamic disks"))
    }

    fn setup_ssh(&self, _user: &str, _public_key: &str) -> Result<(), user::Error> {
        Err(user::Error::Unsupported("setting up ssh users"))
    }

    fn cleanup_ssh(&self, _user_regex: &str) -> Result<(), user::Error> {
        Err(user::Error::Unsupported("cleaning up ssh users"))
    }

    fn set_user_password(&self, _user: &str, _crypted: &str) -> Result<(), user::Error> {
        Err(user::Error::Unsupported("setting user passwords"))
    }

    fn host_public_key(&self) -> Result<String, user::Error> {
        let path = self.host.etc(HOST_PUBLIC_KEY_FILE);
        std::fs::read_to_string(&path).map_err(|source| user::Error::ReadHostKey { path, source })
    }

    fn update_trusted_certs(&self, _pem_bundle: &str) -> Result<(), cert::Error> {
        Err(cert::Error::Unsupported("updating trusted certificates"))
    }

    fn save_dns_records(
        &self,
        records: &dns::DnsRecords,
        hostname: &str,
    ) -> Result<(), dns::Error> {
        let hosts = dns::render_etc_hosts(hostname, records)?;
        let path = self.host.etc("hosts");
        // Replaced atomically (the Go agent writes `/etc/hosts-<uuid>` and renames it).
        settings::atomic_file::write(&path, hosts.as_bytes(), 0o644)
            .map_err(|source| dns::Error::Write { path, source })
    }

    fn installed_file_owner(&self) -> Result<Option<crate::owner::FileOwner>, crate::owner::Error> {
        crate::owner::FileOwner::root_vcap().map(Some)
    }

    fn setup_logrotate(&self, base: &Path, size: &str) -> Result<(), logrotate::Error> {
        let text = logrotate::config(base, size)?;
        let dir = self.host.etc("logrotate.d");
        let path = dir.join(logrotate::GROUP);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| logrotate::Error::Write { path, source })?;
        let script = base.join("bosh/bin/setup-logrotate.sh");
        // Go ignores the script's outcome; a stemcell without it has nothing to set up.
        if script.exists() {
            if let Err(err) = self.runner.run(&Cmd::new(&script)) {
                tracing::warn!(error = %err, "setup-logrotate.sh failed");
            }
        }
        Ok(())
    }

    fn system_log_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.host.root().join("var").join("log"))
    }

    fn delete_arp_entries(&self, _ips: &[String]) -> Result<(), net::Error> {
        Err(net::Error::Unsupported("deleting arp entries"))
    }

    fn shutdown(&self) -> Result<(), power::Error> {
        Err(power::Error::Unsupported("shutting down"))
    }

    fn vitals(&self) -> Result<Vitals, vitals::Error> {
        self.vitals.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::{RecordingRunner, Reply};

    struct Fixture {
        root: tempfile::TempDir,
        platform: LinuxPlatform,
        runner: Arc<RecordingRunner>,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let platform = LinuxPlatform::new(
            HostPaths::with_root(root.path()),
            &Dirs::new(root.path().join("var/vcap")),
            runner.clone(),
        );
        Fixture {
            root,
            platform,
            runner,
        }
    }

    #[test]
    fn logrotate_is_configured_and_the_stemcells_script_run_with_its_failure_ignored() {
        let f = fixture();
        let base = f.root.path().join("var/vcap");
        f.platform.setup_logrotate(&base, "10M").unwrap();
        let config = std::fs::read_to_string(f.root.path().join("etc/logrotate.d/vcap")).unwrap();
        assert_eq!(config, logrotate::config(&base, "10M").unwrap());
        assert!(f.runner.recorded().is_empty(), "no script, nothing run");

        let script = base.join("bosh/bin/setup-logrotate.sh");
        f.write("var/vcap/bosh/bin/setup-logrotate.sh", "#!/bin/sh\n");
        f.runner.expect(
            &[script.to_str().unwrap()],
            Reply::Fail(1, "no cron".into()),
        );
        f.platform.setup_logrotate(&base, "50M").unwrap();
        assert_eq!(f.runner.recorded().len(), 1);
        assert!(
            f.platform.setup_logrotate(&base, "5 M").is_err(),
            "a bad size is refused"
        );
    }

    impl Fixture {
        fn write(&self, name: &str, text: &str) {
            let path = self.root.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn operations_still_to_come_say_so() {
        let f = fixture();
        let platform = &f.platform;
        let disk = DiskSettings::default();
        let path = Path::new("/var/vcap/store");
        let errors: Vec<String> = vec![
            platform
                .mount_persistent_disk(&disk, path)
                .unwrap_err()
                .to_string(),
            platform
                .unmount_persistent_disk(&disk)
                .unwrap_err()
                .to_string(),
            platform
                .is_persistent_disk_mounted(&disk)
                .unwrap_err()
                .to_string(),
            platform
                .migrate_persistent_disk(path, path)
                .unwrap_err()
                .to_string(),
            platform.associate_disk("d", &disk).unwrap_err().to_string(),
            platform.add_dynamic_disk(&disk).unwrap_err().to_string(),
            platform
                .remove_dynamic_disk("vol-1")
                .unwrap_err()
                .to_string(),
            platform.setup_ssh("bosh_1", "key").unwrap_err().to_string(),
            platform.cleanup_ssh("^bosh_1$").unwrap_err().to_string(),
            platform.update_trusted_certs("").unwrap_err().to_string(),
            platform.delete_arp_entries(&[]).unwrap_err().to_string(),
            platform.shutdown().unwrap_err().to_string(),
        ];
        assert_eq!(
            errors,
            vec![
                "mounting persistent disks on linux is not implemented yet",
                "unmounting persistent disks on linux is not implemented yet",
                "checking whether a persistent disk is mounted on linux is not implemented yet",
                "migrating persistent disks on linux is not implemented yet",
                "associating disks on linux is not implemented yet",
                "adding dynamic disks on linux is not implemented yet",
                "removing dynamic disks on linux is not implemented yet",
                "setting up ssh users on linux is not implemented yet",
                "cleaning up ssh users on linux is not implemented yet",
                "updating trusted certificates on linux is not implemented yet",
                "deleting arp entries on linux is not implemented yet",
                "shutting down on linux is not implemented yet",
            ]
        );
    }

    #[test]
    fn mount_points_come_from_mountinfo() {
        let f = fixture();
        assert!(matches!(
            f.platform.is_mount_point(Path::new("/")),
            Err(disk::Error::Mounts(_))
        ));
        f.write(
            "proc/self/mountinfo",
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 8:33 / /var/vcap/store rw - ext4 /dev/sdc1 rw\n",
        );
        assert!(
            f.platform
                .is_mount_point(Path::new("/var/vcap/store"))
                .unwrap()
        );
        assert!(
            !f.platform
                .is_mount_point(Path::new("/var/vcap/data"))
                .unwrap()
        );
    }

    #[test]
    fn the_host_key_is_read_under_the_root() {
        let f = fixture();
        let err = f.platform.host_public_key().unwrap_err();
        assert!(
            err.to_string().ends_with("etc/ssh/ssh_host_rsa_key.pub"),
            "{err}"
        );
        f.write("etc/ssh/ssh_host_rsa_key.pub", "ssh-rsa AAAA root@vm\n");
        assert_eq!(
            f.platform.host_public_key().unwrap(),
            "ssh-rsa AAAA root@vm\n"
        );
    }

    #[test]
    fn vitals_are_read_from_the_host_tree() {
        let f = fixture();
        f.write("proc/stat", "cpu  30 10 20 940 0 0 0 0 0 0\n");
        f.write(
            "proc/self/mountinfo",
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
        );
        let vitals = f.platform.vitals().unwrap();
        assert_eq!(
            (vitals.cpu.user.as_str(), vitals.cpu.sys.as_str()),
            ("4.0", "2.0")
        );
        assert!(vitals.disk.system.is_some());
    }
}
