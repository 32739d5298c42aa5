//! Signed blob URLs (`agent/httpblobprovider/*`): GET and PUT with the director's headers.

use std::collections::BTreeMap;
use std::time::Duration;

use jobs::blobstore::{Retry, SignedClient};
use settings::digest::Algorithm;
use settings::source::error_chain;

use crate::support::dav::DavServer;
use crate::support::{digest_of, names_in, pattern};

const QUERY: &str = "X-Amz-Signature=5ign4ture&X-Amz-Expires=900";

fn headers() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "x-amz-server-side-encryption-customer-key".to_owned(),
            "ZW5jcnlwdGlvbi1rZXk=".to_owned(),
        ),
        ("X-Custom".to_owned(), "yes".to_owned()),
    ])
}

/// A plain-HTTP client whose downloads retry 10 ms apart instead of 5 s.
fn client() -> SignedClient {
    let mut client = SignedClient::try_new(None).unwrap();
    client.get_retry = Retry {
        attempts: 3,
        delay: Duration::from_millis(10),
    };
    client
}

#[tokio::test]
async fn get_sends_the_headers_and_verifies() {
    let server = DavServer::start(None).await;
    let content = pattern(1024 * 1024);
    server.insert("/bucket/pkg", content.clone());
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("pkg.tgz");
    let digest = digest_of(&content, &[Algorithm::Sha512]);
    let url = format!("{}/bucket/pkg?{QUERY}", server.url());

    client()
        .get_signed(&url, &headers(), &digest, &destination)
        .await
        .unwrap();

    assert_eq!(std::fs::read(&destination).unwrap(), content);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path_and_query, format!("/bucket/pkg?{QUERY}"));
    assert_eq!(
        requests[0].header("x-amz-server-side-encryption-customer-key"),
        Some("ZW5jcnlwdGlvbi1rZXk=")
    );
    assert_eq!(requests[0].header("x-custom"), Some("yes"));
}

#[tokio::test]
async fn get_retries_server_errors_with_its_delay() {
    let server = DavServer::start(None).await;
    server.insert("/bucket/pkg", "content");
    server.fail_next([500, 503]);
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("pkg.tgz");
    let digest = digest_of(b"content", &[Algorithm::Sha1]);
    let url = format!("{}/bucket/pkg?{QUERY}", server.url());

    client()
        .get_signed(&url, &headers(), &digest, &destination)
        .await
        .unwrap();

    assert_eq!(std::fs::read(&destination).unwrap(), b"content");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn get_gives_up_after_three_attempts_without_showing_the_signature() {
    let server = DavServer::start(None).await;
    server.insert("/bucket/pkg", "content");
    server.fail_next([500, 500, 500]);
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("pkg.tgz");
    let digest = digest_of(b"content", &[Algorithm::Sha1]);
    let url = format!("{}/bucket/pkg?{QUERY}", server.url());

    let err = client()
        .get_signed(&url, &headers(), &digest, &destination)
        .await
        .unwrap_err();

    let shown = format!("{}/bucket/pkg", server.url());
    assert_eq!(
        error_chain(&err),
        format!(
            "downloading blob from {shown} failed after 3 attempts: \
             unexpected HTTP status 500 Internal Server Error for GET {shown}"
        )
    );
    assert!(names_in(dir.path()).is_empty());
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn get_refuses_a_wrong_digest_and_leaves_nothing() {
    let server = DavServer::start(None).await;
    server.insert("/bucket/pkg", "tampered");
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("pkg.tgz");
    let digest = digest_of(b"original", &[Algorithm::Sha1, Algorithm::Sha512]);
    let url = format!("{}/bucket/pkg?{QUERY}", server.url());

    let err = client()
        .get_signed(&url, &BTreeMap::new(), &digest, &destination)
        .await
        .unwrap_err();

    let text = error_chain(&err);
    let expected = digest.strongest().to_string();
    assert!(
        text.contains(&format!(
            "checking blob downloaded from {}/bucket/pkg: Expected stream to have digest '{expected}' but was 'sha512:",
            server.url()
        )),
        "{text}"
    );
    assert!(names_in(dir.path()).is_empty());
}

#[tokio::test]
async fn put_sends_length_expect_accept_and_headers_and_returns_sha1_and_sha512() {
    let server = DavServer::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("logs.tgz");
    let content = pattern(300_000);
    std::fs::write(&source, &content).unwrap();
    let url = format!("{}/bucket/logs?{QUERY}", server.url());

    let digest = client()
        .put_signed(&url, &headers(), &source)
        .await
        .unwrap();

    let expected = digest_of(&content, &[Algorithm::Sha1, Algorithm::Sha512]);
    assert_eq!(digest, expected);
    let sha1 = digest_of(&content, &[Algorithm::Sha1]).to_string();
    assert!(
        digest.to_string().starts_with(&format!("{sha1};sha512:")),
        "{digest}"
    );
    assert_eq!(server.blob("/bucket/logs").unwrap(), content);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let put = &requests[0];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path_and_query, format!("/bucket/logs?{QUERY}"));
    assert_eq!(put.header("content-length"), Some("300000"));
    assert_eq!(put.header("expect"), Some("100-continue"));
    assert_eq!(put.header("accept"), Some("*/*"));
    assert_eq!(put.header("x-custom"), Some("yes"));
}

#[tokio::test]
async fn put_fails_on_an_error_status_in_one_attempt() {
    let server = DavServer::start(None).await;
    server.fail_next([403]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("logs.tgz");
    std::fs::write(&source, "logs").unwrap();
    let url = format!("{}/bucket/logs?{QUERY}", server.url());

    let err = client()
        .put_signed(&url, &BTreeMap::new(), &source)
        .await
        .unwrap_err();

    let shown = format!("{}/bucket/logs", server.url());
    assert_eq!(
        error_chain(&err),
        format!(
            "uploading {} to {shown} failed after 1 attempt: \
             unexpected HTTP status 403 Forbidden for PUT {shown}",
            source.display()
        )
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn https_uses_the_blobstore_ca() {
    let server = DavServer::start_tls(None).await;
    let settings = settings::model::Blobstore {
        provider: "s3".to_owned(),
        options: serde_json::from_value(
            serde_json::json!({"tls": {"cert": {"ca": server.ca_pem()}}}),
        )
        .unwrap(),
    };
    let client = SignedClient::from_settings(&settings).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::write(&source, "secure").unwrap();
    let url = format!("{}/bucket/blob?{QUERY}", server.url());

    let digest = client
        .put_signed(&url, &BTreeMap::new(), &source)
        .await
        .unwrap();
    let destination = dir.path().join("fetched");
    client
        .get_signed(&url, &BTreeMap::new(), &digest, &destination)
        .await
        .unwrap();

    assert_eq!(std::fs::read(&destination).unwrap(), b"secure");
}
