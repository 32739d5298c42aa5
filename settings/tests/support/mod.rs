//! Helpers shared by the test modules: fixture paths, settings documents, a fast retry policy, file
//! modes, a scripted HTTP server and a fake mounter.

pub mod http_server;
pub mod mounter;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use settings::source::Retry;

/// `tests/fixtures/<relative>`.
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// The bytes of `tests/fixtures/<relative>`.
pub fn read_fixture(relative: &str) -> Vec<u8> {
    let path = fixture(relative);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// A minimal settings document for `agent_id` with an mbus URL.
pub fn settings_json(agent_id: &str) -> String {
    serde_json::json!({
        "agent_id": agent_id,
        "mbus": format!("nats://{agent_id}.example:4222"),
        "env": {"bosh": {"mbus": {"urls": [format!("nats://{agent_id}.example:4222")]}}},
    })
    .to_string()
}

/// `attempts` attempts, 10 ms apart.
pub fn retry(attempts: u32) -> Retry {
    Retry {
        attempts,
        delay: Duration::from_millis(10),
    }
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    let metadata =
        std::fs::metadata(path).unwrap_or_else(|err| panic!("stat {}: {err}", path.display()));
    metadata.permissions().mode() & 0o777
}
