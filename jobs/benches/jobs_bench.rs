//! `cargo bench -p jobs --bench jobs-bench`: the cost of the agent's job machinery, in temporary
//! directories, with no network. It prints figures, with the goal or the Go agent's reference
//! beside each; it asserts nothing about time (STYLE.md §7).
//!
//! 1. Compile overhead: a package whose `packaging` script compiles a tiny C file with `cc`,
//!    compiled 10 times through [`jobs::compile::Compiler`] (local blobstore, the real
//!    [`Installer`] as dependency installer, [`SystemRunner`]) against the same `bash -x packaging`
//!    run by hand 10 times through [`SystemRunner`] with the same environment: medians and ratio.
//! 2. [`Installer::prepare`] then [`Installer::apply`] of a spec with 50 packages and 10 jobs
//!    (tarballs made with [`archive::create`] in a local blobstore): wall time of each, and the
//!    process's peak RSS (`VmHWM`, reset before this stage when the kernel allows it).
//! 3. The process supervisor with 100 `sleep 1000` processes started by a ctl script writing
//!    pidfiles ([`Supervisor`], [`SystemSpawner`], default 1 s cycle): idle CPU of this process
//!    over 10 s and its RSS; the time from a `SIGKILL` to a new running pid (median of 5, each on
//!    a different service so restart back-off does not grow); then everything is stopped and no
//!    `sleep` may be left. A guard kills whatever the pidfiles name on exit, even on panic.
//!
//! Run without `--bench` (as `cargo test` does), it only says how to run it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::apply_spec::ApplySpec;
use jobs::archive::{self, ExtractOptions};
use jobs::blobstore::{Blobstore, LocalBlobstore, SignedClient};
use jobs::compile::{Compiler, Request};
use jobs::install::Installer;
use jobs::monit;
use jobs::process::{Config, ServiceState, Supervisor};
use platform::HostPaths;
use platform::cmd::{Cmd, CommandRunner, Signal, Spawner, SystemRunner, SystemSpawner};
use serde_json::json;
use settings::Dirs;
use settings::model::Networks;

const COMPILES: usize = 10;
const PACKAGES: usize = 50;
const JOBS: usize = 10;
const PROCESSES_PER_JOB: usize = 10;
const KILLS: usize = 5;
const IDLE: Duration = Duration::from_secs(10);
/// `/proc/<pid>/stat` counts CPU time in `USER_HZ` ticks, 100 a second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("jobs-bench: run it with `cargo bench -p jobs --bench jobs-bench`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    compile_overhead(&runtime);
    prepare_and_apply(&runtime);
    supervise(&runtime);
}

// 1. Compile overhead.

const HELLO_C: &str = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n";

const PACKAGING: &str = r#"set -e
mkdir -p "$BOSH_INSTALL_TARGET/bin"
cc -o "$BOSH_INSTALL_TARGET/bin/hello" hello.c
"#;

fn compile_overhead(runtime: &tokio::runtime::Runtime) {
    let root = tempfile::tempdir().expect("a temporary directory");
    let dirs = Dirs::new(root.path().join("vcap"));
    let blobstore = LocalBlobstore::new(root.path().join("blobstore"));
    let source_dir = root.path().join("source");
    write_files(
        &source_dir,
        &[("packaging", PACKAGING, 0o644), ("hello.c", HELLO_C, 0o644)],
    );
    let source_tgz = root.path().join("source.tgz");
    archive::create(&source_dir, &source_tgz).expect("packing the source");

    let installer = Installer::new(dirs.clone(), Arc::new(blobstore.clone()));
    let signed_client = SignedClient::try_new(None).expect("a signed URL client");
    let compiler = Compiler {
        dirs: &dirs,
        blobstore: &blobstore,
        signed_client: &signed_client,
        installer: &installer,
        runner: Arc::new(SystemRunner),
    };
    let (id, digest) = runtime
        .block_on(blobstore.put(&source_tgz))
        .expect("storing the source");
    let request =
        Request::compile_package(&id, &digest.to_string(), "hello", "1.0", &BTreeMap::new())
            .expect("a valid request");
    // One warm-up each, not counted.
    let mut through_compiler = Vec::new();
    for _ in 0..=COMPILES {
        let started = Instant::now();
        runtime
            .block_on(compiler.compile(&request))
            .expect("compiling");
        through_compiler.push(started.elapsed());
    }
    through_compiler.remove(0);

    // By hand: the same source extracted once, the same command and variables.
    let compile_dir = root.path().join("manual/compile/hello");
    let install_target = root.path().join("manual/packages/hello");
    archive::extract(&source_tgz, &compile_dir, &ExtractOptions::default())
        .expect("extracting the source");
    let mut cmd = Cmd::new("bash")
        .args(["-x", "packaging"])
        .env("BOSH_COMPILE_TARGET", &compile_dir)
        .env("BOSH_INSTALL_TARGET", &install_target)
        .env("BOSH_PACKAGE_NAME", "hello")
        .env("BOSH_PACKAGE_VERSION", "1.0");
    cmd.dir = Some(compile_dir.clone());
    let mut by_hand = Vec::new();
    for _ in 0..=COMPILES {
        let _ = fs::remove_dir_all(&install_target);
        fs::create_dir_all(&install_target).expect("creating the install target");
        let started = Instant::now();
        SystemRunner.run(&cmd).expect("running packaging");
        by_hand.push(started.elapsed());
    }
    by_hand.remove(0);

    let compiled = median(through_compiler);
    let manual = median(by_hand);
    let ratio = compiled.as_secs_f64() / manual.as_secs_f64();
    println!(
        "compile: Compiler median {} ({COMPILES} runs)  | Go agent: tiny package 34 ms",
        ms(compiled)
    );
    println!(
        "compile: bash -x packaging by hand median {} ({COMPILES} runs)",
        ms(manual)
    );
    println!(
        "compile: overhead ratio {ratio:.3} ({:+.1}%)  | goal: under 10%",
        (ratio - 1.0) * 100.0
    );
}

// 2. Prepare and apply.

fn prepare_and_apply(runtime: &tokio::runtime::Runtime) {
    let root = tempfile::tempdir().expect("a temporary directory");
    let dirs = Dirs::new(root.path().join("vcap"));
    let blobstore = LocalBlobstore::new(root.path().join("blobstore"));
    let trees = root.path().join("trees");

    let mut packages = serde_json::Map::new();
    for i in 0..PACKAGES {
        let name = format!("pkg-{i}");
        let library = "x".repeat(16 * 1024);
        let tree = trees.join(&name);
        write_files(
            &tree,
            &[
                ("bin/run", "#!/bin/sh\nexec true\n", 0o755),
                ("lib/library.so", &library, 0o644),
                ("share/README", "a package\n", 0o644),
            ],
        );
        let (id, digest) = store(runtime, &blobstore, &tree);
        packages.insert(
            name.clone(),
            json!({"name": name, "version": format!("1.{i}"), "sha1": digest, "blobstore_id": id}),
        );
    }
    let templates_tree = trees.join("templates");
    let mut templates = Vec::new();
    for i in 0..JOBS {
        let job = format!("job-{i}");
        let monit = format!("check process {job}\n  with pidfile /var/vcap/sys/run/{job}/pid\n");
        write_files(
            &templates_tree.join(&job),
            &[
                ("monit", &monit, 0o644),
                ("bin/ctl", "#!/bin/sh\nexec true\n", 0o755),
                ("bin/pre-start", "#!/bin/sh\n", 0o755),
                ("config/job.yml", "port: 8080\n", 0o644),
            ],
        );
        templates.push(json!({"name": job, "version": format!("{i}"), "sha1": "ignored"}));
    }
    let (templates_id, templates_digest) = store(runtime, &blobstore, &templates_tree);
    let spec: ApplySpec = serde_json::from_value(json!({
        "deployment": "bench",
        "name": "api",
        "id": "uuid-1",
        "az": "z1",
        "index": 0,
        "job": {"name": "api", "templates": templates},
        "packages": packages,
        "networks": {"default": {"ip": "10.0.0.5", "netmask": "255.255.255.0", "default": ["dns"]}},
        "configuration_hash": "config-1",
        "rendered_templates_archive": {"sha1": templates_digest, "blobstore_id": templates_id},
    }))
    .expect("a valid apply spec");
    let networks: Networks = serde_json::from_value(json!({
        "default": {"type": "manual", "ip": "10.0.0.5", "netmask": "255.255.255.0", "gateway": "10.0.0.1"}
    }))
    .expect("valid networks");

    let is_peak_reset = fs::write("/proc/self/clear_refs", "5").is_ok();
    let installer = Installer::new(dirs.clone(), Arc::new(blobstore));
    let started = Instant::now();
    runtime.block_on(installer.prepare(&spec)).expect("prepare");
    let prepare = started.elapsed();
    let started = Instant::now();
    runtime
        .block_on(installer.apply(spec, &networks))
        .expect("apply");
    let apply = started.elapsed();
    assert!(
        dirs.jobs_dir().join(format!("job-{}", JOBS - 1)).is_dir(),
        "the last job is enabled"
    );

    println!(
        "install: prepare of {PACKAGES} packages and {JOBS} jobs {}  | Go agent: 12 ms (one small job)",
        ms(prepare)
    );
    println!(
        "install: apply of the same {}  | Go agent: 6 ms (one small job)",
        ms(apply)
    );
    println!(
        "install: peak RSS (VmHWM) {} KiB{}",
        proc_status_kb("VmHWM"),
        if is_peak_reset {
            " (since this stage began)"
        } else {
            " (since the process began)"
        }
    );
}

fn store(
    runtime: &tokio::runtime::Runtime,
    blobstore: &LocalBlobstore,
    tree: &Path,
) -> (String, String) {
    let tgz = tree.with_extension("tgz");
    archive::create(tree, &tgz).expect("packing a tarball");
    let (id, digest) = runtime
        .block_on(blobstore.put(&tgz))
        .expect("storing a blob");
    (id, digest.to_string())
}

// 3. The supervisor.

const CTL: &str = r#"#!/bin/sh
# ctl start|stop <pidfile>
case "$1" in
  start)
    sleep 1000 &
    echo $! > "$2"
    ;;
  stop)
    kill "$(cat "$2")"
    ;;
esac
"#;

/// The ctl script and the pidfiles; kills every process a pidfile names when dropped.
struct Pidfiles {
    dir: tempfile::TempDir,
    spawner: Arc<SystemSpawner>,
}

impl Pidfiles {
    /// The processes the pidfiles name that are still alive.
    fn alive(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir(self.dir.path()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "pid"))
            .filter_map(|path| fs::read_to_string(path).ok()?.trim().parse().ok())
            .filter(|pid| self.spawner.is_alive(*pid))
            .collect()
    }
}

impl Drop for Pidfiles {
    fn drop(&mut self) {
        for pid in self.alive() {
            let _ = self.spawner.signal(pid, Signal::Kill);
        }
    }
}

fn supervise(runtime: &tokio::runtime::Runtime) {
    let pidfiles = Pidfiles {
        dir: tempfile::tempdir().expect("a temporary directory"),
        spawner: Arc::new(SystemSpawner::new()),
    };
    let dir = pidfiles.dir.path();
    let ctl = dir.join("ctl");
    fs::write(&ctl, CTL).expect("writing the ctl script");
    fs::set_permissions(&ctl, fs::Permissions::from_mode(0o755)).expect("chmod the ctl script");
    let mut services = Vec::new();
    let mut monit_files = Vec::new();
    for job in 0..JOBS {
        let mut text = String::new();
        for process in 0..PROCESSES_PER_JOB {
            let service = format!("job-{job}-process-{process}");
            let pidfile = dir.join(format!("{service}.pid"));
            text.push_str(&format!(
                "check process {service}\n  with pidfile {pidfile}\n  \
                 start program \"{ctl} start {pidfile}\"\n  \
                 stop program \"{ctl} stop {pidfile}\"\n  group vcap\n\n",
                pidfile = pidfile.display(),
                ctl = ctl.display(),
            ));
            services.push(service);
        }
        let file = monit::parse(&text).expect("a valid monit file");
        monit_files.push((format!("job-{job}"), file));
    }
    let (alerts, _alerts) = tokio::sync::mpsc::channel(1024);
    let spawner = Arc::clone(&pidfiles.spawner) as Arc<dyn Spawner>;
    // The supervisor spawns its tasks on the runtime it is called in.
    let _context = runtime.enter();
    // Declared after the guard, so it is dropped (its tasks aborted) before the guard kills.
    let supervisor = Supervisor::new(Config::default(), spawner, HostPaths::system(), alerts);
    supervisor
        .replace_jobs(monit_files)
        .expect("loading the jobs");
    supervisor.start_all().expect("starting the jobs");
    let started = Instant::now();
    runtime.block_on(poll(
        "every process to run",
        Duration::from_secs(60),
        || {
            services
                .iter()
                .all(|service| running_pid(&supervisor, service).is_some())
        },
    ));
    println!(
        "supervisor: {} processes running after {}",
        services.len(),
        ms(started.elapsed())
    );

    let before = cpu_ticks();
    runtime.block_on(tokio::time::sleep(IDLE));
    let idle_percent = (cpu_ticks() - before) as f64 / TICKS_PER_SEC / IDLE.as_secs_f64() * 100.0;
    println!(
        "supervisor: idle CPU over {} s {idle_percent:.2}% of one core (10 ms ticks)  | goal: under 0.5%",
        IDLE.as_secs()
    );
    println!(
        "supervisor: RSS with {} processes {} KiB",
        services.len(),
        proc_status_kb("VmRSS")
    );

    let mut restarts = Vec::new();
    for service in services.iter().step_by(services.len() / KILLS).take(KILLS) {
        let old = running_pid(&supervisor, service).expect("the service runs");
        pidfiles
            .spawner
            .signal(old, Signal::Kill)
            .expect("killing the process");
        let killed = Instant::now();
        runtime.block_on(poll("a restart", Duration::from_secs(30), || {
            running_pid(&supervisor, service)
                .is_some_and(|pid| pid != old && pidfiles.spawner.is_alive(pid))
        }));
        restarts.push(killed.elapsed());
    }
    println!(
        "supervisor: SIGKILL to a new running pid, median of {KILLS} {} (max {})  | goal: within 2 s",
        ms(median(restarts.clone())),
        ms(restarts.iter().copied().max().unwrap_or_default())
    );

    let started = Instant::now();
    runtime
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(120), supervisor.stop_all()).await
        })
        .expect("stop_all within 120 s")
        .expect("stopping every process");
    let stop_all = started.elapsed();
    runtime.block_on(supervisor.shutdown());
    let left = pidfiles.alive();
    println!(
        "supervisor: stop_all of {} processes {}, sleep processes left: {}",
        services.len(),
        ms(stop_all),
        left.len()
    );
    assert_eq!(left, Vec::<u32>::new(), "sleep processes outlived stop_all");
}

fn running_pid(supervisor: &Supervisor, service: &str) -> Option<u32> {
    supervisor
        .services()
        .into_iter()
        .find(|s| s.name == service && s.state == ServiceState::Running)
        .and_then(|s| s.pid)
}

// Helpers.

/// Polls `condition` every 10 ms for up to `limit`; panics when it does not come true.
async fn poll(what: &str, limit: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes `files` (path, content, mode) under `dir`.
fn write_files(dir: &Path, files: &[(&str, &str, u32)]) {
    for (path, content, mode) in files {
        let path: PathBuf = dir.join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("creating a directory");
        fs::write(&path, content).expect("writing a file");
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod");
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`).
fn proc_status_kb(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(field)?.strip_prefix(':')?;
            value.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// This process's user and system CPU time, in ticks (`utime` + `stime` of `/proc/self/stat`).
fn cpu_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a command name")
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; the first after `)` is field 3.
    let tick = |index: usize| -> u64 { fields[index - 3].parse().expect("a tick count") };
    tick(14) + tick(15)
}
