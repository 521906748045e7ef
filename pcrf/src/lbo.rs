//! Local breakout (document 000, issue 12 item 6): the grant the home operator signs for a
//! local-breakout PCC rule, the checks the visited PCRF makes before installing it, and the
//! OTT provider's dynamic key the home PCRF checks first. Pure: no clock, no I/O — `now` is
//! passed in.
//!
//! # The document's flow on EPC
//!
//! Document 000 describes 5G home-routed roaming (H-AS → H-PCF → V-PCF → V-SMF/V-UPF). This
//! project maps it onto EPC policy interfaces, an abstraction stated as such: the H-AS is an AF
//! on Rx, home → visited is S9 (RAR on the UE's S9 session, the rule in
//! Subsession-Decision-Info / Charging-Rule-Install), the visited policy function is the V-PCRF,
//! which installs the rule on the visited PCEF (the V-UP) with a Gx RAR. The answers travel
//! back Gx RAA → S9 RAA → Rx AAA.
//!
//! # Grant (home operator → visited operator)
//!
//! An LBO rule is a Charging-Rule-Definition carrying our `LBO-Indicator` = LOCAL_BREAKOUT and
//! `LBO-Grant` {grant id, home operator id, service package id, expiry, signature}. The
//! signature is HMAC-SHA256 under the key of the roaming agreement between the two operators
//! over [`grant_message`]: a domain tag, then each field as a 4-octet big-endian length and its
//! octets — grant id, home operator id, package id, expiry (the 4 octets of the Time AVP, NTP
//! seconds, RFC 6733 §4.3.1), rule name, precedence (a presence octet, then 4 octets),
//! and per Flow-Information its Flow-Direction (4 octets) and Flow-Description exactly as
//! sent. QoS, charging and gating are not covered: the visited network may cap them
//! (document 001's "authorise under local policy").
//!
//! [`verify_lbo_rule`] is what a V-PCRF runs, in this order (authenticate first, then judge
//! what was authenticated): grant present → home operator known under an agreement →
//! signature → expiry → package allowed by the agreement → every flow's server side inside
//! the visited CDN prefixes the agreement allows. The server side of a flow is its source for
//! a DOWNLINK filter, its destination for an UPLINK one, and either side for a BIDIRECTIONAL
//! one; it must be concrete addresses (not `any`, `assigned` or negated) all inside an
//! allowed prefix.
//!
//! # What a V-PCRF does with it
//!
//! Its agreements are a [`VisitedLboPolicy`] (`[pcrf.visited.lbo]`, serde: `[[agreement]]` tables with
//! `home_operator`, hex `key`, `packages`, `allowed_prefixes` and, for variant FIG. 6,
//! `local_up_policies`). For each Charging-Rule-Install of an S9 RAR (or CCA)
//! Subsession-Decision-Info, [`lbo_rules_in`] yields the LBO rules with their grants and
//! [`ReadLboRule::verify`] checks each. Refused: the S9 RAA carries
//! [`LboRefusal::result_avp`] at command level and [`s9_refusal_info`] for the subsession, and
//! nothing goes to the PCEF. Accepted: the Charging-Rule-Definitions go on to the visited PCEF
//! in a Gx RAR as they are (LBO-Indicator kept: the PCEF breaks the matching traffic out;
//! Traffic-Steering-Policy-Identifier kept: it steers to the home operator's user plane), and
//! the Gx RAA's result becomes the S9 RAA's. Presets in an S9 CCA that fail the checks
//! are left out and reported home INACTIVE like any rule the V-PCRF refuses. The V-PCRF's
//! code is `pcrf/src/visited/lbo_check.rs`, called where it authorises every home rule.
//!
//! # OTT dynamic key (OTT → home operator)
//!
//! The home operator's grant module gave the OTT provider an initial key per package
//! (document 000 ¶0052). The H-AS sends with its AAR our `LBO-OTT-Grant` {OTT id, package
//! id, nonce, expiry, dynamic key} where the dynamic key is HMAC-SHA256 under the initial key
//! over [`ott_key_message`] (domain tag, package id, nonce, expiry, length-prefixed as above).
//! Replay protection is the expiry the key covers: a key is refused once expired, and one
//! whose expiry lies further ahead than the configured lifetime is refused too, so a captured
//! key is useful for a bounded time only.
//!
//! # Result codes
//!
//! Every refusal reaches the AF with a code of its own. All but the authentication failure
//! are Experimental-Result-Codes under our Vendor-Id 32473 ([`VENDOR_ID`]), in the permanent
//! failure class (RFC 6733 §7.1.5: the same request will fail again):
//!
//! | code | name | refused because |
//! |---|---|---|
//! | 4001 | DIAMETER_AUTHENTICATION_REJECTED (Result-Code, RFC 6733 §7.1.4) | the OTT's dynamic key is wrong (home) |
//! | 5801 | LBO_UNKNOWN_HOME_OPERATOR | no roaming agreement names the grant's home operator (visited), or home has no LBO key for the visited network (home) |
//! | 5802 | LBO_PACKAGE_NOT_ALLOWED | the agreement does not cover the grant's service package (visited) |
//! | 5803 | LBO_DESTINATION_NOT_ALLOWED | a flow's server lies outside the allowed visited CDN prefixes (visited) |
//! | 5804 | LBO_GRANT_SIGNATURE_INVALID | the signature does not verify under the agreement's key (visited) |
//! | 5805 | LBO_GRANT_EXPIRED | the grant's expiry has passed (visited) |
//! | 5806 | LBO_GRANT_MISSING | an LBO rule without a readable grant, or an LBO request without a rule (home or visited) |
//! | 5807 | LBO_OTT_PACKAGE_NOT_SUBSCRIBED | the OTT is unknown or has not subscribed to the package (home) |
//! | 5808 | LBO_OTT_KEY_EXPIRED | the OTT's dynamic key expired, or its expiry is beyond the allowed lifetime (home) |
//! | 5809 | LBO_SUBSCRIBER_PACKAGE_NOT_SUBSCRIBED | the UE's subscriber has not subscribed to the package (home SPR) |
//!
//! No code of `shared/reference/protocol.md` nor of the project's dictionaries is in 58xx,
//! so [`reason_of_code`] reads one that arrives without its Vendor-Id (Subsession-Enforcement-Info
//! carries a bare Experimental-Result-Code) as ours.

use crate::spr::{Flow, FlowDirection, RuleDef};
use diameter_codec::dict::{base, gx as gxd, roaming, rx};
use diameter_codec::types::{DiameterTime, FilterAddress, FilterEndpoint, IpFilterRule};
use diameter_codec::{AvpRef, OwnedAvp};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::gx::child;

type HmacSha256 = Hmac<Sha256>;

/// Our Vendor-Id (RFC 5612 documentation PEN), of the LBO AVPs and result codes.
pub const VENDOR_ID: u32 = 32_473;
/// Length of an HMAC-SHA256 signature or dynamic key.
pub const MAC_LEN: usize = 32;
/// Longest nonce accepted in an LBO-OTT-Grant.
pub const MAX_NONCE_LEN: usize = 64;
const GRANT_TAG: &[u8] = b"roaming-stack-doc/lbo-grant/v1";
const OTT_TAG: &[u8] = b"roaming-stack-doc/lbo-ott-key/v1";

/// A shared secret from configuration, written as hex; at least 16 octets.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Key(Vec<u8>);

impl Key {
    /// From octets (at least 16).
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < 16 {
            return Err(format!(
                "a key needs at least 16 octets (32 hex digits), this one has {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length (RFC 2104 §2).
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts every key length")
    }
}

impl TryFrom<String> for Key {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::new(hex::decode(s.trim()).map_err(|e| format!("key is not hex: {e}"))?)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Key({} octets)", self.0.len())
    }
}

/// A [`DiameterTime`] stored as its seconds (the durable session store).
mod time_secs {
    use diameter_codec::types::DiameterTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DiameterTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(t.0)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DiameterTime, D::Error> {
        u32::deserialize(d).map(DiameterTime)
    }
}

/// The home operator's grant for one LBO rule (our LBO-Grant AVP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// LBO-Grant-Id.
    pub grant_id: String,
    /// LBO-Home-Operator-Id.
    pub home_operator: String,
    /// LBO-Service-Package-Id.
    pub package: String,
    /// LBO-Grant-Expiry.
    #[serde(with = "time_secs")]
    pub expiry: DiameterTime,
    /// LBO-Grant-Signature.
    pub signature: Vec<u8>,
}

/// Appends a length-prefixed field.
fn field(out: &mut Vec<u8>, v: &[u8]) {
    // Fields come from AVPs, whose length fits 24 bits.
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
}

/// The octets a grant's signature covers (see the module documentation).
pub fn grant_message(rule: &RuleDef, g: &Grant) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    field(&mut m, GRANT_TAG);
    field(&mut m, g.grant_id.as_bytes());
    field(&mut m, g.home_operator.as_bytes());
    field(&mut m, g.package.as_bytes());
    field(&mut m, &g.expiry.0.to_be_bytes());
    field(&mut m, rule.name.as_bytes());
    match rule.precedence {
        Some(p) => {
            m.push(1);
            m.extend_from_slice(&p.to_be_bytes());
        }
        None => m.push(0),
    }
    m.extend_from_slice(&(rule.flows.len() as u32).to_be_bytes());
    for f in &rule.flows {
        m.extend_from_slice(&f.direction.code().to_be_bytes());
        field(&mut m, f.description.as_bytes());
    }
    m
}

/// Signs `g` for `rule` under the roaming agreement's `key`: sets its signature.
pub fn sign_grant(key: &Key, rule: &RuleDef, g: &mut Grant) {
    let mut mac = key.mac();
    mac.update(&grant_message(rule, g));
    g.signature = mac.finalize().into_bytes().to_vec();
}

/// Whether `g`'s signature is right for `rule` under `key` (compared in constant time).
pub fn grant_signature_ok(key: &Key, rule: &RuleDef, g: &Grant) -> bool {
    let mut mac = key.mac();
    mac.update(&grant_message(rule, g));
    mac.verify_slice(&g.signature).is_ok()
}

/// Why an LBO rule or request is refused; each has its result code (module documentation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LboRefusal {
    /// The rule has no readable LBO-Grant (or the request no rule).
    #[error("local-breakout grant missing or unreadable: {0}")]
    GrantMissing(String),
    /// No roaming agreement with this home operator.
    #[error("no local-breakout agreement with home operator `{0}`")]
    UnknownHomeOperator(String),
    /// The home network has no LBO agreement (key) with this visited network.
    #[error("no local-breakout agreement with visited network `{0}`")]
    NoAgreement(String),
    /// The signature does not verify.
    #[error("local-breakout grant signature does not verify")]
    BadSignature,
    /// The grant expired.
    #[error("local-breakout grant expired at {expiry} (now {now})")]
    GrantExpired {
        /// Its expiry, Unix seconds.
        expiry: i64,
        /// Now, Unix seconds.
        now: i64,
    },
    /// The agreement does not cover the package.
    #[error("service package `{0}` is not allowed under the roaming agreement")]
    PackageNotAllowed(String),
    /// A flow's server is outside the allowed visited prefixes.
    #[error("flow `{0}` does not target an allowed visited CDN prefix")]
    DestinationNotAllowed(String),
    /// The OTT is unknown or has not subscribed to the package.
    #[error("OTT `{ott}` has not subscribed to service package `{package}`")]
    OttPackageNotSubscribed {
        /// LBO-OTT-Id.
        ott: String,
        /// LBO-Service-Package-Id.
        package: String,
    },
    /// The OTT's dynamic key is wrong.
    #[error("the OTT's dynamic key does not verify")]
    OttKeyMismatch,
    /// The OTT's dynamic key expired, or is valid for longer than allowed.
    #[error("the OTT's dynamic key is not current: {0}")]
    OttKeyExpired(String),
    /// The UE's subscriber has not subscribed to the package.
    #[error("subscriber `{subscriber}` has not subscribed to service package `{package}`")]
    SubscriberNotSubscribed {
        /// The subscriber.
        subscriber: String,
        /// The package.
        package: String,
    },
}

/// The codes of the module documentation's table.
pub mod code {
    /// DIAMETER_AUTHENTICATION_REJECTED (RFC 6733 §7.1.4), a plain Result-Code.
    pub const AUTHENTICATION_REJECTED: u32 = 4001;
    /// LBO_UNKNOWN_HOME_OPERATOR.
    pub const UNKNOWN_HOME_OPERATOR: u32 = 5801;
    /// LBO_PACKAGE_NOT_ALLOWED.
    pub const PACKAGE_NOT_ALLOWED: u32 = 5802;
    /// LBO_DESTINATION_NOT_ALLOWED.
    pub const DESTINATION_NOT_ALLOWED: u32 = 5803;
    /// LBO_GRANT_SIGNATURE_INVALID.
    pub const GRANT_SIGNATURE_INVALID: u32 = 5804;
    /// LBO_GRANT_EXPIRED.
    pub const GRANT_EXPIRED: u32 = 5805;
    /// LBO_GRANT_MISSING.
    pub const GRANT_MISSING: u32 = 5806;
    /// LBO_OTT_PACKAGE_NOT_SUBSCRIBED.
    pub const OTT_PACKAGE_NOT_SUBSCRIBED: u32 = 5807;
    /// LBO_OTT_KEY_EXPIRED.
    pub const OTT_KEY_EXPIRED: u32 = 5808;
    /// LBO_SUBSCRIBER_PACKAGE_NOT_SUBSCRIBED.
    pub const SUBSCRIBER_PACKAGE_NOT_SUBSCRIBED: u32 = 5809;
}

impl LboRefusal {
    /// The result code, and whether it is an Experimental-Result-Code of [`VENDOR_ID`]
    /// (else a base Result-Code).
    pub fn code(&self) -> (u32, bool) {
        use code::*;
        match self {
            Self::OttKeyMismatch => (AUTHENTICATION_REJECTED, false),
            Self::UnknownHomeOperator(_) | Self::NoAgreement(_) => (UNKNOWN_HOME_OPERATOR, true),
            Self::PackageNotAllowed(_) => (PACKAGE_NOT_ALLOWED, true),
            Self::DestinationNotAllowed(_) => (DESTINATION_NOT_ALLOWED, true),
            Self::BadSignature => (GRANT_SIGNATURE_INVALID, true),
            Self::GrantExpired { .. } => (GRANT_EXPIRED, true),
            Self::GrantMissing(_) => (GRANT_MISSING, true),
            Self::OttPackageNotSubscribed { .. } => (OTT_PACKAGE_NOT_SUBSCRIBED, true),
            Self::OttKeyExpired(_) => (OTT_KEY_EXPIRED, true),
            Self::SubscriberNotSubscribed { .. } => (SUBSCRIBER_PACKAGE_NOT_SUBSCRIBED, true),
        }
    }

    /// The metric label of the reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoAgreement(_) => "no_agreement",
            _ => reason_of_code(self.code().0).unwrap_or("other"),
        }
    }

    /// The result AVP of an answer refusing for this reason: Experimental-Result {Vendor-Id
    /// 32473, code} or Result-Code 4001.
    pub fn result_avp(&self) -> OwnedAvp {
        match self.code() {
            (c, true) => experimental_result(c),
            (c, false) => base::RESULT_CODE.with(c),
        }
    }
}

/// Experimental-Result {Vendor-Id [`VENDOR_ID`], Experimental-Result-Code `code`}.
pub fn experimental_result(code: u32) -> OwnedAvp {
    base::EXPERIMENTAL_RESULT.with(vec![
        base::VENDOR_ID.with(VENDOR_ID),
        base::EXPERIMENTAL_RESULT_CODE.with(code),
    ])
}

/// The metric label of an LBO result code, `None` for a code that is not one.
pub fn reason_of_code(c: u32) -> Option<&'static str> {
    use code::*;
    Some(match c {
        AUTHENTICATION_REJECTED => "ott_key_mismatch",
        UNKNOWN_HOME_OPERATOR => "unknown_home_operator",
        PACKAGE_NOT_ALLOWED => "package_not_allowed",
        DESTINATION_NOT_ALLOWED => "destination_not_allowed",
        GRANT_SIGNATURE_INVALID => "bad_signature",
        GRANT_EXPIRED => "grant_expired",
        GRANT_MISSING => "grant_missing",
        OTT_PACKAGE_NOT_SUBSCRIBED => "ott_package_not_subscribed",
        OTT_KEY_EXPIRED => "ott_key_expired",
        SUBSCRIBER_PACKAGE_NOT_SUBSCRIBED => "subscriber_not_subscribed",
        _ => return None,
    })
}

/// One roaming agreement as the visited operator holds it: whose grants it accepts, the
/// shared key, the packages and the CDN prefixes it allows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LboAgreement {
    /// The home operator, as its grants name it (LBO-Home-Operator-Id), compared exactly.
    pub home_operator: String,
    /// The HMAC key shared under the agreement (hex).
    pub key: Key,
    /// Service packages whose rules may break out here.
    pub packages: Vec<String>,
    /// The visited CDN prefixes LBO rules may target (`203.0.113.0/24`, `2001:db8::/32`).
    pub allowed_prefixes: Vec<IpNet>,
    /// Variant FIG. 6: the traffic steering policies (towards the home operator's user
    /// planes in this network) its steering rules may name.
    #[serde(default)]
    pub local_up_policies: Vec<String>,
}

/// The visited operator's LBO policy: its agreements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitedLboPolicy {
    /// `[[agreement]]`.
    #[serde(default, rename = "agreement")]
    pub agreements: Vec<LboAgreement>,
}

impl VisitedLboPolicy {
    /// The agreement with `home_operator`.
    pub fn agreement(&self, home_operator: &str) -> Option<&LboAgreement> {
        self.agreements
            .iter()
            .find(|a| a.home_operator == home_operator)
    }
}

/// Whether every address of `e` is concrete and inside one of `allowed`.
fn endpoint_inside(e: &FilterEndpoint<'_>, allowed: &[IpNet]) -> bool {
    if e.negated {
        return false;
    }
    let FilterAddress::Net { ip, prefix } = e.address else {
        return false;
    };
    let Ok(net) = IpNet::new(ip, prefix) else {
        return false;
    };
    allowed.iter().any(|a| a.contains(&net))
}

/// Whether `flow`'s server side lies inside `allowed` (module documentation).
pub fn flow_targets(flow: &Flow, allowed: &[IpNet]) -> bool {
    let Ok(r) = IpFilterRule::parse_str(&flow.description) else {
        return false;
    };
    match flow.direction {
        FlowDirection::Downlink => endpoint_inside(&r.src, allowed),
        FlowDirection::Uplink => endpoint_inside(&r.dst, allowed),
        FlowDirection::Bidirectional => {
            endpoint_inside(&r.src, allowed) || endpoint_inside(&r.dst, allowed)
        }
    }
}

/// The V-PCRF's checks of an LBO rule and its grant under `policy` at `now` (Unix seconds),
/// in the order of the module documentation.
pub fn verify_lbo_rule(
    rule: &RuleDef,
    grant: Option<&Grant>,
    policy: &VisitedLboPolicy,
    now: i64,
) -> Result<(), LboRefusal> {
    let g = grant.ok_or_else(|| LboRefusal::GrantMissing(format!("rule `{}`", rule.name)))?;
    let a = policy
        .agreement(&g.home_operator)
        .ok_or_else(|| LboRefusal::UnknownHomeOperator(g.home_operator.clone()))?;
    if !grant_signature_ok(&a.key, rule, g) {
        return Err(LboRefusal::BadSignature);
    }
    let expiry = g.expiry.to_unix();
    if expiry <= now {
        return Err(LboRefusal::GrantExpired { expiry, now });
    }
    if !a.packages.contains(&g.package) {
        return Err(LboRefusal::PackageNotAllowed(g.package.clone()));
    }
    if rule.flows.is_empty() {
        return Err(LboRefusal::DestinationNotAllowed(format!(
            "rule `{}` has no flows",
            rule.name
        )));
    }
    if let Some(f) = rule
        .flows
        .iter()
        .find(|f| !flow_targets(f, &a.allowed_prefixes))
    {
        return Err(LboRefusal::DestinationNotAllowed(f.description.clone()));
    }
    Ok(())
}

/// `[pcrf.lbo]`: local breakout, home role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeLboConfig {
    /// LBO-Home-Operator-Id of our grants (the visited side's agreements name it).
    pub home_operator: String,
    /// How long a grant is valid, seconds.
    #[serde(default = "grant_lifetime")]
    pub grant_lifetime: u32,
    /// The furthest ahead an OTT's dynamic key may expire, seconds (replay bound).
    #[serde(default = "ott_key_lifetime")]
    pub ott_key_max_lifetime: u32,
    /// `[[pcrf.lbo.partner]]`: the key of the agreement with each visited network.
    #[serde(default, rename = "partner")]
    pub partners: Vec<LboPartner>,
    /// `[[pcrf.lbo.ott]]`: OTT providers' initial keys, per package.
    #[serde(default, rename = "ott")]
    pub otts: Vec<OttKey>,
    /// `[[pcrf.lbo.preset]]`: LBO rules pushed with no AF (claim 9), per package.
    #[serde(default, rename = "preset")]
    pub presets: Vec<LboPreset>,
    /// `[[pcrf.lbo.local_up]]`: variant FIG. 6, user planes of ours in visited networks.
    #[serde(default)]
    pub local_up: Vec<LocalUp>,
}

fn grant_lifetime() -> u32 {
    3600
}

fn ott_key_lifetime() -> u32 {
    600
}

/// The LBO agreement with one visited network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LboPartner {
    /// Its Diameter realm (the S9 session's Origin-Realm), compared ignoring case.
    pub realm: String,
    /// The HMAC key shared under the agreement (hex).
    pub key: Key,
}

/// An OTT provider's initial key for one package (document 000 ¶0052).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OttKey {
    /// LBO-OTT-Id.
    pub id: String,
    /// The service package it subscribed to.
    pub package: String,
    /// Its initial key (hex).
    pub key: Key,
}

/// An LBO rule preset for a package: every roaming subscriber of the package gets it at S9
/// establishment, signed for the visited network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LboPreset {
    /// The service package.
    pub package: String,
    /// Charging-Rule-Name.
    pub name: String,
    /// Precedence.
    pub precedence: Option<u32>,
    /// Flow-Information: the visited CDN servers.
    pub flows: Vec<Flow>,
}

/// A user plane of the home network in a visited network (V-Local-UP, FIG. 2B / FIG. 6):
/// it opens Gx sessions with this PCRF like any PCEF; the visited PCEF steers to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUp {
    /// Its Origin-Host on Gx.
    pub host: String,
    /// The visited network's realm (the V-PCRF's), compared ignoring case.
    pub visited_realm: String,
    /// The traffic steering policy the visited PCEF knows as "to this user plane".
    pub steering_policy: String,
}

impl HomeLboConfig {
    /// The agreement key with visited realm `realm`.
    pub fn partner_key(&self, realm: &str) -> Option<&Key> {
        self.partners
            .iter()
            .find(|p| p.realm.eq_ignore_ascii_case(realm))
            .map(|p| &p.key)
    }

    /// The initial key of OTT `id` for `package`.
    pub fn ott_key(&self, id: &str, package: &str) -> Option<&Key> {
        self.otts
            .iter()
            .find(|o| o.id == id && o.package == package)
            .map(|o| &o.key)
    }

    /// The V-Local-UP whose Gx Origin-Host is `host`.
    pub fn local_up(&self, host: &str) -> Option<&LocalUp> {
        self.local_up
            .iter()
            .find(|u| u.host.eq_ignore_ascii_case(host))
    }

    /// What serde cannot check.
    pub fn check(&self) -> Result<(), String> {
        if self.home_operator.trim().is_empty() {
            return Err("pcrf.lbo.home_operator is empty".into());
        }
        for p in &self.presets {
            if p.flows.is_empty() {
                return Err(format!("pcrf.lbo.preset `{}`: needs flows", p.name));
            }
            for f in &p.flows {
                IpFilterRule::parse_str(&f.description).map_err(|e| {
                    format!(
                        "pcrf.lbo.preset `{}`: flow `{}`: {e}",
                        p.name, f.description
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// A grant by the home operator of `cfg` for `rule` and `package`, valid from `now` (Unix
/// seconds) for the configured lifetime, signed with the agreement `key`.
pub fn issue_grant(
    cfg: &HomeLboConfig,
    key: &Key,
    rule: &RuleDef,
    package: &str,
    grant_id: String,
    now: i64,
) -> Grant {
    let mut g = Grant {
        grant_id,
        home_operator: cfg.home_operator.clone(),
        package: package.to_string(),
        expiry: DiameterTime::from_unix(now + i64::from(cfg.grant_lifetime))
            .unwrap_or(DiameterTime(u32::MAX)),
        signature: Vec::new(),
    };
    sign_grant(key, rule, &mut g);
    g
}

/// The V-PCRF's checks of a steering rule (variant FIG. 6): as [`verify_lbo_rule`], except
/// that instead of flows inside the CDN prefixes the traffic steering policy it names must
/// be one the agreement lists (else [`LboRefusal::DestinationNotAllowed`]).
pub fn verify_steering_rule(
    rule: &RuleDef,
    steering_policy: &str,
    grant: Option<&Grant>,
    policy: &VisitedLboPolicy,
    now: i64,
) -> Result<(), LboRefusal> {
    let g = grant.ok_or_else(|| LboRefusal::GrantMissing(format!("rule `{}`", rule.name)))?;
    let a = policy
        .agreement(&g.home_operator)
        .ok_or_else(|| LboRefusal::UnknownHomeOperator(g.home_operator.clone()))?;
    if !grant_signature_ok(&a.key, rule, g) {
        return Err(LboRefusal::BadSignature);
    }
    let expiry = g.expiry.to_unix();
    if expiry <= now {
        return Err(LboRefusal::GrantExpired { expiry, now });
    }
    if !a.packages.contains(&g.package) {
        return Err(LboRefusal::PackageNotAllowed(g.package.clone()));
    }
    if !a.local_up_policies.iter().any(|p| p == steering_policy) {
        return Err(LboRefusal::DestinationNotAllowed(format!(
            "traffic steering policy `{steering_policy}`"
        )));
    }
    Ok(())
}

/// An LBO rule as read from a Charging-Rule-Definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLboRule {
    /// What the grant covers (name, precedence, flows).
    pub rule: RuleDef,
    /// Local breakout, or steering to the home operator's user plane.
    pub kind: LboKind,
    /// Its LBO-Grant (`Err`: present but unreadable).
    pub grant: Option<Result<Grant, String>>,
}

impl ReadLboRule {
    /// The V-PCRF's checks for its kind ([`verify_lbo_rule`], [`verify_steering_rule`]).
    pub fn verify(&self, policy: &VisitedLboPolicy, now: i64) -> Result<(), LboRefusal> {
        let grant = match &self.grant {
            None => None,
            Some(Ok(g)) => Some(g),
            Some(Err(m)) => return Err(LboRefusal::GrantMissing(m.clone())),
        };
        match &self.kind {
            LboKind::LocalBreakout => verify_lbo_rule(&self.rule, grant, policy, now),
            LboKind::SteerToLocalUp(p) => verify_steering_rule(&self.rule, p, grant, policy, now),
        }
    }
}

/// The OTT's credential (our LBO-OTT-Grant AVP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OttGrant {
    /// LBO-OTT-Id.
    pub ott: String,
    /// LBO-Service-Package-Id.
    pub package: String,
    /// LBO-OTT-Nonce.
    pub nonce: Vec<u8>,
    /// LBO-Grant-Expiry.
    pub expiry: DiameterTime,
    /// LBO-OTT-Key.
    pub key: Vec<u8>,
}

/// The octets the OTT's dynamic key covers.
pub fn ott_key_message(package: &str, nonce: &[u8], expiry: DiameterTime) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + nonce.len());
    field(&mut m, OTT_TAG);
    field(&mut m, package.as_bytes());
    field(&mut m, nonce);
    field(&mut m, &expiry.0.to_be_bytes());
    m
}

/// The dynamic key the H-AS derives from the OTT's initial key.
pub fn ott_dynamic_key(
    initial: &Key,
    package: &str,
    nonce: &[u8],
    expiry: DiameterTime,
) -> [u8; MAC_LEN] {
    let mut mac = initial.mac();
    mac.update(&ott_key_message(package, nonce, expiry));
    mac.finalize().into_bytes().into()
}

/// The home PCRF's check of an OTT credential under the OTT's `initial` key for its package
/// (`None`: the OTT is unknown or has not subscribed to the package), at `now` (Unix
/// seconds), a key valid for at most `max_lifetime` seconds ahead.
pub fn check_ott(
    g: &OttGrant,
    initial: Option<&Key>,
    now: i64,
    max_lifetime: i64,
) -> Result<(), LboRefusal> {
    let key = initial.ok_or_else(|| LboRefusal::OttPackageNotSubscribed {
        ott: g.ott.clone(),
        package: g.package.clone(),
    })?;
    if g.nonce.len() > MAX_NONCE_LEN {
        return Err(LboRefusal::OttKeyMismatch);
    }
    let mut mac = key.mac();
    mac.update(&ott_key_message(&g.package, &g.nonce, g.expiry));
    if mac.verify_slice(&g.key).is_err() {
        return Err(LboRefusal::OttKeyMismatch);
    }
    let expiry = g.expiry.to_unix();
    if expiry <= now {
        return Err(LboRefusal::OttKeyExpired(format!(
            "expired at {expiry} (now {now})"
        )));
    }
    if expiry - now > max_lifetime {
        return Err(LboRefusal::OttKeyExpired(format!(
            "valid until {expiry}, more than {max_lifetime} s ahead"
        )));
    }
    Ok(())
}

// --- on the wire ---

/// What marks a PCC rule as part of local breakout (kept in [`RuleDef::lbo`], written into
/// its Charging-Rule-Definition by [`mark_avps`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LboMark {
    /// What the rule does.
    pub kind: LboKind,
    /// The home operator's grant (absent on a rule home installs on its own user plane).
    pub grant: Option<Grant>,
}

/// What an LBO rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LboKind {
    /// Its traffic breaks out locally (LBO-Indicator LOCAL_BREAKOUT).
    LocalBreakout,
    /// Variant FIG. 6 (V-Local-UP): the visited PCEF steers the UE's traffic that matches
    /// it to the home-controlled user plane in the visited network, named by a traffic
    /// steering policy the visited PCEF knows (Traffic-Steering-Policy-Identifier-UL/DL,
    /// TS 29.212 §5.3.123-124; the standard AVP was chosen over one of ours because it
    /// already means "a steering policy pre-configured at the PCEF").
    SteerToLocalUp(String),
}

/// The AVPs a rule's [`LboMark`] adds to its Charging-Rule-Definition.
pub fn mark_avps(m: &LboMark) -> Vec<OwnedAvp> {
    let mut v = match &m.kind {
        LboKind::LocalBreakout => {
            vec![roaming::LBO_INDICATOR.with(roaming::LboIndicator::LOCAL_BREAKOUT)]
        }
        LboKind::SteerToLocalUp(p) => vec![
            gxd::TRAFFIC_STEERING_POLICY_IDENTIFIER_DL.with(bytes::Bytes::from(p.clone())),
            gxd::TRAFFIC_STEERING_POLICY_IDENTIFIER_UL.with(bytes::Bytes::from(p.clone())),
        ],
    };
    v.extend(m.grant.as_ref().map(grant_avp));
    v
}

/// The Subsession-Enforcement-Info of an S9 RAA (TS 29.215 §5.6.5) in which a V-PCRF
/// refuses the LBO rules `rules` of subsession `id` for `why`: the refusal's code as
/// Experimental-Result-Code (the grammar's vendorless form; the command-level
/// Experimental-Result carries [`VENDOR_ID`]: [`LboRefusal::result_avp`]), and a
/// Charging-Rule-Report per rule, INACTIVE (Rule-Failure-Code INCORRECT_FLOW_INFORMATION
/// for a destination outside the allowed prefixes).
pub fn s9_refusal_info(id: u32, rules: &[String], why: &LboRefusal) -> OwnedAvp {
    use diameter_codec::dict::s9;
    let mut v = vec![
        s9::SUBSESSION_ID.with(id),
        base::EXPERIMENTAL_RESULT_CODE.with(why.code().0),
    ];
    for name in rules {
        let mut rep = vec![
            gxd::CHARGING_RULE_NAME.with(bytes::Bytes::from(name.clone())),
            gxd::PCC_RULE_STATUS.with(gxd::PccRuleStatus::INACTIVE),
        ];
        if matches!(why, LboRefusal::DestinationNotAllowed(_)) {
            rep.push(gxd::RULE_FAILURE_CODE.with(gxd::RuleFailureCode::INCORRECT_FLOW_INFORMATION));
        }
        v.push(gxd::CHARGING_RULE_REPORT.with(rep));
    }
    s9::SUBSESSION_ENFORCEMENT_INFO.with(v)
}

/// The LBO-Grant AVP of `g`.
pub fn grant_avp(g: &Grant) -> OwnedAvp {
    roaming::LBO_GRANT.with(vec![
        roaming::LBO_GRANT_ID.with(g.grant_id.clone()),
        roaming::LBO_HOME_OPERATOR_ID.with(g.home_operator.clone()),
        roaming::LBO_SERVICE_PACKAGE_ID.with(g.package.clone()),
        roaming::LBO_GRANT_EXPIRY.with(g.expiry),
        roaming::LBO_GRANT_SIGNATURE.with(bytes::Bytes::from(g.signature.clone())),
    ])
}

/// Reads an LBO-Grant AVP; `Err` names what is missing.
pub fn grant_of(a: &AvpRef<'_>) -> Result<Grant, String> {
    let need = |what: &str| format!("LBO-Grant without {what}");
    Ok(Grant {
        grant_id: child(a, roaming::LBO_GRANT_ID)
            .ok_or_else(|| need("LBO-Grant-Id"))?
            .to_string(),
        home_operator: child(a, roaming::LBO_HOME_OPERATOR_ID)
            .ok_or_else(|| need("LBO-Home-Operator-Id"))?
            .to_string(),
        package: child(a, roaming::LBO_SERVICE_PACKAGE_ID)
            .ok_or_else(|| need("LBO-Service-Package-Id"))?
            .to_string(),
        expiry: child(a, roaming::LBO_GRANT_EXPIRY).ok_or_else(|| need("LBO-Grant-Expiry"))?,
        signature: child(a, roaming::LBO_GRANT_SIGNATURE)
            .ok_or_else(|| need("LBO-Grant-Signature"))?
            .to_vec(),
    })
}

/// The LBO-OTT-Grant AVP of `g`.
pub fn ott_grant_avp(g: &OttGrant) -> OwnedAvp {
    roaming::LBO_OTT_GRANT.with(vec![
        roaming::LBO_OTT_ID.with(g.ott.clone()),
        roaming::LBO_SERVICE_PACKAGE_ID.with(g.package.clone()),
        roaming::LBO_OTT_NONCE.with(bytes::Bytes::from(g.nonce.clone())),
        roaming::LBO_GRANT_EXPIRY.with(g.expiry),
        roaming::LBO_OTT_KEY.with(bytes::Bytes::from(g.key.clone())),
    ])
}

/// Reads an LBO-OTT-Grant AVP; `Err` names what is missing.
pub fn ott_grant_of(a: &AvpRef<'_>) -> Result<OttGrant, String> {
    let need = |what: &str| format!("LBO-OTT-Grant without {what}");
    Ok(OttGrant {
        ott: child(a, roaming::LBO_OTT_ID)
            .ok_or_else(|| need("LBO-OTT-Id"))?
            .to_string(),
        package: child(a, roaming::LBO_SERVICE_PACKAGE_ID)
            .ok_or_else(|| need("LBO-Service-Package-Id"))?
            .to_string(),
        nonce: child(a, roaming::LBO_OTT_NONCE)
            .ok_or_else(|| need("LBO-OTT-Nonce"))?
            .to_vec(),
        expiry: child(a, roaming::LBO_GRANT_EXPIRY).ok_or_else(|| need("LBO-Grant-Expiry"))?,
        key: child(a, roaming::LBO_OTT_KEY)
            .ok_or_else(|| need("LBO-OTT-Key"))?
            .to_vec(),
    })
}

/// The LBO rule a Charging-Rule-Definition is, if any: marked LOCAL_BREAKOUT, or carrying
/// an LBO-Grant with a traffic steering policy (variant FIG. 6).
pub fn lbo_rule_of(crd: &AvpRef<'_>) -> Option<ReadLboRule> {
    let grant = crd
        .children()
        .flatten()
        .find(|a| a.key() == roaming::LBO_GRANT.key())
        .map(|g| grant_of(&g));
    let kind = if child(crd, roaming::LBO_INDICATOR) == Some(roaming::LboIndicator::LOCAL_BREAKOUT)
    {
        LboKind::LocalBreakout
    } else {
        let tsp = child(crd, gxd::TRAFFIC_STEERING_POLICY_IDENTIFIER_UL)
            .or_else(|| child(crd, gxd::TRAFFIC_STEERING_POLICY_IDENTIFIER_DL))?;
        grant.as_ref()?;
        LboKind::SteerToLocalUp(String::from_utf8_lossy(tsp).into_owned())
    };
    let flows = crd
        .children()
        .flatten()
        .filter(|a| a.key() == gxd::FLOW_INFORMATION.key())
        .filter_map(|fi| {
            // Exactly as sent: the signature covers these octets.
            let d = fi
                .children()
                .flatten()
                .find(|a| a.key() == rx::FLOW_DESCRIPTION.key())?;
            let direction = match child(&fi, gxd::FLOW_DIRECTION).map(|d| d.0) {
                Some(1) => FlowDirection::Downlink,
                Some(2) => FlowDirection::Uplink,
                _ => FlowDirection::Bidirectional,
            };
            Some(Flow {
                description: String::from_utf8_lossy(d.data).into_owned(),
                direction,
            })
        })
        .collect();
    let rule = RuleDef::with_flows(
        child(crd, gxd::CHARGING_RULE_NAME)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default(),
        child(crd, gxd::PRECEDENCE),
        flows,
    );
    Some(ReadLboRule { rule, kind, grant })
}

/// The LBO rules a Charging-Rule-Install carries.
pub fn lbo_rules_in(cri: &AvpRef<'_>) -> Vec<ReadLboRule> {
    cri.children()
        .flatten()
        .filter(|a| a.key() == gxd::CHARGING_RULE_DEFINITION.key())
        .filter_map(|d| lbo_rule_of(&d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use diameter_codec::MessageBuilder;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000;

    fn key(b: u8) -> Key {
        Key::new(vec![b; 32]).unwrap()
    }

    fn rule(dst: &str) -> RuleDef {
        RuleDef::with_flows(
            "lbo-cdn".into(),
            Some(50),
            vec![
                Flow {
                    description: format!("permit out ip from any to {dst}"),
                    direction: FlowDirection::Uplink,
                },
                Flow {
                    description: format!("permit out ip from {dst} to any"),
                    direction: FlowDirection::Downlink,
                },
            ],
        )
    }

    fn grant(r: &RuleDef, k: &Key, expiry: i64) -> Grant {
        let mut g = Grant {
            grant_id: "g-1".into(),
            home_operator: "00101".into(),
            package: "cdn-video".into(),
            expiry: DiameterTime::from_unix(expiry).unwrap(),
            signature: Vec::new(),
        };
        sign_grant(k, r, &mut g);
        g
    }

    fn policy() -> VisitedLboPolicy {
        VisitedLboPolicy {
            agreements: vec![LboAgreement {
                home_operator: "00101".into(),
                key: key(7),
                packages: vec!["cdn-video".into()],
                allowed_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
                local_up_policies: vec!["to-local-up".into()],
            }],
        }
    }

    #[test]
    fn a_signed_grant_within_policy_verifies() {
        let r = rule("203.0.113.10");
        let g = grant(&r, &key(7), NOW + 600);
        assert_eq!(g.signature.len(), MAC_LEN);
        assert_eq!(verify_lbo_rule(&r, Some(&g), &policy(), NOW), Ok(()));
    }

    #[test]
    fn each_refusal_has_its_reason_and_code() {
        let r = rule("203.0.113.10");
        let p = policy();
        let check = |r: &RuleDef, g: Option<&Grant>| verify_lbo_rule(r, g, &p, NOW).unwrap_err();
        // Missing.
        let e = check(&r, None);
        assert_eq!((e.code(), e.reason()), ((5806, true), "grant_missing"));
        // Forged: signed under another key.
        let e = check(&r, Some(&grant(&r, &key(8), NOW + 600)));
        assert_eq!(e, LboRefusal::BadSignature);
        assert_eq!(e.code(), (5804, true));
        // Tampered: a flow changed after signing.
        let g = grant(&r, &key(7), NOW + 600);
        let other = rule("203.0.113.11");
        assert_eq!(check(&other, Some(&g)), LboRefusal::BadSignature);
        // Expired (exactly now counts as expired).
        let e = check(&r, Some(&grant(&r, &key(7), NOW)));
        assert!(matches!(e, LboRefusal::GrantExpired { .. }), "{e}");
        assert_eq!(e.code(), (5805, true));
        // Unknown home operator.
        let mut g = grant(&r, &key(7), NOW + 600);
        g.home_operator = "99999".into();
        sign_grant(&key(7), &r, &mut g);
        assert_eq!(check(&r, Some(&g)).code(), (5801, true));
        // Package not in the agreement (validly signed).
        let mut g = grant(&r, &key(7), NOW + 600);
        g.package = "cdn-music".into();
        sign_grant(&key(7), &r, &mut g);
        assert_eq!(check(&r, Some(&g)).reason(), "package_not_allowed");
        // Destination outside the prefixes (validly signed).
        let far = rule("198.51.100.7");
        let e = check(&far, Some(&grant(&far, &key(7), NOW + 600)));
        assert_eq!(e.code(), (5803, true));
        assert!(e.to_string().contains("198.51.100.7"), "{e}");
        // `any` and a whole prefix larger than allowed are not inside.
        let any = rule("any");
        assert_eq!(
            check(&any, Some(&grant(&any, &key(7), NOW + 600))).code().0,
            5803
        );
        let wide = rule("203.0.0.0/16");
        assert_eq!(
            check(&wide, Some(&grant(&wide, &key(7), NOW + 600)))
                .code()
                .0,
            5803
        );
        let sub = rule("203.0.113.128/25");
        assert_eq!(
            verify_lbo_rule(&sub, Some(&grant(&sub, &key(7), NOW + 600)), &p, NOW),
            Ok(())
        );
    }

    #[test]
    fn flow_server_side_follows_the_direction() {
        let allowed: Vec<IpNet> = vec!["2001:db8:cd::/48".parse().unwrap()];
        let f = |d: &str, dir| Flow {
            description: d.into(),
            direction: dir,
        };
        use FlowDirection::*;
        assert!(flow_targets(
            &f("permit out tcp from 2001:db8:cd::1 443 to any", Downlink),
            &allowed
        ));
        assert!(!flow_targets(
            &f("permit out tcp from 2001:db8:cd::1 443 to any", Uplink),
            &allowed
        ));
        assert!(flow_targets(
            &f(
                "permit out tcp from any to 2001:db8:cd::1 443",
                Bidirectional
            ),
            &allowed
        ));
        assert!(!flow_targets(
            &f("permit out tcp from any to !2001:db8:cd::1", Uplink),
            &allowed
        ));
        assert!(!flow_targets(&f("not a filter", Uplink), &allowed));
    }

    #[test]
    fn ott_keys_check_key_package_and_expiry() {
        let initial = key(3);
        let exp = DiameterTime::from_unix(NOW + 300).unwrap();
        let good = OttGrant {
            ott: "ott-a".into(),
            package: "cdn-video".into(),
            nonce: b"n-1".to_vec(),
            expiry: exp,
            key: ott_dynamic_key(&initial, "cdn-video", b"n-1", exp).to_vec(),
        };
        assert_eq!(check_ott(&good, Some(&initial), NOW, 3600), Ok(()));
        // Wrong key: another initial key, or another nonce than the one derived with.
        let e = check_ott(&good, Some(&key(4)), NOW, 3600).unwrap_err();
        assert_eq!((e.code(), e.reason()), ((4001, false), "ott_key_mismatch"));
        let mut other = good.clone();
        other.nonce = b"n-2".to_vec();
        assert_eq!(
            check_ott(&other, Some(&initial), NOW, 3600),
            Err(LboRefusal::OttKeyMismatch)
        );
        // Replayed after expiry, or minted for too long.
        assert_eq!(
            check_ott(&good, Some(&initial), NOW + 300, 3600)
                .unwrap_err()
                .code(),
            (5808, true)
        );
        assert_eq!(
            check_ott(&good, Some(&initial), NOW, 60)
                .unwrap_err()
                .reason(),
            "ott_key_expired"
        );
        // No initial key: the OTT has not subscribed to the package.
        assert_eq!(
            check_ott(&good, None, NOW, 3600).unwrap_err().code(),
            (5807, true)
        );
    }

    #[test]
    fn grants_round_trip_through_avps() {
        let r = rule("203.0.113.10");
        let g = grant(&r, &key(7), NOW + 600);
        // A CRD with the marker and grant, in a message, read back.
        let mut children = vec![
            gxd::CHARGING_RULE_NAME.with(bytes::Bytes::from(r.name.clone())),
            roaming::LBO_INDICATOR.with(roaming::LboIndicator::LOCAL_BREAKOUT),
            grant_avp(&g),
            gxd::PRECEDENCE.with(50u32),
        ];
        children.extend(r.flows.iter().map(crate::gx::flow_information));
        let mut b = MessageBuilder::request(diameter_codec::dict::s9::CMD_RE_AUTH, 0, true);
        b.push(base::SESSION_ID.with("s".to_string()));
        b.push(gxd::CHARGING_RULE_INSTALL.with(vec![
            gxd::CHARGING_RULE_DEFINITION.with(children),
            crate::gx::rule_definition(&rule("203.0.113.99")),
        ]));
        let m = b.build().unwrap();
        let cri = m.find(gxd::CHARGING_RULE_INSTALL.key()).unwrap();
        let rules = lbo_rules_in(&cri);
        assert_eq!(rules.len(), 1, "the unmarked rule is not an LBO rule");
        let read = &rules[0];
        assert_eq!(read.rule.flows, r.flows);
        assert_eq!(read.rule.precedence, Some(50));
        assert_eq!(read.kind, LboKind::LocalBreakout);
        assert_eq!(read.grant, Some(Ok(g)));
        assert_eq!(read.verify(&policy(), NOW), Ok(()));
        let og = OttGrant {
            ott: "o".into(),
            package: "p".into(),
            nonce: vec![1, 2],
            expiry: DiameterTime(5),
            key: vec![9; 32],
        };
        let mut b = MessageBuilder::request(rx::CMD_AA, 0, true);
        b.push(ott_grant_avp(&og));
        let m = b.build().unwrap();
        let a = m.find(roaming::LBO_OTT_GRANT.key()).unwrap();
        assert_eq!(ott_grant_of(&a), Ok(og));
    }

    #[test]
    fn steering_rules_need_a_known_steering_policy() {
        let mut r = rule("any");
        r.name = "lbo-steer".into();
        let g = grant(&r, &key(7), NOW + 600);
        let p = policy();
        assert_eq!(
            verify_steering_rule(&r, "to-local-up", Some(&g), &p, NOW),
            Ok(())
        );
        assert_eq!(
            verify_steering_rule(&r, "elsewhere", Some(&g), &p, NOW)
                .unwrap_err()
                .code(),
            (5803, true)
        );
        let forged = grant(&r, &key(9), NOW + 600);
        assert_eq!(
            verify_steering_rule(&r, "to-local-up", Some(&forged), &p, NOW),
            Err(LboRefusal::BadSignature)
        );
        // Written and read back through a Charging-Rule-Definition.
        r.lbo = Some(LboMark {
            kind: LboKind::SteerToLocalUp("to-local-up".into()),
            grant: Some(g),
        });
        let mut b = MessageBuilder::request(rx::CMD_AA, 0, true);
        b.push(gxd::CHARGING_RULE_INSTALL.with(vec![crate::gx::rule_definition(&r)]));
        let m = b.build().unwrap();
        let read = lbo_rules_in(&m.find(gxd::CHARGING_RULE_INSTALL.key()).unwrap());
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].kind, LboKind::SteerToLocalUp("to-local-up".into()));
        assert_eq!(read[0].verify(&p, NOW), Ok(()));
    }

    #[test]
    fn keys_come_from_hex_and_are_never_printed() {
        assert!(Key::try_from("00".repeat(15)).is_err());
        assert!(Key::try_from("zz".repeat(16)).is_err());
        let k = Key::try_from("ab".repeat(16)).unwrap();
        assert_eq!(format!("{k:?}"), "Key(16 octets)");
    }

    fn arb_rule() -> impl Strategy<Value = RuleDef> {
        (
            "[a-z-]{1,12}",
            proptest::option::of(any::<u32>()),
            proptest::collection::vec((any::<[u8; 4]>(), 0u8..3), 1..4),
        )
            .prop_map(|(name, precedence, flows)| {
                let mut r = rule("203.0.113.1");
                r.name = name;
                r.precedence = precedence;
                r.flows = flows
                    .into_iter()
                    .map(|(ip, d)| Flow {
                        description: format!(
                            "permit out ip from any to {}",
                            std::net::Ipv4Addr::from(ip)
                        ),
                        direction: [
                            FlowDirection::Uplink,
                            FlowDirection::Downlink,
                            FlowDirection::Bidirectional,
                        ][d as usize],
                    })
                    .collect();
                r
            })
    }

    proptest! {
        #[test]
        fn signatures_verify_and_any_change_breaks_them(
            r in arb_rule(),
            k in any::<[u8; 32]>(),
            flip in any::<usize>(),
        ) {
            let key = Key::new(k.to_vec()).unwrap();
            let g = grant(&r, &key, NOW + 60);
            prop_assert!(grant_signature_ok(&key, &r, &g));
            // One bit of the signed message changed: the signature no longer verifies.
            let mut bad = g.clone();
            let i = flip % bad.signature.len();
            bad.signature[i] ^= 1;
            prop_assert!(!grant_signature_ok(&key, &r, &bad));
            let mut r2 = r.clone();
            r2.precedence = Some(r.precedence.map_or(0, |p| p.wrapping_add(1)));
            prop_assert!(!grant_signature_ok(&key, &r2, &g));
            let mut g2 = g.clone();
            g2.expiry = DiameterTime(g.expiry.0.wrapping_add(1));
            prop_assert!(!grant_signature_ok(&key, &r, &g2));
        }

        #[test]
        fn canonical_encoding_is_injective_on_field_boundaries(
            a in "[a-z]{0,6}", b in "[a-z]{0,6}",
        ) {
            // Moving octets between two fields changes the message (length prefixes).
            let r = rule("203.0.113.1");
            let g1 = Grant { grant_id: format!("{a}{b}"), home_operator: String::new(),
                package: String::new(), expiry: DiameterTime(0), signature: vec![] };
            let g2 = Grant { grant_id: a.clone(), home_operator: b.clone(), ..g1.clone() };
            prop_assume!(!b.is_empty());
            prop_assert_ne!(grant_message(&r, &g1), grant_message(&r, &g2));
        }

        #[test]
        fn verification_never_panics_on_arbitrary_grants(
            r in arb_rule(),
            op in "[0-9]{0,6}",
            pkg in "[a-z-]{0,10}",
            exp in any::<u32>(),
            sig in proptest::collection::vec(any::<u8>(), 0..40),
            now in any::<i64>(),
        ) {
            let g = Grant { grant_id: "x".into(), home_operator: op, package: pkg,
                expiry: DiameterTime(exp), signature: sig };
            // Without the key nothing verifies.
            prop_assert!(verify_lbo_rule(&r, Some(&g), &policy(), now).is_err());
        }

        #[test]
        fn reading_arbitrary_grants_never_panics(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 5),
            flow in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            // Every LBO-Grant member and a Flow-Description with arbitrary octets (wrong
            // lengths for Time, non-UTF-8 text): read into errors or values, never a panic.
            let raw = |code: u32, d: &[u8]| {
                OwnedAvp::new(
                    code,
                    VENDOR_ID,
                    0x80,
                    diameter_codec::AvpValue::Bytes(bytes::Bytes::copy_from_slice(d)),
                )
            };
            let grant = roaming::LBO_GRANT.with(
                (3..=7).zip(&payloads).map(|(c, d)| raw(c, d)).collect::<Vec<_>>(),
            );
            let crd = gxd::CHARGING_RULE_DEFINITION.with(vec![
                gxd::CHARGING_RULE_NAME.with(bytes::Bytes::from_static(b"r")),
                roaming::LBO_INDICATOR.with(roaming::LboIndicator::LOCAL_BREAKOUT),
                grant,
                gxd::FLOW_INFORMATION.with(vec![OwnedAvp::new(
                    507,
                    10_415,
                    0xc0,
                    diameter_codec::AvpValue::Bytes(bytes::Bytes::from(flow)),
                )]),
            ]);
            let mut b = MessageBuilder::request(rx::CMD_AA, 0, true);
            b.push(gxd::CHARGING_RULE_INSTALL.with(vec![crd]));
            let m = b.build().unwrap();
            for r in lbo_rules_in(&m.find(gxd::CHARGING_RULE_INSTALL.key()).unwrap()) {
                let _ = r.verify(&policy(), NOW);
            }
        }

        #[test]
        fn ott_keys_verify_only_for_what_was_derived(
            pkg in "[a-z-]{1,10}",
            nonce in proptest::collection::vec(any::<u8>(), 0..64),
            ttl in 1i64..3600,
        ) {
            let initial = key(5);
            let exp = DiameterTime::from_unix(NOW + ttl).unwrap();
            let g = OttGrant { ott: "o".into(), package: pkg.clone(), nonce: nonce.clone(),
                expiry: exp, key: ott_dynamic_key(&initial, &pkg, &nonce, exp).to_vec() };
            prop_assert_eq!(check_ott(&g, Some(&initial), NOW, 3600), Ok(()));
            let mut other = g.clone();
            other.package.push('x');
            prop_assert_eq!(check_ott(&other, Some(&initial), NOW, 3600), Err(LboRefusal::OttKeyMismatch));
        }
    }
}
