//! What validation found in a message: deviations it accepted at the chosen level, and the
//! error that rejects it, each with the answer strict validation would give.

use crate::avp::AvpKey;
use crate::dict::{Dictionary, Rule, RuleKind};
use crate::encode::ErrorReport;
use std::fmt;

/// Whether a finding rejects the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Accepted at this level and reported; [`Finding::report`] is what the strict level
    /// answers.
    Deviation,
    /// The message is rejected with [`Finding::report`].
    Error,
}

impl Severity {
    /// A short lower-case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deviation => "deviation",
            Self::Error => "error",
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// A fixed or required AVP is missing (5005).
    MissingAvp,
    /// An AVP occurs more often than its rule allows (5009).
    TooMany,
    /// A fixed-position AVP is present but not in its place (5004).
    Misplaced,
    /// A known AVP that the grammar does not allow (5008).
    NotAllowed,
    /// The M bit disagrees with the AVP's definition (3009 when strict).
    MBit,
    /// Other AVP flags inconsistent with the definition: a V bit that disagrees (3009).
    FlagBits,
    /// An unknown AVP with the M bit set (5001).
    UnknownMandatory,
    /// A value the AVP's type or definition does not allow (5004).
    InvalidValue,
    /// An AVP whose length does not frame or does not suit its type (5014).
    InvalidLength,
    /// A header bit in error (3008, 5013).
    HeaderBits,
    /// A command or application this dictionary does not know (3001, 3007).
    Unsupported,
    /// Nesting or AVP count beyond the limits (5012).
    Limit,
}

impl FindingKind {
    /// A short snake-case label (metrics, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingAvp => "missing_avp",
            Self::TooMany => "too_many",
            Self::Misplaced => "misplaced",
            Self::NotAllowed => "not_allowed",
            Self::MBit => "m_bit",
            Self::FlagBits => "flag_bits",
            Self::UnknownMandatory => "unknown_mandatory",
            Self::InvalidValue => "invalid_value",
            Self::InvalidLength => "invalid_length",
            Self::HeaderBits => "header_bits",
            Self::Unsupported => "unsupported",
            Self::Limit => "limit",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing validation found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Accepted or rejecting.
    pub severity: Severity,
    /// What is wrong.
    pub kind: FindingKind,
    /// The offending AVP and the Grouped AVPs around it, outermost first (for a missing AVP,
    /// the one that is missing); empty for header and command errors.
    pub path: Vec<AvpKey>,
    /// The same path by dictionary names, `/`-separated (`Supported-Features/Vendor-Id`);
    /// unknown AVPs as `AVP <code>` or `AVP <code>/<vendor>`.
    pub path_names: String,
    /// The rule at stake: the grammar item (`0*2[Flow-Description]`), the flag rule
    /// (`M must`), or the type check.
    pub rule: String,
    /// The answer strict validation gives for it: Result-Code, Failed-AVP wrapped in its
    /// parents (RFC 6733 §7.5), Error-Message naming the AVP and rule.
    pub report: ErrorReport,
}

impl Finding {
    /// The dictionary name of the offending AVP (the last of [`Finding::path_names`]).
    pub fn avp_name(&self) -> &str {
        self.path_names.rsplit('/').next().unwrap_or("")
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.severity.as_str(), self.kind)?;
        if !self.path_names.is_empty() {
            write!(f, " {}", self.path_names)?;
        }
        if !self.rule.is_empty() {
            write!(f, " [{}]", self.rule)?;
        }
        write!(f, " -> {}", self.report.result_code)
    }
}

/// Everything validation found in one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validation {
    /// Deviations accepted at the chosen level, in the order met. Empty (and unallocated)
    /// for a clean message.
    pub deviations: Vec<Finding>,
    /// The first error, which rejects the message.
    pub error: Option<Finding>,
}

impl Validation {
    /// Whether the message is accepted (possibly with deviations).
    pub fn is_accepted(&self) -> bool {
        self.error.is_none()
    }

    /// Every finding: the deviations, then the error if any.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.deviations.iter().chain(self.error.as_ref())
    }

    /// The deviations when accepted, else the error's answer.
    pub fn into_result(self) -> Result<Vec<Finding>, ErrorReport> {
        match self.error {
            None => Ok(self.deviations),
            Some(e) => Err(e.report),
        }
    }
}

/// The name of an AVP for messages and paths.
pub(crate) fn avp_name(dict: &Dictionary, key: AvpKey) -> String {
    match dict.avp(key) {
        Some(d) => d.name.clone(),
        None if key.vendor == 0 => format!("AVP {}", key.code),
        None => format!("AVP {}/{}", key.code, key.vendor),
    }
}

/// A grammar rule as written in the dictionaries (RFC 6733 §3.2): `{Origin-Host}`,
/// `0*2[Flow-Description]`, `1*{X}`.
pub(crate) fn rule_text(dict: &Dictionary, r: &Rule) -> String {
    let name = &dict.avp_at(r.avp).name;
    let (open, close) = match r.kind {
        RuleKind::Fixed => ('<', '>'),
        RuleKind::Required => ('{', '}'),
        RuleKind::Optional => ('[', ']'),
    };
    let default = match r.kind {
        RuleKind::Optional => (0, 1),
        _ => (1, 1),
    };
    let q = if (r.min, r.max) == default {
        String::new()
    } else {
        // As the dictionaries write them: `*[X]`, `1*{X}`, `0*2[X]`.
        let min = if r.min == 0 && r.max == u32::MAX {
            String::new()
        } else {
            r.min.to_string()
        };
        let max = if r.max == u32::MAX {
            String::new()
        } else {
            r.max.to_string()
        };
        format!("{min}*{max}")
    };
    format!("{q}{open}{name}{close}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict::parse_item;

    /// Every rule of every grammar we ship, written back as text, parses to the same rule.
    #[test]
    fn rule_text_round_trips() {
        let d = Dictionary::embedded();
        let grammars = d
            .avps()
            .iter()
            .filter_map(|a| a.grammar.as_ref())
            .chain(d.commands().iter().flat_map(|c| [&c.request, &c.answer]));
        let mut n = 0;
        for g in grammars {
            for r in &g.rules {
                let text = rule_text(d, r);
                let item = parse_item(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(
                    (item.kind, item.min, item.max, item.name.as_str()),
                    (r.kind, r.min, r.max, d.avp_at(r.avp).name.as_str()),
                    "{text}"
                );
                n += 1;
            }
        }
        assert!(n > 1000, "{n} rules");
        let fd = d.avp_by_name("Media-Sub-Component").unwrap();
        let g = fd.grammar.as_ref().unwrap();
        let texts: Vec<_> = g.rules.iter().map(|r| rule_text(d, r)).collect();
        assert!(texts.contains(&"{Flow-Number}".to_string()), "{texts:?}");
        assert!(
            texts.contains(&"0*2[Flow-Description]".to_string()),
            "{texts:?}"
        );
    }
}
