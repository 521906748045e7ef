//! Gx on the wire (TS 29.212, application 16777238): a CCR read into [`GxRequest`], a
//! [`Decision`] written into CCA or RAR AVPs, Supported-Features negotiation, and the RAR
//! itself.

use crate::config::{ChargingSection, FeatureList};
use crate::policy::Decision;
use crate::spr::{Ambr, Arp, DefaultBearerQos, RuleDef, SubscriberKey};
use diameter_codec::dict::{base, dcca, gi, gx, nasreq, rx, ts29229};
use diameter_codec::{AvpRef, AvpType, Message, MessageBuilder, OwnedAvp, TypedAvp};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The Gx application (TS 29.212 §5.1).
pub const APPLICATION_ID: u32 = gx::APP_GX;
/// 3GPP's Vendor-Id.
pub const VENDOR_3GPP: u32 = 10_415;
/// DIAMETER_USER_UNKNOWN (5030) for a subscriber the SPR does not know, sent in
/// Experimental-Result with Vendor-Id 10415 as TS 29.212 §5.5.3 is read for Gx (see
/// [`experimental_result`]). The same number is RFC 4006's Result-Code on Gy; protocol.md
/// lists it only there, so a peer that expects it as a plain Result-Code is possible —
/// the Gx text should be checked against the spec before relying on either form.
pub const USER_UNKNOWN: u32 = 5030;

/// CC-Request-Type (RFC 4006 §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    /// INITIAL_REQUEST (1).
    Initial,
    /// UPDATE_REQUEST (2).
    Update,
    /// TERMINATION_REQUEST (3).
    Termination,
    /// EVENT_REQUEST (4): not used on Gx.
    Event,
}

impl RequestType {
    /// From the AVP value.
    pub fn from_code(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Initial),
            2 => Some(Self::Update),
            3 => Some(Self::Termination),
            4 => Some(Self::Event),
            _ => None,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Update => "update",
            Self::Termination => "termination",
            Self::Event => "event",
        }
    }
}

/// One Charging-Rule-Report (TS 29.212 §5.3.18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleReport {
    /// Charging-Rule-Name values.
    pub names: Vec<String>,
    /// Charging-Rule-Base-Name values.
    pub bases: Vec<String>,
    /// PCC-Rule-Status.
    pub status: Option<i32>,
    /// Rule-Failure-Code.
    pub failure_code: Option<i32>,
}

/// One Supported-Features as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Vendor-Id; 10415 when the AVP lacked it (as Open5GS sends it).
    pub vendor: u32,
    /// Whether Vendor-Id was missing.
    pub vendor_missing: bool,
    /// Feature-List-ID.
    pub list_id: u32,
    /// Feature-List.
    pub list: u32,
}

/// A Gx CCR as the PCRF reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GxRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// CC-Request-Type.
    pub request_type: RequestType,
    /// CC-Request-Number.
    pub request_number: u32,
    /// Subscription-Id values the PCRF can look up, in message order.
    pub subscribers: Vec<SubscriberKey>,
    /// Framed-IP-Address or the address of Framed-IPv6-Prefix.
    pub ue_ip: Option<IpAddr>,
    /// Called-Station-Id.
    pub apn: Option<String>,
    /// RAT-Type.
    pub rat_type: Option<i32>,
    /// 3GPP-User-Location-Info.
    pub user_location: Option<Vec<u8>>,
    /// Event-Trigger values reported.
    pub event_triggers: Vec<i32>,
    /// Charging-Rule-Report.
    pub rule_reports: Vec<RuleReport>,
    /// Supported-Features.
    pub features: Vec<Features>,
    /// APN-AMBR requested in QoS-Information.
    pub requested_ambr: Option<Ambr>,
    /// The first Access-Network-Charging-Identifier-Value (TS 29.212 §5.3.22): the charging
    /// identifier an AF correlates with (TS 29.214 CHARGING_CORRELATION_EXCHANGE).
    pub charging_id: Option<Vec<u8>>,
    /// Access-Network-Charging-Address (TS 29.214 §5.3.2).
    pub charging_address: Option<IpAddr>,
}

/// Why a CCR cannot be read: the AVP at fault (Failed-AVP) and the Result-Code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// 5005 DIAMETER_MISSING_AVP or 5004 DIAMETER_INVALID_AVP_VALUE.
    pub result_code: u32,
    /// What is wrong.
    pub message: String,
}

fn first<'a, T: AvpType>(msg: &'a Message, def: TypedAvp<T>) -> Option<T::Value<'a>> {
    msg.get(def).and_then(Result::ok)
}

/// The first child `def` of a Grouped AVP.
pub fn child<'a, T: AvpType>(group: &AvpRef<'a>, def: TypedAvp<T>) -> Option<T::Value<'a>> {
    group
        .children()
        .flatten()
        .find(|a| a.key() == def.key())
        .and_then(|a| def.decode(a.data).ok())
}

/// Every child `def` of a Grouped AVP.
pub fn children_of<'a, T: AvpType>(
    group: &AvpRef<'a>,
    def: TypedAvp<T>,
) -> impl Iterator<Item = T::Value<'a>> {
    group
        .children()
        .flatten()
        .filter(move |a| a.key() == def.key())
        .filter_map(move |a| def.decode(a.data).ok())
}

/// Framed-IPv6-Prefix (RFC 3162 §2.3): reserved octet, prefix length, prefix.
pub(crate) fn ipv6_prefix(data: &[u8]) -> Option<IpAddr> {
    let bits = *data.get(1)?;
    let prefix = data.get(2..)?;
    if bits > 128 || prefix.len() > 16 {
        return None;
    }
    let mut a = [0u8; 16];
    a[..prefix.len()].copy_from_slice(prefix);
    Some(IpAddr::V6(Ipv6Addr::from(a)))
}

impl GxRequest {
    /// Reads a CCR. Grammar was checked by the node; this reads values and refuses the
    /// ones the PCRF needs and cannot use.
    pub fn read(msg: &Message) -> Result<Self, ReadError> {
        let missing = |what: &str| ReadError {
            result_code: 5005,
            message: format!("missing {what}"),
        };
        let session_id = msg
            .session_id()
            .ok_or_else(|| missing("Session-Id"))?
            .to_string();
        let origin_host = first(msg, base::ORIGIN_HOST)
            .ok_or_else(|| missing("Origin-Host"))?
            .to_string();
        let origin_realm = first(msg, base::ORIGIN_REALM)
            .ok_or_else(|| missing("Origin-Realm"))?
            .to_string();
        let t = first(msg, dcca::CC_REQUEST_TYPE).ok_or_else(|| missing("CC-Request-Type"))?;
        let request_type = RequestType::from_code(t.0).ok_or_else(|| ReadError {
            result_code: 5004,
            message: format!("CC-Request-Type {} is not 1 to 4", t.0),
        })?;
        let request_number =
            first(msg, dcca::CC_REQUEST_NUMBER).ok_or_else(|| missing("CC-Request-Number"))?;
        let mut subscribers = Vec::new();
        for s in msg.find_all(dcca::SUBSCRIPTION_ID.key()) {
            let (Some(t), Some(d)) = (
                child(&s, dcca::SUBSCRIPTION_ID_TYPE),
                child(&s, dcca::SUBSCRIPTION_ID_DATA),
            ) else {
                continue;
            };
            let d = d.to_string();
            match t {
                dcca::SubscriptionIdType::END_USER_IMSI => {
                    subscribers.push(SubscriberKey::Imsi(d));
                }
                dcca::SubscriptionIdType::END_USER_E164 => {
                    subscribers.push(SubscriberKey::Msisdn(d));
                }
                dcca::SubscriptionIdType::END_USER_NAI => subscribers.push(SubscriberKey::Nai(d)),
                _ => {}
            }
        }
        // The IMSI first: the most specific identity.
        subscribers.sort_by_key(|k| !matches!(k, SubscriberKey::Imsi(_)));
        let ue_ip = match first(msg, nasreq::FRAMED_IP_ADDRESS) {
            Some(d) => <[u8; 4]>::try_from(d)
                .ok()
                .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            None => first(msg, nasreq::FRAMED_IPV6_PREFIX).and_then(ipv6_prefix),
        };
        let rule_reports = rule_reports_of(msg);
        let features = msg
            .find_all(ts29229::SUPPORTED_FEATURES.key())
            .filter_map(|f| {
                let vendor = child(&f, base::VENDOR_ID);
                Some(Features {
                    vendor: vendor.unwrap_or(VENDOR_3GPP),
                    vendor_missing: vendor.is_none(),
                    list_id: child(&f, ts29229::FEATURE_LIST_ID)?,
                    list: child(&f, ts29229::FEATURE_LIST)?,
                })
            })
            .collect();
        let requested_ambr = msg.find(gx::QOS_INFORMATION.key()).and_then(|q| {
            Some(Ambr {
                ul: child(&q, gx::APN_AGGREGATE_MAX_BITRATE_UL)?,
                dl: child(&q, gx::APN_AGGREGATE_MAX_BITRATE_DL)?,
            })
        });
        Ok(Self {
            session_id,
            origin_host,
            origin_realm,
            request_type,
            request_number,
            subscribers,
            ue_ip,
            apn: first(msg, nasreq::CALLED_STATION_ID).map(str::to_string),
            rat_type: first(msg, gx::RAT_TYPE).map(|v| v.0),
            user_location: first(msg, gi::TGPP_USER_LOCATION_INFO).map(<[u8]>::to_vec),
            event_triggers: msg
                .find_all(gx::EVENT_TRIGGER.key())
                .filter_map(|a| gx::EVENT_TRIGGER.decode(a.data).ok())
                .map(|v| v.0)
                .collect(),
            rule_reports,
            features,
            requested_ambr,
            charging_id: msg
                .find(gx::ACCESS_NETWORK_CHARGING_IDENTIFIER_GX.key())
                .and_then(|g| child(&g, rx::ACCESS_NETWORK_CHARGING_IDENTIFIER_VALUE))
                .map(<[u8]>::to_vec),
            charging_address: first(msg, rx::ACCESS_NETWORK_CHARGING_ADDRESS).and_then(
                |a| match a {
                    diameter_codec::types::Address::V4(v) => Some(IpAddr::V4(v)),
                    diameter_codec::types::Address::V6(v) => Some(IpAddr::V6(v)),
                    _ => None,
                },
            ),
        })
    }
}

/// The Charging-Rule-Reports of a Gx message (CCR or RAA, TS 29.212 §5.3.18).
pub fn rule_reports_of(m: &Message) -> Vec<RuleReport> {
    m.find_all(gx::CHARGING_RULE_REPORT.key())
        .map(|r| RuleReport {
            names: children_of(&r, gx::CHARGING_RULE_NAME)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect(),
            bases: children_of(&r, gx::CHARGING_RULE_BASE_NAME)
                .map(str::to_string)
                .collect(),
            status: child(&r, gx::PCC_RULE_STATUS).map(|v| v.0),
            failure_code: child(&r, gx::RULE_FAILURE_CODE).map(|v| v.0),
        })
        .collect()
}

/// TS 29.212 §5.4.1 (with TS 29.229 §7.2): the PCRF answers, for each Feature-List-ID of
/// 3GPP's the PCEF sent, the features both support; a list with none in common is left
/// out. A request without Supported-Features gets none back (the PCEF supports only the
/// base release).
pub fn agree_features(ours: &[FeatureList], theirs: &[Features]) -> BTreeMap<u32, u32> {
    let mut agreed = BTreeMap::new();
    for t in theirs.iter().filter(|t| t.vendor == VENDOR_3GPP) {
        if let Some(o) = ours.iter().find(|o| o.list_id == t.list_id) {
            let common = o.list & t.list;
            if common != 0 {
                *agreed.entry(t.list_id).or_insert(0) |= common;
            }
        }
    }
    agreed
}

/// Supported-Features AVPs for agreed lists.
pub fn supported_features(agreed: &BTreeMap<u32, u32>) -> Vec<OwnedAvp> {
    agreed
        .iter()
        .map(|(&id, &list)| {
            ts29229::SUPPORTED_FEATURES.with(vec![
                base::VENDOR_ID.with(VENDOR_3GPP),
                ts29229::FEATURE_LIST_ID.with(id),
                ts29229::FEATURE_LIST.with(list),
            ])
        })
        .collect()
}

/// Experimental-Result {Vendor-Id 10415, Experimental-Result-Code} (RFC 6733 §7.6).
pub fn experimental_result(code: u32) -> OwnedAvp {
    base::EXPERIMENTAL_RESULT.with(vec![
        base::VENDOR_ID.with(VENDOR_3GPP),
        base::EXPERIMENTAL_RESULT_CODE.with(code),
    ])
}

fn arp(a: Arp) -> OwnedAvp {
    // TS 29.212 §5.3.46–47: ENABLED is 0, DISABLED 1.
    gx::ALLOCATION_RETENTION_PRIORITY.with(vec![
        gx::PRIORITY_LEVEL.with(a.priority_level),
        gx::PRE_EMPTION_CAPABILITY.with(gx::PreEmptionCapability(i32::from(
            !a.pre_emption_capability,
        ))),
        gx::PRE_EMPTION_VULNERABILITY.with(gx::PreEmptionVulnerability(i32::from(
            !a.pre_emption_vulnerability,
        ))),
    ])
}

/// Default-EPS-Bearer-QoS (TS 29.212 §5.3.48).
pub fn default_eps_bearer_qos(d: DefaultBearerQos) -> OwnedAvp {
    gx::DEFAULT_EPS_BEARER_QOS.with(vec![
        gx::QOS_CLASS_IDENTIFIER.with(gx::QosClassIdentifier(d.qci as i32)),
        arp(d.arp),
    ])
}

/// Session-level QoS-Information carrying APN-AMBR (TS 29.212 §4.5.1: the PCRF provides
/// the authorised APN-AMBR in QoS-Information at command level).
pub fn apn_ambr(a: Ambr) -> OwnedAvp {
    gx::QOS_INFORMATION.with(vec![
        gx::APN_AGGREGATE_MAX_BITRATE_UL.with(a.ul),
        gx::APN_AGGREGATE_MAX_BITRATE_DL.with(a.dl),
    ])
}

/// Flow-Information {Flow-Description, Flow-Direction} (TS 29.212 §5.3.53).
pub fn flow_information(f: &crate::spr::Flow) -> OwnedAvp {
    gx::FLOW_INFORMATION.with(vec![
        rx::FLOW_DESCRIPTION.with(f.description.clone()),
        gx::FLOW_DIRECTION.with(gx::FlowDirection(f.direction.code())),
    ])
}

/// The QoS-Information of a rule (TS 29.212 §5.3.16): QCI, MBR, GBR, ARP.
pub fn rule_qos(q: &crate::spr::RuleQos) -> OwnedAvp {
    let mut qi = vec![gx::QOS_CLASS_IDENTIFIER.with(gx::QosClassIdentifier(q.qci as i32))];
    if let Some(x) = q.mbr_ul {
        qi.push(rx::MAX_REQUESTED_BANDWIDTH_UL.with(x));
    }
    if let Some(x) = q.mbr_dl {
        qi.push(rx::MAX_REQUESTED_BANDWIDTH_DL.with(x));
    }
    if let Some(x) = q.gbr_ul {
        qi.push(gx::GUARANTEED_BITRATE_UL.with(x));
    }
    if let Some(x) = q.gbr_dl {
        qi.push(gx::GUARANTEED_BITRATE_DL.with(x));
    }
    if let Some(a) = q.arp {
        qi.push(arp(a));
    }
    gx::QOS_INFORMATION.with(qi)
}

/// Charging-Rule-Definition of a dynamic rule (TS 29.212 §5.3.4).
pub fn rule_definition(r: &RuleDef) -> OwnedAvp {
    let mut v = vec![gx::CHARGING_RULE_NAME.with(bytes::Bytes::from(r.name.clone()))];
    if let Some(s) = r.service_identifier {
        v.push(dcca::SERVICE_IDENTIFIER.with(s));
    }
    if let Some(rg) = r.rating_group {
        v.push(dcca::RATING_GROUP.with(rg));
    }
    v.extend(r.flows.iter().map(flow_information));
    if let Some(st) = r.flow_status {
        v.push(rx::FLOW_STATUS.with(rx::FlowStatus(st)));
    }
    if let Some(q) = &r.qos {
        v.push(rule_qos(q));
    }
    if let Some(o) = r.online {
        v.push(gx::ONLINE.with(gx::Online(i32::from(o))));
    }
    if let Some(o) = r.offline {
        v.push(gx::OFFLINE.with(gx::Offline(i32::from(o))));
    }
    if let Some(m) = r.metering {
        v.push(gx::METERING_METHOD.with(gx::MeteringMethod(m.code())));
    }
    if let Some(p) = r.precedence {
        v.push(gx::PRECEDENCE.with(p));
    }
    if let Some(c) = &r.af_charging_id {
        v.push(rx::AF_CHARGING_IDENTIFIER.with(bytes::Bytes::from(c.clone())));
    }
    for f in &r.af_flows {
        v.push(flows_avp(f));
    }
    if let Some(k) = &r.monitoring_key {
        v.push(gx::MONITORING_KEY.with(bytes::Bytes::from(k.clone())));
    }
    if let Some(m) = &r.lbo {
        v.extend(crate::lbo::mark_avps(m));
    }
    gx::CHARGING_RULE_DEFINITION.with(v)
}

/// A Flows AVP (TS 29.214 §5.3.10): a media component and, when listed, some of its flows.
pub fn flows_avp(f: &crate::spr::AfFlows) -> OwnedAvp {
    let mut v = vec![rx::MEDIA_COMPONENT_NUMBER.with(f.media_component)];
    v.extend(f.flow_numbers.iter().map(|&n| rx::FLOW_NUMBER.with(n)));
    rx::FLOWS.with(v)
}

/// Charging-Information (TS 29.229 §6.3.19) naming the configured charging functions, or
/// `None` when there is nothing to name for this session.
pub fn charging_information(c: &ChargingSection, online: bool, offline: bool) -> Option<OwnedAvp> {
    let mut v = Vec::new();
    if online {
        if let Some(u) = &c.primary_ocs {
            v.push(ts29229::PRIMARY_EVENT_CHARGING_FUNCTION_NAME.with(u.clone()));
        }
        if let Some(u) = &c.secondary_ocs {
            v.push(ts29229::SECONDARY_EVENT_CHARGING_FUNCTION_NAME.with(u.clone()));
        }
    }
    if offline {
        if let Some(u) = &c.primary_ccf {
            v.push(ts29229::PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME.with(u.clone()));
        }
        if let Some(u) = &c.secondary_ccf {
            v.push(ts29229::SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME.with(u.clone()));
        }
    }
    (!v.is_empty()).then(|| ts29229::CHARGING_INFORMATION.with(v))
}

/// The AVPs of a decision, in the order of the CCA grammar (TS 29.212 §5.6.3); the RAR
/// (§5.6.4) takes the same, minus Online/Offline.
pub fn decision_avps(d: &Decision, in_rar: bool) -> Vec<OwnedAvp> {
    let mut out = Vec::new();
    if let Some(t) = &d.event_triggers {
        if t.is_empty() {
            out.push(gx::EVENT_TRIGGER.with(gx::EventTrigger::NO_EVENT_TRIGGERS));
        }
        for &e in t {
            out.push(gx::EVENT_TRIGGER.with(gx::EventTrigger(e)));
        }
    }
    if !d.remove.is_empty() || !d.remove_bases.is_empty() {
        let mut v: Vec<OwnedAvp> = d
            .remove
            .iter()
            .map(|n| gx::CHARGING_RULE_NAME.with(bytes::Bytes::from(n.clone())))
            .collect();
        v.extend(
            d.remove_bases
                .iter()
                .map(|n| gx::CHARGING_RULE_BASE_NAME.with(n.clone())),
        );
        out.push(gx::CHARGING_RULE_REMOVE.with(v));
    }
    if d.installs() > 0 {
        let mut v: Vec<OwnedAvp> = d.install.iter().map(|r| rule_definition(r)).collect();
        v.extend(
            d.activate
                .iter()
                .map(|n| gx::CHARGING_RULE_NAME.with(bytes::Bytes::from(n.clone()))),
        );
        v.extend(
            d.activate_bases
                .iter()
                .map(|n| gx::CHARGING_RULE_BASE_NAME.with(n.clone())),
        );
        out.push(gx::CHARGING_RULE_INSTALL.with(v));
    }
    if !in_rar {
        if let Some(o) = d.online {
            out.push(gx::ONLINE.with(gx::Online(i32::from(o))));
        }
        if let Some(o) = d.offline {
            out.push(gx::OFFLINE.with(gx::Offline(i32::from(o))));
        }
    }
    if let Some(a) = d.apn_ambr {
        out.push(apn_ambr(a));
    }
    if let Some(q) = d.default_bearer {
        out.push(default_eps_bearer_qos(q));
    }
    out
}

/// A Gx RAR (TS 29.212 §5.6.4) for a session: to the PCEF that opened it
/// (Destination-Host, RFC 6733 §6.1: so it goes back on that PCEF's connection or through
/// the agents that route to it), AUTHORIZE_ONLY, with the decision's AVPs and, to end the
/// session, Session-Release-Cause.
pub fn rar(
    me: &diameter_codec::LocalIdentity,
    session_id: &str,
    pcef_host: &str,
    pcef_realm: &str,
    d: &Decision,
    release_cause: Option<i32>,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(gx::CMD_RE_AUTH, APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(session_id.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(pcef_realm.to_string()));
    b.push(base::DESTINATION_HOST.with(pcef_host.to_string()));
    b.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
    if let Some(c) = release_cause {
        b.push(gx::SESSION_RELEASE_CAUSE.with(gx::SessionReleaseCause(c)));
    }
    for a in decision_avps(d, true) {
        b.push(a);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(vendor: u32, id: u32, list: u32) -> Features {
        Features {
            vendor,
            vendor_missing: false,
            list_id: id,
            list,
        }
    }

    #[test]
    fn features_in_common_per_list() {
        let ours = [
            FeatureList {
                list_id: 1,
                list: 0b1011,
            },
            FeatureList {
                list_id: 2,
                list: 0b1,
            },
        ];
        let agreed = agree_features(
            &ours,
            &[
                f(VENDOR_3GPP, 1, 0b0110),
                f(VENDOR_3GPP, 2, 0b10),
                f(99, 1, 1),
            ],
        );
        assert_eq!(agreed, BTreeMap::from([(1, 0b0010)]));
        assert!(agree_features(&ours, &[]).is_empty());
    }

    #[test]
    fn ipv6_prefixes_read() {
        let p = [0u8, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1];
        assert_eq!(
            ipv6_prefix(&p),
            Some("2001:db8:0:1::".parse::<IpAddr>().unwrap())
        );
        assert_eq!(ipv6_prefix(&[0]), None);
        assert_eq!(ipv6_prefix(&[0, 200, 1]), None);
    }
}
