//! The process CPI's state: files under the configured `base_dir`, the only state it has (each
//! call is a process of its own, and the director runs many at once).
//!
//! ```text
//! <base_dir>/lock                      flock(2)ed around read-modify-write of shared records
//! <base_dir>/stemcells/<cid>.json      {"image_path","cloud_properties","created_at"}
//! <base_dir>/disks/<cid>/              the disk
//! <base_dir>/disks/<cid>.json          {"size_mb","cloud_properties","vm_locality","attached_to","metadata"}
//! <base_dir>/vms/<cid>/                the VM: the agent's base dir (-b), and the CPI's files:
//!     vm.json                          what create_vm was given, and how the agent runs
//!     agent-settings.json              the agent's settings (its File settings source)
//!     agent.json                       the agent's config (-C)
//!     agent.log, supervisor.log        their output, appended
//!     supervisor.pid, agent.pid        their pids
//!     metadata.json                    set_vm_metadata
//! ```
//!
//! Every file is written whole, through a temporary file in the same directory, fsync(2) and
//! rename(2), so a reader (an agent reading its settings, a concurrent call) sees the old or the
//! new document, never a part. A record's presence is the resource's existence: a VM exists once
//! its `vm.json` does, a disk once its `.json` does, and deleting one removes the record first.
//! Cids are made here (`vm-`, `disk-`, `stemcell-` and a UUID); a cid from a request that is not
//! a plain file name ([`is_cid`]) names nothing, so it cannot reach outside `base_dir`.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::process_cpi::error::{Error, Result};

/// A VM's record.
pub const VM_FILE: &str = "vm.json";
/// A VM's agent settings.
pub const SETTINGS_FILE: &str = "agent-settings.json";
/// A VM's `agent.json`.
pub const AGENT_CONFIG_FILE: &str = "agent.json";
/// The agent's output.
pub const AGENT_LOG: &str = "agent.log";
/// The supervisor's output.
pub const SUPERVISOR_LOG: &str = "supervisor.log";
/// The supervisor's pid.
pub const SUPERVISOR_PID_FILE: &str = "supervisor.pid";
/// The running agent's pid, written by the supervisor.
pub const AGENT_PID_FILE: &str = "agent.pid";
/// `set_vm_metadata`'s metadata.
pub const METADATA_FILE: &str = "metadata.json";

/// Paths under `base_dir`.
#[derive(Debug, Clone)]
pub struct Store {
    base_dir: PathBuf,
}

/// The state lock, released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: Flock<File>,
}

impl Store {
    /// The state under `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Store {
        Store {
            base_dir: base_dir.into(),
        }
    }

    /// `stemcells/`.
    pub fn stemcells_dir(&self) -> PathBuf {
        self.base_dir.join("stemcells")
    }

    /// A stemcell's record.
    pub fn stemcell_file(&self, cid: &str) -> PathBuf {
        self.stemcells_dir().join(format!("{cid}.json"))
    }

    /// `vms/`.
    pub fn vms_dir(&self) -> PathBuf {
        self.base_dir.join("vms")
    }

    /// A VM's directory.
    pub fn vm_dir(&self, cid: &str) -> PathBuf {
        self.vms_dir().join(cid)
    }

    /// `disks/`.
    pub fn disks_dir(&self) -> PathBuf {
        self.base_dir.join("disks")
    }

    /// A disk's directory: the disk itself.
    pub fn disk_dir(&self, cid: &str) -> PathBuf {
        self.disks_dir().join(cid)
    }

    /// A disk's record.
    pub fn disk_file(&self, cid: &str) -> PathBuf {
        self.disks_dir().join(format!("{cid}.json"))
    }

    /// Whether the VM `cid` exists.
    pub fn has_vm(&self, cid: &str) -> bool {
        is_cid(cid) && self.vm_dir(cid).join(VM_FILE).is_file()
    }

    /// Whether the disk `cid` exists.
    pub fn has_disk(&self, cid: &str) -> bool {
        is_cid(cid) && self.disk_file(cid).is_file()
    }

    /// Takes the state lock (waiting for it), for a read-modify-write of records other calls may
    /// change at the same time.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.base_dir.join("lock");
        create_dir_all(&self.base_dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("opening", &path))?;
        let file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, source)| Error::Lock { path, source })?;
        Ok(Lock { _file: file })
    }
}

/// Whether `text` can be a cid made here: a non-empty file name of letters, digits, `-`, `_` and
/// `.` that does not start with a dot.
pub fn is_cid(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('.')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A new cid: `prefix` and a UUID.
pub fn new_cid(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync(2), rename(2).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Unique per writer: two calls writing the same file must not share a temporary file.
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        // Settings carry the agent's private key: owner only.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(Error::io("writing", path))
}

/// Writes `value` as JSON to `path` atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads the JSON file at `path`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

/// `mkdir -p`.
pub fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io("creating", path))
}

/// Removes a file; one that is gone already is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("removing", path)(err))
        }
        _ => Ok(()),
    }
}

/// Removes a directory tree; one that is gone already is fine.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("removing", path)(err))
        }
        _ => Ok(()),
    }
}

/// Seconds since the Unix epoch, for records.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_cids() {
        for cid in ["vm-5f0e77a8-1b2c-4d3e-8f90-a1b2c3d4e5f6", "disk_1", "sc.1"] {
            assert!(is_cid(cid), "{cid}");
        }
        for cid in [
            "", ".", "..", "../etc", "a/b", "/abs", ".hidden", "a b", "a\n",
        ] {
            assert!(!is_cid(cid), "{cid:?}");
        }
        assert!(is_cid(&new_cid("vm")));
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.json");
        write_json(&path, &serde_json::json!({"a": 1})).unwrap();
        write_json(&path, &serde_json::json!({"a": 2})).unwrap();
        let value: serde_json::Value = read_json(&path).unwrap();
        assert_eq!(value, serde_json::json!({"a": 2}));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["vm.json"]);
    }

    #[test]
    fn a_failed_write_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("vm.json");
        let err = write_atomic(&path, b"{}").unwrap_err();
        assert!(
            err.message()
                .starts_with(&format!("writing {}: ", path.display())),
            "{}",
            err.message()
        );
    }

    #[test]
    fn the_lock_is_exclusive_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let held = store.lock().unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("lock"))
            .unwrap();
        let (_, errno) = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap_err();
        assert_eq!(errno, nix::errno::Errno::EWOULDBLOCK);
        drop(held);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("lock"))
            .unwrap();
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
