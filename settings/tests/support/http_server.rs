//! A small real HTTP/1 server on `127.0.0.1:0` that plays scripted answers and records requests.
//!
//! Routes are keyed by method and path and answer a queue of `(status, body)` replies; the last reply
//! repeats once the queue is down to it. Unknown routes answer 404 `no route`. Every request is recorded
//! (method, path, headers) so tests can assert on what a source sent. Each connection is served by its
//! own task, at most [`MAX_CONNECTIONS`] at once; dropping the server aborts the accept task, which
//! owns the connection tasks, so nothing outlives the test.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// How many connections are served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The headers as received.
    pub headers: HeaderMap,
}

impl Recorded {
    /// The value of header `name` (case-insensitive), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// `(method, path)`.
type RouteKey = (String, String);
/// `(status, body)` answers, the last one repeating.
type Replies = VecDeque<(u16, Vec<u8>)>;

#[derive(Debug, Default)]
struct State {
    routes: HashMap<RouteKey, Replies>,
    requests: Vec<Recorded>,
}

/// The running server; stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl TestServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of the listener");
        let state = Arc::new(Mutex::new(State::default()));
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        TestServer {
            addr,
            state,
            accept,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Scripts `method path` to answer `replies` in turn, the last one repeating. Replaces an earlier
    /// script of the same route.
    pub fn route<B: Into<Vec<u8>>>(
        &self,
        method: &str,
        path: &str,
        replies: impl IntoIterator<Item = (u16, B)>,
    ) {
        let replies: Replies = replies
            .into_iter()
            .map(|(status, body)| (status, body.into()))
            .collect();
        assert!(!replies.is_empty(), "route {method} {path} needs a reply");
        self.lock()
            .routes
            .insert((method.to_owned(), path.to_owned()), replies);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests received for `method path`, in order.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == method && request.path == path)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Owned here, so aborting this task aborts every connection task too.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let reply = answer(&state, &request);
                async move { Ok::<_, Infallible>(reply) }
            });
            // A client that hangs up mid-request is not the server's failure.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// Records `request` and pops the reply of its route.
fn answer(state: &Mutex<State>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        headers: request.headers().clone(),
    });
    let (status, body) = match state.routes.get_mut(&(method, path)) {
        Some(replies) if replies.len() > 1 => replies.pop_front().unwrap_or_default(),
        Some(replies) => replies.front().cloned().unwrap_or_default(),
        None => (404, b"no route".to_vec()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid HTTP status");
    response
}
