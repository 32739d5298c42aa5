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

/// A runner of the world's QEMU CPI, as a director runs it (logging to the world's `cpi.log`).
pub fn cpi(world: &World) -> thin_director::cpi::Cpi {
    let mut config = thin_director::cpi::Config::new(qemu_cpi(), "vm-tests");
    config.args = vec!["--config".into(), world.dir().join("cpi.json").into()];
    config.log = Some(world.dir().join("cpi.log"));
    config.timeout = Duration::from_secs(300);
    thin_director::cpi::Cpi::new(config)
}

/// A world with this crate's QEMU CPI.
pub fn world() -> World {
    World::start(&WorldConfig::new(qemu_cpi())).unwrap_or_else(|err| panic!("{err:#}"))
}

/// The agent's bootstrap as it logged it on the console (`bootstrap step done step=… elapsed_ms=…`
/// and `bootstrap phase done`), from its last start: "ssh_keys 3 ms, …; phases: …".
pub fn bootstrap_steps(console: &str) -> String {
    let field = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        let value = line[start..].split_whitespace().next()?;
        Some(value.trim_matches('"').to_owned())
    };
    let last_start = console
        .rfind("bootstrap step done step=\"runtime_configuration\"")
        .or_else(|| console.rfind("step=\"runtime_configuration\""))
        .map_or(0, |at| console[..at].rfind('\n').map_or(0, |nl| nl + 1));
    let mut steps = Vec::new();
    let mut phases = Vec::new();
    for line in console[last_start..].lines() {
        if line.contains("bootstrap step done") {
            if let (Some(step), Some(ms)) = (field(line, "step"), field(line, "elapsed_ms")) {
                steps.push(format!("{step} {ms} ms"));
            }
        } else if line.contains("bootstrap phase done") {
            if let (Some(phase), Some(ms)) = (field(line, "phase"), field(line, "elapsed_ms")) {
                phases.push(format!("{phase} {ms} ms"));
            }
        }
    }
    format!("{}; phases: {}", steps.join(", "), phases.join(", "))
}

/// Reboots `vm` through the CPI (`reboot_vm`), waits for a new boot and the agent's pong, and
/// prints the time to that pong and the agent's bootstrap steps after the reboot.
pub fn reboot_and_wait_for_pong(world: &World, vm: &mut vm_tests::harness::Vm) {
    let boot_id = vm.machine.boot_id();
    let rebooted = std::time::Instant::now();
    world
        .reboot_vm(&vm.cid)
        .unwrap_or_else(|err| panic!("{err:#}"));
    vm.machine.wait_for_reboot(&boot_id, PONG_TIMEOUT);
    vm.created = rebooted;
    let timings = world
        .wait_for_pong(vm, PONG_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
    eprintln!(
        "reboot → first pong {:.1} s",
        timings.pong.unwrap_or_default().as_secs_f64()
    );
    eprintln!(
        "agent bootstrap (after the reboot): {}",
        bootstrap_steps(vm.machine.console().text())
    );
}
