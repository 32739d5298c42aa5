//! Signed blob URLs: the director hands the agent pre-signed GET and PUT URLs (with
//! `blobstore_headers`) instead of blob ids, following `agent/httpblobprovider/http_blob_provider.go`
//! and `blobstore_delegator/blobstore_delegator.go`.
//!
//! * [`SignedClient::get_signed`]: GET with the headers, any 2xx accepted, the body verified against
//!   the digest; 3 attempts, 5 s apart ([`Retry::SIGNED_GET`]).
//! * [`SignedClient::put_signed`]: the file's `sha1;sha512` digest, then a PUT with
//!   `Content-Length`, `Accept: */*`, `Expect: 100-continue` and the headers (which may override
//!   those two); any 2xx accepted; one attempt, as in Go.
//!
//! Signed URLs carry their signature in the query, so error texts show URLs without it, and
//! answer bodies (which may echo the signature) are never shown.

use std::collections::BTreeMap;
use std::path::Path;

use hyper::StatusCode;
use hyper::header::{ACCEPT, AUTHORIZATION, EXPECT, HeaderMap, HeaderName, HeaderValue};

use settings::digest::{Algorithm, MultiDigest};

use crate::blobstore::http::{Exchange, HttpClient, basic_authorization, display_url, parse_url};
use crate::blobstore::staging::file_error;
use crate::blobstore::{Error, Result, Retry, blocking, ca_certificate};

/// A client of signed blob URLs.
#[derive(Debug, Clone)]
pub struct SignedClient {
    http: HttpClient,
    /// Retries of downloads ([`Retry::SIGNED_GET`] unless changed).
    pub get_retry: Retry,
    /// Retries of uploads ([`Retry::SIGNED_PUT`] unless changed).
    pub put_retry: Retry,
}

impl SignedClient {
    /// A client trusting the blobstore settings' `options.tls.cert.ca` alone if they give one, else
    /// the system's store (read here: blocking).
    pub fn from_settings(blobstore: &settings::model::Blobstore) -> Result<SignedClient> {
        SignedClient::try_new(ca_certificate(&blobstore.options))
    }

    /// A client trusting `ca_pem` alone if given, else the system's store (read here: blocking).
    pub fn try_new(ca_pem: Option<&str>) -> Result<SignedClient> {
        Ok(SignedClient {
            http: HttpClient::try_new(ca_pem)?,
            get_retry: Retry::SIGNED_GET,
            put_retry: Retry::SIGNED_PUT,
        })
    }

    /// Downloads `url` to `destination`, which appears only once the content matches `digest`.
    pub async fn get_signed(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        digest: &MultiDigest,
        destination: &Path,
    ) -> Result<()> {
        let (url, headers) = request_parts(url, headers, &HeaderMap::new())?;
        let shown = display_url(&url);
        let exchange = Exchange {
            url: &url,
            headers: &headers,
            accepts: |status: StatusCode| status.is_success(),
            shows_error_body: false,
        };
        let operation = format!("downloading blob from {shown}");
        self.get_retry
            .run(&operation, || {
                self.http.download(
                    &exchange,
                    digest,
                    destination,
                    format!("blob downloaded from {shown}"),
                )
            })
            .await?;
        tracing::debug!(url = %shown, "downloaded blob from a signed URL");
        Ok(())
    }

    /// Uploads the file `source` to `url`; returns its `sha1;sha512:<hex>` digest.
    pub async fn put_signed(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        source: &Path,
    ) -> Result<MultiDigest> {
        let mut defaults = HeaderMap::new();
        defaults.insert(ACCEPT, HeaderValue::from_static("*/*"));
        defaults.insert(EXPECT, HeaderValue::from_static("100-continue"));
        let (url, headers) = request_parts(url, headers, &defaults)?;
        let path = source.to_owned();
        let digest = blocking(move || {
            let file =
                std::fs::File::open(&path).map_err(|err| file_error("reading", &path, err))?;
            MultiDigest::compute(file, &[Algorithm::Sha1, Algorithm::Sha512]).map_err(|source| {
                Error::Digest {
                    blob: path.display().to_string(),
                    source,
                }
            })
        })
        .await?;
        let shown = display_url(&url);
        let exchange = Exchange {
            url: &url,
            headers: &headers,
            accepts: |status: StatusCode| status.is_success(),
            shows_error_body: false,
        };
        let operation = format!("uploading {} to {shown}", source.display());
        self.put_retry
            .run(&operation, || self.http.upload(&exchange, source))
            .await?;
        tracing::debug!(url = %shown, "uploaded blob to a signed URL");
        Ok(digest)
    }
}

/// The URL without user info, and the headers to send: `defaults`, then basic auth from the URL's
/// user info, then the caller's headers (which win, as Go's `Header.Set` after the defaults).
/// Everything is checked before the first request.
fn request_parts(
    url: &str,
    headers: &BTreeMap<String, String>,
    defaults: &HeaderMap,
) -> Result<(url::Url, HeaderMap)> {
    let (url, credentials) = parse_url(url)?;
    let mut map = defaults.clone();
    if let Some((user, password)) = credentials {
        map.insert(AUTHORIZATION, basic_authorization(&user, &password));
    }
    for (name, value) in headers {
        let header_error = || Error::Header { name: name.clone() };
        let name = HeaderName::try_from(name.as_str()).map_err(|_| header_error())?;
        let mut value = HeaderValue::try_from(value.as_str()).map_err(|_| header_error())?;
        // Blobstore headers carry keys (`x-goog-encryption-key`, `x-amz-server-side-encryption-
        // customer-key`): keep hyper from ever showing them.
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok((url, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_headers_override_the_defaults_and_are_sensitive() {
        let mut defaults = HeaderMap::new();
        defaults.insert(ACCEPT, HeaderValue::from_static("*/*"));
        defaults.insert(EXPECT, HeaderValue::from_static("100-continue"));
        let headers = BTreeMap::from([
            ("Accept".to_owned(), "application/gzip".to_owned()),
            (
                "x-amz-server-side-encryption".to_owned(),
                "AES256".to_owned(),
            ),
        ]);
        let (url, map) = request_parts(
            "https://u:p%40ss@s3.example.com/b/k?X-Amz-Signature=abc",
            &headers,
            &defaults,
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://s3.example.com/b/k?X-Amz-Signature=abc"
        );
        assert_eq!(map[ACCEPT], "application/gzip");
        assert_eq!(map[EXPECT], "100-continue");
        assert_eq!(map["x-amz-server-side-encryption"], "AES256");
        assert!(map["x-amz-server-side-encryption"].is_sensitive());
        // base64("u:p@ss")
        assert_eq!(map[AUTHORIZATION], "Basic dTpwQHNz");
        assert_eq!(display_url(&url), "https://s3.example.com/b/k");
    }

    #[test]
    fn bad_urls_and_headers_are_refused_without_showing_secrets() {
        let none = BTreeMap::new();
        let cases: [(&str, BTreeMap<String, String>, &str); 4] = [
            (
                "ftp://h/k?sig=1",
                none.clone(),
                "invalid blob URL ftp://h/k",
            ),
            (
                "not a url?sig=1",
                none.clone(),
                "invalid blob URL not a url",
            ),
            (
                "http://u:pw@[::1/x?sig=1",
                none.clone(),
                "invalid blob URL http://u:<redacted>@[::1/x",
            ),
            (
                "https://h/k",
                BTreeMap::from([("bad header".to_owned(), "secret".to_owned())]),
                "invalid blobstore header 'bad header'",
            ),
        ];
        for (url, headers, expected) in cases {
            let err = request_parts(url, &headers, &HeaderMap::new()).unwrap_err();
            let text = settings::source::error_chain(&err);
            assert!(text.starts_with(expected), "{url}: {text}");
            assert!(
                !text.contains("sig=") && !text.contains("secret") && !text.contains("pw"),
                "{text}"
            );
            assert!(!err.is_retryable());
        }
    }
}
