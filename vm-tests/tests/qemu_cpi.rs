//! The `qemu-cpi` executable driven as a director drives it: one process a call, a JSON request
//! on standard input, the response on standard output, against a real `qemu-system-x86_64` under
//! TCG and real `qemu-img` and `genisoimage`.
//!
//! The stemcell is a blank qcow2 `root.img` in an `image` tgz: QEMU runs a VM from a disk that
//! does not boot, which is enough for everything the CPI does to QEMU. What needs a guest OS
//! (a disk detach the guest acknowledges, the agent reading its config drive) is left to the VM
//! tests that boot real stemcells; here a detach times out, with its error.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tempfile::TempDir;
use vm_tests::qemu_cpi::qmp::Qmp;

const CPI: &str = env!("CARGO_BIN_EXE_qemu-cpi");

/// A CPI with its state directory and config file.
struct Cpi {
    dir: TempDir,
    config: PathBuf,
}

impl Cpi {
    fn new(extra: Value) -> Cpi {
        let dir = tempfile::tempdir().unwrap();
        let mut config = json!({
            "state_dir": dir.path().join("state"),
            "accel": "tcg",
            "memory_mb": 128,
            "cpus": 1,
            "forwards": [
                {"guest": "10.0.2.100:4222", "host": "127.0.0.1:14222"},
                {"guest": "10.0.2.101:25250", "host": "127.0.0.1:35250"},
            ],
            "detach_timeout_secs": 2,
            "agent": {"mbus": "nats://127.0.0.1:14222", "ntp": []},
        });
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        let path = dir.path().join("cpi.json");
        std::fs::write(&path, config.to_string()).unwrap();
        Cpi { dir, config: path }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs one call with raw standard input; the parsed response.
    fn raw(&self, stdin: &[u8]) -> Value {
        let mut child = Command::new(CPI)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "{err}: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    fn call(&self, method: &str, arguments: Value) -> Value {
        let request = json!({
            "method": method,
            "arguments": arguments,
            "context": {"director_uuid": "d", "request_id": "cpi-123456"},
            "api_version": 2,
        });
        let response = self.raw(request.to_string().as_bytes());
        assert_eq!(response["log"], "", "{response}");
        response
    }

    /// A call that must succeed: its result.
    fn ok(&self, method: &str, arguments: Value) -> Value {
        let response = self.call(method, arguments);
        assert_eq!(response["error"], Value::Null, "{method}: {response}");
        response["result"].clone()
    }

    /// A call that must fail: its error's type and message.
    fn err(&self, method: &str, arguments: Value) -> (String, String) {
        let response = self.call(method, arguments);
        assert_eq!(response["result"], Value::Null, "{method}: {response}");
        assert_eq!(response["error"]["ok_to_retry"], false, "{response}");
        (
            response["error"]["type"].as_str().unwrap().to_owned(),
            response["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    /// Makes a fake stemcell image and uploads it: the stemcell cid.
    fn stemcell(&self) -> String {
        let image = fake_stemcell_image(self.dir.path());
        let cid = self.ok(
            "create_stemcell",
            json!([image, {"infrastructure": "qemu", "architecture": "x86_64"}]),
        );
        cid.as_str().unwrap().to_owned()
    }
}

/// An `image` tgz holding a blank 64 MiB qcow2 `root.img`.
fn fake_stemcell_image(dir: &Path) -> PathBuf {
    let work = dir.join("stemcell-src");
    std::fs::create_dir_all(&work).unwrap();
    let root = work.join("root.img");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&root)
        .arg("64M"));
    let image = dir.join("image");
    let file = std::fs::File::create(&image).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    tar.append_path_with_name(&root, "root.img").unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    image
}

fn run(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|err| panic!("{cmd:?}: {err} (install qemu-utils, genisoimage)"));
    assert!(
        output.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 1..]
            .trim_start()
            .chars()
            .next();
        !matches!(state, Some('Z') | Some('X'))
    })
}

fn pid_of(vm_dir: &Path) -> i32 {
    std::fs::read_to_string(vm_dir.join("qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn backing_file(image: &Path) -> String {
    let info: Value = serde_json::from_str(&run(Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(image)))
    .unwrap();
    info["backing-filename"].as_str().unwrap().to_owned()
}

fn networks() -> Value {
    json!({"default": {
        "type": "manual", "ip": "10.0.2.15", "netmask": "255.255.255.0", "gateway": "10.0.2.2",
        "dns": ["10.0.2.3"], "default": ["dns", "gateway"], "cloud_properties": {},
    }})
}

fn env() -> Value {
    json!({"bosh": {
        "mbus": {"cert": {"ca": "CA", "certificate": "CERT", "private_key": "KEY"}},
        "blobstores": [{"provider": "dav", "options": {
            "endpoint": "https://127.0.0.1:35250", "user": "agent", "password": "p"}}],
        "group": "director-deployment-web",
    }})
}

#[test]
fn the_relay_carries_a_connection_both_ways_until_the_service_closes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let service = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        std::io::Read::read_to_end(&mut stream, &mut request).unwrap();
        stream.write_all(&request.to_ascii_uppercase()).unwrap();
        request
    });
    let mut relay = Command::new(CPI)
        .arg("relay")
        .arg(address.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // No newline: nothing may wait for one.
    relay
        .stdin
        .take()
        .unwrap()
        .write_all(b"ping\0pong")
        .unwrap();
    let output = relay.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(service.join().unwrap(), b"ping\0pong");
    assert_eq!(output.stdout, b"PING\0PONG");
    assert!(output.stderr.is_empty());
}

#[test]
fn info_reports_api_version_2_and_the_qcow2_format() {
    let cpi = Cpi::new(json!({}));
    assert_eq!(
        cpi.ok("info", json!([])),
        json!({"stemcell_formats": ["qemu-qcow2"], "api_version": 2})
    );
    // The director's probe has no api_version.
    let probe = cpi.raw(br#"{"method":"info","arguments":[]}"#);
    assert_eq!(probe["result"]["api_version"], 2);
}

#[test]
fn malformed_requests_get_the_reference_errors() {
    let cpi = Cpi::new(json!({}));
    let cases: [(&[u8], &str, &str); 4] = [
        (
            b"{not json",
            "Bosh::Clouds::CpiError",
            "Must provide valid JSON payload: key must be a string at line 1 column 2",
        ),
        (
            br#"{"arguments":[]}"#,
            "Bosh::Clouds::CpiError",
            "Must provide 'method' key",
        ),
        (
            br#"{"method":"has_vm"}"#,
            "Bosh::Clouds::CpiError",
            "Must provide 'arguments' key",
        ),
        (
            br#"{"method":"snapshot_disk","arguments":["disk-1",{}],"api_version":2}"#,
            "Bosh::Clouds::NotImplemented",
            "Must call implemented method: Unknown method 'snapshot_disk'",
        ),
    ];
    for (request, kind, message) in cases {
        let response = cpi.raw(request);
        assert_eq!(
            response["error"],
            json!({"type": kind, "message": message, "ok_to_retry": false}),
            "{}",
            String::from_utf8_lossy(request)
        );
        assert_eq!(response["result"], Value::Null);
    }
    assert_eq!(
        cpi.err("has_vm", json!([])),
        (
            "Bosh::Clouds::CpiError".to_owned(),
            "has_vm argument 1 (vm_cid) is missing".to_owned()
        )
    );
    assert_eq!(
        cpi.err("create_disk", json!(["big", {}])),
        (
            "Bosh::Clouds::CpiError".to_owned(),
            "create_disk argument 1 (size) must be a non-negative integer, got a string".to_owned()
        )
    );
    assert_eq!(
        cpi.err(
            "create_vm",
            json!(["agent-1", "stemcell-nope", {}, networks(), [], {}])
        ),
        (
            "Bosh::Clouds::StemcellNotFound".to_owned(),
            "stemcell 'stemcell-nope' not found".to_owned()
        )
    );
    assert_eq!(
        cpi.err("delete_vm", json!(["vm-nope"])),
        (
            "Bosh::Clouds::VMNotFound".to_owned(),
            "VM 'vm-nope' not found".to_owned()
        )
    );
    assert_eq!(cpi.ok("has_vm", json!(["vm-nope"])), json!(false));
    assert_eq!(cpi.ok("has_disk", json!(["../cpi.json"])), json!(false));
    assert!(!cpi.state().join("vms").exists());
}

#[test]
fn a_bad_config_or_command_line_is_a_cpi_error_naming_the_problem() {
    let cpi = Cpi::new(json!({"memory_mb": "lots"}));
    let (kind, message) = cpi.err("info", json!([]));
    assert_eq!(kind, "Bosh::Clouds::CpiError");
    assert!(
        message.contains("memory_mb: invalid type: string \"lots\", expected u64"),
        "{message}"
    );
    let output = Command::new(CPI).stdin(Stdio::null()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["error"]["type"], "Bosh::Clouds::CpiError");
    assert_eq!(
        response["error"]["message"],
        "no config file given; usage: qemu-cpi --config <cpi.json> (or -configPath <cpi.json>)"
    );
}

#[test]
fn stemcells_are_unpacked_and_deleted_once() {
    let cpi = Cpi::new(json!({}));
    let cid = cpi.stemcell();
    let root = cpi.state().join("stemcells").join(&cid).join("root.img");
    assert_eq!(&std::fs::read(&root).unwrap()[..4], b"QFI\xfb");
    assert_eq!(cpi.ok("delete_stemcell", json!([cid])), Value::Null);
    assert!(!root.exists());
    assert_eq!(
        cpi.err("delete_stemcell", json!([cid])),
        (
            "Bosh::Clouds::StemcellNotFound".to_owned(),
            format!("stemcell '{cid}' not found")
        )
    );
    let (kind, message) = cpi.err("create_stemcell", json!(["/nonexistent/image", {}]));
    assert_eq!(kind, "Bosh::Clouds::CpiError");
    assert_eq!(
        message,
        "create_stemcell argument image_path: /nonexistent/image is not a file"
    );
    let not_tgz = cpi.dir.path().join("not-tgz");
    std::fs::write(&not_tgz, "x").unwrap();
    let (kind, message) = cpi.err("create_stemcell", json!([not_tgz, {}]));
    assert_eq!(kind, "Bosh::Clouds::CloudError");
    assert!(message.contains("not a gzip'd tar"), "{message}");
    // Nothing half-made is left behind.
    assert_eq!(
        std::fs::read_dir(cpi.state().join("stemcells"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_vm_lives_through_its_whole_lifecycle_in_qemu() {
    let cpi = Cpi::new(json!({}));
    let stemcell_cid = cpi.stemcell();

    // create_vm: [cid, networks with the MAC], QEMU running from an overlay on the stemcell.
    let created = cpi.ok(
        "create_vm",
        json!(["agent-1", stemcell_cid, {"ram": 128}, networks(), [], env()]),
    );
    let vm_cid = created[0].as_str().unwrap().to_owned();
    assert!(vm_cid.starts_with("vm-"), "{vm_cid}");
    let mac = created[1]["default"]["mac"].as_str().unwrap().to_owned();
    assert!(mac.starts_with("52:54:00:") && mac.len() == 17, "{mac}");
    assert_eq!(created[1]["default"]["ip"], "10.0.2.15");
    let vm_dir = cpi.state().join("vms").join(&vm_cid);
    for file in [
        "vm.json",
        "root.qcow2",
        "ephemeral.qcow2",
        "config-drive.iso",
        "qmp.sock",
        "console.log",
        "qemu.pid",
    ] {
        assert!(vm_dir.join(file).exists(), "{file} missing");
    }
    assert!(!vm_dir.join("shell.sock").exists());
    let pid = pid_of(&vm_dir);
    assert!(is_alive(pid));
    assert_eq!(
        backing_file(&vm_dir.join("root.qcow2")),
        cpi.state()
            .join("stemcells")
            .join(&stemcell_cid)
            .join("root.img")
            .to_string_lossy()
    );
    let status = Qmp::connect(&vm_dir.join("qmp.sock"))
        .unwrap()
        .execute("query-status", None)
        .unwrap();
    assert_eq!(status["status"], "running", "{status}");

    // QEMU's command line: a restricted user network with the forwards, the disks' serials.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = cmdline
        .split(|byte| *byte == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let netdev = &argv[argv.iter().position(|arg| arg == "-netdev").unwrap() + 1];
    assert_eq!(
        *netdev,
        format!(
            "user,id=net0,restrict=on,net=10.0.2.0/24,\
             guestfwd=tcp:10.0.2.100:4222-cmd:{CPI} relay 127.0.0.1:14222,\
             guestfwd=tcp:10.0.2.101:25250-cmd:{CPI} relay 127.0.0.1:35250"
        )
    );
    assert!(argv.contains(&format!("virtio-net-pci,netdev=net0,mac={mac}")));
    assert!(argv.contains(&"tcg".to_owned()));

    // The config drive: label config-2, the settings with the URLs rewritten to the forwards.
    let iso = vm_dir.join("config-drive.iso");
    let volume = run(Command::new("isoinfo").arg("-d").arg("-i").arg(&iso));
    assert!(volume.contains("Volume id: config-2"), "{volume}");
    let extract = |path: &str| {
        run(Command::new("isoinfo")
            .args(["-R", "-x", path, "-i"])
            .arg(&iso))
    };
    let settings: Value = serde_json::from_str(&extract("/ec2/latest/user-data")).unwrap();
    let record: Value =
        serde_json::from_slice(&std::fs::read(vm_dir.join("vm.json")).unwrap()).unwrap();
    let ephemeral_serial = record["machine"]["ephemeral_serial"].as_str().unwrap();
    assert_eq!(ephemeral_serial.len(), 20);
    assert_eq!(settings["agent_id"], "agent-1");
    assert_eq!(settings["vm"], json!({"name": vm_cid, "id": vm_cid}));
    assert_eq!(settings["mbus"], "nats://10.0.2.100:4222");
    assert_eq!(
        settings["env"]["bosh"]["blobstores"][0]["options"]["endpoint"],
        "https://10.0.2.101:25250"
    );
    assert_eq!(settings["env"]["bosh"]["mbus"]["cert"]["ca"], "CA");
    assert_eq!(settings["networks"]["default"]["mac"], mac.as_str());
    assert_eq!(
        settings["disks"],
        json!({"system": "/dev/vda", "ephemeral": {"id": ephemeral_serial, "path": "/dev/vdb"},
            "persistent": {}})
    );
    assert_eq!(
        extract("/openstack/latest/user_data").trim(),
        settings.to_string()
    );
    let meta: Value = serde_json::from_str(&extract("/ec2/latest/meta-data.json")).unwrap();
    assert_eq!(
        meta,
        json!({"instance-id": vm_cid, "public-keys": {"0": {"openssh-key": ""}}})
    );

    assert_eq!(cpi.ok("has_vm", json!([vm_cid])), json!(true));
    assert_eq!(
        cpi.ok(
            "set_vm_metadata",
            json!([vm_cid, {"deployment": "d", "name": "web/0"}])
        ),
        Value::Null
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(vm_dir.join("vm.json")).unwrap()).unwrap();
    assert_eq!(
        record["metadata"],
        json!({"deployment": "d", "name": "web/0"})
    );

    // A persistent disk, hot-plugged with its cid as the serial.
    let disk_cid = cpi.ok("create_disk", json!([64, {}, vm_cid]));
    let disk_cid = disk_cid.as_str().unwrap().to_owned();
    assert_eq!(disk_cid.len(), 20, "{disk_cid}");
    assert_eq!(cpi.ok("has_disk", json!([disk_cid])), json!(true));
    let hint = cpi.ok("attach_disk", json!([vm_cid, disk_cid]));
    assert_eq!(hint, json!({"id": disk_cid, "path": "/dev/vdc"}));
    assert_eq!(
        cpi.ok("attach_disk", json!([vm_cid, disk_cid])),
        hint,
        "attaching again answers the same hint"
    );
    let qtree = Qmp::connect(&vm_dir.join("qmp.sock"))
        .unwrap()
        .execute(
            "human-monitor-command",
            Some(json!({"command-line": "info qtree"})),
        )
        .unwrap();
    let qtree = qtree.as_str().unwrap();
    assert!(
        qtree.contains(&format!("id \"dev-{disk_cid}\"")),
        "no device for the disk in\n{qtree}"
    );
    assert!(
        qtree.contains(&format!("serial = \"{disk_cid}\"")),
        "{qtree}"
    );
    assert_eq!(cpi.ok("get_disks", json!([vm_cid])), json!([disk_cid]));
    let record: Value =
        serde_json::from_slice(&std::fs::read(vm_dir.join("vm.json")).unwrap()).unwrap();
    assert_eq!(record["settings"]["disks"]["persistent"][&disk_cid], hint);
    let settings: Value = serde_json::from_str(&extract("/ec2/latest/user-data")).unwrap();
    assert_eq!(settings["disks"]["persistent"][&disk_cid], hint);

    // An attached disk is neither resized nor deleted.
    let (kind, message) = cpi.err("resize_disk", json!([disk_cid, 128]));
    assert_eq!(kind, "Bosh::Clouds::CloudError");
    assert_eq!(
        message,
        format!("disk '{disk_cid}' is attached to VM '{vm_cid}'")
    );
    assert_eq!(
        cpi.err("delete_disk", json!([disk_cid])).0,
        "Bosh::Clouds::CloudError"
    );

    // A guest without an OS never acknowledges the unplug: the detach times out, and the disk
    // stays attached.
    let (kind, message) = cpi.err("detach_disk", json!([vm_cid, disk_cid]));
    assert_eq!(kind, "Bosh::Clouds::CloudError");
    assert_eq!(
        message,
        format!(
            "detaching disk '{disk_cid}' from VM '{vm_cid}': the guest did not release device \
             dev-{disk_cid} within 2 s (QEMU unplugs a virtio disk only once the guest OS \
             acknowledges the ACPI eject request; the disk stays attached)"
        )
    );
    assert_eq!(cpi.ok("get_disks", json!([vm_cid])), json!([disk_cid]));
    assert_eq!(
        cpi.err("detach_disk", json!([vm_cid, "disk-other"])).0,
        "Bosh::Clouds::DiskNotAttached"
    );

    // reboot_vm resets the same QEMU.
    assert_eq!(cpi.ok("reboot_vm", json!([vm_cid])), Value::Null);
    assert_eq!(pid_of(&vm_dir), pid);
    let status = Qmp::connect(&vm_dir.join("qmp.sock"))
        .unwrap()
        .execute("query-status", None)
        .unwrap();
    assert_eq!(status["status"], "running", "{status}");

    // delete_vm stops QEMU and removes the VM; the disk is free again.
    assert_eq!(cpi.ok("delete_vm", json!([vm_cid])), Value::Null);
    assert!(!is_alive(pid), "QEMU {pid} still runs");
    assert!(!vm_dir.exists());
    assert_eq!(cpi.ok("has_vm", json!([vm_cid])), json!(false));
    assert_eq!(
        cpi.err("delete_vm", json!([vm_cid])).0,
        "Bosh::Clouds::VMNotFound"
    );
    assert_eq!(
        cpi.err("reboot_vm", json!([vm_cid])).0,
        "Bosh::Clouds::VMNotFound"
    );
    assert_eq!(
        cpi.err("get_disks", json!([vm_cid])).0,
        "Bosh::Clouds::VMNotFound"
    );

    // A detached disk grows, and goes.
    assert_eq!(cpi.ok("resize_disk", json!([disk_cid, 128])), Value::Null);
    let disk = cpi.state().join("disks").join(format!("{disk_cid}.qcow2"));
    let info: Value = serde_json::from_str(&run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&disk)))
    .unwrap();
    assert_eq!(info["virtual-size"], 128 * 1024 * 1024);
    assert_eq!(cpi.ok("delete_disk", json!([disk_cid])), Value::Null);
    assert!(!disk.exists());
    assert_eq!(cpi.ok("has_disk", json!([disk_cid])), json!(false));
    assert_eq!(
        cpi.err("delete_disk", json!([disk_cid])).0,
        "Bosh::Clouds::DiskNotFound"
    );
    assert_eq!(
        cpi.ok("delete_stemcell", json!([stemcell_cid])),
        Value::Null
    );
}

#[test]
fn the_test_shell_boots_on_the_test_layer_with_a_console_socket() {
    let cpi = Cpi::new(json!({"test_shell": true}));
    let stemcell_cid = cpi.stemcell();
    let stemcell_dir = cpi.state().join("stemcells").join(&stemcell_cid);
    let layer = stemcell_dir.join("test-layer.qcow2");
    let (kind, message) = cpi.err(
        "create_vm",
        json!(["agent-1", stemcell_cid, {}, networks(), [], {}]),
    );
    assert_eq!(kind, "Bosh::Clouds::CloudError");
    assert_eq!(
        message,
        format!("the test layer {} is missing", layer.display())
    );
    assert!(
        !cpi.state().join("vms").exists()
            || std::fs::read_dir(cpi.state().join("vms")).unwrap().count() == 0
    );

    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(stemcell_dir.join("root.img"))
        .arg(&layer));
    let created = cpi.ok(
        "create_vm",
        json!(["agent-1", stemcell_cid, {}, networks(), [], {}]),
    );
    let vm_cid = created[0].as_str().unwrap();
    let vm_dir = cpi.state().join("vms").join(vm_cid);
    assert!(vm_dir.join("shell.sock").exists());
    assert_eq!(
        backing_file(&vm_dir.join("root.qcow2")),
        layer.to_string_lossy()
    );
    let pid = pid_of(&vm_dir);
    assert_eq!(cpi.ok("delete_vm", json!([vm_cid])), Value::Null);
    assert!(!is_alive(pid));
}
