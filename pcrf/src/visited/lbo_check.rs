//! Local breakout at the V-PCRF (document 000, the visited half; [`crate::lbo`] "What a
//! V-PCRF does with it"): every LBO-marked rule the home network sends — LBO-Indicator
//! LOCAL_BREAKOUT, or a signed steering rule towards the home operator's user plane here
//! (variant FIG. 6) — is verified under the agreement with its home operator
//! (`[pcrf.visited.lbo]`) before anything of it reaches the PCEF. Rules without a mark are
//! not this module's business.
//!
//! What follows a refusal is the caller's ([`super::Visited::authorise_home_rules`] and the
//! S9 RAR and CCA paths): on an S9 RAR (an AF's push), the whole subsession decision is
//! refused with the LBO code and nothing goes to the PCEF; in an S9 CCA (presets, claim 9),
//! the refused rules are left out and reported home as INACTIVE like any refused rule, and
//! the rest is installed.

use crate::lbo::{LboKind, LboRefusal, VisitedLboPolicy, lbo_rules_in};
use diameter_codec::dict::gx as gxd;
use diameter_codec::encode::AvpValue;
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp};

/// LBO rules of a decision the agreement refuses, and why (the first refusal's reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LboRefused {
    /// The first refusal, whose code the S9 RAA carries.
    pub why: LboRefusal,
    /// Every refused LBO rule's name.
    pub rules: Vec<String>,
}

/// What the check of a decision's LBO rules found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LboChecked {
    /// Accepted LBO rules (name, kind): they go to the PCEF as they came, marks kept.
    pub accepted: Vec<(String, LboKind)>,
    /// Refused ones, when any.
    pub refused: Option<LboRefused>,
}

/// Checks every LBO rule of the Charging-Rule-Installs in `decision` under `policy` at
/// `now` (Unix seconds). No policy (no `[pcrf.visited.lbo]`): no agreement, every LBO
/// rule is refused for its unknown home operator (or a missing grant).
pub fn check(policy: Option<&VisitedLboPolicy>, decision: &[AvpRef<'_>], now: i64) -> LboChecked {
    let none = VisitedLboPolicy::default();
    let policy = policy.unwrap_or(&none);
    let mut out = LboChecked::default();
    for cri in decision
        .iter()
        .filter(|a| a.key() == gxd::CHARGING_RULE_INSTALL.key())
    {
        for r in lbo_rules_in(cri) {
            match r.verify(policy, now) {
                Ok(()) => out.accepted.push((r.rule.name, r.kind)),
                Err(why) => match &mut out.refused {
                    Some(f) => f.rules.push(r.rule.name),
                    None => {
                        out.refused = Some(LboRefused {
                            why,
                            rules: vec![r.rule.name],
                        })
                    }
                },
            }
        }
    }
    out
}

/// `decision` without the Charging-Rule-Definitions named in `drop` (a Charging-Rule-Install
/// left with no member goes too), as a message whose AVPs are read in their place.
pub fn without(decision: &[AvpRef<'_>], drop: &[String]) -> Message {
    let name_of = |d: &AvpRef<'_>| {
        d.children()
            .flatten()
            .find(|c| c.key() == gxd::CHARGING_RULE_NAME.key())
            .map(|n| String::from_utf8_lossy(n.data).into_owned())
    };
    let mut b = MessageBuilder::request(gxd::CMD_RE_AUTH, crate::gx::APPLICATION_ID, true);
    for a in decision {
        if a.key() != gxd::CHARGING_RULE_INSTALL.key() {
            b.push(OwnedAvp::from_ref(a));
            continue;
        }
        let kept: Vec<OwnedAvp> = a
            .children()
            .flatten()
            .filter(|c| {
                c.key() != gxd::CHARGING_RULE_DEFINITION.key()
                    || !name_of(c).is_some_and(|n| drop.contains(&n))
            })
            .map(|c| OwnedAvp::from_ref(&c))
            .collect();
        if !kept.is_empty() {
            b.push(OwnedAvp::new(
                a.code,
                a.vendor,
                a.flags.0,
                AvpValue::Grouped(kept),
            ));
        }
    }
    // Every AVP came from a decoded message: re-encoding them cannot fail.
    b.build().expect("re-encoding received AVPs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lbo::{Grant, Key, LboAgreement, LboMark, sign_grant};
    use crate::spr::{Flow, FlowDirection, RuleDef};
    use diameter_codec::types::DiameterTime;

    const NOW: i64 = 1_800_000_000;

    fn rule(name: &str, dst: &str, signer: Option<&Key>) -> RuleDef {
        let mut r = RuleDef::with_flows(
            name.into(),
            Some(40),
            vec![Flow {
                description: format!("permit out ip from {dst} to any"),
                direction: FlowDirection::Downlink,
            }],
        );
        if let Some(k) = signer {
            let mut g = Grant {
                grant_id: "g".into(),
                home_operator: "00101".into(),
                package: "cdn-video".into(),
                expiry: DiameterTime::from_unix(NOW + 60).unwrap(),
                signature: vec![],
            };
            sign_grant(k, &r, &mut g);
            r.lbo = Some(LboMark {
                kind: LboKind::LocalBreakout,
                grant: Some(g),
            });
        }
        r
    }

    fn policy() -> VisitedLboPolicy {
        VisitedLboPolicy {
            agreements: vec![LboAgreement {
                home_operator: "00101".into(),
                key: Key::new(vec![7; 32]).unwrap(),
                packages: vec!["cdn-video".into()],
                allowed_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
                local_up_policies: vec![],
            }],
        }
    }

    fn decision(rules: &[RuleDef]) -> Message {
        let mut b = MessageBuilder::request(gxd::CMD_RE_AUTH, 0, true);
        b.push(
            gxd::CHARGING_RULE_INSTALL.with(
                rules
                    .iter()
                    .map(crate::gx::rule_definition)
                    .collect::<Vec<_>>(),
            ),
        );
        b.push(gxd::EVENT_TRIGGER.with(gxd::EventTrigger(2)));
        b.build().unwrap()
    }

    #[test]
    fn lbo_rules_are_checked_and_others_left_alone() {
        let k = Key::new(vec![7; 32]).unwrap();
        let forged = Key::new(vec![8; 32]).unwrap();
        let m = decision(&[
            rule("plain", "198.51.100.1", None),
            rule("good", "203.0.113.10", Some(&k)),
            rule("forged", "203.0.113.10", Some(&forged)),
            rule("far", "198.51.100.7", Some(&k)),
        ]);
        let avps: Vec<AvpRef<'_>> = m.avps().flatten().collect();
        let c = check(Some(&policy()), &avps, NOW);
        assert_eq!(c.accepted, [("good".to_string(), LboKind::LocalBreakout)]);
        let r = c.refused.unwrap();
        assert_eq!(r.why, LboRefusal::BadSignature);
        assert_eq!(r.rules, ["forged", "far"]);
        // Without an agreement section nothing marked is accepted.
        let none = check(None, &avps, NOW);
        assert!(none.accepted.is_empty());
        assert_eq!(none.refused.unwrap().why.code(), (5801, true));
        // The refused rules dropped: the rest, and the other AVPs, kept in order.
        let kept = without(&avps, &r.rules);
        let names: Vec<String> = kept
            .find_all(gxd::CHARGING_RULE_INSTALL.key())
            .flat_map(|i| {
                i.children()
                    .flatten()
                    .filter_map(|d| crate::gx::child(&d, gxd::CHARGING_RULE_NAME))
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(names, ["plain", "good"]);
        assert!(kept.find(gxd::EVENT_TRIGGER.key()).is_some());
        let all = without(
            &avps,
            &["plain".into(), "good".into(), "forged".into(), "far".into()],
        );
        assert!(all.find(gxd::CHARGING_RULE_INSTALL.key()).is_none());
    }
}
