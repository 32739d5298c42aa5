//! The HTTPS mbus of `bosh create-env` (reference/bosh-agent.md §2.8, director-cpi.md §5.2) against
//! the real `bosh-agent`: `agent::client::HttpsClient` talks to it as bosh-cli does (requests, tasks,
//! blobs), and raw requests check what bosh-cli never sends (bad credentials, wrong methods, missing
//! blobs, malformed JSON).

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::client::{self, HttpsClient};
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::task::block_in_place;

use crate::support::agent_process::AgentProcess;
use crate::support::pki::Pki;

/// A bound on each wait in these tests; none is expected to come near it.
const TIMEOUT: Duration = Duration::from_secs(20);
/// How often the agent is pinged while it starts.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Agents started before one gets its port: another process may take the free port first.
const START_ATTEMPTS: usize = 3;

const USER: &str = "mbus-user";
const PASSWORD: &str = "mbus-pass";

/// A status, headers and a whole body.
#[derive(Debug)]
struct RawResponse {
    parts: hyper::http::response::Parts,
    body: Bytes,
}

/// `Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A running agent with an HTTPS mbus on a loopback port, and a client of it.
struct HttpsAgent {
    agent: AgentProcess,
    client: HttpsClient,
    /// `127.0.0.1:<port>`.
    address: String,
    pki: Pki,
}

impl HttpsAgent {
    /// Starts the agent with `mbus` = `https://mbus-user:mbus-pass@127.0.0.1:<free port>` and the
    /// test server certificate (SAN IP 127.0.0.1) as `env.bosh.mbus.cert`, and waits until it
    /// answers `ping`.
    async fn start() -> HttpsAgent {
        let pki = Pki::new("agent-https");
        let mut attempt = 1;
        loop {
            let port = free_port();
            let url = format!("https://{USER}:{PASSWORD}@127.0.0.1:{port}");
            let mut agent = block_in_place(|| {
                AgentProcess::start_with_settings(&pki, &url, |settings| {
                    let cert = &mut settings["env"]["bosh"]["mbus"]["cert"];
                    cert["certificate"] = json!(pki.server.certificate);
                    cert["private_key"] = json!(pki.server.private_key);
                })
            });
            let client = HttpsClient::try_new(&url, &pki.server_ca).unwrap();
            match wait_for_pong(&mut agent, &client).await {
                Ok(()) => {
                    return HttpsAgent {
                        agent,
                        client,
                        address: format!("127.0.0.1:{port}"),
                        pki,
                    };
                }
                Err(log) if attempt < START_ATTEMPTS && log.contains("listening on") => {
                    attempt += 1;
                }
                Err(log) => panic!("the agent did not answer ping on port {port}\n{log}"),
            }
        }
    }

    /// Sends one raw request, independent of `HttpsClient`: `authorization` is the whole header
    /// value, or none.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> RawResponse {
        let tls = agent::tls::client_config(&self.pki.server_ca, None).unwrap();
        let tcp = tokio::net::TcpStream::connect(&self.address).await.unwrap();
        let server_name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(server_name, tcp)
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.address);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let exchange = async {
            let response = sender.send_request(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            RawResponse { parts, body }
        };
        tokio::time::timeout(TIMEOUT, async {
            tokio::select! {
                response = exchange => response,
                ended = connection => panic!("the connection ended first: {ended:?}"),
            }
        })
        .await
        .unwrap()
    }

    async fn call(&self, method: &str, arguments: Vec<Value>) -> Result<Value, client::Error> {
        client::call(&self.client, "agent-https", method, arguments, TIMEOUT).await
    }
}

/// Pings until the agent answers `pong`; `Err(log)` if it exits or `TIMEOUT` passes.
async fn wait_for_pong(agent: &mut AgentProcess, client: &HttpsClient) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ping = client::call(client, "agent-https", "ping", vec![], POLL_INTERVAL * 40);
        match ping.await {
            Ok(value) => {
                assert_eq!(value, json!("pong"), "{}", agent.log());
                return Ok(());
            }
            Err(_) if agent.exit_status().is_none() && Instant::now() < deadline => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(err) => return Err(format!("{err:#}\n{}", agent.log())),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_ping_gets_pong_and_get_state_names_the_agent() {
    let https = HttpsAgent::start().await;

    assert_eq!(https.call("ping", vec![]).await.unwrap(), json!("pong"));
    let state = https.call("get_state", vec![]).await.unwrap();

    assert_eq!(state["agent_id"], "agent-https", "{}", https.agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_unknown_method_gets_unknown_message() {
    let https = HttpsAgent::start().await;

    let err = https.call("configure_networks", vec![]).await.unwrap_err();

    assert!(
        matches!(&err, client::Error::Exception(message) if message == "unknown message configure_networks"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_async_action_answers_a_task_that_finishes() {
    let https = HttpsAgent::start().await;
    let arguments = vec![json!("disk-1"), json!("/dev/sdc")];

    let handle = https
        .call("add_persistent_disk", arguments.clone())
        .await
        .unwrap();
    assert_eq!(handle["state"], "running", "{handle}");
    let value = client::call_and_wait(
        &https.client,
        "agent-https",
        "add_persistent_disk",
        arguments,
        TIMEOUT,
        POLL_INTERVAL,
    )
    .await
    .unwrap();

    assert_eq!(value, json!({}), "{}", https.agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_wrong_or_missing_credentials_get_401_with_www_authenticate() {
    let https = HttpsAgent::start().await;
    let ping = br#"{"method":"ping","arguments":[]}"#.to_vec();
    let wrong_password = basic(USER, "wrong-pass");
    let wrong_user = basic("other-user", PASSWORD);

    let refused = [
        https
            .raw("POST", "/agent", Some(&wrong_password), ping.clone())
            .await,
        https.raw("POST", "/agent", None, ping.clone()).await,
        https
            .raw("GET", "/blobs/ab/blob-1", Some(&wrong_user), vec![])
            .await,
        https
            .raw(
                "POST",
                "/agent",
                Some(&basic(USER, PASSWORD).to_lowercase()),
                ping.clone(),
            )
            .await,
    ];

    for response in refused {
        assert_eq!(response.parts.status, 401, "{response:?}");
        assert_eq!(
            response.parts.headers["www-authenticate"], r#"Basic realm="""#,
            "{response:?}"
        );
    }
    // The right credentials on the same request pass, over HTTP/1.1.
    let right = https
        .raw("POST", "/agent", Some(&basic(USER, PASSWORD)), ping)
        .await;
    assert_eq!(right.parts.status, 200);
    assert_eq!(right.parts.version, hyper::Version::HTTP_11);
    assert_eq!(&right.body[..], br#"{"value":"pong"}"#);
    // Neither the refused nor the right credentials reach the log.
    let log = https.agent.log();
    assert!(log.contains("unauthorized https mbus request"), "{log}");
    for secret in [
        PASSWORD,
        "wrong-pass",
        &wrong_password,
        &basic(USER, PASSWORD),
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_agent_route_takes_only_post_and_others_are_404() {
    let https = HttpsAgent::start().await;
    let authorization = basic(USER, PASSWORD);

    for (method, path) in [
        ("GET", "/agent"),
        ("PUT", "/agent"),
        ("POST", "/agent/"),
        ("POST", "/nothing"),
        ("GET", "/blobs"),
        ("DELETE", "/blobs/ab/blob-1"),
    ] {
        let response = https.raw(method, path, Some(&authorization), vec![]).await;
        assert_eq!(response.parts.status, 404, "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_blob_put_is_stored_with_mode_0640_and_read_back() {
    let https = HttpsAgent::start().await;
    // More than one streaming chunk, and every byte value.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    let put = https
        .raw(
            "PUT",
            "/blobs/ab/blob-1",
            Some(&basic(USER, PASSWORD)),
            bytes.clone(),
        )
        .await;
    assert_eq!(put.parts.status, 201, "{put:?}\n{}", https.agent.log());
    let fetched = https.client.get_blob("blob-1").await.unwrap();

    assert!(fetched == bytes, "the blob came back different");
    let path = https.agent.base_dir().join("data/blobs/blob-1");
    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(metadata.permissions().mode() & 0o777, 0o640);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // The client's own upload replaces it, and nothing but the blob is left in the directory.
    https
        .client
        .put_blob("blob-1", b"second".to_vec())
        .await
        .unwrap();
    assert_eq!(https.client.get_blob("blob-1").await.unwrap(), b"second");
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("blob-1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_missing_blob_is_404() {
    let https = HttpsAgent::start().await;

    let response = https
        .raw(
            "GET",
            "/blobs/ab/no-such-blob",
            Some(&basic(USER, PASSWORD)),
            vec![],
        )
        .await;
    let err = https.client.get_blob("no-such-blob").await.unwrap_err();

    assert_eq!(response.parts.status, 404);
    assert!(
        matches!(&err, client::Error::BadResponse { message, .. } if message.contains("404")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_blob_id_that_leaves_the_blob_dir_is_refused() {
    let https = HttpsAgent::start().await;

    // `x%2F..` decodes to `x/..`: the last segment is `..`.
    let response = https
        .raw(
            "PUT",
            "/blobs/ab/x%2F..",
            Some(&basic(USER, PASSWORD)),
            b"escape".to_vec(),
        )
        .await;

    assert_eq!(response.parts.status, 400, "{response:?}");
    let text = String::from_utf8_lossy(&response.body);
    assert!(text.contains("blob id '..'"), "{text}");
    let blobs = https.agent.base_dir().join("data/blobs");
    let stored = std::fs::read_dir(&blobs).map_or(0, |entries| entries.count());
    assert_eq!(stored, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_malformed_json_gets_500_with_an_exception() {
    let https = HttpsAgent::start().await;

    let (status, body) = https
        .client
        .send_raw(br#"{"method":"ping","arguments":["#.to_vec(), TIMEOUT)
        .await
        .unwrap();

    // Go answers 500 (`mbus/https_handler.go`); the body says why.
    assert_eq!(status, 500);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let message = body["exception"]["message"].as_str().unwrap();
    assert!(message.starts_with("malformed request: "), "{message}");
    // The agent goes on serving.
    assert_eq!(https.call("ping", vec![]).await.unwrap(), json!("pong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_carries_every_action_of_the_message_bus_issue() {
    use base64::Engine as _;
    let https = HttpsAgent::start().await;
    let wait = |method: &'static str, arguments: Vec<Value>| {
        client::call_and_wait(
            &https.client,
            "agent-https",
            method,
            arguments,
            TIMEOUT,
            POLL_INTERVAL,
        )
    };
    let base = https.agent.base_dir();

    assert_eq!(
        https.call("info", vec![]).await.unwrap(),
        json!({"api_version": 1})
    );
    let full = https.call("get_state", vec![json!("full")]).await.unwrap();
    assert!(full["vitals"]["mem"]["kb"].is_string(), "{full}");

    wait(
        "add_persistent_disk",
        vec![json!("disk-1"), json!({"path": "/dev/sdc"})],
    )
    .await
    .unwrap();
    assert_eq!(
        wait("mount_disk", vec![json!("disk-1")]).await.unwrap(),
        json!({})
    );
    // bosh-cli speaks no `protocol`, so `list_disk` is synchronous, as in Go for protocol < 3.
    assert_eq!(
        https.call("list_disk", vec![]).await.unwrap(),
        json!(["disk-1"])
    );
    let unmounted = wait("unmount_disk", vec![json!("disk-1")]).await.unwrap();
    assert!(
        unmounted["message"]
            .as_str()
            .unwrap()
            .starts_with("Unmounted partition of {ID:disk-1 ")
    );
    wait(
        "add_persistent_disk",
        vec![json!("disk-2"), json!("/dev/sdd")],
    )
    .await
    .unwrap();
    wait("mount_disk", vec![json!("disk-1")]).await.unwrap();
    wait("mount_disk", vec![json!("disk-2")]).await.unwrap();
    assert_eq!(wait("migrate_disk", vec![]).await.unwrap(), json!({}));
    assert_eq!(
        wait("remove_persistent_disk", vec![json!("disk-1")])
            .await
            .unwrap(),
        json!({})
    );
    assert_eq!(
        wait("add_dynamic_disk", vec![json!("dyn-1"), json!("/dev/sde")])
            .await
            .unwrap(),
        json!({})
    );
    assert_eq!(
        https
            .call("remove_dynamic_disk", vec![json!("dyn-1")])
            .await
            .unwrap(),
        json!({})
    );

    let digest = settings::digest::MultiDigest::compute(
        &b"templates"[..],
        &[settings::digest::Algorithm::Sha256],
    )
    .unwrap()
    .to_string();
    let payload = base64::engine::general_purpose::STANDARD.encode(b"templates");
    let blob = wait(
        "upload_blob",
        vec![json!({"blob_id": "b-1", "checksum": digest, "payload": payload})],
    )
    .await
    .unwrap();
    assert_eq!(blob, json!("b-1"));
    assert_eq!(
        std::fs::read(base.join("data/sensitive_blobs/b-1")).unwrap(),
        b"templates"
    );

    let update = wait(
        "update_settings",
        vec![json!({"trusted_certs": "", "disk_associations": []})],
    )
    .await
    .unwrap();
    assert_eq!(update, json!("ok"));
    let cleanup = https
        .call(
            "ssh",
            vec![json!("cleanup"), json!({"user_regex": "^bosh_"})],
        )
        .await
        .unwrap();
    assert_eq!(cleanup["status"], "success");
    assert_eq!(
        https
            .call("delete_arp_entries", vec![json!({"ips": ["10.0.0.9"]})])
            .await
            .unwrap(),
        json!({})
    );
    let victim = base.join("data/tmp/victim");
    std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
    std::fs::write(&victim, b"x").unwrap();
    https
        .call("remove_file", vec![json!(victim)])
        .await
        .unwrap();
    assert!(!victim.exists());
    let handle = https
        .call("mount_disk", vec![json!("disk-9")])
        .await
        .unwrap();
    let task_id = handle["agent_task_id"].as_str().unwrap().to_owned();
    let cancel = https.call("cancel_task", vec![json!(task_id)]).await;
    assert!(
        matches!(cancel, Err(client::Error::Exception(ref m)) if m == "Action Failed cancel_task: not supported"),
        "{cancel:?}"
    );
    assert_eq!(https.call("shutdown", vec![]).await.unwrap(), json!(""));
    assert!(base.join("bosh/dummy_shutdown").exists());
}
