//! The director's blobstore: the packages, compiled packages and rendered templates agents fetch,
//! kept under the state directory and served over HTTPS in the WebDAV shape of the director's nginx
//! blobstore, which the agents' built-in `dav` client speaks (`reference/bosh-agent.md`, blobstores).
//!
//! A blob lives in `<dir>/<id>`; over HTTPS it is `/<two hex digits of SHA-1(id)>/<id>`. `GET` and
//! `HEAD` answer 200 or 404, `PUT` stores the body (201), `DELETE` removes (204 or 404). Every
//! request needs basic auth from one of the users the director added (one per deployment);
//! credentials are compared in constant time. Bodies stream to and from disk, never whole in
//! memory; a `PUT` lands in a temporary file renamed into place once complete, so a reader never
//! sees half a blob.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha1::{Digest as _, Sha1};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::pki::CertKey;

/// Why a blob could not be stored or served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The id could be read as a path.
    #[error("blob id {0:?} is not a plain name")]
    InvalidId(String),
    /// A file of the store could not be read or written.
    #[error("{} in the blobstore", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTPS listener could not be set up.
    #[error("serving the blobstore")]
    Serve(#[source] std::io::Error),
    /// The server certificate could not be used.
    #[error("the blobstore's TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// The blobs on disk.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// The store in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<BlobStore, Error> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(BlobStore {
            dir: dir.to_owned(),
        })
    }

    /// Copies `file` in as a new blob; its id and SHA-1 (hex).
    pub fn put_file(&self, file: &Path) -> Result<(String, String), Error> {
        let input = std::fs::File::open(file).map_err(io(file))?;
        self.put_reader(input, file)
    }

    /// Stores `bytes` as a new blob (a rendered templates archive); its id and SHA-1 (hex).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(String, String), Error> {
        self.put_reader(bytes, &self.dir)
    }

    /// Copies what `input` reads into a new blob through a temporary file renamed into place;
    /// errors name `what` (the source).
    fn put_reader(
        &self,
        mut input: impl std::io::Read,
        what: &Path,
    ) -> Result<(String, String), Error> {
        let id = uuid::Uuid::new_v4().to_string();
        let tmp = self.dir.join(format!(".{id}.part"));
        let sha1 = (|| {
            let mut output = std::fs::File::create(&tmp)?;
            let mut hasher = HashingWriter {
                inner: &mut output,
                hasher: Sha1::new(),
            };
            std::io::copy(&mut input, &mut hasher)?;
            let sha1 = hex(&hasher.hasher.finalize());
            output.sync_all()?;
            Ok(sha1)
        })()
        .map_err(|source: std::io::Error| {
            let _ = std::fs::remove_file(&tmp);
            Error::Io {
                path: what.to_owned(),
                source,
            }
        })?;
        let path = self.dir.join(&id);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok((id, sha1))
    }

    /// The file of blob `id`, when it exists.
    pub fn path(&self, id: &str) -> Result<Option<PathBuf>, Error> {
        let path = self.dir.join(checked(id)?);
        Ok(path.is_file().then_some(path))
    }

    /// Removes blob `id`; whether it was there.
    pub fn delete(&self, id: &str) -> Result<bool, Error> {
        let path = self.dir.join(checked(id)?);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Io { path, source }),
        }
    }
}

/// A writer that hashes what passes through it.
struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hasher: Sha1,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `id` if it is a plain file name the store may use.
fn checked(id: &str) -> Result<&str, Error> {
    let plain = !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if plain {
        Ok(id)
    } else {
        Err(Error::InvalidId(id.to_owned()))
    }
}

/// The DAV path prefix of `id`: the first byte of SHA-1(id), two hex digits (davcli's rule).
pub fn prefix(id: &str) -> String {
    hex(&Sha1::digest(id.as_bytes())[..1])
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { path, source }
}

/// The users allowed in: user name to password.
#[derive(Debug, Default)]
pub struct Users {
    users: RwLock<HashMap<String, String>>,
}

impl Users {
    /// Lets `user` in with `password` (replacing an earlier password).
    pub fn add(&self, user: &str, password: &str) {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_owned(), password.to_owned());
    }

    /// Lets `user` in no more.
    pub fn remove(&self, user: &str) {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
    }

    /// Whether an `Authorization` header value names a user with the right password.
    fn admits(&self, authorization: Option<&[u8]>) -> bool {
        use subtle::ConstantTimeEq as _;
        let Some(encoded) = authorization.and_then(|value| value.strip_prefix(b"Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return false;
        };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        let Some(expected) = std::str::from_utf8(user).ok().and_then(|u| users.get(u)) else {
            return false;
        };
        expected.as_bytes().ct_eq(password).into()
    }
}

/// The HTTPS server in front of a [`BlobStore`]; stopped when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    users: Arc<Users>,
    accept: JoinHandle<()>,
}

impl Server {
    /// Serves `store` on `listener` with the certificate `tls` (from the director's CA).
    pub fn start(store: BlobStore, listener: TcpListener, tls: &CertKey) -> Result<Server, Error> {
        let addr = listener.local_addr().map_err(Error::Serve)?;
        let acceptor = TlsAcceptor::from(Arc::new(server_config(tls)?));
        let users = Arc::new(Users::default());
        let state = Arc::new(State {
            store,
            users: users.clone(),
        });
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        let state = state.clone();
                        connections.spawn(async move {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let service = service_fn(move |request| {
                                let state = state.clone();
                                async move { Ok::<_, Infallible>(state.handle(request).await) }
                            });
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Server {
            addr,
            users,
            accept,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<addr>`, the `endpoint` agents get.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The users allowed in.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// The `blobstore` an agent's settings name for this server: `dav` with the endpoint, `user`'s
    /// credentials and the CA to trust.
    pub fn agent_settings(&self, user: &str, password: &str, ca: &str) -> serde_json::Value {
        serde_json::json!({
            "provider": "dav",
            "options": {
                "endpoint": self.endpoint(),
                "user": user,
                "password": password,
                "tls": {"cert": {"ca": ca}},
            }
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn server_config(tls: &CertKey) -> Result<rustls::ServerConfig, Error> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(tls.certificate.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Error::Tls(rustls::Error::General(err.to_string())))?;
    let key = PrivateKeyDer::from_pem_slice(tls.private_key.as_bytes())
        .map_err(|err| Error::Tls(rustls::Error::General(err.to_string())))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(Error::Tls)
}

type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Debug)]
struct State {
    store: BlobStore,
    users: Arc<Users>,
}

impl State {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let authorization = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(|value| value.as_bytes());
        if !self.users.admits(authorization) {
            let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"blobstore\""),
            );
            return response;
        }
        let Some(id) = blob_id(request.uri().path()) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let id = id.to_owned();
        let result = match *request.method() {
            Method::GET | Method::HEAD => self.get(&id, request.method() == Method::HEAD).await,
            Method::PUT => self.put(&id, request.into_body()).await,
            Method::DELETE => match self.store.delete(&id) {
                Ok(true) => Ok(empty(StatusCode::NO_CONTENT)),
                Ok(false) => Ok(text(StatusCode::NOT_FOUND, "not found\n")),
                Err(err) => Err(err),
            },
            _ => Ok(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")),
        };
        result.unwrap_or_else(|err| {
            tracing::warn!(error = %err, blob_id = %id, "blobstore request failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        })
    }

    async fn get(&self, id: &str, head_only: bool) -> Result<Response<Body>, Error> {
        let Some(path) = self.store.path(id)? else {
            return Ok(text(StatusCode::NOT_FOUND, "not found\n"));
        };
        let file = tokio::fs::File::open(&path).await.map_err(io(&path))?;
        let len = file.metadata().await.map_err(io(&path))?.len();
        let body: Body = if head_only {
            Empty::new().map_err(|never| match never {}).boxed()
        } else {
            let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
                use tokio::io::AsyncReadExt as _;
                let mut buffer = vec![0; 64 * 1024];
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    return Ok(None);
                }
                buffer.truncate(read);
                Ok(Some((Frame::data(Bytes::from(buffer)), file)))
            });
            StreamBody::new(chunks).boxed()
        };
        let mut response = Response::new(body);
        response.headers_mut().insert(
            hyper::header::CONTENT_LENGTH,
            hyper::header::HeaderValue::from(len),
        );
        Ok(response)
    }

    async fn put(&self, id: &str, mut body: Incoming) -> Result<Response<Body>, Error> {
        let id = checked(id)?;
        let path = self.store.dir.join(id);
        let tmp = self
            .store
            .dir
            .join(format!(".{id}.{}.part", uuid::Uuid::new_v4()));
        let written = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(std::io::Error::other)?;
                if let Some(data) = frame.data_ref() {
                    file.write_all(data).await?;
                }
            }
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if let Err(source) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::Io { path, source });
        }
        Ok(empty(StatusCode::CREATED))
    }
}

/// The blob id of a DAV path `/<prefix>/<id>` whose prefix is right for the id.
fn blob_id(path: &str) -> Option<&str> {
    let (prefix_part, id) = path.strip_prefix('/')?.split_once('/')?;
    (checked(id).is_ok() && prefix_part == prefix(id)).then_some(id)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use hyper::header::{AUTHORIZATION, HeaderValue};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use super::*;
    use crate::pki::Ca;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: BlobStore,
        server: Server,
        client: Client<
            hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
            Full<Bytes>,
        >,
    }

    impl Fixture {
        async fn start() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let ca = Ca::load_or_create(&dir.path().join("ca")).unwrap();
            let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tls = ca.server(&["127.0.0.1".parse().unwrap()]).unwrap();
            let server = Server::start(store.clone(), listener, &tls).unwrap();
            server.users().add("agent", "secret");
            use rustls::pki_types::pem::PemObject as _;
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(
                    rustls::pki_types::CertificateDer::from_pem_slice(ca.certificate().as_bytes())
                        .unwrap(),
                )
                .unwrap();
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only()
                .enable_http1()
                .build();
            let client = Client::builder(TokioExecutor::new()).build(connector);
            Fixture {
                _dir: dir,
                store,
                server,
                client,
            }
        }

        async fn send(
            &self,
            method: Method,
            path: &str,
            auth: Option<(&str, &str)>,
            body: &[u8],
        ) -> (StatusCode, hyper::HeaderMap, Vec<u8>) {
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.server.endpoint()))
                .body(Full::new(Bytes::copy_from_slice(body)))
                .unwrap();
            if let Some((user, password)) = auth {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                request.headers_mut().insert(
                    AUTHORIZATION,
                    HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
                );
            }
            let response = self.client.request(request).await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec();
            (status, headers, body)
        }
    }

    fn path_of(id: &str) -> String {
        format!("/{}/{id}", prefix(id))
    }

    const AGENT: Option<(&str, &str)> = Some(("agent", "secret"));

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blobs_put_by_the_director_are_served_to_agents_and_agents_can_upload() {
        let fixture = Fixture::start().await;
        let source = fixture._dir.path().join("package.tgz");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let (id, sha1) = fixture.store.put_file(&source).unwrap();
        assert_eq!(sha1, hex(&Sha1::digest(&bytes)));

        let (status, _, body) = fixture.send(Method::GET, &path_of(&id), AGENT, b"").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, bytes);
        let (status, headers, body) = fixture.send(Method::HEAD, &path_of(&id), AGENT, b"").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[hyper::header::CONTENT_LENGTH], "200000");
        assert!(body.is_empty());

        // What an agent uploads (a compiled package, logs) is stored whole.
        let (status, _, _) = fixture
            .send(
                Method::PUT,
                &path_of("compiled-1"),
                AGENT,
                b"compiled bytes",
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let stored = fixture.store.path("compiled-1").unwrap().unwrap();
        assert_eq!(std::fs::read(stored).unwrap(), b"compiled bytes");

        let (status, _, _) = fixture
            .send(Method::DELETE, &path_of(&id), AGENT, b"")
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, _) = fixture.send(Method::GET, &path_of(&id), AGENT, b"").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let leftovers: Vec<_> = std::fs::read_dir(fixture._dir.path().join("blobs"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(leftovers, ["compiled-1"], "no temporary files left");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strangers_wrong_paths_and_odd_ids_get_nothing() {
        let fixture = Fixture::start().await;
        let (status, _, _) = fixture
            .send(Method::PUT, &path_of("blob-1"), AGENT, b"data")
            .await;
        assert_eq!(status, StatusCode::CREATED);
        for auth in [None, Some(("agent", "wrong")), Some(("nobody", "secret"))] {
            let (status, headers, _) = fixture
                .send(Method::GET, &path_of("blob-1"), auth, b"")
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(
                headers[hyper::header::WWW_AUTHENTICATE],
                "Basic realm=\"blobstore\""
            );
        }
        fixture.server.users().remove("agent");
        let (status, _, _) = fixture
            .send(Method::GET, &path_of("blob-1"), AGENT, b"")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a removed user");
        fixture.server.users().add("agent", "secret");
        let wrong_prefix = if prefix("blob-1") == "00" {
            "/01/blob-1"
        } else {
            "/00/blob-1"
        };
        for path in [
            wrong_prefix,
            "/blob-1",
            "/xx/../blob-1",
            "/2e/..",
            "/c1/.hidden",
        ] {
            let (status, _, _) = fixture.send(Method::GET, path, AGENT, b"").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, _, _) = fixture
            .send(Method::POST, &path_of("blob-1"), AGENT, b"")
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(matches!(
            fixture.store.path("../etc"),
            Err(Error::InvalidId(_))
        ));
    }
}
