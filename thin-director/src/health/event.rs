//! What the health monitor reports, as a line of text and as a JSON object (`serve --json`): the
//! alerts agents send (`bosh-monitor`'s `events/alert.rb`, severities named as there), job state
//! changes from heartbeats, missing agents (the HM's `vm_health` "has timed out" and "has no VM"
//! alerts), agents back or shutting down, meltdowns (the resurrector's "We are in meltdown") and
//! resurrections.

use std::time::Duration;

use agent::protocol::Alert;
use serde_json::{Value, json};

use crate::health::timeline::InstanceKey;

/// The `type` of the health monitor's JSON lines.
pub const KIND: &str = "health";

/// One thing to report.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The monitor started.
    Started {
        /// Its agent timeout.
        agent_timeout: Duration,
        /// Whether it resurrects.
        resurrect: bool,
    },
    /// The monitor stopped.
    Stopped,
    /// An agent's alert; `instance` is `None` for an agent of no recorded instance.
    Alert {
        /// The agent.
        agent_id: String,
        /// Its instance.
        instance: Option<InstanceKey>,
        /// The alert.
        alert: Alert,
    },
    /// A heartbeat's job state changed.
    JobState {
        /// The instance.
        instance: InstanceKey,
        /// The state before, if one was heard.
        from: Option<String>,
        /// The state now.
        to: String,
    },
    /// An agent not heard from for longer than the timeout, or an instance without a VM as long.
    Missing {
        /// The instance.
        instance: InstanceKey,
        /// Its agent; `None` when it has no VM.
        agent_id: Option<String>,
        /// How long it has been silent.
        silent_for: Duration,
    },
    /// A missing agent was heard from again.
    Back {
        /// The instance.
        instance: InstanceKey,
        /// Its agent.
        agent_id: String,
        /// How long it had been silent.
        silent_for: Duration,
    },
    /// An agent said its VM is going away.
    ShutDown {
        /// The instance.
        instance: InstanceKey,
        /// Its agent.
        agent_id: String,
    },
    /// A missing instance is left alone because resurrection is off.
    ResurrectionOff {
        /// The instance.
        instance: InstanceKey,
    },
    /// Too many of a deployment's instances are down: nothing is resurrected until it clears.
    Meltdown {
        /// The deployment.
        deployment: String,
        /// Its instances down within the time threshold.
        down: usize,
        /// Its instances.
        instances: usize,
    },
    /// A meltdown cleared.
    MeltdownOver {
        /// The deployment.
        deployment: String,
        /// Its instances down within the time threshold.
        down: usize,
        /// Its instances.
        instances: usize,
    },
    /// A resurrection started.
    Resurrecting {
        /// The deployment.
        deployment: String,
        /// The instances whose VMs are recreated.
        instances: Vec<InstanceKey>,
    },
    /// A resurrection finished.
    Resurrected {
        /// The deployment.
        deployment: String,
        /// The instances whose VMs were recreated.
        instances: Vec<InstanceKey>,
    },
    /// A resurrection failed; it is tried again after another agent timeout.
    ResurrectionFailed {
        /// The deployment.
        deployment: String,
        /// The instances.
        instances: Vec<InstanceKey>,
        /// The error with its causes.
        error: String,
    },
}

impl Event {
    /// The event as a line of text.
    pub fn text(&self) -> String {
        match self {
            Event::Started {
                agent_timeout,
                resurrect,
            } => format!(
                "Health monitor started: agents time out after {} s, resurrection is {}",
                agent_timeout.as_secs_f64(),
                if *resurrect { "on" } else { "off" }
            ),
            Event::Stopped => "Health monitor stopped".to_owned(),
            Event::Alert {
                agent_id,
                instance,
                alert,
            } => format!(
                "Alert from {}: {}: {}: {}",
                instance
                    .as_ref()
                    .map_or_else(|| format!("agent {agent_id} of no instance"), in_deployment),
                severity(alert.severity),
                alert.title,
                alert.summary
            ),
            Event::JobState { instance, from, to } => match from {
                Some(from) => format!("{}: {from} -> {to}", in_deployment(instance)),
                None => format!("{}: {to}", in_deployment(instance)),
            },
            Event::Missing {
                instance,
                agent_id: Some(agent_id),
                silent_for,
            } => format!(
                "{}: agent {agent_id} has timed out (not heard from for {} s)",
                in_deployment(instance),
                silent_for.as_secs()
            ),
            Event::Missing {
                instance,
                agent_id: None,
                silent_for,
            } => format!(
                "{}: has no VM (for {} s)",
                in_deployment(instance),
                silent_for.as_secs()
            ),
            Event::Back {
                instance,
                agent_id,
                silent_for,
            } => format!(
                "{}: agent {agent_id} is back after {} s",
                in_deployment(instance),
                silent_for.as_secs()
            ),
            Event::ShutDown { instance, agent_id } => format!(
                "{}: agent {agent_id} is shutting down; it will not be resurrected",
                in_deployment(instance)
            ),
            Event::ResurrectionOff { instance } => format!(
                "{}: not resurrected: resurrection is off",
                in_deployment(instance)
            ),
            Event::Meltdown {
                deployment,
                down,
                instances,
            } => format!(
                "Meltdown in '{deployment}': {}; resurrecting nothing until it clears",
                down_summary(*down, *instances)
            ),
            Event::MeltdownOver {
                deployment,
                down,
                instances,
            } => format!(
                "Meltdown in '{deployment}' is over: {}",
                down_summary(*down, *instances)
            ),
            Event::Resurrecting {
                deployment,
                instances,
            } => format!("Resurrecting {} in '{deployment}'", names(instances)),
            Event::Resurrected {
                deployment,
                instances,
            } => format!("Resurrected {} in '{deployment}'", names(instances)),
            Event::ResurrectionFailed {
                deployment,
                instances,
                error,
            } => format!(
                "Resurrecting {} in '{deployment}' failed: {error}; trying again after the agent timeout",
                names(instances)
            ),
        }
    }

    /// The event as a JSON object: `event` names it, the other keys are its fields.
    pub fn json(&self) -> Value {
        match self {
            Event::Started {
                agent_timeout,
                resurrect,
            } => json!({
                "event": "started",
                "agent_timeout_secs": agent_timeout.as_secs_f64(),
                "resurrect": resurrect,
            }),
            Event::Stopped => json!({"event": "stopped"}),
            Event::Alert {
                agent_id,
                instance,
                alert,
            } => {
                let mut value = json!({
                    "event": "alert",
                    "agent_id": agent_id,
                    "severity": alert.severity,
                    "title": alert.title,
                    "summary": alert.summary,
                    "created_at": alert.created_at,
                });
                if let Some(instance) = instance {
                    add_instance(&mut value, instance);
                }
                value
            }
            Event::JobState { instance, from, to } => with_instance(
                json!({"event": "job_state", "from": from, "to": to}),
                instance,
            ),
            Event::Missing {
                instance,
                agent_id,
                silent_for,
            } => with_instance(
                json!({
                    "event": "missing",
                    "agent_id": agent_id,
                    "silent_secs": silent_for.as_secs(),
                }),
                instance,
            ),
            Event::Back {
                instance,
                agent_id,
                silent_for,
            } => with_instance(
                json!({"event": "back", "agent_id": agent_id, "silent_secs": silent_for.as_secs()}),
                instance,
            ),
            Event::ShutDown { instance, agent_id } => {
                with_instance(json!({"event": "shutdown", "agent_id": agent_id}), instance)
            }
            Event::ResurrectionOff { instance } => {
                with_instance(json!({"event": "resurrection_off"}), instance)
            }
            Event::Meltdown {
                deployment,
                down,
                instances,
            } => json!({
                "event": "meltdown", "deployment": deployment, "down": down, "instances": instances,
            }),
            Event::MeltdownOver {
                deployment,
                down,
                instances,
            } => json!({
                "event": "meltdown_over", "deployment": deployment, "down": down,
                "instances": instances,
            }),
            Event::Resurrecting {
                deployment,
                instances,
            } => json!({
                "event": "resurrecting", "deployment": deployment,
                "instances": instance_names(instances),
            }),
            Event::Resurrected {
                deployment,
                instances,
            } => json!({
                "event": "resurrected", "deployment": deployment,
                "instances": instance_names(instances),
            }),
            Event::ResurrectionFailed {
                deployment,
                instances,
                error,
            } => json!({
                "event": "resurrection_failed", "deployment": deployment,
                "instances": instance_names(instances), "error": error,
            }),
        }
    }
}

/// The HM's name of an alert severity (`events/alert.rb`).
pub fn severity(severity: u8) -> String {
    match severity {
        1 => "alert".to_owned(),
        2 => "critical".to_owned(),
        3 => "error".to_owned(),
        4 => "warning".to_owned(),
        other => format!("severity {other}"),
    }
}

fn in_deployment(instance: &InstanceKey) -> String {
    format!("{} in '{}'", instance.name(), instance.deployment)
}

fn names(instances: &[InstanceKey]) -> String {
    instances
        .iter()
        .map(InstanceKey::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<group>/<id>` of each instance, as `instances --json` names them.
fn instance_names(instances: &[InstanceKey]) -> Vec<String> {
    instances
        .iter()
        .map(|instance| format!("{}/{}", instance.group, instance.id))
        .collect()
}

/// The resurrector's summary (`DeploymentState#summary`), counting instances.
fn down_summary(down: usize, instances: usize) -> String {
    let percent = down as f64 * 100.0 / instances.max(1) as f64;
    format!("{down} of {instances} instances are down ({percent:.1}%)")
}

fn with_instance(mut value: Value, instance: &InstanceKey) -> Value {
    add_instance(&mut value, instance);
    value
}

fn add_instance(value: &mut Value, instance: &InstanceKey) {
    value["deployment"] = Value::from(instance.deployment.clone());
    value["instance"] = Value::from(format!("{}/{}", instance.group, instance.id));
    value["index"] = Value::from(instance.index);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(index: u32) -> InstanceKey {
        InstanceKey {
            deployment: "hello".into(),
            group: "web".into(),
            index,
            id: format!("id-{index}"),
        }
    }

    #[test]
    fn events_read_as_lines() {
        let alert = Alert {
            id: "m-1".into(),
            severity: 1,
            title: "hello (10.0.0.1) - does not exist - restart".into(),
            summary: "process is not running".into(),
            created_at: 1_700_000_000,
        };
        let cases = [
            (
                Event::Started {
                    agent_timeout: Duration::from_secs(60),
                    resurrect: false,
                },
                "Health monitor started: agents time out after 60 s, resurrection is off",
            ),
            (
                Event::Alert {
                    agent_id: "a0".into(),
                    instance: Some(web(0)),
                    alert: alert.clone(),
                },
                "Alert from web/id-0 (0) in 'hello': alert: hello (10.0.0.1) - does not exist - restart: process is not running",
            ),
            (
                Event::Alert {
                    agent_id: "a9".into(),
                    instance: None,
                    alert: Alert {
                        severity: 7,
                        ..alert
                    },
                },
                "Alert from agent a9 of no instance: severity 7: hello (10.0.0.1) - does not exist - restart: process is not running",
            ),
            (
                Event::JobState {
                    instance: web(0),
                    from: Some("running".into()),
                    to: "failing".into(),
                },
                "web/id-0 (0) in 'hello': running -> failing",
            ),
            (
                Event::Missing {
                    instance: web(1),
                    agent_id: Some("a1".into()),
                    silent_for: Duration::from_millis(61_500),
                },
                "web/id-1 (1) in 'hello': agent a1 has timed out (not heard from for 61 s)",
            ),
            (
                Event::Missing {
                    instance: web(1),
                    agent_id: None,
                    silent_for: Duration::from_secs(61),
                },
                "web/id-1 (1) in 'hello': has no VM (for 61 s)",
            ),
            (
                Event::ResurrectionOff { instance: web(1) },
                "web/id-1 (1) in 'hello': not resurrected: resurrection is off",
            ),
            (
                Event::Meltdown {
                    deployment: "hello".into(),
                    down: 5,
                    instances: 8,
                },
                "Meltdown in 'hello': 5 of 8 instances are down (62.5%); resurrecting nothing until it clears",
            ),
            (
                Event::Resurrecting {
                    deployment: "hello".into(),
                    instances: vec![web(0), web(2)],
                },
                "Resurrecting web/id-0 (0), web/id-2 (2) in 'hello'",
            ),
            (
                Event::ResurrectionFailed {
                    deployment: "hello".into(),
                    instances: vec![web(0)],
                    error: "create_vm: no capacity".into(),
                },
                "Resurrecting web/id-0 (0) in 'hello' failed: create_vm: no capacity; trying again after the agent timeout",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(event.text(), text);
        }
    }

    #[test]
    fn events_read_as_json() {
        assert_eq!(
            Event::Missing {
                instance: web(1),
                agent_id: Some("a1".into()),
                silent_for: Duration::from_secs(61),
            }
            .json(),
            json!({
                "event": "missing", "deployment": "hello", "instance": "web/id-1", "index": 1,
                "agent_id": "a1", "silent_secs": 61,
            })
        );
        assert_eq!(
            Event::Resurrected {
                deployment: "hello".into(),
                instances: vec![web(0)],
            }
            .json(),
            json!({"event": "resurrected", "deployment": "hello", "instances": ["web/id-0"]})
        );
    }
}
