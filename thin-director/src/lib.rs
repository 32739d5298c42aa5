//! The thin director: CPI runner, PKI for NATS mutual TLS, deploy sequencing, health monitoring and
//! resurrection, a blobstore for agents, and a local process CPI.
//!
//! * [`agent_client`]: what the director asks one agent, with its timeouts, retries and waits;
//! * [`blobstore`]: the blobs agents fetch, served over HTTPS in the DAV shape;
//! * [`cpi`]: any external CPI, called as the director calls it;
//! * [`dav_client`]: the client of an external DAV blobstore;
//! * [`deploy`]: deploying a manifest: the director's stages and their order;
//! * [`director_config`]: the director config file naming an existing NATS and an external DAV
//!   blobstore to use instead of its own;
//! * [`exec`]: the only place in the crate that spawns a process;
//! * [`health`]: the health monitor (`serve`): agents' heartbeats, alerts and shutdowns, missing
//!   agents, meltdowns and resurrection;
//! * [`manifest`]: deployment manifests and cloud configs, checked with every problem named by its
//!   path; instance placement (AZs, IP addresses) and update pacing;
//! * [`nats`]: the `nats-server` it runs, with per-agent permissions;
//! * [`pki`]: the director's CA and the message bus's certificates;
//! * [`process_cpi`]: the local process CPI (binary `process-cpi`), whose VMs are agent processes;
//! * [`release`]: release tarballs, source and compiled: safe extraction, digests, job specs and
//!   package dependencies;
//! * [`stemcell`]: stemcell tarballs (`stemcell.MF` and the image);
//! * [`state`]: what it created and where it stands, durable and crash-safe;
//! * [`template`]: job templates rendered with Ruby's ERB, their archive and hashes.
//!
//! **Architecture invariant:** it talks to agents only through `agent::{protocol, client}` (the
//! health monitor listens to them with a NATS subscription of its own, in `health::bus`, and
//! decodes with `agent::protocol`) and never compiles platform code; of the lower crates it uses
//! `settings` for multi-digests only.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod agent_client;
pub mod blobstore;
pub mod cpi;
pub mod dav_client;
pub mod deploy;
pub mod director_config;
pub mod exec;
pub mod health;
pub mod manifest;
pub mod nats;
pub mod pki;
pub mod process_cpi;
pub mod release;
pub mod state;
pub mod stemcell;
pub mod template;
