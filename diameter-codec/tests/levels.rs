//! Validation levels, M-bit tolerance and precise Failed-AVP (src/validate: "Levels").
//!
//! Messages shaped like the field peers' that the default level accepts with deviations and
//! the strict level rejects; the Failed-AVP of every error kind at depth 1, 2 and 3 (RFC 6733
//! §7.5: the single offending AVP wrapped in its Grouped parents); and what stays an error
//! at the default level.

use bytes::{Bytes, BytesMut};
use diameter_codec::avp::AvpFlags;
use diameter_codec::dict::{base, dcca, gx, rx, ts29229};
use diameter_codec::encode::AvpValue;
use diameter_codec::{
    CommandFlags, Dictionary, FindingKind, LocalIdentity, Message, MessageBuilder, OwnedAvp,
    ResultCode, Severity, ValidateOptions, Validation, ValidationLevel, Validator,
};

const M: u8 = AvpFlags::MANDATORY;
const V: u8 = AvpFlags::VENDOR;
const TGPP: u32 = 10_415;
/// An AVP code no dictionary defines.
const UNKNOWN: u32 = 0x00ff_ff01;

fn check(msg: &Message, opts: ValidateOptions) -> Validation {
    Validator::new(Dictionary::embedded(), opts).check(msg)
}

fn liberal() -> ValidateOptions {
    ValidateOptions::default()
}

fn strict() -> ValidateOptions {
    ValidateOptions::strict()
}

fn wire(a: &OwnedAvp) -> Vec<u8> {
    let mut b = BytesMut::new();
    a.encode(&mut b);
    b.to_vec()
}

fn group(code: u32, flags: u8, vendor: u32, children: Vec<OwnedAvp>) -> OwnedAvp {
    OwnedAvp::new(code, vendor, flags, AvpValue::Grouped(children))
}

/// `a` with other flags (the V bit and Vendor-Id field follow `vendor`).
fn flagged(a: OwnedAvp, flags: u8) -> OwnedAvp {
    OwnedAvp {
        flags: AvpFlags(flags),
        ..a
    }
}

/// `a` as Failed-AVP carries it inside `parents` (outermost first), each as received.
fn inside(a: &OwnedAvp, parents: &[&OwnedAvp]) -> OwnedAvp {
    parents.iter().rev().fold(a.clone(), |inner, p| {
        group(p.code, p.flags.0, p.vendor, vec![inner])
    })
}

/// RFC 6733 §7.1.5: a missing AVP's example has a zeroed value of the minimum length.
fn example(code: u32, vendor: u32, flags: u8, len: usize) -> OwnedAvp {
    OwnedAvp::new(
        code,
        vendor,
        flags,
        AvpValue::Bytes(Bytes::from(vec![0; len])),
    )
}

fn request(code: u32, app: u32, avps: Vec<OwnedAvp>) -> Message {
    let mut b = MessageBuilder::request(code, app, true).ids(7, 8);
    b.avps = avps;
    Message::from_bytes(b.to_bytes()).expect("decodes")
}

fn answer(code: u32, app: u32, avps: Vec<OwnedAvp>) -> Message {
    let mut b = MessageBuilder::request(code, app, true).ids(7, 8);
    b.flags = CommandFlags(CommandFlags::PROXIABLE);
    b.avps = avps;
    Message::from_bytes(b.to_bytes()).expect("decodes")
}

/// The top of a Gx CCR-I (TS 29.212 §5.6.2) after `first` (Session-Id unless replaced).
fn gx_ccr(extra: Vec<OwnedAvp>) -> Message {
    let mut avps = vec![
        base::SESSION_ID.with("pcef.example.net;1;1"),
        base::AUTH_APPLICATION_ID.with(gx::APP_GX),
        base::ORIGIN_HOST.with("smf.open5gs.org"),
        base::ORIGIN_REALM.with("open5gs.org"),
        base::DESTINATION_REALM.with("example.net"),
        dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST),
        dcca::CC_REQUEST_NUMBER.with(0u32),
    ];
    avps.extend(extra);
    request(gx::CMD_CREDIT_CONTROL, gx::APP_GX, avps)
}

fn rx_aar_avps() -> Vec<OwnedAvp> {
    vec![
        base::SESSION_ID.with("pcscf.ims.example.net;1;1"),
        base::AUTH_APPLICATION_ID.with(rx::APP_RX),
        base::ORIGIN_HOST.with("pcscf.ims.example.net"),
        base::ORIGIN_REALM.with("ims.example.net"),
        base::DESTINATION_REALM.with("example.net"),
    ]
}

/// An Rx AAR (TS 29.214 §5.6.1) with `extra` after the required AVPs.
fn rx_aar(extra: Vec<OwnedAvp>) -> Message {
    let mut avps = rx_aar_avps();
    avps.extend(extra);
    request(rx::CMD_AA, rx::APP_RX, avps)
}

fn flow(n: u32) -> OwnedAvp {
    rx::FLOW_DESCRIPTION.with(format!(
        "permit out 17 from 10.0.0.{n} 49000 to 10.45.0.2 50000"
    ))
}

fn msc(children: Vec<OwnedAvp>) -> OwnedAvp {
    group(519, V | M, TGPP, children)
}

fn mcd(children: Vec<OwnedAvp>) -> OwnedAvp {
    group(517, V | M, TGPP, children)
}

/// The message's error: Result-Code, Failed-AVP on the wire, and the same in the error
/// answer built from it (one Failed-AVP holding exactly `failed`).
fn assert_rejected(v: &Validation, msg: &Message, rc: u32, failed: Option<&OwnedAvp>) {
    let e = v
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("accepted, want {rc}; deviations {:?}", v.deviations));
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(
        e.report.result_code,
        ResultCode(rc),
        "{:?}",
        e.report.message
    );
    assert_eq!(
        e.report.failed_avp.as_ref().map(wire),
        failed.map(wire),
        "Failed-AVP of {:?}",
        e.report.message
    );
    let me = LocalIdentity::new("pcrf.example.net", "example.net");
    let a = Message::from_bytes(MessageBuilder::error_answer(msg, &me, &e.report).to_bytes())
        .expect("error answer decodes");
    assert_eq!(a.get(base::RESULT_CODE).and_then(Result::ok), Some(rc));
    let fa: Vec<_> = a.find_all(base::FAILED_AVP.key()).collect();
    match failed {
        None => assert!(fa.is_empty()),
        Some(f) => {
            assert_eq!(fa.len(), 1);
            let kids: Vec<_> = fa[0].children().map(Result::unwrap).collect();
            assert_eq!(kids.len(), 1, "Failed-AVP holds a single AVP");
            assert_eq!(kids[0].raw, &wire(f)[..kids[0].raw.len()]);
        }
    }
}

/// One deviation of this kind, path and strict answer.
fn assert_one_deviation(
    v: &Validation,
    kind: FindingKind,
    path: &str,
    rule: &str,
    rc: u32,
    failed: &OwnedAvp,
) {
    assert!(v.error.is_none(), "rejected: {:?}", v.error);
    assert_eq!(v.deviations.len(), 1, "{:?}", v.deviations);
    let d = &v.deviations[0];
    assert_eq!(d.severity, Severity::Deviation);
    assert_eq!(d.kind, kind);
    assert_eq!(d.path_names, path);
    assert!(d.rule.contains(rule), "rule {:?}, want {rule:?}", d.rule);
    assert_eq!(d.report.result_code, ResultCode(rc));
    assert_eq!(d.report.failed_avp.as_ref().map(wire), Some(wire(failed)));
    let msg = d.report.message.as_deref().unwrap_or("");
    assert!(
        msg.contains(d.avp_name()) && msg.contains(rule),
        "Error-Message {msg:?} names the AVP and the rule"
    );
}

// ---------------------------------------------------------------------------------------------
// The field peers' messages
// ---------------------------------------------------------------------------------------------

/// Open5GS Gx CCR: Supported-Features with Feature-List-ID and Feature-List, no Vendor-Id
/// (required inside the group, TS 29.229 §6.3.29).
#[test]
fn supported_features_without_vendor_id() {
    let sf = group(
        628,
        V,
        TGPP,
        vec![
            ts29229::FEATURE_LIST_ID.with(1u32),
            ts29229::FEATURE_LIST.with(0x0000_000bu32),
        ],
    );
    let msg = gx_ccr(vec![sf.clone()]);
    let want = inside(&example(266, 0, M, 4), &[&sf]);
    let v = check(&msg, liberal());
    assert_one_deviation(
        &v,
        FindingKind::MissingAvp,
        "Supported-Features/Vendor-Id",
        "{Vendor-Id}",
        5005,
        &want,
    );
    assert_eq!(
        v.deviations[0].path,
        vec![
            diameter_codec::AvpKey::new(628, TGPP),
            diameter_codec::AvpKey::new(266, 0)
        ]
    );
    assert!(
        Validator::new(Dictionary::embedded(), liberal())
            .validate(&msg)
            .is_ok()
    );
    assert_rejected(&check(&msg, strict()), &msg, 5005, Some(&want));
}

/// Kamailio Rx AAR: four Flow-Description in one Media-Sub-Component (TS 29.214 §5.3.18
/// allows two). Failed-AVP: the third, inside its Media-Sub-Component inside its
/// Media-Component-Description (RFC 6733 §7.1.5 5009, §7.5).
#[test]
fn four_flow_descriptions() {
    let sub = msc(vec![
        rx::FLOW_NUMBER.with(1u32),
        flow(1),
        flow(2),
        flow(3),
        flow(4),
    ]);
    let comp = mcd(vec![rx::MEDIA_COMPONENT_NUMBER.with(1u32), sub.clone()]);
    let msg = rx_aar(vec![comp.clone()]);
    let want = inside(&flow(3), &[&comp, &sub]);
    let v = check(&msg, liberal());
    assert_one_deviation(
        &v,
        FindingKind::TooMany,
        "Media-Component-Description/Media-Sub-Component/Flow-Description",
        "0*2[Flow-Description]",
        5009,
        &want,
    );
    assert_rejected(&check(&msg, strict()), &msg, 5009, Some(&want));
}

/// RAT-Type (M must not, TS 29.212 §5.3.31) received with M.
#[test]
fn rat_type_with_m() {
    let rat = flagged(gx::RAT_TYPE.with(gx::RatType::EUTRAN), V | M);
    let msg = gx_ccr(vec![rat.clone()]);
    let v = check(&msg, liberal());
    assert_one_deviation(&v, FindingKind::MBit, "RAT-Type", "M must not", 3009, &rat);
    // The grammar level alone does not reject it: the M bit has its own switch.
    let grammar_only = ValidateOptions {
        level: ValidationLevel::Strict,
        ..liberal()
    };
    assert_eq!(check(&msg, grammar_only).deviations.len(), 1);
    assert!(check(&msg, grammar_only).error.is_none());
    let m_only = ValidateOptions {
        strict_m_bit: true,
        ..liberal()
    };
    assert_rejected(&check(&msg, m_only), &msg, 3009, Some(&rat));
    assert_rejected(&check(&msg, strict()), &msg, 3009, Some(&rat));
}

/// Product-Name (M must not, RFC 6733 §5.3.7) with M in a CER.
#[test]
fn product_name_with_m() {
    let pn = flagged(base::PRODUCT_NAME.with("field-peer"), M);
    let mut b = MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false).ids(1, 1);
    b.avps = vec![
        base::ORIGIN_HOST.with("peer.example.net"),
        base::ORIGIN_REALM.with("example.net"),
        base::HOST_IP_ADDRESS.with(std::net::IpAddr::from([192, 0, 2, 1])),
        base::VENDOR_ID.with(0u32),
        pn.clone(),
    ];
    let msg = Message::from_bytes(b.to_bytes()).unwrap();
    let v = check(&msg, liberal());
    assert_one_deviation(
        &v,
        FindingKind::MBit,
        "Product-Name",
        "M must not",
        3009,
        &pn,
    );
    assert_rejected(&check(&msg, strict()), &msg, 3009, Some(&pn));
}

/// Origin-Host and Origin-Realm without M (some libraries send them so).
#[test]
fn origin_host_and_realm_without_m() {
    let mut avps = rx_aar_avps();
    avps[2] = flagged(avps[2].clone(), 0);
    avps[3] = flagged(avps[3].clone(), 0);
    let (oh, or) = (avps[2].clone(), avps[3].clone());
    let msg = request(rx::CMD_AA, rx::APP_RX, avps);
    let v = check(&msg, liberal());
    assert!(v.is_accepted());
    let kinds: Vec<_> = v
        .deviations
        .iter()
        .map(|d| (d.kind, d.path_names.as_str(), d.rule.as_str()))
        .collect();
    assert_eq!(kinds.len(), 2);
    assert_eq!(
        (kinds[0].0, kinds[0].1, kinds[1].1),
        (FindingKind::MBit, "Origin-Host", "Origin-Realm")
    );
    assert!(kinds[0].2.starts_with("M must"));
    // Strict: the first one found.
    assert_rejected(&check(&msg, strict()), &msg, 3009, Some(&oh));
    let _ = or;
}

/// Magma CCA: Origin-State-Id (M must, RFC 6733 §8.16) with its flags clear.
#[test]
fn origin_state_id_with_m_clear_in_a_cca() {
    let osi = flagged(base::ORIGIN_STATE_ID.with(1_620_028_707u32), 0);
    let msg = answer(
        gx::CMD_CREDIT_CONTROL,
        gx::APP_GX,
        vec![
            base::SESSION_ID.with("pcef.example.net;1;1"),
            base::AUTH_APPLICATION_ID.with(gx::APP_GX),
            base::ORIGIN_HOST.with("pcrf.magma.test"),
            base::ORIGIN_REALM.with("magma.test"),
            base::RESULT_CODE.with(2001u32),
            dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST),
            dcca::CC_REQUEST_NUMBER.with(0u32),
            osi.clone(),
        ],
    );
    let v = check(&msg, liberal());
    assert_one_deviation(
        &v,
        FindingKind::MBit,
        "Origin-State-Id",
        "M must",
        3009,
        &osi,
    );
    assert_rejected(&check(&msg, strict()), &msg, 3009, Some(&osi));
}

// ---------------------------------------------------------------------------------------------
// Failed-AVP at depth 1, 2 and 3 for every kind (strict level)
// ---------------------------------------------------------------------------------------------

/// Builds the AAR with `bad` at depth 1, 2 (in a Media-Component-Description) or 3 (in its
/// Media-Sub-Component), with the valid siblings each level needs; returns the message
/// and `failed` wrapped as Failed-AVP must carry it.
fn at_depth(depth: usize, bad: Vec<OwnedAvp>, failed: &OwnedAvp) -> (Message, OwnedAvp) {
    match depth {
        1 => (rx_aar(bad), failed.clone()),
        2 => {
            let mut kids = vec![rx::MEDIA_COMPONENT_NUMBER.with(1u32)];
            kids.extend(bad);
            let comp = mcd(kids);
            (rx_aar(vec![comp.clone()]), inside(failed, &[&comp]))
        }
        _ => {
            let mut kids = vec![rx::FLOW_NUMBER.with(1u32)];
            kids.extend(bad);
            let sub = msc(kids);
            let comp = mcd(vec![rx::MEDIA_COMPONENT_NUMBER.with(1u32), sub.clone()]);
            (rx_aar(vec![comp.clone()]), inside(failed, &[&comp, &sub]))
        }
    }
}

#[test]
fn failed_avp_at_every_depth_for_every_kind() {
    // Too many: an optional single AVP twice; the second is reported.
    for depth in 1..=3 {
        let one = match depth {
            1 => base::DESTINATION_HOST.with("pcrf.example.net"),
            2 => rx::MEDIA_TYPE.with(rx::MediaType::AUDIO),
            _ => rx::FLOW_STATUS.with(rx::FlowStatus::ENABLED),
        };
        let two = match depth {
            1 => base::DESTINATION_HOST.with("pcrf2.example.net"),
            2 => rx::MEDIA_TYPE.with(rx::MediaType::VIDEO),
            _ => rx::FLOW_STATUS.with(rx::FlowStatus::DISABLED),
        };
        let (msg, want) = at_depth(depth, vec![one, two.clone()], &two);
        assert_rejected(&check(&msg, strict()), &msg, 5009, Some(&want));
        let v = check(&msg, liberal());
        if depth == 1 {
            assert_rejected(&v, &msg, 5009, Some(&want));
        } else {
            assert_eq!(v.deviations.len(), 1, "depth {depth}");
            assert_eq!(v.deviations[0].kind, FindingKind::TooMany);
        }
    }
    // Invalid value: a closed Enumerated outside its list (5004); a fixed-size type of the
    // wrong length (5014). Rejected at every level.
    for depth in 1..=3 {
        let (code, vendor, flags) = match depth {
            1 => (277, 0, M),        // Auth-Session-State
            2 => (520, TGPP, V | M), // Media-Type
            _ => (511, TGPP, V | M), // Flow-Status
        };
        let bad = OwnedAvp::new(
            code,
            vendor,
            flags,
            AvpValue::Bytes(Bytes::from_static(&[0, 0, 0, 99])),
        );
        let (msg, want) = at_depth(depth, vec![bad.clone()], &bad);
        for opts in [strict(), liberal()] {
            assert_rejected(&check(&msg, opts), &msg, 5004, Some(&want));
        }
        let short = OwnedAvp::new(
            code,
            vendor,
            flags,
            AvpValue::Bytes(Bytes::from_static(&[0, 0, 1])),
        );
        let (msg, want) = at_depth(depth, vec![short.clone()], &short);
        for opts in [strict(), liberal()] {
            let v = check(&msg, opts);
            assert_rejected(&v, &msg, 5014, Some(&want));
            assert_eq!(v.error.as_ref().unwrap().kind, FindingKind::InvalidLength);
        }
    }
    // M bit: an AVP that must have M received without it; 3009 at strict, a deviation by
    // default.
    for depth in 1..=3 {
        let clear = match depth {
            1 => flagged(base::DESTINATION_HOST.with("pcrf.example.net"), 0),
            2 => flagged(rx::MEDIA_TYPE.with(rx::MediaType::AUDIO), V),
            _ => flagged(flow(1), V),
        };
        let (msg, want) = at_depth(depth, vec![clear.clone()], &clear);
        assert_rejected(&check(&msg, strict()), &msg, 3009, Some(&want));
        let v = check(&msg, liberal());
        assert!(v.is_accepted(), "depth {depth}: {:?}", v.error);
        assert_eq!(v.deviations[0].kind, FindingKind::MBit);
        assert_eq!(
            v.deviations[0].report.failed_avp.as_ref().map(wire),
            Some(wire(&want))
        );
    }
    // Unknown AVP with M: 5001 at every depth and level (RFC 6733 §4.1).
    for depth in 1..=3 {
        let unknown = OwnedAvp::new(UNKNOWN, 0, M, AvpValue::U32(7));
        let (msg, want) = at_depth(depth, vec![unknown.clone()], &unknown);
        for opts in [strict(), liberal()] {
            let v = check(&msg, opts);
            assert_rejected(&v, &msg, 5001, Some(&want));
            assert_eq!(
                v.error.as_ref().unwrap().kind,
                FindingKind::UnknownMandatory
            );
        }
    }
}

#[test]
fn missing_avp_at_every_depth() {
    // Depth 1: Origin-Realm absent → 5005 with a zeroed example, at every level.
    let mut avps = rx_aar_avps();
    avps.remove(3);
    let msg = request(rx::CMD_AA, rx::APP_RX, avps);
    let want = example(296, 0, M, 0);
    for opts in [strict(), liberal()] {
        assert_rejected(&check(&msg, opts), &msg, 5005, Some(&want));
    }
    // Depth 2: Media-Component-Description without Media-Component-Number.
    let comp = mcd(vec![rx::MEDIA_TYPE.with(rx::MediaType::AUDIO)]);
    let msg = rx_aar(vec![comp.clone()]);
    let want = inside(&example(518, TGPP, V | M, 4), &[&comp]);
    assert_rejected(&check(&msg, strict()), &msg, 5005, Some(&want));
    let v = check(&msg, liberal());
    assert_one_deviation(
        &v,
        FindingKind::MissingAvp,
        "Media-Component-Description/Media-Component-Number",
        "{Media-Component-Number}",
        5005,
        &want,
    );
    // Depth 3: Media-Sub-Component without Flow-Number.
    let sub = msc(vec![flow(1)]);
    let comp = mcd(vec![rx::MEDIA_COMPONENT_NUMBER.with(1u32), sub.clone()]);
    let msg = rx_aar(vec![comp.clone()]);
    let want = inside(&example(509, TGPP, V | M, 4), &[&comp, &sub]);
    assert_rejected(&check(&msg, strict()), &msg, 5005, Some(&want));
    let v = check(&msg, liberal());
    assert_one_deviation(
        &v,
        FindingKind::MissingAvp,
        "Media-Component-Description/Media-Sub-Component/Flow-Number",
        "{Flow-Number}",
        5005,
        &want,
    );
}

/// Several deviations in one message are all reported, each once; the strict level
/// answers the first.
#[test]
fn every_deviation_reported_once() {
    let sub = msc(vec![flow(1), flow(2), flow(3), flow(4), flow(5)]);
    let comp = mcd(vec![
        sub.clone(),
        flagged(rx::MEDIA_TYPE.with(rx::MediaType::AUDIO), V),
    ]);
    let msg = rx_aar(vec![comp]);
    let v = check(&msg, liberal());
    assert!(v.is_accepted());
    let got: Vec<_> = v
        .deviations
        .iter()
        .map(|d| (d.kind, d.avp_name().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            (FindingKind::TooMany, "Flow-Description".to_string()),
            (FindingKind::MissingAvp, "Flow-Number".to_string()),
            (FindingKind::MBit, "Media-Type".to_string()),
            (
                FindingKind::MissingAvp,
                "Media-Component-Number".to_string()
            ),
        ]
    );
    assert_eq!(v.findings().count(), 4);
    let e = check(&msg, strict()).error.unwrap();
    assert_eq!(e.kind, FindingKind::TooMany);
}

// ---------------------------------------------------------------------------------------------
// What stays an error at the default level
// ---------------------------------------------------------------------------------------------

#[test]
fn v_bit_mismatch_rejected_by_default() {
    // Origin-Host with the V bit and Vendor-Id 0: the V bit disagrees with its definition.
    let mut avps = rx_aar_avps();
    let oh = OwnedAvp::new(264, 0, V | M, AvpValue::Bytes(Bytes::from_static(b"pcscf")));
    avps[2] = oh.clone();
    let msg = request(rx::CMD_AA, rx::APP_RX, avps);
    let v = check(&msg, liberal());
    assert_rejected(&v, &msg, 3009, Some(&oh));
    assert_eq!(v.error.unwrap().kind, FindingKind::FlagBits);
    // Flow-Description without V and Vendor-Id is (507, 0): an unknown AVP with M → 5001.
    let no_v = OwnedAvp::new(507, 0, M, AvpValue::Bytes(Bytes::from_static(b"permit")));
    let sub = msc(vec![rx::FLOW_NUMBER.with(1u32), no_v.clone()]);
    let comp = mcd(vec![rx::MEDIA_COMPONENT_NUMBER.with(1u32), sub.clone()]);
    let msg = rx_aar(vec![comp.clone()]);
    assert_rejected(
        &check(&msg, liberal()),
        &msg,
        5001,
        Some(&inside(&no_v, &[&comp, &sub])),
    );
}

#[test]
fn reserved_header_bits_and_e_bit_rejected_by_default() {
    let mut b = MessageBuilder::request(rx::CMD_AA, rx::APP_RX, true).ids(1, 1);
    b.avps = rx_aar_avps();
    b.flags = CommandFlags(b.flags.0 | 0x01);
    let msg = Message::from_bytes(b.to_bytes()).unwrap();
    let opts = ValidateOptions {
        strict_reserved_bits: true,
        ..liberal()
    };
    assert_rejected(&check(&msg, opts), &msg, 5013, None);
    b.flags = CommandFlags(CommandFlags::REQUEST | CommandFlags::PROXIABLE | CommandFlags::ERROR);
    let msg = Message::from_bytes(b.to_bytes()).unwrap();
    let v = check(&msg, liberal());
    assert_rejected(&v, &msg, 3008, None);
    assert_eq!(v.error.unwrap().kind, FindingKind::HeaderBits);
}

#[test]
fn top_level_grammar_stays_strict_by_default() {
    // Two Origin-Host at the top: 5009 at the default level (bad-inputs 26).
    let mut avps = rx_aar_avps();
    let second = base::ORIGIN_HOST.with("other.example.net");
    avps.push(second.clone());
    let msg = request(rx::CMD_AA, rx::APP_RX, avps);
    assert_rejected(&check(&msg, liberal()), &msg, 5009, Some(&second));
}

#[test]
fn clean_message_has_no_findings() {
    let sub = msc(vec![rx::FLOW_NUMBER.with(1u32), flow(1), flow(2)]);
    let msg = rx_aar(vec![mcd(vec![rx::MEDIA_COMPONENT_NUMBER.with(1u32), sub])]);
    for opts in [strict(), liberal()] {
        let v = check(&msg, opts);
        assert!(v.is_accepted() && v.deviations.is_empty(), "{v:?}");
        assert_eq!(v.deviations.capacity(), 0, "nothing allocated");
    }
}
