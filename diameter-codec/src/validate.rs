//! Validation of a decoded message against the dictionary: header bits, command and
//! application, AVP flags, values, and the command grammar. Separate from decoding so a
//! relay can skip it (RFC 6733 §6.1.9: relays MUST NOT reject messages for unknown AVPs).
//!
//! The first error found is reported, as the [`ErrorReport`] an answer carries: Result-Code,
//! Failed-AVP shaped per RFC 6733 §7.5, and a short Error-Message.
//!
//! Choices where the RFC leaves one (bad-inputs.md):
//! - V bit set with Vendor-Id 0 on an AVP that has no vendor: 3009 (flags inconsistent with
//!   the definition); on an unknown code it is an unknown AVP (5001 when M is set).
//! - A fixed-position AVP (`<Session-Id>`) present but not in its place: 5004.
//! - Grouped nesting beyond [`Limits::max_depth`] or more than [`Limits::max_avps`] AVPs:
//!   5012 DIAMETER_UNABLE_TO_COMPLY.
//! - Enumerated values outside the dictionary's list (unless it is marked open): 5004.

use crate::avp::{AvpFlags, AvpIter, AvpRef};
use crate::dict::{AvpCheck, AvpDef, Dictionary, Grammar, Hot, Occurs, RuleKind, ValueCheck};
use crate::encode::{AvpValue, ErrorReport, OwnedAvp};
use crate::error::{AvpError, AvpErrorKind};
use crate::header::CommandFlags;
use crate::message::{Limits, Message};
use crate::result_code::ResultCode;
use bytes::Bytes;

/// Validation options.
#[derive(Debug, Clone, Copy)]
pub struct ValidateOptions {
    /// Bounds on nesting and AVP count.
    pub limits: Limits,
    /// Answer 5013 DIAMETER_INVALID_BIT_IN_HEADER for reserved header bits (RFC 6733 §3
    /// says they "MUST be set to zero"; by default they are ignored, as bad-inputs 33 allows).
    pub strict_reserved_bits: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            strict_reserved_bits: false,
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
}

/// 5012 for a Grouped AVP nested deeper than the limit (bad-inputs 14).
fn too_deep(path: Option<&Path<'_>>, avp: AvpRef<'_>) -> ErrorReport {
    report(
        ResultCode::DIAMETER_UNABLE_TO_COMPLY,
        path,
        Some(copy(avp)),
        "grouped AVPs nested too deep",
    )
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

fn report(
    rc: ResultCode,
    path: Option<&Path<'_>>,
    failed: Option<OwnedAvp>,
    message: &str,
) -> ErrorReport {
    ErrorReport {
        result_code: rc,
        failed_avp: failed.map(|f| wrap(path, f)),
        message: Some(message.to_string()),
        reporting_host: None,
    }
}

// AVP views are passed by value here and below: borrowing the walk's `avp` for the error
// paths made the compiler store a copy of it in memory for every AVP read.
fn copy(avp: AvpRef<'_>) -> OwnedAvp {
    OwnedAvp::from_ref(&avp)
}

/// An AVP with the given header and a zeroed payload of the type's minimum length.
fn zeroed(dict: &Dictionary, code: u32, flags: AvpFlags, vendor: u32) -> OwnedAvp {
    let len = dict
        .avp(crate::AvpKey::new(code, vendor))
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
pub(crate) fn length_error(
    dict: &Dictionary,
    path: Option<&Path<'_>>,
    e: &AvpError,
) -> ErrorReport {
    let (rc, msg) = match e.kind {
        AvpErrorKind::TooManyAvps => (ResultCode::DIAMETER_UNABLE_TO_COMPLY, "too many AVPs"),
        AvpErrorKind::TooDeep => (
            ResultCode::DIAMETER_UNABLE_TO_COMPLY,
            "grouped AVPs nested too deep",
        ),
        _ => (
            ResultCode::DIAMETER_INVALID_AVP_LENGTH,
            "invalid AVP length",
        ),
    };
    report(
        rc,
        path,
        Some(zeroed(dict, e.code, AvpFlags(e.flags), e.vendor)),
        msg,
    )
}

/// An error found by the walk, boxed: the walk's functions then return one word, where an
/// `ErrorReport` by value is written through memory on every return, including `Ok`.
type Failed = Box<ErrorReport>;

/// What a walk over one message carries along.
struct Walk {
    /// AVPs seen so far, nested ones included.
    count: usize,
    /// Whether the message is a request.
    request: bool,
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

    /// Validates a whole message.
    pub fn validate(&self, msg: &Message) -> Result<(), ErrorReport> {
        let h = msg.header();
        // RFC 6733 §3: "E(rror) – If set, the message contains a protocol error" – only
        // answers carry it; a request with E is answered 3008 (bad-inputs 33).
        if h.is_request() && h.flags.is_error() {
            return Err(report(
                ResultCode::DIAMETER_INVALID_HDR_BITS,
                None,
                None,
                "E bit set in a request",
            ));
        }
        if self.opts.strict_reserved_bits && h.flags.has_reserved() {
            return Err(report(
                ResultCode::DIAMETER_INVALID_BIT_IN_HEADER,
                None,
                None,
                "reserved header bit set",
            ));
        }
        let Some(cmd) = self.dict.command(h.command_code, h.application_id) else {
            // RFC 6733 §7.1.3: 3007 when the application is not supported, else 3001.
            let rc = if h.application_id != 0 && self.dict.application(h.application_id).is_none() {
                ResultCode::DIAMETER_APPLICATION_UNSUPPORTED
            } else {
                ResultCode::DIAMETER_COMMAND_UNSUPPORTED
            };
            return Err(report(rc, None, None, "command not supported"));
        };
        // RFC 6733 §5.3.1, §5.4.1, §5.5.1: CER, DPR and DWR are sent with the P bit clear.
        if h.is_request() && h.flags.0 & CommandFlags::PROXIABLE != 0 && !cmd.proxiable {
            return Err(report(
                ResultCode::DIAMETER_INVALID_HDR_BITS,
                None,
                None,
                "P bit set on a non-proxiable command",
            ));
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
        // Occurrence counters for every grammar on the path from the message to the AVP
        // being checked, on the stack: each level takes the slice it needs and zeroes only
        // that, so nothing is allocated for any grammar we ship.
        let mut scratch = [0u16; 384];
        let mut walk = Walk {
            count: 0,
            request: h.is_request(),
        };
        self.check_seq(msg.avps(), grammar, 1, None, &mut walk, &mut scratch)
            .map_err(|e| *e)
    }

    fn check_seq(
        &self,
        avps: AvpIter<'_>,
        grammar: &Grammar,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
        scratch: &mut [u16],
    ) -> Result<(), Failed> {
        let dict = self.dict;
        // Occurrence counts per grammar rule (saturating, so none can overflow); from the
        // caller's scratch space, or the heap for the rare grammar that does not fit.
        let n = grammar.rules.len();
        let mut big = Vec::new();
        // Rules tracked by bits need no counters.
        let mut seen = 0u64;
        let (counts, rest): (&mut [u16], &mut [u16]) = if !grammar.counted {
            scratch.split_at_mut(0)
        } else if n <= scratch.len() {
            let (c, r) = scratch.split_at_mut(n);
            c.fill(0);
            (c, r)
        } else {
            big.resize(n, 0);
            (&mut big, scratch)
        };
        let all = avps.clone();
        let mut avps = avps;
        let mut pos = 0;
        loop {
            let avp = match avps.next_framed() {
                Some(avp) => avp,
                // The end, or a framing error that the iterator reports in full.
                None => match avps.next() {
                    None => break,
                    Some(avp) => avp.map_err(|e| length_error(dict, path, &e))?,
                },
            };
            pos += 1;
            walk.count += 1;
            if walk.count > self.opts.limits.max_avps {
                return Err(report(
                    ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                    path,
                    Some(copy(avp)),
                    "too many AVPs",
                )
                .into());
            }
            let key = avp.key();
            // One probe: the grammar's slot for the AVP names its rule, its definition and
            // its checks; only AVPs the grammar does not name are looked up in the dictionary.
            let slot = grammar.slot(key);
            let rule = slot.map(|s| usize::from(s.rule));
            // RFC 6733 §3.2: fixed AVPs ("<AVP>") "MUST appear in the position specified".
            // Present elsewhere: 5004 with that AVP; absent: 5005 with an example of it.
            if pos <= grammar.fixed && rule != Some(pos - 1) {
                let expected = &grammar.rules[pos - 1];
                return Err(
                    match all.clone().flatten().find(|a| a.key() == expected.key) {
                        Some(misplaced) => report(
                            ResultCode::DIAMETER_INVALID_AVP_VALUE,
                            path,
                            Some(copy(misplaced)),
                            "fixed AVP out of position",
                        ),
                        None => report(
                            ResultCode::DIAMETER_MISSING_AVP,
                            path,
                            Some(missing(dict.avp_at(expected.avp))),
                            "missing fixed AVP",
                        ),
                    }
                    .into(),
                );
            }
            let Some(s) = slot else {
                self.check_unlisted(avp, grammar.any, depth, path, walk, rest)?;
                continue;
            };
            self.check_avp(avp, s.avp, &s.hot, depth, path, walk, rest)?;
            match s.occurs {
                Occurs::Many => seen |= s.bit,
                Occurs::Once if seen & s.bit == 0 => seen |= s.bit,
                occurs => {
                    // RFC 6733 §7.1.5 5009: Failed-AVP carries "the first instance of the
                    // offending AVP that exceeded the maximum number of occurrences".
                    let over = match occurs {
                        Occurs::Counted => {
                            let c = &mut counts[usize::from(s.rule)];
                            *c = c.saturating_add(1);
                            *c > s.max
                        }
                        // A second one of a rule that allows one.
                        _ => true,
                    };
                    if over {
                        return Err(report(
                            ResultCode::DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
                            path,
                            Some(copy(avp)),
                            "AVP occurs too many times",
                        )
                        .into());
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
                Occurs::Counted => u32::from(counts[i]),
                _ => (seen >> i & 1) as u32,
            };
            if have < r.min {
                let def = dict.avp_at(r.avp);
                let msg = if r.kind == RuleKind::Fixed {
                    "missing fixed AVP"
                } else {
                    "missing AVP"
                };
                return Err(report(
                    ResultCode::DIAMETER_MISSING_AVP,
                    path,
                    Some(missing(def)),
                    msg,
                )
                .into());
            }
        }
        Ok(())
    }
}

impl<'d> Validator<'d> {
    /// The checks of one AVP after its grammar rule is known: its flags, its value, and
    /// for a group its children.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn check_avp(
        &self,
        avp: AvpRef<'_>,
        idx: u32,
        hot: &Hot,
        depth: usize,
        path: Option<&Path<'_>>,
        walk: &mut Walk,
        rest: &mut [u16],
    ) -> Result<(), Failed> {
        let dict = self.dict;
        // RFC 6733 §7.1.3 DIAMETER_INVALID_AVP_BITS: "flag bits … inconsistent with the
        // AVP's definition". The P bit and reserved bits are not checked (§4.1).
        if avp.flags.0 & hot.flag_mask != hot.flag_want {
            return Err(report(
                ResultCode::DIAMETER_INVALID_AVP_BITS,
                path,
                Some(copy(avp)),
                "AVP flags inconsistent with its definition",
            )
            .into());
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
                    return Err(too_deep(path, avp).into());
                }
                let g = dict.avp_at(idx).grammar.as_ref().unwrap_or(&ANY);
                // RFC 6733 §4.4: a Grouped payload is a sequence of AVPs. An empty one
                // (Requested-Service-Unit in every CCR-U MSCC, RFC 4006 §8.18) has
                // nothing to walk; only its grammar's required AVPs could be missing.
                if !avp.data.is_empty() || !g.required.is_empty() {
                    let here = Path::of(path, avp);
                    self.check_seq(avp.children(), g, depth + 1, Some(&here), walk, rest)?;
                }
            }
            // Wrong fixed lengths and every other type: the full checks, which also
            // produce the error.
            _ => self.check_value(avp, idx, hot.check, path)?,
        }
        Ok(())
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
        rest: &mut [u16],
    ) -> Result<(), Failed> {
        let Some((idx, hot)) = self.unlisted(avp, path)? else {
            return Ok(());
        };
        self.check_avp(avp, idx, hot, depth, path, walk, rest)?;
        if !any {
            return Err(report(
                ResultCode::DIAMETER_AVP_NOT_ALLOWED,
                path,
                Some(copy(avp)),
                "AVP not allowed here",
            )
            .into());
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
                return Err(report(
                    ResultCode::DIAMETER_AVP_UNSUPPORTED,
                    path,
                    Some(copy(avp)),
                    "unsupported AVP",
                )
                .into());
            }
            return Ok(None);
        };
        Ok(Some((idx, dict.hot_ref(idx))))
    }

    /// The value of a non-Grouped AVP: its type (RFC 6733 §4.2, §4.3), inner structure
    /// and, for Enumerated with a closed list, that the value is listed.
    fn check_value(
        &self,
        avp: AvpRef<'_>,
        idx: u32,
        chk: AvpCheck,
        path: Option<&Path<'_>>,
    ) -> Result<(), Failed> {
        let key = avp.key();
        if let Err(e) = chk
            .data_type
            .check(avp.data)
            .and_then(|()| check_specific(key, avp.data))
        {
            return Err(report(e.result_code(), path, Some(copy(avp)), "invalid AVP value").into());
        }
        if chk.closed_enum {
            let v = i32::from_be_bytes([avp.data[0], avp.data[1], avp.data[2], avp.data[3]]);
            if self.dict.avp_at(idx).value_name(v).is_none() {
                return Err(report(
                    ResultCode::DIAMETER_INVALID_AVP_VALUE,
                    path,
                    Some(copy(avp)),
                    "enumerated value not defined",
                )
                .into());
            }
        }
        Ok(())
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
            return Err(too_deep(path, avp).into());
        }
        let here = Path::of(path, avp);
        for child in avp.children() {
            let child = child.map_err(|e| length_error(self.dict, Some(&here), &e))?;
            walk.count += 1;
            if walk.count > self.opts.limits.max_avps {
                return Err(report(
                    ResultCode::DIAMETER_UNABLE_TO_COMPLY,
                    Some(&here),
                    Some(copy(child)),
                    "too many AVPs",
                )
                .into());
            }
            if child.key() == FAILED_AVP {
                self.walk_failed(child, depth + 1, Some(&here), walk)?;
            }
        }
        Ok(())
    }
}

static ANY: Grammar = Grammar::any_avp();

pub(crate) const FAILED_AVP: crate::AvpKey = crate::AvpKey::new(279, 0);
const FRAMED_IPV6_PREFIX: crate::AvpKey = crate::AvpKey::new(97, 0);

/// Whether `check_specific` has anything to check for this AVP.
pub(crate) fn has_specific_check(key: crate::AvpKey) -> bool {
    key == FRAMED_IPV6_PREFIX
}

/// Checks of AVPs whose OctetString payload has an inner structure with lengths of its own
/// (bad-inputs 24).
fn check_specific(key: crate::AvpKey, data: &[u8]) -> Result<(), crate::ValueError> {
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
