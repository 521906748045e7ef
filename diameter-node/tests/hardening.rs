//! Issue 9 hardening: clean shutdown, handler panics, and messages larger than a peer
//! accepts. Nodes over loopback TCP.

use bytes::{BufMut, BytesMut};
use diameter_codec::dict::base;
use diameter_codec::{
    AvpValue, CommandFlags, Limits, Message, MessageBuilder, OwnedAvp, ResultCode,
};
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

// ------------------------------------------------------------------ item 6: sizes

/// A server for `clients` whose handler answers 2001, with `pad` bytes of Class in the
/// answer when the Session-Id contains "big".
async fn padding_server(host: &str, clients: &[&str], pad: usize, limits: Limits) -> Node {
    let mut cfg = server_config(host, any_addr());
    cfg.peers.clear();
    for c in clients {
        cfg.peers.push(PeerSpec::accept_only(*c));
    }
    cfg.limits = limits;
    let srv = Node::start(cfg).await.unwrap();
    srv.register(
        DCCA,
        handler_fn(move |req| {
            let big = req.msg.session_id().is_some_and(|s| s.contains("big"));
            async move {
                let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
                if big {
                    a.push(base::CLASS.with(vec![0x5a; pad]));
                }
                a
            }
        }),
    );
    srv
}

/// Proxy-Info nested `depth` deep (each level a Proxy-Info holding the next), built as raw
/// bytes: no recursion in the encoder.
fn nested_proxy_info(depth: usize) -> OwnedAvp {
    let mut inner = BytesMut::new();
    // Proxy-Host "p.example" (9 bytes, padded to 20) and Proxy-State "s" (padded to 12).
    inner.put_u32(280);
    inner.put_u32(0x4000_0000 | 17);
    inner.put_slice(b"p.example\0\0\0");
    inner.put_u32(33);
    inner.put_u32(0x4000_0000 | 9);
    inner.put_slice(b"s\0\0\0");
    for _ in 0..depth {
        let mut outer = BytesMut::with_capacity(inner.len() + 8);
        outer.put_u32(284);
        outer.put_u32(0x4000_0000 | (inner.len() as u32 + 8));
        outer.put_slice(&inner);
        inner = outer;
    }
    OwnedAvp::new(284, 0, 0x40, AvpValue::Verbatim(inner.freeze()))
}

#[tokio::test]
async fn proxy_info_is_bounded_and_answers_stay_small() {
    let srv = padding_server("pi.example", &[CLIENT], 0, Limits::DEFAULT).await;
    let cli = client_of("pi.example", srv.listen_addrs()[0]).await;
    // Nested 8,100 deep: a request just under 64 KiB. Today's answer would carry it twice
    // (Failed-AVP and the Proxy-Info copy) and break the connection.
    let mut deep = ccr("s;deep");
    deep.push(nested_proxy_info(8_100));
    let len = deep.to_bytes().len();
    assert!(len > 60_000 && len <= 65_532, "{len}");
    let a = cli.request(deep).await.unwrap();
    assert_eq!(rc(&a), 5012);
    assert!(
        a.as_bytes().len() < 1024,
        "answer of {} bytes",
        a.as_bytes().len()
    );
    assert_eq!(a.find_all(base::PROXY_INFO.key()).count(), 0);
    assert_eq!(a.session_id(), Some("s;deep"));
    // 17 side by side: refused too; 16 are copied back in order (RFC 6733 §6.2).
    for (n, want) in [(17, 5012), (16, 2001)] {
        let mut many = ccr(&format!("s;many;{n}"));
        for i in 0..n {
            many.push(base::PROXY_INFO.with(vec![
                base::PROXY_HOST.with(format!("p{i}.example")),
                base::PROXY_STATE.with(&b"st"[..]),
            ]));
        }
        let a = cli.request(many).await.unwrap();
        assert_eq!(rc(&a), want, "{n} Proxy-Info");
        let copied = if want == 2001 { n } else { 0 };
        assert_eq!(a.find_all(base::PROXY_INFO.key()).count(), copied);
    }
    // The connection carried all of it.
    assert!(cli.is_peer_available("pi.example"));
    assert_eq!(rc(&cli.request(ccr("s;after")).await.unwrap()), 2001);
    cli.shutdown(Duration::from_millis(500)).await;
    srv.shutdown(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn answer_above_the_limit_is_replaced_by_a_small_5012() {
    // The handler's answer would be 70 KB: more than the client accepts.
    let srv = padding_server("big.example", &[CLIENT], 70_000, Limits::DEFAULT).await;
    let cli = client_of("big.example", srv.listen_addrs()[0]).await;
    let a = cli.request(ccr("s;big")).await.unwrap();
    assert_eq!(rc(&a), 5012);
    assert_eq!(a.session_id(), Some("s;big"));
    assert!(a.as_bytes().len() < 1024);
    assert!(cli.is_peer_available("big.example"));
    assert_eq!(rc(&cli.request(ccr("s;small")).await.unwrap()), 2001);
    cli.shutdown(Duration::from_millis(500)).await;
    srv.shutdown(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn oversize_answer_through_a_relay_fails_one_request_not_the_connection() {
    // The server takes and sends up to 1 MiB; the relay, 64 KiB. A 100 KB answer reaches
    // the relay above its limit.
    let limits = Limits {
        max_message_len: 1 << 20,
        ..Limits::DEFAULT
    };
    let srv = padding_server("up.example", &["relay.example"], 100_000, limits).await;
    let mut rcfg = NodeConfig::new("relay.example", "relay.example");
    rcfg.local.applications.push(Application::relay());
    rcfg.agent = true;
    rcfg.listen.push(any_addr().into());
    rcfg.peers.push(PeerSpec::accept_only(CLIENT));
    rcfg.peers
        .push(PeerSpec::connect_tcp("up.example", srv.listen_addrs()[0]));
    rcfg.routes
        .push(relay_route("server.example", None, &["up.example"]));
    let relay = Node::start(rcfg).await.unwrap();
    assert!(relay.wait_peer("up.example", Duration::from_secs(5)).await);
    let cli = client_of("relay.example", relay.listen_addrs()[0]).await;
    // Requests of other clients in flight on the same relay→server connection.
    let others: Vec<_> = (0..20)
        .map(|i| {
            let cli = cli.clone();
            tokio::spawn(async move { cli.request(ccr(&format!("s;other;{i}"))).await })
        })
        .collect();
    let a = cli.request(ccr("s;big")).await.unwrap();
    assert_eq!(rc(&a), 5012);
    assert!(a.as_bytes().len() < 1024);
    for o in others {
        assert_eq!(rc(&o.await.unwrap().unwrap()), 2001);
    }
    // The relay→server connection never went down.
    assert!(relay.is_peer_available("up.example"));
    assert_eq!(rc(&cli.request(ccr("s;next")).await.unwrap()), 2001);
    assert_eq!(relay.pending(), 0);
    cli.shutdown(Duration::from_millis(500)).await;
    relay.shutdown(Duration::from_millis(500)).await;
    srv.shutdown(Duration::from_millis(500)).await;
}

/// A CER from [`CLIENT`] as a raw client sends it, with `extra` AVPs.
fn raw_cer(extra: Vec<OwnedAvp>) -> MessageBuilder {
    let mut cer = MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false).ids(1, 1);
    cer.push(base::ORIGIN_HOST.with(CLIENT));
    cer.push(base::ORIGIN_REALM.with("client.example"));
    cer.push(base::HOST_IP_ADDRESS.with(std::net::IpAddr::from([127, 0, 0, 1])));
    cer.push(base::VENDOR_ID.with(0u32));
    cer.push(base::PRODUCT_NAME.with("raw"));
    cer.push(base::AUTH_APPLICATION_ID.with(DCCA));
    for a in extra {
        cer.push(a);
    }
    cer
}

/// The next message on a raw connection, other than DWRs (answered), checking that it is
/// below `max` bytes.
async fn read_msg(s: &mut tokio::net::TcpStream, max: usize) -> Message {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut hdr = [0u8; 20];
        tokio::time::timeout(T, s.read_exact(&mut hdr))
            .await
            .expect("a message in time")
            .expect("connection open");
        let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
        assert!(len < max, "message of {len} bytes");
        let mut buf = hdr.to_vec();
        buf.resize(len, 0);
        s.read_exact(&mut buf[20..]).await.unwrap();
        let m = Message::from_bytes(buf).unwrap();
        if m.header().is_request() && m.header().command_code == base::CMD_DEVICE_WATCHDOG {
            let mut dwa = MessageBuilder::answer_to(
                &m,
                &diameter_codec::LocalIdentity::new(CLIENT, "client.example"),
            );
            dwa.result_code(ResultCode::DIAMETER_SUCCESS);
            s.write_all(&dwa.to_bytes()).await.unwrap();
            continue;
        }
        return m;
    }
}

#[tokio::test]
async fn cea_refusing_a_huge_cer_stays_small() {
    use tokio::io::AsyncWriteExt;
    let srv = padding_server("cer.example", &[CLIENT], 0, Limits::DEFAULT).await;
    // A CER whose Proxy-Info nests too deep: the refusal would copy it twice (Failed-AVP
    // and Proxy-Info), twice the size the peer accepts.
    let cer = raw_cer(vec![nested_proxy_info(8_000)]);
    let mut s = tokio::net::TcpStream::connect(srv.listen_addrs()[0])
        .await
        .unwrap();
    s.write_all(&cer.to_bytes()).await.unwrap();
    let cea = read_msg(&mut s, 1024).await;
    assert_eq!(cea.header().command_code, base::CMD_CAPABILITIES_EXCHANGE);
    assert_eq!(rc(&cea), 5012);
    srv.shutdown(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn oversize_request_is_answered_5012_and_the_connection_stays() {
    use tokio::io::AsyncWriteExt;
    let srv = padding_server("raw.example", &[CLIENT], 0, Limits::DEFAULT).await;
    let mut s = tokio::net::TcpStream::connect(srv.listen_addrs()[0])
        .await
        .unwrap();
    s.write_all(&raw_cer(vec![]).to_bytes()).await.unwrap();
    assert_eq!(rc(&read_msg(&mut s, 1024).await), 2001);
    // 70 KB: above the 64 KiB the server takes. Sent in pieces, none of it kept.
    let mut big = ccr("s;huge").ids(0x51, 0x51);
    big.push(base::CLASS.with(vec![0x5a; 70_000]));
    let big = big.to_bytes();
    for chunk in big.chunks(8192) {
        s.write_all(chunk).await.unwrap();
    }
    let a = read_msg(&mut s, 1024).await;
    assert_eq!((a.header().hop_by_hop, a.header().end_to_end), (0x51, 0x51));
    assert_eq!(rc(&a), 5012);
    // The stream is still in sync: the next request is answered.
    s.write_all(&ccr("s;normal").ids(0x52, 0x52).to_bytes())
        .await
        .unwrap();
    let a = read_msg(&mut s, 1024).await;
    assert_eq!(a.header().hop_by_hop, 0x52);
    assert_eq!(rc(&a), 2001);
    srv.shutdown(Duration::from_millis(500)).await;
}
