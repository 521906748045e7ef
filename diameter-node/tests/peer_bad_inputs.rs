//! The server and peer bad inputs of bad-inputs.md (items 29–43 that belong to this layer),
//! sent over raw TCP sockets as hand-built bytes to an in-process [`Node`].
//!
//! Every test is bounded: reads have deadlines, and "closed" means EOF or a reset within a
//! few seconds without any message first.

use bytes::{Bytes, BytesMut};
use diameter_codec::dict::{base, dcca};
use diameter_codec::{CommandFlags, Message, MessageBuilder};
use diameter_node::node::{Node, NodeConfig, PeerSpec, relay_route};
use diameter_node::peer::{Application, RELAY_APPLICATION_ID, Timers};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

mod common;
use common::raw::{Raw, Read, cer};
use common::{CLIENT, DCCA, T, any_addr, counting_handler, rc};
const SERVER: &str = "server.example";
const SERVER_REALM: &str = "example";

// ------------------------------------------------------------------------------- helpers

/// A CER without the AVP `code` (all its occurrences).
fn cer_without(code: u32) -> MessageBuilder {
    let mut b = cer(CLIENT);
    b.avps.retain(|a| a.code != code);
    b
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0x100);

fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A valid CCR-I from the client, for the server's realm, with fresh identifiers.
fn ccr(session: &str) -> MessageBuilder {
    ccr_to(session, SERVER_REALM)
}

fn ccr_to(session: &str, realm: &str) -> MessageBuilder {
    let id = next_id();
    common::ccr(session, CLIENT, "client.realm", realm).ids(id, id)
}

struct Server {
    node: Node,
    addr: SocketAddr,
    handled: Arc<AtomicUsize>,
}

fn server_config() -> NodeConfig {
    let mut cfg = NodeConfig::new(SERVER, SERVER_REALM);
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    cfg
}

/// A server answering DCCA with 2001 after `delay`, counting handler runs.
async fn start(cfg: NodeConfig, delay: Duration) -> Server {
    let node = Node::start(cfg).await.unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    node.register(DCCA, counting_handler(handled.clone(), delay));
    let addr = node.listen_addrs()[0];
    Server {
        node,
        addr,
        handled,
    }
}

async fn server() -> Server {
    start(server_config(), Duration::ZERO).await
}

/// Opens a connection as `host` with a good CER and checks the CEA.
async fn open(addr: SocketAddr, host: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.send(&cer(host)).await;
    let cea = c.recv().await;
    assert_eq!(cea.header().command_code, base::CMD_CAPABILITIES_EXCHANGE);
    assert!(!cea.header().is_request());
    assert_eq!(rc(&cea), 2001, "CEA refused");
    c
}

/// Sends `req` and returns its answer, checking the Hop-by-Hop/End-to-End match.
async fn ask(c: &mut Raw, req: &MessageBuilder) -> Message {
    c.send(req).await;
    let a = c.recv().await;
    assert!(!a.header().is_request());
    assert_eq!(a.header().hop_by_hop, req.hop_by_hop);
    assert_eq!(a.header().end_to_end, req.end_to_end);
    a
}

/// The connection still works: a fresh request is answered 2001.
async fn still_usable(c: &mut Raw, tag: &str) {
    let a = ask(c, &ccr(&format!("s;usable;{tag}"))).await;
    assert_eq!(rc(&a), 2001, "connection no longer usable after {tag}");
}

async fn stop(node: &Node) {
    node.shutdown(Duration::from_millis(500)).await;
}

// ---------------------------------------------------------------- bad-inputs 29: first message

#[tokio::test]
async fn first_message_not_cer_closes_without_answer() {
    let s = server().await;
    // DWR first.
    let dwr = MessageBuilder::request(base::CMD_DEVICE_WATCHDOG, 0, false)
        .ids(1, 1)
        .with(base::ORIGIN_HOST.with(CLIENT))
        .with(base::ORIGIN_REALM.with("client.realm"));
    // An application request first.
    let ccr = ccr("s;first");
    // An answer first (a CEA nobody asked for).
    let mut cea = MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false).ids(2, 2);
    cea.flags = CommandFlags(0);
    cea.push(base::RESULT_CODE.with(2001u32));
    cea.push(base::ORIGIN_HOST.with(CLIENT));
    cea.push(base::ORIGIN_REALM.with("client.realm"));
    // And a CCA.
    let mut cca = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, DCCA, true).ids(3, 3);
    cca.flags = CommandFlags(CommandFlags::PROXIABLE);
    cca.push(base::SESSION_ID.with("s;cca"));
    cca.push(base::RESULT_CODE.with(2001u32));
    for (what, m) in [("DWR", dwr), ("CCR", ccr), ("CEA", cea), ("CCA", cca)] {
        let mut c = Raw::connect(s.addr).await;
        c.send(&m).await;
        match c.read(T).await {
            Read::Closed => {}
            other => panic!("{what} first: expected close without answer, got {other:?}"),
        }
    }
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    assert!(!s.node.is_peer_available(CLIENT));
    stop(&s.node).await;
}

#[tokio::test]
async fn no_cer_within_handshake_timeout_closes() {
    let mut cfg = server_config();
    cfg.cer_timeout = Duration::from_millis(300);
    let s = start(cfg, Duration::ZERO).await;
    let t0 = Instant::now();
    let mut c = Raw::connect(s.addr).await;
    c.expect_closed(Duration::from_secs(3)).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "closed after {took:?}, handshake timeout 300 ms"
    );
    // Half a CER (a started frame that never completes) is closed too.
    let mut c = Raw::connect(s.addr).await;
    let bytes = cer(CLIENT).to_bytes();
    c.send_bytes(&bytes[..30]).await;
    c.expect_closed(Duration::from_secs(3)).await;
    stop(&s.node).await;
}

// ---------------------------------------------------------------- bad-inputs 30: CER contents

/// Sends `cer` on a new connection; returns the CEA, after checking the connection closes.
async fn refused_cer(addr: SocketAddr, cer: &MessageBuilder) -> Message {
    let mut c = Raw::connect(addr).await;
    c.send(cer).await;
    let cea = c.recv().await;
    assert_eq!(cea.header().command_code, base::CMD_CAPABILITIES_EXCHANGE);
    assert!(!cea.header().is_request());
    c.expect_closed(T).await;
    cea
}

#[tokio::test]
async fn cer_from_unknown_origin_host_gets_3010_then_close() {
    let s = server().await;
    let cea = refused_cer(s.addr, &cer("stranger.example")).await;
    assert_eq!(rc(&cea), 3010);
    // RFC 6733 §7.1.3: protocol errors carry the E bit.
    assert!(cea.header().flags.is_error());
    assert!(!s.node.is_peer_available("stranger.example"));
    // The configured client still gets in afterwards.
    let _c = open(s.addr, CLIENT).await;
    assert!(s.node.wait_peer(CLIENT, T).await);
    stop(&s.node).await;
}

#[tokio::test]
async fn cer_without_common_application_gets_5010_then_close() {
    let s = server().await;
    let mut b = cer_without(base::AUTH_APPLICATION_ID.code());
    b.push(base::AUTH_APPLICATION_ID.with(16_777_999u32));
    let cea = refused_cer(s.addr, &b).await;
    assert_eq!(rc(&cea), 5010);
    assert!(!s.node.is_peer_available(CLIENT));
    stop(&s.node).await;
}

#[tokio::test]
async fn cer_missing_mandatory_avps_gets_5005() {
    let s = server().await;
    for (name, code) in [
        ("Origin-Host", base::ORIGIN_HOST.code()),
        ("Origin-Realm", base::ORIGIN_REALM.code()),
        ("Host-IP-Address", base::HOST_IP_ADDRESS.code()),
        ("Vendor-Id", base::VENDOR_ID.code()),
        ("Product-Name", base::PRODUCT_NAME.code()),
    ] {
        let cea = refused_cer(s.addr, &cer_without(code)).await;
        assert_eq!(rc(&cea), 5005, "CER without {name}");
        // RFC 6733 §7.1.5: Failed-AVP names what is missing.
        let failed = cea
            .find(base::FAILED_AVP.key())
            .unwrap_or_else(|| panic!("5005 for missing {name} has no Failed-AVP"));
        let inner: Vec<u32> = failed.children().flatten().map(|c| c.code).collect();
        assert_eq!(inner, vec![code], "Failed-AVP for missing {name}");
    }
    assert!(!s.node.is_peer_available(CLIENT));
    stop(&s.node).await;
}

#[tokio::test]
async fn cer_with_two_origin_hosts_gets_5009() {
    let s = server().await;
    let mut b = cer(CLIENT);
    b.avps.insert(1, base::ORIGIN_HOST.with("other.example"));
    let cea = refused_cer(s.addr, &b).await;
    assert_eq!(rc(&cea), 5009);
    stop(&s.node).await;
}

#[tokio::test]
async fn cer_header_and_security_checks() {
    let s = server().await;
    // bad-inputs 33: CER with the P bit → 3008 (CER is never proxiable).
    let mut p = cer(CLIENT);
    p.flags = p.flags.with(CommandFlags::PROXIABLE, true);
    let cea = refused_cer(s.addr, &p).await;
    assert_eq!(rc(&cea), 3008);
    assert!(cea.header().flags.is_error());
    // bad-inputs 30: Inband-Security-Id TLS (1) against a node that offers none → 5017.
    let mut sec = cer(CLIENT);
    sec.push(base::INBAND_SECURITY_ID.with(1u32));
    let cea = refused_cer(s.addr, &sec).await;
    assert_eq!(rc(&cea), 5017);
    stop(&s.node).await;
}

#[tokio::test]
async fn cer_vendor_in_vsai_ignored_and_relay_accepted() {
    let s = server().await;
    // The application inside a Vendor-Specific-Application-Id with a foreign vendor still
    // matches (RFC 6733 §6.11: the vendor does not influence the match).
    let mut b = cer_without(base::AUTH_APPLICATION_ID.code());
    b.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(5535u32),
        base::AUTH_APPLICATION_ID.with(DCCA),
    ]));
    let mut c = Raw::connect(s.addr).await;
    c.send(&b).await;
    assert_eq!(rc(&c.recv().await), 2001);
    still_usable(&mut c, "VSAI CER").await;
    // A relay (application 0xffffffff) has everything in common. Another server: a
    // reconnection of the same peer would start in watchdog REOPEN (three DWAs first).
    let s2 = server().await;
    let mut b = cer_without(base::AUTH_APPLICATION_ID.code());
    b.push(base::AUTH_APPLICATION_ID.with(RELAY_APPLICATION_ID));
    let mut c = Raw::connect(s2.addr).await;
    c.send(&b).await;
    assert_eq!(rc(&c.recv().await), 2001);
    still_usable(&mut c, "relay CER").await;
    stop(&s.node).await;
    stop(&s2.node).await;
}

// ---------------------------------------------------------------- bad-inputs 31: second CER

#[tokio::test]
async fn second_cer_on_open_connection_is_refused_and_closed() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await;
    assert!(s.node.wait_peer(CLIENT, T).await);
    c.send(&cer(CLIENT).ids(0x3000, 0x4000)).await;
    let a = c.recv().await;
    assert_eq!(a.header().command_code, base::CMD_CAPABILITIES_EXCHANGE);
    assert!(!a.header().is_request());
    assert_eq!(a.header().hop_by_hop, 0x3000);
    // The node's policy: 5012 DIAMETER_UNABLE_TO_COMPLY, then close.
    assert_eq!(rc(&a), 5012);
    c.expect_closed(T).await;
    let t0 = Instant::now();
    while s.node.is_peer_available(CLIENT) && t0.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!s.node.is_peer_available(CLIENT));
    stop(&s.node).await;
}

// ---------------------------------------------------------------- bad-inputs 33, 34: header, commands

#[tokio::test]
async fn request_with_e_bit_gets_3008() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await;
    let mut r = ccr("s;ebit");
    r.flags = r.flags.with(CommandFlags::ERROR, true);
    let a = ask(&mut c, &r).await;
    assert_eq!(rc(&a), 3008);
    assert!(a.header().flags.is_error());
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    still_usable(&mut c, "E bit").await;
    stop(&s.node).await;
}

#[tokio::test]
async fn unknown_command_gets_3001_and_unknown_application_3007() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await;
    let mut r = ccr("s;cmd");
    r.command_code = 0x00_7777;
    let a = ask(&mut c, &r).await;
    assert_eq!(rc(&a), 3001);
    assert!(a.header().flags.is_error());
    assert_eq!(a.header().command_code, 0x00_7777);
    let mut r = ccr("s;app");
    r.application_id = 16_777_999;
    r.avps
        .retain(|a| a.code != base::AUTH_APPLICATION_ID.code());
    r.push(base::AUTH_APPLICATION_ID.with(16_777_999u32));
    let a = ask(&mut c, &r).await;
    assert_eq!(rc(&a), 3007);
    assert!(a.header().flags.is_error());
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    still_usable(&mut c, "3001/3007").await;
    stop(&s.node).await;
}

// ---------------------------------------------------------------- bad-inputs 35: stray answers

#[tokio::test]
async fn answer_with_unknown_hop_by_hop_is_silently_discarded() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await;
    assert!(s.node.wait_peer(CLIENT, T).await);
    let mut cca = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, DCCA, true).ids(0xdead, 0xbeef);
    cca.flags = CommandFlags(CommandFlags::PROXIABLE);
    cca.push(base::SESSION_ID.with("s;stray"));
    cca.push(base::RESULT_CODE.with(2001u32));
    cca.push(base::ORIGIN_HOST.with(CLIENT));
    cca.push(base::ORIGIN_REALM.with("client.realm"));
    cca.push(base::AUTH_APPLICATION_ID.with(DCCA));
    cca.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
    cca.push(dcca::CC_REQUEST_NUMBER.with(0u32));
    c.send(&cca).await;
    // A duplicate of it, and a DWA nobody asked for (wrong identifiers: freeDiameter #15).
    c.send(&cca).await;
    let mut dwa = MessageBuilder::request(base::CMD_DEVICE_WATCHDOG, 0, false).ids(7, 7);
    dwa.flags = CommandFlags(0);
    dwa.push(base::RESULT_CODE.with(2001u32));
    dwa.push(base::ORIGIN_HOST.with(CLIENT));
    dwa.push(base::ORIGIN_REALM.with("client.realm"));
    c.send(&dwa).await;
    c.expect_silence(Duration::from_millis(300)).await;
    assert!(s.node.is_peer_available(CLIENT));
    assert_eq!(s.node.pending(), 0);
    still_usable(&mut c, "stray answers").await;
    stop(&s.node).await;
}

// ---------------------------------------------------------------- bad-inputs 37: routing at an agent

async fn agent() -> (Node, SocketAddr) {
    let mut cfg = NodeConfig::new("agent.example", "agent.realm");
    cfg.local.applications.push(Application::relay());
    cfg.agent = true;
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    // A configured next hop that never comes up.
    let mut next = PeerSpec::connect_tcp("backend.example", "127.0.0.1:9".parse().unwrap());
    next.timers = Timers {
        tc: Duration::from_secs(30),
        ..Timers::default()
    };
    cfg.peers.push(next);
    cfg.routes
        .push(relay_route("server.realm", None, &["backend.example"]));
    let node = Node::start(cfg).await.unwrap();
    let addr = node.listen_addrs()[0];
    (node, addr)
}

#[tokio::test]
async fn agent_routing_errors() {
    let (node, addr) = agent().await;
    let mut c = open(addr, CLIENT).await;
    // Route-Record with the agent's identity (any case): a loop → 3005.
    let mut r = ccr_to("s;loop", "server.realm");
    r.push(base::ROUTE_RECORD.with("somewhere.example"));
    r.push(base::ROUTE_RECORD.with("AGENT.example"));
    let a = ask(&mut c, &r).await;
    assert_eq!(rc(&a), 3005);
    assert!(a.header().flags.is_error());
    // Destination-Host without Destination-Realm → 3002.
    let mut r = ccr_to("s;nohost", "server.realm");
    r.avps.retain(|a| a.code != base::DESTINATION_REALM.code());
    r.push(base::DESTINATION_HOST.with("srv.server.realm"));
    let a = ask(&mut c, &r).await;
    assert_eq!(rc(&a), 3002);
    assert!(a.header().flags.is_error());
    // A realm nobody serves → 3003.
    let a = ask(&mut c, &ccr_to("s;realm", "nowhere.example")).await;
    assert_eq!(rc(&a), 3003);
    assert!(a.header().flags.is_error());
    // A served realm whose only peer is down → 3002 (nothing left pending).
    let a = ask(&mut c, &ccr_to("s;down", "server.realm")).await;
    assert_eq!(rc(&a), 3002);
    assert!(a.header().flags.is_error());
    // Destination-Host = the configured peer that is down → 3002 (pinned).
    let mut r = ccr_to("s;pinned", "server.realm");
    r.push(base::DESTINATION_HOST.with("backend.example"));
    let a = ask(&mut c, &r).await;
    assert_eq!(rc(&a), 3002);
    assert!(a.header().flags.is_error());
    assert_eq!(node.pending(), 0);
    // Error-Reporting-Host / Origin-Host name the agent.
    assert_eq!(
        a.get(base::ORIGIN_HOST).and_then(Result::ok),
        Some("agent.example")
    );
    stop(&node).await;
}

// ---------------------------------------------------------------- bad-inputs 38: duplicates

/// The answer bytes without the Hop-by-Hop Identifier.
fn without_hbh(m: &Message) -> Bytes {
    let mut b = BytesMut::from(&m.as_bytes()[..]);
    b[12..16].copy_from_slice(&[0; 4]);
    b.freeze()
}

#[tokio::test]
async fn duplicate_request_before_and_after_answer_runs_handler_once() {
    let s = start(server_config(), Duration::from_millis(300)).await;
    let mut c = open(s.addr, CLIENT).await;
    let orig = ccr("s;dup").ids(0x5000, 0x7777);
    // A retransmission (T bit, new Hop-by-Hop) while the original is being handled.
    let mut dup1 = orig.clone().ids(0x5001, 0x7777);
    dup1.flags = dup1.flags.with(CommandFlags::RETRANSMIT, true);
    c.send(&orig).await;
    c.send(&dup1).await;
    let (a, b) = (c.recv().await, c.recv().await);
    let mut got = [a, b];
    got.sort_by_key(|m| m.header().hop_by_hop);
    assert_eq!(got[0].header().hop_by_hop, 0x5000);
    assert_eq!(got[1].header().hop_by_hop, 0x5001);
    assert_eq!(rc(&got[0]), 2001);
    assert_eq!(without_hbh(&got[0]), without_hbh(&got[1]));
    // After the answer: with the T bit and without it.
    let mut dup2 = orig.clone().ids(0x5002, 0x7777);
    dup2.flags = dup2.flags.with(CommandFlags::RETRANSMIT, true);
    let a2 = ask(&mut c, &dup2).await;
    let a3 = ask(&mut c, &orig.clone().ids(0x5003, 0x7777)).await;
    assert_eq!(without_hbh(&a2), without_hbh(&got[0]));
    assert_eq!(without_hbh(&a3), without_hbh(&got[0]));
    assert_eq!(s.handled.load(Ordering::SeqCst), 1, "handler ran twice");
    stop(&s.node).await;
}

// ---------------------------------------------------------------- framing inside a connection

#[tokio::test]
async fn malformed_avp_length_gets_5014_and_connection_stays() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await;
    let r = ccr("s;avplen");
    let mut bytes = BytesMut::from(&r.to_bytes()[..]);
    // The first AVP (Session-Id) claims more bytes than the message holds; the frame itself
    // is delimited correctly by the header length.
    bytes[25..28].copy_from_slice(&[0x00, 0x0f, 0xff]);
    c.send_bytes(&bytes).await;
    let a = c.recv().await;
    assert!(!a.header().is_request());
    assert_eq!(a.header().hop_by_hop, r.hop_by_hop);
    assert_eq!(rc(&a), 5014);
    assert!(a.find(base::FAILED_AVP.key()).is_some());
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    still_usable(&mut c, "5014").await;
    assert!(s.node.is_peer_available(CLIENT));
    stop(&s.node).await;
}

#[tokio::test]
async fn malformed_avp_answer_carries_session_id_failed_avp_and_proxy_info() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await;
    let mut r = ccr("s;avplen;late");
    r.push(base::PROXY_INFO.with(vec![
        base::PROXY_HOST.with("proxy.example"),
        base::PROXY_STATE.with(&b"st"[..]),
    ]));
    r.push(base::USER_NAME.with("last"));
    let mut bytes = BytesMut::from(&r.to_bytes()[..]);
    // The last AVP (User-Name) claims more bytes than the message holds.
    let last = Message::from_bytes(bytes.clone().freeze())
        .unwrap()
        .avps()
        .flatten()
        .last()
        .unwrap()
        .offset;
    bytes[last + 5..last + 8].copy_from_slice(&[0x00, 0x0f, 0xff]);
    c.send_bytes(&bytes).await;
    let a = c.recv().await;
    assert_eq!(a.header().hop_by_hop, r.hop_by_hop);
    assert_eq!(rc(&a), 5014);
    // RFC 6733 §6.2: the request's Session-Id; §7.1.5: Failed-AVP with the offending AVP.
    assert_eq!(a.session_id(), Some("s;avplen;late"));
    let failed = a.find(base::FAILED_AVP.key()).expect("Failed-AVP");
    let inner: Vec<_> = failed.children().flatten().map(|c| c.code).collect();
    assert_eq!(inner, vec![base::USER_NAME.code()]);
    assert!(a.find(base::ERROR_MESSAGE.key()).is_some());
    assert_eq!(a.find_all(base::PROXY_INFO.key()).count(), 1);
    still_usable(&mut c, "5014 late").await;
    stop(&s.node).await;
}

#[tokio::test]
async fn bad_version_or_length_closes_connection() {
    let s = server().await;
    // Version 2 on an open connection.
    let mut c = open(s.addr, CLIENT).await;
    assert!(s.node.wait_peer(CLIENT, T).await);
    let mut bytes = BytesMut::from(&ccr("s;v2").to_bytes()[..]);
    bytes[0] = 2;
    c.send_bytes(&bytes).await;
    c.expect_closed(T).await;
    let t0 = Instant::now();
    while s.node.is_peer_available(CLIENT) && t0.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!s.node.is_peer_available(CLIENT));
    // Length not a multiple of 4 (the bytes are there, the framing is not).
    let mut c = open(s.addr, CLIENT).await;
    let mut bytes = BytesMut::from(&ccr("s;len").to_bytes()[..]);
    let len = bytes.len() + 2;
    bytes[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
    bytes.extend_from_slice(&[0, 0]);
    c.send_bytes(&bytes).await;
    c.expect_closed(T).await;
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    stop(&s.node).await;
}

// ---------------------------------------------------------------- bad-inputs 40: spoofing

#[tokio::test]
async fn direct_request_with_foreign_origin_host_is_refused() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await;
    let mut r = ccr("s;spoof");
    for a in &mut r.avps {
        if a.code == base::ORIGIN_HOST.code() {
            *a = base::ORIGIN_HOST.with("victim.example");
        }
    }
    let a = ask(&mut c, &r).await;
    // The node's rule: 5003 DIAMETER_AUTHORIZATION_REJECTED, handler not run.
    assert_eq!(rc(&a), 5003);
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    still_usable(&mut c, "spoofed Origin-Host").await;
    stop(&s.node).await;
}

// NODE-FIX-1: a peer that did not advertise the Relay application in its CER is not an agent,
// so it cannot forward requests: any request it sends must carry its own Origin-Host. Today
// the node skips the check as soon as the request has a Route-Record, so a plain client
// spoofs any Origin-Host by adding one Route-Record AVP (bad-inputs 40). Expected: 5003 and
// the handler not run.
#[tokio::test]
async fn spoofed_origin_host_behind_fake_route_record_from_non_relay_peer() {
    let s = server().await;
    let mut c = open(s.addr, CLIENT).await; // advertises DCCA only, not Relay
    let mut r = ccr("s;spoof-rr");
    for a in &mut r.avps {
        if a.code == base::ORIGIN_HOST.code() {
            *a = base::ORIGIN_HOST.with("victim.example");
        }
    }
    r.push(base::ROUTE_RECORD.with("relay.elsewhere.example"));
    let a = ask(&mut c, &r).await;
    assert_eq!(
        rc(&a),
        5003,
        "NODE-FIX-1: non-relay peer spoofed Origin-Host behind a Route-Record"
    );
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    stop(&s.node).await;
}

// ---------------------------------------------------------------- bad-inputs 43: floods

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_without_cer_does_not_lock_out_a_real_peer() {
    const FLOOD: usize = 300;
    const BOUND: usize = 32;
    let mut cfg = server_config();
    cfg.max_handshaking = BOUND;
    cfg.max_handshaking_per_source = BOUND;
    cfg.cer_timeout = Duration::from_secs(1);
    let s = start(cfg, Duration::ZERO).await;
    // 300 connections that never send a byte, each watching when the server drops it.
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(s.addr).await.expect("flood connect"));
    }
    let t0 = Instant::now();
    let watchers: Vec<_> = flood
        .into_iter()
        .map(|mut st| {
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                let r = tokio::time::timeout(Duration::from_secs(5), st.read(&mut b)).await;
                // Keep the socket open until the server closes it.
                let closed = matches!(r, Ok(Ok(0)) | Ok(Err(_)));
                (closed, t0.elapsed())
            })
        })
        .collect();
    // A real peer, retrying every 200 ms, opens within the handshake timeout plus slack.
    let mut ccfg = NodeConfig::new(CLIENT, "client.realm");
    ccfg.local.applications.push(Application::auth(DCCA));
    let mut p = PeerSpec::connect_tcp(SERVER, s.addr);
    p.timers = Timers {
        tc: Duration::from_millis(200),
        ..Timers::default()
    };
    ccfg.peers.push(p);
    ccfg.routes
        .push(relay_route(SERVER_REALM, Some(DCCA), &[SERVER]));
    let client = Node::start(ccfg).await.unwrap();
    assert!(
        client.wait_peer(SERVER, Duration::from_secs(4)).await,
        "a flood of {FLOOD} silent connections kept the real peer out"
    );
    let a = client.request(ccr("s;after-flood")).await.unwrap();
    assert_eq!(rc(&a), 2001);
    let mut fast = 0;
    let mut closed = 0;
    for w in watchers {
        let (c, at) = w.await.unwrap();
        if c {
            closed += 1;
            if at < Duration::from_millis(900) {
                fast += 1;
            }
        }
    }
    // Every flood connection was closed; those beyond the bound at once.
    assert_eq!(
        closed, FLOOD,
        "silent connections left open past the timeout"
    );
    assert!(
        fast >= FLOOD - BOUND - 8,
        "only {fast} of the connections beyond the bound of {BOUND} were refused at once"
    );
    stop(&client).await;
    stop(&s.node).await;
}
