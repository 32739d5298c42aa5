//! End-to-end tests of the rest of the Linux platform on one booted stemcell on a dynamic network:
//! its address from the default route in `apply` and `get_state` (§4.3), the passwords,
//! vcap's authorized keys, `remove_dev_tools` and `remove_static_libraries` from `env.bosh`, the
//! hardening mounts (§6.7) and the data dir's modes (§6.1), systemd-networkd restarted over D-Bus, IPv6 enabled without a reboot, the NTP file,
//! `ssh` setup and cleanup,
//! trusted certificates (`update_settings`), `sync_dns`, `fetch_logs system`,
//! `delete_arp_entries`, and `shutdown` last (QEMU exits). Timings are printed, never asserted.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest as _;

use support::{PONG_TIMEOUT, SETTLE_TIMEOUT};
use vm_tests::harness::world::{DNS, GATEWAY, VM_IP};

const CALL_TIMEOUT: Duration = Duration::from_secs(120);
const NTP_SERVERS: [&str; 2] = ["10.0.2.2", "ntp.vm-tests.invalid"];
const SSH_USER: &str = "bosh_abc";
const ARP_IP: &str = "10.0.2.77";
const DNS_RECORD: (&str, &str) = ("10.0.2.50", "db.vm-tests.bosh");
/// `env.bosh.password`: a crypt(3) hash, set as it is for root and vcap.
const PASSWORD_HASH: &str = "$6$vmtests$Jm0kyVNpB4m8bdEhp4M3c1ZLWMrG0tjQP8FSLAXsmB9qTzEbgi2ez.TcjuYEG1yHfNRpfBuqXjmBpE5iP6yS/0";
/// `env.bosh.authorized_keys`: vcap's keys.
const VCAP_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLaRQ6s9v2QQEOTM8zVyCMXf4uwrkR7qlDnsvnJxtvS vm-tests";

/// Adds NTP servers to the CPI's `agent` section (the CPI reads its config on every request, so
/// the VMs created afterwards get them in their settings).
fn give_ntp_servers(world: &vm_tests::harness::World) {
    let path = world.dir().join("cpi.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["agent"]["ntp"] = json!(NTP_SERVERS);
    std::fs::write(&path, config.to_string()).unwrap();
}

/// One dynamic network, the default for DNS and the gateway.
fn dynamic_networks() -> Value {
    json!({"default": {
        "type": "dynamic", "default": ["dns", "gateway"], "dns": [DNS], "cloud_properties": {}
    }})
}

/// A throwaway CA certificate, as a director's `trusted_certs` carries.
fn test_ca_pem() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let ca = thin_director::pki::Ca::load_or_create(&dir.path().join("ca")).unwrap();
    let pem = ca.certificate().trim().to_owned();
    (dir, pem)
}

#[test]
fn the_os_operations_work_on_a_booted_stemcell() {
    let mut world = support::world();
    give_ntp_servers(&world);
    let agent_id = uuid::Uuid::new_v4().to_string();
    let mut env = world.env(&agent_id).unwrap();
    env["bosh"]["ipv6"] = json!({"enable": true});
    env["bosh"]["password"] = json!(PASSWORD_HASH);
    env["bosh"]["authorized_keys"] = json!([VCAP_KEY]);
    env["bosh"]["remove_dev_tools"] = json!(true);
    env["bosh"]["remove_static_libraries"] = json!(true);
    // A dynamic network: QEMU's DHCP server gives the guest VM_IP.
    let networks = dynamic_networks();
    let mut vm = world
        .create_vm_with(&agent_id, networks.clone(), env)
        .unwrap_or_else(|err| panic!("{err:#}"));
    // The boot reaching pong needs the networkd files applied: a restart of systemd-networkd,
    // which the agent asks systemd for over D-Bus.
    let timings = world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    eprintln!("boot timings: {timings}");
    let vm_dir = world.vm_dir(&vm.cid);
    let machine = &mut vm.machine;
    machine.wait_for_unit("bosh-agent.service", SETTLE_TIMEOUT);
    eprintln!(
        "agent bootstrap: {}",
        support::bootstrap_steps(machine.console().text())
    );

    // §4.3 a DHCP network's address comes from the default route: `apply` records it in the
    // spec, which `get_state` shows the director (its only way to learn a dynamic address).
    // QEMU's DHCP server leaves the router out of its offers with `restrict=on`, so the route a
    // cloud's DHCP server would give is added here.
    vm.machine
        .succeed(&format!("ip route replace default via {GATEWAY}"));
    world
        .call(
            &agent_id,
            "apply",
            vec![json!({
                "deployment": "vm-tests", "name": "os", "index": 0, "id": agent_id,
                "az": "z1", "networks": networks,
            })],
            CALL_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("apply: {err:#}"));
    let state = world
        .call(&agent_id, "get_state", vec![], CALL_TIMEOUT)
        .unwrap_or_else(|err| panic!("get_state: {err:#}"));
    let default = &state["networks"]["default"];
    let machine = &mut vm.machine;
    assert_eq!(
        (&default["ip"], &default["netmask"], &default["gateway"]),
        (&json!(VM_IP), &json!("255.255.255.0"), &json!(GATEWAY)),
        "{state:#}\n{}",
        machine.succeed(
            "ip route; cat /proc/net/route; head -50 /etc/systemd/network/*.network; networkctl status --no-pager || true"
        )
    );

    // §5.1 passwords: root's and vcap's hashes are the env's (keep_root_password is off).
    let shadow = machine.succeed("getent shadow root vcap | cut -d: -f1,2");
    assert_eq!(
        shadow,
        format!("root:{PASSWORD_HASH}\nvcap:{PASSWORD_HASH}\n")
    );
    // §5.1 vcap's authorized keys, in a 0700 .ssh owned by vcap.
    assert_eq!(
        machine
            .succeed("cat /home/vcap/.ssh/authorized_keys")
            .trim(),
        VCAP_KEY
    );
    assert_eq!(
        machine.succeed("stat -c '%a %U:%G %n' /home/vcap/.ssh /home/vcap/.ssh/authorized_keys"),
        "700 vcap:vcap /home/vcap/.ssh\n600 vcap:vcap /home/vcap/.ssh/authorized_keys\n"
    );

    // §5.1 steps 29-30: the stemcell's listed compilers, headers and static libraries are gone,
    // the rest of the system is not.
    for listed in [
        "/usr/bin/x86_64-linux-gnu-gcc-12",
        "/usr/bin/make",
        "/usr/include/stdio.h",
        "/usr/lib/x86_64-linux-gnu/libc.a",
    ] {
        machine.succeed(&format!(
            "grep -qx {listed} /var/vcap/bosh/etc/dev_tools_file_list /var/vcap/bosh/etc/static_libraries_list"
        ));
        machine.fail(&format!("test -e {listed}"));
    }
    machine.succeed("test -x /usr/bin/bash && test -e /usr/lib/x86_64-linux-gnu/libc.so.6");

    // §6.7 hardening: each mount point with its options.
    for (target, options) in [
        ("/tmp", &["nodev", "nosuid", "noexec"][..]),
        ("/var/tmp", &["nodev", "nosuid", "noexec"]),
        ("/var/log", &["nodev", "nosuid", "noexec"]),
        ("/opt", &["nodev"]),
        ("/var/opt", &["nodev"]),
        ("/home", &["nodev", "nosuid"]),
        ("/dev/shm", &["nodev", "nosuid", "noexec"]),
    ] {
        let mounted = machine.succeed(&format!("findmnt -n -o OPTIONS -M {target} | tail -n 1"));
        let mounted: Vec<&str> = mounted.trim().split(',').collect();
        for option in options {
            assert!(
                mounted.contains(option),
                "{target} lacks {option}: {mounted:?}"
            );
        }
    }
    // /tmp and /var/tmp are the data disk's root_tmp, /var/log its root_log.
    assert_eq!(
        machine.succeed("stat -c '%a %U:%G' /tmp /var/tmp /var/vcap/data/root_tmp"),
        "1777 root:vcap\n".repeat(3)
    );
    assert_eq!(
        machine
            .succeed("stat -c '%i' /tmp /var/vcap/data/root_tmp | uniq | wc -l")
            .trim(),
        "1",
        "/tmp is a bind mount of root_tmp"
    );
    machine.fail("cp /bin/true /tmp/exe && /tmp/exe");
    // §6.1 the data dir's modes and owners.
    assert_eq!(
        machine.succeed(
            "cd /var/vcap/data && stat -c '%a %U:%G %n' sys sys/log sys/run jobs packages blobs \
             dynamic_disks sensitive_blobs"
        ),
        "750 root:vcap sys\n750 root:vcap sys/log\n750 root:vcap sys/run\n750 root:vcap jobs\n\
         755 root:vcap packages\n700 root:vcap blobs\n700 root:vcap dynamic_disks\n\
         700 root:vcap sensitive_blobs\n"
    );
    assert_eq!(
        machine
            .succeed("findmnt -n -o FSTYPE -M /var/vcap/data/sys/run")
            .trim(),
        "tmpfs"
    );

    // systemd-networkd and systemd-resolved were restarted by the manager (no script, no
    // systemctl: the stemcell's restart_networking is not run): both entered their active state
    // after the agent started, though both start before it at boot. (The journal of the boot is
    // hidden once /var/log is bind-mounted, so it cannot tell.)
    let monotonic = |machine: &mut vm_tests::harness::Machine, unit: &str, property: &str| {
        let value = machine.succeed(&format!("systemctl show -P {property} {unit}"));
        value
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{unit} {property}: {value:?}"))
    };
    let agent_started = monotonic(
        machine,
        "bosh-agent.service",
        "ExecMainStartTimestampMonotonic",
    );
    for unit in ["systemd-networkd.service", "systemd-resolved.service"] {
        let active = monotonic(machine, unit, "ActiveEnterTimestampMonotonic");
        assert!(
            active > agent_started,
            "{unit} active since {active} µs, the agent started at {agent_started} µs: not restarted"
        );
    }

    // IPv6 (env.bosh.ipv6.enable): on at once, no reboot.
    let ipv6_sysctls = "sysctl -n net.ipv6.conf.all.disable_ipv6 net.ipv6.conf.default.disable_ipv6 \
                        net.ipv6.conf.all.accept_ra net.ipv6.conf.default.accept_ra";
    assert_eq!(machine.succeed(ipv6_sysctls), "0\n0\n1\n1\n");

    // NTP: the settings' servers on one line.
    assert_eq!(
        machine.succeed("cat /var/vcap/bosh/etc/ntpserver"),
        NTP_SERVERS.join(" ")
    );

    // ssh setup: a user in the four groups with the key, a 0700 home; the key logs in.
    machine.succeed("rm -f /root/vmtest_key*; ssh-keygen -q -t ed25519 -N '' -f /root/vmtest_key");
    let public_key = machine
        .succeed("cat /root/vmtest_key.pub")
        .trim()
        .to_owned();
    let setup = world
        .call(
            &agent_id,
            "ssh",
            vec![
                json!("setup"),
                json!({"user": SSH_USER, "public_key": public_key}),
            ],
            CALL_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("ssh setup: {err:#}"));
    assert_eq!(setup["command"], "setup", "{setup:#}");
    assert_eq!(setup["status"], "success", "{setup:#}");
    assert_eq!(setup["ip"], VM_IP, "{setup:#}");
    let machine = &mut vm.machine;
    let host_keys = machine.succeed("cat /etc/ssh/ssh_host_*_key.pub");
    let answered_key = setup["host_public_key"].as_str().unwrap_or_default().trim();
    assert!(
        !answered_key.is_empty() && host_keys.lines().any(|line| line.trim() == answered_key),
        "{setup:#}\nhost keys:\n{host_keys}"
    );
    let home = format!("/var/vcap/bosh_ssh/{SSH_USER}");
    let mut groups: Vec<String> = machine
        .succeed(&format!("id -Gn {SSH_USER}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        ["admin", SSH_USER, "bosh_sshers", "bosh_sudoers", "vcap"]
    );
    assert_eq!(
        machine.succeed(&format!("getent passwd {SSH_USER} | cut -d: -f6,7")),
        format!("{home}:/bin/bash\n")
    );
    assert_eq!(
        machine.succeed(&format!(
            "stat -c '%a %U' {home} {home}/.ssh {home}/.ssh/authorized_keys"
        )),
        format!("700 {SSH_USER}\n700 {SSH_USER}\n600 {SSH_USER}\n")
    );
    assert_eq!(
        machine.succeed(&format!("cat {home}/.ssh/authorized_keys")),
        format!("{public_key}\n")
    );
    machine.wait_until_succeeds("systemctl is-active ssh.service", SETTLE_TIMEOUT);
    let login = machine.succeed(&format!(
        "ssh -i /root/vmtest_key -o BatchMode=yes -o StrictHostKeyChecking=no \
         -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR {SSH_USER}@127.0.0.1 id -un"
    ));
    assert_eq!(login, format!("{SSH_USER}\n"));

    // ssh cleanup with the director's regex: the user and its home are gone.
    let cleanup = world
        .call(
            &agent_id,
            "ssh",
            vec![json!("cleanup"), json!({"user_regex": "^bosh_abc$"})],
            CALL_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("ssh cleanup: {err:#}"));
    assert_eq!(
        cleanup,
        json!({"command": "cleanup", "status": "success"}),
        "{cleanup:#}"
    );
    let machine = &mut vm.machine;
    machine.fail(&format!("id {SSH_USER}"));
    machine.fail(&format!("test -e {home}"));
    assert!(
        machine.succeed("getent passwd vcap").starts_with("vcap:"),
        "vcap is not a bosh_ user"
    );

    // update_settings with a trusted CA: its file, and the system bundle holds it.
    let (_ca_dir, ca_pem) = test_ca_pem();
    let updated = world
        .call(
            &agent_id,
            "update_settings",
            vec![json!({"trusted_certs": ca_pem, "disk_associations": []})],
            CALL_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("update_settings: {err:#}"));
    assert_eq!(updated, json!("ok"), "{updated:#}");
    let machine = &mut vm.machine;
    assert_eq!(
        machine.succeed("ls /usr/local/share/ca-certificates/"),
        "bosh-trusted-cert-1.crt\n"
    );
    assert_eq!(
        machine.succeed("cat /usr/local/share/ca-certificates/bosh-trusted-cert-1.crt"),
        format!("{ca_pem}\n")
    );
    let body: String = ca_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");
    let bundle = machine.succeed("cat /etc/ssl/certs/ca-certificates.crt");
    assert!(bundle.contains(&body), "the system bundle lacks the CA");

    // sync_dns: the records blob from the blobstore becomes /etc/hosts lines.
    let records = json!({
        "version": 7,
        "records": [[DNS_RECORD.0, DNS_RECORD.1]],
        "record_keys": ["id", "domain"], "record_infos": [],
    })
    .to_string();
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(records.as_bytes()));
    machine.succeed(&format!(
        "mkdir -p /var/vcap/data/local-blobstore && printf '%s' '{records}' > /var/vcap/data/local-blobstore/dns-blob-7"
    ));
    let synced = world
        .call(
            &agent_id,
            "sync_dns",
            vec![json!("dns-blob-7"), json!(digest), json!(7)],
            CALL_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("sync_dns: {err:#}"));
    assert_eq!(synced, json!("synced"));
    let machine = &mut vm.machine;
    let hosts = machine.succeed("cat /etc/hosts");
    assert!(
        hosts
            .lines()
            .any(|line| line.split_whitespace().eq([DNS_RECORD.0, DNS_RECORD.1])),
        "{hosts}"
    );
    assert!(hosts.contains(&agent_id), "the hostname stays: {hosts}");
    assert_eq!(
        machine.succeed("cat /var/vcap/instance/dns/records.json"),
        records
    );
    assert_eq!(
        machine
            .succeed("stat -c '%a %U %G' /var/vcap/instance/dns/records.json")
            .trim(),
        "640 root vcap"
    );

    // fetch_logs system: the tarball in the blobstore holds a file seeded under /var/log.
    machine.succeed("echo seeded > /var/log/vm-tests-system.log");
    let fetched = world
        .call(
            &agent_id,
            "fetch_logs",
            vec![json!("system"), json!([])],
            CALL_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("fetch_logs: {err:#}"));
    let blob_id = fetched["blobstore_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{fetched:#}"))
        .to_owned();
    let machine = &mut vm.machine;
    let listing = machine.succeed(&format!(
        "tar -tzf /var/vcap/data/local-blobstore/{blob_id}"
    ));
    assert!(
        listing
            .lines()
            .any(|entry| entry.ends_with("/var/log/vm-tests-system.log")),
        "{listing}"
    );

    // delete_arp_entries: a seeded neighbour entry is flushed.
    let interface = machine
        .succeed("ls /sys/class/net | grep -v '^lo$'")
        .trim()
        .to_owned();
    machine.succeed(&format!(
        "ip neigh replace {ARP_IP} lladdr 52:54:00:aa:bb:cc dev {interface} nud stale"
    ));
    assert!(
        machine
            .succeed(&format!("ip neigh show to {ARP_IP}"))
            .contains(ARP_IP)
    );
    world
        .call(
            &agent_id,
            "delete_arp_entries",
            vec![json!({"ips": [ARP_IP]})],
            CALL_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("delete_arp_entries: {err:#}"));
    let machine = &mut vm.machine;
    assert_eq!(
        machine.succeed(&format!("ip neigh show to {ARP_IP}")),
        "",
        "the entry is flushed"
    );

    // IPv6 turned off behind the agent's back is back on after an agent restart (the bootstrap
    // enables it on every start, still without a reboot).
    let boot_id = machine.boot_id();
    machine.succeed(
        "sysctl -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
         && systemctl restart bosh-agent.service",
    );
    world
        .wait_for_pong(&mut vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let machine = &mut vm.machine;
    machine.wait_until_succeeds(
        "test \"$(sysctl -n net.ipv6.conf.all.disable_ipv6)\" = 0",
        SETTLE_TIMEOUT,
    );
    assert_eq!(machine.succeed(ipv6_sysctls), "0\n0\n1\n1\n");
    assert_eq!(machine.boot_id(), boot_id, "no reboot");

    // shutdown: the VM powers off and QEMU exits.
    let asked = Instant::now();
    let answer = world.call(&agent_id, "shutdown", vec![], Duration::from_secs(30));
    eprintln!("shutdown answered: {answer:?}");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while vm_tests::qemu_cpi::vm::running_pid(&vm_dir).is_some() {
        assert!(
            Instant::now() < deadline,
            "QEMU still runs {SETTLE_TIMEOUT:?} after shutdown"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "shutdown → QEMU exited in {:.1} s",
        asked.elapsed().as_secs_f64()
    );
    let console = std::fs::read(vm_dir.join("console.log")).unwrap_or_default();
    let console = String::from_utf8_lossy(&console);
    let tail: String = console
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        console.contains("reboot: Power down"),
        "the guest did not power off; the console ends (last line first):\n{tail}"
    );
}
