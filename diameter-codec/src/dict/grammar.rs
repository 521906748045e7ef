//! Grammar items of the RFC 6733 §3.2 command ABNF, as written in the dictionaries:
//! `<Session-Id>`, `{Origin-Host}`, `[Destination-Host]`, `*[Proxy-Info]`, `1*{X}`,
//! `0*2[X]`, `*[AVP]`.

use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, u32 as dec_u32};
use nom::combinator::{all_consuming, opt};
use nom::sequence::delimited;

/// How an element is bracketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `<X>`: fixed position.
    Fixed,
    /// `{X}`: required.
    Required,
    /// `[X]`: optional.
    Optional,
}

/// One parsed grammar item, before its name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrammarItem {
    /// Bracket kind.
    pub kind: RuleKind,
    /// Fewest occurrences.
    pub min: u32,
    /// Most occurrences (`u32::MAX` for no limit).
    pub max: u32,
    /// The AVP name, or `AVP` for "any AVP".
    pub name: String,
}

/// Parses one item. RFC 6733 §3.2: "If a fixed or required rule has no qualifier, then
/// exactly one such AVP MUST be present. If an optional rule has no qualifier, then 0 or 1
/// such AVP may be present"; with a qualifier, `min` defaults to 0 (fixed, optional) or 1
/// (required) and `max` to infinity.
pub fn parse_item(s: &str) -> Result<GrammarItem, String> {
    let name = || take_while1(|c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let qualifier = (opt(dec_u32), char('*'), opt(dec_u32));
    let body = alt((
        delimited(tag("<"), name(), tag(">")).map(|n| (RuleKind::Fixed, n)),
        delimited(tag("{"), name(), tag("}")).map(|n| (RuleKind::Required, n)),
        delimited(tag("["), name(), tag("]")).map(|n| (RuleKind::Optional, n)),
    ));
    let mut item = all_consuming((opt(qualifier), body));
    let parsed: nom::IResult<&str, _> = item.parse(s.trim());
    let (_, (q, (kind, name))) = parsed.map_err(|_| format!("bad grammar item {s:?}"))?;
    let (min, max) = match q {
        None => match kind {
            RuleKind::Optional => (0, 1),
            _ => (1, 1),
        },
        Some((min, _, max)) => {
            let dmin = if kind == RuleKind::Required { 1 } else { 0 };
            (min.unwrap_or(dmin), max.unwrap_or(u32::MAX))
        }
    };
    if max < min || max == 0 {
        return Err(format!("bad qualifier in {s:?}"));
    }
    if kind == RuleKind::Required && min == 0 {
        return Err(format!("required item with min 0 in {s:?}"));
    }
    Ok(GrammarItem {
        kind,
        min,
        max,
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items() {
        let p = |s| {
            let i = parse_item(s).unwrap();
            (i.kind, i.min, i.max, i.name)
        };
        assert_eq!(
            p("<Session-Id>"),
            (RuleKind::Fixed, 1, 1, "Session-Id".into())
        );
        assert_eq!(
            p("{Origin-Host}"),
            (RuleKind::Required, 1, 1, "Origin-Host".into())
        );
        assert_eq!(
            p("[Destination-Host]"),
            (RuleKind::Optional, 0, 1, "Destination-Host".into())
        );
        assert_eq!(
            p("*[Proxy-Info]"),
            (RuleKind::Optional, 0, u32::MAX, "Proxy-Info".into())
        );
        assert_eq!(
            p("1*{Host-IP-Address}"),
            (RuleKind::Required, 1, u32::MAX, "Host-IP-Address".into())
        );
        assert_eq!(p("*{X}"), (RuleKind::Required, 1, u32::MAX, "X".into()));
        assert_eq!(
            p("0*2[AN-GW-Address]"),
            (RuleKind::Optional, 0, 2, "AN-GW-Address".into())
        );
        assert_eq!(p("*[AVP]"), (RuleKind::Optional, 0, u32::MAX, "AVP".into()));
        for bad in ["", "X", "{X]", "2*1[X]", "0*{X}", "*0[X]", "[X] y"] {
            assert!(parse_item(bad).is_err(), "{bad}");
        }
    }
}
