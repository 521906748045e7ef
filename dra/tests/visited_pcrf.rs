//! The V-PCRF (`pcrf` in the visited role, `pcrf/examples/visited.toml`) reaching the home
//! PCRF through a proxy-mode home DRA instead of directly: only its `[node]` peer and route
//! change (and `[[pcrf.visited.home]]` names no H-PCRF, so the DRA chooses). The S9
//! session binds at the DRA, a home push comes back through it, and the V-PCRF's S9 CCR-T
//! removes the binding.

mod common;

use common::{
    IMSI_1, T, client_config, dra, dra_config, keep_requests, rc, success, wait_bindings, wait_for,
};
use diameter_codec::dict::{base, dcca, gx, nasreq};
use diameter_codec::{Message, MessageBuilder};
use diameter_node::node::Node;
use dra::binding::Mode;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

const GX: u32 = 16_777_238;
const VPCRF: &str = "pcrf.visited.test";

/// A visited PCEF connected to the V-PCRF, keeping the RARs it gets.
async fn pcef(addr: SocketAddr) -> (Node, Arc<Mutex<Vec<Message>>>) {
    let cfg = client_config(
        "pgw.visited.test",
        "visited.test",
        GX,
        VPCRF,
        "visited.test",
        addr,
    );
    let node = Node::start(cfg).await.unwrap();
    let rars = keep_requests(&node, GX, success);
    assert!(node.wait_peer(VPCRF, T).await);
    (node, rars)
}

fn ccr(session: &str, kind: i32, number: u32) -> MessageBuilder {
    let mut b = MessageBuilder::request(272, GX, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(GX));
    b.push(base::ORIGIN_HOST.with("pgw.visited.test"));
    b.push(base::ORIGIN_REALM.with("visited.test"));
    b.push(base::DESTINATION_REALM.with("visited.test"));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
    b.push(dcca::CC_REQUEST_NUMBER.with(number));
    if kind == 1 {
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
            dcca::SUBSCRIPTION_ID_DATA.with(IMSI_1.to_string()),
        ]));
        b.push(nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::from_static(&[10, 47, 0, 2])));
        b.push(nasreq::CALLED_STATION_ID.with("internet"));
        b.push(gx::RAT_TYPE.with(gx::RatType(1004)));
    }
    b
}

#[tokio::test]
async fn s9_goes_through_the_home_dra_in_proxy_mode() {
    // The home PCRF accepts S9 from the visited realm arriving through its own DRA.
    let mut cfg = pcrf::Config::demo();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.roaming_partners[0]
        .peers
        .push("dra.home.test".into());
    let h = pcrf::Pcrf::start(&cfg).await.unwrap();
    let d = dra(&dra_config(Mode::Proxy, &[&h])).await;
    wait_for(
        || h.node().is_peer_available("dra.home.test"),
        "the home PCRF sees its DRA",
    )
    .await;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcrf/examples/visited.toml");
    let mut vc = pcrf::Config::load(&path).unwrap();
    vc.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    vc.pcrf.admin = None;
    vc.node.peers[0].host = "dra.home.test".into();
    vc.node.peers[0].connect = Some(d.listen_addrs()[0]);
    vc.node.routes[0].peers[0].host = "dra.home.test".into();
    vc.pcrf.visited.as_mut().unwrap().homes[0].pcrf = None;
    let v = pcrf::Pcrf::start(&vc).await.unwrap();
    assert!(v.node().wait_peer("dra.home.test", T).await);
    let (pcef, rars) = pcef(v.listen_addrs()[0]).await;

    let a = pcef.request(ccr("pgw;dra;1", 1, 0)).await.unwrap();
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    let vis = v.visited().unwrap();
    let rs = vis.roaming_session("pgw;dra;1").await.unwrap();
    assert!(h.s9_session(&rs.s9_session_id).await.unwrap().is_some());
    // The S9 session is bound at the home DRA (per UE, TS 29.213 §7.3.2).
    wait_bindings(&d, 1).await;

    // A home push reaches the V-PCRF back through the DRA, and the PCEF as Gx RAR.
    let out = h
        .push_s9(
            &rs.s9_session_id,
            None,
            &pcrf::PolicyChange {
                install: vec!["video".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out[0].result_code, 2001);
    wait_for(|| rars.lock().unwrap().len() == 1, "the Gx RAR").await;

    // The Gx CCR-T ends S9 through the DRA, which drops the binding.
    let a = pcef.request(ccr("pgw;dra;1", 3, 1)).await.unwrap();
    assert_eq!(rc(&a), Some(2001));
    assert_eq!(h.s9_sessions().count().await.unwrap(), 0);
    assert!(vis.s9_sessions().await.unwrap().is_empty());
    wait_bindings(&d, 0).await;
}
