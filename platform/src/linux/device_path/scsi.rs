//! `scsi` device path resolution (`scsi_*_device_path_resolver.go`), the first of these the disk
//! settings allow:
//! * `id` (the device id): every SCSI host rescanned, then `/dev/disk/by-id/*<id without dashes>`;
//! * `volume_id`: the boot disk's SCSI host rescanned, then
//!   `/sys/bus/scsi/devices/<host>:0:<volume_id>:0/block/*`;
//! * `lun` with `host_device_id` (Hyper-V and Azure): every SCSI host rescanned, the VMBus device
//!   whose `device_id` is the host device id found under `/sys/bus/vmbus/devices/`, then the block
//!   device of `/sys/bus/scsi/devices/*:*:*:<lun>/block/*` whose `/sys/class/block/` link goes
//!   through that VMBus device (the same lun exists on every controller).
//!
//! Each waits up to [`Resolver::scsi_wait`] (Go's 50 s) for the device.

use std::path::PathBuf;
use std::time::Instant;

use settings::model::DiskSettings;

use super::{Found, Resolver, file_name, find_by_id, host_glob, list, rescan};
use crate::HostPaths;
use crate::bootstrap::{Error, Result};

impl Resolver {
    /// The `scsi` resolver: by device id, else volume id, else lun and host device id.
    pub(super) fn scsi(&self, host: &HostPaths, disk: &DiskSettings) -> Result<Found> {
        if !disk.device_id.is_empty() {
            return self.scsi_by_id(host, disk);
        }
        if !disk.volume_id.is_empty() {
            return self.scsi_by_volume_id(host, disk);
        }
        if !disk.lun.is_empty() && !disk.host_device_id.is_empty() {
            return self.scsi_by_lun(host, disk);
        }
        Err(Error::Settings(
            "Neither ID, VolumeID nor (Lun, HostDeviceID) provided in disk settings".to_owned(),
        ))
    }

    fn scsi_by_id(&self, host: &HostPaths, disk: &DiskSettings) -> Result<Found> {
        rescan_every_host(host)?;
        let glob = format!("*{}", disk.device_id.replace('-', ""));
        self.poll_for(
            || find_by_id(host, &glob),
            || {
                format!(
                    "timed out getting real device path for '{}'",
                    disk.device_id
                )
            },
        )
    }

    fn scsi_by_volume_id(&self, host: &HostPaths, disk: &DiskSettings) -> Result<Found> {
        let devices = host.sys("bus/scsi/devices");
        // The boot disk's host: the first component of `<host>:0:0:0` with an `sd*` block device.
        let host_id = list(&devices)?
            .into_iter()
            .filter(|dir| file_name(dir).ends_with(":0:0:0"))
            .filter(|dir| {
                list(&dir.join("block")).is_ok_and(|blocks| {
                    blocks
                        .iter()
                        .any(|block| file_name(block).starts_with("sd"))
                })
            })
            .filter_map(|dir| file_name(&dir).split(':').next().map(str::to_owned))
            .next_back()
            .ok_or_else(|| Error::Host("Zero length hostID".to_owned()))?;
        rescan(&host.sys(&format!("class/scsi_host/host{host_id}/scan")))?;
        let block = devices.join(format!("{host_id}:0:{}:0/block", disk.volume_id));
        self.poll_for(
            || Ok(list(&block)?.first().map(|path| host.dev(&file_name(path)))),
            || {
                format!(
                    "timed out getting real device path for volume '{}'",
                    disk.volume_id
                )
            },
        )
    }

    fn scsi_by_lun(&self, host: &HostPaths, disk: &DiskSettings) -> Result<Found> {
        rescan_every_host(host)?;
        let vmbus_device = host_glob(host, "/sys/bus/vmbus/devices/*/device_id")?
            .into_iter()
            .find(|id_file| {
                std::fs::read_to_string(id_file).is_ok_and(|id| id.trim() == disk.host_device_id)
            })
            .and_then(|id_file| id_file.parent().map(file_name))
            .ok_or_else(|| {
                Error::Host(format!(
                    "Cannot find the vmbus device by host_device_id '{}'",
                    disk.host_device_id
                ))
            })?;
        tracing::debug!(
            vmbus_device,
            host_device_id = disk.host_device_id,
            "found the VMBus device of the data disks"
        );
        let through = format!("/{vmbus_device}/");
        let pattern = format!("/sys/bus/scsi/devices/*:*:*:{}/block/*", disk.lun);
        self.poll_for(
            || {
                Ok(host_glob(host, &pattern)?
                    .iter()
                    .map(|block| file_name(block))
                    .find(|name| {
                        std::fs::canonicalize(host.sys(&format!("class/block/{name}")))
                            .is_ok_and(|sys| sys.to_string_lossy().contains(&through))
                            && host.dev(name).exists()
                    })
                    .map(|name| host.dev(&name)))
            },
            || {
                format!(
                    "Timed out getting real device path by lun '{}' and host_device_id '{}'",
                    disk.lun, disk.host_device_id
                )
            },
        )
    }

    /// Calls `look` until it finds a device or [`Resolver::scsi_wait`] has passed.
    fn poll_for(
        &self,
        mut look: impl FnMut() -> Result<Option<PathBuf>>,
        timed_out: impl FnOnce() -> String,
    ) -> Result<Found> {
        let deadline = Instant::now() + self.scsi_wait;
        loop {
            if let Some(path) = look()? {
                return Ok(Found::Device(path));
            }
            if Instant::now() >= deadline {
                return Ok(Found::TimedOut(timed_out()));
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// Asks every SCSI host (`/sys/class/scsi_host/host*`) to scan for new devices.
fn rescan_every_host(host: &HostPaths) -> Result<()> {
    for dir in list(&host.sys("class/scsi_host"))? {
        if file_name(&dir).starts_with("host") {
            rescan(&dir.join("scan"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fake_dev, resolver};
    use std::path::Path;

    use super::*;
    use crate::testing::RecordingRunner;

    /// A relative link at `link` to `target`, its directories made.
    fn link(target: &str, link: &Path) {
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, link).unwrap();
    }

    #[test]
    fn scsi_disks_are_found_after_a_rescan_by_id_or_volume_id() {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        fake_dev(&base);
        for host_dir in ["host0", "host2"] {
            std::fs::create_dir_all(base.join("sys/class/scsi_host").join(host_dir)).unwrap();
        }
        std::os::unix::fs::symlink(
            "../../vdb",
            base.join("dev/disk/by-id/scsi-36000c29a1b2c3d4e5f60718293a4b5c6"),
        )
        .unwrap();
        let host = HostPaths::with_root(&base);
        let runner = RecordingRunner::new();
        let mut resolver = resolver();
        resolver.kind = "scsi".into();
        let by_id = DiskSettings {
            device_id: "6000c29a-1b2c-3d4e-5f60-718293a4b5c6".into(),
            ..DiskSettings::default()
        };
        assert_eq!(
            resolver.resolve(&runner, &host, &by_id).unwrap(),
            base.join("dev/vdb")
        );
        for host_dir in ["host0", "host2"] {
            let scan = base.join("sys/class/scsi_host").join(host_dir).join("scan");
            assert_eq!(std::fs::read_to_string(scan).unwrap(), "- - -");
        }

        // By volume id: the boot disk is on host 2 (2:0:0:0 holds sda).
        std::fs::create_dir_all(base.join("sys/bus/scsi/devices/2:0:0:0/block/sda")).unwrap();
        std::fs::create_dir_all(base.join("sys/bus/scsi/devices/2:0:3:0/block/sdc")).unwrap();
        std::fs::remove_file(base.join("sys/class/scsi_host/host2/scan")).unwrap();
        let by_volume = DiskSettings {
            volume_id: "3".into(),
            ..DiskSettings::default()
        };
        assert_eq!(
            resolver.resolve(&runner, &host, &by_volume).unwrap(),
            base.join("dev/sdc")
        );
        assert!(base.join("sys/class/scsi_host/host2/scan").exists());
        let missing = DiskSettings {
            volume_id: "4".into(),
            ..DiskSettings::default()
        };
        assert_eq!(
            resolver.find(&runner, &host, &missing).unwrap(),
            Found::TimedOut("timed out getting real device path for volume '4'".into())
        );
        assert_eq!(
            resolver
                .resolve(&runner, &host, &DiskSettings::default())
                .unwrap_err()
                .to_string(),
            "Neither ID, VolumeID nor (Lun, HostDeviceID) provided in disk settings"
        );
        assert!(runner.recorded().is_empty());
    }

    /// A Hyper-V guest: two VMBus SCSI controllers, each with a disk at lun 2; the data disks'
    /// controller is the one whose `device_id` the settings name.
    fn fake_hyperv(base: &Path) {
        std::fs::create_dir_all(base.join("sys/class/scsi_host/host0")).unwrap();
        std::fs::create_dir_all(base.join("sys/class/scsi_host/host3")).unwrap();
        for (controller, id, scsi, name) in [
            (
                "f8b3781a-1e82-4818-a1c3-63d806ec15bb",
                "{os-disks}",
                "0:0:0:2",
                "sda",
            ),
            (
                "f8b3781b-1e82-4818-a1c3-63d806ec15bb",
                "{data-disks}",
                "3:0:0:2",
                "sdc",
            ),
        ] {
            let vmbus = base
                .join("sys/devices/LNXSYSTM:00/VMBUS:00")
                .join(controller);
            let block = vmbus.join(format!("host/target/{scsi}/block/{name}"));
            std::fs::create_dir_all(&block).unwrap();
            std::fs::write(vmbus.join("device_id"), format!("{id}\n")).unwrap();
            link(
                &format!("../../../devices/LNXSYSTM:00/VMBUS:00/{controller}"),
                &base.join("sys/bus/vmbus/devices").join(controller),
            );
            link(
                &format!("../../../devices/LNXSYSTM:00/VMBUS:00/{controller}/host/target/{scsi}"),
                &base.join("sys/bus/scsi/devices").join(scsi),
            );
            link(
                &format!(
                    "../../devices/LNXSYSTM:00/VMBUS:00/{controller}/host/target/{scsi}/block/{name}"
                ),
                &base.join("sys/class/block").join(name),
            );
            std::fs::write(base.join("dev").join(name), "").unwrap();
        }
    }

    #[test]
    fn hyperv_disks_are_found_by_lun_under_the_vmbus_device_of_the_host_device_id() {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        fake_dev(&base);
        fake_hyperv(&base);
        let host = HostPaths::with_root(&base);
        let runner = RecordingRunner::new();
        let mut resolver = resolver();
        resolver.kind = "scsi".into();
        let data = DiskSettings {
            lun: "2".into(),
            host_device_id: "{data-disks}".into(),
            ..DiskSettings::default()
        };
        // Both controllers have a lun 2; the data disks' controller holds sdc.
        assert_eq!(
            resolver.resolve(&runner, &host, &data).unwrap(),
            base.join("dev/sdc")
        );
        for scsi_host in ["host0", "host3"] {
            let scan = base
                .join("sys/class/scsi_host")
                .join(scsi_host)
                .join("scan");
            assert_eq!(std::fs::read_to_string(scan).unwrap(), "- - -");
        }
        let os = DiskSettings {
            host_device_id: "{os-disks}".into(),
            ..data.clone()
        };
        assert_eq!(
            resolver.resolve(&runner, &host, &os).unwrap(),
            base.join("dev/sda")
        );
        let absent = DiskSettings {
            lun: "5".into(),
            ..data.clone()
        };
        assert_eq!(
            resolver.find(&runner, &host, &absent).unwrap(),
            Found::TimedOut(
                "Timed out getting real device path by lun '5' and host_device_id '{data-disks}'"
                    .into()
            )
        );
        let unknown = DiskSettings {
            host_device_id: "{elsewhere}".into(),
            ..data
        };
        assert_eq!(
            resolver
                .resolve(&runner, &host, &unknown)
                .unwrap_err()
                .to_string(),
            "Cannot find the vmbus device by host_device_id '{elsewhere}'"
        );
        assert!(runner.recorded().is_empty());
    }
}
