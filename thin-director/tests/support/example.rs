//! The example deployment (`examples/hello`) as an end-to-end test meets it: its release made
//! into a tarball next to its manifest and cloud config in a temp dir, the `bosh-agent` the
//! process CPI runs, the director's progress output kept for assertions, and a guard that deletes
//! the process CPI's VMs when a test fails half-way.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the example lives.
pub fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello")
}

/// `bosh-agent`, built next to this test binary by `cargo build -p agent`.
pub fn bosh_agent() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let agent = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("bosh-agent");
    assert!(
        agent.is_file(),
        "{} is missing: build it first with `cargo build -j2 -p agent`",
        agent.display()
    );
    agent
}

/// A temp dir with `hello-1.tgz` (made from the example release), the example's
/// `manifest.yml` and `cloud-config.yml`.
pub fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    thin_director::release::create::create(
        &example().join("release"),
        "hello",
        "1",
        &dir.path().join("hello-1.tgz"),
    )
    .unwrap();
    for file in ["manifest.yml", "cloud-config.yml"] {
        std::fs::copy(example().join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// The director's progress text, kept for assertions.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Output {
    /// Every line printed so far, without its clock.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| {
                line.split_once(" | ")
                    .map_or(line, |(_, rest)| rest)
                    .to_owned()
            })
            .collect()
    }

    /// Waits (polling) until a line satisfies `wanted` and returns every line so far; panics
    /// with the lines after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if lines.iter().any(|line| wanted(line)) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "not printed within {timeout:?}:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Deletes every VM of the process CPI of the director in `state_dir` when dropped while the test
/// panics, so that a failed test leaves no agent or job processes running (a test that passes
/// deletes its deployment itself).
#[derive(Debug)]
pub struct Reaper {
    /// The director's state dir.
    pub state_dir: PathBuf,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let cpi_dir = self.state_dir.join("process-cpi");
        let Ok(entries) = std::fs::read_dir(cpi_dir.join("vms")) else {
            return;
        };
        for entry in entries.flatten() {
            let vm_cid = entry.file_name().to_string_lossy().into_owned();
            if !vm_cid.starts_with("vm-") {
                continue;
            }
            let request = serde_json::json!({
                "method": "delete_vm",
                "arguments": [vm_cid],
                "context": {"director_uuid": "reaper"},
            });
            let Ok(mut child) = Command::new(env!("CARGO_BIN_EXE_process-cpi"))
                .arg("--config")
                .arg(cpi_dir.join("cpi.json"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            else {
                return;
            };
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(request.to_string().as_bytes());
            }
            let _ = child.wait();
        }
    }
}
