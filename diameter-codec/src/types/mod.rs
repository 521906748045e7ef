//! The RFC 6733 §4.2 basic and §4.3 derived AVP data types: a runtime [`DataType`], value
//! checks, parsed value types, and the typed markers behind generated accessors.

mod address;
mod ipfilter;
mod time;
mod uri;

pub use address::{Address, encode_ip, family};
pub use ipfilter::{FilterAction, FilterAddress, FilterDirection, FilterEndpoint, IpFilterRule};
pub use time::{DiameterTime, NTP_UNIX_OFFSET};
pub use uri::{DiameterUri, UriProtocol, UriTransport};

use crate::avp::{AvpFlags, AvpIter, AvpKey};
use crate::encode::{AvpValue, OwnedAvp};
use crate::error::ValueError;
use bytes::Bytes;
use std::marker::PhantomData;

/// An AVP data type, as named in the dictionaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// RFC 6733 §4.2
    OctetString,
    /// RFC 6733 §4.2
    Integer32,
    /// RFC 6733 §4.2
    Integer64,
    /// RFC 6733 §4.2
    Unsigned32,
    /// RFC 6733 §4.2
    Unsigned64,
    /// RFC 6733 §4.2
    Float32,
    /// RFC 6733 §4.2
    Float64,
    /// RFC 6733 §4.4
    Grouped,
    /// RFC 6733 §4.3.1
    Address,
    /// RFC 6733 §4.3.1
    Time,
    /// RFC 6733 §4.3.1
    UTF8String,
    /// RFC 6733 §4.3.1
    DiameterIdentity,
    /// RFC 6733 §4.3.1
    DiameterURI,
    /// RFC 6733 §4.3.1
    Enumerated,
    /// RFC 6733 §4.3.1
    IPFilterRule,
}

impl DataType {
    /// Every type, in dictionary spelling.
    pub const ALL: [Self; 15] = [
        Self::OctetString,
        Self::Integer32,
        Self::Integer64,
        Self::Unsigned32,
        Self::Unsigned64,
        Self::Float32,
        Self::Float64,
        Self::Grouped,
        Self::Address,
        Self::Time,
        Self::UTF8String,
        Self::DiameterIdentity,
        Self::DiameterURI,
        Self::Enumerated,
        Self::IPFilterRule,
    ];

    /// The name used in the dictionaries and in the RFC.
    pub fn name(self) -> &'static str {
        match self {
            Self::OctetString => "OctetString",
            Self::Integer32 => "Integer32",
            Self::Integer64 => "Integer64",
            Self::Unsigned32 => "Unsigned32",
            Self::Unsigned64 => "Unsigned64",
            Self::Float32 => "Float32",
            Self::Float64 => "Float64",
            Self::Grouped => "Grouped",
            Self::Address => "Address",
            Self::Time => "Time",
            Self::UTF8String => "UTF8String",
            Self::DiameterIdentity => "DiameterIdentity",
            Self::DiameterURI => "DiameterURI",
            Self::Enumerated => "Enumerated",
            Self::IPFilterRule => "IPFilterRule",
        }
    }

    /// Parses a dictionary type name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The payload size of fixed-size types.
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            Self::Integer32 | Self::Unsigned32 | Self::Float32 | Self::Enumerated | Self::Time => {
                Some(4)
            }
            Self::Integer64 | Self::Unsigned64 | Self::Float64 => Some(8),
            _ => None,
        }
    }

    /// The smallest valid payload: what a Failed-AVP for a missing or mis-sized AVP carries
    /// (RFC 6733 §7.5: "zero filled payload of the minimum required length").
    pub fn min_len(self) -> usize {
        match self {
            Self::Address => 6,
            t => t.fixed_len().unwrap_or(0),
        }
    }

    /// Checks a payload against this type. Grouped payloads are checked by the validator,
    /// which walks them with the dictionary.
    #[inline]
    pub fn check(self, data: &[u8]) -> Result<(), ValueError> {
        if let Some(n) = self.fixed_len() {
            return if data.len() == n {
                Ok(())
            } else {
                Err(ValueError::WrongLength {
                    expected: n,
                    actual: data.len(),
                })
            };
        }
        match self {
            // RFC 6733 §4.3.1 UTF8String: UTF-8 (RFC 3629), of which ASCII is the common
            // case and a word-at-a-time test; anything else gets the full validation.
            Self::UTF8String if data.is_ascii() => Ok(()),
            Self::UTF8String => std::str::from_utf8(data)
                .map(|_| ())
                .map_err(|_| ValueError::Invalid("invalid UTF-8")),
            Self::DiameterIdentity => check_identity(data),
            Self::Address => Address::parse(data).map(|_| ()),
            Self::DiameterURI => DiameterUri::parse(data).map(|_| ()),
            Self::IPFilterRule => IpFilterRule::parse(data).map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// RFC 6733 §4.3.1: a DiameterIdentity is an FQDN or realm in ASCII (internationalised names
/// are carried in their ASCII form). An empty identity is invalid (bad-inputs 21).
fn check_identity(data: &[u8]) -> Result<(), ValueError> {
    if data.is_empty() {
        return Err(ValueError::Invalid("empty DiameterIdentity"));
    }
    if !all_graphic(data) {
        return Err(ValueError::Invalid(
            "DiameterIdentity must be printable ASCII",
        ));
    }
    Ok(())
}

/// Whether every byte is printable ASCII other than space (0x21..=0x7e, as
/// `u8::is_ascii_graphic`), eight bytes at a time.
fn all_graphic(data: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    // Per byte b of a word x, the top bit of:
    // - `(x - 0x21..) & !x` is set for some byte iff some b < 0x21 (a borrow can only
    //   start at such a byte, and a byte with its own top bit set is masked by `!x`);
    // - `(x + 0x01..) | x` is set for some byte iff some b > 0x7e (0x7f carries into its
    //   top bit, bytes ≥ 0x80 have it already).
    let bad = |x: u64| ((x.wrapping_sub(ONES * 0x21) & !x) | x.wrapping_add(ONES) | x) & TOPS;
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    let Some(last) = data.len().checked_sub(8) else {
        return data.iter().all(u8::is_ascii_graphic);
    };
    let mut chunks = data.chunks_exact(8);
    if chunks.any(|c| bad(word(c)) != 0) {
        return false;
    }
    // The tail as the last eight bytes, the ones before it already checked.
    chunks.remainder().is_empty() || bad(word(&data[last..])) == 0
}

#[cfg(test)]
mod graphic_tests {
    #[test]
    fn all_graphic_matches_the_byte_test() {
        // Every byte value at every position of every length up to three words, among
        // graphic neighbours, plus runs of each value.
        for len in 0..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(
                        super::all_graphic(&v),
                        b.is_ascii_graphic(),
                        "{len} {at} {b}"
                    );
                }
            }
        }
        for b in 0..=255u8 {
            let v = vec![b; 19];
            assert_eq!(super::all_graphic(&v), b.is_ascii_graphic(), "run of {b}");
        }
    }
}

/// A data type known at compile time: how to read its payload and how to build one.
pub trait AvpType {
    /// The decoded value, borrowing from the message.
    type Value<'a>;
    /// What a builder takes.
    type Input;
    /// The runtime type.
    const DATA_TYPE: DataType;
    /// Reads a payload.
    fn decode(data: &[u8]) -> Result<Self::Value<'_>, ValueError>;
    /// Turns an input into an owned value for encoding.
    fn encode(input: Self::Input) -> AvpValue;
    /// Appends the payload of an input to `out` (no header, no padding) and returns its
    /// length: what [`crate::MessageWriter`] uses to skip the owned value.
    fn put_value(input: Self::Input, out: &mut bytes::BytesMut) -> usize {
        let start = out.len();
        crate::encode::put_payload(&Self::encode(input), out);
        out.len() - start
    }
    /// The payload of an input when it can be had without encoding: a fixed-size word or a
    /// byte string, so [`crate::MessageWriter`] knows the AVP Length before it writes the
    /// header. [`Payload::Encoded`] (the default) sends the writer to [`Self::put_value`].
    #[inline]
    fn payload(_input: &Self::Input) -> Payload<'_> {
        Payload::Encoded
    }
}

/// What [`AvpType::payload`] says of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A 4-byte payload (Integer32, Unsigned32, Float32, Enumerated, Time), big-endian.
    Four([u8; 4]),
    /// An 8-byte payload (Integer64, Unsigned64, Float64), big-endian.
    Eight([u8; 8]),
    /// These bytes as they are (OctetString and the string-like types).
    Bytes(&'a [u8]),
    /// Only [`AvpType::put_value`] knows (Address, Grouped).
    Encoded,
}

/// Text input for string-like types: anything that converts into `Bytes` as UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub Bytes);

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }
}
impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}
impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// Typed markers, one per data type; generated constants name them as `ty::Unsigned32` etc.
pub mod ty {
    use super::*;

    macro_rules! int_type {
        ($name:ident, $t:ty, $dt:ident, $variant:ident, $size:ident) => {
            #[doc = concat!("Marker for ", stringify!($dt), ".")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl AvpType for $name {
                type Value<'a> = $t;
                type Input = $t;
                const DATA_TYPE: DataType = DataType::$dt;
                fn decode(data: &[u8]) -> Result<$t, ValueError> {
                    data.try_into()
                        .map(<$t>::from_be_bytes)
                        .map_err(|_| ValueError::WrongLength {
                            expected: size_of::<$t>(),
                            actual: data.len(),
                        })
                }
                fn encode(v: $t) -> AvpValue {
                    AvpValue::$variant(v)
                }
                #[inline]
                fn put_value(v: $t, out: &mut bytes::BytesMut) -> usize {
                    bytes::BufMut::put_slice(out, &v.to_be_bytes());
                    size_of::<$t>()
                }
                #[inline]
                fn payload(v: &$t) -> Payload<'_> {
                    Payload::$size(v.to_be_bytes())
                }
            }
        };
    }
    int_type!(Integer32, i32, Integer32, I32, Four);
    int_type!(Integer64, i64, Integer64, I64, Eight);
    int_type!(Unsigned32, u32, Unsigned32, U32, Four);
    int_type!(Unsigned64, u64, Unsigned64, U64, Eight);
    int_type!(Float32, f32, Float32, F32, Four);
    int_type!(Float64, f64, Float64, F64, Eight);

    /// Types whose builder input is text and whose payload is that text as it is; `$decode`
    /// reads a received payload.
    macro_rules! text_type {
        ($name:ident, $dt:ident, $value:ty, $decode:expr) => {
            #[doc = concat!("Marker for ", stringify!($dt), ".")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl AvpType for $name {
                type Value<'a> = $value;
                type Input = Text;
                const DATA_TYPE: DataType = DataType::$dt;
                fn decode(data: &[u8]) -> Result<Self::Value<'_>, ValueError> {
                    $decode(data)
                }
                fn encode(v: Text) -> AvpValue {
                    AvpValue::Bytes(v.0)
                }
                #[inline]
                fn put_value(v: Text, out: &mut bytes::BytesMut) -> usize {
                    bytes::BufMut::put_slice(out, &v.0);
                    v.0.len()
                }
                #[inline]
                fn payload(v: &Text) -> Payload<'_> {
                    Payload::Bytes(&v.0)
                }
            }
        };
    }
    /// The payload as text once `ty`'s check passed.
    fn checked_str(ty: DataType, d: &[u8]) -> Result<&str, ValueError> {
        ty.check(d)?;
        Ok(std::str::from_utf8(d).unwrap_or_default())
    }
    text_type!(Utf8String, UTF8String, &'a str, |d| checked_str(
        DataType::UTF8String,
        d
    ));
    text_type!(
        DiameterIdentity,
        DiameterIdentity,
        &'a str,
        |d| checked_str(DataType::DiameterIdentity, d)
    );
    text_type!(
        DiameterUri,
        DiameterURI,
        super::DiameterUri<'a>,
        super::DiameterUri::parse
    );
    text_type!(
        IpFilterRule,
        IPFilterRule,
        super::IpFilterRule<'a>,
        super::IpFilterRule::parse
    );

    /// Marker for OctetString.
    #[derive(Debug, Clone, Copy)]
    pub struct OctetString;
    impl AvpType for OctetString {
        type Value<'a> = &'a [u8];
        type Input = Bytes;
        const DATA_TYPE: DataType = DataType::OctetString;
        fn decode(data: &[u8]) -> Result<&[u8], ValueError> {
            Ok(data)
        }
        fn encode(v: Bytes) -> AvpValue {
            AvpValue::Bytes(v)
        }
        #[inline]
        fn put_value(v: Bytes, out: &mut bytes::BytesMut) -> usize {
            bytes::BufMut::put_slice(out, &v);
            v.len()
        }
        #[inline]
        fn payload(v: &Bytes) -> Payload<'_> {
            Payload::Bytes(v)
        }
    }

    /// Marker for Address.
    #[derive(Debug, Clone, Copy)]
    pub struct Address;
    impl AvpType for Address {
        type Value<'a> = super::Address<'a>;
        type Input = std::net::IpAddr;
        const DATA_TYPE: DataType = DataType::Address;
        fn decode(data: &[u8]) -> Result<Self::Value<'_>, ValueError> {
            super::Address::parse(data)
        }
        fn encode(v: std::net::IpAddr) -> AvpValue {
            AvpValue::Address(v)
        }
    }

    /// Marker for Time.
    #[derive(Debug, Clone, Copy)]
    pub struct Time;
    impl AvpType for Time {
        type Value<'a> = DiameterTime;
        type Input = DiameterTime;
        const DATA_TYPE: DataType = DataType::Time;
        fn decode(data: &[u8]) -> Result<DiameterTime, ValueError> {
            DiameterTime::parse(data)
        }
        fn encode(v: DiameterTime) -> AvpValue {
            AvpValue::U32(v.0)
        }
        #[inline]
        fn put_value(v: DiameterTime, out: &mut bytes::BytesMut) -> usize {
            bytes::BufMut::put_u32(out, v.0);
            4
        }
        #[inline]
        fn payload(v: &DiameterTime) -> Payload<'_> {
            Payload::Four(v.0.to_be_bytes())
        }
    }

    /// Marker for Grouped: the value is an iterator over the children.
    #[derive(Debug, Clone, Copy)]
    pub struct Grouped;
    impl AvpType for Grouped {
        type Value<'a> = AvpIter<'a>;
        type Input = Vec<OwnedAvp>;
        const DATA_TYPE: DataType = DataType::Grouped;
        fn decode(data: &[u8]) -> Result<AvpIter<'_>, ValueError> {
            Ok(AvpIter::new(data))
        }
        fn encode(v: Vec<OwnedAvp>) -> AvpValue {
            AvpValue::Grouped(v)
        }
    }

    /// Marker for an Enumerated AVP whose values are the open newtype `E` (generated
    /// newtypes are `Copy`, which lets a writer read the value without taking it).
    #[derive(Debug, Clone, Copy)]
    pub struct Enumerated<E>(PhantomData<fn() -> E>);
    impl<E: From<i32> + Into<i32> + Copy> AvpType for Enumerated<E> {
        type Value<'a> = E;
        type Input = E;
        const DATA_TYPE: DataType = DataType::Enumerated;
        fn decode(data: &[u8]) -> Result<E, ValueError> {
            Integer32::decode(data).map(E::from)
        }
        fn encode(v: E) -> AvpValue {
            AvpValue::I32(v.into())
        }
        #[inline]
        fn put_value(v: E, out: &mut bytes::BytesMut) -> usize {
            bytes::BufMut::put_i32(out, v.into());
            4
        }
        #[inline]
        fn payload(v: &E) -> Payload<'_> {
            Payload::Four((*v).into().to_be_bytes())
        }
    }
}

/// A dictionary AVP known at compile time: its key, the flags it is sent with, and its type.
/// Generated constants (`diameter_codec::dict::base::ORIGIN_HOST`, …) are of this type.
pub struct TypedAvp<T> {
    code: u32,
    vendor: u32,
    flags: u8,
    name: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for TypedAvp<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for TypedAvp<T> {}
impl<T> std::fmt::Debug for TypedAvp<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}/{})", self.name, self.code, self.vendor)
    }
}

impl<T: AvpType> TypedAvp<T> {
    /// A definition; `flags` are the flags the AVP is sent with (V is derived from vendor).
    pub const fn new(name: &'static str, code: u32, vendor: u32, mandatory: bool) -> Self {
        let mut flags = if mandatory { AvpFlags::MANDATORY } else { 0 };
        if vendor != 0 {
            flags |= AvpFlags::VENDOR;
        }
        Self {
            code,
            vendor,
            flags,
            name,
            _t: PhantomData,
        }
    }
    /// (code, vendor).
    pub const fn key(&self) -> AvpKey {
        AvpKey::new(self.code, self.vendor)
    }
    /// AVP Code.
    pub const fn code(&self) -> u32 {
        self.code
    }
    /// Vendor-Id (0 for none).
    pub const fn vendor(&self) -> u32 {
        self.vendor
    }
    /// Dictionary name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// Flags it is sent with.
    pub const fn flags(&self) -> AvpFlags {
        AvpFlags(self.flags)
    }
    /// The first 8 header bytes (code, flags with V, AVP Length 0) as one big-endian word,
    /// so a writer adds the length and stores the header at once.
    #[inline]
    pub(crate) const fn head(&self) -> u64 {
        ((self.code as u64) << 32) | ((self.flags as u64) << 24)
    }
    /// Reads this AVP's value from a payload.
    pub fn decode<'a>(&self, data: &'a [u8]) -> Result<T::Value<'a>, ValueError> {
        T::decode(data)
    }
    /// An AVP carrying `v`, with this definition's code, vendor and flags.
    pub fn with(&self, v: impl Into<T::Input>) -> OwnedAvp {
        OwnedAvp {
            code: self.code,
            flags: AvpFlags(self.flags),
            vendor: self.vendor,
            value: T::encode(v.into()),
        }
    }
}
