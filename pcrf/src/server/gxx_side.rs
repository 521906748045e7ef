//! The PCRF's Gxx side (TS 29.212 chapter 4a): BBERF sessions linked to Gx sessions and
//! kept in step with their PCC rules as QoS rules.

use super::*;

/// Gxx (TS 29.212 chapter 4a): the BBERF's sessions, linked to the Gx session of the same
/// IP-CAN session, given the QoS rules of its PCC rules.
impl Shared {
    pub(super) async fn gxx_credit_control(&self, req: IncomingRequest) -> MessageBuilder {
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
    pub(super) async fn gx_of(
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
    pub(super) async fn gxx_initial(
        &self,
        req: &IncomingRequest,
        r: &GxRequest,
    ) -> (MessageBuilder, u32) {
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
    pub(super) async fn gxx_update(
        &self,
        req: &IncomingRequest,
        r: &GxRequest,
    ) -> (MessageBuilder, u32) {
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

    pub(super) async fn amend_gxx(
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
    pub(super) async fn gxx_push(&self, g: &GxxSession, qos: &QosDecision) {
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
    pub(super) fn mirror_to_gxx(&self, gx_id: &str, qos: QosDecision) {
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
    pub(super) fn link_waiting_gxx(&self, gx: &GxSession) {
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
    pub(super) async fn bberf_restarted(&self, peer: &str) {
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
