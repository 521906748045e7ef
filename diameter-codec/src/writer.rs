//! [`MessageWriter`]: encodes a message straight into a buffer as AVPs are added — no tree,
//! no allocation, each byte written once. Leaf AVPs know their length before they are
//! written; a Grouped AVP's length is patched in when it is closed.
//!
//! ```
//! use bytes::BytesMut;
//! use diameter_codec::{Message, MessageWriter, CommandFlags};
//! use diameter_codec::dict::{base, dcca};
//!
//! let mut buf = BytesMut::with_capacity(1024);
//! let mut w = MessageWriter::new(&mut buf, CommandFlags(0xc0), 272, 4, 1, 2);
//! w.avp(base::SESSION_ID, "pcef.example;1")
//!     .avp(dcca::CC_REQUEST_NUMBER, 3u32)
//!     .begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL)
//!     .avp(dcca::RATING_GROUP, 100u32)
//!     .end();
//! let len = w.finish().unwrap();
//! let msg = Message::from_bytes(buf.split_to(len)).unwrap();
//! assert_eq!(msg.get(dcca::CC_REQUEST_NUMBER).unwrap().unwrap(), 3);
//! ```

use crate::avp::AvpFlags;
use crate::encode::{AvpValue, OwnedAvp};
use crate::header::{CommandFlags, HEADER_LEN, Header};
use crate::types::{AvpType, Payload, TypedAvp, ty};
use bytes::BytesMut;

/// Deepest nesting of Grouped AVPs the writer tracks.
const MAX_OPEN: usize = 16;

/// Largest AVP Length or Message Length: the fields are 24 bits (RFC 6733 §3, §4.1).
const MAX_LEN: usize = 0x00ff_ffff;

/// Why [`MessageWriter::finish`] refused the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// `begin` without `end`, or `end` without `begin`.
    #[error("unbalanced begin/end of Grouped AVPs")]
    Unbalanced,
    /// Groups nested deeper than the writer tracks (16).
    #[error("Grouped AVPs nested too deep")]
    TooDeep,
    /// Longer than a Message Length or AVP Length can say (2^24 − 1).
    #[error("message too long")]
    TooLong,
}

/// Writes one message into a buffer. See the module documentation.
pub struct MessageWriter<'b> {
    out: &'b mut BytesMut,
    start: usize,
    /// End of what is written. `out` may run further: zeroed room laid out ahead of the
    /// writes, so most AVPs are plain stores at `pos` with no buffer bookkeeping. The room
    /// is cut off by [`Self::finish`], or on drop. Nothing but zeros is ever stored past
    /// `pos`, so padding can be left as the room has it.
    pos: usize,
    /// Where each open group starts, relative to `start` (a message is under 16 MiB).
    open: [u32; MAX_OPEN],
    depth: usize,
    error: Option<WriteError>,
}

/// Least room laid out at a time.
const MIN_ROOM: usize = 1024;

/// Room that holds any AVP but a long byte string: a 12-byte header and an IPv6 Address
/// (18 bytes), padded.
const WINDOW: usize = 32;

/// Writes an AVP's Vendor-Id and value after its header (of `hl` bytes) in `w`, and
/// returns where the value ends. With no Vendor-ID field (`hl` 8) the Vendor-Id is 0 and
/// the value overwrites it: one path with constant-size stores either way.
#[inline(always)]
fn put_at(w: &mut [u8; WINDOW], vendor: u32, hl: usize, v: &[u8]) -> usize {
    w[8..12].copy_from_slice(&vendor.to_be_bytes());
    w[hl..hl + v.len()].copy_from_slice(v);
    hl + v.len()
}

/// Lays out zeroed room for at least `n` bytes at `pos`: as much as is written so far
/// (so a message grows its room a few times at most), never less than [`MIN_ROOM`]. Room
/// stops at the buffer's capacity when `n` fits there, so a buffer sized for the message
/// (as [`crate::MessageBuilder::to_bytes`] makes) is not reallocated for room never used.
#[cold]
#[inline(never)]
fn grow(out: &mut BytesMut, start: usize, pos: usize, n: usize) {
    let want = n.max(pos - start).max(MIN_ROOM);
    let spare = out.capacity() - pos;
    out.resize(pos + if spare >= n { want.min(spare) } else { want }, 0);
}

impl<'b> MessageWriter<'b> {
    /// Starts a message at the end of `out` with this header (its length is filled in by
    /// [`Self::finish`]).
    pub fn new(
        out: &'b mut BytesMut,
        flags: CommandFlags,
        command_code: u32,
        application_id: u32,
        hop_by_hop: u32,
        end_to_end: u32,
    ) -> Self {
        let h = Header {
            version: 1,
            length: 0,
            flags,
            command_code,
            application_id,
            hop_by_hop,
            end_to_end,
        };
        let mut hb = [0u8; HEADER_LEN];
        h.write(&mut hb);
        let mut w = Self::bare(out);
        w.put(&hb);
        w
    }

    /// Writes AVPs at the end of `out`, with no message header: for an AVP or a Grouped
    /// payload encoded on its own. Nothing is patched at the start, so the writer is
    /// dropped rather than finished.
    pub(crate) fn bare(out: &'b mut BytesMut) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            pos: start,
            open: [0; MAX_OPEN],
            depth: 0,
            error: None,
        }
    }

    /// The next `n` bytes of room, `pos` moved past them. The test for room is the one
    /// the slicing makes, so the common path has a single bounds check.
    #[inline(always)]
    fn slot(&mut self, n: usize) -> &mut [u8] {
        let at = self.pos;
        if self.out.get(at..at + n).is_none() {
            grow(self.out, self.start, at, n);
        }
        self.pos = at + n;
        &mut self.out[at..at + n]
    }

    /// Writes `b` at `pos`; of constant length, this is a few moves rather than a memcpy.
    #[inline(always)]
    fn put(&mut self, b: &[u8]) {
        self.slot(b.len()).copy_from_slice(b);
    }

    /// Writes an AVP header: `head` is code and flags as [`TypedAvp::head`] packs them,
    /// `vendor` the Vendor-ID field if there is one.
    #[inline(always)]
    fn head(&mut self, head: u64, vendor: Option<u32>, len: usize) {
        let mut h = [0u8; 12];
        h[..8].copy_from_slice(&(head | (len as u64 & 0x00ff_ffff)).to_be_bytes());
        if let Some(v) = vendor {
            h[8..].copy_from_slice(&v.to_be_bytes());
            self.put(&h);
        } else {
            self.put(&h[..8]);
        }
    }

    /// Adds a leaf AVP with its definition's code, vendor and flags. The value goes
    /// straight into the buffer: fixed-size values and byte strings with their header
    /// complete, other values (Address, Grouped) with the AVP Length patched in after.
    #[inline(always)]
    pub fn avp<T: AvpType>(&mut self, def: TypedAvp<T>, v: impl Into<T::Input>) -> &mut Self {
        let v = v.into();
        match T::payload(&v) {
            Payload::Four(b) => self.fixed(def.head(), vendor_field(def.vendor()), b),
            Payload::Eight(b) => self.fixed(def.head(), vendor_field(def.vendor()), b),
            Payload::Bytes(b) => self.bytes(def.head(), vendor_field(def.vendor()), b),
            Payload::Encoded => self.encoded(def, v),
        }
    }

    /// Adds a string-like AVP (UTF8String, DiameterIdentity, DiameterURI, IPFilterRule)
    /// from borrowed text, without the copy into [`Text`](crate::types::Text) that
    /// [`Self::avp`] makes of a non-static string.
    #[inline]
    pub fn text<T: AvpType<Input = crate::types::Text>>(
        &mut self,
        def: TypedAvp<T>,
        s: &str,
    ) -> &mut Self {
        self.bytes(def.head(), vendor_field(def.vendor()), s.as_bytes())
    }

    /// Adds an OctetString AVP from borrowed bytes.
    #[inline]
    pub fn octets(&mut self, def: TypedAvp<ty::OctetString>, b: &[u8]) -> &mut Self {
        self.bytes(def.head(), vendor_field(def.vendor()), b)
    }

    /// A fixed-size payload: header and value in one write of a length known from the
    /// type. 4- and 8-byte payloads end on a 32-bit boundary, so there is no padding.
    #[inline(always)]
    fn fixed<const N: usize>(
        &mut self,
        head: u64,
        vendor: Option<u32>,
        value: [u8; N],
    ) -> &mut Self {
        let mut a = [0u8; 20];
        if let Some(v) = vendor {
            a[..8].copy_from_slice(&(head | (12 + N) as u64).to_be_bytes());
            a[8..12].copy_from_slice(&v.to_be_bytes());
            a[12..12 + N].copy_from_slice(&value);
            self.put(&a[..12 + N]);
        } else {
            a[..8].copy_from_slice(&(head | (8 + N) as u64).to_be_bytes());
            a[8..8 + N].copy_from_slice(&value);
            self.put(&a[..8 + N]);
        }
        self
    }

    /// A byte-string payload: its length is known, so the header is written complete.
    #[inline(always)]
    fn bytes(&mut self, head: u64, vendor: Option<u32>, b: &[u8]) -> &mut Self {
        let hl = if vendor.is_some() { 12 } else { 8 };
        let len = hl + b.len();
        if len > MAX_LEN {
            self.error = Some(WriteError::TooLong);
            return self;
        }
        // RFC 6733 §4.1: the AVP is padded with zeros to a 32-bit boundary, and the AVP
        // Length does not count the padding.
        let padded = (len + 3) & !3;
        let avp = self.slot(padded);
        // The last word zeroed first, as one store: header and value then overwrite
        // whatever part of it is not padding.
        avp[padded - 4..].copy_from_slice(&[0; 4]);
        avp[..8].copy_from_slice(&(head | len as u64).to_be_bytes());
        if let Some(v) = vendor {
            avp[8..12].copy_from_slice(&v.to_be_bytes());
        }
        avp[hl..len].copy_from_slice(b);
        self
    }

    /// Hands the buffer to code that appends to it: the room ahead is cut off first and
    /// `pos` follows what was appended.
    #[inline]
    fn append(&mut self, f: impl FnOnce(&mut BytesMut)) {
        self.out.truncate(self.pos);
        f(self.out);
        self.pos = self.out.len();
    }

    /// A value only its type can encode: header first, AVP Length patched in after.
    #[inline(never)]
    fn encoded<T: AvpType>(&mut self, def: TypedAvp<T>, v: T::Input) -> &mut Self {
        let at = self.pos;
        self.head(def.head(), vendor_field(def.vendor()), 0);
        self.append(|out| {
            T::put_value(v, out);
        });
        self.close_at(at)
    }

    /// Adds a leaf AVP from an [`AvpValue`] (a Grouped value is written with its children),
    /// the V bit set from `vendor`.
    pub fn value(
        &mut self,
        code: u32,
        flags: AvpFlags,
        vendor: u32,
        value: &AvpValue,
    ) -> &mut Self {
        let vendor = vendor_field(vendor);
        let at = self.pos;
        if let Some(children) = self.put_value(head(code, flags, vendor), vendor, value) {
            self.owned_seq(children).patch(at);
        }
        self
    }

    /// Adds an [`OwnedAvp`] (a Grouped one with its children) as
    /// [`crate::MessageBuilder::encode`] writes it: unlike [`Self::value`], a V bit set with
    /// Vendor-Id 0 is kept, with its Vendor-ID field.
    pub fn owned(&mut self, avp: &OwnedAvp) -> &mut Self {
        self.owned_seq(std::slice::from_ref(avp))
    }

    /// Adds a sequence of [`OwnedAvp`]s. The tree is walked with a stack of the sequences
    /// left to write in each open group (as deep as `begin` tracks; deeper groups recurse),
    /// so a group costs a push and a pop rather than a call. The buffer is held as a slice
    /// and a position in locals: the stores into it cannot then be taken for stores into
    /// the `BytesMut`, whose fields would otherwise be reloaded after each.
    pub(crate) fn owned_seq(&mut self, avps: &[OwnedAvp]) -> &mut Self {
        let mut stack: [(&[OwnedAvp], usize); MAX_OPEN] = [(&[], 0); MAX_OPEN];
        let mut depth = 0;
        let mut seq = avps;
        let mut pos = self.pos;
        let mut buf = &mut self.out[..];
        loop {
            let Some((a, rest)) = seq.split_first() else {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                let at;
                (seq, at) = stack[depth];
                // RFC 6733 §4.1: a group's AVP Length counts its header and its children,
                // which are padded already.
                let len = pos - at;
                if len > MAX_LEN {
                    self.error = Some(WriteError::TooLong);
                }
                buf[at + 5..at + 8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
                continue;
            };
            seq = rest;
            // The V bit is written when set or when there is a Vendor-Id, and with it the
            // Vendor-ID field (Vendor-Id 0 kept with a V bit set, for error answers).
            let flags = a.flags.0 | (u8::from(a.vendor != 0) << 7);
            let hl = if flags & AvpFlags::VENDOR != 0 { 12 } else { 8 };
            let head = (u64::from(a.code) << 32) | (u64::from(flags) << 24);
            // Every AVP but a long byte string is written within a window of room at `pos`:
            // header, then value. With no Vendor-ID field the Vendor-Id written is 0 and the
            // value overwrites it; room past `pos` is zeroed, so padding needs no store.
            let at = pos;
            let vendor = a.vendor;
            let children = 'avp: {
                let Some(w) = buf
                    .get_mut(pos..)
                    .and_then(<[u8]>::first_chunk_mut::<WINDOW>)
                else {
                    // Less room than a window: the AVP is written at its exact size, so a
                    // buffer with capacity for the message (as `to_bytes` makes) is not
                    // reallocated for its last AVPs; room is laid out as for any write.
                    self.pos = pos;
                    let children = self.exact(head, (hl == 12).then_some(vendor), &a.value);
                    pos = self.pos;
                    buf = &mut self.out[..];
                    break 'avp children;
                };
                let len = match &a.value {
                    AvpValue::Bytes(b) if b.len() == 4 => put_at(w, vendor, hl, &b[..4]),
                    AvpValue::Bytes(b) if b.len() == 8 => put_at(w, vendor, hl, &b[..8]),
                    AvpValue::U32(v) => put_at(w, vendor, hl, &v.to_be_bytes()),
                    AvpValue::I32(v) => put_at(w, vendor, hl, &v.to_be_bytes()),
                    AvpValue::F32(v) => put_at(w, vendor, hl, &v.to_be_bytes()),
                    AvpValue::U64(v) => put_at(w, vendor, hl, &v.to_be_bytes()),
                    AvpValue::I64(v) => put_at(w, vendor, hl, &v.to_be_bytes()),
                    AvpValue::F64(v) => put_at(w, vendor, hl, &v.to_be_bytes()),
                    AvpValue::Address(ip) => {
                        let mut p = [0u8; 18];
                        let mut rest = &mut p[..];
                        crate::types::encode_ip(*ip, &mut rest);
                        let n = 18 - rest.len();
                        put_at(w, vendor, hl, &p[..n])
                    }
                    AvpValue::Bytes(b) if hl + b.len() <= WINDOW => put_at(w, vendor, hl, b),
                    AvpValue::Bytes(_) | AvpValue::Verbatim(_) => {
                        // Longer than the window: room laid out for its exact size.
                        self.pos = pos;
                        self.exact(head, (hl == 12).then_some(vendor), &a.value);
                        pos = self.pos;
                        buf = &mut self.out[..];
                        break 'avp None;
                    }
                    AvpValue::Grouped(children) => {
                        w[..8].copy_from_slice(&head.to_be_bytes());
                        w[8..12].copy_from_slice(&vendor.to_be_bytes());
                        pos += hl;
                        break 'avp Some(children);
                    }
                };
                // RFC 6733 §4.1: AVP Length excludes the padding, which is zero already.
                w[..8].copy_from_slice(&(head | len as u64).to_be_bytes());
                pos += (len + 3) & !3;
                None
            };
            if let Some(children) = children {
                if depth < MAX_OPEN {
                    stack[depth] = (seq, at);
                    depth += 1;
                    seq = children;
                } else {
                    self.pos = pos;
                    self.owned_seq(children).patch(at);
                    pos = self.pos;
                    buf = &mut self.out[..];
                }
            }
        }
        self.pos = pos;
        self
    }

    /// [`Self::put_value`] out of line, for the AVPs of a tree that do not fit a window.
    #[inline(never)]
    fn exact<'v>(
        &mut self,
        head: u64,
        vendor: Option<u32>,
        value: &'v AvpValue,
    ) -> Option<&'v [OwnedAvp]> {
        self.put_value(head, vendor, value)
    }

    /// Writes an AVP of this header and value, but of a Grouped value only the header: its
    /// children are returned, for the caller to write and then [`Self::patch`] the length.
    /// Every other length is known before the write.
    #[inline(always)]
    fn put_value<'v>(
        &mut self,
        head: u64,
        vendor: Option<u32>,
        value: &'v AvpValue,
    ) -> Option<&'v [OwnedAvp]> {
        match value {
            // A received tree holds Unsigned32, Enumerated, Unsigned64... as raw payloads:
            // the common sizes take the fixed-size stores rather than a memcpy call.
            AvpValue::Bytes(b) => {
                if let Ok(w) = <[u8; 4]>::try_from(&b[..]) {
                    self.fixed(head, vendor, w)
                } else if let Ok(w) = <[u8; 8]>::try_from(&b[..]) {
                    self.fixed(head, vendor, w)
                } else {
                    self.bytes(head, vendor, b)
                }
            }
            AvpValue::U32(v) => self.fixed(head, vendor, v.to_be_bytes()),
            AvpValue::I32(v) => self.fixed(head, vendor, v.to_be_bytes()),
            AvpValue::F32(v) => self.fixed(head, vendor, v.to_be_bytes()),
            AvpValue::U64(v) => self.fixed(head, vendor, v.to_be_bytes()),
            AvpValue::I64(v) => self.fixed(head, vendor, v.to_be_bytes()),
            AvpValue::F64(v) => self.fixed(head, vendor, v.to_be_bytes()),
            AvpValue::Address(ip) => {
                let mut p = [0u8; 18];
                let mut rest = &mut p[..];
                crate::types::encode_ip(*ip, &mut rest);
                let n = 18 - rest.len();
                self.bytes(head, vendor, &p[..n])
            }
            AvpValue::Grouped(children) => {
                self.head(head, vendor, 0);
                return Some(children);
            }
            AvpValue::Verbatim(b) => self.verbatim(b),
        };
        None
    }

    /// A whole AVP as received: copied as it is, padded to 32 bits if it is not.
    #[inline]
    fn verbatim(&mut self, b: &[u8]) -> &mut Self {
        let padded = (b.len() + 3) & !3;
        let avp = self.slot(padded);
        if let Some(last) = avp.rchunks_exact_mut(4).next() {
            last.copy_from_slice(&[0; 4]);
        }
        avp[..b.len()].copy_from_slice(b);
        self
    }

    /// Patches the AVP Length of the AVP that starts at `at` and pads it.
    fn close_at(&mut self, at: usize) -> &mut Self {
        let len = self.pos - at;
        if len > MAX_LEN {
            self.error = Some(WriteError::TooLong);
            return self;
        }
        // RFC 6733 §4.1: AVP Length excludes padding; the padding is zeros to a 32-bit
        // boundary.
        self.out[at + 5..at + 8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        let end = self.pos + (len.wrapping_neg() & 3);
        self.put(&[0; 4]);
        self.pos = end;
        self
    }

    /// Opens a Grouped AVP; the AVPs added until the matching [`Self::end`] are its children.
    #[inline(always)]
    pub fn begin(&mut self, def: TypedAvp<ty::Grouped>) -> &mut Self {
        if self.depth == MAX_OPEN {
            self.error = Some(WriteError::TooDeep);
            return self;
        }
        self.open[self.depth] = (self.pos - self.start) as u32;
        self.depth += 1;
        self.head(def.head(), vendor_field(def.vendor()), 0);
        self
    }

    /// Closes the innermost open Grouped AVP, writing its length.
    #[inline(always)]
    pub fn end(&mut self) -> &mut Self {
        if self.depth == 0 {
            self.error = Some(WriteError::Unbalanced);
            return self;
        }
        self.depth -= 1;
        self.patch(self.start + self.open[self.depth] as usize)
    }

    /// Writes the AVP Length of the group that starts at `at` and ends at `pos`.
    #[inline(always)]
    fn patch(&mut self, at: usize) -> &mut Self {
        let len = self.pos - at;
        if len > MAX_LEN {
            self.error = Some(WriteError::TooLong);
            return self;
        }
        // RFC 6733 §4.1: AVP Length excludes padding; children are already padded.
        self.out[at + 5..at + 8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        self
    }

    /// Writes the Message Length and returns it. Refuses unbalanced groups.
    #[inline]
    pub fn finish(self) -> Result<usize, WriteError> {
        self.out.truncate(self.pos);
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.depth != 0 {
            return Err(WriteError::Unbalanced);
        }
        let len = self.pos - self.start;
        if len > MAX_LEN {
            return Err(WriteError::TooLong);
        }
        self.out[self.start + 1..self.start + 4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        Ok(len)
    }
}

/// The Vendor-ID field of an AVP whose V bit follows its Vendor-Id.
#[inline(always)]
fn vendor_field(vendor: u32) -> Option<u32> {
    (vendor != 0).then_some(vendor)
}

/// Code and flags packed as [`TypedAvp::head`] packs them, the V bit set when there is a
/// Vendor-ID field.
#[inline(always)]
fn head(code: u32, flags: AvpFlags, vendor: Option<u32>) -> u64 {
    let v = if vendor.is_some() {
        AvpFlags::VENDOR
    } else {
        0
    };
    let flags = (flags.0 & !AvpFlags::VENDOR) | v;
    (u64::from(code) << 32) | (u64::from(flags) << 24)
}

impl Drop for MessageWriter<'_> {
    /// A writer dropped without [`MessageWriter::finish`] leaves what it wrote, not the
    /// room it laid out ahead.
    fn drop(&mut self) {
        self.out.truncate(self.pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict::{base, dcca};
    use crate::{Message, MessageBuilder};

    #[test]
    fn borrowed_text_and_octets_match_owned_values() {
        let host = String::from("pcef.example");
        let mut a = BytesMut::new();
        let mut w = MessageWriter::new(&mut a, CommandFlags(0x80), 272, 4, 1, 2);
        w.text(base::ORIGIN_HOST, &host)
            .text(base::SESSION_ID, "s;1")
            .octets(base::CLASS, b"abcde");
        let la = w.finish().unwrap();
        let mut b = BytesMut::new();
        let mut w = MessageWriter::new(&mut b, CommandFlags(0x80), 272, 4, 1, 2);
        w.avp(base::ORIGIN_HOST, host.clone())
            .avp(base::SESSION_ID, "s;1")
            .avp(base::CLASS, bytes::Bytes::from_static(b"abcde"));
        let lb = w.finish().unwrap();
        assert_eq!(&a[..la], &b[..lb]);
    }

    #[test]
    fn same_bytes_as_the_builder() {
        let mut b = MessageBuilder::request(272, 4, true).ids(7, 8);
        b.push(base::SESSION_ID.with("s;1"));
        b.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(vec![
            dcca::USED_SERVICE_UNIT.with(vec![dcca::CC_TOTAL_OCTETS.with(5u64)]),
            dcca::RATING_GROUP.with(100u32),
        ]));
        b.push(base::HOST_IP_ADDRESS.with(std::net::IpAddr::from([192, 0, 2, 1])));
        let mut buf = BytesMut::new();
        let mut w = MessageWriter::new(&mut buf, b.flags, 272, 4, 7, 8);
        w.avp(base::SESSION_ID, "s;1")
            .begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL)
            .begin(dcca::USED_SERVICE_UNIT)
            .avp(dcca::CC_TOTAL_OCTETS, 5u64)
            .end()
            .avp(dcca::RATING_GROUP, 100u32)
            .end()
            .avp(
                base::HOST_IP_ADDRESS,
                std::net::IpAddr::from([192, 0, 2, 1]),
            );
        let len = w.finish().unwrap();
        assert_eq!(&buf[..len], &b.to_bytes()[..]);
        assert!(Message::from_bytes(buf.freeze()).is_ok());
    }

    #[test]
    fn owned_values_and_groups() {
        let rsu = dcca::REQUESTED_SERVICE_UNIT.with(vec![dcca::CC_TIME.with(60u32)]);
        let mut b = MessageBuilder::request(272, 4, true).ids(1, 2);
        b.push(rsu.clone());
        b.push(base::ORIGIN_HOST.with("h"));
        let mut buf = BytesMut::new();
        let mut w = MessageWriter::new(&mut buf, b.flags, 272, 4, 1, 2);
        w.value(rsu.code, rsu.flags, rsu.vendor, &rsu.value);
        let oh = base::ORIGIN_HOST.with("h");
        w.value(oh.code, oh.flags, oh.vendor, &oh.value);
        let len = w.finish().unwrap();
        assert_eq!(&buf[..len], &b.to_bytes()[..]);
    }

    /// Each way `avp` lays out a value (fixed-size word, byte string with each padding,
    /// encoded), with and without a Vendor-Id, gives the builder's bytes.
    #[test]
    fn every_payload_kind_matches_the_builder() {
        use crate::dict::{gx, rx};
        use crate::types::DiameterTime;
        use bytes::Bytes;
        const F64: TypedAvp<ty::Float64> = TypedAvp::new("Test-F64", 0x00ff_fe02, 10415, true);
        const I64: TypedAvp<ty::Integer64> = TypedAvp::new("Test-I64", 0x00ff_fe03, 0, false);
        let mut b = MessageBuilder::request(272, 4, true).ids(3, 4);
        let mut buf = BytesMut::from(&b"kept"[..]);
        let mut w = MessageWriter::new(&mut buf, b.flags, 272, 4, 3, 4);
        for (i, s) in ["", "a", "ab", "abc", "abcd", "abcde"]
            .into_iter()
            .enumerate()
        {
            b.push(base::SESSION_ID.with(s));
            w.avp(base::SESSION_ID, s);
            let raw = Bytes::copy_from_slice(&s.as_bytes()[..i.min(s.len())]);
            b.push(crate::dict::gi::TGPP_CG_ADDRESS.with(raw.clone()));
            w.avp(crate::dict::gi::TGPP_CG_ADDRESS, raw);
        }
        // Longer than the room laid out at a time.
        let long = "x".repeat(3 * MIN_ROOM + 1);
        b.push(base::ERROR_MESSAGE.with(long.clone()));
        w.avp(base::ERROR_MESSAGE, long);
        b.push(dcca::CC_REQUEST_NUMBER.with(7u32));
        w.avp(dcca::CC_REQUEST_NUMBER, 7u32);
        b.push(rx::CONTENT_VERSION.with(u64::MAX - 1));
        w.avp(rx::CONTENT_VERSION, u64::MAX - 1);
        b.push(I64.with(-5i64));
        w.avp(I64, -5i64);
        b.push(F64.with(1.5f64));
        w.avp(F64, 1.5f64);
        b.push(gx::MAX_PLR_DL.with(0.25f32));
        w.avp(gx::MAX_PLR_DL, 0.25f32);
        b.push(gx::REVALIDATION_TIME.with(DiameterTime(0xdead_beef)));
        w.avp(gx::REVALIDATION_TIME, DiameterTime(0xdead_beef));
        b.push(crate::dict::gy::CHANGE_CONDITION.with(-1i32));
        w.avp(crate::dict::gy::CHANGE_CONDITION, -1i32);
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::TERMINATION_REQUEST));
        w.avp(
            dcca::CC_REQUEST_TYPE,
            dcca::CcRequestType::TERMINATION_REQUEST,
        );
        let v6 = std::net::IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
        b.push(gx::COA_IP_ADDRESS.with(v6));
        w.avp(gx::COA_IP_ADDRESS, v6);
        let rsu = vec![dcca::CC_TIME.with(60u32)];
        b.push(dcca::REQUESTED_SERVICE_UNIT.with(rsu.clone()));
        w.avp(dcca::REQUESTED_SERVICE_UNIT, rsu);
        b.push(rx::FLOW_DESCRIPTION.with("permit out ip from any to any"));
        w.avp(rx::FLOW_DESCRIPTION, "permit out ip from any to any");
        let len = w.finish().unwrap();
        assert_eq!(&buf[..4], b"kept");
        assert_eq!(buf.len(), 4 + len);
        assert_eq!(&buf[4..], &b.to_bytes()[..]);
        assert!(Message::from_bytes(buf.split_off(4).freeze()).is_ok());
    }

    /// The zeroed room laid out ahead of the writes never stays in the buffer.
    #[test]
    fn no_room_left_behind() {
        let mut buf = BytesMut::new();
        {
            let mut w = MessageWriter::new(&mut buf, CommandFlags(0x80), 272, 4, 1, 1);
            w.avp(base::SESSION_ID, "s;1");
        }
        assert_eq!(buf.len(), HEADER_LEN + 12);
        let mut w = MessageWriter::new(&mut buf, CommandFlags(0x80), 272, 4, 1, 1);
        w.begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL);
        assert_eq!(w.finish(), Err(WriteError::Unbalanced));
        assert_eq!(buf.len(), 2 * HEADER_LEN + 12 + 8);
    }

    #[test]
    fn unbalanced_is_refused() {
        let mut buf = BytesMut::new();
        let mut w = MessageWriter::new(&mut buf, CommandFlags(0x80), 272, 4, 1, 1);
        w.begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL);
        assert_eq!(w.finish(), Err(WriteError::Unbalanced));
        let mut buf = BytesMut::new();
        let mut w = MessageWriter::new(&mut buf, CommandFlags(0x80), 272, 4, 1, 1);
        w.end();
        assert_eq!(w.finish(), Err(WriteError::Unbalanced));
        let mut buf = BytesMut::new();
        let mut w = MessageWriter::new(&mut buf, CommandFlags(0x80), 272, 4, 1, 1);
        for _ in 0..20 {
            w.begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL);
        }
        assert_eq!(w.finish(), Err(WriteError::TooDeep));
    }
}
