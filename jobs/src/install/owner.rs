//! Who owns installed files: the Go agent gives bundle directories, every file of a rendered job and
//! the job directories to `root:vcap` (`Chown(path, "root:vcap")` in
//! `agent/applier/bundlecollection/file_bundle.go`, `agent/applier/jobs/owner_fix.go`,
//! `agent/applier/models/job.go`).
//!
//! Changing an owner needs root and the `vcap` group's id, which only the Linux platform knows, so
//! the installer asks an [`Owner`]: the platform's [`platform::owner::FileOwner`] on Linux, or
//! [`KeepOwners`] (the dummy platform and tests), which leaves owners as they are: everything then
//! belongs to the user running the agent, and only the modes are set.

use std::fmt;
use std::io;
use std::path::Path;

/// Gives installed paths to `root:vcap`.
pub trait Owner: Send + Sync + fmt::Debug {
    /// Makes `path` owned by user `root` and group `vcap`. A symlink at `path` itself is changed,
    /// not followed (`lchown`): links in a rendered job may point anywhere in its tree.
    fn set_root_vcap(&self, path: &Path) -> io::Result<()>;
}

impl Owner for platform::owner::FileOwner {
    fn set_root_vcap(&self, path: &Path) -> io::Result<()> {
        self.apply(path)
    }
}

/// An [`Owner`] that changes nothing, for the dummy platform and tests (which never run as root).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepOwners;

impl Owner for KeepOwners {
    fn set_root_vcap(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
}
