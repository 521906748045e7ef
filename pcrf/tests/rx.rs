//! The PCRF's Rx server on loopback, in-process: a diameter-node PCEF on Gx and a
//! diameter-node AF on Rx. AF sessions bound to the IP-CAN session by UE address, their
//! PCC rules installed and removed over Gx, the AF told of rule failures and of the loss of
//! its IP-CAN session (document 002, steps 914–918).

mod common;

use common::*;
use diameter_codec::dict::{base, dcca};
use diameter_codec::dict::{gx, rx};
use diameter_codec::{AvpRef, Message, MessageBuilder};
use pcrf::rx::rule_name;

const UE: [u8; 4] = [10, 45, 0, 2];

/// A PCEF with a Gx session for the UE, and an AF.
async fn setup(reply: AfReply) -> (pcrf::Pcrf, Pcef, Af) {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let a = pcef.send(pcef.ccr_i("pcef.epc.test;gx", IMSI_1)).await;
    assert_eq!(rc(&a), Some(2001));
    let af = Af::connect("pcscf.ims.test", p.listen_addrs()[0], reply).await;
    (p, pcef, af)
}

fn text(a: &AvpRef<'_>) -> String {
    String::from_utf8_lossy(a.data).into_owned()
}

/// The Charging-Rule-Definitions of a Gx RAR.
fn definitions(m: &Message) -> Vec<AvpRef<'_>> {
    all(m.avps().flatten(), 1001)
        .iter()
        .flat_map(|cri| all(cri.children().flatten(), 1003))
        .collect()
}

/// (Flow-Description, Flow-Direction) of a Charging-Rule-Definition.
fn flows_of(def: &AvpRef<'_>) -> Vec<(String, u32)> {
    all(def.children().flatten(), 1058)
        .iter()
        .map(|f| {
            (
                text(&child(f, 507).unwrap()),
                u32_of(&child(f, 1080).unwrap()),
            )
        })
        .collect()
}

fn specific_actions(m: &Message) -> Vec<u32> {
    all(m.avps().flatten(), 513).iter().map(u32_of).collect()
}

#[tokio::test]
async fn an_aar_after_ccr_i_installs_the_derived_rule_over_gx() {
    let (p, pcef, af) = setup(AfReply::Success).await;
    let sid = "pcscf.ims.test;call-1";
    let a = af
        .send(af.aar(sid, UE, vec![audio_component(1)], &[4]))
        .await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    strictly_valid(&a);
    // TS 29.214 §5.6.2: Auth-Application-Id 16777236; the RAT-Type of the IP-CAN session.
    assert_eq!(
        u32_of(&a.find(diameter_codec::AvpKey::new(258, 0)).unwrap()),
        RX
    );
    assert_eq!(u32_of(&a.find(gx::RAT_TYPE.key()).unwrap()), 1004);

    // The Gx RAR the AAR caused, AVP by AVP.
    let rars = pcef.rars.lock().unwrap().clone();
    assert_eq!(rars.len(), 1);
    let rar = &rars[0];
    strictly_valid(rar);
    assert_eq!(rar.header().application_id, GX);
    assert_eq!(rar.session_id(), Some("pcef.epc.test;gx"));
    assert_eq!(
        rar.get(base::DESTINATION_HOST).and_then(Result::ok),
        Some("pcef.epc.test")
    );
    let defs = definitions(rar);
    assert_eq!(defs.len(), 1);
    let def = &defs[0];
    let name = rule_name(sid, 1);
    assert_eq!(text(&child(def, 1005).unwrap()), name);
    // Every Flow-Description, `permit out` on Gx, direction from the Rx `in`/`out`.
    assert_eq!(
        flows_of(def),
        vec![
            (
                "permit out 17 from 172.20.166.84 to 10.45.0.2 20001".to_string(),
                1
            ),
            (
                "permit out 17 from 10.45.0.2 to 172.20.166.84 20360".to_string(),
                2
            ),
            (
                "permit out 17 from 172.20.166.84 to 10.45.0.2 20002".to_string(),
                1
            ),
            (
                "permit out 17 from 10.45.0.2 to 172.20.166.84 20361".to_string(),
                2
            ),
        ]
    );
    assert_eq!(u32_of(&child(def, 511).unwrap()), 2, "Flow-Status ENABLED");
    // TS 29.213 §6.3: audio → QCI 1, MBR = 96 000 + RS + RR, GBR = MBR.
    let qos = child(def, 1016).expect("QoS-Information");
    assert_eq!(u32_of(&child(&qos, 1028).unwrap()), 1);
    assert_eq!(u32_of(&child(&qos, 516).unwrap()), 100_800);
    assert_eq!(u32_of(&child(&qos, 515).unwrap()), 100_800);
    assert_eq!(u32_of(&child(&qos, 1026).unwrap()), 100_800);
    assert_eq!(u32_of(&child(&qos, 1025).unwrap()), 100_800);
    let arp = child(&qos, 1034).unwrap();
    assert_eq!(u32_of(&child(&arp, 1046).unwrap()), 2);
    assert_eq!(u32_of(&child(def, 1010).unwrap()), 100, "Precedence");
    assert_eq!(text(&child(def, 505).unwrap()), "icid-1");
    let flows = child(def, 510).expect("Flows");
    assert_eq!(u32_of(&child(&flows, 518).unwrap()), 1);
    let numbers: Vec<u32> = all(flows.children().flatten(), 509)
        .iter()
        .map(u32_of)
        .collect();
    assert_eq!(numbers, [1, 2]);

    // Both sessions know the rule.
    let gxs = p.session("pcef.epc.test;gx").await.unwrap().unwrap();
    assert!(gxs.dynamic_rules.contains_key(&name));
    assert!(gxs.dynamic_rules.contains_key("internet"));
    let rxs = p.rx_session(sid).await.unwrap().unwrap();
    assert_eq!(rxs.gx_session.as_deref(), Some("pcef.epc.test;gx"));
    assert_eq!(rxs.rules.get(&name), Some(&1));
    assert_eq!(rxs.subscriber, format!("imsi:{IMSI_1}"));

    // The operator endpoint shows the AF session.
    let p = std::sync::Arc::new(p);
    let (addr, task) = pcrf::admin::serve(p.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let body = http(addr, "GET", "/rx-sessions").await;
    assert!(body.contains("pcscf.ims.test;call-1"), "{body}");
    let body = http(addr, "GET", "/rx-sessions/pcscf.ims.test%3Bcall-1").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(&format!("\"{name}\":1")), "{body}");
    assert!(
        body.contains("\"gx_session\":\"pcef.epc.test;gx\""),
        "{body}"
    );
    task.abort();
}

#[tokio::test]
async fn four_flow_descriptions_in_one_sub_component_are_all_installed() {
    let (_p, pcef, af) = setup(AfReply::Success).await;
    // As Kamailio's P-CSCF sends its SIP signalling flows (TS 29.214 allows two).
    let signalling = rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(0u32),
        sub_component(
            1,
            &[
                "permit out ip from 192.168.101.2 5060 to 10.45.0.2 5060",
                "permit in ip from 10.45.0.2 5060 to 192.168.101.2 5060",
                "permit out ip from 192.168.101.2 5061 to 10.45.0.2 5061",
                "permit in ip from 10.45.0.2 5061 to 192.168.101.2 5061",
            ],
            Some(2),
        ),
    ]);
    let sid = "pcscf.ims.test;reg";
    let a = af.send(af.aar(sid, UE, vec![signalling], &[])).await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    let rar = pcef.rars.lock().unwrap()[0].clone();
    let defs = definitions(&rar);
    let flows = flows_of(&defs[0]);
    assert_eq!(flows.len(), 4, "{flows:?}");
    assert_eq!(flows.iter().map(|f| f.1).collect::<Vec<_>>(), [1, 2, 1, 2]);
    assert!(flows[3].0.contains("5061 to 192.168.101.2 5061"));
    // AF signalling flows: QCI 5, non-GBR (no bandwidth asked, none set).
    let qos = child(&defs[0], 1016).unwrap();
    assert_eq!(u32_of(&child(&qos, 1028).unwrap()), 5);
    assert!(child(&qos, 1026).is_none());
}

#[tokio::test]
async fn an_aar_without_an_ip_can_session_is_refused_with_5065() {
    let (p, pcef, af) = setup(AfReply::Success).await;
    let a = af
        .send(af.aar(
            "pcscf.ims.test;nobody",
            [10, 45, 0, 99],
            vec![audio_component(1)],
            &[],
        ))
        .await;
    // TS 29.214 §4.4.1: session binding failed → Experimental-Result
    // IP-CAN_SESSION_NOT_AVAILABLE (5065), Vendor-Id 10415, no Result-Code.
    assert_eq!(rc(&a), None);
    assert_eq!(experimental(&a), Some(5065));
    strictly_valid(&a);
    assert!(pcef.rars.lock().unwrap().is_empty(), "nothing installed");
    assert!(
        p.rx_session("pcscf.ims.test;nobody")
            .await
            .unwrap()
            .is_none()
    );

    // TS 29.214 §5.3.8: only `permit`, no options → FILTER_RESTRICTIONS (5062), the
    // Flow-Description named inside its Media-Sub-Component in Failed-AVP.
    let bad = rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(1u32),
        sub_component(1, &["deny out 17 from any to 10.45.0.2 20001"], None),
    ]);
    let a = af
        .send(af.aar("pcscf.ims.test;bad", UE, vec![bad], &[]))
        .await;
    assert_eq!(experimental(&a), Some(5062));
    let failed = a.find(diameter_codec::AvpKey::new(279, 0)).unwrap();
    let mcd = child(&failed, 517).unwrap();
    let msc = child(&mcd, 519).unwrap();
    assert_eq!(
        text(&child(&msc, 507).unwrap()),
        "deny out 17 from any to 10.45.0.2 20001"
    );
    assert!(pcef.rars.lock().unwrap().is_empty());

    // An update of an AF session that does not exist: 5002.
    let mut b = af.aar("pcscf.ims.test;ghost", UE, vec![], &[]);
    b.push(rx::RX_REQUEST_TYPE.with(rx::RxRequestType(1)));
    assert_eq!(rc(&af.send(b).await), Some(5002));
}

#[tokio::test]
async fn a_modification_replaces_components_and_str_removes_the_rules() {
    let (p, pcef, af) = setup(AfReply::Success).await;
    let sid = "pcscf.ims.test;call-2";
    assert_eq!(
        rc(&af
            .send(af.aar(sid, UE, vec![audio_component(1)], &[]))
            .await),
        Some(2001)
    );
    // Add video (component 2), drop audio (Flow-Status REMOVED).
    let video = rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(2u32),
        sub_component(
            1,
            &[
                "permit out 17 from 172.20.166.84 to 10.45.0.2 30000",
                "permit in 17 from 10.45.0.2 to 172.20.166.84 30002",
            ],
            None,
        ),
        rx::MEDIA_TYPE.with(rx::MediaType::VIDEO),
        rx::MAX_REQUESTED_BANDWIDTH_UL.with(800_000u32),
        rx::MAX_REQUESTED_BANDWIDTH_DL.with(800_000u32),
        rx::MIN_REQUESTED_BANDWIDTH_UL.with(400_000u32),
        rx::MIN_REQUESTED_BANDWIDTH_DL.with(400_000u32),
    ]);
    let drop_audio = rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(1u32),
        rx::FLOW_STATUS.with(rx::FlowStatus::REMOVED),
    ]);
    let mut b = af.aar(sid, UE, vec![video, drop_audio], &[]);
    b.push(rx::RX_REQUEST_TYPE.with(rx::RxRequestType(1)));
    let a = af.send(b).await;
    assert_eq!(rc(&a), Some(2001));
    let rar = pcef.rars.lock().unwrap()[1].clone();
    assert_eq!(removed(&rar), vec![rule_name(sid, 1)]);
    let defs = definitions(&rar);
    assert_eq!(defs.len(), 1);
    assert_eq!(text(&child(&defs[0], 1005).unwrap()), rule_name(sid, 2));
    let qos = child(&defs[0], 1016).unwrap();
    assert_eq!(u32_of(&child(&qos, 1028).unwrap()), 2, "video: QCI 2");
    assert_eq!(u32_of(&child(&qos, 516).unwrap()), 800_000);
    assert_eq!(
        u32_of(&child(&qos, 1026).unwrap()),
        400_000,
        "GBR from Min-Requested"
    );
    let rxs = p.rx_session(sid).await.unwrap().unwrap();
    assert_eq!(rxs.rules.keys().collect::<Vec<_>>(), [&rule_name(sid, 2)]);

    // STR: the rule is removed from the PCEF before the STA.
    let sta = af.send(af.str_(sid)).await;
    assert_eq!(rc(&sta), Some(2001));
    strictly_valid(&sta);
    let rars = pcef.rars.lock().unwrap().clone();
    assert_eq!(rars.len(), 3);
    assert_eq!(removed(&rars[2]), vec![rule_name(sid, 2)]);
    assert!(definitions(&rars[2]).is_empty());
    let gxs = p.session("pcef.epc.test;gx").await.unwrap().unwrap();
    assert!(!gxs.dynamic_rules.keys().any(|n| n.starts_with("rx-")));
    assert!(p.rx_session(sid).await.unwrap().is_none());
    // Ended: unknown now.
    assert_eq!(rc(&af.send(af.str_(sid)).await), Some(5002));
}

#[tokio::test]
async fn the_loss_of_the_ip_can_session_reaches_the_af() {
    let (p, pcef, af) = setup(AfReply::Success).await;
    // One AF session without subscriptions, one subscribed to loss of bearer.
    let plain = "pcscf.ims.test;plain";
    let subscribed = "pcscf.ims.test;subscribed";
    assert_eq!(
        rc(&af
            .send(af.aar(plain, UE, vec![audio_component(1)], &[]))
            .await),
        Some(2001)
    );
    assert_eq!(
        rc(&af
            .send(af.aar(subscribed, UE, vec![audio_component(1)], &[2]))
            .await),
        Some(2001)
    );
    // The subscription asked the PCEF for LOSS_OF_BEARER (5) reports.
    let last = pcef.rars.lock().unwrap().last().cloned().unwrap();
    let triggers: Vec<u32> = all(last.avps().flatten(), 1006)
        .iter()
        .map(u32_of)
        .collect();
    assert!(triggers.contains(&5), "{triggers:?}");

    // CCR-T: the IP-CAN session ends (document 002 steps 914–918).
    let t = pcef.send(pcef.ccr("pcef.epc.test;gx", 3, 1, None)).await;
    assert_eq!(rc(&t), Some(2001));
    af.nth_request(2).await;
    let got = af.requests.lock().unwrap().clone();
    let asr = got.iter().find(|m| m.session_id() == Some(plain)).unwrap();
    let rar = got
        .iter()
        .find(|m| m.session_id() == Some(subscribed))
        .unwrap();
    // TS 29.214 §5.6.7: ASR with Abort-Cause BEARER_RELEASED, to the AF's host.
    assert_eq!(asr.header().command_code, 274);
    strictly_valid(asr);
    assert_eq!(u32_of(&asr.find(rx::ABORT_CAUSE.key()).unwrap()), 0);
    assert_eq!(
        asr.get(base::DESTINATION_HOST).and_then(Result::ok),
        Some("pcscf.ims.test")
    );
    // The subscribed one: RAR with INDICATION_OF_LOSS_OF_BEARER and every flow.
    assert_eq!(rar.header().command_code, 258);
    strictly_valid(rar);
    assert_eq!(specific_actions(rar), [2]);
    assert_eq!(u32_of(&rar.find(rx::ABORT_CAUSE.key()).unwrap()), 0);
    let flows = rar.find(rx::FLOWS.key()).unwrap();
    assert_eq!(u32_of(&child(&flows, 518).unwrap()), 1);
    // Unbound; the AF ends both with STR, and nothing more goes to the PCEF.
    let n = pcef.rars.lock().unwrap().len();
    for sid in [plain, subscribed] {
        let s = p.rx_session(sid).await.unwrap().unwrap();
        assert!(s.gx_session.is_none() && s.rules.is_empty());
        assert_eq!(rc(&af.send(af.str_(sid)).await), Some(2001));
    }
    assert_eq!(pcef.rars.lock().unwrap().len(), n);
    assert_eq!(p.rx_sessions().count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_restarted_pcef_and_a_forgetful_af_end_the_af_sessions() {
    let (p, pcef, _) = setup(AfReply::Success).await;
    let af = Af::connect(
        "forgetful.ims.test",
        p.listen_addrs()[0],
        AfReply::UnknownSession,
    )
    .await;
    let sid = "forgetful.ims.test;1";
    assert_eq!(
        rc(&af
            .send(af.aar(sid, UE, vec![audio_component(1)], &[]))
            .await),
        Some(2001)
    );
    // RFC 6733 §8.16: the PCEF's CCRs now carry a new Origin-State-Id; its older IP-CAN
    // sessions are gone, and so is the AF's binding.
    let mut b = pcef.ccr_i("pcef.epc.test;after-restart", IMSI_1);
    b.push(base::ORIGIN_STATE_ID.with(1u32));
    assert_eq!(rc(&pcef.send(b).await), Some(2001));
    let mut b = pcef.ccr_i("pcef.epc.test;after-restart-2", IMSI_1);
    b.push(base::ORIGIN_STATE_ID.with(2u32));
    assert_eq!(rc(&pcef.send(b).await), Some(2001));
    let asr = af.nth_request(1).await;
    assert_eq!(asr.header().command_code, 274);
    assert_eq!(asr.session_id(), Some(sid));
    // The AF answered 5002: the PCRF forgets the AF session too.
    let rx = p.rx_sessions().clone();
    let end = std::time::Instant::now() + T;
    while rx.count().await.unwrap() != 0 {
        assert!(std::time::Instant::now() < end, "the AF session stayed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_rule_failure_reaches_the_af_as_subscribed() {
    let (p, pcef, af) = setup(AfReply::Success).await;
    let sid = "pcscf.ims.test;fails";
    // Subscribed to release of bearer and failed resource allocation.
    assert_eq!(
        rc(&af
            .send(af.aar(sid, UE, vec![audio_component(1)], &[4, 9]))
            .await),
        Some(2001)
    );
    // The PCEF reports the rule INACTIVE: RESOURCE_ALLOCATION_FAILURE (10).
    let mut u = pcef.ccr("pcef.epc.test;gx", 2, 1, None);
    u.push(gx::CHARGING_RULE_REPORT.with(vec![
        gx::CHARGING_RULE_NAME.with(bytes::Bytes::from(rule_name(sid, 1))),
        gx::PCC_RULE_STATUS.with(gx::PccRuleStatus(1)),
        gx::RULE_FAILURE_CODE.with(gx::RuleFailureCode(10)),
    ]));
    assert_eq!(rc(&pcef.send(u).await), Some(2001));
    let rar = af.nth_request(1).await;
    strictly_valid(&rar);
    assert_eq!(rar.header().command_code, 258);
    assert_eq!(rar.session_id(), Some(sid));
    // TS 29.214 §5.3.13: INDICATION_OF_FAILED_RESOURCES_ALLOCATION (9) and
    // INDICATION_OF_RELEASE_OF_BEARER (4), with the media component's flows.
    assert_eq!(specific_actions(&rar), [9, 4]);
    let flows = rar.find(rx::FLOWS.key()).unwrap();
    assert_eq!(u32_of(&child(&flows, 518).unwrap()), 1);
    assert!(rar.find(rx::ABORT_CAUSE.key()).is_none());
    let rxs = p.rx_session(sid).await.unwrap().unwrap();
    eventually_rules_empty(&p, sid).await;
    assert_eq!(rxs.gx_session.as_deref(), Some("pcef.epc.test;gx"));

    // A report of a rule that is not the AF's, or not subscribed: nothing more.
    let mut u = pcef.ccr("pcef.epc.test;gx", 2, 2, None);
    u.push(gx::CHARGING_RULE_REPORT.with(vec![
        gx::CHARGING_RULE_NAME.with(bytes::Bytes::from_static(b"internet")),
        gx::PCC_RULE_STATUS.with(gx::PccRuleStatus(1)),
        gx::RULE_FAILURE_CODE.with(gx::RuleFailureCode(10)),
    ]));
    assert_eq!(rc(&pcef.send(u).await), Some(2001));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(af.requests.lock().unwrap().len(), 1);
}

async fn eventually_rules_empty(p: &pcrf::Pcrf, sid: &str) {
    let end = std::time::Instant::now() + T;
    loop {
        let s = p.rx_session(sid).await.unwrap().unwrap();
        if s.rules.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "the failed rule is still the AF's"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_asr_only_configuration_sends_asr_to_subscribed_afs_too() {
    let mut cfg = pcrf::Config::demo();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.rx.ip_can_loss = pcrf::config::IpCanLoss::Asr;
    let p = pcrf::Pcrf::start(&cfg).await.unwrap();
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    assert_eq!(
        rc(&pcef.send(pcef.ccr_i("pcef.epc.test;gx", IMSI_1)).await),
        Some(2001)
    );
    let af = Af::connect("pcscf.ims.test", p.listen_addrs()[0], AfReply::Success).await;
    let sid = "pcscf.ims.test;asr";
    assert_eq!(
        rc(&af
            .send(af.aar(sid, UE, vec![audio_component(1)], &[2, 4]))
            .await),
        Some(2001)
    );
    assert_eq!(
        rc(&pcef.send(pcef.ccr("pcef.epc.test;gx", 3, 1, None)).await),
        Some(2001)
    );
    let asr = af.nth_request(1).await;
    assert_eq!(asr.header().command_code, 274);
}

#[tokio::test]
async fn rules_the_pcef_could_not_install_are_reported_to_the_af() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::FailRules,
    )
    .await;
    assert_eq!(
        rc(&pcef.send(pcef.ccr_i("pcef.epc.test;gx", IMSI_1)).await),
        Some(2001)
    );
    let af = Af::connect("pcscf.ims.test", p.listen_addrs()[0], AfReply::Success).await;
    let sid = "pcscf.ims.test;no-resources";
    // The RAA reports the rule INACTIVE: the AAA still says 2001 (the service information
    // was accepted), and the AF, subscribed to failed allocation, hears of it.
    let a = af
        .send(af.aar(sid, UE, vec![audio_component(1)], &[9]))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let rar = af.nth_request(1).await;
    strictly_valid(&rar);
    assert_eq!(specific_actions(&rar), [9]);
    assert_eq!(
        u32_of(&child(&rar.find(rx::FLOWS.key()).unwrap(), 518).unwrap()),
        1
    );
    eventually_rules_empty(&p, sid).await;
    let gxs = p.session("pcef.epc.test;gx").await.unwrap().unwrap();
    assert!(!gxs.dynamic_rules.contains_key(&rule_name(sid, 1)));
    assert_eq!(gxs.failures.last().unwrap().failure_code, Some(10));
}

#[tokio::test]
async fn an_ip_can_change_reaches_the_subscribed_af_with_the_new_rat() {
    let (_p, pcef, af) = setup(AfReply::Success).await;
    let sid = "pcscf.ims.test;handover";
    assert_eq!(
        rc(&af
            .send(af.aar(sid, UE, vec![audio_component(1)], &[6]))
            .await),
        Some(2001)
    );
    // The subscription asked the PCEF for RAT_CHANGE and IP-CAN_CHANGE reports.
    let rar = pcef.rars.lock().unwrap()[0].clone();
    let triggers: Vec<u32> = all(rar.avps().flatten(), 1006).iter().map(u32_of).collect();
    assert!(
        triggers.contains(&2) && triggers.contains(&7),
        "{triggers:?}"
    );
    let mut u = pcef.ccr("pcef.epc.test;gx", 2, 1, None);
    u.push(event(2));
    u.push(gx::RAT_TYPE.with(gx::RatType(1000)));
    assert_eq!(rc(&pcef.send(u).await), Some(2001));
    let note = af.nth_request(1).await;
    strictly_valid(&note);
    // TS 29.214 §4.4.6.4: Specific-Action IP-CAN_CHANGE with the RAT now in use.
    assert_eq!(specific_actions(&note), [6]);
    assert_eq!(u32_of(&note.find(gx::RAT_TYPE.key()).unwrap()), 1000);
}

#[tokio::test]
async fn a_restarted_af_loses_its_sessions_and_their_rules() {
    let (p, pcef, _) = setup(AfReply::Success).await;
    let addr = p.listen_addrs()[0];
    let af = Af::connect_with_state("pcscf-a.ims.test", addr, AfReply::Success, Some(100)).await;
    let sid = "pcscf-a.ims.test;1";
    assert_eq!(
        rc(&af
            .send(af.aar(sid, UE, vec![audio_component(1)], &[]))
            .await),
        Some(2001)
    );
    af.node.shutdown(std::time::Duration::from_secs(1)).await;
    drop(af);
    // RFC 6733 §8.16: back with a higher Origin-State-Id.
    let _af = Af::connect_with_state("pcscf-a.ims.test", addr, AfReply::Success, Some(101)).await;
    let rars = pcef.rars.clone();
    eventually("the restarted AF's rule removed", || {
        rars.lock()
            .unwrap()
            .get(1)
            .is_some_and(|r| removed(r) == vec![rule_name(sid, 1)])
    })
    .await;
    assert!(p.rx_session(sid).await.unwrap().is_none());
}

#[tokio::test]
async fn charging_correlation_goes_to_the_af_in_the_aaa_and_later_by_rar() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let charging = |v: &'static [u8]| {
        gx::ACCESS_NETWORK_CHARGING_IDENTIFIER_GX.with(vec![
            rx::ACCESS_NETWORK_CHARGING_IDENTIFIER_VALUE.with(bytes::Bytes::from_static(v)),
        ])
    };
    let mut i = pcef.ccr_i("pcef.epc.test;gx", IMSI_1);
    i.push(charging(b"gx-charging-1"));
    i.push(rx::ACCESS_NETWORK_CHARGING_ADDRESS.with(std::net::IpAddr::from([192, 0, 2, 10])));
    assert_eq!(rc(&pcef.send(i).await), Some(2001));
    let af = Af::connect("pcscf.ims.test", p.listen_addrs()[0], AfReply::Success).await;
    let sid = "pcscf.ims.test;charging";
    let a = af
        .send(af.aar(sid, UE, vec![audio_component(1)], &[1]))
        .await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    // TS 29.214 §4.4.1: the access network charging identifier and address in the AAA.
    let anci = a
        .find(rx::ACCESS_NETWORK_CHARGING_IDENTIFIER.key())
        .unwrap();
    assert_eq!(text(&child(&anci, 503).unwrap()), "gx-charging-1");
    assert_eq!(
        a.find(rx::ACCESS_NETWORK_CHARGING_ADDRESS.key())
            .unwrap()
            .data,
        [0, 1, 192, 0, 2, 10]
    );
    // The PCEF was asked for CHARGING_CORRELATION_EXCHANGE (28) reports.
    let rar = pcef.rars.lock().unwrap()[0].clone();
    let triggers: Vec<u32> = all(rar.avps().flatten(), 1006).iter().map(u32_of).collect();
    assert!(triggers.contains(&28), "{triggers:?}");
    // A new identifier reported by CCR-U: RAR CHARGING_CORRELATION_EXCHANGE to the AF.
    let mut u = pcef.ccr("pcef.epc.test;gx", 2, 1, None);
    u.push(event(28));
    u.push(charging(b"gx-charging-2"));
    assert_eq!(rc(&pcef.send(u).await), Some(2001));
    let note = af.nth_request(1).await;
    strictly_valid(&note);
    assert_eq!(specific_actions(&note), [1]);
    let anci = note
        .find(rx::ACCESS_NETWORK_CHARGING_IDENTIFIER.key())
        .unwrap();
    assert_eq!(text(&child(&anci, 503).unwrap()), "gx-charging-2");
}

#[tokio::test]
async fn binding_follows_ipv6_prefixes_and_apns_and_tolerates_other_identities() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    // An IPv6 IP-CAN session: Framed-IPv6-Prefix 2001:db8:0:7::/64 (RFC 3162 §2.3).
    let mut i = pcef.ccr("pcef.epc.test;v6", 1, 0, Some(IMSI_1));
    i.push(
        diameter_codec::dict::nasreq::FRAMED_IPV6_PREFIX.with(bytes::Bytes::from_static(&[
            0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7,
        ])),
    );
    i.push(diameter_codec::dict::nasreq::CALLED_STATION_ID.with("ims"));
    assert_eq!(rc(&pcef.send(i).await), Some(2001));
    let af = Af::connect("pcscf.ims.test", p.listen_addrs()[0], AfReply::Success).await;
    // The AF names the UE's full address (a /128 in the same /64).
    let v6_aar = |sid: &str| {
        let mut b = MessageBuilder::request(265, RX, true);
        b.push(base::SESSION_ID.with(sid.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(RX));
        b.push(base::ORIGIN_HOST.with("pcscf.ims.test"));
        b.push(base::ORIGIN_REALM.with("ims.test"));
        b.push(base::DESTINATION_REALM.with(HOME));
        b.push(
            diameter_codec::dict::nasreq::FRAMED_IPV6_PREFIX.with(bytes::Bytes::from_static(&[
                0, 128, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0x42,
            ])),
        );
        b
    };
    let a = af.send(v6_aar("pcscf.ims.test;v6")).await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    let s = p.rx_session("pcscf.ims.test;v6").await.unwrap().unwrap();
    assert_eq!(s.gx_session.as_deref(), Some("pcef.epc.test;v6"));
    // Another APN than the IP-CAN session's: not bound (TS 29.213 §4.2).
    let mut b = v6_aar("pcscf.ims.test;apn");
    b.push(diameter_codec::dict::nasreq::CALLED_STATION_ID.with("internet"));
    assert_eq!(experimental(&af.send(b).await), Some(5065));
    // Another subscriber's IMSI (Open5GS's P-CSCF sends a placeholder one): bound by the
    // address all the same (TS 29.213 §8.2), the deviation logged and counted.
    let mut b = v6_aar("pcscf.ims.test;imsi");
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(IMSI_3.to_string()),
    ]));
    assert_eq!(rc(&af.send(b).await), Some(2001));
    let s = p.rx_session("pcscf.ims.test;imsi").await.unwrap().unwrap();
    assert_eq!(s.gx_session.as_deref(), Some("pcef.epc.test;v6"));
    // Its own IMSI and a SIP URI (as Kamailio sends, not compared): bound.
    let mut b = v6_aar("pcscf.ims.test;own");
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_SIP_URI),
        dcca::SUBSCRIPTION_ID_DATA.with("sip:001010000000001@ims.test".to_string()),
    ]));
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(IMSI_1.to_string()),
    ]));
    assert_eq!(rc(&af.send(b).await), Some(2001));
}

#[tokio::test]
async fn incomplete_media_components_get_5005_naming_what_is_missing() {
    let (p, pcef, af) = setup(AfReply::Success).await;
    // Media-Component-Description without Media-Component-Number (TS 29.214 §5.3.16 makes
    // it fixed): the node lets the deviation through, the PCRF cannot do without it.
    let no_number = rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![sub_component(
        1,
        &["permit out 17 from any to 10.45.0.2 4000"],
        None,
    )]);
    let a = af
        .send(af.aar("pcscf.ims.test;no-number", UE, vec![no_number], &[]))
        .await;
    assert_eq!(rc(&a), Some(5005));
    let failed = a.find(diameter_codec::AvpKey::new(279, 0)).unwrap();
    let mcd = child(&failed, 517).expect("the Media-Component-Description");
    assert!(
        child(&mcd, 518).is_some(),
        "with the missing AVP named in it"
    );
    // A Media-Sub-Component without Flow-Number.
    let no_flow = rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(3u32),
        rx::MEDIA_SUB_COMPONENT.with(vec![
            rx::FLOW_DESCRIPTION.with("permit out 17 from any to 10.45.0.2 4000".to_string()),
        ]),
    ]);
    let a = af
        .send(af.aar("pcscf.ims.test;no-flow", UE, vec![no_flow], &[]))
        .await;
    assert_eq!(rc(&a), Some(5005));
    let e = a
        .get(base::ERROR_MESSAGE)
        .and_then(Result::ok)
        .unwrap_or_default();
    assert!(e.contains("Flow-Number"), "{e}");
    assert!(pcef.rars.lock().unwrap().is_empty());
    assert_eq!(p.rx_sessions().count().await.unwrap(), 0);
}
