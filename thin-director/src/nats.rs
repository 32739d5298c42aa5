//! The message bus: a real `nats-server` the director starts and manages, with mutual TLS and the
//! per-agent subject permissions of a BOSH director's NATS (`reference/director-cpi.md` §3).
//!
//! nats-server runs with `verify_and_map`: a client's certificate subject is its user name, in the
//! form `C=USA, O=Cloud Foundry, CN=<cn>`. The director may publish to `agent.*` and
//! `hm.director.alert` and subscribe to `director.>` and `hm.agent.>` (it is its own health
//! monitor); each agent may publish only its own heartbeats, alerts and shutdown notices and
//! replies that carry its id (`director.*.<id>.*`), and subscribe only to `agent.<id>`. A
//! certificate from our CA whose agent is not listed is refused.
//!
//! The users live in `auth.conf`, included by `nats-server.conf`; [`NatsServer::allow_agents`]
//! rewrites it when the set of agents changes and has the server reload it (SIGHUP), waiting until
//! the server says it did, so a VM created next can connect at once (bosh-nats-sync polls every
//! 10 s instead).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::{self, Daemon};
use crate::pki::{self, Ca};

/// Where Debian's `nats-server` package puts the binary.
pub const DEFAULT_BINARY: &str = "/usr/sbin/nats-server";

/// How long the server may take to start or to reload.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest message (BOSH's `max_payload`, 1 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `nats-server` binary.
    pub binary: PathBuf,
    /// Where its config, certificates and log go.
    pub dir: PathBuf,
    /// The address it listens on.
    pub host: IpAddr,
    /// Other addresses agents reach it at (a CPI's forwards into its VMs), in its certificate too.
    pub advertised: Vec<IpAddr>,
    /// The port; 0 for any free one.
    pub port: u16,
}

/// Why the server could not be run or reconfigured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate could not be made.
    #[error("making the NATS certificates")]
    Pki(#[from] pki::Error),
    /// A file could not be written.
    #[error("writing {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process could not be started or signalled.
    #[error("running nats-server")]
    Exec(#[from] exec::Error),
    /// An agent id that cannot be put in a subject.
    #[error("agent id {0:?} may only have letters, digits, '-' and '_'")]
    InvalidAgentId(String),
    /// It exited or did not become ready; the end of its log says why.
    #[error("nats-server did not {what}: {log_tail}")]
    NotReady {
        /// `start` or `reload its configuration`.
        what: &'static str,
        /// The last lines of its log.
        log_tail: String,
    },
}

/// A running nats-server.
#[derive(Debug)]
pub struct NatsServer {
    config: Config,
    daemon: Daemon,
    port: u16,
    agents: BTreeSet<String>,
}

impl NatsServer {
    /// Writes the server's certificates (from `ca`) and config under `config.dir`, starts it with no
    /// agent allowed yet, and returns once it accepts connections.
    pub async fn start(config: Config, ca: &Ca) -> Result<NatsServer, Error> {
        let dir = &config.dir;
        create_dir(dir)?;
        let mut addresses = vec![config.host];
        addresses.extend(&config.advertised);
        let server = ca.nats_server(&addresses)?;
        write(&dir.join("ca.pem"), ca.certificate())?;
        write(&dir.join("server.pem"), &server.certificate)?;
        write(&dir.join("server-key.pem"), &server.private_key)?;
        write(&dir.join("auth.conf"), &render_users(&BTreeSet::new()))?;
        write(&dir.join("nats-server.conf"), &render_config(&config))?;
        let log = dir.join("nats-server.log");
        let log_start = file_len(&log);
        let args: Vec<OsString> = vec!["-c".into(), dir.join("nats-server.conf").into()];
        let mut daemon = Daemon::start(&config.binary, &args, &dir.join("nats-server.out"))?;
        let listening = format!("Listening for client connections on {}:", config.host);
        let port = wait_for_log(&mut daemon, &log, log_start, "start", |text| {
            if !text.contains("Server is ready") {
                return None;
            }
            let rest = &text[text.find(&listening)? + listening.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u16>().ok()
        })
        .await?;
        tracing::info!(port, pid = daemon.pid(), "nats-server started");
        Ok(NatsServer {
            config,
            daemon,
            port,
            agents: BTreeSet::new(),
        })
    }

    /// `nats://<host>:<port>`, the mbus URL agents get.
    pub fn url(&self) -> String {
        match self.config.host {
            IpAddr::V4(ip) => format!("nats://{ip}:{}", self.port),
            IpAddr::V6(ip) => format!("nats://[{ip}]:{}", self.port),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The agents currently allowed.
    pub fn agents(&self) -> &BTreeSet<String> {
        &self.agents
    }

    /// Allows exactly `agents` from now on: rewrites the users and reloads the server when they
    /// changed, returning once it has reloaded. Returns whether anything changed.
    pub async fn allow_agents(&mut self, agents: BTreeSet<String>) -> Result<bool, Error> {
        if agents == self.agents {
            return Ok(false);
        }
        if let Some(bad) = agents.iter().find(|id| !is_valid_agent_id(id)) {
            return Err(Error::InvalidAgentId(bad.clone()));
        }
        write(&self.config.dir.join("auth.conf"), &render_users(&agents))?;
        let log = self.config.dir.join("nats-server.log");
        let log_start = file_len(&log);
        self.daemon.signal(nix::sys::signal::Signal::SIGHUP)?;
        wait_for_log(
            &mut self.daemon,
            &log,
            log_start,
            "reload its configuration",
            |text| text.contains("Reloaded server configuration").then_some(()),
        )
        .await?;
        tracing::debug!(agents = agents.len(), "nats-server reloaded its users");
        self.agents = agents;
        Ok(true)
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.daemon.stop(Duration::from_secs(10)).await;
    }
}

/// The user name nats-server's `verify_and_map` gives the certificate of `cn`.
pub fn user(cn: &str) -> String {
    format!("C=USA, O=Cloud Foundry, CN={cn}")
}

/// `nats-server.conf`: BOSH's numbers (`ping_interval` 5 s, 2 outstanding, 1 MiB payloads, 30 s TLS
/// handshake), mutual TLS with `verify_and_map`, the users from `auth.conf`.
pub fn render_config(config: &Config) -> String {
    let dir = &config.dir;
    let port = if config.port == 0 {
        "-1".to_owned()
    } else {
        config.port.to_string()
    };
    format!(
        r#"# Written by the thin director; rewritten at every start.
host: "{host}"
port: {port}
log_file: "{log}"
ping_interval: "5s"
ping_max: 2
max_payload: {MAX_PAYLOAD}
tls {{
  cert_file: "{dir}/server.pem"
  key_file: "{dir}/server-key.pem"
  ca_file: "{dir}/ca.pem"
  verify_and_map: true
  timeout: 30
}}
include "auth.conf"
"#,
        host = config.host,
        log = dir.join("nats-server.log").display(),
        dir = dir.display(),
    )
}

/// `auth.conf`: the director's user and one per agent.
pub fn render_users(agents: &BTreeSet<String>) -> String {
    let mut text = String::from(
        "# Written by the thin director as agents come and go.\nauthorization {\n  users = [\n",
    );
    let _ = writeln!(
        text,
        "    {{user: \"{}\", permissions: {{publish: [\"agent.*\", \"hm.director.alert\"], subscribe: [\"director.>\", \"hm.agent.>\"]}}}}",
        user(pki::DIRECTOR_CN)
    );
    for id in agents {
        let _ = writeln!(
            text,
            "    {{user: \"{user}\", permissions: {{publish: [\"hm.agent.heartbeat.{id}\", \"hm.agent.alert.{id}\", \"hm.agent.shutdown.{id}\", \"director.*.{id}.*\"], subscribe: [\"agent.{id}\"]}}}}",
            user = user(&pki::agent_cn(id)),
        );
    }
    text.push_str("  ]\n}\n");
    text
}

/// Polls the log from `start` until `found` sees what it waits for, the server exits, or
/// [`READY_TIMEOUT`] passes.
async fn wait_for_log<T>(
    daemon: &mut Daemon,
    log: &Path,
    start: u64,
    what: &'static str,
    found: impl Fn(&str) -> Option<T>,
) -> Result<T, Error> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let text = read_from(log, start);
        if let Some(value) = found(&text) {
            return Ok(value);
        }
        let exited = daemon.try_status()?.is_some();
        if exited || tokio::time::Instant::now() >= deadline {
            let mut log_tail: Vec<&str> = text.lines().rev().take(5).collect();
            log_tail.reverse();
            return Err(Error::NotReady {
                what,
                log_tail: log_tail.join(" | "),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Agent ids become parts of subjects and of the config file: only characters that are safe in
/// both may appear. BOSH's are UUIDs.
pub fn is_valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn read_from(path: &Path, start: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).into_owned()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `text` to `path` through a temporary file and a rename, readable by its owner only.
fn write(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::StreamExt as _;

    use super::*;
    use crate::pki::CertKey;

    async fn start(dir: &Path) -> (Ca, NatsServer) {
        let ca = Ca::load_or_create(&dir.join("ca")).unwrap();
        let config = Config {
            binary: DEFAULT_BINARY.into(),
            dir: dir.join("nats"),
            host: "127.0.0.1".parse().unwrap(),
            advertised: vec!["10.0.2.100".parse().unwrap()],
            port: 0,
        };
        let server = NatsServer::start(config, &ca).await.unwrap();
        (ca, server)
    }

    #[tokio::test]
    async fn the_server_certificate_names_the_listen_and_advertised_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let (_ca, _server) = start(dir.path()).await;
        let pem = std::fs::read(dir.path().join("nats/server.pem")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|name| name.to_string())
            .collect();
        // x509-parser shows IP addresses in hex: 127.0.0.1 and 10.0.2.100.
        assert_eq!(
            names,
            [
                "DNSName(default.nats.bosh-internal)",
                "IPAddress(7f:00:00:01)",
                "IPAddress(0a:00:02:64)"
            ]
        );
    }

    async fn connect(
        server: &NatsServer,
        ca: &Ca,
        client: &CertKey,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.certificate().as_bytes()).unwrap())
            .unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(client.certificate.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(client.private_key.as_bytes()).unwrap(),
        )
        .unwrap();
        async_nats::ConnectOptions::new()
            .require_tls(true)
            .tls_client_config(tls)
            .connect(server.url())
            .await
    }

    async fn next(subscriber: &mut async_nats::Subscriber) -> (String, String) {
        let message = tokio::time::timeout(READY_TIMEOUT, subscriber.next())
            .await
            .expect("a message within the timeout")
            .expect("an open subscription");
        (
            message.subject.to_string(),
            String::from_utf8(message.payload.to_vec()).unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_listed_agents_connect_and_only_under_their_own_subjects() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, mut server) = start(dir.path()).await;
        let director = connect(&server, &ca, &ca.director().unwrap())
            .await
            .unwrap();
        let agent_cert = ca.agent("a-1").unwrap();
        assert!(
            connect(&server, &ca, &agent_cert).await.is_err(),
            "an agent not yet allowed connected"
        );
        assert!(
            server
                .allow_agents(BTreeSet::from(["a-1".to_owned()]))
                .await
                .unwrap()
        );
        let agent = connect(&server, &ca, &agent_cert).await.unwrap();

        let mut replies = director.subscribe("director.d.>").await.unwrap();
        let mut inbox = agent.subscribe("agent.a-1").await.unwrap();
        // Another agent's inbox: the server refuses the subscription.
        let mut snooped = agent.subscribe("agent.a-2").await.unwrap();
        director.flush().await.unwrap();
        agent.flush().await.unwrap();

        director
            .publish("agent.a-2", "secret".into())
            .await
            .unwrap();
        director.publish("agent.a-1", "ping".into()).await.unwrap();
        director.flush().await.unwrap();
        assert_eq!(next(&mut inbox).await, ("agent.a-1".into(), "ping".into()));

        // A reply claiming another agent's id is dropped; the agent's own comes through, and
        // (NATS keeps one publisher's order) first.
        agent
            .publish("director.d.a-2.r1", "spoof".into())
            .await
            .unwrap();
        agent
            .publish("director.d.a-1.r2", "pong".into())
            .await
            .unwrap();
        agent.flush().await.unwrap();
        assert_eq!(
            next(&mut replies).await,
            ("director.d.a-1.r2".into(), "pong".into())
        );
        director.publish("agent.a-1", "last".into()).await.unwrap();
        director.flush().await.unwrap();
        assert_eq!(next(&mut inbox).await, ("agent.a-1".into(), "last".into()));
        let snooped = tokio::time::timeout(Duration::from_millis(200), snooped.next()).await;
        assert!(
            !matches!(snooped, Ok(Some(_))),
            "an agent read another's inbox"
        );

        // Removing the agent is a reload too; an unchanged set is not.
        assert!(
            !server
                .allow_agents(BTreeSet::from(["a-1".to_owned()]))
                .await
                .unwrap()
        );
        let err = server
            .allow_agents(BTreeSet::from(["a.*".to_owned()]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent id \"a.*\" may only have letters, digits, '-' and '_'"
        );
        server.stop().await;
    }

    #[test]
    fn agents_may_publish_and_subscribe_only_under_their_own_id() {
        let users = render_users(&BTreeSet::from(["a-1".to_owned()]));
        assert!(users.contains(
            r#"{user: "C=USA, O=Cloud Foundry, CN=a-1.agent.bosh-internal", permissions: {publish: ["hm.agent.heartbeat.a-1", "hm.agent.alert.a-1", "hm.agent.shutdown.a-1", "director.*.a-1.*"], subscribe: ["agent.a-1"]}}"#
        ), "{users}");
        assert!(
            users.contains(r#"user: "C=USA, O=Cloud Foundry, CN=default.director.bosh-internal""#)
        );
    }

    #[test]
    fn agent_ids_that_could_widen_a_subject_are_not_valid() {
        for id in ["5f0e-77", "agent_1", "A1"] {
            assert!(is_valid_agent_id(id), "{id}");
        }
        for id in ["", "a.b", "a*", ">", "a\"b", "a b", "a\n"] {
            assert!(!is_valid_agent_id(id), "{id:?}");
        }
    }
}
