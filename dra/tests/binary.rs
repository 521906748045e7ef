//! The `dra` binary: a proxy-mode DRA with the durable store in front of two real PCRFs,
//! killed with SIGKILL mid-session and started again on the same file: Gx and Rx requests
//! of the live sessions still reach the PCRF that holds them (faults.md, "DRA restart
//! losing bindings"); `dra bindings` lists them; after the terminations the table is empty.

mod common;
#[allow(unused_qualifications)]
#[path = "../../tests/interop/harness.rs"]
mod harness;

use common::*;
use harness::{Killed, free_port, wait_listening};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(config: &std::path::Path, metrics: u16, extra: &[&str]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_dra"))
            .arg("--config")
            .arg(config)
            .arg("--metrics")
            .arg(format!("127.0.0.1:{metrics}"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dra binary"),
    )
}

/// The Prometheus text of the running DRA.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

async fn admin(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = dra::admin::get(addr, path).await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Waits until the running DRA sees both PCRFs healthy.
async fn healthy(addr: SocketAddr) {
    let end = Instant::now() + T;
    loop {
        let b = admin(addr, "/pcrfs").await;
        let ok = b["pcrfs"]
            .as_array()
            .is_some_and(|l| l.iter().all(|p| p["healthy"] == true));
        if ok {
            return;
        }
        assert!(Instant::now() < end, "PCRFs not healthy: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_survive_a_kill_9_and_restart() {
    let a = pcrf("pcrf.home.test").await;
    let b = pcrf("pcrf2.home.test").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin_port = free_port();
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let config = dir.path().join("dra.toml");
    std::fs::write(
        &config,
        format!(
            r#"[node]
origin_host = "dra.home.test"
origin_realm = "home.test"
timers = {{ tc = 0.1 }}

[[node.listen]]
addr = "127.0.0.1:{port}"

[dra]
mode = "proxy"
admin = "{admin_addr}"

[[dra.pcrf]]
host = "pcrf.home.test"
connect = "{}"

[[dra.pcrf]]
host = "pcrf2.home.test"
connect = "{}"

[store]
file = "bindings.redb"
"#,
            a.listen_addrs()[0],
            b.listen_addrs()[0]
        ),
    )
    .unwrap();
    let dra_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let metrics = free_port();
    let proc = start(&config, metrics, &[]);
    wait_listening(port);
    wait_listening(admin_port);
    healthy(admin_addr).await;

    let pcef = Client::connect("pcef.epc.test", GX, dra_addr, &[]).await;
    let af = Client::connect("af.epc.test", RX, dra_addr, &[]).await;
    let ues = [
        (IMSI_1, [10, 45, 0, 11], "pcef.epc.test;restart;1"),
        (IMSI_2, [10, 45, 0, 12], "pcef.epc.test;restart;2"),
    ];
    let mut holders = Vec::new();
    for (imsi, ip, sid) in ues {
        let ans = pcef.send(ccr_i(&pcef.host, sid, imsi, ip)).await;
        assert_eq!(rc(&ans), Some(2001));
        holders.push(origin(&ans));
    }
    let listed = admin(admin_addr, "/bindings").await;
    assert_eq!(listed["stats"]["bindings"], 2, "{listed}");

    // kill -9: no DPR, no clean-up; then the same binary on the same file and port.
    let text = scrape(metrics);
    for want in [
        "dra_bindings{node=\"dra.home.test\"} 2",
        "dra_bound_sessions{node=\"dra.home.test\",state=\"active\"} 2",
        "dra_requests_total{node=\"dra.home.test\",interface=\"gx\",kind=\"establish\",mode=\"proxy\",result=\"proxied\"} 2",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    drop(proc);
    // Started again on one thread polling its sockets between messages (`--busy-poll-us`):
    // the same service.
    let proc = start(
        &config,
        metrics,
        &["--threads", "1", "--busy-poll-us", "200"],
    );
    wait_listening(port);
    wait_listening(admin_port);
    healthy(admin_addr).await;
    assert!(
        pcef.node.wait_peer(DRA_HOST, T).await,
        "PCEF did not reconnect"
    );
    assert!(af.node.wait_peer(DRA_HOST, T).await, "AF did not reconnect");

    // `dra bindings` asks the running DRA.
    let out = Command::new(env!("CARGO_BIN_EXE_dra"))
        .args(["bindings", "--admin", &admin_addr.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["stats"]["bindings"], 2, "{listed}");

    for ((_, ip, sid), holder) in ues.iter().zip(&holders) {
        // Gx update: a PCRF that does not hold the session would answer 5002.
        let ans = pcef.send(ccr(&pcef.host, sid, 2, 1)).await;
        assert_eq!((rc(&ans), &origin(&ans)), (Some(2001), holder));
        // Rx by the UE address reaches the same PCRF, which binds it to the Gx session
        // it holds (a PCRF that did not would answer 5065).
        let ans = af
            .send(aar(&af.host, &format!("af;{sid}"), Some(*ip)))
            .await;
        assert_eq!((rc(&ans), &origin(&ans)), (Some(2001), holder));
    }
    for (_, _, sid) in ues {
        let ans = af.send(str_(&af.host, &format!("af;{sid}"))).await;
        assert_eq!(rc(&ans), Some(2001));
        let ans = pcef.send(ccr(&pcef.host, sid, 3, 2)).await;
        assert_eq!(rc(&ans), Some(2001));
    }
    let end = Instant::now() + T;
    loop {
        let listed = admin(admin_addr, "/bindings").await;
        if listed["stats"]["bindings"] == 0 {
            break;
        }
        assert!(Instant::now() < end, "bindings left: {listed}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The gauges are set right after each change: wait for the last one.
    let end = Instant::now() + T;
    while !scrape(metrics).contains("dra_bindings{node=\"dra.home.test\"} 0") {
        assert!(Instant::now() < end, "{}", scrape(metrics));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = scrape(metrics);
    for want in [
        "dra_terminations_total{node=\"dra.home.test\",interface=\"gx\"} 2",
        "dra_terminations_total{node=\"dra.home.test\",interface=\"rx\"} 2",
        "dra_bindings_released_total{node=\"dra.home.test\",reason=\"terminated\"} 2",
        "dra_binding_age_seconds",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    let status = proc.terminate().expect("dra stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn help_explains_the_defaults_and_bad_configs_name_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_dra"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "127.0.0.1:3868",
        "dra.home.test",
        "pcrf.home.test",
        "--config",
        "bindings",
    ] {
        assert!(text.contains(want), "{want} not in --help:\n{text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        "[node]\norigin_host = \"d\"\norigin_realm = \"r\"\n[dra]\nmoed = \"proxy\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dra"))
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5") && err.contains("moed"), "{err}");
}
