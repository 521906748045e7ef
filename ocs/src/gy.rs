//! Gy on the wire: a received CCR into a [`CcRequest`], a [`CcAnswer`] into the CCA, and the
//! RAR the OCS sends (RFC 4006 §3.1, §3.2, §5.5; TS 32.299 for the 3GPP members).

use crate::model::{
    CcAnswer, CcRequest, MsccAnswer, MsccRequest, RequestType, ServiceKey, SubscriptionId,
    SubscriptionType, Units, VisitedReport,
};
use diameter_codec::dict::{base, dcca, gy};
use diameter_codec::{AvpIter, Message, MessageBuilder, OwnedAvp, ResultCode};

/// Credit-Control application (RFC 4006 §1.3), used by Gy.
pub const APPLICATION_ID: u32 = dcca::APP_DIAMETER_CREDIT_CONTROL;

/// Why a CCR could not be read: the Result-Code to answer and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 5004 or 5005.
    pub result_code: ResultCode,
    /// Error-Message.
    pub message: String,
}

fn missing(what: &str) -> ParseError {
    ParseError {
        result_code: ResultCode::DIAMETER_MISSING_AVP,
        message: format!("{what} missing"),
    }
}

fn invalid(what: &str) -> ParseError {
    ParseError {
        result_code: ResultCode::DIAMETER_INVALID_AVP_VALUE,
        message: format!("{what} invalid"),
    }
}

/// Reads the members of a Granted-, Requested- or Used-Service-Unit.
fn units(children: AvpIter<'_>) -> Units {
    let mut u = Units::default();
    for a in children.flatten() {
        let k = a.key();
        if k == dcca::CC_TIME.key() {
            u.time = dcca::CC_TIME.decode(a.data).ok();
        } else if k == dcca::CC_TOTAL_OCTETS.key() {
            u.total_octets = dcca::CC_TOTAL_OCTETS.decode(a.data).ok();
        } else if k == dcca::CC_INPUT_OCTETS.key() {
            u.input_octets = dcca::CC_INPUT_OCTETS.decode(a.data).ok();
        } else if k == dcca::CC_OUTPUT_OCTETS.key() {
            u.output_octets = dcca::CC_OUTPUT_OCTETS.decode(a.data).ok();
        } else if k == dcca::CC_SERVICE_SPECIFIC_UNITS.key() {
            u.service_specific = dcca::CC_SERVICE_SPECIFIC_UNITS.decode(a.data).ok();
        }
    }
    u
}

fn mscc(children: AvpIter<'_>, visited: &mut Vec<VisitedReport>) -> MsccRequest {
    let mut m = MsccRequest::default();
    for a in children.flatten() {
        let k = a.key();
        if k == dcca::RATING_GROUP.key() {
            m.service.rating_group = dcca::RATING_GROUP.decode(a.data).ok();
        } else if k == dcca::SERVICE_IDENTIFIER.key() {
            // RFC 4006 §8.16 allows several; the first names the service here.
            if m.service.service_id.is_none() {
                m.service.service_id = dcca::SERVICE_IDENTIFIER.decode(a.data).ok();
            }
        } else if k == dcca::REQUESTED_SERVICE_UNIT.key() {
            m.requested = Some(units(a.children()));
        } else if k == dcca::USED_SERVICE_UNIT.key() {
            m.used
                .get_or_insert_with(Units::default)
                .add(&units(a.children()));
        } else if a.vendor != 0
            && let Some(r) = visited_report(&a)
        {
            visited.push(r);
        }
    }
    m
}

/// Reads a CCR. The node has validated it against the dictionary's grammar; what is checked
/// here is what the decision needs.
pub fn parse_ccr(msg: &Message) -> Result<CcRequest, ParseError> {
    let text = |v: Option<Result<&str, _>>, what: &str| -> Result<String, ParseError> {
        match v {
            None => Err(missing(what)),
            Some(Err(_)) => Err(invalid(what)),
            Some(Ok(s)) => Ok(s.to_string()),
        }
    };
    let session_id = text(msg.get(base::SESSION_ID), "Session-Id")?;
    let origin_host = text(msg.get(base::ORIGIN_HOST), "Origin-Host")?;
    let origin_realm = text(msg.get(base::ORIGIN_REALM), "Origin-Realm")?;
    let request_type = match msg.get(dcca::CC_REQUEST_TYPE) {
        None => return Err(missing("CC-Request-Type")),
        Some(Ok(t)) => RequestType::from_code(t.0).ok_or_else(|| invalid("CC-Request-Type"))?,
        Some(Err(_)) => return Err(invalid("CC-Request-Type")),
    };
    let request_number = match msg.get(dcca::CC_REQUEST_NUMBER) {
        None => return Err(missing("CC-Request-Number")),
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(invalid("CC-Request-Number")),
    };
    let mut req = CcRequest {
        session_id,
        origin_host,
        origin_realm,
        request_type,
        request_number,
        subscriptions: Vec::new(),
        requested_action: None,
        mscc: Vec::new(),
        single: None,
        visited: Vec::new(),
    };
    let mut single = MsccRequest::default();
    let mut single_units = false;
    for a in msg.avps().flatten() {
        let k = a.key();
        if k == dcca::SUBSCRIPTION_ID.key() {
            let mut kind = None;
            let mut data = None;
            for c in a.children().flatten() {
                if c.key() == dcca::SUBSCRIPTION_ID_TYPE.key() {
                    kind = dcca::SUBSCRIPTION_ID_TYPE
                        .decode(c.data)
                        .ok()
                        .and_then(|t| SubscriptionType::from_code(t.0));
                } else if c.key() == dcca::SUBSCRIPTION_ID_DATA.key() {
                    data = dcca::SUBSCRIPTION_ID_DATA
                        .decode(c.data)
                        .ok()
                        .map(str::to_string);
                }
            }
            if let (Some(kind), Some(data)) = (kind, data) {
                req.subscriptions.push(SubscriptionId { kind, data });
            }
        } else if k == dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key() {
            req.mscc.push(mscc(a.children(), &mut req.visited));
        } else if k == dcca::REQUESTED_ACTION.key() {
            req.requested_action = dcca::REQUESTED_ACTION.decode(a.data).ok().map(|v| v.0);
        } else if k == dcca::REQUESTED_SERVICE_UNIT.key() {
            single.requested = Some(units(a.children()));
            single_units = true;
        } else if k == dcca::USED_SERVICE_UNIT.key() {
            single
                .used
                .get_or_insert_with(Units::default)
                .add(&units(a.children()));
            single_units = true;
        } else if k == dcca::SERVICE_IDENTIFIER.key() {
            single.service.service_id = dcca::SERVICE_IDENTIFIER.decode(a.data).ok();
        } else if a.vendor != 0
            && let Some(r) = visited_report(&a)
        {
            // Visited-Credit-Decision or Locally-Absorbed-Usage from a visited OCS.
            req.visited.push(r);
        }
    }
    if single_units {
        req.single = Some(single);
    }
    Ok(req)
}

fn units_avp(
    def: diameter_codec::TypedAvp<diameter_codec::types::ty::Grouped>,
    u: &Units,
) -> OwnedAvp {
    let mut c = Vec::new();
    if let Some(v) = u.time {
        c.push(dcca::CC_TIME.with(v));
    }
    if let Some(v) = u.total_octets {
        c.push(dcca::CC_TOTAL_OCTETS.with(v));
    }
    if let Some(v) = u.input_octets {
        c.push(dcca::CC_INPUT_OCTETS.with(v));
    }
    if let Some(v) = u.output_octets {
        c.push(dcca::CC_OUTPUT_OCTETS.with(v));
    }
    if let Some(v) = u.service_specific {
        c.push(dcca::CC_SERVICE_SPECIFIC_UNITS.with(v));
    }
    def.with(c)
}

/// A Granted-Service-Unit.
pub fn granted_avp(u: &Units) -> OwnedAvp {
    units_avp(dcca::GRANTED_SERVICE_UNIT, u)
}

/// A Used-Service-Unit.
pub fn used_avp(u: &Units) -> OwnedAvp {
    units_avp(dcca::USED_SERVICE_UNIT, u)
}

/// A Requested-Service-Unit.
pub fn requested_avp(u: &Units) -> OwnedAvp {
    units_avp(dcca::REQUESTED_SERVICE_UNIT, u)
}

/// A Final-Unit-Indication (RFC 4006 §8.34).
pub fn fui_avp(f: &crate::model::FinalUnit) -> OwnedAvp {
    let mut fc = vec![dcca::FINAL_UNIT_ACTION.with(dcca::FinalUnitAction(f.action))];
    for r in &f.restrictions {
        fc.push(dcca::RESTRICTION_FILTER_RULE.with(r.clone()));
    }
    if let Some((t, addr)) = &f.redirect {
        fc.push(dcca::REDIRECT_SERVER.with(vec![
            dcca::REDIRECT_ADDRESS_TYPE.with(dcca::RedirectAddressType(*t)),
            dcca::REDIRECT_SERVER_ADDRESS.with(addr.clone()),
        ]));
    }
    dcca::FINAL_UNIT_INDICATION.with(fc)
}

/// One Multiple-Services-Credit-Control of a CCA, members in the order of RFC 4006 §8.16 and
/// TS 32.299 §7.1.9.
pub fn mscc_avp(m: &MsccAnswer) -> OwnedAvp {
    let mut c = Vec::new();
    if let Some(g) = &m.granted {
        c.push(granted_avp(g));
    }
    if let Some(si) = m.service.service_id {
        c.push(dcca::SERVICE_IDENTIFIER.with(si));
    }
    if let Some(rg) = m.service.rating_group {
        c.push(dcca::RATING_GROUP.with(rg));
    }
    if let Some(v) = m.validity_time {
        c.push(dcca::VALIDITY_TIME.with(v));
    }
    c.push(base::RESULT_CODE.with(m.result_code));
    if let Some(f) = &m.final_unit {
        c.push(fui_avp(f));
    }
    if let Some(v) = m.time_threshold {
        c.push(gy::TIME_QUOTA_THRESHOLD.with(v));
    }
    if let Some(v) = m.volume_threshold {
        c.push(gy::VOLUME_QUOTA_THRESHOLD.with(v));
    }
    if let Some(v) = m.unit_threshold {
        c.push(gy::UNIT_QUOTA_THRESHOLD.with(v));
    }
    if let Some(v) = m.quota_holding_time {
        c.push(gy::QUOTA_HOLDING_TIME.with(v));
    }
    if let Some(t) = &m.triggers {
        // TS 32.299 §7.2.225: a Trigger with no Trigger-Type turns every trigger off.
        c.push(
            gy::TRIGGER.with(
                t.iter()
                    .map(|v| gy::TRIGGER_TYPE.with(gy::TriggerType(*v)))
                    .collect::<Vec<_>>(),
            ),
        );
    }
    dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(c)
}

/// Adds `avp` unless the builder has an AVP of the same key already (the node may echo the
/// command's required AVPs itself).
fn ensure(b: &mut MessageBuilder, avp: OwnedAvp) {
    if b.find(avp.key()).is_none() {
        b.push(avp);
    }
}

/// The CCA for `answer`, built on `base` (the node's answer to the request: Session-Id,
/// Origin-Host, Origin-Realm and Result-Code already set).
pub fn encode_cca(mut b: MessageBuilder, answer: &CcAnswer) -> MessageBuilder {
    ensure(&mut b, base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    ensure(
        &mut b,
        dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(answer.request_type.code())),
    );
    ensure(&mut b, dcca::CC_REQUEST_NUMBER.with(answer.request_number));
    if let Some(m) = &answer.single {
        // RFC 4006 §3.2: [Granted-Service-Unit] [Validity-Time] [Final-Unit-Indication] at
        // command level.
        if let Some(g) = &m.granted {
            b.push(granted_avp(g));
        }
        if let Some(v) = m.validity_time {
            b.push(dcca::VALIDITY_TIME.with(v));
        }
        if let Some(f) = &m.final_unit {
            b.push(fui_avp(f));
        }
    }
    for m in &answer.mscc {
        b.push(mscc_avp(m));
    }
    if let Some(f) = answer.failure_handling {
        b.push(dcca::CREDIT_CONTROL_FAILURE_HANDLING.with(dcca::CreditControlFailureHandling(f)));
    }
    if let Some(e) = &answer.error_message {
        b.push(base::ERROR_MESSAGE.with(e.clone()));
    }
    b
}

/// A Re-Auth-Request for a credit-control session (RFC 4006 §5.5): AUTHORIZE_ONLY, to the
/// client that opened it.
pub fn rar(
    session_id: &str,
    origin: &diameter_codec::LocalIdentity,
    dest_host: &str,
    dest_realm: &str,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(base::CMD_RE_AUTH, APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(session_id.to_string()));
    b.push(base::ORIGIN_HOST.with(origin.host.clone()));
    b.push(base::ORIGIN_REALM.with(origin.realm.clone()));
    b.push(base::DESTINATION_REALM.with(dest_realm.to_string()));
    b.push(base::DESTINATION_HOST.with(dest_host.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    b.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
    b
}

/// A CCR as a Gy client sends it (tests, load tools, a visited OCS towards home).
#[derive(Debug, Clone)]
pub struct CcrSpec<'a> {
    /// Session-Id.
    pub session_id: &'a str,
    /// Our Origin-Host.
    pub origin_host: &'a str,
    /// Our Origin-Realm.
    pub origin_realm: &'a str,
    /// Destination-Realm.
    pub destination_realm: &'a str,
    /// CC-Request-Type.
    pub request_type: RequestType,
    /// CC-Request-Number.
    pub request_number: u32,
    /// Subscription-Id (INITIAL and EVENT).
    pub subscription: Option<&'a SubscriptionId>,
    /// MSCC per service: (service, requested, used).
    pub mscc: Vec<(ServiceKey, Option<Units>, Option<Units>)>,
}

impl CcrSpec<'_> {
    /// The CCR.
    pub fn build(&self) -> MessageBuilder {
        let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, APPLICATION_ID, true);
        b.push(base::SESSION_ID.with(self.session_id.to_string()));
        b.push(base::ORIGIN_HOST.with(self.origin_host.to_string()));
        b.push(base::ORIGIN_REALM.with(self.origin_realm.to_string()));
        b.push(base::DESTINATION_REALM.with(self.destination_realm.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
        b.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(self.request_type.code())));
        b.push(dcca::CC_REQUEST_NUMBER.with(self.request_number));
        if let Some(s) = self.subscription {
            b.push(dcca::SUBSCRIPTION_ID.with(vec![
                dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(s.kind.code())),
                dcca::SUBSCRIPTION_ID_DATA.with(s.data.clone()),
            ]));
        }
        if !self.mscc.is_empty() {
            b.push(
                dcca::MULTIPLE_SERVICES_INDICATOR
                    .with(dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED),
            );
        }
        for (svc, rsu, usu) in &self.mscc {
            let mut c = Vec::new();
            if let Some(r) = rsu {
                c.push(requested_avp(r));
            }
            if let Some(u) = usu {
                c.push(used_avp(u));
            }
            if let Some(si) = svc.service_id {
                c.push(dcca::SERVICE_IDENTIFIER.with(si));
            }
            if let Some(rg) = svc.rating_group {
                c.push(dcca::RATING_GROUP.with(rg));
            }
            b.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(c));
        }
        b
    }
}

fn u32_of(a: &diameter_codec::AvpRef<'_>) -> Option<u32> {
    a.data.try_into().ok().map(u32::from_be_bytes)
}

fn i32_of(a: &diameter_codec::AvpRef<'_>) -> Option<i32> {
    a.data.try_into().ok().map(i32::from_be_bytes)
}

/// Reads a Final-Unit-Indication (RFC 4006 §8.34).
fn final_unit(children: AvpIter<'_>) -> crate::model::FinalUnit {
    let mut f = crate::model::FinalUnit {
        action: 0,
        redirect: None,
        restrictions: Vec::new(),
    };
    for c in children.flatten() {
        let k = c.key();
        if k == dcca::FINAL_UNIT_ACTION.key() {
            f.action = i32_of(&c).unwrap_or(0);
        } else if k == dcca::RESTRICTION_FILTER_RULE.key() {
            f.restrictions
                .push(String::from_utf8_lossy(c.data).into_owned());
        } else if k == dcca::REDIRECT_SERVER.key() {
            let mut t = 0;
            let mut addr = String::new();
            for r in c.children().flatten() {
                if r.key() == dcca::REDIRECT_ADDRESS_TYPE.key() {
                    t = i32_of(&r).unwrap_or(0);
                } else if r.key() == dcca::REDIRECT_SERVER_ADDRESS.key() {
                    addr = String::from_utf8_lossy(r.data).into_owned();
                }
            }
            f.redirect = Some((t, addr));
        }
    }
    f
}

/// Trigger-Type values of a Trigger (TS 32.299 §7.2.225).
pub fn trigger_types(trigger: &diameter_codec::AvpRef<'_>) -> Vec<i32> {
    trigger
        .children()
        .flatten()
        .filter(|t| t.key() == gy::TRIGGER_TYPE.key())
        .filter_map(|t| i32_of(&t))
        .collect()
}

/// Reads the members of an answer's MSCC, or of a CCA's command level for
/// single-service credit control.
fn mscc_answer(children: AvpIter<'_>) -> MsccAnswer {
    let mut m = MsccAnswer::default();
    for a in children.flatten() {
        let k = a.key();
        if k == dcca::GRANTED_SERVICE_UNIT.key() {
            m.granted = Some(units(a.children()));
        } else if k == dcca::RATING_GROUP.key() {
            m.service.rating_group = u32_of(&a);
        } else if k == dcca::SERVICE_IDENTIFIER.key() {
            m.service.service_id = m.service.service_id.or(u32_of(&a));
        } else if k == base::RESULT_CODE.key() {
            m.result_code = u32_of(&a).unwrap_or(0);
        } else if k == dcca::VALIDITY_TIME.key() {
            m.validity_time = u32_of(&a);
        } else if k == dcca::FINAL_UNIT_INDICATION.key() {
            m.final_unit = Some(final_unit(a.children()));
        } else if k == gy::TIME_QUOTA_THRESHOLD.key() {
            m.time_threshold = u32_of(&a);
        } else if k == gy::VOLUME_QUOTA_THRESHOLD.key() {
            m.volume_threshold = u32_of(&a);
        } else if k == gy::UNIT_QUOTA_THRESHOLD.key() {
            m.unit_threshold = u32_of(&a);
        } else if k == gy::QUOTA_HOLDING_TIME.key() {
            m.quota_holding_time = u32_of(&a);
        } else if k == gy::TRIGGER.key() {
            // An empty Trigger is kept as `Some(vec![])`: it turns every trigger off.
            m.triggers
                .get_or_insert_with(Vec::new)
                .extend(trigger_types(&a));
        }
    }
    m
}

/// Reads a CCA as a Gy client (the visited OCS towards home): Result-Code, the MSCCs with
/// their grants, thresholds, triggers and final-unit indications, the command-level grant
/// of single-service credit control, Credit-Control-Failure-Handling and Error-Message.
pub fn parse_cca(msg: &Message) -> CcAnswer {
    let single = mscc_answer(msg.avps());
    let has_single = single.granted.is_some() || single.final_unit.is_some();
    CcAnswer {
        result_code: msg.get(base::RESULT_CODE).and_then(Result::ok).unwrap_or(0),
        request_type: msg
            .get(dcca::CC_REQUEST_TYPE)
            .and_then(Result::ok)
            .and_then(|t| RequestType::from_code(t.0))
            .unwrap_or(RequestType::Update),
        request_number: msg
            .get(dcca::CC_REQUEST_NUMBER)
            .and_then(Result::ok)
            .unwrap_or(0),
        mscc: msg
            .find_all(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
            .map(|a| mscc_answer(a.children()))
            .collect(),
        error_message: msg
            .get(base::ERROR_MESSAGE)
            .and_then(Result::ok)
            .map(str::to_string),
        single: has_single.then(|| MsccAnswer {
            service: ServiceKey::default(),
            triggers: None,
            ..single
        }),
        failure_handling: msg
            .get(dcca::CREDIT_CONTROL_FAILURE_HANDLING)
            .and_then(Result::ok)
            .map(|f| f.0),
    }
}

/// A Visited-Credit-Decision or Locally-Absorbed-Usage (our vendor AVPs,
/// dictionaries/roaming_vendor.toml codes 11 and 13).
fn visited_report(a: &diameter_codec::AvpRef<'_>) -> Option<VisitedReport> {
    use diameter_codec::dict::roaming;
    let k = a.key();
    if k == roaming::VISITED_CREDIT_DECISION.key() {
        let mut rating_group = None;
        let mut granted = None;
        let mut triggers = Vec::new();
        let mut final_unit_action = None;
        let mut reason = None;
        for c in a.children().flatten() {
            let ck = c.key();
            if ck == dcca::RATING_GROUP.key() {
                rating_group = u32_of(&c);
            } else if ck == dcca::GRANTED_SERVICE_UNIT.key() {
                granted = Some(units(c.children()));
            } else if ck == gy::TRIGGER_TYPE.key() {
                triggers.extend(i32_of(&c));
            } else if ck == dcca::FINAL_UNIT_ACTION.key() {
                final_unit_action = i32_of(&c);
            } else if ck == roaming::VISITED_DECISION_REASON.key() {
                reason = Some(String::from_utf8_lossy(c.data).into_owned());
            }
        }
        Some(VisitedReport::Decision {
            rating_group,
            granted,
            triggers,
            final_unit_action,
            reason,
        })
    } else if k == roaming::LOCALLY_ABSORBED_USAGE.key() {
        let mut rating_group = None;
        let mut used = Units::default();
        let mut requests = 0;
        for c in a.children().flatten() {
            let ck = c.key();
            if ck == dcca::RATING_GROUP.key() {
                rating_group = u32_of(&c);
            } else if ck == dcca::USED_SERVICE_UNIT.key() {
                used.add(&units(c.children()));
            } else if ck == roaming::ABSORBED_REQUEST_COUNT.key() {
                requests = u32_of(&c).unwrap_or(0);
            }
        }
        Some(VisitedReport::Absorbed {
            rating_group,
            used,
            requests,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FinalUnit, UnitKind};

    #[test]
    fn ccr_round_trip_and_cca_validates() {
        let sub = SubscriptionId {
            kind: SubscriptionType::Imsi,
            data: "001010000000001".into(),
        };
        let svc = ServiceKey {
            rating_group: Some(1),
            service_id: Some(7),
        };
        let spec = CcrSpec {
            session_id: "pcef;1;2",
            origin_host: "pcef.test",
            origin_realm: "test",
            destination_realm: "home.test",
            request_type: RequestType::Update,
            request_number: 3,
            subscription: Some(&sub),
            mscc: vec![(
                svc,
                Some(Units::default()),
                Some(Units::of(UnitKind::TotalOctets, 42)),
            )],
        };
        let msg = spec.build().ids(1, 2).build().unwrap();
        diameter_codec::validate(&msg).unwrap();
        let r = parse_ccr(&msg).unwrap();
        assert_eq!(r.request_type, RequestType::Update);
        assert_eq!(r.request_number, 3);
        assert_eq!(r.subscriptions, vec![sub]);
        assert_eq!(r.mscc[0].service, svc);
        assert_eq!(r.mscc[0].used.unwrap().total_octets, Some(42));

        let answer = CcAnswer {
            result_code: 2001,
            request_type: RequestType::Update,
            request_number: 3,
            mscc: vec![MsccAnswer {
                service: svc,
                result_code: 2001,
                granted: Some(Units::of(UnitKind::TotalOctets, 1000)),
                validity_time: Some(60),
                quota_holding_time: Some(30),
                volume_threshold: Some(100),
                triggers: Some(vec![4, 36]),
                final_unit: Some(FinalUnit {
                    action: 1,
                    redirect: Some((2, "http://x/".into())),
                    restrictions: vec![],
                }),
                ..MsccAnswer::default()
            }],
            error_message: None,
            single: None,
            failure_handling: Some(2),
        };
        let me = diameter_codec::LocalIdentity::new("ocs.test", "home.test");
        let mut base_b = MessageBuilder::answer_to(&msg, &me);
        base_b.result_code(ResultCode(2001));
        let cca = encode_cca(base_b, &answer).build().unwrap();
        diameter_codec::validate(&cca).unwrap();
        let m = cca
            .find(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
            .unwrap();
        let kids: Vec<u32> = m.children().flatten().map(|a| a.code).collect();
        assert!(kids.contains(&431) && kids.contains(&430) && kids.contains(&1264));
    }
}
