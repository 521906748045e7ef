//! The DRA on loopback in front of the real home PCRF (the `pcrf` library), with
//! diameter-node clients as PCEF (Gx) and AF (Rx) and raw clients that see the DRA's own
//! answers: redirect and proxy modes (TS 29.213 §7.4), Rx following the Gx binding
//! (§7.3.2), PCRF-initiated RAR through the proxy, terminations marking sessions and
//! deleting the entry (document 002), S9 terminations naming client sessions, a PCRF going
//! down, and the error answers.

mod common;

use common::*;
use diameter_codec::dict::{base, roaming, s9};
use diameter_node::config::RedirectUsageToml;
use dra::binding::{Mode, SessionState};
use dra::config::Termination;

#[tokio::test]
async fn redirect_mode_binds_rx_follows_gx_and_terminations_delete_the_entry() {
    let p = pcrf("pcrf.home.test").await;
    let mut cfg = dra_config(Mode::Redirect, &[&p]);
    // Nothing cached: every request of the session asks the DRA again (a client that
    // sends its termination to the DRA and follows the redirect, document 002).
    cfg.dra.redirect_usage = Some(RedirectUsageToml::DontCache);
    cfg.dra.termination = Termination::Redirect;
    let d = dra(&cfg).await;
    let addr = d.listen_addrs()[0];
    let pcef = Client::connect("pcef.epc.test", GX, addr, &[&p]).await;
    let sid = "pcef.epc.test;redirect;1";
    // CCR-I: redirected to the PCRF, which the client follows and which answers it.
    let a = pcef
        .send(ccr_i(&pcef.host, sid, IMSI_1, [10, 45, 0, 2]))
        .await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    let b = d
        .store()
        .by_session(sid.into())
        .await
        .unwrap()
        .expect("bound");
    assert_eq!(b.pcrf, "pcrf.home.test");
    assert_eq!(b.ue, format!("imsi:{IMSI_1}"));
    assert_eq!(b.ipv4, Some([10, 45, 0, 2].into()));
    assert_eq!(b.apn.as_deref(), Some("internet"));

    // The redirect itself, as a client sees it (RFC 6733 §6.1.7; 29.213 §7.4.2).
    let mut raw_pcef = Raw::open(addr, "pcef2.epc.test", GX).await;
    let r = raw_pcef
        .ask(ccr_i(
            "pcef2.epc.test",
            "pcef2.epc.test;r;1",
            IMSI_2,
            [10, 45, 0, 9],
        ))
        .await;
    assert_eq!(rc(&r), Some(3006));
    assert!(r.header().flags.is_error());
    let port = p.listen_addrs()[0].port();
    assert_eq!(
        redirect_hosts(&r),
        vec![format!("aaa://pcrf.home.test:{port};transport=tcp")]
    );

    // Rx follows the Gx binding by UE address (29.213 §7.3.2).
    let mut af = Raw::open(addr, "af.epc.test", RX).await;
    let r = af
        .ask(aar("af.epc.test", "af;rx;1", Some([10, 45, 0, 2])))
        .await;
    assert_eq!(rc(&r), Some(3006));
    assert_eq!(
        redirect_hosts(&r),
        vec![format!("aaa://pcrf.home.test:{port};transport=tcp")]
    );
    let b = d
        .store()
        .by_session("af;rx;1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.sessions.len(), 2);
    // No IP-CAN session for the address: 5065 (TS 29.214 §5.5.3); no address: 5005.
    let r = af
        .ask(aar("af.epc.test", "af;rx;2", Some([10, 99, 0, 1])))
        .await;
    assert_eq!((rc(&r), experimental(&r)), (None, Some(5065)));
    let r = af.ask(aar("af.epc.test", "af;rx;3", None)).await;
    assert_eq!(rc(&r), Some(5005));
    assert!(r.find(base::FAILED_AVP.key()).is_some());
    // A Gx CCR-I without Subscription-Id cannot be bound: 5005 with Failed-AVP.
    let r = raw_pcef
        .ask(ccr("pcef2.epc.test", "pcef2.epc.test;r;2", 1, 0))
        .await;
    assert_eq!(rc(&r), Some(5005));
    assert!(r.find(base::FAILED_AVP.key()).is_some());

    // Gxx follows the Gx binding (29.213 §7.3.2): the BBERF's CCR-I, UE identity and APN
    // only, joins the entry and is sent to its PCRF.
    let mut bberf = Raw::open(addr, "bberf.epc.test", dra::binding::Interface::GXX_APP).await;
    let mut gxx = ccr_i("bberf.epc.test", "bberf;gxx;1", IMSI_1, [0, 0, 0, 0]);
    gxx.application_id = dra::binding::Interface::GXX_APP;
    gxx.avps.retain(|a| a.code != 258 && a.code != 8);
    gxx.push(base::AUTH_APPLICATION_ID.with(dra::binding::Interface::GXX_APP));
    let r = bberf.ask(gxx).await;
    assert_eq!(rc(&r), Some(3006));
    assert_eq!(
        redirect_hosts(&r),
        vec![format!("aaa://pcrf.home.test:{port};transport=tcp")]
    );
    let g = d
        .store()
        .by_session("bberf;gxx;1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((g.id.as_str(), g.sessions.len()), (b.id.as_str(), 3));

    // CCR-U: redirected to the bound PCRF again, answered there.
    let a = pcef.send(ccr(&pcef.host, sid, 2, 1)).await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    // CCR-T: the DRA marks the Gx session, redirects; the PCRF ends the session.
    let a = pcef.send(ccr(&pcef.host, sid, 3, 2)).await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    let b = d.store().by_session(sid.into()).await.unwrap().unwrap();
    let gx = b.sessions.iter().find(|s| s.session_id == sid).unwrap();
    assert_eq!(gx.state, SessionState::Terminated);
    assert!(
        p.session(sid).await.unwrap().is_none(),
        "PCRF kept the session"
    );
    // STR, then the Gxx CCR-T, the last session of the entry: the entry goes.
    let r = af.ask(str_("af.epc.test", "af;rx;1")).await;
    assert_eq!(rc(&r), Some(3006));
    assert_eq!(d.store().stats().await.unwrap().terminated_sessions, 2);
    let mut t = ccr("bberf.epc.test", "bberf;gxx;1", 3, 1);
    t.application_id = dra::binding::Interface::GXX_APP;
    t.avps.retain(|a| a.code != 258);
    t.push(base::AUTH_APPLICATION_ID.with(dra::binding::Interface::GXX_APP));
    assert_eq!(rc(&bberf.ask(t).await), Some(3006));
    assert!(
        d.store()
            .by_session("af;rx;1".into())
            .await
            .unwrap()
            .is_none()
    );
    // Only the raw PCEF's binding is left; an unknown termination is answered 5002.
    assert_eq!(d.store().stats().await.unwrap().bindings, 1);
    let r = raw_pcef
        .ask(ccr("pcef2.epc.test", "pcef2.epc.test;nope", 3, 1))
        .await;
    assert_eq!(rc(&r), Some(5002));
    let r = raw_pcef
        .ask(ccr("pcef2.epc.test", "pcef2.epc.test;r;1", 3, 1))
        .await;
    assert_eq!(rc(&r), Some(3006));
    wait_bindings(&d, 0).await;
}

#[tokio::test]
async fn redirect_mode_acknowledges_terminations_itself_when_so_configured() {
    let p = pcrf("pcrf.home.test").await;
    let cfg = dra_config(Mode::Redirect, &[&p]);
    assert_eq!(cfg.dra.termination, Termination::Ack);
    let d = dra(&cfg).await;
    let mut c = Raw::open(d.listen_addrs()[0], "pcef.epc.test", GX).await;
    let sid = "pcef.epc.test;ack;1";
    let r = c
        .ask(ccr_i("pcef.epc.test", sid, IMSI_1, [10, 45, 0, 3]))
        .await;
    assert_eq!(rc(&r), Some(3006));
    // Redirect-Host-Usage ALL_SESSION and Redirect-Max-Cache-Time 600 (RFC 6733 §6.13-14).
    assert_eq!(
        r.get(base::REDIRECT_HOST_USAGE)
            .and_then(Result::ok)
            .map(|u| u.0),
        Some(1)
    );
    assert_eq!(
        r.get(base::REDIRECT_MAX_CACHE_TIME).and_then(Result::ok),
        Some(600)
    );
    let r = c.ask(ccr("pcef.epc.test", sid, 3, 1)).await;
    // CCA-T from the DRA itself (document 002): 2001, the CCA grammar's AVPs copied.
    assert_eq!((rc(&r), origin(&r).as_str()), (Some(2001), DRA_HOST));
    assert!(!r.header().flags.is_error());
    assert_eq!(
        r.get(diameter_codec::dict::dcca::CC_REQUEST_TYPE)
            .and_then(Result::ok)
            .map(|t| t.0),
        Some(3)
    );
    wait_bindings(&d, 0).await;
}

#[tokio::test]
async fn proxy_mode_relays_both_ways_and_unbinds_on_termination() {
    let p = pcrf("pcrf.home.test").await;
    let d = dra(&dra_config(Mode::Proxy, &[&p])).await;
    let addr = d.listen_addrs()[0];
    let pcef = Client::connect("pcef.epc.test", GX, addr, &[]).await;
    let sid = "pcef.epc.test;proxy;1";
    let a = pcef
        .send(ccr_i(&pcef.host, sid, IMSI_1, [10, 45, 0, 4]))
        .await;
    // The PCRF's answer through the DRA: its rules, its Origin-Host.
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    assert!(
        a.find(diameter_codec::dict::gx::CHARGING_RULE_INSTALL.key())
            .is_some()
    );
    assert_eq!(
        d.store()
            .by_session(sid.into())
            .await
            .unwrap()
            .unwrap()
            .pcrf,
        "pcrf.home.test"
    );

    // A RAR from the PCRF reaches the PCEF through the DRA, by the binding (§7.4.1).
    let out = p
        .push(
            sid,
            &pcrf::PolicyChange {
                install: vec!["video".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.result_code, 2001);
    {
        let got = pcef.got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].session_id(), Some(sid));
        assert_eq!(got[0].header().command_code, 258);
        assert_eq!(origin(&got[0]), "pcrf.home.test");
    }

    // Rx follows the Gx binding to the same PCRF, which binds it to the Gx session.
    let af = Client::connect("af.epc.test", RX, addr, &[]).await;
    let a = af
        .send(aar(&af.host, "af;proxy;1", Some([10, 45, 0, 4])))
        .await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    let a = af
        .send(aar(&af.host, "af;proxy;2", Some([10, 45, 9, 9])))
        .await;
    assert_eq!(
        (experimental(&a), origin(&a).as_str()),
        (Some(5065), DRA_HOST)
    );
    wait_for_sessions(&d, sid, 2).await;
    // STR: forwarded, answered by the PCRF; the Rx session is marked when it came back.
    let a = af.send(str_(&af.host, "af;proxy;1")).await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );

    // CCR-T: forwarded, answered by the PCRF; the entry goes when the answer came back.
    let a = pcef.send(ccr(&pcef.host, sid, 3, 1)).await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    wait_bindings(&d, 0).await;
    let a = pcef.send(ccr(&pcef.host, sid, 2, 2)).await;
    assert_eq!((rc(&a), origin(&a).as_str()), (Some(5002), DRA_HOST));
    // An establishment the PCRF refuses (unknown subscriber, 5030) leaves no binding.
    let a = pcef
        .send(ccr_i(
            &pcef.host,
            "pcef.epc.test;proxy;2",
            "999990000000001",
            [10, 45, 0, 5],
        ))
        .await;
    assert_eq!(experimental(&a), Some(5030));
    wait_bindings(&d, 0).await;
}

async fn wait_for_sessions(d: &dra::Dra, sid: &str, n: usize) {
    let end = std::time::Instant::now() + T;
    loop {
        let b = d.store().by_session(sid.into()).await.unwrap().unwrap();
        if b.sessions.len() == n {
            return;
        }
        assert!(std::time::Instant::now() < end, "{b:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_pcrf_that_goes_down_leaves_selection_and_its_bindings_are_released() {
    let a = pcrf("pcrf.home.test").await;
    let b = pcrf("pcrf2.home.test").await;
    let d = dra(&dra_config(Mode::Proxy, &[&a, &b])).await;
    let pcef = Client::connect("pcef.epc.test", GX, d.listen_addrs()[0], &[]).await;
    let ans = pcef
        .send(ccr_i(
            &pcef.host,
            "pcef.epc.test;down;1",
            IMSI_1,
            [10, 45, 0, 6],
        ))
        .await;
    assert_eq!(rc(&ans), Some(2001));
    let chosen = origin(&ans);
    let (gone, other) = if chosen == "pcrf.home.test" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(d.store().stats().await.unwrap().bindings, 1);
    gone.shutdown(std::time::Duration::from_secs(1)).await;
    // The peer event takes it out of selection and releases its bindings.
    wait_bindings(&d, 0).await;
    wait_for(|| !d.is_healthy(&chosen), "PCRF out of selection").await;
    let ans = pcef
        .send(ccr_i(
            &pcef.host,
            "pcef.epc.test;down;2",
            IMSI_1,
            [10, 45, 0, 6],
        ))
        .await;
    assert_eq!(
        (rc(&ans), origin(&ans)),
        (Some(2001), other.node().identity().host.clone())
    );
    other.shutdown(std::time::Duration::from_secs(1)).await;
    wait_bindings(&d, 0).await;
    // No healthy PCRF: 3002 DIAMETER_UNABLE_TO_DELIVER.
    let ans = pcef
        .send(ccr_i(
            &pcef.host,
            "pcef.epc.test;down;3",
            IMSI_1,
            [10, 45, 0, 6],
        ))
        .await;
    assert_eq!((rc(&ans), origin(&ans).as_str()), (Some(3002), DRA_HOST));
    assert!(ans.header().flags.is_error());
}

/// An S9 CCR (TS 29.215 §5.6.2) from a V-PCRF.
fn s9_ccr(sid: &str, kind: i32, number: u32) -> diameter_codec::MessageBuilder {
    let mut b = ccr("vpcrf.visited.test", sid, kind, number);
    b.application_id = dra::binding::Interface::S9_APP;
    b.avps.retain(|a| a.code != 258);
    b.push(base::AUTH_APPLICATION_ID.with(dra::binding::Interface::S9_APP));
    b
}

#[tokio::test]
async fn s9_terminations_mark_the_client_sessions_they_name() {
    let p = pcrf("pcrf.home.test").await;
    let d = dra(&dra_config(Mode::Redirect, &[&p])).await;
    let addr = d.listen_addrs()[0];
    let mut vpcrf = Raw::open(addr, "vpcrf.visited.test", dra::binding::Interface::S9_APP).await;
    // S9 CCR-I: one S9 session per UE, bound per UE (29.213 §7.3.2).
    let mut i = s9_ccr("vpcrf;s9;1", 1, 0);
    i.push(diameter_codec::dict::dcca::SUBSCRIPTION_ID.with(vec![
        diameter_codec::dict::dcca::SUBSCRIPTION_ID_TYPE
            .with(diameter_codec::dict::dcca::SubscriptionIdType::END_USER_IMSI),
        diameter_codec::dict::dcca::SUBSCRIPTION_ID_DATA.with(IMSI_1.to_string()),
    ]));
    i.push(
        diameter_codec::dict::nasreq::FRAMED_IP_ADDRESS
            .with(bytes::Bytes::from_static(&[10, 45, 1, 1])),
    );
    assert_eq!(rc(&vpcrf.ask(i).await), Some(3006));
    // A home AF's Rx sessions follow it.
    let mut af = Raw::open(addr, "af.home.test", RX).await;
    for s in ["af;s9;1", "af;s9;2"] {
        assert_eq!(
            rc(&af.ask(aar("af.home.test", s, Some([10, 45, 1, 1]))).await),
            Some(3006)
        );
    }
    assert_eq!(d.store().stats().await.unwrap().active_sessions, 3);
    // A subsession ends: S9 CCR-U with Subsession-Enforcement-Info{TERMINATION} naming the
    // client session (DRA-Client-Session-Id, ours): the S9 session stays.
    let mut u = s9_ccr("vpcrf;s9;1", 2, 1);
    u.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
        s9::SUBSESSION_ID.with(1u32),
        s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation(0)),
        roaming::DRA_CLIENT_SESSION_ID.with("af;s9;1".to_string()),
    ]));
    assert_eq!(rc(&vpcrf.ask(u).await), Some(3006));
    let s = d.store().stats().await.unwrap();
    assert_eq!((s.active_sessions, s.terminated_sessions), (2, 1));
    // The last one (embodiment 10): S9 CCR-T with the remaining client Session-Id.
    let mut t = s9_ccr("vpcrf;s9;1", 3, 2);
    t.push(roaming::DRA_CLIENT_SESSION_ID.with("af;s9;2".to_string()));
    let r = vpcrf.ask(t).await;
    assert_eq!((rc(&r), origin(&r).as_str()), (Some(2001), DRA_HOST));
    wait_bindings(&d, 0).await;
}

#[tokio::test]
async fn a_restarted_client_and_a_lost_termination_leave_no_binding() {
    let p = pcrf("pcrf.home.test").await;
    let mut cfg = dra_config(Mode::Redirect, &[&p]);
    let d = dra(&cfg).await;
    let addr = d.listen_addrs()[0];
    // A PCEF binds a session, vanishes, and comes back with a new Origin-State-Id: it lost
    // its sessions (RFC 6733 §8.16), so do its bindings (faults.md, PCEF restart).
    let mut c = Raw::open_with_state(addr, "pcef.epc.test", GX, 7).await;
    let r = c
        .ask(ccr_i(
            "pcef.epc.test",
            "pcef.epc.test;osi;1",
            IMSI_1,
            [10, 45, 2, 1],
        ))
        .await;
    assert_eq!(rc(&r), Some(3006));
    assert_eq!(d.store().stats().await.unwrap().bindings, 1);
    drop(c);
    wait_for(|| !d.node().is_peer_available("pcef.epc.test"), "PCEF gone").await;
    let _c = Raw::open_with_state(addr, "pcef.epc.test", GX, 8).await;
    wait_bindings(&d, 0).await;
    d.shutdown(std::time::Duration::from_secs(1)).await;

    // A termination that never comes: the age-out audit deletes the entry.
    cfg.dra.binding_lifetime = Some(std::time::Duration::from_millis(300));
    let d = dra(&cfg).await;
    let mut c = Raw::open(d.listen_addrs()[0], "pcef.epc.test", GX).await;
    let r = c
        .ask(ccr_i(
            "pcef.epc.test",
            "pcef.epc.test;age;1",
            IMSI_1,
            [10, 45, 2, 2],
        ))
        .await;
    assert_eq!(rc(&r), Some(3006));
    assert_eq!(d.store().stats().await.unwrap().bindings, 1);
    wait_bindings(&d, 0).await;
}

#[tokio::test]
async fn per_ue_bindings_and_least_loaded_selection() {
    let a = pcrf("pcrf.home.test").await;
    let b = pcrf("pcrf2.home.test").await;
    let mut cfg = dra_config(Mode::Proxy, &[&a, &b]);
    cfg.dra.binding = dra::config::BindingScope::Ue;
    cfg.dra.selection = dra::config::Selection::LeastLoaded;
    let d = dra(&cfg).await;
    let pcef = Client::connect("pcef.epc.test", GX, d.listen_addrs()[0], &[]).await;
    // Two IP-CAN sessions (two APNs) of one UE: one entry, one PCRF.
    let first = pcef
        .send(ccr_i(
            &pcef.host,
            "pcef.epc.test;ue;1",
            IMSI_1,
            [10, 45, 3, 1],
        ))
        .await;
    let mut second = ccr(&pcef.host, "pcef.epc.test;ue;2", 1, 0);
    second.push(diameter_codec::dict::dcca::SUBSCRIPTION_ID.with(vec![
        diameter_codec::dict::dcca::SUBSCRIPTION_ID_TYPE
            .with(diameter_codec::dict::dcca::SubscriptionIdType::END_USER_IMSI),
        diameter_codec::dict::dcca::SUBSCRIPTION_ID_DATA.with(IMSI_1.to_string()),
    ]));
    second.push(diameter_codec::dict::nasreq::CALLED_STATION_ID.with("ims"));
    let second = pcef.send(second).await;
    assert_eq!((rc(&first), rc(&second)), (Some(2001), Some(2001)));
    assert_eq!(origin(&first), origin(&second));
    let s = d.store().stats().await.unwrap();
    assert_eq!((s.bindings, s.active_sessions), (1, 2));
    // Least loaded: nothing pending anywhere, the PCRF not measured yet (latency 0) comes
    // before the one that answered; then its latency is measured too.
    let third = pcef
        .send(ccr_i(
            &pcef.host,
            "pcef.epc.test;ue;3",
            IMSI_2,
            [10, 45, 3, 2],
        ))
        .await;
    assert_eq!(rc(&third), Some(2001));
    assert_ne!(origin(&third), origin(&first));
    let measured = d.pcrfs().get(&origin(&third)).unwrap().latency_us();
    assert!(measured > 0, "no latency measured for {}", origin(&third));
    assert!(d.pcrfs().all().iter().all(|p| p.pending() == 0));
    for sid in [
        "pcef.epc.test;ue;1",
        "pcef.epc.test;ue;2",
        "pcef.epc.test;ue;3",
    ] {
        assert_eq!(rc(&pcef.send(ccr(&pcef.host, sid, 3, 1)).await), Some(2001));
    }
    wait_bindings(&d, 0).await;
}

#[tokio::test]
async fn the_mode_is_chosen_per_realm_and_application() {
    let p = pcrf("pcrf.home.test").await;
    let mut cfg = dra_config(Mode::Proxy, &[&p]);
    // Rx redirected, everything else proxied (as dra/examples/proxy.toml).
    cfg.modes.push(dra::config::ModeRule {
        realm: HOME.into(),
        application: Some(RX),
        mode: Mode::Redirect,
    });
    let d = dra(&cfg).await;
    let addr = d.listen_addrs()[0];
    let pcef = Client::connect("pcef.epc.test", GX, addr, &[]).await;
    let sid = "pcef.epc.test;mixed;1";
    let a = pcef
        .send(ccr_i(&pcef.host, sid, IMSI_1, [10, 45, 4, 1]))
        .await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    let mut af = Raw::open(addr, "af.epc.test", RX).await;
    let r = af
        .ask(aar("af.epc.test", "af;mixed;1", Some([10, 45, 4, 1])))
        .await;
    assert_eq!(rc(&r), Some(3006));
    assert_eq!(
        d.store()
            .by_session("af;mixed;1".into())
            .await
            .unwrap()
            .unwrap()
            .sessions[1]
            .mode,
        Mode::Redirect
    );
    // Rx ends (redirect mode, acknowledged by the DRA), then Gx (proxied): nothing left.
    let r = af.ask(str_("af.epc.test", "af;mixed;1")).await;
    assert_eq!((rc(&r), origin(&r).as_str()), (Some(2001), DRA_HOST));
    let a = pcef.send(ccr(&pcef.host, sid, 3, 1)).await;
    assert_eq!(
        (rc(&a), origin(&a).as_str()),
        (Some(2001), "pcrf.home.test")
    );
    wait_bindings(&d, 0).await;
}
