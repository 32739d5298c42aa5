//! Helpers shared by the integration tests.

pub mod deployment;
pub mod example;
#[allow(dead_code)]
pub mod release_builder;
