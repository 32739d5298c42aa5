//! VM tests: a QEMU harness (`Guest`), a QEMU CPI speaking the standard CPI protocol, and end-to-end
//! tests that boot stemcells and drive their agents over mutual-TLS NATS.
//!
//! * [`qemu_cpi`]: the QEMU CPI (binary `qemu-cpi`), a real external CPI whose VMs are QEMU
//!   processes booted from stemcell images, with a config drive, virtio disks and user networking.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod qemu_cpi;
