//! The agent over NATS with mutual TLS, end to end: a real nats-server, the real `bosh-agent` on the
//! dummy platform, and a director-style client (`agent::client::NatsClient`) driving every action of
//! the message-bus issue.

use std::path::PathBuf;
use std::time::Duration;

use agent::client::{self, NatsClient};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::task::block_in_place;

use crate::support::agent_process::AgentProcess;
use crate::support::nats::{NatsServer, client_tls_config, round_trip};
use crate::support::pki::Pki;
use crate::support::wait_until;

/// A bound on each wait; nothing is expected to come near it.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Poll interval for tasks in these tests.
const POLL: Duration = Duration::from_millis(20);

struct Fixture {
    pki: Pki,
    server: NatsServer,
    agent: AgentProcess,
    director: NatsClient,
}

impl Fixture {
    async fn start(agent_id: &str) -> Fixture {
        Fixture::start_with(Pki::new(agent_id), |_| {}).await
    }

    async fn start_with(pki: Pki, edit: impl FnOnce(&mut Value)) -> Fixture {
        let server = block_in_place(|| NatsServer::start(&pki));
        let agent = block_in_place(|| AgentProcess::start_with_settings(&pki, &server.url(), edit));
        let director = NatsClient::connect(
            &server.url(),
            client_tls_config(&pki.server_ca, Some(&pki.director)),
        )
        .await
        .unwrap();
        Fixture {
            pki,
            server,
            agent,
            director,
        }
    }

    fn agent_id(&self) -> &str {
        &self.pki.agent_id
    }

    /// Pings until the agent answers, as the director's `wait_until_ready` does.
    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let answer = client::call(
                &self.director,
                self.agent_id(),
                "ping",
                vec![],
                Duration::from_millis(500),
            )
            .await;
            if let Ok(value) = answer {
                assert_eq!(value, json!("pong"));
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the agent never answered ping\n{}",
                self.agent.log()
            );
        }
    }

    async fn call(&self, method: &str, arguments: Value) -> Result<Value, client::Error> {
        client::call(
            &self.director,
            self.agent_id(),
            method,
            args(arguments),
            TIMEOUT,
        )
        .await
    }

    async fn call_and_wait(&self, method: &str, arguments: Value) -> Result<Value, client::Error> {
        client::call_and_wait(
            &self.director,
            self.agent_id(),
            method,
            args(arguments),
            TIMEOUT,
            POLL,
        )
        .await
    }

    fn base(&self) -> PathBuf {
        self.agent.base_dir()
    }
}

fn args(arguments: Value) -> Vec<Value> {
    match arguments {
        Value::Array(items) => items,
        other => panic!("arguments must be an array: {other}"),
    }
}

fn exception(result: Result<Value, client::Error>) -> String {
    match result {
        Err(client::Error::Exception(message)) => message,
        other => panic!("expected an exception, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_info_and_get_state_answer_over_mutual_tls() {
    let fixture = Fixture::start("agent-state").await;
    fixture.wait_ready().await;

    assert_eq!(
        fixture.call("info", json!([])).await.unwrap(),
        json!({"api_version": 1})
    );
    let state = fixture.call("get_state", json!([])).await.unwrap();
    assert_eq!(state["agent_id"], "agent-state");
    assert_eq!(state["job_state"], "running");
    assert_eq!(state["vm"], json!({"name": "vm-agent-state"}));
    assert_eq!(state["networks"], json!({}));
    assert_eq!(state["job"]["name"], Value::Null);
    assert!(state.get("vitals").is_none(), "{state}");
    assert!(state.get("processes").is_none(), "{state}");

    let full = fixture.call("get_state", json!(["full"])).await.unwrap();
    let vitals = &full["vitals"];
    assert!(vitals["cpu"]["user"].is_string(), "{vitals}");
    assert!(
        vitals["mem"]["kb"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0,
        "{vitals}"
    );
    assert_eq!(vitals["load"].as_array().unwrap().len(), 3, "{vitals}");
    assert!(vitals["disk"]["system"]["percent"].is_string(), "{vitals}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_retired_methods_get_unknown_message() {
    let fixture = Fixture::start("agent-unknown").await;
    fixture.wait_ready().await;
    for method in [
        "configure_networks",
        "prepare_network_change",
        "release_apply_spec",
        "no_such_thing",
    ] {
        assert_eq!(
            exception(fixture.call(method, json!([])).await),
            format!("unknown message {method}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_exceptions_and_the_agent_keeps_serving() {
    let fixture = Fixture::start("agent-malformed").await;
    fixture.wait_ready().await;
    let agent_id = fixture.agent_id().to_owned();

    let reply_to = fixture.director.reply_subject(&agent_id);
    let truncated = format!(r#"{{"method":"ping","reply_to":"{reply_to}","arguments":["#);
    let answer = fixture
        .director
        .send_raw(&agent_id, &reply_to, truncated.into_bytes(), TIMEOUT)
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let message = answer["exception"]["message"].as_str().unwrap();
    assert!(message.starts_with("malformed request: "), "{message}");

    let reply_to = fixture.director.reply_subject(&agent_id);
    let wrong_type = format!(r#"{{"method":["ping"],"reply_to":"{reply_to}","arguments":[]}}"#);
    let answer = fixture
        .director
        .send_raw(&agent_id, &reply_to, wrong_type.into_bytes(), TIMEOUT)
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert!(
        answer["exception"]["message"]
            .as_str()
            .unwrap()
            .contains("field `method`"),
        "{answer}"
    );

    let too_few = exception(fixture.call("get_task", json!([])).await);
    assert_eq!(
        too_few,
        "Action Failed get_task: Not enough arguments, expected 1, got 0"
    );

    assert_eq!(
        fixture.call("ping", json!([])).await.unwrap(),
        json!("pong")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_disk_actions_work_on_the_dummy_platform() {
    let fixture = Fixture::start("agent-disks").await;
    fixture.wait_ready().await;

    let handle = fixture
        .call("add_persistent_disk", json!(["disk-1", "/dev/sdc"]))
        .await
        .unwrap();
    assert_eq!(handle["state"], "running", "{handle}");
    assert!(handle["agent_task_id"].is_string(), "{handle}");
    let done = client::call_and_wait(
        &fixture.director,
        fixture.agent_id(),
        "get_task",
        vec![handle["agent_task_id"].clone()],
        TIMEOUT,
        POLL,
    )
    .await
    .unwrap();
    assert_eq!(done, json!({}));
    let hints =
        std::fs::read_to_string(fixture.base().join("bosh/persistent_disk_hints.json")).unwrap();
    assert!(hints.contains(r#""Path":"/dev/sdc""#), "{hints}");

    assert_eq!(
        fixture
            .call_and_wait("mount_disk", json!(["disk-1"]))
            .await
            .unwrap(),
        json!({})
    );
    assert_eq!(
        fixture.call_and_wait("list_disk", json!([])).await.unwrap(),
        json!(["disk-1"])
    );
    let managed =
        std::fs::read_to_string(fixture.base().join("bosh/managed_disk_settings.json")).unwrap();
    assert_eq!(managed, "disk-1");

    let unmounted = fixture
        .call_and_wait("unmount_disk", json!(["disk-1"]))
        .await
        .unwrap();
    let message = unmounted["message"].as_str().unwrap();
    assert!(
        message.starts_with("Unmounted partition of {ID:disk-1 "),
        "{message}"
    );
    assert_eq!(
        fixture.call_and_wait("list_disk", json!([])).await.unwrap(),
        json!([])
    );
    let again = fixture
        .call_and_wait("unmount_disk", json!(["disk-1"]))
        .await
        .unwrap();
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .starts_with("Partition of {ID:disk-1 "),
        "{again}"
    );

    // Two disks: the second is mounted on the migration target, then migrated onto store.
    fixture
        .call_and_wait(
            "add_persistent_disk",
            json!(["disk-2", {"path": "/dev/sdd"}]),
        )
        .await
        .unwrap();
    fixture
        .call_and_wait("mount_disk", json!(["disk-1"]))
        .await
        .unwrap();
    fixture
        .call_and_wait("mount_disk", json!(["disk-2"]))
        .await
        .unwrap();
    assert_eq!(
        fixture
            .call_and_wait("migrate_disk", json!([]))
            .await
            .unwrap(),
        json!({})
    );
    let migrations =
        std::fs::read_to_string(fixture.base().join("bosh/disk_migrations.json")).unwrap();
    assert!(
        migrations.contains(r#""FromDiskCid":"disk-1""#)
            && migrations.contains(r#""ToDiskCid":"disk-2""#),
        "{migrations}"
    );

    assert_eq!(
        fixture
            .call_and_wait("remove_persistent_disk", json!(["disk-1"]))
            .await
            .unwrap(),
        json!({})
    );

    fixture
        .call_and_wait("add_dynamic_disk", json!(["dyn-1", "/dev/sde"]))
        .await
        .unwrap();
    assert_eq!(
        fixture
            .call("remove_dynamic_disk", json!(["dyn-1"]))
            .await
            .unwrap(),
        json!({})
    );

    // A task that fails reports through get_task with the Go wording.
    let handle = fixture.call("mount_disk", json!(["disk-9"])).await.unwrap();
    let task_id = handle["agent_task_id"].as_str().unwrap().to_owned();
    let failure = exception(fixture.call_and_wait("get_task", json!([task_id])).await);
    assert!(
        failure.starts_with(&format!("Action Failed get_task: Task {task_id} result: ")),
        "{failure}"
    );
    assert!(
        failure.ends_with("Persistent disk with volume id 'disk-9' could not be found"),
        "{failure}"
    );

    assert_eq!(
        exception(fixture.call("get_task", json!(["no-such-task"])).await),
        "Action Failed get_task: Task with id no-such-task could not be found"
    );
    let cancel = exception(fixture.call("cancel_task", json!([task_id])).await);
    assert_eq!(cancel, "Action Failed cancel_task: not supported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_blob_stores_verified_blobs_and_refuses_corrupt_ones() {
    use base64::Engine as _;
    let fixture = Fixture::start("agent-blob").await;
    fixture.wait_ready().await;
    let payload = base64::engine::general_purpose::STANDARD.encode(b"rendered templates");
    let digest = settings::digest::MultiDigest::compute(
        &b"rendered templates"[..],
        &[settings::digest::Algorithm::Sha1],
    )
    .unwrap()
    .to_string();
    let stored = fixture
        .call_and_wait(
            "upload_blob",
            json!([{"blob_id": "blob-1", "checksum": digest, "payload": payload}]),
        )
        .await
        .unwrap();
    assert_eq!(stored, json!("blob-1"));
    let path = fixture.base().join("data/sensitive_blobs/blob-1");
    assert_eq!(std::fs::read(&path).unwrap(), b"rendered templates");

    let wrong = "0000000000000000000000000000000000000000";
    let failure = exception(
        fixture
            .call_and_wait(
                "upload_blob",
                json!([{"blob_id": "blob-2", "checksum": wrong, "payload": payload}]),
            )
            .await,
    );
    assert!(
        failure.ends_with(&format!(
            "Payload corrupted. Checksum mismatch. Expected '{wrong}'"
        )),
        "{failure}"
    );
    assert!(!fixture.base().join("data/sensitive_blobs/blob-2").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_dummy_platform() {
    let fixture = Fixture::start("agent-changes").await;
    fixture.wait_ready().await;

    // ssh setup needs a default IP from the settings' networks.
    let no_ip = exception(
        fixture
            .call(
                "ssh",
                json!(["setup", {"user": "bosh_abc", "public_key": "ssh-ed25519 AAAA op"}]),
            )
            .await,
    );
    assert_eq!(no_ip, "Action Failed ssh: No default ip could be found");
    drop(fixture);

    let fixture = Fixture::start_with(Pki::new("agent-changes2"), |settings| {
        settings["networks"] = json!({"default": {"ip": "10.0.0.5", "netmask": "255.255.255.0", "default": ["dns", "gateway"]}});
    })
    .await;
    fixture.wait_ready().await;
    let state = |name: &str| {
        std::fs::read_to_string(fixture.base().join("bosh").join(name)).unwrap_or_default()
    };
    let setup = fixture
        .call(
            "ssh",
            json!(["setup", {"user": "bosh_abc", "public_key": "ssh-ed25519 AAAA op"}]),
        )
        .await
        .unwrap();
    assert_eq!(
        setup,
        json!({"command": "setup", "status": "success", "ip": "10.0.0.5", "host_public_key": "dummy-public-key"})
    );
    assert!(state("dummy_ssh_users.json").contains("bosh_abc"));
    let cleanup = fixture
        .call("ssh", json!(["cleanup", {"user_regex": "^bosh_"}]))
        .await
        .unwrap();
    assert_eq!(cleanup, json!({"command": "cleanup", "status": "success"}));
    assert!(!state("dummy_ssh_users.json").contains("bosh_abc"));

    let victim = fixture.base().join("data/tmp/logs.tgz");
    std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
    std::fs::write(&victim, b"x").unwrap();
    let removed = fixture.call("remove_file", json!([victim])).await.unwrap();
    assert_eq!(removed, json!(victim));
    assert!(!victim.exists());

    assert_eq!(
        fixture
            .call(
                "delete_arp_entries",
                json!([{"ips": ["10.0.0.9", "10.0.0.10"]}])
            )
            .await
            .unwrap(),
        json!({})
    );
    assert!(state("dummy_arp_flushes.json").contains("10.0.0.10"));

    assert_eq!(
        fixture.call("shutdown", json!([])).await.unwrap(),
        json!("")
    );
    assert!(fixture.base().join("bosh/dummy_shutdown").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_settings_survives_its_own_restart() {
    let mut fixture = Fixture::start("agent-update").await;
    fixture.wait_ready().await;

    // Certificates and disk associations only: no restart.
    fixture
        .call_and_wait("add_persistent_disk", json!(["disk-1", "/dev/sdc"]))
        .await
        .unwrap();
    let plain = fixture
        .call_and_wait(
            "update_settings",
            json!([{"trusted_certs": "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
                    "disk_associations": [{"name": "data", "cid": "disk-1"}]}]),
        )
        .await
        .unwrap();
    assert_eq!(plain, json!("ok"));
    let base = fixture.base();
    assert!(
        std::fs::read_to_string(base.join("bosh/dummy_trusted_certs.pem"))
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(
        std::fs::read_to_string(base.join("bosh/disk_associations.json"))
            .unwrap()
            .contains("data")
    );

    // New mbus URLs: the agent exits 0 after answering, the task is resumed under the same id.
    let new_url = fixture.server.url();
    let handle = fixture
        .call("update_settings", json!([{"mbus": {"urls": [new_url]}}]))
        .await
        .unwrap();
    let task_id = handle["agent_task_id"].as_str().unwrap().to_owned();
    let tasks_file = base.join("bosh/tasks.json");
    let exited = block_in_place(|| wait_until(TIMEOUT, || fixture.agent.exit_status().is_some()));
    assert!(exited, "the agent did not exit\n{}", fixture.agent.log());
    assert_eq!(fixture.agent.exit_status().unwrap().code(), Some(0));
    assert!(
        std::fs::read_to_string(&tasks_file)
            .unwrap()
            .contains(&task_id)
    );
    let update = std::fs::read_to_string(base.join("bosh/update_settings.json")).unwrap();
    assert!(update.contains(&new_url), "{update}");

    block_in_place(|| fixture.agent.restart());
    fixture.wait_ready().await;
    let resumed = fixture
        .call_and_wait("get_task", json!([task_id]))
        .await
        .unwrap();
    assert_eq!(resumed, json!("ok"));
    assert!(
        !std::fs::read_to_string(&tasks_file)
            .unwrap()
            .contains(&task_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_heartbeat_follows_the_first_connection() {
    let pki = Pki::new("agent-heartbeat");
    let server = block_in_place(|| NatsServer::start(&pki));
    let monitor = crate::support::nats::connect_director(&server.url(), &pki)
        .await
        .unwrap();
    let mut heartbeats = monitor
        .subscribe("hm.agent.heartbeat.agent-heartbeat")
        .await
        .unwrap();
    round_trip(&monitor).await;
    let agent = block_in_place(|| AgentProcess::start(&pki, &server.url()));
    let heartbeat = tokio::time::timeout(TIMEOUT, heartbeats.next())
        .await
        .unwrap_or_else(|_| panic!("no heartbeat\n{}", agent.log()))
        .unwrap();
    let heartbeat: Value = serde_json::from_slice(&heartbeat.payload).unwrap();
    assert_eq!(heartbeat["job_state"], "running");
    assert_eq!(heartbeat["job"], Value::Null);
    assert_eq!(heartbeat["index"], Value::Null);
    assert_eq!(heartbeat["number_of_processes"], 0);
    assert!(
        heartbeat["vitals"]["mem"]["percent"].is_string(),
        "{heartbeat}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_with_the_wrong_cn_is_refused() {
    let fixture = Fixture::start_with(Pki::with_wrong_server_cn("agent-wrong-cn"), |_| {}).await;
    let refused = block_in_place(|| {
        wait_until(TIMEOUT, || {
            fixture
                .agent
                .log()
                .contains("CommonName does not match *.nats.bosh-internal")
        })
    });
    assert!(refused, "{}", fixture.agent.log());
    let answer = client::call(
        &fixture.director,
        fixture.agent_id(),
        "ping",
        vec![],
        Duration::from_secs(2),
    )
    .await;
    assert!(
        matches!(answer, Err(client::Error::Timeout { .. })),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_a_client_certificate_does_not_start() {
    let pki = Pki::new("agent-no-cert");
    let server = block_in_place(|| NatsServer::start(&pki));
    let mut agent = block_in_place(|| {
        AgentProcess::start_with_settings(&pki, &server.url(), |settings| {
            settings["env"]["bosh"]["mbus"]["cert"]["certificate"] = json!("");
        })
    });
    let exited = block_in_place(|| wait_until(TIMEOUT, || agent.exit_status().is_some()));
    assert!(exited, "{}", agent.log());
    assert_eq!(agent.exit_status().unwrap().code(), Some(1));
    assert!(
        agent
            .log()
            .contains("the mbus certificate or private key is empty"),
        "{}",
        agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reconnects_after_nats_restarts() {
    let mut fixture = Fixture::start("agent-reconnect").await;
    fixture.wait_ready().await;
    block_in_place(|| fixture.server.restart());
    // The director's own client reconnects too; the agent answers again once both are back.
    fixture.wait_ready().await;
    assert_eq!(
        fixture.call("info", json!([])).await.unwrap(),
        json!({"api_version": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_change_does_not_delay_ping_and_changes_keep_their_order() {
    // The settings file becomes a FIFO: `mount_disk` reloads settings and blocks reading it until
    // the test writes, which holds the instance lane as long as the test wants.
    let fixture = Fixture::start("agent-slow").await;
    fixture.wait_ready().await;
    fixture
        .call_and_wait("add_persistent_disk", json!(["disk-1", "/dev/sdc"]))
        .await
        .unwrap();
    let settings_path = fixture.agent.dir().join("settings.json");
    let settings = std::fs::read(&settings_path).unwrap();
    std::fs::remove_file(&settings_path).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&settings_path)
        .status()
        .unwrap();
    assert!(status.success());

    let slow = fixture.call("mount_disk", json!(["disk-1"])).await.unwrap();
    let slow_id = slow["agent_task_id"].as_str().unwrap().to_owned();
    let victim = fixture.base().join("data/tmp/after-mount");
    std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
    std::fs::write(&victim, b"x").unwrap();
    let change = {
        let director = &fixture.director;
        let agent_id = fixture.agent_id().to_owned();
        let victim = victim.clone();
        async move {
            client::call(
                director,
                &agent_id,
                "remove_file",
                vec![json!(victim)],
                TIMEOUT,
            )
            .await
        }
    };
    tokio::pin!(change);

    // While the lane is held: ping, get_state and get_task answer; the change waits.
    for _ in 0..3 {
        tokio::select! {
            biased;
            answer = &mut change => panic!("remove_file answered before the slow mount finished: {answer:?}"),
            pong = fixture.call("ping", json!([])) => assert_eq!(pong.unwrap(), json!("pong")),
        }
    }
    assert_eq!(
        fixture.call("get_task", json!([slow_id])).await.unwrap()["state"],
        "running"
    );
    assert!(fixture.call("get_state", json!([])).await.is_ok());
    assert!(victim.exists(), "the change ran before the mount finished");

    // Release the lane: the mount finishes, then the change runs.
    let path = settings_path.clone();
    tokio::task::spawn_blocking(move || std::fs::write(path, settings))
        .await
        .unwrap()
        .unwrap();
    let removed = tokio::time::timeout(TIMEOUT, &mut change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed, json!(victim));
    assert_eq!(
        fixture
            .call_and_wait("get_task", json!([slow_id]))
            .await
            .unwrap(),
        json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dummy_nats_status_control_raises_an_alert_for_the_health_monitor() {
    let pki = Pki::new("agent-alert");
    let server = block_in_place(|| NatsServer::start(&pki));
    let monitor = crate::support::nats::connect_director(&server.url(), &pki)
        .await
        .unwrap();
    let mut alerts = monitor
        .subscribe("hm.agent.alert.agent-alert")
        .await
        .unwrap();
    round_trip(&monitor).await;
    let agent = block_in_place(|| AgentProcess::start_dummy_nats(&pki, &server.url()));
    let director = NatsClient::connect(
        &server.url(),
        client_tls_config(&pki.server_ca, Some(&pki.director)),
    )
    .await
    .unwrap();
    let ready =
        block_in_place(|| wait_until(TIMEOUT, || agent.log().contains("connected to NATS")));
    assert!(ready, "{}", agent.log());
    let state = client::call(&director, "agent-alert", "get_state", vec![], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(state["job_state"], "running");
    assert_eq!(state["processes"].as_array().unwrap().len(), 3, "{state}");
    assert_eq!(state["processes"][2]["state"], "failing");

    // The suite's controls are top-level keys of the request, not arguments.
    let reply_to = director.reply_subject("agent-alert");
    let control =
        format!(r#"{{"method":"set_dummy_status","status":"failing","reply_to":"{reply_to}"}}"#);
    let answer = director
        .send_raw("agent-alert", &reply_to, control.into_bytes(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(answer, br#"{"value":"ok"}"#);
    let alert = tokio::time::timeout(TIMEOUT, alerts.next())
        .await
        .unwrap_or_else(|_| panic!("no alert\n{}", agent.log()))
        .unwrap();
    let alert: Value = serde_json::from_slice(&alert.payload).unwrap();
    assert_eq!(
        alert,
        json!({"id": "fake-monit-alert", "severity": 2, "title": "fake-monit-service - failing - start",
               "summary": "fake-monit-description", "created_at": 1_306_076_861})
    );
    let state = client::call(&director, "agent-alert", "get_state", vec![], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(state["job_state"], "failing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_shutdown_tells_the_health_monitor_and_answers_zero() {
    let fixture = Fixture::start("agent-drain").await;
    let monitor = crate::support::nats::connect_director(&fixture.server.url(), &fixture.pki)
        .await
        .unwrap();
    let mut notices = monitor
        .subscribe("hm.agent.shutdown.agent-drain")
        .await
        .unwrap();
    round_trip(&monitor).await;
    fixture.wait_ready().await;

    assert_eq!(
        fixture
            .call_and_wait("drain", json!(["shutdown"]))
            .await
            .unwrap(),
        json!(0)
    );
    let notice = tokio::time::timeout(TIMEOUT, notices.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&notice.payload[..], b"null");

    assert_eq!(
        exception(fixture.call_and_wait("drain", json!(["status"])).await)
            .rsplit(": ")
            .next()
            .unwrap(),
        "Unexpected call with drain type 'status'"
    );
    assert!(
        exception(fixture.call_and_wait("drain", json!(["update"])).await)
            .ends_with("Drain update requires new spec")
    );
    let spec = json!({"deployment": "cf", "job": {"name": "router", "templates": []}});
    assert_eq!(
        fixture
            .call_and_wait("drain", json!(["update", spec]))
            .await
            .unwrap(),
        json!(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mbus_url_is_used_for_failover() {
    // The first URL has nothing listening; the agent must fail over to the second.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("nats://127.0.0.1:{port}")
    };
    let fixture = Fixture::start_with(Pki::new("agent-failover"), |settings| {
        let live = settings["mbus"].clone();
        settings["env"]["bosh"]["mbus"]["urls"] = json!([dead, live]);
        settings["mbus"] = json!("");
    })
    .await;
    fixture.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_sets_passwords_on_the_dummy_platform() {
    let fixture = Fixture::start_with(Pki::new("agent-passwords"), |settings| {
        settings["env"]["bosh"]["password"] = json!("$6$salt$crypted");
        settings["env"]["bosh"]["keep_root_password"] = json!(true);
    })
    .await;
    fixture.wait_ready().await;
    let base = fixture.base();
    assert_eq!(
        std::fs::read_to_string(base.join("bosh/vcap/password")).unwrap(),
        "$6$salt$crypted"
    );
    assert!(
        !base.join("bosh/root/password").exists(),
        "keep_root_password leaves root alone"
    );
}
