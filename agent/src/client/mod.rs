//! An agent client, as a director uses one (`agent_client.rb`, `nats_rpc.rb` of the director;
//! `agentclient/http` of bosh-cli): send a request, wait for its response, and for async actions poll
//! `get_task` until the task is no longer running.
//!
//! [`HttpsClient`] speaks to the HTTPS mbus of a `bosh create-env` agent, as bosh-cli does.
//!
//! [`NatsClient`] uses director-style reply subjects, `director.<director_uuid>.<agent_id>.<request_uuid>`,
//! with one subscription to `director.<director_uuid>.>` for all replies (NATS permissions only let an
//! agent answer on subjects carrying its own id).

mod https;
mod nats;

use std::time::Duration;

use serde_json::Value;

pub use https::HttpsClient;
pub use nats::NatsClient;

use crate::protocol::{Response, TaskHandle};

/// The director's default reply timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45);

/// The director's `get_task` poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to the bus failed.
    #[error("connecting to {url}")]
    Connect {
        /// The bus URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Sending failed.
    #[error("sending {method} to agent {agent_id}")]
    Send {
        /// The method.
        method: String,
        /// The agent.
        agent_id: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No response in time.
    #[error("timed out after {timeout:?} waiting for agent {agent_id} to answer {method}")]
    Timeout {
        /// The method.
        method: String,
        /// The agent.
        agent_id: String,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The response was not a response.
    #[error("agent {agent_id} answered {method} with something that is not a response: {message}")]
    BadResponse {
        /// The method.
        method: String,
        /// The agent.
        agent_id: String,
        /// What was wrong.
        message: String,
    },
    /// The agent answered with an exception.
    #[error("{0}")]
    Exception(String),
}

/// Something that can send one request and wait for its response.
pub trait Transport: Send + Sync {
    /// Sends `method(arguments)` to `agent_id` with `protocol` and waits up to `timeout`.
    fn send(
        &self,
        agent_id: &str,
        method: &str,
        arguments: Vec<Value>,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Response, Error>> + Send;
}

/// Sends a request; an exception becomes [`Error::Exception`].
pub async fn call<T: Transport>(
    transport: &T,
    agent_id: &str,
    method: &str,
    arguments: Vec<Value>,
    timeout: Duration,
) -> Result<Value, Error> {
    match transport.send(agent_id, method, arguments, timeout).await? {
        Response::Value(value) => Ok(value),
        Response::Exception(message) => Err(Error::Exception(message)),
    }
}

/// Sends a request and, when it answers a task handle, polls `get_task` every `poll` until the task
/// finishes; returns the task's value.
pub async fn call_and_wait<T: Transport>(
    transport: &T,
    agent_id: &str,
    method: &str,
    arguments: Vec<Value>,
    timeout: Duration,
    poll: Duration,
) -> Result<Value, Error> {
    let mut value = call(transport, agent_id, method, arguments, timeout).await?;
    loop {
        match TaskHandle::from_value(&value) {
            Some(handle) if handle.state == "running" => {
                tokio::time::sleep(poll).await;
                value = call(
                    transport,
                    agent_id,
                    "get_task",
                    vec![Value::String(handle.agent_task_id)],
                    timeout,
                )
                .await?;
            }
            _ => return Ok(value),
        }
    }
}
