//! A VM started by QEMU directly, with the argv shape of the QEMU CPI's contract (root overlay on
//! the test layer, `console.log` on serial 0, the root shell's `shell.sock` on a virtconsole, user
//! networking with `restrict=on`), for testing the harness without the CPI. QEMU runs in its own
//! process group, killed on drop.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running QEMU.
#[derive(Debug)]
pub struct DirectVm {
    /// Its directory (`root.qcow2`, `console.log`, `shell.sock`, `qmp.sock`, `qemu.pid`).
    pub dir: PathBuf,
    child: Child,
}

impl DirectVm {
    /// Boots a VM in `dir` whose root disk is an overlay on `layer`.
    pub fn boot(layer: &Path, dir: &Path) -> DirectVm {
        std::fs::create_dir_all(dir).unwrap();
        let root = dir.join("root.qcow2");
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(layer)
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "qemu-img create failed");
        let child = Command::new("qemu-system-x86_64")
            .args(argv(dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.err")).unwrap())
            .process_group(0)
            .spawn()
            .expect("qemu-system-x86_64 (Debian package qemu-system-x86)");
        DirectVm {
            dir: dir.to_owned(),
            child,
        }
    }
}

impl Drop for DirectVm {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// The argv, as the QEMU CPI builds it (without a config drive or ephemeral disk).
fn argv(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    [
        "-machine".into(),
        "pc".into(),
        "-accel".into(),
        "tcg".into(),
        "-m".into(),
        "1024".into(),
        "-smp".into(),
        "2".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", path("console.log")),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path("qmp.sock")),
        "-pidfile".into(),
        path("qemu.pid"),
        "-drive".into(),
        format!("if=none,id=root,file={},format=qcow2", path("root.qcow2")),
        "-device".into(),
        "virtio-blk-pci,drive=root,serial=vm-tests-root,bootindex=0".into(),
        "-device".into(),
        "virtio-serial-pci".into(),
        "-chardev".into(),
        format!(
            "socket,id=shell,path={},server=on,wait=off",
            path("shell.sock")
        ),
        "-device".into(),
        "virtconsole,chardev=shell".into(),
        "-netdev".into(),
        "user,id=net0,restrict=on,net=10.0.2.0/24".into(),
        "-device".into(),
        "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56".into(),
    ]
    .to_vec()
}
