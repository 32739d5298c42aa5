//! The agent crate's integration tests, one binary: the `bosh-agent` command line run as a real
//! process, and the workspace's tidy checks.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod settings_cli;
mod tidy;
