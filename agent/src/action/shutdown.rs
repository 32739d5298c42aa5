//! `shutdown` (`agent/action/shutdown.go`): powers the VM off (`shutdown -P 0` on Linux); answers `""`.

use std::sync::Arc;

use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Mode, Result, always, blocking};

/// `shutdown`.
pub const ACTION: ActionSpec = ActionSpec {
    name: "shutdown",
    mode: always(Mode::Change),
    persistent: false,
    cancellable: false,
    loggable: true,
    run: |context, invocation| Box::pin(run(context, invocation)),
    resume: None,
};

async fn run(context: Arc<Context>, _invocation: Invocation) -> Result {
    let platform = context.platform.clone();
    blocking(move || Ok(platform.shutdown()?)).await?;
    Ok(Value::from(""))
}
