//! Local breakout pushed from home to the visited network (document 000, issue 12 item 6),
//! home role, on loopback: an AF (the H-AS) sends an AAR with the visited CDN server's flows
//! and the OTT's credential; the H-PCRF authenticates the OTT, signs the rule and sends it by
//! S9 RAR; the AAA carries the visited side's answer. Also the refusals (each with its code,
//! nothing installed), the preset rules of claim 9 at S9 establishment, and variant FIG. 6
//! (V-Local-UP).
//!
//! TEST-ONLY V-PCRF: the visited side here is [`TestVpcrf`], a small S9 peer that runs the
//! real checks ([`pcrf::lbo::ReadLboRule::verify`]) on every LBO rule it is sent and answers
//! the S9 RAA as a V-PCRF would (success, or the refusal's code and INACTIVE rule reports),
//! recording what it accepted as "installed". It installs nothing on a PCEF: when the visited
//! role (`pcrf/src/visited/`) is merged, these tests are to be rewired to the real V-PCRF and
//! a pcef-sim PCEF.

mod common;
#[path = "../../tests/interop/harness.rs"]
mod harness;

use common::*;
use diameter_codec::dict::{base, gx, nasreq, roaming, rx, s9};
use diameter_codec::types::DiameterTime;
use diameter_codec::{Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn, relay_route};
use diameter_node::peer::{Application, Timers};
use pcrf::lbo::{
    self, HomeLboConfig, Key, LboAgreement, LboKind, LboPartner, LboPreset, LocalUp, OttGrant,
    OttKey, VisitedLboPolicy,
};
use pcrf::spr::{Flow, FlowDirection};
use pcrf::{Config, Pcrf};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const S9: u32 = 16_777_267;
const VISITED: &str = "visited.test";
const VPCRF: &str = "pcrf.visited.test";
const HOME_OP: &str = "00101";
const PACKAGE: &str = "cdn-video";
const OTT: &str = "ott-video";
/// The visited CDN server, inside the prefixes the visited operator allows.
const CDN: &str = "203.0.113.10";
/// The UE's address in the visited network.
const UE: [u8; 4] = [10, 45, 0, 2];
const S9_SID: &str = "pcrf.visited.test;s9;lbo";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn key(b: u8) -> Key {
    Key::new(vec![b; 32]).unwrap()
}

/// The agreement key both operators hold.
fn agreement_key() -> Key {
    key(0x5a)
}

/// The OTT's initial key for the package.
fn ott_initial() -> Key {
    key(0x07)
}

/// The home side's `[pcrf.lbo]`.
fn home_lbo() -> HomeLboConfig {
    HomeLboConfig {
        home_operator: HOME_OP.into(),
        grant_lifetime: 600,
        ott_key_max_lifetime: 300,
        partners: vec![LboPartner {
            realm: VISITED.into(),
            key: agreement_key(),
        }],
        otts: vec![OttKey {
            id: OTT.into(),
            package: PACKAGE.into(),
            key: ott_initial(),
        }],
        presets: Vec::new(),
        local_up: Vec::new(),
    }
}

/// The visited side's agreement with home.
fn visited_policy() -> VisitedLboPolicy {
    VisitedLboPolicy {
        agreements: vec![LboAgreement {
            home_operator: HOME_OP.into(),
            key: agreement_key(),
            packages: vec![PACKAGE.into()],
            allowed_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            local_up_policies: vec!["to-home-lup".into()],
        }],
    }
}

async fn home_pcrf(host: &str, lbo: HomeLboConfig) -> Pcrf {
    home_pcrf_capturing(host, lbo, None).await
}

async fn home_pcrf_capturing(
    host: &str,
    lbo: HomeLboConfig,
    capture: Option<std::path::PathBuf>,
) -> Pcrf {
    let mut cfg = Config::demo();
    cfg.node.capture = capture;
    cfg.node.origin_host = host.to_string();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.lbo = Some(lbo);
    Pcrf::start(&cfg).await.unwrap()
}

/// TEST-ONLY V-PCRF (see the module documentation): checks every LBO rule of an S9 RAR
/// under its policy, answers as a V-PCRF would, and keeps what it accepted.
struct TestVpcrf {
    node: Node,
    requests: Arc<Mutex<Vec<Message>>>,
    /// LBO rules accepted (name, kind), in order.
    installed: Arc<Mutex<Vec<(String, LboKind)>>>,
}

impl TestVpcrf {
    async fn connect(pcrf_host: &str, addr: SocketAddr, policy: VisitedLboPolicy) -> Self {
        let mut cfg = NodeConfig::new(VPCRF, VISITED);
        cfg.local.applications.push(Application {
            vendor: Some(10_415),
            ..Application::auth(S9)
        });
        cfg.local.supported_vendor_ids.push(10_415);
        let mut p = PeerSpec::connect_tcp(pcrf_host, addr);
        p.timers = Timers {
            tc: Duration::from_millis(100),
            ..Timers::default()
        };
        cfg.peers.push(p);
        cfg.routes.push(relay_route(HOME, Some(S9), &[pcrf_host]));
        cfg.request_timeout = T;
        let node = Node::start(cfg).await.unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let installed = Arc::new(Mutex::new(Vec::new()));
        let (kept, inst) = (requests.clone(), installed.clone());
        let policy = Arc::new(policy);
        node.register(
            S9,
            handler_fn(move |req| {
                kept.lock().unwrap().push(req.msg.clone());
                let (inst, policy) = (inst.clone(), policy.clone());
                async move {
                    // Every LBO rule of every subsession, checked; the first refusal refuses
                    // the whole RAR (nothing of it is installed).
                    let mut rules = Vec::new();
                    for sdi in all(req.msg.avps().flatten(), 2200) {
                        let id = u32_of(&child(&sdi, 2202).unwrap());
                        for cri in all(sdi.children().flatten(), 1001) {
                            rules.extend(lbo::lbo_rules_in(&cri).into_iter().map(|r| (id, r)));
                        }
                    }
                    let refused = rules
                        .iter()
                        .find_map(|(id, r)| r.verify(&policy, now()).err().map(|e| (*id, e)));
                    match refused {
                        None => {
                            inst.lock()
                                .unwrap()
                                .extend(rules.into_iter().map(|(_, r)| (r.rule.name, r.kind)));
                            req.answer(ResultCode::DIAMETER_SUCCESS)
                        }
                        Some((id, why)) => {
                            let names: Vec<String> = rules
                                .iter()
                                .filter(|(i, _)| *i == id)
                                .map(|(_, r)| r.rule.name.clone())
                                .collect();
                            let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                            a.push(why.result_avp());
                            a.copy_required_from(&req.msg, req.node.dictionary());
                            a.push(lbo::s9_refusal_info(id, &names, &why));
                            a.push(base::ERROR_MESSAGE.with(why.to_string()));
                            a
                        }
                    }
                }
            }),
        );
        assert!(node.wait_peer(pcrf_host, T).await, "PCRF not open");
        Self {
            node,
            requests,
            installed,
        }
    }

    /// S9 CCR-I for `imsi` with subsession 1 at the UE's address.
    async fn establish(&self, imsi: &str) -> Message {
        let mut b = MessageBuilder::request(272, S9, true);
        b.push(base::SESSION_ID.with(S9_SID.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(S9));
        b.push(base::ORIGIN_HOST.with(VPCRF));
        b.push(base::ORIGIN_REALM.with(VISITED));
        b.push(base::DESTINATION_REALM.with(HOME));
        b.push(
            diameter_codec::dict::dcca::CC_REQUEST_TYPE
                .with(diameter_codec::dict::dcca::CcRequestType::INITIAL_REQUEST),
        );
        b.push(diameter_codec::dict::dcca::CC_REQUEST_NUMBER.with(0u32));
        b.push(diameter_codec::dict::dcca::SUBSCRIPTION_ID.with(vec![
            diameter_codec::dict::dcca::SUBSCRIPTION_ID_TYPE
                .with(diameter_codec::dict::dcca::SubscriptionIdType::END_USER_IMSI),
            diameter_codec::dict::dcca::SUBSCRIPTION_ID_DATA.with(imsi.to_string()),
        ]));
        b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
            s9::SUBSESSION_ID.with(1u32),
            s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation::ESTABLISHMENT),
            nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(&UE)),
            nasreq::CALLED_STATION_ID.with("internet"),
            gx::RAT_TYPE.with(gx::RatType(1004)),
        ]));
        let a = self.node.request(b).await.expect("CCA");
        assert_eq!(rc(&a), Some(2001));
        a
    }

    fn installed(&self) -> Vec<(String, LboKind)> {
        self.installed.lock().unwrap().clone()
    }

    async fn nth_request(&self, n: usize) -> Message {
        let end = Instant::now() + T;
        loop {
            if let Some(m) = self.requests.lock().unwrap().get(n - 1) {
                return m.clone();
            }
            assert!(Instant::now() < end, "no request number {n} from the PCRF");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The media component of the CDN flow to `server` (Rx form: downlink `permit out` from
/// the server, uplink `permit in` to it).
fn cdn_component(server: &str) -> OwnedAvp {
    rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(1u32),
        sub_component(
            1,
            &[
                &format!("permit out 6 from {server} 443 to 10.45.0.2"),
                &format!("permit in 6 from 10.45.0.2 to {server} 443"),
            ],
            None,
        ),
        rx::MEDIA_TYPE.with(rx::MediaType::DATA),
    ])
}

/// The OTT's credential as the H-AS derives it from `initial` (document 000 ¶0052).
fn ott_grant(ott: &str, package: &str, initial: &Key, ttl: i64) -> OttGrant {
    let expiry = DiameterTime::from_unix(now() + ttl).unwrap();
    let nonce = b"nonce-1".to_vec();
    OttGrant {
        ott: ott.into(),
        package: package.into(),
        key: lbo::ott_dynamic_key(initial, package, &nonce, expiry).to_vec(),
        nonce,
        expiry,
    }
}

/// An LBO AAR of the H-AS for the UE.
fn lbo_aar(af: &Af, session: &str, server: &str, g: &OttGrant) -> MessageBuilder {
    let mut b = af.aar(session, UE, vec![cdn_component(server)], &[]);
    b.push(roaming::LBO_INDICATOR.with(roaming::LboIndicator::LOCAL_BREAKOUT));
    b.push(lbo::ott_grant_avp(g));
    b
}

/// The Experimental-Result-Code of an answer and its Vendor-Id.
fn vendor_result(m: &Message) -> Option<(u32, u32)> {
    let e = m.find(base::EXPERIMENTAL_RESULT.key())?;
    Some((u32_of(&child(&e, 298)?), u32_of(&child(&e, 266)?)))
}

/// The LBO rules of a message's Subsession-Decision-Infos.
fn lbo_rules(m: &Message) -> Vec<lbo::ReadLboRule> {
    all(m.avps().flatten(), 2200)
        .iter()
        .flat_map(|sdi| all(sdi.children().flatten(), 1001))
        .flat_map(|cri| lbo::lbo_rules_in(&cri))
        .collect()
}

/// A home PCRF, the test-only V-PCRF with an S9 session for `imsi`, and the AF.
async fn lab(host: &str, home: HomeLboConfig, visited: VisitedLboPolicy) -> (Pcrf, TestVpcrf, Af) {
    let p = home_pcrf(host, home).await;
    let addr = p.listen_addrs()[0];
    let v = TestVpcrf::connect(host, addr, visited).await;
    v.establish(IMSI_1).await;
    let af = Af::connect_to(host, "has.home.test", addr, AfReply::Success, None).await;
    (p, v, af)
}

/// The LBO-marked rules home records on the S9 subsession.
async fn subsession_lbo_rules(p: &Pcrf) -> Vec<String> {
    p.s9_session(S9_SID).await.unwrap().unwrap().subsessions[&1]
        .policy
        .dynamic_rules
        .values()
        .filter(|r| r.lbo.is_some())
        .map(|r| r.name.clone())
        .collect()
}

#[tokio::test]
async fn lbo_is_pushed_end_to_end_and_the_af_hears_success() {
    let (p, v, af) = lab("pcrf-lbo-ok.home.test", home_lbo(), visited_policy()).await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = af.send(lbo_aar(&af, "has;ok", CDN, &g)).await;
    assert_eq!(rc(&aaa), Some(2001), "{aaa:?}");
    // The S9 RAR carried the rule marked LOCAL_BREAKOUT with a valid grant for the package.
    let rar = v.nth_request(1).await;
    assert_eq!(rar.session_id(), Some(S9_SID));
    let rules = lbo_rules(&rar);
    assert_eq!(rules.len(), 1);
    let r = &rules[0];
    assert_eq!(r.kind, LboKind::LocalBreakout);
    let grant = r.grant.clone().unwrap().unwrap();
    assert_eq!(
        (grant.home_operator.as_str(), grant.package.as_str()),
        (HOME_OP, PACKAGE)
    );
    assert!(grant.expiry.to_unix() > now());
    assert!(
        r.rule.flows.iter().all(|f| f.description.contains(CDN)),
        "{:?}",
        r.rule.flows
    );
    assert_eq!(
        v.installed(),
        [(r.rule.name.clone(), LboKind::LocalBreakout)]
    );
    // Home records it on the subsession, with its mark.
    let s = p.s9_session(S9_SID).await.unwrap().unwrap();
    let kept = &s.subsessions[&1].policy.dynamic_rules[&r.rule.name];
    assert_eq!(kept.lbo.as_ref().unwrap().kind, LboKind::LocalBreakout);
    // A modification would re-derive the signed rule: refused, the rule stays as it was.
    let mut upd = af.aar("has;ok", UE, vec![cdn_component("203.0.113.11")], &[]);
    upd.push(rx::RX_REQUEST_TYPE.with(rx::RxRequestType::UPDATE_REQUEST));
    let aaa = af.send(upd).await;
    assert_eq!(experimental(&aaa), Some(5063), "{aaa:?}");
    assert_eq!(
        subsession_lbo_rules(&p).await,
        std::slice::from_ref(&r.rule.name)
    );
    assert_eq!(
        v.requests.lock().unwrap().len(),
        1,
        "no RAR for the refused update"
    );
}

/// Each refusal reaches the AF with its code, and nothing is installed at either side.
#[tokio::test]
async fn lbo_refusals_reach_the_af_with_their_codes_and_install_nothing() {
    struct Case {
        what: &'static str,
        home: HomeLboConfig,
        visited: VisitedLboPolicy,
        server: &'static str,
        grant: OttGrant,
        /// (code, vendor) in Experimental-Result, or a Result-Code (vendor 0).
        want: (u32, u32),
        /// Whether the rule got as far as the V-PCRF.
        reaches_visited: bool,
    }
    let good = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let mut forged_home = home_lbo();
    forged_home.partners[0].key = key(0x66);
    let mut expiring_home = home_lbo();
    expiring_home.grant_lifetime = 0;
    let mut other_op = visited_policy();
    other_op.agreements[0].home_operator = "00199".into();
    let mut no_pkg_ott = home_lbo();
    no_pkg_ott.otts[0].package = "cdn-music".into();
    let cases = vec![
        Case {
            what: "forged signature",
            home: forged_home,
            visited: visited_policy(),
            server: CDN,
            grant: good.clone(),
            want: (5804, 32473),
            reaches_visited: true,
        },
        Case {
            what: "expired grant",
            home: expiring_home,
            visited: visited_policy(),
            server: CDN,
            grant: good.clone(),
            want: (5805, 32473),
            reaches_visited: true,
        },
        Case {
            what: "unknown home operator",
            home: home_lbo(),
            visited: other_op,
            server: CDN,
            grant: good.clone(),
            want: (5801, 32473),
            reaches_visited: true,
        },
        Case {
            what: "destination outside the allowed visited prefixes",
            home: home_lbo(),
            visited: visited_policy(),
            server: "198.51.100.7",
            grant: good.clone(),
            want: (5803, 32473),
            reaches_visited: true,
        },
        Case {
            what: "wrong OTT key",
            home: home_lbo(),
            visited: visited_policy(),
            server: CDN,
            grant: ott_grant(OTT, PACKAGE, &key(0x08), 120),
            want: (4001, 0),
            reaches_visited: false,
        },
        Case {
            what: "OTT without the package",
            home: no_pkg_ott,
            visited: visited_policy(),
            server: CDN,
            grant: good.clone(),
            want: (5807, 32473),
            reaches_visited: false,
        },
        Case {
            what: "expired OTT key",
            home: home_lbo(),
            visited: visited_policy(),
            server: CDN,
            grant: ott_grant(OTT, PACKAGE, &ott_initial(), -5),
            want: (5808, 32473),
            reaches_visited: false,
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let host = format!("pcrf-lbo-refusal-{i}.home.test");
        let (p, v, af) = lab(&host, c.home, c.visited).await;
        let sid = format!("has;refused-{i}");
        let aaa = af.send(lbo_aar(&af, &sid, c.server, &c.grant)).await;
        strictly_valid(&aaa);
        let got = if c.want.1 == 0 {
            (rc(&aaa).unwrap_or(0), 0)
        } else {
            vendor_result(&aaa).unwrap_or_default()
        };
        assert_eq!(got, c.want, "{}: {aaa:?}", c.what);
        assert!(
            aaa.get(base::ERROR_MESSAGE).is_some(),
            "{}: an Error-Message says why",
            c.what
        );
        // Nothing installed: not at the visited side, not in home's record, no AF session.
        assert!(v.installed().is_empty(), "{}", c.what);
        assert!(subsession_lbo_rules(&p).await.is_empty(), "{}", c.what);
        assert!(p.rx_session(&sid).await.unwrap().is_none(), "{}", c.what);
        let reached = !v.requests.lock().unwrap().is_empty();
        assert_eq!(reached, c.reaches_visited, "{}", c.what);
    }
}

#[tokio::test]
async fn a_subscriber_without_the_package_is_refused_at_home() {
    let host = "pcrf-lbo-nosub.home.test";
    let p = home_pcrf(host, home_lbo()).await;
    let addr = p.listen_addrs()[0];
    let v = TestVpcrf::connect(host, addr, visited_policy()).await;
    // Subscriber 3 holds no LBO package.
    v.establish(IMSI_3).await;
    let af = Af::connect_to(host, "has.home.test", addr, AfReply::Success, None).await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = af.send(lbo_aar(&af, "has;nosub", CDN, &g)).await;
    assert_eq!(vendor_result(&aaa), Some((5809, 32473)));
    assert!(v.requests.lock().unwrap().is_empty());
}

/// Claim 9: a preset per package goes, signed, into the S9 CCA of a new subsession of a
/// subscriber who holds the package; no AF is involved.
#[tokio::test]
async fn preset_lbo_rules_are_pushed_at_s9_establishment() {
    let mut home = home_lbo();
    home.presets.push(LboPreset {
        package: PACKAGE.into(),
        name: "lbo-cdn-preset".into(),
        precedence: Some(40),
        flows: vec![
            Flow {
                description: format!("permit out ip from {CDN} to any"),
                direction: FlowDirection::Downlink,
            },
            Flow {
                description: format!("permit out ip from any to {CDN}"),
                direction: FlowDirection::Uplink,
            },
        ],
    });
    let host = "pcrf-lbo-preset.home.test";
    let p = home_pcrf(host, home).await;
    let v = TestVpcrf::connect(host, p.listen_addrs()[0], visited_policy()).await;
    let cca = v.establish(IMSI_1).await;
    let rules = lbo_rules(&cca);
    assert_eq!(rules.len(), 1, "{cca:?}");
    assert_eq!(rules[0].rule.name, "lbo-cdn-preset");
    assert_eq!(rules[0].verify(&visited_policy(), now()), Ok(()));
    assert!(
        subsession_lbo_rules(&p)
            .await
            .contains(&"lbo-cdn-preset".to_string())
    );
    // Subscriber 3 holds no package: no preset.
    let mut b = MessageBuilder::request(272, S9, true);
    b.push(base::SESSION_ID.with("pcrf.visited.test;s9;other".to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(S9));
    b.push(base::ORIGIN_HOST.with(VPCRF));
    b.push(base::ORIGIN_REALM.with(VISITED));
    b.push(base::DESTINATION_REALM.with(HOME));
    b.push(
        diameter_codec::dict::dcca::CC_REQUEST_TYPE
            .with(diameter_codec::dict::dcca::CcRequestType::INITIAL_REQUEST),
    );
    b.push(diameter_codec::dict::dcca::CC_REQUEST_NUMBER.with(0u32));
    b.push(diameter_codec::dict::dcca::SUBSCRIPTION_ID.with(vec![
        diameter_codec::dict::dcca::SUBSCRIPTION_ID_TYPE
            .with(diameter_codec::dict::dcca::SubscriptionIdType::END_USER_IMSI),
        diameter_codec::dict::dcca::SUBSCRIPTION_ID_DATA.with(IMSI_3.to_string()),
    ]));
    b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
        s9::SUBSESSION_ID.with(1u32),
        s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation::ESTABLISHMENT),
        nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::from_static(&[10, 45, 0, 3])),
    ]));
    let cca = v.node.request(b).await.unwrap();
    assert_eq!(rc(&cca), Some(2001));
    assert!(lbo_rules(&cca).is_empty());
}

/// Variant FIG. 6 (V-Local-UP): the rules go by Gx to home's own user plane in the visited
/// network, unsigned; then the V-PCRF is asked to steer the UE's traffic there.
#[tokio::test]
async fn v_local_up_gets_the_rule_and_the_v_pcrf_steers_to_it() {
    let host = "pcrf-lbo-lup.home.test";
    let mut home = home_lbo();
    home.local_up.push(LocalUp {
        host: "lup.visited.test".into(),
        visited_realm: VISITED.into(),
        steering_policy: "to-home-lup".into(),
    });
    let p = home_pcrf(host, home).await;
    let addr = p.listen_addrs()[0];
    let v = TestVpcrf::connect(host, addr, visited_policy()).await;
    v.establish(IMSI_1).await;
    // Home's user plane in the visited network opens its Gx session for the UE.
    let up = Pcef::connect_to(host, "lup.visited.test", addr, None, RarReply::Success).await;
    assert_eq!(rc(&up.send(up.ccr_i("lup;1", IMSI_1)).await), Some(2001));
    let af = Af::connect_to(host, "has.home.test", addr, AfReply::Success, None).await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = af.send(lbo_aar(&af, "has;lup", CDN, &g)).await;
    assert_eq!(rc(&aaa), Some(2001), "{aaa:?}");
    // The user plane got the rule marked LOCAL_BREAKOUT (no grant: home controls it).
    let gx_rar = up.rars.lock().unwrap()[0].clone();
    let on_up: Vec<lbo::ReadLboRule> = all(gx_rar.avps().flatten(), 1001)
        .iter()
        .flat_map(lbo::lbo_rules_in)
        .collect();
    assert_eq!(on_up.len(), 1);
    assert_eq!(on_up[0].kind, LboKind::LocalBreakout);
    assert!(on_up[0].grant.is_none());
    // The V-PCRF got a signed steering rule naming the steering policy, and accepted it.
    let installed = v.installed();
    assert_eq!(
        installed.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>(),
        [LboKind::SteerToLocalUp("to-home-lup".into())]
    );
    // The AF session ends: the rules leave the user plane and the steering the V-PCRF.
    assert_eq!(rc(&af.send(af.str_("has;lup")).await), Some(2001));
    let undo = v.nth_request(2).await;
    let sdi = all(undo.avps().flatten(), 2200);
    let removed_names: Vec<String> = sdi
        .iter()
        .flat_map(|d| all(d.children().flatten(), 1002))
        .flat_map(|r| all(r.children().flatten(), 1005))
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
        .collect();
    assert_eq!(removed_names, [installed[0].0.clone()]);
    assert_eq!(removed(&up.rars.lock().unwrap()[1]).len(), 1);
    assert!(subsession_lbo_rules(&p).await.is_empty());
}

#[tokio::test]
async fn v_local_up_steering_refused_by_the_visited_side_undoes_the_user_plane() {
    let host = "pcrf-lbo-lup-refused.home.test";
    let mut home = home_lbo();
    home.local_up.push(LocalUp {
        host: "lup.visited.test".into(),
        visited_realm: VISITED.into(),
        steering_policy: "unknown-policy".into(),
    });
    let p = home_pcrf(host, home).await;
    let addr = p.listen_addrs()[0];
    let v = TestVpcrf::connect(host, addr, visited_policy()).await;
    v.establish(IMSI_1).await;
    let up = Pcef::connect_to(host, "lup.visited.test", addr, None, RarReply::Success).await;
    assert_eq!(rc(&up.send(up.ccr_i("lup;2", IMSI_1)).await), Some(2001));
    let af = Af::connect_to(host, "has.home.test", addr, AfReply::Success, None).await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = af.send(lbo_aar(&af, "has;lup-no", CDN, &g)).await;
    assert_eq!(vendor_result(&aaa), Some((5803, 32473)), "{aaa:?}");
    assert!(v.installed().is_empty());
    // The user plane had the rule, then had it removed again.
    eventually("the user plane's rule removed", || {
        up.rars.lock().unwrap().len() >= 2
    })
    .await;
    let undo = up.rars.lock().unwrap()[1].clone();
    assert_eq!(removed(&undo).len(), 1);
    let s = p.session("lup;2").await.unwrap().unwrap();
    assert!(s.dynamic_rules.values().all(|r| r.lbo.is_none()), "{s:?}");
}

#[tokio::test]
async fn lbo_series_count_grants_by_outcome_and_reason() {
    let rec = diameter_node::metrics::recorder();
    let handle = rec.handle();
    // This test binary's only recorder: other tests' series carry other node labels.
    metrics::set_global_recorder(rec).expect("no recorder yet");
    let host = "pcrf-lbo-metrics.home.test";
    let (_p, _v, af) = lab(host, home_lbo(), visited_policy()).await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    assert_eq!(rc(&af.send(lbo_aar(&af, "m;1", CDN, &g)).await), Some(2001));
    let bad = ott_grant(OTT, PACKAGE, &key(1), 120);
    assert_eq!(
        rc(&af.send(lbo_aar(&af, "m;2", CDN, &bad)).await),
        Some(4001)
    );
    let far = af.send(lbo_aar(&af, "m;3", "198.51.100.9", &g)).await;
    assert_eq!(vendor_result(&far), Some((5803, 32473)));
    let text = handle.render();
    for want in [
        "pcrf_lbo_grants_total{node=\"pcrf-lbo-metrics.home.test\",source=\"af\",outcome=\"accepted\",reason=\"ok\"} 1",
        "pcrf_lbo_grants_total{node=\"pcrf-lbo-metrics.home.test\",source=\"af\",outcome=\"refused\",reason=\"ott_key_mismatch\"} 1",
        "pcrf_lbo_grants_total{node=\"pcrf-lbo-metrics.home.test\",source=\"af\",outcome=\"refused\",reason=\"destination_not_allowed\"} 1",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
}

/// Wireshark's dissector (an implementation nobody here wrote) reads the LBO traffic — our
/// vendor AVPs inside standard grouped AVPs — without a malformed packet or expert error, with
/// the CDN flow in the S9 RAR and the refusal's vendor in the AAA.
#[tokio::test]
async fn wireshark_reads_the_lbo_traffic() {
    if !harness::tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("lbo.pcapng");
    let host = "pcrf-lbo-ws.home.test";
    let p = home_pcrf_capturing(host, home_lbo(), Some(capture.clone())).await;
    let addr = p.listen_addrs()[0];
    let v = TestVpcrf::connect(host, addr, visited_policy()).await;
    v.establish(IMSI_1).await;
    let af = Af::connect_to(host, "has.home.test", addr, AfReply::Success, None).await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    assert_eq!(
        rc(&af.send(lbo_aar(&af, "ws;1", CDN, &g)).await),
        Some(2001)
    );
    let far = af.send(lbo_aar(&af, "ws;2", "198.51.100.7", &g)).await;
    assert_eq!(vendor_result(&far), Some((5803, 32473)));
    p.shutdown(Duration::from_secs(1)).await;
    drop(p);
    let bad = harness::tshark_fields(
        &capture,
        "_ws.malformed || _ws.expert.severity >= 0x00800000",
        &["frame.number", "_ws.expert.message"],
    );
    assert!(bad.trim().is_empty(), "tshark objects:\n{bad}");
    let rar = harness::tshark_fields(
        &capture,
        "diameter.cmd.code == 258 && diameter.flags.request == 1",
        &["diameter.Flow-Description"],
    );
    assert!(rar.lines().next().unwrap_or("").contains(CDN), "{rar}");
    // The AAAs: 2001, then the refusal in an Experimental-Result of vendor 32473 (its code,
    // 5803, was read above by our decoder; the dissector's dictionary knows no codes of that
    // vendor).
    let aaa = harness::tshark_fields(
        &capture,
        "diameter.cmd.code == 265 && diameter.flags.request == 0",
        &["diameter.Result-Code", "diameter.Vendor-Id"],
    );
    assert_eq!(
        aaa.lines().collect::<Vec<_>>(),
        ["2001\t", "\t32473"],
        "{aaa}"
    );
}
