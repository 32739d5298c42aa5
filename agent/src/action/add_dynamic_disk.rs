//! `add_dynamic_disk` (`agent/action/add_dynamic_disk.go`): sets up a dynamic disk from the CPI's hint
//! (the platform links it under `data/dynamic_disks/<cid>`; nothing is formatted or mounted).

use std::sync::Arc;

use settings::model::DiskSpec;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `add_dynamic_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("add_dynamic_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(2)?;
    let disk_cid: String = invocation.args.get(0)?;
    let hint: DiskSpec = invocation.args.get(1)?;
    context.settings.load().await?;
    blocking(move || {
        let disk = context
            .settings
            .settings()
            .persistent_disk_settings_from_hint(&disk_cid, &hint);
        context.platform.add_dynamic_disk(&disk)?;
        Ok(serde_json::json!({}))
    })
    .await
}
