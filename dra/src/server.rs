//! The DRA: a Diameter node whose Gx, Gxx, Rx and S9 handlers bind sessions to PCRFs
//! (TS 29.213 §7) and redirect (§7.4.2) or proxy (§7.4.1) them; terminations mark
//! sessions and delete entries (document 002); peer events take PCRFs out of selection
//! and release their bindings.

use crate::binding::{BindRequest, Binding, BoundSession, Interface, MatchBy, Mode, SessionState};
use crate::config::{BindingScope, Config, Selection, Termination};
use crate::keys::{self, Kind};
use crate::metrics::{Label, answered};
use crate::select::Pcrfs;
use crate::store::{self, BindingStore, StoreError};
use diameter_codec::dict::{base, dcca};
use diameter_codec::{Message, MessageBuilder, ResultCode};
use diameter_node::node::{
    AtOnce, Forward, Handler, HandlerFuture, IncomingRequest, Node, NodeConfig, NodeEvent, Outcome,
};
use diameter_node::peer::Application;
use diameter_node::routing::RedirectUsage;
use diameter_service::now_ms;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// 3GPP's Vendor-Id.
pub const VENDOR_3GPP: u32 = 10_415;
/// Command Code of Session-Status, the audit's probe (`dictionaries/roaming_vendor.toml`;
/// RFC 6733 §11.2.1 experimental range).
pub const SESSION_STATUS: u32 = diameter_codec::dict::roaming::CMD_SESSION_STATUS;
/// IP-CAN_SESSION_NOT_AVAILABLE (TS 29.214 §5.5.3), in Experimental-Result.
pub const IP_CAN_SESSION_NOT_AVAILABLE: u32 = 5065;

/// The node configuration from `[node]`, with what a DRA needs whatever the table says:
/// Gx, Gxx, Rx and S9 advertised as vendor-specific applications of 3GPP with
/// Supported-Vendor-Id 10415, and the Relay application (RFC 6733 §2.4: peers then accept
/// the requests it forwards, whose Origin-Host is not its own); the PCRFs of `[[dra.pcrf]]`
/// that have an address as peers; unless the table says otherwise, any client accepted and
/// Product-Name `dra`.
pub fn node_config(cfg: &Config) -> anyhow::Result<NodeConfig> {
    let applications: Vec<Application> = Interface::ALL
        .iter()
        .map(|i| Application::vendor_auth(VENDOR_3GPP, i.application()))
        .chain([Application::relay()])
        .collect();
    let mut nc = diameter_service::node_config(
        &cfg.node,
        cfg.source.as_deref(),
        diameter_service::ServerNode {
            product_name: "dra",
            builtin: "(built-in home.toml)",
            applications: &applications,
        },
    )?;
    for p in &cfg.dra.pcrf {
        if let Some(addr) = p.connect
            && !nc
                .peers
                .iter()
                .any(|q| q.host.eq_ignore_ascii_case(&p.host))
        {
            let mut spec = diameter_node::node::PeerSpec::connect_tcp(&p.host, addr);
            if let Some(t) = &cfg.node.timers {
                t.apply(&mut spec.timers);
            }
            nc.peers.push(spec);
        }
    }
    Ok(nc)
}

struct Shared {
    node: Node,
    store: Arc<dyn BindingStore>,
    cfg: Config,
    pcrfs: Pcrfs,
    metrics: Label,
    usage: RedirectUsage,
    cache_time: Duration,
    /// Whether any realm or application is proxied (else nothing is forwarded at once).
    proxies: bool,
}

/// A running DRA.
pub struct Dra {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How requests were handled (the `result` label).
type Handled = (Outcome, &'static str);

/// The handler of the DRA's applications.
struct DraHandler(Arc<Shared>);

impl Handler for DraHandler {
    fn handle(&self, req: IncomingRequest) -> HandlerFuture {
        let s = self.0.clone();
        Box::pin(async move { s.handle(req).await })
    }

    fn forward_at_once(&self, from: &str, msg: &Message) -> Option<AtOnce> {
        Shared::proxy_at_once(&self.0, from, msg)
    }
}

impl Dra {
    /// Starts the DRA with the store `[store]` names.
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
        let store = store::open(cfg.store.kind, &cfg.store.file)?;
        Self::start_with(cfg, store).await
    }

    /// As [`Dra::start`] on a store of the caller's.
    pub async fn start_with(cfg: &Config, store: Arc<dyn BindingStore>) -> anyhow::Result<Self> {
        let node = Node::start(node_config(cfg)?).await?;
        let shared = Arc::new(Shared {
            metrics: Label::new(&cfg.node.origin_host),
            pcrfs: Pcrfs::new(&cfg.dra.pcrf, cfg.dra.selection),
            usage: cfg
                .dra
                .redirect_usage
                .map_or(RedirectUsage::AllSession, Into::into),
            cache_time: cfg
                .dra
                .redirect_cache_time
                .unwrap_or(Duration::from_secs(600)),
            proxies: cfg.dra.mode == Mode::Proxy || cfg.modes.iter().any(|m| m.mode == Mode::Proxy),
            node,
            store,
            cfg: cfg.clone(),
        });
        shared.refresh().await;
        let handler: Arc<dyn Handler> = Arc::new(DraHandler(shared.clone()));
        for i in Interface::ALL {
            shared.node.register(i.application(), handler.clone());
        }
        let mut tasks = vec![tokio::spawn(watch(
            Arc::downgrade(&shared),
            shared.node.events(),
        ))];
        if let Some(life) = cfg.dra.binding_lifetime {
            tasks.push(tokio::spawn(audit(Arc::downgrade(&shared), life)));
        }
        if let Some(every) = cfg.dra.audit_interval {
            tasks.push(tokio::spawn(status_audit(Arc::downgrade(&shared), every)));
        }
        tracing::info!(
            role = ?cfg.dra.role,
            mode = cfg.dra.mode.as_str(),
            pcrfs = cfg.dra.pcrf.len(),
            "dra started"
        );
        Ok(Self { shared, tasks })
    }

    /// The Diameter node.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// The Diameter listening addresses.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        self.shared.node.listen_addrs()
    }

    /// The binding store.
    pub fn store(&self) -> &Arc<dyn BindingStore> {
        &self.shared.store
    }

    /// The PCRFs and what is measured of them.
    pub fn pcrfs(&self) -> &Pcrfs {
        &self.shared.pcrfs
    }

    /// The configuration it runs.
    pub fn config(&self) -> &Config {
        &self.shared.cfg
    }

    /// Whether a PCRF is selectable now.
    pub fn is_healthy(&self, host: &str) -> bool {
        self.shared
            .pcrfs
            .get(host)
            .is_some_and(|p| !p.is_down() && self.shared.node.is_peer_available(&p.host))
    }

    /// Stops the event watcher and the audit first (a shutdown's peer events must not
    /// release durable bindings), then the node.
    pub async fn shutdown(&self, timeout: Duration) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.node.shutdown(timeout).await;
    }
}

impl Drop for Dra {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Peer events: a PCRF down leaves selection and its bindings are released; up, it comes
/// back; a PCRF or client that restarted (RFC 6733 §8.16) lost its sessions.
async fn watch(
    weak: std::sync::Weak<Shared>,
    mut events: tokio::sync::broadcast::Receiver<NodeEvent>,
) {
    loop {
        let e = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "peer events missed");
                continue;
            }
            Err(_) => return,
        };
        let Some(s) = weak.upgrade() else { return };
        match e {
            NodeEvent::PeerUp { peer, .. } if s.pcrfs.set_down(&peer, false) => {
                tracing::info!(%peer, "PCRF up: in selection");
            }
            NodeEvent::PeerDown { peer, reason } if s.pcrfs.set_down(&peer, true) => {
                tracing::warn!(%peer, ?reason, "PCRF down: out of selection");
                s.release_pcrf(&peer, "pcrf_down").await;
            }
            NodeEvent::PeerRestarted { peer, at_ms, .. } => {
                if s.pcrfs.contains(&peer) {
                    s.release_pcrf(&peer, "pcrf_restart").await;
                } else {
                    // Only what it bound before the restart: its first requests since may
                    // have been handled before this event.
                    match s.store.release_client(peer.clone(), at_ms).await {
                        Ok(n) => {
                            tracing::info!(%peer, sessions = n, "client restarted: its sessions released")
                        }
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "releasing a restarted client's sessions")
                        }
                    }
                    s.refresh().await;
                }
            }
            _ => {}
        }
    }
}

/// The age-out audit: entries unchanged for `life` are deleted (a termination lost).
async fn audit(weak: std::sync::Weak<Shared>, life: Duration) {
    let every = (life / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let Some(s) = weak.upgrade() else { return };
        let cutoff = now_ms().saturating_sub(life.as_millis() as u64);
        match s.store.expire(cutoff).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(bindings = gone.len(), "bindings aged out");
                s.released("aged_out", &gone);
                s.refresh().await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "binding audit"),
        }
    }
}

/// Most entries checked per round of the session-status audit.
const AUDIT_BATCH: usize = 256;

/// What a PCRF said of a session in answer to Session-Status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// 2001: it holds the session.
    Held,
    /// 5002 DIAMETER_UNKNOWN_SESSION_ID: it does not.
    Gone,
    /// Anything else (3001 from a PCRF that does not know the command, no route, a
    /// timeout): the binding stays.
    Unknown,
}

/// The session-status audit (issue 13 point 4, "no orphans"): every `every / 4`, entries
/// unchanged for `every` have their active Gx, Gxx and Rx sessions checked with their PCRF
/// (Session-Status, `dictionaries/roaming_vendor.toml`). Sessions the PCRF no longer holds
/// are marked terminated, so an entry with none left is deleted (document 002 step 4);
/// entries the PCRF confirms, or cannot answer for, are touched and checked again after
/// another `every`. The age-out (`binding_lifetime`) stays the last resort for PCRFs that
/// never answer.
async fn status_audit(weak: std::sync::Weak<Shared>, every: Duration) {
    let tick = (every / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
    loop {
        tokio::time::sleep(tick).await;
        let Some(s) = weak.upgrade() else { return };
        let cutoff = now_ms().saturating_sub(every.as_millis() as u64);
        let idle = match s.store.idle(cutoff, AUDIT_BATCH).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "session-status audit");
                continue;
            }
        };
        for b in idle {
            s.check_binding(b).await;
        }
    }
}

/// Whether a relayed answer is a success (Result-Code 2xxx, RFC 6733 §7.1.2).
fn is_success(a: &Message) -> bool {
    a.get(base::RESULT_CODE)
        .and_then(Result::ok)
        .is_some_and(|rc| (2000..3000).contains(&rc))
}

/// Runs `fut` to its end here when it does not wait (polled once), else in a task.
fn spawn_unless_ready(fut: impl Future<Output = ()> + Send + 'static) {
    let mut fut = Box::pin(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if fut.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(fut);
    }
}

impl Shared {
    async fn refresh(&self) {
        if let Ok(s) = self.store.stats().await {
            self.metrics.set_stats(s);
        }
    }

    fn released(&self, reason: &'static str, gone: &[Binding]) {
        let now = now_ms();
        self.metrics.released(
            reason,
            gone.iter()
                .map(|b| now.saturating_sub(b.created_ms) as f64 / 1000.0),
        );
    }

    async fn release_pcrf(&self, pcrf: &str, reason: &'static str) {
        match self.store.release_pcrf(pcrf.to_string()).await {
            Ok(gone) => {
                tracing::info!(
                    pcrf,
                    bindings = gone.len(),
                    reason,
                    "bindings of a PCRF released"
                );
                self.released(reason, &gone);
            }
            Err(e) => tracing::warn!(pcrf, error = %e, "releasing a PCRF's bindings"),
        }
        self.refresh().await;
    }

    /// Asks the PCRF of an idle entry about each of its active sessions; marks those it no
    /// longer holds, touches the entry when some remain.
    async fn check_binding(&self, b: Binding) {
        let mut gone = Vec::new();
        for sess in b
            .sessions
            .iter()
            .filter(|x| x.state == SessionState::Active)
        {
            let st = self.session_status(&b.pcrf, sess).await;
            self.metrics.audited(match st {
                Status::Held => "held",
                Status::Gone => "gone",
                Status::Unknown => "unknown",
            });
            if st == Status::Gone {
                gone.push(sess.session_id.clone());
            }
        }
        let before = b
            .sessions
            .iter()
            .filter(|x| x.state == SessionState::Active)
            .count();
        if !gone.is_empty() {
            tracing::info!(binding = %b.id, pcrf = %b.pcrf, sessions = ?gone, "session-status audit: sessions the PCRF no longer holds marked terminated");
            match self.store.terminate(gone.clone(), now_ms()).await {
                Ok(done) => {
                    for t in done.iter().filter(|t| t.deleted) {
                        self.released("audit", std::slice::from_ref(&t.binding));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "session-status audit: marking"),
            }
        }
        if gone.len() < before
            && let Err(e) = self.store.touch(b.id.clone(), now_ms()).await
        {
            tracing::warn!(error = %e, "session-status audit: touching");
        }
        self.refresh().await;
    }

    /// One Session-Status request (our experimental command 16777214, sent with the
    /// Application-Id of the session's interface and Destination-Host naming the PCRF).
    async fn session_status(&self, pcrf: &str, sess: &BoundSession) -> Status {
        if sess.interface == Interface::S9 || !self.node.is_peer_available(pcrf) {
            // S9 sessions are the V-PCRF's to end (its S9 termination reaches the hDRA);
            // a PCRF not connected is released by the peer events, not here.
            return Status::Unknown;
        }
        let app = sess.interface.application();
        let me = self.node.identity();
        let realm = self
            .node
            .peer_info(pcrf)
            .map_or_else(|| me.realm.clone(), |i| i.origin_realm.clone());
        let mut r = MessageBuilder::request(SESSION_STATUS, app, true);
        r.push(base::SESSION_ID.with(sess.session_id.clone()));
        r.push(base::ORIGIN_HOST.with(me.host.clone()));
        r.push(base::ORIGIN_REALM.with(me.realm.clone()));
        r.push(base::DESTINATION_REALM.with(realm));
        r.push(base::DESTINATION_HOST.with(pcrf.to_string()));
        r.push(base::AUTH_APPLICATION_ID.with(app));
        match self.node.request(r).await {
            Ok(a) => match a.get(base::RESULT_CODE).and_then(Result::ok) {
                Some(2001) => Status::Held,
                Some(5002) => Status::Gone,
                rc => {
                    tracing::debug!(session = %sess.session_id, ?rc, "session-status: no verdict");
                    Status::Unknown
                }
            },
            Err(e) => {
                tracing::debug!(session = %sess.session_id, error = %e, "session-status: no answer");
                Status::Unknown
            }
        }
    }

    /// 5012 DIAMETER_UNABLE_TO_COMPLY when the store fails (RFC 6733 §7.1.5).
    fn store_failed(&self, req: &IncomingRequest, e: &StoreError) -> Handled {
        tracing::error!(error = %e, "binding store failed");
        let mut a = req.answer(ResultCode(5012));
        a.push(base::ERROR_MESSAGE.with("binding store unavailable"));
        (a.into(), answered(5012))
    }

    fn answer(req: &IncomingRequest, rc: u32, why: &str) -> Handled {
        let mut a = req.answer(ResultCode(rc));
        if !why.is_empty() {
            a.push(base::ERROR_MESSAGE.with(why.to_string()));
        }
        (a.into(), answered(rc))
    }

    /// The PCRF of a bound session: at once from a store that can say without waiting,
    /// else from its future.
    async fn pcrf_of_session(&self, sid: &str) -> Result<Option<String>, StoreError> {
        match self.store.pcrf_of_session_now(sid) {
            Some(r) => r,
            None => self.store.pcrf_of_session(sid).await,
        }
    }

    /// The common requests of a proxied session, forwarded at once (see
    /// [`Handler::forward_at_once`]): a client's request in proxy mode of a bound session
    /// that continues it (a CCR-U, an AAR or RAR of a bound session…) or ends it (CCR-T,
    /// STR: its sessions marked terminated when the answer comes back, as
    /// [`Shared::terminate`] does) goes to the session's PCRF unchanged, as
    /// [`Shared::handle`] would send it. Establishments and S9 requests (which may end
    /// subsessions), requests from PCRFs, a store that cannot answer at once, and
    /// least-loaded selection (which measures every answer) go to [`Shared::handle`].
    fn proxy_at_once(me: &Arc<Self>, from: &str, msg: &Message) -> Option<AtOnce> {
        let h = msg.header();
        if me.cfg.dra.selection == Selection::LeastLoaded || !me.proxies {
            return None;
        }
        let iface = Interface::from_application(h.application_id)?;
        if iface == Interface::S9 || me.pcrfs.contains(from) {
            return None;
        }
        // What this needs of the request, in one pass: Session-Id, Destination-Realm and
        // CC-Request-Type (each the first of its kind, as `get` reads them).
        let (mut sid, mut realm, mut request_type) = (None, None, None);
        for a in msg.avps().framed() {
            let slot = match a.key() {
                k if k == base::SESSION_ID.key() => &mut sid,
                k if k == base::DESTINATION_REALM.key() => &mut realm,
                k if k == dcca::CC_REQUEST_TYPE.key() => &mut request_type,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(a.data);
            }
        }
        let sid = std::str::from_utf8(sid?).ok()?;
        let realm = match realm {
            Some(r) => std::str::from_utf8(r).ok()?,
            None => &me.node.identity().realm,
        };
        if me.cfg.mode_for(realm, h.application_id) != Mode::Proxy {
            return None;
        }
        // The kind as `keys::kind_of` tells it of a bound session (not S9): CC-Request-Type
        // INITIAL (1) establishes, TERMINATION (3) ends, anything else updates (RFC 4006
        // §8.3); an STR ends; any other command (an AAR of a bound session, …) updates.
        let ends = match h.command_code {
            keys::cmd::CREDIT_CONTROL => match i32::from_be_bytes(request_type?.try_into().ok()?) {
                1 => return None,
                3 => true,
                _ => false,
            },
            keys::cmd::SESSION_TERMINATION => true,
            _ => false,
        };
        let pcrf = me.store.pcrf_of_session_now(sid)?.ok()??;
        if !ends {
            me.metrics.request(iface, "update", Mode::Proxy, "proxied");
            return Some(AtOnce::to(pcrf));
        }
        // A termination: its sessions (and the client sessions it names) are marked when
        // the answer comes back (document 002, embodiments 7–9).
        let Some(Kind::Terminate { also }) = keys::kind_of(msg, iface, true) else {
            return None;
        };
        let mut ids = Vec::with_capacity(1 + also.len());
        ids.push(sid.to_string());
        ids.extend(also);
        me.metrics
            .request(iface, "terminate", Mode::Proxy, "proxied");
        let me = me.clone();
        Some(AtOnce::to(pcrf).watch_answer(move |_| {
            spawn_unless_ready(async move { me.mark(ids).await });
        }))
    }

    async fn handle(self: Arc<Self>, req: IncomingRequest) -> Outcome {
        let h = *req.msg.header();
        let Some(iface) = Interface::from_application(h.application_id) else {
            return req
                .answer(ResultCode::DIAMETER_APPLICATION_UNSUPPORTED)
                .into();
        };
        let Some(sid) = req.msg.session_id() else {
            // RFC 6733 §8.8: every request of these applications has a Session-Id.
            return Self::answer(&req, 5005, "no Session-Id").0;
        };
        if self.pcrfs.contains(&req.peer) {
            let (o, result) = self.pcrf_initiated(&req, sid).await;
            self.metrics
                .request(iface, "pcrf_initiated", Mode::Proxy, result);
            return o;
        }
        let realm = req
            .msg
            .get(base::DESTINATION_REALM)
            .and_then(Result::ok)
            .unwrap_or(&req.node.identity().realm);
        let mode = self.cfg.mode_for(realm, h.application_id);
        // Only the PCRF of the session is needed here (not a copy of its whole entry).
        let bound = match self.pcrf_of_session(sid).await {
            Ok(b) => b,
            Err(e) => return self.store_failed(&req, &e).0,
        };
        let Some(kind) = keys::kind_of(&req.msg, iface, bound.is_some()) else {
            return Self::answer(&req, 5005, "no CC-Request-Type").0;
        };
        let label = keys::kind_label(&kind);
        let span = tracing::debug_span!("dra", session = %sid, client = %req.peer, kind = label, mode = mode.as_str());
        let decided = async {
            match kind {
                Kind::Establish => self.establish(&req, iface, mode, sid).await,
                Kind::Update => self.update(&req, mode, bound, Vec::new()),
                Kind::Terminate { also } => {
                    let mut ids = vec![sid.to_string()];
                    ids.extend(also);
                    self.terminate(&req, mode, bound, ids).await
                }
                Kind::SubsessionEnd { ended } => {
                    // The S9 session goes on; its client sessions end (document 002, claim 13).
                    if mode == Mode::Redirect {
                        self.mark(ended).await;
                        self.update(&req, mode, bound, Vec::new())
                    } else {
                        self.update(&req, mode, bound, ended)
                    }
                }
            }
        };
        let (outcome, result) = tracing::Instrument::instrument(decided, span).await;
        self.metrics.request(iface, label, mode, result);
        if label != "update" {
            // The gauges follow the changes; an update changes no binding.
            self.refresh().await;
        }
        outcome
    }

    /// A PCRF-initiated request (RAR, ASR, an Rx RAR) in proxy mode: to the client of the
    /// session, found by its binding (29.213 §7.4.1), else by Destination-Host.
    async fn pcrf_initiated(&self, req: &IncomingRequest, sid: &str) -> Handled {
        let client = match self.store.by_session(sid.to_string()).await {
            Ok(b) => b.and_then(|b| {
                b.sessions
                    .into_iter()
                    .find(|s| s.session_id == sid)
                    .map(|s| s.client)
            }),
            Err(e) => return self.store_failed(req, &e),
        };
        let to = client.or_else(|| {
            req.msg
                .get(base::DESTINATION_HOST)
                .and_then(Result::ok)
                .map(str::to_string)
        });
        match to {
            Some(c) => (Forward::to(c).into(), "proxied"),
            None => Self::answer(req, 3002, "no binding for the session"),
        }
    }

    /// An answer with Experimental-Result (RFC 6733 §7.6) of 3GPP.
    fn experimental(req: &IncomingRequest, code: u32, why: &str) -> Handled {
        let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
        a.push(base::EXPERIMENTAL_RESULT.with(vec![
            base::VENDOR_ID.with(VENDOR_3GPP),
            base::EXPERIMENTAL_RESULT_CODE.with(code),
        ]));
        a.push(base::ERROR_MESSAGE.with(why.to_string()));
        a.copy_required_from(&req.msg, req.node.dictionary());
        (a.into(), answered(code))
    }

    /// A session starts: Gx, Gxx and S9 bind by UE identity (and APN and address per
    /// IP-CAN session; S9 per UE, 29.213 §7.3.2 "one S9 session per UE"); Rx follows the
    /// binding of its UE address.
    async fn establish(
        self: &Arc<Self>,
        req: &IncomingRequest,
        iface: Interface,
        mode: Mode,
        sid: &str,
    ) -> Handled {
        let key = keys::ue_key(&req.msg);
        let now = now_ms();
        let session = BoundSession {
            session_id: sid.to_string(),
            interface: iface,
            client: req.peer.clone(),
            mode,
            state: SessionState::Active,
            since_ms: now,
        };
        let binding = if iface == Interface::Rx {
            if key.ipv4.is_none() && key.ipv6.is_none() {
                // The AAR has no UE address to find the IP-CAN session by (29.214 §4.4.1).
                let (mut o, r) =
                    Self::answer(req, 5005, "no Framed-IP-Address or Framed-IPv6-Prefix");
                if let Outcome::Answer(a) = &mut o {
                    a.push(keys::missing_framed_ip());
                }
                return (o, r);
            }
            let found = match self.store.find_by_address(key.clone()).await {
                Ok(b) => b,
                Err(e) => return self.store_failed(req, &e),
            };
            let Some(found) = found else {
                // TS 29.214 §5.5.3: no IP-CAN session for the UE address.
                return Self::experimental(
                    req,
                    IP_CAN_SESSION_NOT_AVAILABLE,
                    "no IP-CAN session bound for the UE address",
                );
            };
            match self.store.attach(found.id, session, now).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Self::experimental(
                        req,
                        IP_CAN_SESSION_NOT_AVAILABLE,
                        "the IP-CAN session ended",
                    );
                }
                Err(e) => return self.store_failed(req, &e),
            }
        } else {
            let Some(ue) = key.ue.clone() else {
                let (mut o, r) =
                    Self::answer(req, 5005, "no Subscription-Id to bind the session by");
                if let Outcome::Answer(a) = &mut o {
                    a.push(keys::missing_subscription_id());
                }
                return (o, r);
            };
            let by = if iface == Interface::S9 || self.cfg.dra.binding == BindingScope::Ue {
                MatchBy::Ue
            } else {
                MatchBy::IpCanSession
            };
            // An existing entry keeps its PCRF; a new one gets a healthy PCRF.
            let existing = match self.store.pcrf_for(&key, by).await {
                Ok(p) => p,
                Err(e) => return self.store_failed(req, &e),
            };
            let pcrf = match existing {
                Some(p) => p,
                None => {
                    let counts: std::collections::HashMap<String, usize> =
                        if self.cfg.dra.selection == Selection::LeastLoaded {
                            let mut m = std::collections::HashMap::new();
                            for p in self.pcrfs.all() {
                                let n = self.store.per_pcrf(p.host.clone()).await.unwrap_or(0);
                                m.insert(p.host.to_ascii_lowercase(), n);
                            }
                            m
                        } else {
                            Default::default()
                        };
                    let node = &self.node;
                    match self.pcrfs.select(
                        &ue,
                        |h| node.is_peer_available(h),
                        |h| counts.get(&h.to_ascii_lowercase()).copied().unwrap_or(0),
                    ) {
                        Some(p) => p.host.clone(),
                        None => return Self::answer(req, 3002, "no PCRF available"),
                    }
                }
            };
            match self
                .store
                .bind(BindRequest {
                    key,
                    by,
                    pcrf,
                    session,
                    now_ms: now,
                })
                .await
            {
                Ok(b) => b,
                Err(e) => return self.store_failed(req, &e),
            }
        };
        tracing::info!(binding = %binding.id, pcrf = %binding.pcrf, interface = iface.as_str(), "session bound");
        self.route(req, mode, binding.pcrf, Some(sid.to_string()), Vec::new())
    }

    /// Where a request of a bound session goes: redirected or forwarded to its PCRF. In
    /// proxy mode a failed establishment (`release`) takes its session off the binding.
    fn route(
        self: &Arc<Self>,
        req: &IncomingRequest,
        mode: Mode,
        pcrf: String,
        release: Option<String>,
        marks: Vec<String>,
    ) -> Handled {
        match mode {
            Mode::Redirect => {
                let uri = self
                    .pcrfs
                    .get(&pcrf)
                    .map_or_else(|| format!("aaa://{pcrf}"), |p| p.uri.clone());
                (
                    req.redirect([uri], self.usage, self.cache_time),
                    "redirected",
                )
            }
            Mode::Proxy => {
                // Only an answer hook measures the PCRF's pending requests and latency (for
                // least-loaded selection): the common update goes without one.
                let hook = release.is_some()
                    || !marks.is_empty()
                    || self.cfg.dra.selection == Selection::LeastLoaded;
                let in_flight = if hook {
                    self.pcrfs.in_flight(&pcrf)
                } else {
                    None
                };
                let mut f = Forward::to(pcrf);
                if hook {
                    let me = self.clone();
                    // Only read: the answer goes back byte for byte.
                    f = f.watch_answer(move |a| {
                        if let Some(i) = &in_flight {
                            i.answered();
                        }
                        let release = release.filter(|_| !is_success(a));
                        if marks.is_empty() && release.is_none() {
                            return;
                        }
                        // On the connection's task: a store that answers at once is done
                        // here, one that waits (the durable store's commit) goes on in a
                        // task of its own.
                        spawn_unless_ready(async move {
                            if !marks.is_empty() {
                                // Proxy mode: the sessions are marked when the answer comes
                                // back (document 002, embodiments 7–9).
                                me.mark(marks).await;
                            }
                            if let Some(sid) = release {
                                if let Ok(Some(_)) = me.store.release_session(sid.clone()).await
                                {
                                    tracing::info!(session = %sid, "establishment refused: session unbound");
                                }
                                me.refresh().await;
                            }
                        });
                    });
                }
                (f.into(), "proxied")
            }
        }
    }

    /// A request of a session: to its PCRF; a session the DRA does not know goes to the
    /// PCRF its Destination-Host names, else gets 5002 DIAMETER_UNKNOWN_SESSION_ID (RFC 6733
    /// §7.1.5).
    fn update(
        self: &Arc<Self>,
        req: &IncomingRequest,
        mode: Mode,
        bound: Option<String>,
        marks: Vec<String>,
    ) -> Handled {
        match bound.or_else(|| self.named_pcrf(req)) {
            Some(p) => self.route(req, mode, p, None, marks),
            None => Self::answer(req, 5002, "no binding for the session"),
        }
    }

    fn named_pcrf(&self, req: &IncomingRequest) -> Option<String> {
        req.msg
            .get(base::DESTINATION_HOST)
            .and_then(Result::ok)
            .filter(|h| self.pcrfs.contains(h))
            .map(str::to_string)
    }

    /// Marks sessions terminated (document 002 step 2) and deletes entries left with none
    /// active (step 4).
    async fn mark(&self, ids: Vec<String>) {
        match self.store.terminate(ids, now_ms()).await {
            Ok(done) => {
                for t in &done {
                    if let Some(s) = t
                        .binding
                        .sessions
                        .iter()
                        .find(|s| s.session_id == t.session_id)
                    {
                        self.metrics.terminated(s.interface);
                    }
                    if t.deleted {
                        tracing::info!(binding = %t.binding.id, "binding deleted: every session terminated");
                        self.released("terminated", std::slice::from_ref(&t.binding));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "marking sessions terminated"),
        }
        self.refresh().await;
    }

    /// CCR-T, STR (and an S9 CCR-T with the client Session-Ids it ends).
    async fn terminate(
        self: &Arc<Self>,
        req: &IncomingRequest,
        mode: Mode,
        bound: Option<String>,
        ids: Vec<String>,
    ) -> Handled {
        match mode {
            Mode::Redirect => {
                self.mark(ids).await;
                let Some(pcrf) = bound else {
                    // An unknown Session-Id is answered, not ignored.
                    return Self::answer(req, 5002, "no binding for the session");
                };
                match self.cfg.dra.termination {
                    Termination::Ack => Self::answer(req, 2001, ""),
                    Termination::Redirect => self.route(req, mode, pcrf, None, Vec::new()),
                }
            }
            Mode::Proxy => {
                let Some(pcrf) = bound.or_else(|| self.named_pcrf(req)) else {
                    self.mark(ids).await;
                    return Self::answer(req, 5002, "no binding for the session");
                };
                self.route(req, mode, pcrf, None, ids)
            }
        }
    }
}
