//! The thin director deploys the example release onto QEMU VMs through the QEMU CPI: the stemcell
//! uploaded with `create_stemcell`, the `hello` package compiled on a compilation VM, two instances
//! with persistent disks created, updated canary first and running; a bigger disk is a new disk the
//! data migrates to; a VM killed behind the director's back (its QEMU SIGKILLed) is found silent by
//! the health monitor and resurrected with its persistent disk and data, and its agent, restarted
//! without the job's directories, makes them again; then the deployment is deleted with its VMs.
//!
//! The director runs its own NATS and blobstore on host loopback; the CPI forwards guest addresses
//! to them (`10.0.2.100` for NATS, `10.0.2.101` for the blobstore) and rewrites the URLs agents
//! get, and the director puts those guest addresses in its certificates (`advertised`).

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use thin_director::deploy::director::{Config, CpiChoice, Director};
use thin_director::deploy::report::Reporter;
use thin_director::deploy::{self, inspect};
use thin_director::health;
use vm_tests::harness::{Machine, layer, stemcell};

/// Where guests reach the director's NATS.
const GUEST_NATS: &str = "10.0.2.100:4222";

/// The address guests reach the director's blobstore at (its port is the host's).
const GUEST_BLOBSTORE_IP: &str = "10.0.2.101";

/// One deploy: a compilation VM and two instances, each booted under TCG.
const AGENT_WAIT: Duration = Duration::from_secs(600);

fn manifest(stemcell_version: &str, disk_mib: u32) -> String {
    format!(
        r#"name: hello-qemu
releases:
- name: hello
  version: "1"
  url: hello-1.tgz
stemcells:
- alias: default
  os: debian-bookworm
  version: "{stemcell_version}"
update:
  canaries: 1
  max_in_flight: 1
  canary_watch_time: 1000-120000
  update_watch_time: 1000-120000
instance_groups:
- name: hello
  instances: 2
  azs: [z1]
  vm_type: default
  stemcell: default
  persistent_disk: {disk_mib}
  networks:
  - name: default
  jobs:
  - name: hello
    release: hello
    properties:
      greeting: Hello from QEMU
"#
    )
}

/// QEMU's user network: every VM has a network of its own, so addresses only need to avoid the
/// gateway (.2), DNS (.3) and the forwarded service addresses.
const CLOUD_CONFIG: &str = r#"azs:
- name: z1
networks:
- name: default
  type: manual
  subnets:
  - range: 10.0.2.0/24
    gateway: 10.0.2.2
    dns: [10.0.2.3]
    reserved: [10.0.2.1 - 10.0.2.14, 10.0.2.100 - 10.0.2.255]
    azs: [z1]
vm_types:
- name: default
  cloud_properties: {ram: 1024, cpu: 1, ephemeral_disk_size: 2048}
compilation:
  workers: 1
  az: z1
  vm_type: default
  network: default
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

/// The QEMU CPI's config: forwards from the guest addresses to the director's services.
fn cpi_config(state_dir: &Path, director: &Director) -> serde_json::Value {
    let nats_url = director.mbus.url().to_owned();
    let nats_host = nats_url.trim_start_matches("nats://").to_owned();
    let endpoint = director.blobs.agent_settings()["options"]["endpoint"]
        .as_str()
        .expect("the director's blobstore has an endpoint")
        .to_owned();
    let blob_host = endpoint.trim_start_matches("https://").to_owned();
    let blob_port = blob_host.rsplit_once(':').expect("a port").1;
    json!({
        "state_dir": state_dir,
        "accel": std::env::var("VM_TESTS_ACCEL").unwrap_or_else(|_| "tcg".to_owned()),
        "memory_mb": 1024,
        "cpus": 1,
        "forwards": [
            {"guest": GUEST_NATS, "host": nats_host},
            {"guest": format!("{GUEST_BLOBSTORE_IP}:{blob_port}"), "host": blob_host},
        ],
        "agent": {"mbus": nats_url},
        "test_shell": true,
    })
}

/// On failure, the console of every VM the CPI still has, and the director's CPI log.
struct Dump<'a>(&'a Path);

impl Drop for Dump<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(self.0.join("cpi/vms")) {
            for entry in entries.flatten() {
                let console =
                    std::fs::read_to_string(entry.path().join("console.log")).unwrap_or_default();
                let tail: Vec<&str> = console.lines().rev().take(80).collect();
                eprintln!(
                    "--- console of {} (last 80 lines) ---\n{}",
                    entry.file_name().to_string_lossy(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        let log = std::fs::read_to_string(self.0.join("state/cpi.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!(
            "--- director's CPI log (last 60 lines) ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

/// Deletes what a failed test left: every VM through the CPI.
struct Cleanup {
    cpi: std::path::PathBuf,
    config: std::path::PathBuf,
    vms: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.vms) else {
            return;
        };
        for entry in entries.flatten() {
            let request = json!({
                "method": "delete_vm",
                "arguments": [entry.file_name().to_string_lossy()],
                "context": {"director_uuid": "cleanup"},
            });
            let child = std::process::Command::new(&self.cpi)
                .arg("--config")
                .arg(&self.config)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            if let Ok(mut child) = child {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = std::io::Write::write_all(&mut stdin, request.to_string().as_bytes());
                }
                let _ = child.wait();
            }
        }
    }
}

/// `hello` counts its starts in `/var/vcap/store/hello/starts`, on the persistent disk.
const STARTS: &str = "cat /var/vcap/store/hello/starts";

/// The size in MiB of the disk whose partition `/var/vcap/store` is mounted from.
const STORE_DISK_MIB: &str = "echo $(( $(lsblk -bndo SIZE /dev/$(lsblk -ndo PKNAME $(findmnt -nro SOURCE /var/vcap/store))) / 1048576 ))";

#[test]
fn the_thin_director_deploys_the_example_release_onto_qemu_vms() {
    let tarball = stemcell::tarball(&stemcell::cache_dir()).unwrap_or_else(|err| panic!("{err:#}"));
    let dir = tempfile::Builder::new()
        .prefix("vm-tests-director-")
        .tempdir()
        .unwrap();
    let version = thin_director::stemcell::read(&tarball, &dir.path().join("image"))
        .unwrap()
        .version;
    std::fs::remove_file(dir.path().join("image")).unwrap();
    thin_director::release::create::create(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/release"),
        "hello",
        "1",
        &dir.path().join("hello-1.tgz"),
    )
    .unwrap();
    let small = dir.path().join("manifest.yml");
    write(&small, &manifest(&version, 1024));
    let bigger = dir.path().join("bigger.yml");
    write(&bigger, &manifest(&version, 2048));
    let cloud_config = dir.path().join("cloud-config.yml");
    write(&cloud_config, CLOUD_CONFIG);
    let cpi_json = dir.path().join("cpi.json");
    let cpi_state = dir.path().join("cpi");
    std::fs::create_dir_all(&cpi_state).unwrap();
    // The director starts no CPI call before a deploy; the CPI reads its config at each call, so
    // the forwards can name the ports the director's services got.
    write(&cpi_json, "{}");
    let _cleanup = Cleanup {
        cpi: support::qemu_cpi(),
        config: cpi_json.clone(),
        vms: cpi_state.join("vms"),
    };
    let _dump = Dump(dir.path());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = Config::new(
        dir.path().join("state"),
        CpiChoice::External {
            executable: support::qemu_cpi(),
            args: vec!["--config".into(), cpi_json.clone().into()],
        },
    );
    config.agent_wait = AGENT_WAIT;
    config.cpi_timeout = Duration::from_secs(300);
    config.advertised = vec![
        GUEST_NATS.split(':').next().unwrap().parse().unwrap(),
        GUEST_BLOBSTORE_IP.parse().unwrap(),
    ];
    let director = runtime
        .block_on(Director::start(
            config,
            Reporter::to(Box::new(std::io::stderr()), false),
        ))
        .unwrap();
    write(&cpi_json, &cpi_config(&cpi_state, &director).to_string());

    let started = Instant::now();
    runtime
        .block_on(deploy::upload_stemcell(&director, &tarball))
        .unwrap_or_else(|err| panic!("upload-stemcell: {err:#}"));
    // The VMs get the harness's root shell (the CPI's `test_shell`): a layer over the stemcell
    // the CPI unpacked, its only one.
    let stemcells: Vec<_> = std::fs::read_dir(cpi_state.join("stemcells"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("root.img").is_file())
        .collect();
    assert_eq!(stemcells.len(), 1, "{stemcells:?}");
    layer::ensure(
        &stemcells[0].join("root.img"),
        Some(&stemcell::cache_dir().join("test-layers")),
    )
    .unwrap_or_else(|err| panic!("{err:#}"));
    let uploaded = started.elapsed();
    let summary = runtime
        .block_on(deploy::deploy(&director, &small, &cloud_config))
        .unwrap_or_else(|err| panic!("deploy: {err:#}"));
    let deployed = started.elapsed() - uploaded;
    eprintln!(
        "upload-stemcell {:.1} s, deploy {:.1} s (compilation VM + 2 instances under TCG): {summary:?}",
        uploaded.as_secs_f64(),
        deployed.as_secs_f64()
    );

    let rows = runtime
        .block_on(inspect::instances(&director, "hello-qemu"))
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row.state, "running", "{row:?}");
        assert!(row.ips.starts_with("10.0.2."), "{row:?}");
    }
    // The compilation VM is gone; the two instances' VMs are the CPI's only ones.
    let mut vms: Vec<String> = std::fs::read_dir(cpi_state.join("vms"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    vms.sort();
    let mut instance_vms: Vec<String> = rows.iter().map(|row| row.vm_cid.clone()).collect();
    instance_vms.sort();
    assert_eq!(vms, instance_vms);
    // Each VM's agent set its guest up and mounted the persistent disk, where the job counts its
    // starts.
    let mut machines: Vec<Machine> = vms
        .iter()
        .map(|vm| Machine::attach(vm, &cpi_state.join("vms").join(vm)))
        .collect();
    let mut starts_before = Vec::new();
    for machine in &mut machines {
        // The agent logged its bootstrap on the console (it is there already: the wait only reads).
        machine.wait_for_console("bootstrap phase done", Duration::from_secs(30));
        let disk_mib: u64 = machine.succeed(STORE_DISK_MIB).trim().parse().unwrap();
        assert_eq!(disk_mib, 1024, "{} store disk", machine.name());
        let starts: u64 = machine.succeed(STARTS).trim().parse().unwrap();
        assert!(starts >= 1, "{}: {starts}", machine.name());
        starts_before.push(starts);
    }

    // A bigger disk: a new disk for each instance, the data migrated onto it, the job restarted.
    let started = Instant::now();
    let summary = runtime
        .block_on(deploy::deploy(&director, &bigger, &cloud_config))
        .unwrap_or_else(|err| panic!("deploy with bigger disks: {err:#}"));
    eprintln!(
        "disk size change (new disks, migrate_disk, restart): {:.1} s: {summary:?}",
        started.elapsed().as_secs_f64()
    );
    for (machine, before) in machines.iter_mut().zip(&starts_before) {
        let disk_mib: u64 = machine.succeed(STORE_DISK_MIB).trim().parse().unwrap();
        assert_eq!(
            disk_mib,
            2048,
            "{} store disk after the change",
            machine.name()
        );
        let starts: u64 = machine.succeed(STARTS).trim().parse().unwrap();
        assert!(
            starts > *before,
            "{}: the count of starts ({before}) came along to the new disk and went on: {starts}",
            machine.name()
        );
    }
    drop(machines);

    resurrect_a_killed_vm(&runtime, &director, &cpi_state);

    runtime
        .block_on(deploy::inspect::delete_deployment(&director, "hello-qemu"))
        .unwrap_or_else(|err| panic!("delete-deployment: {err:#}"));
    let left = std::fs::read_dir(cpi_state.join("vms"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "delete-deployment deleted every VM");
}

/// How long a killed VM may take to come back: the agent timeout, the old VM's deletion, a new VM
/// booted under TCG, the disk attached and the job started.
const RESURRECTION_WAIT: Duration = Duration::from_secs(900);

/// Kills instance 0's QEMU (SIGKILL: no shutdown, nothing flushed that the guest had not synced)
/// after writing a file on its persistent disk, runs the health monitor with its default agent
/// timeout until the instance has a new VM and the resurrection is over, and checks the new VM
/// mounted the same disk: the file is there and the job's count of starts went on.
fn resurrect_a_killed_vm(runtime: &tokio::runtime::Runtime, director: &Director, cpi_state: &Path) {
    let record = |index: u32| {
        runtime
            .block_on(director.instances_of("hello-qemu"))
            .unwrap()
            .into_iter()
            .find(|instance| instance.index == index)
            .unwrap()
    };
    let victim = record(0);
    let old_vm = victim.vm.clone().expect("instance 0 has a VM");
    let survivor = record(1).vm.expect("instance 1 has a VM");
    let vm_dir = cpi_state.join("vms").join(&old_vm.cid);
    let mut machine = Machine::attach(&old_vm.cid, &vm_dir);
    machine.succeed("echo resurrect-me > /var/vcap/store/marker && sync");
    let starts_before: u64 = machine.succeed(STARTS).trim().parse().unwrap();
    let pid: i32 = std::fs::read_to_string(vm_dir.join("qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(machine);

    let started = Instant::now();
    let config = health::Config::default();
    let outcome = runtime.block_on(health::run(director, &config, async {
        // The monitor has subscribed before this first poll returns; the kill comes after.
        tokio::time::sleep(Duration::from_secs(1)).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // `run` finishes a resurrection under way before it returns: stopping as soon as the
        // state names a new VM still waits for the disk and the job.
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let vm = director
                .instances_of("hello-qemu")
                .await
                .unwrap()
                .into_iter()
                .find(|instance| instance.index == 0)
                .and_then(|instance| instance.vm);
            if vm.is_some_and(|vm| vm.cid != old_vm.cid) {
                break;
            }
            assert!(
                started.elapsed() < RESURRECTION_WAIT,
                "instance 0 was not resurrected within {RESURRECTION_WAIT:?}"
            );
        }
    }));
    outcome.unwrap_or_else(|err| panic!("health monitor: {err:#}"));
    eprintln!(
        "a killed VM resurrected (agent timeout {:?}, new VM, disk, job): {:.1} s",
        config.agent_timeout,
        started.elapsed().as_secs_f64()
    );

    let after = record(0);
    let new_vm = after.vm.clone().unwrap();
    assert_ne!(new_vm.cid, old_vm.cid);
    assert_eq!(after.disk, victim.disk, "the instance kept its disk");
    assert_eq!(
        record(1).vm,
        Some(survivor),
        "the live instance was left alone"
    );
    assert!(
        !cpi_state.join("vms").join(&old_vm.cid).exists(),
        "the killed VM was deleted"
    );
    let rows = runtime
        .block_on(inspect::instances(director, "hello-qemu"))
        .unwrap();
    for row in &rows {
        assert_eq!(row.state, "running", "{row:?}");
    }
    let mut machine = Machine::attach(&new_vm.cid, &cpi_state.join("vms").join(&new_vm.cid));
    assert_eq!(
        machine.succeed("cat /var/vcap/store/marker").trim(),
        "resurrect-me"
    );
    let disk_mib: u64 = machine.succeed(STORE_DISK_MIB).trim().parse().unwrap();
    assert_eq!(disk_mib, 2048, "the resurrected VM has the bigger disk");
    let starts: u64 = machine.succeed(STARTS).trim().parse().unwrap();
    assert!(
        starts > starts_before,
        "the job started again on the same disk: {starts_before} then {starts}"
    );

    // §5.1 step 25: an agent that starts without the job's directories (a new or wiped ephemeral
    // disk) makes them again as `apply` does: 0770 root:vcap (the job's ctl would make 0755 ones).
    machine.succeed(
        "rm -rf /var/vcap/data/sys/run/hello /var/vcap/data/hello && systemctl restart bosh-agent",
    );
    machine.wait_until_succeeds(
        "test -d /var/vcap/data/sys/run/hello && test -d /var/vcap/data/hello",
        Duration::from_secs(300),
    );
    assert_eq!(
        machine.succeed("stat -c '%a %U:%G' /var/vcap/data/sys/run/hello /var/vcap/data/hello"),
        "770 root:vcap\n770 root:vcap\n"
    );
}
