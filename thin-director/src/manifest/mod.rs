//! Deployment manifests and cloud configs: parsing, checking, and the plans derived from them
//! (IP addresses and AZs per instance, update pacing).
//!
//! The thin director reads a documented subset of BOSH manifest v2 and cloud config (see
//! [`deployment`] and [`cloud_config`] for the exact keys). Unlike the BOSH director, which raises on
//! the first problem, every problem is collected with its path (`instance_groups[1].jobs[0].release`)
//! and shown one per line, and nothing is touched before both documents are found good:
//!
//! 1. each document is parsed on its own ([`Deployment::parse`], [`CloudConfig::parse`]): unknown
//!    keys, wrong types, missing keys, bad IP ranges, then references inside the document
//!    (duplicate names, jobs naming unknown releases, subnets naming unknown AZs);
//! 2. once both are sound, [`validate`] checks the manifest against the cloud config: VM types, disk
//!    types, networks and AZs exist, static IPs sit in static ranges of the right subnets, and every
//!    instance can get an address ([`placement::place`]).
//!
//! [`load`] does all of it. Problems of step 2 are reported only when step 1 found none, so that one
//! mistake is not echoed as several.

pub mod cloud_config;
pub mod deployment;
pub mod error;
pub mod ip;
pub mod placement;
pub mod subnet;
pub mod update;

mod reader;
mod validate;

pub use cloud_config::CloudConfig;
pub use deployment::Deployment;
pub use error::{Document, Error, Problem};
pub use validate::validate;

/// Parses and checks a manifest and a cloud config together, reporting the problems of both.
pub fn load(manifest: &str, cloud_config: &str) -> Result<(Deployment, CloudConfig), Error> {
    match (
        Deployment::parse(manifest),
        CloudConfig::parse(cloud_config),
    ) {
        (Ok(deployment), Ok(cloud_config)) => {
            validate(&deployment, &cloud_config)?;
            Ok((deployment, cloud_config))
        }
        (deployment, cloud_config) => {
            let mut problems = deployment.err().map(|e| e.problems).unwrap_or_default();
            problems.extend(cloud_config.err().map(|e| e.problems).unwrap_or_default());
            Err(Error { problems })
        }
    }
}
