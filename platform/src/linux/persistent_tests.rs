//! Unit tests of [`super`]: a fake host (`/dev/vdc` found by its serial, its size in `/sys`, a
//! mount table) and a recording runner scripted with what `blkid`, `sfdisk` and `umount` answer;
//! each test checks the exact commands run (and `sfdisk`'s input) and what is left on the host.

use super::*;

use std::time::Duration;

use crate::testing::{RecordingRunner, Reply};

const SERIAL: &str = "disk-0123456789abcde";
const GIB: u64 = 1024 * MIB;

/// A fake host: `/dev/vdc` found by its serial, `sectors` long, and a mount table.
struct Vm {
    _root: tempfile::TempDir,
    host: HostPaths,
    dirs: Dirs,
    linux: LinuxOptions,
    resolver: Resolver,
    /// `/dev/vdc` under the root.
    vdc: String,
    /// `/dev/vdc1` under the root.
    vdc1: String,
    store: String,
    target: String,
}

fn vm(disk_bytes: u64) -> Vm {
    let root = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(root.path()).unwrap();
    std::fs::create_dir_all(base.join("dev/disk/by-id")).unwrap();
    std::fs::write(base.join("dev/vdc"), "").unwrap();
    std::os::unix::fs::symlink(
        "../../vdc",
        base.join(format!("dev/disk/by-id/virtio-{SERIAL}")),
    )
    .unwrap();
    std::fs::create_dir_all(base.join("sys/class/block/vdc")).unwrap();
    std::fs::write(
        base.join("sys/class/block/vdc/size"),
        format!("{}\n", disk_bytes / 512),
    )
    .unwrap();
    let dirs = Dirs::new(base.join("var/vcap"));
    let vm = Vm {
        vdc: base.join("dev/vdc").display().to_string(),
        vdc1: base.join("dev/vdc1").display().to_string(),
        store: dirs.store_dir().display().to_string(),
        target: dirs.store_migration_dir().display().to_string(),
        host: HostPaths::with_root(&base),
        dirs,
        linux: LinuxOptions::default(),
        resolver: Resolver::new("virtio").without_waits(),
        _root: root,
    };
    vm.mounts("");
    vm
}

impl Vm {
    fn mounts(&self, extra: &str) {
        let dir = self.host.proc("self");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("mountinfo"),
            format!("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n{extra}"),
        )
        .unwrap();
    }

    fn mounted(&self, device: &str, dir: &str) -> String {
        format!("40 22 252:33 / {dir} rw,relatime - ext4 {device} rw\n")
    }

    fn disks<'a>(&'a self, runner: &'a RecordingRunner) -> PersistentDisks<'a> {
        PersistentDisks {
            runner,
            host: &self.host,
            dirs: &self.dirs,
            linux: &self.linux,
            resolver: &self.resolver,
            unmount_retry: UnmountRetry {
                tries: 3,
                delay: Duration::ZERO,
            },
            // The tests' prober borrows their runner for as long as the disks do.
            prober: Box::leak(Box::new(crate::linux::probe::CliProber(runner))),
        }
    }

    fn store(&self) -> PathBuf {
        self.dirs.store_dir()
    }
}

fn disk() -> DiskSettings {
    DiskSettings {
        id: "disk-cid-1".into(),
        device_id: SERIAL.into(),
        path: "/dev/vdc".into(),
        ..DiskSettings::default()
    }
}

/// `sfdisk -J` of an MBR with one partition from sector 2048, `sectors` long, of type `kind`.
fn one_partition(vdc: &str, sectors: u64, kind: &str) -> String {
    format!(
        r#"{{"partitiontable": {{"label": "dos", "id": "0x1", "device": "{vdc}", "unit": "sectors", "sectorsize": 512,
  "partitions": [{{"node": "{vdc}1", "start": 2048, "size": {sectors}, "type": "{kind}"}}]}}}}"#
    )
}

fn script(runner: &RecordingRunner, steps: &[(Vec<&str>, Reply)]) {
    for (argv, reply) in steps {
        runner.expect(argv, reply.clone());
    }
}

/// A blank disk made a GPT by Go's parted partitioner (its partition ending at byte `end`), then
/// ext4 and mounted on the store.
fn parted_and_mount<'a>(vm: &'a Vm, end: &'a str) -> Vec<(Vec<&'a str>, Reply)> {
    let (vdc, vdc1) = (vm.vdc.as_str(), vm.vdc1.as_str());
    vec![
        (vec!["blkid", "-p", "-o", "export", vdc], nothing_found()),
        (vec!["parted", "-s", vdc, "mklabel", "gpt"], ok()),
        (
            vec![
                "parted",
                "-s",
                vdc,
                "unit",
                "B",
                "mkpart",
                "bosh-partition-0",
                "1048576",
                end,
            ],
            ok(),
        ),
        (vec!["udevadm", "trigger", "--settle", vdc], ok()),
        (vec!["blkid", "-p", "-o", "export", vdc1], nothing_found()),
        (vec!["mke2fs", "-t", "ext4", "-j", vdc1], ok()),
        (vec!["mount", vdc1, &vm.store], ok()),
    ]
}

fn ok() -> Reply {
    Reply::Ok(String::new())
}

fn nothing_found() -> Reply {
    Reply::Fail(2, String::new())
}

#[test]
fn a_blank_disk_gets_one_linux_partition_and_ext4_then_is_mounted_on_store() {
    let vm = vm(GIB);
    let runner = RecordingRunner::new();
    let (vdc, vdc1) = (vm.vdc.as_str(), vm.vdc1.as_str());
    let steps = vec![
        (vec!["blkid", "-p", "-o", "export", vdc], nothing_found()),
        (vec!["sfdisk", vdc], ok()),
        (vec!["udevadm", "trigger", "--settle", vdc], ok()),
        (vec!["blkid", "-p", "-o", "export", vdc1], nothing_found()),
        (vec!["mke2fs", "-t", "ext4", "-j", vdc1], ok()),
        (vec!["mount", vdc1, &vm.store], ok()),
    ];
    script(&runner, &steps);
    let target = vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    assert_eq!(target, vm.store());
    let expected: Vec<Vec<String>> = steps
        .iter()
        .map(|(argv, _)| argv.iter().map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(runner.recorded(), expected);
    let sfdisk = &runner.recorded_commands()[1];
    assert_eq!(sfdisk.stdin.as_deref(), Some(&b",,L\n"[..]));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(vm.store()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn xfs_is_made_when_asked_and_other_filesystems_are_refused_before_anything_runs() {
    let vm = vm(GIB);
    let runner = RecordingRunner::new();
    let (vdc, vdc1) = (vm.vdc.as_str(), vm.vdc1.as_str());
    script(
        &runner,
        &[
            (vec!["blkid", "-p", "-o", "export", vdc], nothing_found()),
            (vec!["sfdisk", vdc], ok()),
            (vec!["udevadm", "trigger", "--settle", vdc], ok()),
            (vec!["blkid", "-p", "-o", "export", vdc1], nothing_found()),
            (vec!["mkfs.xfs", vdc1], ok()),
            (
                vec!["mount", vdc1, &vm.store, "-o", "noatime", "-o", "nodev"],
                ok(),
            ),
        ],
    );
    let xfs = DiskSettings {
        file_system_type: "xfs".into(),
        mount_options: vec!["noatime".into(), "nodev".into()],
        ..disk()
    };
    vm.disks(&runner).mount(&xfs, &vm.store()).unwrap();
    assert!(runner.unused().is_empty(), "{:?}", runner.unused());

    let runner = RecordingRunner::new();
    let swap = DiskSettings {
        file_system_type: "swap".into(),
        ..disk()
    };
    let err = vm.disks(&runner).mount(&swap, &vm.store()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The filesystem type \"swap\" is not supported"
    );
    assert!(runner.recorded().is_empty());
}

#[test]
fn our_partition_with_a_filesystem_is_only_read_and_mounted_with_its_options() {
    let vm = vm(GIB);
    let runner = RecordingRunner::new();
    let (vdc, vdc1) = (vm.vdc.as_str(), vm.vdc1.as_str());
    script(
        &runner,
        &[
            (
                vec!["blkid", "-p", "-o", "export", vdc],
                Reply::Ok("DEVNAME=/dev/vdc\nPTUUID=0x1\nPTTYPE=dos\n".into()),
            ),
            (
                vec!["sfdisk", "-J", vdc],
                Reply::Ok(one_partition(vdc, GIB / 512 - 2048, "83")),
            ),
            (
                vec!["blkid", "-p", "-o", "export", vdc1],
                Reply::Ok("UUID=abc\nVERSION=1.0\nTYPE=ext4\nUSAGE=filesystem\n".into()),
            ),
            (vec!["mount", vdc1, &vm.store, "-o", "noatime"], ok()),
        ],
    );
    let with_options = DiskSettings {
        mount_options: vec!["noatime".into()],
        ..disk()
    };
    vm.disks(&runner).mount(&with_options, &vm.store()).unwrap();
    assert_eq!(runner.recorded().len(), 4, "no partitioning, no mkfs");
    assert!(runner.unused().is_empty());
}

#[test]
fn a_partition_smaller_than_its_disk_is_grown_then_its_filesystem_once_mounted() {
    let vm = vm(2 * GIB);
    let runner = RecordingRunner::new();
    let (vdc, vdc1) = (vm.vdc.as_str(), vm.vdc1.as_str());
    let steps = vec![
        (
            vec!["blkid", "-p", "-o", "export", vdc],
            Reply::Ok("PTTYPE=dos\n".into()),
        ),
        (
            vec!["sfdisk", "-J", vdc],
            Reply::Ok(one_partition(vdc, GIB / 512 - 2048, "83")),
        ),
        (vec!["growpart", vdc, "1", "--update", "auto"], ok()),
        (vec!["udevadm", "trigger", "--settle", vdc], ok()),
        (
            vec!["blkid", "-p", "-o", "export", vdc1],
            Reply::Ok("TYPE=ext4\n".into()),
        ),
        (vec!["mount", vdc1, &vm.store], ok()),
        (vec!["resize2fs", "-f", vdc1], ok()),
    ];
    script(&runner, &steps);
    vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    let expected: Vec<Vec<String>> = steps
        .iter()
        .map(|(argv, _)| argv.iter().map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(runner.recorded(), expected);

    // Within 100 MiB of the disk's end: left alone.
    let runner = RecordingRunner::new();
    script(
        &runner,
        &[
            (
                vec!["blkid", "-p", "-o", "export", vdc],
                Reply::Ok("PTTYPE=dos\n".into()),
            ),
            (
                vec!["sfdisk", "-J", vdc],
                Reply::Ok(one_partition(vdc, (2 * GIB - 50 * MIB) / 512, "83")),
            ),
            (
                vec!["blkid", "-p", "-o", "export", vdc1],
                Reply::Ok("TYPE=ext4\n".into()),
            ),
            (vec!["mount", vdc1, &vm.store], ok()),
        ],
    );
    vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    assert!(runner.unused().is_empty());
    assert_eq!(runner.recorded().len(), 4);
}

#[test]
fn a_disk_above_two_tib_gets_a_gpt_through_parted() {
    let vm = vm(3 * 1024 * GIB);
    let runner = RecordingRunner::new();
    script(&runner, &parted_and_mount(&vm, "3298533834751"));
    vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    assert!(runner.unused().is_empty(), "{:?}", runner.unused());
}

#[test]
fn the_partitioner_is_the_disks_then_the_agents_and_go_s_parted_partition_is_ours() {
    // `PartitionerType: parted` in agent.json: a GPT even on a small disk, as Go makes it.
    let mut vm = vm(GIB);
    vm.linux.partitioner_type = "parted".into();
    let runner = RecordingRunner::new();
    let (vdc, vdc1) = (vm.vdc.as_str(), vm.vdc1.as_str());
    script(&runner, &parted_and_mount(&vm, "1072693247"));
    vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    assert!(runner.unused().is_empty(), "{:?}", runner.unused());

    // The disk's `persistent_disk_partitioner` wins over the agent's.
    let runner = RecordingRunner::new();
    script(
        &runner,
        &[
            (vec!["blkid", "-p", "-o", "export", vdc], nothing_found()),
            (vec!["sfdisk", vdc], ok()),
            (vec!["udevadm", "trigger", "--settle", vdc], ok()),
            (vec!["blkid", "-p", "-o", "export", vdc1], nothing_found()),
            (vec!["mke2fs", "-t", "ext4", "-j", vdc1], ok()),
            (vec!["mount", vdc1, &vm.store], ok()),
        ],
    );
    let sfdisk = DiskSettings {
        partitioner: "sfdisk".into(),
        ..disk()
    };
    vm.disks(&runner).mount(&sfdisk, &vm.store()).unwrap();
    assert!(runner.unused().is_empty(), "{:?}", runner.unused());

    // An unknown partitioner is Go's error, before anything is written.
    let runner = RecordingRunner::new();
    script(
        &runner,
        &[(vec!["blkid", "-p", "-o", "export", vdc], nothing_found())],
    );
    let unknown = DiskSettings {
        partitioner: "fdisk".into(),
        ..disk()
    };
    let err = vm.disks(&runner).mount(&unknown, &vm.store()).unwrap_err();
    assert_eq!(err.to_string(), "Unknown partitioner type 'fdisk'");
    assert_eq!(runner.recorded().len(), 1);

    // A disk Go's parted partitioner made (its partition `bosh-partition-0`) is mounted as it is.
    let runner = RecordingRunner::new();
    let table = format!(
        r#"{{"partitiontable": {{"label": "gpt", "device": "{vdc}", "unit": "sectors", "sectorsize": 512,
  "partitions": [{{"node": "{vdc1}", "start": 2048, "size": 2091008, "type": "{GPT_LINUX}", "name": "bosh-partition-0"}}]}}}}"#
    );
    script(
        &runner,
        &[
            (
                vec!["blkid", "-p", "-o", "export", vdc],
                Reply::Ok("PTTYPE=gpt\n".into()),
            ),
            (vec!["sfdisk", "-J", vdc], Reply::Ok(table)),
            (
                vec!["blkid", "-p", "-o", "export", vdc1],
                Reply::Ok("TYPE=ext4\n".into()),
            ),
            (vec!["mount", vdc1, &vm.store], ok()),
        ],
    );
    vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    assert!(runner.unused().is_empty(), "{:?}", runner.unused());
}

#[test]
fn foreign_tables_and_whole_disk_filesystems_are_refused_without_writing() {
    let vm = vm(GIB);
    let vdc = vm.vdc.as_str();
    let two = format!(
        r#"{{"partitiontable": {{"label": "gpt", "device": "{vdc}", "unit": "sectors", "sectorsize": 512,
  "partitions": [{{"node": "{vdc}1", "start": 2048, "size": 1000, "type": "{GPT_LINUX}"}},
                 {{"node": "{vdc}2", "start": 4096, "size": 1000, "type": "{GPT_LINUX}"}}]}}}}"#
    );
    let ephemeral = format!(
        r#"{{"partitiontable": {{"label": "gpt", "sectorsize": 512,
  "partitions": [{{"node": "{vdc}1", "start": 2048, "size": 1000, "type": "{GPT_LINUX}", "name": "bosh-partition-abc-1"}}]}}}}"#
    );
    let cases = [
        (
            two,
            format!(
                "disk {vdc} holds a gpt partition table that is not one linux partition (2 partitions, types [{GPT_LINUX}, {GPT_LINUX}]); it is left as it is"
            ),
        ),
        (
            one_partition(vdc, 1000, "7"),
            format!(
                "disk {vdc} holds a dos partition table that is not one linux partition (1 partitions, types [7]); it is left as it is"
            ),
        ),
        (
            ephemeral,
            format!(
                "disk {vdc} holds a gpt partition table that is not one linux partition (1 partitions, types [{GPT_LINUX}]); it is left as it is"
            ),
        ),
    ];
    for (table, message) in cases {
        let runner = RecordingRunner::new();
        script(
            &runner,
            &[
                (
                    vec!["blkid", "-p", "-o", "export", vdc],
                    Reply::Ok("PTTYPE=gpt\n".into()),
                ),
                (vec!["sfdisk", "-J", vdc], Reply::Ok(table)),
            ],
        );
        let err = vm.disks(&runner).mount(&disk(), &vm.store()).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(runner.recorded().len(), 2, "only reads");
        assert!(!vm.store().exists(), "not even the mount point");
    }

    let runner = RecordingRunner::new();
    runner.expect(
        &["blkid", "-p", "-o", "export", vdc],
        Reply::Ok("TYPE=ext4\n".into()),
    );
    let err = vm.disks(&runner).mount(&disk(), &vm.store()).unwrap_err();
    assert!(
        err.to_string()
            .contains("holds a ext4 signature and no partition table")
    );
    assert_eq!(runner.recorded().len(), 1);

    // Our partition holding another filesystem is not reformatted.
    let runner = RecordingRunner::new();
    script(
        &runner,
        &[
            (
                vec!["blkid", "-p", "-o", "export", vdc],
                Reply::Ok("PTTYPE=dos\n".into()),
            ),
            (
                vec!["sfdisk", "-J", vdc],
                Reply::Ok(one_partition(vdc, GIB / 512 - 2048, "83")),
            ),
            (
                vec!["blkid", "-p", "-o", "export", &vm.vdc1],
                Reply::Ok("TYPE=btrfs\n".into()),
            ),
        ],
    );
    let err = vm.disks(&runner).mount(&disk(), &vm.store()).unwrap_err();
    assert!(
        err.to_string().contains("holds a btrfs filesystem"),
        "{err}"
    );
    assert_eq!(runner.recorded().len(), 3);
}

#[test]
fn a_disk_mounted_already_is_left_alone() {
    let vm = vm(GIB);
    vm.mounts(&vm.mounted(&vm.vdc1, &vm.store));
    let runner = RecordingRunner::new();
    assert_eq!(
        vm.disks(&runner).mount(&disk(), &vm.store()).unwrap(),
        vm.store()
    );
    vm.mounts(&vm.mounted(&vm.vdc1, &vm.target));
    assert_eq!(
        vm.disks(&runner).mount(&disk(), &vm.store()).unwrap(),
        vm.dirs.store_migration_dir()
    );
    assert!(runner.recorded().is_empty());
    assert!(vm.disks(&runner).is_mounted(&disk()).unwrap());
    vm.mounts(&vm.mounted(&vm.vdc1, "/mnt"));
    let err = vm.disks(&runner).mount(&disk(), &vm.store()).unwrap_err();
    assert!(
        err.to_string().contains("is already mounted to /mnt"),
        "{err}"
    );
}

#[test]
fn a_taken_store_sends_the_new_disk_to_the_migration_target() {
    let vm = vm(GIB);
    vm.mounts(&vm.mounted("/dev/vdd1", &vm.store));
    let runner = RecordingRunner::new();
    let (vdc, vdc1) = (vm.vdc.as_str(), vm.vdc1.as_str());
    script(
        &runner,
        &[
            (vec!["blkid", "-p", "-o", "export", vdc], nothing_found()),
            (vec!["sfdisk", vdc], ok()),
            (vec!["udevadm", "trigger", "--settle", vdc], ok()),
            (vec!["blkid", "-p", "-o", "export", vdc1], nothing_found()),
            (vec!["mke2fs", "-t", "ext4", "-j", vdc1], ok()),
            (vec!["mount", vdc1, &vm.target], ok()),
        ],
    );
    let target = vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    assert_eq!(target, vm.dirs.store_migration_dir());
    assert!(runner.unused().is_empty(), "{:?}", runner.unused());
}

#[test]
fn unmounting_retries_while_busy_and_says_whether_it_was_mounted() {
    let vm = vm(GIB);
    let runner = RecordingRunner::new();
    assert!(!vm.disks(&runner).unmount(&disk()).unwrap(), "not mounted");
    assert!(!vm.disks(&runner).is_mounted(&disk()).unwrap());
    assert!(runner.recorded().is_empty());

    vm.mounts(&vm.mounted(&vm.vdc1, &vm.store));
    let busy = Reply::Fail(32, format!("umount: {}: target is busy.", vm.store));
    script(
        &runner,
        &[
            (vec!["umount", &vm.vdc1], busy.clone()),
            (vec!["umount", &vm.vdc1], busy.clone()),
            (vec!["umount", &vm.vdc1], ok()),
        ],
    );
    assert!(vm.disks(&runner).unmount(&disk()).unwrap());
    assert_eq!(runner.recorded().len(), 3);

    // Busy past the tries, or another failure: an error.
    let runner = RecordingRunner::new();
    for _ in 0..3 {
        runner.expect(&["umount", &vm.vdc1], busy.clone());
    }
    assert!(vm.disks(&runner).unmount(&disk()).is_err());
    assert_eq!(runner.recorded().len(), 3);

    // A disk that never appears is not mounted.
    let gone = DiskSettings {
        device_id: String::new(),
        id: "short".into(),
        path: "/dev/vdq".into(),
        ..DiskSettings::default()
    };
    let runner = RecordingRunner::new();
    assert!(!vm.disks(&runner).unmount(&gone).unwrap());
    assert!(!vm.disks(&runner).is_mounted(&gone).unwrap());
}

#[test]
fn migration_copies_read_only_with_tar_then_swaps_the_new_disk_in() {
    let vm = vm(GIB);
    let runner = RecordingRunner::new();
    let err = vm
        .disks(&runner)
        .migrate(&vm.store(), &vm.dirs.store_migration_dir())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no disk is mounted on {}", vm.store)
    );
    vm.mounts(&format!(
        "{}{}",
        vm.mounted("/dev/vdd1", &vm.store),
        vm.mounted(&vm.vdc1, &vm.target)
    ));
    let copy = format!(
        "set -o pipefail; (tar -C '{}' --xattrs --xattrs-include='*.*' --sparse -cf - .) | (tar -C '{}' --xattrs --xattrs-include='*.*' -xpf -)",
        vm.store, vm.target
    );
    let steps = vec![
        (vec!["mount", "-o", "remount,ro", &vm.store], ok()),
        (vec!["bash", "-c", &copy], ok()),
        (vec!["umount", &vm.store], ok()),
        (vec!["umount", &vm.target], ok()),
        (vec!["mount", &vm.vdc1, &vm.store], ok()),
    ];
    script(&runner, &steps);
    vm.disks(&runner)
        .migrate(&vm.store(), &vm.dirs.store_migration_dir())
        .unwrap();
    let expected: Vec<Vec<String>> = steps
        .iter()
        .map(|(argv, _)| argv.iter().map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(runner.recorded(), expected);
}

#[test]
fn a_disk_is_mountable_at_boot_only_when_sfdisk_dumps_a_table() {
    let vm = vm(GIB);
    let runner = RecordingRunner::new();
    script(
        &runner,
        &[
            (
                vec!["sfdisk", "-d", &vm.vdc],
                Reply::Ok(format!(
                    "label: dos\nlabel-id: 0x1\ndevice: {0}\nunit: sectors\nsector-size: 512\n\n{0}1 : start=2048, size=2095104, type=83\n",
                    vm.vdc
                )),
            ),
            (
                vec!["sfdisk", "-d", &vm.vdc],
                Reply::Fail(
                    1,
                    "sfdisk: /dev/vdc: does not contain a recognized partition table".into(),
                ),
            ),
        ],
    );
    assert!(vm.disks(&runner).is_mountable(&disk()).unwrap());
    assert!(!vm.disks(&runner).is_mountable(&disk()).unwrap());
}

#[test]
fn a_preformatted_disk_is_mounted_as_it_is() {
    let mut vm = vm(GIB);
    vm.linux.use_preformatted_persistent_disk = true;
    let runner = RecordingRunner::new();
    runner.expect(&["mount", &vm.vdc, &vm.store], ok());
    vm.disks(&runner).mount(&disk(), &vm.store()).unwrap();
    assert_eq!(runner.recorded().len(), 1, "no probe, no partitioning");
    vm.mounts(&vm.mounted(&vm.vdc, &vm.store));
    assert!(vm.disks(&runner).is_mounted(&disk()).unwrap());
}
