//! Helpers shared by the integration tests.

pub mod example;
#[allow(dead_code)]
pub mod release_builder;
