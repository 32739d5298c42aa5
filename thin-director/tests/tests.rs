//! The thin director's integration tests, one binary: the example manifest and cloud config under
//! `tests/fixtures/manifest/` with every validation error, and real release tarballs built by
//! `support/release_builder.rs`.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod manifest;
mod release;
mod support;
