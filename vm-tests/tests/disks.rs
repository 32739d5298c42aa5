//! VM test of the persistent disks: two disks made and hot-plugged through the QEMU CPI, driven
//! as a director drives them (`add_persistent_disk` with the CPI's hint, `mount_disk`,
//! `migrate_disk`, `unmount_disk`, `list_disk`, `remove_persistent_disk`), then an agent restart
//! and a VM reboot that must mount the last disk again without reformatting it. Along the way:
//! the disks made xfs (`env.persistent_disk_fs`; the director's VM test keeps the default ext4),
//! `env.persistent_disk_mount_options` on the mount, the persistent disk in `get_state`'s vitals,
//! the old disk grown by the CPI (`resize_disk`) and mounted again with its partition and
//! filesystem grown and its data kept, the hints file after `remove_persistent_disk`, an
//! unmount retried while a process keeps the store busy, and a disk with a foreign partition
//! table refused without a write. One boot and one reboot; timings are
//! printed, never asserted.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::{PONG_TIMEOUT, SETTLE_TIMEOUT};
use thin_director::cpi::Cpi;
use vm_tests::harness::{Machine, Vm, World};

/// `env.persistent_disk_fs` of the VM.
const FS: &str = "xfs";

/// A disk action's deadline (mkfs and the tar copy under TCG).
const DISK_ACTION_TIMEOUT: Duration = Duration::from_secs(300);

/// The data written on the first disk, checked after the migration and the reboot:
/// `path mode owner` lines of `stat`, a file's content and a sparse file's allocation.
const WRITE_DATA: &str = "set -e; cd /var/vcap/store; \
    mkdir -p jobdata/sub; chmod 0750 jobdata; chown vcap:vcap jobdata; \
    echo persistent > jobdata/sub/file; chmod 0640 jobdata/sub/file; \
    truncate -s 512M jobdata/sparse; echo tail >> jobdata/sparse; \
    ln -s sub/file jobdata/link; sync";
const READ_DATA: &str = "cd /var/vcap/store && stat -c '%n %a %U:%G %s' jobdata jobdata/sub/file jobdata/sparse \
    && readlink jobdata/link && cat jobdata/sub/file && tail -c 5 jobdata/sparse";
/// The sparse file's allocated KiB: far below its 512 MiB when the holes were kept.
const SPARSE_KIB: &str = "du -k /var/vcap/store/jobdata/sparse | cut -f1";

fn call(world: &World, agent_id: &str, method: &str, args: Vec<Value>) -> Value {
    let started = Instant::now();
    let result = world
        .call(agent_id, method, args, DISK_ACTION_TIMEOUT)
        .unwrap_or_else(|err| panic!("{method}: {err:#}"));
    eprintln!("{method}: {:.1} s", started.elapsed().as_secs_f64());
    result
}

/// `findmnt`'s source and filesystem of `dir`.
fn mounted_on(machine: &mut Machine, dir: &str) -> Vec<String> {
    machine
        .succeed(&format!("findmnt -n -o SOURCE,FSTYPE {dir}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The guest's device of the hot-plugged disk `cid` (its serial is the cid), once udev made it.
fn guest_device(machine: &mut Machine, cid: &str) -> String {
    let link = format!("/dev/disk/by-id/virtio-{cid}");
    machine.wait_until_succeeds(&format!("test -b {link}"), SETTLE_TIMEOUT);
    machine
        .succeed(&format!("readlink -f {link}"))
        .trim()
        .to_owned()
}

/// Hot-plugs `disk` into `vm` through `cpi` and tells the agent with the CPI's hint
/// (`add_persistent_disk`), as a director does; the disk's device in the guest.
fn attach(world: &World, cpi: &Cpi, vm: &mut Vm, agent_id: &str, disk: &str) -> String {
    let hint = world
        .block_on(cpi.attach_disk(&vm.cid, disk))
        .unwrap_or_else(|err| panic!("attach_disk: {err:#}"));
    let device = guest_device(&mut vm.machine, disk);
    call(
        world,
        agent_id,
        "add_persistent_disk",
        vec![json!(disk), hint],
    );
    device
}

/// The disk's filesystem identity: its UUID, which a reformat changes.
fn fs_identity(machine: &mut Machine, partition: &str) -> String {
    let uuid = machine.succeed(&format!("blkid -s UUID -o value {partition}"));
    assert!(!uuid.trim().is_empty(), "{partition} has a UUID");
    uuid
}

#[test]
fn persistent_disks_are_partitioned_mounted_migrated_and_remounted_after_a_reboot() {
    let mut world = support::world();
    let cpi = support::cpi(&world);
    let agent_id = uuid::Uuid::new_v4().to_string();
    let mut env = world.env(&agent_id).unwrap();
    env["persistent_disk_fs"] = json!(FS);
    env["persistent_disk_mount_options"] = json!(["noatime"]);
    let networks = world.networks();
    let mut vm = world
        .create_vm_with(&agent_id, networks, env)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let timings = world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    eprintln!("boot timings: {timings}");
    vm.machine
        .wait_for_unit("bosh-agent.service", SETTLE_TIMEOUT);

    let first = world
        .block_on(cpi.create_disk(1024, &json!({}), Some(&vm.cid)))
        .unwrap_or_else(|err| panic!("create_disk: {err:#}"));
    let second = world
        .block_on(cpi.create_disk(2048, &json!({}), Some(&vm.cid)))
        .unwrap_or_else(|err| panic!("create_disk: {err:#}"));

    // The first disk: hot-plugged, told to the agent with the CPI's hint, partitioned, made xfs
    // and mounted on the store.
    let first_dev = attach(&world, &cpi, &mut vm, &agent_id, &first);
    let first_part = format!("{first_dev}1");
    call(&world, &agent_id, "mount_disk", vec![json!(first)]);
    let machine = &mut vm.machine;
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&first_part, FS]);
    let table: Value =
        serde_json::from_str(&machine.succeed(&format!("sfdisk -J {first_dev}"))).unwrap();
    let partitions = table["partitiontable"]["partitions"].as_array().unwrap();
    // The stemcell's agent.json says `PartitionerType: parted`: a GPT with Go's partition name.
    assert_eq!(table["partitiontable"]["label"], "gpt", "{table:#}");
    assert_eq!(partitions.len(), 1, "{table:#}");
    assert_eq!(
        partitions[0]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "{table:#}"
    );
    assert_eq!(partitions[0]["name"], "bosh-partition-0", "{table:#}");
    assert_eq!(
        machine.succeed("cat /var/vcap/bosh/managed_disk_settings.json"),
        first
    );
    let options = machine.succeed("findmnt -n -o OPTIONS -M /var/vcap/store");
    assert!(
        options.trim().split(',').any(|option| option == "noatime"),
        "the env's mount options: {options}"
    );
    let state = call(&world, &agent_id, "get_state", vec![json!("full")]);
    let persistent = &state["vitals"]["disk"]["persistent"];
    assert!(
        persistent["percent"].is_string() && persistent["inode_percent"].is_string(),
        "the store in the vitals: {state:#}"
    );
    machine.succeed(WRITE_DATA);
    // An extended attribute (the stemcell has `attr`): migrate_disk copies xattrs.
    machine.succeed("setfattr -n user.bosh -v kept /var/vcap/store/jobdata/sub/file");
    let data = machine.succeed(READ_DATA);
    let sparse_kib: u64 = machine.succeed(SPARSE_KIB).trim().parse().unwrap();
    assert!(sparse_kib < 1024, "sparse file allocates {sparse_kib} KiB");
    eprintln!("data written:\n{data}");
    let listed = call(&world, &agent_id, "list_disk", vec![]);
    assert_eq!(listed, json!([first]));

    // Mounting it again is a no-op.
    call(&world, &agent_id, "mount_disk", vec![json!(first)]);

    // The second disk goes to the migration target while the store is taken, then the data
    // moves onto it and it takes the store.
    let second_dev = attach(&world, &cpi, &mut vm, &agent_id, &second);
    let second_part = format!("{second_dev}1");
    call(&world, &agent_id, "mount_disk", vec![json!(second)]);
    let machine = &mut vm.machine;
    assert_eq!(
        mounted_on(machine, "/var/vcap/store_migration_target"),
        [&second_part, FS]
    );
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&first_part, FS]);
    call(
        &world,
        &agent_id,
        "migrate_disk",
        vec![json!(first), json!(second)],
    );
    let machine = &mut vm.machine;
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&second_part, FS]);
    machine.fail("mountpoint -q /var/vcap/store_migration_target");
    machine.fail(&format!("findmnt -n {first_part}"));
    assert_eq!(
        machine.succeed(READ_DATA),
        data,
        "same names, modes, owners, contents"
    );
    let sparse_kib: u64 = machine.succeed(SPARSE_KIB).trim().parse().unwrap();
    assert!(sparse_kib < 1024, "the copy allocates {sparse_kib} KiB");
    assert_eq!(
        machine.succeed(
            "getfattr --absolute-names --only-values -n user.bosh /var/vcap/store/jobdata/sub/file"
        ),
        "kept"
    );
    let listed = call(&world, &agent_id, "list_disk", vec![]);
    assert_eq!(listed, json!([second]));

    // The old disk: not mounted any more, detached through the CPI, forgotten.
    let message = call(&world, &agent_id, "unmount_disk", vec![json!(first)]);
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .starts_with("Partition of {ID:"),
        "{message}"
    );
    let detached = Instant::now();
    match world.block_on(cpi.call("detach_disk", &[json!(vm.cid), json!(first)], None)) {
        Ok(_) => {
            vm.machine
                .wait_until_fails(&format!("test -e {first_dev}"), SETTLE_TIMEOUT);
            eprintln!(
                "detach_disk: the guest released {first_dev} in {:.1} s",
                detached.elapsed().as_secs_f64()
            );
        }
        Err(err) => panic!("detach_disk: {err:#}"),
    }

    // The old disk grown by the CPI while detached, attached again: mounted on the migration
    // target (the store is taken) with its partition grown to the disk and its filesystem after
    // it, the data still there.
    world
        .block_on(cpi.call("resize_disk", &[json!(first), json!(1536)], None))
        .unwrap_or_else(|err| panic!("resize_disk: {err:#}"));
    let first_dev = attach(&world, &cpi, &mut vm, &agent_id, &first);
    let first_part = format!("{first_dev}1");
    call(&world, &agent_id, "mount_disk", vec![json!(first)]);
    let machine = &mut vm.machine;
    assert_eq!(
        mounted_on(machine, "/var/vcap/store_migration_target"),
        [&first_part, FS]
    );
    let mib = |machine: &mut Machine, command: &str| -> u64 {
        machine.succeed(command).trim().parse::<u64>().unwrap() / (1024 * 1024)
    };
    let partition_mib = mib(machine, &format!("lsblk -bndo SIZE {first_part}"));
    assert!(
        partition_mib > 1500,
        "the partition reaches the end of the 1536 MiB disk: {partition_mib} MiB"
    );
    let filesystem_mib = mib(
        machine,
        "df -B1 --output=size /var/vcap/store_migration_target | tail -n 1",
    );
    assert!(
        filesystem_mib > 1400,
        "the filesystem grew with it: {filesystem_mib} MiB"
    );
    assert_eq!(
        machine.succeed("cat /var/vcap/store_migration_target/jobdata/sub/file"),
        "persistent\n"
    );
    call(&world, &agent_id, "unmount_disk", vec![json!(first)]);
    world
        .block_on(cpi.call("detach_disk", &[json!(vm.cid), json!(first)], None))
        .unwrap_or_else(|err| panic!("detach_disk: {err:#}"));
    call(
        &world,
        &agent_id,
        "remove_persistent_disk",
        vec![json!(first)],
    );
    let hints = vm
        .machine
        .succeed("cat /var/vcap/bosh/persistent_disk_hints.json");
    assert!(
        !hints.contains(&first) && hints.contains(&second),
        "only the second disk's hint is left: {hints}"
    );

    // Unmount and mount again: the same filesystem, not reformatted.
    let machine = &mut vm.machine;
    let identity = fs_identity(machine, &second_part);
    // A process in the store keeps it busy for a while: the unmount is retried until it is gone.
    machine.succeed(
        "setsid bash -c 'cd /var/vcap/store && exec sleep 6' </dev/null >/dev/null 2>&1 & \
         sleep 0.5; ls -l /proc/[0-9]*/cwd 2>/dev/null | grep -q ' -> /var/vcap/store$'",
    );
    let message = call(&world, &agent_id, "unmount_disk", vec![json!(second)]);
    let machine = &mut vm.machine;
    machine.console().poll().unwrap();
    assert!(
        machine.console().text().contains("busy, unmounting again"),
        "the agent retried the busy unmount"
    );
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .starts_with("Unmounted partition of {ID:"),
        "{message}"
    );
    vm.machine.fail("mountpoint -q /var/vcap/store");
    assert_eq!(call(&world, &agent_id, "list_disk", vec![]), json!([]));
    call(&world, &agent_id, "mount_disk", vec![json!(second)]);
    let machine = &mut vm.machine;
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&second_part, FS]);
    assert_eq!(fs_identity(machine, &second_part), identity);

    // An agent restart with the disk unmounted: the bootstrap mounts the last disk again.
    machine.succeed("umount /var/vcap/store");
    machine.succeed("systemctl restart bosh-agent");
    world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let machine = &mut vm.machine;
    machine.wait_until_succeeds("mountpoint -q /var/vcap/store", SETTLE_TIMEOUT);
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&second_part, FS]);
    assert_eq!(fs_identity(machine, &second_part), identity);

    // A reboot: the disk comes back on the store with its data, nothing reformatted.
    support::reboot_and_wait_for_pong(&world, &mut vm);
    let machine = &mut vm.machine;
    machine.wait_until_succeeds("mountpoint -q /var/vcap/store", SETTLE_TIMEOUT);
    let device = machine
        .succeed(&format!(
            "readlink -f /dev/disk/by-id/virtio-{second}-part1"
        ))
        .trim()
        .to_owned();
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&device, FS]);
    assert_eq!(fs_identity(machine, &device), identity);
    assert_eq!(machine.succeed(READ_DATA), data);
    assert_eq!(
        call(&world, &agent_id, "list_disk", vec![]),
        json!([second])
    );

    // A disk holding a partition table that is not ours (two partitions, one of them FAT): the
    // agent refuses it, writes nothing, and the store keeps its disk.
    let foreign = world
        .block_on(cpi.create_disk(64, &json!({}), Some(&vm.cid)))
        .unwrap_or_else(|err| panic!("create_disk: {err:#}"));
    let foreign_dev = attach(&world, &cpi, &mut vm, &agent_id, &foreign);
    let machine = &mut vm.machine;
    machine.succeed(&format!(
        "printf ',16MiB,c\n,,L\n' | sfdisk -q {foreign_dev} && udevadm settle"
    ));
    let table = machine.succeed(&format!("sfdisk --dump {foreign_dev}"));
    let refused = world
        .call(
            &agent_id,
            "mount_disk",
            vec![json!(foreign)],
            DISK_ACTION_TIMEOUT,
        )
        .expect_err("a foreign partition table is refused");
    assert!(
        format!("{refused:#}").contains("not one linux partition"),
        "{refused:#}"
    );
    let machine = &mut vm.machine;
    assert_eq!(
        machine.succeed(&format!("sfdisk --dump {foreign_dev}")),
        table
    );
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&device, FS]);
    machine.fail("mountpoint -q /var/vcap/store_migration_target");
}
