//! pcef-sim against the `ocs` binary as a user starts it (demo subscribers, free ports):
//! `pcef-sim gy` (the PCEF's Gy client) and `pcef-sim load` (its JSON report).
//!
//! The `ocs` binary is the one `cargo test --workspace` builds beside this test; the first
//! test runs `cargo build -p ocs --bin ocs` so that it is there and up to date when only
//! this crate's tests run.

use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PCEF_SIM: &str = env!("CARGO_BIN_EXE_pcef-sim");
/// Demo subscribers (ocs/examples/home.toml).
const IMSI_RICH: &str = "001010000000001";
const IMSI_LOW: &str = "001010000000003";
const IMSI_EMPTY: &str = "001010000000004";

fn ocs_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/ocs-HASH → target/<profile>/ocs
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        // Up to date with the source (a no-op when `cargo test --workspace` built it).
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "--quiet", "-p", "ocs", "--bin", "ocs"]);
        // Without what cargo set for running this test (its package's variables, the
        // library path): the build would otherwise differ from a shell's and rebuild.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_BIN_EXE_")
                || k == "LD_LIBRARY_PATH"
            {
                c.env_remove(&*k);
            }
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        assert!(c.status().unwrap().success(), "building ocs");
        dir.join("ocs")
    })
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The `ocs` binary with no configuration (the demo home OCS) on free ports; killed when
/// dropped.
struct Ocs {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Ocs {
    fn start() -> Self {
        Self::start_with(None)
    }

    /// With this configuration file content instead of the demo.
    fn start_with(config: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let admin = free_addr();
        let mut cmd = Command::new(ocs_bin());
        if let Some(c) = config {
            let p = dir.path().join("ocs.toml");
            std::fs::write(&p, c).unwrap();
            cmd.arg("--config").arg(p);
        }
        let child = cmd
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--admin")
            .arg(admin.to_string())
            .arg("--data")
            .arg(dir.path().join("ocs.redb"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting ocs");
        let end = Instant::now() + Duration::from_secs(20);
        for a in [addr, admin] {
            while std::net::TcpStream::connect(a).is_err() {
                assert!(Instant::now() < end, "ocs not listening on {a}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Self {
            child,
            addr,
            admin,
            _dir: dir,
        }
    }

    /// `ocs account show KEY` through the operator endpoint: (available, reserved) of a
    /// balance.
    fn balance(&self, key: &str, unit: &str) -> (i64, u64) {
        let out = Command::new(ocs_bin())
            .args(["account", "show", key, "--admin", &self.admin.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let b = &v["balances"][unit];
        (
            b["available"].as_i64().unwrap(),
            b["reserved"].as_u64().unwrap(),
        )
    }
}

impl Drop for Ocs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `pcef-sim gy --json` against the OCS; returns the exit code and the report.
fn gy(ocs: &Ocs, args: &[&str]) -> (i32, Value) {
    gy_wait(gy_spawn(ocs, args), args)
}

fn gy_spawn(ocs: &Ocs, args: &[&str]) -> Child {
    Command::new(PCEF_SIM)
        .arg("gy")
        .arg("--to")
        .arg(ocs.addr.to_string())
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn gy_wait(mut child: Child, args: &[&str]) -> (i32, Value) {
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("pcef-sim gy {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn service(r: &Value, rg: u64) -> &Value {
    r["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rating_group"] == rg)
        .unwrap_or_else(|| panic!("no rating group {rg} in {r:#}"))
}

/// Reporting-Reasons sent for a rating group, in order.
fn reasons(r: &Value, rg: u64) -> Vec<String> {
    r["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["mscc"].as_array().unwrap().iter())
        .filter(|m| m["rating_group"] == rg)
        .filter_map(|m| m["reporting_reason"].as_str().map(String::from))
        .collect()
}

fn flow<'a>(s: &'a Value, name: &str) -> &'a str {
    s["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow"] == name)
        .unwrap()["verdict"]
        .as_str()
        .unwrap()
}

/// Every exchange answered 2001 and the CC-Request-Numbers count up from 0 (RFC 4006 §8.2).
fn all_answered_2001(r: &Value) {
    for (n, e) in r["exchanges"].as_array().unwrap().iter().enumerate() {
        assert_eq!(e["result_code"], 2001, "{e:#}");
        assert_eq!(e["number"], n as u64, "{r:#}");
    }
}

/// Grant and consume on two rating groups: CCR-I with one MSCC each (2001), RG 1 reports at
/// its Volume-Quota-Threshold and re-authorises on the armed RAT change (Trigger-Type 4,
/// one CCR-U for the event), an unarmed MCC change sends nothing, RG 2 reports
/// QUOTA_EXHAUSTED, and detach sends CCR-T; the OCS debits exactly what was reported and
/// keeps no reservation.
#[test]
fn grant_consume_thresholds_triggers_and_detach() {
    let ocs = Ocs::start();
    let (before, _) = ocs.balance(IMSI_RICH, "total-octets");
    let (code, r) = gy(
        &ocs,
        &[
            "--imsi",
            IMSI_RICH,
            "--rating-group",
            "1:2000000",
            "--rating-group",
            "2:2000000",
            "--duration",
            "1.2",
            "--event",
            "0.2:rat",
            "--event",
            "0.3:mcc",
        ],
    );
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["accepted"], true);
    assert_eq!(r["ended_by"], "detach");
    all_answered_2001(&r);
    let ex = r["exchanges"].as_array().unwrap();
    assert_eq!(ex[0]["kind"], "initial");
    let rgs: Vec<&Value> = ex[0]["mscc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["rating_group"])
        .collect();
    assert_eq!(rgs, [1, 2]);
    assert_eq!(ex.last().unwrap()["kind"], "termination");
    let r1 = reasons(&r, 1);
    assert!(r1.contains(&"THRESHOLD".to_string()), "{r1:?}");
    assert!(
        r1.contains(&"RATING_CONDITION_CHANGE".to_string()),
        "{r1:?}"
    );
    let rat: Vec<&Value> = ex
        .iter()
        .filter(|e| {
            e["mscc"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["trigger_type"] == 4)
        })
        .collect();
    assert_eq!(rat.len(), 1, "one CCR-U for the RAT change");
    assert_eq!(r["events_ignored"], serde_json::json!([30]));
    let r2 = reasons(&r, 2);
    assert!(r2.contains(&"QUOTA_EXHAUSTED".to_string()), "{r2:?}");
    let mut reported = 0;
    for rg in [1, 2] {
        let s = service(&r, rg);
        assert_eq!(s["state"], "active");
        assert_eq!(s["unit"], "total-octets");
        assert_eq!(s["used"], s["reported"], "{s:#}");
        assert!(s["used"].as_u64().unwrap() > 500_000, "{s:#}");
        assert_eq!(flow(s, "web"), "forwarded");
        reported += s["reported"].as_i64().unwrap();
    }
    let (after, reserved) = ocs.balance(IMSI_RICH, "total-octets");
    assert_eq!(after, before - reported);
    assert_eq!(reserved, 0);
}

/// Validity-Time (RFC 4006 §8.33): a grant that outlives it is reported with
/// Reporting-Reason VALIDITY_TIME and renewed, though far from used up.
#[test]
fn validity_time_expiry_reauthorises() {
    let ocs = Ocs::start_with(Some(
        r#"
[node]
origin_host = "ocs.home.test"
origin_realm = "home.test"
unknown_peer = "accept"

[[rating_group]]
id = 5
unit = "total-octets"
grant = 100000000
validity_time = 1

[[account]]
id = "v"
imsi = "001010000000009"
balance = { total-octets = 1000000000 }
"#,
    ));
    let (code, r) = gy(
        &ocs,
        &[
            "--imsi",
            "001010000000009",
            "--rating-group",
            "5:1000",
            "--duration",
            "1.7",
        ],
    );
    assert_eq!(code, 0, "{r:#}");
    all_answered_2001(&r);
    let ex = r["exchanges"].as_array().unwrap();
    assert_eq!(ex.len(), 3, "CCR-I, one CCR-U, CCR-T: {r:#}");
    assert_eq!(ex[1]["mscc"][0]["reporting_reason"], "VALIDITY_TIME");
    let at = ex[1]["at_ms"].as_u64().unwrap();
    assert!((1000..1500).contains(&at), "{at} ms");
    let s = service(&r, 5);
    assert_eq!(s["granted"], 200_000_000u64);
    assert_eq!(s["used"], s["reported"]);
}

/// Quota-Holding-Time (TS 32.299): the UE idle for longer than it → the usage is reported
/// with Reporting-Reason QHT and the quota given back (nothing reserved meanwhile); when
/// traffic resumes the PCEF asks again.
#[test]
fn quota_holding_time_gives_the_quota_back() {
    let ocs = Ocs::start_with(Some(
        r#"
[node]
origin_host = "ocs.home.test"
origin_realm = "home.test"
unknown_peer = "accept"

[[rating_group]]
id = 7
unit = "total-octets"
grant = 1000000
quota_holding_time = 1

[[account]]
id = "q"
imsi = "001010000000009"
balance = { total-octets = 1000000000 }
"#,
    ));
    let args = [
        "--imsi",
        "001010000000009",
        "--rating-group",
        "7:100000",
        "--idle",
        "0.3:2.2",
        "--duration",
        "2.6",
    ];
    let child = gy_spawn(&ocs, &args);
    std::thread::sleep(Duration::from_millis(1900));
    // Given back: nothing reserved while the UE is idle.
    assert_eq!(ocs.balance("001010000000009", "total-octets").1, 0);
    let (code, r) = gy_wait(child, &args);
    assert_eq!(code, 0, "{r:#}");
    all_answered_2001(&r);
    let ex = r["exchanges"].as_array().unwrap();
    assert_eq!(ex.len(), 4, "CCR-I, QHT, asking again, CCR-T: {r:#}");
    let qht = &ex[1]["mscc"][0];
    assert_eq!(qht["reporting_reason"], "QHT");
    assert_eq!(qht["requested"], false);
    let at = ex[1]["at_ms"].as_u64().unwrap();
    assert!((1250..1900).contains(&at), "{at} ms");
    let again = &ex[2]["mscc"][0];
    assert!(again["reporting_reason"].is_null(), "{again}");
    assert_eq!(again["requested"], true);
    assert!(ex[2]["at_ms"].as_u64().unwrap() >= 2200);
    let s = service(&r, 7);
    assert_eq!(s["granted"], 2_000_000);
    assert_eq!(s["used"], s["reported"]);
    assert_eq!(ocs.balance("001010000000009", "total-octets").1, 0);
}

/// The OCS's refusals reach the PCEF, which refuses the IP-CAN session (document 001 S316):
/// 4012 DIAMETER_CREDIT_LIMIT_REACHED for an empty account, 5030 DIAMETER_USER_UNKNOWN.
#[test]
fn credit_limit_and_unknown_user_refuse_the_session() {
    let ocs = Ocs::start();
    for (imsi, want) in [(IMSI_EMPTY, 4012), ("001019999999999", 5030)] {
        let (code, r) = gy(&ocs, &["--imsi", imsi, "--rating-group", "1"]);
        assert_eq!(code, 3, "{r:#}");
        assert_eq!(r["accepted"], false);
        assert_eq!(r["ended_by"], "refused");
        let ex = r["exchanges"].as_array().unwrap();
        assert_eq!(ex.len(), 1, "no CCR-T after a refused CCR-I: {r:#}");
        assert_eq!(ex[0]["result_code"], want);
        assert_eq!(service(&r, 1)["state"], "blocked");
        assert_eq!(flow(service(&r, 1), "web"), "blocked");
    }
}

/// Final units with TERMINATE (rating group 1 of the subscriber with 1.5 MB): used up →
/// the PCEF ends the session with CCR-T; everything was reported and debited once.
#[test]
fn final_unit_terminate_ends_the_session() {
    let ocs = Ocs::start();
    let (before, _) = ocs.balance(IMSI_LOW, "total-octets");
    let (code, r) = gy(
        &ocs,
        &[
            "--imsi",
            IMSI_LOW,
            "--rating-group",
            "1:5000000",
            "--duration",
            "10",
        ],
    );
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ended_by"], "final-unit-action");
    all_answered_2001(&r);
    let s = service(&r, 1);
    assert_eq!(s["state"], "terminated");
    assert_eq!(s["final_unit"]["action"], "TERMINATE");
    assert_eq!(s["used"], before);
    assert_eq!(s["reported"], before);
    let ex = r["exchanges"].as_array().unwrap();
    let last = ex.last().unwrap();
    assert_eq!(last["kind"], "termination");
    assert_eq!(last["mscc"][0]["reporting_reason"], "FINAL");
    assert_eq!(ocs.balance(IMSI_LOW, "total-octets"), (0, 0));
}

/// Final units with REDIRECT (rating group 2) and RESTRICT_ACCESS (rating group 3, time):
/// after use the flows go to the Redirect-Server, and only the portal the
/// Restriction-Filter-Rules permit passes; each reported with Reporting-Reason FINAL, and
/// the session goes on until detach.
#[test]
fn final_unit_redirect_and_restrict_access() {
    let ocs = Ocs::start();
    let (code, r) = gy(
        &ocs,
        &[
            "--imsi",
            IMSI_LOW,
            "--rating-group",
            "2:10000000",
            "--rating-group",
            "3:200",
            "--duration",
            "2",
        ],
    );
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ended_by"], "detach");
    all_answered_2001(&r);
    let red = service(&r, 2);
    assert_eq!(red["state"], "redirected", "{r:#}");
    assert_eq!(red["final_unit"]["action"], "REDIRECT");
    assert_eq!(flow(red, "web"), "redirected to http://topup.home.test/");
    assert_eq!(flow(red, "portal"), "redirected to http://topup.home.test/");
    assert!(reasons(&r, 2).contains(&"FINAL".to_string()));
    let res = service(&r, 3);
    assert_eq!(res["state"], "restricted", "{r:#}");
    assert_eq!(res["unit"], "time");
    assert_eq!(res["final_unit"]["action"], "RESTRICT_ACCESS");
    assert_eq!(flow(res, "web"), "dropped by filter");
    assert_eq!(flow(res, "portal"), "permitted by filter");
    assert_eq!(res["used"], 90);
    assert_eq!(ocs.balance(IMSI_LOW, "time"), (0, 0));
    assert_eq!(ocs.balance(IMSI_LOW, "total-octets"), (0, 0));
}

/// A top-up mid-session: the OCS's Re-Auth-Request (RFC 4006 §5.5) is answered and
/// followed by a CCR-U with FORCED_REAUTHORISATION; the redirected service gets credit and
/// its traffic back, uses the new credit up and is redirected again. Everything used was
/// reported and debited once.
#[test]
fn topup_reauthorises_a_redirected_service() {
    let ocs = Ocs::start();
    let (before, _) = ocs.balance(IMSI_LOW, "total-octets");
    let args = [
        "--imsi",
        IMSI_LOW,
        "--rating-group",
        "2:10000000",
        "--duration",
        "2.5",
    ];
    let child = gy_spawn(&ocs, &args);
    std::thread::sleep(Duration::from_millis(1000));
    let out = Command::new(ocs_bin())
        .args([
            "account",
            "topup",
            IMSI_LOW,
            "2000000",
            "--unit",
            "total-octets",
        ])
        .args(["--admin", &ocs.admin.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (code, r) = gy_wait(child, &args);
    assert_eq!(code, 0, "{r:#}");
    all_answered_2001(&r);
    assert_eq!(r["reauth_requests"], 1, "{r:#}");
    let reasons = reasons(&r, 2);
    let forced = reasons
        .iter()
        .position(|x| x == "FORCED_REAUTHORISATION")
        .unwrap_or_else(|| panic!("{reasons:?}"));
    // Redirected before the top-up, and again after using its credit.
    assert!(
        reasons[..forced].contains(&"FINAL".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons[forced..].contains(&"FINAL".to_string()),
        "{reasons:?}"
    );
    let s = service(&r, 2);
    assert_eq!(s["state"], "redirected");
    let total = before as u64 + 2_000_000;
    assert_eq!(s["used"], total);
    assert_eq!(s["reported"], total);
    assert_eq!(ocs.balance(IMSI_LOW, "total-octets"), (0, 0));
}

/// Barring mid-session: the OCS's Re-Auth-Request brings a CCR-U answered 4010
/// DIAMETER_END_USER_SERVICE_DENIED (RFC 4006 §9.1) at both levels; the usage it carried
/// was rated all the same, the service is blocked, and with nothing left to charge the
/// PCEF ends the session with CCR-T.
#[test]
fn barring_mid_session_blocks_and_ends_the_session() {
    let ocs = Ocs::start();
    let key = "001010000000002";
    let out = |action: &str| {
        let o = Command::new(ocs_bin())
            .args(["account", action, key, "--admin", &ocs.admin.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    };
    // demo-2 pays in money: 1 unit per MB (rounded up per report).
    let (before, _) = ocs.balance(key, "money");
    let args = [
        "--imsi",
        key,
        "--rating-group",
        "1:400000",
        "--duration",
        "5",
    ];
    let child = gy_spawn(&ocs, &args);
    std::thread::sleep(Duration::from_millis(800));
    out("bar");
    let (code, r) = gy_wait(child, &args);
    out("unbar");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ended_by"], "no-service", "{r:#}");
    assert_eq!(r["reauth_requests"], 1);
    let ex = r["exchanges"].as_array().unwrap();
    let denied = &ex[ex.len() - 2];
    assert_eq!(denied["kind"], "update");
    assert_eq!(denied["result_code"], 4010, "{r:#}");
    assert_eq!(
        denied["mscc"][0]["reporting_reason"],
        "FORCED_REAUTHORISATION"
    );
    assert_eq!(ex.last().unwrap()["kind"], "termination");
    let s = service(&r, 1);
    assert_eq!(s["state"], "blocked");
    assert_eq!(s["result_code"], 4010);
    assert_eq!(flow(s, "web"), "blocked");
    let used = s["used"].as_i64().unwrap();
    assert!(used > 0, "{s:#}");
    assert_eq!(s["reported"], used);
    // The one report with usage (under 1 MB, before the threshold) cost one money unit;
    // the CCR-T carried none; nothing stays reserved.
    assert_eq!(ex.len(), 3, "{r:#}");
    assert_eq!(ex[2]["mscc"][0]["used"], 0);
    let (after, reserved) = ocs.balance(key, "money");
    assert_eq!(reserved, 0);
    assert_eq!(before - after, 1);
}

/// A duplicate CCR (the first CCR-U again, T bit set, same End-to-End Identifier) gets the
/// same answer, and its units are debited once.
#[test]
fn duplicate_update_is_answered_alike_and_charged_once() {
    let ocs = Ocs::start();
    let (before, _) = ocs.balance(IMSI_RICH, "total-octets");
    let (code, r) = gy(
        &ocs,
        &[
            "--imsi",
            IMSI_RICH,
            "--rating-group",
            "2:5000000",
            "--duration",
            "0.5",
            "--retransmit",
            "1",
        ],
    );
    assert_eq!(code, 0, "{r:#}");
    let rt = &r["retransmit"];
    assert_eq!(rt["number"], 1);
    assert_eq!(rt["result_codes"], serde_json::json!([2001, 2001]));
    assert_eq!(rt["same_answer"], true);
    let ex = r["exchanges"].as_array().unwrap();
    assert_eq!(ex[2]["retransmission"], true);
    assert_eq!(ex[2]["number"], 1);
    let s = service(&r, 2);
    assert_eq!(s["used"], s["reported"]);
    let (after, reserved) = ocs.balance(IMSI_RICH, "total-octets");
    assert_eq!(after, before - s["reported"].as_i64().unwrap());
    assert_eq!(reserved, 0);
}

/// `pcef-sim load` against the OCS: every answer 2001, the counts add up, latency
/// percentiles and the server's CPU per request read from /proc/PID.
#[test]
fn load_report_against_the_ocs() {
    let ocs = Ocs::start();
    let out = Command::new(PCEF_SIM)
        .args(["load", "--to", &ocs.addr.to_string()])
        .args(["--in-flight", "8", "--subscribers", "1", "--updates", "5"])
        .args(["--duration", "2", "--warmup", "0.3", "--json"])
        .args(["--server-pid", &ocs.child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scenario"], "gy");
    assert_eq!(r["in_flight"], 8);
    let requests = r["requests"].as_u64().unwrap();
    assert!(requests > 50, "{r:#}");
    assert_eq!(r["answers"], requests);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["result_codes"], serde_json::json!({ "2001": requests }));
    let mut sum = 0;
    for t in ["initial", "update", "termination"] {
        let f = &r["by_type"][t];
        assert_eq!(f["answers"], f["requests"], "{t}");
        assert_eq!(f["result_codes"]["2001"], f["requests"], "{t}");
        sum += f["requests"].as_u64().unwrap();
    }
    assert_eq!(sum, requests);
    // Up to five updates per session opened.
    let (i, u) = (
        r["by_type"]["initial"]["requests"].as_u64().unwrap(),
        r["by_type"]["update"]["requests"].as_u64().unwrap(),
    );
    assert!(u <= 5 * (i + 8) && u > 0, "{r:#}");
    let tps = r["tps"].as_f64().unwrap();
    let window = r["duration_s"].as_f64().unwrap();
    assert!((tps * window - requests as f64).abs() < 1.0, "{r:#}");
    let l = &r["latency_us"];
    let (p50, p99, p999) = (
        l["p50"].as_u64().unwrap(),
        l["p99"].as_u64().unwrap(),
        l["p999"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "{l}");
    let cpu = &r["server_cpu"][0];
    assert_eq!(cpu["pid"], ocs.child.id());
    assert!(cpu["cpu_us_per_request"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["cpu_percent"].as_f64().unwrap() > 0.0, "{cpu}");
    let (rss0, rss1) = (cpu["rss_kib"][0].as_u64(), cpu["rss_kib"][1].as_u64());
    assert!(rss0.unwrap() > 0 && rss1.unwrap() > 0, "{cpu}");
    // No progress bar without a terminal: standard error holds no bar.
    assert!(!String::from_utf8_lossy(&out.stderr).contains('█'));
    // --hold --sessions: 20 sessions opened (CCR-I only) and left open; the run ends
    // when they are, well before its duration.
    let out = Command::new(PCEF_SIM)
        .args(["load", "--to", &ocs.addr.to_string()])
        .args(["--in-flight", "4", "--duration", "20", "--warmup", "0"])
        .args(["--sessions", "20", "--hold", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["by_type"]["initial"]["result_codes"]["2001"], 20, "{r:#}");
    assert_eq!(r["requests"], 20);
    assert!(r["duration_s"].as_f64().unwrap() < 10.0, "{r:#}");
    let (_, reserved) = ocs.balance(IMSI_RICH, "total-octets");
    assert_eq!(
        reserved,
        20 * 1_000_000,
        "20 open sessions hold a 1 MB grant each"
    );
    // The text form carries the same figures.
    let out = Command::new(PCEF_SIM)
        .args(["load", "--to", &ocs.addr.to_string()])
        .args(["--in-flight", "2", "--duration", "0.5", "--warmup", "0"])
        .args(["--server-pid", &ocs.child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["TPS ", "latency µs p50", "result codes 2001:", "server pid"] {
        assert!(text.contains(want), "{want}: {text}");
    }
}
