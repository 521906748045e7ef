//! The visited policy applied to a home decision for one rating group (document 001,
//! S314): the credit cap, the triggers added or refined, the termination action kept or
//! replaced. Pure functions of (home decision, what remains of it, policy).

use super::config::ServicePolicy;
use super::location::{CHANGE_IN_LOCATION, comparable, finer, is_location, is_specific_location};
use crate::model::{FinalUnit, MsccAnswer, Units};
use serde::{Deserialize, Serialize};

/// The triggers the PCEF gets: the home ones (or, when home sent no Trigger, the PCEF's
/// default set, since any Trigger sent replaces those), each visited type the home set lacks
/// added, and a coarser home location type replaced by a finer visited one.
/// CHANGE_IN_LOCATION (3) is dropped when a specific location type (30–36) is sent (TS
/// 32.299 §7.2.226: 3 is not combined with 30–36). `None` (no Trigger) only when home sent
/// none and nothing is to be added, so a Trigger that would disable the home triggers is
/// never sent.
pub fn merge_triggers(home: Option<&[i32]>, visited: &[i32], defaults: &[i32]) -> Option<Vec<i32>> {
    let mut out: Vec<i32> = match home {
        Some(h) => h.to_vec(),
        None if visited.is_empty() => return None,
        None => defaults.to_vec(),
    };
    for &v in visited {
        if out.contains(&v) {
            continue;
        }
        if is_specific_location(v) {
            // A home type at this precision or finer on the same access already covers it.
            if out.iter().any(|&h| h == v || finer(h, v)) {
                continue;
            }
            out.retain(|&h| !(is_specific_location(h) && comparable(h, v) && finer(v, h)));
        }
        out.push(v);
    }
    if out.iter().any(|&t| is_specific_location(t)) {
        out.retain(|&t| t != CHANGE_IN_LOCATION);
    }
    out.dedup();
    if out.is_empty() && home.is_none() {
        return None;
    }
    Some(out)
}

/// The home-subscribed trigger types: what home sent, or the PCEF's defaults when it sent no
/// Trigger.
pub fn home_triggers<'a>(home: Option<&'a [i32]>, defaults: &'a [i32]) -> &'a [i32] {
    home.unwrap_or(defaults)
}

/// The home location types a fired visited type `t` is a refinement of (or `t` itself when
/// home armed it); CHANGE_IN_LOCATION counts for every location type.
pub fn home_location_types(home: &[i32], t: i32) -> Vec<i32> {
    if !is_location(t) {
        return Vec::new();
    }
    home.iter()
        .copied()
        .filter(|&h| {
            h == t || h == CHANGE_IN_LOCATION || (is_specific_location(h) && comparable(h, t))
        })
        .collect()
}

/// `available` with every member capped at `cap`.
pub fn cap_units(available: &Units, cap: Option<u64>) -> Units {
    let Some(cap) = cap else { return *available };
    let c64 = |v: Option<u64>| v.map(|v| v.min(cap));
    Units {
        time: available
            .time
            .map(|t| u32::try_from(u64::from(t).min(cap)).unwrap_or(u32::MAX)),
        total_octets: c64(available.total_octets),
        input_octets: c64(available.input_octets),
        output_octets: c64(available.output_octets),
        service_specific: c64(available.service_specific),
    }
}

/// `grant` less `used`, member by member (a member used beyond the grant is 0).
pub fn remaining(grant: &Units, used: &Units) -> Units {
    let s64 = |g: Option<u64>, u: Option<u64>| g.map(|g| g.saturating_sub(u.unwrap_or(0)));
    Units {
        time: grant.time.map(|g| g.saturating_sub(used.time.unwrap_or(0))),
        total_octets: s64(grant.total_octets, used.total_octets),
        input_octets: s64(grant.input_octets, used.input_octets),
        output_octets: s64(grant.output_octets, used.output_octets),
        service_specific: s64(grant.service_specific, used.service_specific),
    }
}

/// Whether any member of a grant is above zero.
pub fn any_units(u: &Units) -> bool {
    u.time.unwrap_or(0) > 0
        || [
            u.total_octets,
            u.input_octets,
            u.output_octets,
            u.service_specific,
        ]
        .iter()
        .any(|v| v.unwrap_or(0) > 0)
}

/// Keeps a threshold below the grant it belongs to: at or above it, the client would
/// re-authorise at once (protocol.md §13 (b)); half the grant then.
fn clamp_threshold(th: Option<u32>, grant: Option<u64>) -> Option<u32> {
    match (th, grant) {
        (Some(t), Some(g)) if u64::from(t) >= g => Some(u32::try_from(g / 2).unwrap_or(u32::MAX)),
        (t, _) => t,
    }
}

/// The visited decision for one rating group, as the PCEF gets it and as home is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitedDecision {
    /// The MSCC sent to the PCEF.
    pub answer: MsccAnswer,
    /// What the policy changed, for Visited-Decision-Reason (empty when home is not told).
    pub reason: String,
}

/// Applies `policy` to the home decision `home` of which `available` remains: the MSCC the
/// PCEF gets, and (`explain`) what changed, for Visited-Decision-Reason.
pub fn apply(
    home: &MsccAnswer,
    available: &Units,
    policy: &ServicePolicy,
    defaults: &[i32],
    explain: bool,
) -> VisitedDecision {
    let mut a = home.clone();
    let granted = cap_units(available, policy.grant_cap);
    let capped = home.granted.is_some() && Some(granted) != home.granted;
    if home.granted.is_some() {
        a.granted = Some(granted);
        let volume = granted
            .total_octets
            .or(granted.input_octets)
            .or(granted.output_octets);
        a.volume_threshold = clamp_threshold(home.volume_threshold, volume);
        a.time_threshold = clamp_threshold(home.time_threshold, granted.time.map(u64::from));
        a.unit_threshold = clamp_threshold(home.unit_threshold, granted.service_specific);
    }
    a.triggers = merge_triggers(home.triggers.as_deref(), &policy.triggers, defaults);
    // The final units are the home grant's last ones: while part of it is held back, the
    // PCEF's grant is not final.
    let last = home.granted.is_none() || granted == *available;
    let mut replaced = None;
    a.final_unit = match (&home.final_unit, policy.final_unit_action.replacement()) {
        (Some(_), _) if !last => None,
        (Some(_), Some(action)) => {
            replaced = Some(action.code());
            Some(FinalUnit {
                action: action.code(),
                redirect: policy
                    .redirect
                    .as_ref()
                    .map(|r| (r.address_type.code(), r.address.clone())),
                restrictions: policy.restriction_filter_rules.clone(),
            })
        }
        (f, _) => f.clone(),
    };
    // Built only when home is to be told: a few allocations per answer otherwise spent.
    let reason = if explain {
        let mut why = Vec::new();
        if capped {
            why.push(format!("grant capped at {}", policy.grant_cap.unwrap_or(0)));
        }
        if a.triggers != home.triggers {
            why.push(format!(
                "triggers {:?}",
                a.triggers.clone().unwrap_or_default()
            ));
        }
        if let Some(code) = replaced {
            why.push(format!("final unit action {code}"));
        }
        if why.is_empty() {
            "home decision kept".into()
        } else {
            why.join("; ")
        }
    } else {
        String::new()
    };
    VisitedDecision { answer: a, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_added_refined_and_defaults_kept() {
        // Home: QoS and location area; visited: RAT and cell.
        assert_eq!(
            merge_triggers(Some(&[2, 33]), &[4, 34], &[]),
            Some(vec![2, 4, 34])
        );
        // The generic location type goes when a specific one is sent.
        assert_eq!(merge_triggers(Some(&[3, 2]), &[36], &[]), Some(vec![2, 36]));
        // Home finer already: nothing replaced.
        assert_eq!(
            merge_triggers(Some(&[35, 36]), &[36], &[]),
            Some(vec![35, 36])
        );
        assert_eq!(
            merge_triggers(Some(&[35]), &[36, 34], &[]),
            Some(vec![36, 34])
        );
        // No home Trigger: the PCEF's defaults are sent with the visited types.
        assert_eq!(merge_triggers(None, &[4], &[1, 2]), Some(vec![1, 2, 4]));
        assert_eq!(merge_triggers(None, &[], &[1, 2]), None);
        // Home turned every trigger off; only the visited ones are armed.
        assert_eq!(merge_triggers(Some(&[]), &[4], &[1, 2]), Some(vec![4]));
        // MCC is coarser than both accesses' types.
        assert_eq!(
            merge_triggers(Some(&[30]), &[34, 36], &[]),
            Some(vec![34, 36])
        );
    }

    #[test]
    fn home_types_behind_a_visited_type() {
        assert_eq!(home_location_types(&[2, 33], 34), vec![33]);
        assert_eq!(home_location_types(&[3], 36), vec![3]);
        assert!(home_location_types(&[2, 35], 34).is_empty());
        assert!(home_location_types(&[33], 4).is_empty());
    }

    #[test]
    fn cap_threshold_and_final_units() {
        let home = MsccAnswer {
            result_code: 2001,
            granted: Some(Units::of(crate::model::UnitKind::TotalOctets, 1000)),
            volume_threshold: Some(400),
            final_unit: Some(FinalUnit {
                action: 0,
                redirect: None,
                restrictions: vec![],
            }),
            ..MsccAnswer::default()
        };
        let p = ServicePolicy {
            grant_cap: Some(300),
            final_unit_action: super::super::config::FuaPolicy::Redirect,
            redirect: Some(crate::config::RedirectServer {
                address_type: crate::config::RedirectAddressType::Url,
                address: "http://v/".into(),
            }),
            ..ServicePolicy::default()
        };
        let d = apply(&home, &home.granted.unwrap(), &p, &[], true);
        assert_eq!(d.answer.granted.unwrap().total_octets, Some(300));
        assert_eq!(d.answer.volume_threshold, Some(150));
        assert!(d.answer.final_unit.is_none(), "700 still held: not final");
        let left = Units::of(crate::model::UnitKind::TotalOctets, 200);
        let d = apply(&home, &left, &p, &[], true);
        assert_eq!(d.answer.final_unit.unwrap().action, 1);
    }
}
