//! Rx from a visited AF (document 002 embodiments 2, 5, 8; TS 23.203 §7.3.1: "if the AF
//! is in the VPLMN, the V-PCRF also passes AF signalling over S9").
//!
//! Whether TS 29.215 carries the Rx commands (AAR, STR, RAR, ASR) on the S9 application
//! could not be checked against the spec text (protocol.md §14 item 8 marks it unverified),
//! so the V-PCRF does not put them on S9: it relays the AF's Rx session to the H-PCRF as an
//! Rx session of its own (back to back: its own Session-Id, Origin-Host and
//! Destination-Host; every other AVP passed unchanged both ways). The home PCRF binds it to
//! the roaming UE's S9 subsession by the UE address, as it binds a home AF's; the rules it
//! derives come back by S9 RAR and pass local policy like any home rule. The home's RAR
//! and ASR on that Rx session (loss of transport, rule failures) are relayed to the AF,
//! and the AF's STR ends both sessions. No dictionary addition is needed.

use super::Visited;
use crate::gx;
use diameter_codec::dict::{base, nasreq, rx};
use diameter_codec::{AvpKey, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::IncomingRequest;
use std::net::{IpAddr, Ipv4Addr};

/// One relayed AF session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelayedRx {
    /// The AF's Session-Id.
    pub af_session: String,
    /// The AF (Origin-Host of its AAR).
    pub af_host: String,
    /// Its realm.
    pub af_realm: String,
    /// The V-PCRF's Session-Id towards home.
    pub home_session: String,
    /// The home realm.
    pub home_realm: String,
    /// The H-PCRF (Destination-Host), when known.
    pub home_host: Option<String>,
}

/// AVPs a relay sets itself rather than copying (RFC 6733 §6.1.8: the relay's own
/// identity; Route-Record and Proxy-Info belong to the hop they came over).
fn own_keys() -> [AvpKey; 7] {
    [
        base::SESSION_ID.key(),
        base::ORIGIN_HOST.key(),
        base::ORIGIN_REALM.key(),
        base::DESTINATION_HOST.key(),
        base::DESTINATION_REALM.key(),
        base::ROUTE_RECORD.key(),
        base::PROXY_INFO.key(),
    ]
}

/// `m`'s AVPs other than the relay's own, byte-exact.
fn passed_on(m: &Message) -> impl Iterator<Item = OwnedAvp> + '_ {
    let own = own_keys();
    m.avps()
        .flatten()
        .filter(move |a| !own.contains(&a.key()))
        .map(|a| OwnedAvp::verbatim(m, &a))
}

/// A request carrying `m`'s AVPs on session `session_id` to `realm` (and `host`).
fn relayed_request(
    m: &Message,
    me: &diameter_codec::LocalIdentity,
    session_id: &str,
    realm: &str,
    host: Option<&str>,
) -> MessageBuilder {
    let h = m.header();
    let mut b = MessageBuilder::request(h.command_code, h.application_id, h.flags.is_proxiable());
    b.push(base::SESSION_ID.with(session_id.to_string()));
    b.push(base::ORIGIN_HOST.with(me.host.clone()));
    b.push(base::ORIGIN_REALM.with(me.realm.clone()));
    b.push(base::DESTINATION_REALM.with(realm.to_string()));
    if let Some(h) = host {
        b.push(base::DESTINATION_HOST.with(h.to_string()));
    }
    for a in passed_on(m) {
        b.push(a);
    }
    b
}

/// The answer to `req` carrying `answer`'s AVPs.
fn relayed_answer(req: &IncomingRequest, answer: &Message) -> MessageBuilder {
    let mut a = MessageBuilder::answer_to(&req.msg, req.node.identity());
    let own = own_keys();
    for avp in answer.avps().flatten().filter(|a| !own.contains(&a.key())) {
        a.push(OwnedAvp::verbatim(answer, &avp));
    }
    a
}

/// The UE address of an AAR (Framed-IP-Address or Framed-IPv6-Prefix).
fn ue_ip(m: &Message) -> Option<IpAddr> {
    match m.get(nasreq::FRAMED_IP_ADDRESS).and_then(Result::ok) {
        Some(d) => <[u8; 4]>::try_from(d)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        None => m
            .get(nasreq::FRAMED_IPV6_PREFIX)
            .and_then(Result::ok)
            .and_then(gx::ipv6_prefix),
    }
}

impl Visited {
    /// The AF sessions relayed to home networks.
    pub fn relayed_rx(&self) -> Vec<RelayedRx> {
        self.rx_state().values().cloned().collect()
    }

    fn rx_state(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, RelayedRx>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles an Rx request when it is a roaming UE's (an AF's AAR or STR) or a home
    /// PCRF's on a relayed session (RAR, ASR); `None` leaves it to the home-role handler.
    pub async fn rx_request(&self, req: &IncomingRequest) -> Option<MessageBuilder> {
        let sid = req.msg.session_id()?.to_string();
        match req.msg.header().command_code {
            rx::CMD_AA | rx::CMD_SESSION_TERMINATION => self.relay_af_request(req, &sid).await,
            rx::CMD_RE_AUTH | rx::CMD_ABORT_SESSION => self.relay_home_request(req, &sid).await,
            _ => None,
        }
    }

    /// An AF's AAR or STR: a new relay for a roaming UE's address, or one already made.
    async fn relay_af_request(&self, req: &IncomingRequest, sid: &str) -> Option<MessageBuilder> {
        let existing = self.rx_state().get(sid).cloned();
        let relay = match existing {
            Some(r) => r,
            None if req.msg.header().command_code == rx::CMD_AA => {
                let ip = ue_ip(&req.msg)?;
                let s = self
                    .roaming_sessions()
                    .await
                    .ok()?
                    .into_iter()
                    .find(|s| s.ue_ip == Some(ip))?;
                let (home_realm, home_host) = self.home_pcrf_of(&s.s9_session_id).await?;
                let r = RelayedRx {
                    af_session: sid.to_string(),
                    af_host: req
                        .msg
                        .get(base::ORIGIN_HOST)
                        .and_then(Result::ok)?
                        .to_string(),
                    af_realm: req
                        .msg
                        .get(base::ORIGIN_REALM)
                        .and_then(Result::ok)?
                        .to_string(),
                    home_session: self.node.session_ids().next_id(),
                    home_realm,
                    home_host,
                };
                tracing::info!(af_session = sid, home_session = %r.home_session, ue = %ip, "visited AF's Rx session relayed home");
                r
            }
            None => return None,
        };
        let out = relayed_request(
            &req.msg,
            self.node.identity(),
            &relay.home_session,
            &relay.home_realm,
            relay.home_host.as_deref(),
        );
        let ending = req.msg.header().command_code == rx::CMD_SESSION_TERMINATION;
        let answer = match self.node.request(out).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(af_session = sid, error = %e, "home PCRF unreachable for Rx");
                if ending {
                    self.rx_state().remove(sid);
                }
                let mut a = req.answer(ResultCode(5012));
                a.push(base::ERROR_MESSAGE.with(format!(
                    "home network {} unreachable: {e}",
                    relay.home_realm
                )));
                return Some(a);
            }
        };
        let ok = crate::server::result_of(&answer) == Some(2001);
        if ending {
            self.rx_state().remove(sid);
        } else if ok {
            let mut st = self.rx_state();
            // Later requests go to the H-PCRF that answered.
            let mut r = relay;
            if let Some(h) = answer.get(base::ORIGIN_HOST).and_then(Result::ok) {
                r.home_host = Some(h.to_string());
            }
            st.insert(sid.to_string(), r);
        }
        Some(relayed_answer(req, &answer))
    }

    /// A home PCRF's RAR or ASR on a relayed session: to the AF, its answer back.
    async fn relay_home_request(&self, req: &IncomingRequest, sid: &str) -> Option<MessageBuilder> {
        let relay = self
            .rx_state()
            .values()
            .find(|r| r.home_session == sid)
            .cloned()?;
        let out = relayed_request(
            &req.msg,
            self.node.identity(),
            &relay.af_session,
            &relay.af_realm,
            Some(&relay.af_host),
        );
        match self.node.request(out).await {
            Ok(answer) => Some(relayed_answer(req, &answer)),
            Err(e) => {
                tracing::warn!(af_session = %relay.af_session, error = %e, "AF unreachable");
                // RFC 6733 §7.1.3: the AF could not be reached.
                Some(req.answer(ResultCode(3002)))
            }
        }
    }
}
