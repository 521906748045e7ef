//! Local breakout with pcef-sim's roles on loopback (document 000, issue 12 items 6–7): the
//! AF (`pcef_sim::has`, the H-AS) asks the home PCRF (in-process) for local breakout; in
//! variant FIG. 6 the rule goes to pcef-sim's PCEF playing the home operator's user plane in
//! the visited network (`--local-up`), which then really classifies the UE's flows: the CDN
//! flow breaks out, the rest goes home, with flows and bytes counted per route.
//!
//! TEST-ONLY V-PCRF: the visited side is a small S9 peer that runs
//! [`pcrf::lbo::ReadLboRule::verify`] on the rules it is sent and answers the S9 RAA; it is
//! to be replaced by the real V-PCRF (`pcrf/src/visited/`) once merged.

use diameter_codec::dict::{base, dcca, gx, nasreq, s9};
use diameter_codec::{Message, MessageBuilder, ResultCode};
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn, relay_route};
use diameter_node::peer::{Application, Timers};
use pcef_sim::client::Endpoint;
use pcef_sim::gx::{ClassFlow, GxOptions, Route, RouteCount};
use pcef_sim::gy::Subscriber;
use pcef_sim::has::{AfOptions, OttCredential};
use pcrf::lbo::{self, HomeLboConfig, Key, LboAgreement, LboPartner, LocalUp, OttKey};
use pcrf::{Config, Pcrf};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PCRF_HOST: &str = "pcrf.home.test";
const VPCRF: &str = "pcrf.visited.test";
const VISITED: &str = "visited.test";
const S9: u32 = 16_777_267;
const IMSI_1: &str = "001010000000001";
const UE: [u8; 4] = [10, 45, 0, 2];
const T: Duration = Duration::from_secs(5);

fn key(b: u8) -> Key {
    Key::new(vec![b; 32]).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
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
            key: key(0x5a),
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

/// TEST-ONLY V-PCRF (module documentation): verifies, answers, records what it accepted.
async fn test_vpcrf(addr: SocketAddr, accepted: Arc<Mutex<Vec<lbo::ReadLboRule>>>) -> Node {
    let mut cfg = NodeConfig::new(VPCRF, VISITED);
    cfg.local.applications.push(Application {
        vendor: Some(10_415),
        ..Application::auth(S9)
    });
    cfg.local.supported_vendor_ids.push(10_415);
    let mut p = PeerSpec::connect_tcp(PCRF_HOST, addr);
    p.timers = Timers {
        tc: Duration::from_millis(100),
        ..Timers::default()
    };
    cfg.peers.push(p);
    cfg.routes
        .push(relay_route("home.test", Some(S9), &[PCRF_HOST]));
    cfg.request_timeout = T;
    let node = Node::start(cfg).await.unwrap();
    let policy = Arc::new(lbo::VisitedLboPolicy {
        agreements: vec![LboAgreement {
            home_operator: "00101".into(),
            key: key(0x5a),
            packages: vec!["cdn-video".into()],
            allowed_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            local_up_policies: vec!["to-home-lup".into()],
        }],
    });
    node.register(
        S9,
        handler_fn(move |req| {
            let (policy, accepted) = (policy.clone(), accepted.clone());
            async move {
                let rules: Vec<lbo::ReadLboRule> = req
                    .msg
                    .find_all(s9::SUBSESSION_DECISION_INFO.key())
                    .flat_map(|sdi| {
                        sdi.children()
                            .flatten()
                            .filter(|a| a.key() == gx::CHARGING_RULE_INSTALL.key())
                            .flat_map(|cri| lbo::lbo_rules_in(&cri))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                match rules.iter().find_map(|r| r.verify(&policy, now()).err()) {
                    None => {
                        accepted.lock().unwrap().extend(rules);
                        req.answer(ResultCode::DIAMETER_SUCCESS)
                    }
                    Some(why) => {
                        let names: Vec<String> =
                            rules.iter().map(|r| r.rule.name.clone()).collect();
                        let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                        a.push(why.result_avp());
                        a.copy_required_from(&req.msg, req.node.dictionary());
                        a.push(lbo::s9_refusal_info(1, &names, &why));
                        a
                    }
                }
            }
        }),
    );
    assert!(node.wait_peer(PCRF_HOST, T).await, "PCRF not open");
    // The UE's S9 session: subsession 1 at its address.
    let mut b = MessageBuilder::request(272, S9, true);
    b.push(base::SESSION_ID.with("pcrf.visited.test;s9;sim".to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(S9));
    b.push(base::ORIGIN_HOST.with(VPCRF));
    b.push(base::ORIGIN_REALM.with(VISITED));
    b.push(base::DESTINATION_REALM.with("home.test"));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
    b.push(dcca::CC_REQUEST_NUMBER.with(0u32));
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(IMSI_1.to_string()),
    ]));
    b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
        s9::SUBSESSION_ID.with(1u32),
        s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation::ESTABLISHMENT),
        nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(&UE)),
        nasreq::CALLED_STATION_ID.with("internet"),
    ]));
    let a: Message = node.request(b).await.unwrap();
    assert_eq!(a.get(base::RESULT_CODE).and_then(Result::ok), Some(2001));
    node
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

/// Variant FIG. 6 end to end with pcef-sim's user plane classifying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_user_plane_breaks_out_the_cdn_flow_and_sends_the_rest_home() {
    let p = home_pcrf(vec![LocalUp {
        host: "lup.visited.test".into(),
        visited_realm: VISITED.into(),
        steering_policy: "to-home-lup".into(),
    }])
    .await;
    let addr = p.listen_addrs()[0];
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let _v = test_vpcrf(addr, accepted.clone()).await;
    // pcef-sim's PCEF as home's user plane in the visited network, for the UE.
    let up = GxOptions {
        endpoint: endpoint(addr, "lup.visited.test"),
        subscriber: Subscriber {
            kind: 1,
            data: IMSI_1.into(),
        },
        ue_ip: IpAddr::from(UE),
        apn: "internet".into(),
        rat_type: 1004,
        duration: Duration::from_secs(2),
        events: Vec::new(),
        flows: ["tcp:203.0.113.10:443/5000", "tcp:198.51.100.7:443/700"]
            .iter()
            .map(|f| ClassFlow::parse(f).unwrap())
            .collect(),
        ocs: None,
        local_up: true,
        timeout: T,
        live: false,
    };
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
    // The AF session is held past the user plane's detach (its STR would remove the rule).
    let mut o = af_options(addr, key(0x07), "203.0.113.10");
    o.duration = Duration::from_secs(4);
    let af = tokio::spawn(async move { pcef_sim::has::run(&o).await });
    let report = run.await.unwrap().unwrap();
    let aaa = af.await.unwrap().unwrap();
    assert_eq!(aaa.result_code, Some(2001), "{}", aaa.text());
    assert_eq!(aaa.str_result, Some(2001));
    // The V-PCRF was asked to steer to our user plane, and accepted the signed rule.
    let steered: Vec<lbo::LboKind> = accepted
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.kind.clone())
        .collect();
    assert_eq!(
        steered,
        [lbo::LboKind::SteerToLocalUp("to-home-lup".into())]
    );
    assert!(report.accepted);
    let routes: Vec<(String, Route)> = report
        .flows
        .iter()
        .map(|h| (h.flow.clone(), h.route))
        .collect();
    // The CDN flow hits the LBO rule (precedence 100, before the subscriber's catch-all at
    // 1000) and breaks out; the other flow hits the catch-all and goes home.
    assert_eq!(routes[0].1, Route::LocalBreakout, "{}", report.text());
    assert_eq!(routes[1].1, Route::Home, "{}", report.text());
    assert_eq!(
        report.breakout.local,
        RouteCount {
            flows: 1,
            bytes: 5000
        }
    );
    assert_eq!(
        report.breakout.home,
        RouteCount {
            flows: 1,
            bytes: 700
        }
    );
}

/// The AF role hears the refusals with their codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_af_hears_lbo_refusals_with_their_codes() {
    let p = home_pcrf(Vec::new()).await;
    let addr = p.listen_addrs()[0];
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let _v = test_vpcrf(addr, accepted.clone()).await;
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
    assert!(accepted.lock().unwrap().is_empty());
    // And the good one goes through, the rule signed and accepted at the visited side.
    let r = pcef_sim::has::run(&af_options(addr, key(0x07), "203.0.113.10"))
        .await
        .unwrap();
    assert!(r.accepted(), "{}", r.text());
    assert_eq!(r.str_result, Some(2001));
    assert_eq!(
        accepted.lock().unwrap()[0].kind,
        lbo::LboKind::LocalBreakout
    );
}

/// `pcef-sim has` as a user runs it: exit status 0 with the AAA 2001, 3 with a refusal, the
/// code and vendor in its JSON report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_af_command_reports_and_exits_by_the_result() {
    let p = home_pcrf(Vec::new()).await;
    let addr = p.listen_addrs()[0];
    let _v = test_vpcrf(addr, Arc::new(Mutex::new(Vec::new()))).await;
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
}
