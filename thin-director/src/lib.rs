//! The thin director: CPI runner, PKI for NATS mutual TLS, deploy sequencing, health monitoring and
//! resurrection, a blobstore for agents, and a local process CPI.
//!
//! * [`blobstore`]: the blobs agents fetch, served over HTTPS in the DAV shape;
//! * [`cpi`]: any external CPI, called as the director calls it;
//! * [`exec`]: the only place in the crate that spawns a process;
//! * [`pki`]: the director's CA and the message bus's certificates;
//! * [`nats`]: the `nats-server` it runs, with per-agent permissions;
//! * [`process_cpi`]: the local process CPI (binary `process-cpi`), whose VMs are agent processes.
//!
//! **Architecture invariant:** it talks to agents only through `agent::{protocol, client}` and never
//! compiles platform code.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod blobstore;
pub mod cpi;
pub mod exec;
pub mod nats;
pub mod pki;
pub mod process_cpi;
