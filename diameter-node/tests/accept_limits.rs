//! Connections that never send a CER (issue 9 item 3, bad-inputs 43): one source cannot hold
//! the pool of handshaking connections, a configured peer's known address gets in even when
//! the pool is full, and the pre-CER deadline is short.
//!
//! Clients bind other loopback addresses (127.0.0.2, 127.0.0.3: all of 127/8 is local on
//! Linux) to come from a different source than the attacker's 127.0.0.1.

use diameter_codec::dict::base;
use diameter_codec::{Message, MessageBuilder};
use diameter_node::node::{Node, NodeConfig, PeerSpec};
use diameter_node::peer::Application;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod common;
use common::{DCCA, any_addr, rc};

const CLIENT: &str = "client.example";
const SERVER: &str = "server.example";
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const PEER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const OTHER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(from, 0))?;
    sock.connect(to).await
}

fn cer() -> MessageBuilder {
    MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false)
        .ids(0x1000, 0x2000)
        .with(base::ORIGIN_HOST.with(CLIENT))
        .with(base::ORIGIN_REALM.with("client.realm"))
        .with(base::HOST_IP_ADDRESS.with(PEER_ADDR))
        .with(base::VENDOR_ID.with(0u32))
        .with(base::PRODUCT_NAME.with("accept-test"))
        .with(base::AUTH_APPLICATION_ID.with(DCCA))
}

/// Connects from `from`, sends a CER and returns the CEA (None when the connection is closed
/// or nothing arrives within `t`).
async fn cer_from(from: IpAddr, to: SocketAddr, t: Duration) -> Option<Message> {
    let mut s = connect_from(from, to).await.ok()?;
    s.write_all(&cer().to_bytes()).await.ok()?;
    let mut hdr = [0u8; 20];
    tokio::time::timeout(t, s.read_exact(&mut hdr))
        .await
        .ok()?
        .ok()?;
    let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
    let mut buf = vec![0u8; len];
    buf[..20].copy_from_slice(&hdr);
    tokio::time::timeout(t, s.read_exact(&mut buf[20..]))
        .await
        .ok()?
        .ok()?;
    Message::from_bytes(bytes::Bytes::from(buf)).ok()
}

/// What an attacker that keeps `n` silent connections from `from` saw: how many it opened,
/// and how many the server closed within 200 ms.
#[derive(Default)]
struct Flood {
    opened: AtomicUsize,
    closed_at_once: AtomicUsize,
    stop: AtomicBool,
}

/// Keeps `n` silent connections open from `from`, opening a new one whenever one is closed
/// (as the report's attacker did).
fn flood(from: IpAddr, to: SocketAddr, n: usize) -> (Arc<Flood>, Vec<tokio::task::JoinHandle<()>>) {
    let f = Arc::new(Flood::default());
    let tasks = (0..n)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                while !f.stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect_from(from, to).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    f.opened.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let mut b = [0u8; 1];
                    // Silent until the server closes it (or the test ends).
                    loop {
                        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await
                        {
                            Ok(_) => break, // EOF, reset (or a stray byte): closed
                            Err(_) if f.stop.load(Ordering::Relaxed) => return,
                            Err(_) => {}
                        }
                    }
                    if t0.elapsed() < Duration::from_millis(200) {
                        f.closed_at_once.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    (f, tasks)
}

async fn end(f: &Flood, tasks: Vec<tokio::task::JoinHandle<()>>) {
    f.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
}

fn server_config(peer: PeerSpec) -> NodeConfig {
    let mut cfg = NodeConfig::new(SERVER, "example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    cfg.peers.push(peer);
    cfg
}

/// One source filling the whole anonymous pool (its per-source limit set above the pool)
/// does not keep out a configured peer connecting from its known address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_peer_address_gets_in_while_the_pool_is_full() {
    const POOL: usize = 16;
    let mut peer = PeerSpec::accept_only(CLIENT);
    peer.addresses = vec![PEER_ADDR];
    let mut cfg = server_config(peer);
    cfg.max_handshaking = POOL;
    cfg.max_handshaking_per_source = 4 * POOL;
    cfg.cer_timeout = Duration::from_secs(10);
    let node = Node::start(cfg).await.unwrap();
    let addr = node.listen_addrs()[0];
    let (f, tasks) = flood(ATTACKER, addr, POOL + 8);
    // Let the flood fill the pool: the connections beyond it are closed at once.
    let t0 = Instant::now();
    while f.closed_at_once.load(Ordering::Relaxed) < 8 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the pool never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t1 = Instant::now();
    let cea = cer_from(PEER_ADDR, addr, Duration::from_secs(2)).await;
    let took = t1.elapsed();
    let held = f.opened.load(Ordering::Relaxed);
    end(&f, tasks).await;
    let cea = cea.expect("the configured peer got no CEA while the pool was full");
    assert_eq!(rc(&cea), 2001);
    assert!(took < Duration::from_secs(2), "CEA after {took:?}");
    assert!(held > POOL, "the attacker held {held} connections");
    node.shutdown(Duration::from_millis(200)).await;
}

/// With the default per-source limit, one source cannot hold the anonymous pool: a peer
/// without a configured address still gets in from elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_hold_the_pool() {
    // Larger than the default per-source limit (32), smaller than the default pool (256).
    const POOL: usize = 64;
    let mut cfg = server_config(PeerSpec::accept_only(CLIENT));
    cfg.max_handshaking = POOL;
    cfg.cer_timeout = Duration::from_secs(10);
    let per_source = cfg.max_handshaking_per_source;
    assert!(per_source < POOL, "default per-source limit {per_source}");
    let node = Node::start(cfg).await.unwrap();
    let addr = node.listen_addrs()[0];
    let (f, tasks) = flood(ATTACKER, addr, 2 * POOL);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t1 = Instant::now();
    let cea = cer_from(OTHER_ADDR, addr, Duration::from_secs(2)).await;
    let took = t1.elapsed();
    let refused = f.closed_at_once.load(Ordering::Relaxed);
    end(&f, tasks).await;
    let cea = cea.expect("a peer from another address got no CEA");
    assert_eq!(rc(&cea), 2001);
    assert!(took < Duration::from_secs(2), "CEA after {took:?}");
    // All but the per-source allowance of the attacker's connections were refused at once.
    assert!(
        refused >= 2 * POOL - per_source,
        "only {refused} of the attacker's connections refused at once"
    );
    node.shutdown(Duration::from_millis(200)).await;
}

/// A connection that sends nothing is closed after the default pre-CER deadline, well
/// before the 10 s it used to hold a slot.
#[tokio::test]
async fn silent_connection_closed_after_the_default_cer_timeout() {
    let cfg = server_config(PeerSpec::accept_only(CLIENT));
    let limit = cfg.cer_timeout;
    assert!(
        limit <= Duration::from_secs(5),
        "default pre-CER deadline {limit:?}"
    );
    let node = Node::start(cfg).await.unwrap();
    let mut s = connect_from(OTHER_ADDR, node.listen_addrs()[0])
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(limit + Duration::from_secs(2), s.read(&mut b)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "silent connection still open after {:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() >= limit - Duration::from_millis(100));
    node.shutdown(Duration::from_millis(200)).await;
}
