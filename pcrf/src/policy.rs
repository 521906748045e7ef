//! PCC decisions as pure functions: what a new session gets from the subscriber's profile,
//! and what a reported event changes under the configured event policies. No I/O: the
//! server looks up profiles and rules, this module decides, [`crate::gx`] encodes.

use crate::config::{EventPolicy, PcrfSection};
use crate::session::GxSession;
use crate::spr::{Ambr, DefaultBearerQos, QosLimits, RuleDef, Subscriber, SubscriberKey};
use diameter_codec::dict::gx::EventTrigger;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The Event-Trigger value of a dictionary name (`RAT_CHANGE` → 2), from the generated
/// enumeration, so there is no second list to keep.
pub fn event_trigger_code(name: &str) -> Option<i32> {
    (0..=255).find(|&v| EventTrigger(v).name() == Some(name))
}

/// The dictionary name of an Event-Trigger value, or its number.
pub fn event_trigger_name(v: i32) -> String {
    EventTrigger(v)
        .name()
        .map_or_else(|| v.to_string(), str::to_string)
}

/// What a CCA or RAR tells the PCEF to change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Dynamic rules to install or modify (Charging-Rule-Definition), shared with the
    /// profile or change they come from.
    pub install: Vec<Arc<RuleDef>>,
    /// Predefined rules to activate (Charging-Rule-Name).
    pub activate: Vec<String>,
    /// Predefined rule bases to activate (Charging-Rule-Base-Name).
    pub activate_bases: Vec<String>,
    /// Rules to remove, dynamic or predefined (Charging-Rule-Name in Charging-Rule-Remove).
    pub remove: Vec<String>,
    /// Rule bases to remove.
    pub remove_bases: Vec<String>,
    /// The complete new set of event triggers, when it changes (an empty set is sent as
    /// NO_EVENT_TRIGGERS, TS 29.212 §5.3.7).
    pub event_triggers: Option<BTreeSet<i32>>,
    /// Default-EPS-Bearer-QoS.
    pub default_bearer: Option<DefaultBearerQos>,
    /// APN-AMBR (in QoS-Information at session level).
    pub apn_ambr: Option<Ambr>,
    /// Online / Offline at session level.
    pub online: Option<bool>,
    /// Offline at session level.
    pub offline: Option<bool>,
}

impl Decision {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The session as it is once the PCEF applied the decision.
    pub fn apply(&self, s: &mut GxSession) {
        for name in &self.remove {
            s.dynamic_rules.remove(name);
            s.predefined_rules.remove(name);
        }
        for b in &self.remove_bases {
            s.rule_bases.remove(b);
        }
        for r in &self.install {
            s.dynamic_rules.insert(r.clone());
        }
        s.predefined_rules.extend(&self.activate);
        s.rule_bases.extend(&self.activate_bases);
        if let Some(t) = &self.event_triggers {
            s.event_triggers.clone_from(t);
        }
        if let Some(v) = self.online {
            s.online = v;
        }
        if let Some(v) = self.offline {
            s.offline = v;
        }
    }

    /// Rules installed or activated by it.
    pub fn installs(&self) -> usize {
        self.install.len() + self.activate.len() + self.activate_bases.len()
    }
}

/// A rule with its bit rates capped by the subscriber's limits: the same one, shared,
/// when they cap nothing.
pub fn cap_rule(rule: &Arc<RuleDef>, limits: &QosLimits) -> Arc<RuleDef> {
    let Some(q) = rule.qos else {
        return rule.clone();
    };
    let capped = crate::spr::RuleQos {
        mbr_ul: q.mbr_ul.map(|v| limits.ul(v)),
        mbr_dl: q.mbr_dl.map(|v| limits.dl(v)),
        gbr_ul: q.gbr_ul.map(|v| limits.ul(v)),
        gbr_dl: q.gbr_dl.map(|v| limits.dl(v)),
        ..q
    };
    if capped == q {
        return rule.clone();
    }
    let mut r = RuleDef::clone(rule);
    r.qos = Some(capped);
    Arc::new(r)
}

/// Whether `policy` applies to a subscriber known by `subscriber` (a
/// [`SubscriberKey::as_key`]).
pub fn applies_to(policy: &EventPolicy, subscriber: &str) -> bool {
    policy.subscribers.as_ref().is_none_or(|list| {
        list.iter()
            .any(|s| SubscriberKey::parse(s).as_key() == subscriber)
    })
}

/// The event triggers a new session subscribes to: the profile's, and those of the event
/// policies that apply to it (the PCEF reports only what it was asked to, §4.5.1).
pub fn initial_triggers(sub: &Subscriber, key: &str, policies: &[EventPolicy]) -> BTreeSet<i32> {
    sub.profile
        .event_triggers
        .iter()
        .filter_map(|t| event_trigger_code(t))
        .chain(
            policies
                .iter()
                .filter(|p| applies_to(p, key))
                .filter_map(|p| event_trigger_code(&p.event)),
        )
        .collect()
}

/// What the PCEF requested for the session, which the PCRF may grant lower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requested {
    /// APN-AMBR requested in QoS-Information.
    pub apn_ambr: Option<Ambr>,
}

/// The decision for a new session (CCR-I, TS 29.212 §4.5.1): the profile's rules, capped
/// by its limits; its default bearer QoS; APN-AMBR — the subscribed one, no more than
/// requested, capped by the limits; online/offline; the event triggers.
pub fn establish(
    sub: &Subscriber,
    key: &str,
    cfg: &PcrfSection,
    policies: &[EventPolicy],
    requested: Requested,
) -> Decision {
    let p = &sub.profile;
    let limits = &p.qos_limits;
    let apn_ambr = match (p.apn_ambr, requested.apn_ambr) {
        (Some(s), Some(r)) => Some(Ambr {
            ul: s.ul.min(r.ul),
            dl: s.dl.min(r.dl),
        }),
        (s, r) => s.or(r),
    }
    .map(|a| Ambr {
        ul: limits.ul(a.ul),
        dl: limits.dl(a.dl),
    });
    let triggers = initial_triggers(sub, key, policies);
    Decision {
        install: sub.rules.iter().map(|r| cap_rule(r, limits)).collect(),
        activate: p.predefined_rules.clone(),
        activate_bases: p.rule_bases.clone(),
        remove: Vec::new(),
        remove_bases: Vec::new(),
        event_triggers: (!triggers.is_empty()).then_some(triggers),
        default_bearer: Some(p.default_bearer.unwrap_or(cfg.default_bearer)),
        apn_ambr,
        online: Some(p.online),
        offline: Some(p.offline),
    }
}

/// What the PCEF reported with a CCR-U.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Event-Trigger values.
    pub events: Vec<i32>,
    /// RAT-Type reported.
    pub rat_type: Option<i32>,
}

/// One change of a session's rules: from an event policy or an operator's push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Dynamic rules to install (or modify: same name).
    pub install: Vec<Arc<RuleDef>>,
    /// Rules to remove, dynamic or predefined, by name.
    pub remove: Vec<String>,
    /// Re-install the session's dynamic rules with this Rating-Group.
    pub rating_group: Option<u32>,
}

/// The decision that applies `changes` in order to `session`: removals of rules it has,
/// installs capped by `limits`, re-rating of every dynamic rule then installed (a rule
/// re-sent with its name modifies it, TS 29.212 §4.5.2). A rule installed and removed
/// by later changes ends up in one list only.
pub fn decide(session: &GxSession, changes: &[Change], limits: &QosLimits) -> Decision {
    let mut d = Decision::default();
    let mut installed: BTreeMap<String, Arc<RuleDef>> = session
        .dynamic_rules
        .values()
        .map(|r| (r.name.clone(), r.clone()))
        .collect();
    for c in changes {
        for name in &c.remove {
            let known = installed.remove(name).is_some() || session.predefined_rules.contains(name);
            if known && !d.remove.contains(name) {
                d.remove.push(name.clone());
            }
            d.install.retain(|r| &r.name != name);
        }
        for r in &c.install {
            let r = cap_rule(r, limits);
            d.remove.retain(|n| n != &r.name);
            d.install.retain(|x| x.name != r.name);
            installed.insert(r.name.clone(), r.clone());
            d.install.push(r);
        }
        if let Some(rg) = c.rating_group {
            for r in installed.values_mut() {
                if r.rating_group != Some(rg) {
                    Arc::make_mut(r).rating_group = Some(rg);
                    d.install.retain(|x| x.name != r.name);
                    d.install.push(r.clone());
                }
            }
        }
    }
    d
}

/// The policies a CCR-U's report triggers (TS 29.212 §4.5.2): those whose event was
/// reported, that apply to the session's subscriber, and whose RAT-Type condition holds.
/// An event the session did not subscribe to still counts: some events are reported
/// unasked (§5.3.7).
pub fn triggered<'p>(
    session: &GxSession,
    report: &Report,
    policies: &'p [EventPolicy],
) -> Vec<&'p EventPolicy> {
    policies
        .iter()
        .filter(|p| {
            event_trigger_code(&p.event).is_some_and(|c| report.events.contains(&c))
                && applies_to(p, &session.subscriber)
                && (p.rat_type.is_none() || p.rat_type == report.rat_type)
        })
        .collect()
}

/// The decision for reported events: the triggered policies' changes, their rules looked
/// up in `rules` (names missing there are skipped).
pub fn on_report(
    session: &GxSession,
    report: &Report,
    policies: &[EventPolicy],
    rules: &BTreeMap<String, Arc<RuleDef>>,
    limits: &QosLimits,
) -> Decision {
    let changes: Vec<Change> = triggered(session, report, policies)
        .into_iter()
        .map(|p| Change {
            install: p
                .install
                .iter()
                .filter_map(|n| rules.get(n).cloned())
                .collect(),
            remove: p.remove.clone(),
            rating_group: p.rating_group,
        })
        .collect();
    decide(session, &changes, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spr::{Flow, FlowDirection, Profile};

    fn rule(name: &str, rg: u32) -> RuleDef {
        RuleDef {
            name: name.into(),
            precedence: Some(100),
            rating_group: Some(rg),
            service_identifier: None,
            online: None,
            offline: None,
            metering: None,
            flows: vec![Flow {
                description: "permit out ip from any to any".into(),
                direction: FlowDirection::Bidirectional,
            }],
            qos: Some(crate::spr::RuleQos {
                qci: 9,
                mbr_ul: Some(50_000_000),
                mbr_dl: Some(100_000_000),
                ..Default::default()
            }),
            monitoring_key: None,
            flow_status: None,
            af_charging_id: None,
            af_flows: vec![],
            lbo: None,
        }
    }

    fn policy(event: &str, install: &[&str], remove: &[&str], rg: Option<u32>) -> EventPolicy {
        EventPolicy {
            event: event.into(),
            rat_type: None,
            subscribers: None,
            install: install.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
            rating_group: rg,
        }
    }

    fn subscriber() -> Subscriber {
        Subscriber {
            profile: Profile {
                imsi: Some("1".into()),
                msisdn: None,
                nai: None,
                online: true,
                offline: false,
                rules: vec!["web".into()],
                predefined_rules: vec!["dns".into()],
                rule_bases: vec![],
                default_bearer: None,
                apn_ambr: Some(Ambr {
                    ul: 20_000_000,
                    dl: 80_000_000,
                }),
                qos_limits: QosLimits {
                    max_ul: Some(10_000_000),
                    max_dl: None,
                },
                event_triggers: vec!["USER_LOCATION_CHANGE".into()],
                lbo_packages: vec![],
            },
            rules: vec![Arc::new(rule("web", 1))],
        }
    }

    fn session_after(d: &Decision) -> GxSession {
        let mut s = GxSession {
            session_id: "s".into(),
            pcef_host: "p".into(),
            pcef_realm: "r".into(),
            subscriber: "imsi:1".into(),
            ue_ip: None,
            apn: None,
            rat_type: None,
            user_location: None,
            last_request_number: 0,
            dynamic_rules: Default::default(),
            predefined_rules: Default::default(),
            rule_bases: Default::default(),
            event_triggers: BTreeSet::new(),
            online: false,
            offline: false,
            features: BTreeMap::new(),
            failures: vec![],
            charging_id: None,
            charging_address: None,
            version: 0,
        };
        d.apply(&mut s);
        s
    }

    #[test]
    fn names_and_codes_of_event_triggers() {
        assert_eq!(event_trigger_code("RAT_CHANGE"), Some(2));
        assert_eq!(event_trigger_code("USER_LOCATION_CHANGE"), Some(13));
        assert_eq!(event_trigger_code("NOPE"), None);
        assert_eq!(event_trigger_name(2), "RAT_CHANGE");
        assert_eq!(event_trigger_name(9999), "9999");
    }

    #[test]
    fn establishment_caps_and_subscribes() {
        let policies = [policy("RAT_CHANGE", &[], &[], Some(2))];
        let d = establish(
            &subscriber(),
            "imsi:1",
            &PcrfSection::default(),
            &policies,
            Requested {
                apn_ambr: Some(Ambr {
                    ul: 30_000_000,
                    dl: 60_000_000,
                }),
            },
        );
        assert_eq!(d.install[0].qos.unwrap().mbr_ul, Some(10_000_000));
        assert_eq!(d.install[0].qos.unwrap().mbr_dl, Some(100_000_000));
        // Subscribed 20/80, requested 30/60, cap 10 UL.
        assert_eq!(
            d.apn_ambr,
            Some(Ambr {
                ul: 10_000_000,
                dl: 60_000_000
            })
        );
        assert_eq!(d.activate, ["dns"]);
        assert_eq!(d.event_triggers, Some(BTreeSet::from([2, 13])));
        assert_eq!(d.default_bearer.unwrap().qci, 9);
        assert_eq!(d.online, Some(true));
    }

    #[test]
    fn a_reported_event_swaps_rules_and_re_rates() {
        let sub = subscriber();
        let s = session_after(&establish(
            &sub,
            "imsi:1",
            &PcrfSection::default(),
            &[],
            Requested::default(),
        ));
        let rules = BTreeMap::from([("video".to_string(), Arc::new(rule("video", 7)))]);
        let mut p = policy("RAT_CHANGE", &["video"], &["dns"], Some(20));
        p.rat_type = Some(1000);
        let policies = [p];
        // Another RAT: the condition does not hold.
        let report = Report {
            events: vec![2],
            rat_type: Some(1004),
        };
        assert!(on_report(&s, &report, &policies, &rules, &QosLimits::default()).is_empty());
        let report = Report {
            events: vec![2],
            rat_type: Some(1000),
        };
        let d = on_report(&s, &report, &policies, &rules, &QosLimits::default());
        assert_eq!(d.remove, ["dns"]);
        let rg: BTreeMap<_, _> = d
            .install
            .iter()
            .map(|r| (r.name.as_str(), r.rating_group))
            .collect();
        assert_eq!(rg, BTreeMap::from([("video", Some(20)), ("web", Some(20))]));
        let after = {
            let mut s = s.clone();
            d.apply(&mut s);
            s
        };
        assert!(after.predefined_rules.is_empty());
        assert_eq!(after.dynamic_rules.len(), 2);
        // Not reported: nothing.
        let other = Report {
            events: vec![13],
            rat_type: None,
        };
        assert!(on_report(&s, &other, &policies, &rules, &QosLimits::default()).is_empty());
    }

    #[test]
    fn sessions_share_the_profile_rules_the_limits_leave_alone() {
        let mut sub = subscriber();
        sub.profile.qos_limits = QosLimits::default();
        let d = establish(
            &sub,
            "imsi:1",
            &PcrfSection::default(),
            &[],
            Requested::default(),
        );
        assert!(Arc::ptr_eq(&d.install[0], &sub.rules[0]));
        let s = session_after(&d);
        assert!(Arc::ptr_eq(
            s.dynamic_rules.get("web").unwrap(),
            &sub.rules[0]
        ));
        assert!(s.predefined_rules.contains("dns"));
        // A cap that changes the rule makes a copy; the profile's stays as it was.
        let capped = cap_rule(&sub.rules[0], &subscriber().profile.qos_limits);
        assert_eq!(capped.qos.unwrap().mbr_ul, Some(10_000_000));
        assert_eq!(sub.rules[0].qos.unwrap().mbr_ul, Some(50_000_000));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["dynamic_rules"]["web"]["rating_group"], 1);
        assert_eq!(json["predefined_rules"], serde_json::json!(["dns"]));
    }

    #[test]
    fn policies_can_be_limited_to_subscribers() {
        let mut p = policy("RAT_CHANGE", &[], &["x"], None);
        p.subscribers = Some(vec!["001010000000002".into()]);
        assert!(!applies_to(&p, "imsi:001010000000001"));
        assert!(applies_to(&p, "imsi:001010000000002"));
    }
}
