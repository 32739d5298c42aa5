//! Names that arrive from outside (disk CIDs, disk association names) and end up as one component of
//! a path under the base dir: `data/dynamic_disks/<cid>` (`platform/linux_platform.go`
//! `SetupDynamicDisk`), `instance/disks/<name>` (`AssociateDisk`).
//!
//! The Go agent joins them with `path.Join`, so a CID of `../../etc` escapes its directory. Every such
//! join goes through [`join`], which refuses anything that is not exactly one plain component.

use std::path::{Path, PathBuf};

/// Why a name cannot be one path component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The name is empty.
    #[error("{kind} is empty")]
    Empty {
        /// What the name names (`disk cid`, `disk name`).
        kind: &'static str,
    },
    /// The name is `.` or `..`, or holds a `/` or a NUL byte.
    #[error("{kind} '{name}' is not a plain file name (no '/', NUL, '.' or '..')")]
    NotPlain {
        /// What the name names.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `name`, a `kind` such as `disk cid`, is one plain path component.
pub fn check(kind: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::Empty { kind });
    }
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::NotPlain {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// `dir/name`, after [`check`]ing `name`; the result is always directly inside `dir`.
pub fn join(dir: &Path, kind: &'static str, name: &str) -> Result<PathBuf> {
    check(kind, name)?;
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_components_are_joined() {
        let dir = Path::new("/var/vcap/data/dynamic_disks");
        let cases: &[(&str, Option<&str>)] = &[
            ("vol-123", Some("/var/vcap/data/dynamic_disks/vol-123")),
            (
                "disk-1.eyJ0YXJnZXQiOjF9",
                Some("/var/vcap/data/dynamic_disks/disk-1.eyJ0YXJnZXQiOjF9"),
            ),
            ("..data", Some("/var/vcap/data/dynamic_disks/..data")),
            ("", None),
            (".", None),
            ("..", None),
            ("../../etc", None),
            ("/etc/passwd", None),
            ("a/b", None),
            ("nul\0byte", None),
        ];
        for (name, expected) in cases {
            let joined = join(dir, "disk cid", name).ok();
            assert_eq!(joined.as_deref(), expected.map(Path::new), "{name:?}");
        }
    }

    #[test]
    fn errors_name_the_kind_and_the_name() {
        assert_eq!(
            check("disk cid", "../x").unwrap_err().to_string(),
            "disk cid '../x' is not a plain file name (no '/', NUL, '.' or '..')"
        );
        assert_eq!(
            check("disk name", "").unwrap_err().to_string(),
            "disk name is empty"
        );
    }
}
