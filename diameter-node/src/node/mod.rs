//! The Diameter node: peers (each a sans-IO [`Peer`] under a tokio driver), listeners, the
//! request API with Hop-by-Hop matching and deadlines, handlers per application, routing
//! (local, relay, proxy, redirect), failover with the T bit, duplicate detection and
//! overload protection.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn};
//! use diameter_node::peer::Application;
//! use diameter_codec::ResultCode;
//!
//! let mut cfg = NodeConfig::new("server.example", "example");
//! cfg.local.applications.push(Application::auth(4));
//! cfg.listen.push("127.0.0.1:3868".parse::<std::net::SocketAddr>()?.into());
//! cfg.peers.push(PeerSpec::accept_only("client.example"));
//! let node = Node::start(cfg).await?;
//! node.register(4, handler_fn(|req| async move {
//!     req.answer(ResultCode::DIAMETER_SUCCESS)
//! }));
//! # Ok(()) }
//! ```
//!
//! Where each job lives: [`config`](NodeConfig) the settings; `handler` what an application
//! registers and receives; `client` requests this node sends and redirects it follows;
//! `dispatch` requests received (checks, routing, duplicates, local handlers); `pending`
//! requests in flight, matching, failover and deadlines; `accept` connections up to their
//! CER; `peer_task` and `conn` the per-peer and per-connection tasks; `express` the fast
//! path of an open peer; `edit` the byte-level rewrites of relayed messages; `size` the bound on what we send
//! and on Proxy-Info.

mod accept;
mod client;
mod config;
mod conn;
mod dispatch;
mod edit;
mod events;
mod express;
mod forward;
mod handler;
mod peer_task;
mod pending;
mod size;

/// Most Proxy-Info AVPs a request may carry (RFC 6733 §6.7.3: one per proxy on the path,
/// so a handful in practice). Each is copied into the answer (§6.2), so the bound also
/// bounds what a request can make us send back; Proxy-Info nested in Proxy-Info counts too.
pub const MAX_PROXY_INFO: usize = 16;

pub use client::{Delivered, RequestError, SendOptions};
pub use config::{ListenSpec, NodeConfig, PeerSpec, RoutePeer, relay_route};
pub use events::NodeEvent;
pub use handler::{
    AnswerEdit, AnswerWatch, AtOnce, Forward, Handler, HandlerFuture, IncomingRequest, Outcome,
    Redirect, handler_fn,
};

use crate::capture::{Capture, CaptureConn, Direction};
use crate::dedup::DupCache;
use crate::peer::{
    DisconnectCause, LocalConfig, Peer, PeerConfig, PeerInfo, RELAY_APPLICATION_ID, Timers,
};
use crate::routing::{Decision, RedirectCache, RequestInfo, Router};
use crate::transport::Listener;
use accept::accept_loop;
use diameter_codec::{Dictionary, LocalIdentity, SessionIdGenerator};
use dispatch::Waiter;
use peer_task::{Dial, PeerCmd, PeerHandle};
use pending::{Pending, sweep_loop};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How many departed unknown peers' Origin-State-Ids are remembered.
const DEPARTED_CAP: usize = 65_536;

pub(crate) struct Shared {
    cfg: NodeConfig,
    local: Arc<LocalConfig>,
    identity: LocalIdentity,
    router: Router,
    dict: &'static Dictionary,
    session_ids: SessionIdGenerator,
    /// Keyed by lower-case host. FxHash: keys are configured or CER-proven identities and our
    /// own Hop-by-Hop Identifiers, never attacker-chosen in bulk, and these maps are on every
    /// message's path.
    peers: RwLock<FxHashMap<String, Arc<PeerHandle>>>,
    pending: Mutex<FxHashMap<u32, Pending>>,
    handlers: RwLock<FxHashMap<u32, Arc<dyn Handler>>>,
    dedup: Mutex<DupCache<Waiter>>,
    redirects: Mutex<RedirectCache>,
    hop_by_hop: AtomicU32,
    end_to_end: AtomicU32,
    conn_ids: AtomicU64,
    handler_slots: Arc<Semaphore>,
    handshakes: Arc<accept::Handshakes>,
    capture: Option<Arc<Capture>>,
    /// The `node` label of every metric this node records (its Origin-Host).
    metrics: crate::metrics::NodeLabel,
    stopped: AtomicBool,
    /// Peer events for applications; nobody listening costs nothing.
    events: broadcast::Sender<NodeEvent>,
    /// Last Origin-State-Id of unknown peers that left (see `remember_origin_state`).
    departed: Mutex<FxHashMap<String, u32>>,
    /// Cancelled by [`Node::shutdown`]: the accept loops end and drop their listeners.
    stop_accepting: CancellationToken,
    /// The accept loops, awaited by [`Node::shutdown`] so the ports are free when it returns.
    acceptors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The bound listening addresses, set once they are bound.
    listen_addrs: std::sync::OnceLock<Vec<SocketAddr>>,
    weak_self: std::sync::Weak<Self>,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

impl Node {
    /// Binds the listeners, starts the peers, and returns the running node.
    pub async fn start(cfg: NodeConfig) -> std::io::Result<Self> {
        let mut router = Router::new(
            cfg.local.origin_host.clone(),
            cfg.local.origin_realm.clone(),
        );
        router.is_agent = cfg.agent;
        router.local_applications = cfg
            .local
            .applications
            .iter()
            .map(|a| a.id)
            .filter(|&id| id != RELAY_APPLICATION_ID)
            .collect();
        for r in &cfg.routes {
            router.add_route(r.clone());
        }
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // RFC 6733 §3: End-to-End "the high order 12 bits contain the low order 12 bits of
        // current time, and the low order 20 bits contain a random value".
        let e2e = ((seed.as_secs() as u32 & 0xfff) << 20) | (seed.subsec_nanos() & 0xf_ffff);
        let shared = Arc::new_cyclic(|weak| Shared {
            local: Arc::new(cfg.local.clone()),
            identity: LocalIdentity::new(
                cfg.local.origin_host.clone(),
                cfg.local.origin_realm.clone(),
            ),
            router,
            dict: cfg.dictionary,
            session_ids: SessionIdGenerator::new(cfg.local.origin_host.clone(), seed.as_secs()),
            peers: RwLock::new(FxHashMap::default()),
            pending: Mutex::new(FxHashMap::default()),
            handlers: RwLock::new(FxHashMap::default()),
            dedup: Mutex::new(
                DupCache::new(cfg.dedup_window, cfg.dedup_capacity)
                    .with_max_bytes(cfg.dedup_max_bytes),
            ),
            redirects: Mutex::new(RedirectCache::new(10_000)),
            hop_by_hop: AtomicU32::new(seed.subsec_nanos()),
            end_to_end: AtomicU32::new(e2e),
            conn_ids: AtomicU64::new(1),
            handler_slots: Arc::new(Semaphore::new(cfg.max_concurrent_handlers)),
            handshakes: Arc::new(accept::Handshakes::new(&cfg)),
            capture: cfg.capture.clone(),
            metrics: crate::metrics::NodeLabel::new(&cfg.local.origin_host),
            stopped: AtomicBool::new(false),
            events: broadcast::channel(1024).0,
            departed: Mutex::new(FxHashMap::default()),
            stop_accepting: CancellationToken::new(),
            acceptors: Mutex::new(Vec::new()),
            listen_addrs: std::sync::OnceLock::new(),
            weak_self: weak.clone(),
            cfg,
        });
        let mut addrs = Vec::new();
        for l in &shared.cfg.listen {
            let listener = Listener::bind(l.addr, l.transport.clone()).await?;
            addrs.push(listener.local_addr()?);
            let task = tokio::spawn(accept_loop(shared.clone(), listener));
            shared.acceptors.lock().expect("acceptors lock").push(task);
        }
        for p in &shared.cfg.peers {
            shared.spawn_configured(p);
        }
        tokio::spawn(sweep_loop(Arc::downgrade(&shared)));
        let _ = shared.listen_addrs.set(addrs);
        Ok(Self { shared })
    }

    /// The bound listening addresses, in configuration order.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        self.shared.listen_addrs.get().map_or(&[], Vec::as_slice)
    }

    /// Our Origin-Host and Origin-Realm.
    pub fn identity(&self) -> &LocalIdentity {
        &self.shared.identity
    }

    /// The dictionary the node validates and prints with ([`NodeConfig::dictionary`]).
    pub fn dictionary(&self) -> &'static Dictionary {
        self.shared.dict
    }

    /// Session-Id values for sessions this node starts (RFC 6733 §8.8): our Origin-Host,
    /// then a 64-bit counter whose high half is the start-up time, so values stay unique
    /// across restarts.
    pub fn session_ids(&self) -> &SessionIdGenerator {
        &self.shared.session_ids
    }

    /// Registers the handler of an application. A handler registered for the relay
    /// application id (0xffffffff) serves every application that has none of its own.
    pub fn register(&self, application_id: u32, handler: Arc<dyn Handler>) {
        self.shared
            .handlers
            .write()
            .expect("handlers lock")
            .insert(application_id, handler);
    }

    /// Peer events from now on (up with its capabilities, restarted, down). A receiver that
    /// falls more than 1,024 events behind loses the oldest (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// What `host` announced in its CER/CEA — Origin-Host, Origin-Realm, applications,
    /// Origin-State-Id — while its connection is up.
    pub fn peer_info(&self, host: &str) -> Option<Arc<PeerInfo>> {
        self.shared.peer(host).and_then(|p| p.info())
    }

    /// Adds a peer at run time (no restart, no reload): connects to it when it has an
    /// address, else waits for it to connect. Replaces nothing: a peer of the same host
    /// already known is kept and `false` returned.
    pub fn add_peer(&self, spec: PeerSpec) -> bool {
        if self.shared.peer(&spec.host).is_some() {
            return false;
        }
        self.shared.spawn_configured(&spec);
        true
    }

    /// Removes a peer at run time: disconnects it with DPR (DO_NOT_WANT_TO_TALK_TO_YOU,
    /// RFC 6733 §5.4.3), fails its pending requests over, and forgets it. Waits up to
    /// `timeout` for the DPA. Returns whether the peer was known.
    pub async fn remove_peer(&self, host: &str, timeout: Duration) -> bool {
        let s = &self.shared;
        let Some(handle) = s.peer(host) else {
            return false;
        };
        s.forget_peer(host, &handle);
        let (tx, rx) = oneshot::channel();
        if handle
            .cmd
            .send(PeerCmd::Stop(DisconnectCause::DoNotWantToTalkToYou, tx))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
        s.failover(host);
        true
    }

    /// The peers the node knows now, as lower-case identities: the configured and added
    /// ones, and the unknown peers accepted by policy while they are connected.
    pub fn peers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .shared
            .peers
            .read()
            .expect("peers lock")
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Whether the peer is open with watchdog OKAY.
    pub fn is_peer_available(&self, host: &str) -> bool {
        self.shared.is_available(host)
    }

    /// Waits until the peer is available or `timeout` passes.
    pub async fn wait_peer(&self, host: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.is_peer_available(host) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.is_peer_available(host)
    }

    /// Bytes queued for writing to `host` and not yet taken by its connections' sockets
    /// (at most [`NodeConfig::write_queue_bytes`] per connection, plus the answers that
    /// crossed it); `None` for a peer the node does not know.
    pub fn write_queue_bytes(&self, host: &str) -> Option<usize> {
        self.shared.peer(host).map(|p| p.queued_bytes())
    }

    /// Requests in flight (sent or relayed, not yet answered).
    pub fn pending(&self) -> usize {
        self.shared.pending.lock().expect("pending lock").len()
    }

    /// Stops listening (the listening sockets are closed when this returns, so the
    /// addresses can be bound again at once), disconnects every peer with DPR
    /// (Disconnect-Cause REBOOTING) and waits up to `timeout` for them to close. Pending
    /// requests are failed.
    pub async fn shutdown(&self, timeout: Duration) {
        let s = &self.shared;
        s.stopped.store(true, Ordering::Release);
        s.stop_accepting.cancel();
        let acceptors = std::mem::take(&mut *s.acceptors.lock().expect("acceptors lock"));
        for task in acceptors {
            let _ = task.await;
        }
        let peers: Vec<Arc<PeerHandle>> = s
            .peers
            .read()
            .expect("peers lock")
            .values()
            .cloned()
            .collect();
        let mut waits = Vec::new();
        for p in peers {
            let (tx, rx) = oneshot::channel();
            if p.cmd
                .send(PeerCmd::Stop(DisconnectCause::Rebooting, tx))
                .await
                .is_ok()
            {
                waits.push(rx);
            }
        }
        let _ = tokio::time::timeout(timeout, futures::future::join_all(waits)).await;
        let all: Vec<(u32, Pending)> = s.pending.lock().expect("pending lock").drain().collect();
        for (_, p) in all {
            s.complete(p, Err(RequestError::Stopped));
        }
        if let Some(c) = &s.capture {
            let _ = c.flush();
        }
    }
}

/// Looks up a host in a map keyed by lower-case host.
fn by_host<'m, V>(map: &'m FxHashMap<String, V>, host: &str) -> Option<&'m V> {
    map.get(crate::identity_key(host).as_ref())
}

impl Shared {
    fn arc(&self) -> Arc<Self> {
        self.weak_self.upgrade().expect("node alive while in use")
    }

    pub(crate) fn next_conn_id(&self) -> crate::peer::ConnId {
        crate::peer::ConnId(self.conn_ids.fetch_add(1, Ordering::Relaxed))
    }

    fn next_hop_by_hop(&self) -> u32 {
        self.hop_by_hop.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn record(&self, conn: Option<&CaptureConn>, dir: Direction, msg: &[u8]) {
        if let (Some(c), Some(cap)) = (conn, &self.capture) {
            let _ = cap.record(c, dir, SystemTime::now(), msg);
        }
    }

    /// Starts a configured (or API-added) peer: kept when it disconnects.
    fn spawn_configured(&self, p: &PeerSpec) -> Arc<PeerHandle> {
        let dial = p.connect.map(|addr| Dial {
            addr,
            transport: p.transport.clone(),
        });
        let handle = self.spawn_peer(&p.host, dial, p.timers, true);
        handle.forwards.store(p.forwards, Ordering::Release);
        handle
    }

    /// Forgets `host` if `handle` is still the one the node knows it by (a peer that left
    /// may already have been replaced by a new connection under the same identity).
    pub(crate) fn forget_peer(&self, host: &str, handle: &Arc<PeerHandle>) {
        let mut peers = self.peers.write().expect("peers lock");
        let key = crate::identity_key(host);
        if peers
            .get(key.as_ref())
            .is_some_and(|h| Arc::ptr_eq(h, handle))
        {
            peers.remove(key.as_ref());
        }
    }

    /// The Origin-State-Id of an unknown peer that left, so a restart is still noticed
    /// when it comes back. Bounded: past the cap the oldest half is dropped (hosts seen
    /// once are what fills it).
    pub(crate) fn remember_origin_state(&self, host: &str, osi: u32) {
        let mut m = self.departed.lock().expect("departed lock");
        if m.len() >= DEPARTED_CAP {
            let drop: Vec<String> = m.keys().take(DEPARTED_CAP / 2).cloned().collect();
            for k in drop {
                m.remove(&k);
            }
        }
        m.insert(host.to_ascii_lowercase(), osi);
    }

    /// Tells applications; nobody listening is fine.
    pub(crate) fn emit(&self, e: NodeEvent) {
        let _ = self.events.send(e);
    }

    /// Starts a peer task. `configured` peers stay when they disconnect; others (unknown
    /// peers accepted by policy) are forgotten, with their state, once they go.
    fn spawn_peer(
        &self,
        host: &str,
        dial: Option<Dial>,
        timers: Timers,
        configured: bool,
    ) -> Arc<PeerHandle> {
        let mut pc = PeerConfig::new(self.local.clone(), Some(host.to_string()));
        let last_state = self
            .departed
            .lock()
            .expect("departed lock")
            .remove(crate::identity_key(host).as_ref());
        pc.connect = dial.is_some();
        pc.timers = timers;
        // Watchdog jitter and CER/DWR identifiers: different per peer and per run.
        pc.seed = u64::from(self.hop_by_hop.load(Ordering::Relaxed))
            ^ (self.conn_ids.fetch_add(1, Ordering::Relaxed) << 32);
        let (tx, rx) = mpsc::channel(self.cfg.peer_queue);
        let handle = Arc::new(PeerHandle::new(tx, configured));
        self.peers
            .write()
            .expect("peers lock")
            .insert(host.to_ascii_lowercase(), handle.clone());
        let mut peer = Peer::new(pc);
        if let Some(osi) = last_state {
            peer.remember_origin_state(osi);
        }
        tokio::spawn(peer_task::run(
            self.arc(),
            host.to_string(),
            peer,
            dial,
            rx,
            handle.clone(),
        ));
        handle
    }

    fn peer(&self, host: &str) -> Option<Arc<PeerHandle>> {
        by_host(&self.peers.read().expect("peers lock"), host).cloned()
    }

    fn peer_is_relay(&self, host: &str) -> bool {
        self.peer(host)
            .is_some_and(|p| p.forwards.load(Ordering::Acquire) || p.relay.load(Ordering::Acquire))
    }

    fn is_available(&self, host: &str) -> bool {
        self.peer(host)
            .is_some_and(|p| p.available.load(Ordering::Acquire))
    }

    fn first_available(&self, hosts: &[String]) -> Option<String> {
        hosts.iter().find(|h| self.is_available(h)).cloned()
    }

    /// Routes a request: one received here (which may be for us) or one we originate.
    fn decide(&self, info: &RequestInfo<'_>, outgoing: bool) -> Decision {
        let known = |h: &str| self.peer(h).is_some_and(|p| p.configured);
        let open = |h: &str| self.is_available(h);
        if outgoing {
            self.router.decide_outgoing(info, open, known)
        } else {
            self.router.decide(info, open, known)
        }
    }
}

// A Node is shared by every task of the node and by handlers.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Node>();
};
