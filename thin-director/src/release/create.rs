//! Making a release tarball from a release directory (a subset of `bosh create-release`), so that
//! a release kept as plain files (like `examples/hello-release`) can be deployed:
//!
//! ```text
//! jobs/<job>/spec          job.MF (name, templates, packages, properties)
//! jobs/<job>/monit
//! jobs/<job>/templates/…
//! packages/<pkg>/spec      name, dependencies
//! packages/<pkg>/packaging and the package's files: everything in the directory but `spec`
//! ```
//!
//! Each job and package tarball is deterministic (sorted entries, mtime 0, owner 0); its fingerprint
//! is the SHA-1 over its files' paths, modes and contents, and is also its version, as for a dev
//! release. The result is read back with [`Release::extract`](super::Release::extract)'s checks
//! before anyone deploys it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest as _, Sha1};

/// Why a release could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `spec` does not parse.
    #[error("{}: {message}", .path.display())]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
struct PackageSpec {
    name: String,
    #[serde(default)]
    dependencies: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct JobSpecName {
    name: String,
}

#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    version: String,
    fingerprint: String,
    sha1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dependencies: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct Manifest {
    name: String,
    version: String,
    commit_hash: String,
    uncommitted_changes: bool,
    jobs: Vec<Entry>,
    packages: Vec<Entry>,
}

/// Makes `<output>` from the release directory `dir`, naming the release `name` at `version`.
pub fn create(dir: &Path, name: &str, version: &str, output: &Path) -> Result<(), Error> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut packages = Vec::new();
    for package_dir in subdirs(&dir.join("packages"))? {
        let spec_path = package_dir.join("spec");
        let spec: PackageSpec = read_yaml(&spec_path)?;
        let files = files_of(&package_dir, &["spec"])?;
        let (fingerprint, tarball) = pack(&files, "")?;
        packages.push(Entry {
            name: spec.name.clone(),
            version: fingerprint.clone(),
            fingerprint,
            sha1: hex(&Sha1::digest(&tarball)),
            dependencies: Some(spec.dependencies.unwrap_or_default()),
        });
        blobs.push((format!("packages/{}.tgz", spec.name), tarball));
    }
    let mut jobs = Vec::new();
    for job_dir in subdirs(&dir.join("jobs"))? {
        let spec_path = job_dir.join("spec");
        let spec: JobSpecName = read_yaml(&spec_path)?;
        let mut files = files_of(&job_dir, &["spec"])?;
        let spec_bytes = read(&spec_path)?;
        files.insert("job.MF".to_owned(), (0o644, spec_bytes));
        let (fingerprint, tarball) = pack(&files, "")?;
        jobs.push(Entry {
            name: spec.name.clone(),
            version: fingerprint.clone(),
            fingerprint,
            sha1: hex(&Sha1::digest(&tarball)),
            dependencies: None,
        });
        blobs.push((format!("jobs/{}.tgz", spec.name), tarball));
    }
    let manifest = Manifest {
        name: name.to_owned(),
        version: version.to_owned(),
        commit_hash: String::new(),
        uncommitted_changes: false,
        jobs,
        packages,
    };
    let manifest = serde_yaml_ng::to_string(&manifest).map_err(|err| Error::Spec {
        path: output.to_owned(),
        message: err.to_string(),
    })?;
    let mut outer: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    outer.insert("release.MF".to_owned(), (0o644, manifest.into_bytes()));
    for (path, bytes) in blobs {
        outer.insert(path, (0o644, bytes));
    }
    let (_, tarball) = pack(&outer, "./")?;
    let io = |source| Error::Io {
        path: output.to_owned(),
        source,
    };
    let tmp = output.with_extension("part");
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(&tarball).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, output).map_err(io)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    serde_yaml_ng::from_slice(&read(path)?).map_err(|err| Error::Spec {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

/// The directories in `dir`, sorted; none when it does not exist.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Every regular file under `dir` (relative path → mode, bytes), but the top-level `skip` names.
fn files_of(dir: &Path, skip: &[&str]) -> Result<BTreeMap<String, (u32, Vec<u8>)>, Error> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let entries = fs::read_dir(&current).map_err(|source| Error::Io {
            path: current.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| Error::Io {
                    path: current.clone(),
                    source,
                })?
                .path();
            let relative = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if skip.contains(&relative.as_str()) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                files.insert(relative, (mode, read(&path)?));
            }
        }
    }
    Ok(files)
}

/// A deterministic `.tgz` of `files` (each name prefixed with `prefix`) and the files' fingerprint.
fn pack(
    files: &BTreeMap<String, (u32, Vec<u8>)>,
    prefix: &str,
) -> Result<(String, Vec<u8>), Error> {
    let mut fingerprint = Sha1::new();
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    let io = |source| Error::Io {
        path: PathBuf::from("<tarball>"),
        source,
    };
    for (name, (mode, bytes)) in files {
        fingerprint.update(name.as_bytes());
        fingerprint.update(format!("{mode:o}").as_bytes());
        fingerprint.update(Sha1::digest(bytes));
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("{prefix}{name}"), bytes.as_slice())
            .map_err(io)?;
    }
    let tarball = builder
        .into_inner()
        .and_then(|encoder| encoder.finish())
        .map_err(io)?;
    Ok((hex(&fingerprint.finalize()), tarball))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_release_directory_becomes_a_tarball_the_reader_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        write(&src.join("packages/lib/spec"), "name: lib\n", 0o644);
        write(&src.join("packages/lib/packaging"), "true\n", 0o755);
        write(
            &src.join("packages/app/spec"),
            "name: app\ndependencies: [lib]\n",
            0o644,
        );
        write(&src.join("packages/app/packaging"), "true\n", 0o755);
        write(
            &src.join("packages/app/src/main.c"),
            "int main(){}\n",
            0o644,
        );
        write(
            &src.join("jobs/web/spec"),
            "name: web\ntemplates: {ctl.erb: bin/ctl}\npackages: [app]\nproperties: {port: {default: 80}}\n",
            0o644,
        );
        write(&src.join("jobs/web/monit"), "check process web\n", 0o644);
        write(
            &src.join("jobs/web/templates/ctl.erb"),
            "#!/bin/sh\n",
            0o644,
        );
        let out = dir.path().join("web-1.tgz");
        create(&src, "web", "1", &out).unwrap();
        let release = crate::release::Release::extract(&out, &dir.path().join("x")).unwrap();
        assert_eq!((release.name(), release.version()), ("web", "1"));
        let order: Vec<&str> = release
            .compile_order()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(order, ["lib", "app"]);
        assert_eq!(release.job("web").unwrap().spec.packages, ["app"]);
        // The same directory gives the same bytes.
        let again = dir.path().join("again.tgz");
        create(&src, "web", "1", &again).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
    }

    #[test]
    fn a_bad_spec_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("packages/lib/spec"), "name: [", 0o644);
        let err = create(dir.path(), "r", "1", &dir.path().join("r.tgz")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&dir.path().join("packages/lib/spec").display().to_string()),
            "{err}"
        );
    }
}
