//! Every path under the agent's base dir (`-b`, default `/var/vcap`), computed without IO.
//!
//! Follows `settings/directories/directories_provider.go` and the file layout of the Go agent, which
//! operators, stemcell scripts and job templates rely on. Nothing else in the workspace joins path
//! segments under the base dir by hand.

use std::path::{Path, PathBuf};

/// The default base dir.
pub const DEFAULT_BASE_DIR: &str = "/var/vcap";

/// Paths under one base dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    base: PathBuf,
}

impl Dirs {
    /// Paths under `base`.
    pub fn new(base: impl Into<PathBuf>) -> Dirs {
        Dirs { base: base.into() }
    }

    /// The base dir itself.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// `bosh/`: the agent's state, config, binaries and logs.
    pub fn bosh_dir(&self) -> PathBuf {
        self.base.join("bosh")
    }

    /// `bosh/settings/`: the tmpfs for settings in tmpfs mode.
    pub fn bosh_settings_dir(&self) -> PathBuf {
        self.bosh_dir().join("settings")
    }

    /// `bosh/canrestart/`: a tmpfs in tmpfs mode, which an agent restart keeps and a reboot does not.
    pub fn can_restart_dir(&self) -> PathBuf {
        self.bosh_dir().join("canrestart")
    }

    /// `bosh/etc/`.
    pub fn etc_dir(&self) -> PathBuf {
        self.bosh_dir().join("etc")
    }

    /// `bosh/bin/`.
    pub fn bosh_bin_dir(&self) -> PathBuf {
        self.bosh_dir().join("bin")
    }

    /// `bosh/log/`.
    pub fn agent_logs_dir(&self) -> PathBuf {
        self.bosh_dir().join("log")
    }

    /// The settings cache: `bosh/settings.json`, or `bosh/settings/settings.json` in tmpfs mode.
    pub fn settings_file(&self, tmpfs: bool) -> PathBuf {
        self.state_file("settings.json", tmpfs)
    }

    /// `bosh/update_settings.json` (in `bosh/settings/` in tmpfs mode).
    pub fn update_settings_file(&self, tmpfs: bool) -> PathBuf {
        self.state_file("update_settings.json", tmpfs)
    }

    /// `bosh/persistent_disk_hints.json` (in `bosh/settings/` in tmpfs mode).
    pub fn persistent_disk_hints_file(&self, tmpfs: bool) -> PathBuf {
        self.state_file("persistent_disk_hints.json", tmpfs)
    }

    /// `bosh/managed_disk_settings.json`: the CID of the last mounted persistent disk, as plain text.
    pub fn managed_disk_settings_file(&self) -> PathBuf {
        self.bosh_dir().join("managed_disk_settings.json")
    }

    /// `bosh/spec.json`: the last applied spec.
    pub fn spec_file(&self) -> PathBuf {
        self.bosh_dir().join("spec.json")
    }

    /// `bosh/tasks.json`: tasks that survive an agent restart.
    pub fn tasks_file(&self) -> PathBuf {
        self.bosh_dir().join("tasks.json")
    }

    /// `bosh/agent_state.json`.
    pub fn agent_state_file(&self) -> PathBuf {
        self.bosh_dir().join("agent_state.json")
    }

    /// `data/`: the ephemeral disk's mount point.
    pub fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// `data/tmp/`: `TMPDIR` of the agent and its children.
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir().join("tmp")
    }

    /// `data/packages/`.
    pub fn data_packages_dir(&self) -> PathBuf {
        self.data_dir().join("packages")
    }

    /// `data/jobs/`.
    pub fn data_jobs_dir(&self) -> PathBuf {
        self.data_dir().join("jobs")
    }

    /// `data/compile/`.
    pub fn compile_dir(&self) -> PathBuf {
        self.data_dir().join("compile")
    }

    /// `data/blobs/`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.data_dir().join("blobs")
    }

    /// `data/sensitive_blobs/`.
    pub fn sensitive_blobs_dir(&self) -> PathBuf {
        self.data_dir().join("sensitive_blobs")
    }

    /// `data/dynamic_disks/`.
    pub fn data_dynamic_disks_dir(&self) -> PathBuf {
        self.data_dir().join("dynamic_disks")
    }

    /// `data/sys/log/`: where jobs log (`sys/log` is a symlink to it on a VM).
    pub fn data_sys_log_dir(&self) -> PathBuf {
        self.data_dir().join("sys").join("log")
    }

    /// `data/sys/run/`: where jobs keep pidfiles.
    pub fn data_sys_run_dir(&self) -> PathBuf {
        self.data_dir().join("sys").join("run")
    }

    /// `jobs/`: symlinks to the enabled job versions.
    pub fn jobs_dir(&self) -> PathBuf {
        self.base.join("jobs")
    }

    /// `packages/`: symlinks to the enabled package versions.
    pub fn packages_dir(&self) -> PathBuf {
        self.base.join("packages")
    }

    /// `store/`: the persistent disk's mount point.
    pub fn store_dir(&self) -> PathBuf {
        self.base.join("store")
    }

    /// `store_migration_target/`.
    pub fn store_migration_dir(&self) -> PathBuf {
        self.base.join("store_migration_target")
    }

    /// `monit/`.
    pub fn monit_dir(&self) -> PathBuf {
        self.base.join("monit")
    }

    /// `monit/job/`.
    pub fn monit_jobs_dir(&self) -> PathBuf {
        self.monit_dir().join("job")
    }

    /// `sys/log/`: job logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.base.join("sys").join("log")
    }

    /// `instance/`: instance metadata for jobs.
    pub fn instance_dir(&self) -> PathBuf {
        self.base.join("instance")
    }

    fn state_file(&self, name: &str, tmpfs: bool) -> PathBuf {
        if tmpfs {
            self.bosh_settings_dir().join(name)
        } else {
            self.bosh_dir().join(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_move_to_the_settings_tmpfs_in_tmpfs_mode() {
        let dirs = Dirs::new(DEFAULT_BASE_DIR);
        assert_eq!(
            dirs.settings_file(false),
            Path::new("/var/vcap/bosh/settings.json")
        );
        assert_eq!(
            dirs.settings_file(true),
            Path::new("/var/vcap/bosh/settings/settings.json")
        );
        assert_eq!(
            dirs.update_settings_file(false),
            Path::new("/var/vcap/bosh/update_settings.json")
        );
        assert_eq!(
            dirs.persistent_disk_hints_file(true),
            Path::new("/var/vcap/bosh/settings/persistent_disk_hints.json")
        );
    }

    #[test]
    fn paths_follow_the_base_dir() {
        let dirs = Dirs::new("/tmp/agent");
        assert_eq!(
            dirs.sensitive_blobs_dir(),
            Path::new("/tmp/agent/data/sensitive_blobs")
        );
        assert_eq!(dirs.logs_dir(), Path::new("/tmp/agent/sys/log"));
    }
}
