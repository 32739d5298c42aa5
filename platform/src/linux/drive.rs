//! Mounting config drives and the CD-ROM for the settings sources (`platform/disk/diskutil.go`
//! `GetFilesContents`, `platform/cdrom/linux_cdrom.go`, `platform/udevdevice/concrete_udev_device.go`).
//!
//! A config drive is mounted read-only on a fresh temporary directory (`mount -o ro <device> <dir>`;
//! Go mounts it read-write, which a config drive never needs) and unmounted after reading. The CD-ROM
//! (`/dev/sr0`) is first kicked (a byte read, up to 5 tries 0.5 s apart), udev is settled
//! (`udevadm settle`), the device must become readable, then it is mounted read-only; releasing it
//! unmounts it and ejects the disc (`eject -v /dev/sr0`). Go always waits 2.5 s for readability; we
//! stop waiting as soon as a read succeeds.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use settings::source::{MountError, MountedDrive, Mounter};

use crate::HostPaths;
use crate::cmd::{Cmd, CommandRunner};

/// How often a device is read before it counts as unreadable.
const READ_TRIES: u32 = 5;

/// Mounts drives with `mount` through a [`CommandRunner`].
#[derive(Debug, Clone)]
pub struct LinuxDriveMounter {
    runner: Arc<dyn CommandRunner>,
    host: HostPaths,
    read_retry_delay: Duration,
}

/// Why a device did not become readable.
#[derive(Debug, thiserror::Error)]
#[error("device {} is not readable after {READ_TRIES} tries", .device.display())]
pub struct NotReadable {
    /// The device.
    pub device: PathBuf,
    /// The last read error.
    #[source]
    pub source: std::io::Error,
}

impl LinuxDriveMounter {
    /// A mounter running commands with `runner` on the host `host`.
    pub fn new(runner: Arc<dyn CommandRunner>, host: HostPaths) -> LinuxDriveMounter {
        LinuxDriveMounter {
            runner,
            host,
            read_retry_delay: Duration::from_millis(500),
        }
    }

    /// Changes the pause between reads of a device that is not ready (tests use zero).
    pub fn with_read_retry_delay(mut self, delay: Duration) -> LinuxDriveMounter {
        self.read_retry_delay = delay;
        self
    }

    fn mount(&self, device: &Path, eject: bool) -> Result<Box<dyn MountedDrive>, MountError> {
        let dir = tempfile::Builder::new()
            .prefix("bosh-agent-drive-")
            .tempdir()?;
        self.runner.run(
            &Cmd::new("mount")
                .args(["-o", "ro"])
                .arg(device)
                .arg(dir.path()),
        )?;
        Ok(Box::new(LinuxMountedDrive {
            runner: self.runner.clone(),
            device: device.to_owned(),
            dir,
            eject,
        }))
    }

    /// Reads one byte of `device`, retrying while it fails.
    fn wait_readable(&self, device: &Path) -> Result<(), NotReadable> {
        let mut last_error = None;
        for attempt in 1..=READ_TRIES {
            match read_byte(device) {
                Ok(()) => return Ok(()),
                Err(err) => last_error = Some(err),
            }
            if attempt < READ_TRIES {
                std::thread::sleep(self.read_retry_delay);
            }
        }
        Err(NotReadable {
            device: device.to_owned(),
            source: last_error.unwrap_or_else(|| std::io::Error::other("never read")),
        })
    }
}

impl Mounter for LinuxDriveMounter {
    fn mount_read_only(&self, device: &Path) -> Result<Box<dyn MountedDrive>, MountError> {
        self.mount(device, false)
    }

    fn mount_cdrom(&self) -> Result<Box<dyn MountedDrive>, MountError> {
        let device = self.host.dev("sr0");
        // The kick only wakes the drive up; its failure shows in the readability check below.
        if let Err(err) = self.wait_readable(&device) {
            tracing::debug!(error = %err, "kicking the CD-ROM did not read a byte");
        }
        self.runner.run(&Cmd::new("udevadm").arg("settle"))?;
        self.wait_readable(&device)?;
        self.mount(&device, true)
    }

    fn mount_settings_tmpfs(&self, dir: &Path) -> Result<(), MountError> {
        crate::linux::files::ensure_dir(dir, 0o700)?;
        crate::linux::mounter::Mounter {
            runner: self.runner.as_ref(),
            host: &self.host,
        }
        .mount_tmpfs(dir, "16m", 0o700)?;
        Ok(())
    }
}

/// A drive mounted by [`LinuxDriveMounter`]; its directory is removed after unmounting.
#[derive(Debug)]
struct LinuxMountedDrive {
    runner: Arc<dyn CommandRunner>,
    device: PathBuf,
    dir: tempfile::TempDir,
    eject: bool,
}

impl MountedDrive for LinuxMountedDrive {
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn release(self: Box<Self>, used: bool) -> Result<(), MountError> {
        self.runner.run(&Cmd::new("umount").arg(self.dir.path()))?;
        if self.eject && used {
            self.runner
                .run(&Cmd::new("eject").arg("-v").arg(&self.device))?;
        }
        Ok(())
    }
}

fn read_byte(device: &Path) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    File::open(device)?.read_exact(&mut byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    const ANY: &str = RecordingRunner::ANY;

    fn mounter(runner: &Arc<RecordingRunner>, root: &Path) -> LinuxDriveMounter {
        LinuxDriveMounter::new(runner.clone(), HostPaths::with_root(root))
            .with_read_retry_delay(Duration::ZERO)
    }

    fn ok() -> Reply {
        Reply::Ok(String::new())
    }

    #[test]
    fn config_drive_is_mounted_read_only_and_unmounted() {
        let runner = Arc::new(RecordingRunner::new());
        runner.expect(
            &["mount", "-o", "ro", "/dev/disk/by-label/config-2", ANY],
            ok(),
        );
        runner.expect(&["umount", ANY], ok());
        let root = tempfile::tempdir().unwrap();
        let drive = mounter(&runner, root.path())
            .mount_read_only(Path::new("/dev/disk/by-label/config-2"))
            .unwrap();
        let dir = drive.dir().to_string_lossy().into_owned();
        assert!(Path::new(&dir).is_dir());
        drive.release(true).unwrap();
        assert_eq!(
            runner.recorded(),
            vec![
                vec![
                    "mount",
                    "-o",
                    "ro",
                    "/dev/disk/by-label/config-2",
                    dir.as_str()
                ],
                vec!["umount", dir.as_str()],
            ]
        );
        assert!(!Path::new(&dir).exists(), "the mount point is removed");
    }

    #[test]
    fn cdrom_is_settled_mounted_unmounted_and_ejected() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        let sr0 = root.path().join("dev/sr0");
        std::fs::write(&sr0, b"ISO").unwrap();
        let sr0 = sr0.to_string_lossy().into_owned();
        let runner = Arc::new(RecordingRunner::new());
        runner.expect(&["udevadm", "settle"], ok());
        runner.expect(&["mount", "-o", "ro", sr0.as_str(), ANY], ok());
        runner.expect(&["umount", ANY], ok());
        runner.expect(&["eject", "-v", sr0.as_str()], ok());
        let drive = mounter(&runner, root.path()).mount_cdrom().unwrap();
        let dir = drive.dir().to_string_lossy().into_owned();
        drive.release(true).unwrap();
        assert_eq!(
            runner.recorded(),
            vec![
                vec!["udevadm", "settle"],
                vec!["mount", "-o", "ro", sr0.as_str(), dir.as_str()],
                vec!["umount", dir.as_str()],
                vec!["eject", "-v", sr0.as_str()],
            ]
        );
    }

    #[test]
    fn a_cdrom_that_did_not_hold_the_settings_stays_in() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        let sr0 = root.path().join("dev/sr0");
        std::fs::write(&sr0, b"ISO").unwrap();
        let sr0 = sr0.to_string_lossy().into_owned();
        let runner = Arc::new(RecordingRunner::new());
        runner.expect(&["udevadm", "settle"], ok());
        runner.expect(&["mount", "-o", "ro", sr0.as_str(), ANY], ok());
        runner.expect(&["umount", ANY], ok());
        let drive = mounter(&runner, root.path()).mount_cdrom().unwrap();
        let dir = drive.dir().to_string_lossy().into_owned();
        drive.release(false).unwrap();
        assert_eq!(
            runner.recorded(),
            vec![
                vec!["udevadm", "settle"],
                vec!["mount", "-o", "ro", sr0.as_str(), dir.as_str()],
                vec!["umount", dir.as_str()],
            ],
            "no eject: the CD may be the config drive another source reads"
        );
    }

    #[test]
    fn unreadable_cdrom_is_an_error_before_any_mount() {
        let runner = Arc::new(RecordingRunner::new());
        runner.expect(&["udevadm", "settle"], ok());
        let root = tempfile::tempdir().unwrap();
        let err = mounter(&runner, root.path()).mount_cdrom().unwrap_err();
        assert!(
            err.to_string().contains("is not readable after 5 tries"),
            "{err}"
        );
        assert_eq!(runner.recorded(), vec![vec!["udevadm", "settle"]]);
    }

    #[test]
    fn a_failed_mount_reports_stderr() {
        let runner = Arc::new(RecordingRunner::new());
        runner.expect(
            &["mount", "-o", "ro", "/dev/vdz", ANY],
            Reply::Fail(32, "mount: /tmp/x: wrong fs type".into()),
        );
        let root = tempfile::tempdir().unwrap();
        let err = mounter(&runner, root.path())
            .mount_read_only(Path::new("/dev/vdz"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mount failed (exit status: 32): mount: /tmp/x: wrong fs type"
        );
    }
}
