//! The home PCRF over Gx on loopback, in-process, with diameter-node as the PCEF: the
//! session life cycle, unknown sessions and subscribers, event-driven policy changes, rule
//! failure reports, RAR pushes, and a restarted PCEF's sessions.

mod common;

use common::*;
use diameter_codec::dict::gx;
use pcrf::PolicyChange;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_session_lives_through_initial_update_and_termination() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let sid = "pcef.epc.test;1;life";
    let a = pcef.send(pcef.ccr_i(sid, IMSI_1)).await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    // RFC 4006 §3.2 CCA grammar: Auth-Application-Id, CC-Request-Type, CC-Request-Number.
    assert_eq!(
        u32_of(&a.find(diameter_codec::AvpKey::new(258, 0)).unwrap()),
        GX
    );
    assert_eq!(
        u32_of(&a.find(diameter_codec::AvpKey::new(416, 0)).unwrap()),
        1
    );
    assert_eq!(
        u32_of(&a.find(diameter_codec::AvpKey::new(415, 0)).unwrap()),
        0
    );
    // The dynamic rule with its flows, QoS, precedence and rating group, and the predefined
    // rule, in Charging-Rule-Install.
    assert_eq!(installed(&a), vec![("internet".to_string(), Some(10))]);
    let cri = a.find(gx::CHARGING_RULE_INSTALL.key()).unwrap();
    let def = child(&cri, 1003).unwrap();
    let flow = child(&def, 1058).expect("Flow-Information");
    assert_eq!(
        child(&flow, 507).unwrap().data,
        b"permit out ip from any to any"
    );
    assert_eq!(u32_of(&child(&flow, 1080).unwrap()), 3);
    let qos = child(&def, 1016).expect("rule QoS-Information");
    assert_eq!(u32_of(&child(&qos, 1028).unwrap()), 9);
    assert_eq!(u32_of(&child(&qos, 515).unwrap()), 100_000_000);
    assert_eq!(u32_of(&child(&def, 1010).unwrap()), 1000);
    assert_eq!(
        u32_of(&child(&def, 1007).unwrap()),
        1,
        "Metering-Method VOLUME"
    );
    assert_eq!(child(&cri, 1005).unwrap().data, b"local-dns");
    // Session QoS: APN-AMBR and Default-EPS-Bearer-QoS.
    let ambr = all(a.avps().flatten(), 1016);
    assert_eq!(ambr.len(), 1);
    assert_eq!(u32_of(&child(&ambr[0], 1041).unwrap()), 50_000_000);
    assert_eq!(u32_of(&child(&ambr[0], 1040).unwrap()), 100_000_000);
    let deb = a.find(gx::DEFAULT_EPS_BEARER_QOS.key()).unwrap();
    assert_eq!(u32_of(&child(&deb, 1028).unwrap()), 9);
    assert_eq!(
        u32_of(&child(&child(&deb, 1034).unwrap(), 1046).unwrap()),
        8
    );
    // Online charging, with the OCS named in Charging-Information.
    assert_eq!(u32_of(&a.find(gx::ONLINE.key()).unwrap()), 1);
    assert_eq!(u32_of(&a.find(gx::OFFLINE.key()).unwrap()), 0);
    let ci = a.find(diameter_codec::AvpKey::new(618, 10_415)).unwrap();
    let ocs = String::from_utf8_lossy(child(&ci, 619).unwrap().data).into_owned();
    assert!(ocs.contains("ocs.home.test"), "{ocs}");
    // Event triggers: the profile's and the policies'.
    let triggers: Vec<u32> = all(a.avps().flatten(), 1006).iter().map(u32_of).collect();
    assert_eq!(triggers, vec![2, 13]);
    // TS 29.212 §5.4.1: the features both support (ours 0b1011, theirs 0b0110), with the
    // Vendor-Id the request lacked.
    let sf = a.find(diameter_codec::AvpKey::new(628, 10_415)).unwrap();
    assert_eq!(u32_of(&child(&sf, 266).unwrap()), 10_415);
    assert_eq!(u32_of(&child(&sf, 629).unwrap()), 1);
    assert_eq!(u32_of(&child(&sf, 630).unwrap()), 0b0010);

    let s = p.session(sid).await.unwrap().expect("session kept");
    assert_eq!(s.subscriber, format!("imsi:{IMSI_1}"));
    assert_eq!(s.ue_ip, Some("10.45.0.2".parse().unwrap()));
    assert_eq!(s.apn.as_deref(), Some("internet"));
    assert_eq!(s.pcef_host, "pcef.epc.test");
    assert!(s.dynamic_rules.contains_key("internet"));
    assert!(s.predefined_rules.contains("local-dns"));

    // An update without events changes nothing.
    let u = pcef.send(pcef.ccr(sid, 2, 1, None)).await;
    assert_eq!(rc(&u), Some(2001));
    assert!(installed(&u).is_empty() && removed(&u).is_empty());
    assert_eq!(
        p.session(sid).await.unwrap().unwrap().last_request_number,
        1
    );

    let t = pcef.send(pcef.ccr(sid, 3, 2, None)).await;
    assert_eq!(rc(&t), Some(2001));
    assert_eq!(
        u32_of(&t.find(diameter_codec::AvpKey::new(416, 0)).unwrap()),
        3
    );
    assert!(p.session(sid).await.unwrap().is_none());
    // After the end, the session is unknown.
    let late = pcef.send(pcef.ccr(sid, 2, 3, None)).await;
    assert_eq!(rc(&late), Some(5002));
}

#[tokio::test]
async fn unknown_sessions_get_5002_and_unknown_subscribers_5030() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    for kind in [2, 3] {
        let a = pcef
            .send(pcef.ccr("pcef.epc.test;never", kind, 1, None))
            .await;
        assert_eq!(rc(&a), Some(5002), "CC-Request-Type {kind}");
    }
    // TS 29.212 §5.5.3 as the brief reads it: Experimental-Result 5030 with Vendor-Id 10415.
    let a = pcef
        .send(pcef.ccr_i("pcef.epc.test;stranger", "999990000000001"))
        .await;
    assert_eq!(rc(&a), None, "no Result-Code beside Experimental-Result");
    strictly_valid(&a);
    let er = a
        .find(diameter_codec::AvpKey::new(297, 0))
        .expect("Experimental-Result");
    assert_eq!(u32_of(&child(&er, 266).unwrap()), 10_415);
    assert_eq!(u32_of(&child(&er, 298).unwrap()), 5030);
    assert!(installed(&a).is_empty());
    assert_eq!(
        u32_of(&a.find(diameter_codec::AvpKey::new(416, 0)).unwrap()),
        1
    );
    assert!(p.session("pcef.epc.test;stranger").await.unwrap().is_none());
    // No identity at all: the same answer.
    let mut b = pcef.ccr("pcef.epc.test;anon", 1, 0, None);
    b.push(gx::RAT_TYPE.with(gx::RatType(1004)));
    let a = pcef.send(b).await;
    let er = a
        .find(diameter_codec::AvpKey::new(297, 0))
        .expect("Experimental-Result");
    assert_eq!(u32_of(&child(&er, 298).unwrap()), 5030);
}

#[tokio::test]
async fn reported_events_install_the_configured_rules_and_rating_groups() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let sid = "pcef.epc.test;events";
    assert_eq!(rc(&pcef.send(pcef.ccr_i(sid, IMSI_1)).await), Some(2001));

    // Handover to UTRAN: the 3G rule set on rating group 30 replaces the Internet rule.
    let mut u = pcef.ccr(sid, 2, 1, None);
    u.push(event(2));
    u.push(gx::RAT_TYPE.with(gx::RatType(1000)));
    let a = pcef.send(u).await;
    assert_eq!(rc(&a), Some(2001));
    assert_eq!(removed(&a), vec!["internet".to_string()]);
    assert_eq!(installed(&a), vec![("internet-3g".to_string(), Some(30))]);
    let s = p.session(sid).await.unwrap().unwrap();
    assert_eq!(s.rat_type, Some(1000));
    assert!(
        s.dynamic_rules.contains_key("internet-3g") && !s.dynamic_rules.contains_key("internet")
    );

    // And back.
    let mut u = pcef.ccr(sid, 2, 2, None);
    u.push(event(2));
    u.push(gx::RAT_TYPE.with(gx::RatType(1004)));
    let a = pcef.send(u).await;
    assert_eq!(removed(&a), vec!["internet-3g".to_string()]);
    assert_eq!(installed(&a), vec![("internet".to_string(), Some(10))]);

    // A location change re-rates subscriber 3's rules (and only theirs).
    let mut u = pcef.ccr(sid, 2, 3, None);
    u.push(event(13));
    let a = pcef.send(u).await;
    assert!(
        installed(&a).is_empty(),
        "subscriber 1 has no location policy"
    );
    let sid3 = "pcef.epc.test;events3";
    let a = pcef.send(pcef.ccr_i(sid3, IMSI_3)).await;
    assert_eq!(rc(&a), Some(2001));
    let mut u = pcef.ccr(sid3, 2, 1, None);
    u.push(event(13));
    u.push(
        diameter_codec::dict::gi::TGPP_USER_LOCATION_INFO.with(bytes::Bytes::from_static(&[
            130, 0x00, 0xf1, 0x10, 0x00, 0x01, 0x00, 0xf1, 0x10, 0x00, 0x00, 0x00, 0x01,
        ])),
    );
    let a = pcef.send(u).await;
    let mut got = installed(&a);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("internet".to_string(), Some(40)),
            ("video".to_string(), Some(40))
        ]
    );
    let s3 = p.session(sid3).await.unwrap().unwrap();
    assert!(
        s3.dynamic_rules
            .values()
            .all(|r| r.rating_group == Some(40))
    );
    assert!(s3.user_location.as_deref().unwrap().starts_with("82"));
}

#[tokio::test]
async fn rule_failures_reported_by_the_pcef_are_recorded() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let sid = "pcef.epc.test;failure";
    assert_eq!(rc(&pcef.send(pcef.ccr_i(sid, IMSI_1)).await), Some(2001));
    let mut u = pcef.ccr(sid, 2, 1, None);
    u.push(gx::CHARGING_RULE_REPORT.with(vec![
        gx::CHARGING_RULE_NAME.with(bytes::Bytes::from_static(b"internet")),
        gx::PCC_RULE_STATUS.with(gx::PccRuleStatus(1)),
        gx::RULE_FAILURE_CODE.with(gx::RuleFailureCode(4)),
    ]));
    assert_eq!(rc(&pcef.send(u).await), Some(2001));
    let s = p.session(sid).await.unwrap().unwrap();
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.failures[0].name, "internet");
    assert_eq!(s.failures[0].failure_code, Some(4));
    assert!(
        !s.dynamic_rules.contains_key("internet"),
        "an INACTIVE rule is not installed"
    );
    assert!(s.predefined_rules.contains("local-dns"));
}

#[tokio::test]
async fn a_pushed_policy_reaches_the_pcef_on_its_connection() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let sid = "pcef.epc.test;push";
    assert_eq!(rc(&pcef.send(pcef.ccr_i(sid, IMSI_1)).await), Some(2001));
    let out = p
        .push(
            sid,
            &PolicyChange {
                install: vec!["video".into()],
                remove: vec!["local-dns".into()],
                rating_group: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.result_code, 2001);
    assert_eq!((out.installed, out.removed), (1, 1));
    let rar = pcef.rars.lock().unwrap()[0].clone();
    assert_eq!(rar.header().command_code, 258);
    strictly_valid(&rar);
    assert_eq!(rar.session_id(), Some(sid));
    assert_eq!(
        rar.get(diameter_codec::dict::base::DESTINATION_HOST)
            .and_then(Result::ok),
        Some("pcef.epc.test")
    );
    assert_eq!(installed(&rar), vec![("video".to_string(), Some(20))]);
    assert_eq!(removed(&rar), vec!["local-dns".to_string()]);
    let s = p.session(sid).await.unwrap().unwrap();
    assert!(s.dynamic_rules.contains_key("video") && !s.predefined_rules.contains("local-dns"));
    // A rule the SPR does not define is refused before anything is sent.
    let e = p.push(sid, &install("nope")).await.unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert_eq!(pcef.rars.lock().unwrap().len(), 1);
    // The operator endpoint: the same push by subscriber, over HTTP.
    let p = std::sync::Arc::new(p);
    let (addr, task) = pcrf::admin::serve(p.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let body = http(
        addr,
        "POST",
        &format!("/subscribers/{IMSI_1}/rar?rating_group=21"),
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"result_code\":2001"), "{body}");
    let body = http(addr, "GET", "/sessions/pcef.epc.test%3Bpush").await;
    assert!(body.contains("\"rating_group\":21"), "{body}");
    let body = http(addr, "POST", "/sessions/none/rar?install=video").await;
    assert!(body.starts_with("HTTP/1.1 404"), "{body}");
    task.abort();
}

#[tokio::test]
async fn a_session_the_pcef_forgot_is_forgotten_and_release_asks_for_ccr_t() {
    let p = pcrf().await;
    let forgetful = Pcef::connect(
        "gone.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::UnknownSession,
    )
    .await;
    let sid = "gone.epc.test;1";
    assert_eq!(
        rc(&forgetful.send(forgetful.ccr_i(sid, IMSI_1)).await),
        Some(2001)
    );
    let out = p
        .push(
            sid,
            &PolicyChange {
                rating_group: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.result_code, 5002);
    assert!(p.session(sid).await.unwrap().is_none());

    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let sid = "pcef.epc.test;release";
    assert_eq!(rc(&pcef.send(pcef.ccr_i(sid, IMSI_1)).await), Some(2001));
    assert_eq!(p.release(sid, 1).await.unwrap(), 2001);
    let rar = pcef.rars.lock().unwrap()[0].clone();
    // TS 29.212 §5.3.44 Session-Release-Cause UE_SUBSCRIPTION_REASON (1).
    assert_eq!(
        u32_of(&rar.find(gx::SESSION_RELEASE_CAUSE.key()).unwrap()),
        1
    );
    // The session stays until the PCEF's CCR-T.
    assert!(p.session(sid).await.unwrap().is_some());
    assert_eq!(rc(&pcef.send(pcef.ccr(sid, 3, 1, None)).await), Some(2001));
    assert!(p.session(sid).await.unwrap().is_none());
}

#[tokio::test]
async fn a_restarted_pcef_loses_its_sessions_and_only_its_own() {
    let p = pcrf().await;
    let addr = p.listen_addrs()[0];
    let a = Pcef::connect("pcef-a.epc.test", addr, Some(100), RarReply::Success).await;
    let b = Pcef::connect("pcef-b.epc.test", addr, Some(100), RarReply::Success).await;
    for (pcef, sid) in [(&a, "a;1"), (&a, "a;2"), (&b, "b;1")] {
        assert_eq!(rc(&pcef.send(pcef.ccr_i(sid, IMSI_1)).await), Some(2001));
    }
    assert_eq!(p.sessions().count().await.unwrap(), 3);
    a.node.shutdown(Duration::from_secs(1)).await;
    drop(a);
    // RFC 6733 §8.16: back with a higher Origin-State-Id.
    let _a2 = Pcef::connect("pcef-a.epc.test", addr, Some(101), RarReply::Success).await;
    let end = Instant::now() + T;
    while p.sessions().count().await.unwrap() != 1 {
        assert!(Instant::now() < end, "the restarted PCEF's sessions stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(p.session("b;1").await.unwrap().is_some());
    assert!(p.session("a;1").await.unwrap().is_none());
}

/// The message satisfies its command's grammar at every depth (TS 29.212 §5.6).
fn strictly_valid(m: &diameter_codec::Message) {
    use diameter_codec::{Dictionary, ValidateOptions, Validator};
    let v = Validator::new(Dictionary::embedded(), ValidateOptions::strict()).check(m);
    let found: Vec<String> = v.findings().map(ToString::to_string).collect();
    assert!(found.is_empty(), "{found:?}");
}

/// A PCEF behind an agent restarts without a peer event: the Origin-State-Id in its CCRs
/// (RFC 6733 §8.16) tells. Its older sessions go before the new CCR is handled.
#[tokio::test]
async fn a_new_origin_state_id_in_a_ccr_ends_the_older_sessions_of_its_pcef() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::Success,
    )
    .await;
    let with_osi = |sid: &str, osi: u32| {
        let mut b = pcef.ccr_i(sid, IMSI_1);
        b.push(diameter_codec::dict::base::ORIGIN_STATE_ID.with(osi));
        b
    };
    assert_eq!(rc(&pcef.send(with_osi("old;1", 7)).await), Some(2001));
    assert_eq!(rc(&pcef.send(with_osi("old;2", 7)).await), Some(2001));
    assert_eq!(p.sessions().count().await.unwrap(), 2);
    assert_eq!(rc(&pcef.send(with_osi("new;1", 8)).await), Some(2001));
    assert!(p.session("old;1").await.unwrap().is_none());
    assert!(p.session("old;2").await.unwrap().is_none());
    assert!(p.session("new;1").await.unwrap().is_some());
    // The old session's CCR-U: unknown now.
    assert_eq!(
        rc(&pcef.send(pcef.ccr("old;1", 2, 1, None)).await),
        Some(5002)
    );
}

/// While a pushed RAR is out, the PCEF reports a handover in a CCR-U: the push is recorded
/// on top of the handover's rules, neither change lost.
#[tokio::test]
async fn a_push_and_an_update_that_cross_keep_both_changes() {
    let p = pcrf().await;
    let pcef = Pcef::connect(
        "pcef.epc.test",
        p.listen_addrs()[0],
        None,
        RarReply::RatChangeFirst,
    )
    .await;
    let sid = "pcef.epc.test;cross";
    assert_eq!(rc(&pcef.send(pcef.ccr_i(sid, IMSI_1)).await), Some(2001));
    let out = p.push(sid, &install("video")).await.unwrap();
    assert_eq!(out.result_code, 2001);
    let s = p.session(sid).await.unwrap().unwrap();
    let rules: Vec<&str> = s.dynamic_rules.keys().map(String::as_str).collect();
    assert_eq!(rules, ["internet-3g", "video"]);
    assert_eq!((s.rat_type, s.last_request_number), (Some(1000), 1));
    assert_eq!(s.version, 2, "one replace for the update, one for the push");
}
