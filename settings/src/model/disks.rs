//! The `disks` section and the resolved per-disk record (`settings.Disks`, `settings.DiskSettings`).
//!
//! CPIs describe a disk either as a bare string (older CPIs: a device path or volume id, which the Go
//! agent uses as both) or as an object (`path`, `volume_id`, `id`, `lun`, `host_device_id`,
//! `iscsi_settings`). Both forms are kept as given, so `settings.json` is re-encoded in the form the CPI
//! used. [`DiskSettings`] is the resolved record the platform works with; Go never tagged that struct,
//! so it is written with Go field names (`ID`, `VolumeID`, ...), in `raw_ephemeral` and in
//! `persistent_disk_hints.json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `disks` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Disks {
    /// The root disk, e.g. `/dev/sda`.
    pub system: String,
    /// The ephemeral disk, if the VM has one.
    pub ephemeral: Option<DiskSpec>,
    /// Persistent disks by disk CID.
    pub persistent: BTreeMap<String, DiskSpec>,
    /// Raw ephemeral disks (instance storage), partitioned but not formatted.
    pub raw_ephemeral: Vec<DiskSettings>,
}

/// A disk as a CPI describes it: a bare string or an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSpec {
    /// The older form: a device path or volume id (`"/dev/sdb"`, `"2"`).
    Path(String),
    /// The newer form.
    Object(DiskObject),
}

/// The object form of a disk. Go reads these keys with exact, lower-case names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskObject {
    /// Device path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Volume id (e.g. a SCSI unit number).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub volume_id: String,
    /// Device id (e.g. the virtio serial).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// LUN (Azure).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lun: String,
    /// Host device id (Azure, Hyper-V).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_device_id: String,
    /// iSCSI connection data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iscsi_settings: Option<DiskIscsi>,
}

/// `iscsi_settings` in the object form of a disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskIscsi {
    /// Initiator name.
    pub initiator_name: String,
    /// CHAP user.
    pub username: String,
    /// CHAP password (a secret).
    pub password: String,
    /// Target address.
    pub target: String,
}

/// A resolved disk (`settings.DiskSettings`), written with Go field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskSettings {
    /// The disk CID (persistent disks) or the raw ephemeral id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Device id (the object form's `id`).
    #[serde(rename = "DeviceID")]
    pub device_id: String,
    /// Volume id.
    #[serde(rename = "VolumeID")]
    pub volume_id: String,
    /// LUN.
    #[serde(rename = "Lun")]
    pub lun: String,
    /// Host device id.
    #[serde(rename = "HostDeviceID")]
    pub host_device_id: String,
    /// Device path.
    #[serde(rename = "Path")]
    pub path: String,
    /// iSCSI connection data.
    #[serde(rename = "ISCSISettings")]
    pub iscsi_settings: IscsiSettings,
    /// Filesystem for persistent disks (`env.persistent_disk_fs`).
    #[serde(rename = "FileSystemType")]
    pub file_system_type: String,
    /// Mount options for persistent disks (`env.persistent_disk_mount_options`).
    #[serde(rename = "MountOptions")]
    pub mount_options: Vec<String>,
    /// Partitioner for persistent disks (`env.persistent_disk_partitioner`).
    #[serde(rename = "Partitioner")]
    pub partitioner: String,
}

/// iSCSI connection data of a resolved disk, with Go field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IscsiSettings {
    /// Initiator name.
    #[serde(rename = "InitiatorName")]
    pub initiator_name: String,
    /// CHAP user.
    #[serde(rename = "Username")]
    pub username: String,
    /// Target address.
    #[serde(rename = "Target")]
    pub target: String,
    /// CHAP password (a secret).
    #[serde(rename = "Password")]
    pub password: String,
}

impl DiskSpec {
    /// The resolved record for this disk, with `id` as its CID (empty for the ephemeral disk).
    pub fn to_disk_settings(&self, id: &str) -> DiskSettings {
        let mut disk = DiskSettings {
            id: id.to_owned(),
            ..DiskSettings::default()
        };
        match self {
            // Old CPIs give a path or a volume id and Go cannot tell which, so it sets both.
            DiskSpec::Path(text) => {
                disk.path = text.clone();
                disk.volume_id = text.clone();
            }
            DiskSpec::Object(object) => {
                disk.path = object.path.clone();
                disk.volume_id = object.volume_id.clone();
                disk.device_id = object.id.clone();
                disk.lun = object.lun.clone();
                disk.host_device_id = object.host_device_id.clone();
                if let Some(iscsi) = &object.iscsi_settings {
                    disk.iscsi_settings = IscsiSettings {
                        initiator_name: iscsi.initiator_name.clone(),
                        username: iscsi.username.clone(),
                        target: iscsi.target.clone(),
                        password: iscsi.password.clone(),
                    };
                }
            }
        }
        disk
    }
}

impl Serialize for DiskSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DiskSpec::Path(text) => serializer.serialize_str(text),
            DiskSpec::Object(object) => object.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for DiskSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DiskSpecVisitor)
    }
}

struct DiskSpecVisitor;

impl<'de> Visitor<'de> for DiskSpecVisitor {
    type Value = DiskSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a device path string or a disk object")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DiskSpec, E> {
        Ok(DiskSpec::Path(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<DiskSpec, E> {
        Ok(DiskSpec::Path(text))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DiskSpec, A::Error> {
        DiskObject::deserialize(de::value::MapAccessDeserializer::new(map)).map(DiskSpec::Object)
    }
}
