//! Building and encoding messages. A message is built as a small owned tree, then encoded in
//! one pass by [`MessageWriter`]; [`MessageBuilder::encoded_len`] sizes it without encoding.

use crate::avp::{AvpFlags, AvpKey, AvpRef};
use crate::header::{CommandFlags, HEADER_LEN, Header};
use crate::message::Message;
use crate::result_code::ResultCode;
use crate::types::encode_ip;
use crate::writer::MessageWriter;
use bytes::{BufMut, Bytes, BytesMut};
use std::net::IpAddr;

/// An AVP value ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub enum AvpValue {
    /// Raw payload bytes (OctetString and every string-like type).
    Bytes(Bytes),
    /// Integer32 / Enumerated.
    I32(i32),
    /// Integer64.
    I64(i64),
    /// Unsigned32 / Time.
    U32(u32),
    /// Unsigned64.
    U64(u64),
    /// Float32.
    F32(f32),
    /// Float64.
    F64(f64),
    /// Address of family 1 or 2.
    Address(IpAddr),
    /// Grouped.
    Grouped(Vec<OwnedAvp>),
    /// A whole AVP kept byte-exact as received (header, payload and padding), so relays
    /// forward AVPs they do not understand untouched. The code, flags and vendor fields of
    /// the enclosing [`OwnedAvp`] are informative only.
    Verbatim(Bytes),
}

impl AvpValue {
    fn payload_len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::I32(_) | Self::U32(_) | Self::F32(_) => 4,
            Self::I64(_) | Self::U64(_) | Self::F64(_) => 8,
            Self::Address(IpAddr::V4(_)) => 6,
            Self::Address(IpAddr::V6(_)) => 18,
            Self::Grouped(children) => children.iter().map(OwnedAvp::encoded_len).sum(),
            Self::Verbatim(b) => b.len(),
        }
    }
}

/// An owned AVP.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedAvp {
    /// AVP Code.
    pub code: u32,
    /// Flags; the V bit is set on encode when `vendor != 0`.
    pub flags: AvpFlags,
    /// Vendor-Id, 0 for none.
    pub vendor: u32,
    /// The value.
    pub value: AvpValue,
}

impl OwnedAvp {
    /// An AVP with explicit code, vendor, flags and value.
    pub fn new(code: u32, vendor: u32, flags: u8, value: AvpValue) -> Self {
        Self {
            code,
            flags: AvpFlags(flags),
            vendor,
            value,
        }
    }

    /// A byte-exact copy of a received AVP; zero-copy when `msg` is the message it came from.
    pub fn verbatim(msg: &Message, avp: &AvpRef<'_>) -> Self {
        let start = avp.raw.as_ptr() as usize - msg.as_bytes().as_ptr() as usize;
        let padded = ((avp.raw.len() + 3) & !3).min(msg.as_bytes().len() - start);
        Self {
            code: avp.code,
            flags: avp.flags,
            vendor: avp.vendor,
            value: AvpValue::Verbatim(msg.as_bytes().slice(start..start + padded)),
        }
    }

    /// A copy of a received AVP with its payload (not its padding) kept as raw bytes.
    pub fn from_ref(avp: &AvpRef<'_>) -> Self {
        Self {
            code: avp.code,
            flags: avp.flags,
            vendor: avp.vendor,
            value: AvpValue::Bytes(Bytes::copy_from_slice(avp.data)),
        }
    }

    /// (code, vendor).
    pub fn key(&self) -> AvpKey {
        AvpKey::new(self.code, self.vendor)
    }

    /// The payload of a string or OctetString value.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.value {
            AvpValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value of an Unsigned32 (or Time) AVP.
    pub fn as_u32(&self) -> Option<u32> {
        match self.value {
            AvpValue::U32(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the Vendor-ID field is written: a vendor, or a V bit kept as received even
    /// with Vendor-Id 0 (so an error answer shows the flags that were wrong).
    fn has_vendor_field(&self) -> bool {
        self.vendor != 0 || self.flags.vendor()
    }

    fn header_len(&self) -> usize {
        if self.has_vendor_field() { 12 } else { 8 }
    }

    /// The AVP Length field: header and payload, without padding (RFC 6733 §4.1).
    pub fn avp_length(&self) -> usize {
        match &self.value {
            AvpValue::Verbatim(b) => b.len(),
            v => self.header_len() + v.payload_len(),
        }
    }

    /// Bytes this AVP takes on the wire, padding included.
    pub fn encoded_len(&self) -> usize {
        (self.avp_length() + 3) & !3
    }

    /// Appends the AVP, padded to 4 bytes, in one pass: see [`MessageBuilder::encode`].
    pub fn encode(&self, out: &mut BytesMut) {
        MessageWriter::bare(out).owned(self);
    }

    /// The children of a Grouped value.
    pub fn children(&self) -> &[Self] {
        match &self.value {
            AvpValue::Grouped(c) => c,
            _ => &[],
        }
    }
}

/// Who we are, for the Origin-* AVPs of the messages we build.
#[derive(Clone)]
pub struct LocalIdentity {
    /// Origin-Host.
    pub host: String,
    /// Origin-Realm.
    pub realm: String,
    /// `host` and `realm` as shared payloads, made on first use: every answer carries both,
    /// and a shared copy costs a reference count instead of an allocation and a free.
    payloads: std::sync::OnceLock<(Bytes, Bytes)>,
}

impl LocalIdentity {
    /// An identity.
    pub fn new(host: impl Into<String>, realm: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            realm: realm.into(),
            payloads: std::sync::OnceLock::new(),
        }
    }

    /// Origin-Host and Origin-Realm AVPs of this identity.
    fn origin_avps(&self) -> [OwnedAvp; 2] {
        let (host, realm) = self.payloads.get_or_init(|| {
            (
                Bytes::copy_from_slice(self.host.as_bytes()),
                Bytes::copy_from_slice(self.realm.as_bytes()),
            )
        });
        // The fields are public: a payload made before they changed is not used.
        let payload = |cached: &Bytes, now: &str| {
            if cached == now.as_bytes() {
                cached.clone()
            } else {
                Bytes::copy_from_slice(now.as_bytes())
            }
        };
        [
            OwnedAvp::new(
                ORIGIN_HOST,
                0,
                AvpFlags::MANDATORY,
                AvpValue::Bytes(payload(host, &self.host)),
            ),
            OwnedAvp::new(
                ORIGIN_REALM,
                0,
                AvpFlags::MANDATORY,
                AvpValue::Bytes(payload(realm, &self.realm)),
            ),
        ]
    }
}

impl PartialEq for LocalIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host && self.realm == other.realm
    }
}

impl Eq for LocalIdentity {}

impl std::fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIdentity")
            .field("host", &self.host)
            .field("realm", &self.realm)
            .finish()
    }
}

/// A message under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageBuilder {
    /// Command Flags.
    pub flags: CommandFlags,
    /// Command Code.
    pub command_code: u32,
    /// Application-ID.
    pub application_id: u32,
    /// Hop-by-Hop Identifier.
    pub hop_by_hop: u32,
    /// End-to-End Identifier.
    pub end_to_end: u32,
    /// The AVPs, in order.
    pub avps: Vec<OwnedAvp>,
}

const SESSION_ID: u32 = 263;
const ORIGIN_HOST: u32 = 264;
const ORIGIN_REALM: u32 = 296;
const RESULT_CODE: u32 = 268;
const FAILED_AVP: u32 = 279;
const ERROR_MESSAGE: u32 = 281;
const ERROR_REPORTING_HOST: u32 = 294;
const PROXY_INFO: u32 = 284;

/// Appends a value's payload (children encoded for a Grouped value, header and padding
/// included for a verbatim one).
pub(crate) fn put_payload(value: &AvpValue, out: &mut BytesMut) {
    match value {
        AvpValue::Bytes(b) | AvpValue::Verbatim(b) => out.put_slice(b),
        AvpValue::I32(v) => out.put_i32(*v),
        AvpValue::I64(v) => out.put_i64(*v),
        AvpValue::U32(v) => out.put_u32(*v),
        AvpValue::U64(v) => out.put_u64(*v),
        AvpValue::F32(v) => out.put_f32(*v),
        AvpValue::F64(v) => out.put_f64(*v),
        AvpValue::Address(ip) => encode_ip(*ip, out),
        AvpValue::Grouped(children) => {
            MessageWriter::bare(out).owned_seq(children);
        }
    }
}

fn text(code: u32, flags: u8, s: &str) -> OwnedAvp {
    OwnedAvp::new(
        code,
        0,
        flags,
        AvpValue::Bytes(Bytes::copy_from_slice(s.as_bytes())),
    )
}

impl MessageBuilder {
    /// A request. Identifiers are 0 until set (the node assigns Hop-by-Hop and End-to-End).
    pub fn request(command_code: u32, application_id: u32, proxiable: bool) -> Self {
        let mut flags = CommandFlags(CommandFlags::REQUEST);
        flags = flags.with(CommandFlags::PROXIABLE, proxiable);
        Self {
            flags,
            command_code,
            application_id,
            hop_by_hop: 0,
            end_to_end: 0,
            avps: Vec::with_capacity(16),
        }
    }

    /// The answer to `req` (RFC 6733 §6.2): same command, application, identifiers and P bit,
    /// R cleared; Session-Id copied first when present, then our Origin-Host and
    /// Origin-Realm. The caller adds Result-Code and the rest, then calls
    /// [`MessageBuilder::copy_proxy_info`] (or uses [`MessageBuilder::finish_answer`]).
    pub fn answer_to(req: &Message, me: &LocalIdentity) -> Self {
        Self::answer_to_header(
            req.header(),
            req.find(AvpKey::new(SESSION_ID, 0))
                .map(|a| req.slice(a.data)),
            me,
        )
    }

    /// As [`MessageBuilder::answer_to`] from a header alone (for messages that did not decode).
    pub fn answer_to_header(h: &Header, session_id: Option<Bytes>, me: &LocalIdentity) -> Self {
        let flags = CommandFlags(h.flags.0 & CommandFlags::PROXIABLE);
        let mut b = Self {
            flags,
            command_code: h.command_code,
            application_id: h.application_id,
            hop_by_hop: h.hop_by_hop,
            end_to_end: h.end_to_end,
            avps: Vec::with_capacity(16),
        };
        if let Some(sid) = session_id {
            b.avps.push(OwnedAvp::new(
                SESSION_ID,
                0,
                AvpFlags::MANDATORY,
                AvpValue::Bytes(sid),
            ));
        }
        b.avps.extend(me.origin_avps());
        b
    }

    /// Adds Result-Code.
    pub fn result_code(&mut self, rc: ResultCode) -> &mut Self {
        self.push(OwnedAvp::new(
            RESULT_CODE,
            0,
            AvpFlags::MANDATORY,
            AvpValue::U32(rc.0),
        ))
    }

    /// RFC 6733 §6.2 item 4: "…the answer MUST contain the Proxy-Info AVPs … in the same
    /// order they were present in the request". Copies them byte-exact.
    pub fn copy_proxy_info(&mut self, req: &Message) -> &mut Self {
        for pi in req.find_all(AvpKey::new(PROXY_INFO, 0)) {
            self.avps.push(OwnedAvp::verbatim(req, &pi));
        }
        self
    }

    /// An error answer (RFC 6733 §7.2): Result-Code, E bit for protocol errors (3xxx, §7.1.3),
    /// Error-Message, Error-Reporting-Host (ours; §7.3 says it is added when the reporter
    /// is not the Origin-Host, so only relays set `reporting_host`), Failed-AVP, Proxy-Info.
    pub fn error_answer(req: &Message, me: &LocalIdentity, err: &ErrorReport) -> Self {
        let mut b = Self::answer_to(req, me);
        b.add_error(err);
        b.copy_proxy_info(req);
        b
    }

    /// An error answer to a message that did not decode: only its header is known.
    pub fn error_answer_to_header(h: &Header, me: &LocalIdentity, err: &ErrorReport) -> Self {
        let mut b = Self::answer_to_header(h, None, me);
        b.add_error(err);
        b
    }

    fn add_error(&mut self, err: &ErrorReport) {
        self.flags = self
            .flags
            .with(CommandFlags::ERROR, err.result_code.is_protocol_error());
        self.result_code(err.result_code);
        if let Some(m) = &err.message {
            self.push(text(ERROR_MESSAGE, 0, m));
        }
        if let Some(h) = &err.reporting_host {
            self.push(text(ERROR_REPORTING_HOST, 0, h));
        }
        if let Some(f) = &err.failed_avp {
            self.push(OwnedAvp::new(
                FAILED_AVP,
                0,
                AvpFlags::MANDATORY,
                AvpValue::Grouped(vec![f.clone()]),
            ));
        }
    }

    /// Copies from `req` each AVP the answer's grammar requires (fixed `< >` and required
    /// `{ }` rules of the answer command in `dict`) that this answer lacks and the request
    /// carries, byte-exact and up to the rule's maximum. This is how an answer echoes what
    /// its command's grammar repeats from the request: Auth-Application-Id, CC-Request-Type
    /// and CC-Request-Number in a CCA (RFC 4006 §3.2, TS 29.212 §5.6.3), Auth-Application-Id
    /// in an Rx AAA (TS 29.214 §5.6.2), Accounting-Record-Type and -Number in an ACA
    /// (RFC 6733 §9.7.2). Required AVPs the request does not carry are the caller's to add.
    pub fn copy_required_from(&mut self, req: &Message, dict: &crate::Dictionary) -> &mut Self {
        /// Required answer rules an answer leaves to the request: a handful (a CCA's are
        /// three); a grammar with more falls back to one scan of the request per rule.
        const FEW: usize = 8;
        let h = req.header();
        let Some(cmd) = dict.command(h.command_code, h.application_id) else {
            return self;
        };
        // The rules still to fill, each with how many more the rule allows.
        let mut wanted = [(AvpKey::new(0, 0), 0usize); FEW];
        let mut n = 0;
        for &i in &cmd.answer.required {
            let rule = &cmd.answer.rules[usize::from(i)];
            if self.find(rule.key).is_some() {
                continue;
            }
            let max = usize::try_from(rule.max).unwrap_or(usize::MAX);
            if n == FEW {
                for avp in req.find_all(rule.key).take(max) {
                    self.avps.push(OwnedAvp::verbatim(req, &avp));
                }
                continue;
            }
            wanted[n] = (rule.key, max);
            n += 1;
        }
        if n == 0 {
            return self;
        }
        // One pass over the request (an echoing answer is on every request's path), ended
        // as soon as every rule has all it allows: a CCR's three come early.
        for avp in req.avps().framed() {
            let key = avp.key();
            if let Some(w) = wanted[..n].iter_mut().find(|w| w.0 == key && w.1 > 0) {
                w.1 -= 1;
                self.avps.push(OwnedAvp::verbatim(req, &avp));
                if wanted[..n].iter().all(|w| w.1 == 0) {
                    break;
                }
            }
        }
        self
    }

    /// Completes an answer: copies the request's Proxy-Info.
    pub fn finish_answer(mut self, req: &Message) -> Self {
        self.copy_proxy_info(req);
        self
    }

    /// The first top-level AVP with this key.
    pub fn find(&self, key: AvpKey) -> Option<&OwnedAvp> {
        self.avps.iter().find(|a| a.key() == key)
    }

    /// Adds an AVP.
    pub fn push(&mut self, avp: OwnedAvp) -> &mut Self {
        self.avps.push(avp);
        self
    }

    /// Adds an AVP (by value, for chaining).
    #[must_use]
    pub fn with(mut self, avp: OwnedAvp) -> Self {
        self.avps.push(avp);
        self
    }

    /// Sets the identifiers.
    #[must_use]
    pub fn ids(mut self, hop_by_hop: u32, end_to_end: u32) -> Self {
        self.hop_by_hop = hop_by_hop;
        self.end_to_end = end_to_end;
        self
    }

    /// An owned, editable copy of a received message (for proxies that rewrite messages,
    /// such as a visited OCS). Grouped AVPs known to `dict` become trees; every other
    /// payload is a zero-copy slice of `msg`. Grouped AVPs nested beyond `Limits::DEFAULT`
    /// depth, or whose children do not frame, are kept as raw payloads.
    pub fn from_message(msg: &Message, dict: &crate::Dictionary) -> Self {
        Self {
            avps: owned_seq(msg, dict, msg.avps(), 1, false),
            ..Self::from_message_header(msg)
        }
    }

    /// As [`Self::from_message`], with integers and times as typed values (Integer32,
    /// Enumerated, Unsigned32, Time, Integer64, Unsigned64 of the right length): the tree an
    /// application builds to send the same message. Encodes to the same bytes.
    pub fn from_message_typed(msg: &Message, dict: &crate::Dictionary) -> Self {
        Self {
            avps: owned_seq(msg, dict, msg.avps(), 1, true),
            ..Self::from_message_header(msg)
        }
    }

    fn from_message_header(msg: &Message) -> Self {
        let h = msg.header();
        Self {
            flags: h.flags,
            command_code: h.command_code,
            application_id: h.application_id,
            hop_by_hop: h.hop_by_hop,
            end_to_end: h.end_to_end,
            avps: Vec::new(),
        }
    }

    /// Message Length of the encoded message.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.avps.iter().map(OwnedAvp::encoded_len).sum::<usize>()
    }

    /// Appends the encoded message to `out` in one pass through [`MessageWriter`]: every
    /// AVP written once into zeroed room laid out ahead, each group's length patched in
    /// once its children are written. With a reused buffer nothing is allocated.
    ///
    /// A message longer than a Message Length can say (2^24 − 1 bytes) cannot be encoded:
    /// what is appended then is not a valid message.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = MessageWriter::new(
            out,
            self.flags,
            self.command_code,
            self.application_id,
            self.hop_by_hop,
            self.end_to_end,
        );
        w.owned_seq(&self.avps);
        // The only error a tree can cause is TooLong, documented above; the bytes are
        // left as written, as a sized encode would have left them.
        let _ = w.finish();
    }

    /// Encodes into a new buffer, sized first so it is allocated exactly once.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// Encodes and decodes back into a [`Message`] with default limits.
    pub fn build(&self) -> Result<Message, crate::DecodeError> {
        Message::from_bytes(self.to_bytes())
    }
}

fn owned_seq(
    msg: &Message,
    dict: &crate::Dictionary,
    avps: crate::AvpIter<'_>,
    depth: usize,
    typed: bool,
) -> Vec<OwnedAvp> {
    let mut out = Vec::new();
    for a in avps.flatten() {
        let ty = dict.avp(a.key()).map(|d| d.data_type);
        let grouped = depth < crate::Limits::DEFAULT.max_depth
            && ty == Some(crate::DataType::Grouped)
            && a.children().all(|c| c.is_ok());
        let value = if grouped {
            AvpValue::Grouped(owned_seq(msg, dict, a.children(), depth + 1, typed))
        } else if let Some(v) = ty.filter(|_| typed).and_then(|t| typed_leaf(t, a.data)) {
            v
        } else {
            AvpValue::Bytes(msg.slice(a.data))
        };
        out.push(OwnedAvp {
            code: a.code,
            flags: a.flags,
            vendor: a.vendor,
            value,
        });
    }
    out
}

/// A leaf payload as a typed value, for the integer types of the right length.
fn typed_leaf(ty: crate::DataType, d: &[u8]) -> Option<AvpValue> {
    use crate::DataType as T;
    let four = || <[u8; 4]>::try_from(d).ok();
    let eight = || <[u8; 8]>::try_from(d).ok();
    Some(match ty {
        T::Integer32 | T::Enumerated => AvpValue::I32(i32::from_be_bytes(four()?)),
        T::Unsigned32 | T::Time => AvpValue::U32(u32::from_be_bytes(four()?)),
        T::Integer64 => AvpValue::I64(i64::from_be_bytes(eight()?)),
        T::Unsigned64 => AvpValue::U64(u64::from_be_bytes(eight()?)),
        _ => return None,
    })
}

/// What an error answer reports: the Result-Code, the offending AVP, a text.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReport {
    /// Result-Code.
    pub result_code: ResultCode,
    /// The AVP that goes inside Failed-AVP (already wrapped in its parents for nested
    /// errors, RFC 6733 §7.5).
    pub failed_avp: Option<OwnedAvp>,
    /// Error-Message text.
    pub message: Option<String>,
    /// Error-Reporting-Host, set by agents reporting on behalf of others.
    pub reporting_host: Option<String>,
}

impl ErrorReport {
    /// A report with a code only.
    pub fn new(result_code: ResultCode) -> Self {
        Self {
            result_code,
            failed_avp: None,
            message: None,
            reporting_host: None,
        }
    }
}

#[cfg(test)]
mod echo_tests {
    use super::*;
    use crate::dict::{CommandDef, Grammar};
    use crate::{DataType, Dictionary, ResultCode, ValidateOptions, Validator};

    /// One value of the AVP's type: the first defined value of an Enumerated, the
    /// application's id for Auth-Application-Id, a DiameterIdentity-shaped text, or a group
    /// of its required members.
    fn value(dict: &Dictionary, avp: u32, app: u32) -> AvpValue {
        let def = dict.avp_at(avp);
        match def.data_type {
            DataType::Enumerated => AvpValue::I32(def.values.first().map_or(0, |v| v.0)),
            DataType::Unsigned32 if def.name == "Auth-Application-Id" => AvpValue::U32(app),
            DataType::Unsigned32 | DataType::Time => AvpValue::U32(1),
            DataType::Integer32 => AvpValue::I32(1),
            DataType::Unsigned64 => AvpValue::U64(1),
            DataType::Address => AvpValue::Address([127, 0, 0, 1].into()),
            DataType::OctetString | DataType::UTF8String | DataType::DiameterIdentity => {
                AvpValue::Bytes(Bytes::from_static(b"peer.example"))
            }
            DataType::Grouped => AvpValue::Grouped(match &def.grammar {
                Some(g) => required(dict, g, app),
                None => Vec::new(),
            }),
            t => panic!("{}: no test value for {t:?}", def.name),
        }
    }

    /// Every AVP the grammar requires, in grammar order.
    fn required(dict: &Dictionary, g: &Grammar, app: u32) -> Vec<OwnedAvp> {
        g.required
            .iter()
            .map(|&i| {
                let r = &g.rules[usize::from(i)];
                let def = dict.avp_at(r.avp);
                let mut flags = 0;
                if def.m_send {
                    flags |= AvpFlags::MANDATORY;
                }
                if r.key.vendor != 0 {
                    flags |= AvpFlags::VENDOR;
                }
                OwnedAvp::new(r.key.code, r.key.vendor, flags, value(dict, r.avp, app))
            })
            .collect()
    }

    /// A request carrying every AVP its grammar requires, in grammar order.
    fn request(dict: &Dictionary, cmd: &CommandDef) -> Message {
        let mut b = MessageBuilder::request(cmd.code, cmd.application, cmd.proxiable).ids(7, 9);
        b.avps = required(dict, &cmd.request, cmd.application);
        Message::from_bytes(b.to_bytes()).unwrap()
    }

    /// The answer a test server sends: the usual header AVPs and Result-Code, and, when
    /// `echo`, what the grammar requires from the request.
    fn answer(req: &Message, dict: &Dictionary, echo: bool) -> Message {
        let me = LocalIdentity::new("server.example", "example");
        let mut a = MessageBuilder::answer_to(req, &me);
        a.result_code(ResultCode::DIAMETER_SUCCESS);
        if echo {
            a.copy_required_from(req, dict);
        }
        Message::from_bytes(a.finish_answer(req).to_bytes()).unwrap()
    }

    #[test]
    fn answers_to_every_session_command_satisfy_their_grammar() {
        let dict = Dictionary::embedded();
        let v = Validator::new(dict, ValidateOptions::default());
        let mut checked = Vec::new();
        for cmd in dict.commands() {
            // Peer-level commands (CER, DWR, DPR) are answered by the node itself.
            if cmd.request.rule_index(AvpKey::new(SESSION_ID, 0)).is_none() {
                continue;
            }
            let req = request(dict, cmd);
            v.validate(&req).unwrap_or_else(|e| {
                panic!(
                    "{} app {}: request {e:?}",
                    cmd.request_abbrev, cmd.application
                )
            });
            v.validate(&answer(&req, dict, true)).unwrap_or_else(|e| {
                panic!(
                    "{} app {}: answer {e:?}",
                    cmd.answer_abbrev, cmd.application
                )
            });
            checked.push(format!("{}/{}", cmd.answer_abbrev, cmd.application));
        }
        for c in [
            "CCA/4",
            "CCA/16777238",
            "AAA/16777236",
            "STA/16777236",
            "RAA/0",
            "RAA/16777238",
            "ASA/16777236",
            "ACA/0",
        ] {
            assert!(
                checked.iter().any(|x| x == c),
                "{c} not checked: {checked:?}"
            );
        }
    }

    #[test]
    fn a_cca_without_the_echoed_avps_is_invalid() {
        // RFC 4006 §3.2: CCA has { Auth-Application-Id } { CC-Request-Type }
        // { CC-Request-Number }; an answer with only the header AVPs misses them (5005).
        let dict = Dictionary::embedded();
        let cmd = dict.command(272, 4).unwrap();
        let req = request(dict, cmd);
        let v = Validator::new(dict, ValidateOptions::default());
        let e = v.validate(&answer(&req, dict, false)).unwrap_err();
        assert_eq!(e.result_code, ResultCode::DIAMETER_MISSING_AVP);
        let a = answer(&req, dict, true);
        v.validate(&a).unwrap();
        // Copied byte-exact and once: the values are the request's.
        for code in [258u32, 416, 415] {
            let key = AvpKey::new(code, 0);
            assert_eq!(a.find_all(key).count(), 1, "{code}");
            assert_eq!(
                a.find(key).unwrap().data,
                req.find(key).unwrap().data,
                "{code}"
            );
        }
    }

    #[test]
    fn origin_avps_follow_the_identity_fields() {
        let dict = Dictionary::embedded();
        let cmd = dict.command(272, 4).expect("CCR in the dictionary");
        let req = request(dict, cmd);
        let origin = |me: &LocalIdentity| {
            let a = MessageBuilder::answer_to(&req, me);
            let text = |code| {
                a.find(AvpKey::new(code, 0))
                    .and_then(OwnedAvp::as_bytes)
                    .cloned()
            };
            (text(ORIGIN_HOST), text(ORIGIN_REALM))
        };
        let mut me = LocalIdentity::new("server.example", "example");
        let first = origin(&me);
        assert_eq!(
            first,
            (Some("server.example".into()), Some("example".into()))
        );
        // The shared payloads made on first use are not reused once the fields change.
        me.host = "other.example".into();
        me.realm = "other".into();
        assert_eq!(
            origin(&me),
            (Some("other.example".into()), Some("other".into()))
        );
        assert_eq!(origin(&me.clone()).0, Some("other.example".into()));
    }
}
