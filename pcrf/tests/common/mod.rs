//! Helpers shared by the PCRF's integration tests: a PCRF in-process, and a PCEF on
//! diameter-node that sends Gx CCRs and answers the PCRF's RARs.
#![allow(dead_code)]

use diameter_codec::dict::{base, dcca, gx, nasreq, ts29229};
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::config::{ListenToml, TransportToml};
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn, relay_route};
use diameter_node::peer::{Application, Timers};
use pcrf::{Config, Pcrf};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The PCRF's Origin-Host.
pub(crate) const PCRF_HOST: &str = "pcrf.home.test";
/// The home realm.
pub(crate) const HOME: &str = "home.test";
/// Gx.
pub(crate) const GX: u32 = 16_777_238;
/// The demo subscriber with online charging.
pub(crate) const IMSI_1: &str = "001010000000001";
/// The demo subscriber whose location changes re-rate.
pub(crate) const IMSI_3: &str = "001010000000003";
/// How long a test waits for anything.
pub(crate) const T: Duration = Duration::from_secs(5);

/// The built-in home PCRF on a free loopback port, without the operator endpoint.
pub(crate) async fn pcrf() -> Pcrf {
    let mut cfg = Config::demo();
    cfg.node.listen = vec![ListenToml {
        addr: "127.0.0.1:0".parse().unwrap(),
        transport: TransportToml::Tcp,
        tls: None,
    }];
    cfg.pcrf.admin = None;
    Pcrf::start(&cfg).await.unwrap()
}

/// How the PCEF answers RARs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RarReply {
    /// 2001.
    Success,
    /// 5002 DIAMETER_UNKNOWN_SESSION_ID.
    UnknownSession,
    /// 2001, after sending a CCR-U (number 1) reporting a handover to UTRAN for the same
    /// session and getting its answer: the session changes while the RAR is out.
    RatChangeFirst,
}

/// A PCEF: a Gx client node connected to the PCRF, keeping the RARs it got.
pub(crate) struct Pcef {
    pub(crate) node: Node,
    pub(crate) host: String,
    pub(crate) rars: Arc<Mutex<Vec<Message>>>,
}

impl Pcef {
    /// Connects to the PCRF at `addr` and waits until the connection is open.
    pub(crate) async fn connect(
        host: &str,
        addr: SocketAddr,
        osi: Option<u32>,
        reply: RarReply,
    ) -> Self {
        let mut cfg = NodeConfig::new(host, "epc.test");
        if let Some(o) = osi {
            cfg.local.origin_state_id = o;
        }
        cfg.local.applications.push(Application {
            vendor: Some(10_415),
            ..Application::auth(GX)
        });
        cfg.local.supported_vendor_ids.push(10_415);
        let mut p = PeerSpec::connect_tcp(PCRF_HOST, addr);
        p.timers = Timers {
            tc: Duration::from_millis(100),
            ..Timers::default()
        };
        cfg.peers.push(p);
        cfg.routes.push(relay_route(HOME, Some(GX), &[PCRF_HOST]));
        cfg.request_timeout = T;
        let node = Node::start(cfg).await.unwrap();
        let rars = Arc::new(Mutex::new(Vec::new()));
        let kept = rars.clone();
        node.register(
            GX,
            handler_fn(move |req| {
                kept.lock().unwrap().push(req.msg.clone());
                async move {
                    match reply {
                        RarReply::Success => req.answer(ResultCode::DIAMETER_SUCCESS),
                        RarReply::UnknownSession => req.answer(ResultCode(5002)),
                        RarReply::RatChangeFirst => {
                            let sid = req.msg.session_id().unwrap_or_default().to_string();
                            let host = req.node.identity().host.clone();
                            let mut u = ccr_of(&host, &sid, 2, 1, None);
                            u.push(event(2));
                            u.push(gx::RAT_TYPE.with(gx::RatType(1000)));
                            let a = req.node.request(u).await.expect("CCA-U");
                            assert_eq!(rc(&a), Some(2001));
                            req.answer(ResultCode::DIAMETER_SUCCESS)
                        }
                    }
                }
            }),
        );
        assert!(
            node.wait_peer(PCRF_HOST, T).await,
            "PCRF at {addr} not open"
        );
        Self {
            node,
            host: host.to_string(),
            rars,
        }
    }

    /// A Gx CCR of this PCEF (TS 29.212 §5.6.2): `kind` 1 initial, 2 update, 3 termination.
    pub(crate) fn ccr(
        &self,
        session: &str,
        kind: i32,
        number: u32,
        imsi: Option<&str>,
    ) -> MessageBuilder {
        ccr_of(&self.host, session, kind, number, imsi)
    }

    /// A CCR-I as a gateway sends it: UE address, APN, RAT, and Supported-Features
    /// without Vendor-Id (as Open5GS sends it).
    pub(crate) fn ccr_i(&self, session: &str, imsi: &str) -> MessageBuilder {
        let mut b = self.ccr(session, 1, 0, Some(imsi));
        b.push(ts29229::SUPPORTED_FEATURES.with(vec![
            ts29229::FEATURE_LIST_ID.with(1u32),
            ts29229::FEATURE_LIST.with(0b0110u32),
        ]));
        b.push(nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::from_static(&[10, 45, 0, 2])));
        b.push(nasreq::CALLED_STATION_ID.with("internet"));
        b.push(gx::RAT_TYPE.with(gx::RatType(1004)));
        b
    }

    /// Sends a request and returns the answer.
    pub(crate) async fn send(&self, req: MessageBuilder) -> Message {
        self.node.request(req).await.expect("answer")
    }
}

/// A Gx CCR from PCEF `host` (TS 29.212 §5.6.2): `kind` 1 initial, 2 update, 3 termination.
pub(crate) fn ccr_of(
    host: &str,
    session: &str,
    kind: i32,
    number: u32,
    imsi: Option<&str>,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(272, GX, true);
    b.push(base::SESSION_ID.with(session.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(GX));
    b.push(base::ORIGIN_HOST.with(host.to_string()));
    b.push(base::ORIGIN_REALM.with("epc.test"));
    b.push(base::DESTINATION_REALM.with(HOME));
    b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
    b.push(dcca::CC_REQUEST_NUMBER.with(number));
    if let Some(i) = imsi {
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
            dcca::SUBSCRIPTION_ID_DATA.with(i.to_string()),
        ]));
    }
    b
}

/// The Result-Code, when the answer has one.
pub(crate) fn rc(m: &Message) -> Option<u32> {
    m.get(base::RESULT_CODE).and_then(Result::ok)
}

/// The values of `code` (vendor 10415 unless base) among `avps`.
pub(crate) fn all<'a>(avps: impl Iterator<Item = AvpRef<'a>>, code: u32) -> Vec<AvpRef<'a>> {
    avps.filter(|a| a.code == code).collect()
}

/// A Grouped AVP's first child with this code.
pub(crate) fn child<'a>(a: &AvpRef<'a>, code: u32) -> Option<AvpRef<'a>> {
    a.children().flatten().find(|c| c.code == code)
}

/// An Unsigned32 or Enumerated payload.
pub(crate) fn u32_of(a: &AvpRef<'_>) -> u32 {
    u32::from_be_bytes(a.data.try_into().unwrap())
}

/// Charging-Rule-Definitions of every Charging-Rule-Install: name → Rating-Group.
pub(crate) fn installed(m: &Message) -> Vec<(String, Option<u32>)> {
    let mut out = Vec::new();
    for cri in all(m.avps().flatten(), 1001) {
        for d in all(cri.children().flatten(), 1003) {
            let name = String::from_utf8_lossy(child(&d, 1005).unwrap().data).into_owned();
            out.push((name, child(&d, 432).map(|r| u32_of(&r))));
        }
    }
    out
}

/// Charging-Rule-Name values in Charging-Rule-Remove.
pub(crate) fn removed(m: &Message) -> Vec<String> {
    all(m.avps().flatten(), 1002)
        .iter()
        .flat_map(|r| all(r.children().flatten(), 1005))
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
        .collect()
}

/// An AVP to add to a request: Event-Trigger.
pub(crate) fn event(v: i32) -> OwnedAvp {
    gx::EVENT_TRIGGER.with(gx::EventTrigger(v))
}
