//! No message larger than a peer accepts (issue 9). The node takes frames up to
//! `Limits::max_message_len` and assumes its peers take no more, so it never sends more
//! either: an answer that would be larger goes out as a small 5012 DIAMETER_UNABLE_TO_COMPLY
//! instead, and a request that would be relayed larger is answered so. Proxy-Info, which
//! every answer copies (RFC 6733 §6.2), is bounded on receipt ([`MAX_PROXY_INFO`]). A frame
//! above the limit that arrives anyway is skipped, not fatal to its connection (see
//! [`crate::framing`]): a request gets 5012, and the request an answer belongs to fails with
//! 5012, so one oversize message does not take down a connection carrying others' traffic.
//!
//! 5012 because RFC 6733 §7.1.5 has no code for "too large to send": DIAMETER_UNABLE_TO_COMPLY
//! "is used when a request is rejected for unspecified reasons"; the Error-Message says why.

use super::conn::ConnHandle;
use super::{MAX_PROXY_INFO, Shared};
use bytes::Bytes;
use diameter_codec::dict::base;
use diameter_codec::{
    AvpFlags, AvpIter, AvpValue, ErrorReport, Header, Limits, Message, MessageBuilder, OwnedAvp,
    ResultCode,
};
use std::borrow::Cow;

impl Shared {
    /// The largest message we send: the limit we hold peers to, assumed to be theirs too
    /// (RFC 6733 negotiates none).
    pub(super) fn max_send_len(&self) -> usize {
        self.cfg.limits.max_message_len as usize
    }

    /// `answer`, or when it would encode above [`Self::max_send_len`], a small 5012 answer to
    /// the same request in its place (same command, identifiers and Session-Id).
    pub(super) fn bounded<'a>(&self, answer: &'a MessageBuilder) -> Cow<'a, MessageBuilder> {
        let len = answer.encoded_len();
        if len <= self.max_send_len() {
            return Cow::Borrowed(answer);
        }
        Cow::Owned(self.too_large(answer, len))
    }

    /// The small 5012 sent in place of `answer`, whose encoding takes `len` bytes.
    pub(super) fn too_large(&self, answer: &MessageBuilder, len: usize) -> MessageBuilder {
        tracing::warn!(
            command = answer.command_code,
            len,
            max = self.max_send_len(),
            "answer larger than peers accept replaced by 5012"
        );
        let mut small = MessageBuilder {
            flags: answer.flags,
            command_code: answer.command_code,
            application_id: answer.application_id,
            hop_by_hop: answer.hop_by_hop,
            end_to_end: answer.end_to_end,
            avps: Vec::with_capacity(5),
        };
        // Session-Id first (RFC 6733 §8.8), then our identity, as in every answer.
        for key in [
            base::SESSION_ID.key(),
            base::ORIGIN_HOST.key(),
            base::ORIGIN_REALM.key(),
        ] {
            if let Some(a) = answer.find(key) {
                small.push(a.clone());
            }
        }
        let mut report = ErrorReport::new(ResultCode::DIAMETER_UNABLE_TO_COMPLY);
        report.message = Some(format!(
            "answer of {len} bytes exceeds the {} accepted",
            self.max_send_len()
        ));
        small.flags = small.flags.with(diameter_codec::CommandFlags::ERROR, false);
        small.result_code(report.result_code);
        small.push(base::ERROR_MESSAGE.with(report.message.unwrap_or_default()));
        small
    }

    /// An encoded answer of the peer state machine (CEA, DWA, DPA, their error answers) or
    /// the acceptor, bounded as [`Self::bounded`]: those copy Failed-AVP and Proxy-Info
    /// from what a peer sent, as any answer does.
    pub(super) fn bounded_bytes(&self, bytes: Bytes) -> Bytes {
        if bytes.len() <= self.max_send_len() {
            return bytes;
        }
        let Ok(msg) = Message::decode(
            bytes.clone(),
            &Limits {
                max_message_len: u32::MAX,
                max_avps: usize::MAX,
                ..self.cfg.limits
            },
        ) else {
            return bytes;
        };
        let h = msg.header();
        if h.is_request() {
            return bytes;
        }
        let mut b = MessageBuilder {
            flags: h.flags,
            command_code: h.command_code,
            application_id: h.application_id,
            hop_by_hop: h.hop_by_hop,
            end_to_end: h.end_to_end,
            avps: Vec::new(),
        };
        for key in [
            base::SESSION_ID.key(),
            base::ORIGIN_HOST.key(),
            base::ORIGIN_REALM.key(),
        ] {
            if let Some(a) = msg.find(key) {
                b.push(OwnedAvp::verbatim(&msg, &a));
            }
        }
        self.too_large(&b, bytes.len()).to_bytes()
    }

    /// RFC 6733 §6.7.3 lets each proxy on the path add one Proxy-Info, and every answer
    /// copies them all (§6.2), so a request carrying more than [`MAX_PROXY_INFO`] of them,
    /// top-level or nested in one another, is refused with a 5012 that copies none. Our
    /// policy, not the RFC's: it bounds what a request can make us send back. Returns
    /// whether the request was refused (and answered).
    pub(super) fn refuse_proxy_info(&self, peer: &str, msg: &Message) -> bool {
        let mut left = MAX_PROXY_INFO;
        if proxy_infos_within(msg.avps(), &mut left) {
            return false;
        }
        let mut b = MessageBuilder::answer_to(msg, &self.identity);
        b.result_code(ResultCode::DIAMETER_UNABLE_TO_COMPLY);
        b.push(base::ERROR_MESSAGE.with(format!("more than {MAX_PROXY_INFO} Proxy-Info AVPs")));
        // RFC 6733 §7.5: the offending AVP, with an empty payload (Grouped's minimum).
        b.push(OwnedAvp::new(
            base::FAILED_AVP.code(),
            0,
            AvpFlags::MANDATORY,
            AvpValue::Grouped(vec![OwnedAvp::new(
                base::PROXY_INFO.code(),
                0,
                AvpFlags::MANDATORY,
                AvpValue::Grouped(Vec::new()),
            )]),
        ));
        self.record_sent_answer(msg, ResultCode::DIAMETER_UNABLE_TO_COMPLY);
        self.send_answer(peer, b.to_bytes());
        true
    }

    /// A request that would be relayed above the size limit (the Route-Record we append
    /// can push it over): answered 5012 instead of sent.
    pub(super) fn refuse_relay_too_large(&self, peer: &str, msg: &Message, len: usize) {
        let mut report = ErrorReport::new(ResultCode::DIAMETER_UNABLE_TO_COMPLY);
        report.message = Some(format!(
            "request of {len} bytes exceeds the {} accepted",
            self.max_send_len()
        ));
        let b = MessageBuilder::error_answer(msg, &self.identity, &report);
        self.record_sent_answer(msg, report.result_code);
        self.send_answer(peer, self.bounded(&b).to_bytes());
    }

    fn record_sent_answer(&self, req: &Message, rc: ResultCode) {
        crate::metrics::record_answer(
            &self.metrics,
            crate::metrics::Direction::Sent,
            req.header().application_id,
            req.header().command_code,
            rc.0,
        );
    }

    /// A frame above the limit arrived from `peer` and is being skipped: a request is
    /// answered 5012 on the same connection; an answer fails the request it matches with
    /// 5012 (to our caller, or as the answer to the peer we relayed for).
    pub(crate) fn on_oversize(&self, peer: &str, header: &Header, writer: &ConnHandle) {
        tracing::warn!(
            peer,
            len = header.length,
            command = header.command_code,
            request = header.is_request(),
            "message above the size limit skipped"
        );
        if header.is_request() {
            let mut report = ErrorReport::new(ResultCode::DIAMETER_UNABLE_TO_COMPLY);
            report.message = Some(format!(
                "message of {} bytes exceeds the {} accepted",
                header.length,
                self.max_send_len()
            ));
            let b = MessageBuilder::error_answer_to_header(header, &self.identity, &report);
            let _ = writer.send(b.to_bytes());
            return;
        }
        let hbh = header.hop_by_hop;
        let p = {
            let mut pending = self.pending.lock().expect("pending lock");
            match pending.get(&hbh) {
                Some(p)
                    if p.peer.eq_ignore_ascii_case(peer)
                        && p.command_code == header.command_code =>
                {
                    pending.remove(&hbh)
                }
                _ => None,
            }
        };
        if let Some(p) = p {
            self.fail(p, ResultCode::DIAMETER_UNABLE_TO_COMPLY);
        }
    }
}

/// Whether `avps` hold at most `left` Proxy-Info AVPs, counting those nested in Proxy-Info;
/// stops at the first one over, so a deep nesting costs no more than `left` levels.
fn proxy_infos_within(avps: AvpIter<'_>, left: &mut usize) -> bool {
    for pi in avps.flatten().filter(|a| a.key() == base::PROXY_INFO.key()) {
        if *left == 0 {
            return false;
        }
        *left -= 1;
        if !proxy_infos_within(pi.children(), left) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> OwnedAvp {
        let mut pi = base::PROXY_INFO.with(vec![
            base::PROXY_HOST.with("p.example"),
            base::PROXY_STATE.with(&b"s"[..]),
        ]);
        for _ in 1..depth {
            pi = base::PROXY_INFO.with(vec![base::PROXY_HOST.with("p.example"), pi]);
        }
        pi
    }

    fn within(avps: Vec<OwnedAvp>) -> bool {
        let mut b = MessageBuilder::request(272, 4, true);
        for a in avps {
            b.push(a);
        }
        let m = b.build().unwrap();
        let mut left = MAX_PROXY_INFO;
        proxy_infos_within(m.avps(), &mut left)
    }

    #[test]
    fn proxy_info_bound_counts_top_level_and_nested() {
        assert!(within(vec![]));
        assert!(within(vec![nested(1); MAX_PROXY_INFO]));
        assert!(!within(vec![nested(1); MAX_PROXY_INFO + 1]));
        assert!(within(vec![nested(MAX_PROXY_INFO)]));
        assert!(!within(vec![nested(MAX_PROXY_INFO + 1)]));
        assert!(!within(vec![nested(8), nested(9)]));
        assert!(!within(vec![nested(200)]));
    }
}
