//! What servers build on: handlers that forward (a proxy, with edits and failover) or
//! redirect, the client side following a redirect to a host it is not connected to, the E
//! bit on protocol errors, peer events and facts, peers added and removed at run time, and
//! a peer that reconnects without DPR being served at once.

use bytes::Bytes;
use diameter_codec::dict::base;
use diameter_codec::{
    AvpFlags, AvpValue, CommandFlags, Message, MessageBuilder, OwnedAvp, ResultCode,
};
use diameter_node::node::{
    Forward, Node, NodeConfig, NodeEvent, PeerSpec, RequestError, handler_fn, relay_route,
};
use diameter_node::peer::{Application, UnknownPeerPolicy};
use diameter_node::routing::RedirectUsage;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

mod common;
use common::raw::{Raw, cer};
use common::{CLIENT, DCCA, T, any_addr, counting_handler, peer_at, rc, said_by};

const SERVER_REALM: &str = "server.example";

/// A server answering DCCA with 2001 and "answered by HOST", keeping every request it got.
struct Server {
    node: Node,
    seen: Arc<Mutex<Vec<Message>>>,
}

async fn server(host: &str, delay: Duration) -> Server {
    let mut cfg = NodeConfig::new(host, SERVER_REALM);
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
    cfg.listen.push(any_addr().into());
    let mut proxy = PeerSpec::accept_only("proxy.example");
    proxy.forwards = true;
    cfg.peers.push(proxy);
    let node = Node::start(cfg).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (name, kept) = (host.to_string(), seen.clone());
    node.register(
        DCCA,
        handler_fn(move |req| {
            kept.lock().unwrap().push(req.msg.clone());
            let name = name.clone();
            async move {
                tokio::time::sleep(delay).await;
                let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
                a.push(base::ERROR_MESSAGE.with(format!("answered by {name}")));
                a
            }
        }),
    );
    Server { node, seen }
}

/// A client of realm server.example through `via` (connected and open).
async fn client_via(via: &str, node: &Node) -> Node {
    client_with(via, node, |_| {}).await
}

/// A client of realm server.example through `via` (connected and open), configured
/// further by `tweak`.
async fn client_with(via: &str, node: &Node, tweak: impl FnOnce(&mut NodeConfig)) -> Node {
    let mut cfg = NodeConfig::new(CLIENT, "client.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.peers.push(peer_at(via, node));
    cfg.routes
        .push(relay_route(SERVER_REALM, Some(DCCA), &[via]));
    cfg.request_timeout = T;
    tweak(&mut cfg);
    let cli = Node::start(cfg).await.unwrap();
    assert!(cli.wait_peer(via, T).await, "client never reached {via}");
    cli
}

/// A proxy in front of `backends` whose DCCA handler is `make`.
async fn proxy(backends: &[&Server], handler: Arc<dyn diameter_node::node::Handler>) -> Node {
    let mut cfg = NodeConfig::new("proxy.example", "proxy.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
    cfg.listen.push(any_addr().into());
    for b in backends {
        cfg.peers
            .push(peer_at(&b.node.identity().host.clone(), &b.node));
    }
    cfg.request_timeout = T;
    let node = Node::start(cfg).await.unwrap();
    node.register(DCCA, handler);
    for b in backends {
        assert!(node.wait_peer(&b.node.identity().host, T).await);
    }
    node
}

fn ccr(session: &str) -> MessageBuilder {
    common::ccr(session, CLIENT, "client.example", SERVER_REALM)
}

/// An AVP no dictionary knows (vendor 99999, M clear): relayed byte for byte.
fn unknown_avp() -> OwnedAvp {
    OwnedAvp::new(
        4242,
        99_999,
        AvpFlags::VENDOR,
        AvpValue::Bytes(Bytes::from_static(b"opaque\x00\x01\x02")),
    )
}

fn proxy_info() -> OwnedAvp {
    base::PROXY_INFO.with(vec![
        base::PROXY_HOST.with("edge.client.example"),
        base::PROXY_STATE.with(Bytes::from_static(b"state-1")),
    ])
}

fn raw_avps(m: &Message, code: u32) -> Vec<Vec<u8>> {
    m.avps()
        .flatten()
        .filter(|a| a.code == code)
        .map(|a| a.raw.to_vec())
        .collect()
}

#[tokio::test]
async fn proxy_handler_forwards_with_edits_and_relays_the_answer() {
    let backend = server("server.example", Duration::ZERO).await;
    let p = proxy(
        &[&backend],
        handler_fn(|req| async move {
            let mut edited = req.edit();
            edited.push(base::USER_NAME.with("added-by-proxy"));
            Forward::to("server.example")
                .with_request(edited)
                .edit_answer(|a| {
                    a.push(base::USER_NAME.with("answer-edited-by-proxy"));
                })
        }),
    )
    .await;
    let cli = client_via("proxy.example", &p).await;
    let mut req = ccr("s;proxy;1");
    req.push(unknown_avp());
    req.push(proxy_info());
    let answer = cli.request(req.clone()).await.unwrap();
    assert_eq!(rc(&answer), 2001);
    assert_eq!(said_by(&answer), "answered by server.example");
    let seen = backend.seen.lock().unwrap()[0].clone();
    // RFC 6733 §6.7.1: Route-Record names the peer the proxy got the request from.
    assert_eq!(route_records(&seen), vec![CLIENT.to_string()]);
    assert_eq!(
        seen.get(base::USER_NAME).and_then(Result::ok),
        Some("added-by-proxy")
    );
    // Unknown AVPs and Proxy-Info go on byte for byte.
    let sent = req.build().unwrap();
    assert_eq!(raw_avps(&seen, 4242), raw_avps(&sent, 4242));
    assert_eq!(raw_avps(&seen, 284), raw_avps(&sent, 284));
    assert_eq!(seen.header().end_to_end, answer.header().end_to_end);
    // The answer was edited on its way back, and carries the request's Proxy-Info.
    assert_eq!(
        answer.get(base::USER_NAME).and_then(Result::ok),
        Some("answer-edited-by-proxy")
    );
    assert_eq!(raw_avps(&answer, 284), raw_avps(&sent, 284));
}

#[tokio::test]
async fn a_proxied_request_retransmitted_gets_the_stored_answer() {
    let backend = server("server.example", Duration::ZERO).await;
    let p = proxy(
        &[&backend],
        handler_fn(|req| async move { req.forward_to("server.example") }),
    )
    .await;
    let cli = client_via("proxy.example", &p).await;
    let first = ccr("s;dup;1").ids(0, 0x5151).build().unwrap();
    let a1 = cli.request_encoded(first.clone(), T).await.unwrap();
    // RFC 6733 §5.5.4: the same End-to-End again with the T bit is a duplicate.
    let a2 = retransmit(&cli, ccr("s;dup;1").ids(0, 0x5151)).await;
    assert_eq!(rc(&a2), 2001);
    assert_eq!(a1.as_bytes()[16..], a2.as_bytes()[16..]);
    assert_eq!(backend.seen.lock().unwrap().len(), 1, "forwarded twice");
}

#[tokio::test]
async fn a_proxied_request_fails_over_to_the_next_peer_with_the_t_bit() {
    let slow = server("slow.example", Duration::from_secs(30)).await;
    let good = server("good.example", Duration::ZERO).await;
    let p = proxy(
        &[&slow, &good],
        handler_fn(|req| async move {
            let _ = &req;
            Forward::to_any(["slow.example", "good.example"])
        }),
    )
    .await;
    let cli = client_via("proxy.example", &p).await;
    let asked = tokio::spawn({
        let cli = cli.clone();
        async move { cli.request(ccr("s;failover;1")).await }
    });
    // Once the slow peer holds the request, it goes away (DPR): the proxy moves the request.
    let deadline = std::time::Instant::now() + T;
    while slow.seen.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never reached slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    slow.node.shutdown(Duration::from_millis(500)).await;
    let answer = asked.await.unwrap().unwrap();
    assert_eq!(rc(&answer), 2001);
    assert_eq!(said_by(&answer), "answered by good.example");
    let moved = good.seen.lock().unwrap()[0].clone();
    assert!(
        moved.header().flags.is_retransmit(),
        "T bit not set on failover"
    );
}

#[tokio::test]
async fn a_proxy_that_cannot_deliver_answers_3002_and_a_loop_3005() {
    let backend = server("server.example", Duration::ZERO).await;
    let p = proxy(
        &[&backend],
        handler_fn(|req| async move {
            let to = req
                .msg
                .get(base::USER_NAME)
                .and_then(Result::ok)
                .unwrap_or("server.example")
                .to_string();
            Forward::to(to)
        }),
    )
    .await;
    let cli = client_via("proxy.example", &p).await;
    let expect = |r: Result<Message, RequestError>, code: u32| {
        let a = r.unwrap();
        assert_eq!(rc(&a), code);
        assert!(a.header().flags.is_error(), "E bit missing on {code}");
    };
    let mut nowhere = ccr("s;err;1");
    nowhere.push(base::USER_NAME.with("nowhere.example"));
    expect(cli.request(nowhere).await, 3002);
    // Back to the sender, or to a host already in Route-Record: a loop (RFC 6733 §6.1.3).
    let mut back = ccr("s;err;2");
    back.push(base::USER_NAME.with(CLIENT));
    expect(cli.request(back).await, 3005);
    let mut looped = ccr("s;err;3");
    looped.push(base::ROUTE_RECORD.with("server.example"));
    expect(cli.request(looped).await, 3005);
    assert!(backend.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_proxy_route_hands_requests_to_the_handler() {
    let backend = server("server.example", Duration::ZERO).await;
    let mut cfg = NodeConfig::new("proxy.example", "proxy.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
    cfg.listen.push(any_addr().into());
    cfg.peers.push(peer_at("server.example", &backend.node));
    cfg.agent = true;
    let mut route = relay_route(SERVER_REALM, Some(DCCA), &["server.example"]);
    route.action = diameter_node::routing::RouteAction::Proxy;
    cfg.routes.push(route);
    let p = Node::start(cfg).await.unwrap();
    p.register(
        DCCA,
        handler_fn(|req| async move {
            assert_eq!(req.route.as_deref(), Some("server.example"));
            let mut edited = req.edit();
            edited.push(base::USER_NAME.with("seen-by-proxy-route"));
            match req.forward_as_routed() {
                diameter_node::node::Outcome::Forward(f) => f.with_request(edited),
                _ => unreachable!("a proxy route always forwards"),
            }
        }),
    );
    assert!(p.wait_peer("server.example", T).await);
    let cli = client_via("proxy.example", &p).await;
    let a = cli.request(ccr("s;route;1")).await.unwrap();
    assert_eq!(rc(&a), 2001);
    let seen = backend.seen.lock().unwrap()[0].clone();
    assert_eq!(
        seen.get(base::USER_NAME).and_then(Result::ok),
        Some("seen-by-proxy-route")
    );
}

/// A node that redirects every DCCA request to `to` (host or URI).
async fn redirector(to: String) -> Node {
    let mut cfg = NodeConfig::new("dra.example", SERVER_REALM);
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
    cfg.listen.push(any_addr().into());
    let node = Node::start(cfg).await.unwrap();
    node.register(
        DCCA,
        handler_fn(move |req| {
            let to = to.clone();
            async move { req.redirect([to], RedirectUsage::AllSession, Duration::from_secs(60)) }
        }),
    );
    node
}

/// A client of realm server.example through the DRA, with `host_map`.
async fn client_of_dra(dra: &Node, host_map: &[(&str, std::net::SocketAddr)]) -> Node {
    client_with("dra.example", dra, |cfg| {
        for (h, a) in host_map {
            cfg.host_map.insert((*h).to_string(), *a);
        }
    })
    .await
}

#[tokio::test]
async fn a_handler_redirect_is_followed_to_a_host_from_the_host_map() {
    let target = server("pcrf.example", Duration::ZERO).await;
    let dra = redirector("pcrf.example".into()).await;
    // The answer itself, as a client that does not follow it sees it.
    let cli = client_of_dra(&dra, &[("pcrf.example", target.node.listen_addrs()[0])]).await;
    let a = cli.request(ccr("s;redirect;1")).await.unwrap();
    assert_eq!(rc(&a), 2001);
    assert_eq!(said_by(&a), "answered by pcrf.example");
    assert!(cli.is_peer_available("pcrf.example"));
    // Redirect-Host-Usage ALL_SESSION was cached: the next request of the session goes
    // straight to the PCRF.
    let b = cli.request(ccr("s;redirect;1")).await.unwrap();
    assert_eq!(said_by(&b), "answered by pcrf.example");
    assert_eq!(target.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn request_with_tells_how_a_request_went_and_can_keep_or_pin_it() {
    use diameter_node::node::SendOptions;
    let target = server("pcrf.example", Duration::ZERO).await;
    let dra = redirector("pcrf.example".into()).await;
    let cli = client_of_dra(&dra, &[("pcrf.example", target.node.listen_addrs()[0])]).await;
    // Followed: the PCRF answered, the DRA redirected on the way.
    let d = cli
        .request_with(ccr("s;with;1"), &SendOptions::default())
        .await
        .unwrap();
    assert_eq!((rc(&d.answer), d.peer.as_str()), (2001, "pcrf.example"));
    assert_eq!(d.redirected_by.as_deref(), Some("dra.example"));
    // Pinned to the DRA (past the cached ALL_SESSION redirect) and not followed: the
    // redirect itself comes back (a client telling a redirect DRA of a termination).
    let kept = SendOptions {
        peer: Some("dra.example".into()),
        keep_redirect: true,
        ..SendOptions::default()
    };
    let d = cli.request_with(ccr("s;with;1"), &kept).await.unwrap();
    assert_eq!((rc(&d.answer), d.peer.as_str()), (3006, "dra.example"));
    assert_eq!(d.redirected_by, None);
    // Pinned to the PCRF: straight there.
    let pinned = SendOptions {
        peer: Some("pcrf.example".into()),
        ..SendOptions::default()
    };
    let d = cli.request_with(ccr("s;with;2"), &pinned).await.unwrap();
    assert_eq!((rc(&d.answer), d.redirected_by), (2001, None));
    assert_eq!(target.seen.lock().unwrap().len(), 2);
    // A pinned host the node cannot reach: 3002 from the node itself.
    let nowhere = SendOptions {
        peer: Some("gone.example".into()),
        timeout: Some(Duration::from_millis(300)),
        ..SendOptions::default()
    };
    match cli.request_with(ccr("s;with;3"), &nowhere).await {
        Err(RequestError::Protocol { result_code, .. }) => {
            assert_eq!(result_code.0, 3002)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_is_followed_to_the_address_in_its_uri() {
    // "localhost" is the target's Diameter identity and a name the system resolver knows.
    let target = server("localhost", Duration::ZERO).await;
    let port = target.node.listen_addrs()[0].port();
    let dra = redirector(format!("aaa://localhost:{port};transport=tcp")).await;
    let cli = client_of_dra(&dra, &[]).await;
    let a = cli.request(ccr("s;redirect;2")).await.unwrap();
    assert_eq!(rc(&a), 2001);
    assert_eq!(said_by(&a), "answered by localhost");
}

#[tokio::test]
async fn the_redirect_answer_has_the_rfc_shape() {
    let dra = redirector("pcrf.example".into()).await;
    let mut c = Raw::connect(dra.listen_addrs()[0]).await;
    c.send(&cer(CLIENT)).await;
    assert_eq!(rc(&c.recv().await), 2001);
    c.send(&ccr("s;shape;1").ids(7, 7)).await;
    let a = c.recv().await;
    // RFC 6733 §6.1.7, §6.12–6.14: 3006, E bit, Redirect-Host, usage and cache time.
    assert_eq!(rc(&a), 3006);
    assert!(a.header().flags.is_error());
    let host = a
        .get(base::REDIRECT_HOST)
        .and_then(Result::ok)
        .expect("Redirect-Host");
    assert_eq!(host.fqdn, "pcrf.example");
    assert_eq!(
        a.get(base::REDIRECT_HOST_USAGE)
            .and_then(Result::ok)
            .map(|u| u.0),
        Some(RedirectUsage::AllSession.value())
    );
    assert_eq!(
        a.get(base::REDIRECT_MAX_CACHE_TIME).and_then(Result::ok),
        Some(60)
    );
}

#[tokio::test]
async fn protocol_error_answers_have_the_e_bit() {
    let mut cfg = NodeConfig::new("server.example", SERVER_REALM);
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
    cfg.listen.push(any_addr().into());
    let node = Node::start(cfg).await.unwrap();
    node.register(
        DCCA,
        handler_fn(|req| async move {
            if req.msg.session_id() == Some("s;e;1") {
                req.answer(ResultCode::DIAMETER_TOO_BUSY)
            } else {
                // Built by hand without the E bit: the node sets it (RFC 6733 §7.1.3).
                let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                a.result_code(ResultCode::DIAMETER_UNABLE_TO_DELIVER);
                a
            }
        }),
    );
    let mut c = Raw::connect(node.listen_addrs()[0]).await;
    c.send(&cer(CLIENT)).await;
    assert_eq!(rc(&c.recv().await), 2001);
    for (i, (session, code)) in [("s;e;1", 3004), ("s;e;2", 3002)].into_iter().enumerate() {
        c.send(&ccr(session).ids(i as u32 + 1, i as u32 + 1)).await;
        let a = c.recv().await;
        assert_eq!(rc(&a), code);
        assert!(a.header().flags.is_error(), "no E bit on {code}");
    }
}

/// The next event, within T.
async fn next_event(rx: &mut broadcast::Receiver<NodeEvent>) -> NodeEvent {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("no event")
        .expect("events closed")
}

/// A client with Origin-State-Id `osi` connected to `server`.
async fn client_with_state(server: &Node, osi: u32) -> Node {
    client_with("server.example", server, |cfg| {
        cfg.local.origin_state_id = osi
    })
    .await
}

#[tokio::test]
async fn peer_events_and_facts() {
    let srv = server("server.example", Duration::ZERO).await;
    let mut events = srv.node.events();
    let cli = client_with_state(&srv.node, 1000).await;
    match next_event(&mut events).await {
        NodeEvent::PeerUp { peer, info } => {
            assert_eq!(peer, CLIENT);
            assert_eq!(info.origin_realm, "client.example");
            assert_eq!(info.origin_state_id, Some(1000));
            assert!(info.applications.iter().any(|a| a.id == DCCA));
        }
        other => panic!("expected PeerUp, got {other:?}"),
    }
    let facts = srv.node.peer_info(CLIENT).expect("facts of an open peer");
    assert_eq!(facts.origin_host, CLIENT);
    cli.shutdown(Duration::from_secs(1)).await;
    assert!(matches!(
        next_event(&mut events).await,
        NodeEvent::PeerDown { .. }
    ));
    // The client comes back after a restart: restarted first, then up.
    let cli = client_with_state(&srv.node, 1001).await;
    match next_event(&mut events).await {
        NodeEvent::PeerRestarted {
            peer,
            previous,
            current,
            ..
        } => {
            assert_eq!(peer, CLIENT);
            assert_eq!((previous, current), (1000, 1001));
        }
        other => panic!("expected PeerRestarted, got {other:?}"),
    }
    assert!(matches!(
        next_event(&mut events).await,
        NodeEvent::PeerUp { .. }
    ));
    // The handler sees the facts of the peer its request came from.
    let realm = Arc::new(Mutex::new(String::new()));
    let kept = realm.clone();
    srv.node.register(
        DCCA,
        handler_fn(move |req| {
            *kept.lock().unwrap() = req
                .peer_info()
                .map(|i| i.origin_realm.clone())
                .unwrap_or_default();
            async move { req.answer(ResultCode::DIAMETER_SUCCESS) }
        }),
    );
    assert_eq!(rc(&cli.request(ccr("s;facts;1")).await.unwrap()), 2001);
    assert_eq!(*realm.lock().unwrap(), "client.example");
}

#[tokio::test]
async fn peers_are_added_and_removed_at_run_time() {
    let srv = server("server.example", Duration::ZERO).await;
    let mut cfg = NodeConfig::new(CLIENT, "client.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.routes
        .push(relay_route(SERVER_REALM, Some(DCCA), &["server.example"]));
    cfg.request_timeout = T;
    let cli = Node::start(cfg).await.unwrap();
    assert!(matches!(
        cli.request(ccr("s;dyn;1")).await,
        Err(RequestError::Protocol { .. })
    ));
    assert!(cli.add_peer(peer_at("server.example", &srv.node)));
    assert!(
        !cli.add_peer(peer_at("server.example", &srv.node)),
        "added twice"
    );
    assert!(cli.wait_peer("server.example", T).await);
    assert_eq!(rc(&cli.request(ccr("s;dyn;2")).await.unwrap()), 2001);
    let mut events = srv.node.events();
    assert!(cli.remove_peer("server.example", T).await);
    assert!(matches!(
        next_event(&mut events).await,
        NodeEvent::PeerDown { .. }
    ));
    assert!(!cli.is_peer_available("server.example"));
    assert!(cli.request(ccr("s;dyn;3")).await.is_err());
    // And back again.
    assert!(cli.add_peer(peer_at("server.example", &srv.node)));
    assert!(cli.wait_peer("server.example", T).await);
    assert_eq!(rc(&cli.request(ccr("s;dyn;4")).await.unwrap()), 2001);
}

/// A CER from the raw client with an Origin-State-Id.
fn cer_with_state(osi: u32) -> MessageBuilder {
    cer(CLIENT).with(base::ORIGIN_STATE_ID.with(osi))
}

async fn open_raw(addr: std::net::SocketAddr, cer: &MessageBuilder) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.send(cer).await;
    let cea = c.recv().await;
    assert_eq!(rc(&cea), 2001, "CEA refused");
    c
}

/// Server for the reconnect tests: `client.example` is a configured peer (as a PCEF is).
async fn reconnect_server() -> (Node, Arc<AtomicUsize>) {
    let mut cfg = NodeConfig::new("server.example", SERVER_REALM);
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    let node = Node::start(cfg).await.unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    node.register(DCCA, counting_handler(handled.clone(), Duration::ZERO));
    (node, handled)
}

#[tokio::test]
async fn a_restarted_client_reconnecting_at_once_is_served() {
    let (node, handled) = reconnect_server().await;
    let addr = node.listen_addrs()[0];
    let mut c = open_raw(addr, &cer_with_state(7)).await;
    let first = ccr("s;reconnect;1").ids(0x10, 0x7001);
    c.send(&first).await;
    let a1 = c.recv().await;
    assert_eq!(rc(&a1), 2001);
    // The client vanishes without DPR (a reset, as a crashed PCEF leaves it) and comes back
    // at once with a new Origin-State-Id, possibly before the server saw the old one die.
    c.s.set_zero_linger().unwrap();
    drop(c);
    let mut c = open_raw(addr, &cer_with_state(8)).await;
    c.send(&ccr("s;reconnect;2").ids(0x11, 0x7002)).await;
    assert_eq!(rc(&c.recv().await), 2001);
    // Its first request again with the T bit: the stored answer, not a second run.
    let mut again = ccr("s;reconnect;1").ids(0x12, 0x7001);
    again.flags = again.flags.with(CommandFlags::RETRANSMIT, true);
    c.send(&again).await;
    let a1b = c.recv().await;
    assert_eq!(a1b.header().hop_by_hop, 0x12);
    assert_eq!(a1.as_bytes()[16..], a1b.as_bytes()[16..]);
    assert_eq!(handled.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_reconnecting_with_the_same_state_is_served_in_reopen() {
    // No restart (same Origin-State-Id): the watchdog is in REOPEN after the reconnection,
    // and requests are answered all the same.
    let (node, handled) = reconnect_server().await;
    let addr = node.listen_addrs()[0];
    let mut events = node.events();
    let c = open_raw(addr, &cer_with_state(9)).await;
    assert!(matches!(
        next_event(&mut events).await,
        NodeEvent::PeerUp { .. }
    ));
    c.s.set_zero_linger().unwrap();
    drop(c);
    assert!(matches!(
        next_event(&mut events).await,
        NodeEvent::PeerDown { .. }
    ));
    let mut c = open_raw(addr, &cer_with_state(9)).await;
    c.send(&ccr("s;reopen;1").ids(0x20, 0x8001)).await;
    assert_eq!(rc(&c.recv().await), 2001);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

/// A handler that forwards every request at once to `to` (its `handle` only counts the
/// requests that reach it and forwards them there too).
struct ForwardsAtOnce {
    to: &'static str,
    handled: Arc<AtomicUsize>,
}

impl diameter_node::node::Handler for ForwardsAtOnce {
    fn handle(
        &self,
        req: diameter_node::node::IncomingRequest,
    ) -> diameter_node::node::HandlerFuture {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let to = self.to;
        Box::pin(async move { req.forward_to(to) })
    }

    fn forward_at_once(&self, _from: &str, _msg: &Message) -> Option<diameter_node::node::AtOnce> {
        Some(diameter_node::node::AtOnce::to(self.to))
    }
}

/// A server, a proxy in front of it whose handler forwards every request at once to `to`
/// (counting the requests its handler's future saw), and a client of the proxy.
async fn at_once_proxy(to: &'static str) -> (Server, Arc<AtomicUsize>, Node, Node) {
    let backend = server("server.example", Duration::ZERO).await;
    let handled = Arc::new(AtomicUsize::new(0));
    let p = proxy(
        &[&backend],
        Arc::new(ForwardsAtOnce {
            to,
            handled: handled.clone(),
        }),
    )
    .await;
    let cli = client_via("proxy.example", &p).await;
    (backend, handled, p, cli)
}

#[tokio::test]
async fn a_request_forwarded_at_once_is_relayed_with_route_record_and_its_answer_unchanged() {
    let (backend, handled, _proxy, cli) = at_once_proxy("server.example").await;
    let mut req = ccr("s;at-once;1").ids(0, 0x6161);
    req.push(unknown_avp());
    req.push(proxy_info());
    let sent = req.clone().build().unwrap();
    let answer = cli.request_encoded(sent.clone(), T).await.unwrap();
    assert_eq!(rc(&answer), 2001);
    assert_eq!(said_by(&answer), "answered by server.example");
    assert_eq!(
        handled.load(Ordering::SeqCst),
        0,
        "the handler's future ran"
    );
    let seen = backend.seen.lock().unwrap()[0].clone();
    // RFC 6733 §6.7.1: Route-Record names the peer the proxy got the request from; every
    // other AVP goes on byte for byte.
    assert_eq!(route_records(&seen), vec![CLIENT.to_string()]);
    assert_eq!(raw_avps(&seen, 4242), raw_avps(&sent, 4242));
    assert_eq!(raw_avps(&seen, 284), raw_avps(&sent, 284));
    assert_eq!(seen.header().end_to_end, 0x6161);
    // A retransmission (T bit) takes the full way: the handler decides and forwards it, and
    // the server's duplicate detection answers it (RFC 6733 §5.5.4): its handler ran once.
    let a2 = retransmit(&cli, req.ids(0, 0x6161)).await;
    assert_eq!(rc(&a2), 2001);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert_eq!(a2.as_bytes()[16..], answer.as_bytes()[16..]);
    assert_eq!(backend.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_request_forwarded_at_once_back_to_its_sender_is_a_loop() {
    let (backend, handled, _proxy, cli) = at_once_proxy(CLIENT).await;
    // RFC 6733 §6.1.3: never back to the peer it came from; the full way answers 3005.
    let answer = cli.request(ccr("s;at-once;loop")).await.unwrap();
    assert_eq!(rc(&answer), ResultCode::DIAMETER_LOOP_DETECTED.0);
    assert!(answer.header().flags.is_error());
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    assert!(backend.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_watched_answer_is_seen_and_relayed_byte_for_byte() {
    let backend = server("server.example", Duration::ZERO).await;
    let codes = Arc::new(Mutex::new(Vec::new()));
    let kept = codes.clone();
    let p = proxy(
        &[&backend],
        handler_fn(move |_req| {
            let kept = kept.clone();
            async move {
                Forward::to("server.example").watch_answer(move |a| {
                    kept.lock()
                        .unwrap()
                        .push(a.get(base::RESULT_CODE).and_then(Result::ok));
                })
            }
        }),
    )
    .await;
    let cli = client_via("proxy.example", &p).await;
    let answer = cli.request(ccr("s;watched;1")).await.unwrap();
    assert_eq!(rc(&answer), 2001);
    assert_eq!(said_by(&answer), "answered by server.example");
    assert_eq!(*codes.lock().unwrap(), vec![Some(2001)]);
}

/// The Route-Record AVPs of a message, in order.
fn route_records(m: &Message) -> Vec<String> {
    m.find_all(base::ROUTE_RECORD.key())
        .map(|a| String::from_utf8_lossy(a.data).into_owned())
        .collect()
}

/// Sends `req` with the T bit (RFC 6733 §3: a retransmission) and returns its answer.
async fn retransmit(cli: &Node, mut req: MessageBuilder) -> Message {
    req.flags = req.flags.with(CommandFlags::RETRANSMIT, true);
    cli.request_encoded(req.build().unwrap(), T).await.unwrap()
}
