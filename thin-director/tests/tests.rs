//! The thin director's integration tests, one binary (STYLE.md §7, layer 4): the example manifest
//! and cloud config under `tests/fixtures/manifest/` with every validation error, real release
//! tarballs built by `support/release_builder.rs`, and its executables run as real processes against
//! a real `nats-server` and the real `bosh-agent`.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod commands;
mod deploy;
mod external;
mod health;
mod manifest;
mod process_cpi;
mod release;
mod support;
