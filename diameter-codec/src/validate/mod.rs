//! Validation of a decoded message against the dictionary: header bits, command and
//! application, AVP flags, values, and the command grammar. Separate from decoding so a
//! relay can skip it (RFC 6733 §6.1.9: relays MUST NOT reject messages for unknown AVPs).
//!
//! [`Validator::check`] reports every finding with its [`Severity`]: the deviations it
//! accepted at the chosen level, and the first error, which rejects the message. Each
//! carries the [`ErrorReport`] strict validation answers for it: Result-Code, Failed-AVP
//! holding the single offending AVP wrapped in its Grouped parents at every depth (RFC 6733
//! §7.5), and an Error-Message naming the AVP and the rule. [`Validator::validate`] gives
//! only the error. A clean message allocates nothing.
//!
//! # Levels
//!
//! Field peers deviate from the grammars in ways that do not stop a request from being
//! processed (Supported-Features without its Vendor-Id, four Flow-Description in one
//! Media-Sub-Component where TS 29.214 allows two, M bits against the specs). The
//! [`ValidationLevel`] and [`ValidateOptions::strict_m_bit`] say what is rejected:
//!
//! | finding | `Liberal` (default) | `Strict` |
//! |---|---|---|
//! | framing, AVP length (5014), nesting and count limits (5012) | rejected | rejected |
//! | header bits (3008; 5013 with `strict_reserved_bits`), unknown command or application (3001, 3007) | rejected | rejected |
//! | unknown AVP with M set, at any depth (5001) | rejected | rejected |
//! | V bit that disagrees with the definition (3009) | rejected | rejected |
//! | invalid value of a known AVP, at any depth (5004, 5014) | rejected | rejected |
//! | top-level grammar: missing (5005), too many (5009), misplaced fixed (5004), not allowed (5008) | rejected | rejected |
//! | the same inside a Grouped AVP, at any depth | deviation | rejected |
//! | M bit against a known AVP's definition | deviation (rejected 3009 with `strict_m_bit`) | the same |
//!
//! A deviation is accepted and returned in [`Validation::deviations`]: an application that
//! cannot do its job without a missing value answers with the deviation's report itself.
//!
//! Choices where the RFC leaves one (bad-inputs.md):
//! - V bit set with Vendor-Id 0 on an AVP that has no vendor: 3009 (flags inconsistent with
//!   the definition); on an unknown code it is an unknown AVP (5001 when M is set).
//! - A fixed-position AVP (`<Session-Id>`) present but not in its place: 5004.
//! - Grouped nesting beyond [`Limits::max_depth`] or more than [`Limits::max_avps`] AVPs:
//!   5012 DIAMETER_UNABLE_TO_COMPLY.
//! - Enumerated values outside the dictionary's list (unless it is marked open): 5004.
//! - Reserved AVP flag bits are ignored (RFC 6733 §4.1 "MUST be set to 0" on send only).

mod finding;

pub use finding::{Finding, FindingKind, Severity, Validation};

use crate::avp::{AvpFlags, AvpIter, AvpKey, AvpRef};
use crate::dict::{
    AvpCheck, AvpDef, Dictionary, FlagRule, Grammar, Hot, Occurs, RuleKind, RuleSlot, ValueCheck,
};
use crate::encode::{AvpValue, ErrorReport, OwnedAvp};
use crate::error::{AvpError, AvpErrorKind};
use crate::header::CommandFlags;
use crate::message::{Limits, Message};
use crate::result_code::ResultCode;
use bytes::Bytes;
use finding::{avp_name, rule_text};

/// How strictly the command grammars are applied (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationLevel {
    /// The top-level grammar is enforced; deviations inside Grouped AVPs (a missing fixed
    /// or required member, more occurrences than allowed, a misplaced fixed member, an AVP
    /// the group does not allow) are accepted and reported.
    #[default]
    Liberal,
    /// Every grammar at every depth is enforced.
    Strict,
}

/// Validation options.
#[derive(Debug, Clone, Copy)]
pub struct ValidateOptions {
    /// Bounds on nesting and AVP count.
    pub limits: Limits,
    /// Answer 5013 DIAMETER_INVALID_BIT_IN_HEADER for reserved header bits (RFC 6733 §3
    /// says they "MUST be set to zero"; by default they are ignored, as bad-inputs 33 allows).
    pub strict_reserved_bits: bool,
    /// How strictly grammars are applied.
    pub level: ValidationLevel,
    /// Answer 3009 DIAMETER_INVALID_AVP_BITS for a known AVP whose M bit disagrees with its
    /// definition; by default it is a deviation (freeDiameter and Wireshark accept it too).
    pub strict_m_bit: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            strict_reserved_bits: false,
            level: ValidationLevel::Liberal,
            strict_m_bit: false,
        }
    }
}

impl ValidateOptions {
    /// Every grammar at every depth and the M bit enforced: no deviation is accepted.
    pub fn strict() -> Self {
        Self {
            level: ValidationLevel::Strict,
            strict_m_bit: true,
            ..Self::default()
        }
    }
}

/// The chain of Grouped AVPs enclosing the one being checked, kept on the stack so the
/// walk allocates nothing; used to wrap a Failed-AVP in its parents (RFC 6733 §7.5).
#[derive(Clone, Copy)]
pub(crate) struct Path<'p> {
    parent: Option<&'p Self>,
    code: u32,
    flags: AvpFlags,
    vendor: u32,
}

impl<'p> Path<'p> {
    /// The path one level down, into `avp`.
    fn of(parent: Option<&'p Self>, avp: AvpRef<'_>) -> Self {
        Self {
            parent,
            code: avp.code,
            flags: avp.flags,
            vendor: avp.vendor,
        }
    }

    fn key(&self) -> AvpKey {
        AvpKey::new(self.code, self.vendor)
    }
}

fn wrap(path: Option<&Path<'_>>, avp: OwnedAvp) -> OwnedAvp {
    match path {
        None => avp,
        Some(p) => wrap(
            p.parent,
            OwnedAvp {
                code: p.code,
                flags: p.flags,
                vendor: p.vendor,
                value: AvpValue::Grouped(vec![avp]),
            },
        ),
    }
}

/// A fault found by the walk, before it is judged a deviation or an error.
struct Fault<'a, 'p> {
    kind: FindingKind,
    rc: ResultCode,
    /// The Grouped AVPs around the offending one.
    path: Option<&'a Path<'p>>,
    /// The offending AVP (for a missing one, the missing one).
    avp: Option<AvpKey>,
    /// What goes inside Failed-AVP, before it is wrapped in `path`.
    failed: Option<OwnedAvp>,
    /// The rule at stake.
    rule: String,
    /// The start of the Error-Message.
    what: &'static str,
}

impl Fault<'_, '_> {
    /// A fault about the header or the command: no AVP.
    fn header(kind: FindingKind, rc: ResultCode, what: &'static str) -> Self {
        Fault {
            kind,
            rc,
            path: None,
            avp: None,
            failed: None,
            rule: String::new(),
            what,
        }
    }

    /// A fault about an AVP.
    fn avp<'a, 'p>(
        kind: FindingKind,
        rc: ResultCode,
        path: Option<&'a Path<'p>>,
        avp: AvpKey,
        failed: OwnedAvp,
        rule: String,
        what: &'static str,
    ) -> Fault<'a, 'p> {
        Fault {
            kind,
            rc,
            path,
            avp: Some(avp),
            failed: Some(failed),
            rule,
            what,
        }
    }

    /// The finding, with the names of the AVPs on its path.
    #[cold]
    #[inline(never)]
    fn finding(self, dict: &Dictionary, severity: Severity) -> Finding {
        let mut path = Vec::new();
        let mut p = self.path;
        while let Some(step) = p {
            path.push(step.key());
            p = step.parent;
        }
        path.reverse();
        // The Grouped AVP it is in; none for the command's own AVPs.
        let within = path
            .last()
            .map_or_else(String::new, |&k| format!(" in {}", avp_name(dict, k)));
        path.extend(self.avp);
        let path_names = path
            .iter()
            .map(|&k| avp_name(dict, k))
            .collect::<Vec<_>>()
            .join("/");
        let message = match self.avp {
            None => self.what.to_string(),
            Some(k) if self.rule.is_empty() => {
                format!("{}: {}{within}", self.what, avp_name(dict, k))
            }
            Some(k) => format!(
                "{}: {}{within} ({})",
                self.what,
                avp_name(dict, k),
                self.rule
            ),
        };
        Finding {
            severity,
            kind: self.kind,
            path,
            path_names,
            rule: self.rule,
            report: ErrorReport {
                result_code: self.rc,
                failed_avp: self.failed.map(|f| wrap(self.path, f)),
                message: Some(message),
                reporting_host: None,
            },
        }
    }
}

/// 5012 for a Grouped AVP nested deeper than the limit (bad-inputs 14).
fn too_deep<'a, 'p>(path: Option<&'a Path<'p>>, avp: AvpRef<'_>) -> Fault<'a, 'p> {
    Fault::avp(
        FindingKind::Limit,
        ResultCode::DIAMETER_UNABLE_TO_COMPLY,
        path,
        avp.key(),
        copy(avp),
        String::new(),
        "grouped AVPs nested too deep",
    )
}

/// 5012 for more AVPs than [`Limits::max_avps`].
fn too_many_avps<'a, 'p>(path: Option<&'a Path<'p>>, avp: AvpRef<'_>) -> Fault<'a, 'p> {
    Fault::avp(
        FindingKind::Limit,
        ResultCode::DIAMETER_UNABLE_TO_COMPLY,
        path,
        avp.key(),
        copy(avp),
        String::new(),
        "too many AVPs",
    )
}

// AVP views are passed by value here and below: borrowing the walk's `avp` for the error
// paths made the compiler store a copy of it in memory for every AVP read.
fn copy(avp: AvpRef<'_>) -> OwnedAvp {
    OwnedAvp::from_ref(&avp)
}

/// An AVP with the given header and a zeroed payload of the type's minimum length.
fn zeroed(dict: &Dictionary, code: u32, flags: AvpFlags, vendor: u32) -> OwnedAvp {
    let len = dict
        .avp(AvpKey::new(code, vendor))
        .map_or(0, |d| d.data_type.min_len());
    OwnedAvp {
        code,
        flags,
        vendor,
        value: AvpValue::Bytes(Bytes::from(vec![0u8; len])),
    }
}

/// The example of a missing AVP that 5005 carries: "complete with the Vendor-Id if
/// applicable. The value field of the missing AVP should be of correct minimum length and
/// contain zeroes" (RFC 6733 §7.1.5).
fn missing(def: &AvpDef) -> OwnedAvp {
    let flags = if def.m_send { AvpFlags::MANDATORY } else { 0 };
    OwnedAvp {
        code: def.key.code,
        flags: AvpFlags(flags),
        vendor: def.key.vendor,
        value: AvpValue::Bytes(Bytes::from(vec![0u8; def.data_type.min_len()])),
    }
}

/// RFC 6733 §7.1.5 DIAMETER_INVALID_AVP_LENGTH: "In cases where the erroneous AVP length
/// value exceeds the message length or is less than the minimum AVP header length, it is
/// sufficient to include the offending AVP header and a zero filled payload of the minimum
/// required length for the payloads data type."
fn length_fault<'a, 'p>(
    dict: &Dictionary,
    path: Option<&'a Path<'p>>,
    e: &AvpError,
) -> Fault<'a, 'p> {
    let (kind, rc, msg) = match e.kind {
        AvpErrorKind::TooManyAvps => (
            FindingKind::Limit,
            ResultCode::DIAMETER_UNABLE_TO_COMPLY,
            "too many AVPs",
        ),
        AvpErrorKind::TooDeep => (
            FindingKind::Limit,
            ResultCode::DIAMETER_UNABLE_TO_COMPLY,
            "grouped AVPs nested too deep",
        ),
        _ => (
            FindingKind::InvalidLength,
            ResultCode::DIAMETER_INVALID_AVP_LENGTH,
            "invalid AVP length",
        ),
    };
    Fault::avp(
        kind,
        rc,
        path,
        AvpKey::new(e.code, e.vendor),
        zeroed(dict, e.code, AvpFlags(e.flags), e.vendor),
        e.kind.to_string(),
        msg,
    )
}

/// The report for a top-level AVP that does not frame (see [`length_fault`]).
pub(crate) fn length_error(dict: &Dictionary, e: &AvpError) -> ErrorReport {
    length_fault(dict, None, e)
        .finding(dict, Severity::Error)
        .report
}

/// An error found by the walk, boxed: the walk's functions then return one word, where a
/// finding by value is written through memory on every return, including `Ok`.
type Failed = Box<Finding>;

/// What a walk over one message carries along.
struct Walk {
    /// AVPs seen so far, nested ones included.
    count: usize,
    /// Whether the message is a request.
    request: bool,
    /// Deviations accepted so far; `None` when the caller does not want them.
    deviations: Option<Vec<Finding>>,
}

impl Walk {
    fn new(msg: &Message, deviations: Option<Vec<Finding>>) -> Self {
        Self {
            count: 0,
            request: msg.header().is_request(),
            deviations,
        }
    }
}

/// A dictionary-driven validator.
#[derive(Debug, Clone, Copy)]
pub struct Validator<'d> {
    dict: &'d Dictionary,
    opts: ValidateOptions,
}

impl<'d> Validator<'d> {
    /// A validator over `dict`.
    pub fn new(dict: &'d Dictionary, opts: ValidateOptions) -> Self {
        Self { dict, opts }
    }

    /// Validates a whole message: the first error, if any. Deviations accepted at the
    /// options' level are not returned; [`Validator::check`] has them.
    pub fn validate(&self, msg: &Message) -> Result<(), ErrorReport> {
        let mut walk = Walk::new(msg, None);
        self.run(msg, &mut walk).map_err(|e| e.report)
    }

    /// Validates a whole message: the deviations accepted and the first error.
    pub fn check(&self, msg: &Message) -> Validation {
        let mut walk = Walk::new(msg, Some(Vec::new()));
        let error = self.run(msg, &mut walk).err().map(|e| *e);
        Validation {
            deviations: walk.deviations.unwrap_or_default(),
            error,
        }
    }

    /// `f` as an error.
    #[cold]
    #[inline(never)]
    fn fail(&self, f: Fault<'_, '_>) -> Failed {
        Box::new(f.finding(self.dict, Severity::Error))
    }

    /// `f`, found at `depth` (1: the command's own AVPs), recorded as a deviation when the
    /// options tolerate it, else the error.
    #[cold]
    #[inline(never)]
    fn judge(&self, walk: &mut Walk, depth: usize, f: Fault<'_, '_>) -> Result<(), Failed> {
        if self.tolerates(f.kind, depth) {
            if let Some(list) = &mut walk.deviations {
                list.push(f.finding(self.dict, Severity::Deviation));
            }
            Ok(())
        } else {
            Err(self.fail(f))
        }
    }

    /// Whether a finding of this kind at `depth` is a deviation: grammar inside Grouped
    /// AVPs at the liberal level, the M bit unless it is strict; nothing else.
    fn tolerates(&self, kind: FindingKind, depth: usize) -> bool {
        match kind {
            FindingKind::MissingAvp
            | FindingKind::TooMany
            | FindingKind::Misplaced
            | FindingKind::NotAllowed => depth > 1 && self.opts.level == ValidationLevel::Liberal,
            FindingKind::MBit => !self.opts.strict_m_bit,
            _ => false,
        }
    }

    fn run(&self, msg: &Message, walk: &mut Walk) -> Result<(), Failed> {
        let h = msg.header();
        // RFC 6733 §3: "E(rror) – If set, the message contains a protocol error" – only
        // answers carry it; a request with E is answered 3008 (bad-inputs 33).
        if h.is_request() && h.flags.is_error() {
            return Err(self.fail(Fault::header(
                FindingKind::HeaderBits,
                ResultCode::DIAMETER_INVALID_HDR_BITS,
                "E bit set in a request",
            )));
        }
        if self.opts.strict_reserved_bits && h.flags.has_reserved() {
            return Err(self.fail(Fault::header(
                FindingKind::HeaderBits,
                ResultCode::DIAMETER_INVALID_BIT_IN_HEADER,
                "reserved header bit set",
            )));
        }
        let Some(cmd) = self.dict.command(h.command_code, h.application_id) else {
            // RFC 6733 §7.1.3: 3007 when the application is not supported, else 3001.
            let rc = if h.application_id != 0 && self.dict.application(h.application_id).is_none() {
                ResultCode::DIAMETER_APPLICATION_UNSUPPORTED
            } else {
                ResultCode::DIAMETER_COMMAND_UNSUPPORTED
            };
            return Err(self.fail(Fault::header(
                FindingKind::Unsupported,
                rc,
                "command not supported",
            )));
        };
        // RFC 6733 §5.3.1, §5.4.1, §5.5.1: CER, DPR and DWR are sent with the P bit clear.
        if h.is_request() && h.flags.0 & CommandFlags::PROXIABLE != 0 && !cmd.proxiable {
            return Err(self.fail(Fault::header(
                FindingKind::HeaderBits,
                ResultCode::DIAMETER_INVALID_HDR_BITS,
                "P bit set on a non-proxiable command",
            )));
        }
        let grammar = if h.is_request() {
            &cmd.request
        } else if h.flags.is_error() {
            // RFC 6733 §7.2: an error answer follows the generic answer-message grammar,
            // not the command's; its AVPs are still checked one by one.
            &ANY
        } else {
            &cmd.answer
        };
        self.check_seq(msg.avps(), grammar, 1, None, walk)
    }

    /// A sequence of AVPs against `grammar`, at `depth` (1: the command's own AVPs).
    /// Occurrence counts of the grammar's counted rules (saturating, so none can
    /// overflow) are kept on the stack, where zeroing them is one store.
    fn check_seq(
        &self,
        avps: AvpIter<'_>,
        grammar: &Grammar,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
    ) -> Result<(), Failed> {
        if grammar.counters > LOCAL_COUNTERS {
            return self.check_seq_on_heap(avps, grammar, depth, path, walk);
        }
        self.walk_seq(avps, grammar, depth, path, walk, &mut [0; LOCAL_COUNTERS])
    }

    /// [`Validator::check_seq`] for a grammar with more counted rules than the stack
    /// holds (none of the shipped ones): its counters on the heap.
    #[cold]
    #[inline(never)]
    fn check_seq_on_heap(
        &self,
        avps: AvpIter<'_>,
        grammar: &Grammar,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
    ) -> Result<(), Failed> {
        let mut counts = vec![0; grammar.counters];
        self.walk_seq(avps, grammar, depth, path, walk, &mut counts)
    }

    /// The walk of [`Validator::check_seq`], with the counters `counts`.
    #[inline(always)]
    fn walk_seq(
        &self,
        avps: AvpIter<'_>,
        grammar: &Grammar,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
        counts: &mut [u16],
    ) -> Result<(), Failed> {
        let dict = self.dict;
        // Rules tracked by bits need no counters.
        let mut seen = 0u64;
        // Rules tracked by bits already found over their maximum (reported once).
        let mut over_seen = 0u64;
        // Whether a misplaced fixed AVP was reported in this sequence (reported once).
        let mut misplaced = false;
        let all = avps.clone();
        let mut avps = avps;
        let mut pos = 0;
        loop {
            let avp = match avps.next_framed() {
                Some(avp) => avp,
                // The end, or a framing error that the iterator reports in full.
                None => match avps.next() {
                    None => break,
                    Some(Ok(avp)) => avp,
                    Some(Err(e)) => return Err(self.fail(length_fault(dict, path, &e))),
                },
            };
            pos += 1;
            walk.count += 1;
            if walk.count > self.opts.limits.max_avps {
                return Err(self.fail(too_many_avps(path, avp)));
            }
            let key = avp.key();
            // One probe: the grammar's slot for the AVP names its rule, its definition and
            // its checks; only AVPs the grammar does not name are looked up in the dictionary.
            let slot = grammar.slot(key);
            let rule = slot.map(|s| usize::from(s.rule));
            // RFC 6733 §3.2: fixed AVPs ("<AVP>") "MUST appear in the position specified".
            if pos <= grammar.fixed && rule != Some(pos - 1) {
                self.out_of_place(all.clone(), grammar, pos, depth, path, walk, &mut misplaced)?;
            }
            let Some(s) = slot else {
                self.check_unlisted(avp, grammar.any, depth, path, walk)?;
                continue;
            };
            self.check_avp(avp, s.avp, &s.hot, depth, path, walk)?;
            match s.occurs {
                Occurs::Many => seen |= s.bit,
                Occurs::Once if seen & s.bit == 0 => seen |= s.bit,
                occurs => {
                    // RFC 6733 §7.1.5 5009: Failed-AVP carries "the first instance of the
                    // offending AVP that exceeded the maximum number of occurrences".
                    let (over, first) = match occurs {
                        Occurs::Counted => {
                            let c = &mut counts[usize::from(s.counter)];
                            *c = c.saturating_add(1);
                            (*c > s.max, *c == s.max.saturating_add(1))
                        }
                        // A second one of a rule that allows one.
                        _ => (true, over_seen & s.bit == 0),
                    };
                    if over && first {
                        over_seen |= s.bit;
                        self.too_many(avp, grammar, s, depth, path, walk)?;
                    }
                }
            }
        }
        // Every required rule present, in one test when they are all tracked by bits.
        if seen & grammar.required_bits == grammar.required_bits && !grammar.counted_required {
            return Ok(());
        }
        for &i in &grammar.required {
            let (i, r) = (usize::from(i), &grammar.rules[usize::from(i)]);
            let have = match Occurs::of(i, r) {
                Occurs::Counted => grammar
                    .slot(r.key)
                    .map_or(0, |s| u32::from(counts[usize::from(s.counter)])),
                _ => (seen >> i & 1) as u32,
            };
            if have < r.min {
                let def = dict.avp_at(r.avp);
                let what = if r.kind == RuleKind::Fixed {
                    "missing fixed AVP"
                } else {
                    "missing AVP"
                };
                let f = Fault::avp(
                    FindingKind::MissingAvp,
                    ResultCode::DIAMETER_MISSING_AVP,
                    path,
                    r.key,
                    missing(def),
                    rule_text(dict, r),
                    what,
                );
                self.judge(walk, depth, f)?;
            }
        }
        Ok(())
    }

    /// The AVP at fixed position `pos` is not the one the grammar fixes there. Present
    /// elsewhere: 5004 with that AVP; absent: 5005 with an example of it (RFC 6733 §3.2:
    /// fixed AVPs "MUST appear in the position specified"). Where the deviation is
    /// tolerated, a misplaced one is reported once per sequence and an absent one by the
    /// check of required rules at the end.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn out_of_place(
        &self,
        all: AvpIter<'_>,
        grammar: &Grammar,
        pos: usize,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
        reported: &mut bool,
    ) -> Result<(), Failed> {
        let dict = self.dict;
        let tolerated = self.tolerates(FindingKind::Misplaced, depth);
        let expected = &grammar.rules[pos - 1];
        let f = match all.flatten().find(|a| a.key() == expected.key) {
            Some(_) if tolerated && *reported => return Ok(()),
            Some(misplaced) => {
                *reported = true;
                Fault::avp(
                    FindingKind::Misplaced,
                    ResultCode::DIAMETER_INVALID_AVP_VALUE,
                    path,
                    expected.key,
                    copy(misplaced),
                    rule_text(dict, expected),
                    "fixed AVP out of position",
                )
            }
            None if tolerated => return Ok(()),
            None => Fault::avp(
                FindingKind::MissingAvp,
                ResultCode::DIAMETER_MISSING_AVP,
                path,
                expected.key,
                missing(dict.avp_at(expected.avp)),
                rule_text(dict, expected),
                "missing fixed AVP",
            ),
        };
        self.judge(walk, depth, f)
    }

    /// The first occurrence of `avp` past its rule's maximum (RFC 6733 §7.1.5 5009).
    #[cold]
    #[inline(never)]
    fn too_many(
        &self,
        avp: AvpRef<'_>,
        grammar: &Grammar,
        s: &RuleSlot,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
    ) -> Result<(), Failed> {
        let rule = &grammar.rules[usize::from(s.rule)];
        let f = Fault::avp(
            FindingKind::TooMany,
            ResultCode::DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
            path,
            avp.key(),
            copy(avp),
            rule_text(self.dict, rule),
            "AVP occurs too many times",
        );
        self.judge(walk, depth, f)
    }
}

impl<'d> Validator<'d> {
    /// The checks of one AVP after its grammar rule is known: its flags, its value, and
    /// for a group its children.
    #[inline(always)]
    fn check_avp(
        &self,
        avp: AvpRef<'_>,
        idx: u32,
        hot: &Hot,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
    ) -> Result<(), Failed> {
        let dict = self.dict;
        if avp.flags.0 & hot.flag_mask != hot.flag_want {
            self.flags_mismatch(avp, idx, hot, path, walk)?;
        }
        let len = avp.data.len();
        match hot.value {
            ValueCheck::Any => {}
            ValueCheck::Len4 if len == 4 => {}
            ValueCheck::Len8 if len == 8 => {}
            // RFC 6733 §4.3.1 Enumerated: Integer32 values from the AVP's definition.
            ValueCheck::SmallEnum
                if len == 4 && {
                    let v =
                        u32::from_be_bytes([avp.data[0], avp.data[1], avp.data[2], avp.data[3]]);
                    v < 64 && hot.enum_bits >> v & 1 != 0
                } => {}
            ValueCheck::FailedAvp => {
                // A Failed-AVP carries copies of what someone else found wrong (zeroed
                // examples, invalid values): frame and count its children and bound the
                // nesting of Failed-AVP in Failed-AVP (bad-inputs 14), judge nothing
                // else inside (RFC 6733 §7.5).
                self.walk_failed(avp, depth, path, walk)?;
            }
            ValueCheck::Grouped => {
                if depth >= self.opts.limits.max_depth {
                    return Err(self.fail(too_deep(path, avp)));
                }
                let g = dict.avp_at(idx).grammar.as_ref().unwrap_or(&ANY);
                // RFC 6733 §4.4: a Grouped payload is a sequence of AVPs. An empty one
                // (Requested-Service-Unit in every CCR-U MSCC, RFC 4006 §8.18) has
                // nothing to walk; only its grammar's required AVPs could be missing.
                if !avp.data.is_empty() || !g.required.is_empty() {
                    let here = Path::of(path, avp);
                    self.check_seq(avp.children(), g, depth + 1, Some(&here), walk)?;
                }
            }
            // Wrong fixed lengths and every other type: the full checks, which also
            // produce the error.
            _ => self.check_value(avp, idx, hot.check, path)?,
        }
        Ok(())
    }

    /// RFC 6733 §7.1.3 DIAMETER_INVALID_AVP_BITS: "flag bits … inconsistent with the AVP's
    /// definition". A V bit that disagrees is always an error: the Vendor-Id field then
    /// says otherwise (bad-inputs 15). An M bit that disagrees with a known AVP's
    /// definition is a deviation unless [`ValidateOptions::strict_m_bit`]: field peers set
    /// it on RAT-Type and Product-Name and leave it off Origin-Host (bad-inputs 19). The P
    /// bit and reserved bits are not checked (§4.1).
    #[cold]
    #[inline(never)]
    fn flags_mismatch(
        &self,
        avp: AvpRef<'_>,
        idx: u32,
        hot: &Hot,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
    ) -> Result<(), Failed> {
        let def = self.dict.avp_at(idx);
        let wrong = (avp.flags.0 & hot.flag_mask) ^ hot.flag_want;
        let (kind, rule, what) = if wrong & AvpFlags::VENDOR != 0 {
            let what = if avp.flags.vendor() {
                "V bit set against the AVP's definition"
            } else {
                "V bit clear against the AVP's definition"
            };
            (FindingKind::FlagBits, flag_rule("V", def.v), what)
        } else {
            let what = if avp.flags.mandatory() {
                "M bit set against the AVP's definition"
            } else {
                "M bit clear against the AVP's definition"
            };
            (FindingKind::MBit, flag_rule("M", def.m), what)
        };
        let f = Fault::avp(
            kind,
            ResultCode::DIAMETER_INVALID_AVP_BITS,
            path,
            avp.key(),
            copy(avp),
            format!("{rule}, {}", def.spec),
            what,
        );
        // The depth does not matter to flags.
        self.judge(walk, 0, f)
    }

    /// An AVP that the grammar does not name: unknown, ignored unless M is set; known,
    /// checked as any other, then refused unless the grammar takes any AVP (`*[AVP]`).
    /// Out of line: the walk's common case is an AVP its grammar names.
    #[inline(never)]
    fn check_unlisted(
        &self,
        avp: AvpRef<'_>,
        any: bool,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
    ) -> Result<(), Failed> {
        let Some((idx, hot)) = self.unlisted(avp, path)? else {
            return Ok(());
        };
        self.check_avp(avp, idx, hot, depth, path, walk)?;
        if !any {
            // RFC 6733 §7.1.5 DIAMETER_AVP_NOT_ALLOWED.
            let f = Fault::avp(
                FindingKind::NotAllowed,
                ResultCode::DIAMETER_AVP_NOT_ALLOWED,
                path,
                avp.key(),
                copy(avp),
                "no *[AVP] in the grammar".to_string(),
                "AVP not allowed here",
            );
            self.judge(walk, depth, f)?;
        }
        Ok(())
    }

    /// An AVP that the grammar does not name: its dictionary index and summary, `None` to
    /// skip it, or the error for an unknown AVP with M set. Out of line: the walk's common
    /// case is an AVP its grammar names.
    #[inline]
    fn unlisted(
        &self,
        avp: AvpRef<'_>,
        path: Option<&Path<'_>>,
    ) -> Result<Option<(u32, &'d Hot)>, Failed> {
        let dict = self.dict;
        let Some(idx) = dict.avp_index(avp.key()) else {
            // RFC 6733 §4.1: "If an AVP with the 'M' bit set is received by a Diameter
            // client, server, proxy, or translation agent and either the AVP or its value
            // is unrecognized, the message MUST be rejected." Unknown AVPs with M clear are
            // ignored (and kept for relaying by whoever forwards the message).
            if avp.flags.mandatory() {
                return Err(self.fail(Fault::avp(
                    FindingKind::UnknownMandatory,
                    ResultCode::DIAMETER_AVP_UNSUPPORTED,
                    path,
                    avp.key(),
                    copy(avp),
                    "unknown AVP with M set".to_string(),
                    "unsupported AVP",
                )));
            }
            return Ok(None);
        };
        Ok(Some((idx, dict.hot_ref(idx))))
    }

    /// The value of a non-Grouped AVP: its type (RFC 6733 §4.2, §4.3), inner structure
    /// and, for Enumerated with a closed list, that the value is listed. The errors are
    /// built out of line, so the check saves few registers.
    #[inline(never)]
    fn check_value(
        &self,
        avp: AvpRef<'_>,
        idx: u32,
        chk: AvpCheck,
        path: Option<&Path<'_>>,
    ) -> Result<(), Failed> {
        if let Err(e) = chk
            .data_type
            .check(avp.data)
            .and_then(|()| check_specific(avp.key(), avp.data))
        {
            return Err(self.invalid_value(avp, chk, e, path));
        }
        if chk.closed_enum {
            let v = i32::from_be_bytes([avp.data[0], avp.data[1], avp.data[2], avp.data[3]]);
            if self.dict.avp_at(idx).value_name(v).is_none() {
                return Err(self.undefined_value(avp, v, path));
            }
        }
        Ok(())
    }

    /// 5004 (or 5014) for a value its type or inner structure does not allow.
    #[cold]
    #[inline(never)]
    fn invalid_value(
        &self,
        avp: AvpRef<'_>,
        chk: AvpCheck,
        e: crate::ValueError,
        path: Option<&Path<'_>>,
    ) -> Failed {
        let kind = match e {
            crate::ValueError::WrongLength { .. } => FindingKind::InvalidLength,
            crate::ValueError::Invalid(_) => FindingKind::InvalidValue,
        };
        self.fail(Fault::avp(
            kind,
            e.result_code(),
            path,
            avp.key(),
            copy(avp),
            format!("{:?}: {e}", chk.data_type),
            "invalid AVP value",
        ))
    }

    /// 5004 for an Enumerated value its closed list does not define.
    #[cold]
    #[inline(never)]
    fn undefined_value(&self, avp: AvpRef<'_>, v: i32, path: Option<&Path<'_>>) -> Failed {
        self.fail(Fault::avp(
            FindingKind::InvalidValue,
            ResultCode::DIAMETER_INVALID_AVP_VALUE,
            path,
            avp.key(),
            copy(avp),
            format!("Enumerated value {v} not defined"),
            "enumerated value not defined",
        ))
    }

    /// Failed-AVP in Failed-AVP: a request nesting them beyond the limit is refused
    /// (bad-inputs 14); in an answer the content beyond the limit is left unread, since an
    /// error answer about deep nesting carries that nesting (plus its own Failed-AVP level).
    fn walk_failed(
        &self,
        avp: AvpRef<'_>,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
    ) -> Result<(), Failed> {
        if depth >= self.opts.limits.max_depth {
            if !walk.request {
                return Ok(());
            }
            return Err(self.fail(too_deep(path, avp)));
        }
        let here = Path::of(path, avp);
        for child in avp.children() {
            let child = child.map_err(|e| self.fail(length_fault(self.dict, Some(&here), &e)))?;
            walk.count += 1;
            if walk.count > self.opts.limits.max_avps {
                return Err(self.fail(too_many_avps(Some(&here), child)));
            }
            if child.key() == FAILED_AVP {
                self.walk_failed(child, depth + 1, Some(&here), walk)?;
            }
        }
        Ok(())
    }
}

/// A flag rule as text: `M must`, `M must not`, `V may`.
fn flag_rule(bit: &str, r: FlagRule) -> String {
    let r = match r {
        FlagRule::Must => "must",
        FlagRule::May => "may",
        FlagRule::MustNot => "must not",
    };
    format!("{bit} {r}")
}

static ANY: Grammar = Grammar::any_avp();

/// Occurrence counters a sequence keeps on the stack (the shipped grammars count at most
/// 13 rules; `local_counters_cover_the_embedded_grammars` checks it).
const LOCAL_COUNTERS: usize = 16;

pub(crate) const FAILED_AVP: AvpKey = AvpKey::new(279, 0);
const FRAMED_IPV6_PREFIX: AvpKey = AvpKey::new(97, 0);

/// Whether `check_specific` has anything to check for this AVP.
pub(crate) fn has_specific_check(key: AvpKey) -> bool {
    key == FRAMED_IPV6_PREFIX
}

/// Checks of AVPs whose OctetString payload has an inner structure with lengths of its own
/// (bad-inputs 24).
fn check_specific(key: AvpKey, data: &[u8]) -> Result<(), crate::ValueError> {
    if key == FRAMED_IPV6_PREFIX {
        // RFC 3162 §2.3 (RFC 7155 §4.4.10.6.3): Reserved (1), Prefix-Length (1, ≤ 128),
        // Prefix (up to 16 octets, enough for Prefix-Length bits).
        let bad =
            crate::ValueError::Invalid("Framed-IPv6-Prefix inconsistent with its Prefix-Length");
        let [_, plen, prefix @ ..] = data else {
            return Err(bad);
        };
        if *plen > 128 || prefix.len() > 16 || prefix.len() * 8 < usize::from(*plen) {
            return Err(bad);
        }
    }
    Ok(())
}

/// Validates `msg` against the embedded dictionary with default options.
pub fn validate(msg: &Message) -> Result<(), ErrorReport> {
    Validator::new(Dictionary::embedded(), ValidateOptions::default()).validate(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict::{base, dcca};
    use crate::{AvpFlags, MessageBuilder};

    #[test]
    fn local_counters_cover_the_embedded_grammars() {
        // So validating a message of the shipped dictionaries allocates nothing.
        let d = Dictionary::embedded();
        let grammars = d
            .avps()
            .iter()
            .filter_map(|a| a.grammar.as_ref())
            .chain(d.commands().iter().flat_map(|c| [&c.request, &c.answer]));
        for g in grammars {
            assert!(g.counters <= LOCAL_COUNTERS, "{} counted rules", g.counters);
        }
    }

    /// A CCR carrying an operator's Grouped AVP whose grammar has 17 `0*2` members, one more
    /// counted rule than the stack holds, with `n` of the last member.
    fn ccr_with_counted_members(n: usize) -> (Dictionary, Message) {
        const VENDOR: u32 = 99999;
        let mut toml = format!(
            "[meta]\ntitle = \"t\"\nspec = \"t\"\n[[vendor]]\nid = {VENDOR}\nname = \"Op\"\n"
        );
        for i in 0..17 {
            toml += &format!(
                "[[avp]]\nname = \"Member-{i}\"\ncode = {}\nvendor = {VENDOR}\ntype = \"Unsigned32\"\nm = \"must\"\nv = \"must\"\n",
                7100 + i
            );
        }
        let grammar: Vec<String> = (0..17).map(|i| format!("\"0*2[Member-{i}]\"")).collect();
        toml += &format!(
            "[[avp]]\nname = \"Members\"\ncode = 7200\nvendor = {VENDOR}\ntype = \"Grouped\"\nm = \"must\"\nv = \"must\"\ngrammar = [{}]\n",
            grammar.join(", ")
        );
        toml += "[[extend_command]]\nname = \"Credit-Control\"\napplication = 4\nrequest = [\"[Members]\"]\n";
        let d = Dictionary::embedded_with(&[("operator.toml", &toml)]).unwrap();
        let flags = AvpFlags::MANDATORY | AvpFlags::VENDOR;
        let member = OwnedAvp::new(7116, VENDOR, flags, AvpValue::U32(1));
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
            7200,
            VENDOR,
            flags,
            AvpValue::Grouped(vec![member; n]),
        ));
        (d, Message::from_bytes(b.to_bytes()).unwrap())
    }

    #[test]
    fn a_grammar_with_more_counted_rules_than_the_stack_holds_counts_on_the_heap() {
        let (d, two) = ccr_with_counted_members(2);
        assert!(
            d.avp_by_name("Members")
                .unwrap()
                .grammar
                .as_ref()
                .unwrap()
                .counters
                > LOCAL_COUNTERS
        );
        let strict = Validator::new(&d, ValidateOptions::strict());
        strict.validate(&two).unwrap();
        let (_, three) = ccr_with_counted_members(3);
        let e = strict.check(&three).error.unwrap();
        assert_eq!(e.kind, FindingKind::TooMany);
        assert_eq!(e.path_names, "Members/Member-16");
        let liberal = Validator::new(&d, ValidateOptions::default()).check(&three);
        assert!(liberal.error.is_none());
        assert_eq!(liberal.deviations.len(), 1);
        assert_eq!(liberal.deviations[0].kind, FindingKind::TooMany);
    }
}
