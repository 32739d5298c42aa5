//! The VM's bootstrap as the platform sees it (`agent/bootstrap.go`, §5.1 of the reference): the
//! ordered [`Step`]s the agent runs through [`Platform::bootstrap`](crate::Platform::bootstrap), what
//! each step is given ([`Input`]) and why one failed ([`Error`]).
//!
//! The agent walks [`Step::ORDER`], times each step and stops at the first failure (the service
//! manager restarts it). Every step is idempotent: on an agent or VM restart nothing is
//! repartitioned, reformatted or mounted twice. The Linux platform does the work in `linux/`; the
//! dummy platform does nothing outside its base dir.
//!
//! Steps of the reference that have no step here: loading settings (done by the agent before the
//! bootstrap), the persistent-disk checks and remount (the agent runs them after the last step,
//! with the settings service's disks and hints, through
//! [`Platform::is_persistent_disk_mountable`](crate::Platform::is_persistent_disk_mountable) and
//! [`Platform::mount_persistent_disk`](crate::Platform::mount_persistent_disk)), and monit (the
//! supervisor is built into the agent).
//!
//! To add a step: add a variant, put it in [`Step::ORDER`] where the reference runs it, name it in
//! [`Step::name`], and handle it in both platforms.

use std::path::PathBuf;

use settings::Settings;

use crate::cmd;

/// One step of the bootstrap, in the reference's order ([`Step::ORDER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The stemcell's `bosh-agent-rc` (skipped when the stemcell has none).
    RuntimeConfiguration,
    /// vcap's `authorized_keys`: `env.bosh.authorized_keys` and the IaaS key.
    SshKeys,
    /// root's (unless `keep_root_password`) and vcap's password from `env.bosh.password`.
    Passwords,
    /// `env.bosh.ipv6.enable`.
    Ipv6,
    /// Hostname = agent id, `/etc/hostname`, `/etc/hosts` (first boot only).
    Hostname,
    /// systemd-networkd files, DNS, `restart_networking`, waiting for the static addresses.
    Networking,
    /// `disks.raw_ephemeral`.
    RawEphemeralDisks,
    /// The ephemeral disk: swap and data partitions, the data partition on `<base>/data`.
    EphemeralDisk,
    /// Growing the root partition.
    RootDisk,
    /// `/dev/shm` and `/run/shm` remounted `noexec,nodev,nosuid`.
    SharedMemory,
    /// `<base>/data/root_log` bind-mounted on `/var/log`.
    LogDir,
    /// `<base>/data/root_opt` and `root_var_opt` bind-mounted on `/opt` and `/var/opt`.
    OptDir,
    /// `bosh/etc/ntpserver` and `sync-time` (best effort).
    Ntp,
    /// The stemcell's `bosh-start-logging-and-auditing` (skipped when the stemcell has none).
    LoggingAndAuditing,
    /// The data dir layout (`sys/log`, `sys/run` tmpfs, `jobs`, `packages`, ...).
    DataDir,
    /// `data/tmp`, and `data/root_tmp` bind-mounted on `/tmp` and `/var/tmp`.
    TmpDir,
    /// `bosh/canrestart` on a tmpfs (tmpfs mode only).
    CanRestartDir,
    /// `/home` bind-mounted on itself `nodev,nosuid`.
    HomeDir,
    /// `data/blobs`.
    BlobsDir,
    /// The nftables firewall's monit chains (failures are only logged).
    Firewall,
    /// With `env.bosh.remove_dev_tools`, the paths of `bosh/etc/dev_tools_file_list` removed.
    RemoveDevTools,
    /// With `env.bosh.remove_static_libraries`, the paths of `bosh/etc/static_libraries_list`
    /// removed.
    RemoveStaticLibraries,
}

impl Step {
    /// Every step, in the order the agent runs them.
    pub const ORDER: [Step; 22] = [
        Step::RuntimeConfiguration,
        Step::SshKeys,
        Step::Passwords,
        Step::Ipv6,
        Step::Hostname,
        Step::Networking,
        Step::RawEphemeralDisks,
        Step::EphemeralDisk,
        Step::RootDisk,
        Step::SharedMemory,
        Step::LogDir,
        Step::OptDir,
        Step::Ntp,
        Step::LoggingAndAuditing,
        Step::DataDir,
        Step::TmpDir,
        Step::CanRestartDir,
        Step::HomeDir,
        Step::BlobsDir,
        Step::Firewall,
        Step::RemoveDevTools,
        Step::RemoveStaticLibraries,
    ];

    /// The step's name in logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Step::RuntimeConfiguration => "runtime_configuration",
            Step::SshKeys => "ssh_keys",
            Step::Passwords => "passwords",
            Step::Ipv6 => "ipv6",
            Step::Hostname => "hostname",
            Step::Networking => "networking",
            Step::RawEphemeralDisks => "raw_ephemeral_disks",
            Step::EphemeralDisk => "ephemeral_disk",
            Step::RootDisk => "root_disk",
            Step::SharedMemory => "shared_memory",
            Step::LogDir => "log_dir",
            Step::OptDir => "opt_dir",
            Step::Ntp => "ntp",
            Step::LoggingAndAuditing => "logging_and_auditing",
            Step::DataDir => "data_dir",
            Step::TmpDir => "tmp_dir",
            Step::CanRestartDir => "can_restart_dir",
            Step::HomeDir => "home_dir",
            Step::BlobsDir => "blobs_dir",
            Step::Firewall => "firewall",
            Step::RemoveDevTools => "remove_dev_tools",
            Step::RemoveStaticLibraries => "remove_static_libraries",
        }
    }
}

/// What the steps are given.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The loaded settings.
    pub settings: &'a Settings,
    /// The IaaS's public key for vcap (the settings source's), if any.
    pub iaas_public_key: Option<&'a str>,
}

/// Why a bootstrap step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command failed.
    #[error("running {command}")]
    Command {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: Box<cmd::Error>,
    },
    /// A file or directory could not be read or written.
    #[error("{action} {}", .path.display())]
    Io {
        /// What was being done (`writing`, `creating directory`, ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host's mount table could not be read.
    #[error(transparent)]
    Mounts(#[from] crate::mount::Error),
    /// The settings ask for something that cannot be done (a network whose MAC is on no interface,
    /// a netmask that is no mask, a swap larger than the disk); the text names the setting.
    #[error("{0}")]
    Settings(String),
    /// The host is not in the state the step needs (an unexpected command output, a device mounted
    /// elsewhere, an address that never came up).
    #[error("{0}")]
    Host(String),
    /// A user operation failed.
    #[error(transparent)]
    User(#[from] crate::user::Error),
    /// What the settings ask for is not supported on this platform yet.
    #[error("{0} is not supported yet")]
    Unsupported(String),
}

impl Error {
    /// A failed `command`.
    pub fn command(command: &cmd::Cmd, source: cmd::Error) -> Error {
        Error::Command {
            command: command.to_string(),
            source: Box::new(source),
        }
    }

    /// A failed file operation.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_in_the_order_once_with_a_distinct_name() {
        let names: std::collections::BTreeSet<&str> =
            Step::ORDER.iter().map(|step| step.name()).collect();
        assert_eq!(names.len(), Step::ORDER.len());
        let position = |step| Step::ORDER.iter().position(|s| *s == step).unwrap();
        // The reference's order: networking before the disks, the disk before the layout on it.
        assert!(position(Step::SshKeys) < position(Step::Hostname));
        assert!(position(Step::Hostname) < position(Step::Networking));
        assert!(position(Step::Networking) < position(Step::EphemeralDisk));
        assert!(position(Step::EphemeralDisk) < position(Step::LogDir));
        assert!(position(Step::LogDir) < position(Step::DataDir));
        assert!(position(Step::DataDir) < position(Step::TmpDir));
        assert!(position(Step::TmpDir) < position(Step::BlobsDir));
        assert!(position(Step::RawEphemeralDisks) < position(Step::EphemeralDisk));
        assert!(position(Step::EphemeralDisk) < position(Step::RootDisk));
        assert!(position(Step::BlobsDir) < position(Step::Firewall));
        assert!(position(Step::Firewall) < position(Step::RemoveDevTools));
        assert_eq!(Step::ORDER.last(), Some(&Step::RemoveStaticLibraries));
    }
}
