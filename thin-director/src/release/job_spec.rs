//! `job.MF`, the spec of a release job: its templates, packages, properties and links.
//!
//! Follows bosh-cli `release/job/manifest/manifest.go` and the director's
//! `core/templates/job_template_loader.rb`. Decoded like `release.MF` (unknown keys ignored, empty
//! values empty). `consumes` and `provides` are read so a spec that declares links is accepted;
//! the thin director does not resolve links. Template sources and destinations are checked to be
//! relative paths inside the job, since the director renders `templates/<source>` to
//! `<job>/<destination>`.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::Deserialize;

use crate::release::release_manifest::nullable;

/// A parsed job spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct JobSpec {
    /// The job name; it must match the name in `release.MF`.
    pub name: String,
    /// Template source (under `templates/`) to destination (under the job's directory).
    #[serde(default, deserialize_with = "nullable")]
    pub templates: BTreeMap<String, String>,
    /// The packages the job runs with.
    #[serde(default, deserialize_with = "nullable")]
    pub packages: Vec<String>,
    /// The properties templates may read, by dotted name.
    #[serde(default, deserialize_with = "nullable")]
    pub properties: BTreeMap<String, PropertyDefinition>,
    /// Links the job consumes.
    #[serde(default, deserialize_with = "nullable")]
    pub consumes: Vec<LinkDefinition>,
    /// Links the job provides.
    #[serde(default, deserialize_with = "nullable")]
    pub provides: Vec<LinkDefinition>,
}

/// A property a job declares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropertyDefinition {
    /// What it is for.
    pub description: Option<String>,
    /// Its value when the manifest gives none.
    pub default: Option<serde_json::Value>,
}

/// A definition written as `null` (`name:` with nothing under it) has no description and no
/// default.
impl<'de> serde::Deserialize<'de> for PropertyDefinition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default)]
            description: Option<String>,
            #[serde(default)]
            default: Option<serde_json::Value>,
        }
        let fields = Option::<Fields>::deserialize(deserializer)?;
        Ok(
            fields.map_or_else(PropertyDefinition::default, |fields| PropertyDefinition {
                description: fields.description,
                default: fields.default,
            }),
        )
    }
}

/// A link a job consumes or provides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkDefinition {
    /// The link name.
    pub name: String,
    /// The link type.
    #[serde(rename = "type")]
    pub link_type: String,
    /// Whether a consumer may go without it.
    #[serde(default)]
    pub optional: bool,
    /// The properties a provider shares.
    #[serde(default, deserialize_with = "nullable")]
    pub properties: Vec<String>,
}

/// Why a job spec could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML did not decode; the path names the field.
    #[error("decoding job.MF")]
    Decode(#[source] serde_path_to_error::Error<serde_yaml_ng::Error>),
    /// A template source or destination is absolute or leaves its directory.
    #[error(
        "template {template:?} -> {destination:?}: paths must be relative and stay inside the job"
    )]
    TemplatePath {
        /// The source, under `templates/`.
        template: String,
        /// The destination, under the job's directory.
        destination: String,
    },
}

impl JobSpec {
    /// Parses and checks `job.MF`.
    pub fn parse(text: &str) -> Result<JobSpec, Error> {
        let spec: JobSpec =
            serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text))
                .map_err(Error::Decode)?;
        for (source, destination) in &spec.templates {
            if !is_inside(source) || !is_inside(destination) {
                return Err(Error::TemplatePath {
                    template: source.clone(),
                    destination: destination.clone(),
                });
            }
        }
        Ok(spec)
    }
}

/// Whether `path` is relative, names something, and never climbs out with `..`.
fn is_inside(path: &str) -> bool {
    let mut has_name = false;
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => has_name = true,
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    has_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_spec_parses_with_defaults_and_links() {
        let spec = JobSpec::parse(
            r#"---
name: web
templates:
  ctl.erb: bin/ctl
  config.yml.erb: config/config.yml
packages: [ruby, app]
properties:
  web.port:
    description: The port
    default: 8080
  web.tls:
    description: TLS settings
    example: {cert: x}
consumes:
- {name: db, type: database, optional: true}
provides:
- {name: web, type: http, properties: [web.port]}
"#,
        )
        .unwrap();
        assert_eq!(spec.templates["ctl.erb"], "bin/ctl");
        assert_eq!(spec.packages, ["ruby", "app"]);
        assert_eq!(
            spec.properties["web.port"].default,
            Some(serde_json::json!(8080))
        );
        assert_eq!(spec.properties["web.tls"].default, None);
        assert!(spec.consumes[0].optional);
        assert_eq!(spec.provides[0].properties, ["web.port"]);
    }

    #[test]
    fn empty_sections_are_empty() {
        let spec = JobSpec::parse("name: idle\ntemplates:\npackages:\nproperties:\n").unwrap();
        assert!(
            spec.templates.is_empty() && spec.packages.is_empty() && spec.properties.is_empty()
        );
    }

    #[test]
    fn template_paths_must_stay_inside_the_job() {
        for (source, destination) in [
            ("ctl.erb", "../../etc/cron.d/x"),
            ("/etc/passwd", "bin/x"),
            ("ctl.erb", "/bin/ctl"),
            ("ctl.erb", "."),
        ] {
            let text = format!("name: web\ntemplates:\n  {source:?}: {destination:?}\n");
            let err = JobSpec::parse(&text).unwrap_err();
            assert!(
                matches!(err, Error::TemplatePath { .. }),
                "{source} {destination}: {err}"
            );
        }
    }

    #[test]
    fn decode_errors_name_the_field() {
        let Error::Decode(err) = JobSpec::parse("name: web\npackages: {a: b}\n").unwrap_err()
        else {
            panic!("expected a decode error");
        };
        assert_eq!(err.path().to_string(), "packages");
    }
}
