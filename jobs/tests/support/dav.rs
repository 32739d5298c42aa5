//! A small real WebDAV-style blob server on `127.0.0.1:0`, plain or HTTPS, standing in for the
//! director's nginx blobstore (and for S3/GCS signed URLs, which take the same GET and PUT).
//!
//! PUT stores the body under the request path (201), GET serves it (200, or 404 `not found`). With
//! credentials, every request must carry them as basic auth (else 401). `fail_next` scripts statuses
//! that the next requests get instead, for retry tests. Every request is recorded (method, path with
//! query, headers, body length). Each connection is served by its own task, owned by the accept
//! task, which dropping the server aborts, so nothing outlives the test.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path and query, as sent.
    pub path_and_query: String,
    /// The headers as received.
    pub headers: HeaderMap,
    /// How many body bytes arrived.
    pub body_len: usize,
}

impl Recorded {
    /// The value of header `name` (case-insensitive), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

#[derive(Debug, Default)]
struct State {
    blobs: HashMap<String, Vec<u8>>,
    requests: Vec<Recorded>,
    failures: VecDeque<u16>,
    authorization: Option<String>,
}

/// The running server; stopped when dropped.
#[derive(Debug)]
pub struct DavServer {
    addr: SocketAddr,
    scheme: &'static str,
    ca_pem: Option<String>,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl DavServer {
    /// A plain HTTP server; with `credentials`, requests need them as basic auth.
    pub async fn start(credentials: Option<(&str, &str)>) -> DavServer {
        DavServer::spawn(credentials, None).await
    }

    /// An HTTPS server whose certificate (SAN IP 127.0.0.1) a fresh CA signed; see
    /// [`DavServer::ca_pem`].
    pub async fn start_tls(credentials: Option<(&str, &str)>) -> DavServer {
        let issuer = {
            let mut params = CertificateParams::default();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
        };
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &issuer).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(certificate.pem().as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let mut server =
            DavServer::spawn(credentials, Some(TlsAcceptor::from(Arc::new(config)))).await;
        server.ca_pem = Some(issuer.pem());
        server
    }

    async fn spawn(credentials: Option<(&str, &str)>, tls: Option<TlsAcceptor>) -> DavServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State {
            authorization: credentials.map(|(user, password)| {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                format!("Basic {encoded}")
            }),
            ..State::default()
        }));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let accept = tokio::spawn(accept_loop(listener, tls, state.clone()));
        DavServer {
            addr,
            scheme,
            ca_pem: None,
            state,
            accept,
        }
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The CA that signed an HTTPS server's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca_pem.as_deref().expect("an HTTPS server")
    }

    /// Stores `bytes` at `path`, as a PUT would.
    pub fn insert(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.lock().blobs.insert(path.to_owned(), bytes.into());
    }

    /// What is stored at `path`.
    pub fn blob(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().blobs.get(path).cloned()
    }

    /// The paths of everything stored.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.lock().blobs.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// The next requests answer these statuses (empty bodies), one each, before normal service.
    pub fn fail_next(&self, statuses: impl IntoIterator<Item = u16>) {
        self.lock().failures.extend(statuses);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for DavServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<Mutex<State>>) {
    // Owned here, so aborting this task aborts every connection task too.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, request).await) }
            });
            // A client that hangs up or fails the handshake is not the server's failure.
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

async fn answer(state: &Mutex<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().as_str().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    // Reading the body sends `100 Continue` to a client that asked for it.
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes().to_vec(),
        Err(_) => return reply(400, "unreadable body"),
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.requests.push(Recorded {
        method: method.clone(),
        path_and_query,
        headers: headers.clone(),
        body_len: body.len(),
    });
    if let Some(status) = state.failures.pop_front() {
        return reply(status, "");
    }
    if let Some(expected) = &state.authorization {
        let given = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return reply(401, "<html>401 Authorization Required</html>");
        }
    }
    match method.as_str() {
        "PUT" => {
            state.blobs.insert(path, body);
            reply(201, "")
        }
        "GET" => match state.blobs.get(&path) {
            Some(blob) => {
                let mut response = Response::new(Full::new(Bytes::from(blob.clone())));
                *response.status_mut() = StatusCode::OK;
                response
            }
            None => reply(404, "not found"),
        },
        _ => reply(405, "method not allowed"),
    }
}

fn reply(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid HTTP status");
    response
}
