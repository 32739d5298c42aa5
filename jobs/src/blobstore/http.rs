//! The HTTP client of the DAV blobstore and of signed blob URLs: what bosh-utils
//! `httpclient/default_http_clients.go` builds for `agent/httpblobprovider/blobstore_http_client.go`
//! and davcli, on hyper-util's client with rustls (ring) through hyper-rustls.
//!
//! * Trust: the CA of `options.tls.cert.ca` alone when the settings give one, else the system's
//!   store (which holds the director's trusted certificates), as Go's `tls.Config.RootCAs` does.
//! * No connection is reused (Go sets `DisableKeepAlives`), HTTP/1.1 only.
//! * Bodies stream: a download goes chunk by chunk into a [`Staged`] file, an upload is read from
//!   its file as hyper sends it. Blobs can be gigabytes, so there is no overall time limit; instead
//!   every wait (connect, answer, each chunk) fails after [`HttpClient::idle_timeout`] without
//!   progress.
//! * Error texts name the method and the URL without user info or query (signed URLs carry their
//!   signature there); bodies are shown only where the caller says they are safe.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, ReadBuf};

use settings::digest::MultiDigest;

use crate::blobstore::staging::{Staged, Verifier, file_error};
use crate::blobstore::{BoxError, Error, Result};

/// How long connecting may take (Go's dialer: 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long nothing may move before an exchange fails.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The size of the chunks an upload is read in.
const CHUNK: usize = 64 * 1024;
/// How much of an error body is shown when bodies are safe to show (davcli shows 1 KiB).
const ERROR_BODY_LIMIT: usize = 1024;

/// A client for blob downloads and uploads.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, UploadBody>,
    /// How long an exchange may go without progress.
    pub(crate) idle_timeout: Duration,
}

/// One exchange: where, with which headers, and what counts as success.
pub(crate) struct Exchange<'a> {
    /// The URL, user info already removed.
    pub(crate) url: &'a url::Url,
    /// Headers to send (authorization among them, marked sensitive).
    pub(crate) headers: &'a HeaderMap,
    /// Whether a status means success.
    pub(crate) accepts: fn(StatusCode) -> bool,
    /// Whether the start of an error body may appear in the error text.
    pub(crate) shows_error_body: bool,
}

/// The body of a request: nothing, or a file streamed as hyper asks for it.
pub(crate) struct UploadBody {
    file: Option<tokio::fs::File>,
    remaining: u64,
    progress: Arc<AtomicU64>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client trusting `ca_pem` only, or the system's store when there is none (blocking: it
    /// reads the system's certificates).
    pub(crate) fn try_new(ca_pem: Option<&str>) -> Result<HttpClient> {
        let config = client_config(ca_pem)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(https);
        Ok(HttpClient {
            client,
            idle_timeout: IDLE_TIMEOUT,
        })
    }

    /// GETs `exchange.url` into `destination`, verified against `digest`: the body streams into a
    /// temporary file beside `destination`, which replaces it only if the digest matches. `blob`
    /// names the blob in a digest error.
    pub(crate) async fn download(
        &self,
        exchange: &Exchange<'_>,
        digest: &MultiDigest,
        destination: &Path,
        blob: String,
    ) -> Result<()> {
        let verifier = Verifier::new(digest).map_err(|source| Error::Digest {
            blob: blob.clone(),
            source,
        })?;
        let response = self
            .send(Method::GET, exchange, UploadBody::empty(), None)
            .await?;
        let mut body = self.check_status("GET", exchange, response).await?;
        let mut staged = Staged::create(destination, verifier).await?;
        let received = loop {
            let frame = match tokio::time::timeout(self.idle_timeout, body.frame()).await {
                Err(_) => break Err(self.stalled("GET", exchange)),
                Ok(None) => break Ok(()),
                Ok(Some(Err(err))) => break Err(http_error("GET", exchange, Box::new(err))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if let Err(err) = staged.write(&data).await {
                    break Err(err);
                }
            }
        };
        match received {
            Ok(()) => staged.finish(destination, blob).await,
            Err(err) => {
                staged.discard().await;
                Err(err)
            }
        }
    }

    /// PUTs the file `source` to `exchange.url` with a `Content-Length`, streaming it.
    pub(crate) async fn upload(&self, exchange: &Exchange<'_>, source: &Path) -> Result<()> {
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|err| file_error("reading", source, err))?;
        let length = file
            .metadata()
            .await
            .map_err(|err| file_error("reading", source, err))?
            .len();
        let progress = Arc::new(AtomicU64::new(0));
        let body = UploadBody::file(file, length, progress.clone());
        let response = self
            .send(Method::PUT, exchange, body, Some((length, &progress)))
            .await?;
        // The answer's body is not needed; the connection is not reused, so it is not drained.
        let _ = self.check_status("PUT", exchange, response).await?;
        Ok(())
    }

    /// Sends a request and waits for the answer's head. An upload's `progress` counts the bytes
    /// sent: the wait fails only when neither bytes move nor an answer comes for `idle_timeout`.
    async fn send(
        &self,
        method: Method,
        exchange: &Exchange<'_>,
        body: UploadBody,
        upload: Option<(u64, &AtomicU64)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let method_name = if method == Method::PUT { "PUT" } else { "GET" };
        let uri: hyper::Uri = exchange
            .url
            .as_str()
            .parse()
            .map_err(|err| http_error(method_name, exchange, Box::new(err)))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|err| http_error(method_name, exchange, Box::new(err)))?;
        if let Some((length, _)) = upload {
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        for (name, value) in exchange.headers {
            request.headers_mut().insert(name, value.clone());
        }
        let response = self.client.request(request);
        tokio::pin!(response);
        let mut seen = 0;
        loop {
            match tokio::time::timeout(self.idle_timeout, &mut response).await {
                Ok(outcome) => {
                    return outcome.map_err(|err| http_error(method_name, exchange, Box::new(err)));
                }
                Err(_) => {
                    let sent = upload.map_or(0, |(_, progress)| progress.load(Ordering::Relaxed));
                    if sent == seen {
                        return Err(self.stalled(method_name, exchange));
                    }
                    seen = sent;
                }
            }
        }
    }

    /// Passes a response whose status `exchange` accepts; turns any other into an error.
    async fn check_status(
        &self,
        method: &'static str,
        exchange: &Exchange<'_>,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<hyper::body::Incoming> {
        let status = response.status();
        if (exchange.accepts)(status) {
            return Ok(response.into_body());
        }
        let body = if exchange.shows_error_body {
            let start = self.start_of(response.into_body()).await;
            let start = String::from_utf8_lossy(&start);
            let start = start.trim();
            if start.is_empty() {
                String::new()
            } else {
                format!(": {start}")
            }
        } else {
            String::new()
        };
        Err(Error::Status {
            method,
            url: display_url(exchange.url),
            status,
            body,
        })
    }

    /// Up to [`ERROR_BODY_LIMIT`] bytes of a body, or what arrived before an error or a stall.
    async fn start_of(&self, mut body: hyper::body::Incoming) -> Vec<u8> {
        let mut start = Vec::new();
        while start.len() < ERROR_BODY_LIMIT {
            match tokio::time::timeout(self.idle_timeout, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        start.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
        start.truncate(ERROR_BODY_LIMIT);
        start
    }

    fn stalled(&self, method: &'static str, exchange: &Exchange<'_>) -> Error {
        Error::Stalled {
            method,
            url: display_url(exchange.url),
            idle: self.idle_timeout,
        }
    }
}

impl UploadBody {
    fn empty() -> UploadBody {
        UploadBody {
            file: None,
            remaining: 0,
            progress: Arc::new(AtomicU64::new(0)),
            buffer: Vec::new(),
        }
    }

    fn file(file: tokio::fs::File, length: u64, progress: Arc<AtomicU64>) -> UploadBody {
        UploadBody {
            file: Some(file),
            remaining: length,
            progress,
            buffer: vec![0; CHUNK],
        }
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let Some(file) = this.file.as_mut() else {
            return Poll::Ready(None);
        };
        if this.remaining == 0 {
            this.file = None;
            return Poll::Ready(None);
        }
        let wanted =
            usize::try_from(this.remaining).map_or(CHUNK, |remaining| remaining.min(CHUNK));
        let mut buffer = ReadBuf::new(&mut this.buffer[..wanted]);
        match Pin::new(file).poll_read(cx, &mut buffer) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Ready(Ok(())) if buffer.filled().is_empty() => {
                // The file shrank after its length was sent: the request cannot be completed.
                this.file = None;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was uploaded",
                ))))
            }
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(buffer.filled());
                this.remaining -= chunk.len() as u64;
                this.progress
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.file.is_none() || self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(if self.file.is_some() {
            self.remaining
        } else {
            0
        })
    }
}

/// Parses a blob URL: `http://` or `https://` with a host. Returns it without user info, and the
/// decoded user info as `(user, password)` if it had some.
pub(crate) fn parse_url(text: &str) -> Result<(url::Url, Option<(String, String)>)> {
    let url_error = |source: BoxError| Error::Url {
        url: display_text_url(text),
        source,
    };
    let mut url = url::Url::parse(text).map_err(|err| url_error(Box::new(err)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(url_error("only http:// and https:// are supported".into()));
    }
    if url.host().is_none() {
        return Err(url_error("the URL names no host".into()));
    }
    let credentials = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = (
            decode(url.username()),
            decode(url.password().unwrap_or_default()),
        );
        // Cannot fail: an http(s) URL has a host, so it can have user info.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some(credentials)
    };
    Ok((url, credentials))
}

/// `Basic base64(user:password)`, marked sensitive so hyper never shows it.
pub(crate) fn basic_authorization(user: &str, password: &str) -> HeaderValue {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    // Base64 is always a valid header value.
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .unwrap_or(HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// A URL for texts: scheme, host, port and path; no user info, no query, no fragment.
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// [`display_url`] of a text that may not parse: cut at `?` or `#`, any password redacted.
fn display_text_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) => display_url(&url),
        Err(_) => settings::redact::redact_url(text.split(['?', '#']).next().unwrap_or_default()),
    }
}

/// The TLS configuration: ring, TLS 1.2 and 1.3, trusting `ca_pem` alone or the system's store.
fn client_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig> {
    let roots = match ca_pem {
        Some(ca_pem) => {
            let certificates = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|err| Error::Tls(Box::new(err)))?;
            if certificates.is_empty() {
                return Err(Error::Tls(
                    "options.tls.cert.ca holds no PEM certificate".into(),
                ));
            }
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|err| Error::Tls(Box::new(err)))?;
            }
            roots
        }
        None => system_roots(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(Box::new(err)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The system's trusted certificates; an empty store (and a warning) when there are none, so that
/// plain-HTTP blobstores still work.
fn system_roots() -> rustls::RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        tracing::warn!(
            errors = loaded.errors.len(),
            "no system CA certificates found; HTTPS blob URLs will fail unless the blobstore settings give tls.cert.ca"
        );
    } else {
        tracing::debug!(
            added,
            ignored,
            errors = loaded.errors.len(),
            "loaded system CA certificates"
        );
    }
    roots
}

fn http_error(method: &'static str, exchange: &Exchange<'_>, source: BoxError) -> Error {
    Error::Http {
        method,
        url: display_url(exchange.url),
        source,
    }
}
