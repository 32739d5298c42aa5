//! The VM methods: `create_vm`, `delete_vm`, `has_vm`, `reboot_vm`, `set_vm_metadata`,
//! `calculate_vm_cloud_properties` (`docs-bosh: content/cpi-api-v2-method/*`).
//!
//! A VM is a directory `<state_dir>/vms/<cid>/` (layout in `store.rs`) and the QEMU process
//! started for it. `create_vm` makes the root overlay on the stemcell and the ephemeral disk with
//! `qemu-img`, writes the agent settings (`settings.rs`) onto the config drive (`iso.rs`),
//! records everything in `vm.json`, and starts QEMU detached (`qemu.rs`); it returns without
//! waiting for the guest, as the contract allows. `delete_vm` asks QEMU to `quit` over QMP,
//! SIGKILLs it (found through its pidfile) if it lingers, and removes the directory. `reboot_vm`
//! is QMP `system_reset`, or a fresh start when QEMU is not running. `has_vm` tells whether the
//! VM's record exists, not whether QEMU runs. An unknown cid is `VMNotFound`, which the director
//! tolerates on `delete_vm`.
//!
//! VM cloud properties (all optional): `cpu` (count) and `ram` (MiB), defaulting to the config's
//! `cpus` and `memory_mb`, and `ephemeral_disk_size` (MiB, default 4096; `0` for no ephemeral
//! disk); the ephemeral disk is a sparse qcow2. `root_disk_size` (MiB) makes the root overlay
//! that big instead of the stemcell image's size (as cloud CPIs make root disks bigger than the
//! image; the guest sees free space after its root partition). `raw_ephemeral_disks` (a list of
//! sizes in MiB) adds that many blank disks after the ephemeral one, listed in the settings'
//! `disks.raw_ephemeral`; `raw_ephemeral_disk_bus: nvme` makes them NVMe controllers instead of
//! virtio disks (a cloud's instance storage). `managed_nvme_disks` (sizes in MiB) adds NVMe disks
//! the settings do not list, first on the bus, standing for a cloud's managed volumes (EBS on
//! AWS Nitro) for the agent's instance-storage discovery. `persistent_disk_bus: scsi` puts a
//! virtio-scsi controller in the VM and attaches its persistent disks there as SCSI disks. `calculate_vm_cloud_properties` maps `{cpu, ram, ephemeral_disk_size}`
//! to them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use platform::cmd::Cmd;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use thin_director::process_cpi::Error as CpiError;
use thin_director::process_cpi::wire::Request;

use crate::qemu_cpi::QemuCpi;
use crate::qemu_cpi::config::kvm_opens;
use crate::qemu_cpi::error::{Error, Result};
use crate::qemu_cpi::iso;
use crate::qemu_cpi::qemu::{self, Machine, StartDisk};
use crate::qemu_cpi::qmp::Qmp;
use crate::qemu_cpi::settings::{self, NewVm};
use crate::qemu_cpi::store;

/// Where the process table is.
pub const PROC_ROOT: &str = "/proc";

/// The ephemeral disk's size unless the cloud properties say `ephemeral_disk_size`.
pub const DEFAULT_EPHEMERAL_DISK_MB: u64 = 4096;

/// The longest path a unix socket address holds (`sun_path` less its terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// How long QEMU gets to exit after `quit`, and again after SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// `vm.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    /// The agent id.
    pub agent_id: String,
    /// The stemcell the VM was made from.
    pub stemcell_cid: String,
    /// The VM's cloud properties.
    pub cloud_properties: Value,
    /// The networks, as the VM got them (with its MAC).
    pub networks: Value,
    /// The disks the director said it would attach.
    pub disk_cids: Vec<String>,
    /// When it was created, seconds after the epoch.
    pub created_at: u64,
    /// How its QEMU runs.
    pub machine: Machine,
    /// The agent settings on its config drive, with the hints of the attached disks.
    pub settings: Value,
    /// The persistent disks attached to it, by cid.
    #[serde(default)]
    pub attached: BTreeMap<String, Attachment>,
    /// `set_vm_metadata`'s metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// An attached persistent disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Its serial.
    pub serial: String,
    /// The name the hint gives a virtio disk in the guest (`/dev/vdc`); empty for a SCSI disk.
    pub path: String,
    /// A SCSI disk's lun.
    #[serde(default)]
    pub lun: Option<u32>,
}

impl Attachment {
    /// The hint `attach_disk` returned: `{"id", "path"}` for a virtio disk, `{"id", "lun"}` for
    /// a SCSI one (the agent's `scsi` resolution finds it by id after a rescan).
    pub fn hint(&self) -> Value {
        match self.lun {
            None => json!({"id": self.serial, "path": self.path}),
            Some(lun) => json!({"id": self.serial, "lun": lun.to_string()}),
        }
    }
}

/// What a VM runs on, from its cloud properties and the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// CPUs.
    pub cpus: u64,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// The ephemeral disk in MiB; 0 for none.
    pub ephemeral_disk_mb: u64,
    /// The root disk in MiB, when not the image's size.
    pub root_disk_mb: Option<u64>,
    /// The raw ephemeral disks' sizes in MiB.
    pub raw_ephemeral_disks_mb: Vec<u64>,
    /// Whether the raw ephemeral disks are NVMe controllers.
    pub raw_ephemeral_nvme: bool,
    /// The managed NVMe disks' sizes in MiB.
    pub managed_nvme_disks_mb: Vec<u64>,
    /// Whether persistent disks go on a SCSI controller.
    pub scsi_disks: bool,
}

/// `create_vm(agent_id, stemcell_cid, cloud_properties, networks, disk_cids, environment)`:
/// `[vm_cid, networks]` (the bare cid to a caller of the first contract).
pub fn create_vm(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let agent_id = args.string(0, "agent_id")?;
    let stemcell_cid = args.string(1, "stemcell_cid")?;
    let cloud_properties = args.object(2, "cloud_properties")?;
    let networks = args.object(3, "networks")?;
    let disk_cids = args.strings(4, "disk_cids")?;
    let env = args.object(5, "environment")?;
    if agent_id.is_empty() {
        return Err(CpiError::InvalidArgument {
            method: request.method.clone(),
            name: "agent_id",
            problem: "is empty".to_owned(),
        }
        .into());
    }
    if !cpi.store.has_stemcell(stemcell_cid) {
        return Err(CpiError::StemcellNotFound(stemcell_cid.to_owned()).into());
    }
    let resources =
        resources(&cloud_properties, cpi).map_err(|problem| CpiError::InvalidArgument {
            method: request.method.clone(),
            name: "cloud_properties",
            problem,
        })?;
    let backing = if cpi.config.test_shell {
        let layer = cpi.store.stemcell_dir(stemcell_cid).join(store::TEST_LAYER);
        if !layer.is_file() {
            return Err(Error::Missing {
                what: "the test layer",
                path: layer,
            });
        }
        layer
    } else {
        cpi.store.stemcell_image(stemcell_cid)
    };
    let vm_cid = store::new_vm_cid();
    let vm_dir = cpi.store.vm_dir(&vm_cid);
    for socket in [store::QMP_SOCKET, store::SHELL_SOCKET] {
        let path = vm_dir.join(socket);
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(Error::SocketPathTooLong { path, len });
        }
    }

    let mac = settings::mac_address(&vm_cid);
    let networks = settings::vm_networks(&networks, &mac);
    let machine = Machine {
        qemu: cpi.config.qemu.clone(),
        accel: cpi.config.accel.resolve(kvm_opens),
        memory_mb: resources.memory_mb,
        cpus: resources.cpus,
        mac,
        root_serial: store::root_serial(&vm_cid),
        ephemeral_serial: if resources.ephemeral_disk_mb == 0 {
            String::new()
        } else {
            store::ephemeral_serial(&vm_cid)
        },
        raw_ephemeral_serials: (0..resources.raw_ephemeral_disks_mb.len())
            .map(|index| store::raw_ephemeral_serial(&vm_cid, index))
            .collect(),
        raw_ephemeral_nvme: resources.raw_ephemeral_nvme,
        scsi_disks: resources.scsi_disks,
        managed_nvme_serials: (0..resources.managed_nvme_disks_mb.len())
            .map(|index| store::managed_nvme_serial(&vm_cid, index))
            .collect(),
        forwards: cpi.config.forwards.clone(),
        relay: cpi.relay_exe.clone(),
        test_shell: cpi.config.test_shell,
    };
    let agent_settings = settings::agent_settings(&NewVm {
        agent_id,
        vm_cid: &vm_cid,
        agent: &cpi.config.agent,
        networks: &networks,
        env: &env,
        ephemeral_serial: &machine.ephemeral_serial,
        raw_ephemeral_serials: &machine.raw_ephemeral_serials,
        raw_ephemeral_nvme: machine.raw_ephemeral_nvme,
        forwards: &cpi.config.forwards,
    });
    let record = VmRecord {
        agent_id: agent_id.to_owned(),
        stemcell_cid: stemcell_cid.to_owned(),
        cloud_properties: Value::Object(cloud_properties),
        networks: Value::Object(networks.clone()),
        disk_cids,
        created_at: store::now_secs(),
        machine,
        settings: agent_settings,
        attached: BTreeMap::new(),
        metadata: Map::new(),
    };
    store::create_dir_all(&cpi.store.vms_dir())?;
    std::fs::create_dir(&vm_dir).map_err(Error::io("creating", &vm_dir))?;
    let made = (|| {
        let mut root = Cmd::new(&cpi.config.qemu_img)
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&backing)
            .arg(vm_dir.join(store::ROOT_DISK));
        if let Some(mb) = resources.root_disk_mb {
            root = root.arg(format!("{mb}M"));
        }
        cpi.qemu_img(root, format!("creating the root disk of VM '{vm_cid}'"))?;
        // A blank sparse qcow2 of `mb` MiB named `name` in the VM's directory.
        let blank = |name: &str, mb: u64, what: String| {
            cpi.qemu_img(
                Cmd::new(&cpi.config.qemu_img)
                    .args(["create", "-q", "-f", "qcow2"])
                    .arg(vm_dir.join(name))
                    .arg(format!("{mb}M")),
                format!("creating {what} of VM '{vm_cid}'"),
            )
        };
        if resources.ephemeral_disk_mb > 0 {
            blank(
                store::EPHEMERAL_DISK,
                resources.ephemeral_disk_mb,
                "the ephemeral disk".to_owned(),
            )?;
        }
        for (index, mb) in resources.raw_ephemeral_disks_mb.iter().enumerate() {
            blank(
                &store::raw_ephemeral_disk(index),
                *mb,
                format!("raw ephemeral disk {index}"),
            )?;
        }
        for (index, mb) in resources.managed_nvme_disks_mb.iter().enumerate() {
            blank(
                &store::managed_nvme_disk(index),
                *mb,
                format!("managed NVMe disk {index}"),
            )?;
        }
        iso::write_config_drive(cpi.runner.as_ref(), &vm_dir, &vm_cid, &record.settings)?;
        store::write_json(&vm_dir.join(store::VM_FILE), &record)?;
        start(cpi, &vm_cid, &vm_dir, &record)
    })();
    if let Err(err) = made {
        // Nothing runs: the half-made VM goes, so `has_vm` never sees it.
        let _ = stop(&vm_cid, &vm_dir);
        let _ = store::remove_dir_all(&vm_dir);
        return Err(err);
    }
    tracing::info!(vm_cid, agent_id, "VM created");
    if request.is_v2() {
        Ok(json!([vm_cid, networks]))
    } else {
        Ok(json!(vm_cid))
    }
}

/// `delete_vm(vm_cid)`.
pub fn delete_vm(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    check_vm(cpi, vm_cid)?;
    let _disks = cpi.store.lock_disks()?;
    let _vm = lock(cpi, vm_cid)?;
    let vm_dir = cpi.store.vm_dir(vm_cid);
    stop(vm_cid, &vm_dir)?;
    // Renamed away first, so no call sees a VM half removed; a dot name is no cid.
    let doomed = cpi.store.vms_dir().join(format!(
        ".{vm_cid}.deleted-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::rename(&vm_dir, &doomed).map_err(Error::io("removing", &vm_dir))?;
    store::remove_dir_all(&doomed)?;
    tracing::info!(vm_cid, "VM deleted");
    Ok(Value::Null)
}

/// `has_vm(vm_cid)`.
pub fn has_vm(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    Ok(json!(cpi.store.has_vm(vm_cid)))
}

/// `reboot_vm(vm_cid)`: a reset of the running QEMU, or a fresh start when it is not running.
pub fn reboot_vm(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let vm_cid = request.arguments().string(0, "vm_cid")?;
    let _vm = lock(cpi, vm_cid)?;
    let vm_dir = cpi.store.vm_dir(vm_cid);
    if running_pid(&vm_dir).is_some() {
        connect(vm_cid, &vm_dir)?
            .execute("system_reset", None)
            .map_err(Error::qmp(vm_cid, "resetting the machine"))?;
    } else {
        let record = read_record(cpi, vm_cid)?;
        start(cpi, vm_cid, &vm_dir, &record)?;
    }
    tracing::info!(vm_cid, "VM rebooted");
    Ok(Value::Null)
}

/// `set_vm_metadata(vm_cid, metadata)`: kept in `vm.json`.
pub fn set_vm_metadata(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let vm_cid = args.string(0, "vm_cid")?;
    let metadata = args.object(1, "metadata")?;
    let _vm = lock(cpi, vm_cid)?;
    let mut record = read_record(cpi, vm_cid)?;
    record.metadata = metadata;
    write_record(cpi, vm_cid, &record)?;
    Ok(Value::Null)
}

/// `calculate_vm_cloud_properties({cpu, ram, ephemeral_disk_size})`: the cloud properties of a
/// VM with those resources.
pub fn calculate_vm_cloud_properties(_cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let wanted = request.arguments().object(0, "vm_resources")?;
    let mut properties = Map::new();
    for key in ["cpu", "ram", "ephemeral_disk_size"] {
        match wanted.get(key) {
            Some(value) if value.as_u64().is_some_and(|n| n > 0) => {
                properties.insert(key.to_owned(), value.clone());
            }
            _ => {
                return Err(CpiError::InvalidArgument {
                    method: request.method.clone(),
                    name: "vm_resources",
                    problem: format!("{key} must be a positive integer"),
                }
                .into());
            }
        }
    }
    Ok(Value::Object(properties))
}

/// The resources of a VM with `cloud_properties`; the problem names the property.
pub fn resources(
    cloud_properties: &Map<String, Value>,
    cpi: &QemuCpi,
) -> std::result::Result<Resources, String> {
    let read = |key: &str, default: u64| match cloud_properties.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{key} must be a positive integer, got {value}")),
    };
    let ephemeral_disk_mb = match cloud_properties.get("ephemeral_disk_size") {
        Some(Value::Number(n)) if n.as_u64() == Some(0) => 0,
        _ => read("ephemeral_disk_size", DEFAULT_EPHEMERAL_DISK_MB)?,
    };
    let root_disk_mb = match cloud_properties.get("root_disk_size") {
        None | Some(Value::Null) => None,
        Some(_) => Some(read("root_disk_size", 0)?),
    };
    let sizes = |key: &str| match cloud_properties.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(sizes)) if sizes.len() <= 8 => sizes
            .iter()
            .map(|size| {
                size.as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{key} must hold positive sizes in MiB, got {size}"))
            })
            .collect(),
        Some(other) => Err(format!(
            "{key} must be a list of at most 8 sizes in MiB, got {other}"
        )),
    };
    let raw_ephemeral_nvme = match cloud_properties.get("raw_ephemeral_disk_bus") {
        None | Some(Value::Null) => false,
        Some(Value::String(bus)) if bus == "virtio" => false,
        Some(Value::String(bus)) if bus == "nvme" => true,
        Some(other) => {
            return Err(format!(
                "raw_ephemeral_disk_bus must be \"virtio\" or \"nvme\", got {other}"
            ));
        }
    };
    let scsi_disks = match cloud_properties.get("persistent_disk_bus") {
        None | Some(Value::Null) => false,
        Some(Value::String(bus)) if bus == "virtio" => false,
        Some(Value::String(bus)) if bus == "scsi" => true,
        Some(other) => {
            return Err(format!(
                "persistent_disk_bus must be \"virtio\" or \"scsi\", got {other}"
            ));
        }
    };
    Ok(Resources {
        cpus: read("cpu", cpi.config.cpus)?,
        memory_mb: read("ram", cpi.config.memory_mb)?,
        ephemeral_disk_mb,
        root_disk_mb,
        raw_ephemeral_disks_mb: sizes("raw_ephemeral_disks")?,
        raw_ephemeral_nvme,
        managed_nvme_disks_mb: sizes("managed_nvme_disks")?,
        scsi_disks,
    })
}

/// `VMNotFound` unless the VM exists.
pub fn check_vm(cpi: &QemuCpi, vm_cid: &str) -> Result<()> {
    if cpi.store.has_vm(vm_cid) {
        Ok(())
    } else {
        Err(CpiError::VmNotFound(vm_cid.to_owned()).into())
    }
}

/// Locks the VM (`VMNotFound` when it does not exist, or was deleted while this call waited).
pub fn lock(cpi: &QemuCpi, vm_cid: &str) -> Result<store::Lock> {
    check_vm(cpi, vm_cid)?;
    let lock = cpi.store.lock_vm(vm_cid)?;
    check_vm(cpi, vm_cid)?;
    Ok(lock)
}

/// Reads `vm.json`.
pub fn read_record(cpi: &QemuCpi, vm_cid: &str) -> Result<VmRecord> {
    Ok(store::read_json(
        &cpi.store.vm_dir(vm_cid).join(store::VM_FILE),
    )?)
}

/// Writes `vm.json`.
pub fn write_record(cpi: &QemuCpi, vm_cid: &str, record: &VmRecord) -> Result<()> {
    Ok(store::write_json(
        &cpi.store.vm_dir(vm_cid).join(store::VM_FILE),
        record,
    )?)
}

/// Connects to the QMP monitor of the running VM; `NotRunning` when QEMU is not.
pub fn connect(vm_cid: &str, vm_dir: &Path) -> Result<Qmp> {
    if running_pid(vm_dir).is_none() {
        return Err(Error::NotRunning(vm_cid.to_owned()));
    }
    Qmp::connect(&vm_dir.join(store::QMP_SOCKET)).map_err(Error::qmp(vm_cid, "connecting to QMP"))
}

/// The pid of the VM's QEMU when it runs: the pid in `qemu.pid`, if that process is alive and
/// its command line names the VM's directory (a recycled pid is not the VM).
pub fn running_pid(vm_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(vm_dir.join(store::PID_FILE)).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|pid| *pid > 0)?;
    let proc_dir = Path::new(PROC_ROOT).join(pid.to_string());
    let cmdline = std::fs::read(proc_dir.join("cmdline")).ok()?;
    let vm_dir = vm_dir.to_string_lossy();
    let names_vm = String::from_utf8_lossy(&cmdline).contains(vm_dir.as_ref());
    (names_vm && is_alive(&proc_dir)).then_some(pid)
}

/// Starts the VM's QEMU from its record.
fn start(cpi: &QemuCpi, vm_cid: &str, vm_dir: &Path, record: &VmRecord) -> Result<()> {
    for stale in [store::PID_FILE, store::QMP_SOCKET, store::SHELL_SOCKET] {
        store::remove_file(&vm_dir.join(stale))?;
    }
    let disks: Vec<StartDisk> = record
        .attached
        .iter()
        .map(|(disk_cid, attachment)| StartDisk {
            disk_cid: disk_cid.clone(),
            serial: attachment.serial.clone(),
            image: cpi.store.disk_image(disk_cid),
            lun: attachment.lun,
        })
        .collect();
    let argv = qemu::argv(vm_cid, vm_dir, &record.machine, &disks);
    cpi.runner
        .run(&Cmd::new(&record.machine.qemu).args(argv))
        .map_err(Error::command(format!("starting QEMU of VM '{vm_cid}'")))?;
    Ok(())
}

/// Stops the VM's QEMU: QMP `quit`, then SIGKILL if it lingers.
fn stop(vm_cid: &str, vm_dir: &Path) -> Result<()> {
    let Some(pid) = running_pid(vm_dir) else {
        return Ok(());
    };
    match Qmp::connect(&vm_dir.join(store::QMP_SOCKET))
        .and_then(|mut qmp| qmp.execute("quit", None))
    {
        Ok(_) => {}
        // QEMU may close the socket before it answers `quit`.
        Err(crate::qemu_cpi::qmp::Error::Closed { .. }) => {}
        Err(err) => tracing::warn!(vm_cid, error = %err, "QMP quit failed; killing QEMU"),
    }
    if wait_gone(vm_dir, STOP_WAIT) {
        return Ok(());
    }
    tracing::warn!(vm_cid, pid, "QEMU lingers after quit; sending SIGKILL");
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    if wait_gone(vm_dir, STOP_WAIT) {
        return Ok(());
    }
    Err(Error::StillRunning {
        vm_cid: vm_cid.to_owned(),
        pid,
    })
}

/// Waits up to `timeout` for the VM's QEMU to be gone.
fn wait_gone(vm_dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while running_pid(vm_dir).is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Whether the process at `proc_dir` is alive: not gone, not a zombie (QEMU detached from its
/// parent is reaped by whoever adopted it, maybe late).
fn is_alive(proc_dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu_cpi::config::Config;

    fn cpi() -> QemuCpi {
        let config =
            Config::parse(br#"{"state_dir": "/cpi", "cpus": 3, "memory_mb": 512}"#).unwrap();
        QemuCpi::new(config, "/bin/qemu-cpi".into())
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn cloud_properties_size_the_vm_and_the_config_fills_the_rest() {
        let cpi = cpi();
        assert_eq!(
            resources(&Map::new(), &cpi).unwrap(),
            Resources {
                cpus: 3,
                memory_mb: 512,
                ephemeral_disk_mb: DEFAULT_EPHEMERAL_DISK_MB,
                root_disk_mb: None,
                raw_ephemeral_disks_mb: vec![],
                raw_ephemeral_nvme: false,
                managed_nvme_disks_mb: vec![],
                scsi_disks: false,
            }
        );
        assert_eq!(
            resources(
                &object(json!({"cpu": 1, "ram": 2048, "ephemeral_disk_size": 10240})),
                &cpi
            )
            .unwrap(),
            Resources {
                cpus: 1,
                memory_mb: 2048,
                ephemeral_disk_mb: 10240,
                root_disk_mb: None,
                raw_ephemeral_disks_mb: vec![],
                raw_ephemeral_nvme: false,
                managed_nvme_disks_mb: vec![],
                scsi_disks: false,
            }
        );
        assert_eq!(
            resources(
                &object(json!({"ephemeral_disk_size": 0, "root_disk_size": 8192,
                    "raw_ephemeral_disks": [512, 256]})),
                &cpi
            )
            .unwrap(),
            Resources {
                cpus: 3,
                memory_mb: 512,
                ephemeral_disk_mb: 0,
                root_disk_mb: Some(8192),
                raw_ephemeral_disks_mb: vec![512, 256],
                raw_ephemeral_nvme: false,
                managed_nvme_disks_mb: vec![],
                scsi_disks: false,
            }
        );
        let nitro = resources(
            &object(
                json!({"raw_ephemeral_disks": [64, 48], "raw_ephemeral_disk_bus": "nvme",
                "managed_nvme_disks": [32]}),
            ),
            &cpi,
        )
        .unwrap();
        assert!(nitro.raw_ephemeral_nvme);
        assert_eq!(nitro.raw_ephemeral_disks_mb, [64, 48]);
        assert_eq!(nitro.managed_nvme_disks_mb, [32]);
        assert!(!nitro.scsi_disks);
        assert!(
            resources(&object(json!({"persistent_disk_bus": "scsi"})), &cpi)
                .unwrap()
                .scsi_disks
        );
        assert_eq!(
            resources(&object(json!({"persistent_disk_bus": "ide"})), &cpi).unwrap_err(),
            "persistent_disk_bus must be \"virtio\" or \"scsi\", got \"ide\""
        );
        assert_eq!(
            resources(&object(json!({"raw_ephemeral_disk_bus": "scsi"})), &cpi).unwrap_err(),
            "raw_ephemeral_disk_bus must be \"virtio\" or \"nvme\", got \"scsi\""
        );
        assert_eq!(
            resources(&object(json!({"managed_nvme_disks": [-1]})), &cpi).unwrap_err(),
            "managed_nvme_disks must hold positive sizes in MiB, got -1"
        );
        assert_eq!(
            resources(&object(json!({"root_disk_size": 0})), &cpi).unwrap_err(),
            "root_disk_size must be a positive integer, got 0"
        );
        assert_eq!(
            resources(&object(json!({"raw_ephemeral_disks": [0]})), &cpi).unwrap_err(),
            "raw_ephemeral_disks must hold positive sizes in MiB, got 0"
        );
        assert_eq!(
            resources(&object(json!({"raw_ephemeral_disks": 2})), &cpi).unwrap_err(),
            "raw_ephemeral_disks must be a list of at most 8 sizes in MiB, got 2"
        );
        assert_eq!(
            resources(&object(json!({"ram": "2G"})), &cpi).unwrap_err(),
            "ram must be a positive integer, got \"2G\""
        );
        assert_eq!(
            resources(&object(json!({"cpu": 0})), &cpi).unwrap_err(),
            "cpu must be a positive integer, got 0"
        );
    }

    #[test]
    fn a_process_is_alive_unless_gone_or_a_zombie() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_alive(dir.path()));
        std::fs::write(dir.path().join("stat"), "42 (qemu (x) y) S 1 42").unwrap();
        assert!(is_alive(dir.path()));
        std::fs::write(dir.path().join("stat"), "42 (qemu) Z 1 42").unwrap();
        assert!(!is_alive(dir.path()));
    }

    #[test]
    fn a_vm_without_a_live_qemu_has_no_pid() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running_pid(dir.path()), None);
        // This test process is alive, but its command line does not name the VM's directory.
        std::fs::write(
            dir.path().join(store::PID_FILE),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(running_pid(dir.path()), None);
    }
}
