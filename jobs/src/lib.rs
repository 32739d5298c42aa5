//! Jobs and packages: the apply spec, blobstore clients, package and job installation, package
//! compilation, the monit-style supervisor and lifecycle scripts (drain, pre-start, post-start,
//! errands).
//!
//! This crate is filled by the "Jobs and packages" issue; for now it only holds its place in the
//! workspace. **Architecture invariant:** `jobs` knows no message bus; it uses `platform` for the OS.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]
