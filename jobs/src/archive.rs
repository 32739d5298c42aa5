//! Release tarballs: the one place job and package blobs, the rendered templates archive, package
//! sources and compiled packages are unpacked, and where compiled packages are packed.
//!
//! Follows bosh-utils `fileutil/tarball_compressor.go`, which the Go agent drives as
//! `tar --no-same-owner -xf <archive> -C <dir>`, with `--strip-components=1|2 <job>|./<job>` to take
//! one job out of the rendered templates archive, and as `tar czf <tgz> -C <dir> .` to pack a
//! compiled package. What we keep: gzip-compressed and plain tars are both read (told apart by the
//! gzip magic bytes, as GNU tar does); owners in the archive are ignored; permission bits are kept.
//!
//! Where we are stricter than `tar`, because a tarball comes from outside and must not be able to
//! write anywhere else:
//! - Every entry is checked before anything is written: absolute names, `..` components, links whose
//!   target is absolute or leaves the extraction root, device files and fifos are refused.
//! - The archive is unpacked into a fresh directory next to the target and renamed into place only
//!   when every entry was good, so a bad archive leaves the target exactly as it was.
//! - Nothing is ever written through a symlink the archive created, and once everything is written,
//!   every symlink is resolved against the tree as the kernel would resolve it, so a chain of
//!   individually harmless links cannot point outside either.
//!
//! Where we differ on purpose: `.` components do not count for `strip_components` (GNU tar counts
//! them, which is why the Go agent passes 1 for `job/…` and 2 for `./job/…`); only the `rwx` bits of
//! a mode are kept (no setuid, setgid or sticky bit); directory modes are applied last, so a
//! read-only directory can still be filled; the umask is ignored, as it is for root's `tar`; and
//! modification times are not restored.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use tar::{Archive, Builder, EntryType, Header, HeaderMode};

/// What to take out of an archive and where each entry lands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Leading path components dropped from every entry name (`tar --strip-components`). `.`
    /// components are not counted: with 1, both `job/bin/run` and `./job/bin/run` land as `bin/run`.
    /// Entries with no more components than this are skipped.
    pub strip_components: usize,
    /// Take only the entries under this top-level directory (`tar -xf <archive> <job>`), before
    /// stripping; `job`, `job/` and `./job` name the same one. The archive must contain it.
    pub only_prefix: Option<String>,
}

/// The result of the functions in this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an archive could not be extracted or created.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive file could not be opened or its first bytes read.
    #[error("opening archive {}", .archive.display())]
    Open {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The archive is not a readable tar (bad header, truncated, corrupt gzip stream).
    #[error("reading archive {}", .archive.display())]
    Read {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry name starts with `/`.
    #[error("archive {} entry {}: absolute path", .archive.display(), .entry.display())]
    AbsolutePath {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
    },
    /// An entry name has a `..` component.
    #[error("archive {} entry {}: path leaves the target", .archive.display(), .entry.display())]
    PathLeavesTarget {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
    },
    /// A symlink or hard link points at an absolute path or outside the extracted tree.
    #[error(
        "archive {} entry {}: link to {} leaves the target",
        .archive.display(), .entry.display(), .link.display()
    )]
    LinkLeavesTarget {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
        /// Where the link points.
        link: PathBuf,
    },
    /// An entry would be written below a symlink the archive created.
    #[error(
        "archive {} entry {}: path goes through a symlink",
        .archive.display(), .entry.display()
    )]
    ThroughSymlink {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
    },
    /// A device file, a fifo, a link without a target or an entry type we do not unpack.
    #[error("archive {} entry {}: {kind} not allowed", .archive.display(), .entry.display())]
    NotAllowed {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
        /// What the entry is, e.g. `character device`.
        kind: String,
    },
    /// A file or link entry has the name of a directory extracted before it.
    #[error(
        "archive {} entry {}: would replace a directory",
        .archive.display(), .entry.display()
    )]
    ReplacesDirectory {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
    },
    /// An entry that is not a directory names the extraction root itself (`./` as a file).
    #[error(
        "archive {} entry {}: only a directory can name the target itself",
        .archive.display(), .entry.display()
    )]
    RootNotDirectory {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
    },
    /// Reading an entry's data or writing it to disk failed.
    #[error("extracting archive {} entry {}", .archive.display(), .entry.display())]
    Extract {
        /// The archive.
        archive: PathBuf,
        /// The entry name as written in the archive.
        entry: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// [`ExtractOptions::only_prefix`] names a directory the archive does not have.
    #[error("archive {} has no entries under {prefix}", .archive.display())]
    PrefixNotFound {
        /// The archive.
        archive: PathBuf,
        /// The top-level directory asked for.
        prefix: String,
    },
    /// [`ExtractOptions::only_prefix`] is not one plain directory name.
    #[error("{prefix:?} is not a top-level directory name")]
    InvalidPrefix {
        /// The value given.
        prefix: String,
    },
    /// The target (or the archive to create) has no file name, e.g. `/` or `..`.
    #[error("{} has no parent directory to work in", .path.display())]
    InvalidPath {
        /// The path given.
        path: PathBuf,
    },
    /// The temporary directory next to the target could not be made or finished.
    #[error("preparing to extract archive {} next to {}", .archive.display(), .target.display())]
    Stage {
        /// The archive.
        archive: PathBuf,
        /// The target directory.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The extracted tree could not be renamed into place.
    #[error("installing archive {} as {}", .archive.display(), .target.display())]
    Install {
        /// The archive.
        archive: PathBuf,
        /// The target directory.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file or directory to archive could not be read.
    #[error("reading {}", .path.display())]
    ReadSource {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory to archive holds something other than files, directories and symlinks.
    #[error("{}: only files, directories and symlinks can be archived", .path.display())]
    UnsupportedFile {
        /// The socket, fifo or device file.
        path: PathBuf,
    },
    /// The archive to create would be written inside the directory being archived.
    #[error("archive {} would be inside {}", .archive.display(), .source_dir.display())]
    ArchiveInsideSource {
        /// The archive.
        archive: PathBuf,
        /// The directory being archived.
        source_dir: PathBuf,
    },
    /// Copying one file into the archive failed.
    #[error("adding {} to archive {}", .path.display(), .archive.display())]
    Append {
        /// The file being added.
        path: PathBuf,
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing, finishing or renaming the archive failed.
    #[error("writing archive {}", .archive.display())]
    Write {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Extracts the tar (gzip-compressed or plain) at `archive` into `target`, which it creates or
/// replaces as a whole; nothing changes unless every entry is good.
///
/// The tree is built in a hidden temporary directory next to `target` (same filesystem), then
/// renamed over it: an existing `target` is first renamed aside, then deleted. Missing parents of
/// `target` are created. If deleting the old tree fails, the new one is in place and the leftover
/// `.bosh-agent-replaced-*` directory is not reported. The target directory gets the mode of a `./`
/// entry if the archive has one (and nothing is stripped), else 0755.
pub fn extract(archive: &Path, target: &Path, options: &ExtractOptions) -> Result<()> {
    let prefix = options
        .only_prefix
        .as_deref()
        .map(parse_prefix)
        .transpose()?;
    let (parent, target) = split_path(target)?;
    let stage_error = |source| Error::Stage {
        archive: archive.to_owned(),
        target: target.clone(),
        source,
    };
    let reader = open_archive(archive)?;
    fs::create_dir_all(&parent).map_err(stage_error)?;
    let staging = Staging::create_in(&parent).map_err(stage_error)?;

    let mut tree = Tree::new(staging.path(), archive);
    tree.unpack_all(reader, options, prefix.as_deref())?;
    tree.check_symlinks()?;
    tree.apply_dir_modes().map_err(stage_error)?;

    staging
        .install(&target, &parent)
        .map_err(|source| Error::Install {
            archive: archive.to_owned(),
            target: target.clone(),
            source,
        })
}

/// Packs the contents of `source_dir` into a gzip-compressed tar at `archive`, named `./`,
/// `./dir/`, `./dir/file` as `tar czf <archive> -C <source_dir> .` names them (the compiled package
/// format). Symlinks are stored as symlinks; modes, owners and modification times are recorded.
///
/// The archive is written to a temporary file in its directory, synced and renamed into place, so
/// `archive` is either the old file or the complete new one; it ends with mode 0600.
pub fn create(source_dir: &Path, archive: &Path) -> Result<()> {
    let (dir, archive) = split_path(archive)?;
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::ReadSource { path, source }
    };
    let write_error = |source| Error::Write {
        archive: archive.clone(),
        source,
    };
    let source_meta = fs::metadata(source_dir).map_err(read_error(source_dir))?;
    if !source_meta.is_dir() {
        return Err(Error::ReadSource {
            path: source_dir.to_owned(),
            source: io::ErrorKind::NotADirectory.into(),
        });
    }
    let canonical_source = fs::canonicalize(source_dir).map_err(read_error(source_dir))?;
    let canonical_dir = fs::canonicalize(&dir).map_err(write_error)?;
    if canonical_dir.starts_with(&canonical_source) {
        return Err(Error::ArchiveInsideSource {
            archive: archive.clone(),
            source_dir: source_dir.to_owned(),
        });
    }

    let temp = tempfile::Builder::new()
        .prefix(".bosh-agent-archive-")
        .tempfile_in(&dir)
        .map_err(write_error)?;
    {
        let encoder = GzEncoder::new(BufWriter::new(temp.as_file()), Compression::default());
        let mut packer = Packer {
            builder: Builder::new(encoder),
            source_dir,
            archive: &archive,
        };
        packer.append(Path::new(""), &source_meta)?;
        packer.append_children(Path::new(""))?;
        let encoder = packer.builder.into_inner().map_err(write_error)?;
        let mut writer = encoder.finish().map_err(write_error)?;
        writer.flush().map_err(write_error)?;
    }
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(&archive)
        .map_err(|err| write_error(err.error))?;
    File::open(&dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error)
}

/// The first two bytes of every gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Mode of directories the archive needs but does not list, as `mkdir` with umask 022 makes them.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Only the `rwx` bits of an entry's mode are kept.
const MODE_MASK: u32 = 0o777;

/// How many symlinks the kernel follows in one lookup before giving up with `ELOOP`.
const MAX_SYMLINK_EXPANSIONS: usize = 40;

/// Longest name or link name a tar header holds; longer ones go in a GNU long-name entry.
const NAME_FIELD_LEN: usize = 100;

/// What an entry creates, once its names are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
    /// A symlink and its target, as written.
    Symlink(PathBuf),
    /// A hard link and its source: an entry name before validation, a path in the tree after it.
    HardLink(PathBuf),
}

/// Where an entry lands, given the options.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selection {
    /// Not under `only_prefix`.
    Outside,
    /// Under the prefix, but no component is left after stripping.
    Stripped,
    /// This path under the root; empty for the root itself.
    Keep(PathBuf),
}

/// Why an entry name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadName {
    Absolute,
    ParentDir,
}

/// An entry-level failure, before the archive and entry names are attached.
#[derive(Debug)]
enum Problem {
    Io(io::Error),
    ThroughSymlink,
    ReplacesDirectory,
    RootNotDirectory,
}

impl From<io::Error> for Problem {
    fn from(err: io::Error) -> Problem {
        Problem::Io(err)
    }
}

impl Problem {
    fn at(self, archive: &Path, entry: &Path) -> Error {
        let (archive, entry) = (archive.to_owned(), entry.to_owned());
        match self {
            Problem::Io(source) => Error::Extract {
                archive,
                entry,
                source,
            },
            Problem::ThroughSymlink => Error::ThroughSymlink { archive, entry },
            Problem::ReplacesDirectory => Error::ReplacesDirectory { archive, entry },
            Problem::RootNotDirectory => Error::RootNotDirectory { archive, entry },
        }
    }
}

/// A fresh directory next to the target, removed on drop unless it was installed.
#[derive(Debug)]
struct Staging {
    path: PathBuf,
    is_installed: bool,
}

impl Staging {
    fn create_in(parent: &Path) -> io::Result<Staging> {
        let path = tempfile::Builder::new()
            .prefix(".bosh-agent-unpack-")
            .tempdir_in(parent)?
            .keep();
        Ok(Staging {
            path,
            is_installed: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staged tree to `target`, moving an existing `target` aside first and deleting
    /// it afterwards.
    fn install(mut self, target: &Path, parent: &Path) -> io::Result<()> {
        match fs::symlink_metadata(target) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::rename(&self.path, target)?;
                self.is_installed = true;
                return Ok(());
            }
            Err(err) => return Err(err),
            Ok(_) => {}
        }
        // The old tree goes into a fresh directory of its own, so the rename works whether the
        // target is a directory or a file and never collides with anything.
        let holder = tempfile::Builder::new()
            .prefix(".bosh-agent-replaced-")
            .tempdir_in(parent)?
            .keep();
        let aside = holder.join("old");
        if let Err(err) = fs::rename(target, &aside) {
            let _ = remove_tree(&holder);
            return Err(err);
        }
        if let Err(err) = fs::rename(&self.path, target) {
            let _ = fs::rename(&aside, target);
            let _ = remove_tree(&holder);
            return Err(err);
        }
        self.is_installed = true;
        // The new tree is in place; a failure to delete the old one is not a failed extraction.
        let _ = remove_tree(&holder);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.is_installed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// The tree being extracted into the staging directory.
#[derive(Debug)]
struct Tree<'a> {
    root: &'a Path,
    archive: &'a Path,
    /// Paths known to be real directories (not symlinks), relative to the root.
    known_dirs: HashSet<PathBuf>,
    /// Final modes of directories, applied once everything is written.
    dir_modes: BTreeMap<PathBuf, u32>,
    root_mode: u32,
    /// Symlinks created, relative to the root, with the entry names that made them.
    symlinks: BTreeMap<PathBuf, PathBuf>,
}

impl<'a> Tree<'a> {
    fn new(root: &'a Path, archive: &'a Path) -> Tree<'a> {
        Tree {
            root,
            archive,
            known_dirs: HashSet::new(),
            dir_modes: BTreeMap::new(),
            root_mode: IMPLICIT_DIR_MODE,
            symlinks: BTreeMap::new(),
        }
    }

    fn unpack_all(
        &mut self,
        reader: Box<dyn Read>,
        options: &ExtractOptions,
        prefix: Option<&OsStr>,
    ) -> Result<()> {
        let archive_path = self.archive;
        let read_error = |source| Error::Read {
            archive: archive_path.to_owned(),
            source,
        };
        let mut archive = Archive::new(reader);
        let mut is_prefix_found = prefix.is_none();
        for entry in archive.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            let name = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
            let entry_type = entry.header().entry_type();
            let link = entry
                .link_name_bytes()
                .map(|bytes| PathBuf::from(OsStr::from_bytes(&bytes)));
            let not_allowed = |kind: String| Error::NotAllowed {
                archive: archive_path.to_owned(),
                entry: name.clone(),
                kind,
            };
            let Some(kind) = kind_of(entry_type, &entry.path_bytes(), link).map_err(not_allowed)?
            else {
                continue;
            };
            let components = normalize(&name).map_err(|bad| bad_name(bad, archive_path, &name))?;
            let selection = select(&components, prefix, options.strip_components);
            if selection != Selection::Outside {
                is_prefix_found = true;
            }
            let kind = match kind {
                Kind::Symlink(target) => {
                    let location = match &selection {
                        Selection::Keep(path) => path.clone(),
                        _ => components.iter().collect(),
                    };
                    if !stays_inside(&location, &target) {
                        return Err(Error::LinkLeavesTarget {
                            archive: archive_path.to_owned(),
                            entry: name,
                            link: target,
                        });
                    }
                    Kind::Symlink(target)
                }
                Kind::HardLink(source) => {
                    let leaves = || Error::LinkLeavesTarget {
                        archive: archive_path.to_owned(),
                        entry: name.clone(),
                        link: source.clone(),
                    };
                    let source_components = normalize(&source).map_err(|_| leaves())?;
                    match select(&source_components, prefix, options.strip_components) {
                        Selection::Keep(path) if !path.as_os_str().is_empty() => {
                            Kind::HardLink(path)
                        }
                        // The link itself is not extracted: its source needs no place here.
                        _ if !matches!(selection, Selection::Keep(_)) => {
                            Kind::HardLink(PathBuf::new())
                        }
                        // The source lies outside the extracted part, so it is never extracted;
                        // GNU tar would fail to link it as well.
                        _ => return Err(leaves()),
                    }
                }
                other => other,
            };
            let Selection::Keep(path) = selection else {
                continue;
            };
            let mode = entry
                .header()
                .mode()
                .map_err(|source| Problem::Io(source).at(archive_path, &name))?
                & MODE_MASK;
            let size = entry.size();
            self.unpack(&mut entry, size, &path, &kind, mode, &name)
                .map_err(|problem| problem.at(archive_path, &name))?;
        }
        if !is_prefix_found {
            return Err(Error::PrefixNotFound {
                archive: archive_path.to_owned(),
                prefix: options.only_prefix.clone().unwrap_or_default(),
            });
        }
        // Reading to the end checks the gzip trailer (CRC and length), which the tar reader stops
        // short of, as `tar xzf` reports a corrupt stream even after the last entry.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(read_error)?;
        Ok(())
    }

    fn unpack(
        &mut self,
        data: &mut dyn Read,
        size: u64,
        path: &Path,
        kind: &Kind,
        mode: u32,
        name: &Path,
    ) -> Result<(), Problem> {
        if path.as_os_str().is_empty() {
            return match kind {
                Kind::Directory => {
                    self.root_mode = mode;
                    Ok(())
                }
                _ => Err(Problem::RootNotDirectory),
            };
        }
        if let Some(parent) = path.parent() {
            self.real_dirs(parent, true)?;
        }
        let full_path = self.root.join(path);
        match kind {
            Kind::Directory => {
                match fs::symlink_metadata(&full_path) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&full_path)?;
                        create_dir(&full_path)?;
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound => create_dir(&full_path)?,
                    Err(err) => return Err(err.into()),
                }
                self.known_dirs.insert(path.to_owned());
                self.dir_modes.insert(path.to_owned(), mode);
            }
            Kind::File => {
                clear(&full_path)?;
                // `create_new` never follows a symlink at the last component.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&full_path)?;
                let copied = io::copy(data, &mut file)?;
                if copied != size {
                    return Err(Problem::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("archive ends after {copied} of {size} bytes"),
                    )));
                }
                file.set_permissions(fs::Permissions::from_mode(mode))?;
            }
            Kind::Symlink(target) => {
                clear(&full_path)?;
                std::os::unix::fs::symlink(target, &full_path)?;
                self.symlinks.insert(path.to_owned(), name.to_owned());
            }
            Kind::HardLink(source) => {
                if source == path {
                    return Ok(());
                }
                if let Some(parent) = source.parent() {
                    self.real_dirs(parent, false)?;
                }
                let full_source = self.root.join(source);
                let source_meta = fs::symlink_metadata(&full_source)?;
                if source_meta.is_dir() {
                    return Err(Problem::Io(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "hard link to a directory",
                    )));
                }
                clear(&full_path)?;
                // `link(2)` does not follow a symlink source: the new name is the same symlink,
                // now relative to another directory, so it is checked like the others.
                fs::hard_link(&full_source, &full_path)?;
                if source_meta.file_type().is_symlink() {
                    self.symlinks.insert(path.to_owned(), name.to_owned());
                }
            }
        }
        Ok(())
    }

    /// Makes sure every component of `dir` is a real directory, creating missing ones when
    /// `is_creating`; a symlink on the way is refused, so nothing is ever written through one.
    fn real_dirs(&mut self, dir: &Path, is_creating: bool) -> Result<(), Problem> {
        let mut current = PathBuf::new();
        for component in dir.components() {
            current.push(component);
            if self.known_dirs.contains(&current) {
                continue;
            }
            let full_path = self.root.join(&current);
            match fs::symlink_metadata(&full_path) {
                Ok(meta) if meta.file_type().is_symlink() => return Err(Problem::ThroughSymlink),
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(Problem::Io(io::ErrorKind::NotADirectory.into())),
                Err(err) if err.kind() == io::ErrorKind::NotFound && is_creating => {
                    create_dir(&full_path)?;
                    self.dir_modes
                        .entry(current.clone())
                        .or_insert(IMPLICIT_DIR_MODE);
                }
                Err(err) => return Err(err.into()),
            }
            self.known_dirs.insert(current.clone());
        }
        Ok(())
    }

    /// Resolves every symlink in the finished tree and refuses one that ends up outside it.
    fn check_symlinks(&self) -> Result<()> {
        for (path, name) in &self.symlinks {
            let full_path = self.root.join(path);
            let extract_error = |source| Error::Extract {
                archive: self.archive.to_owned(),
                entry: name.clone(),
                source,
            };
            match fs::symlink_metadata(&full_path) {
                Ok(meta) if meta.file_type().is_symlink() => {}
                // A later entry replaced it.
                Ok(_) => continue,
                Err(err) => return Err(extract_error(err)),
            }
            let target = fs::read_link(&full_path).map_err(extract_error)?;
            let dir = path.parent().unwrap_or(Path::new(""));
            if !resolves_inside(self.root, dir, &target).map_err(extract_error)? {
                return Err(Error::LinkLeavesTarget {
                    archive: self.archive.to_owned(),
                    entry: name.clone(),
                    link: target,
                });
            }
        }
        Ok(())
    }

    /// Gives directories their final modes, deepest first, so a read-only directory does not stop
    /// its children from being changed.
    fn apply_dir_modes(&self) -> io::Result<()> {
        for (path, mode) in self.dir_modes.iter().rev() {
            let full_path = self.root.join(path);
            if fs::symlink_metadata(&full_path)?.is_dir() {
                fs::set_permissions(&full_path, fs::Permissions::from_mode(*mode))?;
            }
        }
        fs::set_permissions(self.root, fs::Permissions::from_mode(self.root_mode))
    }
}

/// Writes the entries of a compiled package archive.
struct Packer<'a, W: Write> {
    builder: Builder<W>,
    source_dir: &'a Path,
    archive: &'a Path,
}

impl<W: Write> Packer<'_, W> {
    fn append_children(&mut self, dir: &Path) -> Result<()> {
        let full_dir = self.source_dir.join(dir);
        let read_error = |source| Error::ReadSource {
            path: full_dir.clone(),
            source,
        };
        let mut names = fs::read_dir(&full_dir)
            .and_then(|entries| {
                entries
                    .map(|entry| entry.map(|entry| entry.file_name()))
                    .collect::<io::Result<Vec<OsString>>>()
            })
            .map_err(read_error)?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let full_path = self.source_dir.join(&path);
            let meta = fs::symlink_metadata(&full_path).map_err(|source| Error::ReadSource {
                path: full_path.clone(),
                source,
            })?;
            self.append(&path, &meta)?;
            if meta.is_dir() {
                self.append_children(&path)?;
            }
        }
        Ok(())
    }

    /// Appends one entry named `./<path>`; `path` is empty for the source directory itself.
    fn append(&mut self, path: &Path, meta: &fs::Metadata) -> Result<()> {
        let full_path = self.source_dir.join(path);
        let read_error = |source| Error::ReadSource {
            path: full_path.clone(),
            source,
        };
        let mut name = b"./".to_vec();
        name.extend_from_slice(path.as_os_str().as_bytes());
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        header.set_mode(meta.mode() & 0o7777);
        header.set_size(0);
        let file_type = meta.file_type();
        let result = if file_type.is_dir() {
            if !path.as_os_str().is_empty() {
                name.push(b'/');
            }
            header.set_entry_type(EntryType::Directory);
            append_named(&mut self.builder, &mut header, &name, None, io::empty())
        } else if file_type.is_file() {
            let file = File::open(&full_path).map_err(read_error)?;
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.len());
            let data = ExactReader {
                inner: file,
                remaining: meta.len(),
            };
            append_named(&mut self.builder, &mut header, &name, None, data)
        } else if file_type.is_symlink() {
            let target = fs::read_link(&full_path).map_err(read_error)?;
            header.set_entry_type(EntryType::Symlink);
            let link = target.as_os_str().as_bytes();
            append_named(
                &mut self.builder,
                &mut header,
                &name,
                Some(link),
                io::empty(),
            )
        } else {
            return Err(Error::UnsupportedFile { path: full_path });
        };
        result.map_err(|source| Error::Append {
            path: full_path.clone(),
            archive: self.archive.to_owned(),
            source,
        })
    }
}

/// Reads exactly `remaining` bytes: a file that shrinks while it is archived is an error rather
/// than a corrupt archive.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining).map_or(buf.len(), |left| left.min(buf.len()));
        let read = self.inner.read(&mut buf[..max])?;
        if read == 0 && max > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being archived",
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Appends `header` named `name` (and pointing at `link`), preceded by GNU long-name entries for
/// names that do not fit. `Header::set_path` would drop the leading `./`, so the name bytes are
/// written as they are.
fn append_named<W: Write>(
    builder: &mut Builder<W>,
    header: &mut Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    if name.len() >= NAME_FIELD_LEN {
        append_long_name(builder, EntryType::GNULongName, name)?;
    }
    set_name_field(&mut header.as_old_mut().name, name);
    if let Some(link) = link {
        if link.len() >= NAME_FIELD_LEN {
            append_long_name(builder, EntryType::GNULongLink, link)?;
        }
        set_name_field(&mut header.as_old_mut().linkname, link);
    }
    header.set_cksum();
    builder.append(header, data)
}

/// A GNU `././@LongLink` entry carrying a name for the entry after it, NUL-terminated as GNU tar
/// writes it.
fn append_long_name<W: Write>(
    builder: &mut Builder<W>,
    entry_type: EntryType,
    name: &[u8],
) -> io::Result<()> {
    let mut header = Header::new_gnu();
    set_name_field(&mut header.as_old_mut().name, b"././@LongLink");
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(name.len() as u64 + 1);
    header.set_entry_type(entry_type);
    header.set_cksum();
    builder.append(&header, name.chain(&[0u8][..]))
}

/// Fills a fixed-size name field, truncating (the long-name entry holds the full name).
fn set_name_field(field: &mut [u8; NAME_FIELD_LEN], value: &[u8]) {
    let len = value.len().min(NAME_FIELD_LEN);
    field.fill(0);
    field[..len].copy_from_slice(&value[..len]);
}

/// Opens the archive, decompressing it when it starts with the gzip magic bytes.
fn open_archive(archive: &Path) -> Result<Box<dyn Read>> {
    let open_error = |source| Error::Open {
        archive: archive.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(archive).map_err(open_error)?);
    let is_gzip = reader
        .fill_buf()
        .map_err(open_error)?
        .starts_with(&GZIP_MAGIC);
    if is_gzip {
        // `tar xzf` reads concatenated gzip members as one stream; so do we.
        Ok(Box::new(MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Splits a target into its parent directory (`.` for a bare name) and the cleaned path.
fn split_path(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let file_name = path.file_name().ok_or_else(|| Error::InvalidPath {
        path: path.to_owned(),
    })?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let cleaned = parent.join(file_name);
    Ok((parent, cleaned))
}

/// Parses [`ExtractOptions::only_prefix`]: one plain name, `.` components ignored.
fn parse_prefix(prefix: &str) -> Result<OsString> {
    let invalid = || Error::InvalidPrefix {
        prefix: prefix.to_owned(),
    };
    let components = normalize(Path::new(prefix)).map_err(|_| invalid())?;
    match components.as_slice() {
        [name] => Ok(name.to_os_string()),
        _ => Err(invalid()),
    }
}

/// What an entry of this type creates; `Ok(None)` for entries that carry no file (a pax global
/// header), `Err` with a description for types that are refused.
fn kind_of(
    entry_type: EntryType,
    name: &[u8],
    link: Option<PathBuf>,
) -> Result<Option<Kind>, String> {
    let link = || match link.clone() {
        Some(link) if !link.as_os_str().is_empty() => Ok(link),
        _ => Err("link without a target".to_owned()),
    };
    match entry_type {
        EntryType::Directory => Ok(Some(Kind::Directory)),
        // Pre-POSIX archives mark directories only with a trailing slash.
        EntryType::Regular if name.ends_with(b"/") => Ok(Some(Kind::Directory)),
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Ok(Some(Kind::File)),
        EntryType::Symlink => Ok(Some(Kind::Symlink(link()?))),
        EntryType::Link => Ok(Some(Kind::HardLink(link()?))),
        EntryType::XGlobalHeader => Ok(None),
        EntryType::Char => Err("character device".to_owned()),
        EntryType::Block => Err("block device".to_owned()),
        EntryType::Fifo => Err("fifo".to_owned()),
        other => Err(format!("entry type {:?}", char::from(other.as_byte()))),
    }
}

/// The components of an entry name with `.` removed; absolute names and `..` are refused.
fn normalize(name: &Path) -> Result<Vec<&OsStr>, BadName> {
    let mut components = Vec::new();
    for component in name.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return Err(BadName::Absolute),
            Component::ParentDir => return Err(BadName::ParentDir),
            Component::CurDir => {}
            Component::Normal(part) => components.push(part),
        }
    }
    Ok(components)
}

fn bad_name(bad: BadName, archive: &Path, entry: &Path) -> Error {
    let (archive, entry) = (archive.to_owned(), entry.to_owned());
    match bad {
        BadName::Absolute => Error::AbsolutePath { archive, entry },
        BadName::ParentDir => Error::PathLeavesTarget { archive, entry },
    }
}

/// Applies `only_prefix` and `strip_components` to a normalized entry name.
fn select(components: &[&OsStr], prefix: Option<&OsStr>, strip_components: usize) -> Selection {
    if prefix.is_some_and(|prefix| components.first() != Some(&prefix)) {
        return Selection::Outside;
    }
    if strip_components > 0 && components.len() <= strip_components {
        return Selection::Stripped;
    }
    Selection::Keep(components[strip_components..].iter().collect())
}

/// Whether a symlink at `location` (relative to the root) pointing at `target` stays under the
/// root, judging by the names alone.
fn stays_inside(location: &Path, target: &Path) -> bool {
    let mut depth = location.parent().map_or(0, |dir| dir.components().count());
    for component in target.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return false,
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            Component::Normal(_) => depth += 1,
        }
    }
    true
}

/// One step of a symlink resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Up,
    Down(OsString),
}

/// The steps of a relative link target; `None` for an absolute one.
fn steps(target: &Path) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for component in target.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return None,
            Component::CurDir => {}
            Component::ParentDir => steps.push(Step::Up),
            Component::Normal(name) => steps.push(Step::Down(name.to_owned())),
        }
    }
    Some(steps)
}

/// Whether `target`, read from a symlink in directory `link_dir` (relative to `root`), resolves
/// under `root` the way the kernel resolves it: following the symlinks it meets in the tree, so
/// `..` after a symlink goes to the parent of where the symlink points. Names that do not exist
/// are taken literally, which is never more permissive than the kernel (it stops there).
fn resolves_inside(root: &Path, link_dir: &Path, target: &Path) -> io::Result<bool> {
    let mut current: Vec<OsString> = link_dir
        .components()
        .map(|component| component.as_os_str().to_owned())
        .collect();
    let Some(target_steps) = steps(target) else {
        return Ok(false);
    };
    let mut pending: Vec<Step> = target_steps.into_iter().rev().collect();
    let mut expansions = 0;
    while let Some(step) = pending.pop() {
        match step {
            Step::Up => {
                if current.pop().is_none() {
                    return Ok(false);
                }
            }
            Step::Down(name) => {
                let mut full_path = root.to_path_buf();
                full_path.extend(&current);
                full_path.push(&name);
                match fs::symlink_metadata(&full_path) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        expansions += 1;
                        if expansions > MAX_SYMLINK_EXPANSIONS {
                            // The kernel gives up with ELOOP: the link leads nowhere at all.
                            return Ok(true);
                        }
                        let Some(more) = steps(&fs::read_link(&full_path)?) else {
                            return Ok(false);
                        };
                        pending.extend(more.into_iter().rev());
                    }
                    Ok(_) => current.push(name),
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                        ) =>
                    {
                        current.push(name);
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(true)
}

fn create_dir(path: &Path) -> io::Result<()> {
    // Owner-only while extracting; the final modes come last.
    fs::DirBuilder::new().mode(0o700).create(path)
}

/// Removes whatever non-directory is at `path`, so the entry replaces it (a later entry with the
/// same name wins, as with `tar`); a directory in the way is refused.
fn clear(path: &Path) -> Result<(), Problem> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(Problem::ReplacesDirectory),
        Ok(_) => Ok(fs::remove_file(path)?),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Removes a tree, making its directories writable first if a plain removal fails (an extracted
/// tree may hold read-only directories, which stop a non-root user).
fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path)?;
            fs::remove_dir_all(path)
        }
    }
}

fn make_writable(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(());
    }
    fs::set_permissions(
        path,
        fs::Permissions::from_mode((meta.mode() | 0o700) & 0o7777),
    )?;
    for child in fs::read_dir(path)? {
        make_writable(&child?.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tempfile::TempDir;

    /// One entry of a test archive, written byte for byte so bad names can be built too.
    struct Spec {
        name: &'static str,
        entry_type: EntryType,
        mode: u32,
        link: Option<&'static str>,
        data: &'static [u8],
    }

    fn dir(name: &'static str, mode: u32) -> Spec {
        Spec {
            name,
            entry_type: EntryType::Directory,
            mode,
            link: None,
            data: b"",
        }
    }

    fn file(name: &'static str, mode: u32, data: &'static [u8]) -> Spec {
        Spec {
            name,
            entry_type: EntryType::Regular,
            mode,
            link: None,
            data,
        }
    }

    fn symlink(name: &'static str, target: &'static str) -> Spec {
        Spec {
            name,
            entry_type: EntryType::Symlink,
            mode: 0o777,
            link: Some(target),
            data: b"",
        }
    }

    fn hard_link(name: &'static str, source: &'static str) -> Spec {
        Spec {
            name,
            entry_type: EntryType::Link,
            mode: 0o644,
            link: Some(source),
            data: b"",
        }
    }

    fn special(name: &'static str, entry_type: EntryType) -> Spec {
        Spec {
            name,
            entry_type,
            mode: 0o644,
            link: None,
            data: b"",
        }
    }

    fn tar_bytes(specs: &[Spec]) -> Vec<u8> {
        let mut builder = Builder::new(Vec::new());
        for spec in specs {
            let mut header = Header::new_gnu();
            header.set_entry_type(spec.entry_type);
            header.set_mode(spec.mode);
            header.set_size(spec.data.len() as u64);
            header.set_mtime(1_700_000_000);
            append_named(
                &mut builder,
                &mut header,
                spec.name.as_bytes(),
                spec.link.map(str::as_bytes),
                spec.data,
            )
            .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A temp dir with the archive at `archive.tgz` and the target path `target` (not created).
    fn setup(bytes: &[u8]) -> (TempDir, PathBuf, PathBuf) {
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("archive.tgz");
        fs::write(&archive, bytes).unwrap();
        let target = work.path().join("install").join("target");
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        (work, archive, target)
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    /// Names in the target's parent directory: no staging directory may be left behind.
    fn siblings(target: &Path) -> Vec<OsString> {
        let mut names: Vec<OsString> = fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    fn job_archive() -> Vec<u8> {
        tar_bytes(&[
            dir("bin/", 0o755),
            file("bin/run", 0o755, b"#!/bin/sh\n"),
            file("config.yml", 0o640, b"a: 1\n"),
        ])
    }

    #[test]
    fn extracts_a_plain_tar() {
        let (_work, archive, target) = setup(&job_archive());
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(read(&target.join("bin/run")), "#!/bin/sh\n");
        assert_eq!(read(&target.join("config.yml")), "a: 1\n");
        assert_eq!(siblings(&target), vec![OsString::from("target")]);
    }

    #[test]
    fn extracts_a_gzipped_tar() {
        let (_work, archive, target) = setup(&gzip(&job_archive()));
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(read(&target.join("bin/run")), "#!/bin/sh\n");
        assert_eq!(read(&target.join("config.yml")), "a: 1\n");
    }

    #[test]
    fn dot_slash_names_extract_like_plain_names() {
        let bytes = tar_bytes(&[
            dir("./", 0o750),
            dir("./bin/", 0o755),
            file("./bin/run", 0o755, b"run"),
            file("./.hidden", 0o644, b"hidden"),
        ]);
        let (_work, archive, target) = setup(&gzip(&bytes));
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(read(&target.join("bin/run")), "run");
        assert_eq!(read(&target.join(".hidden")), "hidden");
        // The `./` entry names the target itself.
        assert_eq!(mode(&target), 0o750);
    }

    #[test]
    fn the_target_is_0755_without_a_root_entry() {
        let (_work, archive, target) = setup(&job_archive());
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(mode(&target), 0o755);
    }

    #[test]
    fn only_prefix_and_strip_components_take_one_job_in_either_form() {
        for prefixed in [false, true] {
            let bytes = if prefixed {
                tar_bytes(&[
                    dir("./", 0o755),
                    dir("./job-a/", 0o755),
                    file("./job-a/monit", 0o644, b"a"),
                    dir("./job-a/bin/", 0o755),
                    file("./job-a/bin/ctl", 0o755, b"ctl a"),
                    dir("./job-b/", 0o755),
                    file("./job-b/monit", 0o644, b"b"),
                ])
            } else {
                tar_bytes(&[
                    dir("job-a/", 0o755),
                    file("job-a/monit", 0o644, b"a"),
                    dir("job-a/bin/", 0o755),
                    file("job-a/bin/ctl", 0o755, b"ctl a"),
                    dir("job-b/", 0o755),
                    file("job-b/monit", 0o644, b"b"),
                ])
            };
            let (_work, archive, target) = setup(&gzip(&bytes));
            for prefix in ["job-a", "job-a/", "./job-a"] {
                let options = ExtractOptions {
                    strip_components: 1,
                    only_prefix: Some(prefix.to_owned()),
                };
                extract(&archive, &target, &options).unwrap();
                assert_eq!(read(&target.join("monit")), "a");
                assert_eq!(read(&target.join("bin/ctl")), "ctl a");
                assert!(!target.join("job-b").exists());
                assert!(!target.join("job-a").exists());
            }
        }
    }

    #[test]
    fn strip_components_skips_entries_with_too_few_components() {
        let bytes = tar_bytes(&[
            file("top-level-file", 0o644, b"skipped"),
            dir("pkg/", 0o755),
            file("pkg/lib/libfoo.so", 0o755, b"elf"),
        ]);
        let (_work, archive, target) = setup(&bytes);
        let options = ExtractOptions {
            strip_components: 1,
            only_prefix: None,
        };
        extract(&archive, &target, &options).unwrap();
        assert_eq!(read(&target.join("lib/libfoo.so")), "elf");
        assert!(!target.join("top-level-file").exists());
        // The implicit `lib` directory gets the default mode.
        assert_eq!(mode(&target.join("lib")), 0o755);
    }

    #[test]
    fn only_prefix_without_strip_keeps_the_directory() {
        let bytes = tar_bytes(&[file("a/x", 0o644, b"x"), file("b/y", 0o644, b"y")]);
        let (_work, archive, target) = setup(&bytes);
        let options = ExtractOptions {
            strip_components: 0,
            only_prefix: Some("a".to_owned()),
        };
        extract(&archive, &target, &options).unwrap();
        assert_eq!(read(&target.join("a/x")), "x");
        assert!(!target.join("b").exists());
    }

    #[test]
    fn invalid_prefixes_are_refused() {
        let (_work, archive, target) = setup(&job_archive());
        for prefix in ["a/b", "..", "/abs", "", "."] {
            let options = ExtractOptions {
                strip_components: 1,
                only_prefix: Some(prefix.to_owned()),
            };
            let err = extract(&archive, &target, &options).unwrap_err();
            assert!(
                matches!(err, Error::InvalidPrefix { .. }),
                "{prefix}: {err:?}"
            );
        }
        assert!(!target.exists());
        assert!(siblings(&target).is_empty());
    }

    /// Makes a target holding a marker file, as a previous install would have left it.
    fn existing_target(target: &Path) {
        fs::create_dir_all(target.join("old")).unwrap();
        fs::write(target.join("old/marker"), "previous").unwrap();
    }

    fn assert_untouched(target: &Path) {
        assert_eq!(read(&target.join("old/marker")), "previous");
        let names: Vec<OsString> = fs::read_dir(target)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("old")]);
        assert_eq!(siblings(target), vec![OsString::from("target")]);
    }

    #[test]
    fn a_missing_prefix_is_refused_and_changes_nothing() {
        let (_work, archive, target) = setup(&gzip(&job_archive()));
        existing_target(&target);
        let options = ExtractOptions {
            strip_components: 1,
            only_prefix: Some("other-job".to_owned()),
        };
        let err = extract(&archive, &target, &options).unwrap_err();
        assert!(matches!(err, Error::PrefixNotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "archive {} has no entries under other-job",
                archive.display()
            )
        );
        assert_untouched(&target);
    }

    #[test]
    fn bad_entries_are_refused_and_change_nothing() {
        type Check = fn(&Error) -> bool;
        let cases: Vec<(&str, Vec<Spec>, Check)> = vec![
            (
                "absolute path",
                vec![file("/etc/passwd", 0o644, b"x")],
                |err| matches!(err, Error::AbsolutePath { .. }),
            ),
            (
                "parent component",
                vec![file("a/../../escape", 0o644, b"x")],
                |err| matches!(err, Error::PathLeavesTarget { .. }),
            ),
            ("dot-dot only", vec![dir("../", 0o755)], |err| {
                matches!(err, Error::PathLeavesTarget { .. })
            }),
            (
                "absolute symlink",
                vec![symlink("passwd", "/etc/passwd")],
                |err| matches!(err, Error::LinkLeavesTarget { .. }),
            ),
            (
                "symlink out by dot-dot",
                vec![dir("bin/", 0o755), symlink("bin/up", "../../outside")],
                |err| matches!(err, Error::LinkLeavesTarget { .. }),
            ),
            (
                "symlink chain out",
                // Each name looks harmless, but `self` is the root, so `self/..` is its parent.
                vec![symlink("self", "."), symlink("up", "self/..")],
                |err| matches!(err, Error::LinkLeavesTarget { .. }),
            ),
            (
                "symlink out through a nested link",
                vec![
                    dir("a/", 0o755),
                    symlink("a/b", ".."),
                    symlink("c", "a/b/.."),
                ],
                |err| matches!(err, Error::LinkLeavesTarget { .. }),
            ),
            (
                "write through a symlink",
                vec![
                    dir("real/", 0o755),
                    symlink("lib", "real"),
                    file("lib/x", 0o644, b"x"),
                ],
                |err| matches!(err, Error::ThroughSymlink { .. }),
            ),
            (
                "absolute hard link",
                vec![hard_link("shadow", "/etc/shadow")],
                |err| matches!(err, Error::LinkLeavesTarget { .. }),
            ),
            (
                "hard link by dot-dot",
                vec![hard_link("shadow", "../shadow")],
                |err| matches!(err, Error::LinkLeavesTarget { .. }),
            ),
            (
                "character device",
                vec![
                    file("ok", 0o644, b"x"),
                    special("dev/null", EntryType::Char),
                ],
                |err| matches!(err, Error::NotAllowed { kind, .. } if kind == "character device"),
            ),
            (
                "block device",
                vec![special("sda", EntryType::Block)],
                |err| matches!(err, Error::NotAllowed { kind, .. } if kind == "block device"),
            ),
            (
                "fifo",
                vec![special("pipe", EntryType::Fifo)],
                |err| matches!(err, Error::NotAllowed { kind, .. } if kind == "fifo"),
            ),
            (
                "file replacing a directory",
                vec![
                    dir("d/", 0o755),
                    file("d/x", 0o644, b"x"),
                    file("d", 0o644, b"y"),
                ],
                |err| matches!(err, Error::ReplacesDirectory { .. }),
            ),
            ("root as a file", vec![file(".", 0o644, b"x")], |err| {
                matches!(err, Error::RootNotDirectory { .. })
            }),
        ];
        for (what, specs, check) in cases {
            for compressed in [false, true] {
                let bytes = tar_bytes(&specs);
                let bytes = if compressed { gzip(&bytes) } else { bytes };
                let (_work, archive, target) = setup(&bytes);
                existing_target(&target);
                let err = extract(&archive, &target, &ExtractOptions::default()).unwrap_err();
                assert!(check(&err), "{what}: {err:?}");
                assert_untouched(&target);

                // Without a previous target, none appears.
                fs::remove_dir_all(&target).unwrap();
                extract(&archive, &target, &ExtractOptions::default()).unwrap_err();
                assert!(siblings(&target).is_empty(), "{what}");
            }
        }
    }

    #[test]
    fn bad_entries_outside_the_prefix_are_refused_too() {
        let bytes = tar_bytes(&[
            file("job-a/monit", 0o644, b"a"),
            file("job-b/../../escape", 0o644, b"x"),
        ]);
        let (_work, archive, target) = setup(&bytes);
        let options = ExtractOptions {
            strip_components: 1,
            only_prefix: Some("job-a".to_owned()),
        };
        let err = extract(&archive, &target, &options).unwrap_err();
        assert!(matches!(err, Error::PathLeavesTarget { .. }), "{err:?}");
    }

    #[test]
    fn error_texts_name_the_archive_and_the_entry() {
        let (_work, archive, target) = setup(&tar_bytes(&[file("a/../../x", 0o644, b"")]));
        let err = extract(&archive, &target, &ExtractOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "archive {} entry a/../../x: path leaves the target",
                archive.display()
            )
        );
        let (_work, archive, target) = setup(&tar_bytes(&[symlink("l", "/etc")]));
        let err = extract(&archive, &target, &ExtractOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "archive {} entry l: link to /etc leaves the target",
                archive.display()
            )
        );
    }

    #[test]
    fn corrupt_and_truncated_archives_change_nothing() {
        let good = gzip(&job_archive());
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 0xff;
        let plain = job_archive();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated gzip", good[..good.len() / 2].to_vec()),
            ("bad gzip crc", bad_crc),
            // Cut inside the data of `bin/run`: the header promises more than is there.
            ("truncated tar", plain[..512 * 2 + 4].to_vec()),
            (
                "not a tar",
                b"this is not an archive at all, just some text".repeat(20),
            ),
        ];
        for (what, bytes) in cases {
            let (_work, archive, target) = setup(&bytes);
            existing_target(&target);
            let err = extract(&archive, &target, &ExtractOptions::default()).unwrap_err();
            assert!(
                matches!(err, Error::Read { .. } | Error::Extract { .. }),
                "{what}: {err:?}"
            );
            assert_untouched(&target);
        }
    }

    #[test]
    fn a_missing_archive_is_an_open_error() {
        let work = tempfile::tempdir().unwrap();
        let err = extract(
            &work.path().join("missing.tgz"),
            &work.path().join("target"),
            &ExtractOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
        assert!(!work.path().join("target").exists());
    }

    #[test]
    fn modes_keep_only_the_rwx_bits() {
        let bytes = tar_bytes(&[
            dir("ro/", 0o555),
            file("ro/inside", 0o444, b"r"),
            dir("private/", 0o750),
            file("private/setuid", 0o4755, b"s"),
            file("secret", 0o600, b"p"),
            dir("sticky/", 0o1777),
        ]);
        let (_work, archive, target) = setup(&gzip(&bytes));
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(mode(&target.join("ro")), 0o555);
        assert_eq!(mode(&target.join("ro/inside")), 0o444);
        assert_eq!(read(&target.join("ro/inside")), "r");
        assert_eq!(mode(&target.join("private")), 0o750);
        assert_eq!(mode(&target.join("private/setuid")), 0o755);
        assert_eq!(mode(&target.join("secret")), 0o600);
        assert_eq!(mode(&target.join("sticky")), 0o777);

        // Replacing a tree with read-only directories works, and leaves nothing behind.
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(siblings(&target), vec![OsString::from("target")]);
        make_writable(&target).unwrap();
    }

    #[test]
    fn symlinks_inside_the_tree_are_kept() {
        let bytes = tar_bytes(&[
            dir("lib/", 0o755),
            file("lib/run.sh", 0o755, b"echo hi"),
            dir("bin/", 0o755),
            symlink("bin/run", "../lib/run.sh"),
            symlink("current", "lib"),
            symlink("via-current", "current/../lib/run.sh"),
            symlink("dangling", "not-yet-there"),
        ]);
        let (_work, archive, target) = setup(&bytes);
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(
            fs::read_link(target.join("bin/run")).unwrap(),
            Path::new("../lib/run.sh")
        );
        assert_eq!(read(&target.join("bin/run")), "echo hi");
        assert_eq!(read(&target.join("via-current")), "echo hi");
        assert_eq!(
            fs::read_link(target.join("dangling")).unwrap(),
            Path::new("not-yet-there")
        );
    }

    #[test]
    fn hard_links_to_files_inside_share_the_file() {
        let bytes = tar_bytes(&[
            dir("./bin/", 0o755),
            file("./bin/tool", 0o750, b"tool"),
            hard_link("./bin/alias", "./bin/tool"),
            hard_link("top", "bin/tool"),
        ]);
        let (_work, archive, target) = setup(&gzip(&bytes));
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        let tool = fs::metadata(target.join("bin/tool")).unwrap();
        let alias = fs::metadata(target.join("bin/alias")).unwrap();
        assert_eq!(tool.ino(), alias.ino());
        assert_eq!(tool.ino(), fs::metadata(target.join("top")).unwrap().ino());
        assert_eq!(read(&target.join("top")), "tool");
    }

    #[test]
    fn hard_link_sources_are_stripped_like_names() {
        let bytes = tar_bytes(&[
            file("./job/bin/tool", 0o755, b"tool"),
            hard_link("./job/bin/alias", "./job/bin/tool"),
        ]);
        let (_work, archive, target) = setup(&bytes);
        let options = ExtractOptions {
            strip_components: 1,
            only_prefix: Some("job".to_owned()),
        };
        extract(&archive, &target, &options).unwrap();
        assert_eq!(read(&target.join("bin/alias")), "tool");

        // A source outside the selected job is refused.
        let bytes = tar_bytes(&[
            file("other/secret", 0o600, b"s"),
            hard_link("job/secret", "other/secret"),
        ]);
        let (_work, archive, target) = setup(&bytes);
        let err = extract(&archive, &target, &options).unwrap_err();
        assert!(matches!(err, Error::LinkLeavesTarget { .. }), "{err:?}");
    }

    #[test]
    fn a_hard_link_to_a_symlink_is_checked_where_it_lands() {
        // `a/up -> ..` stays inside; the same link hard-linked at the root points above it.
        let bytes = tar_bytes(&[
            dir("a/", 0o755),
            symlink("a/up", ".."),
            hard_link("up", "a/up"),
        ]);
        let (_work, archive, target) = setup(&bytes);
        existing_target(&target);
        let err = extract(&archive, &target, &ExtractOptions::default()).unwrap_err();
        assert!(matches!(err, Error::LinkLeavesTarget { .. }), "{err:?}");
        assert_untouched(&target);
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let bytes = tar_bytes(&[
            file("config", 0o644, b"first"),
            file("config", 0o600, b"second"),
            symlink("link", "config"),
            file("link", 0o644, b"now a file"),
        ]);
        let (_work, archive, target) = setup(&bytes);
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(read(&target.join("config")), "second");
        assert_eq!(mode(&target.join("config")), 0o600);
        assert!(fs::symlink_metadata(target.join("link")).unwrap().is_file());
    }

    #[test]
    fn replaces_an_existing_target_as_a_whole() {
        let (_work, archive, target) = setup(&gzip(&job_archive()));
        existing_target(&target);
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert!(!target.join("old").exists());
        assert_eq!(read(&target.join("config.yml")), "a: 1\n");
        assert_eq!(siblings(&target), vec![OsString::from("target")]);
    }

    #[test]
    fn pax_global_headers_are_skipped() {
        let mut bytes = Vec::new();
        {
            let mut builder = Builder::new(&mut bytes);
            let mut header = Header::new_ustar();
            header.set_entry_type(EntryType::XGlobalHeader);
            let data = b"52 comment=0123456789012345678901234567890123456789\n";
            header.set_size(data.len() as u64);
            append_named(
                &mut builder,
                &mut header,
                b"pax_global_header",
                None,
                &data[..],
            )
            .unwrap();
            builder.finish().unwrap();
        }
        // Drop the end-of-archive blocks and append a normal archive.
        bytes.truncate(1024);
        bytes.extend(job_archive());
        let (_work, archive, target) = setup(&bytes);
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert!(!target.join("pax_global_header").exists());
        assert_eq!(read(&target.join("config.yml")), "a: 1\n");
    }

    #[test]
    fn create_then_extract_round_trips() {
        let work = tempfile::tempdir().unwrap();
        let source = work.path().join("install");
        fs::create_dir_all(source.join("bin")).unwrap();
        fs::create_dir_all(source.join("lib/empty")).unwrap();
        fs::write(source.join("bin/tool"), "tool").unwrap();
        fs::set_permissions(source.join("bin/tool"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(source.join("lib/data"), vec![7u8; 100_000]).unwrap();
        fs::set_permissions(source.join("lib"), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("../lib/data", source.join("bin/data")).unwrap();
        let long = "d".repeat(120);
        fs::create_dir_all(source.join(&long)).unwrap();
        fs::write(source.join(&long).join("f"), "long").unwrap();
        std::os::unix::fs::symlink(format!("../{long}/f"), source.join("bin/long-link")).unwrap();

        let archive = work.path().join("out").join("package.tgz");
        fs::create_dir_all(archive.parent().unwrap()).unwrap();
        create(&source, &archive).unwrap();
        assert_eq!(mode(&archive), 0o600);
        assert_eq!(siblings(&archive), vec![OsString::from("package.tgz")]);

        // Names are `./`-relative, as `tar czf <tgz> -C <dir> .` writes them.
        let mut names = Vec::new();
        let mut reader = Archive::new(MultiGzDecoder::new(File::open(&archive).unwrap()));
        for entry in reader.entries().unwrap() {
            let entry = entry.unwrap();
            names.push(String::from_utf8(entry.path_bytes().into_owned()).unwrap());
        }
        assert_eq!(names[0], "./");
        assert!(names.contains(&"./bin/".to_owned()), "{names:?}");
        assert!(names.contains(&"./bin/tool".to_owned()), "{names:?}");
        assert!(names.contains(&format!("./{long}/f")), "{names:?}");
        assert!(names.iter().all(|name| name.starts_with("./")), "{names:?}");

        let target = work.path().join("unpacked");
        extract(&archive, &target, &ExtractOptions::default()).unwrap();
        assert_eq!(read(&target.join("bin/tool")), "tool");
        assert_eq!(mode(&target.join("bin/tool")), 0o750);
        assert_eq!(mode(&target.join("lib")), 0o700);
        assert_eq!(
            fs::read(target.join("lib/data")).unwrap(),
            vec![7u8; 100_000]
        );
        assert!(target.join("lib/empty").is_dir());
        assert_eq!(
            fs::read_link(target.join("bin/data")).unwrap(),
            Path::new("../lib/data")
        );
        assert_eq!(read(&target.join("bin/long-link")), "long");
        assert_eq!(read(&target.join(&long).join("f")), "long");
        assert_eq!(mode(&target), mode(&source));
    }

    #[test]
    fn create_refuses_an_archive_inside_its_source() {
        let work = tempfile::tempdir().unwrap();
        fs::write(work.path().join("f"), "f").unwrap();
        let archive = work.path().join("self.tgz");
        let err = create(work.path(), &archive).unwrap_err();
        assert!(matches!(err, Error::ArchiveInsideSource { .. }), "{err:?}");
        assert!(!archive.exists());
    }

    #[test]
    fn create_refuses_sockets_and_keeps_the_old_archive() {
        let work = tempfile::tempdir().unwrap();
        let source = work.path().join("src");
        fs::create_dir(&source).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(source.join("sock")).unwrap();
        let archive = work.path().join("package.tgz");
        fs::write(&archive, "old").unwrap();
        let err = create(&source, &archive).unwrap_err();
        assert!(matches!(err, Error::UnsupportedFile { .. }), "{err:?}");
        assert_eq!(read(&archive), "old");
        let mut names: Vec<OsString> = fs::read_dir(work.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![OsString::from("package.tgz"), OsString::from("src")]
        );
    }

    #[test]
    fn select_applies_prefix_then_strip() {
        let name = |text: &'static str| normalize(Path::new(text)).unwrap();
        let job = OsStr::new("job");
        let cases: Vec<(&str, Option<&OsStr>, usize, Selection)> = vec![
            (
                "job/bin/run",
                Some(job),
                1,
                Selection::Keep("bin/run".into()),
            ),
            (
                "./job/bin/run",
                Some(job),
                1,
                Selection::Keep("bin/run".into()),
            ),
            ("./job/", Some(job), 1, Selection::Stripped),
            ("other/bin", Some(job), 1, Selection::Outside),
            ("./", None, 0, Selection::Keep(PathBuf::new())),
            ("./", None, 1, Selection::Stripped),
            ("a/b/c", None, 2, Selection::Keep("c".into())),
            ("a/./b", None, 0, Selection::Keep("a/b".into())),
        ];
        for (text, prefix, strip, expected) in cases {
            assert_eq!(select(&name(text), prefix, strip), expected, "{text}");
        }
    }

    #[test]
    fn stays_inside_judges_names() {
        let cases = [
            ("bin/run", "../lib/run", true),
            ("bin/run", "../../lib/run", false),
            ("run", "lib/../run", true),
            ("run", "..", false),
            ("a/b/c", "../../x", true),
            ("a/b/c", "./../../../x", false),
            ("x", "/etc", false),
        ];
        for (location, target, expected) in cases {
            assert_eq!(
                stays_inside(Path::new(location), Path::new(target)),
                expected,
                "{location} -> {target}"
            );
        }
    }
}
