//! `jobs::install` end to end: `prepare` and `apply` against a local blobstore in a temp dir holding
//! tarballs built here, checking the layout, links and modes of the Go agent's
//! `agent/applier/*` (reference/bosh-agent.md §3.2, §6.1). No root, no network, no sleeps.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use settings::Dirs;
use settings::digest::{Algorithm, MultiDigest};
use settings::model::Networks;

use jobs::apply_spec::ApplySpec;
use jobs::blobstore::{Cascading, LocalBlobstore};
use jobs::install::plan::bundle_hash;
use jobs::install::{Installer, KeepOwners};

use crate::support::digest_of;

/// A base dir, a local blobstore beside it, and the blobs of one release.
struct Fixture {
    _root: tempfile::TempDir,
    dirs: Dirs,
    store: PathBuf,
    /// Multi-digests of the blobs, by id.
    digests: BTreeMap<String, MultiDigest>,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().expect("creating a temp dir");
        let dirs = Dirs::new(root.path().join("vcap"));
        let store = root.path().join("store");
        fs::create_dir_all(&store).expect("creating the blobstore");
        Fixture {
            _root: root,
            dirs,
            store,
            digests: BTreeMap::new(),
        }
    }

    /// The installer the agent would build: the local blobstore behind the local blob directories.
    fn installer(&self) -> Installer {
        let blobstore = Cascading::new(Box::new(LocalBlobstore::new(&self.store)), &self.dirs);
        Installer::new(self.dirs.clone(), Arc::new(blobstore))
            .with_owner(Arc::new(KeepOwners))
            .with_parallel(2)
    }

    /// Stores `bytes` as blob `id`; returns its `sha1;sha256` digest.
    fn add_blob(&mut self, id: &str, bytes: &[u8]) -> MultiDigest {
        fs::write(self.store.join(id), bytes).expect("writing a blob");
        let digest = digest_of(bytes, &[Algorithm::Sha1, Algorithm::Sha256]);
        self.digests.insert(id.to_owned(), digest.clone());
        digest
    }

    /// Stores a tarball of `files` (path, mode, content), packed by `jobs::archive::create`.
    fn add_tarball(&mut self, id: &str, files: &[(&str, u32, &str)]) -> MultiDigest {
        let work = tempfile::tempdir().expect("creating a temp dir");
        let source = work.path().join("source");
        fs::create_dir(&source).expect("creating the tarball source");
        fs::set_permissions(&source, fs::Permissions::from_mode(0o755)).expect("chmod");
        for (path, mode, content) in files {
            let path = source.join(path);
            fs::create_dir_all(path.parent().expect("a parent")).expect("creating a directory");
            fs::write(&path, content).expect("writing a file");
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod");
        }
        let archive = work.path().join("blob.tgz");
        jobs::archive::create(&source, &archive).expect("packing a tarball");
        let bytes = fs::read(&archive).expect("reading the tarball");
        self.add_blob(id, &bytes)
    }

    fn digest(&self, id: &str) -> String {
        self.digests[id].to_string()
    }

    fn base(&self) -> &Path {
        self.dirs.base_dir()
    }

    fn package_path(&self, name: &str, version: &str, blob: &str) -> PathBuf {
        self.dirs
            .data_packages_dir()
            .join(name)
            .join(bundle_hash(version, &self.digests[blob]))
    }

    fn job_path(&self, name: &str, version: &str, templates_blob: &str) -> PathBuf {
        self.dirs
            .data_jobs_dir()
            .join(name)
            .join(bundle_hash(version, &self.digests[templates_blob]))
    }
}

/// A release of two packages and two jobs, and a spec using all of them.
fn release() -> (Fixture, ApplySpec) {
    let mut fixture = Fixture::new();
    fixture.add_tarball(
        "blob-ruby",
        &[("bin/ruby", 0o755, "#!ruby"), ("lib/ruby.so", 0o644, "so")],
    );
    fixture.add_tarball("blob-app", &[("app.jar", 0o644, "jar")]);
    fixture.add_tarball(
        "templates-1",
        &[
            ("web/monit", 0o600, "check process web"),
            ("web/bin/ctl", 0o755, "#!/bin/sh"),
            ("web/bin/pre-start", 0o644, "#!/bin/sh"),
            ("web/config/web.yml", 0o666, "port: 80"),
            ("worker/monit", 0o644, "check process worker"),
            ("worker/bin/run", 0o700, "#!/bin/sh"),
        ],
    );
    let spec = spec(
        &fixture,
        &[("web", "1"), ("worker", "2")],
        &[("ruby", "2.1", "blob-ruby"), ("app", "1.0", "blob-app")],
        "templates-1",
    );
    (fixture, spec)
}

fn spec(
    fixture: &Fixture,
    jobs: &[(&str, &str)],
    packages: &[(&str, &str, &str)],
    templates_blob: &str,
) -> ApplySpec {
    let templates: Vec<_> = jobs
        .iter()
        .map(|(name, version)| json!({"name": name, "version": version, "sha1": "ignored"}))
        .collect();
    let packages: serde_json::Map<_, _> = packages
        .iter()
        .map(|(name, version, blob)| {
            let package = json!({
                "name": name, "version": version,
                "sha1": fixture.digest(blob), "blobstore_id": blob,
            });
            ((*name).to_owned(), package)
        })
        .collect();
    serde_json::from_value(json!({
        "deployment": "cf",
        "name": "api",
        "id": "uuid-1",
        "az": "z1",
        "index": 0,
        "job": {"name": "api", "templates": templates},
        "packages": packages,
        "networks": {"default": {"ip": "10.0.0.5", "netmask": "255.255.255.0", "default": ["dns"]}},
        "configuration_hash": "config-1",
        "rendered_templates_archive": {"sha1": fixture.digest(templates_blob), "blobstore_id": templates_blob},
        "links": {"dropped": true},
    }))
    .expect("a valid spec")
}

fn settings_networks() -> Networks {
    serde_json::from_value(json!({
        "default": {"type": "manual", "ip": "10.0.0.5", "netmask": "255.255.255.0", "gateway": "10.0.0.1"}
    }))
    .expect("valid networks")
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn link(path: &Path) -> PathBuf {
    fs::read_link(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every path under `dir` (symlinks not followed) with its kind, mode and link target or
/// content, `data/tmp` aside.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut snapshot = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).expect("reading metadata");
        let relative = path.strip_prefix(dir).expect("under dir").to_owned();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", link(&path).display())
        } else if meta.is_dir() {
            if relative != Path::new("data/tmp") {
                for entry in fs::read_dir(&path).expect("listing") {
                    pending.push(entry.expect("an entry").path());
                }
            }
            format!("dir {:o}", mode(&path))
        } else {
            let content = fs::read(&path).expect("reading");
            format!(
                "file {:o} {}",
                mode(&path),
                String::from_utf8_lossy(&content)
            )
        };
        snapshot.insert(relative, what);
    }
    snapshot
}

/// A gzipped tar whose entries are written with raw names (so `..` and absolute names survive).
fn raw_tarball(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, entry_type, data_or_link) in entries {
        let mut header = tar::Header::new_gnu();
        let name_field = &mut header.as_old_mut().name;
        name_field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*entry_type);
        header.set_mode(0o644);
        let data: &[u8] = if *entry_type == tar::EntryType::Symlink {
            header
                .set_link_name(data_or_link)
                .expect("a valid link name");
            b""
        } else {
            data_or_link.as_bytes()
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).expect("appending");
    }
    let mut encoder = builder.into_inner().expect("finishing the tar");
    encoder.flush().expect("flushing");
    encoder.finish().expect("finishing the gzip stream")
}

#[tokio::test]
async fn prepare_then_apply_installs_and_enables_everything() {
    let (fixture, spec) = release();
    let installer = fixture.installer();

    installer.prepare(&spec).await.expect("prepare");
    let ruby = fixture.package_path("ruby", "2.1", "blob-ruby");
    let app = fixture.package_path("app", "1.0", "blob-app");
    let web = fixture.job_path("web", "1", "templates-1");
    let worker = fixture.job_path("worker", "2", "templates-1");
    for path in [&ruby, &app, &web, &worker] {
        assert!(path.is_dir(), "{} is not installed", path.display());
    }
    // Prepare enables nothing and leaves no download behind.
    assert!(!fixture.dirs.packages_dir().exists());
    assert!(!fixture.dirs.jobs_dir().exists());
    assert_eq!(fs::read_dir(fixture.dirs.tmp_dir()).unwrap().count(), 0);

    let applied = installer
        .apply(spec.clone(), &settings_networks())
        .await
        .expect("apply");

    // Packages: installed with their own modes, enabled as packages/<name>.
    assert_eq!(fs::read_to_string(ruby.join("bin/ruby")).unwrap(), "#!ruby");
    assert_eq!(mode(&ruby), 0o755);
    assert_eq!(mode(&ruby.join("bin/ruby")), 0o755);
    assert_eq!(link(&fixture.dirs.packages_dir().join("ruby")), ruby);
    assert_eq!(link(&fixture.dirs.packages_dir().join("app")), app);

    // Jobs: enabled as jobs/<name>, with FixPermissions modes.
    let jobs_dir = fixture.dirs.jobs_dir();
    assert_eq!(link(&jobs_dir.join("web")), web);
    assert_eq!(link(&jobs_dir.join("worker")), worker);
    assert_eq!(
        fs::read_to_string(jobs_dir.join("web/monit")).unwrap(),
        "check process web"
    );
    let modes = [
        (&web, "", 0o750),
        (&web, "bin", 0o750),
        (&web, "bin/ctl", 0o750),
        (&web, "bin/pre-start", 0o750),
        (&web, "config", 0o750),
        (&web, "config/web.yml", 0o640),
        (&web, "monit", 0o640),
        (&worker, "bin/run", 0o750),
        (&worker, "monit", 0o640),
    ];
    for (job, path, expected) in modes {
        let path = job.join(path);
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    // Each job sees every package through jobs/<job>/packages/<pkg>.
    for job in ["web", "worker"] {
        let packages = jobs_dir.join(job).join("packages");
        assert_eq!(link(&packages.join("ruby")), ruby);
        assert_eq!(link(&packages.join("app")), app);
        assert_eq!(
            fs::read_to_string(packages.join("ruby/bin/ruby")).unwrap(),
            "#!ruby"
        );
    }
    assert!(web.join("packages/ruby").is_symlink());

    // Job directories.
    for dir in [
        "data/sys/log/web",
        "data/sys/run/web",
        "data/web",
        "data/sys/log/worker",
        "data/sys/run/worker",
        "data/worker",
    ] {
        assert_eq!(mode(&fixture.base().join(dir)), 0o770, "{dir}");
    }

    // The filtered spec and the instance files.
    let stored = ApplySpec::read(&fixture.dirs.spec_file()).unwrap();
    assert_eq!(stored, applied);
    assert_eq!(stored.packages, spec.packages);
    let raw: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture.dirs.spec_file()).unwrap()).unwrap();
    assert!(raw.get("links").is_none());
    let instance = fixture.dirs.instance_dir();
    assert_eq!(mode(&instance), 0o755);
    for (name, value) in [
        ("id", "uuid-1"),
        ("az", "z1"),
        ("name", "api"),
        ("deployment", "cf"),
    ] {
        assert_eq!(fs::read_to_string(instance.join(name)).unwrap(), value);
        assert_eq!(mode(&instance.join(name)), 0o644);
    }
}

#[tokio::test]
async fn installed_bundles_and_job_files_go_to_the_platform_owner() {
    use std::os::unix::fs::MetadataExt as _;
    let (fixture, spec) = release();
    // A gid no file here has: only the installer's chown can give it.
    let owner = platform::owner::FileOwner::new(0, 4321);
    let installer = fixture.installer().with_owner(Arc::new(owner));
    let applied = installer.apply(spec, &settings_networks()).await;
    if !is_root() {
        // Giving files away needs root: the install fails and says where.
        assert!(applied.is_err());
        return;
    }
    applied.expect("apply");
    let web = fixture.job_path("web", "1", "templates-1");
    let ruby = fixture.package_path("ruby", "2.1", "blob-ruby");
    for path in [
        web.clone(),
        web.join("bin/ctl"),
        web.join("config/web.yml"),
        web.join("monit"),
        ruby.clone(),
        fixture.dirs.jobs_dir(),
        fixture.dirs.packages_dir(),
    ] {
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 4321), "{}", path.display());
    }
}

/// Whether this test runs as root (its effective uid, from `/proc`).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap()
}

#[tokio::test]
async fn prepare_is_idempotent_and_deletes_the_uploaded_templates() {
    let (fixture, spec) = release();
    // The director sent the rendered templates with `upload_blob`: they are in sensitive_blobs only.
    fs::create_dir_all(fixture.dirs.sensitive_blobs_dir()).unwrap();
    fs::rename(
        fixture.store.join("templates-1"),
        fixture.dirs.sensitive_blobs_dir().join("templates-1"),
    )
    .unwrap();
    let installer = fixture.installer();

    installer.prepare(&spec).await.expect("first prepare");
    assert!(fixture.job_path("web", "1", "templates-1").is_dir());
    assert!(
        !fixture
            .dirs
            .sensitive_blobs_dir()
            .join("templates-1")
            .exists()
    );

    // Installed bundles are not fetched again: the blobs can be gone.
    let before = snapshot(fixture.base());
    for id in ["blob-ruby", "blob-app"] {
        fs::remove_file(fixture.store.join(id)).unwrap();
    }
    installer.prepare(&spec).await.expect("second prepare");
    installer
        .apply(spec, &settings_networks())
        .await
        .expect("apply from installed bundles");
    let after = snapshot(fixture.base());
    for (path, what) in &before {
        assert_eq!(after.get(path), Some(what), "{}", path.display());
    }
}

#[tokio::test]
async fn a_second_apply_removes_what_is_no_longer_wanted() {
    let (mut fixture, spec) = release();
    let installer = fixture.installer();
    installer
        .apply(spec, &settings_networks())
        .await
        .expect("first apply");
    let old_web = fixture.job_path("web", "1", "templates-1");
    let ruby = fixture.package_path("ruby", "2.1", "blob-ruby");
    let app = fixture.package_path("app", "1.0", "blob-app");

    // New templates (so web gets a new bundle), no worker, no app.
    fixture.add_tarball(
        "templates-2",
        &[("web/monit", 0o644, "check process web v2")],
    );
    let smaller = spec_for(&fixture, &[("web", "1")], &[("ruby", "2.1", "blob-ruby")]);
    installer
        .apply(smaller, &settings_networks())
        .await
        .expect("second apply");

    let web = fixture.job_path("web", "1", "templates-2");
    let jobs_dir = fixture.dirs.jobs_dir();
    assert_eq!(link(&jobs_dir.join("web")), web);
    assert_eq!(
        fs::read_to_string(jobs_dir.join("web/monit")).unwrap(),
        "check process web v2"
    );
    assert!(!old_web.exists());
    assert!(!jobs_dir.join("worker").exists());
    assert!(!fixture.dirs.data_jobs_dir().join("worker").exists());
    assert_eq!(crate::support::names_in(&jobs_dir), ["web"]);
    assert_eq!(
        crate::support::names_in(&fixture.dirs.data_jobs_dir().join("web")),
        [web.file_name().unwrap().to_string_lossy().into_owned()]
    );

    assert!(ruby.is_dir());
    assert!(!app.exists());
    assert!(!fixture.dirs.data_packages_dir().join("app").exists());
    assert_eq!(
        crate::support::names_in(&fixture.dirs.packages_dir()),
        ["ruby"]
    );
    assert_eq!(crate::support::names_in(&web.join("packages")), ["ruby"]);
    assert_eq!(link(&web.join("packages/ruby")), ruby);

    // Job directories hold logs and data: they stay, as in Go.
    assert!(fixture.base().join("data/sys/log/worker").is_dir());
    assert!(fixture.base().join("data/worker").is_dir());
}

/// The spec of [`release`] with other jobs (from `templates-2`) and packages.
fn spec_for(
    fixture: &Fixture,
    jobs: &[(&str, &str)],
    packages: &[(&str, &str, &str)],
) -> ApplySpec {
    let mut spec = spec(fixture, jobs, packages, "templates-2");
    spec.configuration_hash = "config-2".into();
    spec
}

#[tokio::test]
async fn a_bad_digest_changes_nothing() {
    let (mut fixture, spec) = release();
    let installer = fixture.installer();
    installer
        .apply(spec.clone(), &settings_networks())
        .await
        .expect("first apply");
    let before = snapshot(fixture.base());

    fixture.add_tarball("blob-extra", &[("extra", 0o644, "extra")]);
    let mut bad = spec.clone();
    let mut extra = bad.packages["ruby"].clone();
    extra.name = "extra".into();
    extra.blobstore_id = "blob-extra".into();
    extra.sha1 = digest_of(b"something else", &[Algorithm::Sha1]).to_string();
    bad.packages.insert("extra".into(), extra);
    bad.configuration_hash = "config-2".into();
    bad.id = "uuid-2".into();

    let err = installer
        .apply(bad.clone(), &settings_networks())
        .await
        .expect_err("a wrong digest fails");
    let text = settings::source::error_chain(&err);
    assert!(
        text.starts_with("preparing package 'extra': fetching package blob: checking blob 'blob-extra': Expected stream to have digest"),
        "{text}"
    );
    let err = installer
        .prepare(&bad)
        .await
        .expect_err("prepare fails too");
    assert!(
        settings::source::error_chain(&err).starts_with("preparing package 'extra'"),
        "{err}"
    );
    assert_eq!(snapshot(fixture.base()), before);
    assert_eq!(fs::read_dir(fixture.dirs.tmp_dir()).unwrap().count(), 0);

    // A bad digest of the rendered templates archive, for a new job.
    let mut bad = spec.clone();
    bad.job.templates.push(jobs::apply_spec::JobTemplateSpec {
        name: "web".into(),
        version: "9".into(),
    });
    bad.rendered_templates_archive = Some(jobs::apply_spec::RenderedTemplatesArchive {
        sha1: digest_of(b"other", &[Algorithm::Sha256]).to_string(),
        blobstore_id: "templates-1".into(),
    });
    let err = installer
        .apply(bad, &settings_networks())
        .await
        .expect_err("a wrong archive digest fails");
    let text = settings::source::error_chain(&err);
    assert!(
        text.starts_with("getting job source from blobstore: checking blob 'templates-1'"),
        "{text}"
    );
    assert_eq!(snapshot(fixture.base()), before);
}

#[tokio::test]
async fn traversal_archives_change_nothing() {
    let (mut fixture, spec) = release();
    let installer = fixture.installer();
    installer
        .apply(spec.clone(), &settings_networks())
        .await
        .expect("first apply");
    let before = snapshot(fixture.base());
    let outside = fixture.base().parent().unwrap().to_owned();
    let outside_before = crate::support::names_in(&outside);

    use tar::EntryType::{Regular, Symlink};
    let packages = [
        ("dot-dot", raw_tarball(&[("../../../escape", Regular, "x")])),
        (
            "absolute-link",
            raw_tarball(&[("bin/sh", Symlink, "/bin/sh")]),
        ),
        ("leaving-link", raw_tarball(&[("up", Symlink, "../../..")])),
    ];
    for (name, bytes) in packages {
        let digest = fixture.add_blob(name, &bytes);
        let mut bad = spec.clone();
        let mut package = bad.packages["ruby"].clone();
        package.name = name.into();
        package.blobstore_id = name.into();
        package.sha1 = digest.to_string();
        bad.packages.insert(name.into(), package);
        let err = installer
            .apply(bad, &settings_networks())
            .await
            .expect_err("a traversal archive fails");
        let text = settings::source::error_chain(&err);
        assert!(
            text.starts_with(&format!(
                "preparing package '{name}': installing package directory: archive "
            )) && text.contains("leaves the target"),
            "{text}"
        );
        assert_eq!(snapshot(fixture.base()), before, "{name}");
    }

    // A rendered job reaching out of its directory.
    let digest = fixture.add_blob(
        "templates-evil",
        &raw_tarball(&[
            ("web/monit", Regular, "check"),
            ("web/../../../../escape", Regular, "x"),
        ]),
    );
    let mut bad = spec.clone();
    bad.rendered_templates_archive = Some(jobs::apply_spec::RenderedTemplatesArchive {
        sha1: digest.to_string(),
        blobstore_id: "templates-evil".into(),
    });
    let err = installer
        .apply(bad, &settings_networks())
        .await
        .expect_err("a traversal archive fails");
    let text = settings::source::error_chain(&err);
    assert!(
        text.starts_with("preparing job 'web': installing job bundle: archive ")
            && text.contains("path leaves the target"),
        "{text}"
    );
    assert_eq!(snapshot(fixture.base()), before);
    assert_eq!(crate::support::names_in(&outside), outside_before);
}

#[tokio::test]
async fn apply_with_an_empty_configuration_hash_does_not_touch_jobs() {
    let (fixture, spec) = release();
    let installer = fixture.installer();
    installer
        .apply(spec.clone(), &settings_networks())
        .await
        .expect("first apply");
    let jobs_and_packages = |fixture: &Fixture| {
        let mut snapshot = snapshot(fixture.base());
        snapshot.retain(|path, _| !path.starts_with("bosh") && !path.starts_with("instance"));
        snapshot
    };
    let before = jobs_and_packages(&fixture);

    let mut jobless = spec.clone();
    jobless.configuration_hash.clear();
    jobless.packages.clear();
    jobless.job.templates.clear();
    jobless.id = "uuid-2".into();
    jobless.az = "z2".into();
    let applied = installer
        .apply(jobless, &settings_networks())
        .await
        .expect("apply without a configuration hash");

    assert_eq!(jobs_and_packages(&fixture), before);
    assert_eq!(ApplySpec::read(&fixture.dirs.spec_file()).unwrap(), applied);
    assert!(applied.packages.is_empty());
    let instance = fixture.dirs.instance_dir();
    assert_eq!(fs::read_to_string(instance.join("id")).unwrap(), "uuid-2");
    assert_eq!(fs::read_to_string(instance.join("az")).unwrap(), "z2");
}

#[tokio::test]
async fn dhcp_networks_are_resolved_and_unknown_networks_write_nothing() {
    let (fixture, mut spec) = release();
    let installer = fixture.installer();
    spec.networks =
        serde_json::from_value(json!({"dyn": {"type": "dynamic", "default": ["gateway"]}}))
            .unwrap();

    let err = installer
        .apply(spec.clone(), &settings_networks())
        .await
        .expect_err("an unknown network fails");
    assert_eq!(
        settings::source::error_chain(&err),
        "resolving dynamic networks: Network 'dyn' is not found in settings"
    );
    assert!(!fixture.base().exists());

    let networks: Networks = serde_json::from_value(json!({
        "dyn": {"type": "dynamic", "ip": "10.9.0.7", "netmask": "255.255.0.0", "gateway": "10.9.0.1"}
    }))
    .unwrap();
    let applied = installer.apply(spec, &networks).await.expect("apply");
    let stored = ApplySpec::read(&fixture.dirs.spec_file()).unwrap();
    assert_eq!(stored, applied);
    assert_eq!(
        serde_json::to_value(&stored.networks).unwrap(),
        json!({"dyn": {"type": "dynamic", "default": ["gateway"],
                       "ip": "10.9.0.7", "netmask": "255.255.0.0", "gateway": "10.9.0.1"}})
    );
}

#[tokio::test]
async fn invalid_names_are_refused_before_anything_is_written() {
    let (fixture, mut spec) = release();
    let installer = fixture.installer();
    let mut package = spec.packages["ruby"].clone();
    package.name = "../../etc".into();
    spec.packages.insert("evil".into(), package);

    let err = installer
        .prepare(&spec)
        .await
        .expect_err("a bad name fails");
    assert_eq!(
        settings::source::error_chain(&err),
        "invalid apply spec: package name '../../etc' is not a plain file name (no '/', NUL, '.' or '..')"
    );
    let err = installer
        .apply(spec, &settings_networks())
        .await
        .expect_err("a bad name fails");
    assert!(matches!(err, jobs::install::Error::Plan(_)), "{err:?}");
    assert!(!fixture.base().exists());
}
