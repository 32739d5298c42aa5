//! Support for the VM tests: the world with this crate's `qemu-cpi`, budgets sized for TCG, and a
//! VM booted by QEMU directly for the harness's own test.

#![allow(dead_code)]

pub mod qemu;

use std::path::PathBuf;
use std::time::Duration;

use vm_tests::harness::{World, WorldConfig};

/// From `create_vm` to the agent's first pong under TCG, with the agent's first-boot disk setup
/// and other VMs sharing the host.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(420);

/// A unit or command that should settle soon after the agent answers.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// This crate's `qemu-cpi` binary.
pub fn qemu_cpi() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qemu-cpi"))
}

/// A world with this crate's QEMU CPI.
pub fn world() -> World {
    World::start(&WorldConfig::new(qemu_cpi())).unwrap_or_else(|err| panic!("{err:#}"))
}
