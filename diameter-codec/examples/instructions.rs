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
//! `scripts/codec-instructions.py OLD NEW` does that for every vector and operation of two
//! checkouts.
//!
//! Vectors: `gy_ccr_u`, `gx_cca_5_rules`, `cer` (tests/vectors); operations, the same code as
//! `benches/codec.rs`: `decode`, `decode+validate`, `validate`, `encode` (the vector's owned
//! tree into a reused buffer) and, for `gy_ccr_u` only, `write` ([`MessageWriter`] from typed
//! values).
//!
//! [`MessageWriter`]: diameter_codec::MessageWriter

#[path = "../benches/support/write_gy_ccr_u.rs"]
mod writer;

use bytes::{Buf, Bytes, BytesMut};
use diameter_codec::{Dictionary, Limits, Message, MessageBuilder, ValidateOptions, Validator};
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, vector, op, n] = &args[..] else {
        eprintln!("usage: instructions VECTOR decode|decode+validate|validate|encode|write N");
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
    let dict = Dictionary::embedded();
    let validator = Validator::new(dict, ValidateOptions::default());
    let decode = |b: &Bytes| Message::decode(b.clone(), &Limits::DEFAULT).expect("vector decodes");
    let msg = decode(&bytes);
    let builder = MessageBuilder::from_message_typed(&msg, dict);
    let mut buf = aligned_buffer(4096);
    // Both encoders are checked against the vector before they are counted.
    match op.as_str() {
        "encode" => builder.encode(&mut buf),
        "write" if vector == "gy_ccr_u" => {
            writer::write_gy_ccr_u(&mut buf);
        }
        "write" => panic!("write covers gy_ccr_u only"),
        _ => buf.extend_from_slice(&bytes),
    }
    assert_eq!(&buf[..], &bytes[..], "{op} reproduces the vector");
    let mut ok = 0u32;
    for _ in 0..n {
        ok += match op.as_str() {
            "decode" => {
                black_box(decode(black_box(&bytes)));
                1
            }
            "decode+validate" => u32::from(validator.validate(&decode(black_box(&bytes))).is_ok()),
            "validate" => u32::from(validator.validate(black_box(&msg)).is_ok()),
            "encode" => {
                buf.clear();
                black_box(&builder).encode(&mut buf);
                black_box(buf.len()) as u32 & 1
            }
            "write" => {
                buf.clear();
                black_box(writer::write_gy_ccr_u(&mut buf)) as u32 & 1
            }
            other => panic!("unknown operation {other}"),
        };
    }
    println!("{ok}");
}

/// An empty buffer of `capacity` bytes starting on a 64-byte boundary. What `memset` and
/// `memcpy` execute depends on the destination's alignment, which the heap's layout (and so
/// the build) decides; an encoder's count then differs by a few instructions between two
/// builds of the same code unless its buffer starts where it does here.
fn aligned_buffer(capacity: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(capacity + 64);
    let skip = buf.as_ptr().align_offset(64);
    buf.resize(skip, 0);
    buf.advance(skip);
    buf
}
