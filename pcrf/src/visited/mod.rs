//! The visited role (V-PCRF, TS 29.215 and documents 000–002 of `reference/seeds.md`):
//! Gx from the visited PCEF; a roaming subscriber (home PLMN from the IMSI or NAI, see
//! [`config::VisitedSection::belonging`]) is served over S9 by its home PCRF, whose rules
//! are authorised under local policy ([`local_policy`]) before they reach the PCEF; the
//! network's own subscribers are served locally by the home-role handlers, without S9.
//!
//! - S9 session model ([`config::S9Model`]): one S9 session per IP-CAN session, carrying
//!   its Gx session and its BBERFs' Gxx sessions as subsessions (document 002, embodiments
//!   1–9: the Gx CCR-T of a session without BBERF ends its S9 session with an S9 CCR-T), or
//!   one per UE and home network carrying one subsession per Gx or Gxx session (embodiment
//!   10). A client's CCR-T ends its subsession with an S9 CCR-U, Subsession-Operation
//!   TERMINATION; the last one ends the S9 session with an S9 CCR-T. Every
//!   Subsession-Enforcement-Info carries our DRA-Client-Session-Id naming the client's
//!   session, and a CCR-T carries it at command level
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
//! - Gxx from a visited BBERF (TS 23.203 §7.4, document 002 embodiments 1, 4, 7): a
//!   roaming UE's Gateway Control session is a subsession too, on the S9 session of its
//!   IP-CAN session (per session) or of the UE (per UE), see `Visited::establish`; it is
//!   bound to the Gx session of the same IP-CAN session ([`Visited::bound_gx`]); the home's
//!   decision reaches the BBERF as QoS rules after local policy ([`qos_rules`]); the Gx
//!   session's rule changes are mirrored to it by Gxx RAR; a BBERF reselection adds and
//!   ends subsessions with Multiple-BBERF-Action.
//! - Rx from a visited AF for a roaming UE: relayed to the H-PCRF as an Rx session of the
//!   V-PCRF's own, and the home's RAR/ASR back to the AF ([`rx_relay`], which says why not
//!   over S9).
//!
//! - Through a home DRA (`[[pcrf.visited.home]] dra`), the V-PCRF is its client as a PCEF
//!   is (document 002, claims 5–7): it remembers whether the DRA redirected or proxied the
//!   S9 establishment and ends subsessions and S9 sessions accordingly, by
//!   `dra_termination` ([`s9_client::send`]).
//!
//! State: the roaming client sessions and S9 sessions live behind [`store::RoamingStore`]
//! (in memory by default, [`Visited::with_store`] for another; the store module says how
//! a shared engine implements it and how one S9 session's requests stay serialised). With
//! the in-memory store a V-PCRF restart loses its roaming sessions; the home learns of it
//! through Origin-State-Id. A TER from home is answered as TS 29.215 Annex A.6.1.1.1
//! says, without the S9a part (no BPCF here; see `Visited::trigger_establishment`).

pub mod config;
pub mod lbo_check;
pub mod local_policy;
pub mod qos_rules;
pub mod rx_relay;
pub mod s9_client;
pub mod store;

use crate::config::PcrfSection;
use crate::gx::{self, GxRequest, RequestType};
use crate::spr::StoreError;
use crate::spr::SubscriberKey;
use config::{Belonging, HomeNetwork, S9Model, VisitedSection};
use diameter_codec::dict::{base, gx as gxd, roaming, s9 as s9d};
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::{IncomingRequest, Node, RequestError};
use diameter_service::dra_client::{DraClient, Handling};
use local_policy::Authorised;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use s9_client::{Outcome, Target};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use store::{MemoryRoaming, RoamingStore, S9Lease, S9Record};

/// Metric: live S9 sessions this V-PCRF holds towards home networks.
pub const S9_CLIENT_SESSIONS: &str = "pcrf_visited_s9_sessions";
/// Metric: S9 requests this V-PCRF sent, by type and result.
pub const S9_CLIENT_REQUESTS: &str = "pcrf_visited_s9_requests_total";
/// Metric: home rules refused or modified by local policy.
pub const LOCAL_POLICY_RULES: &str = "pcrf_visited_local_policy_rules_total";
/// Metric: live roaming Gx and Gxx sessions served over S9.
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
        "Live Gx and Gxx sessions of roaming subscribers"
    );
}

/// The interface of a roaming client session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// A PCEF's IP-CAN session (TS 29.212 chapter 4).
    Gx,
    /// A BBERF's Gateway Control session (TS 29.212 chapter 4a).
    Gxx,
}

/// A roaming subscriber's Gx or Gxx session, served over S9.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoamingSession {
    /// The Gx or Gxx Session-Id (the client's, document 002 "session id 1").
    pub session_id: String,
    /// Gx (PCEF) or Gxx (BBERF).
    pub interface: Interface,
    /// The subscriber, as the SPR keys it (`imsi:…`).
    pub subscriber: String,
    /// The PCEF or BBERF (Origin-Host of the CCR-I).
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

/// How many times an establishment starts over when the per-UE S9 session it found ended
/// meanwhile.
const ATTEMPTS: usize = 4;

/// The V-PCRF's roaming half: its Gx handling for roaming subscribers and its S9 client.
pub struct Visited {
    node: Node,
    cfg: VisitedSection,
    pcrf: PcrfSection,
    store: Arc<dyn RoamingStore>,
    label: String,
    /// The last Origin-State-Id of each PCEF (RFC 6733 §8.16), as the home role keeps its
    /// own: a PCEF behind an agent restarts without a peer event.
    pub(crate) origin_states: Mutex<HashMap<String, u32>>,
    /// Relayed AF sessions by the AF's Session-Id ([`rx_relay`]).
    rx: Mutex<HashMap<String, rx_relay::RelayedRx>>,
    /// The home DRAs S9 goes through as their client, by lower-case Diameter identity
    /// ([`s9_client::send`]).
    home_dras: HashMap<String, DraClient>,
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
        Self::with_store(node, pcrf, cfg, Arc::new(MemoryRoaming::new()))
    }

    /// As [`Visited::new`], its roaming sessions in `store`.
    pub fn with_store(
        node: Node,
        pcrf: &PcrfSection,
        cfg: VisitedSection,
        store: Arc<dyn RoamingStore>,
    ) -> Self {
        let label = node.identity().host.clone();
        let home_dras = cfg
            .homes
            .iter()
            .filter_map(|h| h.dra.as_deref())
            .map(|d| {
                let client = DraClient::new(node.clone(), d, cfg.dra_termination)
                    .with_direct_after_proxy(cfg.dra_direct_after_proxy);
                (d.to_ascii_lowercase(), client)
            })
            .collect();
        let metrics = crate::metrics::Label::new(&label);
        gauge!(S9_CLIENT_SESSIONS, "node" => label.clone()).set(0.0);
        gauge!(ROAMING_GX_SESSIONS, "node" => label.clone()).set(0.0);
        Self {
            node,
            cfg,
            pcrf: pcrf.clone(),
            store,
            label,
            origin_states: Mutex::new(HashMap::new()),
            rx: Mutex::new(HashMap::new()),
            home_dras,
            metrics,
        }
    }

    /// The live roaming Gx and Gxx sessions.
    pub async fn roaming_sessions(&self) -> Result<Vec<RoamingSession>, StoreError> {
        self.store.clients().await
    }

    /// A live roaming Gx or Gxx session (`None` too when the store cannot be read: logged).
    pub async fn roaming_session(&self, session_id: &str) -> Option<RoamingSession> {
        self.store
            .client(session_id.to_string())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "roaming store unreadable");
                None
            })
    }

    /// How the home DRA handled the establishment of S9 session `s9_session` (redirected
    /// to an H-PCRF, or proxied), while it lasts; `None` without a home DRA.
    pub fn home_dra_handling(&self, s9_session: &str) -> Option<Handling> {
        self.home_dras.values().find_map(|d| d.handling(s9_session))
    }

    /// The Session-Ids of the live S9 sessions towards home networks.
    pub async fn s9_sessions(&self) -> Result<Vec<String>, StoreError> {
        self.store.s9_ids().await
    }

    async fn gauges(&self) {
        if let (Ok(s9), Ok(clients)) = (self.store.s9_ids().await, self.store.clients().await) {
            gauge!(S9_CLIENT_SESSIONS, "node" => self.label.clone()).set(s9.len() as f64);
            gauge!(ROAMING_GX_SESSIONS, "node" => self.label.clone()).set(clients.len() as f64);
        }
    }

    /// The configured home network of realm `realm`.
    fn home_of(&self, realm: &str) -> Option<&HomeNetwork> {
        self.cfg
            .homes
            .iter()
            .find(|h| h.realm.eq_ignore_ascii_case(realm))
    }

    /// The home realm of S9 session `id` and the H-PCRF serving it (the one that answered,
    /// else the configured one).
    pub(crate) async fn home_pcrf_of(&self, id: &str) -> Option<(String, Option<String>)> {
        let c = self.store.s9(id.to_string()).await.ok()??;
        let host = c
            .home_host
            .clone()
            .or_else(|| self.home_of(&c.home_realm).and_then(|h| h.pcrf.clone()));
        Some((c.home_realm, host))
    }

    /// Takes S9 session `id`'s lease and reads it; `None` when it is gone.
    async fn lock_s9(&self, id: &str) -> Result<Option<(S9Lease, S9Record)>, StoreError> {
        let lease = self.store.lock_s9(id.to_string()).await?;
        Ok(self.store.s9(id.to_string()).await?.map(|r| (lease, r)))
    }

    /// Writes back an S9 session read under its lease.
    async fn save_s9(&self, c: &mut S9Record) {
        match self.store.replace_s9(c.clone()).await {
            Ok(true) => c.version += 1,
            other => {
                tracing::warn!(s9 = %c.session_id, result = ?other, "S9 session state not written")
            }
        }
    }

    /// The client's answer when the roaming store failed: 5012, said so.
    fn store_failed(req: &IncomingRequest, e: &StoreError) -> MessageBuilder {
        tracing::warn!(error = %e, "roaming store failed");
        let mut a = req.answer(ResultCode(5012));
        a.push(base::ERROR_MESSAGE.with(format!("roaming session state unavailable: {e}")));
        a
    }

    /// Handles a Gx CCR when it is a roaming subscriber's; `None` leaves it to the home-role
    /// handler (the network's own subscribers, unreadable requests, sessions it does not
    /// hold).
    pub async fn gx_request(&self, req: &IncomingRequest) -> Option<MessageBuilder> {
        self.client_request(req, Interface::Gx).await
    }

    /// Handles a Gxx CCR when it is a roaming subscriber's (TS 23.203 §7.4: the V-PCRF
    /// carries the BBERF's Gateway Control session to the H-PCRF over S9); `None` leaves it
    /// to the home-role handler. A BBERF that names no subscriber is a roaming one's when
    /// the UE address belongs to a roaming IP-CAN session here.
    pub async fn gxx_request(&self, req: &IncomingRequest) -> Option<MessageBuilder> {
        self.client_request(req, Interface::Gxx).await
    }

    /// The home network and subscriber of a Gxx CCR-I without a Subscription-Id of a
    /// roaming partner: those of the roaming session with the same UE address.
    async fn roamer_by_address(
        &self,
        ue_ip: Option<std::net::IpAddr>,
    ) -> Option<(HomeNetwork, SubscriberKey)> {
        let ip = ue_ip?;
        let clients = self.store.clients().await.ok()?;
        let s = clients.into_iter().find(|s| s.ue_ip == Some(ip))?;
        let c = self.store.s9(s.s9_session_id).await.ok()??;
        Some((self.home_of(&c.home_realm)?.clone(), c.subscriber))
    }

    async fn client_request(
        &self,
        req: &IncomingRequest,
        iface: Interface,
    ) -> Option<MessageBuilder> {
        let r = GxRequest::read(&req.msg).ok()?;
        if let Some(osi) = req.msg.get(base::ORIGIN_STATE_ID).and_then(Result::ok)
            && crate::server::origin_state_changed(&self.origin_states, &r.origin_host, osi)
        {
            self.pcef_restarted(&r.origin_host).await;
        }
        match r.request_type {
            RequestType::Initial => {
                let (home, identity) = match self.cfg.belonging(&r.subscribers) {
                    Belonging::Roaming { home, identity } => (home.clone(), identity),
                    Belonging::Unknown if iface == Interface::Gxx && r.subscribers.is_empty() => {
                        self.roamer_by_address(r.ue_ip).await?
                    }
                    // Own subscribers, and those of networks without an agreement (the
                    // local SPR does not know them: 5030 DIAMETER_USER_UNKNOWN).
                    Belonging::Local | Belonging::Unknown => return None,
                };
                // A CCR-I for a live session replaces it (as the home role does): the old
                // subsession ends first, so none is left behind at home.
                if let Some(old) = self.roaming_session(&r.session_id).await {
                    tracing::info!(session = %r.session_id, "CCR-I for a live roaming session: it is replaced");
                    self.end_roaming(old, None).await;
                }
                Some(self.establish(req, &r, home, identity, iface).await)
            }
            RequestType::Update | RequestType::Termination => {
                let s = self
                    .roaming_session(&r.session_id)
                    .await
                    .filter(|s| s.interface == iface)?;
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
    async fn s9_for(
        &self,
        home: &HomeNetwork,
        subscriber: &SubscriberKey,
        join: Option<&str>,
    ) -> Result<String, StoreError> {
        if let Some(j) = join
            && self.store.s9(j.to_string()).await?.is_some()
        {
            return Ok(j.to_string());
        }
        let ue_key = (self.cfg.s9_model == S9Model::PerUe).then(|| {
            format!(
                "{}@{}",
                subscriber.as_key(),
                home.realm.to_ascii_lowercase()
            )
        });
        let session_id = self.node.session_ids().next_id();
        let fresh = S9Record {
            session_id: session_id.clone(),
            home_realm: home.realm.clone(),
            home_host: None,
            subscriber: subscriber.clone(),
            ue_key,
            next_number: 0,
            next_subsession: 1,
            subsessions: BTreeMap::new(),
            opened: false,
            version: 0,
        };
        // Per UE: the UE's live S9 session when it has one (the store decides atomically).
        Ok(match self.store.create_s9(fresh).await? {
            Some(existing) => existing,
            None => {
                self.gauges().await;
                session_id
            }
        })
    }

    /// Forgets an S9 session (ended, or never opened).
    async fn drop_s9(&self, c: &S9Record) {
        if let Err(e) = self.store.remove_s9(c.session_id.clone()).await {
            tracing::warn!(s9 = %c.session_id, error = %e, "S9 session not removed from the store");
        }
        self.gauges().await;
    }

    /// Sends an S9 CCR on `c` and counts it.
    async fn send_s9(
        &self,
        c: &mut S9Record,
        kind: RequestType,
        subsession: OwnedAvp,
        client_sessions: &[String],
    ) -> Result<Message, RequestError> {
        let host = c
            .home_host
            .clone()
            .or_else(|| self.home_of(&c.home_realm).and_then(|h| h.pcrf.clone()));
        let to = Target {
            session_id: &c.session_id,
            realm: &c.home_realm,
            host: host.as_deref(),
        };
        let number = c.next_number;
        c.next_number += 1;
        let subscriber = (kind == RequestType::Initial).then_some(&c.subscriber);
        let mut ccr = s9_client::ccr(
            self.node.identity(),
            &to,
            kind,
            number,
            subscriber,
            subsession,
            client_sessions,
        );
        if kind == RequestType::Initial {
            // TS 29.215 §5.4.1: the S9 features this V-PCRF supports, in the CCR-I; the
            // H-PCRF's CCA-I names those both support.
            let ours = self
                .pcrf
                .s9_supported_features
                .iter()
                .map(|f| (f.list_id, f.list))
                .collect();
            for f in gx::supported_features(&ours) {
                ccr.push(f);
            }
        }
        let dra = self
            .home_of(&c.home_realm)
            .and_then(|h| h.dra.as_deref())
            .and_then(|d| self.home_dras.get(&d.to_ascii_lowercase()));
        let a = s9_client::send(&self.node, dra, kind, ccr).await;
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
    async fn choose_vocs(&self, plmn: &str, apn: Option<&str>) -> Option<String> {
        let clients = self.store.clients().await.unwrap_or_default();
        self.cfg
            .vocs
            .iter()
            .filter(|v| v.serves(plmn, apn))
            .min_by_key(|v| {
                clients
                    .iter()
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
        home_realm: &str,
        failure: Result<Outcome, RequestError>,
    ) -> MessageBuilder {
        match failure {
            // A protocol error (3xxx, RFC 6733 §7.1.3) belongs to the S9 hop; on Gx it would
            // need the E bit and mean something else: the PCEF hears the home could not
            // serve it.
            Ok(o) if !o.experimental && (3000..4000).contains(&o.code) => {
                tracing::warn!(home = %home_realm, code = o.code, "S9 protocol error");
                let mut a = req.answer(ResultCode(5012));
                a.push(base::ERROR_MESSAGE.with(format!(
                    "home network {} unreachable over S9: protocol error {}",
                    home_realm, o.code
                )));
                a
            }
            Ok(o) => {
                tracing::warn!(home = %home_realm, code = o.code, "home network refused S9");
                let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                a.push(o.gx_avp());
                a.copy_required_from(&req.msg, req.node.dictionary());
                a.push(base::ERROR_MESSAGE.with(format!(
                    "home network {} refused the S9 request ({})",
                    home_realm, o.code
                )));
                a
            }
            Err(e) => {
                tracing::warn!(home = %home_realm, error = %e, "home network unreachable over S9");
                let mut a = req.answer(ResultCode(5012));
                a.push(base::ERROR_MESSAGE.with(format!(
                    "home network {} unreachable over S9: {e}",
                    home_realm
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

    /// Local policy on a subsession's share of a home decision (`members`: the
    /// Subsession-Decision-Info's), in the form its client takes: Gx decision AVPs for a
    /// PCEF, QoS rules for a BBERF ([`qos_rules`]). Also the reports of refused rules for
    /// home (Charging-Rule-Report; QoS-Rule-Report for rules home sent as QoS rules).
    fn authorise_for(
        &self,
        session: &RoamingSession,
        members: &[AvpRef<'_>],
    ) -> (Vec<OwnedAvp>, Authorised, Vec<OwnedAvp>) {
        let ctx = RuleContext { session };
        let gx_members = members
            .iter()
            .filter(|m| s9_client::is_gx_decision(m))
            .cloned();
        let code = self.cfg.refused_rule_failure_code;
        match session.interface {
            Interface::Gx => {
                let auth = self.authorise_home_rules(&ctx, gx_members);
                let reports = (!auth.refused.is_empty())
                    .then(|| s9_client::refused_report(&auth.refused, code))
                    .into_iter()
                    .collect();
                (auth.avps.clone(), auth, reports)
            }
            Interface::Gxx => {
                let (buf, qos_names) = qos_rules::as_pcc_rules(members);
                let converted = diameter_codec::avp::AvpIter::new(&buf).flatten();
                let auth = self.authorise_home_rules(&ctx, gx_members.chain(converted));
                let (qos, pcc): (Vec<String>, Vec<String>) = auth
                    .refused
                    .iter()
                    .cloned()
                    .partition(|n| qos_names.contains(n));
                let mut reports = Vec::new();
                if !pcc.is_empty() {
                    reports.push(s9_client::refused_report(&pcc, code));
                }
                if !qos.is_empty() {
                    reports.push(qos_rules::refused_qos_report(&qos, code));
                }
                (qos_rules::gxx_decision(&auth.avps), auth, reports)
            }
        }
    }

    /// Authorises the decision for subsession `session.subsession` in `answer` and writes it
    /// into the client's answer `a`; reports refused rules home on `c`. Returns what was
    /// written.
    async fn relay_decision(
        &self,
        c: &mut S9Record,
        session: &RoamingSession,
        answer: &Message,
        a: &mut MessageBuilder,
    ) -> (Vec<OwnedAvp>, Authorised) {
        let sdi = s9_client::decision_of(answer, session.subsession);
        let members: Vec<AvpRef<'_>> = sdi.iter().flat_map(|d| d.children().flatten()).collect();
        let (avps, auth, reports) = self.authorise_for(session, &members);
        for avp in avps.iter().cloned() {
            a.push(avp);
        }
        if !reports.is_empty() {
            // TS 29.215 §5.3.2: rule reports travel home in Subsession-Enforcement-Info.
            let sei = s9_client::enforcement(
                session.subsession,
                Some(s9d::SubsessionOperation::MODIFICATION),
                None,
                &session.session_id,
                reports,
            );
            match self.send_s9(c, RequestType::Update, sei, &[]).await {
                Ok(m) if s9_client::outcome(&m) == Some(Outcome::SUCCESS) => {}
                other => {
                    tracing::warn!(session = %session.session_id, answer = ?other.map(|m| s9_client::outcome(&m)), "reporting refused rules home failed")
                }
            }
        }
        (avps, auth)
    }

    /// The live roaming sessions of the IP-CAN session of `subscriber` at `ue_ip` on `apn`
    /// (TS 29.212 §4a.5.1, TS 29.213 §4.2: the same UE address, else the same APN), other
    /// than `except`.
    async fn ip_can_sessions(
        &self,
        subscriber: &str,
        ue_ip: Option<std::net::IpAddr>,
        apn: Option<&str>,
        except: &str,
    ) -> Vec<RoamingSession> {
        self.store
            .clients_of(subscriber.to_string())
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.session_id != except)
            .filter(|s| match (s.ue_ip, ue_ip) {
                (Some(a), Some(b)) => a == b,
                _ => matches!((&s.apn, apn), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b)),
            })
            .collect()
    }

    /// The Gx session a roaming Gxx session is bound to: the PCEF's session of the same
    /// IP-CAN session (as the home role binds, `server/gxx_side.rs`), when there is one.
    pub async fn bound_gx(&self, gxx_session: &str) -> Option<String> {
        let s = self.roaming_session(gxx_session).await?;
        self.ip_can_sessions(&s.subscriber, s.ue_ip, s.apn.as_deref(), &s.session_id)
            .await
            .into_iter()
            .find(|p| p.interface == Interface::Gx)
            .map(|p| p.session_id)
    }

    /// CCR-I of a roaming subscriber's Gx or Gxx session: its subsession established over
    /// S9, the home's decision authorised.
    ///
    /// Which S9 session carries it: per UE, the UE's (embodiment 10). Per session, the one
    /// of its IP-CAN session: a Gxx session joins the S9 session of the Gx session it is
    /// bound to (or, before the PCEF is there, of another BBERF's Gxx session of the same
    /// IP-CAN session: a BBERF reselection), and a Gx session joins that of a BBERF that
    /// attached first (the PMIP order). TS 29.213 §7.3.2 has one S9 session per UE, and
    /// TS 23.203 §7.4 the V-PCRF carrying the Gateway Control session over S9 with the
    /// IP-CAN session, so the project's per-session model is "per IP-CAN session", never
    /// one S9 session for a Gxx session alone while its Gx has one. A second BBERF of an
    /// IP-CAN session is announced with Multiple-BBERF-Action ESTABLISHMENT (TS 29.215
    /// §5.3.7).
    async fn establish(
        &self,
        req: &IncomingRequest,
        r: &GxRequest,
        home: HomeNetwork,
        subscriber: SubscriberKey,
        iface: Interface,
    ) -> MessageBuilder {
        let sub_key = subscriber.as_key();
        for _ in 0..ATTEMPTS {
            let peers = self
                .ip_can_sessions(&sub_key, r.ue_ip, r.apn.as_deref(), &r.session_id)
                .await;
            let of = |i: Interface| peers.iter().find(|s| s.interface == i);
            let join = match (self.cfg.s9_model, iface) {
                (S9Model::PerSession, Interface::Gx) => of(Interface::Gxx),
                (S9Model::PerSession, Interface::Gxx) => {
                    of(Interface::Gx).or_else(|| of(Interface::Gxx))
                }
                _ => None,
            }
            .map(|s| s.s9_session_id.clone());
            let sid = match self.s9_for(&home, &subscriber, join.as_deref()).await {
                Ok(sid) => sid,
                Err(e) => return Self::store_failed(req, &e),
            };
            // The S9 session may have ended while this waited for it: start over.
            let (_lease, mut c) = match self.lock_s9(&sid).await {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(e) => return Self::store_failed(req, &e),
            };
            let id = c.next_subsession;
            c.next_subsession += 1;
            let mut extra = Vec::new();
            if iface == Interface::Gxx && of(Interface::Gxx).is_some() {
                extra
                    .push(s9d::MULTIPLE_BBERF_ACTION.with(s9d::MultipleBberfAction::ESTABLISHMENT));
            }
            let sei = s9_client::enforcement(
                id,
                Some(s9d::SubsessionOperation::ESTABLISHMENT),
                Some(&req.msg),
                &r.session_id,
                extra,
            );
            let kind = if c.opened {
                RequestType::Update
            } else {
                RequestType::Initial
            };
            let answer = match self.send_s9(&mut c, kind, sei, &[]).await {
                Ok(m) if Self::result_for(&m, id) == Outcome::SUCCESS => m,
                failed => {
                    if c.opened {
                        self.save_s9(&mut c).await;
                    } else {
                        self.drop_s9(&c).await;
                    }
                    return self.s9_failed(
                        req,
                        &home.realm,
                        failed.map(|m| Self::result_for(&m, id)),
                    );
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
            // Charging is the PCEF's: a BBERF gets neither home OCS nor V-OCS.
            let home_ocs =
                s9_client::home_ocs(&answer, sdi.as_ref()).filter(|_| iface == Interface::Gx);
            let vocs = home_ocs
                .as_ref()
                .map(|_| self.choose_vocs(&home.plmn, r.apn.as_deref()));
            let vocs = match vocs {
                Some(v) => v.await,
                None => None,
            };
            let session = RoamingSession {
                session_id: r.session_id.clone(),
                interface: iface,
                subscriber: sub_key.clone(),
                pcef_host: r.origin_host.clone(),
                pcef_realm: r.origin_realm.clone(),
                s9_session_id: c.session_id.clone(),
                subsession: id,
                home_plmn: home.plmn.clone(),
                apn: r.apn.clone(),
                vocs: vocs.clone(),
                ue_ip: r.ue_ip,
            };
            if let Err(e) = self.store.put_client(session.clone()).await {
                // Home holds the subsession: end it there too.
                c.subsessions.remove(&id);
                self.save_s9(&mut c).await;
                drop(_lease);
                self.end_roaming(session, None).await;
                return Self::store_failed(req, &e);
            }
            self.gauges().await;
            let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
            if iface == Interface::Gx {
                let features = gx::agree_features(&self.pcrf.supported_features, &r.features);
                for f in gx::supported_features(&features) {
                    a.push(f);
                }
            }
            let (_, auth) = self.relay_decision(&mut c, &session, &answer, &mut a).await;
            if let Some(ci) = s9_client::charging_information(&answer, vocs.as_deref())
                .filter(|_| iface == Interface::Gx)
            {
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
                interface = ?iface,
                "roaming session established over S9"
            );
            self.save_s9(&mut c).await;
            return a;
        }
        self.s9_failed(req, &home.realm, Ok(Outcome::base(5012)))
    }

    /// Gx or Gxx CCR-U of a roaming session: the report goes home as a subsession modification, the
    /// home's answer comes back authorised.
    async fn modify(&self, req: &IncomingRequest, s: RoamingSession) -> MessageBuilder {
        let (lease, mut c) = match self.lock_s9(&s.s9_session_id).await {
            Ok(Some(x)) => x,
            Ok(None) => return req.answer(ResultCode(5002)),
            Err(e) => return Self::store_failed(req, &e),
        };
        let sei = s9_client::enforcement(
            s.subsession,
            Some(s9d::SubsessionOperation::MODIFICATION),
            Some(&req.msg),
            &s.session_id,
            vec![],
        );
        let home = c.home_realm.clone();
        let answer = match self.send_s9(&mut c, RequestType::Update, sei, &[]).await {
            Ok(m) => m,
            Err(e) => {
                self.save_s9(&mut c).await;
                return self.s9_failed(req, &home, Err(e));
            }
        };
        let o = Self::result_for(&answer, s.subsession);
        if o != Outcome::SUCCESS {
            if o.code == 5002 && !o.experimental {
                // The home no longer knows the S9 session (RFC 6733 §7.1.5): neither does
                // the V-PCRF, and the PCEF, told 5002 too, ends the Gx session itself.
                let _ = self.store.remove_client(s.session_id.clone()).await;
                c.subsessions.remove(&s.subsession);
                if c.subsessions.is_empty() {
                    self.drop_s9(&c).await;
                } else {
                    self.save_s9(&mut c).await;
                }
                self.gauges().await;
            } else {
                self.save_s9(&mut c).await;
            }
            return self.s9_failed(req, &home, Ok(o));
        }
        let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
        let (avps, _) = self.relay_decision(&mut c, &s, &answer, &mut a).await;
        self.save_s9(&mut c).await;
        drop(lease);
        if s.interface == Interface::Gx {
            self.mirror_to_bberfs(&s, &avps).await;
        }
        a
    }

    /// A Gx session's rule changes (after local policy) go to the BBERFs of its IP-CAN
    /// session as QoS rules (TS 29.212 §4a.5.2, as the home role's `mirror_to_gxx`).
    async fn mirror_to_bberfs(&self, gx: &RoamingSession, avps: &[OwnedAvp]) {
        let changes = qos_rules::rule_changes(&qos_rules::gxx_decision(avps));
        if changes.is_empty() {
            return;
        }
        let bberfs = self
            .ip_can_sessions(&gx.subscriber, gx.ue_ip, gx.apn.as_deref(), &gx.session_id)
            .await;
        for b in bberfs.iter().filter(|b| b.interface == Interface::Gxx) {
            let mut rar = self.client_rar(b);
            for c in changes.iter().cloned() {
                rar.push(c);
            }
            match self.node.request(rar).await.map(|m| s9_client::outcome(&m)) {
                Ok(Some(Outcome::SUCCESS)) => {}
                other => {
                    tracing::warn!(gxx = %b.session_id, answer = ?other.map_err(|e| e.to_string()), "QoS rules not mirrored to the BBERF")
                }
            }
        }
    }

    /// A RAR (Gx, TS 29.212 §5.6.4; Gxx, §5a.6.4) to a roaming session's client, without
    /// a decision yet.
    fn client_rar(&self, s: &RoamingSession) -> MessageBuilder {
        let app = match s.interface {
            Interface::Gx => gx::APPLICATION_ID,
            Interface::Gxx => crate::gxx::APPLICATION_ID,
        };
        let mut rar = MessageBuilder::request(gxd::CMD_RE_AUTH, app, true);
        rar.push(base::SESSION_ID.with(s.session_id.clone()));
        rar.push(base::AUTH_APPLICATION_ID.with(app));
        rar.push(base::ORIGIN_HOST.with(self.node.identity().host.clone()));
        rar.push(base::ORIGIN_REALM.with(self.node.identity().realm.clone()));
        rar.push(base::DESTINATION_REALM.with(s.pcef_realm.clone()));
        rar.push(base::DESTINATION_HOST.with(s.pcef_host.clone()));
        rar.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
        rar
    }

    /// Gx or Gxx CCR-T of a roaming session: its subsession ends (S9 CCR-U, TERMINATION)
    /// unless it is the last one of its S9 session, when the S9 session ends (CCR-T). The
    /// client's session ends whatever home answers.
    async fn terminate(&self, req: &IncomingRequest, s: RoamingSession) -> MessageBuilder {
        self.end_roaming(s, Some(&req.msg)).await;
        req.answer(ResultCode::DIAMETER_SUCCESS)
    }

    /// Ends a roaming Gx or Gxx session's part of S9: its subsession with an S9 CCR-U
    /// (TERMINATION), or, when it was the last one (per session: the IP-CAN session's last;
    /// per UE: the UE's last), the S9 session with an S9 CCR-T. `gx_ccr` is the client's
    /// CCR-T, when there is one.
    async fn end_roaming(&self, s: RoamingSession, gx_ccr: Option<&Message>) {
        if let Err(e) = self.store.remove_client(s.session_id.clone()).await {
            tracing::warn!(session = %s.session_id, error = %e, "roaming session not removed from the store");
        }
        self.gauges().await;
        let (_lease, mut c) = match self.lock_s9(&s.s9_session_id).await {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(s9 = %s.s9_session_id, error = %e, "roaming store failed");
                return;
            }
        };
        c.subsessions.remove(&s.subsession);
        let last = c.subsessions.is_empty();
        // One of several BBERFs of the IP-CAN session leaves (a reselection): TS 29.215
        // §5.3.7 Multiple-BBERF-Action TERMINATION.
        let mut extra = Vec::new();
        if s.interface == Interface::Gxx
            && self
                .ip_can_sessions(&s.subscriber, s.ue_ip, s.apn.as_deref(), &s.session_id)
                .await
                .iter()
                .any(|p| p.interface == Interface::Gxx)
        {
            extra.push(s9d::MULTIPLE_BBERF_ACTION.with(s9d::MultipleBberfAction::TERMINATION));
        }
        let sei = s9_client::enforcement(
            s.subsession,
            Some(s9d::SubsessionOperation::TERMINATION),
            gx_ccr,
            &s.session_id,
            extra,
        );
        let (kind, ids) = if last {
            (RequestType::Termination, vec![s.session_id.clone()])
        } else {
            (RequestType::Update, vec![])
        };
        let answer = self.send_s9(&mut c, kind, sei, &ids).await;
        if last {
            self.drop_s9(&c).await;
        } else {
            self.save_s9(&mut c).await;
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
            "roaming session ended"
        );
    }

    /// RFC 6733 §8.16: a PCEF that restarted lost its sessions; its roaming sessions end
    /// towards home as if it had sent CCR-T for each.
    pub async fn pcef_restarted(&self, pcef_host: &str) {
        let gone: Vec<RoamingSession> = match self.store.clients().await {
            Ok(all) => all
                .into_iter()
                .filter(|s| s.pcef_host.eq_ignore_ascii_case(pcef_host))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "roaming store failed");
                return;
            }
        };
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
        // TS 29.215 §5.6: the V-PCRF serves RAR and TER; RFC 6733 §7.1.3
        // DIAMETER_COMMAND_UNSUPPORTED for anything else.
        if req.msg.header().command_code == s9d::CMD_TRIGGER_ESTABLISHMENT {
            return self.trigger_establishment(&req).await;
        }
        if req.msg.header().command_code != s9d::CMD_RE_AUTH {
            let mut a = req.answer(ResultCode(3001));
            a.push(base::ERROR_MESSAGE.with("this V-PCRF serves only RAR and TER on S9"));
            return a;
        }
        let sid = req.msg.session_id().unwrap_or_default().to_string();
        // The lease is taken only to read: a subsession being established is there once
        // its establishment is done.
        let subsessions = match self.lock_s9(&sid).await {
            Ok(Some((_lease, c))) => c.subsessions,
            // RFC 6733 §7.1.5.
            Ok(None) => return req.answer(ResultCode(5002)),
            Err(e) => {
                tracing::warn!(error = %e, "roaming store failed");
                return req.answer(ResultCode(5012));
            }
        };
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

    /// TER from a home PCRF (TS 29.215 Annex A.6.1.1.1, checked against the Release 17
    /// text): the H-PCRF asks for an S9 session of a subscriber (IMSI in Subscription-Id,
    /// the PDN in Called-Station-Id, Auth-Session-State NO_STATE_MAINTAINED). The V-PCRF
    /// answers TEA and starts the S9a session towards the BPCF, whose establishment brings
    /// the S9 session; when it is itself establishing an S9 session for the UE, the TEA
    /// carries Experimental-Result 5471 DIAMETER_ERROR_ONGOING_SESSION_ESTABLISHMENT.
    ///
    /// Here: no S9a (no BPCF in this stack), so a TEA of success starts nothing; the S9
    /// session comes with the UE's next Gx or Gxx establishment, as without TER. What the
    /// V-PCRF checks: the IMSI is there (5005 DIAMETER_MISSING_AVP, RFC 6733 §7.1.5) and
    /// belongs to the home network that sent the TER (TS 29.213 §4.5.2, roaming
    /// agreements: else 5003 DIAMETER_AUTHORIZATION_REJECTED); an S9 establishment of the
    /// UE not yet answered gives 5471. The TEA has no DRA-Deployment: that is a V-DRA's to
    /// add (a TER with DRA-Binding is for the V-DRA; reaching the V-PCRF, it means no DRA
    /// holds a binding). Nothing is kept of the TER's own session (NO_STATE_MAINTAINED).
    async fn trigger_establishment(&self, req: &IncomingRequest) -> MessageBuilder {
        let imsi = req
            .msg
            .find_all(diameter_codec::dict::dcca::SUBSCRIPTION_ID.key())
            .find(|s| {
                gx::child(s, diameter_codec::dict::dcca::SUBSCRIPTION_ID_TYPE)
                    == Some(diameter_codec::dict::dcca::SubscriptionIdType::END_USER_IMSI)
            })
            .and_then(|s| gx::child(&s, diameter_codec::dict::dcca::SUBSCRIPTION_ID_DATA))
            .map(str::to_string);
        let Some(imsi) = imsi else {
            let mut a = req.answer(ResultCode(5005));
            a.push(
                base::FAILED_AVP.with(vec![diameter_codec::dict::dcca::SUBSCRIPTION_ID.with(
                    vec![
                diameter_codec::dict::dcca::SUBSCRIPTION_ID_TYPE
                    .with(diameter_codec::dict::dcca::SubscriptionIdType::END_USER_IMSI),
                diameter_codec::dict::dcca::SUBSCRIPTION_ID_DATA.with(String::new()),
            ],
                )]),
            );
            a.push(base::ERROR_MESSAGE.with("TER without the subscriber's IMSI"));
            return a;
        };
        let origin_realm = req
            .msg
            .get(base::ORIGIN_REALM)
            .and_then(Result::ok)
            .unwrap_or_default();
        let subscriber = SubscriberKey::Imsi(imsi.clone());
        let home = match self.cfg.belonging(std::slice::from_ref(&subscriber)) {
            Belonging::Roaming { home, .. } if home.realm.eq_ignore_ascii_case(origin_realm) => {
                home.clone()
            }
            _ => {
                tracing::info!(%imsi, realm = origin_realm, "TER for a subscriber not of the sender's network");
                let mut a = req.answer(ResultCode(5003));
                a.push(base::ERROR_MESSAGE.with(format!(
                    "IMSI {imsi} is not a subscriber of roaming partner {origin_realm}"
                )));
                return a;
            }
        };
        let key = subscriber.as_key();
        let s9 = match self.store.s9_of_subscriber(key).await {
            Ok(s9) => s9,
            Err(e) => {
                tracing::warn!(error = %e, "roaming store failed");
                return req.answer(ResultCode(5012));
            }
        };
        let live = s9.iter().any(|c| c.opened);
        if s9.iter().any(|c| !c.opened) {
            return self.ongoing(req, &imsi);
        }
        tracing::info!(
            %imsi,
            home = %home.realm,
            apn = ?req.msg.get(diameter_codec::dict::nasreq::CALLED_STATION_ID).and_then(Result::ok),
            s9_live = live,
            "TER from home: no S9a here, the S9 session follows the UE's next establishment"
        );
        req.answer(ResultCode::DIAMETER_SUCCESS)
    }

    /// TEA 5471 DIAMETER_ERROR_ONGOING_SESSION_ESTABLISHMENT (TS 29.215 Annex A.6.1.1.1).
    fn ongoing(&self, req: &IncomingRequest, imsi: &str) -> MessageBuilder {
        tracing::info!(%imsi, "TER while the UE's S9 session is being established");
        let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
        a.push(gx::experimental_result(
            crate::s9::ONGOING_SESSION_ESTABLISHMENT,
        ));
        a.copy_required_from(&req.msg, req.node.dictionary());
        a
    }

    async fn session_of(
        &self,
        id: u32,
        subsessions: &BTreeMap<u32, String>,
    ) -> Option<RoamingSession> {
        self.roaming_session(subsessions.get(&id)?).await
    }

    /// Releases subsession `id`'s Gx session (Gx RAR with Session-Release-Cause).
    async fn release(
        &self,
        sid: &str,
        id: u32,
        subsessions: &BTreeMap<u32, String>,
        cause: gxd::SessionReleaseCause,
    ) -> OwnedAvp {
        let Some(s) = self.session_of(id, subsessions).await else {
            return s9_client::raa_enforcement(
                id,
                Some(Outcome::tgpp(crate::s9::ERROR_SUBSESSION)),
                vec![],
            );
        };
        tracing::info!(s9 = sid, subsession = id, "home releases the session");
        let mut rar = self.client_rar(&s);
        rar.push(gxd::SESSION_RELEASE_CAUSE.with(cause));
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
        let Some(s) = self.session_of(id, subsessions).await else {
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
            .filter(|m| s9_client::is_gx_decision(m) || qos_rules::is_qos_rule_avp(m.key()))
            .filter(|m| m.key() != gxd::ONLINE.key() && m.key() != gxd::OFFLINE.key())
            .collect();
        let had_rules = members.iter().any(|m| {
            m.key() == gxd::CHARGING_RULE_INSTALL.key() || m.key() == gxd::QOS_RULE_INSTALL.key()
        });
        let (avps, auth, reports) = self.authorise_for(&s, &members);
        if let Some(r) = auth.lbo_refused {
            // Document 000: a grant the agreement refuses installs nothing; the home hears
            // why (the rules INACTIVE, the refusal's code).
            let info = crate::lbo::s9_refusal_info(id, &r.rules, &r.why);
            return (info, Some(r.why));
        }
        let nothing_left = had_rules && auth.installed.is_empty() && !auth.refused.is_empty();
        if nothing_left && auth.avps.is_empty() {
            // Everything the RAR asked was refused: nothing to tell the PCEF.
            let info = s9_client::raa_enforcement(id, Some(Outcome::tgpp(5142)), reports);
            return (info, None);
        }
        let mut rar = self.client_rar(&s);
        for avp in avps {
            rar.push(avp);
        }
        if let Some(h) = sdi
            .children()
            .flatten()
            .find(|c| c.key() == roaming::HOME_OCS_IDENTITY.key())
            .filter(|_| s.interface == Interface::Gx)
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
                // Charging-Rule-Report from a PCEF, QoS-Rule-Report from a BBERF.
                let mut r: Vec<OwnedAvp> = raa
                    .find_all(gxd::CHARGING_RULE_REPORT.key())
                    .chain(raa.find_all(gxd::QOS_RULE_REPORT.key()))
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
