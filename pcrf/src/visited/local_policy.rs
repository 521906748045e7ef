//! The V-PCRF's local policy (TS 29.213 §4.5.2: the V-PCRF decides "based on the roaming
//! agreements"; document 001 S307–S309: it authorises the home PCC rules and may modify
//! them): a table of entries per home operator and APN, each with QoS caps, allowed and
//! refused rules and a rating-group remapping, applied to the PCC-rule AVPs the H-PCRF
//! sends in a Subsession-Decision-Info before they are installed over Gx.
//!
//! What an entry does to a home rule:
//! - refused (in `refused_rules`, or `allowed_rules` is given and does not name it): the
//!   rule is not installed; its name is reported back to home as INACTIVE;
//! - QoS capped: Max-Requested-Bandwidth-UL/DL above `max_mbr_ul`/`max_mbr_dl` lowered to
//!   the cap, Guaranteed-Bitrate-UL/DL kept at or under the (capped) MBR, a
//!   QoS-Class-Identifier in `refused_qcis` replaced by `fallback_qci`;
//! - rating group remapped: Rating-Group `from` becomes `to` (the visited network's
//!   charging keys);
//! - the APN-AMBR of the session-level QoS-Information capped at `max_apn_ambr_ul/dl`.
//!
//! A modified rule keeps its name (TS 29.212 §4.5.2). Predefined rules and rule bases
//! (named only) can be refused, not modified.

use diameter_codec::dict::{dcca, gx as gxd, rx};
use diameter_codec::encode::AvpValue;
use diameter_codec::{AvpRef, OwnedAvp};
use serde::Deserialize;

/// `[[pcrf.visited.local_policy]]`: one row of the table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalPolicyEntry {
    /// The home PLMN it applies to; every one when absent.
    pub home_plmn: Option<String>,
    /// The APN it applies to (compared ignoring case); every one when absent.
    pub apn: Option<String>,
    /// Cap on each rule's Max-Requested-Bandwidth-UL, bit/s.
    pub max_mbr_ul: Option<u32>,
    /// Cap on each rule's Max-Requested-Bandwidth-DL, bit/s.
    pub max_mbr_dl: Option<u32>,
    /// Cap on the session's APN-Aggregate-Max-Bitrate-UL, bit/s.
    pub max_apn_ambr_ul: Option<u32>,
    /// Cap on the session's APN-Aggregate-Max-Bitrate-DL, bit/s.
    pub max_apn_ambr_dl: Option<u32>,
    /// QCIs not offered to roamers; a rule with one gets `fallback_qci`.
    #[serde(default)]
    pub refused_qcis: Vec<u32>,
    /// The QCI that replaces a refused one (default 9, best effort).
    pub fallback_qci: Option<u32>,
    /// When given, only these rules (names; a trailing `*` matches a prefix) are allowed.
    pub allowed_rules: Option<Vec<String>>,
    /// Rules refused (names; a trailing `*` matches a prefix).
    #[serde(default)]
    pub refused_rules: Vec<String>,
    /// Rating-Group remapping.
    #[serde(default)]
    pub rating_groups: Vec<RatingGroupMap>,
}

/// One rating-group remapping.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RatingGroupMap {
    /// The home network's Rating-Group.
    pub from: u32,
    /// The one installed at the visited PCEF.
    pub to: u32,
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl LocalPolicyEntry {
    /// Whether the entry applies to a session of home PLMN `plmn` on `apn`.
    pub fn matches(&self, plmn: &str, apn: Option<&str>) -> bool {
        self.home_plmn.as_deref().is_none_or(|p| p == plmn)
            && self
                .apn
                .as_deref()
                .is_none_or(|a| apn.is_some_and(|x| x.eq_ignore_ascii_case(a)))
    }

    /// Whether rule `name` may be installed.
    pub fn allows(&self, name: &str) -> bool {
        !self.refused_rules.iter().any(|p| name_matches(p, name))
            && self
                .allowed_rules
                .as_ref()
                .is_none_or(|l| l.iter().any(|p| name_matches(p, name)))
    }

    /// What serde cannot check.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.rating_groups {
            if !seen.insert(m.from) {
                return Err(format!("rating group {} remapped twice", m.from));
            }
        }
        if self
            .fallback_qci
            .is_some_and(|q| self.refused_qcis.contains(&q))
        {
            return Err("fallback_qci is itself refused".into());
        }
        Ok(())
    }
}

/// What local policy did to a Subsession-Decision-Info's PCC-rule AVPs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Authorised {
    /// The AVPs to send over Gx.
    pub avps: Vec<OwnedAvp>,
    /// Rules (dynamic, predefined or bases) refused.
    pub refused: Vec<String>,
    /// Dynamic rules installed with changes (QoS capped, rating group remapped).
    pub modified: Vec<String>,
    /// Rules installed (dynamic and predefined, as named), modified or not.
    pub installed: Vec<String>,
    /// Local-breakout rules the roaming agreement refuses (their names are in `refused`
    /// too; [`super::lbo_check`]).
    pub lbo_refused: Option<super::lbo_check::LboRefused>,
}

/// Applies `entry` (none: everything passes unchanged) to the AVPs of a home decision.
/// Charging-Rule-Install loses its refused members (and goes when none is left), its
/// definitions are capped and remapped; a session-level QoS-Information has its APN-AMBR
/// capped; every other AVP passes unchanged.
pub fn authorise<'a>(
    entry: Option<&LocalPolicyEntry>,
    avps: impl IntoIterator<Item = AvpRef<'a>>,
) -> Authorised {
    let mut out = Authorised::default();
    for a in avps {
        match entry {
            None => {
                if a.key() == gxd::CHARGING_RULE_INSTALL.key() {
                    out.installed.extend(installed_names(&a));
                }
                out.avps.push(owned(&a));
            }
            Some(e) if a.key() == gxd::CHARGING_RULE_INSTALL.key() => {
                if let Some(i) = authorise_install(e, &a, &mut out) {
                    out.avps.push(i);
                }
            }
            Some(e) if a.key() == gxd::QOS_INFORMATION.key() => {
                out.avps.push(cap_qos(e, &a, false).0);
            }
            Some(_) => out.avps.push(owned(&a)),
        }
    }
    out
}

/// A received AVP as an owned one, Grouped ones rebuilt member by member (so they can be
/// edited and re-encoded).
fn owned(a: &AvpRef<'_>) -> OwnedAvp {
    OwnedAvp::from_ref(a)
}

fn grouped(like: &AvpRef<'_>, children: Vec<OwnedAvp>) -> OwnedAvp {
    OwnedAvp::new(
        like.code,
        like.vendor,
        like.flags.0,
        AvpValue::Grouped(children),
    )
}

fn rule_name(d: &AvpRef<'_>) -> Option<String> {
    d.children()
        .flatten()
        .find(|c| c.key() == gxd::CHARGING_RULE_NAME.key())
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
}

fn installed_names(cri: &AvpRef<'_>) -> Vec<String> {
    let mut v = Vec::new();
    for c in cri.children().flatten() {
        if c.key() == gxd::CHARGING_RULE_DEFINITION.key() {
            v.extend(rule_name(&c));
        } else if c.key() == gxd::CHARGING_RULE_NAME.key() {
            v.push(String::from_utf8_lossy(c.data).into_owned());
        }
    }
    v
}

fn authorise_install(
    e: &LocalPolicyEntry,
    cri: &AvpRef<'_>,
    out: &mut Authorised,
) -> Option<OwnedAvp> {
    let mut kept = Vec::new();
    let mut rules = 0;
    for c in cri.children().flatten() {
        let name = if c.key() == gxd::CHARGING_RULE_DEFINITION.key() {
            rule_name(&c)
        } else if c.key() == gxd::CHARGING_RULE_NAME.key()
            || c.key() == gxd::CHARGING_RULE_BASE_NAME.key()
        {
            Some(String::from_utf8_lossy(c.data).into_owned())
        } else {
            None
        };
        let Some(name) = name else {
            kept.push(owned(&c));
            continue;
        };
        if !e.allows(&name) {
            out.refused.push(name);
            continue;
        }
        rules += 1;
        if c.key() == gxd::CHARGING_RULE_DEFINITION.key() {
            let (d, changed) = authorise_definition(e, &c);
            if changed {
                out.modified.push(name.clone());
            }
            kept.push(d);
        } else {
            kept.push(owned(&c));
        }
        if c.key() != gxd::CHARGING_RULE_BASE_NAME.key() {
            out.installed.push(name);
        }
    }
    // Charging-Rule-Install with no rule left says nothing (TS 29.212 §5.3.2 needs one
    // rule or base).
    (rules > 0).then(|| grouped(cri, kept))
}

/// A Charging-Rule-Definition with its Rating-Group remapped and its QoS capped; whether
/// anything changed.
fn authorise_definition(e: &LocalPolicyEntry, d: &AvpRef<'_>) -> (OwnedAvp, bool) {
    let mut changed = false;
    let mut v = Vec::new();
    for c in d.children().flatten() {
        if c.key() == dcca::RATING_GROUP.key() {
            let rg = dcca::RATING_GROUP.decode(c.data).ok();
            match rg.and_then(|rg| e.rating_groups.iter().find(|m| m.from == rg)) {
                Some(m) => {
                    changed = true;
                    v.push(dcca::RATING_GROUP.with(m.to));
                }
                None => v.push(owned(&c)),
            }
        } else if c.key() == gxd::QOS_INFORMATION.key() {
            let (q, ch) = cap_qos(e, &c, true);
            changed |= ch;
            v.push(q);
        } else {
            v.push(owned(&c));
        }
    }
    (grouped(d, v), changed)
}

/// A QoS-Information with the entry's caps: a rule's MBR, GBR and QCI (`rule`), or a
/// session's APN-AMBR.
fn cap_qos(e: &LocalPolicyEntry, q: &AvpRef<'_>, rule: bool) -> (OwnedAvp, bool) {
    let u32_of = |a: &AvpRef<'_>| <[u8; 4]>::try_from(a.data).ok().map(u32::from_be_bytes);
    let find = |key| {
        q.children()
            .flatten()
            .find(|c| c.key() == key)
            .and_then(|c| u32_of(&c))
    };
    let capped = |v: Option<u32>, cap: Option<u32>| match (v, cap) {
        (Some(v), Some(c)) if v > c => Some(c),
        (v, _) => v,
    };
    let mbr_ul = capped(find(rx::MAX_REQUESTED_BANDWIDTH_UL.key()), e.max_mbr_ul);
    let mbr_dl = capped(find(rx::MAX_REQUESTED_BANDWIDTH_DL.key()), e.max_mbr_dl);
    let mut changed = false;
    let mut v = Vec::new();
    for c in q.children().flatten() {
        let k = c.key();
        let old = u32_of(&c);
        let new = if !rule {
            if k == gxd::APN_AGGREGATE_MAX_BITRATE_UL.key() {
                capped(old, e.max_apn_ambr_ul)
            } else if k == gxd::APN_AGGREGATE_MAX_BITRATE_DL.key() {
                capped(old, e.max_apn_ambr_dl)
            } else {
                old
            }
        } else if k == rx::MAX_REQUESTED_BANDWIDTH_UL.key() {
            mbr_ul
        } else if k == rx::MAX_REQUESTED_BANDWIDTH_DL.key() {
            mbr_dl
        } else if k == gxd::GUARANTEED_BITRATE_UL.key() {
            // A GBR above the MBR is invalid (TS 29.212 §4.5.5.0a): kept at most the MBR.
            capped(old, mbr_ul)
        } else if k == gxd::GUARANTEED_BITRATE_DL.key() {
            capped(old, mbr_dl)
        } else if k == gxd::QOS_CLASS_IDENTIFIER.key() {
            match old {
                Some(qci) if e.refused_qcis.contains(&qci) => Some(e.fallback_qci.unwrap_or(9)),
                o => o,
            }
        } else {
            old
        };
        if old.is_some() && new != old {
            changed = true;
            let mut a = owned(&c);
            a.value = AvpValue::U32(new.unwrap_or_default());
            // QCI is an Enumerated: the same 4 octets on the wire.
            v.push(a);
        } else {
            v.push(owned(&c));
        }
    }
    (grouped(q, v), changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use diameter_codec::MessageBuilder;

    /// A message holding `avps`, to read them back as received.
    fn received(avps: Vec<OwnedAvp>) -> diameter_codec::Message {
        let mut b = MessageBuilder::request(272, 16_777_238, true);
        for a in avps {
            b.push(a);
        }
        b.build().unwrap()
    }

    fn definition(name: &str, rg: u32, mbr_dl: u32, gbr_dl: u32, qci: i32) -> OwnedAvp {
        gxd::CHARGING_RULE_DEFINITION.with(vec![
            gxd::CHARGING_RULE_NAME.with(Bytes::from(name.to_string())),
            dcca::RATING_GROUP.with(rg),
            gxd::QOS_INFORMATION.with(vec![
                gxd::QOS_CLASS_IDENTIFIER.with(gxd::QosClassIdentifier(qci)),
                rx::MAX_REQUESTED_BANDWIDTH_DL.with(mbr_dl),
                gxd::GUARANTEED_BITRATE_DL.with(gbr_dl),
            ]),
        ])
    }

    fn entry() -> LocalPolicyEntry {
        LocalPolicyEntry {
            home_plmn: Some("00101".into()),
            apn: Some("internet".into()),
            max_mbr_dl: Some(10_000_000),
            max_apn_ambr_dl: Some(50_000_000),
            refused_qcis: vec![1],
            fallback_qci: Some(8),
            refused_rules: vec!["local-*".into(), "video".into()],
            rating_groups: vec![RatingGroupMap { from: 10, to: 110 }],
            ..Default::default()
        }
    }

    /// Reads back (name, rating group, MBR-DL, GBR-DL, QCI) of every definition.
    fn rules_of(m: &diameter_codec::Message) -> Vec<(String, u32, u32, u32, u32)> {
        let mut out = Vec::new();
        for cri in m.find_all(gxd::CHARGING_RULE_INSTALL.key()) {
            for d in cri.children().flatten() {
                if d.key() != gxd::CHARGING_RULE_DEFINITION.key() {
                    continue;
                }
                let q = d
                    .children()
                    .flatten()
                    .find(|c| c.key() == gxd::QOS_INFORMATION.key())
                    .unwrap();
                let get = |g: &AvpRef<'_>, k| {
                    u32::from_be_bytes(
                        g.children()
                            .flatten()
                            .find(|c| c.key() == k)
                            .unwrap()
                            .data
                            .try_into()
                            .unwrap(),
                    )
                };
                out.push((
                    rule_name(&d).unwrap(),
                    get(&d, dcca::RATING_GROUP.key()),
                    get(&q, rx::MAX_REQUESTED_BANDWIDTH_DL.key()),
                    get(&q, gxd::GUARANTEED_BITRATE_DL.key()),
                    get(&q, gxd::QOS_CLASS_IDENTIFIER.key()),
                ));
            }
        }
        out
    }

    #[test]
    fn rules_are_refused_capped_and_remapped() {
        let home = received(vec![
            gxd::CHARGING_RULE_INSTALL.with(vec![
                definition("internet", 10, 100_000_000, 0, 9),
                definition("voice", 50, 128_000, 64_000, 1),
                definition("video", 20, 20_000_000, 0, 6),
                gxd::CHARGING_RULE_NAME.with(Bytes::from_static(b"local-dns")),
            ]),
            gxd::QOS_INFORMATION.with(vec![
                gxd::APN_AGGREGATE_MAX_BITRATE_UL.with(50_000_000u32),
                gxd::APN_AGGREGATE_MAX_BITRATE_DL.with(100_000_000u32),
            ]),
            gxd::EVENT_TRIGGER.with(gxd::EventTrigger(2)),
        ]);
        let a = authorise(Some(&entry()), home.avps().flatten());
        assert_eq!(a.refused, ["video", "local-dns"]);
        assert_eq!(a.modified, ["internet", "voice"]);
        assert_eq!(a.installed, ["internet", "voice"]);
        let sent = received(a.avps);
        assert_eq!(
            rules_of(&sent),
            [
                ("internet".into(), 110, 10_000_000, 0, 9),
                ("voice".into(), 50, 128_000, 64_000, 8),
            ]
        );
        let q = sent.find(gxd::QOS_INFORMATION.key()).unwrap();
        let dl = q.children().flatten().find(|c| c.code == 1040).unwrap();
        assert_eq!(dl.data, 50_000_000u32.to_be_bytes());
        assert!(sent.find(gxd::EVENT_TRIGGER.key()).is_some());
    }

    #[test]
    fn an_install_left_empty_goes_and_no_entry_changes_nothing() {
        let home = received(vec![
            gxd::CHARGING_RULE_INSTALL.with(vec![definition("video", 20, 1, 0, 6)]),
        ]);
        let a = authorise(Some(&entry()), home.avps().flatten());
        assert!(a.avps.is_empty());
        assert_eq!(a.refused, ["video"]);
        let a = authorise(None, home.avps().flatten());
        assert_eq!(a.installed, ["video"]);
        assert_eq!(received(a.avps).body(), home.body());
    }

    #[test]
    fn entries_match_by_home_and_apn_and_allow_lists() {
        let e = entry();
        assert!(e.matches("00101", Some("INTERNET")));
        assert!(!e.matches("00101", Some("ims")));
        assert!(!e.matches("00103", Some("internet")));
        let all = LocalPolicyEntry::default();
        assert!(all.matches("00109", None));
        let only = LocalPolicyEntry {
            allowed_rules: Some(vec!["internet*".into()]),
            ..Default::default()
        };
        assert!(only.allows("internet-3g") && !only.allows("video"));
        let twice = LocalPolicyEntry {
            rating_groups: vec![
                RatingGroupMap { from: 1, to: 2 },
                RatingGroupMap { from: 1, to: 3 },
            ],
            ..Default::default()
        };
        assert!(twice.check().is_err());
    }
}
