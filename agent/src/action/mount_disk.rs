//! `mount_disk` (`agent/action/mount_disk.go`): reloads the settings (CPIs such as vSphere rewrite them
//! when attaching), finds the disk in the settings or the hints, and mounts it on `store/` (or on
//! `store_migration_target/` when another disk is there, which the platform decides).

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `mount_disk`.
pub const ACTION: ActionSpec = ActionSpec::task("mount_disk", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let disk_cid: String = invocation.args.get(0)?;
    context.settings.load().await?;
    blocking(move || {
        let disk = context.settings.persistent_disk_settings(&disk_cid)?;
        context
            .platform
            .mount_persistent_disk(&disk, &context.dirs.store_dir())?;
        settings::atomic_file::write(
            &context.dirs.managed_disk_settings_file(),
            disk_cid.as_bytes(),
            0o600,
        )?;
        Ok(serde_json::json!({}))
    })
    .await
}
