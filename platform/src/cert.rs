//! The director's trusted CA certificates (`env.bosh.cert`, `update_settings`'s `trusted_certs`): the
//! errors of [`Platform::update_trusted_certs`](crate::Platform::update_trusted_certs)
//! (`platform/cert/cert_manager.go`).
//!
//! On Linux the Go agent replaces `/usr/local/share/ca-certificates/bosh-trusted-cert-<n>.crt` with one
//! file per PEM block and runs `update-ca-certificates -f`; that arrives with a later issue. The Go
//! dummy platform ignores the certificates; ours keeps the bundle under the base dir.

use crate::dummy;

/// Why trusted certificates could not be installed.
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
