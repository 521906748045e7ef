//! Document 002 end to end across two networks: pcef-sim's PCEF (Gx), BBERF (Gxx) and AF
//! (Rx) in the visited network in front of a visited DRA and the real V-PCRF, which serves
//! the roaming UE over S9 from the real H-PCRF behind a home DRA, each DRA in redirect or
//! proxy mode (the four combinations: embodiments 1–3, 4–6, 7–9 and vDRA proxy / hDRA
//! proxy). The V-PCRF is the home DRA's client (`[[pcrf.visited.home]] dra`) as pcef-sim is
//! the visited DRA's: it remembers whether the hDRA redirected or proxied its S9
//! establishment and ends S9 accordingly, in parallel to hDRA and H-PCRF or following the
//! hDRA's redirect (claims 5–7). The visited AF's Rx session is relayed home by the V-PCRF.
//!
//! Each IP-CAN session has a BBERF whose Gxx session the vDRA binds to the PCEF's Gx
//! session's entry (the PMIP order: the BBERF attaches first) and the V-PCRF carries as a
//! subsession of the IP-CAN session's S9 session. BBERF reselection (embodiments 1, 4, 7):
//! the UE moves to another BBERF, which opens its Gxx session; the old BBERF ends its own
//! (DIAMETER_USER_MOVED) through the vDRA as it remembered, and the binding, the S9 session
//! and the Gx session go on.
//!
//! Detach (embodiments 6 and 9): each BBERF ends Gxx, then its PCEF ends Gx; the H-PCRF
//! tells the AF through the V-PCRF that its IP-CAN session is gone (steps 914–918), the AF
//! acknowledges and ends Rx. Per-session S9 (embodiments 1–9): each IP-CAN session's end
//! ends its own S9 session at the hDRA. Per-UE S9 (embodiment 10): ends before the last
//! only end subsessions and the S9 session stays bound at the hDRA; the last one ends it.
//! After every run both DRAs' operator endpoints list no binding, and neither PCRF holds a
//! session.

mod common;

use common::{HOME, T, af_options, dra, dra_config, expected_termination, imsi_1, pcef_options};
use diameter_codec::dict::base::TerminationCause;
use diameter_node::config::{PeerToml, RoutePeerToml, TimersToml};
use diameter_service::dra_client::{Handling, TerminationBehaviour};
use dra::binding::{Interface, Mode, SessionState};
use dra::config::Termination;
use pcef_sim::af::{Af, AfOptions};
use pcef_sim::bberf::{Bberf, BberfOptions};
use pcef_sim::client::{Endpoint, Terminated};
use pcef_sim::gx::{GxOptions, GxReport};
use pcrf::visited::Interface as RoamingInterface;
use pcrf::visited::config::S9Model;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const HDRA: &str = "dra.home.test";
const VDRA: &str = "dra.visited.test";
const VISITED: &str = "visited.test";
const VPCRF: &str = "pcrf.visited.test";
const HPCRF: &str = "pcrf.home.test";
/// The realm of the visited PCEFs and AF.
const EPC: &str = "epc.test";
const S9_APP: u32 = 16_777_267;
const RX_APP: u32 = 16_777_236;

/// One run's settings.
#[derive(Debug, Clone, Copy)]
struct Setup {
    vdra: Mode,
    hdra: Mode,
    model: S9Model,
    /// Of pcef-sim towards the vDRA and of the V-PCRF towards the hDRA.
    behaviour: TerminationBehaviour,
    /// Of both DRAs for terminations of redirected sessions.
    termination: Termination,
}

/// A DRA with its operator endpoint.
struct DraUnder {
    dra: Arc<dra::Dra>,
    admin: SocketAddr,
}

impl DraUnder {
    async fn start(cfg: &dra::Config) -> Self {
        let d = Arc::new(dra(cfg).await);
        let (admin, _task) = dra::admin::serve(d.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Self { dra: d, admin }
    }

    /// The entry holding `session`, and the session's state in it.
    async fn state_of(&self, session: &str) -> Option<SessionState> {
        let b = self
            .dra
            .store()
            .by_session(session.to_string())
            .await
            .unwrap()?;
        b.sessions
            .iter()
            .find(|s| s.session_id == session)
            .map(|s| s.state)
    }

    /// Sessions of `iface` bound and active.
    async fn active(&self, iface: Interface) -> usize {
        let (status, body) = dra::admin::get(self.admin, "/bindings").await.unwrap();
        assert_eq!(status, 200);
        body["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| b["sessions"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["interface"] == iface.as_str() && s["state"].as_str() == Some("active"))
            .count()
    }

    /// Waits until the operator endpoint lists no binding.
    async fn assert_empty(&self, what: &str) {
        let end = Instant::now() + T;
        loop {
            let (status, body) = dra::admin::get(self.admin, "/bindings").await.unwrap();
            assert_eq!(status, 200);
            if body["stats"]["bindings"] == 0 && body["bindings"].as_array().unwrap().is_empty() {
                return;
            }
            assert!(Instant::now() < end, "{what} kept {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Both networks.
struct World {
    setup: Setup,
    hpcrf: pcrf::Pcrf,
    hdra: DraUnder,
    vpcrf: pcrf::Pcrf,
    vdra: DraUnder,
}

impl World {
    async fn start(setup: Setup) -> Self {
        // The H-PCRF (the demo), taking S9 from pcrf.visited.test directly or through its
        // DRA; its built-in default route sends requests for others' peers to the hDRA.
        let mut hc = pcrf::Config::demo();
        hc.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
        hc.pcrf.admin = None;
        for partner in &mut hc.pcrf.roaming_partners {
            partner.peers.push(HDRA.into());
        }
        let hpcrf = pcrf::Pcrf::start(&hc).await.unwrap();
        let mut c = dra_config(setup.hdra, &[&hpcrf]);
        c.dra.termination = setup.termination;
        let hdra = DraUnder::start(&c).await;

        // The V-PCRF of pcrf/examples/visited.toml, S9 through the hDRA as its client.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcrf/examples/visited.toml");
        let mut vc = pcrf::Config::load(&path).unwrap();
        vc.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
        vc.node.request_timeout = Some(T);
        vc.pcrf.admin = None;
        vc.node.peers = vec![PeerToml {
            host: HDRA.into(),
            connect: Some(hdra.dra.listen_addrs()[0]),
            transport: Default::default(),
            tls: None,
            timers: Some(TimersToml {
                tc: Some(Duration::from_millis(100)),
                ..TimersToml::default()
            }),
            forwards: false,
            addresses: Vec::new(),
        }];
        // S9 and the relayed Rx to the home realm through the hDRA; RARs to the visited
        // PCEFs and AF not connected here through the vDRA.
        let route = |realm: &str, application: Option<u32>, peer: &str| {
            let mut r = vc.node.routes[0].clone();
            r.realm = realm.into();
            r.application = application;
            r.peers = vec![RoutePeerToml {
                host: peer.into(),
                priority: None,
                weight: None,
            }];
            r
        };
        vc.node.routes = vec![
            route(HOME, Some(S9_APP), HDRA),
            route(HOME, Some(RX_APP), HDRA),
            route(EPC, None, VDRA),
        ];
        // The H-PCRF the hDRA redirects to.
        vc.node.hosts.insert(HPCRF.into(), hpcrf.listen_addrs()[0]);
        let v = vc.pcrf.visited.as_mut().unwrap();
        v.s9_model = setup.model;
        v.dra_termination = setup.behaviour;
        v.homes[0].pcrf = None;
        v.homes[0].dra = Some(HDRA.into());
        let vpcrf = pcrf::Pcrf::start(&vc).await.unwrap();
        assert!(vpcrf.node().wait_peer(HDRA, T).await, "V-PCRF to hDRA");

        let mut c = dra_config(setup.vdra, &[&vpcrf]);
        c.node.origin_host = VDRA.into();
        c.node.origin_realm = VISITED.into();
        c.dra.termination = setup.termination;
        let vdra = DraUnder::start(&c).await;
        Self {
            setup,
            hpcrf,
            hdra,
            vpcrf,
            vdra,
        }
    }

    fn visited(&self) -> &pcrf::visited::Visited {
        self.vpcrf.visited().unwrap()
    }

    /// A visited client endpoint at the vDRA, knowing where the V-PCRF listens.
    fn endpoint(&self, host: &str) -> Endpoint {
        let mut ep = Endpoint::direct(self.vdra.dra.listen_addrs()[0], VDRA, VISITED, host, EPC);
        ep.peers = vec![(VPCRF.to_string(), self.vpcrf.listen_addrs()[0])];
        ep.dra = Some(self.setup.behaviour);
        ep
    }

    /// A PCEF that detaches when `detach` is notified (at the latest after a minute).
    fn pcef(&self, host: &str, ip: [u8; 4], apn: &str, detach: &Arc<Notify>) -> GxOptions {
        let mut o = pcef_options(self.endpoint(host), ip, apn, Duration::from_secs(60));
        o.detach_on = Some(detach.clone());
        o
    }

    fn bberf(&self, host: &str, ip: [u8; 4], apn: &str) -> BberfOptions {
        BberfOptions {
            endpoint: self.endpoint(host),
            subscriber: imsi_1(),
            ue_ip: Some(IpAddr::from(ip)),
            apn: apn.into(),
            rat_type: 1004,
            timeout: T,
        }
    }

    fn af(&self, ip: [u8; 4]) -> AfOptions {
        af_options(self.endpoint("af.epc.test"), ip)
    }

    /// How the vDRA's clients' terminations go: the path and the vDRA's own answer
    /// (as tests/termination.rs).
    fn expected(&self) -> (&'static str, Option<u32>) {
        let s = self.setup;
        expected_termination(s.vdra, s.behaviour, s.termination)
    }

    /// The V-PCRF's roaming Gx sessions.
    async fn wait_roaming(&self, n: usize) {
        let end = Instant::now() + T;
        while self.visited().roaming_sessions().await.unwrap().len() != n {
            assert!(
                Instant::now() < end,
                "V-PCRF never had {n} roaming sessions"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Nothing left anywhere.
    async fn assert_empty(&self) {
        self.vdra.assert_empty("vDRA").await;
        self.hdra.assert_empty("hDRA").await;
        let v = self.visited();
        assert!(
            v.roaming_sessions().await.unwrap().is_empty(),
            "V-PCRF roaming Gx left"
        );
        assert!(v.s9_sessions().await.unwrap().is_empty(), "V-PCRF S9 left");
        assert!(v.relayed_rx().is_empty(), "V-PCRF relayed Rx left");
        assert_eq!(self.vpcrf.sessions().count().await.unwrap(), 0);
        assert_eq!(self.vpcrf.rx_sessions().count().await.unwrap(), 0);
        assert_eq!(self.hpcrf.sessions().count().await.unwrap(), 0);
        assert_eq!(
            self.hpcrf.rx_sessions().count().await.unwrap(),
            0,
            "H-PCRF Rx"
        );
        assert_eq!(
            self.hpcrf.s9_sessions().count().await.unwrap(),
            0,
            "H-PCRF S9"
        );
    }
}

fn result_of(t: &Terminated) -> Option<u32> {
    pcef_sim::client::result_of(&t.answer)
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

fn assert_ended(t: &Terminated, want: (&'static str, Option<u32>), what: &str) {
    assert_eq!(result_of(t), Some(2001), "{what}: {t:?}");
    assert_eq!((t.path, t.dra_result), (Some(want.0), want.1), "{what}");
}

/// Two IP-CAN sessions of the roaming UE (APNs internet and ims), each with a BBERF that
/// attaches before its PCEF, and an AF session on the first; the first's BBERF reselected;
/// detach of the first (Gxx, Gx, the AF's loss of transport and Rx termination), then of
/// the second; nothing left.
async fn roam_and_detach(setup: Setup) {
    let w = World::start(setup).await;
    let want = w.expected();
    let (ip1, ip2) = ([10, 48, 0, 1], [10, 48, 0, 2]);
    let (gxx1, code) = Bberf::attach(&w.bberf("bberf.epc.test", ip1, "internet"))
        .await
        .unwrap();
    assert_eq!(code, Some(2001), "Gxx of the first IP-CAN session");
    let (gxx2, code) = Bberf::attach(&w.bberf("bberf2.epc.test", ip2, "ims"))
        .await
        .unwrap();
    assert_eq!(code, Some(2001), "Gxx of the second IP-CAN session");
    // Each PCEF detaches when told (after its BBERF), not after a time.
    let (detach1, detach2) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let first = tokio::spawn({
        let o = w.pcef("pcef.epc.test", ip1, "internet", &detach1);
        async move { pcef_sim::gx::run(&o).await.unwrap() }
    });
    let second = tokio::spawn({
        let o = w.pcef("pcef2.epc.test", ip2, "ims", &detach2);
        async move { pcef_sim::gx::run(&o).await.unwrap() }
    });
    w.wait_roaming(4).await;
    let (mut af, code) = Af::open(&w.af(ip1)).await.unwrap();
    assert_eq!(code, Some(2001), "AF through vDRA, V-PCRF and home");
    assert_eq!(w.visited().relayed_rx().len(), 1);
    assert_eq!(w.hpcrf.rx_sessions().count().await.unwrap(), 1);

    // The vDRA bound each Gxx session to its IP-CAN session's entry, beside the Gx session.
    assert_eq!(w.vdra.active(Interface::Gxx).await, 2);
    assert_eq!(w.vdra.active(Interface::Gx).await, 2);
    for gxx in [&gxx1, &gxx2] {
        let b = w
            .vdra
            .dra
            .store()
            .by_session(gxx.session_id().to_string())
            .await
            .unwrap()
            .expect("Gxx bound at the vDRA");
        assert_eq!(b.pcrf, VPCRF);
        let ifaces: Vec<Interface> = b.sessions.iter().map(|s| s.interface).collect();
        assert!(ifaces.contains(&Interface::Gx), "{b:?}");
    }

    // The V-PCRF remembered how the hDRA handled each S9 establishment.
    let roaming = w.visited().roaming_sessions().await.unwrap();
    let s9: std::collections::BTreeSet<String> =
        roaming.iter().map(|s| s.s9_session_id.clone()).collect();
    let n_s9 = match setup.model {
        S9Model::PerSession => 2,
        S9Model::PerUe => 1,
    };
    assert_eq!(s9.len(), n_s9, "{roaming:?}");
    for id in &s9 {
        let want_handling = match setup.hdra {
            Mode::Redirect => Handling::Redirected { pcrf: HPCRF.into() },
            Mode::Proxy => Handling::Proxied,
        };
        assert_eq!(w.visited().home_dra_handling(id), Some(want_handling));
        assert_eq!(w.hdra.state_of(id).await, Some(SessionState::Active));
    }
    assert_eq!(w.hdra.active(Interface::S9).await, n_s9);
    // The relayed Rx session: through a proxy hDRA (bound to the UE's S9 entry by its
    // address); to the H-PCRF a redirect hDRA named, already a peer of the V-PCRF.
    let rx_at_hdra = match setup.hdra {
        Mode::Proxy => 1,
        Mode::Redirect => 0,
    };
    assert_eq!(w.hdra.active(Interface::Rx).await, rx_at_hdra);
    // The H-PCRF learnt each client Session-Id (DRA-Client-Session-Id).
    for r in &roaming {
        let s = w.hpcrf.s9_session(&r.s9_session_id).await.unwrap().unwrap();
        let sub = &s.subsessions[&r.subsession];
        assert!(sub.client_sessions.contains(&r.session_id), "{sub:?}");
    }
    let of = |id: &str| roaming.iter().find(|r| r.session_id == id).unwrap().clone();
    let gx_of = |ip: [u8; 4]| {
        roaming
            .iter()
            .find(|r| r.interface == RoamingInterface::Gx && r.ue_ip == Some(IpAddr::from(ip)))
            .unwrap()
            .clone()
    };
    let (r1, r2) = (gx_of(ip1), gx_of(ip2));
    // Each Gxx session rides on its IP-CAN session's S9 session, bound to its Gx session.
    for (gxx, gx) in [(&gxx1, &r1), (&gxx2, &r2)] {
        assert_eq!(of(gxx.session_id()).s9_session_id, gx.s9_session_id);
        assert_eq!(
            w.visited().bound_gx(gxx.session_id()).await.as_deref(),
            Some(gx.session_id.as_str())
        );
    }

    // BBERF reselection (embodiments 1, 4, 7): the UE moves to another BBERF, which opens
    // its Gxx session; the old one ends its own. The binding and S9 go on.
    let (gxx1b, code) = Bberf::attach(&w.bberf("bberf3.epc.test", ip1, "internet"))
        .await
        .unwrap();
    assert_eq!(code, Some(2001), "Gxx of the new BBERF");
    w.wait_roaming(5).await;
    let old_id = gxx1.session_id().to_string();
    let old_sub = of(&old_id).subsession;
    let t = gxx1.detach(TerminationCause::DIAMETER_USER_MOVED).await;
    assert_ended(&t, want, "old Gxx");
    w.wait_roaming(4).await;
    assert!(w.visited().roaming_session(&old_id).await.is_none());
    let new = w
        .visited()
        .roaming_session(gxx1b.session_id())
        .await
        .expect("new Gxx served");
    assert_eq!(new.s9_session_id, r1.s9_session_id, "same S9 session");
    assert_eq!(
        w.visited().bound_gx(gxx1b.session_id()).await.as_deref(),
        Some(r1.session_id.as_str())
    );
    let s = w
        .hpcrf
        .s9_session(&r1.s9_session_id)
        .await
        .unwrap()
        .expect("S9 goes on");
    assert!(!s.subsessions.contains_key(&old_sub), "{s:?}");
    assert!(s.subsessions.contains_key(&new.subsession), "{s:?}");
    assert_eq!(
        w.hdra.state_of(&r1.s9_session_id).await,
        Some(SessionState::Active)
    );
    // At the vDRA: the old Gxx gone or marked, the entry kept with Gx, Rx and the new Gxx.
    assert_ne!(w.vdra.state_of(&old_id).await, Some(SessionState::Active));
    let b = w
        .vdra
        .dra
        .store()
        .by_session(gxx1b.session_id().to_string())
        .await
        .unwrap()
        .expect("new Gxx bound at the vDRA");
    let active: Vec<&str> = b
        .sessions
        .iter()
        .filter(|s| s.state == SessionState::Active)
        .map(|s| s.session_id.as_str())
        .collect();
    for id in [gxx1b.session_id(), &r1.session_id, af.session_id()] {
        assert!(active.contains(&id), "{id} not active in {b:?}");
    }
    assert_eq!(w.vdra.active(Interface::Gxx).await, 2);

    // Detach of the first IP-CAN session: Gxx ends, Gx ends, home tells the AF, the AF
    // ends Rx.
    let t = gxx1b.detach(TerminationCause::DIAMETER_LOGOUT).await;
    assert_ended(&t, want, "Gxx");
    detach1.notify_one();
    assert_gx_ended(&first.await.unwrap(), want);
    let loss = af.loss(T).await.expect("loss of transport notified");
    assert_eq!(loss.command, "rar");
    let t = af.close(TerminationCause::DIAMETER_ADMINISTRATIVE).await;
    assert_ended(&t, want, "Rx");
    match setup.model {
        // Embodiments 1–9: the S9 session of the first ended at the hDRA and at home.
        S9Model::PerSession => {
            assert_ne!(r1.s9_session_id, r2.s9_session_id);
            let end = Instant::now() + T;
            while w.hdra.state_of(&r1.s9_session_id).await == Some(SessionState::Active) {
                assert!(Instant::now() < end, "hDRA never heard of the S9 end");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                w.hpcrf
                    .s9_session(&r1.s9_session_id)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(w.visited().home_dra_handling(&r1.s9_session_id), None);
        }
        // Embodiment 10: only subsessions ended; the S9 session stays bound.
        S9Model::PerUe => {
            assert_eq!(r1.s9_session_id, r2.s9_session_id);
            let s = w
                .hpcrf
                .s9_session(&r1.s9_session_id)
                .await
                .unwrap()
                .expect("S9 goes on");
            let left: std::collections::BTreeSet<u32> = s.subsessions.keys().copied().collect();
            let want_left: std::collections::BTreeSet<u32> =
                [r2.subsession, of(gxx2.session_id()).subsession].into();
            assert_eq!(left, want_left, "{s:?} {roaming:?}");
            assert_eq!(
                w.hdra.state_of(&r1.s9_session_id).await,
                Some(SessionState::Active)
            );
            assert!(w.visited().home_dra_handling(&r1.s9_session_id).is_some());
        }
    }
    assert_eq!(
        w.hdra.state_of(&r2.s9_session_id).await,
        Some(SessionState::Active)
    );

    // The last IP-CAN session ends, Gxx then Gx: its S9 session (the UE's, per UE) with it.
    let t = gxx2.detach(TerminationCause::DIAMETER_LOGOUT).await;
    assert_ended(&t, want, "Gxx 2");
    detach2.notify_one();
    assert_gx_ended(&second.await.unwrap(), want);
    w.assert_empty().await;
}

fn setup(vdra: Mode, hdra: Mode, model: S9Model, behaviour: TerminationBehaviour) -> Setup {
    // Redirect DRAs redirect terminations when their clients follow redirects, and
    // acknowledge them when their clients send in parallel, in one model; the other way
    // round in the other (tests/termination.rs has all four pairs at one DRA).
    let termination = match (model, behaviour) {
        (S9Model::PerSession, TerminationBehaviour::Parallel)
        | (S9Model::PerUe, TerminationBehaviour::Redirect) => Termination::Ack,
        _ => Termination::Redirect,
    };
    Setup {
        vdra,
        hdra,
        model,
        behaviour,
        termination,
    }
}

/// Every model and behaviour for one combination of DRA modes.
async fn combination(vdra: Mode, hdra: Mode) {
    for (model, behaviour) in [
        (S9Model::PerSession, TerminationBehaviour::Parallel),
        (S9Model::PerUe, TerminationBehaviour::Redirect),
        (S9Model::PerSession, TerminationBehaviour::Redirect),
        (S9Model::PerUe, TerminationBehaviour::Parallel),
    ] {
        roam_and_detach(setup(vdra, hdra, model, behaviour)).await;
    }
}

#[tokio::test]
async fn visited_dra_redirect_home_dra_redirect() {
    combination(Mode::Redirect, Mode::Redirect).await;
}

#[tokio::test]
async fn visited_dra_redirect_home_dra_proxy() {
    combination(Mode::Redirect, Mode::Proxy).await;
}

#[tokio::test]
async fn visited_dra_proxy_home_dra_redirect() {
    combination(Mode::Proxy, Mode::Redirect).await;
}

#[tokio::test]
async fn visited_dra_proxy_home_dra_proxy() {
    combination(Mode::Proxy, Mode::Proxy).await;
}
