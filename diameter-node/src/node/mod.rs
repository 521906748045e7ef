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

mod conn;
mod edit;
mod express;
mod peer_task;

use crate::capture::{Capture, CaptureConn, Direction};
use crate::dedup::{DupCache, DupKey, Seen};
use crate::framing::{DiameterCodec, Inbound, read_frame};
use crate::peer::{
    DisconnectCause, FirstMessage, LocalConfig, Peer, PeerConfig, RELAY_APPLICATION_ID, Timers,
    UnknownPeerPolicy, screen_first_message, unknown_peer_answer,
};
use crate::routing::{
    Decision, RedirectCache, RedirectUsage, RequestInfo, Route, RouteAction, Router,
};
use crate::transport::{Listener, Transport};
use bytes::Bytes;
use diameter_codec::dict::base;
use diameter_codec::{
    CommandFlags, Dictionary, ErrorReport, Limits, LocalIdentity, Message, MessageBuilder,
    OwnedAvp, ResultCode, ValidateOptions, Validator,
};
use peer_task::{Dial, IncomingConn, PeerCmd, PeerHandle};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::ReadHalf;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::FramedRead;

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
}

impl PeerSpec {
    /// A peer we connect to over TCP.
    pub fn connect_tcp(host: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            host: host.into(),
            connect: Some(addr),
            transport: Transport::Tcp,
            timers: Timers::default(),
        }
    }
    /// A peer that connects to us.
    pub fn accept_only(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            connect: None,
            transport: Transport::Tcp,
            timers: Timers::default(),
        }
    }
}

/// A listening address.
#[derive(Clone)]
pub struct ListenSpec {
    /// The address (port 0 picks a free one; see [`Node::listen_addrs`]).
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

/// Node configuration.
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
    /// TLS handshake, connect and first-CER deadline.
    pub handshake_timeout: Duration,
    /// Most requests in flight from this node (sent and relayed).
    pub max_pending: usize,
    /// Most requests handled at once; beyond it the node answers 3004 (RFC 6733 §7.1.3).
    pub max_concurrent_handlers: usize,
    /// Per-peer send queue; a full queue answers 3004 instead of buffering without bound.
    pub peer_queue: usize,
    /// How long answers are kept for duplicate detection.
    pub dedup_window: Duration,
    /// How many requests the duplicate cache remembers.
    pub dedup_capacity: usize,
    /// Validate requests for local handlers against the dictionary.
    pub validate: bool,
    /// Most connections at once that have not finished their CER (connection floods,
    /// bad-inputs 43).
    pub max_handshaking: usize,
    /// Capture of every message sent and received.
    pub capture: Option<Arc<Capture>>,
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
            max_pending: 65_536,
            max_concurrent_handlers: 8_192,
            peer_queue: 16_384,
            dedup_window: Duration::from_secs(60),
            dedup_capacity: 200_000,
            validate: true,
            max_handshaking: 256,
            capture: None,
        }
    }
}

/// A request handed to a handler.
pub struct IncomingRequest {
    /// The request.
    pub msg: Message,
    /// The peer it came from (its Origin-Host as configured).
    pub peer: String,
    /// The T bit: possibly a retransmission (RFC 6733 §3). Duplicates already answered are
    /// filtered by the node; handlers see the bit for their own bookkeeping.
    pub retransmitted: bool,
    /// The node, to send requests of its own (a PCRF's RAR on the PCEF's connection).
    pub node: Node,
}

impl IncomingRequest {
    /// This node's answer to the request with Result-Code `rc` (RFC 6733 §6.2: same
    /// command, application and identifiers, Session-Id, our Origin-Host and Origin-Realm).
    /// The handler adds the rest; the node copies Proxy-Info when it sends the answer.
    pub fn answer(&self, rc: ResultCode) -> MessageBuilder {
        let mut a = MessageBuilder::answer_to(&self.msg, self.node.identity());
        a.result_code(rc);
        a
    }
}

/// The future a handler returns: the answer.
pub type HandlerFuture = Pin<Box<dyn Future<Output = MessageBuilder> + Send>>;

/// Handles the requests of one application.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request.
    fn handle(&self, req: IncomingRequest) -> HandlerFuture;
}

struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = MessageBuilder> + Send + 'static,
{
    fn handle(&self, req: IncomingRequest) -> HandlerFuture {
        Box::pin((self.0)(req))
    }
}

/// A handler from an async closure.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = MessageBuilder> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

/// Why a request got no answer from the network.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No answer before the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The node could not route or deliver it; `answer` is the error answer an agent would
    /// have sent (E bit, Result-Code, Error-Reporting-Host).
    #[error("not delivered: {result_code}")]
    Protocol {
        /// 3002, 3003, 3004, 3005…
        result_code: ResultCode,
        /// The locally built error answer.
        answer: Message,
    },
    /// Redirected more times than allowed, or in a loop.
    #[error("redirect loop")]
    RedirectLoop,
    /// The request does not encode into a message the node's limits accept.
    #[error("request not well-formed: {0}")]
    Malformed(diameter_codec::DecodeError),
    /// [`Node::request_encoded`] was given an answer.
    #[error("not a request (R bit clear)")]
    NotARequest,
    /// The node is shutting down.
    #[error("node stopped")]
    Stopped,
}

enum Reply {
    /// A request of ours: the caller awaits this.
    Local(oneshot::Sender<Result<Message, RequestError>>),
    /// A request we relay: the answer goes back to `peer` with its Hop-by-Hop Identifier.
    Relay { peer: String, hop_by_hop: u32 },
}

struct Pending {
    reply: Reply,
    peer: String,
    bytes: Bytes,
    dest_host: Option<String>,
    dest_realm: Option<String>,
    application_id: u32,
    command_code: u32,
    sent: Instant,
    deadline: Instant,
}

/// A duplicate waiting for the original's answer: the peer and its Hop-by-Hop Identifier.
type Waiter = (String, u32);

pub(crate) struct Shared {
    cfg: NodeConfig,
    local: Arc<LocalConfig>,
    identity: LocalIdentity,
    router: Router,
    dict: &'static Dictionary,
    /// Keyed by lower-case host. FxHash: keys are configured or CER-proven identities and our
    /// own Hop-by-Hop Identifiers, never attacker-chosen in bulk, and these maps are on every
    /// message's path.
    peers: RwLock<FxHashMap<String, Arc<PeerHandle>>>,
    configured: FxHashMap<String, ()>,
    pending: Mutex<FxHashMap<u32, Pending>>,
    handlers: RwLock<HashMap<u32, Arc<dyn Handler>>>,
    dedup: Mutex<DupCache<Waiter>>,
    redirects: Mutex<RedirectCache>,
    hop_by_hop: AtomicU32,
    end_to_end: AtomicU32,
    conn_ids: AtomicU64,
    handler_slots: Arc<Semaphore>,
    handshaking: Arc<Semaphore>,
    capture: Option<Arc<Capture>>,
    stopped: AtomicBool,
    weak_self: std::sync::Weak<Self>,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
    listen_addrs: Arc<Vec<SocketAddr>>,
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
            dict: Dictionary::embedded(),
            peers: RwLock::new(FxHashMap::default()),
            configured: cfg
                .peers
                .iter()
                .map(|p| (p.host.to_ascii_lowercase(), ()))
                .collect(),
            pending: Mutex::new(FxHashMap::default()),
            handlers: RwLock::new(HashMap::new()),
            dedup: Mutex::new(DupCache::new(cfg.dedup_window, cfg.dedup_capacity)),
            redirects: Mutex::new(RedirectCache::new(10_000)),
            hop_by_hop: AtomicU32::new(seed.subsec_nanos()),
            end_to_end: AtomicU32::new(e2e),
            conn_ids: AtomicU64::new(1),
            handler_slots: Arc::new(Semaphore::new(cfg.max_concurrent_handlers)),
            handshaking: Arc::new(Semaphore::new(cfg.max_handshaking)),
            capture: cfg.capture.clone(),
            stopped: AtomicBool::new(false),
            weak_self: weak.clone(),
            cfg,
        });
        let mut addrs = Vec::new();
        for l in &shared.cfg.listen {
            let listener = Listener::bind(l.addr, l.transport.clone()).await?;
            addrs.push(listener.local_addr()?);
            tokio::spawn(accept_loop(shared.clone(), listener));
        }
        for p in shared.cfg.peers.clone() {
            shared.spawn_peer(
                &p.host,
                p.connect.map(|addr| Dial {
                    addr,
                    transport: p.transport.clone(),
                }),
                p.timers,
            );
        }
        tokio::spawn(sweep_loop(Arc::downgrade(&shared)));
        Ok(Self {
            shared,
            listen_addrs: Arc::new(addrs),
        })
    }

    /// The bound listening addresses, in configuration order.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs
    }

    /// Our Origin-Host and Origin-Realm.
    pub fn identity(&self) -> &LocalIdentity {
        &self.shared.identity
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

    /// Requests in flight (sent or relayed, not yet answered).
    pub fn pending(&self) -> usize {
        self.shared.pending.lock().expect("pending lock").len()
    }

    /// A new End-to-End Identifier.
    pub fn next_end_to_end(&self) -> u32 {
        self.shared.end_to_end.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request and waits for its answer, with the node's default deadline.
    pub async fn request(&self, req: MessageBuilder) -> Result<Message, RequestError> {
        self.request_with_timeout(req, self.shared.cfg.request_timeout)
            .await
    }

    /// Sends a request and waits for its answer or the deadline. Routing follows
    /// Destination-Host, cached redirects and the realm table; a 3006 answer is followed to
    /// the Redirect-Host it names (RFC 6733 §6.13), at most three times.
    pub async fn request_with_timeout(
        &self,
        mut req: MessageBuilder,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        req.flags = req.flags.with(CommandFlags::REQUEST, true);
        if req.end_to_end == 0 {
            req.end_to_end = self.next_end_to_end();
        }
        // Encoded once: each attempt (failover, redirect) only rewrites the Hop-by-Hop
        // Identifier. The node's own limits apply, not the codec's defaults.
        let msg = Message::decode(req.to_bytes(), &self.shared.cfg.limits)
            .map_err(RequestError::Malformed)?;
        self.request_encoded(msg, timeout).await
    }

    /// As [`Self::request_with_timeout`] for a request already encoded (built with
    /// [`diameter_codec::MessageWriter`], or captured and replayed). Its End-to-End
    /// Identifier is sent as it is (RFC 6733 §3: the sender's to choose, unique per request);
    /// its Hop-by-Hop Identifier is replaced by ours.
    pub async fn request_encoded(
        &self,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let s = &self.shared;
        if s.stopped.load(Ordering::Acquire) {
            return Err(RequestError::Stopped);
        }
        let h = *msg.header();
        if !h.is_request() {
            return Err(RequestError::NotARequest);
        }
        let deadline = Instant::now() + timeout;
        crate::metrics::record_request(
            crate::metrics::Direction::Sent,
            h.application_id,
            h.command_code,
        );
        let span = tracing::debug_span!(
            "send",
            session = msg.session_id().unwrap_or(""),
            command = h.command_code,
            application = h.application_id,
            e2e = h.end_to_end,
        );
        let routed = self.route_and_wait(&msg, deadline, timeout);
        tracing::Instrument::instrument(routed, span).await
    }

    async fn route_and_wait(
        &self,
        msg: &Message,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let s = &self.shared;
        let h = *msg.header();
        let avps = RoutingAvps::read(msg);
        let info = avps.info(h.application_id);
        // Hosts already asked, filled only when a redirect is followed.
        let mut tried: Vec<String> = Vec::new();
        let mut target: Option<String> = None;
        for _ in 0..4 {
            let cached = s
                .redirects
                .lock()
                .expect("redirect lock")
                .lookup(&info, Instant::now())
                .map(<[String]>::to_vec);
            let peer = match target
                .take()
                .or_else(|| cached.and_then(|hosts| s.first_available(&hosts)))
            {
                Some(p) => p,
                None => match s.decide(&info, true) {
                    Decision::Forward { peer, .. } => peer,
                    Decision::Local | Decision::Redirect { .. } => {
                        return Err(s.local_error(msg, ResultCode::DIAMETER_UNABLE_TO_DELIVER));
                    }
                    Decision::Error(rc) => return Err(s.local_error(msg, rc)),
                },
            };
            let (tx, rx) = oneshot::channel();
            let hbh = s.next_hop_by_hop();
            s.send_pending(
                hbh,
                Pending {
                    reply: Reply::Local(tx),
                    peer: peer.clone(),
                    bytes: edit::retarget(msg.as_bytes(), hbh, false),
                    dest_host: avps.destination_host.map(str::to_string),
                    dest_realm: avps.destination_realm.map(str::to_string),
                    application_id: h.application_id,
                    command_code: h.command_code,
                    sent: Instant::now(),
                    deadline,
                },
            );
            let answer = match tokio::time::timeout_at(deadline.into(), rx).await {
                Ok(Ok(r)) => r?,
                Ok(Err(_)) => return Err(RequestError::Stopped),
                Err(_) => {
                    s.pending.lock().expect("pending lock").remove(&hbh);
                    return Err(RequestError::Timeout(timeout));
                }
            };
            // RFC 6733 §6.13: a redirect answer names where to send the request instead.
            if answer.header().flags.is_error()
                && answer.get(base::RESULT_CODE).and_then(Result::ok)
                    == Some(ResultCode::DIAMETER_REDIRECT_INDICATION.0)
            {
                let hosts = redirect_hosts(&answer);
                let usage = answer
                    .get(base::REDIRECT_HOST_USAGE)
                    .and_then(Result::ok)
                    .map_or(RedirectUsage::DontCache, |u| RedirectUsage::from_value(u.0));
                // RFC 6733 §6.13: Redirect-Max-Cache-Time is required when usage ≠ DONT_CACHE;
                // without it nothing is cached (bad-inputs 41).
                let cache = answer
                    .get(base::REDIRECT_MAX_CACHE_TIME)
                    .and_then(Result::ok)
                    .map(|t| Duration::from_secs(t.into()));
                if let Some(cache) = cache {
                    s.redirects.lock().expect("redirect lock").insert(
                        &info,
                        usage,
                        hosts.clone(),
                        cache,
                        Instant::now(),
                    );
                }
                tried.push(peer.to_ascii_lowercase());
                let next = hosts.iter().find(|h| {
                    !tried.contains(&h.to_ascii_lowercase())
                        && !h.eq_ignore_ascii_case(&s.identity.host)
                        && s.is_available(h)
                });
                match next {
                    Some(h) => {
                        target = Some(h.clone());
                        continue;
                    }
                    None if hosts.is_empty() => return Ok(answer),
                    None => return Err(RequestError::RedirectLoop),
                }
            }
            return Ok(answer);
        }
        Err(RequestError::RedirectLoop)
    }

    /// Disconnects every peer with DPR (Disconnect-Cause REBOOTING) and waits up to
    /// `timeout` for them to close. Pending requests are failed.
    pub async fn shutdown(&self, timeout: Duration) {
        let s = &self.shared;
        s.stopped.store(true, Ordering::Release);
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

/// The top-level AVPs a request is checked and routed by, read in one pass over the message
/// (each the first of its kind that is valid UTF-8).
#[derive(Default)]
struct RoutingAvps<'a> {
    origin_host: Option<&'a str>,
    destination_host: Option<&'a str>,
    destination_realm: Option<&'a str>,
    session_id: Option<&'a str>,
    user_name: Option<&'a str>,
    route_record: bool,
}

impl<'a> RoutingAvps<'a> {
    fn read(msg: &'a Message) -> Self {
        fn first<'a>(slot: &mut Option<&'a str>, data: &'a [u8]) {
            if slot.is_none() {
                *slot = std::str::from_utf8(data).ok();
            }
        }
        let mut r = Self::default();
        for a in msg.avps().flatten() {
            match a.key() {
                k if k == base::ORIGIN_HOST.key() => first(&mut r.origin_host, a.data),
                k if k == base::DESTINATION_HOST.key() => first(&mut r.destination_host, a.data),
                k if k == base::DESTINATION_REALM.key() => {
                    first(&mut r.destination_realm, a.data);
                }
                k if k == base::SESSION_ID.key() => first(&mut r.session_id, a.data),
                k if k == base::USER_NAME.key() => first(&mut r.user_name, a.data),
                k if k == base::ROUTE_RECORD.key() => r.route_record = true,
                _ => {}
            }
        }
        r
    }

    /// What the router needs of a request of `application_id` with these AVPs.
    fn info(&self, application_id: u32) -> RequestInfo<'a> {
        RequestInfo {
            destination_host: self.destination_host,
            destination_realm: self.destination_realm,
            application_id,
            session_id: self.session_id,
            user_name: self.user_name,
        }
    }
}

/// Looks up a host in a map keyed by lower-case host.
fn by_host<'m, V>(map: &'m FxHashMap<String, V>, host: &str) -> Option<&'m V> {
    map.get(crate::identity_key(host).as_ref())
}

/// The Diameter identities in Redirect-Host URIs.
fn redirect_hosts(answer: &Message) -> Vec<String> {
    answer
        .find_all(base::REDIRECT_HOST.key())
        .filter_map(|a| {
            diameter_codec::types::DiameterUri::parse(a.data)
                .ok()
                .map(|u| u.fqdn.to_string())
        })
        .collect()
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

    fn spawn_peer(&self, host: &str, dial: Option<Dial>, timers: Timers) -> Arc<PeerHandle> {
        let mut pc = PeerConfig::new(self.local.clone(), Some(host.to_string()));
        pc.connect = dial.is_some();
        pc.timers = timers;
        // Watchdog jitter and CER/DWR identifiers: different per peer and per run.
        pc.seed = u64::from(self.hop_by_hop.load(Ordering::Relaxed))
            ^ (self.conn_ids.fetch_add(1, Ordering::Relaxed) << 32);
        let (tx, rx) = mpsc::channel(self.cfg.peer_queue);
        let handle = Arc::new(PeerHandle::new(tx));
        self.peers
            .write()
            .expect("peers lock")
            .insert(host.to_ascii_lowercase(), handle.clone());
        tokio::spawn(peer_task::run(
            self.arc(),
            host.to_string(),
            Peer::new(pc),
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
            .is_some_and(|p| p.relay.load(Ordering::Acquire))
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
        let known = |h: &str| by_host(&self.configured, h).is_some();
        let open = |h: &str| self.is_available(h);
        if outgoing {
            self.router.decide_outgoing(info, open, known)
        } else {
            self.router.decide(info, open, known)
        }
    }

    /// Removes and returns the pending requests that match.
    fn take_pending(&self, pred: impl Fn(&Pending) -> bool) -> Vec<Pending> {
        let mut pending = self.pending.lock().expect("pending lock");
        let keys: Vec<u32> = pending
            .iter()
            .filter(|(_, p)| pred(p))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| pending.remove(&k))
            .collect()
    }

    /// An error answer built here, as an agent on the path would have sent it.
    fn local_error(&self, req: &Message, rc: ResultCode) -> RequestError {
        let h = *req.header();
        let session = req.find(base::SESSION_ID.key()).map(|a| req.slice(a.data));
        // Origin-Host is ours, so no Error-Reporting-Host (RFC 6733 §7.3: only when the
        // reporter differs from the Origin-Host).
        let mut b = MessageBuilder::answer_to_header(&h, session, &self.identity);
        b.flags = b.flags.with(CommandFlags::ERROR, rc.is_protocol_error());
        b.result_code(rc);
        let answer = b.build().unwrap_or_else(|_| {
            Message::from_bytes(
                MessageBuilder::answer_to_header(&h, None, &self.identity).to_bytes(),
            )
            .expect("minimal answer")
        });
        RequestError::Protocol {
            result_code: rc,
            answer,
        }
    }

    /// Registers a pending request and hands it to its peer; failures are answered at once.
    fn send_pending(&self, hbh: u32, p: Pending) {
        let peer = p.peer.clone();
        let bytes = p.bytes.clone();
        {
            let mut pending = self.pending.lock().expect("pending lock");
            if pending.len() >= self.cfg.max_pending {
                drop(pending);
                crate::metrics::too_busy(crate::metrics::Direction::Sent).increment(1);
                self.fail(p, ResultCode::DIAMETER_TOO_BUSY);
                return;
            }
            pending.insert(hbh, p);
        }
        let sent = self.peer(&peer).map(|h| h.try_send(bytes));
        match sent {
            Some(Ok(())) => {}
            Some(Err(mpsc::error::TrySendError::Full(_))) => {
                // Bounded queues (issue: overload): refuse instead of buffering.
                if let Some(p) = self.pending.lock().expect("pending lock").remove(&hbh) {
                    crate::metrics::too_busy(crate::metrics::Direction::Sent).increment(1);
                    self.fail(p, ResultCode::DIAMETER_TOO_BUSY);
                }
            }
            _ => self.reroute(&peer, hbh),
        }
    }

    /// Ends a pending request with a locally built protocol error.
    fn fail(&self, p: Pending, rc: ResultCode) {
        let err = self.error_for_bytes(&p.bytes, rc);
        match err {
            Some(answer) => {
                let r = RequestError::Protocol {
                    result_code: rc,
                    answer: answer.clone(),
                };
                match p.reply {
                    Reply::Local(_) => self.complete(p, Err(r)),
                    Reply::Relay { .. } => self.complete(p, Ok(answer)),
                }
            }
            None => self.complete(p, Err(RequestError::Stopped)),
        }
    }

    fn error_for_bytes(&self, req: &Bytes, rc: ResultCode) -> Option<Message> {
        let msg = Message::decode(
            req.clone(),
            &Limits {
                max_message_len: 0x00ff_fffc,
                ..self.cfg.limits
            },
        )
        .ok()?;
        let report = ErrorReport::new(rc);
        MessageBuilder::error_answer(&msg, &self.identity, &report)
            .build()
            .ok()
    }

    /// Delivers the outcome of a pending request.
    fn complete(&self, p: Pending, outcome: Result<Message, RequestError>) {
        match p.reply {
            Reply::Local(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Relay { peer, hop_by_hop } => {
                if let Ok(answer) = outcome {
                    self.send_answer(&peer, edit::retarget(answer.as_bytes(), hop_by_hop, false));
                }
            }
        }
    }

    /// A request on `peer` could not be sent: try an alternate or fail it.
    pub(crate) fn reroute(&self, peer: &str, hbh: u32) {
        let p = {
            let mut pending = self.pending.lock().expect("pending lock");
            match pending.get(&hbh) {
                Some(p) if p.peer.eq_ignore_ascii_case(peer) => pending.remove(&hbh),
                _ => None,
            }
        };
        if let Some(p) = p {
            self.retry_elsewhere(p);
        }
    }

    /// RFC 6733 §5.5.4 failover: requests pending on a peer that went SUSPECT or DOWN are
    /// sent to an alternate peer with the T bit; requests pinned to it by Destination-Host
    /// get 3002 (faults.md). CER/DWR/DPR never reach this map, so they are never re-sent.
    pub(crate) fn failover(&self, peer: &str) {
        let moved = self.take_pending(|p| p.peer.eq_ignore_ascii_case(peer));
        for p in moved {
            self.retry_elsewhere(p);
        }
    }

    fn retry_elsewhere(&self, mut p: Pending) {
        let pinned = p
            .dest_host
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&p.peer));
        let info = RequestInfo {
            destination_host: p.dest_host.as_deref(),
            destination_realm: p.dest_realm.as_deref(),
            application_id: p.application_id,
            ..Default::default()
        };
        let alt = if pinned {
            None
        } else {
            self.router
                .alternates(&info, &p.peer, |h| self.is_available(h))
        };
        match alt {
            Some(alt) if Instant::now() < p.deadline => {
                tracing::info!(from = %p.peer, to = %alt, "request failed over with the T bit");
                let hbh = self.next_hop_by_hop();
                p.bytes = edit::retarget(&p.bytes, hbh, true);
                p.peer = alt;
                self.send_pending(hbh, p);
            }
            _ => self.fail(p, ResultCode::DIAMETER_UNABLE_TO_DELIVER),
        }
    }

    /// An answer arrived from `peer`: match it by Hop-by-Hop Identifier (RFC 6733 §6.2.1).
    pub(crate) fn on_answer(&self, peer: &str, msg: Message) {
        let hbh = msg.header().hop_by_hop;
        let p = {
            let mut pending = self.pending.lock().expect("pending lock");
            match pending.get(&hbh) {
                // Only the peer the request went to may answer it: a late answer from a
                // peer we failed over from is stale (faults.md, half-open).
                Some(p)
                    if p.peer.eq_ignore_ascii_case(peer)
                        && p.command_code == msg.header().command_code =>
                {
                    pending.remove(&hbh)
                }
                _ => None,
            }
        };
        match p {
            Some(p) => {
                crate::metrics::record_request_duration(
                    p.application_id,
                    p.command_code,
                    p.sent.elapsed(),
                );
                let rc = msg.get(base::RESULT_CODE).and_then(Result::ok).unwrap_or(0);
                crate::metrics::record_answer(
                    crate::metrics::Direction::Received,
                    p.application_id,
                    p.command_code,
                    rc,
                );
                self.complete(p, Ok(msg));
            }
            None => {
                // RFC 6733 §3: answers with an unknown Hop-by-Hop Identifier are discarded.
                crate::metrics::record_unknown_answer(peer);
                tracing::debug!(
                    peer,
                    hbh,
                    "answer with unknown Hop-by-Hop Identifier discarded"
                );
            }
        }
    }

    /// A request arrived from `peer`.
    pub(crate) fn on_request(&self, peer: &str, msg: Message) {
        let h = *msg.header();
        crate::metrics::record_request(
            crate::metrics::Direction::Received,
            h.application_id,
            h.command_code,
        );
        let avps = RoutingAvps::read(&msg);
        let origin = avps.origin_host.unwrap_or(peer);
        let (dest_host, dest_realm) = (avps.destination_host, avps.destination_realm);
        let info = avps.info(h.application_id);
        // bad-inputs 40: a request without Route-Record, or from a peer that did not
        // advertise the Relay application (and so forwards nothing), was originated by the
        // peer itself, so its Origin-Host must be the identity the peer proved in CER (and, over TLS,
        // with its certificate). Anything else is spoofing or a relay that dropped its
        // Route-Record: refused with 5003 DIAMETER_AUTHORIZATION_REJECTED (our choice; the
        // RFC names no code) and logged.
        let forwarded = avps.route_record && self.peer_is_relay(peer);
        if !forwarded && !origin.eq_ignore_ascii_case(peer) {
            tracing::warn!(peer, origin_host = %origin, "direct request with a foreign Origin-Host refused");
            return self.answer_error(peer, &msg, ResultCode::DIAMETER_AUTHORIZATION_REJECTED);
        }
        // RFC 6733 §6.1.3: a request that already went through us is looped.
        if self.cfg.agent
            && avps.route_record
            && self.router.is_loop(
                msg.find_all(base::ROUTE_RECORD.key())
                    .filter_map(|a| std::str::from_utf8(a.data).ok()),
            )
        {
            return self.answer_error(peer, &msg, ResultCode::DIAMETER_LOOP_DETECTED);
        }
        let decision = if self.cfg.agent {
            self.decide(&info, false)
        } else {
            self.local_decision(&info)
        };
        match decision {
            Decision::Local => self.dispatch_local(peer, origin, &msg),
            Decision::Forward { peer: next, action } => {
                let _ = action; // relay and proxy forward alike here; proxies edit in handlers
                let hbh = self.next_hop_by_hop();
                let bytes = edit::for_relay(&msg, hbh, peer);
                self.send_pending(
                    hbh,
                    Pending {
                        reply: Reply::Relay {
                            peer: peer.to_string(),
                            hop_by_hop: h.hop_by_hop,
                        },
                        peer: next,
                        bytes,
                        dest_host: dest_host.map(str::to_string),
                        dest_realm: dest_realm.map(str::to_string),
                        application_id: h.application_id,
                        command_code: h.command_code,
                        sent: Instant::now(),
                        deadline: Instant::now() + self.cfg.request_timeout,
                    },
                );
            }
            Decision::Redirect {
                hosts,
                usage,
                cache_time,
            } => {
                // RFC 6733 §6.13: 3006 with the E bit, Redirect-Host, and the cache hints.
                let mut b = MessageBuilder::answer_to(&msg, &self.identity);
                b.flags = b.flags.with(CommandFlags::ERROR, true);
                b.result_code(ResultCode::DIAMETER_REDIRECT_INDICATION);
                for host in hosts {
                    let uri = if host.contains("://") {
                        host
                    } else {
                        format!("aaa://{host}")
                    };
                    b.push(base::REDIRECT_HOST.with(uri));
                }
                if usage != RedirectUsage::DontCache {
                    b.push(base::REDIRECT_HOST_USAGE.with(base::RedirectHostUsage(usage.value())));
                    b.push(
                        base::REDIRECT_MAX_CACHE_TIME
                            .with(cache_time.as_secs().min(u64::from(u32::MAX)) as u32),
                    );
                }
                b.copy_proxy_info(&msg);
                self.send_answer(peer, b.to_bytes());
            }
            Decision::Error(rc) => self.answer_error(peer, &msg, rc),
        }
    }

    /// For a non-agent node: requests are ours when the application is registered.
    fn local_decision(&self, info: &RequestInfo<'_>) -> Decision {
        let handlers = self.handlers.read().expect("handlers lock");
        if handlers.contains_key(&info.application_id)
            || handlers.contains_key(&RELAY_APPLICATION_ID)
        {
            Decision::Local
        } else {
            Decision::Error(ResultCode::DIAMETER_APPLICATION_UNSUPPORTED)
        }
    }

    fn answer_error(&self, peer: &str, msg: &Message, rc: ResultCode) {
        let report = ErrorReport::new(rc);
        let b = MessageBuilder::error_answer(msg, &self.identity, &report);
        crate::metrics::record_answer(
            crate::metrics::Direction::Sent,
            msg.header().application_id,
            msg.header().command_code,
            rc.0,
        );
        self.send_answer(peer, b.to_bytes());
    }

    fn send_answer(&self, peer: &str, bytes: Bytes) {
        if let Some(h) = self.peer(peer) {
            if let Err(mpsc::error::TrySendError::Full(PeerCmd::Send(b))) = h.try_send(bytes) {
                // Answers are never dropped for a full queue: wait for room.
                tokio::spawn(async move {
                    let _ = h.cmd.send(PeerCmd::Send(b)).await;
                });
            }
        }
    }

    /// Runs a request addressed to us; `origin` is its Origin-Host.
    fn dispatch_local(&self, peer: &str, origin: &str, msg: &Message) {
        let h = *msg.header();
        // Duplicate detection (RFC 6733 §5.5.4): (Origin-Host, End-to-End).
        let (key, seen) = {
            let mut dedup = self.dedup.lock().expect("dedup lock");
            let key = dedup.key(origin, h.end_to_end);
            let seen = dedup.check(key.clone(), Instant::now(), || {
                (peer.to_string(), h.hop_by_hop)
            });
            (key, seen)
        };
        match seen {
            Seen::New => {}
            Seen::Waiting => return,
            Seen::Answered(a) => {
                return self.send_answer(peer, edit::retarget(&a, h.hop_by_hop, false));
            }
        }
        if self.cfg.validate {
            if let Err(report) = Validator::new(
                self.dict,
                ValidateOptions {
                    limits: self.cfg.limits,
                    ..Default::default()
                },
            )
            .validate(msg)
            {
                let b = MessageBuilder::error_answer(msg, &self.identity, &report);
                return self.finish_local(peer, &key, &b);
            }
        }
        let handler = {
            let handlers = self.handlers.read().expect("handlers lock");
            handlers
                .get(&h.application_id)
                .or_else(|| handlers.get(&RELAY_APPLICATION_ID))
                .cloned()
        };
        let Some(handler) = handler else {
            let b = MessageBuilder::error_answer(
                msg,
                &self.identity,
                &ErrorReport::new(ResultCode::DIAMETER_APPLICATION_UNSUPPORTED),
            );
            return self.finish_local(peer, &key, &b);
        };
        // Bounded handler concurrency: beyond it, 3004 DIAMETER_TOO_BUSY (RFC 6733 §7.1.3).
        let Ok(permit) = self.handler_slots.clone().try_acquire_owned() else {
            crate::metrics::too_busy(crate::metrics::Direction::Received).increment(1);
            let b = MessageBuilder::error_answer(
                msg,
                &self.identity,
                &ErrorReport::new(ResultCode::DIAMETER_TOO_BUSY),
            )
            .to_bytes();
            self.dedup.lock().expect("dedup lock").abandon(&key);
            return self.send_answer(peer, b);
        };
        let shared = self.arc();
        let node = Node {
            shared: shared.clone(),
            listen_addrs: Arc::new(Vec::new()),
        };
        let req = IncomingRequest {
            retransmitted: h.flags.is_retransmit(),
            msg: msg.clone(),
            peer: peer.to_string(),
            node,
        };
        // One span per request, carrying what an operator greps for.
        let span = tracing::debug_span!(
            "request",
            session = msg.session_id().unwrap_or(""),
            peer,
            command = h.command_code,
            application = h.application_id,
            hbh = h.hop_by_hop,
        );
        let peer = peer.to_string();
        let msg = msg.clone();
        let fut = async move {
            let mut answer = handler.handle(req).await;
            answer.hop_by_hop = h.hop_by_hop;
            answer.end_to_end = h.end_to_end;
            answer.flags = answer.flags.with(CommandFlags::REQUEST, false);
            if answer.find(base::PROXY_INFO.key()).is_none() {
                answer.copy_proxy_info(&msg);
            }
            drop(permit);
            shared.finish_local(&peer, &key, &answer);
        };
        let mut fut: Pin<Box<dyn Future<Output = ()> + Send>> =
            Box::pin(tracing::Instrument::instrument(fut, span));
        // A handler that answers at once (most do) finishes here, on the peer's task: one
        // task hand-off and wake-up fewer per request. One that waits goes on in a task of
        // its own, which polls it again with a real waker.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if fut.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(fut);
        }
    }

    fn finish_local(&self, peer: &str, key: &DupKey, answer: &MessageBuilder) {
        let rc = answer
            .find(base::RESULT_CODE.key())
            .and_then(OwnedAvp::as_u32)
            .unwrap_or(0);
        crate::metrics::record_answer(
            crate::metrics::Direction::Sent,
            answer.application_id,
            answer.command_code,
            rc,
        );
        let answer = answer.to_bytes();
        let waiters = self
            .dedup
            .lock()
            .expect("dedup lock")
            .complete(key, answer.clone());
        self.send_answer(peer, answer.clone());
        for (p, hbh) in waiters {
            self.send_answer(&p, edit::retarget(&answer, hbh, false));
        }
    }

    /// Relayed requests whose deadline passed get 3002; local ones time out in `request`.
    fn sweep(&self) {
        let now = Instant::now();
        let expired = self.take_pending(|p| p.deadline <= now);
        for p in expired {
            match p.reply {
                Reply::Local(_) => {
                    let asked = p.deadline.saturating_duration_since(p.sent);
                    self.complete(p, Err(RequestError::Timeout(asked)))
                }
                Reply::Relay { .. } => self.fail(p, ResultCode::DIAMETER_UNABLE_TO_DELIVER),
            }
        }
        crate::metrics::pending_requests("all")
            .set(self.pending.lock().expect("pending lock").len() as f64);
    }
}

async fn sweep_loop(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        match shared.upgrade() {
            Some(s) if !s.stopped.load(Ordering::Acquire) => s.sweep(),
            _ => break,
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    loop {
        let Ok(acc) = listener.accept().await else {
            continue;
        };
        if shared.stopped.load(Ordering::Acquire) {
            break;
        }
        // Bounded handshakes: a flood of connections that never send CER cannot hold more
        // than `max_handshaking` tasks (bad-inputs 43); the rest are closed at once.
        let Ok(permit) = shared.handshaking.clone().try_acquire_owned() else {
            continue;
        };
        let s = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = accept_one(&s, acc).await {
                tracing::debug!(error = %e, "incoming connection refused");
            }
        });
    }
}

async fn accept_one(s: &Arc<Shared>, acc: crate::transport::Accepted) -> Result<(), String> {
    let stream = acc
        .handshake(s.cfg.handshake_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let cap = conn::capture_conn(s, &stream, true);
    let certs = stream.peer_certificates().map(<[_]>::to_vec);
    let (r, mut w) = tokio::io::split(stream);
    let mut rd: FramedRead<ReadHalf<crate::transport::Stream>, DiameterCodec> =
        FramedRead::new(r, DiameterCodec::new(s.cfg.limits));
    // RFC 6733 §5.6.1: the first message must be a CER, within the handshake deadline.
    let first = tokio::time::timeout(
        s.cfg.handshake_timeout,
        read_frame(&mut rd, s.cfg.frame_timeout),
    )
    .await;
    let Ok(Ok(Some(Inbound::Message(msg)))) = first else {
        return Err("no CER".into());
    };
    s.record(cap.as_ref(), Direction::Received, msg.as_bytes());
    use tokio::io::AsyncWriteExt;
    let host = match screen_first_message(&s.local, &msg) {
        FirstMessage::Cer { origin_host } => origin_host,
        FirstMessage::Answer(b) => {
            s.record(cap.as_ref(), Direction::Sent, &b);
            let _ = w.write_all(&b).await;
            return Err("CER refused".into());
        }
        FirstMessage::Close => return Err("first message is not a CER".into()),
    };
    // TLS: the certificate must vouch for the Origin-Host the CER claims (bad-inputs 40).
    if let Some(certs) = certs {
        crate::transport::verify_peer_identity(&certs, &host).map_err(|e| e.to_string())?;
    }
    let handle = match s.peer(&host) {
        Some(h) => h,
        None => match s.local.unknown_peer {
            UnknownPeerPolicy::Accept => s.spawn_peer(&host, None, Timers::default()),
            _ => {
                if let Some(b) = unknown_peer_answer(&s.local, &msg) {
                    s.record(cap.as_ref(), Direction::Sent, &b);
                    let _ = w.write_all(&b).await;
                }
                return Err(format!("unknown peer {host}"));
            }
        },
    };
    handle
        .cmd
        .send(PeerCmd::Incoming(Box::new(IncomingConn {
            rd,
            wr: w,
            cap,
            cer: msg,
        })))
        .await
        .map_err(|_| "peer task gone".to_string())
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

// A Node is shared by every task of the node and by handlers.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Node>();
};
