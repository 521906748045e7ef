//! The Diameter test client both the pcrf and the dra integration tests build on
//! diameter-node: its configuration and a handler that keeps what it is sent. Included
//! from a crate's `tests/common/mod.rs` with
//! `#[path = "../../../tests/support/test_client.rs"] mod test_client;`; the including
//! module provides the request timeout `T`.
#![allow(dead_code)]

use diameter_codec::{Message, MessageBuilder, ResultCode};
use diameter_node::node::{
    IncomingRequest, Node, NodeConfig, Outcome, PeerSpec, handler_fn, relay_route,
};
use diameter_node::peer::{Application, Timers};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The configuration of a test client `host` of `realm` speaking the 3GPP application `app`
/// to one peer `peer_host` at `addr` (reconnecting after 100 ms), with requests for
/// `peer_realm` relayed to it.
pub(crate) fn client_config(
    host: &str,
    realm: &str,
    app: u32,
    peer_host: &str,
    peer_realm: &str,
    addr: SocketAddr,
) -> NodeConfig {
    let mut cfg = NodeConfig::new(host, realm);
    cfg.local
        .applications
        .push(Application::vendor_auth(10_415, app));
    cfg.local.supported_vendor_ids.push(10_415);
    let mut p = PeerSpec::connect_tcp(peer_host, addr);
    p.timers = Timers {
        tc: Duration::from_millis(100),
        ..Timers::default()
    };
    cfg.peers.push(p);
    cfg.routes
        .push(relay_route(peer_realm, Some(app), &[peer_host]));
    cfg.request_timeout = super::T;
    cfg
}

/// Registers on `node` for `app` a handler that keeps every request it receives and answers
/// it with `answer`; returns the kept requests.
pub(crate) fn keep_requests<F, Fut, R>(node: &Node, app: u32, answer: F) -> Arc<Mutex<Vec<Message>>>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<Outcome> + 'static,
{
    let requests = Arc::new(Mutex::new(Vec::new()));
    let kept = requests.clone();
    node.register(
        app,
        handler_fn(move |req| {
            kept.lock().unwrap().push(req.msg.clone());
            answer(req)
        }),
    );
    requests
}

/// Answers any request DIAMETER_SUCCESS.
pub(crate) async fn success(req: IncomingRequest) -> MessageBuilder {
    req.answer(ResultCode::DIAMETER_SUCCESS)
}
