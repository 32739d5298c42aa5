//! `stop` (`agent/action/stop.go`): stops every job process, dependants first, and waits until they
//! are gone (at most 5 minutes); the instance then reports `stopped`. Answers `"stopped"`.

use std::sync::Arc;

use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result};

/// `stop`.
pub const ACTION: ActionSpec = ActionSpec::task("stop", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, _invocation: Invocation) -> Result {
    context.supervisor.stop().await?;
    Ok(Value::from("stopped"))
}
