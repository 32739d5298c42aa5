//! The whole Linux bootstrap on a fake VM (a temporary root with `/sys`, `/proc`, `/dev` and
//! `/etc`, a recording runner and a recording service manager): a first boot runs every command in
//! the reference's order, and a restart on a set-up VM neither partitions, formats, mounts nor
//! restarts anything.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use settings::Dirs;
use settings::agent_config::LinuxOptions;
use settings::model::{DiskObject, DiskSpec, Network, Networks};

use crate::HostPaths;
use crate::Platform;
use crate::bootstrap::{Input, Step};
use crate::linux::networkd::{NETWORKD_UNIT, RESOLVED_UNIT};
use crate::linux::systemd::RecordingSystemd;
use crate::linux::{LinuxPlatform, Timing, certs, device_path, partition};
use crate::testing::{RecordingRunner, Reply};

const MAC: &str = "52:54:00:12:34:56";
const SERIAL: &str = "eph-0123456789abcdef";
const GIB: u64 = 1024 * 1024 * 1024;
const IP_JSON: &str =
    r#"[{"ifname":"ens3","addr_info":[{"family":"inet","local":"10.0.2.15","prefixlen":24}]}]"#;

struct Vm {
    root: tempfile::TempDir,
    vdb: String,
    systemd: Arc<RecordingSystemd>,
}

impl Vm {
    fn new() -> Vm {
        let root = tempfile::tempdir().unwrap();
        let vm = Vm {
            root,
            vdb: String::new(),
            systemd: Arc::default(),
        };
        vm.write(
            "etc/passwd",
            "root:x:0:0::/root:/bin/bash\nvcap:x:1000:1000::/home/vcap:/bin/bash\n",
        );
        vm.write("etc/group", "root:x:0:\nutmp:x:43:\nvcap:x:1000:\n");
        vm.write("sys/class/net/ens3/address", &format!("{MAC}\n"));
        std::fs::create_dir_all(vm.path("sys/class/net/ens3/device")).unwrap();
        vm.write("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        vm.write("dev/vdb", "");
        std::fs::create_dir_all(vm.path("dev/disk/by-id")).unwrap();
        std::os::unix::fs::symlink(
            "../../vdb",
            vm.path(&format!("dev/disk/by-id/virtio-{SERIAL}")),
        )
        .unwrap();
        vm.write("sys/class/block/vdb/size", &format!("{}\n", 10 * GIB / 512));
        vm.write("proc/meminfo", "MemTotal:        1048576 kB\n");
        vm.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
        vm.write("var/vcap/bosh/bin/restart_networking", "#!/bin/sh\n");
        let vdb = std::fs::canonicalize(vm.path("dev/vdb"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        Vm { vdb, ..vm }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.root.path().join(name)
    }

    fn text(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn platform(&self, runner: Arc<RecordingRunner>) -> LinuxPlatform {
        let options = LinuxOptions {
            device_path_resolution_type: "virtio".into(),
            partitioner_type: "parted".into(),
            create_partition_if_no_ephemeral_disk: true,
            service_manager: "systemd".into(),
            ..LinuxOptions::default()
        };
        let mut resolver = device_path::Resolver::new("virtio");
        resolver.id_wait = Duration::ZERO;
        resolver.mapped_wait = Duration::ZERO;
        LinuxPlatform::with_options(
            HostPaths::with_root(self.root.path()),
            &Dirs::new(self.path("var/vcap")),
            runner.clone(),
            options,
        )
        .with_prober(Arc::new(crate::linux::probe::CliProber(runner)))
        .with_timing(Timing {
            resolver,
            partition_retry: partition::Retry {
                tries: 1,
                delay: Duration::ZERO,
            },
            address_tries: 1,
            address_retry_delay: Duration::ZERO,
            cert_update: certs::UpdateRetry::default(),
        })
        .with_systemd(self.systemd.clone())
    }
}

fn settings() -> settings::Settings {
    let mut settings = settings::Settings {
        agent_id: "agent-1".into(),
        ..settings::Settings::default()
    };
    settings.networks = Networks(
        [(
            "default".to_owned(),
            Network {
                ip: "10.0.2.15".into(),
                netmask: "255.255.255.0".into(),
                gateway: "10.0.2.2".into(),
                default: vec!["dns".into(), "gateway".into()],
                dns: vec!["10.0.2.3".into()],
                mac: MAC.into(),
                ..Network::default()
            },
        )]
        .into_iter()
        .collect(),
    );
    settings.disks.system = "/dev/vda".into();
    settings.disks.ephemeral = Some(DiskSpec::Object(DiskObject {
        id: SERIAL.into(),
        path: "/dev/vdb".into(),
        ..DiskObject::default()
    }));
    settings.env.bosh.password = "$6$salt$hash".into();
    settings.env.bosh.authorized_keys = vec!["ssh-ed25519 AAAA operator".into()];
    settings
}

fn run_all(platform: &LinuxPlatform, settings: &settings::Settings) {
    let input = Input {
        settings,
        iaas_public_key: Some("ssh-rsa BBBB iaas"),
    };
    for step in Step::ORDER {
        platform
            .bootstrap(step, &input)
            .unwrap_or_else(|err| panic!("{}: {err:?}", step.name()));
    }
}

#[test]
fn a_first_boot_runs_every_command_in_order() {
    let vm = Vm::new();
    vm.write(
        "proc/self/mountinfo",
        &format!(
            "22 1 252:1 / / rw,relatime - ext4 /dev/vda1 rw\n26 22 0:25 / {} rw,nosuid,nodev - tmpfs tmpfs rw\n",
            vm.text("dev/shm")
        ),
    );
    let (vdb, vdb1, vdb2) = (
        vm.vdb.clone(),
        format!("{}1", vm.vdb),
        format!("{}2", vm.vdb),
    );
    let data = |name: &str| vm.text(&format!("var/vcap/data/{name}"));
    let ssh = vm.text("home/vcap/.ssh");
    let keys = format!("{ssh}/authorized_keys");
    let base_data = vm.text("var/vcap/data");
    let owned: Vec<(Vec<String>, Reply)> = [
        (vec!["chown", "vcap:vcap", &ssh], ""),
        (vec!["chown", "vcap:vcap", &keys], ""),
        (vec!["usermod", "-p", "$6$salt$hash", "root"], ""),
        (vec!["usermod", "-p", "$6$salt$hash", "vcap"], ""),
        (vec!["hostname", "agent-1"], ""),
        (vec!["ip", "-j", "addr", "show", "dev", "ens3"], IP_JSON),
        (
            vec!["parted", "-m", &vdb, "unit", "B", "print"],
            "FAIL:Error: /dev/vdb: unrecognised disk label",
        ),
        (vec!["wipefs", "--force", "-a", &vdb], ""),
        (vec!["parted", "-s", &vdb, "mklabel", "gpt"], ""),
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
            "",
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
            "",
        ),
        (vec!["partprobe", &vdb], ""),
        (vec!["udevadm", "settle"], ""),
        (vec!["blkid", "-p", "-o", "export", &vdb1], "EXIT2"),
        (vec!["mkswap", &vdb1], ""),
        (vec!["swapon", &vdb1], ""),
        (vec!["blkid", "-p", "-o", "export", &vdb2], "EXIT2"),
        (vec!["mke2fs", "-t", "ext4", "-j", &vdb2], ""),
        (vec!["mount", &vdb2, &base_data], ""),
        (
            vec![
                "mount",
                "-o",
                "remount,noexec,nodev,nosuid",
                &vm.text("dev/shm"),
            ],
            "",
        ),
        (vec!["chown", "root:utmp", &data("root_log/btmp")], ""),
        (vec!["chown", "root:utmp", &data("root_log/wtmp")], ""),
        (vec!["chown", "root:utmp", &data("root_log/lastlog")], ""),
        (
            vec![
                "mount",
                "-o",
                "bind",
                &data("root_log"),
                &vm.text("var/log"),
            ],
            "",
        ),
        (vec!["chown", "root:root", &data("root_var_opt")], ""),
        (
            vec![
                "mount",
                "-o",
                "bind",
                &data("root_var_opt"),
                &vm.text("var/opt"),
            ],
            "",
        ),
        (vec!["chown", "root:root", &data("root_opt")], ""),
        (
            vec!["mount", "-o", "bind", &data("root_opt"), &vm.text("opt")],
            "",
        ),
        (vec!["chown", "root:vcap", &data("sys")], ""),
        (vec!["chown", "root:vcap", &data("sys/log")], ""),
        (vec!["chown", "root:vcap", &data("jobs")], ""),
        (vec!["chown", "root:vcap", &data("sensitive_blobs")], ""),
        (vec!["chown", "root:vcap", &data("dynamic_disks")], ""),
        (vec!["chown", "root:vcap", &data("packages")], ""),
        (
            vec![
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "size=16m,mode=0750",
                "tmpfs",
                &data("sys/run"),
            ],
            "",
        ),
        (vec!["chown", "root:vcap", &data("sys/run")], ""),
        (vec!["chown", "root:vcap", &vm.text("tmp")], ""),
        (vec!["chown", "root:vcap", &vm.text("var/tmp")], ""),
        (vec!["chown", "root:vcap", &data("root_tmp")], ""),
        (
            vec!["mount", "-o", "bind", &data("root_tmp"), &vm.text("tmp")],
            "",
        ),
        (
            vec![
                "mount",
                "-o",
                "bind",
                &data("root_tmp"),
                &vm.text("var/tmp"),
            ],
            "",
        ),
        (
            vec!["mount", "-o", "bind", &vm.text("home"), &vm.text("home")],
            "",
        ),
        (vec!["chown", "root:vcap", &data("blobs")], ""),
        // The firewall's monit chains (the script is `firewall::monit_ruleset`).
        (vec!["nft", "-f", "-"], ""),
    ]
    .into_iter()
    .map(|(argv, reply)| {
        let reply = match reply {
            "EXIT2" => Reply::Fail(2, String::new()),
            text if text.starts_with("FAIL:") => Reply::Fail(1, text[5..].to_owned()),
            text => Reply::Ok(text.to_owned()),
        };
        (argv.into_iter().map(str::to_owned).collect(), reply)
    })
    .collect();
    let runner = Arc::new(RecordingRunner::new());
    for (argv, reply) in &owned {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        runner.expect(&argv, reply.clone());
    }
    run_all(&vm.platform(runner.clone()), &settings());
    let expected: Vec<Vec<String>> = owned.into_iter().map(|(argv, _)| argv).collect();
    assert_eq!(runner.recorded(), expected);
    assert_eq!(vm.systemd.restarted(), vec![NETWORKD_UNIT, RESOLVED_UNIT]);
    assert_eq!(
        std::fs::read_to_string(vm.path("home/vcap/.ssh/authorized_keys")).unwrap(),
        "ssh-ed25519 AAAA operator\nssh-rsa BBBB iaas\n"
    );
    assert!(vm.path("etc/systemd/network/10_ens3.network").is_file());
    assert_eq!(
        std::fs::read_to_string(vm.path("etc/hostname")).unwrap(),
        "agent-1\n"
    );
}

#[test]
fn a_restart_of_a_set_up_vm_repartitions_formats_and_mounts_nothing() {
    let vm = Vm::new();
    let (vdb, vdb1, vdb2) = (
        vm.vdb.clone(),
        format!("{}1", vm.vdb),
        format!("{}2", vm.vdb),
    );
    let hardened = "rw,nosuid,nodev,noexec,relatime";
    let mut mountinfo = String::from("22 1 252:1 / / rw,relatime - ext4 /dev/vda1 rw\n");
    let mut mount = |dir: String, options: &str, source: &str| {
        mountinfo.push_str(&format!(
            "40 22 252:18 / {dir} {options} - ext4 {source} rw\n"
        ));
    };
    mount(vm.text("var/vcap/data"), "rw,relatime", &vdb2);
    mount(vm.text("dev/shm"), hardened, "tmpfs");
    mount(vm.text("var/log"), hardened, &vdb2);
    mount(vm.text("var/opt"), "rw,nodev", &vdb2);
    mount(vm.text("opt"), "rw,nodev", &vdb2);
    mount(vm.text("var/vcap/data/sys/run"), "rw,nosuid,nodev", "tmpfs");
    mount(vm.text("tmp"), hardened, &vdb2);
    mount(vm.text("var/tmp"), hardened, &vdb2);
    mount(vm.text("home"), "rw,nosuid,nodev", "/dev/vda1");
    vm.write("proc/self/mountinfo", &mountinfo);
    vm.write(
        "proc/swaps",
        &format!("Filename\tType\tSize\tUsed\tPriority\n{vdb1} partition 1048572 0 -2\n"),
    );

    // A first run writes the keys, hostname and networkd files; the disks and mounts are there.
    let first = Arc::new(RecordingRunner::new());
    for _ in 0..40 {
        first.expect(
            &["chown", RecordingRunner::ANY, RecordingRunner::ANY],
            Reply::Ok(String::new()),
        );
    }
    for argv in [
        vec!["usermod", "-p", "$6$salt$hash", "root"],
        vec!["usermod", "-p", "$6$salt$hash", "vcap"],
        vec!["hostname", "agent-1"],
    ] {
        first.expect(&argv, Reply::Ok(String::new()));
    }
    let print = format!(
        "BYT;\n{vdb}:10737418240B:virtblk:512:512:gpt:Virtio Block Device:;\n\
         1:1048576B:1074790399B:1073741824B:linux-swap(v1):bosh-partition-agent-1-0:swap;\n\
         2:1074790400B:10736369663B:9661579264B:ext4:bosh-partition-agent-1-1:;\n"
    );
    let blkid_swap = format!("{vdb1}: TYPE=\"swap\"\n");
    let blkid_ext4 = format!("{vdb2}: TYPE=\"ext4\"\n");
    let reads = |runner: &RecordingRunner| {
        runner.expect(
            &["ip", "-j", "addr", "show", "dev", "ens3"],
            Reply::Ok(IP_JSON.into()),
        );
        runner.expect(
            &["parted", "-m", &vdb, "unit", "B", "print"],
            Reply::Ok(print.clone()),
        );
        runner.expect(
            &["blkid", "-p", "-o", "export", &vdb1],
            Reply::Ok(blkid_swap.clone()),
        );
        runner.expect(
            &["blkid", "-p", "-o", "export", &vdb2],
            Reply::Ok(blkid_ext4.clone()),
        );
    };
    reads(&first);
    run_all(&vm.platform(first.clone()), &settings());
    assert_eq!(vm.systemd.restarted(), vec![NETWORKD_UNIT, RESOLVED_UNIT]);

    // The agent restarts.
    let again = Arc::new(RecordingRunner::new());
    for _ in 0..40 {
        again.expect(
            &["chown", RecordingRunner::ANY, RecordingRunner::ANY],
            Reply::Ok(String::new()),
        );
    }
    again.expect(
        &["usermod", "-p", "$6$salt$hash", "root"],
        Reply::Ok(String::new()),
    );
    again.expect(
        &["usermod", "-p", "$6$salt$hash", "vcap"],
        Reply::Ok(String::new()),
    );
    reads(&again);
    // The monit chain is flushed and refilled on every start.
    again.expect(&["nft", "-f", "-"], Reply::Ok(String::new()));
    run_all(&vm.platform(again.clone()), &settings());
    let programs: Vec<String> = again
        .recorded()
        .iter()
        .map(|argv| argv[0].clone())
        .filter(|program| program != "chown")
        .collect();
    assert_eq!(
        programs,
        vec![
            "usermod", "usermod", "ip", "parted", "blkid", "blkid", "nft"
        ],
        "{:?}",
        again.recorded()
    );
    assert!(
        again
            .recorded()
            .iter()
            .all(|argv| !Path::new(&argv[0]).ends_with("restart_networking"))
    );
    assert_eq!(
        vm.systemd.restarted().len(),
        2,
        "the restart restarted no unit"
    );
}
