//! External blobstores: any provider the agent does not build in is the command
//! `bosh-blobstore-<provider>` on `PATH` (s3cli, gcscli, azure-storage-cli, ... on the stemcell),
//! following bosh-utils `blobstore/external_blobstore.go`:
//!
//! * the provider's options are written as JSON to `bosh/etc/blobstore-<provider>.json` (mode
//!   0600, atomically: they hold credentials) when the blobstore is built;
//! * get runs `bosh-blobstore-<provider> -c <config> get <id> <file>`, put runs
//!   `bosh-blobstore-<provider> -c <config> put <absolute source> <new uuid>`.
//!
//! Go also checks at start that the command is on `PATH`; the runner has no lookup, so a missing
//! command shows on the first get or put, as a spawn error naming it. The command writes into a
//! temporary file beside the destination, which is verified before it is renamed into place.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use platform::cmd::{Cmd, CommandRunner};
use settings::digest::{Algorithm, MultiDigest};

use crate::blobstore::staging::{
    Verifier, directory_of, file_error, temporary_file, verify_and_persist,
};
use crate::blobstore::{Blobstore, BoxFuture, Error, Result, blocking, check_id};

/// Mode of the config file: it holds the provider's credentials.
const CONFIG_MODE: u32 = 0o600;

/// A blobstore reached through the `bosh-blobstore-<provider>` command.
#[derive(Clone)]
pub struct ExternalBlobstore {
    provider: String,
    program: String,
    config_path: PathBuf,
    runner: Arc<dyn CommandRunner>,
}

impl std::fmt::Debug for ExternalBlobstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalBlobstore")
            .field("program", &self.program)
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl ExternalBlobstore {
    /// The blobstore of `provider`: writes `options` to `<etc_dir>/blobstore-<provider>.json`
    /// (blocking) and runs the command through `runner`.
    pub fn try_new(
        provider: &str,
        options: &BTreeMap<String, serde_json::Value>,
        etc_dir: &Path,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<ExternalBlobstore> {
        platform::name::check("blobstore provider", provider).map_err(Error::Provider)?;
        let config_path = etc_dir.join(format!("blobstore-{provider}.json"));
        // Cannot fail: a map of JSON values always serialises.
        let config = serde_json::to_vec(options).unwrap_or_default();
        settings::atomic_file::write(&config_path, &config, CONFIG_MODE).map_err(|source| {
            Error::Config {
                path: config_path.clone(),
                source,
            }
        })?;
        Ok(ExternalBlobstore {
            provider: provider.to_owned(),
            program: format!("bosh-blobstore-{provider}"),
            config_path,
            runner,
        })
    }

    /// The config file the command reads.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// `bosh-blobstore-<provider> -c <config> get <id> <file>`.
    fn get_cmd(&self, id: &str, file: &Path) -> Cmd {
        self.cmd("get", id.into(), file.into())
    }

    /// `bosh-blobstore-<provider> -c <config> put <source> <id>`.
    fn put_cmd(&self, source: &Path, id: &str) -> Cmd {
        self.cmd("put", source.into(), id.into())
    }

    fn cmd(&self, method: &str, first: OsString, second: OsString) -> Cmd {
        Cmd::new(&self.program)
            .arg("-c")
            .arg(&self.config_path)
            .arg(method)
            .arg(first)
            .arg(second)
    }

    fn command_error(&self, operation: String, source: platform::cmd::Error) -> Error {
        Error::Command {
            operation,
            provider: self.provider.clone(),
            source: Box::new(source),
        }
    }
}

impl Blobstore for ExternalBlobstore {
    fn get<'a>(
        &'a self,
        id: &'a str,
        digest: &'a MultiDigest,
        destination: &'a Path,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_id(id)?;
            let verifier = Verifier::new(digest).map_err(|source| Error::Digest {
                blob: format!("downloaded blob '{id}'"),
                source,
            })?;
            let this = self.clone();
            let id = id.to_owned();
            let destination = destination.to_owned();
            blocking(move || this.get_blocking(&id, verifier, &destination)).await
        })
    }

    fn put<'a>(&'a self, source: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>> {
        Box::pin(async move {
            let this = self.clone();
            let source = source.to_owned();
            blocking(move || this.put_blocking(&source)).await
        })
    }
}

impl ExternalBlobstore {
    fn get_blocking(&self, id: &str, verifier: Verifier, destination: &Path) -> Result<()> {
        let (file, path) = temporary_file(&directory_of(destination))?;
        drop(file);
        self.runner
            .run(&self.get_cmd(id, &path))
            .map_err(|err| self.command_error(format!("getting blob '{id}'"), err))?;
        verify_and_persist(
            path,
            verifier,
            destination,
            format!("downloaded blob '{id}'"),
        )?;
        tracing::debug!(blob_id = %id, provider = %self.provider, "downloaded blob");
        Ok(())
    }

    fn put_blocking(&self, source: &Path) -> Result<(String, MultiDigest)> {
        // The command may run elsewhere than our working directory: give it an absolute path, as
        // Go does (`filepath.Abs`).
        let source =
            std::path::absolute(source).map_err(|err| file_error("resolving", source, err))?;
        let file = File::open(&source).map_err(|err| file_error("reading", &source, err))?;
        let digest =
            MultiDigest::compute(file, &[Algorithm::Sha1]).map_err(|err| Error::Digest {
                blob: source.display().to_string(),
                source: err,
            })?;
        let id = uuid::Uuid::new_v4().to_string();
        self.runner
            .run(&self.put_cmd(&source, &id))
            .map_err(|err| self.command_error(format!("putting {}", source.display()), err))?;
        tracing::debug!(blob_id = %id, provider = %self.provider, "stored blob");
        Ok((id, digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt as _;

    use platform::testing::{RecordingRunner, Reply};
    use serde_json::json;

    const EMPTY_SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

    fn blobstore(etc: &Path, runner: Arc<RecordingRunner>) -> ExternalBlobstore {
        let options = serde_json::from_value(json!({
            "bucket_name": "b", "secret_access_key": "s3cret", "access_key_id": "k"
        }))
        .unwrap();
        ExternalBlobstore::try_new("s3", &options, etc, runner).unwrap()
    }

    #[test]
    fn argv_follows_the_external_blobstore_contract() {
        let etc = tempfile::tempdir().unwrap();
        let blobstore = blobstore(etc.path(), Arc::new(RecordingRunner::new()));
        let config = etc.path().join("blobstore-s3.json");
        let config = config.to_str().unwrap();
        let argv = |cmd: Cmd| -> Vec<String> {
            std::iter::once(cmd.program)
                .chain(cmd.args)
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        let cases = [
            (
                blobstore.get_cmd("b1", Path::new("/d/.blob-x")),
                vec!["bosh-blobstore-s3", "-c", config, "get", "b1", "/d/.blob-x"],
            ),
            (
                blobstore.put_cmd(Path::new("/tmp/my file"), "u-1"),
                vec![
                    "bosh-blobstore-s3",
                    "-c",
                    config,
                    "put",
                    "/tmp/my file",
                    "u-1",
                ],
            ),
        ];
        for (cmd, expected) in cases {
            assert_eq!(argv(cmd), expected);
        }
    }

    #[test]
    fn options_are_written_as_private_json() {
        let etc = tempfile::tempdir().unwrap();
        let blobstore = blobstore(&etc.path().join("etc"), Arc::new(RecordingRunner::new()));
        let path = blobstore.config_path();
        assert_eq!(path, etc.path().join("etc").join("blobstore-s3.json"));
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            r#"{"access_key_id":"k","bucket_name":"b","secret_access_key":"s3cret"}"#
        );
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{blobstore:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn get_runs_the_command_into_a_file_beside_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let blobstore = blobstore(&dir.path().join("etc"), runner.clone());
        let config = blobstore.config_path().to_str().unwrap().to_owned();
        runner.expect(
            &[
                "bosh-blobstore-s3",
                "-c",
                &config,
                "get",
                "b1",
                RecordingRunner::ANY,
            ],
            Reply::Ok(String::new()),
        );
        let destination = dir.path().join("blob");
        // The fake writes nothing, so the blob is the empty temporary file.
        let digest = MultiDigest::parse(EMPTY_SHA1).unwrap();
        blobstore.get("b1", &digest, &destination).await.unwrap();
        assert!(destination.exists());
        let recorded = runner.recorded();
        assert_eq!(recorded.len(), 1);
        assert_eq!(Path::new(&recorded[0][5]).parent(), Some(dir.path()));
        assert!(recorded[0][5].contains(".blob-"), "{:?}", recorded[0]);
    }

    #[tokio::test]
    async fn a_failed_or_wrong_download_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let blobstore = blobstore(&dir.path().join("etc"), runner.clone());
        let config = blobstore.config_path().to_str().unwrap().to_owned();
        let argv = [
            "bosh-blobstore-s3",
            "-c",
            &config,
            "get",
            "b1",
            RecordingRunner::ANY,
        ];
        runner.expect(&argv, Reply::Fail(1, "NoSuchKey".into()));
        runner.expect(&argv, Reply::Ok(String::new()));
        let destination = dir.path().join("out").join("blob");
        let digest = MultiDigest::parse(EMPTY_SHA1).unwrap();

        let err = blobstore
            .get("b1", &digest, &destination)
            .await
            .unwrap_err();
        assert_eq!(
            settings::source::error_chain(&err),
            "getting blob 'b1' with the s3 blobstore command: bosh-blobstore-s3 failed (exit status: 1): NoSuchKey"
        );
        let wrong = MultiDigest::parse("sha256:00").unwrap();
        let err = blobstore.get("b1", &wrong, &destination).await.unwrap_err();
        assert!(
            settings::source::error_chain(&err).starts_with(
                "checking downloaded blob 'b1': Expected stream to have digest 'sha256:00' but was 'sha256:"
            ),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            0
        );
        assert!(runner.unused().is_empty());
    }

    #[tokio::test]
    async fn put_sends_the_absolute_source_and_a_new_uuid() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let blobstore = blobstore(&dir.path().join("etc"), runner.clone());
        let config = blobstore.config_path().to_str().unwrap().to_owned();
        let source = dir.path().join("source");
        std::fs::write(&source, "").unwrap();
        runner.expect(
            &[
                "bosh-blobstore-s3",
                "-c",
                &config,
                "put",
                source.to_str().unwrap(),
                RecordingRunner::ANY,
            ],
            Reply::Ok(String::new()),
        );
        let (id, digest) = blobstore.put(&source).await.unwrap();
        assert_eq!(digest.to_string(), EMPTY_SHA1);
        assert_eq!(runner.recorded()[0][5], id);
        assert!(uuid::Uuid::parse_str(&id).is_ok());
    }
}
