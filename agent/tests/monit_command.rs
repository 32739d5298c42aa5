//! The operator's `monit` command against the real agent (`-P dummy -M monit`): two jobs applied
//! and started over NATS, then `monit` run as a program through a link named `monit` to the built
//! `bosh-agent`, with `BOSH_AGENT_BASE_DIR` pointing at the agent's base dir, as an operator on a VM
//! runs `/var/vcap/bosh/bin/monit`.
//!
//! `web` depends on `db`; each job's control script starts a `sleep` and writes its pid. Every wait
//! polls with a bound; the job processes are killed when the test ends, pass or fail.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use agent::client::{self, NatsClient};
use serde_json::json;
use settings::digest::{Algorithm, MultiDigest};
use tokio::task::block_in_place;

use crate::support::agent_process::AgentProcess;
use crate::support::nats::{NatsServer, client_tls_config};
use crate::support::pki::Pki;
use crate::support::wait_until;

const AGENT_ID: &str = "agent-monit-command";
const BOSH_AGENT: &str = env!("CARGO_BIN_EXE_bosh-agent");
const TIMEOUT: Duration = Duration::from_secs(60);

/// The agent with its jobs running, and a `monit` link to run.
struct Fixture {
    _server: NatsServer,
    agent: AgentProcess,
    director: NatsClient,
    work: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let pki = Pki::new(AGENT_ID);
        let server = block_in_place(|| NatsServer::start(&pki));
        let agent =
            block_in_place(|| AgentProcess::start_with_supervisor(&pki, &server.url(), "monit"));
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
            work: tempfile::tempdir().unwrap(),
        };
        std::os::unix::fs::symlink(BOSH_AGENT, fixture.work.path().join("monit")).unwrap();
        fixture
            .agent
            .wait_for_pong(&fixture.director, AGENT_ID, TIMEOUT)
            .await;
        fixture
    }

    fn run_dir(&self, job: &str) -> PathBuf {
        self.agent.base_dir().join("data/sys/run").join(job)
    }

    /// The pid in `job`'s pidfile.
    fn pid(&self, job: &str) -> Option<u32> {
        std::fs::read_to_string(self.run_dir(job).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Applies the two jobs and starts them over NATS, as the director does.
    async fn apply_and_start(&self) {
        let base = self.agent.base_dir();
        let templates = self.work.path().join("templates");
        for (job, depends) in [("db", ""), ("web", "\n  depends on db")] {
            let run = self.run_dir(job);
            write_executable(
                &templates.join(job).join("bin/ctl"),
                &format!(
                    "#!/bin/sh\ncase $1 in\n  start) mkdir -p {run}; sleep 1000 > /dev/null 2>&1 & echo $! > {run}/pid ;;\n  stop) kill $(cat {run}/pid) ;;\nesac\n",
                    run = run.display()
                ),
            );
            std::fs::write(
                templates.join(job).join("monit"),
                format!(
                    "check process {job}\n  with pidfile {run}/pid\n  start program \"{ctl} start\"\n  stop program \"{ctl} stop\"\n  group vcap{depends}\n",
                    run = run.display(),
                    ctl = base.join("jobs").join(job).join("bin/ctl").display()
                ),
            )
            .unwrap();
        }
        let blob = self.agent.dir().join("blobstore/templates-1");
        jobs::archive::create(&templates, &blob).unwrap();
        let sha1 =
            MultiDigest::compute(std::fs::read(&blob).unwrap().as_slice(), &[Algorithm::Sha1])
                .unwrap()
                .to_string();
        let spec = json!({
            "deployment": "cf", "name": "api", "index": 0, "id": "uuid-1",
            "job": {"name": "api", "templates": [{"name": "db", "version": "1"}, {"name": "web", "version": "1"}]},
            "rendered_templates_archive": {"blobstore_id": "templates-1", "sha1": sha1},
            "configuration_hash": "hash-1"
        });
        client::call_and_wait(
            &self.director,
            AGENT_ID,
            "apply",
            vec![spec],
            TIMEOUT,
            Duration::from_millis(20),
        )
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", self.agent.log()));
        let started = client::call(&self.director, AGENT_ID, "start", vec![], TIMEOUT)
            .await
            .unwrap();
        assert_eq!(started, json!("started"));
    }

    /// Runs `monit <args>` through the link, against the agent's base dir.
    fn monit(&self, args: &[&str]) -> Output {
        self.monit_with_base(args, &self.agent.base_dir())
    }

    fn monit_with_base(&self, args: &[&str], base: &Path) -> Output {
        block_in_place(|| {
            Command::new(self.work.path().join("monit"))
                .args(args)
                .env("BOSH_AGENT_BASE_DIR", base)
                .output()
                .unwrap()
        })
    }

    /// The status text `monit summary` shows for `service`.
    fn summary_of(&self, service: &str) -> String {
        let output = self.monit(&["summary"]);
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        let prefix = format!("{:<35} ", format!("Process '{service}'"));
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no line for {service} in:\n{text}"))
            .to_owned()
    }

    /// Waits until `monit summary` shows `status` for `service`.
    fn wait_for_summary(&self, service: &str, status: &str) {
        let reached = wait_until(TIMEOUT, || self.summary_of(service) == status);
        assert!(
            reached,
            "{service} never showed {status:?}, last {:?}\n{}",
            self.summary_of(service),
            self.agent.log()
        );
    }
}

impl Drop for Fixture {
    /// Kills the job processes a failed test left behind.
    fn drop(&mut self) {
        for job in ["db", "web"] {
            if let Some(pid) = self.pid(job).filter(|pid| is_running(*pid)) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

fn write_executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether `pid` runs (exists and is not a zombie).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monit_command_reports_and_controls_the_agents_job_processes() {
    let fixture = Fixture::start().await;
    fixture.apply_and_start().await;
    fixture.wait_for_summary("db", "running");
    fixture.wait_for_summary("web", "running");

    // The socket is for root and the agent's user only.
    let monit_dir = fixture.agent.base_dir().join("monit");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&monit_dir), 0o700);
    assert_eq!(mode(&monit_dir.join("agent.sock")), 0o600);

    let summary = fixture.monit(&["summary"]);
    assert_eq!(summary.status.code(), Some(0), "{summary:?}");
    let text = stdout(&summary);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("The Monit daemon 5.2.5 uptime: ") && lines[1].is_empty(),
        "{text}"
    );
    assert_eq!(
        lines[2..4],
        [
            "Process 'db'                        running",
            "Process 'web'                       running"
        ],
        "{text}"
    );
    assert!(lines[4].starts_with("System 'system_"), "{text}");
    assert!(lines[4].ends_with(" running"), "{text}");

    // `status <name>` shows the process's figures.
    let web_pid = fixture.pid("web").unwrap();
    let status = fixture.monit(&["status", "web"]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    let text = stdout(&status);
    for expected in [
        "Process 'web'\n".to_owned(),
        format!("  {:<33} running\n", "status"),
        format!("  {:<33} monitored\n", "monitoring status"),
        format!("  {:<33} {web_pid}\n", "pid"),
        format!("  {:<33} ", "memory kilobytes total"),
        format!("  {:<33} ", "cpu percent total"),
        format!("  {:<33} ", "data collected"),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
    assert!(!text.contains("Process 'db'"), "{text}");
    // The same through `bosh-agent monit`.
    let through_agent = block_in_place(|| {
        Command::new(BOSH_AGENT)
            .args(["monit", "status"])
            .env("BOSH_AGENT_BASE_DIR", fixture.agent.base_dir())
            .output()
            .unwrap()
    });
    assert!(through_agent.status.success(), "{through_agent:?}");
    let text = stdout(&through_agent);
    assert!(
        text.contains("Process 'db'\n") && text.contains("System 'system_"),
        "{text}"
    );

    // `stop` waits until the process is gone.
    let stop = fixture.monit(&["stop", "web"]);
    assert_eq!(stop.status.code(), Some(0), "{stop:?}");
    assert!(!is_running(web_pid), "web is gone once stop returns");
    assert_eq!(fixture.summary_of("web"), "not monitored");
    assert_eq!(fixture.summary_of("db"), "running");

    let start = fixture.monit(&["start", "web"]);
    assert_eq!(start.status.code(), Some(0), "{start:?}");
    fixture.wait_for_summary("web", "running");
    let web_pid = fixture.pid("web").unwrap();
    assert!(is_running(web_pid));

    // Restarting db bounces web, which depends on it.
    let db_pid = fixture.pid("db").unwrap();
    let restart = fixture.monit(&["restart", "db"]);
    assert_eq!(restart.status.code(), Some(0), "{restart:?}");
    let restarted = wait_until(TIMEOUT, || {
        fixture
            .pid("db")
            .is_some_and(|pid| pid != db_pid && is_running(pid))
            && fixture
                .pid("web")
                .is_some_and(|pid| pid != web_pid && is_running(pid))
            && fixture.summary_of("web") == "running"
            && fixture.summary_of("db") == "running"
    });
    assert!(restarted, "{}", fixture.agent.log());
    assert!(!is_running(db_pid) && !is_running(web_pid));

    // Unmonitor leaves the process running; monitor adopts it again.
    let web_pid = fixture.pid("web").unwrap();
    assert!(fixture.monit(&["unmonitor", "web"]).status.success());
    fixture.wait_for_summary("web", "not monitored");
    assert!(is_running(web_pid));
    assert!(fixture.monit(&["monitor", "web"]).status.success());
    fixture.wait_for_summary("web", "running");
    assert_eq!(fixture.pid("web"), Some(web_pid));

    // Reload re-reads the monit files and keeps the running processes.
    let reload = fixture.monit(&["reload"]);
    assert_eq!(reload.status.code(), Some(0), "{reload:?}");
    assert_eq!(stdout(&reload), "Reinitializing monit daemon\n");
    assert_eq!(fixture.summary_of("web"), "running");
    assert_eq!(fixture.pid("web"), Some(web_pid));

    // Unknown names and a missing agent fail with monit-like messages.
    let unknown = fixture.monit(&["stop", "ghost"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert_eq!(
        stderr(&unknown),
        "monit: action failed -- There is no service by that name\n"
    );
    let unknown = fixture.monit(&["status", "ghost"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert_eq!(stderr(&unknown), "monit: service 'ghost' not found\n");
    let elsewhere = tempfile::tempdir().unwrap();
    let unreachable = fixture.monit_with_base(&["summary"], elsewhere.path());
    assert_eq!(unreachable.status.code(), Some(1), "{unreachable:?}");
    assert!(
        stderr(&unreachable).starts_with(&format!(
            "monit: cannot connect to the agent at {}: ",
            elsewhere.path().join("monit/agent.sock").display()
        )),
        "{}",
        stderr(&unreachable)
    );

    // `stop all` stops everything.
    let stop_all = fixture.monit(&["stop", "all"]);
    assert_eq!(stop_all.status.code(), Some(0), "{stop_all:?}");
    assert!(!is_running(web_pid));
    assert_eq!(fixture.summary_of("db"), "not monitored");
    assert_eq!(fixture.summary_of("web"), "not monitored");
}
