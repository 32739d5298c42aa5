//! `bosh-agent compile [--output-directory DIR] RELEASE.tgz...`: compiles the source packages of
//! release tarballs on this machine, without a director, and writes compiled release tarballs. It
//! follows the Go agent's `main/compile.go` and `releasetarball/compile.go` (run in a stemcell image
//! to build compiled releases in CI).
//!
//! For each release tarball, in order (the first failure stops the command, as Go's `log.Fatal`):
//! 1. unpack it ([`jobs::archive::extract`]: unsafe entries such as `../x` are refused) into a
//!    temporary directory under `data/tmp`;
//! 2. read `release.MF` (bosh-cli's `release/manifest`), check that every `packages/<name>.tgz` is
//!    in it and every source package has its tarball, and verify each tarball against its `sha1`
//!    multi-digest, all before anything is compiled;
//! 3. order the packages as Go does (sorted by name, each after its dependencies, depth first;
//!    a cycle is refused with `cycle detected`);
//! 4. compile each with the agent's own compiler ([`jobs::compile`], exactly what
//!    `compile_package` runs: its immediate dependencies installed as `packages/<dep>`, then
//!    `bash -x packaging`), using a local blobstore in the temporary directory;
//! 5. write the compiled release: `compiled_packages/<name>.tgz` instead of `packages/`, and a
//!    `release.MF` whose `packages` are gone and whose `compiled_packages` list each compiled package
//!    with its source `name`, `version`, `fingerprint` and `dependencies`, the compiled tarball's
//!    `sha1`, and `stemcell: <os>-<codename>/<stemcell version>`; jobs, license and every other file
//!    are kept;
//! 6. pack it as `<output dir>/<name>-<version>-<os>-<codename>-<stemcell version>.tgz`.
//!
//! The stemcell slug comes from `bosh/etc/stemcell_version` under the base dir and from `ID` and
//! `VERSION_CODENAME` of the host's `/etc/os-release` (Go's `stemcellmetadata/slug_linux.go`).
//!
//! Where we differ from Go:
//! - The base dir is `-b` (Go always uses `/var/vcap`), and the blobs live in a temporary directory
//!   that is removed afterwards (Go leaves them in `data/blobs`).
//! - A package whose dependency is not a source package of the release is refused (Go compiles it
//!   with the wrong dependency); so is a package listed twice.
//! - Packages a release already has compiled stay in its `compiled_packages` (Go drops them from
//!   `release.MF` but keeps their files); a release without `packages/` entries still gets its
//!   compiled packages (Go writes them only where the tarball has a `packages/` directory entry).
//! - The output is always gzip-compressed, also for a `no_compression` release; every reader of
//!   release tarballs accepts both. Its entries keep the modes they had, and it is written to a
//!   temporary file renamed into place (mode 0600), so a failed run leaves no partial tarball.
//! - A release name or version that would put the compiled release outside the output directory
//!   (`../x`) is refused before anything is compiled (Go joins it as it is).
//! - Keys of `release.MF` that bosh-cli's manifest type does not know are dropped, as in Go.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use jobs::archive::{self, ExtractOptions};
use jobs::blobstore::{Blobstore, LocalBlobstore, SignedClient};
use jobs::compile::{BlobSource, CompiledPackage, Compiler, Package, Request, UploadTarget};
use jobs::install::Installer;
use platform::cmd::CommandRunner;
use settings::Dirs;
use settings::digest::{self, MultiDigest};

/// The manifest at the root of a release tarball.
pub const RELEASE_MANIFEST: &str = "release.MF";

/// Where source packages are in a release tarball.
const SOURCE_PACKAGES_DIR: &str = "packages";

/// Where compiled packages are in a release tarball.
const COMPILED_PACKAGES_DIR: &str = "compiled_packages";

/// Mode of the output directory when it is created (Go's `os.MkdirAll(dir, 0o700)`).
const OUTPUT_DIR_MODE: u32 = 0o700;

/// Mode of the blobs directory (Go's `blobsDirPermissions`).
const BLOBS_DIR_MODE: u32 = 0o700;

/// Mode of `compiled_packages/` in the compiled release.
const COMPILED_PACKAGES_DIR_MODE: u32 = 0o755;

/// Mode of `data/tmp` when it is created (reference/bosh-agent.md §6.1).
const TMP_DIR_MODE: u32 = 0o755;

/// The stemcell the packages are compiled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stemcell {
    /// `ID` of `/etc/os-release` (`ubuntu`).
    pub os: String,
    /// `VERSION_CODENAME` of `/etc/os-release` (`jammy`).
    pub codename: String,
    /// The contents of `bosh/etc/stemcell_version` (`1.423`).
    pub version: String,
}

/// One `bosh-agent compile` run.
#[derive(Debug, Clone)]
pub struct Compilation {
    /// The base dir the packages are compiled under.
    pub dirs: Dirs,
    /// The stemcell of the compiled packages.
    pub stemcell: Stemcell,
    /// Where compiled release tarballs go; created if missing.
    pub output_dir: PathBuf,
    /// Runs the packaging scripts.
    pub runner: Arc<dyn CommandRunner>,
}

/// `release.MF`, with the fields of bosh-cli's `release/manifest.Manifest` in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleaseManifest {
    /// The release name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// The release version.
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// The commit the release was made from.
    #[serde(deserialize_with = "nullable")]
    pub commit_hash: String,
    /// Whether the working tree had changes.
    #[serde(deserialize_with = "nullable")]
    pub uncommitted_changes: bool,
    /// The jobs.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobRef>,
    /// The source packages.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageRef>,
    /// The compiled packages.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub compiled_packages: Vec<CompiledPackageRef>,
    /// The license.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<LicenseRef>,
    /// Whether the tarballs are uncompressed.
    #[serde(deserialize_with = "nullable")]
    pub no_compression: bool,
}

/// A job of `release.MF`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobRef {
    /// The job name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Its version (its fingerprint).
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// Its fingerprint.
    #[serde(deserialize_with = "nullable")]
    pub fingerprint: String,
    /// The multi-digest of `jobs/<name>.tgz`.
    #[serde(deserialize_with = "nullable")]
    pub sha1: String,
    /// The packages it uses.
    #[serde(deserialize_with = "nullable")]
    pub packages: Vec<String>,
}

/// A source package of `release.MF`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageRef {
    /// The package name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Its version (its fingerprint).
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// Its fingerprint.
    #[serde(deserialize_with = "nullable")]
    pub fingerprint: String,
    /// The multi-digest of `packages/<name>.tgz`.
    #[serde(deserialize_with = "nullable")]
    pub sha1: String,
    /// The packages it needs to compile and to run.
    #[serde(deserialize_with = "nullable")]
    pub dependencies: Vec<String>,
}

/// A compiled package of `release.MF`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompiledPackageRef {
    /// The package name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// The version of its source.
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// The fingerprint of its source.
    #[serde(deserialize_with = "nullable")]
    pub fingerprint: String,
    /// The multi-digest of `compiled_packages/<name>.tgz`.
    #[serde(deserialize_with = "nullable")]
    pub sha1: String,
    /// The stemcell it was compiled on, `<os>-<codename>/<version>`.
    #[serde(deserialize_with = "nullable")]
    pub stemcell: String,
    /// The packages it needs.
    #[serde(deserialize_with = "nullable")]
    pub dependencies: Vec<String>,
}

/// The license of `release.MF`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LicenseRef {
    /// Its version.
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// Its fingerprint.
    #[serde(deserialize_with = "nullable")]
    pub fingerprint: String,
    /// The multi-digest of `license.tgz`.
    #[serde(deserialize_with = "nullable")]
    pub sha1: String,
}

/// The result of the functions in this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a release was not compiled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the stemcell's identity could not be read.
    #[error("reading {}", .path.display())]
    StemcellFile {
        /// `bosh/etc/stemcell_version` or `/etc/os-release`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `/etc/os-release` lacks a key of the stemcell slug.
    #[error("{key} not found in {}", .path.display())]
    OsReleaseKey {
        /// The file.
        path: PathBuf,
        /// `ID` or `VERSION_CODENAME`.
        key: &'static str,
    },
    /// A directory or file could not be made, moved or removed.
    #[error("{action} {}", .path.display())]
    File {
        /// What was done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The release tarball is not a tarball we unpack.
    #[error("failed to extract release tarball {}", .release.display())]
    Unpack {
        /// The release tarball.
        release: PathBuf,
        /// The cause.
        #[source]
        source: archive::Error,
    },
    /// The tarball has no `release.MF`.
    #[error("failed to find {RELEASE_MANIFEST} in tarball {}", .release.display())]
    NoManifest {
        /// The release tarball.
        release: PathBuf,
    },
    /// `release.MF` is not a release manifest.
    #[error("failed to parse release manifest of {}", .release.display())]
    ParseManifest {
        /// The release tarball.
        release: PathBuf,
        /// The cause.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A `packages/<name>.tgz` that `release.MF` does not list (Go's text).
    #[error("package not found in release manifest: {file}")]
    UnlistedPackage {
        /// The file name under `packages/`.
        file: String,
    },
    /// A package of `release.MF` without its tarball.
    #[error(
        "package '{package}' is in the release manifest but packages/{package}.tgz is not in the tarball"
    )]
    MissingPackage {
        /// The package.
        package: String,
    },
    /// The compiled release's file name would not be one file in the output directory.
    #[error("invalid release name or version: '{file_name}'")]
    ReleaseName {
        /// The file name made of them.
        file_name: String,
        /// The cause.
        #[source]
        source: platform::name::Error,
    },
    /// A package without a version.
    #[error("package '{package}' has no version")]
    NoVersion {
        /// The package.
        package: String,
    },
    /// A package name that cannot name a file.
    #[error("invalid package name '{package}'")]
    PackageName {
        /// The name.
        package: String,
        /// The cause.
        #[source]
        source: platform::name::Error,
    },
    /// Two packages of one name.
    #[error("package '{package}' is listed twice in the release manifest")]
    DuplicatePackage {
        /// The package.
        package: String,
    },
    /// A dependency that is not a source package of the release.
    #[error(
        "package '{package}' depends on '{dependency}', which is not a source package of the release"
    )]
    UnknownDependency {
        /// The package.
        package: String,
        /// The dependency.
        dependency: String,
    },
    /// The packages depend on each other in a circle (Go: `cycle detected`).
    #[error("cycle detected: {}", .packages.join(" -> "))]
    Cycle {
        /// The circle, its first package repeated at the end.
        packages: Vec<String>,
    },
    /// A package tarball does not match its digest, or the digest does not parse.
    #[error("verifying packages/{package}.tgz")]
    Digest {
        /// The package.
        package: String,
        /// The cause, with Go's text.
        #[source]
        source: digest::Error,
    },
    /// The compiler failed (the cause has Go's text for a failed packaging script).
    #[error("failed to compile package {package}/{version}")]
    Compile {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The cause (boxed: compile errors are large).
        #[source]
        source: Box<jobs::compile::Error>,
    },
    /// The compiler gave no blob id (it always does for a blobstore upload).
    #[error("compiled package {package} has no blob id")]
    NoBlobId {
        /// The package.
        package: String,
    },
    /// The new `release.MF` could not be written.
    #[error("writing {RELEASE_MANIFEST}")]
    WriteManifest(#[source] serde_yaml_ng::Error),
    /// The local blobstore or its HTTP client could not be made.
    #[error("setting up the local blobstore")]
    Blobstore(#[source] Box<jobs::blobstore::Error>),
    /// The compiled release could not be packed.
    #[error("archiving compiled release {}", .path.display())]
    Pack {
        /// The compiled release tarball.
        path: PathBuf,
        /// The cause.
        #[source]
        source: archive::Error,
    },
    /// A blocking step panicked.
    #[error("a blocking step did not finish")]
    Task(#[source] tokio::task::JoinError),
}

impl Stemcell {
    /// The stemcell this machine is: the version from `stemcell_version_file`, the OS and its
    /// codename from `os_release_file`.
    pub fn read(stemcell_version_file: &Path, os_release_file: &Path) -> Result<Stemcell> {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| Error::StemcellFile {
                path: path.to_owned(),
                source,
            })
        };
        let version = read(stemcell_version_file)?.trim().to_owned();
        let os_release = parse_os_release(&read(os_release_file)?);
        let key = |key: &'static str| {
            os_release
                .get(key)
                .map(|value| value.trim().to_owned())
                .ok_or_else(|| Error::OsReleaseKey {
                    path: os_release_file.to_owned(),
                    key,
                })
        };
        Ok(Stemcell {
            os: key("ID")?,
            codename: key("VERSION_CODENAME")?,
            version,
        })
    }

    /// `<os>-<codename>/<version>`, the `stemcell` of compiled packages.
    pub fn slug(&self) -> String {
        format!("{}-{}/{}", self.os, self.codename, self.version)
    }

    /// `<os>-<codename>-<version>`, the end of a compiled release's file name.
    fn file_suffix(&self) -> String {
        format!("{}-{}-{}", self.os, self.codename, self.version)
    }
}

impl ReleaseManifest {
    /// Parses the YAML of a `release.MF`.
    pub fn parse(text: &str) -> Result<ReleaseManifest, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(text)
    }

    /// The file name of the compiled release: `<name>-<version>-<os>-<codename>-<stemcell version>.tgz`.
    pub fn compiled_file_name(&self, stemcell: &Stemcell) -> String {
        format!(
            "{}-{}-{}.tgz",
            self.name,
            self.version,
            stemcell.file_suffix()
        )
    }
}

impl Compilation {
    /// Compiles each of `releases` in turn and returns the compiled release tarballs' paths.
    pub async fn compile_all(&self, releases: &[PathBuf]) -> Result<Vec<PathBuf>> {
        tracing::info!(stemcell = %self.stemcell.slug(), "compiling with stemcell");
        let mut compiled = Vec::with_capacity(releases.len());
        for release in releases {
            let path = self.compile_release(release).await?;
            tracing::info!(path = %path.display(), "finished archiving compiled tarball");
            compiled.push(path);
        }
        Ok(compiled)
    }

    /// Compiles the source packages of the release tarball at `release` and writes the compiled
    /// release into the output directory (see the module docs); returns its path.
    pub async fn compile_release(&self, release: &Path) -> Result<PathBuf> {
        let (work, manifest) = {
            let stemcell = self.stemcell.clone();
            let dirs = self.dirs.clone();
            let output_dir = self.output_dir.clone();
            let release = release.to_owned();
            blocking(move || {
                create_dir(&output_dir, OUTPUT_DIR_MODE)?;
                let work = work_dir(&dirs)?;
                let manifest = unpack(&release, work.path())?;
                let file_name = manifest.compiled_file_name(&stemcell);
                platform::name::check("compiled release file name", &file_name)
                    .map_err(|source| Error::ReleaseName { file_name, source })?;
                Ok((work, manifest))
            })
            .await?
        };
        tracing::info!(
            release = %format!("{}/{}", manifest.name, manifest.version),
            packages = manifest.packages.len(),
            "read the release manifest"
        );

        let compiled = self.compile_packages(&manifest, work.path()).await?;

        let output = self
            .output_dir
            .join(manifest.compiled_file_name(&self.stemcell));
        let slug = self.stemcell.slug();
        blocking(move || {
            write_compiled_release(work.path(), manifest, &compiled, &slug, &output)?;
            let work_path = work.path().to_owned();
            work.close().map_err(|source| Error::File {
                action: "removing",
                path: work_path,
                source,
            })?;
            Ok(output)
        })
        .await
    }

    /// Compiles every source package in dependency order; the compiled tarballs stay in the
    /// blobstore directory `<work>/blobs`.
    async fn compile_packages(
        &self,
        manifest: &ReleaseManifest,
        work: &Path,
    ) -> Result<Vec<(PackageRef, CompiledPackage)>> {
        let blobs_dir = work.join("blobs");
        let blobstore: Arc<dyn Blobstore> = Arc::new(LocalBlobstore::new(&blobs_dir));
        let signed_client =
            blocking(|| SignedClient::try_new(None).map_err(|err| Error::Blobstore(Box::new(err))))
                .await?;
        let installer = Installer::new(self.dirs.clone(), blobstore.clone());
        let compiler = Compiler {
            dirs: &self.dirs,
            blobstore: blobstore.as_ref(),
            signed_client: &signed_client,
            installer: &installer,
            runner: self.runner.clone(),
        };

        let mut compiled: Vec<(PackageRef, CompiledPackage)> = Vec::new();
        for package in compilation_order(&manifest.packages)? {
            tracing::info!(package = %package.name, version = %package.version, "compiling package");
            let compile_error = |source| Error::Compile {
                package: package.name.clone(),
                version: package.version.clone(),
                source: Box::new(source),
            };
            let dependencies = package
                .dependencies
                .iter()
                .filter_map(|dependency| compiled.iter().find(|(p, _)| p.name == *dependency))
                .map(|(dependency, result)| Package {
                    name: dependency.name.clone(),
                    version: dependency.version.clone(),
                    digest: result.digest.clone(),
                    source: BlobSource::Blobstore {
                        id: result.blobstore_id.clone().unwrap_or_default(),
                    },
                })
                .collect();
            let request = Request {
                package: Package {
                    name: package.name.clone(),
                    version: package.version.clone(),
                    digest: parse_digest(package)?,
                    source: BlobSource::Blobstore {
                        id: source_blob_id(&package.name),
                    },
                },
                dependencies,
                upload: UploadTarget::Blobstore,
            };
            let result = compiler.compile(&request).await.map_err(compile_error)?;
            if result.blobstore_id.is_none() {
                return Err(Error::NoBlobId {
                    package: package.name.clone(),
                });
            }
            tracing::info!(package = %package.name, digest = %result.digest, "compiled package");
            compiled.push((package.clone(), result));
        }
        Ok(compiled)
    }
}

/// The blob id of a source package in the work blobstore (Go's `<name>.tgz` in `data/blobs`).
fn source_blob_id(package: &str) -> String {
    format!("{package}.tgz")
}

/// Unpacks `release` into `<work>/release`, reads its manifest, checks its packages and moves
/// their tarballs into the blobstore directory `<work>/blobs`. Nothing is compiled yet.
fn unpack(release: &Path, work: &Path) -> Result<ReleaseManifest> {
    let tree = work.join("release");
    archive::extract(release, &tree, &ExtractOptions::default()).map_err(|source| {
        Error::Unpack {
            release: release.to_owned(),
            source,
        }
    })?;
    let manifest_path = tree.join(RELEASE_MANIFEST);
    let text = match fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NoManifest {
                release: release.to_owned(),
            });
        }
        Err(source) => return Err(file_error("reading", &manifest_path, source)),
    };
    let manifest = ReleaseManifest::parse(&text).map_err(|source| Error::ParseManifest {
        release: release.to_owned(),
        source,
    })?;
    check_package_files(&manifest, &tree.join(SOURCE_PACKAGES_DIR))?;
    compilation_order(&manifest.packages)?;

    let blobs_dir = work.join("blobs");
    create_dir(&blobs_dir, BLOBS_DIR_MODE)?;
    for package in &manifest.packages {
        let file = tree
            .join(SOURCE_PACKAGES_DIR)
            .join(source_blob_id(&package.name));
        let blob = blobs_dir.join(source_blob_id(&package.name));
        fs::rename(&file, &blob).map_err(|source| file_error("moving", &file, source))?;
    }
    remove_tree(&tree.join(SOURCE_PACKAGES_DIR))?;
    Ok(manifest)
}

/// Checks that `packages_dir` holds exactly the manifest's source packages and that each matches
/// its digest.
fn check_package_files(manifest: &ReleaseManifest, packages_dir: &Path) -> Result<()> {
    let listed = |file: &str| {
        manifest
            .packages
            .iter()
            .any(|package| source_blob_id(&package.name) == file)
    };
    match fs::read_dir(packages_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|source| file_error("listing", packages_dir, source))?;
                let file = entry.file_name().to_string_lossy().into_owned();
                if file.ends_with(".tgz") && !listed(&file) {
                    return Err(Error::UnlistedPackage { file });
                }
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(file_error("listing", packages_dir, source)),
    }
    for package in &manifest.packages {
        platform::name::check("package name", &package.name).map_err(|source| {
            Error::PackageName {
                package: package.name.clone(),
                source,
            }
        })?;
        if package.version.is_empty() {
            return Err(Error::NoVersion {
                package: package.name.clone(),
            });
        }
        let path = packages_dir.join(source_blob_id(&package.name));
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingPackage {
                    package: package.name.clone(),
                });
            }
            Err(source) => return Err(file_error("reading", &path, source)),
        };
        parse_digest(package)?
            .verify(io::BufReader::new(file))
            .map_err(|source| Error::Digest {
                package: package.name.clone(),
                source,
            })?;
    }
    Ok(())
}

/// The order Go compiles `packages` in: sorted by name, each package after its dependencies
/// (visited depth first in the order listed).
pub fn compilation_order(packages: &[PackageRef]) -> Result<Vec<&PackageRef>> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        package: &'a PackageRef,
        by_name: &BTreeMap<&str, &'a PackageRef>,
        marks: &mut HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        order: &mut Vec<&'a PackageRef>,
    ) -> Result<()> {
        match marks.get(package.name.as_str()) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| *p == package.name).unwrap_or(0);
                let mut packages: Vec<String> =
                    path[start..].iter().map(|p| (*p).to_owned()).collect();
                packages.push(package.name.clone());
                return Err(Error::Cycle { packages });
            }
            None => {}
        }
        marks.insert(&package.name, Mark::Visiting);
        path.push(&package.name);
        for dependency in &package.dependencies {
            let Some(next) = by_name.get(dependency.as_str()) else {
                return Err(Error::UnknownDependency {
                    package: package.name.clone(),
                    dependency: dependency.clone(),
                });
            };
            visit(next, by_name, marks, path, order)?;
        }
        path.pop();
        marks.insert(&package.name, Mark::Done);
        order.push(package);
        Ok(())
    }

    let mut by_name = BTreeMap::new();
    for package in packages {
        if by_name.insert(package.name.as_str(), package).is_some() {
            return Err(Error::DuplicatePackage {
                package: package.name.clone(),
            });
        }
    }
    let mut marks = HashMap::new();
    let mut order = Vec::with_capacity(packages.len());
    for package in by_name.values() {
        visit(package, &by_name, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Turns the unpacked release in `<work>/release` into the compiled release and packs it at
/// `output`: the compiled tarballs move from `<work>/blobs` to `compiled_packages/`, and
/// `release.MF` is rewritten.
fn write_compiled_release(
    work: &Path,
    mut manifest: ReleaseManifest,
    compiled: &[(PackageRef, CompiledPackage)],
    stemcell_slug: &str,
    output: &Path,
) -> Result<()> {
    let tree = work.join("release");
    let compiled_dir = tree.join(COMPILED_PACKAGES_DIR);
    if !compiled.is_empty() {
        create_dir(&compiled_dir, COMPILED_PACKAGES_DIR_MODE)?;
    }
    for (package, result) in compiled {
        let blob = work
            .join("blobs")
            .join(result.blobstore_id.as_deref().unwrap_or_default());
        let file = compiled_dir.join(format!("{}.tgz", package.name));
        fs::rename(&blob, &file).map_err(|source| file_error("moving", &blob, source))?;
        manifest.compiled_packages.push(CompiledPackageRef {
            name: package.name.clone(),
            version: package.version.clone(),
            fingerprint: package.fingerprint.clone(),
            sha1: result.digest.to_string(),
            stemcell: stemcell_slug.to_owned(),
            dependencies: package.dependencies.clone(),
        });
    }
    manifest.packages.clear();
    let text = serde_yaml_ng::to_string(&manifest).map_err(Error::WriteManifest)?;
    let manifest_path = tree.join(RELEASE_MANIFEST);
    fs::write(&manifest_path, text)
        .map_err(|source| file_error("writing", &manifest_path, source))?;
    archive::create(&tree, output).map_err(|source| Error::Pack {
        path: output.to_owned(),
        source,
    })
}

/// `KEY=value` lines of an os-release file; double- or single-quoted values are unquoted.
fn parse_os_release(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|quote| {
                    value
                        .strip_prefix(*quote)
                        .and_then(|rest| rest.strip_suffix(*quote))
                })
                .unwrap_or(value);
            (key.trim().to_owned(), unquoted.replace("\\\"", "\""))
        })
        .collect()
}

fn parse_digest(package: &PackageRef) -> Result<MultiDigest> {
    MultiDigest::parse(&package.sha1).map_err(|source| Error::Digest {
        package: package.name.clone(),
        source,
    })
}

/// A fresh temporary directory under `data/tmp`, which is created if missing.
fn work_dir(dirs: &Dirs) -> Result<tempfile::TempDir> {
    let tmp_dir = dirs.tmp_dir();
    create_dir(&tmp_dir, TMP_DIR_MODE)?;
    tempfile::Builder::new()
        .prefix("bosh-agent-compile-release-")
        .tempdir_in(&tmp_dir)
        .map_err(|source| file_error("creating a temporary directory in", &tmp_dir, source))
}

fn create_dir(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| file_error("creating", path, source))
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(file_error("removing", path, err)),
        _ => Ok(()),
    }
}

fn file_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::File {
        action,
        path: path.to_owned(),
        source,
    }
}

/// `null` as the default value, as Go's YAML decoding leaves a field at its zero value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::Task)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, dependencies: &[&str]) -> PackageRef {
        PackageRef {
            name: name.to_owned(),
            version: format!("{name}-version"),
            dependencies: dependencies.iter().map(|d| (*d).to_owned()).collect(),
            ..PackageRef::default()
        }
    }

    fn names(order: &[&PackageRef]) -> Vec<String> {
        order.iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn packages_compile_after_their_dependencies_in_name_order() {
        let packages = [
            package("zeta", &["golang", "alpha"]),
            package("alpha", &[]),
            package("golang", &[]),
            package("app", &["zeta"]),
        ];
        let order = compilation_order(&packages).unwrap();
        // Go: sorted by name, each visited depth first with its dependencies in the order listed.
        assert_eq!(names(&order), ["alpha", "golang", "zeta", "app"]);
    }

    #[test]
    fn cycles_duplicates_and_unknown_dependencies_are_refused() {
        let cycle = [
            package("a", &["b"]),
            package("b", &["c"]),
            package("c", &["a"]),
        ];
        let err = compilation_order(&cycle).unwrap_err();
        assert_eq!(err.to_string(), "cycle detected: a -> b -> c -> a");

        let unknown = [package("a", &["nope"])];
        let err = compilation_order(&unknown).unwrap_err();
        assert_eq!(
            err.to_string(),
            "package 'a' depends on 'nope', which is not a source package of the release"
        );

        let twice = [package("a", &[]), package("a", &[])];
        assert!(matches!(
            compilation_order(&twice),
            Err(Error::DuplicatePackage { package }) if package == "a"
        ));
    }

    #[test]
    fn manifests_parse_as_bosh_cli_writes_them() {
        // bosh-cli (Go yaml.v3) indents by four and may leave numbers unquoted; null is empty.
        let text = "name: hello\nversion: 1\ncommit_hash: abc123\nuncommitted_changes: true\njobs:\n    - name: web\n      version: 5e1f\n      fingerprint: 5e1f\n      sha1: sha256:00ff\n      packages:\n        - hello\npackages:\n    - name: hello\n      version: 0.5\n      fingerprint: 0.5\n      sha1: 1234abcd\n      dependencies: []\n    - name: greeter\n      version: 7\n      sha1: 5678\n      dependencies: null\nlicense:\n    version: lic\n    fingerprint: lic\n    sha1: 99\nunknown_key: dropped\n";
        let manifest = ReleaseManifest::parse(text).unwrap();
        assert_eq!(manifest.name, "hello");
        assert_eq!(manifest.version, "1");
        assert!(manifest.uncommitted_changes);
        assert_eq!(manifest.jobs[0].packages, ["hello"]);
        assert_eq!(manifest.jobs[0].sha1, "sha256:00ff");
        assert_eq!(manifest.packages[0].version, "0.5");
        assert_eq!(manifest.packages[1].version, "7");
        assert_eq!(manifest.packages[1].sha1, "5678");
        assert!(manifest.packages[1].dependencies.is_empty());
        assert_eq!(manifest.license.as_ref().unwrap().sha1, "99");

        // Written back: source packages gone, fields in Go's order, and it parses again.
        let mut compiled = manifest.clone();
        compiled.packages.clear();
        let written = serde_yaml_ng::to_string(&compiled).unwrap();
        assert!(!written.contains("packages:\n- name: hello"), "{written}");
        assert!(!written.contains("compiled_packages"), "{written}");
        assert!(
            written.starts_with("name: hello\nversion: '1'\n"),
            "{written}"
        );
        assert_eq!(ReleaseManifest::parse(&written).unwrap(), compiled);

        let err = ReleaseManifest::parse("name: [a list]\n").unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
    }

    /// A compilation under a temp dir, for the release tarball built from `files`.
    fn compilation(dir: &Path, files: &[(&str, &str)]) -> (Compilation, PathBuf) {
        let tree = dir.join("tree");
        for (path, text) in files {
            let path = tree.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let release = dir.join("release.tgz");
        archive::create(&tree, &release).unwrap();
        let compilation = Compilation {
            dirs: Dirs::new(dir.join("base")),
            stemcell: Stemcell {
                os: "ubuntu".into(),
                codename: "noble".into(),
                version: "1.5".into(),
            },
            output_dir: dir.join("out"),
            runner: Arc::new(platform::cmd::SystemRunner),
        };
        (compilation, release)
    }

    #[tokio::test]
    async fn a_release_name_that_leaves_the_output_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (compilation, release) = compilation(
            dir.path(),
            &[(
                "release.MF",
                "name: ../../escape
version: 1
",
            )],
        );
        let err = compilation.compile_release(&release).await.unwrap_err();
        assert!(matches!(err, Error::ReleaseName { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn compiled_packages_a_release_already_has_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = "name: done\nversion: 2\ncompiled_packages:\n- name: tool\n  version: v\n  fingerprint: v\n  sha1: abc\n  stemcell: ubuntu-jammy/1.1\n  dependencies: []\n";
        let (compilation, release) = compilation(
            dir.path(),
            &[
                ("release.MF", manifest),
                ("compiled_packages/tool.tgz", "compiled"),
            ],
        );
        let output = compilation.compile_release(&release).await.unwrap();
        assert_eq!(output, dir.path().join("out/done-2-ubuntu-noble-1.5.tgz"));
        let unpacked = dir.path().join("unpacked");
        archive::extract(&output, &unpacked, &ExtractOptions::default()).unwrap();
        let written = ReleaseManifest::parse(
            &std::fs::read_to_string(unpacked.join(RELEASE_MANIFEST)).unwrap(),
        )
        .unwrap();
        assert_eq!(written, ReleaseManifest::parse(manifest).unwrap());
        assert_eq!(
            std::fs::read_to_string(unpacked.join("compiled_packages/tool.tgz")).unwrap(),
            "compiled"
        );
        assert_eq!(
            std::fs::read_dir(compilation.dirs.tmp_dir())
                .unwrap()
                .count(),
            0,
            "the work directory is removed"
        );
    }

    #[test]
    fn the_stemcell_comes_from_stemcell_version_and_os_release() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("stemcell_version");
        let os_release = dir.path().join("os-release");
        std::fs::write(&version, "1.423\n").unwrap();
        std::fs::write(
            &os_release,
            "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nID=ubuntu\nVERSION_CODENAME='jammy'",
        )
        .unwrap();
        let stemcell = Stemcell::read(&version, &os_release).unwrap();
        assert_eq!(stemcell.slug(), "ubuntu-jammy/1.423");
        let manifest = ReleaseManifest {
            name: "log-cache".into(),
            version: "3.0.9".into(),
            ..ReleaseManifest::default()
        };
        assert_eq!(
            manifest.compiled_file_name(&stemcell),
            "log-cache-3.0.9-ubuntu-jammy-1.423.tgz"
        );

        std::fs::write(&os_release, "ID=ubuntu\n").unwrap();
        let err = Stemcell::read(&version, &os_release).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("VERSION_CODENAME not found in "),
            "{err}"
        );
        let missing = Stemcell::read(&dir.path().join("none"), &os_release).unwrap_err();
        assert!(matches!(missing, Error::StemcellFile { .. }), "{missing}");
    }
}
