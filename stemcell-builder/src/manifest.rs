//! `stemcell.MF`: the stemcell's manifest as the director reads it on upload (name, version,
//! operating system, formats, the CPI's cloud properties and the sha1 of `image`), in the shape of
//! the BOSH stemcell builder's `stemcell_builder/stages/stemcell/apply.sh`.

use serde::{Deserialize, Serialize};

/// The stemcell's name.
pub const NAME: &str = "bosh-qemu-kvm-debian-bookworm";
/// The operating system the director matches deployments against.
pub const OPERATING_SYSTEM: &str = "debian-bookworm";
/// The one format the QEMU CPI takes.
pub const FORMAT: &str = "qemu-qcow2";

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`NAME`].
    pub name: String,
    /// The stemcell version.
    pub version: String,
    /// The stemcell API version: 3 (the agent takes settings with `env.bosh` and blobstore
    /// credentials from the director).
    pub api_version: u32,
    /// The agent protocol, `"1"`.
    pub bosh_protocol: String,
    /// [`OPERATING_SYSTEM`].
    pub operating_system: String,
    /// `[qemu-qcow2]`.
    pub stemcell_formats: Vec<String>,
    /// What the CPI needs to import the image.
    pub cloud_properties: CloudProperties,
    /// The sha1 of the `image` file, hex.
    pub sha1: String,
}

/// The manifest's `cloud_properties`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudProperties {
    /// `qemu`.
    pub infrastructure: String,
    /// `x86_64`.
    pub architecture: String,
    /// `/dev/vda`.
    pub root_device_name: String,
    /// The virtual disk size in MiB.
    pub disk: u64,
}

impl Manifest {
    /// The manifest of this builder's stemcell.
    pub fn new(version: &str, disk_size_mib: u64, image_sha1: &str) -> Manifest {
        Manifest {
            name: NAME.into(),
            version: version.into(),
            api_version: 3,
            bosh_protocol: "1".into(),
            operating_system: OPERATING_SYSTEM.into(),
            stemcell_formats: vec![FORMAT.into()],
            cloud_properties: CloudProperties {
                infrastructure: "qemu".into(),
                architecture: "x86_64".into(),
                root_device_name: "/dev/vda".into(),
                disk: disk_size_mib,
            },
            sha1: image_sha1.into(),
        }
    }

    /// The manifest as YAML.
    pub fn to_yaml(&self) -> String {
        // A struct of strings, numbers and lists always serialises.
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

/// Checks a stemcell version before anything is built: it becomes part of file names, so it is
/// one plain word (letters, digits, `.`, `-`, `+`, `_`).
pub fn validate_version(version: &str) -> Result<(), String> {
    if version.is_empty() {
        return Err("version: empty".into());
    }
    if let Some(bad) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_')))
    {
        return Err(format!(
            "version {version:?}: character {bad:?} not allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_has_the_director_fields() {
        let yaml = Manifest::new("1.5", 3072, "da39a3ee5e6b4b0d3255bfef95601890afd80709").to_yaml();
        assert_eq!(
            yaml,
            "name: bosh-qemu-kvm-debian-bookworm\n\
             version: '1.5'\n\
             api_version: 3\n\
             bosh_protocol: '1'\n\
             operating_system: debian-bookworm\n\
             stemcell_formats:\n\
             - qemu-qcow2\n\
             cloud_properties:\n  \
               infrastructure: qemu\n  \
               architecture: x86_64\n  \
               root_device_name: /dev/vda\n  \
               disk: 3072\n\
             sha1: da39a3ee5e6b4b0d3255bfef95601890afd80709\n"
        );
        let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        // The protocol and version stay strings for the director.
        assert_eq!(parsed["bosh_protocol"], serde_yaml_ng::Value::from("1"));
        assert_eq!(parsed["version"], serde_yaml_ng::Value::from("1.5"));
        assert_eq!(parsed["api_version"], serde_yaml_ng::Value::from(3));
    }

    #[test]
    fn a_version_must_be_one_plain_word() {
        assert_eq!(validate_version("0.0.1"), Ok(()));
        assert_eq!(validate_version("1.2-dev+3"), Ok(()));
        assert_eq!(validate_version(""), Err("version: empty".into()));
        assert_eq!(
            validate_version("1/2"),
            Err("version \"1/2\": character '/' not allowed".into())
        );
    }
}
