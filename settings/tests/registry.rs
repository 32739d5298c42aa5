//! The registry of CPI API v1: user data that names a registry instead of carrying settings makes the
//! HTTP source ask `GET <endpoint>/instances/<id>/settings`, with basic auth from the endpoint URL.

use base64::Engine as _;
use settings::agent_config::HttpSourceOptions;
use settings::source::{HttpMetadataSource, Source, error_chain};

use crate::support::http_server::TestServer;
use crate::support::{retry, settings_json};

const USER_DATA: &str = "/latest/user-data";
const INSTANCE_ID: &str = "/latest/meta-data/instance-id";

/// The registry's answer: the settings document as a JSON string.
fn registry_answer(settings: &str) -> String {
    serde_json::json!({ "settings": settings }).to_string()
}

/// User data naming the registry `registry` with credentials, and `server_name` if any.
fn user_data(registry: &TestServer, server_name: Option<&str>) -> String {
    let endpoint = format!("http://admin:secret@127.0.0.1:{}", registry.port());
    let mut user_data = serde_json::json!({ "registry": { "endpoint": endpoint } });
    if let Some(name) = server_name {
        user_data["server"] = serde_json::json!({ "name": name });
    }
    user_data.to_string()
}

fn source(metadata: &TestServer) -> HttpMetadataSource {
    let options = HttpSourceOptions {
        uri: metadata.url(),
        user_data_path: USER_DATA.into(),
        instance_id_path: INSTANCE_ID.into(),
        ..HttpSourceOptions::default()
    };
    HttpMetadataSource::try_new(&options, retry(2)).unwrap()
}

#[tokio::test]
async fn registry_is_asked_by_server_name_with_basic_auth() {
    let metadata = TestServer::start().await;
    let registry = TestServer::start().await;
    metadata.route(
        "GET",
        USER_DATA,
        [(200, user_data(&registry, Some("vm-1")))],
    );
    registry.route(
        "GET",
        "/instances/vm-1/settings",
        [(200, registry_answer(&settings_json("agent-from-registry")))],
    );

    let settings = source(&metadata).settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-from-registry");
    assert_eq!(
        settings.mbus_url(),
        "nats://agent-from-registry.example:4222"
    );
    let requests = registry.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/instances/vm-1/settings");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:secret")
    );
    assert_eq!(requests[0].header("authorization"), Some(expected.as_str()));
    assert!(
        metadata.requests_to("GET", INSTANCE_ID).is_empty(),
        "server.name identifies the VM; the instance id is not needed"
    );
}

#[tokio::test]
async fn without_server_name_the_instance_id_identifies_the_vm() {
    let metadata = TestServer::start().await;
    let registry = TestServer::start().await;
    metadata.route("GET", USER_DATA, [(200, user_data(&registry, None))]);
    metadata.route("GET", INSTANCE_ID, [(200, "i-123\n")]);
    registry.route(
        "GET",
        "/instances/i-123/settings",
        [(200, registry_answer(&settings_json("agent-i-123")))],
    );

    let settings = source(&metadata).settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-i-123");
    assert_eq!(metadata.requests_to("GET", INSTANCE_ID).len(), 1);
    assert_eq!(
        registry
            .requests_to("GET", "/instances/i-123/settings")
            .len(),
        1
    );
}

#[tokio::test]
async fn without_any_identity_the_registry_is_not_asked() {
    let metadata = TestServer::start().await;
    let registry = TestServer::start().await;
    metadata.route("GET", USER_DATA, [(200, user_data(&registry, None))]);
    metadata.route("GET", INSTANCE_ID, [(200, "  \n")]);

    let err = source(&metadata).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.contains("neither server.name nor an instance id identifies the VM"),
        "{text}"
    );
    assert!(!text.contains("secret"), "the password leaked: {text}");
    assert!(registry.requests().is_empty());
}

#[tokio::test]
async fn registry_answer_with_non_string_settings_is_refused() {
    let metadata = TestServer::start().await;
    let registry = TestServer::start().await;
    metadata.route(
        "GET",
        USER_DATA,
        [(200, user_data(&registry, Some("vm-1")))],
    );
    registry.route(
        "GET",
        "/instances/vm-1/settings",
        [(200, r#"{"settings": {"agent_id": "agent-object"}}"#)],
    );

    let err = source(&metadata).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("parsing registry answer from"), "{text}");
    assert!(text.contains("field `settings`"), "{text}");
    assert!(text.contains("/instances/vm-1/settings"), "{text}");
    assert!(!text.contains("secret"), "the password leaked: {text}");
}

#[tokio::test]
async fn registry_answer_with_invalid_inner_json_is_refused() {
    let metadata = TestServer::start().await;
    let registry = TestServer::start().await;
    metadata.route(
        "GET",
        USER_DATA,
        [(200, user_data(&registry, Some("vm-1")))],
    );
    registry.route(
        "GET",
        "/instances/vm-1/settings",
        [(200, registry_answer(r#"{"agent_id": "agent-cut"#))],
    );

    let err = source(&metadata).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.contains("parsing settings in the registry answer from"),
        "{text}"
    );
    assert!(text.contains("EOF"), "{text}");
    assert!(!text.contains("secret"), "the password leaked: {text}");
}

#[tokio::test]
async fn registry_answer_without_settings_is_not_settings() {
    let metadata = TestServer::start().await;
    let registry = TestServer::start().await;
    metadata.route(
        "GET",
        USER_DATA,
        [(200, user_data(&registry, Some("vm-1")))],
    );
    registry.route("GET", "/instances/vm-1/settings", [(200, "{}")]);

    let err = source(&metadata).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("agent_id is empty"), "{text}");
}

#[tokio::test]
async fn unknown_instance_at_the_registry_is_an_error_with_the_status() {
    let metadata = TestServer::start().await;
    let registry = TestServer::start().await;
    metadata.route(
        "GET",
        USER_DATA,
        [(200, user_data(&registry, Some("vm-gone")))],
    );

    let err = source(&metadata).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(text.contains("admin:<redacted>@"), "{text}");
    assert!(!text.contains("secret"), "the password leaked: {text}");
}

#[tokio::test]
async fn an_instance_id_is_escaped_as_one_path_segment() {
    let server = TestServer::start().await;
    let registry = format!("http://127.0.0.1:{}", server.port());
    server.route(
        "GET",
        "/latest/user-data",
        vec![(
            200,
            format!(r#"{{"registry":{{"endpoint":"{registry}"}}}}"#),
        )],
    );
    server.route(
        "GET",
        "/latest/meta-data/instance-id",
        vec![(200, "i-1/../x y".to_owned())],
    );
    let source = HttpMetadataSource::try_new(
        &HttpSourceOptions {
            uri: server.url(),
            user_data_path: "/latest/user-data".into(),
            instance_id_path: "/latest/meta-data/instance-id".into(),
            ..HttpSourceOptions::default()
        },
        retry(1),
    )
    .unwrap();
    let _ = source.settings().await;
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&"/instances/i-1%2F..%2Fx%20y/settings".to_owned()),
        "{paths:?}"
    );
}
