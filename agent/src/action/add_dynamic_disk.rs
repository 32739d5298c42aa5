//! `add_dynamic_disk` (`agent/action/add_dynamic_disk.go`): sets up a dynamic disk from the CPI's hint
//! (the platform links it under `data/dynamic_disks/<cid>`; nothing is formatted or mounted).

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, disk_from_hint};

/// `add_dynamic_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("add_dynamic_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    let disk = disk_from_hint(&context, &invocation.args).await?;
    blocking(move || {
        context.platform.add_dynamic_disk(&disk)?;
        Ok(serde_json::json!({}))
    })
    .await
}
