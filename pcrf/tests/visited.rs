//! The visited role end to end on loopback: a home PCRF (the demo configuration) and a
//! V-PCRF (`examples/visited.toml`) in-process on free ports, with a diameter-node client
//! as the visited PCEF. Roaming establishment over S9 under local policy (a rule refused,
//! QoS capped, rating group remapped — all visible in the CCA), the home OCS and the chosen
//! V-OCS in the CCA, a local subscriber without S9, S9 RAR from home to Gx RAR, both S9
//! models, S9 failures, and no session left in either PCRF at the end.

mod common;
#[path = "../../tests/interop/harness.rs"]
mod harness;

use common::{
    Bberf, IMSI_1, IMSI_3, T, all, child, client_config, experimental, install, installed,
    keep_requests, qos_installed, qos_removed, removed, s9_session_of, strictly_valid, success,
    u32_of,
};
use diameter_codec::dict::{base, dcca, gx, nasreq};
use diameter_codec::{AvpRef, Message, MessageBuilder, ResultCode};
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn, relay_route};
use diameter_node::peer::Application;
use pcrf::visited::config::S9Model;
use pcrf::{Config, Pcrf};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const GX: u32 = 16_777_238;
const VPCRF: &str = "pcrf.visited.test";
const VISITED: &str = "visited.test";
/// A subscriber of the visited network itself (examples/visited-spr.toml).
const LOCAL_IMSI: &str = "001020000000001";

/// The demo home PCRF on a free port, with a secondary OCS.
async fn home() -> Pcrf {
    let mut cfg = Config::demo();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.charging.secondary_ocs = Some("aaa://ocs2.home.test:3870;transport=tcp".into());
    Pcrf::start(&cfg).await.unwrap()
}

/// `examples/visited.toml` on a free port, its home peer at `home`, changed by `edit`.
async fn visited(home: SocketAddr, edit: impl FnOnce(&mut Config)) -> Pcrf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/visited.toml");
    let mut cfg = Config::load(&path).unwrap();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.node.peers[0].connect = Some(home);
    cfg.pcrf.admin = None;
    edit(&mut cfg);
    let p = Pcrf::start(&cfg).await.unwrap();
    assert!(
        p.node().wait_peer("pcrf.home.test", T).await,
        "V-PCRF not connected to home"
    );
    p
}

/// A `visited` edit: one S9 session per UE (embodiment 10).
fn per_ue(c: &mut Config) {
    c.pcrf.visited.as_mut().unwrap().s9_model = S9Model::PerUe;
}

/// The visited PCEF: a Gx client of the V-PCRF that answers RARs 2001 and keeps them.
struct Pcef {
    node: Node,
    rars: Arc<Mutex<Vec<Message>>>,
}

impl Pcef {
    async fn connect(addr: SocketAddr) -> Self {
        Self::connect_to(addr, VPCRF).await
    }

    /// Connects to the V-PCRF `vpcrf` at `addr`.
    async fn connect_to(addr: SocketAddr, vpcrf: &str) -> Self {
        let cfg = client_config("pgw.visited.test", VISITED, GX, vpcrf, VISITED, addr);
        let node = Node::start(cfg).await.unwrap();
        let rars = keep_requests(&node, GX, success);
        assert!(node.wait_peer(vpcrf, T).await, "V-PCRF at {addr} not open");
        Self { node, rars }
    }

    fn ccr(&self, session: &str, kind: i32, number: u32) -> MessageBuilder {
        let mut b = MessageBuilder::request(272, GX, true);
        b.push(base::SESSION_ID.with(session.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(GX));
        b.push(base::ORIGIN_HOST.with("pgw.visited.test"));
        b.push(base::ORIGIN_REALM.with(VISITED));
        b.push(base::DESTINATION_REALM.with(VISITED));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
        b.push(dcca::CC_REQUEST_NUMBER.with(number));
        b
    }

    /// A CCR-I for `imsi` on `apn`, UE address 10.46.0.`host`, E-UTRAN.
    fn ccr_i(&self, session: &str, imsi: &str, apn: &str, host: u8) -> MessageBuilder {
        let mut b = self.ccr(session, 1, 0);
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
            dcca::SUBSCRIPTION_ID_DATA.with(imsi.to_string()),
        ]));
        b.push(nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(&[10, 46, 0, host])));
        b.push(nasreq::CALLED_STATION_ID.with(apn.to_string()));
        b.push(gx::RAT_TYPE.with(gx::RatType(1004)));
        b
    }

    async fn send(&self, req: MessageBuilder) -> Message {
        self.node.request(req).await.expect("answer")
    }

    async fn nth_rar(&self, n: usize) -> Message {
        common::eventually("a Gx RAR from the V-PCRF", || {
            self.rars.lock().unwrap().len() >= n
        })
        .await;
        self.rars.lock().unwrap()[n - 1].clone()
    }
}

fn rc(m: &Message) -> Option<u32> {
    common::rc(m)
}

/// The Charging-Rule-Definition named `name` in a message's Charging-Rule-Install.
fn definition<'a>(m: &'a Message, name: &str) -> AvpRef<'a> {
    all(m.avps().flatten(), 1001)
        .into_iter()
        .flat_map(|i| all(i.children().flatten(), 1003))
        .find(|d| child(d, 1005).unwrap().data == name.as_bytes())
        .unwrap_or_else(|| panic!("no rule {name} installed"))
}

/// (QCI, MBR-UL, MBR-DL) of a rule definition.
fn rule_qos(d: &AvpRef<'_>) -> (u32, u32, u32) {
    let q = child(d, 1016).expect("rule QoS-Information");
    (
        u32_of(&child(&q, 1028).unwrap()),
        u32_of(&child(&q, 516).unwrap()),
        u32_of(&child(&q, 515).unwrap()),
    )
}

/// Predefined rule names in Charging-Rule-Install.
fn predefined(m: &Message) -> Vec<String> {
    all(m.avps().flatten(), 1001)
        .iter()
        .flat_map(|i| all(i.children().flatten(), 1005))
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
        .collect()
}

fn text(a: &AvpRef<'_>) -> String {
    String::from_utf8_lossy(a.data).into_owned()
}

/// The OCS names of a CCA: (Primary-Event-Charging-Function-Name, Home-OCS-Primary,
/// Home-OCS-Secondary).
fn ocs_names(m: &Message) -> (String, String, String) {
    let ci = m
        .find(diameter_codec::AvpKey::new(618, 10_415))
        .expect("Charging-Information");
    let hoi = m
        .find(diameter_codec::AvpKey::new(8, 32_473))
        .expect("Home-OCS-Identity");
    (
        text(&child(&ci, 619).unwrap()),
        text(&child(&hoi, 9).unwrap()),
        text(&child(&hoi, 10).unwrap()),
    )
}

/// No session left anywhere.
async fn all_gone(h: &Pcrf, v: &Pcrf) {
    let vis = v.visited().unwrap();
    assert!(
        vis.roaming_sessions().await.unwrap().is_empty(),
        "{:?}",
        vis.roaming_sessions().await.unwrap()
    );
    assert!(vis.s9_sessions().await.unwrap().is_empty());
    assert_eq!(v.sessions().count().await.unwrap(), 0);
    assert_eq!(h.s9_sessions().count().await.unwrap(), 0);
    assert_eq!(h.sessions().count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_roaming_session_lives_over_s9_under_local_policy() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;

    let a = pcef
        .send(pcef.ccr_i("pgw;roam;1", IMSI_1, "internet", 2))
        .await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    strictly_valid(&a);
    // The home's `internet` rule (rating group 10, MBR 50/100 Mbit/s, QCI 9) remapped to
    // 1010 and capped at 20/50 Mbit/s; the home's predefined `local-dns` refused.
    assert_eq!(installed(&a), [("internet".to_string(), Some(1010))]);
    assert_eq!(
        rule_qos(&definition(&a, "internet")),
        (9, 20_000_000, 50_000_000)
    );
    assert!(predefined(&a).is_empty(), "{:?}", predefined(&a));
    // APN-AMBR: home 50/100 Mbit/s, capped at 30/60.
    let q = a.find(diameter_codec::AvpKey::new(1016, 10_415)).unwrap();
    assert_eq!(u32_of(&child(&q, 1041).unwrap()), 30_000_000);
    assert_eq!(u32_of(&child(&q, 1040).unwrap()), 60_000_000);
    // The home's event triggers and online charging pass through.
    let triggers: Vec<u32> = all(a.avps().flatten(), 1006).iter().map(u32_of).collect();
    assert_eq!(triggers, [2, 13]);
    // The chosen V-OCS is the PCEF's OCS; the home OCS, primary and secondary, beside it.
    assert_eq!(
        ocs_names(&a),
        (
            "aaa://ocs.visited.test:3880;transport=tcp".into(),
            "ocs.home.test".into(),
            "ocs2.home.test".into()
        )
    );

    // The S9 session at home: one subsession, its client named; `local-dns` reported
    // refused, so the home no longer counts it installed.
    let rs = v
        .visited()
        .unwrap()
        .roaming_session("pgw;roam;1")
        .await
        .unwrap();
    let s9 = h
        .s9_session(&rs.s9_session_id)
        .await
        .unwrap()
        .expect("S9 session at home");
    assert_eq!(s9.vpcrf_host, VPCRF);
    assert_eq!(s9.subsessions.len(), 1);
    let sub = &s9.subsessions[&rs.subsession];
    assert_eq!(
        sub.client_sessions.first().map(String::as_str),
        Some("pgw;roam;1")
    );
    assert!(!sub.policy.predefined_rules.contains("local-dns"));
    assert!(
        sub.policy
            .failures
            .iter()
            .any(|f| f.name == "local-dns" && f.failure_code == Some(5))
    );

    // A second roaming session (per-session model: its own S9 session) gets the less
    // loaded V-OCS.
    let a2 = pcef
        .send(pcef.ccr_i("pgw;roam;2", IMSI_3, "internet", 3))
        .await;
    assert_eq!(rc(&a2), Some(2001));
    assert_eq!(
        ocs_names(&a2).0,
        "aaa://ocs2.visited.test:3880;transport=tcp"
    );
    let rs2 = v
        .visited()
        .unwrap()
        .roaming_session("pgw;roam;2")
        .await
        .unwrap();
    assert_ne!(rs2.s9_session_id, rs.s9_session_id);
    assert_eq!(h.s9_sessions().count().await.unwrap(), 2);

    // Handover to UTRAN: the home's RAT policy swaps `internet` for `internet-3g`
    // (rating group 30, not remapped; 5/20 Mbit/s, under the caps).
    let mut u = pcef.ccr("pgw;roam;1", 2, 1);
    u.push(gx::EVENT_TRIGGER.with(gx::EventTrigger(2)));
    u.push(gx::RAT_TYPE.with(gx::RatType(1000)));
    let a = pcef.send(u).await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    assert_eq!(removed(&a), ["internet"]);
    assert_eq!(installed(&a), [("internet-3g".to_string(), Some(30))]);
    assert_eq!(
        rule_qos(&definition(&a, "internet-3g")),
        (9, 5_000_000, 20_000_000)
    );
    let s9 = h.s9_session(&rs.s9_session_id).await.unwrap().unwrap();
    assert_eq!(s9.subsessions[&rs.subsession].policy.rat_type, Some(1000));

    // A repeated CCR-I for the live session 2 replaces it: its old S9 session ends.
    let again = pcef
        .send(pcef.ccr_i("pgw;roam;2", IMSI_3, "internet", 3))
        .await;
    assert_eq!(rc(&again), Some(2001));
    assert!(h.s9_session(&rs2.s9_session_id).await.unwrap().is_none());
    let rs2 = v
        .visited()
        .unwrap()
        .roaming_session("pgw;roam;2")
        .await
        .unwrap();
    assert_eq!(h.s9_sessions().count().await.unwrap(), 2);

    // Each Gx CCR-T ends its S9 session.
    let a = pcef.send(pcef.ccr("pgw;roam;1", 3, 2)).await;
    assert_eq!(rc(&a), Some(2001));
    assert!(h.s9_session(&rs.s9_session_id).await.unwrap().is_none());
    assert!(h.s9_session(&rs2.s9_session_id).await.unwrap().is_some());
    let a = pcef.send(pcef.ccr("pgw;roam;2", 3, 1)).await;
    assert_eq!(rc(&a), Some(2001));
    // A request on the ended session is the local handler's: unknown (RFC 6733 §7.1.5).
    let a = pcef.send(pcef.ccr("pgw;roam;2", 2, 2)).await;
    assert_eq!(rc(&a), Some(5002));
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn a_durable_v_pcrf_keeps_its_roaming_sessions_across_a_restart() {
    // `[store] durable`: the V-PCRF's client sessions and S9 sessions towards home (the
    // roaming store) come back from the data file, so the PCEF's next CCR-U goes home over
    // the same S9 session, and its CCR-T ends it there.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vpcrf.redb");
    let durable = |c: &mut Config| {
        c.store.durable = true;
        c.store.path = file.clone();
    };
    let h = home().await;
    let v = visited(h.listen_addrs()[0], durable).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let a = pcef
        .send(pcef.ccr_i("pgw;durable;1", IMSI_1, "internet", 7))
        .await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    let before = v
        .visited()
        .unwrap()
        .roaming_session("pgw;durable;1")
        .await
        .unwrap();
    let numbered = h
        .s9_session(&before.s9_session_id)
        .await
        .unwrap()
        .expect("S9 session at home")
        .last_request_number;
    v.shutdown(Duration::from_secs(1)).await;
    drop(v);

    let v = visited(h.listen_addrs()[0], durable).await;
    let after = v
        .visited()
        .unwrap()
        .roaming_session("pgw;durable;1")
        .await
        .unwrap();
    assert_eq!(after, before, "the client session came back");
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    assert_eq!(
        rc(&pcef.send(pcef.ccr("pgw;durable;1", 2, 1)).await),
        Some(2001)
    );
    let s9 = h
        .s9_session(&after.s9_session_id)
        .await
        .unwrap()
        .expect("the same S9 session at home");
    assert_eq!(
        s9.last_request_number,
        numbered + 1,
        "the CCR-U went home on it, numbered on"
    );
    assert_eq!(
        rc(&pcef.send(pcef.ccr("pgw;durable;1", 3, 2)).await),
        Some(2001)
    );
    all_gone(&h, &v).await;
    v.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_own_subscriber_is_served_locally_without_s9() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let a = pcef
        .send(pcef.ccr_i("pgw;local;1", LOCAL_IMSI, "internet", 9))
        .await;
    assert_eq!(rc(&a), Some(2001));
    // The visited network's own rule, not remapped (local policy is for roamers).
    assert_eq!(installed(&a), [("internet".to_string(), Some(10))]);
    assert!(v.session("pgw;local;1").await.unwrap().is_some());
    assert!(v.visited().unwrap().s9_sessions().await.unwrap().is_empty());
    assert_eq!(h.s9_sessions().count().await.unwrap(), 0);
    let a = pcef.send(pcef.ccr("pgw;local;1", 3, 1)).await;
    assert_eq!(rc(&a), Some(2001));
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn s9_rars_from_home_reach_the_pcef_under_local_policy() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |c| {
        let lp = &mut c.pcrf.visited.as_mut().unwrap().local_policy[0];
        lp.refused_rules.push("video".into());
    })
    .await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let a = pcef
        .send(pcef.ccr_i("pgw;rar;1", IMSI_1, "internet", 4))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let s9_id = s9_session_of(&v, "pgw;rar;1").await;

    // `voice` (QCI 1, rating group 50): QCI 1 is refused to roamers, so it is installed
    // with QCI 8.
    let voice = install("voice");
    let out = h.push_s9(&s9_id, None, &voice).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].result_code, out[0].installed), (2001, 1));
    let rar = pcef.nth_rar(1).await;
    strictly_valid(&rar);
    assert_eq!(rar.session_id(), Some("pgw;rar;1"));
    assert_eq!(installed(&rar), [("voice".to_string(), Some(50))]);
    assert_eq!(rule_qos(&definition(&rar, "voice")).0, 8);

    // `video` is refused by local policy: no Gx RAR; the home hears
    // DIAMETER_PCC_RULE_EVENT with the rule INACTIVE.
    let video = install("video");
    let out = h.push_s9(&s9_id, None, &video).await.unwrap();
    assert_eq!(out[0].result_code, 5142);
    assert_eq!(out[0].installed, 0);
    assert!(
        out[0]
            .failures
            .iter()
            .any(|f| f.name == "video" && f.status == Some(1))
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pcef.rars.lock().unwrap().len(), 1);

    // The home releases the session: Gx RAR with Session-Release-Cause; the PCEF ends it.
    let rc_release = h.release_s9(&s9_id, None, 0).await.unwrap();
    assert_eq!(rc_release, 2001);
    let rar = pcef.nth_rar(2).await;
    assert_eq!(
        u32_of(&rar.find(diameter_codec::AvpKey::new(1045, 10_415)).unwrap()),
        0
    );
    let a = pcef.send(pcef.ccr("pgw;rar;1", 3, 1)).await;
    assert_eq!(rc(&a), Some(2001));
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn one_s9_session_per_ue_ends_with_its_last_subsession() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], per_ue).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    for (sid, apn, host) in [("pgw;ue;1", "internet", 5), ("pgw;ue;2", "ims", 6)] {
        let a = pcef.send(pcef.ccr_i(sid, IMSI_1, apn, host)).await;
        assert_eq!(rc(&a), Some(2001), "{sid}");
        strictly_valid(&a);
    }
    let vis = v.visited().unwrap();
    let one = vis.roaming_session("pgw;ue;1").await.unwrap();
    let two = vis.roaming_session("pgw;ue;2").await.unwrap();
    assert_eq!(one.s9_session_id, two.s9_session_id);
    assert_ne!(one.subsession, two.subsession);
    let s9 = h.s9_session(&one.s9_session_id).await.unwrap().unwrap();
    assert_eq!(s9.subsessions.len(), 2);
    assert_eq!(h.s9_sessions().count().await.unwrap(), 1);
    // The `ims` APN matches the catch-all local policy entry: remapped, not capped.
    assert_eq!(
        s9.subsessions[&two.subsession].policy.apn.as_deref(),
        Some("ims")
    );

    // The first Gx session ends: only its subsession ends, S9 stays.
    let a = pcef.send(pcef.ccr("pgw;ue;1", 3, 1)).await;
    assert_eq!(rc(&a), Some(2001));
    let s9 = h
        .s9_session(&one.s9_session_id)
        .await
        .unwrap()
        .expect("S9 kept");
    assert_eq!(
        s9.subsessions.keys().copied().collect::<Vec<_>>(),
        [two.subsession]
    );
    assert_eq!(
        vis.s9_sessions().await.unwrap(),
        std::slice::from_ref(&one.s9_session_id)
    );
    // A new Gx session of the UE joins the same S9 session.
    let a = pcef
        .send(pcef.ccr_i("pgw;ue;3", IMSI_1, "internet", 7))
        .await;
    assert_eq!(rc(&a), Some(2001));
    assert_eq!(
        vis.roaming_session("pgw;ue;3").await.unwrap().s9_session_id,
        one.s9_session_id
    );
    // The home releases one subsession (Session-Release-Cause inside its
    // Subsession-Decision-Info): only that Gx session's PCEF is asked to end it.
    assert_eq!(
        h.release_s9(&one.s9_session_id, Some(two.subsession), 0)
            .await
            .unwrap(),
        2001
    );
    let rar = pcef.nth_rar(1).await;
    assert_eq!(rar.session_id(), Some("pgw;ue;2"));
    assert!(
        rar.find(diameter_codec::AvpKey::new(1045, 10_415))
            .is_some()
    );
    // The last ones end: the S9 session ends with them.
    for (sid, n) in [("pgw;ue;2", 1), ("pgw;ue;3", 1)] {
        let a = pcef.send(pcef.ccr(sid, 3, n)).await;
        assert_eq!(rc(&a), Some(2001));
    }
    assert!(h.s9_session(&one.s9_session_id).await.unwrap().is_none());
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn s9_failures_give_the_pcef_a_clear_result() {
    // Home refuses: a subscriber it does not know (5030 in Experimental-Result).
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let a = pcef
        .send(pcef.ccr_i("pgw;fail;1", "001019999999999", "internet", 8))
        .await;
    assert_eq!(experimental(&a), Some(5030));
    let msg = text(&a.find(diameter_codec::AvpKey::new(281, 0)).unwrap());
    assert!(
        msg.contains("home.test") && msg.contains("refused"),
        "{msg}"
    );
    all_gone(&h, &v).await;

    // Home not a partner of ours any more: 5003 from home, passed on.
    let mut cfg = Config::demo();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.roaming_partners.clear();
    let h2 = Pcrf::start(&cfg).await.unwrap();
    let v2 = visited(h2.listen_addrs()[0], |_| {}).await;
    let pcef2 = Pcef::connect(v2.listen_addrs()[0]).await;
    let a = pcef2
        .send(pcef2.ccr_i("pgw;fail;2", IMSI_1, "internet", 8))
        .await;
    assert_eq!(rc(&a), Some(5003));
    all_gone(&h2, &v2).await;

    // Home unreachable: its PCRF is stopped; the PCEF gets 5012 naming the home realm.
    h2.shutdown(Duration::from_secs(1)).await;
    common::eventually("V-PCRF sees home down", || {
        !v2.node().is_peer_available("pcrf.home.test")
    })
    .await;
    let a = pcef2
        .send(pcef2.ccr_i("pgw;fail;3", IMSI_1, "internet", 8))
        .await;
    assert_eq!(rc(&a), Some(5012));
    let msg = text(&a.find(diameter_codec::AvpKey::new(281, 0)).unwrap());
    assert!(
        msg.contains("home.test") && msg.contains("unreachable"),
        "{msg}"
    );
    let vis = v2.visited().unwrap();
    assert!(
        vis.roaming_sessions().await.unwrap().is_empty()
            && vis.s9_sessions().await.unwrap().is_empty()
    );
}

#[tokio::test]
async fn a_restarted_pcef_s_roaming_sessions_end_at_home() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let mut i = pcef.ccr_i("pgw;osi;1", IMSI_1, "internet", 11);
    i.push(base::ORIGIN_STATE_ID.with(1u32));
    assert_eq!(rc(&pcef.send(i).await), Some(2001));
    let old = v
        .visited()
        .unwrap()
        .roaming_session("pgw;osi;1")
        .await
        .unwrap();
    // RFC 6733 §8.16: the same PCEF with a new Origin-State-Id lost its sessions; the
    // V-PCRF ends their S9 sessions before serving the new one.
    let mut i = pcef.ccr_i("pgw;osi;2", IMSI_1, "internet", 12);
    i.push(base::ORIGIN_STATE_ID.with(2u32));
    assert_eq!(rc(&pcef.send(i).await), Some(2001));
    assert!(h.s9_session(&old.s9_session_id).await.unwrap().is_none());
    assert!(
        v.visited()
            .unwrap()
            .roaming_session("pgw;osi;1")
            .await
            .is_none()
    );
    assert_eq!(h.s9_sessions().count().await.unwrap(), 1);
    let a = pcef.send(pcef.ccr("pgw;osi;2", 3, 1)).await;
    assert_eq!(rc(&a), Some(2001));
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn visited_series_count_s9_sessions_and_local_policy() {
    let rec = diameter_node::metrics::recorder();
    let handle = rec.handle();
    // This test binary's only recorder: the other tests' V-PCRF has another node label.
    metrics::set_global_recorder(rec).expect("no recorder yet");
    let me = "pcrf-metrics.visited.test";
    let mut cfg = Config::demo();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.roaming_partners[0].peers.push(me.into());
    let h = Pcrf::start(&cfg).await.unwrap();
    let v = visited(h.listen_addrs()[0], |c| c.node.origin_host = me.into()).await;
    let pcef = Pcef::connect_to(v.listen_addrs()[0], me).await;
    let a = pcef
        .send(pcef.ccr_i("pgw;m;1", IMSI_1, "internet", 13))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let node = format!("node=\"{me}\"");
    let text = handle.render();
    for want in [
        format!("pcrf_visited_s9_sessions{{{node}}} 1"),
        format!("pcrf_visited_roaming_gx_sessions{{{node}}} 1"),
        format!("pcrf_visited_s9_requests_total{{{node},type=\"initial\",result_code=\"2001\"}} 1"),
        // The refused `local-dns` reported home.
        format!("pcrf_visited_s9_requests_total{{{node},type=\"update\",result_code=\"2001\"}} 1"),
        format!("pcrf_visited_local_policy_rules_total{{{node},action=\"refused\"}} 1"),
        format!("pcrf_visited_local_policy_rules_total{{{node},action=\"modified\"}} 1"),
    ] {
        assert!(text.contains(&want), "{want} not in\n{text}");
    }
    let a = pcef.send(pcef.ccr("pgw;m;1", 3, 1)).await;
    assert_eq!(rc(&a), Some(2001));
    let text = handle.render();
    for want in [
        format!("pcrf_visited_s9_sessions{{{node}}} 0"),
        format!(
            "pcrf_visited_s9_requests_total{{{node},type=\"termination\",result_code=\"2001\"}} 1"
        ),
    ] {
        assert!(text.contains(&want), "{want} not in\n{text}");
    }
    all_gone(&h, &v).await;
}

/// Wireshark's dissector (an implementation nobody here wrote) reads the V-PCRF's Gx and S9
/// traffic as we meant it: no malformed packet or expert error; the remapped rating group
/// on Gx, the home's on S9; the subsession operations.
#[tokio::test]
async fn wireshark_reads_the_visited_traffic() {
    if !harness::tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("visited.pcapng");
    let h = home().await;
    let cap = capture.clone();
    let v = visited(h.listen_addrs()[0], |c| {
        c.node.capture = Some(cap);
        per_ue(c);
    })
    .await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    for (sid, host) in [("pgw;ws;1", 21), ("pgw;ws;2", 22)] {
        let a = pcef.send(pcef.ccr_i(sid, IMSI_1, "internet", host)).await;
        assert_eq!(rc(&a), Some(2001));
    }
    let s9_id = s9_session_of(&v, "pgw;ws;1").await;
    let video = install("voice");
    assert_eq!(
        h.push_s9(&s9_id, Some(1), &video).await.unwrap()[0].result_code,
        2001
    );
    for sid in ["pgw;ws;1", "pgw;ws;2"] {
        assert_eq!(rc(&pcef.send(pcef.ccr(sid, 3, 1)).await), Some(2001));
    }
    all_gone(&h, &v).await;
    v.shutdown(Duration::from_secs(1)).await;
    drop(v);
    harness::assert_dissects_cleanly(&capture);
    // Gx CCA-Is: rating group 1010 (remapped); S9 CCAs: the home's 10.
    let rgs = harness::tshark_fields(
        &capture,
        "diameter.cmd.code == 272 && diameter.flags.request == 0 && diameter.Rating-Group",
        &["diameter.applicationId", "diameter.Rating-Group"],
    );
    let lines: Vec<&str> = rgs.lines().collect();
    assert_eq!(
        lines,
        [
            "16777267\t10",
            "16777238\t1010",
            "16777267\t10",
            "16777238\t1010"
        ],
        "{rgs}"
    );
    // S9: ESTABLISHMENT (CCR-I), MODIFICATION (local-dns reported), ESTABLISHMENT (CCR-U,
    // same S9 session), MODIFICATION, TERMINATION (CCR-U), TERMINATION (CCR-T).
    let ops = harness::tshark_fields(
        &capture,
        "diameter.Subsession-Operation && diameter.flags.request == 1",
        &["diameter.CC-Request-Type", "diameter.Subsession-Operation"],
    );
    assert_eq!(
        ops.lines().collect::<Vec<_>>(),
        ["1\t1", "2\t2", "2\t1", "2\t2", "2\t0", "3\t0"],
        "{ops}"
    );
    // TS 29.215 §5.4.1: the V-PCRF's S9 CCR-I names its S9 features, the H-PCRF's CCA-I
    // those both support (the defaults: Feature-List-ID 1, Rel8 and Rel9).
    let features = harness::tshark_fields(
        &capture,
        "diameter.applicationId == 16777267 && diameter.CC-Request-Type == 1 && diameter.Feature-List-ID",
        &[
            "diameter.flags.request",
            "diameter.Feature-List-ID",
            "diameter.Feature-List",
        ],
    );
    assert_eq!(
        features.lines().collect::<Vec<_>>(),
        ["1\t1\t3", "0\t1\t3"],
        "{features}"
    );
    // The S9 RAR reached the PCEF as a Gx RAR: voice, rating group 50, QCI 8.
    let rar = harness::tshark_fields(
        &capture,
        "diameter.cmd.code == 258 && diameter.flags.request == 1",
        &[
            "diameter.applicationId",
            "diameter.Rating-Group",
            "diameter.QoS-Class-Identifier",
        ],
    );
    assert_eq!(
        rar.lines().collect::<Vec<_>>(),
        ["16777267\t50\t1", "16777238\t50\t8"],
        "{rar}"
    );
}

/// A visited AF (a P-CSCF in the visited network): an Rx client of the V-PCRF that answers
/// RARs and ASRs 2001 and keeps them.
struct VisitedAf {
    node: Node,
    requests: Arc<Mutex<Vec<Message>>>,
}

const RX: u32 = 16_777_236;
const AF: &str = "pcscf.visited.test";

impl VisitedAf {
    async fn connect(addr: SocketAddr) -> Self {
        let cfg = client_config(AF, VISITED, RX, VPCRF, VISITED, addr);
        let node = Node::start(cfg).await.unwrap();
        let requests = keep_requests(&node, RX, success);
        assert!(node.wait_peer(VPCRF, T).await, "V-PCRF at {addr} not open");
        Self { node, requests }
    }

    fn request(&self, cmd: u32, session: &str) -> MessageBuilder {
        let mut b = MessageBuilder::request(cmd, RX, true);
        b.push(base::SESSION_ID.with(session.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(RX));
        b.push(base::ORIGIN_HOST.with(AF));
        b.push(base::ORIGIN_REALM.with(VISITED));
        b.push(base::DESTINATION_REALM.with(VISITED));
        b
    }

    async fn send(&self, req: MessageBuilder) -> Message {
        self.node.request(req).await.expect("answer")
    }
}

#[tokio::test]
async fn a_visited_af_s_rx_session_is_relayed_home_and_told_of_the_loss() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let af = VisitedAf::connect(v.listen_addrs()[0]).await;
    let a = pcef
        .send(pcef.ccr_i("pgw;rx;1", IMSI_1, "internet", 30))
        .await;
    assert_eq!(rc(&a), Some(2001));

    // A voice call of the roaming UE (10.46.0.30): the home PCRF derives the rule and
    // pushes it by S9 RAR; the V-PCRF installs it with Gx RAR, QCI 1 refused to roamers
    // and replaced by 8.
    let mut aar = af.request(265, "pcscf;call;1");
    aar.push(common::audio_component(1));
    aar.push(nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::from_static(&[10, 46, 0, 30])));
    let a = af.send(aar).await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    assert_eq!(a.session_id(), Some("pcscf;call;1"));
    assert_eq!(a.header().application_id, RX);
    let rar = pcef.nth_rar(1).await;
    let rules = installed(&rar);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].0.starts_with("rx-"), "{rules:?}");
    assert_eq!(rule_qos(&definition(&rar, &rules[0].0)).0, 8);
    let relayed = v.visited().unwrap().relayed_rx();
    assert_eq!(relayed.len(), 1);
    // The operator endpoint lists both.
    let v = Arc::new(v);
    let (admin, task) = pcrf::admin::serve(v.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let body = common::http(admin, "GET", "/roaming-sessions").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"session_id\":\"pgw;rx;1\""), "{body}");
    assert!(body.contains("\"af_session\":\"pcscf;call;1\""), "{body}");
    task.abort();
    let home_rx = h
        .rx_session(&relayed[0].home_session)
        .await
        .unwrap()
        .expect("Rx session at home");
    assert_eq!(home_rx.af_host, VPCRF);

    // The PCEF ends the IP-CAN session: S9 ends, the home tells its AF (the V-PCRF), which
    // tells the visited AF (ASR, Abort-Cause BEARER_RELEASED).
    let a = pcef.send(pcef.ccr("pgw;rx;1", 3, 1)).await;
    assert_eq!(rc(&a), Some(2001));
    common::eventually("the loss reaches the visited AF", || {
        !af.requests.lock().unwrap().is_empty()
    })
    .await;
    let asr = af.requests.lock().unwrap()[0].clone();
    assert_eq!(asr.header().command_code, 274);
    assert_eq!(asr.session_id(), Some("pcscf;call;1"));
    assert_eq!(
        u32_of(&asr.find(diameter_codec::AvpKey::new(500, 10_415)).unwrap()),
        0,
        "Abort-Cause BEARER_RELEASED"
    );
    // The AF ends its session: relayed home, nothing left.
    let mut str_ = af.request(275, "pcscf;call;1");
    str_.push(base::TERMINATION_CAUSE.with(base::TerminationCause::DIAMETER_LOGOUT));
    let a = af.send(str_).await;
    assert_eq!(rc(&a), Some(2001));
    assert!(v.visited().unwrap().relayed_rx().is_empty());
    assert_eq!(h.rx_sessions().count().await.unwrap(), 0);
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn concurrent_sessions_of_one_ue_share_one_s9_session_per_ue() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], per_ue).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    // Four Gx sessions of the UE at once: one S9 CCR-I opens the session, the others wait
    // for it and add their subsessions with CCR-U.
    let sids: Vec<String> = (1..=4).map(|i| format!("pgw;many;{i}")).collect();
    let at_once = |reqs: Vec<MessageBuilder>| {
        let mut set = tokio::task::JoinSet::new();
        for r in reqs {
            let node = pcef.node.clone();
            set.spawn(async move { node.request(r).await.expect("answer") });
        }
        set.join_all()
    };
    let opened = at_once(
        sids.iter()
            .enumerate()
            .map(|(i, sid)| pcef.ccr_i(sid, IMSI_1, "internet", 40 + i as u8))
            .collect(),
    )
    .await;
    assert!(opened.iter().all(|a| rc(a) == Some(2001)));
    let vis = v.visited().unwrap();
    assert_eq!(vis.s9_sessions().await.unwrap().len(), 1);
    let s9 = h
        .s9_session(&vis.s9_sessions().await.unwrap()[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s9.subsessions.len(), 4);
    let ended = at_once(sids.iter().map(|sid| pcef.ccr(sid, 3, 1)).collect()).await;
    assert!(ended.iter().all(|a| rc(a) == Some(2001)));
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn a_v_pcrf_is_still_the_home_of_its_own_subscribers_on_s9() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    // Another network's V-PCRF sends S9 to ours: served by the home role, which has no
    // roaming partner configured here, so 5003 — not the visited role's 3001.
    let mut cfg = NodeConfig::new("pcrf.third.test", "third.test");
    cfg.local.applications.push(Application {
        vendor: Some(10_415),
        ..Application::auth(16_777_267)
    });
    cfg.local.supported_vendor_ids.push(10_415);
    cfg.peers
        .push(PeerSpec::connect_tcp(VPCRF, v.listen_addrs()[0]));
    cfg.routes
        .push(relay_route(VISITED, Some(16_777_267), &[VPCRF]));
    cfg.request_timeout = T;
    let other = Node::start(cfg).await.unwrap();
    assert!(other.wait_peer(VPCRF, T).await);
    let mut b = MessageBuilder::request(272, 16_777_267, true);
    b.push(base::SESSION_ID.with("pcrf.third.test;s9;1"));
    b.push(base::AUTH_APPLICATION_ID.with(16_777_267u32));
    b.push(base::ORIGIN_HOST.with("pcrf.third.test"));
    b.push(base::ORIGIN_REALM.with("third.test"));
    b.push(base::DESTINATION_REALM.with(VISITED));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
    b.push(dcca::CC_REQUEST_NUMBER.with(0u32));
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(LOCAL_IMSI.to_string()),
    ]));
    let a = other.request(b).await.unwrap();
    assert_eq!(rc(&a), Some(5003));
    all_gone(&h, &v).await;
}

/// A BBERF of the visited network (a serving gateway with PMIP S8 or an S2a gateway,
/// document 002 embodiments 1, 4, 7), connected to the V-PCRF.
async fn bberf(host: &str, vpcrf: SocketAddr) -> Bberf {
    Bberf::connect_to(host, VISITED, VPCRF, VISITED, vpcrf).await
}

/// A Gxx CCR-I for UE 10.46.0.`host` on `apn`, naming the subscriber when `imsi` is given.
fn gxx_i(b: &Bberf, session: &str, imsi: Option<&str>, apn: &str, host: u8) -> MessageBuilder {
    let mut m = b.ccr(session, 1, 0, imsi);
    m.push(nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(&[10, 46, 0, host])));
    m.push(nasreq::CALLED_STATION_ID.with(apn.to_string()));
    m.push(gx::RAT_TYPE.with(gx::RatType(1004)));
    m
}

/// The QoS-Rule-Definition named `name` in a message's QoS-Rule-Install.
fn qos_definition<'a>(m: &'a Message, name: &str) -> AvpRef<'a> {
    all(m.avps().flatten(), 1051)
        .into_iter()
        .flat_map(|i| all(i.children().flatten(), 1053))
        .find(|d| child(d, 1054).unwrap().data == name.as_bytes())
        .unwrap_or_else(|| panic!("no QoS rule {name} installed"))
}

async fn nth_gxx_rar(b: &Bberf, n: usize) -> Message {
    common::eventually("a Gxx RAR from the V-PCRF", || {
        b.rars.lock().unwrap().len() >= n
    })
    .await;
    b.rars.lock().unwrap()[n - 1].clone()
}

#[tokio::test]
async fn a_bberf_s_gxx_session_rides_its_ip_can_session_s_s9_session() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    let vis = v.visited().unwrap();
    let sgw = bberf("sgw.visited.test", v.listen_addrs()[0]).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;

    // The BBERF attaches first (PMIP): its Gxx session opens an S9 session, and the home's
    // `internet` rule comes back as a QoS rule under local policy (MBR capped at 20/50
    // Mbit/s); nothing of charging.
    let a = sgw
        .send(gxx_i(&sgw, "sgw;gxx;1", Some(IMSI_1), "internet", 20))
        .await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    strictly_valid(&a);
    assert_eq!(qos_installed(&a), ["internet"]);
    assert_eq!(
        rule_qos(&qos_definition(&a, "internet")),
        (9, 20_000_000, 50_000_000)
    );
    assert!(a.find(diameter_codec::AvpKey::new(618, 10_415)).is_none());
    assert!(a.find(diameter_codec::AvpKey::new(8, 32_473)).is_none());
    let gxx = vis.roaming_session("sgw;gxx;1").await.unwrap();
    assert_eq!(gxx.interface, pcrf::visited::Interface::Gxx);
    assert_eq!(h.s9_sessions().count().await.unwrap(), 1);

    // The PCEF's Gx session of the same IP-CAN session joins that S9 session and is the
    // one the Gxx session is bound to.
    let a = pcef
        .send(pcef.ccr_i("pgw;gx;1", IMSI_1, "internet", 20))
        .await;
    assert_eq!(rc(&a), Some(2001));
    assert_eq!(installed(&a), [("internet".to_string(), Some(1010))]);
    let gxs = vis.roaming_session("pgw;gx;1").await.unwrap();
    assert_eq!(gxs.s9_session_id, gxx.s9_session_id);
    assert_eq!(vis.bound_gx("sgw;gxx;1").await.as_deref(), Some("pgw;gx;1"));
    let s9 = h.s9_session(&gxx.s9_session_id).await.unwrap().unwrap();
    assert_eq!(s9.subsessions.len(), 2);
    assert_eq!(
        s9.subsessions[&gxx.subsession]
            .client_sessions
            .first()
            .map(String::as_str),
        Some("sgw;gxx;1")
    );

    // Handover to UTRAN reported by the PCEF: the home swaps `internet` for `internet-3g`;
    // the BBERF of the IP-CAN session hears it as QoS rules.
    let mut u = pcef.ccr("pgw;gx;1", 2, 1);
    u.push(gx::EVENT_TRIGGER.with(gx::EventTrigger(2)));
    u.push(gx::RAT_TYPE.with(gx::RatType(1000)));
    let a = pcef.send(u).await;
    assert_eq!(rc(&a), Some(2001));
    let rar = nth_gxx_rar(&sgw, 1).await;
    strictly_valid(&rar);
    assert_eq!(rar.session_id(), Some("sgw;gxx;1"));
    assert_eq!(qos_removed(&rar), ["internet"]);
    assert_eq!(qos_installed(&rar), ["internet-3g"]);

    // BBERF reselection: the new BBERF's Gxx session joins the same S9 session (the home
    // hears Multiple-BBERF-Action), then the old one leaves; S9 stays.
    let sgw2 = bberf("sgw2.visited.test", v.listen_addrs()[0]).await;
    let a = sgw2
        .send(gxx_i(&sgw2, "sgw2;gxx;1", Some(IMSI_1), "internet", 20))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let gxx2 = vis.roaming_session("sgw2;gxx;1").await.unwrap();
    assert_eq!(gxx2.s9_session_id, gxx.s9_session_id);
    assert_eq!(
        vis.bound_gx("sgw2;gxx;1").await.as_deref(),
        Some("pgw;gx;1")
    );
    let a = sgw.send(sgw.ccr("sgw;gxx;1", 3, 1, None)).await;
    assert_eq!(rc(&a), Some(2001));
    let s9 = h.s9_session(&gxx.s9_session_id).await.unwrap().unwrap();
    let mut left: Vec<u32> = s9.subsessions.keys().copied().collect();
    left.sort_unstable();
    assert_eq!(left, [gxs.subsession, gxx2.subsession]);
    assert!(vis.roaming_session("sgw;gxx;1").await.is_none());

    // Detach (document 002 step 6): the BBERF ends Gxx (S9 stays for the Gx session), then
    // the PCEF ends Gx, the last subsession: the S9 session ends.
    let a = sgw2.send(sgw2.ccr("sgw2;gxx;1", 3, 1, None)).await;
    assert_eq!(rc(&a), Some(2001));
    assert!(h.s9_session(&gxx.s9_session_id).await.unwrap().is_some());
    let a = pcef.send(pcef.ccr("pgw;gx;1", 3, 2)).await;
    assert_eq!(rc(&a), Some(2001));
    assert!(h.s9_session(&gxx.s9_session_id).await.unwrap().is_none());
    all_gone(&h, &v).await;
    assert_eq!(v.gxx_session("sgw2;gxx;1").await.unwrap(), None);
}

#[tokio::test]
async fn gxx_and_gx_of_a_ue_share_its_s9_session_per_ue() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], per_ue).await;
    let vis = v.visited().unwrap();
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let sgw = bberf("sgw.visited.test", v.listen_addrs()[0]).await;

    // The PCEF first (GTP-based S5 with an S2a BBERF added later); the BBERF names only
    // the UE address: the roaming IP-CAN session of that address says whose it is.
    let a = pcef
        .send(pcef.ccr_i("pgw;ue;1", IMSI_1, "internet", 21))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let a = sgw
        .send(gxx_i(&sgw, "sgw;ue;1", None, "internet", 21))
        .await;
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    strictly_valid(&a);
    assert_eq!(qos_installed(&a), ["internet"]);
    // Another APN's Gx session of the UE: the same S9 session, three subsessions.
    let a = pcef.send(pcef.ccr_i("pgw;ue;2", IMSI_1, "ims", 22)).await;
    assert_eq!(rc(&a), Some(2001));
    let gx1 = vis.roaming_session("pgw;ue;1").await.unwrap();
    let gxx = vis.roaming_session("sgw;ue;1").await.unwrap();
    assert_eq!(gxx.s9_session_id, gx1.s9_session_id);
    assert_eq!(
        vis.roaming_session("pgw;ue;2").await.unwrap().s9_session_id,
        gx1.s9_session_id
    );
    assert_eq!(vis.bound_gx("sgw;ue;1").await.as_deref(), Some("pgw;ue;1"));
    assert_eq!(h.s9_sessions().count().await.unwrap(), 1);
    let s9 = h.s9_session(&gx1.s9_session_id).await.unwrap().unwrap();
    assert_eq!(s9.subsessions.len(), 3);

    // An S9 RAR from home to every subsession: `voice` (QCI 1, refused to roamers) reaches
    // the PCEF and the BBERF with QCI 8.
    let voice = install("voice");
    let out = h.push_s9(&gx1.s9_session_id, None, &voice).await.unwrap();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.result_code == 2001), "{out:?}");
    let rar = nth_gxx_rar(&sgw, 1).await;
    strictly_valid(&rar);
    assert_eq!(rar.session_id(), Some("sgw;ue;1"));
    assert_eq!(qos_installed(&rar), ["voice"]);
    assert_eq!(rule_qos(&qos_definition(&rar, "voice")).0, 8);

    // The Gxx session ends: only its subsession; then the Gx sessions, the last one with
    // the S9 session.
    let a = sgw.send(sgw.ccr("sgw;ue;1", 3, 1, None)).await;
    assert_eq!(rc(&a), Some(2001));
    let s9 = h
        .s9_session(&gx1.s9_session_id)
        .await
        .unwrap()
        .expect("S9 kept");
    assert_eq!(s9.subsessions.len(), 2);
    for sid in ["pgw;ue;1", "pgw;ue;2"] {
        let a = pcef.send(pcef.ccr(sid, 3, 1)).await;
        assert_eq!(rc(&a), Some(2001));
    }
    assert!(h.s9_session(&gx1.s9_session_id).await.unwrap().is_none());
    all_gone(&h, &v).await;
}

#[tokio::test]
async fn a_ter_from_home_is_answered_under_the_roaming_agreement() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    // TS 29.215 Annex A.6.1.1.1: TEA; no S9a here, so nothing else starts.
    assert_eq!(
        h.trigger_establishment(VPCRF, VISITED, IMSI_1, Some("internet"), false)
            .await
            .unwrap(),
        2001
    );
    assert!(v.visited().unwrap().s9_sessions().await.unwrap().is_empty());
    // DRA-Binding is for a V-DRA; with none, the V-PCRF answers (without DRA-Deployment).
    assert_eq!(
        h.trigger_establishment(VPCRF, VISITED, IMSI_1, None, true)
            .await
            .unwrap(),
        2001
    );
    // A subscriber of another network (here the visited network's own): refused.
    assert_eq!(
        h.trigger_establishment(VPCRF, VISITED, LOCAL_IMSI, None, false)
            .await
            .unwrap(),
        5003
    );
    all_gone(&h, &v).await;
}

/// A home PCRF stand-in whose S9 CCAs take `delay`, and that sends TERs of its own.
async fn slow_home(delay: Duration) -> Node {
    let mut cfg = NodeConfig::new("pcrf.home.test", "home.test");
    cfg.local.applications.push(Application {
        vendor: Some(10_415),
        ..Application::auth(S9)
    });
    cfg.local.supported_vendor_ids.push(10_415);
    cfg.listen
        .push("127.0.0.1:0".parse::<SocketAddr>().unwrap().into());
    cfg.peers.push(PeerSpec::accept_only(VPCRF));
    cfg.routes.push(relay_route(VISITED, Some(S9), &[VPCRF]));
    cfg.request_timeout = T;
    let node = Node::start(cfg).await.unwrap();
    node.register(
        S9,
        handler_fn(move |req| async move {
            tokio::time::sleep(delay).await;
            req.answer(ResultCode::DIAMETER_SUCCESS)
        }),
    );
    node
}

const S9: u32 = 16_777_267;

fn ter(home: &Node, session: &str, imsi: Option<&str>) -> MessageBuilder {
    let mut b = MessageBuilder::request(8_388_656, S9, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(S9));
    b.push(base::ORIGIN_HOST.with(home.identity().host.clone()));
    b.push(base::ORIGIN_REALM.with(home.identity().realm.clone()));
    b.push(base::DESTINATION_REALM.with(VISITED));
    b.push(base::DESTINATION_HOST.with(VPCRF));
    b.push(base::AUTH_SESSION_STATE.with(base::AuthSessionState::NO_STATE_MAINTAINED));
    if let Some(i) = imsi {
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
            dcca::SUBSCRIPTION_ID_DATA.with(i.to_string()),
        ]));
    }
    b
}

#[tokio::test]
async fn a_ter_during_the_ue_s_s9_establishment_is_answered_5471() {
    let home = slow_home(Duration::from_millis(600)).await;
    let v = visited(home.listen_addrs()[0], |_| {}).await;
    let pcef = Arc::new(Pcef::connect(v.listen_addrs()[0]).await);
    let p = pcef.clone();
    let attach =
        tokio::spawn(async move { p.send(p.ccr_i("pgw;ter;1", IMSI_1, "internet", 30)).await });
    let under_way = tokio::time::Instant::now() + T;
    while v.visited().unwrap().s9_sessions().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < under_way,
            "no S9 CCR-I under way"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // TS 29.215 Annex A.6.1.1.1: the V-PCRF is establishing the UE's S9 session itself.
    let a = home
        .request(ter(&home, "h;ter;1", Some(IMSI_1)))
        .await
        .unwrap();
    strictly_valid(&a);
    assert_eq!(experimental(&a), Some(5471));
    assert_eq!(rc(&attach.await.unwrap()), Some(2001));
    // Established: a TER now is answered with success.
    let a = home
        .request(ter(&home, "h;ter;2", Some(IMSI_1)))
        .await
        .unwrap();
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    // Without the IMSI: DIAMETER_MISSING_AVP (RFC 6733 §7.1.5) naming Subscription-Id.
    let a = home.request(ter(&home, "h;ter;3", None)).await.unwrap();
    assert_eq!(rc(&a), Some(5005));
    assert!(a.find(diameter_codec::AvpKey::new(279, 0)).is_some());
    assert_eq!(
        rc(&pcef.send(pcef.ccr("pgw;ter;1", 3, 1)).await),
        Some(2001)
    );
    let vis = v.visited().unwrap();
    assert!(
        vis.roaming_sessions().await.unwrap().is_empty()
            && vis.s9_sessions().await.unwrap().is_empty()
    );
}

#[tokio::test]
async fn wireshark_reads_the_visited_gxx_traffic() {
    if !harness::tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("visited-gxx.pcapng");
    let h = home().await;
    let cap = capture.clone();
    let v = visited(h.listen_addrs()[0], |c| c.node.capture = Some(cap)).await;
    let sgw = bberf("sgw.visited.test", v.listen_addrs()[0]).await;
    let sgw2 = bberf("sgw2.visited.test", v.listen_addrs()[0]).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    let ok = |m: &Message| assert_eq!(rc(m), Some(2001), "{m:?}");
    ok(&sgw
        .send(gxx_i(&sgw, "sgw;ws;1", Some(IMSI_1), "internet", 40))
        .await);
    ok(&pcef
        .send(pcef.ccr_i("pgw;ws;1", IMSI_1, "internet", 40))
        .await);
    let mut u = pcef.ccr("pgw;ws;1", 2, 1);
    u.push(gx::EVENT_TRIGGER.with(gx::EventTrigger(2)));
    u.push(gx::RAT_TYPE.with(gx::RatType(1000)));
    ok(&pcef.send(u).await);
    nth_gxx_rar(&sgw, 1).await;
    ok(&sgw2
        .send(gxx_i(&sgw2, "sgw2;ws;1", Some(IMSI_1), "internet", 40))
        .await);
    ok(&sgw.send(sgw.ccr("sgw;ws;1", 3, 1, None)).await);
    ok(&sgw2.send(sgw2.ccr("sgw2;ws;1", 3, 1, None)).await);
    ok(&pcef.send(pcef.ccr("pgw;ws;1", 3, 2)).await);
    all_gone(&h, &v).await;
    v.shutdown(Duration::from_secs(1)).await;
    drop(v);
    harness::assert_dissects_cleanly(&capture);
    // Gxx: the CCA-Is install `internet` as a QoS rule (the second BBERF reports E-UTRAN
    // again); the RAR swaps it for `internet-3g`. QoS-Rule-Name is an OctetString: hex.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let qos = harness::tshark_fields(
        &capture,
        "diameter.applicationId == 16777266 && diameter.QoS-Rule-Name",
        &[
            "diameter.cmd.code",
            "diameter.flags.request",
            "diameter.QoS-Rule-Name",
        ],
    );
    assert_eq!(
        qos.lines().collect::<Vec<_>>(),
        [
            format!("272\t0\t{}", hex("internet")),
            format!("258\t1\t{},{}", hex("internet"), hex("internet-3g")),
            format!("272\t0\t{}", hex("internet")),
        ],
        "{qos}"
    );
    // S9: the second BBERF announced and its predecessor's leave marked.
    let bberfs = harness::tshark_fields(
        &capture,
        "diameter.Multiple-BBERF-Action && diameter.flags.request == 1",
        &[
            "diameter.Subsession-Operation",
            "diameter.Multiple-BBERF-Action",
        ],
    );
    assert_eq!(
        bberfs.lines().collect::<Vec<_>>(),
        ["1\t0", "0\t1"],
        "{bberfs}"
    );
}

#[tokio::test]
async fn a_restarted_bberf_s_gxx_subsessions_end_at_home() {
    let h = home().await;
    let v = visited(h.listen_addrs()[0], |_| {}).await;
    let vis = v.visited().unwrap();
    let sgw = bberf("sgw.visited.test", v.listen_addrs()[0]).await;
    let pcef = Pcef::connect(v.listen_addrs()[0]).await;
    // The BBERF's Gxx session and the PCEF's Gx session of one IP-CAN session share an S9
    // session; another Gxx session of the BBERF has its own.
    let mut i = gxx_i(&sgw, "sgw;osi;1", Some(IMSI_1), "internet", 13);
    i.push(base::ORIGIN_STATE_ID.with(1u32));
    assert_eq!(rc(&sgw.send(i).await), Some(2001));
    assert_eq!(
        rc(&pcef
            .send(pcef.ccr_i("pgw;osi;1", IMSI_1, "internet", 13))
            .await),
        Some(2001)
    );
    let mut i = gxx_i(&sgw, "sgw;osi;2", Some(IMSI_3), "internet", 14);
    i.push(base::ORIGIN_STATE_ID.with(1u32));
    assert_eq!(rc(&sgw.send(i).await), Some(2001));
    let shared = vis
        .roaming_session("pgw;osi;1")
        .await
        .unwrap()
        .s9_session_id;
    let own = vis
        .roaming_session("sgw;osi;2")
        .await
        .unwrap()
        .s9_session_id;
    assert_eq!(h.s9_sessions().count().await.unwrap(), 2);
    // RFC 6733 §8.16: the BBERF restarted. Its Gxx subsessions end: the shared S9
    // session keeps the Gx subsession, the other S9 session ends.
    let mut i = gxx_i(&sgw, "sgw;osi;3", Some(IMSI_1), "internet", 13);
    i.push(base::ORIGIN_STATE_ID.with(2u32));
    assert_eq!(rc(&sgw.send(i).await), Some(2001));
    assert!(vis.roaming_session("sgw;osi;1").await.is_none());
    assert!(vis.roaming_session("sgw;osi;2").await.is_none());
    assert!(h.s9_session(&own).await.unwrap().is_none());
    let s9 = h.s9_session(&shared).await.unwrap().expect("S9 kept");
    // The Gx subsession and the new Gxx subsession.
    assert_eq!(s9.subsessions.len(), 2);
    assert_eq!(
        rc(&sgw.send(sgw.ccr("sgw;osi;3", 3, 1, None)).await),
        Some(2001)
    );
    assert_eq!(
        rc(&pcef.send(pcef.ccr("pgw;osi;1", 3, 1)).await),
        Some(2001)
    );
    all_gone(&h, &v).await;
}
