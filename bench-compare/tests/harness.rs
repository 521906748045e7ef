//! The comparison is only meaningful if every implementation really decodes the messages:
//! ours validates them, freeDiameter resolves every AVP with its dictionary, the `diameter`
//! crate decodes them with the dictionary generated from ours.

use bench_compare::freediameter::{self, FreeDiameter};
use bench_compare::{build, vectors};
use bytes::Bytes;
use diameter_codec::{Dictionary, Message, ValidateOptions, Validator};
use std::io::Cursor;
use std::sync::Arc;

#[test]
fn built_messages_validate_and_match_their_descriptions() {
    let dict = Dictionary::embedded();
    let v = Validator::new(dict, ValidateOptions::default());
    for bytes in [build::gy_ccr_u(), build::gx_cca_5_rules(), build::cer()] {
        let msg = Message::from_bytes(bytes).expect("decodes");
        v.validate(&msg)
            .unwrap_or_else(|e| panic!("{}: {e:?}", msg.command_label()));
    }
    let ccr = Message::from_bytes(build::gy_ccr_u()).expect("decodes");
    assert_eq!(ccr.as_bytes().len(), 768);
    assert_eq!(bench_compare::count_avps(&ccr, dict), 48);
}

#[test]
fn vectors_validate() {
    let v = Validator::new(Dictionary::embedded(), ValidateOptions::default());
    for vec in vectors::all() {
        let msg = Message::from_bytes(vec.bytes).expect("decodes");
        v.validate(&msg)
            .unwrap_or_else(|e| panic!("{}: {e:?}", vec.name));
    }
}

#[test]
fn freediameter_resolves_every_avp() {
    let fd = match FreeDiameter::init() {
        Ok(fd) => fd,
        Err(why) if freediameter::required() => panic!("DIAMETER_REQUIRE_FREEDIAMETER=1 but {why}"),
        Err(why) => {
            eprintln!("SKIP freeDiameter: {why}");
            return;
        }
    };
    for vec in vectors::all() {
        let (known, unknown) = fd
            .check(&vec.bytes)
            .unwrap_or_else(|rc| panic!("{}: freeDiameter error {rc}", vec.name));
        let msg = Message::from_bytes(Bytes::from(vec.bytes.clone())).expect("decodes");
        let ours = bench_compare::count_avps(&msg, Dictionary::embedded());
        assert_eq!(
            unknown, 0,
            "{}: AVPs unknown to freeDiameter's dictionary",
            vec.name
        );
        assert_eq!(known as usize, ours, "{}: AVP count", vec.name);
        fd.parse(&vec.bytes)
            .unwrap_or_else(|rc| panic!("{}: freeDiameter error {rc}", vec.name));
    }
}

#[test]
fn diameter_crate_decodes_with_the_generated_dictionary() {
    let xml = bench_compare::diameter_crate_dictionary_xml(Dictionary::embedded());
    let dict = Arc::new(diameter::dictionary::Dictionary::new(&[&xml]));
    for vec in vectors::all() {
        let m =
            diameter::DiameterMessage::decode_from(&mut Cursor::new(&vec.bytes), Arc::clone(&dict));
        let m = m.unwrap_or_else(|e| panic!("{}: {e}", vec.name));
        let mut out = Vec::new();
        m.encode_to(&mut out).expect("encodes");
        assert_eq!(
            out, vec.bytes,
            "{}: the diameter crate's round trip",
            vec.name
        );
    }
}

/// Writes the built messages as hex vectors into `$DUMP_VECTORS_DIR` (development aid).
#[test]
#[ignore = "development aid"]
fn dump_built_vectors() {
    let dir = std::env::var("DUMP_VECTORS_DIR").expect("DUMP_VECTORS_DIR");
    for (stem, bytes) in [
        ("gy_ccr_u", build::gy_ccr_u()),
        ("gx_cca_5_rules", build::gx_cca_5_rules()),
        ("cer", build::cer()),
    ] {
        std::fs::write(format!("{dir}/{stem}.hex"), hex::encode(bytes) + "\n").expect("write");
    }
}
