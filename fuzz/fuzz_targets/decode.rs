#![no_main]
//! Arbitrary bytes through decode, validate, walk and render: must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| diameter_codec::fuzzing::decode(data));
