#![no_main]
//! Decode → owned tree → encode → decode must keep every AVP.
libfuzzer_sys::fuzz_target!(|data: &[u8]| diameter_codec::fuzzing::roundtrip(data));
