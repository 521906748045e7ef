//! The visited role (V-PCRF, TS 29.215 and documents 000–002 of `reference/seeds.md`):
//! Gx from the visited PCEF; a roaming subscriber (home PLMN from the IMSI or NAI, see
//! [`config::VisitedSection::belonging`]) is served over S9 by its home PCRF, whose rules
//! are authorised under local policy ([`local_policy`]) before they reach the PCEF; the
//! network's own subscribers are served locally by the home-role handlers, without S9.
//!
//! - S9 session model ([`config::S9Model`]): one S9 session per Gx session (document 002,
//!   embodiments 1–9: each Gx CCR-T ends its S9 session with an S9 CCR-T), or one per UE
//!   and home network carrying one subsession per Gx session (embodiment 10: a Gx CCR-T
//!   ends its subsession with an S9 CCR-U, Subsession-Operation TERMINATION; the last one
//!   ends the S9 session with an S9 CCR-T). Every Subsession-Enforcement-Info carries our
//!   DRA-Client-Session-Id naming the Gx session, and a CCR-T carries it at command level
//!   too, so DRAs can mark the client Session-Id ↔ S9 Session-Id mapping.
//! - Towards home, S9 is addressed by realm (`[[pcrf.visited.home]] realm`), with
//!   Destination-Host the configured H-PCRF or, once one answered, the H-PCRF that did; the
//!   node's routes decide whether that goes direct or through a DRA.
//! - Local policy: the first `[[pcrf.visited.local_policy]]` entry matching the home PLMN
//!   and APN refuses, caps or remaps the home's rules ([`local_policy`]); refused rules are
//!   reported home as INACTIVE (Charging-Rule-Report, S9 CCR-U after an establishment or
//!   modification, inside the RAA's Subsession-Enforcement-Info after a RAR). A RAR whose
//!   every rule was refused is answered, for that subsession, with Experimental-Result-Code
//!   5142 DIAMETER_PCC_RULE_EVENT; a partly refused one with the reports only (the home
//!   keeps the rest). Modified rules keep their names and are not reported (the home's
//!   decision stands; the visited network enforces less).
//! - Local breakout (document 000, [`lbo_check`]): LBO-marked rules (LBO-Indicator, or a
//!   signed steering rule to the home operator's user plane here) are verified under the
//!   agreement with their home operator (`[pcrf.visited.lbo]`) before local policy. In an
//!   S9 RAR a refusal refuses the subsession's whole decision — nothing goes to the PCEF,
//!   the RAA carries the refusal's code (Experimental-Result, Vendor-Id 32473) and the
//!   rules INACTIVE; accepted, the rules go to the PCEF by Gx RAR with their marks, and the
//!   Gx RAA's result becomes the subsession's in the S9 RAA. Presets refused in an S9 CCA
//!   are left out and reported home like rules local policy refuses.
//! - Charging (document 001 S307–S309): the home OCS (primary and secondary) goes to the
//!   PCEF in our Home-OCS-Identity; the V-OCS chosen by `[[pcrf.visited.vocs]]` (the
//!   candidates serving the home PLMN and APN; of those, the one with the fewest live
//!   sessions) is the primary event charging function of the Gx Charging-Information.
//! - Failures: home unreachable (no route, no answer, a protocol error on S9) → the PCEF
//!   gets 5012 DIAMETER_UNABLE_TO_COMPLY with an Error-Message naming the home realm; home
//!   refusing → the PCEF gets the home's Result-Code or Experimental-Result as it came,
//!   with an Error-Message. A failed S9 establishment leaves no state; a home that answers
//!   a modification 5002 (it lost the S9 session) ends the Gx session's roaming state.
//! - S9 RAR from home ([`Visited::s9_request`]; S9 CCRs of other networks' V-PCRFs still
//!   go to the home role, for this network's own roaming subscribers): each Subsession-Decision-Info is
//!   authorised ([`Visited::authorise_home_rules`], the one place a check on home rules
//!   runs) and sent to its PCEF as a Gx RAR; the Gx RAA's result and rule reports travel
//!   back in the S9 RAA. A Session-Release-Cause releases the Gx sessions (the PCEF then
//!   ends them with CCR-T, which ends S9 as above).
//!
//! - Rx from a visited AF for a roaming UE: relayed to the H-PCRF as an Rx session of the
//!   V-PCRF's own, and the home's RAR/ASR back to the AF ([`rx_relay`], which says why not
//!   over S9).
//!
//! State is in memory (a V-PCRF restart loses its roaming sessions; the home learns of it
//! through Origin-State-Id). Not yet here: Gxx subsessions, TER, DRA-client behaviours
//! beyond routing (redirect following, parallel sends).

pub mod config;
pub mod lbo_check;
pub mod local_policy;
pub mod rx_relay;
pub mod s9_client;

use crate::config::PcrfSection;
use crate::gx::{self, GxRequest, RequestType};
use crate::spr::SubscriberKey;
use config::{Belonging, HomeNetwork, S9Model, VisitedSection};
use diameter_codec::dict::{base, gx as gxd, roaming, s9 as s9d};
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::{IncomingRequest, Node, RequestError};
use local_policy::Authorised;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use s9_client::{Outcome, Target};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Metric: live S9 sessions this V-PCRF holds towards home networks.
pub const S9_CLIENT_SESSIONS: &str = "pcrf_visited_s9_sessions";
/// Metric: S9 requests this V-PCRF sent, by type and result.
pub const S9_CLIENT_REQUESTS: &str = "pcrf_visited_s9_requests_total";
/// Metric: home rules refused or modified by local policy.
pub const LOCAL_POLICY_RULES: &str = "pcrf_visited_local_policy_rules_total";
/// Metric: live roaming Gx sessions served over S9.
pub const ROAMING_GX_SESSIONS: &str = "pcrf_visited_roaming_gx_sessions";

/// Describes the visited role's metrics.
pub fn describe_metrics() {
    describe_gauge!(S9_CLIENT_SESSIONS, "Live S9 sessions towards home PCRFs");
    describe_counter!(
        S9_CLIENT_REQUESTS,
        "S9 CCRs sent to home PCRFs, by CC-Request-Type and result (0: no answer)"
    );
    describe_counter!(
        LOCAL_POLICY_RULES,
        "Home PCC rules refused or modified by local policy"
    );
    describe_gauge!(
        ROAMING_GX_SESSIONS,
        "Live Gx sessions of roaming subscribers"
    );
}

/// A roaming subscriber's Gx session, served over S9.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoamingSession {
    /// The Gx Session-Id (the client's, document 002 "session id 1").
    pub session_id: String,
    /// The PCEF (Origin-Host of the CCR-I).
    pub pcef_host: String,
    /// Its realm.
    pub pcef_realm: String,
    /// The S9 session carrying it ("session id 2").
    pub s9_session_id: String,
    /// Its subsession on that S9 session.
    pub subsession: u32,
    /// The subscriber's home PLMN.
    pub home_plmn: String,
    /// Called-Station-Id.
    pub apn: Option<String>,
    /// The V-OCS chosen for it.
    pub vocs: Option<String>,
    /// The UE address (an AF's Rx session for it is relayed home).
    pub ue_ip: Option<std::net::IpAddr>,
}

/// One S9 session towards a home network.
struct S9Client {
    session_id: String,
    home: HomeNetwork,
    /// The H-PCRF that answered the CCR-I (Destination-Host of later requests).
    home_host: Option<String>,
    subscriber: SubscriberKey,
    /// The per-UE key, in the per-UE model.
    ue_key: Option<String>,
    next_number: u32,
    next_subsession: u32,
    /// Subsession → Gx Session-Id.
    subsessions: BTreeMap<u32, String>,
    /// Whether the CCR-I was answered with success.
    opened: bool,
    /// Whether it ended (or failed to open): a caller that waited for its lock starts over.
    ended: bool,
}

#[derive(Default)]
struct State {
    gx: HashMap<String, RoamingSession>,
    s9: HashMap<String, Arc<tokio::sync::Mutex<S9Client>>>,
    by_ue: HashMap<String, String>,
}

/// How many times an establishment starts over when the per-UE S9 session it found ended
/// meanwhile.
const ATTEMPTS: usize = 4;

/// The V-PCRF's roaming half: its Gx handling for roaming subscribers and its S9 client.
pub struct Visited {
    node: Node,
    cfg: VisitedSection,
    pcrf: PcrfSection,
    state: Mutex<State>,
    label: String,
    /// The last Origin-State-Id of each PCEF (RFC 6733 §8.16), as the home role keeps its
    /// own: a PCEF behind an agent restarts without a peer event.
    origin_states: Mutex<HashMap<String, u32>>,
    /// Relayed AF sessions by the AF's Session-Id ([`rx_relay`]).
    rx: Mutex<HashMap<String, rx_relay::RelayedRx>>,
    /// The PCRF's series this role shares (local-breakout grants).
    metrics: crate::metrics::Label,
}

/// What the rule check of [`Visited::authorise_home_rules`] knows of the session.
pub struct RuleContext<'a> {
    /// The Gx session.
    pub session: &'a RoamingSession,
}

impl Visited {
    /// The visited role on `node`, configured by `pcrf` (whose `visited` section is set).
    pub fn new(node: Node, pcrf: &PcrfSection, cfg: VisitedSection) -> Self {
        let label = node.identity().host.clone();
        let metrics = crate::metrics::Label::new(&label);
        gauge!(S9_CLIENT_SESSIONS, "node" => label.clone()).set(0.0);
        gauge!(ROAMING_GX_SESSIONS, "node" => label.clone()).set(0.0);
        Self {
            node,
            cfg,
            pcrf: pcrf.clone(),
            state: Mutex::new(State::default()),
            label,
            origin_states: Mutex::new(HashMap::new()),
            rx: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves maps that are still consistent
        // (every change is one insert or remove): keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live roaming Gx sessions.
    pub fn roaming_sessions(&self) -> Vec<RoamingSession> {
        self.state().gx.values().cloned().collect()
    }

    /// A live roaming Gx session.
    pub fn roaming_session(&self, gx_session: &str) -> Option<RoamingSession> {
        self.state().gx.get(gx_session).cloned()
    }

    /// The Session-Ids of the live S9 sessions towards home networks.
    pub fn s9_sessions(&self) -> Vec<String> {
        self.state().s9.keys().cloned().collect()
    }

    fn gauges(&self, st: &State) {
        gauge!(S9_CLIENT_SESSIONS, "node" => self.label.clone()).set(st.s9.len() as f64);
        gauge!(ROAMING_GX_SESSIONS, "node" => self.label.clone()).set(st.gx.len() as f64);
    }

    /// Handles a Gx CCR when it is a roaming subscriber's; `None` leaves it to the home-role
    /// handler (the network's own subscribers, unreadable requests, sessions it does not
    /// hold).
    pub async fn gx_request(&self, req: &IncomingRequest) -> Option<MessageBuilder> {
        let r = GxRequest::read(&req.msg).ok()?;
        if let Some(osi) = req.msg.get(base::ORIGIN_STATE_ID).and_then(Result::ok)
            && crate::server::origin_state_changed(&self.origin_states, &r.origin_host, osi)
        {
            self.pcef_restarted(&r.origin_host).await;
        }
        match r.request_type {
            RequestType::Initial => match self.cfg.belonging(&r.subscribers) {
                Belonging::Roaming { home, identity } => {
                    // A CCR-I for a live session replaces it (as the home role does): the
                    // old subsession ends first, so none is left behind at home.
                    if let Some(old) = self.roaming_session(&r.session_id) {
                        tracing::info!(session = %r.session_id, "CCR-I for a live roaming session: it is replaced");
                        self.end_roaming(old, None).await;
                    }
                    Some(self.establish(req, &r, home.clone(), identity).await)
                }
                // Own subscribers, and those of networks without an agreement (the local
                // SPR does not know them: 5030 DIAMETER_USER_UNKNOWN).
                Belonging::Local | Belonging::Unknown => None,
            },
            RequestType::Update | RequestType::Termination => {
                let s = self.roaming_session(&r.session_id)?;
                Some(if r.request_type == RequestType::Update {
                    self.modify(req, s).await
                } else {
                    self.terminate(req, s).await
                })
            }
            RequestType::Event => None,
        }
    }

    /// The S9 session a new subsession of this UE goes on: a new one, or (per-UE model) the
    /// UE's live one.
    fn s9_for(
        &self,
        home: &HomeNetwork,
        subscriber: &SubscriberKey,
    ) -> Arc<tokio::sync::Mutex<S9Client>> {
        let mut st = self.state();
        let ue_key = (self.cfg.s9_model == S9Model::PerUe).then(|| {
            format!(
                "{}@{}",
                subscriber.as_key(),
                home.realm.to_ascii_lowercase()
            )
        });
        if let Some(k) = &ue_key
            && let Some(h) = st.by_ue.get(k).and_then(|sid| st.s9.get(sid))
        {
            return h.clone();
        }
        let session_id = self.node.session_ids().next_id();
        let c = Arc::new(tokio::sync::Mutex::new(S9Client {
            session_id: session_id.clone(),
            home: home.clone(),
            home_host: None,
            subscriber: subscriber.clone(),
            ue_key: ue_key.clone(),
            next_number: 0,
            next_subsession: 1,
            subsessions: BTreeMap::new(),
            opened: false,
            ended: false,
        }));
        st.s9.insert(session_id.clone(), c.clone());
        if let Some(k) = ue_key {
            st.by_ue.insert(k, session_id);
        }
        self.gauges(&st);
        c
    }

    /// Forgets an S9 session (ended, or never opened).
    fn drop_s9(&self, c: &mut S9Client) {
        c.ended = true;
        let mut st = self.state();
        st.s9.remove(&c.session_id);
        if let Some(k) = &c.ue_key
            && st.by_ue.get(k) == Some(&c.session_id)
        {
            st.by_ue.remove(k);
        }
        self.gauges(&st);
    }

    /// Sends an S9 CCR on `c` and counts it.
    async fn send_s9(
        &self,
        c: &mut S9Client,
        kind: RequestType,
        subsession: OwnedAvp,
        client_sessions: &[String],
    ) -> Result<Message, RequestError> {
        let host = c.home_host.clone().or_else(|| c.home.pcrf.clone());
        let to = Target {
            session_id: &c.session_id,
            realm: &c.home.realm,
            host: host.as_deref(),
        };
        let number = c.next_number;
        c.next_number += 1;
        let subscriber = (kind == RequestType::Initial).then_some(&c.subscriber);
        let ccr = s9_client::ccr(
            self.node.identity(),
            &to,
            kind,
            number,
            subscriber,
            subsession,
            client_sessions,
        );
        let a = self.node.request(ccr).await;
        let rc = match &a {
            Ok(m) => s9_client::outcome(m).map_or(0, |o| o.code),
            Err(RequestError::Protocol { result_code, .. }) => result_code.0,
            Err(_) => 0,
        };
        counter!(S9_CLIENT_REQUESTS, "node" => self.label.clone(), "type" => kind.as_str(), "result_code" => rc.to_string())
            .increment(1);
        a
    }

    /// The rule check on what the home network sends for a roaming session, before it is
    /// installed over Gx (CCA-I/U after S9 establishment or modification, and Gx RAR after
    /// an S9 RAR). First local breakout ([`lbo_check`]): every LBO-marked rule is verified
    /// under the agreement with its home operator (`[pcrf.visited.lbo]`); refused ones are
    /// left out, named in `refused` and in `lbo_refused` (the RAR path then refuses the
    /// whole subsession decision). Then local policy, by the first
    /// `[[pcrf.visited.local_policy]]` entry that matches the session's home PLMN and APN,
    /// on every rule left — LBO rules included: the grant covers a rule's name, precedence
    /// and flows, not its QoS or charging, so caps and rating-group remapping apply to them
    /// as to any rule, and an entry that refuses a rule by name refuses an LBO rule too
    /// (reported home INACTIVE; the home refuses its AF).
    pub fn authorise_home_rules<'a>(
        &self,
        ctx: &RuleContext<'_>,
        decision: impl IntoIterator<Item = AvpRef<'a>>,
    ) -> Authorised {
        let decision: Vec<AvpRef<'a>> = decision.into_iter().collect();
        let now = (diameter_service::now_ms() / 1000) as i64;
        let lbo = lbo_check::check(self.cfg.lbo.as_ref(), &decision, now);
        for (name, kind) in &lbo.accepted {
            tracing::info!(session = %ctx.session.session_id, rule = %name, kind = ?kind, "local-breakout rule accepted");
            self.metrics.lbo_grant("visited", true, "ok");
        }
        let stripped;
        let decision = match &lbo.refused {
            None => decision,
            Some(r) => {
                tracing::info!(session = %ctx.session.session_id, rules = ?r.rules, reason = %r.why, "local-breakout rules refused");
                for _ in &r.rules {
                    self.metrics.lbo_grant("visited", false, r.why.reason());
                }
                stripped = lbo_check::without(&decision, &r.rules);
                stripped.avps().flatten().collect()
            }
        };
        let entry = self
            .cfg
            .local_policy_for(&ctx.session.home_plmn, ctx.session.apn.as_deref());
        let mut a = local_policy::authorise(entry, decision);
        for (what, names) in [("refused", &a.refused), ("modified", &a.modified)] {
            if !names.is_empty() {
                tracing::info!(session = %ctx.session.session_id, rules = ?names, "home rules {what} by local policy");
                counter!(LOCAL_POLICY_RULES, "node" => self.label.clone(), "action" => what)
                    .increment(names.len() as u64);
            }
        }
        if let Some(r) = lbo.refused {
            a.refused.extend(r.rules.iter().cloned());
            a.lbo_refused = Some(r);
        }
        a
    }

    /// The V-OCS for a session of home PLMN `plmn` on `apn`: of the candidates serving
    /// them, the one with the fewest live sessions (file order breaks ties).
    fn choose_vocs(&self, plmn: &str, apn: Option<&str>) -> Option<String> {
        let st = self.state();
        self.cfg
            .vocs
            .iter()
            .filter(|v| v.serves(plmn, apn))
            .min_by_key(|v| {
                st.gx
                    .values()
                    .filter(|s| s.vocs.as_deref() == Some(&v.uri))
                    .count()
            })
            .map(|v| v.uri.clone())
    }

    /// The PCEF's answer when S9 did not work out: 5012 when home could not be reached, the
    /// home's own result when it refused.
    fn s9_failed(
        &self,
        req: &IncomingRequest,
        home: &HomeNetwork,
        failure: Result<Outcome, RequestError>,
    ) -> MessageBuilder {
        match failure {
            // A protocol error (3xxx, RFC 6733 §7.1.3) belongs to the S9 hop; on Gx it would
            // need the E bit and mean something else: the PCEF hears the home could not
            // serve it.
            Ok(o) if !o.experimental && (3000..4000).contains(&o.code) => {
                tracing::warn!(home = %home.realm, code = o.code, "S9 protocol error");
                let mut a = req.answer(ResultCode(5012));
                a.push(base::ERROR_MESSAGE.with(format!(
                    "home network {} unreachable over S9: protocol error {}",
                    home.realm, o.code
                )));
                a
            }
            Ok(o) => {
                tracing::warn!(home = %home.realm, code = o.code, "home network refused S9");
                let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                a.push(o.gx_avp());
                a.copy_required_from(&req.msg, req.node.dictionary());
                a.push(base::ERROR_MESSAGE.with(format!(
                    "home network {} refused the S9 request ({})",
                    home.realm, o.code
                )));
                a
            }
            Err(e) => {
                tracing::warn!(home = %home.realm, error = %e, "home network unreachable over S9");
                let mut a = req.answer(ResultCode(5012));
                a.push(base::ERROR_MESSAGE.with(format!(
                    "home network {} unreachable over S9: {e}",
                    home.realm
                )));
                a
            }
        }
    }

    /// The result of subsession `id` in an S9 answer: the command's, unless the
    /// subsession's Subsession-Decision-Info carries its own.
    fn result_for(answer: &Message, id: u32) -> Outcome {
        let command = s9_client::outcome(answer).unwrap_or(Outcome::base(5012));
        if command != Outcome::SUCCESS {
            return command;
        }
        s9_client::decision_of(answer, id)
            .and_then(|d| s9_client::subsession_outcome(&d))
            .unwrap_or(command)
    }

    /// Authorises the decision for subsession `session.subsession` in `answer` and writes it
    /// into the Gx answer `a`; reports refused rules home on `c`.
    async fn relay_decision(
        &self,
        c: &mut S9Client,
        session: &RoamingSession,
        answer: &Message,
        a: &mut MessageBuilder,
    ) -> Authorised {
        let sdi = s9_client::decision_of(answer, session.subsession);
        let members: Vec<AvpRef<'_>> = sdi
            .iter()
            .flat_map(|d| d.children().flatten())
            .filter(s9_client::is_gx_decision)
            .collect();
        let auth = self.authorise_home_rules(&RuleContext { session }, members);
        for avp in auth.avps.iter().cloned() {
            a.push(avp);
        }
        if !auth.refused.is_empty() {
            // TS 29.215 §5.3.2: rule reports travel home in Subsession-Enforcement-Info.
            let report =
                s9_client::refused_report(&auth.refused, self.cfg.refused_rule_failure_code);
            let sei = s9_client::enforcement(
                session.subsession,
                Some(s9d::SubsessionOperation::MODIFICATION),
                None,
                &session.session_id,
                vec![report],
            );
            match self.send_s9(c, RequestType::Update, sei, &[]).await {
                Ok(m) if s9_client::outcome(&m) == Some(Outcome::SUCCESS) => {}
                other => {
                    tracing::warn!(session = %session.session_id, answer = ?other.map(|m| s9_client::outcome(&m)), "reporting refused rules home failed")
                }
            }
        }
        auth
    }

    /// Gx CCR-I of a roaming subscriber: its subsession established over S9 (a new S9
    /// session, or the UE's in the per-UE model), the home's decision authorised.
    async fn establish(
        &self,
        req: &IncomingRequest,
        r: &GxRequest,
        home: HomeNetwork,
        subscriber: SubscriberKey,
    ) -> MessageBuilder {
        for _ in 0..ATTEMPTS {
            let handle = self.s9_for(&home, &subscriber);
            let mut c = handle.lock().await;
            if c.ended {
                continue;
            }
            let id = c.next_subsession;
            c.next_subsession += 1;
            let sei = s9_client::enforcement(
                id,
                Some(s9d::SubsessionOperation::ESTABLISHMENT),
                Some(&req.msg),
                &r.session_id,
                vec![],
            );
            let kind = if c.opened {
                RequestType::Update
            } else {
                RequestType::Initial
            };
            let answer = match self.send_s9(&mut c, kind, sei, &[]).await {
                Ok(m) => {
                    let o = Self::result_for(&m, id);
                    if o != Outcome::SUCCESS {
                        if !c.opened {
                            self.drop_s9(&mut c);
                        }
                        return self.s9_failed(req, &home, Ok(o));
                    }
                    m
                }
                Err(e) => {
                    if !c.opened {
                        self.drop_s9(&mut c);
                    }
                    return self.s9_failed(req, &home, Err(e));
                }
            };
            c.opened = true;
            if c.home_host.is_none() {
                c.home_host = answer
                    .get(base::ORIGIN_HOST)
                    .and_then(Result::ok)
                    .map(str::to_string);
            }
            c.subsessions.insert(id, r.session_id.clone());
            let sdi = s9_client::decision_of(&answer, id);
            let home_ocs = s9_client::home_ocs(&answer, sdi.as_ref());
            let vocs = home_ocs
                .as_ref()
                .and_then(|_| self.choose_vocs(&home.plmn, r.apn.as_deref()));
            let session = RoamingSession {
                session_id: r.session_id.clone(),
                pcef_host: r.origin_host.clone(),
                pcef_realm: r.origin_realm.clone(),
                s9_session_id: c.session_id.clone(),
                subsession: id,
                home_plmn: home.plmn.clone(),
                apn: r.apn.clone(),
                vocs: vocs.clone(),
                ue_ip: r.ue_ip,
            };
            {
                let mut st = self.state();
                st.gx.insert(r.session_id.clone(), session.clone());
                self.gauges(&st);
            }
            let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
            let features = gx::agree_features(&self.pcrf.supported_features, &r.features);
            for f in gx::supported_features(&features) {
                a.push(f);
            }
            let auth = self.relay_decision(&mut c, &session, &answer, &mut a).await;
            if let Some(ci) = s9_client::charging_information(&answer, vocs.as_deref()) {
                a.push(ci);
            }
            if let Some(h) = home_ocs {
                a.push(h);
            }
            tracing::info!(
                session = %r.session_id,
                s9 = %c.session_id,
                subsession = id,
                home = %home.realm,
                rules = ?auth.installed,
                vocs = ?vocs,
                "roaming Gx session established over S9"
            );
            return a;
        }
        self.s9_failed(req, &home, Ok(Outcome::base(5012)))
    }

    /// Gx CCR-U of a roaming session: the report goes home as a subsession modification, the
    /// home's answer comes back authorised.
    async fn modify(&self, req: &IncomingRequest, s: RoamingSession) -> MessageBuilder {
        let Some(handle) = self.state().s9.get(&s.s9_session_id).cloned() else {
            return req.answer(ResultCode(5002));
        };
        let mut c = handle.lock().await;
        if c.ended {
            return req.answer(ResultCode(5002));
        }
        let sei = s9_client::enforcement(
            s.subsession,
            Some(s9d::SubsessionOperation::MODIFICATION),
            Some(&req.msg),
            &s.session_id,
            vec![],
        );
        let home = c.home.clone();
        let answer = match self.send_s9(&mut c, RequestType::Update, sei, &[]).await {
            Ok(m) => m,
            Err(e) => return self.s9_failed(req, &home, Err(e)),
        };
        let o = Self::result_for(&answer, s.subsession);
        if o != Outcome::SUCCESS {
            if o.code == 5002 && !o.experimental {
                // The home no longer knows the S9 session (RFC 6733 §7.1.5): neither does
                // the V-PCRF, and the PCEF, told 5002 too, ends the Gx session itself.
                let mut st = self.state();
                st.gx.remove(&s.session_id);
                self.gauges(&st);
                drop(st);
                c.subsessions.remove(&s.subsession);
                if c.subsessions.is_empty() {
                    self.drop_s9(&mut c);
                }
            }
            return self.s9_failed(req, &home, Ok(o));
        }
        let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
        self.relay_decision(&mut c, &s, &answer, &mut a).await;
        a
    }

    /// Gx CCR-T of a roaming session: per session, the S9 session ends (CCR-T); per UE,
    /// the subsession ends (CCR-U, TERMINATION) unless it is the last one, when the S9
    /// session ends. The PCEF's session ends whatever home answers.
    async fn terminate(&self, req: &IncomingRequest, s: RoamingSession) -> MessageBuilder {
        self.end_roaming(s, Some(&req.msg)).await;
        req.answer(ResultCode::DIAMETER_SUCCESS)
    }

    /// Ends a roaming Gx session's part of S9: its subsession with an S9 CCR-U
    /// (TERMINATION), or, when it was the last one (always in the per-session model), the
    /// S9 session with an S9 CCR-T. `gx_ccr` is the PCEF's CCR-T, when there is one.
    async fn end_roaming(&self, s: RoamingSession, gx_ccr: Option<&Message>) {
        {
            let mut st = self.state();
            st.gx.remove(&s.session_id);
            self.gauges(&st);
        }
        let handle = self.state().s9.get(&s.s9_session_id).cloned();
        let Some(handle) = handle else { return };
        let mut c = handle.lock().await;
        if c.ended {
            return;
        }
        c.subsessions.remove(&s.subsession);
        let last = c.subsessions.is_empty();
        let sei = s9_client::enforcement(
            s.subsession,
            Some(s9d::SubsessionOperation::TERMINATION),
            gx_ccr,
            &s.session_id,
            vec![],
        );
        let (kind, ids) = if last {
            (RequestType::Termination, vec![s.session_id.clone()])
        } else {
            (RequestType::Update, vec![])
        };
        let answer = self.send_s9(&mut c, kind, sei, &ids).await;
        if last {
            self.drop_s9(&mut c);
        }
        match answer.as_ref().map(s9_client::outcome) {
            Ok(Some(Outcome::SUCCESS)) => {}
            other => tracing::warn!(
                session = %s.session_id,
                s9 = %c.session_id,
                answer = ?other.map_err(|e| e.to_string()),
                "home did not confirm the end of the subsession"
            ),
        }
        tracing::info!(
            session = %s.session_id,
            s9 = %c.session_id,
            s9_ended = last,
            "roaming Gx session ended"
        );
    }

    /// RFC 6733 §8.16: a PCEF that restarted lost its sessions; its roaming sessions end
    /// towards home as if it had sent CCR-T for each.
    pub async fn pcef_restarted(&self, pcef_host: &str) {
        let gone: Vec<RoamingSession> = self
            .state()
            .gx
            .values()
            .filter(|s| s.pcef_host.eq_ignore_ascii_case(pcef_host))
            .cloned()
            .collect();
        if !gone.is_empty() {
            tracing::info!(
                pcef = pcef_host,
                sessions = gone.len(),
                "PCEF restarted: its roaming sessions end"
            );
        }
        for s in gone {
            self.end_roaming(s, None).await;
        }
    }

    /// An S9 request from home: RAR (TS 29.215 §4.5.2, §5.6.4). Each
    /// Subsession-Decision-Info is authorised and sent to its PCEF as a Gx RAR; the RAA
    /// carries, per subsession, the PCEF's result and rule reports and the rules local
    /// policy refused.
    pub async fn s9_request(&self, req: IncomingRequest) -> MessageBuilder {
        // TS 29.215 §5.6: the V-PCRF serves RAR (and TER, not built yet); RFC 6733 §7.1.3
        // DIAMETER_COMMAND_UNSUPPORTED for anything else.
        if req.msg.header().command_code != s9d::CMD_RE_AUTH {
            let mut a = req.answer(ResultCode(3001));
            a.push(base::ERROR_MESSAGE.with("this V-PCRF serves only RAR on S9"));
            return a;
        }
        let sid = req.msg.session_id().unwrap_or_default().to_string();
        let handle = self.state().s9.get(&sid).cloned();
        let Some(handle) = handle else {
            // RFC 6733 §7.1.5.
            return req.answer(ResultCode(5002));
        };
        let subsessions = handle.lock().await.subsessions.clone();
        let command_release = req.msg.get(gxd::SESSION_RELEASE_CAUSE).and_then(Result::ok);
        let mut infos = Vec::new();
        let mut lbo_refusal = None;
        if let Some(cause) = command_release {
            for id in subsessions.keys() {
                infos.push(self.release(&sid, *id, &subsessions, cause).await);
            }
        } else {
            for (id, sdi) in s9_client::decisions(&req.msg) {
                let Some(id) = id else { continue };
                let (info, refused) = self.rar_subsession(id, &subsessions, &sdi).await;
                infos.push(info);
                lbo_refusal = lbo_refusal.or(refused);
            }
        }
        let mut a = match &lbo_refusal {
            // The agreement refused an LBO rule: the command carries the refusal's code
            // (Experimental-Result, Vendor-Id 32473, `crate::lbo`), which the home
            // relays to the AF; each subsession's own outcome is in its
            // Subsession-Enforcement-Info.
            Some(why) => {
                let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                a.push(why.result_avp());
                a.copy_required_from(&req.msg, req.node.dictionary());
                a.push(base::ERROR_MESSAGE.with(why.to_string()));
                a
            }
            None => req.answer(ResultCode::DIAMETER_SUCCESS),
        };
        for i in infos {
            a.push(i);
        }
        a
    }

    fn session_of(&self, id: u32, subsessions: &BTreeMap<u32, String>) -> Option<RoamingSession> {
        subsessions.get(&id).and_then(|gx| self.roaming_session(gx))
    }

    /// Releases subsession `id`'s Gx session (Gx RAR with Session-Release-Cause).
    async fn release(
        &self,
        sid: &str,
        id: u32,
        subsessions: &BTreeMap<u32, String>,
        cause: gxd::SessionReleaseCause,
    ) -> OwnedAvp {
        let Some(s) = self.session_of(id, subsessions) else {
            return s9_client::raa_enforcement(
                id,
                Some(Outcome::tgpp(crate::s9::ERROR_SUBSESSION)),
                vec![],
            );
        };
        tracing::info!(s9 = sid, subsession = id, "home releases the session");
        let rar = gx::rar(
            self.node.identity(),
            &s.session_id,
            &s.pcef_host,
            &s.pcef_realm,
            &crate::policy::Decision::default(),
            Some(cause.0),
        );
        let (result, reports) = self.gx_rar(rar, vec![]).await;
        s9_client::raa_enforcement(id, result, reports)
    }

    /// A Subsession-Decision-Info of an S9 RAR, authorised and sent as a Gx RAR; with the
    /// LBO refusal when the agreement refused one of its local-breakout rules (then nothing
    /// of it goes to the PCEF).
    async fn rar_subsession(
        &self,
        id: u32,
        subsessions: &BTreeMap<u32, String>,
        sdi: &AvpRef<'_>,
    ) -> (OwnedAvp, Option<crate::lbo::LboRefusal>) {
        let Some(s) = self.session_of(id, subsessions) else {
            // TS 29.215 §5.5.3 DIAMETER_ERROR_SUBSESSION: no such subsession.
            let info = s9_client::raa_enforcement(
                id,
                Some(Outcome::tgpp(crate::s9::ERROR_SUBSESSION)),
                vec![],
            );
            return (info, None);
        };
        // Online/Offline are not in the Gx RAR (TS 29.212 §5.6.4).
        let members: Vec<AvpRef<'_>> = sdi
            .children()
            .flatten()
            .filter(s9_client::is_gx_decision)
            .filter(|m| m.key() != gxd::ONLINE.key() && m.key() != gxd::OFFLINE.key())
            .collect();
        let had_rules = members
            .iter()
            .any(|m| m.key() == gxd::CHARGING_RULE_INSTALL.key());
        let auth = self.authorise_home_rules(&RuleContext { session: &s }, members);
        if let Some(r) = auth.lbo_refused {
            // Document 000: a grant the agreement refuses installs nothing; the home hears
            // why (the rules INACTIVE, the refusal's code).
            let info = crate::lbo::s9_refusal_info(id, &r.rules, &r.why);
            return (info, Some(r.why));
        }
        let mut reports = Vec::new();
        if !auth.refused.is_empty() {
            reports.push(s9_client::refused_report(
                &auth.refused,
                self.cfg.refused_rule_failure_code,
            ));
        }
        let nothing_left = had_rules && auth.installed.is_empty() && !auth.refused.is_empty();
        if nothing_left && auth.avps.is_empty() {
            // Everything the RAR asked was refused: nothing to tell the PCEF.
            let info = s9_client::raa_enforcement(id, Some(Outcome::tgpp(5142)), reports);
            return (info, None);
        }
        let mut rar = MessageBuilder::request(gxd::CMD_RE_AUTH, gx::APPLICATION_ID, true);
        rar.push(base::SESSION_ID.with(s.session_id.clone()));
        rar.push(base::AUTH_APPLICATION_ID.with(gx::APPLICATION_ID));
        rar.push(base::ORIGIN_HOST.with(self.node.identity().host.clone()));
        rar.push(base::ORIGIN_REALM.with(self.node.identity().realm.clone()));
        rar.push(base::DESTINATION_REALM.with(s.pcef_realm.clone()));
        rar.push(base::DESTINATION_HOST.with(s.pcef_host.clone()));
        rar.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
        for avp in auth.avps {
            rar.push(avp);
        }
        if let Some(h) = sdi
            .children()
            .flatten()
            .find(|c| c.key() == roaming::HOME_OCS_IDENTITY.key())
        {
            rar.push(OwnedAvp::from_ref(&h));
        }
        let (result, reports) = self.gx_rar(rar, reports).await;
        // Every rule asked for was refused: DIAMETER_PCC_RULE_EVENT for the subsession,
        // whatever else (removals, triggers) the PCEF took.
        let result = if nothing_left {
            Some(Outcome::tgpp(5142))
        } else {
            result
        };
        (s9_client::raa_enforcement(id, result, reports), None)
    }

    /// Sends a Gx RAR; its RAA's result when not success, and its Charging-Rule-Reports
    /// followed by `reports`.
    async fn gx_rar(
        &self,
        rar: MessageBuilder,
        mut reports: Vec<OwnedAvp>,
    ) -> (Option<Outcome>, Vec<OwnedAvp>) {
        match self.node.request(rar).await {
            Ok(raa) => {
                let o = s9_client::outcome(&raa).unwrap_or(Outcome::base(5012));
                let mut r: Vec<OwnedAvp> = raa
                    .find_all(gxd::CHARGING_RULE_REPORT.key())
                    .map(|c| OwnedAvp::verbatim(&raa, &c))
                    .collect();
                r.append(&mut reports);
                ((o != Outcome::SUCCESS).then_some(o), r)
            }
            Err(e) => {
                tracing::warn!(error = %e, "Gx RAR to the PCEF failed");
                // RFC 6733 §7.1.3 DIAMETER_UNABLE_TO_DELIVER: the PCEF could not be reached.
                let o = Outcome::base(3002);
                (Some(o), reports)
            }
        }
    }
}
