//! The cascading read path of `agent/blobstore/cascading_blobstore.go` and `blob_manager.go`: before
//! asking the blobstore, a get looks for the blob id in `data/sensitive_blobs` (rendered templates
//! the director sent with `upload_blob`) and then in `data/blobs` (blobs bosh-cli `create-env` PUT
//! over the HTTPS mbus). A blob found there is copied next to the destination, verified against its
//! digest and renamed into place; a mismatch is an error, not a fall-through, as in Go. Puts go to
//! the blobstore.

use std::path::{Path, PathBuf};

use settings::Dirs;
use settings::digest::MultiDigest;

use crate::blobstore::staging::copy_verified;
use crate::blobstore::{Blobstore, BoxFuture, Result, blocking, check_id};

/// A blobstore behind the agent's local blob directories.
#[derive(Debug)]
pub struct Cascading {
    inner: Box<dyn Blobstore>,
    local_dirs: Vec<PathBuf>,
}

impl Cascading {
    /// `inner` behind `data/sensitive_blobs` and `data/blobs` of `dirs`, in that order.
    pub fn new(inner: Box<dyn Blobstore>, dirs: &Dirs) -> Cascading {
        Cascading::with_dirs(inner, vec![dirs.sensitive_blobs_dir(), dirs.blobs_dir()])
    }

    /// `inner` behind `local_dirs`, looked at in order.
    pub fn with_dirs(inner: Box<dyn Blobstore>, local_dirs: Vec<PathBuf>) -> Cascading {
        Cascading { inner, local_dirs }
    }
}

impl Blobstore for Cascading {
    fn get<'a>(
        &'a self,
        id: &'a str,
        digest: &'a MultiDigest,
        destination: &'a Path,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_id(id)?;
            for dir in &self.local_dirs {
                let path = dir.join(id);
                // As Go's `BlobExists`: anything but "not found" counts as present, so a blob that
                // cannot be read fails loudly instead of being fetched from elsewhere.
                let exists = !matches!(
                    tokio::fs::symlink_metadata(&path).await,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound
                );
                if !exists {
                    continue;
                }
                let digest = digest.clone();
                let destination = destination.to_owned();
                let blob = format!("blob '{id}' in {}", dir.display());
                blocking(move || copy_verified(&path, &digest, &destination, blob)).await?;
                tracing::debug!(blob_id = %id, dir = %dir.display(), "used local blob");
                return Ok(());
            }
            self.inner.get(id, digest, destination).await
        })
    }

    fn put<'a>(&'a self, source: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>> {
        self.inner.put(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::blobstore::{DummyBlobstore, Error, LocalBlobstore};

    const HELLO_SHA1: &str = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";

    #[tokio::test]
    async fn local_blobs_win_in_order_and_are_verified() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(root.path());
        std::fs::create_dir_all(dirs.sensitive_blobs_dir()).unwrap();
        std::fs::create_dir_all(dirs.blobs_dir()).unwrap();
        std::fs::write(dirs.sensitive_blobs_dir().join("t1"), "hello").unwrap();
        std::fs::write(dirs.blobs_dir().join("t1"), "other").unwrap();
        std::fs::write(dirs.blobs_dir().join("p1"), "hellO").unwrap();
        let cascading = Cascading::new(Box::new(DummyBlobstore), &dirs);
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();
        let destination = root.path().join("blob");

        cascading.get("t1", &digest, &destination).await.unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"hello");
        // The local copy stays: other gets may need it (only a delete removes it).
        assert!(dirs.sensitive_blobs_dir().join("t1").exists());

        std::fs::remove_file(&destination).unwrap();
        let err = cascading
            .get("p1", &digest, &destination)
            .await
            .unwrap_err();
        let text = settings::source::error_chain(&err);
        assert!(
            text.starts_with(&format!(
                "checking blob 'p1' in {}: Expected stream to have digest",
                dirs.blobs_dir().display()
            )),
            "{text}"
        );
        assert!(!destination.exists());
    }

    #[tokio::test]
    async fn other_blobs_come_from_the_blobstore() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(root.path());
        let store = root.path().join("store");
        std::fs::create_dir(&store).unwrap();
        std::fs::write(store.join("b1"), "hello").unwrap();
        let cascading = Cascading::new(Box::new(LocalBlobstore::new(&store)), &dirs);
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();
        let destination = root.path().join("blob");
        cascading.get("b1", &digest, &destination).await.unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"hello");

        let err = cascading
            .get("../b1", &digest, &destination)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BlobId(_)), "{err:?}");
        let source = root.path().join("blob");
        let (id, _) = cascading.put(&source).await.unwrap();
        assert!(store.join(id).exists());
    }
}
