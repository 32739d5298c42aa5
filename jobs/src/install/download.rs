//! Fetching package blobs and the rendered templates archive for installation, as
//! `agent/httpblobprovider/blobstore_delegator/blobstore_delegator.go` does for the appliers: from a
//! signed URL when the spec gives one, else by blob id from the agent's blobstore (which looks in
//! the local blob directories first, see [`crate::blobstore::Cascading`]).
//!
//! A download lands in a fresh directory under `data/tmp` (the agent's `TMPDIR`, on the ephemeral
//! disk like the bundles), verified against its digest by the blobstore layer; the directory is
//! deleted when the [`Download`] is dropped, as Go's `CleanUp` deletes the temporary file.
//!
//! Also here: deleting a job source blob from the local blob directories after installing
//! (`cascading_blobstore.go` `Delete`; the agent's blobstore itself is never asked to delete).

use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;

use settings::Dirs;
use settings::digest::MultiDigest;

use crate::blobstore::{self, Blobstore, SignedClient};
use crate::install::plan::BlobSource;

/// Mode of `data/tmp` when a download creates it (`reference/bosh-agent.md` §6.1).
const TMP_DIR_MODE: u32 = 0o755;

/// Where blobs come from.
#[derive(Debug, Clone)]
pub struct Fetcher {
    blobstore: Arc<dyn Blobstore>,
    signed: Option<SignedClient>,
}

/// A verified blob in a temporary directory, deleted on drop.
#[derive(Debug)]
pub struct Download {
    // Held for its drop, which deletes the blob.
    _dir: TempDir,
    path: PathBuf,
}

/// Why a blob could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The temporary directory could not be made.
    #[error("creating a download directory in {}", .path.display())]
    Directory {
        /// The parent, `data/tmp`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The spec gives a signed URL but the installer has no client for them.
    #[error("the blob has a signed URL but no signed URL client was configured")]
    NoSignedClient,
    /// The blobstore or the signed URL failed, or the content did not match its digest.
    #[error(transparent)]
    Blobstore(#[from] blobstore::Error),
    /// A local blob could not be deleted.
    #[error("removing {}", .path.display())]
    Remove {
        /// The blob file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The download task panicked or was cancelled.
    #[error("download task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

impl Fetcher {
    /// Fetches blob ids from `blobstore`, and signed URLs with `signed` if given.
    pub fn new(blobstore: Arc<dyn Blobstore>, signed: Option<SignedClient>) -> Fetcher {
        Fetcher { blobstore, signed }
    }

    /// The same fetcher, fetching signed URLs with `client`.
    pub fn with_signed_client(mut self, client: SignedClient) -> Fetcher {
        self.signed = Some(client);
        self
    }

    /// Downloads the blob of `source` into a new directory under `tmp_dir`, verified against
    /// `digest`.
    pub async fn download(
        &self,
        source: &BlobSource,
        digest: &MultiDigest,
        tmp_dir: &Path,
    ) -> Result<Download, Error> {
        if matches!(source, BlobSource::SignedUrl { .. }) && self.signed.is_none() {
            return Err(Error::NoSignedClient);
        }
        let parent = tmp_dir.to_owned();
        let dir = tokio::task::spawn_blocking(move || {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(TMP_DIR_MODE)
                .create(&parent)
                .and_then(|()| {
                    tempfile::Builder::new()
                        .prefix("bosh-agent-blob-")
                        .tempdir_in(&parent)
                })
                .map_err(|source| Error::Directory {
                    path: parent,
                    source,
                })
        })
        .await
        .map_err(Error::Task)??;
        let path = dir.path().join("blob");
        match source {
            BlobSource::Blobstore { id } => self.blobstore.get(id, digest, &path).await?,
            BlobSource::SignedUrl { url, headers } => match &self.signed {
                Some(client) => client.get_signed(url, headers, digest, &path).await?,
                None => return Err(Error::NoSignedClient),
            },
        }
        Ok(Download { _dir: dir, path })
    }
}

impl Download {
    /// The verified blob.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Deletes blob `id` from the first local blob directory (`data/sensitive_blobs`, then
/// `data/blobs`) that has it; returns the path deleted, if any. An id that is not a plain file
/// name is ignored: it cannot be in those directories.
pub fn remove_local_blob(dirs: &Dirs, id: &str) -> Result<Option<PathBuf>, Error> {
    for dir in [dirs.sensitive_blobs_dir(), dirs.blobs_dir()] {
        let Ok(path) = platform::name::join(&dir, "blob id", id) else {
            return Ok(None);
        };
        match std::fs::remove_file(&path) {
            Ok(()) => return Ok(Some(path)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::Remove { path, source }),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    use settings::digest::Algorithm;

    use crate::blobstore::LocalBlobstore;

    #[tokio::test]
    async fn downloads_land_in_data_tmp_and_go_away_on_drop() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let store = base.path().join("store");
        std::fs::create_dir(&store).unwrap();
        std::fs::write(store.join("b1"), "hello").unwrap();
        let fetcher = Fetcher::new(Arc::new(LocalBlobstore::new(&store)), None);
        let digest = MultiDigest::compute(&b"hello"[..], &[Algorithm::Sha1]).unwrap();

        let download = fetcher
            .download(
                &BlobSource::Blobstore { id: "b1".into() },
                &digest,
                &dirs.tmp_dir(),
            )
            .await
            .unwrap();
        assert!(download.path().starts_with(dirs.tmp_dir()));
        assert_eq!(std::fs::read(download.path()).unwrap(), b"hello");
        drop(download);
        assert_eq!(std::fs::read_dir(dirs.tmp_dir()).unwrap().count(), 0);

        let signed = BlobSource::SignedUrl {
            url: "https://h/b?sig=1".into(),
            headers: Default::default(),
        };
        let err = fetcher
            .download(&signed, &digest, &dirs.tmp_dir())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NoSignedClient), "{err:?}");
    }

    #[test]
    fn local_blobs_are_removed_from_the_first_directory_holding_them() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        std::fs::create_dir_all(dirs.sensitive_blobs_dir()).unwrap();
        std::fs::create_dir_all(dirs.blobs_dir()).unwrap();
        std::fs::write(dirs.sensitive_blobs_dir().join("t1"), "a").unwrap();
        std::fs::write(dirs.blobs_dir().join("t1"), "b").unwrap();

        let removed = remove_local_blob(&dirs, "t1").unwrap();
        assert_eq!(removed, Some(dirs.sensitive_blobs_dir().join("t1")));
        assert!(dirs.blobs_dir().join("t1").exists());
        assert_eq!(
            remove_local_blob(&dirs, "t1").unwrap(),
            Some(dirs.blobs_dir().join("t1"))
        );
        assert_eq!(remove_local_blob(&dirs, "t1").unwrap(), None);
        assert_eq!(remove_local_blob(&dirs, "../t1").unwrap(), None);
    }
}
