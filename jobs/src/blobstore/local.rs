//! The `local` blobstore: blobs are files in one directory, `options.blobstore_path` (bosh-utils
//! `blobstore/local_blobstore.go`). The legacy MicroBOSH cache path is rewritten to `data/blobs`, as
//! `app/app.go` (`patchBlobstoreOptions`) does.
//!
//! Get copies the blob next to its destination and verifies it; put copies the source in under a
//! fresh UUID (through a temporary file, so a half-copied blob never has an id) and returns its sha1.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use settings::Dirs;
use settings::digest::{Algorithm, Hasher, MultiDigest};

use crate::blobstore::staging::{copy_into, copy_verified, file_error};
use crate::blobstore::{Blobstore, BoxFuture, Error, PROVIDER_LOCAL, Result, blocking, check_id};

/// The `blobstore_path` MicroBOSH used, which the Go agent maps to `data/blobs`.
pub const LEGACY_MICRO_BOSH_CACHE: &str = "/var/vcap/micro_bosh/data/cache";

/// Mode of the blobstore directory when put creates it (`blobstorePathPermissions`).
const DIRECTORY_MODE: u32 = 0o770;

/// A directory of blobs.
#[derive(Debug, Clone)]
pub struct LocalBlobstore {
    dir: PathBuf,
}

impl LocalBlobstore {
    /// A blobstore in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LocalBlobstore {
        LocalBlobstore { dir: dir.into() }
    }

    /// The blobstore of `options.blobstore_path`, with the legacy MicroBOSH path rewritten to
    /// `data/blobs` under `dirs`.
    pub fn from_options(
        options: &BTreeMap<String, serde_json::Value>,
        dirs: &Dirs,
    ) -> Result<LocalBlobstore> {
        let option_error = |problem| Error::Option {
            provider: PROVIDER_LOCAL.to_owned(),
            option: "blobstore_path",
            problem,
        };
        let path = options
            .get("blobstore_path")
            .ok_or_else(|| option_error("is missing"))?
            .as_str()
            .ok_or_else(|| option_error("must be a string"))?;
        if path == LEGACY_MICRO_BOSH_CACHE {
            return Ok(LocalBlobstore::new(dirs.blobs_dir()));
        }
        Ok(LocalBlobstore::new(path))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Blobstore for LocalBlobstore {
    fn get<'a>(
        &'a self,
        id: &'a str,
        digest: &'a MultiDigest,
        destination: &'a Path,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_id(id)?;
            let source = self.dir.join(id);
            let digest = digest.clone();
            let destination = destination.to_owned();
            let blob = format!("blob '{id}'");
            blocking(move || copy_verified(&source, &digest, &destination, blob)).await
        })
    }

    fn put<'a>(&'a self, source: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>> {
        Box::pin(async move {
            let dir = self.dir.clone();
            let source = source.to_owned();
            blocking(move || {
                let id = uuid::Uuid::new_v4().to_string();
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIRECTORY_MODE)
                    .create(&dir)
                    .map_err(|err| file_error("creating", &dir, err))?;
                let mut hasher = Hasher::new(&[Algorithm::Sha1]).map_err(|err| Error::Digest {
                    blob: source.display().to_string(),
                    source: err,
                })?;
                copy_into(&source, &dir, &id, &mut hasher)?;
                tracing::debug!(blob_id = %id, "stored blob in the local blobstore");
                Ok((id, hasher.finish()))
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    const HELLO_SHA1: &str = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";

    #[test]
    fn the_legacy_micro_bosh_path_becomes_data_blobs() {
        let dirs = Dirs::new("/tmp/agent");
        let options = |path: &str| serde_json::from_value(json!({"blobstore_path": path})).unwrap();
        let blobstore = LocalBlobstore::from_options(&options(LEGACY_MICRO_BOSH_CACHE), &dirs);
        assert_eq!(blobstore.unwrap().dir(), Path::new("/tmp/agent/data/blobs"));
        let blobstore = LocalBlobstore::from_options(&options("/srv/blobs"), &dirs);
        assert_eq!(blobstore.unwrap().dir(), Path::new("/srv/blobs"));
    }

    #[tokio::test]
    async fn put_then_get_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let blobstore = LocalBlobstore::new(root.path().join("store"));
        let source = root.path().join("source");
        std::fs::write(&source, "hello").unwrap();

        let (id, digest) = blobstore.put(&source).await.unwrap();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(digest.to_string(), HELLO_SHA1);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(root.path().join("store"))
                .unwrap()
                .permissions(),
        );
        // 0770 before the umask: nothing for others.
        assert_eq!(mode & 0o007, 0);
        assert_eq!(
            std::fs::read_dir(root.path().join("store"))
                .unwrap()
                .count(),
            1
        );

        let destination = root.path().join("fetched");
        blobstore.get(&id, &digest, &destination).await.unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn a_wrong_digest_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("store")).unwrap();
        std::fs::write(root.path().join("store").join("b1"), "hellO").unwrap();
        std::fs::create_dir(root.path().join("out")).unwrap();
        let blobstore = LocalBlobstore::new(root.path().join("store"));
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();

        let err = blobstore
            .get("b1", &digest, &root.path().join("out").join("blob"))
            .await
            .unwrap_err();
        let text = settings::source::error_chain(&err);
        assert!(
            text.starts_with("checking blob 'b1': Expected stream to have digest"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_dir(root.path().join("out")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn ids_cannot_leave_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let blobstore = LocalBlobstore::new(root.path().join("store"));
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();
        let err = blobstore
            .get("../secret", &digest, &root.path().join("blob"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BlobId(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_missing_blob_names_its_path() {
        let root = tempfile::tempdir().unwrap();
        let blobstore = LocalBlobstore::new(root.path());
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();
        let err = blobstore
            .get("nope", &digest, &root.path().join("blob"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("reading {}", root.path().join("nope").display())
        );
    }
}
