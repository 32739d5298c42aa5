//! The built-in `dav` blobstore (davcli's protocol) through `from_settings`, as the agent builds it:
//! provider, retries and the local blob directories in front.

use std::sync::Arc;

use serde_json::json;

use jobs::blobstore::{self, Blobstore};
use platform::cmd::{CommandRunner, SystemRunner};
use settings::Dirs;
use settings::digest::{Algorithm, MultiDigest};
use settings::model::Blobstore as BlobstoreSettings;
use settings::source::error_chain;

use crate::support::dav::DavServer;
use crate::support::{digest_of, names_in, pattern};

const USER: &str = "agent";
const PASSWORD: &str = "dav-s3cret";

/// `/blobs/<first byte of SHA-1(id) in hex>/<id>`, where davcli keeps blob `id`.
fn blob_path(id: &str) -> String {
    let prefix = digest_of(id.as_bytes(), &[Algorithm::Sha1]).to_string();
    format!("/blobs/{}/{id}", &prefix[..2])
}

struct Fixture {
    base: tempfile::TempDir,
    blobstore: Box<dyn Blobstore>,
}

impl Fixture {
    fn new(options: serde_json::Value) -> Fixture {
        let base = tempfile::tempdir().unwrap();
        let settings = BlobstoreSettings {
            provider: "dav".to_owned(),
            options: serde_json::from_value(options).unwrap(),
        };
        let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
        let blobstore =
            blobstore::from_settings(&settings, &Dirs::new(base.path()), runner).unwrap();
        Fixture { base, blobstore }
    }

    fn for_server(server: &DavServer, password: &str) -> Fixture {
        Fixture::new(json!({
            "endpoint": format!("{}/blobs", server.url()),
            "user": USER,
            "password": password,
        }))
    }

    fn destination(&self) -> std::path::PathBuf {
        self.base.path().join("blob.tgz")
    }
}

#[tokio::test]
async fn get_downloads_and_verifies_the_blob() {
    let server = DavServer::start(Some((USER, PASSWORD))).await;
    let content = pattern(3 * 1024 * 1024 + 17);
    server.insert(&blob_path("b-1"), content.clone());
    let fixture = Fixture::for_server(&server, PASSWORD);
    let digest = digest_of(&content, &[Algorithm::Sha1, Algorithm::Sha512]);

    fixture
        .blobstore
        .get("b-1", &digest, &fixture.destination())
        .await
        .unwrap();

    assert_eq!(std::fs::read(fixture.destination()).unwrap(), content);
    assert_eq!(names_in(fixture.base.path()), vec!["blob.tgz"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path_and_query, blob_path("b-1"));
}

#[tokio::test]
async fn a_wrong_digest_is_refused_and_leaves_nothing() {
    let server = DavServer::start(None).await;
    server.insert(&blob_path("b-1"), "tampered");
    let fixture = Fixture::new(json!({"endpoint": format!("{}/blobs", server.url())}));
    let digest = digest_of(b"original", &[Algorithm::Sha256]);

    let err = fixture
        .blobstore
        .get("b-1", &digest, &fixture.destination())
        .await
        .unwrap_err();

    let text = error_chain(&err);
    let actual = digest_of(b"tampered", &[Algorithm::Sha256]);
    assert_eq!(
        text,
        format!(
            "getting blob 'b-1' failed after 3 attempts: checking downloaded blob 'b-1': \
             Expected stream to have digest '{digest}' but was '{actual}'"
        )
    );
    assert!(names_in(fixture.base.path()).is_empty());
    // A mismatch is retried, as the Go agent's retryable blobstore does.
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn put_then_get_round_trips() {
    let server = DavServer::start(Some((USER, PASSWORD))).await;
    let fixture = Fixture::for_server(&server, PASSWORD);
    let source = fixture.base.path().join("compiled.tgz");
    let content = pattern(200_000);
    std::fs::write(&source, &content).unwrap();

    let (id, digest) = fixture.blobstore.put(&source).await.unwrap();

    assert!(uuid_like(&id), "{id}");
    assert_eq!(digest, digest_of(&content, &[Algorithm::Sha1]));
    assert_eq!(server.paths(), vec![blob_path(&id)]);
    let put = &server.requests()[0];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.header("content-length"), Some("200000"));
    assert_eq!(put.body_len, content.len());

    let fetched = fixture.base.path().join("fetched");
    fixture.blobstore.get(&id, &digest, &fetched).await.unwrap();
    assert_eq!(std::fs::read(&fetched).unwrap(), content);
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let server = DavServer::start(Some((USER, PASSWORD))).await;
    server.insert(&blob_path("b-1"), "x");
    let fixture = Fixture::for_server(&server, "wrong-pa55");
    let digest = digest_of(b"x", &[Algorithm::Sha1]);

    let err = fixture
        .blobstore
        .get("b-1", &digest, &fixture.destination())
        .await
        .unwrap_err();

    let text = error_chain(&err);
    assert_eq!(
        text,
        format!(
            "getting blob 'b-1' failed after 3 attempts: unexpected HTTP status 401 Unauthorized \
             for GET {}{}: <html>401 Authorization Required</html>",
            server.url(),
            blob_path("b-1")
        )
    );
    assert!(!text.contains("wrong-pa55") && !text.contains(PASSWORD));
    assert!(names_in(fixture.base.path()).is_empty());
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = DavServer::start(None).await;
    server.insert(&blob_path("b-1"), "content");
    let fixture = Fixture::new(json!({"endpoint": format!("{}/blobs", server.url())}));
    let digest = digest_of(b"content", &[Algorithm::Sha1]);

    server.fail_next([500, 503]);
    fixture
        .blobstore
        .get("b-1", &digest, &fixture.destination())
        .await
        .unwrap();
    assert_eq!(std::fs::read(fixture.destination()).unwrap(), b"content");
    assert_eq!(server.requests().len(), 3);

    let source = fixture.base.path().join("source");
    std::fs::write(&source, "up").unwrap();
    server.fail_next([502]);
    let (id, _) = fixture.blobstore.put(&source).await.unwrap();
    assert_eq!(server.blob(&blob_path(&id)).unwrap(), b"up");
    // Each attempt is a new blob id in Go too: the failed one was never stored.
    assert_eq!(server.requests().len(), 5);
}

#[tokio::test]
async fn https_trusts_the_ca_of_the_settings() {
    let server = DavServer::start_tls(Some((USER, PASSWORD))).await;
    let options = json!({
        "endpoint": server.url(),
        "user": USER,
        "password": PASSWORD,
        "tls": {"cert": {"ca": server.ca_pem()}},
    });
    let fixture = Fixture::new(options);
    let source = fixture.base.path().join("source");
    std::fs::write(&source, "over tls").unwrap();

    let (id, digest) = fixture.blobstore.put(&source).await.unwrap();
    fixture
        .blobstore
        .get(&id, &digest, &fixture.destination())
        .await
        .unwrap();
    assert_eq!(std::fs::read(fixture.destination()).unwrap(), b"over tls");
}

#[tokio::test]
async fn https_refuses_a_server_the_settings_ca_did_not_sign() {
    let server = DavServer::start_tls(None).await;
    let other = DavServer::start_tls(None).await;
    server.insert("/a9/abc", "x");
    let fixture = Fixture::new(json!({
        "endpoint": server.url(),
        "tls": {"cert": {"ca": other.ca_pem()}},
    }));
    let digest = digest_of(b"x", &[Algorithm::Sha1]);

    let err = fixture
        .blobstore
        .get("abc", &digest, &fixture.destination())
        .await
        .unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "getting blob 'abc' failed after 3 attempts: requesting GET {}/a9/abc",
            server.url()
        )),
        "{text}"
    );
    // Both CAs have the same (empty) name, so the chain is found and its signature is wrong.
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn local_blob_directories_are_read_before_the_server() {
    let server = DavServer::start(None).await;
    let fixture = Fixture::new(json!({"endpoint": server.url()}));
    let dirs = Dirs::new(fixture.base.path());
    std::fs::create_dir_all(dirs.sensitive_blobs_dir()).unwrap();
    std::fs::write(dirs.sensitive_blobs_dir().join("templates-1"), "rendered").unwrap();
    let digest =
        MultiDigest::parse(&digest_of(b"rendered", &[Algorithm::Sha512]).to_string()).unwrap();

    fixture
        .blobstore
        .get("templates-1", &digest, &fixture.destination())
        .await
        .unwrap();

    assert_eq!(std::fs::read(fixture.destination()).unwrap(), b"rendered");
    assert!(server.requests().is_empty());
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}
