//! Why a process CPI call failed, and the CPI error type each failure is reported as
//! (`reference/director-cpi.md` §1.6).
//!
//! Requests the CPI cannot read are `Bosh::Clouds::CpiError`, with the Go CPI library's texts
//! (`bosh-cpi-go: rpc/json_dispatcher.go`): "Must provide valid JSON payload", "Must provide 'method'
//! key", "Must provide 'arguments' key". An unknown method is `Bosh::Clouds::NotImplemented` with
//! Go's "Must call implemented method: Unknown method '<method>'". Missing things are the typed
//! errors the director tolerates where it should (`VMNotFound` on `delete_vm`, `DiskNotAttached` on
//! `detach_disk`, `DiskNotFound` when an orphan disk is gone); anything the host refused is
//! `Bosh::Clouds::CloudError`, the Go library's default. No error is `ok_to_retry`.

use std::path::PathBuf;

/// `Bosh::Clouds::CpiError`: the request itself is wrong.
pub const CPI_ERROR: &str = "Bosh::Clouds::CpiError";
/// `Bosh::Clouds::NotImplemented`.
pub const NOT_IMPLEMENTED: &str = "Bosh::Clouds::NotImplemented";
/// `Bosh::Clouds::CloudError`: the operation failed.
pub const CLOUD_ERROR: &str = "Bosh::Clouds::CloudError";
/// `Bosh::Clouds::VMNotFound`.
pub const VM_NOT_FOUND: &str = "Bosh::Clouds::VMNotFound";
/// `Bosh::Clouds::DiskNotFound`.
pub const DISK_NOT_FOUND: &str = "Bosh::Clouds::DiskNotFound";
/// `Bosh::Clouds::DiskNotAttached`.
pub const DISK_NOT_ATTACHED: &str = "Bosh::Clouds::DiskNotAttached";
/// `Bosh::Clouds::StemcellNotFound` (bosh-cli's `cloud/errors.go`).
pub const STEMCELL_NOT_FOUND: &str = "Bosh::Clouds::StemcellNotFound";

/// Go's text for a request that is not JSON.
pub const INVALID_JSON: &str = "Must provide valid JSON payload";
/// Go's text for a request without a method.
pub const NO_METHOD: &str = "Must provide 'method' key";
/// Go's text for a request without arguments.
pub const NO_ARGUMENTS: &str = "Must provide 'arguments' key";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is not JSON, or not an object.
    #[error("Must provide valid JSON payload: {0}")]
    InvalidJson(String),
    /// The request has no `method`.
    #[error("Must provide 'method' key")]
    NoMethod,
    /// The request has no `arguments`.
    #[error("Must provide 'arguments' key")]
    NoArguments,
    /// The request asks for a contract version this CPI does not speak.
    #[error("api_version {0} is not supported: the highest this CPI speaks is 2")]
    ApiVersion(u64),
    /// An argument is missing or has the wrong type.
    #[error("{method} argument {position} ({name}) {problem}")]
    Argument {
        /// The method.
        method: String,
        /// Its position, from 1.
        position: usize,
        /// Its name in the CPI API.
        name: &'static str,
        /// What is wrong: `is missing`, `must be a string, got a number`.
        problem: String,
    },
    /// An argument has the right type but a value the CPI cannot use.
    #[error("{method} argument {name}: {problem}")]
    InvalidArgument {
        /// The method.
        method: String,
        /// Its name in the CPI API.
        name: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The method is not one this CPI implements.
    #[error("Must call implemented method: Unknown method '{0}'")]
    NotImplemented(String),
    /// The command line names no config file, or the config is unusable.
    #[error("{0}")]
    Config(String),
    /// No VM has this cid.
    #[error("VM '{0}' not found")]
    VmNotFound(String),
    /// No disk has this cid.
    #[error("disk '{0}' not found")]
    DiskNotFound(String),
    /// No stemcell has this cid.
    #[error("stemcell '{0}' not found")]
    StemcellNotFound(String),
    /// The disk is not attached to the VM.
    #[error("disk '{disk_cid}' is not attached to VM '{vm_cid}'")]
    DiskNotAttached {
        /// The VM.
        vm_cid: String,
        /// The disk.
        disk_cid: String,
    },
    /// The disk is attached to another VM.
    #[error("disk '{disk_cid}' is attached to VM '{vm_cid}'")]
    DiskAttached {
        /// The disk.
        disk_cid: String,
        /// The VM it is attached to.
        vm_cid: String,
    },
    /// The agent binary cannot be run.
    #[error("agent binary {} is not an executable file", .0.display())]
    AgentBinary(PathBuf),
    /// A file or directory of the CPI's state could not be read or written.
    #[error("{what} {}", .path.display())]
    Io {
        /// What was being done: `writing`, `reading`, `creating`, `removing`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file is not the JSON the CPI wrote.
    #[error("{} is not valid JSON", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The state lock could not be taken.
    #[error("locking {}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::errno::Errno,
    },
    /// The VM's supervisor could not be started.
    #[error("starting the supervisor of VM '{vm_cid}'")]
    Spawn {
        /// The VM.
        vm_cid: String,
        /// The cause.
        #[source]
        source: crate::exec::Error,
    },
    /// Processes of the VM were still alive after SIGKILL.
    #[error("processes {pids:?} of VM '{vm_cid}' are still running after SIGKILL")]
    StillRunning {
        /// The VM.
        vm_cid: String,
        /// Their pids.
        pids: Vec<i32>,
    },
}

impl Error {
    /// The `Bosh::Clouds::...` type the error is reported as.
    pub fn cloud_type(&self) -> &'static str {
        match self {
            Error::InvalidJson(_)
            | Error::NoMethod
            | Error::NoArguments
            | Error::ApiVersion(_)
            | Error::Argument { .. }
            | Error::InvalidArgument { .. }
            | Error::Config(_) => CPI_ERROR,
            Error::NotImplemented(_) => NOT_IMPLEMENTED,
            Error::VmNotFound(_) => VM_NOT_FOUND,
            Error::DiskNotFound(_) => DISK_NOT_FOUND,
            Error::StemcellNotFound(_) => STEMCELL_NOT_FOUND,
            Error::DiskNotAttached { .. } => DISK_NOT_ATTACHED,
            Error::DiskAttached { .. }
            | Error::AgentBinary(_)
            | Error::Io { .. }
            | Error::Json { .. }
            | Error::Lock { .. }
            | Error::Spawn { .. }
            | Error::StillRunning { .. } => CLOUD_ERROR,
        }
    }

    /// The message sent to the director: the error and its causes, `a: b: c`.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }

    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io { what, path, source }
    }
}

/// `pub type Result<T>` of the process CPI.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_go_texts_are_kept_exactly() {
        assert_eq!(Error::NoMethod.to_string(), NO_METHOD);
        assert_eq!(Error::NoArguments.to_string(), NO_ARGUMENTS);
        assert!(
            Error::InvalidJson("x".into())
                .to_string()
                .starts_with(INVALID_JSON)
        );
        assert_eq!(
            Error::NotImplemented("resize_disk".into()).to_string(),
            "Must call implemented method: Unknown method 'resize_disk'"
        );
    }

    #[test]
    fn missing_things_get_the_types_the_director_tolerates() {
        let cases = [
            (Error::NoArguments, CPI_ERROR),
            (Error::NotImplemented("x".into()), NOT_IMPLEMENTED),
            (Error::VmNotFound("vm-1".into()), VM_NOT_FOUND),
            (Error::DiskNotFound("disk-1".into()), DISK_NOT_FOUND),
            (Error::StemcellNotFound("sc".into()), STEMCELL_NOT_FOUND),
            (
                Error::DiskNotAttached {
                    vm_cid: "vm-1".into(),
                    disk_cid: "disk-1".into(),
                },
                DISK_NOT_ATTACHED,
            ),
            (Error::AgentBinary("/nope".into()), CLOUD_ERROR),
        ];
        for (error, expected) in cases {
            assert_eq!(error.cloud_type(), expected, "{error}");
        }
    }

    #[test]
    fn the_message_carries_the_causes() {
        let error = Error::io("writing", std::path::Path::new("/base/vms/vm-1/vm.json"))(
            std::io::Error::other("disk full"),
        );
        assert_eq!(error.message(), "writing /base/vms/vm-1/vm.json: disk full");
    }
}
