//! Release tarballs, source and compiled: reading `release.MF`, extracting jobs and packages
//! safely, verifying every blob against its digest, reading job specs, and ordering packages by
//! their dependencies.
//!
//! Follows bosh-cli `release/archive_reader.go` (the layout and what is read) and the director's
//! `jobs/release/release_job.rb` (checks on jobs). [`Release::extract`] reads a tarball in two
//! passes ([`tarball`]'s doc says how): the first judges every entry, verifies every digest and
//! resolves dependencies without writing anything; only when all of that passed does the second
//! write into a staging directory next to the target, which is renamed into place at the end. So
//! a bad release leaves nothing behind. The extracted release looks like this:
//!
//! ```text
//! <target>/release.MF
//! <target>/jobs/<job>.tgz                the blob as shipped (uploaded to agents as is)
//! <target>/jobs/<job>/                   job.MF, monit, templates/...
//! <target>/packages/<package>.tgz        source package blobs (compiled on compilation VMs)
//! <target>/packages/<package>/           packaging and the package's files
//! <target>/compiled_packages/<package>.tgz and <package>/   for compiled releases
//! <target>/license.tgz and license/      when the release lists a license
//! ```
//!
//! [`Release::from_dir`] reads such a directory again (after a restart) without re-verifying it.

mod checks;
pub mod create;
pub mod dependencies;
pub mod identity;
pub mod job_spec;
pub mod release_manifest;
pub mod tarball;

pub(crate) mod tree;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use settings::digest::{self, MultiDigest};

pub use dependencies::PackageGraph;
pub use identity::{CompiledPackageKey, PackageId};
pub use job_spec::JobSpec;
pub use release_manifest::{ReleaseManifest, StemcellRef};
pub use tree::EntryProblem;

use checks::{check_blobs, check_names, parse_job_spec, parse_manifest, resolve};
use tarball::BlobKind;

/// A release extracted to a directory, checked and resolved.
#[derive(Debug, Clone)]
pub struct Release {
    /// The directory the release is extracted to.
    pub dir: PathBuf,
    /// Its `release.MF`.
    pub manifest: ReleaseManifest,
    /// Its jobs, in `release.MF` order.
    pub jobs: Vec<Job>,
    /// Its source packages, in `release.MF` order.
    pub packages: Vec<Package>,
    /// Its compiled packages, in `release.MF` order.
    pub compiled_packages: Vec<Package>,
    source_graph: PackageGraph,
    compiled_graph: PackageGraph,
}

/// A job of an extracted release.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job name.
    pub name: String,
    /// The job version.
    pub version: String,
    /// The job fingerprint (the version when the release has none).
    pub fingerprint: String,
    /// The digest of the blob.
    pub sha1: MultiDigest,
    /// The job spec (`job.MF`).
    pub spec: JobSpec,
    /// The blob as shipped: `jobs/<name>.tgz`.
    pub blob: PathBuf,
    /// The unpacked job: `jobs/<name>/`.
    pub dir: PathBuf,
}

/// A source or compiled package of an extracted release.
#[derive(Debug, Clone)]
pub struct Package {
    /// The package name.
    pub name: String,
    /// The package version.
    pub version: String,
    /// The package fingerprint (the version when the release has none).
    pub fingerprint: String,
    /// The digest of the blob.
    pub sha1: MultiDigest,
    /// What it depends on directly.
    pub dependencies: Vec<String>,
    /// The stemcell a compiled package was compiled on; `None` for a source package.
    pub stemcell: Option<StemcellRef>,
    /// The blob as shipped: `packages/<name>.tgz` or `compiled_packages/<name>.tgz`.
    pub blob: PathBuf,
    /// The unpacked package.
    pub dir: PathBuf,
}

/// Why a release could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tarball could not be opened.
    #[error("opening release tarball {}", .tarball.display())]
    Open {
        /// The tarball.
        tarball: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The tarball is not a readable (gzipped) tar.
    #[error("reading release tarball {}", .tarball.display())]
    Read {
        /// The tarball.
        tarball: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A blob in the tarball is not a readable (gzipped) tar.
    #[error("reading {blob} in release tarball {}", .tarball.display())]
    ReadBlob {
        /// The tarball.
        tarball: PathBuf,
        /// The blob, e.g. `jobs/web.tgz`.
        blob: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry of the tarball or of one of its blobs is refused.
    #[error(
        "release tarball {}: {}entry {}: {problem}",
        .tarball.display(),
        .blob.as_ref().map(|blob| format!("{blob} ")).unwrap_or_default(),
        .entry.display()
    )]
    Entry {
        /// The tarball.
        tarball: PathBuf,
        /// The blob holding the entry, or `None` for the tarball itself.
        blob: Option<String>,
        /// The entry name as written.
        entry: PathBuf,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// `release.MF` or a blob appears twice.
    #[error("release tarball {}: {entry} appears twice", .tarball.display())]
    Duplicate {
        /// The tarball.
        tarball: PathBuf,
        /// The entry.
        entry: String,
    },
    /// The tarball has no `release.MF`.
    #[error("release tarball {} has no release.MF", .source_path.display())]
    NoManifest {
        /// The tarball or directory.
        source_path: PathBuf,
    },
    /// `release.MF` does not decode.
    #[error("reading release.MF of {}", .source_path.display())]
    Manifest {
        /// The tarball or directory.
        source_path: PathBuf,
        /// The cause, with the path of the bad field.
        #[source]
        source: release_manifest::Error,
    },
    /// A job or package name cannot be a file name.
    #[error("release {release}: {noun} name {name:?} is not a plain file name")]
    InvalidName {
        /// The release.
        release: String,
        /// `job`, `package`, ...
        noun: &'static str,
        /// The name.
        name: String,
    },
    /// A job or package is listed twice.
    #[error("release {release}: {noun} {name:?} is listed twice")]
    DuplicateName {
        /// The release.
        release: String,
        /// `job`, `package`, ...
        noun: &'static str,
        /// The name.
        name: String,
    },
    /// A blob `release.MF` lists is not in the tarball.
    #[error("release tarball {}: {blob} is listed in release.MF but missing", .tarball.display())]
    MissingBlob {
        /// The tarball.
        tarball: PathBuf,
        /// The blob.
        blob: String,
    },
    /// A blob does not have the digest `release.MF` gives it.
    #[error("release tarball {}: verifying {blob}", .tarball.display())]
    Digest {
        /// The tarball.
        tarball: PathBuf,
        /// The blob.
        blob: String,
        /// The mismatch, in the Go agent's words.
        #[source]
        source: digest::Error,
    },
    /// A job lacks `job.MF`, `monit` or a template its spec names.
    #[error("job {job}: {file} is missing")]
    JobFileMissing {
        /// The job.
        job: String,
        /// The file, e.g. `templates/ctl.erb`.
        file: String,
    },
    /// A job spec does not decode or names paths outside the job.
    #[error("job {job}: reading job.MF")]
    JobSpec {
        /// The job.
        job: String,
        /// The cause.
        #[source]
        source: job_spec::Error,
    },
    /// A job spec is not valid UTF-8.
    #[error("job {job}: job.MF is not UTF-8 text")]
    JobSpecText {
        /// The job.
        job: String,
    },
    /// `job.MF` names another job than `release.MF` does.
    #[error("job {job}: job.MF names the job {spec_name:?}")]
    JobNameMismatch {
        /// The job as `release.MF` names it.
        job: String,
        /// The name in `job.MF`.
        spec_name: String,
    },
    /// Package dependencies are missing or circular.
    #[error("release {release}: resolving package dependencies")]
    Dependencies {
        /// The release.
        release: String,
        /// The cause, naming the packages.
        #[source]
        source: dependencies::Error,
    },
    /// A job needs a package the release lacks.
    #[error("job {job} needs package {package:?}, which is not in the release")]
    JobPackage {
        /// The job.
        job: String,
        /// The package.
        package: String,
    },
    /// The target already exists.
    #[error("{} already exists", .target.display())]
    TargetExists {
        /// The target.
        target: PathBuf,
    },
    /// The staging directory could not be made or renamed into place.
    #[error("installing the release at {}", .target.display())]
    Install {
        /// The target.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the extracted release failed.
    #[error("writing {}", .path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading an extracted release failed.
    #[error("reading {}", .path.display())]
    ReadDir {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The tarball's `release.MF` differed between the two passes.
    #[error("release tarball {} changed while it was read", .tarball.display())]
    Changed {
        /// The tarball.
        tarball: PathBuf,
    },
}

impl Release {
    /// Extracts, verifies and resolves the release tarball at `tarball` into `target`, which must
    /// not exist (its parent must). Nothing is written unless everything checks out, and `target`
    /// appears only once it is complete.
    pub fn extract(tarball: &Path, target: &Path) -> Result<Release, Error> {
        if fs::symlink_metadata(target).is_ok() {
            return Err(Error::TargetExists {
                target: target.to_owned(),
            });
        }
        let parent = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let first = tarball::scan(tarball, None, None)?;
        let manifest = parse_manifest(tarball, first.release_mf.as_deref())?;
        check_blobs(tarball, &manifest, &first)?;

        let install_error = |source| Error::Install {
            target: target.to_owned(),
            source,
        };
        let staging = tempfile::Builder::new()
            .prefix(".release-")
            .tempdir_in(parent)
            .map_err(install_error)?;
        let second = tarball::scan(tarball, Some(staging.path()), Some(&manifest))?;
        if second.release_mf != first.release_mf {
            return Err(Error::Changed {
                tarball: tarball.to_owned(),
            });
        }
        let specs = check_blobs(tarball, &manifest, &second)?;
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
            .map_err(install_error)?;
        let staged = staging.keep();
        if let Err(err) = fs::rename(&staged, target) {
            // Best effort: the staging directory is ours and incomplete releases must not linger.
            let _ = fs::remove_dir_all(&staged);
            return Err(install_error(err));
        }
        Release::assemble(target, manifest, specs)
    }

    /// Reads a release [`Release::extract`] wrote earlier. Digests are not verified again.
    pub fn from_dir(dir: &Path) -> Result<Release, Error> {
        let read =
            |path: PathBuf| fs::read(&path).map_err(|source| Error::ReadDir { path, source });
        let text =
            String::from_utf8(read(dir.join("release.MF"))?).map_err(|err| Error::ReadDir {
                path: dir.join("release.MF"),
                source: io::Error::new(io::ErrorKind::InvalidData, err),
            })?;
        let manifest = parse_manifest(dir, Some(&text))?;
        check_names(&manifest)?;
        let mut specs = BTreeMap::new();
        for job in &manifest.jobs {
            let bytes = read(dir.join(BlobKind::Job.tree_path(&job.name)).join("job.MF"))?;
            specs.insert(job.name.clone(), parse_job_spec(&job.name, &bytes)?);
        }
        Release::assemble(dir, manifest, specs)
    }

    /// The release name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The release version.
    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    /// Whether the release ships compiled packages only.
    pub fn is_compiled(&self) -> bool {
        self.packages.is_empty() && !self.compiled_packages.is_empty()
    }

    /// The job called `name`.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|job| job.name == name)
    }

    /// The source package called `name`.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|package| package.name == name)
    }

    /// The compiled package called `name`.
    pub fn compiled_package(&self, name: &str) -> Option<&Package> {
        self.compiled_packages
            .iter()
            .find(|package| package.name == name)
    }

    /// The source packages, each after everything it depends on: the order to compile them in.
    pub fn compile_order(&self) -> Vec<&Package> {
        self.source_graph
            .order()
            .iter()
            .filter_map(|name| self.package(name))
            .collect()
    }

    /// The dependency graph of the source packages.
    pub fn source_graph(&self) -> &PackageGraph {
        &self.source_graph
    }

    /// The dependency graph of the compiled packages.
    pub fn compiled_graph(&self) -> &PackageGraph {
        &self.compiled_graph
    }

    /// The packages job `name` runs with: those its spec names and everything they depend on, in
    /// dependency order; source packages, or compiled ones for a compiled release.
    pub fn job_packages(&self, name: &str) -> Option<Vec<&Package>> {
        let job = self.job(name)?;
        let (graph, packages) = self.runtime_packages();
        // `assemble` checked that every package a job names is in the graph.
        let closure = graph
            .closure(job.spec.packages.iter().map(String::as_str))
            .ok()?;
        Some(
            closure
                .iter()
                .filter_map(|name| packages.iter().find(|p| &p.name == name))
                .collect(),
        )
    }

    /// The key a compiled package cache stores package `name` under once compiled on `stemcell`
    /// (for a compiled package: the key it already has there when `stemcell` is its own).
    pub fn compiled_package_key(
        &self,
        name: &str,
        stemcell: &StemcellRef,
    ) -> Option<CompiledPackageKey> {
        let (package, graph) = match self.package(name) {
            Some(package) => (package, &self.source_graph),
            None => (self.compiled_package(name)?, &self.compiled_graph),
        };
        Some(CompiledPackageKey {
            package: package.id(),
            stemcell: stemcell.clone(),
            dependency_key: graph.dependency_key(name)?,
        })
    }

    fn runtime_packages(&self) -> (&PackageGraph, &[Package]) {
        if self.packages.is_empty() {
            (&self.compiled_graph, &self.compiled_packages)
        } else {
            (&self.source_graph, &self.packages)
        }
    }

    /// Builds the release from its manifest and job specs, resolving dependencies.
    fn assemble(
        dir: &Path,
        manifest: ReleaseManifest,
        mut specs: BTreeMap<String, JobSpec>,
    ) -> Result<Release, Error> {
        let (source_graph, compiled_graph) = resolve(&manifest, &specs)?;
        let jobs = manifest
            .jobs
            .iter()
            .map(|job| {
                let spec = specs
                    .remove(&job.name)
                    .ok_or_else(|| Error::JobFileMissing {
                        job: job.name.clone(),
                        file: "job.MF".to_owned(),
                    })?;
                Ok(Job {
                    name: job.name.clone(),
                    version: job.version.clone(),
                    fingerprint: fingerprint(&job.fingerprint, &job.version),
                    sha1: job.sha1.clone(),
                    spec,
                    blob: dir.join(BlobKind::Job.blob_path(&job.name)),
                    dir: dir.join(BlobKind::Job.tree_path(&job.name)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let packages = manifest
            .packages
            .iter()
            .map(|package| Package {
                name: package.name.clone(),
                version: package.version.clone(),
                fingerprint: fingerprint(&package.fingerprint, &package.version),
                sha1: package.sha1.clone(),
                dependencies: package.dependencies.clone(),
                stemcell: None,
                blob: dir.join(BlobKind::Package.blob_path(&package.name)),
                dir: dir.join(BlobKind::Package.tree_path(&package.name)),
            })
            .collect();
        let compiled_packages = manifest
            .compiled_packages
            .iter()
            .map(|package| Package {
                name: package.name.clone(),
                version: package.version.clone(),
                fingerprint: fingerprint(&package.fingerprint, &package.version),
                sha1: package.sha1.clone(),
                dependencies: package.dependencies.clone(),
                stemcell: Some(package.stemcell.clone()),
                blob: dir.join(BlobKind::CompiledPackage.blob_path(&package.name)),
                dir: dir.join(BlobKind::CompiledPackage.tree_path(&package.name)),
            })
            .collect();
        Ok(Release {
            dir: dir.to_owned(),
            manifest,
            jobs,
            packages,
            compiled_packages,
            source_graph,
            compiled_graph,
        })
    }
}

impl Job {
    /// The job's `monit` file.
    pub fn monit(&self) -> PathBuf {
        self.dir.join("monit")
    }

    /// The ERB source of a template the spec names (a key of [`JobSpec::templates`]).
    pub fn template_source(&self, source: &str) -> PathBuf {
        self.dir.join("templates").join(source)
    }
}

impl Package {
    /// The package's identity across releases.
    pub fn id(&self) -> PackageId {
        PackageId::new(&self.name, &self.fingerprint, &self.version)
    }
}

fn fingerprint(fingerprint: &str, version: &str) -> String {
    if fingerprint.is_empty() {
        version.to_owned()
    } else {
        fingerprint.to_owned()
    }
}
