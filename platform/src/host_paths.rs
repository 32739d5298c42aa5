//! Every host path outside the base dir, computed from a root: `/` in production, a temporary
//! directory in tests (which build a fake `/dev` or `/proc` there).

use std::path::{Path, PathBuf};

/// Host paths under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
}

impl HostPaths {
    /// The real host.
    pub fn system() -> HostPaths {
        HostPaths {
            root: PathBuf::from("/"),
        }
    }

    /// A host rooted at `root` (tests).
    pub fn with_root(root: impl Into<PathBuf>) -> HostPaths {
        HostPaths { root: root.into() }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A device node, e.g. `dev("sr0")` is `/dev/sr0`.
    pub fn dev(&self, name: &str) -> PathBuf {
        self.root.join("dev").join(name)
    }

    /// A path under `/proc`.
    pub fn proc(&self, name: &str) -> PathBuf {
        self.root.join("proc").join(name)
    }

    /// A path under `/sys`.
    pub fn sys(&self, name: &str) -> PathBuf {
        self.root.join("sys").join(name)
    }

    /// A path under `/etc`.
    pub fn etc(&self, name: &str) -> PathBuf {
        self.root.join("etc").join(name)
    }
}
