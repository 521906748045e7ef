//! The session-status audit (issue 13 point 4, "no orphans") on loopback with the real
//! home PCRF: a PCEF redirected by the DRA ends its Gx session at the PCRF only (its
//! termination never reaches the DRA), and the DRA, asking the PCRF about bindings idle
//! past `audit_interval` (Session-Status, `dictionaries/roaming_vendor.toml`), removes
//! that binding and keeps the one whose Gx and Rx sessions the PCRF still holds.

mod common;

use common::*;
use diameter_codec::dict::base;
use diameter_node::config::RedirectUsageToml;
use dra::binding::{Mode, SessionState};
use std::time::Duration;

#[tokio::test]
async fn the_audit_removes_bindings_whose_sessions_the_pcrf_no_longer_holds() {
    let p = pcrf("pcrf.home.test").await;
    let mut cfg = dra_config(Mode::Redirect, &[&p]);
    cfg.dra.redirect_usage = Some(RedirectUsageToml::DontCache);
    cfg.dra.audit_interval = Some(Duration::from_millis(300));
    let d = dra(&cfg).await;
    let addr = d.listen_addrs()[0];
    let pcef = Client::connect("pcef.epc.test", GX, addr, &[&p]).await;
    let af = Client::connect("af.epc.test", RX, addr, &[&p]).await;

    // Two IP-CAN sessions, each redirected to the PCRF and established there.
    let (lost, kept) = ("pcef.epc.test;audit;1", "pcef.epc.test;audit;2");
    for (sid, imsi, ip) in [
        (lost, IMSI_1, [10, 45, 9, 1]),
        (kept, IMSI_2, [10, 45, 9, 2]),
    ] {
        let a = pcef.send(ccr_i(&pcef.host, sid, imsi, ip)).await;
        assert_eq!(
            (rc(&a), origin(&a).as_str()),
            (Some(2001), "pcrf.home.test")
        );
    }
    // An AF session on the kept one, redirected to the PCRF too (Rx follows Gx).
    let a = af
        .send(aar(&af.host, "af.epc.test;audit;rx", Some([10, 45, 9, 2])))
        .await;
    assert_eq!(rc(&a), Some(2001));
    assert!(
        p.rx_session("af.epc.test;audit;rx")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(d.store().stats().await.unwrap().bindings, 2);

    // The first session's CCR-T goes to the PCRF alone (sent to the PCRF by
    // Destination-Host, as a client does that terminates in parallel and whose request to
    // the DRA was lost): the DRA never hears of it.
    let mut t = ccr(&pcef.host, lost, 3, 1);
    t.push(base::DESTINATION_HOST.with("pcrf.home.test"));
    let a = pcef.send(t).await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    assert!(p.session(lost).await.unwrap().is_none());
    assert!(d.store().by_session(lost.into()).await.unwrap().is_some());

    // Once idle past the interval, the audit asks the PCRF: 5002 for the lost session (its
    // entry goes), 2001 for the kept Gx and Rx sessions (their entry stays, active).
    wait_bindings(&d, 1).await;
    assert!(d.store().by_session(lost.into()).await.unwrap().is_none());
    // Several intervals later the kept entry is still there, checked again and again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let b = d
        .store()
        .by_session(kept.into())
        .await
        .unwrap()
        .expect("the entry the PCRF confirms stays");
    assert_eq!(b.sessions.len(), 2);
    assert!(b.sessions.iter().all(|s| s.state == SessionState::Active));
    assert!(
        b.touched_ms > b.created_ms,
        "the audit touched the entry it checked"
    );

    // The PCRF answers Session-Status itself: 2001 for a session it holds, 5002 for one it
    // does not, on Gx and Rx.
    for (app, sid, want) in [
        (GX, kept, 2001),
        (GX, lost, 5002),
        (RX, "af.epc.test;audit;rx", 2001),
        (RX, "af.epc.test;audit;none", 5002),
    ] {
        let c = if app == GX { &pcef } else { &af };
        let mut r = diameter_codec::MessageBuilder::request(dra::server::SESSION_STATUS, app, true);
        r.push(base::SESSION_ID.with(sid.to_string()));
        r.push(base::ORIGIN_HOST.with(c.host.clone()));
        r.push(base::ORIGIN_REALM.with("epc.test"));
        r.push(base::DESTINATION_REALM.with(HOME));
        r.push(base::DESTINATION_HOST.with("pcrf.home.test"));
        r.push(base::AUTH_APPLICATION_ID.with(app));
        let a = c.send(r).await;
        assert_eq!(rc(&a), Some(want), "{sid}");
    }

    // The rest ends through the DRA as usual: nothing is left.
    let t = str_(&af.host, "af.epc.test;audit;rx");
    assert_eq!(rc(&af.send(t).await), Some(2001));
    assert_eq!(
        rc(&pcef.send(ccr(&pcef.host, kept, 3, 1)).await),
        Some(2001)
    );
    wait_bindings(&d, 0).await;
}
