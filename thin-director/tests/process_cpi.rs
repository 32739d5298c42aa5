//! The process CPI end to end: the `process-cpi` binary called through the director's own CPI
//! client (`thin_director::cpi::Cpi`), its VMs real `bosh-agent` processes (built by
//! `cargo build -p agent`, found next to this test binary), one of them reached over a real
//! `nats-server` with mutual TLS. Every wait is bounded polling; every VM a test leaves behind is
//! stopped when its fixture is dropped.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use thin_director::cpi::{self, Cpi, ErrorKind};
use thin_director::exec;
use thin_director::nats::{self, NatsServer};
use thin_director::pki::{Ca, CertKey};
use thin_director::process_cpi::processes::{self, Caller};
use thin_director::process_cpi::store;

const PROCESS_CPI: &str = env!("CARGO_BIN_EXE_process-cpi");

/// How long an agent may take to boot, or processes to go.
const WAIT: Duration = Duration::from_secs(60);

/// A NATS URL nothing listens on: agents keep trying it, as on a VM whose director is away.
const UNREACHABLE_MBUS: &str = "nats://127.0.0.1:1";

/// `bosh-agent`, built into the same target directory as this test (`target/<profile>/`, the
/// parent of the `deps` directory this binary is in).
fn bosh_agent() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps");
    let agent = profile_dir.join("bosh-agent");
    assert!(
        agent.is_file(),
        "{} is missing: build it first with `cargo build -j2 -p agent`",
        agent.display()
    );
    agent
}

/// A process CPI in a temp dir: its config, its base dir and a CA for agent certificates.
struct Fixture {
    dir: tempfile::TempDir,
    ca: Ca,
    config_path: PathBuf,
    cpi: Cpi,
}

impl Fixture {
    fn new(mbus: &str) -> Fixture {
        Fixture::with_grace(mbus, 10)
    }

    fn with_grace(mbus: &str, stop_grace_secs: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(&dir.path().join("ca")).unwrap();
        let blobstore = dir.path().join("blobstore");
        std::fs::create_dir(&blobstore).unwrap();
        let config = json!({
            "base_dir": dir.path().join("cpi"),
            "agent": {
                "binary": bosh_agent(),
                "mbus": mbus,
                "blobstore": {"provider": "local", "options": {"blobstore_path": blobstore}},
                "ntp": [],
                "env": {"BOSH_AGENT_LOG": "debug", "NO_COLOR": "1"},
            },
            "stop_grace_secs": stop_grace_secs,
        });
        let config_path = dir.path().join("cpi.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut cpi_config = cpi::Config::new(PROCESS_CPI, "director-uuid");
        cpi_config.args = vec!["--config".into(), config_path.clone().into()];
        cpi_config.log = Some(dir.path().join("cpi.log"));
        cpi_config.timeout = Duration::from_secs(120);
        Fixture {
            cpi: Cpi::new(cpi_config),
            dir,
            ca,
            config_path,
        }
    }

    /// A stemcell made from an image file.
    async fn stemcell(&self) -> String {
        let image = self.dir.path().join("image");
        std::fs::write(&image, "not a disk image").unwrap();
        self.cpi
            .create_stemcell(
                &image,
                &json!({"name": "bosh-process-ubuntu", "version": "1"}),
            )
            .await
            .unwrap()
    }

    /// The environment the director gives `agent_id`'s VM: its NATS certificate.
    fn env(&self, agent_id: &str) -> Value {
        let cert = self.ca.agent(agent_id).unwrap();
        json!({"bosh": {"mbus": {"cert": {
            "ca": self.ca.certificate(),
            "certificate": cert.certificate,
            "private_key": cert.private_key,
        }}}})
    }

    /// `create_vm` for a new agent id; the VM cid and the agent id.
    async fn create_vm(&self, stemcell: &str) -> (String, String) {
        let agent_id = uuid::Uuid::new_v4().to_string();
        let vm_cid = self
            .cpi
            .create_vm(&cpi::CreateVm {
                agent_id: &agent_id,
                stemcell_cid: stemcell,
                cloud_properties: json!({}),
                networks: json!({"default": {"type": "dynamic", "cloud_properties": {}}}),
                disk_cids: Vec::new(),
                env: self.env(&agent_id),
                stemcell_api_version: Some(2),
            })
            .await
            .unwrap();
        (vm_cid, agent_id)
    }

    fn base_dir(&self) -> PathBuf {
        self.dir.path().join("cpi")
    }

    fn vm_dir(&self, vm_cid: &str) -> PathBuf {
        self.base_dir().join("vms").join(vm_cid)
    }

    fn settings(&self, vm_cid: &str) -> Value {
        let text = std::fs::read(self.vm_dir(vm_cid).join(store::SETTINGS_FILE)).unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    /// Runs the binary with `stdin` as the request and `args`; its response.
    async fn raw(&self, args: &[&str], stdin: &[u8]) -> Value {
        let output = exec::run(&exec::Program {
            path: PROCESS_CPI.into(),
            args: args.iter().map(OsString::from).collect(),
            env: vec![("PATH".into(), cpi::CPI_PATH.into())],
            stdin: stdin.to_vec(),
            timeout: Duration::from_secs(60),
        })
        .await
        .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "not a response ({err}): {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// A request with this fixture's config.
    async fn request(&self, request: &Value) -> Value {
        let config = self.config_path.to_str().unwrap();
        self.raw(&["--config", config], request.to_string().as_bytes())
            .await
    }

    /// The agent's output and the supervisor's, for assertion messages.
    fn logs(&self, vm_cid: &str) -> String {
        let dir = self.vm_dir(vm_cid);
        let read = |name| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        format!(
            "--- supervisor.log ---\n{}--- agent.log ---\n{}--- cpi.log ---\n{}",
            read(store::SUPERVISOR_LOG),
            read(store::AGENT_LOG),
            std::fs::read_to_string(self.dir.path().join("cpi.log")).unwrap_or_default()
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A failed test must not leave agents running: stop what any VM still has.
        let Ok(entries) = std::fs::read_dir(self.base_dir().join("vms")) else {
            return;
        };
        for entry in entries.flatten() {
            let _ = processes::stop_vm(
                Path::new(processes::PROC_ROOT),
                &entry.path(),
                Caller::current(),
                Duration::from_secs(1),
            );
        }
    }
}

/// The stat of a live (not zombie) process.
fn live_stat(pid: i32) -> Option<processes::Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    processes::parse_stat(&text).filter(|stat| stat.state != 'Z' && stat.state != 'X')
}

fn is_alive(pid: i32) -> bool {
    live_stat(pid).is_some()
}

/// The pid in one of a VM's pidfiles.
fn read_pid(vm_dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(vm_dir.join(name))
        .ok()
        .and_then(|text| processes::parse_pidfile(&text))
}

/// Polls `condition` until it holds or [`WAIT`] has passed.
async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

/// The kind of a CPI error, or a panic naming what came instead.
fn kind<T: std::fmt::Debug>(result: cpi::Result<T>) -> ErrorKind {
    match result {
        Err(err) => err
            .kind()
            .unwrap_or_else(|| panic!("not a CPI error: {err:#?}")),
        Ok(value) => panic!("expected a CPI error, got {value:?}"),
    }
}

/// The director's TLS client config: its certificate, trusting the CA.
fn director_tls(ca: &Ca, director: &CertKey) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.certificate().as_bytes()).unwrap())
        .unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(director.certificate.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(director.private_key.as_bytes()).unwrap(),
        )
        .unwrap()
}

/// A `sleep` the test starts in a process group of its own, as a job process would run.
fn sleeper(dir: &Path, ignore_sigterm: bool) -> Child {
    let mut command = if ignore_sigterm {
        let mut command = Command::new("sh");
        // An ignored signal stays ignored across exec.
        command.args(["-c", "trap '' TERM; exec sleep 600"]);
        command
    } else {
        let mut command = Command::new("sleep");
        command.arg("600");
        command
    };
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Whether the child has exited, reaping it; the signal that ended it.
fn ended_by(child: &mut Child) -> Option<Option<i32>> {
    child.try_wait().unwrap().map(|status| status.signal())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_is_an_agent_the_director_reaches_over_nats_until_delete_vm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&dir.path().join("ca")).unwrap();
    let mut nats = NatsServer::start(
        nats::Config {
            binary: nats::DEFAULT_BINARY.into(),
            dir: dir.path().join("nats"),
            host: "127.0.0.1".parse().unwrap(),
            advertised: Vec::new(),
            port: 0,
        },
        &ca,
    )
    .await
    .unwrap();
    let mut fixture = Fixture::new(&nats.url());
    // The director's CA signs the agent's certificate, as `pki` does for a real deploy.
    fixture.ca = ca;
    let info = fixture.cpi.info().await.unwrap();
    assert_eq!(info.api_version, 2);
    assert_eq!(info.stemcell_formats, ["dummy"]);
    let stemcell = fixture.stemcell().await;

    let agent_id = uuid::Uuid::new_v4().to_string();
    nats.allow_agents(BTreeSet::from([agent_id.clone()]))
        .await
        .unwrap();
    let networks = json!({"default": {"type": "manual", "ip": "127.0.0.1", "netmask": "255.0.0.0",
        "gateway": "127.0.0.1", "default": ["dns", "gateway"], "dns": [], "cloud_properties": {}}});
    let env = fixture.env(&agent_id);
    let created = fixture
        .cpi
        .call(
            "create_vm",
            &[
                json!(agent_id),
                json!(stemcell),
                json!({"instance_type": "small"}),
                networks.clone(),
                json!([]),
                env.clone(),
            ],
            Some(2),
        )
        .await
        .unwrap();
    assert_eq!(created[1], networks, "v2 answers [cid, networks]");
    let vm_cid = created[0].as_str().unwrap().to_owned();
    let vm_dir = fixture.vm_dir(&vm_cid);
    let settings = fixture.settings(&vm_cid);
    assert_eq!(settings["agent_id"], json!(agent_id));
    assert_eq!(settings["mbus"], json!(nats.url()));
    assert_eq!(settings["vm"]["name"], json!(vm_cid));
    assert_eq!(settings["env"], env);

    let director = agent::client::NatsClient::connect(
        &nats.url(),
        director_tls(&fixture.ca, &fixture.ca.director().unwrap()),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let pong =
            agent::client::call(&director, &agent_id, "ping", vec![], Duration::from_secs(2)).await;
        if matches!(&pong, Ok(value) if value == "pong") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never answered ping: {pong:?}\n{}",
            fixture.logs(&vm_cid)
        );
    }
    let state = agent::client::call(
        &director,
        &agent_id,
        "get_state",
        vec![],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(state["agent_id"], json!(agent_id), "{state}");

    // The agent runs in its supervisor's session, which marks it as this VM's.
    let supervisor = read_pid(&vm_dir, store::SUPERVISOR_PID_FILE).unwrap();
    let agent = read_pid(&vm_dir, store::AGENT_PID_FILE).unwrap();
    assert_eq!(live_stat(supervisor).unwrap().sid, supervisor);
    assert_eq!(live_stat(agent).unwrap().sid, supervisor);

    fixture
        .cpi
        .set_vm_metadata(&vm_cid, &json!({"deployment": "d", "name": "web/0"}))
        .await
        .unwrap();
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(vm_dir.join(store::METADATA_FILE)).unwrap()).unwrap();
    assert_eq!(metadata, json!({"deployment": "d", "name": "web/0"}));
    assert!(fixture.cpi.has_vm(&vm_cid).await.unwrap());

    fixture.cpi.delete_vm(&vm_cid).await.unwrap();
    assert!(!is_alive(agent), "the agent still runs");
    assert!(!is_alive(supervisor), "the supervisor still runs");
    assert!(!vm_dir.exists());
    assert!(!fixture.cpi.has_vm(&vm_cid).await.unwrap());
    // Gone is VMNotFound, which the director's client tolerates.
    assert_eq!(
        kind(fixture.cpi.call("delete_vm", &[json!(vm_cid)], None).await),
        ErrorKind::VmNotFound
    );
    fixture.cpi.delete_vm(&vm_cid).await.unwrap();
    fixture.cpi.delete_stemcell(&stemcell).await.unwrap();
    drop(director);
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_vm_stops_the_jobs_the_agent_left_in_sessions_of_their_own() {
    let fixture = Fixture::with_grace(UNREACHABLE_MBUS, 1);
    let stemcell = fixture.stemcell().await;
    let (vm_cid, _) = fixture.create_vm(&stemcell).await;
    let vm_dir = fixture.vm_dir(&vm_cid);
    let data = vm_dir.join("data").join("web");
    std::fs::create_dir_all(&data).unwrap();
    let outside = fixture.dir.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();

    // A job working in the VM, one that ignores SIGTERM, one known only by its pidfile, and a
    // bystander whose pid a stale pidfile of the VM happens to name.
    let mut working_in_vm = sleeper(&data, false);
    let mut stubborn = sleeper(&data, true);
    let mut by_pidfile = sleeper(&outside, false);
    let mut bystander = sleeper(&outside, false);
    let run = vm_dir.join("sys").join("run");
    std::fs::create_dir_all(run.join("web")).unwrap();
    std::fs::create_dir_all(run.join("old")).unwrap();
    std::fs::write(
        run.join("web").join("web.pid"),
        format!("{}\n", by_pidfile.id()),
    )
    .unwrap();
    let stale = run.join("old").join("old.pid");
    std::fs::write(&stale, format!("{}\n", bystander.id())).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    // The stubborn one ignores SIGTERM once its shell has become `sleep`.
    let stubborn_pid = stubborn.id();
    assert!(
        wait_until(|| {
            std::fs::read(format!("/proc/{stubborn_pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.starts_with(b"sleep\0"))
        })
        .await
    );
    let agent = {
        let mut agent = None;
        assert!(
            wait_until(|| {
                agent = read_pid(&vm_dir, store::AGENT_PID_FILE).filter(|pid| is_alive(*pid));
                agent.is_some()
            })
            .await
        );
        agent.unwrap()
    };

    fixture.cpi.delete_vm(&vm_cid).await.unwrap();
    assert!(!is_alive(agent), "the agent still runs");
    assert_eq!(
        ended_by(&mut working_in_vm),
        Some(Some(Signal::SIGTERM as i32))
    );
    assert_eq!(
        ended_by(&mut stubborn),
        Some(Some(Signal::SIGKILL as i32)),
        "a job ignoring SIGTERM is killed after the grace"
    );
    assert_eq!(
        ended_by(&mut by_pidfile),
        Some(Some(Signal::SIGTERM as i32))
    );
    assert_eq!(
        ended_by(&mut bystander),
        None,
        "a process a stale pidfile names was stopped"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert!(!vm_dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_restarts_a_dead_agent_and_reboot_vm_starts_the_vm_again() {
    let fixture = Fixture::new(UNREACHABLE_MBUS);
    let stemcell = fixture.stemcell().await;
    let (vm_cid, _) = fixture.create_vm(&stemcell).await;
    let vm_dir = fixture.vm_dir(&vm_cid);
    let live_agent = || read_pid(&vm_dir, store::AGENT_PID_FILE).filter(|pid| is_alive(*pid));
    assert!(
        wait_until(|| live_agent().is_some()).await,
        "{}",
        fixture.logs(&vm_cid)
    );
    let first = live_agent().unwrap();
    let supervisor = read_pid(&vm_dir, store::SUPERVISOR_PID_FILE).unwrap();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), Signal::SIGKILL).unwrap();
    assert!(
        wait_until(|| live_agent().is_some_and(|pid| pid != first)).await,
        "the agent was not restarted\n{}",
        fixture.logs(&vm_cid)
    );
    let second = live_agent().unwrap();
    assert!(is_alive(supervisor));

    fixture.cpi.reboot_vm(&vm_cid).await.unwrap();
    assert!(!is_alive(second) && !is_alive(supervisor));
    let rebooted = read_pid(&vm_dir, store::SUPERVISOR_PID_FILE).unwrap();
    assert_ne!(rebooted, supervisor);
    assert!(
        wait_until(|| live_agent().is_some()).await,
        "no agent after the reboot\n{}",
        fixture.logs(&vm_cid)
    );
    assert_eq!(live_stat(live_agent().unwrap()).unwrap().sid, rebooted);

    let missing = "vm-00000000-0000-0000-0000-000000000000";
    assert_eq!(
        kind(fixture.cpi.reboot_vm(missing).await),
        ErrorKind::VmNotFound
    );
    fixture.cpi.delete_vm(&vm_cid).await.unwrap();
    assert!(!is_alive(rebooted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_attach_to_one_vm_at_a_time_and_detach_with_the_errors_the_director_expects() {
    let fixture = Fixture::new(UNREACHABLE_MBUS);
    let stemcell = fixture.stemcell().await;
    let (vm, _) = fixture.create_vm(&stemcell).await;
    let (other_vm, _) = fixture.create_vm(&stemcell).await;
    let cpi = &fixture.cpi;

    let disk = cpi
        .create_disk(1024, &json!({"type": "ssd"}), Some(&vm))
        .await
        .unwrap();
    let disk_dir = fixture.base_dir().join("disks").join(&disk);
    assert!(disk_dir.is_dir());
    assert!(cpi.has_disk(&disk).await.unwrap());
    let record: Value = serde_json::from_slice(
        &std::fs::read(
            fixture
                .base_dir()
                .join("disks")
                .join(format!("{disk}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(record["size_mb"], 1024);

    let hint = cpi.attach_disk(&vm, &disk).await.unwrap();
    assert_eq!(hint, json!({"path": disk_dir}));
    assert_eq!(fixture.settings(&vm)["disks"]["persistent"][&disk], hint);
    assert_eq!(
        cpi.get_disks(&vm).await.unwrap(),
        std::slice::from_ref(&disk)
    );
    // Again to the same VM: the same hint.
    assert_eq!(cpi.attach_disk(&vm, &disk).await.unwrap(), hint);
    cpi.set_disk_metadata(&disk, &json!({"instance_group": "db"}))
        .await
        .unwrap();

    let err = cpi.attach_disk(&other_vm, &disk).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::CloudError));
    assert!(
        err.to_string()
            .contains(&format!("disk '{disk}' is attached to VM '{vm}'")),
        "{err}"
    );
    assert_eq!(
        kind(cpi.delete_disk(&disk).await),
        ErrorKind::CloudError,
        "an attached disk was deleted"
    );

    cpi.detach_disk(&vm, &disk).await.unwrap();
    assert!(cpi.get_disks(&vm).await.unwrap().is_empty());
    assert_eq!(fixture.settings(&vm)["disks"]["persistent"], json!({}));
    assert_eq!(
        kind(
            cpi.call("detach_disk", &[json!(vm), json!(disk)], None)
                .await
        ),
        ErrorKind::DiskNotAttached
    );

    // A deleted VM lets go of its disks.
    cpi.attach_disk(&other_vm, &disk).await.unwrap();
    cpi.delete_vm(&other_vm).await.unwrap();
    cpi.attach_disk(&vm, &disk).await.unwrap();
    cpi.detach_disk(&vm, &disk).await.unwrap();

    cpi.delete_disk(&disk).await.unwrap();
    assert!(!cpi.has_disk(&disk).await.unwrap());
    assert!(!disk_dir.exists());
    assert_eq!(kind(cpi.delete_disk(&disk).await), ErrorKind::DiskNotFound);
    assert_eq!(
        kind(cpi.attach_disk(&vm, &disk).await),
        ErrorKind::DiskNotFound
    );
    let missing_vm = "vm-00000000-0000-0000-0000-000000000000";
    let another = cpi.create_disk(10, &json!({}), None).await.unwrap();
    assert_eq!(
        kind(cpi.attach_disk(missing_vm, &another).await),
        ErrorKind::VmNotFound
    );
    assert_eq!(kind(cpi.get_disks(missing_vm).await), ErrorKind::VmNotFound);
    assert_eq!(
        kind(
            cpi.call("detach_disk", &[json!(missing_vm), json!(another)], None)
                .await
        ),
        ErrorKind::VmNotFound
    );
    cpi.delete_vm(&vm).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_unknown_methods_and_unknown_things_get_their_cpi_errors() {
    let fixture = Fixture::new(UNREACHABLE_MBUS);
    let error = |response: &Value| {
        (
            response["error"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            response["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let cpi_error = "Bosh::Clouds::CpiError".to_owned();

    let response = fixture.request(&json!({"method": "create_vm"})).await;
    assert_eq!(
        error(&response),
        (cpi_error.clone(), "Must provide 'arguments' key".to_owned())
    );
    assert_eq!(response["result"], Value::Null);
    assert_eq!(response["error"]["ok_to_retry"], false);
    assert_eq!(response["log"], "");
    let config = fixture.config_path.to_str().unwrap();
    let response = fixture
        .raw(&["-configPath", config], b"{\"method\": ")
        .await;
    assert_eq!(
        error(&response),
        (
            cpi_error.clone(),
            "Must provide valid JSON payload: EOF while parsing a value at line 1 column 11"
                .to_owned()
        )
    );
    let response = fixture
        .request(&json!({"method": "has_vm", "arguments": [7]}))
        .await;
    assert_eq!(
        error(&response),
        (
            cpi_error.clone(),
            "has_vm argument 1 (vm_cid) must be a string, got a number".to_owned()
        )
    );
    // Without a usable config, a CpiError says so.
    let response = fixture
        .raw(
            &["--config", "/nonexistent/cpi.json"],
            br#"{"method":"info","arguments":[]}"#,
        )
        .await;
    assert_eq!(response["error"]["type"], "Bosh::Clouds::CpiError");
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("reading the CPI config /nonexistent/cpi.json: "),
        "{response}"
    );
    let response = fixture.raw(&[], b"").await;
    assert_eq!(error(&response).0, cpi_error);

    let cpi = &fixture.cpi;
    let err = cpi
        .call("resize_disk", &[json!("disk-1"), json!(2048)], None)
        .await;
    assert_eq!(
        err.as_ref().unwrap_err().to_string().split(" in ").next(),
        Some(
            "CPI error 'Bosh::Clouds::NotImplemented' with message 'Must call implemented method: Unknown method 'resize_disk''"
        )
    );
    assert_eq!(kind(err), ErrorKind::NotImplemented);
    let unknown_stemcell = cpi
        .call(
            "create_vm",
            &[
                json!("agent-1"),
                json!("stemcell-nope"),
                json!({}),
                json!({}),
                json!([]),
                json!({}),
            ],
            None,
        )
        .await;
    assert!(
        unknown_stemcell
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("stemcell 'stemcell-nope' not found"),
        "{unknown_stemcell:?}"
    );
    assert_eq!(kind(unknown_stemcell), ErrorKind::StemcellNotFound);
    assert_eq!(
        kind(
            cpi.call(
                "create_stemcell",
                &[json!("/nonexistent/image"), json!({})],
                None
            )
            .await
        ),
        ErrorKind::CpiError
    );
    for vm_cid in ["vm-00000000-0000-0000-0000-000000000000", "../..", ""] {
        assert!(!cpi.has_vm(vm_cid).await.unwrap(), "{vm_cid:?}");
        assert_eq!(
            kind(cpi.call("delete_vm", &[json!(vm_cid)], None).await),
            ErrorKind::VmNotFound,
            "{vm_cid:?}"
        );
        assert_eq!(
            kind(cpi.set_vm_metadata(vm_cid, &json!({})).await),
            ErrorKind::VmNotFound
        );
    }
    assert!(!fixture.base_dir().join("vms").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_keep_every_vm_and_every_attachment() {
    let fixture = Fixture::new(UNREACHABLE_MBUS);
    let stemcell = fixture.stemcell().await;
    let vms: Vec<(String, String)> =
        futures_util::future::join_all((0..6).map(|_| fixture.create_vm(&stemcell))).await;
    let cids: BTreeSet<&String> = vms.iter().map(|(cid, _)| cid).collect();
    assert_eq!(cids.len(), 6);
    for (vm_cid, agent_id) in &vms {
        assert_eq!(fixture.settings(vm_cid)["agent_id"], json!(agent_id));
    }

    // Six disks attached to one VM at once: each read-modify-write of its settings keeps the
    // others' attachments.
    let cpi = &fixture.cpi;
    let (target, _) = &vms[0];
    let disks: Vec<String> = futures_util::future::join_all(
        (0..6).map(|_| async { cpi.create_disk(1, &json!({}), None).await.unwrap() }),
    )
    .await;
    let attached =
        futures_util::future::join_all(disks.iter().map(|disk| cpi.attach_disk(target, disk)))
            .await;
    assert!(attached.iter().all(Result::is_ok), "{attached:?}");
    let listed: BTreeSet<String> = cpi.get_disks(target).await.unwrap().into_iter().collect();
    assert_eq!(listed, disks.iter().cloned().collect());

    // One disk to two VMs at once: exactly one wins.
    let contested = cpi.create_disk(1, &json!({}), None).await.unwrap();
    let (first, second) = tokio::join!(
        cpi.attach_disk(&vms[1].0, &contested),
        cpi.attach_disk(&vms[2].0, &contested)
    );
    assert_eq!(
        [first.is_ok(), second.is_ok()]
            .iter()
            .filter(|ok| **ok)
            .count(),
        1,
        "{first:?} {second:?}"
    );

    let deleted =
        futures_util::future::join_all(vms.iter().map(|(vm_cid, _)| cpi.delete_vm(vm_cid))).await;
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    for (vm_cid, _) in &vms {
        assert!(!fixture.vm_dir(vm_cid).exists());
    }
    // Their disks are free again.
    for disk in disks.iter().chain([&contested]) {
        cpi.delete_disk(disk).await.unwrap();
    }
}
