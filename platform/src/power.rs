//! Powering the VM off for the `shutdown` action: the errors of
//! [`Platform::shutdown`](crate::Platform::shutdown) (`platform/linux_platform.go` `Shutdown`, which
//! runs `shutdown -P 0`).

use crate::dummy;

/// Why the VM could not be shut down.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operation arrives on Linux with a later issue.
    #[error("{0} on linux is not implemented yet")]
    Unsupported(&'static str),
    /// The dummy platform's state files could not be written.
    #[error(transparent)]
    State(#[from] dummy::state::Error),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;
