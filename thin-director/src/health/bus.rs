//! The health monitor's own NATS connection: the director's certificate, subscribed to
//! `hm.agent.heartbeat.*`, `hm.agent.alert.*` and `hm.agent.shutdown.*` (the HM user's subjects in
//! `reference/director-cpi.md` §3.2; the director's NATS user may subscribe to `hm.agent.>`, see
//! [`crate::nats`]). Its async-nats types stay in this file; the rest of the monitor sees
//! [`AgentMessage`]s.
//!
//! It is a connection of its own rather than the director's [`agent::client::NatsClient`], which
//! only routes replies to the director's requests.

use std::time::Duration;

use agent::protocol::subjects;
use futures_util::StreamExt as _;
use futures_util::stream::SelectAll;

use crate::deploy::director::Director;
use crate::health::message::{self, AgentMessage};
use crate::health::{Error, Result};

/// How long connecting to NATS may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The subjects the monitor subscribes to.
pub fn subjects() -> [String; 3] {
    [
        subjects::heartbeat("*"),
        subjects::alert("*"),
        subjects::shutdown("*"),
    ]
}

/// The monitor's subscriptions.
#[derive(Debug)]
pub struct Subscription {
    // Kept so the connection lives as long as the subscriptions.
    _client: async_nats::Client,
    messages: SelectAll<async_nats::Subscriber>,
}

impl Subscription {
    /// Connects to the director's NATS with the director's certificate and subscribes; returns
    /// once the server has the subscriptions, so no message published afterwards is missed.
    pub async fn connect(director: &Director) -> Result<Subscription> {
        let url = director.mbus.url().to_owned();
        let tls = director
            .mbus
            .client_tls()
            .map_err(|e| Error::Tls(Box::new(e)))?;
        let client = async_nats::ConnectOptions::new()
            .require_tls(true)
            .tls_client_config(tls)
            .connection_timeout(CONNECT_TIMEOUT)
            .event_callback(|event| async move {
                tracing::info!(%event, "the health monitor's NATS connection");
            })
            .connect(&url)
            .await
            .map_err(|source| Error::Connect {
                url: url.clone(),
                source,
            })?;
        let mut messages = SelectAll::new();
        for subject in subjects() {
            let subscriber = client
                .subscribe(subject.clone())
                .await
                .map_err(|source| Error::Subscribe { subject, source })?;
            messages.push(subscriber);
        }
        client.flush().await.map_err(Error::Flush)?;
        Ok(Subscription {
            _client: client,
            messages,
        })
    }

    /// The next message, decoded; `None` when the connection is gone for good.
    pub async fn next(&mut self) -> Option<std::result::Result<AgentMessage, message::Error>> {
        let message = self.messages.next().await?;
        Some(message::parse(message.subject.as_str(), &message.payload))
    }
}
