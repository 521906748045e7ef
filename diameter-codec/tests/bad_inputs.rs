//! Bad inputs, codec part: cases 1–28 of `shared/reference/bad-inputs.md`.
//!
//! Every row starts from a valid message built with [`MessageBuilder`] and the typed
//! dictionary constants, corrupts it, and asserts the exact outcome:
//!
//! - framing cases: the [`FrameError`] from [`frame_length`] and [`Message::decode`], and the
//!   Result-Code it maps to (5011 for the version, 5015 for lengths);
//! - a top-level AVP that does not frame: the [`DecodeError::Avp`] and the report an answer
//!   carries (5014, Failed-AVP = the AVP header and a zero-filled payload of the type's minimum
//!   length, RFC 6733 §7.1.5);
//! - AVP cases: the [`Validator`]'s Result-Code and Failed-AVP (RFC 6733 §7.5: nested errors
//!   wrapped in their grouped parents; 5005 carries a zeroed example of the missing AVP; 5009
//!   the first instance over the maximum; 5001 a copy of the unknown AVP), and the error answer
//!   built by [`MessageBuilder::error_answer`]: E bit for 3xxx only, the Result-Code, and the
//!   Failed-AVP on the wire exactly as expected.
//!
//! Where the RFC leaves a choice, the policy is the one documented at the top of
//! `src/validate.rs`.
//!
//! Rows whose note starts with `CODEC-FIX-n` assert the right behaviour where the codec does
//! not have it yet; the fix each needs is described next to [`CODEC_FIXES`]. All rows run;
//! mismatches are collected and reported together, each with its case number.

use bytes::{BufMut, Bytes, BytesMut};
use diameter_codec::avp::AvpFlags;
use diameter_codec::dict::{AvpDef, base, dcca, gx, nasreq, rx};
use diameter_codec::encode::AvpValue;
use diameter_codec::types::DiameterTime;
use diameter_codec::{
    AvpErrorKind, AvpIter, AvpKey, CommandFlags, DataType, DecodeError, Dictionary, ErrorReport,
    FrameError, HEADER_LEN, Limits, LocalIdentity, Message, MessageBuilder, OwnedAvp, Renderer,
    ResultCode, ValidateOptions, Validator, frame_length, fuzzing,
};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Codec behaviour these tests assert but the codec does not have yet (see the report).
///
/// - CODEC-FIX-1 (API): a top-level AVP that does not frame makes `Message::decode` fail
///   with `DecodeError::Avp`, but nothing public turns that into the [`ErrorReport`] the
///   answer needs. Add `DecodeError::error_report(&self, dict: &Dictionary) ->
///   Option<ErrorReport>` (message.rs) built with validate.rs's `length_error(dict, None,
///   error)` (make it `pub(crate)`); then replace the body of [`decode_error_report`] here
///   with a call to it.
/// - CODEC-FIX-2: an AVP received with the V bit and Vendor-Id 0 is copied into Failed-AVP
///   as `OwnedAvp { flags: V|…, vendor: 0 }`, and `OwnedAvp::encode` (encode.rs) drops the V
///   bit and the Vendor-Id field when `vendor == 0`, so the 3009 answer does not show the
///   offending flag. Fix: in `OwnedAvp::encode`/`header_len`, write the V bit and a
///   Vendor-Id field when `self.flags.vendor() || self.vendor != 0`. The same bug makes
///   `fuzzing::roundtrip` panic on any such AVP: it is the crash `cargo fuzz run roundtrip`
///   finds (`fuzz/regressions/`).
/// - CODEC-FIX-3: Framed-IPv6-Prefix (97, RFC 7155 §4.4.10.5 / RFC 3162 §2.3) is checked as
///   a plain OctetString; a Prefix-Length > 128 or a prefix shorter than Prefix-Length needs
///   must be 5004.
/// - CODEC-FIX-4: validate.rs `check_seq`, fixed-position check: when the AVP at a fixed
///   position is some other known AVP, it answers 5004 with a copy of *that* AVP, even when
///   the fixed AVP is absent; and when it is an unknown AVP it answers 5005 even when the
///   fixed AVP comes later. Right: fixed AVP absent → 5005 with `missing(expected)`; present
///   elsewhere → 5004 with a copy of the misplaced fixed AVP.
/// - CODEC-FIX-5: validate.rs `check_seq` validates the values inside a received Failed-AVP
///   as if they were live AVPs, so an error answer carrying the offending AVP (invalid
///   UTF-8, a zero-filled Origin-Host, …) is itself rejected. Failed-AVP content must only
///   be framed, not value- or flag-checked (RFC 6733 §7.5: it carries the offending AVPs).
pub const CODEC_FIXES: [&str; 5] = [
    "CODEC-FIX-1",
    "CODEC-FIX-2",
    "CODEC-FIX-3",
    "CODEC-FIX-4",
    "CODEC-FIX-5",
];

const HBH: u32 = 0x2222_2222;
const E2E: u32 = 0x3333_3333;
const M: u8 = AvpFlags::MANDATORY;
const V: u8 = AvpFlags::VENDOR;
const P: u8 = AvpFlags::PROTECTED;
const TGPP: u32 = 10_415;
/// An AVP code no dictionary defines.
const UNKNOWN: u32 = 0x00ff_ff01;
/// Decode limits for rows that must get past the default 64 KiB frame limit.
const ROOMY: Limits = Limits {
    max_message_len: 0x00ff_fffc,
    max_depth: 16,
    max_avps: usize::MAX,
};

fn dict() -> &'static Dictionary {
    Dictionary::embedded()
}

fn me() -> LocalIdentity {
    LocalIdentity::new("pcrf.example.net", "example.net")
}

// ---------------------------------------------------------------------------------------------
// Building and corrupting
// ---------------------------------------------------------------------------------------------

/// An AVP as it goes on the wire, padding included.
fn wire(a: &OwnedAvp) -> Vec<u8> {
    let mut b = BytesMut::new();
    a.encode(&mut b);
    b.to_vec()
}

/// Arbitrary AVP bytes, written as they are.
fn raw(bytes: Vec<u8>) -> OwnedAvp {
    let code = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    OwnedAvp::new(code, 0, bytes[4], AvpValue::Verbatim(Bytes::from(bytes)))
}

/// `a` encoded, then corrupted by `f`.
fn corrupt(a: &OwnedAvp, f: impl FnOnce(&mut Vec<u8>)) -> OwnedAvp {
    let mut b = wire(a);
    f(&mut b);
    raw(b)
}

fn set_avp_len(b: &mut [u8], len: u32) {
    b[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
}

fn set_msg_len(b: &mut [u8], len: u32) {
    b[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
}

/// Adds a Vendor-Id field of 0 and the V bit to an AVP without one.
fn add_vendor_zero(b: &mut Vec<u8>) {
    let len = u32::from_be_bytes([0, b[5], b[6], b[7]]);
    b[4] |= V;
    b.splice(8..8, [0u8; 4]);
    set_avp_len(b, len + 4);
}

/// An AVP of a typed definition with an arbitrary payload.
fn with_payload<T>(d: diameter_codec::TypedAvp<T>, payload: &[u8]) -> OwnedAvp
where
    T: diameter_codec::AvpType,
{
    OwnedAvp {
        code: d.code(),
        flags: d.flags(),
        vendor: d.vendor(),
        value: AvpValue::Bytes(Bytes::copy_from_slice(payload)),
    }
}

/// An AVP whose payload is given as bytes (for Grouped AVPs with broken children).
fn group_bytes(code: u32, flags: u8, vendor: u32, payload: Vec<u8>) -> OwnedAvp {
    OwnedAvp::new(code, vendor, flags, AvpValue::Bytes(Bytes::from(payload)))
}

fn group(code: u32, flags: u8, vendor: u32, children: Vec<OwnedAvp>) -> OwnedAvp {
    OwnedAvp::new(code, vendor, flags, AvpValue::Grouped(children))
}

const SESSION: &str = "pcef.example.net;1;23"; // 21 octets: AVP Length 29, 3 padding bytes

/// A valid CCR-I (RFC 4006, application 4).
fn ccr_avps() -> Vec<OwnedAvp> {
    vec![
        base::SESSION_ID.with(SESSION),
        base::ORIGIN_HOST.with("pcef.example.net"),
        base::ORIGIN_REALM.with("example.net"),
        base::DESTINATION_REALM.with("example.net"),
        base::AUTH_APPLICATION_ID.with(dcca::APP_DIAMETER_CREDIT_CONTROL),
        dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"),
        dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST),
        dcca::CC_REQUEST_NUMBER.with(0u32),
    ]
}

/// A valid CER.
fn cer_avps() -> Vec<OwnedAvp> {
    vec![
        base::ORIGIN_HOST.with("pcef.example.net"),
        base::ORIGIN_REALM.with("example.net"),
        base::HOST_IP_ADDRESS.with(IpAddr::from([192, 0, 2, 1])),
        base::VENDOR_ID.with(0u32),
        base::PRODUCT_NAME.with("bad-inputs"),
    ]
}

fn message(flags: u8, code: u32, app: u32, avps: Vec<OwnedAvp>) -> Bytes {
    let mut b = MessageBuilder::request(code, app, false).ids(HBH, E2E);
    b.flags = CommandFlags(flags);
    b.avps = avps;
    b.to_bytes()
}

fn ccr_from(avps: Vec<OwnedAvp>) -> Bytes {
    message(
        CommandFlags::REQUEST | CommandFlags::PROXIABLE,
        dcca::CMD_CREDIT_CONTROL,
        dcca::APP_DIAMETER_CREDIT_CONTROL,
        avps,
    )
}

/// The base CCR followed by `extra`.
fn ccr(extra: Vec<OwnedAvp>) -> Bytes {
    let mut a = ccr_avps();
    a.extend(extra);
    ccr_from(a)
}

/// The base CCR with AVP `i` replaced.
fn ccr_replacing(i: usize, avp: OwnedAvp) -> Bytes {
    let mut a = ccr_avps();
    a[i] = avp;
    ccr_from(a)
}

/// The base CCR without AVP `i`.
fn ccr_without(i: usize) -> Bytes {
    let mut a = ccr_avps();
    a.remove(i);
    ccr_from(a)
}

fn cer_from(avps: Vec<OwnedAvp>) -> Bytes {
    message(
        CommandFlags::REQUEST,
        base::CMD_CAPABILITIES_EXCHANGE,
        0,
        avps,
    )
}

/// Offset of the first AVP after the base CCR.
fn ccr_end() -> usize {
    HEADER_LEN + ccr_avps().iter().map(OwnedAvp::encoded_len).sum::<usize>()
}

/// `n` Grouped AVPs `code` nested in one another around `leaf` (an encoded AVP, padded),
/// built in one pass so depth 10⁵ costs no recursion.
fn nested(code: u32, flags: u8, n: usize, leaf: &[u8]) -> Vec<u8> {
    let total = 8 * n + leaf.len();
    let mut out = Vec::with_capacity(total);
    for i in 0..n {
        out.extend_from_slice(&code.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&((total - 8 * i) as u32).to_be_bytes()[1..]);
    }
    out.extend_from_slice(leaf);
    out
}

// ---------------------------------------------------------------------------------------------
// Expected Failed-AVP contents
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Data(Vec<u8>),
    Group(Vec<Shape>),
}

/// What a Failed-AVP child must be: header fields and payload, groups expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    code: u32,
    flags: u8,
    vendor: u32,
    body: Body,
}

impl Shape {
    fn leaf(code: u32, flags: u8, vendor: u32, data: &[u8]) -> Self {
        Self {
            code,
            flags,
            vendor,
            body: Body::Data(data.to_vec()),
        }
    }
    /// A zeroed payload of `n` octets.
    fn zeroed(code: u32, flags: u8, vendor: u32, n: usize) -> Self {
        Self::leaf(code, flags, vendor, &vec![0; n])
    }
    /// `self` wrapped in a grouped parent (RFC 6733 §7.5).
    fn inside(self, code: u32, flags: u8, vendor: u32) -> Self {
        Self {
            code,
            flags,
            vendor,
            body: Body::Group(vec![self]),
        }
    }
    fn of(a: &OwnedAvp) -> Self {
        let body = match &a.value {
            AvpValue::Grouped(c) => Body::Group(c.iter().map(Self::of).collect()),
            AvpValue::Verbatim(b) => match AvpIter::new(b).next() {
                Some(Ok(r)) => Body::Data(r.data.to_vec()),
                _ => Body::Data(b.to_vec()),
            },
            _ => {
                let w = wire(a);
                let hdr = if a.vendor != 0 || a.flags.0 & V != 0 {
                    12
                } else {
                    8
                };
                Body::Data(w[hdr..a.avp_length()].to_vec())
            }
        };
        Self {
            code: a.code,
            flags: a.flags.0,
            vendor: a.vendor,
            body,
        }
    }
    /// The exact AVP bytes (without trailing padding) an answer must carry: the header as
    /// received (a V bit with Vendor-Id 0 keeps its Vendor-Id field).
    fn encode(&self) -> Vec<u8> {
        let payload = match &self.body {
            Body::Data(d) => d.clone(),
            Body::Group(c) => c
                .iter()
                .flat_map(|s| {
                    let mut e = s.encode();
                    e.resize((e.len() + 3) & !3, 0);
                    e
                })
                .collect(),
        };
        let vendor_field = self.flags & V != 0 || self.vendor != 0;
        let hdr = if vendor_field { 12 } else { 8 };
        let mut out = Vec::with_capacity(hdr + payload.len());
        out.put_u32(self.code);
        out.put_u32(
            (u32::from(self.flags | if self.vendor != 0 { V } else { 0 }) << 24)
                | (hdr + payload.len()) as u32,
        );
        if vendor_field {
            out.put_u32(self.vendor);
        }
        out.extend_from_slice(&payload);
        out
    }
}

/// Same AVP on the wire (a Grouped body and its bytes compare equal).
fn same(a: Option<&Shape>, b: Option<&Shape>) -> bool {
    a.map(Shape::encode) == b.map(Shape::encode)
}

fn copy_of(a: &OwnedAvp) -> Shape {
    Shape::of(a)
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

enum Expect {
    /// `Message::decode` refuses the frame.
    Frame(FrameError),
    /// A top-level AVP does not frame: `DecodeError::Avp` of this kind at this offset, and
    /// the answer's Result-Code and Failed-AVP.
    Avp {
        kind: AvpErrorKind,
        offset: usize,
        rc: ResultCode,
        failed: Shape,
    },
    /// Decodes and validates.
    Valid,
    /// Decodes; the validator answers this Result-Code and Failed-AVP.
    Reject {
        rc: ResultCode,
        failed: Option<Shape>,
    },
}

type Check = fn(&Message) -> Result<(), String>;

struct Row {
    case: u8,
    what: String,
    bytes: Bytes,
    limits: Limits,
    expect: Expect,
    /// Extra check on a message that decodes.
    check: Option<Check>,
}

fn row(case: u8, what: impl Into<String>, bytes: Bytes, expect: Expect) -> Row {
    Row {
        case,
        what: what.into(),
        bytes,
        limits: Limits::DEFAULT,
        expect,
        check: None,
    }
}

impl Row {
    fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }
    fn check(mut self, c: Check) -> Self {
        self.check = Some(c);
        self
    }
}

fn reject(rc: ResultCode, failed: Shape) -> Expect {
    Expect::Reject {
        rc,
        failed: Some(failed),
    }
}

/// The error report for a top-level AVP that does not frame.
fn decode_error_report(e: &DecodeError) -> Option<ErrorReport> {
    e.error_report(dict())
}

/// Checks an error answer: E bit for 3xxx only, Result-Code, Failed-AVP bytes; and that the
/// answer itself decodes and validates (CODEC-FIX-5).
fn check_answer(
    answer: &MessageBuilder,
    rc: ResultCode,
    failed: Option<&Shape>,
    limits: &Limits,
) -> Result<(), String> {
    let bytes = answer.to_bytes();
    if bytes.len() % 4 != 0 {
        return Err(format!("answer length {} not a multiple of 4", bytes.len()));
    }
    let a =
        Message::decode(bytes, limits).map_err(|e| format!("error answer does not decode: {e}"))?;
    let h = a.header();
    if h.is_request() {
        return Err("error answer has the R bit".into());
    }
    if h.flags.is_error() != rc.is_protocol_error() {
        return Err(format!(
            "E bit {} on a {} answer (RFC 6733 §7.1.3: 3xxx only)",
            h.flags.is_error(),
            rc.0
        ));
    }
    if (h.hop_by_hop, h.end_to_end) != (HBH, E2E) {
        return Err("error answer does not keep the identifiers".into());
    }
    match a.get(base::RESULT_CODE) {
        Some(Ok(v)) if v == rc.0 => {}
        other => return Err(format!("answer Result-Code {other:?}, want {}", rc.0)),
    }
    let fa: Vec<_> = a.find_all(base::FAILED_AVP.key()).collect();
    match (failed, fa.as_slice()) {
        (None, []) => {}
        (Some(want), [f]) => {
            let kids: Vec<_> = f.children().collect();
            let [Ok(child)] = kids.as_slice() else {
                return Err(format!(
                    "Failed-AVP has {} children / framing error",
                    kids.len()
                ));
            };
            let want = want.encode();
            if child.raw != want.as_slice() {
                return Err(format!(
                    "Failed-AVP on the wire\n   got {}\n  want {}",
                    hex::encode(&child.raw[..child.raw.len().min(96)]),
                    hex::encode(&want[..want.len().min(96)])
                ));
            }
        }
        (w, f) => {
            return Err(format!(
                "answer has {} Failed-AVP, want {}",
                f.len(),
                usize::from(w.is_some())
            ));
        }
    }
    let opts = ValidateOptions {
        limits: Limits {
            max_message_len: limits.max_message_len,
            ..Limits::DEFAULT
        },
        ..Default::default()
    };
    // A 5xxx answer still needs the command's own answer AVPs, which the application adds;
    // what must never fail is the content of the Failed-AVP itself.
    if let Err(r) = Validator::new(dict(), opts).validate(&a)
        && r.failed_avp.as_ref().is_some_and(|f| f.code == 279)
    {
        return Err(format!(
            "CODEC-FIX-5: the error answer's Failed-AVP content is rejected: {} {:?}",
            r.result_code, r.message
        ));
    }
    Ok(())
}

fn run_row(r: &Row) -> Result<(), String> {
    let dict = dict();
    // Whatever the outcome, nothing panics on the way (the fuzz targets' entry points).
    let bytes: &[u8] = &r.bytes;
    if std::panic::catch_unwind(|| fuzzing::decode(bytes)).is_err() {
        return Err("fuzzing::decode panicked".into());
    }
    if std::panic::catch_unwind(|| fuzzing::roundtrip(bytes)).is_err() {
        return Err("fuzzing::roundtrip panicked (see its message above)".into());
    }
    let decoded = Message::decode(r.bytes.clone(), &r.limits);
    if let Ok(m) = &decoded {
        let rd = Renderer::new(dict);
        let _ = rd.text(m);
        let _ = rd.json(m);
    }
    match (&r.expect, decoded) {
        (Expect::Frame(want), Err(DecodeError::Frame(got))) => {
            if got != *want {
                return Err(format!("frame error {got:?}, want {want:?}"));
            }
            let rc = if matches!(want, FrameError::UnsupportedVersion(_)) {
                5011
            } else {
                5015
            };
            if got.result_code().0 != rc {
                return Err(format!("{got:?} maps to {}, want {rc}", got.result_code()));
            }
            // Stream framing sees the same verdict from the first 4 bytes, before buffering.
            if !matches!(
                want,
                FrameError::LengthMismatch { .. } | FrameError::TruncatedHeader(_)
            ) {
                let fl = frame_length(&r.bytes[..4], r.limits.max_message_len);
                if fl != Err(*want) {
                    return Err(format!(
                        "frame_length on the first 4 bytes: {fl:?}, want {want:?}"
                    ));
                }
            }
            Ok(())
        }
        (
            Expect::Avp {
                kind,
                offset,
                rc,
                failed,
            },
            Err(e @ DecodeError::Avp { header, error }),
        ) => {
            if error.kind != *kind || error.offset != *offset {
                return Err(format!(
                    "AVP error {:?} at {}, want {kind:?} at {offset}",
                    error.kind, error.offset
                ));
            }
            if e.result_code() != *rc {
                return Err(format!("result code {}, want {}", e.result_code(), rc));
            }
            let report = decode_error_report(&e).ok_or("no report")?;
            let got = report.failed_avp.as_ref().map(Shape::of);
            if !same(got.as_ref(), Some(failed)) {
                return Err(format!("Failed-AVP {got:?}, want {failed:?}"));
            }
            let answer = MessageBuilder::error_answer_to_header(&header, &me(), &report);
            check_answer(&answer, *rc, Some(failed), &r.limits)
        }
        (Expect::Valid, Ok(m)) => {
            let opts = ValidateOptions::default();
            if let Err(rep) = Validator::new(dict, opts).validate(&m) {
                return Err(format!(
                    "rejected with {} {:?}, failed {:?}",
                    rep.result_code,
                    rep.message,
                    rep.failed_avp.as_ref().map(|f| (f.code, f.vendor))
                ));
            }
            r.check.map_or(Ok(()), |c| c(&m))
        }
        (Expect::Reject { rc, failed }, Ok(m)) => {
            // Rejections are asserted at the strict level, which rejects every deviation
            // (src/validate: levels); what the default level accepts is in tests/levels.rs.
            let rep = match Validator::new(dict, ValidateOptions::strict()).validate(&m) {
                Ok(()) => return Err(format!("accepted, want {rc}")),
                Err(rep) => rep,
            };
            if rep.result_code != *rc {
                return Err(format!(
                    "result code {} ({:?}, failed {:?}), want {rc}",
                    rep.result_code,
                    rep.message,
                    rep.failed_avp.as_ref().map(|f| (f.code, f.vendor))
                ));
            }
            let got = rep.failed_avp.as_ref().map(Shape::of);
            if !same(got.as_ref(), failed.as_ref()) {
                let short =
                    |s: &Option<Shape>| format!("{s:?}").chars().take(600).collect::<String>();
                return Err(format!(
                    "Failed-AVP\n   got {}\n  want {}",
                    short(&got),
                    short(failed)
                ));
            }
            let answer = MessageBuilder::error_answer(&m, &me(), &rep);
            if answer.to_bytes().len() > r.bytes.len() + 512 {
                return Err(format!(
                    "error answer of {} bytes for a {}-byte request",
                    answer.to_bytes().len(),
                    r.bytes.len()
                ));
            }
            check_answer(&answer, *rc, failed.as_ref(), &r.limits)?;
            r.check.map_or(Ok(()), |c| c(&m))
        }
        (_, Ok(_)) => Err("decoded, want a decode error".into()),
        (_, Err(e)) => Err(format!("decode error {e:?}")),
    }
}

fn run_table(rows: &[Row]) {
    let mut failures = Vec::new();
    for r in rows {
        if let Err(e) = run_row(r) {
            failures.push(format!("case {:>2} [{}]: {e}", r.case, r.what));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Rows, by case
// ---------------------------------------------------------------------------------------------

fn framing_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let ccr0 = ccr(vec![]);
    let n = ccr0.len() as u32;
    let patched = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = ccr0.to_vec();
        f(&mut b);
        Bytes::from(b)
    };
    // Case 1: version 0, 2, 0xFF → UnsupportedVersion (5011 where an answer can be sent).
    for v in [0u8, 2, 0xff] {
        let b = patched(&|b| b[0] = v);
        rows.push(row(
            1,
            format!("version {v}"),
            b,
            Expect::Frame(FrameError::UnsupportedVersion(v)),
        ));
    }
    // Case 2: Message Length below the header.
    for len in [0u32, 1, 3, 4, 19] {
        let b = patched(&|b| set_msg_len(b, len));
        rows.push(row(
            2,
            format!("Message Length {len}"),
            b,
            Expect::Frame(FrameError::InvalidLength(len)),
        ));
    }
    // Case 3: not a multiple of 4: 21..23, and the true length + 1..3 with the bytes present.
    for len in [21u32, 22, 23] {
        let b = patched(&|b| set_msg_len(b, len));
        rows.push(row(
            3,
            format!("Message Length {len}"),
            b,
            Expect::Frame(FrameError::InvalidLength(len)),
        ));
    }
    for extra in 1..=3u32 {
        let b = patched(&|b| {
            b.resize(b.len() + extra as usize, 0);
            set_msg_len(b, n + extra);
        });
        rows.push(row(
            3,
            format!("Message Length {}+{extra}, bytes present", n),
            b,
            Expect::Frame(FrameError::InvalidLength(n + extra)),
        ));
    }
    // Case 4: above the configured maximum, body never sent. 1 MiB+1 and 0xFFFFFF are also
    // not multiples of 4, which is checked first: still refused from the first 4 bytes.
    let max = Limits::DEFAULT.max_message_len;
    for (len, want) in [
        (
            65_536,
            FrameError::TooLong {
                length: 65_536,
                max,
            },
        ),
        (
            max + 4,
            FrameError::TooLong {
                length: max + 4,
                max,
            },
        ),
        (
            (1 << 20) + 4,
            FrameError::TooLong {
                length: (1 << 20) + 4,
                max,
            },
        ),
        ((1 << 20) + 1, FrameError::InvalidLength((1 << 20) + 1)),
        (
            0x00ff_fffc,
            FrameError::TooLong {
                length: 0x00ff_fffc,
                max,
            },
        ),
        (0x00ff_ffff, FrameError::InvalidLength(0x00ff_ffff)),
    ] {
        let b = patched(&|b| set_msg_len(b, len));
        rows.push(row(
            4,
            format!("Message Length {len:#x}, body not sent"),
            b,
            Expect::Frame(want),
        ));
    }
    // Case 5: more announced than sent (then idle): framing waits, decode refuses the partial
    // buffer; the read deadline that closes the idle connection is the transport's.
    let b = patched(&|b| set_msg_len(b, n + 64));
    rows.push(row(
        5,
        "Message Length 64 beyond the bytes sent",
        b,
        Expect::Frame(FrameError::LengthMismatch {
            announced: n + 64,
            actual: n as usize,
        }),
    ));
    // Case 6 (single buffer): ±4, ±12, −24 of the true length → 5015.
    for d in [4i64, -4, 12, -12, -24] {
        let len = (i64::from(n) + d) as u32;
        let b = patched(&|b| set_msg_len(b, len));
        rows.push(row(
            6,
            format!("Message Length {d:+}"),
            b,
            Expect::Frame(FrameError::LengthMismatch {
                announced: len,
                actual: n as usize,
            }),
        ));
    }
    // Fewer than 20 bytes in a buffer handed to decode.
    rows.push(row(
        2,
        "12-byte buffer",
        ccr0.slice(..12),
        Expect::Frame(FrameError::TruncatedHeader(12)),
    ));
    rows
}

fn avp_length_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let end = ccr_end();
    let osi = base::ORIGIN_STATE_ID.with(7u32);
    let prec = gx::PRECEDENCE.with(7u32);
    // Case 9: AVP Length 0..7 (no V), 8..11 (V) at top level → 5014, header + zeroed payload.
    for len in 0..=7 {
        let a = corrupt(&osi, |b| set_avp_len(b, len));
        rows.push(row(
            9,
            format!("top-level AVP Length {len}"),
            ccr(vec![a]),
            Expect::Avp {
                kind: AvpErrorKind::LengthTooShort,
                offset: end,
                rc: ResultCode(5014),
                failed: Shape::zeroed(278, M, 0, 4),
            },
        ));
    }
    for len in 8..=11 {
        let a = corrupt(&prec, |b| set_avp_len(b, len));
        rows.push(row(
            9,
            format!("top-level V=1 AVP Length {len}"),
            ccr(vec![a]),
            Expect::Avp {
                kind: AvpErrorKind::LengthTooShort,
                offset: end,
                rc: ResultCode(5014),
                failed: Shape::zeroed(1010, V | M, TGPP, 4),
            },
        ));
    }
    // The same inside a Grouped AVP: found by the validator, wrapped in the parent.
    let rsu = |child: OwnedAvp| group_bytes(437, M, 0, wire(&child));
    let cc_time = dcca::CC_TIME.with(60u32);
    for len in [0u32, 4, 7] {
        let a = rsu(corrupt(&cc_time, |b| set_avp_len(b, len)));
        rows.push(row(
            9,
            format!("nested AVP Length {len}"),
            ccr(vec![a]),
            reject(
                ResultCode(5014),
                Shape::zeroed(420, M, 0, 4).inside(437, M, 0),
            ),
        ));
    }
    let a = rsu(corrupt(&prec, |b| set_avp_len(b, 11)));
    rows.push(row(
        9,
        "nested V=1 AVP Length 11",
        ccr(vec![a]),
        reject(
            ResultCode(5014),
            Shape::zeroed(1010, V | M, TGPP, 4).inside(437, M, 0),
        ),
    ));

    // Case 10: AVP Length beyond the message end → 5014, before any 5001 for unknown + M.
    for len in [16u32, 0x00ff_ffff] {
        let a = corrupt(&osi, |b| set_avp_len(b, len));
        rows.push(row(
            10,
            format!("top-level AVP Length {len:#x} past the end"),
            ccr(vec![a]),
            Expect::Avp {
                kind: AvpErrorKind::Overrun,
                offset: end,
                rc: ResultCode(5014),
                failed: Shape::zeroed(278, M, 0, 4),
            },
        ));
    }
    let unknown_m = OwnedAvp::new(UNKNOWN, 0, M, AvpValue::U32(1));
    let a = corrupt(&unknown_m, |b| set_avp_len(b, 64));
    rows.push(row(
        10,
        "unknown M AVP with Length past the end: 5014, not 5001",
        ccr(vec![a]),
        Expect::Avp {
            kind: AvpErrorKind::Overrun,
            offset: end,
            rc: ResultCode(5014),
            failed: Shape::zeroed(UNKNOWN, M, 0, 0),
        },
    ));
    // An AVP in the middle whose length swallows the rest: error at its own offset.
    let mut avps = ccr_avps();
    avps[5] = corrupt(&avps[5], |b| set_avp_len(b, 0x1000));
    let off = HEADER_LEN
        + ccr_avps()[..5]
            .iter()
            .map(OwnedAvp::encoded_len)
            .sum::<usize>();
    rows.push(row(
        10,
        "Service-Context-Id Length 0x1000 in the middle",
        ccr_from(avps),
        Expect::Avp {
            kind: AvpErrorKind::Overrun,
            offset: off,
            rc: ResultCode(5014),
            failed: Shape::zeroed(461, M, 0, 0),
        },
    ));
    let a = rsu(corrupt(&cc_time, |b| set_avp_len(b, 16)));
    rows.push(row(
        10,
        "child Length past its group",
        ccr(vec![a]),
        reject(
            ResultCode(5014),
            Shape::zeroed(420, M, 0, 4).inside(437, M, 0),
        ),
    ));
    let a = rsu(corrupt(&unknown_m, |b| set_avp_len(b, 16)));
    rows.push(row(
        10,
        "unknown M child Length past its group: 5014",
        ccr(vec![a]),
        reject(
            ResultCode(5014),
            Shape::zeroed(UNKNOWN, M, 0, 0).inside(437, M, 0),
        ),
    ));

    // Case 11: fixed-size types with the wrong size → 5014 with a copy of the AVP.
    for n in [3usize, 5, 8] {
        let a = with_payload(base::ORIGIN_STATE_ID, &vec![0xab; n]);
        let s = copy_of(&a);
        rows.push(row(
            11,
            format!("Unsigned32 AVP Length {}", 8 + n),
            ccr(vec![a]),
            reject(ResultCode(5014), s),
        ));
    }
    let a = with_payload(dcca::CC_INPUT_OCTETS, &[0, 0, 1, 0]);
    let s = copy_of(&a).inside(437, M, 0);
    rows.push(row(
        11,
        "Unsigned64 AVP Length 12 (in Requested-Service-Unit)",
        ccr(vec![group(437, M, 0, vec![a])]),
        reject(ResultCode(5014), s),
    ));
    let a = with_payload(gx::MAX_PLR_DL, &[0x3f, 0x80, 0, 0, 0, 0, 0, 0]);
    let s = copy_of(&a);
    rows.push(row(
        11,
        "Float32 AVP Length 20 (8 octets, vendor)",
        ccr(vec![a]),
        reject(ResultCode(5014), s),
    ));
    let a = with_payload(gx::MAX_PLR_DL, &[0x3f, 0x80, 0, 0]);
    rows.push(row(
        11,
        "Float32 with 4 octets is fine",
        ccr(vec![a]),
        Expect::Valid,
    ));

    // Case 12: grouped children overrun / underrun; trailing bytes inside a group.
    let a = rsu(corrupt(&cc_time, |b| set_avp_len(b, 8)));
    rows.push(row(
        12,
        "child Length 8 under its data (then 4 stray bytes)",
        ccr(vec![a]),
        reject(
            ResultCode(5014),
            Shape::leaf(420, M, 0, &[]).inside(437, M, 0),
        ),
    ));
    for k in 1..=7usize {
        let mut p = wire(&cc_time);
        p.extend(std::iter::repeat_n(0u8, k));
        rows.push(row(
            12,
            format!("{k} zero bytes trailing inside a group"),
            ccr(vec![group_bytes(437, M, 0, p)]),
            reject(
                ResultCode(5014),
                Shape::zeroed(0, 0, 0, 0).inside(437, M, 0),
            ),
        ));
    }
    let mut p = wire(&cc_time);
    p.extend([1u8, 1, 1]);
    rows.push(row(
        12,
        "3 bytes 01 trailing inside a group",
        ccr(vec![group_bytes(437, M, 0, p)]),
        reject(
            ResultCode(5014),
            Shape::zeroed(0x0101_0100, 0, 0, 0).inside(437, M, 0),
        ),
    ));
    // A group whose declared length cuts its last child in half.
    let mut p = wire(&cc_time);
    p.truncate(10);
    rows.push(row(
        12,
        "group length cuts its child",
        ccr(vec![group_bytes(437, M, 0, p)]),
        reject(
            ResultCode(5014),
            Shape::zeroed(420, M, 0, 4).inside(437, M, 0),
        ),
    ));

    // Case 13: padding.
    let mut b = ccr(vec![base::USER_NAME.with("abcde")]).to_vec();
    b.truncate(b.len() - 3);
    let len = b.len() as u32;
    set_msg_len(&mut b, len);
    rows.push(row(
        13,
        "last AVP unpadded at the end of the message",
        Bytes::from(b),
        Expect::Frame(FrameError::InvalidLength(len)),
    ));
    let mut sid = wire(&dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(0)));
    let data = dcca::SUBSCRIPTION_ID_DATA.with("12345");
    sid.extend_from_slice(&wire(&data)[..13]);
    rows.push(
        row(
            13,
            "last child of a group unpadded",
            ccr(vec![group_bytes(443, M, 0, sid)]),
            Expect::Valid,
        )
        .check(|m| {
            let g = m
                .find(dcca::SUBSCRIPTION_ID.key())
                .ok_or("no Subscription-Id")?;
            let kids: Vec<_> = g
                .children()
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            match kids.as_slice() {
                [_, d] if d.data == b"12345" => Ok(()),
                k => Err(format!("children {k:?}")),
            }
        }),
    );
    let mut b = ccr(vec![]).to_vec();
    let pad = HEADER_LEN + 29;
    b[pad..pad + 3].copy_from_slice(&[0xff, 0xff, 0xff]);
    rows.push(
        row(
            13,
            "non-zero padding after Session-Id",
            Bytes::from(b),
            Expect::Valid,
        )
        .check(|m| {
            if m.session_id() != Some(SESSION) {
                return Err(format!("Session-Id {:?}", m.session_id()));
            }
            match m.get(base::ORIGIN_HOST) {
                Some(Ok("pcef.example.net")) => Ok(()),
                o => Err(format!("Origin-Host {o:?}: mis-framed after the padding")),
            }
        }),
    );
    rows
}

fn nesting_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let leaf = wire(&base::ORIGIN_STATE_ID.with(1u32));
    let deep = |n: usize, code: u32, flags: u8| ccr(vec![raw(nested(code, flags, n, &leaf))]);
    // Case 14: nesting within the limit is fine; beyond it, 5012 with the AVP at the limit,
    // wrapped in the 15 levels above it.
    for n in [10usize, 15] {
        rows.push(row(
            14,
            format!("Failed-AVP nested {n} deep"),
            deep(n, 279, M),
            Expect::Valid,
        ));
    }
    let too_deep = |n: usize| {
        let bytes = nested(279, M, n, &leaf);
        let mut s = Shape::leaf(279, M, 0, &bytes[8 * 16..]);
        for _ in 0..15 {
            s = s.inside(279, M, 0);
        }
        s
    };
    for n in [16usize, 100] {
        rows.push(row(
            14,
            format!("Failed-AVP nested {n} deep"),
            deep(n, 279, M),
            reject(ResultCode(5012), too_deep(n)),
        ));
    }
    for n in [10_000usize, 100_000] {
        let max = Limits::DEFAULT.max_message_len;
        let b = deep(n, 279, M);
        let length = b.len() as u32;
        rows.push(row(
            14,
            format!("Failed-AVP nested {n} deep, default limits"),
            b.clone(),
            Expect::Frame(FrameError::TooLong { length, max }),
        ));
        rows.push(
            row(
                14,
                format!("Failed-AVP nested {n} deep, 16 MiB frames"),
                b,
                reject(ResultCode(5012), too_deep(n)),
            )
            .limits(ROOMY),
        );
        // Unknown grouped: never descended; ignored without M, 5001 with M.
        rows.push(
            row(
                14,
                format!("unknown non-M AVP nested {n} deep"),
                deep(n, UNKNOWN, 0),
                Expect::Valid,
            )
            .limits(ROOMY),
        );
        let b = nested(UNKNOWN, M, n, &leaf);
        rows.push(
            row(
                14,
                format!("unknown M AVP nested {n} deep"),
                deep(n, UNKNOWN, M),
                reject(ResultCode(5001), Shape::leaf(UNKNOWN, M, 0, &b[8..])),
            )
            .limits(ROOMY),
        );
    }
    rows
}

fn flag_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let oh = base::ORIGIN_HOST.with("pcef.example.net");
    // Case 15: V=1 with Vendor-Id 0 on a base AVP → 3009 (CODEC-FIX-2 for the answer bytes).
    let a = corrupt(&oh, add_vendor_zero);
    rows.push(row(
        15,
        "CODEC-FIX-2: Origin-Host with V=1, Vendor-Id 0 → 3009",
        ccr_replacing(1, a),
        reject(
            ResultCode(3009),
            Shape::leaf(264, V | M, 0, b"pcef.example.net"),
        ),
    ));
    let u = OwnedAvp::new(UNKNOWN, 0, M, AvpValue::U32(9));
    let a = corrupt(&u, add_vendor_zero);
    rows.push(row(
        15,
        "CODEC-FIX-2: unknown M AVP with V=1, Vendor-Id 0 → 5001",
        ccr(vec![a]),
        reject(
            ResultCode(5001),
            Shape::leaf(UNKNOWN, V | M, 0, &[0, 0, 0, 9]),
        ),
    ));
    let u = OwnedAvp::new(UNKNOWN, 0, 0, AvpValue::U32(9));
    rows.push(row(
        15,
        "CODEC-FIX-2: unknown non-M AVP with V=1, Vendor-Id 0 → ignored",
        ccr(vec![corrupt(&u, add_vendor_zero)]),
        Expect::Valid,
    ));

    // Case 16: vendor AVPs with base codes are unknown vendor AVPs, never the base AVP.
    let evil = OwnedAvp::new(
        264,
        TGPP,
        V | M,
        AvpValue::Bytes(Bytes::from_static(b"evil.example.net")),
    );
    rows.push(row(
        16,
        "264/10415 with M → 5001",
        ccr(vec![evil.clone()]),
        reject(
            ResultCode(5001),
            Shape::leaf(264, V | M, TGPP, b"evil.example.net"),
        ),
    ));
    let evil_sid = OwnedAvp::new(
        263,
        TGPP,
        V | M,
        AvpValue::Bytes(Bytes::from_static(b"evil;1")),
    );
    rows.push(row(
        16,
        "263/10415 with M → 5001",
        ccr(vec![evil_sid]),
        reject(ResultCode(5001), Shape::leaf(263, V | M, TGPP, b"evil;1")),
    ));
    let quiet = OwnedAvp::new(
        264,
        TGPP,
        V,
        AvpValue::Bytes(Bytes::from_static(b"evil.example.net")),
    );
    let mut avps = ccr_avps();
    avps.insert(1, quiet.clone());
    rows.push(
        row(
            16,
            "264/10415 without M before Origin-Host → ignored",
            ccr_from(avps),
            Expect::Valid,
        )
        .check(
            |m| match (m.get(base::ORIGIN_HOST), m.find(AvpKey::new(264, TGPP))) {
                (Some(Ok("pcef.example.net")), Some(_)) => Ok(()),
                (o, _) => Err(format!("Origin-Host read as {o:?}")),
            },
        ),
    );
    let quiet_sid = OwnedAvp::new(263, TGPP, V, AvpValue::Bytes(Bytes::from_static(b"evil;1")));
    let mut avps = ccr_avps();
    avps.insert(0, quiet_sid);
    let sid = copy_of(&ccr_avps()[0]);
    rows.push(row(
        16,
        "CODEC-FIX-4: 263/10415 first, Session-Id second → 5004 (fixed AVP out of place)",
        ccr_from(avps),
        reject(ResultCode(5004), sid),
    ));

    // Case 17: unknown AVP with M → 5001 + copy; without M → ignored and relayed unchanged.
    let u = OwnedAvp::new(UNKNOWN, 0, M, AvpValue::Bytes(Bytes::from_static(b"xyz")));
    rows.push(row(
        17,
        "unknown M AVP → 5001",
        ccr(vec![u.clone()]),
        reject(ResultCode(5001), copy_of(&u)),
    ));
    let uv = OwnedAvp::new(
        UNKNOWN,
        99,
        V | M,
        AvpValue::Bytes(Bytes::from_static(b"xyz")),
    );
    rows.push(row(
        17,
        "unknown vendor M AVP → 5001",
        ccr(vec![uv.clone()]),
        reject(ResultCode(5001), copy_of(&uv)),
    ));
    let sub = |extra: OwnedAvp| {
        group(
            443,
            M,
            0,
            vec![
                dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(0)),
                dcca::SUBSCRIPTION_ID_DATA.with("12345"),
                extra,
            ],
        )
    };
    rows.push(row(
        17,
        "unknown M AVP in a closed group → 5001, wrapped",
        ccr(vec![sub(u.clone())]),
        reject(ResultCode(5001), copy_of(&u).inside(443, M, 0)),
    ));
    let u0 = OwnedAvp::new(UNKNOWN, 0, 0, AvpValue::Bytes(Bytes::from_static(b"xyz")));
    rows.push(row(
        17,
        "unknown non-M AVP in a closed group → ignored",
        ccr(vec![sub(u0.clone())]),
        Expect::Valid,
    ));
    rows.push(
        row(
            17,
            "unknown non-M AVP → ignored, relayed byte for byte",
            ccr(vec![
                u0,
                raw(vec![0, 0xff, 0xff, 2, 0x1f, 0, 0, 9, 0xee, 0, 0, 0]),
            ]),
            Expect::Valid,
        )
        .check(|m| {
            let again = MessageBuilder::from_message(m, dict()).to_bytes();
            if again == *m.as_bytes() {
                Ok(())
            } else {
                Err("relay copy differs from the received message".into())
            }
        }),
    );
    // Case 18: unknown non-M grouped with M children → ignored (§4.4).
    let inner = [
        wire(&u),
        wire(&base::ORIGIN_HOST.with("x.example.net")),
        wire(&OwnedAvp::new(UNKNOWN + 1, 0, M, AvpValue::U32(1))),
    ]
    .concat();
    rows.push(row(
        18,
        "unknown non-M group with M children → ignored",
        ccr(vec![group_bytes(UNKNOWN + 2, 0, 0, inner)]),
        Expect::Valid,
    ));

    // Case 19: M flag against the dictionary → 3009; reserved bits ignored.
    let a = OwnedAvp {
        flags: AvpFlags(0),
        ..oh.clone()
    };
    rows.push(row(
        19,
        "Origin-Host without M → 3009",
        ccr_replacing(1, a.clone()),
        reject(ResultCode(3009), copy_of(&a)),
    ));
    let em = OwnedAvp {
        flags: AvpFlags(M),
        ..base::ERROR_MESSAGE.with("hi")
    };
    rows.push(row(
        19,
        "Error-Message (M must not) with M → 3009",
        ccr(vec![em.clone()]),
        reject(ResultCode(3009), copy_of(&em)),
    ));
    let plr = OwnedAvp {
        flags: AvpFlags(V | M),
        ..gx::MAX_PLR_DL.with(0.5f32)
    };
    rows.push(row(
        19,
        "Max-PLR-DL (M must not, vendor) with M → 3009",
        ccr(vec![plr.clone()]),
        reject(ResultCode(3009), copy_of(&plr)),
    ));
    let osi = OwnedAvp {
        flags: AvpFlags(0),
        ..base::ORIGIN_STATE_ID.with(1u32)
    };
    rows.push(row(
        19,
        "Origin-State-Id without M inside a group → 3009, wrapped",
        ccr(vec![group(443, M, 0, vec![osi.clone()])]),
        reject(ResultCode(3009), copy_of(&osi).inside(443, M, 0)),
    ));
    let a = OwnedAvp {
        flags: AvpFlags(M | AvpFlags::RESERVED),
        ..oh.clone()
    };
    rows.push(row(
        19,
        "Origin-Host with the 5 reserved bits set → ignored",
        ccr_replacing(1, a),
        Expect::Valid,
    ));
    let prec_no_v = corrupt(&gx::PRECEDENCE.with(1u32), |b| {
        b[4] &= !V;
        b.drain(8..12);
        set_avp_len(b, 12);
    });
    // Without V the Vendor-Id is absent: (1010, 0) is an unknown base AVP with M → 5001.
    rows.push(row(
        19,
        "Precedence sent without V → unknown (1010, 0) → 5001",
        ccr(vec![prec_no_v]),
        reject(ResultCode(5001), Shape::leaf(1010, M, 0, &[0, 0, 0, 1])),
    ));

    // Case 20: P bit on AVPs → accepted.
    let mut avps = ccr_avps();
    for a in &mut avps {
        a.flags = AvpFlags(a.flags.0 | P);
    }
    rows.push(row(20, "P bit on every AVP", ccr_from(avps), Expect::Valid));
    rows
}

fn value_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    // Case 21: empty payloads.
    let a = with_payload(base::ORIGIN_HOST, b"");
    rows.push(row(
        21,
        "empty Origin-Host (DiameterIdentity) → 5004",
        ccr_replacing(1, a),
        reject(ResultCode(5004), Shape::leaf(264, M, 0, b"")),
    ));
    let a = with_payload(base::DESTINATION_REALM, b"");
    rows.push(row(
        21,
        "empty Destination-Realm → 5004",
        ccr_replacing(3, a),
        reject(ResultCode(5004), Shape::leaf(283, M, 0, b"")),
    ));
    rows.push(row(
        21,
        "empty User-Name (UTF8String) → accepted",
        ccr(vec![with_payload(base::USER_NAME, b"")]),
        Expect::Valid,
    ));
    rows.push(row(
        21,
        "empty CC-Correlation-Id (OctetString) → accepted",
        ccr(vec![with_payload(dcca::CC_CORRELATION_ID, b"")]),
        Expect::Valid,
    ));
    // Case 22: invalid UTF-8 → 5004.
    for (what, bad) in [
        ("ff fe", &b"\xff\xfe"[..]),
        ("overlong c0 af", b"a\xc0\xafb"),
        ("surrogate ed a0 80", b"\xed\xa0\x80"),
        ("truncated e2 82", b"abc\xe2\x82"),
    ] {
        let a = with_payload(base::USER_NAME, bad);
        rows.push(row(
            22,
            format!("User-Name {what}"),
            ccr(vec![a]),
            reject(ResultCode(5004), Shape::leaf(1, M, 0, bad)),
        ));
    }
    let a = with_payload(base::SESSION_ID, b"pcef;\xff");
    rows.push(row(
        22,
        "Session-Id with invalid UTF-8",
        ccr_replacing(0, a),
        reject(ResultCode(5004), Shape::leaf(263, M, 0, b"pcef;\xff")),
    ));
    // Case 23: Address payloads (in a CER's Host-IP-Address).
    let bad_addr: [(&str, Vec<u8>); 9] = [
        ("family 1, 0 octets", vec![0, 1]),
        ("family 1, 3 octets", vec![0, 1, 10, 0, 0]),
        ("family 1, 5 octets", vec![0, 1, 10, 0, 0, 1, 2]),
        ("family 1, 16 octets", [vec![0, 1], vec![0; 16]].concat()),
        ("family 2, 4 octets", vec![0, 2, 10, 0, 0, 1]),
        ("family 0xFFFF", vec![0xff, 0xff, 1, 2, 3, 4]),
        ("family 0", vec![0, 0, 1, 2, 3, 4]),
        (
            "family 8 (E.164), not digits",
            [vec![0, 8], b"12a4".to_vec()].concat(),
        ),
        ("1-octet value", vec![1]),
    ];
    for (what, p) in bad_addr {
        let mut avps = cer_avps();
        avps[2] = with_payload(base::HOST_IP_ADDRESS, &p);
        rows.push(row(
            23,
            format!("Address {what} → 5004"),
            cer_from(avps),
            reject(ResultCode(5004), Shape::leaf(257, M, 0, &p)),
        ));
    }
    for (what, p) in [
        (
            "family 8 (E.164) digits",
            [vec![0, 8], b"4915112345".to_vec()].concat(),
        ),
        ("family 3 kept raw", vec![0, 3, 1, 2, 3]),
    ] {
        let mut avps = cer_avps();
        avps[2] = with_payload(base::HOST_IP_ADDRESS, &p);
        rows.push(row(
            23,
            format!("Address {what} → accepted"),
            cer_from(avps),
            Expect::Valid,
        ));
    }
    // Case 24: inner lengths inconsistent with the AVP length.
    for (what, p) in [
        ("prefix length 129", [vec![0, 129], vec![0x20; 16]].concat()),
        ("prefix length 255", [vec![0, 255], vec![0x20; 16]].concat()),
        (
            "prefix length 64 with 4 prefix octets",
            vec![0, 64, 0x20, 0x01, 0x0d, 0xb8],
        ),
        (
            "prefix length 128 with 17 prefix octets",
            [vec![0, 128], vec![0x20; 17]].concat(),
        ),
        ("1 octet", vec![0]),
    ] {
        let a = with_payload(nasreq::FRAMED_IPV6_PREFIX, &p);
        rows.push(row(
            24,
            format!("CODEC-FIX-3: Framed-IPv6-Prefix {what} → 5004"),
            ccr(vec![a]),
            reject(ResultCode(5004), Shape::leaf(97, M, 0, &p)),
        ));
    }
    let a = with_payload(
        nasreq::FRAMED_IPV6_PREFIX,
        &[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1],
    );
    rows.push(row(
        24,
        "Framed-IPv6-Prefix /64 → accepted",
        ccr(vec![a]),
        Expect::Valid,
    ));
    for rule in [
        "permit out ip from 10.0.0.1/33 to any",
        "permit out ip from 2001:db8::/129 to any",
        "permit out 17 from any 1-70000 to any",
        "permit out 256 from any to any",
        "permit out ip from any to",
        "permit out ip from 10.0.0.300 to any",
        "allow out ip from any to any",
    ] {
        let a = with_payload(dcca::RESTRICTION_FILTER_RULE, rule.as_bytes());
        rows.push(row(
            24,
            format!("IPFilterRule {rule:?} → 5004"),
            ccr(vec![a]),
            reject(ResultCode(5004), Shape::leaf(438, M, 0, rule.as_bytes())),
        ));
    }
    let rule = "permit out 6 from 10.0.0.0/8 80,443,1000-2000 to assigned";
    let a = with_payload(rx::FLOW_DESCRIPTION, rule.as_bytes());
    rows.push(row(
        24,
        "Flow-Description that parses → accepted",
        ccr(vec![a]),
        Expect::Valid,
    ));
    // Case 25: Time size, Enumerated range, signedness.
    for n in [3usize, 5, 8] {
        let a = with_payload(base::EVENT_TIMESTAMP, &vec![0x80; n]);
        rows.push(row(
            25,
            format!("Event-Timestamp with {n} octets → 5014"),
            ccr(vec![a.clone()]),
            reject(ResultCode(5014), copy_of(&a)),
        ));
    }
    for v in [0i32, 5, -1, i32::MIN] {
        let a = dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(v));
        rows.push(row(
            25,
            format!("CC-Request-Type {v} (defined 1..=4) → 5004"),
            ccr_replacing(6, a.clone()),
            reject(ResultCode(5004), copy_of(&a)),
        ));
    }
    rows.push(
        row(
            25,
            "CC-Request-Number 0xFFFFFFFF is a valid Unsigned32",
            ccr_replacing(7, with_payload(dcca::CC_REQUEST_NUMBER, &[0xff; 4])),
            Expect::Valid,
        )
        .check(|m| match m.get(dcca::CC_REQUEST_NUMBER) {
            Some(Ok(u32::MAX)) => Ok(()),
            o => Err(format!("{o:?}")),
        }),
    );
    rows.push(
        row(
            25,
            "negative Integer32 (Exponent -3)",
            ccr(vec![dcca::EXPONENT.with(-3i32)]),
            Expect::Valid,
        )
        .check(|m| match m.get(dcca::EXPONENT) {
            Some(Ok(-3)) => Ok(()),
            o => Err(format!("{o:?}")),
        }),
    );
    rows
}

fn count_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    // Case 26: 64 × Origin-Host → 5009 with the second one.
    let mut avps = ccr_avps();
    for i in 0..63 {
        avps.push(base::ORIGIN_HOST.with(format!("h{i}.example.net")));
    }
    rows.push(row(
        26,
        "64 × Origin-Host → 5009, the 2nd",
        ccr_from(avps),
        reject(ResultCode(5009), Shape::leaf(264, M, 0, b"h0.example.net")),
    ));
    let tiny =
        |i: usize| OwnedAvp::new(0x00ff_0000 + i as u32, 0, 0, AvpValue::Bytes(Bytes::new()));
    let base_n = ccr_avps().len();
    // 4096 AVPs in all: fine; 4097: refused by decode (5012) at the 4097th.
    let with_tiny = |n: usize| ccr((0..n).map(tiny).collect());
    rows.push(row(
        26,
        "4096 AVPs",
        with_tiny(4096 - base_n),
        Expect::Valid,
    ));
    rows.push(row(
        26,
        "4097 AVPs → 5012 at decode",
        with_tiny(4097 - base_n),
        Expect::Avp {
            kind: AvpErrorKind::TooManyAvps,
            offset: ccr_end() + 8 * (4096 - base_n),
            rc: ResultCode(5012),
            failed: Shape::zeroed(0x00ff_0000 + (4096 - base_n) as u32, 0, 0, 0),
        },
    ));
    let b = with_tiny(100_000);
    let length = b.len() as u32;
    rows.push(row(
        26,
        "10⁵ tiny AVPs, default limits",
        b.clone(),
        Expect::Frame(FrameError::TooLong {
            length,
            max: Limits::DEFAULT.max_message_len,
        }),
    ));
    rows.push(
        row(
            26,
            "10⁵ tiny AVPs, 16 MiB frames → 5012 at validation",
            b,
            reject(
                ResultCode(5012),
                Shape::zeroed(0x00ff_0000 + (4096 - base_n) as u32, 0, 0, 0),
            ),
        )
        .limits(ROOMY),
    );
    // Case 27: huge strings.
    let s8k = "x".repeat(8 * 1024);
    rows.push(row(
        27,
        "8 KiB User-Name",
        ccr(vec![base::USER_NAME.with(s8k)]),
        Expect::Valid,
    ));
    let b = ccr(vec![base::USER_NAME.with("y".repeat(1 << 20))]);
    let length = b.len() as u32;
    rows.push(row(
        27,
        "1 MiB User-Name → TooLong",
        b,
        Expect::Frame(FrameError::TooLong {
            length,
            max: Limits::DEFAULT.max_message_len,
        }),
    ));
    rows.push(row(
        27,
        "%n%s%x User-Name",
        ccr(vec![base::USER_NAME.with("%n%n%s%x{}{0}\u{1b}[31m\r\n\0")]),
        Expect::Valid,
    ));
    // Case 28: the Failed-AVP of a missing AVP is a zeroed payload of the minimum length.
    rows.push(row(
        28,
        "CCR without CC-Request-Number → 5005, 4 zero octets",
        ccr_without(7),
        reject(ResultCode(5005), Shape::zeroed(415, M, 0, 4)),
    ));
    rows.push(row(
        28,
        "CCR without CC-Request-Type → 5005, 4 zero octets",
        ccr_without(6),
        reject(ResultCode(5005), Shape::zeroed(416, M, 0, 4)),
    ));
    rows.push(row(
        28,
        "CCR without Origin-Host → 5005, empty payload",
        ccr_without(1),
        reject(ResultCode(5005), Shape::zeroed(264, M, 0, 0)),
    ));
    let mut avps = cer_avps();
    avps.remove(2);
    rows.push(row(
        28,
        "CER without Host-IP-Address → 5005, 6 zero octets",
        cer_from(avps),
        reject(ResultCode(5005), Shape::zeroed(257, M, 0, 6)),
    ));
    let sub = group(
        443,
        M,
        0,
        vec![dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(0))],
    );
    rows.push(row(
        28,
        "Subscription-Id without its Data → 5005 wrapped",
        ccr(vec![sub]),
        reject(
            ResultCode(5005),
            Shape::zeroed(444, M, 0, 0).inside(443, M, 0),
        ),
    ));
    rows.push(row(
        28,
        "CODEC-FIX-4: CCR without Session-Id → 5005, empty Session-Id",
        ccr_without(0),
        reject(ResultCode(5005), Shape::zeroed(263, M, 0, 0)),
    ));
    let mut avps = ccr_avps();
    avps.swap(0, 1);
    rows.push(row(
        28,
        "CODEC-FIX-4: Session-Id second → 5004 with the Session-Id",
        ccr_from(avps),
        reject(ResultCode(5004), copy_of(&ccr_avps()[0])),
    ));
    rows
}

#[test]
fn baseline_messages_are_valid() {
    for (what, b) in [("CCR", ccr(vec![])), ("CER", cer_from(cer_avps()))] {
        let m = Message::from_bytes(b).unwrap_or_else(|e| panic!("{what}: {e}"));
        Validator::new(dict(), ValidateOptions::default())
            .validate(&m)
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    }
    assert!(
        dict().avp(AvpKey::new(UNKNOWN, 0)).is_none()
            && dict().avp(AvpKey::new(0x00ff_0000, 0)).is_none()
    );
}

#[test]
fn cases_1_to_6_framing() {
    run_table(&framing_rows());
}

#[test]
fn cases_9_to_13_avp_lengths() {
    run_table(&avp_length_rows());
}

#[test]
fn case_14_nesting() {
    run_table(&nesting_rows());
}

#[test]
fn cases_15_to_20_flags_and_unknown_avps() {
    run_table(&flag_rows());
}

#[test]
fn cases_21_to_25_values() {
    run_table(&value_rows());
}

#[test]
fn cases_26_to_28_counts_strings_missing() {
    run_table(&count_rows());
}

// ---------------------------------------------------------------------------------------------
// Stream framing: cases 4–8
// ---------------------------------------------------------------------------------------------

/// A stream framer over `frame_length`, as a transport uses it: it holds at most one frame
/// and never reserves space for a length it has not validated.
struct Framer {
    buf: Vec<u8>,
    max: u32,
}

impl Framer {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            max: Limits::DEFAULT.max_message_len,
        }
    }
    /// The frames completed by `data`, then the framing error that ends the stream, if any.
    fn feed(&mut self, data: &[u8]) -> (Vec<Bytes>, Option<FrameError>) {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match frame_length(&self.buf, self.max) {
                Ok(Some(n)) if self.buf.len() >= n => {
                    out.push(Bytes::from(self.buf.drain(..n).collect::<Vec<u8>>()))
                }
                Ok(_) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }
    fn push(&mut self, data: &[u8]) -> Result<Vec<Bytes>, FrameError> {
        match self.feed(data) {
            (out, None) => Ok(out),
            (_, Some(e)) => Err(e),
        }
    }
}

fn dwr(i: u32) -> Bytes {
    let mut b = MessageBuilder::request(base::CMD_DEVICE_WATCHDOG, 0, false).ids(i, i);
    b.push(base::ORIGIN_HOST.with("pcef.example.net"));
    b.push(base::ORIGIN_REALM.with("example.net"));
    b.to_bytes()
}

#[test]
fn case_4_huge_length_refused_from_4_bytes() {
    // Announced but absent: the verdict comes from the 4-byte prefix alone, so no buffer of
    // the announced size is ever reserved (frame_length only reads a borrowed slice).
    for (len, want) in [
        (
            0x00ff_fffcu32,
            FrameError::TooLong {
                length: 0x00ff_fffc,
                max: 65_532,
            },
        ),
        (
            65_536,
            FrameError::TooLong {
                length: 65_536,
                max: 65_532,
            },
        ),
        (0x00ff_ffff, FrameError::InvalidLength(0x00ff_ffff)),
    ] {
        let prefix = [1, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        assert_eq!(frame_length(&prefix, 65_532), Err(want), "{len:#x}");
        let mut f = Framer::new();
        assert_eq!(f.push(&prefix), Err(want));
        assert!(
            f.buf.capacity() < 64,
            "framer reserved {} bytes for an announced {len:#x}",
            f.buf.capacity()
        );
        // And a header-only buffer handed to decode is refused on the length, not on the
        // missing bytes.
        let mut h = dwr(1).to_vec();
        h.truncate(HEADER_LEN);
        set_msg_len(&mut h, len);
        assert_eq!(
            Message::decode(Bytes::from(h), &Limits::DEFAULT).unwrap_err(),
            DecodeError::Frame(want)
        );
    }
    // Fewer than 4 bytes: not yet known.
    for k in 0..4 {
        assert_eq!(frame_length(&[1, 0xff, 0xff, 0xfc][..k], 65_532), Ok(None));
    }
}

#[test]
fn case_5_partial_frame_waits() {
    let m = dwr(1);
    let mut f = Framer::new();
    assert_eq!(f.push(&m[..m.len() - 1]).unwrap(), Vec::<Bytes>::new());
    assert_eq!(f.buf.len(), m.len() - 1, "holds only what was sent");
    assert_eq!(f.push(&m[m.len() - 1..]).unwrap(), vec![m]);
}

/// Case 6 on a stream: a wrong Message Length must not be silently mis-framed into the
/// next message: either the frame is refused, or validation rejects it, and the stream after
/// it fails to frame (the connection is closed).
#[test]
fn case_6_length_off_by_desyncs_detectably() {
    let first = ccr(vec![]);
    let second = ccr(vec![]);
    let n = first.len() as u32;
    let validator = Validator::new(dict(), ValidateOptions::default());
    for d in [4i64, -4, 12, -12, -24] {
        let mut a = first.to_vec();
        set_msg_len(&mut a, (i64::from(n) + d) as u32);
        let stream = [a, second.to_vec(), dwr(9).to_vec()].concat();
        let mut f = Framer::new();
        let (frames, framed) = f.feed(&stream);
        let first_frame = frames
            .first()
            .unwrap_or_else(|| panic!("{d:+}: first frame not delivered: {framed:?}"));
        let verdict = match Message::from_bytes(first_frame.clone()) {
            Err(e) => e.result_code(),
            Ok(m) => validator
                .validate(&m)
                .map_or_else(|r| r.result_code, |()| ResultCode(2001)),
        };
        let want = match d {
            -12 | -24 => ResultCode(5005), // cut on an AVP boundary: a required AVP is missing
            _ => ResultCode(5014),         // cut inside an AVP, or 4/12 foreign bytes as an AVP
        };
        assert_eq!(verdict, want, "{d:+}: first frame verdict");
        // What follows is out of step: the framer must refuse it rather than deliver a frame
        // that happens to decode.
        let later_ok = frames[1..]
            .iter()
            .filter(|b| Message::from_bytes((*b).clone()).is_ok())
            .count();
        assert!(
            framed.is_some() || later_ok == 0,
            "{d:+}: stream resynchronised silently"
        );
        if let Some(e) = framed {
            assert!(
                matches!(
                    e,
                    FrameError::UnsupportedVersion(_)
                        | FrameError::InvalidLength(_)
                        | FrameError::TooLong { .. }
                ),
                "{d:+}: {e:?}"
            );
        }
    }
}

#[test]
fn case_7_segmentation() {
    let a = dwr(1);
    let b = ccr(vec![]);
    // Two messages in one segment.
    assert_eq!(
        Framer::new()
            .push(&[a.clone(), b.clone()].concat())
            .unwrap(),
        vec![a.clone(), b.clone()]
    );
    // One message across 1-byte segments: nothing until the last byte.
    let mut f = Framer::new();
    for (i, byte) in b.iter().enumerate() {
        let out = f.push(&[*byte]).unwrap();
        assert_eq!(
            out.len(),
            usize::from(i + 1 == b.len()),
            "after {} bytes",
            i + 1
        );
    }
    // frame_length on every prefix: unknown below 4 bytes, the length from 4 on.
    for k in 0..=b.len() {
        let want = if k < 4 { None } else { Some(b.len()) };
        assert_eq!(frame_length(&b[..k], 65_532), Ok(want), "prefix {k}");
    }
    // The header split at every offset 0..=20 (and the two messages split everywhere).
    let both = [a.clone(), b.clone()].concat();
    for k in 0..=both.len() {
        let mut f = Framer::new();
        let mut got = f.push(&both[..k]).unwrap();
        got.extend(f.push(&both[k..]).unwrap());
        assert_eq!(got, vec![a.clone(), b.clone()], "split at {k}");
        assert!(f.buf.is_empty());
    }
}

#[test]
fn case_8_hundred_thousand_back_to_back() {
    const N: u32 = 100_000;
    let one = dwr(0);
    let mut stream = Vec::with_capacity(one.len() * N as usize);
    for i in 0..N {
        stream.extend_from_slice(&dwr(i));
    }
    let validator = Validator::new(dict(), ValidateOptions::default());
    let mut f = Framer::new();
    let mut count = 0u32;
    let mut peak = 0;
    for chunk in stream.chunks(1459) {
        for frame in f.push(chunk).unwrap() {
            let m = Message::from_bytes(frame).unwrap();
            assert_eq!(m.header().hop_by_hop, count);
            validator.validate(&m).unwrap();
            count += 1;
        }
        peak = peak.max(f.buf.len());
    }
    assert_eq!(count, N);
    assert!(f.buf.is_empty());
    assert!(peak < one.len() + 1459, "framer held {peak} bytes");
}

// ---------------------------------------------------------------------------------------------
// Case 26: max + 1 occurrences of every bounded AVP of every command
// ---------------------------------------------------------------------------------------------

/// A valid instance of `def`, distinct for each `i` where the type allows.
fn sample(def: &AvpDef, i: u32, depth: usize) -> OwnedAvp {
    let mut flags = if def.m_send { M } else { 0 };
    if def.key.vendor != 0 {
        flags |= V;
    }
    let value = match def.data_type {
        // Framed-IPv6-Prefix has an inner structure (RFC 3162 §2.3): reserved, /64, 8 octets.
        DataType::OctetString if def.key == AvpKey::new(97, 0) => {
            AvpValue::Bytes(Bytes::from(vec![
                0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, i as u8,
            ]))
        }
        DataType::OctetString => AvpValue::Bytes(Bytes::from(format!("o{i}"))),
        DataType::Integer32 => AvpValue::I32(i as i32),
        DataType::Integer64 => AvpValue::I64(i64::from(i)),
        DataType::Unsigned32 => AvpValue::U32(i),
        DataType::Unsigned64 => AvpValue::U64(u64::from(i)),
        DataType::Float32 => AvpValue::F32(i as f32),
        DataType::Float64 => AvpValue::F64(f64::from(i)),
        DataType::Enumerated if def.values.is_empty() => AvpValue::I32(i as i32),
        DataType::Enumerated => AvpValue::I32(def.values[i as usize % def.values.len()].0),
        DataType::Time => AvpValue::U32(0xe000_0000 + i),
        DataType::Address => AvpValue::Address(IpAddr::from([10, 0, (i >> 8) as u8, i as u8])),
        DataType::UTF8String => AvpValue::Bytes(Bytes::from(format!("s{i}"))),
        DataType::DiameterIdentity => AvpValue::Bytes(Bytes::from(format!("h{i}.example.net"))),
        DataType::DiameterURI => AvpValue::Bytes(Bytes::from(format!("aaa://h{i}.example.net"))),
        DataType::IPFilterRule => AvpValue::Bytes(Bytes::from(format!(
            "permit out ip from 10.0.0.{} to any",
            i % 250
        ))),
        DataType::Grouped => {
            let mut kids = Vec::new();
            if let Some(g) = &def.grammar
                && depth < 8
            {
                for r in &g.rules {
                    for _ in 0..r.min {
                        kids.push(sample(dict().avp_at(r.avp), i, depth + 1));
                    }
                }
            }
            AvpValue::Grouped(kids)
        }
    };
    OwnedAvp {
        code: def.key.code,
        flags: AvpFlags(flags),
        vendor: def.key.vendor,
        value,
    }
}

#[test]
fn case_26_max_plus_one_of_every_bounded_avp() {
    let dict = dict();
    let validator = Validator::new(dict, ValidateOptions::default());
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut commands = BTreeSet::new();
    for cmd in dict.commands() {
        for (request, grammar) in [(true, &cmd.request), (false, &cmd.answer)] {
            let mut flags = if request { CommandFlags::REQUEST } else { 0 };
            if cmd.proxiable {
                flags |= CommandFlags::PROXIABLE;
            }
            let base: Vec<OwnedAvp> = grammar
                .rules
                .iter()
                .flat_map(|r| (0..r.min).map(move |i| sample(dict.avp_at(r.avp), i, 0)))
                .collect();
            let label = format!(
                "{} ({}/{}) {}",
                cmd.name,
                cmd.code,
                cmd.application,
                if request { "request" } else { "answer" }
            );
            let m = Message::from_bytes(message(flags, cmd.code, cmd.application, base.clone()))
                .unwrap();
            if let Err(e) = validator.validate(&m) {
                failures.push(format!(
                    "{label}: minimal message rejected: {} {:?}",
                    e.result_code, e.message
                ));
                continue;
            }
            for r in grammar.rules.iter().filter(|r| r.max <= 16) {
                let def = dict.avp_at(r.avp);
                let present = r.min;
                // Instances numbered from `present` on, so each differs from the base ones;
                // the (max+1)-th occurrence is the one reported, not a later one.
                let extra: Vec<OwnedAvp> =
                    (present..r.max + 2).map(|i| sample(def, i, 0)).collect();
                let want = Shape::of(&extra[(r.max - present) as usize]);
                let mut avps = base.clone();
                avps.extend(extra);
                let m =
                    Message::from_bytes(message(flags, cmd.code, cmd.application, avps)).unwrap();
                checked += 1;
                commands.insert(label.clone());
                match validator.validate(&m) {
                    Err(e)
                        if e.result_code == ResultCode(5009)
                            && same(e.failed_avp.as_ref().map(Shape::of).as_ref(), Some(&want)) =>
                    {
                        if let Err(err) = check_answer(
                            &MessageBuilder::error_answer(&m, &me(), &e),
                            ResultCode(5009),
                            Some(&want),
                            &Limits::DEFAULT,
                        ) {
                            failures.push(format!("{label}: {} × {}: {err}", r.max + 1, def.name));
                        }
                    }
                    Err(e) => failures.push(format!(
                        "{label}: {} × {}: {} {:?} failed {:?}",
                        r.max + 2 - present,
                        def.name,
                        e.result_code,
                        e.message,
                        e.failed_avp.as_ref().map(|f| (f.code, f.vendor))
                    )),
                    Ok(()) => failures.push(format!(
                        "{label}: {} × {} accepted",
                        r.max + 2 - present + present,
                        def.name
                    )),
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} bounded rules checked");
    assert!(
        failures.is_empty(),
        "{} failures over {checked} rules of {} commands:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Case 27: huge and hostile strings in logs
// ---------------------------------------------------------------------------------------------

#[test]
fn case_27_render_is_safe_and_bounded() {
    let hostile = "%n%n%s%x%p{}{0}\u{1b}[31mRED\r\nInjected: line\u{7}\0\u{202e}";
    let big = "z".repeat(8 * 1024);
    let m = Message::from_bytes(ccr(vec![
        base::USER_NAME.with(hostile),
        dcca::SUBSCRIPTION_ID_DATA.with(big.clone()),
    ]))
    .unwrap();
    let r = Renderer::new(dict());
    let text = r.text(&m);
    // One line for the header and one per AVP: a peer's text cannot add lines.
    assert_eq!(text.lines().count(), 1 + ccr_avps().len() + 2, "{text}");
    assert!(
        text.chars().all(|c| c == '\n' || !c.is_control()),
        "raw control characters in {text:?}"
    );
    assert!(
        text.contains("%n%n%s%x%p{}{0}"),
        "format directives must be shown literally: {text}"
    );
    assert!(
        text.len() < 4 * 1024,
        "8 KiB value rendered in {} bytes: log lines are cut at 1 KiB",
        text.len()
    );
    let json = r.json(&m);
    let user = json["avps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == 1)
        .unwrap();
    let v = user["value"].as_str().unwrap();
    assert!(
        v.starts_with("%n%n%s%x%p{}{0}") && v.chars().all(|c| !c.is_control()),
        "{v:?}"
    );
    let big_json = json["avps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == 444)
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        big_json.chars().count() <= 1025,
        "JSON value of {} chars",
        big_json.chars().count()
    );
    // The whole JSON serialises and parses back.
    let s = serde_json::to_string(&json).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), json);
    // The values themselves are untouched.
    assert_eq!(m.get(base::USER_NAME).unwrap().unwrap(), hostile);
    assert_eq!(
        m.find(dcca::SUBSCRIPTION_ID_DATA.key()).unwrap().data,
        big.as_bytes()
    );
    // Invalid UTF-8 and control bytes in an OctetString render as hex.
    let m = Message::from_bytes(ccr(vec![with_payload(
        dcca::CC_CORRELATION_ID,
        b"\x1b[2J\xff%n",
    )]))
    .unwrap();
    let text = r.text(&m);
    assert!(
        text.chars().all(|c| c == '\n' || !c.is_control()),
        "{text:?}"
    );
    assert!(text.contains("1b5b324aff256e"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Case 28: encoder properties
// ---------------------------------------------------------------------------------------------

#[test]
fn case_28_avp_length_excludes_padding() {
    // diameter-rs #13: an OctetString of 5 octets is AVP Length 13, then 3 padding bytes.
    let a = base::CLASS.with(Bytes::from_static(b"hello"));
    assert_eq!(a.avp_length(), 13);
    assert_eq!(a.encoded_len(), 16);
    assert_eq!(
        wire(&a),
        hex::decode("000000194000000d68656c6c6f000000").unwrap()
    );
    // With a Vendor-Id: 12-byte header.
    let a = gx::BEARER_IDENTIFIER.with(Bytes::from_static(b"hello"));
    assert_eq!(
        wire(&a),
        hex::decode("000003fcc0000011000028af68656c6c6f000000").unwrap()
    );
    for n in 0..=9usize {
        let a = base::CLASS.with(Bytes::from(vec![7u8; n]));
        let w = wire(&a);
        assert_eq!(
            u32::from_be_bytes([0, w[5], w[6], w[7]]) as usize,
            8 + n,
            "AVP Length for {n} octets"
        );
        assert_eq!(w.len(), (8 + n).div_ceil(4) * 4);
        assert!(w[8 + n..].iter().all(|&b| b == 0), "padding must be zero");
        // The message around it: length a multiple of 4 and as announced.
        let msg = ccr(vec![a.clone()]);
        assert_eq!(msg.len() % 4, 0);
        assert_eq!(
            u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) as usize,
            msg.len()
        );
        let m = Message::from_bytes(msg).unwrap();
        assert_eq!(
            m.get(base::CLASS).unwrap().unwrap(),
            vec![7u8; n].as_slice()
        );
    }
    // Grouped: the group's AVP Length counts its children's padding, not its own.
    let g = group(
        443,
        M,
        0,
        vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(0)),
            dcca::SUBSCRIPTION_ID_DATA.with("12345"),
        ],
    );
    assert_eq!(g.avp_length(), 8 + 12 + 13 + 3);
    let g = group(
        443,
        M,
        0,
        vec![
            dcca::SUBSCRIPTION_ID_DATA.with("12345"),
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(0)),
        ],
    );
    assert_eq!(g.avp_length(), 8 + 16 + 12);
}

#[test]
fn case_28_round_trip_every_type() {
    let t = DiameterTime::from_unix(1_700_000_000).unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let avps = vec![
        base::USER_NAME.with("ünïcødé ✓"),
        base::ORIGIN_STATE_ID.with(u32::MAX),
        base::ACCOUNTING_SUB_SESSION_ID.with(u64::MAX),
        dcca::EXPONENT.with(i32::MIN),
        dcca::VALUE_DIGITS.with(i64::MIN),
        gx::MAX_PLR_DL.with(1.5e-6f32),
        base::EVENT_TIMESTAMP.with(t),
        base::HOST_IP_ADDRESS.with(v6),
        base::REDIRECT_HOST.with("aaas://dra.example.net:5658;transport=tcp"),
        dcca::RESTRICTION_FILTER_RULE.with("permit out 17 from 10.0.0.0/8 53 to any"),
        base::CLASS.with(Bytes::from_static(&[0, 1, 2, 0xff])),
    ];
    let m = Message::from_bytes(ccr(avps)).unwrap();
    validate_ok(&m);
    assert_eq!(m.get(base::USER_NAME).unwrap().unwrap(), "ünïcødé ✓");
    assert_eq!(m.get(base::ORIGIN_STATE_ID).unwrap().unwrap(), u32::MAX);
    assert_eq!(
        m.get(base::ACCOUNTING_SUB_SESSION_ID).unwrap().unwrap(),
        u64::MAX
    );
    assert_eq!(m.get(dcca::EXPONENT).unwrap().unwrap(), i32::MIN);
    assert_eq!(m.get(dcca::VALUE_DIGITS).unwrap().unwrap(), i64::MIN);
    assert_eq!(m.get(gx::MAX_PLR_DL).unwrap().unwrap(), 1.5e-6f32);
    assert_eq!(m.get(base::EVENT_TIMESTAMP).unwrap().unwrap(), t);
    assert_eq!(
        m.get(base::HOST_IP_ADDRESS).unwrap().unwrap().ip(),
        Some(v6)
    );
    assert_eq!(
        m.get(base::REDIRECT_HOST).unwrap().unwrap().to_string(),
        "aaas://dra.example.net:5658;transport=tcp"
    );
    assert_eq!(m.get(base::CLASS).unwrap().unwrap(), &[0, 1, 2, 0xff]);
    // Owned copy → encode is byte-identical.
    assert_eq!(
        MessageBuilder::from_message(&m, dict()).to_bytes(),
        *m.as_bytes()
    );
}

fn validate_ok(m: &Message) {
    if let Err(e) = Validator::new(dict(), ValidateOptions::default()).validate(m) {
        panic!("{} {:?} {:?}", e.result_code, e.message, e.failed_avp);
    }
}

/// Every case number of the codec part is exercised by some row or test above.
#[test]
fn every_codec_case_is_covered() {
    let mut seen: BTreeSet<u8> = [
        framing_rows(),
        avp_length_rows(),
        flag_rows(),
        value_rows(),
        count_rows(),
        nesting_rows(),
    ]
    .iter()
    .flatten()
    .map(|r| r.case)
    .collect();
    // Stream-only cases, in the tests named after them.
    seen.extend([4, 5, 6, 7, 8, 26, 27, 28]);
    assert_eq!(seen, (1..=28).collect::<BTreeSet<u8>>());
}
