//! `[store] durable = true`: the `pcrf` binary killed with SIGKILL and started again on the
//! same data file still knows its Gx session and the Rx session bound to it.

mod common;

#[path = "../../tests/interop/harness.rs"]
mod harness;

use common::*;
use harness::{Killed, free_port, wait_listening};
use pcrf::rx::rule_name;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

const UE: [u8; 4] = [10, 45, 0, 2];
const GX_SID: &str = "pcef.epc.test;gx-durable";
const RX_SID: &str = "pcscf.ims.test;call-durable";

/// The example home configuration with the durable store, its operator endpoint on
/// `admin`, written into `dir`.
fn config(dir: &Path, admin: SocketAddr) -> std::path::PathBuf {
    let spr = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spr.toml");
    let text = pcrf::config::DEMO
        .replace(
            "admin = \"127.0.0.1:3872\"",
            &format!("admin = \"{admin}\""),
        )
        .replace("file = \"spr.toml\"", &format!("file = \"{spr}\""));
    assert!(text.contains(&admin.to_string()));
    let path = dir.join("pcrf.toml");
    std::fs::write(&path, format!("{text}\n[store]\ndurable = true\n")).unwrap();
    path
}

fn spawn(config: &Path, port: u16, metrics: u16) -> Killed {
    let pcrf = Killed(
        Command::new(env!("CARGO_BIN_EXE_pcrf"))
            .args(["--config", config.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics", &format!("127.0.0.1:{metrics}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pcrf"),
    );
    wait_listening(port);
    pcrf
}

/// Waits for the `n`th request (from 1) a client kept.
async fn nth(
    kept: &std::sync::Mutex<Vec<diameter_codec::Message>>,
    n: usize,
) -> diameter_codec::Message {
    let end = tokio::time::Instant::now() + T;
    loop {
        if let Some(m) = kept.lock().unwrap().get(n - 1) {
            return m.clone();
        }
        assert!(tokio::time::Instant::now() < end, "request {n} never came");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_killed_pcrf() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port, metrics) = (free_port(), free_port(), free_port());
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let cfg = config(dir.path(), admin);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    let pcrf = spawn(&cfg, port, metrics);
    let pcef = Pcef::connect("pcef.epc.test", addr, Some(7), RarReply::Success).await;
    let a = pcef.send(pcef.ccr_i(GX_SID, IMSI_1)).await;
    assert_eq!(rc(&a), Some(2001));
    assert!(!installed(&a).is_empty(), "CCA-I installs rules");
    let af = Af::connect("pcscf.ims.test", addr, AfReply::Success).await;
    let a = af
        .send(af.aar(RX_SID, UE, vec![audio_component(1)], &[4]))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let derived = rule_name(RX_SID, 1);
    let rar = nth(&pcef.rars, 1).await;
    assert!(installed(&rar).iter().any(|(n, _)| *n == derived));
    assert!(
        dir.path().join("pcrf.redb").exists(),
        "data file beside the config"
    );

    let osi = |pcef: &Pcef| {
        pcef.node
            .peer_info(PCRF_HOST)
            .and_then(|i| i.origin_state_id)
            .expect("Origin-State-Id in the CEA")
    };
    let before = osi(&pcef);

    // kill -9: nothing is flushed or closed.
    drop(pcrf);
    pcef.node.shutdown(T).await;
    af.node.shutdown(T).await;
    let _pcrf = spawn(&cfg, port, metrics);
    // The gauges count the sessions loaded (set just after the port opens: polled).
    let wants = [
        "pcrf_gx_sessions{node=\"pcrf.home.test\"} 1",
        "pcrf_rx_sessions{node=\"pcrf.home.test\"} 1",
    ];
    let end = tokio::time::Instant::now() + T;
    loop {
        let m = http(([127, 0, 0, 1], metrics).into(), "GET", "/metrics").await;
        if wants.iter().all(|w| m.contains(w)) {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "{wants:?} not in\n{m}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The same PCEF and AF (same Origin-State-Id: they did not restart) reconnect.
    let pcef = Pcef::connect("pcef.epc.test", addr, Some(7), RarReply::Success).await;
    let af = Af::connect("pcscf.ims.test", addr, AfReply::Success).await;
    // RFC 6733 §8.16: the state was kept, so the Origin-State-Id is the same.
    assert_eq!(osi(&pcef), before);

    // The PCEF's next update is served (not 5002 DIAMETER_UNKNOWN_SESSION_ID).
    let a = pcef.send(pcef.ccr(GX_SID, 2, 1, None)).await;
    assert_eq!(rc(&a), Some(2001), "CCR-U after the restart: {a:?}");
    // The operator's push reaches the reconnected PCEF.
    let body = http(
        admin,
        "POST",
        &format!("/sessions/{GX_SID}/rar?install=video"),
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let rar = nth(&pcef.rars, 1).await;
    assert_eq!(rar.session_id(), Some(GX_SID));
    assert!(installed(&rar).iter().any(|(n, _)| n == "video"), "{rar:?}");
    // The AF session is still bound: its STR removes the derived rule, kept whole (AF
    // parts included) across the restart.
    let body = http(admin, "GET", &format!("/rx-sessions/{RX_SID}")).await;
    assert!(
        body.contains(&format!("\"gx_session\":\"{GX_SID}\"")),
        "{body}"
    );
    let body = http(admin, "GET", &format!("/sessions/{GX_SID}")).await;
    assert!(
        body.contains("icid-1"),
        "AF-Charging-Identifier kept: {body}"
    );
    let a = af.send(af.str_(RX_SID)).await;
    assert_eq!(rc(&a), Some(2001), "STR after the restart: {a:?}");
    let rar = nth(&pcef.rars, 2).await;
    assert_eq!(removed(&rar), [derived]);
    // And the session ends normally.
    let a = pcef.send(pcef.ccr(GX_SID, 3, 2, None)).await;
    assert_eq!(rc(&a), Some(2001), "CCR-T after the restart: {a:?}");
}
