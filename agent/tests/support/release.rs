//! A small real BOSH release made at test time, with every artifact the director and the agent
//! pass around (reference/director-cpi.md §2.4 and §6): source package tarballs (the package files
//! plus `packaging` at the root), job tarballs (`job.MF`, `monit`, `templates/`), the rendered
//! templates archive (one top directory per job), the apply spec, and a release tarball
//! (`release.MF`, `packages/*.tgz`, `jobs/*.tgz`, `license.tgz`) for `bosh-agent compile`.
//!
//! The release ([`Release::hello`]):
//! - package `hello`: a C program its `packaging` compiles with `cc`; with `--serve` it stays up;
//! - package `greeter`: a script around `hello` that depends on it; its `packaging` runs it, so it
//!   needs `hello` installed at compile time;
//! - job `web`: a monit process (`bin/ctl` starts `hello --serve` and writes its pidfile),
//!   `pre-start`, `post-start` and a dynamic `drain` (asks for one more second, then is done);
//! - job `worker`: no process, a `post-start` that uses `greeter`, a static `drain`;
//! - job `smoke-tests`: an errand whose `run` uses `hello` and fails.
//!
//! Templates are written with `/var/vcap` paths, as real jobs are; rendering them (the director's
//! ERB step) puts the agent's base dir in their place.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use settings::digest::{Algorithm, MultiDigest};

/// The base dir the templates are written for.
pub const VCAP: &str = "/var/vcap";

/// The C source of package `hello`.
const HELLO_C: &str = r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Greets its last argument; with --serve it then stays up until it is killed. */
int main(int argc, char **argv) {
    int serve = argc > 1 && strcmp(argv[1], "--serve") == 0;
    const char *name = argc > 1 + serve ? argv[argc - 1] : "world";
    printf("Hello, %s! (compiled from C)\n", name);
    fflush(stdout);
    while (serve) {
        pause();
    }
    return 0;
}
"#;

/// A file of a package or a job and its mode.
#[derive(Debug, Clone)]
pub struct File {
    /// Its path, relative.
    pub path: String,
    /// Its contents.
    pub text: String,
    /// Its mode.
    pub mode: u32,
}

/// A source package: its files, `packaging` among them.
#[derive(Debug, Clone)]
pub struct Package {
    /// Its name.
    pub name: &'static str,
    /// The packages it needs to compile and to run.
    pub dependencies: Vec<&'static str>,
    /// Its files.
    pub files: Vec<File>,
}

/// A job as `bosh create-release` packs it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its name.
    pub name: &'static str,
    /// The packages it uses.
    pub packages: Vec<&'static str>,
    /// Its monit file (a template too).
    pub monit: String,
    /// Its templates: source name under `templates/`, destination under the job dir, text.
    pub templates: Vec<(String, String, String)>,
}

/// The release.
#[derive(Debug, Clone)]
pub struct Release {
    /// Its name.
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// Its source packages.
    pub packages: Vec<Package>,
    /// Its jobs.
    pub jobs: Vec<Job>,
}

/// A file this module wrote and its sha1.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Where it is.
    pub path: PathBuf,
    /// Its sha1, bare hex (how the director sends digests).
    pub sha1: String,
}

/// A blob in the director's blobstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its blob id.
    pub blobstore_id: String,
    /// Its multi-digest.
    pub sha1: String,
}

/// The rendered templates archive of some jobs, with the hashes the director computes.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The archive.
    pub archive: Artifact,
    /// Per job, the sha1 of its rendered files (`template_hashes`).
    pub template_hashes: BTreeMap<String, String>,
    /// The sha1 of all of them (`configuration_hash`).
    pub configuration_hash: String,
}

/// The instance an apply spec is for.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The deployment.
    pub deployment: String,
    /// The instance group.
    pub group: String,
    /// The instance id.
    pub id: String,
    /// Its index.
    pub index: u32,
    /// Its availability zone.
    pub az: String,
    /// Its networks, as in the agent's settings.
    pub networks: Value,
}

fn file(path: &str, text: &str, mode: u32) -> File {
    File {
        path: path.to_owned(),
        text: text.to_owned(),
        mode,
    }
}

fn template(source: &str, destination: &str, text: &str) -> (String, String, String) {
    (source.to_owned(), destination.to_owned(), text.to_owned())
}

impl Release {
    /// The test release (see the module docs).
    pub fn hello() -> Release {
        let hello = Package {
            name: "hello",
            dependencies: vec![],
            files: vec![
                file("hello.c", HELLO_C, 0o644),
                file(
                    "packaging",
                    "set -e\nmkdir -p ${BOSH_INSTALL_TARGET}/bin\ncc -o ${BOSH_INSTALL_TARGET}/bin/hello hello.c\necho \"${BOSH_PACKAGE_NAME} ${BOSH_PACKAGE_VERSION}\" > ${BOSH_INSTALL_TARGET}/build-info\n",
                    0o644,
                ),
            ],
        };
        let greeter = Package {
            name: "greeter",
            dependencies: vec!["hello"],
            files: vec![
                file(
                    "greet",
                    "#!/bin/sh\nexec \"${BOSH_PACKAGES_DIR:-/var/vcap/packages}/hello/bin/hello\" \"$@\"\n",
                    0o755,
                ),
                // The compiled dependency is installed beside the package being compiled.
                file(
                    "packaging",
                    "set -e\nexport BOSH_PACKAGES_DIR=$(dirname ${BOSH_INSTALL_TARGET})\nmkdir -p ${BOSH_INSTALL_TARGET}/bin\ncp greet ${BOSH_INSTALL_TARGET}/bin/greet\n${BOSH_INSTALL_TARGET}/bin/greet 'compile time' > ${BOSH_INSTALL_TARGET}/compiled-with\n",
                    0o644,
                ),
            ],
        };
        let web = Job {
            name: "web",
            packages: vec!["hello"],
            monit: "check process web\n  with pidfile /var/vcap/sys/run/web/web.pid\n  start program \"/var/vcap/jobs/web/bin/ctl start\"\n  stop program \"/var/vcap/jobs/web/bin/ctl stop\"\n  group vcap\n".to_owned(),
            templates: vec![
                template(
                    "ctl.erb",
                    "bin/ctl",
                    "#!/bin/bash\nRUN_DIR=/var/vcap/sys/run/web\nLOG_DIR=/var/vcap/sys/log/web\ncase $1 in\n  start)\n    mkdir -p $RUN_DIR $LOG_DIR\n    /var/vcap/packages/hello/bin/hello --serve web >> $LOG_DIR/web.stdout.log 2>> $LOG_DIR/web.stderr.log &\n    echo $! > $RUN_DIR/web.pid\n    ;;\n  stop)\n    kill $(cat $RUN_DIR/web.pid)\n    rm -f $RUN_DIR/web.pid\n    ;;\nesac\n",
                ),
                template(
                    "pre-start.erb",
                    "bin/pre-start",
                    "#!/bin/bash\nset -e\necho \"pre-start for $DEPLOYMENT_NAME\"\n/var/vcap/packages/hello/bin/hello pre-start\n",
                ),
                template(
                    "post-start.erb",
                    "bin/post-start",
                    "#!/bin/bash\nset -e\npid=$(cat /var/vcap/sys/run/web/web.pid)\nkill -0 $pid\necho \"web is running as pid $pid\"\n",
                ),
                template(
                    "drain.erb",
                    "bin/drain",
                    "#!/bin/bash\necho \"$* $BOSH_JOB_STATE ${BOSH_JOB_NEXT_STATE-unset}\" >> /var/vcap/sys/log/web/drain.calls\nif [ \"$1\" = job_check_status ]; then echo 0; else echo -1; fi\n",
                ),
                template("config.yml.erb", "config/config.yml", "greeting: hello\n"),
            ],
        };
        let worker = Job {
            name: "worker",
            packages: vec!["greeter"],
            monit: String::new(),
            templates: vec![
                template(
                    "post-start.erb",
                    "bin/post-start",
                    "#!/bin/bash\nBOSH_PACKAGES_DIR=/var/vcap/packages exec /var/vcap/packages/greeter/bin/greet worker\n",
                ),
                template(
                    "drain.erb",
                    "bin/drain",
                    "#!/bin/bash\necho \"$*\" >> /var/vcap/sys/log/worker/drain.calls\necho 0\n",
                ),
            ],
        };
        let smoke_tests = Job {
            name: "smoke-tests",
            packages: vec!["hello"],
            monit: String::new(),
            templates: vec![template(
                "run.erb",
                "bin/run",
                "#!/bin/bash\n/var/vcap/packages/hello/bin/hello smoke-tests\necho '1 of 2 checks failed' >&2\nexit 3\n",
            )],
        };
        Release {
            name: "hello-release",
            version: "1.0.0",
            packages: vec![hello, greeter],
            jobs: vec![web, worker, smoke_tests],
        }
    }

    /// The package `name`.
    pub fn package(&self, name: &str) -> &Package {
        self.packages
            .iter()
            .find(|package| package.name == name)
            .unwrap_or_else(|| panic!("no package {name}"))
    }

    /// The job `name`.
    pub fn job(&self, name: &str) -> &Job {
        self.jobs
            .iter()
            .find(|job| job.name == name)
            .unwrap_or_else(|| panic!("no job {name}"))
    }

    /// The release tarball `<dir>/<name>-<version>.tgz`, as `bosh create-release --tarball` makes
    /// it (package digests in `release.MF` as `--sha2` writes them).
    pub fn tarball(&self, dir: &Path) -> Artifact {
        let tree = dir.join(format!("{}-{}", self.name, self.version));
        let mut manifest = format!(
            "name: {}\nversion: {}\ncommit_hash: 2f5b7c1\nuncommitted_changes: false\njobs:\n",
            self.name, self.version
        );
        for job in &self.jobs {
            let artifact = job.tarball(&tree.join("jobs").join(format!("{}.tgz", job.name)));
            let fingerprint = job.fingerprint();
            manifest += &format!(
                "- name: {}\n  version: {fingerprint}\n  fingerprint: {fingerprint}\n  sha1: {}\n  packages:\n{}",
                job.name,
                artifact.sha1,
                yaml_list(&job.packages),
            );
        }
        manifest += "packages:\n";
        for package in &self.packages {
            let path = tree.join("packages").join(format!("{}.tgz", package.name));
            package.tarball(&path);
            let sha256 = MultiDigest::compute(
                std::fs::read(&path).unwrap().as_slice(),
                &[Algorithm::Sha256],
            )
            .unwrap();
            let fingerprint = package.fingerprint();
            manifest += &format!(
                "- name: {}\n  version: {fingerprint}\n  fingerprint: {fingerprint}\n  sha1: {sha256}\n  dependencies:{}",
                package.name,
                if package.dependencies.is_empty() {
                    " []\n".to_owned()
                } else {
                    format!("\n{}", yaml_list(&package.dependencies))
                },
            );
        }
        let license = pack(
            &[file("LICENSE", "Apache License 2.0\n", 0o644)],
            &tree.join("license.tgz"),
        );
        let license_fingerprint = sha1_of(b"Apache License 2.0\n");
        manifest += &format!(
            "license:\n  version: {license_fingerprint}\n  fingerprint: {license_fingerprint}\n  sha1: {}\n",
            license.sha1
        );
        std::fs::write(tree.join("release.MF"), manifest).unwrap();
        let path = dir.join(format!("{}-{}.tgz", self.name, self.version));
        jobs::archive::create(&tree, &path).unwrap();
        std::fs::remove_dir_all(&tree).unwrap();
        artifact(path)
    }
}

impl Package {
    /// Its fingerprint (and version): the sha1 of its name and files.
    pub fn fingerprint(&self) -> String {
        let mut text = self.name.to_owned();
        for file in &self.files {
            text += &format!("\0{}\0{}", file.path, file.text);
        }
        sha1_of(text.as_bytes())
    }

    /// The source package tarball, at `path`.
    pub fn tarball(&self, path: &Path) -> Artifact {
        pack(&self.files, path)
    }
}

impl Job {
    /// Its fingerprint (and version): the sha1 of its spec, monit and templates.
    pub fn fingerprint(&self) -> String {
        let mut text = format!("{}\0{}", self.spec(), self.monit);
        for (_, _, template) in &self.templates {
            text += &format!("\0{template}");
        }
        sha1_of(text.as_bytes())
    }

    /// The job tarball, at `path`: `job.MF`, `monit` and `templates/<source>`.
    pub fn tarball(&self, path: &Path) -> Artifact {
        let mut files = vec![
            file("job.MF", &self.spec(), 0o644),
            file("monit", &self.monit, 0o644),
        ];
        for (source, _, text) in &self.templates {
            files.push(file(&format!("templates/{source}"), text, 0o644));
        }
        pack(&files, path)
    }

    /// `job.MF`: the job spec.
    fn spec(&self) -> String {
        let mut spec = format!("---\nname: {}\ntemplates:\n", self.name);
        for (source, destination, _) in &self.templates {
            spec += &format!("  {source}: {destination}\n");
        }
        spec + "packages:\n" + &yaml_list(&self.packages) + "properties: {}\n"
    }

    /// Its rendered files, `(path under the job dir, text)`, with `base_dir` for `/var/vcap`.
    fn render(&self, base_dir: &Path) -> Vec<(String, String)> {
        let base_dir = base_dir.to_str().unwrap();
        let mut files = vec![
            ("monit".to_owned(), self.monit.replace(VCAP, base_dir)),
            (".bosh/links.json".to_owned(), "[]".to_owned()),
        ];
        for (_, destination, text) in &self.templates {
            files.push((destination.clone(), text.replace(VCAP, base_dir)));
        }
        files
    }
}

/// The rendered templates archive of `jobs` for an agent with `base_dir`, at `path`.
pub fn render(jobs: &[&Job], base_dir: &Path, path: &Path) -> Rendered {
    let mut files = Vec::new();
    let mut template_hashes = BTreeMap::new();
    for job in jobs {
        let rendered = job.render(base_dir);
        let all: String = rendered.iter().map(|(_, text)| text.as_str()).collect();
        template_hashes.insert(job.name.to_owned(), sha1_of(all.as_bytes()));
        for (relative, text) in rendered {
            files.push(file(&format!("{}/{relative}", job.name), &text, 0o644));
        }
    }
    let configuration_hash = sha1_of(serde_json::to_string(&template_hashes).unwrap().as_bytes());
    Rendered {
        archive: pack(&files, path),
        template_hashes,
        configuration_hash,
    }
}

/// The apply spec the director sends for `instance` running `jobs` (with their job blobs) and
/// `packages` (compiled, with their blobs), rendered as `rendered` and stored as `templates`:
/// exactly the keys of the director's `as_apply_spec` (reference/director-cpi.md §2.4).
pub fn apply_spec(
    instance: &Instance,
    jobs: &[(&Job, BlobRef)],
    packages: &[(&Package, BlobRef)],
    rendered: &Rendered,
    templates: &BlobRef,
) -> Value {
    let templates_list: Vec<Value> = jobs
        .iter()
        .map(|(job, blob)| {
            json!({
                "name": job.name,
                "version": job.fingerprint(),
                "sha1": blob.sha1,
                "blobstore_id": blob.blobstore_id,
                "logs": [],
            })
        })
        .collect();
    let packages: serde_json::Map<String, Value> = packages
        .iter()
        .map(|(package, blob)| {
            (
                package.name.to_owned(),
                json!({
                    "name": package.name,
                    "version": package.fingerprint(),
                    "sha1": blob.sha1,
                    "blobstore_id": blob.blobstore_id,
                }),
            )
        })
        .collect();
    let first = jobs.first().map(|(job, _)| *job);
    json!({
        "deployment": instance.deployment,
        "job": {
            "name": instance.group,
            "templates": templates_list,
            "template": first.map(|job| job.name),
            "version": first.map(Job::fingerprint),
        },
        "index": instance.index,
        "name": instance.group,
        "id": instance.id,
        "az": instance.az,
        "networks": instance.networks,
        "packages": packages,
        "dns_domain_name": "bosh",
        "configuration_hash": rendered.configuration_hash,
        "persistent_disk": 0,
        "template_hashes": rendered.template_hashes,
        "rendered_templates_archive": {
            "blobstore_id": templates.blobstore_id,
            "sha1": templates.sha1,
        },
    })
}

/// A gzipped tar at `path` whose entries keep their raw names (so `../evil` survives), as a
/// hostile or broken tarball has them.
pub fn raw_tarball(entries: &[(&str, &str)], path: &Path) -> Artifact {
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gzip);
    for (name, text) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(text.len() as u64);
        header.set_cksum();
        builder.append(&header, text.as_bytes()).unwrap();
    }
    let mut gzip = builder.into_inner().unwrap();
    gzip.flush().unwrap();
    std::fs::write(path, gzip.finish().unwrap()).unwrap();
    artifact(path.to_owned())
}

/// The sha1 of `bytes`, bare hex.
pub fn sha1_of(bytes: &[u8]) -> String {
    MultiDigest::compute(bytes, &[Algorithm::Sha1])
        .unwrap()
        .to_string()
}

/// `files` packed into a tgz at `path` (`tar czf` of a directory holding them).
fn pack(files: &[File], path: &Path) -> Artifact {
    let tree = tempfile::tempdir().unwrap();
    for file in files {
        let target = tree.path().join(&file.path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &file.text).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode)).unwrap();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    jobs::archive::create(tree.path(), path).unwrap();
    artifact(path.to_owned())
}

fn artifact(path: PathBuf) -> Artifact {
    let sha1 = sha1_of(&std::fs::read(&path).unwrap());
    Artifact { path, sha1 }
}

fn yaml_list(items: &[&str]) -> String {
    items.iter().map(|item| format!("  - {item}\n")).collect()
}
