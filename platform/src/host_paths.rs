//! Every host path outside the base dir, computed from a root: `/` in production, a temporary
//! directory in tests (which build a fake `/dev` or `/proc` there). Paths that arrive from outside
//! (a device path in the settings) are put under the root with [`HostPaths::reroot`].

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

    /// A path under `/run`.
    pub fn run(&self, name: &str) -> PathBuf {
        self.root.join("run").join(name)
    }

    /// A path under `/var`, e.g. `var("log")` is `/var/log`.
    pub fn var(&self, name: &str) -> PathBuf {
        self.root.join("var").join(name)
    }

    /// A top-level directory such as `/tmp`, `/opt` or `/home`.
    pub fn top(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// An absolute host path (`/dev/vdb`) under the root; a relative one is joined as it is.
    pub fn reroot(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_put_under_the_root() {
        let host = HostPaths::with_root("/tmp/root");
        assert_eq!(
            host.reroot(Path::new("/dev/vdb")),
            PathBuf::from("/tmp/root/dev/vdb")
        );
        assert_eq!(
            HostPaths::system().reroot(Path::new("/dev/vdb")),
            PathBuf::from("/dev/vdb")
        );
        assert_eq!(host.var("log"), PathBuf::from("/tmp/root/var/log"));
        assert_eq!(host.top("tmp"), PathBuf::from("/tmp/root/tmp"));
    }
}
