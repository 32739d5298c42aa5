//! The CPI runner: any external CPI executable, called the way the BOSH director calls it
//! (`reference/director-cpi.md` §1; `lib/clouds/external_cpi.rb`, `cloud_factory.rb`).
//!
//! One process per call ([`crate::exec`]): the request on standard input, then standard input
//! closed; standard output parsed strictly ([`wire`]), whatever the exit code; standard error and the
//! response's `log` appended to the CPI log. The environment is scrubbed to `PATH`, `TMPDIR` and
//! `HOME`, plus `BOSH_PACKAGES_DIR` and `BOSH_JOBS_DIR` when the CPI is installed outside
//! `/var/vcap` (the cli's rule). Every request carries `context.director_uuid` and a
//! `cpi-NNNNNN` request id.
//!
//! Unlike the director, `info` runs once per [`Cpi`] (the director runs it before nearly every
//! call, two spawns a method), the CPI must report `api_version` 2 or more, and later calls send the
//! lower of that and [`MAX_API_VERSION`]. Unlike the director, each call has a deadline
//! ([`Config::timeout`]); a CPI past it is killed (cloudfoundry/bosh#2276).
//!
//! The typed methods apply the director's tolerances: `VMNotFound` on `delete_vm`,
//! `NotImplemented` on the metadata calls, `DiskNotAttached` on `detach_disk`; `create_vm` is
//! retried while the CPI says `VMCreationFailed` with `ok_to_retry`, up to [`MAX_VM_CREATE_TRIES`].

#[cfg(test)]
mod tests;
pub mod wire;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::exec;
pub use wire::CloudError;

/// The highest CPI contract version the director speaks (v3 only adds `create_stemcell`'s `env`).
pub const MAX_API_VERSION: u32 = 2;

/// The lowest the director accepts ("Minimum required version is 2").
pub const MIN_API_VERSION: u32 = 2;

/// `create_vm` attempts while the CPI answers `VMCreationFailed` with `ok_to_retry`
/// (`max_vm_create_tries`).
pub const MAX_VM_CREATE_TRIES: u32 = 5;

/// The deadline of one call unless configured: long enough for any IaaS, short of forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The `PATH` the director gives a CPI.
pub const CPI_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// How to run a CPI.
#[derive(Debug, Clone)]
pub struct Config {
    /// The executable (`<cpi job>/bin/cpi` by convention).
    pub executable: PathBuf,
    /// Extra arguments (none for a BOSH CPI job's wrapper).
    pub args: Vec<OsString>,
    /// The director's UUID for `context.director_uuid`.
    pub director_uuid: String,
    /// `BOSH_PACKAGES_DIR` and `BOSH_JOBS_DIR` for a CPI installed outside `/var/vcap`.
    pub install_dirs: Option<(PathBuf, PathBuf)>,
    /// The deadline of one call.
    pub timeout: Duration,
    /// The CPI log every call appends to (stderr lines and the response's `log`).
    pub log: Option<PathBuf>,
}

impl Config {
    /// A config for `executable` with the default deadline and no log.
    pub fn new(executable: impl Into<PathBuf>, director_uuid: impl Into<String>) -> Config {
        Config {
            executable: executable.into(),
            args: Vec::new(),
            director_uuid: director_uuid.into(),
            install_dirs: None,
            timeout: DEFAULT_TIMEOUT,
            log: None,
        }
    }
}

/// What `info` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `stemcell_formats`.
    pub stemcell_formats: Vec<String>,
    /// The CPI's `api_version`.
    pub api_version: u32,
}

/// The kinds of CPI errors the director tells apart (§1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Bosh::Clouds::CpiError`.
    CpiError,
    /// `Bosh::Clouds::NotImplemented` (also the legacy `InvalidCall` / `Invalid Method:` forms).
    NotImplemented,
    /// `Bosh::Clouds::NotSupported`.
    NotSupported,
    /// `Bosh::Clouds::CloudError`.
    CloudError,
    /// `Bosh::Clouds::VMNotFound`.
    VmNotFound,
    /// `Bosh::Clouds::NetworkNotFound`.
    NetworkNotFound,
    /// `Bosh::Clouds::NoDiskSpace`.
    NoDiskSpace,
    /// `Bosh::Clouds::DiskNotAttached`.
    DiskNotAttached,
    /// `Bosh::Clouds::DiskNotFound`.
    DiskNotFound,
    /// `Bosh::Clouds::VMCreationFailed`.
    VmCreationFailed,
    /// `Bosh::Clouds::StemcellNotFound`.
    StemcellNotFound,
    /// Any other type.
    Unknown,
}

impl ErrorKind {
    /// The kind of `error`, with the director's legacy mapping to `NotImplemented`.
    pub fn of(error: &CloudError) -> ErrorKind {
        match error.kind.as_str() {
            "Bosh::Clouds::CpiError" => ErrorKind::CpiError,
            "Bosh::Clouds::NotImplemented" => ErrorKind::NotImplemented,
            "InvalidCall" if error.message.starts_with("Method is not known, got") => {
                ErrorKind::NotImplemented
            }
            "Bosh::Clouds::CloudError" if error.message.starts_with("Invalid Method:") => {
                ErrorKind::NotImplemented
            }
            "Bosh::Clouds::NotSupported" => ErrorKind::NotSupported,
            "Bosh::Clouds::CloudError" => ErrorKind::CloudError,
            "Bosh::Clouds::VMNotFound" => ErrorKind::VmNotFound,
            "Bosh::Clouds::NetworkNotFound" => ErrorKind::NetworkNotFound,
            "Bosh::Clouds::NoDiskSpace" => ErrorKind::NoDiskSpace,
            "Bosh::Clouds::DiskNotAttached" => ErrorKind::DiskNotAttached,
            "Bosh::Clouds::DiskNotFound" => ErrorKind::DiskNotFound,
            "Bosh::Clouds::VMCreationFailed" => ErrorKind::VmCreationFailed,
            "Bosh::Clouds::StemcellNotFound" => ErrorKind::StemcellNotFound,
            _ => ErrorKind::Unknown,
        }
    }
}

/// Why a CPI call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The executable is missing or not executable (the director's `NonExecutable`).
    #[error("CPI '{}' is not an executable file", .0.display())]
    NonExecutable(PathBuf),
    /// The CPI could not be run or timed out.
    #[error("CPI '{method}' call")]
    Exec {
        /// The method.
        method: String,
        /// The cause.
        #[source]
        source: exec::Error,
    },
    /// Standard output was not a valid response (`InvalidResponse`).
    #[error("CPI '{method}' returned an invalid response: {reason}; stdout: {stdout:?}")]
    InvalidResponse {
        /// The method.
        method: String,
        /// What is wrong.
        reason: String,
        /// The start of what it printed.
        stdout: String,
    },
    /// The CPI answered with an error.
    #[error("CPI error '{}' with message '{}' in '{method}' CPI method (CPI request ID: '{request_id}')", .error.kind, .error.message)]
    Cloud {
        /// The method.
        method: String,
        /// The request id, to find the call in the CPI log.
        request_id: String,
        /// The error's kind.
        kind: ErrorKind,
        /// The error as sent.
        error: CloudError,
    },
    /// `info` reported no usable `api_version`.
    #[error("CPI must report api_version via info")]
    NoApiVersion,
    /// `info` reported a version below [`MIN_API_VERSION`].
    #[error("CPI api_version {0} is not supported: minimum required version is 2")]
    ApiVersionTooLow(u32),
    /// A result had the wrong shape.
    #[error("CPI '{method}' result {result} is not {expected}")]
    UnexpectedResult {
        /// The method.
        method: String,
        /// What came.
        result: Value,
        /// What was expected.
        expected: &'static str,
    },
    /// `attach_disk` gave no hint (the director's `AttachDiskResponseError`).
    #[error("No disk_hint")]
    NoDiskHint,
}

impl Error {
    /// The CPI error kind, when the CPI answered with one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Cloud { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A CPI: one executable and its cached `info`.
#[derive(Debug)]
pub struct Cpi {
    config: Config,
    info: OnceCell<Info>,
}

impl Cpi {
    /// A CPI run as `config` says.
    pub fn new(config: Config) -> Cpi {
        Cpi {
            config,
            info: OnceCell::new(),
        }
    }

    /// `info`, asked once: the CPI's stemcell formats and api version.
    pub async fn info(&self) -> Result<&Info> {
        self.info
            .get_or_try_init(|| async {
                let result = self.invoke("info", &[], None, None).await?;
                let api_version = result
                    .get("api_version")
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(Error::NoApiVersion)?;
                if api_version < MIN_API_VERSION {
                    return Err(Error::ApiVersionTooLow(api_version));
                }
                let stemcell_formats = result
                    .get("stemcell_formats")
                    .and_then(Value::as_array)
                    .map(|formats| {
                        formats
                            .iter()
                            .filter_map(|f| f.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Info {
                    stemcell_formats,
                    api_version,
                })
            })
            .await
    }

    /// Calls `method` with `arguments` at the negotiated version; `stemcell_api_version` goes into
    /// `context.vm.stemcell.api_version` when known.
    pub async fn call(
        &self,
        method: &str,
        arguments: &[Value],
        stemcell_api_version: Option<u32>,
    ) -> Result<Value> {
        let version = self.info().await?.api_version.min(MAX_API_VERSION);
        self.invoke(method, arguments, Some(version), stemcell_api_version)
            .await
    }

    /// `create_stemcell`: the stemcell's image path and cloud properties; its cid.
    pub async fn create_stemcell(&self, image: &Path, cloud_properties: &Value) -> Result<String> {
        let result = self
            .call(
                "create_stemcell",
                &[json!(image), cloud_properties.clone()],
                None,
            )
            .await?;
        cid("create_stemcell", result)
    }

    /// `delete_stemcell`.
    pub async fn delete_stemcell(&self, stemcell_cid: &str) -> Result<()> {
        self.call("delete_stemcell", &[json!(stemcell_cid)], None)
            .await
            .map(drop)
    }

    /// `create_vm`, retried while the CPI says `VMCreationFailed` and `ok_to_retry`; the VM cid
    /// (v2's `[cid, networks]` or v1's bare cid).
    pub async fn create_vm(&self, request: &CreateVm<'_>) -> Result<String> {
        let arguments = [
            json!(request.agent_id),
            json!(request.stemcell_cid),
            request.cloud_properties.clone(),
            request.networks.clone(),
            json!(request.disk_cids),
            request.env.clone(),
        ];
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .call("create_vm", &arguments, request.stemcell_api_version)
                .await
            {
                Ok(Value::Array(mut parts)) if !parts.is_empty() => {
                    return cid("create_vm", parts.swap_remove(0));
                }
                Ok(result) => return cid("create_vm", result),
                Err(Error::Cloud {
                    kind: ErrorKind::VmCreationFailed,
                    ref error,
                    ..
                }) if error.ok_to_retry && tries < MAX_VM_CREATE_TRIES => {
                    tracing::warn!(tries, message = %error.message, "create_vm failed, retrying");
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// `delete_vm`; a VM that is gone already is not an error.
    pub async fn delete_vm(&self, vm_cid: &str) -> Result<()> {
        tolerate(
            self.call("delete_vm", &[json!(vm_cid)], None).await,
            ErrorKind::VmNotFound,
        )
    }

    /// `has_vm`.
    pub async fn has_vm(&self, vm_cid: &str) -> Result<bool> {
        let result = self.call("has_vm", &[json!(vm_cid)], None).await?;
        result.as_bool().ok_or(Error::UnexpectedResult {
            method: "has_vm".to_owned(),
            result,
            expected: "a boolean",
        })
    }

    /// `reboot_vm`.
    pub async fn reboot_vm(&self, vm_cid: &str) -> Result<()> {
        self.call("reboot_vm", &[json!(vm_cid)], None)
            .await
            .map(drop)
    }

    /// `set_vm_metadata`; a CPI that does not implement it is fine.
    pub async fn set_vm_metadata(&self, vm_cid: &str, metadata: &Value) -> Result<()> {
        tolerate(
            self.call("set_vm_metadata", &[json!(vm_cid), metadata.clone()], None)
                .await,
            ErrorKind::NotImplemented,
        )
    }

    /// `create_disk` of `size_mb` MiB near `vm_cid`; its cid.
    pub async fn create_disk(
        &self,
        size_mb: u64,
        cloud_properties: &Value,
        vm_cid: Option<&str>,
    ) -> Result<String> {
        let result = self
            .call(
                "create_disk",
                &[json!(size_mb), cloud_properties.clone(), json!(vm_cid)],
                None,
            )
            .await?;
        cid("create_disk", result)
    }

    /// `delete_disk`.
    pub async fn delete_disk(&self, disk_cid: &str) -> Result<()> {
        self.call("delete_disk", &[json!(disk_cid)], None)
            .await
            .map(drop)
    }

    /// `attach_disk`: the disk hint the agent gets with `add_persistent_disk`.
    pub async fn attach_disk(&self, vm_cid: &str, disk_cid: &str) -> Result<Value> {
        let hint = self
            .call("attach_disk", &[json!(vm_cid), json!(disk_cid)], None)
            .await?;
        let empty = match &hint {
            Value::Null => true,
            Value::String(text) => text.is_empty(),
            Value::Object(fields) => fields.is_empty(),
            _ => false,
        };
        if empty {
            return Err(Error::NoDiskHint);
        }
        Ok(hint)
    }

    /// `detach_disk`; a disk that is not attached is fine.
    pub async fn detach_disk(&self, vm_cid: &str, disk_cid: &str) -> Result<()> {
        tolerate(
            self.call("detach_disk", &[json!(vm_cid), json!(disk_cid)], None)
                .await,
            ErrorKind::DiskNotAttached,
        )
    }

    /// `set_disk_metadata`; a CPI that does not implement it is fine.
    pub async fn set_disk_metadata(&self, disk_cid: &str, metadata: &Value) -> Result<()> {
        tolerate(
            self.call(
                "set_disk_metadata",
                &[json!(disk_cid), metadata.clone()],
                None,
            )
            .await,
            ErrorKind::NotImplemented,
        )
    }

    /// `has_disk`.
    pub async fn has_disk(&self, disk_cid: &str) -> Result<bool> {
        let result = self.call("has_disk", &[json!(disk_cid)], None).await?;
        result.as_bool().ok_or(Error::UnexpectedResult {
            method: "has_disk".to_owned(),
            result,
            expected: "a boolean",
        })
    }

    /// `get_disks`: the cids of the disks attached to `vm_cid`.
    pub async fn get_disks(&self, vm_cid: &str) -> Result<Vec<String>> {
        let result = self.call("get_disks", &[json!(vm_cid)], None).await?;
        let unexpected = |result: Value| Error::UnexpectedResult {
            method: "get_disks".to_owned(),
            result,
            expected: "an array of disk cids",
        };
        let Value::Array(cids) = result else {
            return Err(unexpected(result));
        };
        cids.iter()
            .map(|cid| cid.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unexpected(Value::Array(cids.clone())))
    }

    /// Runs one call: the request, the process, the log, the response.
    async fn invoke(
        &self,
        method: &str,
        arguments: &[Value],
        api_version: Option<u32>,
        stemcell_api_version: Option<u32>,
    ) -> Result<Value> {
        let executable = &self.config.executable;
        if !is_executable(executable) {
            return Err(Error::NonExecutable(executable.clone()));
        }
        let request_id = request_id();
        let mut context = json!({
            "director_uuid": self.config.director_uuid,
            "request_id": request_id,
        });
        if let Some(version) = stemcell_api_version {
            context["vm"] = json!({"stemcell": {"api_version": version}});
        }
        let request = wire::Request {
            method,
            arguments,
            context,
            api_version,
        };
        let stdin = serde_json::to_vec(&request).expect("a request is always JSON");
        let program = exec::Program {
            path: executable.clone(),
            args: self.config.args.clone(),
            env: self.env(),
            stdin,
            timeout: self.config.timeout,
        };
        let started = std::time::Instant::now();
        let output = exec::run(&program).await;
        let elapsed = started.elapsed();
        let output = match output {
            Ok(output) => output,
            Err(source) => {
                if let exec::Error::TimedOut { stderr, .. } = &source {
                    self.append_log(&request_id, method, stderr, "");
                }
                return Err(Error::Exec {
                    method: method.to_owned(),
                    source,
                });
            }
        };
        tracing::debug!(method, request_id, status = %output.status, elapsed_ms = elapsed.as_millis() as u64, "CPI call");
        let response = wire::parse_response(&output.stdout);
        let log = response.as_ref().map_or("", |r| r.log.as_str());
        self.append_log(&request_id, method, &output.stderr, log);
        let response = response.map_err(|reason| Error::InvalidResponse {
            method: method.to_owned(),
            reason,
            stdout: excerpt(&output.stdout),
        })?;
        match response.error {
            Some(error) => Err(Error::Cloud {
                method: method.to_owned(),
                request_id,
                kind: ErrorKind::of(&error),
                error,
            }),
            None => Ok(response.result),
        }
    }

    /// The scrubbed environment.
    fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = vec![("PATH".into(), CPI_PATH.into())];
        for key in ["TMPDIR", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                env.push((key.into(), value));
            }
        }
        if let Some((packages, jobs)) = &self.config.install_dirs {
            env.push(("BOSH_PACKAGES_DIR".into(), packages.into()));
            env.push(("BOSH_JOBS_DIR".into(), jobs.into()));
        }
        env
    }

    /// Appends a call's standard error and `log` to the CPI log.
    fn append_log(&self, request_id: &str, method: &str, stderr: &[u8], log: &str) {
        let Some(path) = &self.config.log else {
            return;
        };
        let mut text = String::new();
        for line in String::from_utf8_lossy(stderr).lines() {
            let _ = writeln!(text, "[{request_id}] {method} stderr: {line}");
        }
        for line in log.lines() {
            let _ = writeln!(text, "[{request_id}] {method} log: {line}");
        }
        if text.is_empty() {
            return;
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), error = %err, "cannot append to the CPI log");
        }
    }
}

/// What `create_vm` needs.
#[derive(Debug, Clone)]
pub struct CreateVm<'a> {
    /// The new VM's agent id.
    pub agent_id: &'a str,
    /// The stemcell's cid.
    pub stemcell_cid: &'a str,
    /// The vm_type's cloud properties.
    pub cloud_properties: Value,
    /// Network settings by network name.
    pub networks: Value,
    /// Disks likely to be attached.
    pub disk_cids: Vec<String>,
    /// The environment (`bosh.mbus.cert`, `bosh.group`, ...).
    pub env: Value,
    /// The stemcell's api version, when its manifest has one.
    pub stemcell_api_version: Option<u32>,
}

/// The result as a cid string.
fn cid(method: &str, result: Value) -> Result<String> {
    match result {
        Value::String(cid) if !cid.is_empty() => Ok(cid),
        result => Err(Error::UnexpectedResult {
            method: method.to_owned(),
            result,
            expected: "a cid string",
        }),
    }
}

/// `Ok(())` for a success and for an error of kind `tolerated`.
fn tolerate(result: Result<Value>, tolerated: ErrorKind) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == Some(tolerated) => {
            tracing::debug!(error = %err, "tolerated CPI error");
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// `cpi-` and six random digits, as the director makes them.
fn request_id() -> String {
    let random = uuid::Uuid::new_v4().as_u128();
    format!("cpi-{:06}", random % 1_000_000)
}

/// A regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The first 1 KiB of what a CPI printed, for an error.
fn excerpt(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    match text.char_indices().nth(1024) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.into_owned(),
    }
}
