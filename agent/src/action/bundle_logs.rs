//! `bundle_logs` (`agent/action/bundle_logs.go`): the logs tarball left on the VM for the operator to
//! copy off (over `bosh ssh` as `owning_user`), answered as `{"logs_tar_path", "sha512"}`;
//! `remove_file` cleans it up afterwards. Handing the file to `owning_user` needs the Linux platform's
//! users and comes with them; the tarball is readable by its owner only.

use std::sync::Arc;

use serde::Deserialize;
use settings::digest::{Algorithm, MultiDigest};

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `bundle_logs`.
pub const ACTION: ActionSpec = ActionSpec::change("bundle_logs", |context, invocation| {
    Box::pin(run(context, invocation))
});

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    owning_user: String,
    log_type: String,
    filters: Vec<String>,
}

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let args: Args = invocation.args.get(0)?;
    tracing::debug!(owning_user = %args.owning_user, "bundling logs");
    let (tarball, work) =
        super::fetch_logs::pack_logs(&context, args.log_type, args.filters).await?;
    blocking(move || {
        // The tarball outlives the request: keep its directory.
        let dir = work.keep();
        let digest = MultiDigest::compute(std::fs::File::open(&tarball)?, &[Algorithm::Sha512])?;
        tracing::debug!(dir = %dir.display(), "logs bundled");
        Ok(serde_json::json!({ "logs_tar_path": tarball, "sha512": digest.to_string() }))
    })
    .await
}
