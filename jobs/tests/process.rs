//! The built-in supervisor (`jobs::process`, standing in for monit 5.2.5 as the Go agent's
//! `jobsupervisor/monit_job_supervisor.go` drives it) with real processes: the real
//! `SystemSpawner`, `/proc` of this machine, and a job control script written to a temporary
//! directory and run as a program, the way BOSH releases' `*_ctl` scripts are run by monit.
//!
//! The script starts `sleep` in the background (or a process that dies at once, or a busy loop with
//! two children, for the resource tests and restart limits) and writes its pid to the pidfile;
//! `stop` kills the pid the pidfile names. Poll cycles are 100 ms. Every wait polls with a bound, and
//! [`Jobs`] kills whatever the pidfiles name when a test ends, pass or fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::monit;
use jobs::process::{Config, JobState, ServiceState, Supervisor};
use jobs::supervisor::MonitAlert;
use platform::HostPaths;
use platform::cmd::{Signal, Spawner, SystemSpawner};
use tokio::sync::mpsc;

const CTL: &str = r#"#!/bin/sh
# ctl start|stop <pidfile> [kind]: a job control script as BOSH releases write them. The process is
# a long `sleep`; kind `brief` dies after a moment; kind `busy` spins with two children, and takes
# them along when stopped.
case "$1" in
  start)
    echo started >> "$2.starts"
    case "$3" in
      brief) sleep 0.2 & ;;
      busy) sh -c 'trap "kill 0" TERM; sleep 30 & sleep 30 & while :; do :; done' & ;;
      *) sleep 1000 & ;;
    esac
    echo $! > "$2"
    ;;
  stop)
    kill "$(cat "$2")"
    ;;
esac
"#;

/// A temporary directory holding the control script and the pidfiles; kills every process a
/// pidfile names on drop.
struct Jobs {
    dir: tempfile::TempDir,
    spawner: Arc<SystemSpawner>,
}

impl Jobs {
    fn new() -> Jobs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ctl = dir.path().join("ctl");
        std::fs::write(&ctl, CTL).expect("writing the control script");
        let mut permissions = std::fs::metadata(&ctl).expect("the script").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&ctl, permissions).expect("making the script executable");
        Jobs {
            dir,
            spawner: Arc::new(SystemSpawner::new()),
        }
    }

    fn pidfile(&self, service: &str) -> PathBuf {
        self.dir.path().join(format!("{service}.pid"))
    }

    /// The monit file of a job with one process, controlled by the script.
    fn monit_file(&self, service: &str) -> monit::MonitFile {
        self.monit_file_with(
            service,
            "",
            "if totalmem > 100 Mb for 3 cycles then restart",
        )
    }

    /// The monit file of a job with one process of `kind` (see [`CTL`]) and the `tests`.
    fn monit_file_with(&self, service: &str, kind: &str, tests: &str) -> monit::MonitFile {
        let ctl = self.dir.path().join("ctl");
        let pidfile = self.pidfile(service);
        let text = format!(
            "check process {service}\n  with pidfile {pidfile}\n  \
             start program \"{ctl} start {pidfile} {kind}\"\n  \
             stop program \"{ctl} stop {pidfile}\" with timeout 10 seconds\n  \
             group vcap\n  {tests}\n",
            pidfile = pidfile.display(),
            ctl = ctl.display(),
        );
        monit::parse(&text).expect("a valid monit file")
    }

    fn supervisor(&self) -> (Supervisor, mpsc::Receiver<MonitAlert>) {
        let (sender, alerts) = mpsc::channel(16);
        let config = Config {
            cycle: Duration::from_millis(50),
            poll_cycle: Duration::from_millis(100),
            start_timeout: Duration::from_secs(10),
            restart_backoff_initial: Duration::from_millis(50),
            output_dir: Some(self.dir.path().to_owned()),
            ..Config::default()
        };
        let spawner = Arc::clone(&self.spawner) as Arc<dyn Spawner>;
        let supervisor = Supervisor::new(config, spawner, HostPaths::system(), sender);
        (supervisor, alerts)
    }

    /// How many times the script started the service.
    fn starts(&self, service: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("{service}.pid.starts")))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pid") {
                if let Some(pid) = read_pid(&path) {
                    let _ = self.spawner.signal(pid, Signal::Kill);
                }
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Polls `condition` every 10 ms for up to 20 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn running_pid(supervisor: &Supervisor, service: &str) -> Option<u32> {
    supervisor
        .services()
        .into_iter()
        .find(|s| s.name == service && s.state == ServiceState::Running)
        .and_then(|s| s.pid)
}

async fn next_alert(alerts: &mut mpsc::Receiver<MonitAlert>) -> MonitAlert {
    tokio::time::timeout(Duration::from_secs(20), alerts.recv())
        .await
        .expect("an alert within 20 s")
        .expect("the alert channel is open")
}

#[tokio::test]
async fn a_killed_process_is_restarted_and_stop_all_ends_it() {
    let jobs = Jobs::new();
    let (supervisor, mut alerts) = jobs.supervisor();
    supervisor
        .replace_jobs(vec![("web".into(), jobs.monit_file("web"))])
        .unwrap();
    supervisor.start_all().unwrap();
    eventually("web to run", || running_pid(&supervisor, "web").is_some()).await;
    let first = running_pid(&supervisor, "web").unwrap();
    assert_eq!(read_pid(&jobs.pidfile("web")), Some(first));
    assert!(jobs.spawner.is_alive(first));
    assert_eq!(supervisor.job_state(false), JobState::Running);
    let process = &supervisor.processes()[0];
    assert_eq!(
        (process.name.as_str(), process.state.as_str()),
        ("web", "running")
    );
    assert!(process.mem.kb > 0, "{process:?}");

    jobs.spawner.signal(first, Signal::Kill).unwrap();
    let alert = next_alert(&mut alerts).await;
    assert_eq!(
        (
            alert.service.as_str(),
            alert.event.as_str(),
            alert.action.as_str()
        ),
        ("web", "does not exist", "restart")
    );
    eventually("web to run again", || {
        running_pid(&supervisor, "web").is_some_and(|pid| pid != first)
    })
    .await;
    let second = running_pid(&supervisor, "web").unwrap();
    assert!(jobs.spawner.is_alive(second));
    assert_eq!(jobs.starts("web"), 2);

    supervisor.stop_all().await.unwrap();
    assert!(!jobs.spawner.is_alive(second));
    assert_eq!(supervisor.job_state(true), JobState::Stopped);
    assert_eq!(supervisor.services()[0].state, ServiceState::Stopped);
}

#[tokio::test]
async fn a_new_supervisor_adopts_running_processes_without_restarting_them() {
    let jobs = Jobs::new();
    let (first, _alerts) = jobs.supervisor();
    first
        .replace_jobs(vec![
            ("web".into(), jobs.monit_file("web")),
            ("worker".into(), jobs.monit_file("worker")),
        ])
        .unwrap();
    first.start_all().unwrap();
    eventually("both to run", || {
        first.job_state(false) == JobState::Running && first.services().len() == 2
    })
    .await;
    let pids: Vec<Option<u32>> = ["web", "worker"]
        .iter()
        .map(|s| running_pid(&first, s))
        .collect();
    // The agent goes away; its job processes do not.
    drop(first);

    let (second, _alerts) = jobs.supervisor();
    second
        .replace_jobs(vec![
            ("web".into(), jobs.monit_file("web")),
            ("worker".into(), jobs.monit_file("worker")),
        ])
        .unwrap();
    eventually("adoption", || second.job_state(false) == JobState::Running).await;
    let adopted: Vec<Option<u32>> = ["web", "worker"]
        .iter()
        .map(|s| running_pid(&second, s))
        .collect();
    assert_eq!(adopted, pids);
    assert_eq!((jobs.starts("web"), jobs.starts("worker")), (1, 1));

    second.stop_all().await.unwrap();
    for pid in pids.into_iter().flatten() {
        assert!(!jobs.spawner.is_alive(pid));
    }
}

/// Waits for an alert whose event is `event`, skipping others.
async fn alert_of(alerts: &mut mpsc::Receiver<MonitAlert>, event: &str) -> MonitAlert {
    loop {
        let alert = next_alert(alerts).await;
        if alert.event == event {
            return alert;
        }
    }
}

#[tokio::test]
async fn a_process_over_its_memory_limit_is_restarted() {
    let jobs = Jobs::new();
    let (supervisor, mut alerts) = jobs.supervisor();
    // Any real process uses more than 16 kB.
    let file = jobs.monit_file_with("web", "", "if totalmem > 16 KB for 2 cycles then restart");
    supervisor.replace_jobs(vec![("web".into(), file)]).unwrap();
    supervisor.start_all().unwrap();
    eventually("web to run", || running_pid(&supervisor, "web").is_some()).await;
    let first = running_pid(&supervisor, "web").unwrap();
    let alert = alert_of(&mut alerts, "resource limit matched").await;
    assert_eq!(alert.action, "restart");
    assert!(
        alert.description.starts_with("total mem amount of ")
            && alert
                .description
                .ends_with("kB matches resource limit [total mem amount>16kB]"),
        "{}",
        alert.description
    );
    eventually("web to run again", || {
        running_pid(&supervisor, "web").is_some_and(|pid| pid != first)
    })
    .await;
    assert!(!jobs.spawner.is_alive(first));
    supervisor.stop_all().await.unwrap();
}

#[tokio::test]
async fn a_busy_process_raises_cpu_and_children_alerts() {
    let jobs = Jobs::new();
    let (supervisor, mut alerts) = jobs.supervisor();
    let file = jobs.monit_file_with(
        "busy",
        "busy",
        "if cpu > 5% for 2 cycles then alert\n  if children > 1 then alert",
    );
    supervisor
        .replace_jobs(vec![("busy".into(), file)])
        .unwrap();
    supervisor.start_all().unwrap();
    eventually("busy to run", || running_pid(&supervisor, "busy").is_some()).await;
    let pid = running_pid(&supervisor, "busy").unwrap();
    let mut descriptions = Vec::new();
    while descriptions.len() < 2 {
        let alert = alert_of(&mut alerts, "resource limit matched").await;
        assert_eq!(alert.action, "alert");
        descriptions.push(alert.description);
    }
    descriptions.sort();
    assert_eq!(
        descriptions[0], "children of 2 matches resource limit [children>1]",
        "{descriptions:?}"
    );
    assert!(
        descriptions[1].starts_with("cpu usage of")
            && descriptions[1].ends_with("matches resource limit [cpu usage>5.0%]"),
        "{descriptions:?}"
    );
    let report = supervisor.report();
    assert_eq!(
        report.services[0].failure,
        Some(jobs::process::Failure::ResourceLimit)
    );
    assert_eq!(running_pid(&supervisor, "busy"), Some(pid), "alerts only");
    supervisor.stop_all().await.unwrap();
    assert!(!jobs.spawner.is_alive(pid));
}

#[tokio::test]
async fn a_process_that_keeps_dying_hits_its_restart_limit() {
    let jobs = Jobs::new();
    let (supervisor, mut alerts) = jobs.supervisor();
    let file = jobs.monit_file_with(
        "brief",
        "brief",
        "if 2 restarts within 50 cycles then timeout",
    );
    supervisor
        .replace_jobs(vec![("brief".into(), file)])
        .unwrap();
    supervisor.start_all().unwrap();
    let alert = alert_of(&mut alerts, "timeout").await;
    assert_eq!(alert.action, "unmonitor");
    // At least the limit's two restarts, counted at the poll cycle that saw them.
    let restarts: Option<u32> = alert
        .description
        .strip_prefix("service restarted ")
        .and_then(|rest| rest.split_once(" times within "))
        .and_then(|(count, rest)| rest.ends_with(" cycles(s) - unmonitor").then_some(count))
        .and_then(|count| count.parse().ok());
    assert!(
        restarts.is_some_and(|count| count >= 2),
        "{}",
        alert.description
    );
    eventually("brief to be unmonitored", || {
        supervisor.services()[0].state == ServiceState::Unmonitored
    })
    .await;
    let starts = jobs.starts("brief");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jobs.starts("brief"), starts, "no restart once unmonitored");
    assert!(starts >= 3, "the start and two restarts: {starts}");
}
