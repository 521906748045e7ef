//! Gxx on the wire (TS 29.212 chapter 4a and §5a, application 16777266): the BBERF's CCR
//! read (with [`crate::gx::GxRequest`], the two CCRs share their grammar's core), QoS rules
//! derived from the PCC rules of the linked Gx session, and the Gxx RAR.
//!
//! A QoS rule (TS 29.212 §4a.5, §5a.3.3 QoS-Rule-Definition) is the bearer-binding half of
//! a dynamic PCC rule: the same name, its Flow-Information, its QoS-Information and its
//! Precedence; charging stays with the PCEF. Predefined rules and rule bases have no QoS
//! rule at the BBERF here.

use crate::policy::Decision;
use crate::spr::RuleDef;
use diameter_codec::dict::{base, gx};
use diameter_codec::{Message, MessageBuilder, OwnedAvp};

/// The Gxx application (TS 29.212 §5a.1).
pub const APPLICATION_ID: u32 = gx::APP_GXX;

/// One QoS-Rule-Report (TS 29.212 §5a.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QosRuleReport {
    /// QoS-Rule-Name values.
    pub names: Vec<String>,
    /// PCC-Rule-Status.
    pub status: Option<i32>,
    /// Rule-Failure-Code.
    pub failure_code: Option<i32>,
}

/// The QoS-Rule-Reports of a Gxx CCR or RAA.
pub fn qos_rule_reports(m: &Message) -> Vec<QosRuleReport> {
    m.find_all(gx::QOS_RULE_REPORT.key())
        .map(|r| QosRuleReport {
            names: crate::gx::children_of(&r, gx::QOS_RULE_NAME)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect(),
            status: crate::gx::child(&r, gx::PCC_RULE_STATUS).map(|v| v.0),
            failure_code: crate::gx::child(&r, gx::RULE_FAILURE_CODE).map(|v| v.0),
        })
        .collect()
}

/// The QoS-Rule-Definition of a dynamic PCC rule (TS 29.212 §5a.3.3).
pub fn qos_rule_definition(r: &RuleDef) -> OwnedAvp {
    let mut v = vec![gx::QOS_RULE_NAME.with(bytes::Bytes::from(r.name.clone()))];
    v.extend(r.flows.iter().map(crate::gx::flow_information));
    if let Some(q) = &r.qos {
        v.push(crate::gx::rule_qos(q));
    }
    if let Some(p) = r.precedence {
        v.push(gx::PRECEDENCE.with(p));
    }
    gx::QOS_RULE_DEFINITION.with(v)
}

/// What a Gxx CCA or RAR tells the BBERF: QoS rules to install and remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QosDecision {
    /// QoS rules to install or modify.
    pub install: Vec<std::sync::Arc<RuleDef>>,
    /// QoS rules to remove, by name.
    pub remove: Vec<String>,
}

impl QosDecision {
    /// The QoS side of a Gx decision: its dynamic rules installed, every removed name
    /// removed (names the BBERF lacks are harmless to it, TS 29.212 §4a.5.3).
    pub fn of(d: &Decision) -> Self {
        Self {
            install: d.install.clone(),
            remove: d.remove.clone(),
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.install.is_empty() && self.remove.is_empty()
    }

    /// The AVPs, in the order of the CCA and RAR grammars (§5a.6.3, §5a.6.4).
    pub fn avps(&self) -> Vec<OwnedAvp> {
        let mut out = Vec::new();
        if !self.remove.is_empty() {
            out.push(
                gx::QOS_RULE_REMOVE.with(
                    self.remove
                        .iter()
                        .map(|n| gx::QOS_RULE_NAME.with(bytes::Bytes::from(n.clone())))
                        .collect::<Vec<OwnedAvp>>(),
                ),
            );
        }
        if !self.install.is_empty() {
            out.push(
                gx::QOS_RULE_INSTALL.with(
                    self.install
                        .iter()
                        .map(|r| qos_rule_definition(r))
                        .collect::<Vec<OwnedAvp>>(),
                ),
            );
        }
        out
    }
}

/// A Gxx RAR (TS 29.212 §5a.6.4) to the BBERF of a Gxx session.
pub fn rar(
    me: &diameter_codec::LocalIdentity,
    session_id: &str,
    bberf_host: &str,
    bberf_realm: &str,
    d: &QosDecision,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(gx::CMD_RE_AUTH, APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(session_id.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(bberf_realm.to_string()));
    b.push(base::DESTINATION_HOST.with(bberf_host.to_string()));
    b.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
    for a in d.avps() {
        b.push(a);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spr::{Flow, FlowDirection, RuleQos};

    #[test]
    fn a_qos_rule_is_the_bearer_half_of_a_pcc_rule() {
        let r = RuleDef {
            name: "voice".into(),
            precedence: Some(10),
            rating_group: Some(7),
            service_identifier: None,
            online: Some(true),
            offline: None,
            metering: None,
            flows: vec![Flow {
                description: "permit out 17 from any to 10.0.0.1 5000".into(),
                direction: FlowDirection::Downlink,
            }],
            qos: Some(RuleQos {
                qci: 1,
                gbr_dl: Some(64_000),
                ..Default::default()
            }),
            monitoring_key: None,
            flow_status: None,
            af_charging_id: None,
            af_flows: vec![],
            lbo: None,
        };
        let d = QosDecision {
            install: vec![std::sync::Arc::new(r)],
            remove: vec!["old".into()],
        };
        let avps = d.avps();
        assert_eq!(avps.len(), 2);
        assert_eq!(avps[0].key(), gx::QOS_RULE_REMOVE.key());
        assert_eq!(avps[1].key(), gx::QOS_RULE_INSTALL.key());
        // Name, flows, QoS and precedence; no charging AVP.
        let def = &avps[1].children()[0];
        assert_eq!(def.key(), gx::QOS_RULE_DEFINITION.key());
        let codes: Vec<u32> = def.children().iter().map(|a| a.key().code).collect();
        assert_eq!(codes, [1054, 1058, 1016, 1010]);
    }
}
