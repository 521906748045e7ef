//! The subscription profile repository (SPR): subscriber profiles and the PCC rules they
//! name, behind [`SubscriberStore`].
//!
//! The embedded default, [`MemorySpr`], is loaded from a TOML file (`pcrf/examples/spr.toml`
//! documents every key): `[[rule]]` tables define dynamic PCC rules (TS 29.212 §5.3.4
//! Charging-Rule-Definition) and `[[subscriber]]` tables the profiles. A shared engine (an
//! HSS/UDR front, Redis, PostgreSQL) implements the same trait: one lookup by subscription
//! identity, answered asynchronously.

use diameter_codec::types::{DiameterUri, IpFilterRule};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

/// A store operation's future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed; nothing of it was applied.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// How a subscriber is named in Subscription-Id (RFC 4006 §8.47 Subscription-Id-Type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SubscriberKey {
    /// END_USER_IMSI (1).
    Imsi(String),
    /// END_USER_E164 (0): the MSISDN.
    Msisdn(String),
    /// END_USER_NAI (3).
    Nai(String),
}

impl SubscriberKey {
    /// The key as `imsi:…`, `msisdn:…`, `nai:…` (store keys, logs, the operator endpoint).
    pub fn as_key(&self) -> String {
        match self {
            Self::Imsi(v) => format!("imsi:{v}"),
            Self::Msisdn(v) => format!("msisdn:{v}"),
            Self::Nai(v) => format!("nai:{v}"),
        }
    }

    /// From an operator's text: `imsi:…`, `msisdn:…`, `nai:…`, or bare digits (an IMSI).
    pub fn parse(s: &str) -> Self {
        match s.split_once(':') {
            Some(("imsi", v)) => Self::Imsi(v.into()),
            Some(("msisdn", v)) => Self::Msisdn(v.into()),
            Some(("nai", v)) => Self::Nai(v.into()),
            _ if s.contains('@') => Self::Nai(s.into()),
            _ => Self::Imsi(s.into()),
        }
    }
}

/// Flow-Direction (TS 29.212, AVP 1080).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FlowDirection {
    /// DOWNLINK (1).
    Downlink,
    /// UPLINK (2).
    Uplink,
    /// BIDIRECTIONAL (3).
    #[default]
    Bidirectional,
}

impl FlowDirection {
    /// The Flow-Direction value.
    pub fn code(self) -> i32 {
        match self {
            Self::Downlink => 1,
            Self::Uplink => 2,
            Self::Bidirectional => 3,
        }
    }
}

/// One Flow-Information of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Flow-Description (IPFilterRule, RFC 6733 §4.3).
    pub description: String,
    /// Flow-Direction.
    #[serde(default)]
    pub direction: FlowDirection,
}

/// Allocation-Retention-Priority (TS 29.212 §5.3.32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arp {
    /// Priority-Level, 1 (highest) to 15.
    pub priority_level: u32,
    /// Pre-emption-Capability: may take resources of lower priority bearers.
    #[serde(default)]
    pub pre_emption_capability: bool,
    /// Pre-emption-Vulnerability: may lose resources to higher priority bearers.
    #[serde(default = "yes")]
    pub pre_emption_vulnerability: bool,
}

fn yes() -> bool {
    true
}

/// QoS-Information of a rule (TS 29.212 §5.3.16), bit rates in bit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleQos {
    /// QoS-Class-Identifier.
    pub qci: u32,
    /// Max-Requested-Bandwidth-UL.
    pub mbr_ul: Option<u32>,
    /// Max-Requested-Bandwidth-DL.
    pub mbr_dl: Option<u32>,
    /// Guaranteed-Bitrate-UL (GBR QCIs).
    pub gbr_ul: Option<u32>,
    /// Guaranteed-Bitrate-DL.
    pub gbr_dl: Option<u32>,
    /// Allocation-Retention-Priority.
    pub arp: Option<Arp>,
}

/// Metering-Method (TS 29.212 §5.3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metering {
    /// DURATION (0).
    Duration,
    /// VOLUME (1).
    Volume,
    /// DURATION_VOLUME (2).
    DurationVolume,
    /// EVENT (3).
    Event,
}

impl Metering {
    /// The Metering-Method value.
    pub fn code(self) -> i32 {
        match self {
            Self::Duration => 0,
            Self::Volume => 1,
            Self::DurationVolume => 2,
            Self::Event => 3,
        }
    }
}

/// A dynamic PCC rule: what the PCRF sends in Charging-Rule-Definition (TS 29.212 §5.3.4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Charging-Rule-Name.
    pub name: String,
    /// Precedence: lower values are applied first (§5.3.11).
    pub precedence: Option<u32>,
    /// Rating-Group (the Charging-Key of TS 23.203).
    pub rating_group: Option<u32>,
    /// Service-Identifier.
    pub service_identifier: Option<u32>,
    /// Online charging for this rule (absent: the session's default).
    pub online: Option<bool>,
    /// Offline charging for this rule (absent: the session's default).
    pub offline: Option<bool>,
    /// Metering-Method.
    pub metering: Option<Metering>,
    /// Flow-Information (a dynamic rule needs flows, §5.3.4).
    pub flows: Vec<Flow>,
    /// QoS-Information.
    pub qos: Option<RuleQos>,
    /// Monitoring-Key.
    pub monitoring_key: Option<String>,
    /// Flow-Status (TS 29.212 §5.3.11; gating of a rule derived from an AF session):
    /// absent means enabled. Not a key of the SPR file.
    #[serde(skip_deserializing, default)]
    pub flow_status: Option<i32>,
    /// AF-Charging-Identifier of the AF session the rule was derived from (TS 29.212
    /// §5.3.4). Not a key of the SPR file.
    #[serde(skip_deserializing, default)]
    pub af_charging_id: Option<String>,
    /// Flows: the AF's media components and flow numbers the rule serves (TS 29.214
    /// §5.3.10). Not a key of the SPR file.
    #[serde(skip_deserializing, default)]
    pub af_flows: Vec<AfFlows>,
    /// Local breakout (document 000): the LBO marker and grant. Not a key of the SPR file.
    #[serde(skip)]
    pub lbo: Option<crate::lbo::LboMark>,
}

impl RuleDef {
    /// A rule `name` of `precedence` that only matches `flows`: no charging, QoS or AF data
    /// of its own (a local-breakout rule, as presets and the pushed LBO rules are).
    pub fn with_flows(name: String, precedence: Option<u32>, flows: Vec<Flow>) -> Self {
        Self {
            name,
            precedence,
            rating_group: None,
            service_identifier: None,
            online: None,
            offline: None,
            metering: None,
            flows,
            qos: None,
            monitoring_key: None,
            flow_status: None,
            af_charging_id: None,
            af_flows: Vec::new(),
            lbo: None,
        }
    }
}

/// One Flows AVP: a media component and some of its flows (none: all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfFlows {
    /// Media-Component-Number.
    pub media_component: u32,
    /// Flow-Number values.
    pub flow_numbers: Vec<u32>,
}

/// APN-AMBR in bit/s (TS 29.212 §5.3.39, §5.3.40).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ambr {
    /// APN-Aggregate-Max-Bitrate-UL.
    pub ul: u32,
    /// APN-Aggregate-Max-Bitrate-DL.
    pub dl: u32,
}

/// Default-EPS-Bearer-QoS (TS 29.212 §5.3.48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultBearerQos {
    /// QoS-Class-Identifier of the default bearer (a non-GBR QCI, 5–9).
    pub qci: u32,
    /// Its Allocation-Retention-Priority.
    pub arp: Arp,
}

/// Caps on what the PCRF authorises for a subscriber, bit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QosLimits {
    /// Highest Max-Requested-Bandwidth-UL (and GBR) of any rule, and of APN-AMBR UL.
    pub max_ul: Option<u32>,
    /// The same downlink.
    pub max_dl: Option<u32>,
}

impl QosLimits {
    /// `v` capped uplink.
    pub fn ul(&self, v: u32) -> u32 {
        self.max_ul.map_or(v, |m| v.min(m))
    }
    /// `v` capped downlink.
    pub fn dl(&self, v: u32) -> u32 {
        self.max_dl.map_or(v, |m| v.min(m))
    }
}

/// A subscriber's profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// IMSI (END_USER_IMSI).
    pub imsi: Option<String>,
    /// MSISDN (END_USER_E164).
    pub msisdn: Option<String>,
    /// NAI (END_USER_NAI).
    pub nai: Option<String>,
    /// Online charging required (SPR → PCRF, document 001 S305): Online ENABLE_ONLINE at
    /// session level, and the OCS named in Charging-Information.
    #[serde(default)]
    pub online: bool,
    /// Offline charging: Offline ENABLE_OFFLINE and the CCF named.
    #[serde(default)]
    pub offline: bool,
    /// Dynamic rules (names of `[[rule]]` tables) installed at session establishment.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Rules predefined at the PCEF, activated by Charging-Rule-Name.
    #[serde(default)]
    pub predefined_rules: Vec<String>,
    /// Rule bases predefined at the PCEF, activated by Charging-Rule-Base-Name.
    #[serde(default)]
    pub rule_bases: Vec<String>,
    /// Default-EPS-Bearer-QoS (absent: `[pcrf] default_bearer`).
    pub default_bearer: Option<DefaultBearerQos>,
    /// Subscribed APN-AMBR (absent: none sent unless the PCEF asked).
    pub apn_ambr: Option<Ambr>,
    /// Caps on bit rates.
    #[serde(default)]
    pub qos_limits: QosLimits,
    /// Event triggers subscribed for this subscriber's sessions, by name
    /// (`RAT_CHANGE`, …) — besides those the event policies need.
    #[serde(default)]
    pub event_triggers: Vec<String>,
    /// Subscribed local-breakout service packages (document 000): an LBO AAR for a package
    /// the subscriber lacks is refused (5809), and `[[pcrf.lbo.preset]]` rules of these
    /// packages go to the V-PCRF at S9 establishment.
    #[serde(default)]
    pub lbo_packages: Vec<String>,
}

impl Profile {
    /// The identities this profile answers to.
    pub fn keys(&self) -> Vec<SubscriberKey> {
        let mut k = Vec::new();
        if let Some(v) = &self.imsi {
            k.push(SubscriberKey::Imsi(v.clone()));
        }
        if let Some(v) = &self.msisdn {
            k.push(SubscriberKey::Msisdn(v.clone()));
        }
        if let Some(v) = &self.nai {
            k.push(SubscriberKey::Nai(v.clone()));
        }
        k
    }
}

/// The SPR file: rules and subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SprFile {
    /// Dynamic PCC rules by name.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleDef>,
    /// Subscriber profiles.
    #[serde(default, rename = "subscriber")]
    pub subscribers: Vec<Profile>,
}

impl SprFile {
    /// Reads and checks an SPR file.
    pub fn load(path: &Path) -> Result<Self, diameter_node::config::ConfigError> {
        let spr: Self = diameter_node::config::load_config(path)?;
        spr.check()
            .map_err(|m| diameter_node::config::ConfigError {
                file: path.to_path_buf(),
                position: None,
                message: m,
            })?;
        Ok(spr)
    }

    /// Parses and checks SPR text read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Self, diameter_node::config::ConfigError> {
        let spr: Self = diameter_node::config::parse_config(file, text)?;
        spr.check()
            .map_err(|m| diameter_node::config::ConfigError {
                file: file.to_path_buf(),
                position: None,
                message: m,
            })?;
        Ok(spr)
    }

    /// What serde cannot check: rule names unique and known, flows and names well-formed,
    /// every subscriber reachable by some identity.
    pub fn check(&self) -> Result<(), String> {
        let mut names = BTreeMap::new();
        for (i, r) in self.rules.iter().enumerate() {
            if r.name.is_empty() {
                return Err(format!("rule[{i}]: empty name"));
            }
            if names.insert(r.name.as_str(), i).is_some() {
                return Err(format!("rule[{i}]: rule `{}` defined twice", r.name));
            }
            // TS 29.212 §5.3.4: a dynamic rule carries Flow-Information (or a TDF
            // application, which this PCRF does not define).
            if r.flows.is_empty() {
                return Err(format!("rule `{}`: a dynamic rule needs flows", r.name));
            }
            for f in &r.flows {
                IpFilterRule::parse_str(&f.description)
                    .map_err(|e| format!("rule `{}`: flow `{}`: {e}", r.name, f.description))?;
            }
            if let Some(q) = &r.qos {
                check_arp(q.arp, &format!("rule `{}`", r.name))?;
            }
        }
        let mut seen = HashMap::new();
        for (i, s) in self.subscribers.iter().enumerate() {
            let keys = s.keys();
            if keys.is_empty() {
                return Err(format!("subscriber[{i}]: needs imsi, msisdn or nai"));
            }
            for k in keys {
                if let Some(j) = seen.insert(k.clone(), i) {
                    return Err(format!(
                        "subscriber[{i}]: {} is also subscriber[{j}]",
                        k.as_key()
                    ));
                }
            }
            for r in &s.rules {
                if !names.contains_key(r.as_str()) {
                    return Err(format!("subscriber[{i}]: unknown rule `{r}`"));
                }
            }
            for t in &s.event_triggers {
                if crate::policy::event_trigger_code(t).is_none() {
                    return Err(format!("subscriber[{i}]: unknown event trigger `{t}`"));
                }
            }
            if let Some(d) = &s.default_bearer {
                check_arp(Some(d.arp), &format!("subscriber[{i}]"))?;
            }
        }
        Ok(())
    }
}

/// TS 29.212 §5.3.45: Priority-Level 1 to 15.
pub(crate) fn check_arp(arp: Option<Arp>, what: &str) -> Result<(), String> {
    match arp {
        Some(a) if !(1..=15).contains(&a.priority_level) => Err(format!(
            "{what}: priority_level {} is not 1 to 15",
            a.priority_level
        )),
        _ => Ok(()),
    }
}

/// Checks a DiameterURI from configuration (RFC 6733 §4.3.1).
pub(crate) fn check_uri(uri: &str, what: &str) -> Result<(), String> {
    DiameterUri::parse_str(uri)
        .map(|_| ())
        .map_err(|e| format!("{what}: `{uri}`: {e}"))
}

/// A subscriber's profile with the definitions of its dynamic rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// The profile.
    pub profile: Profile,
    /// Its dynamic rules, in profile order, each shared by the subscriber's sessions (the
    /// embedded SPR stores them with the profile's QoS limits applied, so that
    /// [`crate::policy::cap_rule`] has nothing left to copy).
    pub rules: Vec<Arc<RuleDef>>,
}

/// The SPR interface.
pub trait SubscriberStore: Send + Sync + 'static {
    /// The profile of the first of `keys` that names a subscriber.
    fn subscriber(&self, keys: Vec<SubscriberKey>) -> StoreFuture<'_, Option<Arc<Subscriber>>>;

    /// A dynamic rule by name (event policies and operator pushes install rules by name).
    fn rule(&self, name: String) -> StoreFuture<'_, Option<Arc<RuleDef>>>;
}

/// The embedded SPR: the file's contents in memory.
#[derive(Debug, Default)]
pub struct MemorySpr {
    by_key: HashMap<SubscriberKey, Arc<Subscriber>>,
    rules: HashMap<String, Arc<RuleDef>>,
}

impl MemorySpr {
    /// From a checked file.
    pub fn new(file: &SprFile) -> Self {
        let rules: HashMap<String, Arc<RuleDef>> = file
            .rules
            .iter()
            .map(|r| (r.name.clone(), Arc::new(r.clone())))
            .collect();
        let mut by_key = HashMap::new();
        for p in &file.subscribers {
            let sub = Arc::new(Subscriber {
                profile: p.clone(),
                rules: p
                    .rules
                    .iter()
                    .filter_map(|n| rules.get(n))
                    .map(|r| crate::policy::cap_rule(r, &p.qos_limits))
                    .collect(),
            });
            for k in p.keys() {
                by_key.insert(k, sub.clone());
            }
        }
        Self { by_key, rules }
    }

    /// How many identities it answers to.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether it has no subscriber.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

impl SubscriberStore for MemorySpr {
    fn subscriber(&self, keys: Vec<SubscriberKey>) -> StoreFuture<'_, Option<Arc<Subscriber>>> {
        let found = keys.iter().find_map(|k| self.by_key.get(k).cloned());
        Box::pin(async move { Ok(found) })
    }

    fn rule(&self, name: String) -> StoreFuture<'_, Option<Arc<RuleDef>>> {
        let found = self.rules.get(&name).cloned();
        Box::pin(async move { Ok(found) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_keys_parse() {
        assert_eq!(
            SubscriberKey::parse("001010000000001"),
            SubscriberKey::Imsi("001010000000001".into())
        );
        assert_eq!(
            SubscriberKey::parse("msisdn:4670"),
            SubscriberKey::Msisdn("4670".into())
        );
        assert_eq!(
            SubscriberKey::parse("user@home.test"),
            SubscriberKey::Nai("user@home.test".into())
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let p = Path::new("spr.toml");
        let e = SprFile::parse(
            p,
            "[[rule]]\nname = \"a\"\nflows = [{ description = \"allow all\" }]\n",
        )
        .unwrap_err();
        assert!(e.message.contains("flow `allow all`"), "{e}");
        let e =
            SprFile::parse(p, "[[subscriber]]\nimsi = \"1\"\nrules = [\"nope\"]\n").unwrap_err();
        assert!(e.message.contains("unknown rule `nope`"), "{e}");
        let e = SprFile::parse(p, "[[subscriber]]\nimsi = \"1\"\nfoo = 1\n").unwrap_err();
        assert_eq!(e.position, Some((3, 1)), "{e}");
        let e = SprFile::parse(
            p,
            "[[subscriber]]\nimsi = \"1\"\n[[subscriber]]\nimsi = \"1\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("also subscriber[0]"), "{e}");
    }
}
