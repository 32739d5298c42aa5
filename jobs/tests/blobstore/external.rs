//! External blobstores (bosh-utils `external_blobstore.go`) through the real `SystemRunner`, with a
//! shell script standing in for `bosh-blobstore-fake`: it keeps blobs in a directory, checks its
//! config, and logs every argv.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use jobs::blobstore::{self, Blobstore};
use platform::cmd::{Cmd, CommandRunner, Output, SystemRunner};
use settings::Dirs;
use settings::digest::Algorithm;
use settings::model::Blobstore as BlobstoreSettings;
use settings::source::error_chain;

use crate::support::{digest_of, names_in};

/// The stand-in: `-c <config> get <id> <file>` copies from the store, `put <file> <id>` copies in.
const SCRIPT: &str = r#"#!/bin/sh
set -eu
printf '%s\n' "$*" >> "$FAKE_DIR/argv.log"
[ "$1" = "-c" ] || { echo "usage: -c <config>" >&2; exit 2; }
grep -q '"bucket_name":"agent-blobs"' "$2" || { echo "bad config $2" >&2; exit 3; }
case "$3" in
  get) [ -f "$FAKE_DIR/store/$4" ] || { echo "NoSuchKey: $4" >&2; exit 1; }
       cp "$FAKE_DIR/store/$4" "$5" ;;
  put) cp "$4" "$FAKE_DIR/store/$5" ;;
  *) echo "unknown command $3" >&2; exit 2 ;;
esac
"#;

/// Runs commands with the real runner, with the script's directory first on `PATH`: what the
/// agent's `PATH` (with `bosh/bin`) does on a stemcell.
#[derive(Debug)]
struct PathRunner {
    bin: PathBuf,
    fake_dir: PathBuf,
}

impl CommandRunner for PathRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, platform::cmd::Error> {
        let mut path = OsString::from(&self.bin);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        let cmd = cmd
            .clone()
            .env("PATH", path)
            .env("FAKE_DIR", &self.fake_dir);
        SystemRunner.run(&cmd)
    }
}

struct Fixture {
    base: tempfile::TempDir,
    fake_dir: PathBuf,
    blobstore: Box<dyn Blobstore>,
}

impl Fixture {
    fn new(install_script: bool) -> Fixture {
        let base = tempfile::tempdir().unwrap();
        let bin = base.path().join("bin");
        let fake_dir = base.path().join("fake");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(fake_dir.join("store")).unwrap();
        if install_script {
            let script = bin.join("bosh-blobstore-fake");
            std::fs::write(&script, SCRIPT).unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let settings = BlobstoreSettings {
            provider: "fake".to_owned(),
            options: serde_json::from_value(json!({
                "bucket_name": "agent-blobs",
                "secret_access_key": "fake-s3cret",
            }))
            .unwrap(),
        };
        let runner: Arc<dyn CommandRunner> = Arc::new(PathRunner {
            bin,
            fake_dir: fake_dir.clone(),
        });
        let dirs = Dirs::new(base.path().join("vcap"));
        let blobstore = blobstore::from_settings(&settings, &dirs, runner).unwrap();
        Fixture {
            base,
            fake_dir,
            blobstore,
        }
    }

    fn config(&self) -> PathBuf {
        self.base.path().join("vcap/bosh/etc/blobstore-fake.json")
    }

    fn argv_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.fake_dir.join("argv.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn out_dir(&self) -> PathBuf {
        let dir = self.base.path().join("out");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[tokio::test]
async fn put_then_get_round_trips_through_the_command() {
    let fixture = Fixture::new(true);
    let source = fixture.base.path().join("package.tgz");
    std::fs::write(&source, "compiled package").unwrap();

    let (id, digest) = fixture.blobstore.put(&source).await.unwrap();
    assert_eq!(digest, digest_of(b"compiled package", &[Algorithm::Sha1]));
    assert_eq!(
        std::fs::read(fixture.fake_dir.join("store").join(&id)).unwrap(),
        b"compiled package"
    );

    let destination = fixture.out_dir().join("package.tgz");
    fixture
        .blobstore
        .get(&id, &digest, &destination)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&destination).unwrap(), b"compiled package");
    assert_eq!(names_in(&fixture.out_dir()), vec!["package.tgz"]);

    let config = fixture.config();
    let log = fixture.argv_log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[0],
        format!("-c {} put {} {id}", config.display(), source.display())
    );
    let get_prefix = format!(
        "-c {} get {id} {}/",
        config.display(),
        fixture.out_dir().display()
    );
    assert!(log[1].starts_with(&get_prefix), "{}", log[1]);
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn a_failing_command_is_retried_and_reports_its_stderr() {
    let fixture = Fixture::new(true);
    let digest = digest_of(b"x", &[Algorithm::Sha1]);
    let destination = fixture.out_dir().join("blob");

    let err = fixture
        .blobstore
        .get("missing-1", &digest, &destination)
        .await
        .unwrap_err();

    assert_eq!(
        error_chain(&err),
        "getting blob 'missing-1' failed after 3 attempts: getting blob 'missing-1' with the fake \
         blobstore command: bosh-blobstore-fake failed (exit status: 1): NoSuchKey: missing-1"
    );
    assert_eq!(fixture.argv_log().len(), 3);
    assert!(names_in(&fixture.out_dir()).is_empty());
}

#[tokio::test]
async fn a_wrong_digest_after_the_command_leaves_nothing() {
    let fixture = Fixture::new(true);
    std::fs::write(fixture.fake_dir.join("store").join("b-1"), "tampered").unwrap();
    let digest = digest_of(b"original", &[Algorithm::Sha256]);
    let destination = fixture.out_dir().join("blob");

    let err = fixture
        .blobstore
        .get("b-1", &digest, &destination)
        .await
        .unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.contains(&format!(
            "checking downloaded blob 'b-1': Expected stream to have digest '{digest}' but was 'sha256:"
        )),
        "{text}"
    );
    assert!(names_in(&fixture.out_dir()).is_empty());
}

#[tokio::test]
async fn a_missing_command_is_named() {
    let fixture = Fixture::new(false);
    let source = fixture.base.path().join("package.tgz");
    std::fs::write(&source, "x").unwrap();

    let err = fixture.blobstore.put(&source).await.unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "putting {path} failed after 3 attempts: putting {path} with the fake blobstore \
             command: running bosh-blobstore-fake: ",
            path = source.display()
        )),
        "{text}"
    );
}
