//! The H-PCRF's local-breakout side (document 000, issue 12 item 6), beside the Rx and S9
//! sides it hooks into:
//!
//! - an AAR marked for local breakout (LBO-Indicator LOCAL_BREAKOUT or LBO-OTT-Grant at
//!   command level, from the AF acting as H-AS) is authenticated first: the OTT's dynamic
//!   key under its initial key for the package ([`crate::lbo::check_ott`]; FIG. 4 step 405,
//!   which this project always runs). Then the AF session is bound as any other; the UE's
//!   subscriber must hold the package (SPR `lbo_packages`); each rule derived from the AAR is
//!   marked LOCAL_BREAKOUT and given a grant signed with the key of the agreement with the
//!   visited network of the UE's S9 session; the rules go to the V-PCRF by S9 RAR
//!   ([`Shared::gx_change`]), and the AAA carries the V-PCRF's answer: success, or its LBO
//!   refusal code unchanged (Experimental-Result, Vendor-Id 32473);
//! - variant FIG. 6 (V-Local-UP): when the AF session binds to a Gx session of one of our
//!   user planes in a visited network (`[[pcrf.lbo.local_up]]`), the rules are installed
//!   there by Gx RAR, unsigned (home controls it), and the V-PCRF is then asked by S9 RAR to
//!   have the visited PCEF steer the UE's traffic to that user plane (a signed rule carrying
//!   Traffic-Steering-Policy-Identifier-UL/DL, [`crate::lbo::LboKind::SteerToLocalUp`]);
//! - claim 9: LBO rules preset per package (`[[pcrf.lbo.preset]]`) go, signed, into the
//!   Subsession-Decision-Info of a new S9 subsession of a subscriber who holds the package,
//!   with no AF involved.

use super::*;
use crate::lbo::{self, LboKind, LboMark, LboRefusal, OttGrant};
use crate::spr::Subscriber;
use diameter_codec::dict::roaming;

/// Why an LBO request is refused.
#[derive(Debug)]
pub(super) enum LboError {
    /// A check of ours ([`LboRefusal`] has its code).
    Refused(LboRefusal),
    /// The visited network refused, with this LBO code.
    Visited(u32),
    /// Any other Rx refusal (no LBO offered, binding, PCEF failure).
    Rx(RxError),
}

/// Where an admitted LBO AAR's rules go.
#[derive(Debug)]
pub(super) enum LboTarget {
    /// The V-PCRF of the UE's S9 subsession (the rules are signed).
    Visited,
    /// Our user plane in the visited network (variant FIG. 6); then the UE's traffic is
    /// steered to it with this traffic steering policy, signed for this visited realm.
    LocalUp {
        /// Traffic-Steering-Policy-Identifier the visited PCEF knows.
        steering: String,
        /// The visited network's realm.
        visited_realm: String,
    },
}

/// Now, Unix seconds.
fn now_unix() -> i64 {
    (diameter_service::now_ms() / 1000) as i64
}

fn not_authorized(why: impl Into<String>) -> LboError {
    LboError::Rx(RxError::tgpp(
        rxw::REQUESTED_SERVICE_NOT_AUTHORIZED,
        why,
        None,
    ))
}

impl Shared {
    /// `None` when the AAR does not ask for local breakout; else the OTT's credential once
    /// checked, or why it is refused (before anything is bound or kept).
    pub(super) fn lbo_admit(&self, msg: &Message) -> Option<Result<OttGrant, LboError>> {
        let marked = msg.get(roaming::LBO_INDICATOR).and_then(Result::ok)
            == Some(roaming::LboIndicator::LOCAL_BREAKOUT);
        let ott = msg.find(roaming::LBO_OTT_GRANT.key());
        if !marked && ott.is_none() {
            return None;
        }
        let Some(cfg) = &self.cfg.lbo else {
            return Some(Err(not_authorized(
                "local breakout is not offered by this network",
            )));
        };
        let Some(ott) = ott else {
            return Some(Err(LboError::Refused(LboRefusal::GrantMissing(
                "local-breakout AAR without LBO-OTT-Grant".into(),
            ))));
        };
        Some(
            lbo::ott_grant_of(&ott)
                .map_err(LboRefusal::GrantMissing)
                .and_then(|g| {
                    lbo::check_ott(
                        &g,
                        cfg.ott_key(&g.ott, &g.package),
                        now_unix(),
                        i64::from(cfg.ott_key_max_lifetime),
                    )
                    .map(|()| g)
                })
                .map_err(LboError::Refused),
        )
    }

    /// For an admitted LBO AAR bound to `gx`: the subscriber's package checked, `rules`
    /// marked (and signed for the visited network), and where they go.
    pub(super) async fn lbo_prepare(
        &self,
        ott: &OttGrant,
        gx: &GxSession,
        rules: &mut [RuleDef],
    ) -> Result<LboTarget, LboError> {
        let Some(cfg) = &self.cfg.lbo else {
            return Err(not_authorized(
                "local breakout is not offered by this network",
            ));
        };
        let sub = self
            .spr
            .subscriber(vec![SubscriberKey::parse(&gx.subscriber)])
            .await
            .map_err(|e| {
                LboError::Rx(RxError {
                    code: 5012,
                    experimental: false,
                    message: e.to_string(),
                    failed: None,
                })
            })?;
        if !sub.is_some_and(|s| s.profile.lbo_packages.contains(&ott.package)) {
            return Err(LboError::Refused(LboRefusal::SubscriberNotSubscribed {
                subscriber: gx.subscriber.clone(),
                package: ott.package.clone(),
            }));
        }
        if rules.is_empty() {
            return Err(LboError::Refused(LboRefusal::GrantMissing(
                "the AAR names no flows to break out".into(),
            )));
        }
        if let Some(up) = cfg.local_up(&gx.pcef_host) {
            for r in rules.iter_mut() {
                r.lbo = Some(LboMark {
                    kind: LboKind::LocalBreakout,
                    grant: None,
                });
            }
            return Ok(LboTarget::LocalUp {
                steering: up.steering_policy.clone(),
                visited_realm: up.visited_realm.clone(),
            });
        }
        if s9::parse_subsession_key(&gx.session_id).is_none() {
            return Err(not_authorized(
                "the UE is not roaming: there is no visited network to break out in",
            ));
        }
        // A subsession's policy state names the V-PCRF as its PCEF.
        let key = cfg
            .partner_key(&gx.pcef_realm)
            .ok_or_else(|| LboError::Refused(LboRefusal::NoAgreement(gx.pcef_realm.clone())))?;
        let now = now_unix();
        for r in rules.iter_mut() {
            let g = lbo::issue_grant(cfg, key, r, &ott.package, format!("{}@{now}", r.name), now);
            r.lbo = Some(LboMark {
                kind: LboKind::LocalBreakout,
                grant: Some(g),
            });
        }
        Ok(LboTarget::Visited)
    }

    /// What the push of an LBO AAR's rules came to: the visited network's LBO refusal keeps
    /// its code; a rule the RAA reports INACTIVE is a refusal too (nothing half-installed
    /// is reported as success); other failures as for any AF session.
    pub(super) fn lbo_outcome(&self, out: &Result<PushOutcome, PushError>) -> Result<(), LboError> {
        if let Ok(o) = out {
            if lbo::reason_of_code(o.result_code).is_some() && o.result_code != 2001 {
                return Err(LboError::Visited(o.result_code));
            }
            if o.result_code == 2001 && o.failures.iter().any(|f| f.status == Some(1)) {
                return Err(not_authorized(
                    "the visited user plane did not install the local-breakout rules",
                ));
            }
        }
        match self.provisioning_error(out) {
            Some(e) => Err(LboError::Rx(e)),
            None => Ok(()),
        }
    }

    /// What an LBO AAR's push came to (`out`), and for variant FIG. 6 the steering that
    /// follows it; when steering fails, our user plane's rules are removed again.
    pub(super) async fn lbo_delivered(
        &self,
        out: &Result<PushOutcome, PushError>,
        target: &LboTarget,
        session: &RxSession,
        package: &str,
    ) -> Result<(), LboError> {
        self.lbo_outcome(out)?;
        if let LboTarget::LocalUp {
            steering,
            visited_realm,
        } = target
            && let Err(e) = self
                .lbo_steer(
                    session.ue_ip,
                    package,
                    steering,
                    visited_realm,
                    &session.session_id,
                )
                .await
        {
            if let Some(gx) = &session.gx_session {
                let undo = Change {
                    install: Vec::new(),
                    remove: session.rules.keys().cloned().collect(),
                    rating_group: None,
                };
                if let Err(u) = self.gx_change(gx, undo, &BTreeSet::new()).await {
                    tracing::warn!(gx = %gx, error = %u, "local user plane's LBO rules not removed");
                }
            }
            return Err(e);
        }
        tracing::info!(session = %session.session_id, package, target = ?target, "local breakout granted");
        self.metrics.lbo_grant("af", true, "ok");
        Ok(())
    }

    /// Variant FIG. 6, after our user plane installed the rules: the V-PCRF of the UE's S9
    /// subsession (found by its address) is asked to steer all the UE's traffic to that
    /// user plane, with a signed rule.
    pub(super) async fn lbo_steer(
        &self,
        ue_ip: std::net::IpAddr,
        package: &str,
        steering: &str,
        visited_realm: &str,
        af_session: &str,
    ) -> Result<(), LboError> {
        let Some(cfg) = &self.cfg.lbo else {
            return Err(not_authorized(
                "local breakout is not offered by this network",
            ));
        };
        let store = |e: StoreError| LboError::Rx(RxError::tgpp(4261, e.to_string(), None));
        let sub = self
            .s9_subsession_by_ip(ue_ip)
            .await
            .map_err(store)?
            .ok_or_else(|| {
                LboError::Rx(RxError::tgpp(
                    rxw::IP_CAN_SESSION_NOT_AVAILABLE,
                    format!("no S9 subsession of UE {ue_ip} to steer to the local user plane"),
                    None,
                ))
            })?;
        let key = cfg
            .partner_key(visited_realm)
            .ok_or_else(|| LboError::Refused(LboRefusal::NoAgreement(visited_realm.into())))?;
        let mut rule = steering_rule(af_session);
        let now = now_unix();
        let g = lbo::issue_grant(
            cfg,
            key,
            &rule,
            package,
            format!("{}@{now}", rule.name),
            now,
        );
        rule.lbo = Some(LboMark {
            kind: LboKind::SteerToLocalUp(steering.to_string()),
            grant: Some(g),
        });
        let out = self
            .gx_change(
                &sub.session_id,
                Change {
                    install: vec![Arc::new(rule)],
                    remove: Vec::new(),
                    rating_group: None,
                },
                &BTreeSet::new(),
            )
            .await;
        self.lbo_outcome(&out)
    }

    /// An AAR modifying AF session `s` (bound to `gx_id`) when local breakout is involved:
    /// refused, because its rules were signed as they are (a grant covers the flows) and a
    /// re-derived rule would lose its mark. The AF ends the session and asks again.
    pub(super) async fn lbo_update_refusal(
        &self,
        msg: &Message,
        gx_id: &str,
        s: &RxSession,
    ) -> Option<LboError> {
        let asks = msg.find(roaming::LBO_OTT_GRANT.key()).is_some()
            || msg.get(roaming::LBO_INDICATOR).and_then(Result::ok)
                == Some(roaming::LboIndicator::LOCAL_BREAKOUT);
        let bound = match self.sessions.get(gx_id.to_string()).await {
            Ok(Some(g)) => Some(g),
            _ => self.s9_subsession(gx_id).await.ok().flatten(),
        };
        let has_lbo = bound.is_some_and(|g| {
            s.rules
                .keys()
                .any(|n| g.dynamic_rules.get(n).is_some_and(|r| r.lbo.is_some()))
        });
        (asks || has_lbo).then(|| {
            not_authorized(
                "a local-breakout AF session cannot be modified: end it (STR) and send a new AAR",
            )
        })
    }

    /// An AF session ended (STR): the steering rule it had the V-PCRF install (variant
    /// FIG. 6), if any, is removed by S9 RAR; its rules on our user plane went with the
    /// AF session's own removal.
    pub(super) async fn lbo_unsteer(&self, s: &RxSession) {
        if self.cfg.lbo.is_none() {
            return;
        }
        let name = steering_rule(&s.session_id).name;
        let Ok(Some(sub)) = self.s9_subsession_by_ip(s.ue_ip).await else {
            return;
        };
        if !sub.dynamic_rules.contains_key(&name) {
            return;
        }
        let undo = Change {
            install: Vec::new(),
            remove: vec![name],
            rating_group: None,
        };
        match self
            .gx_change(&sub.session_id, undo, &BTreeSet::new())
            .await
        {
            Ok(o) => {
                tracing::info!(subsession = %sub.session_id, result_code = o.result_code, "steering to the local user plane removed")
            }
            Err(e) => {
                tracing::warn!(subsession = %sub.session_id, error = %e, "steering to the local user plane not removed")
            }
        }
    }

    /// The answer to an LBO AAR refused for `e`, counted.
    pub(super) fn lbo_refused(
        &self,
        req: &IncomingRequest,
        source: &'static str,
        e: &LboError,
    ) -> (MessageBuilder, u32) {
        let (a, code, reason) = match e {
            LboError::Refused(r) => {
                let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                a.push(r.result_avp());
                a.copy_required_from(&req.msg, req.node.dictionary());
                a.push(base::ERROR_MESSAGE.with(r.to_string()));
                (a, r.code().0, r.reason())
            }
            LboError::Visited(c) => {
                let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
                a.push(lbo::experimental_result(*c));
                a.copy_required_from(&req.msg, req.node.dictionary());
                let reason = lbo::reason_of_code(*c).unwrap_or("visited_refused");
                a.push(base::ERROR_MESSAGE.with(format!(
                    "the visited network refused the local breakout ({reason})"
                )));
                (a, *c, reason)
            }
            LboError::Rx(x) => {
                let reason = match x.code {
                    4261 => "no_answer",
                    rxw::IP_CAN_SESSION_NOT_AVAILABLE => "ip_can_session_not_available",
                    rxw::REQUESTED_SERVICE_NOT_AUTHORIZED => "not_authorized",
                    _ => "other",
                };
                (self.rx_refusal(req, x), x.code, reason)
            }
        };
        tracing::info!(result_code = code, reason, "local breakout refused");
        self.metrics.lbo_grant(source, false, reason);
        (a, code)
    }

    /// LBO rules preset for the packages `sub` holds (claim 9), signed for the visited
    /// network `visited_realm`; none when LBO is not configured, no preset applies, or there
    /// is no agreement with that network.
    pub(super) fn lbo_presets(&self, sub: &Subscriber, visited_realm: &str) -> Vec<RuleDef> {
        let Some(cfg) = &self.cfg.lbo else {
            return Vec::new();
        };
        let presets: Vec<_> = cfg
            .presets
            .iter()
            .filter(|p| sub.profile.lbo_packages.contains(&p.package))
            .collect();
        if presets.is_empty() {
            return Vec::new();
        }
        let Some(key) = cfg.partner_key(visited_realm) else {
            tracing::info!(
                visited = visited_realm,
                "no LBO agreement with this visited network: presets not pushed"
            );
            self.metrics.lbo_grant("preset", false, "no_agreement");
            return Vec::new();
        };
        let now = now_unix();
        presets
            .into_iter()
            .map(|p| {
                let mut r = preset_rule(p);
                let g = lbo::issue_grant(
                    cfg,
                    key,
                    &r,
                    &p.package,
                    format!("preset:{}@{now}", p.name),
                    now,
                );
                r.lbo = Some(LboMark {
                    kind: LboKind::LocalBreakout,
                    grant: Some(g),
                });
                self.metrics.lbo_grant("preset", true, "issued");
                r
            })
            .collect()
    }
}

/// The dynamic rule of a preset.
fn preset_rule(p: &lbo::LboPreset) -> RuleDef {
    RuleDef::with_flows(p.name.clone(), p.precedence, p.flows.clone())
}

/// The rule that steers all of a UE's traffic to our user plane (variant FIG. 6), before
/// every other rule (precedence 1), named after the AF session that asked for it.
fn steering_rule(af_session: &str) -> RuleDef {
    let mut r = preset_rule(&lbo::LboPreset {
        package: String::new(),
        name: format!(
            "lbo-steer-{}",
            rxw::rule_name(af_session, 0).trim_start_matches("rx-")
        ),
        precedence: Some(1),
        flows: vec![crate::spr::Flow {
            description: "permit out ip from any to any".into(),
            direction: crate::spr::FlowDirection::Bidirectional,
        }],
    });
    r.lbo = None;
    r
}
