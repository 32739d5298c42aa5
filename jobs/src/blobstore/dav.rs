//! The `dav` blobstore, built in: the WebDAV protocol of davcli (`bosh-davcli/client/client.go`,
//! `config/config.go`), which the Go agent runs as the external `bosh-blobstore-dav` command.
//!
//! Options: `endpoint` (`http://` or `https://`), `user` and `password` (basic auth, sent only when
//! `user` is set), `tls.cert.ca` (PEM; trusted alone when given). A blob lives at
//! `<endpoint>/<first byte of SHA-1(id) as two hex digits>/<id>`; GET must answer 200, PUT 201 or
//! 204. davcli's own `retry_attempts` is ignored: the agent's retries ([`crate::blobstore::Retry`])
//! apply to every provider.

use std::collections::BTreeMap;
use std::path::Path;

use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap};

use settings::digest::{Algorithm, MultiDigest};

use crate::blobstore::http::{Exchange, HttpClient, basic_authorization, display_url, parse_url};
use crate::blobstore::staging::file_error;
use crate::blobstore::{
    Blobstore, BoxFuture, Error, PROVIDER_DAV, Result, blocking, ca_certificate, check_id,
};

/// A WebDAV blobstore.
#[derive(Clone)]
pub struct DavBlobstore {
    endpoint: url::Url,
    headers: HeaderMap,
    client: HttpClient,
}

impl std::fmt::Debug for DavBlobstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavBlobstore")
            .field("endpoint", &display_url(&self.endpoint))
            .finish_non_exhaustive()
    }
}

impl DavBlobstore {
    /// The blobstore the `dav` options describe (blocking without `tls.cert.ca`: it reads the
    /// system's CA certificates).
    pub fn from_options(options: &BTreeMap<String, serde_json::Value>) -> Result<DavBlobstore> {
        let string = |option: &'static str| -> Result<Option<&str>> {
            match options.get(option) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(value) => value.as_str().map(Some).ok_or(Error::Option {
                    provider: PROVIDER_DAV.to_owned(),
                    option,
                    problem: "must be a string",
                }),
            }
        };
        let endpoint = string("endpoint")?.ok_or(Error::Option {
            provider: PROVIDER_DAV.to_owned(),
            option: "endpoint",
            problem: "is missing",
        })?;
        let user = string("user")?.unwrap_or_default();
        let password = string("password")?.unwrap_or_default();
        let credentials = (!user.is_empty()).then_some((user, password));
        DavBlobstore::try_new(endpoint, credentials, ca_certificate(options))
    }

    /// A blobstore at `endpoint`, with basic auth from `credentials`, trusting `ca_pem` alone if
    /// given (else the system's store, read here: blocking).
    pub fn try_new(
        endpoint: &str,
        credentials: Option<(&str, &str)>,
        ca_pem: Option<&str>,
    ) -> Result<DavBlobstore> {
        let (endpoint, url_credentials) = parse_url(endpoint)?;
        let mut headers = HeaderMap::new();
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        if let Some((user, password)) = credentials.or(url_credentials) {
            headers.insert(AUTHORIZATION, basic_authorization(&user, &password));
        }
        Ok(DavBlobstore {
            endpoint,
            headers,
            client: HttpClient::try_new(ca_pem)?,
        })
    }

    /// The URL of blob `id`: `<endpoint>/<prefix>/<id>`.
    pub fn blob_url(&self, id: &str) -> url::Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&blob_prefix(id)).push(id);
        }
        url
    }
}

impl Blobstore for DavBlobstore {
    fn get<'a>(
        &'a self,
        id: &'a str,
        digest: &'a MultiDigest,
        destination: &'a Path,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_id(id)?;
            let url = self.blob_url(id);
            let exchange = Exchange {
                url: &url,
                headers: &self.headers,
                accepts: |status| status == StatusCode::OK,
                shows_error_body: true,
            };
            self.client
                .download(
                    &exchange,
                    digest,
                    destination,
                    format!("downloaded blob '{id}'"),
                )
                .await?;
            tracing::debug!(blob_id = %id, "downloaded blob");
            Ok(())
        })
    }

    fn put<'a>(&'a self, source: &'a Path) -> BoxFuture<'a, Result<(String, MultiDigest)>> {
        Box::pin(async move {
            let path = source.to_owned();
            let digest = blocking(move || {
                let file =
                    std::fs::File::open(&path).map_err(|err| file_error("reading", &path, err))?;
                MultiDigest::compute(file, &[Algorithm::Sha1]).map_err(|source| Error::Digest {
                    blob: path.display().to_string(),
                    source,
                })
            })
            .await?;
            let id = uuid::Uuid::new_v4().to_string();
            let url = self.blob_url(&id);
            let exchange = Exchange {
                url: &url,
                headers: &self.headers,
                accepts: |status| matches!(status, StatusCode::CREATED | StatusCode::NO_CONTENT),
                shows_error_body: true,
            };
            self.client.upload(&exchange, source).await?;
            tracing::debug!(blob_id = %id, "stored blob");
            Ok((id, digest))
        })
    }
}

/// The first byte of SHA-1(`id`) as two hex digits: the directory davcli keeps blob `id` in.
fn blob_prefix(id: &str) -> String {
    MultiDigest::compute(id.as_bytes(), &[Algorithm::Sha1])
        .ok()
        .and_then(|digest| digest.digests().first().map(|d| d.hex[..2].to_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn dav(options: serde_json::Value) -> Result<DavBlobstore> {
        DavBlobstore::from_options(&serde_json::from_value(options).unwrap())
    }

    #[test]
    fn blob_prefixes_are_the_first_sha1_byte_in_hex() {
        // SHA-1("") = da39a3ee…, SHA-1("abc") = a9993e36…
        assert_eq!(blob_prefix(""), "da");
        assert_eq!(blob_prefix("abc"), "a9");
    }

    #[test]
    fn blob_urls_join_the_endpoint_path() {
        let cases = [
            ("http://10.0.0.6:25250", "http://10.0.0.6:25250/a9/abc"),
            ("http://10.0.0.6:25250/", "http://10.0.0.6:25250/a9/abc"),
            ("https://h/blobs", "https://h/blobs/a9/abc"),
            ("https://h/blobs/", "https://h/blobs/a9/abc"),
        ];
        for (endpoint, expected) in cases {
            let blobstore = dav(json!({"endpoint": endpoint})).unwrap();
            assert_eq!(blobstore.blob_url("abc").as_str(), expected, "{endpoint}");
        }
    }

    #[test]
    fn credentials_become_basic_auth_and_stay_out_of_debug() {
        let blobstore = dav(json!({
            "endpoint": "http://10.0.0.6:25250", "user": "agent", "password": "s3cret"
        }))
        .unwrap();
        let authorization = blobstore.headers.get(AUTHORIZATION).unwrap();
        // base64("agent:s3cret")
        assert_eq!(authorization.to_str().unwrap(), "Basic YWdlbnQ6czNjcmV0");
        assert!(authorization.is_sensitive());
        let debug = format!("{blobstore:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("YWdlbnQ6"),
            "{debug}"
        );

        let anonymous = dav(json!({"endpoint": "http://h", "password": "p"})).unwrap();
        assert!(anonymous.headers.get(AUTHORIZATION).is_none());
    }

    #[test]
    fn bad_options_are_refused() {
        let cases = [
            (
                json!({}),
                "blobstore option endpoint of the dav blobstore is missing",
            ),
            (
                json!({"endpoint": 1}),
                "blobstore option endpoint of the dav blobstore must be a string",
            ),
            (
                json!({"endpoint": "h", "user": ["x"]}),
                "blobstore option user of the dav blobstore must be a string",
            ),
            (
                json!({"endpoint": "not a url"}),
                "invalid blob URL not a url",
            ),
            (
                json!({"endpoint": "http://h", "tls": {"cert": {"ca": "no pem here"}}}),
                "building the blobstore TLS configuration",
            ),
        ];
        for (options, expected) in cases {
            let err = dav(options.clone()).unwrap_err();
            assert!(err.to_string().starts_with(expected), "{options}: {err}");
        }
    }
}
