//! The HTTPS transport of `bosh create-env` (`mbus/https_handler.go`, `mbus/https_dispatcher.go`): a
//! server on the host and port of the `https://user:password@host:port` mbus URL, with the settings'
//! `env.bosh.mbus.cert` certificate, TLS 1.2 or later and ALPN `http/1.1`, HTTP/1.1 only.
//!
//! Every request must carry `Authorization: Basic base64(user:password)` of the URL's (percent-decoded)
//! user info, compared in constant time; anything else gets `401` with `WWW-Authenticate: Basic
//! realm=""`. Then:
//!
//! * `POST /agent`: the body is a request envelope, handed to the [`Dispatcher`]; the answer is the
//!   response envelope with no size limit, `200`. A body that cannot be read gets `400`. A body that is
//!   not a request gets `500`, as in Go, but with the dispatcher's exception as its body where Go sends
//!   nothing. Any other method on `/agent` gets `404`.
//! * `PUT /blobs/<prefix…>/<id>`: the body is stored as `<blobs_dir>/<id>`, mode 0640, streamed to a
//!   temporary file that is renamed into place → `201`; a failure → `500` with the error text. The
//!   prefix segments (bosh-cli sends the first byte of SHA-1(id) in hex) are ignored.
//! * `GET /blobs/<prefix…>/<id>`: the blob, streamed → `200`; `404` if there is none; `500` otherwise.
//! * anything else: `404`.
//!
//! Better than Go: a blob id that is not one plain file name (`..`, empty) is refused with `400`
//! instead of being joined to the path.
//!
//! Each connection is served by a task of its own, owned by a `JoinSet` (at most [`MAX_CONNECTIONS`]
//! at once); the TLS handshake and each request's headers have a time limit; dropping the serving
//! future closes the listener and every connection. Nothing is ever sent unasked: no heartbeats or
//! alerts in create-env mode, as in Go.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::bus::Error;
use crate::dispatch::Dispatcher;
use crate::protocol::Request;

/// How many connections are served at once; the server accepts no more until one closes.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a request's headers; an idle keep-alive connection is closed after
/// this long too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The blob files' permission bits (`agent/blobstore/blob_manager.go`).
pub const BLOB_MODE: u32 = 0o640;

/// The blob directory's permission bits when the server creates it.
const BLOBS_DIR_MODE: u32 = 0o750;

/// How long to wait after a failed `accept` (out of file descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The size of the chunks a blob is streamed in.
const CHUNK_SIZE: usize = 64 * 1024;

/// The realm Go's dispatcher announces.
const WWW_AUTHENTICATE: &str = "Basic realm=\"\"";

/// A bound, not yet serving, HTTPS bus.
pub struct HttpsBus {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    authorization: Vec<u8>,
    blobs_dir: PathBuf,
}

/// Binds the mbus URL's address and serves `dispatcher` and the blobs in `blobs_dir` until the future
/// is dropped; fails only if the server cannot start.
pub async fn serve(
    url: &str,
    certificate_pem: &str,
    key_pem: &str,
    blobs_dir: PathBuf,
    dispatcher: Dispatcher,
) -> Result<(), Error> {
    let bus = HttpsBus::bind(url, certificate_pem, key_pem, blobs_dir).await?;
    bus.serve(dispatcher).await;
    Ok(())
}

impl std::fmt::Debug for HttpsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The expected credentials stay out of every log.
        f.debug_struct("HttpsBus")
            .field("listener", &self.listener)
            .field("blobs_dir", &self.blobs_dir)
            .finish_non_exhaustive()
    }
}

impl HttpsBus {
    /// Listens on the host and port of `url` (`https://user:password@host:port`) with the server
    /// certificate and key (PEM) of the settings' `env.bosh.mbus.cert`. Nothing is served before
    /// [`HttpsBus::serve`]; connections wait in the listen queue.
    pub async fn bind(
        url: &str,
        certificate_pem: &str,
        key_pem: &str,
        blobs_dir: PathBuf,
    ) -> Result<HttpsBus, Error> {
        let endpoint = Endpoint::parse(url)?;
        let acceptor = TlsAcceptor::from(Arc::new(server_config(certificate_pem, key_pem)?));
        let listener = TcpListener::bind(&endpoint.address)
            .await
            .map_err(|source| Error::Listen {
                address: endpoint.address.clone(),
                source,
            })?;
        Ok(HttpsBus {
            listener,
            acceptor,
            authorization: endpoint.authorization,
            blobs_dir,
        })
    }

    /// The address the server listens on (with the port the system chose if the URL's was 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the future is dropped, which closes the listener and every connection.
    pub async fn serve(self, dispatcher: Dispatcher) {
        match self.local_addr() {
            Ok(address) => tracing::info!(%address, "serving the https mbus"),
            Err(err) => tracing::info!(error = %err, "serving the https mbus"),
        }
        let handler = Arc::new(Handler {
            dispatcher,
            authorization: self.authorization,
            blobs_dir: self.blobs_dir,
            unauthorized: Throttle::default(),
        });
        let failed_handshakes = Arc::new(Throttle::default());
        let failed_accepts = Throttle::default();
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            if connections.len() >= MAX_CONNECTIONS {
                connections.join_next().await;
            }
            let (tcp, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    if let Some(count) = failed_accepts.count() {
                        tracing::warn!(count, error = %err, "accepting an https connection");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            connections.spawn(connection(
                self.acceptor.clone(),
                tcp,
                peer,
                handler.clone(),
                failed_handshakes.clone(),
            ));
        }
    }
}

/// What the server needs from the mbus URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    /// `host:port`, IPv6 hosts in brackets.
    address: String,
    /// The `Authorization` header value every request must carry.
    authorization: Vec<u8>,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, Error> {
        let url_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Url {
            url: settings::redact::redact_url(url),
            source,
        };
        let parsed = url::Url::parse(url).map_err(|err| url_error(Box::new(err)))?;
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| url_error("the URL names no host".into()))?;
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| url_error("the URL names no port".into()))?;
        Ok(Endpoint {
            address: format!("{host}:{port}"),
            authorization: basic_authorization(parsed.username(), parsed.password().unwrap_or("")),
        })
    }
}

/// `Basic base64(user:password)` from the percent-encoded user info of a URL, as Go's dispatcher
/// builds it from `url.User` (an absent user info gives `Basic base64(":")`).
fn basic_authorization(username: &str, password: &str) -> Vec<u8> {
    let mut credentials: Vec<u8> = percent_decode_str(username).collect();
    credentials.push(b':');
    credentials.extend(percent_decode_str(password));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    format!("Basic {encoded}").into_bytes()
}

/// The server side of TLS: the settings' certificate and key, TLS 1.2 and 1.3, ALPN `http/1.1`.
fn server_config(
    certificate_pem: &str,
    key_pem: &str,
) -> Result<rustls::ServerConfig, crate::tls::Error> {
    if certificate_pem.trim().is_empty() || key_pem.trim().is_empty() {
        return Err(crate::tls::Error::NoIdentity);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            crate::tls::certificates(certificate_pem, "certificate")?,
            crate::tls::private_key(key_pem)?,
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Where a request goes, from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// `/agent`.
    Agent,
    /// `/blobs/…/<id>`, with the (percent-decoded) last segment; not yet checked.
    Blob(String),
    /// Anything else.
    NotFound,
}

impl Route {
    fn of(path: &str) -> Route {
        let path = percent_decode_str(path).decode_utf8_lossy();
        if path == "/agent" {
            return Route::Agent;
        }
        match path.strip_prefix("/blobs/") {
            // Go takes `path.Split(r.URL.Path)`: everything after the last slash.
            Some(rest) => Route::Blob(rest.rsplit('/').next().unwrap_or_default().to_owned()),
            None => Route::NotFound,
        }
    }
}

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// The request handler every connection shares.
struct Handler {
    dispatcher: Dispatcher,
    authorization: Vec<u8>,
    blobs_dir: PathBuf,
    unauthorized: Throttle,
}

/// Why storing or reading a blob failed; its text is the body of a `500` or `400`.
#[derive(Debug, thiserror::Error)]
enum BlobError {
    #[error(transparent)]
    Id(#[from] platform::name::Error),
    #[error("creating {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("receiving the blob")]
    Receive(#[source] hyper::Error),
    #[error("renaming {} to {}", .from.display(), .to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Counts events that outside input can cause and says when to log one: the first, then every
/// thousandth.
#[derive(Debug, Default)]
struct Throttle(AtomicU64);

impl Throttle {
    /// `Some(total so far)` when this event should be logged.
    fn count(&self) -> Option<u64> {
        let count = self.0.fetch_add(1, Ordering::Relaxed);
        (count % 1000 == 0).then_some(count + 1)
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    handler: Arc<Handler>,
    failed_handshakes: Arc<Throttle>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            if let Some(count) = failed_handshakes.count() {
                tracing::warn!(%peer, count, error = %err, "https mbus TLS handshake failed");
            }
            return;
        }
        Err(_) => {
            if let Some(count) = failed_handshakes.count() {
                tracing::warn!(%peer, count, "https mbus TLS handshake timed out");
            }
            return;
        }
    };
    let service = hyper::service::service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.handle(request, peer).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await;
    if let Err(err) = served {
        tracing::debug!(%peer, error = %err, "https mbus connection ended");
    }
}

impl Handler {
    async fn handle(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        tracing::debug!(%peer, %method, path, "https mbus request");
        if !self.is_authorized(request.headers()) {
            if let Some(count) = self.unauthorized.count() {
                tracing::warn!(%peer, %method, path, count, "unauthorized https mbus request");
            }
            let mut response = status(StatusCode::UNAUTHORIZED);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
            return response;
        }
        let response = match (Route::of(&path), method) {
            (Route::Agent, Method::POST) => self.agent(request.into_body()).await,
            (Route::Blob(id), Method::PUT) => self.put_blob(&id, request.into_body()).await,
            (Route::Blob(id), Method::GET) => self.get_blob(&id).await,
            _ => status(StatusCode::NOT_FOUND),
        };
        tracing::debug!(%peer, path, status = response.status().as_u16(), "https mbus response");
        response
    }

    fn is_authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        bool::from(given.ct_eq(&self.authorization))
    }

    async fn agent(&self, body: Incoming) -> hyper::Response<Body> {
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                tracing::warn!(error = %err, "reading an https mbus request");
                return status(StatusCode::BAD_REQUEST);
            }
        };
        // Go answers 500 when the body does not decode as a request; the dispatcher still words the
        // exception (and counts the malformed request), which becomes the body.
        let is_request = Request::parse(&bytes).is_ok();
        let accepted = self.dispatcher.accept(&bytes).await;
        let response = accepted.response.await;
        let mut http = hyper::Response::new(full(response.to_json()));
        if !is_request {
            *http.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        http.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        http
    }

    async fn put_blob(&self, id: &str, body: Incoming) -> hyper::Response<Body> {
        match store_blob(&self.blobs_dir, id, body).await {
            Ok(()) => status(StatusCode::CREATED),
            Err(err) => {
                let text = settings::source::error_chain(&err);
                let code = match err {
                    BlobError::Id(_) => StatusCode::BAD_REQUEST,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                tracing::error!(blob_id = id, error = %text, "storing a blob");
                with_text(code, text)
            }
        }
    }

    async fn get_blob(&self, id: &str) -> hyper::Response<Body> {
        match open_blob(&self.blobs_dir, id).await {
            Ok((file, length)) => {
                let mut response = hyper::Response::new(file_body(file));
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                response
            }
            Err(BlobError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(blob_id = id, "no such blob");
                status(StatusCode::NOT_FOUND)
            }
            Err(err) => {
                let text = settings::source::error_chain(&err);
                let code = match err {
                    BlobError::Id(_) => StatusCode::BAD_REQUEST,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                tracing::error!(blob_id = id, error = %text, "reading a blob");
                with_text(code, text)
            }
        }
    }
}

/// Streams `body` to a temporary file in `dir`, then renames it to `dir/<id>`: a reader never sees a
/// half-written blob, and a failed upload leaves the previous one.
async fn store_blob(dir: &Path, id: &str, body: Incoming) -> Result<(), BlobError> {
    let path = platform::name::join(dir, "blob id", id)?;
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(BLOBS_DIR_MODE)
        .create(dir)
        .await
        .map_err(|source| BlobError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    // A dot name no blob of bosh-cli's has (they are UUIDs), unique per upload.
    let temp = dir.join(format!(".upload-{}", uuid::Uuid::new_v4()));
    let written = write_file(&temp, body).await;
    let stored = match written {
        Ok(()) => tokio::fs::rename(&temp, &path)
            .await
            .map_err(|source| BlobError::Rename {
                from: temp.clone(),
                to: path.clone(),
                source,
            }),
        Err(err) => Err(err),
    };
    if stored.is_err() {
        // Best effort: the upload failed already, and a leftover temp file is harmless.
        let _ = tokio::fs::remove_file(&temp).await;
    }
    stored
}

async fn write_file(path: &Path, mut body: Incoming) -> Result<(), BlobError> {
    let write_error = |source| BlobError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(BLOB_MODE)
        .open(path)
        .await
        .map_err(write_error)?;
    // The umask may have taken bits away from the mode above; the blob's mode is the contract.
    file.set_permissions(std::fs::Permissions::from_mode(BLOB_MODE))
        .await
        .map_err(write_error)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BlobError::Receive)?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await.map_err(write_error)?;
        }
    }
    file.flush().await.map_err(write_error)?;
    file.sync_all().await.map_err(write_error)
}

/// Opens `dir/<id>` and tells its length.
async fn open_blob(dir: &Path, id: &str) -> Result<(tokio::fs::File, u64), BlobError> {
    let path = platform::name::join(dir, "blob id", id)?;
    let read_error = |source| BlobError::Read {
        path: path.clone(),
        source,
    };
    let file = tokio::fs::File::open(&path).await.map_err(read_error)?;
    let metadata = file.metadata().await.map_err(read_error)?;
    if !metadata.is_file() {
        return Err(read_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((file, metadata.len()))
}

/// A body that streams `file` in chunks.
fn file_body(file: tokio::fs::File) -> Body {
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0; CHUNK_SIZE];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Frame::data(Bytes::from(buffer))), Some(file)))
            }
            // The status is sent already; ending the body with an error aborts the connection, so
            // the client sees a short read instead of a truncated blob that looks whole.
            Err(err) => Some((Err(err), None)),
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn status(code: StatusCode) -> hyper::Response<Body> {
    let mut response =
        hyper::Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = code;
    response
}

fn with_text(code: StatusCode, text: String) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(full(text.into_bytes()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_comes_from_the_mbus_url() {
        let endpoint = Endpoint::parse("https://mbus-user:mbus-pass@0.0.0.0:6868").unwrap();
        assert_eq!(endpoint.address, "0.0.0.0:6868");
        assert_eq!(
            endpoint.authorization,
            b"Basic bWJ1cy11c2VyOm1idXMtcGFzcw==".to_vec()
        );
        assert_eq!(
            Endpoint::parse("https://u:p@[::1]:6868").unwrap().address,
            "[::1]:6868"
        );
        assert_eq!(
            Endpoint::parse("https://u:p@agent.example")
                .unwrap()
                .address,
            "agent.example:443"
        );
    }

    #[test]
    fn credentials_are_percent_decoded_and_may_be_absent() {
        // `p@ss:w/rd` percent-encoded in the URL; the header carries it decoded.
        let endpoint = Endpoint::parse("https://mbus:p%40ss%3Aw%2Frd@127.0.0.1:6868").unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("mbus:p@ss:w/rd");
        assert_eq!(
            endpoint.authorization,
            format!("Basic {expected}").into_bytes()
        );
        assert_eq!(
            Endpoint::parse("https://127.0.0.1:6868")
                .unwrap()
                .authorization,
            b"Basic Og==".to_vec()
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let err = Endpoint::parse("https://mbus:secret@:6868").unwrap_err();
        let text = settings::source::error_chain(&err);
        assert!(!text.contains("secret"), "{text}");
        assert!(text.starts_with("invalid mbus URL"), "{text}");
    }

    #[test]
    fn routes_follow_the_go_mux() {
        let cases: &[(&str, Route)] = &[
            ("/agent", Route::Agent),
            ("/agent/", Route::NotFound),
            ("/agents", Route::NotFound),
            ("/", Route::NotFound),
            ("/blobs", Route::NotFound),
            ("/blobs/blob-1", Route::Blob("blob-1".into())),
            ("/blobs/ab/blob-1", Route::Blob("blob-1".into())),
            ("/blobs/a/b/c/blob-1", Route::Blob("blob-1".into())),
            ("/blobs/", Route::Blob(String::new())),
            ("/blobs/ab/", Route::Blob(String::new())),
            ("/blobs/ab/..", Route::Blob("..".into())),
            // Go decodes the path before splitting it.
            ("/blobs/ab/x%2F..", Route::Blob("..".into())),
            ("/blobs/ab/blob%201", Route::Blob("blob 1".into())),
        ];
        for (path, expected) in cases {
            assert_eq!(&Route::of(path), expected, "{path}");
        }
    }

    #[test]
    fn an_empty_certificate_is_refused_clearly() {
        assert!(matches!(
            server_config("", "key"),
            Err(crate::tls::Error::NoIdentity)
        ));
    }

    #[test]
    fn the_throttle_logs_the_first_and_every_thousandth() {
        let throttle = Throttle::default();
        let logged: Vec<u64> = (0..2500).filter_map(|_| throttle.count()).collect();
        assert_eq!(logged, vec![1, 1001, 2001]);
    }
}
