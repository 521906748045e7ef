//! What a handler decides besides answering: forwarding a request as a proxy (RFC 6733
//! §2.8.2, §6.1.8) and redirecting its sender (§6.1.7); and reaching a host the node is
//! not connected to, for a proxy's choice or a redirect the client side follows.

use super::handler::{Forward, Redirect};
use super::pending::{Pending, Proxied, Reply};
use super::{NodeEvent, PeerSpec, Shared, edit};
use crate::dedup::DupKey;
use crate::routing::RedirectUsage;
use diameter_codec::dict::base;
use diameter_codec::{
    CommandFlags, ErrorReport, LocalIdentity, Message, MessageBuilder, ResultCode,
};
use std::net::SocketAddr;
use std::time::Instant;

/// A redirect answer (RFC 6733 §6.1.7): 3006 with the E bit (§7.1.3), one Redirect-Host per
/// host (§6.12), Redirect-Host-Usage and Redirect-Max-Cache-Time when the sender may cache
/// it (§6.13, §6.14: the cache time is required whenever the usage is not DONT_CACHE), and
/// the request's Proxy-Info (§6.2).
pub(super) fn redirect_answer(req: &Message, me: &LocalIdentity, r: &Redirect) -> MessageBuilder {
    let mut b = MessageBuilder::answer_to(req, me);
    b.flags = b.flags.with(CommandFlags::ERROR, true);
    b.result_code(ResultCode::DIAMETER_REDIRECT_INDICATION);
    for host in &r.hosts {
        let uri = if host.contains("://") {
            host.clone()
        } else {
            format!("aaa://{host}")
        };
        b.push(base::REDIRECT_HOST.with(uri));
    }
    if r.usage != RedirectUsage::DontCache {
        b.push(base::REDIRECT_HOST_USAGE.with(base::RedirectHostUsage(r.usage.value())));
        b.push(
            base::REDIRECT_MAX_CACHE_TIME
                .with(r.max_cache_time.as_secs().min(u64::from(u32::MAX)) as u32),
        );
    }
    b.copy_proxy_info(req);
    b
}

impl Shared {
    /// Carries out a handler's [`Forward`] of the request `original` received from `from`.
    pub(super) async fn forward(&self, from: &str, key: DupKey, original: &Message, f: Forward) {
        let h = *original.header();
        let error = |rc: ResultCode, why: &str| {
            let mut report = ErrorReport::new(rc);
            report.message = Some(why.to_string());
            MessageBuilder::error_answer(original, &self.identity, &report)
        };
        let msg = match f.request {
            None => original.clone(),
            Some(mut b) => {
                // The edited request keeps the original's identifiers and flags (the T bit
                // included, RFC 6733 §3); Proxy-Info is the handler's to keep (§6.7.3).
                b.hop_by_hop = h.hop_by_hop;
                b.end_to_end = h.end_to_end;
                b.flags = h.flags;
                match Message::decode(b.to_bytes(), &self.cfg.limits) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "a proxy's edited request does not encode");
                        let b = error(
                            ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                            "edited request not well-formed",
                        );
                        return self.finish_local(from, &key, &b);
                    }
                }
            }
        };
        // RFC 6733 §6.1.3 / §6.7.1: never send a request to a node it already went through.
        let route_record: Vec<&str> = msg
            .find_all(base::ROUTE_RECORD.key())
            .filter_map(|a| std::str::from_utf8(a.data).ok())
            .collect();
        let looped = |host: &str| {
            route_record.iter().any(|r| r.eq_ignore_ascii_case(host))
                || host.eq_ignore_ascii_case(from)
        };
        let mut candidates: Vec<String> = f.peers.iter().filter(|p| !looped(p)).cloned().collect();
        if candidates.is_empty() {
            let b = if f.peers.is_empty() {
                error(ResultCode::DIAMETER_UNABLE_TO_DELIVER, "no route")
            } else {
                error(
                    ResultCode::DIAMETER_LOOP_DETECTED,
                    "the request already went through that peer",
                )
            };
            return self.finish_local(from, &key, &b);
        }
        let deadline = Instant::now() + self.cfg.request_timeout;
        let first = match candidates.iter().position(|p| self.is_available(p)) {
            Some(i) => Some(candidates.remove(i)),
            // None open: connect to the first one the node knows how to reach.
            None => {
                let mut found = None;
                for (i, c) in candidates.iter().enumerate() {
                    if self.reach(c, None, deadline).await {
                        found = Some(i);
                        break;
                    }
                }
                found.map(|i| candidates.remove(i))
            }
        };
        let Some(next) = first else {
            let b = error(ResultCode::DIAMETER_UNABLE_TO_DELIVER, "no peer available");
            return self.finish_local(from, &key, &b);
        };
        let hbh = self.next_hop_by_hop();
        let bytes = edit::for_relay(&msg, hbh, from);
        self.send_pending(
            hbh,
            Pending {
                alternates: (!f.by_router).then_some(candidates),
                ..Pending::new(
                    Reply::Relay {
                        peer: from.to_string(),
                        hop_by_hop: h.hop_by_hop,
                        proxy: Some(Box::new(Proxied {
                            key: Some(key),
                            answer_edit: f.answer_edit,
                            answer_watch: f.answer_watch,
                        })),
                    },
                    next,
                    bytes,
                    &h,
                    deadline,
                )
            },
        );
    }

    /// Makes `host` an open peer if the node can: waits for a known peer to open, or adds a
    /// peer at the address the `[node]` host map gives (else `hint`, from a Redirect-Host
    /// URI) and waits for its capabilities exchange, until `until`.
    pub(super) async fn reach(&self, host: &str, hint: Option<SocketAddr>, until: Instant) -> bool {
        if self.is_available(host) {
            return true;
        }
        let mut events = self.events.subscribe();
        if self.peer(host).is_none() {
            let addr = self
                .cfg
                .host_map
                .get(crate::identity_key(host).as_ref())
                .copied()
                .or(hint);
            let Some(addr) = addr else {
                return false;
            };
            tracing::info!(peer = host, %addr, "connecting to a host met in a redirect or proxy route");
            self.spawn_configured(&PeerSpec::connect_tcp(host, addr));
        }
        let wait = async {
            loop {
                if self.is_available(host) {
                    return true;
                }
                match events.recv().await {
                    Ok(NodeEvent::PeerUp { peer, .. }) if peer.eq_ignore_ascii_case(host) => {
                        return true;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return false,
                }
            }
        };
        tokio::time::timeout_at(until.into(), wait)
            .await
            .unwrap_or(false)
    }
}
