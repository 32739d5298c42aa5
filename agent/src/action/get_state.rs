//! `get_state` (`agent/action/get_state.go`): the applied spec with `agent_id`, `job_state`, the
//! supervised `processes` (omitted when none), `vm`, and `vitals` when the first argument is `"full"`.
//!
//! The Go agent asks monit synchronously here, so a hung monit makes the whole agent unresponsive
//! (cloudfoundry/bosh#2470); this action is a query that runs beside everything else.

use std::sync::Arc;

use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `get_state`.
pub const ACTION: ActionSpec = ActionSpec::query("get_state", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    let full = invocation.args.optional::<String>(0)?.as_deref() == Some("full");
    let spec_file = context.dirs.spec_file();
    let platform = context.platform.clone();
    let (spec, vitals) = blocking(move || {
        let spec = jobs::apply_spec::ApplySpec::read(&spec_file)?;
        let vitals = if full { Some(platform.vitals()?) } else { None };
        Ok((spec, vitals))
    })
    .await?;
    let settings = context.settings.settings();
    let mut state = serde_json::to_value(&spec)?;
    let object = state
        .as_object_mut()
        .ok_or_else(|| crate::action::error("the spec is not an object"))?;
    for key in ["networks", "resource_pool", "packages"] {
        if object.get(key).is_none_or(Value::is_null) {
            object.insert(key.to_owned(), serde_json::json!({}));
        }
    }
    object.insert(
        "agent_id".to_owned(),
        Value::from(settings.agent_id.clone()),
    );
    object.insert(
        "job_state".to_owned(),
        Value::from(context.supervisor.status()),
    );
    if let Some(vitals) = vitals {
        object.insert("vitals".to_owned(), serde_json::to_value(vitals)?);
    }
    let processes = context.supervisor.processes();
    if !processes.is_empty() {
        object.insert("processes".to_owned(), serde_json::to_value(processes)?);
    }
    object.insert("vm".to_owned(), serde_json::to_value(&settings.vm)?);
    Ok(state)
}
