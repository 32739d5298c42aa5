//! The thin director: CPI runner, PKI for NATS mutual TLS, deploy sequencing, health monitoring and
//! resurrection, a blobstore for agents, and a local process CPI.
//!
//! This crate is filled by the "thin director" issue; for now it only holds its place in the workspace.
//! **Architecture invariant:** it talks to agents only through `agent::{protocol, client}` and never
//! compiles platform code.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]
