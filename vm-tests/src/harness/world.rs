//! A test world: the stemcell, a nats-server with mutual TLS on a random loopback port, the QEMU
//! CPI run as a real external CPI (`qemu-cpi --config`, through `thin_director::cpi`), the test
//! layer, and a director-side `agent::client::NatsClient`. VMs are created through the CPI with
//! the settings a director would give (a manual network on QEMU's user network, the agent's mbus
//! certificate in `env.bosh.mbus.cert`) and come back as [`Vm`]s with a [`Machine`] to drive.
//!
//! The guest reaches NATS at `10.0.2.100:4222`, which QEMU forwards to the server's loopback port
//! (`guestfwd`); the CPI rewrites the mbus URL it is given to that address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use thin_director::cpi::{self, Cpi, CreateVm};
use thin_director::nats::{self, NatsServer};
use thin_director::pki::Ca;

use crate::harness::machine::Machine;
use crate::harness::{layer, stemcell};

/// Where the guest finds NATS.
pub const GUEST_NATS: &str = "10.0.2.100:4222";

/// The address of [`GUEST_NATS`].
pub const GUEST_NATS_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);

/// The static IP the tests give VMs, on QEMU's user network 10.0.2.0/24.
pub const VM_IP: &str = "10.0.2.15";

/// QEMU's user-network gateway.
pub const GATEWAY: &str = "10.0.2.2";

/// QEMU's user-network DNS server.
pub const DNS: &str = "10.0.2.3";

/// How long a ping waits for its pong.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How to set a world up.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// The `qemu-cpi` binary (`env!("CARGO_BIN_EXE_qemu-cpi")` in this crate's tests).
    pub qemu_cpi: PathBuf,
    /// Where stemcells and test layers are cached.
    pub cache_dir: PathBuf,
    /// The CPI's `accel`.
    pub accel: String,
    /// Memory per VM.
    pub memory_mb: u32,
    /// vCPUs per VM.
    pub cpus: u32,
}

impl WorldConfig {
    /// The defaults for `qemu_cpi`: the stemcell cache dir, 1 GiB, 2 vCPUs, and `tcg` unless
    /// `VM_TESTS_ACCEL` says otherwise (on these machines `/dev/kvm` opens but KVM guests do not
    /// run, `reference/peers.md` §5.4, so the CPI's `auto` would pick a KVM that fails).
    pub fn new(qemu_cpi: impl Into<PathBuf>) -> WorldConfig {
        WorldConfig {
            qemu_cpi: qemu_cpi.into(),
            cache_dir: stemcell::cache_dir(),
            accel: std::env::var("VM_TESTS_ACCEL").unwrap_or_else(|_| "tcg".to_owned()),
            memory_mb: 1024,
            cpus: 2,
        }
    }
}

/// A VM created in a world.
#[derive(Debug)]
pub struct Vm {
    /// Its cid.
    pub cid: String,
    /// Its agent id.
    pub agent_id: String,
    /// The machine to drive.
    pub machine: Machine,
    /// When `create_vm` was called.
    pub created: Instant,
}

/// Times from `create_vm` to the first signs of life, as seen from the host.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootTimings {
    /// To `Linux version` on the console.
    pub kernel: Option<Duration>,
    /// To the agent's first log line on the console (`bosh-agent[<pid>]:`; the unit logs to the
    /// console too).
    pub agent: Option<Duration>,
    /// To the first pong.
    pub pong: Option<Duration>,
}

impl std::fmt::Display for BootTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |duration: Option<Duration>| {
            duration.map_or("-".to_owned(), |duration| {
                format!("{:.1} s", duration.as_secs_f64())
            })
        };
        write!(
            f,
            "VM start → kernel {}, → agent's first log line {}, → first pong {}",
            show(self.kernel),
            show(self.agent),
            show(self.pong)
        )
    }
}

/// The world.
#[derive(Debug)]
pub struct World {
    runtime: tokio::runtime::Runtime,
    ca: Ca,
    nats: Option<NatsServer>,
    cpi: Cpi,
    director: Option<agent::client::NatsClient>,
    state_dir: PathBuf,
    stemcell_cid: String,
    agents: BTreeSet<String>,
    vms: Vec<String>,
    // Last: removed after everything that uses it.
    dir: tempfile::TempDir,
}

impl World {
    /// Builds or reuses the stemcell, starts NATS, uploads the stemcell through the CPI and adds
    /// the test layer to it.
    pub fn start(config: &WorldConfig) -> Result<World> {
        let tarball = stemcell::tarball(&config.cache_dir)?;
        let dir = tempfile::Builder::new()
            .prefix("vm-tests-")
            .tempdir()
            .context("creating the world's temp dir")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting a tokio runtime")?;
        let image = dir.path().join("image");
        let manifest = thin_director::stemcell::read(&tarball, &image)
            .with_context(|| format!("reading the stemcell {}", tarball.display()))?;
        let ca = Ca::load_or_create(&dir.path().join("ca")).context("making the CA")?;
        let nats_host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Agents check the server's certificate against the address they dial (as the Go
        // agent's TLS config does): the guest dials GUEST_NATS, so the certificate names it too.
        let nats = runtime
            .block_on(NatsServer::start(
                nats::Config {
                    binary: nats::DEFAULT_BINARY.into(),
                    dir: dir.path().join("nats"),
                    host: nats_host,
                    advertised: vec![IpAddr::V4(GUEST_NATS_IP)],
                    port: 0,
                },
                &ca,
            ))
            .context("starting nats-server (Debian package nats-server)")?;
        let state_dir = dir.path().join("cpi");
        let cpi_config = dir.path().join("cpi.json");
        std::fs::write(
            &cpi_config,
            cpi_config_json(config, &state_dir, nats.port(), &nats.url()).to_string(),
        )
        .context("writing the CPI config")?;
        let mut cpi_settings = cpi::Config::new(&config.qemu_cpi, uuid::Uuid::new_v4().to_string());
        cpi_settings.args = vec!["--config".into(), cpi_config.into()];
        cpi_settings.log = Some(dir.path().join("cpi.log"));
        cpi_settings.timeout = Duration::from_secs(600);
        let cpi = Cpi::new(cpi_settings);
        let stemcell_cid = runtime
            .block_on(cpi.create_stemcell(&image, &manifest.cloud_properties))
            .context("create_stemcell")?;
        let _ = std::fs::remove_file(&image);
        let root_img = state_dir
            .join("stemcells")
            .join(&stemcell_cid)
            .join("root.img");
        layer::ensure(&root_img, Some(&config.cache_dir.join("test-layers")))?;
        let director_cert = ca.director().context("making the director's certificate")?;
        let tls = agent::tls::client_config(
            ca.certificate(),
            Some((&director_cert.certificate, &director_cert.private_key)),
        )
        .context("the director's TLS config")?;
        let director = runtime
            .block_on(agent::client::NatsClient::connect(&nats.url(), tls))
            .context("connecting the director to NATS")?;
        Ok(World {
            runtime,
            ca,
            nats: Some(nats),
            cpi,
            director: Some(director),
            state_dir,
            stemcell_cid,
            agents: BTreeSet::new(),
            vms: Vec::new(),
            dir,
        })
    }

    /// The world's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CPI's state dir.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The networks the tests give a VM: one manual network on QEMU's user network.
    pub fn networks(&self) -> Value {
        json!({"default": {
            "type": "manual", "ip": VM_IP, "netmask": "255.255.255.0", "gateway": GATEWAY,
            "dns": [DNS], "default": ["dns", "gateway"], "cloud_properties": {}
        }})
    }

    /// The environment a director gives `agent_id`: its mbus certificate, and a blobstore (a
    /// local one in the VM: these tests send no packages; `apply` needs one configured).
    pub fn env(&self, agent_id: &str) -> Result<Value> {
        let cert = self
            .ca
            .agent(agent_id)
            .with_context(|| format!("making the certificate of agent {agent_id}"))?;
        Ok(json!({"bosh": {
            "mbus": {"cert": {
                "ca": self.ca.certificate(),
                "certificate": cert.certificate,
                "private_key": cert.private_key,
            }},
            "blobstores": [{"provider": "local", "options": {"blobstore_path": "/var/vcap/data/local-blobstore"}}],
        }}))
    }

    /// Creates a VM for `agent_id` with the default networks and env.
    pub fn create_vm(&mut self, agent_id: &str) -> Result<Vm> {
        let env = self.env(agent_id)?;
        let networks = self.networks();
        self.create_vm_with(agent_id, networks, env)
    }

    /// Creates a VM for `agent_id` with the given networks and env, allowing the agent on NATS
    /// first.
    pub fn create_vm_with(&mut self, agent_id: &str, networks: Value, env: Value) -> Result<Vm> {
        self.create_vm_with_properties(agent_id, networks, env, json!({}))
    }

    /// [`World::create_vm_with`] with the VM cloud properties `cloud_properties` (the QEMU CPI's
    /// `ephemeral_disk_size`, `root_disk_size`, `raw_ephemeral_disks`, ...).
    pub fn create_vm_with_properties(
        &mut self,
        agent_id: &str,
        networks: Value,
        env: Value,
        cloud_properties: Value,
    ) -> Result<Vm> {
        self.agents.insert(agent_id.to_owned());
        let agents = self.agents.clone();
        let nats = self.nats.as_mut().context("NATS is running")?;
        self.runtime
            .block_on(nats.allow_agents(agents))
            .context("allowing the agent on NATS")?;
        let created = Instant::now();
        let request = CreateVm {
            agent_id,
            stemcell_cid: &self.stemcell_cid,
            cloud_properties,
            networks,
            disk_cids: Vec::new(),
            env,
            stemcell_api_version: Some(3),
        };
        let cid = self
            .runtime
            .block_on(self.cpi.create_vm(&request))
            .with_context(|| format!("create_vm for agent {agent_id}"))?;
        self.vms.push(cid.clone());
        let machine = Machine::attach(agent_id, &self.vm_dir(&cid));
        Ok(Vm {
            cid,
            agent_id: agent_id.to_owned(),
            machine,
            created,
        })
    }

    /// A VM's directory in the CPI's state.
    pub fn vm_dir(&self, vm_cid: &str) -> PathBuf {
        self.state_dir.join("vms").join(vm_cid)
    }

    /// Pings `vm`'s agent until it answers, for at most `timeout`, watching the console meanwhile;
    /// the boot timings seen on the way.
    pub fn wait_for_pong(&self, vm: &mut Vm, timeout: Duration) -> Result<BootTimings> {
        let deadline = Instant::now() + timeout;
        loop {
            vm.machine.check_console()?;
            let pong = self.call(&vm.agent_id, "ping", vec![], PING_TIMEOUT);
            if matches!(&pong, Ok(value) if value == "pong") {
                let pong_at = Instant::now();
                vm.machine.console().poll()?;
                let since =
                    |at: Option<Instant>| at.map(|at| at.saturating_duration_since(vm.created));
                let console = vm.machine.console();
                return Ok(BootTimings {
                    kernel: since(console.first_seen("Linux version")),
                    agent: since(console.first_seen("bosh-agent[")),
                    pong: Some(pong_at - vm.created),
                });
            }
            if Instant::now() >= deadline {
                return Err(anyhow::anyhow!("last answer: {pong:?}")).with_context(|| {
                    format!(
                        "agent {} did not answer ping within {timeout:?}",
                        vm.agent_id
                    )
                });
            }
            if pong.is_err() {
                // A refused or unanswered request returns at once when nobody listens yet.
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    /// Runs `future` on the world's runtime (a CPI call, say) until it completes.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Sends `method(arguments)` to agent `agent_id` and waits up to `timeout` for the answer (a
    /// task's result for async methods).
    pub fn call(
        &self,
        agent_id: &str,
        method: &str,
        arguments: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, agent::client::Error> {
        let director = self
            .director
            .as_ref()
            .expect("the director is connected until drop");
        self.runtime.block_on(agent::client::call_and_wait(
            director,
            agent_id,
            method,
            arguments,
            timeout,
            agent::client::DEFAULT_POLL_INTERVAL,
        ))
    }

    /// `reboot_vm` through the CPI.
    pub fn reboot_vm(&self, vm_cid: &str) -> Result<()> {
        self.runtime
            .block_on(self.cpi.reboot_vm(vm_cid))
            .with_context(|| format!("reboot_vm {vm_cid}"))
    }

    /// `delete_vm` through the CPI.
    pub fn delete_vm(&mut self, vm_cid: &str) -> Result<()> {
        self.runtime
            .block_on(self.cpi.delete_vm(vm_cid))
            .with_context(|| format!("delete_vm {vm_cid}"))?;
        self.vms.retain(|cid| cid != vm_cid);
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for cid in std::mem::take(&mut self.vms) {
            if let Err(err) = self.runtime.block_on(self.cpi.delete_vm(&cid)) {
                eprintln!("vm-tests: deleting VM {cid}: {err:#}");
            }
        }
        self.director = None;
        if let Some(nats) = self.nats.take() {
            self.runtime.block_on(nats.stop());
        }
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.path().join("cpi.log"))
        {
            eprintln!("===== CPI log =====\n{log}");
        }
    }
}

/// The QEMU CPI's config: state in `state_dir`, the test shell on, the guest's NATS address
/// forwarded to the server's port, and the mbus URL for agents' settings.
pub fn cpi_config_json(
    config: &WorldConfig,
    state_dir: &Path,
    nats_port: u16,
    mbus: &str,
) -> Value {
    json!({
        "state_dir": state_dir,
        "qemu": "qemu-system-x86_64",
        "accel": config.accel,
        "memory_mb": config.memory_mb,
        "cpus": config.cpus,
        "forwards": [{"guest": GUEST_NATS, "host": format!("127.0.0.1:{nats_port}")}],
        "test_shell": true,
        "agent": {"mbus": mbus},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpi_config_turns_the_shell_on_and_forwards_nats() {
        let config = WorldConfig {
            accel: "tcg".to_owned(),
            ..WorldConfig::new("/bin/qemu-cpi")
        };
        assert_eq!(
            cpi_config_json(
                &config,
                Path::new("/t/cpi"),
                40001,
                "nats://127.0.0.1:40001"
            ),
            json!({
                "state_dir": "/t/cpi", "qemu": "qemu-system-x86_64", "accel": "tcg",
                "memory_mb": 1024, "cpus": 2,
                "forwards": [{"guest": "10.0.2.100:4222", "host": "127.0.0.1:40001"}],
                "test_shell": true, "agent": {"mbus": "nats://127.0.0.1:40001"},
            })
        );
    }

    #[test]
    fn boot_timings_print_what_was_seen() {
        let timings = BootTimings {
            kernel: Some(Duration::from_millis(1500)),
            agent: None,
            pong: Some(Duration::from_secs(20)),
        };
        assert_eq!(
            timings.to_string(),
            "VM start → kernel 1.5 s, → agent's first log line -, → first pong 20.0 s"
        );
    }
}
