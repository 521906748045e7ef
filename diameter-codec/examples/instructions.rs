//! Runs one codec operation N times on a golden vector, for instruction counts that do not
//! depend on the host's load (criterion's wall-clock figures swing with it):
//!
//! ```text
//! cargo build --release -p diameter-codec --example instructions
//! for n in 1000 3000; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \
//!     target/release/examples/instructions gy_ccr_u decode+validate $n; done
//! # instructions per message = (total(3000) - total(1000)) / 2000, totals from callgrind_annotate
//! ```
//!
//! Vectors: `gy_ccr_u`, `gx_cca_5_rules`, `cer` (tests/vectors); operations: `decode`,
//! `decode+validate`, `validate`.

use bytes::Bytes;
use diameter_codec::{Dictionary, Limits, Message, ValidateOptions, Validator};
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, vector, op, n] = &args[..] else {
        eprintln!("usage: instructions VECTOR decode|decode+validate|validate N");
        std::process::exit(2);
    };
    let text = match vector.as_str() {
        "gy_ccr_u" => include_str!("../tests/vectors/gy_ccr_u.hex"),
        "gx_cca_5_rules" => include_str!("../tests/vectors/gx_cca_5_rules.hex"),
        "cer" => include_str!("../tests/vectors/cer.hex"),
        other => panic!("unknown vector {other}"),
    };
    let bytes = Bytes::from(diameter_codec::hex_text::parse(text).expect("vector is hex"));
    let n: u32 = n.parse().expect("N is a count");
    let validator = Validator::new(Dictionary::embedded(), ValidateOptions::default());
    let decode = |b: &Bytes| Message::decode(b.clone(), &Limits::DEFAULT).expect("vector decodes");
    let msg = decode(&bytes);
    let mut ok = 0u32;
    for _ in 0..n {
        ok += match op.as_str() {
            "decode" => black_box(decode(black_box(&bytes))).avps().count() as u32 & 1,
            "decode+validate" => u32::from(validator.validate(&decode(black_box(&bytes))).is_ok()),
            "validate" => u32::from(validator.validate(black_box(&msg)).is_ok()),
            other => panic!("unknown operation {other}"),
        };
    }
    println!("{ok}");
}
