//! The HTTP client the metadata sources and the registry share: retries and headers
//! (bosh-utils `httpclient.RetryClient`, `infrastructure/http_metadata_service.go`).
//!
//! Go retries every non-2xx answer, so a missing SSH key (404) costs ten seconds of boot. We retry what
//! can heal (connection errors, timeouts, 408, 429 and 5xx) and take any other answer as final.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::source::{Error, Retry};

/// Per-request time limit; a metadata service answers in milliseconds or not at all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect time limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A retrying HTTP client (plain HTTP: metadata services and registries of CPI API v1 speak it).
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    retry: Retry,
}

/// A final answer: the status and the whole body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub attempts: u32,
}

/// Why one attempt failed.
type AttemptError = Box<dyn std::error::Error + Send + Sync>;

impl HttpClient {
    pub(crate) fn new(retry: Retry) -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        HttpClient { client, retry }
    }

    /// Sends a request until it gets a final answer or runs out of attempts. `url` may carry
    /// `user:password@`, which becomes basic auth.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<Answer, Error> {
        let (url, credentials) = split_credentials(url)?;
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self
                .attempt(&method, &url, headers, credentials.as_ref())
                .await;
            let retryable = match &outcome {
                Ok((status, _)) => is_retryable(*status),
                Err(_) => true,
            };
            if !retryable || attempt >= attempts {
                return match outcome {
                    Ok((status, body)) => Ok(Answer {
                        status,
                        body,
                        attempts: attempt,
                    }),
                    Err(source) => Err(Error::Request {
                        url: redact_url(&url),
                        attempts: attempt,
                        source,
                    }),
                };
            }
            match &outcome {
                Ok((status, _)) => {
                    tracing::debug!(url = %redact_url(&url), %status, attempt, "retrying request")
                }
                Err(err) => {
                    tracing::debug!(url = %redact_url(&url), error = %err, attempt, "retrying request")
                }
            }
            tokio::time::sleep(self.retry.delay).await;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &url::Url,
        headers: &BTreeMap<String, String>,
        credentials: Option<&(String, String)>,
    ) -> Result<(StatusCode, Vec<u8>), AttemptError> {
        let mut request = Request::builder().method(method.clone()).uri(url.as_str());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some((user, password)) = credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header(hyper::header::AUTHORIZATION, format!("Basic {token}"));
        }
        let request = request.body(Empty::new())?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, AttemptError>((status, body.to_vec()))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
            ))),
        }
    }

    /// GETs `url` and requires a 2xx answer.
    pub(crate) async fn get_ok(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, Error> {
        let answer = self.send(Method::GET, url, headers).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(Error::Status {
                url: redact_url_str(url),
                status: answer.status.as_u16(),
                attempts: answer.attempts,
            })
        }
    }
}

/// Checks a source's base URL and headers from `agent.json` up front, so a bad one is refused when
/// the source is built instead of failing every request (which would then be retried in vain).
pub(crate) fn validate_options(uri: &str, headers: &BTreeMap<String, String>) -> Result<(), Error> {
    url::Url::parse(uri).map_err(|source| Error::Url {
        url: redact_url_str(uri),
        source,
    })?;
    validate_headers(headers)
}

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), Error> {
    for (name, value) in headers {
        let valid = hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && hyper::header::HeaderValue::from_str(value).is_ok();
        if !valid {
            return Err(Error::Header { name: name.clone() });
        }
    }
    Ok(())
}

fn is_retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Takes `user:password@` out of a URL (percent-decoded), for basic auth.
fn split_credentials(text: &str) -> Result<(url::Url, Option<(String, String)>), Error> {
    let mut url = url::Url::parse(text).map_err(|source| Error::Url {
        url: redact_url_str(text),
        source,
    })?;
    if url.username().is_empty() && url.password().is_none() {
        return Ok((url, None));
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = decode(url.username());
    let password = decode(url.password().unwrap_or(""));
    // Both calls succeed on URLs with a host, which a URL with credentials has.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, Some((user, password))))
}

/// A URL fit for logs and error texts: credentials replaced.
pub(crate) fn redact_url(url: &url::Url) -> String {
    crate::redact::redact_url(url.as_str())
}

/// [`redact_url`] for a URL given as text.
pub(crate) fn redact_url_str(text: &str) -> String {
    crate::redact::redact_url(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_for_basic_auth() {
        let (url, credentials) =
            split_credentials("http://admin:p%40ss@127.0.0.1:25777/x").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:25777/x");
        assert_eq!(credentials, Some(("admin".to_owned(), "p@ss".to_owned())));
    }

    #[test]
    fn urls_in_errors_hide_passwords() {
        assert_eq!(
            redact_url_str("http://u:secret@h/p"),
            "http://u:<redacted>@h/p"
        );
        assert_eq!(redact_url_str("http://h/p"), "http://h/p");
    }

    #[test]
    fn headers_that_http_cannot_carry_are_refused() {
        let good = BTreeMap::from([("Metadata-Flavor".to_owned(), "Google".to_owned())]);
        validate_headers(&good).unwrap();
        let bad_value = BTreeMap::from([("X-Token".to_owned(), "a\nb".to_owned())]);
        assert_eq!(
            validate_headers(&bad_value).unwrap_err().to_string(),
            "invalid HTTP header \"X-Token\" in the source options"
        );
        let bad_name = BTreeMap::from([("Bad Name".to_owned(), "v".to_owned())]);
        assert!(validate_headers(&bad_name).is_err());
    }

    #[test]
    fn only_healing_statuses_are_retried() {
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_retryable(StatusCode::NOT_FOUND));
        assert!(!is_retryable(StatusCode::OK));
    }
}
