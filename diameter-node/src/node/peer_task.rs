//! The tokio driver of one peer: owns the sans-IO [`Peer`], its connections and its timer,
//! and turns the peer's events into node work (requests, answers, failover).

use super::NodeEvent;
use super::Shared;
use super::conn::{self, ConnEvent, ConnHandle, Owner, Refused, WriteQueue};
use super::express::{ExpressLane, is_request};
use crate::capture::CaptureConn;
use crate::framing::DiameterCodec;
use crate::peer::{ConnId, DisconnectCause, Peer, PeerAction, PeerEvent, PeerInfo, PeerState};
use crate::transport::{self, Stream, Transport};
use bytes::Bytes;
use diameter_codec::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

/// Commands from the node to a peer task.
pub(crate) enum PeerCmd {
    /// Send an encoded application message on the open connection.
    Send(Bytes),
    /// A connection the peer opened, with its CER already read by the acceptor.
    Incoming(Box<IncomingConn>),
    /// Disconnect with DPR and end the task; `done` fires when the peer is closed.
    Stop(DisconnectCause, oneshot::Sender<()>),
}

/// An accepted connection and the CER read from it.
pub(crate) struct IncomingConn {
    pub(crate) rd: FramedRead<ReadHalf<Stream>, DiameterCodec>,
    pub(crate) wr: WriteHalf<Stream>,
    pub(crate) cap: Option<CaptureConn>,
    pub(crate) cer: Message,
}

/// The node's handle on a peer task.
pub(crate) struct PeerHandle {
    /// Commands.
    pub(crate) cmd: mpsc::Sender<PeerCmd>,
    /// Open with watchdog OKAY: takes new requests.
    pub(crate) available: Arc<AtomicBool>,
    /// The peer advertised the Relay application: it may forward others' requests.
    pub(crate) relay: Arc<AtomicBool>,
    /// Application messages while the peer is open and OKAY, without the peer task.
    pub(crate) lane: Arc<ExpressLane>,
    /// Configured or added through the API: kept when it disconnects. Unknown peers
    /// accepted by policy are forgotten once they go.
    pub(crate) configured: bool,
    /// Configured as an agent that forwards others' requests (`PeerSpec::forwards`).
    pub(crate) forwards: AtomicBool,
    /// What the peer announced in CER/CEA, while a connection is open.
    info: Mutex<Option<Arc<PeerInfo>>>,
    /// The write queues of the peer's connections (those still alive).
    queues: Mutex<Vec<Weak<WriteQueue>>>,
}

impl PeerHandle {
    pub(crate) fn new(cmd: mpsc::Sender<PeerCmd>, configured: bool) -> Self {
        Self {
            cmd,
            available: Arc::new(AtomicBool::new(false)),
            relay: Arc::new(AtomicBool::new(false)),
            lane: Arc::new(ExpressLane::new()),
            configured,
            forwards: AtomicBool::new(false),
            info: Mutex::new(None),
            queues: Mutex::new(Vec::new()),
        }
    }

    /// What the peer announced, while it is connected.
    pub(crate) fn info(&self) -> Option<Arc<PeerInfo>> {
        self.info.lock().expect("peer info lock").clone()
    }

    fn set_info(&self, info: Option<Arc<PeerInfo>>) {
        *self.info.lock().expect("peer info lock") = info;
    }

    /// Hands `bytes` to the peer: straight to the open connection's writer while the
    /// express lane is open, else to the peer task's bounded queue (which may be full). A
    /// request is also refused as `Full` when the connection's write queue is over its
    /// byte budget.
    pub(crate) fn try_send(&self, bytes: Bytes) -> Result<(), mpsc::error::TrySendError<PeerCmd>> {
        match self.lane.send(bytes) {
            Ok(()) => Ok(()),
            Err(Refused::Full(bytes)) => Err(mpsc::error::TrySendError::Full(PeerCmd::Send(bytes))),
            Err(Refused::Closed(bytes)) => self.cmd.try_send(PeerCmd::Send(bytes)),
        }
    }

    /// Bytes queued for writing on the peer's connections.
    pub(crate) fn queued_bytes(&self) -> usize {
        let queues = self.queues.lock().expect("queues lock");
        queues
            .iter()
            .filter_map(Weak::upgrade)
            .map(|q| q.queued())
            .sum()
    }

    fn watch(&self, h: &ConnHandle) {
        let mut queues = self.queues.lock().expect("queues lock");
        queues.retain(|q| q.strong_count() > 0);
        queues.push(Arc::downgrade(h.queue()));
    }
}

/// Where and how to reach a peer we connect to.
pub(crate) struct Dial {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
}

struct Driver {
    shared: Arc<Shared>,
    host: String,
    peer: Peer,
    conns: HashMap<ConnId, ConnHandle>,
    dial: Option<Dial>,
    owner: Owner,
    connects: mpsc::Sender<Result<Stream, transport::TransportError>>,
    handle: Arc<PeerHandle>,
    stopping: Vec<oneshot::Sender<()>>,
    /// An unknown peer that went down: the task ends and the node forgets it.
    departed: bool,
}

/// Runs a peer until it is stopped (or the node is dropped).
pub(crate) async fn run(
    shared: Arc<Shared>,
    host: String,
    mut peer: Peer,
    dial: Option<Dial>,
    mut cmds: mpsc::Receiver<PeerCmd>,
    handle: Arc<PeerHandle>,
) {
    let (conn_events, mut conn_rx) = mpsc::channel(1024);
    let (connects, mut connect_rx) = mpsc::channel(1);
    if dial.is_some() {
        peer.start(Instant::now());
    }
    let owner = Owner {
        host: host.as_str().into(),
        events: conn_events,
        lane: handle.lane.clone(),
    };
    if !handle.configured {
        crate::metrics::move_unconfigured_peer(&shared.metrics, None, Some(peer.state()));
    }
    let mut d = Driver {
        shared,
        host,
        peer,
        conns: HashMap::new(),
        dial,
        owner,
        connects,
        handle,
        stopping: Vec::new(),
        departed: false,
    };
    loop {
        d.drain();
        if (d.departed || !d.stopping.is_empty()) && d.peer.state() == PeerState::Closed {
            break;
        }
        let deadline = d.peer.poll_timeout();
        tokio::select! {
            biased;
            ev = conn_rx.recv() => {
                let Some(ev) = ev else { break };
                d.on_conn_event(ev);
                // Take what else is ready before draining: fewer wake-ups under load.
                for _ in 0..64 {
                    match conn_rx.try_recv() {
                        Ok(ev) => d.on_conn_event(ev),
                        Err(_) => break,
                    }
                }
            }
            r = connect_rx.recv() => {
                let now = Instant::now();
                match r {
                    Some(Ok(stream)) => {
                        let id = d.shared.next_conn_id();
                        let h = conn::spawn(&d.shared, id, stream, false, d.owner.clone());
                        d.handle.watch(&h);
                        d.conns.insert(id, h);
                        d.peer.handle_connected(now, id);
                    }
                    Some(Err(e)) => {
                        tracing::debug!(peer = %d.host, error = %e, "connect failed");
                        d.peer.handle_connect_failed(now);
                    }
                    None => break,
                }
            }
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else {
                    d.peer.stop(Instant::now(), DisconnectCause::Rebooting);
                    d.drain();
                    break;
                };
                d.on_cmd(cmd);
                for _ in 0..256 {
                    match cmds.try_recv() {
                        Ok(cmd) => d.on_cmd(cmd),
                        Err(_) => break,
                    }
                }
            }
            () = sleep_until(deadline) => {
                let now = Instant::now();
                // Liveness first: traffic on the express lane re-arms the watchdog.
                if let Some(at) = d.handle.lane.last_rx() {
                    d.peer.handle_traffic(now, at);
                }
                d.peer.handle_timeout(now);
            }
        }
    }
    d.handle.lane.close();
    d.handle.available.store(false, Ordering::Release);
    d.shared.failover(&d.host);
    for h in d.conns.values() {
        h.close();
    }
    for s in d.stopping.drain(..) {
        let _ = s.send(());
    }
    if !d.handle.configured {
        crate::metrics::move_unconfigured_peer(&d.shared.metrics, Some(d.peer.state()), None);
        // issue 9.4: a departed unknown peer leaves nothing behind. A connection it opened
        // again meanwhile is handed to a fresh task rather than lost.
        d.shared.forget_peer(&d.host, &d.handle);
        if let Some(osi) = d.peer.info().and_then(|i| i.origin_state_id) {
            d.shared.remember_origin_state(&d.host, osi);
        }
        cmds.close();
        while let Ok(cmd) = cmds.try_recv() {
            if let PeerCmd::Incoming(inc) = cmd {
                d.shared.adopt_incoming(&d.host, inc);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn on_conn_event(&mut self, ev: ConnEvent) {
        let now = Instant::now();
        match ev {
            ConnEvent::Message(c, m) => self.peer.handle_message(now, c, m),
            ConnEvent::Closed(c) => {
                self.conns.remove(&c);
                self.peer.handle_closed(now, c);
            }
        }
    }

    fn on_cmd(&mut self, cmd: PeerCmd) {
        let now = Instant::now();
        match cmd {
            PeerCmd::Send(bytes) => {
                // A request for a connection whose writes are not draining: 3004, as on
                // the express lane (see `conn`).
                let full = self
                    .peer
                    .open_conn()
                    .and_then(|c| self.conns.get(&c))
                    .is_some_and(|h| h.queue().is_full());
                if full && is_request(&bytes) {
                    if let Some(hbh) = super::edit::hop_by_hop(&bytes) {
                        self.shared.refuse_busy(&self.host, hbh);
                    }
                } else if self.peer.send(bytes.clone()).is_err() {
                    // The peer closed between routing and sending: fail over at once.
                    if let Some(hbh) = super::edit::hop_by_hop(&bytes) {
                        self.shared.reroute(&self.host, hbh);
                    }
                }
            }
            PeerCmd::Incoming(inc) => {
                let IncomingConn { rd, wr, cap, cer } = *inc;
                let id = self.shared.next_conn_id();
                let h = conn::spawn_split(&self.shared, id, rd, wr, cap, self.owner.clone());
                self.handle.watch(&h);
                self.conns.insert(id, h);
                self.peer.handle_incoming(now, id, cer);
            }
            PeerCmd::Stop(cause, done) => {
                self.stopping.push(done);
                self.peer.stop(now, cause);
            }
        }
    }

    /// Carries out everything the state machine wants, until it wants nothing more.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.peer.poll_transmit() {
                progressed = true;
                if let Some(h) = self.conns.get(&t.conn) {
                    let _ = h.send(self.shared.bounded_bytes(t.bytes));
                }
            }
            while let Some(a) = self.peer.poll_action() {
                progressed = true;
                match a {
                    PeerAction::Connect => self.connect(),
                    PeerAction::Disconnect(c) | PeerAction::Reject(c) => {
                        if let Some(h) = self.conns.remove(&c) {
                            h.close();
                        }
                    }
                }
            }
            self.handle
                .available
                .store(self.peer.is_available(), Ordering::Release);
            self.update_express();
            while let Some(e) = self.peer.poll_event() {
                progressed = true;
                self.on_event(e);
            }
            if !progressed {
                break;
            }
        }
    }

    /// Opens or closes the express lane as the state machine allows.
    fn update_express(&mut self) {
        let want = self.peer.express_conn();
        if want == self.handle.lane.conn() {
            return;
        }
        match want.and_then(|c| self.conns.get(&c).map(|h| (c, h.clone()))) {
            Some((c, w)) => self.handle.lane.open(c, w),
            None => self.handle.lane.close(),
        }
    }

    fn connect(&mut self) {
        let Some(dial) = &self.dial else {
            // A peer we only accept: the state machine is configured not to connect.
            self.peer.handle_connect_failed(Instant::now());
            return;
        };
        let (addr, transport, host) = (dial.addr, dial.transport.clone(), self.host.clone());
        let timeout = self.shared.cfg.handshake_timeout;
        let tx = self.connects.clone();
        tokio::spawn(async move {
            let r = transport::connect(addr, &transport, &host, timeout).await;
            let _ = tx.send(r).await;
        });
    }

    fn on_event(&mut self, e: PeerEvent) {
        match e {
            PeerEvent::StateChanged { from, to } => {
                if to.is_open() {
                    // Known from the CER/CEA on, REOPEN included (requests are served then).
                    self.handle.set_info(self.peer.info().cloned());
                }
                if self.handle.configured {
                    crate::metrics::set_peer_state(&self.shared.metrics, &self.host, to);
                } else {
                    crate::metrics::move_unconfigured_peer(
                        &self.shared.metrics,
                        Some(from),
                        Some(to),
                    );
                }
                let state = crate::metrics::peer_state_name(to);
                tracing::debug!(peer = %self.host, state, "peer state");
            }
            PeerEvent::Open { info, .. } => {
                self.handle
                    .relay
                    .store(info.negotiated.relay, Ordering::Release);
                self.handle.set_info(Some(info.clone()));
                tracing::info!(peer = %self.host, origin_host = %info.origin_host, "peer open");
                self.shared.emit(NodeEvent::PeerUp {
                    peer: self.host.clone(),
                    info,
                });
            }
            PeerEvent::Failover { reason } => {
                tracing::info!(peer = %self.host, ?reason, "failover");
                self.shared.failover(&self.host);
            }
            PeerEvent::Down { reason } => {
                tracing::info!(peer = %self.host, ?reason, "peer down");
                self.handle.set_info(None);
                self.shared.failover(&self.host);
                self.departed = !self.handle.configured;
                self.shared.emit(NodeEvent::PeerDown {
                    peer: self.host.clone(),
                    reason,
                });
            }
            PeerEvent::Request { msg, .. } => self.shared.on_request(&self.host, msg),
            PeerEvent::Answer { msg, .. } => self.shared.on_answer(&self.host, msg),
            PeerEvent::Restarted { previous, current } => {
                tracing::info!(peer = %self.host, previous, current, "peer restarted (Origin-State-Id)");
                let at_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                self.shared.emit(NodeEvent::PeerRestarted {
                    peer: self.host.clone(),
                    previous,
                    current,
                    at_ms,
                });
            }
            other => tracing::debug!(peer = %self.host, event = ?other, "peer event"),
        }
    }
}
