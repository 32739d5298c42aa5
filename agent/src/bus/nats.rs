//! The NATS transport (`mbus/nats_handler.go`): mutual TLS always, every mbus URL for failover,
//! reconnects forever with a back-off of 2 s per failed attempt capped at 10 s, requests on
//! `agent.<agent_id>`, responses on each request's `reply_to`, capped at 1 MiB.
//!
//! Requests are accepted in arrival order and answered concurrently: each response is awaited and
//! published on a task of its own (owned by a `JoinSet`, at most [`MAX_IN_FLIGHT`] at once), so a
//! slow action never holds up the next `ping`. Heartbeats go out right after the first successful
//! connection (the Go agent loses that one) and every 30 s after.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::bus::Error;
use crate::dispatch::Dispatcher;
use crate::protocol::{limit, subjects};

/// How many responses may be pending at once before the bus stops reading requests.
pub const MAX_IN_FLIGHT: usize = 1024;

/// A connected NATS bus.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    connected: Arc<Notify>,
}

/// The reconnect back-off of the Go agent, 2 s per failed attempt capped at 10 s. async-nats counts the
/// first try of a (re)connection as attempt 1; it goes at once.
pub fn reconnect_delay(attempts: usize) -> Duration {
    let failed = attempts.saturating_sub(1) as u64;
    Duration::from_secs(2 * failed).min(Duration::from_secs(10))
}

impl NatsBus {
    /// Connects to every URL in `urls` with the settings' certificates. With `retry_on_initial_connect`
    /// the connection is made in the background: the bus is usable at once and `connected` fires on each
    /// successful connection.
    ///
    /// `on_disconnect` runs on every disconnection, before the reconnection attempts (the NATS
    /// firewall's hook, as Go's `DisconnectErrHandler` runs it).
    pub async fn connect(
        urls: &[String],
        tls: rustls::ClientConfig,
        agent_id: &str,
        on_disconnect: Option<Arc<dyn Fn() + Send + Sync>>,
    ) -> Result<NatsBus, Error> {
        if urls.is_empty() {
            return Err(Error::NoUrl);
        }
        let addresses = urls
            .iter()
            .map(|url| {
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|source| Error::Url {
                        url: settings::redact::redact_url(url),
                        source: Box::new(source),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let connected = Arc::new(Notify::new());
        let on_event = connected.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("bosh-agent {agent_id}"))
            .require_tls(true)
            .tls_client_config(tls)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .connection_timeout(Duration::from_secs(10))
            .event_callback(move |event| {
                let on_event = on_event.clone();
                if matches!(event, async_nats::Event::Disconnected) {
                    if let Some(hook) = &on_disconnect {
                        hook();
                    }
                }
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("connected to NATS");
                            on_event.notify_waiters();
                            on_event.notify_one();
                        }
                        async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                        other => tracing::warn!(event = %other, "NATS event"),
                    }
                }
            })
            .connect(addresses)
            .await
            .map_err(|err| Error::Connect(Box::new(err)))?;
        Ok(NatsBus { client, connected })
    }

    /// The NATS client, for publishing heartbeats and alerts.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Fires on every successful (re)connection.
    pub fn connected(&self) -> Arc<Notify> {
        self.connected.clone()
    }

    /// Serves requests for `agent_id` until the subscription ends.
    pub async fn serve(&self, agent_id: &str, dispatcher: Dispatcher) -> Result<(), Error> {
        let mut requests = self
            .client
            .subscribe(subjects::agent(agent_id))
            .await
            .map_err(|err| Error::Connect(Box::new(err)))?;
        let mut in_flight = JoinSet::new();
        while let Some(message) = requests.next().await {
            while in_flight.try_join_next().is_some() {}
            if in_flight.len() >= MAX_IN_FLIGHT {
                in_flight.join_next().await;
            }
            let accepted = dispatcher.accept(&message.payload).await;
            let client = self.client.clone();
            in_flight.spawn(async move {
                let response = accepted.response.await;
                let Some(reply_to) = accepted.reply_to else {
                    return;
                };
                let bytes = limit::encode_limited(&response, limit::MAX_NATS_RESPONSE);
                if let Err(err) = client.publish(reply_to, bytes.into()).await {
                    tracing::warn!(error = %err, "publishing a response");
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_back_off_is_two_seconds_per_failed_attempt_capped_at_ten() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_secs(2));
        assert_eq!(reconnect_delay(5), Duration::from_secs(8));
        assert_eq!(reconnect_delay(6), Duration::from_secs(10));
        assert_eq!(reconnect_delay(50), Duration::from_secs(10));
    }
}
