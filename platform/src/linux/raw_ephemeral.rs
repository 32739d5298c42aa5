//! Raw ephemeral disks (`SetupRawEphemeralDisks` in `platform/linux_platform.go`, §6.5 of the
//! reference): the disks of `disks.raw_ephemeral` are found and each, unless `parted -s <d> p`
//! already shows a GPT with a `raw-ephemeral-` partition, labelled `parted -s <d> mklabel gpt unit
//! % mkpart raw-ephemeral-<i> 0 100` (no filesystem: jobs use the partition as they like). Nothing
//! is done with `SkipDiskSetup`.
//!
//! Finding them: NVMe instance storage (AWS Nitro, where the order of `/dev/nvme*` is not the
//! order of the settings and EBS volumes are NVMe devices too) is discovered when the agent config
//! has `InstanceStorageManagedVolumePattern` and a settings path is `/dev/nvme…`: udev is
//! triggered for block devices and settled on those events (the managed-volume links are made by
//! udev, after the devices), then the devices of `InstanceStorageDevicePattern` (default
//! `/dev/nvme*n1`) less those the managed-volume links point at, sorted, are the disks; there must
//! be as many as the settings list. Otherwise each entry is resolved as the settings give it
//! ([`device_path`](crate::linux::device_path)).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use settings::model::DiskSettings;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::device_path::{Resolver, host_glob};
use crate::linux::files;

/// Go's `NVMeDevicePattern`: the instance storage looked for when the config names no pattern.
pub const NVME_DEVICE_PATTERN: &str = "/dev/nvme*n1";

/// The agent config's `InstanceStorageDevicePattern` and `InstanceStorageManagedVolumePattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceStorage {
    /// The glob of every candidate device; empty for [`NVME_DEVICE_PATTERN`].
    pub device_pattern: String,
    /// The glob of the links to the cloud's managed volumes; empty turns discovery off.
    pub managed_volume_pattern: String,
}

/// Labels every raw ephemeral disk of `disks` that is not labelled yet.
pub fn setup_raw_ephemeral_disks(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    resolver: &Resolver,
    instance_storage: &InstanceStorage,
    skip_disk_setup: bool,
    disks: &[DiskSettings],
) -> Result<()> {
    if skip_disk_setup || disks.is_empty() {
        return Ok(());
    }
    tracing::info!(count = disks.len(), "setting up raw ephemeral disks");
    let devices = if !instance_storage.managed_volume_pattern.is_empty()
        && disks.iter().any(|disk| disk.path.starts_with("/dev/nvme"))
    {
        discover_instance_storage(runner, host, instance_storage, disks.len())?
    } else {
        disks
            .iter()
            .enumerate()
            .map(|(index, disk)| {
                resolver.resolve(runner, host, disk).map_err(|err| {
                    Error::Host(format!(
                        "disks.raw_ephemeral[{index}]: no device found: {err}"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?
    };
    for (index, device) in devices.iter().enumerate() {
        label(runner, device, index)?;
    }
    Ok(())
}

/// The instance storage devices: those of the device pattern that no managed-volume link points
/// at, sorted; exactly `expected` of them.
fn discover_instance_storage(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    instance_storage: &InstanceStorage,
    expected: usize,
) -> Result<Vec<PathBuf>> {
    files::run(
        runner,
        Cmd::new("udevadm").args(["trigger", "--settle", "--subsystem-match=block"]),
    )?;
    let pattern = if instance_storage.device_pattern.is_empty() {
        NVME_DEVICE_PATTERN
    } else {
        &instance_storage.device_pattern
    };
    let managed: BTreeSet<PathBuf> = host_glob(host, &instance_storage.managed_volume_pattern)?
        .into_iter()
        .map(|link| std::fs::canonicalize(&link).map_err(|err| Error::io("resolving", &link, err)))
        .collect::<Result<_>>()?;
    let mut found: Vec<PathBuf> = host_glob(host, pattern)?
        .into_iter()
        .filter(|device| {
            let canonical = std::fs::canonicalize(device).unwrap_or_else(|_| device.clone());
            !managed.contains(&canonical)
        })
        .collect();
    found.sort();
    tracing::info!(
        ?found,
        managed = managed.len(),
        "discovered instance storage"
    );
    if found.len() != expected {
        return Err(Error::Host(format!(
            "Discovering instance storage devices: Expected {expected} instance storage devices but discovered {}: {}",
            found.len(),
            found
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(found)
}

/// Labels `device` as raw ephemeral disk `index` unless it already is.
pub fn label(runner: &dyn CommandRunner, device: &Path, index: usize) -> Result<()> {
    let print = Cmd::new("parted").arg("-s").arg(device).arg("p");
    let stdout = match runner.run(&print) {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(crate::cmd::Error::Failed { stdout, stderr, .. })
            if format!("{stdout}\n{stderr}").contains("unrecognised disk label") =>
        {
            stdout
        }
        Err(source) => return Err(Error::command(&print, source)),
    };
    if stdout.contains("Partition Table: gpt") && stdout.contains("raw-ephemeral-") {
        tracing::info!(device = %device.display(), "the raw ephemeral disk is already labelled");
        return Ok(());
    }
    files::run(
        runner,
        Cmd::new("parted")
            .arg("-s")
            .arg(device)
            .args(["mklabel", "gpt", "unit", "%", "mkpart"])
            .arg(format!("raw-ephemeral-{index}"))
            .args(["0", "100"]),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    fn resolver() -> Resolver {
        Resolver::new("")
    }

    /// The raw ephemeral setup of `disks` on the host `/` with the identity resolver and no
    /// instance-storage patterns.
    fn setup(runner: &RecordingRunner, skip: bool, disks: &[DiskSettings]) -> Result<()> {
        setup_raw_ephemeral_disks(
            runner,
            &HostPaths::with_root("/"),
            &resolver(),
            &InstanceStorage::default(),
            skip,
            disks,
        )
    }

    fn disks(paths: &[&str]) -> Vec<DiskSettings> {
        paths
            .iter()
            .map(|path| DiskSettings {
                path: (*path).to_owned(),
                ..DiskSettings::default()
            })
            .collect()
    }

    #[test]
    fn blank_disks_get_a_gpt_and_one_named_partition_each() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["parted", "-s", "/dev/vdc", "p"],
            Reply::Fail(1, "Error: /dev/vdc: unrecognised disk label".into()),
        );
        runner.expect(
            &[
                "parted",
                "-s",
                "/dev/vdc",
                "mklabel",
                "gpt",
                "unit",
                "%",
                "mkpart",
                "raw-ephemeral-0",
                "0",
                "100",
            ],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["parted", "-s", "/dev/vdd", "p"],
            Reply::Ok("Model: Virtio Block Device (virtblk)\nPartition Table: msdos\n".into()),
        );
        runner.expect(
            &[
                "parted",
                "-s",
                "/dev/vdd",
                "mklabel",
                "gpt",
                "unit",
                "%",
                "mkpart",
                "raw-ephemeral-1",
                "0",
                "100",
            ],
            Reply::Ok(String::new()),
        );
        setup(&runner, false, &disks(&["/dev/vdc", "/dev/vdd"])).unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
        assert_eq!(runner.recorded().len(), 4);
    }

    #[test]
    fn an_already_labelled_disk_is_left_alone() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["parted", "-s", "/dev/vdc", "p"],
            Reply::Ok(
                "Model: Virtio Block Device (virtblk)\nDisk /dev/vdc: 1074MB\n\
                 Partition Table: gpt\n\nNumber  Start   End     Size    File system  Name             Flags\n \
                 1      1049kB  1073MB  1072MB               raw-ephemeral-0\n"
                    .into(),
            ),
        );
        setup(&runner, false, &disks(&["/dev/vdc"])).unwrap();
        assert_eq!(
            runner.recorded(),
            vec![vec!["parted", "-s", "/dev/vdc", "p"]]
        );
    }

    #[test]
    fn skip_disk_setup_and_no_disks_do_nothing_and_other_failures_are_errors() {
        let runner = RecordingRunner::new();
        setup(&runner, true, &disks(&["/dev/vdc"])).unwrap();
        setup(&runner, false, &[]).unwrap();
        assert!(runner.recorded().is_empty());

        let err = setup(&runner, false, &disks(&[""])).unwrap_err();
        assert!(
            err.to_string().starts_with("disks.raw_ephemeral[0]: "),
            "{err}"
        );
        runner.expect(
            &["parted", "-s", "/dev/vdc", "p"],
            Reply::Fail(1, "Error: Could not stat device /dev/vdc".into()),
        );
        let err = label(&runner, Path::new("/dev/vdc"), 0).unwrap_err();
        assert_eq!(err.to_string(), "running parted -s /dev/vdc p");
    }

    /// An AWS Nitro guest: the EBS root and data volumes and two instance store disks are all
    /// NVMe, enumerated in no useful order; the EBS links name the managed ones.
    fn fake_nitro(base: &Path) {
        std::fs::create_dir_all(base.join("dev/disk/by-id")).unwrap();
        for name in ["nvme0n1", "nvme1n1", "nvme2n1", "nvme3n1", "nvme0n1p1"] {
            std::fs::write(base.join("dev").join(name), "").unwrap();
        }
        for (volume, device) in [("vol0a1", "nvme2n1"), ("vol0b2", "nvme0n1")] {
            std::os::unix::fs::symlink(
                format!("../../{device}"),
                base.join(format!(
                    "dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume}"
                )),
            )
            .unwrap();
        }
    }

    fn nitro() -> InstanceStorage {
        InstanceStorage {
            device_pattern: String::new(),
            managed_volume_pattern: "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_*".into(),
        }
    }

    fn expect_blank(runner: &RecordingRunner, device: &Path, index: usize) {
        let device = device.to_str().unwrap();
        runner.expect(
            &["parted", "-s", device, "p"],
            Reply::Fail(1, format!("Error: {device}: unrecognised disk label")),
        );
        let name = format!("raw-ephemeral-{index}");
        runner.expect(
            &[
                "parted", "-s", device, "mklabel", "gpt", "unit", "%", "mkpart", &name, "0", "100",
            ],
            Reply::Ok(String::new()),
        );
    }

    #[test]
    fn nvme_instance_storage_is_every_nvme_disk_but_the_managed_volumes_in_order() {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        fake_nitro(&base);
        let host = HostPaths::with_root(&base);
        let runner = RecordingRunner::new();
        runner.expect(
            &["udevadm", "trigger", "--settle", "--subsystem-match=block"],
            Reply::Ok(String::new()),
        );
        // The settings' paths say nothing about which device is which.
        expect_blank(&runner, &base.join("dev/nvme1n1"), 0);
        expect_blank(&runner, &base.join("dev/nvme3n1"), 1);
        setup_raw_ephemeral_disks(
            &runner,
            &host,
            &resolver(),
            &nitro(),
            false,
            &disks(&["/dev/nvme0n1", "/dev/nvme1n1"]),
        )
        .unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());

        // A count that does not match is an error before anything is labelled.
        let runner = RecordingRunner::new();
        runner.expect(
            &["udevadm", "trigger", "--settle", "--subsystem-match=block"],
            Reply::Ok(String::new()),
        );
        let err = setup_raw_ephemeral_disks(
            &runner,
            &host,
            &resolver(),
            &nitro(),
            false,
            &disks(&["/dev/nvme0n1", "/dev/nvme1n1", "/dev/nvme2n1"]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Discovering instance storage devices: Expected 3 instance storage devices but \
                 discovered 2: {0}/dev/nvme1n1, {0}/dev/nvme3n1",
                base.display()
            )
        );
        assert_eq!(runner.recorded().len(), 1);

        // Without the managed-volume pattern, or without NVMe paths, the settings are followed.
        let runner = RecordingRunner::new();
        expect_blank(&runner, &base.join("dev/nvme0n1"), 0);
        setup_raw_ephemeral_disks(
            &runner,
            &host,
            &Resolver::new(""),
            &InstanceStorage::default(),
            false,
            &disks(&["/dev/nvme0n1"]),
        )
        .unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
    }
}
