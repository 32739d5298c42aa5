//! The QEMU command line of a VM, as a pure function of what `vm.json` records ([`argv`]), and
//! the QMP names of hot-plugged disks.
//!
//! Facts this follows (`DESIGN.md` §6, checked on QEMU 7.2): every disk is `-drive if=none` plus
//! `-device virtio-blk-pci,drive=..,serial=..` because QEMU 7.2 refuses `serial=` on `-drive`;
//! the root disk has `bootindex=0` and comes first, so the guest names it `/dev/vda` and the
//! ephemeral disk `/dev/vdb`; the config drive is a `-cdrom` on the default `pc` machine (the
//! stemcell kernel has no AHCI driver for `q35`'s). Serial 0 is the console log. QEMU runs
//! detached (`-daemonize`, `-pidfile`), so the CPI call returns while the VM keeps running, and
//! it is driven through its QMP socket afterwards. Network: user networking with `restrict=on`
//! (no way out but the `guestfwd`s to host loopback services) and a virtio NIC with the VM's MAC.
//!
//! Persistent disks attached when QEMU starts (a VM started again after QEMU stopped) are given
//! as `-blockdev` + `-device` with the same node name and device id `attach_disk` hot-plugs them
//! with, so `detach_disk` treats both alike.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::qemu_cpi::config::{Accel, Forward, GUEST_NET, GUEST_NET_PREFIX};
use crate::qemu_cpi::store;

/// How a VM's QEMU runs: what `create_vm` decided, kept in `vm.json` so a restart is the same VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The QEMU system emulator.
    pub qemu: PathBuf,
    /// The accelerator (never `auto`).
    pub accel: Accel,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// CPUs.
    pub cpus: u64,
    /// The NIC's MAC.
    pub mac: String,
    /// The root disk's serial.
    pub root_serial: String,
    /// The ephemeral disk's serial; empty when the VM has no ephemeral disk.
    pub ephemeral_serial: String,
    /// The raw ephemeral disks' serials (images `raw-ephemeral-<i>.qcow2`), after the ephemeral
    /// disk.
    #[serde(default)]
    pub raw_ephemeral_serials: Vec<String>,
    /// Whether the raw ephemeral disks are NVMe controllers (`raw_ephemeral_disk_bus: nvme`)
    /// rather than virtio disks.
    #[serde(default)]
    pub raw_ephemeral_nvme: bool,
    /// The serials of the NVMe disks that stand for a cloud's managed volumes (images
    /// `managed-nvme-<i>.qcow2`), before the raw ephemeral disks on the bus.
    #[serde(default)]
    pub managed_nvme_serials: Vec<String>,
    /// Whether persistent disks go on a virtio-scsi controller (`persistent_disk_bus: scsi`)
    /// rather than on the PCI bus as virtio disks.
    #[serde(default)]
    pub scsi_disks: bool,
    /// Guest addresses forwarded to host loopback services.
    pub forwards: Vec<Forward>,
    /// The `qemu-cpi` executable QEMU runs as `relay` for each forwarded connection.
    pub relay: PathBuf,
    /// Whether the test shell console is there.
    pub test_shell: bool,
}

/// The QEMU id of the virtio-scsi controller of VMs with `scsi_disks`.
pub const SCSI_CONTROLLER: &str = "scsi0";

/// A persistent disk attached when QEMU starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartDisk {
    /// Its cid.
    pub disk_cid: String,
    /// Its serial.
    pub serial: String,
    /// Its image.
    pub image: PathBuf,
    /// Its lun on the SCSI controller; `None` for a virtio disk.
    pub lun: Option<u32>,
}

/// QEMU's arguments (without the program) for the VM `vm_cid` in `vm_dir`.
pub fn argv(vm_cid: &str, vm_dir: &Path, machine: &Machine, disks: &[StartDisk]) -> Vec<OsString> {
    let path = |name: &str| vm_dir.join(name).to_string_lossy().into_owned();
    let mut args: Vec<String> = vec![
        "-name".into(),
        vm_cid.into(),
        "-machine".into(),
        "pc".into(),
        "-accel".into(),
        machine.accel.name().into(),
    ];
    // Under KVM the guest gets the host's CPU model; TCG's default model is what Debian needs.
    if machine.accel == Accel::Kvm {
        args.extend(["-cpu".into(), "host".into()]);
    }
    args.extend([
        "-m".into(),
        machine.memory_mb.to_string(),
        "-smp".into(),
        machine.cpus.to_string(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", path(store::CONSOLE_LOG)),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path(store::QMP_SOCKET)),
        "-pidfile".into(),
        path(store::PID_FILE),
        "-daemonize".into(),
        "-drive".into(),
        format!(
            "if=none,id=root,file={},format=qcow2",
            path(store::ROOT_DISK)
        ),
        "-device".into(),
        format!(
            "virtio-blk-pci,drive=root,serial={},bootindex=0",
            machine.root_serial
        ),
    ]);
    if !machine.ephemeral_serial.is_empty() {
        args.extend([
            "-drive".into(),
            format!(
                "if=none,id=ephemeral,file={},format=qcow2",
                path(store::EPHEMERAL_DISK)
            ),
            "-device".into(),
            format!(
                "virtio-blk-pci,drive=ephemeral,serial={}",
                machine.ephemeral_serial
            ),
        ]);
    }
    // A qcow2 image in the VM's directory as drive `id` of a `device` with `serial`.
    let mut disk = |id: String, image: String, device: &str, serial: &str| {
        args.extend([
            "-drive".into(),
            format!("if=none,id={id},file={},format=qcow2", path(&image)),
            "-device".into(),
            format!("{device},drive={id},serial={serial}"),
        ]);
    };
    for (index, serial) in machine.managed_nvme_serials.iter().enumerate() {
        disk(
            format!("managed{index}"),
            store::managed_nvme_disk(index),
            "nvme",
            serial,
        );
    }
    let raw_device = if machine.raw_ephemeral_nvme {
        "nvme"
    } else {
        "virtio-blk-pci"
    };
    for (index, serial) in machine.raw_ephemeral_serials.iter().enumerate() {
        disk(
            format!("raw{index}"),
            store::raw_ephemeral_disk(index),
            raw_device,
            serial,
        );
    }
    args.extend([
        "-cdrom".into(),
        path(store::CONFIG_DRIVE),
        "-netdev".into(),
        netdev(&machine.forwards, &machine.relay),
        "-device".into(),
        format!("virtio-net-pci,netdev=net0,mac={}", machine.mac),
    ]);
    if machine.scsi_disks {
        args.extend([
            "-device".into(),
            format!("virtio-scsi-pci,id={SCSI_CONTROLLER}"),
        ]);
    }
    for disk in disks {
        let device = match disk.lun {
            None => "virtio-blk-pci".to_owned(),
            Some(lun) => format!("scsi-hd,bus={SCSI_CONTROLLER}.0,channel=0,scsi-id=0,lun={lun}"),
        };
        args.extend([
            "-blockdev".into(),
            format!(
                "driver=qcow2,node-name={},file.driver=file,file.filename={}",
                node_name(&disk.disk_cid),
                disk.image.display()
            ),
            "-device".into(),
            format!(
                "{device},drive={},id={},serial={}",
                node_name(&disk.disk_cid),
                device_id(&disk.disk_cid),
                disk.serial
            ),
        ]);
    }
    if machine.test_shell {
        args.extend([
            "-device".into(),
            "virtio-serial-pci".into(),
            "-chardev".into(),
            format!(
                "socket,id=shell,path={},server=on,wait=off",
                path(store::SHELL_SOCKET)
            ),
            "-device".into(),
            "virtconsole,chardev=shell".into(),
        ]);
    }
    args.into_iter().map(OsString::from).collect()
}

/// The user network: restricted, with one `guestfwd` a forward, each connection carried by
/// `relay relay <host>` (`relay.rs` says why not `-tcp:<host>`).
pub fn netdev(forwards: &[Forward], relay: &Path) -> String {
    let mut netdev = format!("user,id=net0,restrict=on,net={GUEST_NET}/{GUEST_NET_PREFIX}");
    let relay = relay.to_string_lossy();
    // libslirp splits the command into argv the way a shell would (g_shell_parse_argv).
    let relay = if relay
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        relay.into_owned()
    } else {
        format!("'{}'", relay.replace('\'', r"'\''"))
    };
    for forward in forwards {
        // A comma is doubled to stay inside QEMU's option value.
        netdev.push_str(&format!(
            ",guestfwd=tcp:{}-cmd:{} relay {}",
            forward.guest,
            relay.replace(',', ",,"),
            forward.host
        ));
    }
    netdev
}

/// The block node name of a persistent disk.
pub fn node_name(disk_cid: &str) -> String {
    format!("drive-{disk_cid}")
}

/// The device id of a persistent disk.
pub fn device_id(disk_cid: &str) -> String {
    format!("dev-{disk_cid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            memory_mb: 1024,
            cpus: 2,
            mac: "52:54:00:aa:bb:cc".into(),
            root_serial: "root-0123456789abcde".into(),
            ephemeral_serial: "eph-0123456789abcdef".into(),
            raw_ephemeral_serials: Vec::new(),
            raw_ephemeral_nvme: false,
            managed_nvme_serials: Vec::new(),
            scsi_disks: false,
            forwards: vec![
                Forward {
                    guest: "10.0.2.100:4222".parse().unwrap(),
                    host: "127.0.0.1:41222".parse().unwrap(),
                },
                Forward {
                    guest: "10.0.2.101:25250".parse().unwrap(),
                    host: "127.0.0.1:35250".parse().unwrap(),
                },
            ],
            relay: "/bin/qemu-cpi".into(),
            test_shell: false,
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect()
    }

    #[test]
    fn a_vm_boots_from_virtio_disks_with_a_config_drive_and_a_restricted_network() {
        let args = strings(argv("vm-1", Path::new("/s/vms/vm-1"), &machine(), &[]));
        assert_eq!(
            args,
            [
                "-name",
                "vm-1",
                "-machine",
                "pc",
                "-accel",
                "tcg",
                "-m",
                "1024",
                "-smp",
                "2",
                "-nodefaults",
                "-display",
                "none",
                "-serial",
                "file:/s/vms/vm-1/console.log",
                "-qmp",
                "unix:/s/vms/vm-1/qmp.sock,server=on,wait=off",
                "-pidfile",
                "/s/vms/vm-1/qemu.pid",
                "-daemonize",
                "-drive",
                "if=none,id=root,file=/s/vms/vm-1/root.qcow2,format=qcow2",
                "-device",
                "virtio-blk-pci,drive=root,serial=root-0123456789abcde,bootindex=0",
                "-drive",
                "if=none,id=ephemeral,file=/s/vms/vm-1/ephemeral.qcow2,format=qcow2",
                "-device",
                "virtio-blk-pci,drive=ephemeral,serial=eph-0123456789abcdef",
                "-cdrom",
                "/s/vms/vm-1/config-drive.iso",
                "-netdev",
                "user,id=net0,restrict=on,net=10.0.2.0/24,\
                 guestfwd=tcp:10.0.2.100:4222-cmd:/bin/qemu-cpi relay 127.0.0.1:41222,\
                 guestfwd=tcp:10.0.2.101:25250-cmd:/bin/qemu-cpi relay 127.0.0.1:35250",
                "-device",
                "virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc",
            ]
        );
    }

    #[test]
    fn no_ephemeral_disk_leaves_its_drive_out_and_raw_ephemeral_disks_follow() {
        let mut machine = machine();
        machine.ephemeral_serial = String::new();
        machine.raw_ephemeral_serials = vec!["raw0-0123456789abcde".into()];
        let args = strings(argv("vm-1", Path::new("/s/vms/vm-1"), &machine, &[]));
        let root = args
            .iter()
            .position(|arg| arg.starts_with("virtio-blk-pci,drive=root,"))
            .unwrap();
        assert_eq!(
            args[root + 1..root + 6],
            [
                "-drive",
                "if=none,id=raw0,file=/s/vms/vm-1/raw-ephemeral-0.qcow2,format=qcow2",
                "-device",
                "virtio-blk-pci,drive=raw0,serial=raw0-0123456789abcde",
                "-cdrom",
            ]
        );
        assert!(!args.iter().any(|arg| arg.contains("ephemeral.qcow2")));

        // NVMe raw disks, after the managed NVMe disks.
        machine.raw_ephemeral_nvme = true;
        machine.managed_nvme_serials = vec!["managed0-0123456789a".into()];
        let args = strings(argv("vm-1", Path::new("/s/vms/vm-1"), &machine, &[]));
        assert_eq!(
            args[root + 1..root + 10],
            [
                "-drive",
                "if=none,id=managed0,file=/s/vms/vm-1/managed-nvme-0.qcow2,format=qcow2",
                "-device",
                "nvme,drive=managed0,serial=managed0-0123456789a",
                "-drive",
                "if=none,id=raw0,file=/s/vms/vm-1/raw-ephemeral-0.qcow2,format=qcow2",
                "-device",
                "nvme,drive=raw0,serial=raw0-0123456789abcde",
                "-cdrom",
            ]
        );
    }

    #[test]
    fn an_odd_relay_path_is_quoted_for_slirp_and_escaped_for_qemu() {
        let forward = [Forward {
            guest: "10.0.2.100:4222".parse().unwrap(),
            host: "127.0.0.1:4222".parse().unwrap(),
        }];
        assert_eq!(
            netdev(&forward, Path::new("/my dir,x/it's/qemu-cpi")),
            "user,id=net0,restrict=on,net=10.0.2.0/24,\
             guestfwd=tcp:10.0.2.100:4222-cmd:'/my dir,,x/it'\\''s/qemu-cpi' relay 127.0.0.1:4222"
        );
    }

    #[test]
    fn kvm_gets_the_host_cpu() {
        let machine = Machine {
            accel: Accel::Kvm,
            ..machine()
        };
        let args = strings(argv("vm-1", Path::new("/v"), &machine, &[]));
        assert_eq!(args[4..8], ["-accel", "kvm", "-cpu", "host"]);
    }

    #[test]
    fn attached_disks_and_the_test_shell_come_last() {
        let machine = Machine {
            test_shell: true,
            forwards: vec![],
            ..machine()
        };
        let disks = [StartDisk {
            disk_cid: "disk-0123456789abcde".into(),
            serial: "disk-0123456789abcde".into(),
            image: "/s/disks/disk-0123456789abcde.qcow2".into(),
            lun: None,
        }];
        let args = strings(argv("vm-1", Path::new("/v"), &machine, &disks));
        assert!(args.contains(&"user,id=net0,restrict=on,net=10.0.2.0/24".to_owned()));
        let tail = &args[args.len() - 10..];
        assert_eq!(
            tail,
            [
                "-blockdev",
                "driver=qcow2,node-name=drive-disk-0123456789abcde,file.driver=file,\
                 file.filename=/s/disks/disk-0123456789abcde.qcow2",
                "-device",
                "virtio-blk-pci,drive=drive-disk-0123456789abcde,id=dev-disk-0123456789abcde,\
                 serial=disk-0123456789abcde",
                "-device",
                "virtio-serial-pci",
                "-chardev",
                "socket,id=shell,path=/v/shell.sock,server=on,wait=off",
                "-device",
                "virtconsole,chardev=shell",
            ]
        );

        // With SCSI disks: the controller, then each disk at its lun on it.
        let machine = Machine {
            scsi_disks: true,
            test_shell: false,
            ..machine
        };
        let disks = [StartDisk {
            lun: Some(2),
            serial: "disk0123456789abcde".into(),
            ..disks[0].clone()
        }];
        let args = strings(argv("vm-1", Path::new("/v"), &machine, &disks));
        assert_eq!(
            args[args.len() - 6..],
            [
                "-device",
                "virtio-scsi-pci,id=scsi0",
                "-blockdev",
                "driver=qcow2,node-name=drive-disk-0123456789abcde,file.driver=file,\
                 file.filename=/s/disks/disk-0123456789abcde.qcow2",
                "-device",
                "scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=2,drive=drive-disk-0123456789abcde,\
                 id=dev-disk-0123456789abcde,serial=disk0123456789abcde",
            ]
        );
    }
}
