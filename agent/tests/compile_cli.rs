//! `bosh-agent compile` run as a real process on the release tarball of `support::release`
//! (the Go agent's `main/compile.go` and `releasetarball/compile.go`): the packages are compiled for
//! real (`cc` builds `hello`), and the compiled release is checked file by file.

use std::path::Path;
use std::process::{Command, Output};

use serde_yaml_ng::Value;

use crate::support::release::{self, Release};

const BOSH_AGENT: &str = env!("CARGO_BIN_EXE_bosh-agent");

const STEMCELL_VERSION: &str = "1.23";

/// Runs `bosh-agent -b <base> compile -output-directory <output> <releases>` (Go's flag spelling).
fn compile(base: &Path, output: &Path, releases: &[&Path]) -> Output {
    let stemcell_version = base.join("bosh/etc/stemcell_version");
    std::fs::create_dir_all(stemcell_version.parent().unwrap()).unwrap();
    std::fs::write(&stemcell_version, format!("{STEMCELL_VERSION}\n")).unwrap();
    Command::new(BOSH_AGENT)
        .arg("-b")
        .arg(base)
        .arg("compile")
        .arg("-output-directory")
        .arg(output)
        .args(releases)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `<ID>-<VERSION_CODENAME>` of this machine, the stemcell the agent says it compiles on.
fn host_os() -> String {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let value = |key: &str| {
        os_release
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in /etc/os-release"))
            .trim_matches('"')
            .to_owned()
    };
    format!("{}-{}", value("ID"), value("VERSION_CODENAME"))
}

fn manifest(tree: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(tree.join("release.MF")).unwrap()).unwrap()
}

fn unpack(archive: &Path, target: &Path) {
    jobs::archive::extract(archive, target, &Default::default()).unwrap();
}

#[test]
fn compile_turns_a_source_release_into_a_compiled_release() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    let output = work.path().join("compiled");
    let release = Release::hello();
    let source = release.tarball(work.path());

    let run = compile(&base, &output, &[&source.path]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    let slug = format!("{}/{STEMCELL_VERSION}", host_os());
    let compiled = output.join(format!(
        "hello-release-1.0.0-{}-{STEMCELL_VERSION}.tgz",
        host_os()
    ));
    assert!(compiled.is_file(), "{stderr}");
    let (source_tree, compiled_tree) = (work.path().join("source"), work.path().join("tree"));
    unpack(&source.path, &source_tree);
    unpack(&compiled, &compiled_tree);

    // Jobs and the license are the source's, byte for byte; packages/ became compiled_packages/.
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&compiled_tree),
        ["compiled_packages", "jobs", "license.tgz", "release.MF"]
    );
    assert_eq!(
        names(&compiled_tree.join("compiled_packages")),
        ["greeter.tgz", "hello.tgz"]
    );
    for file in [
        "jobs/web.tgz",
        "jobs/worker.tgz",
        "jobs/smoke-tests.tgz",
        "license.tgz",
    ] {
        assert_eq!(
            std::fs::read(compiled_tree.join(file)).unwrap(),
            std::fs::read(source_tree.join(file)).unwrap(),
            "{file}"
        );
    }

    // release.MF: the same release and jobs, compiled packages instead of source packages, in the
    // order they were compiled (dependencies first).
    let (source_manifest, compiled_manifest) = (manifest(&source_tree), manifest(&compiled_tree));
    for key in ["name", "version", "commit_hash", "jobs", "license"] {
        assert_eq!(compiled_manifest[key], source_manifest[key], "{key}");
    }
    assert!(compiled_manifest.get("packages").is_none());
    let compiled_packages = compiled_manifest["compiled_packages"]
        .as_sequence()
        .unwrap();
    assert_eq!(compiled_packages.len(), 2);
    for (entry, name) in compiled_packages.iter().zip(["hello", "greeter"]) {
        let package = release.package(name);
        let tarball = std::fs::read(
            compiled_tree
                .join("compiled_packages")
                .join(format!("{name}.tgz")),
        )
        .unwrap();
        let dependencies: Vec<Value> = package
            .dependencies
            .iter()
            .map(|d| Value::from(*d))
            .collect();
        assert_eq!(entry["name"], name);
        assert_eq!(entry["version"], package.fingerprint().as_str());
        assert_eq!(entry["fingerprint"], package.fingerprint().as_str());
        assert_eq!(entry["sha1"], release::sha1_of(&tarball).as_str());
        assert_eq!(entry["stemcell"], slug.as_str());
        assert_eq!(entry["dependencies"], Value::Sequence(dependencies));
    }

    // The compiled binary runs, and greeter was compiled with hello installed.
    let hello = work.path().join("hello");
    unpack(&compiled_tree.join("compiled_packages/hello.tgz"), &hello);
    let greeting = Command::new(hello.join("bin/hello"))
        .arg("offline")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&greeting.stdout),
        "Hello, offline! (compiled from C)\n"
    );
    let greeter = work.path().join("greeter");
    unpack(
        &compiled_tree.join("compiled_packages/greeter.tgz"),
        &greeter,
    );
    assert_eq!(
        std::fs::read_to_string(greeter.join("compiled-with")).unwrap(),
        "Hello, compile time! (compiled from C)\n"
    );

    // Nothing is left installed or lying around under the base dir.
    for dir in ["data/packages", "data/compile", "data/tmp"] {
        assert_eq!(names(&base.join(dir)), Vec::<String>::new(), "{dir}");
    }
}

#[test]
fn compile_refuses_a_release_whose_package_does_not_match_its_digest() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    let output = work.path().join("compiled");
    let tree = work.path().join("bad-release");
    let release = Release::hello();
    let hello = release
        .package("hello")
        .tarball(&tree.join("packages/hello.tgz"));
    let wrong = release::sha1_of(b"not the package");
    std::fs::write(
        tree.join("release.MF"),
        format!("name: bad\nversion: 1\npackages:\n- name: hello\n  version: 1\n  fingerprint: 1\n  sha1: {wrong}\n  dependencies: []\n"),
    )
    .unwrap();
    let tarball = work.path().join("bad-1.tgz");
    jobs::archive::create(&tree, &tarball).unwrap();

    let run = compile(&base, &output, &[&tarball]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "verifying packages/hello.tgz: Expected stream to have digest '{wrong}' but was '{}'",
            hello.sha1
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&output).unwrap().count(),
        0,
        "no compiled release"
    );
    assert!(!base.join("data/packages").exists(), "nothing was compiled");
}
