//! Landing a blob safely: a temporary file in the destination's directory, hashed as it is written,
//! fsynced, and renamed over the destination only when its digest matches.
//!
//! The Go agent downloads into `TMPDIR` and verifies afterwards (bosh-utils
//! `digest_verifiable_blobstore.go`, `agent/httpblobprovider/http_blob_provider.go`); callers then
//! move the file. Staging beside the destination keeps the final rename atomic, and hashing while
//! writing reads every blob once. A staged file that is dropped unfinished is deleted.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;
use tokio::io::AsyncWriteExt as _;

use settings::digest::{self, Digest, Hasher, MultiDigest};

use crate::blobstore::{Error, Result, blocking};

/// Hashes content with the strongest algorithm of an expected multi-digest and compares.
pub(crate) struct Verifier {
    expected: Digest,
    hasher: Hasher,
}

/// A temporary file next to a destination, being written asynchronously.
pub(crate) struct Staged {
    file: tokio::fs::File,
    path: TempPath,
    verifier: Verifier,
}

impl Verifier {
    /// A verifier for `expected`; fails before any IO when its strongest piece names an algorithm
    /// we cannot compute.
    pub(crate) fn new(expected: &MultiDigest) -> std::result::Result<Verifier, digest::Error> {
        let expected = expected.strongest().clone();
        let hasher = Hasher::new(std::slice::from_ref(&expected.algorithm))?;
        Ok(Verifier { expected, hasher })
    }

    /// Adds content.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        // Hashing into memory cannot fail.
        let _ = self.hasher.write_all(bytes);
    }

    /// Compares what was hashed with the expected digest, with the Go error text on a mismatch.
    pub(crate) fn finish(self) -> std::result::Result<(), digest::Error> {
        let actual = self.hasher.finish();
        let matches = actual
            .digests()
            .first()
            .is_some_and(|actual| actual.hex.eq_ignore_ascii_case(&self.expected.hex));
        if matches {
            Ok(())
        } else {
            Err(digest::Error::Mismatch {
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

impl Write for Verifier {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Staged {
    /// Creates a temporary file in `destination`'s directory that will be checked against
    /// `verifier` (built by the caller before any IO).
    pub(crate) async fn create(destination: &Path, verifier: Verifier) -> Result<Staged> {
        let dir = directory_of(destination);
        let (file, path) = blocking(move || temporary_file(&dir)).await?;
        Ok(Staged {
            file: tokio::fs::File::from_std(file),
            path,
            verifier,
        })
    }

    /// Appends `bytes` and hashes them.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.verifier.update(bytes);
        self.file
            .write_all(bytes)
            .await
            .map_err(|source| Error::File {
                action: "writing",
                path: self.path.to_path_buf(),
                source,
            })
    }

    /// Verifies the content, then moves it to `destination`; on a mismatch the file is deleted and
    /// the error names `blob`.
    pub(crate) async fn finish(self, destination: &Path, blob: String) -> Result<()> {
        let Staged {
            mut file,
            path,
            verifier,
        } = self;
        let destination = destination.to_owned();
        let flushed = file.flush().await;
        let file = file.into_std().await;
        blocking(move || {
            flushed.map_err(|source| Error::File {
                action: "writing",
                path: path.to_path_buf(),
                source,
            })?;
            verifier
                .finish()
                .map_err(|source| Error::Digest { blob, source })?;
            persist(&file, path, &destination)
        })
        .await
    }

    /// Deletes the temporary file off the runtime's threads.
    pub(crate) async fn discard(self) {
        let Staged { file, path, .. } = self;
        drop(file);
        // Deleting is best effort: the file is in the destination's directory, not a shared one.
        let _ = tokio::task::spawn_blocking(move || drop(path)).await;
    }
}

/// Copies `source` to `destination` through a temporary file, verified against `expected`
/// (blocking). Nothing appears at `destination` unless the digest matches.
pub(crate) fn copy_verified(
    source: &Path,
    expected: &MultiDigest,
    destination: &Path,
    blob: String,
) -> Result<()> {
    let mut verifier = Verifier::new(expected).map_err(|source| Error::Digest {
        blob: blob.clone(),
        source,
    })?;
    let mut input = File::open(source).map_err(|err| file_error("reading", source, err))?;
    let (mut output, path) = temporary_file(&directory_of(destination))?;
    copy(&mut input, source, &mut output, &path, &mut verifier)?;
    verifier
        .finish()
        .map_err(|source| Error::Digest { blob, source })?;
    persist(&output, path, destination)
}

/// Hashes the file at `path`, which something else wrote, and moves it to `destination` if
/// `verifier` accepts it (blocking). The file is deleted otherwise.
pub(crate) fn verify_and_persist(
    path: TempPath,
    mut verifier: Verifier,
    destination: &Path,
    blob: String,
) -> Result<()> {
    let mut file = File::open(&path).map_err(|err| file_error("reading", &path, err))?;
    io::copy(&mut file, &mut verifier).map_err(|err| file_error("reading", &path, err))?;
    verifier
        .finish()
        .map_err(|source| Error::Digest { blob, source })?;
    persist(&file, path, destination)
}

/// Copies `source` into a new file `name` of `dir` through a temporary file, hashing it with
/// `hasher` on the way (blocking).
pub(crate) fn copy_into(source: &Path, dir: &Path, name: &str, hasher: &mut Hasher) -> Result<()> {
    let mut input = File::open(source).map_err(|err| file_error("reading", source, err))?;
    let (mut output, path) = temporary_file(dir)?;
    copy(&mut input, source, &mut output, &path, hasher)?;
    persist(&output, path, &dir.join(name))
}

/// The directory a file is created in: its parent, or `.` for a bare name.
pub(crate) fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A new, empty temporary file in `dir`, deleted when its path is dropped (blocking).
pub(crate) fn temporary_file(dir: &Path) -> Result<(File, TempPath)> {
    let file = tempfile::Builder::new()
        .prefix(".blob-")
        .tempfile_in(dir)
        .map_err(|err| file_error("creating a temporary file in", dir, err))?;
    Ok(file.into_parts())
}

pub(crate) fn file_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::File {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Copies everything from `input` to `output` and into `hasher`.
fn copy(
    input: &mut File,
    input_path: &Path,
    output: &mut File,
    output_path: &Path,
    hasher: &mut impl Write,
) -> Result<()> {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(file_error("reading", input_path, err)),
        };
        let chunk = &buffer[..read];
        // Hashing into memory cannot fail.
        let _ = hasher.write_all(chunk);
        output
            .write_all(chunk)
            .map_err(|err| file_error("writing", output_path, err))?;
    }
}

/// fsyncs `file` and renames it from `path` to `destination` (blocking).
fn persist(file: &File, path: TempPath, destination: &Path) -> Result<()> {
    file.sync_all()
        .map_err(|err| file_error("writing", &path, err))?;
    path.persist(destination)
        .map_err(|err| file_error("renaming a blob to", destination, err.error))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA1: &str = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_matching_copy_lands_at_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, "hello").unwrap();
        let destination = dir.path().join("out").join("blob");
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();
        copy_verified(&source, &digest, &destination, "blob 'b'".into()).unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"hello");
        assert_eq!(names(&dir.path().join("out")), vec!["blob"]);
    }

    #[test]
    fn a_mismatch_leaves_nothing_and_names_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, "hellO").unwrap();
        let destination = dir.path().join("blob");
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();
        let err = copy_verified(&source, &digest, &destination, "blob 'b'".into()).unwrap_err();
        let text = settings::source::error_chain(&err);
        assert!(
            text.starts_with(&format!(
                "checking blob 'b': Expected stream to have digest '{HELLO_SHA1}' but was '"
            )),
            "{text}"
        );
        assert_eq!(names(dir.path()), vec!["source"]);
    }

    #[test]
    fn an_unknown_algorithm_fails_before_any_io() {
        let dir = tempfile::tempdir().unwrap();
        let digest = MultiDigest::parse("md5:abcd").unwrap();
        let err = copy_verified(
            &dir.path().join("missing"),
            &digest,
            &dir.path().join("blob"),
            "blob 'b'".into(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Digest { .. }), "{err:?}");
        assert!(names(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn staged_downloads_verify_before_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("blob");
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();

        let mut staged = Staged::create(&destination, Verifier::new(&digest).unwrap())
            .await
            .unwrap();
        staged.write(b"hel").await.unwrap();
        staged.write(b"lo").await.unwrap();
        staged.finish(&destination, "b".into()).await.unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"hello");

        std::fs::remove_file(&destination).unwrap();
        let mut staged = Staged::create(&destination, Verifier::new(&digest).unwrap())
            .await
            .unwrap();
        staged.write(b"bye").await.unwrap();
        assert!(staged.finish(&destination, "b".into()).await.is_err());
        assert!(names(dir.path()).is_empty());

        let staged = Staged::create(&destination, Verifier::new(&digest).unwrap())
            .await
            .unwrap();
        staged.discard().await;
        assert!(names(dir.path()).is_empty());
    }
}
