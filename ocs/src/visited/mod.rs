//! The visited OCS (document 001): a back-to-back Gy agent between the visited PCEF and the
//! home OCS. Towards the PCEF it is a Gy server; towards home a Gy client with its own
//! session (its own Session-Id from the node's generator, CC-Request-Numbers 0, 1, 2, …
//! with no gaps: every request it sends home is numbered in turn). It keeps the home
//! decision per rating group and answers the PCEF with the visited policy applied
//! ([`policy`]); it answers updates locally when home did not subscribe the trigger that
//! fired, or the finer location change stayed inside the coarser area home subscribed, and
//! the home grant it holds is not spent.
//!
//! - [`config`]: `[visited]`, the home operators and the policy per rating group.
//! - [`location`]: 3GPP-User-Location-Info and the precision order of location triggers.
//! - [`policy`]: the rewrites (credit cap, triggers, final-unit action).
//! - [`store`]: the [`store::VisitedStore`] trait, its durable default (a redb file, read
//!   back at start: a restarted visited OCS keeps its sessions) and an in-memory one.
//!
//! Usage: every unit the PCEF reports is added to the rating group's unreported usage and
//! sent home, in the Used-Service-Unit of the next request that goes home (at the latest the
//! CCR-T), so a home OCS that knows nothing of our AVPs charges it once. The part reported in
//! updates answered locally is named in Locally-Absorbed-Usage beside it.
//!
//! Durability: every session record is written to the store before the PCEF is answered —
//! except that an update sent home does not wait for two disk flushes in a row (home's, then
//! this node's). Its record goes to the disk while the request is on its way home, with that
//! request marked in doubt and tagged with the PCEF's CC-Request-Number
//! ([`store::InDoubt::pcef_number`]); the record written once home has answered does not wait
//! for the disk ([`store::VisitedStore::put_lazy`]; it reaches the disk within `[store]
//! checkpoint_interval`). After a crash that lost it, the PCEF's
//! retransmission of that update sends the same request home again (T bit, same number:
//! home answers from its duplicate detection) and its answer answers the PCEF; the PCEF's
//! next request settles it the same way before anything new goes home.
//!
//! Tcc (RFC 4006 §13, `[ocs] tcc`): a session whose PCEF has sent nothing for that long is
//! ended towards home with a CCR-T carrying the usage held, then forgotten.
//!
//! A re-auth request from home (RFC 4006 §5.5) is passed on to the PCEF with its own
//! Session-Id, and the session's next update goes home whatever fired.
//!
//! Home unreachable: the primary home OCS, then the secondary, each with Destination-Host
//! (a timed-out request is re-sent with the T bit and the same End-to-End Identifier, RFC
//! 6733 §5.5.4; the node fails over its in-flight requests itself). When neither answers,
//! nothing of the PCEF's request is kept and it gets 3002 DIAMETER_UNABLE_TO_DELIVER (RFC
//! 4006 §5.7: it applies its Credit-Control-Failure-Handling) — except with failure handling
//! CONTINUE, where an update the held home grant can serve is answered from it, never
//! beyond it.
//!
//! A request home that timed out on both addresses may still have been applied there. It is
//! kept as in doubt ([`store::InDoubt`]) with its number, and the next request that goes
//! home sends it again first (same CC-Request-Number, T bit), so home's duplicate detection
//! settles it; the usage it carried is then taken off what the PCEF has reported since
//! (a PCEF that got 3002 reports that usage again), and only then is anything new numbered.

pub mod config;
pub mod location;
pub mod policy;
pub mod store;

use crate::config::{Config, FailureHandling};
use crate::engine::rc;
use crate::gy;
use crate::model::{
    CcAnswer, CcRequest, MsccAnswer, MsccRequest, RequestType, ServiceKey, SubscriptionType, Units,
};
use crate::store::StoreError;
use config::VisitedSection;
use diameter_codec::dict::{base, dcca, gi, gy as gyd, roaming};
use diameter_codec::{CommandFlags, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::{IncomingRequest, Node, RequestError, handler_fn};
use location::{Location, is_location};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{HomeMscc, InDoubt, VisitedService, VisitedSession, VisitedStore};

/// Reporting-Reason RATING_CONDITION_CHANGE (TS 32.299 §7.2.175), sent with the Trigger that
/// fired.
const RATING_CONDITION_CHANGE: i32 = 6;

/// What the PCEF's CCR says beyond [`CcRequest`].
#[derive(Debug, Clone, Default)]
struct PcefExtras {
    /// Home-OCS-Identity: primary and secondary.
    home_hosts: Vec<String>,
    destination_realm: Option<String>,
    uli: Option<Vec<u8>>,
    rat: Option<Vec<u8>>,
    /// Per MSCC, in order: the Trigger-Type values that fired and the Reporting-Reason.
    fired: Vec<(Vec<i32>, Option<i32>)>,
    /// The T bit: the PCEF sent this request before (RFC 6733 §3).
    retransmitted: bool,
}

fn read_extras(msg: &Message) -> PcefExtras {
    let mut x = PcefExtras {
        destination_realm: msg
            .get(base::DESTINATION_REALM)
            .and_then(Result::ok)
            .map(str::to_string),
        retransmitted: msg.header().flags.is_retransmit(),
        ..PcefExtras::default()
    };
    // 3GPP-User-Location-Info and 3GPP-RAT-Type: in Service-Information/PS-Information (TS
    // 32.299 §7.2.158) or at command level.
    let mut look = |a: &diameter_codec::AvpRef<'_>| {
        if a.key() == gi::TGPP_USER_LOCATION_INFO.key() {
            x.uli = Some(a.data.to_vec());
        } else if a.key() == gi::TGPP_RAT_TYPE.key() {
            x.rat = Some(a.data.to_vec());
        }
    };
    for a in msg.avps().flatten() {
        look(&a);
        if a.key() == gyd::SERVICE_INFORMATION.key() {
            for p in a.children().flatten() {
                if p.key() == gyd::PS_INFORMATION.key() {
                    for c in p.children().flatten() {
                        look(&c);
                    }
                }
            }
        }
    }
    for a in msg.avps().flatten() {
        if a.key() == roaming::HOME_OCS_IDENTITY.key() {
            let mut primary = None;
            let mut secondary = None;
            for c in a.children().flatten() {
                let text = String::from_utf8_lossy(c.data).into_owned();
                if c.key() == roaming::HOME_OCS_PRIMARY.key() {
                    primary = Some(text);
                } else if c.key() == roaming::HOME_OCS_SECONDARY.key() {
                    secondary = Some(text);
                }
            }
            x.home_hosts = primary.into_iter().chain(secondary).collect();
        } else if a.key() == dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key() {
            let mut fired = Vec::new();
            let mut reason = None;
            for c in a.children().flatten() {
                if c.key() == gyd::TRIGGER.key() {
                    fired.extend(gy::trigger_types(&c));
                } else if c.key() == gyd::REPORTING_REASON.key() {
                    reason = c.data.try_into().ok().map(i32::from_be_bytes);
                } else if c.key() == dcca::USED_SERVICE_UNIT.key() {
                    for u in c.children().flatten() {
                        if u.key() == gyd::REPORTING_REASON.key() {
                            reason = reason.or(u.data.try_into().ok().map(i32::from_be_bytes));
                        }
                    }
                }
            }
            x.fired.push((fired, reason));
        }
    }
    x
}

fn units_nonzero(u: &Units) -> bool {
    policy::any_units(u)
}

fn home_mscc_avp(m: &HomeMscc) -> OwnedAvp {
    let mut c = Vec::new();
    if let Some(r) = &m.requested {
        c.push(gy::requested_avp(r));
    }
    if let Some(u) = &m.used {
        c.push(gy::used_avp(u));
    }
    if let Some(si) = m.service.service_id {
        c.push(dcca::SERVICE_IDENTIFIER.with(si));
    }
    if let Some(rg) = m.service.rating_group {
        c.push(dcca::RATING_GROUP.with(rg));
    }
    if let Some(r) = m.reason {
        c.push(gyd::REPORTING_REASON.with(gyd::ReportingReason(r)));
    }
    if !m.triggers.is_empty() {
        c.push(
            gyd::TRIGGER.with(
                m.triggers
                    .iter()
                    .map(|t| gyd::TRIGGER_TYPE.with(gyd::TriggerType(*t)))
                    .collect::<Vec<_>>(),
            ),
        );
    }
    if let Some((u, n)) = &m.absorbed {
        let mut l = Vec::new();
        if let Some(rg) = m.service.rating_group {
            l.push(dcca::RATING_GROUP.with(rg));
        }
        l.push(gy::used_avp(u));
        l.push(roaming::ABSORBED_REQUEST_COUNT.with(*n));
        c.push(roaming::LOCALLY_ABSORBED_USAGE.with(l));
    }
    if let Some(d) = &m.decision {
        let mut v = Vec::new();
        if let Some(rg) = m.service.rating_group {
            v.push(dcca::RATING_GROUP.with(rg));
        }
        if let Some(g) = &d.answer.granted {
            v.push(gy::granted_avp(g));
        }
        for t in d.answer.triggers.iter().flatten() {
            v.push(gyd::TRIGGER_TYPE.with(gyd::TriggerType(*t)));
        }
        if let Some(f) = &d.answer.final_unit {
            v.push(dcca::FINAL_UNIT_ACTION.with(dcca::FinalUnitAction(f.action)));
        }
        v.push(roaming::VISITED_DECISION_REASON.with(d.reason.clone()));
        c.push(roaming::VISITED_CREDIT_DECISION.with(v));
    }
    dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(c)
}

/// Why home gave no answer, and whether the request may have reached a home OCS (a
/// timeout, not a refused connection).
#[derive(Debug)]
struct HomeDown(String, bool);

/// A running visited OCS.
pub struct VisitedOcs {
    agent: Arc<Agent>,
    sweeper: tokio::task::JoinHandle<()>,
}

struct Agent {
    node: Node,
    cfg: VisitedSection,
    store: Arc<dyn VisitedStore>,
    /// Told to the PCEF in CCA-I (`[ocs] failure_handling`).
    pcef_failure_handling: Option<FailureHandling>,
    /// One lock per PCEF session: its requests are handled one at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A PCEF session's turn ([`Agent::turn`]); when it ends, the session leaves the lock table
/// unless another request waits for it.
struct SessionTurn {
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
    agent: Arc<Agent>,
    id: String,
}

impl Drop for SessionTurn {
    fn drop(&mut self) {
        let mut m = self.agent.locks.lock().unwrap_or_else(|p| p.into_inner());
        // The table's reference and this turn's: nobody waits. Checked under the table's
        // lock, so a request that arrives now either waits on this mutex or makes a new
        // one after the turn ends.
        if m.get(&self.id).is_some_and(|l| Arc::strong_count(l) <= 2) {
            m.remove(&self.id);
        }
        drop(m);
        self.held.take();
    }
}

impl VisitedOcs {
    /// Starts the node with its sessions in the `[store]` data file
    /// ([`store::DurableVisitedStore`]): a restart, a crash included, keeps them.
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
        let store = store::DurableVisitedStore::open(cfg)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.store.path.display()))?;
        Self::start_with_store(cfg, Arc::new(store)).await
    }

    /// As [`VisitedOcs::start`] on a store of the caller's.
    pub async fn start_with_store(
        cfg: &Config,
        store: Arc<dyn VisitedStore>,
    ) -> anyhow::Result<Self> {
        let vcfg = cfg
            .visited
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the visited role needs a [visited] table"))?;
        let mut nc = crate::server::node_config(cfg)?;
        if let Some(osi) = store.origin_state_id() {
            nc.local.origin_state_id = osi;
        }
        let node = Node::start(nc).await?;
        let agent = Arc::new(Agent {
            node,
            cfg: vcfg,
            store,
            pcef_failure_handling: cfg.ocs.failure_handling,
            locks: Mutex::new(HashMap::new()),
        });
        let a = agent.clone();
        agent.node.register(
            gy::APPLICATION_ID,
            handler_fn(move |req| {
                let a = a.clone();
                async move { a.credit_control(req).await }
            }),
        );
        // Tcc (RFC 4006 §13): a session whose PCEF went silent is ended towards home with
        // the usage held here, so it is charged and home's reservations are released.
        let weak = Arc::downgrade(&agent);
        let tcc_ms = (cfg.ocs.tcc * 1000.0) as u64;
        let every = Duration::try_from_secs_f64(cfg.ocs.sweep_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(a) = weak.upgrade() else { return };
                let before = crate::server::now_ms().saturating_sub(tcc_ms);
                match a.store.idle(before, 256).await {
                    Ok(ids) => {
                        for id in ids {
                            a.expire(id, tcc_ms).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "visited Tcc sweep"),
                }
            }
        });
        Ok(Self { agent, sweeper })
    }

    /// The Diameter node.
    pub fn node(&self) -> &Node {
        &self.agent.node
    }

    /// The Diameter listening addresses.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        self.agent.node.listen_addrs()
    }

    /// A PCEF session as its next request will see it: read in the session's turn, after
    /// the writes of the requests already answered (one may finish after its answer).
    pub async fn session(&self, pcef_session: &str) -> Result<Option<VisitedSession>, StoreError> {
        let _turn = self.agent.turn(pcef_session).await;
        self.agent.store.get(pcef_session.to_string()).await
    }

    /// The session store.
    pub fn store(&self) -> &Arc<dyn VisitedStore> {
        &self.agent.store
    }

    /// Disconnects the peers (DPR).
    pub async fn shutdown(self, timeout: Duration) {
        self.sweeper.abort();
        self.agent.node.shutdown(timeout).await;
        if let Err(e) = self.agent.store.close().await {
            tracing::warn!(error = %e, "closing the visited session store");
        }
    }
}

/// Whether a request home in doubt left the session open.
enum Settled {
    /// Open (or nothing was in doubt).
    Open,
    /// The request in doubt was the CCR-T: this is its answer.
    Ended(Box<CcAnswer>),
}

/// The answer and whether the session changed (and is written back).
struct Outcome {
    answer: Reply,
    session: Option<VisitedSession>,
    remove: bool,
    /// `session` may be written without waiting for the disk: a durable record written
    /// before lets the change be made again after a crash ([`store::InDoubt::pcef_number`]).
    lazy: bool,
}

enum Reply {
    /// A CCA (shared with the session's answers kept for retransmissions).
    Cca(Arc<CcAnswer>),
    /// A protocol error (E bit) with Error-Message.
    Error(ResultCode, String),
}

impl Agent {
    /// Waits for the session's turn: its requests (and the Tcc sweep) are handled one at a
    /// time, and the turn ends when the returned guard is dropped, possibly in a task that
    /// finishes writing the session after the answer went out.
    async fn turn(self: &Arc<Self>, id: &str) -> SessionTurn {
        let lock = {
            let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(id.to_string()).or_default().clone()
        };
        SessionTurn {
            held: Some(lock.lock_owned().await),
            agent: self.clone(),
            id: id.to_string(),
        }
    }

    /// Writes what handling a PCEF request changed, before the answer goes out — except a
    /// lazy record, which a durable record written before already covers: it is handed to
    /// the store in a task that keeps the session's turn until the store has it (the durable
    /// store numbers its journal entry and answers at once), so the PCEF is answered without
    /// waiting for it and the session's next request reads it. If that write fails the
    /// durable record stands, as after a crash, and the request home it holds in doubt is
    /// settled again.
    async fn write(
        self: &Arc<Self>,
        id: &str,
        o: &mut Outcome,
        turn: SessionTurn,
    ) -> Result<(), StoreError> {
        if o.remove {
            return self.store.remove(id.to_string()).await;
        }
        let Some(mut s) = o.session.take() else {
            return Ok(());
        };
        s.pcef_at = crate::server::now_ms();
        if !o.lazy {
            return self.store.put(s).await;
        }
        let store = self.store.clone();
        let written = async move {
            if let Err(e) = store.put_lazy(s).await {
                tracing::warn!(session = %turn.id, error = %e, "visited session not written after home's answer; its durable record stands");
            }
            drop(turn);
        };
        // The stores take a lazy write at once: done here, with no task spawned (a spawn
        // can wake an idle runtime thread to run it: a wake-up per update on a machine where
        // those are the dominant cost). One that waits goes on as a task of its own.
        diameter_node::task::run_here(Box::pin(written));
        Ok(())
    }

    /// A re-auth request from home (RFC 4006 §5.5: the home OCS wants the session
    /// re-authorised, e.g. after a top-up): the session's next update goes home, and the
    /// request is passed on to the PCEF with its Session-Id; home gets the PCEF's answer.
    async fn re_auth(self: &Arc<Self>, req: IncomingRequest) -> MessageBuilder {
        let Some(home_sid) = req.msg.session_id().map(str::to_string) else {
            return req.answer(ResultCode::DIAMETER_MISSING_AVP);
        };
        let pcef_sid = match self.store.by_home(home_sid).await {
            Ok(Some(id)) => id,
            Ok(None) => return req.answer(ResultCode(rc::UNKNOWN_SESSION_ID)),
            Err(e) => {
                tracing::error!(error = %e, "visited session store");
                return req.answer(ResultCode::DIAMETER_UNABLE_TO_COMPLY);
            }
        };
        let target = {
            let _turn = self.turn(&pcef_sid).await;
            match self.store.get(pcef_sid.clone()).await {
                Ok(Some(mut s)) => {
                    s.reauth = true;
                    let t = (s.pcef_host.clone(), s.pcef_realm.clone());
                    match self.store.put(s).await {
                        Ok(()) => Some(t),
                        Err(e) => {
                            tracing::error!(error = %e, "visited session not written");
                            None
                        }
                    }
                }
                _ => None,
            }
        };
        let Some((host, realm)) = target else {
            return req.answer(ResultCode(rc::UNKNOWN_SESSION_ID));
        };
        let rar = gy::rar(&pcef_sid, self.node.identity(), &host, &realm);
        let code = match self.node.request(rar).await {
            Ok(a) => a
                .get(base::RESULT_CODE)
                .and_then(Result::ok)
                .unwrap_or(rc::UNABLE_TO_COMPLY),
            Err(RequestError::Protocol { result_code, .. }) => result_code.0,
            Err(e) => {
                tracing::info!(session = %pcef_sid, error = %e, "RAR to the PCEF not answered");
                ResultCode::DIAMETER_UNABLE_TO_DELIVER.0
            }
        };
        let mut a = req.answer(ResultCode(code));
        if a.find(base::AUTH_APPLICATION_ID.key()).is_none() {
            a.push(base::AUTH_APPLICATION_ID.with(gy::APPLICATION_ID));
        }
        a
    }

    async fn credit_control(self: &Arc<Self>, req: IncomingRequest) -> MessageBuilder {
        if req.msg.header().command_code == base::CMD_RE_AUTH {
            return self.re_auth(req).await;
        }
        let ccr = match gy::parse_ccr(&req.msg) {
            Ok(c) => c,
            Err(e) => {
                let mut a = req.answer(e.result_code);
                a.push(base::ERROR_MESSAGE.with(e.message));
                return a;
            }
        };
        let extras = read_extras(&req.msg);
        let id = ccr.session_id.clone();
        let turn = self.turn(&id).await;
        let out = match self.handle(ccr, extras).await {
            Ok(mut o) => match self.write(&id, &mut o, turn).await {
                Ok(()) => Ok(o),
                // Answering success would let the PCEF forget usage this node did not
                // keep: it gets 5012 and sends the request again.
                Err(e) => {
                    tracing::error!(error = %e, "visited session not written");
                    Err(anyhow::anyhow!("session state not written: {e}"))
                }
            },
            Err(e) => Err(e),
        };
        let reply = match out {
            Ok(o) => o.answer,
            Err(e) => Reply::Error(ResultCode::DIAMETER_UNABLE_TO_COMPLY, e.to_string()),
        };
        match reply {
            Reply::Cca(a) => gy::encode_cca(req.answer(ResultCode(a.result_code)), &a),
            Reply::Error(code, msg) => {
                let mut a = req.answer(code);
                a.push(base::ERROR_MESSAGE.with(msg));
                a
            }
        }
    }

    async fn handle(&self, ccr: CcRequest, x: PcefExtras) -> anyhow::Result<Outcome> {
        let existing = self.store.get(ccr.session_id.clone()).await?;
        // A retransmission gets the answer it got (RFC 4006 §5.7, RFC 6733 §5.5.4).
        if let Some(a) = existing.as_ref().and_then(|s| s.answer(ccr.request_number)) {
            return Ok(Outcome {
                answer: Reply::Cca(a.clone()),
                session: None,
                remove: false,
                lazy: false,
            });
        }
        // Older than every answer kept: it may have been handled, so it is not applied
        // (again) — the home OCS's rule for an expired answer.
        if let Some(s) = &existing
            && s.answers.len() >= store::KEPT_ANSWERS
            && s.answers.iter().all(|(n, _)| ccr.request_number < *n)
        {
            return Ok(refuse(
                &ccr,
                rc::UNABLE_TO_COMPLY,
                "CC-Request-Number older than the answers kept",
            ));
        }
        match (ccr.request_type, existing) {
            (RequestType::Initial, None) => self.initial(ccr, x).await,
            (RequestType::Initial, Some(_)) => {
                Ok(refuse(&ccr, rc::UNABLE_TO_COMPLY, "session already open"))
            }
            (RequestType::Update, Some(s)) => self.update(s, ccr, x).await,
            (RequestType::Termination, Some(s)) => self.terminate(s, ccr, x).await,
            (RequestType::Update | RequestType::Termination, None) => {
                Ok(refuse(&ccr, rc::UNKNOWN_SESSION_ID, "unknown session"))
            }
            (RequestType::Event, _) => self.event(ccr, x).await,
        }
    }

    fn operator(&self, s: &VisitedSession) -> Option<&config::HomeOperator> {
        self.cfg
            .operators
            .iter()
            .find(|o| o.realm.eq_ignore_ascii_case(&s.operator))
    }

    fn service_policy(&self, s: &VisitedSession, svc: ServiceKey) -> &config::ServicePolicy {
        static NONE: std::sync::LazyLock<config::ServicePolicy> =
            std::sync::LazyLock::new(config::ServicePolicy::default);
        self.operator(s)
            .map_or(&*NONE, |o| o.policy(svc.rating_group))
    }

    /// The request sent home, to `host`.
    fn home_ccr(
        &self,
        s: &VisitedSession,
        host: &str,
        kind: RequestType,
        msccs: &[HomeMscc],
    ) -> MessageBuilder {
        let me = self.node.identity();
        let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, gy::APPLICATION_ID, true);
        b.push(base::SESSION_ID.with(s.home_session.clone()));
        b.push(base::ORIGIN_HOST.with(me.host.clone()));
        b.push(base::ORIGIN_REALM.with(me.realm.clone()));
        b.push(base::DESTINATION_REALM.with(s.home_realm.clone()));
        b.push(base::AUTH_APPLICATION_ID.with(gy::APPLICATION_ID));
        b.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind.code())));
        b.push(dcca::CC_REQUEST_NUMBER.with(s.home_number));
        b.push(base::DESTINATION_HOST.with(host.to_string()));
        for sub in &s.subscriptions {
            b.push(dcca::SUBSCRIPTION_ID.with(vec![
                dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(sub.kind.code())),
                dcca::SUBSCRIPTION_ID_DATA.with(sub.data.clone()),
            ]));
        }
        if !msccs.is_empty() {
            b.push(
                dcca::MULTIPLE_SERVICES_INDICATOR
                    .with(dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED),
            );
        }
        for m in msccs {
            b.push(home_mscc_avp(m));
        }
        // The current area (S413).
        let mut ps = Vec::new();
        if let Some(u) = &s.uli {
            ps.push(gi::TGPP_USER_LOCATION_INFO.with(bytes::Bytes::from(u.clone())));
        }
        if let Some(r) = &s.rat {
            ps.push(gi::TGPP_RAT_TYPE.with(bytes::Bytes::from(r.clone())));
        }
        if !ps.is_empty() {
            b.push(gyd::SERVICE_INFORMATION.with(vec![gyd::PS_INFORMATION.with(ps)]));
        }
        b
    }

    /// Sends a request home: the primary, then the secondary (open peers first).
    async fn send_home(
        &self,
        s: &VisitedSession,
        kind: RequestType,
        msccs: &[HomeMscc],
        retransmit: bool,
    ) -> Result<CcAnswer, HomeDown> {
        let mut hosts = s.home_hosts.clone();
        // Stable: primary before secondary among the open ones.
        hosts.sort_by_key(|h| !self.node.is_peer_available(h));
        let e2e = self.node.next_end_to_end();
        let mut maybe_received = retransmit;
        let mut why = String::from("no home OCS configured");
        for host in &hosts {
            let mut b = self.home_ccr(s, host, kind, msccs);
            b.end_to_end = e2e;
            // RFC 6733 §5.5.4: a request that may have arrived is re-sent with the T bit.
            b.flags = b.flags.with(CommandFlags::RETRANSMIT, maybe_received);
            match self
                .node
                .request_with_timeout(b, self.cfg.home_timeout())
                .await
            {
                Ok(m) if m.header().flags.is_error() => {
                    let code = m.get(base::RESULT_CODE).and_then(Result::ok).unwrap_or(0);
                    if matches!(code, 3002 | 3004) {
                        why = format!("{host}: {code}");
                        tracing::info!(%host, code, "home OCS not reached, next one");
                        continue;
                    }
                    return Ok(gy::parse_cca(&m));
                }
                Ok(m) => {
                    crate::metrics::record_home_request(host);
                    if s.home_hosts.first() != Some(host) {
                        // S307: the secondary answered in place of the primary.
                        crate::metrics::record_home_failover(host);
                    }
                    return Ok(gy::parse_cca(&m));
                }
                Err(RequestError::Timeout(d)) => {
                    maybe_received = true;
                    why = format!("{host}: no answer within {d:?}");
                }
                Err(e) => why = format!("{host}: {e}"),
            }
            tracing::info!(%host, reason = %why, "home OCS not reached, next one");
        }
        Err(HomeDown(why, maybe_received))
    }

    /// The leg towards home of a PCEF request that opens one (CCR-I) or stands alone
    /// (EVENT): the home operator by Destination-Realm or IMSI prefix, its OCSs
    /// (Home-OCS-Identity first, S307), and the request's MSCCs as they go home. `Err`: the
    /// PCEF's answer when no home operator or OCS is known.
    fn home_leg(
        &self,
        ccr: &CcRequest,
        x: &PcefExtras,
        home_session: String,
        home_number: u32,
    ) -> Result<(VisitedSession, Vec<HomeMscc>), Box<Outcome>> {
        let imsi = ccr
            .subscriptions
            .iter()
            .find(|s| s.kind == SubscriptionType::Imsi)
            .map(|s| s.data.as_str());
        let Some(op) = self.cfg.operator(x.destination_realm.as_deref(), imsi) else {
            return Err(Box::new(refuse(
                ccr,
                rc::USER_UNKNOWN,
                "no home operator configured for this subscriber",
            )));
        };
        let hosts: Vec<String> = if x.home_hosts.is_empty() {
            op.primary.iter().chain(&op.secondary).cloned().collect()
        } else {
            x.home_hosts.clone()
        };
        if hosts.is_empty() {
            return Err(Box::new(refuse(
                ccr,
                rc::USER_UNKNOWN,
                "no home OCS identity",
            )));
        }
        let location = x.uli.as_deref().and_then(Location::from_uli);
        let leg = VisitedSession {
            pcef_session: ccr.session_id.clone(),
            home_session,
            home_number,
            home_realm: op.realm.clone(),
            home_hosts: hosts,
            operator: op.realm.clone(),
            subscriptions: ccr.subscriptions.clone(),
            location: location.clone(),
            home_location: location,
            uli: x.uli.clone(),
            rat: x.rat.clone(),
            services: Vec::new(),
            answers: Vec::new(),
            failure_handling: self
                .cfg
                .failure_handling
                .unwrap_or(FailureHandling::Terminate),
            pcef_host: ccr.origin_host.clone(),
            pcef_realm: ccr.origin_realm.clone(),
            reauth: false,
            home_at: 0,
            in_doubt: None,
            pcef_at: 0,
        };
        let msccs = ccr
            .mscc
            .iter()
            .map(|m| HomeMscc {
                service: m.service,
                requested: m.requested,
                used: m.used,
                ..HomeMscc::default()
            })
            .collect();
        Ok((leg, msccs))
    }

    async fn initial(&self, ccr: CcRequest, x: PcefExtras) -> anyhow::Result<Outcome> {
        if ccr.mscc.is_empty() {
            // Document 001 S310: one MSCC per Charging-Key; the visited policy is per rating
            // group, so single-service credit control (RFC 4006 §5.2) has nothing to apply to.
            return Ok(refuse(
                &ccr,
                rc::UNABLE_TO_COMPLY,
                "the visited OCS needs Multiple-Services-Credit-Control",
            ));
        }
        let home_session = self.node.session_ids().next_id();
        let (mut s, msccs) = match self.home_leg(&ccr, &x, home_session, 0) {
            Ok(leg) => leg,
            Err(refused) => return Ok(*refused),
        };
        let home = match self
            .send_home(&s, RequestType::Initial, &msccs, false)
            .await
        {
            Ok(h) => h,
            Err(HomeDown(why, _)) => {
                // Nothing is kept: a session home may have opened holds its reservation
                // until home's Tcc ends it, and no usage has been reported on it.
                tracing::warn!(session = %ccr.session_id, %why, "no home OCS answered a CCR-I");
                return Ok(unreachable(why));
            }
        };
        s.home_number += 1;
        s.home_at = crate::server::now_ms();
        if home.result_code != rc::SUCCESS {
            // S315: the home refusal reaches the PCEF as it is.
            return Ok(Outcome {
                answer: Reply::Cca(Arc::new(pass_through(&ccr, home))),
                session: None,
                remove: false,
                lazy: false,
            });
        }
        if self.cfg.failure_handling.is_none()
            && let Some(f) = home.failure_handling
        {
            s.failure_handling = match f {
                1 => FailureHandling::Continue,
                2 => FailureHandling::RetryAndTerminate,
                _ => FailureHandling::Terminate,
            };
        }
        let mut answer = CcAnswer::bare(&ccr, rc::SUCCESS);
        answer.failure_handling = self
            .pcef_failure_handling
            .map(FailureHandling::code)
            .or(home.failure_handling);
        for hm in home.mscc {
            s.services.push(VisitedService {
                service: hm.service,
                home: hm,
                unreported: Units::default(),
                absorbed: Units::default(),
                absorbed_count: 0,
                to_report: None,
            });
        }
        // Answered in the order of the request.
        for m in &ccr.mscc {
            answer.mscc.push(self.rewrite(&mut s, m));
        }
        let answer = Arc::new(answer);
        s.keep_answer(ccr.request_number, answer.clone());
        Ok(Outcome {
            answer: Reply::Cca(answer),
            session: Some(s),
            remove: false,
            lazy: false,
        })
    }

    /// A one-time event (RFC 4006 §6.3, DIRECT_DEBITING): relayed home as an event of this
    /// node's own and home's answer passed to the PCEF as it is — a debit done at once
    /// leaves no grant for the visited policy to cap and no session to keep. The Session-Id
    /// towards home is derived from the PCEF's, so a retransmitted event (T bit) goes home as
    /// the same event, T bit set, and home's duplicate detection (RFC 4006 §5.7) answers it
    /// without a second debit; this node keeps nothing.
    async fn event(&self, ccr: CcRequest, x: PcefExtras) -> anyhow::Result<Outcome> {
        if ccr.requested_action.is_some_and(|a| a != 0) {
            // RFC 4006 §8.41: PRICE_ENQUIRY, CHECK_BALANCE and REFUND_ACCOUNT are not
            // relayed (home answers only DIRECT_DEBITING either).
            return Ok(refuse(
                &ccr,
                rc::UNABLE_TO_COMPLY,
                "only DIRECT_DEBITING events are relayed",
            ));
        }
        let home_session = format!("{};event;{}", self.node.identity().host, ccr.session_id);
        let (leg, msccs) = match self.home_leg(&ccr, &x, home_session, ccr.request_number) {
            Ok(leg) => leg,
            Err(refused) => return Ok(*refused),
        };
        match self
            .send_home(&leg, RequestType::Event, &msccs, x.retransmitted)
            .await
        {
            Ok(home) => Ok(Outcome {
                answer: Reply::Cca(Arc::new(pass_through(&ccr, home))),
                session: None,
                remove: false,
                lazy: false,
            }),
            Err(HomeDown(why, _)) => Ok(unreachable(why)),
        }
    }

    /// The PCEF's MSCC answered from the home decision held, with the visited policy applied
    /// to what remains of the home grant.
    fn rewrite(&self, s: &mut VisitedSession, m: &MsccRequest) -> MsccAnswer {
        let policy = self.service_policy(s, m.service);
        let report = self.cfg.report_decision;
        let Some(v) = s.service_mut(m.service) else {
            return MsccAnswer {
                service: m.service,
                result_code: rc::RATING_FAILED,
                ..MsccAnswer::default()
            };
        };
        if v.home.result_code != rc::SUCCESS {
            // A per-service refusal goes to the PCEF as it is.
            return v.home.clone();
        }
        if m.requested.is_none() {
            // Usage only (RFC 4006 §5.2): no grant.
            return MsccAnswer {
                service: m.service,
                result_code: rc::SUCCESS,
                ..MsccAnswer::default()
            };
        }
        let available = policy::remaining(&v.home.granted.unwrap_or_default(), &v.unreported);
        let mut d = policy::apply(
            &v.home,
            &available,
            policy,
            &self.cfg.default_triggers,
            report,
        );
        d.answer.service = m.service;
        if report {
            v.to_report = Some(d.clone());
        }
        d.answer
    }

    /// Whether the PCEF's MSCC `m` (with the triggers that fired) needs home: a trigger home
    /// subscribed fired (for a location type: the area at home's precision changed since
    /// home was last told), the held home grant is spent, or home has no decision for it.
    fn needs_home(&self, s: &VisitedSession, m: &MsccRequest, fired: &[i32]) -> bool {
        let stale = crate::server::now_ms().saturating_sub(s.home_at) >= self.cfg.home_refresh_ms();
        if s.reauth || stale {
            return true;
        }
        let Some(v) = s.services.iter().find(|v| v.service == m.service) else {
            return true;
        };
        let home_types =
            policy::home_triggers(v.home.triggers.as_deref(), &self.cfg.default_triggers);
        let here = s.location.clone().unwrap_or_default();
        let there = s.home_location.clone().unwrap_or_default();
        for &t in fired {
            if is_location(t) {
                let behind = policy::home_location_types(home_types, t);
                if behind.iter().any(|&h| !there.same_area(&here, h)) {
                    return true;
                }
            } else if home_types.contains(&t) {
                return true;
            }
        }
        if m.requested.is_some() {
            if v.home.result_code != rc::SUCCESS {
                return true;
            }
            let left = policy::remaining(&v.home.granted.unwrap_or_default(), &v.unreported);
            if !policy::any_units(&left) {
                return true;
            }
        }
        false
    }

    /// The home types a fired visited trigger reports as (S413: the home's coarser area).
    fn home_types_fired(&self, v: &VisitedService, fired: &[i32]) -> Vec<i32> {
        let home_types =
            policy::home_triggers(v.home.triggers.as_deref(), &self.cfg.default_triggers);
        let mut out = Vec::new();
        for &t in fired {
            let mapped = if is_location(t) {
                policy::home_location_types(home_types, t)
            } else if home_types.contains(&t) {
                vec![t]
            } else {
                Vec::new()
            };
            for h in mapped {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
        out
    }

    /// What a request going home carries for a rating group: the unreported usage, the
    /// absorbed part, the decision to report.
    fn home_mscc(&self, v: &VisitedService, requested: Option<Units>) -> HomeMscc {
        HomeMscc {
            service: v.service,
            requested,
            used: units_nonzero(&v.unreported).then_some(v.unreported),
            absorbed: (v.absorbed_count > 0).then_some((v.absorbed, v.absorbed_count)),
            decision: v.to_report.clone(),
            ..HomeMscc::default()
        }
    }

    async fn update(
        &self,
        mut s: VisitedSession,
        ccr: CcRequest,
        x: PcefExtras,
    ) -> anyhow::Result<Outcome> {
        if let Some(d) = s
            .in_doubt
            .clone()
            .filter(|d| d.pcef_number == Some(ccr.request_number))
        {
            return Ok(self.resume(s, ccr, d).await);
        }
        if let Some(new) = x.uli.as_deref().and_then(Location::from_uli) {
            s.location = Some(match &s.location {
                Some(old) => old.updated_by(&new),
                None => new,
            });
            s.uli = x.uli.clone();
        }
        if x.rat.is_some() {
            s.rat = x.rat.clone();
        }
        let fired = |i: usize| x.fired.get(i).map(|f| f.0.as_slice()).unwrap_or(&[]);
        // The reported usage joins what is to go home (RFC 4006 §5.2: the USU of an MSCC
        // closes the grant the PCEF held), before the held home grant is looked at.
        for m in &ccr.mscc {
            if let (Some(u), Some(v)) = (&m.used, s.service_mut(m.service)) {
                v.unreported.add(u);
            }
        }
        let home = ccr
            .mscc
            .iter()
            .enumerate()
            .any(|(i, m)| self.needs_home(&s, m, fired(i)));
        if !home {
            return Ok(self.absorb(s, &ccr));
        }
        // A request home still in doubt goes first.
        match self.settle(&mut s).await {
            Ok(Settled::Open) => {}
            Ok(Settled::Ended(_)) => {
                // The PCEF's own CCR-T ended the session at home.
                return Ok(Outcome {
                    remove: true,
                    ..refuse(&ccr, rc::UNKNOWN_SESSION_ID, "session terminated")
                });
            }
            Err(HomeDown(why, _)) => return Ok(self.home_down(s, &ccr, why, None)),
        }
        // S413: the rating groups concerned, and every one with usage or a decision home
        // has not heard of yet.
        let mut msccs = Vec::new();
        for (i, m) in ccr.mscc.iter().enumerate() {
            let mut hm = match s.services.iter().find(|v| v.service == m.service) {
                Some(v) => self.home_mscc(v, m.requested),
                None => HomeMscc {
                    service: m.service,
                    requested: m.requested,
                    used: m.used,
                    ..HomeMscc::default()
                },
            };
            if let Some(v) = s.services.iter().find(|v| v.service == m.service) {
                hm.triggers = self.home_types_fired(v, fired(i));
            }
            hm.reason = if hm.triggers.is_empty() {
                // THRESHOLD, QUOTA_EXHAUSTED, OTHER_QUOTA_TYPE and POOL_EXHAUSTED belong in
                // the USU (TS 32.299 §7.2.175), which is the sum of several reports here:
                // they are not repeated.
                x.fired
                    .get(i)
                    .and_then(|f| f.1)
                    .filter(|r| !matches!(r, 0 | 3 | 5 | 8))
            } else {
                Some(RATING_CONDITION_CHANGE)
            };
            msccs.push(hm);
        }
        for v in &s.services {
            let pending =
                units_nonzero(&v.unreported) || v.absorbed_count > 0 || v.to_report.is_some();
            if pending && !ccr.mscc.iter().any(|m| m.service == v.service) {
                // Re-authorised with the rest, so the credit the PCEF still holds stays
                // covered by a home reservation.
                msccs.push(self.home_mscc(v, Some(Units::default())));
            }
        }
        // The record of this request and the request home go out together, so the PCEF
        // waits for one disk flush (this one, or home's), not two in a row: the record holds
        // this request's usage and the request home as in doubt, tagged with the PCEF's
        // number, so a crash at any later point loses nothing (the PCEF's retransmission
        // sends that request home again, its next request settles it), and the record
        // written once home has answered need not wait for the disk.
        let mut pending = s.clone();
        pending.in_doubt = Some(InDoubt {
            kind: RequestType::Update,
            msccs: msccs.clone(),
            pcef_number: Some(ccr.request_number),
        });
        pending.pcef_at = crate::server::now_ms();
        let (sent, recorded) = alongside(
            self.send_home(&s, RequestType::Update, &msccs, false),
            self.store.put(pending),
        )
        .await;
        let answer = match sent {
            Ok(a) => a,
            Err(HomeDown(why, maybe_received)) => {
                let doubt = maybe_received.then(|| InDoubt {
                    kind: RequestType::Update,
                    msccs: msccs.clone(),
                    pcef_number: None,
                });
                // The session as it stands if home never got this request: the request
                // home in doubt settled above stays settled, this request's usage is left
                // out (the PCEF, answered 3002, reports it again).
                let unsent = without_usage(&s, &ccr);
                let doubt = doubt.map(|d| (d, unsent.clone()));
                let mut out = self.home_down(s, &ccr, why, doubt);
                // The pending record is replaced whatever the outcome.
                out.session.get_or_insert(unsent);
                return Ok(out);
            }
        };
        if let Err(e) = &recorded {
            // The record written after home's answer is then the durable one.
            tracing::warn!(session = %ccr.session_id, error = %e, "pending record not written");
        }
        Ok(self.home_answered(s, &ccr, &msccs, answer, recorded.is_ok()))
    }

    /// Home answered the request `msccs` sent for the PCEF's update `ccr`: the answer to
    /// the PCEF, the visited policy applied (a refusal passed on as home sent it, S415/S316).
    fn home_answered(
        &self,
        mut s: VisitedSession,
        ccr: &CcRequest,
        msccs: &[HomeMscc],
        answer: CcAnswer,
        lazy: bool,
    ) -> Outcome {
        self.applied(&mut s, msccs, &answer);
        let a = if answer.result_code != rc::SUCCESS {
            pass_through(ccr, answer)
        } else {
            let mut a = CcAnswer::bare(ccr, rc::SUCCESS);
            for m in &ccr.mscc {
                a.mscc.push(self.rewrite(&mut s, m));
            }
            a
        };
        let a = Arc::new(a);
        s.keep_answer(ccr.request_number, a.clone());
        Outcome {
            answer: Reply::Cca(a),
            session: Some(s),
            remove: false,
            lazy,
        }
    }

    /// The PCEF sent again the update whose request home was recorded before home answered
    /// (this node restarted in between): that request goes home again, numbered as it was
    /// and with the T bit (home's duplicate detection answers it without applying it twice),
    /// and home's answer answers the PCEF. Its usage is in the record already.
    async fn resume(&self, mut s: VisitedSession, ccr: CcRequest, d: InDoubt) -> Outcome {
        tracing::info!(session = %s.pcef_session, number = s.home_number, "request home recorded before a restart sent again");
        match self.send_home(&s, d.kind, &d.msccs, true).await {
            Ok(answer) => {
                s.in_doubt = None;
                self.home_answered(s, &ccr, &d.msccs, answer, false)
            }
            Err(HomeDown(why, _)) => {
                // The PCEF gets 3002 and may report this usage again: the record takes the
                // form of any request home left in doubt.
                let mut b = without_usage(&s, &ccr);
                b.in_doubt = Some(InDoubt {
                    pcef_number: None,
                    ..d
                });
                let mut out = unreachable(why);
                out.session = Some(b);
                out
            }
        }
    }

    /// S411–S412: answered from the home grant held; the usage stays for the next request
    /// that goes home.
    fn absorb(&self, mut s: VisitedSession, ccr: &CcRequest) -> Outcome {
        for m in &ccr.mscc {
            if let (Some(u), Some(v)) = (&m.used, s.service_mut(m.service)) {
                v.absorbed.add(u);
                v.absorbed_count += 1;
            }
        }
        let mut a = CcAnswer::bare(ccr, rc::SUCCESS);
        for m in &ccr.mscc {
            a.mscc.push(self.rewrite(&mut s, m));
        }
        crate::metrics::record_local_reauth();
        let a = Arc::new(a);
        s.keep_answer(ccr.request_number, a.clone());
        Outcome {
            answer: Reply::Cca(a),
            session: Some(s),
            remove: false,
            lazy: false,
        }
    }

    /// Neither home OCS answered an update. CONTINUE: what the held home grant can serve is
    /// served from it; otherwise, and with TERMINATE or RETRY_AND_TERMINATE, nothing of the
    /// request is kept and the PCEF gets 3002 (its retransmission is tried home again).
    ///
    /// `doubt`: the request home that may have arrived, and the session to keep it in.
    fn home_down(
        &self,
        mut s: VisitedSession,
        ccr: &CcRequest,
        why: String,
        doubt: Option<(InDoubt, VisitedSession)>,
    ) -> Outcome {
        tracing::warn!(session = %ccr.session_id, %why, failure_handling = ?s.failure_handling, "no home OCS answered");
        if s.failure_handling == FailureHandling::Continue {
            let servable = ccr.mscc.iter().all(|m| {
                m.requested.is_none()
                    || s.services.iter().any(|v| {
                        v.service == m.service
                            && v.home.result_code == rc::SUCCESS
                            && policy::any_units(&policy::remaining(
                                &v.home.granted.unwrap_or_default(),
                                &v.unreported,
                            ))
                    })
            });
            if servable {
                if let Some((d, _)) = doubt {
                    s.in_doubt = Some(d);
                }
                return self.absorb(s, ccr);
            }
        }
        let mut out = unreachable(why);
        if let Some((d, mut kept)) = doubt {
            // The PCEF's request is not kept (it gets 3002 and reports that usage again),
            // but the request home that may have arrived is, to be settled first.
            kept.in_doubt = Some(d);
            out.session = Some(kept);
        }
        out
    }

    /// Sends the request home still in doubt again (same CC-Request-Number, T bit) and
    /// applies its answer; nothing new is numbered before it is settled.
    async fn settle(&self, s: &mut VisitedSession) -> Result<Settled, HomeDown> {
        let Some(d) = s.in_doubt.clone() else {
            return Ok(Settled::Open);
        };
        let answer = self.send_home(s, d.kind, &d.msccs, true).await?;
        tracing::info!(session = %s.pcef_session, number = s.home_number, "request in doubt settled by home");
        s.in_doubt = None;
        if d.kind == RequestType::Termination {
            return Ok(Settled::Ended(Box::new(answer)));
        }
        self.applied(s, &d.msccs, &answer);
        Ok(Settled::Open)
    }

    /// Home answered the request `msccs`: the number is used, the usage sent is home's, and
    /// each MSCC sent closed home's earlier reservation of its service (RFC 4006 §5.2): what
    /// home answered replaces the decision held — a refusal too, so nothing is granted from
    /// a reservation home has released.
    fn applied(&self, s: &mut VisitedSession, msccs: &[HomeMscc], answer: &CcAnswer) {
        s.home_number += 1;
        s.home_at = crate::server::now_ms();
        s.home_location = s.location.clone();
        s.reauth = false;
        for hm in msccs {
            let new = answer
                .mscc
                .iter()
                .find(|a| a.service == hm.service)
                .cloned()
                .unwrap_or_else(|| MsccAnswer {
                    service: hm.service,
                    result_code: answer.result_code,
                    ..MsccAnswer::default()
                });
            match s.service_mut(hm.service) {
                Some(v) => {
                    if let Some(u) = &hm.used {
                        v.unreported = policy::remaining(&v.unreported, u);
                    }
                    if let Some((u, n)) = &hm.absorbed {
                        v.absorbed = policy::remaining(&v.absorbed, u);
                        v.absorbed_count = v.absorbed_count.saturating_sub(*n);
                    }
                    if v.absorbed_count == 0 {
                        v.absorbed = Units::default();
                    }
                    if v.to_report == hm.decision {
                        v.to_report = None;
                    }
                    v.home = new;
                }
                None => s.services.push(VisitedService {
                    service: hm.service,
                    home: new,
                    unreported: Units::default(),
                    absorbed: Units::default(),
                    absorbed_count: 0,
                    to_report: None,
                }),
            }
        }
    }

    /// The MSCCs of a CCR-T home: every rating group with usage, absorbed updates or a
    /// decision home has not heard of yet.
    fn final_msccs(&self, s: &VisitedSession) -> Vec<HomeMscc> {
        s.services
            .iter()
            .filter(|v| {
                units_nonzero(&v.unreported) || v.absorbed_count > 0 || v.to_report.is_some()
            })
            .map(|v| HomeMscc {
                reason: Some(2), // FINAL (TS 32.299 §7.2.175)
                ..self.home_mscc(v, None)
            })
            .collect()
    }

    /// Ends a session whose PCEF has been silent for Tcc: CCR-T home with what is held.
    /// Kept (and tried again at the next sweep) while home cannot be reached.
    async fn expire(self: &Arc<Self>, id: String, tcc_ms: u64) {
        let _turn = self.turn(&id).await;
        if let Ok(Some(s)) = self.store.get(id.clone()).await {
            self.expire_locked(s, tcc_ms).await;
        }
    }

    async fn expire_locked(&self, mut s: VisitedSession, tcc_ms: u64) {
        let id = s.pcef_session.clone();
        if crate::server::now_ms().saturating_sub(s.pcef_at) < tcc_ms {
            return; // the PCEF spoke meanwhile
        }
        let done = match self.settle(&mut s).await {
            Ok(Settled::Ended(_)) => true,
            Ok(Settled::Open) => {
                let msccs = self.final_msccs(&s);
                match self
                    .send_home(&s, RequestType::Termination, &msccs, false)
                    .await
                {
                    Ok(_) => true,
                    Err(HomeDown(why, maybe_received)) => {
                        tracing::info!(session = %id, %why, "Tcc: home not reached, kept");
                        if maybe_received {
                            s.in_doubt = Some(InDoubt {
                                kind: RequestType::Termination,
                                msccs,
                                pcef_number: None,
                            });
                        }
                        false
                    }
                }
            }
            Err(HomeDown(why, _)) => {
                tracing::info!(session = %id, %why, "Tcc: home not reached, kept");
                false
            }
        };
        let w = if done {
            tracing::info!(session = %id, "Tcc: PCEF silent, session ended towards home");
            crate::metrics::record_tcc_expired(1);
            self.store.remove(id).await
        } else {
            self.store.put(s).await
        };
        if let Err(e) = w {
            tracing::error!(error = %e, "visited session not written");
        }
    }

    async fn terminate(
        &self,
        mut s: VisitedSession,
        ccr: CcRequest,
        _x: PcefExtras,
    ) -> anyhow::Result<Outcome> {
        let before = s.clone();
        let ended = |ccr: &CcRequest, answer: CcAnswer| {
            let mut a = CcAnswer::bare(ccr, answer.result_code);
            a.error_message = answer.error_message;
            Outcome {
                answer: Reply::Cca(Arc::new(a)),
                session: None,
                remove: true,
                lazy: false,
            }
        };
        // The usage first: a PCEF that got no answer to an earlier request reports its
        // usage again, and what the request in doubt carried home is taken off it.
        for m in &ccr.mscc {
            if let (Some(u), Some(v)) = (&m.used, s.service_mut(m.service)) {
                v.unreported.add(u);
            }
        }
        match self.settle(&mut s).await {
            Ok(Settled::Open) => {}
            // This CCR-T's first copy reached home: its usage is there.
            Ok(Settled::Ended(answer)) => return Ok(ended(&ccr, *answer)),
            Err(HomeDown(why, _)) => {
                tracing::warn!(session = %ccr.session_id, %why, "no home OCS answered a CCR-T");
                return Ok(unreachable(why));
            }
        }
        let msccs = self.final_msccs(&s);
        match self
            .send_home(&s, RequestType::Termination, &msccs, false)
            .await
        {
            Ok(answer) => Ok(ended(&ccr, answer)),
            Err(HomeDown(why, maybe_received)) => {
                // The PCEF's retransmission is tried home again: the same CCR-T when it
                // may have arrived, else built anew.
                tracing::warn!(session = %ccr.session_id, %why, "no home OCS answered a CCR-T");
                let mut out = unreachable(why);
                if maybe_received {
                    let mut b = before;
                    b.in_doubt = Some(InDoubt {
                        kind: RequestType::Termination,
                        msccs,
                        pcef_number: None,
                    });
                    out.session = Some(b);
                }
                Ok(out)
            }
        }
    }
}

/// Waits for `home` (a request home) while `record` (the durable record of that request)
/// is written: `home` is polled first, so the request leaves before the record's work
/// begins; `record` is polled once to start it and then not again until home has answered,
/// so a disk faster than home wakes nobody in between (a wake-up costs more than the
/// poll on a machine with few CPUs). A store whose write needs polling to go on finishes
/// it after home's answer.
async fn alongside<A, B>(
    home: impl Future<Output = A>,
    mut record: crate::store::StoreFuture<'_, B>,
) -> (A, Result<B, StoreError>) {
    let mut home = std::pin::pin!(home);
    let mut early = None;
    let mut started = false;
    let a = std::future::poll_fn(|cx| {
        let a = home.as_mut().poll(cx);
        if !started {
            started = true;
            let mut noop = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(b) = record.as_mut().poll(&mut noop) {
                early = Some(b);
            }
        }
        a
    })
    .await;
    let b = match early {
        Some(b) => b,
        None => record.await,
    };
    (a, b)
}

/// A refusal answered by the visited OCS itself.
fn refuse(ccr: &CcRequest, code: u32, why: &str) -> Outcome {
    let mut a = CcAnswer::bare(ccr, code);
    a.error_message = Some(why.to_string());
    Outcome {
        answer: Reply::Cca(Arc::new(a)),
        session: None,
        remove: false,
        lazy: false,
    }
}

/// Neither home OCS answered.
fn unreachable(why: String) -> Outcome {
    crate::metrics::record_home_unreachable();
    Outcome {
        answer: Reply::Error(
            ResultCode::DIAMETER_UNABLE_TO_DELIVER,
            format!("home OCS unreachable ({why})"),
        ),
        session: None,
        remove: false,
        lazy: false,
    }
}

/// The home answer as the PCEF gets it: Result-Code, MSCCs, Error-Message unchanged; the
/// PCEF's request type and number.
fn pass_through(ccr: &CcRequest, home: CcAnswer) -> CcAnswer {
    CcAnswer {
        request_type: ccr.request_type,
        request_number: ccr.request_number,
        failure_handling: None,
        ..home
    }
}

/// The session without the usage `ccr` reported (added to it before): as it stands when
/// the PCEF, answered 3002, will report that usage again.
fn without_usage(s: &VisitedSession, ccr: &CcRequest) -> VisitedSession {
    let mut b = s.clone();
    for m in &ccr.mscc {
        if let (Some(u), Some(v)) = (&m.used, b.service_mut(m.service)) {
            v.unreported = policy::remaining(&v.unreported, u);
        }
    }
    b
}
