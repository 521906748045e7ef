//! Helpers shared by the node's integration tests (each test binary uses some of them).
#![allow(dead_code)]

use diameter_codec::dict::{base, dcca};
use diameter_codec::{Message, MessageBuilder, ResultCode};
use diameter_node::node::{Handler, Node, PeerSpec, handler_fn};
use diameter_node::peer::Timers;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub(crate) mod raw;

/// The Origin-Host of the tests' clients.
pub(crate) const CLIENT: &str = "client.example";

/// How long a test waits for an answer.
pub(crate) const T: Duration = Duration::from_secs(3);

/// Loopback with port 0: a listener the OS gives a free port.
pub(crate) fn any_addr() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A loopback address whose port was free a moment ago (for a server started elsewhere).
pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind(any_addr())
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Diameter Credit-Control, the application the tests exchange (RFC 4006).
pub(crate) const DCCA: u32 = 4;

/// A CCR-I (RFC 4006 §3.1) from `origin_host` in `origin_realm` to `dest_realm`.
pub(crate) fn ccr(
    session: &str,
    origin_host: &str,
    origin_realm: &str,
    dest_realm: &str,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, DCCA, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::ORIGIN_HOST.with(origin_host.to_string()));
    b.push(base::ORIGIN_REALM.with(origin_realm.to_string()));
    b.push(base::DESTINATION_REALM.with(dest_realm.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(DCCA));
    b.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
    b.push(dcca::CC_REQUEST_NUMBER.with(0u32));
    b
}

/// The Result-Code of an answer (it must have one).
pub(crate) fn rc(m: &Message) -> u32 {
    m.get(base::RESULT_CODE)
        .and_then(Result::ok)
        .expect("Result-Code")
}

/// A handler that counts each request in `runs` as it starts, waits `delay` and answers 2001.
pub(crate) fn counting_handler(runs: Arc<AtomicUsize>, delay: Duration) -> Arc<dyn Handler> {
    handler_fn(move |req| {
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            req.answer(ResultCode::DIAMETER_SUCCESS)
        }
    })
}

/// Fast reconnects (Tc 200 ms) for tests that restart peers.
pub(crate) fn fast_timers() -> Timers {
    Timers {
        tc: Duration::from_millis(200),
        ..Timers::default()
    }
}

/// `host` listening on `node`, connected to with fast reconnects.
pub(crate) fn peer_at(host: &str, node: &Node) -> PeerSpec {
    let mut p = PeerSpec::connect_tcp(host, node.listen_addrs()[0]);
    p.timers = fast_timers();
    p
}

/// Which server answered: the Error-Message the tests' servers put in their answers.
pub(crate) fn said_by(m: &Message) -> String {
    m.get(base::ERROR_MESSAGE)
        .and_then(Result::ok)
        .unwrap_or_default()
        .to_string()
}

/// The body of a GET /metrics from a Prometheus endpoint, with its HTTP status line.
pub(crate) async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}
