//! Raw ephemeral disks (`SetupRawEphemeralDisks` in `platform/linux_platform.go`, §6.5 of the
//! reference): each disk of `disks.raw_ephemeral` is found (the resolver of
//! [`device_path`](crate::linux::device_path)) and, unless `parted -s <d> p` already shows a GPT
//! with a `raw-ephemeral-` partition, labelled `parted -s <d> mklabel gpt unit % mkpart
//! raw-ephemeral-<i> 0 100` (no filesystem: jobs use the partition as they like). Nothing is done
//! with `SkipDiskSetup`.
//!
//! Not done: the reference's NVMe instance-storage discovery (`InstanceStorageDevicePattern` less
//! the managed-volume links), an AWS-only path; each entry is resolved as the settings give it.

use std::path::Path;

use settings::model::DiskSettings;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::device_path::Resolver;
use crate::linux::files;

/// Labels every raw ephemeral disk of `disks` that is not labelled yet.
pub fn setup_raw_ephemeral_disks(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    resolver: &Resolver,
    skip_disk_setup: bool,
    disks: &[DiskSettings],
) -> Result<()> {
    if skip_disk_setup || disks.is_empty() {
        return Ok(());
    }
    tracing::info!(count = disks.len(), "setting up raw ephemeral disks");
    for (index, disk) in disks.iter().enumerate() {
        let device = resolver.resolve(runner, host, disk).map_err(|err| {
            Error::Host(format!(
                "disks.raw_ephemeral[{index}]: no device found: {err}"
            ))
        })?;
        label(runner, &device, index)?;
    }
    Ok(())
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
        let host = HostPaths::with_root("/");
        setup_raw_ephemeral_disks(
            &runner,
            &host,
            &resolver(),
            false,
            &disks(&["/dev/vdc", "/dev/vdd"]),
        )
        .unwrap();
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
        let host = HostPaths::with_root("/");
        setup_raw_ephemeral_disks(&runner, &host, &resolver(), false, &disks(&["/dev/vdc"]))
            .unwrap();
        assert_eq!(
            runner.recorded(),
            vec![vec!["parted", "-s", "/dev/vdc", "p"]]
        );
    }

    #[test]
    fn skip_disk_setup_and_no_disks_do_nothing_and_other_failures_are_errors() {
        let runner = RecordingRunner::new();
        let host = HostPaths::with_root("/");
        setup_raw_ephemeral_disks(&runner, &host, &resolver(), true, &disks(&["/dev/vdc"]))
            .unwrap();
        setup_raw_ephemeral_disks(&runner, &host, &resolver(), false, &[]).unwrap();
        assert!(runner.recorded().is_empty());

        let err = setup_raw_ephemeral_disks(&runner, &host, &resolver(), false, &disks(&[""]))
            .unwrap_err();
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
}
