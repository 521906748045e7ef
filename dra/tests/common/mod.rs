//! Helpers shared by the DRA's integration tests: the real home PCRF (the `pcrf` library)
//! on free loopback ports, a DRA in front of them, a PCEF and an AF on diameter-node, and
//! a raw client that sees the DRA's answers as they are (a redirect not followed).
#![allow(dead_code)]

#[path = "../../../tests/support/test_client.rs"]
mod test_client;
pub(crate) use test_client::{client_config, keep_requests, success};

use bytes::Bytes;
use diameter_codec::dict::{base, dcca, gx, nasreq};
use diameter_codec::{Message, MessageBuilder, ResultCode};
use diameter_node::config::{ListenToml, TimersToml, TransportToml};
use diameter_node::node::Node;
use diameter_service::dra_client::TerminationBehaviour;
use dra::Dra;
use dra::binding::Mode;
use dra::config::{Config, PcrfToml, StoreKind, Termination};
use pcef_sim::af::AfOptions;
use pcef_sim::client::Endpoint;
use pcef_sim::gx::GxOptions;
use pcef_sim::gy::Subscriber;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for anything.
pub(crate) const T: Duration = Duration::from_secs(5);
/// The DRA's identity.
pub(crate) const DRA_HOST: &str = "dra.home.test";
/// The home realm.
pub(crate) const HOME: &str = "home.test";
/// Gx.
pub(crate) const GX: u32 = 16_777_238;
/// Rx.
pub(crate) const RX: u32 = 16_777_236;
/// Demo subscriber 1 of the PCRF.
pub(crate) const IMSI_1: &str = "001010000000001";
/// Demo subscriber 2.
pub(crate) const IMSI_2: &str = "001010000000002";

fn any_port() -> Vec<ListenToml> {
    vec![ListenToml {
        addr: "127.0.0.1:0".parse().unwrap(),
        transport: TransportToml::Tcp,
        tls: None,
    }]
}

fn fast_timers() -> TimersToml {
    TimersToml {
        tc: Some(Duration::from_millis(100)),
        ..TimersToml::default()
    }
}

/// The built-in home PCRF as `host`, on a free port. Its built-in default route sends
/// what is not for its own peers (RARs to PCEFs behind a proxy DRA) to `dra.home.test`.
pub(crate) async fn pcrf(host: &str) -> pcrf::Pcrf {
    let mut cfg = pcrf::Config::demo();
    cfg.node.origin_host = host.to_string();
    cfg.node.listen = any_port();
    cfg.pcrf.admin = None;
    pcrf::Pcrf::start(&cfg).await.unwrap()
}

/// A DRA configuration in `mode` in front of `pcrfs`, on a free port, bindings in memory.
pub(crate) fn dra_config(mode: Mode, pcrfs: &[&pcrf::Pcrf]) -> Config {
    let mut cfg = Config::demo();
    cfg.node.listen = any_port();
    cfg.node.timers = Some(fast_timers());
    cfg.node.request_timeout = Some(T);
    cfg.dra.mode = mode;
    cfg.dra.admin = None;
    cfg.dra.pcrf = pcrfs
        .iter()
        .map(|p| PcrfToml {
            host: p.node().identity().host.clone(),
            connect: Some(p.listen_addrs()[0]),
            weight: 1,
            redirect_uri: None,
        })
        .collect();
    cfg.store.kind = StoreKind::Memory;
    cfg
}

/// Starts a DRA and waits until every PCRF is selectable.
pub(crate) async fn dra(cfg: &Config) -> Dra {
    let d = Dra::start(cfg).await.unwrap();
    for p in &cfg.dra.pcrf {
        wait_for(|| d.is_healthy(&p.host), "PCRF healthy at the DRA").await;
    }
    d
}

/// Waits (polling) until `f` holds.
pub(crate) async fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the DRA holds `n` bindings.
pub(crate) async fn wait_bindings(d: &Dra, n: u64) {
    let end = Instant::now() + T;
    loop {
        let s = d.store().stats().await.unwrap();
        if s.bindings == n {
            return;
        }
        assert!(
            Instant::now() < end,
            "DRA holds {s:?}, expected {n} bindings"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client node (PCEF with Gx, or AF with Rx) of realm epc.test connected to the DRA at
/// `addr`, knowing where the PCRFs are (to follow redirects), keeping the requests it gets
/// (RAR) and answering them 2001.
pub(crate) struct Client {
    pub(crate) node: Node,
    pub(crate) host: String,
    pub(crate) got: Arc<Mutex<Vec<Message>>>,
}

impl Client {
    pub(crate) async fn connect(
        host: &str,
        app: u32,
        dra_addr: SocketAddr,
        pcrfs: &[&pcrf::Pcrf],
    ) -> Self {
        let mut cfg = client_config(host, "epc.test", app, DRA_HOST, HOME, dra_addr);
        for pc in pcrfs {
            cfg.host_map
                .insert(pc.node().identity().host.clone(), pc.listen_addrs()[0]);
        }
        let node = Node::start(cfg).await.unwrap();
        let got = keep_requests(&node, app, success);
        assert!(
            node.wait_peer(DRA_HOST, T).await,
            "DRA at {dra_addr} not open"
        );
        Self {
            node,
            host: host.to_string(),
            got,
        }
    }

    pub(crate) async fn send(&self, req: MessageBuilder) -> Message {
        self.node.request(req).await.expect("answer")
    }
}

/// A Gx CCR (TS 29.212 §5.6.2): `kind` 1 initial, 2 update, 3 termination.
pub(crate) fn ccr(host: &str, session: &str, kind: i32, number: u32) -> MessageBuilder {
    let mut b = MessageBuilder::request(272, GX, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(GX));
    b.push(base::ORIGIN_HOST.with(host.to_string()));
    b.push(base::ORIGIN_REALM.with("epc.test"));
    b.push(base::DESTINATION_REALM.with(HOME));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
    b.push(dcca::CC_REQUEST_NUMBER.with(number));
    b
}

/// A Gx CCR-I with the binding keys: IMSI, UE IPv4 address, APN.
pub(crate) fn ccr_i(host: &str, session: &str, imsi: &str, ip: [u8; 4]) -> MessageBuilder {
    let mut b = ccr(host, session, 1, 0);
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(imsi.to_string()),
    ]));
    b.push(nasreq::FRAMED_IP_ADDRESS.with(Bytes::copy_from_slice(&ip)));
    b.push(nasreq::CALLED_STATION_ID.with("internet"));
    b.push(gx::RAT_TYPE.with(gx::RatType(1004)));
    b
}

/// An Rx AAR (TS 29.214 §5.6.1) for the UE address `ip`.
pub(crate) fn aar(host: &str, session: &str, ip: Option<[u8; 4]>) -> MessageBuilder {
    let mut b = MessageBuilder::request(265, RX, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(RX));
    b.push(base::ORIGIN_HOST.with(host.to_string()));
    b.push(base::ORIGIN_REALM.with("epc.test"));
    b.push(base::DESTINATION_REALM.with(HOME));
    if let Some(ip) = ip {
        b.push(nasreq::FRAMED_IP_ADDRESS.with(Bytes::copy_from_slice(&ip)));
    }
    b
}

/// An Rx STR (TS 29.214 §5.6.3).
pub(crate) fn str_(host: &str, session: &str) -> MessageBuilder {
    let mut b = MessageBuilder::request(275, RX, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::ORIGIN_HOST.with(host.to_string()));
    b.push(base::ORIGIN_REALM.with("epc.test"));
    b.push(base::DESTINATION_REALM.with(HOME));
    b.push(base::AUTH_APPLICATION_ID.with(RX));
    b.push(base::TERMINATION_CAUSE.with(base::TerminationCause(1)));
    b
}

/// The Result-Code.
pub(crate) fn rc(m: &Message) -> Option<u32> {
    m.get(base::RESULT_CODE).and_then(Result::ok)
}

/// The Experimental-Result-Code.
pub(crate) fn experimental(m: &Message) -> Option<u32> {
    let e = m.find(base::EXPERIMENTAL_RESULT.key())?;
    e.children()
        .flatten()
        .find(|c| c.code == 298)
        .map(|c| u32::from_be_bytes(c.data.try_into().unwrap()))
}

/// The Origin-Host.
pub(crate) fn origin(m: &Message) -> String {
    m.get(base::ORIGIN_HOST)
        .and_then(Result::ok)
        .unwrap_or("")
        .to_string()
}

/// Redirect-Host values.
pub(crate) fn redirect_hosts(m: &Message) -> Vec<String> {
    m.find_all(base::REDIRECT_HOST.key())
        .map(|a| String::from_utf8_lossy(a.data).into_owned())
        .collect()
}

/// A client on a bare TCP connection: sees the DRA's answers as they are.
pub(crate) struct Raw {
    s: tokio::net::TcpStream,
    next: u32,
}

impl Raw {
    /// Connects and exchanges capabilities as `host` supporting `app`.
    pub(crate) async fn open(addr: SocketAddr, host: &str, app: u32) -> Self {
        Self::open_with_state(addr, host, app, 1).await
    }

    /// As [`Raw::open`] with Origin-State-Id `osi` in the CER (RFC 6733 §8.16).
    pub(crate) async fn open_with_state(addr: SocketAddr, host: &str, app: u32, osi: u32) -> Self {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut r = Self { s, next: 1 };
        let cer = MessageBuilder::request(257, 0, false)
            .with(base::ORIGIN_STATE_ID.with(osi))
            .with(base::ORIGIN_HOST.with(host.to_string()))
            .with(base::ORIGIN_REALM.with("epc.test"))
            .with(base::HOST_IP_ADDRESS.with(IpAddr::from([127, 0, 0, 1])))
            .with(base::VENDOR_ID.with(0u32))
            .with(base::PRODUCT_NAME.with("raw-test"))
            .with(base::SUPPORTED_VENDOR_ID.with(10_415u32))
            .with(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
                base::VENDOR_ID.with(10_415u32),
                base::AUTH_APPLICATION_ID.with(app),
            ]));
        let cea = r.ask(cer).await;
        assert_eq!(rc(&cea), Some(2001), "CEA");
        r
    }

    /// Sends a request and returns its answer (DWRs in between answered).
    pub(crate) async fn ask(&mut self, mut req: MessageBuilder) -> Message {
        self.next += 1;
        req.hop_by_hop = self.next;
        req.end_to_end = 0x7000_0000 + self.next;
        self.s.write_all(&req.to_bytes()).await.unwrap();
        loop {
            let mut head = [0u8; 4];
            tokio::time::timeout(T, self.s.read_exact(&mut head))
                .await
                .unwrap()
                .unwrap();
            let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
            let mut buf = vec![0u8; len];
            buf[..4].copy_from_slice(&head);
            self.s.read_exact(&mut buf[4..]).await.unwrap();
            let m = Message::from_bytes(Bytes::from(buf)).unwrap();
            if m.header().is_request() {
                let mut a = MessageBuilder::answer_to(
                    &m,
                    &diameter_codec::LocalIdentity::new("raw", "epc.test"),
                );
                a.result_code(ResultCode::DIAMETER_SUCCESS);
                self.s.write_all(&a.to_bytes()).await.unwrap();
                continue;
            }
            if m.header().hop_by_hop == self.next {
                return m;
            }
        }
    }
}

/// pcef-sim's subscriber [`IMSI_1`] (Subscription-Id-Type END_USER_IMSI).
pub(crate) fn imsi_1() -> Subscriber {
    Subscriber {
        kind: 1,
        data: IMSI_1.into(),
    }
}

/// A pcef-sim PCEF at `endpoint` attaching [`IMSI_1`] at `ip` on `apn` over E-UTRAN
/// (RAT-Type 1004) for `duration`.
pub(crate) fn pcef_options(
    endpoint: Endpoint,
    ip: [u8; 4],
    apn: &str,
    duration: Duration,
) -> GxOptions {
    GxOptions {
        endpoint,
        subscriber: imsi_1(),
        ue_ip: IpAddr::from(ip),
        apn: apn.into(),
        rat_type: 1004,
        duration,
        detach_on: None,
        events: Vec::new(),
        flows: Vec::new(),
        ocs: None,
        timeout: T,
        live: false,
        local_up: false,
    }
}

/// A pcef-sim AF at `endpoint` for the UE at `ip`, subscribing to loss of bearer.
pub(crate) fn af_options(endpoint: Endpoint, ip: [u8; 4]) -> AfOptions {
    AfOptions {
        endpoint,
        ue_ip: IpAddr::from(ip),
        specific_actions: AfOptions::LOSS.to_vec(),
        timeout: T,
    }
}

/// How a DRA client's termination goes (`diameter_service::dra_client`) when the DRA is in
/// `mode`, the client ends sessions by `behaviour` and the DRA answers terminations by
/// `termination`: the path, and the DRA's own answer.
pub(crate) fn expected_termination(
    mode: Mode,
    behaviour: TerminationBehaviour,
    termination: Termination,
) -> (&'static str, Option<u32>) {
    match (mode, behaviour, termination) {
        (Mode::Proxy, _, _) => ("proxied", None),
        (Mode::Redirect, TerminationBehaviour::Parallel, Termination::Ack) => {
            ("parallel", Some(2001))
        }
        (Mode::Redirect, TerminationBehaviour::Parallel, Termination::Redirect) => {
            ("parallel", Some(3006))
        }
        // The DRA's redirect is followed: the PCRF's answer is the only one.
        (Mode::Redirect, TerminationBehaviour::Redirect, Termination::Redirect) => {
            ("redirect", None)
        }
        // The DRA acknowledged: the PCRF is told after.
        (Mode::Redirect, TerminationBehaviour::Redirect, Termination::Ack) => {
            ("redirect", Some(2001))
        }
    }
}
