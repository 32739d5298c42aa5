//! The message bus the director and its agents use: the director's own nats-server
//! ([`crate::nats`], certificates from its CA, agents let on as they come) or an existing NATS
//! named in the director config (its URL, the CA of its server certificate, its client CA issuing
//! the agents' certificates and the director's client certificate; who may publish and subscribe
//! to what is that server's configuration, so nothing is reloaded).

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::deploy::{Error, Result};
use crate::director_config::ExternalNats;
use crate::nats::{self, NatsServer};
use crate::pki::{Ca, CertKey};

/// The NATS the director and agents connect to.
#[derive(Debug)]
pub struct Mbus {
    url: String,
    server_ca: String,
    issuer: Ca,
    director: CertKey,
    server: Option<Mutex<NatsServer>>,
}

impl Mbus {
    /// Starts the director's own nats-server with certificates from `ca`, letting `agents` on.
    pub async fn own(config: nats::Config, ca: Ca, agents: BTreeSet<String>) -> Result<Mbus> {
        let mut server = NatsServer::start(config, &ca).await?;
        server.allow_agents(agents).await?;
        Ok(Mbus {
            url: server.url(),
            server_ca: ca.certificate().to_owned(),
            director: ca.director()?,
            issuer: ca,
            server: Some(Mutex::new(server)),
        })
    }

    /// The existing NATS of the director config.
    pub fn external(nats: &ExternalNats) -> Result<Mbus> {
        Ok(Mbus {
            url: nats.url.clone(),
            server_ca: nats.ca.clone(),
            issuer: Ca::from_pem(&nats.client_ca.certificate, &nats.client_ca.private_key)?,
            director: nats.director.clone(),
            server: None,
        })
    }

    /// The URL agents get as `mbus` and the director connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA (PEM) agents trust the server with (`env.bosh.mbus.cert.ca`).
    pub fn server_ca(&self) -> &str {
        &self.server_ca
    }

    /// A new client certificate for agent `agent_id` (`<agent_id>.agent.bosh-internal`).
    pub fn agent_certificate(&self, agent_id: &str) -> Result<CertKey> {
        Ok(self.issuer.agent(agent_id)?)
    }

    /// The TLS configuration of the director's connections (its client certificate, trusting
    /// the server's CA).
    pub fn client_tls(&self) -> Result<rustls::ClientConfig> {
        client_tls(&self.server_ca, &self.director)
    }

    /// The port of the director's own nats-server; `None` for an existing NATS.
    pub async fn own_port(&self) -> Option<u16> {
        match &self.server {
            Some(server) => Some(server.lock().await.port()),
            None => None,
        }
    }

    /// Lets `agents` on, with those already allowed, reloading the director's own server when
    /// the set grows; nothing for an existing NATS.
    pub async fn allow_agents(&self, agents: BTreeSet<String>) -> Result<()> {
        let Some(server) = &self.server else {
            return Ok(());
        };
        let mut server = server.lock().await;
        let mut all = agents;
        all.extend(server.agents().iter().cloned());
        server.allow_agents(all).await?;
        Ok(())
    }

    /// Stops the director's own nats-server (agents keep their processes and reconnect when a
    /// director runs again).
    pub async fn stop(self) {
        if let Some(server) = self.server {
            server.into_inner().stop().await;
        }
    }
}

/// The TLS configuration of a NATS connection with client certificate `cert`, trusting the CA
/// certificates of `ca_pem`.
pub fn client_tls(ca_pem: &str, cert: &CertKey) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem_error = |err: rustls::pki_types::pem::Error| Error::Tls(err.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(pem_error)?)
            .map_err(|err| Error::Tls(err.to_string()))?;
    }
    let chain = CertificateDer::pem_slice_iter(cert.certificate.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(err.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            chain,
            PrivateKeyDer::from_pem_slice(cert.private_key.as_bytes()).map_err(pem_error)?,
        )
        .map_err(|err| Error::Tls(err.to_string()))
}
