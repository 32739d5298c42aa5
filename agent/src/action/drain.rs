//! `drain` (`agent/action/drain.go`): before the director stops or deletes an instance, the agent
//! unmonitors the jobs and runs their drain scripts. `drain shutdown` first tells the health monitor
//! the VM is going away (`null` on `hm.agent.shutdown.<agent_id>`); `drain update` needs the new spec;
//! `drain status` is a call the director no longer makes. The answer is always `0`.
//! Each job's `bin/drain` runs with `<job_change> <hash_change> [updated packages]` and the
//! `BOSH_JOB_STATE`/`BOSH_JOB_NEXT_STATE` environment; a negative answer is a dynamic drain, run again
//! with `job_check_status` after that many seconds. `cancel_task` stops it.

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde_json::Value;

use jobs::script::drain::DrainParams;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, cancel_token, error};
use crate::protocol::HealthEvent;

/// `drain`.
pub const ACTION: ActionSpec = ActionSpec::task("drain", |context, invocation| {
    Box::pin(run(context, invocation))
})
.cancellable();

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let drain_type: String = invocation.args.get(0)?;
    let new_spec: Option<ApplySpec> = invocation.args.optional(1)?;
    let spec_file = context.dirs.spec_file();
    let current = blocking(move || Ok(ApplySpec::read(&spec_file)?)).await?;
    match drain_type.as_str() {
        "status" => return Err(error("Unexpected call with drain type 'status'")),
        "update" if new_spec.is_none() => return Err(error("Drain update requires new spec")),
        "shutdown" => context
            .health
            .send(HealthEvent::Shutdown)
            .await
            .map_err(|_| error("Notifying shutdown: the health monitor queue is closed"))?,
        _ => {}
    }
    context.supervisor.unmonitor()?;
    let params = match (drain_type.as_str(), &new_spec) {
        ("update", Some(new_spec)) => DrainParams::update(&current, new_spec),
        _ => DrainParams::shutdown(&current, new_spec.as_ref()),
    };
    let cancel = cancel_token(invocation.cancel);
    blocking(move || Ok(context.job_scripts().drain(&current, &params, &cancel)?)).await?;
    Ok(Value::from(0))
}
