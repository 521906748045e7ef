//! Helpers shared by the PCRF's integration tests: a PCRF in-process, and a PCEF on
//! diameter-node that sends Gx CCRs and answers the PCRF's RARs.
#![allow(dead_code)]

#[path = "../../../tests/support/test_client.rs"]
mod test_client;
pub(crate) use test_client::{client_config, keep_requests, success};

use diameter_codec::dict::{base, dcca, gx, nasreq, rx, ts29229};
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::Node;
use pcrf::{Config, Pcrf, PolicyChange};
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
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
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
    /// 2001 with a Charging-Rule-Report for every rule the RAR installs: INACTIVE,
    /// RESOURCE_ALLOCATION_FAILURE (10).
    FailRules,
}

/// A PCEF: a Gx client node connected to the PCRF, keeping the RARs it got.
pub(crate) struct Pcef {
    pub(crate) node: Node,
    pub(crate) host: String,
    pub(crate) rars: Arc<Mutex<Vec<Message>>>,
    /// Destination-Realm of its CCRs: the PCRF's realm.
    pub(crate) pcrf_realm: String,
}

impl Pcef {
    /// Connects to the PCRF at `addr` and waits until the connection is open.
    pub(crate) async fn connect(
        host: &str,
        addr: SocketAddr,
        osi: Option<u32>,
        reply: RarReply,
    ) -> Self {
        Self::connect_to(PCRF_HOST, host, addr, osi, reply).await
    }

    /// As [`Pcef::connect`] to a PCRF whose Origin-Host is `pcrf_host`.
    pub(crate) async fn connect_to(
        pcrf_host: &str,
        host: &str,
        addr: SocketAddr,
        osi: Option<u32>,
        reply: RarReply,
    ) -> Self {
        Self::connect_in(pcrf_host, HOME, host, addr, osi, reply).await
    }

    /// As [`Pcef::connect_to`] to a PCRF of realm `pcrf_realm` (a V-PCRF's visited PCEF).
    pub(crate) async fn connect_in(
        pcrf_host: &str,
        pcrf_realm: &str,
        host: &str,
        addr: SocketAddr,
        osi: Option<u32>,
        reply: RarReply,
    ) -> Self {
        let mut cfg = client_config(host, "epc.test", GX, pcrf_host, pcrf_realm, addr);
        if let Some(o) = osi {
            cfg.local.origin_state_id = o;
        }
        let node = Node::start(cfg).await.unwrap();
        let rars = keep_requests(&node, GX, move |req| async move {
            match reply {
                RarReply::Success => req.answer(ResultCode::DIAMETER_SUCCESS),
                RarReply::UnknownSession => req.answer(ResultCode(5002)),
                RarReply::FailRules => {
                    let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
                    for cri in all(req.msg.avps().flatten(), 1001) {
                        for d in all(cri.children().flatten(), 1003) {
                            let name = child(&d, 1005).unwrap().data.to_vec();
                            a.push(gx::CHARGING_RULE_REPORT.with(vec![
                                gx::CHARGING_RULE_NAME.with(bytes::Bytes::from(name)),
                                gx::PCC_RULE_STATUS.with(gx::PccRuleStatus(1)),
                                gx::RULE_FAILURE_CODE.with(gx::RuleFailureCode(10)),
                            ]));
                        }
                    }
                    a
                }
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
        });
        assert!(
            node.wait_peer(pcrf_host, T).await,
            "PCRF at {addr} not open"
        );
        Self {
            node,
            host: host.to_string(),
            rars,
            pcrf_realm: pcrf_realm.to_string(),
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
        ccr_in(&self.host, &self.pcrf_realm, session, kind, number, imsi)
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
    ccr_in(host, HOME, session, kind, number, imsi)
}

/// As [`ccr_of`] to a PCRF of realm `pcrf_realm`.
pub(crate) fn ccr_in(
    host: &str,
    pcrf_realm: &str,
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
    b.push(base::DESTINATION_REALM.with(pcrf_realm.to_string()));
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

/// Rx.
pub(crate) const RX: u32 = 16_777_236;

/// How the AF answers the PCRF's RARs and ASRs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AfReply {
    /// 2001.
    Success,
    /// 5002: the AF no longer knows the session.
    UnknownSession,
}

/// An AF (a P-CSCF): an Rx client node connected to the PCRF, keeping the RARs and ASRs it
/// got.
pub(crate) struct Af {
    pub(crate) node: Node,
    pub(crate) host: String,
    pub(crate) requests: Arc<Mutex<Vec<Message>>>,
}

impl Af {
    /// Connects to the PCRF at `addr` and waits until the connection is open.
    pub(crate) async fn connect(host: &str, addr: SocketAddr, reply: AfReply) -> Self {
        Self::connect_with_state(host, addr, reply, None).await
    }

    /// As [`Af::connect`] with Origin-State-Id `osi`.
    pub(crate) async fn connect_with_state(
        host: &str,
        addr: SocketAddr,
        reply: AfReply,
        osi: Option<u32>,
    ) -> Self {
        Self::connect_to(PCRF_HOST, host, addr, reply, osi).await
    }

    /// As [`Af::connect_with_state`] to a PCRF whose Origin-Host is `pcrf_host`.
    pub(crate) async fn connect_to(
        pcrf_host: &str,
        host: &str,
        addr: SocketAddr,
        reply: AfReply,
        osi: Option<u32>,
    ) -> Self {
        let mut cfg = client_config(host, "ims.test", RX, pcrf_host, HOME, addr);
        if let Some(o) = osi {
            cfg.local.origin_state_id = o;
        }
        let node = Node::start(cfg).await.unwrap();
        let requests = keep_requests(&node, RX, move |req| async move {
            match reply {
                AfReply::Success => req.answer(ResultCode::DIAMETER_SUCCESS),
                AfReply::UnknownSession => req.answer(ResultCode(5002)),
            }
        });
        assert!(
            node.wait_peer(pcrf_host, T).await,
            "PCRF at {addr} not open"
        );
        Self {
            node,
            host: host.to_string(),
            requests,
        }
    }

    /// An AAR (TS 29.214 §5.6.1) for UE address `ip` with media components and
    /// Specific-Action subscriptions.
    pub(crate) fn aar(
        &self,
        session: &str,
        ip: [u8; 4],
        components: Vec<OwnedAvp>,
        actions: &[i32],
    ) -> MessageBuilder {
        let mut b = MessageBuilder::request(265, RX, true);
        b.push(base::SESSION_ID.with(session.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(RX));
        b.push(base::ORIGIN_HOST.with(self.host.clone()));
        b.push(base::ORIGIN_REALM.with("ims.test"));
        b.push(base::DESTINATION_REALM.with(HOME));
        b.push(rx::AF_CHARGING_IDENTIFIER.with(bytes::Bytes::from_static(b"icid-1")));
        for c in components {
            b.push(c);
        }
        for &a in actions {
            b.push(rx::SPECIFIC_ACTION.with(rx::SpecificAction(a)));
        }
        b.push(nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(&ip)));
        b
    }

    /// An STR (TS 29.214 §5.6.5), Termination-Cause DIAMETER_LOGOUT.
    pub(crate) fn str_(&self, session: &str) -> MessageBuilder {
        let mut b = MessageBuilder::request(275, RX, true);
        b.push(base::SESSION_ID.with(session.to_string()));
        b.push(base::ORIGIN_HOST.with(self.host.clone()));
        b.push(base::ORIGIN_REALM.with("ims.test"));
        b.push(base::DESTINATION_REALM.with(HOME));
        b.push(base::AUTH_APPLICATION_ID.with(RX));
        b.push(base::TERMINATION_CAUSE.with(base::TerminationCause::DIAMETER_LOGOUT));
        b
    }

    /// Sends a request and returns the answer.
    pub(crate) async fn send(&self, req: MessageBuilder) -> Message {
        self.node.request(req).await.expect("answer")
    }

    /// Waits for the `n`th request from the PCRF (1-based) and returns it.
    pub(crate) async fn nth_request(&self, n: usize) -> Message {
        let end = std::time::Instant::now() + T;
        loop {
            if let Some(m) = self.requests.lock().unwrap().get(n - 1) {
                return m.clone();
            }
            assert!(
                std::time::Instant::now() < end,
                "no request number {n} from the PCRF"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A Media-Sub-Component with these Flow-Descriptions and Flow-Usage.
pub(crate) fn sub_component(number: u32, descriptions: &[&str], usage: Option<i32>) -> OwnedAvp {
    let mut v = vec![rx::FLOW_NUMBER.with(number)];
    for d in descriptions {
        v.push(rx::FLOW_DESCRIPTION.with(d.to_string()));
    }
    if let Some(u) = usage {
        v.push(rx::FLOW_USAGE.with(rx::FlowUsage(u)));
    }
    rx::MEDIA_SUB_COMPONENT.with(v)
}

/// The audio component of a voice call to UE 10.45.0.2 (RTP and RTCP, 96 kbit/s each way,
/// RR and RS 2400 bit/s), as a P-CSCF sends it.
pub(crate) fn audio_component(number: u32) -> OwnedAvp {
    rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(number),
        sub_component(
            1,
            &[
                "permit out 17 from 172.20.166.84 to 10.45.0.2 20001",
                "permit in 17 from 10.45.0.2 to 172.20.166.84 20360",
            ],
            None,
        ),
        sub_component(
            2,
            &[
                "permit out 17 from 172.20.166.84 to 10.45.0.2 20002",
                "permit in 17 from 10.45.0.2 to 172.20.166.84 20361",
            ],
            Some(1),
        ),
        rx::MEDIA_TYPE.with(rx::MediaType::AUDIO),
        rx::MAX_REQUESTED_BANDWIDTH_UL.with(96_000u32),
        rx::MAX_REQUESTED_BANDWIDTH_DL.with(96_000u32),
        rx::RS_BANDWIDTH.with(2_400u32),
        rx::RR_BANDWIDTH.with(2_400u32),
    ])
}

/// The Experimental-Result-Code of an answer (with Vendor-Id 10415 checked).
pub(crate) fn experimental(m: &Message) -> Option<u32> {
    let er = m.find(diameter_codec::AvpKey::new(297, 0))?;
    assert_eq!(u32_of(&child(&er, 266)?), 10_415);
    Some(u32_of(&child(&er, 298)?))
}

/// The message satisfies its command's grammar at every depth.
pub(crate) fn strictly_valid(m: &Message) {
    use diameter_codec::{Dictionary, ValidateOptions, Validator};
    let v = Validator::new(Dictionary::embedded(), ValidateOptions::strict()).check(m);
    let found: Vec<String> = v.findings().map(ToString::to_string).collect();
    assert!(found.is_empty(), "{found:?}");
}

/// Waits until `f` holds.
pub(crate) async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + T;
    while !f() {
        assert!(std::time::Instant::now() < end, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One HTTP/1.1 request; the whole response.
pub(crate) async fn http(addr: SocketAddr, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut out))
        .await
        .expect("HTTP answer in time")
        .unwrap();
    out
}

/// Gxx.
pub(crate) const GXX: u32 = 16_777_266;

/// A BBERF (a serving gateway with PMIP S5/S8): a Gxx client node connected to the PCRF,
/// keeping the Gxx RARs it got and answering them 2001.
pub(crate) struct Bberf {
    pub(crate) node: Node,
    pub(crate) host: String,
    pub(crate) realm: String,
    pub(crate) pcrf_realm: String,
    pub(crate) rars: Arc<Mutex<Vec<Message>>>,
}

impl Bberf {
    /// Connects to the PCRF at `addr` and waits until the connection is open.
    pub(crate) async fn connect(host: &str, addr: SocketAddr) -> Self {
        Self::connect_to(host, "epc.test", PCRF_HOST, HOME, addr).await
    }

    /// Connects as `host` of `realm` to the PCRF `pcrf_host` of `pcrf_realm` at `addr`.
    pub(crate) async fn connect_to(
        host: &str,
        realm: &str,
        pcrf_host: &str,
        pcrf_realm: &str,
        addr: SocketAddr,
    ) -> Self {
        let cfg = client_config(host, realm, GXX, pcrf_host, pcrf_realm, addr);
        let node = Node::start(cfg).await.unwrap();
        let rars = keep_requests(&node, GXX, success);
        assert!(
            node.wait_peer(pcrf_host, T).await,
            "PCRF at {addr} not open"
        );
        Self {
            node,
            host: host.to_string(),
            realm: realm.to_string(),
            pcrf_realm: pcrf_realm.to_string(),
            rars,
        }
    }

    /// A Gxx CCR (TS 29.212 §5a.6.2): `kind` 1 initial, 2 update, 3 termination.
    pub(crate) fn ccr(
        &self,
        session: &str,
        kind: i32,
        number: u32,
        imsi: Option<&str>,
    ) -> MessageBuilder {
        let mut b = MessageBuilder::request(272, GXX, true);
        b.push(base::SESSION_ID.with(session.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(GXX));
        b.push(base::ORIGIN_HOST.with(self.host.clone()));
        b.push(base::ORIGIN_REALM.with(self.realm.clone()));
        b.push(base::DESTINATION_REALM.with(self.pcrf_realm.clone()));
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

    /// Sends a request and returns the answer.
    pub(crate) async fn send(&self, req: MessageBuilder) -> Message {
        self.node.request(req).await.expect("answer")
    }
}

/// QoS-Rule-Name values of every QoS-Rule-Definition in QoS-Rule-Install.
pub(crate) fn qos_installed(m: &Message) -> Vec<String> {
    all(m.avps().flatten(), 1051)
        .iter()
        .flat_map(|i| all(i.children().flatten(), 1053))
        .map(|d| String::from_utf8_lossy(child(&d, 1054).unwrap().data).into_owned())
        .collect()
}

/// QoS-Rule-Name values in QoS-Rule-Remove.
pub(crate) fn qos_removed(m: &Message) -> Vec<String> {
    all(m.avps().flatten(), 1052)
        .iter()
        .flat_map(|r| all(r.children().flatten(), 1054))
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
        .collect()
}

/// A policy change that installs the one predefined rule `rule` (as the operator's push).
pub(crate) fn install(rule: &str) -> PolicyChange {
    PolicyChange {
        install: vec![rule.into()],
        ..Default::default()
    }
}

/// The S9 session the V-PCRF `v` opened for its Gx session `gx_session`.
pub(crate) async fn s9_session_of(v: &Pcrf, gx_session: &str) -> String {
    v.visited()
        .unwrap()
        .roaming_session(gx_session)
        .await
        .unwrap()
        .s9_session_id
}
