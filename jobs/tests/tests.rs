//! The integration tests of `jobs`, one binary with a module per area (as ripgrep's `tests/tests.rs`).
//!
//! * `blobstore`: the blobstore clients of `jobs::blobstore` against real servers and commands on
//!   this machine (a DAV server on a loopback port, a shell script standing in for
//!   `bosh-blobstore-<provider>`), following the Go agent's `agent/blobstore/*`,
//!   `agent/httpblobprovider/*` and bosh-utils `blobstore/*`.
//! * `install`: `jobs::install` (`prepare` and `apply`) against a local blobstore of tarballs built
//!   by the tests, following the Go agent's `agent/applier/*`.
//! * `compile`: package compilation (`jobs::compile`) with the real `bash` and `cc`, following the
//!   Go agent's `agent/compiler/concrete_compiler.go`.
//! * `process`: the built-in supervisor (`jobs::process`) with the real spawner, real `/proc` and a
//!   job control script run as a program, standing in for monit 5.2.5 as the Go agent's
//!   `jobsupervisor/monit_job_supervisor.go` drives it.
//! * `script`: lifecycle scripts (`jobs::script`: `run_script`, drain, errands) as real shell
//!   scripts in a temporary base dir, following the Go agent's `agent/script/*` and
//!   `agent/action/run_errand.go`.

// The workspace lint keeps unit tests in `#[cfg(test)]` modules; this crate is built only by the test
// harness, so there is no non-test code to keep them apart from.
#![allow(clippy::tests_outside_test_module)]

mod blobstore;
mod compile;
mod install;
mod process;
mod script;
mod support;
