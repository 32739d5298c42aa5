//! Integration tests of the settings crate, as one test binary.
//!
//! * `fixtures`: the shared fixture documents parse with the right type and survive the service;
//! * `http_sources`: the HTTP metadata and InstanceMetadata sources against a real loopback server;
//! * `registry`: the registry of CPI API v1 behind user data;
//! * `drive_sources`: config drives and the CD-ROM, through a fake mounter;
//! * `service`: loading, the cache fallback, update settings, disk hints and source pinning.

// The workspace lint keeps unit tests in `#[cfg(test)]` modules; this crate is built only by the test
// harness, so there is no non-test code to keep them apart from.
#![allow(clippy::tests_outside_test_module)]

mod drive_sources;
mod fixtures;
mod http_sources;
mod registry;
mod service;
mod support;
