//! IPFilterRule (RFC 6733 §4.3.1), parsed far enough for Flow-Description (TS 29.214
//! §5.3.8): action, direction, protocol, source and destination with masks and ports.
//!
//! ```text
//! action dir proto from src to dst [options]
//! src/dst = ["!"] ( "any" / "assigned" / ipno / ipno "/" bits ) [ports]
//! ports   = ( port / port "-" port ) *( "," ( port / port "-" port ) )
//! ```
//!
//! Options are kept as text: they are not used by Flow-Description.

use crate::error::ValueError;
use std::fmt;
use std::net::IpAddr;

/// `permit` or `deny`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FilterAction {
    /// Allow packets that match.
    Permit,
    /// Drop packets that match.
    Deny,
}

/// `in` (from the terminal) or `out` (to the terminal).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FilterDirection {
    /// Incoming: from the terminal.
    In,
    /// Outgoing: to the terminal.
    Out,
}

/// The address part of a source or destination.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FilterAddress {
    /// `any`.
    Any,
    /// `assigned`: the address(es) assigned to the terminal.
    Assigned,
    /// An address with its prefix length (32 or 128 when no mask is written).
    Net {
        /// The address.
        ip: IpAddr,
        /// Prefix length in bits.
        prefix: u8,
    },
}

/// One side of a rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FilterEndpoint<'a> {
    /// `!`: match anything but this.
    pub negated: bool,
    /// The address.
    pub address: FilterAddress,
    /// The port list as written (already checked), empty for none.
    pub ports: &'a str,
}

impl FilterEndpoint<'_> {
    /// Port ranges (a single port is `(p, p)`).
    pub fn port_ranges(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.ports
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|p| parse_port_range(p).ok())
    }
}

/// A parsed IPFilterRule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpFilterRule<'a> {
    /// permit / deny.
    pub action: FilterAction,
    /// in / out.
    pub direction: FilterDirection,
    /// IP protocol number; `None` for `ip` (any protocol).
    pub protocol: Option<u8>,
    /// Source.
    pub src: FilterEndpoint<'a>,
    /// Destination.
    pub dst: FilterEndpoint<'a>,
    /// Options after the destination, as text (may be empty).
    pub options: &'a str,
}

const BAD: ValueError = ValueError::Invalid("not an IPFilterRule (RFC 6733 §4.3.1)");

impl<'a> IpFilterRule<'a> {
    /// Parses an IPFilterRule payload.
    pub fn parse(data: &'a [u8]) -> Result<Self, ValueError> {
        let s = std::str::from_utf8(data)
            .map_err(|_| ValueError::Invalid("IPFilterRule is not UTF-8"))?;
        Self::parse_str(s)
    }

    /// Parses an IPFilterRule string.
    pub fn parse_str(s: &'a str) -> Result<Self, ValueError> {
        let mut toks = Tokens { s, pos: 0 };
        let action = match toks.next().ok_or(BAD)? {
            "permit" => FilterAction::Permit,
            "deny" => FilterAction::Deny,
            _ => {
                return Err(ValueError::Invalid(
                    "IPFilterRule action must be permit or deny",
                ));
            }
        };
        let direction = match toks.next().ok_or(BAD)? {
            "in" => FilterDirection::In,
            "out" => FilterDirection::Out,
            _ => {
                return Err(ValueError::Invalid(
                    "IPFilterRule direction must be in or out",
                ));
            }
        };
        let protocol = match toks.next().ok_or(BAD)? {
            "ip" => None,
            // Names are not in the RFC grammar but common in the field.
            "tcp" => Some(6),
            "udp" => Some(17),
            "icmp" => Some(1),
            n => Some(
                n.parse::<u8>()
                    .map_err(|_| ValueError::Invalid("IPFilterRule protocol out of range"))?,
            ),
        };
        if toks.next() != Some("from") {
            return Err(BAD);
        }
        let src = endpoint(&mut toks)?;
        if toks.next() != Some("to") {
            return Err(BAD);
        }
        let dst = endpoint(&mut toks)?;
        let options = toks.rest();
        Ok(Self {
            action,
            direction,
            protocol,
            src,
            dst,
            options,
        })
    }
}

/// Splits a rule into words at ASCII whitespace (the RFC's separator is a space). Works on
/// bytes: a word ends at an ASCII byte, which is always a char boundary. Each byte is read
/// once: a word looked at and not taken is looked at on a copy.
#[derive(Clone, Copy)]
struct Tokens<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn skip_ws(&mut self) {
        let b = self.s.as_bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn next(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let (b, start) = (self.s.as_bytes(), self.pos);
        while self.pos < b.len() && !b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        self.s.get(start..self.pos).filter(|t| !t.is_empty())
    }
    fn rest(&mut self) -> &'a str {
        self.skip_ws();
        self.s[self.pos..].trim_end_matches(|c: char| c.is_ascii_whitespace())
    }
}

fn endpoint<'a>(toks: &mut Tokens<'a>) -> Result<FilterEndpoint<'a>, ValueError> {
    let mut t = toks.next().ok_or(BAD)?;
    let negated = t.starts_with('!');
    if negated {
        t = &t[1..];
        if t.is_empty() {
            t = toks.next().ok_or(BAD)?;
        }
    }
    let address = match t {
        "any" => FilterAddress::Any,
        "assigned" => FilterAddress::Assigned,
        _ => {
            let (ip, mask) = match split_once_ascii(t, b'/') {
                Some((ip, m)) => (ip, Some(m)),
                None => (t, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| ValueError::Invalid("IPFilterRule address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match mask {
                None => max,
                Some(m) => match m.parse::<u8>() {
                    Ok(p) if p <= max => p,
                    _ => return Err(ValueError::Invalid("IPFilterRule mask out of range")),
                },
            };
            FilterAddress::Net { ip, prefix }
        }
    };
    let mut ahead = *toks;
    let ports = match ahead.next() {
        Some(p) if p.starts_with(|c: char| c.is_ascii_digit()) => {
            let mut list = p;
            while let Some((r, more)) = split_once_ascii(list, b',') {
                parse_port_range(r)?;
                list = more;
            }
            parse_port_range(list)?;
            *toks = ahead;
            p
        }
        _ => "",
    };
    Ok(FilterEndpoint {
        negated,
        address,
        ports,
    })
}

/// `s` split around the first `sep`, an ASCII byte, so both sides are whole chars: a byte
/// search, cheaper than `str::split_once` on these words of a few bytes.
fn split_once_ascii(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

fn parse_port_range(r: &str) -> Result<(u16, u16), ValueError> {
    let bad = ValueError::Invalid("IPFilterRule port");
    let (lo, hi) = match split_once_ascii(r, b'-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad)?,
            b.parse::<u16>().map_err(|_| bad)?,
        ),
        None => {
            let p = r.parse::<u16>().map_err(|_| bad)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad);
    }
    Ok((lo, hi))
}

impl fmt::Display for FilterEndpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("!")?;
        }
        match self.address {
            FilterAddress::Any => f.write_str("any")?,
            FilterAddress::Assigned => f.write_str("assigned")?,
            FilterAddress::Net { ip, prefix } => {
                let full = if ip.is_ipv4() { 32 } else { 128 };
                if prefix == full {
                    write!(f, "{ip}")?
                } else {
                    write!(f, "{ip}/{prefix}")?
                }
            }
        }
        if !self.ports.is_empty() {
            write!(f, " {}", self.ports)?;
        }
        Ok(())
    }
}

impl fmt::Display for IpFilterRule<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = if self.action == FilterAction::Permit {
            "permit"
        } else {
            "deny"
        };
        let d = if self.direction == FilterDirection::In {
            "in"
        } else {
            "out"
        };
        write!(f, "{a} {d} ")?;
        match self.protocol {
            None => f.write_str("ip")?,
            Some(p) => write!(f, "{p}")?,
        }
        write!(f, " from {} to {}", self.src, self.dst)?;
        if !self.options.is_empty() {
            write!(f, " {}", self.options)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_descriptions() {
        let r =
            IpFilterRule::parse_str("permit out 17 from 192.0.2.10/32 5060-5070 to 10.1.2.3 49152")
                .unwrap();
        assert_eq!(r.action, FilterAction::Permit);
        assert_eq!(r.direction, FilterDirection::Out);
        assert_eq!(r.protocol, Some(17));
        assert_eq!(r.src.port_ranges().collect::<Vec<_>>(), vec![(5060, 5070)]);
        assert_eq!(
            r.dst.port_ranges().collect::<Vec<_>>(),
            vec![(49152, 49152)]
        );
        assert_eq!(
            r.to_string(),
            "permit out 17 from 192.0.2.10 5060-5070 to 10.1.2.3 49152"
        );
        let r =
            IpFilterRule::parse_str("deny in ip from !any to assigned 80,443 established").unwrap();
        assert!(r.src.negated);
        assert_eq!(r.dst.address, FilterAddress::Assigned);
        assert_eq!(r.options, "established");
        let r = IpFilterRule::parse_str("permit in 6 from any 80,443,8000-8080 to any").unwrap();
        let ranges = r.src.port_ranges().collect::<Vec<_>>();
        assert_eq!(ranges, vec![(80, 80), (443, 443), (8000, 8080)]);
        let r = IpFilterRule::parse_str("permit out ip from 2001:db8::/32 to any").unwrap();
        assert_eq!(
            r.src.address,
            FilterAddress::Net {
                ip: "2001:db8::".parse().unwrap(),
                prefix: 32
            }
        );
        // Words are separated by ASCII whitespace only.
        assert!(IpFilterRule::parse_str("permit\tout ip  from any to any\n").is_ok());
        for bad in [
            "",
            "permit\u{a0}out ip from any to any",
            "allow out ip from any to any",
            "permit up ip from any to any",
            "permit out 300 from any to any",
            "permit out ip from 10.0.0.0/33 to any",
            "permit out ip from 2001:db8::/129 to any",
            "permit out ip from any 70000 to any",
            "permit out ip from any 9-1 to any",
            "permit out ip from any 80, to any",
            "permit out ip from any 80,,443 to any",
            "permit out ip from any 1-2-3 to any",
            "permit out ip from 10.0.0.0/ to any",
            "permit out ip any to any",
        ] {
            assert!(IpFilterRule::parse_str(bad).is_err(), "{bad}");
        }
    }
}
