//! What agents publish for the health monitor, decoded (`reference/director-cpi.md` §4.1–4.2;
//! `bosh-monitor/lib/bosh/monitor/agent_manager.rb`, `process_event`): the kind and the agent id
//! come from the subject (`hm.agent.<kind>.<agent_id>`, the id being everything after the third
//! dot, as `subject.split('.', 4).last`), the body from [`agent::protocol`]'s wire types.
//!
//! A heartbeat whose body cannot be read still shows its agent alive (the HM, too, refreshes an
//! agent on any heartbeat); an alert whose body cannot be read is an error to log.

use agent::protocol::{Alert, Heartbeat};

/// One message from an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentMessage {
    /// The agent's id, from the subject.
    pub agent_id: String,
    /// What it said.
    pub kind: Kind,
}

/// What an agent said.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `hm.agent.heartbeat.<id>`; `None` when the body could not be read.
    Heartbeat(Option<Box<Heartbeat>>),
    /// `hm.agent.alert.<id>`.
    Alert(Alert),
    /// `hm.agent.shutdown.<id>` (its body, `null`, says nothing more).
    Shutdown,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The subject is not `hm.agent.<heartbeat|alert|shutdown>.<agent_id>`.
    #[error("subject {0:?} is not hm.agent.<heartbeat|alert|shutdown>.<agent id>")]
    Subject(String),
    /// An alert's body is not an alert.
    #[error("alert from agent {agent_id}")]
    Alert {
        /// The agent.
        agent_id: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Decodes the message published on `subject` with `payload`.
pub fn parse(subject: &str, payload: &[u8]) -> Result<AgentMessage, Error> {
    let subject_error = || Error::Subject(subject.to_owned());
    let mut tokens = subject.splitn(4, '.');
    let (Some("hm"), Some("agent"), Some(kind), Some(agent_id)) =
        (tokens.next(), tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(subject_error());
    };
    if agent_id.is_empty() {
        return Err(subject_error());
    }
    let kind = match kind {
        "heartbeat" => Kind::Heartbeat(serde_json::from_slice(payload).ok().map(Box::new)),
        "alert" => Kind::Alert(
            serde_json::from_slice(payload).map_err(|source| Error::Alert {
                agent_id: agent_id.to_owned(),
                source,
            })?,
        ),
        "shutdown" => Kind::Shutdown,
        _ => return Err(subject_error()),
    };
    Ok(AgentMessage {
        agent_id: agent_id.to_owned(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn heartbeats_alerts_and_shutdowns_are_read_with_the_agent_id_from_the_subject() {
        let heartbeat = json!({
            "deployment": "hello", "job": "hello", "index": 0, "job_state": "running",
            "vitals": {"load": ["0.01", "0.02", "0.03"]}, "node_id": "id-0",
            "number_of_processes": 1,
        });
        let message = parse(
            "hm.agent.heartbeat.agent-1",
            heartbeat.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(message.agent_id, "agent-1");
        let Kind::Heartbeat(Some(read)) = message.kind else {
            panic!("{message:?}");
        };
        assert_eq!(read.job_state, "running");
        assert_eq!(read.number_of_processes, Some(1));

        let alert = json!({
            "id": "m-1", "severity": 1, "title": "hello (10.0.0.1) - does not exist - restart",
            "summary": "process is not running", "created_at": 1_700_000_000,
        });
        let message = parse("hm.agent.alert.agent-1", alert.to_string().as_bytes()).unwrap();
        assert_eq!(
            message.kind,
            Kind::Alert(Alert {
                id: "m-1".into(),
                severity: 1,
                title: "hello (10.0.0.1) - does not exist - restart".into(),
                summary: "process is not running".into(),
                created_at: 1_700_000_000,
            })
        );

        let message = parse("hm.agent.shutdown.agent-1", b"null").unwrap();
        assert_eq!(
            message,
            AgentMessage {
                agent_id: "agent-1".into(),
                kind: Kind::Shutdown,
            }
        );
    }

    #[test]
    fn an_unreadable_heartbeat_still_names_its_agent() {
        let message = parse("hm.agent.heartbeat.agent-1", b"{not json").unwrap();
        assert_eq!(message.kind, Kind::Heartbeat(None));
        // Everything after the third dot is the id, as in the HM.
        let message = parse("hm.agent.heartbeat.a.b", b"{}").unwrap();
        assert_eq!(message.agent_id, "a.b");
    }

    #[test]
    fn bad_subjects_and_bad_alerts_are_errors() {
        for subject in [
            "hm.agent.heartbeat",
            "hm.agent.heartbeat.",
            "hm.agent.vitals.agent-1",
            "hm.director.alert",
            "agent.agent-1",
        ] {
            let err = parse(subject, b"null").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "subject {subject:?} is not hm.agent.<heartbeat|alert|shutdown>.<agent id>"
                )
            );
        }
        let err = parse("hm.agent.alert.agent-1", b"{\"id\": 1}").unwrap_err();
        assert!(
            matches!(&err, Error::Alert { agent_id, .. } if agent_id == "agent-1"),
            "{err:?}"
        );
    }
}
