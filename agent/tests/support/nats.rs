//! A real `nats-server` for the message-bus tests, set up like the BOSH director's NATS
//! (cloudfoundry/bosh:jobs/nats/templates/nats.cfg.erb, reference/director-cpi.md §3): TLS on
//! every connection and client certificates verified against the client CA, on a random loopback
//! port, with its config, certificates and log in a temp dir. It follows
//! `nats-io/nats.rs:nats-server/src/lib.rs`, but waits for the server's own "ready" log line
//! instead of sleeping. Also the director's side: an async-nats client with the director's
//! certificate (reference/bosh-agent.md §2.7 describes the agent's).

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::pki::{CertKey, Pki};
use crate::support::wait_until;

/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried by [`NatsServer::start`]: another process may take the free port first.
const START_ATTEMPTS: usize = 5;
/// The TCP connect timeout of the director's client, so a refused TLS handshake cannot hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `nats-server` on 127.0.0.1, killed on `Drop`.
#[derive(Debug)]
pub struct NatsServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// Why a `nats-server` process did not come up.
#[derive(Debug)]
enum StartFailure {
    PortTaken,
    Exited(ExitStatus),
    TimedOut,
}

impl NatsServer {
    /// Starts `nats-server` with the server certificate of `pki`, verifying clients against its
    /// client CA, and returns once it accepts connections. Panics, with the server's log, if it
    /// does not; panics naming the Debian package if the binary is missing.
    pub fn start(pki: &Pki) -> NatsServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.pem"), &pki.server.certificate).unwrap();
        std::fs::write(dir.path().join("server-key.pem"), &pki.server.private_key).unwrap();
        std::fs::write(dir.path().join("client-ca.pem"), &pki.client_ca).unwrap();
        let mut server = NatsServer {
            dir,
            port: 0,
            child: None,
        };
        let mut attempt = 1;
        loop {
            server.port = free_port();
            std::fs::write(server.config_path(), server.config()).unwrap();
            match server.spawn() {
                Ok(()) => return server,
                Err(StartFailure::PortTaken) if attempt < START_ATTEMPTS => attempt += 1,
                Err(failure) => panic!(
                    "nats-server did not start on port {}: {failure:?}\n{}",
                    server.port,
                    server.log()
                ),
            }
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The loopback port, the same across [`NatsServer::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server; clients see their connection drop. Does nothing if it is stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: the server is stopped either way.
            let _ = child.kill();
            child.wait().unwrap();
        }
    }

    /// Stops the server and starts it again on the same port, so clients can reconnect to the
    /// URL they have. Panics, with the log, if it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn() {
            panic!(
                "nats-server did not restart on port {}: {failure:?}\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// The server's log (with `debug: true`) and anything it printed, for assertion messages.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let output = std::fs::read_to_string(self.output_path()).unwrap_or_default();
        format!("--- nats-server log ---\n{log}--- nats-server output ---\n{output}")
    }

    fn spawn(&mut self) -> Result<(), StartFailure> {
        // The log is appended to across restarts: look only at what this process writes.
        let log_start = std::fs::metadata(self.log_path()).map_or(0, |meta| meta.len() as usize);
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.output_path())
            .unwrap();
        let binary = nats_server_binary();
        let mut child = Command::new(&binary)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|err| panic!("running {}: {err}", binary.display()));
        // nats-server logs this line once its listener is bound, so from then on the port accepts
        // connections; it names our port, so a server another test started on the same port
        // cannot pass for ours. A TCP probe would add nothing but a "TLS handshake error" to
        // the log.
        let listening = format!(
            "Listening for client connections on 127.0.0.1:{}",
            self.port
        );
        let mut exited = None;
        let is_ready = wait_until(START_TIMEOUT, || {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                return true;
            }
            let log = self.log_since(log_start);
            log.contains(&listening) && log.contains("Server is ready")
        });
        match (exited, is_ready) {
            (Some(status), _) => {
                if self.log_since(log_start).contains("address already in use") {
                    Err(StartFailure::PortTaken)
                } else {
                    Err(StartFailure::Exited(status))
                }
            }
            (None, true) => {
                self.child = Some(child);
                Ok(())
            }
            (None, false) => {
                let _ = child.kill();
                child.wait().unwrap();
                Err(StartFailure::TimedOut)
            }
        }
    }

    /// The config, in the shape of the BOSH director's `nats.cfg` minus its users and
    /// permissions: `verify` rather than `verify_and_map`, so any certificate from the client CA
    /// is let in.
    fn config(&self) -> String {
        let dir = self.dir.path();
        format!(
            r#"# Written by agent/tests/support/nats.rs.
host: "127.0.0.1"
port: {port}
log_file: "{log}"
debug: true
tls {{
  cert_file: "{cert}"
  key_file: "{key}"
  ca_file: "{client_ca}"
  verify: true
  timeout: 5
}}
"#,
            port = self.port,
            log = self.log_path().display(),
            cert = dir.join("server.pem").display(),
            key = dir.join("server-key.pem").display(),
            client_ca = dir.join("client-ca.pem").display(),
        )
    }

    /// The log from byte `start` on.
    fn log_since(&self, start: usize) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(log.get(start..).unwrap_or_default()).into_owned()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.out")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A rustls client config (ring provider) that trusts `server_ca` (PEM) and, if given, presents
/// `client` as its certificate.
pub fn client_tls_config(server_ca: &str, client: Option<&CertKey>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match client {
        Some(client) => {
            let chain = CertificateDer::pem_slice_iter(client.certificate.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(client.private_key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

/// Connects to `url` over TLS with `tls`. Fails, rather than retrying, if the first connection
/// is refused.
pub async fn connect_with_tls(
    url: &str,
    tls: rustls::ClientConfig,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .require_tls(true)
        .tls_client_config(tls)
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await
}

/// Connects to `url` as the director: its client certificate, trusting the server CA.
pub async fn connect_director(
    url: &str,
    pki: &Pki,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    connect_with_tls(url, client_tls_config(&pki.server_ca, Some(&pki.director))).await
}

/// Returns once the server has processed everything `client` sent before, subscriptions above
/// all, so another connection's message cannot overtake them. `Client::flush` is not enough:
/// it only writes the buffer to the socket. The server handles one connection's operations in
/// order, so a message `client` sends itself through a fresh inbox is such a round trip.
pub async fn round_trip(client: &async_nats::Client) {
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await.unwrap();
    client.publish(inbox, "round trip".into()).await.unwrap();
    tokio::time::timeout(CONNECT_TIMEOUT, echo.next())
        .await
        .expect("no round trip through the server in time")
        .expect("the round-trip subscription ended");
    echo.unsubscribe().await.unwrap();
}

/// The TLS alert the server refused a connection with, if that is why `err` happened: nats-server
/// rejects a missing or unknown client certificate with an alert, which async-nats reports as
/// an `Io` error, not a `Tls` one.
pub fn tls_alert(err: &async_nats::ConnectError) -> Option<rustls::AlertDescription> {
    let io = std::error::Error::source(err)?.downcast_ref::<std::io::Error>()?;
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// A loopback port nothing listens on right now. It is free only until someone else binds it,
/// which is why [`NatsServer::start`] retries.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `nats-server` on `PATH`, else in `/usr/sbin`, where Debian installs it and which is not on a
/// normal user's `PATH`.
fn nats_server_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| Path::is_file(candidate))
        .unwrap_or_else(|| {
            panic!(
                "nats-server is not on PATH or in /usr/sbin: install the Debian package `nats-server` \
                 (apt-get install nats-server); scripts/main and scripts/test install it"
            )
        })
}
