//! Local breakout with pcef-sim's roles on loopback (document 000, issue 12 items 6, 7,
//! 10): the AF (`pcef_sim::has`, the H-AS) asks the home PCRF (in-process) for local
//! breakout; the rule goes by S9 to the real V-PCRF (a `pcrf` of role visited, in-process,
//! `pcrf/examples/visited.toml` and its `[pcrf.visited.lbo]` agreement), which verifies it
//! and installs it on pcef-sim's PCEF in the visited network; that PCEF then really
//! classifies the UE's flows: the CDN flow breaks out, the rest goes home, with flows and
//! bytes counted per route. In variant FIG. 6 the rule goes to pcef-sim's PCEF playing the
//! home operator's user plane in the visited network (`--local-up`), and the visited PCEF
//! steers the UE's traffic to it.

use pcef_sim::client::Endpoint;
use pcef_sim::gx::{ClassFlow, GxOptions, GxReport, Route, RouteCount};
use pcef_sim::gy::Subscriber;
use pcef_sim::has::{AfOptions, OttCredential};
use pcrf::lbo::{HomeLboConfig, Key, LboPartner, LocalUp, OttKey};
use pcrf::{Config, Pcrf};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const PCRF_HOST: &str = "pcrf.home.test";
const VPCRF: &str = "pcrf.visited.test";
const VISITED: &str = "visited.test";
const IMSI_1: &str = "001010000000001";
const UE: [u8; 4] = [10, 45, 0, 2];
const T: Duration = Duration::from_secs(5);
/// The CDN flow (inside the visited network's allowed prefixes) and one to elsewhere.
const FLOWS: [&str; 2] = ["tcp:203.0.113.10:443/5000", "tcp:198.51.100.7:443/700"];

fn key(b: u8) -> Key {
    Key::new(vec![b; 32]).unwrap()
}

async fn home_pcrf(local_up: Vec<LocalUp>) -> Pcrf {
    let mut cfg = Config::demo();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.lbo = Some(HomeLboConfig {
        home_operator: "00101".into(),
        grant_lifetime: 600,
        ott_key_max_lifetime: 300,
        partners: vec![LboPartner {
            realm: VISITED.into(),
            // The key of the agreement in examples/visited.toml (and home.toml).
            key: Key::new(vec![0x5a; 16]).unwrap(),
        }],
        otts: vec![OttKey {
            id: "ott-video".into(),
            package: "cdn-video".into(),
            key: key(0x07),
        }],
        presets: Vec::new(),
        local_up,
    });
    Pcrf::start(&cfg).await.unwrap()
}

/// The V-PCRF as shipped (`pcrf/examples/visited.toml`, whose agreement matches the home
/// configuration above) on a free port, S9 to the home PCRF at `home`.
async fn visited_pcrf(home: SocketAddr) -> Pcrf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcrf/examples/visited.toml");
    let mut cfg = Config::load(&path).unwrap();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.node.peers[0].connect = Some(home);
    cfg.pcrf.admin = None;
    assert!(
        cfg.pcrf.visited.as_ref().unwrap().lbo.is_some(),
        "the example has its LBO agreement"
    );
    let p = Pcrf::start(&cfg).await.unwrap();
    assert!(
        p.node().wait_peer(PCRF_HOST, T).await,
        "V-PCRF not connected to home"
    );
    p
}

/// pcef-sim's PCEF for the UE, through `host`'s Gx session with the PCRF `to` at `addr`:
/// in the visited network (`local_up` false) or as home's user plane there.
fn pcef(
    addr: SocketAddr,
    to: &str,
    realm: &str,
    host: &str,
    local_up: bool,
    life: Duration,
) -> GxOptions {
    GxOptions {
        endpoint: Endpoint::direct(addr, to, realm, host, "sim"),
        subscriber: Subscriber {
            kind: 1,
            data: IMSI_1.into(),
        },
        ue_ip: IpAddr::from(UE),
        apn: "internet".into(),
        rat_type: 1004,
        duration: life,
        detach_on: None,
        events: Vec::new(),
        flows: FLOWS.iter().map(|f| ClassFlow::parse(f).unwrap()).collect(),
        ocs: None,
        local_up,
        timeout: T,
        live: false,
    }
}

/// The visited PCEF's session for `life`, running once the V-PCRF holds its roaming
/// session (so the home has the UE's S9 subsession).
async fn visited_pcef(v: &Pcrf, life: Duration) -> JoinHandle<anyhow::Result<GxReport>> {
    let o = pcef(
        v.listen_addrs()[0],
        VPCRF,
        VISITED,
        "pgw.visited.test",
        false,
        life,
    );
    let run = tokio::spawn(async move { pcef_sim::gx::run(&o).await });
    let end = Instant::now() + T;
    while v
        .visited()
        .unwrap()
        .roaming_sessions()
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < end,
            "the visited PCEF's session never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run
}

/// The routes of a report's flows, in order.
fn routes(r: &GxReport) -> Vec<Route> {
    r.flows.iter().map(|h| h.route).collect()
}

/// Asserts that of the PCEF's two flows the first, the CDN's (5000 bytes), broke out and
/// the other went home.
fn assert_cdn_broken_out(report: &GxReport) {
    assert_eq!(
        routes(report),
        [Route::LocalBreakout, Route::Home],
        "{}",
        report.text()
    );
    assert_eq!(
        report.breakout.local,
        RouteCount {
            flows: 1,
            bytes: 5000
        }
    );
}

fn endpoint(addr: SocketAddr, host: &str) -> Endpoint {
    Endpoint::direct(addr, PCRF_HOST, "home.test", host, "sim")
}

fn af_options(addr: SocketAddr, initial: Key, server: &str) -> AfOptions {
    AfOptions {
        endpoint: endpoint(addr, "has.sim"),
        ue_ip: IpAddr::from(UE),
        server: server.parse().unwrap(),
        port: 443,
        proto: 6,
        lbo: Some(OttCredential {
            ott: "ott-video".into(),
            package: "cdn-video".into(),
            initial_key: initial,
            ttl: 120,
        }),
        duration: Duration::ZERO,
        timeout: T,
    }
}

/// Local breakout end to end: the V-PCRF verified the signed rule and installed it on the
/// visited PCEF, which breaks the CDN flow out and sends the other home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visited_pcef_breaks_out_the_cdn_flow_and_sends_the_rest_home() {
    let p = home_pcrf(Vec::new()).await;
    let addr = p.listen_addrs()[0];
    let v = visited_pcrf(addr).await;
    let run = visited_pcef(&v, Duration::from_secs(2)).await;
    // The AF session is held past the PCEF's detach (its STR would remove the rule).
    let mut o = af_options(addr, key(0x07), "203.0.113.10");
    o.duration = Duration::from_secs(4);
    let af = tokio::spawn(async move { pcef_sim::has::run(&o).await });
    let report = run.await.unwrap().unwrap();
    let aaa = af.await.unwrap().unwrap();
    assert_eq!(aaa.result_code, Some(2001), "{}", aaa.text());
    assert!(report.accepted);
    // The rule came by Gx RAR from the V-PCRF, marked LOCAL_BREAKOUT.
    let lbo: Vec<&pcef_sim::gx::Rule> = report
        .rars
        .iter()
        .flat_map(|r| &r.policy.install)
        .filter(|r| r.lbo)
        .collect();
    assert_eq!(lbo.len(), 1, "{}", report.text());
    // The CDN flow hits it and breaks out; the other hits the subscriber's catch-all and
    // goes home.
    assert_cdn_broken_out(&report);
    assert_eq!(
        report.breakout.home,
        RouteCount {
            flows: 1,
            bytes: 700
        }
    );
}

/// Variant FIG. 6 end to end: home's user plane in the visited network gets the rule and
/// classifies (the CDN flow breaks out, the rest goes home); the V-PCRF verifies the signed
/// steering rule and the visited PCEF steers all the UE's traffic to that user plane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_user_plane_breaks_out_the_cdn_flow_and_the_visited_pcef_steers_to_it() {
    let p = home_pcrf(vec![LocalUp {
        host: "lup.visited.test".into(),
        visited_realm: VISITED.into(),
        steering_policy: "to-home-lup".into(),
    }])
    .await;
    let addr = p.listen_addrs()[0];
    let v = visited_pcrf(addr).await;
    let visited = visited_pcef(&v, Duration::from_secs(2)).await;
    // pcef-sim's PCEF as home's user plane in the visited network, for the UE.
    let up = pcef(
        addr,
        PCRF_HOST,
        "home.test",
        "lup.visited.test",
        true,
        Duration::from_secs(2),
    );
    let run = tokio::spawn(async move { pcef_sim::gx::run(&up).await });
    let end = Instant::now() + T;
    while p
        .sessions()
        .by_ue_ip(IpAddr::from(UE))
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            Instant::now() < end,
            "the user plane's Gx session never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The AF session is held past the detaches (its STR would remove the rules).
    let mut o = af_options(addr, key(0x07), "203.0.113.10");
    o.duration = Duration::from_secs(4);
    let af = tokio::spawn(async move { pcef_sim::has::run(&o).await });
    let report = run.await.unwrap().unwrap();
    let steered = visited.await.unwrap().unwrap();
    let aaa = af.await.unwrap().unwrap();
    assert_eq!(aaa.result_code, Some(2001), "{}", aaa.text());
    assert_eq!(aaa.str_result, Some(2001));
    assert!(report.accepted);
    // The CDN flow hits the LBO rule (precedence 100, before the subscriber's catch-all at
    // 1000) and breaks out; the other flow hits the catch-all and goes home.
    assert_cdn_broken_out(&report);
    // The visited PCEF got the steering rule from the V-PCRF: every flow of the UE goes to
    // home's user plane.
    let steering: Vec<Option<String>> = steered
        .rars
        .iter()
        .flat_map(|r| &r.policy.install)
        .map(|r| r.steering.clone())
        .collect();
    assert_eq!(
        steering,
        [Some("to-home-lup".to_string())],
        "{}",
        steered.text()
    );
    assert_eq!(
        routes(&steered),
        [Route::Steered, Route::Steered],
        "{}",
        steered.text()
    );
    assert_eq!(
        steered.breakout.steered,
        RouteCount {
            flows: 2,
            bytes: 5700
        }
    );
}

/// The AF role hears the V-PCRF's and the home's refusals with their codes, and the
/// visited PCEF is told nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_af_hears_lbo_refusals_with_their_codes() {
    let p = home_pcrf(Vec::new()).await;
    let addr = p.listen_addrs()[0];
    let v = visited_pcrf(addr).await;
    let run = visited_pcef(&v, Duration::from_secs(3)).await;
    // Wrong OTT key: DIAMETER_AUTHENTICATION_REJECTED.
    let r = pcef_sim::has::run(&af_options(addr, key(0x08), "203.0.113.10"))
        .await
        .unwrap();
    assert_eq!(
        (r.result_code, r.vendor),
        (Some(4001), None),
        "{}",
        r.text()
    );
    // Outside the visited CDN prefixes: the V-PCRF's 5803, vendor 32473.
    let r = pcef_sim::has::run(&af_options(addr, key(0x07), "198.51.100.7"))
        .await
        .unwrap();
    assert_eq!(
        (r.result_code, r.vendor),
        (Some(5803), Some(32473)),
        "{}",
        r.text()
    );
    // And the good one goes through: installed, then removed with the AF session.
    let r = pcef_sim::has::run(&af_options(addr, key(0x07), "203.0.113.10"))
        .await
        .unwrap();
    assert!(r.accepted(), "{}", r.text());
    assert_eq!(r.str_result, Some(2001));
    let report = run.await.unwrap().unwrap();
    let rars: Vec<(Vec<bool>, usize)> = report
        .rars
        .iter()
        .map(|r| {
            (
                r.policy.install.iter().map(|i| i.lbo).collect(),
                r.policy.remove.len(),
            )
        })
        .collect();
    assert_eq!(rars, [(vec![true], 0), (vec![], 1)], "{}", report.text());
}

/// `pcef-sim has` as a user runs it: exit status 0 with the AAA 2001, 3 with a refusal, the
/// code and vendor in its JSON report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_af_command_reports_and_exits_by_the_result() {
    let p = home_pcrf(Vec::new()).await;
    let addr = p.listen_addrs()[0];
    let v = visited_pcrf(addr).await;
    // The visited PCEF's session outlives the three runs of the command.
    let pcef = visited_pcef(&v, Duration::from_secs(60)).await;
    let run = |key: String, server: &'static str| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_pcef-sim"))
                .args([
                    "has",
                    "--json",
                    "--to",
                    &addr.to_string(),
                    "--server",
                    server,
                ])
                .args([
                    "--ott",
                    "ott-video",
                    "--package",
                    "cdn-video",
                    "--ott-key",
                    &key,
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
    };
    // The OTT's initial key is 07…07 (32 octets); 08…08 is a wrong one.
    for (key, server, code, vendor, status) in [
        ("08", "203.0.113.10:443", 4001, None, 3),
        ("07", "198.51.100.7:443", 5803, Some(32473), 3),
        ("07", "203.0.113.10:443", 2001, None, 0),
    ] {
        let out = run(key.repeat(32), server).await.unwrap();
        let r: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(r["result_code"], code, "{r}");
        assert_eq!(r["vendor"].as_u64(), vendor, "{r}");
        assert_eq!(out.status.code(), Some(status), "{r}");
    }
    pcef.abort();
}
