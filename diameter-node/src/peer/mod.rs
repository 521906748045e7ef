//! The peer state machine: RFC 6733 §5.6 (connection set-up with election, capabilities
//! exchange §5.3, disconnection §5.4) and the RFC 3539 §3.4 watchdog (DWR/DWA, §5.5).
//!
//! # Why sans-IO
//!
//! [`Peer`] owns no socket, no task and no clock. The driver feeds it what happened
//! (`handle_*`, [`Peer::start`], [`Peer::stop`], [`Peer::handle_timeout`]) with the current
//! `Instant`, then drains what it wants done:
//!
//! - [`Peer::poll_transmit`]: bytes to write on a connection;
//! - [`Peer::poll_action`]: connect, or close a connection (after writing what was queued
//!   for it before);
//! - [`Peer::poll_event`]: what the node must know (open, failover, requests, answers, …);
//! - [`Peer::poll_timeout`]: when to call [`Peer::handle_timeout`] next.
//!
//! Every timer (Tc, Tw, handshake, DPA) is thus tested with a virtual clock (see
//! `peer/tests.rs`) and no real time passes.
//!
//! # Connections
//!
//! The driver names each transport connection with a [`ConnId`] of its choice, unique for the
//! node's lifetime. A peer has at most two at once: the one it initiated (after
//! [`PeerAction::Connect`], reported by [`Peer::handle_connected`]) and one the peer initiated
//! (reported with its CER by [`Peer::handle_incoming`]); the election (§5.6.4) keeps one.
//!
//! # Driver sketch
//!
//! ```ignore
//! loop {
//!     while let Some(t) = peer.poll_transmit() { conns[t.conn].write(t.bytes).await?; }
//!     while let Some(a) = peer.poll_action() {
//!         match a {
//!             PeerAction::Connect => spawn_connect(),          // → handle_connected / handle_connect_failed
//!             PeerAction::Disconnect(c) | PeerAction::Reject(c) => conns.close_after_flush(c),
//!         }
//!     }
//!     while let Some(e) = peer.poll_event() { node.on_peer_event(e); }
//!     let deadline = peer.poll_timeout();
//!     tokio::select! {
//!         _ = sleep_until_opt(deadline) => peer.handle_timeout(Instant::now()),
//!         Some((c, msg)) = frames.next() => peer.handle_message(Instant::now(), c, msg),
//!         Some(c) = closed.next() => peer.handle_closed(Instant::now(), c),
//!         Some(cmd) = commands.recv() => match cmd { /* start / stop / send */ },
//!     }
//! }
//! ```

mod cer;
pub(crate) mod codes;
mod config;
mod messages;
mod psm;
mod watchdog;

#[cfg(test)]
mod tests;

pub use cer::{
    FirstMessage, NegotiatedApps, PeerInfo, cmp_ignore_ascii_case, negotiate, screen_first_message,
    unknown_peer_answer, wins_election,
};
pub use config::{
    AppKind, Application, InbandSecurity, LocalConfig, MIN_TW, PeerConfig, RELAY_APPLICATION_ID,
    Timers, UnknownPeerPolicy,
};
pub use psm::{NotOpen, Peer};
pub use watchdog::WatchdogState;

use bytes::Bytes;
use diameter_codec::{Message, ResultCode};
use std::sync::Arc;

/// A transport connection, named by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Bytes to write on a connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection.
    pub conn: ConnId,
    /// One whole encoded message.
    pub bytes: Bytes,
}

/// Something the driver must do besides writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAction {
    /// Open a transport connection to the peer, then report it with
    /// [`Peer::handle_connected`] or [`Peer::handle_connect_failed`]. At most one attempt is
    /// outstanding.
    Connect,
    /// Close this connection once the transmits queued for it before this action are written
    /// (I-Disc / R-Disc / Error of RFC 6733 §5.6).
    Disconnect(ConnId),
    /// Close this inbound connection: it lost to an open one or to the election (R-Reject,
    /// RFC 6733 §5.6), or its CER was refused (its CEA is queued before this action).
    Reject(ConnId),
}

/// The RFC 6733 §5.6 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// No connection.
    Closed,
    /// We are connecting.
    WaitConnAck,
    /// We sent our CER and wait for the CEA.
    WaitICea,
    /// We are connecting and the peer's CER arrived on its own connection.
    WaitConnAckElect,
    /// Both connections carry a CER; the election decides which one stays.
    WaitReturns,
    /// Open on the connection the peer initiated.
    ROpen,
    /// Open on the connection we initiated.
    IOpen,
    /// A DPR was sent or received; the connection closes soon.
    Closing,
}

impl PeerState {
    /// I-Open or R-Open.
    pub fn is_open(self) -> bool {
        matches!(self, Self::IOpen | Self::ROpen)
    }
}

/// Disconnect-Cause (RFC 6733 §5.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectCause {
    /// 0: "A scheduled reboot is imminent." We reconnect after Tc as usual.
    Rebooting,
    /// 1: the peer's resources are constrained. We stay away for [`Timers::hold_off`].
    Busy,
    /// 2: the peer expects no traffic. We stay away for [`Timers::hold_off`].
    DoNotWantToTalkToYou,
    /// Any other value, treated like REBOOTING.
    Other(i32),
}

impl DisconnectCause {
    /// The wire value.
    pub fn value(self) -> i32 {
        match self {
            Self::Rebooting => 0,
            Self::Busy => 1,
            Self::DoNotWantToTalkToYou => 2,
            Self::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_value(v: i32) -> Self {
        match v {
            0 => Self::Rebooting,
            1 => Self::Busy,
            2 => Self::DoNotWantToTalkToYou,
            v => Self::Other(v),
        }
    }

    /// Whether the peer asked us not to come back soon.
    pub fn holds_off(self) -> bool {
        matches!(self, Self::Busy | Self::DoNotWantToTalkToYou)
    }
}

/// Why a peer stopped taking traffic or went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// No DWA within Tw (RFC 3539 SUSPECT), or a further Tw of silence (DOWN).
    Watchdog,
    /// The transport connection closed or failed.
    ConnectionLost,
    /// The peer sent DPR with this cause.
    PeerDisconnect(DisconnectCause),
    /// [`Peer::stop`] was called.
    LocalStop,
    /// The peer broke the protocol (a second CER, a non-CEA answer to our CER, …).
    ProtocolError,
    /// A handshake or DPA timer expired.
    Timeout,
}

/// Which side refused a capabilities exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refuser {
    /// We refused the peer's CER (or could not use its CEA).
    Local,
    /// The peer's CEA refused our CER.
    Remote,
}

/// What the node learns from a [`Peer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The RFC 6733 §5.6 state changed.
    StateChanged {
        /// Old state.
        from: PeerState,
        /// New state.
        to: PeerState,
    },
    /// The RFC 3539 watchdog state changed.
    WatchdogChanged {
        /// Old state.
        from: WatchdogState,
        /// New state.
        to: WatchdogState,
    },
    /// The peer takes traffic: capabilities exchanged and watchdog OKAY (immediately on a
    /// first connection, after three DWAs on a reconnection, RFC 3539 §3.4.1).
    Open {
        /// The connection to send on.
        conn: ConnId,
        /// What the peer advertised and what was negotiated.
        info: Arc<PeerInfo>,
    },
    /// The peer stopped taking new requests: fail over the requests pending on it to an
    /// alternate peer, with the T bit (RFC 3539 Failover(), RFC 6733 §5.5.4). Emitted once
    /// per period of availability: on SUSPECT, on a DPR either way, on connection loss.
    Failover {
        /// Why.
        reason: DownReason,
    },
    /// SUSPECT → OKAY: the peer takes traffic again (RFC 3539 Failback()).
    Failback {
        /// The connection to send on.
        conn: ConnId,
    },
    /// The connection that was open is gone (state Closed). Requests still pending on it
    /// will never be answered.
    Down {
        /// Why.
        reason: DownReason,
    },
    /// The peer sent DPR (RFC 6733 §5.4); we answered DPA. Requests in flight to it must be
    /// failed over.
    DisconnectRequested {
        /// Its Disconnect-Cause.
        cause: DisconnectCause,
    },
    /// The peer's Origin-State-Id increased: it restarted and lost its state (RFC 6733 §8.16),
    /// so sessions with it can be cleaned up.
    Restarted {
        /// The value seen before.
        previous: u32,
        /// The new value.
        current: u32,
    },
    /// A capabilities exchange failed.
    CapabilitiesRejected {
        /// The connection it happened on (closed by an action already queued).
        conn: ConnId,
        /// Who refused.
        by: Refuser,
        /// The Result-Code of the refusal.
        result_code: ResultCode,
    },
    /// An application request arrived on the open connection.
    Request {
        /// The connection to answer on.
        conn: ConnId,
        /// The request.
        msg: Message,
    },
    /// An application answer arrived; the node matches it by Hop-by-Hop Identifier and drops
    /// it when unknown (RFC 6733 §3, bad-inputs 35).
    Answer {
        /// The connection.
        conn: ConnId,
        /// The answer.
        msg: Message,
    },
}
