//! Partitioning the ephemeral disk with parted (`platform/disk/ephemeral_device_partitioner.go`,
//! `parted_partitioner.go`, `calculateEphemeralDiskPartitionSizes` and `partitionDisk` in
//! `platform/linux_platform.go`).
//!
//! [`plan`] is pure: swap is `env.bosh.swap_size` MiB when set, else the RAM if it fits in half the
//! disk, else half the disk; the data partition takes the rest; no swap means one partition. The
//! partitions are named `<prefix>-<index>` with `prefix = bosh-partition-<agent_id>` cut to 32
//! characters (Go cuts only names longer than 33, so a 33-character prefix is kept whole). The
//! first starts at 1 MiB; each ends at `start + size` (at most the disk's last byte) rounded down
//! to 1 MiB, minus one; the next starts at the following MiB boundary.
//!
//! [`partition`] reads the table (`parted -m <d> unit B print`); when it already has at least the
//! planned number of partitions and their names start with the prefix, nothing is changed (an
//! agent or VM restart, or a new RAM size, never repartitions). Otherwise: `wipefs --force -a
//! <d>`, `parted -s <d> mklabel gpt`, one `parted -s <d> unit B mkpart <name> <start> <end>` per
//! partition, `partprobe <d>` and `udevadm settle`. Each of these is retried (20 tries, 3 s apart,
//! as Go does for the kernel's "unable to inform" failures).

use std::path::Path;
use std::time::Duration;

use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;

/// One MiB.
pub const MIB: u64 = 1024 * 1024;

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Swap.
    Swap,
    /// The ext4 data partition.
    Linux,
}

/// One planned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Its GPT name.
    pub name: String,
    /// What it is for.
    pub kind: Kind,
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
}

/// `bosh-partition-<agent_id>`, cut as Go cuts it.
pub fn name_prefix(agent_id: &str) -> String {
    let prefix = format!("bosh-partition-{agent_id}");
    if prefix.len() > 33 {
        // Keep room for `-<index>` in GPT's 36 characters.
        prefix.chars().take(32).collect()
    } else {
        prefix
    }
}

/// The swap size for `available` bytes of disk (`calculateEphemeralDiskPartitionSizes`):
/// `swap_size_mib` MiB when set, else the RAM if it fits in half the space, else half the space.
pub fn swap_bytes(available: u64, ram_bytes: u64, swap_size_mib: Option<u64>) -> u64 {
    match swap_size_mib {
        Some(mib) => mib.saturating_mul(MIB),
        None if ram_bytes <= available / 2 => ram_bytes,
        None => available / 2,
    }
}

/// The partitions of a `disk_bytes` disk on a VM with `ram_bytes` of memory.
pub fn plan(
    agent_id: &str,
    disk_bytes: u64,
    ram_bytes: u64,
    swap_size_mib: Option<u64>,
) -> Result<Vec<Planned>> {
    let swap = swap_bytes(disk_bytes, ram_bytes, swap_size_mib);
    let prefix = name_prefix(agent_id);
    let mut sizes = Vec::new();
    if swap > 0 {
        sizes.push((Kind::Swap, swap));
    }
    sizes.push((Kind::Linux, disk_bytes.saturating_sub(swap)));
    let mut planned = Vec::new();
    let mut start = MIB;
    for (index, (kind, size)) in sizes.into_iter().enumerate() {
        let last_byte = disk_bytes.saturating_sub(1);
        let end = start.saturating_add(size).min(last_byte) / MIB * MIB;
        if end <= start {
            return Err(Error::Settings(format!(
                "env.bosh.swap_size: a disk of {disk_bytes} bytes has no room for partition {index} ({} swap bytes)",
                swap
            )));
        }
        planned.push(Planned {
            name: format!("{prefix}-{index}"),
            kind,
            start,
            end: end - 1,
        });
        start = end;
    }
    Ok(planned)
}

/// A partition `parted -m ... print` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Its number.
    pub number: u32,
    /// Its name.
    pub name: String,
}

/// The partitions of `parted -m <d> unit B print` output (`BYT;`, the disk line, one line per
/// partition: `number:start:end:size:fs:name:flags;`).
pub fn parse_print(stdout: &str) -> Result<Vec<Existing>> {
    let mut partitions = Vec::new();
    for line in stdout.lines().skip(2) {
        let line = line.trim();
        if line.is_empty() || line.contains("prep") {
            continue;
        }
        let fields: Vec<&str> = line.trim_end_matches(';').split(':').collect();
        let (Some(number), Some(name)) =
            (fields.first().and_then(|n| n.parse().ok()), fields.get(5))
        else {
            return Err(Error::Host(format!("unexpected parted line '{line}'")));
        };
        partitions.push(Existing {
            number,
            name: (*name).to_owned(),
        });
    }
    Ok(partitions)
}

/// How [`partition`] retries.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries per command.
    pub tries: u32,
    /// The pause between tries.
    pub delay: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            tries: 20,
            delay: Duration::from_secs(3),
        }
    }
}

/// Partitions `device` as `planned` unless it already is; answers whether it changed the disk.
pub fn partition(
    runner: &dyn CommandRunner,
    device: &Path,
    planned: &[Planned],
    retry: Retry,
) -> Result<bool> {
    let existing = read_partitions(runner, device)?;
    let prefix = planned
        .first()
        .and_then(|p| p.name.rsplit_once('-'))
        .map(|(prefix, _)| prefix.to_owned())
        .unwrap_or_default();
    if existing.len() >= planned.len()
        && existing
            .iter()
            .take(planned.len())
            .all(|e| e.name.starts_with(&prefix))
    {
        tracing::info!(device = %device.display(), "the ephemeral disk is already partitioned");
        return Ok(false);
    }
    let parted = || Cmd::new("parted").arg("-s").arg(device);
    run_retrying(
        runner,
        retry,
        Cmd::new("wipefs").args(["--force", "-a"]).arg(device),
    )?;
    run_retrying(runner, retry, parted().args(["mklabel", "gpt"]))?;
    for partition in planned {
        run_retrying(
            runner,
            retry,
            parted()
                .args(["unit", "B", "mkpart", &partition.name])
                .arg(partition.start.to_string())
                .arg(partition.end.to_string()),
        )?;
    }
    run_retrying(runner, retry, Cmd::new("partprobe").arg(device))?;
    if let Err(err) = files::run(runner, Cmd::new("udevadm").arg("settle")) {
        tracing::warn!(error = %err, "udevadm settle failed");
    }
    Ok(true)
}

/// The partitions of `device`; none when it has no partition table yet.
fn read_partitions(runner: &dyn CommandRunner, device: &Path) -> Result<Vec<Existing>> {
    let cmd = Cmd::new("parted")
        .arg("-m")
        .arg(device)
        .args(["unit", "B", "print"]);
    match runner.run(&cmd) {
        Ok(output) => parse_print(&String::from_utf8_lossy(&output.stdout)),
        Err(crate::cmd::Error::Failed { stdout, stderr, .. })
            if format!("{stdout}\n{stderr}").contains("unrecognised disk label") =>
        {
            Ok(Vec::new())
        }
        Err(source) => Err(Error::command(&cmd, source)),
    }
}

fn run_retrying(runner: &dyn CommandRunner, retry: Retry, cmd: Cmd) -> Result<()> {
    let mut attempt = 1;
    loop {
        match files::run(runner, cmd.clone()) {
            Ok(_) => return Ok(()),
            Err(err) if attempt < retry.tries => {
                tracing::warn!(attempt, error = %err, "partitioning command failed, retrying");
                attempt += 1;
                std::thread::sleep(retry.delay);
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    const GIB: u64 = 1024 * MIB;
    const ID: &str = "0f3e8c1a-4b5d-4e6f-8a9b-0c1d2e3f4a5b";

    fn spans(planned: &[Planned]) -> Vec<(Kind, u64, u64)> {
        planned.iter().map(|p| (p.kind, p.start, p.end)).collect()
    }

    #[test]
    fn names_are_cut_to_32_characters_as_go_cuts_them() {
        assert_eq!(name_prefix(ID), "bosh-partition-0f3e8c1a-4b5d-4e6");
        assert_eq!(name_prefix("agent-1"), "bosh-partition-agent-1");
        assert_eq!(name_prefix("123456789012345678").len(), 33);
    }

    #[test]
    fn swap_is_the_ram_when_the_disk_is_more_than_twice_as_big() {
        let planned = plan(ID, 10 * GIB, GIB, None).unwrap();
        assert_eq!(
            spans(&planned),
            vec![
                (Kind::Swap, MIB, GIB + MIB - 1),
                (Kind::Linux, GIB + MIB, 10 * GIB - MIB - 1),
            ]
        );
        assert_eq!(planned[0].name, "bosh-partition-0f3e8c1a-4b5d-4e6-0");
        assert_eq!(planned[1].name, "bosh-partition-0f3e8c1a-4b5d-4e6-1");
    }

    #[test]
    fn swap_is_half_the_disk_when_the_ram_is_bigger_than_that() {
        let planned = plan(ID, 3 * GIB, 2 * GIB, None).unwrap();
        let half = 3 * GIB / 2;
        assert_eq!(
            spans(&planned),
            vec![
                (Kind::Swap, MIB, half + MIB - 1),
                (Kind::Linux, half + MIB, 3 * GIB - MIB - 1),
            ]
        );
    }

    #[test]
    fn swap_size_wins_and_zero_means_one_data_partition() {
        let planned = plan(ID, 10 * GIB, GIB, Some(256)).unwrap();
        assert_eq!(planned[0].end, 257 * MIB - 1);
        let planned = plan(ID, 10 * GIB, GIB, Some(0)).unwrap();
        assert_eq!(
            spans(&planned),
            vec![(Kind::Linux, MIB, 10 * GIB - MIB - 1)]
        );
        assert_eq!(planned[0].name, "bosh-partition-0f3e8c1a-4b5d-4e6-0");
        // Ends are rounded down to a MiB even on an odd-sized disk.
        let odd = 10 * GIB + 12345;
        assert_eq!(plan(ID, odd, GIB, Some(0)).unwrap()[0].end, 10 * GIB - 1);
    }

    #[test]
    fn a_swap_as_big_as_the_disk_is_refused() {
        let err = plan(ID, GIB, GIB, Some(1024)).unwrap_err();
        assert!(err.to_string().starts_with("env.bosh.swap_size: "), "{err}");
    }

    const BLANK: &str =
        "BYT;\n/dev/vdb:10737418240B:virtblk:512:512:unknown:Virtio Block Device:;\n";

    #[test]
    fn a_blank_disk_gets_a_gpt_and_the_planned_partitions() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["parted", "-m", "/dev/vdb", "unit", "B", "print"],
            Reply::Fail(1, "Error: /dev/vdb: unrecognised disk label".into()),
        );
        for argv in [
            vec!["wipefs", "--force", "-a", "/dev/vdb"],
            vec!["parted", "-s", "/dev/vdb", "mklabel", "gpt"],
            vec![
                "parted",
                "-s",
                "/dev/vdb",
                "unit",
                "B",
                "mkpart",
                "bosh-partition-0f3e8c1a-4b5d-4e6-0",
                "1048576",
                "1074790399",
            ],
            vec![
                "parted",
                "-s",
                "/dev/vdb",
                "unit",
                "B",
                "mkpart",
                "bosh-partition-0f3e8c1a-4b5d-4e6-1",
                "1074790400",
                "10736369663",
            ],
            vec!["partprobe", "/dev/vdb"],
            vec!["udevadm", "settle"],
        ] {
            runner.expect(&argv, Reply::Ok(String::new()));
        }
        let planned = plan(ID, 10 * GIB, GIB, None).unwrap();
        let retry = Retry {
            tries: 2,
            delay: Duration::ZERO,
        };
        assert!(partition(&runner, Path::new("/dev/vdb"), &planned, retry).unwrap());
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
        assert_eq!(runner.recorded().len(), 7);
    }

    #[test]
    fn partitions_named_by_bosh_are_kept_whatever_their_sizes() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["parted", "-m", "/dev/vdb", "unit", "B", "print"],
            Reply::Ok(
                "BYT;\n/dev/vdb:10737418240B:virtblk:512:512:gpt:Virtio Block Device:;\n\
                 1:1048576B:536870911B:535822336B:linux-swap(v1):bosh-partition-0f3e8c1a-4b5d-4e6-0:swap;\n\
                 2:536870912B:10736369663B:10199498752B:ext4:bosh-partition-0f3e8c1a-4b5d-4e6-1:;\n"
                    .to_owned(),
            ),
        );
        let planned = plan(ID, 10 * GIB, GIB, None).unwrap();
        assert!(!partition(&runner, Path::new("/dev/vdb"), &planned, Retry::default()).unwrap());
        assert_eq!(runner.recorded().len(), 1, "only the table was read");
    }

    #[test]
    fn a_foreign_table_is_wiped_and_a_failing_mkpart_is_retried() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["parted", "-m", "/dev/vdb", "unit", "B", "print"],
            Reply::Ok(format!(
                "{BLANK}1:1048576B:10736369663B:10735321088B:ext4:data:;\n"
            )),
        );
        runner.expect(
            &["wipefs", "--force", "-a", "/dev/vdb"],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["parted", "-s", "/dev/vdb", "mklabel", "gpt"],
            Reply::Fail(1, "Error: Partition(s) on /dev/vdb are being used.".into()),
        );
        runner.expect(
            &["parted", "-s", "/dev/vdb", "mklabel", "gpt"],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &[
                "parted",
                "-s",
                "/dev/vdb",
                "unit",
                "B",
                "mkpart",
                "bosh-partition-agent-1-0",
                "1048576",
                "10736369663",
            ],
            Reply::Ok(String::new()),
        );
        runner.expect(&["partprobe", "/dev/vdb"], Reply::Ok(String::new()));
        runner.expect(&["udevadm", "settle"], Reply::Fail(1, "timeout".into()));
        let planned = plan("agent-1", 10 * GIB, GIB, Some(0)).unwrap();
        let retry = Retry {
            tries: 2,
            delay: Duration::ZERO,
        };
        assert!(partition(&runner, Path::new("/dev/vdb"), &planned, retry).unwrap());
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
    }

    #[test]
    fn other_parted_failures_are_errors() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["parted", "-m", "/dev/vdb", "unit", "B", "print"],
            Reply::Fail(1, "Error: Could not stat device /dev/vdb".into()),
        );
        let planned = plan("agent-1", 10 * GIB, GIB, None).unwrap();
        let err =
            partition(&runner, Path::new("/dev/vdb"), &planned, Retry::default()).unwrap_err();
        assert_eq!(err.to_string(), "running parted -m /dev/vdb unit B print");
    }
}
