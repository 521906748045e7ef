//! The PCRF's Rx side (TS 29.214): AAR and STR handling, session binding, and what AFs
//! are told — rule reports, IP-CAN changes, charging correlation, the loss of their IP-CAN
//! session.

use super::*;

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
    pub(super) fn rx_refusal(&self, req: &IncomingRequest, e: &RxError) -> MessageBuilder {
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

    pub(super) async fn rx_request(&self, req: IncomingRequest) -> MessageBuilder {
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

    pub(super) async fn rx_counted(
        &self,
        a: MessageBuilder,
        kind: &'static str,
        rc: u32,
    ) -> MessageBuilder {
        self.metrics.rx_request(kind, rc);
        if let Ok(n) = self.rx_sessions.count().await {
            self.metrics.set_rx_sessions(n);
        }
        a
    }

    /// Session binding (TS 29.214 §4.4.1, TS 29.213 §4.2): the Gx session of the UE's
    /// address — of the same APN and subscriber when the AAR names them.
    pub(super) async fn bind(&self, r: &AaRequest) -> Result<GxSession, RxError> {
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
        // A local Gx session first; else a roaming UE's subsession known through S9
        // (TS 29.215 §4.5: the home AF's rules then go to the V-PCRF by S9 RAR).
        let gx = match self.sessions.by_ue_ip(ip).await.map_err(store)? {
            Some(id) => self.sessions.get(id).await.map_err(store)?,
            None => self.s9_subsession_by_ip(ip).await.map_err(store)?,
        }
        .ok_or_else(|| not_available(format!("no IP-CAN session for UE address {ip}")))?;
        if let (Some(want), Some(have)) = (&r.apn, &gx.apn)
            && !want.eq_ignore_ascii_case(have)
        {
            return Err(not_available(format!(
                "UE address {ip} has an IP-CAN session on APN {have}, not {want}"
            )));
        }
        // TS 29.213 §8.2: the UE address binds the AF session to the IP-CAN session; the
        // user identity, when present, is a further criterion. A Subscription-Id of the kind
        // the Gx session is keyed by that names someone else is tolerated, as the field's
        // PCRFs do (Open5GS's P-CSCF sends a placeholder IMSI): the address is what the
        // P-CSCF saw the UE use. It is logged and counted; nothing else about the binding
        // changes.
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
            tracing::debug!(
                ue = %ip,
                session = %gx.subscriber,
                aar = %same_kind.join(", "),
                "AF session bound by UE address; its Subscription-Id names another subscriber"
            );
            self.metrics.rx_binding_deviation("subscriber-mismatch");
        }
        Ok(gx)
    }

    /// The AAA of a provisioning that reached the PCEF: 2001 with what TS 29.214 §5.6.2
    /// lets the PCRF tell of the IP-CAN session (RAT-Type).
    pub(super) fn aaa_ok(
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
    pub(super) fn provisioning_error(
        &self,
        out: &Result<PushOutcome, PushError>,
    ) -> Option<RxError> {
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
    pub(super) async fn aa_initial(&self, req: &IncomingRequest, r: AaRequest) -> Answered {
        // Local breakout (document 000): the OTT is authenticated before anything is bound.
        let ott = match self.lbo_admit(&req.msg).transpose() {
            Ok(o) => o,
            Err(e) => return self.lbo_refused(req, "af", &e),
        };
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
        let mut rules = rxw::derive_rules(&session, &self.cfg.rx);
        let lbo = match &ott {
            Some(o) => match self.lbo_prepare(o, &gx, &mut rules).await {
                Ok(t) => Some((o, t)),
                Err(e) => return self.lbo_refused(req, "af", &e),
            },
            None => None,
        };
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
                        install: rules.into_iter().map(Arc::new).collect(),
                        remove: Vec::new(),
                        rating_group: None,
                    },
                    &triggers,
                )
                .await;
            if let Some((ott, target)) = &lbo {
                if let Err(e) = self
                    .lbo_delivered(&out, target, &session, &ott.package)
                    .await
                {
                    let _ = self.rx_sessions.remove(session.session_id.clone()).await;
                    return self.lbo_refused(req, "af", &e);
                }
            } else if let Some(e) = self.provisioning_error(&out) {
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
    pub(super) async fn aa_update(
        &self,
        req: &IncomingRequest,
        mut s: RxSession,
        r: AaRequest,
    ) -> Answered {
        let Some(gx_id) = s.gx_session.clone() else {
            let e = RxError::tgpp(
                rxw::IP_CAN_SESSION_NOT_AVAILABLE,
                "the IP-CAN session of this AF session is gone",
                None,
            );
            return (self.rx_refusal(req, &e), e.code);
        };
        if let Some(e) = self.lbo_update_refusal(&req.msg, &gx_id, &s).await {
            return self.lbo_refused(req, "af", &e);
        }
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
                    install: rules.into_iter().map(Arc::new).collect(),
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
    pub(super) async fn st(&self, req: &IncomingRequest) -> Answered {
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
        self.lbo_unsteer(&s).await;
        (self.answer(req, 2001), 2001)
    }

    /// Changes a live Rx session optimistically (as [`Shared::amend`] does Gx sessions).
    pub(super) async fn amend_rx(
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
    pub(super) fn spawn<F, Fut>(&self, f: F)
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
    pub(super) async fn af_restarted(&self, peer: &str) {
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
    pub(super) fn ip_can_lost(&self, gx_ids: Vec<String>) {
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

    pub(super) async fn tell_loss(&self, s: RxSession) {
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
    pub(super) fn notify_rule_reports(&self, gx_id: &str, reports: Vec<gx::RuleReport>) {
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
    pub(super) fn notify_charging_correlation(&self, gx_id: &str) {
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
    pub(super) fn notify_ip_can_change(&self, gx_id: &str, rat_type: Option<i32>) {
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
