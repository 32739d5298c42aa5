//! Jobs and packages: the apply spec, blobstore clients, package and job installation, package
//! compilation, the monit-style supervisor and lifecycle scripts (drain, pre-start, post-start,
//! errands).
//!
//! Today it holds the apply spec ([`apply_spec`]), which `get_state` and heartbeats report; the rest
//! arrives with the jobs issue. **Architecture invariant:** `jobs` knows no message bus; it uses
//! `platform` for the OS.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod apply_spec;
pub mod archive;
pub mod blobstore;
pub mod monit;
pub mod supervisor;
