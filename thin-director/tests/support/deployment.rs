//! A deployment of the example release (`examples/hello`) on one machine, for the tests that
//! deploy: the release made into a tarball and the example cloud config in a temporary
//! directory, a director on the real `process-cpi` with real `bosh-agent` processes, and its
//! progress output kept for assertions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thin_director::deploy::director::{Config, CpiChoice, Director};
use thin_director::deploy::report::Reporter;
use thin_director::deploy::{self};

/// Where the example lives.
pub fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello")
}

/// `bosh-agent`, built next to this test (see `process_cpi.rs`).
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

/// Progress text, kept for assertions.
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
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if lines.iter().any(|line| wanted(line)) {
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not printed within {timeout:?}:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The step lines printed since the last call, without their clock.
    pub fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| {
                line.split_once(" | ")
                    .map_or(line, |(_, rest)| rest)
                    .to_owned()
            })
            .collect()
    }
}

/// A temporary directory with the example release tarball and cloud config.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub output: Output,
}

impl Drop for Fixture {
    /// A test that failed half-way leaves VMs behind: they are deleted through the process CPI, as
    /// the director would, so that no agent or job process outlives the test.
    fn drop(&mut self) {
        let cpi_dir = self.dir.path().join("state/process-cpi");
        let Ok(entries) = std::fs::read_dir(cpi_dir.join("vms")) else {
            return;
        };
        for entry in entries.flatten() {
            let request = serde_json::json!({
                "method": "delete_vm",
                "arguments": [entry.file_name().to_string_lossy()],
                "context": {"director_uuid": "test"},
            });
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_process-cpi"))
                .arg("--config")
                .arg(cpi_dir.join("cpi.json"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            if let Ok(mut child) = child {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = std::io::Write::write_all(&mut stdin, request.to_string().as_bytes());
                }
                let _ = child.wait();
            }
        }
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        thin_director::release::create::create(
            &example().join("release"),
            "hello",
            "1",
            &dir.path().join("hello-1.tgz"),
        )
        .unwrap();
        std::fs::copy(
            example().join("cloud-config.yml"),
            dir.path().join("cloud-config.yml"),
        )
        .unwrap();
        Fixture {
            dir,
            output: Output::default(),
        }
    }

    /// Writes the example manifest with `edit` applied, as `name`.
    pub fn manifest(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        let text = std::fs::read_to_string(example().join("manifest.yml")).unwrap();
        let path = self.dir.path().join(name);
        std::fs::write(&path, edit(text)).unwrap();
        path
    }

    /// A director on the process CPI in the fixture's `state`, its output kept.
    pub async fn director(&self) -> Director {
        self.director_with(|_| ()).await
    }

    /// The same, with `adjust` applied to its config first.
    pub async fn director_with(&self, adjust: impl FnOnce(&mut Config)) -> Director {
        self.try_director_with(adjust).await.unwrap()
    }

    /// The same, or why it could not start.
    pub async fn try_director_with(
        &self,
        adjust: impl FnOnce(&mut Config),
    ) -> deploy::Result<Director> {
        let cpi = CpiChoice::Process {
            executable: env!("CARGO_BIN_EXE_process-cpi").into(),
            agent: bosh_agent(),
        };
        let mut config = Config::new(self.dir.path().join("state"), cpi);
        config.agent_wait = Duration::from_secs(60);
        adjust(&mut config);
        Director::start(config, Reporter::to(Box::new(self.output.clone()), false)).await
    }

    pub async fn deploy(
        &self,
        director: &Director,
        manifest: &Path,
    ) -> deploy::Result<deploy::Summary> {
        deploy::deploy(
            director,
            manifest,
            &self.dir.path().join("cloud-config.yml"),
        )
        .await
    }

    /// The files of every VM of the process CPI matching `relative`.
    pub fn vm_files(&self, relative: &str) -> Vec<String> {
        let vms = self.dir.path().join("state/process-cpi/vms");
        let mut found: Vec<String> = std::fs::read_dir(vms)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join(relative)).ok())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// How many VMs the process CPI has.
    pub fn vm_count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("state/process-cpi/vms"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }
}
