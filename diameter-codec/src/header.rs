//! The 20-byte Diameter message header (RFC 6733 §3).

use crate::error::FrameError;
use std::fmt;

/// Size of the message header.
pub const HEADER_LEN: usize = 20;

/// Command Flags (RFC 6733 §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommandFlags(pub u8);

impl CommandFlags {
    /// R: the message is a request.
    pub const REQUEST: u8 = 0x80;
    /// P: the message may be proxied, relayed or redirected.
    pub const PROXIABLE: u8 = 0x40;
    /// E: the message contains a protocol error.
    pub const ERROR: u8 = 0x20;
    /// T: the message is possibly retransmitted (RFC 6733 §5.5.4).
    pub const RETRANSMIT: u8 = 0x10;
    /// The four reserved bits; RFC 6733 §3: "MUST be set to zero".
    pub const RESERVED: u8 = 0x0f;

    /// R bit.
    pub fn is_request(self) -> bool {
        self.0 & Self::REQUEST != 0
    }
    /// P bit.
    pub fn is_proxiable(self) -> bool {
        self.0 & Self::PROXIABLE != 0
    }
    /// E bit.
    pub fn is_error(self) -> bool {
        self.0 & Self::ERROR != 0
    }
    /// T bit.
    pub fn is_retransmit(self) -> bool {
        self.0 & Self::RETRANSMIT != 0
    }
    /// Any reserved bit set.
    pub fn has_reserved(self) -> bool {
        self.0 & Self::RESERVED != 0
    }
    /// These flags with `bit` set or cleared.
    #[must_use]
    pub fn with(self, bit: u8, on: bool) -> Self {
        if on {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
}

impl fmt::Debug for CommandFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(0x80, "R"), (0x40, "P"), (0x20, "E"), (0x10, "T")] {
            f.write_str(if self.0 & bit != 0 { c } else { "-" })?;
        }
        if self.has_reserved() {
            write!(f, "+{:#x}", self.0 & Self::RESERVED)?;
        }
        Ok(())
    }
}

/// A decoded message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Version; always 1 once decoded.
    pub version: u8,
    /// Message Length, header and padding included.
    pub length: u32,
    /// Command Flags.
    pub flags: CommandFlags,
    /// Command Code (24 bits).
    pub command_code: u32,
    /// Application-ID.
    pub application_id: u32,
    /// Hop-by-Hop Identifier.
    pub hop_by_hop: u32,
    /// End-to-End Identifier.
    pub end_to_end: u32,
}

impl Header {
    /// Reads a header from the first 20 bytes of `buf`, checking the version and that the
    /// length is a plausible frame length: at least 20, a multiple of 4 (RFC 6733 §3: "the
    /// length of the Diameter message including the header fields and the padded AVPs.
    /// Thus, this field is always a multiple of 4") and at most `max_len`.
    pub fn parse(buf: &[u8], max_len: u32) -> Result<Self, FrameError> {
        let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::TruncatedHeader(buf.len()));
        };
        let version = h[0];
        if version != 1 {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let length = u24(&h[1..4]);
        check_length(length, max_len)?;
        Ok(Self {
            version,
            length,
            flags: CommandFlags(h[4]),
            command_code: u24(&h[5..8]),
            application_id: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            hop_by_hop: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            end_to_end: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        })
    }

    /// Writes the header into `out` (20 bytes).
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = self.version;
        out[1..4].copy_from_slice(&self.length.to_be_bytes()[1..]);
        out[4] = self.flags.0;
        out[5..8].copy_from_slice(&self.command_code.to_be_bytes()[1..]);
        out[8..12].copy_from_slice(&self.application_id.to_be_bytes());
        out[12..16].copy_from_slice(&self.hop_by_hop.to_be_bytes());
        out[16..20].copy_from_slice(&self.end_to_end.to_be_bytes());
    }

    /// R bit.
    pub fn is_request(&self) -> bool {
        self.flags.is_request()
    }
}

/// For stream framing: how long the frame starting at `buf` is, once 4 bytes are there.
///
/// Checks version and length before anything is buffered, so a peer announcing 16 MiB
/// gets the connection closed without a byte of it being allocated (bad-inputs 1–4).
pub fn frame_length(buf: &[u8], max_len: u32) -> Result<Option<usize>, FrameError> {
    let Some(h) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    if h[0] != 1 {
        return Err(FrameError::UnsupportedVersion(h[0]));
    }
    let length = u24(&h[1..4]);
    check_length(length, max_len)?;
    Ok(Some(length as usize))
}

fn check_length(length: u32, max_len: u32) -> Result<(), FrameError> {
    if length < HEADER_LEN as u32 || length % 4 != 0 {
        return Err(FrameError::InvalidLength(length));
    }
    if length > max_len {
        return Err(FrameError::TooLong {
            length,
            max: max_len,
        });
    }
    Ok(())
}

pub(crate) fn u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}
