//! The `HTTP` and `InstanceMetadata` sources against a real HTTP server on a loopback port: IMDSv2
//! tokens, custom headers, base64url user data, retries, SSH keys and bad documents.

use std::collections::BTreeMap;

use base64::Engine as _;
use settings::agent_config::{HttpSourceOptions, InstanceMetadataSourceOptions};
use settings::source::{
    HttpMetadataSource, InstanceMetadataSource, Source, SourceChain, error_chain,
};

use crate::support::http_server::TestServer;
use crate::support::{retry, settings_json};

const USER_DATA: &str = "/latest/user-data";
const TOKEN: &str = "/latest/api/token";
const SSH_KEY: &str = "/latest/meta-data/public-keys/0/openssh-key";

/// Options for the AWS-style paths on `server`.
fn options(server: &TestServer) -> HttpSourceOptions {
    HttpSourceOptions {
        uri: server.url(),
        user_data_path: USER_DATA.into(),
        ..HttpSourceOptions::default()
    }
}

fn source(options: &HttpSourceOptions, attempts: u32) -> HttpMetadataSource {
    HttpMetadataSource::try_new(options, retry(attempts)).unwrap()
}

#[tokio::test]
async fn imdsv2_token_is_fetched_with_ttl_and_sent_with_custom_headers() {
    let server = TestServer::start().await;
    server.route("PUT", TOKEN, [(200, "token-abc")]);
    server.route("GET", USER_DATA, [(200, settings_json("agent-v2"))]);
    let options = HttpSourceOptions {
        token_path: TOKEN.into(),
        headers: BTreeMap::from([("X-Tenant".to_owned(), "blue".to_owned())]),
        ..options(&server)
    };

    let settings = source(&options, 1).settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-v2");
    let requests = server.requests();
    let order: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(order, [("PUT", TOKEN), ("GET", USER_DATA)]);
    assert_eq!(
        requests[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("300")
    );
    assert_eq!(
        requests[1].header("x-aws-ec2-metadata-token"),
        Some("token-abc")
    );
    assert_eq!(requests[1].header("x-tenant"), Some("blue"));
}

#[tokio::test]
async fn refused_token_falls_back_to_imdsv1_without_token_header() {
    for status in [403, 404] {
        let server = TestServer::start().await;
        server.route("PUT", TOKEN, [(status, "no tokens here")]);
        server.route("GET", USER_DATA, [(200, settings_json("agent-v1"))]);
        let options = HttpSourceOptions {
            token_path: TOKEN.into(),
            ..options(&server)
        };

        let settings = source(&options, 3).settings().await.unwrap();

        assert_eq!(settings.agent_id, "agent-v1", "token answered {status}");
        assert_eq!(
            server.requests_to("PUT", TOKEN).len(),
            1,
            "{status} is final"
        );
        let gets = server.requests_to("GET", USER_DATA);
        assert_eq!(gets.len(), 1);
        assert_eq!(
            gets[0].header("x-aws-ec2-metadata-token"),
            None,
            "token answered {status}"
        );
    }
}

#[tokio::test]
async fn without_token_path_no_token_is_requested() {
    let server = TestServer::start().await;
    server.route("GET", USER_DATA, [(200, settings_json("agent-plain"))]);

    let settings = source(&options(&server), 1).settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-plain");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn base64url_user_data_is_decoded() {
    let json = r#"{"agent_id":"agent-b64","env":{"bosh":{"password":"~~??>>"}}}"#;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    assert!(
        encoded.contains('-') && encoded.contains('_'),
        "the payload must use the URL-safe alphabet: {encoded}"
    );
    let server = TestServer::start().await;
    server.route("GET", USER_DATA, [(200, encoded)]);

    let settings = source(&options(&server), 1).settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-b64");
    assert_eq!(settings.env.bosh.password, "~~??>>");
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = TestServer::start().await;
    server.route(
        "GET",
        USER_DATA,
        [
            (503, "busy".to_owned()),
            (503, "busy".to_owned()),
            (200, settings_json("agent-late")),
        ],
    );

    let settings = source(&options(&server), 5).settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-late");
    assert_eq!(server.requests_to("GET", USER_DATA).len(), 3);
}

#[tokio::test]
async fn persistent_server_error_fails_after_all_attempts_naming_the_status() {
    let server = TestServer::start().await;
    server.route("GET", USER_DATA, [(500, "broken")]);

    let err = source(&options(&server), 2).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("(2 attempts)"), "{text}");
    assert!(text.contains(USER_DATA), "{text}");
    assert_eq!(server.requests_to("GET", USER_DATA).len(), 2);
}

#[tokio::test]
async fn missing_ssh_key_is_none_after_one_request() {
    let server = TestServer::start().await;
    server.route("GET", SSH_KEY, [(404, "Not Found")]);
    let options = HttpSourceOptions {
        ssh_keys_path: SSH_KEY.into(),
        ..options(&server)
    };

    let key = source(&options, 5).public_ssh_key().await.unwrap();

    assert_eq!(key, None);
    assert_eq!(
        server.requests_to("GET", SSH_KEY).len(),
        1,
        "404 is not retried"
    );
}

#[tokio::test]
async fn ssh_key_is_returned_trimmed_with_the_token() {
    let server = TestServer::start().await;
    server.route("PUT", TOKEN, [(200, "token-key")]);
    server.route("GET", SSH_KEY, [(200, "  ssh-rsa AAAAB3Nza bosh@aws\n")]);
    let options = HttpSourceOptions {
        ssh_keys_path: SSH_KEY.into(),
        token_path: TOKEN.into(),
        ..options(&server)
    };

    let key = source(&options, 1).public_ssh_key().await.unwrap();

    assert_eq!(key.as_deref(), Some("ssh-rsa AAAAB3Nza bosh@aws"));
    let gets = server.requests_to("GET", SSH_KEY);
    assert_eq!(
        gets[0].header("x-aws-ec2-metadata-token"),
        Some("token-key")
    );
}

#[tokio::test]
async fn ssh_key_error_status_is_an_error() {
    let server = TestServer::start().await;
    server.route("GET", SSH_KEY, [(403, "Forbidden")]);
    let options = HttpSourceOptions {
        ssh_keys_path: SSH_KEY.into(),
        ..options(&server)
    };

    let err = source(&options, 3).public_ssh_key().await.unwrap_err();

    assert!(
        error_chain(&err).contains("HTTP 403"),
        "{}",
        error_chain(&err)
    );
    assert_eq!(server.requests_to("GET", SSH_KEY).len(), 1);
}

#[tokio::test]
async fn user_data_without_agent_id_or_registry_is_not_settings() {
    let server = TestServer::start().await;
    server.route(
        "GET",
        USER_DATA,
        [(200, r#"{"vm":{"name":"vm-1"},"ntp":["pool"]}"#)],
    );
    let chain = SourceChain::new(vec![Box::new(source(&options(&server), 1))]);

    let (result, attempts) = chain.settings_with_attempts().await;

    let err = result.unwrap_err();
    assert_eq!(attempts.len(), 1);
    let attempt_error = attempts[0].error.as_deref().unwrap_or_default();
    assert!(
        attempt_error.ends_with("does not provide settings: agent_id is empty"),
        "{attempt_error}"
    );
    assert!(
        attempt_error.starts_with(&format!("HTTP {}{USER_DATA}", server.url())),
        "{attempt_error}"
    );
    assert!(
        err.to_string().contains("agent_id is empty"),
        "{}",
        error_chain(&err)
    );
}

#[tokio::test]
async fn garbage_user_data_is_refused_naming_the_url() {
    let server = TestServer::start().await;
    server.route("GET", USER_DATA, [(200, "<html>captive portal</html>")]);

    let err = source(&options(&server), 3).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("neither JSON nor base64url"), "{text}");
    assert!(
        text.contains(&format!("{}{USER_DATA}", server.url())),
        "{text}"
    );
    assert_eq!(server.requests().len(), 1, "a bad document is not retried");
}

#[test]
fn a_uri_that_is_not_a_url_is_refused() {
    let options = HttpSourceOptions {
        uri: "169.254.169.254".into(),
        ..HttpSourceOptions::default()
    };
    let err = HttpMetadataSource::try_new(&options, retry(1)).unwrap_err();
    assert!(err.to_string().contains("invalid URL"), "{err}");
}

const GCE_SETTINGS: &str = "/computeMetadata/v1/instance/attributes/bosh_settings";

fn instance_metadata(server: &TestServer) -> InstanceMetadataSource {
    let options = InstanceMetadataSourceOptions {
        uri: server.url(),
        headers: BTreeMap::from([("Metadata-Flavor".to_owned(), "Google".to_owned())]),
        settings_path: GCE_SETTINGS.into(),
    };
    InstanceMetadataSource::try_new(&options, retry(3)).unwrap()
}

#[tokio::test]
async fn instance_metadata_gets_raw_settings_with_custom_headers() {
    let server = TestServer::start().await;
    server.route("GET", GCE_SETTINGS, [(200, settings_json("agent-gce"))]);

    let source = instance_metadata(&server);
    let settings = source.settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-gce");
    assert_eq!(settings.mbus_url(), "nats://agent-gce.example:4222");
    let requests = server.requests_to("GET", GCE_SETTINGS);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("metadata-flavor"), Some("Google"));
    assert_eq!(source.public_ssh_key().await.unwrap(), None);
}

#[tokio::test]
async fn instance_metadata_with_a_wrong_type_names_the_field() {
    let server = TestServer::start().await;
    server.route("GET", GCE_SETTINGS, [(200, r#"{"agent_id": 5}"#)]);

    let err = instance_metadata(&server).settings().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("`agent_id`"), "{text}");
    assert!(text.contains(GCE_SETTINGS), "{text}");
    assert_eq!(server.requests().len(), 1, "a bad document is not retried");
}

#[tokio::test]
async fn instance_metadata_not_found_is_an_error_with_the_status() {
    let server = TestServer::start().await;

    let err = instance_metadata(&server).settings().await.unwrap_err();

    assert!(
        error_chain(&err).contains("HTTP 404"),
        "{}",
        error_chain(&err)
    );
}
