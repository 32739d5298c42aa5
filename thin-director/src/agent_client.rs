//! What the director asks one agent, with the director's rules for each message
//! (`reference/director-cpi.md` §2.2–2.3; `agent_client.rb`): reply timeouts, retries on a timed-out
//! `get_state` (2) and `get_task` (4), tasks polled until done, the drain wait loop, the ping loop
//! of a booting VM, and the watch of `get_state` after `start`.
//!
//! Tasks are polled every [`POLL_INTERVAL`] (100 ms) rather than the director's 1 s: the wire is
//! the same and every step of a deploy finishes up to a second sooner.

use std::time::{Duration, Instant};

use agent::client::{self, NatsClient};
use agent::protocol::TaskHandle;
use serde_json::{Value, json};

/// How often a running task is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The reply timeout of one request (the director's 45 s).
pub const REPLY_TIMEOUT: Duration = client::DEFAULT_TIMEOUT;

/// How long `stop` may take (`STOP_MESSAGE_TIMEOUT`).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(300);

/// The reply timeout of one `ping` while waiting for a VM's agent.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent did not answer, answered with an exception, or the bus failed.
    #[error("agent {agent_id}: {method}")]
    Call {
        /// The agent.
        agent_id: String,
        /// The method.
        method: String,
        /// The cause.
        #[source]
        source: client::Error,
    },
    /// The agent did not answer `ping` in time.
    #[error("Timed out pinging agent {agent_id} after {} seconds", .waited.as_secs())]
    NotReady {
        /// The agent.
        agent_id: String,
        /// How long the director waited.
        waited: Duration,
    },
    /// A task took longer than allowed.
    #[error("agent {agent_id}: {method} did not finish within {} s", .timeout.as_secs())]
    TaskTimeout {
        /// The agent.
        agent_id: String,
        /// The method.
        method: String,
        /// The limit.
        timeout: Duration,
    },
    /// An answer had the wrong shape.
    #[error("agent {agent_id} answered {method} with {value}, not {expected}")]
    Unexpected {
        /// The agent.
        agent_id: String,
        /// The method.
        method: String,
        /// What came.
        value: Value,
        /// What was expected.
        expected: &'static str,
    },
    /// After `start`, the jobs did not reach `running` within the watch time (the director's
    /// `AgentJobNotRunning`).
    #[error("'{instance}' is not running after update. Review logs for failed jobs: {failing}")]
    NotRunning {
        /// `<group>/<id>`.
        instance: String,
        /// The processes not running, comma-separated.
        failing: String,
    },
}

impl Error {
    /// The agent's exception text, when it answered with one.
    pub fn exception(&self) -> Option<&str> {
        match self {
            Error::Call {
                source: client::Error::Exception(message),
                ..
            } => Some(message),
            _ => None,
        }
    }
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A compiled package, as `compile_package` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The blob the agent uploaded.
    pub blobstore_id: String,
    /// Its SHA-1.
    pub sha1: String,
}

/// One agent on the bus.
#[derive(Debug, Clone, Copy)]
pub struct AgentClient<'a> {
    bus: &'a NatsClient,
    agent_id: &'a str,
}

impl<'a> AgentClient<'a> {
    /// The agent `agent_id` on `bus`.
    pub fn new(bus: &'a NatsClient, agent_id: &'a str) -> AgentClient<'a> {
        AgentClient { bus, agent_id }
    }

    /// Pings until the agent answers `pong`, for up to `wait` (`agent_wait_timeout`).
    pub async fn wait_until_ready(&self, wait: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let attempt = Instant::now();
            match client::call(self.bus, self.agent_id, "ping", vec![], PING_TIMEOUT).await {
                Ok(_) => return Ok(()),
                Err(err) => {
                    tracing::trace!(agent_id = self.agent_id, error = %err, "agent not ready")
                }
            }
            if started.elapsed() >= wait {
                return Err(Error::NotReady {
                    agent_id: self.agent_id.to_owned(),
                    waited: started.elapsed(),
                });
            }
            // An immediate refusal (no responders yet) must not spin.
            if let Some(left) = Duration::from_millis(200).checked_sub(attempt.elapsed()) {
                tokio::time::sleep(left).await;
            }
        }
    }

    /// `get_state`, retried twice on a timeout.
    pub async fn get_state(&self) -> Result<Value> {
        self.call_retrying("get_state", vec![], 2).await
    }

    /// `apply` with `spec`.
    pub async fn apply(&self, spec: &Value) -> Result<()> {
        self.task("apply", vec![spec.clone()], None).await.map(drop)
    }

    /// `prepare` with `spec`.
    pub async fn prepare(&self, spec: &Value) -> Result<()> {
        self.task("prepare", vec![spec.clone()], None)
            .await
            .map(drop)
    }

    /// `run_script` `name` with `env` (an object of strings).
    pub async fn run_script(&self, name: &str, env: Value) -> Result<()> {
        let options = if env.as_object().is_some_and(|env| !env.is_empty()) {
            json!({"env": env})
        } else {
            json!({})
        };
        self.task("run_script", vec![json!(name), options], None)
            .await
            .map(drop)
    }

    /// `drain` of `kind` (`update` or `shutdown`) with `spec`, waiting as the answers say: a
    /// non-negative answer is seconds to wait; a negative one is seconds to wait before asking
    /// again with `status`.
    pub async fn drain(&self, kind: &str, spec: &Value) -> Result<()> {
        let mut answer = self.drain_once(vec![json!(kind), spec.clone()]).await?;
        loop {
            let wait = Duration::from_secs(answer.unsigned_abs());
            tokio::time::sleep(wait).await;
            if answer >= 0 {
                return Ok(());
            }
            answer = self.drain_once(vec![json!("status")]).await?;
        }
    }

    async fn drain_once(&self, arguments: Vec<Value>) -> Result<i64> {
        let value = self.task("drain", arguments, None).await?;
        value.as_i64().ok_or_else(|| Error::Unexpected {
            agent_id: self.agent_id.to_owned(),
            method: "drain".to_owned(),
            value,
            expected: "an integer",
        })
    }

    /// `stop`, waiting up to [`STOP_TIMEOUT`].
    pub async fn stop(&self) -> Result<()> {
        self.task("stop", vec![], Some(STOP_TIMEOUT))
            .await
            .map(drop)
    }

    /// `start` (synchronous: `started`).
    pub async fn start(&self) -> Result<()> {
        self.call_retrying("start", vec![], 0).await.map(drop)
    }

    /// Watches `get_state` after `start`: sleeps each step of `schedule` (the director's watch
    /// schedule, [`WatchTime::schedule`](crate::manifest::update::WatchTime::schedule)) and asks,
    /// stopping as soon as `job_state` is `running`.
    pub async fn watch_running(&self, instance: &str, schedule: &[Duration]) -> Result<()> {
        let mut state = Value::Null;
        for sleep in schedule {
            tokio::time::sleep(*sleep).await;
            state = self.get_state().await?;
            if state["job_state"] == "running" {
                return Ok(());
            }
        }
        Err(Error::NotRunning {
            instance: instance.to_owned(),
            failing: failing_processes(&state),
        })
    }

    /// `compile_package` of a package blob with its immediate dependencies (`name` →
    /// `{name, version, sha1, blobstore_id}`).
    pub async fn compile_package(
        &self,
        blobstore_id: &str,
        sha1: &str,
        name: &str,
        version: &str,
        deps: &Value,
    ) -> Result<Compiled> {
        let value = self
            .task(
                "compile_package",
                vec![
                    json!(blobstore_id),
                    json!(sha1),
                    json!(name),
                    json!(version),
                    deps.clone(),
                ],
                None,
            )
            .await?;
        let result = &value["result"];
        match (result["blobstore_id"].as_str(), result["sha1"].as_str()) {
            (Some(id), Some(sha1)) => Ok(Compiled {
                blobstore_id: id.to_owned(),
                sha1: sha1.to_owned(),
            }),
            _ => Err(Error::Unexpected {
                agent_id: self.agent_id.to_owned(),
                method: "compile_package".to_owned(),
                value,
                expected: "{\"result\":{\"blobstore_id\",\"sha1\"}}",
            }),
        }
    }

    /// `update_settings` with `settings` (trusted certs, disk associations, ...).
    pub async fn update_settings(&self, settings: &Value) -> Result<()> {
        self.task("update_settings", vec![settings.clone()], None)
            .await
            .map(drop)
    }

    /// `add_persistent_disk` with the CPI's hint.
    pub async fn add_persistent_disk(&self, disk_cid: &str, hint: &Value) -> Result<()> {
        self.task(
            "add_persistent_disk",
            vec![json!(disk_cid), hint.clone()],
            None,
        )
        .await
        .map(drop)
    }

    /// `mount_disk`.
    pub async fn mount_disk(&self, disk_cid: &str) -> Result<()> {
        self.task("mount_disk", vec![json!(disk_cid)], None)
            .await
            .map(drop)
    }

    /// `unmount_disk`.
    pub async fn unmount_disk(&self, disk_cid: &str) -> Result<()> {
        self.task("unmount_disk", vec![json!(disk_cid)], None)
            .await
            .map(drop)
    }

    /// `remove_persistent_disk`.
    pub async fn remove_persistent_disk(&self, disk_cid: &str) -> Result<()> {
        self.task("remove_persistent_disk", vec![json!(disk_cid)], None)
            .await
            .map(drop)
    }

    /// `migrate_disk` from `old` to `new`.
    pub async fn migrate_disk(&self, old: &str, new: &str) -> Result<()> {
        self.task("migrate_disk", vec![json!(old), json!(new)], None)
            .await
            .map(drop)
    }

    /// `list_disk`: the cids of the mounted persistent disks.
    pub async fn list_disk(&self) -> Result<Vec<String>> {
        let value = self.task("list_disk", vec![], None).await?;
        serde_json::from_value(value.clone()).map_err(|_| Error::Unexpected {
            agent_id: self.agent_id.to_owned(),
            method: "list_disk".to_owned(),
            value,
            expected: "an array of disk cids",
        })
    }

    /// `fetch_logs` of `log_type` (`job`, `agent`, `system`) with `filters`: the blob of the logs.
    pub async fn fetch_logs(&self, log_type: &str, filters: &[String]) -> Result<Compiled> {
        let value = self
            .task("fetch_logs", vec![json!(log_type), json!(filters)], None)
            .await?;
        match (value["blobstore_id"].as_str(), value["sha1"].as_str()) {
            (Some(id), Some(sha1)) => Ok(Compiled {
                blobstore_id: id.to_owned(),
                sha1: sha1.to_owned(),
            }),
            _ => Err(Error::Unexpected {
                agent_id: self.agent_id.to_owned(),
                method: "fetch_logs".to_owned(),
                value,
                expected: "{\"blobstore_id\",\"sha1\"}",
            }),
        }
    }

    /// `run_errand`, of the errand job `job` when given (else the apply spec's first job):
    /// `{stdout, stderr, exit_code}`.
    pub async fn run_errand(&self, job: Option<&str>) -> Result<Value> {
        let arguments = job.map(|job| vec![json!(job)]).unwrap_or_default();
        self.task("run_errand", arguments, None).await
    }

    /// Sends `method` and, when it answers a task handle, polls `get_task` until it is done, for up
    /// to `limit` when given.
    async fn task(
        &self,
        method: &str,
        arguments: Vec<Value>,
        limit: Option<Duration>,
    ) -> Result<Value> {
        let started = Instant::now();
        let mut value = self.call_retrying(method, arguments, 0).await?;
        loop {
            let Some(handle) = TaskHandle::from_value(&value) else {
                return Ok(value);
            };
            if handle.state != "running" {
                return Ok(value);
            }
            if limit.is_some_and(|limit| started.elapsed() > limit) {
                return Err(Error::TaskTimeout {
                    agent_id: self.agent_id.to_owned(),
                    method: method.to_owned(),
                    timeout: limit.unwrap_or_default(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            value = self
                .call_retrying("get_task", vec![json!(handle.agent_task_id)], 4)
                .await
                .map_err(|err| match err {
                    Error::Call { source, .. } => Error::Call {
                        agent_id: self.agent_id.to_owned(),
                        method: method.to_owned(),
                        source,
                    },
                    other => other,
                })?;
        }
    }

    /// One request, resent up to `retries` times when the reply times out.
    async fn call_retrying(
        &self,
        method: &str,
        arguments: Vec<Value>,
        retries: u32,
    ) -> Result<Value> {
        let mut attempt = 0;
        loop {
            match client::call(
                self.bus,
                self.agent_id,
                method,
                arguments.clone(),
                REPLY_TIMEOUT,
            )
            .await
            {
                Err(client::Error::Timeout { .. }) if attempt < retries => attempt += 1,
                Err(source) => {
                    return Err(Error::Call {
                        agent_id: self.agent_id.to_owned(),
                        method: method.to_owned(),
                        source,
                    });
                }
                Ok(value) => return Ok(value),
            }
        }
    }
}

/// The names of the processes of a `get_state` answer that are not `running`, comma-separated.
pub fn failing_processes(state: &Value) -> String {
    state["processes"]
        .as_array()
        .map(|processes| {
            processes
                .iter()
                .filter(|p| p["state"] != "running")
                .filter_map(|p| p["name"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_processes_are_those_not_running() {
        let state = json!({"job_state": "failing", "processes": [
            {"name": "web", "state": "running"},
            {"name": "worker", "state": "failing"},
            {"name": "cron", "state": "starting"},
        ]});
        assert_eq!(failing_processes(&state), "worker, cron");
        assert_eq!(failing_processes(&json!({})), "");
    }
}
