//! `sync_dns_with_signed_url` (`agent/action/sync_dns_with_signed_url.go`): `sync_dns` with the blob
//! at a signed URL: `{"signed_url", "multi_digest", "version", "blobstore_headers"}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use settings::digest::MultiDigest;

use crate::action::sync_dns::{Blob, sync};
use crate::action::{ActionSpec, Context, Invocation, Result};

/// `sync_dns_with_signed_url`.
pub const ACTION: ActionSpec =
    ActionSpec::query("sync_dns_with_signed_url", |context, invocation| {
        Box::pin(run(context, invocation))
    });

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    signed_url: String,
    multi_digest: String,
    version: u64,
    blobstore_headers: BTreeMap<String, String>,
}

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let args: Args = invocation.args.get(0)?;
    let digest = MultiDigest::parse(&args.multi_digest)?;
    let blob = Blob::Signed {
        url: args.signed_url,
        headers: args.blobstore_headers,
    };
    sync(&context, args.version, blob, &digest).await
}
