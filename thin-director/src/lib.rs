//! The thin director: CPI runner, PKI for NATS mutual TLS, deploy sequencing, health monitoring and
//! resurrection, a blobstore for agents, and a local process CPI.
//!
//! * [`manifest`]: deployment manifests and cloud configs, checked with every problem named by its
//!   path; instance placement (AZs, IP addresses) and update pacing;
//! * [`release`]: release tarballs, source and compiled: safe extraction, digests, job specs and
//!   package dependencies.
//!
//! **Architecture invariant:** it talks to agents only through `agent::{protocol, client}` and never
//! compiles platform code; of the lower crates it uses `settings` for multi-digests only.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod manifest;
pub mod release;
