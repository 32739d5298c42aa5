//! Blobstores: where packages, rendered job templates, compiled packages and log bundles come from
//! and go to (reference/bosh-agent.md §9). Follows bosh-utils `blobstore/provider.go` and the layers
//! the Go agent stacks on each provider: `digest_verifiable_blobstore.go` (verify on get, sha1 on
//! create), `retryable_blobstore.go` (3 attempts per operation) and the agent's
//! `agent/blobstore/cascading_blobstore.go` (blobs the director pushed to the VM are read locally).
//! Signed blob URLs (`agent/httpblobprovider/*`) are fetched and filled by [`SignedClient`].
//!
//! Every download lands in a temporary file next to its destination, is hashed while it streams
//! (never held in memory) and is renamed into place only once its digest matches, so a caller never
//! sees a blob that was not verified, and a wrong one leaves nothing behind.
//!
//! Providers, picked by [`from_settings`] from the effective blobstore settings:
//! * `local` ([`LocalBlobstore`]): a directory, `options.blobstore_path`;
//! * `dav` ([`DavBlobstore`]): built in, a WebDAV server such as the director's nginx (the Go agent
//!   shells out to `bosh-blobstore-dav` for it; the wire is the same);
//! * `dummy` ([`DummyBlobstore`]): what the Go agent offers for tests;
//! * anything else ([`ExternalBlobstore`]): the `bosh-blobstore-<provider>` command on `PATH`.
//!
//! How to add a built-in provider:
//! 1. add a module here with a type implementing [`Blobstore`] that verifies what it downloads
//!    (the helpers in `staging` do the temporary file, the hashing and the rename);
//! 2. match its name in [`from_settings`] before the external-command fallback;
//! 3. test it in this crate's `tests/blobstore/` against a real server on a loopback port.

mod cascading;
mod dav;
mod dummy;
mod external;
mod http;
mod local;
mod retry;
mod signed;
mod staging;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use platform::cmd::CommandRunner;
use settings::Dirs;
use settings::digest::{self, MultiDigest};
use settings::model::Blobstore as BlobstoreSettings;

pub use cascading::Cascading;
pub use dav::DavBlobstore;
pub use dummy::DummyBlobstore;
pub use external::ExternalBlobstore;
pub use local::LocalBlobstore;
pub use retry::{Retry, Retrying};
pub use signed::SignedClient;

/// The provider names the Go agent handles itself (bosh-utils `provider.go`).
pub const PROVIDER_DUMMY: &str = "dummy";
/// See [`PROVIDER_DUMMY`].
pub const PROVIDER_LOCAL: &str = "local";
/// The DAV provider, built in here.
pub const PROVIDER_DAV: &str = "dav";

/// A boxed future, as the object-safe [`Blobstore`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A boxed cause from a lower layer (hyper, rustls).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A store of blobs, addressed by id.
pub trait Blobstore: Send + Sync + fmt::Debug {
    /// Downloads blob `id` to `destination`, which appears only once the content matches the
    /// strongest piece of `digest`. On any failure nothing is left at `destination` or beside it.
    fn get<'a>(
        &'a self,
        id: &'a str,
        digest: &'a MultiDigest,
        destination: &'a Path,
    ) -> BoxFuture<'a, Result<()>>;

    /// Stores the file `source` as a new blob; returns its id (a fresh UUID) and its sha1 digest.
    fn put<'a>(&'a self, source: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>>;
}

/// Why a blobstore operation failed. Texts name the blob id, path or URL (never credentials, query
/// strings or user info); the cause is in the source chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A blob id that cannot be one path component (`..`, `a/b`, empty).
    #[error("invalid blob id")]
    BlobId(#[source] platform::name::Error),
    /// A provider name that cannot name a command and a config file.
    #[error("invalid blobstore provider")]
    Provider(#[source] platform::name::Error),
    /// A required option is missing or of the wrong type (`blobstore_path must be a string`).
    #[error("blobstore option {option} of the {provider} blobstore {problem}")]
    Option {
        /// The provider.
        provider: String,
        /// The option's key.
        option: &'static str,
        /// `is missing`, `must be a string`, ...
        problem: &'static str,
    },
    /// The DAV endpoint or a signed URL is not an `http://` or `https://` URL.
    #[error("invalid blob URL {url}")]
    Url {
        /// The URL, without user info or query.
        url: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A custom header of a signed URL request is not valid HTTP.
    #[error("invalid blobstore header '{name}'")]
    Header {
        /// The header's name (its value is never shown: it may be a credential).
        name: String,
    },
    /// The CA certificate of `options.tls.cert.ca` or the TLS configuration could not be used.
    #[error("building the blobstore TLS configuration")]
    Tls(#[source] BoxError),
    /// Writing an external blobstore's config file failed.
    #[error("writing the blobstore config {}", .path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A local file could not be read, written, created or renamed.
    #[error("{action} {}", .path.display())]
    File {
        /// What was done (`reading`, `creating a temporary file in`, `renaming a blob to`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A downloaded blob does not have its digest, or the digest names no algorithm we can compute.
    /// The cause carries the Go text, `Expected stream to have digest '…' but was '…'`.
    #[error("checking {blob}")]
    Digest {
        /// The blob (`downloaded blob '<id>'`, `blob downloaded from <url>`).
        blob: String,
        /// The cause.
        #[source]
        source: digest::Error,
    },
    /// An HTTP exchange failed before an answer (connect, TLS, I/O).
    #[error("requesting {method} {url}")]
    Http {
        /// `GET` or `PUT`.
        method: &'static str,
        /// The URL, without user info or query.
        url: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The server answered with a status the operation does not accept.
    #[error("unexpected HTTP status {status} for {method} {url}{body}")]
    Status {
        /// `GET` or `PUT`.
        method: &'static str,
        /// The URL, without user info or query.
        url: String,
        /// The status, with its reason (`401 Unauthorized`).
        status: hyper::StatusCode,
        /// `: <start of the body>` for servers whose bodies are safe to show (DAV), else empty.
        body: String,
    },
    /// No byte moved for too long.
    #[error("no progress on {method} {url} for {} s", .idle.as_secs())]
    Stalled {
        /// `GET` or `PUT`.
        method: &'static str,
        /// The URL, without user info or query.
        url: String,
        /// How long nothing moved.
        idle: std::time::Duration,
    },
    /// The external blobstore command failed; the cause carries its exit status and stderr.
    #[error("{operation} with the {provider} blobstore command")]
    Command {
        /// `getting blob '<id>'` or `putting <path>`.
        operation: String,
        /// The provider.
        provider: String,
        /// The cause.
        #[source]
        source: Box<platform::cmd::Error>,
    },
    /// The dummy blobstore holds no blobs to get (only the local blob directories can serve them).
    #[error("the dummy blobstore holds no blob '{id}'")]
    Dummy {
        /// The blob id asked for.
        id: String,
    },
    /// Every attempt failed; the cause is the last attempt's error.
    #[error("{operation} failed after {attempts} attempt{}", if *.attempts == 1 { "" } else { "s" })]
    Attempts {
        /// `getting blob '<id>'`, `putting <path>`, `downloading from <url>`.
        operation: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: Box<Error>,
    },
    /// A blocking task of the operation panicked or was cancelled.
    #[error("blobstore task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// Whether another attempt could succeed: bad input (an id, an option, a digest naming no
    /// algorithm we know) fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::BlobId(_)
            | Error::Provider(_)
            | Error::Option { .. }
            | Error::Url { .. }
            | Error::Header { .. }
            | Error::Tls(_)
            | Error::Dummy { .. } => false,
            Error::Digest { source, .. } => matches!(source, digest::Error::Mismatch { .. }),
            Error::Attempts { source, .. } => source.is_retryable(),
            _ => true,
        }
    }
}

/// Builds the blobstore the agent uses for `blobstore` settings: the provider, its retries
/// ([`Retry::BLOBSTORE`]) and, on top, the local blob directories of [`Cascading`].
///
/// This does blocking IO (it writes an external provider's config file and reads the system's CA
/// certificates for `dav`), so an async caller runs it in `spawn_blocking`. `runner` runs the
/// `bosh-blobstore-<provider>` commands of external providers.
pub fn from_settings(
    blobstore: &BlobstoreSettings,
    dirs: &Dirs,
    runner: Arc<dyn CommandRunner>,
) -> Result<Box<dyn Blobstore>> {
    let provider: Box<dyn Blobstore> = match blobstore.provider.as_str() {
        PROVIDER_DUMMY => Box::new(DummyBlobstore),
        PROVIDER_LOCAL => Box::new(LocalBlobstore::from_options(&blobstore.options, dirs)?),
        PROVIDER_DAV => Box::new(DavBlobstore::from_options(&blobstore.options)?),
        other => Box::new(ExternalBlobstore::try_new(
            other,
            &blobstore.options,
            &dirs.etc_dir(),
            runner,
        )?),
    };
    tracing::debug!(provider = %blobstore.provider, "blobstore configured");
    let retrying = Retrying::new(provider, Retry::BLOBSTORE);
    Ok(Box::new(Cascading::new(Box::new(retrying), dirs)))
}

/// `options.tls.cert.ca` of blobstore settings, if it is a non-empty string (what
/// `agent/httpblobprovider/blobstore_http_client.go` and davcli read).
pub fn ca_certificate(
    options: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Option<&str> {
    options
        .get("tls")?
        .get("cert")?
        .get("ca")?
        .as_str()
        .filter(|ca| !ca.trim().is_empty())
}

/// Checks that `id` can name a file (no `/`, `.`, `..`, NUL or empty id).
fn check_id(id: &str) -> Result<()> {
    platform::name::check("blob id", id).map_err(Error::BlobId)
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::Task)?
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    use platform::testing::RecordingRunner;
    use serde_json::json;

    fn settings(provider: &str, options: serde_json::Value) -> BlobstoreSettings {
        BlobstoreSettings {
            provider: provider.to_owned(),
            options: serde_json::from_value(options).unwrap(),
        }
    }

    #[test]
    fn providers_are_picked_by_name() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let runner: Arc<dyn CommandRunner> = Arc::new(RecordingRunner::new());
        let cases = [
            ("dummy", json!({}), "DummyBlobstore"),
            (
                "local",
                json!({"blobstore_path": "/tmp/b"}),
                "LocalBlobstore",
            ),
            (
                "dav",
                json!({"endpoint": "http://127.0.0.1:25250"}),
                "DavBlobstore",
            ),
            ("s3", json!({"bucket_name": "b"}), "ExternalBlobstore"),
        ];
        for (provider, options, expected) in cases {
            let blobstore = from_settings(&settings(provider, options), &dirs, runner.clone())
                .unwrap_or_else(|err| panic!("{provider}: {err}"));
            let debug = format!("{blobstore:?}");
            assert!(debug.starts_with("Cascading"), "{debug}");
            assert!(debug.contains(expected), "{provider}: {debug}");
        }
        // Building the external provider wrote its config, and ran nothing.
        assert!(dirs.etc_dir().join("blobstore-s3.json").exists());
    }

    #[test]
    fn bad_settings_are_refused_before_anything_is_written() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let runner: Arc<dyn CommandRunner> = Arc::new(RecordingRunner::new());
        let cases = [
            (
                "",
                json!({}),
                "invalid blobstore provider: blobstore provider is empty",
            ),
            ("../s3", json!({}), "invalid blobstore provider"),
            (
                "local",
                json!({}),
                "blobstore option blobstore_path of the local blobstore is missing",
            ),
            (
                "local",
                json!({"blobstore_path": 7}),
                "blobstore option blobstore_path of the local blobstore must be a string",
            ),
            (
                "dav",
                json!({}),
                "blobstore option endpoint of the dav blobstore is missing",
            ),
            (
                "dav",
                json!({"endpoint": "ftp://h"}),
                "invalid blob URL ftp://h",
            ),
        ];
        for (provider, options, expected) in cases {
            let err =
                from_settings(&settings(provider, options), &dirs, runner.clone()).unwrap_err();
            let text = settings::source::error_chain(&err);
            assert!(text.starts_with(expected), "{provider}: {text}");
            assert!(!err.is_retryable());
        }
        assert!(!base.path().join("bosh").exists());
    }

    #[test]
    fn the_ca_is_read_from_tls_cert_ca() {
        let options: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json!({"tls": {"cert": {"ca": "PEM"}}})).unwrap();
        assert_eq!(ca_certificate(&options), Some("PEM"));
        for options in [
            json!({}),
            json!({"tls": {"cert": {"ca": " "}}}),
            json!({"tls": 1}),
        ] {
            let options: BTreeMap<String, serde_json::Value> =
                serde_json::from_value(options).unwrap();
            assert_eq!(ca_certificate(&options), None);
        }
    }

    #[test]
    fn only_mismatches_and_io_are_retried() {
        let mismatch = Error::Digest {
            blob: "downloaded blob 'a'".into(),
            source: digest::Error::Mismatch {
                expected: "x".into(),
                actual: "y".into(),
            },
        };
        assert!(mismatch.is_retryable());
        let unknown = Error::Digest {
            blob: "downloaded blob 'a'".into(),
            source: digest::Error::UnknownAlgorithm("md5".into()),
        };
        assert!(!unknown.is_retryable());
        assert!(!check_id("../etc").unwrap_err().is_retryable());
    }
}
