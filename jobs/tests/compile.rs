//! Package compilation (`jobs::compile`, after the Go agent's `agent/compiler/concrete_compiler.go`)
//! with the real `bash` and `cc`, a local blobstore in a temporary directory, and a signed-URL server
//! on a loopback port.
//!
//! The dependencies install through [`TestInstaller`], a stand-in for the agent's package installer:
//! it downloads a compiled dependency (verified), extracts it to `data/packages/<name>/<hash>` and
//! links it as `packages/<name>`.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use jobs::archive::{self, ExtractOptions};
use jobs::blobstore::{Blobstore, BoxError, BoxFuture, LocalBlobstore, SignedClient};
use jobs::compile::{
    BlobSource, Compiler, DependencyInstaller, DependencySpec, Error, OUTPUT_TAIL_BYTES, Package,
    Request, SignedUrlRequest,
};
use platform::cmd::{Cmd, CommandRunner, SystemRunner};
use serde_json::json;
use settings::Dirs;
use settings::digest::{Algorithm, MultiDigest};
use settings::source::error_chain;

use crate::support::dav::DavServer;
use crate::support::{digest_of, names_in};

/// Installs compiled dependencies the simple way: download, extract, link.
#[derive(Debug)]
struct TestInstaller {
    dirs: Dirs,
    blobstore: LocalBlobstore,
    signed_client: SignedClient,
}

impl DependencyInstaller for TestInstaller {
    fn keep_only<'a>(&'a self, keep: &'a [Package]) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let keep: Vec<String> = keep.iter().map(|package| package.name.clone()).collect();
            let dirs = self.dirs.clone();
            tokio::task::spawn_blocking(move || -> Result<(), BoxError> {
                for dir in [dirs.packages_dir(), dirs.data_packages_dir()] {
                    let Ok(entries) = fs::read_dir(&dir) else {
                        continue;
                    };
                    for entry in entries {
                        let entry = entry?;
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if keep.contains(&name) {
                            continue;
                        }
                        if entry.file_type()?.is_dir() {
                            fs::remove_dir_all(entry.path())?;
                        } else {
                            fs::remove_file(entry.path())?;
                        }
                    }
                }
                Ok(())
            })
            .await?
        })
    }

    fn install<'a>(&'a self, package: &'a Package) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let download = tempfile::tempdir()?;
            let blob = download.path().join("blob");
            match &package.source {
                BlobSource::Blobstore { id: blobstore_id } => {
                    self.blobstore
                        .get(blobstore_id, &package.digest, &blob)
                        .await?
                }
                BlobSource::SignedUrl { url, headers } => {
                    self.signed_client
                        .get_signed(url, headers, &package.digest, &blob)
                        .await?
                }
            }
            // The bundle name of a dependency: sha1 of `<version>-<multi-digest>`.
            let bundle = format!("{}-{}", package.version, package.digest);
            let hash = digest_of(bundle.as_bytes(), &[Algorithm::Sha1]).to_string();
            let install_dir = self.dirs.data_packages_dir().join(&package.name).join(hash);
            let link = self.dirs.packages_dir().join(&package.name);
            tokio::task::spawn_blocking(move || -> Result<(), BoxError> {
                archive::extract(&blob, &install_dir, &ExtractOptions::default())?;
                fs::create_dir_all(link.parent().expect("packages/<name> has a parent"))?;
                std::os::unix::fs::symlink(&install_dir, &link)?;
                drop(download);
                Ok(())
            })
            .await?
        })
    }
}

/// A base dir, a blobstore beside it, and what a compilation needs.
struct Agent {
    root: tempfile::TempDir,
    dirs: Dirs,
    blobstore: LocalBlobstore,
    signed_client: SignedClient,
    installer: TestInstaller,
}

impl Agent {
    fn new() -> Agent {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(root.path().join("vcap"));
        let blobstore = LocalBlobstore::new(root.path().join("blobstore"));
        let signed_client = SignedClient::try_new(None).unwrap();
        Agent {
            installer: TestInstaller {
                dirs: dirs.clone(),
                blobstore: blobstore.clone(),
                signed_client: signed_client.clone(),
            },
            root,
            dirs,
            blobstore,
            signed_client,
        }
    }

    fn compiler(&self) -> Compiler<'_> {
        Compiler {
            dirs: &self.dirs,
            blobstore: &self.blobstore,
            signed_client: &self.signed_client,
            installer: &self.installer,
            runner: Arc::new(SystemRunner),
        }
    }

    /// Packs `files` (path, content) as `tar czf - -C <dir> .` would, under a fresh name.
    fn tarball(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.root.path().join("trees").join(name);
        for (path, content) in files {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        let tgz = self.root.path().join(format!("{name}.tgz"));
        archive::create(&dir, &tgz).unwrap();
        tgz
    }

    /// Stores `files` as a blob; returns its id and sha1.
    async fn store(&self, name: &str, files: &[(&str, &str)]) -> (String, MultiDigest) {
        self.blobstore
            .put(&self.tarball(name, files))
            .await
            .unwrap()
    }

    /// Downloads compiled package `id` (checking `digest`) and unpacks it.
    async fn unpack_compiled(&self, id: &str, digest: &MultiDigest) -> PathBuf {
        let tgz = self.root.path().join("compiled.tgz");
        self.blobstore.get(id, digest, &tgz).await.unwrap();
        let tree = self.root.path().join("compiled");
        archive::extract(&tgz, &tree, &ExtractOptions::default()).unwrap();
        tree
    }

    fn log(&self, stream: &str) -> String {
        let path = self
            .dirs
            .logs_dir()
            .join("compilation")
            .join(format!("packaging.{stream}.log"));
        fs::read_to_string(path).unwrap()
    }

    /// Nothing of the compilation is left: no compile dir, install dir, link or temporary file.
    fn assert_clean(&self) {
        for dir in [
            self.dirs.compile_dir(),
            self.dirs.packages_dir(),
            self.dirs.data_packages_dir(),
            self.dirs.tmp_dir(),
        ] {
            if dir.exists() {
                assert_eq!(names_in(&dir), Vec::<String>::new(), "{}", dir.display());
            }
        }
    }
}

const GREET_H: &str = "#define GREETING \"hello from libgreet\"\n";

const HELLO_C: &str = r#"#include <stdio.h>
#include "greet.h"

int main(void) {
    printf("%s\n", GREETING);
    return 0;
}
"#;

/// Finds the dependency beside `BOSH_INSTALL_TARGET` (`packages/libgreet`), compiles into
/// `$BOSH_INSTALL_TARGET/bin` and records what the environment said.
const HELLO_PACKAGING: &str = r#"set -e
deps="${BOSH_INSTALL_TARGET%/*}"
test "$(pwd -P)" = "$(cd "$BOSH_COMPILE_TARGET" && pwd -P)"
mkdir -p "$BOSH_INSTALL_TARGET/bin"
cc -I"$deps/libgreet/include" -o "$BOSH_INSTALL_TARGET/bin/hello" hello/hello.c
echo "$BOSH_PACKAGE_NAME $BOSH_PACKAGE_VERSION from ${BOSH_COMPILE_TARGET##*/}" > "$BOSH_INSTALL_TARGET/built"
echo "compiled hello"
"#;

#[tokio::test]
async fn compiles_a_c_program_against_a_dependency() {
    let agent = Agent::new();
    let (dep_id, dep_sha1) = agent
        .store("libgreet", &[("include/greet.h", GREET_H)])
        .await;
    let (source_id, source_sha1) = agent
        .store(
            "hello-source",
            &[("packaging", HELLO_PACKAGING), ("hello/hello.c", HELLO_C)],
        )
        .await;
    let deps: BTreeMap<String, DependencySpec> = settings::gojson::from_value(json!({
        "libgreet": {
            "name": "libgreet",
            "version": "2.0",
            "sha1": dep_sha1.to_string(),
            "blobstore_id": dep_id,
        }
    }))
    .unwrap();
    let request = Request::compile_package(
        &source_id,
        &source_sha1.to_string(),
        "hello",
        "1.0.3",
        &deps,
    )
    .unwrap();

    let compiled = agent.compiler().compile(&request).await.unwrap();

    let blobstore_id = compiled.blobstore_id.clone().unwrap();
    assert_eq!(
        compiled.compile_package_value(),
        json!({"result": {"blobstore_id": blobstore_id, "sha1": compiled.digest.to_string()}})
    );
    let tree = agent.unpack_compiled(&blobstore_id, &compiled.digest).await;
    assert_eq!(names_in(&tree), ["bin", "built"]);
    assert_eq!(
        fs::read_to_string(tree.join("built")).unwrap(),
        "hello 1.0.3 from hello\n"
    );
    let output = SystemRunner.run(&Cmd::new(tree.join("bin/hello"))).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello from libgreet\n"
    );

    assert_eq!(agent.log("stdout"), "compiled hello\n");
    let stderr = agent.log("stderr");
    assert!(stderr.contains("+ cc -I"), "{stderr}");
    agent.assert_clean();
}

#[tokio::test]
async fn a_failing_packaging_script_gives_the_go_text_with_the_tail_of_its_output() {
    let agent = Agent::new();
    let packaging = r#"for i in $(seq 1 300); do
    echo "warning $i: something to note while building"  >&2
done
echo "fatal: cannot build" >&2
exit 7
"#;
    let (id, sha1) = agent.store("broken", &[("packaging", packaging)]).await;
    let request =
        Request::compile_package(&id, &sha1.to_string(), "broken", "1", &BTreeMap::new()).unwrap();

    let err = agent.compiler().compile(&request).await.unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.starts_with(
            "running the packaging script of package 'broken': \
             Command exited with 7; Stdout: , Truncated stderr: "
        ),
        "{text}"
    );
    assert!(text.ends_with("fatal: cannot build\n+ exit 7\n"), "{text}");
    let Error::Packaging { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source.exit_status, 7);
    assert!(source.stderr.is_truncated);
    assert!(source.stderr.text.len() <= OUTPUT_TAIL_BYTES);
    assert!(source.stderr.text.len() > OUTPUT_TAIL_BYTES * 3 / 4);
    // The whole output is in the log, and the tail starts at a line.
    let log = agent.log("stderr");
    assert!(log.starts_with("++ seq 1 300\n"), "{log}");
    assert!(log.len() > OUTPUT_TAIL_BYTES);
    assert!(log.ends_with(&format!("\n{}", source.stderr.text)));
    agent.assert_clean();
}

#[tokio::test]
async fn a_bad_source_digest_is_refused_and_leaves_nothing() {
    let agent = Agent::new();
    let (id, _) = agent
        .store(
            "source",
            &[("packaging", "touch \"$BOSH_INSTALL_TARGET/x\"")],
        )
        .await;
    let wrong = "sha1:0000000000000000000000000000000000000000";
    let request = Request::compile_package(&id, wrong, "pkg", "1", &BTreeMap::new()).unwrap();

    let err = agent.compiler().compile(&request).await.unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.starts_with("fetching the source of package 'pkg': "),
        "{text}"
    );
    assert!(
        text.contains("Expected stream to have digest '0000000000000000000000000000000000000000'"),
        "{text}"
    );
    assert!(!agent.dirs.compile_dir().exists());
    assert!(!agent.dirs.logs_dir().exists());
    agent.assert_clean();
}

#[tokio::test]
async fn a_source_that_is_not_an_archive_leaves_no_compile_dir() {
    let agent = Agent::new();
    let junk = agent.root.path().join("junk");
    fs::write(&junk, "this is not a tarball").unwrap();
    let (id, sha1) = agent.blobstore.put(&junk).await.unwrap();
    let request =
        Request::compile_package(&id, &sha1.to_string(), "pkg", "1", &BTreeMap::new()).unwrap();

    let err = agent.compiler().compile(&request).await.unwrap_err();

    assert!(matches!(err, Error::Unpack { .. }), "{err:?}");
    assert!(
        error_chain(&err).starts_with("unpacking the source of package 'pkg': "),
        "{err}"
    );
    agent.assert_clean();
}

#[tokio::test]
async fn signed_urls_fetch_the_source_and_the_dependency_and_take_the_upload() {
    const QUERY: &str = "X-Amz-Signature=5ign&X-Amz-Expires=900";
    let agent = Agent::new();
    let server = DavServer::start(None).await;
    let source = fs::read(agent.tarball(
        "source",
        &[
            (
                "packaging",
                "cat \"${BOSH_INSTALL_TARGET%/*}/dep/motd\" notes > \"$BOSH_INSTALL_TARGET/motd\"",
            ),
            ("notes", "and from the source\n"),
        ],
    ))
    .unwrap();
    let dep = fs::read(agent.tarball("dep", &[("motd", "from the dependency\n")])).unwrap();
    server.insert("/bucket/source", source.clone());
    server.insert("/bucket/dep", dep.clone());
    let value = json!({
        "package_get_signed_url": format!("{}/bucket/source?{QUERY}", server.url()),
        "upload_signed_url": format!("{}/bucket/compiled?{QUERY}", server.url()),
        "blobstore_headers": {"x-amz-server-side-encryption-customer-key": "a2V5"},
        "digest": digest_of(&source, &[Algorithm::Sha1, Algorithm::Sha512]).to_string(),
        "name": "motd",
        "version": "3",
        "deps": {
            "dep": {
                "name": "dep",
                "version": "1",
                "sha1": digest_of(&dep, &[Algorithm::Sha256]).to_string(),
                "package_get_signed_url": format!("{}/bucket/dep?{QUERY}", server.url()),
                "blobstore_headers": null,
            }
        }
    });
    let spec: SignedUrlRequest = settings::gojson::from_value(value).unwrap();
    let request = Request::compile_package_with_signed_url(&spec).unwrap();

    let compiled = agent.compiler().compile(&request).await.unwrap();

    assert_eq!(compiled.blobstore_id, None);
    let uploaded = server.blob("/bucket/compiled").unwrap();
    let expected = digest_of(&uploaded, &[Algorithm::Sha1, Algorithm::Sha512]);
    assert_eq!(compiled.digest, expected);
    assert_eq!(
        compiled.compile_package_with_signed_url_value(),
        json!({"result": {"sha1": expected.to_string()}})
    );
    let sha1 = expected.digests()[0].hex.clone();
    assert!(expected.to_string().starts_with(&format!("{sha1};sha512:")));

    let tgz = agent.root.path().join("uploaded.tgz");
    fs::write(&tgz, &uploaded).unwrap();
    let tree = agent.root.path().join("uploaded");
    archive::extract(&tgz, &tree, &ExtractOptions::default()).unwrap();
    assert_eq!(
        fs::read_to_string(tree.join("motd")).unwrap(),
        "from the dependency\nand from the source\n"
    );

    let requests = server.requests();
    let summary: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.path_and_query.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", format!("/bucket/dep?{QUERY}")),
            ("GET", format!("/bucket/source?{QUERY}")),
            ("PUT", format!("/bucket/compiled?{QUERY}")),
        ]
        .map(|(method, path)| (method.to_owned(), path))
    );
    for request in &requests[1..] {
        assert_eq!(
            request.header("x-amz-server-side-encryption-customer-key"),
            Some("a2V5")
        );
    }
    assert_eq!(
        requests[0].header("x-amz-server-side-encryption-customer-key"),
        None
    );
    agent.assert_clean();
}
