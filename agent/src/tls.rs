//! TLS for the message bus (`mbus/nats_handler.go`, `mbus/https_handler.go`): rustls with the ring
//! provider, from the PEM strings of the settings' `mbus.cert`.
//!
//! The NATS client always uses mutual TLS: it presents the agent's certificate and trusts only the CA
//! from the settings. Beyond the usual chain and host-name checks, the server certificate's common name
//! must match `*.nats.bosh-internal` (`^[a-zA-Z0-9*\-]*.nats.bosh-internal$` in Go), so a certificate the
//! same CA issued to something else cannot pose as the NATS server.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The domain a NATS server's common name must end with.
pub const NATS_SERVER_DOMAIN: &str = ".nats.bosh-internal";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CA is empty.
    #[error("the mbus CA certificate is empty")]
    NoCa,
    /// The client certificate or key is empty.
    #[error("the mbus certificate or private key is empty")]
    NoIdentity,
    /// PEM that does not hold what it should.
    #[error("parsing the mbus {what}")]
    Pem {
        /// Which PEM (`CA`, `certificate`, `private key`).
        what: &'static str,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the material.
    #[error("building the TLS configuration")]
    Rustls(#[from] rustls::Error),
    /// The CA held no certificate rustls accepts.
    #[error("building the certificate verifier")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// The ring crypto provider, which every TLS configuration of the workspace uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM bundle.
pub fn certificates(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem { what, source })?;
    if certificates.is_empty() {
        return Err(Error::Pem {
            what,
            source: rustls::pki_types::pem::Error::NoItemsFound,
        });
    }
    Ok(certificates)
}

/// Parses a private key.
pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| Error::Pem {
        what: "private key",
        source,
    })
}

/// A root store holding the CAs of a PEM bundle.
pub fn root_store(ca_pem: &str) -> Result<rustls::RootCertStore, Error> {
    if ca_pem.trim().is_empty() {
        return Err(Error::NoCa);
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(ca_pem, "CA")? {
        roots.add(certificate)?;
    }
    Ok(roots)
}

/// The agent's NATS client configuration: trust `ca_pem`, present `certificate_pem` + `key_pem`, and
/// require the server's common name to be `*.nats.bosh-internal`.
pub fn nats_client_config(
    ca_pem: &str,
    certificate_pem: &str,
    key_pem: &str,
) -> Result<rustls::ClientConfig, Error> {
    if certificate_pem.trim().is_empty() || key_pem.trim().is_empty() {
        return Err(Error::NoIdentity);
    }
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(
        Arc::new(root_store(ca_pem)?),
        provider.clone(),
    )
    .build()?;
    let verifier = Arc::new(NatsServerVerifier { inner: webpki });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            certificates(certificate_pem, "certificate")?,
            private_key(key_pem)?,
        )?;
    Ok(config)
}

/// A client configuration that trusts `ca_pem` and optionally presents an identity (directors, tests,
/// the HTTPS agent client).
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(ca_pem)?);
    Ok(match identity {
        Some((certificate_pem, key_pem)) => builder.with_client_auth_cert(
            certificates(certificate_pem, "certificate")?,
            private_key(key_pem)?,
        )?,
        None => builder.with_no_client_auth(),
    })
}

/// The common name of a DER certificate's subject, if it has one.
pub fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let name = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(name)
}

/// Whether a common name is a NATS server's: `<letters, digits, * or ->` + `.nats.bosh-internal`.
pub fn is_nats_server_name(common_name: &str) -> bool {
    common_name
        .strip_suffix(NATS_SERVER_DOMAIN)
        .is_some_and(|host| {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '-')
        })
}

/// The Go agent's text for a server CN that does not match `*.nats.bosh-internal`.
const WRONG_SERVER_NAME: &str = "server Certificate CommonName does not match *.nats.bosh-internal";

/// The server CN does not match; its `Debug` is its text too, because rustls shows that one.
#[derive(thiserror::Error)]
#[error("{WRONG_SERVER_NAME}")]
struct WrongServerName;

impl fmt::Debug for WrongServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(WRONG_SERVER_NAME)
    }
}

/// Chain and host-name verification by webpki, then the common-name check.
struct NatsServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl fmt::Debug for NatsServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NatsServerVerifier")
    }
}

impl ServerCertVerifier for NatsServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        match common_name(end_entity) {
            Some(name) if is_nats_server_name(&name) => Ok(verified),
            name => {
                // The connection error that reaches the bus says only "IO error"; say why here, once
                // per connection attempt (attempts are seconds apart).
                tracing::warn!(common_name = ?name, "{WRONG_SERVER_NAME}");
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(WrongServerName))),
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_server_names_follow_the_go_pattern() {
        assert!(is_nats_server_name("default.nats.bosh-internal"));
        assert!(is_nats_server_name("*.nats.bosh-internal"));
        assert!(is_nats_server_name("nats-0.nats.bosh-internal"));
        assert!(!is_nats_server_name("default.nats.example.com"));
        assert!(!is_nats_server_name("a.b.nats.bosh-internal"));
        assert!(!is_nats_server_name("agent-1.agent.bosh-internal"));
    }

    #[test]
    fn empty_material_is_refused_clearly() {
        assert!(matches!(root_store(""), Err(Error::NoCa)));
        assert!(matches!(
            nats_client_config("x", "", ""),
            Err(Error::NoIdentity)
        ));
        let err = root_store("not pem").unwrap_err();
        assert_eq!(err.to_string(), "parsing the mbus CA");
    }
}
