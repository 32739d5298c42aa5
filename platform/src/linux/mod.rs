//! The Linux platform (`platform/linux_platform.go`): real mounts, disks, networks and users.
//!
//! It mounts config drives and CD-ROMs for the settings sources ([`drive`]) and runs the VM's
//! bootstrap ([`Platform::bootstrap`], one module per concern: [`users`], [`ipv6`], [`hostname`],
//! [`interfaces`] and [`networkd`], [`device_path`], [`raw_ephemeral`], [`partition`] and
//! [`ephemeral`], [`root_disk`] (carve and growth), [`layout`], [`ntp`], [`firewall`],
//! [`remove_listed`] (`remove_dev_tools`, `remove_static_libraries`), with
//! [`mounter`] and [`files`] shared). The NATS chain of the [`firewall`] is rewritten through
//! [`Platform::update_nats_firewall`]; jobs add their rules to its monit chain with
//! `bosh-enable-monit-access` ([`monit_access`]). Of the other [`Platform`] operations it implements vitals
//! ([`VitalsCollector`]), `is_mount_point` (from `/proc/self/mountinfo`), passwords (`usermod
//! -p`), `bosh ssh` users ([`ssh_users`]), `host_public_key` (`/etc/ssh/ssh_host_*_key.pub`),
//! trusted certificates ([`certs`]), DNS records (`/etc/hosts`), logrotate, the system logs
//! (`/var/log`), ARP entries and power-off ([`power`]), and the persistent, dynamic and associated
//! disks ([`persistent`]; dynamic and associated disks are links to the resolved device).
//!
//! Every command goes through the [`CommandRunner`], every host path through [`HostPaths`] and
//! every unit restart through [`systemd::Systemd`] (D-Bus in production), so the unit tests run the
//! steps against a temporary root, a recording runner and a recording service manager.

pub mod certs;
pub mod default_network;
pub mod device_path;
pub mod drive;
pub mod ephemeral;
pub mod files;
pub mod firewall;
pub mod hostname;
pub mod interfaces;
pub mod ipv6;
pub mod layout;
pub mod monit_access;
pub mod mounter;
pub mod networkd;
pub mod ntp;
pub mod partition;
pub mod persistent;
pub mod power;
pub mod probe;
pub mod raw_ephemeral;
pub mod remove_listed;
pub mod root_disk;
pub mod ssh_users;
pub mod systemd;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use settings::Dirs;
use settings::agent_config::LinuxOptions;
use settings::model::DiskSettings;

use crate::bootstrap::{self, Step};
use crate::cmd::{Cmd, CommandRunner};
use crate::vitals::{Vitals, VitalsCollector};
use crate::{HostPaths, Platform, cert, disk, dns, logrotate, mount, net, user, vitals};

/// The Linux platform.
#[derive(Debug)]
pub struct LinuxPlatform {
    host: HostPaths,
    dirs: Dirs,
    options: LinuxOptions,
    vitals: VitalsCollector,
    runner: Arc<dyn CommandRunner>,
    systemd: Arc<dyn systemd::Systemd>,
    timing: Timing,
    /// Whether the ephemeral disk step found a disk (the root disk step needs it, as in Go).
    ephemeral_disk_found: std::sync::Mutex<Option<bool>>,
    unmount_retry: persistent::UnmountRetry,
    prober: Arc<dyn probe::Prober>,
}

/// The waits and retries of the bootstrap (Go's; tests shorten them).
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long a disk is looked for and how often.
    pub resolver: device_path::Resolver,
    /// How partitioning commands are retried.
    pub partition_retry: partition::Retry,
    /// How often a static address is looked for after `restart_networking`.
    pub address_tries: u32,
    /// The pause between two looks.
    pub address_retry_delay: Duration,
    /// How `update-ca-certificates` is waited for and retried.
    pub cert_update: certs::UpdateRetry,
}

impl Timing {
    /// Go's waits for the resolver `DevicePathResolutionType` names.
    pub fn new(resolution_type: &str) -> Timing {
        Timing {
            resolver: device_path::Resolver::new(resolution_type),
            partition_retry: partition::Retry::default(),
            address_tries: 10,
            address_retry_delay: Duration::from_secs(1),
            cert_update: certs::UpdateRetry::default(),
        }
    }
}

impl LinuxPlatform {
    /// The platform of the host `host`, for the agent whose base dir is that of `dirs`, running
    /// commands through `runner`, with default `Platform.Linux` options.
    pub fn new(host: HostPaths, dirs: &Dirs, runner: Arc<dyn CommandRunner>) -> LinuxPlatform {
        LinuxPlatform::with_options(host, dirs, runner, LinuxOptions::default())
    }

    /// [`LinuxPlatform::new`] with the agent config's `Platform.Linux` options; units are restarted
    /// through systemd on the system bus ([`systemd::DbusSystemd`], connected at each restart).
    pub fn with_options(
        host: HostPaths,
        dirs: &Dirs,
        runner: Arc<dyn CommandRunner>,
        options: LinuxOptions,
    ) -> LinuxPlatform {
        let mut timing = Timing::new(&options.device_path_resolution_type);
        if !options.disk_id_transform_pattern.is_empty() {
            timing.resolver.id_transform = Some(device_path::IdTransform {
                pattern: options.disk_id_transform_pattern.clone(),
                replacement: options.disk_id_transform_replacement.clone(),
            });
        }
        if !options.lun_device_symlink_path.is_empty() {
            timing.resolver.lun_symlink_base =
                Some(PathBuf::from(&options.lun_device_symlink_path));
        }
        LinuxPlatform {
            vitals: VitalsCollector::new(host.clone(), dirs),
            timing,
            host,
            dirs: dirs.clone(),
            options,
            runner,
            ephemeral_disk_found: std::sync::Mutex::new(None),
            unmount_retry: persistent::UnmountRetry::default(),
            systemd: Arc::new(systemd::DbusSystemd::default()),
            prober: Arc::new(probe::Libblkid),
        }
    }

    /// Replaces the service manager (tests use [`systemd::RecordingSystemd`]).
    pub fn with_systemd(mut self, systemd: Arc<dyn systemd::Systemd>) -> LinuxPlatform {
        self.systemd = systemd;
        self
    }

    /// Replaces the waits and retries (tests use zero delays).
    pub fn with_timing(mut self, timing: Timing) -> LinuxPlatform {
        self.timing = timing;
        self
    }

    /// Replaces what reads devices' signatures (tests script `blkid` through their runner).
    pub fn with_prober(mut self, prober: Arc<dyn probe::Prober>) -> LinuxPlatform {
        self.prober = prober;
        self
    }

    /// Replaces how a busy persistent disk is unmounted again (tests use no delay).
    pub fn with_unmount_retry(mut self, retry: persistent::UnmountRetry) -> LinuxPlatform {
        self.unmount_retry = retry;
        self
    }

    fn persistent(&self) -> persistent::PersistentDisks<'_> {
        persistent::PersistentDisks {
            runner: self.runner.as_ref(),
            host: &self.host,
            dirs: &self.dirs,
            linux: &self.options,
            resolver: &self.timing.resolver,
            unmount_retry: self.unmount_retry,
            prober: self.prober.as_ref(),
        }
    }

    /// Points `link` at `disk`'s device (replacing an older link); a device that does not appear
    /// in time is an error.
    fn link_disk(&self, disk: &DiskSettings, link: &Path) -> bootstrap::Result<()> {
        let device = match self
            .timing
            .resolver
            .find(self.runner.as_ref(), &self.host, disk)?
        {
            device_path::Found::Device(device) => device,
            device_path::Found::TimedOut(message) => {
                return Err(bootstrap::Error::Host(format!(
                    "Timed out resolving device path for {}: {message}",
                    disk.id
                )));
            }
        };
        if let Some(dir) = link.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|err| bootstrap::Error::io("creating directory", dir, err))?;
        }
        match std::fs::remove_file(link) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(bootstrap::Error::io("removing", link, err));
            }
            _ => {}
        }
        std::os::unix::fs::symlink(&device, link)
            .map_err(|err| bootstrap::Error::io("linking", link, err))
    }

    fn layout(&self) -> layout::Layout<'_> {
        layout::Layout {
            runner: self.runner.as_ref(),
            host: &self.host,
            dirs: &self.dirs,
        }
    }

    /// Runs the stemcell script `name` from `<base>/bosh/bin` if the stemcell has it.
    fn run_stemcell_script(&self, name: &str) -> bootstrap::Result<()> {
        let script = self.dirs.bosh_bin_dir().join(name);
        if !script.exists() {
            tracing::debug!(script = %script.display(), "the stemcell has no such script, skipped");
            return Ok(());
        }
        files::run(self.runner.as_ref(), Cmd::new(&script)).map(drop)
    }

    fn setup_networking(&self, settings: &settings::Settings) -> bootstrap::Result<()> {
        let interfaces = interfaces::detect(&self.host)?;
        let options = networkd::NetworkingOptions {
            restart_script: self.dirs.bosh_bin_dir().join("restart_networking"),
            is_systemd: self.options.service_manager == "systemd",
            address_tries: self.timing.address_tries,
            address_retry_delay: self.timing.address_retry_delay,
        };
        networkd::setup_networking(
            self.runner.as_ref(),
            self.systemd.as_ref(),
            &self.host,
            &settings.networks,
            &interfaces,
            &options,
        )
    }
}

impl Platform for LinuxPlatform {
    fn mount_persistent_disk(
        &self,
        disk: &DiskSettings,
        mount_point: &Path,
    ) -> Result<(), disk::Error> {
        self.persistent()
            .mount(disk, mount_point)
            .map(drop)
            .map_err(|err| disk_error(format!("Mounting persistent disk {}", disk.id), err))
    }

    fn unmount_persistent_disk(&self, disk: &DiskSettings) -> Result<bool, disk::Error> {
        self.persistent()
            .unmount(disk)
            .map_err(|err| disk_error(format!("Unmounting persistent disk {}", disk.id), err))
    }

    fn is_persistent_disk_mounted(&self, disk: &DiskSettings) -> Result<bool, disk::Error> {
        self.persistent().is_mounted(disk).map_err(|err| {
            disk_error(
                format!("Checking whether persistent disk {} is mounted", disk.id),
                err,
            )
        })
    }

    fn is_persistent_disk_mountable(&self, disk: &DiskSettings) -> Result<bool, disk::Error> {
        self.persistent().is_mountable(disk).map_err(|err| {
            disk_error(
                format!("Checking if persistent disk {} is partitioned", disk.id),
                err,
            )
        })
    }

    fn is_mount_point(&self, path: &Path) -> Result<bool, disk::Error> {
        mount::is_mount_point(&self.host, path).map_err(disk::Error::Mounts)
    }

    fn migrate_persistent_disk(
        &self,
        from_mount_point: &Path,
        to_mount_point: &Path,
    ) -> Result<(), disk::Error> {
        self.persistent()
            .migrate(from_mount_point, to_mount_point)
            .map_err(|err| disk_error("Migrating persistent disk".to_owned(), err))
    }

    fn associate_disk(&self, name: &str, disk: &DiskSettings) -> Result<(), disk::Error> {
        crate::name::check("disk name", name)?;
        let link = self.dirs.instance_dir().join("disks").join(name);
        let what = format!("Associating disk with name {name}");
        self.link_disk(disk, &link)
            .map_err(|err| disk_error(what, err))
    }

    fn add_dynamic_disk(&self, disk: &DiskSettings) -> Result<(), disk::Error> {
        if disk.id.is_empty() {
            return Err(disk::Error::NoDiskCid);
        }
        crate::name::check("disk cid", &disk.id)?;
        let link = self.dirs.data_dynamic_disks_dir().join(&disk.id);
        self.link_disk(disk, &link)
            .map_err(|err| disk_error(format!("Setting up dynamic disk {}", disk.id), err))
    }

    fn remove_dynamic_disk(&self, disk_cid: &str) -> Result<(), disk::Error> {
        crate::name::check("disk cid", disk_cid)?;
        let link = self.dirs.data_dynamic_disks_dir().join(disk_cid);
        match std::fs::remove_file(&link) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(disk_error(
                "Removing dynamic disk symlink".to_owned(),
                bootstrap::Error::io("removing", &link, err),
            )),
            _ => Ok(()),
        }
    }

    fn setup_ssh(&self, user: &str, public_key: &str) -> Result<(), user::Error> {
        let homes = self.dirs.base_dir().join(ssh_users::HOMES_DIR);
        ssh_users::setup(self.runner.as_ref(), &self.host, &homes, user, public_key)
    }

    fn cleanup_ssh(&self, user_regex: &str) -> Result<(), user::Error> {
        ssh_users::cleanup(self.runner.as_ref(), &self.host, user_regex)
    }

    fn set_user_password(&self, user: &str, crypted: &str) -> Result<(), user::Error> {
        users::set_password(self.runner.as_ref(), user, crypted).map_err(ssh_users::host_error)
    }

    fn host_public_key(&self) -> Result<String, user::Error> {
        ssh_users::host_public_key(&self.host)
    }

    fn update_trusted_certs(&self, pem_bundle: &str) -> Result<(), cert::Error> {
        certs::update_trusted_certs(
            self.runner.as_ref(),
            &self.host,
            pem_bundle,
            self.timing.cert_update,
        )
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

    fn delete_arp_entries(&self, ips: &[String]) -> Result<(), net::Error> {
        power::delete_arp_entries(self.runner.as_ref(), ips)
    }

    fn default_network(&self, ipv6: bool) -> Result<net::DefaultNetwork, net::Error> {
        default_network::default_network(&self.host, ipv6)
    }

    fn shutdown(&self) -> Result<(), crate::power::Error> {
        power::shutdown(self.runner.as_ref())
    }

    fn vitals(&self) -> Result<Vitals, vitals::Error> {
        self.vitals.collect()
    }

    fn bootstrap(&self, step: Step, input: &bootstrap::Input<'_>) -> bootstrap::Result<()> {
        let settings = input.settings;
        let runner = self.runner.as_ref();
        match step {
            Step::RuntimeConfiguration => self.run_stemcell_script("bosh-agent-rc"),
            Step::SshKeys => {
                let keys =
                    users::vcap_keys(&settings.env.bosh.authorized_keys, input.iaas_public_key);
                users::setup_ssh_keys(runner, &self.host, users::VCAP_USER, &keys)
            }
            Step::Passwords => {
                let password = &settings.env.bosh.password;
                if !settings.env.bosh.keep_root_password {
                    users::set_password(runner, "root", password)?;
                }
                users::set_password(runner, users::VCAP_USER, password)
            }
            Step::Ipv6 => {
                if ipv6::wanted(settings) {
                    ipv6::enable(runner, &self.host)
                } else {
                    Ok(())
                }
            }
            Step::Hostname => hostname::setup_hostname(
                runner,
                &self.host,
                &self.dirs.agent_state_file(),
                &settings.agent_id,
            ),
            Step::Networking => self.setup_networking(settings),
            Step::RawEphemeralDisks => raw_ephemeral::setup_raw_ephemeral_disks(
                runner,
                &self.host,
                &self.timing.resolver,
                &raw_ephemeral::InstanceStorage {
                    device_pattern: self.options.instance_storage_device_pattern.clone(),
                    managed_volume_pattern: self
                        .options
                        .instance_storage_managed_volume_pattern
                        .clone(),
                },
                self.options.skip_disk_setup,
                settings.raw_ephemeral_disk_settings(),
            ),
            Step::EphemeralDisk => {
                let options = ephemeral::EphemeralOptions {
                    dirs: &self.dirs,
                    linux: &self.options,
                    resolver: &self.timing.resolver,
                    retry: self.timing.partition_retry,
                    prober: self.prober.as_ref(),
                };
                let found = ephemeral::setup_ephemeral_disk(
                    runner,
                    &self.host,
                    &options,
                    &settings.ephemeral_disk_settings(),
                    &settings.agent_id,
                    settings.env.bosh.swap_size,
                )?;
                *self
                    .ephemeral_disk_found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(found);
                Ok(())
            }
            Step::RootDisk => {
                let found = *self
                    .ephemeral_disk_found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let options = root_disk::GrowOptions {
                    skip_disk_setup: self.options.skip_disk_setup,
                    create_partition_if_no_ephemeral_disk: self
                        .options
                        .create_partition_if_no_ephemeral_disk,
                    // Without the ephemeral step's answer, a disk in the settings counts.
                    has_ephemeral_disk: found.unwrap_or_else(|| {
                        let disk = settings.ephemeral_disk_settings();
                        !disk.path.is_empty() || !disk.id.is_empty() || !disk.device_id.is_empty()
                    }),
                };
                root_disk::grow_root(runner, &self.host, self.prober.as_ref(), options)
            }
            Step::SharedMemory => self.layout().setup_shared_memory(),
            Step::LogDir => self.layout().setup_log_dir(),
            Step::OptDir => self.layout().setup_opt_dir(),
            Step::Ntp => ntp::setup(
                runner,
                &self.dirs.etc_dir(),
                &self.dirs.bosh_bin_dir(),
                settings.ntp_servers(),
            ),
            Step::LoggingAndAuditing => self.run_stemcell_script("bosh-start-logging-and-auditing"),
            Step::DataDir => self
                .layout()
                .setup_data_dir(&settings.env.bosh.job_dir, &settings.env.bosh.run_dir),
            Step::TmpDir => self
                .layout()
                .setup_tmp_dir(self.options.use_default_tmp_dir),
            Step::CanRestartDir => {
                if settings.tmpfs_enabled() {
                    self.layout().setup_can_restart_dir()
                } else {
                    Ok(())
                }
            }
            Step::HomeDir => self.layout().setup_home_dir(),
            Step::BlobsDir => self.layout().setup_blobs_dir(),
            Step::Firewall => {
                if self.options.use_monit_iptables_firewall {
                    tracing::info!(
                        "UseMonitIptablesFirewall: the monit firewall is the stemcell's"
                    );
                } else if let Err(err) = firewall::setup_monit_firewall(runner) {
                    tracing::warn!(error = %settings::source::error_chain(&err), "setting up the monit firewall");
                }
                Ok(())
            }
            Step::RemoveDevTools if settings.env.bosh.remove_dev_tools => {
                remove_listed::remove_listed(
                    &self.host,
                    &self.dirs.etc_dir().join(remove_listed::DEV_TOOLS_LIST),
                )
            }
            Step::RemoveStaticLibraries if settings.env.bosh.remove_static_libraries => {
                remove_listed::remove_listed(
                    &self.host,
                    &self
                        .dirs
                        .etc_dir()
                        .join(remove_listed::STATIC_LIBRARIES_LIST),
                )
            }
            Step::RemoveDevTools | Step::RemoveStaticLibraries => Ok(()),
        }
    }

    fn update_nats_firewall(
        &self,
        targets: &[std::net::SocketAddr],
    ) -> Result<(), bootstrap::Error> {
        firewall::setup_nats_firewall(self.runner.as_ref(), targets)
    }
}

/// A persistent-disk failure of the Linux platform.
fn disk_error(what: String, err: bootstrap::Error) -> disk::Error {
    disk::Error::Linux {
        what,
        source: Box::new(err),
    }
}

#[cfg(test)]
mod bootstrap_tests;

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
        )
        .with_prober(Arc::new(probe::CliProber(runner.clone())));
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
    fn dynamic_and_associated_disks_are_links_to_their_devices() {
        let f = fixture();
        let disk = DiskSettings {
            id: "vol-1".into(),
            path: "/dev/sdd".into(),
            ..DiskSettings::default()
        };
        f.platform.add_dynamic_disk(&disk).unwrap();
        let link = f.root.path().join("var/vcap/data/dynamic_disks/vol-1");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            f.root.path().join("dev/sdd")
        );
        // Again: the link is replaced, not an error.
        f.platform.add_dynamic_disk(&disk).unwrap();
        f.platform.remove_dynamic_disk("vol-1").unwrap();
        assert!(std::fs::symlink_metadata(&link).is_err());
        f.platform.remove_dynamic_disk("vol-1").unwrap();
        assert!(f.platform.remove_dynamic_disk("../x").is_err());
        let no_cid = DiskSettings {
            path: "/dev/sdd".into(),
            ..DiskSettings::default()
        };
        assert_eq!(
            f.platform
                .add_dynamic_disk(&no_cid)
                .unwrap_err()
                .to_string(),
            "the disk settings have no disk cid"
        );

        f.platform.associate_disk("data", &disk).unwrap();
        assert_eq!(
            std::fs::read_link(f.root.path().join("var/vcap/instance/disks/data")).unwrap(),
            f.root.path().join("dev/sdd")
        );
        assert!(f.platform.associate_disk("a/b", &disk).is_err());
        assert!(f.runner.recorded().is_empty());
    }

    #[test]
    fn ssh_users_live_under_the_base_dir_and_the_commands_are_gos() {
        let f = fixture();
        f.write(
            "etc/passwd",
            "root:x:0:0::/root:/bin/bash\nbosh_1:x:1001:1001::/var/vcap/bosh_ssh/bosh_1:/bin/bash\n",
        );
        std::fs::create_dir_all(f.root.path().join("var/vcap/bosh_ssh/bosh_1")).unwrap();
        let ssh = f.root.path().join("var/vcap/bosh_ssh/bosh_1/.ssh");
        let ssh = ssh.to_str().unwrap();
        let keys = format!("{ssh}/authorized_keys");
        let groups = "vcap,admin,bosh_sudoers,bosh_sshers";
        for argv in [
            vec!["usermod", "-G", groups, "bosh_1"],
            vec!["chown", "bosh_1:bosh_1", ssh],
            vec!["chown", "bosh_1:bosh_1", &keys],
            vec!["userdel", "-rf", "bosh_1"],
            vec!["ip", "neigh", "flush", "to", "10.0.0.9"],
            vec!["shutdown", "-P", "0"],
        ] {
            f.runner.expect(&argv, Reply::Ok(String::new()));
        }
        f.platform.setup_ssh("bosh_1", "ssh-rsa AAAA op").unwrap();
        f.platform.cleanup_ssh("^bosh_1$").unwrap();
        f.platform
            .delete_arp_entries(&["10.0.0.9".to_owned()])
            .unwrap();
        f.platform.shutdown().unwrap();
        assert!(f.runner.unused().is_empty(), "{:?}", f.runner.recorded());
        assert_eq!(
            f.platform.system_log_dir().unwrap(),
            f.root.path().join("var/log")
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
