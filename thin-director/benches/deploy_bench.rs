//! `cargo bench -p thin-director --bench deploy-bench`: the thin director deploying the example
//! release (`examples/hello`) to 3, 10 and 30 local instances with the process CPI, real
//! `bosh-agent` processes and a real `nats-server`, then pinging the 30 agents as fast as it can.
//!
//! For each size it prints the deploy's wall time, how it splits between the stages (rendering,
//! compiling, creating VMs, updating instances; each stage's span from its first step's start to
//! its last step's end), the director's own CPU time (this process, not the CPI, agents or Ruby it
//! runs) as a share of the wall time, and its peak RSS. Then the messages per second the director
//! sustains against 30 agents, and its CPU per message. Figures, not assertions. It needs release
//! builds of `bosh-agent` and `process-cpi` (`cargo build --release -p agent -p thin-director`).
//! Run without `--bench` (as `cargo test` does), it only says how to run it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thin_director::deploy::director::{Config, CpiChoice, Director};
use thin_director::deploy::report::Reporter;
use thin_director::deploy::{self, inspect};

const SIZES: [usize; 3] = [3, 10, 30];
const PINGS: usize = 20_000;
const IN_FLIGHT: usize = 64;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("deploy-bench: run it with `cargo bench -p thin-director --bench deploy-bench`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

/// The release builds of the binaries the director runs.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -j2 -p agent -p thin-director`",
        path.display()
    );
    path
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// This process's CPU time (user + system).
fn own_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// This process's peak RSS in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn bench() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    println!(
        "deploy-bench: the example release, process CPI, real agents and nats-server, 2 cores"
    );
    for size in SIZES {
        let dir = tempfile::tempdir().unwrap();
        thin_director::release::create::create(
            &example.join("release"),
            "hello",
            "1",
            &dir.path().join("hello-1.tgz"),
        )
        .unwrap();
        std::fs::copy(
            example.join("cloud-config.yml"),
            dir.path().join("cloud-config.yml"),
        )
        .unwrap();
        let manifest = std::fs::read_to_string(example.join("manifest.yml"))
            .unwrap()
            .replace("instances: 3", &format!("instances: {size}"))
            .replace("max_in_flight: 2", "max_in_flight: 10");
        std::fs::write(dir.path().join("manifest.yml"), manifest).unwrap();
        let sink = Sink::default();
        let cpi = CpiChoice::Process {
            executable: binary("process-cpi"),
            agent: binary("bosh-agent"),
        };
        let mut config = Config::new(dir.path().join("state"), cpi);
        config.agent_wait = Duration::from_secs(120);
        let director = Director::start(config, Reporter::to(Box::new(sink.clone()), true))
            .await
            .unwrap();
        let cpu_before = own_cpu();
        let started = Instant::now();
        deploy::deploy(
            &director,
            &dir.path().join("manifest.yml"),
            &dir.path().join("cloud-config.yml"),
        )
        .await
        .unwrap();
        let wall = started.elapsed();
        let cpu = own_cpu() - cpu_before;
        let mut spans: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for line in String::from_utf8(sink.0.lock().unwrap().clone())
            .unwrap()
            .lines()
        {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(stage), Some(at), Some(seconds)) = (
                event["stage"].as_str(),
                event["at"].as_f64(),
                event["seconds"].as_f64(),
            ) else {
                continue;
            };
            let stage = if stage.starts_with("Updating instance") {
                "Updating instances"
            } else {
                stage
            };
            let span = spans.entry(stage.to_owned()).or_insert((f64::MAX, 0.0));
            span.0 = span.0.min(at - seconds);
            span.1 = span.1.max(at);
        }
        println!("{size} instances:");
        println!(
            "  deploy wall time            {:>8.2} s",
            wall.as_secs_f64()
        );
        for (stage, (from, to)) in &spans {
            println!("  {stage:<28}{:>8.2} s", to - from);
        }
        println!(
            "  director CPU (own)          {:>8.2} s ({:.1}% of wall; goal < 5%)",
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
        );
        println!("  director peak RSS           {:>8} KiB", peak_rss_kb());
        if size == *SIZES.last().unwrap() {
            messages(&director).await;
        }
        inspect::delete_deployment(&director, "hello")
            .await
            .unwrap();
        director.stop().await;
    }
}

/// Pings every agent of the deployment, `IN_FLIGHT` at once, `PINGS` in all.
async fn messages(director: &Director) {
    use futures_util::StreamExt as _;
    let agents: Vec<String> = director
        .instances_of("hello")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|i| i.vm.map(|vm| vm.agent_id))
        .collect();
    for agent in &agents {
        thin_director::agent_client::AgentClient::new(&director.bus, agent)
            .wait_until_ready(Duration::from_secs(60))
            .await
            .unwrap();
    }
    let cpu_before = own_cpu();
    let started = Instant::now();
    let failures = futures_util::stream::iter(0..PINGS)
        .map(|n| {
            let agent = &agents[n % agents.len()];
            async move {
                agent::client::call(
                    &director.bus,
                    agent,
                    "ping",
                    vec![],
                    Duration::from_secs(10),
                )
                .await
                .is_err()
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let wall = started.elapsed();
    let cpu = own_cpu() - cpu_before;
    println!(
        "messages against {} agents ({IN_FLIGHT} in flight, {PINGS} pings):",
        agents.len()
    );
    println!(
        "  throughput                  {:>8.0} req/s ({failures} failed)",
        PINGS as f64 / wall.as_secs_f64()
    );
    println!(
        "  director CPU per message    {:>8.4} ms",
        cpu.as_secs_f64() * 1000.0 / PINGS as f64
    );
}
