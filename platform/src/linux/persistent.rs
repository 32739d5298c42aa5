//! Persistent disks (`AdjustPersistentDiskPartitioning`, `MountPersistentDisk`,
//! `UnmountPersistentDisk`, `MigratePersistentDisk`, `IsPersistentDiskMounted`,
//! `IsPersistentDiskMountable` in `platform/linux_platform.go`; §6.5 of the reference).
//!
//! Before anything is written the device is probed with libblkid ([`probe`](crate::linux::probe):
//! a filesystem `TYPE`, a table `PTTYPE`), and the table read with `sfdisk -J <dev>`:
//! * nothing on it: one linux partition over the whole disk, by the partitioner Go picks (the
//!   disk's `persistent_disk_partitioner`, else `PartitionerType` of `agent.json`): `parted`
//!   always makes a GPT (`parted -s <dev> mklabel gpt`, `parted -s <dev> unit B mkpart
//!   bosh-partition-0 1048576 <last whole MiB - 1>`); `sfdisk` and the default feed `sfdisk <dev>`
//!   `,,L` up to 2 TiB and use parted above; then `udevadm trigger --settle <dev>` (Ignition's wait for the disk's own event), then
//!   the filesystem of `persistent_disk_fs` (`ext4`, the default: `mke2fs -t ext4 -j`; `xfs`:
//!   `mkfs.xfs`; anything else is Go's `The filesystem type "<t>" is not supported`);
//! * our layout (one linux partition, unnamed or Go's `bosh-partition-0`): kept; when it ends more than 100 MiB before the disk does
//!   it is grown (`growpart <dev> 1`) and, once mounted, so is its filesystem (`resize2fs -f
//!   <part>`, `xfs_growfs -d <mount point>`); a partition without a filesystem gets one;
//! * anything else (a filesystem on the whole disk, several partitions, a partition of another
//!   type, the ephemeral disk's `bosh-partition-<agent id>-<i>`, a partition holding another filesystem) is
//!   refused, nothing written. Go repartitions some of these; we never destroy data we did not
//!   write (Ignition's rule: reuse what matches, fail otherwise).
//!
//! `UsePreformattedPersistentDisk` skips all of that and mounts the device itself. A disk whose
//! partition is already mounted is not probed again. The mount point is the one asked for
//! (`store/`) unless another device holds it: then `store_migration_target/` (0700), as Go does.
//! Mounting is `mount <part> <mp> [-o <option>]…`. Unmounting (`umount <part>`) is retried while
//! the kernel says the target is busy. Migration remounts the old disk read-only, copies with
//! Go's tar pipe (`--xattrs --xattrs-include=*.* --sparse`, run by bash with `pipefail` so a
//! failing reader is not hidden), unmounts the old disk and mounts the new one in its place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use settings::Dirs;
use settings::agent_config::LinuxOptions;
use settings::model::DiskSettings;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::device_path::{self, Found, Resolver};
use crate::linux::probe::{Probe, Prober};
use crate::linux::{ephemeral, files};
use crate::mount::{self, MountEntry};

const MIB: u64 = 1024 * 1024;
/// Disks above this get a GPT through parted, as in Go.
const SFDISK_LIMIT: u64 = 2 * 1024 * 1024 * MIB;
/// A partition this much smaller than its disk is grown.
const GROW_THRESHOLD: u64 = 100 * MIB;
/// The name Go's parted partitioner gives a persistent disk's partition.
pub const PERSISTENT_PARTITION_NAME: &str = "bosh-partition-0";

/// GPT's linux filesystem partition type.
const GPT_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// How unmounting a busy disk is retried (Go: 600 tries, 1 s apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnmountRetry {
    /// How many times `umount` runs at most.
    pub tries: u32,
    /// The pause between two tries.
    pub delay: Duration,
}

impl Default for UnmountRetry {
    fn default() -> UnmountRetry {
        UnmountRetry {
            tries: 600,
            delay: Duration::from_secs(1),
        }
    }
}

/// The persistent-disk operations on one host.
#[derive(Debug, Clone, Copy)]
pub struct PersistentDisks<'a> {
    /// Runs every command.
    pub runner: &'a dyn CommandRunner,
    /// Where devices, `/sys` and the mount table are read.
    pub host: &'a HostPaths,
    /// The agent's dirs (`store_migration_target`).
    pub dirs: &'a Dirs,
    /// `Platform.Linux`.
    pub linux: &'a LinuxOptions,
    /// How the disk is found.
    pub resolver: &'a Resolver,
    /// How a busy unmount is retried.
    pub unmount_retry: UnmountRetry,
    /// What reads devices' signatures.
    pub prober: &'a dyn Prober,
}

/// One partition of `sfdisk -J`.
#[derive(Debug, Clone, serde::Deserialize)]
struct SfdiskPartition {
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct SfdiskTable {
    #[serde(default)]
    label: String,
    #[serde(default = "default_sector_size")]
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<SfdiskPartition>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct SfdiskDump {
    partitiontable: SfdiskTable,
}

fn default_sector_size() -> u64 {
    512
}

impl PersistentDisks<'_> {
    fn device(&self, disk: &DiskSettings) -> Result<PathBuf> {
        self.resolver.resolve(self.runner, self.host, disk)
    }

    /// The device or partition that is mounted for `device`: partition 1, or the device itself
    /// with `UsePreformattedPersistentDisk`.
    fn mounted_path(&self, device: &Path) -> PathBuf {
        if self.linux.use_preformatted_persistent_disk {
            device.to_path_buf()
        } else {
            device_path::partition_path(device, 1)
        }
    }

    fn mounts(&self) -> Result<Vec<MountEntry>> {
        Ok(mount::read_mounts(self.host)?)
    }

    /// Mounts `disk` on `mount_point`, or on `store_migration_target/` when another device holds
    /// `mount_point`; partitions and formats a blank disk first and grows a partition smaller
    /// than its disk. Nothing happens when the disk is mounted there already.
    pub fn mount(&self, disk: &DiskSettings, mount_point: &Path) -> Result<PathBuf> {
        if self.linux.bind_mount_persistent_disk {
            return Err(Error::Unsupported("BindMountPersistentDisk".to_owned()));
        }
        let device = self.device(disk)?;
        let part = self.mounted_path(&device);
        let part_text = part.to_string_lossy().into_owned();
        let migration_dir = self.dirs.store_migration_dir();
        let mounts = self.mounts()?;
        for entry in &mounts {
            if entry.source == part_text
                && (entry.mount_point == mount_point || entry.mount_point == migration_dir)
            {
                tracing::info!(partition = %part_text, mount_point = %entry.mount_point.display(), "persistent disk already mounted");
                return Ok(entry.mount_point.clone());
            }
            if entry.source == part_text {
                return Err(Error::Host(format!(
                    "Device {part_text} is already mounted to {}, can't mount to {}",
                    entry.mount_point.display(),
                    mount_point.display()
                )));
            }
        }
        let target = match mount::mounted_on(&mounts, mount_point) {
            None => mount_point.to_path_buf(),
            Some(_) => {
                if let Some(other) = mount::mounted_on(&mounts, &migration_dir) {
                    return Err(Error::Host(format!(
                        "Device {} is already mounted to {}, can't mount {part_text}",
                        other.source,
                        migration_dir.display()
                    )));
                }
                migration_dir
            }
        };
        let grow = if self.linux.use_preformatted_persistent_disk {
            None
        } else {
            self.adjust(disk, &device)?
        };
        files::ensure_dir(&target, 0o700)?;
        let mut cmd = Cmd::new("mount").arg(&part).arg(&target);
        for option in &disk.mount_options {
            cmd = cmd.arg("-o").arg(option);
        }
        files::run(self.runner, cmd)?;
        match grow.as_deref() {
            Some("ext4") => {
                files::run(self.runner, Cmd::new("resize2fs").arg("-f").arg(&part))?;
            }
            Some("xfs") => {
                files::run(self.runner, Cmd::new("xfs_growfs").arg("-d").arg(&target))?;
            }
            _ => {}
        }
        Ok(target)
    }

    /// Makes `device` one linux partition with a filesystem; answers the filesystem to grow
    /// once mounted when the partition was grown.
    fn adjust(&self, disk: &DiskSettings, device: &Path) -> Result<Option<String>> {
        let wanted_fs = match disk.file_system_type.as_str() {
            "" | "ext4" => "ext4",
            "xfs" => "xfs",
            other => {
                return Err(Error::Settings(format!(
                    "The filesystem type \"{other}\" is not supported"
                )));
            }
        };
        let dev = device.display();
        let probe = self.probe(device)?;
        let part = device_path::partition_path(device, 1);
        let mut grown = false;
        if let Some(fs_type) = &probe.fs_type {
            return Err(Error::Host(format!(
                "disk {dev} holds a {fs_type} signature and no partition table; it is left as it is (UsePreformattedPersistentDisk mounts such a disk)"
            )));
        }
        if probe.table_type.is_none() {
            self.partition_blank(disk, device)?;
        } else {
            let table = self.table(device)?;
            let is_ours = match table.partitions.as_slice() {
                // Go's parted partitioner names a persistent disk's partition
                // `bosh-partition-0`; ephemeral partitions are `bosh-partition-<agent id>-<i>`.
                [only] => {
                    (only.kind == "83" || only.kind.eq_ignore_ascii_case(GPT_LINUX))
                        && (only.name == PERSISTENT_PARTITION_NAME
                            || !only.name.starts_with("bosh-partition"))
                }
                _ => false,
            };
            if !is_ours {
                let kinds: Vec<&str> = table.partitions.iter().map(|p| p.kind.as_str()).collect();
                return Err(Error::Host(format!(
                    "disk {dev} holds a {} partition table that is not one linux partition ({} partitions, types [{}]); it is left as it is",
                    table.label,
                    table.partitions.len(),
                    kinds.join(", ")
                )));
            }
            let only = &table.partitions[0];
            let end = (only.start + only.size) * table.sectorsize;
            let size = ephemeral::device_size(self.host, device)?;
            if size > end && size - end > GROW_THRESHOLD {
                tracing::info!(disk = %dev, partition_end = end, disk_size = size, "growing the persistent disk's partition");
                files::run(
                    self.runner,
                    Cmd::new("growpart")
                        .arg(device)
                        .args(["1", "--update", "auto"]),
                )?;
                self.settle(device)?;
                grown = true;
            }
        }
        match self.probe(&part)?.fs_type {
            None => {
                self.format(&part, wanted_fs)?;
                Ok(None)
            }
            Some(found) if found == "ext4" || found == "xfs" => {
                Ok(if grown { Some(found) } else { None })
            }
            Some(other) => Err(Error::Host(format!(
                "partition {} holds a {other} filesystem, not ext4 or xfs; it is left as it is",
                part.display()
            ))),
        }
    }

    /// One linux partition over the blank `device`, by the partitioner Go would use: the disk's
    /// `persistent_disk_partitioner`, else the agent config's `PartitionerType`; `parted` always
    /// parts with parted, `sfdisk` and the default with sfdisk up to 2 TiB (a DOS label's limit)
    /// and parted above.
    fn partition_blank(&self, disk: &DiskSettings, device: &Path) -> Result<()> {
        let partitioner = if disk.partitioner.is_empty() {
            self.linux.partitioner_type.as_str()
        } else {
            disk.partitioner.as_str()
        };
        let size = ephemeral::device_size(self.host, device)?;
        match partitioner {
            "" | "sfdisk" if size <= SFDISK_LIMIT => {
                files::run(self.runner, Cmd::new("sfdisk").arg(device).stdin(",,L\n"))?;
            }
            "" | "sfdisk" | "parted" => {
                // Go's parted partitioner: a GPT, one partition from 1 MiB to the last whole MiB.
                files::run(
                    self.runner,
                    Cmd::new("parted")
                        .arg("-s")
                        .arg(device)
                        .args(["mklabel", "gpt"]),
                )?;
                let end = (size.saturating_sub(1) / MIB) * MIB - 1;
                files::run(
                    self.runner,
                    Cmd::new("parted")
                        .arg("-s")
                        .arg(device)
                        .args(["unit", "B", "mkpart", PERSISTENT_PARTITION_NAME])
                        .arg(MIB.to_string())
                        .arg(end.to_string()),
                )?;
            }
            other => {
                return Err(Error::Settings(format!(
                    "Unknown partitioner type '{other}'"
                )));
            }
        }
        self.settle(device)
    }

    /// Waits for udev to handle `device`'s own change event (not a bare settle, which races).
    fn settle(&self, device: &Path) -> Result<()> {
        files::run(
            self.runner,
            Cmd::new("udevadm")
                .args(["trigger", "--settle"])
                .arg(device),
        )
        .map(drop)
    }

    fn format(&self, part: &Path, fs: &str) -> Result<()> {
        let cmd = if fs == "xfs" {
            Cmd::new("mkfs.xfs").arg(part)
        } else {
            let mut cmd = Cmd::new("mke2fs").args(["-t", "ext4", "-j"]);
            if self.host.sys("fs/ext4/features/lazy_itable_init").exists() {
                cmd = cmd.args(["-E", "lazy_itable_init=1"]);
            }
            cmd.arg(part)
        };
        files::run(self.runner, cmd).map(drop)
    }

    /// What `path` holds.
    fn probe(&self, path: &Path) -> Result<Probe> {
        self.prober.probe(path)
    }

    fn table(&self, device: &Path) -> Result<SfdiskTable> {
        let stdout = files::run_stdout(self.runner, Cmd::new("sfdisk").arg("-J").arg(device))?;
        let dump: SfdiskDump = serde_json::from_str(&stdout).map_err(|err| {
            Error::Host(format!(
                "reading the partition table of {}: {err}",
                device.display()
            ))
        })?;
        Ok(dump.partitiontable)
    }

    /// Unmounts `disk`; answers whether it was mounted (a disk not found in time was not).
    pub fn unmount(&self, disk: &DiskSettings) -> Result<bool> {
        let device = match self.resolver.find(self.runner, self.host, disk)? {
            Found::Device(device) => device,
            Found::TimedOut(message) => {
                tracing::info!(%message, "persistent disk not found, taken as not mounted");
                return Ok(false);
            }
        };
        let part = self.mounted_path(&device);
        let part_text = part.to_string_lossy();
        if !self.mounts()?.iter().any(|entry| entry.source == part_text) {
            return Ok(false);
        }
        self.umount(&part)?;
        Ok(true)
    }

    /// `umount <target>`, retried while the kernel says it is busy.
    fn umount(&self, target: &Path) -> Result<()> {
        let cmd = Cmd::new("umount").arg(target);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.runner.run(&cmd) {
                Ok(_) => return Ok(()),
                Err(crate::cmd::Error::Failed { stderr, .. })
                    if stderr.contains("busy") && tries < self.unmount_retry.tries =>
                {
                    tracing::info!(target = %target.display(), tries, "busy, unmounting again");
                    std::thread::sleep(self.unmount_retry.delay);
                }
                Err(source) => return Err(Error::command(&cmd, source)),
            }
        }
    }

    /// Whether `disk`'s partition (or device) is mounted anywhere.
    pub fn is_mounted(&self, disk: &DiskSettings) -> Result<bool> {
        let device = match self.resolver.find(self.runner, self.host, disk)? {
            Found::Device(device) => device,
            Found::TimedOut(_) => return Ok(false),
        };
        let part = self.mounted_path(&device);
        let part_text = part.to_string_lossy();
        Ok(self.mounts()?.iter().any(|entry| entry.source == part_text))
    }

    /// Whether `disk` looks partitioned (`sfdisk -d` prints more than 4 lines and knows the
    /// table), so the bootstrap remounts it; a blank disk is left for `mount_disk`.
    pub fn is_mountable(&self, disk: &DiskSettings) -> Result<bool> {
        let device = self.device(disk)?;
        let cmd = Cmd::new("sfdisk").arg("-d").arg(&device);
        match self.runner.run(&cmd) {
            Ok(output) => {
                let stdout = String::from_utf8_lossy(&output.stdout);
                Ok(stdout.split('\n').count() > 4)
            }
            Err(err) => {
                tracing::debug!(error = %err, "sfdisk -d: not partitioned");
                Ok(false)
            }
        }
    }

    /// Copies the disk on `from` to the disk on `to`, then puts the new disk on `from`.
    pub fn migrate(&self, from: &Path, to: &Path) -> Result<()> {
        let mounts = self.mounts()?;
        let not_mounted =
            |path: &Path| Error::Host(format!("no disk is mounted on {}", path.display()));
        mount::mounted_on(&mounts, from).ok_or_else(|| not_mounted(from))?;
        let new_disk = mount::mounted_on(&mounts, to)
            .ok_or_else(|| not_mounted(to))?
            .source
            .clone();
        files::run(
            self.runner,
            Cmd::new("mount").arg("-o").arg("remount,ro").arg(from),
        )?;
        let copy = format!(
            "set -o pipefail; (tar -C {} --xattrs --xattrs-include='*.*' --sparse -cf - .) | (tar -C {} --xattrs --xattrs-include='*.*' -xpf -)",
            quote(from),
            quote(to)
        );
        files::run(self.runner, Cmd::new("bash").arg("-c").arg(copy))?;
        self.umount(from)?;
        self.umount(to)?;
        files::run(self.runner, Cmd::new("mount").arg(&new_disk).arg(from)).map(drop)
    }
}

/// `path` single-quoted for the shell.
fn quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
#[path = "persistent_tests.rs"]
mod tests;
