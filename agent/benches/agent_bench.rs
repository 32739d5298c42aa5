//! `cargo bench -p agent --bench agent-bench`: the agent's speed and memory against a trivial echo
//! responder, both answering `ping` over the same real nats-server with mutual TLS, in one run.
//!
//! For each responder it prints: process start to first `pong` (p50 over 20 starts), RSS at the first
//! `pong`, RSS after being idle (60 s; `--idle-secs N` to change), sequential `ping` round trips
//! (p50/p99), throughput with 16 requests in flight, the responder's CPU time per request at that
//! load, and RSS after 50,000 requests; then the agent/echo ratios. Figures, not assertions.
//!
//! The echo responder is this binary run again with `--echo`: it subscribes to `agent.<id>` with the
//! agent's TLS identity and answers `{"value":"pong"}` to each request's `reply_to`.
//! Run without `--bench` (as `cargo test` does), it only says how to run it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agent::client::{self, NatsClient};
use futures_util::StreamExt as _;
use serde_json::Value;

use support::agent_process::AgentProcess;
use support::nats::{NatsServer, client_tls_config};
use support::pki::Pki;

const STARTS: usize = 20;
const SEQUENTIAL: usize = 2_000;
const LOAD: usize = 50_000;
const IN_FLIGHT: usize = 16;
const AGENT_ID: &str = "agent-bench";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--echo") {
        return echo_main(&args);
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("agent-bench: run it with `cargo bench -p agent --bench agent-bench`");
        return;
    }
    let idle = args
        .iter()
        .position(|a| a == "--idle-secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(Duration::from_secs(idle)));
}

#[derive(Debug, Default)]
struct Figures {
    start_p50_ms: f64,
    rss_first_pong_kb: u64,
    rss_idle_kb: u64,
    ping_p50_ms: f64,
    ping_p99_ms: f64,
    throughput_rps: f64,
    cpu_per_request_ms: f64,
    rss_after_load_kb: u64,
}

/// A responder process: the agent or the echo.
trait Responder {
    fn pid(&self) -> u32;
}

impl Responder for AgentProcess {
    fn pid(&self) -> u32 {
        AgentProcess::pid(self).expect("the agent runs")
    }
}

struct Echo(std::process::Child);

impl Responder for Echo {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn bench(idle: Duration) {
    let pki = Pki::new(AGENT_ID);
    let server = tokio::task::block_in_place(|| NatsServer::start(&pki));
    let director = NatsClient::connect(
        &server.url(),
        client_tls_config(&pki.server_ca, Some(&pki.director)),
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    println!(
        "agent-bench: nats-server {} on 2 cores; {STARTS} starts, {SEQUENTIAL} sequential pings, {LOAD} pings at {IN_FLIGHT} in flight, idle {} s",
        server.url(),
        idle.as_secs()
    );

    let agent = measure(&director, idle, || {
        // The agent as a stemcell runs it: info-level logging.
        let agent = tokio::task::block_in_place(|| {
            AgentProcess::start_with_log(&pki, &server.url(), "info")
        });
        Box::new(agent) as Box<dyn Responder>
    })
    .await;
    print_figures("bosh-agent (rust)", &agent);

    let echo = measure(&director, idle, || {
        Box::new(start_echo(&pki, &server.url(), work.path())) as Box<dyn Responder>
    })
    .await;
    print_figures("echo responder", &echo);

    println!("ratios (agent / echo):");
    println!(
        "  start to first pong   {:.2}",
        agent.start_p50_ms / echo.start_p50_ms
    );
    println!(
        "  ping p50              {:.2}",
        agent.ping_p50_ms / echo.ping_p50_ms
    );
    println!(
        "  throughput            {:.2} (goal >= 0.90)",
        agent.throughput_rps / echo.throughput_rps
    );
    println!(
        "  CPU per request       {:.2}",
        agent.cpu_per_request_ms / echo.cpu_per_request_ms
    );
    println!(
        "  RSS after load        {:.2}",
        agent.rss_after_load_kb as f64 / echo.rss_after_load_kb as f64
    );
    println!(
        "Go agent reference (same kind of machine): start 12.7 ms, ping p50 0.28 ms, 13,100 req/s, 0.056 ms CPU/request, RSS 15.7 MB at first pong, 21.5 MB after load"
    );
}

async fn measure(
    director: &NatsClient,
    idle: Duration,
    start: impl Fn() -> Box<dyn Responder>,
) -> Figures {
    let mut figures = Figures::default();
    let mut starts = Vec::with_capacity(STARTS);
    let mut responder = None;
    for _ in 0..STARTS {
        drop(responder.take());
        let began = Instant::now();
        let started = start();
        first_pong(director).await;
        starts.push(began.elapsed());
        figures.rss_first_pong_kb = rss_kb(started.pid());
        responder = Some(started);
    }
    let responder = responder.expect("started at least once");
    figures.start_p50_ms = percentile(&mut starts, 50.0);

    tokio::time::sleep(idle).await;
    figures.rss_idle_kb = rss_kb(responder.pid());

    let mut round_trips = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let began = Instant::now();
        ping(director).await;
        round_trips.push(began.elapsed());
    }
    figures.ping_p50_ms = percentile(&mut round_trips, 50.0);
    figures.ping_p99_ms = percentile(&mut round_trips, 99.0);

    let cpu_before = cpu_ticks(responder.pid());
    let began = Instant::now();
    let sent = Arc::new(AtomicUsize::new(0));
    let director = Arc::new(director);
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let sent = sent.clone();
        let director = director.clone();
        workers.push(async move {
            while sent.fetch_add(1, Ordering::Relaxed) < LOAD {
                ping(&director).await;
            }
        });
    }
    futures_util::future::join_all(workers).await;
    let elapsed = began.elapsed();
    let cpu = cpu_ticks(responder.pid()) - cpu_before;
    figures.throughput_rps = LOAD as f64 / elapsed.as_secs_f64();
    figures.cpu_per_request_ms = cpu as f64 * 1000.0 / clock_ticks_per_second() / LOAD as f64;
    figures.rss_after_load_kb = rss_kb(responder.pid());
    figures
}

async fn ping(director: &NatsClient) {
    let answer = client::call(director, AGENT_ID, "ping", vec![], Duration::from_secs(10)).await;
    assert_eq!(answer.unwrap(), Value::from("pong"));
}

/// Sends `ping` every millisecond until one is answered.
async fn first_pong(director: &NatsClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer =
            client::call(director, AGENT_ID, "ping", vec![], Duration::from_millis(1)).await;
        if answer.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "no pong within 30 s");
    }
}

fn start_echo(pki: &Pki, url: &str, work: &Path) -> Echo {
    let identity = work.join("echo-identity.json");
    let material = serde_json::json!({
        "url": url, "ca": pki.server_ca, "certificate": pki.agent.certificate, "private_key": pki.agent.private_key
    });
    std::fs::write(&identity, material.to_string()).unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--echo")
        .arg(&identity)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Echo(child)
}

/// The echo responder: the least a NATS responder can do with the agent's TLS identity.
fn echo_main(args: &[String]) {
    let path = args
        .iter()
        .skip_while(|a| *a != "--echo")
        .nth(1)
        .expect("--echo <identity file>");
    let material: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let text = |key: &str| material[key].as_str().unwrap().to_owned();
    let tls =
        agent::tls::nats_client_config(&text("ca"), &text("certificate"), &text("private_key"))
            .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let client = async_nats::ConnectOptions::new()
            .require_tls(true)
            .tls_client_config(tls)
            .connect(text("url"))
            .await
            .unwrap();
        let mut requests = client.subscribe(format!("agent.{AGENT_ID}")).await.unwrap();
        while let Some(message) = requests.next().await {
            let Ok(request) = serde_json::from_slice::<Value>(&message.payload) else {
                continue;
            };
            if let Some(reply_to) = request["reply_to"].as_str() {
                let _ = client
                    .publish(reply_to.to_owned(), r#"{"value":"pong"}"#.into())
                    .await;
            }
        }
    });
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports CPU times in USER_HZ, which is 100 on every supported architecture.
    100.0
}

fn print_figures(name: &str, figures: &Figures) {
    println!("{name}:");
    println!(
        "  start to first pong p50   {:>9.2} ms",
        figures.start_p50_ms
    );
    println!(
        "  RSS at first pong         {:>9.1} MB",
        figures.rss_first_pong_kb as f64 / 1024.0
    );
    println!(
        "  RSS idle                  {:>9.1} MB",
        figures.rss_idle_kb as f64 / 1024.0
    );
    println!(
        "  ping p50 / p99            {:>9.3} / {:.3} ms",
        figures.ping_p50_ms, figures.ping_p99_ms
    );
    println!(
        "  throughput ({IN_FLIGHT} in flight) {:>9.0} req/s",
        figures.throughput_rps
    );
    println!(
        "  CPU per request           {:>9.4} ms",
        figures.cpu_per_request_ms
    );
    println!(
        "  RSS after {LOAD} requests {:>9.1} MB",
        figures.rss_after_load_kb as f64 / 1024.0
    );
}
