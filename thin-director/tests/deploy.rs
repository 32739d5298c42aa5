//! Deploys end to end on one machine: the example release (`examples/hello`) made into a tarball,
//! deployed by the director library with the real `process-cpi`, real `bosh-agent` processes, a
//! real `nats-server` and Ruby's ERB; then redeployed with changes, broken on purpose, and deleted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thin_director::deploy::{self, inspect};

use crate::support::deployment::Fixture;

/// A second group, so that a change to one group leaves the other alone; both groups `serial:
/// false`, so that they are updated at the same time.
fn with_second_group(text: String) -> String {
    let text = text.replace(
        "update_watch_time: 1000-30000",
        "update_watch_time: 1000-30000\n  serial: false",
    );
    format!(
        "{text}- name: other\n  instances: 1\n  azs: [z1]\n  vm_type: default\n  stemcell: default\n  networks:\n  - name: default\n  jobs:\n  - name: hello\n    release: hello\n    properties:\n      greeting: Hi\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_deploys_converges_updates_in_order_migrates_disks_and_is_deleted() {
    let fixture = Fixture::new();
    let director = fixture.director().await;

    // An invalid manifest changes nothing.
    let invalid = fixture.manifest("invalid.yml", |text| {
        text.replace("vm_type: default", "vm_type: huge")
    });
    let err = fixture.deploy(&director, &invalid).await.unwrap_err();
    assert!(
        err.to_string().contains("instance_groups[0].vm_type"),
        "{err}"
    );
    assert!(fixture.vm_files("agent.json").is_empty());

    // A missing release tarball changes nothing either.
    let missing = fixture.manifest("missing.yml", |text| {
        text.replace("hello-1.tgz", "nope-1.tgz")
    });
    let err = fixture.deploy(&director, &missing).await.unwrap_err();
    let text = thin_director::deploy::report::chain(&err);
    assert!(text.contains("release 'hello'"), "{text}");
    assert!(fixture.vm_files("agent.json").is_empty());
    fixture.output.take();

    // First deploy: 4 instances in two groups, one compilation, canary first.
    let manifest = fixture.manifest("manifest.yml", with_second_group);
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert_eq!(
        (summary.created, summary.updated, summary.deleted),
        (4, 4, 0)
    );
    let lines = fixture.output.take();
    let updates: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("Updating instance"))
        .collect();
    assert!(updates[0].contains("(0) (canary)"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Compiling packages: compilation-hello/")),
        "{lines:#?}"
    );
    let rows = inspect::instances(&director, "hello").await.unwrap();
    assert_eq!(rows.len(), 4);
    for row in &rows {
        assert_eq!(row.state, "running", "{row:?}");
        assert_eq!(
            row.processes,
            [("hello".to_owned(), "running".to_owned())],
            "{row:?}"
        );
    }
    let greetings = fixture.vm_files("sys/log/hello/hello.stdout.log");
    assert_eq!(
        greetings
            .iter()
            .filter(|g| g.starts_with("Hello from hello/"))
            .count(),
        3,
        "{greetings:?}"
    );
    assert_eq!(
        greetings
            .iter()
            .filter(|g| g.starts_with("Hi from other/0"))
            .count(),
        1,
        "{greetings:?}"
    );

    // A job process killed is restarted by its agent's supervisor.
    let pids = fixture.vm_files("sys/run/hello/hello.pid");
    let victim: i32 = pids[0].trim().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = fixture.vm_files("sys/run/hello/hello.pid");
        let restarted = now.len() == pids.len() && !now.contains(&pids[0]);
        let rows = inspect::instances(&director, "hello").await.unwrap();
        if restarted && rows.iter().all(|row| row.state == "running") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not restarted: {now:?} {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The same manifest again touches nothing.
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert_eq!(
        (summary.created, summary.updated, summary.deleted),
        (0, 0, 0)
    );
    fixture.output.take();

    // A changed property of one group updates only that group: canary, then AZ by AZ.
    let changed = fixture.manifest("changed.yml", |text| {
        with_second_group(text.replacen("greeting: Hello", "greeting: Bonjour", 1))
    });
    let summary = fixture.deploy(&director, &changed).await.unwrap();
    assert_eq!(summary.updated, 3);
    let lines = fixture.output.take();
    let updates: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("Updating instance"))
        .collect();
    assert_eq!(updates.len(), 3, "{lines:#?}");
    assert!(
        updates
            .iter()
            .all(|l| l.starts_with("Updating instance hello:")),
        "{lines:#?}"
    );
    assert!(updates[0].contains("(0) (canary)"), "{lines:#?}");
    let greetings = fixture.vm_files("sys/log/hello/hello.stdout.log");
    assert_eq!(
        greetings
            .iter()
            .filter(|g| g.contains("Bonjour from hello/"))
            .count(),
        3,
        "{greetings:?}"
    );

    // A bigger disk: a new disk, the data migrated (the dummy platform records it), the old gone.
    let bigger = fixture.manifest("bigger.yml", |text| {
        with_second_group(
            text.replacen("greeting: Hello", "greeting: Bonjour", 1)
                .replace("persistent_disk: 1024", "persistent_disk: 2048"),
        )
    });
    fixture.deploy(&director, &bigger).await.unwrap();
    let migrations = fixture.vm_files("bosh/disk_migrations.json");
    assert_eq!(migrations.len(), 3, "{migrations:?}");
    let starts = fixture.vm_files("store/hello/starts");
    // The data written before the migration is still there: every hello instance counted its
    // three deploys (one more start for the process killed above); `other` started once.
    let counts: Vec<u32> = starts.iter().map(|s| s.trim().parse().unwrap()).collect();
    assert_eq!(counts.iter().filter(|n| **n >= 3).count(), 3, "{starts:?}");

    // A failing pre-start stops the deploy naming the instance; fixing it converges.
    let failing = fixture.manifest("failing.yml", |text| {
        with_second_group(text.replace(
            "greeting: Hello",
            "greeting: Hello\n      pre_start_fails: true",
        ))
    });
    let err = fixture.deploy(&director, &failing).await.unwrap_err();
    let text = thin_director::deploy::report::chain(&err);
    assert!(text.starts_with("hello/"), "{text}");
    assert!(text.contains("pre-start"), "{text}");
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert!(summary.updated >= 1, "{summary:?}");
    let rows = inspect::instances(&director, "hello").await.unwrap();
    assert!(rows.iter().all(|row| row.state == "running"), "{rows:?}");

    // Recreating an instance gives it a new VM with the same disk, and leaves the others alone.
    let before = inspect::instances(&director, "hello").await.unwrap();
    let summary = deploy::recreate(&director, "hello", "hello/1")
        .await
        .unwrap();
    assert_eq!((summary.created, summary.updated), (1, 1), "{summary:?}");
    let after = inspect::instances(&director, "hello").await.unwrap();
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.instance, new.instance);
        assert_eq!(
            old.vm_cid != new.vm_cid,
            old.instance.starts_with("hello/") && old.index == 1
        );
        assert_eq!(new.state, "running", "{new:?}");
    }

    // Deleting the deployment leaves no VM and no disk.
    assert_eq!(
        inspect::delete_deployment(&director, "hello")
            .await
            .unwrap(),
        4
    );
    let vms = std::fs::read_dir(fixture.dir.path().join("state/process-cpi/vms"))
        .unwrap()
        .count();
    assert_eq!(vms, 0);
    director.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_stemcell_is_given_to_the_cpi_once_and_deploys_use_it() {
    let fixture = Fixture::new();
    let director = fixture.director().await;
    let tarball = stemcell_tarball(fixture.dir.path());
    let key = deploy::upload_stemcell(&director, &tarball).await.unwrap();
    assert_eq!(key, "ubuntu-jammy/1");
    // The CPI got the extracted image, and a second upload is a no-op.
    let stemcells_dir = fixture.dir.path().join("state/process-cpi/stemcells");
    let records: Vec<String> = std::fs::read_dir(&stemcells_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let image = fixture
        .dir
        .path()
        .join("state/stemcells/ubuntu-jammy-1/image");
    assert!(
        records[0].contains(&image.display().to_string()),
        "{}",
        records[0]
    );
    assert_eq!(std::fs::read(&image).unwrap(), b"an image");
    deploy::upload_stemcell(&director, &tarball).await.unwrap();
    assert_eq!(std::fs::read_dir(&stemcells_dir).unwrap().count(), 1);

    // A deploy of the same os and version uses it (stemcell api_version 3 in its records).
    let manifest = fixture.manifest("manifest.yml", |text| {
        text.replace("instances: 3", "instances: 1")
    });
    fixture.output.take();
    fixture.deploy(&director, &manifest).await.unwrap();
    let lines = fixture.output.take();
    assert!(
        !lines.iter().any(|l| l.starts_with("Uploading stemcell")),
        "{lines:#?}"
    );
    let recorded = director.state.lock().await.get().stemcells["ubuntu-jammy/1"].clone();
    assert_eq!(recorded.api_version, Some(3));
    inspect::delete_deployment(&director, "hello")
        .await
        .unwrap();
    director.stop().await;
}

/// A stemcell tarball for `ubuntu-jammy/1` (api_version 3) in `dir`.
fn stemcell_tarball(dir: &Path) -> PathBuf {
    let tarball = dir.join("stemcell.tgz");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(&tarball).unwrap(),
        flate2::Compression::fast(),
    ));
    let manifest = b"name: bosh-process-ubuntu-jammy\nversion: '1'\noperating_system: ubuntu-jammy\napi_version: 3\ncloud_properties: {}\n";
    for (name, bytes) in [("stemcell.MF", &manifest[..]), ("image", b"an image")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, bytes).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    tarball
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cpi_stops_the_deploy_with_its_error_and_the_next_deploy_converges() {
    let fixture = Fixture::new();
    // A first start writes the process CPI's config (with this director's NATS URL).
    fixture.director().await.stop().await;
    let state = fixture.dir.path().join("state");
    let marker = fixture.dir.path().join("fail-create-vm");
    std::fs::write(&marker, "").unwrap();
    // The process CPI behind a wrapper that fails create_vm while the marker exists.
    let wrapper = fixture.dir.path().join("flaky-cpi");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nrequest=$(cat)\ncase \"$request\" in\n  *'\"method\":\"create_vm\"'*) if [ -e '{marker}' ]; then echo '{{\"result\":null,\"error\":{{\"type\":\"Bosh::Clouds::CloudError\",\"message\":\"the IaaS is down\",\"ok_to_retry\":false}},\"log\":\"\"}}'; exit 0; fi ;;\nesac\nprintf '%s' \"$request\" | exec '{cpi}' --config '{config}'\n",
            marker = marker.display(),
            cpi = env!("CARGO_BIN_EXE_process-cpi"),
            config = state.join("process-cpi/cpi.json").display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let director = fixture
        .director_with(|config| {
            config.cpi = thin_director::deploy::director::CpiChoice::External {
                executable: wrapper.clone(),
                args: vec![],
            };
        })
        .await;
    let manifest = fixture.manifest("manifest.yml", |text| text);
    // Another CPI than the process CPI needs the stemcell uploaded.
    let err = fixture.deploy(&director, &manifest).await.unwrap_err();
    assert!(err.to_string().contains("upload-stemcell"), "{err}");
    deploy::upload_stemcell(&director, &stemcell_tarball(fixture.dir.path()))
        .await
        .unwrap();

    let err = fixture.deploy(&director, &manifest).await.unwrap_err();
    let text = thin_director::deploy::report::chain(&err);
    assert!(
        text.contains("CPI error 'Bosh::Clouds::CloudError' with message 'the IaaS is down' in 'create_vm' CPI method"),
        "{text}"
    );
    assert_eq!(fixture.vm_count(), 0, "no VM was made");
    let records = director.instances_of("hello").await.unwrap_or_default();
    assert!(records.iter().all(|r| r.vm.is_none()), "{records:?}");

    // The IaaS is back: the same deploy converges.
    std::fs::remove_file(&marker).unwrap();
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert_eq!(summary.created, 3, "{summary:?}");
    let rows = inspect::instances(&director, "hello").await.unwrap();
    assert!(rows.iter().all(|row| row.state == "running"), "{rows:?}");
    inspect::delete_deployment(&director, "hello")
        .await
        .unwrap();
    director.stop().await;
}
