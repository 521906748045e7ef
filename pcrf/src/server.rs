//! The home PCRF: a Diameter node serving Gx over a [`SubscriberStore`] and a
//! [`SessionStore`], pushing policy changes with RAR, and forgetting the sessions of a PCEF
//! that restarted.

use crate::config::{Config, EventPolicy, PcrfSection, Role};
use crate::gx::{self, GxRequest, RequestType};
use crate::gxx::{self, QosDecision};
use crate::metrics::Label;
use crate::policy::{self, Change, Decision, Report, Requested};
use crate::rx::{self as rxw, AaRequest, RxError};
use crate::s9;
use crate::session::{
    GxSession, GxxSession, GxxSessionStore, MemoryGxxSessions, MemoryRxSessions, MemoryS9Sessions,
    MemorySessions, RuleFailure, RxSession, RxSessionStore, S9Session, S9SessionStore,
    SessionStore,
};
use crate::spr::{MemorySpr, QosLimits, RuleDef, StoreError, SubscriberKey, SubscriberStore};
use diameter_codec::dict::base;
use diameter_codec::{Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::{
    IncomingRequest, Node, NodeConfig, NodeEvent, Outcome, RequestError, handler_fn,
};
use diameter_node::peer::Application;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::Instrument;

mod gxx_side;
mod lbo_side;
mod rx_side;
mod s9_side;
mod status;

pub use status::SESSION_STATUS;

/// The node configuration from the `[node]` table, with what a PCRF needs whatever the
/// table says: Gx, Gxx and Rx advertised as vendor-specific applications of 3GPP
/// (TS 29.212 §5.1, §5a.1, TS 29.214 §5.1) with Supported-Vendor-Id 10415; unless the table says otherwise, CERs from any host
/// accepted (PCEFs are many) and Product-Name `pcrf`.
pub fn node_config(cfg: &Config) -> anyhow::Result<NodeConfig> {
    // Gx (TS 29.212 §5.1), Rx (TS 29.214 §5.1), Gxx (TS 29.212 §5a.1) and S9 (TS 29.215
    // §5.1): vendor-specific applications of 3GPP.
    let app = |id| Application::vendor_auth(gx::VENDOR_3GPP, id);
    diameter_service::node_config(
        &cfg.node,
        cfg.source.as_deref(),
        diameter_service::ServerNode {
            product_name: "pcrf",
            builtin: "(built-in home.toml)",
            applications: &[
                app(gx::APPLICATION_ID),
                app(rxw::APPLICATION_ID),
                app(gxx::APPLICATION_ID),
                app(s9::APPLICATION_ID),
            ],
        },
    )
}

struct Shared {
    node: Node,
    spr: Arc<dyn SubscriberStore>,
    sessions: Arc<dyn SessionStore>,
    rx_sessions: Arc<dyn RxSessionStore>,
    gxx_sessions: Arc<dyn GxxSessionStore>,
    s9_sessions: Arc<dyn S9SessionStore>,
    /// Itself, for the notifications to AFs that run beside the answer they follow.
    me: Weak<Self>,
    cfg: PcrfSection,
    policies: Vec<EventPolicy>,
    metrics: Label,
    /// The last Origin-State-Id each PCEF sent in its CCRs, by lower-case Origin-Host: a
    /// PCEF behind an agent restarts without a peer event of ours (RFC 6733 §8.16).
    origin_states: Mutex<HashMap<String, u32>>,
    /// The same for V-PCRFs (S9 CCRs).
    s9_origin_states: Mutex<HashMap<String, u32>>,
}

/// How many times a change of a live session is decided again when another change got there
/// first.
const ATTEMPTS: usize = 4;

/// Records Charging-Rule-Reports (TS 29.212 §5.3.18) in a session: each failed rule is kept
/// in its failure list and, when INACTIVE, no longer counted as installed. Returns the
/// failures recorded.
fn apply_reports(session: &mut GxSession, reports: &[gx::RuleReport]) -> Vec<RuleFailure> {
    let mut out = Vec::new();
    for rep in reports {
        // PCC-Rule-Status ACTIVE (0) reports a rule that works again: not a failure.
        if rep.status == Some(0) {
            continue;
        }
        for name in rep.names.iter().chain(&rep.bases) {
            let f = RuleFailure {
                name: name.clone(),
                status: rep.status,
                failure_code: rep.failure_code,
            };
            session.record_failure(f.clone());
            out.push(f);
            if rep.status == Some(1) {
                session.dynamic_rules.remove(name);
                session.predefined_rules.remove(name);
                session.rule_bases.remove(name);
            }
        }
    }
    out
}

/// Most PCEFs whose Origin-State-Id is remembered (the map holds one entry per PCEF; past
/// this, new PCEFs are served but their restarts are noticed only through peer events).
const ORIGIN_STATES_CAP: usize = 65_536;

/// A running PCRF.
pub struct Pcrf {
    shared: Arc<Shared>,
    /// The durable store's file, closed on shutdown.
    disk: Option<Arc<crate::durable::Disk>>,
    watcher: tokio::task::JoinHandle<()>,
    visited: Option<Arc<crate::visited::Visited>>,
}

/// An operator's policy change for a live session, sent with RAR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChange {
    /// Dynamic rules to install, by name (`[[rule]]` of the SPR).
    pub install: Vec<String>,
    /// Rules to remove, by name.
    pub remove: Vec<String>,
    /// Re-rate the session's dynamic rules.
    pub rating_group: Option<u32>,
}

/// What a RAR push came to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushOutcome {
    /// The session.
    pub session_id: String,
    /// The RAA's Result-Code or Experimental-Result-Code.
    pub result_code: u32,
    /// Rules installed by it (when the PCEF accepted it).
    pub installed: usize,
    /// Rules removed by it.
    pub removed: usize,
    /// Rule failures the PCEF reported in the RAA.
    pub failures: Vec<RuleFailure>,
    /// For an S9 push: the subsession (`session_id` is then the S9 Session-Id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsession: Option<u32>,
}

/// Why a push was not done.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No such session.
    #[error("no Gx session {0}")]
    UnknownSession(String),
    /// A rule to install is not in the SPR.
    #[error("no rule named `{0}`")]
    UnknownRule(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The RAR got no answer.
    #[error("RAR: {0}")]
    Request(#[from] RequestError),
}

/// The Result-Code of an answer, or its Experimental-Result-Code.
pub fn result_of(m: &Message) -> Option<u32> {
    m.get(base::RESULT_CODE).and_then(Result::ok).or_else(|| {
        m.find(base::EXPERIMENTAL_RESULT.key())
            .and_then(|e| gx::child(&e, base::EXPERIMENTAL_RESULT_CODE))
    })
}

impl Pcrf {
    /// Starts the PCRF with the embedded stores: the SPR file's contents in memory and
    /// sessions in memory, or, with `[store] durable`, in memory and written through to
    /// the data file (then also the Origin-State-Id, see [`crate::durable`]).
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
        if cfg.store.durable {
            let path = &cfg.store.path;
            let stores = crate::durable::DurableStores::open(path)
                .await
                .map_err(|e| anyhow::anyhow!("[store] {}: {e}", path.display()))?;
            return Self::start_inner(
                cfg,
                Arc::new(MemorySpr::new(&cfg.spr_data)),
                stores.gx,
                stores.rx,
                stores.gxx,
                stores.s9,
                Some((stores.disk, stores.roaming)),
            )
            .await;
        }
        Self::start_with(
            cfg,
            Arc::new(MemorySpr::new(&cfg.spr_data)),
            Arc::new(MemorySessions::new()),
        )
        .await
    }

    /// As [`Pcrf::start`] on stores of the caller's (Rx sessions in memory).
    pub async fn start_with(
        cfg: &Config,
        spr: Arc<dyn SubscriberStore>,
        sessions: Arc<dyn SessionStore>,
    ) -> anyhow::Result<Self> {
        Self::start_with_stores(
            cfg,
            spr,
            sessions,
            Arc::new(MemoryRxSessions::new()),
            Arc::new(MemoryGxxSessions::new()),
        )
        .await
    }

    /// As [`Pcrf::start`] on stores of the caller's (S9 sessions in memory).
    pub async fn start_with_stores(
        cfg: &Config,
        spr: Arc<dyn SubscriberStore>,
        sessions: Arc<dyn SessionStore>,
        rx_sessions: Arc<dyn RxSessionStore>,
        gxx_sessions: Arc<dyn GxxSessionStore>,
    ) -> anyhow::Result<Self> {
        Self::start_with_all_stores(
            cfg,
            spr,
            sessions,
            rx_sessions,
            gxx_sessions,
            Arc::new(MemoryS9Sessions::new()),
        )
        .await
    }

    /// As [`Pcrf::start`] on every store of the caller's.
    pub async fn start_with_all_stores(
        cfg: &Config,
        spr: Arc<dyn SubscriberStore>,
        sessions: Arc<dyn SessionStore>,
        rx_sessions: Arc<dyn RxSessionStore>,
        gxx_sessions: Arc<dyn GxxSessionStore>,
        s9_sessions: Arc<dyn S9SessionStore>,
    ) -> anyhow::Result<Self> {
        Self::start_inner(
            cfg,
            spr,
            sessions,
            rx_sessions,
            gxx_sessions,
            s9_sessions,
            None,
        )
        .await
    }

    async fn start_inner(
        cfg: &Config,
        spr: Arc<dyn SubscriberStore>,
        sessions: Arc<dyn SessionStore>,
        rx_sessions: Arc<dyn RxSessionStore>,
        gxx_sessions: Arc<dyn GxxSessionStore>,
        s9_sessions: Arc<dyn S9SessionStore>,
        durable: Option<(
            Arc<crate::durable::Disk>,
            Arc<dyn crate::visited::store::RoamingStore>,
        )>,
    ) -> anyhow::Result<Self> {
        let (disk, roaming) = durable.unzip();
        let mut nc = node_config(cfg)?;
        if let Some(d) = &disk {
            // RFC 6733 §8.16: the sessions outlive the restart, so the Origin-State-Id
            // must not change (peers would clear their sessions with us).
            nc.local.origin_state_id = d.origin_state_id();
        }
        let node = Node::start(nc).await?;
        // The visited role (V-PCRF) takes roaming subscribers' Gx and the S9 requests of
        // home PCRFs; everything else is served as in the home role.
        let visited = match (&cfg.pcrf.visited, cfg.pcrf.role) {
            (Some(v), Role::Visited) => Some(Arc::new(match roaming {
                Some(store) => {
                    crate::visited::Visited::with_store(node.clone(), &cfg.pcrf, v.clone(), store)
                }
                None => crate::visited::Visited::new(node.clone(), &cfg.pcrf, v.clone()),
            })),
            (None, Role::Visited) => anyhow::bail!("pcrf.role = \"visited\" needs [pcrf.visited]"),
            _ => None,
        };
        let shared = Arc::new_cyclic(|me| Shared {
            metrics: Label::new(&cfg.node.origin_host),
            node,
            spr,
            sessions,
            rx_sessions,
            gxx_sessions,
            s9_sessions,
            me: me.clone(),
            cfg: cfg.pcrf.clone(),
            policies: cfg.policies.clone(),
            origin_states: Mutex::new(HashMap::new()),
            s9_origin_states: Mutex::new(HashMap::new()),
        });
        // From the stores: a durable one starts with the sessions it kept.
        shared
            .metrics
            .set_sessions(shared.sessions.count().await.unwrap_or(0));
        shared
            .metrics
            .set_rx_sessions(shared.rx_sessions.count().await.unwrap_or(0));
        shared
            .metrics
            .set_s9_sessions(shared.s9_sessions.count().await.unwrap_or(0));
        let h = shared.clone();
        let v = visited.clone();
        shared.node.register(
            gx::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                let v = v.clone();
                async move {
                    if status::is_status_probe(&req) {
                        return Outcome::from(h.session_status(req).await);
                    }
                    if let Some(v) = &v
                        && let Some(a) = v.gx_request(&req).await
                    {
                        return Outcome::from(a);
                    }
                    Outcome::from(h.credit_control(req).await)
                }
            }),
        );
        let h = shared.clone();
        let v = visited.clone();
        shared.node.register(
            gxx::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                let v = v.clone();
                async move {
                    if status::is_status_probe(&req) {
                        return Outcome::from(h.session_status(req).await);
                    }
                    if let Some(v) = &v
                        && let Some(a) = v.gxx_request(&req).await
                    {
                        return Outcome::from(a);
                    }
                    Outcome::from(h.gxx_credit_control(req).await)
                }
            }),
        );
        let h = shared.clone();
        let v = visited.clone();
        shared.node.register(
            rxw::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                let v = v.clone();
                async move {
                    if status::is_status_probe(&req) {
                        return Outcome::from(h.session_status(req).await);
                    }
                    if let Some(v) = &v
                        && let Some(a) = v.rx_request(&req).await
                    {
                        return Outcome::from(a);
                    }
                    Outcome::from(h.rx_request(req).await)
                }
            }),
        );
        let h = shared.clone();
        let v = visited.clone();
        shared.node.register(
            s9::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                let v = v.clone();
                async move {
                    // A V-PCRF is also the home of its own subscribers: S9 CCRs of other
                    // networks' V-PCRFs are served as in the home role; what home PCRFs
                    // send it (RAR) is the visited role's.
                    match v {
                        Some(v)
                            if req.msg.header().command_code
                                != diameter_codec::dict::s9::CMD_CREDIT_CONTROL =>
                        {
                            v.s9_request(req).await
                        }
                        _ => h.s9_request(req).await,
                    }
                }
            }),
        );
        let weak = Arc::downgrade(&shared);
        let weak_visited = visited.as_ref().map(Arc::downgrade);
        let mut events = shared.node.events();
        let watcher = tokio::spawn(async move {
            loop {
                let Some(e) = diameter_service::next_event(&mut events).await else {
                    return;
                };
                let NodeEvent::PeerRestarted { peer, current, .. } = e else {
                    continue;
                };
                let Some(s) = weak.upgrade() else { return };
                // Each clean-up runs once per new Origin-State-Id: a request carrying it may
                // have been handled first (and the restarted peer's new sessions created
                // since must stay).
                if let Some(v) = weak_visited.as_ref().and_then(Weak::upgrade)
                    && origin_state_seen(&v.origin_states, &peer, current)
                {
                    v.pcef_restarted(&peer).await;
                }
                if origin_state_seen(&s.origin_states, &peer, current) {
                    s.peer_restarted(&peer).await;
                }
                if origin_state_seen(&s.s9_origin_states, &peer, current) {
                    s.vpcrf_restarted(&peer).await;
                }
            }
        });
        Ok(Self {
            shared,
            disk,
            watcher,
            visited,
        })
    }

    /// The visited role's state, when this PCRF plays it.
    pub fn visited(&self) -> Option<&crate::visited::Visited> {
        self.visited.as_deref()
    }

    /// The Diameter node.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// The Diameter listening addresses.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        self.shared.node.listen_addrs()
    }

    /// The session store.
    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.shared.sessions
    }

    /// A live session.
    pub async fn session(&self, session_id: &str) -> Result<Option<GxSession>, StoreError> {
        self.shared.sessions.get(session_id.to_string()).await
    }

    /// The Rx session store.
    pub fn rx_sessions(&self) -> &Arc<dyn RxSessionStore> {
        &self.shared.rx_sessions
    }

    /// A live Gxx session.
    pub async fn gxx_session(&self, session_id: &str) -> Result<Option<GxxSession>, StoreError> {
        self.shared.gxx_sessions.get(session_id.to_string()).await
    }

    /// The S9 session store.
    pub fn s9_sessions(&self) -> &Arc<dyn S9SessionStore> {
        &self.shared.s9_sessions
    }

    /// A live S9 session.
    pub async fn s9_session(&self, session_id: &str) -> Result<Option<S9Session>, StoreError> {
        self.shared.s9_sessions.get(session_id.to_string()).await
    }

    /// Pushes a policy change to a roaming UE's S9 session with an S9 RAR (TS 29.215
    /// §4.5.2) sent to the V-PCRF that opened it: to subsession `subsession`, or to every
    /// subsession. Each subsession records the change when the RAA accepts it.
    pub async fn push_s9(
        &self,
        session_id: &str,
        subsession: Option<u32>,
        change: &PolicyChange,
    ) -> Result<Vec<PushOutcome>, PushError> {
        self.shared.push_s9(session_id, subsession, change).await
    }

    /// Asks a V-PCRF to open an S9 session for a subscriber (TS 29.215 §4.5.x,
    /// Trigger-Establishment-Request), or, with `dra_binding_deletion`, asks the V-DRA to
    /// delete the binding such a request made. Returns the TEA's result.
    pub async fn trigger_establishment(
        &self,
        vpcrf_host: &str,
        vpcrf_realm: &str,
        imsi: &str,
        apn: Option<&str>,
        dra_binding_deletion: bool,
    ) -> Result<u32, PushError> {
        self.shared
            .trigger_establishment(vpcrf_host, vpcrf_realm, imsi, apn, dra_binding_deletion)
            .await
    }

    /// A live Rx session.
    pub async fn rx_session(&self, session_id: &str) -> Result<Option<RxSession>, StoreError> {
        self.shared.rx_sessions.get(session_id.to_string()).await
    }

    /// Pushes a policy change to a live session with a Gx RAR (unsolicited provisioning, TS 29.212 §4.5.2) sent to
    /// the PCEF that opened it; the session records the change when the RAA says 2001, and
    /// is forgotten when it says 5002 DIAMETER_UNKNOWN_SESSION_ID.
    pub async fn push(
        &self,
        session_id: &str,
        change: &PolicyChange,
    ) -> Result<PushOutcome, PushError> {
        self.shared.push(session_id, change).await
    }

    /// Pushes a change to every live session of a subscriber (`imsi:…`, bare IMSI, …).
    pub async fn push_subscriber(
        &self,
        subscriber: &str,
        change: &PolicyChange,
    ) -> Result<Vec<PushOutcome>, PushError> {
        let key = SubscriberKey::parse(subscriber);
        let profile = self.shared.spr.subscriber(vec![key.clone()]).await?;
        let canonical = profile
            .and_then(|p| p.profile.keys().first().map(SubscriberKey::as_key))
            .unwrap_or_else(|| key.as_key());
        let ids = self
            .shared
            .sessions
            .by_subscriber(canonical.clone())
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.shared.push(&id, change).await?);
        }
        // A roaming subscriber's S9 sessions (every subsession of each).
        for id in self.shared.s9_sessions.by_subscriber(canonical).await? {
            out.extend(self.shared.push_s9(&id, None, change).await?);
        }
        Ok(out)
    }

    /// Asks the PCEF to end a session: a RAR with Session-Release-Cause (TS 29.212
    /// §5.3.44), which the PCEF answers and follows with a CCR-T. Returns the RAA's result.
    pub async fn release(&self, session_id: &str, cause: i32) -> Result<u32, PushError> {
        let s = &self.shared;
        let session = s
            .sessions
            .get(session_id.to_string())
            .await?
            .ok_or_else(|| PushError::UnknownSession(session_id.to_string()))?;
        let rar = gx::rar(
            s.node.identity(),
            &session.session_id,
            &session.pcef_host,
            &session.pcef_realm,
            &Decision::default(),
            Some(cause),
        );
        let answer = s.node.request(rar).await;
        let rc = answer.as_ref().ok().and_then(result_of);
        s.metrics.rar(rc);
        let answer = answer?;
        let rc = result_of(&answer).unwrap_or(0);
        if rc == 5002 {
            s.forget(session_id, "unknown_at_pcef").await?;
        }
        Ok(rc)
    }

    /// Asks a V-PCRF to end a roaming UE's S9 session, or one of its subsessions: an S9 RAR
    /// with Session-Release-Cause (TS 29.215 §5.6.4 at command level; §5.3.1 inside the
    /// subsession's Subsession-Decision-Info, "only for RAR"), which the V-PCRF answers and
    /// follows with a CCR-T or a CCR-U ending the subsession. Returns the RAA's result.
    pub async fn release_s9(
        &self,
        session_id: &str,
        subsession: Option<u32>,
        cause: i32,
    ) -> Result<u32, PushError> {
        self.shared.release_s9(session_id, subsession, cause).await
    }

    /// Stops the node (DPR to every peer, at most `timeout`) and the event watcher.
    pub async fn shutdown(&self, timeout: Duration) {
        self.watcher.abort();
        self.shared.node.shutdown(timeout).await;
        if let Some(d) = &self.disk {
            d.close().await;
        }
    }
}

impl Drop for Pcrf {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Shared {
    /// An answer with Result-Code `rc`, what the CCA grammar requires copied in.
    fn answer(&self, req: &IncomingRequest, rc: u32) -> MessageBuilder {
        req.answer(ResultCode(rc))
    }

    /// 5012 DIAMETER_UNABLE_TO_COMPLY when a store fails (RFC 6733 §7.1.5).
    fn store_failed(&self, req: &IncomingRequest, e: &StoreError) -> (MessageBuilder, u32) {
        tracing::error!(error = %e, "store failed");
        let mut a = self.answer(req, 5012);
        a.push(base::ERROR_MESSAGE.with("policy store unavailable"));
        (a, 5012)
    }

    /// A CCA with Experimental-Result instead of Result-Code (RFC 6733 §7.6).
    fn experimental(&self, req: &IncomingRequest, code: u32) -> MessageBuilder {
        let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
        a.push(gx::experimental_result(code));
        a.copy_required_from(&req.msg, req.node.dictionary());
        a
    }

    async fn credit_control(&self, req: IncomingRequest) -> MessageBuilder {
        let r = match GxRequest::read(&req.msg) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.ccr("invalid", e.result_code);
                let mut a = self.answer(&req, e.result_code);
                a.push(base::ERROR_MESSAGE.with(e.message));
                return a;
            }
        };
        for d in &req.deviations {
            tracing::debug!(session = %r.session_id, deviation = %d, "accepted with a deviation");
        }
        let span = tracing::debug_span!(
            "gx",
            session = %r.session_id,
            pcef = %r.origin_host,
            kind = r.request_type.as_str(),
            number = r.request_number
        );
        if let Some(osi) = req.msg.get(base::ORIGIN_STATE_ID).and_then(Result::ok) {
            self.origin_state(&r.origin_host, osi).await;
        }
        let decided = async {
            match r.request_type {
                RequestType::Initial => self.initial(&req, &r).await,
                RequestType::Update => self.update(&req, &r).await,
                RequestType::Termination => self.terminate(&req, &r).await,
                RequestType::Event => {
                    // A Gx session is session based: TS 29.212 uses INITIAL, UPDATE and TERMINATION
                    // requests only; EVENT_REQUEST is an invalid value here (RFC 6733 §7.1.5 5004).
                    let mut a = self.answer(&req, 5004);
                    if let Some(avp) = req
                        .msg
                        .find(diameter_codec::dict::dcca::CC_REQUEST_TYPE.key())
                    {
                        a.push(base::FAILED_AVP.with(vec![OwnedAvp::from_ref(&avp)]));
                    }
                    a.push(base::ERROR_MESSAGE.with("EVENT_REQUEST is not used on Gx"));
                    (a, 5004)
                }
            }
        };
        let (answer, rc) = decided.instrument(span).await;
        self.metrics.ccr(r.request_type.as_str(), rc);
        if let Ok(n) = self.sessions.count().await {
            self.metrics.set_sessions(n);
        }
        answer
    }

    /// CCR-I (TS 29.212 §4.5.1): look the subscriber up, decide, keep the session.
    async fn initial(&self, req: &IncomingRequest, r: &GxRequest) -> (MessageBuilder, u32) {
        if let Some(f) = r.features.iter().find(|f| f.vendor_missing) {
            // Open5GS sends Supported-Features without Vendor-Id (TS 29.229 §6.3.29 requires
            // it); the node accepted it as a deviation, and it can only mean 3GPP's list.
            tracing::debug!(
                list_id = f.list_id,
                "Supported-Features without Vendor-Id taken as 3GPP's"
            );
        }
        let sub = match self.spr.subscriber(r.subscribers.clone()).await {
            Ok(s) => s,
            Err(e) => {
                return self.store_failed(req, &e);
            }
        };
        let Some(sub) = sub else {
            let ids: Vec<String> = r.subscribers.iter().map(SubscriberKey::as_key).collect();
            tracing::info!(subscription_ids = ?ids, "unknown subscriber");
            let mut a = self.experimental(req, gx::USER_UNKNOWN);
            a.push(base::ERROR_MESSAGE.with(if ids.is_empty() {
                "no Subscription-Id (IMSI, E.164 or NAI) in the request".to_string()
            } else {
                format!("unknown subscriber {}", ids.join(", "))
            }));
            return (a, gx::USER_UNKNOWN);
        };
        let key = sub
            .profile
            .keys()
            .first()
            .map(SubscriberKey::as_key)
            .unwrap_or_default();
        let decision = policy::establish(
            &sub,
            &key,
            &self.cfg,
            &self.policies,
            Requested {
                apn_ambr: r.requested_ambr,
            },
        );
        let features = gx::agree_features(&self.cfg.supported_features, &r.features);
        let mut session = GxSession {
            session_id: r.session_id.clone(),
            pcef_host: r.origin_host.clone(),
            pcef_realm: r.origin_realm.clone(),
            subscriber: key.clone(),
            ue_ip: r.ue_ip,
            apn: r.apn.clone(),
            rat_type: r.rat_type,
            user_location: r.user_location.as_deref().map(hex_of),
            last_request_number: r.request_number,
            dynamic_rules: Default::default(),
            predefined_rules: Default::default(),
            rule_bases: Default::default(),
            event_triggers: Default::default(),
            online: false,
            offline: false,
            features: features.clone(),
            failures: Vec::new(),
            charging_id: r.charging_id.as_deref().map(hex_of),
            charging_address: r.charging_address,
            version: 0,
        };
        decision.apply(&mut session);
        match self.sessions.put(session.clone()).await {
            Ok(Some(_)) => tracing::info!("CCR-I for a live session: its state replaced"),
            Ok(None) => {}
            Err(e) => {
                return self.store_failed(req, &e);
            }
        }
        // Per-session life cycle at debug: at tens of thousands of sessions a second, a line
        // each at info costs the server more than deciding the session does.
        tracing::debug!(
            subscriber = %key,
            ue_ip = ?session.ue_ip,
            apn = ?session.apn,
            rules = session.rule_count(),
            online = session.online,
            "Gx session established"
        );
        self.link_waiting_gxx(&session);
        let mut a = self.answer(req, 2001);
        for f in gx::supported_features(&features) {
            a.push(f);
        }
        for avp in gx::decision_avps(&decision, false) {
            a.push(avp);
        }
        if let Some(ci) =
            gx::charging_information(&self.cfg.charging, session.online, session.offline)
        {
            a.push(ci);
        }
        self.metrics.installed(
            decision.install.len(),
            decision.activate.len(),
            decision.activate_bases.len(),
        );
        (a, 2001)
    }

    /// Logs and counts rule failures once they are recorded.
    fn log_failures(&self, session_id: &str, failures: &[RuleFailure]) {
        for f in failures {
            tracing::warn!(
                session = session_id,
                rule = %f.name,
                status = ?f.status,
                failure_code = ?f.failure_code,
                "PCEF reports a rule failure"
            );
            self.metrics.rule_failure(f.failure_code);
        }
    }

    /// Changes a live session with `f`, read and written optimistically (see
    /// [`SessionStore::replace`]): on a conflict it is read again and `f` runs again.
    /// `None` when the session is gone.
    async fn amend<T>(
        &self,
        session_id: &str,
        f: impl Fn(&mut GxSession) -> T,
    ) -> Result<Option<(GxSession, T)>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(mut s) = self.sessions.get(session_id.to_string()).await? else {
                return Ok(None);
            };
            let out = f(&mut s);
            if self.sessions.replace(s.clone()).await? {
                return Ok(Some((s, out)));
            }
        }
        Err(StoreError(format!(
            "session {session_id} changed under {ATTEMPTS} attempts"
        )))
    }

    async fn limits_of(&self, subscriber: &str) -> QosLimits {
        match self
            .spr
            .subscriber(vec![SubscriberKey::parse(subscriber)])
            .await
        {
            Ok(Some(s)) => s.profile.qos_limits,
            _ => QosLimits::default(),
        }
    }

    /// CCR-U (TS 29.212 §4.5.2): rule reports, reported events and the policies they
    /// trigger. Decided on the session as read and written only over it; decided again
    /// when a push changed it meanwhile.
    async fn update(&self, req: &IncomingRequest, r: &GxRequest) -> (MessageBuilder, u32) {
        for _ in 0..ATTEMPTS {
            let mut session = match self.sessions.get(r.session_id.clone()).await {
                Ok(Some(s)) => s,
                // RFC 6733 §7.1.5: DIAMETER_UNKNOWN_SESSION_ID for a session this server does
                // not know (never opened, or already ended).
                Ok(None) => return (self.answer(req, 5002), 5002),
                Err(e) => return self.store_failed(req, &e),
            };
            let previous_number = session.last_request_number;
            session.last_request_number = previous_number.max(r.request_number);
            let failures = apply_reports(&mut session, &r.rule_reports);
            if r.rat_type.is_some() {
                session.rat_type = r.rat_type;
            }
            if let Some(l) = &r.user_location {
                session.user_location = Some(hex_of(l));
            }
            if r.ue_ip.is_some() {
                session.ue_ip = r.ue_ip;
            }
            let new_charging_id = r.charging_id.as_deref().map(hex_of);
            let charging_changed =
                new_charging_id.is_some() && new_charging_id != session.charging_id;
            if charging_changed {
                session.charging_id = new_charging_id;
            }
            if r.charging_address.is_some() {
                session.charging_address = r.charging_address;
            }
            let report = Report {
                events: r.event_triggers.clone(),
                rat_type: session.rat_type,
            };
            let triggered = policy::triggered(&session, &report, &self.policies);
            let mut rules = BTreeMap::new();
            for name in triggered.iter().flat_map(|p| &p.install) {
                if let Ok(Some(def)) = self.spr.rule(name.clone()).await {
                    rules.insert(name.clone(), def);
                }
            }
            let limits = self.limits_of(&session.subscriber).await;
            let decision = policy::on_report(&session, &report, &self.policies, &rules, &limits);
            decision.apply(&mut session);
            match self.sessions.replace(session).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return self.store_failed(req, &e),
            }
            if r.request_number <= previous_number && !req.retransmitted {
                // RFC 4006 §8.2 numbers requests in a session; a lower one is out of order
                // or a retransmission the duplicate cache no longer holds. Policies are
                // idempotent, so it is handled, and noted.
                tracing::warn!(
                    last = previous_number,
                    "CC-Request-Number not above the last one handled"
                );
            }
            self.log_failures(&r.session_id, &failures);
            self.notify_rule_reports(&r.session_id, r.rule_reports.clone());
            if r.event_triggers.iter().any(|&e| e == 2 || e == 7) {
                self.notify_ip_can_change(&r.session_id, r.rat_type);
            }
            if charging_changed {
                self.notify_charging_correlation(&r.session_id);
            }
            if !r.event_triggers.is_empty() && tracing::enabled!(tracing::Level::DEBUG) {
                let names: Vec<String> = r
                    .event_triggers
                    .iter()
                    .map(|&e| policy::event_trigger_name(e))
                    .collect();
                tracing::debug!(
                    events = ?names,
                    policies = triggered.len(),
                    install = decision.install.len(),
                    remove = decision.remove.len(),
                    "events reported"
                );
            }
            let mut a = self.answer(req, 2001);
            for avp in gx::decision_avps(&decision, false) {
                a.push(avp);
            }
            self.metrics
                .installed(decision.install.len(), decision.activate.len(), 0);
            self.mirror_to_gxx(&r.session_id, QosDecision::of(&decision));
            return (a, 2001);
        }
        tracing::warn!(session = %r.session_id, "session changed under every attempt");
        self.store_failed(
            req,
            &StoreError(format!("session changed under {ATTEMPTS} attempts")),
        )
    }

    /// CCR-T (CC-Request-Type TERMINATION_REQUEST, TS 29.212 §5.6.2): the session ends.
    async fn terminate(&self, req: &IncomingRequest, r: &GxRequest) -> (MessageBuilder, u32) {
        match self.sessions.remove(r.session_id.clone()).await {
            Ok(Some(mut s)) => {
                let failures = apply_reports(&mut s, &r.rule_reports);
                self.log_failures(&r.session_id, &failures);
                self.metrics.released("termination", 1);
                tracing::debug!(subscriber = %s.subscriber, "Gx session terminated");
                self.ip_can_lost(vec![s.session_id.clone()]);
                (self.answer(req, 2001), 2001)
            }
            Ok(None) => (self.answer(req, 5002), 5002),
            Err(e) => self.store_failed(req, &e),
        }
    }

    async fn forget(&self, session_id: &str, reason: &'static str) -> Result<(), StoreError> {
        if self
            .sessions
            .remove(session_id.to_string())
            .await?
            .is_some()
        {
            self.metrics.released(reason, 1);
            if let Ok(n) = self.sessions.count().await {
                self.metrics.set_sessions(n);
            }
            self.ip_can_lost(vec![session_id.to_string()]);
        }
        Ok(())
    }

    /// RFC 6733 §8.16: a CCR whose Origin-State-Id differs from the one its PCEF sent before
    /// means the PCEF restarted (seen also through agents, where no peer event of ours
    /// shows it): its older sessions are gone, before this CCR is handled.
    async fn origin_state(&self, origin_host: &str, osi: u32) {
        if origin_state_changed(&self.origin_states, origin_host, osi) {
            self.peer_restarted(origin_host).await;
        }
    }

    /// A peer that restarted lost every session it had with us, whatever the application
    /// (RFC 6733 §8.16: the Origin-State-Id is the node's).
    async fn peer_restarted(&self, peer: &str) {
        self.pcef_restarted(peer).await;
        self.af_restarted(peer).await;
        self.bberf_restarted(peer).await;
    }

    /// RFC 6733 §8.16: a PCEF whose Origin-State-Id changed lost its sessions; so does the
    /// PCRF.
    async fn pcef_restarted(&self, peer: &str) {
        match self.sessions.remove_by_pcef(peer.to_string()).await {
            Ok(gone) => {
                tracing::info!(%peer, sessions = gone.len(), "PCEF restarted: its Gx sessions removed");
                self.metrics.released("pcef_restart", gone.len());
                if let Ok(n) = self.sessions.count().await {
                    self.metrics.set_sessions(n);
                }
                self.ip_can_lost(gone.into_iter().map(|s| s.session_id).collect());
            }
            Err(e) => tracing::warn!(%peer, error = %e, "removing a restarted PCEF's sessions"),
        }
    }

    async fn push(
        &self,
        session_id: &str,
        change: &PolicyChange,
    ) -> Result<PushOutcome, PushError> {
        if self.sessions.get(session_id.to_string()).await?.is_none()
            && self.s9_subsession(session_id).await?.is_none()
        {
            return Err(PushError::UnknownSession(session_id.to_string()));
        }
        let mut install: Vec<Arc<RuleDef>> = Vec::with_capacity(change.install.len());
        for name in &change.install {
            install.push(
                self.spr
                    .rule(name.clone())
                    .await?
                    .ok_or_else(|| PushError::UnknownRule(name.clone()))?,
            );
        }
        self.gx_change(
            session_id,
            Change {
                install,
                remove: change.remove.clone(),
                rating_group: change.rating_group,
            },
            &BTreeSet::new(),
        )
        .await
    }

    /// Sends a Gx RAR (TS 29.212 §4.5.2) carrying `change`, decided on the session as it is
    /// (capped by the subscriber's limits), with `triggers` added to the session's
    /// Event-Triggers when it lacks any; records what the RAA accepted and the rule reports
    /// it carried (and tells the AFs concerned); forgets the session when the PCEF no longer
    /// knows it.
    async fn gx_change(
        &self,
        session_id: &str,
        change: Change,
        triggers: &BTreeSet<i32>,
    ) -> Result<PushOutcome, PushError> {
        // A roaming UE's subsession (an AF session bound to it, a push naming it): the
        // change goes to its V-PCRF by S9 RAR.
        if let Some((s9_id, n)) = s9::parse_subsession_key(session_id)
            && self.s9_sessions.get(s9_id.to_string()).await?.is_some()
        {
            let mut out = self.s9_change(s9_id, &[(n, change)], triggers).await?;
            return out
                .pop()
                .map(|mut o| {
                    o.session_id = session_id.to_string();
                    o
                })
                .ok_or_else(|| PushError::UnknownSession(session_id.to_string()));
        }
        let session = self
            .sessions
            .get(session_id.to_string())
            .await?
            .ok_or_else(|| PushError::UnknownSession(session_id.to_string()))?;
        let limits = self.limits_of(&session.subscriber).await;
        let mut decision = policy::decide(&session, &[change], &limits);
        if !triggers.is_subset(&session.event_triggers) {
            decision.event_triggers =
                Some(session.event_triggers.union(triggers).copied().collect());
        }
        let rar = gx::rar(
            self.node.identity(),
            &session.session_id,
            &session.pcef_host,
            &session.pcef_realm,
            &decision,
            None,
        );
        let answer = self.node.request(rar).await;
        self.metrics.rar(answer.as_ref().ok().and_then(result_of));
        let answer = answer?;
        let rc = result_of(&answer).unwrap_or(0);
        let reports = gx::rule_reports_of(&answer);
        let mut out = PushOutcome {
            session_id: session_id.to_string(),
            result_code: rc,
            installed: 0,
            removed: 0,
            failures: Vec::new(),
            subsession: None,
        };
        match rc {
            2001 => {
                // Applied to the session as it is now (a CCR-U may have changed it while
                // the RAR was out).
                if let Some((_, failures)) = self
                    .amend(session_id, |s| {
                        decision.apply(s);
                        apply_reports(s, &reports)
                    })
                    .await?
                {
                    self.log_failures(session_id, &failures);
                    out.failures = failures;
                }
                self.notify_rule_reports(session_id, reports.clone());
                self.mirror_to_gxx(session_id, QosDecision::of(&decision));
                out.installed = decision.installs();
                out.removed = decision.remove.len();
                self.metrics
                    .installed(decision.install.len(), decision.activate.len(), 0);
                tracing::info!(
                    session = session_id,
                    installed = out.installed,
                    removed = out.removed,
                    "policy pushed"
                );
            }
            5002 => {
                tracing::info!(session = session_id, "PCEF no longer knows the session");
                self.forget(session_id, "unknown_at_pcef").await?;
            }
            _ => {
                tracing::warn!(
                    session = session_id,
                    result_code = rc,
                    "policy push refused"
                );
                if let Some((_, failures)) = self
                    .amend(session_id, |s| apply_reports(s, &reports))
                    .await?
                {
                    self.log_failures(session_id, &failures);
                    out.failures = failures;
                }
                self.notify_rule_reports(session_id, reports.clone());
            }
        }
        Ok(out)
    }
}

/// Records Origin-State-Id `osi` of `host` (lower-cased) in `map`, at most
/// [`ORIGIN_STATES_CAP`] hosts; the value recorded before (`None`: none, or `map`
/// poisoned, `Err`).
fn record_origin_state(
    map: &Mutex<HashMap<String, u32>>,
    host: &str,
    osi: u32,
) -> Result<Option<u32>, ()> {
    let mut m = map.lock().map_err(|_| ())?;
    let key = host.to_ascii_lowercase();
    if let Some(prev) = m.get_mut(&key) {
        return Ok(Some(std::mem::replace(prev, osi)));
    }
    if m.len() < ORIGIN_STATES_CAP {
        m.insert(key, osi);
    }
    Ok(None)
}

/// A peer event said `peer` restarted with Origin-State-Id `current`: records it in `map`;
/// `false` when a request carrying it was seen first (its clean-up already ran, and what
/// the restarted peer created since must stay).
pub(crate) fn origin_state_seen(
    map: &Mutex<HashMap<String, u32>>,
    peer: &str,
    current: u32,
) -> bool {
    record_origin_state(map, peer, current) != Ok(Some(current))
}

/// RFC 6733 §8.16: records Origin-State-Id `osi` of `origin_host` in `map`; `true` when it
/// differs from the one recorded before (the peer restarted).
pub(crate) fn origin_state_changed(
    map: &Mutex<HashMap<String, u32>>,
    origin_host: &str,
    osi: u32,
) -> bool {
    matches!(record_origin_state(map, origin_host, osi), Ok(Some(prev)) if prev != osi)
}

/// Lower-case hex of bytes (3GPP-User-Location-Info kept readable).
fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restarted peer's clean-up runs once per new Origin-State-Id, whichever of its first
    /// request and the peer event comes first, so the peer event arriving after the first
    /// request does not remove the sessions that request created.
    #[test]
    fn a_restart_is_cleaned_up_once_whichever_path_sees_it_first() {
        let map = Mutex::new(HashMap::new());
        assert!(!origin_state_changed(&map, "PCEF.x", 7), "first sight");
        // The request with the new value first, then the event: one clean-up.
        assert!(origin_state_changed(&map, "pcef.x", 8));
        assert!(!origin_state_seen(&map, "pcef.x", 8));
        // The event first, then a request carrying the new value: one clean-up.
        assert!(origin_state_seen(&map, "pcef.x", 9));
        assert!(!origin_state_changed(&map, "PCEF.X", 9));
        // An event for a peer never seen in a request still cleans up.
        assert!(origin_state_seen(&map, "af.y", 1));
    }
}
