//! Jobs and packages: the apply spec, blobstore clients, package and job installation, package
//! compilation, the monit-style supervisor and lifecycle scripts (drain, pre-start, post-start,
//! errands).
//!
//! Built so far, as libraries the agent's actions call: the apply spec ([`apply_spec`]), blobstore
//! clients ([`blobstore`]), safe tarball handling ([`archive`]), package and job installation for
//! `prepare`/`apply` ([`install`]), package compilation ([`compile`]), log tarballs ([`logs`]),
//! lifecycle scripts (`run_script`, drain, errands: [`script`]), the monit-file parser ([`monit`]),
//! the monit-style process supervisor core ([`process`]) and the supervisor seam ([`supervisor`]).
//!
//! **Architecture invariant:** `jobs` knows no message bus; it runs commands only through
//! `platform::cmd`.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod apply_spec;
pub mod archive;
pub mod blobstore;
pub mod compile;
pub mod install;
pub mod logs;
pub mod monit;
pub mod process;
pub mod script;
pub mod supervisor;
