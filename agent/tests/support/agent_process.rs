//! The real `bosh-agent` binary as the director's tests meet it: `-P dummy -M dummy` (or another
//! supervisor), a base dir and a File settings source in a temp dir, settings that point it at a
//! test NATS server with its client certificate (`env.bosh.mbus.cert`, reference/bosh-agent.md
//! §2.7) and a `local` blobstore under the temp dir (tests may edit the settings). Its stdout and
//! stderr go to one log file; it is killed on `Drop`. Starting it waits for nothing: tests wait
//! for what they expect to see.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::support::pki::Pki;

const BOSH_AGENT: &str = env!("CARGO_BIN_EXE_bosh-agent");

/// A running `bosh-agent`, killed on `Drop`.
#[derive(Debug)]
pub struct AgentProcess {
    dir: tempfile::TempDir,
    child: Option<Child>,
    log_filter: String,
    supervisor: &'static str,
}

impl AgentProcess {
    /// Starts the agent with [`settings`] for `pki`'s agent and the NATS server at `nats_url`.
    pub fn start(pki: &Pki, nats_url: &str) -> AgentProcess {
        AgentProcess::start_with_settings(pki, nats_url, |_| {})
    }

    /// Like [`AgentProcess::start`], with `edit` applied to the settings before they are
    /// written: to give the agent a wrong CA, no certificate, several URLs and so on.
    pub fn start_with_settings(
        pki: &Pki,
        nats_url: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> AgentProcess {
        // Debug lines make a failed test's log worth reading, unless the caller chose a filter.
        let log_filter = std::env::var("BOSH_AGENT_LOG").unwrap_or_else(|_| "debug".to_owned());
        AgentProcess::start_inner(pki, nats_url, edit, log_filter, "dummy")
    }

    /// Like [`AgentProcess::start`], with the `dummy-nats` supervisor the director's integration
    /// suite controls over the bus.
    pub fn start_dummy_nats(pki: &Pki, nats_url: &str) -> AgentProcess {
        AgentProcess::start_with_supervisor(pki, nats_url, "dummy-nats")
    }

    /// Like [`AgentProcess::start`], with the job supervisor `supervisor` (`monit` runs real job
    /// processes).
    pub fn start_with_supervisor(
        pki: &Pki,
        nats_url: &str,
        supervisor: &'static str,
    ) -> AgentProcess {
        AgentProcess::start_with_supervisor_and_settings(pki, nats_url, supervisor, |_| {})
    }

    /// Like [`AgentProcess::start_with_settings`], with the job supervisor `supervisor`.
    pub fn start_with_supervisor_and_settings(
        pki: &Pki,
        nats_url: &str,
        supervisor: &'static str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> AgentProcess {
        AgentProcess::start_inner(pki, nats_url, edit, "debug".to_owned(), supervisor)
    }

    /// Like [`AgentProcess::start`], logging at `log_filter` (benchmarks measure a quiet agent).
    pub fn start_with_log(pki: &Pki, nats_url: &str, log_filter: &str) -> AgentProcess {
        AgentProcess::start_inner(pki, nats_url, |_| {}, log_filter.to_owned(), "dummy")
    }

    fn start_inner(
        pki: &Pki,
        nats_url: &str,
        edit: impl FnOnce(&mut serde_json::Value),
        log_filter: String,
        supervisor: &'static str,
    ) -> AgentProcess {
        let dir = tempfile::tempdir().unwrap();
        let blobstore = dir.path().join("blobstore");
        std::fs::create_dir(&blobstore).unwrap();
        std::fs::create_dir(dir.path().join("base")).unwrap();
        let mut settings = settings(pki, nats_url, &blobstore);
        edit(&mut settings);
        let settings_path = dir.path().join("settings.json");
        std::fs::write(
            &settings_path,
            serde_json::to_vec_pretty(&settings).unwrap(),
        )
        .unwrap();
        let agent_json = serde_json::json!({
            "Infrastructure": {"Settings": {"Sources": [{"Type": "File", "SettingsPath": settings_path}]}}
        });
        std::fs::write(
            dir.path().join("agent.json"),
            serde_json::to_vec_pretty(&agent_json).unwrap(),
        )
        .unwrap();
        let mut agent = AgentProcess {
            dir,
            child: None,
            log_filter,
            supervisor,
        };
        agent.spawn();
        agent
    }

    /// The agent's process id, while it runs.
    /// Pings the agent `agent_id` through `director` until it answers; panics with the agent's
    /// log after `timeout`.
    pub async fn wait_for_pong(
        &self,
        director: &agent::client::NatsClient,
        agent_id: &str,
        timeout: std::time::Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while agent::client::call(
            director,
            agent_id,
            "ping",
            vec![],
            std::time::Duration::from_millis(500),
        )
        .await
        .is_err()
        {
            assert!(tokio::time::Instant::now() < deadline, "{}", self.log());
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the agent (SIGKILL, as a crash or the service manager would). Does nothing if it
    /// is stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: the agent is stopped either way.
            let _ = child.kill();
            child.wait().unwrap();
        }
    }

    /// Stops the agent and starts it again with the same settings and base dir.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The exit status if the agent has exited, `None` while it runs (or after [`stop`]).
    ///
    /// [`stop`]: AgentProcess::stop
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    /// The agent's `-b` base dir (`/var/vcap` on a VM).
    pub fn base_dir(&self) -> PathBuf {
        self.dir.path().join("base")
    }

    /// The temp dir holding `settings.json`, `agent.json`, the log, the base dir and the blobstore.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the agent wrote to stdout and stderr, across restarts, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(BOSH_AGENT)
            .args(["-P", "dummy", "-M", self.supervisor, "-b"])
            .arg(self.base_dir())
            .arg("-C")
            .arg(self.dir.path().join("agent.json"))
            .env("BOSH_AGENT_LOG", &self.log_filter)
            // tracing-subscriber colours its output even into a file; plain text is searchable.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("running {BOSH_AGENT}: {err}"));
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The settings a director gives an agent it creates for the message-bus tests: `pki`'s agent
/// id, `mbus` = `nats_url`, the agent's client certificate with the server CA to trust, and a
/// `local` blobstore in `blobstore_path`.
pub fn settings(pki: &Pki, nats_url: &str, blobstore_path: &Path) -> serde_json::Value {
    serde_json::json!({
        "agent_id": pki.agent_id,
        "mbus": nats_url,
        "blobstore": {"provider": "local", "options": {"blobstore_path": blobstore_path}},
        "env": {"bosh": {"mbus": {"cert": {
            "ca": pki.server_ca,
            "certificate": pki.agent.certificate,
            "private_key": pki.agent.private_key,
        }}}},
        "vm": {"name": format!("vm-{}", pki.agent_id)},
    })
}
