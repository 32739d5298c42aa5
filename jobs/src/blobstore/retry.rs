//! Retries of blobstore operations: bosh-utils `blobstore/retryable_blobstore.go` (3 attempts per get
//! and put, no pause) and the signed-URL download of
//! `agent/httpblobprovider/blobstore_delegator/blobstore_delegator.go` (3 attempts, 5 s apart).
//!
//! Like Go, a digest mismatch is retried (a download can be cut or corrupted on the way); unlike Go,
//! bad input (an invalid blob id, an unknown digest algorithm) fails at once, since it would fail
//! the same way every time.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use settings::digest::MultiDigest;

use crate::blobstore::{Blobstore, BoxFuture, Error, Result};

/// How often an operation is tried and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (at least one is always made).
    pub attempts: u32,
    /// The pause after a failed attempt.
    pub delay: Duration,
}

/// A [`Blobstore`] that retries the one it wraps.
#[derive(Debug)]
pub struct Retrying {
    inner: Box<dyn Blobstore>,
    retry: Retry,
}

impl Retry {
    /// Blobstore gets and puts: 3 attempts, back to back (`retryable_blobstore.go`).
    pub const BLOBSTORE: Retry = Retry {
        attempts: 3,
        delay: Duration::ZERO,
    };

    /// Signed-URL downloads: 3 attempts, 5 s apart (`blobstore_delegator.go`).
    pub const SIGNED_GET: Retry = Retry {
        attempts: 3,
        delay: Duration::from_secs(5),
    };

    /// Signed-URL uploads: one attempt, as the Go agent makes.
    pub const SIGNED_PUT: Retry = Retry {
        attempts: 1,
        delay: Duration::ZERO,
    };

    /// Runs `attempt` until it succeeds, fails with an error that is not retryable, or runs out of
    /// attempts; the last error is wrapped with `operation` and the number of attempts made.
    pub(crate) async fn run<T, F, Fut>(self, operation: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempts = self.attempts.max(1);
        let mut made = 0;
        loop {
            made += 1;
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if made >= attempts || !err.is_retryable() {
                return Err(Error::Attempts {
                    operation: operation.to_owned(),
                    attempts: made,
                    source: Box::new(err),
                });
            }
            tracing::warn!(
                operation,
                attempt = made,
                attempts,
                error = %settings::source::error_chain(&err),
                "blobstore operation failed, retrying"
            );
            tokio::time::sleep(self.delay).await;
        }
    }
}

impl Retrying {
    /// Retries `inner`'s operations as `retry` says.
    pub fn new(inner: Box<dyn Blobstore>, retry: Retry) -> Retrying {
        Retrying { inner, retry }
    }
}

impl Blobstore for Retrying {
    fn get<'a>(
        &'a self,
        id: &'a str,
        digest: &'a MultiDigest,
        destination: &'a Path,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let operation = format!("getting blob '{id}'");
            self.retry
                .run(&operation, || self.inner.get(id, digest, destination))
                .await
        })
    }

    fn put<'a>(&'a self, source: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>> {
        Box::pin(async move {
            let operation = format!("putting {}", source.display());
            self.retry.run(&operation, || self.inner.put(source)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails its first `failures` calls with `error()`, then succeeds; counts calls.
    #[derive(Debug)]
    struct Flaky {
        failures: u32,
        calls: Arc<AtomicU32>,
        error: fn() -> Error,
    }

    impl Flaky {
        fn call(&self) -> Result<()> {
            let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if calls <= self.failures {
                Err((self.error)())
            } else {
                Ok(())
            }
        }
    }

    impl Blobstore for Flaky {
        fn get<'a>(
            &'a self,
            _: &'a str,
            _: &'a MultiDigest,
            _: &'a Path,
        ) -> BoxFuture<'a, Result<()>> {
            Box::pin(async move { self.call() })
        }

        fn put<'a>(&'a self, _: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>> {
            Box::pin(async move {
                self.call()?;
                Ok(("id".to_owned(), MultiDigest::parse("abcd").unwrap()))
            })
        }
    }

    fn io_error() -> Error {
        Error::File {
            action: "reading",
            path: "/b".into(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }

    fn flaky(failures: u32, error: fn() -> Error) -> (Retrying, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let inner = Flaky {
            failures,
            calls: calls.clone(),
            error,
        };
        let retry = Retry {
            attempts: 3,
            delay: Duration::from_millis(1),
        };
        (Retrying::new(Box::new(inner), retry), calls)
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried() {
        let (retrying, calls) = flaky(2, io_error);
        let digest = MultiDigest::parse("abcd").unwrap();
        retrying.get("a", &digest, Path::new("/x")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let (retrying, _) = flaky(1, io_error);
        assert_eq!(retrying.put(Path::new("/x")).await.unwrap().0, "id");
    }

    #[tokio::test]
    async fn the_last_error_is_kept_after_three_attempts() {
        let (retrying, calls) = flaky(5, io_error);
        let digest = MultiDigest::parse("abcd").unwrap();
        let err = retrying
            .get("a", &digest, Path::new("/x"))
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            settings::source::error_chain(&err),
            "getting blob 'a' failed after 3 attempts: reading /b: entity not found"
        );
    }

    #[tokio::test]
    async fn bad_input_is_not_retried() {
        let (retrying, calls) = flaky(5, || Error::Dummy { id: "a".into() });
        assert!(retrying.put(Path::new("/x")).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
