//! The commands on a deployed deployment, end to end on one machine (the example release on the
//! real `process-cpi`, real agents and `nats-server`, as `deploy.rs`): `logs` of one instance and
//! of all, `cck` finding nothing, then a VM deleted behind the director's back, then resolved;
//! `run-errand` of errand groups (succeeding, failing, kept alive) and of an errand job colocated
//! on a service group.

use thin_director::deploy::cck::{self, ProblemKind};
use thin_director::deploy::errand;
use thin_director::deploy::logs::{self, LogType};
use thin_director::deploy::{inspect, report};

use crate::support::deployment::Fixture;

/// The example with two `hello` instances (one per AZ).
fn two_instances(text: String) -> String {
    text.replace("instances: 3", "instances: 2")
}

/// The example with one `hello` instance that also has the `smoke-test` errand job, and two
/// errand groups running it: one that passes, one told to fail.
fn with_errands(text: String) -> String {
    let errand_group = |name: &str, properties: &str| {
        format!(
            "- name: {name}\n  lifecycle: errand\n  instances: 1\n  azs: [z1]\n  vm_type: default\n  stemcell: default\n  networks:\n  - name: default\n  jobs:\n  - name: smoke-test\n    release: hello\n    properties:\n      {properties}\n"
        )
    };
    let colocated = text.replace("instances: 3", "instances: 1").replace(
        "      greeting: Hello\n",
        "      greeting: Hello\n  - name: smoke-test\n    release: hello\n    properties:\n      message: colocated\n",
    );
    format!(
        "{colocated}{}{}",
        errand_group("smoke", "message: all good"),
        errand_group("smoke-fails", "fails: true"),
    )
}

fn blob_count(fixture: &Fixture) -> usize {
    std::fs::read_dir(fixture.dir.path().join("state/blobs"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_fetched_and_cck_finds_and_resolves_a_vm_deleted_behind_the_directors_back() {
    let fixture = Fixture::new();
    let director = fixture.director().await;
    let manifest = fixture.manifest("manifest.yml", two_instances);
    fixture.deploy(&director, &manifest).await.unwrap();
    let records = director.instances_of("hello").await.unwrap();
    assert_eq!(records.len(), 2);
    fixture.output.take();

    // The logs of one instance: unpacked under <dir>/<group>.<id>/, the blob gone.
    let blobs = blob_count(&fixture);
    let logs_dir = fixture.dir.path().join("logs");
    let fetched = logs::logs(&director, "hello", Some("hello/0"), LogType::Job, &logs_dir)
        .await
        .unwrap();
    let first = &records[0];
    assert_eq!(
        fetched,
        [logs::Fetched {
            instance: format!("hello/{} (0)", first.id),
            dir: logs_dir.join(format!("hello.{}", first.id)),
        }]
    );
    let greeting = std::fs::read_to_string(fetched[0].dir.join("hello/hello.stdout.log")).unwrap();
    assert!(greeting.starts_with("Hello from hello/0"), "{greeting}");
    assert_eq!(blob_count(&fixture), blobs, "the logs blob is deleted");

    // The logs of all, by id too.
    let fetched = logs::logs(&director, "hello", None, LogType::Job, &logs_dir)
        .await
        .unwrap();
    assert_eq!(fetched.len(), 2);
    for (record, logs) in records.iter().zip(&fetched) {
        assert_eq!(logs.dir, logs_dir.join(format!("hello.{}", record.id)));
        let greeting = std::fs::read_to_string(logs.dir.join("hello/hello.stdout.log")).unwrap();
        assert!(
            greeting.starts_with(&format!("Hello from hello/{}", record.index)),
            "{greeting}"
        );
    }
    let by_id = format!("hello/{}", records[1].id);
    let fetched = logs::logs(&director, "hello", Some(&by_id), LogType::Job, &logs_dir)
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(blob_count(&fixture), blobs);
    let err = logs::logs(&director, "hello", Some("hello/7"), LogType::Job, &logs_dir)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no instance matches 'hello/7'");

    // Nothing wrong with a fresh deployment.
    fixture.output.take();
    assert_eq!(cck::cck(&director, "hello", false).await.unwrap(), []);
    let lines = fixture.output.take();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("0 problems"),
        "{lines:#?}"
    );

    // A VM deleted behind the director's back is missing.
    let victim = records[1].clone();
    let victim_vm = victim.vm.clone().unwrap();
    director.cpi.delete_vm(&victim_vm.cid).await.unwrap();
    let problems = cck::cck(&director, "hello", false).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].id, victim.id);
    assert_eq!(
        problems[0].kind,
        ProblemKind::MissingVm {
            vm_cid: victim_vm.cid.clone()
        }
    );
    let lines = fixture.output.take();
    assert!(
        lines.contains(&format!(
            "hello/{} (1): VM with cloud ID '{}' missing",
            victim.id, victim_vm.cid
        )),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("1 problem"),
        "{lines:#?}"
    );

    // Resolving recreates it with its disk; nothing is left to find.
    assert_eq!(cck::cck(&director, "hello", true).await.unwrap(), []);
    let lines = fixture.output.take();
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "Resolving problems: hello/{} (1): missing_vm",
            victim.id
        ))),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("0 problems"),
        "{lines:#?}"
    );
    let after = director.instances_of("hello").await.unwrap();
    assert_eq!(
        after[0].vm, records[0].vm,
        "the other instance is left alone"
    );
    let recreated = &after[1];
    assert_eq!(recreated.id, victim.id);
    assert_ne!(recreated.vm.as_ref().unwrap().cid, victim_vm.cid);
    assert_eq!(recreated.disk, victim.disk, "the disk is kept");
    let rows = inspect::instances(&director, "hello").await.unwrap();
    assert!(rows.iter().all(|row| row.state == "running"), "{rows:?}");

    inspect::delete_deployment(&director, "hello")
        .await
        .unwrap();
    assert_eq!(fixture.vm_count(), 0);
    director.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errands_run_on_vms_of_their_own_and_report_output_and_exit_codes() {
    let fixture = Fixture::new();
    let director = fixture.director().await;
    let manifest = fixture.manifest("manifest.yml", with_errands);
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert_eq!(summary.created, 1, "errand groups are not deployed");
    assert_eq!(fixture.vm_count(), 1);
    fixture.output.take();

    // An errand group: a VM made, updated, run and deleted.
    let runs = errand::run_errand(&director, "hello", "smoke", false)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].instance.starts_with("smoke/"), "{runs:?}");
    assert_eq!(runs[0].exit_code, 0);
    assert_eq!(runs[0].stdout, "all good on smoke/0\n");
    assert_eq!(runs[0].stderr, "");
    assert_eq!(errand::failure("smoke", &runs), None);
    let lines = fixture.output.take();
    for stage in [
        "Creating missing vms: smoke/",
        "Updating instance smoke: smoke/",
        "Running errand: smoke/",
        "Deleting errand instances: smoke/",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(stage)),
            "{stage}: {lines:#?}"
        );
    }
    assert_eq!(fixture.vm_count(), 1, "the errand's VM is deleted");
    let groups: Vec<String> = director
        .instances_of("hello")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.group)
        .collect();
    assert_eq!(groups, ["hello"]);

    // A failing errand is a result with its exit code; kept alive, its VM stays.
    let runs = errand::run_errand(&director, "hello", "smoke-fails", true)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].exit_code, 1);
    assert_eq!(
        runs[0].stderr,
        "smoke test of smoke-fails/0 was told to fail\n"
    );
    let failure = errand::failure("smoke-fails", &runs).unwrap();
    assert_eq!(
        failure,
        format!(
            "errand 'smoke-fails' failed on {} (exit code 1)",
            runs[0].instance
        )
    );
    let table = errand::table(&runs);
    assert!(table.contains("Exit Code  1\n"), "{table}");
    assert_eq!(fixture.vm_count(), 2);

    // A deploy leaves the kept errand VM alone.
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert_eq!(
        (summary.created, summary.updated, summary.deleted),
        (0, 0, 0)
    );
    assert_eq!(fixture.vm_count(), 2);

    // An errand job of a service group runs on its instances.
    let runs = errand::run_errand(&director, "hello", "smoke-test", false)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].instance.starts_with("hello/"), "{runs:?}");
    assert_eq!(
        (runs[0].exit_code, runs[0].stdout.as_str()),
        (0, "colocated on hello/0\n")
    );
    assert_eq!(fixture.vm_count(), 2, "service instances stay");

    let err = errand::run_errand(&director, "hello", "nope", false)
        .await
        .unwrap_err();
    let text = report::chain(&err);
    assert!(text.contains("has no errand 'nope'"), "{text}");

    // The command line: a failing errand fails the command, after printing what it printed (the
    // kept errand instance runs again, then goes); `cck` passes and speaks JSON.
    director.stop().await;
    let (ok, stdout, stderr) =
        thin_director(&fixture, &["run-errand", "hello", "smoke-fails"]).await;
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("Exit Code  1\n"), "{stdout}");
    assert!(
        stdout.contains("Stderr     smoke test of smoke-fails/0 was told to fail\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 errand(s)\n"), "{stdout}");
    assert!(
        stderr.contains("thin-director: errand 'smoke-fails' failed on smoke-fails/"),
        "{stderr}"
    );
    assert_eq!(fixture.vm_count(), 1, "the errand's VM is deleted");
    let (ok, stdout, stderr) = thin_director(&fixture, &["--json", "cck", "hello"]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last, serde_json::json!({"type": "problems", "count": 0}));

    let (ok, stdout, stderr) = thin_director(&fixture, &["delete-deployment", "hello"]).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(fixture.vm_count(), 0);
}

/// Runs the `thin-director` binary on the fixture's state: whether it succeeded, its stdout and
/// its stderr.
async fn thin_director(fixture: &Fixture, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_thin-director"))
        .arg("--state-dir")
        .arg(fixture.dir.path().join("state"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}
