//! Helpers shared by the OCS's integration tests: an OCS in-process or as a child process,
//! and a Gy client (a PCEF) on diameter-node.
#![allow(dead_code)]

use diameter_codec::dict::{base, dcca};
use diameter_codec::{AvpRef, Message};
use diameter_node::node::{Node, NodeConfig, PeerSpec, relay_route};
use diameter_node::peer::{Application, Timers};
use ocs::config::Config;
use ocs::gy::CcrSpec;
use ocs::model::{RequestType, ServiceKey, SubscriptionId, SubscriptionType, Units};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The OCS's Origin-Host.
pub(crate) const OCS_HOST: &str = "ocs.home.test";
/// The home realm.
pub(crate) const HOME: &str = "home.test";
/// The demo subscriber with plenty of credit.
pub(crate) const IMSI_RICH: &str = "001010000000001";
/// The demo subscriber that pays by tariff.
pub(crate) const IMSI_MONEY: &str = "001010000000002";
/// The demo subscriber with little credit.
pub(crate) const IMSI_LOW: &str = "001010000000003";
/// The demo subscriber with none.
pub(crate) const IMSI_EMPTY: &str = "001010000000004";
/// The barred demo subscriber.
pub(crate) const IMSI_BARRED: &str = "001010000000005";

/// A loopback address whose port was free a moment ago.
pub(crate) fn free_addr() -> SocketAddr {
    // A port the OS just handed out and took back may come again on the next call; the
    // servers of one test then collide. So no port is given twice in a process.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// The demo configuration on a free port with its data file in `dir`.
pub(crate) fn test_config(dir: &Path) -> Config {
    let mut cfg = Config::demo();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.store.path = dir.join("ocs.redb");
    cfg.ocs.admin = None;
    cfg
}

/// A PCEF: a Gy client node connected to the OCS at `addr`.
pub(crate) struct Pcef {
    pub(crate) node: Node,
    pub(crate) host: String,
}

pub(crate) fn fast_timers() -> Timers {
    Timers {
        tc: Duration::from_millis(100),
        ..Timers::default()
    }
}

impl Pcef {
    /// Connects and waits until the OCS is open.
    pub(crate) async fn connect(host: &str, addr: SocketAddr) -> Self {
        let pcef = Self::start(host, addr, Duration::from_secs(5)).await;
        assert!(
            pcef.node.wait_peer(OCS_HOST, Duration::from_secs(10)).await,
            "OCS at {addr} not open"
        );
        pcef
    }

    /// Starts without waiting; requests time out after `timeout`.
    pub(crate) async fn start(host: &str, addr: SocketAddr, timeout: Duration) -> Self {
        Self::start_with_state(host, addr, timeout, None).await
    }

    /// As [`Pcef::start`] with this Origin-State-Id.
    pub(crate) async fn start_with_state(
        host: &str,
        addr: SocketAddr,
        timeout: Duration,
        origin_state_id: Option<u32>,
    ) -> Self {
        let mut cfg = NodeConfig::new(host, "visited.test");
        if let Some(osi) = origin_state_id {
            cfg.local.origin_state_id = osi;
        }
        cfg.local.applications.push(Application::auth(4));
        let mut p = PeerSpec::connect_tcp(OCS_HOST, addr);
        p.timers = fast_timers();
        cfg.peers.push(p);
        cfg.routes.push(relay_route(HOME, Some(4), &[OCS_HOST]));
        cfg.request_timeout = timeout;
        Self {
            node: Node::start(cfg).await.unwrap(),
            host: host.to_string(),
        }
    }

    /// A CCR as built by ocs::gy::CcrSpec.
    pub(crate) fn ccr(
        &self,
        session: &str,
        t: RequestType,
        n: u32,
        imsi: Option<&str>,
        mscc: Vec<(ServiceKey, Option<Units>, Option<Units>)>,
    ) -> diameter_codec::MessageBuilder {
        let sub = imsi.map(|d| SubscriptionId {
            kind: SubscriptionType::Imsi,
            data: d.to_string(),
        });
        CcrSpec {
            session_id: session,
            origin_host: &self.host,
            origin_realm: "visited.test",
            destination_realm: HOME,
            request_type: t,
            request_number: n,
            subscription: sub.as_ref(),
            mscc,
        }
        .build()
    }

    /// Sends and returns the answer (a protocol error's answer too).
    pub(crate) async fn send(&self, b: diameter_codec::MessageBuilder) -> Message {
        match self.node.request(b).await {
            Ok(m) => m,
            Err(diameter_node::node::RequestError::Protocol { answer, .. }) => answer,
            Err(e) => panic!("no answer: {e}"),
        }
    }

    pub(crate) async fn shutdown(self) {
        self.node.shutdown(Duration::from_secs(1)).await;
    }
}

/// Rating group `rg`.
pub(crate) fn rg(rg: u32) -> ServiceKey {
    ServiceKey {
        rating_group: Some(rg),
        service_id: None,
    }
}

/// An empty Requested-Service-Unit (the server chooses).
pub(crate) fn rsu() -> Option<Units> {
    Some(Units::default())
}

/// Used octets.
pub(crate) fn octets(n: u64) -> Option<Units> {
    Some(Units {
        total_octets: Some(n),
        ..Units::default()
    })
}

/// Used seconds.
pub(crate) fn seconds(n: u32) -> Option<Units> {
    Some(Units {
        time: Some(n),
        ..Units::default()
    })
}

/// The command-level Result-Code.
pub(crate) fn result_code(m: &Message) -> u32 {
    m.get(base::RESULT_CODE).unwrap().unwrap()
}

/// The MSCCs of an answer.
pub(crate) fn msccs(m: &Message) -> Vec<AvpRef<'_>> {
    m.find_all(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
        .collect()
}

/// A child AVP's Unsigned32/Unsigned64/Enumerated value, as u64.
pub(crate) fn child_u64(a: &AvpRef<'_>, code: u32, vendor: u32) -> Option<u64> {
    a.children()
        .flatten()
        .find(|c| c.code == code && c.vendor == vendor)
        .map(|c| match c.data.len() {
            4 => u64::from(u32::from_be_bytes(c.data.try_into().unwrap())),
            8 => u64::from_be_bytes(c.data.try_into().unwrap()),
            _ => panic!("not a 32/64-bit value"),
        })
}

/// A child Grouped AVP.
pub(crate) fn child<'a>(a: &AvpRef<'a>, code: u32) -> Option<AvpRef<'a>> {
    a.children().flatten().find(|c| c.code == code)
}

/// Granted CC-Total-Octets of an MSCC.
pub(crate) fn granted_octets(m: &AvpRef<'_>) -> Option<u64> {
    child(m, 431).and_then(|g| child_u64(&g, 421, 0))
}

/// Granted CC-Time of an MSCC.
pub(crate) fn granted_time(m: &AvpRef<'_>) -> Option<u64> {
    child(m, 431).and_then(|g| child_u64(&g, 420, 0))
}
