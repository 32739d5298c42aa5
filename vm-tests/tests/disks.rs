//! VM test of the persistent disks: two disks made and hot-plugged through the QEMU CPI, driven
//! as a director drives them (`add_persistent_disk` with the CPI's hint, `mount_disk`,
//! `migrate_disk`, `unmount_disk`, `list_disk`, `remove_persistent_disk`), then an agent restart
//! and a VM reboot that must mount the last disk again without reformatting it. One boot and one
//! reboot; timings are printed, never asserted.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::{PONG_TIMEOUT, SETTLE_TIMEOUT};
use thin_director::cpi::{self, Cpi};
use vm_tests::harness::{Machine, World};

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

fn cpi_for(world: &World) -> Cpi {
    let mut config = cpi::Config::new(support::qemu_cpi(), "vm-tests-disks");
    config.args = vec!["--config".into(), world.dir().join("cpi.json").into()];
    config.log = Some(world.dir().join("cpi.log"));
    config.timeout = Duration::from_secs(300);
    Cpi::new(config)
}

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

/// The disk's filesystem identity: UUID and creation time (a reformat changes both).
fn fs_identity(machine: &mut Machine, partition: &str) -> String {
    machine.succeed(&format!(
        "blkid -s UUID -o value {partition}; dumpe2fs -h {partition} 2>/dev/null | grep '^Filesystem created:'"
    ))
}

#[test]
fn persistent_disks_are_partitioned_mounted_migrated_and_remounted_after_a_reboot() {
    let mut world = support::world();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cpi = cpi_for(&world);
    let agent_id = uuid::Uuid::new_v4().to_string();
    let mut vm = world
        .create_vm(&agent_id)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let timings = world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    eprintln!("boot timings: {timings}");
    vm.machine
        .wait_for_unit("bosh-agent.service", SETTLE_TIMEOUT);

    let first = runtime
        .block_on(cpi.create_disk(1024, &json!({}), Some(&vm.cid)))
        .unwrap_or_else(|err| panic!("create_disk: {err:#}"));
    let second = runtime
        .block_on(cpi.create_disk(2048, &json!({}), Some(&vm.cid)))
        .unwrap_or_else(|err| panic!("create_disk: {err:#}"));

    // The first disk: hot-plugged, told to the agent with the CPI's hint, partitioned, made ext4
    // and mounted on the store.
    let hint = runtime
        .block_on(cpi.attach_disk(&vm.cid, &first))
        .unwrap_or_else(|err| panic!("attach_disk: {err:#}"));
    let first_dev = guest_device(&mut vm.machine, &first);
    let first_part = format!("{first_dev}1");
    call(
        &world,
        &agent_id,
        "add_persistent_disk",
        vec![json!(first), hint.clone()],
    );
    call(&world, &agent_id, "mount_disk", vec![json!(first)]);
    let machine = &mut vm.machine;
    assert_eq!(
        mounted_on(machine, "/var/vcap/store"),
        [&first_part, "ext4"]
    );
    let table: Value =
        serde_json::from_str(&machine.succeed(&format!("sfdisk -J {first_dev}"))).unwrap();
    let partitions = table["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 1, "{table:#}");
    assert_eq!(partitions[0]["type"], "83", "{table:#}");
    assert_eq!(
        machine.succeed("cat /var/vcap/bosh/managed_disk_settings.json"),
        first
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
    let hint2 = runtime
        .block_on(cpi.attach_disk(&vm.cid, &second))
        .unwrap_or_else(|err| panic!("attach_disk: {err:#}"));
    let second_dev = guest_device(&mut vm.machine, &second);
    let second_part = format!("{second_dev}1");
    call(
        &world,
        &agent_id,
        "add_persistent_disk",
        vec![json!(second), hint2.clone()],
    );
    call(&world, &agent_id, "mount_disk", vec![json!(second)]);
    let machine = &mut vm.machine;
    assert_eq!(
        mounted_on(machine, "/var/vcap/store_migration_target"),
        [&second_part, "ext4"]
    );
    assert_eq!(
        mounted_on(machine, "/var/vcap/store"),
        [&first_part, "ext4"]
    );
    call(
        &world,
        &agent_id,
        "migrate_disk",
        vec![json!(first), json!(second)],
    );
    let machine = &mut vm.machine;
    assert_eq!(
        mounted_on(machine, "/var/vcap/store"),
        [&second_part, "ext4"]
    );
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
    match runtime.block_on(cpi.call("detach_disk", &[json!(vm.cid), json!(first)], None)) {
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
    call(
        &world,
        &agent_id,
        "remove_persistent_disk",
        vec![json!(first)],
    );

    // Unmount and mount again: the same filesystem, not reformatted.
    let machine = &mut vm.machine;
    let identity = fs_identity(machine, &second_part);
    let message = call(&world, &agent_id, "unmount_disk", vec![json!(second)]);
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
    assert_eq!(
        mounted_on(machine, "/var/vcap/store"),
        [&second_part, "ext4"]
    );
    assert_eq!(fs_identity(machine, &second_part), identity);

    // An agent restart with the disk unmounted: the bootstrap mounts the last disk again.
    machine.succeed("umount /var/vcap/store");
    machine.succeed("systemctl restart bosh-agent");
    world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let machine = &mut vm.machine;
    machine.wait_until_succeeds("mountpoint -q /var/vcap/store", SETTLE_TIMEOUT);
    assert_eq!(
        mounted_on(machine, "/var/vcap/store"),
        [&second_part, "ext4"]
    );
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
    assert_eq!(mounted_on(machine, "/var/vcap/store"), [&device, "ext4"]);
    assert_eq!(fs_identity(machine, &device), identity);
    assert_eq!(machine.succeed(READ_DATA), data);
    assert_eq!(
        call(&world, &agent_id, "list_disk", vec![]),
        json!([second])
    );
}
