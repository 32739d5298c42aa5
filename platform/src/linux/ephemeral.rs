//! The ephemeral disk (`SetupEphemeralDiskWithPath` in `platform/linux_platform.go`,
//! `platform/disk/linux_formatter.go`, `linux_mounter.go`): `<base>/data` (0750) is created, the
//! disk is found ([`device_path`](crate::linux::device_path)), partitioned
//! ([`partition`](crate::linux::partition)), the swap partition made swap (`mkswap`, unless
//! libblkid already says `swap`) and enabled (`swapon`, unless `/proc/swaps` lists it), the data
//! partition made ext4 (`mke2fs -t ext4 -j`, with `-E lazy_itable_init=1` when the kernel has the
//! feature, unless libblkid says ext4 or xfs; retried once when "apparently in use") and mounted
//! on `<base>/data` (unless it is there already).
//!
//! The disk size is `/sys/class/block/<dev>/size` × 512; the RAM is `MemTotal` of `/proc/meminfo`.
//! No disk (nothing in the settings, or nothing found) is Go's error when
//! `CreatePartitionIfNoEphemeralDisk` is off; when it is on, swap and data partitions are carved
//! from the root disk after the root partition ([`root_disk::carve`]) and set up the same way.

use std::path::Path;

use settings::Dirs;
use settings::agent_config::LinuxOptions;
use settings::model::DiskSettings;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::device_path::{self, Resolver};
use crate::linux::mounter::Mounter;
use crate::linux::partition::{self, Kind, Retry};
use crate::linux::probe::Prober;
use crate::linux::{files, root_disk};

/// What the ephemeral disk step needs besides the runner and the host.
#[derive(Debug, Clone)]
pub struct EphemeralOptions<'a> {
    /// The base dir.
    pub dirs: &'a Dirs,
    /// `Platform.Linux`.
    pub linux: &'a LinuxOptions,
    /// How the disk is found.
    pub resolver: &'a Resolver,
    /// How partitioning commands are retried.
    pub retry: Retry,
    /// What reads the partitions' signatures.
    pub prober: &'a dyn Prober,
}

/// Sets up the ephemeral disk `disk` for the agent `agent_id`; answers whether the disk was found
/// (`false` when the step was skipped or the root disk carved).
pub fn setup_ephemeral_disk(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    options: &EphemeralOptions<'_>,
    disk: &DiskSettings,
    agent_id: &str,
    swap_size_mib: Option<u64>,
) -> Result<bool> {
    let data_dir = options.dirs.data_dir();
    files::ensure_dir(&data_dir, 0o750)?;
    if options.linux.skip_disk_setup {
        return Ok(false);
    }
    let device = match options.resolver.resolve(runner, host, disk) {
        Ok(device) => device,
        Err(err) => {
            tracing::warn!(error = %err, "no ephemeral disk found");
            if !options.linux.create_partition_if_no_ephemeral_disk {
                return Err(Error::Host(
                    "No ephemeral disk found, cannot use root partition as ephemeral disk"
                        .to_owned(),
                ));
            }
            let (swap, data) = root_disk::carve(runner, host, ram_size(host)?, swap_size_mib)?;
            format_and_mount(
                runner,
                host,
                options.prober,
                swap.as_deref(),
                &data,
                &data_dir,
            )?;
            return Ok(false);
        }
    };
    let disk_bytes = device_size(host, &device)?;
    let ram_bytes = ram_size(host)?;
    let planned = partition::plan(agent_id, disk_bytes, ram_bytes, swap_size_mib)?;
    partition::partition(runner, &device, &planned, options.retry)?;
    let mut swap_partition = None;
    let mut data_partition = None;
    for (index, planned) in planned.iter().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let path = device_path::partition_path(&device, number);
        match planned.kind {
            Kind::Swap => swap_partition = Some(path),
            Kind::Linux => data_partition = Some(path),
        }
    }
    let Some(data_partition) = data_partition else {
        return Err(Error::Host("no data partition was planned".to_owned()));
    };
    format_and_mount(
        runner,
        host,
        options.prober,
        swap_partition.as_deref(),
        &data_partition,
        &data_dir,
    )?;
    Ok(true)
}

/// Makes `swap` swap and enables it, makes `data` ext4 and mounts it on `data_dir`, each unless
/// already done.
fn format_and_mount(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    prober: &dyn Prober,
    swap: Option<&Path>,
    data_partition: &Path,
    data_dir: &Path,
) -> Result<()> {
    if let Some(path) = swap {
        if prober.probe(path)?.fs_type.as_deref() != Some("swap") {
            files::run(runner, Cmd::new("mkswap").arg(path))?;
        }
        if !is_swap_on(host, path)? {
            files::run(runner, Cmd::new("swapon").arg(path))?;
        }
    }
    if !matches!(
        prober.probe(data_partition)?.fs_type.as_deref(),
        Some("ext4" | "xfs")
    ) {
        make_ext4(runner, host, data_partition)?;
    }
    Mounter { runner, host }.mount_device(data_partition, data_dir)?;
    Ok(())
}

/// The size of `device` in bytes, from `/sys/class/block/<name>/size` (512-byte sectors).
pub fn device_size(host: &HostPaths, device: &Path) -> Result<u64> {
    let name = device
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = host.sys(&format!("class/block/{name}/size"));
    let text =
        std::fs::read_to_string(&path).map_err(|source| Error::io("reading", &path, source))?;
    text.trim()
        .parse::<u64>()
        .map(|sectors| sectors * 512)
        .map_err(|_| {
            Error::Host(format!(
                "{} is not a sector count: '{}'",
                path.display(),
                text.trim()
            ))
        })
}

/// The RAM in bytes, from `MemTotal` of `/proc/meminfo`.
pub fn ram_size(host: &HostPaths) -> Result<u64> {
    let path = host.proc("meminfo");
    let text =
        std::fs::read_to_string(&path).map_err(|source| Error::io("reading", &path, source))?;
    text.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| Error::Host(format!("no MemTotal in {}", path.display())))
}

/// Whether `/proc/swaps` lists `partition`.
fn is_swap_on(host: &HostPaths, partition: &Path) -> Result<bool> {
    let path = host.proc("swaps");
    let text =
        std::fs::read_to_string(&path).map_err(|source| Error::io("reading", &path, source))?;
    let wanted = partition.to_string_lossy();
    Ok(text
        .lines()
        .skip(1)
        .any(|line| line.split_whitespace().next() == Some(&*wanted)))
}

fn make_ext4(runner: &dyn CommandRunner, host: &HostPaths, partition: &Path) -> Result<()> {
    let mut cmd = Cmd::new("mke2fs").args(["-t", "ext4", "-j"]);
    if host.sys("fs/ext4/features/lazy_itable_init").exists() {
        cmd = cmd.args(["-E", "lazy_itable_init=1"]);
    }
    let cmd = cmd.arg(partition);
    match files::run(runner, cmd.clone()) {
        Err(Error::Command { source, .. })
            if source
                .to_string()
                .contains("apparently in use by the system") =>
        {
            files::run(runner, cmd).map(drop)
        }
        other => other.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    const GIB: u64 = 1024 * 1024 * 1024;
    const SERIAL: &str = "eph-0123456789abcdef";
    const ID: &str = "agent-1";

    struct Vm {
        root: tempfile::TempDir,
        host: HostPaths,
        dirs: Dirs,
        linux: LinuxOptions,
        resolver: Resolver,
        vdb: String,
    }

    fn vm(mountinfo: &str, swaps: &str) -> Vm {
        let root = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = root.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("dev/vdb", "");
        std::fs::create_dir_all(root.path().join("dev/disk/by-id")).unwrap();
        std::os::unix::fs::symlink(
            "../../vdb",
            root.path().join(format!("dev/disk/by-id/virtio-{SERIAL}")),
        )
        .unwrap();
        write("sys/class/block/vdb/size", &format!("{}\n", 10 * GIB / 512));
        write(
            "proc/meminfo",
            "MemTotal:        1048576 kB\nMemFree:          524288 kB\n",
        );
        write("proc/swaps", swaps);
        write("proc/self/mountinfo", mountinfo);
        let vdb = std::fs::canonicalize(root.path().join("dev/vdb"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let host = HostPaths::with_root(root.path());
        let dirs = Dirs::new(root.path().join("var/vcap"));
        let linux = LinuxOptions {
            device_path_resolution_type: "virtio".into(),
            partitioner_type: "parted".into(),
            create_partition_if_no_ephemeral_disk: true,
            ..LinuxOptions::default()
        };
        let mut resolver = Resolver::new("virtio");
        resolver.id_wait = std::time::Duration::ZERO;
        resolver.mapped_wait = std::time::Duration::ZERO;
        Vm {
            root,
            host,
            dirs,
            linux,
            resolver,
            vdb,
        }
    }

    impl Vm {
        fn setup(&self, runner: &RecordingRunner) -> Result<bool> {
            let options = EphemeralOptions {
                dirs: &self.dirs,
                linux: &self.linux,
                resolver: &self.resolver,
                retry: Retry {
                    tries: 1,
                    delay: std::time::Duration::ZERO,
                },
                prober: &crate::linux::probe::CliProber(runner),
            };
            let disk = DiskSettings {
                device_id: SERIAL.into(),
                path: "/dev/vdb".into(),
                ..DiskSettings::default()
            };
            setup_ephemeral_disk(runner, &self.host, &options, &disk, ID, None)
        }

        fn data(&self) -> String {
            self.dirs.data_dir().to_string_lossy().into_owned()
        }
    }

    const SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

    #[test]
    fn a_blank_disk_is_partitioned_formatted_and_mounted() {
        let vm = vm("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n", SWAPS_HEADER);
        let (vdb, vdb1, vdb2) = (
            vm.vdb.clone(),
            format!("{}1", vm.vdb),
            format!("{}2", vm.vdb),
        );
        let runner = RecordingRunner::new();
        let expected: Vec<(Vec<&str>, Reply)> = vec![
            (
                vec!["parted", "-m", &vdb, "unit", "B", "print"],
                Reply::Fail(1, "Error: unrecognised disk label".into()),
            ),
            (
                vec!["wipefs", "--force", "-a", &vdb],
                Reply::Ok(String::new()),
            ),
            (
                vec!["parted", "-s", &vdb, "mklabel", "gpt"],
                Reply::Ok(String::new()),
            ),
            (
                vec![
                    "parted",
                    "-s",
                    &vdb,
                    "unit",
                    "B",
                    "mkpart",
                    "bosh-partition-agent-1-0",
                    "1048576",
                    "1074790399",
                ],
                Reply::Ok(String::new()),
            ),
            (
                vec![
                    "parted",
                    "-s",
                    &vdb,
                    "unit",
                    "B",
                    "mkpart",
                    "bosh-partition-agent-1-1",
                    "1074790400",
                    "10736369663",
                ],
                Reply::Ok(String::new()),
            ),
            (vec!["partprobe", &vdb], Reply::Ok(String::new())),
            (vec!["udevadm", "settle"], Reply::Ok(String::new())),
            (
                vec!["blkid", "-p", "-o", "export", &vdb1],
                Reply::Fail(2, String::new()),
            ),
            (vec!["mkswap", &vdb1], Reply::Ok(String::new())),
            (vec!["swapon", &vdb1], Reply::Ok(String::new())),
            (
                vec!["blkid", "-p", "-o", "export", &vdb2],
                Reply::Fail(2, String::new()),
            ),
            (
                vec!["mke2fs", "-t", "ext4", "-j", &vdb2],
                Reply::Ok(String::new()),
            ),
        ];
        let data = vm.data();
        let mount = vec!["mount", vdb2.as_str(), data.as_str()];
        for (argv, reply) in &expected {
            runner.expect(argv, reply.clone());
        }
        runner.expect(&mount, Reply::Ok(String::new()));
        vm.setup(&runner).unwrap();
        let mut all: Vec<Vec<&str>> = expected.iter().map(|(argv, _)| argv.clone()).collect();
        all.push(mount);
        assert_eq!(runner.recorded(), all);
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(
            std::fs::metadata(vm.dirs.data_dir()).unwrap().mode() & 0o7777,
            0o750
        );
    }

    #[test]
    fn a_set_up_disk_is_only_read_on_restart() {
        let root_line = "22 1 252:1 / / rw - ext4 /dev/vda1 rw\n";
        let vm = vm(root_line, SWAPS_HEADER);
        let (vdb, vdb1, vdb2) = (
            vm.vdb.clone(),
            format!("{}1", vm.vdb),
            format!("{}2", vm.vdb),
        );
        std::fs::write(
            vm.root.path().join("proc/self/mountinfo"),
            format!(
                "{root_line}40 22 252:18 / {} rw,relatime - ext4 {vdb2} rw\n",
                vm.data()
            ),
        )
        .unwrap();
        std::fs::write(
            vm.root.path().join("proc/swaps"),
            format!("{SWAPS_HEADER}{vdb1}  partition\t1048572\t\t0\t\t-2\n"),
        )
        .unwrap();
        let runner = RecordingRunner::new();
        runner.expect(
            &["parted", "-m", &vdb, "unit", "B", "print"],
            Reply::Ok(format!(
                "BYT;\n{vdb}:10737418240B:virtblk:512:512:gpt:Virtio Block Device:;\n\
                 1:1048576B:1074790399B:1073741824B:linux-swap(v1):bosh-partition-agent-1-0:swap;\n\
                 2:1074790400B:10736369663B:9661579264B:ext4:bosh-partition-agent-1-1:;\n"
            )),
        );
        runner.expect(
            &["blkid", "-p", "-o", "export", &vdb1],
            Reply::Ok(format!(
                "{vdb1}: UUID=\"x\" VERSION=\"1\" TYPE=\"swap\" USAGE=\"other\"\n"
            )),
        );
        runner.expect(
            &["blkid", "-p", "-o", "export", &vdb2],
            Reply::Ok(format!(
                "{vdb2}: UUID=\"y\" VERSION=\"1.0\" TYPE=\"ext4\" USAGE=\"filesystem\"\n"
            )),
        );
        vm.setup(&runner).unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
        assert_eq!(
            runner.recorded().len(),
            3,
            "only reads: parted print and two blkid"
        );
    }

    #[test]
    fn no_disk_is_an_error_naming_why() {
        let mut vm = vm("", SWAPS_HEADER);
        std::fs::remove_file(vm.root.path().join("dev/vdb")).unwrap();
        vm.linux.create_partition_if_no_ephemeral_disk = false;
        let runner = RecordingRunner::new();
        runner.expect(&["udevadm", "trigger"], Reply::Ok(String::new()));
        runner.expect(&["udevadm", "settle"], Reply::Ok(String::new()));
        assert_eq!(
            vm.setup(&runner).unwrap_err().to_string(),
            "No ephemeral disk found, cannot use root partition as ephemeral disk"
        );
        vm.linux.skip_disk_setup = true;
        vm.setup(&RecordingRunner::new()).unwrap();
        assert!(vm.dirs.data_dir().is_dir());
    }

    #[test]
    fn no_disk_carves_swap_and_data_from_the_root_disk() {
        let vm = vm("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n", SWAPS_HEADER);
        let runner = RecordingRunner::new();
        let data = vm.data();
        let expected: Vec<(Vec<&str>, Reply)> = vec![
            (
                vec!["readlink", "-f", "/dev/vda1"],
                Reply::Ok("/dev/vda1\n".into()),
            ),
            (
                vec!["parted", "-m", "/dev/vda", "unit", "B", "print"],
                Reply::Ok(
                    "BYT;\n/dev/vda:8589934592B:virtblk:512:512:msdos:Virtio Block Device:;\n\
                     1:1048576B:3221225471B:3220176896B:ext4::boot;\n"
                        .into(),
                ),
            ),
            (
                vec![
                    "parted",
                    "-s",
                    "/dev/vda",
                    "unit",
                    "B",
                    "mkpart",
                    "primary",
                    "3221225472",
                    "4294967295",
                ],
                Reply::Ok(String::new()),
            ),
            (
                vec![
                    "parted",
                    "-s",
                    "/dev/vda",
                    "unit",
                    "B",
                    "mkpart",
                    "primary",
                    "4294967296",
                    "8589934591",
                ],
                Reply::Ok(String::new()),
            ),
            (vec!["udevadm", "settle"], Reply::Ok(String::new())),
            (
                vec!["blkid", "-p", "-o", "export", "/dev/vda2"],
                Reply::Fail(2, String::new()),
            ),
            (vec!["mkswap", "/dev/vda2"], Reply::Ok(String::new())),
            (vec!["swapon", "/dev/vda2"], Reply::Ok(String::new())),
            (
                vec!["blkid", "-p", "-o", "export", "/dev/vda3"],
                Reply::Fail(2, String::new()),
            ),
            (
                vec!["mke2fs", "-t", "ext4", "-j", "/dev/vda3"],
                Reply::Ok(String::new()),
            ),
            (
                vec!["mount", "/dev/vda3", data.as_str()],
                Reply::Ok(String::new()),
            ),
        ];
        for (argv, reply) in &expected {
            runner.expect(argv, reply.clone());
        }
        let options = EphemeralOptions {
            dirs: &vm.dirs,
            linux: &vm.linux,
            resolver: &vm.resolver,
            retry: Retry::default(),
            prober: &crate::linux::probe::CliProber(&runner),
        };
        let found = setup_ephemeral_disk(
            &runner,
            &vm.host,
            &options,
            &DiskSettings::default(),
            ID,
            None,
        )
        .unwrap();
        assert!(!found, "the root disk was carved");
        let all: Vec<Vec<&str>> = expected.iter().map(|(argv, _)| argv.clone()).collect();
        assert_eq!(runner.recorded(), all);
    }

    #[test]
    fn sizes_come_from_sys_and_meminfo() {
        let vm = vm("", SWAPS_HEADER);
        assert_eq!(
            device_size(&vm.host, Path::new("/dev/vdb")).unwrap(),
            10 * GIB
        );
        assert_eq!(ram_size(&vm.host).unwrap(), GIB);
    }
}
