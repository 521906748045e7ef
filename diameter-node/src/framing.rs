//! Diameter framing over a byte stream (TCP, TLS): a [`tokio_util::codec`] decoder and
//! encoder, and a read helper with a per-frame deadline.
//!
//! # Policy for bad frame headers (bad-inputs 1–6)
//!
//! RFC 6733 §3 fixes the first four bytes of every message: "Version: This Version field MUST
//! be set to 1" and "Message Length: … the length of the Diameter message including the header
//! fields and the padded AVPs. Thus, this field is always a multiple of 4." On a stream the
//! Message Length is the only thing that delimits frames, so a header that breaks either rule
//! leaves no safe way to find the next message. The decoder therefore checks the version and
//! the length **from the first four bytes, before it reserves any space** (through
//! [`diameter_codec::frame_length`]), and fails with [`FramingError::Frame`]:
//!
//! | input | error | what the driver does |
//! |---|---|---|
//! | Version ≠ 1 (0, 2, 0xFF) | [`FrameError::UnsupportedVersion`] | close the connection |
//! | Length < 20 (0, 1, 3, 4, 19) | [`FrameError::InvalidLength`] | close |
//! | Length not a multiple of 4 (21, 22, 23) | [`FrameError::InvalidLength`] | close |
//! | Length > `Limits::max_message_len` (65 536, 0xFFFFFC), header otherwise valid | [`Inbound::Oversize`] | answer a request 5012, fail the request an answer matches; the body is discarded as it arrives, never buffered |
//! | Length announced, bytes never come | [`FramingError::ReadTimeout`] from [`read_frame`] | close |
//! | EOF in the middle of a frame | [`FramingError::TruncatedAtEof`] | close |
//!
//! An oversize frame is delimited (its length is valid, only larger than we take), so it is
//! skipped rather than closing the connection: one peer's oversize answer to a relayed
//! request must not take down a connection that carries others' traffic (issue 9). Its
//! body still has to arrive within the frame deadline, and nothing of it is kept.
//!
//! For the others we close rather than answer 5011/5015 (which bad-inputs 1/3 allow when the
//! header is "otherwise readable"): the frame boundary is unknown, any answer would be built
//! from bytes that may belong to another message, and freeDiameter makes the same choice. The
//! codec's
//! [`FrameError::result_code`] is still available for logging and metrics.
//!
//! A frame whose header is valid but whose top-level AVPs do not frame (bad-inputs 9–10)
//! is **not** a stream error: the frame boundary is known, so the decoder yields
//! [`Inbound::Malformed`] with the header and the codec's [`DecodeError`], and the driver
//! answers a request with [`malformed_answer`] (5014 or 5012 with Failed-AVP, Session-Id and
//! Proxy-Info as RFC 6733 §7.1.5 and §6.2 want), then carries on reading.
//!
//! Errors other than [`FramingError::Io`] are returned once; `tokio_util`'s `FramedRead`
//! ends the stream after a decoder error, which is what "close" needs.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use diameter_codec::{
    CommandFlags, DecodeError, FrameError, HEADER_LEN, Header, Limits, Message, MessageBuilder,
    frame_length,
};
use futures::Stream;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead};

/// One frame read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A message whose header and top-level AVPs frame correctly (grammar validation is a
    /// later, separate step).
    Message(Message),
    /// A correctly delimited frame whose AVPs do not frame (RFC 6733 §7.1.5, e.g.
    /// DIAMETER_INVALID_AVP_LENGTH). The stream is still in sync: answer a request with
    /// `error.result_code()` and keep the connection.
    Malformed {
        /// The frame's header (its length matched the bytes delimited).
        header: Header,
        /// The whole frame as received.
        bytes: Bytes,
        /// What the codec refused.
        error: DecodeError,
    },
    /// A frame longer than [`Limits::max_message_len`] with an otherwise valid header. Its
    /// body is discarded as it arrives (never buffered), so the stream stays in sync.
    Oversize {
        /// The frame's header.
        header: Header,
    },
}

/// Why the stream cannot be read or written any more. Every variant means: close the
/// connection (RFC 6733 §5.6.4 / §2.1: a transport failure takes the peer to Closed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The first four bytes of a frame are not a valid Diameter header (version ≠ 1, length
    /// below 20, not a multiple of 4, or above the limit). See the module documentation.
    #[error("invalid frame header from peer: {0}")]
    Frame(FrameError),
    /// The peer closed the stream in the middle of a frame.
    #[error(
        "connection closed in the middle of a frame ({buffered} bytes of {announced:?} buffered)"
    )]
    TruncatedAtEof {
        /// Bytes buffered when the stream ended.
        buffered: usize,
        /// The frame length announced, when four bytes had arrived.
        announced: Option<usize>,
    },
    /// A frame was started but not completed within the read deadline (bad-inputs 5).
    #[error("frame not completed within {0:?}")]
    ReadTimeout(Duration),
    /// We were asked to send bytes that are not one well-formed Diameter frame (a local bug).
    #[error("refusing to send an invalid frame: {0}")]
    InvalidOutgoing(FrameError),
    /// The underlying transport failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl FramingError {
    /// The codec's frame error, when the peer sent a bad header.
    pub fn frame_error(&self) -> Option<FrameError> {
        match self {
            Self::Frame(e) => Some(*e),
            _ => None,
        }
    }

    /// True when the peer, not the transport or this node, is at fault.
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            Self::Frame(_) | Self::TruncatedAtEof { .. } | Self::ReadTimeout(_)
        )
    }
}

/// Decoder and encoder of Diameter frames for `tokio_util::codec::{Framed, FramedRead,
/// FramedWrite}`.
///
/// Decoding splits each frame off the read buffer without copying (`BytesMut::split_to` +
/// `freeze`); the [`Message`] shares the buffer's allocation.
#[derive(Debug, Clone)]
pub struct DiameterCodec {
    limits: Limits,
    /// When the frame now being buffered started to arrive (for [`read_frame`]).
    partial_since: Option<Instant>,
    /// Bytes of an oversize frame still to discard.
    skip: usize,
}

impl Default for DiameterCodec {
    fn default() -> Self {
        Self::new(Limits::DEFAULT)
    }
}

impl DiameterCodec {
    /// A codec that enforces `limits` (the maximum Message Length is checked before any
    /// buffering).
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            partial_since: None,
            skip: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// When the first bytes of the frame now being buffered were seen by the decoder, if a
    /// frame is incomplete. Uses `tokio::time::Instant`, so paused test clocks apply.
    pub fn partial_since(&self) -> Option<Instant> {
        self.partial_since
    }
}

impl Decoder for DiameterCodec {
    type Item = Inbound;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, FramingError> {
        if self.skip > 0 && !self.discard(src) {
            return Ok(None);
        }
        // RFC 6733 §3: version and Message Length are checked from the first 4 bytes, before
        // anything is reserved, so an announced 16 MiB costs nothing (bad-inputs 4).
        let len = match frame_length(src, self.limits.max_message_len) {
            Ok(len) => len,
            Err(FrameError::TooLong { length, .. }) => return Ok(self.oversize(src, length)),
            Err(e) => return Err(FramingError::Frame(e)),
        };
        let Some(len) = len else {
            self.mark_partial(src);
            return Ok(None);
        };
        if src.len() < len {
            // Bounded by `max_message_len`: reserve once for the rest of this frame.
            src.reserve(len - src.len());
            self.mark_partial(src);
            return Ok(None);
        }
        let frame = src.split_to(len).freeze();
        // Any bytes left over are marked when a later call finds them incomplete, which
        // keeps the clock read off the path of back-to-back complete frames.
        self.partial_since = None;
        Ok(Some(match Message::decode(frame.clone(), &self.limits) {
            Ok(m) => Inbound::Message(m),
            Err(error) => match error.header() {
                Some(h) => Inbound::Malformed {
                    header: *h,
                    bytes: frame,
                    error,
                },
                // `frame_length` accepted the header and the buffer is exactly `len` long,
                // so only an AVP error is possible; be safe anyway.
                None => {
                    return Err(match error {
                        DecodeError::Frame(f) => FramingError::Frame(f),
                        _ => FramingError::Frame(FrameError::TruncatedHeader(len)),
                    });
                }
            },
        }))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, FramingError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() && self.skip == 0 => Ok(None),
            None => Err(FramingError::TruncatedAtEof {
                buffered: buf.len(),
                announced: frame_length(buf, self.limits.max_message_len)
                    .ok()
                    .flatten(),
            }),
        }
    }
}

impl DiameterCodec {
    /// Discards what is buffered of the oversize frame being skipped; true once it is all
    /// gone. The frame deadline keeps running meanwhile.
    fn discard(&mut self, src: &mut BytesMut) -> bool {
        let n = self.skip.min(src.len());
        src.advance(n);
        self.skip -= n;
        if self.skip > 0 {
            self.partial_since.get_or_insert_with(Instant::now);
            return false;
        }
        self.partial_since = None;
        true
    }

    /// A frame announcing `length` > the limit: once its header is here, report it and
    /// start discarding it.
    fn oversize(&mut self, src: &mut BytesMut, length: u32) -> Option<Inbound> {
        let Ok(header) = Header::parse(src, u32::MAX) else {
            // Not all 20 bytes yet.
            self.mark_partial(src);
            return None;
        };
        self.skip = length as usize;
        self.discard(src);
        Some(Inbound::Oversize { header })
    }

    fn mark_partial(&mut self, src: &BytesMut) {
        if src.is_empty() {
            self.partial_since = None;
        } else if self.partial_since.is_none() {
            self.partial_since = Some(Instant::now());
        }
    }
}

/// Checks that `bytes` is exactly one frame acceptable under `max_len`.
fn check_outgoing(bytes: &[u8], max_len: u32) -> Result<(), FramingError> {
    match frame_length(bytes, max_len) {
        Ok(Some(n)) if n == bytes.len() => Ok(()),
        Ok(Some(n)) => Err(FramingError::InvalidOutgoing(FrameError::LengthMismatch {
            announced: n as u32,
            actual: bytes.len(),
        })),
        Ok(None) => Err(FramingError::InvalidOutgoing(FrameError::TruncatedHeader(
            bytes.len(),
        ))),
        Err(e) => Err(FramingError::InvalidOutgoing(e)),
    }
}

/// Outgoing limit: a peer may accept larger messages than we do, so only the protocol's
/// own bound (24-bit length) applies when sending.
const MAX_OUTGOING: u32 = 0x00ff_fffc;

impl Encoder<Bytes> for DiameterCodec {
    type Error = FramingError;

    /// Appends an already encoded frame (checked to be one whole frame).
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FramingError> {
        check_outgoing(&item, MAX_OUTGOING)?;
        dst.extend_from_slice(&item);
        Ok(())
    }
}

impl Encoder<Message> for DiameterCodec {
    type Error = FramingError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), FramingError> {
        // A decoded Message is a frame by construction.
        dst.extend_from_slice(item.as_bytes());
        Ok(())
    }
}

impl Encoder<&Message> for DiameterCodec {
    type Error = FramingError;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), FramingError> {
        dst.extend_from_slice(item.as_bytes());
        Ok(())
    }
}

impl Encoder<&MessageBuilder> for DiameterCodec {
    type Error = FramingError;

    /// Encodes straight into the write buffer (no intermediate allocation).
    fn encode(&mut self, item: &MessageBuilder, dst: &mut BytesMut) -> Result<(), FramingError> {
        let len = item.encoded_len();
        if len > MAX_OUTGOING as usize {
            return Err(FramingError::InvalidOutgoing(FrameError::TooLong {
                length: u32::try_from(len).unwrap_or(u32::MAX),
                max: MAX_OUTGOING,
            }));
        }
        debug_assert!(len >= HEADER_LEN);
        item.encode(dst);
        Ok(())
    }
}

/// The answer to a request whose AVPs do not frame ([`Inbound::Malformed`]), as RFC 6733
/// wants it: Result-Code with the E bit (§7.1.5: 5014 DIAMETER_INVALID_AVP_LENGTH, or 5012
/// for too many or too deep AVPs), a Failed-AVP with the offending AVP's header and a zero
/// payload of its type's minimum length (§7.1.5: "it is sufficient to include the offending
/// AVP header and a zero filled payload"), and, from the AVPs that framed before the bad
/// one, the Session-Id (§6.2: answers carry the request's Session-Id) and the Proxy-Info
/// AVPs (§6.2, at most [`MAX_PROXY_INFO`](crate::node::MAX_PROXY_INFO)).
pub fn malformed_answer(
    header: &Header,
    bytes: &Bytes,
    error: &DecodeError,
    me: &diameter_codec::LocalIdentity,
    dict: &diameter_codec::Dictionary,
) -> MessageBuilder {
    use diameter_codec::{AvpIter, AvpValue, ErrorReport, OwnedAvp};
    const SESSION_ID: u32 = 263;
    const PROXY_INFO: u32 = 284;
    let framed = || {
        AvpIter::with_base(bytes.get(HEADER_LEN..).unwrap_or_default(), HEADER_LEN)
            .map_while(Result::ok)
            .filter(|a| a.vendor == 0)
    };
    let session = framed()
        .find(|a| a.code == SESSION_ID && std::str::from_utf8(a.data).is_ok())
        .map(|a| bytes.slice_ref(a.data));
    let mut report = error
        .error_report(dict)
        .unwrap_or_else(|| ErrorReport::new(error.result_code()));
    report.message = Some(error.to_string());
    let mut b = MessageBuilder::answer_to_header(header, session, me);
    b.flags = b
        .flags
        .with(CommandFlags::ERROR, report.result_code.is_protocol_error());
    b.result_code(report.result_code);
    if let Some(m) = report.message {
        b.push(OwnedAvp::new(281, 0, 0, AvpValue::Bytes(m.into()))); // Error-Message
    }
    if let Some(f) = report.failed_avp {
        b.push(OwnedAvp::new(279, 0, 0x40, AvpValue::Grouped(vec![f]))); // Failed-AVP
    }
    for a in framed()
        .filter(|a| a.code == PROXY_INFO)
        .take(crate::node::MAX_PROXY_INFO)
    {
        let end = (a.offset + ((a.raw.len() + 3) & !3)).min(bytes.len());
        b.push(OwnedAvp::new(
            PROXY_INFO,
            0,
            a.flags.0,
            AvpValue::Verbatim(bytes.slice(a.offset..end)),
        ));
    }
    b
}

/// A framed stream that [`read_frame`] can read with a deadline: `Framed` and `FramedRead`
/// over [`DiameterCodec`].
pub trait FrameSource: Stream<Item = Result<Inbound, FramingError>> + Unpin {
    /// The codec, to learn whether a frame is half-read.
    fn diameter_codec(&self) -> &DiameterCodec;
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> FrameSource
    for Framed<T, DiameterCodec>
{
    fn diameter_codec(&self) -> &DiameterCodec {
        self.codec()
    }
}

impl<T: tokio::io::AsyncRead + Unpin> FrameSource for FramedRead<T, DiameterCodec> {
    fn diameter_codec(&self) -> &DiameterCodec {
        self.decoder()
    }
}

/// Reads the next frame. `Ok(None)` is a clean end of stream (EOF between frames).
///
/// `frame_deadline` bounds how long a *started* frame may take to complete, counted from its
/// first byte (bad-inputs 5: "Message Length larger than bytes actually sent, then idle →
/// per-connection read deadline; no memory held forever"). An idle connection with nothing
/// buffered never times out here: that is the watchdog's job (RFC 3539, DWR/DWA). The
/// start time lives in the codec, so cancelling and re-calling this function (as a driver's
/// `select!` loop does) does not reset it.
pub async fn read_frame<S: FrameSource>(
    framed: &mut S,
    frame_deadline: Duration,
) -> Result<Option<Inbound>, FramingError> {
    let mut sleep: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(item) = Pin::new(&mut *framed).poll_next(cx) {
            return Poll::Ready(item.transpose());
        }
        // Pending: the decoder has seen every byte read so far.
        let Some(since) = framed.diameter_codec().partial_since() else {
            sleep = None;
            return Poll::Pending;
        };
        let deadline = since + frame_deadline;
        match &mut sleep {
            Some(s) if s.deadline() == deadline => {}
            _ => sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        match sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(FramingError::ReadTimeout(frame_deadline))),
            _ => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use diameter_codec::dict::base;
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;

    fn msg(hbh: u32) -> Bytes {
        MessageBuilder::request(280, 0, false)
            .ids(hbh, hbh)
            .with(base::ORIGIN_HOST.with("a.example"))
            .with(base::ORIGIN_REALM.with("example"))
            .to_bytes()
    }

    fn expect_msg(item: Option<Inbound>) -> Message {
        match item {
            Some(Inbound::Message(m)) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn header(version: u8, len: u32) -> Vec<u8> {
        let mut h = vec![
            version,
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            0x80,
            0,
            1,
            24,
        ];
        h.resize(20, 0);
        h
    }

    #[test]
    fn two_messages_in_one_buffer() {
        let (a, b) = (msg(1), msg(2));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
        let mut c = DiameterCodec::default();
        let m1 = expect_msg(c.decode(&mut buf).unwrap());
        let m2 = expect_msg(c.decode(&mut buf).unwrap());
        assert_eq!(m1.as_bytes(), &a);
        assert_eq!(m2.header().hop_by_hop, 2);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(c.decode_eof(&mut buf).unwrap().is_none());
        assert!(c.partial_since().is_none());
    }

    #[tokio::test]
    async fn one_message_in_one_byte_chunks() {
        let a = msg(7);
        let mut c = DiameterCodec::default();
        let mut buf = BytesMut::new();
        for (i, b) in a.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let out = c.decode(&mut buf).unwrap();
            if i + 1 < a.len() {
                assert!(out.is_none(), "frame yielded early at byte {i}");
                assert!(c.partial_since().is_some());
            } else {
                assert_eq!(expect_msg(out).as_bytes(), &a);
            }
        }
        assert!(buf.is_empty());
        assert!(c.partial_since().is_none());
    }

    #[tokio::test]
    async fn header_split_at_every_offset() {
        let a = msg(9);
        for split in 0..HEADER_LEN {
            let mut c = DiameterCodec::default();
            let mut buf = BytesMut::from(&a[..split]);
            assert!(c.decode(&mut buf).unwrap().is_none(), "split {split}");
            buf.extend_from_slice(&a[split..]);
            assert_eq!(
                expect_msg(c.decode(&mut buf).unwrap()).as_bytes(),
                &a,
                "split {split}"
            );
        }
    }

    #[test]
    fn bad_lengths_are_rejected_from_four_bytes() {
        for len in [0u32, 1, 3, 4, 19, 21, 22, 23] {
            let mut c = DiameterCodec::default();
            // Only the first 4 bytes: the check must not wait for the rest.
            let mut buf = BytesMut::from(&header(1, len)[..4]);
            match c.decode(&mut buf) {
                Err(FramingError::Frame(FrameError::InvalidLength(l))) => assert_eq!(l, len),
                other => panic!("length {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_lengths_never_allocate() {
        for len in [65_536u32, 1_048_577, 0x00ff_fffc, 0x00ff_ffff] {
            let mut c = DiameterCodec::default();
            let mut buf = BytesMut::from(&header(1, len)[..]);
            let cap = buf.capacity();
            match c.decode(&mut buf) {
                // A valid length above the limit: reported, then skipped as it arrives.
                Ok(Some(Inbound::Oversize { header })) => {
                    assert_eq!(header.length, len);
                    assert_eq!(len % 4, 0);
                    assert!(buf.is_empty());
                    assert_eq!(c.skip, len as usize - 20);
                }
                Err(err) => {
                    assert!(
                        matches!(err.frame_error(), Some(FrameError::InvalidLength(_))),
                        "length {len}: {err:?}"
                    );
                    assert!(err.is_protocol_violation());
                }
                other => panic!("length {len}: {other:?}"),
            }
            // Skipped bytes leave the buffer (its capacity shrinks with them); none grew.
            assert!(
                buf.capacity() <= cap,
                "length {len}: the decoder reserved space"
            );
        }
    }

    #[test]
    fn oversize_frame_is_skipped_and_the_next_one_read() {
        let mut c = DiameterCodec::new(Limits {
            max_message_len: 64,
            ..Limits::DEFAULT
        });
        let mut big = MessageBuilder::request(272, 4, true).ids(9, 9);
        big.push(base::SESSION_ID.with("x".repeat(100)));
        let (big, next) = (big.to_bytes(), msg(10));
        let mut buf = BytesMut::new();
        // The oversize frame in pieces, the next message behind it.
        buf.extend_from_slice(&big[..10]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&big[10..50]);
        let Some(Inbound::Oversize { header }) = c.decode(&mut buf).unwrap() else {
            panic!("oversize frame not reported")
        };
        assert_eq!((header.hop_by_hop, header.length as usize), (9, big.len()));
        assert!(c.partial_since().is_some(), "the frame deadline runs");
        buf.extend_from_slice(&big[50..]);
        buf.extend_from_slice(&next);
        assert_eq!(expect_msg(c.decode(&mut buf).unwrap()).as_bytes(), &next);
        assert!(c.partial_since().is_none());
        assert!(c.decode_eof(&mut buf).unwrap().is_none());
        // EOF in the middle of a skipped frame is a truncation.
        buf.extend_from_slice(&big[..30]);
        assert!(matches!(
            c.decode(&mut buf),
            Ok(Some(Inbound::Oversize { .. }))
        ));
        assert!(matches!(
            c.decode_eof(&mut buf),
            Err(FramingError::TruncatedAtEof { .. })
        ));
    }

    #[test]
    fn bad_versions_are_rejected() {
        for v in [0u8, 2, 0xFF] {
            let mut c = DiameterCodec::default();
            let mut buf = BytesMut::from(&header(v, 20)[..4]);
            assert!(matches!(
                c.decode(&mut buf),
                Err(FramingError::Frame(FrameError::UnsupportedVersion(x))) if x == v
            ));
        }
    }

    #[test]
    fn valid_length_reserves_only_the_frame() {
        let mut c = DiameterCodec::default();
        let mut buf = BytesMut::from(&header(1, 1024)[..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() >= 1024);
        assert!(buf.capacity() <= 4096);
    }

    #[test]
    fn malformed_avps_keep_the_stream_in_sync() {
        // Header OK (length 28) but the AVP claims 0 bytes: 5014, stream stays in sync.
        let mut bad = header(1, 28);
        bad.extend_from_slice(&[0, 0, 1, 8, 0x40, 0, 0, 0]);
        let good = msg(3);
        let mut buf = BytesMut::from(&bad[..]);
        buf.extend_from_slice(&good);
        let mut c = DiameterCodec::default();
        match c.decode(&mut buf).unwrap() {
            Some(Inbound::Malformed {
                header,
                bytes,
                error,
            }) => {
                assert_eq!(header.length, 28);
                assert_eq!(bytes.len(), 28);
                assert_eq!(error.result_code().0, 5014);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(expect_msg(c.decode(&mut buf).unwrap()).as_bytes(), &good);
    }

    #[test]
    fn eof_mid_frame_is_an_error() {
        let a = msg(1);
        let mut c = DiameterCodec::default();
        let mut buf = BytesMut::from(&a[..a.len() - 4]);
        match c.decode_eof(&mut buf) {
            Err(FramingError::TruncatedAtEof {
                buffered,
                announced,
            }) => {
                assert_eq!(buffered, a.len() - 4);
                assert_eq!(announced, Some(a.len()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hundred_thousand_minimal_messages_back_to_back() {
        // bad-inputs 8: 10^5 header-only messages in one buffer; O(1) work per frame.
        let one = MessageBuilder::request(280, 0, false).ids(1, 1).to_bytes();
        assert_eq!(one.len(), HEADER_LEN);
        let mut buf = BytesMut::with_capacity(100_000 * HEADER_LEN);
        for _ in 0..100_000 {
            buf.extend_from_slice(&one);
        }
        let mut c = DiameterCodec::default();
        let mut n = 0;
        while let Some(item) = c.decode(&mut buf).unwrap() {
            assert!(matches!(item, Inbound::Message(_)));
            n += 1;
        }
        assert_eq!(n, 100_000);
        assert!(buf.is_empty());
        assert!(c.partial_since().is_none());
    }

    #[test]
    fn encoder_checks_outgoing_frames() {
        let mut c = DiameterCodec::default();
        let mut dst = BytesMut::new();
        let a = msg(1);
        c.encode(a.clone(), &mut dst).unwrap();
        c.encode(&Message::from_bytes(a.clone()).unwrap(), &mut dst)
            .unwrap();
        let b = MessageBuilder::request(280, 0, false).ids(5, 5);
        c.encode(&b, &mut dst).unwrap();
        assert_eq!(dst.len(), 2 * a.len() + 20);
        assert!(c.encode(a.slice(..a.len() - 4), &mut dst).is_err());
        assert!(
            c.encode(Bytes::from_static(&[2, 0, 0, 20]), &mut dst)
                .is_err()
        );
        // What we encoded decodes back.
        let mut d = DiameterCodec::default();
        for hbh in [1, 1, 5] {
            assert_eq!(
                expect_msg(d.decode(&mut dst).unwrap()).header().hop_by_hop,
                hbh
            );
        }
    }

    #[tokio::test]
    async fn framed_over_a_stream_in_small_writes() {
        let (client, server) = tokio::io::duplex(64);
        let mut reader = FramedRead::new(server, DiameterCodec::default());
        let frames: Vec<Bytes> = (0..50).map(msg).collect();
        let expect = frames.clone();
        let writer = tokio::spawn(async move {
            let mut client = client;
            let all: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
            for chunk in all.chunks(7) {
                client.write_all(chunk).await.unwrap();
            }
        });
        for e in &expect {
            let m = expect_msg(
                read_frame(&mut reader, Duration::from_secs(5))
                    .await
                    .unwrap(),
            );
            assert_eq!(m.as_bytes(), e);
        }
        writer.await.unwrap();
        assert!(
            read_frame(&mut reader, Duration::from_secs(5))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn framed_sink_round_trip() {
        let (a, b) = tokio::io::duplex(4096);
        let mut fa = Framed::new(a, DiameterCodec::default());
        let mut fb = Framed::new(b, DiameterCodec::default());
        fa.send(msg(42)).await.unwrap();
        let m = expect_msg(fb.next().await.transpose().unwrap());
        assert_eq!(m.header().hop_by_hop, 42);
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_frame_times_out() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut reader = FramedRead::new(server, DiameterCodec::default());
        // Length 1024 announced, 30 bytes sent, then silence.
        let mut partial = header(1, 1024);
        partial.extend_from_slice(&[0; 10]);
        client.write_all(&partial).await.unwrap();
        let start = Instant::now();
        let err = read_frame(&mut reader, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, FramingError::ReadTimeout(_)), "{err:?}");
        assert!(start.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_survives_cancellation() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut reader = FramedRead::new(server, DiameterCodec::default());
        client.write_all(&header(1, 1024)).await.unwrap();
        // A driver loop that keeps getting interrupted after 3 s must still time out at 10 s.
        let start = Instant::now();
        loop {
            tokio::select! {
                r = read_frame(&mut reader, Duration::from_secs(10)) => {
                    assert!(matches!(r, Err(FramingError::ReadTimeout(_))));
                    break;
                }
                _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            }
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(13),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_does_not_time_out() {
        let (_client, server) = tokio::io::duplex(4096);
        let mut reader = FramedRead::new(server, DiameterCodec::default());
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            read_frame(&mut reader, Duration::from_secs(1)),
        )
        .await;
        assert!(r.is_err(), "idle read returned {r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_announcement_without_body_times_out() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut reader = FramedRead::new(server, DiameterCodec::default());
        client.write_all(&header(1, 0x00ff_fffc)).await.unwrap();
        let first = read_frame(&mut reader, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(first, Some(Inbound::Oversize { .. })), "{first:?}");
        // The body never comes: the frame deadline ends the stream (bad-inputs 4/5).
        let err = read_frame(&mut reader, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, FramingError::ReadTimeout(_)), "{err:?}");
    }
}
