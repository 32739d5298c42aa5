//! `remove_persistent_disk` (`agent/action/remove_persistent_disk.go`): forgets a detached persistent
//! disk's hint.

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `remove_persistent_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("remove_persistent_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let disk_cid: String = invocation.args.get(0)?;
    context.settings.load().await?;
    blocking(move || {
        context
            .settings
            .remove_persistent_disk_settings(&disk_cid)?;
        Ok(serde_json::json!({}))
    })
    .await
}
