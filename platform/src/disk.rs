//! Persistent, dynamic and associated disks: the errors of the disk operations of
//! [`Platform`](crate::Platform) (`platform/linux_platform.go` `MountPersistentDisk`,
//! `UnmountPersistentDisk`, `MigratePersistentDisk`, `IsMountPoint`, `IsPersistentDiskMounted`,
//! `AssociateDisk`, `SetupDynamicDisk`, `CleanupDynamicDisk`; `platform/dummy_platform.go`).
//!
//! The `mount_disk`, `unmount_disk`, `migrate_disk`, `list_disk`, `associate_disks`,
//! `add_dynamic_disk` and `remove_dynamic_disk` actions call these operations and fail with
//! [`Error`].

use std::path::PathBuf;

use crate::{dummy, mount, name};

/// Why a disk operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operation arrives on Linux with a later issue.
    #[error("{0} on linux is not implemented yet")]
    Unsupported(&'static str),
    /// The disk settings carry no disk CID.
    #[error("the disk settings have no disk cid")]
    NoDiskCid,
    /// A disk CID or disk name cannot be one path component.
    #[error(transparent)]
    InvalidName(#[from] name::Error),
    /// The dummy platform only mounts inside the base dir.
    #[error("mount point {} is not inside the base dir {}", .path.display(), .base.display())]
    OutsideBaseDir {
        /// The mount point.
        path: PathBuf,
        /// The base dir.
        base: PathBuf,
    },
    /// A migration found no disk on one of its mount points.
    #[error("no disk is mounted on {}", .mount_point.display())]
    NotMounted {
        /// The mount point.
        mount_point: PathBuf,
    },
    /// The mount point directory could not be created.
    #[error("creating mount point {}", .path.display())]
    CreateMountPoint {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host's mount table could not be read.
    #[error("finding mounted disks")]
    Mounts(#[source] mount::Error),
    /// A Linux disk operation failed (a command, a file, a disk not found or refused).
    #[error("{what}")]
    Linux {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<crate::bootstrap::Error>,
    },
    /// The dummy platform's state files could not be read or written.
    #[error(transparent)]
    State(#[from] dummy::state::Error),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;
