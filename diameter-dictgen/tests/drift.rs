//! The committed generated code must match what the dictionaries generate today.

use std::path::PathBuf;

#[test]
fn generated_code_matches_dictionaries() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../diameter-codec/src/generated");
    let mut stale = Vec::new();
    for (name, text) in diameter_dictgen::generate(diameter_codec::Dictionary::embedded()) {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        if committed != text {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "generated code is stale ({stale:?}): run `cargo run -p diameter-dictgen` and commit"
    );
}

#[test]
fn every_constant_matches_the_dictionary() {
    use diameter_codec::dict::{base, dcca, gx};
    let d = diameter_codec::Dictionary::embedded();
    for (name, key) in [
        ("Origin-Host", base::ORIGIN_HOST.key()),
        ("Session-Id", base::SESSION_ID.key()),
        (
            "Multiple-Services-Credit-Control",
            dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key(),
        ),
        ("Event-Trigger", gx::EVENT_TRIGGER.key()),
    ] {
        assert_eq!(d.avp_by_name(name).map(|a| a.key), Some(key), "{name}");
    }
    assert_eq!(gx::EventTrigger::RAT_CHANGE.0, 2);
    assert_eq!(gx::EventTrigger(2).name(), Some("RAT_CHANGE"));
}
