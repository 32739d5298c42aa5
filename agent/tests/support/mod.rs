//! The message-bus test harness: certificates made at test time ([`pki`]), a real `nats-server`
//! with TLS on a random loopback port ([`nats`]), the real `bosh-agent` binary on the dummy
//! platform ([`agent_process`]) (STYLE.md §7, layer 4), and a real BOSH release to give it
//! ([`release`]). Every process is killed on `Drop`, and every wait is bounded polling through
//! [`wait_until`], never a fixed sleep.
//!
//! Starting, stopping and restarting are blocking calls: from an async test, make them inside
//! `tokio::task::block_in_place` (multi-thread runtime) so they do not stall a runtime thread.
//! `Drop` blocks too, but only for a SIGKILL and the wait that reaps the process.

// Used by the message-bus tests that follow; until they exist, not every helper has a caller.
#![allow(dead_code)]

pub mod agent_process;
pub mod nats;
pub mod pki;
pub mod release;

use std::time::{Duration, Instant};

/// How often [`wait_until`] checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Checks `condition` every few milliseconds until it holds (`true`) or `timeout` has passed
/// (`false`). Blocking: the `wait_until(timeout, ..)` of cloud-hypervisor's `test_infra`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
