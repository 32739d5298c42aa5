//! VM tests: a QEMU CPI speaking the standard CPI protocol, a harness in the style of the NixOS
//! test driver, and end-to-end tests that boot stemcells and drive their agents over mutual-TLS
//! NATS.
//!
//! * [`qemu_cpi`]: the QEMU CPI (binary `qemu-cpi`), a real external CPI whose VMs are QEMU
//!   processes booted from stemcell images, with a config drive, virtio disks and user networking.
//! * [`harness`]: machines driven through a root shell on a virtio console, the console scanner,
//!   the test world (stemcell, nats-server with TLS, the QEMU CPI, an agent client).

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod harness;
pub mod qemu_cpi;
