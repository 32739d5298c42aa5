//! Mounts for the bootstrap, through `mount` run by the [`CommandRunner`] and checked against the
//! host's mount table first (`platform/disk/linux_mounter.go`, `linux_bind_mounter.go`,
//! `bindMountDir` and `remountWithSecurityFlags` in `platform/linux_platform.go`).
//!
//! Nothing is mounted twice: a device already on its mount point is left alone, and a device or
//! mount point taken by something else is an error (Go's texts). A hardening remount
//! (`mount -o remount,<options> <dir>`) runs only when the mount does not have the options yet,
//! so an agent restart only reads the mount table.

use std::path::Path;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;
use crate::mount::{self, MountEntry};

/// Mounts through a runner on a host.
#[derive(Debug, Clone, Copy)]
pub struct Mounter<'a> {
    /// Runs `mount`.
    pub runner: &'a dyn CommandRunner,
    /// Where the mount table is read.
    pub host: &'a HostPaths,
}

impl Mounter<'_> {
    fn mounts(&self) -> Result<Vec<MountEntry>> {
        Ok(mount::read_mounts(self.host)?)
    }

    /// Whether something is mounted on `dir`.
    pub fn is_mount_point(&self, dir: &Path) -> Result<bool> {
        Ok(mount::is_mount_point_in(&self.mounts()?, dir))
    }

    /// `mount <device> <dir>` unless `device` is already there; answers whether it mounted.
    pub fn mount_device(&self, device: &Path, dir: &Path) -> Result<bool> {
        let mounts = self.mounts()?;
        let device_text = device.to_string_lossy();
        for entry in &mounts {
            let same_device = entry.source == device_text;
            let same_dir = entry.mount_point == dir;
            if same_device && same_dir {
                return Ok(false);
            }
            if same_device {
                return Err(Error::Host(format!(
                    "Device {} is already mounted to {}, can't mount to {}",
                    entry.source,
                    entry.mount_point.display(),
                    dir.display()
                )));
            }
            if same_dir {
                return Err(Error::Host(format!(
                    "Device {} is already mounted to {}, can't mount {}",
                    entry.source,
                    entry.mount_point.display(),
                    device.display()
                )));
            }
        }
        files::run(self.runner, Cmd::new("mount").arg(device).arg(dir))?;
        Ok(true)
    }

    /// `mount -t tmpfs -o size=<size>,mode=<mode> tmpfs <dir>` unless something is mounted on
    /// `dir`. The mode is given at mount time: a tmpfs's root is otherwise 1777, whatever the
    /// directory under it was.
    pub fn mount_tmpfs(&self, dir: &Path, size: &str, mode: u32) -> Result<()> {
        if self.is_mount_point(dir)? {
            return Ok(());
        }
        files::run(
            self.runner,
            Cmd::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size},mode={mode:04o}"))
                .arg("tmpfs")
                .arg(dir),
        )
        .map(drop)
    }

    /// Bind-mounts `source` on `dir` (`mount -o bind <source> <dir>`) unless something is
    /// mounted there, then makes sure the mount has `options` ([`Mounter::remount_with`]).
    pub fn bind_mount(&self, source: &Path, dir: &Path, options: &[&str]) -> Result<()> {
        if !self.is_mount_point(dir)? {
            files::run(
                self.runner,
                Cmd::new("mount").args(["-o", "bind"]).arg(source).arg(dir),
            )?;
        }
        self.remount_with(dir, options)
    }

    /// `mount -o remount,<options> <dir>` if `dir` is a mount point that lacks one of `options`;
    /// nothing when `dir` is not a mount point.
    pub fn remount_with(&self, dir: &Path, options: &[&str]) -> Result<()> {
        let mounts = self.mounts()?;
        let Some(entry) = mount::mounted_on(&mounts, dir) else {
            return Ok(());
        };
        if options
            .iter()
            .all(|wanted| entry.options.iter().any(|option| option == wanted))
        {
            return Ok(());
        }
        let mut joined = String::from("remount");
        for option in options {
            joined.push(',');
            joined.push_str(option);
        }
        files::run(
            self.runner,
            Cmd::new("mount").arg("-o").arg(joined).arg(dir),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    fn host_with_mounts(mountinfo: &str) -> (tempfile::TempDir, HostPaths) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
        std::fs::write(root.path().join("proc/self/mountinfo"), mountinfo).unwrap();
        let host = HostPaths::with_root(root.path());
        (root, host)
    }

    const ROOT_ONLY: &str = "22 1 8:1 / / rw,relatime - ext4 /dev/vda1 rw\n";

    #[test]
    fn a_device_is_mounted_once() {
        let (_root, host) = host_with_mounts(ROOT_ONLY);
        let runner = RecordingRunner::new();
        runner.expect(
            &["mount", "/dev/vdb2", "/var/vcap/data"],
            Reply::Ok(String::new()),
        );
        let mounter = Mounter {
            runner: &runner,
            host: &host,
        };
        assert!(
            mounter
                .mount_device(Path::new("/dev/vdb2"), Path::new("/var/vcap/data"))
                .unwrap()
        );
        let (_root, host) = host_with_mounts(
            "22 1 8:1 / / rw - ext4 /dev/vda1 rw\n40 22 8:18 / /var/vcap/data rw - ext4 /dev/vdb2 rw\n",
        );
        let mounter = Mounter {
            runner: &runner,
            host: &host,
        };
        assert!(
            !mounter
                .mount_device(Path::new("/dev/vdb2"), Path::new("/var/vcap/data"))
                .unwrap()
        );
        assert_eq!(
            mounter
                .mount_device(Path::new("/dev/vdc1"), Path::new("/var/vcap/data"))
                .unwrap_err()
                .to_string(),
            "Device /dev/vdb2 is already mounted to /var/vcap/data, can't mount /dev/vdc1"
        );
        assert_eq!(runner.recorded().len(), 1);
    }

    #[test]
    fn bind_mounts_are_skipped_when_mounted_and_remounted_only_when_options_lack() {
        let (_root, host) = host_with_mounts(ROOT_ONLY);
        let runner = RecordingRunner::new();
        runner.expect(
            &["mount", "-o", "bind", "/data/root_tmp", "/tmp"],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["mount", "-o", "remount,nodev,nosuid,noexec", "/tmp"],
            Reply::Ok(String::new()),
        );
        let mounter = Mounter {
            runner: &runner,
            host: &host,
        };
        // Not mounted: bound; the table (a fake that does not change) lacks /tmp, so no remount.
        mounter
            .bind_mount(
                Path::new("/data/root_tmp"),
                Path::new("/tmp"),
                &["nodev", "nosuid", "noexec"],
            )
            .unwrap();
        assert_eq!(
            runner.recorded(),
            vec![vec!["mount", "-o", "bind", "/data/root_tmp", "/tmp"]]
        );

        let (_root, host) = host_with_mounts(
            "22 1 8:1 / / rw - ext4 /dev/vda1 rw\n50 22 8:18 /root_tmp /tmp rw,relatime - ext4 /dev/vdb2 rw\n",
        );
        let mounter = Mounter {
            runner: &runner,
            host: &host,
        };
        mounter
            .bind_mount(
                Path::new("/data/root_tmp"),
                Path::new("/tmp"),
                &["nodev", "nosuid", "noexec"],
            )
            .unwrap();
        assert_eq!(
            runner.recorded()[1],
            vec!["mount", "-o", "remount,nodev,nosuid,noexec", "/tmp"]
        );

        let (_root, host) = host_with_mounts(
            "22 1 8:1 / / rw - ext4 /dev/vda1 rw\n50 22 8:18 /root_tmp /tmp rw,nosuid,nodev,noexec,relatime - ext4 /dev/vdb2 rw\n",
        );
        let mounter = Mounter {
            runner: &runner,
            host: &host,
        };
        mounter
            .bind_mount(
                Path::new("/data/root_tmp"),
                Path::new("/tmp"),
                &["nodev", "nosuid", "noexec"],
            )
            .unwrap();
        mounter
            .mount_tmpfs(Path::new("/tmp"), "16m", 0o1777)
            .unwrap();
        assert_eq!(runner.recorded().len(), 2, "already hardened: only reads");
    }
}
