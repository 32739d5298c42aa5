//! The `dummy` blobstore of bosh-utils `blobstore/dummy_blobstore.go`, for test deployments.
//!
//! In Go it stores nothing: create returns an empty id (with the source's sha1 from the digest
//! layer), and get returns no file, which the digest layer then fails to open. Here get fails with a
//! clear error instead; blobs the director pushes to the VM (`upload_blob`) are still served by the
//! local blob directories of [`crate::blobstore::Cascading`] in front of it.

use std::path::Path;

use settings::digest::{Algorithm, MultiDigest};

use crate::blobstore::staging::file_error;
use crate::blobstore::{Blobstore, BoxFuture, Error, Result, blocking};

/// A blobstore that keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DummyBlobstore;

impl Blobstore for DummyBlobstore {
    fn get<'a>(
        &'a self,
        id: &'a str,
        _digest: &'a MultiDigest,
        _destination: &'a Path,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { Err(Error::Dummy { id: id.to_owned() }) })
    }

    /// Returns an empty id and the source's sha1, as Go's dummy blobstore does under its digest
    /// layer.
    fn put<'a>(&'a self, source: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>> {
        Box::pin(async move {
            let source = source.to_owned();
            blocking(move || {
                let file = std::fs::File::open(&source)
                    .map_err(|err| file_error("reading", &source, err))?;
                let digest = MultiDigest::compute(file, &[Algorithm::Sha1]).map_err(|err| {
                    Error::Digest {
                        blob: source.display().to_string(),
                        source: err,
                    }
                })?;
                Ok((String::new(), digest))
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_gives_an_empty_id_and_the_sha1_and_get_fails() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, "hello").unwrap();
        let (id, digest) = DummyBlobstore.put(&source).await.unwrap();
        assert_eq!(id, "");
        assert_eq!(
            digest.to_string(),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );

        let err = DummyBlobstore
            .get("b1", &digest, &dir.path().join("blob"))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the dummy blobstore holds no blob 'b1'");
        assert!(!dir.path().join("blob").exists());
    }
}
