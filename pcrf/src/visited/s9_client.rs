//! S9 as the V-PCRF speaks it (TS 29.215, client side): the CCRs that open, modify and end
//! a UE's S9 session and its subsessions, built from the visited PCEF's Gx CCR; the
//! Subsession-Decision-Info of an answer read back; the RAA to the H-PCRF's RAR. The home
//! side of the same messages is [`crate::s9`] and `server/s9_side.rs`.

use crate::config::ChargingSection;
use crate::gx::{self, RequestType, child};
use crate::s9;
use crate::spr::SubscriberKey;
use diameter_codec::dict::{base, dcca, gi, gx as gxd, nasreq, roaming, rx, s9 as s9d, ts29229};
use diameter_codec::{AvpKey, AvpRef, LocalIdentity, Message, MessageBuilder, OwnedAvp};

/// The Gx CCR AVPs that describe the IP-CAN session and travel to home inside the
/// subsession's Subsession-Enforcement-Info (TS 29.215 §5.3.2 lists them as members); a
/// BBERF's Gxx CCR shares most of them and adds its QoS-Rule-Reports.
fn forwarded() -> [AvpKey; 18] {
    [
        gxd::AN_GW_ADDRESS.key(),
        gxd::QOS_INFORMATION.key(),
        nasreq::FRAMED_IP_ADDRESS.key(),
        nasreq::FRAMED_IPV6_PREFIX.key(),
        nasreq::CALLED_STATION_ID.key(),
        gxd::ONLINE.key(),
        gxd::OFFLINE.key(),
        gxd::CHARGING_RULE_REPORT.key(),
        gxd::QOS_RULE_REPORT.key(),
        gxd::IP_CAN_TYPE.key(),
        gxd::RAT_TYPE.key(),
        gi::TGPP_SGSN_MCC_MNC.key(),
        gi::TGPP_USER_LOCATION_INFO.key(),
        gxd::USER_CSG_INFORMATION.key(),
        gxd::DEFAULT_EPS_BEARER_QOS.key(),
        gxd::EVENT_TRIGGER.key(),
        rx::ACCESS_NETWORK_CHARGING_ADDRESS.key(),
        gxd::ACCESS_NETWORK_CHARGING_IDENTIFIER_GX.key(),
    ]
}

/// The Subsession-Decision-Info members that are Gx decisions, relayed to the PCEF after
/// local policy (TS 29.215 §5.3.1 against the Gx CCA/RAR of TS 29.212 §5.6.3–4). The rest
/// (Subsession-Id, results, QoS rules for Gxx, AN-GW-Address) is S9's own.
pub fn is_gx_decision(a: &AvpRef<'_>) -> bool {
    [
        gxd::CHARGING_RULE_REMOVE.key(),
        gxd::CHARGING_RULE_INSTALL.key(),
        gxd::EVENT_REPORT_INDICATION.key(),
        gxd::DEFAULT_EPS_BEARER_QOS.key(),
        gxd::USAGE_MONITORING_INFORMATION.key(),
        gxd::SESSION_RELEASE_CAUSE.key(),
        gxd::BEARER_CONTROL_MODE.key(),
        gxd::EVENT_TRIGGER.key(),
        gxd::REVALIDATION_TIME.key(),
        gxd::ONLINE.key(),
        gxd::OFFLINE.key(),
        gxd::QOS_INFORMATION.key(),
    ]
    .contains(&a.key())
}

/// A Subsession-Enforcement-Info (TS 29.215 §5.3.2) for subsession `id` of Gx session
/// `client_session`: the operation, what the PCEF's CCR said of the IP-CAN session, our
/// DRA-Client-Session-Id naming the Gx session (document 002: the DRAs and the H-PCRF
/// learn the client Session-Id ↔ S9 Session-Id mapping), and `extra`.
pub fn enforcement(
    id: u32,
    operation: Option<s9d::SubsessionOperation>,
    gx_ccr: Option<&Message>,
    client_session: &str,
    extra: Vec<OwnedAvp>,
) -> OwnedAvp {
    let mut v = vec![s9d::SUBSESSION_ID.with(id)];
    if let Some(op) = operation {
        v.push(s9d::SUBSESSION_OPERATION.with(op));
    }
    if let Some(m) = gx_ccr {
        let keys = forwarded();
        v.extend(
            m.avps()
                .flatten()
                .filter(|a| keys.contains(&a.key()))
                .map(|a| OwnedAvp::verbatim(m, &a)),
        );
    }
    v.extend(extra);
    v.push(roaming::DRA_CLIENT_SESSION_ID.with(client_session.to_string()));
    s9d::SUBSESSION_ENFORCEMENT_INFO.with(v)
}

/// Where an S9 request goes and what it says of itself.
pub struct Target<'a> {
    /// The S9 Session-Id.
    pub session_id: &'a str,
    /// Destination-Realm: the home network's.
    pub realm: &'a str,
    /// Destination-Host: the H-PCRF, when known.
    pub host: Option<&'a str>,
}

/// An S9 CCR (TS 29.215 §5.6.2) with one Subsession-Enforcement-Info; the CCR-I names the
/// subscriber (Subscription-Id), a CCR-T carries Termination-Cause. `client_sessions` go
/// at command level too (DRA-Client-Session-Id), for the home DRA.
pub fn ccr(
    me: &LocalIdentity,
    to: &Target<'_>,
    kind: RequestType,
    number: u32,
    subscriber: Option<&SubscriberKey>,
    subsession: OwnedAvp,
    client_sessions: &[String],
) -> MessageBuilder {
    let mut b = MessageBuilder::request(s9d::CMD_CREDIT_CONTROL, s9::APPLICATION_ID, true);
    b.push(base::SESSION_ID.with(to.session_id.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(s9::APPLICATION_ID));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(to.realm.to_string()));
    let (code, cause) = match kind {
        RequestType::Initial => (dcca::CcRequestType::INITIAL_REQUEST, None),
        RequestType::Termination => (
            dcca::CcRequestType::TERMINATION_REQUEST,
            Some(base::TerminationCause::DIAMETER_LOGOUT),
        ),
        _ => (dcca::CcRequestType::UPDATE_REQUEST, None),
    };
    b.push(dcca::CC_REQUEST_TYPE.with(code));
    b.push(dcca::CC_REQUEST_NUMBER.with(number));
    if let Some(h) = to.host {
        b.push(base::DESTINATION_HOST.with(h.to_string()));
    }
    if let Some(s) = subscriber {
        let (t, d) = match s {
            SubscriberKey::Imsi(d) => (dcca::SubscriptionIdType::END_USER_IMSI, d),
            SubscriberKey::Msisdn(d) => (dcca::SubscriptionIdType::END_USER_E164, d),
            SubscriberKey::Nai(d) => (dcca::SubscriptionIdType::END_USER_NAI, d),
        };
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(t),
            dcca::SUBSCRIPTION_ID_DATA.with(d.clone()),
        ]));
    }
    b.push(subsession);
    if let Some(c) = cause {
        b.push(base::TERMINATION_CAUSE.with(c));
    }
    for c in client_sessions {
        b.push(roaming::DRA_CLIENT_SESSION_ID.with(c.clone()));
    }
    b
}

/// A result as received: the code and whether it was an Experimental-Result-Code (3GPP's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The code.
    pub code: u32,
    /// Experimental-Result(-Code) rather than Result-Code.
    pub experimental: bool,
}

impl Outcome {
    /// DIAMETER_SUCCESS.
    pub const SUCCESS: Self = Self::base(2001);

    /// A Result-Code.
    pub const fn base(code: u32) -> Self {
        Self {
            code,
            experimental: false,
        }
    }

    /// An Experimental-Result-Code of 3GPP's.
    pub const fn tgpp(code: u32) -> Self {
        Self {
            code,
            experimental: true,
        }
    }

    /// The AVP carrying it in a Gx answer (Result-Code, or Experimental-Result with
    /// Vendor-Id 10415).
    pub fn gx_avp(self) -> OwnedAvp {
        if self.experimental {
            gx::experimental_result(self.code)
        } else {
            base::RESULT_CODE.with(self.code)
        }
    }

    /// The AVP carrying it inside a Subsession-Enforcement-Info (TS 29.215 §5.3.2:
    /// Result-Code or Experimental-Result-Code, not grouped).
    pub fn s9_member(self) -> OwnedAvp {
        if self.experimental {
            base::EXPERIMENTAL_RESULT_CODE.with(self.code)
        } else {
            base::RESULT_CODE.with(self.code)
        }
    }
}

/// The command-level result of an answer.
pub fn outcome(m: &Message) -> Option<Outcome> {
    if let Some(code) = m.get(base::RESULT_CODE).and_then(Result::ok) {
        return Some(Outcome::base(code));
    }
    m.find(base::EXPERIMENTAL_RESULT.key())
        .and_then(|e| child(&e, base::EXPERIMENTAL_RESULT_CODE))
        .map(Outcome::tgpp)
}

/// The result inside a Subsession-Decision-Info, when it has one (TS 29.215 §5.3.1).
pub fn subsession_outcome(sdi: &AvpRef<'_>) -> Option<Outcome> {
    child(sdi, base::RESULT_CODE)
        .map(Outcome::base)
        .or_else(|| child(sdi, base::EXPERIMENTAL_RESULT_CODE).map(Outcome::tgpp))
}

/// The Subsession-Decision-Info for subsession `id`.
pub fn decision_of(m: &Message, id: u32) -> Option<AvpRef<'_>> {
    m.find_all(s9d::SUBSESSION_DECISION_INFO.key())
        .find(|d| child(d, s9d::SUBSESSION_ID) == Some(id))
}

/// Every Subsession-Decision-Info of a message (an S9 RAR's), with its Subsession-Id.
pub fn decisions(m: &Message) -> Vec<(Option<u32>, AvpRef<'_>)> {
    m.find_all(s9d::SUBSESSION_DECISION_INFO.key())
        .map(|d| (child(&d, s9d::SUBSESSION_ID), d))
        .collect()
}

/// The home OCS to hand to the PCEF (our Home-OCS-Identity, primary and secondary): the
/// one in the Subsession-Decision-Info, else the one the CCA's Charging-Information
/// names (TS 29.229 §6.3.19 event charging function names), else none.
pub fn home_ocs(answer: &Message, sdi: Option<&AvpRef<'_>>) -> Option<OwnedAvp> {
    if let Some(h) = sdi.and_then(|d| {
        d.children()
            .flatten()
            .find(|c| c.key() == roaming::HOME_OCS_IDENTITY.key())
    }) {
        return Some(OwnedAvp::from_ref(&h));
    }
    let ci = answer.find(ts29229::CHARGING_INFORMATION.key())?;
    let uri = |key: AvpKey| {
        ci.children()
            .flatten()
            .find(|c| c.key() == key)
            .map(|c| String::from_utf8_lossy(c.data).into_owned())
    };
    s9::home_ocs_identity(&ChargingSection {
        primary_ocs: uri(ts29229::PRIMARY_EVENT_CHARGING_FUNCTION_NAME.key()),
        secondary_ocs: uri(ts29229::SECONDARY_EVENT_CHARGING_FUNCTION_NAME.key()),
        ..ChargingSection::default()
    })
}

/// The Gx Charging-Information (TS 29.229 §6.3.19) for the PCEF: with a V-OCS chosen, it
/// is the primary event charging function (the OCS the PCEF talks to, document 001 S310)
/// and the home's charging collection functions are kept; without one, the home's
/// Charging-Information as received.
pub fn charging_information(answer: &Message, vocs: Option<&str>) -> Option<OwnedAvp> {
    let home = answer.find(ts29229::CHARGING_INFORMATION.key());
    let Some(v) = vocs else {
        return home.map(|h| OwnedAvp::from_ref(&h));
    };
    let mut members = vec![ts29229::PRIMARY_EVENT_CHARGING_FUNCTION_NAME.with(v.to_string())];
    if let Some(h) = home {
        members.extend(
            h.children()
                .flatten()
                .filter(|c| {
                    c.key() == ts29229::PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME.key()
                        || c.key() == ts29229::SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME.key()
                })
                .map(|c| OwnedAvp::from_ref(&c)),
        );
    }
    Some(ts29229::CHARGING_INFORMATION.with(members))
}

/// A Charging-Rule-Report (TS 29.212 §5.3.18) of rules local policy refused: INACTIVE,
/// with the configured Rule-Failure-Code.
pub fn refused_report(names: &[String], failure_code: i32) -> OwnedAvp {
    let mut v: Vec<OwnedAvp> = names
        .iter()
        .map(|n| gxd::CHARGING_RULE_NAME.with(bytes::Bytes::from(n.clone())))
        .collect();
    v.push(gxd::PCC_RULE_STATUS.with(gxd::PccRuleStatus(1)));
    v.push(gxd::RULE_FAILURE_CODE.with(gxd::RuleFailureCode(failure_code)));
    gxd::CHARGING_RULE_REPORT.with(v)
}

/// The Subsession-Enforcement-Info of an S9 RAA for subsession `id` (TS 29.215 §5.6.5):
/// its result when not plain success, and its rule reports.
pub fn raa_enforcement(id: u32, result: Option<Outcome>, reports: Vec<OwnedAvp>) -> OwnedAvp {
    let mut v = vec![s9d::SUBSESSION_ID.with(id)];
    if let Some(r) = result {
        v.push(r.s9_member());
    }
    v.extend(reports);
    s9d::SUBSESSION_ENFORCEMENT_INFO.with(v)
}
