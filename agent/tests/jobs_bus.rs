//! Job-related actions over NATS through the real agent on the dummy platform, with a `local`
//! blobstore in the test's temp dir: `sync_dns`, `fetch_logs` and `bundle_logs`, failing lifecycle
//! scripts, and the monit supervisor restarting and adopting a job process. The whole life of a
//! real release (`compile_package`, `prepare`, `apply`, scripts, `start`, `drain`, `stop`, errands)
//! is in `release_bus`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::client::{self, NatsClient};
use serde_json::{Value, json};
use settings::digest::{Algorithm, MultiDigest};
use tokio::task::block_in_place;

use crate::support::agent_process::AgentProcess;
use crate::support::nats::{NatsServer, client_tls_config};
use crate::support::pki::Pki;

const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

struct Fixture {
    server: NatsServer,
    pki: Pki,
    agent: AgentProcess,
    director: NatsClient,
    agent_id: String,
}

impl Fixture {
    async fn start(agent_id: &str) -> Fixture {
        Fixture::start_with(agent_id, "dummy").await
    }

    async fn start_with(agent_id: &str, supervisor: &'static str) -> Fixture {
        let pki = Pki::new(agent_id);
        let server = block_in_place(|| NatsServer::start(&pki));
        let agent =
            block_in_place(|| AgentProcess::start_with_supervisor(&pki, &server.url(), supervisor));
        let director = NatsClient::connect(
            &server.url(),
            client_tls_config(&pki.server_ca, Some(&pki.director)),
        )
        .await
        .unwrap();
        let fixture = Fixture {
            server,
            pki,
            agent,
            director,
            agent_id: agent_id.to_owned(),
        };
        fixture
            .agent
            .wait_for_pong(&fixture.director, agent_id, TIMEOUT)
            .await;
        fixture
    }

    fn blobstore(&self) -> PathBuf {
        self.agent.dir().join("blobstore")
    }

    /// Puts a tarball of `tree` into the local blobstore as `id` and returns its sha1.
    fn put_tree(&self, id: &str, tree: &Path) -> String {
        let path = self.blobstore().join(id);
        jobs::archive::create(tree, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        MultiDigest::compute(bytes.as_slice(), &[Algorithm::Sha1])
            .unwrap()
            .to_string()
    }

    async fn call_and_wait(&self, method: &str, arguments: Value) -> Result<Value, client::Error> {
        let Value::Array(arguments) = arguments else {
            panic!("arguments must be an array")
        };
        client::call_and_wait(
            &self.director,
            &self.agent_id,
            method,
            arguments,
            TIMEOUT,
            POLL,
        )
        .await
    }
}

fn write_executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_dns_keeps_the_newest_records() {
    let fixture = Fixture::start("agent-dns").await;
    let blob = br#"{"version":2,"records":[["10.0.0.5","web-0.web.default.cf.bosh"]],"record_keys":["id"]}"#;
    std::fs::write(fixture.blobstore().join("dns-2"), blob).unwrap();
    let sha1 = MultiDigest::compute(&blob[..], &[Algorithm::Sha1])
        .unwrap()
        .to_string();
    let call = |arguments: Value| {
        let Value::Array(arguments) = arguments else {
            unreachable!()
        };
        client::call(
            &fixture.director,
            "agent-dns",
            "sync_dns",
            arguments,
            TIMEOUT,
        )
    };

    assert_eq!(
        call(json!(["dns-2", sha1, 2])).await.unwrap(),
        json!("synced")
    );
    let base = fixture.agent.base_dir();
    assert_eq!(
        std::fs::read_to_string(base.join("bosh/etc_hosts")).unwrap(),
        "10.0.0.5 web-0.web.default.cf.bosh\n"
    );
    let stored = base.join("instance/dns/records.json");
    assert_eq!(std::fs::read(&stored).unwrap(), blob);
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Older or equal versions need no download: a blob that does not exist is never asked for.
    assert_eq!(
        call(json!(["no-such-blob", sha1, 1])).await.unwrap(),
        json!("synced")
    );
    // A blob whose version is not the one announced is refused, and nothing changes.
    let Err(client::Error::Exception(mismatch)) = call(json!(["dns-2", sha1, 3])).await else {
        panic!("expected an exception");
    };
    assert!(
        mismatch.ends_with(
            "version from unpacked dns blob does not match version supplied by director"
        ),
        "{mismatch}"
    );
    // A wrong digest is refused before anything is used.
    let wrong = "0000000000000000000000000000000000000000";
    let Err(client::Error::Exception(corrupt)) = call(json!(["dns-2", wrong, 4])).await else {
        panic!("expected an exception");
    };
    assert!(
        corrupt.contains("Expected stream to have digest"),
        "{corrupt}"
    );
    assert_eq!(std::fs::read(&stored).unwrap(), blob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_logs_and_bundle_logs_pack_the_job_and_agent_logs() {
    let fixture = Fixture::start("agent-logs").await;
    let base = fixture.agent.base_dir();
    for (path, text) in [
        ("sys/log/web/web.stdout.log", "hello"),
        ("sys/log/web/web.stderr.log", "oops"),
    ] {
        std::fs::create_dir_all(base.join(path).parent().unwrap()).unwrap();
        std::fs::write(base.join(path), text).unwrap();
    }
    let fetched = fixture
        .call_and_wait("fetch_logs", json!(["job", ["web/*.stdout.log"]]))
        .await
        .unwrap();
    let blob = fixture
        .blobstore()
        .join(fetched["blobstore_id"].as_str().unwrap());
    let bytes = std::fs::read(&blob).unwrap();
    let sha1 = MultiDigest::compute(bytes.as_slice(), &[Algorithm::Sha1]).unwrap();
    assert_eq!(fetched["sha1"], json!(sha1.to_string()));
    let unpacked = tempfile::tempdir().unwrap();
    jobs::archive::extract(&blob, &unpacked.path().join("logs"), &Default::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(unpacked.path().join("logs/web/web.stdout.log")).unwrap(),
        "hello"
    );
    assert!(
        !unpacked.path().join("logs/web/web.stderr.log").exists(),
        "the filter keeps only stdout"
    );

    let invalid = fixture
        .call_and_wait("fetch_logs", json!(["kernel", null]))
        .await;
    assert!(
        matches!(invalid, Err(client::Error::Exception(ref m)) if m.ends_with("Invalid log type")),
        "{invalid:?}"
    );

    let bundle = client::call(
        &fixture.director,
        "agent-logs",
        "bundle_logs",
        vec![json!({"owning_user": "bosh_abc", "log_type": "job", "filters": []})],
        TIMEOUT,
    )
    .await
    .unwrap();
    let path = PathBuf::from(bundle["logs_tar_path"].as_str().unwrap());
    let sha512 =
        MultiDigest::compute(std::fs::File::open(&path).unwrap(), &[Algorithm::Sha512]).unwrap();
    assert_eq!(bundle["sha512"], json!(sha512.to_string()));
    assert!(bundle["sha512"].as_str().unwrap().starts_with("sha512:"));
    assert_eq!(
        client::call(
            &fixture.director,
            "agent-logs",
            "remove_file",
            vec![json!(path)],
            TIMEOUT
        )
        .await
        .unwrap(),
        json!(path)
    );
    assert!(!path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_scripts_run_for_the_applied_jobs() {
    let fixture = Fixture::start("agent-scripts").await;
    let work = tempfile::tempdir().unwrap();
    let templates = work.path().join("templates");
    write_executable(
        &templates.join("web/bin/pre-start"),
        "#!/bin/sh\necho \"pre-start $GREETING\"\n",
    );
    write_executable(
        &templates.join("worker/bin/pre-start"),
        "#!/bin/sh\necho broken >&2\nexit 1\n",
    );
    let templates_sha1 = fixture.put_tree("templates-1", &templates);
    let spec = json!({
        "deployment": "cf", "name": "web", "index": 0, "id": "uuid-1",
        "job": {"name": "web", "templates": [{"name": "web", "version": "1"}, {"name": "worker", "version": "1"}]},
        "rendered_templates_archive": {"blobstore_id": "templates-1", "sha1": templates_sha1},
        "configuration_hash": "hash-1"
    });
    fixture.call_and_wait("apply", json!([spec])).await.unwrap();
    let base = fixture.agent.base_dir();

    // One job's pre-start fails: the Go text names it; the other's ran with the env and logged.
    let failure = fixture
        .call_and_wait(
            "run_script",
            json!(["pre-start", {"env": {"GREETING": "hello"}}]),
        )
        .await;
    let Err(client::Error::Exception(message)) = failure else {
        panic!("expected a failure: {failure:?}");
    };
    assert!(
        message.ends_with(
            "1 of 2 pre-start scripts failed. Failed Jobs: worker. Successful Jobs: web."
        ),
        "{message}"
    );
    let log = std::fs::read_to_string(base.join("sys/log/web/pre-start.stdout.log")).unwrap();
    assert_eq!(log, "pre-start hello\n");
    assert_eq!(
        fixture
            .call_and_wait("run_script", json!(["post-deploy", {}]))
            .await
            .unwrap(),
        json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monit_supervisor_starts_restarts_adopts_and_stops_job_processes() {
    use futures_util::StreamExt as _;
    let mut fixture = Fixture::start_with("agent-monit", "monit").await;
    let monitor = crate::support::nats::connect_director(&fixture.server.url(), &fixture.pki)
        .await
        .unwrap();
    let mut alerts = monitor
        .subscribe("hm.agent.alert.agent-monit")
        .await
        .unwrap();
    crate::support::nats::round_trip(&monitor).await;
    let base = fixture.agent.base_dir();
    let run_dir = base.join("data/sys/run/web");
    let work = tempfile::tempdir().unwrap();
    let templates = work.path().join("templates");
    write_executable(
        &templates.join("web/bin/ctl"),
        &format!(
            "#!/bin/sh\ncase $1 in\n  start) mkdir -p {run}; sleep 1000 > /dev/null 2>&1 & echo $! > {run}/web.pid ;;\n  stop) kill $(cat {run}/web.pid) ;;\nesac\n",
            run = run_dir.display()
        ),
    );
    std::fs::write(
        templates.join("web/monit"),
        format!(
            "check process web\n  with pidfile {run}/web.pid\n  start program \"{ctl} start\"\n  stop program \"{ctl} stop\"\n  group vcap\n",
            run = run_dir.display(),
            ctl = base.join("jobs/web/bin/ctl").display()
        ),
    )
    .unwrap();
    let blob = fixture.blobstore().join("templates-1");
    jobs::archive::create(&templates, &blob).unwrap();
    let sha1 = MultiDigest::compute(std::fs::read(&blob).unwrap().as_slice(), &[Algorithm::Sha1])
        .unwrap()
        .to_string();
    let spec = json!({
        "deployment": "cf", "name": "web", "index": 0, "id": "uuid-1",
        "job": {"name": "web", "templates": [{"name": "web", "version": "1"}]},
        "rendered_templates_archive": {"blobstore_id": "templates-1", "sha1": sha1},
        "configuration_hash": "hash-1"
    });
    fixture.call_and_wait("apply", json!([spec])).await.unwrap();
    let started = client::call(&fixture.director, "agent-monit", "start", vec![], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(started, json!("started"));

    let state_of = || async {
        client::call(
            &fixture.director,
            "agent-monit",
            "get_state",
            vec![],
            TIMEOUT,
        )
        .await
        .unwrap()
    };
    let pid = |run_dir: &Path| {
        std::fs::read_to_string(run_dir.join("web.pid"))
            .ok()
            .map(|p| p.trim().to_owned())
    };
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let state = state_of().await;
        if state["job_state"] == "running" && state["processes"][0]["state"] == "running" {
            assert_eq!(state["processes"][0]["name"], "web");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never running: {state}\n{}",
            fixture.agent.log()
        );
        tokio::time::sleep(POLL).await;
    }
    let first = pid(&run_dir).unwrap();

    // A killed process is restarted, and the health monitor hears of it.
    std::process::Command::new("kill")
        .args(["-9", &first])
        .status()
        .unwrap();
    let alert = tokio::time::timeout(TIMEOUT, alerts.next())
        .await
        .unwrap()
        .unwrap();
    let alert: Value = serde_json::from_slice(&alert.payload).unwrap();
    assert!(
        alert["title"]
            .as_str()
            .unwrap()
            .starts_with("web - does not exist - restart"),
        "{alert}"
    );
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let second = loop {
        if let Some(second) = pid(&run_dir).filter(|p| *p != first) {
            if state_of().await["job_state"] == "running" {
                break second;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not restarted\n{}",
            fixture.agent.log()
        );
        tokio::time::sleep(POLL).await;
    };

    // A restarted agent adopts the running process instead of starting another.
    block_in_place(|| fixture.agent.restart());
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while state_of_checked(&fixture).await != Some("running".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            fixture.agent.log()
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        pid(&run_dir).unwrap(),
        second,
        "the process was adopted, not restarted"
    );

    assert_eq!(
        fixture.call_and_wait("stop", json!([])).await.unwrap(),
        json!("stopped")
    );
    assert_eq!(state_of().await["job_state"], "stopped");
    // Gone, or a zombie its new parent has not reaped yet.
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(&second).join("stat")).unwrap_or_default();
    let running = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z'));
    assert!(!running, "the job process is gone after stop: {stat}");
}

/// `job_state`, once the agent answers.
async fn state_of_checked(fixture: &Fixture) -> Option<String> {
    client::call(
        &fixture.director,
        &fixture.agent_id,
        "get_state",
        vec![],
        Duration::from_millis(500),
    )
    .await
    .ok()
    .and_then(|state| state["job_state"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_task_terminates_a_running_errand() {
    let fixture = Fixture::start("agent-errand-cancel").await;
    let work = tempfile::tempdir().unwrap();
    let templates = work.path().join("templates");
    write_executable(
        &templates.join("smoke/bin/run"),
        "#!/bin/sh\necho started\ntouch \"$(dirname \"$0\")/../running\"\nexec sleep 600\n",
    );
    let templates_sha1 = fixture.put_tree("templates-smoke", &templates);
    let spec = json!({
        "deployment": "cf", "name": "smoke", "index": 0, "id": "uuid-smoke",
        "job": {"name": "smoke", "template": "smoke", "templates": [{"name": "smoke", "version": "1"}]},
        "rendered_templates_archive": {"blobstore_id": "templates-smoke", "sha1": templates_sha1},
        "configuration_hash": "hash-smoke",
    });
    fixture.call_and_wait("apply", json!([spec])).await.unwrap();
    let call = |method: &'static str, arguments: Value| {
        let Value::Array(arguments) = arguments else {
            panic!("arguments must be an array")
        };
        client::call(
            &fixture.director,
            &fixture.agent_id,
            method,
            arguments,
            TIMEOUT,
        )
    };
    let handle = call("run_errand", json!([])).await.unwrap();
    let task_id = handle["agent_task_id"].as_str().unwrap().to_owned();
    // Cancel once the errand is known to be running.
    let running = fixture.agent.base_dir().join("jobs/smoke/running");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !running.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            fixture.agent.log()
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        call("cancel_task", json!([task_id])).await.unwrap(),
        json!("canceled")
    );
    let result = loop {
        let answer = call("get_task", json!([task_id])).await.unwrap();
        if answer.get("agent_task_id").is_none() {
            break answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(POLL).await;
    };
    // 143: SIGTERM ended it, without the 10 s grace period's SIGKILL.
    assert_eq!(
        result,
        json!({"stdout": "started\n", "stderr": "", "exit_code": 143})
    );
}
