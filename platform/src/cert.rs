//! The director's trusted CA certificates (`env.bosh.cert`, `update_settings`'s `trusted_certs`): the
//! errors of [`Platform::update_trusted_certs`](crate::Platform::update_trusted_certs)
//! (`platform/cert/cert_manager.go`) and the split of a bundle into its certificates.
//!
//! On Linux ([`crate::linux::certs`]) the agent replaces
//! `/usr/local/share/ca-certificates/bosh-trusted-cert-<n>.crt` with one file per PEM block and runs
//! `update-ca-certificates -f`. The Go dummy platform ignores the certificates; ours keeps the
//! bundle under the base dir.

use std::path::PathBuf;

use crate::dummy;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Why trusted certificates could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle has a certificate that does not end; nothing was changed.
    #[error("trusted_certs: certificate {index} has no '{END}' line")]
    UnterminatedCertificate {
        /// Its 1-based position in the bundle.
        index: usize,
    },
    /// A certificate file could not be removed or written.
    #[error("{action} {}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `update-ca-certificates` failed or hung on every attempt (Go's text).
    #[error("Updating certificates with retries: {attempts} attempts failed, the last: {last}")]
    Update {
        /// How many times it was run.
        attempts: u32,
        /// What went wrong the last time.
        last: String,
    },
    /// The dummy platform's state files could not be written.
    #[error(transparent)]
    State(#[from] dummy::state::Error),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The PEM certificates of `bundle`, each from its `BEGIN` line to its `END` line (text around
/// them is ignored, as in Go); a `BEGIN` without an `END` is an error.
pub fn split_certificates(bundle: &str) -> Result<Vec<&str>> {
    let mut certificates = Vec::new();
    let mut rest = bundle;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let Some(end) = block.find(END) else {
            return Err(Error::UnterminatedCertificate {
                index: certificates.len() + 1,
            });
        };
        let end = end + END.len();
        certificates.push(&block[..end]);
        rest = &block[end..];
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_the_pem_blocks_without_what_is_around_them() {
        let bundle = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                      between\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----trailer";
        assert_eq!(
            split_certificates(bundle).unwrap(),
            vec![
                "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----",
                "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----",
            ]
        );
        assert!(split_certificates("").unwrap().is_empty());
        assert!(split_certificates("no pem here").unwrap().is_empty());
        assert_eq!(
            split_certificates(
                "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB"
            )
            .unwrap_err()
            .to_string(),
            "trusted_certs: certificate 2 has no '-----END CERTIFICATE-----' line"
        );
    }
}
