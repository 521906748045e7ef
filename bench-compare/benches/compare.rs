//! One run, the very same bytes: diameter-codec decode+validate, freeDiameter
//! fd_msg_parse_buffer + fd_msg_parse_dict (+ fd_msg_free), and the `diameter` crate's
//! `DiameterMessage::decode_from`. See BENCHMARKS.md for the commands and figures.
//!
//! After the criterion groups a summary table with ratios is printed, measured in the same
//! process with interleaved batches (`SUMMARY_ROUNDS` rounds of each implementation in turn).

use bench_compare::freediameter::{self, FreeDiameter};
use bench_compare::vectors::{self, Vector};
use bytes::Bytes;
use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use diameter_codec::{Dictionary, Limits, Message, MessageBuilder, ValidateOptions, Validator};
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

type DiameterDict = Arc<diameter::dictionary::Dictionary>;

fn ours(bytes: &Bytes, v: &Validator<'_>) -> bool {
    // Bytes::clone is a reference-count increment: what a node does for a frame it holds.
    let msg = Message::decode(bytes.clone(), &Limits::DEFAULT).expect("decodes");
    v.validate(&msg).is_ok()
}

fn diameter_crate(
    bytes: &[u8],
    dict: &DiameterDict,
) -> Result<diameter::DiameterMessage, diameter::Error> {
    diameter::DiameterMessage::decode_from(&mut Cursor::new(bytes), Arc::clone(dict))
}

struct Case {
    vector: Vector,
    bytes: Bytes,
    fd_ok: bool,
    crate_ok: bool,
    /// Our owned tree of the message, for encode.
    builder: MessageBuilder,
    /// The `diameter` crate's decoded message, for its encode.
    crate_msg: Option<diameter::DiameterMessage>,
}

fn prepare(fd: Option<&FreeDiameter>, ddict: &DiameterDict) -> Vec<Case> {
    let dict = Dictionary::embedded();
    let validator = Validator::new(dict, ValidateOptions::default());
    vectors::all()
        .into_iter()
        .map(|vector| {
            let bytes = Bytes::from(vector.bytes.clone());
            let msg = Message::decode(bytes.clone(), &Limits::DEFAULT).expect("vector decodes");
            if let Err(e) = validator.validate(&msg) {
                panic!("{}: our validator rejects the vector: {e:?}", vector.name);
            }
            let avps = bench_compare::count_avps(&msg, dict);
            println!("{}: {} bytes, {avps} AVPs, from {}", vector.name, bytes.len(), vector.source);
            let fd_ok = match fd.map(|fd| fd.check(&bytes)) {
                Some(Ok((known, unknown))) => {
                    println!("  freeDiameter: parse+dict ok, {known} AVPs resolved by its dictionary, {unknown} unknown");
                    true
                }
                Some(Err(rc)) => {
                    println!("  freeDiameter: parse+dict FAILED ({rc}); not measured");
                    false
                }
                None => false,
            };
            let crate_msg = match diameter_crate(&bytes, ddict) {
                Ok(m) => {
                    println!("  diameter crate: decodes ({} top-level AVPs)", m.get_avps().len());
                    Some(m)
                }
                Err(e) => {
                    println!("  diameter crate: cannot decode ({e}); not measured");
                    None
                }
            };
            let builder = MessageBuilder::from_message_typed(&msg, dict);
            assert_eq!(&builder.to_bytes()[..], &bytes[..], "{}: our encode differs", vector.name);
            Case { vector, bytes, fd_ok, crate_ok: crate_msg.is_some(), builder, crate_msg }
        })
        .collect()
}

fn benches(c: &mut Criterion, cases: &[Case], fd: Option<&FreeDiameter>, ddict: &DiameterDict) {
    let validator = Validator::new(Dictionary::embedded(), ValidateOptions::default());
    for case in cases {
        let mut g = c.benchmark_group(format!("compare/{}", case.vector.name));
        g.throughput(Throughput::Bytes(case.bytes.len() as u64));
        g.bench_function(BenchmarkId::new("diameter-codec", "decode+validate"), |b| {
            b.iter(|| black_box(ours(black_box(&case.bytes), &validator)));
        });
        if let (Some(fd), true) = (fd, case.fd_ok) {
            g.bench_function(BenchmarkId::new("freediameter", "parse+dict+free"), |b| {
                b.iter(|| black_box(fd.parse(black_box(&case.bytes))));
            });
        }
        if case.crate_ok {
            g.bench_function(BenchmarkId::new("diameter-crate", "decode_from"), |b| {
                b.iter(|| black_box(diameter_crate(black_box(&case.bytes), ddict).is_ok()));
            });
        }
        let mut buf = BytesMut::with_capacity(case.bytes.len());
        g.bench_function(BenchmarkId::new("diameter-codec", "encode"), |b| {
            b.iter(|| ours_encode(&case.builder, &mut buf));
        });
        if let Some(m) = &case.crate_msg {
            let mut out = Vec::with_capacity(case.bytes.len());
            g.bench_function(BenchmarkId::new("diameter-crate", "encode_to"), |b| {
                b.iter(|| crate_encode(m, &mut out));
            });
        }
        g.finish();
    }
}

fn ours_encode(builder: &MessageBuilder, buf: &mut BytesMut) -> usize {
    buf.clear();
    black_box(builder).encode(buf);
    black_box(buf.len())
}

fn crate_encode(m: &diameter::DiameterMessage, out: &mut Vec<u8>) -> usize {
    out.clear();
    black_box(m).encode_to(out).expect("encodes");
    black_box(out.len())
}

const SUMMARY_ROUNDS: usize = 15;

/// Median ns per call over `SUMMARY_ROUNDS` rounds; in each round every implementation runs
/// one batch in turn, so noise on this shared machine hits them alike.
fn summary(cases: &[Case], fd: Option<&FreeDiameter>, ddict: &DiameterDict) {
    let validator = Validator::new(Dictionary::embedded(), ValidateOptions::default());
    let time = |n: u32, f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_nanos() as f64 / f64::from(n)
    };
    let median = |mut v: Vec<f64>| {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    };
    let cell = |v: Option<f64>, base: f64| match v {
        Some(m) => (format!("{m:.0}"), format!("{:.1}×", m / base)),
        None => ("n/a".to_string(), "–".to_string()),
    };
    let mut decode_rows = Vec::new();
    let mut encode_rows = Vec::new();
    for case in cases {
        let mut t: [Vec<f64>; 5] = Default::default();
        let mut buf = BytesMut::with_capacity(case.bytes.len());
        let mut out = Vec::with_capacity(case.bytes.len());
        for _ in 0..SUMMARY_ROUNDS {
            t[0].push(time(20_000, &mut || {
                black_box(ours(black_box(&case.bytes), &validator));
            }));
            if let (Some(fd), true) = (fd, case.fd_ok) {
                t[1].push(time(1_000, &mut || {
                    let _ = black_box(fd.parse(black_box(&case.bytes)));
                }));
            }
            if case.crate_ok {
                t[2].push(time(5_000, &mut || {
                    black_box(diameter_crate(black_box(&case.bytes), ddict).is_ok());
                }));
            }
            t[3].push(time(20_000, &mut || {
                ours_encode(&case.builder, &mut buf);
            }));
            if let Some(m) = &case.crate_msg {
                t[4].push(time(20_000, &mut || {
                    crate_encode(m, &mut out);
                }));
            }
        }
        let [a, b, c, d, e] = t.map(median);
        let ours = a.expect("measured");
        let (fdv, fdr) = cell(b, ours);
        let (cv, cr) = cell(c, ours);
        let (name, len) = (case.vector.name, case.bytes.len());
        decode_rows.push(format!(
            "| {name} | {len} | {ours:.0} | {fdv} | {fdr} | {cv} | {cr} |"
        ));
        let enc = d.expect("measured");
        let (ev, er) = cell(e, enc);
        encode_rows.push(format!("| {name} | {len} | {enc:.0} | {ev} | {er} |"));
    }
    println!();
    println!(
        "summary: median of {SUMMARY_ROUNDS} interleaved rounds, ns per message; ratio = other / diameter-codec"
    );
    println!();
    println!(
        "| message | bytes | diameter-codec decode+validate | freeDiameter parse+dict+free | ratio | `diameter` crate decode_from | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    decode_rows.iter().for_each(|r| println!("{r}"));
    println!();
    println!(
        "| message | bytes | diameter-codec encode (reused buffer) | `diameter` crate encode_to (reused Vec) | ratio |"
    );
    println!("|---|---|---|---|---|");
    encode_rows.iter().for_each(|r| println!("{r}"));
}

fn main() {
    let fd = match FreeDiameter::init() {
        Ok(fd) => Some(fd),
        Err(why) if freediameter::required() => panic!("DIAMETER_REQUIRE_FREEDIAMETER=1 but {why}"),
        Err(why) => {
            println!("SKIP freeDiameter comparison: {why}");
            None
        }
    };
    let xml = bench_compare::diameter_crate_dictionary_xml(Dictionary::embedded());
    let ddict: DiameterDict = Arc::new(diameter::dictionary::Dictionary::new(&[&xml]));
    let cases = prepare(fd.as_ref(), &ddict);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c, &cases, fd.as_ref(), &ddict);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench")
        && std::env::var_os("BENCH_COMPARE_NO_SUMMARY").is_none()
    {
        summary(&cases, fd.as_ref(), &ddict);
    }
}
