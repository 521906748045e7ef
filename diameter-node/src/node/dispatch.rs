//! Requests received from peers: checks, routing decisions, relaying, redirects, duplicate
//! detection and local handlers.

use super::forward::redirect_answer;
use super::handler::{AtOnce, Forward, Handler, IncomingRequest, Outcome, Redirect};
use super::peer_task::PeerCmd;
use super::pending::{Pending, Proxied, Reply};
use super::{Node, Shared, edit};
use crate::dedup::{DupKey, Seen};
use crate::peer::RELAY_APPLICATION_ID;
use crate::routing::{Decision, RequestInfo, RouteAction};
use bytes::Bytes;
use diameter_codec::dict::base;
use diameter_codec::{
    CommandFlags, ErrorReport, Message, MessageBuilder, OwnedAvp, ResultCode, ValidateOptions,
    ValidationLevel, Validator,
};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A duplicate waiting for the original's answer: the peer and its Hop-by-Hop Identifier.
pub(super) type Waiter = (String, u32);

/// The top-level AVPs a request is checked and routed by, read in one pass over the message
/// (each the first of its kind that is valid UTF-8).
#[derive(Default)]
pub(super) struct RoutingAvps<'a> {
    pub(super) origin_host: Option<&'a str>,
    pub(super) destination_host: Option<&'a str>,
    pub(super) destination_realm: Option<&'a str>,
    pub(super) session_id: Option<&'a str>,
    pub(super) user_name: Option<&'a str>,
    pub(super) route_record: bool,
    /// Whether any Proxy-Info is present (then bounded, see `size`).
    pub(super) proxy_info: bool,
}

impl<'a> RoutingAvps<'a> {
    pub(super) fn read(msg: &'a Message) -> Self {
        fn first<'a>(slot: &mut Option<&'a str>, data: &'a [u8]) {
            if slot.is_none() {
                *slot = std::str::from_utf8(data).ok();
            }
        }
        let mut r = Self::default();
        for a in msg.avps().framed() {
            match a.key() {
                k if k == base::ORIGIN_HOST.key() => first(&mut r.origin_host, a.data),
                k if k == base::DESTINATION_HOST.key() => first(&mut r.destination_host, a.data),
                k if k == base::DESTINATION_REALM.key() => {
                    first(&mut r.destination_realm, a.data);
                }
                k if k == base::SESSION_ID.key() => first(&mut r.session_id, a.data),
                k if k == base::USER_NAME.key() => first(&mut r.user_name, a.data),
                k if k == base::ROUTE_RECORD.key() => r.route_record = true,
                k if k == base::PROXY_INFO.key() => r.proxy_info = true,
                _ => {}
            }
        }
        r
    }

    /// What the router needs of a request of `application_id` with these AVPs.
    pub(super) fn info(&self, application_id: u32) -> RequestInfo<'a> {
        RequestInfo {
            destination_host: self.destination_host,
            destination_realm: self.destination_realm,
            application_id,
            session_id: self.session_id,
            user_name: self.user_name,
        }
    }
}

impl Shared {
    /// A request arrived from `peer`.
    pub(crate) fn on_request(&self, peer: &str, msg: Message) {
        let h = *msg.header();
        crate::metrics::record_request(
            &self.metrics,
            crate::metrics::Direction::Received,
            h.application_id,
            h.command_code,
        );
        let avps = RoutingAvps::read(&msg);
        if avps.proxy_info && self.refuse_proxy_info(peer, &msg) {
            return;
        }
        let origin = avps.origin_host.unwrap_or(peer);
        let info = avps.info(h.application_id);
        // bad-inputs 40: a request without Route-Record, or from a peer that did not
        // advertise the Relay application (and so forwards nothing), was originated by the
        // peer itself, so its Origin-Host must be the identity the peer proved in CER (and, over TLS,
        // with its certificate). Anything else is spoofing or a relay that dropped its
        // Route-Record: refused with 5003 DIAMETER_AUTHORIZATION_REJECTED (our choice; the
        // RFC names no code) and logged.
        let forwarded = avps.route_record && self.peer_is_relay(peer);
        if !forwarded && !origin.eq_ignore_ascii_case(peer) {
            tracing::warn!(peer, origin_host = %origin, "direct request with a foreign Origin-Host refused");
            return self.answer_error(peer, &msg, ResultCode::DIAMETER_AUTHORIZATION_REJECTED);
        }
        // RFC 6733 §6.1.3: a request that already went through us is looped.
        if self.cfg.agent
            && avps.route_record
            && self.router.is_loop(
                msg.find_all(base::ROUTE_RECORD.key())
                    .filter_map(|a| std::str::from_utf8(a.data).ok()),
            )
        {
            return self.answer_error(peer, &msg, ResultCode::DIAMETER_LOOP_DETECTED);
        }
        let decision = if self.cfg.agent {
            self.decide(&info, false)
        } else {
            self.local_decision(&info)
        };
        match decision {
            Decision::Local => self.dispatch_local(peer, origin, &msg, avps.proxy_info, None),
            // A proxy route hands the request to the application's handler, which may edit
            // it, send it elsewhere, or answer it (RFC 6733 §2.8.2); without a handler the
            // request is forwarded as a relay would.
            Decision::Forward {
                peer: next,
                action: RouteAction::Proxy,
            } if self.has_handler(h.application_id) => {
                self.dispatch_local(peer, origin, &msg, avps.proxy_info, Some(next));
            }
            Decision::Forward { peer: next, .. } => {
                let hbh = self.next_hop_by_hop();
                let bytes = edit::for_relay(&msg, hbh, peer);
                if bytes.len() > self.max_send_len() {
                    return self.refuse_relay_too_large(peer, &msg, bytes.len());
                }
                self.send_pending(
                    hbh,
                    Pending::new(
                        Reply::Relay {
                            peer: peer.to_string(),
                            hop_by_hop: h.hop_by_hop,
                            proxy: None,
                        },
                        next,
                        bytes,
                        &h,
                        Instant::now() + self.cfg.request_timeout,
                    ),
                );
            }
            Decision::Redirect {
                hosts,
                usage,
                cache_time,
            } => {
                let r = Redirect {
                    hosts,
                    usage,
                    max_cache_time: cache_time,
                };
                let b = redirect_answer(&msg, &self.identity, &r);
                self.send_answer(peer, self.bounded(&b).to_bytes());
            }
            Decision::Error(rc) => self.answer_error(peer, &msg, rc),
        }
    }

    /// The handler of an application, or the catch-all one (relay application id).
    pub(super) fn handler_for(&self, application_id: u32) -> Option<Arc<dyn Handler>> {
        let handlers = self.handlers.read().expect("handlers lock");
        handlers
            .get(&application_id)
            .or_else(|| handlers.get(&RELAY_APPLICATION_ID))
            .cloned()
    }

    /// Whether [`Self::handler_for`] has one (without taking a reference to it).
    pub(super) fn has_handler(&self, application_id: u32) -> bool {
        let handlers = self.handlers.read().expect("handlers lock");
        handlers.contains_key(&application_id) || handlers.contains_key(&RELAY_APPLICATION_ID)
    }

    /// For a non-agent node: requests are ours when the application is registered.
    pub(super) fn local_decision(&self, info: &RequestInfo<'_>) -> Decision {
        if self.has_handler(info.application_id) {
            Decision::Local
        } else {
            Decision::Error(ResultCode::DIAMETER_APPLICATION_UNSUPPORTED)
        }
    }

    pub(super) fn answer_error(&self, peer: &str, msg: &Message, rc: ResultCode) {
        let report = ErrorReport::new(rc);
        let b = MessageBuilder::error_answer(msg, &self.identity, &report);
        crate::metrics::record_answer(
            &self.metrics,
            crate::metrics::Direction::Sent,
            msg.header().application_id,
            msg.header().command_code,
            rc.0,
        );
        self.send_answer(peer, self.bounded(&b).to_bytes());
    }

    pub(super) fn send_answer(&self, peer: &str, bytes: Bytes) {
        if let Some(h) = self.peer(peer) {
            if let Err(mpsc::error::TrySendError::Full(PeerCmd::Send(b))) = h.try_send(bytes) {
                // Answers are never dropped for a full queue: wait for room.
                tokio::spawn(async move {
                    let _ = h.cmd.send(PeerCmd::Send(b)).await;
                });
            }
        }
    }

    /// How requests of `application` are validated: the liberal level with a tolerant M bit
    /// unless the configuration makes them strict (`strict_validation_applications`,
    /// `strict_m_bit`).
    fn validate_options(&self, application: u32) -> ValidateOptions {
        let strict = self
            .cfg
            .strict_validation_applications
            .contains(&application);
        ValidateOptions {
            limits: self.cfg.limits,
            level: if strict {
                ValidationLevel::Strict
            } else {
                ValidationLevel::Liberal
            },
            strict_m_bit: self.cfg.strict_m_bit,
            ..Default::default()
        }
    }

    /// Validates a request for a local handler at the application's level (when the node
    /// validates): the deviations accepted, or the error answer.
    fn validate_request(
        &self,
        peer: &str,
        msg: &Message,
    ) -> Result<Vec<diameter_codec::Finding>, MessageBuilder> {
        if !self.cfg.validate {
            return Ok(Vec::new());
        }
        let h = msg.header();
        let v = Validator::new(self.dict, self.validate_options(h.application_id)).check(msg);
        if let Some(e) = v.error {
            return Err(MessageBuilder::error_answer(msg, &self.identity, &e.report));
        }
        for d in &v.deviations {
            crate::metrics::record_deviation(
                &self.metrics,
                h.application_id,
                d.avp_name(),
                d.kind.as_str(),
            );
            tracing::debug!(
                peer,
                application = h.application_id,
                command = h.command_code,
                kind = d.kind.as_str(),
                avp = %d.path_names,
                rule = %d.rule,
                strict_result_code = d.report.result_code.0,
                "request accepted with a deviation"
            );
        }
        Ok(v.deviations)
    }

    /// Registers a request in the duplicate cache (RFC 6733 §5.5.4: (Origin-Host,
    /// End-to-End)): its key when it is new; `None` when it is a duplicate, answered here
    /// or waiting for the original's answer.
    fn register(&self, peer: &str, origin: &str, msg: &Message) -> Option<DupKey> {
        let h = msg.header();
        let (key, seen) = {
            let mut dedup = self.dedup.lock().expect("dedup lock");
            let key = dedup.key(origin, h.end_to_end);
            let seen = dedup.check(key.clone(), Instant::now(), || {
                (peer.to_string(), h.hop_by_hop)
            });
            (key, seen)
        };
        match seen {
            Seen::New => Some(key),
            Seen::Waiting => None,
            Seen::Answered(a) => {
                self.send_answer(peer, edit::retarget(&a, h.hop_by_hop, false));
                None
            }
        }
    }

    /// Runs a request addressed to us (or matched by a proxy route towards `route`);
    /// `origin` is its Origin-Host, `proxy_info` whether it carries Proxy-Info.
    ///
    /// Validation comes first (an invalid request is answered at once and not kept as a
    /// duplicate: a retransmission of it is checked again and gets the same answer), then
    /// the handler's [`Handler::forward_at_once`], then the duplicate cache and the handler.
    pub(super) fn dispatch_local(
        &self,
        peer: &str,
        origin: &str,
        msg: &Message,
        proxy_info: bool,
        route: Option<String>,
    ) {
        let h = *msg.header();
        let deviations = match self.validate_request(peer, msg) {
            Ok(d) => d,
            Err(answer) => return self.send_answer(peer, self.encode_local(&answer)),
        };
        let handler = self.handler_for(h.application_id);
        if !h.flags.is_retransmit()
            && let Some(next) = handler.as_ref().and_then(|x| x.forward_at_once(peer, msg))
        {
            return self.forward_now(peer, origin, msg, next);
        }
        let Some(key) = self.register(peer, origin, msg) else {
            return;
        };
        let Some(handler) = handler else {
            let b = MessageBuilder::error_answer(
                msg,
                &self.identity,
                &ErrorReport::new(ResultCode::DIAMETER_APPLICATION_UNSUPPORTED),
            );
            return self.finish_local(peer, &key, &b);
        };
        // Bounded handler concurrency: beyond it, 3004 DIAMETER_TOO_BUSY (RFC 6733 §7.1.3).
        let Ok(permit) = self.handler_slots.clone().try_acquire_owned() else {
            crate::metrics::too_busy(&self.metrics, crate::metrics::Direction::Received)
                .increment(1);
            let b = MessageBuilder::error_answer(
                msg,
                &self.identity,
                &ErrorReport::new(ResultCode::DIAMETER_TOO_BUSY),
            );
            let b = self.bounded(&b).to_bytes();
            self.dedup.lock().expect("dedup lock").abandon(&key);
            return self.send_answer(peer, b);
        };
        let shared = self.arc();
        let req = IncomingRequest {
            retransmitted: h.flags.is_retransmit(),
            msg: msg.clone(),
            peer: peer.to_string(),
            node: Node {
                shared: shared.clone(),
            },
            route,
            deviations,
        };
        let span = request_span(peer, msg);
        // A handler that panics must not take the connection's reader (which polls it
        // first) down with it, nor leave the duplicate entry in flight: it is answered
        // 5012 DIAMETER_UNABLE_TO_COMPLY like any other failure to handle. Calling the
        // handler and its first poll are guarded here, later polls by the task below.
        //
        // A handler that answers at once (most do) finishes here, on the peer's task: one
        // task hand-off and wake-up fewer per request, and nothing boxed besides the
        // handler's own future (polled first with a waker that does nothing).
        let first = {
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut fut = handler.handle(req);
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match fut.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(outcome) => Ok(outcome),
                    std::task::Poll::Pending => Err(fut),
                }
            }))
        };
        let outcome = match first {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(fut)) => {
                // It waits (for a peer's answer, a store…): it goes on from the thread that
                // wakes it (`crate::task`), polled once more here with that waker.
                let peer = peer.to_string();
                let msg = msg.clone();
                let task = async move {
                    let handled = AssertUnwindSafe(fut).catch_unwind().await;
                    drop(permit);
                    if let Some(f) = shared.conclude(&peer, &key, &msg, proxy_info, handled) {
                        shared.forward(&peer, key, &msg, f).await;
                    }
                };
                crate::task::run_here(Box::pin(tracing::Instrument::instrument(task, span)));
                return;
            }
            Err(panic) => Err(panic),
        };
        drop(permit);
        let forward = {
            let _entered = span.enter();
            self.conclude(peer, &key, msg, proxy_info, outcome)
        };
        if let Some(f) = forward {
            self.run_forward(peer, key, msg, f, span);
        }
    }

    /// A proxy's forward: sent from here (the peer's task), unless it has to wait for a
    /// connection, then as a task of its own once it can go on (`crate::task`).
    fn run_forward(&self, peer: &str, key: DupKey, msg: &Message, f: Forward, span: tracing::Span) {
        let shared = self.arc();
        let peer = peer.to_string();
        let msg = msg.clone();
        let task = async move { shared.forward(&peer, key, &msg, f).await };
        crate::task::run_here(Box::pin(tracing::Instrument::instrument(task, span)));
    }

    /// A request its handler forwards at once to `next` ([`Handler::forward_at_once`]):
    /// relayed as the routing table's forward relays (RFC 6733 §6.1.8: Route-Record
    /// appended, a Hop-by-Hop Identifier of ours; the answer relayed back unchanged on the
    /// original one, §6.1.9), with no failover to another peer (the handler chose this
    /// one). A peer not open, or one the request already went through (§6.1.3), takes the
    /// full way of a handler's [`Forward`] (reached through the host map, or answered 3002
    /// or 3005), registered as a possible duplicate like any request handled so.
    fn forward_now(&self, peer: &str, origin: &str, msg: &Message, at_once: AtOnce) {
        let AtOnce { peer: next, watch } = at_once;
        let h = *msg.header();
        let looped = next.eq_ignore_ascii_case(peer)
            || msg
                .find_all(base::ROUTE_RECORD.key())
                .any(|a| a.data.eq_ignore_ascii_case(next.as_bytes()));
        if looped || !self.is_available(&next) {
            if let Some(key) = self.register(peer, origin, msg) {
                let mut f = Forward::to(next);
                f.answer_watch = watch;
                self.run_forward(peer, key, msg, f, request_span(peer, msg));
            }
            return;
        }
        let hbh = self.next_hop_by_hop();
        let bytes = edit::for_relay(msg, hbh, peer);
        if bytes.len() > self.max_send_len() {
            return self.refuse_relay_too_large(peer, msg, bytes.len());
        }
        self.send_pending(
            hbh,
            Pending {
                alternates: Some(Vec::new()),
                ..Pending::new(
                    Reply::Relay {
                        peer: peer.to_string(),
                        hop_by_hop: h.hop_by_hop,
                        proxy: watch.map(|w| {
                            Box::new(Proxied {
                                key: None,
                                answer_edit: None,
                                answer_watch: Some(w),
                            })
                        }),
                    },
                    next,
                    bytes,
                    &h,
                    Instant::now() + self.cfg.request_timeout,
                )
            },
        );
    }

    /// Carries out what the handler of `msg` (received from `peer`) decided, or answers
    /// 5012 when it panicked. A forward is left to the caller (it may wait).
    fn conclude(
        &self,
        peer: &str,
        key: &DupKey,
        msg: &Message,
        proxy_info: bool,
        handled: std::thread::Result<Outcome>,
    ) -> Option<Forward> {
        let h = *msg.header();
        let outcome = handled.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            tracing::error!(panic = what, "handler panicked; answered 5012");
            let mut report = ErrorReport::new(ResultCode::DIAMETER_UNABLE_TO_COMPLY);
            report.message = Some("request handler failed".into());
            Outcome::Answer(MessageBuilder::error_answer(msg, &self.identity, &report))
        });
        match outcome {
            Outcome::Answer(mut answer) => {
                answer.hop_by_hop = h.hop_by_hop;
                answer.end_to_end = h.end_to_end;
                answer.flags = answer.flags.with(CommandFlags::REQUEST, false);
                // RFC 6733 §7.1.3: a protocol error answer has the E bit, whoever built it.
                if answer
                    .find(base::RESULT_CODE.key())
                    .and_then(OwnedAvp::as_u32)
                    .is_some_and(|rc| ResultCode(rc).is_protocol_error())
                {
                    answer.flags = answer.flags.with(CommandFlags::ERROR, true);
                }
                // RFC 6733 §6.2 item 4 (the routing pass saw whether there is any).
                if proxy_info && answer.find(base::PROXY_INFO.key()).is_none() {
                    answer.copy_proxy_info(msg);
                }
                self.finish_local(peer, key, &answer);
                None
            }
            Outcome::Redirect(r) => {
                let answer = redirect_answer(msg, &self.identity, &r);
                self.finish_local(peer, key, &answer);
                None
            }
            Outcome::Forward(f) => Some(f),
        }
    }

    pub(super) fn finish_local(&self, peer: &str, key: &DupKey, answer: &MessageBuilder) {
        let bytes = self.encode_local(answer);
        self.finish_bytes(peer, key, bytes);
    }

    /// An answer of ours to a request, encoded (a 5012 in its place when too large, see
    /// `size`) and counted.
    fn encode_local(&self, answer: &MessageBuilder) -> Bytes {
        // Encoded first, checked after: the common answer is encoded once (see `size`).
        let mut bytes = answer.to_bytes();
        let small;
        let answer = if bytes.len() > self.max_send_len() {
            small = self.too_large(answer, bytes.len());
            bytes = small.to_bytes();
            &small
        } else {
            answer
        };
        let rc = answer
            .find(base::RESULT_CODE.key())
            .and_then(OwnedAvp::as_u32)
            .unwrap_or(0);
        crate::metrics::record_answer(
            &self.metrics,
            crate::metrics::Direction::Sent,
            answer.application_id,
            answer.command_code,
            rc,
        );
        bytes
    }

    /// Sends the answer to a request we took in, and to the duplicates that waited for it,
    /// and keeps it for later duplicates.
    pub(super) fn finish_bytes(&self, peer: &str, key: &DupKey, answer: Bytes) {
        let waiters = self
            .dedup
            .lock()
            .expect("dedup lock")
            .complete(key, answer.clone());
        self.send_answer(peer, answer.clone());
        for (p, hbh) in waiters {
            self.send_answer(&p, edit::retarget(&answer, hbh, false));
        }
    }
}

/// The span of a request handed to a handler, carrying what an operator greps for (its
/// fields are only evaluated when the span is enabled).
fn request_span(peer: &str, msg: &Message) -> tracing::Span {
    let h = msg.header();
    tracing::debug_span!(
        "request",
        session = msg.session_id().unwrap_or(""),
        peer,
        command = h.command_code,
        application = h.application_id,
        hbh = h.hop_by_hop,
    )
}
