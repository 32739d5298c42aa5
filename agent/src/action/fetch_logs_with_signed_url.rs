//! `fetch_logs_with_signed_url` (`agent/action/fetch_logs_with_signed_url.go`): `fetch_logs` with the
//! tarball PUT to a signed URL: `{"signed_url", "log_type", "filters", "blobstore_headers"}` →
//! `{"sha1": "<sha1>;sha512:<hex>"}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::action::fetch_logs::pack_logs;
use crate::action::{ActionSpec, Context, Invocation, Result};

/// `fetch_logs_with_signed_url`.
pub const ACTION: ActionSpec =
    ActionSpec::task("fetch_logs_with_signed_url", |context, invocation| {
        Box::pin(run(context, invocation))
    });

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    signed_url: String,
    log_type: String,
    filters: Vec<String>,
    blobstore_headers: BTreeMap<String, String>,
}

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let args: Args = invocation.args.get(0)?;
    let (tarball, _work) = pack_logs(&context, args.log_type, args.filters).await?;
    let digest = context
        .signed_client()
        .await?
        .put_signed(&args.signed_url, &args.blobstore_headers, &tarball)
        .await?;
    Ok(serde_json::json!({ "sha1": digest.to_string() }))
}
