//! The director's own certificate authority for the message bus (`reference/director-cpi.md` §3.1).
//!
//! One CA, made on first use and kept in the state directory (`ca.pem`, `ca-key.pem`, 0600), signs:
//! the NATS server's certificate (CN `default.nats.bosh-internal`, the agents' CN check, plus the
//! addresses it listens on as SANs), the director's client certificate (CN
//! `default.director.bosh-internal`) and one client certificate per agent (CN
//! `<agent_id>.agent.bosh-internal`, the permanent identity BOSH gives agents), handed to the VM in
//! `env.bosh.mbus.cert` at `create_vm`. Subjects are BOSH's `C=USA, O=Cloud Foundry, CN=<cn>`; the
//! CN is also a DNS SAN, which is what nats-server's `verify_and_map` maps to a user.
//!
//! A director given an existing NATS (`--director-config`) uses that NATS's client CA instead
//! ([`Ca::from_pem`]): it signs the agents' certificates only.
//!
//! Unlike the director, keys are ECDSA P-256 rather than RSA 3072 (ring cannot generate RSA keys;
//! rustls and Go's crypto/tls both accept ECDSA). Leaf certificates are valid for two years, as the
//! director's.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The NATS server's CN; agents check it against `*.nats.bosh-internal`.
pub const NATS_SERVER_CN: &str = "default.nats.bosh-internal";

/// The director's client CN.
pub const DIRECTOR_CN: &str = "default.director.bosh-internal";

/// The CN of the blobstore's server certificate.
pub const BLOBSTORE_CN: &str = "blobstore.director.bosh-internal";

/// How long leaf certificates are valid.
pub const LEAF_VALIDITY: time::Duration = time::Duration::days(2 * 365);

/// The CN of an agent's certificate.
pub fn agent_cn(agent_id: &str) -> String {
    format!("{agent_id}.agent.bosh-internal")
}

/// A certificate and its key, PEM, named as `env.bosh.mbus.cert` names them.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKey {
    /// The certificate.
    pub certificate: String,
    /// Its private key (PKCS#8).
    pub private_key: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("certificate", &self.certificate)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Why the CA could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the CA could not be read or written.
    #[error("{} of the director's CA", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Making or signing a certificate failed.
    #[error("making a certificate for {cn}")]
    Certificate {
        /// The subject's CN.
        cn: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A CA given as PEM (the director config) does not parse; `what` says which part.
    #[error("{what} does not parse")]
    Pem {
        /// `certificate` or `private_key`.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// The stored key does not parse.
    #[error("{} is not a usable private key", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
}

/// The director's CA.
pub struct Ca {
    certificate: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// The CA kept in `dir`, made there first if it is not.
    pub fn load_or_create(dir: &Path) -> Result<Ca, Error> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca-key.pem");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        if cert_path.exists() && key_path.exists() {
            let certificate = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|source| Error::Key {
                path: key_path.clone(),
                source,
            })?;
            // Signing needs the CA's name and key only: the same parameters rebuild its issuer.
            return Ok(Ca {
                certificate,
                issuer: Issuer::new(ca_params(), key),
            });
        }
        let key = KeyPair::generate().map_err(certificate_error("thin-director CA"))?;
        let certificate = ca_params()
            .self_signed(&key)
            .map_err(certificate_error("thin-director CA"))?
            .pem();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_private(&key_path, &key.serialize_pem()).map_err(io(&key_path))?;
        write_private(&cert_path, &certificate).map_err(io(&cert_path))?;
        Ok(Ca {
            certificate,
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// A CA given as its certificate and private key (PEM), such as an existing NATS's client CA;
    /// it signs with the subject and key identifier of `certificate`.
    pub fn from_pem(certificate: &str, private_key: &str) -> Result<Ca, Error> {
        let key = KeyPair::from_pem(private_key).map_err(|source| Error::Pem {
            what: "private_key",
            source,
        })?;
        let issuer = Issuer::from_ca_cert_pem(certificate, key).map_err(|source| Error::Pem {
            what: "certificate",
            source,
        })?;
        Ok(Ca {
            certificate: certificate.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM: what agents (`env.bosh.mbus.cert.ca`), the director and
    /// nats-server trust.
    pub fn certificate(&self) -> &str {
        &self.certificate
    }

    /// The NATS server's certificate for the addresses it listens on.
    pub fn nats_server(&self, addresses: &[IpAddr]) -> Result<CertKey, Error> {
        let mut sans = vec![dns_san(NATS_SERVER_CN)?];
        sans.extend(addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        self.leaf(NATS_SERVER_CN, ExtendedKeyUsagePurpose::ServerAuth, sans)
    }

    /// A server certificate for another of the director's HTTPS services (the blobstore) at
    /// `addresses`.
    pub fn server(&self, addresses: &[IpAddr]) -> Result<CertKey, Error> {
        self.leaf(
            BLOBSTORE_CN,
            ExtendedKeyUsagePurpose::ServerAuth,
            addresses.iter().map(|ip| SanType::IpAddress(*ip)).collect(),
        )
    }

    /// The director's client certificate.
    pub fn director(&self) -> Result<CertKey, Error> {
        self.client(DIRECTOR_CN)
    }

    /// The client certificate of agent `agent_id`.
    pub fn agent(&self, agent_id: &str) -> Result<CertKey, Error> {
        self.client(&agent_cn(agent_id))
    }

    fn client(&self, cn: &str) -> Result<CertKey, Error> {
        let san = dns_san(cn)?;
        self.leaf(cn, ExtendedKeyUsagePurpose::ClientAuth, vec![san])
    }

    fn leaf(
        &self,
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
        sans: Vec<SanType>,
    ) -> Result<CertKey, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = sans;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + LEAF_VALIDITY;
        let key = KeyPair::generate().map_err(certificate_error(cn))?;
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(certificate_error(cn))?;
        Ok(CertKey {
            certificate: certificate.pem(),
            private_key: key.serialize_pem(),
        })
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name("thin-director CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// BOSH's subject: nats-server shows it as `C=USA, O=Cloud Foundry, CN=<cn>`.
fn distinguished_name(cn: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(DnType::CountryName, "USA");
    name.push(DnType::OrganizationName, "Cloud Foundry");
    name.push(DnType::CommonName, cn);
    name
}

fn dns_san(name: &str) -> Result<SanType, Error> {
    Ok(SanType::DnsName(
        name.try_into().map_err(certificate_error(name))?,
    ))
}

fn certificate_error(cn: &str) -> impl FnOnce(rcgen::Error) -> Error {
    let cn = cn.to_owned();
    move |source| Error::Certificate { cn, source }
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_ca_is_kept_and_signs_the_same_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.certificate(), again.certificate());
        // What the reloaded CA signs verifies against the stored certificate.
        let agent = again.agent("agent-1").unwrap();
        let roots = {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pem_der(ca.certificate())).unwrap();
            std::sync::Arc::new(roots)
        };
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots,
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(
                &pem_der(&agent.certificate),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
    }

    #[test]
    fn certificates_carry_boshs_names() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let server = ca.nats_server(&["127.0.0.1".parse().unwrap()]).unwrap();
        let der = pem_der(&server.certificate);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "C=USA, O=Cloud Foundry, CN=default.nats.bosh-internal"
        );
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 2);
        let agent = ca.agent("5f0e").unwrap();
        let der = pem_der(&agent.certificate);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "C=USA, O=Cloud Foundry, CN=5f0e.agent.bosh-internal"
        );
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, 730, "two years and the hour of clock skew allowed");
        assert!(!format!("{agent:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_ca_given_as_pem_issues_agent_certificates_under_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let made = Ca::load_or_create(dir.path()).unwrap();
        let key = std::fs::read_to_string(dir.path().join("ca-key.pem")).unwrap();
        let given = Ca::from_pem(made.certificate(), &key).unwrap();
        let agent = given.agent("a-1").unwrap();
        let der = pem_der(&agent.certificate);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.issuer().to_string(),
            "C=USA, O=Cloud Foundry, CN=thin-director CA"
        );
        let ca_der = pem_der(made.certificate());
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();

        let err = Ca::from_pem(made.certificate(), "not a key").unwrap_err();
        assert_eq!(err.to_string(), "private_key does not parse");
        let err = Ca::from_pem("not a certificate", &key).unwrap_err();
        assert_eq!(err.to_string(), "certificate does not parse");
    }

    fn pem_der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}
