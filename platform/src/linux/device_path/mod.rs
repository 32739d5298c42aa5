//! Where a disk of the settings is on this VM (`infrastructure/devicepathresolver/`): `identity`
//! (the settings' `path` as it is), `virtio` (by id, falling back to the mapped path) and `scsi`
//! ([`scsi`]: by device id, volume id, or Hyper-V lun and host device id after a SCSI rescan),
//! each behind the `LunDeviceSymlinkPath` lookup when the agent config names a base.
//!
//! Virtio by id: the disk's `id` (its device id; the CID when there is none) must be at least 20
//! characters; it is cut to 20, as QEMU and the kernel cut virtio serials, and looked up as
//! `/dev/disk/by-id/*<id>` (exactly one match, followed to its device). With
//! `DiskIDTransformPattern` the whole id is rewritten with `DiskIDTransformReplacement` and the
//! result is the by-id glob itself (Go's `TransformDiskID`; a bad pattern is a settings error).
//! Unlike Go, which runs `udevadm trigger` and `udevadm settle` before every lookup, we look first
//! and only trigger and settle udev when the link is not there yet (at boot udev has usually
//! created it already, and a trigger re-announces every device, network interfaces included);
//! then the glob is polled for 500 ms. The mapped fallback: `/dev/sdX` is tried as `/dev/xvdX`,
//! `/dev/vdX`, `/dev/sdX`; other paths are used as they are (links followed), polled for up to
//! 30 s.
//!
//! `LunDeviceSymlinkPath` (Go's `SymlinkLunDevicePathResolver` in a `FallbackDevicePathResolver`):
//! a disk with a `lun` is first looked for as the link `<base>/<lun>` (Azure's
//! `/dev/disk/azure/data/by-lun/<lun>`), polled for up to 50 s; a disk without a lun, or whose
//! link did not appear, goes to the configured resolver. iSCSI (`iscsi`, open-iscsi and
//! multipath) is not supported.
//!
//! [`Resolver::find`] tells a disk that did not appear in time ([`Found::TimedOut`], Go's
//! `timedOut`) from other failures. Returned paths are canonical (links resolved) and under the
//! host root. Globs are the shell's (the `glob` crate), under the host root.

mod scsi;

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
    /// How long a SCSI disk is waited for after a rescan.
    pub scsi_wait: Duration,
    /// `LunDeviceSymlinkPath`: the directory of links named by lun, looked in first.
    pub lun_symlink_base: Option<PathBuf>,
    /// How long the lun link is waited for.
    pub lun_wait: Duration,
    /// `DiskIDTransformPattern` and `DiskIDTransformReplacement`: the id is rewritten with them
    /// and the result is the by-id glob itself (Go's `TransformDiskID`).
    pub id_transform: Option<IdTransform>,
}

/// A rewrite of disk ids into `/dev/disk/by-id/` globs (Go's `regexp` syntax; `${1}` refers to
/// a group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTransform {
    /// The regular expression.
    pub pattern: String,
    /// What a match becomes.
    pub replacement: String,
}

impl Resolver {
    /// The resolver `DevicePathResolutionType` names, with Go's waits.
    pub fn new(kind: &str) -> Resolver {
        Resolver {
            kind: kind.to_owned(),
            id_wait: Duration::from_millis(500),
            mapped_wait: Duration::from_secs(30),
            poll: Duration::from_millis(100),
            scsi_wait: Duration::from_secs(50),
            lun_symlink_base: None,
            lun_wait: Duration::from_secs(50),
            id_transform: None,
        }
    }

    /// This resolver looking once, without waiting (unit tests).
    pub fn without_waits(self) -> Resolver {
        Resolver {
            id_wait: Duration::ZERO,
            mapped_wait: Duration::ZERO,
            poll: Duration::ZERO,
            scsi_wait: Duration::ZERO,
            lun_wait: Duration::ZERO,
            ..self
        }
    }

    /// The device of `disk`; not finding it in time is an error.
    pub fn resolve(
        &self,
        runner: &dyn CommandRunner,
        host: &HostPaths,
        disk: &DiskSettings,
    ) -> Result<PathBuf> {
        match self.find(runner, host, disk)? {
            Found::Device(path) => Ok(path),
            Found::TimedOut(message) => Err(Error::Host(message)),
        }
    }

    /// The device of `disk`, or [`Found::TimedOut`] when it did not appear in time (Go's
    /// `timedOut`: `unmount_disk` and `list_disk` take such a disk as not mounted).
    pub fn find(
        &self,
        runner: &dyn CommandRunner,
        host: &HostPaths,
        disk: &DiskSettings,
    ) -> Result<Found> {
        if let Some(base) = &self.lun_symlink_base {
            match self.lun_symlink(host, base, disk) {
                Ok(Found::Device(path)) => return Ok(Found::Device(path)),
                Ok(Found::TimedOut(why)) | Err(Error::Settings(why)) => {
                    tracing::debug!(why, "no lun link, trying the configured resolver");
                }
                Err(err) => return Err(err),
            }
        }
        match self.kind.as_str() {
            "" => {
                if disk.path.is_empty() {
                    return Err(Error::Settings("the disk has no path".to_owned()));
                }
                Ok(Found::Device(host.reroot(Path::new(&disk.path))))
            }
            "virtio" => match self.by_id(runner, host, disk, self.transform()?.as_ref()) {
                Ok(path) => Ok(Found::Device(path)),
                Err(err) => {
                    tracing::debug!(error = %err, "no disk by id, trying the mapped path");
                    self.mapped(host, disk)
                }
            },
            "scsi" => self.scsi(host, disk),
            other => Err(Error::Unsupported(format!(
                "DevicePathResolutionType '{other}'"
            ))),
        }
    }

    /// `<base>/<lun>`, followed to a device that exists; polled for [`Resolver::lun_wait`].
    fn lun_symlink(&self, host: &HostPaths, base: &Path, disk: &DiskSettings) -> Result<Found> {
        if disk.lun.is_empty() {
            return Err(Error::Settings("Disk lun is not set".to_owned()));
        }
        let link = host.reroot(&base.join(&disk.lun));
        let deadline = Instant::now() + self.lun_wait;
        loop {
            // `canonicalize` fails until the link and the device it names both exist.
            if let Ok(device) = std::fs::canonicalize(&link) {
                return Ok(Found::Device(device));
            }
            if Instant::now() >= deadline {
                return Ok(Found::TimedOut(format!(
                    "Timed out waiting for symlink '{}' to resolve",
                    base.join(&disk.lun).display()
                )));
            }
            std::thread::sleep(self.poll);
        }
    }

    /// The compiled `DiskIDTransformPattern` and its replacement.
    fn transform(&self) -> Result<Option<(regex::Regex, &str)>> {
        let Some(transform) = &self.id_transform else {
            return Ok(None);
        };
        let pattern = regex::Regex::new(&transform.pattern).map_err(|err| {
            Error::Settings(format!(
                "DiskIDTransformPattern '{}': {err}",
                transform.pattern
            ))
        })?;
        Ok(Some((pattern, transform.replacement.as_str())))
    }

    fn by_id(
        &self,
        runner: &dyn CommandRunner,
        host: &HostPaths,
        disk: &DiskSettings,
        transform: Option<&(regex::Regex, &str)>,
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
        let glob = match transform {
            None => format!(
                "*{}",
                id.chars().take(VIRTIO_SERIAL_LEN).collect::<String>()
            ),
            Some((pattern, replacement)) => pattern.replace_all(id, *replacement).into_owned(),
        };
        if let Some(path) = find_by_id(host, &glob)? {
            return Ok(path);
        }
        files::run(runner, Cmd::new("udevadm").arg("trigger"))?;
        files::run(runner, Cmd::new("udevadm").arg("settle"))?;
        let deadline = Instant::now() + self.id_wait;
        loop {
            if let Some(path) = find_by_id(host, &glob)? {
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

    fn mapped(&self, host: &HostPaths, disk: &DiskSettings) -> Result<Found> {
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
                return Ok(Found::Device(found));
            }
            if Instant::now() >= deadline {
                return Ok(Found::TimedOut(format!(
                    "timed out getting real device path for {}",
                    disk.path
                )));
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// What looking for a disk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The disk's device (canonical, under the host root).
    Device(PathBuf),
    /// The disk did not appear in time; the text says which path was waited for.
    TimedOut(String),
}

/// The one device the links of `/dev/disk/by-id/` whose names match `glob` point at.
fn find_by_id(host: &HostPaths, glob: &str) -> Result<Option<PathBuf>> {
    let dir = host.dev("disk/by-id");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let pattern = glob::Pattern::new(glob)
        .map_err(|err| Error::Settings(format!("the disk id glob '{glob}': {err}")))?;
    // Several links may name one disk (udev makes `scsi-0…` and `scsi-S…` for the same SCSI
    // disk); links to different disks are an error, never a guess.
    let mut devices: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| pattern.matches(&entry.file_name().to_string_lossy()))
        .filter_map(|entry| std::fs::canonicalize(entry.path()).ok())
        .collect();
    devices.sort();
    devices.dedup();
    match devices.as_slice() {
        [] => Ok(None),
        [device] => Ok(Some(device.clone())),
        _ => Err(Error::Host(format!(
            "more than one disk matched {}/{glob}",
            dir.display()
        ))),
    }
}

/// The paths matching the absolute shell glob `pattern` on the host (under its root), sorted.
pub fn host_glob(host: &HostPaths, pattern: &str) -> Result<Vec<PathBuf>> {
    let root = host.root().to_string_lossy();
    let rooted = format!(
        "{}/{}",
        glob::Pattern::escape(root.trim_end_matches('/')),
        pattern.trim_start_matches('/')
    );
    let paths = glob::glob(&rooted)
        .map_err(|err| Error::Settings(format!("the glob '{pattern}': {err}")))?;
    let mut found: Vec<PathBuf> = paths.filter_map(std::result::Result::ok).collect();
    found.sort();
    Ok(found)
}

/// The entries of `dir`, sorted; none when it does not exist.
pub(crate) fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.path())
                .collect();
            paths.sort();
            Ok(paths)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(Error::io("listing", dir, err)),
    }
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Asks a SCSI host to scan every channel, target and lun.
pub(crate) fn rescan(scan: &Path) -> Result<()> {
    std::fs::write(scan, "- - -").map_err(|err| Error::io("writing", scan, err))
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

    pub(super) fn fake_dev(root: &Path) {
        std::fs::create_dir_all(root.join("dev/disk/by-id")).unwrap();
        std::fs::write(root.join("dev/vdb"), "").unwrap();
    }

    pub(super) fn resolver() -> Resolver {
        Resolver::new("virtio").without_waits()
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
    fn a_lun_link_comes_first_and_the_configured_resolver_after_it() {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        fake_dev(&base);
        std::fs::write(base.join("dev/sdc"), "").unwrap();
        let by_lun = base.join("dev/disk/azure/data/by-lun");
        std::fs::create_dir_all(&by_lun).unwrap();
        std::os::unix::fs::symlink("../../../../sdc", by_lun.join("0")).unwrap();
        let host = HostPaths::with_root(&base);
        let runner = RecordingRunner::new();
        let mut resolver = resolver();
        resolver.lun_symlink_base = Some(PathBuf::from("/dev/disk/azure/data/by-lun"));
        let with_lun = DiskSettings {
            lun: "0".into(),
            path: "/dev/vdb".into(),
            ..DiskSettings::default()
        };
        assert_eq!(
            resolver.resolve(&runner, &host, &with_lun).unwrap(),
            base.join("dev/sdc")
        );
        // No link for lun 1 in time, and no lun at all: the virtio resolver's mapped path.
        for disk in [
            DiskSettings {
                lun: "1".into(),
                ..with_lun.clone()
            },
            DiskSettings {
                lun: String::new(),
                ..with_lun.clone()
            },
        ] {
            assert_eq!(
                resolver.resolve(&runner, &host, &disk).unwrap(),
                base.join("dev/vdb"),
                "{disk:?}"
            );
        }
        // A link to a device that is not there yet is waited for like a missing link.
        std::os::unix::fs::symlink("../../../../sdq", by_lun.join("2")).unwrap();
        resolver.kind = "scsi".into();
        let dangling = DiskSettings {
            lun: "2".into(),
            ..DiskSettings::default()
        };
        assert_eq!(
            resolver
                .resolve(&runner, &host, &dangling)
                .unwrap_err()
                .to_string(),
            "Neither ID, VolumeID nor (Lun, HostDeviceID) provided in disk settings"
        );
        assert!(runner.recorded().is_empty());
    }

    #[test]
    fn links_to_one_disk_are_one_match_and_links_to_two_disks_an_error() {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        fake_dev(&base);
        std::fs::write(base.join("dev/sdc"), "").unwrap();
        let by_id = base.join("dev/disk/by-id");
        for link in [
            "scsi-0QEMU_QEMU_HARDDISK_disk0abc",
            "scsi-SQEMU_QEMU_HARDDISK_disk0abc",
        ] {
            std::os::unix::fs::symlink("../../vdb", by_id.join(link)).unwrap();
        }
        let host = HostPaths::with_root(&base);
        assert_eq!(
            find_by_id(&host, "*disk0abc").unwrap(),
            Some(base.join("dev/vdb"))
        );
        std::os::unix::fs::symlink("../../sdc", by_id.join("wwn-disk0abc")).unwrap();
        assert!(
            find_by_id(&host, "*disk0abc")
                .unwrap_err()
                .to_string()
                .starts_with("more than one disk matched")
        );
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
            Resolver::new("iscsi")
                .resolve(&runner, &host, &disk("", "/dev/sdb"))
                .unwrap_err()
                .to_string(),
            "DevicePathResolutionType 'iscsi' is not supported yet"
        );
    }

    #[test]
    fn a_transformed_id_is_the_glob_itself() {
        let root = tempfile::tempdir().unwrap();
        fake_dev(root.path());
        std::os::unix::fs::symlink(
            "../../vdb",
            root.path().join("dev/disk/by-id/google-persistent-disk-1"),
        )
        .unwrap();
        let host = HostPaths::with_root(root.path());
        let runner = RecordingRunner::new();
        let mut resolver = resolver();
        resolver.id_transform = Some(IdTransform {
            pattern: "^disk-(.+)$".into(),
            replacement: "google-persistent-${1}".into(),
        });
        let found = resolver
            .resolve(&runner, &host, &disk("disk-1-0123456789abcdef", "/dev/vdz"))
            .unwrap_err();
        // The whole id is rewritten: no link is named `google-persistent-1-0123…`.
        assert_eq!(
            found.to_string(),
            "timed out getting real device path for /dev/vdz"
        );
        resolver.id_transform = Some(IdTransform {
            pattern: "^disk-(\\d)-.*$".into(),
            replacement: "google-*-disk-${1}".into(),
        });
        let runner = RecordingRunner::new();
        assert_eq!(
            resolver
                .resolve(&runner, &host, &disk("disk-1-0123456789abcdef", "/dev/vdz"))
                .unwrap(),
            std::fs::canonicalize(root.path().join("dev/vdb")).unwrap()
        );
        assert!(runner.recorded().is_empty());
        resolver.id_transform = Some(IdTransform {
            pattern: "(".into(),
            replacement: String::new(),
        });
        assert!(
            resolver
                .resolve(&runner, &host, &disk("disk-1-0123456789abcdef", "/dev/vdz"))
                .unwrap_err()
                .to_string()
                .starts_with("DiskIDTransformPattern '(':")
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
