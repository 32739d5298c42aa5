//! The wire protocol between a director and an agent (`handler/request.go`, `handler/response.go`,
//! `agent/action_dispatcher.go`, `handler/perform_handler_with_json.go` of the Go agent, and the
//! director's `agent_client.rb`).
//!
//! **API boundary:** every type and every text here is matched by the BOSH director, `bosh create-env`
//! and their tests. Wire texts are built only by the constants and constructors of this module
//! ([`texts`]); a test pins each to its exact JSON bytes. Changing one is a breaking change.
//!
//! * a request is `{"protocol": 3, "method": "...", "arguments": [...], "reply_to": "..."}`
//!   ([`Request`]), decoded with Go's rules (keys case-insensitive, unknown keys ignored, `protocol`
//!   absent means 0);
//! * a response is exactly one of `{"value": ...}` or `{"exception": {"message": "..."}}`
//!   ([`Response`]); NATS responses are capped at 1 MiB ([`limit`]);
//! * an async action answers a [`TaskHandle`] and the caller polls `get_task`;
//! * agents publish [`Heartbeat`]s and [`Alert`]s to the health monitor ([`subjects`]).

pub mod limit;
pub mod subjects;
pub mod texts;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version the director speaks; from 3 on, `list_disk` is async and `stop` waits.
pub const PROTOCOL_VERSION: u64 = 3;

/// The `info` action's `api_version`.
pub const API_VERSION: u64 = 1;

/// A request from a director.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Request {
    /// Protocol version; 0 when absent (bosh-cli's HTTPS client never sends it).
    pub protocol: u64,
    /// The action, e.g. `apply`.
    pub method: String,
    /// Positional arguments.
    pub arguments: Vec<Value>,
    /// Where the response goes (a NATS subject; the director's id over HTTPS).
    pub reply_to: String,
}

/// A request that could not be decoded, with the `reply_to` recovered from it if possible, so that the
/// sender gets an exception instead of silence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MalformedRequest {
    /// Why the request is malformed.
    pub message: String,
    /// The `reply_to` found in the bytes, if any.
    pub reply_to: Option<String>,
}

/// A response to a director.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `{"value": ...}`.
    Value(Value),
    /// `{"exception": {"message": "..."}}`.
    Exception(String),
}

/// The value of an async action's first answer, and of `get_task` while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHandle {
    /// The task's id, a UUID.
    pub agent_task_id: String,
    /// `running` (the director also understands `done` and `failed` from older agents).
    pub state: String,
}

/// A heartbeat, published every 30 s on `hm.agent.heartbeat.<agent_id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The deployment from the applied spec.
    pub deployment: String,
    /// The instance group (`job.name`), or null.
    pub job: Option<String>,
    /// The instance index, or null.
    pub index: Option<i64>,
    /// `running`, `failing`, `starting`, `stopped` or `unknown`.
    pub job_state: String,
    /// The VM's vitals.
    pub vitals: Value,
    /// The instance id from the applied spec.
    pub node_id: String,
    /// How many processes the supervisor watches, or null when it cannot tell.
    pub number_of_processes: Option<u64>,
}

/// An alert, published on `hm.agent.alert.<agent_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The alert's id.
    pub id: String,
    /// 1 alert, 2 critical, 3 error, 4 warning.
    pub severity: u8,
    /// `<service> (<ips>) - <event> - <action>`.
    pub title: String,
    /// The description.
    pub summary: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// What an agent tells the health monitor besides heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// An alert, on `hm.agent.alert.<agent_id>`.
    Alert(Alert),
    /// The VM is going away (`drain shutdown`): `null` on `hm.agent.shutdown.<agent_id>`.
    Shutdown,
}

impl HealthEvent {
    /// The subject and payload this event is published with.
    pub fn message(&self, agent_id: &str) -> (String, Vec<u8>) {
        match self {
            HealthEvent::Alert(alert) => (
                subjects::alert(agent_id),
                serde_json::to_vec(alert).unwrap_or_default(),
            ),
            HealthEvent::Shutdown => (subjects::shutdown(agent_id), b"null".to_vec()),
        }
    }
}

impl Request {
    /// Decodes a request. Malformed bytes give a [`MalformedRequest`] carrying the `reply_to` when it can
    /// still be found.
    pub fn parse(bytes: &[u8]) -> Result<Request, MalformedRequest> {
        // Fast path: directors and bosh-cli write exactly these lower-case keys. Anything else (other
        // spellings, nulls, duplicates) leaves `method` empty or fails, and takes the Go-rules path.
        if let Ok(request) = serde_json::from_slice::<Request>(bytes) {
            if !request.method.is_empty() {
                return Ok(request);
            }
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|err| MalformedRequest {
            message: format!("{}: {err}", texts::MALFORMED_REQUEST),
            reply_to: recover_reply_to(bytes),
        })?;
        let reply_to = value
            .as_object()
            .and_then(|object| {
                object
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case("reply_to"))
                    .and_then(|(_, reply_to)| reply_to.as_str())
            })
            .map(str::to_owned);
        settings::gojson::from_value(value).map_err(|err| MalformedRequest {
            message: format!("{}: {err}", texts::MALFORMED_REQUEST),
            reply_to,
        })
    }

    /// Encodes the request.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// Finds `"reply_to": "<text>"` in bytes that are not valid JSON (a truncated or garbled request).
fn recover_reply_to(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let start = text.find("\"reply_to\"")? + "\"reply_to\"".len();
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let reply_to = &rest[..end];
    (!reply_to.is_empty() && !reply_to.contains('\\')).then(|| reply_to.to_owned())
}

impl Response {
    /// A value response.
    pub fn value(value: impl Serialize) -> Response {
        match serde_json::to_value(value) {
            Ok(value) => Response::Value(value),
            Err(err) => Response::Exception(format!("encoding the response: {err}")),
        }
    }

    /// Encodes the response without a size limit (HTTPS).
    pub fn to_json(&self) -> Vec<u8> {
        let value = match self {
            Response::Value(value) => serde_json::json!({ "value": value }),
            Response::Exception(message) => {
                serde_json::json!({ "exception": { "message": message } })
            }
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// Decodes a response; anything else is an error naming what arrived.
    pub fn parse(bytes: &[u8]) -> Result<Response, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|err| format!("response is not JSON: {err}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| format!("response is not an object: {value}"))?;
        if let Some(exception) = object.get("exception") {
            let message = exception
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Ok(Response::Exception(message));
        }
        match object.get("value") {
            Some(value) => Ok(Response::Value(value.clone())),
            None => Err(format!("response has neither value nor exception: {value}")),
        }
    }
}

impl TaskHandle {
    /// The handle of a running task.
    pub fn running(agent_task_id: impl Into<String>) -> TaskHandle {
        TaskHandle {
            agent_task_id: agent_task_id.into(),
            state: "running".to_owned(),
        }
    }

    /// Reads a handle out of a value: an object with `agent_task_id` and `state`.
    pub fn from_value(value: &Value) -> Option<TaskHandle> {
        let object = value.as_object()?;
        if object.len() != 2 {
            return None;
        }
        Some(TaskHandle {
            agent_task_id: object.get("agent_task_id")?.as_str()?.to_owned(),
            state: object.get("state")?.as_str()?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_with_go_rules_and_default_protocol() {
        let request =
            Request::parse(br#"{"Method":"ping","ARGUMENTS":[],"reply_to":"d.1.a.2","extra":1}"#)
                .unwrap();
        assert_eq!(request.method, "ping");
        assert_eq!(request.protocol, 0);
        assert_eq!(request.reply_to, "d.1.a.2");
    }

    #[test]
    fn other_spellings_and_nulls_take_the_go_rules_path() {
        let request =
            Request::parse(br#"{"METHOD":"apply","protocol":null,"reply_to":"r"}"#).unwrap();
        assert_eq!((request.method.as_str(), request.protocol), ("apply", 0));
        let request = Request::parse(
            br#"{"method":"get_task","arguments":["t"],"protocol":3,"reply_to":"r"}"#,
        )
        .unwrap();
        assert_eq!(request.arguments, vec![Value::from("t")]);
        assert_eq!(request.protocol, 3);
    }

    #[test]
    fn invalid_json_keeps_the_reply_to_when_it_can() {
        let err = Request::parse(
            br#"{"method":"apply","reply_to":"director.x.agent-1.req", "arguments":[{"#,
        )
        .unwrap_err();
        assert_eq!(err.reply_to.as_deref(), Some("director.x.agent-1.req"));
        assert!(
            err.message.starts_with("malformed request: "),
            "{}",
            err.message
        );
        let err = Request::parse(br#"{"method":7,"reply_to":"r"}"#).unwrap_err();
        assert_eq!(err.reply_to.as_deref(), Some("r"));
        assert!(err.message.contains("field `method`"), "{}", err.message);
        assert_eq!(Request::parse(b"garbage").unwrap_err().reply_to, None);
    }

    #[test]
    fn responses_encode_exactly() {
        assert_eq!(Response::value("pong").to_json(), br#"{"value":"pong"}"#);
        assert_eq!(
            Response::Exception("boom".into()).to_json(),
            br#"{"exception":{"message":"boom"}}"#
        );
        assert_eq!(
            Response::value(TaskHandle::running("t-1")).to_json(),
            br#"{"value":{"agent_task_id":"t-1","state":"running"}}"#
        );
    }

    #[test]
    fn responses_round_trip() {
        for response in [
            Response::value(serde_json::json!({"a": [1, 2]})),
            Response::Exception("x".into()),
        ] {
            assert_eq!(Response::parse(&response.to_json()).unwrap(), response);
        }
        assert!(Response::parse(b"{}").is_err());
    }

    #[test]
    fn task_handles_are_recognised_only_in_their_exact_shape() {
        let handle = serde_json::json!({"agent_task_id": "t", "state": "running"});
        assert_eq!(
            TaskHandle::from_value(&handle),
            Some(TaskHandle::running("t"))
        );
        assert_eq!(TaskHandle::from_value(&serde_json::json!("applied")), None);
        assert_eq!(
            TaskHandle::from_value(
                &serde_json::json!({"agent_task_id": "t", "state": "running", "x": 1})
            ),
            None
        );
    }
}
