//! `unmount_disk` (`agent/action/unmount_disk.go`): unmounts a persistent disk and says whether it was
//! mounted, in the Go agent's words (`Unmounted partition of {...}` / `Partition of {...} is not
//! mounted`, the disk printed as Go's `%+v` does, with the iSCSI password hidden).

use std::sync::Arc;

use settings::model::DiskSettings;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `unmount_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("unmount_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let disk_cid: String = invocation.args.get(0)?;
    blocking(move || {
        let disk = context.settings.persistent_disk_settings(&disk_cid)?;
        let unmounted = context.platform.unmount_persistent_disk(&disk)?;
        let message = if unmounted {
            format!("Unmounted partition of {}", go_format(&disk))
        } else {
            format!("Partition of {} is not mounted", go_format(&disk))
        };
        Ok(serde_json::json!({ "message": message }))
    })
    .await
}

/// A disk as Go's `%+v` prints `DiskSettings`.
fn go_format(disk: &DiskSettings) -> String {
    let password = if disk.iscsi_settings.password.is_empty() {
        ""
    } else {
        "<redacted>"
    };
    format!(
        "{{ID:{} DeviceID:{} VolumeID:{} Lun:{} HostDeviceID:{} Path:{} ISCSISettings:{{InitiatorName:{} Username:{} Target:{} Password:{}}} FileSystemType:{} MountOptions:[{}] Partitioner:{}}}",
        disk.id,
        disk.device_id,
        disk.volume_id,
        disk.lun,
        disk.host_device_id,
        disk.path,
        disk.iscsi_settings.initiator_name,
        disk.iscsi_settings.username,
        disk.iscsi_settings.target,
        password,
        disk.file_system_type,
        disk.mount_options.join(" "),
        disk.partitioner,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_print_as_go_prints_them() {
        let disk = DiskSettings {
            id: "disk-1".into(),
            path: "/dev/sdc".into(),
            volume_id: "/dev/sdc".into(),
            mount_options: vec!["noatime".into(), "nodev".into()],
            ..DiskSettings::default()
        };
        assert_eq!(
            go_format(&disk),
            "{ID:disk-1 DeviceID: VolumeID:/dev/sdc Lun: HostDeviceID: Path:/dev/sdc ISCSISettings:{InitiatorName: Username: Target: Password:} FileSystemType: MountOptions:[noatime nodev] Partitioner:}"
        );
    }
}
