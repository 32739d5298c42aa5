//! `drain` (`agent/action/drain.go`): before the director stops or deletes an instance, the agent
//! unmonitors the jobs and runs their drain scripts. `drain shutdown` first tells the health monitor
//! the VM is going away (`null` on `hm.agent.shutdown.<agent_id>`); `drain update` needs the new spec;
//! `drain status` is a call the director no longer makes. The answer is always `0`.
//!
//! Running drain scripts comes with the jobs issue: until jobs can be installed no job has one, and a
//! script found on disk is refused with a clear error rather than skipped.

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, error};
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
    let jobs_dir = context.dirs.jobs_dir();
    let scripts: Vec<_> = current
        .jobs()
        .iter()
        .map(|job| jobs_dir.join(&job.name).join("bin").join("drain"))
        .filter(|script| script.exists())
        .collect();
    if let Some(script) = scripts.first() {
        return Err(error(format!(
            "running drain scripts is not implemented yet (found {})",
            script.display()
        )));
    }
    Ok(Value::from(0))
}
