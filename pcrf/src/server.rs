//! The home PCRF: a Diameter node serving Gx over a [`SubscriberStore`] and a
//! [`SessionStore`], pushing policy changes with RAR, and forgetting the sessions of a PCEF
//! that restarted.

use crate::config::{Config, EventPolicy, PcrfSection, Role};
use crate::gx::{self, GxRequest, RequestType};
use crate::gxx::{self, QosDecision};
use crate::metrics::Label;
use crate::policy::{self, Change, Decision, Report, Requested};
use crate::rx::{self as rxw, AaRequest, RxError};
use crate::session::{
    GxSession, GxxSession, GxxSessionStore, MemoryGxxSessions, MemoryRxSessions, MemorySessions,
    RuleFailure, RxSession, RxSessionStore, SessionStore,
};
use crate::spr::{MemorySpr, QosLimits, RuleDef, StoreError, SubscriberKey, SubscriberStore};
use diameter_codec::dict::base;
use diameter_codec::{Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::{IncomingRequest, Node, NodeConfig, NodeEvent, RequestError, handler_fn};
use diameter_node::peer::{Application, UnknownPeerPolicy};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::Instrument;

/// The node configuration from the `[node]` table, with what a PCRF needs whatever the
/// table says: Gx, Gxx and Rx advertised as vendor-specific applications of 3GPP
/// (TS 29.212 §5.1, §5a.1, TS 29.214 §5.1) with Supported-Vendor-Id 10415; unless the table says otherwise, CERs from any host
/// accepted (PCEFs are many) and Product-Name `pcrf`.
pub fn node_config(cfg: &Config) -> anyhow::Result<NodeConfig> {
    let file = cfg
        .source
        .clone()
        .unwrap_or_else(|| PathBuf::from("(built-in home.toml)"));
    let mut nc = cfg.node.to_node_config(&file)?;
    if !nc
        .local
        .applications
        .iter()
        .any(|a| a.id == gx::APPLICATION_ID)
    {
        nc.local.applications.push(Application {
            vendor: Some(gx::VENDOR_3GPP),
            ..Application::auth(gx::APPLICATION_ID)
        });
    }
    // Rx (TS 29.214 §5.1) and Gxx (TS 29.212 §5a.1), vendor-specific like Gx.
    for app in [rxw::APPLICATION_ID, gxx::APPLICATION_ID] {
        if !nc.local.applications.iter().any(|a| a.id == app) {
            nc.local.applications.push(Application {
                vendor: Some(gx::VENDOR_3GPP),
                ..Application::auth(app)
            });
        }
    }
    if !nc.local.supported_vendor_ids.contains(&gx::VENDOR_3GPP) {
        nc.local.supported_vendor_ids.push(gx::VENDOR_3GPP);
    }
    if cfg.node.unknown_peer.is_none() {
        nc.local.unknown_peer = UnknownPeerPolicy::Accept;
    }
    if cfg.node.product_name.is_none() {
        nc.local.product_name = "pcrf".into();
    }
    Ok(nc)
}

struct Shared {
    node: Node,
    spr: Arc<dyn SubscriberStore>,
    sessions: Arc<dyn SessionStore>,
    rx_sessions: Arc<dyn RxSessionStore>,
    gxx_sessions: Arc<dyn GxxSessionStore>,
    /// Itself, for the notifications to AFs that run beside the answer they follow.
    me: Weak<Self>,
    cfg: PcrfSection,
    policies: Vec<EventPolicy>,
    metrics: Label,
    /// The last Origin-State-Id each PCEF sent in its CCRs, by lower-case Origin-Host: a
    /// PCEF behind an agent restarts without a peer event of ours (RFC 6733 §8.16).
    origin_states: Mutex<HashMap<String, u32>>,
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
    watcher: tokio::task::JoinHandle<()>,
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
    /// sessions in memory.
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
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

    /// As [`Pcrf::start`] on every store of the caller's.
    pub async fn start_with_stores(
        cfg: &Config,
        spr: Arc<dyn SubscriberStore>,
        sessions: Arc<dyn SessionStore>,
        rx_sessions: Arc<dyn RxSessionStore>,
        gxx_sessions: Arc<dyn GxxSessionStore>,
    ) -> anyhow::Result<Self> {
        if cfg.pcrf.role == Role::Visited {
            anyhow::bail!("pcrf.role = \"visited\" is not built yet: only the home role runs");
        }
        let node = Node::start(node_config(cfg)?).await?;
        let shared = Arc::new_cyclic(|me| Shared {
            metrics: Label::new(&cfg.node.origin_host),
            node,
            spr,
            sessions,
            rx_sessions,
            gxx_sessions,
            me: me.clone(),
            cfg: cfg.pcrf.clone(),
            policies: cfg.policies.clone(),
            origin_states: Mutex::new(HashMap::new()),
        });
        shared.metrics.set_sessions(0);
        shared.metrics.set_rx_sessions(0);
        let h = shared.clone();
        shared.node.register(
            gx::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                async move { h.credit_control(req).await }
            }),
        );
        let h = shared.clone();
        shared.node.register(
            gxx::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                async move { h.gxx_credit_control(req).await }
            }),
        );
        let h = shared.clone();
        shared.node.register(
            rxw::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                async move { h.rx_request(req).await }
            }),
        );
        let weak = Arc::downgrade(&shared);
        let mut events = shared.node.events();
        let watcher = tokio::spawn(async move {
            loop {
                let e = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "peer events missed");
                        continue;
                    }
                    Err(_) => return,
                };
                let NodeEvent::PeerRestarted { peer, .. } = e else {
                    continue;
                };
                let Some(s) = weak.upgrade() else { return };
                s.pcef_restarted(&peer).await;
                s.af_restarted(&peer).await;
                s.bberf_restarted(&peer).await;
            }
        });
        Ok(Self { shared, watcher })
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
        let ids = self.shared.sessions.by_subscriber(canonical).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.shared.push(&id, change).await?);
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

    /// Stops the node (DPR to every peer, at most `timeout`) and the event watcher.
    pub async fn shutdown(&self, timeout: Duration) {
        self.watcher.abort();
        self.shared.node.shutdown(timeout).await;
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
            dynamic_rules: BTreeMap::new(),
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
        tracing::info!(
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
            if !r.event_triggers.is_empty() {
                let names: Vec<String> = r
                    .event_triggers
                    .iter()
                    .map(|&e| policy::event_trigger_name(e))
                    .collect();
                tracing::info!(
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
                tracing::info!(subscriber = %s.subscriber, "Gx session terminated");
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
        let changed = {
            let Ok(mut m) = self.origin_states.lock() else {
                return;
            };
            let key = origin_host.to_ascii_lowercase();
            match m.get_mut(&key) {
                Some(prev) if *prev == osi => false,
                Some(prev) => {
                    *prev = osi;
                    true
                }
                None => {
                    if m.len() < ORIGIN_STATES_CAP {
                        m.insert(key, osi);
                    }
                    false
                }
            }
        };
        if changed {
            self.pcef_restarted(origin_host).await;
        }
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
        if self.sessions.get(session_id.to_string()).await?.is_none() {
            return Err(PushError::UnknownSession(session_id.to_string()));
        }
        let mut install: Vec<RuleDef> = Vec::with_capacity(change.install.len());
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

/// Lower-case hex of bytes (3GPP-User-Location-Info kept readable).
fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How an Rx request was answered: the answer and its code for the metrics.
type Answered = (MessageBuilder, u32);

/// The rules a Gx RAA reported INACTIVE (not installed).
fn inactive_rules(out: &Result<PushOutcome, PushError>) -> BTreeSet<String> {
    out.as_ref()
        .map(|o| {
            o.failures
                .iter()
                .filter(|f| f.status == Some(1))
                .map(|f| f.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Rule-Failure-Code values that say the resources could not be allocated (TS 29.212
/// §5.3.38): RESOURCES_LIMITATION, MAX_NR_BEARERS_REACHED, RESOURCE_ALLOCATION_FAILURE,
/// UNSUCCESSFUL_QOS_VALIDATION, NO_BEARER_BOUND.
const ALLOCATION_FAILURES: [i32; 5] = [5, 6, 10, 11, 15];

/// The Specific-Actions an AF subscribed to that a Charging-Rule-Report of its rules
/// answers (TS 29.214 §4.4.6): a rule INACTIVE for lack of resources
/// INDICATION_OF_FAILED_RESOURCES_ALLOCATION, any INACTIVE rule
/// INDICATION_OF_RELEASE_OF_BEARER, TEMPORARILY_INACTIVE INDICATION_OF_LOSS_OF_BEARER,
/// ACTIVE INDICATION_OF_SUCCESSFUL_RESOURCES_ALLOCATION.
fn actions_for_report(
    status: Option<i32>,
    failure_code: Option<i32>,
    subscribed: &BTreeSet<i32>,
) -> Vec<i32> {
    use rxw::action::*;
    let mut want = Vec::new();
    match status {
        Some(1) => {
            if failure_code.is_some_and(|c| ALLOCATION_FAILURES.contains(&c)) {
                want.push(FAILED_RESOURCES_ALLOCATION);
            }
            want.push(RELEASE_OF_BEARER);
        }
        Some(2) => want.push(LOSS_OF_BEARER),
        Some(0) => want.push(SUCCESSFUL_RESOURCES_ALLOCATION),
        _ => {}
    }
    want.retain(|a| subscribed.contains(a));
    want
}

impl Shared {
    /// An Rx answer carrying `e` (Result-Code, or Experimental-Result for 3GPP codes),
    /// Error-Message and Failed-AVP.
    fn rx_refusal(&self, req: &IncomingRequest, e: &RxError) -> MessageBuilder {
        let mut a = if e.experimental {
            self.experimental(req, e.code)
        } else {
            self.answer(req, e.code)
        };
        if let Some(f) = &e.failed {
            a.push(base::FAILED_AVP.with(vec![f.clone()]));
        }
        a.push(base::ERROR_MESSAGE.with(e.message.clone()));
        a
    }

    async fn rx_request(&self, req: IncomingRequest) -> MessageBuilder {
        for d in &req.deviations {
            tracing::debug!(deviation = %d, "Rx request accepted with a deviation");
        }
        let (answer, kind, rc) = match req.msg.header().command_code {
            diameter_codec::dict::rx::CMD_AA => match AaRequest::read(&req.msg) {
                Err(e) => (self.rx_refusal(&req, &e), "invalid", e.code),
                Ok(r) => {
                    let span =
                        tracing::debug_span!("rx", session = %r.session_id, af = %r.origin_host);
                    let existing = match self.rx_sessions.get(r.session_id.clone()).await {
                        Ok(s) => s,
                        Err(e) => {
                            let (a, rc) = self.store_failed(&req, &e);
                            return self.rx_counted(a, "invalid", rc).await;
                        }
                    };
                    match (existing, r.request_type) {
                        (Some(s), _) => {
                            let (a, rc) = self.aa_update(&req, s, r).instrument(span).await;
                            (a, "aar_update", rc)
                        }
                        // TS 29.214 §5.3.31: an UPDATE_REQUEST for no AF session.
                        (None, Some(rxw::RX_UPDATE)) => {
                            let mut a = self.answer(&req, 5002);
                            a.push(base::ERROR_MESSAGE.with("no such AF session to update"));
                            (a, "aar_update", 5002)
                        }
                        (None, _) => {
                            let (a, rc) = self.aa_initial(&req, r).instrument(span).await;
                            (a, "aar_initial", rc)
                        }
                    }
                }
            },
            diameter_codec::dict::rx::CMD_SESSION_TERMINATION => {
                let (a, rc) = self.st(&req).await;
                (a, "str", rc)
            }
            // RFC 6733 §7.1.3: a command this application does not serve.
            _ => (self.answer(&req, 3001), "invalid", 3001),
        };
        self.rx_counted(answer, kind, rc).await
    }

    async fn rx_counted(&self, a: MessageBuilder, kind: &'static str, rc: u32) -> MessageBuilder {
        self.metrics.rx_request(kind, rc);
        if let Ok(n) = self.rx_sessions.count().await {
            self.metrics.set_rx_sessions(n);
        }
        a
    }

    /// Session binding (TS 29.214 §4.4.1, TS 29.213 §4.2): the Gx session of the UE's
    /// address — of the same APN and subscriber when the AAR names them.
    async fn bind(&self, r: &AaRequest) -> Result<GxSession, RxError> {
        let Some(ip) = r.ue_ip else {
            return Err(RxError {
                code: 5005,
                experimental: false,
                message: "no Framed-IP-Address or Framed-IPv6-Prefix to bind the AF session to"
                    .into(),
                failed: Some(
                    diameter_codec::dict::nasreq::FRAMED_IP_ADDRESS
                        .with(bytes::Bytes::from_static(&[0, 0, 0, 0])),
                ),
            });
        };
        let not_available =
            |why: String| RxError::tgpp(rxw::IP_CAN_SESSION_NOT_AVAILABLE, why, None);
        let store = |e: StoreError| RxError {
            code: 5012,
            experimental: false,
            message: e.to_string(),
            failed: None,
        };
        let id = self
            .sessions
            .by_ue_ip(ip)
            .await
            .map_err(store)?
            .ok_or_else(|| not_available(format!("no IP-CAN session for UE address {ip}")))?;
        let gx = self
            .sessions
            .get(id)
            .await
            .map_err(store)?
            .ok_or_else(|| not_available(format!("no IP-CAN session for UE address {ip}")))?;
        if let (Some(want), Some(have)) = (&r.apn, &gx.apn)
            && !want.eq_ignore_ascii_case(have)
        {
            return Err(not_available(format!(
                "UE address {ip} has an IP-CAN session on APN {have}, not {want}"
            )));
        }
        // A Subscription-Id of the kind the Gx session is keyed by must name its subscriber.
        let kind = gx
            .subscriber
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        let same_kind: Vec<String> = r
            .subscribers
            .iter()
            .map(SubscriberKey::as_key)
            .filter(|k| k.starts_with(&format!("{kind}:")))
            .collect();
        if !same_kind.is_empty() && !same_kind.contains(&gx.subscriber) {
            return Err(not_available(format!(
                "the IP-CAN session of {ip} belongs to another subscriber than {}",
                same_kind.join(", ")
            )));
        }
        Ok(gx)
    }

    /// The AAA of a provisioning that reached the PCEF: 2001 with what TS 29.214 §5.6.2
    /// lets the PCRF tell of the IP-CAN session (RAT-Type).
    fn aaa_ok(
        &self,
        req: &IncomingRequest,
        gx: Option<&GxSession>,
        actions: &BTreeSet<i32>,
    ) -> MessageBuilder {
        let mut a = self.answer(req, 2001);
        // TS 29.214 §4.4.1: an AF subscribed to CHARGING_CORRELATION_EXCHANGE gets the
        // access network's charging identifier when the PCRF has it (else later, by RAR).
        if actions.contains(&rxw::action::CHARGING_CORRELATION_EXCHANGE)
            && let Some(g) = gx
        {
            for avp in rxw::charging_avps(g) {
                a.push(avp);
            }
        }
        if let Some(rat) = gx.and_then(|g| g.rat_type) {
            a.push(diameter_codec::dict::gx::RAT_TYPE.with(diameter_codec::dict::gx::RatType(rat)));
        }
        a
    }

    /// What a Gx provisioning for an AF session came to, as the AAA says it: the PCEF
    /// accepted (2001), no longer knows the IP-CAN session (IP-CAN_SESSION_NOT_AVAILABLE),
    /// refused (REQUESTED_SERVICE_NOT_AUTHORIZED) or did not answer
    /// (REQUESTED_SERVICE_TEMPORARILY_NOT_AUTHORIZED, 4261).
    fn provisioning_error(&self, out: &Result<PushOutcome, PushError>) -> Option<RxError> {
        match out {
            Ok(o) if o.result_code == 2001 => None,
            Ok(o) if o.result_code == 5002 => Some(RxError::tgpp(
                rxw::IP_CAN_SESSION_NOT_AVAILABLE,
                "the PCEF no longer knows the IP-CAN session",
                None,
            )),
            Ok(o) => Some(RxError::tgpp(
                rxw::REQUESTED_SERVICE_NOT_AUTHORIZED,
                format!("the PCEF refused the PCC rules (Gx RAA {})", o.result_code),
                None,
            )),
            Err(PushError::UnknownSession(_)) => Some(RxError::tgpp(
                rxw::IP_CAN_SESSION_NOT_AVAILABLE,
                "the IP-CAN session ended",
                None,
            )),
            Err(e) => Some(RxError::tgpp(
                4261,
                format!("the PCC rules could not be provisioned: {e}"),
                None,
            )),
        }
    }

    /// AAR for a new AF session (TS 29.214 §4.4.1): bind it to the UE's IP-CAN session,
    /// derive PCC rules from its media components (TS 29.213 §6.3), install them with a Gx
    /// RAR, and answer once the PCEF did.
    async fn aa_initial(&self, req: &IncomingRequest, r: AaRequest) -> Answered {
        let gx = match self.bind(&r).await {
            Ok(g) => g,
            Err(e) => {
                tracing::info!(ue_ip = ?r.ue_ip, reason = %e.message, "AF session not bound");
                return (self.rx_refusal(req, &e), e.code);
            }
        };
        let mut session = RxSession {
            session_id: r.session_id.clone(),
            af_host: r.origin_host.clone(),
            af_realm: r.origin_realm.clone(),
            gx_session: Some(gx.session_id.clone()),
            ue_ip: r
                .ue_ip
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            subscriber: gx.subscriber.clone(),
            af_application_id: r.af_application_id.clone(),
            af_charging_id: r.af_charging_id.clone(),
            specific_actions: r.specific_actions.iter().copied().collect(),
            components: BTreeMap::new(),
            rules: BTreeMap::new(),
            version: 0,
        };
        rxw::merge_components(&mut session.components, r.components);
        let rules = rxw::derive_rules(&session, &self.cfg.rx);
        session.rules = rules
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.af_flows.first()?.media_component)))
            .collect();
        // Kept, with the rules it is getting, before the Gx RAR goes out: an IP-CAN session
        // lost meanwhile reaches it, and so do rule reports in the RAA.
        if let Err(e) = self.rx_sessions.put(session.clone()).await {
            return self.store_failed(req, &e);
        }
        let triggers = rxw::gx_triggers_for(&session.specific_actions);
        if !rules.is_empty() || !triggers.is_subset(&gx.event_triggers) {
            let out = self
                .gx_change(
                    &gx.session_id,
                    Change {
                        install: rules,
                        remove: Vec::new(),
                        rating_group: None,
                    },
                    &triggers,
                )
                .await;
            if let Some(e) = self.provisioning_error(&out) {
                tracing::warn!(gx = %gx.session_id, reason = %e.message, "AF session refused");
                let _ = self.rx_sessions.remove(session.session_id.clone()).await;
                return (self.rx_refusal(req, &e), e.code);
            }
            // Rules the RAA reported INACTIVE leave the AF session when the AF is told of
            // them (notify_rule_reports), which needs them there until then.
            let failed = inactive_rules(&out);
            session.rules.retain(|n, _| !failed.contains(n));
        }
        tracing::info!(
            gx = %gx.session_id,
            ue_ip = %session.ue_ip,
            components = session.components.len(),
            rules = session.rules.len(),
            "AF session bound"
        );
        (self.aaa_ok(req, Some(&gx), &session.specific_actions), 2001)
    }

    /// AAR for a live AF session (TS 29.214 §4.4.2): the media components merged, rules of
    /// removed components removed, the others installed again (same names: modified).
    async fn aa_update(&self, req: &IncomingRequest, mut s: RxSession, r: AaRequest) -> Answered {
        let Some(gx_id) = s.gx_session.clone() else {
            let e = RxError::tgpp(
                rxw::IP_CAN_SESSION_NOT_AVAILABLE,
                "the IP-CAN session of this AF session is gone",
                None,
            );
            return (self.rx_refusal(req, &e), e.code);
        };
        rxw::merge_components(&mut s.components, r.components);
        if !r.specific_actions.is_empty() {
            s.specific_actions = r.specific_actions.iter().copied().collect();
        }
        if r.af_charging_id.is_some() {
            s.af_charging_id = r.af_charging_id.clone();
        }
        let rules = rxw::derive_rules(&s, &self.cfg.rx);
        let keep: BTreeSet<String> = rules.iter().map(|r| r.name.clone()).collect();
        let remove: Vec<String> = s
            .rules
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        let triggers = rxw::gx_triggers_for(&s.specific_actions);
        // The new state, its rules with the old ones until the PCEF answers (rule reports in
        // the RAA may name either).
        let old_rules = s.rules.clone();
        let old_components = {
            let cur = self.rx_sessions.get(s.session_id.clone()).await;
            cur.ok().flatten().map(|c| c.components).unwrap_or_default()
        };
        let mut both = s.rules.clone();
        both.extend(
            rules
                .iter()
                .filter_map(|r| Some((r.name.clone(), r.af_flows.first()?.media_component))),
        );
        let (components, actions, charging) = (
            s.components.clone(),
            s.specific_actions.clone(),
            s.af_charging_id.clone(),
        );
        if let Err(e) = self
            .amend_rx(&s.session_id, |cur| {
                cur.components.clone_from(&components);
                cur.specific_actions.clone_from(&actions);
                cur.af_charging_id.clone_from(&charging);
                if cur.gx_session.is_some() {
                    cur.rules.clone_from(&both);
                }
            })
            .await
        {
            return self.store_failed(req, &e);
        }
        let out = self
            .gx_change(
                &gx_id,
                Change {
                    install: rules,
                    remove,
                    rating_group: None,
                },
                &triggers,
            )
            .await;
        if let Some(e) = self.provisioning_error(&out) {
            tracing::warn!(gx = %gx_id, reason = %e.message, "AF session modification refused");
            // The PCEF kept what it had: so does the AF session.
            let _ = self
                .amend_rx(&s.session_id, |cur| {
                    cur.components.clone_from(&old_components);
                    cur.rules.retain(|n, _| old_rules.contains_key(n));
                })
                .await;
            return (self.rx_refusal(req, &e), e.code);
        }
        // Rules reported INACTIVE leave when the AF is told of them (notify_rule_reports).
        if let Err(e) = self
            .amend_rx(&s.session_id, |cur| {
                cur.rules.retain(|n, _| keep.contains(n))
            })
            .await
        {
            return self.store_failed(req, &e);
        }
        let gx = self.sessions.get(gx_id).await.ok().flatten();
        (self.aaa_ok(req, gx.as_ref(), &s.specific_actions), 2001)
    }

    /// STR (TS 29.214 §4.4.4): the AF session ends; its rules are removed from the PCEF
    /// (when its IP-CAN session is still there) before the STA.
    async fn st(&self, req: &IncomingRequest) -> Answered {
        let Some(sid) = req.msg.session_id().map(str::to_string) else {
            return (self.answer(req, 5005), 5005);
        };
        let s = match self.rx_sessions.remove(sid.clone()).await {
            Ok(Some(s)) => s,
            Ok(None) => return (self.answer(req, 5002), 5002),
            Err(e) => return self.store_failed(req, &e),
        };
        if let Some(gx) = &s.gx_session
            && !s.rules.is_empty()
        {
            let out = self
                .gx_change(
                    gx,
                    Change {
                        install: Vec::new(),
                        remove: s.rules.keys().cloned().collect(),
                        rating_group: None,
                    },
                    &BTreeSet::new(),
                )
                .await;
            match out {
                Ok(o) => {
                    tracing::info!(gx = %gx, result_code = o.result_code, removed = o.removed, "AF session ended: its rules removed")
                }
                Err(e) => {
                    tracing::warn!(gx = %gx, error = %e, "AF session ended: its rules not removed")
                }
            }
        } else {
            tracing::info!(session = %sid, "AF session ended");
        }
        (self.answer(req, 2001), 2001)
    }

    /// Changes a live Rx session optimistically (as [`Shared::amend`] does Gx sessions).
    async fn amend_rx(
        &self,
        session_id: &str,
        f: impl Fn(&mut RxSession),
    ) -> Result<Option<RxSession>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(mut s) = self.rx_sessions.get(session_id.to_string()).await? else {
                return Ok(None);
            };
            f(&mut s);
            if self.rx_sessions.replace(s.clone()).await? {
                return Ok(Some(s));
            }
        }
        Err(StoreError(format!(
            "Rx session {session_id} changed under {ATTEMPTS} attempts"
        )))
    }

    /// Runs `f` beside the current request (an answer is not held back by notifications
    /// to AFs).
    fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(Arc<Self>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(f(me).instrument(tracing::Span::current()));
        }
    }

    /// RFC 6733 §8.16: an AF whose Origin-State-Id changed lost its AF sessions; the PCRF
    /// forgets them and removes their rules from the PCEFs.
    async fn af_restarted(&self, peer: &str) {
        let gone = match self.rx_sessions.remove_by_af(peer.to_string()).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "removing a restarted AF's sessions");
                return;
            }
        };
        if gone.is_empty() {
            return;
        }
        tracing::info!(%peer, sessions = gone.len(), "AF restarted: its AF sessions removed");
        if let Ok(n) = self.rx_sessions.count().await {
            self.metrics.set_rx_sessions(n);
        }
        self.spawn(move |me| async move {
            for s in gone {
                let Some(gx) = s.gx_session.clone() else {
                    continue;
                };
                if s.rules.is_empty() {
                    continue;
                }
                let change = Change {
                    install: Vec::new(),
                    remove: s.rules.keys().cloned().collect(),
                    rating_group: None,
                };
                if let Err(e) = me.gx_change(&gx, change, &BTreeSet::new()).await {
                    tracing::warn!(gx = %gx, error = %e, "rules of a restarted AF not removed");
                }
            }
        });
    }

    /// The IP-CAN sessions `gx_ids` are gone (CCR-T, a restarted PCEF, a PCEF that no
    /// longer knows them): every AF session bound to them is told (document 002 steps
    /// 914–918; TS 29.214 §4.4.6.1), and unbound; its rules went with the IP-CAN session.
    fn ip_can_lost(&self, gx_ids: Vec<String>) {
        if gx_ids.is_empty() {
            return;
        }
        self.spawn(move |me| async move {
            for id in gx_ids {
                let bound = match me.rx_sessions.by_gx(id.clone()).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(gx = %id, error = %e, "AF sessions of a lost IP-CAN session");
                        continue;
                    }
                };
                for s in bound {
                    me.tell_loss(s).await;
                }
                // The BBERF ends its Gxx session itself (document 002: Gxx before Gx); the
                // link goes with the Gx session.
                if let Ok(linked) = me.gxx_sessions.by_gx(id.clone()).await {
                    for g in linked {
                        let _ = me
                            .amend_gxx(&g.session_id, |cur| cur.gx_session = None)
                            .await;
                    }
                }
            }
        });
    }

    async fn tell_loss(&self, s: RxSession) {
        use rxw::action::{LOSS_OF_BEARER, RELEASE_OF_BEARER};
        let sid = s.session_id.clone();
        let _ = self
            .amend_rx(&sid, |cur| {
                cur.gx_session = None;
                cur.rules.clear();
            })
            .await;
        let actions: Vec<i32> = [LOSS_OF_BEARER, RELEASE_OF_BEARER]
            .into_iter()
            .filter(|a| s.specific_actions.contains(a))
            .collect();
        let bearer_released = diameter_codec::dict::rx::AbortCause::BEARER_RELEASED.0;
        let (command, msg) =
            if actions.is_empty() || self.cfg.rx.ip_can_loss == crate::config::IpCanLoss::Asr {
                ("asr", rxw::asr(self.node.identity(), &s, bearer_released))
            } else {
                (
                    "rar",
                    rxw::rar(
                        self.node.identity(),
                        &s,
                        &actions,
                        &rxw::all_flows(&s),
                        Some(bearer_released),
                        Vec::new(),
                    ),
                )
            };
        let answer = self.node.request(msg).await;
        let rc = answer.as_ref().ok().and_then(result_of);
        self.metrics.rx_notification(command, "ip_can_loss", rc);
        tracing::info!(session = %sid, af = %s.af_host, command, result_code = ?rc, "AF told of the loss of its IP-CAN session");
        // RFC 6733 §8.5: an AF that no longer knows the session ends it here too.
        if rc == Some(5002) {
            let _ = self.rx_sessions.remove(sid).await;
            if let Ok(n) = self.rx_sessions.count().await {
                self.metrics.set_rx_sessions(n);
            }
        }
    }

    /// Charging-Rule-Reports of Gx session `gx_id` (CCR-U or RAA): each AF whose rules they
    /// name hears what it subscribed to, in one RAR with the Flows concerned (TS 29.214
    /// §4.4.6.2, §4.4.6.7); rules reported INACTIVE are no longer counted as its.
    fn notify_rule_reports(&self, gx_id: &str, reports: Vec<gx::RuleReport>) {
        if reports.is_empty() {
            return;
        }
        let gx_id = gx_id.to_string();
        self.spawn(move |me| async move {
            let Ok(bound) = me.rx_sessions.by_gx(gx_id).await else {
                return;
            };
            for s in bound {
                let mut actions: Vec<i32> = Vec::new();
                let mut components: BTreeSet<u32> = BTreeSet::new();
                let mut inactive: Vec<String> = Vec::new();
                for rep in &reports {
                    let mine: Vec<(&String, u32)> = rep
                        .names
                        .iter()
                        .filter_map(|n| s.rules.get(n).map(|&c| (n, c)))
                        .collect();
                    if mine.is_empty() {
                        continue;
                    }
                    if rep.status == Some(1) {
                        inactive.extend(mine.iter().map(|(n, _)| (*n).clone()));
                    }
                    let want = actions_for_report(rep.status, rep.failure_code, &s.specific_actions);
                    if want.is_empty() {
                        continue;
                    }
                    components.extend(mine.iter().map(|&(_, c)| c));
                    for a in want {
                        if !actions.contains(&a) {
                            actions.push(a);
                        }
                    }
                }
                if !inactive.is_empty() {
                    let _ = me
                        .amend_rx(&s.session_id, |cur| {
                            for n in &inactive {
                                cur.rules.remove(n);
                            }
                        })
                        .await;
                }
                if actions.is_empty() {
                    continue;
                }
                let flows: Vec<crate::spr::AfFlows> = rxw::all_flows(&s)
                    .into_iter()
                    .filter(|f| components.contains(&f.media_component))
                    .collect();
                let answer = me
                    .node
                    .request(rxw::rar(
                        me.node.identity(),
                        &s,
                        &actions,
                        &flows,
                        None,
                        Vec::new(),
                    ))
                    .await;
                let rc = answer.as_ref().ok().and_then(result_of);
                me.metrics.rx_notification("rar", "rule_report", rc);
                tracing::info!(session = %s.session_id, ?actions, result_code = ?rc, "AF told of its rules' state");
            }
        });
    }

    /// A CCR-U reported a new access network charging identifier: AFs that subscribed to
    /// CHARGING_CORRELATION_EXCHANGE get it (TS 29.214 §4.4.6.5).
    fn notify_charging_correlation(&self, gx_id: &str) {
        let gx_id = gx_id.to_string();
        self.spawn(move |me| async move {
            let Ok(Some(gx)) = me.sessions.get(gx_id.clone()).await else {
                return;
            };
            let Ok(bound) = me.rx_sessions.by_gx(gx_id).await else {
                return;
            };
            for s in bound.into_iter().filter(|s| {
                s.specific_actions
                    .contains(&rxw::action::CHARGING_CORRELATION_EXCHANGE)
            }) {
                let answer = me
                    .node
                    .request(rxw::rar(
                        me.node.identity(),
                        &s,
                        &[rxw::action::CHARGING_CORRELATION_EXCHANGE],
                        &[],
                        None,
                        rxw::charging_avps(&gx),
                    ))
                    .await;
                me.metrics.rx_notification(
                    "rar",
                    "charging_correlation",
                    answer.as_ref().ok().and_then(result_of),
                );
            }
        });
    }

    /// A CCR-U reported a RAT or IP-CAN change: AFs that subscribed to IP-CAN_CHANGE hear
    /// it with the new RAT-Type (TS 29.214 §4.4.6.4).
    fn notify_ip_can_change(&self, gx_id: &str, rat_type: Option<i32>) {
        let gx_id = gx_id.to_string();
        self.spawn(move |me| async move {
            let Ok(bound) = me.rx_sessions.by_gx(gx_id).await else {
                return;
            };
            for s in bound
                .into_iter()
                .filter(|s| s.specific_actions.contains(&rxw::action::IP_CAN_CHANGE))
            {
                let answer = me
                    .node
                    .request(rxw::rar(
                        me.node.identity(),
                        &s,
                        &[rxw::action::IP_CAN_CHANGE],
                        &[],
                        None,
                        rat_type
                            .map(|r| {
                                diameter_codec::dict::gx::RAT_TYPE
                                    .with(diameter_codec::dict::gx::RatType(r))
                            })
                            .into_iter()
                            .collect(),
                    ))
                    .await;
                me.metrics.rx_notification(
                    "rar",
                    "ip_can_change",
                    answer.as_ref().ok().and_then(result_of),
                );
            }
        });
    }
}

/// Gxx (TS 29.212 chapter 4a): the BBERF's sessions, linked to the Gx session of the same
/// IP-CAN session, given the QoS rules of its PCC rules.
impl Shared {
    async fn gxx_credit_control(&self, req: IncomingRequest) -> MessageBuilder {
        let r = match GxRequest::read(&req.msg) {
            Ok(r) => r,
            Err(e) => {
                let mut a = self.answer(&req, e.result_code);
                a.push(base::ERROR_MESSAGE.with(e.message));
                return a;
            }
        };
        let span = tracing::debug_span!(
            "gxx",
            session = %r.session_id,
            bberf = %r.origin_host,
            kind = r.request_type.as_str()
        );
        let (a, rc) = async {
            match r.request_type {
                RequestType::Initial => self.gxx_initial(&req, &r).await,
                RequestType::Update => self.gxx_update(&req, &r).await,
                RequestType::Termination => {
                    match self.gxx_sessions.remove(r.session_id.clone()).await {
                        Ok(Some(_)) => {
                            tracing::info!("Gxx session terminated");
                            (self.answer(&req, 2001), 2001)
                        }
                        Ok(None) => (self.answer(&req, 5002), 5002),
                        Err(e) => self.store_failed(&req, &e),
                    }
                }
                // As on Gx (TS 29.212 §5a.6.2 uses INITIAL, UPDATE, TERMINATION).
                RequestType::Event => {
                    let mut a = self.answer(&req, 5004);
                    a.push(base::ERROR_MESSAGE.with("EVENT_REQUEST is not used on Gxx"));
                    (a, 5004)
                }
            }
        }
        .instrument(span)
        .await;
        self.metrics.gxx_ccr(r.request_type.as_str(), rc);
        a
    }

    /// The Gx session a Gxx session belongs to (TS 29.212 §4a.5.1, TS 29.213 §4.2): the one
    /// of its UE address, else the subscriber's on the same APN.
    async fn gx_of(
        &self,
        ue_ip: Option<std::net::IpAddr>,
        subscriber: Option<&str>,
        apn: Option<&str>,
    ) -> Result<Option<GxSession>, StoreError> {
        if let Some(ip) = ue_ip
            && let Some(id) = self.sessions.by_ue_ip(ip).await?
        {
            return self.sessions.get(id).await;
        }
        let Some(sub) = subscriber else {
            return Ok(None);
        };
        for id in self.sessions.by_subscriber(sub.to_string()).await? {
            if let Some(g) = self.sessions.get(id).await?
                && (apn.is_none()
                    || g.apn.as_deref().map(str::to_ascii_lowercase)
                        == apn.map(str::to_ascii_lowercase))
            {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    /// Gxx CCR-I (TS 29.212 §4a.5.1): linked to its Gx session, the BBERF gets a QoS rule
    /// for each dynamic PCC rule of it; with no Gx session yet, linking is deferred and the
    /// QoS rules follow by Gxx RAR once the PCEF's CCR-I arrives. Both get the subscriber's
    /// Default-EPS-Bearer-QoS.
    async fn gxx_initial(&self, req: &IncomingRequest, r: &GxRequest) -> (MessageBuilder, u32) {
        let sub = if r.subscribers.is_empty() {
            None
        } else {
            match self.spr.subscriber(r.subscribers.clone()).await {
                Ok(Some(s)) => Some(s),
                Ok(None) => {
                    let mut a = self.experimental(req, gx::USER_UNKNOWN);
                    a.push(base::ERROR_MESSAGE.with("unknown subscriber"));
                    return (a, gx::USER_UNKNOWN);
                }
                Err(e) => return self.store_failed(req, &e),
            }
        };
        let key = sub
            .as_ref()
            .and_then(|s| s.profile.keys().first().map(SubscriberKey::as_key));
        let gx = match self.gx_of(r.ue_ip, key.as_deref(), r.apn.as_deref()).await {
            Ok(g) => g,
            Err(e) => return self.store_failed(req, &e),
        };
        if key.is_none() && gx.is_none() {
            // Nothing to link on: no identity the SPR knows and no IP-CAN session for the
            // address.
            let mut a = self.experimental(req, gx::USER_UNKNOWN);
            a.push(
                base::ERROR_MESSAGE
                    .with("no Subscription-Id and no IP-CAN session for the UE address to link to"),
            );
            return (a, gx::USER_UNKNOWN);
        }
        let qos = QosDecision {
            install: gx
                .as_ref()
                .map(|g| g.dynamic_rules.values().cloned().collect())
                .unwrap_or_default(),
            remove: Vec::new(),
        };
        let session = GxxSession {
            session_id: r.session_id.clone(),
            bberf_host: r.origin_host.clone(),
            bberf_realm: r.origin_realm.clone(),
            subscriber: key
                .clone()
                .or_else(|| gx.as_ref().map(|g| g.subscriber.clone())),
            ue_ip: r.ue_ip,
            apn: r.apn.clone(),
            gx_session: gx.as_ref().map(|g| g.session_id.clone()),
            qos_rules: qos.install.iter().map(|r| r.name.clone()).collect(),
            failures: Vec::new(),
            last_request_number: r.request_number,
            version: 0,
        };
        if let Err(e) = self.gxx_sessions.put(session).await {
            return self.store_failed(req, &e);
        }
        tracing::info!(
            gx = ?gx.as_ref().map(|g| &g.session_id),
            qos_rules = qos.install.len(),
            "Gxx session established"
        );
        let mut a = self.answer(req, 2001);
        for avp in qos.avps() {
            a.push(avp);
        }
        let bearer = sub
            .as_ref()
            .and_then(|s| s.profile.default_bearer)
            .unwrap_or(self.cfg.default_bearer);
        a.push(gx::default_eps_bearer_qos(bearer));
        (a, 2001)
    }

    /// Gxx CCR-U (TS 29.212 §4a.5.2): QoS-Rule-Reports recorded (an INACTIVE rule is no
    /// longer installed at the BBERF).
    async fn gxx_update(&self, req: &IncomingRequest, r: &GxRequest) -> (MessageBuilder, u32) {
        let reports = gxx::qos_rule_reports(&req.msg);
        let number = r.request_number;
        match self
            .amend_gxx(&r.session_id, |s| {
                s.last_request_number = s.last_request_number.max(number);
                apply_qos_reports(s, &reports);
            })
            .await
        {
            Ok(Some(_)) => (self.answer(req, 2001), 2001),
            Ok(None) => (self.answer(req, 5002), 5002),
            Err(e) => self.store_failed(req, &e),
        }
    }

    async fn amend_gxx(
        &self,
        session_id: &str,
        f: impl Fn(&mut GxxSession),
    ) -> Result<Option<GxxSession>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(mut s) = self.gxx_sessions.get(session_id.to_string()).await? else {
                return Ok(None);
            };
            f(&mut s);
            if self.gxx_sessions.replace(s.clone()).await? {
                return Ok(Some(s));
            }
        }
        Err(StoreError(format!(
            "Gxx session {session_id} changed under {ATTEMPTS} attempts"
        )))
    }

    /// Sends a Gxx RAR with `qos` to one Gxx session's BBERF and records what the RAA
    /// accepted.
    async fn gxx_push(&self, g: &GxxSession, qos: &QosDecision) {
        let answer = self
            .node
            .request(gxx::rar(
                self.node.identity(),
                &g.session_id,
                &g.bberf_host,
                &g.bberf_realm,
                qos,
            ))
            .await;
        let rc = answer.as_ref().ok().and_then(result_of);
        self.metrics.gxx_rar(rc);
        match (rc, answer) {
            (Some(2001), Ok(a)) => {
                let reports = gxx::qos_rule_reports(&a);
                let _ = self
                    .amend_gxx(&g.session_id, |s| {
                        for n in &qos.remove {
                            s.qos_rules.remove(n);
                        }
                        s.qos_rules
                            .extend(qos.install.iter().map(|r| r.name.clone()));
                        apply_qos_reports(s, &reports);
                    })
                    .await;
            }
            (Some(5002), _) => {
                let _ = self.gxx_sessions.remove(g.session_id.clone()).await;
            }
            (rc, _) => {
                tracing::warn!(gxx = %g.session_id, result_code = ?rc, "QoS rules not provisioned at the BBERF");
            }
        }
    }

    /// Rule changes of Gx session `gx_id` go to the BBERFs of its linked Gxx sessions as QoS
    /// rules (TS 29.212 §4a.5.2: PCRF-initiated Gxx RAR).
    fn mirror_to_gxx(&self, gx_id: &str, qos: QosDecision) {
        if qos.is_empty() {
            return;
        }
        let gx_id = gx_id.to_string();
        self.spawn(move |me| async move {
            let Ok(linked) = me.gxx_sessions.by_gx(gx_id).await else {
                return;
            };
            for g in linked {
                me.gxx_push(&g, &qos).await;
            }
        });
    }

    /// A new Gx session links the Gxx sessions waiting for it (deferred linking, TS 29.212
    /// §4a.5.1): same UE address, or same subscriber and APN; their BBERFs get its QoS
    /// rules.
    fn link_waiting_gxx(&self, gx: &GxSession) {
        let gx = gx.clone();
        self.spawn(move |me| async move {
            let Ok(waiting) = me.gxx_sessions.unlinked(gx.subscriber.clone()).await else {
                return;
            };
            for g in waiting {
                let same_ip = g.ue_ip.is_some() && g.ue_ip == gx.ue_ip;
                let same_apn = match (&g.apn, &gx.apn) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => true,
                };
                if !(same_ip || (g.ue_ip.is_none() && same_apn)) {
                    continue;
                }
                let id = gx.session_id.clone();
                let Ok(Some(linked)) = me
                    .amend_gxx(&g.session_id, |cur| cur.gx_session = Some(id.clone()))
                    .await
                else {
                    continue;
                };
                tracing::info!(gxx = %g.session_id, gx = %gx.session_id, "Gxx session linked");
                let qos = QosDecision {
                    install: gx.dynamic_rules.values().cloned().collect(),
                    remove: Vec::new(),
                };
                if !qos.is_empty() {
                    me.gxx_push(&linked, &qos).await;
                }
            }
        });
    }

    /// RFC 6733 §8.16: a BBERF whose Origin-State-Id changed lost its Gxx sessions.
    async fn bberf_restarted(&self, peer: &str) {
        if let Ok(gone) = self.gxx_sessions.remove_by_bberf(peer.to_string()).await
            && !gone.is_empty()
        {
            tracing::info!(%peer, sessions = gone.len(), "BBERF restarted: its Gxx sessions removed");
        }
    }
}

/// Records QoS-Rule-Reports (TS 29.212 §5a.3.5) in a Gxx session.
fn apply_qos_reports(s: &mut GxxSession, reports: &[gxx::QosRuleReport]) {
    for rep in reports.iter().filter(|r| r.status != Some(0)) {
        for n in &rep.names {
            if s.failures.len() == crate::session::MAX_FAILURES_KEPT {
                s.failures.remove(0);
            }
            s.failures.push(RuleFailure {
                name: n.clone(),
                status: rep.status,
                failure_code: rep.failure_code,
            });
            if rep.status == Some(1) {
                s.qos_rules.remove(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_reports_map_to_the_subscribed_actions() {
        let all = BTreeSet::from([2, 4, 8, 9]);
        assert_eq!(actions_for_report(Some(1), Some(10), &all), [9, 4]);
        assert_eq!(actions_for_report(Some(1), Some(4), &all), [4]);
        assert_eq!(actions_for_report(Some(2), None, &all), [2]);
        assert_eq!(actions_for_report(Some(0), None, &all), [8]);
        assert!(actions_for_report(Some(1), Some(10), &BTreeSet::from([1])).is_empty());
    }
}
