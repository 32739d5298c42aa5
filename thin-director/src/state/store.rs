//! A JSON document on disk that survives crashes: every change is written to a temporary file,
//! synced, renamed over the old one and the directory synced, so the file is always either the old
//! document or the new one, never half of each. The director records each step before and after it
//! takes it, so a deploy interrupted anywhere converges when run again.
//!
//! One director at a time: [`Store::open`] takes an exclusive lock on `<file>.lock` for as long as
//! the store lives, and a second director fails at once saying so.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{} of the director's state", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state document.
    #[error("{} is not a valid state document", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Another director holds the lock.
    #[error("another thin-director is using {} (its lock is held)", .path.display())]
    Locked {
        /// The state file.
        path: PathBuf,
    },
}

/// A document of type `T` kept in one file.
#[derive(Debug)]
pub struct Store<T> {
    path: PathBuf,
    document: T,
    _lock: Flock<File>,
}

impl<T: Serialize + DeserializeOwned + Default> Store<T> {
    /// Opens the document at `path` (a default one when the file does not exist yet), locking it.
    pub fn open(path: &Path) -> Result<Store<T>, Error> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let lock_path = path.with_extension("lock");
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let lock =
            Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| Error::Locked {
                path: path.to_owned(),
            })?;
        let document = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
                path: path.to_owned(),
                source,
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => T::default(),
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Store {
            path: path.to_owned(),
            document,
            _lock: lock,
        })
    }

    /// The document.
    pub fn get(&self) -> &T {
        &self.document
    }

    /// Changes the document with `change` and writes it; when the write fails the document in
    /// memory is what is on disk (the change is undone).
    pub fn update<R>(&mut self, change: impl FnOnce(&mut T) -> R) -> Result<R, Error>
    where
        T: Clone,
    {
        let mut next = self.document.clone();
        let result = change(&mut next);
        write_atomically(&self.path, &next)?;
        self.document = next;
        Ok(result)
    }
}

/// Writes `document` to `path` through a synced temporary file, a rename and a synced directory.
fn write_atomically<T: Serialize>(path: &Path, document: &T) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let bytes = serde_json::to_vec_pretty(document).map_err(|source| Error::Parse {
        path: path.to_owned(),
        source,
    })?;
    let tmp = path.with_extension("tmp");
    // The state holds the blobstore password: its owner only.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?
    };
    file.write_all(&bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Doc = BTreeMap<String, u32>;

    #[test]
    fn changes_survive_a_reopen_and_a_second_director_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        {
            let mut store: Store<Doc> = Store::open(&path).unwrap();
            assert!(store.get().is_empty());
            store.update(|doc| doc.insert("vm".into(), 1)).unwrap();
            let err = Store::<Doc>::open(&path).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "another thin-director is using {} (its lock is held)",
                    path.display()
                )
            );
        }
        let store: Store<Doc> = Store::open(&path).unwrap();
        assert_eq!(store.get().get("vm"), Some(&1));
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_document_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut store: Store<Doc> = Store::open(&path).unwrap();
        store.update(|doc| doc.insert("a".into(), 1)).unwrap();
        // A directory where the temporary file would go makes the write fail.
        std::fs::create_dir(path.with_extension("tmp")).unwrap();
        assert!(store.update(|doc| doc.insert("b".into(), 2)).is_err());
        assert_eq!(store.get().len(), 1);
        let on_disk: Doc = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(&on_disk, store.get());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = Store::<Doc>::open(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is not a valid state document", path.display())
        );
    }
}
