//! Certificates for the message-bus tests, made with rcgen at test time, in the shape a BOSH
//! director deploys NATS with (reference/director-cpi.md §3.1): a server CA signs the NATS
//! server's certificate (CN `default.nats.bosh-internal`, SAN IP 127.0.0.1), and a client CA,
//! the one nats-server verifies clients against, signs the director's and the agents' client
//! certificates (CN `<agent_id>.agent.bosh-internal`, extendedKeyUsage clientAuth). Two CAs
//! rather than one, so a side that trusts the wrong one fails instead of passing by luck.
//! Everything is PEM, as `env.bosh.mbus.cert` carries it.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The NATS server's CN in a BOSH deployment; agents check it against `*.nats.bosh-internal`.
pub const SERVER_CN: &str = "default.nats.bosh-internal";
/// A server CN outside `*.nats.bosh-internal`, for the agent's CN check.
pub const WRONG_SERVER_CN: &str = "default.nats.example.com";
/// The director's client CN.
pub const DIRECTOR_CN: &str = "default.director.bosh-internal";

/// A certificate and its private key, both PEM; the field names are those of `env.bosh.mbus.cert`.
#[derive(Debug, Clone)]
pub struct CertKey {
    /// The certificate, PEM.
    pub certificate: String,
    /// Its private key, PKCS#8 PEM.
    pub private_key: String,
}

/// The message bus's certificates for one agent.
#[derive(Debug)]
pub struct Pki {
    /// The agent the `agent` certificate is for.
    pub agent_id: String,
    /// The CA of the server certificate, PEM: what the agent (`env.bosh.mbus.cert.ca`) and the
    /// director trust.
    pub server_ca: String,
    /// The NATS server's certificate and key.
    pub server: CertKey,
    /// The CA nats-server verifies client certificates against, PEM.
    pub client_ca: String,
    /// The director's client certificate (CN `default.director.bosh-internal`).
    pub director: CertKey,
    /// The agent's client certificate (CN `<agent_id>.agent.bosh-internal`).
    pub agent: CertKey,
    client_issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// Certificates for `agent_id`, with the server CN a BOSH deployment uses.
    pub fn new(agent_id: &str) -> Pki {
        Pki::with_server_cn(agent_id, SERVER_CN)
    }

    /// Like [`Pki::new`], but the server certificate's CN is [`WRONG_SERVER_CN`] (the SAN is
    /// still 127.0.0.1, so only a CN check can refuse it).
    pub fn with_wrong_server_cn(agent_id: &str) -> Pki {
        Pki::with_server_cn(agent_id, WRONG_SERVER_CN)
    }

    /// Certificates for `agent_id`, the server certificate with CN `server_cn`.
    pub fn with_server_cn(agent_id: &str, server_cn: &str) -> Pki {
        let server_issuer = ca("NATS server CA");
        let mut server = leaf(server_cn, ExtendedKeyUsagePurpose::ServerAuth);
        server.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
        let server = sign(&server, &server_issuer);
        let client_issuer = ca("NATS client CA");
        let director = sign(
            &leaf(DIRECTOR_CN, ExtendedKeyUsagePurpose::ClientAuth),
            &client_issuer,
        );
        let agent = sign(
            &leaf(&agent_cn(agent_id), ExtendedKeyUsagePurpose::ClientAuth),
            &client_issuer,
        );
        Pki {
            agent_id: agent_id.to_owned(),
            server_ca: server_issuer.pem(),
            server,
            client_ca: client_issuer.pem(),
            director,
            agent,
            client_issuer,
        }
    }

    /// Another client certificate from the client CA, for example an agent's bootstrap
    /// certificate (`<agent_id>.bootstrap.agent.bosh-internal`) or a second agent's.
    pub fn client_cert(&self, common_name: &str) -> CertKey {
        sign(
            &leaf(common_name, ExtendedKeyUsagePurpose::ClientAuth),
            &self.client_issuer,
        )
    }
}

/// The CN the director gives an agent's permanent certificate.
pub fn agent_cn(agent_id: &str) -> String {
    format!("{agent_id}.agent.bosh-internal")
}

fn ca(common_name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(common_name: &str, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params
}

fn sign(params: &CertificateParams, issuer: &CertifiedIssuer<'static, KeyPair>) -> CertKey {
    let key = KeyPair::generate().unwrap();
    CertKey {
        certificate: params.signed_by(&key, issuer).unwrap().pem(),
        private_key: key.serialize_pem(),
    }
}

/// The subject BOSH gives its NATS certificates; nats-server's `verify_and_map` turns it into the
/// user name `C=USA, O=Cloud Foundry, CN=<cn>`.
fn distinguished_name(common_name: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(DnType::CountryName, "USA");
    name.push(DnType::OrganizationName, "Cloud Foundry");
    name.push(DnType::CommonName, common_name);
    name
}
