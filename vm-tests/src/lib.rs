//! VM tests: a QEMU harness (`Guest`), a QEMU CPI speaking the standard CPI protocol, and end-to-end
//! tests that boot stemcells and drive their agents over mutual-TLS NATS.
//!
//! This crate is filled by the "Stemcells and VM tests" issue; for now it only holds its place in the
//! workspace.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

/// The VM test harness: machines driven through a root shell, the console scanner, the test world.
pub mod harness;
