//! VM test of the agent's nftables firewall and of the disks of a VM without an ephemeral disk:
//! one boot of a VM whose root disk is bigger than the stemcell image (`root_disk_size`), with no
//! ephemeral disk (`ephemeral_disk_size: 0`) and one raw ephemeral disk (`raw_ephemeral_disks`).
//!
//! * §6.9: table `inet bosh_agent` with `monit_access` (hook output, priority `filter - 1`, the
//!   reference's rules in order), `monit_access_jobs`, and `nats_access` letting only root reach
//!   NATS: vcap's connection to the NATS address is refused, root's goes through.
//! * §6.5 carve: with `CreatePartitionIfNoEphemeralDisk` (the stemcell's agent.json) the space
//!   after the root partition becomes swap (`/dev/vda2`) and data (`/dev/vda3` on
//!   `/var/vcap/data`), and the root partition is not grown (§6.5 root growth).
//! * §6.5 raw ephemeral: the raw disk is labelled GPT with one partition `raw-ephemeral-0`.
//! * An agent restart changes no partition and leaves each firewall rule once (chains flushed and
//!   refilled).

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::time::Instant;

use serde_json::{Value, json};

use support::{PONG_TIMEOUT, SETTLE_TIMEOUT};

/// The root disk the CPI gives (the stemcell image is 3 GiB).
const ROOT_DISK_MIB: u64 = 6144;

/// Where the guest reaches NATS (the QEMU CPI's forward).
const NATS: &str = "10.0.2.100/4222";

fn partitions(table: &Value) -> Vec<Value> {
    table["partitiontable"]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn firewall_root_carve_and_raw_ephemeral_disk_on_a_vm_without_ephemeral_disk() {
    let mut world = support::world();
    let agent_id = uuid::Uuid::new_v4().to_string();
    let env = world.env(&agent_id).unwrap();
    let networks = world.networks();
    let mut vm = world
        .create_vm_with_properties(
            &agent_id,
            networks,
            env,
            json!({"ephemeral_disk_size": 0, "root_disk_size": ROOT_DISK_MIB,
                   "raw_ephemeral_disks": [64]}),
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

    // The firewall.
    let table = machine.succeed("nft list table inet bosh_agent");
    eprintln!("{table}");
    let chain = |name: &str| -> String {
        let start = table
            .find(&format!("chain {name} {{"))
            .unwrap_or_else(|| panic!("no chain {name} in:\n{table}"));
        let body = &table[start..];
        body[..body.find("\n\t}").unwrap_or(body.len())].to_owned()
    };
    let rules = |chain: &str| -> Vec<String> {
        chain
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("type "))
            .map(str::to_owned)
            .collect()
    };
    let monit = chain("monit_access");
    assert!(
        monit.contains("type filter hook output priority filter - 1; policy accept;"),
        "{monit}"
    );
    assert_eq!(
        rules(&monit),
        [
            "jump monit_access_jobs",
            "ct state established,related accept",
            "meta skuid 0 ip daddr 127.0.0.1 tcp dport 2822 accept",
            "ip daddr 127.0.0.1 tcp dport 2822 drop",
        ],
        "{monit}"
    );
    assert!(rules(&chain("monit_access_jobs")).is_empty(), "{table}");
    let nats = chain("nats_access");
    assert!(
        nats.contains("type filter hook output priority filter - 1; policy accept;"),
        "{nats}"
    );
    assert_eq!(
        rules(&nats),
        [
            "ct state established,related accept",
            "meta skuid 0 ip daddr 10.0.2.100 tcp dport 4222 accept",
            "ip daddr 10.0.2.100 tcp dport 4222 drop",
        ],
        "{nats}"
    );
    // Only root reaches NATS.
    let connect = format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{NATS}'");
    machine.succeed(&connect);
    machine.fail(&format!("runuser -u vcap -- {connect}"));

    // The root disk: swap and data carved after the root partition, which kept its size.
    let dump: Value = serde_json::from_str(&machine.succeed("sfdisk --json /dev/vda")).unwrap();
    let parts = partitions(&dump);
    assert_eq!(parts.len(), 3, "{dump:#}");
    let sectors = |index: usize, field: &str| parts[index][field].as_u64().unwrap();
    assert_eq!(
        (sectors(0, "start") + sectors(0, "size")) * 512,
        3072 * 1024 * 1024,
        "the root partition was not grown: {dump:#}"
    );
    assert_eq!(
        (sectors(2, "start") + sectors(2, "size")) * 512,
        ROOT_DISK_MIB * 1024 * 1024,
        "the data partition ends at the disk's end: {dump:#}"
    );
    let swaps = machine.succeed("swapon --show=NAME,TYPE --noheadings");
    assert!(
        swaps
            .lines()
            .any(|line| line.split_whitespace().eq(["/dev/vda2", "partition"])),
        "{swaps}"
    );
    let mount = machine.succeed("findmnt -n -o SOURCE,FSTYPE /var/vcap/data");
    assert_eq!(
        mount.split_whitespace().collect::<Vec<_>>(),
        ["/dev/vda3", "ext4"]
    );

    // The raw ephemeral disk (the only other disk: /dev/vdb).
    let raw: Value = serde_json::from_str(&machine.succeed("sfdisk --json /dev/vdb")).unwrap();
    assert_eq!(raw["partitiontable"]["label"], "gpt", "{raw:#}");
    let names: Vec<Value> = partitions(&raw).iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, [json!("raw-ephemeral-0")], "{raw:#}");
    assert_eq!(
        machine
            .succeed("blkid -p -s TYPE -o value /dev/vdb1 || true")
            .trim(),
        "",
        "no filesystem on the raw partition"
    );

    // The agent restarts: nothing repartitioned, each rule once.
    let identity = "sfdisk --dump /dev/vda; sfdisk --dump /dev/vdb; blkid -s UUID -o value /dev/vda2 /dev/vda3";
    let before = machine.succeed(identity);
    let restarted = Instant::now();
    machine.succeed("systemctl restart bosh-agent");
    vm.created = restarted;
    world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let machine = &mut vm.machine;
    // The agent answers only after its bootstrap: the restart's steps are on the console.
    machine.console().poll().unwrap();
    let starts = machine
        .console()
        .text()
        .matches("bootstrap step done step=\"firewall\"")
        .count();
    assert_eq!(starts, 2, "the firewall step ran at each agent start");
    assert_eq!(machine.succeed(identity), before);
    let table = machine.succeed("nft list table inet bosh_agent");
    for rule in [
        "tcp dport 2822 drop",
        "jump monit_access_jobs",
        "ip daddr 10.0.2.100 tcp dport 4222 drop",
    ] {
        assert_eq!(table.matches(rule).count(), 1, "{rule}:\n{table}");
    }
}
