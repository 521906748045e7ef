//! Memory a peer can make the node hold (issue 9): a peer that pipelines requests without
//! reading their answers, and large answers kept for duplicate detection. Scaled down from
//! the multi-GB reports: a few hundred MB of traffic, asserting on the bytes the node queues
//! and on the process's resident set.
//!
//! The tests of this binary measure the RSS of the whole process, so they take turns (a
//! lock) rather than run side by side.

use bytes::{Bytes, BytesMut};
use diameter_codec::dict::base;
use diameter_codec::{Message, MessageBuilder, ResultCode};
use diameter_node::node::{Node, NodeConfig, PeerSpec, RequestError, handler_fn, relay_route};
use diameter_node::peer::Application;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod common;
use common::{DCCA, any_addr, rc};

const CLIENT: &str = "client.example";
const SERVER: &str = "server.example";
const SERVER_REALM: &str = "example";
const MIB: usize = 1 << 20;

/// One test at a time: each measures the process's resident set.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resident set size of this process, in bytes (Linux /proc).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A request from the client carrying a Proxy-Info whose Proxy-State is `state` bytes long
/// (answers copy Proxy-Info, RFC 6733 §6.7.3, so they are as large).
fn big_ccr(session: &str, state: usize) -> MessageBuilder {
    let mut b = common::ccr(session, CLIENT, "client.realm", SERVER_REALM);
    b.push(base::PROXY_INFO.with(vec![
        base::PROXY_HOST.with("proxy.client.realm"),
        base::PROXY_STATE.with(Bytes::from(vec![0x5a; state])),
    ]));
    b
}

/// A server answering DCCA at once with 2001 (its answers echo Proxy-Info).
async fn echo_server(cfg: NodeConfig) -> Node {
    let node = Node::start(cfg).await.unwrap();
    node.register(
        DCCA,
        handler_fn(|req| async move { req.answer(ResultCode::DIAMETER_SUCCESS) }),
    );
    node
}

fn server_config() -> NodeConfig {
    let mut cfg = NodeConfig::new(SERVER, SERVER_REALM);
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    cfg
}

/// Reads one whole message, within `t`.
async fn read_msg(s: &mut TcpStream, t: Duration) -> Message {
    let mut hdr = [0u8; 20];
    tokio::time::timeout(t, s.read_exact(&mut hdr))
        .await
        .expect("message in time")
        .expect("read");
    let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
    let mut buf = BytesMut::zeroed(len);
    buf[..20].copy_from_slice(&hdr);
    tokio::time::timeout(t, s.read_exact(&mut buf[20..]))
        .await
        .expect("message body in time")
        .expect("read");
    Message::from_bytes(buf.freeze()).expect("server frames")
}

/// A raw client that opened with CER/CEA, with a small receive buffer so that what it does
/// not read stays queued in the server, not in the kernel.
async fn raw_open(addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(32 * 1024).unwrap();
    let mut s = sock.connect(addr).await.expect("connect");
    let cer = MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false)
        .ids(0x1000, 0x2000)
        .with(base::ORIGIN_HOST.with(CLIENT))
        .with(base::ORIGIN_REALM.with("client.realm"))
        .with(base::HOST_IP_ADDRESS.with(IpAddr::from([127, 0, 0, 1])))
        .with(base::VENDOR_ID.with(0u32))
        .with(base::PRODUCT_NAME.with("memory-test"))
        .with(base::AUTH_APPLICATION_ID.with(DCCA));
    s.write_all(&cer.to_bytes()).await.unwrap();
    let cea = read_msg(&mut s, Duration::from_secs(3)).await;
    assert_eq!(cea.header().command_code, base::CMD_CAPABILITIES_EXCHANGE);
    assert_eq!(rc(&cea), 2001);
    s
}

/// Issue 9 item 1: pipelining large requests without reading the answers. The node stops
/// reading once the connection's write queue is over its byte budget (TCP backpressure),
/// closes the connection when nothing drains for `write_stall_timeout`, and gives the
/// memory back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_stops_reading_cannot_grow_memory() {
    let _serial = SERIAL.lock().await;
    const STATE: usize = 60_000;
    const REQUESTS: usize = 3_000; // ≈ 180 MB of requests, as much again of answers
    const BUDGET: usize = MIB;
    const STALL: Duration = Duration::from_secs(2);
    let mut cfg = server_config();
    cfg.write_queue_bytes = BUDGET;
    cfg.write_stall_timeout = STALL;
    // The duplicate cache's own bound is another test's: keep it out of this one.
    cfg.dedup_capacity = 16;
    // Our own requests for the client's realm go to it.
    cfg.routes
        .push(relay_route("client.realm", Some(DCCA), &[CLIENT]));
    let node = echo_server(cfg).await;
    let addr = node.listen_addrs()[0];

    let template = big_ccr("s;pipeline", STATE).ids(1, 1).to_bytes();
    let len = template.len();
    let stream = raw_open(addr).await;
    assert!(node.wait_peer(CLIENT, Duration::from_secs(2)).await);
    let base_rss = rss();
    // Hold the read half (never read), pipeline on the write half.
    let (_rd, mut wr) = stream.into_split();
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let writer = tokio::spawn(async move {
        let mut buf = BytesMut::from(&template[..]);
        for i in 0..REQUESTS as u32 {
            buf[12..16].copy_from_slice(&(i + 10).to_be_bytes());
            buf[16..20].copy_from_slice(&(i + 10).to_be_bytes());
            wr.write_all(&buf).await?;
            w.fetch_add(len, Ordering::Relaxed);
        }
        Ok::<_, std::io::Error>(())
    });

    let t0 = Instant::now();
    let (mut max_queued, mut max_rss) = (0usize, base_rss);
    let mut ours = None;
    while !writer.is_finished() && t0.elapsed() < STALL + Duration::from_secs(8) {
        max_queued = max_queued.max(node.write_queue_bytes(CLIENT).unwrap_or(0));
        max_rss = max_rss.max(rss());
        if ours.is_none() && max_queued > BUDGET {
            // A request of ours for the stuck peer, once its queue is over budget.
            let req = common::ccr("s;ours", SERVER, SERVER_REALM, "client.realm");
            let n = node.clone();
            let t = Instant::now();
            ours = Some(tokio::spawn(async move {
                let r = n.request_with_timeout(req, Duration::from_secs(1)).await;
                (r, t.elapsed())
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = t0.elapsed();
    let outcome = writer.await.unwrap();
    let sent = written.load(Ordering::Relaxed);
    eprintln!(
        "request {len} B; client wrote {:.1} MB of {:.1} MB; most queued {:.2} MB; \
         RSS {:.1} -> peak {:.1} MB; ended after {ended:?}",
        sent as f64 / 1e6,
        (len * REQUESTS) as f64 / 1e6,
        max_queued as f64 / 1e6,
        base_rss as f64 / 1e6,
        max_rss as f64 / 1e6
    );
    // Backpressure: the peer could not push its whole pipeline into us…
    assert!(
        outcome.is_err(),
        "the node read all {REQUESTS} requests from a peer that reads nothing"
    );
    assert!(
        sent < len * REQUESTS / 4,
        "{sent} bytes of requests accepted from a peer that reads nothing"
    );
    // …what we queued stayed within the budget (plus the answer that crossed it)…
    assert!(
        max_queued <= BUDGET + 2 * len,
        "{max_queued} bytes queued for a budget of {BUDGET}"
    );
    assert!(
        max_rss < base_rss + 48 * MIB,
        "RSS grew by {} MB",
        (max_rss - base_rss) / MIB
    );
    // …our own request for the stuck peer was refused with 3004 at once, not queued…
    let (r, took) = ours.expect("queue over budget seen").await.unwrap();
    match r {
        Err(RequestError::Protocol { result_code, .. }) => {
            assert_eq!(result_code, ResultCode::DIAMETER_TOO_BUSY);
        }
        other => panic!("request towards the stuck peer: {other:?}"),
    }
    assert!(took < Duration::from_millis(500), "3004 after {took:?}");
    // …and the stuck connection was closed after the stall timeout, not before.
    assert!(
        ended >= STALL && ended < STALL + Duration::from_secs(6),
        "closed after {ended:?}"
    );
    let t1 = Instant::now();
    while node.write_queue_bytes(CLIENT).unwrap_or(0) > 0 && t1.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(node.write_queue_bytes(CLIENT).unwrap_or(0), 0);
    assert!(!node.is_peer_available(CLIENT));
    let after = rss();
    eprintln!("RSS after the close {:.1} MB", after as f64 / 1e6);
    assert!(
        after < base_rss + 24 * MIB,
        "RSS after the close {} MB above the baseline",
        (after.saturating_sub(base_rss)) / MIB
    );
    node.shutdown(Duration::from_millis(200)).await;
}

/// The same peer, reading again after a pause, gets every answer: backpressure holds
/// answers back, it never drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_holds_answers_without_dropping_them() {
    let _serial = SERIAL.lock().await;
    const STATE: usize = 30_000;
    const REQUESTS: usize = 400; // ≈ 12 MB each way, 12 times the budget
    let mut cfg = server_config();
    cfg.write_queue_bytes = MIB;
    cfg.write_stall_timeout = Duration::from_secs(5);
    let node = echo_server(cfg).await;
    let stream = raw_open(node.listen_addrs()[0]).await;
    let (mut rd, mut wr) = stream.into_split();
    let template = big_ccr("s;paused", STATE).ids(1, 1).to_bytes();
    let writer = tokio::spawn(async move {
        let mut buf = BytesMut::from(&template[..]);
        for i in 0..REQUESTS as u32 {
            buf[12..16].copy_from_slice(&(i + 10).to_be_bytes());
            buf[16..20].copy_from_slice(&(i + 10).to_be_bytes());
            wr.write_all(&buf).await?;
        }
        Ok::<_, std::io::Error>(wr)
    });
    // Not reading for a while: the node holds what it queued within the budget.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let queued = node.write_queue_bytes(CLIENT).unwrap_or(0);
    assert!(queued <= MIB + 2 * 31_000, "{queued} bytes queued");
    assert!(!writer.is_finished(), "the node read every request unread");
    // Reading again: every answer arrives, in order, each exactly once.
    let mut seen = 0u32;
    let t0 = Instant::now();
    while (seen as usize) < REQUESTS {
        let mut hdr = [0u8; 20];
        tokio::time::timeout(Duration::from_secs(5), rd.read_exact(&mut hdr))
            .await
            .expect("answers keep coming")
            .expect("connection stays open");
        let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
        let mut body = vec![0u8; len - 20];
        rd.read_exact(&mut body).await.unwrap();
        if hdr[4] & 0x80 != 0 {
            continue; // a DWR; nothing here depends on answering it
        }
        let hbh = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        assert_eq!(hbh, seen + 10, "answers in order, none lost");
        seen += 1;
    }
    assert!(t0.elapsed() < Duration::from_secs(20));
    // (Dropping the write half would close the connection: keep it.)
    let _wr = writer.await.unwrap().expect("every request written");
    assert!(node.is_peer_available(CLIENT));
    node.shutdown(Duration::from_millis(200)).await;
}

/// Issue 9 item 2: the duplicate cache keeps whole answers; its byte budget bounds what
/// large answers read normally can make it hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_cache_is_bounded_in_bytes() {
    let _serial = SERIAL.lock().await;
    const STATE: usize = 60_000;
    const REQUESTS: usize = 2_000; // ≈ 120 MB of answers within the duplicate window
    const IN_FLIGHT: usize = 8;
    let mut cfg = server_config();
    cfg.dedup_max_bytes = 4 * MIB;
    let server = echo_server(cfg).await;

    let mut ccfg = NodeConfig::new(CLIENT, "client.realm");
    ccfg.local.applications.push(Application::auth(DCCA));
    ccfg.peers
        .push(PeerSpec::connect_tcp(SERVER, server.listen_addrs()[0]));
    ccfg.routes
        .push(relay_route(SERVER_REALM, Some(DCCA), &[SERVER]));
    let client = Node::start(ccfg).await.unwrap();
    assert!(client.wait_peer(SERVER, Duration::from_secs(3)).await);
    // Warm up the path (buffers, tables) before the baseline.
    for i in 0..IN_FLIGHT {
        let a = client.request(big_ccr(&format!("s;warm;{i}"), STATE)).await;
        assert_eq!(rc(&a.unwrap()), 2001);
    }
    let base_rss = rss();
    let mut max_rss = base_rss;
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= REQUESTS {
                        return;
                    }
                    let a = client.request(big_ccr(&format!("s;dup;{i}"), STATE)).await;
                    assert_eq!(rc(&a.unwrap()), 2001);
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    while workers.iter().any(|w| !w.is_finished()) {
        assert!(t0.elapsed() < Duration::from_secs(60), "requests too slow");
        max_rss = max_rss.max(rss());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in workers {
        w.await.unwrap();
    }
    let end_rss = rss();
    eprintln!(
        "{REQUESTS} answers of {STATE} B in {:?}: RSS {:.1} -> peak {:.1}, end {:.1} MB",
        t0.elapsed(),
        base_rss as f64 / 1e6,
        max_rss as f64 / 1e6,
        end_rss as f64 / 1e6
    );
    // Unbounded, the cache alone would hold ≈ 120 MB here.
    assert!(
        end_rss < base_rss + 40 * MIB,
        "RSS grew by {} MB",
        (end_rss - base_rss) / MIB
    );
    client.shutdown(Duration::from_millis(200)).await;
    server.shutdown(Duration::from_millis(200)).await;
}
