//! Local breakout pushed from home to the visited network (document 000, issue 12 items 6,
//! 7, 10) end to end on loopback: an AF (the H-AS) sends an AAR with the visited CDN
//! server's flows and the OTT's credential; the H-PCRF authenticates the OTT, signs the rule
//! and sends it by S9 RAR to the real V-PCRF (a `pcrf` of role visited, in-process, from
//! `examples/visited.toml` with its `[pcrf.visited.lbo]` agreement), which verifies it and
//! installs it on the visited PCEF by Gx RAR; the AAA carries the outcome. Also the refusals
//! (each with its code, nothing installed on the PCEF), a PCEF that fails to install, the
//! preset rules of claim 9 at establishment (verified by the V-PCRF, refused ones reported
//! home), and variant FIG. 6 (V-Local-UP: the V-PCRF has the visited PCEF steer to home's
//! user plane).

mod common;
#[path = "../../tests/interop/harness.rs"]
mod harness;

use common::*;
use diameter_codec::Message;
use diameter_codec::dict::{base, roaming, rx};
use diameter_codec::types::DiameterTime;
use diameter_codec::{MessageBuilder, OwnedAvp};
use pcrf::lbo::{
    self, HomeLboConfig, Key, LboAgreement, LboKind, LboPartner, LboPreset, LocalUp, OttGrant,
    OttKey, VisitedLboPolicy,
};
use pcrf::spr::{Flow, FlowDirection};
use pcrf::{Config, Pcrf};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VISITED: &str = "visited.test";
const VPCRF: &str = "pcrf.visited.test";
/// The visited PCEF (the V-UP).
const PGW: &str = "pgw.visited.test";
const HOME_OP: &str = "00101";
const PACKAGE: &str = "cdn-video";
const OTT: &str = "ott-video";
/// The visited CDN server, inside the prefixes the visited operator allows.
const CDN: &str = "203.0.113.10";
/// The UE's address in the visited network (common::Pcef::ccr_i).
const UE: [u8; 4] = [10, 45, 0, 2];
/// The visited PCEF's Gx session.
const GX_SID: &str = "pgw.visited.test;lbo;1";

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

/// The visited side's agreement with home (`[pcrf.visited.lbo]`).
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

/// The V-PCRF: `examples/visited.toml` on a free port, S9 to the home PCRF `home_host` at
/// `home`, with the LBO agreements `policy`.
async fn visited_pcrf(home_host: &str, home: SocketAddr, policy: VisitedLboPolicy) -> Pcrf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/visited.toml");
    let mut cfg = Config::load(&path).unwrap();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.node.peers[0].host = home_host.to_string();
    cfg.node.peers[0].connect = Some(home);
    cfg.node.routes[0].peers[0].host = home_host.to_string();
    cfg.pcrf.admin = None;
    let v = cfg.pcrf.visited.as_mut().unwrap();
    v.homes[0].pcrf = Some(home_host.to_string());
    v.lbo = Some(policy);
    let p = Pcrf::start(&cfg).await.unwrap();
    assert!(
        p.node().wait_peer(home_host, T).await,
        "V-PCRF not connected to home"
    );
    p
}

/// A home PCRF, the V-PCRF, the visited PCEF with the UE's roaming session (`imsi`), and
/// the AF (H-AS).
struct Lab {
    home: Pcrf,
    visited: Pcrf,
    pcef: Pcef,
    /// The PCEF's CCA-I.
    cca: Message,
    af: Af,
}

impl Lab {
    async fn start(host: &str, home: HomeLboConfig, visited: VisitedLboPolicy) -> Self {
        Self::with(host, home, visited, IMSI_1, RarReply::Success).await
    }

    async fn with(
        host: &str,
        home: HomeLboConfig,
        visited: VisitedLboPolicy,
        imsi: &str,
        reply: RarReply,
    ) -> Self {
        let h = home_pcrf(host, home).await;
        let addr = h.listen_addrs()[0];
        let v = visited_pcrf(host, addr, visited).await;
        let pcef = Pcef::connect_in(VPCRF, VISITED, PGW, v.listen_addrs()[0], None, reply).await;
        let cca = pcef.send(pcef.ccr_i(GX_SID, imsi)).await;
        assert_eq!(rc(&cca), Some(2001), "{cca:?}");
        let af = Af::connect_to(host, "has.home.test", addr, AfReply::Success, None).await;
        Self {
            home: h,
            visited: v,
            pcef,
            cca,
            af,
        }
    }

    /// The UE's S9 session, as the V-PCRF opened it.
    async fn s9_sid(&self) -> String {
        s9_session_of(&self.visited, GX_SID).await
    }

    /// The LBO-marked rules home records on the UE's S9 subsession.
    async fn home_lbo_rules(&self) -> Vec<String> {
        self.home
            .s9_session(&self.s9_sid().await)
            .await
            .unwrap()
            .unwrap()
            .subsessions[&1]
            .policy
            .dynamic_rules
            .values()
            .filter(|r| r.lbo.is_some())
            .map(|r| r.name.clone())
            .collect()
    }

    /// The Gx RARs the visited PCEF got.
    fn pcef_rars(&self) -> Vec<Message> {
        self.pcef.rars.lock().unwrap().clone()
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

/// The LBO rules a message installs: in its Charging-Rule-Installs (Gx) or those of its
/// Subsession-Decision-Infos (S9).
fn lbo_rules(m: &Message) -> Vec<lbo::ReadLboRule> {
    let mut cris = all(m.avps().flatten(), 1001);
    for sdi in all(m.avps().flatten(), 2200) {
        cris.extend(all(sdi.children().flatten(), 1001));
    }
    cris.iter().flat_map(lbo::lbo_rules_in).collect()
}

/// The rule names a message's Charging-Rule-Removes name.
fn removed_names(m: &Message) -> Vec<String> {
    all(m.avps().flatten(), 1002)
        .iter()
        .flat_map(|r| all(r.children().flatten(), 1005))
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
        .collect()
}

#[tokio::test]
async fn lbo_is_pushed_end_to_end_and_the_af_hears_success() {
    let lab = Lab::start("pcrf-lbo-ok.home.test", home_lbo(), visited_policy()).await;
    assert!(lbo_rules(&lab.cca).is_empty(), "no preset configured");
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = lab.af.send(lbo_aar(&lab.af, "has;ok", CDN, &g)).await;
    assert_eq!(rc(&aaa), Some(2001), "{aaa:?}");
    // The V-PCRF verified the rule and installed it on the visited PCEF as home signed it:
    // marked LOCAL_BREAKOUT, its grant for the package, the flows to the CDN server.
    let rars = lab.pcef_rars();
    assert_eq!(rars.len(), 1);
    assert_eq!(rars[0].session_id(), Some(GX_SID));
    let rules = lbo_rules(&rars[0]);
    assert_eq!(rules.len(), 1, "{:?}", rars[0]);
    let r = &rules[0];
    assert_eq!(r.kind, LboKind::LocalBreakout);
    assert_eq!(r.verify(&visited_policy(), now()), Ok(()));
    let grant = r.grant.clone().unwrap().unwrap();
    assert_eq!(
        (grant.home_operator.as_str(), grant.package.as_str()),
        (HOME_OP, PACKAGE)
    );
    assert!(
        r.rule.flows.iter().all(|f| f.description.contains(CDN)),
        "{:?}",
        r.rule.flows
    );
    // Home records it on the subsession, with its mark.
    assert_eq!(
        lab.home_lbo_rules().await,
        std::slice::from_ref(&r.rule.name)
    );
    // A modification would re-derive the signed rule: refused, the rule stays as it was.
    let mut upd = lab
        .af
        .aar("has;ok", UE, vec![cdn_component("203.0.113.11")], &[]);
    upd.push(rx::RX_REQUEST_TYPE.with(rx::RxRequestType::UPDATE_REQUEST));
    let aaa = lab.af.send(upd).await;
    assert_eq!(experimental(&aaa), Some(5063), "{aaa:?}");
    assert_eq!(
        lab.home_lbo_rules().await,
        std::slice::from_ref(&r.rule.name)
    );
    assert_eq!(lab.pcef_rars().len(), 1, "no RAR for the refused update");
    // The AF session ends: the rule leaves the visited PCEF.
    assert_eq!(rc(&lab.af.send(lab.af.str_("has;ok")).await), Some(2001));
    eventually("the rule removed at the PCEF", || {
        lab.pcef_rars().len() >= 2
    })
    .await;
    assert_eq!(
        removed_names(&lab.pcef_rars()[1]),
        std::slice::from_ref(&r.rule.name)
    );
    assert!(lab.home_lbo_rules().await.is_empty());
}

/// Each refusal reaches the AF with its code, and nothing is installed: not on the visited
/// PCEF, not in home's record, no AF session.
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
        /// Whether the V-PCRF refused it (else home did, before any S9 RAR).
        by_visited: bool,
    }
    let good = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let mut forged_home = home_lbo();
    forged_home.partners[0].key = key(0x66);
    let mut expiring_home = home_lbo();
    expiring_home.grant_lifetime = 0;
    let mut other_op = visited_policy();
    other_op.agreements[0].home_operator = "00199".into();
    let mut no_pkg_visited = visited_policy();
    no_pkg_visited.agreements[0].packages = vec!["cdn-music".into()];
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
            by_visited: true,
        },
        Case {
            what: "expired grant",
            home: expiring_home,
            visited: visited_policy(),
            server: CDN,
            grant: good.clone(),
            want: (5805, 32473),
            by_visited: true,
        },
        Case {
            what: "unknown home operator",
            home: home_lbo(),
            visited: other_op,
            server: CDN,
            grant: good.clone(),
            want: (5801, 32473),
            by_visited: true,
        },
        Case {
            what: "package outside the agreement",
            home: home_lbo(),
            visited: no_pkg_visited,
            server: CDN,
            grant: good.clone(),
            want: (5802, 32473),
            by_visited: true,
        },
        Case {
            what: "destination outside the allowed visited prefixes",
            home: home_lbo(),
            visited: visited_policy(),
            server: "198.51.100.7",
            grant: good.clone(),
            want: (5803, 32473),
            by_visited: true,
        },
        Case {
            what: "wrong OTT key",
            home: home_lbo(),
            visited: visited_policy(),
            server: CDN,
            grant: ott_grant(OTT, PACKAGE, &key(0x08), 120),
            want: (4001, 0),
            by_visited: false,
        },
        Case {
            what: "OTT without the package",
            home: no_pkg_ott,
            visited: visited_policy(),
            server: CDN,
            grant: good.clone(),
            want: (5807, 32473),
            by_visited: false,
        },
        Case {
            what: "expired OTT key",
            home: home_lbo(),
            visited: visited_policy(),
            server: CDN,
            grant: ott_grant(OTT, PACKAGE, &ott_initial(), -5),
            want: (5808, 32473),
            by_visited: false,
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let host = format!("pcrf-lbo-refusal-{i}.home.test");
        let lab = Lab::start(&host, c.home, c.visited).await;
        let sid = format!("has;refused-{i}");
        let aaa = lab
            .af
            .send(lbo_aar(&lab.af, &sid, c.server, &c.grant))
            .await;
        strictly_valid(&aaa);
        let got = if c.want.1 == 0 {
            (rc(&aaa).unwrap_or(0), 0)
        } else {
            vendor_result(&aaa).unwrap_or_default()
        };
        assert_eq!(got, c.want, "{}: {aaa:?}", c.what);
        let why = aaa
            .get(base::ERROR_MESSAGE)
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("{}: an Error-Message says why", c.what));
        assert_eq!(
            why.contains("visited network refused"),
            c.by_visited,
            "{}: {why}",
            c.what
        );
        assert!(lab.pcef_rars().is_empty(), "{}", c.what);
        assert!(lab.home_lbo_rules().await.is_empty(), "{}", c.what);
        assert!(
            lab.home.rx_session(&sid).await.unwrap().is_none(),
            "{}",
            c.what
        );
    }
}

/// The Gx RAA becomes the S9 RAA: a visited PCEF that cannot install the rule (INACTIVE in
/// its report) makes the AF's AAA a refusal, and home keeps no rule.
#[tokio::test]
async fn a_pcef_that_cannot_install_the_rule_is_heard_at_the_af() {
    let lab = Lab::with(
        "pcrf-lbo-pcef-fails.home.test",
        home_lbo(),
        visited_policy(),
        IMSI_1,
        RarReply::FailRules,
    )
    .await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = lab.af.send(lbo_aar(&lab.af, "has;fails", CDN, &g)).await;
    assert_eq!(experimental(&aaa), Some(5063), "{aaa:?}");
    // The PCEF was asked (the V-PCRF accepted the grant), and said no.
    assert_eq!(lbo_rules(&lab.pcef_rars()[0]).len(), 1);
    assert!(lab.home_lbo_rules().await.is_empty());
}

#[tokio::test]
async fn a_subscriber_without_the_package_is_refused_at_home() {
    // Subscriber 3 holds no LBO package.
    let lab = Lab::with(
        "pcrf-lbo-nosub.home.test",
        home_lbo(),
        visited_policy(),
        IMSI_3,
        RarReply::Success,
    )
    .await;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = lab.af.send(lbo_aar(&lab.af, "has;nosub", CDN, &g)).await;
    assert_eq!(vendor_result(&aaa), Some((5809, 32473)));
    assert!(lab.pcef_rars().is_empty());
}

fn home_with_preset() -> HomeLboConfig {
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
    home
}

/// Claim 9: a preset per package goes, signed, into the S9 CCA of a new subsession of a
/// subscriber who holds the package, no AF involved; the V-PCRF verifies it and the
/// visited PCEF gets it in its CCA-I.
#[tokio::test]
async fn preset_lbo_rules_are_pushed_at_establishment_and_verified() {
    let lab = Lab::start(
        "pcrf-lbo-preset.home.test",
        home_with_preset(),
        visited_policy(),
    )
    .await;
    let rules = lbo_rules(&lab.cca);
    assert_eq!(rules.len(), 1, "{:?}", lab.cca);
    assert_eq!(rules[0].rule.name, "lbo-cdn-preset");
    assert_eq!(rules[0].kind, LboKind::LocalBreakout);
    assert_eq!(rules[0].verify(&visited_policy(), now()), Ok(()));
    assert_eq!(lab.home_lbo_rules().await, ["lbo-cdn-preset"]);
    // Subscriber 3 holds no package: no preset.
    let other = lab
        .pcef
        .send(lab.pcef.ccr_i("pgw.visited.test;lbo;3", IMSI_3))
        .await;
    assert_eq!(rc(&other), Some(2001));
    assert!(lbo_rules(&other).is_empty());
}

/// A preset the agreement does not cover is left out of the PCEF's CCA and reported home
/// INACTIVE, like any rule the V-PCRF refuses; the session is established all the same.
#[tokio::test]
async fn a_preset_the_agreement_refuses_is_reported_home() {
    let mut no_pkg = visited_policy();
    no_pkg.agreements[0].packages = vec!["cdn-music".into()];
    let lab = Lab::start("pcrf-lbo-preset-no.home.test", home_with_preset(), no_pkg).await;
    assert!(lbo_rules(&lab.cca).is_empty(), "{:?}", lab.cca);
    assert!(
        installed(&lab.cca)
            .iter()
            .all(|(n, _)| n != "lbo-cdn-preset"),
        "{:?}",
        lab.cca
    );
    let end = std::time::Instant::now() + T;
    while !lab.home_lbo_rules().await.is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "home kept the refused preset"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Variant FIG. 6 (V-Local-UP): the rules go by Gx to home's own user plane in the visited
/// network, unsigned; then the V-PCRF verifies the signed steering rule and has the visited
/// PCEF steer the UE's traffic there.
#[tokio::test]
async fn v_local_up_gets_the_rule_and_the_v_pcrf_steers_to_it() {
    let host = "pcrf-lbo-lup.home.test";
    let mut home = home_lbo();
    home.local_up.push(LocalUp {
        host: "lup.visited.test".into(),
        visited_realm: VISITED.into(),
        steering_policy: "to-home-lup".into(),
    });
    let lab = Lab::start(host, home, visited_policy()).await;
    let addr = lab.home.listen_addrs()[0];
    // Home's user plane in the visited network opens its Gx session for the UE.
    let up = Pcef::connect_to(host, "lup.visited.test", addr, None, RarReply::Success).await;
    assert_eq!(rc(&up.send(up.ccr_i("lup;1", IMSI_1)).await), Some(2001));
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = lab.af.send(lbo_aar(&lab.af, "has;lup", CDN, &g)).await;
    assert_eq!(rc(&aaa), Some(2001), "{aaa:?}");
    // The user plane got the rule marked LOCAL_BREAKOUT (no grant: home controls it).
    let gx_rar = up.rars.lock().unwrap()[0].clone();
    let on_up = lbo_rules(&gx_rar);
    assert_eq!(on_up.len(), 1);
    assert_eq!(on_up[0].kind, LboKind::LocalBreakout);
    assert!(on_up[0].grant.is_none());
    // The visited PCEF got the signed steering rule naming the steering policy, verified.
    let rars = lab.pcef_rars();
    assert_eq!(rars.len(), 1);
    let steer = lbo_rules(&rars[0]);
    assert_eq!(steer.len(), 1, "{:?}", rars[0]);
    assert_eq!(steer[0].kind, LboKind::SteerToLocalUp("to-home-lup".into()));
    assert_eq!(steer[0].verify(&visited_policy(), now()), Ok(()));
    // The AF session ends: the rules leave the user plane and the steering the PCEF.
    assert_eq!(rc(&lab.af.send(lab.af.str_("has;lup")).await), Some(2001));
    eventually("the steering removed at the PCEF", || {
        lab.pcef_rars().len() >= 2
    })
    .await;
    assert_eq!(
        removed_names(&lab.pcef_rars()[1]),
        [steer[0].rule.name.clone()]
    );
    assert_eq!(removed(&up.rars.lock().unwrap()[1]).len(), 1);
    assert!(lab.home_lbo_rules().await.is_empty());
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
    let lab = Lab::start(host, home, visited_policy()).await;
    let addr = lab.home.listen_addrs()[0];
    let up = Pcef::connect_to(host, "lup.visited.test", addr, None, RarReply::Success).await;
    assert_eq!(rc(&up.send(up.ccr_i("lup;2", IMSI_1)).await), Some(2001));
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    let aaa = lab.af.send(lbo_aar(&lab.af, "has;lup-no", CDN, &g)).await;
    assert_eq!(vendor_result(&aaa), Some((5803, 32473)), "{aaa:?}");
    assert!(lab.pcef_rars().is_empty());
    // The user plane had the rule, then had it removed again.
    eventually("the user plane's rule removed", || {
        up.rars.lock().unwrap().len() >= 2
    })
    .await;
    let undo = up.rars.lock().unwrap()[1].clone();
    assert_eq!(removed(&undo).len(), 1);
    let s = lab.home.session("lup;2").await.unwrap().unwrap();
    assert!(s.dynamic_rules.values().all(|r| r.lbo.is_none()), "{s:?}");
}

#[tokio::test]
async fn lbo_series_count_grants_by_outcome_and_reason() {
    let rec = diameter_node::metrics::recorder();
    let handle = rec.handle();
    // This test binary's only recorder: other tests' series carry other node labels (their
    // V-PCRFs' too: pcrf.visited.test counts what every test's V-PCRF does from here on,
    // so only the home's series are compared exactly).
    metrics::set_global_recorder(rec).expect("no recorder yet");
    let host = "pcrf-lbo-metrics.home.test";
    let lab = Lab::start(host, home_lbo(), visited_policy()).await;
    let af = &lab.af;
    let g = ott_grant(OTT, PACKAGE, &ott_initial(), 120);
    assert_eq!(rc(&af.send(lbo_aar(af, "m;1", CDN, &g)).await), Some(2001));
    let bad = ott_grant(OTT, PACKAGE, &key(1), 120);
    assert_eq!(
        rc(&af.send(lbo_aar(af, "m;2", CDN, &bad)).await),
        Some(4001)
    );
    let far = af.send(lbo_aar(af, "m;3", "198.51.100.9", &g)).await;
    assert_eq!(vendor_result(&far), Some((5803, 32473)));
    let text = handle.render();
    for want in [
        "pcrf_lbo_grants_total{node=\"pcrf-lbo-metrics.home.test\",source=\"af\",outcome=\"accepted\",reason=\"ok\"} 1",
        "pcrf_lbo_grants_total{node=\"pcrf-lbo-metrics.home.test\",source=\"af\",outcome=\"refused\",reason=\"ott_key_mismatch\"} 1",
        "pcrf_lbo_grants_total{node=\"pcrf-lbo-metrics.home.test\",source=\"af\",outcome=\"refused\",reason=\"destination_not_allowed\"} 1",
        "pcrf_lbo_grants_total{node=\"pcrf.visited.test\",source=\"visited\",outcome=\"accepted\",reason=\"ok\"}",
        "pcrf_lbo_grants_total{node=\"pcrf.visited.test\",source=\"visited\",outcome=\"refused\",reason=\"destination_not_allowed\"}",
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
    let v = visited_pcrf(host, addr, visited_policy()).await;
    let pcef = Pcef::connect_in(
        VPCRF,
        VISITED,
        PGW,
        v.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    assert_eq!(rc(&pcef.send(pcef.ccr_i(GX_SID, IMSI_1)).await), Some(2001));
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
    harness::assert_dissects_cleanly(&capture);
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
