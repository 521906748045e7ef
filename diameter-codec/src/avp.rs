//! The AVP header (RFC 6733 §4.1), a checked borrowed view of one AVP, and an iterator over
//! a sequence of AVPs (a message body or a Grouped payload).

use crate::error::{AvpError, AvpErrorKind};
use crate::header::u24;
use std::fmt;

/// AVP header flags (RFC 6733 §4.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AvpFlags(pub u8);

impl AvpFlags {
    /// V: the Vendor-ID field is present.
    pub const VENDOR: u8 = 0x80;
    /// M: the receiver must understand the AVP or reject the message.
    pub const MANDATORY: u8 = 0x40;
    /// P: reserved for end-to-end security; "MAY be set … SHOULD be 0".
    pub const PROTECTED: u8 = 0x20;
    /// The five reserved bits; senders set them to 0, receivers ignore them.
    pub const RESERVED: u8 = 0x1f;

    /// V bit.
    pub fn vendor(self) -> bool {
        self.0 & Self::VENDOR != 0
    }
    /// M bit.
    pub fn mandatory(self) -> bool {
        self.0 & Self::MANDATORY != 0
    }
    /// P bit.
    pub fn protected(self) -> bool {
        self.0 & Self::PROTECTED != 0
    }
}

impl fmt::Debug for AvpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(0x80, "V"), (0x40, "M"), (0x20, "P")] {
            f.write_str(if self.0 & bit != 0 { c } else { "-" })?;
        }
        Ok(())
    }
}

/// An AVP's identity: RFC 6733 §4.1 "the combination of the Vendor-Id field and the AVP Code
/// field uniquely identifies the attribute". Vendor 0 means no Vendor-Id (IETF AVPs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AvpKey {
    /// AVP Code.
    pub code: u32,
    /// Vendor-Id, 0 for none.
    pub vendor: u32,
}

impl AvpKey {
    /// A key.
    pub const fn new(code: u32, vendor: u32) -> Self {
        Self { code, vendor }
    }
    /// Packs the key into one integer for hashing.
    pub const fn packed(self) -> u64 {
        ((self.vendor as u64) << 32) | self.code as u64
    }
}

/// One AVP, borrowed from the buffer it was read from; its header has been checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AvpRef<'a> {
    /// AVP Code.
    pub code: u32,
    /// Flags as received.
    pub flags: AvpFlags,
    /// Vendor-Id, or 0 when the V bit is clear.
    pub vendor: u32,
    /// The payload, without padding.
    pub data: &'a [u8],
    /// The whole AVP: header and payload, without padding.
    pub raw: &'a [u8],
    /// Offset of the AVP header within the buffer the iterator started on.
    pub offset: usize,
}

impl<'a> AvpRef<'a> {
    /// (code, vendor).
    pub fn key(&self) -> AvpKey {
        AvpKey::new(self.code, self.vendor)
    }

    /// The AVPs inside this AVP's payload, for Grouped AVPs. Offsets of the children are
    /// reported relative to the same buffer as this AVP's.
    pub fn children(&self) -> AvpIter<'a> {
        let hdr = self.raw.len() - self.data.len();
        AvpIter::with_base(self.data, self.offset + hdr)
    }

    /// Length of the AVP header: 8, or 12 with the V bit.
    pub fn header_len(&self) -> usize {
        self.raw.len() - self.data.len()
    }
}

impl fmt::Debug for AvpRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvpRef")
            .field("code", &self.code)
            .field("flags", &self.flags)
            .field("vendor", &self.vendor)
            .field("len", &self.data.len())
            .finish()
    }
}

/// Iterator over a sequence of AVPs. Yields `Err` once at the first framing error and then
/// stops, so a loop over it always terminates.
#[derive(Clone, Debug)]
pub struct AvpIter<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> AvpIter<'a> {
    /// Iterates over the AVPs in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_base(buf, 0)
    }

    /// As [`AvpIter::new`], reporting offsets as `base + position in buf`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn fail(
        &mut self,
        kind: AvpErrorKind,
        code: u32,
        flags: u8,
        vendor: u32,
    ) -> Option<Result<AvpRef<'a>, AvpError>> {
        let offset = self.base + self.pos;
        self.pos = self.buf.len();
        Some(Err(AvpError {
            kind,
            offset,
            code,
            flags,
            vendor,
        }))
    }
}

/// The framing of the AVP at the start of `rest` when its header is whole and its AVP
/// Length covers its header and fits in `rest` (RFC 6733 §4.1): the header's first eight
/// bytes as one big-endian word (code, flags, length), the AVP Length, and the header length
/// (8, or 12 with the V bit).
#[inline(always)]
pub(crate) fn frame(rest: &[u8]) -> Option<(u64, usize, usize)> {
    let h = u64::from_be_bytes(*rest.first_chunk::<8>()?);
    let len = (h & 0x00ff_ffff) as usize;
    let hdr = if AvpFlags((h >> 24) as u8).vendor() {
        12
    } else {
        8
    };
    if len < hdr || len > rest.len() {
        return None;
    }
    Some((h, len, hdr))
}

/// How far the AVP after one of length `len` starts, as in `next`: at the next 4-byte
/// boundary, or the end of the `rest_len` bytes left.
#[inline(always)]
pub(crate) fn padded(len: usize, rest_len: usize) -> usize {
    ((len + 3) & !3).min(rest_len)
}

impl<'a> AvpIter<'a> {
    /// The next AVP when its header is whole and its AVP Length covers its header (8, or
    /// 12 with the V bit) and fits in what is left (RFC 6733 §4.1); `None`, without moving,
    /// at the end and on any framing error, which [`Iterator::next`] then reports. A lean
    /// common case for the validator's walk, which reads every AVP of a message.
    #[inline(always)]
    pub(crate) fn next_framed(&mut self) -> Option<AvpRef<'a>> {
        let rest = self.buf.get(self.pos..)?;
        let (h, len, hdr) = frame(rest)?;
        let flags = AvpFlags((h >> 24) as u8);
        let raw = &rest[..len];
        let vendor = match raw.get(8..12) {
            Some(&[a, b, c, d]) if flags.vendor() => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        };
        let avp = AvpRef {
            code: (h >> 32) as u32,
            flags,
            vendor,
            data: &raw[hdr..],
            raw,
            offset: self.base + self.pos,
        };
        self.pos += padded(len, rest.len());
        Some(avp)
    }
}

/// The AVPs of an [`AvpIter`] up to its first framing error: what `flatten()` yields, read
/// through the validator's lean header read. For the scans every message gets (routing
/// AVPs, Proxy-Info, what an answer copies), where the full iterator's error reporting is
/// not used.
#[derive(Clone, Debug)]
pub struct Framed<'a>(AvpIter<'a>);

impl<'a> AvpIter<'a> {
    /// The AVPs up to the first framing error, which ends the walk silently.
    pub fn framed(self) -> Framed<'a> {
        Framed(self)
    }
}

impl<'a> Iterator for Framed<'a> {
    type Item = AvpRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<AvpRef<'a>> {
        // `next_framed` stops without moving at a framing error: the walk ends there, as
        // `flatten()` ends after the one `Err` the iterator yields.
        self.0.next_framed()
    }
}

impl std::iter::FusedIterator for Framed<'_> {}

impl<'a> Iterator for AvpIter<'a> {
    type Item = Result<AvpRef<'a>, AvpError>;

    // Inlined into the validator's walk, where returning the view by value otherwise
    // dominates the cost of reading an AVP header.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let Some(h) = rest.first_chunk::<8>() else {
            // 1–7 stray bytes: RFC 6733 §7.1.5 (5014) asks for the header padded with zeros.
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            let code = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            return self.fail(AvpErrorKind::TruncatedHeader, code, b[4], 0);
        };
        let code = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let flags = AvpFlags(h[4]);
        let len = u24(&h[5..8]) as usize;
        let (hdr, vendor) = if flags.vendor() {
            match rest.get(8..12) {
                Some(v) => (12, u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                None => return self.fail(AvpErrorKind::TruncatedHeader, code, flags.0, 0),
            }
        } else {
            (8, 0)
        };
        if len < hdr {
            return self.fail(AvpErrorKind::LengthTooShort, code, flags.0, vendor);
        }
        if len > rest.len() {
            return self.fail(AvpErrorKind::Overrun, code, flags.0, vendor);
        }
        // RFC 6733 §4.1: AVP Length excludes padding; the next AVP starts at the next
        // 4-byte boundary. A last AVP whose padding is missing is accepted (its end is the
        // end of the container), which never shifts the framing of anything after it.
        let padded = (len + 3) & !3;
        let advance = padded.min(rest.len());
        let avp = AvpRef {
            code,
            flags,
            vendor,
            data: &rest[hdr..len],
            raw: &rest[..len],
            offset: self.base + self.pos,
        };
        self.pos += advance;
        Some(Ok(avp))
    }
}

impl std::iter::FusedIterator for AvpIter<'_> {}
