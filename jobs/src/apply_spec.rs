//! The apply spec (`agent/applier/applyspec/v1_apply_spec.go`): what the director wants on this VM,
//! persisted as `bosh/spec.json` and echoed back by `get_state`.
//!
//! Only the keys the Go agent keeps survive (`links`, `env`, `update`, `dns_domain_name` and the like
//! are dropped); digests stay strings here and are parsed as multi-digests where they are verified.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use settings::gojson;

/// The apply spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplySpec {
    /// `properties.logging.max_log_file_size`.
    pub properties: PropertiesSpec,
    /// The instance group and its jobs.
    pub job: JobSpec,
    /// Packages by name.
    pub packages: BTreeMap<String, PackageSpec>,
    /// Hash of the rendered templates; empty means "do not touch jobs".
    pub configuration_hash: String,
    /// Networks by name, free-form.
    pub networks: BTreeMap<String, BTreeMap<String, Value>>,
    /// Legacy resource pool, free-form.
    pub resource_pool: Value,
    /// Deployment name.
    pub deployment: String,
    /// Instance group name.
    pub name: String,
    /// Instance index, null when unassigned.
    pub index: Option<i64>,
    /// Instance id.
    pub id: String,
    /// Availability zone.
    pub az: String,
    /// Persistent disk size in MiB.
    pub persistent_disk: i64,
    /// Where the rendered templates are.
    pub rendered_templates_archive: Option<RenderedTemplatesArchive>,
}

/// `properties`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PropertiesSpec {
    /// `logging`.
    pub logging: LoggingSpec,
}

/// `properties.logging`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingSpec {
    /// Log rotation size, default `50M`.
    pub max_log_file_size: String,
}

/// `job`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSpec {
    /// Instance group name; null for jobless and compilation VMs.
    pub name: Option<String>,
    /// Release of the first job (legacy).
    pub release: String,
    /// Name of the first job (legacy).
    pub template: String,
    /// Version of the first job (legacy).
    pub version: String,
    /// The jobs.
    pub templates: Vec<JobTemplateSpec>,
}

/// One job of `job.templates`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobTemplateSpec {
    /// Job name.
    pub name: String,
    /// Job version.
    pub version: String,
}

/// One package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageSpec {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Multi-digest of the package blob.
    pub sha1: String,
    /// Blobstore id.
    pub blobstore_id: String,
    /// Signed URL, when the blobstore signs.
    pub signed_url: String,
    /// Headers for the signed URL.
    pub blobstore_headers: BTreeMap<String, String>,
}

/// `rendered_templates_archive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderedTemplatesArchive {
    /// Multi-digest of the archive.
    pub sha1: String,
    /// Blobstore id.
    pub blobstore_id: String,
}

/// Why the stored spec could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the file failed.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a spec.
    #[error("parsing {}", .path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: gojson::Error,
    },
}

impl ApplySpec {
    /// The jobs this spec installs: `job.templates`, sourced from the rendered templates archive;
    /// without an archive there are no jobs, as in Go (`V1ApplySpec.Jobs`).
    pub fn jobs(&self) -> &[JobTemplateSpec] {
        if self.rendered_templates_archive.is_some() {
            &self.job.templates
        } else {
            &[]
        }
    }

    /// Reads `bosh/spec.json`; a missing file is an empty spec, as in Go.
    pub fn read(path: &Path) -> Result<ApplySpec, Error> {
        match std::fs::read(path) {
            Ok(bytes) => gojson::from_slice(&bytes).map_err(|source| Error::Parse {
                path: path.to_owned(),
                source,
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(ApplySpec::default()),
            Err(source) => Err(Error::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_dropped_and_nulls_kept_where_go_keeps_them() {
        let spec: ApplySpec = gojson::from_slice(
            br#"{"deployment":"cf","job":{"name":"router","templates":[{"name":"gorouter","version":"1","sha1":"x"}]},
                 "index":0,"id":"uuid-1","links":{"a":1},"packages":{"p":{"name":"p","version":"1.1","sha1":"abc","blobstore_id":"b"}}}"#,
        )
        .unwrap();
        assert_eq!(spec.job.name.as_deref(), Some("router"));
        assert_eq!(spec.index, Some(0));
        let json = serde_json::to_value(&spec).unwrap();
        assert!(json.get("links").is_none());
        assert_eq!(json["rendered_templates_archive"], Value::Null);
        assert_eq!(
            json["job"]["templates"][0],
            serde_json::json!({"name": "gorouter", "version": "1"})
        );
    }

    #[test]
    fn a_missing_spec_file_is_an_empty_spec() {
        let dir = tempfile_dir();
        let spec = ApplySpec::read(&dir.join("spec.json")).unwrap();
        assert_eq!(spec, ApplySpec::default());
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["job"]["name"],
            Value::Null
        );
    }

    fn tempfile_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("apply-spec-test-{}", std::process::id()))
    }
}
