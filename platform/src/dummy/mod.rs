//! The dummy platform (`platform/dummy_platform.go`): what the BOSH director's integration suite runs
//! agents on (`-P dummy`). It keeps its state as JSON files under the base dir and touches nothing
//! outside it.

pub mod drive;
