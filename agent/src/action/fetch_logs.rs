//! `fetch_logs` (`agent/action/fetch_logs.go`): `bosh logs` packs the job, agent or system logs
//! (comma list, glob filters) into a tarball, stores it in the blobstore and answers
//! `{"blobstore_id", "sha1"}`; the temporary tarball is removed.

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `fetch_logs`.
pub const ACTION: ActionSpec = ActionSpec::task("fetch_logs", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let log_types: String = invocation.args.get(0)?;
    let filters: Vec<String> = invocation.args.optional(1)?.unwrap_or_default();
    let (tarball, _work) = pack_logs(&context, log_types, filters).await?;
    let (blobstore_id, digest) = context.blobstore().await?.put(&tarball).await?;
    Ok(serde_json::json!({ "blobstore_id": blobstore_id, "sha1": digest.to_string() }))
}

/// Packs the logs into a tarball in a temporary directory under `data/tmp`, which is removed when
/// the returned guard drops.
pub(super) async fn pack_logs(
    context: &Arc<Context>,
    log_types: String,
    filters: Vec<String>,
) -> Result<(std::path::PathBuf, tempfile::TempDir)> {
    let context = context.clone();
    blocking(move || {
        let tmp = context.dirs.tmp_dir();
        std::fs::create_dir_all(&tmp)?;
        let work = tempfile::Builder::new()
            .prefix("bosh-agent-fetch-logs-")
            .tempdir_in(&tmp)?;
        let tarball = work.path().join("logs.tgz");
        let system = context.platform.system_log_dir();
        jobs::logs::pack(
            &log_types,
            &filters,
            &context.dirs,
            system.as_deref(),
            work.path(),
            &tarball,
        )?;
        Ok((tarball, work))
    })
    .await
}
