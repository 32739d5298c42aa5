//! The QEMU CPI's state: files under the configured `state_dir`, the only state it has (each call
//! is a process of its own, and the director runs many at once).
//!
//! ```text
//! <state_dir>/stemcells/<stemcell_cid>/root.img   the stemcell's qcow2 (from its `image`)
//! <state_dir>/stemcells/<stemcell_cid>/test-layer.qcow2   made by the test harness (test_shell)
//! <state_dir>/disks/<disk_cid>.qcow2              a persistent disk
//! <state_dir>/vms/<vm_cid>/                       a VM:
//!     vm.json              what it was made from, its settings, its attached disks (vm.rs)
//!     root.qcow2           overlay on the stemcell's root.img (or test-layer.qcow2)
//!     ephemeral.qcow2      the ephemeral disk
//!     config-drive.iso     the config drive, volume label config-2 (iso.rs)
//!     qmp.sock             QEMU's QMP monitor
//!     console.log          serial 0 (the guest's ttyS0)
//!     qemu.pid             QEMU's pid
//!     shell.sock           with test_shell: a shell on the guest's /dev/hvc0
//! ```
//!
//! A resource exists once its last file is in place: a stemcell once `root.img` is (unpacked
//! beside it and renamed), a disk once its `.qcow2` is (made under a dot name and renamed), a VM
//! once `vm.json` is. Records are written whole with the process CPI's atomic writes. Calls that
//! read-modify-write a VM (its `vm.json`, its QMP monitor, which takes one client at a time) hold
//! an flock(2) of the VM's directory; calls that change which VM a disk is attached to hold an
//! flock(2) of `disks/` first, then the VM's. A cid from a request that is not a plain file name
//! (`is_cid`) names nothing, so it cannot reach outside `state_dir`.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha1::{Digest as _, Sha1};
use thin_director::process_cpi::Error as CpiError;
pub use thin_director::process_cpi::store::{
    create_dir_all, is_cid, now_secs, read_json, remove_dir_all, remove_file, write_atomic,
    write_json,
};

use crate::qemu_cpi::error::{Error, Result};

/// A VM's record.
pub const VM_FILE: &str = "vm.json";
/// A VM's root disk: an overlay on the stemcell.
pub const ROOT_DISK: &str = "root.qcow2";
/// A VM's ephemeral disk.
pub const EPHEMERAL_DISK: &str = "ephemeral.qcow2";
/// A VM's config drive.
pub const CONFIG_DRIVE: &str = "config-drive.iso";
/// A VM's QMP socket.
pub const QMP_SOCKET: &str = "qmp.sock";
/// A VM's serial console.
pub const CONSOLE_LOG: &str = "console.log";
/// QEMU's pidfile.
pub const PID_FILE: &str = "qemu.pid";
/// The test shell's socket.
pub const SHELL_SOCKET: &str = "shell.sock";
/// A stemcell's image.
pub const STEMCELL_IMAGE: &str = "root.img";
/// The layer the test harness puts over a stemcell's image.
pub const TEST_LAYER: &str = "test-layer.qcow2";

/// The length of a virtio-blk serial the guest shows in full (`/dev/disk/by-id/virtio-<serial>`).
pub const SERIAL_LEN: usize = 20;

/// Paths under `state_dir`.
#[derive(Debug, Clone)]
pub struct Store {
    state_dir: PathBuf,
}

/// An flock(2) held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: Flock<File>,
}

impl Store {
    /// The state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Store {
        Store {
            state_dir: state_dir.into(),
        }
    }

    /// `stemcells/`.
    pub fn stemcells_dir(&self) -> PathBuf {
        self.state_dir.join("stemcells")
    }

    /// A stemcell's directory.
    pub fn stemcell_dir(&self, cid: &str) -> PathBuf {
        self.stemcells_dir().join(cid)
    }

    /// A stemcell's image.
    pub fn stemcell_image(&self, cid: &str) -> PathBuf {
        self.stemcell_dir(cid).join(STEMCELL_IMAGE)
    }

    /// `vms/`.
    pub fn vms_dir(&self) -> PathBuf {
        self.state_dir.join("vms")
    }

    /// A VM's directory.
    pub fn vm_dir(&self, cid: &str) -> PathBuf {
        self.vms_dir().join(cid)
    }

    /// `disks/`.
    pub fn disks_dir(&self) -> PathBuf {
        self.state_dir.join("disks")
    }

    /// A disk's image.
    pub fn disk_image(&self, cid: &str) -> PathBuf {
        self.disks_dir().join(format!("{cid}.qcow2"))
    }

    /// Whether the stemcell `cid` exists.
    pub fn has_stemcell(&self, cid: &str) -> bool {
        is_cid(cid) && self.stemcell_image(cid).is_file()
    }

    /// Whether the VM `cid` exists.
    pub fn has_vm(&self, cid: &str) -> bool {
        is_cid(cid) && self.vm_dir(cid).join(VM_FILE).is_file()
    }

    /// Whether the disk `cid` exists.
    pub fn has_disk(&self, cid: &str) -> bool {
        is_cid(cid) && self.disk_image(cid).is_file()
    }

    /// The cids of every VM.
    pub fn vm_cids(&self) -> Result<Vec<String>> {
        let dir = self.vms_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(Error::io("reading", &dir)(err)),
        };
        let mut cids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("reading", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.has_vm(&name) {
                cids.push(name);
            }
        }
        cids.sort();
        Ok(cids)
    }

    /// Locks `disks/` (made if missing): held while disks change hands.
    pub fn lock_disks(&self) -> Result<Lock> {
        let dir = self.disks_dir();
        create_dir_all(&dir)?;
        lock(&dir)
    }

    /// Locks the VM's directory: held across a read-modify-write of the VM.
    pub fn lock_vm(&self, cid: &str) -> Result<Lock> {
        lock(&self.vm_dir(cid))
    }
}

/// Takes an exclusive flock(2) of the directory `dir`, waiting for it.
fn lock(dir: &Path) -> Result<Lock> {
    let file = File::open(dir).map_err(Error::io("opening", dir))?;
    let file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| {
        Error::Cpi(CpiError::Lock {
            path: dir.to_owned(),
            source,
        })
    })?;
    Ok(Lock { _file: file })
}

/// A new stemcell cid.
pub fn new_stemcell_cid() -> String {
    format!("stemcell-{}", uuid::Uuid::new_v4())
}

/// A new VM cid.
pub fn new_vm_cid() -> String {
    format!("vm-{}", uuid::Uuid::new_v4())
}

/// A new disk cid: `disk-` and 15 hex digits, 20 characters, so it is its own serial.
pub fn new_disk_cid() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("disk-{}", &hex[..SERIAL_LEN - 5])
}

/// The serial of a persistent disk: its cid when that fits in 20 characters, else `disk-` and
/// 15 hex digits of the cid's SHA-1.
pub fn disk_serial(disk_cid: &str) -> String {
    if disk_cid.len() <= SERIAL_LEN {
        disk_cid.to_owned()
    } else {
        derived("disk-", disk_cid)
    }
}

/// The serial of a VM's root disk: `root-` and 15 hex digits of the VM cid's SHA-1.
pub fn root_serial(vm_cid: &str) -> String {
    derived("root-", vm_cid)
}

/// The serial of a VM's ephemeral disk: `eph-` and 16 hex digits of the VM cid's SHA-1.
pub fn ephemeral_serial(vm_cid: &str) -> String {
    derived("eph-", vm_cid)
}

/// The serial of a VM's raw ephemeral disk `index`: `raw<index>-` and hex digits of the VM cid's
/// SHA-1.
pub fn raw_ephemeral_serial(vm_cid: &str, index: usize) -> String {
    derived(&format!("raw{index}-"), vm_cid)
}

/// The image of a VM's raw ephemeral disk `index`, in the VM's directory.
pub fn raw_ephemeral_disk(index: usize) -> String {
    format!("raw-ephemeral-{index}.qcow2")
}

/// The serial of a VM's managed NVMe disk `index`: `managed<index>-` and hex digits of the VM
/// cid's SHA-1.
pub fn managed_nvme_serial(vm_cid: &str, index: usize) -> String {
    derived(&format!("managed{index}-"), vm_cid)
}

/// The image of a VM's managed NVMe disk `index`, in the VM's directory.
pub fn managed_nvme_disk(index: usize) -> String {
    format!("managed-nvme-{index}.qcow2")
}

/// `prefix` and hex digits of `cid`'s SHA-1, 20 characters in all.
fn derived(prefix: &str, cid: &str) -> String {
    let digest = Sha1::digest(cid.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{prefix}{}", &hex[..SERIAL_LEN - prefix.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_twenty_characters_and_stable() {
        let vm = "vm-5f0e77a8-1b2c-4d3e-8f90-a1b2c3d4e5f6";
        for serial in [root_serial(vm), ephemeral_serial(vm)] {
            assert_eq!(serial.len(), SERIAL_LEN, "{serial}");
        }
        assert!(root_serial(vm).starts_with("root-"));
        assert!(ephemeral_serial(vm).starts_with("eph-"));
        assert_eq!(raw_ephemeral_serial(vm, 1).len(), SERIAL_LEN);
        assert!(raw_ephemeral_serial(vm, 1).starts_with("raw1-"));
        assert_ne!(raw_ephemeral_serial(vm, 0), raw_ephemeral_serial(vm, 1));
        assert_eq!(root_serial(vm), root_serial(vm));
        assert_ne!(root_serial(vm), root_serial("vm-other"));
        let disk = new_disk_cid();
        assert_eq!(disk.len(), SERIAL_LEN);
        assert!(is_cid(&disk));
        assert_eq!(disk_serial(&disk), disk);
        let long = disk_serial("disk-5f0e77a8-1b2c-4d3e-8f90-a1b2c3d4e5f6");
        assert_eq!(long.len(), SERIAL_LEN);
        assert!(long.starts_with("disk-"));
    }

    #[test]
    fn only_made_resources_exist() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(!store.has_vm("vm-1"));
        std::fs::create_dir_all(store.vm_dir("vm-1")).unwrap();
        assert!(!store.has_vm("vm-1"), "a directory without vm.json");
        std::fs::write(store.vm_dir("vm-1").join(VM_FILE), "{}").unwrap();
        assert!(store.has_vm("vm-1"));
        assert!(!store.has_vm("../vms/vm-1"));
        assert_eq!(store.vm_cids().unwrap(), ["vm-1"]);
        std::fs::create_dir_all(store.disks_dir()).unwrap();
        std::fs::write(store.disk_image("disk-1"), "").unwrap();
        assert!(store.has_disk("disk-1"));
        assert!(!store.has_stemcell("stemcell-1"));
    }

    #[test]
    fn the_disks_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let held = store.lock_disks().unwrap();
        let file = File::open(store.disks_dir()).unwrap();
        let (_, errno) = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap_err();
        assert_eq!(errno, nix::errno::Errno::EWOULDBLOCK);
        drop(held);
        let file = File::open(store.disks_dir()).unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
