//! `migrate_disk` (`agent/action/migrate_disk.go`): copies the old persistent disk (on `store/`) to the
//! new one (on `store_migration_target/`), then the new one takes `store/`. The director's arguments
//! are ignored, as in Go.

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `migrate_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("migrate_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, _invocation: Invocation) -> Result {
    blocking(move || {
        context.platform.migrate_persistent_disk(
            &context.dirs.store_dir(),
            &context.dirs.store_migration_dir(),
        )?;
        Ok(serde_json::json!({}))
    })
    .await
}
