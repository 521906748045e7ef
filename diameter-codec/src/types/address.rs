//! The Address type (RFC 6733 §4.3.1): a 2-octet IANA address family, then the address.

use crate::error::ValueError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IANA address family numbers used on the wire.
pub mod family {
    /// IPv4.
    pub const IPV4: u16 = 1;
    /// IPv6.
    pub const IPV6: u16 = 2;
    /// E.164 (telephone number, ASCII digits).
    pub const E164: u16 = 8;
}

/// A decoded Address value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Address<'a> {
    /// Family 1.
    V4(Ipv4Addr),
    /// Family 2.
    V6(Ipv6Addr),
    /// Family 8: digits.
    E164(&'a str),
    /// Another family, kept raw so relays and renderers keep it intact.
    Other {
        /// IANA address family.
        family: u16,
        /// The address bytes.
        value: &'a [u8],
    },
}

impl<'a> Address<'a> {
    /// Parses an Address payload. Families 1 and 2 must have exactly 4 and 16 octets, E.164
    /// must be digits; the reserved families 0 and 65535 are refused (bad-inputs 23: 5004).
    pub fn parse(data: &'a [u8]) -> Result<Self, ValueError> {
        let Some((fam, value)) = data.split_first_chunk::<2>() else {
            return Err(ValueError::Invalid("Address shorter than its family"));
        };
        let family = u16::from_be_bytes(*fam);
        match family {
            family::IPV4 => <[u8; 4]>::try_from(value)
                .map(|b| Self::V4(Ipv4Addr::from(b)))
                .map_err(|_| ValueError::Invalid("IPv4 Address must have 4 octets")),
            family::IPV6 => <[u8; 16]>::try_from(value)
                .map(|b| Self::V6(Ipv6Addr::from(b)))
                .map_err(|_| ValueError::Invalid("IPv6 Address must have 16 octets")),
            family::E164 => match std::str::from_utf8(value) {
                Ok(s) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => {
                    Ok(Self::E164(s))
                }
                _ => Err(ValueError::Invalid("E.164 Address must be ASCII digits")),
            },
            0 | 0xffff => Err(ValueError::Invalid("reserved address family")),
            _ => Ok(Self::Other { family, value }),
        }
    }

    /// The IP address, for families 1 and 2.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Self::V4(a) => Some(IpAddr::V4(a)),
            Self::V6(a) => Some(IpAddr::V6(a)),
            _ => None,
        }
    }
}

impl fmt::Display for Address<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(a) => a.fmt(f),
            Self::V6(a) => a.fmt(f),
            Self::E164(s) => write!(f, "tel:{s}"),
            Self::Other { family, value } => {
                write!(f, "family {family}: ")?;
                value.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// Encodes an IP address as an Address payload.
pub fn encode_ip(ip: IpAddr, out: &mut impl bytes::BufMut) {
    match ip {
        IpAddr::V4(a) => {
            out.put_u16(family::IPV4);
            out.put_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.put_u16(family::IPV6);
            out.put_slice(&a.octets());
        }
    }
}
