//! Reading a release tarball: one pass that judges every entry and hashes every blob, and a second
//! that writes into a staging directory what the first found good.
//!
//! The outer tarball holds `release.MF` and the blobs `jobs/<name>.tgz`, `packages/<name>.tgz`,
//! `compiled_packages/<name>.tgz` and `license.tgz` (bosh-cli `release/archive_reader.go`). Each
//! blob is hashed as it streams past and, in the same read, unpacked in memory as far as its entry
//! names, kinds and links go (`tree::Tree`); `job.MF` is kept. A blob is therefore read once per pass
//! and never held in memory. Gzipped and plain tars are both read, told apart by the gzip magic
//! bytes, at both levels. Other top-level files (`LICENSE`, `NOTICE`) are skipped; symlinks, hard
//! links and special files at the top level are refused.
//!
//! The second pass writes `release.MF`, every listed blob as shipped (`jobs/<name>.tgz`), and its
//! unpacked tree (`jobs/<name>/`), judging every entry again before it is written, so a tarball that
//! changed between the passes cannot slip anything past.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Cursor, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use settings::digest::{Algorithm, Hasher, MultiDigest};

use crate::release::Error;
use crate::release::release_manifest::ReleaseManifest;
use crate::release::tree::{EntryKind, EntryProblem, Tree, normalize};

/// The largest `release.MF` read into memory.
pub const MAX_RELEASE_MF_BYTES: u64 = 16 << 20;
/// The largest `job.MF` read into memory.
pub const MAX_JOB_MF_BYTES: u64 = 1 << 20;

/// The kinds of blob a release tarball holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BlobKind {
    Job,
    Package,
    CompiledPackage,
    License,
}

/// What one pass found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The text of `release.MF`.
    pub release_mf: Option<String>,
    /// Every blob, by kind and name (`license` for the license).
    pub blobs: BTreeMap<(BlobKind, String), BlobScan>,
}

/// What one pass found in one blob.
#[derive(Debug)]
pub(crate) struct BlobScan {
    /// Its digests: the algorithm `release.MF` asks for, or all three when that was not known yet.
    pub digest: MultiDigest,
    /// Its entries.
    pub tree: Tree,
    /// The text of its `job.MF`, for jobs.
    pub job_mf: Option<Vec<u8>>,
}

impl BlobKind {
    /// The directory of the blob and of its unpacked tree.
    pub fn dir(self) -> &'static str {
        match self {
            BlobKind::Job => "jobs",
            BlobKind::Package => "packages",
            BlobKind::CompiledPackage => "compiled_packages",
            BlobKind::License => "",
        }
    }

    /// The blob's path in the tarball and in the extracted release.
    pub fn blob_path(self, name: &str) -> PathBuf {
        match self {
            BlobKind::License => PathBuf::from("license.tgz"),
            kind => Path::new(kind.dir()).join(format!("{name}.tgz")),
        }
    }

    /// Where the blob is unpacked in the extracted release.
    pub fn tree_path(self, name: &str) -> PathBuf {
        match self {
            BlobKind::License => PathBuf::from("license"),
            kind => Path::new(kind.dir()).join(name),
        }
    }
}

/// Whether `name` (of a job or package) can be one path component.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Reads the whole tarball. With `sink`, writes what it reads there, and only the blobs `manifest`
/// lists; without, writes nothing and judges every blob.
pub(crate) fn scan(
    tarball: &Path,
    sink: Option<&Path>,
    manifest: Option<&ReleaseManifest>,
) -> Result<Scan, Error> {
    let read_error = |source| Error::Read {
        tarball: tarball.to_owned(),
        source,
    };
    let file = File::open(tarball).map_err(|source| Error::Open {
        tarball: tarball.to_owned(),
        source,
    })?;
    let mut archive = tar::Archive::new(decompress(io::BufReader::new(file)).map_err(read_error)?);
    let mut scan = Scan::default();
    let mut known_manifest: Option<ReleaseManifest> = manifest.cloned();
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw = entry.path().map_err(read_error)?.into_owned();
        let entry_error = |problem| Error::Entry {
            tarball: tarball.to_owned(),
            blob: None,
            entry: raw.clone(),
            problem,
        };
        let path = normalize(&raw).map_err(entry_error)?;
        match entry.header().entry_type() {
            EntryType::Directory | EntryType::XGlobalHeader => continue,
            EntryType::Regular | EntryType::Continuous => {}
            other => {
                return Err(entry_error(EntryProblem::NotAllowed {
                    kind: kind_name(other),
                }));
            }
        }
        match classify(&path) {
            Top::ReleaseMf => {
                if scan.release_mf.is_some() {
                    return Err(duplicate(tarball, &path));
                }
                let bytes = read_limited(&mut entry, MAX_RELEASE_MF_BYTES)
                    .map_err(read_error)?
                    .ok_or_else(|| {
                        entry_error(EntryProblem::TooLarge {
                            limit: MAX_RELEASE_MF_BYTES,
                        })
                    })?;
                let text = String::from_utf8(bytes)
                    .map_err(|err| read_error(io::Error::new(io::ErrorKind::InvalidData, err)))?;
                if let Some(sink) = sink {
                    write_file(&sink.join("release.MF"), text.as_bytes(), 0o644)?;
                }
                // Knowing the manifest early lets later blobs be hashed with one algorithm only.
                if known_manifest.is_none() {
                    known_manifest = ReleaseManifest::parse(&text).ok();
                }
                scan.release_mf = Some(text);
            }
            Top::Blob(kind, name) => {
                let key = (kind, name);
                if scan.blobs.contains_key(&key) {
                    return Err(duplicate(tarball, &path));
                }
                let expected = known_manifest
                    .as_ref()
                    .map(|manifest| expected_digest(manifest, kind, &key.1));
                if sink.is_some() && matches!(expected, Some(None)) {
                    // Not listed: not written.
                    continue;
                }
                let algorithms = match &expected {
                    Some(Some(digest)) => match &digest.strongest().algorithm {
                        Algorithm::Unknown(_) => all_algorithms(),
                        known => vec![known.clone()],
                    },
                    _ => all_algorithms(),
                };
                let blob = scan_blob(tarball, &mut entry, kind, &key.1, &algorithms, sink)?;
                scan.blobs.insert(key, blob);
            }
            Top::Other => {}
        }
    }
    Ok(scan)
}

/// Where a top-level entry belongs.
enum Top {
    ReleaseMf,
    Blob(BlobKind, String),
    Other,
}

fn classify(path: &Path) -> Top {
    let parts: Vec<&str> = path
        .components()
        .map(|c| c.as_os_str().to_str().unwrap_or(""))
        .collect();
    let blob = |kind, file: &str| match file.strip_suffix(".tgz") {
        Some(name) if is_plain_name(name) => Top::Blob(kind, name.to_owned()),
        _ => Top::Other,
    };
    match parts.as_slice() {
        ["release.MF"] => Top::ReleaseMf,
        ["license.tgz"] => Top::Blob(BlobKind::License, "license".to_owned()),
        ["jobs", file] => blob(BlobKind::Job, file),
        ["packages", file] => blob(BlobKind::Package, file),
        ["compiled_packages", file] => blob(BlobKind::CompiledPackage, file),
        _ => Top::Other,
    }
}

/// The digest `release.MF` gives a blob: `None` when it does not list it.
pub(crate) fn expected_digest(
    manifest: &ReleaseManifest,
    kind: BlobKind,
    name: &str,
) -> Option<MultiDigest> {
    match kind {
        BlobKind::Job => manifest
            .jobs
            .iter()
            .find(|job| job.name == name)
            .map(|job| job.sha1.clone()),
        BlobKind::Package => manifest
            .packages
            .iter()
            .find(|package| package.name == name)
            .map(|package| package.sha1.clone()),
        BlobKind::CompiledPackage => manifest
            .compiled_packages
            .iter()
            .find(|package| package.name == name)
            .map(|package| package.sha1.clone()),
        BlobKind::License => manifest
            .license
            .as_ref()
            .map(|license| license.sha1.clone()),
    }
}

fn all_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
}

/// Hashes one blob while judging (and, with a sink, writing) its entries.
fn scan_blob(
    tarball: &Path,
    blob_reader: &mut impl Read,
    kind: BlobKind,
    name: &str,
    algorithms: &[Algorithm],
    sink: Option<&Path>,
) -> Result<BlobScan, Error> {
    let blob_name = kind.blob_path(name).display().to_string();
    let read_error = |source| Error::ReadBlob {
        tarball: tarball.to_owned(),
        blob: blob_name.clone(),
        source,
    };
    let mut hasher = Hasher::new(algorithms).map_err(|source| Error::Digest {
        tarball: tarball.to_owned(),
        blob: blob_name.clone(),
        source,
    })?;
    let (mut copy, root) = match sink {
        Some(sink) => {
            let blob_path = sink.join(kind.blob_path(name));
            let root = sink.join(kind.tree_path(name));
            create_dir_all(&root)?;
            (
                Some((blob_path.clone(), BufWriter::new(create_file(&blob_path)?))),
                Some(root),
            )
        }
        None => (None, None),
    };
    let mut tee = Tee {
        inner: blob_reader,
        hasher: &mut hasher,
        copy: copy.as_mut().map(|(_, writer)| writer),
    };
    let (tree, job_mf) = {
        let inner = decompress(&mut tee).map_err(read_error)?;
        let mut archive = tar::Archive::new(inner);
        let capture = (kind == BlobKind::Job).then_some(Path::new("job.MF"));
        scan_inner(tarball, &blob_name, &mut archive, root.as_deref(), capture)?
    };
    // The gzip trailer and tar padding past the end marker belong to the blob's digest too.
    io::copy(&mut tee, &mut io::sink()).map_err(read_error)?;
    if let Some((path, mut writer)) = copy {
        writer
            .flush()
            .map_err(|source| Error::Write { path, source })?;
    }
    Ok(BlobScan {
        digest: hasher.finish(),
        tree,
        job_mf,
    })
}

/// Judges every entry of a blob's archive, writing each accepted one under `root` when given.
fn scan_inner<R: Read>(
    tarball: &Path,
    blob: &str,
    archive: &mut tar::Archive<R>,
    root: Option<&Path>,
    capture: Option<&Path>,
) -> Result<(Tree, Option<Vec<u8>>), Error> {
    let read_error = |source| Error::ReadBlob {
        tarball: tarball.to_owned(),
        blob: blob.to_owned(),
        source,
    };
    let mut tree = Tree::default();
    let mut captured = None;
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw = entry.path().map_err(read_error)?.into_owned();
        let entry_error = |problem| Error::Entry {
            tarball: tarball.to_owned(),
            blob: Some(blob.to_owned()),
            entry: raw.clone(),
            problem,
        };
        let path = normalize(&raw).map_err(entry_error)?;
        let link_name = entry
            .link_name()
            .map_err(read_error)?
            .map(|l| l.into_owned());
        let kind = match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => EntryKind::File,
            EntryType::Directory => EntryKind::Dir,
            EntryType::Symlink => EntryKind::Symlink(link_name.unwrap_or_default()),
            EntryType::Link => {
                let target = link_name.unwrap_or_default();
                EntryKind::HardLink(normalize(&target).map_err(|_| {
                    entry_error(EntryProblem::HardLinkTarget {
                        target: target.clone(),
                    })
                })?)
            }
            EntryType::XGlobalHeader => continue,
            other => {
                return Err(entry_error(EntryProblem::NotAllowed {
                    kind: kind_name(other),
                }));
            }
        };
        tree.add(&path, &kind).map_err(entry_error)?;
        let mut bytes = None;
        if kind == EntryKind::File && capture == Some(path.as_path()) {
            let content = read_limited(&mut entry, MAX_JOB_MF_BYTES)
                .map_err(read_error)?
                .ok_or_else(|| {
                    entry_error(EntryProblem::TooLarge {
                        limit: MAX_JOB_MF_BYTES,
                    })
                })?;
            bytes = Some(content);
        }
        if let Some(root) = root {
            let mode = entry.header().mode().unwrap_or(0o644);
            write_entry(root, &path, &kind, &mut entry, mode, bytes.as_deref())?;
        }
        if bytes.is_some() {
            captured = bytes;
        }
    }
    tree.check_links()
        .map_err(|(entry, problem)| Error::Entry {
            tarball: tarball.to_owned(),
            blob: Some(blob.to_owned()),
            entry,
            problem,
        })?;
    Ok((tree, captured))
}

/// Writes one accepted entry under `root`. The tree guarantees no parent is a link or a file.
fn write_entry(
    root: &Path,
    path: &Path,
    kind: &EntryKind,
    content: &mut impl Read,
    mode: u32,
    captured: Option<&[u8]>,
) -> Result<(), Error> {
    let destination = root.join(path);
    let write_error = |source| Error::Write {
        path: destination.clone(),
        source,
    };
    if *kind == EntryKind::Dir {
        return create_dir_all(&destination);
    }
    if let Some(parent) = destination.parent() {
        create_dir_all(parent)?;
    }
    // A later entry of one name replaces an earlier file or link, as with tar; never a directory
    // (the tree refuses that).
    match fs::symlink_metadata(&destination) {
        Ok(_) => fs::remove_file(&destination).map_err(write_error)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(write_error(err)),
    }
    match kind {
        EntryKind::File => {
            let mut file = create_file(&destination)?;
            match captured {
                Some(bytes) => file.write_all(bytes),
                None => io::copy(content, &mut file).map(|_| ()),
            }
            .map_err(write_error)?;
            // Only permission bits are kept, and the director can always read what it unpacked.
            file.set_permissions(fs::Permissions::from_mode((mode & 0o777) | 0o600))
                .map_err(write_error)
        }
        EntryKind::Symlink(target) => {
            std::os::unix::fs::symlink(target, &destination).map_err(write_error)
        }
        EntryKind::HardLink(target) => {
            fs::hard_link(root.join(target), &destination).map_err(write_error)
        }
        EntryKind::Dir => Ok(()),
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = create_file(path)?;
    file.write_all(bytes)
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

fn create_file(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

fn create_dir_all(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

fn duplicate(tarball: &Path, path: &Path) -> Error {
    Error::Duplicate {
        tarball: tarball.to_owned(),
        entry: path.display().to_string(),
    }
}

/// Gzip or plain tar, told apart by the magic bytes.
fn decompress<'a, R: Read + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 2];
    let mut filled = 0;
    while filled < magic.len() {
        match reader.read(&mut magic[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    let start = Cursor::new(magic[..filled].to_vec());
    if filled == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            start.chain(reader),
        )))
    } else {
        Ok(Box::new(start.chain(reader)))
    }
}

/// Everything `reader` has, unless that is more than `limit` bytes.
fn read_limited(reader: &mut impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

fn kind_name(kind: EntryType) -> String {
    match kind {
        EntryType::Symlink => "symlink".to_owned(),
        EntryType::Link => "hard link".to_owned(),
        EntryType::Char => "character device".to_owned(),
        EntryType::Block => "block device".to_owned(),
        EntryType::Fifo => "fifo".to_owned(),
        other => format!("entry type {:?}", other.as_byte() as char),
    }
}

/// Passes reads through, hashing them and copying them to the blob file.
struct Tee<'a, R> {
    inner: R,
    hasher: &'a mut Hasher,
    copy: Option<&'a mut BufWriter<File>>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.write_all(&buf[..read])?;
        if let Some(copy) = &mut self.copy {
            copy.write_all(&buf[..read])?;
        }
        Ok(read)
    }
}

// The integration tests' tarball builder, shared rather than written twice.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../tests/support/release_builder.rs"]
mod release_builder;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tarball::release_builder::{Entry, ReleaseBuilder, sha1_hex, tar, tgz};

    fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join("release.tgz");
        fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn the_judging_pass_finds_bad_entries_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let builder = ReleaseBuilder::new("r", "1").package_with(
            "evil",
            &[],
            &[
                Entry::File("ok", b"fine".to_vec(), 0o644),
                Entry::File("../x", b"x".to_vec(), 0o644),
            ],
        );
        let tarball = write(dir.path(), &builder.build());
        let err = scan(&tarball, None, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Entry {
                    problem: EntryProblem::LeavesTree,
                    ..
                }
            ),
            "{err}"
        );
        let files: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "only the tarball itself");
    }

    #[test]
    fn a_blob_digest_covers_every_byte_and_plain_tars_are_read() {
        let dir = tempfile::tempdir().unwrap();
        // An uncompressed package blob with extra zero blocks after the end marker.
        let mut blob = tar(&[Entry::File("packaging", b"true\n".to_vec(), 0o755)]);
        blob.extend_from_slice(&[0u8; 2048]);
        let outer = tar(&[Entry::File("packages/plain.tgz", blob.clone(), 0o644)]);
        let tarball = write(dir.path(), &outer);
        let scan = scan(&tarball, None, None).unwrap();
        let found = &scan.blobs[&(BlobKind::Package, "plain".to_owned())];
        let sha1 = found
            .digest
            .digests()
            .iter()
            .find(|d| d.algorithm == Algorithm::Sha1)
            .unwrap();
        assert_eq!(sha1.hex, sha1_hex(&blob));
        assert!(found.tree.is_file(Path::new("packaging")));
        assert!(scan.release_mf.is_none());
    }

    #[test]
    fn with_a_manifest_only_listed_blobs_are_written_and_hashed_once() {
        let dir = tempfile::tempdir().unwrap();
        let builder = ReleaseBuilder::new("r", "1")
            .package("listed", &[])
            .job("web", &[]);
        let tarball = write(dir.path(), &builder.build());
        let manifest = ReleaseManifest::parse(&builder.manifest()).unwrap();
        let sink = dir.path().join("sink");
        fs::create_dir(&sink).unwrap();
        let scanned = scan(&tarball, Some(&sink), Some(&manifest)).unwrap();
        assert!(sink.join("release.MF").is_file());
        assert!(sink.join("packages/listed.tgz").is_file());
        assert!(sink.join("packages/listed/packaging").is_file());
        assert!(sink.join("jobs/web/job.MF").is_file());
        // Hashed with the one algorithm release.MF uses.
        let digest = &scanned.blobs[&(BlobKind::Package, "listed".to_owned())].digest;
        assert_eq!(digest.digests().len(), 1);

        // A blob release.MF does not list is not written.
        let empty = ReleaseBuilder::new("r", "1");
        let unlisted = tgz(&[
            Entry::File("release.MF", empty.manifest().into_bytes(), 0o644),
            Entry::File(
                "packages/unlisted.tgz",
                tgz(&[Entry::File("packaging", Vec::new(), 0o644)]),
                0o644,
            ),
        ]);
        let tarball = write(&sink, &unlisted);
        let manifest = ReleaseManifest::parse(&empty.manifest()).unwrap();
        let sink = dir.path().join("sink2");
        fs::create_dir(&sink).unwrap();
        let scanned = scan(&tarball, Some(&sink), Some(&manifest)).unwrap();
        assert!(scanned.blobs.is_empty());
        assert!(!sink.join("packages").exists());
        // Without a sink it is still judged.
        let judged = scan(&tarball, None, None).unwrap();
        assert!(
            judged
                .blobs
                .contains_key(&(BlobKind::Package, "unlisted".to_owned()))
        );
    }

    #[test]
    fn names_that_cannot_be_one_path_component_are_not_blobs() {
        for name in ["", ".", "..", "a/b", "nul\0"] {
            assert!(!is_plain_name(name), "{name:?}");
        }
        assert!(is_plain_name("ruby-3.1"));
        assert!(matches!(classify(Path::new("jobs/..tgz")), Top::Other));
        assert!(matches!(classify(Path::new("jobs/a/b.tgz")), Top::Other));
        assert!(matches!(
            classify(Path::new("jobs/web.tgz")),
            Top::Blob(BlobKind::Job, _)
        ));
    }
}
