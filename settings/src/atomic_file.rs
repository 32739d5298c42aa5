//! Replacing a file atomically: nothing half-written ever takes the place of a good file.
//!
//! The Go agent writes `settings.json` and friends in place (`WriteFileQuietly`), so a crash or a full
//! disk mid-write leaves a truncated cache and an agent that cannot boot from it. We write a temporary
//! file in the same directory, fsync it, rename it over the target and fsync the directory, as
//! afterburn's `write_ssh_keys` does.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `contents` to `path` with permission bits `mode`, atomically; creates missing parent
/// directories (mode 0755 before umask).
pub fn write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_owned(path, contents, mode, None)
}

/// [`write`], the file given to `owner` (uid, gid) before it takes the place of the old one.
pub fn write_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let mut file = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(file.as_file(), Some(uid), Some(gid))?;
    }
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_sets_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("settings.json");
        write(&path, b"first", 0o600).unwrap();
        write(&path, b"second", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("settings.json")]);
    }

    #[test]
    fn the_owner_is_set_before_the_file_is_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.json");
        // Our own ids: a chown anyone may make.
        let me = fs::metadata(dir.path()).unwrap();
        let ids = (
            std::os::unix::fs::MetadataExt::uid(&me),
            std::os::unix::fs::MetadataExt::gid(&me),
        );
        write_owned(&path, b"{}", 0o640, Some(ids)).unwrap();
        let written = fs::metadata(&path).unwrap();
        assert_eq!(
            (
                std::os::unix::fs::MetadataExt::uid(&written),
                std::os::unix::fs::MetadataExt::gid(&written)
            ),
            ids
        );
        assert_eq!(written.permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        write(&path, b"good", 0o600).unwrap();
        // A directory in the way of the rename makes the write fail after the temp file was written.
        let blocked = dir.path().join("blocked");
        fs::create_dir_all(blocked.join("inner")).unwrap();
        assert!(write(&blocked, b"bad", 0o600).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"good");
    }
}
