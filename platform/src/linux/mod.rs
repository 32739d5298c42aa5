//! The Linux platform (`platform/linux_platform.go`): real mounts, disks, networks and users.
//!
//! Today it mounts config drives and CD-ROMs for the settings sources ([`drive`]); the rest of the
//! platform arrives with the Linux platform issue.

pub mod drive;
