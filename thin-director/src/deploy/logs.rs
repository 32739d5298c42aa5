//! `logs` (`bosh logs`, the director's `jobs/fetch_logs.rb`): each chosen instance's agent packs
//! its job logs (or its own with `agent`, or the system's with `system`) with `fetch_logs` and
//! uploads the tarball to the director's blobstore; the director checks the blob against the SHA-1
//! the agent answered, unpacks it into `<dir>/<group>.<id>/` and deletes the blob.
//!
//! A tarball comes from a VM, so it is unpacked as warily as a release ([`crate::release`]'s
//! rules, `release/tree.rs`): no absolute names, no `..`, nothing written through a link, no link
//! that leads out of the tree, no devices or fifos. It is unpacked into a staging directory beside
//! the target, which replaces an earlier `<group>.<id>/` only once complete; a bad tarball leaves
//! nothing behind. Unlike the bosh CLI, which keeps the tarball with a timestamp in its name, the
//! director keeps the latest logs of each instance, unpacked.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sha1::{Digest as _, Sha1};
use tar::EntryType;

use crate::agent_client::AgentClient;
use crate::deploy::director::Director;
use crate::deploy::{Error as DeployError, Result as DeployResult, instance};
use crate::release::EntryProblem;
use crate::release::tree::{EntryKind, Tree, normalize};
use crate::state;

/// Why an instance's logs could not be brought home.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent answered with a blob the blobstore does not have.
    #[error("the logs blob {blobstore_id} is not in the blobstore")]
    MissingBlob {
        /// The blob.
        blobstore_id: String,
    },
    /// The blob is not what the agent said it uploaded.
    #[error("the logs blob {blobstore_id} has SHA-1 {found}, but the agent answered {expected}")]
    Digest {
        /// The blob.
        blobstore_id: String,
        /// The SHA-1 the agent answered.
        expected: String,
        /// The SHA-1 of the blob.
        found: String,
    },
    /// An entry of the tarball would leave its directory or is of a kind not unpacked.
    #[error("logs tarball entry {}: {problem}", .entry.display())]
    Entry {
        /// The entry name as written.
        entry: PathBuf,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// The tarball could not be read.
    #[error("reading the logs tarball {}", .path.display())]
    Read {
        /// The tarball.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be written.
    #[error("writing {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Which logs: `fetch_logs`'s `log_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    /// The jobs' logs (`sys/log`), the default.
    Job,
    /// The agent's own logs (`bosh logs --agent`).
    Agent,
    /// The system's logs (`bosh logs --system`).
    System,
}

impl LogType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Job => "job",
            LogType::Agent => "agent",
            LogType::System => "system",
        }
    }
}

/// Where one instance's logs went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `<group>/<id> (<index>)`.
    pub instance: String,
    /// The directory they were unpacked into, `<dir>/<group>.<id>`.
    pub dir: PathBuf,
}

/// Fetches the logs of the instances of `deployment` that `selector` chooses (all when `None`;
/// see [`select`]) into `dir`. Every instance is asked at once; the first failure, naming its
/// instance, is returned once all are done (no blob is left behind either way).
pub async fn logs(
    director: &Director,
    deployment: &str,
    selector: Option<&str>,
    log_type: LogType,
    dir: &Path,
) -> DeployResult<Vec<Fetched>> {
    let recorded = director
        .instances_of(deployment)
        .await
        .ok_or_else(|| DeployError::Plan(format!("deployment '{deployment}' does not exist")))?;
    let chosen = select(&recorded, selector).map_err(DeployError::Plan)?;
    // Asking for every instance skips those without a VM (an errand not kept alive, a VM a failed
    // deploy did not make); naming one that has none is an error.
    let chosen: Vec<&state::Instance> = if selector.is_none() {
        chosen.into_iter().filter(|i| i.vm.is_some()).collect()
    } else {
        chosen
    };
    let fetches = chosen
        .iter()
        .map(|record| fetch_one(director, record, log_type, dir));
    let results = futures_util::future::join_all(fetches).await;
    results.into_iter().collect()
}

/// The instances `selector` names: every one for `None`, a group's for `<group>`, one for
/// `<group>/<index>` or `<group>/<id>`; an error when it names none.
pub fn select<'r>(
    records: &'r [state::Instance],
    selector: Option<&str>,
) -> Result<Vec<&'r state::Instance>, String> {
    let Some(selector) = selector else {
        return Ok(records.iter().collect());
    };
    let chosen: Vec<&state::Instance> = match selector.split_once('/') {
        Some((group, which)) => records
            .iter()
            .filter(|r| r.group == group && (r.id == which || r.index.to_string() == which))
            .collect(),
        None => records.iter().filter(|r| r.group == selector).collect(),
    };
    if chosen.is_empty() {
        return Err(format!("no instance matches '{selector}'"));
    }
    Ok(chosen)
}

/// Checks that the file at `path` has SHA-1 `expected` (hex).
pub fn verify_sha1(path: &Path, blobstore_id: &str, expected: &str) -> Result<(), Error> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = Sha1::new();
    io::copy(&mut file, &mut hasher).map_err(read_error)?;
    let found: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if found.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(Error::Digest {
            blobstore_id: blobstore_id.to_owned(),
            expected: expected.to_owned(),
            found,
        })
    }
}

/// Unpacks the gzipped (or plain) tarball at `tarball` into `target`, replacing what was there
/// only once every entry was found good and written (see the module docs).
pub fn unpack(tarball: &Path, target: &Path) -> Result<(), Error> {
    let parent = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(write_error(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".logs-")
        .tempdir_in(parent)
        .map_err(write_error(parent))?;
    let file = File::open(tarball).map_err(|source| Error::Read {
        path: tarball.to_owned(),
        source,
    })?;
    unpack_into(file, tarball, staging.path())?;
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(target).map_err(write_error(target))?,
        Ok(_) => fs::remove_file(target).map_err(write_error(target))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(write_error(target)(err)),
    }
    let staged = staging.keep();
    fs::rename(&staged, target).map_err(|source| {
        let _ = fs::remove_dir_all(&staged);
        Error::Write {
            path: target.to_owned(),
            source,
        }
    })?;
    // The staging directory was made private; the logs are the operator's to read.
    fs::set_permissions(target, fs::Permissions::from_mode(0o755)).map_err(write_error(target))
}

/// Fetches, checks, unpacks and deletes one instance's logs.
async fn fetch_one(
    director: &Director,
    record: &state::Instance,
    log_type: LogType,
    dir: &Path,
) -> DeployResult<Fetched> {
    let name = format!("{}/{} ({})", record.group, record.id, record.index);
    let step = director.report.step("Fetching logs", &name);
    let result = async {
        let vm = record
            .vm
            .as_ref()
            .ok_or_else(|| DeployError::Plan(format!("{name} has no VM")))?;
        let agent = AgentClient::new(&director.bus, &vm.agent_id);
        let agent_error = |source| DeployError::Agent {
            instance: name.clone(),
            source,
        };
        // Agents reconnect to a freshly started director within seconds.
        agent
            .wait_until_ready(instance::RECONNECT_WAIT)
            .await
            .map_err(agent_error)?;
        let blob = agent
            .fetch_logs(log_type.as_str(), &[])
            .await
            .map_err(agent_error)?;
        let target = dir.join(format!("{}.{}", record.group, record.id));
        let (blob_id, target_dir) = (blob.blobstore_id.clone(), target.clone());
        let fetched = director.blobs.fetch(&blob_id).await;
        let unpacked = match fetched {
            Err(err) => Err(err),
            Ok(file) => tokio::task::spawn_blocking(move || {
                let file = file.ok_or_else(|| Error::MissingBlob {
                    blobstore_id: blob_id.clone(),
                })?;
                verify_sha1(file.path(), &blob_id, &blob.sha1)?;
                unpack(file.path(), &target_dir)
            })
            .await
            .map_err(|err| DeployError::Plan(err.to_string()))?
            .map_err(|source| DeployError::Logs {
                instance: name.clone(),
                source,
            }),
        };
        // The blob is the director's to drop, whatever became of it.
        if let Err(err) = director.blobs.delete(&blob.blobstore_id).await {
            tracing::warn!(blob_id = %blob.blobstore_id, error = %err, "deleting a logs blob");
        }
        unpacked?;
        Ok(Fetched {
            instance: name.clone(),
            dir: target,
        })
    }
    .await;
    step.finish(result)
}

/// Unpacks every entry of the archive read from `reader` under `root`, judging each first.
fn unpack_into(reader: impl Read, tarball: &Path, root: &Path) -> Result<(), Error> {
    let read_error = |source| Error::Read {
        path: tarball.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(decompress(reader).map_err(read_error)?);
    let mut tree = Tree::default();
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw = entry.path().map_err(read_error)?.into_owned();
        let entry_error = |problem| Error::Entry {
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
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName => continue,
            other => {
                return Err(entry_error(EntryProblem::NotAllowed {
                    kind: format!("entry type {:?}", other.as_byte() as char),
                }));
            }
        };
        // Judged against everything before it: never below a link or a file, never over a
        // directory.
        tree.add(&path, &kind).map_err(entry_error)?;
        let mode = entry.header().mode().unwrap_or(0o644);
        write_entry(root, &path, &kind, &mut entry, mode)?;
    }
    // A symlink may only be judged once every other is known; until then nothing was written
    // through one, and the staging directory goes if one leads out.
    tree.check_links()
        .map_err(|(entry, problem)| Error::Entry { entry, problem })
}

/// Writes one accepted entry under `root`.
fn write_entry(
    root: &Path,
    path: &Path,
    kind: &EntryKind,
    content: &mut impl Read,
    mode: u32,
) -> Result<(), Error> {
    let destination = root.join(path);
    if *kind == EntryKind::Dir {
        return fs::create_dir_all(&destination).map_err(write_error(&destination));
    }
    if let Some(parent) = destination.parent() {
        fs::create_dir_all(parent).map_err(write_error(parent))?;
    }
    // A later entry of one name replaces an earlier file or link, as with tar (the tree refuses
    // replacing a directory).
    match fs::symlink_metadata(&destination) {
        Ok(_) => fs::remove_file(&destination).map_err(write_error(&destination))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(write_error(&destination)(err)),
    }
    match kind {
        EntryKind::File => {
            let mut file = File::create_new(&destination).map_err(write_error(&destination))?;
            io::copy(content, &mut file).map_err(write_error(&destination))?;
            // Only permission bits are kept, and the operator can always read the logs.
            file.set_permissions(fs::Permissions::from_mode((mode & 0o777) | 0o600))
                .map_err(write_error(&destination))
        }
        EntryKind::Symlink(target) => {
            std::os::unix::fs::symlink(target, &destination).map_err(write_error(&destination))
        }
        EntryKind::HardLink(target) => {
            fs::hard_link(root.join(target), &destination).map_err(write_error(&destination))
        }
        EntryKind::Dir => Ok(()),
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
    let start = io::Cursor::new(magic[..filled].to_vec());
    if filled == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            start.chain(reader),
        )))
    } else {
        Ok(Box::new(start.chain(reader)))
    }
}

fn write_error(path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Write { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry: its name (written raw), kind, and content or link target.
    type Spec = (&'static str, EntryType, &'static str);

    /// A gzipped tarball of `entries`.
    fn tarball(dir: &Path, entries: &[Spec]) -> PathBuf {
        let path = dir.join("logs.tgz");
        let encoder = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut builder = tar::Builder::new(encoder);
        for (name, kind, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o640);
            // `set_path` refuses `..`; the raw name field takes anything, as a hostile VM's would.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            match kind {
                EntryType::Symlink | EntryType::Link => {
                    header.set_link_name(content).unwrap();
                    header.set_size(0);
                    header.set_cksum();
                    builder.append(&header, io::empty()).unwrap();
                }
                _ => {
                    header.set_size(content.len() as u64);
                    header.set_cksum();
                    builder.append(&header, content.as_bytes()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap().finish().unwrap();
        path
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(at) = stack.pop() {
            for entry in fs::read_dir(&at).unwrap() {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path);
                }
                found.push(relative);
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_logs_tarball_is_unpacked_replacing_the_earlier_logs() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out/hello.abc");
        fs::create_dir_all(target.join("old")).unwrap();
        let tgz = tarball(
            dir.path(),
            &[
                ("./", EntryType::Directory, ""),
                ("./hello/", EntryType::Directory, ""),
                ("./hello/hello.stdout.log", EntryType::Regular, "Hello\n"),
                ("./hello/current", EntryType::Symlink, "hello.stdout.log"),
            ],
        );
        unpack(&tgz, &target).unwrap();
        assert_eq!(
            listing(&target),
            ["hello", "hello/current", "hello/hello.stdout.log"]
        );
        assert_eq!(
            fs::read_to_string(target.join("hello/current")).unwrap(),
            "Hello\n"
        );
        let mode = fs::metadata(target.join("hello/hello.stdout.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // Nothing but the target is left beside it.
        assert_eq!(listing(&dir.path().join("out")).len(), 4);
    }

    #[test]
    fn entries_that_would_leave_the_directory_leave_nothing_behind() {
        let cases: [(&str, &[Spec], &str); 6] = [
            (
                "absolute",
                &[("/etc/passwd", EntryType::Regular, "x")],
                "absolute path",
            ),
            (
                "climbing",
                &[("a/../../escape", EntryType::Regular, "x")],
                "path leaves the target",
            ),
            (
                "link out",
                &[("out", EntryType::Symlink, "/etc")],
                "link to /etc leaves the target",
            ),
            (
                "links out together",
                &[
                    ("a/up", EntryType::Symlink, ".."),
                    ("b/out", EntryType::Symlink, "../a/up/.."),
                ],
                "link to ../a/up/.. leaves the target",
            ),
            (
                "through a link",
                &[
                    ("d", EntryType::Symlink, "."),
                    ("d/f", EntryType::Regular, "x"),
                ],
                "path goes through a link or a file",
            ),
            (
                "device",
                &[("null", EntryType::Char, "")],
                "entry type '3' not allowed",
            ),
        ];
        for (what, entries, problem) in cases {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("out/web.1");
            let tgz = tarball(dir.path(), entries);
            let err = unpack(&tgz, &target).unwrap_err();
            assert!(
                matches!(&err, Error::Entry { .. }) && err.to_string().ends_with(problem),
                "{what}: {err}"
            );
            assert!(listing(&dir.path().join("out")).is_empty(), "{what}");
        }
    }

    #[test]
    fn a_blob_with_another_sha1_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        fs::write(&path, b"logs").unwrap();
        // `printf logs | sha1sum`
        let sha1 = "474c797713f37901928aafb6adbae0241d1750bd";
        verify_sha1(&path, "b-1", sha1).unwrap();
        verify_sha1(&path, "b-1", &sha1.to_uppercase()).unwrap();
        let err = verify_sha1(&path, "b-1", &"0".repeat(40)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the logs blob b-1 has SHA-1 {sha1}, but the agent answered {}",
                "0".repeat(40)
            )
        );
    }

    #[test]
    fn selectors_pick_all_a_group_or_one_instance() {
        let record = |group: &str, index: u32, id: &str| state::Instance {
            group: group.into(),
            index,
            id: id.into(),
            ..state::Instance::default()
        };
        let records = [
            record("hello", 0, "a0"),
            record("hello", 1, "b1"),
            record("other", 0, "c0"),
        ];
        let ids = |selector| -> Vec<String> {
            select(&records, selector)
                .unwrap()
                .iter()
                .map(|r| r.id.clone())
                .collect()
        };
        assert_eq!(ids(None), ["a0", "b1", "c0"]);
        assert_eq!(ids(Some("hello")), ["a0", "b1"]);
        assert_eq!(ids(Some("hello/1")), ["b1"]);
        assert_eq!(ids(Some("hello/a0")), ["a0"]);
        assert_eq!(
            select(&records, Some("hello/7")).unwrap_err(),
            "no instance matches 'hello/7'"
        );
        assert_eq!(
            select(&records, Some("nope")).unwrap_err(),
            "no instance matches 'nope'"
        );
    }
}
