//! `add_persistent_disk` (`agent/action/add_persistent_disk.go`): remembers where a newly attached
//! persistent disk is (the CPI's hint, string or object) in `bosh/persistent_disk_hints.json`.

use std::sync::Arc;

use settings::model::DiskSpec;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `add_persistent_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("add_persistent_disk", |context, invocation| {
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
        context.settings.save_persistent_disk_settings(disk)?;
        Ok(serde_json::json!({}))
    })
    .await
}
