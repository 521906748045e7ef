//! The home's decision for a Gxx subsession (a BBERF in the visited network, TS 29.212
//! chapter 4a; TS 29.215 §4.5: the V-PCRF carries the Gateway Control session over S9) in
//! the form the BBERF takes: QoS rules.
//!
//! A QoS rule is the bearer-binding half of a dynamic PCC rule (TS 29.212 §4a.5, §5a.3.3:
//! name, Flow-Information, QoS-Information, Precedence; as [`crate::gxx`] derives them in
//! the home role). A home PCRF may send QoS-Rule-Install itself (TS 29.215 §5.3.1 lists it
//! in Subsession-Decision-Info) or, like this project's home role, the PCC rules whose
//! halves they are. Either way local policy sees them as PCC rules
//! ([`as_pcc_rules`]), so one check (refusals, QoS caps) covers both; what it lets through
//! goes to the BBERF as QoS rules ([`gxx_decision`]).

use diameter_codec::dict::gx as gxd;
use diameter_codec::{AvpKey, AvpRef, OwnedAvp};

/// The members of a Grouped AVP, whether built here (Grouped) or passed on as received
/// (its payload kept as bytes).
fn members(a: &OwnedAvp) -> Vec<OwnedAvp> {
    match (a.children(), a.as_bytes()) {
        ([], Some(b)) => diameter_codec::avp::AvpIter::new(b)
            .map_while(Result::ok)
            .map(|c| OwnedAvp::from_ref(&c))
            .collect(),
        (c, _) => c.to_vec(),
    }
}

fn members_of(a: &OwnedAvp, key: AvpKey) -> impl Iterator<Item = OwnedAvp> {
    members(a).into_iter().filter(move |c| c.key() == key)
}

/// The home's QoS-Rule-Install / QoS-Rule-Remove as the PCC-rule AVPs local policy reads
/// (QoS-Rule-Definition → Charging-Rule-Definition, QoS-Rule-Name → Charging-Rule-Name,
/// the members kept), encoded; other AVPs are not returned. The names converted are the
/// second value (reported home as QoS rules when refused).
pub fn as_pcc_rules(avps: &[AvpRef<'_>]) -> (bytes::Bytes, Vec<String>) {
    let mut out = bytes::BytesMut::new();
    let mut names = Vec::new();
    let mut name_of = |n: &[u8]| {
        names.push(String::from_utf8_lossy(n).into_owned());
        gxd::CHARGING_RULE_NAME.with(bytes::Bytes::copy_from_slice(n))
    };
    for a in avps {
        if a.key() == gxd::QOS_RULE_INSTALL.key() {
            let defs: Vec<OwnedAvp> = a
                .children()
                .flatten()
                .filter(|c| c.key() == gxd::QOS_RULE_DEFINITION.key())
                .map(|d| {
                    let members: Vec<OwnedAvp> = d
                        .children()
                        .flatten()
                        .map(|m| {
                            if m.key() == gxd::QOS_RULE_NAME.key() {
                                name_of(m.data)
                            } else {
                                OwnedAvp::from_ref(&m)
                            }
                        })
                        .collect();
                    gxd::CHARGING_RULE_DEFINITION.with(members)
                })
                .collect();
            gxd::CHARGING_RULE_INSTALL.with(defs).encode(&mut out);
        } else if a.key() == gxd::QOS_RULE_REMOVE.key() {
            let gone: Vec<OwnedAvp> = a
                .children()
                .flatten()
                .filter(|c| c.key() == gxd::QOS_RULE_NAME.key())
                .map(|n| name_of(n.data))
                .collect();
            gxd::CHARGING_RULE_REMOVE.with(gone).encode(&mut out);
        }
    }
    (out.freeze(), names)
}

/// The QoS-Rule-Definition of an authorised Charging-Rule-Definition (TS 29.212 §5a.3.3):
/// its name, flows, QoS and precedence; charging members stay with the PCEF.
fn qos_rule_of(def: &OwnedAvp) -> Option<OwnedAvp> {
    let name = members_of(def, gxd::CHARGING_RULE_NAME.key()).next()?;
    let mut v = vec![gxd::QOS_RULE_NAME.with(name.as_bytes().cloned().unwrap_or_default())];
    for key in [
        gxd::FLOW_INFORMATION.key(),
        gxd::QOS_INFORMATION.key(),
        gxd::PRECEDENCE.key(),
    ] {
        v.extend(members_of(def, key));
    }
    Some(gxd::QOS_RULE_DEFINITION.with(v))
}

/// The Gxx CCA/RAR AVPs (TS 29.212 §5a.6.3, §5a.6.4) of an authorised decision: dynamic
/// PCC rules as QoS-Rule-Install, removed names as QoS-Rule-Remove (a name the BBERF lacks
/// is harmless to it, §4a.5.3), the session QoS (the first QoS-Information: the grammar
/// allows one), Default-EPS-Bearer-QoS, Bearer-Control-Mode and Event-Triggers. Predefined
/// rules and rule bases have no QoS rule; charging (Online, Offline, Usage-Monitoring)
/// stays with the PCEF.
pub fn gxx_decision(avps: &[OwnedAvp]) -> Vec<OwnedAvp> {
    let mut remove = Vec::new();
    let mut install = Vec::new();
    let mut rest = Vec::new();
    let mut qos = false;
    for a in avps {
        let k = a.key();
        if k == gxd::CHARGING_RULE_REMOVE.key() {
            remove.extend(
                members_of(a, gxd::CHARGING_RULE_NAME.key())
                    .map(|n| gxd::QOS_RULE_NAME.with(n.as_bytes().cloned().unwrap_or_default())),
            );
        } else if k == gxd::CHARGING_RULE_INSTALL.key() {
            install.extend(
                members_of(a, gxd::CHARGING_RULE_DEFINITION.key()).filter_map(|d| qos_rule_of(&d)),
            );
        } else if k == gxd::QOS_INFORMATION.key() {
            if !qos {
                rest.push(a.clone());
                qos = true;
            }
        } else if k == gxd::DEFAULT_EPS_BEARER_QOS.key()
            || k == gxd::BEARER_CONTROL_MODE.key()
            || k == gxd::EVENT_TRIGGER.key()
        {
            rest.push(a.clone());
        }
    }
    let mut out = Vec::new();
    if !remove.is_empty() {
        out.push(gxd::QOS_RULE_REMOVE.with(remove));
    }
    if !install.is_empty() {
        out.push(gxd::QOS_RULE_INSTALL.with(install));
    }
    out.extend(rest);
    out
}

/// Only the QoS-rule changes of [`gxx_decision`] (a linked Gx session's rule changes
/// mirrored to its BBERFs).
pub fn rule_changes(gxx: &[OwnedAvp]) -> Vec<OwnedAvp> {
    gxx.iter()
        .filter(|a| a.key() == gxd::QOS_RULE_INSTALL.key() || a.key() == gxd::QOS_RULE_REMOVE.key())
        .cloned()
        .collect()
}

/// A QoS-Rule-Report (TS 29.212 §5a.3.5) of rules local policy refused: INACTIVE, with
/// `failure_code`.
pub fn refused_qos_report(names: &[String], failure_code: i32) -> OwnedAvp {
    let mut v: Vec<OwnedAvp> = names
        .iter()
        .map(|n| gxd::QOS_RULE_NAME.with(bytes::Bytes::from(n.clone())))
        .collect();
    v.push(gxd::PCC_RULE_STATUS.with(gxd::PccRuleStatus(1)));
    v.push(gxd::RULE_FAILURE_CODE.with(gxd::RuleFailureCode(failure_code)));
    gxd::QOS_RULE_REPORT.with(v)
}

/// Whether `key` is a Subsession-Decision-Info member the Gxx side takes (QoS rules).
pub fn is_qos_rule_avp(key: AvpKey) -> bool {
    key == gxd::QOS_RULE_INSTALL.key() || key == gxd::QOS_RULE_REMOVE.key()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::visited::local_policy::{LocalPolicyEntry, authorise};
    use bytes::Bytes;
    use diameter_codec::MessageBuilder;
    use diameter_codec::dict::rx;

    fn qos_rule(name: &str, qci: i32, mbr_dl: u32) -> OwnedAvp {
        gxd::QOS_RULE_DEFINITION.with(vec![
            gxd::QOS_RULE_NAME.with(Bytes::from(name.to_string())),
            gxd::QOS_INFORMATION.with(vec![
                gxd::QOS_CLASS_IDENTIFIER.with(gxd::QosClassIdentifier(qci)),
                rx::MAX_REQUESTED_BANDWIDTH_DL.with(mbr_dl),
            ]),
            gxd::PRECEDENCE.with(10u32),
        ])
    }

    /// (name, QCI, MBR-DL) of every QoS rule installed.
    fn installed(avps: &[OwnedAvp]) -> Vec<(String, u32, u32)> {
        let mut b = MessageBuilder::request(272, crate::gxx::APPLICATION_ID, true);
        for a in avps {
            b.push(a.clone());
        }
        let m = b.build().unwrap();
        let u32_in = |g: &AvpRef<'_>, k: AvpKey| {
            g.children()
                .flatten()
                .find(|c| c.key() == k)
                .map(|c| u32::from_be_bytes(c.data.try_into().unwrap()))
                .unwrap()
        };
        m.find_all(gxd::QOS_RULE_INSTALL.key())
            .flat_map(|i| i.children().flatten().collect::<Vec<_>>())
            .map(|d| {
                let name = d
                    .children()
                    .flatten()
                    .find(|c| c.key() == gxd::QOS_RULE_NAME.key())
                    .map(|n| String::from_utf8_lossy(n.data).into_owned())
                    .unwrap();
                let q = d
                    .children()
                    .flatten()
                    .find(|c| c.key() == gxd::QOS_INFORMATION.key())
                    .unwrap();
                (
                    name,
                    u32_in(&q, gxd::QOS_CLASS_IDENTIFIER.key()),
                    u32_in(&q, rx::MAX_REQUESTED_BANDWIDTH_DL.key()),
                )
            })
            .collect()
    }

    #[test]
    fn home_qos_rules_pass_local_policy_as_pcc_rules() {
        // As an H-PCRF that sends QoS rules itself would: two installed, one removed.
        let mut b = MessageBuilder::request(272, crate::gxx::APPLICATION_ID, true);
        b.push(gxd::QOS_RULE_INSTALL.with(vec![
            qos_rule("voice", 1, 100_000),
            qos_rule("video", 7, 80_000_000),
        ]));
        b.push(gxd::QOS_RULE_REMOVE.with(vec![gxd::QOS_RULE_NAME.with(Bytes::from("old"))]));
        let m = b.build().unwrap();
        let received: Vec<AvpRef<'_>> = m.avps().flatten().collect();
        let (buf, names) = as_pcc_rules(&received);
        assert_eq!(names, ["voice", "video", "old"]);
        let entry = LocalPolicyEntry {
            max_mbr_dl: Some(10_000_000),
            refused_qcis: vec![1],
            fallback_qci: Some(8),
            refused_rules: vec!["video".into()],
            ..Default::default()
        };
        let auth = authorise(
            Some(&entry),
            diameter_codec::avp::AvpIter::new(&buf).flatten(),
        );
        assert_eq!(auth.refused, ["video"]);
        let gxx = gxx_decision(&auth.avps);
        // `voice` capped to QCI 8, `video` refused, `old` removed; back in QoS-rule form.
        assert_eq!(installed(&gxx), [("voice".to_string(), 8, 100_000)]);
        assert_eq!(gxx[0].key(), gxd::QOS_RULE_REMOVE.key());
        assert_eq!(rule_changes(&gxx).len(), 2);
        let capped = auth.avps.clone();
        let video = authorise(None, diameter_codec::avp::AvpIter::new(&buf).flatten());
        // Without an entry the rules pass unchanged (as received bytes), and still convert.
        assert_eq!(
            installed(&gxx_decision(&video.avps)),
            [
                ("voice".to_string(), 1, 100_000),
                ("video".to_string(), 7, 80_000_000)
            ]
        );
        assert_ne!(capped, video.avps);
    }
}
