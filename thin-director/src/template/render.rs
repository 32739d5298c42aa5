//! Running Ruby's ERB over a job's templates: one `ruby` process per job, running the embedded
//! `renderer.rb`, with the context as JSON on standard input and the rendered files as JSON on
//! standard output (the shape of bosh-cli's `templatescompiler/erbrenderer`, with the director's
//! evaluation context and error texts).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exec;
use crate::template::{
    Error, InstanceSpec, Job, LINKS_PATH, NO_LINKS, RenderedFile, RenderedJob, RenderedTemplates,
    Result, bind_properties, path,
};

/// How long one job's rendering may take by default before Ruby is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The script Ruby runs: the evaluation context and the rendering loop.
const SCRIPT: &str = include_str!("renderer.rb");

/// Renders job templates with a Ruby interpreter.
#[derive(Debug, Clone)]
pub struct Renderer {
    ruby: PathBuf,
    timeout: Duration,
}

/// What the script reads.
#[derive(Debug, Serialize)]
struct Context<'a> {
    job: &'a str,
    spec: Value,
    /// Base64.
    monit: String,
    templates: Vec<TemplateSource<'a>>,
}

#[derive(Debug, Serialize)]
struct TemplateSource<'a> {
    source: &'a str,
    /// Base64.
    erb: String,
}

/// What the script writes.
#[derive(Debug, Deserialize)]
struct Answer {
    /// Base64; absent when `monit` failed.
    monit: Option<String>,
    /// Source → base64 contents, for the templates that rendered.
    templates: BTreeMap<String, String>,
    /// BOSH's text for each template that failed.
    errors: Vec<String>,
}

impl Renderer {
    /// A renderer running the Ruby interpreter at `ruby`, with [`DEFAULT_TIMEOUT`] per job.
    pub fn new(ruby: impl Into<PathBuf>) -> Renderer {
        Renderer {
            ruby: ruby.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same renderer, giving each job `timeout` to render.
    pub fn with_timeout(self, timeout: Duration) -> Renderer {
        Renderer { timeout, ..self }
    }

    /// Renders `job`'s `monit` and templates for the instance `spec`, with `properties` (the
    /// instance's properties for this job) bound to the job's declared properties. Names are
    /// checked before Ruby runs; a template that fails is reported with the others of the job.
    pub async fn render_job(
        &self,
        job: &Job,
        properties: &Value,
        spec: &InstanceSpec,
    ) -> Result<RenderedJob> {
        path::check_job(job)?;
        let name = &job.spec.name;
        let bound = bind_properties(&job.spec, properties)?;
        let stdin = context_json(job, bound, spec)?;
        let program = exec::Program {
            path: self.ruby.clone(),
            args: vec![OsString::from("-e"), OsString::from(SCRIPT)],
            // Nothing of the director's environment reaches templates.
            env: Vec::new(),
            stdin,
            timeout: self.timeout,
        };
        let output = match exec::run(&program).await {
            Ok(output) => output,
            Err(source @ exec::Error::Start { .. }) if is_not_found(&source) => {
                return Err(Error::RubyMissing {
                    ruby: self.ruby.clone(),
                    source,
                });
            }
            Err(source) => {
                return Err(Error::Run {
                    job: name.clone(),
                    source,
                });
            }
        };
        if !output.status.success() {
            return Err(Error::Renderer {
                job: name.clone(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        parse_answer(job, &output.stdout)
    }

    /// Renders every job of an instance (each with its properties) and builds the archive and
    /// hashes of its apply spec. The names of all jobs are checked before any is rendered; every
    /// job is rendered even when one fails, so that the error names all the failed templates, as
    /// the director's does.
    pub async fn render_instance(
        &self,
        jobs: &[(&Job, &Value)],
        spec: &InstanceSpec,
    ) -> Result<RenderedTemplates> {
        let mut names = std::collections::BTreeSet::new();
        for (job, _) in jobs {
            path::check_job(job)?;
            if !names.insert(&job.spec.name) {
                return Err(Error::DuplicateJob {
                    job: job.spec.name.clone(),
                });
            }
        }
        let mut rendered = Vec::new();
        let mut failed = Vec::new();
        for (job, properties) in jobs {
            match self.render_job(job, properties, spec).await {
                Ok(job) => rendered.push(job),
                Err(Error::Templates { job, errors }) => failed.push((job, errors)),
                Err(other) => return Err(other),
            }
        }
        if !failed.is_empty() {
            return Err(Error::Jobs {
                instance_group: spec.name.clone(),
                jobs: failed,
            });
        }
        RenderedTemplates::from_jobs(rendered)
    }
}

/// The script's input: the template spec (the instance spec with the bound properties) and the
/// sources, base64-encoded so any bytes survive JSON.
fn context_json(job: &Job, properties: Value, spec: &InstanceSpec) -> Result<Vec<u8>> {
    let output_error = |err: serde_json::Error| Error::Output {
        job: job.spec.name.clone(),
        reason: err.to_string(),
    };
    let mut template_spec = serde_json::to_value(spec).map_err(output_error)?;
    if let Value::Object(map) = &mut template_spec {
        map.insert("properties".to_owned(), properties);
    }
    let context = Context {
        job: &job.spec.name,
        spec: template_spec,
        monit: BASE64.encode(&job.monit),
        templates: job
            .spec
            .templates
            .keys()
            .map(|source| TemplateSource {
                source,
                erb: BASE64.encode(job.sources.get(source).map_or(&[][..], Vec::as_slice)),
            })
            .collect(),
    };
    serde_json::to_vec(&context).map_err(output_error)
}

/// The rendered job from the script's answer, or the job's template errors.
fn parse_answer(job: &Job, stdout: &[u8]) -> Result<RenderedJob> {
    let name = &job.spec.name;
    let bad = |reason: String| Error::Output {
        job: name.clone(),
        reason,
    };
    let answer: Answer = serde_json::from_slice(stdout).map_err(|err| bad(err.to_string()))?;
    if !answer.errors.is_empty() {
        return Err(Error::Templates {
            job: name.clone(),
            errors: answer.errors,
        });
    }
    let decode = |what: &str, text: &str| {
        BASE64
            .decode(text)
            .map_err(|err| bad(format!("{what}: {err}")))
    };
    let monit = match &answer.monit {
        Some(text) => decode("monit", text)?,
        None => return Err(bad("no monit".to_owned())),
    };
    let mut files = Vec::new();
    for (source, destination) in &job.spec.templates {
        let text = answer
            .templates
            .get(source)
            .ok_or_else(|| bad(format!("no {source}")))?;
        files.push(RenderedFile {
            source: source.clone(),
            destination: destination.clone(),
            contents: decode(source, text)?,
        });
    }
    files.push(RenderedFile {
        source: LINKS_PATH.to_owned(),
        destination: LINKS_PATH.to_owned(),
        contents: NO_LINKS.to_vec(),
    });
    files.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(RenderedJob {
        name: name.clone(),
        monit,
        files,
    })
}

/// Whether starting failed because the program does not exist.
fn is_not_found(err: &exec::Error) -> bool {
    matches!(err, exec::Error::Start { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use serde_json::json;

    use super::*;
    use crate::template::{JobSpec, NetworkSpec, PropertyDefinition, SpecJob};

    /// The Ruby the tests run: `ruby` on `PATH`. CI installs the Debian package.
    fn ruby() -> PathBuf {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("ruby"))
            .find(|candidate| candidate.is_file())
            .expect("ruby is not installed (Debian package 'ruby'): the template tests need it")
    }

    fn renderer() -> Renderer {
        Renderer::new(ruby())
    }

    fn job(name: &str, monit: &str, templates: &[(&str, &str, &str)]) -> Job {
        Job {
            spec: JobSpec {
                name: name.into(),
                templates: templates
                    .iter()
                    .map(|(s, d, _)| (s.to_string(), d.to_string()))
                    .collect(),
                properties: [
                    ("port", None),
                    ("log.level", Some(json!("info"))),
                    ("tls.cert", None),
                    ("tls.key", None),
                    ("listen.host", None),
                    ("users", Some(json!([]))),
                ]
                .into_iter()
                .map(|(name, default)| {
                    (
                        name.to_owned(),
                        PropertyDefinition {
                            default,
                            ..PropertyDefinition::default()
                        },
                    )
                })
                .collect(),
                ..JobSpec::default()
            },
            monit: monit.into(),
            sources: templates
                .iter()
                .map(|(s, _, text)| (s.to_string(), text.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn spec() -> InstanceSpec {
        InstanceSpec {
            deployment: "demo".into(),
            name: "web-group".into(),
            id: "0b7e6d9c-1f2a-4c3b-9d8e-7f6a5b4c3d2e".into(),
            index: 2,
            az: Some("z1".into()),
            ip: Some("10.0.0.12".into()),
            address: Some("10.0.0.12".into()),
            bootstrap: true,
            job: SpecJob {
                name: "web-group".into(),
            },
            networks: [
                (
                    "private".to_owned(),
                    NetworkSpec {
                        ip: Some("10.0.0.12".into()),
                        netmask: Some("255.255.255.0".into()),
                        gateway: Some("10.0.0.1".into()),
                        dns: vec!["10.0.0.2".into()],
                        default: vec!["dns".into(), "gateway".into()],
                    },
                ),
                (
                    "public".to_owned(),
                    NetworkSpec {
                        ip: Some("192.0.2.7".into()),
                        ..NetworkSpec::default()
                    },
                ),
            ]
            .into(),
            dns_domain_name: Some("bosh".into()),
            persistent_disk: 1024,
        }
    }

    const CONFIG: &str = "\
port: <%= p('port') %>
level: <%= p('log.level') %>
missing_with_default: <%= p('nope', 'fallback') %>
first_set: <%= p(['tls.cert', 'listen.host']) %>
<% if_p('tls.cert', 'tls.key') do |cert, key| -%>
tls: <%= cert %>+<%= key %>
<% end.else do -%>
tls: off
<% end -%>
<% if_p('listen.host') do |host| -%>
host: <%= host %>
<% end.else_if_p('port') do |port| -%>
host: any:<%= port %>
<% end -%>
users: <%= p('users').length %> <%= properties.log.level %>
ip: <%= spec.ip %>
private: <%= spec.networks.private.ip %>/<%= spec.networks.private.netmask %> via <%= spec.networks.private.gateway %>
public: <%= spec.networks.public.ip %>
bootstrap: <%= spec.bootstrap %>
index: <%= index %> name: <%= name %> deployment: <%= spec.deployment %> az: <%= spec.az %> id: <%= spec.id %>
";

    const CTL: &str =
        "#!/bin/bash\n# <%= name %>/<%= spec.index %>\nexec web --port <%= p('port') %>\n";

    const MONIT: &str = "check process web\n  with pidfile /var/vcap/sys/run/web/web.pid\n  group vcap # <%= spec.address %>\n";

    fn web() -> Job {
        job(
            "web",
            MONIT,
            &[
                ("config.yml.erb", "config/config.yml", CONFIG),
                ("ctl.erb", "bin/ctl", CTL),
            ],
        )
    }

    fn web_properties() -> Value {
        json!({"port": 8080, "listen": {"host": null}, "tls": {"cert": "CERT"}, "undeclared": 1})
    }

    #[tokio::test]
    async fn renders_p_if_p_spec_index_and_name() {
        let rendered = renderer()
            .render_job(&web(), &web_properties(), &spec())
            .await
            .unwrap();
        assert_eq!(rendered.name, "web");
        assert_eq!(
            String::from_utf8(rendered.monit.clone()).unwrap(),
            "check process web\n  with pidfile /var/vcap/sys/run/web/web.pid\n  group vcap # 10.0.0.12\n"
        );
        let by_destination: BTreeMap<&str, String> = rendered
            .files
            .iter()
            .map(|f| {
                (
                    f.destination.as_str(),
                    String::from_utf8(f.contents.clone()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_destination["config/config.yml"],
            "\
port: 8080
level: info
missing_with_default: fallback
first_set: CERT
tls: off
host: any:8080
users: 0 info
ip: 10.0.0.12
private: 10.0.0.12/255.255.255.0 via 10.0.0.1
public: 192.0.2.7
bootstrap: true
index: 2 name: web-group deployment: demo az: z1 id: 0b7e6d9c-1f2a-4c3b-9d8e-7f6a5b4c3d2e
"
        );
        assert_eq!(
            by_destination["bin/ctl"],
            "#!/bin/bash\n# web-group/2\nexec web --port 8080\n"
        );
        assert_eq!(by_destination[".bosh/links.json"], "[]\n");
        let sources: Vec<&str> = rendered.files.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(sources, [".bosh/links.json", "config.yml.erb", "ctl.erb"]);
    }

    #[tokio::test]
    async fn a_missing_required_property_is_boshs_error_with_its_line() {
        let job = job(
            "web",
            "check process web\n",
            &[
                (
                    "config.yml.erb",
                    "config/config.yml",
                    "a: 1\nb: 2\nport: <%= p('port') %>\n",
                ),
                ("fine.erb", "config/fine", "<%= p('log.level') %>"),
            ],
        );
        let err = renderer()
            .render_job(&job, &json!({}), &spec())
            .await
            .unwrap_err();
        let Error::Templates { job, errors } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(job, "web");
        assert_eq!(
            errors,
            &[
                "Error filling in template 'config.yml.erb' (line 3: Can't find property '[\"port\"]')"
            ]
        );
        assert_eq!(
            err.to_string(),
            "Unable to render templates for job 'web'. Errors are:\n  \
             - Error filling in template 'config.yml.erb' (line 3: Can't find property '[\"port\"]')"
        );
    }

    #[tokio::test]
    async fn alternatives_name_every_property_and_every_failed_template_is_reported() {
        let job = job(
            "web",
            "check <%= p('tls.key') %>\n",
            &[
                ("a.erb", "a", "\n<%= p(['tls.cert', 'listen.host']) %>"),
                ("b.erb", "b", "<%= link('db').address %>"),
                ("c.erb", "c", "<% if_link('db') do |db| %><% end %>"),
            ],
        );
        let err = renderer()
            .render_job(&job, &json!({}), &spec())
            .await
            .unwrap_err();
        let Error::Templates { errors, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(
            errors,
            [
                "Error filling in template 'monit' (line 1: Can't find property '[\"tls.key\"]')",
                "Error filling in template 'a.erb' (line 2: Can't find property '[\"tls.cert\", \"listen.host\"]')",
                "Error filling in template 'b.erb' (line 1: Can't resolve link 'db': links are not supported by the thin director)",
                "Error filling in template 'c.erb' (line 1: Can't resolve link 'db': links are not supported by the thin director)",
            ]
        );
    }

    #[tokio::test]
    async fn a_ruby_syntax_error_names_the_file_and_line() {
        let job = job(
            "web",
            "check process web\n",
            &[("broken.erb", "config/broken", "ok\nok\n<% if %>\n")],
        );
        let err = renderer()
            .render_job(&job, &json!({"port": 1}), &spec())
            .await
            .unwrap_err();
        let Error::Templates { errors, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("Error filling in template 'broken.erb' (line 3: syntax error"),
            "{}",
            errors[0]
        );
    }

    #[tokio::test]
    async fn an_unknown_name_does_not_print_the_properties() {
        let job = job(
            "web",
            "m",
            &[("a.erb", "a", "<%= p('port') %>\n<%= nope %>")],
        );
        let err = renderer()
            .render_job(&job, &json!({"port": "s3cr3t-port"}), &spec())
            .await
            .unwrap_err();
        let Error::Templates { errors, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "Error filling in template 'a.erb' (line 2: undefined local variable or method"
            ),
            "{}",
            errors[0]
        );
        assert!(!errors[0].contains("s3cr3t"), "{}", errors[0]);
    }

    #[tokio::test]
    async fn output_printed_by_a_template_does_not_spoil_the_answer() {
        let job = job(
            "web",
            "<% puts 'to stdout'; STDOUT.write('more'); system('echo', 'child') %>monit\n",
            &[("a.erb", "a", "<% $stdout.puts 'x' %>a")],
        );
        let rendered = renderer()
            .render_job(&job, &json!({}), &spec())
            .await
            .unwrap();
        assert_eq!(rendered.monit, b"monit\n");
        assert_eq!(rendered.files[1].contents, b"a");
    }

    #[tokio::test]
    async fn bytes_survive_and_templates_see_utf8() {
        let mut job = job("web", "m", &[("a.erb", "a", "é<%= 'ü'.upcase %>")]);
        job.sources
            .insert("raw.erb".into(), vec![0xff, 0xfe, b'\n']);
        job.spec.templates.insert("raw.erb".into(), "raw".into());
        let rendered = renderer()
            .render_job(&job, &json!({}), &spec())
            .await
            .unwrap();
        let contents: BTreeMap<&str, &[u8]> = rendered
            .files
            .iter()
            .map(|f| (f.source.as_str(), f.contents.as_slice()))
            .collect();
        assert_eq!(contents["a.erb"], "éÜ".as_bytes());
        assert_eq!(contents["raw.erb"], [0xff, 0xfe, b'\n']);
    }

    #[tokio::test]
    async fn unsafe_destinations_are_refused_before_ruby_runs() {
        let job = job("web", "m", &[("a.erb", "../../etc/cron.d/evil", "x")]);
        // A renderer that could not run at all: the check must come first.
        let err = Renderer::new("/nonexistent/ruby")
            .render_job(&job, &json!({}), &spec())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "job 'web': template 'a.erb' has destination '../../etc/cron.d/evil' outside the job directory"
        );
    }

    #[tokio::test]
    async fn a_missing_ruby_names_the_debian_package() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ruby");
        let err = Renderer::new(&missing)
            .render_job(&web(), &web_properties(), &spec())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RubyMissing { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "ruby not found at {}: install it (Debian package 'ruby')",
                missing.display()
            )
        );
    }

    #[tokio::test]
    async fn a_template_that_runs_too_long_is_killed() {
        let job = job("web", "<% sleep 30 %>", &[]);
        let err = renderer()
            .with_timeout(Duration::from_millis(500))
            .render_job(&job, &json!({}), &spec())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Run {
                    source: exec::Error::TimedOut { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_bad_property_type_is_refused_before_ruby_runs() {
        let err = Renderer::new("/nonexistent/ruby")
            .render_job(&web(), &json!({"log": "loud"}), &spec())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "job 'web': Property 'log.level' expects a hash, but received 'String'"
        );
    }

    fn db() -> Job {
        let mut db = job(
            "db",
            "check process db # <%= index %>\n",
            &[(
                "db.conf.erb",
                "config/db.conf",
                "port=<%= p('port', 5432) %>\n",
            )],
        );
        db.spec.properties.clear();
        db.spec.properties.insert(
            "port".into(),
            PropertyDefinition {
                default: Some(json!(5432)),
                ..PropertyDefinition::default()
            },
        );
        db
    }

    #[tokio::test]
    async fn an_instance_gives_the_archive_and_boshs_hashes() {
        let (web, db) = (web(), db());
        let (web_props, db_props) = (web_properties(), json!({"port": 6543}));
        let rendered = renderer()
            .render_instance(&[(&web, &web_props), (&db, &db_props)], &spec())
            .await
            .unwrap();
        let names: Vec<&str> = rendered.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["db", "web"]);

        // The archive: one directory per job, sorted, bin/ executable.
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&rendered.archive[..]));
        let mut entries = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut contents = String::new();
            entry.read_to_string(&mut contents).unwrap();
            entries.push((
                entry.path().unwrap().display().to_string(),
                entry.header().mode().unwrap(),
                contents,
            ));
        }
        let paths: Vec<(&str, u32)> = entries.iter().map(|(p, m, _)| (p.as_str(), *m)).collect();
        assert_eq!(
            paths,
            [
                ("db/.bosh/links.json", 0o644),
                ("db/config/db.conf", 0o644),
                ("db/monit", 0o644),
                ("web/.bosh/links.json", 0o644),
                ("web/bin/ctl", 0o755),
                ("web/config/config.yml", 0o644),
                ("web/monit", 0o644),
            ]
        );
        assert_eq!(entries[1].2, "port=6543\n");
        assert_eq!(entries[2].2, "check process db # 2\n");
        assert_eq!(
            rendered.archive_sha1,
            format!(
                "{:x}",
                <sha1::Sha1 as sha1::Digest>::digest(&rendered.archive)
            )
        );

        // The hashes, spelled out as BOSH computes them.
        let sha1 = |bytes: &[u8]| format!("{:x}", <sha1::Sha1 as sha1::Digest>::digest(bytes));
        let file = |job: &RenderedJob, source: &str| {
            job.files
                .iter()
                .find(|f| f.source == source)
                .unwrap()
                .contents
                .clone()
        };
        let (db_job, web_job) = (&rendered.jobs[0], &rendered.jobs[1]);
        let db_hash = sha1(
            &[
                db_job.monit.clone(),
                b"[]\n".to_vec(),
                b"port=6543\n".to_vec(),
            ]
            .concat(),
        );
        let web_hash = sha1(
            &[
                web_job.monit.clone(),
                b"[]\n".to_vec(),
                file(web_job, "config.yml.erb"),
                file(web_job, "ctl.erb"),
            ]
            .concat(),
        );
        assert_eq!(
            rendered.template_hashes,
            BTreeMap::from([("db".to_owned(), db_hash), ("web".to_owned(), web_hash)])
        );
        let configuration = sha1(
            &[
                db_job.monit.clone(),
                b"db".to_vec(),
                b"[]\n.bosh/links.json".to_vec(),
                b"port=6543\nconfig/db.conf".to_vec(),
                web_job.monit.clone(),
                b"web".to_vec(),
                b"[]\n.bosh/links.json".to_vec(),
                file(web_job, "config.yml.erb"),
                b"config/config.yml".to_vec(),
                file(web_job, "ctl.erb"),
                b"bin/ctl".to_vec(),
            ]
            .concat(),
        );
        assert_eq!(rendered.configuration_hash, configuration);
    }

    #[tokio::test]
    async fn the_same_input_twice_gives_identical_bytes() {
        let (web, db) = (web(), db());
        let (web_props, db_props) = (web_properties(), json!({}));
        let first = renderer()
            .render_instance(&[(&web, &web_props), (&db, &db_props)], &spec())
            .await
            .unwrap();
        let second = renderer()
            .render_instance(&[(&db, &db_props), (&web, &web_props)], &spec())
            .await
            .unwrap();
        assert_eq!(first.archive, second.archive);
        assert_eq!(first, second);

        let mut other = spec();
        other.index = 3;
        let third = renderer()
            .render_instance(&[(&web, &web_props), (&db, &db_props)], &other)
            .await
            .unwrap();
        assert_ne!(third.archive_sha1, first.archive_sha1);
        assert_ne!(third.configuration_hash, first.configuration_hash);
    }

    #[tokio::test]
    async fn an_instance_is_checked_whole_before_ruby_runs() {
        let (web, db) = (web(), db());
        let props = json!({});
        let err = Renderer::new("/nonexistent/ruby")
            .render_instance(&[(&web, &props), (&db, &props), (&web, &props)], &spec())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "job 'web' appears more than once in the instance"
        );
        let escaping = job("evil", "m", &[("a.erb", "/etc/passwd", "x")]);
        let err = Renderer::new("/nonexistent/ruby")
            .render_instance(&[(&web, &props), (&escaping, &props)], &spec())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Destination { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn an_instance_reports_every_failed_job() {
        let (web, db) = (web(), db());
        let broken_db = Job {
            monit: b"<%= p('nope') %>".to_vec(),
            ..db
        };
        let (none, db_props) = (json!({}), json!({}));
        let err = renderer()
            .render_instance(&[(&web, &none), (&broken_db, &db_props)], &spec())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unable to render jobs for instance group 'web-group'. Errors are:\n  \
             - Unable to render templates for job 'web'. Errors are:\n    \
             - Error filling in template 'config.yml.erb' (line 1: Can't find property '[\"port\"]')\n    \
             - Error filling in template 'ctl.erb' (line 3: Can't find property '[\"port\"]')\n  \
             - Unable to render templates for job 'db'. Errors are:\n    \
             - Error filling in template 'monit' (line 1: Can't find property '[\"nope\"]')"
        );
    }
}
