//! Why a QEMU CPI call failed, and the CPI error type each failure is reported as
//! (`reference/director-cpi.md` §1.6).
//!
//! The request errors and the "missing thing" errors are the process CPI's
//! ([`thin_director::process_cpi::Error`]: Go's texts for malformed requests, `VMNotFound`,
//! `DiskNotFound`, `StemcellNotFound`, `DiskNotAttached`, ...), wrapped unchanged so both CPIs
//! answer the same requests the same way. What is particular to QEMU (a command that failed, the
//! QMP monitor, a guest that never released a disk) is `Bosh::Clouds::CloudError`, the Go CPI
//! library's default. No error is `ok_to_retry`.

use std::path::PathBuf;

use serde_json::{Value, json};
use thin_director::process_cpi::error::CLOUD_ERROR;

use crate::qemu_cpi::qmp;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request, argument, config or state error shared with the process CPI.
    #[error(transparent)]
    Cpi(#[from] thin_director::process_cpi::Error),
    /// A command (`qemu-img`, `genisoimage`, QEMU itself) failed.
    #[error("{step}")]
    Command {
        /// What was being done: `creating the overlay of VM 'vm-…'`.
        step: String,
        /// The cause, with the command's stderr (boxed: it is large).
        #[source]
        source: Box<platform::cmd::Error>,
    },
    /// Talking to a VM's QMP monitor failed.
    #[error("VM '{vm_cid}': {step}")]
    Qmp {
        /// The VM.
        vm_cid: String,
        /// What was being done: `attaching disk 'disk-…'`.
        step: String,
        /// The cause.
        #[source]
        source: qmp::Error,
    },
    /// The guest did not let go of a disk in time.
    #[error(
        "detaching disk '{disk_cid}' from VM '{vm_cid}': the guest did not release device \
         {device} within {timeout_secs} s (QEMU unplugs a virtio disk only once the guest OS \
         acknowledges the ACPI eject request; the disk stays attached)"
    )]
    DetachTimedOut {
        /// The VM.
        vm_cid: String,
        /// The disk.
        disk_cid: String,
        /// The QEMU device id.
        device: String,
        /// How long the guest had.
        timeout_secs: u64,
    },
    /// A stemcell image is not what `create_stemcell` needs.
    #[error("stemcell image {}: {problem}", .path.display())]
    StemcellImage {
        /// The image the director gave.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file a VM needs is missing.
    #[error("{what} {} is missing", .path.display())]
    Missing {
        /// What it is: `the test layer`.
        what: &'static str,
        /// Where it should be.
        path: PathBuf,
    },
    /// A unix socket path is longer than `sun_path` holds.
    #[error("socket path {} is {len} bytes, longer than the 107 a unix socket path may have; use a shorter state_dir", .path.display())]
    SocketPathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// A VM's QEMU is not running where a call needs it.
    #[error("QEMU of VM '{0}' is not running")]
    NotRunning(String),
    /// QEMU did not stop, even after SIGKILL.
    #[error("QEMU (pid {pid}) of VM '{vm_cid}' is still running after SIGKILL")]
    StillRunning {
        /// The VM.
        vm_cid: String,
        /// QEMU's pid.
        pid: i32,
    },
    /// A disk cannot be resized as asked.
    #[error("resizing disk '{disk_cid}': {problem}")]
    Resize {
        /// The disk.
        disk_cid: String,
        /// What is wrong.
        problem: String,
    },
    /// Every virtio disk name a hint could give is taken.
    #[error("VM '{0}' has no free /dev/vd? name left for another disk")]
    NoDeviceName(String),
}

impl Error {
    /// The `Bosh::Clouds::...` type the error is reported as.
    pub fn cloud_type(&self) -> &'static str {
        match self {
            Error::Cpi(err) => err.cloud_type(),
            _ => CLOUD_ERROR,
        }
    }

    /// The message sent to the caller: the error and its causes, `a: b: c`.
    pub fn message(&self) -> String {
        if let Error::Cpi(err) = self {
            return err.message();
        }
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }

    /// An [`Error::Command`] for `step`.
    pub(crate) fn command(step: impl Into<String>) -> impl FnOnce(platform::cmd::Error) -> Error {
        let step = step.into();
        move |source| Error::Command {
            step,
            source: Box::new(source),
        }
    }

    /// An [`Error::Qmp`] for `step` on `vm_cid`.
    pub(crate) fn qmp(vm_cid: &str, step: impl Into<String>) -> impl FnOnce(qmp::Error) -> Error {
        let vm_cid = vm_cid.to_owned();
        let step = step.into();
        move |source| Error::Qmp {
            vm_cid,
            step,
            source,
        }
    }

    /// A process CPI [`Io`](thin_director::process_cpi::Error::Io) error for `path`.
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Cpi(thin_director::process_cpi::Error::Io { what, path, source })
    }
}

/// `pub type Result<T>` of the QEMU CPI.
pub type Result<T> = std::result::Result<T, Error>;

/// Renders the one response, in the shape of the process CPI's
/// ([`thin_director::process_cpi::wire::render_response`]): `{"result","error","log"}`.
pub fn render_response(outcome: &Result<Value>) -> String {
    let response = match outcome {
        Ok(result) => json!({"result": result, "error": null, "log": ""}),
        Err(error) => json!({
            "result": null,
            "error": {
                "type": error.cloud_type(),
                "message": error.message(),
                "ok_to_retry": false,
            },
            "log": "",
        }),
    };
    response.to_string()
}

#[cfg(test)]
mod tests {
    use thin_director::process_cpi::error::{NOT_IMPLEMENTED, VM_NOT_FOUND};

    use super::*;

    #[test]
    fn shared_errors_keep_their_types_and_texts() {
        let error = Error::from(thin_director::process_cpi::Error::VmNotFound("vm-1".into()));
        assert_eq!(error.cloud_type(), VM_NOT_FOUND);
        assert_eq!(error.message(), "VM 'vm-1' not found");
        let error = Error::from(thin_director::process_cpi::Error::NotImplemented(
            "snapshot_disk".into(),
        ));
        assert_eq!(error.cloud_type(), NOT_IMPLEMENTED);
    }

    #[test]
    fn qemu_errors_are_cloud_errors_with_their_causes() {
        let error = Error::command("creating disk 'disk-1'")(platform::cmd::Error::Failed {
            program: "qemu-img".into(),
            status: "exit status: 1".into(),
            code: Some(1),
            stdout: String::new(),
            stderr: "no space\n".into(),
        });
        assert_eq!(error.cloud_type(), CLOUD_ERROR);
        assert_eq!(
            error.message(),
            "creating disk 'disk-1': qemu-img failed (exit status: 1): no space"
        );
    }

    #[test]
    fn responses_have_result_error_and_log() {
        assert_eq!(
            render_response(&Ok(json!(true))),
            r#"{"error":null,"log":"","result":true}"#
        );
        assert_eq!(
            render_response(&Err(Error::NotRunning("vm-1".into()))),
            r#"{"error":{"message":"QEMU of VM 'vm-1' is not running","ok_to_retry":false,"type":"Bosh::Clouds::CloudError"},"log":"","result":null}"#
        );
    }
}
