//! The runtime dictionary: applications, AVPs and command grammars loaded from the TOML
//! files in `dictionaries/` (embedded) and any files an operator adds.
//!
//! Lookups on the hot path (AVP by key, command by code and application) are single
//! hash-map probes on integer keys; a grammar rule by AVP is one probe of a small
//! open-addressed table per grammar that also carries what validation reads of the AVP.

mod grammar;
mod load;

pub use grammar::{GrammarItem, RuleKind, parse_item};
pub use load::{DictError, DictionaryBuilder};

pub use crate::generated::*;

use crate::avp::AvpKey;
use crate::header::Header;
use crate::types::DataType;
use rustc_hash::FxHashMap;
use std::sync::OnceLock;

/// A flag rule from the dictionary (RFC 6733 §4.5 "AVP Flag rules" columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagRule {
    /// MUST be set.
    Must,
    /// MAY be set (also used where sources disagree).
    May,
    /// MUST NOT be set.
    MustNot,
}

impl FlagRule {
    /// Whether `set` satisfies this rule.
    pub fn allows(self, set: bool) -> bool {
        match self {
            Self::Must => set,
            Self::May => true,
            Self::MustNot => !set,
        }
    }
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        match s {
            "must" => Some(Self::Must),
            "may" => Some(Self::May),
            "mustnot" => Some(Self::MustNot),
            _ => None,
        }
    }
}

/// A vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorDef {
    /// IANA Private Enterprise Number.
    pub id: u32,
    /// Name.
    pub name: String,
}

/// Application kind, as advertised in CER/CEA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Auth-Application-Id.
    Auth,
    /// Acct-Application-Id.
    Acct,
    /// The relay application (0xffffffff).
    Relay,
}

/// An application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationDef {
    /// Application-Id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: AppKind,
    /// Vendor-Id for Vendor-Specific-Application-Id, 0 for IETF applications.
    pub vendor: u32,
    /// Specification reference.
    pub spec: String,
    /// The dictionary file it came from.
    pub source: String,
}

/// An AVP definition.
#[derive(Debug, Clone, PartialEq)]
pub struct AvpDef {
    /// Name.
    pub name: String,
    /// (code, vendor).
    pub key: AvpKey,
    /// Data type.
    pub data_type: DataType,
    /// M-bit rule.
    pub m: FlagRule,
    /// V-bit rule.
    pub v: FlagRule,
    /// Whether we set M when sending.
    pub m_send: bool,
    /// Enumerated values, sorted by value.
    pub values: Vec<(i32, String)>,
    /// Whether values outside `values` are accepted.
    pub open: bool,
    /// Grammar of a Grouped AVP.
    pub grammar: Option<Grammar>,
    /// Specification reference.
    pub spec: String,
    /// The dictionary file it came from.
    pub source: String,
}

impl AvpDef {
    /// The name of an enumerated value.
    pub fn value_name(&self, v: i32) -> Option<&str> {
        self.values
            .binary_search_by_key(&v, |(k, _)| *k)
            .ok()
            .map(|i| self.values[i].1.as_str())
    }
}

/// What validation reads of an AVP on its hot path, packed small so that checking an AVP
/// touches a few bytes instead of the whole definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvpCheck {
    /// Data type.
    pub data_type: DataType,
    /// M-bit rule.
    pub m: FlagRule,
    /// V-bit rule.
    pub v: FlagRule,
    /// Enumerated with a closed list of values.
    pub closed_enum: bool,
}

impl AvpCheck {
    /// The summary of a definition.
    pub(crate) fn of(a: &AvpDef) -> Self {
        Self {
            data_type: a.data_type,
            m: a.m,
            v: a.v,
            closed_enum: a.data_type == DataType::Enumerated && !a.open && !a.values.is_empty(),
        }
    }
}

/// How validation judges an AVP after its flags, decided once per definition so that the
/// walk branches once on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueCheck {
    /// Any payload is valid: an OctetString with no inner structure.
    Any,
    /// A fixed 4-byte payload (Integer32, Unsigned32, Float32, Time, open Enumerated).
    Len4,
    /// A fixed 8-byte payload (Integer64, Unsigned64, Float64).
    Len8,
    /// A closed Enumerated whose values all lie in 0..64: 4 bytes, a value in
    /// [`Hot::enum_bits`].
    SmallEnum,
    /// A Grouped AVP: its children are walked with its grammar.
    Grouped,
    /// Failed-AVP, whose content is not judged (RFC 6733 §7.5).
    FailedAvp,
    /// Everything else: [`DataType::check`], checks of inner structure, closed value lists.
    Full,
}

/// What validation reads of an AVP on its hot path: [`AvpCheck`] plus the flag rules as
/// one mask and the [`ValueCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hot {
    /// The flag bits the M and V rules constrain (RFC 6733 §4.5 "must" and "mustnot").
    pub(crate) flag_mask: u8,
    /// The value those bits must have: `flags & flag_mask == flag_want` is exactly
    /// `m.allows(M) && v.allows(V)`.
    pub(crate) flag_want: u8,
    /// How the value is judged.
    pub(crate) value: ValueCheck,
    /// For [`ValueCheck::SmallEnum`], bit `v` set for each defined value `v`.
    pub(crate) enum_bits: u64,
    /// The summary it is derived from.
    pub(crate) check: AvpCheck,
}

impl Hot {
    fn of(def: &AvpDef, check: AvpCheck) -> Self {
        let key = def.key;
        let (mut flag_mask, mut flag_want) = (0, 0);
        for (rule, bit) in [
            (check.m, crate::AvpFlags::MANDATORY),
            (check.v, crate::AvpFlags::VENDOR),
        ] {
            match rule {
                FlagRule::Must => (flag_mask, flag_want) = (flag_mask | bit, flag_want | bit),
                FlagRule::MustNot => flag_mask |= bit,
                FlagRule::May => {}
            }
        }
        // The same order of tests as the walk's general path: Failed-AVP by key first, then
        // Grouped, then values; AVPs with checks beyond their type take the general path.
        let value = if key == crate::validate::FAILED_AVP {
            ValueCheck::FailedAvp
        } else if check.data_type == DataType::Grouped {
            ValueCheck::Grouped
        } else if crate::validate::has_specific_check(key) {
            ValueCheck::Full
        } else if check.closed_enum {
            let small = def.values.iter().all(|&(v, _)| (0..64).contains(&v));
            if small {
                ValueCheck::SmallEnum
            } else {
                ValueCheck::Full
            }
        } else {
            match (check.data_type, check.data_type.fixed_len()) {
                (_, Some(4)) => ValueCheck::Len4,
                (_, Some(8)) => ValueCheck::Len8,
                (DataType::OctetString, _) => ValueCheck::Any,
                _ => ValueCheck::Full,
            }
        };
        let enum_bits = match value {
            ValueCheck::SmallEnum => def.values.iter().fold(0, |b, &(v, _)| b | 1 << v),
            _ => 0,
        };
        Self {
            flag_mask,
            flag_want,
            value,
            enum_bits,
            check,
        }
    }
}

/// What validation needs of an AVP a grammar names: its rule, definition and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuleSlot {
    /// [`AvpKey::packed`] of the AVP.
    key: u64,
    /// Index of the AVP in [`Dictionary::avps`].
    pub(crate) avp: u32,
    /// Index of the rule in [`Grammar::rules`]; [`RuleSlot::EMPTY`] for a free slot.
    pub(crate) rule: u16,
    /// [`Rule::max`] capped to `u16::MAX`: occurrence counts saturate at `u16::MAX`, so a
    /// larger maximum can never be exceeded either way.
    pub(crate) max: u16,
    /// How the walk keeps track of the rule's occurrences.
    pub(crate) occurs: Occurs,
    /// `1 << rule` for rules tracked by [`Occurs::Once`] and [`Occurs::Many`], else 0.
    pub(crate) bit: u64,
    /// For [`Occurs::Counted`], the rule's counter: its place among the grammar's counted
    /// rules (below [`Grammar::counters`]).
    pub(crate) counter: u16,
    /// The AVP's hot-path summary.
    pub(crate) hot: Hot,
}

/// How a walk keeps track of a rule's occurrences (RFC 6733 §3.2 qualifiers). Most rules
/// only need to know whether their AVP was seen, one bit of a word per grammar; the others
/// are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occurs {
    /// At most once, at least once or not at all (`<X>`, `{X}`, `[X]`): a bit.
    Once,
    /// Without limit, at least once or not at all (`*[X]`, `1*{X}`): a bit.
    Many,
    /// Any other qualifier, or a rule past the 64th: a counter.
    Counted,
}

impl Occurs {
    /// The tracking for rule `i`. A maximum of `u16::MAX` or more counts as no limit, as
    /// for the saturating counters.
    pub(crate) fn of(i: usize, r: &Rule) -> Self {
        if i >= 64 || r.min > 1 {
            return Self::Counted;
        }
        match r.max {
            1 => Self::Once,
            m if m >= u32::from(u16::MAX) => Self::Many,
            _ => Self::Counted,
        }
    }
}

impl RuleSlot {
    const EMPTY: u16 = u16::MAX;
    const FREE: Self = Self {
        key: 0,
        avp: 0,
        rule: Self::EMPTY,
        max: 0,
        occurs: Occurs::Counted,
        bit: 0,
        counter: 0,
        hot: Hot {
            flag_mask: 0,
            flag_want: 0,
            value: ValueCheck::Any,
            enum_bits: 0,
            check: AvpCheck {
                data_type: DataType::OctetString,
                m: FlagRule::May,
                v: FlagRule::May,
                closed_enum: false,
            },
        },
    };
}

/// Linear-probing table from AVP key to [`RuleSlot`], at most half full, so a probe for an
/// AVP the grammar names (or not) usually reads one slot: cheaper than a general hash map
/// for these few dozen integer keys.
#[derive(Debug, Clone, PartialEq, Default)]
struct RuleTable {
    /// A power of two in length (or empty).
    slots: Vec<RuleSlot>,
    /// `64 - log2(slots.len())`: the hash is the top bits of a multiplicative hash.
    shift: u32,
}

impl RuleTable {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            shift: 63,
        }
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    fn build(rules: &[Rule], hot: &[Hot]) -> Self {
        let len = (rules.len() * 2).next_power_of_two().max(2);
        let mut t = Self {
            slots: vec![RuleSlot::FREE; len],
            shift: 64 - len.trailing_zeros(),
        };
        let mask = len - 1;
        let mut counters = 0u16;
        for (i, r) in rules.iter().enumerate() {
            let key = r.key.packed();
            let mut at = t.start(key);
            while t.slots[at].rule != RuleSlot::EMPTY {
                at = (at + 1) & mask;
            }
            let occurs = Occurs::of(i, r);
            let counter = counters;
            if occurs == Occurs::Counted {
                counters += 1;
            }
            t.slots[at] = RuleSlot {
                key,
                avp: r.avp,
                rule: i as u16,
                max: u16::try_from(r.max).unwrap_or(u16::MAX),
                occurs,
                bit: if occurs == Occurs::Counted { 0 } else { 1 << i },
                counter,
                hot: hot[r.avp as usize],
            };
        }
        t
    }

    #[inline]
    fn get(&self, key: AvpKey) -> Option<&RuleSlot> {
        let key = key.packed();
        let mut at = self.start(key);
        loop {
            // An empty table has no slot 0; a built one is never full.
            let s = self.slots.get(at)?;
            if s.rule == RuleSlot::EMPTY {
                return None;
            }
            if s.key == key {
                return Some(s);
            }
            at = (at + 1) & (self.slots.len() - 1);
        }
    }
}

/// A resolved grammar rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The AVP.
    pub key: AvpKey,
    /// Index of the AVP in [`Dictionary::avps`].
    pub avp: u32,
    /// Bracket kind.
    pub kind: RuleKind,
    /// Fewest occurrences.
    pub min: u32,
    /// Most occurrences.
    pub max: u32,
}

/// A resolved grammar (command request/answer or Grouped AVP).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grammar {
    /// The rules; fixed rules first, in position order.
    pub rules: Vec<Rule>,
    /// Number of leading fixed rules.
    pub fixed: usize,
    /// `*[AVP]`: other AVPs are allowed.
    pub any: bool,
    /// Indices of the rules with a minimum (fixed and required ones), checked after a walk.
    pub required: Vec<u16>,
    table: RuleTable,
    /// How many rules are [`Occurs::Counted`]: the counters a walk of the grammar keeps.
    pub(crate) counters: usize,
    /// The bits of the required rules tracked by bits.
    pub(crate) required_bits: u64,
    /// Whether any required rule is [`Occurs::Counted`].
    pub(crate) counted_required: bool,
}

impl Grammar {
    /// A grammar that accepts any AVPs (for unknown grouped AVPs and error answers).
    pub const fn any_avp() -> Self {
        Self {
            rules: Vec::new(),
            fixed: 0,
            any: true,
            required: Vec::new(),
            table: RuleTable::new(),
            counters: 0,
            required_bits: 0,
            counted_required: false,
        }
    }

    /// The index of the rule for `key`.
    #[inline]
    pub fn rule_index(&self, key: AvpKey) -> Option<usize> {
        self.table.get(key).map(|s| usize::from(s.rule))
    }

    /// The rule for `key` with what validation reads of its AVP.
    #[inline]
    pub(crate) fn slot(&self, key: AvpKey) -> Option<&RuleSlot> {
        self.table.get(key)
    }

    /// Builds the lookup table once the rules and every AVP's checks are final.
    pub(crate) fn index(&mut self, hot: &[Hot]) {
        self.table = RuleTable::build(&self.rules, hot);
        let occurs = |i: usize| Occurs::of(i, &self.rules[i]);
        self.counters = (0..self.rules.len())
            .filter(|&i| occurs(i) == Occurs::Counted)
            .count();
        self.required_bits = 0;
        self.counted_required = false;
        for &i in &self.required {
            match occurs(usize::from(i)) {
                Occurs::Counted => self.counted_required = true,
                _ => self.required_bits |= 1 << i,
            }
        }
    }
}

/// A command definition for one application.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandDef {
    /// Name ("Credit-Control").
    pub name: String,
    /// Request abbreviation ("CCR").
    pub request_abbrev: String,
    /// Answer abbreviation ("CCA").
    pub answer_abbrev: String,
    /// Command Code.
    pub code: u32,
    /// Application-Id.
    pub application: u32,
    /// Whether requests carry the P bit.
    pub proxiable: bool,
    /// Request grammar.
    pub request: Grammar,
    /// Answer grammar.
    pub answer: Grammar,
    /// Specification reference.
    pub spec: String,
    /// The dictionary file it came from.
    pub source: String,
}

/// The dictionary.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    vendors: Vec<VendorDef>,
    applications: Vec<ApplicationDef>,
    avps: Vec<AvpDef>,
    commands: Vec<CommandDef>,
    avp_index: FxHashMap<u64, u32>,
    checks: Vec<AvpCheck>,
    hot: Vec<Hot>,
    avp_names: FxHashMap<String, u32>,
    command_index: FxHashMap<u64, u32>,
    command_codes: FxHashMap<u32, u32>,
}

/// The dictionary files compiled into the crate, in load order.
pub const EMBEDDED_FILES: &[(&str, &str)] = &[
    (
        "base_rfc6733.toml",
        include_str!("../../../dictionaries/base_rfc6733.toml"),
    ),
    (
        "nasreq_rfc7155.toml",
        include_str!("../../../dictionaries/nasreq_rfc7155.toml"),
    ),
    (
        "dcca_rfc4006.toml",
        include_str!("../../../dictionaries/dcca_rfc4006.toml"),
    ),
    (
        "tgpp_29061.toml",
        include_str!("../../../dictionaries/tgpp_29061.toml"),
    ),
    (
        "tgpp_29229.toml",
        include_str!("../../../dictionaries/tgpp_29229.toml"),
    ),
    (
        "tgpp_gy_32299.toml",
        include_str!("../../../dictionaries/tgpp_gy_32299.toml"),
    ),
    (
        "tgpp_gx_29212.toml",
        include_str!("../../../dictionaries/tgpp_gx_29212.toml"),
    ),
    (
        "tgpp_rx_29214.toml",
        include_str!("../../../dictionaries/tgpp_rx_29214.toml"),
    ),
    (
        "tgpp_s9_29215.toml",
        include_str!("../../../dictionaries/tgpp_s9_29215.toml"),
    ),
    (
        "tgpp_s6a_29272.toml",
        include_str!("../../../dictionaries/tgpp_s6a_29272.toml"),
    ),
    (
        "roaming_vendor.toml",
        include_str!("../../../dictionaries/roaming_vendor.toml"),
    ),
];

impl Dictionary {
    /// The embedded dictionaries, loaded once per process.
    ///
    /// # Panics
    /// Only if the embedded files are inconsistent, which the crate's own tests rule out.
    pub fn embedded() -> &'static Self {
        static DICT: OnceLock<Dictionary> = OnceLock::new();
        DICT.get_or_init(|| {
            DictionaryBuilder::with_embedded()
                .build()
                .unwrap_or_else(|e| panic!("embedded dictionary: {e}"))
        })
    }

    /// The embedded files and then `extra` (an operator's `(source name, TOML text)`
    /// documents, in order), resolved together: extra files may define vendors,
    /// applications, AVPs and commands, use the embedded ones in their grammars, and extend
    /// embedded grammars (`[[extend_avp]]`, `[[extend_command]]`). The crate does no I/O:
    /// the caller reads the files (diameter-node's configuration does).
    pub fn embedded_with(extra: &[(&str, &str)]) -> Result<Self, DictError> {
        extra
            .iter()
            .fold(DictionaryBuilder::with_embedded(), |b, (name, text)| {
                b.add_toml(name, text)
            })
            .build()
    }

    /// A builder starting empty.
    pub fn builder() -> DictionaryBuilder {
        DictionaryBuilder::default()
    }

    /// The AVP with this (code, vendor).
    #[inline]
    pub fn avp(&self, key: AvpKey) -> Option<&AvpDef> {
        self.avp_index
            .get(&key.packed())
            .map(|&i| &self.avps[i as usize])
    }

    /// The index of the AVP with this key (as in [`Rule::avp`]).
    #[inline]
    pub fn avp_index(&self, key: AvpKey) -> Option<u32> {
        self.avp_index.get(&key.packed()).copied()
    }

    /// The hot-path summary of the AVP at an index.
    #[inline]
    pub fn check_at(&self, i: u32) -> AvpCheck {
        self.checks[i as usize]
    }

    /// The validator's summary of the AVP at an index.
    #[inline]
    pub(crate) fn hot_ref(&self, i: u32) -> &Hot {
        &self.hot[i as usize]
    }

    /// The AVP with this name.
    pub fn avp_by_name(&self, name: &str) -> Option<&AvpDef> {
        self.avp_names.get(name).map(|&i| &self.avps[i as usize])
    }

    /// The AVP at an index (as in [`Rule::avp`]).
    pub fn avp_at(&self, i: u32) -> &AvpDef {
        &self.avps[i as usize]
    }

    /// Every AVP.
    pub fn avps(&self) -> &[AvpDef] {
        &self.avps
    }

    /// Every command definition.
    pub fn commands(&self) -> &[CommandDef] {
        &self.commands
    }

    /// Every application.
    pub fn applications(&self) -> &[ApplicationDef] {
        &self.applications
    }

    /// Every vendor.
    pub fn vendors(&self) -> &[VendorDef] {
        &self.vendors
    }

    /// The command for (code, application), falling back to the base definition
    /// (application 0) for commands such as RAR that applications reuse unchanged.
    #[inline]
    pub fn command(&self, code: u32, application: u32) -> Option<&CommandDef> {
        let k = (u64::from(application) << 32) | u64::from(code);
        self.command_index
            .get(&k)
            .or_else(|| self.command_index.get(&u64::from(code)))
            .map(|&i| &self.commands[i as usize])
    }

    /// Whether any application defines this command code.
    pub fn knows_command_code(&self, code: u32) -> bool {
        self.command_codes.contains_key(&code)
    }

    /// Any definition of this command code (for names).
    pub fn any_command(&self, code: u32) -> Option<&CommandDef> {
        self.command_codes
            .get(&code)
            .map(|&i| &self.commands[i as usize])
    }

    /// The application with this id.
    pub fn application(&self, id: u32) -> Option<&ApplicationDef> {
        self.applications.iter().find(|a| a.id == id)
    }

    /// The name of a vendor.
    pub fn vendor_name(&self, id: u32) -> Option<&str> {
        self.vendors
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.name.as_str())
    }

    /// "CCR", "CEA", … for a header, or "cmd-NNN-R/A" for unknown commands.
    pub fn command_label(&self, h: &Header) -> String {
        match self
            .command(h.command_code, h.application_id)
            .or_else(|| self.any_command(h.command_code))
        {
            Some(c) if h.is_request() => c.request_abbrev.clone(),
            Some(c) => c.answer_abbrev.clone(),
            None => format!(
                "cmd-{}-{}",
                h.command_code,
                if h.is_request() { "R" } else { "A" }
            ),
        }
    }
}

#[cfg(test)]
mod hot_tests {
    use super::*;

    #[test]
    fn hot_summaries_agree_with_definitions() {
        let d = Dictionary::embedded();
        let mut small = 0;
        for (i, def) in d.avps().iter().enumerate() {
            let hot = d.hot_ref(i as u32);
            // The flag mask says exactly what the M and V rules allow.
            for flags in [0u8, 0x40, 0x80, 0xc0] {
                let f = crate::AvpFlags(flags);
                assert_eq!(
                    flags & hot.flag_mask == hot.flag_want,
                    def.m.allows(f.mandatory()) && def.v.allows(f.vendor()),
                    "{} {flags:#x}",
                    def.name
                );
            }
            if hot.value == ValueCheck::SmallEnum {
                small += 1;
                for v in -2..70 {
                    let listed = (0..64).contains(&v) && hot.enum_bits >> v & 1 != 0;
                    assert_eq!(listed, def.value_name(v).is_some(), "{} {v}", def.name);
                }
            }
        }
        assert!(small > 0);
    }
}

#[cfg(test)]
mod extend_tests {
    use super::*;
    use crate::{
        AvpFlags, AvpValue, Message, MessageBuilder, OwnedAvp, ValidateOptions, Validator,
    };

    /// An operator's file: a vendor and one M-bit AVP of its own.
    const OPERATOR: &str = r#"
[meta]
title = "operator AVPs"
spec = "operator"

[[vendor]]
id = 99999
name = "Operator"

[[avp]]
name = "Operator-Tariff-Class"
code = 7001
vendor = 99999
type = "Unsigned32"
m = "must"
"#;

    fn ccr_with_operator_avp() -> Message {
        let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, 4, true).ids(1, 1);
        b.push(base::SESSION_ID.with("c.example;1;1"));
        b.push(base::ORIGIN_HOST.with("c.example"));
        b.push(base::ORIGIN_REALM.with("example"));
        b.push(base::DESTINATION_REALM.with("example"));
        b.push(base::AUTH_APPLICATION_ID.with(4u32));
        b.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
        b.push(dcca::CC_REQUEST_NUMBER.with(0u32));
        b.push(OwnedAvp::new(
            7001,
            99999,
            AvpFlags::MANDATORY | AvpFlags::VENDOR,
            AvpValue::U32(3),
        ));
        Message::from_bytes(b.to_bytes()).unwrap()
    }

    #[test]
    fn an_operator_file_extends_the_embedded_dictionary() {
        let msg = ccr_with_operator_avp();
        // Unknown with M set: RFC 6733 §6.1.8, 5001 DIAMETER_AVP_UNSUPPORTED.
        let plain = Validator::new(Dictionary::embedded(), ValidateOptions::default());
        assert_eq!(
            plain.validate(&msg).unwrap_err().result_code,
            crate::ResultCode::DIAMETER_AVP_UNSUPPORTED
        );
        let d = Dictionary::embedded_with(&[("operator.toml", OPERATOR)]).unwrap();
        assert_eq!(
            d.avp_by_name("Operator-Tariff-Class").unwrap().source,
            "operator.toml"
        );
        assert_eq!(d.vendor_name(99999), Some("Operator"));
        assert!(d.avp_by_name("CC-Request-Type").is_some());
        Validator::new(&d, ValidateOptions::default())
            .validate(&msg)
            .unwrap();
    }

    #[test]
    fn errors_in_an_extra_file_name_it() {
        let e =
            Dictionary::embedded_with(&[("operator.toml", "[[avp]]\nname = \"X\"\nbogus = 1\n")])
                .unwrap_err();
        assert_eq!(e.source_name, "operator.toml");
        assert!(e.message.contains("bogus"), "{e}");
        // A name that clashes with an embedded AVP.
        let clash = OPERATOR.replace("Operator-Tariff-Class", "Session-Id");
        let e = Dictionary::embedded_with(&[("operator.toml", &clash)]).unwrap_err();
        assert_eq!(e.source_name, "operator.toml", "{e}");
    }
}
