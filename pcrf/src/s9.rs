//! S9 on the wire (TS 29.215, application 16777267), home role: a V-PCRF's CCR read into
//! [`S9Request`] with one [`Enforcement`] per Subsession-Enforcement-Info, a
//! [`Decision`] per subsession written into Subsession-Decision-Info, and the S9 RAR.
//!
//! The PCC-rule AVPs inside Subsession-Decision-Info are those of Gx (TS 29.215 §5.3.1
//! reuses Charging-Rule-Install/Remove, Event-Trigger, QoS-Information,
//! Default-EPS-Bearer-QoS, Online, Offline), written by [`gx::decision_avps`].

use crate::config::ChargingSection;
use crate::gx::{self, RequestType, RuleReport, child, children_of};
use crate::policy::Decision;
use crate::spr::{Ambr, SubscriberKey};
use diameter_codec::dict::{base, dcca, gi, gx as gxd, nasreq, roaming, s9};
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp};
use std::net::{IpAddr, Ipv4Addr};

/// The S9 application (TS 29.215 §5.1).
pub const APPLICATION_ID: u32 = s9::APP_S9;

/// DIAMETER_ERROR_SUBSESSION (5470, TS 29.215 §5.5.3; protocol.md tags the code V1): the
/// subsession a Subsession-Enforcement-Info names cannot be handled (unknown Subsession-Id
/// for a modification or termination, or established twice).
pub const ERROR_SUBSESSION: u32 = 5470;

/// DIAMETER_ERROR_ONGOING_SESSION_ESTABLISHMENT (5471, TS 29.215 §5.5.3; protocol.md tags
/// the code V1): a V-PCRF answers a TER so while it is establishing the UE's S9 session
/// itself (TS 29.215 Annex A.6.1.1.1).
pub const ONGOING_SESSION_ESTABLISHMENT: u32 = 5471;

/// Subsession-Operation (TS 29.215 §5.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// TERMINATION (0).
    Termination,
    /// ESTABLISHMENT (1).
    Establishment,
    /// MODIFICATION (2).
    Modification,
}

impl Operation {
    /// From the AVP value.
    pub fn from_code(v: i32) -> Option<Self> {
        match v {
            0 => Some(Self::Termination),
            1 => Some(Self::Establishment),
            2 => Some(Self::Modification),
            _ => None,
        }
    }
}

/// One Subsession-Enforcement-Info (TS 29.215 §5.3.2) of a CCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    /// Subsession-Id.
    pub id: u32,
    /// Subsession-Operation; absent means a modification (the subsession exists) — or an
    /// establishment in a CCR-I, where every subsession is new.
    pub operation: Option<Operation>,
    /// Framed-IP-Address or Framed-IPv6-Prefix of the subsession.
    pub ue_ip: Option<IpAddr>,
    /// Called-Station-Id.
    pub apn: Option<String>,
    /// RAT-Type.
    pub rat_type: Option<i32>,
    /// 3GPP-User-Location-Info.
    pub user_location: Option<Vec<u8>>,
    /// Event-Trigger values reported.
    pub event_triggers: Vec<i32>,
    /// Charging-Rule-Reports.
    pub rule_reports: Vec<RuleReport>,
    /// APN-AMBR requested in QoS-Information.
    pub requested_ambr: Option<Ambr>,
    /// DRA-Client-Session-Id values (our vendor AVP): the visited client's Session-Ids.
    pub client_sessions: Vec<String>,
    /// Result-Code or Experimental-Result-Code (in an RAA).
    pub result_code: Option<u32>,
}

/// An S9 CCR as the home PCRF reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S9Request {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host (the V-PCRF).
    pub origin_host: String,
    /// Origin-Realm (the roaming partner's realm).
    pub origin_realm: String,
    /// CC-Request-Type.
    pub request_type: RequestType,
    /// CC-Request-Number.
    pub request_number: u32,
    /// Origin-State-Id.
    pub origin_state: Option<u32>,
    /// Subscription-Id values, the IMSI first.
    pub subscribers: Vec<SubscriberKey>,
    /// The subsessions.
    pub subsessions: Vec<Enforcement>,
    /// Command-level DRA-Client-Session-Id values.
    pub client_sessions: Vec<String>,
    /// Supported-Features (TS 29.215 §5.4.1).
    pub features: Vec<gx::Features>,
}

/// Framed-IP-Address or Framed-IPv6-Prefix inside a Grouped AVP.
fn ue_ip_of(g: &AvpRef<'_>) -> Option<IpAddr> {
    match child(g, nasreq::FRAMED_IP_ADDRESS) {
        Some(d) => <[u8; 4]>::try_from(d)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        None => child(g, nasreq::FRAMED_IPV6_PREFIX).and_then(gx::ipv6_prefix),
    }
}

/// The Charging-Rule-Reports inside a Grouped AVP (TS 29.212 §5.3.18).
fn rule_reports_in(g: &AvpRef<'_>) -> Vec<RuleReport> {
    g.children()
        .flatten()
        .filter(|a| a.key() == gxd::CHARGING_RULE_REPORT.key())
        .map(|r| RuleReport {
            names: children_of(&r, gxd::CHARGING_RULE_NAME)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect(),
            bases: children_of(&r, gxd::CHARGING_RULE_BASE_NAME)
                .map(str::to_string)
                .collect(),
            status: child(&r, gxd::PCC_RULE_STATUS).map(|v| v.0),
            failure_code: child(&r, gxd::RULE_FAILURE_CODE).map(|v| v.0),
        })
        .collect()
}

/// Reads one Subsession-Enforcement-Info; an error without Subsession-Id (the node's grammar
/// check already answers 5005 for that) or with a Subsession-Operation out of range.
pub fn enforcement(g: &AvpRef<'_>) -> Result<Enforcement, String> {
    let id = child(g, s9::SUBSESSION_ID)
        .ok_or_else(|| "Subsession-Enforcement-Info without Subsession-Id".to_string())?;
    let operation = match child(g, s9::SUBSESSION_OPERATION) {
        Some(v) => Some(
            Operation::from_code(v.0)
                .ok_or_else(|| format!("Subsession-Operation {} is not 0, 1 or 2", v.0))?,
        ),
        None => None,
    };
    let requested_ambr = g
        .children()
        .flatten()
        .find(|a| a.key() == gxd::QOS_INFORMATION.key())
        .and_then(|q| {
            Some(Ambr {
                ul: child(&q, gxd::APN_AGGREGATE_MAX_BITRATE_UL)?,
                dl: child(&q, gxd::APN_AGGREGATE_MAX_BITRATE_DL)?,
            })
        });
    Ok(Enforcement {
        id,
        operation,
        ue_ip: ue_ip_of(g),
        apn: child(g, nasreq::CALLED_STATION_ID).map(str::to_string),
        rat_type: child(g, gxd::RAT_TYPE).map(|v| v.0),
        user_location: child(g, gi::TGPP_USER_LOCATION_INFO).map(<[u8]>::to_vec),
        event_triggers: children_of(g, gxd::EVENT_TRIGGER).map(|v| v.0).collect(),
        rule_reports: rule_reports_in(g),
        requested_ambr,
        client_sessions: children_of(g, roaming::DRA_CLIENT_SESSION_ID)
            .map(str::to_string)
            .collect(),
        result_code: child(g, base::RESULT_CODE)
            .or_else(|| child(g, base::EXPERIMENTAL_RESULT_CODE)),
    })
}

/// Why a CCR cannot be used: Result-Code (RFC 6733 §7.1.5) and what is wrong.
pub type ReadError = gx::ReadError;

impl S9Request {
    /// Reads an S9 CCR. The node checked the grammar; this reads values.
    pub fn read(msg: &Message) -> Result<Self, ReadError> {
        // The session-level fields are those of a Gx CCR (TS 29.215 §5.6.2 and TS 29.212
        // §5.6.2 share them).
        let g = gx::GxRequest::read(msg)?;
        let mut subsessions = Vec::new();
        for e in msg.find_all(s9::SUBSESSION_ENFORCEMENT_INFO.key()) {
            subsessions.push(enforcement(&e).map_err(|message| ReadError {
                result_code: 5004,
                message,
            })?);
        }
        Ok(Self {
            session_id: g.session_id,
            origin_host: g.origin_host,
            origin_realm: g.origin_realm,
            request_type: g.request_type,
            request_number: g.request_number,
            origin_state: msg.get(base::ORIGIN_STATE_ID).and_then(Result::ok),
            subscribers: g.subscribers,
            subsessions,
            client_sessions: msg
                .find_all(roaming::DRA_CLIENT_SESSION_ID.key())
                .filter_map(|a| roaming::DRA_CLIENT_SESSION_ID.decode(a.data).ok())
                .map(str::to_string)
                .collect(),
            features: g.features,
        })
    }
}

/// The key of a subsession's policy state: its S9 Session-Id and Subsession-Id. An AF
/// session bound to the subsession names it where it would name a Gx Session-Id.
pub fn subsession_key(s9_session: &str, id: u32) -> String {
    format!("{s9_session}#s9-subsession-{id}")
}

/// The S9 Session-Id and Subsession-Id of a [`subsession_key`].
pub fn parse_subsession_key(key: &str) -> Option<(&str, u32)> {
    let (sid, n) = key.rsplit_once("#s9-subsession-")?;
    Some((sid, n.parse().ok()?))
}

/// The host of a DiameterURI (`aaa://host:port;transport=tcp` → `host`), RFC 6733 §4.3.1.
fn uri_host(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("aaas://")
        .or_else(|| uri.strip_prefix("aaa://"))
        .unwrap_or(uri);
    rest.split([':', ';', '/']).next().unwrap_or(rest)
}

/// Home-OCS-Identity (our vendor AVP, DESIGN.md "Charging roaming"): the Diameter identities
/// of the home OCSs named by the charging section, for a V-PCRF to hand to the visited PCEF
/// and V-OCS; `None` when no OCS is configured.
pub fn home_ocs_identity(c: &ChargingSection) -> Option<OwnedAvp> {
    let primary = c.primary_ocs.as_deref()?;
    let mut v = vec![roaming::HOME_OCS_PRIMARY.with(uri_host(primary).to_string())];
    if let Some(s) = &c.secondary_ocs {
        v.push(roaming::HOME_OCS_SECONDARY.with(uri_host(s).to_string()));
    }
    Some(roaming::HOME_OCS_IDENTITY.with(v))
}

/// A Subsession-Decision-Info (TS 29.215 §5.3.1) for subsession `id`: the decision's PCC
/// rules, event triggers, QoS (APN-AMBR, Default-EPS-Bearer-QoS), and, outside a RAR,
/// Online/Offline; `extra` follows (Result-Code, Home-OCS-Identity).
pub fn decision_info(id: u32, d: &Decision, in_rar: bool, extra: Vec<OwnedAvp>) -> OwnedAvp {
    let mut v = vec![s9::SUBSESSION_ID.with(id)];
    v.extend(gx::decision_avps(d, in_rar));
    v.extend(extra);
    s9::SUBSESSION_DECISION_INFO.with(v)
}

/// A Subsession-Decision-Info that refuses subsession `id` (TS 29.215 §5.3.1: Result-Code
/// or Experimental-Result-Code only in a CCA).
pub fn refusal_info(id: u32, code: u32, experimental: bool) -> OwnedAvp {
    s9::SUBSESSION_DECISION_INFO.with(vec![
        s9::SUBSESSION_ID.with(id),
        if experimental {
            base::EXPERIMENTAL_RESULT_CODE.with(code)
        } else {
            base::RESULT_CODE.with(code)
        },
    ])
}

/// An S9 RAR (TS 29.215 §5.6.4) on S9 session `session_id` to the V-PCRF that opened it
/// (Destination-Host: back on its connection or through the agents that route to it),
/// AUTHORIZE_ONLY, with one Subsession-Decision-Info per subsession changed.
pub fn rar(
    me: &diameter_codec::LocalIdentity,
    session_id: &str,
    vpcrf_host: &str,
    vpcrf_realm: &str,
    infos: Vec<OwnedAvp>,
    release_cause: Option<i32>,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(s9::CMD_RE_AUTH, APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(session_id.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(vpcrf_realm.to_string()));
    b.push(base::DESTINATION_HOST.with(vpcrf_host.to_string()));
    b.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
    for i in infos {
        b.push(i);
    }
    if let Some(c) = release_cause {
        b.push(gxd::SESSION_RELEASE_CAUSE.with(gxd::SessionReleaseCause(c)));
    }
    b
}

/// The Subsession-Enforcement-Infos of an RAA (TS 29.215 §5.6.5): per subsession, its
/// result and rule reports.
pub fn enforcements_of(m: &Message) -> Vec<Enforcement> {
    m.find_all(s9::SUBSESSION_ENFORCEMENT_INFO.key())
        .filter_map(|e| enforcement(&e).ok())
        .collect()
}

/// A TER (TS 29.215 §5.6.7, Trigger-Establishment-Request): the H-PCRF asks a V-PCRF to
/// open an S9 session for a subscriber on an APN, or (with `dra_binding_deletion`) asks the
/// V-DRA to delete the binding such a request created. Its own Session-Id.
pub fn ter(
    me: &diameter_codec::LocalIdentity,
    session_id: &str,
    vpcrf_host: &str,
    vpcrf_realm: &str,
    imsi: &str,
    apn: Option<&str>,
    dra_binding_deletion: bool,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(s9::CMD_TRIGGER_ESTABLISHMENT, APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(session_id.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(vpcrf_realm.to_string()));
    b.push(base::DESTINATION_HOST.with(vpcrf_host.to_string()));
    // No state kept for the TER's own session (RFC 6733 §8.11).
    b.push(base::AUTH_SESSION_STATE.with(base::AuthSessionState::NO_STATE_MAINTAINED));
    b.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(imsi.to_string()),
    ]));
    if let Some(a) = apn {
        b.push(nasreq::CALLED_STATION_ID.with(a.to_string()));
    }
    if dra_binding_deletion {
        b.push(s9::DRA_BINDING.with(s9::DraBinding::DRA_BINDING_DELETION));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsession_keys_round_trip() {
        let k = subsession_key("vpcrf.visited.test;1;2", 7);
        assert_eq!(
            parse_subsession_key(&k),
            Some(("vpcrf.visited.test;1;2", 7))
        );
        assert_eq!(parse_subsession_key("pgw;1"), None);
        assert_eq!(parse_subsession_key("x#s9-subsession-y"), None);
    }

    #[test]
    fn ocs_identities_from_uris() {
        assert_eq!(
            uri_host("aaa://ocs.home.test:3870;transport=tcp"),
            "ocs.home.test"
        );
        assert_eq!(uri_host("aaas://ocs2.home.test"), "ocs2.home.test");
        assert_eq!(uri_host("ocs3"), "ocs3");
        assert!(home_ocs_identity(&ChargingSection::default()).is_none());
    }
}
