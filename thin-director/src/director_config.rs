//! The director config file (`--director-config`, YAML or JSON): an existing NATS and an external
//! DAV blobstore the director uses instead of running its own. Either part may be left out; what
//! is left out the director runs itself.
//!
//! The shape follows the BOSH director job's properties (`nats.tls.*`, and the `blobstore` agents
//! are given in `env.bosh.blobstores`), PEM inline:
//!
//! ```yaml
//! nats:
//!   url: nats://10.0.0.5:4222        # given to agents as their mbus
//!   tls:
//!     ca: <PEM>                      # signed the server's certificate; agents trust it
//!     client_ca:                     # issues each agent's <agent_id>.agent.bosh-internal
//!       certificate: <PEM>
//!       private_key: <PEM>
//!     director:                      # the director's own client certificate
//!       certificate: <PEM>
//!       private_key: <PEM>
//! blobstore:
//!   provider: dav
//!   options:
//!     endpoint: https://10.0.0.6:25250
//!     user: director
//!     password: <secret>
//!     tls: {cert: {ca: <PEM>}}       # optional: else the system's trust store
//! ```
//!
//! Everything is checked when the file is read, before the director touches anything: unknown
//! fields, missing ones, PEM that does not parse and a key that does not match its certificate
//! are errors naming the field (`nats.tls.director.private_key`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::pki::{Ca, CertKey};

/// The services a director config names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorConfig {
    /// An existing NATS; `None`: the director runs its own nats-server.
    pub nats: Option<ExternalNats>,
    /// An external DAV blobstore; `None`: the director serves its own.
    pub blobstore: Option<ExternalBlobstore>,
}

/// An existing NATS server with mutual TLS. Who may publish and subscribe to what is that
/// server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalNats {
    /// `nats://host:port`, what the director connects to and agents get as `mbus`.
    pub url: String,
    /// The CA (PEM) that signed the server's certificate.
    pub ca: String,
    /// The CA that issues agents' client certificates.
    pub client_ca: CertKey,
    /// The director's client certificate.
    pub director: CertKey,
}

/// An external DAV blobstore (davcli's protocol).
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalBlobstore {
    /// `https://host:port[/path]` (or `http://`).
    pub endpoint: String,
    /// The basic-auth user (the director and agents both use it).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The CA (PEM) of the server's certificate; `None`: the system's trust store.
    pub ca: Option<String>,
}

impl std::fmt::Debug for ExternalBlobstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalBlobstore")
            .field("endpoint", &self.endpoint)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("ca", &self.ca)
            .finish()
    }
}

impl ExternalBlobstore {
    /// The `blobstore` agents are given in `env.bosh.blobstores`.
    pub fn agent_settings(&self) -> serde_json::Value {
        let mut options = serde_json::json!({
            "endpoint": self.endpoint,
            "user": self.user,
            "password": self.password,
        });
        if let Some(ca) = &self.ca {
            options["tls"] = serde_json::json!({"cert": {"ca": ca}});
        }
        serde_json::json!({"provider": "dav", "options": options})
    }
}

/// Why a director config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading the director config {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A field is missing, unknown or wrong.
    #[error("the director config {}: {field}: {problem}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field's path (`nats.tls.ca`); `.` for the whole document.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl DirectorConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<DirectorConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        DirectorConfig::parse(&text).map_err(|(field, problem)| Error::Invalid {
            path: path.to_owned(),
            field,
            problem,
        })
    }

    /// Checks a document (YAML or JSON); an error is the field and its problem.
    pub fn parse(text: &str) -> Result<DirectorConfig, (String, String)> {
        // Through a value, so that errors are the field's path and problem without YAML's own
        // location text.
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|err| invalid(".", err.to_string()))?;
        let document: Document = serde_path_to_error::deserialize(value).map_err(|err| {
            let field = err.path().to_string();
            (field, err.into_inner().to_string())
        })?;
        let nats = document.nats.map(check_nats).transpose()?;
        let blobstore = document.blobstore.map(check_blobstore).transpose()?;
        Ok(DirectorConfig { nats, blobstore })
    }
}

type Invalid = (String, String);

fn invalid(field: &str, problem: impl Into<String>) -> Invalid {
    (field.to_owned(), problem.into())
}

fn check_nats(nats: NatsDocument) -> Result<ExternalNats, Invalid> {
    let rest = nats.url.strip_prefix("nats://").ok_or_else(|| {
        invalid(
            "nats.url",
            format!("{:?} is not nats://host:port", nats.url),
        )
    })?;
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    let valid = host_port.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(['/', '@']) && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !valid {
        return Err(invalid(
            "nats.url",
            format!("{:?} is not nats://host:port", nats.url),
        ));
    }
    certificates("nats.tls.ca", &nats.tls.ca)?;
    let client_ca = cert_key("nats.tls.client_ca", nats.tls.client_ca)?;
    Ca::from_pem(&client_ca.certificate, &client_ca.private_key).map_err(|err| {
        invalid(
            "nats.tls.client_ca",
            format!("cannot issue certificates: {err}"),
        )
    })?;
    let director = cert_key("nats.tls.director", nats.tls.director)?;
    Ok(ExternalNats {
        url: host_port_url(&nats.url),
        ca: nats.tls.ca,
        client_ca,
        director,
    })
}

/// The URL without a trailing slash.
fn host_port_url(url: &str) -> String {
    url.strip_suffix('/').unwrap_or(url).to_owned()
}

fn check_blobstore(blobstore: BlobstoreDocument) -> Result<ExternalBlobstore, Invalid> {
    if blobstore.provider != "dav" {
        return Err(invalid(
            "blobstore.provider",
            format!("only 'dav' is supported, not {:?}", blobstore.provider),
        ));
    }
    let options = blobstore.options;
    let endpoint = options.endpoint.trim_end_matches('/').to_owned();
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"));
    if !rest.is_some_and(|rest| !rest.is_empty() && !rest.contains('@')) {
        return Err(invalid(
            "blobstore.options.endpoint",
            format!(
                "{:?} is not https://host[:port][/path] (without credentials)",
                options.endpoint
            ),
        ));
    }
    for (field, value) in [
        ("blobstore.options.user", &options.user),
        ("blobstore.options.password", &options.password),
    ] {
        if value.is_empty() {
            return Err(invalid(field, "is empty"));
        }
    }
    let ca = options.tls.map(|tls| tls.cert.ca);
    if let Some(ca) = &ca {
        certificates("blobstore.options.tls.cert.ca", ca)?;
    }
    Ok(ExternalBlobstore {
        endpoint,
        user: options.user,
        password: options.password,
        ca,
    })
}

/// The certificates of `pem` (at least one).
fn certificates(field: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, Invalid> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(field, format!("is not PEM: {err}")))?;
    if certs.is_empty() {
        return Err(invalid(field, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// A certificate and its key at `field`, checked to belong together.
fn cert_key(field: &str, document: CertKeyDocument) -> Result<CertKey, Invalid> {
    let cert_field = format!("{field}.certificate");
    let key_field = format!("{field}.private_key");
    let certs = certificates(&cert_field, &document.certificate)?;
    let key = PrivateKeyDer::from_pem_slice(document.private_key.as_bytes())
        .map_err(|err| invalid(&key_field, format!("is not a PEM private key: {err}")))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|err| invalid(&key_field, format!("is not a usable key: {err}")))?;
    rustls::sign::CertifiedKey::new(certs, Arc::clone(&signing_key))
        .keys_match()
        .map_err(|_| invalid(&key_field, format!("does not match {cert_field}")))?;
    Ok(CertKey {
        certificate: document.certificate,
        private_key: document.private_key,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    nats: Option<NatsDocument>,
    #[serde(default)]
    blobstore: Option<BlobstoreDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsDocument {
    url: String,
    tls: NatsTlsDocument,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsTlsDocument {
    ca: String,
    client_ca: CertKeyDocument,
    director: CertKeyDocument,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertKeyDocument {
    certificate: String,
    private_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobstoreDocument {
    provider: String,
    options: DavOptionsDocument,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DavOptionsDocument {
    endpoint: String,
    user: String,
    password: String,
    #[serde(default)]
    tls: Option<DavTlsDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DavTlsDocument {
    cert: DavCertDocument,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DavCertDocument {
    ca: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pems {
        server_ca: String,
        client_ca: CertKey,
        director: CertKey,
        other: CertKey,
    }

    fn pems() -> Pems {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::load_or_create(&dir.path().join("server")).unwrap();
        let client_ca = Ca::load_or_create(&dir.path().join("client")).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        Pems {
            server_ca: server_ca.certificate().to_owned(),
            client_ca: CertKey {
                certificate: read("client/ca.pem"),
                private_key: read("client/ca-key.pem"),
            },
            director: client_ca.director().unwrap(),
            other: client_ca.agent("x").unwrap(),
        }
    }

    fn document(pems: &Pems) -> serde_json::Value {
        serde_json::json!({
            "nats": {
                "url": "nats://127.0.0.1:4222",
                "tls": {
                    "ca": pems.server_ca,
                    "client_ca": {
                        "certificate": pems.client_ca.certificate,
                        "private_key": pems.client_ca.private_key,
                    },
                    "director": {
                        "certificate": pems.director.certificate,
                        "private_key": pems.director.private_key,
                    },
                },
            },
            "blobstore": {
                "provider": "dav",
                "options": {
                    "endpoint": "https://127.0.0.1:25250/",
                    "user": "director",
                    "password": "secret",
                    "tls": {"cert": {"ca": pems.server_ca}},
                },
            },
        })
    }

    fn error_of(document: &serde_json::Value) -> (String, String) {
        DirectorConfig::parse(&document.to_string()).unwrap_err()
    }

    #[test]
    fn a_full_config_names_both_services_and_an_empty_one_none() {
        let pems = pems();
        let config = DirectorConfig::parse(&document(&pems).to_string()).unwrap();
        let nats = config.nats.unwrap();
        assert_eq!(nats.url, "nats://127.0.0.1:4222");
        assert_eq!(nats.director, pems.director);
        let blobstore = config.blobstore.unwrap();
        assert_eq!(blobstore.endpoint, "https://127.0.0.1:25250");
        assert_eq!(
            blobstore.agent_settings(),
            serde_json::json!({"provider": "dav", "options": {
                "endpoint": "https://127.0.0.1:25250", "user": "director", "password": "secret",
                "tls": {"cert": {"ca": pems.server_ca}},
            }})
        );
        assert!(!format!("{blobstore:?}").contains("secret"));
        assert_eq!(
            DirectorConfig::parse("{}").unwrap(),
            DirectorConfig::default()
        );
        // YAML, as operators write it.
        let yaml = "blobstore:\n  provider: dav\n  options:\n    endpoint: http://127.0.0.1:8080\n    user: u\n    password: p\n";
        let config = DirectorConfig::parse(yaml).unwrap();
        assert_eq!(config.nats, None);
        assert_eq!(config.blobstore.unwrap().ca, None);
    }

    /// A change to a good document.
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;

    #[test]
    fn errors_name_the_field() {
        let pems = pems();
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                Box::new(|d| {
                    d["nats"]["tls"]["client_ca"]
                        .as_object_mut()
                        .unwrap()
                        .remove("private_key");
                }),
                "nats.tls.client_ca",
                "missing field `private_key`",
            ),
            (
                Box::new(|d| d["nats"]["tls"]["ca"] = "garbage".into()),
                "nats.tls.ca",
                "holds no PEM certificate",
            ),
            (
                Box::new(|d| {
                    d["nats"]["tls"]["director"]["certificate"] =
                        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into();
                }),
                "nats.tls.director.certificate",
                "is not PEM",
            ),
            (
                Box::new(|d| d["nats"]["tls"]["director"]["private_key"] = "nope".into()),
                "nats.tls.director.private_key",
                "is not a PEM private key",
            ),
            (
                Box::new(|d| d["nats"]["url"] = "http://127.0.0.1:4222".into()),
                "nats.url",
                "is not nats://host:port",
            ),
            (
                Box::new(|d| d["nats"]["url"] = "nats://127.0.0.1".into()),
                "nats.url",
                "is not nats://host:port",
            ),
            (
                Box::new(|d| d["nats"]["port"] = 4222.into()),
                "nats.port",
                "unknown field `port`",
            ),
            (
                Box::new(|d| d["blobstore"]["provider"] = "s3".into()),
                "blobstore.provider",
                "only 'dav' is supported",
            ),
            (
                Box::new(|d| {
                    d["blobstore"]["options"]["endpoint"] = "https://u:p@127.0.0.1".into();
                }),
                "blobstore.options.endpoint",
                "without credentials",
            ),
            (
                Box::new(|d| d["blobstore"]["options"]["password"] = "".into()),
                "blobstore.options.password",
                "is empty",
            ),
            (
                Box::new(|d| d["blobstore"]["options"]["tls"]["cert"]["ca"] = "x".into()),
                "blobstore.options.tls.cert.ca",
                "holds no PEM certificate",
            ),
        ];
        for (edit, field, problem) in cases {
            let mut doc = document(&pems);
            edit(&mut doc);
            let (found_field, found_problem) = error_of(&doc);
            assert_eq!(found_field, field, "{found_problem}");
            assert!(found_problem.contains(problem), "{field}: {found_problem}");
        }
    }

    #[test]
    fn a_key_that_is_not_its_certificates_is_named() {
        let pems = pems();
        let mut doc = document(&pems);
        doc["nats"]["tls"]["director"]["private_key"] = pems.other.private_key.clone().into();
        assert_eq!(
            error_of(&doc),
            (
                "nats.tls.director.private_key".to_owned(),
                "does not match nats.tls.director.certificate".to_owned()
            )
        );
        let mut doc = document(&pems);
        doc["nats"]["tls"]["client_ca"]["private_key"] = pems.other.private_key.clone().into();
        assert_eq!(
            error_of(&doc),
            (
                "nats.tls.client_ca.private_key".to_owned(),
                "does not match nats.tls.client_ca.certificate".to_owned()
            )
        );
    }

    #[test]
    fn a_file_error_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("director.yml");
        std::fs::write(&path, "nats:\n  url: nats://127.0.0.1:4222\n").unwrap();
        let err = DirectorConfig::load(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the director config {}: nats: missing field `tls`",
                path.display()
            )
        );
        let err = DirectorConfig::load(&dir.path().join("missing.yml")).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
    }
}
