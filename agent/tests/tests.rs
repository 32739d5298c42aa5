//! The agent crate's integration tests, one binary: the `bosh-agent` command line run as a real
//! process, and the workspace's tidy checks.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

// The loopback HTTP server of the settings crate's tests, shared rather than written twice.
#[path = "../../settings/tests/support/http_server.rs"]
mod http_server;
// The DAV blob server of the jobs crate's tests, the director's blobstore in `release_bus`; not
// every helper is used here.
#[path = "../../jobs/tests/support/dav.rs"]
#[allow(dead_code)]
mod dav;

mod compile_cli;
mod https_bus;
mod jobs_bus;
mod monit_command;
mod nats_bus;
mod nats_harness;
mod release_bus;
mod settings_cli;
mod support;
mod tidy;
