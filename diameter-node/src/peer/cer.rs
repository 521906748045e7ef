//! Capabilities exchange (RFC 6733 §5.3): checking a peer's CER or CEA, negotiating the
//! common applications, the election rule (§5.6.4), and screening a new connection's first
//! message (§5.6.1).

use super::codes::*;
use super::config::{
    AppKind, Application, InbandSecurity, LocalConfig, RELAY_APPLICATION_ID, UnknownPeerPolicy,
};
use super::messages::{self, find_str, find_u32, u32_of};
use bytes::Bytes;
use diameter_codec::types::Address;
use diameter_codec::{
    AvpFlags, AvpKey, AvpValue, Dictionary, ErrorReport, Message, OwnedAvp, ResultCode,
    ValidateOptions, Validator,
};
use std::cmp::Ordering;
use std::net::IpAddr;

/// The applications both sides support, the result of capabilities exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegotiatedApps {
    /// Common Auth-Application-Ids (top level or inside Vendor-Specific-Application-Id).
    pub auth: Vec<u32>,
    /// Common Acct-Application-Ids.
    pub acct: Vec<u32>,
    /// The peer advertised the Relay application: it takes any application (RFC 6733 §2.4).
    pub relay: bool,
}

impl NegotiatedApps {
    /// Nothing in common: RFC 6733 §5.3 answers 5010 DIAMETER_NO_COMMON_APPLICATION.
    pub fn is_empty(&self) -> bool {
        !self.relay && self.auth.is_empty() && self.acct.is_empty()
    }

    /// Whether messages of application `id` may be sent to this peer.
    pub fn supports(&self, id: u32) -> bool {
        self.relay || self.auth.contains(&id) || self.acct.contains(&id)
    }
}

/// What the peer told us in its CER or CEA, and what we negotiated with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Origin-Host, as the peer spelled it.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Host-IP-Address values (IPv4/IPv6 only; other families are skipped).
    pub host_ip_addresses: Vec<IpAddr>,
    /// Vendor-Id.
    pub vendor_id: u32,
    /// Product-Name.
    pub product_name: String,
    /// Origin-State-Id, when sent.
    pub origin_state_id: Option<u32>,
    /// Firmware-Revision, when sent.
    pub firmware_revision: Option<u32>,
    /// Supported-Vendor-Id values.
    pub supported_vendor_ids: Vec<u32>,
    /// The applications the peer advertised.
    pub applications: Vec<Application>,
    /// Inband-Security-Id values the peer advertised.
    pub inband_security: Vec<u32>,
    /// The common applications.
    pub negotiated: NegotiatedApps,
}

/// RFC 6733 §5.6.4: "the higher Origin-Host wins". Origin-Hosts are DiameterIdentities, which
/// compare ignoring ASCII case (bad-inputs 32), so "PCRF.example" and "pcrf.example" are
/// equal at first; the tie is then broken by comparing the octets as received, so the side
/// whose identity has the greater bytes ("pcrf.example", since b'p' > b'P') wins. Both sides
/// compute the same answer because the rule is antisymmetric; only byte-identical identities
/// (a node talking to itself) make nobody win, and those are refused before the election.
pub fn wins_election(local: &str, remote: &str) -> bool {
    match cmp_ignore_ascii_case(local, remote) {
        Ordering::Equal => local.as_bytes() > remote.as_bytes(),
        o => o == Ordering::Greater,
    }
}

/// Compares two identities ignoring ASCII case, byte by byte.
pub fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// What the node should do with the first message of a new inbound connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstMessage {
    /// A CER from this Origin-Host: find the [`Peer`](super::Peer) (ignoring ASCII case) and
    /// call [`Peer::handle_incoming`](super::Peer::handle_incoming); if there is none, use
    /// [`unknown_peer_answer`].
    Cer {
        /// Origin-Host of the CER.
        origin_host: String,
    },
    /// Send this CEA, then close (the CER is broken in a way that leaves no peer to find).
    Answer(Bytes),
    /// Close without an answer.
    Close,
}

/// Screens the first message of a new inbound connection.
///
/// RFC 6733 §5.6.1: a connection is not associated with a peer until a CER arrives, and "the
/// first message on a new connection" that is not a CER gets the connection closed without an
/// answer (bad-inputs 29). A CER without a usable Origin-Host gets its 5005 (or the first
/// grammar error) here, since no peer can be found for it.
pub fn screen_first_message(local: &LocalConfig, msg: &Message) -> FirstMessage {
    if !messages::is(msg, CMD_CER, true) {
        return FirstMessage::Close;
    }
    let hosts = msg.find_all(AvpKey::new(ORIGIN_HOST, 0)).count();
    match find_str(msg, ORIGIN_HOST) {
        Some(h) if hosts == 1 && !h.is_empty() => FirstMessage::Cer {
            origin_host: h.to_string(),
        },
        _ => {
            let report = validator().validate(msg).err().unwrap_or_else(|| {
                let mut r = ErrorReport::new(ResultCode::DIAMETER_INVALID_AVP_VALUE);
                r.message = Some("unusable Origin-Host".into());
                r
            });
            FirstMessage::Answer(messages::cea_error(local, msg, &report))
        }
    }
}

/// The answer to a CER from an Origin-Host we have no peer for, per
/// [`LocalConfig::unknown_peer`]: `Some(CEA 3010)` to send before closing (RFC 6733 §7.1.3
/// DIAMETER_UNKNOWN_PEER), or `None` to close silently. With
/// [`UnknownPeerPolicy::Accept`] the node creates a peer instead and does not call this.
pub fn unknown_peer_answer(local: &LocalConfig, cer: &Message) -> Option<Bytes> {
    match local.unknown_peer {
        UnknownPeerPolicy::Close => None,
        UnknownPeerPolicy::Reject | UnknownPeerPolicy::Accept => {
            let mut r = ErrorReport::new(ResultCode::DIAMETER_UNKNOWN_PEER);
            r.message = Some("unknown peer".into());
            Some(messages::cea_error(local, cer, &r))
        }
    }
}

fn validator() -> Validator<'static> {
    Validator::new(Dictionary::embedded(), ValidateOptions::default())
}

/// Reads the capabilities AVPs of a CER or CEA that passed grammar validation.
fn read_capabilities(msg: &Message) -> PeerInfo {
    let mut info = PeerInfo {
        origin_host: find_str(msg, ORIGIN_HOST).unwrap_or_default().to_string(),
        origin_realm: find_str(msg, ORIGIN_REALM).unwrap_or_default().to_string(),
        host_ip_addresses: Vec::new(),
        vendor_id: find_u32(msg, VENDOR_ID).unwrap_or(0),
        product_name: find_str(msg, PRODUCT_NAME).unwrap_or_default().to_string(),
        origin_state_id: find_u32(msg, ORIGIN_STATE_ID),
        firmware_revision: find_u32(msg, FIRMWARE_REVISION),
        supported_vendor_ids: Vec::new(),
        applications: Vec::new(),
        inband_security: Vec::new(),
        negotiated: NegotiatedApps::default(),
    };
    for avp in msg.avps().flatten() {
        if avp.vendor != 0 {
            continue;
        }
        match avp.code {
            HOST_IP_ADDRESS => {
                if let Some(ip) = Address::parse(avp.data).ok().and_then(|a| a.ip()) {
                    info.host_ip_addresses.push(ip);
                }
            }
            SUPPORTED_VENDOR_ID => info.supported_vendor_ids.extend(u32_of(&avp)),
            INBAND_SECURITY_ID => info.inband_security.extend(u32_of(&avp)),
            AUTH_APPLICATION_ID => info
                .applications
                .extend(u32_of(&avp).map(Application::auth)),
            ACCT_APPLICATION_ID => info
                .applications
                .extend(u32_of(&avp).map(Application::acct)),
            VENDOR_SPECIFIC_APPLICATION_ID => {
                // RFC 6733 §6.11: the Vendor-Id inside only says who defined the application;
                // the match is on the application id alone (bad-inputs 30).
                let mut vendor = 0;
                let mut app = None;
                for child in avp.children().flatten().filter(|c| c.vendor == 0) {
                    match (child.code, u32_of(&child)) {
                        (VENDOR_ID, Some(v)) => vendor = v,
                        (AUTH_APPLICATION_ID, Some(id)) => app = Some(Application::auth(id)),
                        (ACCT_APPLICATION_ID, Some(id)) => app = Some(Application::acct(id)),
                        _ => {}
                    }
                }
                if let Some(mut a) = app {
                    a.vendor = Some(vendor);
                    info.applications.push(a);
                }
            }
            _ => {}
        }
    }
    info
}

/// The common applications (RFC 6733 §5.3: a peer "MUST" advertise the applications it
/// supports; the Relay application id matches everything, §2.4). Auth and Acct ids match
/// within their kind; vendors are ignored; id 0 (common messages) is implicit and skipped.
pub fn negotiate(local: &[Application], remote: &[Application]) -> NegotiatedApps {
    let is_relay = |a: &Application| a.id == RELAY_APPLICATION_ID;
    let local_relay = local.iter().any(is_relay);
    let remote_relay = remote.iter().any(is_relay);
    let mut out = NegotiatedApps {
        relay: remote_relay,
        ..Default::default()
    };
    let usable = |a: &&Application| a.id != 0 && !is_relay(a);
    // With a relay on one side, the other side's list is the common set.
    let (base, other, wildcard): (&[Application], &[Application], bool) =
        match (local_relay, remote_relay) {
            (true, true) => return out,
            (true, false) => (remote, local, true),
            (false, true) => (local, remote, true),
            (false, false) => (local, remote, false),
        };
    for a in base.iter().filter(usable) {
        if wildcard || other.iter().any(|b| b.kind == a.kind && b.id == a.id) {
            let list = match a.kind {
                AppKind::Auth => &mut out.auth,
                AppKind::Acct => &mut out.acct,
            };
            if !list.contains(&a.id) {
                list.push(a.id);
            }
        }
    }
    out
}

/// Inband-Security-Id TLS (RFC 6733 §6.10).
const INBAND_TLS: u32 = 1;

/// RFC 6733 §6.10: if no Inband-Security-Id is present, NO_INBAND_SECURITY is implied. The
/// common security mechanism must exist, else 5017 DIAMETER_NO_COMMON_SECURITY (§7.1.5).
/// Only NO_INBAND_SECURITY can be common: TLS is never agreed to (no in-band upgrade).
fn security_ok(ours: InbandSecurity, theirs: &[u32]) -> bool {
    let wanted = ours.accepted();
    if theirs.is_empty() {
        wanted == 0
    } else {
        theirs.contains(&wanted)
    }
}

fn report(rc: ResultCode, failed: Option<OwnedAvp>, why: &str) -> ErrorReport {
    ErrorReport {
        result_code: rc,
        failed_avp: failed,
        message: Some(why.into()),
        reporting_host: None,
    }
}

/// Process-CER (RFC 6733 §5.6): grammar, security, applications. The error is the CEA's
/// report; the caller sends it and closes.
pub(crate) fn process_cer(local: &LocalConfig, cer: &Message) -> Result<PeerInfo, ErrorReport> {
    // RFC 6733 §5.3.1 grammar: missing Origin-Host, Origin-Realm, Host-IP-Address, Vendor-Id
    // or Product-Name → 5005 with the missing AVP in Failed-AVP (§7.1.5); a second
    // Origin-Host → 5009 DIAMETER_AVP_OCCURS_TOO_MANY_TIMES; P bit set → 3008 (§5.3.1 "P" clear).
    validator().validate(cer)?;
    let mut info = read_capabilities(cer);
    if info.host_ip_addresses.is_empty() {
        // Only non-IP families were given; RFC 6733 §5.3.5 needs an address we can use.
        let failed = cer
            .find(AvpKey::new(HOST_IP_ADDRESS, 0))
            .map(|a| OwnedAvp::from_ref(&a));
        return Err(report(
            ResultCode::DIAMETER_INVALID_AVP_VALUE,
            failed,
            "no IP address in Host-IP-Address",
        ));
    }
    if info.origin_host == local.origin_host {
        // Our own identity: a connection to ourselves or a duplicate node; no election can
        // resolve it.
        let failed = OwnedAvp::new(
            ORIGIN_HOST,
            0,
            AvpFlags::MANDATORY,
            AvpValue::Bytes(Bytes::from(info.origin_host)),
        );
        return Err(report(
            ResultCode::DIAMETER_UNKNOWN_PEER,
            Some(failed),
            "CER carries our own Origin-Host",
        ));
    }
    // RFC 6733 §5.3 / §7.1.5 5017: "no common security mechanism". A peer offering only
    // in-band TLS is told why: we never agree to it (see `InbandSecurity`).
    if !security_ok(local.inband_security, &info.inband_security) {
        let failed = cer
            .find(AvpKey::new(INBAND_SECURITY_ID, 0))
            .map(|a| OwnedAvp::from_ref(&a));
        let why = if info.inband_security.contains(&INBAND_TLS) {
            "in-band TLS (Inband-Security-Id 1) is not supported; use TLS at connection set-up"
        } else {
            "no common security mechanism"
        };
        return Err(report(ResultCode::DIAMETER_NO_COMMON_SECURITY, failed, why));
    }
    info.negotiated = negotiate(&local.applications, &info.applications);
    // RFC 6733 §5.3: "If the receiver of a CER does not have any applications in common with
    // the sender, it MUST return a CEA with the Result-Code AVP set to
    // DIAMETER_NO_COMMON_APPLICATION and SHOULD disconnect the transport layer connection."
    if info.negotiated.is_empty() {
        return Err(report(
            ResultCode::DIAMETER_NO_COMMON_APPLICATION,
            None,
            "no common application",
        ));
    }
    Ok(info)
}

/// Why a CEA did not open the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CeaFailure {
    /// The peer refused us with this Result-Code.
    Refused(ResultCode),
    /// The CEA succeeded but we cannot use it (bad grammar, wrong peer, nothing in common):
    /// the Result-Code we would have answered with.
    Unusable(ResultCode),
}

/// Process-CEA (RFC 6733 §5.6).
pub(crate) fn process_cea(
    local: &LocalConfig,
    expected: Option<&str>,
    cea: &Message,
) -> Result<PeerInfo, CeaFailure> {
    let rc = messages::result_code(cea).unwrap_or(ResultCode::DIAMETER_MISSING_AVP);
    // RFC 6733 §7.1.2: only 2xxx is success; E-bit answers are errors whatever they carry.
    if cea.header().flags.is_error() || !(2000..3000).contains(&rc.0) {
        return Err(CeaFailure::Refused(rc));
    }
    if let Err(r) = validator().validate(cea) {
        return Err(CeaFailure::Unusable(r.result_code));
    }
    let mut info = read_capabilities(cea);
    // bad-inputs 40: the host that answers must be the one we meant to reach.
    if expected.is_some_and(|h| !h.eq_ignore_ascii_case(&info.origin_host)) {
        return Err(CeaFailure::Unusable(ResultCode::DIAMETER_UNKNOWN_PEER));
    }
    if !security_ok(local.inband_security, &info.inband_security) {
        return Err(CeaFailure::Unusable(
            ResultCode::DIAMETER_NO_COMMON_SECURITY,
        ));
    }
    info.negotiated = negotiate(&local.applications, &info.applications);
    if info.negotiated.is_empty() {
        return Err(CeaFailure::Unusable(
            ResultCode::DIAMETER_NO_COMMON_APPLICATION,
        ));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_is_antisymmetric_and_case_insensitive() {
        assert!(wins_election("b.example", "a.example"));
        assert!(!wins_election("a.example", "b.example"));
        assert!(wins_election("B.example", "a.example"));
        assert!(!wins_election("A.example", "b.example"));
        // Equal ignoring case: octets decide, identically on both sides.
        assert!(wins_election("pcrf.example", "PCRF.example"));
        assert!(!wins_election("PCRF.example", "pcrf.example"));
        assert!(!wins_election("x", "x"));
    }

    #[test]
    fn negotiation_ignores_vendor_and_honours_relay() {
        let gx = 16_777_238;
        let local = [Application::vendor_auth(10_415, gx), Application::acct(3)];
        let remote = [Application::vendor_auth(5535, gx)];
        let n = negotiate(&local, &remote);
        assert_eq!(n.auth, vec![gx]);
        assert!(n.acct.is_empty());
        // Kind matters: an Acct id does not match an Auth id.
        assert!(negotiate(&local, &[Application::auth(3)]).is_empty());
        // Relay on the peer: our list is the common set and anything may be sent.
        let n = negotiate(&local, &[Application::relay()]);
        assert!(n.relay && n.supports(gx) && n.supports(4));
        assert_eq!(n.acct, vec![3]);
        // Relay locally: the peer's list is the common set.
        let n = negotiate(&[Application::relay()], &remote);
        assert!(!n.relay);
        assert_eq!(n.auth, vec![gx]);
        assert!(negotiate(&local, &[]).is_empty());
    }
}
