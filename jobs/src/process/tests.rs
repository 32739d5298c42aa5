//! Unit tests of the supervisor's state machine, with `FakeSpawner` playing the jobs' programs and a
//! fake `/proc` under a temporary root.
//!
//! The fake programs: `/jobs/ctl start <pidfile>` starts a (fake) process and writes its pid to the
//! pidfile, `/jobs/ctl stop <pidfile>` kills the process the pidfile names; `/jobs/hang ...` does
//! nothing at all, like a start program whose daemon never comes up or a stop program that fails to
//! stop. Every wait polls with a bound; the supervision cycle is 10 ms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::HostPaths;
use platform::testing::FakeSpawner;
use tokio::sync::mpsc;

use super::*;
use crate::monit;

struct Harness {
    root: tempfile::TempDir,
    spawner: Arc<FakeSpawner>,
    supervisor: Supervisor,
    alerts: mpsc::Receiver<MonitAlert>,
}

fn config() -> Config {
    Config {
        cycle: Duration::from_millis(10),
        start_timeout: Duration::from_millis(300),
        stop_timeout: Duration::from_millis(300),
        stop_all_timeout: Duration::from_secs(10),
        restart_backoff_initial: Duration::from_millis(20),
        restart_backoff_max: Duration::from_millis(200),
        poll_cycle: Duration::from_millis(30),
        ..Config::default()
    }
}

impl Harness {
    fn new(config: Config) -> Harness {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("run")).unwrap();
        let spawner = Arc::new(FakeSpawner::new());
        spawner.on_spawn(|spawned, fake| {
            let argv = spawned.argv();
            match (argv[0].as_str(), argv.get(1).map(String::as_str)) {
                ("/jobs/ctl", Some("start")) => {
                    let pid = fake.start_process();
                    std::fs::write(&argv[2], format!("{pid}\n")).unwrap();
                }
                ("/jobs/ctl", Some("stop")) => {
                    if let Some(pid) = pidfile::read(Path::new(&argv[2])) {
                        fake.mark_dead(pid);
                    }
                }
                _ => {}
            }
            // The program itself is done.
            fake.mark_dead(spawned.pid);
        });
        let (sender, alerts) = mpsc::channel(64);
        let supervisor = Supervisor::new(
            config,
            Arc::clone(&spawner) as Arc<dyn Spawner>,
            HostPaths::with_root(root.path()),
            sender,
        );
        Harness {
            root,
            spawner,
            supervisor,
            alerts,
        }
    }

    fn pidfile(&self, service: &str) -> PathBuf {
        self.root.path().join("run").join(format!("{service}.pid"))
    }

    /// A process check of group `vcap` run by `program` (`ctl` or `hang`), plus `extra` lines.
    fn check(&self, service: &str, program: &str, extra: &str) -> String {
        let pidfile = self.pidfile(service).display().to_string();
        format!(
            "check process {service} with pidfile {pidfile}\n  \
             start program \"/jobs/{program} start {pidfile}\"\n  \
             stop program \"/jobs/{program} stop {pidfile}\"\n  \
             group vcap\n  {extra}\n"
        )
    }

    fn load(&self, jobs: &[(&str, String)]) -> Result<()> {
        self.supervisor.replace_jobs(
            jobs.iter()
                .map(|(job, text)| ((*job).to_owned(), monit::parse(text).unwrap()))
                .collect(),
        )
    }

    fn state(&self, service: &str) -> Option<ServiceState> {
        self.status(service).map(|s| s.state)
    }

    fn status(&self, service: &str) -> Option<ServiceStatus> {
        self.supervisor
            .services()
            .into_iter()
            .find(|s| s.name == service)
    }

    fn pid(&self, service: &str) -> Option<u32> {
        self.status(service).and_then(|s| s.pid)
    }

    /// The argv of every spawn whose program is `/jobs/<program>` and whose action is `action`.
    fn spawns(&self, action: &str) -> Vec<String> {
        self.spawner
            .spawned_argv()
            .into_iter()
            .filter(|argv| argv.get(1).is_some_and(|a| a == action))
            .map(|argv| {
                Path::new(&argv[2])
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    /// Every `/jobs/<program> <action> <pidfile>` spawn so far, as `<action> <service>`, in order.
    fn history(&self) -> Vec<String> {
        self.spawner
            .spawned_argv()
            .into_iter()
            .filter(|argv| argv.len() >= 3)
            .map(|argv| {
                let service = Path::new(&argv[2])
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                format!("{} {service}", argv[1])
            })
            .collect()
    }

    /// Writes a fake `/proc` entry for `pid` (a child of `ppid`) using `rss_kb` of memory and `ticks`
    /// of CPU, on a host with 100 MB of memory and one CPU.
    fn write_proc(&self, pid: u32, ppid: u32, rss_kb: u64, ticks: u64) {
        let host = HostPaths::with_root(self.root.path());
        let write = |name: &str, text: String| {
            let path = host.proc(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let mut fields = vec!["0".to_owned(); 50];
        fields[0] = "S".into();
        fields[1] = ppid.to_string();
        fields[11] = ticks.to_string();
        write(
            &format!("{pid}/stat"),
            format!("{pid} (job) {}", fields.join(" ")),
        );
        write(&format!("{pid}/status"), format!("VmRSS:\t{rss_kb} kB\n"));
        write("uptime", "1000.00 0.00\n".into());
        write("meminfo", "MemTotal: 100000 kB\n".into());
        write("stat", "cpu 0\ncpu0 0\n".into());
    }

    async fn wait_for_state(&self, service: &str, state: ServiceState) {
        eventually(&format!("{service} to be {state:?}"), || {
            self.state(service) == Some(state)
        })
        .await;
    }

    async fn next_alert(&mut self) -> MonitAlert {
        tokio::time::timeout(Duration::from_secs(10), self.alerts.recv())
            .await
            .expect("an alert within 10 s")
            .expect("the alert channel is open")
    }

    /// Lets a few supervision cycles pass.
    async fn cycles(&self, count: u32) {
        tokio::time::sleep(self.supervisor.inner.config.cycle * count).await;
    }
}

/// Polls `condition` every 5 ms for up to 10 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn start_all_starts_dependencies_first_and_waits_for_them() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "depends on db");
    let db = harness.check("db", "hang", "");
    harness.load(&[("web", web), ("db", db)]).unwrap();
    harness.supervisor.start_all().unwrap();
    eventually("db's start", || harness.spawns("start") == ["db"]).await;
    harness.cycles(5).await;
    assert_eq!(harness.spawns("start"), ["db"], "web waits for db");
    assert_eq!(harness.state("web"), Some(ServiceState::Starting));
    assert_eq!(harness.supervisor.job_state(false), JobState::Starting);

    // db's daemon comes up: its pidfile names a live process.
    let db_pid = harness.spawner.start_process();
    std::fs::write(harness.pidfile("db"), db_pid.to_string()).unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    assert_eq!(harness.spawns("start"), ["db", "web"]);
    assert_eq!(harness.pid("db"), Some(db_pid));
    assert_eq!(harness.supervisor.job_state(false), JobState::Running);
}

#[tokio::test]
async fn a_stuck_start_delays_no_other_service() {
    let harness = Harness::new(Config {
        start_timeout: Duration::from_secs(60),
        ..config()
    });
    let stuck = harness.check("stuck", "hang", "");
    let web = harness.check("web", "ctl", "");
    harness.load(&[("stuck", stuck), ("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    assert_eq!(harness.state("stuck"), Some(ServiceState::Starting));
    assert_eq!(harness.supervisor.job_state(false), JobState::Starting);
}

#[tokio::test]
async fn a_start_that_never_writes_its_pidfile_is_failing_and_alerts_once() {
    let mut harness = Harness::new(config());
    let broken = harness.check("broken", "hang", "");
    harness.load(&[("broken", broken)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness
        .wait_for_state("broken", ServiceState::Failing)
        .await;
    let alert = harness.next_alert().await;
    assert_eq!(
        (
            alert.service.as_str(),
            alert.event.as_str(),
            alert.action.as_str(),
            alert.description.as_str()
        ),
        ("broken", "execution failed", "alert", "failed to start")
    );
    assert_eq!(harness.supervisor.job_state(false), JobState::Failing);
    assert_eq!(harness.supervisor.processes()[0].state, "failing");
    // It is retried, but the failure is alerted once.
    eventually("a retry", || harness.spawns("start").len() >= 2).await;
    harness
        .wait_for_state("broken", ServiceState::Failing)
        .await;
    assert!(harness.alerts.try_recv().is_err(), "one alert per failure");
}

#[tokio::test]
async fn a_program_that_cannot_be_spawned_is_execution_failed() {
    let mut harness = Harness::new(config());
    harness.spawner.fail_program("/jobs/ctl");
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    let alert = harness.next_alert().await;
    assert_eq!(
        (alert.event.as_str(), alert.description.as_str()),
        ("execution failed", "failed to start")
    );
    assert_eq!(harness.state("web"), Some(ServiceState::Failing));
}

#[tokio::test]
async fn a_dead_process_is_restarted_with_alerts() {
    let mut harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let first = harness.pid("web").unwrap();

    harness.spawner.mark_dead(first);
    let alert = harness.next_alert().await;
    assert_eq!(
        (
            alert.service.as_str(),
            alert.event.as_str(),
            alert.action.as_str(),
            alert.description.as_str()
        ),
        ("web", "does not exist", "restart", "process is not running")
    );
    eventually("a new process", || {
        harness.pid("web").is_some_and(|pid| pid != first)
    })
    .await;
    let second = harness.pid("web").unwrap();
    let alert = harness.next_alert().await;
    assert_eq!(
        (alert.event.as_str(), alert.description),
        ("exists", format!("process is running with pid {second}"))
    );
    assert_eq!(harness.spawns("start"), ["web", "web"]);
    let restart = &harness.spawner.spawned()[1];
    assert!(
        restart
            .cmd
            .env
            .contains(&("MONIT_EVENT".into(), "Does not exist".into()))
    );
    assert!(restart.options.clears_env);
}

#[tokio::test]
async fn a_process_that_keeps_dying_is_restarted_ever_later() {
    let mut harness = Harness::new(Config {
        restart_backoff_initial: Duration::from_millis(50),
        restart_backoff_max: Duration::from_secs(60),
        ..config()
    });
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    let mut gaps = Vec::new();
    for _ in 0..4 {
        harness.wait_for_state("web", ServiceState::Running).await;
        let pid = harness.pid("web").unwrap();
        harness.spawner.mark_dead(pid);
        let died = Instant::now();
        eventually("a restart", || {
            harness.pid("web").is_some_and(|new| new != pid)
        })
        .await;
        gaps.push(died.elapsed());
        // `does not exist`, then `exists`.
        harness.next_alert().await;
        harness.next_alert().await;
    }
    // At once, then 50 ms, 100 ms, 200 ms: each wait is at least its back-off (never an upper bound
    // on timing).
    for (gap, floor_ms) in gaps.iter().zip([0, 50, 100, 200]) {
        assert!(
            *gap >= Duration::from_millis(floor_ms),
            "{gaps:?} should back off"
        );
    }
}

#[tokio::test]
async fn passive_services_alert_but_are_not_restarted() {
    let mut harness = Harness::new(config());
    let web = harness.check("web", "ctl", "mode passive");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness.spawner.mark_dead(harness.pid("web").unwrap());
    let alert = harness.next_alert().await;
    assert_eq!(
        (alert.event.as_str(), alert.action.as_str()),
        ("does not exist", "alert")
    );
    harness.cycles(10).await;
    assert_eq!(harness.spawns("start"), ["web"]);
    assert_eq!(harness.state("web"), Some(ServiceState::Failing));
}

#[tokio::test]
async fn manual_services_are_started_only_by_name() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    let manual = harness.check("manual", "ctl", "mode manual");
    harness.load(&[("web", web), ("manual", manual)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness.cycles(5).await;
    assert_eq!(harness.spawns("start"), ["web"]);
    assert_eq!(harness.state("manual"), Some(ServiceState::Unmonitored));
    // Not watched is failing, as Go aggregates monit's `monitor == 0`.
    assert_eq!(harness.supervisor.job_state(false), JobState::Failing);

    harness.supervisor.start(&Target::parse("manual")).unwrap();
    harness
        .wait_for_state("manual", ServiceState::Running)
        .await;
    assert_eq!(harness.supervisor.job_state(false), JobState::Running);
    assert_eq!(
        harness.supervisor.start(&Target::parse("ghost")),
        Err(Error::UnknownService("ghost".into()))
    );
}

#[tokio::test]
async fn live_processes_are_adopted_without_a_restart() {
    let mut harness = Harness::new(config());
    let pid = harness.spawner.start_process();
    std::fs::write(harness.pidfile("web"), format!("{pid}\n")).unwrap();
    let web = harness.check("web", "ctl", "");
    let idle = harness.check("idle", "ctl", "");
    harness.load(&[("web", web), ("idle", idle)]).unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness
        .wait_for_state("idle", ServiceState::Unmonitored)
        .await;
    assert_eq!(harness.pid("web"), Some(pid));
    assert!(harness.spawner.spawned().is_empty(), "nothing was started");

    // Adopted means watched: a death is restarted.
    harness.spawner.mark_dead(pid);
    assert_eq!(harness.next_alert().await.event, "does not exist");
    eventually("a restart", || {
        harness.pid("web").is_some_and(|new| new != pid)
    })
    .await;
    assert_eq!(harness.spawns("start"), ["web"]);
}

#[tokio::test]
async fn a_second_supervisor_adopts_what_the_first_started() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web.clone())]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let pid = harness.pid("web").unwrap();
    harness.supervisor.shutdown().await;
    assert_eq!(harness.supervisor.job_state(false), JobState::Unknown);
    assert_eq!(harness.supervisor.start_all(), Err(Error::ShutDown));

    let (sender, _alerts) = mpsc::channel(4);
    let second = Supervisor::new(
        config(),
        Arc::clone(&harness.spawner) as Arc<dyn Spawner>,
        HostPaths::with_root(harness.root.path()),
        sender,
    );
    second
        .replace_jobs(vec![("web".into(), monit::parse(&web).unwrap())])
        .unwrap();
    eventually("adoption", || {
        second.services()[0].state == ServiceState::Running
    })
    .await;
    assert_eq!(second.services()[0].pid, Some(pid));
    assert_eq!(harness.spawns("start"), ["web"], "no second start");
}

#[tokio::test]
async fn unmonitor_stops_watching_without_stopping() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let pid = harness.pid("web").unwrap();
    harness.supervisor.unmonitor_all().unwrap();
    harness
        .wait_for_state("web", ServiceState::Unmonitored)
        .await;
    assert!(harness.spawner.is_alive(pid));
    assert_eq!(harness.spawns("stop"), Vec::<String>::new());
    harness.spawner.mark_dead(pid);
    harness.cycles(10).await;
    assert_eq!(
        harness.spawns("start"),
        ["web"],
        "no restart while unmonitored"
    );
    assert_eq!(harness.supervisor.job_state(false), JobState::Failing);
    assert_eq!(harness.supervisor.processes()[0].state, "unknown");
}

#[tokio::test]
async fn stop_all_stops_dependants_first_and_waits_for_the_processes() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "depends on db");
    let db = harness.check("db", "ctl", "");
    // `worker` is outside the group but depends on a group service: it is stopped too.
    let worker = format!(
        "check process worker with pidfile {}\n start program \"/jobs/ctl start {0}\"\n \
         stop program \"/jobs/ctl stop {0}\"\n depends on db\n",
        harness.pidfile("worker").display()
    );
    harness
        .load(&[("web", web), ("db", db), ("worker", worker)])
        .unwrap();
    harness.supervisor.start_all().unwrap();
    harness.supervisor.start(&Target::parse("worker")).unwrap();
    for service in ["web", "db", "worker"] {
        harness.wait_for_state(service, ServiceState::Running).await;
    }
    let pids: Vec<u32> = ["web", "db", "worker"]
        .iter()
        .map(|s| harness.pid(s).unwrap())
        .collect();

    harness.supervisor.stop_all().await.unwrap();
    let stops = harness.spawns("stop");
    assert_eq!(stops.len(), 3);
    assert_eq!(stops.last().map(String::as_str), Some("db"), "{stops:?}");
    for pid in pids {
        assert!(!harness.spawner.is_alive(pid));
    }
    for service in ["web", "db", "worker"] {
        assert_eq!(harness.state(service), Some(ServiceState::Stopped));
    }
    assert_eq!(harness.supervisor.job_state(true), JobState::Stopped);
    assert_eq!(harness.supervisor.job_state(false), JobState::Failing);
    // Stopped is not watched: nothing restarts.
    harness.cycles(5).await;
    assert_eq!(harness.spawns("start").len(), 3);
}

#[tokio::test]
async fn a_process_that_outlives_its_stop_program_fails_the_stop() {
    let mut harness = Harness::new(config());
    let pid = harness.spawner.start_process();
    std::fs::write(harness.pidfile("stubborn"), pid.to_string()).unwrap();
    let stubborn = harness.check("stubborn", "hang", "");
    harness.load(&[("stubborn", stubborn)]).unwrap();
    harness
        .wait_for_state("stubborn", ServiceState::Running)
        .await;
    let err = harness.supervisor.stop_all().await.unwrap_err();
    assert_eq!(err.to_string(), "stopping services stubborn failed");
    let alert = harness.next_alert().await;
    assert_eq!(
        (alert.event.as_str(), alert.description.as_str()),
        ("execution failed", "failed to stop")
    );
    assert!(harness.spawner.is_alive(pid));
}

#[tokio::test]
async fn stop_all_gives_up_after_its_timeout() {
    let harness = Harness::new(Config {
        stop_timeout: Duration::from_secs(60),
        stop_all_timeout: Duration::from_millis(100),
        ..config()
    });
    let pid = harness.spawner.start_process();
    std::fs::write(harness.pidfile("slow"), pid.to_string()).unwrap();
    let slow = harness.check("slow", "hang", "");
    harness.load(&[("slow", slow)]).unwrap();
    harness.wait_for_state("slow", ServiceState::Running).await;
    let err = harness.supervisor.stop_all().await.unwrap_err();
    assert_eq!(
        err,
        Error::StopTimedOut {
            services: vec!["slow".into()],
            timeout: Duration::from_millis(100)
        }
    );
    assert_eq!(harness.state("slow"), Some(ServiceState::Stopping));
}

#[tokio::test]
async fn a_changed_pid_is_alerted_and_followed() {
    let mut harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let other = harness.spawner.start_process();
    std::fs::write(harness.pidfile("web"), other.to_string()).unwrap();
    let alert = harness.next_alert().await;
    assert_eq!(
        (alert.event.as_str(), alert.description),
        ("pid changed", format!("process PID changed to {other}"))
    );
    assert_eq!(harness.pid("web"), Some(other));
    assert_eq!(harness.state("web"), Some(ServiceState::Running));
}

#[tokio::test]
async fn bad_dependencies_are_refused_and_change_nothing() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web.clone())]).unwrap();

    let a = harness.check("a", "ctl", "depends on b");
    let b = harness.check("b", "ctl", "depends on a");
    assert_eq!(
        harness
            .load(&[("web", web.clone()), ("a", a), ("b", b)])
            .unwrap_err()
            .to_string(),
        "services depend on each other in a cycle: a -> b -> a"
    );
    let lonely = harness.check("lonely", "ctl", "depends on ghost");
    assert_eq!(
        harness.load(&[("lonely", lonely)]).unwrap_err(),
        Error::UnknownDependency {
            job: "lonely".into(),
            service: "lonely".into(),
            dependency: "ghost".into()
        }
    );
    assert_eq!(
        harness
            .load(&[("one", web.clone()), ("two", web)])
            .unwrap_err()
            .to_string(),
        "service web is defined by job one and by job two"
    );
    let names: Vec<String> = harness
        .supervisor
        .services()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["web"]);
}

#[tokio::test]
async fn reloading_keeps_unchanged_services_and_forgets_removed_ones() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    let db = harness.check("db", "ctl", "");
    harness
        .load(&[("web", web.clone()), ("db", db.clone())])
        .unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness.wait_for_state("db", ServiceState::Running).await;
    let web_pid = harness.pid("web").unwrap();

    harness.load(&[("web", web)]).unwrap();
    assert_eq!(harness.state("web"), Some(ServiceState::Running));
    assert_eq!(harness.pid("web"), Some(web_pid));
    assert_eq!(harness.state("db"), None);
    let db_file = monit::parse(&db).unwrap();
    harness.supervisor.add_job("db", db_file).unwrap();
    harness.wait_for_state("db", ServiceState::Running).await;
    assert_eq!(
        harness.spawns("start").len(),
        2,
        "db was adopted, not started again"
    );
    assert_eq!(harness.spawns("stop"), Vec::<String>::new());
}

#[tokio::test]
async fn processes_report_usage_from_proc() {
    let harness = Harness::new(config());
    let pid = harness.spawner.start_process();
    std::fs::write(harness.pidfile("web"), pid.to_string()).unwrap();
    let web = harness.check("web", "ctl", "");
    let other = format!(
        "check process other with pidfile {}\n",
        harness.pidfile("other").display()
    );
    harness
        .load(&[
            ("web", web),
            ("other", other),
            ("idle", harness.check("idle", "ctl", "")),
        ])
        .unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness
        .wait_for_state("idle", ServiceState::Unmonitored)
        .await;

    let proc = HostPaths::with_root(harness.root.path());
    let write = |name: &str, text: String| {
        let path = proc.proc(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    // Started 100 s after boot, 1000 s ago, with 100 ticks of CPU so far; one child.
    let stat = |pid: u32, ppid: u32, utime: u64| {
        let mut fields = vec!["0".to_owned(); 50];
        fields[0] = "S".into();
        fields[1] = ppid.to_string();
        fields[11] = utime.to_string();
        fields[19] = "10000".into();
        format!("{pid} (web) {}", fields.join(" "))
    };
    write("uptime", "1100.00 0.00\n".into());
    write("meminfo", "MemTotal: 100000 kB\n".into());
    write("stat", "cpu 0\ncpu0 0\n".into());
    write(&format!("{pid}/stat"), stat(pid, 1, 60));
    write(&format!("{pid}/status"), "VmRSS:\t3000 kB\n".into());
    write("77777/stat", stat(77_777, pid, 40));
    write("77777/status", "VmRSS:\t2000 kB\n".into());

    let processes = harness.supervisor.processes();
    // `other` is not in the group: not reported.
    let names: Vec<&str> = processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "idle"]);
    let web = &processes[0];
    assert_eq!(web.state, "running");
    assert_eq!(web.uptime.secs, 1000);
    assert_eq!(web.mem.kb, 5000);
    assert_eq!(web.mem.percent, 5.0);
    // 100 ticks = 1 s of CPU over 1000 s.
    assert_eq!(web.cpu.total, 0.1);
    let idle = &processes[1];
    assert_eq!(
        (idle.state.as_str(), idle.uptime.secs, idle.mem.kb),
        ("unknown", 0, 0)
    );

    // The next call measures since the previous one: 10 s later, 500 more ticks = 50 %.
    write("uptime", "1110.00 0.00\n".into());
    write(&format!("{pid}/stat"), stat(pid, 1, 560));
    assert_eq!(harness.supervisor.processes()[0].cpu.total, 50.0);
}

#[test]
fn the_job_state_is_aggregated_as_go_does() {
    use ServiceState::*;
    let cases: &[(&[ServiceState], bool, JobState)] = &[
        (&[], false, JobState::Running),
        (&[Running, Running], false, JobState::Running),
        (&[Running, Failing], false, JobState::Failing),
        (&[Failing, Starting], false, JobState::Starting),
        (&[Running, Unmonitored], false, JobState::Failing),
        (&[Stopped], false, JobState::Failing),
        (&[Stopping], false, JobState::Failing),
        (&[Running, Starting, Failing], true, JobState::Stopped),
        (&[], true, JobState::Stopped),
    ];
    for (states, is_stopped, expected) in cases {
        assert_eq!(
            aggregate(states.iter().copied(), *is_stopped),
            *expected,
            "{states:?} stopped={is_stopped}"
        );
    }
    assert_eq!(JobState::Failing.to_string(), "failing");
    assert_eq!(Unmonitored.status(), "unknown");
    assert_eq!(Starting.status(), "starting");
}

#[test]
fn services_are_only_watched_inside_a_runtime() {
    let (sender, _alerts) = mpsc::channel(1);
    let supervisor = Supervisor::new(
        config(),
        Arc::new(FakeSpawner::new()),
        HostPaths::with_root("/nonexistent"),
        sender,
    );
    assert_eq!(supervisor.replace_jobs(Vec::new()), Err(Error::NoRuntime));
}

#[tokio::test]
async fn a_full_alert_channel_drops_alerts_instead_of_blocking() {
    let root = tempfile::tempdir().unwrap();
    let spawner = Arc::new(FakeSpawner::new());
    let (sender, mut alerts) = mpsc::channel(1);
    let supervisor = Supervisor::new(
        config(),
        Arc::clone(&spawner) as Arc<dyn Spawner>,
        HostPaths::with_root(root.path()),
        sender,
    );
    let pidfile = root.path().join("web.pid");
    let text = format!(
        "check process web with pidfile {}\n start program \"/jobs/hang start\"\n group vcap\n",
        pidfile.display()
    );
    for _ in 0..3 {
        let pid = spawner.start_process();
        std::fs::write(&pidfile, pid.to_string()).unwrap();
        supervisor
            .replace_jobs(vec![("web".into(), monit::parse(&text).unwrap())])
            .unwrap();
        eventually("adoption", || supervisor.services()[0].pid == Some(pid)).await;
        spawner.mark_dead(pid);
        eventually("the death", || {
            supervisor.services()[0].state == ServiceState::Failing
        })
        .await;
    }
    assert_eq!(alerts.recv().await.unwrap().event, "does not exist");
    assert!(supervisor.inner.dropped_alerts.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_death_is_noticed_while_another_start_hangs() {
    let mut harness = Harness::new(Config {
        start_timeout: Duration::from_secs(60),
        ..config()
    });
    let stuck = harness.check("stuck", "hang", "");
    let web = harness.check("web", "ctl", "");
    harness.load(&[("stuck", stuck), ("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let first = harness.pid("web").unwrap();
    harness.spawner.mark_dead(first);
    assert_eq!(harness.next_alert().await.event, "does not exist");
    eventually("web's restart", || {
        harness.pid("web").is_some_and(|pid| pid != first)
    })
    .await;
    assert_eq!(harness.state("stuck"), Some(ServiceState::Starting));
}

#[tokio::test]
async fn operator_operations_take_one_service_or_all() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    let db = harness.check("db", "ctl", "");
    harness.load(&[("web", web), ("db", db)]).unwrap();
    let (web, db, all) = (
        Target::parse("web"),
        Target::parse("db"),
        Target::parse("all"),
    );
    assert_eq!(all, Target::All);

    harness.supervisor.start(&web).unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness.cycles(3).await;
    assert_eq!(harness.state("db"), Some(ServiceState::Unmonitored));

    harness.supervisor.start(&all).unwrap();
    harness.wait_for_state("db", ServiceState::Running).await;
    let web_pid = harness.pid("web").unwrap();
    assert_eq!(
        harness.spawns("start"),
        ["web", "db"],
        "a running web is left alone"
    );

    // Stop waits until the process is gone, and leaves the others running.
    harness.supervisor.stop(&web).await.unwrap();
    assert_eq!(harness.state("web"), Some(ServiceState::Stopped));
    assert!(!harness.spawner.is_alive(web_pid));
    assert_eq!(harness.state("db"), Some(ServiceState::Running));

    // Restart runs the stop program, then the start program.
    let db_pid = harness.pid("db").unwrap();
    harness.supervisor.restart(&db).unwrap();
    eventually("db's new process", || {
        harness.pid("db").is_some_and(|pid| pid != db_pid)
    })
    .await;
    assert!(!harness.spawner.is_alive(db_pid));
    assert_eq!(harness.history()[2..], ["stop web", "stop db", "start db"]);

    // Unmonitor leaves the process running unwatched; monitor adopts it again.
    let db_pid = harness.pid("db").unwrap();
    harness.supervisor.unmonitor(&db).unwrap();
    harness
        .wait_for_state("db", ServiceState::Unmonitored)
        .await;
    assert!(harness.spawner.is_alive(db_pid));
    harness.supervisor.monitor(&db).unwrap();
    harness.wait_for_state("db", ServiceState::Running).await;
    assert_eq!(harness.pid("db"), Some(db_pid));

    // Restarting a stopped service starts it.
    harness.supervisor.restart(&web).unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;

    harness.supervisor.stop(&all).await.unwrap();
    for service in ["web", "db"] {
        assert_eq!(harness.state(service), Some(ServiceState::Stopped));
    }

    let ghost = Target::parse("ghost");
    let unknown = Err(Error::UnknownService("ghost".into()));
    assert_eq!(harness.supervisor.start(&ghost), unknown);
    assert_eq!(harness.supervisor.stop(&ghost).await, unknown);
    assert_eq!(harness.supervisor.restart(&ghost), unknown);
    assert_eq!(harness.supervisor.monitor(&ghost), unknown);
    assert_eq!(harness.supervisor.unmonitor(&ghost), unknown);
    assert_eq!(
        Error::UnknownService("ghost".into()).to_string(),
        "service ghost is not supervised"
    );
}

#[tokio::test]
async fn monitor_restarts_a_service_whose_process_went_while_unwatched() {
    let mut harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web)]).unwrap();
    let web = Target::parse("web");
    harness.supervisor.start(&web).unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let first = harness.pid("web").unwrap();
    harness.supervisor.unmonitor(&web).unwrap();
    harness
        .wait_for_state("web", ServiceState::Unmonitored)
        .await;
    harness.spawner.mark_dead(first);
    harness.cycles(5).await;
    assert_eq!(
        harness.spawns("start"),
        ["web"],
        "not watched: not restarted"
    );

    harness.supervisor.monitor(&web).unwrap();
    let alert = harness.next_alert().await;
    assert_eq!(
        (alert.event.as_str(), alert.action.as_str()),
        ("does not exist", "restart")
    );
    eventually("a new process", || {
        harness.pid("web").is_some_and(|pid| pid != first)
    })
    .await;
}

#[tokio::test]
async fn unmonitor_and_stop_take_the_dependants_along() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "depends on db");
    let db = harness.check("db", "ctl", "");
    harness.load(&[("web", web), ("db", db)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness.supervisor.unmonitor(&Target::parse("db")).unwrap();
    harness
        .wait_for_state("web", ServiceState::Unmonitored)
        .await;
    harness
        .wait_for_state("db", ServiceState::Unmonitored)
        .await;
    // Monitoring web watches what it depends on too.
    harness.supervisor.monitor(&Target::parse("web")).unwrap();
    harness.wait_for_state("db", ServiceState::Running).await;
    harness.wait_for_state("web", ServiceState::Running).await;
    harness.supervisor.stop(&Target::parse("db")).await.unwrap();
    assert_eq!(harness.history()[2..], ["stop web", "stop db"]);
    assert_eq!(harness.state("web"), Some(ServiceState::Stopped));
}

#[tokio::test]
async fn a_restart_stops_the_dependants_first_and_starts_them_after() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "depends on db");
    let worker = harness.check("worker", "ctl", "depends on web");
    let db = harness.check("db", "ctl", "");
    harness
        .load(&[("web", web), ("worker", worker), ("db", db)])
        .unwrap();
    harness.supervisor.start_all().unwrap();
    for service in ["web", "worker", "db"] {
        harness.wait_for_state(service, ServiceState::Running).await;
    }
    assert_eq!(harness.history(), ["start db", "start web", "start worker"]);
    let pids: Vec<u32> = ["web", "worker", "db"]
        .iter()
        .map(|s| harness.pid(s).unwrap())
        .collect();

    harness.supervisor.restart(&Target::parse("db")).unwrap();
    eventually("everything to run again", || {
        ["web", "worker", "db"].iter().zip(&pids).all(|(s, old)| {
            harness.pid(s).is_some_and(|pid| pid != *old)
                && harness.state(s) == Some(ServiceState::Running)
        })
    })
    .await;
    assert_eq!(
        harness.history()[3..],
        [
            "stop worker",
            "stop web",
            "stop db",
            "start db",
            "start web",
            "start worker"
        ]
    );
}

#[tokio::test]
async fn a_death_bounces_the_watched_dependants_around_the_restart() {
    let mut harness = Harness::new(config());
    let web = harness.check("web", "ctl", "depends on db");
    let db = harness.check("db", "ctl", "");
    let manual = harness.check("manual", "ctl", "depends on db\n  mode manual");
    harness
        .load(&[("web", web), ("db", db), ("manual", manual)])
        .unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let (web_pid, db_pid) = (harness.pid("web").unwrap(), harness.pid("db").unwrap());

    harness.spawner.mark_dead(db_pid);
    assert_eq!(harness.next_alert().await.event, "does not exist");
    eventually("both to run again", || {
        harness.pid("web").is_some_and(|pid| pid != web_pid)
            && harness.pid("db").is_some_and(|pid| pid != db_pid)
            && harness.state("web") == Some(ServiceState::Running)
    })
    .await;
    assert!(!harness.spawner.is_alive(web_pid), "web was stopped");
    assert_eq!(
        harness.history()[2..],
        ["stop web", "start db", "start web"],
        "the unwatched manual service is left alone"
    );
    assert_eq!(harness.state("manual"), Some(ServiceState::Unmonitored));
}

#[tokio::test]
async fn a_resource_test_restarts_the_process_after_its_cycles() {
    let mut harness = Harness::new(config());
    let web = harness.check("web", "ctl", "if totalmem > 1 MB for 2 cycles then restart");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let first = harness.pid("web").unwrap();
    // 800 kB, and a child with 400 kB: 1200 kB in all.
    harness.write_proc(first, 1, 800, 0);
    harness.write_proc(77_777, first, 400, 0);
    let alert = harness.next_alert().await;
    assert_eq!(
        (
            alert.event.as_str(),
            alert.action.as_str(),
            alert.description.as_str()
        ),
        (
            "resource limit matched",
            "restart",
            "total mem amount of 1200kB matches resource limit [total mem amount>1024kB]"
        )
    );
    eventually("a new process", || {
        harness.pid("web").is_some_and(|pid| pid != first)
    })
    .await;
    assert!(!harness.spawner.is_alive(first));
    assert_eq!(harness.history(), ["start web", "stop web", "start web"]);
    // The new process has no figures in the fake /proc: nothing more happens.
    harness.cycles(10).await;
    assert_eq!(harness.spawns("start").len(), 2);
}

#[tokio::test]
async fn a_resource_alert_leaves_the_process_running_and_shows_in_the_report() {
    let mut harness = Harness::new(config());
    let web = harness.check("web", "ctl", "if memory > 1% then alert");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let pid = harness.pid("web").unwrap();
    harness.write_proc(pid, 1, 2000, 0);
    let alert = harness.next_alert().await;
    assert_eq!(
        (
            alert.event.as_str(),
            alert.action.as_str(),
            alert.description.as_str()
        ),
        (
            "resource limit matched",
            "alert",
            "mem usage of 2.0% matches resource limit [mem usage>1.0%]"
        )
    );
    let report = harness.supervisor.report();
    assert_eq!(report.services[0].failure, Some(Failure::ResourceLimit));
    assert_eq!(report.services[0].monitor, Monitor::Yes);
    assert_eq!(report.services[0].process.unwrap().mem_kb, 2000);
    harness.cycles(10).await;
    assert_eq!(harness.pid("web"), Some(pid), "only an alert");
    assert!(harness.alerts.try_recv().is_err(), "alerted once");
}

#[tokio::test]
async fn a_restart_limit_unmonitors_the_service_with_a_timeout_alert() {
    let mut harness = Harness::new(Config {
        poll_cycle: Duration::from_millis(50),
        ..config()
    });
    let web = harness.check("web", "ctl", "if 2 restarts within 10 cycles then timeout");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    let mut timeout = None;
    for _ in 0..10 {
        harness.wait_for_state("web", ServiceState::Running).await;
        harness.spawner.mark_dead(harness.pid("web").unwrap());
        // `does not exist`, then `exists` once restarted, or `timeout`.
        loop {
            let alert = harness.next_alert().await;
            if alert.event == "timeout" {
                timeout = Some(alert);
                break;
            }
            if alert.event == "exists" {
                break;
            }
        }
        if timeout.is_some() {
            break;
        }
    }
    let timeout = timeout.expect("a timeout alert");
    assert_eq!(timeout.action, "unmonitor");
    // At least the limit's two restarts, counted at the poll cycle that saw them.
    let restarts: Option<u32> = timeout
        .description
        .strip_prefix("service restarted ")
        .and_then(|rest| rest.split_once(" times within "))
        .and_then(|(count, rest)| rest.ends_with(" cycles(s) - unmonitor").then_some(count))
        .and_then(|count| count.parse().ok());
    assert!(
        restarts.is_some_and(|count| count >= 2),
        "{}",
        timeout.description
    );
    harness
        .wait_for_state("web", ServiceState::Unmonitored)
        .await;
    let starts = harness.spawns("start").len();
    harness.cycles(10).await;
    assert_eq!(harness.spawns("start").len(), starts, "no more restarts");
}

#[tokio::test]
async fn what_cannot_be_honoured_is_reported_and_the_rest_runs() {
    let harness = Harness::new(config());
    let web = harness.check(
        "web",
        "ctl",
        "if failed port 80 then restart\n  if totalmem > 1 MB then start\n  every 2 cycles",
    );
    let text = format!("{web}\ncheck file config with path /etc/config\n");
    harness.load(&[("web", text)]).unwrap();
    let reported = harness.supervisor.not_honoured();
    let lines: Vec<(&str, Option<&str>, usize)> = reported
        .iter()
        .map(|n| (n.job.as_str(), n.service.as_deref(), n.line))
        .collect();
    assert_eq!(
        lines,
        [
            ("web", Some("web"), 1),
            ("web", Some("web"), 5),
            ("web", Some("web"), 6),
            ("web", Some("config"), 9),
        ],
        "{reported:?}"
    );
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
}

#[tokio::test]
async fn a_reload_with_a_changed_file_adopts_the_running_process() {
    let harness = Harness::new(config());
    let web = harness.check("web", "ctl", "");
    harness.load(&[("web", web)]).unwrap();
    harness.supervisor.start_all().unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    let pid = harness.pid("web").unwrap();
    // A changed definition is a new service to the supervisor; its live process is adopted.
    let changed = harness.check("web", "ctl", "if totalmem > 1 GB then alert");
    harness.load(&[("web", changed)]).unwrap();
    harness.wait_for_state("web", ServiceState::Running).await;
    harness.cycles(5).await;
    assert_eq!(harness.pid("web"), Some(pid));
    assert_eq!(
        harness.history(),
        ["start web"],
        "adopted, not started again"
    );
}
