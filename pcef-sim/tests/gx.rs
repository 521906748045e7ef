//! `pcef-sim gx` against the `pcrf` binary as a user starts it (no configuration: the demo
//! subscribers of pcrf/examples/spr.toml) on free loopback ports, and with the `ocs`
//! binary for the Gx + Gy case.
//!
//! The binaries are built by the first test that needs them (`cargo build -p pcrf` /
//! `-p ocs`), a no-op when `cargo test --workspace` built them already.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PCEF_SIM: &str = env!("CARGO_BIN_EXE_pcef-sim");
/// Demo subscriber 1: online, rule `internet` (rating group 10), predefined `local-dns`.
const IMSI_1: &str = "001010000000001";

/// Builds `bin` of package `pkg` beside this test's binary and returns its path.
fn built(pkg: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "--quiet", "-p", pkg, "--bin", bin]);
    // Without what cargo set for running this test: the build would otherwise differ from
    // a shell's and rebuild.
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
    assert!(c.status().unwrap().success(), "building {bin}");
    dir.join(bin)
}

fn pcrf_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("pcrf", "pcrf"))
}

fn ocs_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("ocs", "ocs"))
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wait_listening(addrs: &[SocketAddr], what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    for a in addrs {
        while std::net::TcpStream::connect(a).is_err() {
            assert!(Instant::now() < end, "{what} not listening on {a}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A server process killed (by its PID) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pcrf` with no configuration file on free ports.
fn pcrf() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (addr, admin) = (free_addr(), free_addr());
    let child = Command::new(pcrf_bin())
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--admin")
        .arg(admin.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting pcrf");
    wait_listening(&[addr, admin], "pcrf");
    Server {
        child,
        addr,
        admin,
        _dir: dir,
    }
}

/// `ocs` with its example configuration plus `extra` TOML.
fn ocs(extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (addr, admin) = (free_addr(), free_addr());
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ocs/examples/home.toml"
    ))
    .unwrap();
    let cfg = dir.path().join("ocs.toml");
    std::fs::write(&cfg, format!("{example}\n{extra}")).unwrap();
    let child = Command::new(ocs_bin())
        .arg("--config")
        .arg(&cfg)
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
    wait_listening(&[addr, admin], "ocs");
    Server {
        child,
        addr,
        admin,
        _dir: dir,
    }
}

fn gx_command(pcrf: &Server, args: &[&str]) -> Command {
    let mut c = Command::new(PCEF_SIM);
    c.args(["gx", "--json", "--to", &pcrf.addr.to_string()])
        .args(args)
        .stdin(Stdio::null());
    c
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn rule<'a>(r: &'a Value, name: &str) -> Option<&'a Value> {
    r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
}

fn hit<'a>(flows: &'a Value, flow: &str) -> &'a Value {
    flows
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["flow"] == flow)
        .unwrap_or_else(|| panic!("no flow {flow} in {flows}"))
}

/// One HTTP/1.0 request to the operator endpoint; the body of the answer.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: pcrf\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

#[test]
fn demo_subscriber_gets_rules_qos_and_charging_and_its_flows_are_classified() {
    let p = pcrf();
    let out = gx_command(
        &p,
        &[
            "--imsi",
            IMSI_1,
            "--duration",
            "0.3",
            "--flow",
            "tcp:198.51.100.7:443",
            "--flow",
            "udp:192.0.2.10:53",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = report(&out);
    assert_eq!(r["accepted"], true);
    assert_eq!(r["ended_by"], "detach");
    let kinds: Vec<(&str, u64)> = r["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["result_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, vec![("initial", 2001), ("termination", 2001)]);
    // pcrf/examples/spr.toml: `internet` (rating group 10, QCI 9, 50/100 Mbit/s, precedence
    // 1000, one bidirectional catch-all flow) and the predefined `local-dns`.
    let internet = rule(&r, "internet").expect("internet installed");
    assert_eq!(internet["kind"], "dynamic");
    assert_eq!(internet["rating_group"], 10);
    assert_eq!(internet["precedence"], 1000);
    assert_eq!(internet["qos"]["qci"], 9);
    assert_eq!(internet["qos"]["mbr_ul"], 50_000_000);
    assert_eq!(internet["qos"]["mbr_dl"], 100_000_000);
    assert_eq!(
        internet["flows"][0]["description"],
        "permit out ip from any to any"
    );
    assert_eq!(rule(&r, "local-dns").unwrap()["kind"], "predefined");
    // Session QoS, charging and triggers.
    assert_eq!(r["apn_ambr"], serde_json::json!([50_000_000, 100_000_000]));
    assert_eq!(r["default_bearer"][0], 9);
    assert_eq!(r["online"], true);
    let ocs = r["charging"]["primary_ocs"].as_str().unwrap();
    assert!(ocs.contains("ocs.home.test"), "{ocs}");
    let triggers = r["event_triggers"].as_array().unwrap();
    assert!(triggers.contains(&Value::from(13)), "{triggers:?}");
    // Supported-Features agreed (list 1).
    assert_eq!(r["exchanges"][0]["policy"]["features"][0][0], 1);
    // Both flows hit the catch-all, charged online on rating group 10.
    for f in ["tcp:198.51.100.7:443", "udp:192.0.2.10:53"] {
        let h = hit(&r["flows"], f);
        assert_eq!(h["rule"], "internet", "{f}");
        assert_eq!(h["rating_group"], 10);
        assert_eq!(h["online"], true);
    }
}

#[test]
fn an_unknown_imsi_is_refused_with_exit_status_3() {
    let p = pcrf();
    let out = gx_command(&p, &["--imsi", "001019999999999", "--duration", "0.3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let r = report(&out);
    assert_eq!(r["accepted"], false);
    assert_eq!(r["ended_by"], "refused");
    // TS 29.212: DIAMETER_USER_UNKNOWN (5030) in Experimental-Result; no CCR-T follows.
    assert_eq!(r["exchanges"].as_array().unwrap().len(), 1);
    assert_eq!(r["exchanges"][0]["result_code"], 5030);
    assert!(r["rules"].as_array().unwrap().is_empty());
}

#[test]
fn a_rat_change_the_pcrf_armed_brings_another_rule_set_and_unarmed_events_send_nothing() {
    let p = pcrf();
    let out = gx_command(
        &p,
        &[
            "--imsi",
            IMSI_1,
            "--duration",
            "1.2",
            "--event",
            "0.3:rat:utran",
            "--event",
            "0.5:qos",
            "--event",
            "0.7:rat:eutran",
            "--flow",
            "tcp:203.0.113.5:80",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = report(&out);
    let ex = r["exchanges"].as_array().unwrap();
    // CCR-I, CCR-U (RAT to UTRAN), CCR-U (back to E-UTRAN), CCR-T: QOS_CHANGE not armed.
    assert_eq!(ex.len(), 4, "{ex:?}");
    assert_eq!(ex[1]["kind"], "update");
    assert_eq!(ex[1]["reported"], serde_json::json!([2]));
    assert_eq!(ex[1]["rat_type"], 1000);
    assert_eq!(ex[1]["result_code"], 2001);
    // The PCRF's RAT_CHANGE policy (pcrf/examples/home.toml): internet → internet-3g.
    let p1 = &ex[1]["policy"];
    assert_eq!(p1["remove"], serde_json::json!(["internet"]));
    assert_eq!(p1["install"][0]["name"], "internet-3g");
    assert_eq!(p1["install"][0]["rating_group"], 30);
    // Back to E-UTRAN: internet again.
    assert_eq!(ex[2]["rat_type"], 1004);
    assert_eq!(ex[2]["policy"]["install"][0]["name"], "internet");
    assert_eq!(r["events_ignored"], serde_json::json!(["qos"]));
    assert!(rule(&r, "internet").is_some());
    assert!(rule(&r, "internet-3g").is_none());
    assert_eq!(hit(&r["flows"], "tcp:203.0.113.5:80")["rating_group"], 10);
}

#[test]
fn an_operator_push_reaches_pcef_sim_as_a_rar_and_reclassifies_its_flows() {
    let p = pcrf();
    let child = gx_command(
        &p,
        &[
            "--imsi",
            IMSI_1,
            "--duration",
            "5",
            "--flow",
            "tcp:198.51.100.7:443",
            "--flow",
            "tcp:203.0.113.5:80",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Push as soon as the PCRF has the session: video in, local-dns out.
    let end = Instant::now() + Duration::from_secs(4);
    let pushed = loop {
        let (status, body) = http(
            p.admin,
            "POST",
            &format!("/subscribers/{IMSI_1}/rar?install=video&remove=local-dns"),
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if !v["pushed"].as_array().unwrap().is_empty() {
            break v;
        }
        assert!(Instant::now() < end, "the session never reached the PCRF");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(pushed["pushed"][0]["result_code"], 2001, "{pushed}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = report(&out);
    assert_eq!(r["session_id"], pushed["pushed"][0]["session_id"]);
    let rars = r["rars"].as_array().unwrap();
    assert_eq!(rars.len(), 1, "{rars:?}");
    assert_eq!(rars[0]["answered"], 2001);
    assert_eq!(rars[0]["policy"]["install"][0]["name"], "video");
    assert_eq!(
        rars[0]["policy"]["remove"],
        serde_json::json!(["local-dns"])
    );
    assert!(rule(&r, "local-dns").is_none());
    // Before the push both flows were Internet traffic; after it HTTPS to the video CDN
    // hits `video` (precedence 500 beats 1000) on rating group 20.
    assert_eq!(
        hit(&r["flows_initial"], "tcp:198.51.100.7:443")["rule"],
        "internet"
    );
    let v = hit(&r["flows"], "tcp:198.51.100.7:443");
    assert_eq!(
        (v["rule"].as_str(), v["rating_group"].as_u64()),
        (Some("video"), Some(20))
    );
    assert_eq!(hit(&r["flows"], "tcp:203.0.113.5:80")["rule"], "internet");
}

#[test]
fn gx_with_gy_opens_credit_control_for_each_online_rating_group() {
    let p = pcrf();
    // The demo OCS rates the PCRF demo's rating groups (10, and 30 after a RAT change to
    // UTRAN): both demo configurations as they ship.
    let o = ocs("");
    let out = gx_command(
        &p,
        &[
            "--imsi",
            IMSI_1,
            "--duration",
            "1",
            "--event",
            "0.3:rat",
            "--ocs",
            &o.addr.to_string(),
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = report(&out);
    assert_eq!(r["accepted"], true);
    let gy = &r["gy"];
    assert_eq!(gy["accepted"], true, "{gy}");
    let first = &gy["exchanges"][0];
    assert_eq!(first["kind"], "initial");
    assert_eq!(first["result_code"], 2001);
    // One MSCC, for rating group 10 of the online rule `internet` (S310).
    assert_eq!(first["mscc"].as_array().unwrap().len(), 1);
    assert_eq!(first["mscc"][0]["rating_group"], 10);
    assert_eq!(first["answered"][0]["granted"][1], 1_000_000);
    // Both sessions were ended.
    let last = gy["exchanges"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "termination");
    let gx_last = r["exchanges"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(gx_last["kind"], "termination");
    // The RAT change swapped `internet` (rating group 10) for `internet-3g` (30): the Gy
    // session's next CCR-U asks for 30 and reports 10 for the last time (FINAL).
    assert!(rule(&r, "internet-3g").is_some());
    assert_eq!(r["gy_updates"], serde_json::json!([[30]]));
    let swap = gy["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["kind"] == "update"
                && e["mscc"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["rating_group"] == 30)
        })
        .unwrap_or_else(|| panic!("no CCR-U for rating group 30: {gy}"));
    let mscc = swap["mscc"].as_array().unwrap();
    let rg = |n: u64| mscc.iter().find(|m| m["rating_group"] == n).unwrap();
    assert_eq!(rg(30)["requested"], true);
    assert_eq!(rg(10)["reporting_reason"], "FINAL");
    assert_eq!(rg(10)["requested"], false);
    assert_eq!(swap["result_code"], 2001);
    let granted = swap["answered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rating_group"] == 30)
        .unwrap();
    assert_eq!(granted["granted"][1], 1_000_000);
    let services = gy["services"].as_array().unwrap();
    let state = |n: u64| services.iter().find(|v| v["rating_group"] == n).unwrap()["state"].clone();
    assert_eq!(state(10), "terminated");
    assert_eq!(state(30), "active");
}

#[test]
fn an_ocs_refusal_refuses_the_ip_can_session() {
    let p = pcrf();
    // The subscriber barred at the OCS (its operator command): the CCA-I refuses the
    // service (4010 DIAMETER_END_USER_SERVICE_DENIED).
    let o = ocs("");
    let barred = Command::new(ocs_bin())
        .args(["account", "bar", IMSI_1, "--admin", &o.admin.to_string()])
        .output()
        .unwrap();
    assert!(barred.status.success(), "{barred:?}");
    let out = gx_command(
        &p,
        &[
            "--imsi",
            IMSI_1,
            "--duration",
            "1",
            "--ocs",
            &o.addr.to_string(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let r = report(&out);
    assert_eq!(r["accepted"], false);
    assert_eq!(r["ended_by"], "refused-by-ocs");
    assert_ne!(r["gy"]["exchanges"][0]["result_code"], 2001);
    // The Gx session was ended with CCR-T at once.
    let kinds: Vec<&str> = r["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["initial", "termination"]);
}

#[test]
fn gx_load_runs_whole_sessions_and_held_ones_stay_on_the_pcrf() {
    let p = pcrf();
    // 40 sessions of CCR-I, 3 CCR-U, CCR-T, on demo subscribers 1 and 2.
    let out = Command::new(PCEF_SIM)
        .args(["load", "--app", "gx", "--to", &p.addr.to_string()])
        .args(["--in-flight", "4", "--subscribers", "2", "--updates", "3"])
        .args([
            "--sessions",
            "40",
            "--duration",
            "20",
            "--warmup",
            "0",
            "--json",
        ])
        .args(["--server-pid", &p.child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scenario"], "gx");
    let by = &r["by_type"];
    assert_eq!(by["initial"]["result_codes"]["2001"], 40, "{r:#}");
    assert_eq!(by["update"]["result_codes"]["2001"], 120, "{r:#}");
    assert_eq!(by["termination"]["result_codes"]["2001"], 40, "{r:#}");
    assert!(r["server_cpu"][0]["cpu_us_per_request"].as_f64().is_some());
    let (_, body) = http(p.admin, "GET", "/sessions");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["sessions"].as_array().unwrap().is_empty(), "{v}");
    // --hold: CCR-I only; the sessions stay on the PCRF.
    let out = Command::new(PCEF_SIM)
        .args(["load", "--app", "gx", "--to", &p.addr.to_string()])
        .args(["--in-flight", "4", "--sessions", "25", "--hold"])
        .args(["--duration", "20", "--warmup", "0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["requests"], 25, "{r:#}");
    let (_, body) = http(p.admin, "GET", "/sessions");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 25, "{v}");
}

#[test]
fn a_release_from_the_pcrf_ends_the_session_with_ccr_t() {
    let p = pcrf();
    let child = gx_command(&p, &["--imsi", IMSI_1, "--duration", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(4);
    let id = loop {
        let (_, body) = http(p.admin, "GET", "/sessions");
        let v: Value = serde_json::from_str(&body).unwrap();
        if let Some(id) = v["sessions"][0].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < end, "the session never reached the PCRF");
        std::thread::sleep(Duration::from_millis(50));
    };
    // A RAR with Session-Release-Cause 1, UE_SUBSCRIPTION_REASON (TS 29.212 §5.3.44): the
    // PCEF answers it and ends the IP-CAN session with CCR-T.
    let (status, body) = http(p.admin, "POST", &format!("/sessions/{id}/release?cause=1"));
    assert_eq!(status, 200, "{body}");
    let t0 = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "ended at detach, not on the RAR"
    );
    assert!(out.status.success(), "{out:?}");
    let r = report(&out);
    assert_eq!(r["ended_by"], "released");
    assert_eq!(r["rars"][0]["policy"]["release_cause"], 1);
    let last = r["exchanges"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "termination");
    assert_eq!(last["result_code"], 2001);
    let (_, body) = http(p.admin, "GET", "/sessions");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["sessions"].as_array().unwrap().is_empty(), "{v}");
}

fn dra_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("dra", "dra"))
}

/// `dra` in redirect mode with `termination` (`ack` or `redirect`) in front of `pcrf`,
/// bindings in memory.
fn dra(pcrf: &Server, termination: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (addr, admin) = (free_addr(), free_addr());
    let cfg = dir.path().join("dra.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[node]
origin_host = "dra.home.test"
origin_realm = "home.test"
timers = {{ tc = 0.2 }}

[[node.listen]]
addr = "{addr}"

[dra]
mode = "redirect"
termination = "{termination}"
admin = "{admin}"

[[dra.pcrf]]
host = "pcrf.home.test"
connect = "{}"

[store]
kind = "memory"
"#,
            pcrf.addr
        ),
    )
    .unwrap();
    let child = Command::new(dra_bin())
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting dra");
    wait_listening(&[addr, admin], "dra");
    // Until the PCRF is selectable.
    let end = Instant::now() + Duration::from_secs(20);
    while !http(admin, "GET", "/pcrfs").1.contains("\"healthy\":true") {
        assert!(Instant::now() < end, "PCRF never healthy at the DRA");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server {
        child,
        addr,
        admin,
        _dir: dir,
    }
}

/// `pcef-sim ROLE` through the DRA with `--dra-termination behaviour`, the PCRF's address
/// given for the redirects.
/// Its Origin-Host is the role's and the behaviour's: the same host coming back with a new
/// Origin-State-Id would be a restarted client (RFC 6733 §8.16), whose sessions the PCRF
/// drops as it learns of the restart — possibly after the new process's first request.
fn via_dra(role: &str, dra: &Server, pcrf: &Server, behaviour: &str, args: &[&str]) -> Command {
    let mut c = Command::new(PCEF_SIM);
    c.args([role, "--json", "--to", &dra.addr.to_string()])
        .args(["--host", &format!("{role}-{behaviour}.sim")])
        .args(["--to-host", "dra.home.test", "--dra-termination", behaviour])
        .arg("--peer-addr")
        .arg(format!("pcrf.home.test={}", pcrf.addr))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Document 002 with the binaries: `pcef-sim bberf`, `gx` and `af` through the `dra`
/// binary (redirect mode) in front of the `pcrf` binary; the BBERF ends Gxx, the PCEF Gx,
/// the AF hears of the loss and ends Rx; the DRA's operator endpoint lists no binding
/// after, the PCRF's none of its Gx sessions. Both client behaviours against both DRA
/// answers.
#[test]
fn the_three_clients_end_their_sessions_through_a_redirect_dra() {
    let p = pcrf();
    for (termination, behaviour, dra_answer) in [
        ("ack", "parallel", Some(2001)),
        ("redirect", "redirect", None),
    ] {
        let d = dra(&p, termination);
        let ip = "10.45.0.2";
        let bberf = via_dra(
            "bberf",
            &d,
            &p,
            behaviour,
            &["--ue-ip", ip, "--duration", "1.5"],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let gx = via_dra(
            "gx",
            &d,
            &p,
            behaviour,
            &["--imsi", IMSI_1, "--ue-ip", ip, "--duration", "3"],
        )
        .spawn()
        .unwrap();
        // The AF once the IP-CAN session is bound at the DRA.
        let end = Instant::now() + Duration::from_secs(20);
        while !http(d.admin, "GET", "/bindings").1.contains("\"gx\"") {
            assert!(Instant::now() < end, "Gx never bound at the DRA");
            std::thread::sleep(Duration::from_millis(20));
        }
        let af = via_dra(
            "af",
            &d,
            &p,
            behaviour,
            &["--ue-ip", ip, "--duration", "15"],
        )
        .spawn()
        .unwrap();
        let want_dra = dra_answer.map_or(Value::Null, Value::from);
        let out = bberf.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let r = report(&out);
        assert_eq!(r["attach_result"], 2001);
        assert_eq!(r["termination"]["result_code"], 2001, "{r}");
        assert_eq!(r["termination"]["dra_path"], behaviour);
        assert_eq!(r["termination"]["dra_result"], want_dra);
        let out = gx.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let r = report(&out);
        let t = r["exchanges"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(t["kind"], "termination");
        assert_eq!(t["result_code"], 2001, "{r}");
        assert_eq!(t["dra_path"], behaviour);
        assert_eq!(t["dra_result"], want_dra);
        let out = af.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let r = report(&out);
        assert_eq!(r["aar_result"], 2001);
        assert_eq!(r["loss"]["command"], "rar", "{r}");
        assert_eq!(r["termination"]["result_code"], 2001, "{r}");
        assert_eq!(r["termination"]["dra_path"], behaviour);
        // Nothing left at the DRA or the PCRF.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = http(d.admin, "GET", "/bindings");
            let v: Value = serde_json::from_str(&body).unwrap();
            if v["stats"]["bindings"] == 0 {
                break;
            }
            assert!(Instant::now() < end, "DRA kept {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (_, body) = http(p.admin, "GET", "/sessions");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["sessions"].as_array().map(Vec::len), Some(0), "{v}");
    }
}
