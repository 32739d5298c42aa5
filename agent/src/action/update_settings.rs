//! `update_settings` (`agent/action/update_settings.go`): the director's later settings: trusted CA
//! certificates, disk associations, and new mbus or blobstore settings.
//!
//! The settings are reloaded from the source, every disk association is handed to the platform, the
//! trusted certificates are installed, and the update is merged into `bosh/update_settings.json`. When
//! the mbus or the blobstores changed, the agent must restart to use them: the task stays running, the
//! agent exits 0 a second later so its service manager restarts it, and the restarted agent finishes
//! the persisted task with `"ok"`.

use std::sync::Arc;

use serde_json::Value;
use settings::model::UpdateSettings;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `update_settings`.
pub const ACTION: ActionSpec = ActionSpec::task("update_settings", |context, invocation| {
    Box::pin(run(context, invocation))
})
.persistent(|_| Box::pin(async { Ok(Value::from("ok")) }));

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let update: UpdateSettings = invocation.args.get(0)?;
    context.settings.load().await?;
    let work_context = context.clone();
    let restart_needed = blocking(move || {
        let context = work_context;
        for association in &update.disk_associations {
            let disk = context
                .settings
                .persistent_disk_settings(&association.cid)?;
            context.platform.associate_disk(&association.name, &disk)?;
        }
        context
            .platform
            .update_trusted_certs(&update.trusted_certs)?;
        let mut merged = context.settings.settings().update_settings;
        let changed = merged.merge(update);
        context.settings.save_update_settings(merged)?;
        Ok(changed)
    })
    .await?;
    if restart_needed {
        tracing::info!("mbus or blobstore settings changed, restarting the agent");
        // The task stays running: the restarted agent resumes it and answers `ok`.
        let _ = context.restart.send(()).await;
        std::future::pending::<()>().await;
    }
    Ok(Value::from("ok"))
}
