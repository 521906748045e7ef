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
use crate::encode::AvpValue;
use crate::header::{CommandFlags, HEADER_LEN, Header};
use crate::types::{AvpType, TypedAvp, ty};
use bytes::{BufMut, BytesMut};

/// Deepest nesting of Grouped AVPs the writer tracks.
const MAX_OPEN: usize = 16;

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
    /// Where each open group starts, relative to `start` (a message is under 16 MiB).
    open: [u32; MAX_OPEN],
    depth: usize,
    error: Option<WriteError>,
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
        let start = out.len();
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
        out.put_slice(&hb);
        Self {
            out,
            start,
            open: [0; MAX_OPEN],
            depth: 0,
            error: None,
        }
    }

    #[inline]
    fn header(&mut self, code: u32, flags: AvpFlags, vendor: u32, len: usize) {
        // One copy for the whole header: each `put` on the buffer checks its capacity.
        let mut h = [0u8; 12];
        h[..4].copy_from_slice(&code.to_be_bytes());
        let v = if vendor != 0 { AvpFlags::VENDOR } else { 0 };
        let word =
            (u32::from((flags.0 & !AvpFlags::VENDOR) | v) << 24) | (len as u32 & 0x00ff_ffff);
        h[4..8].copy_from_slice(&word.to_be_bytes());
        h[8..].copy_from_slice(&vendor.to_be_bytes());
        // Constant lengths, so each copy is a couple of moves rather than a memcpy call.
        if vendor != 0 {
            self.out.put_slice(&h);
        } else {
            self.out.put_slice(&h[..8]);
        }
    }

    /// Adds a leaf AVP with its definition's code, vendor and flags. The value goes
    /// straight into the buffer; the AVP Length is patched in after it.
    #[inline]
    pub fn avp<T: AvpType>(&mut self, def: TypedAvp<T>, v: impl Into<T::Input>) -> &mut Self {
        let at = self.out.len();
        self.header(def.code(), def.flags(), def.vendor(), 0);
        T::put_value(v.into(), self.out);
        self.close_at(at)
    }

    /// Adds a leaf AVP from an [`AvpValue`] (a Grouped value is written with its children).
    pub fn value(
        &mut self,
        code: u32,
        flags: AvpFlags,
        vendor: u32,
        value: &AvpValue,
    ) -> &mut Self {
        if matches!(value, AvpValue::Verbatim(_)) {
            crate::encode::put_payload(value, self.out);
            return self;
        }
        let at = self.out.len();
        self.header(code, flags, vendor, 0);
        crate::encode::put_payload(value, self.out);
        self.close_at(at)
    }

    /// Patches the AVP Length of the AVP that starts at `at` and pads it.
    #[inline]
    fn close_at(&mut self, at: usize) -> &mut Self {
        let len = self.out.len() - at;
        if len > 0x00ff_ffff {
            self.error = Some(WriteError::TooLong);
            return self;
        }
        // RFC 6733 §4.1: AVP Length excludes padding.
        self.out[at + 5..at + 8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        self.pad(len);
        self
    }

    #[inline]
    fn pad(&mut self, len: usize) {
        let n = (4 - len % 4) % 4;
        if n != 0 {
            self.out.put_slice(&[0u8; 3][..n]);
        }
    }

    /// Opens a Grouped AVP; the AVPs added until the matching [`Self::end`] are its children.
    pub fn begin(&mut self, def: TypedAvp<ty::Grouped>) -> &mut Self {
        if self.depth == MAX_OPEN {
            self.error = Some(WriteError::TooDeep);
            return self;
        }
        self.open[self.depth] = (self.out.len() - self.start) as u32;
        self.depth += 1;
        self.header(def.code(), def.flags(), def.vendor(), 0);
        self
    }

    /// Closes the innermost open Grouped AVP, writing its length.
    pub fn end(&mut self) -> &mut Self {
        if self.depth == 0 {
            self.error = Some(WriteError::Unbalanced);
            return self;
        }
        self.depth -= 1;
        let at = self.start + self.open[self.depth] as usize;
        let len = self.out.len() - at;
        if len > 0x00ff_ffff {
            self.error = Some(WriteError::TooLong);
            return self;
        }
        // RFC 6733 §4.1: AVP Length excludes padding; children are already padded.
        self.out[at + 5..at + 8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        self
    }

    /// Writes the Message Length and returns it. Refuses unbalanced groups.
    pub fn finish(self) -> Result<usize, WriteError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.depth != 0 {
            return Err(WriteError::Unbalanced);
        }
        let len = self.out.len() - self.start;
        if len > 0x00ff_ffff {
            return Err(WriteError::TooLong);
        }
        self.out[self.start + 1..self.start + 4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict::{base, dcca};
    use crate::{Message, MessageBuilder};

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
