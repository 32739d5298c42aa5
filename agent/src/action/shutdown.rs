//! `shutdown` (`agent/action/shutdown.go`): powers the VM off (`shutdown -P 0` on Linux); answers `""`.

use std::sync::Arc;

use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `shutdown`.
pub const ACTION: ActionSpec = ActionSpec::change("shutdown", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, _invocation: Invocation) -> Result {
    let platform = context.platform.clone();
    blocking(move || Ok(platform.shutdown()?)).await?;
    Ok(Value::from(""))
}
