//! Nothing lost, nothing charged twice: the `ocs` binary as a child process, killed with
//! SIGKILL and restarted on the same data file, while a PCEF retransmits what it got no
//! answer for with the T bit (RFC 4006 §5.2, RFC 6733 §5.5.4).

mod common;

use common::*;
use diameter_codec::{CommandFlags, Message, MessageBuilder};
use ocs::model::RequestType;
use rand::Rng;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `ocs` binary on the same data file across restarts.
struct OcsProcess {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    diameter: SocketAddr,
    admin: SocketAddr,
    metrics: SocketAddr,
}

impl OcsProcess {
    fn new(dir: &Path, tcc: f64) -> Self {
        let diameter = free_addr();
        let admin = free_addr();
        let metrics = free_addr();
        let data = dir.join("ocs.redb");
        let text = ocs::config::DEMO
            .replace("127.0.0.1:3870", &diameter.to_string())
            .replace("127.0.0.1:3871", &admin.to_string())
            .replace(
                "# metrics = \"127.0.0.1:9470\"",
                &format!("metrics = \"{metrics}\""),
            )
            .replace(
                "\"ocs-data.redb\"",
                &format!("{:?}", data.display().to_string()),
            )
            .replace("tcc = 1200", &format!("tcc = {tcc}"))
            .replace("sweep_interval = 1", "sweep_interval = 0.2")
            // Enough credit that the load never meets the credit limit.
            .replace(
                "total-octets = 1000000000, time",
                "total-octets = 1000000000000000, time",
            );
        let config = dir.join("ocs.toml");
        std::fs::write(&config, text).unwrap();
        Self {
            config,
            log: dir.join("ocs.log"),
            child: None,
            diameter,
            admin,
            metrics,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ocs"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting ocs");
        self.child = Some(child);
    }

    /// Rewrites the configuration file (before [`OcsProcess::start`]).
    fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, edit(text)).unwrap();
    }

    /// SIGKILL (std's `Child::kill` on Unix) and reap.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        c.wait().unwrap()
    }

    /// (available, reserved) total octets of an account, from the operator endpoint.
    async fn octets(&self, key: &str) -> (i64, u64) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((200, j)) =
                ocs::admin::call(self.admin, hyper::Method::GET, &format!("/accounts/{key}")).await
            {
                let b = &j["balances"]["total-octets"];
                return (
                    b["available"].as_i64().unwrap(),
                    b["reserved"].as_u64().unwrap(),
                );
            }
            assert!(Instant::now() < end, "operator endpoint not answering");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Prometheus text.
    async fn metrics(&self) -> String {
        let mut s = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        body
    }
}

impl Drop for OcsProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Requests sent again with the T bit.
static RETRANSMITTED: AtomicU64 = AtomicU64::new(0);

/// Sends until answered: what got no answer (connection lost, OCS killed) goes again with
/// the T bit and the same End-to-End Identifier once the OCS is back.
async fn exchange(pcef: &Pcef, mut b: MessageBuilder) -> Message {
    b.end_to_end = pcef.node.next_end_to_end();
    resend(pcef, b).await
}

/// The CCR-I of session `s` for the rich subscriber, asking for units on rating group 1.
async fn start_with_rsu(pcef: &Pcef, s: &str) -> Message {
    let i = pcef.ccr(
        s,
        RequestType::Initial,
        0,
        Some(IMSI_RICH),
        vec![(rg(1), rsu(), None)],
    );
    exchange(pcef, i).await
}

/// The CCR-T (number 2) of session `s`, reporting one octet used on rating group 1.
async fn end_with_one_octet(pcef: &Pcef, s: &str) -> Message {
    let t = pcef.ccr(
        s,
        RequestType::Termination,
        2,
        None,
        vec![(rg(1), None, octets(1))],
    );
    exchange(pcef, t).await
}

/// As [`exchange`] for a request that keeps its End-to-End Identifier and flags.
async fn resend(pcef: &Pcef, mut b: MessageBuilder) -> Message {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(a) = pcef
            .node
            .request_with_timeout(b.clone(), Duration::from_secs(2))
            .await
        {
            return a;
        }
        assert!(Instant::now() < end, "no answer in 30 s");
        b.flags = b.flags.with(CommandFlags::RETRANSMIT, true);
        RETRANSMITTED.fetch_add(1, Ordering::Relaxed);
        pcef.node.wait_peer(OCS_HOST, Duration::from_secs(5)).await;
    }
}

#[test]
fn unknown_config_key_is_refused_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = ocs::config::DEMO.replace(
        "sweep_interval = 1",
        "sweep_interval = 1\nsweep_intervall = 2",
    );
    std::fs::write(&path, text).unwrap();
    let line = ocs::config::DEMO
        .lines()
        .position(|l| l.starts_with("sweep_interval"))
        .unwrap()
        + 2;
    let out = Command::new(env!("CARGO_BIN_EXE_ocs"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("bad.toml:{line}:1: ")), "{err}");
    assert!(err.contains("ocs.sweep_intervall"), "{err}");
    assert!(err.contains("unknown key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmission_after_restart_gets_the_stored_answer() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = OcsProcess::new(dir.path(), 60.0);
        p.start();
        let pcef = Pcef::start("pcef.visited.test", p.diameter, Duration::from_secs(2)).await;
        assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(15)).await);
        let (initial, _) = p.octets(IMSI_RICH).await;
        let s = "s;restart";
        start_with_rsu(&pcef, s).await;
        let mut u = pcef.ccr(
            s,
            RequestType::Update,
            1,
            None,
            vec![(rg(1), rsu(), octets(300_000))],
        );
        u.end_to_end = pcef.node.next_end_to_end();
        let first = pcef.node.request(u.clone()).await.unwrap();
        assert_eq!(result_code(&first), 2001);
        assert_eq!(p.octets(IMSI_RICH).await, (initial - 1_300_000, 1_000_000));

        let osi = pcef.node.peer_info(OCS_HOST).unwrap().origin_state_id;
        assert!(osi.is_some());
        p.kill9();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        p.start();
        assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(15)).await);
        // Its state was kept, so its Origin-State-Id is the same (RFC 6733 §8.16).
        let deadline = Instant::now() + Duration::from_secs(5);
        let now = loop {
            // The PCEF may still hold the old connection's facts for a moment.
            let n = pcef
                .node
                .peer_info(OCS_HOST)
                .and_then(|i| i.origin_state_id);
            if n.is_some() || Instant::now() > deadline {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(now, osi);
        // The same CCR-U with the T bit, to a fresh process: the stored answer, no debit.
        u.flags = u.flags.with(CommandFlags::RETRANSMIT, true);
        // (The PCEF may not have seen the old connection go yet: resend retries.)
        let again = resend(&pcef, u.clone()).await;
        assert_eq!(result_code(&again), 2001);
        assert_eq!(msccs(&again)[0].data, msccs(&first)[0].data);
        // Without the T bit and with a new End-to-End: the same.
        u.flags = u.flags.with(CommandFlags::RETRANSMIT, false);
        u.end_to_end = pcef.node.next_end_to_end();
        let third = resend(&pcef, u).await;
        assert_eq!(msccs(&third)[0].data, msccs(&first)[0].data);
        assert_eq!(p.octets(IMSI_RICH).await, (initial - 1_300_000, 1_000_000));
        let t = end_with_one_octet(&pcef, s).await;
        assert_eq!(result_code(&t), 2001);
        assert_eq!(p.octets(IMSI_RICH).await, (initial - 300_001, 0));
        let m = p.metrics().await;
        assert!(m.contains("ocs_ccr_total"), "{m}");
        assert!(m.contains("duplicate=\"true\""), "{m}");
        pcef.shutdown().await;
        // SIGTERM: a clean stop (DPR, the data file closed), exit status 0.
        assert!(p.terminate().success());
        // The operator command reads the data file of the stopped OCS.
        let out = Command::new(env!("CARGO_BIN_EXE_ocs"))
            .args(["account", "show", IMSI_RICH, "--config"])
            .arg(&p.config)
            .arg("--data")
            .arg(dir.path().join("ocs.redb"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            j["balances"]["total-octets"]["available"].as_i64(),
            Some(initial - 300_001)
        );
    })
    .await
    .expect("bounded to 60 s");
}

/// With `[store] durable = false` no commit waits for the disk, yet a `kill -9` keeps what
/// was answered more than `checkpoint_interval` before it: the writer makes a durable
/// commit within the interval although no request follows (redb keeps a non-durable commit
/// in the process until a durable one; without it the restart would find the file as the
/// process opened it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_durable_kill_9_keeps_what_was_answered_a_checkpoint_interval_before() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let mut p = OcsProcess::new(dir.path(), 60.0);
        let interval = Duration::from_millis(200);
        p.edit_config(|text| {
            let edited = text
                .replacen("durable = true ", "durable = false ", 1)
                .replacen("checkpoint_interval = 1 ", "checkpoint_interval = 0.2 ", 1);
            assert!(edited.contains("durable = false "), "{edited}");
            assert!(edited.contains("checkpoint_interval = 0.2 "), "{edited}");
            edited
        });
        p.start();
        let pcef = Pcef::start("pcef.visited.test", p.diameter, Duration::from_secs(2)).await;
        assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(15)).await);
        let (initial, _) = p.octets(IMSI_RICH).await;
        let s = "s;not-durable";
        let i = start_with_rsu(&pcef, s).await;
        assert_eq!(result_code(&i), 2001);
        let u = exchange(
            &pcef,
            pcef.ccr(
                s,
                RequestType::Update,
                1,
                None,
                vec![(rg(1), rsu(), octets(300_000))],
            ),
        )
        .await;
        assert_eq!(result_code(&u), 2001);
        let charged = (initial - 1_300_000, 1_000_000);
        assert_eq!(p.octets(IMSI_RICH).await, charged);
        // Nothing more is asked of the OCS: the durable commit comes from its own timer.
        tokio::time::sleep(interval * 4).await;
        p.kill9();
        p.start();
        assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(15)).await);
        // The charge and the reservation are kept, and so is the session: its CCR-T is
        // answered 2001 (not 5002) and settles the reservation.
        assert_eq!(p.octets(IMSI_RICH).await, charged, "lost by the kill -9");
        let t = end_with_one_octet(&pcef, s).await;
        assert_eq!(result_code(&t), 2001);
        assert_eq!(p.octets(IMSI_RICH).await, (initial - 300_001, 0));
        pcef.shutdown().await;
        assert!(p.terminate().success());
    })
    .await
    .expect("bounded to 60 s");
}

/// What the load client saw.
#[derive(Default)]
struct Tally {
    /// Octets reported in Used-Service-Unit of CCRs answered 2001.
    charged: AtomicU64,
    /// CCRs answered.
    answered: AtomicU64,
    /// Answers other than 2001.
    refused: AtomicU64,
}

/// One PCEF session after another: CCR-I, updates reporting part of each grant, and (for
/// most sessions) CCR-T; the rest are abandoned for the Tcc sweep.
async fn load_worker(pcef: Arc<Pcef>, id: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut n_session = 0;
    while !stop.load(Ordering::Relaxed) {
        n_session += 1;
        let s = format!("pcef.visited.test;{id};{n_session}");
        let a = exchange(
            &pcef,
            pcef.ccr(
                &s,
                RequestType::Initial,
                0,
                Some(IMSI_RICH),
                vec![(rg(1), rsu(), None)],
            ),
        )
        .await;
        tally.answered.fetch_add(1, Ordering::Relaxed);
        if result_code(&a) != 2001 {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "CCR-I refused: {} {:?}",
                result_code(&a),
                a.get(diameter_codec::dict::base::ERROR_MESSAGE)
            );
            continue;
        }
        let mut granted = granted_octets(&msccs(&a)[0]).unwrap();
        let updates = rand::rng().random_range(1..6u32);
        let mut live = true;
        for n in 1..=updates {
            let used = rand::rng().random_range(1..=granted);
            let a = exchange(
                &pcef,
                pcef.ccr(
                    &s,
                    RequestType::Update,
                    n,
                    None,
                    vec![(rg(1), rsu(), octets(used))],
                ),
            )
            .await;
            tally.answered.fetch_add(1, Ordering::Relaxed);
            if result_code(&a) != 2001 {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "CCR-U refused: {} {:?}",
                    result_code(&a),
                    a.get(diameter_codec::dict::base::ERROR_MESSAGE)
                );
                live = false;
                break;
            }
            tally.charged.fetch_add(used, Ordering::Relaxed);
            granted = granted_octets(&msccs(&a)[0]).unwrap();
        }
        if live && !id.is_multiple_of(4) {
            let used = rand::rng().random_range(0..=granted);
            let a = exchange(
                &pcef,
                pcef.ccr(
                    &s,
                    RequestType::Termination,
                    updates + 1,
                    None,
                    vec![(rg(1), None, octets(used))],
                ),
            )
            .await;
            tally.answered.fetch_add(1, Ordering::Relaxed);
            if result_code(&a) == 2001 {
                tally.charged.fetch_add(used, Ordering::Relaxed);
            } else {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_and_charges_nothing_twice() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        // Longer than a restart takes, so sessions live through it; the abandoned ones expire
        // after the load.
        let tcc = 6.0;
        let mut p = OcsProcess::new(dir.path(), tcc);
        p.start();
        let pcef = Arc::new(Pcef::start("pcef.visited.test", p.diameter, Duration::from_secs(2)).await);
        assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(15)).await);
        let (initial, reserved) = p.octets(IMSI_RICH).await;
        assert_eq!(reserved, 0);
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let workers: Vec<_> = (0..48)
            .map(|id| tokio::spawn(load_worker(pcef.clone(), id, stop.clone(), tally.clone())))
            .collect();
        // Kill at random moments, mid-commit included (commits run back to back under load).
        let kills = 4;
        for _ in 0..kills {
            let wait = rand::rng().random_range(400..1500u64);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let before = tally.answered.load(Ordering::Relaxed);
            p.kill9();
            p.start();
            assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(15)).await, "restart");
            assert!(before > 0, "no traffic before the kill");
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
        let answered = tally.answered.load(Ordering::Relaxed);
        let charged = tally.charged.load(Ordering::Relaxed);
        assert!(answered > 200, "too little load: {answered} CCRs");
        let retransmitted = RETRANSMITTED.load(Ordering::Relaxed);
        assert!(retransmitted > 0, "no CCR was in flight at a kill");
        assert_eq!(tally.refused.load(Ordering::Relaxed), 0, "refusals under load");
        // Abandoned sessions: their reservations go back within Tcc (and a sweep).
        let end = Instant::now() + Duration::from_secs_f64(tcc + 5.0);
        let (available, reserved) = loop {
            let b = p.octets(IMSI_RICH).await;
            if b.1 == 0 || Instant::now() > end {
                break b;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(reserved, 0, "a reservation outlived its lease");
        assert_eq!(
            available,
            initial - charged as i64,
            "final balance = initial − Σ unique used units ({answered} CCRs, {kills} kills)"
        );
        // Group commit: more than one CCR per commit on average under load.
        let m = p.metrics().await;
        let get = |name: &str| -> f64 {
            m.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let (sum, count) = (get("ocs_store_batch_size_sum"), get("ocs_store_batch_size_count"));
        assert!(count > 0.0, "{m}");
        eprintln!(
            "{answered} CCRs answered, {kills} kills, {retransmitted} sent again with the T bit, {charged} octets charged, mean batch {:.1} since the last restart",
            sum / count
        );
        assert!(sum / count > 1.0, "batch size {sum}/{count}");
    })
    .await
    .expect("bounded to 60 s");
}
