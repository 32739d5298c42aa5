//! `agent.json`: the stemcell's configuration of the agent (`app/config.go`,
//! `infrastructure/settings_source_factory.go`, `platform/linux_platform.go` `LinuxOptions`).
//!
//! Keys are Go field names and match case-insensitively; unknown keys (the legacy `UseRegistry` and
//! `UseServerName` that real stemcells still carry, `NetworkingType`) are ignored. Each settings source
//! is an object whose `Type` (exact key, exact value, as in Go) picks its options.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::gojson;

/// The whole `agent.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// Platform options.
    #[serde(rename = "Platform")]
    pub platform: PlatformOptions,
    /// Where settings come from.
    #[serde(rename = "Infrastructure")]
    pub infrastructure: InfrastructureOptions,
}

/// Why `agent.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading agent config {}", .path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid agent config.
    #[error("parsing agent config {}", .path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The cause, naming the field.
        #[source]
        source: gojson::Error,
    },
}

/// `Platform`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlatformOptions {
    /// Linux options.
    #[serde(rename = "Linux")]
    pub linux: LinuxOptions,
    /// Windows options (parsed for compatibility; Windows is out of scope).
    #[serde(rename = "Windows")]
    pub windows: WindowsOptions,
}

/// `Platform.Linux` (`platform.LinuxOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinuxOptions {
    /// Do not bind-mount `data/root_tmp` over `/tmp` and `/var/tmp`.
    #[serde(rename = "UseDefaultTmpDir")]
    pub use_default_tmp_dir: bool,
    /// Mount the persistent disk as it is, without partitioning or formatting it.
    #[serde(rename = "UsePreformattedPersistentDisk")]
    pub use_preformatted_persistent_disk: bool,
    /// Bind-mount persistent disks (warden, bosh-lite).
    #[serde(rename = "BindMountPersistentDisk")]
    pub bind_mount_persistent_disk: bool,
    /// Without an ephemeral disk, carve swap and data partitions from the root disk.
    #[serde(rename = "CreatePartitionIfNoEphemeralDisk")]
    pub create_partition_if_no_ephemeral_disk: bool,
    /// Skip root growth and ephemeral partitioning.
    #[serde(rename = "SkipDiskSetup")]
    pub skip_disk_setup: bool,
    /// `virtio`, `scsi`, `iscsi` or empty (use the path as given).
    #[serde(rename = "DevicePathResolutionType")]
    pub device_path_resolution_type: String,
    /// Glob of IaaS-managed volumes to leave out of instance storage.
    #[serde(rename = "InstanceStorageManagedVolumePattern")]
    pub instance_storage_managed_volume_pattern: String,
    /// Glob of instance storage devices.
    #[serde(rename = "InstanceStorageDevicePattern")]
    pub instance_storage_device_pattern: String,
    /// `parted`, `sfdisk` or empty (automatic).
    #[serde(rename = "PartitionerType")]
    pub partitioner_type: String,
    /// `systemd` or empty (runit).
    #[serde(rename = "ServiceManager")]
    pub service_manager: String,
    /// Regex applied to disk CIDs before looking them up under `/dev/disk/by-id`.
    #[serde(rename = "DiskIDTransformPattern")]
    pub disk_id_transform_pattern: String,
    /// Its replacement.
    #[serde(rename = "DiskIDTransformReplacement")]
    pub disk_id_transform_replacement: String,
    /// Directory of LUN symlinks (e.g. `/dev/disk/azure/data/by-lun`).
    #[serde(rename = "LunDeviceSymlinkPath")]
    pub lun_device_symlink_path: String,
    /// Leave monit's firewall to the stemcell's iptables rules.
    #[serde(rename = "UseMonitIptablesFirewall")]
    pub use_monit_iptables_firewall: bool,
}

/// `Platform.Windows`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowsOptions {
    /// Mount the ephemeral disk on Windows.
    #[serde(rename = "EnableEphemeralDiskMounting")]
    pub enable_ephemeral_disk_mounting: bool,
}

/// `Infrastructure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InfrastructureOptions {
    /// `Infrastructure.Settings`.
    #[serde(rename = "Settings")]
    pub settings: SettingsOptions,
}

/// `Infrastructure.Settings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsOptions {
    /// The sources, tried in this order.
    #[serde(rename = "Sources")]
    pub sources: Vec<SourceOptions>,
}

/// One settings source and its options.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceOptions {
    /// `"Type": "File"`.
    File(FileSourceOptions),
    /// `"Type": "HTTP"`.
    Http(HttpSourceOptions),
    /// `"Type": "InstanceMetadata"`.
    InstanceMetadata(InstanceMetadataSourceOptions),
    /// `"Type": "ConfigDrive"`.
    ConfigDrive(ConfigDriveSourceOptions),
    /// `"Type": "CDROM"`.
    Cdrom(CdromSourceOptions),
    /// `"Type": "VsphereGuestInfo"`.
    VsphereGuestInfo(VsphereGuestInfoSourceOptions),
}

/// Options of the `File` source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileSourceOptions {
    /// The settings file.
    #[serde(rename = "SettingsPath")]
    pub settings_path: String,
    /// Unused, accepted for compatibility.
    #[serde(rename = "MetaDataPath")]
    pub meta_data_path: String,
    /// Unused, accepted for compatibility.
    #[serde(rename = "UserDataPath")]
    pub user_data_path: String,
}

/// Options of the `HTTP` source (an HTTP metadata service such as AWS's or OpenStack's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSourceOptions {
    /// The service's base URL, e.g. `http://169.254.169.254`.
    #[serde(rename = "URI")]
    pub uri: String,
    /// Headers sent with every request (e.g. `Metadata-Flavor: Google`).
    #[serde(rename = "Headers")]
    pub headers: BTreeMap<String, String>,
    /// Path of the user data, e.g. `/latest/user-data`.
    #[serde(rename = "UserDataPath")]
    pub user_data_path: String,
    /// Path of the instance id, e.g. `/latest/meta-data/instance-id`.
    #[serde(rename = "InstanceIDPath")]
    pub instance_id_path: String,
    /// Path of the SSH key, e.g. `/latest/meta-data/public-keys/0/openssh-key`.
    #[serde(rename = "SSHKeysPath")]
    pub ssh_keys_path: String,
    /// IMDSv2 token path, e.g. `/latest/api/token`; empty for IMDSv1.
    #[serde(rename = "TokenPath")]
    pub token_path: String,
}

/// Options of the `InstanceMetadata` source (raw settings JSON at one URL).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceMetadataSourceOptions {
    /// The service's base URL.
    #[serde(rename = "URI")]
    pub uri: String,
    /// Headers sent with every request.
    #[serde(rename = "Headers")]
    pub headers: BTreeMap<String, String>,
    /// Path of the settings.
    #[serde(rename = "SettingsPath")]
    pub settings_path: String,
}

/// Options of the `ConfigDrive` source (OpenStack-style config drive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigDriveSourceOptions {
    /// Devices to try, e.g. `/dev/disk/by-label/config-2`.
    #[serde(rename = "DiskPaths")]
    pub disk_paths: Vec<String>,
    /// Path of the meta-data JSON inside the drive.
    #[serde(rename = "MetaDataPath")]
    pub meta_data_path: String,
    /// Path of the user-data JSON (the settings) inside the drive.
    #[serde(rename = "UserDataPath")]
    pub user_data_path: String,
    /// Unused by Go, accepted for compatibility.
    #[serde(rename = "SettingsPath")]
    pub settings_path: String,
}

/// Options of the `CDROM` source (vSphere classic).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CdromSourceOptions {
    /// The file on the CD holding the settings, e.g. `env`.
    #[serde(rename = "FileName")]
    pub file_name: String,
}

/// Options of the `VsphereGuestInfo` source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VsphereGuestInfoSourceOptions {
    /// `vmware-rpctool` path.
    #[serde(rename = "RpcToolPath")]
    pub rpc_tool_path: String,
    /// `vmtoolsd` path.
    #[serde(rename = "VmToolsdPath")]
    pub vm_toolsd_path: String,
}

impl AgentConfig {
    /// Parses `agent.json` contents.
    pub fn parse(bytes: &[u8]) -> Result<AgentConfig, gojson::Error> {
        gojson::from_slice(bytes)
    }

    /// Reads and parses `agent.json`.
    pub fn from_path(path: &Path) -> Result<AgentConfig, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        AgentConfig::parse(&bytes).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

impl SourceOptions {
    /// The `Type` this source is written with.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceOptions::File(_) => "File",
            SourceOptions::Http(_) => "HTTP",
            SourceOptions::InstanceMetadata(_) => "InstanceMetadata",
            SourceOptions::ConfigDrive(_) => "ConfigDrive",
            SourceOptions::Cdrom(_) => "CDROM",
            SourceOptions::VsphereGuestInfo(_) => "VsphereGuestInfo",
        }
    }
}

impl<'de> Deserialize<'de> for SourceOptions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let source_type = match object.get("Type") {
            Some(serde_json::Value::String(source_type)) => source_type.clone(),
            Some(other) => return Err(de::Error::custom(format!("Unknown source type '{other}'"))),
            None => return Err(de::Error::custom("Missing source type")),
        };
        let value = serde_json::Value::Object(object);
        // The options decode with the same Go rules; a nested error keeps the field it names.
        fn options<T: de::DeserializeOwned, E: de::Error>(
            value: serde_json::Value,
        ) -> Result<T, E> {
            gojson::from_value(value).map_err(E::custom)
        }
        Ok(match source_type.as_str() {
            "File" => SourceOptions::File(options(value)?),
            "HTTP" => SourceOptions::Http(options(value)?),
            "InstanceMetadata" => SourceOptions::InstanceMetadata(options(value)?),
            "ConfigDrive" => SourceOptions::ConfigDrive(options(value)?),
            "CDROM" => SourceOptions::Cdrom(options(value)?),
            "VsphereGuestInfo" => SourceOptions::VsphereGuestInfo(options(value)?),
            other => return Err(de::Error::custom(format!("Unknown source type '{other}'"))),
        })
    }
}

impl Serialize for SourceOptions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = match self {
            SourceOptions::File(o) => serde_json::to_value(o),
            SourceOptions::Http(o) => serde_json::to_value(o),
            SourceOptions::InstanceMetadata(o) => serde_json::to_value(o),
            SourceOptions::ConfigDrive(o) => serde_json::to_value(o),
            SourceOptions::Cdrom(o) => serde_json::to_value(o),
            SourceOptions::VsphereGuestInfo(o) => serde_json::to_value(o),
        }
        .map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("Type", self.type_name())?;
        if let serde_json::Value::Object(fields) = fields {
            for (key, value) in fields {
                map.serialize_entry(&key, &value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_decode_by_type_with_case_insensitive_options() {
        let config = AgentConfig::parse(
            br#"{"platform":{"linux":{"usedefaulttmpdir":true}},
                 "Infrastructure":{"Settings":{"Sources":[
                   {"Type":"File","settingspath":"/var/vcap/settings.json"},
                   {"Type":"HTTP","URI":"http://169.254.169.254","Headers":{"X-Flavor":"a"},"TokenPath":"/t"},
                   {"Type":"CDROM","FileName":"env"}]}}}"#,
        )
        .unwrap();
        assert!(config.platform.linux.use_default_tmp_dir);
        let sources = &config.infrastructure.settings.sources;
        assert_eq!(
            sources[0],
            SourceOptions::File(FileSourceOptions {
                settings_path: "/var/vcap/settings.json".into(),
                ..Default::default()
            })
        );
        let SourceOptions::Http(http) = &sources[1] else {
            panic!("not HTTP: {:?}", sources[1]);
        };
        assert_eq!(http.headers["X-Flavor"], "a");
        assert_eq!(http.token_path, "/t");
        assert_eq!(sources[2].type_name(), "CDROM");
    }

    #[test]
    fn a_source_without_type_is_refused() {
        let err =
            AgentConfig::parse(br#"{"Infrastructure":{"Settings":{"Sources":[{"URI":"x"}]}}}"#)
                .unwrap_err();
        assert_eq!(err.path, "Infrastructure.Settings.Sources[0]");
        assert_eq!(err.message, "Missing source type");
    }

    #[test]
    fn an_unknown_source_type_is_named() {
        let err = AgentConfig::parse(
            br#"{"Infrastructure":{"Settings":{"Sources":[{"Type":"Registry"}]}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.message, "Unknown source type 'Registry'");
    }

    #[test]
    fn a_bad_option_names_the_source_and_the_option() {
        let err = AgentConfig::parse(br#"{"Infrastructure":{"Settings":{"Sources":[{"Type":"ConfigDrive","DiskPaths":"/dev/sr0"}]}}}"#)
            .unwrap_err();
        assert_eq!(err.path, "Infrastructure.Settings.Sources[0]");
        assert!(
            err.message.starts_with("field `DiskPaths`: invalid type"),
            "{}",
            err.message
        );
    }

    #[test]
    fn sources_round_trip_with_their_type() {
        let config = AgentConfig::parse(
            br#"{"Infrastructure":{"Settings":{"Sources":[{"Type":"CDROM","FileName":"env"}]}}}"#,
        )
        .unwrap();
        let json = serde_json::to_string(&config.infrastructure.settings.sources).unwrap();
        assert_eq!(json, r#"[{"Type":"CDROM","FileName":"env"}]"#);
        let again = AgentConfig::parse(serde_json::to_vec(&config).unwrap().as_slice()).unwrap();
        assert_eq!(again, config);
    }
}
