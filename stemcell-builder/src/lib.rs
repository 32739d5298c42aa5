//! The stemcell builder: a bootable Debian image with the agent installed as a service, shipped as a
//! qcow2 disk and a stemcell tarball (`image`, `stemcell.MF`).
//!
//! This crate is filled by the "Stemcells and VM tests" issue; for now it only holds its place in the
//! workspace. When it runs commands it reuses `platform::cmd`.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]
