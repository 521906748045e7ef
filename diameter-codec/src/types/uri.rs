//! DiameterURI (RFC 6733 §4.3.1):
//!
//! ```text
//! "aaa://" FQDN [ port ] [ transport ] [ protocol ]    ; or "aaas://"
//! port      = ":" 1*DIGIT        ; default 3868 for aaa, 5658 for aaas
//! transport = ";transport=" ( "tcp" / "sctp" / "udp" )
//! protocol  = ";protocol=" ( "diameter" / "radius" / "tacacs+" )
//! ```

use crate::error::ValueError;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while1};
use nom::character::complete::digit1;
use nom::combinator::{map_res, opt, value};
use nom::sequence::preceded;
use std::fmt;

/// Transport named by a DiameterURI.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UriTransport {
    /// TCP (the default for `aaa://` and `aaas://`).
    Tcp,
    /// SCTP.
    Sctp,
    /// UDP (RADIUS only).
    Udp,
}

/// Protocol named by a DiameterURI.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UriProtocol {
    /// Diameter (the default).
    Diameter,
    /// RADIUS.
    Radius,
    /// TACACS+.
    TacacsPlus,
}

/// A parsed DiameterURI.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DiameterUri<'a> {
    /// `aaas://`: TLS/DTLS is used.
    pub secure: bool,
    /// The FQDN (or address literal).
    pub fqdn: &'a str,
    /// The port, or the scheme's default (3868, or 5658 for `aaas`).
    pub port: u16,
    /// Whether the port was written explicitly.
    pub explicit_port: bool,
    /// `;transport=`, when given.
    pub transport: Option<UriTransport>,
    /// `;protocol=`, when given.
    pub protocol: Option<UriProtocol>,
}

impl<'a> DiameterUri<'a> {
    /// Parses a DiameterURI payload.
    pub fn parse(data: &'a [u8]) -> Result<Self, ValueError> {
        let s = std::str::from_utf8(data)
            .map_err(|_| ValueError::Invalid("DiameterURI is not UTF-8"))?;
        Self::parse_str(s)
    }

    /// Parses a DiameterURI string.
    pub fn parse_str(s: &'a str) -> Result<Self, ValueError> {
        let scheme = alt((
            value(true, tag_no_case("aaas://")),
            value(false, tag_no_case("aaa://")),
        ));
        let fqdn = take_while1(|c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        let port = preceded(tag(":"), map_res(digit1, str::parse::<u16>));
        let transport = preceded(
            tag_no_case(";transport="),
            alt((
                value(UriTransport::Tcp, tag_no_case("tcp")),
                value(UriTransport::Sctp, tag_no_case("sctp")),
                value(UriTransport::Udp, tag_no_case("udp")),
            )),
        );
        let protocol = preceded(
            tag_no_case(";protocol="),
            alt((
                value(UriProtocol::Diameter, tag_no_case("diameter")),
                value(UriProtocol::Radius, tag_no_case("radius")),
                value(UriProtocol::TacacsPlus, tag_no_case("tacacs+")),
            )),
        );
        let mut uri = (scheme, fqdn, opt(port), opt(transport), opt(protocol));
        let parsed: nom::IResult<&str, _> = uri.parse(s);
        match parsed {
            Ok(("", (secure, fqdn, port, transport, protocol))) => Ok(Self {
                secure,
                fqdn,
                port: port.unwrap_or(if secure { 5658 } else { 3868 }),
                explicit_port: port.is_some(),
                transport,
                protocol,
            }),
            _ => Err(ValueError::Invalid("not a DiameterURI (RFC 6733 §4.3.1)")),
        }
    }
}

impl fmt::Display for DiameterUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            if self.secure { "aaas" } else { "aaa" },
            self.fqdn
        )?;
        if self.explicit_port {
            write!(f, ":{}", self.port)?;
        }
        if let Some(t) = self.transport {
            let t = match t {
                UriTransport::Tcp => "tcp",
                UriTransport::Sctp => "sctp",
                UriTransport::Udp => "udp",
            };
            write!(f, ";transport={t}")?;
        }
        if let Some(p) = self.protocol {
            let p = match p {
                UriProtocol::Diameter => "diameter",
                UriProtocol::Radius => "radius",
                UriProtocol::TacacsPlus => "tacacs+",
            };
            write!(f, ";protocol={p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_forms() {
        let u =
            DiameterUri::parse_str("aaa://host.example.com:6666;transport=tcp;protocol=diameter")
                .unwrap();
        assert_eq!(
            (u.secure, u.fqdn, u.port),
            (false, "host.example.com", 6666)
        );
        assert_eq!(u.transport, Some(UriTransport::Tcp));
        assert_eq!(u.protocol, Some(UriProtocol::Diameter));
        assert_eq!(
            u.to_string(),
            "aaa://host.example.com:6666;transport=tcp;protocol=diameter"
        );
        let u = DiameterUri::parse_str("aaas://pcrf.example").unwrap();
        assert_eq!((u.secure, u.port, u.explicit_port), (true, 5658, false));
        for bad in [
            "",
            "aaa://",
            "http://x",
            "aaa://x:99999",
            "aaa://x;transport=quic",
            "aaa://x y",
        ] {
            assert!(DiameterUri::parse_str(bad).is_err(), "{bad}");
        }
    }
}
