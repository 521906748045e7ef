//! `pcef-sim load`: simulated subscribers' sessions against a server, with throughput,
//! latency percentiles (HdrHistogram), result codes and CPU per request.
//!
//! Gy ([`Scenario::Gy`]): each session is a credit-control session of RFC 4006 §5 for one
//! subscriber and rating group — CCR-I asking for units, CCR-U reporting Used-Service-Unit
//! (at an interval, or back to back), CCR-T with the last usage. `--in-flight` sessions run
//! at once, each with at most one request outstanding; `--rate` paces all requests to a
//! target rate on top.
//!
//! Requests are counted when they start inside the measured window (after the warm-up,
//! before the end). When the window ends, open sessions are closed with CCR-T, uncounted,
//! so the server keeps no reservation.
//!
//! Through a DRA (TS 29.213 §7, `dra`): a proxy DRA needs nothing more (`--to` the DRA,
//! `--to-host` its identity). A redirect DRA answers 3006 ([`Redirects`]): counted as the
//! session's answer, the session going on at the DRA (its updates and termination get
//! the DRA's 3006 or acknowledgement too, so the DRA's binding is released), or followed to
//! the PCRF it names (`peers` says where that PCRF listens); either way each redirect is
//! counted and reported per second.

use anyhow::bail;
use bytes::BytesMut;
use diameter_codec::dict::{base, dcca, gi, gx, nasreq};
use diameter_codec::{CommandFlags, Message, MessageBuilder, MessageWriter, ResultCode};
use diameter_node::node::{Node, RequestError, SendOptions};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What each simulated session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Online charging: CCR-I, CCR-U..., CCR-T (RFC 4006, application 4).
    Gy,
    /// Policy control: Gx CCR-I (Subscription-Id, Framed-IP-Address, RAT-Type,
    /// Called-Station-Id), CCR-U reporting USER_LOCATION_CHANGE, CCR-T (TS 29.212,
    /// application 16777238).
    Gx,
}

impl Scenario {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gy => "gy",
            Self::Gx => "gx",
        }
    }

    /// The application its requests belong to.
    pub fn application(self) -> u32 {
        match self {
            Self::Gy => 4,
            Self::Gx => gx::APP_GX,
        }
    }
}

/// What the client does with a DRA's redirect (3006 DIAMETER_REDIRECT_INDICATION,
/// RFC 6733 §6.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Kept as the answer and counted; the session's next request goes to the DRA again.
    Count,
    /// Followed to the Redirect-Host (by the node, at most three times) and counted.
    Follow,
}

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// What each session does.
    pub scenario: Scenario,
    /// The server's address.
    pub to: SocketAddr,
    /// The server's Origin-Host.
    pub to_host: String,
    /// Destination-Realm of the requests.
    pub dest_realm: String,
    /// Our Origin-Host.
    pub origin_host: String,
    /// Our Origin-Realm.
    pub origin_realm: String,
    /// Number of subscribers: sessions take IMSIs `imsi_start`, `imsi_start + 1`, ... in turn.
    pub subscribers: u64,
    /// The first IMSI (digits; the others keep its width).
    pub imsi_start: String,
    /// Sessions run at once.
    pub in_flight: usize,
    /// Requests per second for all sessions together; none: as fast as answers come.
    pub rate: Option<f64>,
    /// Warm-up before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// CCR-Us per session.
    pub updates: u32,
    /// Pause before each CCR-U (zero: back to back).
    pub interval: Duration,
    /// Rating-Group of the session's MSCC.
    pub rating_group: u32,
    /// CC-Total-Octets reported used in each CCR-U and in the CCR-T.
    pub used_octets: u64,
    /// Deadline of each request (unanswered by then: an error).
    pub timeout: Duration,
    /// Server processes whose CPU time per request to report.
    pub server_pids: Vec<u32>,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    /// Open at most this many sessions; the run ends when they are done (or at the end of
    /// the window).
    pub max_sessions: Option<u64>,
    /// Sessions send CCR-I only and stay open (to measure the server's memory per live
    /// session).
    pub hold: bool,
    /// The server is a redirect DRA: what to do with its 3006 answers. `None`: whatever
    /// answers is the answer (a 3006 would be followed by the node, uncounted).
    pub redirects: Option<Redirects>,
    /// Where hosts named in redirects listen (`[node]` host map), when their names do not
    /// resolve.
    pub peers: Vec<(String, SocketAddr)>,
}

impl LoadOptions {
    /// Gy load of `to` (Origin-Host `to_host`, realm `dest_realm`) with the defaults of the
    /// command line.
    pub fn gy(to: SocketAddr, to_host: &str, dest_realm: &str) -> Self {
        Self {
            scenario: Scenario::Gy,
            to,
            to_host: to_host.into(),
            dest_realm: dest_realm.into(),
            origin_host: "pcef.sim".into(),
            origin_realm: "sim".into(),
            subscribers: 1,
            imsi_start: "001010000000001".into(),
            in_flight: 64,
            rate: None,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
            updates: 10,
            interval: Duration::ZERO,
            rating_group: 1,
            used_octets: 1000,
            timeout: Duration::from_secs(5),
            server_pids: Vec::new(),
            progress: false,
            max_sessions: None,
            hold: false,
            redirects: None,
            peers: Vec::new(),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

/// The figures of one request type (CCR-I, CCR-U or CCR-T), or of all.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Requests sent in the window.
    pub requests: u64,
    /// Answers received (any Result-Code).
    pub answers: u64,
    /// Requests that got no answer (timeout, no route, connection lost).
    pub errors: u64,
    /// Answers per command-level Result-Code ("none" when absent).
    pub result_codes: BTreeMap<String, u64>,
    /// Answer latency; absent when nothing was answered.
    pub latency_us: Option<Percentiles>,
}

/// CPU time a server process spent per request in the window.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    /// Its process id.
    pub pid: u32,
    /// Microseconds of CPU (user and system, all threads) per answered request; absent when
    /// /proc/PID/stat could not be read.
    pub cpu_us_per_request: Option<f64>,
    /// Its CPU use over the window, in percent of one CPU.
    pub cpu_percent: Option<f64>,
    /// Its resident memory (VmRSS) in KiB when the window began and when it ended.
    pub rss_kib: (Option<u64>, Option<u64>),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// "gy".
    pub scenario: &'static str,
    /// Sessions run at once.
    pub in_flight: usize,
    /// The target rate, if any.
    pub target_rate: Option<f64>,
    /// The measured window in seconds.
    pub duration_s: f64,
    /// Sessions opened (CCR-I sent) in the window.
    pub sessions: u64,
    /// Answered requests per second in the window.
    pub tps: f64,
    /// All requests.
    #[serde(flatten)]
    pub all: Figures,
    /// Per request type: "initial", "update", "termination".
    pub by_type: BTreeMap<&'static str, Figures>,
    /// Requests a DRA redirected (3006) in the window: answers counted, or redirects
    /// followed.
    pub redirects: u64,
    /// Redirects per second.
    pub redirects_per_s: f64,
    /// Our own CPU per answered request, in microseconds.
    pub client_cpu_us_per_request: Option<f64>,
    /// The servers' CPU.
    pub server_cpu: Vec<ServerCpu>,
}

impl Report {
    /// Answers with this command-level Result-Code.
    pub fn count(&self, result_code: u32) -> u64 {
        self.all
            .result_codes
            .get(&result_code.to_string())
            .copied()
            .unwrap_or(0)
    }

    /// The report as text, one figure per line.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {}  in-flight {}  {}duration {:.2} s  sessions {}",
            self.scenario,
            self.in_flight,
            self.target_rate
                .map(|r| format!("rate {r:.0}/s  "))
                .unwrap_or_default(),
            self.duration_s,
            self.sessions
        );
        let _ = writeln!(s, "TPS {:.0}", self.tps);
        if self.redirects > 0 {
            let _ = writeln!(
                s,
                "redirects {}  ({:.0} per second)",
                self.redirects, self.redirects_per_s
            );
        }
        let mut line = |name: &str, f: &Figures| {
            let codes: Vec<String> = f
                .result_codes
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect();
            let _ = write!(
                s,
                "{name:<12} requests {}  answers {}  errors {}  result codes {}",
                f.requests,
                f.answers,
                f.errors,
                if codes.is_empty() {
                    "-".into()
                } else {
                    codes.join(" ")
                }
            );
            if let Some(l) = &f.latency_us {
                let _ = write!(
                    s,
                    "\n{:<12} latency µs p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                    "", l.p50, l.p90, l.p99, l.p999, l.max
                );
            }
            s.push('\n');
        };
        line("all", &self.all);
        for (name, f) in &self.by_type {
            line(name, f);
        }
        if let Some(c) = self.client_cpu_us_per_request {
            let _ = writeln!(s, "client CPU µs/request {c:.2}");
        }
        for c in &self.server_cpu {
            match (c.cpu_us_per_request, c.cpu_percent) {
                (Some(us), Some(pct)) => {
                    let _ = writeln!(
                        s,
                        "server pid {} CPU µs/request {us:.2} ({pct:.0}% of a CPU)",
                        c.pid
                    );
                }
                _ => {
                    let _ = writeln!(s, "server pid {}: CPU time unavailable", c.pid);
                }
            }
            if let (Some(a), Some(b)) = c.rss_kib {
                let _ = writeln!(s, "server pid {} RSS {a} KiB -> {b} KiB", c.pid);
            }
        }
        s
    }
}

/// Connects to the server, loads it and returns the report.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<Report> {
    let Some(imsi_first) = opts
        .imsi_start
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| opts.imsi_start.parse::<u64>().ok())
        .flatten()
    else {
        bail!("the first IMSI must be digits: {}", opts.imsi_start);
    };
    if opts.subscribers == 0 {
        bail!("--subscribers must be at least 1");
    }
    let mut ep = crate::client::Endpoint::direct(
        opts.to,
        &opts.to_host,
        &opts.dest_realm,
        &opts.origin_host,
        &opts.origin_realm,
    );
    ep.peers.clone_from(&opts.peers);
    let node = crate::client::connect(&ep, opts.scenario.application(), opts.timeout).await?;
    let plan = Arc::new(Plan {
        opts: opts.clone(),
        imsi_first,
        imsi_width: opts.imsi_start.len(),
        boot: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    });
    let report = load(&node, plan).await;
    node.shutdown(Duration::from_secs(2)).await;
    Ok(report)
}

/// The run's fixed parameters, shared by the sessions.
struct Plan {
    opts: LoadOptions,
    imsi_first: u64,
    imsi_width: usize,
    /// Makes Session-Ids unique across runs (RFC 6733 §8.8: a unique value per session).
    boot: u64,
}

/// Index of each request type in a worker's tallies.
const TYPES: [(&str, u32); 3] = [("initial", 1), ("update", 2), ("termination", 3)];

/// One worker's tallies per request type.
struct Tally {
    hist: Histogram<u64>,
    requests: u64,
    answers: u64,
    errors: u64,
    redirects: u64,
    codes: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            requests: 0,
            answers: 0,
            errors: 0,
            redirects: 0,
            codes: BTreeMap::new(),
        }
    }

    fn add(&mut self, o: &Self) {
        let _ = self.hist.add(&o.hist);
        self.requests += o.requests;
        self.answers += o.answers;
        self.errors += o.errors;
        self.redirects += o.redirects;
        for (c, n) in &o.codes {
            *self.codes.entry(c.clone()).or_default() += n;
        }
    }

    fn figures(&self) -> Figures {
        Figures {
            requests: self.requests,
            answers: self.answers,
            errors: self.errors,
            result_codes: self.codes.clone(),
            latency_us: (self.answers > 0).then(|| Percentiles {
                p50: self.hist.value_at_quantile(0.5),
                p90: self.hist.value_at_quantile(0.9),
                p99: self.hist.value_at_quantile(0.99),
                p999: self.hist.value_at_quantile(0.999),
                max: self.hist.max(),
            }),
        }
    }
}

/// Shared between the workers and the progress bar.
struct Clock {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// Next session number.
    sessions: AtomicU64,
    /// Sessions opened in the window.
    sessions_measured: AtomicU64,
    /// Next request slot of the target rate.
    tickets: AtomicU64,
    /// Requests done so far, answered or not (for the progress bar).
    done: AtomicU64,
    /// Workers still running; the last one to stop notifies `finished`.
    running: std::sync::atomic::AtomicUsize,
    finished: tokio::sync::Notify,
}

async fn load(node: &Node, plan: Arc<Plan>) -> Report {
    let opts = &plan.opts;
    let start = Instant::now();
    let clock = Arc::new(Clock {
        start,
        measure_from: start + opts.warmup,
        end: start + opts.warmup + opts.duration,
        sessions: AtomicU64::new(0),
        sessions_measured: AtomicU64::new(0),
        tickets: AtomicU64::new(0),
        done: AtomicU64::new(0),
        running: std::sync::atomic::AtomicUsize::new(opts.in_flight.max(1)),
        finished: tokio::sync::Notify::new(),
    });
    let workers: Vec<_> = (0..opts.in_flight.max(1))
        .map(|_| tokio::spawn(worker(node.clone(), plan.clone(), clock.clone())))
        .collect();
    let bar = opts.progress.then(|| progress(clock.clone()));

    // CPU is sampled over the measured window only.
    tokio::time::sleep_until(clock.measure_from.into()).await;
    let own = std::process::id();
    let cpu0 = cpu_ns(own);
    let srv0: Vec<Option<u64>> = opts.server_pids.iter().map(|p| cpu_ns(*p)).collect();
    let rss0: Vec<Option<u64>> = opts.server_pids.iter().map(|p| rss_kib(*p)).collect();
    // The window ends at its time, or earlier when every worker is done (--sessions).
    tokio::select! {
        _ = tokio::time::sleep_until(clock.end.into()) => {}
        _ = clock.finished.notified() => {}
    }
    let cpu1 = cpu_ns(own);
    let srv1: Vec<Option<u64>> = opts.server_pids.iter().map(|p| cpu_ns(*p)).collect();
    let rss1: Vec<Option<u64>> = opts.server_pids.iter().map(|p| rss_kib(*p)).collect();
    let window = Instant::now().min(clock.end) - clock.measure_from.min(Instant::now());

    let mut tallies: Vec<Tally> = TYPES.iter().map(|_| Tally::new()).collect();
    for w in workers {
        if let Ok(t) = w.await {
            for (mine, theirs) in tallies.iter_mut().zip(&t) {
                mine.add(theirs);
            }
        }
    }
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    let mut all = Tally::new();
    for t in &tallies {
        all.add(t);
    }
    let answers = all.answers;
    let per = |a: Option<u64>, b: Option<u64>| -> Option<f64> {
        let used = b?.checked_sub(a?)? as f64;
        (answers > 0).then(|| used / 1000.0 / answers as f64)
    };
    let secs = window.as_secs_f64().max(1e-3);
    Report {
        scenario: opts.scenario.name(),
        in_flight: opts.in_flight.max(1),
        target_rate: opts.rate,
        duration_s: secs,
        sessions: clock.sessions_measured.load(Ordering::Relaxed),
        tps: answers as f64 / secs,
        redirects: all.redirects,
        redirects_per_s: all.redirects as f64 / secs,
        all: all.figures(),
        by_type: TYPES
            .iter()
            .zip(&tallies)
            .map(|((name, _), t)| (*name, t.figures()))
            .collect(),
        client_cpu_us_per_request: per(cpu0, cpu1),
        server_cpu: opts
            .server_pids
            .iter()
            .zip(srv0.into_iter().zip(srv1))
            .zip(rss0.into_iter().zip(rss1))
            .map(|((pid, (a, b)), rss_kib)| ServerCpu {
                rss_kib,
                pid: *pid,
                cpu_us_per_request: per(a, b),
                cpu_percent: b
                    .zip(a)
                    .and_then(|(b, a)| b.checked_sub(a))
                    .map(|ns| ns as f64 / 1e9 / secs * 100.0),
            })
            .collect(),
    }
}

/// A progress bar over the run (warm-up and window), with the answer rate; and its ticker.
fn progress(clock: Arc<Clock>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let total = (clock.end - clock.start).as_millis() as u64;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
    {
        bar.set_style(style);
    }
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = Instant::now();
            let n = clock.done.load(Ordering::Relaxed);
            let rate = (n - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
            last = (now, n);
            b.set_position((now - clock.start).as_millis() as u64);
            b.set_message(format!("{n} requests, {rate:.0}/s"));
        }
    });
    (bar, ticker)
}

/// Runs sessions one after another until the window ends; returns its tallies per type.
async fn worker(node: Node, plan: Arc<Plan>, clock: Arc<Clock>) -> Vec<Tally> {
    let t = sessions(&node, &plan, &clock).await;
    if clock.running.fetch_sub(1, Ordering::AcqRel) == 1 {
        clock.finished.notify_one();
    }
    t
}

async fn sessions(node: &Node, plan: &Plan, clock: &Clock) -> Vec<Tally> {
    let opts = &plan.opts;
    let mut tallies: Vec<Tally> = TYPES.iter().map(|_| Tally::new()).collect();
    let mut buf = BytesMut::new();
    loop {
        if Instant::now() >= clock.end {
            break;
        }
        let s = clock.sessions.fetch_add(1, Ordering::Relaxed);
        if opts.max_sessions.is_some_and(|m| s >= m) {
            break;
        }
        let imsi = format!(
            "{:0width$}",
            plan.imsi_first + s % opts.subscribers,
            width = plan.imsi_width
        );
        let session = format!("{};{};{s}", opts.origin_host, plan.boot);
        let mut number = 0u32;
        let mut send = async |kind: u32, number: u32, tallies: &mut Vec<Tally>| -> bool {
            if let Some(rate) = opts.rate {
                let t = clock.tickets.fetch_add(1, Ordering::Relaxed);
                let at = clock.start + Duration::from_secs_f64(t as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
            }
            if buf.capacity() < 1024 {
                buf.reserve(64 * 1024);
            }
            let e2e = node.next_end_to_end();
            let req = match opts.scenario {
                Scenario::Gy => ccr(plan, &session, &imsi, kind, number, e2e, &mut buf),
                Scenario::Gx => gx_ccr(plan, &session, &imsi, s, kind, number, e2e, &mut buf),
            };
            let t0 = Instant::now();
            let (r, redirected) = exchange(node, req, opts).await;
            let t1 = Instant::now();
            // A kept redirect goes on at the DRA as an answered request would.
            let ok = redirected && opts.redirects == Some(Redirects::Count)
                || matches!(&r, Ok(a) if a.get(base::RESULT_CODE).and_then(Result::ok) == Some(2001));
            clock.done.fetch_add(1, Ordering::Relaxed);
            if t0 >= clock.measure_from && t0 < clock.end {
                let t = &mut tallies[kind as usize - 1];
                t.requests += 1;
                t.redirects += u64::from(redirected);
                let answer = match r {
                    Ok(a) => Some(a),
                    // An error answer (e.g. 3002 from a relay) is an answer too.
                    Err(RequestError::Protocol { answer, .. }) => Some(answer),
                    Err(_) => None,
                };
                match answer {
                    Some(a) => {
                        t.answers += 1;
                        let code = a
                            .get(base::RESULT_CODE)
                            .and_then(Result::ok)
                            .map_or_else(|| "none".to_string(), |c| c.to_string());
                        *t.codes.entry(code).or_default() += 1;
                        let _ = t.hist.record((t1 - t0).as_micros().max(1) as u64);
                    }
                    None => t.errors += 1,
                }
            }
            ok
        };
        if Instant::now() >= clock.measure_from && Instant::now() < clock.end {
            clock.sessions_measured.fetch_add(1, Ordering::Relaxed);
        }
        // RFC 4006 §5.1.2: updates and termination only for an opened session.
        if !send(1, number, &mut tallies).await || opts.hold {
            continue;
        }
        for _ in 0..opts.updates {
            if !opts.interval.is_zero() {
                let wake = (Instant::now() + opts.interval).min(clock.end);
                tokio::time::sleep_until(wake.into()).await;
            }
            if Instant::now() >= clock.end {
                break;
            }
            number += 1;
            send(2, number, &mut tallies).await;
        }
        number += 1;
        send(3, number, &mut tallies).await;
    }
    tallies
}

/// Sends one request; with a redirect DRA, also whether it was redirected (a 3006 kept, or
/// one followed).
async fn exchange(
    node: &Node,
    req: Message,
    opts: &LoadOptions,
) -> (Result<Message, RequestError>, bool) {
    let Some(mode) = opts.redirects else {
        return (node.request_encoded(req, opts.timeout).await, false);
    };
    // `request_with` tells whether a redirect was followed and can keep a 3006; it takes
    // the request as a tree of AVPs (zero-copy slices of the encoded one).
    let send = SendOptions {
        timeout: Some(opts.timeout),
        keep_redirect: mode == Redirects::Count,
        ..SendOptions::default()
    };
    let b = MessageBuilder::from_message(&req, node.dictionary());
    match node.request_with(b, &send).await {
        Ok(d) => {
            let redirected = d.redirected_by.is_some() || is_redirect(&d.answer);
            (Ok(d.answer), redirected)
        }
        Err(RequestError::Protocol {
            result_code,
            answer,
        }) => {
            let redirected = is_redirect(&answer);
            (
                Err(RequestError::Protocol {
                    result_code,
                    answer,
                }),
                redirected,
            )
        }
        Err(e) => (Err(e), false),
    }
}

/// A 3006 DIAMETER_REDIRECT_INDICATION answer (RFC 6733 §7.1.3).
fn is_redirect(m: &Message) -> bool {
    m.get(base::RESULT_CODE).and_then(Result::ok)
        == Some(ResultCode::DIAMETER_REDIRECT_INDICATION.0)
}

/// A Gy CCR (RFC 4006 §3.1, TS 32.299 §6.4.2) of type `kind` (1 initial, 2 update, 3
/// termination), encoded straight into `buf`.
fn ccr(
    plan: &Plan,
    session: &str,
    imsi: &str,
    kind: u32,
    number: u32,
    end_to_end: u32,
    buf: &mut BytesMut,
) -> Message {
    let o = &plan.opts;
    let flags = CommandFlags(CommandFlags::REQUEST | CommandFlags::PROXIABLE);
    let mut w = MessageWriter::new(buf, flags, dcca::CMD_CREDIT_CONTROL, 4, 0, end_to_end);
    w.text(base::SESSION_ID, session)
        .text(base::ORIGIN_HOST, &o.origin_host)
        .text(base::ORIGIN_REALM, &o.origin_realm)
        .text(base::DESTINATION_REALM, &o.dest_realm)
        .avp(base::AUTH_APPLICATION_ID, 4u32)
        .avp(dcca::SERVICE_CONTEXT_ID, "32251@3gpp.org")
        .avp(dcca::CC_REQUEST_TYPE, dcca::CcRequestType(kind as i32))
        .avp(dcca::CC_REQUEST_NUMBER, number);
    if kind == 1 {
        w.begin(dcca::SUBSCRIPTION_ID)
            .avp(
                dcca::SUBSCRIPTION_ID_TYPE,
                dcca::SubscriptionIdType::END_USER_IMSI,
            )
            .text(dcca::SUBSCRIPTION_ID_DATA, imsi)
            .end();
        w.avp(
            dcca::MULTIPLE_SERVICES_INDICATOR,
            dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED,
        );
    }
    if kind == 3 {
        w.avp(
            base::TERMINATION_CAUSE,
            base::TerminationCause::DIAMETER_LOGOUT,
        );
    }
    w.begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL);
    if kind != 3 {
        // An empty Requested-Service-Unit: the server chooses the grant (RFC 4006 §8.18).
        w.begin(dcca::REQUESTED_SERVICE_UNIT).end();
    }
    if kind != 1 {
        w.begin(dcca::USED_SERVICE_UNIT)
            .avp(dcca::CC_TOTAL_OCTETS, o.used_octets)
            .end();
    }
    w.avp(dcca::RATING_GROUP, o.rating_group).end();
    let len = w.finish().expect("balanced groups");
    Message::from_bytes(buf.split_to(len).freeze()).expect("a well-formed request")
}

/// A Gx CCR (TS 29.212 §5.6.2) of type `kind` for session number `seq`, encoded straight
/// into `buf`: the CCR-I carries Subscription-Id, Framed-IP-Address (10.0.0.0/8, one per
/// session), IP-CAN-Type, RAT-Type E-UTRAN and Called-Station-Id; a CCR-U reports
/// USER_LOCATION_CHANGE with the new 3GPP-User-Location-Info; the CCR-T Termination-Cause.
#[allow(clippy::too_many_arguments)]
fn gx_ccr(
    plan: &Plan,
    session: &str,
    imsi: &str,
    seq: u64,
    kind: u32,
    number: u32,
    end_to_end: u32,
    buf: &mut BytesMut,
) -> Message {
    let o = &plan.opts;
    let flags = CommandFlags(CommandFlags::REQUEST | CommandFlags::PROXIABLE);
    let mut w = MessageWriter::new(
        buf,
        flags,
        dcca::CMD_CREDIT_CONTROL,
        gx::APP_GX,
        0,
        end_to_end,
    );
    w.text(base::SESSION_ID, session)
        .avp(base::AUTH_APPLICATION_ID, gx::APP_GX)
        .text(base::ORIGIN_HOST, &o.origin_host)
        .text(base::ORIGIN_REALM, &o.origin_realm)
        .text(base::DESTINATION_REALM, &o.dest_realm)
        .avp(dcca::CC_REQUEST_TYPE, dcca::CcRequestType(kind as i32))
        .avp(dcca::CC_REQUEST_NUMBER, number);
    // 3GPP-User-Location-Info (TS 29.061 §16.4.7.2): TAI and ECGI of PLMN 001-01, the cell
    // changing with each request.
    let mut uli = [
        130u8, 0x00, 0xf1, 0x10, 0x00, 0x01, 0x00, 0xf1, 0x10, 0, 0, 0, 0,
    ];
    uli[9..].copy_from_slice(&(number & 0x0fff_ffff).to_be_bytes());
    match kind {
        1 => {
            let ip = 0x0a00_0000u32 | (seq as u32 & 0x00ff_ffff);
            w.begin(dcca::SUBSCRIPTION_ID)
                .avp(
                    dcca::SUBSCRIPTION_ID_TYPE,
                    dcca::SubscriptionIdType::END_USER_IMSI,
                )
                .text(dcca::SUBSCRIPTION_ID_DATA, imsi)
                .end()
                .octets(nasreq::FRAMED_IP_ADDRESS, &ip.to_be_bytes())
                .avp(gx::IP_CAN_TYPE, gx::IpCanType::TGPP_EPS)
                .avp(gx::RAT_TYPE, gx::RatType::EUTRAN)
                .octets(gi::TGPP_USER_LOCATION_INFO, &uli)
                .text(nasreq::CALLED_STATION_ID, "internet");
        }
        2 => {
            w.avp(gx::EVENT_TRIGGER, gx::EventTrigger::USER_LOCATION_CHANGE)
                .octets(gi::TGPP_USER_LOCATION_INFO, &uli);
        }
        _ => {
            w.avp(
                base::TERMINATION_CAUSE,
                base::TerminationCause::DIAMETER_LOGOUT,
            );
        }
    }
    let len = w.finish().expect("balanced groups");
    Message::from_bytes(buf.split_to(len).freeze()).expect("a well-formed request")
}

/// Resident memory of a process in KiB (VmRSS in /proc/PID/status, proc(5)).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of a process (user and system, all its threads) in nanoseconds, from
/// /proc/PID/stat (proc(5): utime and stime, fields 14 and 15, in clock ticks).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state): utime is the 12th value from there.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let hz = rustix::param::clock_ticks_per_second();
    (hz > 0).then(|| (utime + stime) * 1_000_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_the_ccr_grammar() {
        let plan = Plan {
            opts: LoadOptions::gy("127.0.0.1:3870".parse().unwrap(), "ocs", "home.test"),
            imsi_first: 1,
            imsi_width: 15,
            boot: 1,
        };
        let mut buf = BytesMut::new();
        for kind in 1..=3 {
            let m = ccr(
                &plan,
                "pcef.sim;1;1",
                "001010000000001",
                kind,
                kind - 1,
                7,
                &mut buf,
            );
            diameter_codec::validate(&m).unwrap();
            assert_eq!(
                m.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap().0,
                kind as i32
            );
            assert_eq!(m.get(dcca::CC_REQUEST_NUMBER).unwrap().unwrap(), kind - 1);
            assert_eq!(m.find(dcca::SUBSCRIPTION_ID.key()).is_some(), kind == 1);
            let mscc = m
                .find(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
                .unwrap();
            let kids: Vec<u32> = mscc.children().flatten().map(|a| a.code).collect();
            assert_eq!(kids.contains(&437), kind != 3, "RSU in {kids:?}");
            assert_eq!(kids.contains(&446), kind != 1, "USU in {kids:?}");
            assert!(kids.contains(&432));
        }
    }

    #[test]
    fn gx_requests_follow_the_ccr_grammar() {
        let mut opts = LoadOptions::gy("127.0.0.1:3869".parse().unwrap(), "pcrf", "home.test");
        opts.scenario = Scenario::Gx;
        let plan = Plan {
            opts,
            imsi_first: 1,
            imsi_width: 15,
            boot: 1,
        };
        let mut buf = BytesMut::new();
        for kind in 1..=3 {
            let m = gx_ccr(
                &plan,
                "pcef.sim;1;1",
                "001010000000001",
                258,
                kind,
                kind - 1,
                7,
                &mut buf,
            );
            diameter_codec::validate(&m).unwrap();
            assert_eq!(m.header().application_id, gx::APP_GX);
            assert_eq!(m.find(dcca::SUBSCRIPTION_ID.key()).is_some(), kind == 1);
            assert_eq!(
                m.get(nasreq::FRAMED_IP_ADDRESS)
                    .map(|r| r.unwrap().to_vec()),
                (kind == 1).then(|| vec![10, 0, 1, 2])
            );
            assert_eq!(
                m.get(gx::EVENT_TRIGGER).map(|r| r.unwrap()),
                (kind == 2).then_some(gx::EventTrigger::USER_LOCATION_CHANGE)
            );
        }
    }

    #[test]
    fn own_cpu_time_is_read() {
        let a = cpu_ns(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_ns(std::process::id()).unwrap() >= a);
        assert!(cpu_ns(u32::MAX).is_none());
    }
}
