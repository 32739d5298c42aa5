//! Where a disk of the settings is on this VM (`infrastructure/devicepathresolver/`): `identity`
//! (the settings' `path` as it is) and `virtio` (by id, falling back to the mapped path).
//!
//! Virtio by id: the disk's `id` (its device id; the CID when there is none) must be at least 20
//! characters; it is cut to 20, as QEMU and the kernel cut virtio serials, and looked up as
//! `/dev/disk/by-id/*<id>` (exactly one match, followed to its device). Unlike Go, which runs
//! `udevadm trigger` and `udevadm settle` before every lookup, we look first and only trigger and
//! settle udev when the link is not there yet (at boot udev has usually created it already, and a
//! trigger re-announces every device, network interfaces included); then the glob is polled for
//! 500 ms. The mapped fallback: `/dev/sdX` is tried as `/dev/xvdX`, `/dev/vdX`, `/dev/sdX`; other
//! paths are used as they are (links followed), polled for up to 30 s.
//!
//! Returned paths are canonical (links resolved) and under the host root.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use settings::model::DiskSettings;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;

/// How long virtio serials are.
pub const VIRTIO_SERIAL_LEN: usize = 20;

/// How device paths are found (`DevicePathResolutionType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// `virtio` or empty (identity).
    pub kind: String,
    /// How long the by-id link is waited for.
    pub id_wait: Duration,
    /// How long the mapped path is waited for.
    pub mapped_wait: Duration,
    /// The pause between two looks.
    pub poll: Duration,
}

impl Resolver {
    /// The resolver `DevicePathResolutionType` names, with Go's waits.
    pub fn new(kind: &str) -> Resolver {
        Resolver {
            kind: kind.to_owned(),
            id_wait: Duration::from_millis(500),
            mapped_wait: Duration::from_secs(30),
            poll: Duration::from_millis(100),
        }
    }

    /// The device of `disk`.
    pub fn resolve(
        &self,
        runner: &dyn CommandRunner,
        host: &HostPaths,
        disk: &DiskSettings,
    ) -> Result<PathBuf> {
        match self.kind.as_str() {
            "" => {
                if disk.path.is_empty() {
                    return Err(Error::Settings("the disk has no path".to_owned()));
                }
                Ok(host.reroot(Path::new(&disk.path)))
            }
            "virtio" => match self.by_id(runner, host, disk) {
                Ok(path) => Ok(path),
                Err(err) => {
                    tracing::debug!(error = %err, "no disk by id, trying the mapped path");
                    self.mapped(host, disk)
                }
            },
            other => Err(Error::Unsupported(format!(
                "DevicePathResolutionType '{other}'"
            ))),
        }
    }

    fn by_id(
        &self,
        runner: &dyn CommandRunner,
        host: &HostPaths,
        disk: &DiskSettings,
    ) -> Result<PathBuf> {
        let id = if disk.device_id.is_empty() {
            &disk.id
        } else {
            &disk.device_id
        };
        if id.chars().count() < VIRTIO_SERIAL_LEN {
            return Err(Error::Settings(format!(
                "disk id '{id}' is shorter than {VIRTIO_SERIAL_LEN} characters"
            )));
        }
        let serial: String = id.chars().take(VIRTIO_SERIAL_LEN).collect();
        if let Some(path) = find_by_id(host, &serial)? {
            return Ok(path);
        }
        files::run(runner, Cmd::new("udevadm").arg("trigger"))?;
        files::run(runner, Cmd::new("udevadm").arg("settle"))?;
        let deadline = Instant::now() + self.id_wait;
        loop {
            if let Some(path) = find_by_id(host, &serial)? {
                return Ok(path);
            }
            if Instant::now() >= deadline {
                return Err(Error::Host(format!(
                    "timed out getting real device path for '{id}'"
                )));
            }
            std::thread::sleep(self.poll);
        }
    }

    fn mapped(&self, host: &HostPaths, disk: &DiskSettings) -> Result<PathBuf> {
        if disk.path.is_empty() {
            return Err(Error::Settings(
                "getting real device path: path is missing".to_owned(),
            ));
        }
        let candidates: Vec<PathBuf> = match disk.path.strip_prefix("/dev/sd") {
            Some(suffix) => ["xvd", "vd", "sd"]
                .iter()
                .map(|prefix| host.dev(&format!("{prefix}{suffix}")))
                .collect(),
            None => vec![host.reroot(Path::new(&disk.path))],
        };
        let deadline = Instant::now() + self.mapped_wait;
        loop {
            if let Some(found) = candidates
                .iter()
                .find_map(|c| std::fs::canonicalize(c).ok())
            {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(Error::Host(format!(
                    "timed out getting real device path for {}",
                    disk.path
                )));
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// The device `/dev/disk/by-id/*<serial>` points at, if exactly one link matches.
fn find_by_id(host: &HostPaths, serial: &str) -> Result<Option<PathBuf>> {
    let dir = host.dev("disk/by-id");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let matches: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(serial))
        .map(|entry| entry.path())
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [link] => Ok(std::fs::canonicalize(link).ok()),
        _ => Err(Error::Host(format!(
            "more than one disk matched {}/*{serial}",
            dir.display()
        ))),
    }
}

/// The path of partition `number` of `device` (`/dev/vdb` → `/dev/vdb1`, `/dev/nvme0n1` →
/// `/dev/nvme0n1p1`, `/dev/mapper/x` → `/dev/mapper/x-part1`).
pub fn partition_path(device: &Path, number: u32) -> PathBuf {
    let text = device.to_string_lossy();
    let name = device
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if text.contains("/dev/mapper/") {
        PathBuf::from(format!("{text}-part{number}"))
    } else if name.starts_with("nvme") || name.ends_with(|c: char| c.is_ascii_digit()) {
        PathBuf::from(format!("{text}p{number}"))
    } else {
        PathBuf::from(format!("{text}{number}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    const SERIAL: &str = "eph-0123456789abcdef";

    fn fake_dev(root: &Path) {
        std::fs::create_dir_all(root.join("dev/disk/by-id")).unwrap();
        std::fs::write(root.join("dev/vdb"), "").unwrap();
    }

    fn resolver() -> Resolver {
        Resolver {
            kind: "virtio".into(),
            id_wait: Duration::ZERO,
            mapped_wait: Duration::ZERO,
            poll: Duration::ZERO,
        }
    }

    fn disk(id: &str, path: &str) -> DiskSettings {
        DiskSettings {
            device_id: id.into(),
            path: path.into(),
            ..DiskSettings::default()
        }
    }

    #[test]
    fn a_virtio_disk_is_found_by_its_serial_without_udev_when_the_link_is_there() {
        let root = tempfile::tempdir().unwrap();
        fake_dev(root.path());
        std::os::unix::fs::symlink(
            "../../vdb",
            root.path().join(format!("dev/disk/by-id/virtio-{SERIAL}")),
        )
        .unwrap();
        let runner = RecordingRunner::new();
        let host = HostPaths::with_root(root.path());
        let path = resolver()
            .resolve(
                &runner,
                &host,
                &disk(&format!("{SERIAL}-and-more"), "/dev/vdz"),
            )
            .unwrap();
        assert_eq!(
            path,
            std::fs::canonicalize(root.path().join("dev/vdb")).unwrap()
        );
        assert!(runner.recorded().is_empty());
    }

    #[test]
    fn a_missing_link_settles_udev_then_falls_back_to_the_mapped_path() {
        let root = tempfile::tempdir().unwrap();
        fake_dev(root.path());
        let runner = RecordingRunner::new();
        runner.expect(&["udevadm", "trigger"], Reply::Ok(String::new()));
        runner.expect(&["udevadm", "settle"], Reply::Ok(String::new()));
        let host = HostPaths::with_root(root.path());
        let path = resolver()
            .resolve(&runner, &host, &disk(SERIAL, "/dev/sdb"))
            .unwrap();
        assert_eq!(
            path,
            std::fs::canonicalize(root.path().join("dev/vdb")).unwrap()
        );
        assert!(runner.unused().is_empty());
        // A short id skips the lookup; a path that never appears is an error.
        let err = resolver()
            .resolve(&runner, &host, &disk("short", "/dev/vdq"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out getting real device path for /dev/vdq"
        );
        assert_eq!(runner.recorded().len(), 2);
    }

    #[test]
    fn identity_and_unknown_resolvers() {
        let host = HostPaths::with_root("/r");
        let runner = RecordingRunner::new();
        assert_eq!(
            Resolver::new("")
                .resolve(&runner, &host, &disk("", "/dev/sdb"))
                .unwrap(),
            PathBuf::from("/r/dev/sdb")
        );
        assert_eq!(
            Resolver::new("scsi")
                .resolve(&runner, &host, &disk("", "/dev/sdb"))
                .unwrap_err()
                .to_string(),
            "DevicePathResolutionType 'scsi' is not supported yet"
        );
    }

    #[test]
    fn partition_paths_follow_the_device_naming() {
        assert_eq!(
            partition_path(Path::new("/dev/vdb"), 2),
            PathBuf::from("/dev/vdb2")
        );
        assert_eq!(
            partition_path(Path::new("/dev/nvme1n1"), 1),
            PathBuf::from("/dev/nvme1n1p1")
        );
        assert_eq!(
            partition_path(Path::new("/dev/mapper/abc"), 1),
            PathBuf::from("/dev/mapper/abc-part1")
        );
    }
}
