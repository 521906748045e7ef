//! The PCRF's Gxx server (TS 29.212 chapter 4a) on loopback: a diameter-node BBERF whose Gxx
//! session is linked to the PCEF's Gx session of the same IP-CAN session and given the QoS
//! rules of its PCC rules — at establishment, later by Gxx RAR when the Gx session comes
//! second (deferred linking), and whenever those rules change (an AF's media over Rx).

mod common;

use common::*;
use diameter_codec::dict::{gx, nasreq};
use pcrf::rx::rule_name;

#[tokio::test]
async fn a_gxx_session_gets_the_qos_rules_of_its_gx_session_and_follows_them() {
    let p = pcrf().await;
    let addr = p.listen_addrs()[0];
    let pcef = Pcef::connect("pgw.epc.test", addr, None, RarReply::Success).await;
    assert_eq!(
        rc(&pcef.send(pcef.ccr_i("pgw.epc.test;gx", IMSI_1)).await),
        Some(2001)
    );
    let bberf = Bberf::connect("sgw.epc.test", addr).await;
    let mut i = bberf.ccr("sgw.epc.test;gxx", 1, 0, Some(IMSI_1));
    i.push(nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::from_static(&[10, 45, 0, 2])));
    let a = bberf.send(i).await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    // TS 29.212 §5a.6.3: the QoS rule of the dynamic PCC rule `internet` — its name, flow,
    // QoS and precedence, no charging — and the default bearer's QoS.
    assert_eq!(qos_installed(&a), ["internet"]);
    let def = all(a.avps().flatten(), 1051)
        .iter()
        .flat_map(|i| all(i.children().flatten(), 1053))
        .next()
        .unwrap();
    let codes: Vec<u32> = def.children().flatten().map(|c| c.code).collect();
    assert_eq!(codes, [1054, 1058, 1016, 1010]);
    let qos = child(&def, 1016).unwrap();
    assert_eq!(u32_of(&child(&qos, 1028).unwrap()), 9);
    assert_eq!(u32_of(&child(&def, 1010).unwrap()), 1000);
    let deb = a.find(gx::DEFAULT_EPS_BEARER_QOS.key()).unwrap();
    assert_eq!(u32_of(&child(&deb, 1028).unwrap()), 9);
    let g = p.gxx_session("sgw.epc.test;gxx").await.unwrap().unwrap();
    assert_eq!(g.gx_session.as_deref(), Some("pgw.epc.test;gx"));

    // An AF's media: the PCC rule goes to the PCEF, its QoS rule to the BBERF.
    let af = Af::connect("pcscf.ims.test", addr, AfReply::Success).await;
    let sid = "pcscf.ims.test;call";
    assert_eq!(
        rc(&af
            .send(af.aar(sid, [10, 45, 0, 2], vec![audio_component(1)], &[]))
            .await),
        Some(2001)
    );
    let rars = bberf.rars.clone();
    eventually("Gxx RAR with the AF's QoS rule", || {
        rars.lock().unwrap().len() == 1
    })
    .await;
    let rar = rars.lock().unwrap()[0].clone();
    strictly_valid(&rar);
    assert_eq!(rar.header().application_id, GXX);
    assert_eq!(rar.session_id(), Some("sgw.epc.test;gxx"));
    assert_eq!(qos_installed(&rar), [rule_name(sid, 1)]);
    // STR: removed at both.
    assert_eq!(rc(&af.send(af.str_(sid)).await), Some(2001));
    eventually("Gxx RAR removing it", || rars.lock().unwrap().len() == 2).await;
    assert_eq!(qos_removed(&rars.lock().unwrap()[1]), [rule_name(sid, 1)]);
    // The Gxx session records what the BBERF accepted.
    let end = std::time::Instant::now() + T;
    loop {
        let g = p.gxx_session("sgw.epc.test;gxx").await.unwrap().unwrap();
        if g.qos_rules.iter().collect::<Vec<_>>() == ["internet"] {
            break;
        }
        assert!(std::time::Instant::now() < end, "{:?}", g.qos_rules);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // A QoS rule the BBERF could not install, then the end of the Gxx session.
    let mut u = bberf.ccr("sgw.epc.test;gxx", 2, 1, None);
    u.push(gx::QOS_RULE_REPORT.with(vec![
        gx::QOS_RULE_NAME.with(bytes::Bytes::from_static(b"internet")),
        gx::PCC_RULE_STATUS.with(gx::PccRuleStatus(1)),
        gx::RULE_FAILURE_CODE.with(gx::RuleFailureCode(10)),
    ]));
    assert_eq!(rc(&bberf.send(u).await), Some(2001));
    let g = p.gxx_session("sgw.epc.test;gxx").await.unwrap().unwrap();
    assert!(g.qos_rules.is_empty());
    assert_eq!(g.failures[0].failure_code, Some(10));
    assert_eq!(
        rc(&bberf.send(bberf.ccr("sgw.epc.test;gxx", 3, 2, None)).await),
        Some(2001)
    );
    assert_eq!(
        rc(&bberf.send(bberf.ccr("sgw.epc.test;gxx", 2, 3, None)).await),
        Some(5002)
    );
}

#[tokio::test]
async fn a_gxx_session_before_its_gx_session_is_linked_when_that_comes() {
    let p = pcrf().await;
    let addr = p.listen_addrs()[0];
    let bberf = Bberf::connect("sgw.epc.test", addr).await;
    // TS 29.212 §4a.5.1: no Gx session yet (no address either) — linking deferred.
    let mut i = bberf.ccr("sgw.epc.test;early", 1, 0, Some(IMSI_3));
    i.push(nasreq::CALLED_STATION_ID.with("internet"));
    let a = bberf.send(i).await;
    assert_eq!(rc(&a), Some(2001));
    assert!(qos_installed(&a).is_empty());
    // Subscriber 3's default bearer: QCI 8.
    let deb = a.find(gx::DEFAULT_EPS_BEARER_QOS.key()).unwrap();
    assert_eq!(u32_of(&child(&deb, 1028).unwrap()), 8);
    assert!(
        p.gxx_session("sgw.epc.test;early")
            .await
            .unwrap()
            .unwrap()
            .gx_session
            .is_none()
    );
    // The PCEF's CCR-I: the Gxx session is linked and its BBERF gets the QoS rules.
    let pcef = Pcef::connect("pgw.epc.test", addr, None, RarReply::Success).await;
    assert_eq!(
        rc(&pcef.send(pcef.ccr_i("pgw.epc.test;gx3", IMSI_3)).await),
        Some(2001)
    );
    let rars = bberf.rars.clone();
    eventually("Gxx RAR after linking", || rars.lock().unwrap().len() == 1).await;
    let mut names = qos_installed(&rars.lock().unwrap()[0]);
    names.sort();
    assert_eq!(names, ["internet", "video"]);
    let g = p.gxx_session("sgw.epc.test;early").await.unwrap().unwrap();
    assert_eq!(g.gx_session.as_deref(), Some("pgw.epc.test;gx3"));
    // The Gx session ends: the link goes (the BBERF ends its own session).
    assert_eq!(
        rc(&pcef.send(pcef.ccr("pgw.epc.test;gx3", 3, 1, None)).await),
        Some(2001)
    );
    let end = std::time::Instant::now() + T;
    while p
        .gxx_session("sgw.epc.test;early")
        .await
        .unwrap()
        .unwrap()
        .gx_session
        .is_some()
    {
        assert!(std::time::Instant::now() < end, "link kept");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Unknown subscriber: 5030 as on Gx.
    let a = bberf
        .send(bberf.ccr("sgw.epc.test;stranger", 1, 0, Some("999990000000001")))
        .await;
    assert_eq!(experimental(&a), Some(5030));
}
