//! `upload_blob` (`agent/action/upload_blob.go`): a blob sent over the bus (rendered templates when the
//! director delivers them over NATS), base64 in `payload`, verified against the `checksum` multi-digest
//! before anything is written, stored as `data/sensitive_blobs/<blob_id>`. Its payload is never logged.

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use settings::digest::MultiDigest;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, error};

/// `upload_blob`.
pub const ACTION: ActionSpec = ActionSpec::task("upload_blob", |context, invocation| {
    Box::pin(run(context, invocation))
})
.not_logged();

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UploadBlob {
    blob_id: String,
    checksum: String,
    payload: String,
}

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let upload: UploadBlob = invocation.args.get(0)?;
    let path = context
        .dirs
        .sensitive_blobs_dir()
        .join(blob_file_name(&upload.blob_id)?);
    blocking(move || {
        let digest = MultiDigest::parse(&upload.checksum)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(upload.payload.trim())?;
        if digest.verify(bytes.as_slice()).is_err() {
            return Err(error(format!(
                "Payload corrupted. Checksum mismatch. Expected '{digest}'"
            )));
        }
        settings::atomic_file::write(&path, &bytes, 0o600)?;
        Ok(Value::from(upload.blob_id))
    })
    .await
}

/// A blob id as a file name: one path segment, no `.` or `..`.
fn blob_file_name(blob_id: &str) -> Result<&str> {
    if blob_id.is_empty()
        || blob_id == "."
        || blob_id == ".."
        || blob_id.contains('/')
        || blob_id.contains('\0')
    {
        return Err(error(format!("invalid blob id {blob_id:?}")));
    }
    Ok(blob_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_cannot_leave_the_blob_dir() {
        for bad in ["", ".", "..", "../x", "a/b"] {
            assert!(blob_file_name(bad).is_err(), "{bad}");
        }
        assert_eq!(blob_file_name("3f0e-9a").unwrap(), "3f0e-9a");
    }
}
