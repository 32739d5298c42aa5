//! `list_disk` (`agent/action/list_disk.go`): the CIDs of the persistent disks (from the settings and
//! the hints) that are mounted. Synchronous for protocol < 3, a task from 3 on, as in Go.

use std::sync::Arc;

use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Mode, Result, blocking};

/// `list_disk`.
pub const ACTION: ActionSpec = ActionSpec::query("list_disk", |context, invocation| {
    Box::pin(run(context, invocation))
})
.mode_by_protocol(|protocol| {
    if protocol < 3 {
        Mode::Query
    } else {
        Mode::Task
    }
});

async fn run(context: Arc<Context>, _invocation: Invocation) -> Result {
    context.settings.load().await?;
    blocking(move || {
        let mut mounted = Vec::new();
        for (cid, disk) in context.settings.all_persistent_disk_settings()? {
            if context.platform.is_persistent_disk_mounted(&disk)? {
                mounted.push(Value::from(cid));
            }
        }
        Ok(Value::Array(mounted))
    })
    .await
}
