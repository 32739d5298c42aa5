//! The director on services it does not run, end to end on one machine: an existing `nats-server`
//! (started here with mutual TLS, `verify` on, its own server CA and a client CA that is not the
//! director's) and an external DAV blobstore (a standalone instance of the director's own HTTPS
//! blobstore with credentials of its own), named in a director config file. The example release is
//! deployed on the real `process-cpi` and `bosh-agent`s, its logs fetched, and it is deleted; and a
//! director config with a bad field is refused by the command line before anything happens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use thin_director::blobstore::{BlobStore, Server};
use thin_director::deploy::inspect;
use thin_director::deploy::logs::{self, LogType};
use thin_director::director_config::DirectorConfig;
use thin_director::pki::{Ca, CertKey};

use crate::support::deployment::Fixture;

/// A `nats-server` this test started (killed when dropped).
struct ExistingNats {
    child: std::process::Child,
    url: String,
}

impl Drop for ExistingNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nats-server on a free loopback port with `server` as its certificate, accepting any
/// client certificate `client_ca` signed (`verify: true`, no per-user permissions).
async fn start_nats(dir: &Path, server: &CertKey, client_ca: &str) -> ExistingNats {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("server.pem"), &server.certificate).unwrap();
    std::fs::write(dir.join("server-key.pem"), &server.private_key).unwrap();
    std::fs::write(dir.join("client-ca.pem"), client_ca).unwrap();
    let log = dir.join("nats-server.log");
    let config = format!(
        "host: \"127.0.0.1\"\nport: -1\nlog_file: \"{log}\"\ntls {{\n  cert_file: \"{dir}/server.pem\"\n  key_file: \"{dir}/server-key.pem\"\n  ca_file: \"{dir}/client-ca.pem\"\n  verify: true\n  timeout: 30\n}}\n",
        log = log.display(),
        dir = dir.display(),
    );
    std::fs::write(dir.join("nats-server.conf"), config).unwrap();
    let child = std::process::Command::new(thin_director::nats::DEFAULT_BINARY)
        .arg("-c")
        .arg(dir.join("nats-server.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut nats = ExistingNats {
        child,
        url: String::new(),
    };
    let marker = "Listening for client connections on 127.0.0.1:";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Server is ready") {
            let rest = &text[text.find(marker).unwrap() + marker.len()..];
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            nats.url = format!("nats://127.0.0.1:{port}");
            return nats;
        }
        assert!(
            nats.child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline,
            "nats-server did not start:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pem(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The blobs in a store directory (no temporary files).
fn blobs_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_uses_an_existing_nats_and_an_external_dav_blobstore_and_starts_neither() {
    let fixture = Fixture::new();
    let pki = fixture.dir.path().join("pki");
    let server_ca = Ca::load_or_create(&pki.join("server-ca")).unwrap();
    let client_ca = Ca::load_or_create(&pki.join("client-ca")).unwrap();
    let nats = start_nats(
        &fixture.dir.path().join("existing-nats"),
        &server_ca
            .nats_server(&["127.0.0.1".parse().unwrap()])
            .unwrap(),
        client_ca.certificate(),
    )
    .await;

    let dav_ca = Ca::load_or_create(&pki.join("dav-ca")).unwrap();
    let dav_dir = fixture.dir.path().join("dav-store");
    let dav = Server::start(
        BlobStore::open(&dav_dir).unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        &dav_ca.server(&["127.0.0.1".parse().unwrap()]).unwrap(),
    )
    .unwrap();
    dav.users().add("director", "dav-secret");

    let director_cert = client_ca.director().unwrap();
    let config_file = fixture.dir.path().join("director.yml");
    let document = json!({
        "nats": {
            "url": nats.url,
            "tls": {
                "ca": server_ca.certificate(),
                "client_ca": {
                    "certificate": pem(&pki, "client-ca/ca.pem"),
                    "private_key": pem(&pki, "client-ca/ca-key.pem"),
                },
                "director": {
                    "certificate": director_cert.certificate,
                    "private_key": director_cert.private_key,
                },
            },
        },
        "blobstore": {
            "provider": "dav",
            "options": {
                "endpoint": dav.endpoint(),
                "user": "director",
                "password": "dav-secret",
                "tls": {"cert": {"ca": dav_ca.certificate()}},
            },
        },
    });
    std::fs::write(&config_file, document.to_string()).unwrap();
    let services = DirectorConfig::load(&config_file).unwrap();
    let director = fixture
        .director_with(|config| config.services = services)
        .await;

    let manifest = fixture.manifest("manifest.yml", |text| {
        text.replace("instances: 3", "instances: 2")
    });
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert_eq!((summary.created, summary.updated), (2, 2), "{summary:?}");
    let rows = inspect::instances(&director, "hello").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row.state == "running"), "{rows:?}");

    // Agents were given the existing NATS, certificates from its client CA, and the external
    // blobstore.
    let settings: Vec<Value> = fixture
        .vm_files("agent-settings.json")
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect();
    assert_eq!(settings.len(), 2);
    for settings in &settings {
        assert_eq!(settings["mbus"], nats.url, "{settings}");
        assert_eq!(
            settings["env"]["bosh"]["mbus"]["cert"]["ca"],
            server_ca.certificate()
        );
        assert_eq!(
            settings["env"]["bosh"]["blobstores"],
            json!([document["blobstore"]])
        );
    }

    // The director ran neither service, nor made a CA of its own.
    let state = fixture.dir.path().join("state");
    for own in ["nats", "blobs", "ca"] {
        assert!(!state.join(own).exists(), "{own} was made");
    }
    // The job, the compiled package and both instances' templates are in the external store.
    let blobs = blobs_in(&dav_dir);
    assert!(blobs.len() >= 4, "{blobs:?}");

    // Logs come back through it, and their blob goes.
    let logs_dir = fixture.dir.path().join("logs");
    let fetched = logs::logs(&director, "hello", Some("hello/0"), LogType::Job, &logs_dir)
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    let greeting = std::fs::read_to_string(fetched[0].dir.join("hello/hello.stdout.log")).unwrap();
    assert!(greeting.starts_with("Hello from hello/0"), "{greeting}");
    assert_eq!(blobs_in(&dav_dir), blobs, "the logs blob is deleted");
    assert_eq!(
        std::fs::read_dir(state.join("downloads")).unwrap().count(),
        0,
        "the download is removed"
    );

    // Agents keep the services they were given: a director without the config refuses to run
    // on this state (and starts nothing); with it, it runs again.
    director.stop().await;
    let err = fixture.try_director_with(|_| ()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the agents of this state were given the NATS at {} and the blobstore at {}, but this director would use the director's own NATS and the director's own blobstore: give it the director config they were deployed with",
            nats.url,
            dav.endpoint()
        )
    );
    assert!(!state.join("nats").exists());
    let services = DirectorConfig::load(&config_file).unwrap();
    let director = fixture
        .director_with(|config| config.services = services)
        .await;
    inspect::delete_deployment(&director, "hello")
        .await
        .unwrap();
    assert_eq!(fixture.vm_count(), 0);
    director.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_config_with_a_bad_field_is_refused_before_anything_happens() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&dir.path().join("ca")).unwrap();
    let director = ca.director().unwrap();
    let stranger = ca.agent("stranger").unwrap();
    let config = dir.path().join("director.yml");
    let key_indented = stranger.private_key.replace('\n', "\n        ");
    let cert_indented = director.certificate.replace('\n', "\n        ");
    let ca_indented = ca.certificate().replace('\n', "\n      ");
    let ca_key = std::fs::read_to_string(dir.path().join("ca/ca-key.pem"))
        .unwrap()
        .replace('\n', "\n        ");
    std::fs::write(
        &config,
        format!(
            "nats:\n  url: nats://127.0.0.1:4222\n  tls:\n    ca: |\n      {ca_indented}\n    client_ca:\n      certificate: |\n        {ca_cert}\n      private_key: |\n        {ca_key}\n    director:\n      certificate: |\n        {cert_indented}\n      private_key: |\n        {key_indented}\n",
            ca_cert = ca.certificate().replace('\n', "\n        "),
        ),
    )
    .unwrap();
    let state: PathBuf = dir.path().join("state");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_thin-director"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--director-config")
        .arg(&config)
        .args(["instances", "hello"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert_eq!(
        stderr,
        format!(
            "thin-director: the director config {}: nats.tls.director.private_key: does not match nats.tls.director.certificate\n",
            config.display()
        )
    );
    assert!(!state.exists(), "nothing was made");
}
