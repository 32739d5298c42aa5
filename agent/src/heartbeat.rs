//! Heartbeats (`agent/agent.go`, `agent/heartbeat.go`): the instance's identity, job state and vitals,
//! published on `hm.agent.heartbeat.<agent_id>` right after the first successful connection and then
//! every [`INTERVAL`].
//!
//! For tests only, [`INTERVAL_ENV`] (`BOSH_AGENT_HEARTBEAT_SECS`) in the agent's environment sets
//! another interval in whole seconds, so that a health monitor's timeouts can be tested in seconds
//! (the thin director's tests pass it through the process CPI's `agent.env`). Production agents
//! never have it and keep the Go agent's 30 s, which the health monitor's 60 s timeout assumes.
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

/// The environment variable that overrides [`INTERVAL`], in whole seconds: for tests only.
pub const INTERVAL_ENV: &str = "BOSH_AGENT_HEARTBEAT_SECS";

/// The interval [`INTERVAL_ENV`]'s value asks for: [`INTERVAL`] when it is unset, an error naming
/// the value when it is not a whole number of seconds above zero.
pub fn interval_from(value: Option<&str>) -> Result<Duration, String> {
    let Some(value) = value else {
        return Ok(INTERVAL);
    };
    match value.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{INTERVAL_ENV}={value:?} is not a whole number of seconds above zero"
        )),
    }
}

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

/// Publishes heartbeats forever: the first once `connected` fires, then every `interval`
/// ([`INTERVAL`] but in tests).
pub async fn run(
    client: async_nats::Client,
    connected: Arc<Notify>,
    context: Arc<Context>,
    agent_id: String,
    interval: Duration,
) {
    connected.notified().await;
    let subject = subjects::heartbeat(&agent_id);
    let mut ticks = tokio::time::interval(interval);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_thirty_seconds_unless_the_test_variable_says_otherwise() {
        assert_eq!(interval_from(None), Ok(Duration::from_secs(30)));
        assert_eq!(interval_from(Some("1")), Ok(Duration::from_secs(1)));
        assert_eq!(interval_from(Some(" 5 ")), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "1.5", "", "soon"] {
            assert_eq!(
                interval_from(Some(bad)),
                Err(format!(
                    "BOSH_AGENT_HEARTBEAT_SECS={bad:?} is not a whole number of seconds above zero"
                )),
            );
        }
    }
}
