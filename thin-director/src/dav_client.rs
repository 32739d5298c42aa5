//! The director's client of an external DAV blobstore (the director config's `blobstore`): the
//! wire of davcli and of this crate's own [`crate::blobstore`] server. A blob is at
//! `<endpoint>/<first byte of SHA-1(id) as two hex digits>/<id>`; `PUT` must answer 201 or 204
//! (200 is taken too), `GET`/`HEAD` 200 or 404, `DELETE` 204, 200 or 404. Requests carry basic
//! auth; the server's certificate is checked against the configured CA alone, or the system's
//! trust store when none is given.
//!
//! Bodies stream: an upload is read from its file as hyper sends it (hashed on the way), a
//! download goes chunk by chunk into its destination file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::blobstore;
use crate::director_config::ExternalBlobstore;

type Body = BoxBody<Bytes, std::io::Error>;

/// Why a request to the blobstore failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trust store could not be built.
    #[error("the external blobstore's TLS configuration: {0}")]
    Tls(String),
    /// The request could not be sent or its answer read.
    #[error("{method} {url}")]
    Request {
        /// The method.
        method: Method,
        /// The blob's URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered with an unexpected status.
    #[error("{method} {url} answered {status}")]
    Status {
        /// The method.
        method: Method,
        /// The blob's URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// A local file could not be read or written.
    #[error("{}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A client of one DAV endpoint with one user.
pub struct DavClient {
    endpoint: String,
    authorization: HeaderValue,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
}

impl std::fmt::Debug for DavClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DavClient {
    /// A client of `config`'s endpoint (reads the system's trust store when it names no CA).
    pub fn new(config: &ExternalBlobstore) -> Result<DavClient, Error> {
        let tls = client_config(config.ca.as_deref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", config.user, config.password));
        let mut authorization = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|err| Error::Tls(err.to_string()))?;
        authorization.set_sensitive(true);
        Ok(DavClient {
            endpoint: config.endpoint.trim_end_matches('/').to_owned(),
            authorization,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// The URL of blob `id`.
    pub fn url(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.endpoint, blobstore::prefix(id))
    }

    /// Uploads `file` as blob `id`; its SHA-1 (hex).
    pub async fn put_file(&self, id: &str, file: &Path) -> Result<String, Error> {
        let io = |source| Error::Io {
            path: file.to_owned(),
            source,
        };
        let opened = tokio::fs::File::open(file).await.map_err(io)?;
        let len = opened.metadata().await.map_err(io)?.len();
        let hasher = Arc::new(Mutex::new(Sha1::new()));
        let hashing = Arc::clone(&hasher);
        let chunks = futures_util::stream::try_unfold(opened, move |mut opened| {
            let hashing = Arc::clone(&hashing);
            async move {
                let mut buffer = vec![0; 64 * 1024];
                let read = opened.read(&mut buffer).await?;
                if read == 0 {
                    return Ok(None);
                }
                buffer.truncate(read);
                hashing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .update(&buffer);
                Ok(Some((Frame::data(Bytes::from(buffer)), opened)))
            }
        });
        self.put(id, StreamBody::new(chunks).boxed(), len).await?;
        let digest = hasher.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(blobstore::hex(&digest.finalize()))
    }

    /// Uploads `bytes` as blob `id`; their SHA-1 (hex).
    pub async fn put_bytes(&self, id: &str, bytes: &[u8]) -> Result<String, Error> {
        let len = bytes.len() as u64;
        let body = Full::new(Bytes::copy_from_slice(bytes))
            .map_err(|never| match never {})
            .boxed();
        self.put(id, body, len).await?;
        Ok(blobstore::hex(&Sha1::digest(bytes)))
    }

    async fn put(&self, id: &str, body: Body, len: u64) -> Result<(), Error> {
        let response = self.send(Method::PUT, id, body, Some(len)).await?;
        match response.status() {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(()),
            status => Err(self.status(Method::PUT, id, status)),
        }
    }

    /// Whether blob `id` is there (`HEAD`).
    pub async fn exists(&self, id: &str) -> Result<bool, Error> {
        let response = self.send(Method::HEAD, id, empty(), None).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(self.status(Method::HEAD, id, status)),
        }
    }

    /// Downloads blob `id` into `destination` (created or truncated); `false` when there is no
    /// such blob (and nothing was written).
    pub async fn get(&self, id: &str, destination: &Path) -> Result<bool, Error> {
        let response = self.send(Method::GET, id, empty(), None).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(false),
            status => return Err(self.status(Method::GET, id, status)),
        }
        let io = |source| Error::Io {
            path: destination.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::create(destination).await.map_err(io)?;
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| self.request_error(Method::GET, id, source))?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).await.map_err(io)?;
            }
        }
        file.sync_all().await.map_err(io)?;
        Ok(true)
    }

    /// Deletes blob `id`; whether it was there.
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        let response = self.send(Method::DELETE, id, empty(), None).await?;
        match response.status() {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(self.status(Method::DELETE, id, status)),
        }
    }

    async fn send(
        &self,
        method: Method,
        id: &str,
        body: Body,
        len: Option<u64>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Error> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(self.url(id))
            .body(body)
            .map_err(|source| self.request_error(method.clone(), id, source))?;
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        if let Some(len) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        self.client
            .request(request)
            .await
            .map_err(|source| self.request_error(method, id, source))
    }

    fn request_error(
        &self,
        method: Method,
        id: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Request {
            method,
            url: self.url(id),
            source: Box::new(source),
        }
    }

    fn status(&self, method: Method, id: &str, status: StatusCode) -> Error {
        Error::Status {
            method,
            url: self.url(id),
            status,
        }
    }
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Trusts `ca_pem` alone, or the system's store without one.
fn client_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|err| Error::Tls(err.to_string()))?;
                roots.add(cert).map_err(|err| Error::Tls(err.to_string()))?;
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(loaded.certs);
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| Error::Tls(err.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobstore::{BlobStore, Server};
    use crate::pki::Ca;

    async fn serve(dir: &Path) -> (Server, BlobStore, String) {
        let ca = Ca::load_or_create(&dir.join("ca")).unwrap();
        let store = BlobStore::open(&dir.join("blobs")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = ca.server(&["127.0.0.1".parse().unwrap()]).unwrap();
        let server = Server::start(store.clone(), listener, &tls).unwrap();
        server.users().add("director", "secret");
        (server, store, ca.certificate().to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blobs_go_to_and_come_back_from_a_dav_server() {
        let dir = tempfile::tempdir().unwrap();
        let (server, store, ca) = serve(dir.path()).await;
        let config = ExternalBlobstore {
            endpoint: server.endpoint(),
            user: "director".into(),
            password: "secret".into(),
            ca: Some(ca.clone()),
        };
        let client = DavClient::new(&config).unwrap();
        let source = dir.path().join("package.tgz");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();

        let sha1 = client.put_file("blob-1", &source).await.unwrap();
        assert_eq!(sha1, blobstore::hex(&Sha1::digest(&bytes)));
        let stored = store.path("blob-1").unwrap().unwrap();
        assert_eq!(std::fs::read(stored).unwrap(), bytes);
        assert_eq!(
            client.put_bytes("blob-2", b"templates").await.unwrap(),
            blobstore::hex(&Sha1::digest(b"templates"))
        );
        assert!(client.exists("blob-2").await.unwrap());
        assert!(!client.exists("blob-3").await.unwrap());

        let copy = dir.path().join("copy");
        assert!(client.get("blob-1", &copy).await.unwrap());
        assert_eq!(std::fs::read(&copy).unwrap(), bytes);
        assert!(
            !client
                .get("blob-3", &dir.path().join("none"))
                .await
                .unwrap()
        );
        assert!(!dir.path().join("none").exists());

        assert!(client.delete("blob-1").await.unwrap());
        assert!(!client.delete("blob-1").await.unwrap());
        assert_eq!(store.path("blob-1").unwrap(), None);

        // Wrong credentials are an error naming the method and the URL (never the password).
        let wrong = DavClient::new(&ExternalBlobstore {
            password: "wrong".into(),
            ..config
        })
        .unwrap();
        let err = wrong.put_bytes("blob-4", b"x").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "PUT {}/{}/blob-4 answered 401 Unauthorized",
                server.endpoint(),
                blobstore::prefix("blob-4")
            )
        );
        // A server whose certificate the given CA did not sign is refused.
        let other_ca = Ca::load_or_create(&dir.path().join("other-ca")).unwrap();
        let untrusted = DavClient::new(&ExternalBlobstore {
            endpoint: server.endpoint(),
            user: "director".into(),
            password: "secret".into(),
            ca: Some(other_ca.certificate().to_owned()),
        })
        .unwrap();
        let err = untrusted.exists("blob-2").await.unwrap_err();
        assert!(matches!(err, Error::Request { .. }), "{err}");
    }
}
