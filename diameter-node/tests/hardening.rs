//! Issue 9 hardening: clean shutdown, handler panics, and messages larger than a peer
//! accepts. Nodes over loopback TCP.

use diameter_codec::{CommandFlags, Message, MessageBuilder, ResultCode};
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn, relay_route};
use diameter_node::peer::{Application, Timers};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;
use common::{DCCA, any_addr, rc};

const T: Duration = Duration::from_secs(3);
const CLIENT: &str = "client.example";

fn server_config(host: &str, addr: SocketAddr) -> NodeConfig {
    let mut cfg = NodeConfig::new(host, "server.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(addr.into());
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    cfg
}

async fn client_of(host: &str, addr: SocketAddr) -> Node {
    let mut cfg = NodeConfig::new(CLIENT, "client.example");
    cfg.local.applications.push(Application::auth(DCCA));
    let mut p = PeerSpec::connect_tcp(host, addr);
    p.timers = Timers {
        tc: Duration::from_millis(200),
        ..Timers::default()
    };
    cfg.peers.push(p);
    cfg.routes
        .push(relay_route("server.example", Some(DCCA), &[host]));
    cfg.request_timeout = T;
    let cli = Node::start(cfg).await.unwrap();
    assert!(cli.wait_peer(host, Duration::from_secs(5)).await);
    cli
}

fn ccr(session: &str) -> MessageBuilder {
    common::ccr(session, CLIENT, "client.example", "server.example")
}

// ------------------------------------------------------------------ item 10: shutdown

#[tokio::test]
async fn shutdown_frees_the_listening_address() {
    let first = Node::start(server_config("srv.example", any_addr()))
        .await
        .unwrap();
    let addr = first.listen_addrs()[0];
    first.shutdown(Duration::from_millis(200)).await;
    // No connection arrives in between: the address must be free all the same.
    let again = Node::start(server_config("srv.example", addr))
        .await
        .expect("the address is free again after shutdown");
    assert_eq!(again.listen_addrs()[0], addr);
    // And the new node serves on it.
    let runs = Arc::new(AtomicUsize::new(0));
    again.register(DCCA, common::counting_handler(runs.clone(), Duration::ZERO));
    let cli = client_of("srv.example", addr).await;
    let a = cli.request(ccr("s;again")).await.unwrap();
    assert_eq!(rc(&a), 2001);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    cli.shutdown(Duration::from_millis(500)).await;
    again.shutdown(Duration::from_millis(500)).await;
}

// ------------------------------------------------------------------ item 10: panics

#[tokio::test]
async fn panicking_handler_is_answered_5012_and_the_connection_stays() {
    let srv = Node::start(server_config("panic.example", any_addr()))
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    srv.register(
        DCCA,
        handler_fn(move |req| {
            r.fetch_add(1, Ordering::SeqCst);
            let boom = req.msg.session_id().is_some_and(|s| s.contains("boom"));
            let slow = req.msg.session_id().is_some_and(|s| s.contains("slow"));
            async move {
                if slow {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(!boom, "handler bug");
                req.answer(ResultCode::DIAMETER_SUCCESS)
            }
        }),
    );
    let cli = client_of("panic.example", srv.listen_addrs()[0]).await;
    // Panics in a handler that answers at once (polled on the connection's reader) and in
    // one that waits first (polled on a task of its own).
    for session in ["s;boom", "s;slow;boom"] {
        let e2e = cli.next_end_to_end();
        let req = ccr(session).ids(0, e2e).build().unwrap();
        let a = cli.request_encoded(req.clone(), T).await.unwrap();
        assert_eq!(rc(&a), 5012, "{session}");
        assert_eq!(a.session_id(), Some(session));
        // The connection still serves the next request.
        let a = cli.request(ccr("s;fine")).await.unwrap();
        assert_eq!(rc(&a), 2001);
        // A retransmission (T bit, same End-to-End) of the request that panicked is not
        // parked behind an entry left in flight: it gets the same answer.
        let mut t = req.as_bytes().to_vec();
        t[4] |= CommandFlags::RETRANSMIT;
        let a = cli
            .request_encoded(Message::from_bytes(t).unwrap(), T)
            .await
            .unwrap();
        assert_eq!(rc(&a), 5012, "{session} retransmitted");
    }
    assert!(cli.is_peer_available("panic.example"));
    // The handler ran once per distinct request: twice panicking, twice fine.
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    cli.shutdown(Duration::from_millis(500)).await;
    srv.shutdown(Duration::from_millis(500)).await;
}
