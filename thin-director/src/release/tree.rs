//! The tree an archive would create, built entry by entry in memory so that every entry is judged
//! before anything is written.
//!
//! Rules, stricter than `tar` because a release comes from outside (as in `jobs::archive`, which
//! the agent uses; this crate may not depend on it):
//! - names are relative and never climb with `..`; `.` components are dropped;
//! - nothing is written below a symlink or a file the archive created, and a directory is never
//!   replaced by a file or a link (nor the other way round);
//! - a symlink, followed through every other symlink of the archive as the kernel would, must stay
//!   inside the tree, within 40 hops; a hard link must name a file the archive wrote before it;
//! - devices, fifos and other special entries are refused.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// What an archive entry is, as far as the tree is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symlink to the (relative) target, as written.
    Symlink(PathBuf),
    /// A hard link to an earlier entry, by its normalized name.
    HardLink(PathBuf),
}

/// What is wrong with an archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    /// The name starts at `/`.
    AbsolutePath,
    /// The name climbs out with `..`.
    LeavesTree,
    /// A link points outside the tree (or through more than 40 links).
    LinkLeavesTree {
        /// Where it points.
        target: PathBuf,
    },
    /// A hard link names something that is not a file of the archive.
    HardLinkTarget {
        /// What it names.
        target: PathBuf,
    },
    /// The entry would be written below a symlink or a file.
    ThroughLink,
    /// A directory and a file or link with one name.
    Conflict,
    /// A device, a fifo or another kind we do not unpack.
    NotAllowed {
        /// What the entry is.
        kind: String,
    },
    /// A file we read into memory is bigger than we allow.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

/// The entries accepted so far.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Symlink(PathBuf),
}

/// How many symlinks a path may go through, as Linux's `MAXSYMLINKS`.
const MAX_LINK_HOPS: u32 = 40;

/// The name of an entry relative to the tree, or why it has none.
pub(crate) fn normalize(raw: &Path) -> Result<PathBuf, EntryProblem> {
    let mut path = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err(EntryProblem::LeavesTree),
            Component::RootDir | Component::Prefix(_) => return Err(EntryProblem::AbsolutePath),
        }
    }
    Ok(path)
}

impl Tree {
    /// Accepts the entry at `path` (normalized) or says why not.
    pub fn add(&mut self, path: &Path, kind: &EntryKind) -> Result<(), EntryProblem> {
        if path.as_os_str().is_empty() {
            // `./`: only a directory can name the root itself.
            return match kind {
                EntryKind::Dir => Ok(()),
                _ => Err(EntryProblem::Conflict),
            };
        }
        let mut ancestor = PathBuf::new();
        for component in path.parent().into_iter().flat_map(Path::components) {
            ancestor.push(component);
            match self.nodes.get(&ancestor) {
                None => {
                    self.nodes.insert(ancestor.clone(), Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(Node::Symlink(_)) | Some(Node::File) => return Err(EntryProblem::ThroughLink),
            }
        }
        let existing = self.nodes.get(path);
        match (existing, kind) {
            (Some(Node::Dir), EntryKind::Dir) => return Ok(()),
            (Some(Node::Dir), _) | (Some(_), EntryKind::Dir) => return Err(EntryProblem::Conflict),
            _ => {}
        }
        let node = match kind {
            EntryKind::Dir => Node::Dir,
            EntryKind::File => Node::File,
            EntryKind::Symlink(target) => {
                if target.as_os_str().is_empty() || target.has_root() {
                    return Err(EntryProblem::LinkLeavesTree {
                        target: target.clone(),
                    });
                }
                Node::Symlink(target.clone())
            }
            EntryKind::HardLink(target) => {
                if self.nodes.get(target) != Some(&Node::File) {
                    return Err(EntryProblem::HardLinkTarget {
                        target: target.clone(),
                    });
                }
                Node::File
            }
        };
        self.nodes.insert(path.to_owned(), node);
        Ok(())
    }

    /// Whether the archive wrote a regular file (or a hard link) at `path`.
    pub fn is_file(&self, path: &Path) -> bool {
        self.nodes.get(path) == Some(&Node::File)
    }

    /// Checks that every symlink, followed through the others, stays inside the tree; names the
    /// first that does not.
    pub fn check_links(&self) -> Result<(), (PathBuf, EntryProblem)> {
        for (path, node) in &self.nodes {
            if let Node::Symlink(target) = node {
                let mut position: Vec<OsString> = path
                    .parent()
                    .into_iter()
                    .flat_map(Path::components)
                    .map(|c| c.as_os_str().to_owned())
                    .collect();
                let mut hops = MAX_LINK_HOPS;
                if !self.stays_inside(&mut position, target, &mut hops) {
                    return Err((
                        path.clone(),
                        EntryProblem::LinkLeavesTree {
                            target: target.clone(),
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// Walks `target` from `position` (a directory, as components from the root), replacing each
    /// symlink met by its own target; false when the walk climbs above the root.
    fn stays_inside(&self, position: &mut Vec<OsString>, target: &Path, hops: &mut u32) -> bool {
        if target.has_root() {
            return false;
        }
        for component in target.components() {
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    if position.pop().is_none() {
                        return false;
                    }
                }
                Component::Normal(name) => {
                    position.push(name.to_owned());
                    let here: PathBuf = position.iter().collect();
                    if let Some(Node::Symlink(next)) = self.nodes.get(&here) {
                        if *hops == 0 {
                            return false;
                        }
                        *hops -= 1;
                        position.pop();
                        if !self.stays_inside(position, next, hops) {
                            return false;
                        }
                    }
                }
                Component::RootDir | Component::Prefix(_) => return false,
            }
        }
        true
    }
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::AbsolutePath => f.write_str("absolute path"),
            EntryProblem::LeavesTree => f.write_str("path leaves the target"),
            EntryProblem::LinkLeavesTree { target } => {
                write!(f, "link to {} leaves the target", target.display())
            }
            EntryProblem::HardLinkTarget { target } => write!(
                f,
                "hard link to {}, which is not a file of the archive",
                target.display()
            ),
            EntryProblem::ThroughLink => f.write_str("path goes through a link or a file"),
            EntryProblem::Conflict => {
                f.write_str("a directory and a file or link would have the same name")
            }
            EntryProblem::NotAllowed { kind } => write!(f, "{kind} not allowed"),
            EntryProblem::TooLarge { limit } => write!(f, "larger than {limit} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(tree: &mut Tree, path: &str, kind: EntryKind) -> Result<(), EntryProblem> {
        let path = normalize(Path::new(path))?;
        tree.add(&path, &kind)
    }

    fn link(target: &str) -> EntryKind {
        EntryKind::Symlink(PathBuf::from(target))
    }

    #[test]
    fn names_are_normalized_or_refused() {
        assert_eq!(
            normalize(Path::new("./jobs/web.tgz")).unwrap(),
            Path::new("jobs/web.tgz")
        );
        assert_eq!(normalize(Path::new("./")).unwrap(), Path::new(""));
        assert_eq!(
            normalize(Path::new("/etc/passwd")),
            Err(EntryProblem::AbsolutePath)
        );
        assert_eq!(
            normalize(Path::new("a/../../b")),
            Err(EntryProblem::LeavesTree)
        );
    }

    #[test]
    fn links_inside_the_tree_are_accepted() {
        let mut tree = Tree::default();
        add(&mut tree, "lib/libfoo.so.1", EntryKind::File).unwrap();
        add(&mut tree, "lib/libfoo.so", link("libfoo.so.1")).unwrap();
        add(&mut tree, "bin/tool", link("../lib/libfoo.so")).unwrap();
        add(&mut tree, "here", link(".")).unwrap();
        add(
            &mut tree,
            "lib/hard",
            EntryKind::HardLink(PathBuf::from("lib/libfoo.so.1")),
        )
        .unwrap();
        tree.check_links().unwrap();
        assert!(tree.is_file(Path::new("lib/hard")));
        assert!(!tree.is_file(Path::new("lib")));
    }

    #[test]
    fn links_out_of_the_tree_are_refused_even_through_other_links() {
        let mut tree = Tree::default();
        assert_eq!(
            add(&mut tree, "etc", link("/etc")),
            Err(EntryProblem::LinkLeavesTree {
                target: "/etc".into()
            })
        );
        add(&mut tree, "a/up", link("..")).unwrap();
        tree.check_links().unwrap();
        // Each link alone looks harmless; together they climb out.
        add(&mut tree, "b/out", link("../a/up/..")).unwrap();
        assert_eq!(
            tree.check_links(),
            Err((
                PathBuf::from("b/out"),
                EntryProblem::LinkLeavesTree {
                    target: "../a/up/..".into()
                }
            ))
        );
    }

    #[test]
    fn link_loops_are_refused() {
        let mut tree = Tree::default();
        add(&mut tree, "x", link("y")).unwrap();
        add(&mut tree, "y", link("x")).unwrap();
        assert!(tree.check_links().is_err());
    }

    #[test]
    fn nothing_is_written_through_links_or_over_directories() {
        let mut tree = Tree::default();
        add(&mut tree, "d", link("sub")).unwrap();
        assert_eq!(
            add(&mut tree, "d/f", EntryKind::File),
            Err(EntryProblem::ThroughLink)
        );
        add(&mut tree, "dir/f", EntryKind::File).unwrap();
        assert_eq!(
            add(&mut tree, "dir", EntryKind::File),
            Err(EntryProblem::Conflict)
        );
        assert_eq!(
            add(&mut tree, "dir/f", EntryKind::Dir),
            Err(EntryProblem::Conflict)
        );
        // A file may replace a file, as later tar entries do.
        add(&mut tree, "dir/f", EntryKind::File).unwrap();
        assert_eq!(
            add(&mut tree, "h", EntryKind::HardLink("dir".into())),
            Err(EntryProblem::HardLinkTarget {
                target: "dir".into()
            })
        );
        assert_eq!(
            add(&mut tree, "./", EntryKind::File),
            Err(EntryProblem::Conflict)
        );
    }
}
