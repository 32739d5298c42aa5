//! `add_persistent_disk` (`agent/action/add_persistent_disk.go`): remembers where a newly attached
//! persistent disk is (the CPI's hint, string or object) in `bosh/persistent_disk_hints.json`.

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, disk_from_hint};

/// `add_persistent_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("add_persistent_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    let disk = disk_from_hint(&context, &invocation.args).await?;
    blocking(move || {
        context.settings.save_persistent_disk_settings(disk)?;
        Ok(serde_json::json!({}))
    })
    .await
}
