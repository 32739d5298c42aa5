//! VM test of root growth (§6.5 of the reference): a VM with an ephemeral disk whose root disk is
//! bigger than the stemcell image (`root_disk_size`) gets its root partition grown to the disk's
//! end (`growpart`) and its ext4 resized online (`resize2fs -f`); an agent restart then meets
//! growpart's `NOCHANGE` and starts as well.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::time::Instant;

use serde_json::{Value, json};

use support::{PONG_TIMEOUT, SETTLE_TIMEOUT};

/// The root disk the CPI gives (the stemcell image is 3 GiB).
const ROOT_DISK_MIB: u64 = 4096;

#[test]
fn the_root_partition_and_filesystem_grow_to_a_bigger_root_disk() {
    let mut world = support::world();
    let agent_id = uuid::Uuid::new_v4().to_string();
    let env = world.env(&agent_id).unwrap();
    let networks = world.networks();
    let mut vm = world
        .create_vm_with_properties(
            &agent_id,
            networks,
            env,
            json!({"root_disk_size": ROOT_DISK_MIB}),
        )
        .unwrap_or_else(|err| panic!("{err:#}"));
    let timings = world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    eprintln!("boot timings: {timings}");
    let machine = &mut vm.machine;
    machine.wait_for_unit("bosh-agent.service", SETTLE_TIMEOUT);
    eprintln!(
        "agent bootstrap: {}",
        support::bootstrap_steps(machine.console().text())
    );

    let dump: Value = serde_json::from_str(&machine.succeed("sfdisk --json /dev/vda")).unwrap();
    let parts = dump["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{dump:#}");
    let end_bytes =
        (parts[0]["start"].as_u64().unwrap() + parts[0]["size"].as_u64().unwrap()) * 512;
    // growpart leaves the disk's last 33 sectors free (room for a GPT backup).
    let disk_bytes = ROOT_DISK_MIB * 1024 * 1024;
    assert!(
        end_bytes <= disk_bytes && end_bytes > disk_bytes - 1024 * 1024,
        "the root partition ends at {end_bytes}, not at the disk's end: {dump:#}"
    );
    let fs_bytes: u64 = machine
        .succeed("findmnt -n -b -o SIZE /")
        .trim()
        .parse()
        .unwrap();
    eprintln!("root filesystem: {fs_bytes} bytes");
    assert!(
        fs_bytes > 3584 * 1024 * 1024,
        "the root filesystem was not resized: {fs_bytes} bytes"
    );
    // The ephemeral disk is used for data, as always.
    let mount = machine.succeed("findmnt -n -o SOURCE /var/vcap/data");
    assert_eq!(mount.trim(), "/dev/vdb2");

    // An agent restart: growpart says NOCHANGE, the bootstrap goes on.
    let restarted = Instant::now();
    machine.succeed("systemctl restart bosh-agent");
    vm.created = restarted;
    world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    // The agent answers only after its bootstrap: the restart's steps are on the console.
    vm.machine.console().poll().unwrap();
    let starts = vm
        .machine
        .console()
        .text()
        .matches("bootstrap step done step=\"root_disk\"")
        .count();
    assert_eq!(starts, 2, "the root_disk step ran at each agent start");
}
