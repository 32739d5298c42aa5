//! The disk methods: `create_disk`, `delete_disk`, `has_disk`, `attach_disk`, `detach_disk`,
//! `get_disks`, `resize_disk` (`docs-bosh: content/cpi-api-v2-method/*`).
//!
//! A disk is a qcow2 image `<state_dir>/disks/<cid>.qcow2`, made by `qemu-img create`. Its cid is
//! 20 characters, so it is its own virtio serial (`store::disk_serial`): the guest sees it as
//! `/dev/disk/by-id/virtio-<cid>`. Which VM a disk is attached to is recorded only in that VM's
//! `vm.json` (`attached`, and the hint in its settings' `disks.persistent`, as the process CPI
//! records it), so `get_disks` and a restarted QEMU know it; the config drive is rewritten with
//! the new settings for the next boot, while the running agent learns the hint from the director's
//! `add_persistent_disk`.
//!
//! `attach_disk` hot-plugs the disk into the running QEMU over QMP (`blockdev-add` of a qcow2
//! node over the file, then `device_add` of a `virtio-blk-pci` with the serial and a stable id)
//! and answers the hint `{"id": <serial>, "path": "/dev/vd<letter>"}`, the letter being the first
//! from `c` no other attached disk has. On a VM with `persistent_disk_bus: scsi` the device is a
//! `scsi-hd` on the VM's virtio-scsi controller at the first free lun, its serial the disk's
//! without dashes, and the hint `{"id": <serial>, "lun": "<lun>"}`. `detach_disk` asks for the device to go (`device_del`),
//! waits for QEMU's `DEVICE_DELETED` (which needs a guest OS that acknowledges the ACPI eject
//! request: without one it times out with a clear error and the disk stays attached), then
//! removes the node (`blockdev-del`). `resize_disk` runs `qemu-img resize` on a detached disk
//! only; growing is all it does, as BOSH CPIs do.

use std::time::{Duration, Instant};

use platform::cmd::Cmd;
use serde_json::{Value, json};
use thin_director::process_cpi::Error as CpiError;
use thin_director::process_cpi::wire::Request;

use crate::qemu_cpi::QemuCpi;
use crate::qemu_cpi::error::{Error, Result};
use crate::qemu_cpi::qemu::{SCSI_CONTROLLER, device_id, node_name};
use crate::qemu_cpi::qmp::{self, Qmp};
use crate::qemu_cpi::store;
use crate::qemu_cpi::vm::{self, Attachment};
use crate::qemu_cpi::{iso, settings};

/// One MiB.
const MIB: u64 = 1024 * 1024;

/// `create_disk(size, cloud_properties, vm_cid)`: the new disk's cid.
pub fn create_disk(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let size_mb = args.size(0, "size")?;
    args.object(1, "cloud_properties")?;
    args.optional_string(2, "vm_cid")?;
    if size_mb == 0 {
        return Err(CpiError::InvalidArgument {
            method: request.method.clone(),
            name: "size",
            problem: "must be at least 1 MiB".to_owned(),
        }
        .into());
    }
    let disk_cid = store::new_disk_cid();
    let disks_dir = cpi.store.disks_dir();
    store::create_dir_all(&disks_dir)?;
    // Made under a dot name and renamed: the disk exists once it is whole.
    let tmp = disks_dir.join(format!(".{disk_cid}.qcow2.tmp"));
    let made = cpi.qemu_img(
        Cmd::new(&cpi.config.qemu_img)
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&tmp)
            .arg(format!("{size_mb}M")),
        format!("creating disk '{disk_cid}'"),
    );
    let target = cpi.store.disk_image(&disk_cid);
    if let Err(err) =
        made.and_then(|()| std::fs::rename(&tmp, &target).map_err(Error::io("creating", &target)))
    {
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    tracing::info!(disk_cid, size_mb, "disk created");
    Ok(json!(disk_cid))
}

/// `delete_disk(disk_cid)`: refused while the disk is attached to a VM.
pub fn delete_disk(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let disk_cid = request.arguments().string(0, "disk_cid")?;
    let _disks = cpi.store.lock_disks()?;
    check_disk(cpi, disk_cid)?;
    refuse_attached(cpi, disk_cid)?;
    store::remove_file(&cpi.store.disk_image(disk_cid))?;
    tracing::info!(disk_cid, "disk deleted");
    Ok(Value::Null)
}

/// `has_disk(disk_cid)`.
pub fn has_disk(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let disk_cid = request.arguments().string(0, "disk_cid")?;
    Ok(json!(cpi.store.has_disk(disk_cid)))
}

/// `attach_disk(vm_cid, disk_cid)`: the disk hint. Attaching a disk to the VM it is attached to
/// again answers the same hint.
pub fn attach_disk(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let vm_cid = args.string(0, "vm_cid")?;
    let disk_cid = args.string(1, "disk_cid")?;
    let _disks = cpi.store.lock_disks()?;
    vm::check_vm(cpi, vm_cid)?;
    check_disk(cpi, disk_cid)?;
    if let Some(other) = attached_to(cpi, disk_cid)?.filter(|other| other != vm_cid) {
        return Err(CpiError::DiskAttached {
            disk_cid: disk_cid.to_owned(),
            vm_cid: other,
        }
        .into());
    }
    let _vm = vm::lock(cpi, vm_cid)?;
    let mut record = vm::read_record(cpi, vm_cid)?;
    if let Some(attachment) = record.attached.get(disk_cid) {
        return Ok(attachment.hint());
    }
    // A SCSI disk gets the first free lun and a serial without dashes (the agent's `scsi`
    // resolution looks for `/dev/disk/by-id/*<id without dashes>`, as for vSphere's ids); a
    // virtio disk the first free letter of its hint's path.
    let (serial, path, lun) = if record.machine.scsi_disks {
        let lun = (0..=255u32)
            .find(|lun| {
                record
                    .attached
                    .values()
                    .all(|other| other.lun != Some(*lun))
            })
            .ok_or_else(|| Error::NoDeviceName(vm_cid.to_owned()))?;
        (
            store::disk_serial(disk_cid).replace('-', ""),
            String::new(),
            Some(lun),
        )
    } else {
        let letter = ('c'..='z')
            .find(|letter| {
                let path = format!("/dev/vd{letter}");
                record.attached.values().all(|other| other.path != path)
            })
            .ok_or_else(|| Error::NoDeviceName(vm_cid.to_owned()))?;
        (
            store::disk_serial(disk_cid),
            format!("/dev/vd{letter}"),
            None,
        )
    };
    let vm_dir = cpi.store.vm_dir(vm_cid);
    let mut qmp = vm::connect(vm_cid, &vm_dir)?;
    let step = format!("attaching disk '{disk_cid}'");
    let node = node_name(disk_cid);
    qmp.execute(
        "blockdev-add",
        Some(json!({
            "driver": "qcow2",
            "node-name": node,
            "file": {"driver": "file", "filename": cpi.store.disk_image(disk_cid)},
        })),
    )
    .map_err(Error::qmp(vm_cid, step.clone()))?;
    let device = match lun {
        None => json!({
            "driver": "virtio-blk-pci",
            "drive": node,
            "id": device_id(disk_cid),
            "serial": serial,
        }),
        Some(lun) => json!({
            "driver": "scsi-hd",
            "bus": format!("{SCSI_CONTROLLER}.0"),
            "channel": 0,
            "scsi-id": 0,
            "lun": lun,
            "drive": node,
            "id": device_id(disk_cid),
            "serial": serial,
        }),
    };
    let added = qmp.execute("device_add", Some(device));
    if let Err(err) = added {
        let _ = qmp.execute("blockdev-del", Some(json!({"node-name": node})));
        return Err(Error::qmp(vm_cid, step)(err));
    }
    let attachment = Attachment { serial, path, lun };
    let hint = attachment.hint();
    settings::attach(&mut record.settings, disk_cid, hint.clone());
    record.attached.insert(disk_cid.to_owned(), attachment);
    vm::write_record(cpi, vm_cid, &record)?;
    iso::write_config_drive(cpi.runner.as_ref(), &vm_dir, vm_cid, &record.settings)?;
    tracing::info!(vm_cid, disk_cid, "disk attached");
    Ok(hint)
}

/// `detach_disk(vm_cid, disk_cid)`: `DiskNotAttached` when it is not attached to that VM.
pub fn detach_disk(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let vm_cid = args.string(0, "vm_cid")?;
    let disk_cid = args.string(1, "disk_cid")?;
    let _disks = cpi.store.lock_disks()?;
    let _vm = vm::lock(cpi, vm_cid)?;
    let mut record = vm::read_record(cpi, vm_cid)?;
    if !record.attached.contains_key(disk_cid) {
        return Err(CpiError::DiskNotAttached {
            vm_cid: vm_cid.to_owned(),
            disk_cid: disk_cid.to_owned(),
        }
        .into());
    }
    let vm_dir = cpi.store.vm_dir(vm_cid);
    // A QEMU that is not running holds no disk: only the record changes.
    if vm::running_pid(&vm_dir).is_some() {
        let mut qmp = vm::connect(vm_cid, &vm_dir)?;
        unplug(
            &mut qmp,
            vm_cid,
            disk_cid,
            Duration::from_secs(cpi.config.detach_timeout_secs),
        )?;
    }
    record.attached.remove(disk_cid);
    settings::detach(&mut record.settings, disk_cid);
    vm::write_record(cpi, vm_cid, &record)?;
    iso::write_config_drive(cpi.runner.as_ref(), &vm_dir, vm_cid, &record.settings)?;
    tracing::info!(vm_cid, disk_cid, "disk detached");
    Ok(Value::Null)
}

/// `get_disks(vm_cid)`: the cids of the disks attached to the VM.
pub fn get_disks(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    vm::check_vm(cpi, vm_cid)?;
    let record = vm::read_record(cpi, vm_cid)?;
    Ok(json!(record.attached.keys().collect::<Vec<_>>()))
}

/// `resize_disk(disk_cid, new_size)`: grows a detached disk to `new_size` MiB.
pub fn resize_disk(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let disk_cid = args.string(0, "disk_cid")?;
    let new_size_mb = args.size(1, "new_size")?;
    let _disks = cpi.store.lock_disks()?;
    check_disk(cpi, disk_cid)?;
    refuse_attached(cpi, disk_cid)?;
    let image = cpi.store.disk_image(disk_cid);
    let info = cpi
        .runner
        .run(
            &Cmd::new(&cpi.config.qemu_img)
                .args(["info", "--output=json", "-f", "qcow2"])
                .arg(&image),
        )
        .map_err(Error::command(format!(
            "reading the size of disk '{disk_cid}'"
        )))?;
    let size_bytes = serde_json::from_slice::<Value>(&info.stdout)
        .ok()
        .and_then(|info| info["virtual-size"].as_u64())
        .ok_or_else(|| Error::Resize {
            disk_cid: disk_cid.to_owned(),
            problem: "qemu-img info gave no virtual-size".to_owned(),
        })?;
    let new_size_bytes = new_size_mb.saturating_mul(MIB);
    if new_size_bytes < size_bytes {
        return Err(Error::Resize {
            disk_cid: disk_cid.to_owned(),
            problem: format!(
                "it is {} MiB; disks only grow, not to {new_size_mb} MiB",
                size_bytes / MIB
            ),
        });
    }
    if new_size_bytes > size_bytes {
        cpi.qemu_img(
            Cmd::new(&cpi.config.qemu_img)
                .args(["resize", "-q", "-f", "qcow2"])
                .arg(&image)
                .arg(format!("{new_size_mb}M")),
            format!("resizing disk '{disk_cid}'"),
        )?;
    }
    tracing::info!(disk_cid, new_size_mb, "disk resized");
    Ok(Value::Null)
}

/// The VM the disk is attached to, from the VMs' records.
pub fn attached_to(cpi: &QemuCpi, disk_cid: &str) -> Result<Option<String>> {
    for vm_cid in cpi.store.vm_cids()? {
        // A VM deleted meanwhile holds no disk.
        let Ok(record) = vm::read_record(cpi, &vm_cid) else {
            continue;
        };
        if record.attached.contains_key(disk_cid) {
            return Ok(Some(vm_cid));
        }
    }
    Ok(None)
}

/// `DiskNotFound` unless the disk exists.
fn check_disk(cpi: &QemuCpi, disk_cid: &str) -> Result<()> {
    if cpi.store.has_disk(disk_cid) {
        Ok(())
    } else {
        Err(CpiError::DiskNotFound(disk_cid.to_owned()).into())
    }
}

/// `DiskAttached` when the disk is attached to a VM.
fn refuse_attached(cpi: &QemuCpi, disk_cid: &str) -> Result<()> {
    match attached_to(cpi, disk_cid)? {
        Some(vm_cid) => Err(CpiError::DiskAttached {
            disk_cid: disk_cid.to_owned(),
            vm_cid,
        }
        .into()),
        None => Ok(()),
    }
}

/// Unplugs the disk's device and removes its node, waiting up to `timeout` for the guest.
fn unplug(qmp: &mut Qmp, vm_cid: &str, disk_cid: &str, timeout: Duration) -> Result<()> {
    let device = device_id(disk_cid);
    let step = format!("detaching disk '{disk_cid}'");
    if device_exists(qmp, &device).map_err(Error::qmp(vm_cid, step.clone()))? {
        match qmp.execute("device_del", Some(json!({"id": device}))) {
            Ok(_) => {}
            // A detach that timed out before left the request pending: wait for it again.
            Err(qmp::Error::Command { desc, .. }) if desc.contains("in the process of unplug") => {}
            Err(err) => return Err(Error::qmp(vm_cid, step)(err)),
        }
        let deadline = Instant::now() + timeout;
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            let deleted = qmp
                .wait_event("DEVICE_DELETED", |data| data["device"] == device, slice)
                .map_err(Error::qmp(vm_cid, step.clone()))?;
            if deleted.is_some()
                || !device_exists(qmp, &device).map_err(Error::qmp(vm_cid, step.clone()))?
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::DetachTimedOut {
                    vm_cid: vm_cid.to_owned(),
                    disk_cid: disk_cid.to_owned(),
                    device,
                    timeout_secs: timeout.as_secs(),
                });
            }
        }
    }
    match qmp.execute(
        "blockdev-del",
        Some(json!({"node-name": node_name(disk_cid)})),
    ) {
        Ok(_) => Ok(()),
        // Gone already (a detach that failed after the device went).
        Err(qmp::Error::Command { desc, .. }) if desc.contains("not found") => Ok(()),
        Err(err) => Err(Error::qmp(vm_cid, step)(err)),
    }
}

/// Whether QEMU has a device with the id `device` (`/machine/peripheral` holds user-created ones).
fn device_exists(qmp: &mut Qmp, device: &str) -> qmp::Result<bool> {
    let children = qmp.execute("qom-list", Some(json!({"path": "/machine/peripheral"})))?;
    Ok(children
        .as_array()
        .is_some_and(|children| children.iter().any(|child| child["name"] == device)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use platform::testing::{RecordingRunner, Reply};

    use super::*;
    use crate::qemu_cpi::config::Config;

    fn cpi(state_dir: &std::path::Path, runner: Arc<RecordingRunner>) -> QemuCpi {
        let config = Config::parse(
            json!({"state_dir": state_dir, "qemu_img": "/usr/bin/qemu-img"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        QemuCpi::with_runner(config, "/bin/qemu-cpi".into(), runner)
    }

    fn request(method: &str, arguments: Value) -> Request {
        Request::parse(
            json!({"method": method, "arguments": arguments, "api_version": 2})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn create_disk_makes_a_qcow2_under_a_dot_name() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        runner.expect(
            &[
                "/usr/bin/qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                RecordingRunner::ANY,
                "2048M",
            ],
            Reply::Fail(1, "qemu-img: disk full\n".into()),
        );
        let cpi = cpi(dir.path(), runner.clone());
        let err = create_disk(&cpi, &request("create_disk", json!([2048, {}, null]))).unwrap_err();
        let tmp = std::path::PathBuf::from(&runner.recorded()[0][5]);
        assert_eq!(tmp.parent(), Some(cpi.store.disks_dir().as_path()));
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".disk-") && name.ends_with(".qcow2.tmp"),
            "{name}"
        );
        assert!(
            err.message()
                .ends_with("qemu-img failed (exit status: 1): qemu-img: disk full"),
            "{}",
            err.message()
        );
        // Nothing is left and nothing exists.
        assert_eq!(std::fs::read_dir(cpi.store.disks_dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_zero_size_disk_is_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let cpi = cpi(dir.path(), runner.clone());
        let err = create_disk(&cpi, &request("create_disk", json!([0, {}]))).unwrap_err();
        assert_eq!(
            err.message(),
            "create_disk argument size: must be at least 1 MiB"
        );
        assert!(runner.recorded().is_empty());
    }

    #[test]
    fn resize_grows_a_detached_disk_and_refuses_to_shrink() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let cpi = cpi(dir.path(), runner.clone());
        std::fs::create_dir_all(cpi.store.disks_dir()).unwrap();
        let image = cpi.store.disk_image("disk-0123456789abcde");
        std::fs::write(&image, "").unwrap();
        let image = image.to_string_lossy().into_owned();
        let info = [
            "/usr/bin/qemu-img",
            "info",
            "--output=json",
            "-f",
            "qcow2",
            image.as_str(),
        ];
        runner.expect(&info, Reply::Ok(r#"{"virtual-size": 1073741824}"#.into()));
        runner.expect(
            &[
                "/usr/bin/qemu-img",
                "resize",
                "-q",
                "-f",
                "qcow2",
                image.as_str(),
                "2048M",
            ],
            Reply::Ok(String::new()),
        );
        resize_disk(
            &cpi,
            &request("resize_disk", json!(["disk-0123456789abcde", 2048])),
        )
        .unwrap();
        runner.expect(&info, Reply::Ok(r#"{"virtual-size": 1073741824}"#.into()));
        let err = resize_disk(
            &cpi,
            &request("resize_disk", json!(["disk-0123456789abcde", 512])),
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "resizing disk 'disk-0123456789abcde': it is 1024 MiB; disks only grow, not to 512 MiB"
        );
        assert!(runner.unused().is_empty());
        let err =
            resize_disk(&cpi, &request("resize_disk", json!(["disk-nope", 512]))).unwrap_err();
        assert_eq!(err.cloud_type(), "Bosh::Clouds::DiskNotFound");
    }
}
