//! Release tarballs built by `support/release_builder.rs`, extracted for real: good source and
//! compiled releases, and every way a bad one is refused with nothing left behind.

use std::error::Error as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use thin_director::release::dependencies;
use thin_director::release::{EntryProblem, Error, Release, StemcellRef};

use crate::support::release_builder::{Entry, ReleaseBuilder, job_spec, sha1_hex};

/// A temp dir with the tarball in `in/` and the extraction target at `out/release` (`out/` empty).
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        Workspace { dir }
    }

    fn tarball(&self) -> PathBuf {
        self.dir.path().join("in/release.tgz")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn target(&self) -> PathBuf {
        self.out().join("release")
    }

    fn extract(&self, builder: &ReleaseBuilder) -> Result<Release, Error> {
        builder.write(&self.tarball());
        Release::extract(&self.tarball(), &self.target())
    }

    /// Extraction fails, and neither the target nor a staging directory is left.
    fn refused(&self, builder: &ReleaseBuilder) -> Error {
        let err = self.extract(builder).unwrap_err();
        let left: Vec<_> = std::fs::read_dir(self.out())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert!(!self.target().exists());
        err
    }
}

/// The whole error chain, `a: b: c`.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn names<'a>(items: impl IntoIterator<Item = &'a thin_director::release::Package>) -> Vec<&'a str> {
    items.into_iter().map(|p| p.name.as_str()).collect()
}

fn source_release() -> ReleaseBuilder {
    ReleaseBuilder::new("bookstore", "1.4.2")
        .package("openssl", &[])
        .package("libyaml", &[])
        .package("ruby", &["libyaml", "openssl"])
        .package("app", &["ruby"])
        .package("tools", &[])
        .job("web", &["app"])
        .job("worker", &["ruby", "tools"])
}

#[test]
fn a_source_release_extracts_with_specs_blobs_and_dependency_order() {
    let workspace = Workspace::new();
    let builder = source_release();
    let release = workspace.extract(&builder).unwrap();
    let target = workspace.target();

    assert_eq!((release.name(), release.version()), ("bookstore", "1.4.2"));
    assert!(!release.is_compiled());
    assert_eq!(
        std::fs::read_to_string(target.join("release.MF")).unwrap(),
        builder.manifest()
    );
    assert_eq!(
        names(release.compile_order()),
        ["libyaml", "openssl", "ruby", "app", "tools"]
    );
    assert_eq!(
        names(release.job_packages("web").unwrap()),
        ["libyaml", "openssl", "ruby", "app"]
    );
    assert_eq!(
        names(release.job_packages("worker").unwrap()),
        ["libyaml", "openssl", "ruby", "tools"]
    );

    let web = release.job("web").unwrap();
    assert_eq!(web.fingerprint, "web-fp");
    assert_eq!(web.spec.templates["ctl.erb"], "bin/ctl");
    assert_eq!(
        web.spec.properties["port"].default,
        Some(serde_json::json!(8080))
    );
    assert!(
        std::fs::read_to_string(web.monit())
            .unwrap()
            .starts_with("check process web")
    );
    assert!(
        std::fs::read_to_string(web.template_source("ctl.erb"))
            .unwrap()
            .contains("p('port')")
    );
    // The blob is kept as shipped, with the digest release.MF gives it.
    assert_eq!(web.blob, target.join("jobs/web.tgz"));
    assert_eq!(
        sha1_hex(&std::fs::read(&web.blob).unwrap()),
        web.sha1.to_string()
    );

    let ruby = release.package("ruby").unwrap();
    assert_eq!(ruby.id().to_string(), "ruby/ruby-fp");
    assert_eq!(ruby.blob, target.join("packages/ruby.tgz"));
    let packaging = ruby.dir.join("packaging");
    assert_eq!(
        std::fs::metadata(&packaging).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(ruby.dir.join("src/README").is_file());

    // Reading the directory again gives the same release.
    let reopened = Release::from_dir(&target).unwrap();
    assert_eq!(reopened.manifest, release.manifest);
    assert_eq!(reopened.job("web").unwrap().spec, web.spec);
    assert_eq!(
        names(reopened.compile_order()),
        names(release.compile_order())
    );
}

#[test]
fn a_compiled_release_names_its_stemcell_and_keys_like_a_compiled_source_release() {
    let workspace = Workspace::new();
    let compiled = ReleaseBuilder::new("bookstore", "1.4.2")
        .compiled_package("ruby", &["libyaml"], "ubuntu-jammy/1.18")
        .compiled_package("libyaml", &[], "ubuntu-jammy/1.18")
        .job("web", &["ruby"])
        .sha256();
    let release = workspace.extract(&compiled).unwrap();
    assert!(release.is_compiled());
    let jammy = StemcellRef::parse("ubuntu-jammy/1.18").unwrap();
    let ruby = release.compiled_package("ruby").unwrap();
    assert_eq!(ruby.stemcell.as_ref(), Some(&jammy));
    assert!(ruby.sha1.to_string().starts_with("sha256:"));
    assert!(ruby.dir.join("bin/run").is_file());
    assert_eq!(
        ruby.blob,
        workspace.target().join("compiled_packages/ruby.tgz")
    );
    assert_eq!(
        names(release.job_packages("web").unwrap()),
        ["libyaml", "ruby"]
    );
    assert!(release.compile_order().is_empty());

    // The compiled package sits in a compiled package cache under the same key a compilation of
    // the same source package on the same stemcell would get.
    let other = Workspace::new();
    let source = other
        .extract(
            &ReleaseBuilder::new("bookstore", "1.4.2")
                .package("ruby", &["libyaml"])
                .package("libyaml", &[])
                .job("web", &["ruby"]),
        )
        .unwrap();
    let key = release.compiled_package_key("ruby", &jammy).unwrap();
    assert_eq!(key, source.compiled_package_key("ruby", &jammy).unwrap());
    assert_eq!(key.dependency_key, r#"[["libyaml","libyaml-v1"]]"#);
    assert_ne!(
        key,
        source
            .compiled_package_key("ruby", &StemcellRef::parse("ubuntu-noble/1.0").unwrap())
            .unwrap()
    );
}

#[test]
fn release_mf_may_come_after_the_blobs() {
    let workspace = Workspace::new();
    let release = workspace
        .extract(&source_release().manifest_last().sha256())
        .unwrap();
    assert_eq!(release.jobs.len(), 2);
}

#[test]
fn a_wrong_digest_is_refused_and_leaves_nothing() {
    let workspace = Workspace::new();
    let err = workspace.refused(&source_release().wrong_digest("packages/ruby.tgz"));
    assert!(matches!(&err, Error::Digest { blob, .. } if blob == "packages/ruby.tgz"));
    let text = chain(&err);
    assert!(
        text.contains("verifying packages/ruby.tgz: Expected stream to have digest '"),
        "{text}"
    );

    let err = workspace.refused(&source_release().sha256().wrong_digest("jobs/web.tgz"));
    assert!(chain(&err).contains("digest 'sha256:"), "{}", chain(&err));
}

#[test]
fn entries_climbing_out_are_refused_before_anything_is_written() {
    let workspace = Workspace::new();
    let escape = |entries: &[Entry]| source_release().package_with("evil", &[], entries);

    let err = workspace.refused(&escape(&[Entry::File(
        "../../escaped",
        b"x".to_vec(),
        0o644,
    )]));
    assert!(
        matches!(&err, Error::Entry { blob: Some(blob), problem: EntryProblem::LeavesTree, .. }
            if blob == "packages/evil.tgz"),
        "{err}"
    );
    assert!(
        chain(&err).ends_with("packages/evil.tgz entry ../../escaped: path leaves the target"),
        "{}",
        chain(&err)
    );
    assert!(!workspace.dir.path().join("escaped").exists());

    let err = workspace.refused(&escape(&[Entry::File(
        "/tmp/absolute",
        b"x".to_vec(),
        0o644,
    )]));
    assert!(matches!(
        err,
        Error::Entry {
            problem: EntryProblem::AbsolutePath,
            ..
        }
    ));

    let err = workspace.refused(&escape(&[
        Entry::Dir("lib"),
        Entry::Symlink("lib/up", ".."),
        Entry::Symlink("out", "lib/up/.."),
    ]));
    assert!(
        matches!(
            &err,
            Error::Entry {
                problem: EntryProblem::LinkLeavesTree { .. },
                ..
            }
        ),
        "{err}"
    );

    let err = workspace.refused(&escape(&[Entry::Symlink("etc", "/etc")]));
    assert!(matches!(
        err,
        Error::Entry {
            problem: EntryProblem::LinkLeavesTree { .. },
            ..
        }
    ));

    let err = workspace.refused(&escape(&[Entry::Fifo("pipe")]));
    assert!(
        chain(&err).ends_with("entry pipe: fifo not allowed"),
        "{}",
        chain(&err)
    );

    // The same rules hold at the top of the tarball.
    let err =
        workspace.refused(&source_release().outer(Entry::File("../outside", b"x".to_vec(), 0o644)));
    assert!(matches!(
        err,
        Error::Entry {
            blob: None,
            problem: EntryProblem::LeavesTree,
            ..
        }
    ));
    let err =
        workspace.refused(&source_release().outer(Entry::Symlink("jobs/link.tgz", "web.tgz")));
    assert!(
        chain(&err).ends_with("entry jobs/link.tgz: symlink not allowed"),
        "{}",
        chain(&err)
    );
}

#[test]
fn a_dependency_cycle_is_refused_and_named() {
    let workspace = Workspace::new();
    let err = workspace.refused(
        &ReleaseBuilder::new("loop", "1")
            .package("a", &["b"])
            .package("b", &["c"])
            .package("c", &["a"])
            .package("d", &[])
            .job("web", &["d"]),
    );
    assert!(matches!(
        &err,
        Error::Dependencies { source: dependencies::Error::Cycle { cycle }, .. }
            if cycle == &["a", "b", "c", "a"]
    ));
    assert_eq!(
        chain(&err),
        "release loop: resolving package dependencies: package dependency cycle: a -> b -> c -> a"
    );
}

#[test]
fn a_missing_dependency_is_refused_and_named() {
    let workspace = Workspace::new();
    let err = workspace.refused(
        &ReleaseBuilder::new("gap", "1")
            .package("app", &["ruby"])
            .job("web", &["app"]),
    );
    assert_eq!(
        chain(&err),
        "release gap: resolving package dependencies: package \"app\" depends on \"ruby\", which is not in the release"
    );

    let err = workspace.refused(
        &ReleaseBuilder::new("gap", "1")
            .package("app", &[])
            .job("web", &["app", "ruby"]),
    );
    assert_eq!(
        chain(&err),
        "job web needs package \"ruby\", which is not in the release"
    );
}

#[test]
fn a_job_missing_a_file_its_spec_names_is_refused() {
    let workspace = Workspace::new();
    let entries = [
        Entry::File("job.MF", job_spec("web", &[]).into_bytes(), 0o644),
        Entry::File("monit", Vec::new(), 0o644),
        Entry::File("templates/ctl.erb", b"#!/bin/sh\n".to_vec(), 0o644),
    ];
    let err = workspace.refused(&ReleaseBuilder::new("r", "1").job_with("web", &[], &entries));
    assert_eq!(chain(&err), "job web: templates/config.yml.erb is missing");

    let err = workspace.refused(&ReleaseBuilder::new("r", "1").job_with("web", &[], &entries[1..]));
    assert_eq!(chain(&err), "job web: job.MF is missing");

    let renamed = [Entry::File(
        "job.MF",
        job_spec("api", &[]).into_bytes(),
        0o644,
    )];
    let err = workspace.refused(&ReleaseBuilder::new("r", "1").job_with("web", &[], &renamed));
    assert_eq!(chain(&err), "job web: job.MF names the job \"api\"");
}

#[test]
fn a_blob_release_mf_lists_must_be_in_the_tarball() {
    let workspace = Workspace::new();
    // A tarball whose release.MF lists a job the tarball does not carry.
    let full = source_release();
    let manifest = full.manifest();
    let tarball = workspace.tarball();
    let stripped = crate::support::release_builder::tgz(&[Entry::File(
        "release.MF",
        manifest.into_bytes(),
        0o644,
    )]);
    std::fs::write(&tarball, stripped).unwrap();
    let err = Release::extract(&tarball, &workspace.target()).unwrap_err();
    assert!(
        chain(&err).ends_with("jobs/web.tgz is listed in release.MF but missing"),
        "{}",
        chain(&err)
    );
    assert!(!workspace.target().exists());
}

#[test]
fn an_existing_target_is_left_alone() {
    let workspace = Workspace::new();
    std::fs::create_dir(workspace.target()).unwrap();
    std::fs::write(workspace.target().join("mine"), b"keep").unwrap();
    let err = workspace.extract(&source_release()).unwrap_err();
    assert!(matches!(err, Error::TargetExists { .. }));
    assert_eq!(
        std::fs::read(workspace.target().join("mine")).unwrap(),
        b"keep"
    );
}

#[test]
fn a_missing_or_corrupt_tarball_is_an_error() {
    let workspace = Workspace::new();
    let err =
        Release::extract(Path::new("/nonexistent/release.tgz"), &workspace.target()).unwrap_err();
    assert!(matches!(err, Error::Open { .. }));
    std::fs::write(workspace.tarball(), b"\x1f\x8bnot gzip at all").unwrap();
    let err = Release::extract(&workspace.tarball(), &workspace.target()).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    assert!(!workspace.target().exists());
}
