//! A real release driven through the real agent end to end, as the director drives it
//! (reference/director-cpi.md §2.5–2.7): `bosh-agent -P dummy -M monit` against a real
//! `nats-server`, with its blobstore a DAV server with basic auth that this test serves (the
//! director's blobstore). The release comes from `support::release`: packages compiled for real
//! (`cc` builds `hello`), jobs rendered for the agent's base dir, apply specs with the director's
//! keys.
//!
//! One test walks the whole life of an instance: compile, prepare, apply, pre-start, start, running,
//! post-start, drain, stop, an update that drops a job and a package, an errand, logs. The other
//! sends bad input and checks that nothing changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::client::{self, NatsClient};
use serde_json::{Value, json};
use tokio::task::block_in_place;

use crate::dav::DavServer;
use crate::support::agent_process::AgentProcess;
use crate::support::nats::{NatsServer, client_tls_config};
use crate::support::pki::Pki;
use crate::support::release::{self, BlobRef, Instance, Release};

const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);
const DAV_USER: &str = "agent";
const DAV_PASSWORD: &str = "dav-password";

struct Fixture {
    _server: NatsServer,
    agent: AgentProcess,
    director: NatsClient,
    dav: DavServer,
    agent_id: String,
    work: tempfile::TempDir,
}

impl Fixture {
    async fn start(agent_id: &str) -> Fixture {
        let dav = DavServer::start(Some((DAV_USER, DAV_PASSWORD))).await;
        let pki = Pki::new(agent_id);
        let server = block_in_place(|| NatsServer::start(&pki));
        let endpoint = dav.url();
        let agent = block_in_place(|| {
            AgentProcess::start_with_supervisor_and_settings(
                &pki,
                &server.url(),
                "monit",
                |settings| {
                    settings["blobstore"] = json!({"provider": "dav", "options": {
                        "endpoint": endpoint, "user": DAV_USER, "password": DAV_PASSWORD,
                    }});
                    settings["networks"] = networks();
                },
            )
        });
        let director = NatsClient::connect(
            &server.url(),
            client_tls_config(&pki.server_ca, Some(&pki.director)),
        )
        .await
        .unwrap();
        let fixture = Fixture {
            _server: server,
            agent,
            director,
            dav,
            agent_id: agent_id.to_owned(),
            work: tempfile::tempdir().unwrap(),
        };
        fixture
            .agent
            .wait_for_pong(&fixture.director, agent_id, TIMEOUT)
            .await;
        fixture
    }

    /// Calls `method` and waits for its task, if it is one.
    async fn call(&self, method: &str, arguments: Value) -> Result<Value, client::Error> {
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

    /// Calls `method`, which must succeed.
    async fn ok(&self, method: &str, arguments: Value) -> Value {
        self.call(method, arguments)
            .await
            .unwrap_or_else(|err| panic!("{method}: {err}\n{}", self.agent.log()))
    }

    /// Calls `method`, which must fail, and returns the exception's message.
    async fn exception(&self, method: &str, arguments: Value) -> String {
        match self.call(method, arguments).await {
            Err(client::Error::Exception(message)) => message,
            other => panic!("{method}: expected an exception, got {other:?}"),
        }
    }

    /// Stores the file at `path` in the DAV blobstore as `id`, as the director uploads blobs.
    fn put_blob(&self, id: &str, path: &Path) -> BlobRef {
        let bytes = std::fs::read(path).unwrap();
        let sha1 = release::sha1_of(&bytes);
        self.dav.insert(&dav_path(id), bytes);
        BlobRef {
            blobstore_id: id.to_owned(),
            sha1,
        }
    }

    /// What the DAV blobstore holds as `id`.
    fn blob(&self, id: &str) -> Option<Vec<u8>> {
        self.dav.blob(&dav_path(id))
    }

    /// How many PUTs the blobstore got (uploads by the agent).
    fn uploads(&self) -> usize {
        self.dav
            .requests()
            .iter()
            .filter(|request| request.method == "PUT")
            .count()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn base(&self) -> PathBuf {
        self.agent.base_dir()
    }

    /// Compiles `package` of `release` with `deps` and checks the blob the agent uploaded.
    async fn compile(&self, release: &Release, name: &str, deps: Value) -> BlobRef {
        let package = release.package(name);
        let source = package.tarball(&self.path(&format!("{name}-source.tgz")));
        let source = self.put_blob(&format!("{name}-source"), &source.path);
        let value = self
            .ok(
                "compile_package",
                json!([
                    source.blobstore_id,
                    source.sha1,
                    name,
                    package.fingerprint(),
                    deps
                ]),
            )
            .await;
        let compiled = BlobRef {
            blobstore_id: value["result"]["blobstore_id"].as_str().unwrap().to_owned(),
            sha1: value["result"]["sha1"].as_str().unwrap().to_owned(),
        };
        // The director requires a UUID for the compiled blob, and the digest is of what was stored.
        uuid::Uuid::parse_str(&compiled.blobstore_id).unwrap();
        let stored = self
            .blob(&compiled.blobstore_id)
            .expect("the compiled blob");
        assert_eq!(release::sha1_of(&stored), compiled.sha1);
        compiled
    }

    /// The compiled package `blob`, unpacked into a new directory.
    fn unpack(&self, blob: &BlobRef) -> PathBuf {
        let tarball = self.path(&format!("{}.tgz", blob.blobstore_id));
        std::fs::write(&tarball, self.blob(&blob.blobstore_id).unwrap()).unwrap();
        let dir = self.path(&blob.blobstore_id);
        jobs::archive::extract(&tarball, &dir, &Default::default()).unwrap();
        dir
    }

    /// `get_state` until `job_state` is `wanted`.
    async fn wait_for_state(&self, wanted: &str) -> Value {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let state = self.ok("get_state", json!([])).await;
            if state["job_state"] == wanted {
                return state;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {wanted}: {state}\n{}",
                self.agent.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The settings' networks; the apply spec names the same ones.
fn networks() -> Value {
    json!({"default": {
        "type": "manual", "ip": "10.0.16.5", "netmask": "255.255.255.0", "gateway": "10.0.16.1",
        "default": ["dns", "gateway"], "dns": ["10.0.0.2"],
    }})
}

fn instance() -> Instance {
    Instance {
        deployment: "hello-deployment".to_owned(),
        group: "app".to_owned(),
        id: "5a0d3f4e-95d4-4a43-a07c-5c1c3d0b2f6b".to_owned(),
        index: 0,
        az: "z1".to_owned(),
        networks: networks(),
    }
}

/// Where the DAV blobstore keeps blob `id`: under the first byte of its sha1 (davcli's layout).
fn dav_path(id: &str) -> String {
    format!("/{}/{id}", &release::sha1_of(id.as_bytes())[..2])
}

/// The names in `dir`, sorted; none when it does not exist.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|err| panic!("{}: {err}", path.as_ref().display()))
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn is_alive(pid: &str) -> bool {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_compiled_deployed_run_updated_and_torn_down() {
    let fixture = Fixture::start("agent-release").await;
    let release = Release::hello();
    let base = fixture.base();

    // Compilation: `hello` from C, then `greeter` with `hello` as its dependency.
    let hello = fixture.compile(&release, "hello", json!({})).await;
    let hello_version = release.package("hello").fingerprint();
    let compiled_hello = fixture.unpack(&hello);
    assert_eq!(
        read(compiled_hello.join("build-info")),
        format!("hello {hello_version}\n")
    );
    let deps = json!({"hello": {
        "name": "hello", "version": hello_version, "sha1": hello.sha1, "blobstore_id": hello.blobstore_id,
    }});
    let greeter = fixture.compile(&release, "greeter", deps).await;
    let compiled_greeter = fixture.unpack(&greeter);
    assert_eq!(
        read(compiled_greeter.join("compiled-with")),
        "Hello, compile time! (compiled from C)\n",
        "the packaging script ran the dependency"
    );
    assert!(
        names_in(&base.join("data/packages")).is_empty(),
        "compilation leaves no package installed"
    );

    // Deploy v1: jobs web, worker and smoke-tests with both packages.
    let job_blobs: Vec<_> = release
        .jobs
        .iter()
        .map(|job| {
            let tarball = job.tarball(&fixture.path(&format!("job-{}.tgz", job.name)));
            (
                job,
                fixture.put_blob(&format!("job-{}", job.name), &tarball.path),
            )
        })
        .collect();
    let jobs_v1: Vec<_> = job_blobs
        .iter()
        .map(|(job, blob)| (*job, blob.clone()))
        .collect();
    let rendered_v1 = release::render(
        &jobs_v1.iter().map(|(job, _)| *job).collect::<Vec<_>>(),
        &base,
        &fixture.path("templates-v1.tgz"),
    );
    let templates_v1 = fixture.put_blob("templates-v1", &rendered_v1.archive.path);
    let packages_v1 = [
        (release.package("hello"), hello.clone()),
        (release.package("greeter"), greeter.clone()),
    ];
    let spec_v1 = release::apply_spec(
        &instance(),
        &jobs_v1,
        &packages_v1,
        &rendered_v1,
        &templates_v1,
    );

    // `prepare` installs everything but enables nothing.
    assert_eq!(fixture.ok("prepare", json!([spec_v1])).await, "prepared");
    assert_eq!(names_in(&base.join("data/packages")), ["greeter", "hello"]);
    assert_eq!(
        names_in(&base.join("data/jobs")),
        ["smoke-tests", "web", "worker"]
    );
    assert!(!base.join("packages/hello").exists());
    assert!(!base.join("jobs/web").exists());

    assert_eq!(fixture.ok("apply", json!([spec_v1])).await, "applied");
    let hello_dir = std::fs::canonicalize(base.join("packages/hello")).unwrap();
    assert!(hello_dir.starts_with(base.join("data/packages/hello")));
    assert!(base.join("packages/hello/bin/hello").is_file());
    assert!(base.join("packages/greeter/bin/greet").is_file());
    assert_eq!(
        std::fs::canonicalize(base.join("jobs/web/packages/hello")).unwrap(),
        hello_dir
    );
    let mode = |path: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(base.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("jobs/web/bin/ctl"), 0o750, "FixPermissions: bin/*");
    assert_eq!(
        mode("jobs/web/config/config.yml"),
        0o640,
        "FixPermissions: files"
    );
    for (file, text) in [
        ("deployment", "hello-deployment"),
        ("name", "app"),
        ("az", "z1"),
        ("id", "5a0d3f4e-95d4-4a43-a07c-5c1c3d0b2f6b"),
    ] {
        assert_eq!(read(base.join("instance").join(file)), text);
    }
    // The agent keeps only the keys it knows (reference/bosh-agent.md §3.1).
    let saved: Value = serde_json::from_str(&read(base.join("bosh/spec.json"))).unwrap();
    for dropped in ["dns_domain_name", "template_hashes"] {
        assert!(saved.get(dropped).is_none(), "{dropped} kept: {saved}");
    }
    assert_eq!(
        saved["packages"]["hello"]["blobstore_id"],
        hello.blobstore_id
    );

    // Bad input changes nothing: an apply whose new package blob does not have its digest.
    let snapshot = |base: &Path| {
        (
            read(base.join("bosh/spec.json")),
            names_in(&base.join("data/packages/hello")),
            names_in(&base.join("data/jobs/web")),
            std::fs::read_link(base.join("packages/hello")).unwrap(),
        )
    };
    let before = snapshot(&base);
    let mut corrupt = spec_v1.clone();
    corrupt["packages"]["hello"]["version"] = json!("2");
    corrupt["packages"]["hello"]["sha1"] = json!(release::sha1_of(b"something else"));
    let message = fixture.exception("apply", json!([corrupt])).await;
    assert!(
        message.contains(&format!(
            "Expected stream to have digest '{}' but was '{}'",
            release::sha1_of(b"something else"),
            hello.sha1
        )),
        "{message}"
    );
    assert_eq!(
        snapshot(&base),
        before,
        "a refused apply changed the instance"
    );

    // pre-start of every job, with the director's environment.
    assert_eq!(
        fixture
            .ok(
                "run_script",
                json!(["pre-start", {"env": {"DEPLOYMENT_NAME": "hello-deployment"}}])
            )
            .await,
        json!({})
    );
    assert_eq!(
        read(base.join("sys/log/web/pre-start.stdout.log")),
        "pre-start for hello-deployment\nHello, pre-start! (compiled from C)\n"
    );

    // start: the monit process runs the binary cc built.
    assert_eq!(fixture.ok("start", json!([])).await, "started");
    let state = fixture.wait_for_state("running").await;
    assert_eq!(state["processes"][0]["name"], "web", "{state}");
    assert_eq!(state["processes"][0]["state"], "running", "{state}");
    assert_eq!(state["deployment"], "hello-deployment");
    assert_eq!(state["job"]["name"], "app");
    let pid = read(base.join("sys/run/web/web.pid")).trim().to_owned();
    let exe = std::fs::read_link(Path::new("/proc").join(&pid).join("exe")).unwrap();
    assert_eq!(exe, hello_dir.join("bin/hello"));
    assert_eq!(
        read(base.join("sys/log/web/web.stdout.log")),
        "Hello, web! (compiled from C)\n"
    );

    assert_eq!(
        fixture.ok("run_script", json!(["post-start", {}])).await,
        json!({})
    );
    assert_eq!(
        read(base.join("sys/log/web/post-start.stdout.log")),
        format!("web is running as pid {pid}\n")
    );
    assert_eq!(
        read(base.join("sys/log/worker/post-start.stdout.log")),
        "Hello, worker! (compiled from C)\n"
    );

    // Deploy v2 drops job worker and package greeter.
    let jobs_v2 = [jobs_v1[0].clone(), jobs_v1[2].clone()];
    let rendered_v2 = release::render(
        &[jobs_v2[0].0, jobs_v2[1].0],
        &base,
        &fixture.path("templates-v2.tgz"),
    );
    let templates_v2 = fixture.put_blob("templates-v2", &rendered_v2.archive.path);
    let spec_v2 = release::apply_spec(
        &instance(),
        &jobs_v2,
        &packages_v1[..1],
        &rendered_v2,
        &templates_v2,
    );
    assert_eq!(fixture.ok("prepare", json!([spec_v2])).await, "prepared");

    // drain update: web's dynamic drain is asked again with job_check_status, worker's static one
    // answers at once.
    assert_eq!(fixture.ok("drain", json!(["update", spec_v2])).await, 0);
    let state = r#"{"persistent_disk":0}"#;
    assert_eq!(
        read(base.join("sys/log/web/drain.calls")),
        format!(
            "job_changed hash_changed {state} {state}\njob_check_status hash_unchanged {state} unset\n"
        )
    );
    assert_eq!(
        read(base.join("sys/log/worker/drain.calls")),
        "job_changed hash_changed\n"
    );

    assert_eq!(fixture.ok("stop", json!([])).await, "stopped");
    fixture.wait_for_state("stopped").await;
    assert!(!is_alive(&pid), "the web process is gone after stop");

    assert_eq!(fixture.ok("apply", json!([spec_v2])).await, "applied");
    assert_eq!(names_in(&base.join("data/packages")), ["hello"]);
    assert_eq!(names_in(&base.join("data/jobs")), ["smoke-tests", "web"]);
    assert_eq!(names_in(&base.join("packages")), ["hello"]);
    assert_eq!(names_in(&base.join("jobs")), ["smoke-tests", "web"]);
    assert_eq!(names_in(&base.join("jobs/web/packages")), ["hello"]);
    assert_eq!(
        std::fs::canonicalize(base.join("packages/hello")).unwrap(),
        hello_dir,
        "the kept package stays where it was"
    );
    assert!(base.join("jobs/web/bin/ctl").is_file());
    // The supervisor let go of the old jobs: nothing is supervised until `start` loads the new ones.
    let state = fixture.ok("get_state", json!([])).await;
    assert!(
        state["processes"].as_array().is_none_or(Vec::is_empty),
        "{state}"
    );

    // The errand: its exit code is a result, not an error; a dropped job is no errand.
    let errand = fixture.ok("run_errand", json!(["smoke-tests"])).await;
    assert_eq!(errand["exit_code"], 3, "{errand}");
    assert_eq!(errand["stdout"], "Hello, smoke-tests! (compiled from C)\n");
    // Go reports the stream untouched; `platform::cmd` trims the stderr of a failed command.
    let stderr = errand["stderr"].as_str().unwrap();
    assert_eq!(stderr.trim_end(), "1 of 2 checks failed", "{errand}");
    let message = fixture.exception("run_errand", json!(["worker"])).await;
    assert!(
        message.ends_with("Could not find errand worker"),
        "{message}"
    );

    // fetch_logs uploads the job logs to the blobstore.
    let logs = fixture.ok("fetch_logs", json!(["job", null])).await;
    let logs = BlobRef {
        blobstore_id: logs["blobstore_id"].as_str().unwrap().to_owned(),
        sha1: logs["sha1"].as_str().unwrap().to_owned(),
    };
    assert_eq!(
        release::sha1_of(&fixture.blob(&logs.blobstore_id).unwrap()),
        logs.sha1
    );
    let unpacked = fixture.unpack(&logs);
    assert_eq!(
        read(unpacked.join("web/web.stdout.log")),
        "Hello, web! (compiled from C)\n"
    );
    assert!(unpacked.join("worker/post-start.stdout.log").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packages_are_refused_and_change_nothing() {
    let fixture = Fixture::start("agent-bad-release").await;
    let release = Release::hello();
    let base = fixture.base();
    let hello = release.package("hello");
    let version = hello.fingerprint();
    let source = hello.tarball(&fixture.path("hello.tgz"));
    fixture.put_blob("hello-source", &source.path);
    let nothing_installed = |base: &Path| {
        for dir in ["data/packages", "packages", "data/compile"] {
            assert_eq!(names_in(&base.join(dir)), Vec::<String>::new(), "{dir}");
        }
    };

    // A source blob that is not what the director said it is.
    let wrong = release::sha1_of(b"another package");
    let message = fixture
        .exception(
            "compile_package",
            json!(["hello-source", wrong, "hello", version, {}]),
        )
        .await;
    assert!(
        message.contains(&format!(
            "Expected stream to have digest '{wrong}' but was '{}'",
            source.sha1
        )),
        "{message}"
    );

    // A source tarball that would write outside its directory.
    let evil = release::raw_tarball(
        &[("packaging", "echo never run\n"), ("../evil", "escaped\n")],
        &fixture.path("evil.tgz"),
    );
    let evil = fixture.put_blob("evil-source", &evil.path);
    let message = fixture
        .exception(
            "compile_package",
            json!(["evil-source", evil.sha1, "evil", "1", {}]),
        )
        .await;
    assert!(
        message.contains("../evil: path leaves the target"),
        "{message}"
    );
    assert!(!base.join("data/compile/evil").exists());
    assert!(!base.join("data/evil").exists());

    // A packaging script that fails: Go's text with its output.
    let failing = release::Package {
        name: "failing",
        dependencies: vec![],
        files: vec![release::File {
            path: "packaging".to_owned(),
            text: "echo about to fail\necho 'cc: error: no input files' >&2\nexit 3\n".to_owned(),
            mode: 0o644,
        }],
    };
    let failing = failing.tarball(&fixture.path("failing.tgz"));
    let failing = fixture.put_blob("failing-source", &failing.path);
    let message = fixture
        .exception(
            "compile_package",
            json!(["failing-source", failing.sha1, "failing", "1", {}]),
        )
        .await;
    assert!(
        message.contains(
            "Command exited with 3; Stdout: about to fail\n, Stderr: + echo about to fail\n"
        ),
        "{message}"
    );
    assert!(
        message
            .trim_end()
            .ends_with("\ncc: error: no input files\n+ exit 3"),
        "{message}"
    );
    assert_eq!(
        read(base.join("sys/log/compilation/packaging.stdout.log")),
        "about to fail\n"
    );

    nothing_installed(&base);
    assert_eq!(fixture.uploads(), 0, "nothing was uploaded");
}
