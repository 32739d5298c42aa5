//! The VM test harness, in the style of the NixOS test driver: a [`Machine`] per VM with a root
//! shell on its virtio console, waits on units and the serial console, and a console scanner that
//! fails a test on a broken guest; a [`World`] with the stemcell, NATS with mutual TLS and the QEMU
//! CPI that creates the VMs.
//!
//! * [`layer`]: the qcow2 test layer on a stemcell's `root.img` that adds the root shell.
//! * [`shell`]: the shell's wire (commands and answers over `shell.sock`).
//! * [`console`]: `console.log` follower and scanner.
//! * [`machine`]: `succeed`, `fail`, `wait_until_succeeds`, `wait_for_unit`, `wait_for_console`,
//!   reboots, the dump on failure.
//! * [`stemcell`]: the stemcell to boot, built or reused.
//! * [`world`]: NATS, the CPI, VMs and the agent client.

pub mod console;
pub mod layer;
pub mod machine;
pub mod shell;
pub mod stemcell;
pub mod world;

pub use machine::Machine;
pub use world::{Vm, World, WorldConfig};
