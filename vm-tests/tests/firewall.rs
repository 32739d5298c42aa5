//! VM test of the agent's nftables firewall and of the disks of a VM without an ephemeral disk:
//! one boot of a VM whose root disk is bigger than the stemcell image (`root_disk_size`), with no
//! ephemeral disk (`ephemeral_disk_size: 0`), two raw ephemeral disks that are NVMe controllers
//! (`raw_ephemeral_disks`, `raw_ephemeral_disk_bus: nvme`) and one more NVMe disk standing for a
//! cloud's managed volume (`managed_nvme_disks`), like an AWS Nitro instance.
//!
//! * §6.9: table `inet bosh_agent` with `monit_access` (hook output, priority `filter - 1`, the
//!   reference's rules in order), `monit_access_jobs`, and `nats_access` letting only root reach
//!   NATS: vcap's connection to the NATS address is refused, root's goes through.
//! * §6.5 carve: with `CreatePartitionIfNoEphemeralDisk` (the stemcell's agent.json) the space
//!   after the root partition becomes swap (`/dev/vda2`) and data (`/dev/vda3` on
//!   `/var/vcap/data`), and the root partition is not grown (§6.5 root growth).
//! * §6.5 raw ephemeral: each raw disk, found by its serial (the settings' `/dev/nvme<i>n1` are
//!   the CPI's guess), is labelled GPT with one partition `raw-ephemeral-<i>`; the managed disk is
//!   not touched.
//! * §6.5 NVMe instance-storage discovery: with the raw labels wiped and
//!   `InstanceStorageManagedVolumePattern` added to `agent.json`, the restarted agent labels the
//!   NVMe disks that no managed-volume link points at, in device order.
//! * §6.9 `bosh-enable-monit-access`: vcap cannot reach monit's port until a job's rule lets it:
//!   a process in a BPM scope (`runc-bpm-<job>.scope`) gets one rule for its cgroup, tagged with
//!   the job and replaced on every run; a caller outside BPM gets one rule for vcap's uid.
//! * §6.5 `scsi` device path resolution: with `DevicePathResolutionType: scsi` in `agent.json`
//!   and the CPI's `persistent_disk_bus: scsi`, a persistent disk hot-plugged at lun 0 of a
//!   virtio-scsi controller is found by its id after a rescan, partitioned and mounted.
//! * §4.2 and §5.2 tmpfs mode (`env.bosh.agent.settings.tmpfs`): the settings live on a tmpfs
//!   at `bosh/settings` (0700), never in `bosh/settings.json`; an agent restart starts, a reboot
//!   is refused (`Refusing to boot`): the VM must be recreated.
//! * An agent restart changes no root disk partition and leaves each firewall rule once (chains
//!   flushed and refilled).

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::time::Instant;

use serde_json::{Value, json};
use vm_tests::harness::Machine;
use vm_tests::qemu_cpi::store;

use support::{PONG_TIMEOUT, SETTLE_TIMEOUT};

/// The root disk the CPI gives (the stemcell image is 3 GiB).
const ROOT_DISK_MIB: u64 = 6144;

/// Where the guest reaches NATS (the QEMU CPI's forward).
const NATS: &str = "10.0.2.100/4222";

/// The agent config's managed-volume pattern in the test: the managed NVMe disk's by-id link.
const MANAGED_VOLUMES: &str = "/dev/disk/by-id/nvme-*_managed*";

/// Connects to monit's port as vcap (after `bosh-enable-monit-access` with argument `enable`) and
/// prints how the connection ended: `status=124` when the packets were dropped, `status=1` when
/// they reached the port.
const MONIT_PROBE: &str = r#"#!/bin/bash
if [ "$1" = enable ]; then
    /var/vcap/bosh/bin/bosh-enable-monit-access || echo "enable failed"
fi
setpriv --reuid=vcap --regid=vcap --init-groups \
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2822' 2>/dev/null
echo "status=$?"
"#;

/// The NVMe device whose serial is `serial`, through its udev link.
fn nvme_device(machine: &mut Machine, serial: &str) -> String {
    machine
        .succeed(&format!("readlink -e /dev/disk/by-id/nvme-*_{serial}"))
        .trim()
        .to_owned()
}

/// The GPT partition names of `device`; empty when it has no partition table.
fn partition_names(machine: &mut Machine, device: &str) -> Vec<String> {
    let kind = machine.succeed(&format!("blkid -p -s PTTYPE -o value {device} || true"));
    if kind.trim().is_empty() {
        return Vec::new();
    }
    assert_eq!(kind.trim(), "gpt", "{device}");
    let table: Value = serde_json::from_str(&machine.succeed(&format!("sfdisk --json {device}")))
        .unwrap_or_else(|err| panic!("{device}: {err}"));
    partitions(&table)
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn partitions(table: &Value) -> Vec<Value> {
    table["partitiontable"]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn firewall_root_carve_and_nvme_raw_ephemeral_disks_on_a_vm_without_ephemeral_disk() {
    let mut world = support::world();
    let agent_id = uuid::Uuid::new_v4().to_string();
    let mut env = world.env(&agent_id).unwrap();
    env["bosh"]["agent"] = json!({"settings": {"tmpfs": true}});
    let networks = world.networks();
    let mut vm = world
        .create_vm_with_properties(
            &agent_id,
            networks,
            env,
            json!({"ephemeral_disk_size": 0, "root_disk_size": ROOT_DISK_MIB,
                   "raw_ephemeral_disks": [64, 48], "raw_ephemeral_disk_bus": "nvme",
                   "managed_nvme_disks": [32], "persistent_disk_bus": "scsi"}),
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

    // Tmpfs mode: the settings on their tmpfs only, the boot-once markers written.
    assert_eq!(
        machine
            .succeed("findmnt -n -o FSTYPE -M /var/vcap/bosh/settings")
            .trim(),
        "tmpfs"
    );
    assert_eq!(
        machine.succeed(
            "stat -c '%a %n' /var/vcap/bosh/settings /var/vcap/bosh/settings/settings.json"
        ),
        "700 /var/vcap/bosh/settings\n600 /var/vcap/bosh/settings/settings.json\n"
    );
    machine.fail("test -e /var/vcap/bosh/settings.json");
    machine
        .succeed("test -e /var/vcap/bosh/bootonce && test -e /var/vcap/bosh/canrestart/bootonce");

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

    // `bosh-enable-monit-access`: vcap's packets to monit's port are dropped (the connection
    // times out, status 124) until a job's rule lets them through (nothing listens there, so the
    // connection is refused at once, status 1). A job under BPM gets a rule for its cgroup, tagged
    // with its name and replaced when it runs again; a caller outside BPM one for vcap's uid.
    machine.succeed(&format!("cat > /tmp/monit-probe <<'EOF'\n{MONIT_PROBE}EOF"));
    let probe = |machine: &mut Machine, command: &str| -> String {
        let output = machine.succeed(command);
        output.lines().last().unwrap_or_default().to_owned()
    };
    assert_eq!(probe(machine, "bash /tmp/monit-probe"), "status=124");
    for _ in 0..2 {
        assert_eq!(
            probe(
                machine,
                "systemd-run --quiet --scope --unit=runc-bpm-hello bash /tmp/monit-probe enable"
            ),
            "status=1",
            "the job's processes reach the port"
        );
    }
    assert_eq!(
        probe(machine, "bash /tmp/monit-probe"),
        "status=124",
        "only the job's cgroup was let in"
    );
    let jobs_rules = |machine: &mut Machine| -> Vec<String> {
        machine
            .succeed("nft list chain inet bosh_agent monit_access_jobs")
            .lines()
            .map(str::trim)
            .filter(|line| line.contains("dport 2822"))
            .map(str::to_owned)
            .collect()
    };
    let rules_now = jobs_rules(machine);
    assert_eq!(rules_now.len(), 1, "{rules_now:#?}");
    assert!(
        rules_now[0].starts_with("socket cgroupv2 level 2 ")
            && rules_now[0].ends_with(
                "ip daddr 127.0.0.1 tcp dport 2822 log prefix \"bosh-monit-access: cgroup match: \" \
                 accept comment \"bosh-monit-access:hello\""
            ),
        "{rules_now:#?}"
    );
    let vcap_uid = machine.succeed("id -u vcap").trim().to_owned();
    machine.succeed("/var/vcap/bosh/bin/bosh-enable-monit-access");
    machine.succeed("/var/vcap/bosh/bin/bosh-enable-monit-access");
    let rules_now = jobs_rules(machine);
    assert_eq!(
        rules_now[1..],
        [format!(
            "meta skuid {vcap_uid} ip daddr 127.0.0.1 tcp dport 2822 \
             log prefix \"bosh-monit-access: UID {vcap_uid} match: \" accept"
        )],
        "{rules_now:#?}"
    );
    assert_eq!(probe(machine, "bash /tmp/monit-probe"), "status=1");

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

    // The raw ephemeral disks, each found by its serial; the managed disk left alone.
    let raw: Vec<String> = (0..2)
        .map(|index| nvme_device(machine, &store::raw_ephemeral_serial(&vm.cid, index)))
        .collect();
    let managed = nvme_device(machine, &store::managed_nvme_serial(&vm.cid, 0));
    eprintln!("raw ephemeral disks {raw:?}, managed volume {managed}");
    for (index, device) in raw.iter().enumerate() {
        assert_eq!(
            partition_names(machine, device),
            [format!("raw-ephemeral-{index}")],
            "{device}"
        );
        assert_eq!(
            machine
                .succeed(&format!("blkid -p -s TYPE -o value {device}p1 || true"))
                .trim(),
            "",
            "no filesystem on the raw partition of {device}"
        );
    }
    assert!(partition_names(machine, &managed).is_empty(), "{managed}");

    // The agent restarts with the raw labels wiped and the managed-volume pattern in its config:
    // instance storage is discovered, the root disk not repartitioned, each rule there once.
    let identity = "sfdisk --dump /dev/vda; blkid -s UUID -o value /dev/vda2 /dev/vda3";
    let before = machine.succeed(identity);
    let mut config: Value =
        serde_json::from_str(&machine.succeed("cat /var/vcap/bosh/agent.json")).unwrap();
    config["Platform"]["Linux"]["InstanceStorageManagedVolumePattern"] = json!(MANAGED_VOLUMES);
    // Persistent disks on this VM are SCSI disks (the CPI's `persistent_disk_bus`).
    config["Platform"]["Linux"]["DevicePathResolutionType"] = json!("scsi");
    machine.succeed(&format!(
        "cat > /var/vcap/bosh/agent.json <<'EOF'\n{config:#}\nEOF"
    ));
    machine.succeed(&format!("wipefs -a -q {}", raw.join(" ")));
    assert!(partition_names(machine, &raw[0]).is_empty());
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
    assert!(
        machine
            .console()
            .text()
            .contains("discovered instance storage"),
        "the restarted agent discovered the instance storage"
    );
    let mut in_order = raw.clone();
    in_order.sort();
    for (index, device) in in_order.iter().enumerate() {
        assert_eq!(
            partition_names(machine, device),
            [format!("raw-ephemeral-{index}")],
            "{device}"
        );
    }
    assert!(partition_names(machine, &managed).is_empty(), "{managed}");
    let table = machine.succeed("nft list table inet bosh_agent");
    for rule in [
        "tcp dport 2822 drop",
        "jump monit_access_jobs",
        "ip daddr 10.0.2.100 tcp dport 4222 drop",
    ] {
        assert_eq!(table.matches(rule).count(), 1, "{rule}:\n{table}");
    }

    // §6.5 `scsi` resolution against a real SCSI controller: the disk hot-plugged at a lun, the
    // hosts rescanned, the disk found by its id among `/dev/disk/by-id/`, partitioned and mounted.
    let cpi = support::cpi(&world);
    let disk = world
        .block_on(cpi.create_disk(512, &json!({}), Some(&vm.cid)))
        .unwrap_or_else(|err| panic!("create_disk: {err:#}"));
    let hint = world
        .block_on(cpi.attach_disk(&vm.cid, &disk))
        .unwrap_or_else(|err| panic!("attach_disk: {err:#}"));
    assert_eq!(hint["lun"], "0", "{hint}");
    let serial = hint["id"].as_str().unwrap().to_owned();
    for (method, args) in [
        ("add_persistent_disk", vec![json!(disk), hint.clone()]),
        ("mount_disk", vec![json!(disk)]),
    ] {
        world
            .call(&agent_id, method, args, PONG_TIMEOUT)
            .unwrap_or_else(|err| panic!("{method}: {err:#}"));
    }
    let machine = &mut vm.machine;
    let device = machine
        .succeed(&format!(
            "readlink -e /dev/disk/by-id/scsi-*{serial} | sort -u"
        ))
        .trim()
        .to_owned();
    assert!(device.starts_with("/dev/sd"), "{device}");
    assert_eq!(
        machine
            .succeed("findmnt -n -o SOURCE -M /var/vcap/store")
            .trim(),
        format!("{device}1")
    );
    let hctl = machine.succeed(&format!("lsblk -dno HCTL {device}"));
    assert!(
        hctl.trim().ends_with(":0:0:0"),
        "channel 0, target 0, lun 0: {hctl}"
    );

    // A reboot in tmpfs mode: the agent refuses to start (the service manager keeps trying).
    let boot_id = vm.machine.boot_id();
    world
        .reboot_vm(&vm.cid)
        .unwrap_or_else(|err| panic!("{err:#}"));
    vm.machine.wait_for_reboot(&boot_id, PONG_TIMEOUT);
    vm.machine
        .wait_for_console("Refusing to boot", PONG_TIMEOUT);
    vm.machine
        .fail("test -e /var/vcap/bosh/canrestart/bootonce");
}
