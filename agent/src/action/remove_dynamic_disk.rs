//! `remove_dynamic_disk` (`agent/action/remove_dynamic_disk.go`): removes a dynamic disk's link.

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `remove_dynamic_disk`.
pub const ACTION: ActionSpec = ActionSpec::change("remove_dynamic_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let disk_cid: String = invocation.args.get(0)?;
    blocking(move || {
        context.platform.remove_dynamic_disk(&disk_cid)?;
        Ok(serde_json::json!({}))
    })
    .await
}
