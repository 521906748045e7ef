//! Property tests (style.md §9.5 item 4):
//!
//! - (a) arbitrary AVP trees (any code, vendor, flags, payload; Grouped nesting up to depth
//!   4) survive encode → decode, AVP by AVP;
//! - (b) random values of a typed constant of every data type survive encode → decode →
//!   typed `get`;
//! - (c) arbitrary bytes, arbitrary AVP bodies behind a valid header, and arbitrary
//!   mutations of valid messages never make `fuzzing::decode` or `fuzzing::roundtrip` panic;
//! - (d) the liberal and strict validation levels agree (the strict level answers the first
//!   deviation the liberal one accepted) on byte mutations and on AVPs dropped, duplicated
//!   or given the other M bit at any depth.
//!
//! The seed is fixed so CI is reproducible; set `PROPTEST_CASES` for a longer run and
//! `PROPTEST_SEED` for another sequence.

use bytes::Bytes;
use diameter_codec::avp::AvpFlags;
use diameter_codec::dict::{base, dcca, gx};
use diameter_codec::encode::AvpValue;
use diameter_codec::types::{DiameterTime, TypedAvp, ty};
use diameter_codec::{
    AvpIter, AvpRef, Dictionary, Limits, Message, MessageBuilder, OwnedAvp, ValidateOptions,
    Validator, fuzzing,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn config(default_cases: u32) -> Config {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    Config {
        cases: env("PROPTEST_CASES").map_or(default_cases, |c| c as u32),
        rng_seed: RngSeed::Fixed(env("PROPTEST_SEED").unwrap_or(0x00d1_a3e7)),
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// (a) AVP trees
// ---------------------------------------------------------------------------------------------

fn header() -> impl Strategy<Value = (u32, u32, u8)> {
    // Vendor 0 half the time; V is set exactly when there is a Vendor-Id (as the encoder does);
    // M, P and the reserved bits are arbitrary.
    (any::<u32>(), prop_oneof![Just(0u32), 1u32..], any::<u8>()).prop_map(|(code, vendor, f)| {
        let flags = (f & !AvpFlags::VENDOR) | if vendor != 0 { AvpFlags::VENDOR } else { 0 };
        (code, vendor, flags)
    })
}

fn avp_tree() -> impl Strategy<Value = OwnedAvp> {
    let leaf = (header(), proptest::collection::vec(any::<u8>(), 0..48)).prop_map(
        |((code, vendor, flags), data)| {
            OwnedAvp::new(code, vendor, flags, AvpValue::Bytes(Bytes::from(data)))
        },
    );
    leaf.prop_recursive(4, 64, 4, |inner| {
        (header(), proptest::collection::vec(inner, 0..4)).prop_map(
            |((code, vendor, flags), kids)| {
                OwnedAvp::new(code, vendor, flags, AvpValue::Grouped(kids))
            },
        )
    })
}

/// Compares a decoded AVP with the one it was built from, children included.
fn same_tree(want: &OwnedAvp, got: &AvpRef<'_>, path: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.code, want.code, "code at {}", path);
    prop_assert_eq!(got.vendor, want.vendor, "vendor at {}", path);
    prop_assert_eq!(got.flags, want.flags, "flags at {}", path);
    match &want.value {
        AvpValue::Bytes(b) => prop_assert_eq!(got.data, &b[..], "payload at {}", path),
        AvpValue::Grouped(kids) => {
            let got_kids: Vec<AvpRef<'_>> = got
                .children()
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
            prop_assert_eq!(got_kids.len(), kids.len(), "children at {}", path);
            for (i, (w, g)) in kids.iter().zip(&got_kids).enumerate() {
                same_tree(w, g, &format!("{path}/{i}"))?;
            }
        }
        other => prop_assert!(false, "generator made {:?}", other),
    }
    Ok(())
}

fn same_seq(want: &[OwnedAvp], got: AvpIter<'_>) -> Result<(), TestCaseError> {
    let got: Vec<AvpRef<'_>> = got
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(got.len(), want.len());
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        same_tree(w, g, &i.to_string())?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn avp_trees_round_trip(avps in proptest::collection::vec(avp_tree(), 0..8), cmd in 0u32..0x00ff_ffff, app: u32, hbh: u32) {
        let mut b = MessageBuilder::request(cmd, app, true).ids(hbh, !hbh);
        b.avps = avps.clone();
        let bytes = b.to_bytes();
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(bytes.len(), b.encoded_len());
        for a in &avps {
            // AVP Length excludes the padding; the encoded size includes it.
            prop_assert_eq!(a.encoded_len(), (a.avp_length() + 3) & !3);
        }
        let m = Message::from_bytes(bytes.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(m.header().command_code, cmd);
        prop_assert_eq!(m.header().application_id, app);
        prop_assert_eq!((m.header().hop_by_hop, m.header().end_to_end), (hbh, !hbh));
        same_seq(&avps, m.avps())?;
        // An owned copy re-encodes to the same bytes when no dictionary grouping interferes.
        let copy = MessageBuilder::from_message(&m, Dictionary::embedded());
        let again = Message::from_bytes(copy.to_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again.avps().count(), avps.len());
        fuzzing::decode(&bytes);
        fuzzing::roundtrip(&bytes);
    }
}

/// Any AVP value kind, with flags and vendors that need not agree (a V bit with Vendor-Id 0
/// keeps its Vendor-ID field), and verbatim AVPs of any length.
fn any_value_tree() -> impl Strategy<Value = OwnedAvp> {
    // Short payloads, and some longer than the writer's window of room (32 bytes).
    let bytes = || {
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..24),
            1 => proptest::collection::vec(any::<u8>(), 16..80),
        ]
        .prop_map(Bytes::from)
    };
    let value = prop_oneof![
        bytes().prop_map(AvpValue::Bytes),
        bytes().prop_map(AvpValue::Verbatim),
        any::<i32>().prop_map(AvpValue::I32),
        any::<i64>().prop_map(AvpValue::I64),
        any::<u32>().prop_map(AvpValue::U32),
        any::<u64>().prop_map(AvpValue::U64),
        any::<f32>().prop_map(AvpValue::F32),
        any::<f64>().prop_map(AvpValue::F64),
        ip().prop_map(AvpValue::Address),
    ];
    let head = (any::<u32>(), prop_oneof![Just(0u32), 1u32..], any::<u8>());
    let leaf = (head.clone(), value).prop_map(|((c, v, f), x)| OwnedAvp::new(c, v, f, x));
    leaf.prop_recursive(4, 64, 5, move |inner| {
        (head.clone(), proptest::collection::vec(inner, 0..5))
            .prop_map(|((c, v, f), kids)| OwnedAvp::new(c, v, f, AvpValue::Grouped(kids)))
    })
}

/// RFC 6733 §4.1 written out plainly: the layout the one-pass encoder must produce.
fn reference_avp(a: &OwnedAvp, out: &mut Vec<u8>) {
    let start = out.len();
    if let AvpValue::Verbatim(b) = &a.value {
        out.extend_from_slice(b);
    } else {
        let vf = a.vendor != 0 || a.flags.vendor();
        let flags = (a.flags.0 & !AvpFlags::VENDOR) | if vf { AvpFlags::VENDOR } else { 0 };
        let mut payload = Vec::new();
        match &a.value {
            AvpValue::Bytes(b) => payload.extend_from_slice(b),
            AvpValue::I32(v) => payload.extend_from_slice(&v.to_be_bytes()),
            AvpValue::I64(v) => payload.extend_from_slice(&v.to_be_bytes()),
            AvpValue::U32(v) => payload.extend_from_slice(&v.to_be_bytes()),
            AvpValue::U64(v) => payload.extend_from_slice(&v.to_be_bytes()),
            AvpValue::F32(v) => payload.extend_from_slice(&v.to_be_bytes()),
            AvpValue::F64(v) => payload.extend_from_slice(&v.to_be_bytes()),
            AvpValue::Address(IpAddr::V4(ip)) => {
                payload.extend_from_slice(&[0, 1]);
                payload.extend_from_slice(&ip.octets());
            }
            AvpValue::Address(IpAddr::V6(ip)) => {
                payload.extend_from_slice(&[0, 2]);
                payload.extend_from_slice(&ip.octets());
            }
            AvpValue::Grouped(kids) => kids.iter().for_each(|k| reference_avp(k, &mut payload)),
            AvpValue::Verbatim(_) => unreachable!(),
        }
        let len = if vf { 12 } else { 8 } + payload.len() as u32;
        out.extend_from_slice(&a.code.to_be_bytes());
        out.extend_from_slice(&((u32::from(flags) << 24) | len).to_be_bytes());
        if vf {
            out.extend_from_slice(&a.vendor.to_be_bytes());
        }
        out.extend_from_slice(&payload);
    }
    // AVP Length excludes the padding; the padding is zeros.
    out.resize(start + ((out.len() - start + 3) & !3), 0);
}

proptest! {
    #![proptest_config(config(256))]

    /// The one-pass encoder gives the reference layout, as much as `encoded_len` says,
    /// after what the buffer held and whatever its capacity; each AVP alone gives its part.
    #[test]
    fn one_pass_encode_matches_the_reference(avps in proptest::collection::vec(any_value_tree(), 0..8), cap in 0usize..64) {
        let mut b = MessageBuilder::request(272, 4, true).ids(1, 2);
        b.avps = avps.clone();
        let mut body = Vec::new();
        avps.iter().for_each(|a| reference_avp(a, &mut body));
        prop_assert_eq!(b.encoded_len(), 20 + body.len());
        let mut out = bytes::BytesMut::with_capacity(cap);
        out.extend_from_slice(b"kept");
        b.encode(&mut out);
        prop_assert_eq!(out.len(), 4 + b.encoded_len());
        prop_assert_eq!(&out[..4], b"kept");
        prop_assert_eq!(&out[4 + 20..], &body[..]);
        prop_assert_eq!(u32::from_be_bytes([0, out[5], out[6], out[7]]) as usize, 20 + body.len());
        prop_assert_eq!(&b.to_bytes()[..], &out[4..]);
        // A buffer with capacity for the message is written in place, not reallocated.
        let mut exact = bytes::BytesMut::with_capacity(b.encoded_len());
        let at = exact.as_ptr();
        b.encode(&mut exact);
        prop_assert_eq!(exact.as_ptr(), at);
        prop_assert_eq!(&exact[..], &out[4..]);
        let mut each = bytes::BytesMut::new();
        for a in &avps {
            let at = each.len();
            a.encode(&mut each);
            prop_assert_eq!(each.len() - at, a.encoded_len());
        }
        prop_assert_eq!(&each[..], &body[..]);
    }
}

/// Groups nested deeper than the writer's stack of open groups (16), around payloads longer
/// than the room laid out at a time: the recursive fallback and the growth of the room.
#[test]
fn deep_and_long_trees_match_the_reference() {
    let mut avp = OwnedAvp::new(1, 0, 0x40, AvpValue::Bytes(Bytes::from(vec![7u8; 5000])));
    for depth in 0..40u32 {
        let kids = vec![
            OwnedAvp::new(depth, depth % 3, 0, AvpValue::U32(depth)),
            avp,
            OwnedAvp::new(2, 0, 0x80, AvpValue::Bytes(Bytes::from(vec![1u8; 41]))),
        ];
        avp = OwnedAvp::new(3, 10415, 0xc0, AvpValue::Grouped(kids));
    }
    let mut body = Vec::new();
    reference_avp(&avp, &mut body);
    let mut b = MessageBuilder::request(272, 4, true);
    b.avps = vec![avp.clone(), avp];
    let bytes = b.to_bytes();
    assert_eq!(bytes.len(), b.encoded_len());
    assert_eq!(&bytes[20..20 + body.len()], &body[..]);
    assert_eq!(&bytes[20 + body.len()..], &body[..]);
    assert!(Message::from_bytes(bytes).is_ok());
}

// ---------------------------------------------------------------------------------------------
// (b) typed values
// ---------------------------------------------------------------------------------------------

/// The dictionaries define no Float64 AVP; a local definition exercises the type.
const TEST_FLOAT64: TypedAvp<ty::Float64> = TypedAvp::new("Test-Float64", 0x00ff_fe01, 0, false);

fn identity() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9.-]{0,40}"
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

#[derive(Debug, Clone)]
struct Values {
    u32_: u32,
    u64_: u64,
    i32_: i32,
    i64_: i64,
    f32_: f32,
    f64_: f64,
    text: String,
    host: String,
    octets: Vec<u8>,
    addr: IpAddr,
    time: u32,
    enumerated: i32,
}

fn values() -> impl Strategy<Value = Values> {
    (
        (
            any::<u32>(),
            any::<u64>(),
            any::<i32>(),
            any::<i64>(),
            any::<f32>(),
            any::<f64>(),
        ),
        (
            any::<String>(),
            identity(),
            proptest::collection::vec(any::<u8>(), 0..40),
            ip(),
            any::<u32>(),
            any::<i32>(),
        ),
    )
        .prop_map(
            |(
                (u32_, u64_, i32_, i64_, f32_, f64_),
                (text, host, octets, addr, time, enumerated),
            )| Values {
                u32_,
                u64_,
                i32_,
                i64_,
                f32_,
                f64_,
                text,
                host,
                octets,
                addr,
                time,
                enumerated,
            },
        )
}

fn get_ok<T>(
    r: Option<Result<T, diameter_codec::ValueError>>,
    what: &str,
) -> Result<T, TestCaseError> {
    match r {
        Some(Ok(v)) => Ok(v),
        other => Err(TestCaseError::fail(format!(
            "{what}: {:?}",
            other.map(|r| r.err())
        ))),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn typed_values_round_trip(v in values()) {
        let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, dcca::APP_DIAMETER_CREDIT_CONTROL, true);
        b.push(base::ORIGIN_STATE_ID.with(v.u32_));
        b.push(base::ACCOUNTING_SUB_SESSION_ID.with(v.u64_));
        b.push(dcca::EXPONENT.with(v.i32_));
        b.push(dcca::VALUE_DIGITS.with(v.i64_));
        b.push(gx::MAX_PLR_DL.with(v.f32_));
        b.push(TEST_FLOAT64.with(v.f64_));
        b.push(base::USER_NAME.with(v.text.clone()));
        b.push(base::ORIGIN_HOST.with(v.host.clone()));
        b.push(base::CLASS.with(Bytes::from(v.octets.clone())));
        b.push(base::HOST_IP_ADDRESS.with(v.addr));
        b.push(base::EVENT_TIMESTAMP.with(DiameterTime(v.time)));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(v.enumerated)));
        let m = b.build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(get_ok(m.get(base::ORIGIN_STATE_ID), "u32")?, v.u32_);
        prop_assert_eq!(get_ok(m.get(base::ACCOUNTING_SUB_SESSION_ID), "u64")?, v.u64_);
        prop_assert_eq!(get_ok(m.get(dcca::EXPONENT), "i32")?, v.i32_);
        prop_assert_eq!(get_ok(m.get(dcca::VALUE_DIGITS), "i64")?, v.i64_);
        prop_assert_eq!(get_ok(m.get(gx::MAX_PLR_DL), "f32")?.to_bits(), v.f32_.to_bits());
        prop_assert_eq!(get_ok(m.get(TEST_FLOAT64), "f64")?.to_bits(), v.f64_.to_bits());
        prop_assert_eq!(get_ok(m.get(base::USER_NAME), "UTF8String")?, v.text.as_str());
        prop_assert_eq!(get_ok(m.get(base::ORIGIN_HOST), "DiameterIdentity")?, v.host.as_str());
        prop_assert_eq!(get_ok(m.get(base::CLASS), "OctetString")?, v.octets.as_slice());
        prop_assert_eq!(get_ok(m.get(base::HOST_IP_ADDRESS), "Address")?.ip(), Some(v.addr));
        prop_assert_eq!(get_ok(m.get(base::EVENT_TIMESTAMP), "Time")?, DiameterTime(v.time));
        prop_assert_eq!(get_ok(m.get(dcca::CC_REQUEST_TYPE), "Enumerated")?, dcca::CcRequestType(v.enumerated));
        // Time: the wire value converts to Unix time and back (2036 wrap included).
        let t = DiameterTime(v.time);
        prop_assert_eq!(DiameterTime::from_unix(t.to_unix()), Some(t));
    }
}

// ---------------------------------------------------------------------------------------------
// (c) no input panics
// ---------------------------------------------------------------------------------------------

/// Valid messages to mutate.
fn seeds() -> Vec<Bytes> {
    let mut ccr = MessageBuilder::request(
        dcca::CMD_CREDIT_CONTROL,
        dcca::APP_DIAMETER_CREDIT_CONTROL,
        true,
    )
    .ids(1, 2);
    ccr.push(base::SESSION_ID.with("pcef.example.net;1;23"));
    ccr.push(base::ORIGIN_HOST.with("pcef.example.net"));
    ccr.push(base::ORIGIN_REALM.with("example.net"));
    ccr.push(base::DESTINATION_REALM.with("example.net"));
    ccr.push(base::AUTH_APPLICATION_ID.with(4u32));
    ccr.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
    ccr.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::UPDATE_REQUEST));
    ccr.push(dcca::CC_REQUEST_NUMBER.with(1u32));
    ccr.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(vec![
        dcca::RATING_GROUP.with(10u32),
        dcca::USED_SERVICE_UNIT.with(vec![
            dcca::CC_TIME.with(60u32),
            dcca::CC_INPUT_OCTETS.with(1u64 << 33),
        ]),
    ]));
    ccr.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(0)),
        dcca::SUBSCRIPTION_ID_DATA.with("4915112345"),
    ]));
    ccr.push(base::PROXY_INFO.with(vec![
        base::PROXY_HOST.with("dra.example.net"),
        base::PROXY_STATE.with(Bytes::from_static(b"st")),
    ]));
    let mut cer = MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false).ids(3, 4);
    cer.push(base::ORIGIN_HOST.with("pcef.example.net"));
    cer.push(base::ORIGIN_REALM.with("example.net"));
    cer.push(base::HOST_IP_ADDRESS.with(IpAddr::from([192, 0, 2, 1])));
    cer.push(base::HOST_IP_ADDRESS.with("2001:db8::1".parse::<IpAddr>().unwrap()));
    cer.push(base::VENDOR_ID.with(10_415u32));
    cer.push(base::PRODUCT_NAME.with("proptest"));
    cer.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(10_415u32),
        base::AUTH_APPLICATION_ID.with(gx::APP_GX),
    ]));
    vec![ccr.to_bytes(), cer.to_bytes()]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    /// Rewrite the Message Length to the buffer's length (so framing passes and the AVPs
    /// are what gets exercised).
    FixLength,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => Just(Mutation::FixLength),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    let n = buf.len().max(1);
    match m {
        Mutation::Set(i, b) if !buf.is_empty() => buf[i % n] = *b,
        Mutation::Flip(i, b) if !buf.is_empty() => buf[i % n] ^= *b,
        Mutation::Insert(i, b) => {
            let at = i % (buf.len() + 1);
            buf.splice(at..at, b.iter().copied());
        }
        Mutation::Remove(i, k) if !buf.is_empty() => {
            let at = i % n;
            let end = (at + k).min(buf.len());
            buf.drain(at..end);
        }
        Mutation::Truncate(i) => buf.truncate(i % (buf.len() + 1)),
        Mutation::FixLength if buf.len() >= 4 => {
            let len = buf.len() as u32;
            buf[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::decode(&data);
        fuzzing::roundtrip(&data);
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600), flags: u8, cmd in prop_oneof![Just(257u32), Just(272), Just(258), Just(280), any::<u32>()], app in prop_oneof![Just(0u32), Just(4), Just(gx::APP_GX), any::<u32>()]) {
        // A valid header in front of arbitrary AVP bytes, so the AVP parser does the work.
        let mut b = MessageBuilder::request(cmd & 0x00ff_ffff, app, false).to_bytes().to_vec();
        b[4] = flags;
        b.extend_from_slice(&body);
        b.resize((b.len() + 3) & !3, 0);
        let len = b.len() as u32;
        b[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
        fuzzing::decode(&b);
        fuzzing::roundtrip(&b);
    }

    #[test]
    fn mutated_messages_never_panic(seed in 0usize..2, muts in proptest::collection::vec(mutation(), 1..6)) {
        let mut b = seeds()[seed].to_vec();
        for m in &muts {
            apply(&mut b, m);
        }
        fuzzing::decode(&b);
        fuzzing::roundtrip(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// (d) the levels agree: liberal accepts what strict accepts, and strict answers the first
// thing liberal tolerated
// ---------------------------------------------------------------------------------------------

/// Drops (`op` 0), duplicates (1) or flips the M bit of (2) the AVP at `path` (indices
/// taken modulo the length at each level, descending into Grouped values).
fn edit(avps: &mut Vec<OwnedAvp>, op: u8, path: &[usize]) {
    if avps.is_empty() {
        return;
    }
    let i = path[0] % avps.len();
    if path.len() > 1
        && let AvpValue::Grouped(kids) = &mut avps[i].value
    {
        return edit(kids, op, &path[1..]);
    }
    match op {
        0 => {
            avps.remove(i);
        }
        1 => avps.insert(i, avps[i].clone()),
        _ => avps[i].flags = AvpFlags(avps[i].flags.0 ^ AvpFlags::MANDATORY),
    }
}

/// The walks of both levels are the same up to the first tolerated finding, which the strict
/// level answers; without one they end the same way.
fn levels_agree(msg: &Message) -> Result<(), TestCaseError> {
    let dict = Dictionary::embedded();
    let liberal = Validator::new(dict, ValidateOptions::default()).check(msg);
    let strict = Validator::new(dict, ValidateOptions::strict()).check(msg);
    prop_assert!(strict.deviations.is_empty());
    let want = liberal
        .deviations
        .first()
        .or(liberal.error.as_ref())
        .map(|f| &f.report);
    prop_assert_eq!(strict.error.as_ref().map(|f| &f.report), want);
    let plain = Validator::new(dict, ValidateOptions::default()).validate(msg);
    prop_assert_eq!(plain.err(), liberal.error.map(|f| f.report));
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn levels_agree_on_edited_avps(seed in 0usize..2, edits in proptest::collection::vec((0u8..3, proptest::collection::vec(any::<usize>(), 1..4)), 1..5)) {
        let mut b = MessageBuilder::from_message(
            &Message::from_bytes(seeds()[seed].clone()).unwrap(),
            Dictionary::embedded(),
        );
        for (op, path) in &edits {
            edit(&mut b.avps, *op, path);
        }
        let msg = Message::decode(b.to_bytes(), &Limits::DEFAULT).unwrap();
        levels_agree(&msg)?;
    }

    #[test]
    fn levels_agree_on_mutated_messages(seed in 0usize..2, muts in proptest::collection::vec(mutation(), 1..6)) {
        let mut b = seeds()[seed].to_vec();
        for m in &muts {
            apply(&mut b, m);
        }
        if let Ok(msg) = Message::decode(Bytes::from(b), &Limits::DEFAULT) {
            levels_agree(&msg)?;
        }
    }
}
