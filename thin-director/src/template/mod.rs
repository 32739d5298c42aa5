//! Rendering a release job's ERB templates for one instance, the way the BOSH director does: Ruby's
//! ERB with bosh-template's evaluation context, run as a child process (DESIGN.md §5).
//!
//! Inputs are plain values: a [`Job`] (its `job.MF` as a [`JobSpec`], its `monit` file and its
//! template sources; the release reader fills it, or [`Job::from_dir`] reads an unpacked job), the
//! instance's properties for that job (already merged from the manifest), and an [`InstanceSpec`].
//! [`Renderer::render_job`] runs `ruby` once per job with `renderer.rb` embedded in
//! the binary: the context goes in as JSON on standard input, the rendered files come back as JSON
//! on standard output, through [`crate::exec::run`] with an empty environment and a deadline.
//! [`Renderer::render_instance`] renders all of an instance's jobs and builds [`RenderedTemplates`]:
//! the rendered templates archive, its SHA-1, the `configuration_hash` and the `template_hashes` of
//! the apply spec.
//!
//! What BOSH does, and so what this does (cloudfoundry/bosh, `src/bosh-template/lib/bosh/template/`
//! and `src/bosh-director/lib/bosh/director/core/templates/`):
//!
//! * **Properties** ([`bind_properties`], after `DeploymentPlan::Job#bind_properties`): only the
//!   properties the job spec declares reach the templates; each takes the given value at its
//!   dotted name, or the spec's `default` when the value is absent or null, and is set at that
//!   dotted name. A non-hash on the way to a declared name is refused in BOSH's words ("Property
//!   'a.b' expects a hash, but received 'String'").
//! * **Context** (`evaluation_context.rb`): `p(name)`, `p(name, default)`, `p([names..])` (the
//!   first that is set), raising `Can't find property '["a.b"]'` (the names as a Ruby array);
//!   `if_p(names..) { |values..| }` with `.else` and `.else_if_p`; `properties` and `spec` as
//!   `OpenStruct`s (`spec.ip`, `spec.networks.<name>.ip`, `spec.bootstrap`, ...); `name` (the
//!   spec's `job.name`) and `index`. `link` and `if_link` raise "links are not supported".
//! * **Errors** (`source_erb.rb`, `job_template_renderer.rb`, `job_instance_renderer.rb`): each
//!   template is `Error filling in template '<source>' (line N: <message>)`, the line found in the
//!   backtrace entry of `<job>/<source>`; a job collects the errors of all its templates under
//!   `Unable to render templates for job '<job>'. Errors are:`, an instance those of all its jobs
//!   under `Unable to render jobs for instance group '<name>'. Errors are:`. A Ruby syntax error has
//!   no such backtrace entry (BOSH prints `line (unknown)`); here its line is read from its message.
//! * **Rendered files** (`job_template_renderer.rb`): the `monit` file, every template at its
//!   destination, and `.bosh/links.json` (the job's provided links; none here, so `[]\n`, BOSH's
//!   `JSON.pretty_generate([]) + "\n"`).
//! * **Hashes** (`rendered_job_template.rb`, `rendered_job_instance.rb`): a job's template hash
//!   is the SHA-1 of its rendered `monit` followed by the contents of its files in order of source
//!   path; the `configuration_hash` is one SHA-1 over, for each job in order of name, its `monit`,
//!   its name, then for each file in order of source path its contents and its destination.
//! * **Archive** (`rendered_templates_in_memory_tar_gzipper.rb`): a gzipped tar of regular files
//!   only, `<job>/monit` and `<job>/<destination>`; its blob `sha1` is the SHA-1 of the `.tgz`.
//!   Here it is deterministic (sorted entries, mtime 0, owner 0:0, mode 0644, 0755 under `bin/`).
//!
//! Names from a job spec are checked before anything runs: the job name must be one path
//! component, sources must stay under `templates/` and destinations under the job directory.

mod archive;
mod hashes;
mod path;
mod properties;
mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use hashes::{configuration_hash, template_hashes};
pub use properties::bind_properties;
pub use render::{DEFAULT_TIMEOUT, Renderer};

/// Where BOSH writes a job's provided links (`.bosh/links.json`) ...
const LINKS_PATH: &str = ".bosh/links.json";
/// ... and what it holds when the job provides none: `JSON.pretty_generate([]) + "\n"`.
const NO_LINKS: &[u8] = b"[]\n";

pub use crate::release::job_spec::{JobSpec, PropertyDefinition};

/// A job as a release provides it: its spec, its `monit` file and its template sources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Job {
    /// `job.MF`.
    pub spec: JobSpec,
    /// The `monit` file (an ERB template too).
    pub monit: Vec<u8>,
    /// The template sources, by their path under `templates/` (the keys of `spec.templates`).
    pub sources: BTreeMap<String, Vec<u8>>,
}

/// The instance a job is rendered for: what templates see as `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InstanceSpec {
    /// The deployment's name.
    pub deployment: String,
    /// The instance group's name.
    pub name: String,
    /// The instance's id (a UUID for the director).
    pub id: String,
    /// The instance's index in its group.
    pub index: u64,
    /// Its availability zone.
    pub az: Option<String>,
    /// Its IP address on its default network.
    pub ip: Option<String>,
    /// Its address (an IP, or a DNS name when the deployment uses them).
    pub address: Option<String>,
    /// Whether it is its group's bootstrap instance.
    pub bootstrap: bool,
    /// `job.name` (what templates see as `name`): for the director, the instance group's name.
    pub job: SpecJob,
    /// Its networks, by name.
    pub networks: BTreeMap<String, NetworkSpec>,
    /// The root DNS domain (`bosh`), if any.
    pub dns_domain_name: Option<String>,
    /// Its persistent disk in MiB, 0 when it has none.
    pub persistent_disk: u64,
}

/// `spec.job`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpecJob {
    /// The name templates see as `name`.
    pub name: String,
}

/// One network of an instance, as templates see it in `spec.networks.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkSpec {
    /// The instance's IP address on it.
    pub ip: Option<String>,
    /// Its netmask.
    pub netmask: Option<String>,
    /// Its gateway.
    pub gateway: Option<String>,
    /// Its DNS servers.
    pub dns: Vec<String>,
    /// What it is the default for (`dns`, `gateway`, `addressable`).
    pub default: Vec<String>,
}

/// A job's rendered files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedJob {
    /// The job's name.
    pub name: String,
    /// The rendered `monit` file.
    pub monit: Vec<u8>,
    /// The rendered templates, and BOSH's `.bosh/links.json`, in order of source path.
    pub files: Vec<RenderedFile>,
}

/// One rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Its source path under `templates/`.
    pub source: String,
    /// Its destination under the job directory.
    pub destination: String,
    /// What it rendered to.
    pub contents: Vec<u8>,
}

/// All of an instance's rendered jobs, with the archive and hashes of its apply spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedTemplates {
    /// The rendered jobs, in order of name.
    pub jobs: Vec<RenderedJob>,
    /// The rendered templates archive (`.tgz`).
    pub archive: Vec<u8>,
    /// The SHA-1 of `archive` (lower-case hex): the apply spec's `rendered_templates_archive.sha1`.
    pub archive_sha1: String,
    /// The apply spec's `configuration_hash`.
    pub configuration_hash: String,
    /// The apply spec's `template_hashes`: job name → template hash.
    pub template_hashes: BTreeMap<String, String>,
}

/// Why templates could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job's name cannot be a directory name.
    #[error("job name '{job}' is not a plain directory name")]
    JobName {
        /// The job.
        job: String,
    },
    /// A template source is not a plain relative path under `templates/`.
    #[error("job '{job}': template source '{template}' is outside the templates directory")]
    SourcePath {
        /// The job.
        job: String,
        /// The source path.
        template: String,
    },
    /// A template destination is not a plain relative path under the job directory.
    #[error(
        "job '{job}': template '{template}' has destination '{destination}' outside the job directory"
    )]
    Destination {
        /// The job.
        job: String,
        /// The source path.
        template: String,
        /// The destination.
        destination: String,
    },
    /// Two files of a job would be written at the same destination.
    #[error("job '{job}': more than one file renders to '{destination}'")]
    DuplicateDestination {
        /// The job.
        job: String,
        /// The destination.
        destination: String,
    },
    /// An instance has two jobs of one name.
    #[error("job '{job}' appears more than once in the instance")]
    DuplicateJob {
        /// The job.
        job: String,
    },
    /// The job spec names a template whose source was not given.
    #[error("job '{job}': template '{template}' has no source")]
    MissingSource {
        /// The job.
        job: String,
        /// The source path.
        template: String,
    },
    /// A file of an unpacked job could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A given property is not a hash where a declared property needs one (BOSH's text).
    #[error("job '{job}': Property '{property}' expects a hash, but received '{received}'")]
    PropertyType {
        /// The job.
        job: String,
        /// The declared property's dotted name.
        property: String,
        /// The Ruby class name of what was found (`String`, `Integer`, `Array`, ...).
        received: &'static str,
    },
    /// The Ruby interpreter is not there.
    #[error("ruby not found at {}: install it (Debian package 'ruby')", .ruby.display())]
    RubyMissing {
        /// The path it was looked for at.
        ruby: PathBuf,
        /// The cause.
        #[source]
        source: crate::exec::Error,
    },
    /// Ruby could not be run to its end (it could not start, or ran past its deadline).
    #[error("running ruby to render job '{job}'")]
    Run {
        /// The job.
        job: String,
        /// The cause.
        #[source]
        source: crate::exec::Error,
    },
    /// The renderer script failed outside any template.
    #[error("the template renderer failed for job '{job}' ({status}): {stderr}")]
    Renderer {
        /// The job.
        job: String,
        /// How Ruby exited.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The renderer's output could not be read.
    #[error("reading the template renderer's output for job '{job}': {reason}")]
    Output {
        /// The job.
        job: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Templates of a job failed: BOSH's text, one `Error filling in template ..` per template.
    #[error("{}", job_failure(.job, .errors))]
    Templates {
        /// The job.
        job: String,
        /// One `Error filling in template '<source>' (line N: <message>)` per failed template.
        errors: Vec<String>,
    },
    /// Jobs of an instance failed: BOSH's text, with each job's errors under it.
    #[error("{}", instance_failure(.instance_group, .jobs))]
    Jobs {
        /// The instance group.
        instance_group: String,
        /// The failed jobs: name and template errors.
        jobs: Vec<(String, Vec<String>)>,
    },
    /// The archive could not be written.
    #[error("writing the rendered templates archive")]
    Archive(#[source] std::io::Error),
}

/// `Result` with this module's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Job {
    /// Reads an unpacked job tarball in `dir`: `monit` and, for each template of `spec`,
    /// `templates/<source>`. Sources are checked before anything is read.
    pub fn from_dir(spec: JobSpec, dir: &Path) -> Result<Job> {
        path::check_names(&spec)?;
        let read = |path: PathBuf| {
            std::fs::read(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })
        };
        let monit = read(dir.join("monit"))?;
        let mut sources = BTreeMap::new();
        for source in spec.templates.keys() {
            let contents = read(dir.join("templates").join(source))?;
            sources.insert(source.clone(), contents);
        }
        Ok(Job {
            spec,
            monit,
            sources,
        })
    }
}

impl RenderedJob {
    /// BOSH's template hash of this job (see the module docs).
    pub fn template_hash(&self) -> String {
        hashes::template_hash(self)
    }
}

impl RenderedTemplates {
    /// Builds the archive and the hashes of `jobs` (sorted here by name).
    pub fn from_jobs(mut jobs: Vec<RenderedJob>) -> Result<RenderedTemplates> {
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        let archive = archive::build(&jobs).map_err(Error::Archive)?;
        Ok(RenderedTemplates {
            archive_sha1: hashes::sha1_hex(&archive),
            configuration_hash: configuration_hash(&jobs),
            template_hashes: template_hashes(&jobs),
            archive,
            jobs,
        })
    }
}

/// BOSH's job failure text (`job_template_renderer.rb`), without the leading `- ` the director
/// adds when it nests it.
fn job_failure(job: &str, errors: &[String]) -> String {
    let items: Vec<String> = errors.iter().map(|e| format!("- {}", e.trim())).collect();
    format!(
        "Unable to render templates for job '{job}'. Errors are:\n{}",
        indent(&items.join("\n"))
    )
}

/// BOSH's instance failure text (`job_instance_renderer.rb`).
fn instance_failure(instance_group: &str, jobs: &[(String, Vec<String>)]) -> String {
    let items: Vec<String> = jobs
        .iter()
        .map(|(job, errors)| format!("- {}", job_failure(job, errors)))
        .collect();
    format!(
        "Unable to render jobs for instance group '{instance_group}'. Errors are:\n{}",
        indent(&items.join("\n"))
    )
}

/// Indents every line by two spaces.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a YAML/JSON `null` as the type's default, as BOSH treats `templates: ~`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_spec_reads_job_mf_fields_and_ignores_the_rest() {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "name": "web",
            "description": "ignored",
            "templates": {"ctl.erb": "bin/ctl", "config.yml.erb": "config/config.yml"},
            "packages": ["nginx"],
            "properties": {
                "port": {"description": "listen port", "default": 8080},
                "tls.cert": {"description": "no default"},
                "tls.key": null
            }
        }))
        .unwrap();
        assert_eq!(spec.name, "web");
        assert_eq!(spec.templates["ctl.erb"], "bin/ctl");
        assert_eq!(
            spec.properties["port"].default,
            Some(serde_json::json!(8080))
        );
        assert_eq!(spec.properties["tls.cert"].default, None);
        assert_eq!(spec.properties["tls.key"].default, None);

        let bare: JobSpec = serde_json::from_value(
            serde_json::json!({"name": "x", "templates": null, "properties": null}),
        )
        .unwrap();
        assert!(bare.templates.is_empty() && bare.properties.is_empty());
    }

    #[test]
    fn from_dir_reads_monit_and_sources_and_refuses_escaping_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/sub")).unwrap();
        std::fs::write(dir.path().join("monit"), "check process web\n").unwrap();
        std::fs::write(dir.path().join("templates/sub/a.erb"), "<%= 1 %>").unwrap();
        let spec = JobSpec {
            name: "web".into(),
            templates: [("sub/a.erb".to_owned(), "config/a".to_owned())].into(),
            ..JobSpec::default()
        };
        let job = Job::from_dir(spec.clone(), dir.path()).unwrap();
        assert_eq!(job.monit, b"check process web\n");
        assert_eq!(job.sources["sub/a.erb"], b"<%= 1 %>");

        let escaping = JobSpec {
            templates: [("../monit".to_owned(), "config/a".to_owned())].into(),
            ..spec.clone()
        };
        let err = Job::from_dir(escaping, dir.path()).unwrap_err();
        assert!(matches!(err, Error::SourcePath { ref template, .. } if template == "../monit"));

        let missing = JobSpec {
            templates: [("nope.erb".to_owned(), "config/a".to_owned())].into(),
            ..spec
        };
        let err = Job::from_dir(missing, dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::Read { ref path, .. } if path.ends_with("templates/nope.erb"))
        );
    }

    #[test]
    fn failure_texts_are_boshs() {
        let job = Error::Templates {
            job: "web".into(),
            errors: vec![
                "Error filling in template 'a.erb' (line 3: Can't find property '[\"port\"]')"
                    .into(),
                "Error filling in template 'b.erb' (line 1: boom)".into(),
            ],
        };
        assert_eq!(
            job.to_string(),
            "Unable to render templates for job 'web'. Errors are:\n\
             \x20 - Error filling in template 'a.erb' (line 3: Can't find property '[\"port\"]')\n\
             \x20 - Error filling in template 'b.erb' (line 1: boom)"
        );
        let instance = Error::Jobs {
            instance_group: "group".into(),
            jobs: vec![(
                "web".into(),
                vec!["Error filling in template 'a.erb' (line 2: x)".into()],
            )],
        };
        assert_eq!(
            instance.to_string(),
            "Unable to render jobs for instance group 'group'. Errors are:\n\
             \x20 - Unable to render templates for job 'web'. Errors are:\n\
             \x20   - Error filling in template 'a.erb' (line 2: x)"
        );
    }
}
