//! `[pcrf.visited]`: the V-PCRF's roaming partners (home PLMN → home realm and H-PCRF),
//! its S9 model, its local policy table and how it chooses the V-OCS.

use super::local_policy::LocalPolicyEntry;
use crate::spr::{SubscriberKey, check_uri};
use diameter_service::dra_client::TerminationBehaviour;
use serde::Deserialize;

/// `[pcrf.visited]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VisitedSection {
    /// This network's PLMN (MCC + MNC, 5 or 6 digits): its own subscribers are served
    /// locally, as the home role serves them, without S9.
    pub own_plmn: String,
    /// One S9 session per client (Gx) session, or one per UE carrying all of its
    /// subsessions.
    #[serde(default)]
    pub s9_model: S9Model,
    /// `[[pcrf.visited.home]]`: the home networks under a roaming agreement.
    #[serde(default, rename = "home")]
    pub homes: Vec<HomeNetwork>,
    /// `[[pcrf.visited.local_policy]]`: the first entry whose home PLMN and APN match a
    /// session applies to every rule the home network sends for it.
    #[serde(default)]
    pub local_policy: Vec<LocalPolicyEntry>,
    /// `[[pcrf.visited.vocs]]`: the visited OCSs a roaming session may be given.
    #[serde(default)]
    pub vocs: Vec<VocsChoice>,
    /// Rule-Failure-Code reported to home (S9 Charging-Rule-Report) for a rule local policy
    /// refuses; TS 29.212 §5.3.38 has no value for "not allowed by the roaming agreement",
    /// so it is the operator's choice. Default 5 (RESOURCES_LIMITATION).
    #[serde(default = "refused_rule_failure_code")]
    pub refused_rule_failure_code: i32,
    /// How S9 sessions a home DRA redirected end (document 002, claims 5–7): the
    /// termination to the DRA and the H-PCRF in parallel, or to the DRA following its
    /// redirect. Only for homes with a `dra`.
    #[serde(default)]
    pub dra_termination: TerminationBehaviour,
    /// After a proxy home DRA forwarded an S9 establishment, talk to the H-PCRF that
    /// answered directly; subsession ends and the termination still go through the DRA
    /// (issue 13's "only the first request" variant). Default: everything through it.
    #[serde(default)]
    pub dra_direct_after_proxy: bool,
    /// `[pcrf.visited.lbo]`: the local-breakout agreements with home operators (document
    /// 000; [`crate::lbo`] "What a V-PCRF does with it"). Absent: every LBO rule a home
    /// network pushes is refused (LBO_UNKNOWN_HOME_OPERATOR).
    #[serde(default)]
    pub lbo: Option<crate::lbo::VisitedLboPolicy>,
}

fn refused_rule_failure_code() -> i32 {
    5
}

/// How Gx sessions map onto S9 sessions (document 002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum S9Model {
    /// One S9 session per IP-CAN session (embodiments 1–9): its Gx session and its BBERFs'
    /// Gxx sessions are its subsessions; the last one's CCR-T ends it with an S9 CCR-T.
    #[default]
    PerSession,
    /// One S9 session per UE and home network, one subsession per Gx session
    /// (embodiment 10): a Gx CCR-T ends only its subsession (S9 CCR-U, Subsession-Operation
    /// TERMINATION) unless it is the last one, which ends the S9 session (S9 CCR-T).
    PerUe,
}

/// `[[pcrf.visited.home]]`: one home operator.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HomeNetwork {
    /// A name for logs.
    pub name: Option<String>,
    /// The home PLMN (MCC + MNC): subscribers whose IMSI starts with it, or whose NAI
    /// realm names it, roam from this network.
    pub plmn: String,
    /// The home network's Diameter realm (Destination-Realm of S9). The node's
    /// `[[node.routes]]` for this realm decide whether S9 goes to the H-PCRF directly or
    /// through a DRA.
    pub realm: String,
    /// The H-PCRF's Diameter identity (Destination-Host of the S9 CCR-I); left out when a
    /// DRA chooses the H-PCRF. Later requests name the host that answered.
    pub pcrf: Option<String>,
    /// The home DRA (TS 29.213 §7), when S9 goes through one as its client (document 002,
    /// claims 5–7): the CCR-I goes to it, later requests go the way it handled the
    /// establishment (to the H-PCRF it redirected to, or through it), and subsession ends
    /// and terminations reach it by `dra_termination`. It must be a `[[node.peers]]`; the
    /// H-PCRFs it may redirect to need `[node] host_map` entries unless their names
    /// resolve. Without it S9 follows the node's routes alone, and a redirect DRA never
    /// hears of the S9 session's end.
    pub dra: Option<String>,
}

/// `[[pcrf.visited.vocs]]`: a visited OCS and the sessions it may serve.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VocsChoice {
    /// Its DiameterURI (Primary-Event-Charging-Function-Name on Gx).
    pub uri: String,
    /// Only for subscribers of these home PLMNs; every one when absent.
    pub home_plmns: Option<Vec<String>>,
    /// Only for these APNs; every one when absent.
    pub apns: Option<Vec<String>>,
}

impl VocsChoice {
    /// Whether it may serve a session of home PLMN `plmn` on `apn`.
    pub fn serves(&self, plmn: &str, apn: Option<&str>) -> bool {
        self.home_plmns
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p == plmn))
            && self
                .apns
                .as_ref()
                .is_none_or(|l| apn.is_some_and(|a| l.iter().any(|x| x.eq_ignore_ascii_case(a))))
    }
}

/// Where a subscriber belongs, as seen from this network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Belonging<'a> {
    /// A subscriber of this network.
    Local,
    /// A roaming subscriber of a partner: its home and its IMSI (or NAI).
    Roaming {
        /// The home network.
        home: &'a HomeNetwork,
        /// The identity sent home in Subscription-Id.
        identity: SubscriberKey,
    },
    /// A subscriber of a network with no roaming agreement, or with no identity that
    /// names a PLMN.
    Unknown,
}

/// The PLMN (MCC + MNC digits) a NAI realm names (TS 23.003 §19.3:
/// `…mnc<MNC>.mcc<MCC>.3gppnetwork.org`); a 3-digit MNC with a leading 0 is also tried as
/// 2 digits by the caller.
fn nai_plmn(nai: &str) -> Option<(String, String)> {
    let realm = nai.rsplit_once('@')?.1.to_ascii_lowercase();
    let mut mnc = None;
    let mut mcc = None;
    for label in realm.split('.') {
        if let Some(d) = label.strip_prefix("mnc") {
            mnc = Some(d.to_string());
        } else if let Some(d) = label.strip_prefix("mcc") {
            mcc = Some(d.to_string());
        }
    }
    Some((mcc?, mnc?))
}

impl VisitedSection {
    /// Where the subscriber of these Subscription-Ids belongs: the IMSI's leading digits
    /// (TS 23.003 §2.2, MCC + MNC), else a NAI whose user part is an IMSI or whose realm
    /// names the PLMN.
    pub fn belonging(&self, ids: &[SubscriberKey]) -> Belonging<'_> {
        let classify = |plmn_of: &dyn Fn(&str) -> bool, id: &SubscriberKey| {
            if plmn_of(&self.own_plmn) {
                return Some(Belonging::Local);
            }
            self.homes
                .iter()
                .find(|h| plmn_of(&h.plmn))
                .map(|home| Belonging::Roaming {
                    home,
                    identity: id.clone(),
                })
        };
        for id in ids {
            let found = match id {
                SubscriberKey::Imsi(imsi) => classify(&|p: &str| imsi.starts_with(p), id),
                SubscriberKey::Nai(nai) => {
                    let user = nai.split('@').next().unwrap_or("");
                    if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
                        classify(&|p: &str| user.starts_with(p), id)
                    } else if let Some((mcc, mnc)) = nai_plmn(nai) {
                        let short = mnc.strip_prefix('0').unwrap_or(&mnc).to_string();
                        classify(
                            &|p: &str| p == format!("{mcc}{mnc}") || p == format!("{mcc}{short}"),
                            id,
                        )
                    } else {
                        None
                    }
                }
                SubscriberKey::Msisdn(_) => None,
            };
            if let Some(b) = found {
                return b;
            }
        }
        Belonging::Unknown
    }

    /// The local policy entry for a session of home PLMN `plmn` on `apn`: the first that
    /// matches, in file order.
    pub fn local_policy_for(&self, plmn: &str, apn: Option<&str>) -> Option<&LocalPolicyEntry> {
        self.local_policy.iter().find(|e| e.matches(plmn, apn))
    }

    /// What serde cannot check.
    pub fn check(&self) -> Result<(), String> {
        let plmn_ok = |p: &str| (5..=6).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        if !plmn_ok(&self.own_plmn) {
            return Err(format!(
                "pcrf.visited.own_plmn `{}`: 5 or 6 digits (MCC + MNC)",
                self.own_plmn
            ));
        }
        for (i, h) in self.homes.iter().enumerate() {
            if !plmn_ok(&h.plmn) {
                return Err(format!(
                    "pcrf.visited.home[{i}].plmn `{}`: 5 or 6 digits (MCC + MNC)",
                    h.plmn
                ));
            }
            if h.plmn == self.own_plmn {
                return Err(format!("pcrf.visited.home[{i}]: the own PLMN"));
            }
            if h.realm.trim().is_empty() {
                return Err(format!("pcrf.visited.home[{i}]: empty realm"));
            }
            if h.dra.as_deref().is_some_and(|d| d.trim().is_empty()) {
                return Err(format!("pcrf.visited.home[{i}]: empty dra"));
            }
        }
        for (i, v) in self.vocs.iter().enumerate() {
            check_uri(&v.uri, &format!("pcrf.visited.vocs[{i}].uri"))?;
        }
        for (i, e) in self.local_policy.iter().enumerate() {
            e.check()
                .map_err(|m| format!("pcrf.visited.local_policy[{i}]: {m}"))?;
        }
        for (i, a) in self.lbo.iter().flat_map(|l| &l.agreements).enumerate() {
            let at = format!("pcrf.visited.lbo.agreement[{i}]");
            if a.home_operator.trim().is_empty() {
                return Err(format!("{at}: empty home_operator"));
            }
            if self
                .lbo
                .iter()
                .flat_map(|l| &l.agreements)
                .take(i)
                .any(|b| b.home_operator == a.home_operator)
            {
                return Err(format!(
                    "{at}: a second agreement with home operator `{}`",
                    a.home_operator
                ));
            }
            if a.allowed_prefixes.is_empty() && a.local_up_policies.is_empty() {
                return Err(format!(
                    "{at}: neither allowed_prefixes nor local_up_policies: it would allow nothing"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> VisitedSection {
        VisitedSection {
            own_plmn: "00102".into(),
            s9_model: S9Model::PerSession,
            homes: vec![HomeNetwork {
                name: None,
                plmn: "00101".into(),
                realm: "home.test".into(),
                pcrf: None,
                dra: None,
            }],
            local_policy: vec![],
            vocs: vec![],
            refused_rule_failure_code: 5,
            dra_termination: TerminationBehaviour::Parallel,
            dra_direct_after_proxy: false,
            lbo: None,
        }
    }

    #[test]
    fn roaming_is_told_from_the_imsi_or_the_nai() {
        let s = section();
        let imsi = |i: &str| vec![SubscriberKey::Imsi(i.into())];
        assert!(matches!(
            s.belonging(&imsi("001010000000001")),
            Belonging::Roaming { home, .. } if home.realm == "home.test"
        ));
        assert_eq!(s.belonging(&imsi("001020000000001")), Belonging::Local);
        assert_eq!(s.belonging(&imsi("310150000000001")), Belonging::Unknown);
        let nai = |n: &str| vec![SubscriberKey::Nai(n.into())];
        assert!(matches!(
            s.belonging(&nai("someone@ims.mnc001.mcc001.3gppnetwork.org")),
            Belonging::Roaming { .. }
        ));
        assert!(matches!(
            s.belonging(&nai(
                "001010000000007@nai.epc.mnc001.mcc001.3gppnetwork.org"
            )),
            Belonging::Roaming { .. }
        ));
        assert_eq!(
            s.belonging(&nai("x@ims.mnc002.mcc001.3gppnetwork.org")),
            Belonging::Local
        );
        assert_eq!(s.belonging(&nai("user4@home.test")), Belonging::Unknown);
        assert_eq!(
            s.belonging(&[SubscriberKey::Msisdn("4670".into())]),
            Belonging::Unknown
        );
    }

    #[test]
    fn vocs_filters_by_home_and_apn() {
        let v = VocsChoice {
            uri: "aaa://ocs.visited.test".into(),
            home_plmns: Some(vec!["00101".into()]),
            apns: Some(vec!["internet".into()]),
        };
        assert!(v.serves("00101", Some("Internet")));
        assert!(!v.serves("00101", Some("ims")));
        assert!(!v.serves("00103", Some("internet")));
        assert!(!v.serves("00101", None));
    }

    #[test]
    fn a_home_dra_and_the_termination_behaviour_are_read() {
        let s: VisitedSection = toml::from_str(
            r#"
            own_plmn = "00102"
            dra_termination = "redirect"
            [[home]]
            plmn = "00101"
            realm = "home.test"
            dra = "dra.home.test"
            "#,
        )
        .unwrap();
        assert_eq!(s.dra_termination, TerminationBehaviour::Redirect);
        assert_eq!(s.homes[0].dra.as_deref(), Some("dra.home.test"));
        s.check().unwrap();
        let mut bad = s.clone();
        bad.homes[0].dra = Some(" ".into());
        assert!(bad.check().unwrap_err().contains("empty dra"));
        // Without them: parallel, no DRA (S9 by the node's routes).
        assert_eq!(section().dra_termination, TerminationBehaviour::Parallel);
        assert!(
            toml::from_str::<VisitedSection>("own_plmn = \"00102\"\ndra_termination = \"both\"")
                .is_err()
        );
    }

    #[test]
    fn bad_plmns_are_named() {
        let mut s = section();
        s.own_plmn = "12".into();
        assert!(s.check().unwrap_err().contains("own_plmn"));
        let mut s = section();
        s.homes[0].plmn = "00102".into();
        assert!(s.check().unwrap_err().contains("home[0]"));
    }

    #[test]
    fn lbo_agreements_are_checked() {
        let agreement = |op: &str| crate::lbo::LboAgreement {
            home_operator: op.into(),
            key: crate::lbo::Key::new(vec![1; 16]).unwrap(),
            packages: vec!["p".into()],
            allowed_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            local_up_policies: vec![],
        };
        let mut s = section();
        s.lbo = Some(crate::lbo::VisitedLboPolicy {
            agreements: vec![agreement("00101")],
        });
        assert_eq!(s.check(), Ok(()));
        s.lbo.as_mut().unwrap().agreements.push(agreement("00101"));
        assert!(s.check().unwrap_err().contains("agreement[1]"));
        let mut empty = agreement(" ");
        s.lbo.as_mut().unwrap().agreements = vec![empty.clone()];
        assert!(s.check().unwrap_err().contains("home_operator"));
        empty.home_operator = "00101".into();
        empty.allowed_prefixes.clear();
        s.lbo.as_mut().unwrap().agreements = vec![empty];
        assert!(s.check().unwrap_err().contains("allow nothing"));
    }
}
