//! What the DRA reads from a request: what kind of request it is for the binding (starts a
//! session, continues one, ends one) and the binding keys (29.213 §7.3.2: UE identity from
//! Subscription-Id, UE address from Framed-IP-Address / Framed-IPv6-Prefix, APN from
//! Called-Station-Id).

use crate::binding::{Interface, Ipv6Prefix, UeKey};
use bytes::Bytes;
use diameter_codec::dict::{base, dcca, nasreq, roaming, s9};
use diameter_codec::{AvpRef, Message, OwnedAvp};
use std::net::Ipv4Addr;

/// Command codes (protocol.md §2).
pub mod cmd {
    /// RAR/RAA.
    pub const RE_AUTH: u32 = 258;
    /// AAR/AAA (Rx).
    pub const AA: u32 = 265;
    /// CCR/CCA (Gx, Gxx, S9).
    pub const CREDIT_CONTROL: u32 = 272;
    /// ASR/ASA.
    pub const ABORT_SESSION: u32 = 274;
    /// STR/STA.
    pub const SESSION_TERMINATION: u32 = 275;
}

/// What a client's request means for the binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// CCR-I (Gx, Gxx, S9) or an AAR (Rx; an AAR of a session not bound yet opens it).
    Establish,
    /// Another request of a session (CCR-U, an AAR modifying a bound session, …).
    Update,
    /// CCR-T or STR: the session ends. `also` lists client sessions ended with it
    /// (DRA-Client-Session-Id in an S9 termination).
    Terminate {
        /// Client Session-Ids carried with it.
        also: Vec<String>,
    },
    /// An S9 CCR-U whose Subsession-Enforcement-Info ends subsessions (TS 29.215
    /// Subsession-Operation TERMINATION): the S9 session goes on, the client sessions named
    /// by DRA-Client-Session-Id end.
    SubsessionEnd {
        /// Client Session-Ids carried with it.
        ended: Vec<String>,
    },
}

/// The Kind label.
pub fn kind_label(k: &Kind) -> &'static str {
    match k {
        Kind::Establish => "establish",
        Kind::Update => "update",
        Kind::Terminate { .. } => "terminate",
        Kind::SubsessionEnd { .. } => "subsession_end",
    }
}

/// CC-Request-Type values (RFC 4006 §8.3).
const INITIAL: i32 = 1;
const TERMINATION: i32 = 3;

/// DRA-Client-Session-Id values at command level and inside every
/// Subsession-Enforcement-Info (ours, dictionaries/roaming_vendor.toml).
fn client_session_ids(msg: &Message, only_terminating: bool) -> Vec<String> {
    let mut out: Vec<String> = msg
        .find_all(roaming::DRA_CLIENT_SESSION_ID.key())
        .filter_map(|a| std::str::from_utf8(a.data).ok().map(str::to_string))
        .collect();
    for sei in msg.find_all(s9::SUBSESSION_ENFORCEMENT_INFO.key()) {
        let op = sei
            .children()
            .flatten()
            .find(|c| c.key() == s9::SUBSESSION_OPERATION.key())
            .and_then(|c| c.data.try_into().ok().map(i32::from_be_bytes));
        // Subsession-Operation TERMINATION (0), TS 29.215 §5.3.4.
        if only_terminating && op != Some(0) {
            continue;
        }
        out.extend(
            sei.children()
                .flatten()
                .filter(|c| c.key() == roaming::DRA_CLIENT_SESSION_ID.key())
                .filter_map(|c| std::str::from_utf8(c.data).ok().map(str::to_string)),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// The kind of a client's request; `bound` says whether its Session-Id is bound already.
/// `None` for a request the DRA does not bind (an unknown command, or a CCR without a
/// valid CC-Request-Type, which the node's validation already refused).
pub fn kind_of(msg: &Message, iface: Interface, bound: bool) -> Option<Kind> {
    let code = msg.header().command_code;
    match code {
        cmd::CREDIT_CONTROL => {
            let t = msg.get(dcca::CC_REQUEST_TYPE).and_then(Result::ok)?.0;
            Some(match t {
                INITIAL => Kind::Establish,
                TERMINATION => Kind::Terminate {
                    also: client_session_ids(msg, false),
                },
                _ if iface == Interface::S9 => {
                    let ended = client_session_ids(msg, true);
                    if ended.is_empty() {
                        Kind::Update
                    } else {
                        Kind::SubsessionEnd { ended }
                    }
                }
                _ => Kind::Update,
            })
        }
        cmd::AA if !bound => Some(Kind::Establish),
        cmd::SESSION_TERMINATION => Some(Kind::Terminate { also: Vec::new() }),
        _ => Some(Kind::Update),
    }
}

fn child<'a>(g: &AvpRef<'a>, code: u32) -> Option<&'a [u8]> {
    g.children()
        .flatten()
        .find(|c| c.code == code && c.vendor == 0)
        .map(|c| c.data)
}

/// Reads the binding keys of a request. The UE identity is the first Subscription-Id of
/// type IMSI, then NAI, then E.164, SIP URI or private (as `imsi:…`, `nai:…`, `msisdn:…`,
/// `sip:…`, `private:…`).
pub fn ue_key(msg: &Message) -> UeKey {
    let mut ids: Vec<(u8, String)> = Vec::new();
    for s in msg.find_all(dcca::SUBSCRIPTION_ID.key()) {
        let (Some(t), Some(d)) = (
            child(&s, dcca::SUBSCRIPTION_ID_TYPE.code()),
            child(&s, dcca::SUBSCRIPTION_ID_DATA.code()),
        ) else {
            continue;
        };
        let (Ok(t), Ok(d)) = (<[u8; 4]>::try_from(t), std::str::from_utf8(d)) else {
            continue;
        };
        if d.is_empty() {
            continue;
        }
        // Subscription-Id-Type (RFC 4006 §8.47): E164 0, IMSI 1, SIP_URI 2, NAI 3, PRIVATE 4.
        let (rank, prefix) = match i32::from_be_bytes(t) {
            1 => (0, "imsi"),
            3 => (1, "nai"),
            0 => (2, "msisdn"),
            2 => (3, "sip"),
            4 => (4, "private"),
            _ => continue,
        };
        ids.push((rank, format!("{prefix}:{d}")));
    }
    ids.sort_by_key(|(r, _)| *r);
    let top = |code: u32| {
        msg.find(diameter_codec::AvpKey::new(code, 0))
            .map(|a| a.data)
    };
    // An S9 CCR carries the UE's address and APN inside Subsession-Enforcement-Info (TS
    // 29.215 §5.3.2), not at command level: the first subsession with an address names
    // the binding, so that an Rx session the V-PCRF relays home finds it by the UE address
    // (29.213 §7.3.2).
    let subsession = msg
        .find_all(s9::SUBSESSION_ENFORCEMENT_INFO.key())
        .find(|g| {
            child(g, nasreq::FRAMED_IP_ADDRESS.code()).is_some()
                || child(g, nasreq::FRAMED_IPV6_PREFIX.code()).is_some()
        });
    let read = |code: u32| top(code).or_else(|| subsession.as_ref().and_then(|g| child(g, code)));
    let ipv4 = read(nasreq::FRAMED_IP_ADDRESS.code())
        .and_then(|d| <[u8; 4]>::try_from(d).ok())
        .map(Ipv4Addr::from);
    let ipv6 = read(nasreq::FRAMED_IPV6_PREFIX.code()).and_then(Ipv6Prefix::from_avp);
    let apn = read(nasreq::CALLED_STATION_ID.code())
        .and_then(|d| std::str::from_utf8(d).ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    UeKey {
        ue: ids.into_iter().next().map(|(_, s)| s),
        ipv4,
        ipv6,
        apn,
    }
}

/// RFC 6733 §7.5: a missing AVP is reported in Failed-AVP with its code and a payload of
/// the minimum size: Subscription-Id {Subscription-Id-Type IMSI, Subscription-Id-Data ""}.
pub fn missing_subscription_id() -> OwnedAvp {
    base::FAILED_AVP.with(vec![dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(String::new()),
    ])])
}

/// Failed-AVP for a missing UE address: Framed-IP-Address of zeros.
pub fn missing_framed_ip() -> OwnedAvp {
    base::FAILED_AVP.with(vec![
        nasreq::FRAMED_IP_ADDRESS.with(Bytes::from_static(&[0, 0, 0, 0])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use diameter_codec::MessageBuilder;

    fn ccr(app: u32, t: i32) -> MessageBuilder {
        let mut b = MessageBuilder::request(272, app, true);
        b.push(base::SESSION_ID.with("s9;1"));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(t)));
        b
    }

    #[test]
    fn keys_prefer_imsi_and_read_addresses() {
        let mut b = ccr(Interface::GX_APP, 1);
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_NAI),
            dcca::SUBSCRIPTION_ID_DATA.with("u@h".to_string()),
        ]));
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
            dcca::SUBSCRIPTION_ID_DATA.with("001".to_string()),
        ]));
        b.push(nasreq::FRAMED_IP_ADDRESS.with(Bytes::from_static(&[10, 1, 2, 3])));
        b.push(
            nasreq::FRAMED_IPV6_PREFIX
                .with(Bytes::from_static(&[0, 64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 7])),
        );
        b.push(nasreq::CALLED_STATION_ID.with("internet"));
        let m = b.build().unwrap();
        let k = ue_key(&m);
        assert_eq!(k.ue.as_deref(), Some("imsi:001"));
        assert_eq!(k.ipv4, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(k.ipv6.unwrap().len, 64);
        assert_eq!(k.apn.as_deref(), Some("internet"));
        assert_eq!(kind_of(&m, Interface::Gx, false), Some(Kind::Establish));
    }

    #[test]
    fn s9_keys_come_from_the_first_subsession_with_an_address() {
        let mut b = ccr(Interface::S9_APP, 1);
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
            dcca::SUBSCRIPTION_ID_DATA.with("001".to_string()),
        ]));
        b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![s9::SUBSESSION_ID.with(1u32)]));
        b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
            s9::SUBSESSION_ID.with(2u32),
            nasreq::FRAMED_IP_ADDRESS.with(Bytes::from_static(&[10, 4, 0, 2])),
            nasreq::CALLED_STATION_ID.with("ims"),
        ]));
        b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
            s9::SUBSESSION_ID.with(3u32),
            nasreq::FRAMED_IP_ADDRESS.with(Bytes::from_static(&[10, 4, 0, 3])),
        ]));
        let k = ue_key(&b.build().unwrap());
        assert_eq!(k.ue.as_deref(), Some("imsi:001"));
        assert_eq!(k.ipv4, Some(Ipv4Addr::new(10, 4, 0, 2)));
        assert_eq!(k.apn.as_deref(), Some("ims"));
        assert!(k.ipv6.is_none());
    }

    #[test]
    fn s9_terminations_carry_the_client_session_ids() {
        let mut b = ccr(Interface::S9_APP, 2);
        b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
            s9::SUBSESSION_ID.with(1u32),
            s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation(0)),
            roaming::DRA_CLIENT_SESSION_ID.with("gx;1".to_string()),
        ]));
        b.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
            s9::SUBSESSION_ID.with(2u32),
            s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation(2)),
            roaming::DRA_CLIENT_SESSION_ID.with("gx;2".to_string()),
        ]));
        let m = b.build().unwrap();
        assert_eq!(
            kind_of(&m, Interface::S9, true),
            Some(Kind::SubsessionEnd {
                ended: vec!["gx;1".into()]
            })
        );
        let mut t = ccr(Interface::S9_APP, 3);
        t.push(roaming::DRA_CLIENT_SESSION_ID.with("gx;3".to_string()));
        let m = t.build().unwrap();
        assert_eq!(
            kind_of(&m, Interface::S9, true),
            Some(Kind::Terminate {
                also: vec!["gx;3".into()]
            })
        );
        let mut a = MessageBuilder::request(265, Interface::RX_APP, true);
        a.push(base::SESSION_ID.with("rx;1"));
        let m = a.build().unwrap();
        assert_eq!(kind_of(&m, Interface::Rx, false), Some(Kind::Establish));
        assert_eq!(kind_of(&m, Interface::Rx, true), Some(Kind::Update));
    }
}
