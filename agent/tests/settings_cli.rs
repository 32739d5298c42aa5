//! `bosh-agent settings` run as a real process against each kind of source: a settings file, an HTTP
//! metadata service and an InstanceMetadata service on a loopback server, a registry behind user data,
//! a config drive and a CD-ROM (directories on the dummy platform), and sources that fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;

use crate::http_server::TestServer;

const BOSH_AGENT: &str = env!("CARGO_BIN_EXE_bosh-agent");

fn shared_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../settings/tests/fixtures/shared")
        .join(name)
}

fn write_agent_json(dir: &Path, sources: serde_json::Value) -> PathBuf {
    let path = dir.join("agent.json");
    let config = serde_json::json!({"Infrastructure": {"Settings": {"Sources": sources}}});
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

fn settings_command(config: &Path, base: &Path) -> Output {
    Command::new(BOSH_AGENT)
        .args([
            "settings",
            "-P",
            "dummy",
            "--attempts",
            "1",
            "--retry-delay-ms",
            "0",
            "-C",
        ])
        .arg(config)
        .arg("-b")
        .arg(base)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn file_source_answers_prints_redacted_settings_and_writes_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([{"Type": "File", "SettingsPath": shared_fixture("settings-sample.json")}]),
    );
    let output = settings_command(&config, &dir.path().join("base"));
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains(": answered"), "{text}");
    assert!(text.contains("agent_id:  agent-xxxxx"), "{text}");
    assert!(
        text.contains("nats://nats:<redacted>@yy.yy.yyy:4222"),
        "{text}"
    );
    assert!(!text.contains("nats-password"), "a secret leaked: {text}");
    assert!(
        !text.contains("--MBUS PRIVATE KEY--"),
        "a secret leaked: {text}"
    );
    let cache = std::fs::read(dir.path().join("base/bosh/settings.json")).unwrap();
    let cached: serde_json::Value = serde_json::from_slice(&cache).unwrap();
    assert_eq!(cached["agent_id"], "agent-xxxxx");
}

#[test]
fn each_failing_source_is_listed_with_its_reason_before_the_one_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("drive");
    std::fs::create_dir_all(drive.join("openstack/latest")).unwrap();
    std::fs::copy(
        shared_fixture("settings-sample.json"),
        drive.join("openstack/latest/user_data"),
    )
    .unwrap();
    let missing = dir.path().join("missing.json");
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([
            {"Type": "HTTP", "URI": "http://127.0.0.1:1", "UserDataPath": "/latest/user-data"},
            {"Type": "File", "SettingsPath": missing},
            {"Type": "ConfigDrive", "DiskPaths": ["/dev/disk/by-label/config-2", drive],
             "UserDataPath": "openstack/latest/user_data", "MetaDataPath": "openstack/latest/meta_data.json"}
        ]),
    );
    let output = settings_command(&config, &dir.path().join("base"));
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let attempts = &text[text.find("attempts:").expect(&text)..];
    let http = attempts
        .find("HTTP http://127.0.0.1:1/latest/user-data: failed: requesting")
        .expect(&text);
    let file = attempts
        .find(&format!(
            "File {}: failed: reading {}",
            missing.display(),
            missing.display()
        ))
        .expect(&text);
    let drive_line = attempts
        .find("ConfigDrive /dev/disk/by-label/config-2")
        .expect(&text);
    assert!(http < file && file < drive_line, "{text}");
    assert!(text.contains("answered by: ConfigDrive"), "{text}");
}

#[test]
fn no_source_and_no_cache_exits_non_zero_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([{"Type": "File", "SettingsPath": dir.path().join("nope.json")}]),
    );
    let output = settings_command(&config, &dir.path().join("base"));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("failed: reading"), "{text}");
    assert!(text.contains("there is no cached settings file"), "{text}");
    assert!(!dir.path().join("base/bosh/settings.json").exists());
}

#[test]
fn cache_fallback_is_shown_but_still_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let settings_path = dir.path().join("settings.json");
    std::fs::copy(shared_fixture("settings-sample.json"), &settings_path).unwrap();
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([{"Type": "File", "SettingsPath": settings_path}]),
    );
    let base = dir.path().join("base");
    assert!(settings_command(&config, &base).status.success());
    std::fs::write(&settings_path, b"{\"agent_id\": ").unwrap();
    let output = settings_command(&config, &base);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("failed: parsing"), "{text}");
    assert!(
        text.contains("the agent would boot from the cached settings"),
        "{text}"
    );
    assert!(text.contains("agent_id:  agent-xxxxx"), "{text}");
}

#[test]
fn a_bad_agent_json_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.json");
    std::fs::write(
        &config,
        br#"{"Infrastructure":{"Settings":{"Sources":[{"Type":"HTTP","URI":7}]}}}"#,
    )
    .unwrap();
    let output = settings_command(&config, &dir.path().join("base"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("Infrastructure.Settings.Sources[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("URI"), "{stderr}");
}

#[test]
fn version_flag_prints_a_dev_build_label() {
    let output = Command::new(BOSH_AGENT).arg("-v").output().unwrap();
    assert!(output.status.success());
    assert!(stdout(&output).contains("[DEV BUILD]"));
}

/// Runs `bosh-agent settings` off the runtime's threads, so a test server keeps answering.
async fn settings_command_async(config: PathBuf, base: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || settings_command(&config, &base))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_source_answers_with_an_imdsv2_token_and_the_ssh_key() {
    let server = TestServer::start().await;
    server.route("PUT", "/latest/api/token", [(200, "token-1")]);
    let settings = std::fs::read(shared_fixture("settings-sample.json")).unwrap();
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&settings);
    server.route("GET", "/latest/user-data", [(200, encoded)]);
    server.route(
        "GET",
        "/latest/meta-data/public-keys/0/openssh-key",
        [(200, "ssh-rsa AAAAB3 op@host\n")],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([{"Type": "HTTP", "URI": server.url(),
            "UserDataPath": "/latest/user-data", "TokenPath": "/latest/api/token",
            "SSHKeysPath": "/latest/meta-data/public-keys/0/openssh-key"}]),
    );
    let output = settings_command_async(config, dir.path().join("base")).await;
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("/latest/user-data: answered"), "{text}");
    assert!(text.contains("agent_id:  agent-xxxxx"), "{text}");
    assert!(text.contains("ssh key:   ssh-rsa ..."), "{text}");
    let user_data = server.requests_to("GET", "/latest/user-data");
    assert_eq!(
        user_data[0].header("x-aws-ec2-metadata-token"),
        Some("token-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_metadata_source_answers_with_its_headers() {
    let server = TestServer::start().await;
    let settings = std::fs::read(shared_fixture("settings-sample.json")).unwrap();
    server.route(
        "GET",
        "/computeMetadata/v1/instance/attributes/bosh_settings",
        [(200, settings)],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([{"Type": "InstanceMetadata", "URI": server.url(),
            "SettingsPath": "/computeMetadata/v1/instance/attributes/bosh_settings",
            "Headers": {"Metadata-Flavor": "Google"}}]),
    );
    let output = settings_command_async(config, dir.path().join("base")).await;
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("InstanceMetadata http://127.0.0.1:"),
        "{text}"
    );
    let requests = server.requests();
    assert_eq!(requests[0].header("metadata-flavor"), Some("Google"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_named_in_user_data_answers() {
    let server = TestServer::start().await;
    let registry = format!("http://admin:admin-secret@127.0.0.1:{}", server.port());
    server.route(
        "GET",
        "/latest/user-data",
        [(
            200,
            format!(
                r#"{{"server":{{"name":"vm-384sd4"}},"registry":{{"endpoint":"{registry}"}}}}"#
            ),
        )],
    );
    let settings = std::fs::read_to_string(shared_fixture("settings-sample.json")).unwrap();
    let answer = serde_json::json!({"settings": settings}).to_string();
    server.route("GET", "/instances/vm-384sd4/settings", [(200, answer)]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([{"Type": "HTTP", "URI": server.url(), "UserDataPath": "/latest/user-data"}]),
    );
    let output = settings_command_async(config, dir.path().join("base")).await;
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("agent_id:  agent-xxxxx"), "{text}");
    assert!(!text.contains("admin-secret"), "a secret leaked: {text}");
    let registry_requests = server.requests_to("GET", "/instances/vm-384sd4/settings");
    assert_eq!(registry_requests.len(), 1);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:admin-secret")
    );
    assert_eq!(
        registry_requests[0].header("authorization"),
        Some(expected.as_str())
    );
}

#[test]
fn cdrom_source_answers_from_the_dummy_cdrom() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir_all(base.join("bosh/dummy-cdrom")).unwrap();
    std::fs::copy(
        shared_fixture("settings-sample.json"),
        base.join("bosh/dummy-cdrom/env"),
    )
    .unwrap();
    let config = write_agent_json(
        dir.path(),
        serde_json::json!([{"Type": "CDROM", "FileName": "env"}]),
    );
    let output = settings_command(&config, &base);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("CDROM env: answered"), "{text}");
}
