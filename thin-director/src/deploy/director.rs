//! The running director: its state, message bus ([`Mbus`]), blobstore ([`Blobs`]), CPI and template
//! renderer, set up once per command. The bus and the blobstore are its own (a nats-server it
//! starts, an HTTPS blobstore it serves, both with certificates from its CA) unless the director
//! config ([`DirectorConfig`]) names an existing NATS or an external DAV blobstore.
//!
//! The addresses agents were given must stay valid across director runs (an agent keeps the mbus
//! URL and blobstore endpoint of its `create_vm` for life), so the first run records the NATS and
//! blobstore ports and the blobstore password in the state, and later runs listen there again; a
//! director config must likewise be given to every command of a state it was used for.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use agent::client::NatsClient;
use tokio::sync::Mutex;

use crate::blobstore::{self, BlobStore};
use crate::cpi::{self, Cpi};
use crate::deploy::blobs::Blobs;
use crate::deploy::mbus::Mbus;
use crate::deploy::report::Reporter;
use crate::deploy::{Error, Result};
use crate::director_config::DirectorConfig;
use crate::nats;
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
    /// The address its own NATS and blobstore listen on (agents must reach it).
    pub listen: IpAddr,
    /// Other addresses agents reach its own NATS and blobstore at, such as the guest addresses a
    /// QEMU CPI forwards to `listen`: added to their certificates (agents check them).
    pub advertised: Vec<IpAddr>,
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
    /// The existing NATS and external blobstore to use instead of its own (the director config;
    /// by default none: it runs both itself).
    pub services: DirectorConfig,
}

impl Config {
    /// The defaults for a state dir and a CPI.
    pub fn new(state_dir: PathBuf, cpi: CpiChoice) -> Config {
        Config {
            state_dir,
            cpi,
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertised: Vec::new(),
            agent_wait: Duration::from_secs(600),
            ruby: "/usr/bin/ruby".into(),
            nats_server: nats::DEFAULT_BINARY.into(),
            max_threads: 32,
            cpi_timeout: cpi::DEFAULT_TIMEOUT,
            agent_env: BTreeMap::new(),
            services: DirectorConfig::default(),
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
    /// The NATS agents connect to: its own or an existing one.
    pub mbus: Mbus,
    /// The director's own connection to it.
    pub bus: NatsClient,
    /// Where blobs for agents go: its own blobstore or an external DAV server.
    pub blobs: Blobs,
    /// The CPI.
    pub cpi: Cpi,
    /// The template renderer.
    pub renderer: Renderer,
    /// Progress output.
    pub report: Reporter,
}

impl Director {
    /// Opens the state, starts NATS and the blobstore (or uses those of the director config),
    /// connects to NATS and readies the CPI.
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

        check_services(&mut store, &config.services)?;

        let mbus = match &config.services.nats {
            Some(external) => Mbus::external(external)?,
            None => {
                let nats_config = nats::Config {
                    binary: config.nats_server.clone(),
                    dir: dir.join("nats"),
                    host: config.listen,
                    advertised: config.advertised.clone(),
                    port: store.get().nats_port,
                };
                let ca = Ca::load_or_create(&dir.join("ca"))?;
                Mbus::own(nats_config, ca, store.get().agent_ids()).await?
            }
        };

        let blobs = match &config.services.blobstore {
            Some(external) => Blobs::external(external, &dir.join("downloads"))?,
            None => {
                let listener = tokio::net::TcpListener::bind(SocketAddr::new(
                    config.listen,
                    store.get().blobstore_port,
                ))
                .await
                .map_err(|source| Error::Listen {
                    what: "the blobstore",
                    source,
                })?;
                let ca = Ca::load_or_create(&dir.join("ca"))?;
                let store_dir = BlobStore::open(&dir.join("blobs"))?;
                let server = blobstore::Server::start(
                    store_dir.clone(),
                    listener,
                    &ca.server(&[&[config.listen][..], &config.advertised].concat())?,
                )?;
                let password = store.get().blobstore_password.clone();
                Blobs::own(
                    store_dir,
                    server,
                    BLOBSTORE_USER,
                    &password,
                    ca.certificate(),
                )
            }
        };
        let nats_port = mbus.own_port().await.unwrap_or(store.get().nats_port);
        let blobstore_port = blobs
            .own_server()
            .map_or(store.get().blobstore_port, |addr| addr.port());
        if store.get().nats_port != nats_port || store.get().blobstore_port != blobstore_port {
            store.update(|state| {
                state.nats_port = nats_port;
                state.blobstore_port = blobstore_port;
            })?;
        }

        let bus = NatsClient::connect(mbus.url(), mbus.client_tls()?)
            .await
            .map_err(|source| Error::Bus {
                url: mbus.url().to_owned(),
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
                        "mbus": mbus.url(),
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
            mbus,
            bus,
            blobs,
            state: Mutex::new(store),
            report,
            config,
        })
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

    /// Lets `agent_id` on the bus (with every agent of the state); nothing to do on an existing
    /// NATS, whose operator configures who may connect.
    pub async fn allow_agent(&self, agent_id: &str) -> Result<()> {
        let mut agents = self.state.lock().await.get().agent_ids();
        agents.insert(agent_id.to_owned());
        self.mbus.allow_agents(agents).await
    }

    /// Stops its own NATS (agents keep their processes and reconnect when a director runs again).
    pub async fn stop(self) {
        self.mbus.stop().await;
    }
}

/// Records which NATS and blobstore the agents of `store` are given; once there are agents, a
/// director config naming other ones (or none where there was one) is an error, since agents keep
/// theirs for life.
fn check_services(store: &mut Store<DirectorState>, services: &DirectorConfig) -> Result<()> {
    let now = (
        services.nats.as_ref().map(|nats| nats.url.clone()),
        services
            .blobstore
            .as_ref()
            .map(|blobstore| blobstore.endpoint.clone()),
    );
    let state = store.get();
    let given = (
        state.external_nats_url.clone(),
        state.external_blobstore_endpoint.clone(),
    );
    if now == given {
        return Ok(());
    }
    if !state.agent_ids().is_empty() {
        return Err(Error::ServicesChanged {
            given: describe_services(&given),
            now: describe_services(&now),
        });
    }
    store.update(|state| {
        (state.external_nats_url, state.external_blobstore_endpoint) = now;
    })?;
    Ok(())
}

fn describe_services((nats, blobstore): &(Option<String>, Option<String>)) -> String {
    let nats = nats
        .as_ref()
        .map_or("the director's own NATS".to_owned(), |url| {
            format!("the NATS at {url}")
        });
    let blobstore = blobstore
        .as_ref()
        .map_or("the director's own blobstore".to_owned(), |endpoint| {
            format!("the blobstore at {endpoint}")
        });
    format!("{nats} and {blobstore}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::director_config::ExternalBlobstore;
    use crate::state::{Deployment, Instance, Vm};

    #[test]
    fn the_services_may_change_until_agents_were_given_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store: Store<DirectorState> = Store::open(&dir.path().join("state.json")).unwrap();
        let external = DirectorConfig {
            nats: None,
            blobstore: Some(ExternalBlobstore {
                endpoint: "https://127.0.0.1:1".into(),
                user: "u".into(),
                password: "p".into(),
                ca: None,
            }),
        };
        check_services(&mut store, &external).unwrap();
        assert_eq!(
            store.get().external_blobstore_endpoint.as_deref(),
            Some("https://127.0.0.1:1")
        );
        check_services(&mut store, &DirectorConfig::default()).unwrap();
        assert_eq!(store.get().external_blobstore_endpoint, None);

        store
            .update(|state| {
                let instance = Instance {
                    vm: Some(Vm {
                        agent_id: "agent-1".into(),
                        ..Vm::default()
                    }),
                    ..Instance::default()
                };
                state.deployments.insert(
                    "d".into(),
                    Deployment {
                        instances: vec![instance],
                        ..Deployment::default()
                    },
                );
            })
            .unwrap();
        let err = check_services(&mut store, &external).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the agents of this state were given the director's own NATS and the director's own blobstore, but this director would use the director's own NATS and the blobstore at https://127.0.0.1:1: give it the director config they were deployed with"
        );
        assert_eq!(store.get().external_blobstore_endpoint, None);
        check_services(&mut store, &DirectorConfig::default()).unwrap();
    }
}
