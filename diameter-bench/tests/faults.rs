//! Fault injection on diameter-node over loopback (faults.md): peers killed or frozen with
//! requests in flight, slow peers, requests pinned to a dead peer, overload. Servers that must
//! die are separate `diameter-bench echo` processes, signalled by PID with `kill(1)`; the
//! tests live in this crate because they need that binary.
//!
//! Invariant checked everywhere (faults.md I1): every request gets exactly one terminal
//! outcome and nothing stays pending.

use diameter_codec::dict::base;
use diameter_codec::{Message, MessageBuilder, ResultCode};
use diameter_node::node::{Node, NodeConfig, PeerSpec, RequestError, handler_fn, relay_route};
use diameter_node::peer::{Application, Timers};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

#[path = "../../diameter-node/tests/common/mod.rs"]
mod common;
use common::{DCCA, free_addr, rc};
const CLIENT: &str = "client.example";
const REALM: &str = "server.realm";
const SRV_A: &str = "srva.example";
const SRV_B: &str = "srvb.example";

type Outcome = Result<Message, RequestError>;

// ------------------------------------------------------------------------------- helpers

/// A `diameter-bench echo` process. Dropping it kills it (SIGCONT first, in case it is
/// stopped) and reaps it.
struct EchoProcess {
    child: Child,
    addr: SocketAddr,
}

impl EchoProcess {
    fn start(host: &str) -> Self {
        let addr = free_addr();
        let child = Command::new(env!("CARGO_BIN_EXE_diameter-bench"))
            .args(["echo", "--listen", &addr.to_string(), "--host", host])
            .args(["--realm", REALM])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn diameter-bench echo");
        Self { child, addr }
    }

    /// Sends a signal by PID ("STOP", "CONT", "KILL"). For STOP, returns once every thread
    /// of the process is stopped (kill(2) returns before a running thread has stopped).
    fn signal(&self, sig: &str) {
        let pid = self.child.id();
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {pid} failed");
        if sig == "STOP" {
            let t0 = Instant::now();
            while !all_threads_stopped(pid) {
                assert!(t0.elapsed() < Duration::from_secs(2), "{pid} did not stop");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Whether every thread of `pid` is in state T (stopped), from /proc/PID/task/*/stat.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| {
                // "pid (comm) S …": the state follows the last ')'.
                let rest = &s[s.rfind(')')? + 1..];
                rest.split_whitespace().next().map(|st| st == "T")
            })
            .unwrap_or(true) // a thread that just exited
    })
}

fn peer(host: &str, addr: SocketAddr, tw: Duration) -> PeerSpec {
    let mut p = PeerSpec::connect_tcp(host, addr);
    p.timers = Timers {
        tc: Duration::from_millis(200),
        tw,
        ..Timers::default()
    };
    p
}

/// The client: DCCA, routes for `REALM` to `route` in priority order.
async fn client(peers: Vec<PeerSpec>, route: &[&str]) -> Node {
    let mut cfg = NodeConfig::new(CLIENT, "client.realm");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.peers = peers;
    cfg.routes.push(relay_route(REALM, Some(DCCA), route));
    cfg.request_timeout = Duration::from_secs(8);
    Node::start(cfg).await.unwrap()
}

fn ccr(session: &str) -> MessageBuilder {
    common::ccr(session, CLIENT, "client.realm", REALM)
}

fn pinned(session: &str, host: &str) -> MessageBuilder {
    let mut b = ccr(session);
    b.push(base::DESTINATION_HOST.with(host.to_string()));
    b
}

fn origin(m: &Message) -> String {
    m.get(base::ORIGIN_HOST)
        .and_then(Result::ok)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// What an in-process server saw of one session: how many times, and the T bits.
#[derive(Default)]
struct Seen {
    by_session: Mutex<HashMap<String, Vec<bool>>>,
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// An in-process DCCA server answering 2001 after `delay`, recording what it handles.
async fn server(host: &str, delay: Duration, max_handlers: Option<usize>) -> (Node, Arc<Seen>) {
    let mut cfg = NodeConfig::new(host, REALM);
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen
        .push("127.0.0.1:0".parse::<SocketAddr>().unwrap().into());
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    if let Some(m) = max_handlers {
        cfg.max_concurrent_handlers = m;
    }
    let node = Node::start(cfg).await.unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    node.register(
        DCCA,
        handler_fn(move |req| {
            let s = s.clone();
            async move {
                s.started.fetch_add(1, Ordering::SeqCst);
                let session = req.msg.session_id().unwrap_or_default().to_string();
                s.by_session
                    .lock()
                    .unwrap()
                    .entry(session)
                    .or_default()
                    .push(req.retransmitted);
                tokio::time::sleep(delay).await;
                s.finished.fetch_add(1, Ordering::SeqCst);
                req.answer(ResultCode::DIAMETER_SUCCESS)
            }
        }),
    );
    (node, seen)
}

fn spawn_request(
    node: &Node,
    req: MessageBuilder,
    timeout: Duration,
) -> JoinHandle<(Outcome, Instant)> {
    let node = node.clone();
    tokio::spawn(async move {
        let r = node.request_with_timeout(req, timeout).await;
        (r, Instant::now())
    })
}

/// Joins request tasks, all of them within `within`.
async fn join_all(
    tasks: Vec<(String, JoinHandle<(Outcome, Instant)>)>,
    within: Duration,
) -> Vec<(String, Outcome, Instant)> {
    let all = futures::future::join_all(tasks.into_iter().map(|(s, t)| async move {
        let (r, at) = t.await.expect("request task");
        (s, r, at)
    }));
    tokio::time::timeout(within, all)
        .await
        .expect("a request never completed (I1: no hangs)")
}

async fn wait_until(what: &str, within: Duration, f: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

fn assert_success_from(r: &Outcome, host: &str, what: &str) {
    match r {
        Ok(a) => {
            assert_eq!(rc(a), 2001, "{what}");
            assert!(!a.header().flags.is_error(), "{what}");
            assert_eq!(origin(a), host, "{what}: answered by the wrong server");
        }
        Err(e) => panic!("{what}: {e:?}"),
    }
}

fn assert_3002(r: &Outcome, what: &str) {
    match r {
        Err(RequestError::Protocol {
            result_code,
            answer,
        }) => {
            assert_eq!(
                *result_code,
                ResultCode::DIAMETER_UNABLE_TO_DELIVER,
                "{what}"
            );
            assert!(
                answer.header().flags.is_error(),
                "{what}: 3002 without E bit"
            );
            assert_eq!(rc(answer), 3002, "{what}");
        }
        other => panic!("{what}: expected 3002, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------- tests

/// A server SIGKILLed with 200 requests in flight: unpinned requests are answered once by the
/// alternate, requests pinned to the dead server (Destination-Host) get 3002 with the E bit,
/// nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_killed_with_requests_in_flight() {
    let a = EchoProcess::start(SRV_A);
    let b = EchoProcess::start(SRV_B);
    let tw = Duration::from_secs(30);
    let cli = client(
        vec![peer(SRV_A, a.addr, tw), peer(SRV_B, b.addr, tw)],
        &[SRV_A, SRV_B],
    )
    .await;
    assert!(cli.wait_peer(SRV_A, Duration::from_secs(10)).await);
    assert!(cli.wait_peer(SRV_B, Duration::from_secs(10)).await);
    for i in 0..5 {
        let r = cli.request(ccr(&format!("warm;{i}"))).await;
        assert_success_from(&r, SRV_A, "warm-up");
    }
    // Freeze A so that the requests really are in flight when it dies.
    a.signal("STOP");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = format!("kill;{i}");
        let req = if i % 10 == 0 {
            pinned(&s, SRV_A)
        } else {
            ccr(&s)
        };
        tasks.push((s, spawn_request(&cli, req, Duration::from_secs(6))));
    }
    wait_until("200 requests in flight", Duration::from_secs(3), || {
        cli.pending() == 200
    })
    .await;
    let killed = Instant::now();
    a.signal("KILL");
    let results = join_all(tasks, Duration::from_secs(8)).await;
    assert_eq!(results.len(), 200);
    for (i, (s, r, at)) in results.iter().enumerate() {
        if i % 10 == 0 {
            assert_3002(r, s);
        } else {
            assert_success_from(r, SRV_B, s);
        }
        // Failover follows the connection loss, not a request timeout.
        assert!(
            at.duration_since(killed) < Duration::from_secs(3),
            "{s}: completed {:?} after the kill",
            at.duration_since(killed)
        );
    }
    assert_eq!(cli.pending(), 0);
    assert!(!cli.is_peer_available(SRV_A));
    // New requests go to B straight away; pinned ones to A fail at once.
    assert_success_from(&cli.request(ccr("after")).await, SRV_B, "after");
    assert_3002(&cli.request(pinned("after;pinned", SRV_A)).await, "pinned");
    assert_eq!(cli.pending(), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    drop(b);
}

/// As above with an in-process alternate that records what it receives: every request
/// re-sent after the failover carries the T bit, and each reaches it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_over_requests_carry_t_bit() {
    let a = EchoProcess::start(SRV_A);
    let (b, seen) = server(SRV_B, Duration::ZERO, None).await;
    let tw = Duration::from_secs(30);
    let cli = client(
        vec![
            peer(SRV_A, a.addr, tw),
            peer(SRV_B, b.listen_addrs()[0], tw),
        ],
        &[SRV_A, SRV_B],
    )
    .await;
    assert!(cli.wait_peer(SRV_A, Duration::from_secs(10)).await);
    assert!(cli.wait_peer(SRV_B, Duration::from_secs(10)).await);
    a.signal("STOP");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = format!("tbit;{i}");
        tasks.push((
            s.clone(),
            spawn_request(&cli, ccr(&s), Duration::from_secs(6)),
        ));
    }
    wait_until("100 requests in flight", Duration::from_secs(3), || {
        cli.pending() == 100
    })
    .await;
    a.signal("KILL");
    let results = join_all(tasks, Duration::from_secs(8)).await;
    for (s, r, _) in &results {
        assert_success_from(r, SRV_B, s);
    }
    {
        let by_session = seen.by_session.lock().unwrap();
        assert_eq!(by_session.len(), 100);
        for (s, _, _) in &results {
            let t = by_session
                .get(s)
                .unwrap_or_else(|| panic!("{s} never reached B"));
            assert_eq!(
                t,
                &vec![true],
                "{s}: seen {t:?} (count and T bit) at the alternate"
            );
        }
    }
    assert_eq!(cli.pending(), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

/// A server frozen with SIGSTOP (a silent black hole): the watchdog (Tw = 6 s) takes it out
/// of service, its pending requests fail over once with the T bit, and after SIGCONT its late
/// answers are discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_peer_detected_by_watchdog() {
    let tw = Duration::from_secs(6);
    let a = EchoProcess::start(SRV_A);
    let (b, seen) = server(SRV_B, Duration::ZERO, None).await;
    let cli = client(
        vec![
            peer(SRV_A, a.addr, tw),
            peer(SRV_B, b.listen_addrs()[0], Duration::from_secs(30)),
        ],
        &[SRV_A, SRV_B],
    )
    .await;
    assert!(cli.wait_peer(SRV_A, Duration::from_secs(10)).await);
    assert!(cli.wait_peer(SRV_B, Duration::from_secs(10)).await);
    // Traffic from A re-arms its watchdog: the silence starts now.
    assert_success_from(&cli.request(ccr("warm")).await, SRV_A, "warm-up");
    a.signal("STOP");
    let stopped = Instant::now();
    let timeout = Duration::from_secs(25);
    let mut early = Vec::new();
    for i in 0..30 {
        let s = format!("frozen;{i}");
        early.push((s.clone(), spawn_request(&cli, ccr(&s), timeout)));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 30..40 {
        let s = format!("frozen;{i}");
        early.push((s.clone(), spawn_request(&cli, ccr(&s), timeout)));
    }
    // RFC 3539: DWR after Tw of silence, SUSPECT (failover) after another Tw; each timer is
    // Tw ± 2 s of jitter, so the bound is 2·(Tw + 2 s), plus scheduling slack.
    let bound = 2 * (tw + Duration::from_secs(2)) + Duration::from_secs(1);
    wait_until("A taken out of service", bound, || {
        !cli.is_peer_available(SRV_A)
    })
    .await;
    let detected = stopped.elapsed();
    eprintln!("half-open peer detected after {detected:?} (Tw {tw:?})");
    assert!(detected >= tw, "detected after {detected:?}, before Tw");
    // The requests pending on A fail over right away.
    let early = join_all(early, Duration::from_secs(3)).await;
    for (s, r, _) in &early {
        assert_success_from(r, SRV_B, s);
    }
    // Requests sent now go to B directly.
    let mut late = Vec::new();
    for i in 0..10 {
        let s = format!("late;{i}");
        late.push((s.clone(), spawn_request(&cli, ccr(&s), timeout)));
    }
    let late = join_all(late, Duration::from_secs(3)).await;
    for (s, r, _) in &late {
        assert_success_from(r, SRV_B, s);
    }
    // Thaw A: it answers the 40 requests and the DWR it was sent; the answers are stale.
    a.signal("CONT");
    wait_until(
        "A back (failback on its DWA)",
        Duration::from_secs(4),
        || cli.is_peer_available(SRV_A),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cli.pending(), 0);
    {
        let by_session = seen.by_session.lock().unwrap();
        for (s, _, _) in &early {
            assert_eq!(by_session.get(s), Some(&vec![true]), "{s} at the alternate");
        }
        for (s, _, _) in &late {
            assert_eq!(
                by_session.get(s),
                Some(&vec![false]),
                "{s} at the alternate"
            );
        }
    }
    // A serves again, by priority.
    assert_success_from(&cli.request(ccr("thawed")).await, SRV_A, "after SIGCONT");
    a.signal("KILL");
    cli.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

/// A peer slower than the request deadline: each request times out exactly once, nothing
/// stays pending, and the late answers are discarded without harm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_peer_times_out_once_and_late_answers_are_discarded() {
    let (srv, seen) = server(SRV_B, Duration::from_millis(1500), None).await;
    let cli = client(
        vec![peer(SRV_B, srv.listen_addrs()[0], Duration::from_secs(30))],
        &[SRV_B],
    )
    .await;
    assert!(cli.wait_peer(SRV_B, Duration::from_secs(5)).await);
    let deadline = Duration::from_millis(400);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = format!("slow;{i}");
        tasks.push((s.clone(), spawn_request(&cli, ccr(&s), deadline)));
    }
    let results = join_all(tasks, Duration::from_secs(3)).await;
    for (s, r, at) in &results {
        assert!(
            matches!(r, Err(RequestError::Timeout(_))),
            "{s}: expected a timeout, got {r:?}"
        );
        let took = at.duration_since(t0);
        assert!(
            took >= deadline && took < deadline + Duration::from_millis(700),
            "{s}: timed out after {took:?}"
        );
    }
    assert_eq!(cli.pending(), 0);
    // The server finishes and answers; the client drops the answers (unknown Hop-by-Hop).
    wait_until("slow handlers done", Duration::from_secs(4), || {
        seen.finished.load(Ordering::SeqCst) == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cli.pending(), 0);
    assert!(cli.is_peer_available(SRV_B));
    // The connection is fine, and a new request is not matched with a stale answer.
    let r = cli
        .request_with_timeout(ccr("patient"), Duration::from_secs(4))
        .await;
    assert_success_from(&r, SRV_B, "patient request");
    assert_eq!(r.unwrap().session_id(), Some("patient"));
    assert_eq!(cli.pending(), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;
}

/// Destination-Host names a configured peer that is down: 3002 with the E bit, at once, and
/// not re-routed to the alternate.
#[tokio::test]
async fn request_pinned_to_dead_peer_gets_3002() {
    let (b, seen) = server(SRV_B, Duration::ZERO, None).await;
    let cli = client(
        vec![
            peer(SRV_A, free_addr(), Duration::from_secs(30)),
            peer(SRV_B, b.listen_addrs()[0], Duration::from_secs(30)),
        ],
        &[SRV_A, SRV_B],
    )
    .await;
    assert!(cli.wait_peer(SRV_B, Duration::from_secs(5)).await);
    let t0 = Instant::now();
    let r = cli.request(pinned("pinned", SRV_A)).await;
    assert_3002(&r, "pinned to the dead peer");
    assert!(t0.elapsed() < Duration::from_secs(1));
    if let Err(RequestError::Protocol { answer, .. }) = &r {
        assert_eq!(answer.session_id(), Some("pinned"));
        // Built by the client itself: its own Origin-Host.
        assert_eq!(origin(answer), CLIENT);
    }
    assert!(seen.by_session.lock().unwrap().is_empty());
    // Unpinned traffic goes to the live alternate.
    assert_success_from(&cli.request(ccr("free")).await, SRV_B, "unpinned");
    assert_eq!(cli.pending(), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

/// A server with one handler slot and a slow handler answers 3004 DIAMETER_TOO_BUSY to the
/// excess at once instead of queueing it; a client with a small pending table refuses
/// locally with 3004 too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_3004_instead_of_buffering() {
    let (srv, seen) = server(SRV_B, Duration::from_millis(1000), Some(1)).await;
    let cli = client(
        vec![peer(SRV_B, srv.listen_addrs()[0], Duration::from_secs(30))],
        &[SRV_B],
    )
    .await;
    assert!(cli.wait_peer(SRV_B, Duration::from_secs(5)).await);
    let t0 = Instant::now();
    let first = spawn_request(&cli, ccr("busy;0"), Duration::from_secs(4));
    wait_until(
        "first request in the handler",
        Duration::from_secs(2),
        || seen.started.load(Ordering::SeqCst) == 1,
    )
    .await;
    let mut tasks = Vec::new();
    for i in 1..20 {
        let s = format!("busy;{i}");
        tasks.push((
            s.clone(),
            spawn_request(&cli, ccr(&s), Duration::from_secs(4)),
        ));
    }
    let results = join_all(tasks, Duration::from_secs(3)).await;
    for (s, r, at) in &results {
        match r {
            Ok(a) => {
                assert_eq!(rc(a), 3004, "{s}");
                assert!(a.header().flags.is_error(), "{s}: 3004 without E bit");
                assert_eq!(origin(a), SRV_B);
            }
            Err(e) => panic!("{s}: {e:?}"),
        }
        // Refused at once, not after the busy handler finished.
        assert!(at.duration_since(t0) < Duration::from_millis(900), "{s}");
    }
    let (r, _) = first.await.unwrap();
    assert_success_from(&r, SRV_B, "the request holding the slot");
    assert_eq!(seen.started.load(Ordering::SeqCst), 1);
    assert_eq!(cli.pending(), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;

    // The sending side: at most `max_pending` requests in flight (to a slow server with
    // room), the rest refused locally at once.
    let (srv, _) = server(SRV_B, Duration::from_millis(1000), None).await;
    let mut cfg = NodeConfig::new(CLIENT, "client.realm");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.peers
        .push(peer(SRV_B, srv.listen_addrs()[0], Duration::from_secs(30)));
    cfg.routes.push(relay_route(REALM, Some(DCCA), &[SRV_B]));
    cfg.max_pending = 3;
    let small = Node::start(cfg).await.unwrap();
    assert!(small.wait_peer(SRV_B, Duration::from_secs(5)).await);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = format!("local;{i}");
        tasks.push((
            s.clone(),
            spawn_request(&small, ccr(&s), Duration::from_secs(4)),
        ));
    }
    let results = join_all(tasks, Duration::from_secs(5)).await;
    let mut answered = 0;
    let mut local_busy = 0;
    for (s, r, _) in &results {
        match r {
            Ok(a) if rc(a) == 2001 => answered += 1,
            Err(RequestError::Protocol {
                result_code,
                answer,
            }) if *result_code == ResultCode::DIAMETER_TOO_BUSY => {
                assert!(answer.header().flags.is_error(), "{s}");
                local_busy += 1;
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    assert_eq!((answered, local_busy), (3, 7));
    assert_eq!(small.pending(), 0);
    small.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;
}
