//! The HTTPS transport of the agent client, as bosh-cli's `create-env` talks to an agent
//! (`agentclient/http/agent_request.go`, `agent_client_factory.go`; reference/director-cpi.md §5.2):
//! `POST <mbus>/agent` with `{"method", "arguments", "reply_to": <director id>}` and no `protocol`,
//! HTTP basic auth from the mbus URL's user info, and the agent's certificate checked against the
//! mbus CA. Blobs go to `<mbus>/blobs/<prefix>/<id>`, the prefix being the first byte of SHA-1(id) in
//! hex, as bosh-cli's davcli-style blobstore client sends it (the agent ignores it).
//!
//! Each exchange opens a connection of its own (TCP, TLS with ALPN `http/1.1`, one HTTP/1.1 request)
//! and drives it inside the caller's future, so nothing runs in the background and every wait is under
//! the exchange's time limit. The URL's credentials stay out of every error and log: requests carry
//! them in the `Authorization` header only.
//!
//! Built on hyper and tokio-rustls, like every HTTP client and server of the workspace.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use rustls_pki_types::ServerName;
use serde_json::Value;
use sha1::Digest as _;
use tokio_rustls::TlsConnector;

use crate::client::{Error, Transport};
use crate::protocol::Response;

/// How long one blob upload or download may take.
const BLOB_TIMEOUT: Duration = Duration::from_secs(600);

/// The type of agent requests (bosh-cli sets it) and of blobs.
const JSON: &str = "application/json";
const OCTET_STREAM: &str = "application/octet-stream";

/// A bosh-cli-style client of one agent's HTTPS mbus.
#[derive(Clone)]
pub struct HttpsClient {
    connector: TlsConnector,
    /// The mbus URL without user info.
    base: url::Url,
    server_name: ServerName<'static>,
    authorization: HeaderValue,
    director_id: String,
}

/// The body bosh-cli posts: no `protocol` (the agent takes it as 0).
#[derive(serde::Serialize)]
struct AgentRequest<'a> {
    method: &'a str,
    arguments: Vec<Value>,
    reply_to: &'a str,
}

/// Why one exchange failed, before it is named after the method.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("connecting to {0}")]
    Connect(String, #[source] std::io::Error),
    #[error("TLS handshake with {0}")]
    Tls(String, #[source] std::io::Error),
    #[error("HTTP exchange with {0}")]
    Http(String, #[source] hyper::Error),
    #[error("building the request")]
    Request(#[source] hyper::http::Error),
    #[error("timed out")]
    Timeout,
}

/// A status and a body, whatever they are.
type Answer = (StatusCode, Bytes);

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("base", &self.base.as_str())
            .field("director_id", &self.director_id)
            .finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// A client of the agent at `url_with_credentials` (`https://user:password@host:port`), trusting
    /// the CA certificates in `ca_pem`. The `reply_to` of its requests, bosh-cli's director id, is a
    /// fresh UUID.
    pub fn try_new(url_with_credentials: &str, ca_pem: &str) -> Result<HttpsClient, Error> {
        let connect_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Connect {
            url: settings::redact::redact_url(url_with_credentials),
            source,
        };
        let mut base =
            url::Url::parse(url_with_credentials).map_err(|err| connect_error(Box::new(err)))?;
        if base.scheme() != "https" {
            return Err(connect_error("the agent's mbus URL is not https://".into()));
        }
        let server_name = match base.host() {
            Some(url::Host::Ipv4(ip)) => ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
            Some(url::Host::Ipv6(ip)) => ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
            Some(url::Host::Domain(domain)) => ServerName::try_from(domain.to_owned())
                .map_err(|err| connect_error(Box::new(err)))?,
            None => return Err(connect_error("the agent's mbus URL names no host".into())),
        };
        let authorization =
            basic_authorization(base.username(), base.password().unwrap_or_default());
        // Cannot fail: an https URL has a host, so it can have credentials.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let mut tls =
            crate::tls::client_config(ca_pem, None).map_err(|err| connect_error(Box::new(err)))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpsClient {
            connector: TlsConnector::from(Arc::new(tls)),
            base,
            server_name,
            authorization,
            director_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Posts raw bytes to `/agent` and returns the HTTP status and the body, whatever they are
    /// (tests use it to send malformed requests).
    pub async fn send_raw(
        &self,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), Error> {
        let (status, bytes) = self
            .exchange(Method::POST, &["agent"], body, Some(JSON), timeout)
            .await
            .map_err(|err| self.error("(raw)", err, timeout))?;
        Ok((status.as_u16(), bytes.to_vec()))
    }

    /// Stores `bytes` as the agent's blob `id` (`PUT /blobs/<prefix>/<id>`, `201` expected).
    pub async fn put_blob(&self, id: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let path = ["blobs", &blob_prefix(id), id];
        let (status, body) = self
            .exchange(Method::PUT, &path, bytes, Some(OCTET_STREAM), BLOB_TIMEOUT)
            .await
            .map_err(|err| self.error("put_blob", err, BLOB_TIMEOUT))?;
        if status != StatusCode::CREATED {
            return Err(self.status_error("put_blob", status, &body));
        }
        Ok(())
    }

    /// Fetches the agent's blob `id` (`GET /blobs/<prefix>/<id>`, `200` expected).
    pub async fn get_blob(&self, id: &str) -> Result<Vec<u8>, Error> {
        let path = ["blobs", &blob_prefix(id), id];
        let (status, body) = self
            .exchange(Method::GET, &path, Vec::new(), None, BLOB_TIMEOUT)
            .await
            .map_err(|err| self.error("get_blob", err, BLOB_TIMEOUT))?;
        if status != StatusCode::OK {
            return Err(self.status_error("get_blob", status, &body));
        }
        Ok(body.to_vec())
    }

    /// The `reply_to` this client sends, bosh-cli's director id.
    pub fn director_id(&self) -> &str {
        &self.director_id
    }

    /// One request on a connection of its own, within `timeout` from connect to the last byte.
    async fn exchange(
        &self,
        method: Method,
        segments: &[&str],
        body: Vec<u8>,
        content_type: Option<&'static str>,
        timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let url = self.endpoint(segments);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&url[url::Position::BeforePath..])
            .header(
                header::HOST,
                &url[url::Position::BeforeHost..url::Position::AfterPort],
            )
            .header(header::AUTHORIZATION, self.authorization.clone());
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(ExchangeError::Request)?;
        tokio::time::timeout(timeout, self.send_on_new_connection(request))
            .await
            .map_err(|_| ExchangeError::Timeout)?
    }

    async fn send_on_new_connection(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Answer, ExchangeError> {
        let address = self.address();
        let port = self.base.port_or_known_default().unwrap_or(443);
        let tcp = match self.base.host() {
            Some(url::Host::Ipv4(ip)) => tokio::net::TcpStream::connect((ip, port)).await,
            Some(url::Host::Ipv6(ip)) => tokio::net::TcpStream::connect((ip, port)).await,
            Some(url::Host::Domain(domain)) => tokio::net::TcpStream::connect((domain, port)).await,
            None => Err(std::io::ErrorKind::InvalidInput.into()),
        }
        .map_err(|err| ExchangeError::Connect(address.clone(), err))?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|err| ExchangeError::Tls(address.clone(), err))?;
        let http_error = |err| ExchangeError::Http(address.clone(), err);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(http_error)?;
        let answer = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        tokio::pin!(answer, connection);
        // The connection must be driven for the answer to arrive; it ends only when the server
        // closes it, after which the answer holds what was received.
        tokio::select! {
            biased;
            answer = &mut answer => answer.map_err(http_error),
            ended = &mut connection => {
                ended.map_err(http_error)?;
                answer.await.map_err(http_error)
            }
        }
    }

    /// The mbus URL with `segments` appended to its path.
    fn endpoint(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `host:port` of the agent, which errors name: the endpoint is unique to the agent.
    fn address(&self) -> String {
        let port = self.base.port_or_known_default().unwrap_or(443);
        format!("{}:{port}", self.base.host_str().unwrap_or_default())
    }

    fn error(&self, method: &str, err: ExchangeError, timeout: Duration) -> Error {
        match err {
            ExchangeError::Timeout => Error::Timeout {
                method: method.to_owned(),
                agent_id: self.address(),
                timeout,
            },
            other => Error::Send {
                method: method.to_owned(),
                agent_id: self.address(),
                source: Box::new(other),
            },
        }
    }

    fn status_error(&self, method: &str, status: StatusCode, body: &[u8]) -> Error {
        Error::BadResponse {
            method: method.to_owned(),
            agent_id: self.address(),
            message: status_message(status, body),
        }
    }
}

impl Transport for HttpsClient {
    /// Posts the request to `/agent`; `agent_id` only names the agent in errors, since the URL is the
    /// agent's own.
    async fn send(
        &self,
        agent_id: &str,
        method: &str,
        arguments: Vec<Value>,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let request = AgentRequest {
            method,
            arguments,
            reply_to: &self.director_id,
        };
        // Cannot fail: strings and JSON values always serialise.
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let (status, bytes) = self
            .exchange(Method::POST, &["agent"], body, Some(JSON), timeout)
            .await
            .map_err(|err| match err {
                ExchangeError::Timeout => Error::Timeout {
                    method: method.to_owned(),
                    agent_id: agent_id.to_owned(),
                    timeout,
                },
                other => Error::Send {
                    method: method.to_owned(),
                    agent_id: agent_id.to_owned(),
                    source: Box::new(other),
                },
            })?;
        let bad_response = |message: String| Error::BadResponse {
            method: method.to_owned(),
            agent_id: agent_id.to_owned(),
            message,
        };
        // bosh-cli refuses every status but 200 (`agent_request.go`).
        if status != StatusCode::OK {
            return Err(bad_response(status_message(status, &bytes)));
        }
        Response::parse(&bytes).map_err(bad_response)
    }
}

/// `Basic base64(user:password)` from the percent-encoded user info of a URL, as Go's `net/http`
/// sends it for `url.User`.
fn basic_authorization(username: &str, password: &str) -> HeaderValue {
    let mut credentials: Vec<u8> = percent_decode_str(username).collect();
    credentials.push(b':');
    credentials.extend(percent_decode_str(password));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// The first byte of SHA-1(`id`) as two hex digits: the directory bosh-cli's blob client puts a blob
/// in.
fn blob_prefix(id: &str) -> String {
    let digest = sha1::Sha1::digest(id.as_bytes());
    format!("{:02x}", digest[0])
}

/// `HTTP status 404 Not Found`, with the body's text if there is one.
fn status_message(status: StatusCode, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    let body = body.trim();
    if body.is_empty() {
        format!("HTTP status {status}")
    } else {
        format!("HTTP status {status}: {body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_prefixes_are_the_first_sha1_byte_in_hex() {
        // SHA-1("") = da39a3ee…, SHA-1("abc") = a9993e36…
        assert_eq!(blob_prefix(""), "da");
        assert_eq!(blob_prefix("abc"), "a9");
    }

    #[test]
    fn requests_go_to_the_url_without_its_credentials() {
        let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .cert
            .pem();
        let client = HttpsClient::try_new("https://mbus%40x:p%3Ass@127.0.0.1:6868/", &ca).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("mbus@x:p:ss");
        assert_eq!(
            client.authorization.to_str().unwrap(),
            format!("Basic {expected}")
        );
        assert_eq!(
            client.endpoint(&["agent"]).as_str(),
            "https://127.0.0.1:6868/agent"
        );
        assert_eq!(
            client
                .endpoint(&["blobs", &blob_prefix("abc"), "abc"])
                .as_str(),
            "https://127.0.0.1:6868/blobs/a9/abc"
        );
        assert_eq!(client.address(), "127.0.0.1:6868");
        assert!(!format!("{client:?}").contains("p:ss"));
    }

    #[test]
    fn credentials_stay_out_of_errors() {
        let err = HttpsClient::try_new("nats://u:secret@127.0.0.1:1", "").unwrap_err();
        let text = settings::source::error_chain(&err);
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("not https://"), "{text}");
    }

    #[test]
    fn a_bad_ca_is_refused_clearly() {
        let err = HttpsClient::try_new("https://u:p@127.0.0.1:6868", "").unwrap_err();
        assert!(
            settings::source::error_chain(&err).contains("the mbus CA certificate is empty"),
            "{err}"
        );
    }
}
