//! A decoded message: the header plus its AVPs, borrowed from the `Bytes` it was read from.

use crate::avp::{AvpIter, AvpKey, AvpRef};
use crate::error::{AvpError, AvpErrorKind, FrameError};
use crate::header::{HEADER_LEN, Header};
use crate::types::{AvpType, TypedAvp};
use bytes::Bytes;

/// Bounds on what a decoder accepts, so that no input makes it loop, recurse or allocate
/// beyond a small constant times its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Message Length accepted (checked before a frame is buffered).
    pub max_message_len: u32,
    /// Deepest nesting of Grouped AVPs (a top-level AVP is depth 1).
    pub max_depth: usize,
    /// Most AVPs in one message, nested ones included.
    pub max_avps: usize,
}

impl Limits {
    /// 64 KiB − 4 bytes, 16 levels, 4096 AVPs: generous for Gx/Gy/Rx/S9 traffic and small
    /// enough that a peer cannot make us hold much.
    pub const DEFAULT: Self = Self {
        max_message_len: 65_532,
        max_depth: 16,
        max_avps: 4096,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why `Message::decode` refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The header or the length it announces.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A top-level AVP cannot be framed; the header is kept so the caller can answer.
    #[error("{error}")]
    Avp {
        /// The message header.
        header: Header,
        /// What went wrong and where.
        error: AvpError,
    },
}

impl DecodeError {
    /// The header, where it could be read.
    pub fn header(&self) -> Option<&Header> {
        match self {
            Self::Avp { header, .. } => Some(header),
            Self::Frame(_) => None,
        }
    }

    /// What an answer reports for a top-level AVP that does not frame: Result-Code and a
    /// Failed-AVP per RFC 6733 §7.1.5 (the AVP header, zero payload of the minimum length
    /// for its type in `dict`). `None` for frame errors, which get no answer.
    pub fn error_report(&self, dict: &crate::Dictionary) -> Option<crate::ErrorReport> {
        match self {
            Self::Avp { error, .. } => Some(crate::validate::length_error(dict, error)),
            Self::Frame(_) => None,
        }
    }

    /// The Result-Code an answer would carry.
    pub fn result_code(&self) -> crate::ResultCode {
        match self {
            Self::Frame(e) => e.result_code(),
            Self::Avp { error, .. } => match error.kind {
                AvpErrorKind::TooManyAvps | AvpErrorKind::TooDeep => {
                    crate::ResultCode::DIAMETER_UNABLE_TO_COMPLY
                }
                _ => crate::ResultCode::DIAMETER_INVALID_AVP_LENGTH,
            },
        }
    }
}

/// Whether `body` is a sequence of at most `max` AVPs that each have a whole header and an
/// AVP Length covering that header (8 bytes, 12 with the V bit) and not running past the
/// end (RFC 6733 §4.1): the common case, found by following the lengths alone
/// ([`frame`](crate::avp::frame)). Anything else is left to `AvpIter`'s full checks, which say
/// exactly what is wrong.
fn frames_cleanly(body: &[u8], max: usize) -> bool {
    // On the rest of the body as a slice, counted down: the fewest values the loop keeps.
    let mut rest = body;
    let mut left = max;
    while let Some((_, len, _)) = crate::avp::frame(rest) {
        let Some(l) = left.checked_sub(1) else {
            return false;
        };
        left = l;
        rest = &rest[crate::avp::padded(len, rest.len())..];
    }
    rest.is_empty()
}

/// A decoded Diameter message. Cheap to clone (it holds a reference-counted buffer).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    header: Header,
    bytes: Bytes,
}

impl Message {
    /// Decodes one whole message: checks the header, that `bytes` is exactly as long as it
    /// announces, and the framing of every top-level AVP. Nothing is copied; grouped AVPs
    /// are framed when they are read or validated.
    pub fn decode(bytes: Bytes, limits: &Limits) -> Result<Self, DecodeError> {
        let header = Header::parse(&bytes, limits.max_message_len)?;
        if header.length as usize != bytes.len() {
            return Err(FrameError::LengthMismatch {
                announced: header.length,
                actual: bytes.len(),
            }
            .into());
        }
        if frames_cleanly(&bytes[HEADER_LEN..], limits.max_avps) {
            return Ok(Self { header, bytes });
        }
        // Not the common case: the iterator's full checks say what is wrong.
        for (count, avp) in AvpIter::with_base(&bytes[HEADER_LEN..], HEADER_LEN).enumerate() {
            let avp = avp.map_err(|error| DecodeError::Avp { header, error })?;
            if count + 1 > limits.max_avps {
                let error = AvpError {
                    kind: AvpErrorKind::TooManyAvps,
                    offset: avp.offset,
                    code: avp.code,
                    flags: avp.flags.0,
                    vendor: avp.vendor,
                };
                return Err(DecodeError::Avp { header, error });
            }
        }
        Ok(Self { header, bytes })
    }

    /// Decodes with [`Limits::DEFAULT`].
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Result<Self, DecodeError> {
        Self::decode(bytes.into(), &Limits::DEFAULT)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The message body (everything after the header).
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The top-level AVPs. Framing was checked by `decode`, so this yields no errors.
    pub fn avps(&self) -> AvpIter<'_> {
        AvpIter::with_base(self.body(), HEADER_LEN)
    }

    /// The first top-level AVP with this key.
    pub fn find(&self, key: AvpKey) -> Option<AvpRef<'_>> {
        self.avps().framed().find(|a| a.key() == key)
    }

    /// Every top-level AVP with this key.
    pub fn find_all(&self, key: AvpKey) -> impl Iterator<Item = AvpRef<'_>> {
        self.avps().framed().filter(move |a| a.key() == key)
    }

    /// The typed value of the first top-level AVP `def`, if present.
    pub fn get<'a, T: AvpType>(
        &'a self,
        def: TypedAvp<T>,
    ) -> Option<Result<T::Value<'a>, crate::ValueError>> {
        self.find(def.key()).map(|a| T::decode(a.data))
    }

    /// A zero-copy `Bytes` for a slice of this message (for example an AVP's `data`).
    ///
    /// # Panics
    /// If `sub` is not a slice of this message's buffer.
    pub fn slice(&self, sub: &[u8]) -> Bytes {
        self.bytes.slice_ref(sub)
    }

    /// The Session-Id, when the message has one.
    pub fn session_id(&self) -> Option<&str> {
        let a = self.find(AvpKey::new(263, 0))?;
        std::str::from_utf8(a.data).ok()
    }

    /// Command name for display ("CCR", "CEA", …) from the embedded dictionary, or the code.
    pub fn command_label(&self) -> String {
        crate::dict::Dictionary::embedded().command_label(&self.header)
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("header", &self.header)
            .field("len", &self.bytes.len())
            .finish()
    }
}
