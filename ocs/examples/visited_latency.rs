//! Latency of the visited OCS's path against the direct path, one request in flight, over
//! loopback, in one process: a home OCS (durable redb store in a temporary directory), a
//! visited OCS in front of it, and a Gy client.
//!
//! ```text
//! cargo run --release -p ocs --example visited_latency -- [UPDATES] [no-fsync]
//! ```
//!
//! `no-fsync` runs the home store without fsync, so the extra hop is not hidden in the
//! fsync's spread.
//!
//! Four series of CCR-U, each on its own session: straight to the home OCS; through a bare
//! relay agent (a diameter-node relay with nothing but the hop: the yardstick of one more
//! Diameter hop); through the visited OCS with a location-area change each time (sent home:
//! one more hop); through the visited OCS with a RAT change each time (answered by the
//! visited OCS alone). Each series runs once alone, for the process's CPU time per update
//! (all nodes and the client share the machine's CPUs, so work the visited node adds beside
//! the hop competes with home's), then all four run again in turns, one update of each per
//! round, for the latencies: every series meets the same states of the machine, so their
//! ratios do not depend on which one ran in a slow phase. Prints p50/p90/p99/mean per
//! series, its CPU, and the ratios to the direct path.
//!
//! `VISITED_PROFILE=SERIES:N` (`direct`, `relay`, `home` or `local`) runs only N updates of
//! one series and prints its CPU per update: the process to record with a profiler.
//!
//! Yardsticks measured in the same run tell what the extra path costs physically: the bare
//! relay's series, the round trip of 64 bytes over a loopback TCP connection, and `fdatasync`
//! latency in the data directory alone and with a second file flushed at the same time (the
//! visited OCS's record and home's commit are flushed together; on one disk they contend).
//! `VISITED_STORE_DIR` puts the visited OCS's file on another file system, as in a real
//! roaming network where the two OCSs sit in different operators' data centres;
//! `VISITED_STORE=memory` keeps its sessions in memory only (no file): the yardstick of
//! the visited OCS's path without its store.

use diameter_codec::MessageBuilder;
use diameter_codec::dict::{base, dcca, gi, gy as gyd};
use diameter_node::node::{Node, NodeConfig, PeerSpec, relay_route};
use diameter_node::peer::Application;
use ocs::config::Config;
use ocs::model::{RequestType, Units};
use ocs::{Ocs, VisitedOcs};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

// The allocator of the `ocs` binary, so that both nodes spend what they spend there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IMSI: &str = "001010000000001";
/// The client behind the bare relay.
const RELAYED_HOST: &str = "pcef-relayed.visited.test";

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A Gy client `host` connected to `peer` at `addr`. Each path's client has a host of its
/// own: the home OCS sees the direct and the relayed clients' requests, and detects
/// duplicates by (Origin-Host, End-to-End Identifier) — two clients sharing a host would
/// now and then number requests alike and get each other's stored answers.
async fn client(host: &str, peer: &str, realm: &str, addr: SocketAddr) -> anyhow::Result<Node> {
    let mut c = NodeConfig::new(host, "visited.test");
    c.local.applications.push(Application::auth(4));
    c.peers.push(PeerSpec::connect_tcp(peer, addr));
    c.routes.push(relay_route(realm, Some(4), &[peer]));
    let node = Node::start(c).await?;
    anyhow::ensure!(
        node.wait_peer(peer, Duration::from_secs(10)).await,
        "{peer} not open"
    );
    Ok(node)
}

/// A relay agent (RFC 6733 §2.8.1) listening on `addr` that forwards realm `home.test` to
/// the home OCS at `home`: the Diameter hop with nothing else in it.
async fn relay_agent(addr: SocketAddr, home: SocketAddr) -> anyhow::Result<Node> {
    let mut c = NodeConfig::new("relay.visited.test", "visited.test");
    c.local.applications.push(Application::relay());
    c.agent = true;
    c.listen.push(addr.into());
    c.peers.push(PeerSpec::accept_only(RELAYED_HOST));
    c.peers.push(PeerSpec::connect_tcp("ocs.home.test", home));
    c.routes
        .push(relay_route("home.test", None, &["ocs.home.test"]));
    let node = Node::start(c).await?;
    anyhow::ensure!(
        node.wait_peer("ocs.home.test", Duration::from_secs(10))
            .await,
        "home not open from the relay"
    );
    Ok(node)
}

/// A CCR for rating group 1 with `used` octets, a fired trigger and the user's location.
fn ccr(
    origin: &str,
    session: &str,
    realm: &str,
    kind: RequestType,
    n: u32,
    used: u64,
    (fired, lac, rat): (Option<i32>, u16, u8),
) -> MessageBuilder {
    let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, 4, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::ORIGIN_HOST.with(origin.to_string()));
    b.push(base::ORIGIN_REALM.with("visited.test".to_string()));
    b.push(base::DESTINATION_REALM.with(realm.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(4u32));
    b.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind.code())));
    b.push(dcca::CC_REQUEST_NUMBER.with(n));
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(1)),
        dcca::SUBSCRIPTION_ID_DATA.with(IMSI.to_string()),
    ]));
    let mut m = vec![ocs::gy::requested_avp(&Units::default())];
    if used > 0 {
        m.push(ocs::gy::used_avp(&Units {
            total_octets: Some(used),
            ..Units::default()
        }));
    }
    m.push(dcca::RATING_GROUP.with(1u32));
    if let Some(t) = fired {
        m.push(gyd::REPORTING_REASON.with(gyd::ReportingReason(6)));
        m.push(gyd::TRIGGER.with(vec![gyd::TRIGGER_TYPE.with(gyd::TriggerType(t))]));
    }
    b.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(m));
    // UTRAN CGI: MCC 001, MNC 01, LAC, CI 1.
    let mut uli = vec![0, 0x00, 0xf1, 0x10];
    uli.extend(lac.to_be_bytes());
    uli.extend(1u16.to_be_bytes());
    b.push(
        gyd::SERVICE_INFORMATION.with(vec![gyd::PS_INFORMATION.with(vec![
            gi::TGPP_USER_LOCATION_INFO.with(bytes::Bytes::from(uli)),
            gi::TGPP_RAT_TYPE.with(bytes::Bytes::from(vec![rat])),
        ])]),
    );
    b
}

/// Where a series' requests go, and what each update reports (fired trigger, LAC, RAT).
struct Path<'a> {
    node: &'a Node,
    realm: &'static str,
    session: String,
    step: fn(u32) -> (Option<i32>, u16, u8),
}

impl Path<'_> {
    async fn send(&self, kind: RequestType, n: u32, used: u64) -> anyhow::Result<Duration> {
        let fired = match kind {
            RequestType::Update => (self.step)(n),
            _ => (None, 1, 1),
        };
        let origin = self.node.identity().host.clone();
        let req = ccr(&origin, &self.session, self.realm, kind, n, used, fired);
        let t = Instant::now();
        let m = self.node.request(req).await?;
        let took = t.elapsed();
        let rc: u32 = m.get(base::RESULT_CODE).and_then(Result::ok).unwrap_or(0);
        anyhow::ensure!(rc == 2001, "{}: Result-Code {rc}", self.session);
        Ok(took)
    }
}

/// Opens a session on each path, sends `updates` CCR-U on each — one path after the other,
/// or (`interleaved`) in turns, one update of each path per round, so that every path meets
/// the same states of the machine — and closes them; returns each path's round trips.
async fn series(
    paths: &[Path<'_>],
    updates: u32,
    interleaved: bool,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    for p in paths {
        p.send(RequestType::Initial, 0, 0).await?;
    }
    let mut out = vec![Vec::with_capacity(updates as usize); paths.len()];
    if interleaved {
        for n in 1..=updates {
            for (p, v) in paths.iter().zip(&mut out) {
                v.push(p.send(RequestType::Update, n, 100).await?);
            }
        }
    } else {
        for (p, v) in paths.iter().zip(&mut out) {
            for n in 1..=updates {
                v.push(p.send(RequestType::Update, n, 100).await?);
            }
        }
    }
    for p in paths {
        p.send(RequestType::Termination, updates + 1, 100).await?;
    }
    Ok(out)
}

/// p50 and p99 in µs of `n` round trips of 64 bytes over a loopback TCP connection.
async fn loopback_rtt(n: usize) -> anyhow::Result<(f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).await.is_ok() {
            s.write_all(&buf).await?;
        }
        anyhow::Ok(())
    });
    let mut c = tokio::net::TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(&buf).await?;
        c.read_exact(&mut buf).await?;
        v.push(t.elapsed());
    }
    drop(c);
    echo.await??;
    Ok(percentiles(v))
}

/// p50 and p99 in µs of `fdatasync` after a 4 KiB write, `n` times in each of `files`
/// files in `dir`, flushed at the same time from one thread each.
fn fsync_latency(dir: &std::path::Path, files: usize, n: usize) -> anyhow::Result<(f64, f64)> {
    use std::os::unix::fs::FileExt;
    let threads: Vec<_> = (0..files)
        .map(|i| {
            let path = dir.join(format!("fsync-probe-{i}"));
            std::thread::spawn(move || -> std::io::Result<Vec<Duration>> {
                let f = std::fs::File::create(&path)?;
                let mut v = Vec::with_capacity(n);
                for k in 0..n {
                    f.write_at(&[k as u8; 4096], (k % 16) as u64 * 4096)?;
                    let t = Instant::now();
                    f.sync_data()?;
                    v.push(t.elapsed());
                }
                std::fs::remove_file(&path)?;
                Ok(v)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("fsync probe panicked"))??,
        );
    }
    Ok(percentiles(all))
}

/// CPU time of this whole process (every thread: the three nodes, both stores, the client),
/// from `/proc/self/stat` (utime + stime, in the kernel's 100 Hz ticks).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// `f`'s output and the process's CPU time while it ran.
async fn with_cpu<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<(T, Duration)> {
    let before = process_cpu();
    let out = f.await?;
    Ok((out, process_cpu() - before))
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6;
    (q(0.5), q(0.99))
}

/// Prints a series' percentiles, the process's CPU per update while it ran, and its p50's
/// ratio to `base`'s.
fn summary(name: &str, (mut v, cpu): (Vec<Duration>, Duration), base: Option<f64>) -> f64 {
    v.sort();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6;
    let mean = v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64 * 1e6;
    let per = cpu.as_secs_f64() / v.len() as f64 * 1e6;
    let ratio = base.map_or(String::new(), |b| format!("  p50 ×{:.2}", q(0.5) / b));
    println!(
        "{name:<34} p50 {:>7.0} µs  p90 {:>7.0} µs  p99 {:>7.0} µs  mean {:>7.0} µs  CPU {per:>4.0} µs{ratio}",
        q(0.5),
        q(0.9),
        q(0.99),
        mean
    );
    q(0.5)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let updates: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let home_addr = free_addr();
    let text = ocs::config::DEMO
        .replace("127.0.0.1:3870", &home_addr.to_string())
        .replace("admin = \"127.0.0.1:3871\"", "")
        // Home watches QoS and the location area (UTRAN), not the RAT.
        .replace("triggers = [2, 4, 35, 36]", "triggers = [2, 33]");
    let mut home_cfg = Config::parse(&dir.path().join("home.toml"), &text)?;
    home_cfg.store.path = dir.path().join("home.redb");
    home_cfg.store.durable = std::env::args().nth(2).as_deref() != Some("no-fsync");
    let home = Ocs::start(&home_cfg).await?;
    let vocs_addr = free_addr();
    let vtext = include_str!("visited.toml")
        .replace("127.0.0.1:3880", &vocs_addr.to_string())
        .replace("127.0.0.1:3870", &home_addr.to_string())
        .replace("127.0.0.1:3872", &free_addr().to_string())
        .replace("report_decision = true", "report_decision = false")
        // Grants as large as home's, so that only the triggers decide who answers.
        .replace("grant_cap = 300000 ", "");
    let mut vcfg = Config::parse(&dir.path().join("visited.toml"), &vtext)?;
    // The visited OCS's file: beside home's, or (VISITED_STORE_DIR) on a disk of its own, as
    // in a real roaming network where the two sit in different operators' data centres.
    let vdir = std::env::var_os("VISITED_STORE_DIR").map_or(dir.path().to_path_buf(), Into::into);
    vcfg.store.path = vdir.join(format!("visited-{}.redb", std::process::id()));
    let vpath = vcfg.store.path.clone();
    let vocs = if std::env::var("VISITED_STORE").as_deref() == Ok("memory") {
        let store = std::sync::Arc::new(ocs::visited::store::MemoryVisitedStore::default());
        VisitedOcs::start_with_store(&vcfg, store).await?
    } else {
        VisitedOcs::start(&vcfg).await?
    };
    anyhow::ensure!(
        vocs.node()
            .wait_peer("ocs.home.test", Duration::from_secs(10))
            .await,
        "home not open"
    );
    let relay_addr = free_addr();
    let relay = relay_agent(relay_addr, home_addr).await?;
    let direct = client(
        "pcef-direct.visited.test",
        "ocs.home.test",
        "home.test",
        home_addr,
    )
    .await?;
    let via = client(
        "pcef.visited.test",
        "ocs.visited.test",
        "visited.test",
        vocs_addr,
    )
    .await?;
    let relayed = client(RELAYED_HOST, "relay.visited.test", "home.test", relay_addr).await?;
    println!(
        "{updates} CCR-U per series, 1 in flight, loopback; home store durable = {}; ports: \
         home OCS {}, visited OCS {}, relay {} (scripts/hop-latency.py reads a capture of them)",
        home_cfg.store.durable,
        home_addr.port(),
        vocs_addr.port(),
        relay_addr.port()
    );
    // The direct path carries the same requests as the path through the visited OCS: a
    // CHANGEINLOCATION_CellId (34) into a new location area each time (home's LAC trigger
    // fires: sent home). The bare relay carries them too: the cost of one more hop alone.
    let new_area: fn(u32) -> (Option<i32>, u16, u8) = |n| (Some(34), (n % 60000) as u16 + 2, 1);
    // CHANGE_IN_RAT (4), not armed by home: answered by the visited OCS.
    let new_rat: fn(u32) -> (Option<i32>, u16, u8) =
        |n| (Some(4), 1, if n % 2 == 0 { 1 } else { 5 });
    let paths = |tag: &str| {
        let path = |node, realm, name: &str, step| Path {
            node,
            realm,
            session: format!("{tag};{name}"),
            step,
        };
        [
            path(&direct, "home.test", "direct", new_area),
            path(&relayed, "home.test", "relay", new_area),
            path(&via, "visited.test", "home", new_area),
            path(&via, "visited.test", "local", new_rat),
        ]
    };
    series(&paths("warm"), 200, true).await?;
    // VISITED_PROFILE=SERIES:N (direct, relay, home or local): only N updates of that
    // series (for a profiler), and the process's CPU per update.
    if let Ok(v) = std::env::var("VISITED_PROFILE") {
        let (which, n) = v.split_once(':').unwrap_or(("home", v.as_str()));
        let n: u32 = n.parse()?;
        let path = paths("prof")
            .into_iter()
            .find(|p| p.session.ends_with(which))
            .ok_or_else(|| anyhow::anyhow!("no series {which}"))?;
        let (_, cpu) = with_cpu(series(std::slice::from_ref(&path), n, false)).await?;
        println!(
            "{which}: CPU {:.0} µs per update",
            cpu.as_secs_f64() / f64::from(n) * 1e6
        );
        return Ok(());
    }
    // One series after the other, for the CPU each costs; then in turns, for latencies
    // that all met the same machine.
    let mut cpu = Vec::new();
    for p in paths("cpu") {
        let (_, c) = with_cpu(series(std::slice::from_ref(&p), updates, false)).await?;
        cpu.push(c);
    }
    let lat = series(&paths("lat"), updates, true).await?;
    let rtt = loopback_rtt(3000).await?;
    let fs1 = fsync_latency(dir.path(), 1, 500)?;
    let fs2 = fsync_latency(dir.path(), 2, 500)?;
    let names = [
        "direct to the home OCS",
        "via a bare relay agent (yardstick)",
        "via the visited OCS, sent home",
        "via the visited OCS, answered there",
    ];
    let mut base = None;
    for ((name, v), c) in names.into_iter().zip(lat).zip(cpu) {
        let p50 = summary(name, (v, c), base);
        base.get_or_insert(p50);
    }
    println!(
        "yardsticks: loopback TCP round trip p50 {:.0} µs p99 {:.0} µs; fdatasync in the home \
         store's directory p50 {:.0} µs p99 {:.0} µs alone, p50 {:.0} µs p99 {:.0} µs with a \
         second file flushed at the same time",
        rtt.0, rtt.1, fs1.0, fs1.1, fs2.0, fs2.1
    );
    direct.shutdown(Duration::from_secs(1)).await;
    via.shutdown(Duration::from_secs(1)).await;
    relayed.shutdown(Duration::from_secs(1)).await;
    relay.shutdown(Duration::from_secs(1)).await;
    vocs.shutdown(Duration::from_secs(1)).await;
    home.shutdown(Duration::from_secs(1)).await;
    if vpath.exists() {
        std::fs::remove_file(vpath)?;
    }
    Ok(())
}
