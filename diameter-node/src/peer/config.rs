//! Configuration of the local node's capabilities and of one peer's timers and policies.

use std::net::IpAddr;
use std::time::Duration;

/// The Relay application id (RFC 6733 §2.4): a relay advertises it and then accepts any
/// application.
pub const RELAY_APPLICATION_ID: u32 = 0xffff_ffff;

/// Whether an application is advertised as an authentication/authorization application
/// (Auth-Application-Id) or an accounting one (Acct-Application-Id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppKind {
    /// Auth-Application-Id (RFC 6733 §6.8).
    Auth,
    /// Acct-Application-Id (RFC 6733 §6.9).
    Acct,
}

/// One application we support, as advertised in CER/CEA (RFC 6733 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Application {
    /// Auth or Acct.
    pub kind: AppKind,
    /// The application id.
    pub id: u32,
    /// `Some(vendor)` to advertise it inside a Vendor-Specific-Application-Id (RFC 6733
    /// §6.11), as 3GPP applications usually are. The vendor never influences negotiation.
    pub vendor: Option<u32>,
}

impl Application {
    /// An Auth-Application-Id.
    pub const fn auth(id: u32) -> Self {
        Self {
            kind: AppKind::Auth,
            id,
            vendor: None,
        }
    }
    /// An Acct-Application-Id.
    pub const fn acct(id: u32) -> Self {
        Self {
            kind: AppKind::Acct,
            id,
            vendor: None,
        }
    }
    /// An Auth-Application-Id inside a Vendor-Specific-Application-Id.
    pub const fn vendor_auth(vendor: u32, id: u32) -> Self {
        Self {
            kind: AppKind::Auth,
            id,
            vendor: Some(vendor),
        }
    }
    /// An Acct-Application-Id inside a Vendor-Specific-Application-Id.
    pub const fn vendor_acct(vendor: u32, id: u32) -> Self {
        Self {
            kind: AppKind::Acct,
            id,
            vendor: Some(vendor),
        }
    }
    /// The Relay application (RFC 6733 §2.4).
    pub const fn relay() -> Self {
        Self::auth(RELAY_APPLICATION_ID)
    }
}

/// What we advertise in Inband-Security-Id (RFC 6733 §6.10).
///
/// In-band TLS (Inband-Security-Id 1: TLS started after CEA) is not offered: the node has no
/// upgrade of an open connection, and agreeing to TLS while staying in cleartext would be
/// worse than refusing. A peer whose CER or CEA offers only TLS is refused with 5017
/// DIAMETER_NO_COMMON_SECURITY; TLS at connection establishment
/// ([`Transport::Tls`](crate::transport::Transport), RFC 6733 §2.2) is the secure option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InbandSecurity {
    /// Omit the AVP (TLS/DTLS at connection establishment, RFC 6733 §2.2, or plain TCP);
    /// accept a peer that offers NO_INBAND_SECURITY or nothing.
    #[default]
    Omit,
    /// Advertise NO_INBAND_SECURITY (0) and accept only that.
    NoInbandSecurity,
}

impl InbandSecurity {
    /// The Inband-Security-Id value this setting accepts from a peer (and advertises):
    /// always NO_INBAND_SECURITY, see the type's documentation.
    pub(crate) fn accepted(self) -> u32 {
        match self {
            Self::Omit | Self::NoInbandSecurity => 0,
        }
    }
}

/// What to do with a CER whose Origin-Host matches no configured peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownPeerPolicy {
    /// Create a responder-only peer for it (open networks, test tools).
    Accept,
    /// Answer CEA 3010 DIAMETER_UNKNOWN_PEER, then close (RFC 6733 §7.1.3).
    #[default]
    Reject,
    /// Close the connection without an answer (no information for scanners).
    Close,
}

/// Our identity and capabilities: everything a CER/CEA we send carries (RFC 6733 §5.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Host-IP-Address values; at least one is sent (an empty list sends 127.0.0.1).
    pub host_ip_addresses: Vec<IpAddr>,
    /// Vendor-Id (0 for none; our own enterprise number otherwise).
    pub vendor_id: u32,
    /// Product-Name.
    pub product_name: String,
    /// Firmware-Revision, sent when set.
    pub firmware_revision: Option<u32>,
    /// Origin-State-Id: a value that increases each time this node restarts with lost state
    /// (RFC 6733 §8.16). The node sets it from the clock or a persisted counter.
    pub origin_state_id: u32,
    /// Supported-Vendor-Id values.
    pub supported_vendor_ids: Vec<u32>,
    /// The applications we support.
    pub applications: Vec<Application>,
    /// Inband-Security-Id handling.
    pub inband_security: InbandSecurity,
    /// CERs from unknown Origin-Hosts.
    pub unknown_peer: UnknownPeerPolicy,
}

impl LocalConfig {
    /// A configuration with the given identity, no applications and loopback as address.
    pub fn new(origin_host: impl Into<String>, origin_realm: impl Into<String>) -> Self {
        Self {
            origin_host: origin_host.into(),
            origin_realm: origin_realm.into(),
            host_ip_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            vendor_id: 0,
            product_name: "diameter-node".into(),
            firmware_revision: None,
            origin_state_id: 1,
            supported_vendor_ids: Vec::new(),
            applications: Vec::new(),
            inband_security: InbandSecurity::Omit,
            unknown_peer: UnknownPeerPolicy::Reject,
        }
    }
}

/// The smallest Tw allowed: RFC 3539 §3.4.1 forbids a Tw below 6 seconds.
pub const MIN_TW: Duration = Duration::from_secs(6);

/// Timers of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Tc: delay between connection attempts (RFC 6733 §12: "The recommended value is 30
    /// seconds").
    pub tc: Duration,
    /// Tw: watchdog interval (RFC 3539 §3.4.1, default 30 s). Values below [`MIN_TW`] are
    /// raised to it.
    pub tw: Duration,
    /// How long each step of connection set-up may take: connect, then CER → CEA (the
    /// "Timeout" events of RFC 6733 §5.6 in the Wait-* states).
    pub handshake: Duration,
    /// How long to wait for the DPA after sending DPR (the Closing state's "Timeout").
    pub dpa: Duration,
    /// After answering a DPR: how long to wait for the peer to close before we do (the DPR
    /// sender closes; waiting avoids losing the DPA, RFC 6733 §5.4).
    pub linger: Duration,
    /// After the peer disconnected with BUSY or DO_NOT_WANT_TO_TALK_TO_YOU: how long before we
    /// connect to it again (no reconnect storm, RFC 6733 §5.4.3).
    pub hold_off: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            tc: Duration::from_secs(30),
            tw: Duration::from_secs(30),
            handshake: Duration::from_secs(10),
            dpa: Duration::from_secs(5),
            linger: Duration::from_secs(2),
            hold_off: Duration::from_secs(30 * 60),
        }
    }
}

impl Timers {
    /// Tw as used: never below 6 s (RFC 3539 §3.4.1).
    pub fn effective_tw(&self) -> Duration {
        self.tw.max(MIN_TW)
    }
}

/// The configuration of one [`Peer`](super::Peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Our identity and capabilities.
    pub local: std::sync::Arc<LocalConfig>,
    /// The Origin-Host we expect from the peer (compared ignoring ASCII case). `None` to
    /// accept whatever the peer announces (a peer configured by address only).
    pub remote_host: Option<String>,
    /// Whether we initiate connections to this peer (on `start` and again every Tc after a
    /// failure); `false` for a responder-only peer.
    pub connect: bool,
    /// Timers.
    pub timers: Timers,
    /// Seed for the watchdog jitter and for our Hop-by-Hop/End-to-End identifiers, so that
    /// runs are reproducible (the driver seeds it from a real RNG).
    pub seed: u64,
}

impl PeerConfig {
    /// An initiating peer with default timers.
    pub fn new(local: std::sync::Arc<LocalConfig>, remote_host: Option<String>) -> Self {
        Self {
            local,
            remote_host,
            connect: true,
            timers: Timers::default(),
            seed: 0x5eed,
        }
    }
}
