//! Requests in flight (ours and relayed): Hop-by-Hop matching, deadlines, failover with
//! the T bit (RFC 6733 §5.5.4) and locally built error answers.

use super::client::RequestError;
use super::dispatch::RoutingAvps;
use super::handler::{AnswerEdit, AnswerWatch};
use super::{Shared, edit};
use crate::dedup::DupKey;
use crate::routing::RequestInfo;
use bytes::Bytes;
use diameter_codec::dict::base;
use diameter_codec::{
    CommandFlags, ErrorReport, Header, Limits, Message, MessageBuilder, ResultCode,
};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub(super) enum Reply {
    /// A request of ours: the caller awaits this.
    Local(oneshot::Sender<Result<Message, RequestError>>),
    /// A request we relay: the answer goes back to `peer` with its Hop-by-Hop Identifier.
    /// A request a handler forwarded (a proxy) also completes its duplicate-cache entry and
    /// may have its answer edited.
    Relay {
        peer: String,
        hop_by_hop: u32,
        proxy: Option<Box<Proxied>>,
    },
}

/// What a proxied request's answer still owes: its duplicate-cache entry (none for a
/// request forwarded at once) and the handler's edit and look.
pub(super) struct Proxied {
    pub(super) key: Option<DupKey>,
    pub(super) answer_edit: Option<AnswerEdit>,
    pub(super) answer_watch: Option<AnswerWatch>,
}

pub(super) struct Pending {
    pub(super) reply: Reply,
    pub(super) peer: String,
    pub(super) bytes: Bytes,
    pub(super) application_id: u32,
    pub(super) command_code: u32,
    pub(super) sent: Instant,
    pub(super) deadline: Instant,
    /// Where failover may move it: `None` lets the routing table choose; a proxy handler's
    /// own list otherwise (RFC 6733 §5.5.4).
    pub(super) alternates: Option<Vec<String>>,
}

impl Pending {
    /// A request of header `h` about to go to `peer` as `bytes`, answered through `reply`.
    pub(super) fn new(
        reply: Reply,
        peer: String,
        bytes: Bytes,
        h: &Header,
        deadline: Instant,
    ) -> Self {
        Self {
            reply,
            peer,
            bytes,
            application_id: h.application_id,
            command_code: h.command_code,
            sent: Instant::now(),
            deadline,
            alternates: None,
        }
    }
}

impl Pending {
    /// The request's Destination-Host and Destination-Realm, read again from its bytes
    /// (the AVPs of the request it was made from): only failover needs them, so they are
    /// not copied out of every request sent.
    fn destination(&self) -> (Option<String>, Option<String>) {
        // A message we encoded and sent: only its framing is read.
        let limits = Limits {
            max_message_len: 0x00ff_fffc,
            max_depth: usize::MAX,
            max_avps: usize::MAX,
        };
        let Ok(msg) = Message::decode(self.bytes.clone(), &limits) else {
            return (None, None);
        };
        let avps = RoutingAvps::read(&msg);
        (
            avps.destination_host.map(str::to_string),
            avps.destination_realm.map(str::to_string),
        )
    }
}

impl Shared {
    /// Removes and returns the pending requests that match.
    pub(super) fn take_pending(&self, pred: impl Fn(&Pending) -> bool) -> Vec<Pending> {
        let mut pending = self.pending.lock().expect("pending lock");
        let keys: Vec<u32> = pending
            .iter()
            .filter(|(_, p)| pred(p))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| pending.remove(&k))
            .collect()
    }

    /// An error answer built here, as an agent on the path would have sent it.
    pub(super) fn local_error(&self, req: &Message, rc: ResultCode) -> RequestError {
        let h = *req.header();
        let session = req.find(base::SESSION_ID.key()).map(|a| req.slice(a.data));
        // Origin-Host is ours, so no Error-Reporting-Host (RFC 6733 §7.3: only when the
        // reporter differs from the Origin-Host).
        let mut b = MessageBuilder::answer_to_header(&h, session, &self.identity);
        b.flags = b.flags.with(CommandFlags::ERROR, rc.is_protocol_error());
        b.result_code(rc);
        let answer = b.build().unwrap_or_else(|_| {
            Message::from_bytes(
                MessageBuilder::answer_to_header(&h, None, &self.identity).to_bytes(),
            )
            .expect("minimal answer")
        });
        RequestError::Protocol {
            result_code: rc,
            answer,
        }
    }

    /// Registers a pending request and hands it to its peer; failures are answered at once.
    pub(super) fn send_pending(&self, hbh: u32, p: Pending) {
        // The peer's handle taken before the request goes into the map (no copy of its name
        // kept for after).
        let handle = self.peer(&p.peer);
        let bytes = p.bytes.clone();
        {
            let mut pending = self.pending.lock().expect("pending lock");
            if pending.len() >= self.cfg.max_pending {
                drop(pending);
                crate::metrics::too_busy(&self.metrics, crate::metrics::Direction::Sent)
                    .increment(1);
                self.fail(p, ResultCode::DIAMETER_TOO_BUSY);
                return;
            }
            pending.insert(hbh, p);
        }
        let full = match handle.map(|h| h.try_send(bytes)) {
            Some(Ok(())) => return,
            Some(Err(mpsc::error::TrySendError::Full(_))) => true,
            _ => false,
        };
        // Not sent: the peer's name read back from the entry (only on this rare path).
        let Some(peer) = self
            .pending
            .lock()
            .expect("pending lock")
            .get(&hbh)
            .map(|p| p.peer.clone())
        else {
            return;
        };
        if full {
            self.refuse_busy(&peer, hbh);
        } else {
            self.reroute(&peer, hbh);
        }
    }

    /// A request for `peer` met a full queue (the peer task's, or its connection's write
    /// queue over its byte budget): 3004 DIAMETER_TOO_BUSY (RFC 6733 §7.1.3) instead of
    /// buffering.
    pub(crate) fn refuse_busy(&self, peer: &str, hbh: u32) {
        let p = {
            let mut pending = self.pending.lock().expect("pending lock");
            match pending.get(&hbh) {
                Some(p) if p.peer.eq_ignore_ascii_case(peer) => pending.remove(&hbh),
                _ => None,
            }
        };
        if let Some(p) = p {
            crate::metrics::too_busy(&self.metrics, crate::metrics::Direction::Sent).increment(1);
            self.fail(p, ResultCode::DIAMETER_TOO_BUSY);
        }
    }

    /// Ends a pending request with a locally built protocol error.
    pub(super) fn fail(&self, p: Pending, rc: ResultCode) {
        let err = self.error_for_bytes(&p.bytes, rc);
        match err {
            Some(answer) => {
                let r = RequestError::Protocol {
                    result_code: rc,
                    answer: answer.clone(),
                };
                match p.reply {
                    Reply::Local(_) => self.complete(p, Err(r)),
                    Reply::Relay { .. } => self.complete(p, Ok(answer)),
                }
            }
            None => self.complete(p, Err(RequestError::Stopped)),
        }
    }

    pub(super) fn error_for_bytes(&self, req: &Bytes, rc: ResultCode) -> Option<Message> {
        let msg = Message::decode(
            req.clone(),
            &Limits {
                max_message_len: 0x00ff_fffc,
                ..self.cfg.limits
            },
        )
        .ok()?;
        let report = ErrorReport::new(rc);
        let b = MessageBuilder::error_answer(&msg, &self.identity, &report);
        self.bounded(&b).build().ok()
    }

    /// Delivers the outcome of a pending request.
    pub(super) fn complete(&self, p: Pending, outcome: Result<Message, RequestError>) {
        match p.reply {
            Reply::Local(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Relay {
                peer,
                hop_by_hop,
                proxy: None,
            } => {
                if let Ok(answer) = outcome {
                    self.send_answer(&peer, edit::retarget(answer.as_bytes(), hop_by_hop, false));
                }
            }
            Reply::Relay {
                peer,
                hop_by_hop,
                proxy: Some(proxied),
            } => {
                if let Ok(answer) = outcome {
                    if let Some(watch) = proxied.answer_watch {
                        watch(&answer);
                    }
                    let bytes = match proxied.answer_edit {
                        // RFC 6733 §2.8.2: a proxy may change the answer on its way back.
                        Some(edit) => {
                            let mut b = MessageBuilder::from_message(&answer, self.dict);
                            edit(&mut b);
                            b.hop_by_hop = hop_by_hop;
                            b.to_bytes()
                        }
                        None => edit::retarget(answer.as_bytes(), hop_by_hop, false),
                    };
                    let bytes = self.bounded_bytes(bytes);
                    match &proxied.key {
                        Some(key) => self.finish_bytes(&peer, key, bytes),
                        None => self.send_answer(&peer, bytes),
                    }
                }
            }
        }
    }

    /// A request on `peer` could not be sent: try an alternate or fail it.
    pub(crate) fn reroute(&self, peer: &str, hbh: u32) {
        let p = {
            let mut pending = self.pending.lock().expect("pending lock");
            match pending.get(&hbh) {
                Some(p) if p.peer.eq_ignore_ascii_case(peer) => pending.remove(&hbh),
                _ => None,
            }
        };
        if let Some(p) = p {
            self.retry_elsewhere(p);
        }
    }

    /// RFC 6733 §5.5.4 failover: requests pending on a peer that went SUSPECT or DOWN are
    /// sent to an alternate peer with the T bit; requests pinned to it by Destination-Host
    /// get 3002 (faults.md). CER/DWR/DPR never reach this map, so they are never re-sent.
    pub(crate) fn failover(&self, peer: &str) {
        let moved = self.take_pending(|p| p.peer.eq_ignore_ascii_case(peer));
        for p in moved {
            self.retry_elsewhere(p);
        }
    }

    pub(super) fn retry_elsewhere(&self, mut p: Pending) {
        let (dest_host, dest_realm) = p.destination();
        let pinned = dest_host
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&p.peer));
        let info = RequestInfo {
            destination_host: dest_host.as_deref(),
            destination_realm: dest_realm.as_deref(),
            application_id: p.application_id,
            ..Default::default()
        };
        let alt = if pinned {
            None
        } else if let Some(list) = &mut p.alternates {
            // A proxy handler's own alternates, in its order, each tried once.
            let next = list.iter().position(|h| self.is_available(h));
            next.map(|i| list.remove(i))
        } else {
            self.router
                .alternates(&info, &p.peer, |h| self.is_available(h))
        };
        match alt {
            Some(alt) if Instant::now() < p.deadline => {
                tracing::info!(from = %p.peer, to = %alt, "request failed over with the T bit");
                let hbh = self.next_hop_by_hop();
                p.bytes = edit::retarget(&p.bytes, hbh, true);
                p.peer = alt;
                self.send_pending(hbh, p);
            }
            _ => self.fail(p, ResultCode::DIAMETER_UNABLE_TO_DELIVER),
        }
    }

    /// An answer arrived from `peer`: match it by Hop-by-Hop Identifier (RFC 6733 §6.2.1).
    pub(crate) fn on_answer(&self, peer: &str, msg: Message) {
        let hbh = msg.header().hop_by_hop;
        let p = {
            let mut pending = self.pending.lock().expect("pending lock");
            match pending.get(&hbh) {
                // Only the peer the request went to may answer it: a late answer from a
                // peer we failed over from is stale (faults.md, half-open).
                Some(p)
                    if p.peer.eq_ignore_ascii_case(peer)
                        && p.command_code == msg.header().command_code =>
                {
                    pending.remove(&hbh)
                }
                _ => None,
            }
        };
        match p {
            Some(p) => {
                crate::metrics::record_request_duration(
                    &self.metrics,
                    p.application_id,
                    p.command_code,
                    p.sent.elapsed(),
                );
                let rc = msg.get(base::RESULT_CODE).and_then(Result::ok).unwrap_or(0);
                crate::metrics::record_answer(
                    &self.metrics,
                    crate::metrics::Direction::Received,
                    p.application_id,
                    p.command_code,
                    rc,
                );
                self.complete(p, Ok(msg));
            }
            None => {
                // RFC 6733 §3: answers with an unknown Hop-by-Hop Identifier are discarded.
                let label = match self.peer(peer) {
                    Some(h) if h.configured => peer,
                    _ => crate::metrics::UNCONFIGURED,
                };
                crate::metrics::record_unknown_answer(&self.metrics, label);
                tracing::debug!(
                    peer,
                    hbh,
                    "answer with unknown Hop-by-Hop Identifier discarded"
                );
            }
        }
    }

    /// Relayed requests whose deadline passed get 3002; local ones time out in `request`.
    pub(super) fn sweep(&self) {
        let now = Instant::now();
        let expired = self.take_pending(|p| p.deadline <= now);
        for p in expired {
            match p.reply {
                Reply::Local(_) => {
                    let asked = p.deadline.saturating_duration_since(p.sent);
                    self.complete(p, Err(RequestError::Timeout(asked)))
                }
                Reply::Relay { .. } => self.fail(p, ResultCode::DIAMETER_UNABLE_TO_DELIVER),
            }
        }
        crate::metrics::pending_requests(&self.metrics, "all")
            .set(self.pending.lock().expect("pending lock").len() as f64);
    }
}

pub(super) async fn sweep_loop(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        match shared.upgrade() {
            Some(s) if !s.stopped.load(Ordering::Acquire) => s.sweep(),
            _ => break,
        }
    }
}
