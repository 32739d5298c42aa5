//! NATS subjects (`mbus/nats_handler.go`, `handler/topic.go`; the director's `nats_rpc.rb`).

/// Where an agent listens: `agent.<agent_id>`.
pub fn agent(agent_id: &str) -> String {
    format!("agent.{agent_id}")
}

/// Heartbeats: `hm.agent.heartbeat.<agent_id>`.
pub fn heartbeat(agent_id: &str) -> String {
    format!("hm.agent.heartbeat.{agent_id}")
}

/// Alerts: `hm.agent.alert.<agent_id>`.
pub fn alert(agent_id: &str) -> String {
    format!("hm.agent.alert.{agent_id}")
}

/// The shutdown notice of a `drain shutdown`: `hm.agent.shutdown.<agent_id>`.
pub fn shutdown(agent_id: &str) -> String {
    format!("hm.agent.shutdown.{agent_id}")
}

/// A director's reply subject: `director.<director_uuid>.<agent_id>.<request_uuid>`. NATS permissions
/// only let an agent publish to `director.*.<agent_id>.*`, so the agent id must sit in token 3.
pub fn director_reply(director_uuid: &str, agent_id: &str, request_uuid: &str) -> String {
    format!("director.{director_uuid}.{agent_id}.{request_uuid}")
}

/// What a director subscribes to for all its replies: `director.<director_uuid>.>`.
pub fn director_replies(director_uuid: &str) -> String {
    format!("director.{director_uuid}.>")
}
