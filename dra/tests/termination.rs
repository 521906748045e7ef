//! Document 002 end to end, home network only: pcef-sim's BBERF (Gxx), PCEF (Gx) and AF
//! (Rx) in front of the DRA and the real home PCRF on loopback, each client ending its
//! session the way `diameter_service::dra_client` says — through the DRA when it proxied
//! the session; when it redirected it, to DRA and PCRF in parallel or to the DRA following
//! its redirect — against a DRA that acknowledges terminations itself or redirects them.
//! Detach runs in document 002's order: BBERF ends Gxx, the PCEF ends Gx, the PCRF tells
//! the AF its IP-CAN session is gone (steps 914–918) and the AF ends Rx. A BBERF
//! reselection ends the old Gxx session alone (embodiments 1, 4, 7). A V-PCRF (an S9 client
//! node on the same DRA client) ends a subsession with an S9 CCR-U the hDRA hears of, then
//! S9 with its CCR-T (claims 5–7, 13). After each run the DRA's operator endpoint lists no
//! binding and the PCRF holds no session.

mod common;

use common::*;
use diameter_codec::dict::base::TerminationCause;
use diameter_service::dra_client::TerminationBehaviour;
use dra::binding::{Mode, SessionState};
use dra::config::Termination;
use pcef_sim::af::{Af, AfOptions};
use pcef_sim::bberf::{Bberf, BberfOptions};
use pcef_sim::client::{Endpoint, Terminated};
use pcef_sim::gx::{GxOptions, GxReport};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The home network: PCRF, DRA and the DRA's operator endpoint.
struct Home {
    pcrf: pcrf::Pcrf,
    dra: Arc<dra::Dra>,
    admin: SocketAddr,
    behaviour: TerminationBehaviour,
}

impl Home {
    async fn start(mode: Mode, termination: Termination, behaviour: TerminationBehaviour) -> Self {
        Self::start_with(mode, termination, behaviour, |_| {}).await
    }

    /// As [`Home::start`], the DRA's configuration changed by `tweak` first.
    async fn start_with(
        mode: Mode,
        termination: Termination,
        behaviour: TerminationBehaviour,
        tweak: impl FnOnce(&mut dra::Config),
    ) -> Self {
        // The demo PCRF, taking S9 from its roaming partner also through its own DRA
        // (a proxy hDRA relays the V-PCRF's S9).
        let mut pc = pcrf::Config::demo();
        pc.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
        pc.pcrf.admin = None;
        for partner in &mut pc.pcrf.roaming_partners {
            partner.peers.push(DRA_HOST.into());
        }
        let p = pcrf::Pcrf::start(&pc).await.unwrap();
        let mut cfg = dra_config(mode, &[&p]);
        cfg.dra.termination = termination;
        tweak(&mut cfg);
        let d = Arc::new(dra(&cfg).await);
        let (admin, _task) = dra::admin::serve(d.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Self {
            pcrf: p,
            dra: d,
            admin,
            behaviour,
        }
    }

    /// A client endpoint of `host` at the DRA, knowing where the PCRF listens (its name
    /// does not resolve).
    fn endpoint(&self, host: &str) -> Endpoint {
        let mut ep = Endpoint::direct(self.dra.listen_addrs()[0], DRA_HOST, HOME, host, "epc.test");
        ep.peers = vec![("pcrf.home.test".to_string(), self.pcrf.listen_addrs()[0])];
        ep.dra = Some(self.behaviour);
        ep
    }

    fn bberf(&self, host: &str, ip: [u8; 4]) -> BberfOptions {
        BberfOptions {
            endpoint: self.endpoint(host),
            subscriber: imsi_1(),
            ue_ip: Some(IpAddr::from(ip)),
            apn: "internet".into(),
            rat_type: 1004,
            timeout: T,
        }
    }

    fn pcef(&self, ip: [u8; 4], duration: Duration) -> GxOptions {
        pcef_options(self.endpoint("pcef.epc.test"), ip, "internet", duration)
    }

    fn af(&self, ip: [u8; 4]) -> AfOptions {
        af_options(self.endpoint("af.epc.test"), ip)
    }

    /// Active sessions bound at the DRA.
    async fn active(&self) -> u64 {
        self.dra.store().stats().await.unwrap().active_sessions
    }

    async fn wait_active(&self, n: u64) {
        let end = std::time::Instant::now() + T;
        while self.active().await != n {
            assert!(
                std::time::Instant::now() < end,
                "DRA never had {n} active sessions"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Nothing left: the DRA's operator endpoint lists no binding, and the PCRF holds no
    /// Gx, Rx or (of `gxx`) Gxx session.
    async fn assert_empty(&self, gxx: &[&str]) {
        let end = std::time::Instant::now() + T;
        loop {
            let (status, body) = dra::admin::get(self.admin, "/bindings").await.unwrap();
            assert_eq!(status, 200);
            if body["stats"]["bindings"] == 0 && body["bindings"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < end, "DRA kept {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(self.pcrf.sessions().count().await.unwrap(), 0, "Gx left");
        assert_eq!(self.pcrf.rx_sessions().count().await.unwrap(), 0, "Rx left");
        for g in gxx {
            assert!(
                self.pcrf.gxx_session(g).await.unwrap().is_none(),
                "Gxx {g} left"
            );
        }
    }
}

fn result_of(t: &Terminated) -> Option<u32> {
    let m = match &t.answer {
        Ok(m) => m,
        Err(diameter_node::node::RequestError::Protocol { answer, .. }) => answer,
        Err(e) => panic!("termination not answered: {e}"),
    };
    rc(m)
}

/// The way a termination is expected to go, and the DRA's own answer.
fn expected(home: &Home, mode: Mode, termination: Termination) -> (&'static str, Option<u32>) {
    expected_termination(mode, home.behaviour, termination)
}

fn assert_ended(t: &Terminated, want: (&'static str, Option<u32>), what: &str) {
    assert_eq!(result_of(t), Some(2001), "{what}: {t:?}");
    assert_eq!((t.path, t.dra_result), (Some(want.0), want.1), "{what}");
}

fn assert_gx_ended(r: &GxReport, want: (&'static str, Option<u32>)) {
    assert!(r.accepted, "{r:?}");
    let t = r.exchanges.last().unwrap();
    assert_eq!(
        (t.kind, t.result_code),
        ("termination", Some(2001)),
        "{r:?}"
    );
    assert_eq!((t.dra_path, t.dra_result), (Some(want.0), want.1), "Gx");
}

/// Attach (BBERF, PCEF, AF) and detach in document 002's order; everything gone after.
async fn attach_and_detach(mode: Mode, termination: Termination, behaviour: TerminationBehaviour) {
    let home = Home::start(mode, termination, behaviour).await;
    let want = expected(&home, mode, termination);
    let ip = [10, 45, 7, 1];
    let (bberf, code) = Bberf::attach(&home.bberf("bberf.epc.test", ip))
        .await
        .unwrap();
    assert_eq!(code, Some(2001));
    let gxx = bberf.session_id().to_string();
    let pcef = tokio::spawn({
        let mut o = home.pcef(ip, Duration::from_millis(2500));
        // A RAT change the PCRF armed: a CCR-U within the session, to the PCRF the DRA
        // redirected to, or through the proxy.
        o.events = vec![pcef_sim::gx::GxEvent::parse("0.2:rat:utran").unwrap()];
        async move { pcef_sim::gx::run(&o).await.unwrap() }
    });
    home.wait_active(2).await;
    let (mut af, code) = Af::open(&home.af(ip)).await.unwrap();
    assert_eq!(code, Some(2001));
    home.wait_active(3).await;
    // All three bound to one IP-CAN session entry and one PCRF.
    let b = home
        .dra
        .store()
        .by_session(af.session_id().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.sessions.len(), b.pcrf.as_str()), (3, "pcrf.home.test"));

    // Detach: Gxx first (the entry stays for Gx and Rx), then Gx.
    let t = bberf.detach(TerminationCause::DIAMETER_LOGOUT).await;
    assert_ended(&t, want, "Gxx");
    let b = home
        .dra
        .store()
        .by_session(gxx.clone())
        .await
        .unwrap()
        .expect("entry kept for Gx and Rx");
    let state = b
        .sessions
        .iter()
        .find(|s| s.session_id == gxx)
        .unwrap()
        .state;
    assert_eq!(state, SessionState::Terminated);
    let report = pcef.await.unwrap();
    assert_gx_ended(&report, want);
    let kinds: Vec<_> = report
        .exchanges
        .iter()
        .map(|e| (e.kind, e.result_code))
        .collect();
    assert_eq!(
        kinds,
        [
            ("initial", Some(2001)),
            ("update", Some(2001)),
            ("termination", Some(2001))
        ]
    );
    // The PCRF tells the AF its IP-CAN session is gone (document 002 steps 914–918; an RAR,
    // since the AF subscribed), the AF acknowledged and ends Rx: the entry goes.
    let loss = af.loss(T).await.expect("loss of transport notified");
    assert_eq!(loss.command, "rar");
    let t = af.close(TerminationCause::DIAMETER_ADMINISTRATIVE).await;
    assert_ended(&t, want, "Rx");
    home.assert_empty(&[&gxx]).await;
}

#[tokio::test]
async fn redirect_dra_acknowledging_with_clients_sending_in_parallel() {
    attach_and_detach(
        Mode::Redirect,
        Termination::Ack,
        TerminationBehaviour::Parallel,
    )
    .await;
}

#[tokio::test]
async fn redirect_dra_redirecting_with_clients_following_the_redirect() {
    attach_and_detach(
        Mode::Redirect,
        Termination::Redirect,
        TerminationBehaviour::Redirect,
    )
    .await;
}

#[tokio::test]
async fn redirect_dra_redirecting_with_clients_sending_in_parallel() {
    attach_and_detach(
        Mode::Redirect,
        Termination::Redirect,
        TerminationBehaviour::Parallel,
    )
    .await;
}

#[tokio::test]
async fn redirect_dra_acknowledging_with_clients_expecting_a_redirect() {
    attach_and_detach(
        Mode::Redirect,
        Termination::Ack,
        TerminationBehaviour::Redirect,
    )
    .await;
}

#[tokio::test]
async fn proxy_dra_carries_every_termination() {
    for behaviour in [
        TerminationBehaviour::Parallel,
        TerminationBehaviour::Redirect,
    ] {
        attach_and_detach(Mode::Proxy, Termination::Ack, behaviour).await;
    }
}

/// Embodiments 1, 4, 7: the UE moves to another BBERF, which opens its Gxx session; the
/// old BBERF ends its own (DIAMETER_USER_MOVED) while Gx and the new Gxx go on.
async fn bberf_reselection(mode: Mode, behaviour: TerminationBehaviour) {
    let home = Home::start(mode, Termination::Ack, behaviour).await;
    let want = expected(&home, mode, Termination::Ack);
    let ip = [10, 45, 8, 1];
    let (old, code) = Bberf::attach(&home.bberf("bberf.epc.test", ip))
        .await
        .unwrap();
    assert_eq!(code, Some(2001));
    let pcef = tokio::spawn({
        let o = home.pcef(ip, Duration::from_millis(2500));
        async move { pcef_sim::gx::run(&o).await.unwrap() }
    });
    home.wait_active(2).await;
    let (new, code) = Bberf::attach(&home.bberf("bberf2.epc.test", ip))
        .await
        .unwrap();
    assert_eq!(code, Some(2001));
    home.wait_active(3).await;
    let (old_id, new_id) = (old.session_id().to_string(), new.session_id().to_string());
    let t = old.detach(TerminationCause::DIAMETER_USER_MOVED).await;
    assert_ended(&t, want, "old Gxx");
    assert!(home.pcrf.gxx_session(&old_id).await.unwrap().is_none());
    assert!(home.pcrf.gxx_session(&new_id).await.unwrap().is_some());
    home.wait_active(2).await;
    let s = home.dra.store().stats().await.unwrap();
    assert_eq!((s.bindings, s.terminated_sessions), (1, 1));
    // Detach as usual.
    let t = new.detach(TerminationCause::DIAMETER_LOGOUT).await;
    assert_ended(&t, want, "new Gxx");
    assert_gx_ended(&pcef.await.unwrap(), want);
    home.assert_empty(&[&old_id, &new_id]).await;
}

#[tokio::test]
async fn a_reselected_bberf_ends_its_gxx_session_alone_redirect_dra() {
    bberf_reselection(Mode::Redirect, TerminationBehaviour::Parallel).await;
}

#[tokio::test]
async fn a_reselected_bberf_ends_its_gxx_session_alone_proxy_dra() {
    bberf_reselection(Mode::Proxy, TerminationBehaviour::Redirect).await;
}

/// An AF that ends its own session while the IP-CAN session goes on (Rx termination
/// without detach), the Gx session ending after.
#[tokio::test]
async fn an_af_session_ends_before_the_ip_can_session() {
    for (mode, termination, behaviour) in [
        (
            Mode::Redirect,
            Termination::Redirect,
            TerminationBehaviour::Redirect,
        ),
        (
            Mode::Proxy,
            Termination::Ack,
            TerminationBehaviour::Parallel,
        ),
    ] {
        let home = Home::start(mode, termination, behaviour).await;
        let want = expected(&home, mode, termination);
        let ip = [10, 45, 9, 1];
        let pcef = tokio::spawn({
            let o = home.pcef(ip, Duration::from_millis(2000));
            async move { pcef_sim::gx::run(&o).await.unwrap() }
        });
        home.wait_active(1).await;
        let (af, code) = Af::open(&home.af(ip)).await.unwrap();
        assert_eq!(code, Some(2001));
        home.wait_active(2).await;
        let t = af.close(TerminationCause::DIAMETER_LOGOUT).await;
        assert_ended(&t, want, "Rx");
        home.wait_active(1).await;
        assert_eq!(home.pcrf.rx_sessions().count().await.unwrap(), 0);
        assert_gx_ended(&pcef.await.unwrap(), want);
        home.assert_empty(&[]).await;
    }
}

/// The control: a client that does not tell a redirect DRA (its CCR-T follows the cached
/// redirect straight to the PCRF) leaves the binding behind — what document 002 fixes.
#[tokio::test]
async fn a_client_that_does_not_tell_the_redirect_dra_leaves_its_binding() {
    let home = Home::start(
        Mode::Redirect,
        Termination::Ack,
        TerminationBehaviour::Parallel,
    )
    .await;
    let mut o = home.bberf("bberf.epc.test", [10, 45, 10, 1]);
    o.endpoint.dra = None;
    let (bberf, code) = Bberf::attach(&o).await.unwrap();
    assert_eq!(code, Some(2001));
    let id = bberf.session_id().to_string();
    let t = bberf.detach(TerminationCause::DIAMETER_LOGOUT).await;
    assert_eq!((result_of(&t), t.path), (Some(2001), None));
    assert!(home.pcrf.gxx_session(&id).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, body) = dra::admin::get(home.admin, "/bindings").await.unwrap();
    assert_eq!(body["stats"]["bindings"], 1, "{body}");
    assert_eq!(body["stats"]["active_sessions"], 1, "{body}");
}

/// A V-PCRF: an S9 client node of realm visited.test in front of the hDRA, ending its S9
/// sessions through `diameter_service::dra_client` (document 002 claims 5–7).
async fn vpcrf(home: &Home) -> diameter_service::dra_client::DraClient {
    let s9 = dra::binding::Interface::S9_APP;
    let mut cfg = client_config(
        "pcrf.visited.test",
        "visited.test",
        s9,
        DRA_HOST,
        HOME,
        home.dra.listen_addrs()[0],
    );
    cfg.host_map
        .insert("pcrf.home.test".into(), home.pcrf.listen_addrs()[0]);
    let node = diameter_node::node::Node::start(cfg).await.unwrap();
    assert!(node.wait_peer(DRA_HOST, T).await);
    diameter_service::dra_client::DraClient::new(node, DRA_HOST, home.behaviour)
}

/// An S9 CCR (TS 29.215 §5.6.2) of the V-PCRF with `avps`.
fn s9_ccr(
    sid: &str,
    kind: i32,
    number: u32,
    avps: Vec<diameter_codec::OwnedAvp>,
) -> diameter_codec::MessageBuilder {
    use diameter_codec::dict::{base, dcca};
    let s9 = dra::binding::Interface::S9_APP;
    let mut b = diameter_codec::MessageBuilder::request(272, s9, true);
    b.push(base::SESSION_ID.with(sid.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(s9));
    b.push(base::ORIGIN_HOST.with("pcrf.visited.test"));
    b.push(base::ORIGIN_REALM.with("visited.test"));
    b.push(base::DESTINATION_REALM.with(HOME));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
    b.push(dcca::CC_REQUEST_NUMBER.with(number));
    for a in avps {
        b.push(a);
    }
    b
}

/// The V-PCRF's S9 CCR-I for subscriber IMSI_1 with one Gx subsession (ESTABLISHMENT) per
/// (id, UE address, APN).
fn s9_establishment(sid: &str, subs: &[(u32, [u8; 4], &str)]) -> diameter_codec::MessageBuilder {
    use diameter_codec::dict::{dcca, gx, nasreq};
    let mut avps = vec![dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(IMSI_1.to_string()),
    ])];
    for (id, ip, apn) in subs {
        avps.push(subsession(
            *id,
            1,
            vec![
                nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(ip)),
                nasreq::CALLED_STATION_ID.with(apn.to_string()),
                gx::RAT_TYPE.with(gx::RatType(1004)),
            ],
        ));
    }
    s9_ccr(sid, 1, 0, avps)
}

/// Subsession-Enforcement-Info for subsession `id` with operation `op` and `more`.
fn subsession(id: u32, op: i32, more: Vec<diameter_codec::OwnedAvp>) -> diameter_codec::OwnedAvp {
    use diameter_codec::dict::s9;
    let mut v = vec![
        s9::SUBSESSION_ID.with(id),
        s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation(op)),
    ];
    v.extend(more);
    s9::SUBSESSION_ENFORCEMENT_INFO.with(v)
}

/// The V-PCRF towards the hDRA: S9 established through it, one subsession ended (an S9
/// CCR-U the hDRA must hear of, claim 13), then the last one with the S9 CCR-T; nothing
/// left at the hDRA or the home PCRF.
async fn s9_through_the_home_dra(
    mode: Mode,
    termination: Termination,
    behaviour: TerminationBehaviour,
) {
    use diameter_codec::dict::roaming;
    let home = Home::start(mode, termination, behaviour).await;
    let want = expected(&home, mode, termination);
    let v = vpcrf(&home).await;
    let sid = "pcrf.visited.test;s9;1";
    let a = v
        .establish(s9_establishment(
            sid,
            &[(1, [10, 46, 0, 2], "internet"), (2, [10, 46, 0, 3], "ims")],
        ))
        .await
        .unwrap();
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    let handled = v.handling(sid).expect("handling recorded");
    match mode {
        Mode::Redirect => assert_eq!(
            handled,
            diameter_service::dra_client::Handling::Redirected {
                pcrf: "pcrf.home.test".into()
            }
        ),
        Mode::Proxy => assert_eq!(handled, diameter_service::dra_client::Handling::Proxied),
    }
    assert_eq!(home.active().await, 1);
    // Subsession 1 ends (its Gx session at the visited side, named for the hDRA in our
    // DRA-Client-Session-Id): S9 goes on.
    let e = v
        .end_subsessions(s9_ccr(
            sid,
            2,
            1,
            vec![subsession(
                1,
                0,
                vec![roaming::DRA_CLIENT_SESSION_ID.with("pcef.visited.test;gx;1".to_string())],
            )],
        ))
        .await;
    assert_eq!(e.pcrf_result(), Some(2001), "{e:?}");
    // A subsession end is an update for the hDRA: redirected in redirect mode, whatever
    // `termination` says.
    let dra_answer = match (mode, behaviour) {
        (Mode::Redirect, TerminationBehaviour::Parallel) => Some(3006),
        _ => None,
    };
    assert_eq!((e.path.as_str(), e.dra_result()), (want.0, dra_answer));
    let s = home
        .pcrf
        .s9_session(sid)
        .await
        .unwrap()
        .expect("S9 goes on");
    assert_eq!(s.subsessions.keys().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(v.handling(sid), Some(handled));
    // The last one: the S9 CCR-T (embodiment 10).
    let e = v
        .terminate(s9_ccr(
            sid,
            3,
            2,
            vec![roaming::DRA_CLIENT_SESSION_ID.with("pcef.visited.test;gx;2".to_string())],
        ))
        .await;
    assert!(e.is_success(), "{e:?}");
    assert_eq!((e.path.as_str(), e.dra_result()), want);
    assert_eq!(v.handling(sid), None);
    assert!(home.pcrf.s9_session(sid).await.unwrap().is_none());
    home.assert_empty(&[]).await;
}

#[tokio::test]
async fn a_v_pcrf_ends_s9_through_a_redirect_home_dra_in_parallel() {
    s9_through_the_home_dra(
        Mode::Redirect,
        Termination::Ack,
        TerminationBehaviour::Parallel,
    )
    .await;
}

#[tokio::test]
async fn a_v_pcrf_ends_s9_following_the_home_dra_redirect() {
    s9_through_the_home_dra(
        Mode::Redirect,
        Termination::Redirect,
        TerminationBehaviour::Redirect,
    )
    .await;
}

#[tokio::test]
async fn a_v_pcrf_ends_s9_through_a_proxy_home_dra() {
    s9_through_the_home_dra(
        Mode::Proxy,
        Termination::Ack,
        TerminationBehaviour::Parallel,
    )
    .await;
}

/// Issue 13 item 1's proxy variant: only the establishment goes through the proxy hDRA,
/// the V-PCRF then talks to the H-PCRF directly, and what ends the session goes through
/// the DRA again, which marks it and leaves no binding.
#[tokio::test]
async fn a_client_talking_directly_after_a_proxied_establishment_still_ends_through_the_dra() {
    use diameter_service::dra_client::Handling;
    let home = Home::start(
        Mode::Proxy,
        Termination::Ack,
        TerminationBehaviour::Parallel,
    )
    .await;
    let v = vpcrf(&home).await.with_direct_after_proxy(true);
    let sid = "pcrf.visited.test;s9;direct";
    let a = v
        .establish(s9_establishment(sid, &[(1, [10, 46, 0, 9], "internet")]))
        .await
        .unwrap();
    assert_eq!(rc(&a), Some(2001), "{a:?}");
    assert_eq!(
        v.handling(sid),
        Some(Handling::ProxiedFirst {
            pcrf: "pcrf.home.test".into()
        })
    );
    assert!(
        !v.node().is_peer_available("pcrf.home.test"),
        "the establishment went through the DRA"
    );
    assert_eq!(home.active().await, 1);
    // An update goes to the H-PCRF directly: the V-PCRF opens a connection to it.
    let u = v.request(s9_ccr(sid, 2, 1, vec![])).await.unwrap();
    assert_eq!(rc(&u), Some(2001), "{u:?}");
    assert!(v.node().is_peer_available("pcrf.home.test"));
    // The termination through the DRA: marked there, the entry gone.
    let e = v.terminate(s9_ccr(sid, 3, 2, vec![])).await;
    assert!(e.is_success(), "{e:?}");
    assert_eq!(e.path.as_str(), "proxied");
    assert!(home.pcrf.s9_session(sid).await.unwrap().is_none());
    home.assert_empty(&[]).await;
}

/// A redirect DRA binds a session before the PCRF has seen it and never sees the PCRF's
/// answer: when the PCRF refuses the establishment (an unknown subscriber, 5030), the
/// client tells the DRA, which keeps no binding.
#[tokio::test]
async fn an_establishment_the_pcrf_refuses_after_a_redirect_leaves_no_binding() {
    for termination in [Termination::Ack, Termination::Redirect] {
        let home = Home::start(Mode::Redirect, termination, TerminationBehaviour::Parallel).await;
        let mut o = home.bberf("bberf.epc.test", [10, 45, 11, 1]);
        o.subscriber.data = "999990000000001".into();
        let (bberf, code) = Bberf::attach(&o).await.unwrap();
        assert_eq!(code, Some(5030));
        let mut o = home.pcef([10, 45, 11, 2], Duration::from_millis(100));
        o.subscriber.data = "999990000000002".into();
        let r = pcef_sim::gx::run(&o).await.unwrap();
        assert!(!r.accepted);
        home.assert_empty(&[bberf.session_id()]).await;
    }
}

/// Per-UE bindings (`binding = "ue"`): two IP-CAN sessions of one UE (two APNs) share the
/// entry, which goes only with the last of their sessions (document 002 step 4, "or UE").
#[tokio::test]
async fn a_per_ue_entry_goes_with_the_last_session_of_the_ue() {
    let home = Home::start_with(
        Mode::Redirect,
        Termination::Redirect,
        TerminationBehaviour::Parallel,
        |cfg| cfg.dra.binding = dra::config::BindingScope::Ue,
    )
    .await;
    let want = expected(&home, Mode::Redirect, Termination::Redirect);
    let internet = tokio::spawn({
        let o = home.pcef([10, 45, 12, 1], Duration::from_millis(1000));
        async move { pcef_sim::gx::run(&o).await.unwrap() }
    });
    let ims = tokio::spawn({
        let mut o = home.pcef([10, 45, 12, 2], Duration::from_millis(3000));
        o.apn = "ims".into();
        o.endpoint.origin_host = "pcef2.epc.test".into();
        async move { pcef_sim::gx::run(&o).await.unwrap() }
    });
    home.wait_active(2).await;
    assert_eq!(home.dra.store().stats().await.unwrap().bindings, 1);
    assert_gx_ended(&internet.await.unwrap(), want);
    // One IP-CAN session ended; the UE's entry stays for the other.
    let s = home.dra.store().stats().await.unwrap();
    assert_eq!((s.bindings, s.active_sessions), (1, 1));
    assert_gx_ended(&ims.await.unwrap(), want);
    home.assert_empty(&[]).await;
}
