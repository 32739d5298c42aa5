//! The running director: its state, CA, message bus, blobstore, CPI and template renderer, set up
//! once per command.
//!
//! The addresses agents were given must stay valid across director runs (an agent keeps the mbus
//! URL and blobstore endpoint of its `create_vm` for life), so the first run records the NATS and
//! blobstore ports and the blobstore password in the state, and later runs listen there again.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use agent::client::NatsClient;
use tokio::sync::Mutex;

use crate::blobstore::{self, BlobStore};
use crate::cpi::{self, Cpi};
use crate::deploy::report::Reporter;
use crate::deploy::{Error, Result};
use crate::nats::{self, NatsServer};
use crate::pki::Ca;
use crate::state::{DirectorState, Store};
use crate::template::Renderer;

/// The user agents give the blobstore.
pub const BLOBSTORE_USER: &str = "agent";

/// Which CPI runs VMs.
#[derive(Debug, Clone)]
pub enum CpiChoice {
    /// The local process CPI (the embedded default): VMs are `bosh-agent` processes.
    Process {
        /// The `process-cpi` executable.
        executable: PathBuf,
        /// The `bosh-agent` executable its VMs run.
        agent: PathBuf,
    },
    /// Any external CPI executable, configured by the operator (its config must point agents at
    /// this director's NATS URL, which `thin-director` prints).
    External {
        /// The executable.
        executable: PathBuf,
        /// Its arguments.
        args: Vec<std::ffi::OsString>,
    },
}

/// How the director runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where its state, CA, blobs and logs live.
    pub state_dir: PathBuf,
    /// The CPI.
    pub cpi: CpiChoice,
    /// The address NATS and the blobstore listen on (agents must reach it).
    pub listen: IpAddr,
    /// How long a new VM's agent may take to answer (`agent_wait_timeout`).
    pub agent_wait: Duration,
    /// The `ruby` that renders templates.
    pub ruby: PathBuf,
    /// The `nats-server` binary.
    pub nats_server: PathBuf,
    /// How many VMs are created or deleted at once (`max_threads`).
    pub max_threads: usize,
    /// The deadline of one CPI call.
    pub cpi_timeout: Duration,
    /// Variables added to the environment of the process CPI's agents (its `agent.env`), such as
    /// tests' `BOSH_AGENT_HEARTBEAT_SECS`; an external CPI is configured by its operator instead.
    pub agent_env: BTreeMap<String, String>,
}

impl Config {
    /// The defaults for a state dir and a CPI.
    pub fn new(state_dir: PathBuf, cpi: CpiChoice) -> Config {
        Config {
            state_dir,
            cpi,
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            agent_wait: Duration::from_secs(600),
            ruby: "/usr/bin/ruby".into(),
            nats_server: nats::DEFAULT_BINARY.into(),
            max_threads: 32,
            cpi_timeout: cpi::DEFAULT_TIMEOUT,
            agent_env: BTreeMap::new(),
        }
    }
}

/// The director, set up.
#[derive(Debug)]
pub struct Director {
    /// Its configuration.
    pub config: Config,
    /// Its durable state.
    pub state: Mutex<Store<DirectorState>>,
    /// Its CA.
    pub ca: Ca,
    /// The NATS server agents connect to.
    pub nats: Mutex<NatsServer>,
    /// The director's own connection to it.
    pub bus: NatsClient,
    /// The blobs agents fetch.
    pub blobs: BlobStore,
    /// The HTTPS server in front of them.
    pub blob_server: blobstore::Server,
    /// The CPI.
    pub cpi: Cpi,
    /// The template renderer.
    pub renderer: Renderer,
    /// Progress output.
    pub report: Reporter,
}

impl Director {
    /// Opens the state, starts NATS and the blobstore, connects to NATS and readies the CPI.
    pub async fn start(config: Config, report: Reporter) -> Result<Director> {
        let dir = &config.state_dir;
        let mut store: Store<DirectorState> = Store::open(&dir.join("state.json"))?;
        let first_run = store.get().director_uuid.is_empty();
        if first_run {
            store.update(|state| {
                state.director_uuid = uuid::Uuid::new_v4().to_string();
                state.blobstore_password = uuid::Uuid::new_v4().simple().to_string();
            })?;
        }
        let ca = Ca::load_or_create(&dir.join("ca"))?;

        let nats_config = nats::Config {
            binary: config.nats_server.clone(),
            dir: dir.join("nats"),
            host: config.listen,
            port: store.get().nats_port,
        };
        let mut nats = NatsServer::start(nats_config, &ca).await?;
        nats.allow_agents(store.get().agent_ids()).await?;

        let listener = tokio::net::TcpListener::bind(SocketAddr::new(
            config.listen,
            store.get().blobstore_port,
        ))
        .await
        .map_err(|source| Error::Listen {
            what: "the blobstore",
            source,
        })?;
        let blobs = BlobStore::open(&dir.join("blobs"))?;
        let blob_server =
            blobstore::Server::start(blobs.clone(), listener, &ca.server(config.listen)?)?;
        blob_server
            .users()
            .add(BLOBSTORE_USER, &store.get().blobstore_password);
        let (nats_port, blobstore_port) = (nats.port(), blob_server.addr().port());
        if store.get().nats_port != nats_port || store.get().blobstore_port != blobstore_port {
            store.update(|state| {
                state.nats_port = nats_port;
                state.blobstore_port = blobstore_port;
            })?;
        }

        let director_cert = ca.director()?;
        let bus = NatsClient::connect(&nats.url(), client_tls(&ca, &director_cert)?)
            .await
            .map_err(|source| Error::Bus {
                url: nats.url(),
                source,
            })?;

        let mut cpi_config = match &config.cpi {
            CpiChoice::Process { executable, agent } => {
                let cpi_dir = dir.join("process-cpi");
                let cpi_json = cpi_dir.join("cpi.json");
                std::fs::create_dir_all(&cpi_dir).map_err(|source| Error::Io {
                    path: cpi_dir.clone(),
                    source,
                })?;
                let document = serde_json::json!({
                    "base_dir": cpi_dir,
                    "agent": {
                        "binary": agent,
                        "mbus": nats.url(),
                        "ntp": [],
                        "env": config.agent_env,
                    },
                });
                std::fs::write(&cpi_json, document.to_string()).map_err(|source| Error::Io {
                    path: cpi_json.clone(),
                    source,
                })?;
                let mut cpi_config = cpi::Config::new(executable, &store.get().director_uuid);
                cpi_config.args = vec!["--config".into(), cpi_json.into()];
                cpi_config
            }
            CpiChoice::External { executable, args } => {
                let mut cpi_config = cpi::Config::new(executable, &store.get().director_uuid);
                cpi_config.args = args.clone();
                cpi_config
            }
        };
        cpi_config.timeout = config.cpi_timeout;
        cpi_config.log = Some(dir.join("cpi.log"));
        let renderer = Renderer::new(&config.ruby);
        Ok(Director {
            cpi: Cpi::new(cpi_config),
            renderer,
            ca,
            nats: Mutex::new(nats),
            bus,
            blobs,
            blob_server,
            state: Mutex::new(store),
            report,
            config,
        })
    }

    /// The `blobstore` agents are given in `env.bosh.blobstores`.
    pub async fn agent_blobstore(&self) -> serde_json::Value {
        let password = self.state.lock().await.get().blobstore_password.clone();
        self.blob_server
            .agent_settings(BLOBSTORE_USER, &password, self.ca.certificate())
    }

    /// The recorded instances of `deployment`; `None` when it does not exist.
    pub async fn instances_of(&self, deployment: &str) -> Option<Vec<crate::state::Instance>> {
        self.state
            .lock()
            .await
            .get()
            .deployments
            .get(deployment)
            .map(|d| d.instances.clone())
    }

    /// Lets `agent_id` on the bus (with every agent of the state).
    pub async fn allow_agent(&self, agent_id: &str) -> Result<()> {
        let mut agents = self.state.lock().await.get().agent_ids();
        let mut nats = self.nats.lock().await;
        agents.extend(nats.agents().iter().cloned());
        agents.insert(agent_id.to_owned());
        nats.allow_agents(agents).await?;
        Ok(())
    }

    /// Stops NATS (agents keep their processes and reconnect when a director runs again).
    pub async fn stop(self) {
        self.nats.into_inner().stop().await;
    }
}

/// The TLS configuration of a director's NATS connection with `cert` (the director's own, made by
/// [`Ca::director`]; the health monitor connects with it too).
pub fn client_tls(ca: &Ca, cert: &crate::pki::CertKey) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem_error = |err: rustls::pki_types::pem::Error| Error::Tls(err.to_string());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.certificate().as_bytes()).map_err(pem_error)?)
        .map_err(|err| Error::Tls(err.to_string()))?;
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| Error::Tls(err.to_string()))?
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(cert.certificate.as_bytes()).map_err(pem_error)?],
        PrivateKeyDer::from_pem_slice(cert.private_key.as_bytes()).map_err(pem_error)?,
    )
    .map_err(|err| Error::Tls(err.to_string()))
}
