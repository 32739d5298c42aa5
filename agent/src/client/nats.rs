//! The NATS transport of the agent client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{Error, Transport};
use crate::protocol::{PROTOCOL_VERSION, Request, Response, subjects};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// A director-side client on NATS.
#[derive(Debug)]
pub struct NatsClient {
    client: async_nats::Client,
    director_uuid: String,
    pending: Pending,
    router: JoinHandle<()>,
}

impl NatsClient {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`) with a TLS configuration (the director's
    /// certificate and the NATS CA) and subscribes to this client's replies.
    pub async fn connect(url: &str, tls: rustls::ClientConfig) -> Result<NatsClient, Error> {
        let connect_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Connect {
            url: url.to_owned(),
            source,
        };
        let client = async_nats::ConnectOptions::new()
            .require_tls(true)
            .tls_client_config(tls)
            .connection_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|err| connect_error(Box::new(err)))?;
        let director_uuid = uuid::Uuid::new_v4().to_string();
        let mut replies = client
            .subscribe(subjects::director_replies(&director_uuid))
            .await
            .map_err(|err| connect_error(Box::new(err)))?;
        // Subscriptions take effect when the server has seen them; flush so no early reply is lost.
        client
            .flush()
            .await
            .map_err(|err| connect_error(Box::new(err)))?;
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let router_pending = pending.clone();
        let router = tokio::spawn(async move {
            while let Some(message) = replies.next().await {
                let Some(request_uuid) = message.subject.rsplit('.').next() else {
                    continue;
                };
                let waiter = router_pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(request_uuid);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(message.payload.to_vec());
                }
            }
        });
        Ok(NatsClient {
            client,
            director_uuid,
            pending,
            router,
        })
    }

    /// Publishes raw bytes to an agent with a director reply subject and waits for the raw answer
    /// (tests use it to send malformed requests).
    pub async fn send_raw(
        &self,
        agent_id: &str,
        reply_to: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Error> {
        let request_uuid = reply_to.rsplit('.').next().unwrap_or(reply_to).to_owned();
        let (sender, receiver) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request_uuid.clone(), sender);
        let send_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Send {
            method: "(raw)".to_owned(),
            agent_id: agent_id.to_owned(),
            source,
        };
        self.client
            .publish(subjects::agent(agent_id), payload.into())
            .await
            .map_err(|err| send_error(Box::new(err)))?;
        self.client
            .flush()
            .await
            .map_err(|err| send_error(Box::new(err)))?;
        let answer = tokio::time::timeout(timeout, receiver).await;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&request_uuid);
        match answer {
            Ok(Ok(bytes)) => Ok(bytes),
            _ => Err(Error::Timeout {
                method: "(raw)".to_owned(),
                agent_id: agent_id.to_owned(),
                timeout,
            }),
        }
    }

    /// A fresh director-style reply subject for `agent_id`.
    pub fn reply_subject(&self, agent_id: &str) -> String {
        subjects::director_reply(
            &self.director_uuid,
            agent_id,
            &uuid::Uuid::new_v4().to_string(),
        )
    }

    /// The underlying NATS client, for publishing or subscribing beside the RPCs.
    pub fn nats(&self) -> &async_nats::Client {
        &self.client
    }
}

impl Drop for NatsClient {
    fn drop(&mut self) {
        self.router.abort();
    }
}

impl Transport for NatsClient {
    async fn send(
        &self,
        agent_id: &str,
        method: &str,
        arguments: Vec<Value>,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let reply_to = self.reply_subject(agent_id);
        let request = Request {
            protocol: PROTOCOL_VERSION,
            method: method.to_owned(),
            arguments,
            reply_to: reply_to.clone(),
        };
        let bytes = self
            .send_raw(agent_id, &reply_to, request.to_json(), timeout)
            .await
            .map_err(|err| match err {
                Error::Timeout {
                    agent_id, timeout, ..
                } => Error::Timeout {
                    method: method.to_owned(),
                    agent_id,
                    timeout,
                },
                Error::Send {
                    agent_id, source, ..
                } => Error::Send {
                    method: method.to_owned(),
                    agent_id,
                    source,
                },
                other => other,
            })?;
        Response::parse(&bytes).map_err(|message| Error::BadResponse {
            method: method.to_owned(),
            agent_id: agent_id.to_owned(),
            message,
        })
    }
}
