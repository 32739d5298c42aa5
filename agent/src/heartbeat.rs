//! Heartbeats (`agent/agent.go`, `agent/heartbeat.go`): the instance's identity, job state and vitals,
//! published on `hm.agent.heartbeat.<agent_id>` right after the first successful connection and then
//! every [`INTERVAL`].
//!
//! The Go agent sends its first heartbeat before the connection is up and loses it, and kills itself
//! when a heartbeat cannot be published for a minute; here a failed heartbeat is logged and the next
//! one is tried on schedule, so the agent never goes deaf on its own.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::action::{self, Context};
use crate::protocol::{Heartbeat, subjects};

/// Time between heartbeats.
pub const INTERVAL: Duration = Duration::from_secs(30);

/// Builds the current heartbeat (reads the spec and the vitals; blocking work runs off the runtime).
pub async fn build(context: Arc<Context>) -> action::Result<Heartbeat> {
    action::blocking(move || {
        let spec = jobs::apply_spec::ApplySpec::read(&context.dirs.spec_file())?;
        let vitals = context.platform.vitals()?;
        Ok(Heartbeat {
            deployment: spec.deployment,
            job: spec.job.name,
            index: spec.index,
            job_state: context.supervisor.status(),
            vitals: serde_json::to_value(vitals)?,
            node_id: spec.id,
            number_of_processes: Some(context.supervisor.processes().len() as u64),
        })
    })
    .await
}

/// Publishes heartbeats forever: the first once `connected` fires, then every [`INTERVAL`].
pub async fn run(
    client: async_nats::Client,
    connected: Arc<Notify>,
    context: Arc<Context>,
    agent_id: String,
) {
    connected.notified().await;
    let subject = subjects::heartbeat(&agent_id);
    let mut ticks = tokio::time::interval(INTERVAL);
    loop {
        ticks.tick().await;
        match build(context.clone()).await {
            Ok(heartbeat) => {
                let payload = serde_json::to_vec(&heartbeat).unwrap_or_default();
                if let Err(err) = client.publish(subject.clone(), payload.into()).await {
                    tracing::warn!(error = %err, "publishing a heartbeat");
                }
            }
            Err(err) => {
                tracing::warn!(error = %settings::source::error_chain(err.as_ref()), "building a heartbeat")
            }
        }
    }
}
