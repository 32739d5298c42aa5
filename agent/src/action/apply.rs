//! `apply` (`agent/action/apply.go`): make the instance what the spec says. DHCP networks of the spec
//! get their addresses from the settings; when `configuration_hash` is set, every job and package is
//! installed and enabled and the ones no longer wanted are removed; then the filtered spec is saved as
//! `bosh/spec.json` and `instance/{id,az,name,deployment}` are written. Answers `"applied"`.
//!
//! Reloading the job supervisor and writing the logrotate configuration come with the built-in
//! supervisor.

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result};

/// `apply`.
pub const ACTION: ActionSpec = ActionSpec::task("apply", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let spec: ApplySpec = invocation.args.get(0)?;
    let networks = context.settings.settings().networks;
    context.installer().await?.apply(spec, &networks).await?;
    Ok(Value::from("applied"))
}
