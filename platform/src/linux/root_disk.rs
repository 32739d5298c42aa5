//! The root disk (`platform/linux_platform.go` `findRootDevicePathAndNumber`,
//! `createEphemeralPartitionsOnRootDevice`, `SetupRootDisk`; `platform/disk/root_device_partitioner.go`;
//! §6.5 of the reference).
//!
//! **Root partition**: the source of the mount on `/` (`/proc/self/mountinfo`), made canonical
//! with `readlink -f`, must be `/dev/<letters><one digit>` (`/dev/vda1`) or
//! `/dev/<letters><n>n<m>p<k>` (NVMe); anything else is an error naming it.
//!
//! **Carve** (no ephemeral disk and `CreatePartitionIfNoEphemeralDisk`): the table is read with
//! `parted -m <d> unit B print`; the root partition is the first, or the second when the first is
//! an EFI one (`fat16`). The space after it must be at least 1 GiB. Swap and data are sized from
//! that space as for an ephemeral disk ([`partition::swap_bytes`]). When the partitions after the
//! root one already have the planned sizes (within 20 MiB) nothing is done (a restart); otherwise
//! each is made with `parted -s <d> unit B mkpart primary <start> <end>`, starting at the next
//! 1 MiB boundary after the last partition and ending at most at the disk's last byte, then
//! `udevadm settle` (ours: the new partitions' nodes are used at once; its failure is logged).
//! [`plan_carve`] is pure; [`carve`] runs it.
//!
//! **Growth** ([`grow_root`]): skipped with `SkipDiskSetup`, when there is no ephemeral disk and
//! the root disk was carved (growing would eat the carved space), or when the stemcell has no
//! `growpart`. Otherwise `growpart <d> <n>` (a `NOCHANGE` failure is fine), then `resize2fs -f`
//! (ext4) or `xfs_growfs -d` (xfs) on the root partition (libblkid tells which).

use std::path::{Path, PathBuf};

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::partition::{self, Kind, MIB};
use crate::linux::probe::Prober;
use crate::linux::{device_path, files};

/// The least space after the root partition a carve needs.
pub const MIN_CARVE_BYTES: u64 = 1024 * MIB;

/// How far existing partitions may be from the planned sizes and still count as planned.
pub const MATCH_DELTA_BYTES: u64 = 20 * MIB;

/// Where the stemcell may have `growpart`.
const GROWPART_DIRS: [&str; 4] = ["usr/bin", "usr/sbin", "bin", "sbin"];

/// The root partition: its disk and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPartition {
    /// The disk (`/dev/vda`).
    pub device: PathBuf,
    /// The partition's number (`1`).
    pub number: u32,
}

/// The disk and number of a canonical root partition path.
pub fn parse_root_partition(path: &str) -> Result<RootPartition> {
    let invalid = || Error::Host(format!("Root partition has an invalid name {path}"));
    let name = path.strip_prefix("/dev/").ok_or_else(invalid)?;
    let letters = name.chars().take_while(char::is_ascii_lowercase).count();
    let rest = &name[letters..];
    if letters == 0 {
        return Err(invalid());
    }
    // NVMe: /dev/nvme0n1p2.
    if let Some((disk_rest, number)) = rest.rsplit_once('p') {
        let is_nvme = disk_rest
            .split_once('n')
            .is_some_and(|(controller, namespace)| {
                !controller.is_empty()
                    && controller.chars().all(|c| c.is_ascii_digit())
                    && !namespace.is_empty()
                    && namespace.chars().all(|c| c.is_ascii_digit())
            });
        if is_nvme && !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) {
            return Ok(RootPartition {
                device: PathBuf::from(format!("/dev/{}{disk_rest}", &name[..letters])),
                number: number.parse().map_err(|_| invalid())?,
            });
        }
    }
    // SCSI and virtio: one digit after the letters.
    if rest.len() == 1 && rest.chars().all(|c| c.is_ascii_digit()) {
        return Ok(RootPartition {
            device: PathBuf::from(format!("/dev/{}", &name[..letters])),
            number: rest.parse().map_err(|_| invalid())?,
        });
    }
    Err(invalid())
}

/// The root partition of the host.
pub fn find_root_partition(runner: &dyn CommandRunner, host: &HostPaths) -> Result<RootPartition> {
    let mounts = crate::mount::read_mounts(host)?;
    let root = crate::mount::mounted_on(&mounts, Path::new("/"))
        .ok_or_else(|| Error::Host("Getting root partition device: nothing on /".to_owned()))?;
    let canonical = files::run_stdout(runner, Cmd::new("readlink").arg("-f").arg(&root.source))?;
    parse_root_partition(canonical.trim_end_matches('\n'))
}

/// One partition of `parted -m <d> unit B print`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePartition {
    /// Its number.
    pub number: u32,
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
    /// Size in bytes.
    pub size: u64,
    /// The filesystem parted sees (`ext4`, `fat16`, `linux-swap(v1)`, empty).
    pub fs: String,
}

/// A disk's size and partitions, from `parted -m <d> unit B print` output (`prep` lines skipped).
pub fn parse_table(stdout: &str) -> Result<(u64, Vec<TablePartition>)> {
    let bad = |line: &str| Error::Host(format!("unexpected parted line '{line}'"));
    let bytes = |field: &str| field.trim_end_matches('B').parse::<u64>();
    let mut lines = stdout.lines().map(str::trim).filter(|l| !l.is_empty());
    let _ = lines.next(); // BYT;
    let disk_line = lines
        .next()
        .ok_or_else(|| Error::Host(format!("no disk line in parted output '{stdout}'")))?;
    let disk_bytes = disk_line
        .split(':')
        .nth(1)
        .and_then(|f| bytes(f).ok())
        .ok_or_else(|| bad(disk_line))?;
    let mut partitions = Vec::new();
    for line in lines {
        if line.contains("prep") {
            continue;
        }
        let fields: Vec<&str> = line.trim_end_matches(';').split(':').collect();
        let parsed = (|| {
            Some(TablePartition {
                number: fields.first()?.parse().ok()?,
                start: bytes(fields.get(1)?).ok()?,
                end: bytes(fields.get(2)?).ok()?,
                size: bytes(fields.get(3)?).ok()?,
                fs: (*fields.get(4)?).to_owned(),
            })
        })();
        partitions.push(parsed.ok_or_else(|| bad(line))?);
    }
    Ok((disk_bytes, partitions))
}

/// A partition to make on the root disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarvedPartition {
    /// What it is for.
    pub kind: Kind,
    /// Its number.
    pub number: u32,
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
}

/// What a carve does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carve {
    /// The partitions (swap, if any, then data), numbered after the root partition.
    pub partitions: Vec<CarvedPartition>,
    /// Whether they exist already (nothing to make).
    pub exists: bool,
}

/// The carve of a disk of `disk_bytes` with `table` whose root partition is `root_number`, on a
/// VM with `ram_bytes` of memory.
pub fn plan_carve(
    disk_bytes: u64,
    table: &[TablePartition],
    root_number: u32,
    ram_bytes: u64,
    swap_size_mib: Option<u64>,
) -> Result<Carve> {
    let first = table
        .first()
        .ok_or_else(|| Error::Host("Missing first partition on the root disk".to_owned()))?;
    let root_index = usize::from(first.fs == "fat16");
    let root = table
        .get(root_index)
        .ok_or_else(|| Error::Host("Missing root partition after the EFI one".to_owned()))?;
    let remaining = disk_bytes.saturating_sub(root.end).saturating_sub(1);
    if remaining < MIN_CARVE_BYTES {
        return Err(Error::Host(format!(
            "Insufficient remaining disk space ({remaining}B) for ephemeral partition (min: {MIN_CARVE_BYTES}B)"
        )));
    }
    let swap = partition::swap_bytes(remaining, ram_bytes, swap_size_mib);
    if swap >= remaining {
        return Err(Error::Settings(format!(
            "env.bosh.swap_size: {swap} bytes of swap leave no data partition in the {remaining} bytes after the root partition"
        )));
    }
    let mut sizes = Vec::new();
    if swap > 0 {
        sizes.push((Kind::Swap, swap));
    }
    sizes.push((Kind::Linux, remaining - swap));
    let existing = &table[root_index + 1..];
    let exists = existing.len() == sizes.len()
        && existing
            .iter()
            .zip(&sizes)
            .all(|(e, (_, size))| e.size.abs_diff(*size) <= MATCH_DELTA_BYTES);
    let last_end = table.last().map_or(root.end, |p| p.end);
    let mut start = round_up(last_end + 1);
    let mut partitions = Vec::new();
    for (offset, (kind, size)) in sizes.into_iter().enumerate() {
        let end = (start + size - 1).min(disk_bytes - 1);
        partitions.push(CarvedPartition {
            kind,
            number: root_number + 1 + u32::try_from(offset).unwrap_or(0),
            start,
            end,
        });
        start = round_up(end + 1);
    }
    Ok(Carve { partitions, exists })
}

fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(MIB) * MIB
}

/// Carves swap and data partitions after the root partition; answers their paths (swap, data).
pub fn carve(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    ram_bytes: u64,
    swap_size_mib: Option<u64>,
) -> Result<(Option<PathBuf>, PathBuf)> {
    let root = find_root_partition(runner, host)?;
    let print = Cmd::new("parted")
        .arg("-m")
        .arg(&root.device)
        .args(["unit", "B", "print"]);
    let (disk_bytes, table) = parse_table(&files::run_stdout(runner, print)?)?;
    let carve = plan_carve(disk_bytes, &table, root.number, ram_bytes, swap_size_mib)?;
    if carve.exists {
        tracing::info!(device = %root.device.display(), "the root disk is already carved");
    } else {
        for planned in &carve.partitions {
            files::run(
                runner,
                Cmd::new("parted")
                    .arg("-s")
                    .arg(&root.device)
                    .args(["unit", "B", "mkpart", "primary"])
                    .arg(planned.start.to_string())
                    .arg(planned.end.to_string()),
            )?;
        }
        if let Err(err) = files::run(runner, Cmd::new("udevadm").arg("settle")) {
            tracing::warn!(error = %err, "udevadm settle failed");
        }
    }
    let path = |p: &CarvedPartition| device_path::partition_path(&root.device, p.number);
    let swap = carve
        .partitions
        .iter()
        .find(|p| p.kind == Kind::Swap)
        .map(path);
    let data = carve
        .partitions
        .iter()
        .find(|p| p.kind == Kind::Linux)
        .map(path)
        .ok_or_else(|| Error::Host("no data partition was planned".to_owned()))?;
    Ok((swap, data))
}

/// When [`grow_root`] runs.
#[derive(Debug, Clone, Copy)]
pub struct GrowOptions {
    /// `SkipDiskSetup`.
    pub skip_disk_setup: bool,
    /// `CreatePartitionIfNoEphemeralDisk`.
    pub create_partition_if_no_ephemeral_disk: bool,
    /// Whether the ephemeral disk was found.
    pub has_ephemeral_disk: bool,
}

/// Grows the root partition and its filesystem to the end of the disk.
pub fn grow_root(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    prober: &dyn Prober,
    options: GrowOptions,
) -> Result<()> {
    if options.skip_disk_setup {
        return Ok(());
    }
    if !options.has_ephemeral_disk && options.create_partition_if_no_ephemeral_disk {
        tracing::info!("no ephemeral disk, the root filesystem is not grown");
        return Ok(());
    }
    if !GROWPART_DIRS
        .iter()
        .any(|dir| host.top(&format!("{dir}/growpart")).is_file())
    {
        tracing::info!("growpart is not installed, the root filesystem cannot be grown");
        return Ok(());
    }
    let root = find_root_partition(runner, host)?;
    let growpart = Cmd::new("growpart")
        .arg(&root.device)
        .arg(root.number.to_string());
    match runner.run(&growpart) {
        Ok(_) => {}
        Err(crate::cmd::Error::Failed { stdout, stderr, .. })
            if stdout.contains("NOCHANGE") || stderr.contains("NOCHANGE") => {}
        Err(source) => return Err(Error::command(&growpart, source)),
    }
    let partition = device_path::partition_path(&root.device, root.number);
    let resize = match prober.probe(&partition)?.fs_type.as_deref() {
        Some("ext4") => Cmd::new("resize2fs").arg("-f").arg(&partition),
        Some("xfs") => Cmd::new("xfs_growfs").arg("-d").arg(&partition),
        _ => {
            return Err(Error::Host(
                "Cannot get filesystem type for root file system".to_owned(),
            ));
        }
    };
    files::run(runner, resize).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    const GIB: u64 = 1024 * MIB;

    /// [`grow_root`] with `blkid` scripted through `runner`.
    fn grow(runner: &RecordingRunner, host: &HostPaths, options: GrowOptions) -> Result<()> {
        grow_root(
            runner,
            host,
            &crate::linux::probe::CliProber(runner),
            options,
        )
    }

    fn part(number: u32, start: u64, end: u64, fs: &str) -> TablePartition {
        TablePartition {
            number,
            start,
            end,
            size: end - start + 1,
            fs: fs.to_owned(),
        }
    }

    #[test]
    fn root_partitions_are_parsed_as_go_parses_them() {
        let parsed = |p: &str| parse_root_partition(p).map(|r| (r.device, r.number));
        assert_eq!(parsed("/dev/vda1").unwrap(), ("/dev/vda".into(), 1));
        assert_eq!(parsed("/dev/sda3").unwrap(), ("/dev/sda".into(), 3));
        assert_eq!(
            parsed("/dev/nvme0n1p2").unwrap(),
            ("/dev/nvme0n1".into(), 2)
        );
        for bad in [
            "/dev/vda12",
            "/dev/mapper/root",
            "/dev/root",
            "vda1",
            "/dev/1",
        ] {
            assert_eq!(
                parse_root_partition(bad).unwrap_err().to_string(),
                format!("Root partition has an invalid name {bad}")
            );
        }
    }

    const TABLE: &str = "BYT;\n/dev/vda:8589934592B:virtblk:512:512:msdos:Virtio Block Device:;\n\
                         1:1048576B:3221225471B:3220176896B:ext4::boot;\n";

    #[test]
    fn parted_tables_are_parsed() {
        let (disk, table) = parse_table(TABLE).unwrap();
        assert_eq!(disk, 8 * GIB);
        assert_eq!(table, vec![part(1, MIB, 3 * GIB - 1, "ext4")]);
        assert!(parse_table("BYT;\n").is_err());
        assert!(parse_table("BYT;\n/dev/vda:8B:x;\nx:y;\n").is_err());
    }

    #[test]
    fn the_carve_fills_the_space_after_the_root_partition_aligned_to_a_mib() {
        let table = vec![part(1, MIB, 3 * GIB - 1, "ext4")];
        let carve = plan_carve(8 * GIB, &table, 1, GIB, None).unwrap();
        // 5 GiB remain: swap = RAM (1 GiB), data = the rest, cut at the disk's end.
        assert_eq!(
            carve,
            Carve {
                partitions: vec![
                    CarvedPartition {
                        kind: Kind::Swap,
                        number: 2,
                        start: 3 * GIB,
                        end: 4 * GIB - 1
                    },
                    CarvedPartition {
                        kind: Kind::Linux,
                        number: 3,
                        start: 4 * GIB,
                        end: 8 * GIB - 1
                    },
                ],
                exists: false,
            }
        );
        // An unaligned root end: the swap starts at the next MiB.
        let table = vec![part(1, MIB, 3 * GIB + 4095, "ext4")];
        let carve = plan_carve(8 * GIB, &table, 1, GIB, Some(0)).unwrap();
        assert_eq!(
            carve.partitions,
            vec![CarvedPartition {
                kind: Kind::Linux,
                number: 2,
                start: 3 * GIB + MIB,
                end: 8 * GIB - 1
            }]
        );
    }

    #[test]
    fn an_efi_partition_is_skipped_and_carved_partitions_are_recognised() {
        let efi = part(1, MIB, 128 * MIB - 1, "fat16");
        let root = part(2, 128 * MIB, 3 * GIB - 1, "ext4");
        let carve = plan_carve(8 * GIB, &[efi.clone(), root.clone()], 2, GIB, None).unwrap();
        assert_eq!(
            carve
                .partitions
                .iter()
                .map(|p| (p.number, p.start, p.end))
                .collect::<Vec<_>>(),
            vec![(3, 3 * GIB, 4 * GIB - 1), (4, 4 * GIB, 8 * GIB - 1)]
        );
        assert!(!carve.exists);
        // After the carve (a restart): the same plan, found in place within 20 MiB.
        let swap = part(3, 3 * GIB, 4 * GIB - 1, "linux-swap(v1)");
        let data = part(4, 4 * GIB, 8 * GIB - 10 * MIB, "ext4");
        let again = plan_carve(8 * GIB, &[efi, root, swap, data], 2, GIB, None).unwrap();
        assert!(again.exists);
        assert_eq!(again.partitions.len(), 2);
    }

    #[test]
    fn less_than_a_gib_after_the_root_partition_is_an_error() {
        let table = vec![part(1, MIB, 3 * GIB - 1, "ext4")];
        let err = plan_carve(4 * GIB - MIB, &table, 1, GIB, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Insufficient remaining disk space (1072693248B) for ephemeral partition (min: 1073741824B)"
        );
        let err = plan_carve(3 * GIB, &table, 1, GIB, None).unwrap_err();
        assert!(err.to_string().starts_with("Insufficient"), "{err}");
        assert!(plan_carve(8 * GIB, &[], 1, GIB, None).is_err());
        let err = plan_carve(8 * GIB, &table, 1, GIB, Some(5 * 1024)).unwrap_err();
        assert!(err.to_string().starts_with("env.bosh.swap_size: "), "{err}");
    }

    fn host_with_root_on(source: &str) -> (tempfile::TempDir, HostPaths) {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("proc/self/mountinfo");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            path,
            format!("22 1 252:1 / / rw,relatime - ext4 {source} rw\n"),
        )
        .unwrap();
        let host = HostPaths::with_root(root.path());
        (root, host)
    }

    #[test]
    fn a_carve_runs_parted_per_partition_and_a_restart_only_reads() {
        let (_root, host) = host_with_root_on("/dev/vda1");
        let runner = RecordingRunner::new();
        runner.expect(
            &["readlink", "-f", "/dev/vda1"],
            Reply::Ok("/dev/vda1\n".into()),
        );
        runner.expect(
            &["parted", "-m", "/dev/vda", "unit", "B", "print"],
            Reply::Ok(TABLE.into()),
        );
        for (start, end) in [("3221225472", "4294967295"), ("4294967296", "8589934591")] {
            runner.expect(
                &[
                    "parted", "-s", "/dev/vda", "unit", "B", "mkpart", "primary", start, end,
                ],
                Reply::Ok(String::new()),
            );
        }
        runner.expect(&["udevadm", "settle"], Reply::Ok(String::new()));
        let (swap, data) = carve(&runner, &host, GIB, None).unwrap();
        assert_eq!(swap, Some(PathBuf::from("/dev/vda2")));
        assert_eq!(data, PathBuf::from("/dev/vda3"));
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
        assert_eq!(runner.recorded().len(), 5);

        let runner = RecordingRunner::new();
        runner.expect(
            &["readlink", "-f", "/dev/vda1"],
            Reply::Ok("/dev/vda1\n".into()),
        );
        runner.expect(
            &["parted", "-m", "/dev/vda", "unit", "B", "print"],
            Reply::Ok(format!(
                "{TABLE}2:3221225472B:4294967295B:1073741824B:linux-swap(v1)::;\n\
                 3:4294967296B:8589934591B:4294967296B:ext4::;\n"
            )),
        );
        assert_eq!(
            carve(&runner, &host, GIB, None).unwrap().1,
            PathBuf::from("/dev/vda3")
        );
        assert_eq!(runner.recorded().len(), 2, "only reads");
    }

    fn with_growpart(root: &tempfile::TempDir) {
        let bin = root.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("growpart"), "#!/bin/sh\n").unwrap();
    }

    const WITH_DISK: GrowOptions = GrowOptions {
        skip_disk_setup: false,
        create_partition_if_no_ephemeral_disk: true,
        has_ephemeral_disk: true,
    };

    #[test]
    fn the_root_filesystem_grows_and_nochange_is_fine() {
        let (root, host) = host_with_root_on("/dev/disk/by-uuid/x");
        with_growpart(&root);
        let runner = RecordingRunner::new();
        runner.expect(
            &["readlink", "-f", "/dev/disk/by-uuid/x"],
            Reply::Ok("/dev/vda1\n".into()),
        );
        runner.expect(
            &["growpart", "/dev/vda", "1"],
            Reply::Fail(
                1,
                "NOCHANGE: partition 1 is size 6289375. it cannot be grown\n".into(),
            ),
        );
        runner.expect(
            &["blkid", "-p", "-o", "export", "/dev/vda1"],
            Reply::Ok("/dev/vda1: UUID=\"u\" TYPE=\"ext4\" USAGE=\"filesystem\"\n".into()),
        );
        runner.expect(&["resize2fs", "-f", "/dev/vda1"], Reply::Ok(String::new()));
        grow(&runner, &host, WITH_DISK).unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());

        let runner = RecordingRunner::new();
        runner.expect(
            &["readlink", "-f", "/dev/disk/by-uuid/x"],
            Reply::Ok("/dev/vda1\n".into()),
        );
        runner.expect(
            &["growpart", "/dev/vda", "1"],
            Reply::Fail(
                2,
                "FAILED: disk=/dev/vda partition=1: failed to resize".into(),
            ),
        );
        let err = grow(&runner, &host, WITH_DISK).unwrap_err();
        assert_eq!(err.to_string(), "running growpart /dev/vda 1");
    }

    #[test]
    fn growth_is_skipped_when_the_reference_skips_it() {
        let (root, host) = host_with_root_on("/dev/vda1");
        let runner = RecordingRunner::new();
        grow(&runner, &host, WITH_DISK).unwrap();
        assert!(runner.recorded().is_empty(), "no growpart, nothing run");
        with_growpart(&root);
        grow(
            &runner,
            &host,
            GrowOptions {
                skip_disk_setup: true,
                ..WITH_DISK
            },
        )
        .unwrap();
        grow(
            &runner,
            &host,
            GrowOptions {
                has_ephemeral_disk: false,
                ..WITH_DISK
            },
        )
        .unwrap();
        assert!(runner.recorded().is_empty());
    }
}
