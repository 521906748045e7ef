//! Requests this node originates: routing, deadlines, and following redirects
//! (RFC 6733 §6.13).

use super::dispatch::RoutingAvps;
use super::pending::{Pending, Reply};
use super::{Node, edit};
use crate::routing::{Decision, RedirectUsage};
use diameter_codec::dict::base;
use diameter_codec::{CommandFlags, Message, MessageBuilder, ResultCode};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Why a request got no answer from the network.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No answer before the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The node could not route or deliver it; `answer` is the error answer an agent would
    /// have sent (E bit, Result-Code, Error-Reporting-Host).
    #[error("not delivered: {result_code}")]
    Protocol {
        /// 3002, 3003, 3004, 3005…
        result_code: ResultCode,
        /// The locally built error answer.
        answer: Message,
    },
    /// Redirected more times than allowed, or in a loop.
    #[error("redirect loop")]
    RedirectLoop,
    /// The request does not encode into a message the node's limits accept.
    #[error("request not well-formed: {0}")]
    Malformed(diameter_codec::DecodeError),
    /// [`Node::request_encoded`] was given an answer.
    #[error("not a request (R bit clear)")]
    NotARequest,
    /// The node is shutting down.
    #[error("node stopped")]
    Stopped,
}

/// How [`Node::request_with`] sends a request.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// The deadline; the node's default (`request_timeout`) when `None`.
    pub timeout: Option<Duration>,
    /// Sent to this peer first, whatever Destination-Host, cached redirects and the realm
    /// table say (a DRA client telling the DRA itself of a termination, or reaching the
    /// PCRF the DRA redirected it to, document 002). A host that is not an open peer is
    /// connected at `peer_addr`, else at the `[node]` host map's address.
    pub peer: Option<String>,
    /// Where to connect `peer` when the node has no connection to it.
    pub peer_addr: Option<std::net::SocketAddr>,
    /// A 3006 answer is returned as it is instead of being followed (RFC 6733 §6.13 leaves
    /// following to the requester).
    pub keep_redirect: bool,
}

/// An answer and how it came (see [`Node::request_with`]).
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The answer.
    pub answer: Message,
    /// The peer it was sent to (the last one, after redirects).
    pub peer: String,
    /// The peer that answered 3006 first, when a redirect was followed.
    pub redirected_by: Option<String>,
}

impl Node {
    /// A new End-to-End Identifier.
    pub fn next_end_to_end(&self) -> u32 {
        self.shared.end_to_end.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request and waits for its answer, with the node's default deadline.
    pub async fn request(&self, req: MessageBuilder) -> Result<Message, RequestError> {
        self.request_with_timeout(req, self.shared.cfg.request_timeout)
            .await
    }

    /// Sends a request and waits for its answer or the deadline. Routing follows
    /// Destination-Host, cached redirects and the realm table; a 3006 answer is followed to
    /// the Redirect-Host it names (RFC 6733 §6.13), at most three times.
    pub async fn request_with_timeout(
        &self,
        req: MessageBuilder,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let opts = SendOptions {
            timeout: Some(timeout),
            ..SendOptions::default()
        };
        self.request_with(req, &opts).await.map(|d| d.answer)
    }

    /// As [`Self::request_with_timeout`] for a request already encoded (built with
    /// [`diameter_codec::MessageWriter`], or captured and replayed). Its End-to-End
    /// Identifier is sent as it is (RFC 6733 §3: the sender's to choose, unique per request);
    /// its Hop-by-Hop Identifier is replaced by ours.
    pub async fn request_encoded(
        &self,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let opts = SendOptions {
            timeout: Some(timeout),
            ..SendOptions::default()
        };
        self.send_encoded(msg, &opts).await.map(|d| d.answer)
    }

    /// As [`Self::request_with_timeout`], sent as `opts` says, and telling which peer
    /// answered and whether a redirect was followed on the way.
    pub async fn request_with(
        &self,
        mut req: MessageBuilder,
        opts: &SendOptions,
    ) -> Result<Delivered, RequestError> {
        req.flags = req.flags.with(CommandFlags::REQUEST, true);
        if req.end_to_end == 0 {
            req.end_to_end = self.next_end_to_end();
        }
        // Encoded once: each attempt (failover, redirect) only rewrites the Hop-by-Hop
        // Identifier. The node's own limits apply, not the codec's defaults.
        let msg = Message::decode(req.to_bytes(), &self.shared.cfg.limits)
            .map_err(RequestError::Malformed)?;
        self.send_encoded(msg, opts).await
    }

    async fn send_encoded(
        &self,
        msg: Message,
        opts: &SendOptions,
    ) -> Result<Delivered, RequestError> {
        let timeout = opts.timeout.unwrap_or(self.shared.cfg.request_timeout);
        let s = &self.shared;
        if s.stopped.load(Ordering::Acquire) {
            return Err(RequestError::Stopped);
        }
        let h = *msg.header();
        if !h.is_request() {
            return Err(RequestError::NotARequest);
        }
        // Never sent larger than peers accept (see `size`).
        if msg.as_bytes().len() > s.max_send_len() {
            return Err(RequestError::Malformed(
                diameter_codec::FrameError::TooLong {
                    length: h.length,
                    max: s.cfg.limits.max_message_len,
                }
                .into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        crate::metrics::record_request(
            &s.metrics,
            crate::metrics::Direction::Sent,
            h.application_id,
            h.command_code,
        );
        let span = tracing::debug_span!(
            "send",
            session = msg.session_id().unwrap_or(""),
            command = h.command_code,
            application = h.application_id,
            e2e = h.end_to_end,
        );
        let routed = self.route_and_wait(&msg, deadline, timeout, opts);
        tracing::Instrument::instrument(routed, span).await
    }

    pub(super) async fn route_and_wait(
        &self,
        msg: &Message,
        deadline: Instant,
        timeout: Duration,
        opts: &SendOptions,
    ) -> Result<Delivered, RequestError> {
        let s = &self.shared;
        let h = *msg.header();
        let avps = RoutingAvps::read(msg);
        let info = avps.info(h.application_id);
        // Hosts already asked, filled only when a redirect is followed.
        let mut tried: Vec<String> = Vec::new();
        let mut target: Option<String> = None;
        let mut redirected_by: Option<String> = None;
        if let Some(p) = &opts.peer {
            if !s.reach(p, opts.peer_addr, deadline).await {
                return Err(s.local_error(msg, ResultCode::DIAMETER_UNABLE_TO_DELIVER));
            }
            target = Some(p.clone());
        }
        for _ in 0..4 {
            let cached = s
                .redirects
                .lock()
                .expect("redirect lock")
                .lookup(&info, Instant::now())
                .map(<[String]>::to_vec);
            let peer = match target
                .take()
                .or_else(|| cached.and_then(|hosts| s.first_available(&hosts)))
            {
                Some(p) => p,
                None => match s.decide(&info, true) {
                    Decision::Forward { peer, .. } => peer,
                    Decision::Local | Decision::Redirect { .. } => {
                        return Err(s.local_error(msg, ResultCode::DIAMETER_UNABLE_TO_DELIVER));
                    }
                    Decision::Error(rc) => return Err(s.local_error(msg, rc)),
                },
            };
            let (tx, rx) = oneshot::channel();
            let hbh = s.next_hop_by_hop();
            s.send_pending(
                hbh,
                Pending::new(
                    Reply::Local(tx),
                    peer.clone(),
                    edit::retarget(msg.as_bytes(), hbh, false),
                    &h,
                    deadline,
                ),
            );
            let answer = match tokio::time::timeout_at(deadline.into(), rx).await {
                Ok(Ok(r)) => r?,
                Ok(Err(_)) => return Err(RequestError::Stopped),
                Err(_) => {
                    s.pending.lock().expect("pending lock").remove(&hbh);
                    return Err(RequestError::Timeout(timeout));
                }
            };
            // RFC 6733 §6.13: a redirect answer names where to send the request instead.
            if !opts.keep_redirect
                && answer.header().flags.is_error()
                && answer.get(base::RESULT_CODE).and_then(Result::ok)
                    == Some(ResultCode::DIAMETER_REDIRECT_INDICATION.0)
            {
                let targets = redirect_targets(&answer);
                let hosts: Vec<String> = targets.iter().map(|t| t.host.clone()).collect();
                let usage = answer
                    .get(base::REDIRECT_HOST_USAGE)
                    .and_then(Result::ok)
                    .map_or(RedirectUsage::DontCache, |u| RedirectUsage::from_value(u.0));
                // RFC 6733 §6.13: Redirect-Max-Cache-Time is required when usage ≠ DONT_CACHE;
                // without it nothing is cached (bad-inputs 41).
                let cache = answer
                    .get(base::REDIRECT_MAX_CACHE_TIME)
                    .and_then(Result::ok)
                    .map(|t| Duration::from_secs(t.into()));
                if let Some(cache) = cache {
                    s.redirects.lock().expect("redirect lock").insert(
                        &info,
                        usage,
                        hosts.clone(),
                        cache,
                        Instant::now(),
                    );
                }
                tried.push(peer.to_ascii_lowercase());
                if targets.is_empty() {
                    return Ok(Delivered {
                        answer,
                        peer,
                        redirected_by,
                    });
                }
                let fresh: Vec<&RedirectTarget> = targets
                    .iter()
                    .filter(|t| {
                        !tried.contains(&t.host.to_ascii_lowercase())
                            && !t.host.eq_ignore_ascii_case(&s.identity.host)
                    })
                    .collect();
                if fresh.is_empty() {
                    return Err(RequestError::RedirectLoop);
                }
                // An open peer first; else connect to the hosts in the answer's order, at the
                // address the host map or the URI gives.
                let mut next = fresh
                    .iter()
                    .find(|t| s.is_available(&t.host))
                    .map(|t| t.host.clone());
                if next.is_none() {
                    for t in &fresh {
                        let hint = match s.peer(&t.host) {
                            None => t.resolve(&s.cfg.host_map).await,
                            Some(_) => None,
                        };
                        if s.reach(&t.host, hint, deadline).await {
                            next = Some(t.host.clone());
                            break;
                        }
                    }
                }
                match next {
                    Some(h) => {
                        target = Some(h);
                        redirected_by.get_or_insert(peer);
                        continue;
                    }
                    None => {
                        return Err(s.local_error(msg, ResultCode::DIAMETER_UNABLE_TO_DELIVER));
                    }
                }
            }
            return Ok(Delivered {
                answer,
                peer,
                redirected_by,
            });
        }
        Err(RequestError::RedirectLoop)
    }
}

/// A host named by a Redirect-Host URI (RFC 6733 §6.12), and where the URI says it
/// listens.
pub(super) struct RedirectTarget {
    pub(super) host: String,
    port: u16,
    /// `aaas://` or a transport other than TCP: the node cannot dial it on its own.
    dialable: bool,
}

impl RedirectTarget {
    /// The address to connect to: the `[node]` host map's, else the URI's host resolved by
    /// the system resolver (the host may be a name or an address literal).
    async fn resolve(
        &self,
        host_map: &std::collections::HashMap<String, std::net::SocketAddr>,
    ) -> Option<std::net::SocketAddr> {
        if let Some(a) = host_map.get(crate::identity_key(&self.host).as_ref()) {
            return Some(*a);
        }
        if !self.dialable {
            return None;
        }
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .ok()?
            .next()
    }
}

/// The hosts of an answer's Redirect-Host URIs, in order.
pub(super) fn redirect_targets(answer: &Message) -> Vec<RedirectTarget> {
    answer
        .find_all(base::REDIRECT_HOST.key())
        .filter_map(|a| diameter_codec::types::DiameterUri::parse(a.data).ok())
        .map(|u| RedirectTarget {
            host: u.fqdn.to_string(),
            port: u.port,
            dialable: !u.secure
                && matches!(
                    u.transport,
                    None | Some(diameter_codec::types::UriTransport::Tcp)
                ),
        })
        .collect()
}
