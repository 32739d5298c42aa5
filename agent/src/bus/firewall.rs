//! The NATS firewall hook (`mbus/nats_handler.go` `updateFirewallForNATS`, §6.9 of the reference):
//! before the first connection and on every disconnection (before the reconnection attempts), each
//! `nats://` mbus URL's host is resolved afresh and the platform lets only root reach the resolved
//! addresses ([`platform::Platform::update_nats_firewall`]). URLs of other schemes and hosts that
//! do not resolve are skipped; when nothing resolves the rules are left as they are. Failures are
//! only logged: the firewall never keeps the agent from connecting.

use std::net::SocketAddr;
use std::sync::Arc;

/// NATS's port when the URL has none.
pub const DEFAULT_NATS_PORT: u16 = 4222;

/// The `(host, port)` of each `nats://` URL in `urls` (others skipped, with a log line).
pub fn nats_hosts(urls: &[String]) -> Vec<(String, u16)> {
    let mut hosts = Vec::new();
    for raw in urls {
        match url::Url::parse(raw) {
            Ok(parsed) if parsed.scheme() == "nats" => match parsed.host_str() {
                Some(host) if !host.is_empty() => hosts.push((
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                    parsed.port().unwrap_or(DEFAULT_NATS_PORT),
                )),
                _ => {
                    tracing::info!(url = %settings::redact::redact_url(raw), "no host, skipped by the NATS firewall")
                }
            },
            _ => {
                tracing::info!(url = %settings::redact::redact_url(raw), "not a nats:// URL, skipped by the NATS firewall")
            }
        }
    }
    hosts
}

/// What rewrites the rules for resolved addresses (the platform's, or a test's).
pub type Apply = Arc<dyn Fn(&[SocketAddr]) -> Result<(), platform::bootstrap::Error> + Send + Sync>;

/// The platform's NATS firewall for the mbus URLs.
#[derive(Clone)]
pub struct NatsFirewall {
    apply: Apply,
    urls: Vec<String>,
}

impl std::fmt::Debug for NatsFirewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsFirewall")
            .field("urls", &self.urls.len())
            .finish_non_exhaustive()
    }
}

impl NatsFirewall {
    /// The firewall for `urls` on `platform`.
    pub fn new(platform: Arc<dyn platform::Platform>, urls: Vec<String>) -> NatsFirewall {
        NatsFirewall::with_apply(
            Arc::new(move |targets| platform.update_nats_firewall(targets)),
            urls,
        )
    }

    /// The firewall for `urls` applied by `apply`.
    pub fn with_apply(apply: Apply, urls: Vec<String>) -> NatsFirewall {
        NatsFirewall { apply, urls }
    }

    /// Resolves the NATS hosts and rewrites the rules; failures are logged.
    pub async fn update(&self) {
        let mut targets: Vec<SocketAddr> = Vec::new();
        for (host, port) in nats_hosts(&self.urls) {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(found) => {
                    for address in found {
                        if !targets.contains(&address) {
                            targets.push(address);
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(host, error = %err, "DNS resolution failed for the NATS firewall")
                }
            }
        }
        if targets.is_empty() {
            tracing::warn!("no NATS address resolved, the NATS firewall is left as it is");
            return;
        }
        let apply = self.apply.clone();
        let applied = targets.clone();
        match tokio::task::spawn_blocking(move || apply(&applied)).await {
            Ok(Ok(())) => tracing::info!(?targets, "NATS firewall updated"),
            Ok(Err(err)) => tracing::warn!(
                error = %settings::source::error_chain(&err),
                "updating the NATS firewall"
            ),
            Err(err) => tracing::warn!(error = %err, "updating the NATS firewall"),
        }
    }

    /// A hook for the bus's disconnection event: starts [`NatsFirewall::update`] in the background.
    pub fn hook(&self) -> Arc<dyn Fn() + Send + Sync> {
        let firewall = self.clone();
        Arc::new(move || {
            let firewall = firewall.clone();
            tokio::spawn(async move { firewall.update().await });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_give_their_hosts_and_ports_and_others_are_skipped() {
        let urls: Vec<String> = [
            "nats://user:secret@10.0.2.100:4222",
            "nats://nats.example.com",
            "nats://[fd00::1]:4333",
            "https://user:pass@10.0.0.1:6868",
            "not a url",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            nats_hosts(&urls),
            vec![
                ("10.0.2.100".to_owned(), 4222),
                ("nats.example.com".to_owned(), 4222),
                ("fd00::1".to_owned(), 4333),
            ]
        );
    }

    #[tokio::test]
    async fn resolved_addresses_are_applied_and_nothing_resolved_changes_nothing() {
        let calls: Arc<std::sync::Mutex<Vec<Vec<SocketAddr>>>> = Arc::default();
        let recorded = calls.clone();
        let apply: Apply = Arc::new(move |targets| {
            recorded.lock().unwrap().push(targets.to_vec());
            Ok(())
        });
        let firewall = NatsFirewall::with_apply(
            apply.clone(),
            vec![
                "nats://u:p@127.0.0.1:4222".to_owned(),
                "nats://127.0.0.1:4222".to_owned(),
            ],
        );
        firewall.update().await;
        assert_eq!(
            *calls.lock().unwrap(),
            vec![vec!["127.0.0.1:4222".parse::<SocketAddr>().unwrap()]]
        );
        NatsFirewall::with_apply(apply, vec!["https://127.0.0.1:6868".to_owned()])
            .update()
            .await;
        assert_eq!(
            calls.lock().unwrap().len(),
            1,
            "nothing to resolve, nothing applied"
        );
    }
}
