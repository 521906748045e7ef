//! The accept loop out of file descriptors (issue 9 item 5): it backs off instead of
//! spinning, counts the errors, and accepts again once descriptors are free.
//!
//! A test binary of its own: it lowers RLIMIT_NOFILE and fills the table, which would break
//! any test running beside it.

use diameter_codec::dict::base;
use diameter_codec::{Message, MessageBuilder};
use diameter_node::node::{Node, NodeConfig, PeerSpec};
use diameter_node::peer::Application;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod common;
use common::{DCCA, any_addr, rc};

const CLIENT: &str = "client.example";

fn cer() -> MessageBuilder {
    MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false)
        .ids(0x1000, 0x2000)
        .with(base::ORIGIN_HOST.with(CLIENT))
        .with(base::ORIGIN_REALM.with("client.realm"))
        .with(base::HOST_IP_ADDRESS.with(IpAddr::from([127, 0, 0, 1])))
        .with(base::VENDOR_ID.with(0u32))
        .with(base::PRODUCT_NAME.with("fd-test"))
        .with(base::AUTH_APPLICATION_ID.with(DCCA))
}

/// Sends a CER on `s` and waits up to `t` for the CEA.
async fn cea(s: &mut TcpStream, t: Duration) -> Option<Message> {
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

/// User plus system CPU time of this process, from `stat` (/proc/self/stat, opened while
/// descriptors remained; procfs renders it afresh on each read from the start).
fn cpu_time(stat: &mut std::fs::File) -> Duration {
    use std::io::{Read, Seek};
    let mut text = String::new();
    stat.rewind().unwrap();
    stat.read_to_string(&mut text).unwrap();
    let stat = text;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap(); // utime, stime
    let hz = rustix::param::clock_ticks_per_second();
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_backs_off_when_out_of_file_descriptors() {
    let recorder = diameter_node::metrics::recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder).expect("first recorder of this binary");

    let mut cfg = NodeConfig::new("server.example", "example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    let node = Node::start(cfg).await.unwrap();
    let addr: SocketAddr = node.listen_addrs()[0];

    // The client's socket is made while descriptors remain; it connects once none do (the
    // kernel completes the handshake into the listen backlog, where accept(2) then fails).
    let sock = TcpSocket::new_v4().unwrap();
    let mut stat = std::fs::File::open("/proc/self/stat").unwrap();
    let saved = getrlimit(Resource::Nofile);
    let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let low = (open_now + 64).min(saved.current.unwrap_or(u64::MAX));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(low),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "{e}"); // EMFILE
                break;
            }
        }
    }
    let mut s = sock.connect(addr).await.expect("connect into the backlog");

    // A second with the loop failing on every accept: little CPU, not a spinning core.
    let before = cpu_time(&mut stat);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time(&mut stat) - before;
    let wall = t0.elapsed();
    eprintln!("CPU {used:?} in {wall:?} out of descriptors");
    assert!(
        used < wall / 5,
        "the node used {used:?} of CPU in {wall:?} while out of descriptors"
    );

    // Descriptors back: the waiting connection is accepted and gets its CEA, and so does a
    // new one.
    drop(hog);
    setrlimit(Resource::Nofile, saved).unwrap();
    let t1 = Instant::now();
    let a = cea(&mut s, Duration::from_secs(3))
        .await
        .expect("no CEA once descriptors were free");
    assert_eq!(rc(&a), 2001);
    eprintln!("CEA {:?} after descriptors were freed", t1.elapsed());
    // And a new connection, once that one is gone.
    drop(s);
    let t2 = Instant::now();
    while node.is_peer_available(CLIENT) {
        assert!(t2.elapsed() < Duration::from_secs(3), "peer still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut s2 = TcpStream::connect(addr).await.unwrap();
    let a = cea(&mut s2, Duration::from_secs(3)).await.expect("CEA");
    assert_eq!(rc(&a), 2001);

    let text = metrics.render();
    let errors: f64 = text
        .lines()
        .filter(|l| l.starts_with(diameter_node::metrics::ACCEPT_ERRORS))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        errors >= 1.0,
        "accept errors not counted:\n{}",
        text.lines()
            .filter(|l| l.contains("accept"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        errors < 200.0,
        "{errors} failed accepts in about a second: no back-off"
    );
    node.shutdown(Duration::from_millis(200)).await;
}
