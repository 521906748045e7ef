//! Rx on the wire (TS 29.214, application 16777236) and the service information → PCC rule
//! mapping of TS 29.213 §6.3: an AAR read into [`AaRequest`], media components turned into
//! dynamic PCC rules ([`derive_rules`]), and the RAR and ASR the PCRF sends the AF.
//!
//! # The mapping (TS 29.213 §6.3, codec independent)
//!
//! One dynamic PCC rule per media component that has flows, named
//! `rx-<16 hex digits of a hash of the AF Session-Id>-<Media-Component-Number>` (unique
//! among the AF sessions of a Gx session, short enough for any PCEF), carrying:
//!
//! - every Flow-Description of every Media-Sub-Component (TS 29.214 §5.3.18 allows two per
//!   sub-component; peers such as Kamailio send four, and all are honoured). An Rx filter
//!   `permit in …` (uplink, TS 29.214 §5.3.8) becomes `permit out …` with Flow-Direction
//!   UPLINK and its addresses kept, `permit out …` stays with Flow-Direction DOWNLINK —
//!   the form the Gx rules of Open5GS's PCRF take in the open5gs_testepc capture (Gx
//!   direction rules are marked unverified in protocol.md §14);
//! - QoS-Information: the QCI from the Media-Type ([`qci_for`]); Max-Requested-Bandwidth
//!   (MBR) from the component's Max-Requested-Bandwidth-UL/DL, or the sum of its
//!   sub-components' when the component has none, plus RS-Bandwidth + RR-Bandwidth when a
//!   sub-component carries RTCP (Flow-Usage RTCP); for a GBR QCI, Guaranteed-Bitrate from
//!   Min-Requested-Bandwidth when given, else the MBR; the configured ARP;
//! - Flow-Status from the component (or its sub-components), gating the rule;
//! - AF-Charging-Identifier and Flows (the component and its flow numbers), so the PCEF's
//!   reports name the AF's flows;
//! - the configured precedence (below the subscriber's default rules).
//!
//! Bit rates are then capped by the subscriber's QoS limits like every rule
//! ([`crate::policy::decide`]).
//!
//! # What was checked, and what was not
//!
//! The codes and values used here are those protocol.md tags as agreed by two or more
//! sources: Experimental-Result-Codes 5061–5065 and 4261 (§11), Specific-Action and
//! Abort-Cause values (§10), the Rx application id (§2). The TS 29.214 clause numbers
//! quoted in this crate (§4.4.1 binding and 5065, §4.4.2 modification, §4.4.4 STR,
//! §4.4.6.x notifications) and the TS 29.213 §6.3 QCI choices are this project's reading;
//! the 3GPP text itself was not available where this was written, so they belong with
//! protocol.md §14's list of items to check against the .docx before release. The QCI of
//! each Media-Type is configuration (`[pcrf.rx.qci]`) for that reason. How the AF hears of
//! the loss of its IP-CAN session is a choice documented at [`crate::config::IpCanLoss`]:
//! RAR with the loss or release of bearer to an AF that subscribed to it, ASR otherwise
//! (or always, by configuration) — both end with the AF's STR (document 002, steps
//! 914–918).

use crate::config::RxSection;
use crate::session::{MediaComponent, RxSession, SubComponent};
use crate::spr::{AfFlows, Flow, FlowDirection, RuleDef, RuleQos, SubscriberKey};
use diameter_codec::dict::{base, dcca, nasreq, rx};
use diameter_codec::types::{FilterAction, FilterDirection, IpFilterRule};
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use crate::gx::child;

/// The Rx application (TS 29.214 §5.1).
pub const APPLICATION_ID: u32 = rx::APP_RX;
/// INVALID_SERVICE_INFORMATION (TS 29.214 §5.5.3), in Experimental-Result.
pub const INVALID_SERVICE_INFORMATION: u32 = 5061;
/// FILTER_RESTRICTIONS (TS 29.214 §5.5.3): a Flow-Description outside the Rx restrictions
/// of §5.3.8.
pub const FILTER_RESTRICTIONS: u32 = 5062;
/// REQUESTED_SERVICE_NOT_AUTHORIZED (TS 29.214 §5.5.3).
pub const REQUESTED_SERVICE_NOT_AUTHORIZED: u32 = 5063;
/// IP-CAN_SESSION_NOT_AVAILABLE (TS 29.214 §5.5.3): session binding found no IP-CAN
/// session for the AF session (TS 29.214 §4.4.1). The code is tagged V2 (two sources agree) in protocol.md §11.
pub const IP_CAN_SESSION_NOT_AVAILABLE: u32 = 5065;

/// Rx-Request-Type (TS 29.214 §5.3.31).
pub const RX_INITIAL: i32 = 0;
/// Rx-Request-Type UPDATE_REQUEST.
pub const RX_UPDATE: i32 = 1;

/// Flow-Status values (TS 29.214 §5.3.11).
pub mod flow_status {
    /// ENABLED-UPLINK.
    pub const ENABLED_UPLINK: i32 = 0;
    /// ENABLED-DOWNLINK.
    pub const ENABLED_DOWNLINK: i32 = 1;
    /// ENABLED.
    pub const ENABLED: i32 = 2;
    /// DISABLED.
    pub const DISABLED: i32 = 3;
    /// REMOVED: the component's flows are gone.
    pub const REMOVED: i32 = 4;
}

/// Specific-Action values the PCRF reports (TS 29.214 §5.3.13).
pub mod action {
    /// CHARGING_CORRELATION_EXCHANGE.
    pub const CHARGING_CORRELATION_EXCHANGE: i32 = 1;
    /// INDICATION_OF_LOSS_OF_BEARER.
    pub const LOSS_OF_BEARER: i32 = 2;
    /// INDICATION_OF_RECOVERY_OF_BEARER.
    pub const RECOVERY_OF_BEARER: i32 = 3;
    /// INDICATION_OF_RELEASE_OF_BEARER.
    pub const RELEASE_OF_BEARER: i32 = 4;
    /// IP-CAN_CHANGE.
    pub const IP_CAN_CHANGE: i32 = 6;
    /// INDICATION_OF_SUCCESSFUL_RESOURCES_ALLOCATION.
    pub const SUCCESSFUL_RESOURCES_ALLOCATION: i32 = 8;
    /// INDICATION_OF_FAILED_RESOURCES_ALLOCATION.
    pub const FAILED_RESOURCES_ALLOCATION: i32 = 9;
}

/// An AAR as the PCRF reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AaRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Framed-IP-Address, or the address of Framed-IPv6-Prefix.
    pub ue_ip: Option<IpAddr>,
    /// Called-Station-Id (the APN, TS 29.214 §5.6.1).
    pub apn: Option<String>,
    /// Rx-Request-Type.
    pub request_type: Option<i32>,
    /// AF-Application-Identifier.
    pub af_application_id: Option<String>,
    /// AF-Charging-Identifier, hex.
    pub af_charging_id: Option<String>,
    /// Specific-Action subscriptions.
    pub specific_actions: Vec<i32>,
    /// Subscription-Id values the PCRF knows how to compare.
    pub subscribers: Vec<SubscriberKey>,
    /// Media-Component-Descriptions.
    pub components: Vec<MediaComponent>,
}

/// Why an Rx request is refused: its Result-Code or Experimental-Result-Code, what is
/// wrong, and the AVP at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct RxError {
    /// The code.
    pub code: u32,
    /// Whether it goes in Experimental-Result (3GPP codes) rather than Result-Code.
    pub experimental: bool,
    /// Error-Message.
    pub message: String,
    /// Failed-AVP content.
    pub failed: Option<OwnedAvp>,
}

impl RxError {
    fn base(code: u32, message: impl Into<String>, failed: Option<OwnedAvp>) -> Self {
        Self {
            code,
            experimental: false,
            message: message.into(),
            failed,
        }
    }

    /// A 3GPP code, sent in Experimental-Result.
    pub fn tgpp(code: u32, message: impl Into<String>, failed: Option<OwnedAvp>) -> Self {
        Self {
            code,
            experimental: true,
            message: message.into(),
            failed,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// TS 29.214 §5.3.8: on Rx a Flow-Description is `permit`, `in` (uplink) or `out`
/// (downlink), without options. `Err` names the restriction broken.
pub fn check_rx_filter(text: &str) -> Result<FlowDirection, String> {
    let r = IpFilterRule::parse_str(text).map_err(|e| e.to_string())?;
    if r.action != FilterAction::Permit {
        return Err("only \"permit\" rules are allowed on Rx".into());
    }
    if !r.options.trim().is_empty() {
        return Err(format!(
            "options are not allowed on Rx: `{}`",
            r.options.trim()
        ));
    }
    Ok(match r.direction {
        FilterDirection::In => FlowDirection::Uplink,
        FilterDirection::Out => FlowDirection::Downlink,
    })
}

/// The Gx form of an Rx filter (see the module documentation): `permit out` with the
/// Flow-Direction the Rx direction meant.
pub fn gx_flow(text: &str) -> Option<Flow> {
    let direction = check_rx_filter(text).ok()?;
    let t = text.trim_start();
    let rest = t.strip_prefix("permit")?.trim_start();
    let rest = rest
        .strip_prefix("in")
        .or_else(|| rest.strip_prefix("out"))?;
    Some(Flow {
        description: format!("permit out{rest}"),
        direction,
    })
}

fn read_sub(s: &AvpRef<'_>, mcn: u32) -> Result<SubComponent, RxError> {
    let flow_number = child(s, rx::FLOW_NUMBER).ok_or_else(|| {
        RxError::base(
            5005,
            format!("Media-Sub-Component of media component {mcn} without Flow-Number"),
            Some(rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
                rx::MEDIA_COMPONENT_NUMBER.with(mcn),
                rx::MEDIA_SUB_COMPONENT.with(vec![rx::FLOW_NUMBER.with(0u32)]),
            ])),
        )
    })?;
    let mut descriptions = Vec::new();
    for a in s
        .children()
        .flatten()
        .filter(|a| a.key() == rx::FLOW_DESCRIPTION.key())
    {
        let text = String::from_utf8_lossy(a.data).into_owned();
        if let Err(why) = check_rx_filter(&text) {
            return Err(RxError::tgpp(
                FILTER_RESTRICTIONS,
                format!("Flow-Description `{text}` (flow {mcn}.{flow_number}): {why}"),
                Some(rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
                    rx::MEDIA_COMPONENT_NUMBER.with(mcn),
                    rx::MEDIA_SUB_COMPONENT.with(vec![
                        rx::FLOW_NUMBER.with(flow_number),
                        OwnedAvp::from_ref(&a),
                    ]),
                ])),
            ));
        }
        descriptions.push(text);
    }
    Ok(SubComponent {
        flow_number,
        descriptions,
        flow_status: child(s, rx::FLOW_STATUS).map(|v| v.0),
        flow_usage: child(s, rx::FLOW_USAGE).map(|v| v.0),
        mbr_ul: child(s, rx::MAX_REQUESTED_BANDWIDTH_UL),
        mbr_dl: child(s, rx::MAX_REQUESTED_BANDWIDTH_DL),
    })
}

fn read_component(c: &AvpRef<'_>) -> Result<MediaComponent, RxError> {
    let number = child(c, rx::MEDIA_COMPONENT_NUMBER).ok_or_else(|| {
        RxError::base(
            5005,
            "Media-Component-Description without Media-Component-Number",
            Some(rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![rx::MEDIA_COMPONENT_NUMBER.with(0u32)])),
        )
    })?;
    let mut sub_components = BTreeMap::new();
    for s in c
        .children()
        .flatten()
        .filter(|a| a.key() == rx::MEDIA_SUB_COMPONENT.key())
    {
        let sub = read_sub(&s, number)?;
        sub_components.insert(sub.flow_number, sub);
    }
    Ok(MediaComponent {
        number,
        media_type: child(c, rx::MEDIA_TYPE).map(|v| v.0),
        af_application_id: child(c, rx::AF_APPLICATION_IDENTIFIER)
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        mbr_ul: child(c, rx::MAX_REQUESTED_BANDWIDTH_UL),
        mbr_dl: child(c, rx::MAX_REQUESTED_BANDWIDTH_DL),
        min_ul: child(c, rx::MIN_REQUESTED_BANDWIDTH_UL),
        min_dl: child(c, rx::MIN_REQUESTED_BANDWIDTH_DL),
        rr: child(c, rx::RR_BANDWIDTH),
        rs: child(c, rx::RS_BANDWIDTH),
        flow_status: child(c, rx::FLOW_STATUS).map(|v| v.0),
        sub_components,
    })
}

impl AaRequest {
    /// Reads an AAR (TS 29.214 §5.6.1). Grammar was checked by the node (liberally: a
    /// Media-Sub-Component with more than two Flow-Descriptions arrives, and all are read).
    pub fn read(msg: &Message) -> Result<Self, RxError> {
        let missing = |what: &str| RxError::base(5005, format!("missing {what}"), None);
        let session_id = msg
            .session_id()
            .ok_or_else(|| missing("Session-Id"))?
            .to_string();
        let origin_host = msg
            .get(base::ORIGIN_HOST)
            .and_then(Result::ok)
            .ok_or_else(|| missing("Origin-Host"))?
            .to_string();
        let origin_realm = msg
            .get(base::ORIGIN_REALM)
            .and_then(Result::ok)
            .ok_or_else(|| missing("Origin-Realm"))?
            .to_string();
        let ue_ip = match msg.get(nasreq::FRAMED_IP_ADDRESS).and_then(Result::ok) {
            Some(d) => Some(
                <[u8; 4]>::try_from(d)
                    .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                    .map_err(|_| {
                        RxError::base(
                            5004,
                            "Framed-IP-Address is not 4 octets",
                            msg.find(nasreq::FRAMED_IP_ADDRESS.key())
                                .map(|a| OwnedAvp::from_ref(&a)),
                        )
                    })?,
            ),
            None => msg
                .get(nasreq::FRAMED_IPV6_PREFIX)
                .and_then(Result::ok)
                .and_then(crate::gx::ipv6_prefix),
        };
        let mut subscribers = Vec::new();
        for s in msg.find_all(dcca::SUBSCRIPTION_ID.key()) {
            let (Some(t), Some(d)) = (
                child(&s, dcca::SUBSCRIPTION_ID_TYPE),
                child(&s, dcca::SUBSCRIPTION_ID_DATA),
            ) else {
                continue;
            };
            match t {
                dcca::SubscriptionIdType::END_USER_IMSI => {
                    subscribers.push(SubscriberKey::Imsi(d.to_string()));
                }
                dcca::SubscriptionIdType::END_USER_E164 => {
                    subscribers.push(SubscriberKey::Msisdn(d.to_string()));
                }
                dcca::SubscriptionIdType::END_USER_NAI => {
                    subscribers.push(SubscriberKey::Nai(d.to_string()));
                }
                _ => {}
            }
        }
        let mut components = Vec::new();
        for c in msg.find_all(rx::MEDIA_COMPONENT_DESCRIPTION.key()) {
            components.push(read_component(&c)?);
        }
        Ok(Self {
            session_id,
            origin_host,
            origin_realm,
            ue_ip,
            apn: msg
                .get(nasreq::CALLED_STATION_ID)
                .and_then(Result::ok)
                .map(str::to_string),
            request_type: msg
                .get(rx::RX_REQUEST_TYPE)
                .and_then(Result::ok)
                .map(|v| v.0),
            af_application_id: msg
                .get(rx::AF_APPLICATION_IDENTIFIER)
                .and_then(Result::ok)
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            af_charging_id: msg
                .get(rx::AF_CHARGING_IDENTIFIER)
                .and_then(Result::ok)
                .map(hex),
            specific_actions: msg
                .find_all(rx::SPECIFIC_ACTION.key())
                .filter_map(|a| rx::SPECIFIC_ACTION.decode(a.data).ok())
                .map(|v| v.0)
                .collect(),
            subscribers,
            components,
        })
    }
}

/// Merges a modification's media components into the session's (TS 29.214 §4.4.2): a
/// component sent again replaces the values it carries, its sub-components replace those of
/// the same Flow-Number and keep the others; Flow-Status REMOVED removes the component.
pub fn merge_components(into: &mut BTreeMap<u32, MediaComponent>, new: Vec<MediaComponent>) {
    for c in new {
        if c.flow_status == Some(flow_status::REMOVED) {
            into.remove(&c.number);
            continue;
        }
        match into.get_mut(&c.number) {
            None => {
                into.insert(c.number, c);
            }
            Some(cur) => {
                macro_rules! keep {
                    ($($f:ident),*) => { $( if c.$f.is_some() { cur.$f = c.$f.clone(); } )* };
                }
                keep!(
                    media_type,
                    af_application_id,
                    mbr_ul,
                    mbr_dl,
                    min_ul,
                    min_dl,
                    rr,
                    rs,
                    flow_status
                );
                for (n, s) in c.sub_components {
                    if s.flow_status == Some(flow_status::REMOVED) {
                        cur.sub_components.remove(&n);
                    } else {
                        cur.sub_components.insert(n, s);
                    }
                }
            }
        }
    }
}

/// Whether a QCI is of the GBR resource type (TS 23.203 table 6.1.7).
pub fn is_gbr(qci: u32) -> bool {
    matches!(qci, 1..=4 | 65..=67 | 71..=76 | 82..=85)
}

/// The QCI of a media component (TS 29.213 §6.3, as this PCRF applies it; the operator
/// may override each Media-Type in `[pcrf.rx.qci]`): AF signalling flows (Flow-Usage
/// AF_SIGNALLING) QCI 5; conversational audio QCI 1 and video QCI 2 when the media flows
/// both ways (Flow-Status ENABLED or absent), QCI 4 (streaming) when one way;
/// APPLICATION QCI 2 … see [`crate::config::RxQci`] for the table and its defaults.
pub fn qci_for(c: &MediaComponent, cfg: &RxSection) -> u32 {
    if !c.sub_components.is_empty() && c.sub_components.values().all(|s| s.flow_usage == Some(2)) {
        return cfg.qci.signalling;
    }
    let one_way = matches!(
        c.flow_status,
        Some(flow_status::ENABLED_UPLINK) | Some(flow_status::ENABLED_DOWNLINK)
    );
    let q = &cfg.qci;
    match c.media_type {
        Some(0) if one_way => q.streaming,
        Some(0) => q.audio,
        Some(1) if one_way => q.streaming,
        Some(1) => q.video,
        Some(2) => q.data,
        Some(3) => q.application,
        Some(4) => q.control,
        Some(5) | Some(6) => q.text,
        _ => q.other,
    }
}

/// The name of the rule derived from media component `mcn` of AF session `af_session`
/// (FNV-1a 64 of the Session-Id: stable, short, distinct for distinct AF sessions in
/// practice).
pub fn rule_name(af_session: &str, mcn: u32) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in af_session.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("rx-{h:016x}-{mcn}")
}

fn sum(values: impl Iterator<Item = Option<u32>>) -> Option<u32> {
    values.flatten().fold(None, |acc: Option<u32>, v| {
        Some(acc.unwrap_or(0).saturating_add(v))
    })
}

/// The rule of one media component (see the module documentation), or `None` when it has
/// no flows to install.
pub fn derive_rule(s: &RxSession, c: &MediaComponent, cfg: &RxSection) -> Option<RuleDef> {
    let mut flows = Vec::new();
    for sub in c.sub_components.values() {
        if sub.flow_status == Some(flow_status::REMOVED) {
            continue;
        }
        flows.extend(sub.descriptions.iter().filter_map(|d| gx_flow(d)));
    }
    if flows.is_empty() || c.flow_status == Some(flow_status::REMOVED) {
        return None;
    }
    let qci = qci_for(c, cfg);
    let rtcp = c.sub_components.values().any(|s| s.flow_usage == Some(1));
    let rtcp_extra = match (rtcp, c.rs, c.rr) {
        (true, rs, rr) if rs.is_some() || rr.is_some() => {
            rs.unwrap_or(0).saturating_add(rr.unwrap_or(0))
        }
        _ => 0,
    };
    let mbr = |component: Option<u32>, per_flow: Option<u32>| {
        component.or(per_flow).map(|v| v.saturating_add(rtcp_extra))
    };
    let mbr_ul = mbr(c.mbr_ul, sum(c.sub_components.values().map(|s| s.mbr_ul)));
    let mbr_dl = mbr(c.mbr_dl, sum(c.sub_components.values().map(|s| s.mbr_dl)));
    let (gbr_ul, gbr_dl) = if is_gbr(qci) {
        (c.min_ul.or(mbr_ul), c.min_dl.or(mbr_dl))
    } else {
        (None, None)
    };
    // Gating (TS 29.214 §4.4.3): the component's Flow-Status, else one of its flows'.
    let status = c
        .flow_status
        .or_else(|| c.sub_components.values().find_map(|s| s.flow_status))
        .unwrap_or(flow_status::ENABLED);
    Some(RuleDef {
        name: rule_name(&s.session_id, c.number),
        precedence: Some(cfg.precedence),
        rating_group: cfg.rating_group,
        service_identifier: None,
        online: None,
        offline: None,
        metering: None,
        flows,
        qos: Some(RuleQos {
            qci,
            mbr_ul,
            mbr_dl,
            gbr_ul,
            gbr_dl,
            arp: Some(cfg.arp),
        }),
        monitoring_key: None,
        flow_status: Some(status),
        af_charging_id: s.af_charging_id.as_ref().map(|h| unhex_lossy(h)),
        af_flows: vec![AfFlows {
            media_component: c.number,
            flow_numbers: c.sub_components.keys().copied().collect(),
        }],
        lbo: None,
    })
}

/// The AF-Charging-Identifier as sent (hex back to its text; non-UTF-8 octets are kept
/// as replacement characters).
fn unhex_lossy(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Every rule of an AF session's components.
pub fn derive_rules(s: &RxSession, cfg: &RxSection) -> Vec<RuleDef> {
    s.components
        .values()
        .filter_map(|c| derive_rule(s, c, cfg))
        .collect()
}

/// The Gx Event-Triggers an AF's subscriptions need from the PCEF (TS 29.214 §4.4.1 with
/// TS 29.212 §5.3.7): loss and recovery of bearer LOSS_OF_BEARER (5) and
/// RECOVERY_OF_BEARER (6), IP-CAN change RAT_CHANGE (2) and IP-CAN_CHANGE (7), successful
/// allocation SUCCESSFUL_RESOURCE_ALLOCATION (22), charging correlation
/// CHARGING_CORRELATION_EXCHANGE (28).
pub fn gx_triggers_for(actions: &BTreeSet<i32>) -> BTreeSet<i32> {
    let mut t = BTreeSet::new();
    for &a in actions {
        match a {
            action::LOSS_OF_BEARER => {
                t.insert(5);
            }
            action::RECOVERY_OF_BEARER => {
                t.insert(6);
            }
            action::IP_CAN_CHANGE => {
                t.extend([2, 7]);
            }
            action::SUCCESSFUL_RESOURCES_ALLOCATION => {
                t.insert(22);
            }
            action::CHARGING_CORRELATION_EXCHANGE => {
                t.insert(28);
            }
            _ => {}
        }
    }
    t
}

/// Access-Network-Charging-Identifier {Access-Network-Charging-Identifier-Value} and
/// Access-Network-Charging-Address of an IP-CAN session, when known (TS 29.214 §5.3.2–4).
pub fn charging_avps(g: &crate::session::GxSession) -> Vec<OwnedAvp> {
    let mut v = Vec::new();
    if let Some(id) = &g.charging_id {
        let bytes: Vec<u8> = (0..id.len() / 2)
            .filter_map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        v.push(rx::ACCESS_NETWORK_CHARGING_IDENTIFIER.with(vec![
            rx::ACCESS_NETWORK_CHARGING_IDENTIFIER_VALUE.with(bytes::Bytes::from(bytes)),
        ]));
    }
    if let Some(a) = g.charging_address {
        v.push(rx::ACCESS_NETWORK_CHARGING_ADDRESS.with(a));
    }
    v
}

/// An Rx RAR to the AF (TS 29.214 §5.6.3) reporting `actions` for `flows`, with
/// Abort-Cause when given and `extra` AVPs (Access-Network-Charging-Identifier, RAT-Type).
pub fn rar(
    me: &diameter_codec::LocalIdentity,
    s: &RxSession,
    actions: &[i32],
    flows: &[AfFlows],
    abort_cause: Option<i32>,
    extra: Vec<OwnedAvp>,
) -> MessageBuilder {
    let mut b = MessageBuilder::request(rx::CMD_RE_AUTH, APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(s.session_id.clone()));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(s.af_realm.clone()));
    b.push(base::DESTINATION_HOST.with(s.af_host.clone()));
    b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    for &a in actions {
        b.push(rx::SPECIFIC_ACTION.with(rx::SpecificAction(a)));
    }
    for f in flows {
        b.push(crate::gx::flows_avp(f));
    }
    if let Some(c) = abort_cause {
        b.push(rx::ABORT_CAUSE.with(rx::AbortCause(c)));
    }
    for a in extra {
        b.push(a);
    }
    b
}

/// An Rx ASR to the AF (TS 29.214 §5.6.7) with Abort-Cause.
pub fn asr(me: &diameter_codec::LocalIdentity, s: &RxSession, abort_cause: i32) -> MessageBuilder {
    let mut b = MessageBuilder::request(rx::CMD_ABORT_SESSION, APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(s.session_id.clone()));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(s.af_realm.clone()));
    b.push(base::DESTINATION_HOST.with(s.af_host.clone()));
    b.push(base::AUTH_APPLICATION_ID.with(APPLICATION_ID));
    b.push(rx::ABORT_CAUSE.with(rx::AbortCause(abort_cause)));
    b
}

/// The Flows of every media component of a session (all their flows).
pub fn all_flows(s: &RxSession) -> Vec<AfFlows> {
    s.components
        .values()
        .map(|c| AfFlows {
            media_component: c.number,
            flow_numbers: c.sub_components.keys().copied().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(n: u32, descs: &[&str], usage: Option<i32>) -> SubComponent {
        SubComponent {
            flow_number: n,
            descriptions: descs.iter().map(|d| d.to_string()).collect(),
            flow_status: None,
            flow_usage: usage,
            mbr_ul: None,
            mbr_dl: None,
        }
    }

    fn audio() -> MediaComponent {
        MediaComponent {
            number: 1,
            media_type: Some(0),
            af_application_id: None,
            mbr_ul: Some(96_000),
            mbr_dl: Some(96_000),
            min_ul: None,
            min_dl: None,
            rr: Some(2_400),
            rs: Some(2_400),
            flow_status: None,
            sub_components: BTreeMap::from([
                (
                    1,
                    sub(
                        1,
                        &[
                            "permit out 17 from 172.20.166.84 to 10.45.0.2 20001",
                            "permit in 17 from 10.45.0.2 to 172.20.166.84 20360",
                        ],
                        None,
                    ),
                ),
                (
                    2,
                    sub(
                        2,
                        &[
                            "permit out 17 from 172.20.166.84 to 10.45.0.2 20002",
                            "permit in 17 from 10.45.0.2 to 172.20.166.84 20361",
                        ],
                        Some(1),
                    ),
                ),
            ]),
        }
    }

    fn session(c: Vec<MediaComponent>) -> RxSession {
        RxSession {
            session_id: "af;1".into(),
            af_host: "af".into(),
            af_realm: "r".into(),
            gx_session: Some("gx".into()),
            ue_ip: "10.45.0.2".parse().unwrap(),
            subscriber: "imsi:1".into(),
            af_application_id: None,
            af_charging_id: Some(hex(b"icid-1")),
            specific_actions: BTreeSet::new(),
            components: c.into_iter().map(|c| (c.number, c)).collect(),
            rules: BTreeMap::new(),
            version: 0,
        }
    }

    #[test]
    fn rx_filters_follow_the_restrictions_and_turn_into_gx_flows() {
        assert_eq!(
            check_rx_filter("permit in 17 from 10.0.0.1 to 10.0.0.2 5060"),
            Ok(FlowDirection::Uplink)
        );
        assert!(check_rx_filter("deny out ip from any to any").is_err());
        assert!(check_rx_filter("permit out ip from any to any established").is_err());
        assert!(check_rx_filter("allow all").is_err());
        let f = gx_flow("permit in 17 from 10.0.0.1 to 10.0.0.2 5060").unwrap();
        assert_eq!(
            f.description,
            "permit out 17 from 10.0.0.1 to 10.0.0.2 5060"
        );
        assert_eq!(f.direction, FlowDirection::Uplink);
        let f = gx_flow("permit out ip from any to 10.0.0.2").unwrap();
        assert_eq!(f.description, "permit out ip from any to 10.0.0.2");
        assert_eq!(f.direction, FlowDirection::Downlink);
    }

    #[test]
    fn audio_gets_qci_1_gbr_and_the_rtcp_allowance() {
        let cfg = RxSection::default();
        let s = session(vec![audio()]);
        let rules = derive_rules(&s, &cfg);
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(r.name, rule_name("af;1", 1));
        assert_eq!(
            r.flows.len(),
            4,
            "every Flow-Description of both sub-components"
        );
        let q = r.qos.unwrap();
        assert_eq!(q.qci, 1);
        assert_eq!((q.mbr_ul, q.mbr_dl), (Some(100_800), Some(100_800)));
        assert_eq!((q.gbr_ul, q.gbr_dl), (Some(100_800), Some(100_800)));
        assert_eq!(r.flow_status, Some(flow_status::ENABLED));
        assert_eq!(r.af_charging_id.as_deref(), Some("icid-1"));
        assert_eq!(r.af_flows[0].flow_numbers, [1, 2]);
        // Min-Requested-Bandwidth sets the GBR.
        let mut c = audio();
        c.min_ul = Some(88_000);
        c.min_dl = Some(88_000);
        let q = derive_rules(&session(vec![c]), &cfg)[0].qos.unwrap();
        assert_eq!((q.gbr_ul, q.mbr_ul), (Some(88_000), Some(100_800)));
    }

    #[test]
    fn media_types_map_to_qcis() {
        let cfg = RxSection::default();
        let mut c = audio();
        for (t, status, want) in [
            (Some(0), None, 1),
            (Some(1), None, 2),
            (Some(1), Some(flow_status::ENABLED_DOWNLINK), 4),
            (Some(2), None, cfg.qci.data),
            (Some(3), None, cfg.qci.application),
            (Some(4), None, cfg.qci.control),
            (Some(5), None, cfg.qci.text),
            (Some(-1), None, cfg.qci.other),
            (None, None, cfg.qci.other),
        ] {
            c.media_type = t;
            c.flow_status = status;
            assert_eq!(qci_for(&c, &cfg), want, "{t:?} {status:?}");
        }
        // A non-GBR QCI carries no GBR.
        c.media_type = Some(2);
        c.flow_status = None;
        let q = derive_rules(&session(vec![c]), &cfg)[0].qos.unwrap();
        assert_eq!((q.gbr_ul, q.gbr_dl), (None, None));
        assert_eq!(q.mbr_ul, Some(100_800));
        // Signalling flows only: QCI 5.
        let mut sig = audio();
        for s in sig.sub_components.values_mut() {
            s.flow_usage = Some(2);
        }
        assert_eq!(qci_for(&sig, &cfg), 5);
    }

    #[test]
    fn modifications_merge_and_remove_components() {
        let mut into = BTreeMap::from([(1, audio())]);
        let mut upd = audio();
        upd.mbr_ul = Some(50_000);
        upd.mbr_dl = None;
        upd.rr = None;
        upd.sub_components = BTreeMap::from([(
            2,
            SubComponent {
                flow_status: Some(flow_status::REMOVED),
                ..sub(2, &[], None)
            },
        )]);
        let mut video = audio();
        video.number = 2;
        video.media_type = Some(1);
        merge_components(&mut into, vec![upd, video]);
        let a = &into[&1];
        assert_eq!(
            (a.mbr_ul, a.mbr_dl, a.rr),
            (Some(50_000), Some(96_000), Some(2_400))
        );
        assert_eq!(a.sub_components.keys().collect::<Vec<_>>(), [&1]);
        assert_eq!(into.len(), 2);
        let mut gone = audio();
        gone.flow_status = Some(flow_status::REMOVED);
        merge_components(&mut into, vec![gone]);
        assert_eq!(into.keys().collect::<Vec<_>>(), [&2]);
    }

    #[test]
    fn subscriptions_ask_the_pcef_for_their_events() {
        let t = gx_triggers_for(&BTreeSet::from([1, 2, 4, 6, 8]));
        assert_eq!(t, BTreeSet::from([2, 5, 7, 22, 28]));
    }
}
