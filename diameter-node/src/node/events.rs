//! Peer events for applications: a peer came up (with what it announced in CER/CEA),
//! restarted (its Origin-State-Id changed), or went down.

use crate::peer::{DownReason, PeerInfo};
use std::sync::Arc;

/// What happened to a peer. Subscribe with [`Node::events`](super::Node::events).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent {
    /// Capabilities exchanged and the watchdog OKAY: the peer takes traffic.
    PeerUp {
        /// The peer's identity as the node keys it.
        peer: String,
        /// What it announced: Origin-Host, Origin-Realm, applications, Origin-State-Id, …
        info: Arc<PeerInfo>,
    },
    /// The peer's Origin-State-Id changed (RFC 6733 §8.16): it lost its state, so whatever
    /// an application keeps for it (a PCEF's sessions) is stale. Comes before its `PeerUp`.
    PeerRestarted {
        /// The peer.
        peer: String,
        /// The Origin-State-Id it had.
        previous: u32,
        /// The one it has now.
        current: u32,
        /// When the capabilities exchange announcing it arrived (Unix milliseconds): what
        /// the peer created before is stale, what it created since (its first requests may
        /// be handled before this event is) is not.
        at_ms: u64,
    },
    /// The peer's connection went (or it disconnected with DPR).
    PeerDown {
        /// The peer.
        peer: String,
        /// Why.
        reason: DownReason,
    },
}

impl NodeEvent {
    /// The peer the event is about.
    pub fn peer(&self) -> &str {
        match self {
            Self::PeerUp { peer, .. }
            | Self::PeerRestarted { peer, .. }
            | Self::PeerDown { peer, .. } => peer,
        }
    }
}
