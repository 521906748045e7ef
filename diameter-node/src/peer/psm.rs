//! [`Peer`]: the RFC 6733 §5.6 state machine of one peer, sans IO.

use super::cer::{self, CeaFailure, PeerInfo};
use super::codes::*;
use super::config::PeerConfig;
use super::messages::{self, find_str, find_u32, is};
use super::watchdog::{SplitMix64, Watchdog, WatchdogState, WdAction};
use super::{
    ConnId, DisconnectCause, DownReason, PeerAction, PeerEvent, PeerState, Refuser, Transmit,
};
use bytes::Bytes;
use diameter_codec::{CommandFlags, ErrorReport, Message, ResultCode};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// [`Peer::send`] was called while no connection is open for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer not open (state {0:?})")]
pub struct NotOpen(pub PeerState);

/// The state machine of one peer: RFC 6733 §5.6 with election, capabilities exchange (§5.3),
/// watchdog (RFC 3539 §3.4) and disconnection (§5.4). See the [module docs](super).
///
/// # Deadlines
///
/// [`Peer::poll_timeout`] may change after any call that takes `now`: [`Peer::start`],
/// [`Peer::stop`], every `handle_*` method, and [`Peer::handle_timeout`] itself. Received
/// messages move the watchdog deadline (any traffic re-arms Tw). [`Peer::send`] and the
/// `poll_*` methods never move it. Call `poll_timeout` again after each of the former.
#[derive(Debug)]
pub struct Peer {
    cfg: PeerConfig,
    state: PeerState,
    /// The user wants the peer up (between `start` and `stop`).
    started: bool,
    /// A `Connect` action is outstanding.
    connecting: bool,
    /// The connection we initiated.
    i_conn: Option<ConnId>,
    /// The connection the peer initiated.
    r_conn: Option<ConnId>,
    /// The peer's CER on `r_conn`, accepted by Process-CER, unanswered until the election or
    /// our own connection attempt decides (Wait-Conn-Ack/Elect, Wait-Returns).
    r_cer: Option<(Message, PeerInfo)>,
    /// (Hop-by-Hop, End-to-End) of our outstanding CER, DWR and DPR.
    cer_ids: Option<(u32, u32)>,
    dwr_ids: Option<(u32, u32)>,
    dpr_ids: Option<(u32, u32)>,
    /// The "Timeout" of the current state: handshake, DPA or linger.
    state_timer: Option<Instant>,
    /// Tc: when to connect again.
    reconnect_at: Option<Instant>,
    /// No reconnection before this (DPR with BUSY / DO_NOT_WANT_TO_TALK_TO_YOU).
    hold_off_until: Option<Instant>,
    /// Why we are in Closing.
    closing_reason: DownReason,
    wd: Watchdog,
    info: Option<Arc<PeerInfo>>,
    last_origin_state_id: Option<u32>,
    /// `Open` was emitted and no `Failover` since.
    available: bool,
    /// `Open` was emitted for the current connection (later availability is `Failback`).
    announced: bool,
    next_hbh: u32,
    next_e2e: u32,
    transmits: VecDeque<Transmit>,
    actions: VecDeque<PeerAction>,
    events: VecDeque<PeerEvent>,
}

impl Peer {
    /// A peer in state Closed. Nothing happens until [`Peer::start`] or
    /// [`Peer::handle_incoming`].
    pub fn new(cfg: PeerConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.seed ^ 0x1d5_c0de);
        let (next_hbh, next_e2e) = (rng.next_u64() as u32, rng.next_u64() as u32);
        let wd = Watchdog::new(cfg.timers.effective_tw(), cfg.seed);
        Self {
            cfg,
            state: PeerState::Closed,
            started: false,
            connecting: false,
            i_conn: None,
            r_conn: None,
            r_cer: None,
            cer_ids: None,
            dwr_ids: None,
            dpr_ids: None,
            state_timer: None,
            reconnect_at: None,
            hold_off_until: None,
            closing_reason: DownReason::LocalStop,
            wd,
            info: None,
            last_origin_state_id: None,
            available: false,
            announced: false,
            next_hbh,
            next_e2e,
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    /// The RFC 6733 §5.6 state.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// The RFC 3539 watchdog state.
    pub fn watchdog_state(&self) -> WatchdogState {
        self.wd.state()
    }

    /// What the peer told us at the last capabilities exchange.
    pub fn info(&self) -> Option<&Arc<PeerInfo>> {
        self.info.as_ref()
    }

    /// Whether new requests may be routed to this peer: open and watchdog OKAY.
    pub fn is_available(&self) -> bool {
        self.available
    }

    /// The connection messages go on: in I-Open, R-Open and Closing.
    pub fn open_conn(&self) -> Option<ConnId> {
        match self.state {
            PeerState::IOpen => self.i_conn,
            PeerState::ROpen => self.r_conn,
            PeerState::Closing => self.i_conn.or(self.r_conn),
            _ => None,
        }
    }

    // ---------------------------------------------------------------- driver output

    /// The next message to write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next action. Drain [`Peer::poll_transmit`] first: a `Disconnect(c)` or `Reject(c)`
    /// closes `c` only after what was queued for it is written (an error CEA, a DPA).
    pub fn poll_action(&mut self) -> Option<PeerAction> {
        self.actions.pop_front()
    }

    /// The next event for the node.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When [`Peer::handle_timeout`] must be called next, if ever. See the type's docs for
    /// what moves it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wd = if self.state.is_open() {
            self.wd.deadline()
        } else {
            None
        };
        [self.state_timer, self.reconnect_at, wd]
            .into_iter()
            .flatten()
            .min()
    }

    // ---------------------------------------------------------------- user input

    /// Start: connect now (RFC 6733 §5.6 Closed, "Start" → I-Snd-Conn-Req), and again every
    /// Tc after a failure, until [`Peer::stop`]. A responder-only peer
    /// ([`PeerConfig::connect`] false) just waits for the peer's CER.
    pub fn start(&mut self, now: Instant) {
        self.started = true;
        if self.state != PeerState::Closed || !self.cfg.connect || self.reconnect_at.is_some() {
            return;
        }
        match self.hold_off_until {
            Some(t) if t > now => self.reconnect_at = Some(t),
            _ => self.begin_connect(now),
        }
    }

    /// Stop: in I-Open/R-Open send DPR with `cause` and wait for the DPA (RFC 6733 §5.6 "Stop"
    /// → I-Snd-DPR/R-Snd-DPR → Closing); during set-up close everything. No reconnection
    /// until [`Peer::start`].
    pub fn stop(&mut self, now: Instant, cause: DisconnectCause) {
        self.started = false;
        self.reconnect_at = None;
        match self.state {
            PeerState::Closed | PeerState::Closing => {}
            PeerState::IOpen | PeerState::ROpen => {
                let Some(conn) = self.open_conn() else { return };
                let (hbh, e2e) = self.next_ids();
                self.dpr_ids = Some((hbh, e2e));
                self.transmit(conn, messages::dpr(&self.cfg.local, hbh, e2e, cause));
                // RFC 6733 §5.4: after DPR no new requests go to the peer.
                self.make_unavailable(DownReason::LocalStop);
                self.closing_reason = DownReason::LocalStop;
                self.set_state(PeerState::Closing);
                self.state_timer = Some(now + self.cfg.timers.dpa);
            }
            _ => self.close_all(now, DownReason::LocalStop, true),
        }
    }

    /// Queues an application message (request or answer) on the open connection. Answers are
    /// still accepted in Closing, so requests received before a DPR get answered.
    pub fn send(&mut self, bytes: Bytes) -> Result<ConnId, NotOpen> {
        let is_request = bytes.get(4).is_some_and(|f| f & CommandFlags::REQUEST != 0);
        let conn = match self.state {
            PeerState::IOpen | PeerState::ROpen => self.open_conn(),
            PeerState::Closing if !is_request => self.open_conn(),
            _ => None,
        };
        let conn = conn.ok_or(NotOpen(self.state))?;
        self.transmit(conn, bytes);
        Ok(conn)
    }

    // ---------------------------------------------------------------- transport input

    /// Our connection attempt succeeded (I-Rcv-Conn-Ack): send CER.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        if !self.connecting
            || !matches!(
                self.state,
                PeerState::WaitConnAck | PeerState::WaitConnAckElect
            )
        {
            // A late result of an abandoned attempt.
            self.actions.push_back(PeerAction::Disconnect(conn));
            return;
        }
        self.connecting = false;
        self.i_conn = Some(conn);
        let (hbh, e2e) = self.next_ids();
        self.cer_ids = Some((hbh, e2e));
        self.transmit(conn, messages::cer(&self.cfg.local, hbh, e2e));
        self.state_timer = Some(now + self.cfg.timers.handshake);
        if self.state == PeerState::WaitConnAck {
            // Wait-Conn-Ack, I-Rcv-Conn-Ack → I-Snd-CER → Wait-I-CEA.
            self.set_state(PeerState::WaitICea);
        } else {
            // Wait-Conn-Ack/Elect, I-Rcv-Conn-Ack → I-Snd-CER, Elect → Wait-Returns.
            self.set_state(PeerState::WaitReturns);
            self.elect(now);
        }
    }

    /// Our connection attempt failed (I-Rcv-Conn-Nack).
    pub fn handle_connect_failed(&mut self, now: Instant) {
        if !self.connecting {
            return;
        }
        self.connecting = false;
        match self.state {
            // Wait-Conn-Ack, I-Rcv-Conn-Nack → Cleanup → Closed (retry after Tc).
            PeerState::WaitConnAck => self.close_all(now, DownReason::ConnectionLost, false),
            // Wait-Conn-Ack/Elect, I-Rcv-Conn-Nack → R-Snd-CEA → R-Open.
            PeerState::WaitConnAckElect => self.accept_responder(now),
            _ => {}
        }
    }

    /// A new inbound connection whose first message is `cer` and whose Origin-Host names this
    /// peer (R-Conn-CER). The node screens first messages with
    /// [`screen_first_message`](super::screen_first_message) before calling this.
    pub fn handle_incoming(&mut self, now: Instant, conn: ConnId, cer: Message) {
        // RFC 6733 §5.6.1: the first message on a new connection must be a CER.
        if !is(&cer, CMD_CER, true) {
            self.actions.push_back(PeerAction::Reject(conn));
            return;
        }
        // A peer that restarted before we noticed its old connection die (a PCEF rebooted,
        // a TCP reset we never saw) comes back with a new Origin-State-Id (RFC 6733 §8.16):
        // the old connection is dead, so the new one replaces it instead of being refused.
        if self.state.is_open() && self.restarted(find_u32(&cer, ORIGIN_STATE_ID)) {
            self.close_all(now, DownReason::ConnectionLost, false);
        }
        match self.state {
            // RFC 6733 §5.6: in these states R-Conn-CER → R-Reject (bad-inputs 32: a second
            // connection from an open peer with the same Origin-State-Id is refused, the open
            // one is kept).
            PeerState::WaitConnAckElect
            | PeerState::WaitReturns
            | PeerState::IOpen
            | PeerState::ROpen
            | PeerState::Closing => {
                self.actions.push_back(PeerAction::Reject(conn));
                return;
            }
            PeerState::Closed | PeerState::WaitConnAck | PeerState::WaitICea => {}
        }
        // A CER from another host than the one configured: unknown peer (RFC 6733 §7.1.3 3010,
        // or silent close, per policy).
        let host = find_str(&cer, ORIGIN_HOST).unwrap_or_default();
        if self
            .cfg
            .remote_host
            .as_deref()
            .is_some_and(|h| !h.eq_ignore_ascii_case(host))
        {
            if let Some(cea) = cer::unknown_peer_answer(&self.cfg.local, &cer) {
                self.transmit(conn, cea);
            }
            self.refuse(conn, ResultCode::DIAMETER_UNKNOWN_PEER);
            return;
        }
        // Process-CER (RFC 6733 §5.6); on failure answer the error and close that connection
        // only: the state does not change.
        let info = match cer::process_cer(&self.cfg.local, &cer) {
            Ok(info) => info,
            Err(report) => {
                self.transmit(conn, messages::cea_error(&self.cfg.local, &cer, &report));
                self.refuse(conn, report.result_code);
                return;
            }
        };
        self.r_conn = Some(conn);
        self.r_cer = Some((cer, info));
        match self.state {
            // Closed, R-Conn-CER → R-Accept, Process-CER, R-Snd-CEA → R-Open.
            PeerState::Closed => self.accept_responder(now),
            // Wait-Conn-Ack, R-Conn-CER → R-Accept, Process-CER → Wait-Conn-Ack/Elect.
            PeerState::WaitConnAck => self.set_state(PeerState::WaitConnAckElect),
            // Wait-I-CEA, R-Conn-CER → R-Accept, Process-CER, Elect → Wait-Returns.
            _ => {
                self.set_state(PeerState::WaitReturns);
                self.elect(now);
            }
        }
    }

    /// A decoded message arrived on `conn`.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let on_i = self.i_conn == Some(conn);
        if !on_i && self.r_conn != Some(conn) {
            return; // a connection we already let go
        }
        match self.state {
            PeerState::WaitICea | PeerState::WaitReturns if on_i => {
                self.on_initiator_message(now, conn, &msg)
            }
            PeerState::IOpen | PeerState::ROpen if self.open_conn() == Some(conn) => {
                self.on_open_message(now, conn, msg);
            }
            PeerState::Closing if self.open_conn() == Some(conn) => {
                self.on_closing_message(now, conn, msg)
            }
            // The peer talks on its connection before we answered its CER: nothing may be
            // sent before the CEA (RFC 6733 §5.3), so drop it.
            _ => {}
        }
    }

    /// Application messages on the open connection were delivered by the driver without this
    /// state machine (see [`Peer::express_conn`]), the latest at `at`: liveness for the
    /// watchdog, as if they had passed through [`Peer::handle_message`]. Call it before
    /// [`Peer::handle_timeout`].
    pub fn handle_traffic(&mut self, now: Instant, at: Instant) {
        if !self.state.is_open() {
            return;
        }
        let before = self.wd.state();
        let action = self.wd.on_traffic(at.min(now));
        self.watchdog_changed(before);
        if let Some(a) = action {
            self.watchdog_action(now, a);
        }
    }

    /// The connection whose application messages (everything but CER, DWR, DPR and their
    /// answers) the driver may deliver and send without this state machine: the open
    /// connection while the peer is open with its watchdog OKAY. In every other state each
    /// message must come through [`Peer::handle_message`] and [`Peer::send`].
    pub fn express_conn(&self) -> Option<ConnId> {
        let open = matches!(self.state, PeerState::IOpen | PeerState::ROpen);
        if open && self.available && self.wd.state() == WatchdogState::Okay {
            self.open_conn()
        } else {
            None
        }
    }

    /// `conn` was closed by the peer or failed (I-Peer-Disc / R-Peer-Disc).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        let on_i = self.i_conn == Some(conn);
        if on_i {
            self.i_conn = None;
        } else if self.r_conn == Some(conn) {
            self.r_conn = None;
        } else {
            return;
        }
        match (self.state, on_i) {
            // Wait-Conn-Ack/Elect, R-Peer-Disc → R-Disc → Wait-Conn-Ack.
            (PeerState::WaitConnAckElect, false) => {
                self.r_cer = None;
                self.set_state(PeerState::WaitConnAck);
            }
            // Wait-Returns, I-Peer-Disc → I-Disc, R-Snd-CEA → R-Open.
            (PeerState::WaitReturns, true) => {
                self.cer_ids = None;
                self.accept_responder(now);
            }
            // Wait-Returns, R-Peer-Disc → R-Disc → Wait-I-CEA.
            (PeerState::WaitReturns, false) => {
                self.r_cer = None;
                self.set_state(PeerState::WaitICea);
            }
            // Closing, I-Peer-Disc / R-Peer-Disc → Closed.
            (PeerState::Closing, _) => self.close_all(now, self.closing_reason, true),
            // Wait-I-CEA, I-Peer-Disc → Closed; I-Open/R-Open, *-Peer-Disc → Closed.
            _ => self.close_all(now, DownReason::ConnectionLost, false),
        }
    }

    /// Timers: call at or after [`Peer::poll_timeout`]; early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state_timer.is_some_and(|t| t <= now) {
            self.state_timer = None;
            match self.state {
                // RFC 6733 §5.6: Timeout in Wait-Conn-Ack, Wait-I-CEA, Wait-Conn-Ack/Elect and
                // Wait-Returns → Error → Closed (bad-inputs 29: no CEA in time → close).
                PeerState::WaitConnAck
                | PeerState::WaitICea
                | PeerState::WaitConnAckElect
                | PeerState::WaitReturns => {
                    self.connecting = false;
                    self.close_all(now, DownReason::Timeout, false);
                }
                // Closing, Timeout → Error → Closed: no DPA, or the peer did not close after
                // our DPA.
                PeerState::Closing => self.close_all(now, self.closing_reason, true),
                _ => {}
            }
        }
        if self.reconnect_at.is_some_and(|t| t <= now) {
            self.reconnect_at = None;
            if self.state == PeerState::Closed && self.started && self.cfg.connect {
                self.begin_connect(now);
            }
        }
        if self.state.is_open() {
            let before = self.wd.state();
            let action = self.wd.on_timeout(now);
            self.watchdog_changed(before);
            if let Some(a) = action {
                self.watchdog_action(now, a);
            }
        }
    }

    // ---------------------------------------------------------------- internals

    fn set_state(&mut self, to: PeerState) {
        let from = self.state;
        if from != to {
            tracing::debug!(?from, ?to, peer = ?self.cfg.remote_host, "peer state");
            self.state = to;
            self.events.push_back(PeerEvent::StateChanged { from, to });
        }
    }

    fn watchdog_changed(&mut self, from: WatchdogState) {
        let to = self.wd.state();
        if from != to {
            tracing::debug!(?from, ?to, peer = ?self.cfg.remote_host, "watchdog state");
            self.events
                .push_back(PeerEvent::WatchdogChanged { from, to });
        }
    }

    fn transmit(&mut self, conn: ConnId, bytes: Bytes) {
        self.transmits.push_back(Transmit { conn, bytes });
    }

    /// Fresh identifiers for our own requests. Hop-by-Hop: "a monotonically increasing number,
    /// whose start value was randomly generated" (RFC 6733 §3); End-to-End likewise, seeded
    /// rather than clock-based so that runs are reproducible.
    fn next_ids(&mut self) -> (u32, u32) {
        let ids = (self.next_hbh, self.next_e2e);
        self.next_hbh = self.next_hbh.wrapping_add(1);
        self.next_e2e = self.next_e2e.wrapping_add(1);
        ids
    }

    fn begin_connect(&mut self, now: Instant) {
        // Closed, Start → I-Snd-Conn-Req → Wait-Conn-Ack.
        self.connecting = true;
        self.actions.push_back(PeerAction::Connect);
        self.state_timer = Some(now + self.cfg.timers.handshake);
        self.set_state(PeerState::WaitConnAck);
    }

    fn refuse(&mut self, conn: ConnId, result_code: ResultCode) {
        self.actions.push_back(PeerAction::Reject(conn));
        self.events.push_back(PeerEvent::CapabilitiesRejected {
            conn,
            by: Refuser::Local,
            result_code,
        });
    }

    /// RFC 6733 §5.6.4: the election, run when both connections carry a CER.
    fn elect(&mut self, now: Instant) {
        let Some((_, info)) = &self.r_cer else { return };
        if cer::wins_election(&self.cfg.local.origin_host, &info.origin_host) {
            // Wait-Returns, Win-Election → I-Disc, R-Snd-CEA → R-Open.
            if let Some(c) = self.i_conn.take() {
                self.actions.push_back(PeerAction::Disconnect(c));
            }
            self.cer_ids = None;
            self.accept_responder(now);
        }
        // Lost: wait for our CEA (then R-Disc) or for the winner to close our responder
        // connection (R-Peer-Disc → Wait-I-CEA).
    }

    /// R-Snd-CEA → R-Open, with the CER held in `r_cer`.
    fn accept_responder(&mut self, now: Instant) {
        let (Some(conn), Some((cer, info))) = (self.r_conn, self.r_cer.take()) else {
            self.close_all(now, DownReason::ConnectionLost, false);
            return;
        };
        self.transmit(conn, messages::cea_success(&self.cfg.local, &cer));
        self.set_state(PeerState::ROpen);
        self.opened(now, info);
    }

    /// R-Disc for a responder connection whose CER we never answered: tell the peer it lost
    /// the election (RFC 6733 §7.1.4 ELECTION_LOST 4003), then close.
    fn drop_responder(&mut self) {
        if let Some(c) = self.r_conn.take() {
            if let Some((cer, _)) = self.r_cer.take() {
                let mut r = ErrorReport::new(ResultCode::ELECTION_LOST);
                r.message = Some("election lost".into());
                self.transmit(c, messages::cea_error(&self.cfg.local, &cer, &r));
            }
            self.actions.push_back(PeerAction::Disconnect(c));
        }
    }

    /// Capabilities exchanged on the open connection: start the watchdog.
    fn opened(&mut self, now: Instant, info: PeerInfo) {
        self.state_timer = None;
        self.reconnect_at = None;
        if self.restarted(info.origin_state_id) {
            // A restarted peer is a fresh peer: no REOPEN probation for it.
            self.wd.forget();
        }
        self.note_origin_state(info.origin_state_id);
        self.info = Some(Arc::new(info));
        self.announced = false;
        self.dwr_ids = None;
        let before = self.wd.state();
        let action = self.wd.on_open(now);
        self.watchdog_changed(before);
        if let Some(a) = action {
            self.watchdog_action(now, a);
        }
    }

    fn watchdog_action(&mut self, now: Instant, action: WdAction) {
        let Some(conn) = self.open_conn() else { return };
        match action {
            WdAction::SendDwr => {
                let (hbh, e2e) = self.next_ids();
                self.dwr_ids = Some((hbh, e2e));
                self.transmit(conn, messages::dwr(&self.cfg.local, hbh, e2e));
            }
            WdAction::Failover => self.make_unavailable(DownReason::Watchdog),
            WdAction::Failback => {
                self.available = true;
                if self.announced {
                    self.events.push_back(PeerEvent::Failback { conn });
                } else if let Some(info) = self.info.clone() {
                    self.announced = true;
                    self.events.push_back(PeerEvent::Open { conn, info });
                }
            }
            // SUSPECT or REOPEN, timer expires → CloseConnection() → DOWN.
            WdAction::Close => self.close_all(now, DownReason::Watchdog, false),
        }
    }

    fn make_unavailable(&mut self, reason: DownReason) {
        if std::mem::take(&mut self.available) {
            self.events.push_back(PeerEvent::Failover { reason });
        }
    }

    /// The Origin-State-Id the peer had when the node last saw it (a peer the node forgot
    /// when it left), so that its next CER tells whether it restarted.
    pub fn remember_origin_state(&mut self, origin_state_id: u32) {
        self.last_origin_state_id = Some(origin_state_id);
    }

    /// Whether `current` differs from the Origin-State-Id the peer sent before: it restarted
    /// (RFC 6733 §8.16: the value changes whenever the peer loses its state).
    fn restarted(&self, current: Option<u32>) -> bool {
        matches!((self.last_origin_state_id, current), (Some(p), Some(c)) if p != c)
    }

    /// A higher Origin-State-Id than before: the peer restarted (RFC 6733 §8.16).
    fn note_origin_state(&mut self, current: Option<u32>) {
        let Some(current) = current else { return };
        if let Some(previous) = self.last_origin_state_id.filter(|&p| p != current) {
            self.events
                .push_back(PeerEvent::Restarted { previous, current });
        }
        self.last_origin_state_id = Some(current);
    }

    /// Closes every connection and enters Closed; retries after Tc when started.
    fn close_all(&mut self, now: Instant, reason: DownReason, graceful: bool) {
        let was_open = self.state.is_open() || self.state == PeerState::Closing;
        if let Some(c) = self.i_conn.take() {
            self.actions.push_back(PeerAction::Disconnect(c));
        }
        if let Some(c) = self.r_conn.take() {
            self.actions.push_back(PeerAction::Disconnect(c));
        }
        self.connecting = false;
        self.r_cer = None;
        self.cer_ids = None;
        self.dwr_ids = None;
        self.dpr_ids = None;
        self.state_timer = None;
        self.make_unavailable(reason);
        let before = self.wd.state();
        self.wd.on_conn_down(graceful);
        self.watchdog_changed(before);
        self.set_state(PeerState::Closed);
        if was_open {
            self.events.push_back(PeerEvent::Down { reason });
        }
        if self.started && self.cfg.connect {
            // RFC 6733 §12 Tc: reconnect every Tc; later if the peer asked us to stay away.
            let at = now + self.cfg.timers.tc;
            self.reconnect_at = Some(self.hold_off_until.map_or(at, |h| h.max(at)));
        }
    }

    /// Wait-I-CEA / Wait-Returns: a message on our connection.
    fn on_initiator_message(&mut self, now: Instant, conn: ConnId, msg: &Message) {
        let h = msg.header();
        if is(msg, CMD_CER, false) && self.cer_ids != Some((h.hop_by_hop, h.end_to_end)) {
            // RFC 6733 §3 (bad-inputs 35): an answer with an unknown Hop-by-Hop Identifier is
            // discarded.
            return;
        }
        let result = if is(msg, CMD_CER, false) {
            self.cer_ids = None;
            cer::process_cea(&self.cfg.local, self.cfg.remote_host.as_deref(), msg)
        } else {
            // I-Rcv-Non-CEA → Error.
            Err(CeaFailure::Unusable(ResultCode::DIAMETER_UNABLE_TO_COMPLY))
        };
        match result {
            Ok(info) => {
                // Wait-I-CEA, I-Rcv-CEA → Process-CEA → I-Open;
                // Wait-Returns, I-Rcv-CEA → R-Disc → I-Open.
                self.drop_responder();
                self.set_state(PeerState::IOpen);
                self.opened(now, info);
            }
            Err(failure) => {
                let (by, result_code) = match failure {
                    CeaFailure::Refused(rc) => (Refuser::Remote, rc),
                    CeaFailure::Unusable(rc) => (Refuser::Local, rc),
                };
                self.events.push_back(PeerEvent::CapabilitiesRejected {
                    conn,
                    by,
                    result_code,
                });
                if self.state == PeerState::WaitReturns {
                    // Our connection is useless; the peer's is waiting: as I-Peer-Disc.
                    if let Some(c) = self.i_conn.take() {
                        self.actions.push_back(PeerAction::Disconnect(c));
                    }
                    self.cer_ids = None;
                    self.accept_responder(now);
                } else {
                    // Wait-I-CEA, I-Rcv-Non-CEA (or an unusable CEA) → Error → Closed.
                    self.close_all(now, DownReason::ProtocolError, false);
                }
            }
        }
    }

    /// I-Open / R-Open: a message on the open connection.
    fn on_open_message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let h = *msg.header();
        // A DWA counts only when it answers our outstanding DWR (bad-inputs 35: a DWA with a
        // wrong Hop-by-Hop or End-to-End is only traffic).
        let is_dwa = is(&msg, CMD_DWR, false) && self.dwr_ids == Some((h.hop_by_hop, h.end_to_end));
        if is_dwa {
            self.dwr_ids = None;
        }
        // RFC 3539 §3.4.1: any message re-arms Tw in OKAY and fails back from SUSPECT.
        let wd_before = self.wd.state();
        let action = self.wd.on_receive(now, is_dwa);
        self.watchdog_changed(wd_before);
        if let Some(a) = action {
            self.watchdog_action(now, a);
        }
        match (h.command_code, h.is_request()) {
            (CMD_CER, true) => {
                // RFC 6733 §5.3: CER is only sent at connection set-up; renegotiation on an
                // open connection (RFC 3588) is gone (§1.1.3). Policy (bad-inputs 31): answer
                // 5012 DIAMETER_UNABLE_TO_COMPLY, then close.
                let ans = messages::error_answer(
                    &self.cfg.local,
                    &msg,
                    ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                    "CER on an open connection",
                );
                self.transmit(conn, ans);
                self.close_all(now, DownReason::ProtocolError, false);
            }
            (CMD_DWR, true) => match messages::base_request_error(&self.cfg.local, &msg) {
                // A DWR that breaks its grammar gets its error answer, nothing else (it
                // still counted as traffic above).
                Some(ans) => self.transmit(conn, ans),
                None => {
                    // RFC 6733 §5.5.1: a DWR is answered with a DWA.
                    self.note_origin_state(find_u32(&msg, ORIGIN_STATE_ID));
                    self.transmit(conn, messages::dwa(&self.cfg.local, &msg));
                }
            },
            (CMD_DWR, false) => {
                if is_dwa {
                    self.note_origin_state(find_u32(&msg, ORIGIN_STATE_ID));
                }
            }
            // A DPR that breaks its grammar is refused and changes nothing.
            (CMD_DPR, true) => match messages::base_request_error(&self.cfg.local, &msg) {
                Some(ans) => self.transmit(conn, ans),
                None => self.on_dpr(now, conn, &msg),
            },
            // Unexpected CEA or DPA: discarded (RFC 6733 §3, bad-inputs 35).
            (CMD_CER | CMD_DPR, false) => {}
            // RFC 3539 §3.4.1: REOPEN, receive non-DWA → Throwaway(). The watchdog decides
            // where *we* send traffic; a peer that talks to us after reconnecting is answered
            // (as freeDiameter does), or a client that never answers DWR would never be served.
            // Answers are still thrown away: nothing of ours was sent in REOPEN.
            (_, false) if wd_before == WatchdogState::Reopen => {}
            (_, true) => self.events.push_back(PeerEvent::Request { conn, msg }),
            (_, false) => self.events.push_back(PeerEvent::Answer { conn, msg }),
        }
    }

    /// I-Rcv-DPR / R-Rcv-DPR → Snd-DPA → Closing: we wait for the peer, who sent the DPR, to
    /// close (RFC 6733 §5.4), at most `linger`.
    fn on_dpr(&mut self, now: Instant, conn: ConnId, msg: &Message) {
        let cause = find_u32(msg, DISCONNECT_CAUSE).map_or(DisconnectCause::Rebooting, |v| {
            DisconnectCause::from_value(v as i32)
        });
        self.transmit(conn, messages::dpa(&self.cfg.local, msg));
        self.events
            .push_back(PeerEvent::DisconnectRequested { cause });
        self.make_unavailable(DownReason::PeerDisconnect(cause));
        // RFC 6733 §5.4.3: BUSY and DO_NOT_WANT_TO_TALK_TO_YOU ask us not to come back soon;
        // REBOOTING lets us reconnect after Tc as usual.
        self.hold_off_until = cause.holds_off().then(|| now + self.cfg.timers.hold_off);
        self.closing_reason = DownReason::PeerDisconnect(cause);
        self.set_state(PeerState::Closing);
        self.state_timer = Some(now + self.cfg.timers.linger);
    }

    /// Closing: answers still arrive (nothing in flight is lost), DPA ends it.
    fn on_closing_message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let h = *msg.header();
        match (h.command_code, h.is_request()) {
            // Closing, I-Rcv-DPA / R-Rcv-DPA → I-Disc / R-Disc → Closed.
            (CMD_DPR, false) if self.dpr_ids == Some((h.hop_by_hop, h.end_to_end)) => {
                self.close_all(now, self.closing_reason, true);
            }
            // Both sides sent DPR at once: answer theirs too. Keep the peer's watchdog
            // quiet until the connection goes. Either refused if it breaks its grammar.
            (CMD_DPR | CMD_DWR, true) => {
                let ans =
                    messages::base_request_error(&self.cfg.local, &msg).unwrap_or_else(|| {
                        if h.command_code == CMD_DPR {
                            messages::dpa(&self.cfg.local, &msg)
                        } else {
                            messages::dwa(&self.cfg.local, &msg)
                        }
                    });
                self.transmit(conn, ans);
            }
            (CMD_CER | CMD_DWR | CMD_DPR, _) => {}
            (_, true) => self.events.push_back(PeerEvent::Request { conn, msg }),
            (_, false) => self.events.push_back(PeerEvent::Answer { conn, msg }),
        }
    }
}
