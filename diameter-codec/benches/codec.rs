//! Codec benchmarks: decode, decode+validate and encode of a Gy CCR-U with three MSCC, a Gx
//! CCA installing five PCC rules, and a CER, read from the golden vectors in `tests/vectors/`.
//!
//! `cargo bench -p diameter-codec --bench codec` (figures and the comparison with
//! freeDiameter and the `diameter` crate: BENCHMARKS.md at the workspace root). Before the
//! criterion groups the binary counts heap allocations per message with a counting global
//! allocator and asserts that decode+validate of every vector and encode into a reused
//! buffer of the CCR-U allocate nothing.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use diameter_codec::{Dictionary, Limits, Message, MessageBuilder, ValidateOptions, Validator};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The benchmark messages: (group name, golden vector). The vectors are hex text
/// ([`diameter_codec::hex_text`]).
const VECTORS: [(&str, &str); 3] = [
    (
        "gy_ccr_u_3mscc",
        include_str!("../tests/vectors/gy_ccr_u.hex"),
    ),
    (
        "gx_cca_5_rules",
        include_str!("../tests/vectors/gx_cca_5_rules.hex"),
    ),
    ("cer", include_str!("../tests/vectors/cer.hex")),
];

struct Vector {
    name: &'static str,
    bytes: Bytes,
}

fn parse_hex(text: &str) -> Vec<u8> {
    diameter_codec::hex_text::parse(text).expect("vector is hex")
}

#[path = "support/write_gy_ccr_u.rs"]
mod writer;
use writer::write_gy_ccr_u;

fn vectors() -> Vec<Vector> {
    VECTORS
        .iter()
        .map(|&(name, text)| Vector {
            name,
            bytes: Bytes::from(parse_hex(text)),
        })
        .collect()
}

fn decode(bytes: &Bytes) -> Message {
    Message::decode(bytes.clone(), &Limits::DEFAULT).expect("vector decodes")
}

fn decode_validate(bytes: &Bytes, v: &Validator<'_>) -> bool {
    v.validate(&decode(bytes)).is_ok()
}

/// Heap allocations (and reallocations) per call of `f`, averaged over `n` calls.
fn allocations_per_call(n: u32, mut f: impl FnMut()) -> (f64, f64) {
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        f();
    }
    let s = region.change();
    (
        (s.allocations + s.reallocations) as f64 / f64::from(n),
        s.bytes_allocated as f64 / f64::from(n),
    )
}

/// Prints allocations per message for decode+validate and encode, and asserts zero for
/// decode+validate of every vector and for encoding the CCR-U into a reused buffer.
fn check_allocations(vectors: &[Vector], builders: &[MessageBuilder], v: &Validator<'_>) {
    for (vec, builder) in vectors.iter().zip(builders) {
        let (dv, dv_bytes) = allocations_per_call(1000, || {
            black_box(decode_validate(black_box(&vec.bytes), v));
        });
        let mut buf = BytesMut::with_capacity(builder.encoded_len());
        let (enc, enc_bytes) = allocations_per_call(1000, || {
            buf.clear();
            builder.encode(black_box(&mut buf));
        });
        println!(
            "{}: decode+validate {dv} allocations ({dv_bytes} bytes) per message; encode into a reused buffer {enc} allocations ({enc_bytes} bytes) per message",
            vec.name
        );
        assert_eq!(dv, 0.0, "{}: decode+validate allocates", vec.name);
        if vec.name == "gy_ccr_u_3mscc" {
            assert_eq!(
                enc, 0.0,
                "{}: encode into a reused buffer allocates",
                vec.name
            );
        }
    }
    println!("0 allocations per message for the CCR-U decode+validate");
}

fn main() {
    let dict = Dictionary::embedded();
    let validator = Validator::new(dict, ValidateOptions::default());
    let vectors = vectors();
    let builders: Vec<MessageBuilder> = vectors
        .iter()
        .map(|vec| {
            let msg = decode(&vec.bytes);
            if let Err(e) = validator.validate(&msg) {
                panic!("{}: vector does not validate: {e:?}", vec.name);
            }
            let builder = MessageBuilder::from_message_typed(&msg, dict);
            let mut out = BytesMut::new();
            builder.encode(&mut out);
            assert_eq!(
                &out[..],
                &vec.bytes[..],
                "{}: encode does not reproduce the vector",
                vec.name
            );
            assert_eq!(builder.encoded_len(), vec.bytes.len());
            builder
        })
        .collect();
    check_allocations(&vectors, &builders, &validator);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for (vec, builder) in vectors.iter().zip(&builders) {
        let mut g = c.benchmark_group(format!("codec/{}", vec.name));
        g.throughput(Throughput::Bytes(vec.bytes.len() as u64));
        g.bench_function(BenchmarkId::from_parameter("decode"), |b| {
            b.iter(|| decode(black_box(&vec.bytes)))
        });
        g.bench_function(BenchmarkId::from_parameter("decode+validate"), |b| {
            b.iter(|| decode_validate(black_box(&vec.bytes), &validator));
        });
        let msg = decode(&vec.bytes);
        g.bench_function(BenchmarkId::from_parameter("validate"), |b| {
            b.iter(|| validator.validate(black_box(&msg)).is_ok())
        });
        let mut buf = BytesMut::with_capacity(builder.encoded_len());
        g.bench_function(BenchmarkId::from_parameter("encode"), |b| {
            b.iter(|| {
                buf.clear();
                black_box(builder).encode(&mut buf);
                black_box(buf.len())
            });
        });
        if vec.name == "gy_ccr_u_3mscc" {
            let mut wbuf = BytesMut::with_capacity(4096);
            let n = write_gy_ccr_u(&mut wbuf);
            assert_eq!(
                &wbuf[..n],
                &vec.bytes[..],
                "MessageWriter reproduces the vector"
            );
            g.bench_function(BenchmarkId::from_parameter("write"), |b| {
                b.iter(|| {
                    wbuf.clear();
                    black_box(write_gy_ccr_u(&mut wbuf))
                });
            });
        }
        g.finish();
    }
    c.final_summary();
}
