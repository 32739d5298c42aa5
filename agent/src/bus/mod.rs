//! The message bus: how requests reach the agent and responses leave it (`mbus/*`). The transport
//! follows the mbus URL's scheme: `nats://` is a NATS client with mutual TLS ([`nats`]); `https://`
//! is the HTTPS server `bosh create-env` talks to ([`https`]). Before NATS (re)connections the
//! [`firewall`] hook lets only root reach the NATS servers.

pub mod firewall;
pub mod https;
pub mod nats;

/// Why the bus stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings give no mbus URL.
    #[error("the settings give no mbus URL")]
    NoUrl,
    /// The mbus URL's scheme is neither `nats` nor `https`.
    #[error("unsupported mbus URL scheme in {0} (expected nats:// or https://)")]
    Scheme(String),
    /// The HTTPS mbus cannot listen on its address.
    #[error("listening on {address}")]
    Listen {
        /// `host:port` from the mbus URL.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An mbus URL does not parse.
    #[error("invalid mbus URL {url}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS material in the settings is unusable.
    #[error("mbus TLS")]
    Tls(#[from] crate::tls::Error),
    /// Connecting or subscribing failed.
    #[error("connecting to NATS")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
}
