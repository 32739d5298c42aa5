//! `prepare` (`agent/action/prepare.go`): before the director stops an instance for an update, the
//! agent downloads and installs every job and package of the new spec that is not installed yet
//! (`env.bosh.parallel` at a time), so the instance is down for as short a time as possible.

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result};

/// `prepare`.
pub const ACTION: ActionSpec = ActionSpec::task("prepare", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let spec: ApplySpec = invocation.args.get(0)?;
    context.installer().await?.prepare(&spec).await?;
    Ok(Value::from("prepared"))
}
