//! The CPI runner against fake CPIs: small shell scripts that record every request they read and
//! answer by method.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

/// The answer of the fake CPI's `info`.
const INFO_V3: &str =
    r#"{"result":{"api_version":3,"stemcell_formats":["dummy"]},"error":null,"log":""}"#;

/// A fake CPI in a temp dir: it appends each request to `requests` and runs `body` with `$method`
/// and `$dir` set.
struct Fake {
    dir: tempfile::TempDir,
    executable: PathBuf,
}

impl Fake {
    fn new(body: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let executable = dir.path().join("cpi");
        let script = format!(
            "#!/bin/sh\ndir='{}'\nrequest=$(cat)\nprintf '%s\\n' \"$request\" >> \"$dir/requests\"\nmethod=$(printf '%s' \"$request\" | sed -n 's/^{{\"method\":\"\\([a-z_]*\\)\".*/\\1/p')\n{body}\n",
            dir.path().display()
        );
        std::fs::write(&executable, script).unwrap();
        std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fake { dir, executable }
    }

    /// A fake whose `info` reports v3 and whose other methods run `cases` (sh `case` arms).
    fn with_methods(cases: &str) -> Fake {
        Fake::new(&format!(
            "case \"$method\" in\ninfo) echo '{INFO_V3}' ;;\n{cases}\n*) echo '{{\"result\":null,\"error\":{{\"type\":\"Bosh::Clouds::NotImplemented\",\"message\":\"no\",\"ok_to_retry\":false}},\"log\":\"\"}}' ;;\nesac"
        ))
    }

    fn cpi(&self) -> Cpi {
        let mut config = Config::new(&self.executable, "director-uuid-1");
        config.log = Some(self.path("cpi.log"));
        config.install_dirs = Some(("/opt/cpi/packages".into(), "/opt/cpi/jobs".into()));
        Cpi::new(config)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("requests"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn methods(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r["method"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn error_json(kind: &str, message: &str, ok_to_retry: bool) -> String {
    json!({"result": null, "error": {"type": kind, "message": message, "ok_to_retry": ok_to_retry}, "log": ""})
        .to_string()
}

fn create_vm_request() -> CreateVm<'static> {
    CreateVm {
        agent_id: "agent-1",
        stemcell_cid: "sc-1",
        cloud_properties: json!({"cpu": 1}),
        networks: json!({"default": {"type": "manual", "ip": "10.0.0.5"}}),
        disk_cids: vec![],
        env: json!({"bosh": {"group": "g"}}),
        stemcell_api_version: Some(3),
    }
}

#[tokio::test]
async fn info_is_asked_once_and_later_calls_carry_the_capped_version_and_context() {
    let fake = Fake::with_methods(
        r#"create_vm) echo '{"result":["vm-1",{"default":{}}],"error":null,"log":""}' ;;
has_vm) echo '{"result":true,"error":null,"log":""}' ;;"#,
    );
    let cpi = fake.cpi();
    assert_eq!(
        cpi.info().await.unwrap(),
        &Info {
            stemcell_formats: vec!["dummy".into()],
            api_version: 3
        }
    );
    assert_eq!(cpi.create_vm(&create_vm_request()).await.unwrap(), "vm-1");
    assert!(cpi.has_vm("vm-1").await.unwrap());
    assert_eq!(fake.methods(), ["info", "create_vm", "has_vm"]);
    let requests = fake.requests();
    assert!(requests[0].get("api_version").is_none(), "{}", requests[0]);
    assert_eq!(requests[0]["arguments"], json!([]));
    let create = &requests[1];
    assert_eq!(create["api_version"], json!(MAX_API_VERSION));
    assert_eq!(create["context"]["director_uuid"], "director-uuid-1");
    assert_eq!(create["context"]["vm"]["stemcell"]["api_version"], 3);
    let request_id = create["context"]["request_id"].as_str().unwrap();
    assert!(
        request_id.len() == 10
            && request_id.starts_with("cpi-")
            && request_id[4..].bytes().all(|b| b.is_ascii_digit()),
        "{request_id}"
    );
    assert_eq!(
        create["arguments"],
        json!(["agent-1", "sc-1", {"cpu": 1}, {"default": {"type": "manual", "ip": "10.0.0.5"}}, [], {"bosh": {"group": "g"}}])
    );
}

#[tokio::test]
async fn the_environment_is_scrubbed_to_path_tmpdir_home_and_the_install_dirs() {
    let fake = Fake::with_methods(
        r#"has_vm) env > "$dir/env"; echo '{"result":false,"error":null,"log":""}' ;;"#,
    );
    assert!(!fake.cpi().has_vm("vm-1").await.unwrap());
    let env = std::fs::read_to_string(fake.path("env")).unwrap();
    let mut keys: Vec<&str> = env
        .lines()
        .filter_map(|line| line.split_once('=').map(|(k, _)| k))
        // What sh itself sets.
        .filter(|k| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k))
        .collect();
    keys.sort_unstable();
    keys.retain(|k| !["HOME", "TMPDIR"].contains(k));
    assert_eq!(
        keys,
        ["BOSH_JOBS_DIR", "BOSH_PACKAGES_DIR", "PATH"],
        "{env}"
    );
    assert!(env.contains(&format!("PATH={CPI_PATH}\n")), "{env}");
    assert!(
        env.contains("BOSH_PACKAGES_DIR=/opt/cpi/packages\n"),
        "{env}"
    );
}

#[tokio::test]
async fn create_vm_is_retried_while_the_cpi_says_ok_to_retry() {
    // Fails twice with ok_to_retry, then succeeds.
    let fake = Fake::with_methods(&format!(
        r#"create_vm) n=$(grep -c '"method":"create_vm"' "$dir/requests")
  if [ "$n" -le 2 ]; then echo '{}'; else echo '{{"result":["vm-3",{{}}],"error":null,"log":""}}'; fi ;;"#,
        error_json("Bosh::Clouds::VMCreationFailed", "no capacity", true)
    ));
    assert_eq!(
        fake.cpi().create_vm(&create_vm_request()).await.unwrap(),
        "vm-3"
    );
    assert_eq!(
        fake.methods(),
        ["info", "create_vm", "create_vm", "create_vm"]
    );

    // Never retried without ok_to_retry; given up after MAX_VM_CREATE_TRIES with it.
    for (ok_to_retry, calls) in [(false, 1), (true, MAX_VM_CREATE_TRIES as usize)] {
        let fake = Fake::with_methods(&format!(
            "create_vm) echo '{}' ;;",
            error_json("Bosh::Clouds::VMCreationFailed", "quota", ok_to_retry)
        ));
        let err = fake
            .cpi()
            .create_vm(&create_vm_request())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Some(ErrorKind::VmCreationFailed));
        let creates = fake.methods().iter().filter(|m| *m == "create_vm").count();
        assert_eq!(creates, calls, "ok_to_retry {ok_to_retry}");
        let text = err.to_string();
        assert!(
            text.starts_with("CPI error 'Bosh::Clouds::VMCreationFailed' with message 'quota' in 'create_vm' CPI method (CPI request ID: 'cpi-"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_directors_tolerated_errors_are_not_errors() {
    let fake = Fake::with_methods(&format!(
        "delete_vm) echo '{}' ;;\nset_vm_metadata) echo '{}' ;;\nset_disk_metadata) echo '{}' ;;\ndetach_disk) echo '{}' ;;\ndelete_disk) echo '{}' ;;",
        error_json("Bosh::Clouds::VMNotFound", "gone", false),
        error_json(
            "InvalidCall",
            "Method is not known, got 'set_vm_metadata'",
            false
        ),
        error_json(
            "Bosh::Clouds::CloudError",
            "Invalid Method: set_disk_metadata",
            false
        ),
        error_json("Bosh::Clouds::DiskNotAttached", "not attached", true),
        error_json("Bosh::Clouds::DiskNotFound", "no disk", true),
    ));
    let cpi = fake.cpi();
    cpi.delete_vm("vm-1").await.unwrap();
    cpi.set_vm_metadata("vm-1", &json!({"name": "web/0"}))
        .await
        .unwrap();
    cpi.set_disk_metadata("disk-1", &json!({})).await.unwrap();
    cpi.detach_disk("vm-1", "disk-1").await.unwrap();
    let err = cpi.delete_disk("disk-1").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::DiskNotFound));
    // An unknown type is its own kind, and fatal.
    let odd = CloudError {
        kind: "Something::Else".into(),
        message: "?".into(),
        ok_to_retry: true,
    };
    assert_eq!(ErrorKind::of(&odd), ErrorKind::Unknown);
}

#[tokio::test]
async fn attach_disk_needs_a_hint_and_results_must_have_their_shape() {
    let fake = Fake::with_methods(
        r#"attach_disk) if grep -q '"disk-2"' "$dir/requests"; then echo '{"result":{"path":"/dev/sdc"},"error":null,"log":""}'; else echo '{"result":"","error":null,"log":""}'; fi ;;
create_disk) echo '{"result":42,"error":null,"log":""}' ;;"#,
    );
    let cpi = fake.cpi();
    let err = cpi.attach_disk("vm-1", "disk-1").await.unwrap_err();
    assert_eq!(err.to_string(), "No disk_hint");
    assert_eq!(
        cpi.attach_disk("vm-1", "disk-2").await.unwrap(),
        json!({"path": "/dev/sdc"})
    );
    let err = cpi.create_disk(1024, &json!({}), None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "CPI 'create_disk' result 42 is not a cid string"
    );
}

#[tokio::test]
async fn malformed_output_is_an_invalid_response_and_stderr_goes_to_the_log() {
    let fake = Fake::with_methods(
        r#"has_vm) echo 'warming up' >&2; echo 'not json' ;;
reboot_vm) echo '{"result":null,"error":{"type":"X","message":"m"},"log":"tried"}' ;;
delete_stemcell) echo 'deleting' >&2; printf '%s\n' '{"result":null,"error":null,"log":"line one\nline two"}' ;;"#,
    );
    let cpi = fake.cpi();
    let err = cpi.has_vm("vm-1").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "CPI 'has_vm' returned an invalid response: response is not JSON (expected ident at line 1 column 2); stdout: \"not json\\n\""
    );
    let err = cpi.reboot_vm("vm-1").await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidResponse { ref reason, .. } if reason == "response has no `error.ok_to_retry`"),
        "{err}"
    );
    cpi.delete_stemcell("sc-1").await.unwrap();
    let log = std::fs::read_to_string(fake.path("cpi.log")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .map(|line| line.split_once("] ").unwrap().1)
        .collect();
    assert_eq!(
        lines,
        [
            "has_vm stderr: warming up",
            "delete_stemcell stderr: deleting",
            "delete_stemcell log: line one",
            "delete_stemcell log: line two",
        ]
    );
}

#[tokio::test]
async fn a_hung_cpi_is_killed_at_its_deadline() {
    let fake =
        Fake::with_methods(r#"has_vm) echo $$ > "$dir/pid"; echo 'stuck' >&2; sleep 600 ;;"#);
    let mut config = Config::new(&fake.executable, "d");
    config.timeout = Duration::from_millis(500);
    let cpi = Cpi::new(config);
    let err = cpi.has_vm("vm-1").await.unwrap_err();
    assert!(
        matches!(&err, Error::Exec { source: exec::Error::TimedOut { stderr, .. }, .. } if stderr == b"stuck\n"),
        "{err:?}"
    );
    let pid = std::fs::read_to_string(fake.path("pid")).unwrap();
    let pid: i32 = pid.trim().parse().unwrap();
    // The script and its sleep are gone (kill(pid, 0) fails).
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
        "pid {pid} still alive"
    );
}

#[tokio::test]
async fn info_must_report_a_usable_version_and_the_cpi_must_be_executable() {
    let cases = [
        (
            r#"echo '{"result":{"stemcell_formats":[]},"error":null,"log":""}'"#,
            "CPI must report api_version via info",
        ),
        (
            r#"echo '{"result":{"api_version":1},"error":null,"log":""}'"#,
            "CPI api_version 1 is not supported: minimum required version is 2",
        ),
    ];
    for (body, expected) in cases {
        let fake = Fake::new(body);
        let err = fake.cpi().has_vm("vm-1").await.unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
    let fake = Fake::new("true");
    std::fs::set_permissions(&fake.executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fake.cpi().info().await.unwrap_err();
    assert!(
        matches!(err, Error::NonExecutable(ref p) if p == &fake.executable),
        "{err}"
    );
    assert!(fake.requests().is_empty());
    let missing = Cpi::new(Config::new(Path::new("/nonexistent/cpi"), "d"));
    assert_eq!(
        missing.info().await.unwrap_err().to_string(),
        "CPI '/nonexistent/cpi' is not an executable file"
    );
}
