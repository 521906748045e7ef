//! The PCRF's S9 side, home role (TS 29.215): a V-PCRF's S9 session for a roaming UE,
//! its subsessions (one per Gx or Gxx session at the visited network) given PCC rules,
//! event triggers, QoS and the home OCS; later changes pushed by S9 RAR; S9 only from
//! configured roaming partners.

use super::*;
use crate::s9::{Enforcement, Operation, S9Request};
use crate::session::S9Subsession;
use crate::spr::Subscriber;

/// What a CCR's Subsession-Enforcement-Infos came to.
#[derive(Default)]
struct Applied {
    /// Per Subsession-Enforcement-Info, in order.
    results: Vec<SubsessionResult>,
    /// Subsession keys that ended.
    ended: Vec<String>,
    /// Charging-Rule-Reports per subsession key (told to the AFs concerned).
    reports: Vec<(String, Vec<gx::RuleReport>)>,
    /// Subsessions that reported an IP-CAN change (RAT_CHANGE, IP-CAN_CHANGE), with the
    /// RAT now.
    ip_can_changes: Vec<(String, Option<i32>)>,
}

/// What one Subsession-Enforcement-Info of a CCR came to.
struct SubsessionResult {
    /// The Subsession-Decision-Info to answer with, when there is one.
    info: Option<OwnedAvp>,
    /// Whether the subsession was refused (DIAMETER_ERROR_SUBSESSION).
    refused: bool,
}

impl Shared {
    /// The roaming partner check (TS 29.213 §4.5.2: the H-PCRF serves S9 "based on the
    /// roaming agreements"; DESIGN.md: S9 peers filtered by Origin-Realm and peer
    /// identity): `None` when the request's Origin-Realm is a configured partner's and the
    /// peer it arrived from is one of that partner's peers; else why not.
    fn not_a_partner(&self, req: &IncomingRequest) -> Option<String> {
        let realm = req
            .msg
            .get(base::ORIGIN_REALM)
            .and_then(Result::ok)
            .unwrap_or_default();
        let peer = req
            .peer_info()
            .map_or_else(|| req.peer.clone(), |p| p.origin_host.clone());
        let partners = &self.cfg.roaming_partners;
        if partners.iter().any(|p| p.admits(realm, &peer)) {
            return None;
        }
        Some(
            if partners.iter().any(|p| p.realm.eq_ignore_ascii_case(realm)) {
                format!("S9 from realm {realm} is not accepted through peer {peer}")
            } else {
                format!("realm {realm} is not a roaming partner of this network")
            },
        )
    }

    pub(super) async fn s9_request(&self, req: IncomingRequest) -> MessageBuilder {
        // Only CCR is served on S9 at the home PCRF (TS 29.215 §5.6: RAR and TER go the
        // other way); RFC 6733 §7.1.3 for anything else.
        if req.msg.header().command_code != diameter_codec::dict::s9::CMD_CREDIT_CONTROL {
            self.metrics.s9_ccr("invalid", 3001);
            return self.answer(&req, 3001);
        }
        // Refused before anything is read or kept. DIAMETER_AUTHORIZATION_REJECTED (5003,
        // RFC 6733 §7.1.5): the request is well formed and reached the right server, which
        // will not serve its sender. Not 3010 DIAMETER_UNKNOWN_PEER: RFC 6733 §7.1.3 defines
        // that for a CER from an unknown peer, and the peer here may be a partner's DRA that
        // also relays others; TS 29.215 has no code of its own for this.
        if let Some(why) = self.not_a_partner(&req) {
            tracing::warn!(peer = %req.peer, reason = %why, "S9 refused");
            self.metrics.s9_ccr("refused", 5003);
            let mut a = self.answer(&req, 5003);
            a.push(base::ERROR_MESSAGE.with(why));
            return a;
        }
        let r = match S9Request::read(&req.msg) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.s9_ccr("invalid", e.result_code);
                let mut a = self.answer(&req, e.result_code);
                a.push(base::ERROR_MESSAGE.with(e.message));
                return a;
            }
        };
        let span = tracing::debug_span!(
            "s9",
            session = %r.session_id,
            vpcrf = %r.origin_host,
            kind = r.request_type.as_str(),
            number = r.request_number
        );
        if let Some(osi) = r.origin_state
            && origin_state_changed(&self.s9_origin_states, &r.origin_host, osi)
        {
            self.vpcrf_restarted(&r.origin_host).await;
        }
        let (a, rc) = async {
            match r.request_type {
                RequestType::Initial => self.s9_initial(&req, &r).await,
                RequestType::Update => self.s9_update(&req, &r).await,
                RequestType::Termination => self.s9_terminate(&req, &r).await,
                // S9 sessions are session based like Gx (TS 29.215 §5.6.2 uses INITIAL,
                // UPDATE, TERMINATION): RFC 6733 §7.1.5 5004.
                RequestType::Event => {
                    let mut a = self.answer(&req, 5004);
                    a.push(base::ERROR_MESSAGE.with("EVENT_REQUEST is not used on S9"));
                    (a, 5004)
                }
            }
        }
        .instrument(span)
        .await;
        self.metrics.s9_ccr(r.request_type.as_str(), rc);
        if let Ok(n) = self.s9_sessions.count().await {
            self.metrics.set_s9_sessions(n);
        }
        a
    }

    /// A new subsession (Subsession-Operation ESTABLISHMENT, TS 29.215 §4.5.1): the
    /// subscriber's PCC rules, QoS and event triggers decided as for a Gx CCR-I
    /// ([`policy::establish`]), on the subsession's own address, APN and RAT.
    fn establish_subsession(
        &self,
        s: &S9Session,
        sub: &Subscriber,
        e: &Enforcement,
    ) -> (S9Subsession, OwnedAvp, Decision) {
        let mut decision = policy::establish(
            sub,
            &s.subscriber,
            &self.cfg,
            &self.policies,
            Requested {
                apn_ambr: e.requested_ambr,
            },
        );
        // Claim 9 of document 000: LBO rules preset per package, with no AF.
        decision.install.extend(
            self.lbo_presets(sub, &s.vpcrf_realm)
                .into_iter()
                .map(Arc::new),
        );
        let mut policy_state = GxSession {
            session_id: s9::subsession_key(&s.session_id, e.id),
            pcef_host: s.vpcrf_host.clone(),
            pcef_realm: s.vpcrf_realm.clone(),
            subscriber: s.subscriber.clone(),
            ue_ip: e.ue_ip,
            apn: e.apn.clone(),
            rat_type: e.rat_type,
            user_location: e.user_location.as_deref().map(hex_of),
            last_request_number: s.last_request_number,
            dynamic_rules: Default::default(),
            predefined_rules: Default::default(),
            rule_bases: Default::default(),
            event_triggers: Default::default(),
            online: false,
            offline: false,
            features: BTreeMap::new(),
            failures: Vec::new(),
            charging_id: None,
            charging_address: None,
            version: 0,
        };
        decision.apply(&mut policy_state);
        let mut extra = Vec::new();
        // The home OCS by identity (our vendor AVP; the standard Charging-Information with
        // its URIs is at command level of the CCA).
        if policy_state.online
            && let Some(h) = s9::home_ocs_identity(&self.cfg.charging)
        {
            extra.push(h);
        }
        let info = s9::decision_info(e.id, &decision, false, extra);
        let subsession = S9Subsession {
            id: e.id,
            policy: policy_state,
            client_sessions: e.client_sessions.clone(),
        };
        (subsession, info, decision)
    }

    /// A modification of a live subsession (TS 29.215 §4.5.2): rule reports recorded, the
    /// reported RAT, location and address kept, the event policies they trigger decided
    /// ([`policy::on_report`]). The Subsession-Decision-Info carries the rule changes.
    async fn modify_subsession(
        &self,
        sub: &mut S9Subsession,
        e: &Enforcement,
    ) -> (Option<OwnedAvp>, Vec<RuleFailure>, Decision) {
        let failures = apply_reports(&mut sub.policy, &e.rule_reports);
        if e.rat_type.is_some() {
            sub.policy.rat_type = e.rat_type;
        }
        if let Some(l) = &e.user_location {
            sub.policy.user_location = Some(hex_of(l));
        }
        if e.ue_ip.is_some() {
            sub.policy.ue_ip = e.ue_ip;
        }
        sub.client_sessions
            .extend(e.client_sessions.iter().cloned());
        let report = Report {
            events: e.event_triggers.clone(),
            rat_type: sub.policy.rat_type,
        };
        let triggered = policy::triggered(&sub.policy, &report, &self.policies);
        let mut rules = BTreeMap::new();
        for name in triggered.iter().flat_map(|p| &p.install) {
            if let Ok(Some(def)) = self.spr.rule(name.clone()).await {
                rules.insert(name.clone(), def);
            }
        }
        let limits = self.limits_of(&sub.policy.subscriber).await;
        let decision = policy::on_report(&sub.policy, &report, &self.policies, &rules, &limits);
        decision.apply(&mut sub.policy);
        let info =
            (!decision.is_empty()).then(|| s9::decision_info(e.id, &decision, false, vec![]));
        (info, failures, decision)
    }

    /// Applies a CCR's Subsession-Enforcement-Infos to `s`: establishments, modifications,
    /// terminations.
    async fn apply_enforcements(
        &self,
        s: &mut S9Session,
        sub: Option<&Subscriber>,
        list: &[Enforcement],
        initial: bool,
    ) -> Applied {
        let mut out = Applied::default();
        for e in list {
            // In a CCR-I every subsession is new; elsewhere an absent operation modifies.
            let op = e.operation.unwrap_or(if initial {
                Operation::Establishment
            } else {
                Operation::Modification
            });
            let exists = s.subsessions.contains_key(&e.id);
            let refuse = |why: &str| {
                tracing::info!(subsession = e.id, reason = why, "subsession refused");
                SubsessionResult {
                    info: Some(s9::refusal_info(e.id, s9::ERROR_SUBSESSION, true)),
                    refused: true,
                }
            };
            match op {
                Operation::Establishment => {
                    let Some(sub) = sub.filter(|_| !exists) else {
                        out.results.push(refuse(if exists {
                            "Subsession-Id already in use"
                        } else {
                            "no subscriber profile"
                        }));
                        continue;
                    };
                    let (new, info, d) = self.establish_subsession(s, sub, e);
                    tracing::info!(
                        subsession = e.id,
                        ue_ip = ?new.policy.ue_ip,
                        apn = ?new.policy.apn,
                        rules = new.policy.rule_count(),
                        "S9 subsession established"
                    );
                    self.metrics.installed(
                        d.install.len(),
                        d.activate.len(),
                        d.activate_bases.len(),
                    );
                    s.subsessions.insert(e.id, new);
                    out.results.push(SubsessionResult {
                        info: Some(info),
                        refused: false,
                    });
                }
                Operation::Modification => {
                    let Some(cur) = s.subsessions.get_mut(&e.id) else {
                        out.results.push(refuse("no such subsession to modify"));
                        continue;
                    };
                    let (info, failures, d) = self.modify_subsession(cur, e).await;
                    self.log_failures(&cur.policy.session_id, &failures);
                    if !e.rule_reports.is_empty() {
                        out.reports
                            .push((cur.policy.session_id.clone(), e.rule_reports.clone()));
                    }
                    // RAT_CHANGE (2) and IP-CAN_CHANGE (7) as on Gx: AFs subscribed to
                    // IP-CAN_CHANGE hear of it.
                    if e.event_triggers.iter().any(|&t| t == 2 || t == 7) {
                        out.ip_can_changes
                            .push((cur.policy.session_id.clone(), cur.policy.rat_type));
                    }
                    self.metrics.installed(d.install.len(), d.activate.len(), 0);
                    out.results.push(SubsessionResult {
                        info,
                        refused: false,
                    });
                }
                Operation::Termination => {
                    let Some(mut gone) = s.subsessions.remove(&e.id) else {
                        out.results.push(refuse("no such subsession to terminate"));
                        continue;
                    };
                    let failures = apply_reports(&mut gone.policy, &e.rule_reports);
                    self.log_failures(&gone.policy.session_id, &failures);
                    tracing::info!(
                        subsession = e.id,
                        client_sessions = ?e.client_sessions,
                        "S9 subsession terminated"
                    );
                    out.ended.push(gone.policy.session_id);
                    out.results.push(SubsessionResult {
                        info: None,
                        refused: false,
                    });
                }
            }
        }
        out
    }

    /// The CCA of a CCR whose subsessions came to `results`: 2001 with their
    /// Subsession-Decision-Infos, or, when every subsession named was refused,
    /// DIAMETER_ERROR_SUBSESSION (5470) at command level too (this project's reading of
    /// TS 29.215 §5.5.3; the per-subsession codes say which).
    fn s9_answer(
        &self,
        req: &IncomingRequest,
        results: Vec<SubsessionResult>,
    ) -> (MessageBuilder, u32) {
        let all_refused = !results.is_empty() && results.iter().all(|r| r.refused);
        let (mut a, rc) = if all_refused {
            (
                self.experimental(req, s9::ERROR_SUBSESSION),
                s9::ERROR_SUBSESSION,
            )
        } else {
            (self.answer(req, 2001), 2001)
        };
        for r in results {
            if let Some(i) = r.info {
                a.push(i);
            }
        }
        (a, rc)
    }

    /// S9 CCR-I (TS 29.215 §4.5.1): the roaming subscriber looked up in the SPR, the S9
    /// session kept, each subsession decided; the home OCS named in Charging-Information
    /// (TS 29.215 §5.6.3) for a subscriber with online or offline charging.
    async fn s9_initial(&self, req: &IncomingRequest, r: &S9Request) -> (MessageBuilder, u32) {
        let sub = match self.spr.subscriber(r.subscribers.clone()).await {
            Ok(s) => s,
            Err(e) => return self.store_failed(req, &e),
        };
        let Some(sub) = sub else {
            let ids: Vec<String> = r.subscribers.iter().map(SubscriberKey::as_key).collect();
            tracing::info!(subscription_ids = ?ids, "S9: unknown subscriber");
            let mut a = self.experimental(req, gx::USER_UNKNOWN);
            a.push(base::ERROR_MESSAGE.with(if ids.is_empty() {
                "no Subscription-Id (IMSI, E.164 or NAI) in the S9 request".to_string()
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
        let mut s = S9Session {
            session_id: r.session_id.clone(),
            vpcrf_host: r.origin_host.clone(),
            vpcrf_realm: r.origin_realm.clone(),
            subscriber: key.clone(),
            last_request_number: r.request_number,
            subsessions: BTreeMap::new(),
            version: 0,
        };
        let results = self
            .apply_enforcements(&mut s, Some(&sub), &r.subsessions, true)
            .await
            .results;
        match self.s9_sessions.put(s.clone()).await {
            Ok(Some(old)) => {
                tracing::info!("S9 CCR-I for a live session: its state replaced");
                self.ip_can_lost(
                    old.subsessions
                        .values()
                        .map(|x| x.policy.session_id.clone())
                        .collect(),
                );
            }
            Ok(None) => {}
            Err(e) => return self.store_failed(req, &e),
        }
        tracing::info!(
            subscriber = %key,
            vpcrf = %s.vpcrf_host,
            subsessions = s.subsessions.len(),
            "S9 session established"
        );
        let (mut a, rc) = self.s9_answer(req, results);
        // TS 29.215 §5.4.1 / TS 29.229 §7.2.1: the features both support, for the life of
        // the S9 session.
        let agreed = gx::agree_features(&self.cfg.s9_supported_features, &r.features);
        for f in gx::supported_features(&agreed) {
            a.push(f);
        }
        if let Some(ci) =
            gx::charging_information(&self.cfg.charging, sub.profile.online, sub.profile.offline)
        {
            a.push(ci);
        }
        (a, rc)
    }

    /// S9 CCR-U (TS 29.215 §4.5.2): subsessions established, modified or terminated
    /// (Subsession-Operation), decided on the session as read and written only over it.
    async fn s9_update(&self, req: &IncomingRequest, r: &S9Request) -> (MessageBuilder, u32) {
        for _ in 0..ATTEMPTS {
            let mut s = match self.s9_sessions.get(r.session_id.clone()).await {
                Ok(Some(s)) => s,
                // RFC 6733 §7.1.5.
                Ok(None) => return (self.answer(req, 5002), 5002),
                Err(e) => return self.store_failed(req, &e),
            };
            s.last_request_number = s.last_request_number.max(r.request_number);
            let establishes = r
                .subsessions
                .iter()
                .any(|e| e.operation == Some(Operation::Establishment));
            let sub = if establishes {
                match self
                    .spr
                    .subscriber(vec![SubscriberKey::parse(&s.subscriber)])
                    .await
                {
                    Ok(x) => x,
                    Err(e) => return self.store_failed(req, &e),
                }
            } else {
                None
            };
            let applied = self
                .apply_enforcements(&mut s, sub.as_deref(), &r.subsessions, false)
                .await;
            match self.s9_sessions.replace(s).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return self.store_failed(req, &e),
            }
            for (key, rep) in applied.reports {
                self.notify_rule_reports(&key, rep);
            }
            for (key, rat) in applied.ip_can_changes {
                self.notify_ip_can_change(&key, rat);
            }
            self.ip_can_lost(applied.ended);
            return self.s9_answer(req, applied.results);
        }
        self.store_failed(
            req,
            &StoreError(format!("S9 session changed under {ATTEMPTS} attempts")),
        )
    }

    /// S9 CCR-T (TS 29.215 §4.5.3): the S9 session ends with every subsession left; AF
    /// sessions bound to them are told.
    async fn s9_terminate(&self, req: &IncomingRequest, r: &S9Request) -> (MessageBuilder, u32) {
        match self.s9_sessions.remove(r.session_id.clone()).await {
            Ok(Some(s)) => {
                tracing::info!(
                    subscriber = %s.subscriber,
                    subsessions = s.subsessions.len(),
                    client_sessions = ?r.client_sessions,
                    "S9 session terminated"
                );
                self.metrics.s9_released("termination", 1);
                self.ip_can_lost(
                    s.subsessions
                        .into_values()
                        .map(|x| x.policy.session_id)
                        .collect(),
                );
                (self.answer(req, 2001), 2001)
            }
            Ok(None) => (self.answer(req, 5002), 5002),
            Err(e) => self.store_failed(req, &e),
        }
    }

    /// RFC 6733 §8.16: a V-PCRF that restarted lost its S9 sessions; so does the home PCRF,
    /// and the AF sessions bound to their subsessions are told.
    pub(super) async fn vpcrf_restarted(&self, peer: &str) {
        match self.s9_sessions.remove_by_vpcrf(peer.to_string()).await {
            Ok(gone) if gone.is_empty() => {}
            Ok(gone) => {
                tracing::info!(%peer, sessions = gone.len(), "V-PCRF restarted: its S9 sessions removed");
                self.metrics.s9_released("vpcrf_restart", gone.len());
                if let Ok(n) = self.s9_sessions.count().await {
                    self.metrics.set_s9_sessions(n);
                }
                self.ip_can_lost(
                    gone.into_iter()
                        .flat_map(|s| s.subsessions.into_values())
                        .map(|x| x.policy.session_id)
                        .collect(),
                );
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "removing a restarted V-PCRF's S9 sessions")
            }
        }
    }

    /// The policy state of the subsession a [`s9::subsession_key`] names.
    pub(super) async fn s9_subsession(&self, key: &str) -> Result<Option<GxSession>, StoreError> {
        let Some((sid, n)) = s9::parse_subsession_key(key) else {
            return Ok(None);
        };
        Ok(self
            .s9_sessions
            .get(sid.to_string())
            .await?
            .and_then(|mut s| s.subsessions.remove(&n))
            .map(|x| x.policy))
    }

    /// The subsession holding UE address `ip` (Rx binding for a roaming UE whose IP-CAN
    /// session the home PCRF knows through S9).
    pub(super) async fn s9_subsession_by_ip(
        &self,
        ip: std::net::IpAddr,
    ) -> Result<Option<GxSession>, StoreError> {
        match self.s9_sessions.by_ue_ip(ip).await? {
            Some((sid, n)) => self.s9_subsession(&s9::subsession_key(&sid, n)).await,
            None => Ok(None),
        }
    }

    /// Changes a live S9 session optimistically (as [`Shared::amend`] does Gx sessions).
    async fn amend_s9<T>(
        &self,
        session_id: &str,
        f: impl Fn(&mut S9Session) -> T,
    ) -> Result<Option<(S9Session, T)>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(mut s) = self.s9_sessions.get(session_id.to_string()).await? else {
                return Ok(None);
            };
            let out = f(&mut s);
            if self.s9_sessions.replace(s.clone()).await? {
                return Ok(Some((s, out)));
            }
        }
        Err(StoreError(format!(
            "S9 session {session_id} changed under {ATTEMPTS} attempts"
        )))
    }

    /// An operator's push to an S9 session: to subsession `only`, or to every subsession.
    pub(super) async fn push_s9(
        &self,
        session_id: &str,
        only: Option<u32>,
        change: &PolicyChange,
    ) -> Result<Vec<PushOutcome>, PushError> {
        let s = self
            .s9_sessions
            .get(session_id.to_string())
            .await?
            .ok_or_else(|| PushError::UnknownSession(session_id.to_string()))?;
        let ids: Vec<u32> = match only {
            Some(n) if s.subsessions.contains_key(&n) => vec![n],
            Some(n) => {
                return Err(PushError::UnknownSession(s9::subsession_key(session_id, n)));
            }
            None => s.subsessions.keys().copied().collect(),
        };
        let mut install: Vec<Arc<RuleDef>> = Vec::with_capacity(change.install.len());
        for name in &change.install {
            install.push(
                self.spr
                    .rule(name.clone())
                    .await?
                    .ok_or_else(|| PushError::UnknownRule(name.clone()))?,
            );
        }
        let changes: Vec<(u32, Change)> = ids
            .into_iter()
            .map(|n| {
                (
                    n,
                    Change {
                        install: install.clone(),
                        remove: change.remove.clone(),
                        rating_group: change.rating_group,
                    },
                )
            })
            .collect();
        self.s9_change(session_id, &changes, &BTreeSet::new()).await
    }

    /// Sends an S9 RAR (TS 29.215 §4.5.2, §5.6.4) carrying, per subsession, the decision of
    /// its change (capped by the subscriber's limits, `triggers` added to its Event-Triggers
    /// when it lacks any) in a Subsession-Decision-Info. The RAA's result applies to every
    /// subsession unless its Subsession-Enforcement-Info carries one of its own (TS 29.215
    /// §5.3.2); accepted decisions and rule reports are recorded, the AFs concerned told;
    /// an S9 session the V-PCRF no longer knows (5002) is forgotten.
    pub(super) async fn s9_change(
        &self,
        session_id: &str,
        changes: &[(u32, Change)],
        triggers: &BTreeSet<i32>,
    ) -> Result<Vec<PushOutcome>, PushError> {
        let s = self
            .s9_sessions
            .get(session_id.to_string())
            .await?
            .ok_or_else(|| PushError::UnknownSession(session_id.to_string()))?;
        let limits = self.limits_of(&s.subscriber).await;
        let mut decisions: Vec<(u32, Decision)> = Vec::with_capacity(changes.len());
        for (n, c) in changes {
            let Some(sub) = s.subsessions.get(n) else {
                return Err(PushError::UnknownSession(s9::subsession_key(
                    session_id, *n,
                )));
            };
            let mut d = policy::decide(&sub.policy, std::slice::from_ref(c), &limits);
            if !triggers.is_subset(&sub.policy.event_triggers) {
                d.event_triggers =
                    Some(sub.policy.event_triggers.union(triggers).copied().collect());
            }
            decisions.push((*n, d));
        }
        let infos = decisions
            .iter()
            .map(|(n, d)| s9::decision_info(*n, d, true, vec![]))
            .collect();
        let rar = s9::rar(
            self.node.identity(),
            &s.session_id,
            &s.vpcrf_host,
            &s.vpcrf_realm,
            infos,
            None,
        );
        let answer = self.node.request(rar).await;
        self.metrics
            .s9_rar(answer.as_ref().ok().and_then(result_of));
        let answer = answer?;
        let rc = result_of(&answer).unwrap_or(0);
        let per_sub: BTreeMap<u32, Enforcement> = s9::enforcements_of(&answer)
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        if rc == 5002 {
            tracing::info!(
                session = session_id,
                "V-PCRF no longer knows the S9 session"
            );
            if let Some(gone) = self.s9_sessions.remove(session_id.to_string()).await? {
                self.metrics.s9_released("unknown_at_vpcrf", 1);
                self.ip_can_lost(
                    gone.subsessions
                        .into_values()
                        .map(|x| x.policy.session_id)
                        .collect(),
                );
            }
            if let Ok(n) = self.s9_sessions.count().await {
                self.metrics.set_s9_sessions(n);
            }
        }
        let accepted = |n: u32| {
            rc == 2001
                && per_sub
                    .get(&n)
                    .and_then(|e| e.result_code)
                    .is_none_or(|c| c == 2001)
        };
        let recorded = if rc == 5002 {
            None
        } else {
            self.amend_s9(session_id, |cur| {
                let mut failures = BTreeMap::new();
                for (n, d) in &decisions {
                    let Some(sub) = cur.subsessions.get_mut(n) else {
                        continue;
                    };
                    if accepted(*n) {
                        d.apply(&mut sub.policy);
                    }
                    let reports = per_sub
                        .get(n)
                        .map(|e| e.rule_reports.as_slice())
                        .unwrap_or(&[]);
                    failures.insert(*n, apply_reports(&mut sub.policy, reports));
                }
                failures
            })
            .await?
        };
        let mut out = Vec::with_capacity(decisions.len());
        for (n, d) in &decisions {
            let key = s9::subsession_key(session_id, *n);
            let failures = recorded
                .as_ref()
                .and_then(|(_, f)| f.get(n).cloned())
                .unwrap_or_default();
            self.log_failures(&key, &failures);
            if let Some(e) = per_sub.get(n)
                && !e.rule_reports.is_empty()
            {
                self.notify_rule_reports(&key, e.rule_reports.clone());
            }
            let ok = accepted(*n);
            if ok {
                self.metrics.installed(d.install.len(), d.activate.len(), 0);
            }
            out.push(PushOutcome {
                session_id: session_id.to_string(),
                result_code: per_sub.get(n).and_then(|e| e.result_code).unwrap_or(rc),
                installed: if ok { d.installs() } else { 0 },
                removed: if ok { d.remove.len() } else { 0 },
                failures,
                subsession: Some(*n),
            });
        }
        tracing::info!(
            session = session_id,
            result_code = rc,
            subsessions = out.len(),
            "S9 policy pushed"
        );
        Ok(out)
    }

    /// See [`Pcrf::release_s9`].
    pub(super) async fn release_s9(
        &self,
        session_id: &str,
        subsession: Option<u32>,
        cause: i32,
    ) -> Result<u32, PushError> {
        let s = self
            .s9_sessions
            .get(session_id.to_string())
            .await?
            .ok_or_else(|| PushError::UnknownSession(session_id.to_string()))?;
        let (infos, command_cause) = match subsession {
            Some(n) if s.subsessions.contains_key(&n) => (
                vec![
                    diameter_codec::dict::s9::SUBSESSION_DECISION_INFO.with(vec![
                        diameter_codec::dict::s9::SUBSESSION_ID.with(n),
                        diameter_codec::dict::gx::SESSION_RELEASE_CAUSE
                            .with(diameter_codec::dict::gx::SessionReleaseCause(cause)),
                    ]),
                ],
                None,
            ),
            Some(n) => {
                return Err(PushError::UnknownSession(s9::subsession_key(session_id, n)));
            }
            None => (Vec::new(), Some(cause)),
        };
        let rar = s9::rar(
            self.node.identity(),
            &s.session_id,
            &s.vpcrf_host,
            &s.vpcrf_realm,
            infos,
            command_cause,
        );
        let answer = self.node.request(rar).await;
        self.metrics
            .s9_rar(answer.as_ref().ok().and_then(result_of));
        let rc = result_of(&answer?).unwrap_or(0);
        if rc == 5002
            && let Some(gone) = self.s9_sessions.remove(session_id.to_string()).await?
        {
            self.metrics.s9_released("unknown_at_vpcrf", 1);
            self.ip_can_lost(
                gone.subsessions
                    .into_values()
                    .map(|x| x.policy.session_id)
                    .collect(),
            );
        }
        Ok(rc)
    }

    /// TER (TS 29.215 §5.6.7) to a V-PCRF (or, for a binding deletion, its DRA).
    pub(super) async fn trigger_establishment(
        &self,
        vpcrf_host: &str,
        vpcrf_realm: &str,
        imsi: &str,
        apn: Option<&str>,
        dra_binding_deletion: bool,
    ) -> Result<u32, PushError> {
        let sid = self.node.session_ids().next_id();
        let ter = s9::ter(
            self.node.identity(),
            &sid,
            vpcrf_host,
            vpcrf_realm,
            imsi,
            apn,
            dra_binding_deletion,
        );
        let a = self.node.request(ter).await?;
        let rc = result_of(&a).unwrap_or(0);
        tracing::info!(vpcrf = vpcrf_host, %imsi, result_code = rc, "TER answered");
        Ok(rc)
    }
}
