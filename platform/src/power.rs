//! Powering the VM off for the `shutdown` action: the errors of
//! [`Platform::shutdown`](crate::Platform::shutdown) (`platform/linux_platform.go` `Shutdown`, which
//! runs `shutdown -P 0`; the Linux command is in `linux/power.rs`).

use crate::dummy;

/// Why the VM could not be shut down.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `shutdown -P 0` failed (Go's text).
    #[error("Failed to shutdown")]
    Shutdown(#[source] Box<crate::cmd::Error>),
    /// The dummy platform's state files could not be written.
    #[error(transparent)]
    State(#[from] dummy::state::Error),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;
