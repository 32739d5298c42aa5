//! Who owns what the agent installs: the Go agent gives job and package bundles and every file of a
//! rendered job to `root:vcap` (`Chown(path, "root:vcap")` in
//! `agent/applier/bundlecollection/file_bundle.go` and `agent/applier/jobs/owner_fix.go`), so that
//! job processes running as `vcap` can read what they need and change nothing.
//!
//! [`FileOwner`] is that owner with its ids resolved once; the Linux platform answers
//! [`FileOwner::root_vcap`] and the dummy platform none (it never changes owners: it does not run as
//! root and writes nothing outside the base dir).

use std::io;
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::unistd::{Gid, Group, Uid};

/// The group the agent's installed files belong to.
pub const VCAP_GROUP: &str = "vcap";

/// Why the owner of installed files cannot be known.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The group does not exist on this host.
    #[error("group {0} does not exist")]
    NoGroup(String),
    /// Looking the group up failed.
    #[error("looking up group {group}")]
    Lookup {
        /// The group.
        group: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A user and group to give files to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    uid: Uid,
    gid: Gid,
}

impl FileOwner {
    /// The owner `uid:gid`.
    pub fn new(uid: u32, gid: u32) -> FileOwner {
        FileOwner {
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
        }
    }

    /// The uid and gid.
    pub fn ids(&self) -> (u32, u32) {
        (self.uid.as_raw(), self.gid.as_raw())
    }

    /// `root` and the host's `vcap` group.
    pub fn root_vcap() -> Result<FileOwner, Error> {
        let group = Group::from_name(VCAP_GROUP)
            .map_err(|errno| Error::Lookup {
                group: VCAP_GROUP.to_owned(),
                source: errno.into(),
            })?
            .ok_or_else(|| Error::NoGroup(VCAP_GROUP.to_owned()))?;
        Ok(FileOwner {
            uid: Uid::from_raw(0),
            gid: group.gid,
        })
    }

    /// Gives `path` to this owner. A symlink at `path` itself is changed, not followed: links in a
    /// rendered job may point anywhere.
    pub fn apply(&self, path: &Path) -> io::Result<()> {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(self.uid),
            Some(self.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn files_and_links_themselves_get_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        let link = dir.path().join("link");
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let owner = FileOwner::new(0, 4321);
        if !Uid::effective().is_root() {
            // Giving files away needs root.
            let err = owner.apply(&file).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
            return;
        }
        owner.apply(&link).unwrap();
        let link_meta = std::fs::symlink_metadata(&link).unwrap();
        assert_eq!((link_meta.uid(), link_meta.gid()), (0, 4321));
        let file_meta = std::fs::metadata(&file).unwrap();
        assert_ne!(file_meta.gid(), 4321, "the link was followed");
        owner.apply(&file).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().gid(), 4321);
    }

    #[test]
    fn a_missing_group_is_named() {
        let found = Group::from_name(VCAP_GROUP).unwrap();
        match (FileOwner::root_vcap(), found) {
            (Ok(owner), Some(group)) => assert_eq!(owner, FileOwner::new(0, group.gid.as_raw())),
            (Err(err), None) => assert_eq!(err.to_string(), "group vcap does not exist"),
            (answer, found) => panic!("{answer:?} but the host says {found:?}"),
        }
    }
}
