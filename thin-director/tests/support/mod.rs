//! Helpers shared by the integration tests.

pub mod deployment;
#[allow(dead_code)]
pub mod release_builder;
