//! Package compilation, the library behind the `compile_package` and
//! `compile_package_with_signed_url` actions (reference/bosh-agent.md §3.3). Follows the Go agent's
//! `agent/compiler/concrete_compiler.go` and `agent/compiler/compiler_unix.go`, its packaging
//! runner `agent/cmdrunner/file_logging_cmd_runner.go` (output kept in log files, the last 10 KiB
//! in the error), and `agent/action/compile_package.go` and
//! `agent/action/compile_package_with_signed_url.go` for the request and the result shapes.
//!
//! [`Compiler::compile`] does, in order:
//! 1. check every name, version and blob reference (nothing is touched on bad input);
//! 2. remove every installed package ([`DependencyInstaller::keep_only`] with nothing wanted);
//! 3. install and enable each dependency as `packages/<dep>` ([`DependencyInstaller::install`]);
//! 4. download the source blob, verified against its digest, into a temporary directory under
//!    `data/tmp`;
//! 5. extract it to `data/compile/<name>-bosh-agent-unpack` and rename that to
//!    `data/compile/<name>` (an old one is removed first);
//! 6. create the empty install dir `data/packages/<name>/<sha1(version)>` and enable it as
//!    `packages/<name>`;
//! 7. if `packaging` exists, run `bash -x packaging` in the compile dir with `BOSH_COMPILE_TARGET`,
//!    `BOSH_INSTALL_TARGET` (`packages/<name>`), `BOSH_PACKAGE_NAME` and `BOSH_PACKAGE_VERSION`
//!    added to the agent's own environment, at the agent's priority (Go sets nothing else), and
//!    keep its output in `sys/log/compilation/packaging.{stdout,stderr}.log` (that directory is
//!    wiped first);
//! 8. pack the install dir into a tgz and upload it: to the blobstore (a new blob id and its sha1)
//!    or with a PUT to a signed URL (its `sha1;sha512:<hex>` digest);
//! 9. remove the compile dir, the install dir and its link (also after a failure), and then every
//!    installed package again (after a failure the dependencies stay until the next compilation
//!    removes them, as in Go).
//!
//! A dependency installs through the [`DependencyInstaller`] the caller passes in, because package
//! installation (shared with `apply`) lives elsewhere.
//!
//! Where we differ from Go:
//! - Go drops the start of an output up to its first line break (within the first quarter) even
//!   when nothing was cut, so a one-line message vanished from the error; we do that only when the
//!   output was cut, and an output of exactly 10 KiB is not called truncated.
//! - The compiled package is always gzip-compressed; Go leaves it uncompressed when the source was
//!   an uncompressed tar. Either unpacks the same way everywhere.
//! - The install dir is not chowned to `root:vcap` (that needs the platform; the real installer
//!   owns ownership), and on failure the install dir and its link are removed at once rather than
//!   by the next compilation.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use platform::cmd::{self, Cmd, CommandRunner};
use settings::Dirs;
use settings::digest::{self, Algorithm, MultiDigest};

use crate::archive::{self, ExtractOptions};
use crate::blobstore::{self, Blobstore, BoxError, BoxFuture, SignedClient};

/// The script a source package may carry; it builds the package into `BOSH_INSTALL_TARGET`.
pub const PACKAGING_SCRIPT: &str = "packaging";

/// How much of each of the packaging script's outputs a failure reports: the last 10 KiB
/// (`app/app.go`, `NewFileLoggingCmdRunner(..., 10*1024)`).
pub const OUTPUT_TAIL_BYTES: usize = 10 * 1024;

/// The suffix of the directory a source package is first extracted to.
const UNPACK_SUFFIX: &str = "-bosh-agent-unpack";

/// The directory under `sys/log` that holds the packaging logs (the Go runner's "job name").
const LOGS_SUBDIR: &str = "compilation";

/// Mode of the install dir and of the directories created for it (the packages bundle mode).
const PACKAGE_DIR_MODE: u32 = 0o755;

/// Mode of `sys/log/compilation` and of its log files, as the Go runner makes them.
const LOGS_DIR_MODE: u32 = 0o750;
const LOG_FILE_MODE: u32 = 0o640;

/// Mode of `data/tmp` when we have to create it (reference/bosh-agent.md §6.1).
const TMP_DIR_MODE: u32 = 0o755;

pub use crate::install::plan::BlobSource;

/// A package and its blob: the source package to compile, or a compiled dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Its name, one plain path component.
    pub name: String,
    /// Its version (`<version>.<build>` from the director for the package being compiled).
    pub version: String,
    /// The digest its blob must have.
    pub digest: MultiDigest,
    /// Where its blob is.
    pub source: BlobSource,
}

/// Where the compiled package goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadTarget {
    /// A new blob in the agent's blobstore.
    Blobstore,
    /// A PUT to a pre-signed URL.
    SignedUrl {
        /// The URL.
        url: String,
        /// Headers to send with it.
        headers: BTreeMap<String, String>,
    },
}

/// One compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The source package.
    pub package: Package,
    /// Its compiled dependencies, installed as `packages/<name>` before the packaging script runs.
    pub dependencies: Vec<Package>,
    /// Where the compiled package goes.
    pub upload: UploadTarget,
}

/// One entry of the `deps` argument, as the director sends it (Go `compiler.Package`). Decode it
/// with `settings::gojson` (keys case-insensitive, `null` as empty, unknown keys ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DependencySpec {
    /// The package name.
    pub name: String,
    /// The package version.
    pub version: String,
    /// The multi-digest of its compiled blob.
    pub sha1: String,
    /// Its blob id; used when there is no signed URL (always, for `compile_package`).
    pub blobstore_id: String,
    /// A signed GET URL of its blob (`compile_package_with_signed_url` only).
    pub package_get_signed_url: String,
    /// Headers for the signed URL.
    pub blobstore_headers: BTreeMap<String, String>,
}

/// The argument of `compile_package_with_signed_url` (Go `CompilePackageWithSignedURLRequest`).
/// Decode it with `settings::gojson`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SignedUrlRequest {
    /// Where to GET the source package.
    pub package_get_signed_url: String,
    /// Where to PUT the compiled package; empty means the agent's blobstore.
    pub upload_signed_url: String,
    /// Headers for both URLs.
    pub blobstore_headers: BTreeMap<String, String>,
    /// The multi-digest of the source package.
    pub digest: String,
    /// The package name.
    pub name: String,
    /// The package version.
    pub version: String,
    /// Dependencies by name (the keys are not used, as in Go).
    pub deps: BTreeMap<String, DependencySpec>,
}

/// What a compilation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPackage {
    /// The new blob's id, when it went to the blobstore.
    pub blobstore_id: Option<String>,
    /// Its digest: sha1 from the blobstore, `sha1;sha512:<hex>` from a signed-URL upload.
    pub digest: MultiDigest,
}

/// Installs compiled dependencies for a compilation. The agent passes its package installer (the
/// one `apply` uses); tests pass a small one.
pub trait DependencyInstaller: Send + Sync + fmt::Debug {
    /// Disables and uninstalls every installed package that is not in `keep`: removes the
    /// `packages/<name>` links and the `data/packages/<name>/<hash>` dirs (Go `KeepOnly`).
    fn keep_only<'a>(&'a self, keep: &'a [Package]) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Downloads `package` (verified against its digest) and installs it unless it is there, then
    /// enables it as `packages/<name>` (Go `compiledPackageApplier.Apply`).
    fn install<'a>(&'a self, package: &'a Package) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// What a compilation uses.
#[derive(Debug, Clone)]
pub struct Compiler<'a> {
    /// Paths under the base dir.
    pub dirs: &'a Dirs,
    /// The agent's blobstore, for blob ids and blobstore uploads.
    pub blobstore: &'a dyn Blobstore,
    /// The client for signed URLs.
    pub signed_client: &'a SignedClient,
    /// Installs the dependencies.
    pub installer: &'a dyn DependencyInstaller,
    /// Runs the packaging script.
    pub runner: Arc<dyn CommandRunner>,
}

/// The result of the functions in this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a package was not compiled. Texts name the package; causes are in the source chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The package name cannot name a directory.
    #[error("invalid name of package '{package}'")]
    Name {
        /// The name as given.
        package: String,
        /// The cause.
        #[source]
        source: platform::name::Error,
    },
    /// A dependency's name cannot name a directory.
    #[error("invalid name of dependency '{dependency}' of package '{package}'")]
    DependencyName {
        /// The package being compiled.
        package: String,
        /// The dependency's name as given.
        dependency: String,
        /// The cause.
        #[source]
        source: platform::name::Error,
    },
    /// The package has an empty version (Go panics on it).
    #[error("package '{package}' has no version")]
    Version {
        /// The package.
        package: String,
    },
    /// A dependency has an empty version.
    #[error("dependency '{dependency}' of package '{package}' has no version")]
    DependencyVersion {
        /// The package being compiled.
        package: String,
        /// The dependency.
        dependency: String,
    },
    /// The source digest does not parse; the cause has the Go text.
    #[error("digest of package '{package}'")]
    Digest {
        /// The package.
        package: String,
        /// The cause.
        #[source]
        source: digest::Error,
    },
    /// A dependency's digest does not parse.
    #[error("digest of dependency '{dependency}' of package '{package}'")]
    DependencyDigest {
        /// The package being compiled.
        package: String,
        /// The dependency.
        dependency: String,
        /// The cause.
        #[source]
        source: digest::Error,
    },
    /// Neither a blob id nor a signed URL for the source (Go: `No blobstore reference for package
    /// '<name>'`).
    #[error("no blobstore reference for package '{package}'")]
    NoBlobReference {
        /// The package.
        package: String,
    },
    /// Neither a blob id nor a signed URL for a dependency.
    #[error("no blobstore reference for dependency '{dependency}' of package '{package}'")]
    NoDependencyBlobReference {
        /// The package being compiled.
        package: String,
        /// The dependency.
        dependency: String,
    },
    /// Removing the installed packages failed.
    #[error("removing installed packages for package '{package}'")]
    RemovePackages {
        /// The package being compiled.
        package: String,
        /// The installer's error.
        #[source]
        source: BoxError,
    },
    /// Installing a dependency failed.
    #[error("installing dependency '{dependency}' of package '{package}'")]
    InstallDependency {
        /// The package being compiled.
        package: String,
        /// The dependency.
        dependency: String,
        /// The installer's error.
        #[source]
        source: BoxError,
    },
    /// Downloading the source failed, or it does not have its digest.
    #[error("fetching the source of package '{package}'")]
    Fetch {
        /// The package.
        package: String,
        /// The cause (boxed: blobstore errors are large).
        #[source]
        source: Box<blobstore::Error>,
    },
    /// The source is not an archive we unpack.
    #[error("unpacking the source of package '{package}'")]
    Unpack {
        /// The package.
        package: String,
        /// The cause.
        #[source]
        source: archive::Error,
    },
    /// A directory, link or log file could not be made or removed.
    #[error("{action} {} for package '{package}'", .path.display())]
    File {
        /// The package.
        package: String,
        /// What was done (`creating`, `removing`, `linking`, ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The packaging script exited unsuccessfully; the cause is the Go text with its output.
    #[error("running the packaging script of package '{package}'")]
    Packaging {
        /// The package.
        package: String,
        /// How it ended.
        #[source]
        source: ScriptExited,
    },
    /// `bash` could not be started.
    #[error("running the packaging script of package '{package}'")]
    PackagingCommand {
        /// The package.
        package: String,
        /// The cause.
        #[source]
        source: Box<cmd::Error>,
    },
    /// Packing the install dir failed.
    #[error("packing compiled package '{package}'")]
    Pack {
        /// The package.
        package: String,
        /// The cause.
        #[source]
        source: archive::Error,
    },
    /// Uploading the compiled package failed.
    #[error("uploading compiled package '{package}'")]
    Upload {
        /// The package.
        package: String,
        /// The cause (boxed: blobstore errors are large).
        #[source]
        source: Box<blobstore::Error>,
    },
    /// A blocking step panicked or was cancelled.
    #[error("compiling package '{package}' did not finish")]
    Task {
        /// The package.
        package: String,
        /// The cause.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// A packaging script that exited unsuccessfully, shown as the Go agent shows it:
/// `Command exited with <n>; Stdout: <out>, Stderr: <err>`, with `Truncated stdout` or
/// `Truncated stderr` when only the tail of that output is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptExited {
    /// The exit code, or -1 when a signal ended it (as Go reports it).
    pub exit_status: i32,
    /// The end of its standard output.
    pub stdout: OutputTail,
    /// The end of its standard error.
    pub stderr: OutputTail,
}

/// The end of a command's output, at most [`OUTPUT_TAIL_BYTES`] long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputTail {
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// Whether the start of the output was cut off.
    pub is_truncated: bool,
}

impl Request {
    /// The request of `compile_package(blobstore_id, sha1, name, version, deps)`: the source and
    /// the dependencies come from the blobstore by id (the dependencies' signed URLs are ignored,
    /// as in Go), and the compiled package goes to the blobstore.
    pub fn compile_package(
        blobstore_id: &str,
        sha1: &str,
        name: &str,
        version: &str,
        deps: &BTreeMap<String, DependencySpec>,
    ) -> Result<Request> {
        let digest = parse_digest(name, sha1)?;
        if blobstore_id.is_empty() {
            return Err(Error::NoBlobReference {
                package: name.to_owned(),
            });
        }
        let dependencies = deps
            .values()
            .map(|spec| spec.to_package(name, false))
            .collect::<Result<_>>()?;
        Ok(Request {
            package: Package {
                name: name.to_owned(),
                version: version.to_owned(),
                digest,
                source: BlobSource::Blobstore {
                    id: blobstore_id.to_owned(),
                },
            },
            dependencies,
            upload: UploadTarget::Blobstore,
        })
    }

    /// The request of `compile_package_with_signed_url`: the source from its signed URL, the
    /// dependencies from theirs (else from the blobstore by id), and the compiled package PUT to
    /// `upload_signed_url` (or, when that is empty, into the blobstore, as Go does).
    pub fn compile_package_with_signed_url(request: &SignedUrlRequest) -> Result<Request> {
        let name = &request.name;
        let digest = parse_digest(name, &request.digest)?;
        if request.package_get_signed_url.is_empty() {
            return Err(Error::NoBlobReference {
                package: name.clone(),
            });
        }
        let dependencies = request
            .deps
            .values()
            .map(|spec| spec.to_package(name, true))
            .collect::<Result<_>>()?;
        let upload = if request.upload_signed_url.is_empty() {
            UploadTarget::Blobstore
        } else {
            UploadTarget::SignedUrl {
                url: request.upload_signed_url.clone(),
                headers: request.blobstore_headers.clone(),
            }
        };
        Ok(Request {
            package: Package {
                name: name.clone(),
                version: request.version.clone(),
                digest,
                source: BlobSource::SignedUrl {
                    url: request.package_get_signed_url.clone(),
                    headers: request.blobstore_headers.clone(),
                },
            },
            dependencies,
            upload,
        })
    }
}

impl DependencySpec {
    /// The dependency as a [`Package`] of `package`'s compilation; its signed URL is used only
    /// when `use_signed_url` (the signed-URL action) and it is not empty.
    pub fn to_package(&self, package: &str, use_signed_url: bool) -> Result<Package> {
        let digest = MultiDigest::parse(&self.sha1).map_err(|source| Error::DependencyDigest {
            package: package.to_owned(),
            dependency: self.name.clone(),
            source,
        })?;
        let source = if use_signed_url && !self.package_get_signed_url.is_empty() {
            BlobSource::SignedUrl {
                url: self.package_get_signed_url.clone(),
                headers: self.blobstore_headers.clone(),
            }
        } else if !self.blobstore_id.is_empty() {
            BlobSource::Blobstore {
                id: self.blobstore_id.clone(),
            }
        } else {
            return Err(Error::NoDependencyBlobReference {
                package: package.to_owned(),
                dependency: self.name.clone(),
            });
        };
        Ok(Package {
            name: self.name.clone(),
            version: self.version.clone(),
            digest,
            source,
        })
    }
}

impl CompiledPackage {
    /// The value of `compile_package`: `{"result":{"blobstore_id":"<id>","sha1":"<digest>"}}`.
    pub fn compile_package_value(&self) -> Value {
        json!({
            "result": {
                "blobstore_id": self.blobstore_id.as_deref().unwrap_or_default(),
                "sha1": self.digest.to_string(),
            }
        })
    }

    /// The value of `compile_package_with_signed_url`: `{"result":{"sha1":"<digest>"}}`, the digest
    /// being `<sha1>;sha512:<hex>` after a signed-URL upload.
    pub fn compile_package_with_signed_url_value(&self) -> Value {
        json!({ "result": { "sha1": self.digest.to_string() } })
    }
}

impl Compiler<'_> {
    /// Compiles `request.package` (see the module docs for the steps) and uploads the result.
    pub async fn compile(&self, request: &Request) -> Result<CompiledPackage> {
        let package = &request.package;
        let layout = Layout::new(self.dirs, package)?;
        check_dependencies(request)?;

        self.installer
            .keep_only(&[])
            .await
            .map_err(|source| Error::RemovePackages {
                package: package.name.clone(),
                source,
            })?;
        for dependency in &request.dependencies {
            self.installer.install(dependency).await.map_err(|source| {
                Error::InstallDependency {
                    package: package.name.clone(),
                    dependency: dependency.name.clone(),
                    source,
                }
            })?;
        }

        let work = {
            let layout = layout.clone();
            blocking(&package.name, move || layout.create_work_dir()).await?
        };
        let outcome = self.compile_in(request, &layout, work.path()).await;
        let cleaned = {
            let layout = layout.clone();
            blocking(&package.name, move || layout.clean_up(work)).await
        };
        let compiled = match (outcome, cleaned) {
            (Ok(compiled), Ok(())) => compiled,
            (Ok(_), Err(err)) => return Err(err),
            (Err(err), Ok(())) => return Err(err),
            (Err(err), Err(cleanup)) => {
                tracing::warn!(
                    package = %package.name,
                    error = %settings::source::error_chain(&cleanup),
                    "cleaning up after a failed compilation failed"
                );
                return Err(err);
            }
        };

        self.installer
            .keep_only(&[])
            .await
            .map_err(|source| Error::RemovePackages {
                package: package.name.clone(),
                source,
            })?;
        tracing::debug!(package = %package.name, digest = %compiled.digest, "compiled package");
        Ok(compiled)
    }

    /// Steps 4 to 8, in the temporary directory `work`.
    async fn compile_in(
        &self,
        request: &Request,
        layout: &Layout,
        work: &Path,
    ) -> Result<CompiledPackage> {
        let package = &request.package;
        let source = work.join("source");
        self.fetch(package, &source)
            .await
            .map_err(|err| Error::Fetch {
                package: package.name.clone(),
                source: Box::new(err),
            })?;

        let compiled = work.join("compiled.tgz");
        {
            let layout = layout.clone();
            let runner = self.runner.clone();
            let compiled = compiled.clone();
            blocking(&package.name, move || {
                layout.build(runner.as_ref(), &source, &compiled)
            })
            .await?;
        }

        let upload_error = |source| Error::Upload {
            package: package.name.clone(),
            source: Box::new(source),
        };
        match &request.upload {
            UploadTarget::Blobstore => {
                let (blobstore_id, digest) =
                    self.blobstore.put(&compiled).await.map_err(upload_error)?;
                Ok(CompiledPackage {
                    blobstore_id: Some(blobstore_id),
                    digest,
                })
            }
            UploadTarget::SignedUrl { url, headers } => {
                let digest = self
                    .signed_client
                    .put_signed(url, headers, &compiled)
                    .await
                    .map_err(upload_error)?;
                Ok(CompiledPackage {
                    blobstore_id: None,
                    digest,
                })
            }
        }
    }

    /// Downloads `package`'s blob to `destination`, verified.
    async fn fetch(&self, package: &Package, destination: &Path) -> blobstore::Result<()> {
        match &package.source {
            BlobSource::Blobstore { id: blobstore_id } => {
                self.blobstore
                    .get(blobstore_id, &package.digest, destination)
                    .await
            }
            BlobSource::SignedUrl { url, headers } => {
                self.signed_client
                    .get_signed(url, headers, &package.digest, destination)
                    .await
            }
        }
    }
}

impl OutputTail {
    /// The last `limit` bytes of `output`. When the start was cut, the partial first line goes too
    /// if the first line break is within the first quarter of the tail, else any partial UTF-8
    /// character (`getTruncatedOutput` and `truncateUntilToken` of the Go runner).
    pub fn of(output: &[u8], limit: usize) -> OutputTail {
        if output.len() <= limit {
            return OutputTail {
                text: String::from_utf8_lossy(output).into_owned(),
                is_truncated: false,
            };
        }
        let mut tail = &output[output.len() - limit..];
        match tail.iter().position(|&byte| byte == b'\n') {
            Some(newline) if newline <= limit / 4 => {
                tail = &tail[newline + 1..];
                if tail.first() == Some(&b'\r') {
                    tail = &tail[1..];
                }
            }
            _ => {
                while !tail.is_empty() && tail[0] >= 0x80 && !starts_with_full_char(tail) {
                    tail = &tail[1..];
                }
            }
        }
        OutputTail {
            text: String::from_utf8_lossy(tail).into_owned(),
            is_truncated: true,
        }
    }
}

impl ScriptExited {
    /// How a command ended with `exit_status` after printing `stdout` and `stderr`, keeping the last
    /// [`OUTPUT_TAIL_BYTES`] of each.
    pub fn new(exit_status: i32, stdout: &[u8], stderr: &[u8]) -> ScriptExited {
        ScriptExited {
            exit_status,
            stdout: OutputTail::of(stdout, OUTPUT_TAIL_BYTES),
            stderr: OutputTail::of(stderr, OUTPUT_TAIL_BYTES),
        }
    }
}

impl fmt::Display for ScriptExited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stdout_title = if self.stdout.is_truncated {
            "Truncated stdout"
        } else {
            "Stdout"
        };
        let stderr_title = if self.stderr.is_truncated {
            "Truncated stderr"
        } else {
            "Stderr"
        };
        write!(
            f,
            "Command exited with {}; {stdout_title}: {}, {stderr_title}: {}",
            self.exit_status, self.stdout.text, self.stderr.text
        )
    }
}

impl std::error::Error for ScriptExited {}

/// Every path one compilation touches, computed without IO.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    /// The package name, for errors.
    package: String,
    /// The package version.
    version: String,
    /// `data/compile/<name>`: the unpacked source, where the packaging script runs.
    compile_dir: PathBuf,
    /// `data/compile/<name>-bosh-agent-unpack`.
    unpack_dir: PathBuf,
    /// `data/packages/<name>/<sha1(version)>`.
    install_dir: PathBuf,
    /// `packages/`.
    packages_dir: PathBuf,
    /// `packages/<name>`: the link to the install dir, `BOSH_INSTALL_TARGET`.
    enable_path: PathBuf,
    /// `sys/log/compilation`.
    logs_dir: PathBuf,
    /// `data/tmp`: where the source and the compiled tarball are kept while compiling.
    tmp_dir: PathBuf,
}

impl Layout {
    fn new(dirs: &Dirs, package: &Package) -> Result<Layout> {
        let name = &package.name;
        let name_error = |source| Error::Name {
            package: name.clone(),
            source,
        };
        let compile_dir =
            platform::name::join(&dirs.compile_dir(), "package name", name).map_err(name_error)?;
        if package.version.is_empty() {
            return Err(Error::Version {
                package: name.clone(),
            });
        }
        // Go names the install dir after the sha1 of the version alone (`LocalPackage`).
        let version_digest = MultiDigest::compute(package.version.as_bytes(), &[Algorithm::Sha1])
            .map_err(|source| Error::Digest {
            package: name.clone(),
            source,
        })?;
        let version_hash = version_digest
            .digests()
            .first()
            .map(|digest| digest.hex.clone())
            .unwrap_or_default();
        Ok(Layout {
            package: name.clone(),
            version: package.version.clone(),
            unpack_dir: dirs.compile_dir().join(format!("{name}{UNPACK_SUFFIX}")),
            compile_dir,
            install_dir: dirs.data_packages_dir().join(name).join(version_hash),
            packages_dir: dirs.packages_dir(),
            enable_path: dirs.packages_dir().join(name),
            logs_dir: dirs.logs_dir().join(LOGS_SUBDIR),
            tmp_dir: dirs.tmp_dir(),
        })
    }

    /// A fresh temporary directory under `data/tmp`, which is created if missing.
    fn create_work_dir(&self) -> Result<tempfile::TempDir> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(TMP_DIR_MODE)
            .create(&self.tmp_dir)
            .map_err(|err| self.file_error("creating", &self.tmp_dir, err))?;
        tempfile::Builder::new()
            .prefix("bosh-agent-compile-")
            .tempdir_in(&self.tmp_dir)
            .map_err(|err| self.file_error("creating a temporary directory in", &self.tmp_dir, err))
    }

    /// Steps 5 to 8 but the upload: unpack `source`, make and enable the install dir, run the
    /// packaging script, pack the install dir into `compiled`.
    fn build(&self, runner: &dyn CommandRunner, source: &Path, compiled: &Path) -> Result<()> {
        self.unpack(source)?;
        self.create_install_dir()?;
        self.enable()?;
        self.run_packaging(runner)?;
        archive::create(&self.install_dir, compiled).map_err(|source| Error::Pack {
            package: self.package.clone(),
            source,
        })
    }

    /// Extracts `source` next to the compile dir, then renames it into place; an old compile dir
    /// is removed first, so a bad archive leaves none.
    fn unpack(&self, source: &Path) -> Result<()> {
        self.remove(&self.compile_dir)?;
        self.remove(&self.unpack_dir)?;
        archive::extract(source, &self.unpack_dir, &ExtractOptions::default()).map_err(
            |source| Error::Unpack {
                package: self.package.clone(),
                source,
            },
        )?;
        fs::rename(&self.unpack_dir, &self.compile_dir)
            .map_err(|err| self.file_error("moving the unpacked source to", &self.compile_dir, err))
    }

    /// An empty install dir, mode 0755 whatever the umask.
    fn create_install_dir(&self) -> Result<()> {
        self.remove(&self.install_dir)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(PACKAGE_DIR_MODE)
            .create(&self.install_dir)
            .and_then(|()| {
                fs::set_permissions(
                    &self.install_dir,
                    fs::Permissions::from_mode(PACKAGE_DIR_MODE),
                )
            })
            .map_err(|err| self.file_error("creating", &self.install_dir, err))
    }

    /// Points `packages/<name>` at the install dir, replacing an old link atomically.
    fn enable(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(PACKAGE_DIR_MODE)
            .create(&self.packages_dir)
            .map_err(|err| self.file_error("creating", &self.packages_dir, err))?;
        let staged = self
            .packages_dir
            .join(format!(".{}-bosh-agent-enable", self.package));
        self.remove(&staged)?;
        std::os::unix::fs::symlink(&self.install_dir, &staged)
            .map_err(|err| self.file_error("linking", &staged, err))?;
        fs::rename(&staged, &self.enable_path).map_err(|err| {
            let _ = fs::remove_file(&staged);
            self.file_error("linking", &self.enable_path, err)
        })
    }

    /// Removes `packages/<name>` if it still points at our install dir.
    fn disable(&self) -> Result<()> {
        match fs::read_link(&self.enable_path) {
            Ok(target) if target == self.install_dir => fs::remove_file(&self.enable_path)
                .map_err(|err| self.file_error("removing", &self.enable_path, err)),
            _ => Ok(()),
        }
    }

    /// Runs `packaging` if the source has one, keeping its output in the log files.
    fn run_packaging(&self, runner: &dyn CommandRunner) -> Result<()> {
        if !self.compile_dir.join(PACKAGING_SCRIPT).exists() {
            tracing::debug!(package = %self.package, "no packaging script");
            return Ok(());
        }
        self.remove(&self.logs_dir)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(LOGS_DIR_MODE)
            .create(&self.logs_dir)
            .and_then(|()| {
                fs::set_permissions(&self.logs_dir, fs::Permissions::from_mode(LOGS_DIR_MODE))
            })
            .map_err(|err| self.file_error("creating", &self.logs_dir, err))?;

        let cmd = packaging_command(
            &self.compile_dir,
            &self.enable_path,
            &self.package,
            &self.version,
        );
        let outcome = runner.run(&cmd);
        let (stdout, stderr): (&[u8], &[u8]) = match &outcome {
            Ok(output) => (&output.stdout, &output.stderr),
            Err(cmd::Error::Failed { stdout, stderr, .. }) => {
                (stdout.as_bytes(), stderr.as_bytes())
            }
            Err(_) => (b"", b""),
        };
        self.write_log("stdout", stdout)?;
        self.write_log("stderr", stderr)?;
        match outcome {
            Ok(_) => Ok(()),
            Err(cmd::Error::Failed {
                code,
                stdout,
                stderr,
                ..
            }) => Err(Error::Packaging {
                package: self.package.clone(),
                // A signal has no exit code; Go's `WaitStatus.ExitStatus` gives -1 then.
                source: ScriptExited::new(code.unwrap_or(-1), stdout.as_bytes(), stderr.as_bytes()),
            }),
            Err(source) => Err(Error::PackagingCommand {
                package: self.package.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// Writes `sys/log/compilation/packaging.<stream>.log`.
    fn write_log(&self, stream: &str, bytes: &[u8]) -> Result<()> {
        let path = self
            .logs_dir
            .join(format!("{PACKAGING_SCRIPT}.{stream}.log"));
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(LOG_FILE_MODE)
            .open(&path)
            .and_then(|mut file| file.write_all(bytes))
            .map_err(|err| self.file_error("writing", &path, err))
    }

    /// Removes what this compilation made: the temporary directory, the link, the install dir
    /// (and its parent when empty), the compile dir. Every step is tried; the first error is
    /// returned.
    fn clean_up(&self, work: tempfile::TempDir) -> Result<()> {
        let work_path = work.path().to_owned();
        let results = [
            work.close()
                .map_err(|err| self.file_error("removing", &work_path, err)),
            self.disable(),
            self.remove(&self.install_dir),
            self.remove(&self.compile_dir),
            self.remove(&self.unpack_dir),
        ];
        if let Some(parent) = self.install_dir.parent() {
            // Only succeeds when empty, which is all we want.
            let _ = fs::remove_dir(parent);
        }
        results.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }

    /// Removes `path` (a tree, a file or a link) if it exists.
    fn remove(&self, path: &Path) -> Result<()> {
        let removed = match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        };
        removed.map_err(|err| self.file_error("removing", path, err))
    }

    fn file_error(&self, action: &'static str, path: &Path, source: io::Error) -> Error {
        Error::File {
            package: self.package.clone(),
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// `bash -x packaging` in the compile dir with the four `BOSH_*` variables (`compiler_unix.go`).
fn packaging_command(compile_dir: &Path, install_target: &Path, name: &str, version: &str) -> Cmd {
    let mut cmd = Cmd::new("bash")
        .args(["-x", PACKAGING_SCRIPT])
        .env("BOSH_COMPILE_TARGET", compile_dir)
        .env("BOSH_INSTALL_TARGET", install_target)
        .env("BOSH_PACKAGE_NAME", name)
        .env("BOSH_PACKAGE_VERSION", version);
    cmd.dir = Some(compile_dir.to_owned());
    cmd
}

/// Whether `bytes` starts with a complete, valid multi-byte UTF-8 character.
fn starts_with_full_char(bytes: &[u8]) -> bool {
    (2..=4).any(|len| bytes.len() >= len && std::str::from_utf8(&bytes[..len]).is_ok())
}

fn parse_digest(package: &str, text: &str) -> Result<MultiDigest> {
    MultiDigest::parse(text).map_err(|source| Error::Digest {
        package: package.to_owned(),
        source,
    })
}

/// Checks the dependencies' names and versions before anything is touched.
fn check_dependencies(request: &Request) -> Result<()> {
    let package = &request.package.name;
    for dependency in &request.dependencies {
        platform::name::check("dependency name", &dependency.name).map_err(|source| {
            Error::DependencyName {
                package: package.clone(),
                dependency: dependency.name.clone(),
                source,
            }
        })?;
        if dependency.version.is_empty() {
            return Err(Error::DependencyVersion {
                package: package.clone(),
                dependency: dependency.name.clone(),
            });
        }
    }
    Ok(())
}

/// Runs blocking file and command work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    package: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| Error::Task {
            package: package.to_owned(),
            source,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    use platform::cmd::Output;
    use platform::testing::{RecordingRunner, Reply};

    use crate::blobstore::LocalBlobstore;

    /// Records every [`Cmd`] whole (program, argv, env, dir) and answers through a
    /// [`RecordingRunner`], whose `recorded` gives argv only.
    #[derive(Debug, Default)]
    struct CmdCapture {
        script: RecordingRunner,
        commands: Mutex<Vec<Cmd>>,
    }

    impl CommandRunner for CmdCapture {
        fn run(&self, cmd: &Cmd) -> Result<Output, cmd::Error> {
            self.commands.lock().unwrap().push(cmd.clone());
            self.script.run(cmd)
        }
    }

    /// Records what it was asked to do; installs nothing.
    #[derive(Debug, Default)]
    struct FakeInstaller {
        calls: Mutex<Vec<String>>,
        failing: Option<String>,
    }

    impl DependencyInstaller for FakeInstaller {
        fn keep_only<'a>(&'a self, keep: &'a [Package]) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async move {
                let names: Vec<&str> = keep.iter().map(|p| p.name.as_str()).collect();
                self.calls
                    .lock()
                    .unwrap()
                    .push(format!("keep_only {names:?}"));
                Ok(())
            })
        }

        fn install<'a>(&'a self, package: &'a Package) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async move {
                self.calls
                    .lock()
                    .unwrap()
                    .push(format!("install {} {}", package.name, package.version));
                if self.failing.as_deref() == Some(package.name.as_str()) {
                    return Err("no such blob".into());
                }
                Ok(())
            })
        }
    }

    struct Fixture {
        base: tempfile::TempDir,
        dirs: Dirs,
        blobstore: LocalBlobstore,
        signed_client: SignedClient,
        installer: FakeInstaller,
        runner: Arc<CmdCapture>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let base = tempfile::tempdir().unwrap();
            let dirs = Dirs::new(base.path().join("vcap"));
            Fixture {
                blobstore: LocalBlobstore::new(base.path().join("blobs")),
                base,
                dirs,
                signed_client: SignedClient::try_new(None).unwrap(),
                installer: FakeInstaller::default(),
                runner: Arc::new(CmdCapture::default()),
            }
        }

        fn compiler(&self) -> Compiler<'_> {
            Compiler {
                dirs: &self.dirs,
                blobstore: &self.blobstore,
                signed_client: &self.signed_client,
                installer: &self.installer,
                runner: self.runner.clone(),
            }
        }

        /// Packs `files` (name, content) as a source package and stores it; returns a request
        /// for it with one dependency.
        async fn request(&self, files: &[(&str, &str)]) -> Request {
            let source = self.base.path().join("source");
            fs::create_dir_all(&source).unwrap();
            for (name, content) in files {
                fs::write(source.join(name), content).unwrap();
            }
            let tgz = self.base.path().join("source.tgz");
            archive::create(&source, &tgz).unwrap();
            let (id, _) = self.blobstore.put(&tgz).await.unwrap();
            let digest = MultiDigest::compute(
                fs::File::open(&tgz).unwrap(),
                &[Algorithm::Sha1, Algorithm::Sha256],
            )
            .unwrap();
            let deps = BTreeMap::from([(
                "dep".to_owned(),
                DependencySpec {
                    name: "dep".to_owned(),
                    version: "7".to_owned(),
                    sha1: "abc".to_owned(),
                    blobstore_id: "dep-blob".to_owned(),
                    ..DependencySpec::default()
                },
            )]);
            Request::compile_package(&id, &digest.to_string(), "pkg", "1.2", &deps).unwrap()
        }

        fn names_under(&self, dir: &Path) -> Vec<String> {
            let mut names: Vec<String> = match fs::read_dir(dir) {
                Ok(entries) => entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Vec::new(),
            };
            names.sort();
            names
        }

        fn assert_nothing_left(&self) {
            assert_eq!(
                self.names_under(&self.dirs.compile_dir()),
                Vec::<String>::new()
            );
            assert_eq!(
                self.names_under(&self.dirs.packages_dir()),
                Vec::<String>::new()
            );
            assert_eq!(
                self.names_under(&self.dirs.data_packages_dir()),
                Vec::<String>::new()
            );
            assert_eq!(self.names_under(&self.dirs.tmp_dir()), Vec::<String>::new());
        }
    }

    /// `printf 1.2 | sha1sum`
    const VERSION_SHA1: &str = "8114b9dabe64741f5700c676da07d4182530a754";

    #[test]
    fn layout_follows_the_base_dir() {
        let dirs = Dirs::new("/var/vcap");
        let package = Package {
            name: "ruby".to_owned(),
            version: "1.2".to_owned(),
            digest: MultiDigest::parse("abc").unwrap(),
            source: BlobSource::Blobstore { id: "b".to_owned() },
        };
        let layout = Layout::new(&dirs, &package).unwrap();
        assert_eq!(layout.compile_dir, Path::new("/var/vcap/data/compile/ruby"));
        assert_eq!(
            layout.unpack_dir,
            Path::new("/var/vcap/data/compile/ruby-bosh-agent-unpack")
        );
        assert_eq!(
            layout.install_dir,
            Path::new("/var/vcap/data/packages/ruby").join(VERSION_SHA1)
        );
        assert_eq!(layout.enable_path, Path::new("/var/vcap/packages/ruby"));
        assert_eq!(layout.logs_dir, Path::new("/var/vcap/sys/log/compilation"));
        assert_eq!(layout.tmp_dir, Path::new("/var/vcap/data/tmp"));
    }

    #[test]
    fn bad_names_and_versions_are_refused() {
        let dirs = Dirs::new("/var/vcap");
        let package = |name: &str, version: &str| Package {
            name: name.to_owned(),
            version: version.to_owned(),
            digest: MultiDigest::parse("abc").unwrap(),
            source: BlobSource::Blobstore { id: "b".to_owned() },
        };
        for (name, version, expected) in [
            ("../etc", "1", "invalid name of package '../etc'"),
            ("", "1", "invalid name of package ''"),
            ("a/b", "1", "invalid name of package 'a/b'"),
            ("ruby", "", "package 'ruby' has no version"),
        ] {
            let err = Layout::new(&dirs, &package(name, version)).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
        let request = Request {
            package: package("ruby", "1"),
            dependencies: vec![package("../x", "1")],
            upload: UploadTarget::Blobstore,
        };
        assert_eq!(
            check_dependencies(&request).unwrap_err().to_string(),
            "invalid name of dependency '../x' of package 'ruby'"
        );
    }

    #[test]
    fn the_packaging_command_is_bash_x_with_the_bosh_env() {
        let cmd = packaging_command(
            Path::new("/var/vcap/data/compile/ruby"),
            Path::new("/var/vcap/packages/ruby"),
            "ruby",
            "1.2",
        );
        assert_eq!(cmd.program, "bash");
        assert_eq!(cmd.args, ["-x", "packaging"]);
        let env: Vec<(&str, &str)> = cmd
            .env
            .iter()
            .map(|(key, value)| (key.to_str().unwrap(), value.to_str().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                ("BOSH_COMPILE_TARGET", "/var/vcap/data/compile/ruby"),
                ("BOSH_INSTALL_TARGET", "/var/vcap/packages/ruby"),
                ("BOSH_PACKAGE_NAME", "ruby"),
                ("BOSH_PACKAGE_VERSION", "1.2"),
            ]
        );
        assert_eq!(
            cmd.dir.as_deref(),
            Some(Path::new("/var/vcap/data/compile/ruby"))
        );
        assert_eq!(cmd.stdin, None);
    }

    #[tokio::test]
    async fn compiles_with_the_packaging_script_and_uploads_to_the_blobstore() {
        let fixture = Fixture::new();
        let request = fixture
            .request(&[("packaging", "echo hi"), ("src.c", "int main;")])
            .await;
        fixture.runner.script.expect(
            &["bash", "-x", "packaging"],
            Reply::Ok("built\n".to_owned()),
        );

        let compiled = fixture.compiler().compile(&request).await.unwrap();

        let commands = fixture.runner.commands.lock().unwrap().clone();
        assert_eq!(commands.len(), 1);
        let compile_dir = fixture.dirs.compile_dir().join("pkg");
        let install_target = fixture.dirs.packages_dir().join("pkg");
        assert_eq!(
            commands[0],
            packaging_command(&compile_dir, &install_target, "pkg", "1.2")
        );
        assert_eq!(fixture.runner.script.unused(), Vec::<Vec<String>>::new());
        assert_eq!(
            *fixture.installer.calls.lock().unwrap(),
            ["keep_only []", "install dep 7", "keep_only []"]
        );

        let logs = fixture.dirs.logs_dir().join("compilation");
        assert_eq!(
            fs::read_to_string(logs.join("packaging.stdout.log")).unwrap(),
            "built\n"
        );
        assert_eq!(
            fs::read_to_string(logs.join("packaging.stderr.log")).unwrap(),
            ""
        );
        assert_eq!(
            fs::metadata(&logs).unwrap().permissions().mode() & 0o777,
            0o750
        );
        assert_eq!(
            fs::metadata(logs.join("packaging.stdout.log"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );

        let blobstore_id = compiled.blobstore_id.clone().unwrap();
        assert!(fixture.blobstore.dir().join(&blobstore_id).is_file());
        assert_eq!(
            compiled.digest.strongest().algorithm,
            Algorithm::Sha1,
            "the blobstore reports sha1"
        );
        fixture.assert_nothing_left();
    }

    #[tokio::test]
    async fn without_a_packaging_script_nothing_runs_and_an_empty_package_is_uploaded() {
        let fixture = Fixture::new();
        let request = fixture.request(&[("README", "nothing to build")]).await;

        let compiled = fixture.compiler().compile(&request).await.unwrap();

        assert!(fixture.runner.commands.lock().unwrap().is_empty());
        assert!(!fixture.dirs.logs_dir().join("compilation").exists());
        let tgz = fixture.blobstore.dir().join(compiled.blobstore_id.unwrap());
        let unpacked = fixture.base.path().join("unpacked");
        archive::extract(&tgz, &unpacked, &ExtractOptions::default()).unwrap();
        assert!(fixture.names_under(&unpacked).is_empty());
        fixture.assert_nothing_left();
    }

    #[tokio::test]
    async fn a_failing_script_gives_the_go_text_and_cleans_up() {
        let fixture = Fixture::new();
        let request = fixture.request(&[("packaging", "exit 3")]).await;
        fixture.runner.script.expect(
            &["bash", "-x", "packaging"],
            Reply::Fail(3, "+ exit 3".to_owned()),
        );

        let err = fixture.compiler().compile(&request).await.unwrap_err();

        assert_eq!(
            settings::source::error_chain(&err),
            "running the packaging script of package 'pkg': \
             Command exited with 3; Stdout: , Stderr: + exit 3"
        );
        let logs = fixture.dirs.logs_dir().join("compilation");
        assert_eq!(
            fs::read_to_string(logs.join("packaging.stderr.log")).unwrap(),
            "+ exit 3"
        );
        // The dependencies stay until the next compilation removes them, as in Go.
        assert_eq!(
            *fixture.installer.calls.lock().unwrap(),
            ["keep_only []", "install dep 7"]
        );
        fixture.assert_nothing_left();
    }

    #[tokio::test]
    async fn a_failing_dependency_stops_before_the_source_is_fetched() {
        let mut fixture = Fixture::new();
        fixture.installer.failing = Some("dep".to_owned());
        let request = fixture.request(&[("packaging", "true")]).await;

        let err = fixture.compiler().compile(&request).await.unwrap_err();

        assert_eq!(
            settings::source::error_chain(&err),
            "installing dependency 'dep' of package 'pkg': no such blob"
        );
        assert!(fixture.runner.commands.lock().unwrap().is_empty());
        assert!(!fixture.dirs.compile_dir().exists());
        assert!(!fixture.dirs.tmp_dir().exists());
    }

    #[tokio::test]
    async fn a_bad_digest_is_refused_and_leaves_no_compile_dir() {
        let fixture = Fixture::new();
        let mut request = fixture.request(&[("packaging", "true")]).await;
        request.package.digest = MultiDigest::parse(
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )
        .unwrap();
        // A leftover from an earlier run goes too.
        fs::create_dir_all(fixture.dirs.compile_dir().join("pkg/old")).unwrap();

        let err = fixture.compiler().compile(&request).await.unwrap_err();

        let text = settings::source::error_chain(&err);
        assert!(
            text.starts_with("fetching the source of package 'pkg': "),
            "{text}"
        );
        assert!(
            text.contains("Expected stream to have digest 'sha256:0000"),
            "{text}"
        );
        assert!(fixture.runner.commands.lock().unwrap().is_empty());
        fixture.assert_nothing_left();
    }

    #[test]
    fn compile_package_takes_blob_ids_and_ignores_dependency_signed_urls() {
        let deps = BTreeMap::from([(
            "key-not-used".to_owned(),
            DependencySpec {
                name: "dep".to_owned(),
                version: "2".to_owned(),
                sha1: "abc".to_owned(),
                blobstore_id: "dep-blob".to_owned(),
                package_get_signed_url: "http://127.0.0.1/dep".to_owned(),
                blobstore_headers: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            },
        )]);
        let request = Request::compile_package("blob", "abc", "pkg", "1", &deps).unwrap();
        assert_eq!(
            request.package.source,
            BlobSource::Blobstore {
                id: "blob".to_owned()
            }
        );
        assert_eq!(request.dependencies[0].name, "dep");
        assert_eq!(
            request.dependencies[0].source,
            BlobSource::Blobstore {
                id: "dep-blob".to_owned()
            }
        );
        assert_eq!(request.upload, UploadTarget::Blobstore);
    }

    #[test]
    fn the_signed_url_request_decodes_and_prefers_signed_urls() {
        let value = json!({
            "package_get_signed_url": "http://127.0.0.1/src?sig=1",
            "upload_signed_url": "http://127.0.0.1/out?sig=2",
            "blobstore_headers": {"x-k": "v"},
            "digest": "sha256:abcd",
            "Name": "pkg",
            "version": "1.0",
            "deps": {
                "a": {"name": "a", "version": "1", "sha1": "aa", "package_get_signed_url": "http://127.0.0.1/a", "blobstore_headers": null},
                "b": {"name": "b", "version": "2", "sha1": "bb", "blobstore_id": "b-blob", "unknown": 1}
            }
        });
        let spec: SignedUrlRequest = settings::gojson::from_value(value).unwrap();
        let request = Request::compile_package_with_signed_url(&spec).unwrap();
        let headers = BTreeMap::from([("x-k".to_owned(), "v".to_owned())]);
        assert_eq!(request.package.name, "pkg");
        assert_eq!(
            request.package.source,
            BlobSource::SignedUrl {
                url: "http://127.0.0.1/src?sig=1".to_owned(),
                headers: headers.clone()
            }
        );
        assert_eq!(
            request.upload,
            UploadTarget::SignedUrl {
                url: "http://127.0.0.1/out?sig=2".to_owned(),
                headers
            }
        );
        assert_eq!(
            request.dependencies[0].source,
            BlobSource::SignedUrl {
                url: "http://127.0.0.1/a".to_owned(),
                headers: BTreeMap::new()
            }
        );
        assert_eq!(
            request.dependencies[1].source,
            BlobSource::Blobstore {
                id: "b-blob".to_owned()
            }
        );

        // Without an upload URL the compiled package goes to the blobstore, as in Go.
        let spec = SignedUrlRequest {
            upload_signed_url: String::new(),
            ..spec
        };
        let request = Request::compile_package_with_signed_url(&spec).unwrap();
        assert_eq!(request.upload, UploadTarget::Blobstore);
    }

    #[test]
    fn requests_without_a_blob_or_a_digest_are_refused() {
        let no_deps = BTreeMap::new();
        let cases = [
            (
                Request::compile_package("", "abc", "pkg", "1", &no_deps),
                "no blobstore reference for package 'pkg'",
            ),
            (
                Request::compile_package("blob", "", "pkg", "1", &no_deps),
                "digest of package 'pkg': no digest algorithm found. \
                 Supported algorithms: sha1, sha256, sha512",
            ),
            (
                Request::compile_package_with_signed_url(&SignedUrlRequest {
                    digest: "abc".to_owned(),
                    name: "pkg".to_owned(),
                    version: "1".to_owned(),
                    ..SignedUrlRequest::default()
                }),
                "no blobstore reference for package 'pkg'",
            ),
            (
                Request::compile_package(
                    "blob",
                    "abc",
                    "pkg",
                    "1",
                    &BTreeMap::from([(
                        "dep".to_owned(),
                        DependencySpec {
                            name: "dep".to_owned(),
                            version: "1".to_owned(),
                            sha1: "abc".to_owned(),
                            package_get_signed_url: "http://127.0.0.1/dep".to_owned(),
                            ..DependencySpec::default()
                        },
                    )]),
                ),
                "no blobstore reference for dependency 'dep' of package 'pkg'",
            ),
        ];
        for (result, expected) in cases {
            let err = result.unwrap_err();
            assert_eq!(settings::source::error_chain(&err), expected);
        }
    }

    #[test]
    fn result_values_have_the_go_shapes() {
        let compiled = CompiledPackage {
            blobstore_id: Some("6d1f1b4e-uuid".to_owned()),
            digest: MultiDigest::parse("abc").unwrap(),
        };
        assert_eq!(
            compiled.compile_package_value().to_string(),
            r#"{"result":{"blobstore_id":"6d1f1b4e-uuid","sha1":"abc"}}"#
        );
        let compiled = CompiledPackage {
            blobstore_id: None,
            digest: MultiDigest::parse("abc;sha512:def").unwrap(),
        };
        assert_eq!(
            compiled.compile_package_with_signed_url_value().to_string(),
            r#"{"result":{"sha1":"abc;sha512:def"}}"#
        );
    }

    #[test]
    fn script_exited_prints_the_go_text() {
        let cases = [
            (
                ScriptExited::new(1, b"fake-stdout", b"fake-stderr"),
                "Command exited with 1; Stdout: fake-stdout, Stderr: fake-stderr",
            ),
            (
                ScriptExited {
                    exit_status: 1,
                    stdout: OutputTail::of(b"fake-long-output-stdout", 15),
                    stderr: OutputTail::of(b"fake-long-output-stderr", 15),
                },
                "Command exited with 1; Truncated stdout: g-output-stdout, \
                 Truncated stderr: g-output-stderr",
            ),
        ];
        for (exited, expected) in cases {
            assert_eq!(exited.to_string(), expected);
        }
    }

    #[test]
    fn output_tails_follow_the_go_runner() {
        // The cases of `file_logging_cmd_runner_test.go`, with its limit of 15 bytes.
        let cases: [(&str, &str, bool); 7] = [
            ("fake-stdout", "fake-stdout", false),
            ("fake-long-output-stdout", "g-output-stdout", true),
            ("fake-long\n\routput-stdout", "output-stdout", true),
            ("fake-long\noutput-stderr", "output-stderr", true),
            ("fake-long-output-std\nout", "-output-std\nout", true),
            ("приветstdout", "иветstdout", true),
            // Not cut: every line stays (Go would drop `line one\n`).
            ("line one\nline 2", "line one\nline 2", false),
        ];
        for (output, expected, is_truncated) in cases {
            let tail = OutputTail::of(output.as_bytes(), 15);
            assert_eq!(tail.text, expected, "{output:?}");
            assert_eq!(tail.is_truncated, is_truncated, "{output:?}");
        }
        let exactly = "x".repeat(OUTPUT_TAIL_BYTES);
        assert!(!OutputTail::of(exactly.as_bytes(), OUTPUT_TAIL_BYTES).is_truncated);
    }
}
