//! `diameter-bench`: a Diameter echo server, relay agent and load client built on
//! diameter-node, for benchmarks and interoperability runs.
//!
//! ```text
//! diameter-bench echo  --listen 127.0.0.1:3868
//! diameter-bench relay --listen 127.0.0.1:3869 --to 127.0.0.1:3868
//! diameter-bench load  --to 127.0.0.1:3869 --to-host relay.bench --in-flight 64 --duration 10
//! diameter-bench echo  --config echo.toml     # node settings from a [node] table
//! ```

use anyhow::{Context, bail};
use bytes::BytesMut;
use clap::{Args, Parser, Subcommand};
use diameter_codec::dict::{base, dcca};
use diameter_codec::{CommandFlags, Message, MessageWriter, ResultCode};
use diameter_node::busy_poll::BusyPoll;
use diameter_node::capture::Capture;
use diameter_node::config::{NodeFile, load_config};
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn};
use diameter_node::peer::{Application, RELAY_APPLICATION_ID, Timers, UnknownPeerPolicy};
use diameter_node::routing::{RedirectUsage, Route, RouteAction, RoutePeer};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Diameter echo server, relay agent and load client.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A node that accepts any peer and answers every request with 2001 DIAMETER_SUCCESS.
    ///
    /// Runs until interrupted (SIGINT or SIGTERM), then disconnects its peers with DPR.
    Echo {
        /// Address to listen on [default: 127.0.0.1:3868, unless --config lists listeners].
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        common: Common,
    },
    /// A relay agent (RFC 6733 §2.8.1): accepts any peer and relays every request to the
    /// node at --to, appending Route-Record.
    Relay {
        /// Address to listen on [default: 127.0.0.1:3869, unless --config lists listeners].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Address of the next hop.
        #[arg(long)]
        to: SocketAddr,
        /// Origin-Host of the next hop.
        #[arg(long, default_value = "echo.bench")]
        to_host: String,
        #[command(flatten)]
        common: Common,
    },
    /// A load client: keeps N credit-control requests in flight for a while, then reports
    /// throughput, latency percentiles (HdrHistogram) and CPU per transaction.
    Load {
        /// Address of the node to load.
        #[arg(long)]
        to: SocketAddr,
        /// Origin-Host of that node.
        #[arg(long, default_value = "echo.bench")]
        to_host: String,
        /// Requests kept in flight.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// Measured duration in seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Warm-up before measuring, in seconds.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Destination-Realm of the requests.
        #[arg(long, default_value = "bench")]
        dest_realm: String,
        /// Gx sessions (TS 29.212, application 16777238) instead of Gy CCR-Us: each
        /// in-flight slot runs its own sessions one after the other, 16 requests each —
        /// CCR-I carrying the keys a DRA binds by (Subscription-Id IMSI, Framed-IP-Address,
        /// Called-Station-Id; TS 29.213 §7.3.2), 14 CCR-U, CCR-T — so a DRA in front sees
        /// establishments, updates of bound sessions and terminations.
        #[arg(long)]
        gx: bool,
        /// PIDs of server processes whose CPU time per transaction to report.
        #[arg(long = "server-pid")]
        server_pids: Vec<u32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Node settings from the `[node]` table of this TOML file (documented in
    /// diameter-node/examples/node.toml); the other options override it, and each command
    /// adds its own listener, peer and route.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Our Origin-Host [default: the command's, e.g. echo.bench, unless --config sets it].
    #[arg(long)]
    host: Option<String>,
    /// Our Origin-Realm [default: bench, unless --config sets it].
    #[arg(long)]
    realm: Option<String>,
    /// Write every message sent and received to this pcapng file.
    #[arg(long)]
    capture: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Watchdog interval Tw in seconds of the peer --to (at least 6) [default: 30, or
    /// --config's [node.timers]].
    #[arg(long)]
    tw: Option<u64>,
    /// Runtime threads. 1 (the default) runs the node on one thread: no task ever wakes
    /// another thread, which on a small machine shared by client, agents and server costs
    /// more than the work itself (BENCHMARKS.md). 0 means one worker per CPU.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Poll the sockets for this many microseconds after the last message before sleeping
    /// (0, the default: never). Keeps a CPU busy while traffic flows, so a message arriving
    /// in a gap costs no wake-up (see diameter_node::busy_poll). Needs --threads 1.
    #[arg(long, default_value_t = 0)]
    busy_poll_us: u64,
}

impl Common {
    /// The node's configuration: --config's `[node]` table if given, then the options.
    /// Also returns the peer timers the file sets for every peer.
    fn config(&self, default_host: &str) -> anyhow::Result<(NodeConfig, Timers)> {
        let (mut cfg, mut timers) = match &self.config {
            Some(path) => {
                let file: NodeFile = load_config(path)?;
                let mut cfg = file.node.to_node_config(path)?;
                if file.node.product_name.is_none() {
                    cfg.local.product_name = "diameter-bench".into();
                }
                let mut timers = bench_timers();
                if let Some(t) = &file.node.timers {
                    t.apply(&mut timers);
                }
                (cfg, timers)
            }
            None => {
                let mut cfg = NodeConfig::new(default_host, "bench");
                cfg.local.product_name = "diameter-bench".into();
                (cfg, bench_timers())
            }
        };
        if let Some(h) = &self.host {
            cfg.local.origin_host.clone_from(h);
        }
        if let Some(r) = &self.realm {
            cfg.local.origin_realm.clone_from(r);
        }
        if let Some(p) = &self.capture {
            cfg.capture = Some(Arc::new(
                Capture::create(p).with_context(|| format!("creating {}", p.display()))?,
            ));
        }
        if let Some(m) = self.metrics {
            cfg.metrics = Some(m);
        }
        if let Some(tw) = self.tw {
            timers.tw = Duration::from_secs(tw);
        }
        Ok((cfg, timers))
    }
}

/// The timers of the peer --to without a configuration file: Tc of 1 s, so that a load
/// client started just before its server connects at once.
fn bench_timers() -> Timers {
    Timers {
        tc: Duration::from_secs(1),
        ..Timers::default()
    }
}

/// Adds `--listen`, or the command's default address when neither the option nor the
/// configuration file gives a listener.
fn add_listener(cfg: &mut NodeConfig, listen: Option<SocketAddr>, default: &str) {
    match listen {
        Some(a) => cfg.listen.push(a.into()),
        None if cfg.listen.is_empty() => {
            cfg.listen.push(
                default
                    .parse::<SocketAddr>()
                    .expect("a literal address")
                    .into(),
            );
        }
        None => {}
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let common = match &cli.command {
        Command::Echo { common, .. }
        | Command::Relay { common, .. }
        | Command::Load { common, .. } => common,
    };
    let mut builder = match common.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if common.threads > 1 {
        builder.worker_threads(common.threads);
    }
    let busy = match common.busy_poll_us {
        0 => None,
        _ if common.threads != 1 => bail!("--busy-poll-us needs --threads 1"),
        us => Some(BusyPoll::new(Duration::from_micros(us))),
    };
    if let Some(b) = &busy {
        b.install(&mut builder);
    }
    let rt = builder.enable_all().build()?;
    rt.block_on(async move {
        if let Some(b) = &busy {
            b.spawn();
        }
        run(cli).await
    })
}

fn install_metrics(
    cfg: &NodeConfig,
) -> anyhow::Result<Option<diameter_node::metrics::MetricsHandle>> {
    match cfg.metrics {
        Some(addr) => Ok(Some(
            diameter_node::metrics::install(addr).context("starting the metrics endpoint")?,
        )),
        None => Ok(None),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Echo { listen, common } => {
            let (mut cfg, _) = common.config("echo.bench")?;
            let _metrics = install_metrics(&cfg)?;
            cfg.local.applications.push(Application::relay());
            cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
            add_listener(&mut cfg, listen, "127.0.0.1:3868");
            let node = Node::start(cfg).await?;
            node.register(
                RELAY_APPLICATION_ID,
                handler_fn(|req| async move { req.answer(ResultCode::DIAMETER_SUCCESS) }),
            );
            eprintln!(
                "echo: {} listening on {}",
                node.identity().host,
                node.listen_addrs()[0]
            );
            serve_until_signal(node).await
        }
        Command::Relay {
            listen,
            to,
            to_host,
            common,
        } => {
            let (mut cfg, timers) = common.config("relay.bench")?;
            let _metrics = install_metrics(&cfg)?;
            cfg.local.applications.push(Application::relay());
            cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
            cfg.agent = true;
            add_listener(&mut cfg, listen, "127.0.0.1:3869");
            let mut peer = PeerSpec::connect_tcp(to_host.clone(), to);
            peer.timers = timers;
            cfg.peers.push(peer);
            cfg.routes.push(default_route(&to_host));
            let node = Node::start(cfg).await?;
            eprintln!(
                "relay: {} listening on {}, relaying to {to_host} at {to}",
                node.identity().host,
                node.listen_addrs()[0]
            );
            serve_until_signal(node).await
        }
        Command::Load {
            to,
            to_host,
            in_flight,
            duration,
            warmup,
            dest_realm,
            gx,
            server_pids,
            json,
            common,
        } => {
            let (mut cfg, timers) = common.config("load.bench")?;
            let _metrics = install_metrics(&cfg)?;
            if gx {
                cfg.local
                    .applications
                    .push(Application::vendor_auth(VENDOR_3GPP, GX_APPLICATION_ID));
                cfg.local.supported_vendor_ids.push(VENDOR_3GPP);
            } else {
                cfg.local.applications.push(Application::auth(4));
            }
            let mut peer = PeerSpec::connect_tcp(to_host.clone(), to);
            peer.timers = timers;
            cfg.peers.push(peer);
            cfg.routes.push(default_route(&to_host));
            let node = Node::start(cfg).await?;
            if !node.wait_peer(&to_host, Duration::from_secs(10)).await {
                bail!("no capabilities exchange with {to_host} at {to} within 10 s");
            }
            let addressing = Addressing {
                origin_host: node.identity().host.clone(),
                origin_realm: node.identity().realm.clone(),
                destination_realm: dest_realm,
                gx,
            };
            let report = load(
                &node,
                addressing,
                in_flight.max(1),
                Duration::from_secs_f64(warmup),
                Duration::from_secs_f64(duration),
                &server_pids,
            )
            .await;
            node.shutdown(Duration::from_secs(2)).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            Ok(())
        }
    }
}

fn default_route(host: &str) -> Route {
    Route {
        realm: "*".into(),
        application: None,
        action: RouteAction::Relay,
        peers: vec![RoutePeer {
            host: host.to_string(),
            priority: 0,
            weight: 1,
        }],
        redirect_usage: RedirectUsage::DontCache,
        redirect_cache_time: Duration::ZERO,
    }
}

async fn serve_until_signal(node: Node) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    node.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

/// CPU time of a process, all its threads, in nanoseconds (from /proc/PID/task/*/schedstat).
fn cpu_ns(pid: &str) -> Option<u64> {
    let mut total = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let p = t.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(p).unwrap_or_default();
        total += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// Deadline of each load request: one unanswered this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Who the load client is and where its requests go.
#[derive(Clone)]
struct Addressing {
    origin_host: String,
    origin_realm: String,
    destination_realm: String,
    /// Gx sessions (`--gx`) instead of Gy CCR-Us.
    gx: bool,
}

/// 3GPP's Vendor-Id.
const VENDOR_3GPP: u32 = 10_415;
/// Gx (TS 29.212 §5.1).
const GX_APPLICATION_ID: u32 = 16_777_238;

/// Request `n` of slot `slot` under `--gx`: session `n / 16` of the slot, CCR-I at 0,
/// CCR-U at 1..=14, CCR-T at 15. The subscriber (IMSI 00101 followed by ten digits) and
/// UE address (10.0.0.0/8) are unique among the sessions alive at once (one per slot).
fn gx_request(slot: u64, n: u64, end_to_end: u32, a: &Addressing, buf: &mut BytesMut) -> Message {
    use diameter_codec::dict::nasreq;
    use std::fmt::Write as _;
    let (sess, number) = (n / 16, (n % 16) as u32);
    let mut session = String::with_capacity(a.origin_host.len() + 32);
    let _ = write!(session, "{};{slot};{sess}", a.origin_host);
    let kind = match number {
        0 => dcca::CcRequestType::INITIAL_REQUEST,
        15 => dcca::CcRequestType::TERMINATION_REQUEST,
        _ => dcca::CcRequestType::UPDATE_REQUEST,
    };
    let flags = CommandFlags(CommandFlags::REQUEST | CommandFlags::PROXIABLE);
    let mut w = MessageWriter::new(
        buf,
        flags,
        dcca::CMD_CREDIT_CONTROL,
        GX_APPLICATION_ID,
        0,
        end_to_end,
    );
    w.text(base::SESSION_ID, &session)
        .avp(base::AUTH_APPLICATION_ID, GX_APPLICATION_ID)
        .text(base::ORIGIN_HOST, &a.origin_host)
        .text(base::ORIGIN_REALM, &a.origin_realm)
        .text(base::DESTINATION_REALM, &a.destination_realm)
        .avp(dcca::CC_REQUEST_TYPE, kind)
        .avp(dcca::CC_REQUEST_NUMBER, number);
    if number == 0 {
        let mut imsi = String::with_capacity(15);
        let _ = write!(imsi, "00101{:010}", slot * 10_000_000 + sess % 10_000_000);
        let ip = 0x0a00_0000u32 | (((slot as u32) << 16 | (sess as u32 & 0xffff)) & 0x00ff_ffff);
        w.begin(dcca::SUBSCRIPTION_ID)
            .avp(
                dcca::SUBSCRIPTION_ID_TYPE,
                dcca::SubscriptionIdType::END_USER_IMSI,
            )
            .text(dcca::SUBSCRIPTION_ID_DATA, &imsi)
            .end()
            .octets(nasreq::FRAMED_IP_ADDRESS, &ip.to_be_bytes())
            .text(nasreq::CALLED_STATION_ID, "internet");
    }
    let len = w.finish().expect("balanced groups");
    Message::from_bytes(buf.split_to(len).freeze()).expect("a well-formed request")
}

/// Request `i` of the load: a Gy CCR-U with one MSCC, encoded straight into `buf` with
/// [`MessageWriter`] (the fastest way to build a request; the node only rewrites its
/// Hop-by-Hop Identifier).
fn request(i: u64, end_to_end: u32, a: &Addressing, buf: &mut BytesMut) -> Message {
    use std::fmt::Write as _;
    let mut session = String::with_capacity(a.origin_host.len() + 24);
    let _ = write!(session, "{};{};1", a.origin_host, i / 16);
    let flags = CommandFlags(CommandFlags::REQUEST | CommandFlags::PROXIABLE);
    let mut w = MessageWriter::new(buf, flags, dcca::CMD_CREDIT_CONTROL, 4, 0, end_to_end);
    w.text(base::SESSION_ID, &session)
        .text(base::ORIGIN_HOST, &a.origin_host)
        .text(base::ORIGIN_REALM, &a.origin_realm)
        .text(base::DESTINATION_REALM, &a.destination_realm)
        .avp(base::AUTH_APPLICATION_ID, 4u32)
        .avp(dcca::SERVICE_CONTEXT_ID, "32251@3gpp.org")
        .avp(dcca::CC_REQUEST_TYPE, dcca::CcRequestType::UPDATE_REQUEST)
        .avp(dcca::CC_REQUEST_NUMBER, (i % 16) as u32)
        .begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL)
        .avp(dcca::RATING_GROUP, 100u32)
        .begin(dcca::REQUESTED_SERVICE_UNIT)
        .avp(dcca::CC_TOTAL_OCTETS, 1_000_000u64)
        .end()
        .begin(dcca::USED_SERVICE_UNIT)
        .avp(dcca::CC_TOTAL_OCTETS, 123_456u64)
        .avp(dcca::CC_TIME, 30u32)
        .end()
        .end();
    let len = w.finish().expect("balanced groups");
    Message::from_bytes(buf.split_to(len).freeze()).expect("a well-formed request")
}

#[derive(serde::Serialize)]
struct Report {
    in_flight: usize,
    duration_s: f64,
    answers: u64,
    errors: u64,
    non_success: u64,
    tps: f64,
    latency_us: Percentiles,
    client_cpu_us_per_txn: Option<f64>,
    server_cpu_us_per_txn: Vec<(u32, Option<f64>)>,
}

#[derive(serde::Serialize)]
struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

async fn load(
    node: &Node,
    addressing: Addressing,
    in_flight: usize,
    warmup: Duration,
    duration: Duration,
    servers: &[u32],
) -> Report {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for slot in 0..in_flight as u64 {
        let node = node.clone();
        let counter = counter.clone();
        let addressing = addressing.clone();
        tasks.push(tokio::spawn(async move {
            let mut h =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let (mut ok, mut err, mut bad) = (0u64, 0u64, 0u64);
            // Requests are written into slices of one buffer, reserved 64 KiB at a time.
            let mut buf = BytesMut::new();
            // --gx: this slot's own request count (its sessions run in order).
            let mut mine = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if buf.capacity() < 1024 {
                    buf.reserve(64 * 1024);
                }
                let req = if addressing.gx {
                    mine += 1;
                    gx_request(
                        slot,
                        mine - 1,
                        node.next_end_to_end(),
                        &addressing,
                        &mut buf,
                    )
                } else {
                    request(i, node.next_end_to_end(), &addressing, &mut buf)
                };
                let r = node.request_encoded(req, REQUEST_TIMEOUT).await;
                let t1 = Instant::now();
                if t0 < measure_from {
                    continue;
                }
                match r {
                    Ok(a) => {
                        ok += 1;
                        if a.get(base::RESULT_CODE).and_then(Result::ok) != Some(2001) {
                            bad += 1;
                        }
                        let _ = h.record((t1 - t0).as_micros().max(1) as u64);
                    }
                    Err(_) => err += 1,
                }
            }
            (h, ok, err, bad)
        }));
    }
    // CPU is sampled over the measured window only.
    tokio::time::sleep_until(measure_from.into()).await;
    let self_pid = std::process::id().to_string();
    let cpu0 = cpu_ns(&self_pid);
    let srv0: Vec<Option<u64>> = servers.iter().map(|p| cpu_ns(&p.to_string())).collect();
    let t0 = Instant::now();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let (mut answers, mut errors, mut non_success) = (0, 0, 0);
    let mut first_done: Option<Instant> = None;
    for t in tasks {
        if let Ok((h, ok, err, bad)) = t.await {
            first_done.get_or_insert_with(Instant::now);
            let _ = hist.add(&h);
            answers += ok;
            errors += err;
            non_success += bad;
        }
    }
    let elapsed = first_done
        .unwrap_or_else(Instant::now)
        .saturating_duration_since(t0)
        .max(Duration::from_millis(1));
    let cpu1 = cpu_ns(&self_pid);
    let srv1: Vec<Option<u64>> = servers.iter().map(|p| cpu_ns(&p.to_string())).collect();
    let txns = answers.max(1) as f64;
    let per = |a: Option<u64>, b: Option<u64>| Some((b? - a?) as f64 / 1000.0 / txns);
    Report {
        in_flight,
        duration_s: elapsed.as_secs_f64(),
        answers,
        errors,
        non_success,
        tps: answers as f64 / elapsed.as_secs_f64(),
        latency_us: Percentiles {
            p50: hist.value_at_quantile(0.5),
            p90: hist.value_at_quantile(0.9),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
        },
        client_cpu_us_per_txn: per(cpu0, cpu1),
        server_cpu_us_per_txn: servers
            .iter()
            .zip(srv0.into_iter().zip(srv1))
            .map(|(p, (a, b))| (*p, per(a, b)))
            .collect(),
    }
}

fn print_report(r: &Report) {
    println!(
        "in-flight {}  duration {:.2} s  answers {}  errors {}  non-2001 {}",
        r.in_flight, r.duration_s, r.answers, r.errors, r.non_success
    );
    println!("TPS {:.0}", r.tps);
    let l = &r.latency_us;
    println!(
        "latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    if let Some(c) = r.client_cpu_us_per_txn {
        println!("client CPU µs/txn {c:.2}");
    }
    for (pid, c) in &r.server_cpu_us_per_txn {
        match c {
            Some(c) => println!("server pid {pid} CPU µs/txn {c:.2}"),
            None => println!("server pid {pid}: CPU time unavailable"),
        }
    }
}
