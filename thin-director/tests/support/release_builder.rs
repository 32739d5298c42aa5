//! Builds small, real release tarballs for tests: `release.MF` and gzipped job, package and
//! compiled package blobs with correct digests, and ways to break them (wrong digests, entries
//! that climb out, dependency cycles).
//!
//! Used by the integration tests and, through `#[path]`, by the release module's unit tests.

use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha1::Digest as _;

/// One entry of a tar archive; names and link targets are written as given, unchecked.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A regular file.
    File(&'static str, Vec<u8>, u32),
    /// A directory.
    Dir(&'static str),
    /// A symlink to a target.
    Symlink(&'static str, &'static str),
    /// A hard link to an earlier entry.
    HardLink(&'static str, &'static str),
    /// A fifo.
    Fifo(&'static str),
}

/// A release tarball under construction.
#[derive(Debug, Clone)]
pub struct ReleaseBuilder {
    name: String,
    version: String,
    jobs: Vec<Blob>,
    packages: Vec<Blob>,
    compiled_packages: Vec<Blob>,
    use_sha256: bool,
    wrong_digest: Option<String>,
    manifest_last: bool,
    outer: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Blob {
    name: String,
    packages: Vec<String>,
    stemcell: Option<String>,
    bytes: Vec<u8>,
}

impl ReleaseBuilder {
    /// An empty release.
    pub fn new(name: &str, version: &str) -> ReleaseBuilder {
        ReleaseBuilder {
            name: name.to_owned(),
            version: version.to_owned(),
            jobs: Vec::new(),
            packages: Vec::new(),
            compiled_packages: Vec::new(),
            use_sha256: false,
            wrong_digest: None,
            manifest_last: false,
            outer: Vec::new(),
        }
    }

    /// A job with a `job.MF` naming `packages`, a `monit` file and two templates.
    pub fn job(self, name: &str, packages: &[&str]) -> ReleaseBuilder {
        let spec = job_spec(name, packages);
        let entries = vec![
            Entry::File("job.MF", spec.into_bytes(), 0o644),
            Entry::File(
                "monit",
                format!("check process {name}\n  with pidfile /var/vcap/sys/run/{name}.pid\n")
                    .into_bytes(),
                0o644,
            ),
            Entry::Dir("templates"),
            Entry::File(
                "templates/ctl.erb",
                b"#!/bin/bash\nexec <%= p('port') %>\n".to_vec(),
                0o644,
            ),
            Entry::File(
                "templates/config.yml.erb",
                b"port: <%= p('port') %>\n".to_vec(),
                0o644,
            ),
        ];
        self.job_with(name, packages, &entries)
    }

    /// A job whose blob holds exactly `entries`.
    pub fn job_with(mut self, name: &str, packages: &[&str], entries: &[Entry]) -> ReleaseBuilder {
        self.jobs.push(Blob {
            name: name.to_owned(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            stemcell: None,
            bytes: tgz(entries),
        });
        self
    }

    /// A source package with a `packaging` script, depending on `dependencies`.
    pub fn package(self, name: &str, dependencies: &[&str]) -> ReleaseBuilder {
        let entries = vec![
            Entry::File(
                "packaging",
                b"set -e\ncp -a . \"$BOSH_INSTALL_TARGET\"\n".to_vec(),
                0o755,
            ),
            Entry::Dir("src"),
            Entry::File(
                "src/README",
                format!("{name} sources\n").into_bytes(),
                0o644,
            ),
        ];
        self.package_with(name, dependencies, &entries)
    }

    /// A source package whose blob holds exactly `entries`.
    pub fn package_with(
        mut self,
        name: &str,
        dependencies: &[&str],
        entries: &[Entry],
    ) -> ReleaseBuilder {
        self.packages.push(Blob {
            name: name.to_owned(),
            packages: dependencies.iter().map(|p| (*p).to_owned()).collect(),
            stemcell: None,
            bytes: tgz(entries),
        });
        self
    }

    /// A package compiled on `stemcell` (`os/version`).
    pub fn compiled_package(
        mut self,
        name: &str,
        dependencies: &[&str],
        stemcell: &str,
    ) -> ReleaseBuilder {
        let entries = [
            Entry::Dir("bin"),
            Entry::File(
                "bin/run",
                format!("#!/bin/sh\necho {name}\n").into_bytes(),
                0o755,
            ),
        ];
        self.compiled_packages.push(Blob {
            name: name.to_owned(),
            packages: dependencies.iter().map(|p| (*p).to_owned()).collect(),
            stemcell: Some(stemcell.to_owned()),
            bytes: tgz(&entries),
        });
        self
    }

    /// Writes `sha256:` digests instead of bare sha1 ones.
    pub fn sha256(mut self) -> ReleaseBuilder {
        self.use_sha256 = true;
        self
    }

    /// Gives the blob at `blob_path` (e.g. `jobs/web.tgz`) a digest that does not match it.
    pub fn wrong_digest(mut self, blob_path: &str) -> ReleaseBuilder {
        self.wrong_digest = Some(blob_path.to_owned());
        self
    }

    /// Puts `release.MF` after the blobs instead of before them.
    pub fn manifest_last(mut self) -> ReleaseBuilder {
        self.manifest_last = true;
        self
    }

    /// Adds an entry to the outer tarball.
    pub fn outer(mut self, entry: Entry) -> ReleaseBuilder {
        self.outer.push(entry);
        self
    }

    /// The `release.MF` text.
    pub fn manifest(&self) -> String {
        let mut text = format!(
            "name: {}\nversion: '{}'\ncommit_hash: abc1234\nuncommitted_changes: false\n",
            self.name, self.version
        );
        let lists = [
            ("jobs", "jobs", "packages", &self.jobs),
            ("packages", "packages", "dependencies", &self.packages),
            (
                "compiled_packages",
                "compiled_packages",
                "dependencies",
                &self.compiled_packages,
            ),
        ];
        for (key, dir, needs, blobs) in lists {
            if blobs.is_empty() {
                continue;
            }
            text.push_str(&format!("{key}:\n"));
            for blob in blobs {
                let path = format!("{dir}/{}.tgz", blob.name);
                let mut digest = self.digest(&blob.bytes);
                if self.wrong_digest.as_deref() == Some(path.as_str()) {
                    digest = self.digest(b"something else");
                }
                text.push_str(&format!(
                    "- name: {name}\n  version: {name}-v1\n  fingerprint: {name}-fp\n  sha1: {digest}\n  {needs}: {list}\n",
                    name = blob.name,
                    list = serde_json::to_string(&blob.packages).unwrap(),
                ));
                if let Some(stemcell) = &blob.stemcell {
                    text.push_str(&format!("  stemcell: {stemcell}\n"));
                }
            }
        }
        text
    }

    /// The tarball's bytes.
    pub fn build(&self) -> Vec<u8> {
        let manifest = Entry::File("./release.MF", self.manifest().into_bytes(), 0o644);
        let mut entries = vec![Entry::Dir("./")];
        if !self.manifest_last {
            entries.push(manifest.clone());
        }
        let lists = [
            ("jobs", &self.jobs),
            ("packages", &self.packages),
            ("compiled_packages", &self.compiled_packages),
        ];
        let mut blobs = Vec::new();
        for (dir, list) in lists {
            if !list.is_empty() {
                entries.push(Entry::Dir(leak(format!("./{dir}/"))));
            }
            for blob in list {
                blobs.push(Entry::File(
                    leak(format!("./{dir}/{}.tgz", blob.name)),
                    blob.bytes.clone(),
                    0o644,
                ));
            }
        }
        entries.extend(blobs);
        entries.extend(self.outer.iter().cloned());
        if self.manifest_last {
            entries.push(manifest);
        }
        tgz(&entries)
    }

    /// Writes the tarball to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.build()).unwrap();
    }

    fn digest(&self, bytes: &[u8]) -> String {
        if self.use_sha256 {
            format!("sha256:{}", sha256_hex(bytes))
        } else {
            sha1_hex(bytes)
        }
    }
}

/// A `job.MF` for a job with two templates and a property with a default.
pub fn job_spec(name: &str, packages: &[&str]) -> String {
    format!(
        "---\nname: {name}\ntemplates:\n  ctl.erb: bin/ctl\n  config.yml.erb: config/config.yml\n\
         packages: {}\nproperties:\n  port:\n    description: The port to listen on\n    default: 8080\n",
        serde_json::to_string(packages).unwrap()
    )
}

/// A gzipped tar of `entries`.
pub fn tgz(entries: &[Entry]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    std::io::Write::write_all(&mut encoder, &tar(entries)).unwrap();
    encoder.finish().unwrap()
}

/// A plain tar of `entries`, names written as given.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match entry {
            Entry::File(name, data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                (name, data)
            }
            Entry::Dir(name) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                (name, &[])
            }
            Entry::Symlink(name, target) | Entry::HardLink(name, target) => {
                let kind = if matches!(entry, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                header.set_entry_type(kind);
                header.set_mode(0o777);
                raw_field(&mut header.as_old_mut().linkname, target);
                (name, &[])
            }
            Entry::Fifo(name) => {
                header.set_entry_type(tar::EntryType::Fifo);
                header.set_mode(0o644);
                (name, &[])
            }
        };
        raw_field(&mut header.as_old_mut().name, name);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Hex sha1 of `bytes`.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex(&sha1::Sha1::digest(bytes))
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a name into a fixed tar header field without the tar crate's checks, so tests can build
/// the archives an attacker would.
fn raw_field(field: &mut [u8], value: &str) {
    assert!(
        value.len() < field.len(),
        "test entry name too long: {value}"
    );
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}
