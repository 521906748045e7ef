//! The node's configuration: identity, listeners, peers, routes, timers and limits.

use crate::capture::Capture;
use crate::peer::{LocalConfig, Timers};
use crate::routing::{RedirectUsage, Route, RouteAction};
use crate::transport::Transport;
use diameter_codec::{Dictionary, Limits};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A peer of the node.
#[derive(Clone)]
pub struct PeerSpec {
    /// The peer's Origin-Host.
    pub host: String,
    /// Where to connect; `None` for peers that connect to us.
    pub connect: Option<SocketAddr>,
    /// TCP or TLS for the connection we open.
    pub transport: Transport,
    /// Timers (Tc, Tw, …).
    pub timers: Timers,
    /// An agent that forwards other nodes' requests without advertising the Relay
    /// application (a proxy or DRA advertises the applications it proxies): its requests
    /// may carry another Origin-Host when they carry Route-Record (bad-inputs 40 otherwise
    /// refuses them as spoofed).
    pub forwards: bool,
    /// Addresses the peer connects to us from, besides the IP of `connect`: connections from
    /// them handshake outside the anonymous pool ([`NodeConfig::max_handshaking`]).
    pub addresses: Vec<IpAddr>,
}

impl PeerSpec {
    /// A peer we connect to over TCP.
    pub fn connect_tcp(host: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            host: host.into(),
            connect: Some(addr),
            transport: Transport::Tcp,
            timers: Timers::default(),
            forwards: false,
            addresses: Vec::new(),
        }
    }
    /// A peer that connects to us.
    pub fn accept_only(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            connect: None,
            transport: Transport::Tcp,
            timers: Timers::default(),
            forwards: false,
            addresses: Vec::new(),
        }
    }
}

/// A listening address.
#[derive(Clone)]
pub struct ListenSpec {
    /// The address (port 0 picks a free one; see [`Node::listen_addrs`](super::Node::listen_addrs)).
    pub addr: SocketAddr,
    /// TCP or TLS.
    pub transport: Transport,
}

impl From<SocketAddr> for ListenSpec {
    fn from(addr: SocketAddr) -> Self {
        Self {
            addr,
            transport: Transport::Tcp,
        }
    }
}

/// Node configuration. Built in code, or from a TOML `[node]` table with
/// [`crate::config::NodeToml`].
#[derive(Clone)]
pub struct NodeConfig {
    /// Identity and capabilities (CER/CEA).
    pub local: LocalConfig,
    /// Where to listen.
    pub listen: Vec<ListenSpec>,
    /// Configured peers.
    pub peers: Vec<PeerSpec>,
    /// Realm routes.
    pub routes: Vec<Route>,
    /// Whether this node is an agent: requests not for us are relayed by the routes, and
    /// Route-Record is checked for loops (RFC 6733 §6.1.3).
    pub agent: bool,
    /// Default deadline of a request (the Tx timer of RFC 4006 is usually 10 s).
    pub request_timeout: Duration,
    /// Message limits.
    pub limits: Limits,
    /// How long a started frame may take to arrive (bad-inputs 5).
    pub frame_timeout: Duration,
    /// Deadline of a connection we open: TCP connect and TLS handshake.
    pub handshake_timeout: Duration,
    /// How long an accepted connection may take to deliver its CER, TLS handshake included
    /// (RFC 6733 §5.6.1; bad-inputs 29, 43). Default 5 s.
    pub cer_timeout: Duration,
    /// Most requests in flight from this node (sent and relayed).
    pub max_pending: usize,
    /// Most requests handled at once; beyond it the node answers 3004 (RFC 6733 §7.1.3).
    pub max_concurrent_handlers: usize,
    /// Per-peer send queue; a full queue answers 3004 instead of buffering without bound.
    pub peer_queue: usize,
    /// Most bytes queued for writing on one connection (answers and requests not yet
    /// taken by the socket). Beyond it the node stops reading from that connection (TCP
    /// backpressure) and answers its own requests for it with 3004; answers are still
    /// queued, never dropped. Default 4 MiB.
    pub write_queue_bytes: usize,
    /// A connection on which not one byte could be written for this long, with messages
    /// waiting, is closed (the peer stopped reading; failover follows). Default 30 s.
    pub write_stall_timeout: Duration,
    /// How long answers are kept for duplicate detection.
    pub dedup_window: Duration,
    /// How many requests the duplicate cache remembers.
    pub dedup_capacity: usize,
    /// Most bytes of answers the duplicate cache keeps; the oldest go first. Default 64 MiB
    /// (the default 200,000 entries at about 330 bytes each).
    pub dedup_max_bytes: usize,
    /// Validate requests for local handlers against the dictionary.
    pub validate: bool,
    /// Applications whose requests are validated at the strict level: every grammar at
    /// every depth. Others get the liberal default: the command's own grammar is enforced,
    /// deviations inside Grouped AVPs are accepted and handed to the handler
    /// ([`IncomingRequest::deviations`](super::IncomingRequest::deviations)). See
    /// `diameter_codec::validate` for what each level rejects.
    pub strict_validation_applications: Vec<u32>,
    /// Answer 3009 DIAMETER_INVALID_AVP_BITS to a known AVP whose M bit disagrees with the
    /// dictionary; by default it is a deviation, counted and logged (bad-inputs 19).
    pub strict_m_bit: bool,
    /// Most connections at once that have not finished their CER (connection floods,
    /// bad-inputs 43), not counting those from configured peers' addresses (the IP of
    /// [`PeerSpec::connect`] and [`PeerSpec::addresses`]). Default 256.
    pub max_handshaking: usize,
    /// Most connections from one IP address at once that have not finished their CER, so
    /// that one source cannot fill `max_handshaking`; each configured peer's address has
    /// this many outside that pool. Default 32: several peers behind one address (a NAT, or
    /// every node of a lab on loopback) may open their connections at the same moment, and
    /// eight sources still cannot fill the default pool.
    pub max_handshaking_per_source: usize,
    /// Capture of every message sent and received.
    pub capture: Option<Arc<Capture>>,
    /// The dictionary requests are validated and printed with: the embedded one, or the
    /// embedded one extended with an operator's files
    /// ([`crate::config::load_dictionaries`]).
    pub dictionary: &'static Dictionary,
    /// Where the binary serves Prometheus metrics ([`crate::metrics::install`]); the node
    /// itself does not start the endpoint, since a process has one recorder.
    pub metrics: Option<SocketAddr>,
    /// Addresses of Diameter hosts that are not configured peers, keyed by lower-case
    /// identity: where the node connects when a redirect or a proxy handler sends a request
    /// to one of them. A host missing here is looked up from its Redirect-Host URI through
    /// the system resolver.
    pub host_map: HashMap<String, SocketAddr>,
}

impl NodeConfig {
    /// A configuration with this identity and defaults elsewhere.
    pub fn new(host: impl Into<String>, realm: impl Into<String>) -> Self {
        let mut local = LocalConfig::new(host, realm);
        // RFC 6733 §8.16: Origin-State-Id increases on every restart; seconds since the
        // epoch do that without persisted state.
        local.origin_state_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        Self {
            local,
            listen: Vec::new(),
            peers: Vec::new(),
            routes: Vec::new(),
            agent: false,
            request_timeout: Duration::from_secs(10),
            limits: Limits::DEFAULT,
            frame_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            cer_timeout: Duration::from_secs(5),
            max_pending: 65_536,
            max_concurrent_handlers: 8_192,
            peer_queue: 16_384,
            write_queue_bytes: 4 << 20,
            write_stall_timeout: Duration::from_secs(30),
            dedup_window: Duration::from_secs(60),
            dedup_capacity: 200_000,
            dedup_max_bytes: 64 << 20,
            validate: true,
            strict_validation_applications: Vec::new(),
            strict_m_bit: false,
            max_handshaking: 256,
            max_handshaking_per_source: 32,
            capture: None,
            dictionary: Dictionary::embedded(),
            metrics: None,
            host_map: HashMap::new(),
        }
    }
}

pub use crate::routing::RoutePeer;

/// A relay route to `peers` (priority in list order) for `realm` and `application`.
pub fn relay_route(realm: &str, application: Option<u32>, peers: &[&str]) -> Route {
    Route {
        realm: realm.to_string(),
        application,
        action: RouteAction::Relay,
        peers: peers
            .iter()
            .enumerate()
            .map(|(i, h)| RoutePeer {
                host: (*h).to_string(),
                priority: i as u32,
                weight: 1,
            })
            .collect(),
        redirect_usage: RedirectUsage::DontCache,
        redirect_cache_time: Duration::ZERO,
    }
}
