//! Tests of the message-bus harness itself (`tests/support`): the real nats-server with TLS lets
//! in a director with its certificate and carries a request and its reply, refuses clients
//! without a certificate from the client CA, comes back on the same port after a restart, and
//! `AgentProcess` hands the agent settings it loads.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::task::block_in_place;

use crate::support::agent_process::AgentProcess;
use crate::support::nats::{
    NatsServer, client_tls_config, connect_director, connect_with_tls, round_trip, tls_alert,
};
use crate::support::pki::Pki;
use crate::support::wait_until;

/// A bound on each network wait in these tests; none is expected to come near it.
const TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn director_request_gets_the_reply_of_another_client() {
    let pki = Pki::new("agent-harness");
    let server = block_in_place(|| NatsServer::start(&pki));
    let responder = connect_director(&server.url(), &pki).await.unwrap();
    let requester = connect_director(&server.url(), &pki).await.unwrap();
    let subject = format!("agent.{}", pki.agent_id);
    let mut requests = responder.subscribe(subject.clone()).await.unwrap();
    // The server must know the subscription before anyone publishes to it.
    round_trip(&responder).await;

    let answer = async {
        let request = requests.next().await.unwrap();
        assert_eq!(&request.payload[..], br#"{"method":"ping","arguments":[]}"#);
        responder
            .publish(request.reply.unwrap(), r#"{"value":"pong"}"#.into())
            .await
            .unwrap();
        responder.flush().await.unwrap();
    };
    let ask = requester.request(subject, r#"{"method":"ping","arguments":[]}"#.into());
    let ((), reply) = tokio::time::timeout(TIMEOUT, async { tokio::join!(answer, ask) })
        .await
        .unwrap_or_else(|_| panic!("no reply in time\n{}", server.log()));

    assert_eq!(&reply.unwrap().payload[..], br#"{"value":"pong"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_a_certificate_is_refused() {
    let pki = Pki::new("agent-harness");
    let server = block_in_place(|| NatsServer::start(&pki));

    let connected = tokio::time::timeout(
        TIMEOUT,
        connect_with_tls(&server.url(), client_tls_config(&pki.server_ca, None)),
    )
    .await
    .unwrap();

    let err = connected
        .err()
        .unwrap_or_else(|| panic!("a client without a certificate got in\n{}", server.log()));
    // Refused by the server in the TLS handshake, not by a dead port.
    assert!(tls_alert(&err).is_some(), "{err:?}\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new("agent-harness");
    let stranger = Pki::new("agent-harness");
    let server = block_in_place(|| NatsServer::start(&pki));

    let connected = tokio::time::timeout(
        TIMEOUT,
        connect_with_tls(
            &server.url(),
            client_tls_config(&pki.server_ca, Some(&stranger.director)),
        ),
    )
    .await
    .unwrap();

    let err = connected.err().unwrap_or_else(|| {
        panic!(
            "a certificate from another client CA got in\n{}",
            server.log()
        )
    });
    assert!(tls_alert(&err).is_some(), "{err:?}\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_port_and_clients_reconnect() {
    let pki = Pki::new("agent-harness");
    let mut server = block_in_place(|| NatsServer::start(&pki));
    let url = server.url();
    let responder = connect_director(&url, &pki).await.unwrap();
    let subject = format!("agent.{}", pki.agent_id);
    let mut requests = responder.subscribe(subject.clone()).await.unwrap();
    round_trip(&responder).await;

    block_in_place(|| server.restart());
    assert_eq!(server.url(), url);
    let requester = tokio::time::timeout(TIMEOUT, connect_director(&url, &pki))
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("no connection after the restart: {err}\n{}", server.log()));

    // The responder reconnects on its own, with back-off, and subscribes again: ask until it
    // answers.
    let answer = async {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                responder.publish(reply, "pong".into()).await.unwrap();
            }
        }
    };
    let ask = async {
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_millis(500),
                requester.request(subject.clone(), "ping".into()),
            );
            if let Ok(Ok(reply)) = attempt.await {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let reply = tokio::time::timeout(TIMEOUT, async {
        tokio::select! {
            () = answer => panic!("the responder's subscription ended"),
            reply = ask => reply,
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the responder did not come back\n{}", server.log()));

    assert_eq!(&reply.payload[..], b"pong");
}

#[test]
fn agent_process_loads_the_settings_it_is_given() {
    let pki = Pki::new("agent-harness");
    let server = NatsServer::start(&pki);
    let mut agent = AgentProcess::start(&pki, &server.url());
    let cache = agent.base_dir().join("bosh/settings.json");
    let cached = || -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(&cache).ok()?).ok()
    };

    assert!(
        wait_until(TIMEOUT, || cached().is_some()),
        "no settings cache\n{}",
        agent.log()
    );
    let settings = cached().unwrap();
    assert_eq!(settings["agent_id"], pki.agent_id);
    assert_eq!(settings["mbus"], server.url());
    assert_eq!(settings["env"]["bosh"]["mbus"]["cert"]["ca"], pki.server_ca);
    assert_eq!(settings["blobstore"]["provider"], "local");

    agent.stop();
    std::fs::remove_file(&cache).unwrap();
    agent.restart();
    assert!(
        wait_until(TIMEOUT, || cached().is_some()),
        "no settings cache after the restart\n{}",
        agent.log()
    );
}
