//! The disk methods: `create_disk`, `delete_disk`, `has_disk`, `attach_disk`, `detach_disk`,
//! `get_disks`, `set_disk_metadata` (`docs-bosh: content/cpi-api-v2-method/*`).
//!
//! A disk is a directory `<base_dir>/disks/<cid>/` with its record beside it (`<cid>.json`: size
//! in MiB, cloud properties, the VM it was made near, the VM it is attached to, metadata).
//! Attaching records the disk in the VM's settings (`disks.persistent`, with the hint
//! `settings.rs` describes), where the agent's `add_persistent_disk`, `mount_disk` and `list_disk`
//! read it back from its File settings source, and in the disk's record, so a disk is attached to
//! one VM at a time. Every read-modify-write of a settings document or a disk record happens under
//! the state lock: the director attaches and detaches disks of many VMs at once.
//!
//! Nothing is mounted: the dummy platform records mounts without making them, so what jobs write
//! to the VM's `store` stays in the VM directory, not in the disk's.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::process_cpi::ProcessCpi;
use crate::process_cpi::error::{Error, Result};
use crate::process_cpi::settings;
use crate::process_cpi::store::{self, is_cid};
use crate::process_cpi::wire::Request;

/// A disk's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskRecord {
    /// Its size in MiB.
    pub size_mb: u64,
    /// Its cloud properties.
    pub cloud_properties: Value,
    /// The VM it was made near, if `create_disk` named one.
    pub vm_locality: Option<String>,
    /// The VM it is attached to.
    pub attached_to: Option<String>,
    /// `set_disk_metadata`'s metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// `create_disk(size, cloud_properties, vm_cid)`: the new disk's cid.
pub fn create_disk(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let size_mb = args.size(0, "size")?;
    let cloud_properties = args.object(1, "cloud_properties")?;
    let vm_locality = args.optional_string(2, "vm_cid")?;
    let disk_cid = store::new_cid("disk");
    let disk_dir = cpi.store.disk_dir(&disk_cid);
    store::create_dir_all(&disk_dir)?;
    let record = DiskRecord {
        size_mb,
        cloud_properties: Value::Object(cloud_properties),
        vm_locality: vm_locality.map(str::to_owned),
        attached_to: None,
        metadata: Map::new(),
    };
    // The record last: the disk exists once it does.
    if let Err(err) = store::write_json(&cpi.store.disk_file(&disk_cid), &record) {
        let _ = store::remove_dir_all(&disk_dir);
        return Err(err);
    }
    tracing::info!(disk_cid, size_mb, "disk created");
    Ok(json!(disk_cid))
}

/// `delete_disk(disk_cid)`: refused while the disk is attached to a VM.
pub fn delete_disk(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let disk_cid = request.arguments().string(0, "disk_cid")?;
    let _lock = cpi.store.lock()?;
    let record = read_record(cpi, disk_cid)?;
    if let Some(vm_cid) = record.attached_to.filter(|vm| cpi.store.has_vm(vm)) {
        return Err(Error::DiskAttached {
            disk_cid: disk_cid.to_owned(),
            vm_cid,
        });
    }
    store::remove_file(&cpi.store.disk_file(disk_cid))?;
    store::remove_dir_all(&cpi.store.disk_dir(disk_cid))?;
    tracing::info!(disk_cid, "disk deleted");
    Ok(Value::Null)
}

/// `has_disk(disk_cid)`.
pub fn has_disk(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let disk_cid = request.arguments().string(0, "disk_cid")?;
    Ok(json!(cpi.store.has_disk(disk_cid)))
}

/// `attach_disk(vm_cid, disk_cid)`: the disk hint. Attaching a disk to the VM it is attached to
/// again answers the same hint.
pub fn attach_disk(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let vm_cid = args.string(0, "vm_cid")?;
    let disk_cid = args.string(1, "disk_cid")?;
    let _lock = cpi.store.lock()?;
    if !cpi.store.has_vm(vm_cid) {
        return Err(Error::VmNotFound(vm_cid.to_owned()));
    }
    let mut record = read_record(cpi, disk_cid)?;
    if let Some(other) = record
        .attached_to
        .as_deref()
        .filter(|other| *other != vm_cid && cpi.store.has_vm(other))
    {
        return Err(Error::DiskAttached {
            disk_cid: disk_cid.to_owned(),
            vm_cid: other.to_owned(),
        });
    }
    let hint = settings::disk_hint(&cpi.store.disk_dir(disk_cid));
    let settings_path = cpi.store.vm_dir(vm_cid).join(store::SETTINGS_FILE);
    let mut vm_settings: Value = store::read_json(&settings_path)?;
    settings::attach(&mut vm_settings, disk_cid, hint.clone());
    store::write_json(&settings_path, &vm_settings)?;
    record.attached_to = Some(vm_cid.to_owned());
    store::write_json(&cpi.store.disk_file(disk_cid), &record)?;
    tracing::info!(vm_cid, disk_cid, "disk attached");
    Ok(hint)
}

/// `detach_disk(vm_cid, disk_cid)`: `DiskNotAttached` when it is not attached to that VM.
pub fn detach_disk(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let vm_cid = args.string(0, "vm_cid")?;
    let disk_cid = args.string(1, "disk_cid")?;
    let _lock = cpi.store.lock()?;
    if !cpi.store.has_vm(vm_cid) {
        return Err(Error::VmNotFound(vm_cid.to_owned()));
    }
    let settings_path = cpi.store.vm_dir(vm_cid).join(store::SETTINGS_FILE);
    let mut vm_settings: Value = store::read_json(&settings_path)?;
    if !settings::detach(&mut vm_settings, disk_cid) {
        return Err(Error::DiskNotAttached {
            vm_cid: vm_cid.to_owned(),
            disk_cid: disk_cid.to_owned(),
        });
    }
    store::write_json(&settings_path, &vm_settings)?;
    release(cpi, disk_cid, vm_cid)?;
    tracing::info!(vm_cid, disk_cid, "disk detached");
    Ok(Value::Null)
}

/// `get_disks(vm_cid)`: the cids of the disks attached to the VM.
pub fn get_disks(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    if !cpi.store.has_vm(vm_cid) {
        return Err(Error::VmNotFound(vm_cid.to_owned()));
    }
    let vm_settings: Value =
        store::read_json(&cpi.store.vm_dir(vm_cid).join(store::SETTINGS_FILE))?;
    Ok(json!(settings::persistent_disks(&vm_settings)))
}

/// `set_disk_metadata(disk_cid, metadata)`: kept in the disk's record.
pub fn set_disk_metadata(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let disk_cid = args.string(0, "disk_cid")?;
    let metadata = args.object(1, "metadata")?;
    let _lock = cpi.store.lock()?;
    let mut record = read_record(cpi, disk_cid)?;
    record.metadata = metadata;
    store::write_json(&cpi.store.disk_file(disk_cid), &record)?;
    Ok(Value::Null)
}

/// Marks every disk attached to the VM in `vm_dir` as detached, for `delete_vm`; the caller
/// holds the state lock.
pub fn release_all(cpi: &ProcessCpi, vm_cid: &str, vm_dir: &Path) -> Result<()> {
    let vm_settings: Value = match store::read_json(&vm_dir.join(store::SETTINGS_FILE)) {
        Ok(vm_settings) => vm_settings,
        // A VM whose settings are unreadable has no disk anyone could detach.
        Err(err) => {
            tracing::warn!(vm_cid, error = %err.message(), "cannot read the VM's settings to release its disks");
            return Ok(());
        }
    };
    for disk_cid in settings::persistent_disks(&vm_settings) {
        release(cpi, &disk_cid, vm_cid)?;
    }
    Ok(())
}

/// Clears the disk's `attached_to` if it names `vm_cid`; a disk deleted meanwhile is fine.
fn release(cpi: &ProcessCpi, disk_cid: &str, vm_cid: &str) -> Result<()> {
    if !cpi.store.has_disk(disk_cid) {
        return Ok(());
    }
    let path = cpi.store.disk_file(disk_cid);
    let mut record: DiskRecord = store::read_json(&path)?;
    if record.attached_to.as_deref() == Some(vm_cid) {
        record.attached_to = None;
        store::write_json(&path, &record)?;
    }
    Ok(())
}

fn read_record(cpi: &ProcessCpi, disk_cid: &str) -> Result<DiskRecord> {
    if !is_cid(disk_cid) || !cpi.store.has_disk(disk_cid) {
        return Err(Error::DiskNotFound(disk_cid.to_owned()));
    }
    store::read_json(&cpi.store.disk_file(disk_cid))
}
