//! `[visited]`: the visited OCS's home operators and its policy per home operator and
//! rating group (document 001, S314).

use crate::config::{FailureHandling, FinalAction, RedirectServer};
use serde::Deserialize;
use std::time::Duration;

/// `[visited]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitedSection {
    /// Deadline of one request to one home OCS, seconds; then the secondary is tried.
    #[serde(default = "default_home_timeout")]
    pub home_timeout: f64,
    /// An update goes home when home has heard nothing of the session for this long,
    /// seconds, however it could be answered here: the home OCS's Tcc lease (RFC 4006 §13)
    /// is renewed only by requests it receives, and the usage held here reaches it. Keep it
    /// well below the home OCS's Tcc.
    #[serde(default = "default_home_refresh")]
    pub home_refresh: f64,
    /// Tell the home OCS the decision the PCEF got (Visited-Credit-Decision) on the next
    /// request sent home.
    #[serde(default)]
    pub report_decision: bool,
    /// The trigger types the PCEF arms by itself when a CCA carries no Trigger (its
    /// defaults): sent explicitly, with the visited types, when home sent no Trigger, because
    /// a Trigger in a CCA replaces the client's defaults (TS 32.299 §7.2.225).
    #[serde(default)]
    pub default_triggers: Vec<i32>,
    /// What to do when neither home OCS answers (RFC 4006 §5.7, §8.14). Absent: what the
    /// home OCS said in its CCA-I, else `terminate`.
    pub failure_handling: Option<FailureHandling>,
    /// The home operators.
    #[serde(default, rename = "operator")]
    pub operators: Vec<HomeOperator>,
}

fn default_home_timeout() -> f64 {
    2.0
}

fn default_home_refresh() -> f64 {
    300.0
}

/// One `[[visited.operator]]`: a home operator, how to reach its OCS, and the visited
/// policy for its subscribers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeOperator {
    /// The home realm (Destination-Realm of the requests sent home; also matched against
    /// the Destination-Realm of the PCEF's CCR).
    pub realm: String,
    /// IMSI prefixes (MCC+MNC, or longer) of this operator's subscribers.
    #[serde(default)]
    pub imsi_prefixes: Vec<String>,
    /// The primary home OCS (Origin-Host), when the CCR names none (Home-OCS-Identity).
    pub primary: Option<String>,
    /// The secondary home OCS.
    pub secondary: Option<String>,
    /// The policy for rating groups without their own entry.
    #[serde(default)]
    pub policy: ServicePolicy,
    /// Per rating group.
    #[serde(default, rename = "rating_group")]
    pub rating_groups: Vec<RatingGroupPolicy>,
}

/// `[[visited.operator.rating_group]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingGroupPolicy {
    /// Rating-Group.
    pub id: u32,
    /// The policy.
    #[serde(flatten)]
    pub policy: ServicePolicy,
}

/// What the visited network does to a home decision for one rating group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    /// The most granted to the PCEF at once, in the units of the home grant; the rest of
    /// the home grant is kept for local re-authorisations. Absent: no cap.
    pub grant_cap: Option<u64>,
    /// Trigger types the visited network needs (added when home lacks them; a finer
    /// location type replaces a coarser home one).
    #[serde(default)]
    pub triggers: Vec<i32>,
    /// The termination action: `keep` (the default) or a replacement.
    #[serde(default)]
    pub final_unit_action: FuaPolicy,
    /// For `redirect`.
    pub redirect: Option<RedirectServer>,
    /// For `restrict-access`.
    #[serde(default)]
    pub restriction_filter_rules: Vec<String>,
}

/// Keep or replace Final-Unit-Action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FuaPolicy {
    /// The home OCS's action.
    #[default]
    Keep,
    /// TERMINATE.
    Terminate,
    /// REDIRECT to `redirect`.
    Redirect,
    /// RESTRICT_ACCESS to `restriction_filter_rules`.
    RestrictAccess,
}

impl FuaPolicy {
    /// The replacement action, if any.
    pub fn replacement(self) -> Option<FinalAction> {
        match self {
            Self::Keep => None,
            Self::Terminate => Some(FinalAction::Terminate),
            Self::Redirect => Some(FinalAction::Redirect),
            Self::RestrictAccess => Some(FinalAction::RestrictAccess),
        }
    }
}

impl VisitedSection {
    /// The deadline of one home request.
    pub fn home_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.home_timeout).unwrap_or(Duration::from_secs(2))
    }

    /// [`VisitedSection::home_refresh`] in milliseconds.
    pub fn home_refresh_ms(&self) -> u64 {
        (self.home_refresh * 1000.0) as u64
    }

    /// The operator for a home realm or IMSI.
    pub fn operator(&self, realm: Option<&str>, imsi: Option<&str>) -> Option<&HomeOperator> {
        if let Some(imsi) = imsi {
            // The longest matching prefix wins.
            let best = self
                .operators
                .iter()
                .filter_map(|o| {
                    o.imsi_prefixes
                        .iter()
                        .filter(|p| imsi.starts_with(p.as_str()))
                        .map(String::len)
                        .max()
                        .map(|l| (l, o))
                })
                .max_by_key(|(l, _)| *l);
            if let Some((_, o)) = best {
                return Some(o);
            }
        }
        let realm = realm?;
        self.operators
            .iter()
            .find(|o| o.realm.eq_ignore_ascii_case(realm))
    }

    /// Checks what serde cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(self.home_timeout.is_finite() && self.home_timeout > 0.0 && self.home_timeout <= 1e6) {
            return Err(format!(
                "visited.home_timeout: {} is not a duration in seconds",
                self.home_timeout
            ));
        }
        if !(self.home_refresh.is_finite() && self.home_refresh > 0.0 && self.home_refresh <= 1e9) {
            return Err(format!(
                "visited.home_refresh: {} is not a duration in seconds",
                self.home_refresh
            ));
        }
        for t in &self.default_triggers {
            check_trigger(*t, "visited.default_triggers")?;
        }
        for o in &self.operators {
            let mut policies = vec![(format!("visited.operator {}", o.realm), &o.policy)];
            let mut seen = std::collections::HashSet::new();
            for rg in &o.rating_groups {
                if !seen.insert(rg.id) {
                    return Err(format!(
                        "visited.operator {}: rating_group {} defined twice",
                        o.realm, rg.id
                    ));
                }
                policies.push((
                    format!("visited.operator {} rating_group {}", o.realm, rg.id),
                    &rg.policy,
                ));
            }
            for (at, p) in policies {
                for t in &p.triggers {
                    check_trigger(*t, &at)?;
                }
                if p.grant_cap == Some(0) {
                    return Err(format!("{at}: grant_cap must be above 0"));
                }
                if p.final_unit_action == FuaPolicy::Redirect && p.redirect.is_none() {
                    return Err(format!(
                        "{at}: final_unit_action = \"redirect\" needs a redirect table"
                    ));
                }
                if p.final_unit_action == FuaPolicy::RestrictAccess
                    && p.restriction_filter_rules.is_empty()
                {
                    return Err(format!(
                        "{at}: final_unit_action = \"restrict-access\" needs restriction_filter_rules"
                    ));
                }
                for r in &p.restriction_filter_rules {
                    diameter_codec::types::IpFilterRule::parse(r.as_bytes()).map_err(|e| {
                        format!("{at}: restriction_filter_rules: `{r}` is not an IPFilterRule: {e}")
                    })?;
                }
            }
        }
        Ok(())
    }
}

impl HomeOperator {
    /// The policy of a rating group.
    pub fn policy(&self, rating_group: Option<u32>) -> &ServicePolicy {
        rating_group
            .and_then(|id| self.rating_groups.iter().find(|r| r.id == id))
            .map_or(&self.policy, |r| &r.policy)
    }
}

/// Trigger-Type values of TS 32.299 §7.2.226 (protocol.md lists them).
fn check_trigger(t: i32, at: &str) -> Result<(), String> {
    let known = matches!(t, 1..=5 | 10..=24 | 30..=36 | 40 | 50..=52 | 60..=62 | 70..=73 | 75 | 76);
    if known {
        Ok(())
    } else {
        Err(format!("{at}: {t} is not a Trigger-Type value"))
    }
}
