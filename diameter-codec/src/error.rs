//! Error types. Decoding errors are small and `Copy` so the hot path never allocates; each
//! maps onto the RFC 6733 §7.1 Result-Code a peer expects.

use crate::result_code::ResultCode;

/// Why a frame (the 20-byte header and the length it announces) cannot be accepted.
///
/// These are stream-level errors: RFC 6733 gives no way to answer reliably when the header
/// itself is wrong, so a transport closes the connection, or answers 5011/5015 when the
/// header is otherwise readable (see [`FrameError::result_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer than 20 bytes: no header to read.
    #[error("truncated header: {0} bytes, need 20")]
    TruncatedHeader(usize),
    /// RFC 6733 §3: "Version: This Version field MUST be set to 1".
    #[error("unsupported Diameter version {0}")]
    UnsupportedVersion(u8),
    /// Message Length smaller than the header or not a multiple of 4 (RFC 6733 §3).
    #[error("invalid message length {0}")]
    InvalidLength(u32),
    /// Message Length above the configured maximum; rejected before any allocation.
    #[error("message length {length} exceeds the limit {max}")]
    TooLong {
        /// Length announced by the header.
        length: u32,
        /// Configured maximum.
        max: u32,
    },
    /// The buffer holds a different number of bytes than the header announces.
    #[error("message length {announced} but {actual} bytes given")]
    LengthMismatch {
        /// Length announced by the header.
        announced: u32,
        /// Bytes actually given.
        actual: usize,
    },
}

impl FrameError {
    /// The Result-Code an answer would carry, where one can be sent.
    pub fn result_code(&self) -> ResultCode {
        match self {
            Self::UnsupportedVersion(_) => ResultCode::DIAMETER_UNSUPPORTED_VERSION,
            _ => ResultCode::DIAMETER_INVALID_MESSAGE_LENGTH,
        }
    }
}

/// Why an AVP cannot be framed (RFC 6733 §4.1). Carries where it happened so that a
/// Failed-AVP can be formed (RFC 6733 §7.1.5, DIAMETER_INVALID_AVP_LENGTH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at offset {offset} (AVP code {code}, vendor {vendor})")]
pub struct AvpError {
    /// What is wrong.
    pub kind: AvpErrorKind,
    /// Offset of the AVP header from the start of the buffer it was read from.
    pub offset: usize,
    /// AVP Code, or 0 where not even the code could be read.
    pub code: u32,
    /// AVP flags as received.
    pub flags: u8,
    /// Vendor-Id as received, 0 where absent.
    pub vendor: u32,
}

/// The kinds of AVP framing error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AvpErrorKind {
    /// Fewer bytes left than an AVP header needs.
    #[error("truncated AVP header")]
    TruncatedHeader,
    /// AVP Length smaller than its own header (8, or 12 with the V bit).
    #[error("AVP length shorter than its header")]
    LengthTooShort,
    /// AVP Length runs past the end of the message or enclosing group.
    #[error("AVP length overruns its container")]
    Overrun,
    /// More AVPs than the configured limit.
    #[error("too many AVPs")]
    TooManyAvps,
    /// Grouped AVPs nested deeper than the configured limit.
    #[error("grouped AVPs nested too deep")]
    TooDeep,
}

/// Why an AVP's payload is not a valid value of its data type (RFC 6733 §4.2–4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Fixed-size type with the wrong payload size: answered with 5014.
    #[error("payload length {actual} where the type needs {expected}")]
    WrongLength {
        /// Size the type requires.
        expected: usize,
        /// Size received.
        actual: usize,
    },
    /// Payload that is not valid for its type (bad UTF-8, address family, URI…): 5004.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

impl ValueError {
    /// RFC 6733 §7.1.5: a wrong-sized fixed type is 5014, anything else 5004.
    pub fn result_code(&self) -> ResultCode {
        match self {
            Self::WrongLength { .. } => ResultCode::DIAMETER_INVALID_AVP_LENGTH,
            Self::Invalid(_) => ResultCode::DIAMETER_INVALID_AVP_VALUE,
        }
    }
}
