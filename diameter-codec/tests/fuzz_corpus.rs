//! Replays the fuzz seed corpus (`fuzz/corpus/*/`), every crash kept in `fuzz/regressions/`
//! and the golden vectors (`tests/vectors/*.hex`) through both fuzz entry points, as a
//! plain test (rasn `tests/fuzz.rs` style): a crash once found stays fixed without
//! cargo-fuzz. See `fuzz/README.md` for adding one.

use bytes::Bytes;
use diameter_codec::{Dictionary, Limits, Message, MessageBuilder, Renderer, fuzzing};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.') || n == "README.md")
    });
    out.sort();
    out
}

/// A `.hex` vector ([`diameter_codec::hex_text`]).
fn read_hex(p: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(p).unwrap();
    diameter_codec::hex_text::parse(&text).unwrap_or_else(|| panic!("{}: not hex", p.display()))
}

/// Why `fuzzing::roundtrip` would fail, said more precisely than its assertion: the first
/// AVP whose rendering changes across decode → owned copy → encode → decode.
fn explain(data: &[u8]) -> String {
    let dict = Dictionary::embedded();
    let Ok(msg) = Message::decode(Bytes::copy_from_slice(data), &Limits::DEFAULT) else {
        return "does not decode".into();
    };
    let once = MessageBuilder::from_message(&msg, dict).to_bytes();
    let roomy = Limits {
        max_message_len: 0x00ff_fffc,
        ..Limits::DEFAULT
    };
    let again = match Message::decode(once, &roomy) {
        Ok(m) => m,
        Err(e) => return format!("re-encoded message does not decode: {e}"),
    };
    let r = Renderer::new(dict);
    let (a, b) = (r.json(&msg)["avps"].clone(), r.json(&again)["avps"].clone());
    fn first_diff(a: &serde_json::Value, b: &serde_json::Value, path: String) -> Option<String> {
        match (a, b) {
            (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    if let Some(d) = first_diff(p, q, format!("{path}[{i}]")) {
                        return Some(d);
                    }
                }
                (x.len() != y.len()).then(|| format!("{path}: {} AVPs became {}", x.len(), y.len()))
            }
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                for (k, v) in x {
                    if let Some(d) = first_diff(
                        v,
                        y.get(k).unwrap_or(&serde_json::Value::Null),
                        format!("{path}.{k}"),
                    ) {
                        return Some(format!(
                            "{d} (in {})",
                            serde_json::to_string(&x.get("code")).unwrap_or_default()
                        ));
                    }
                }
                None
            }
            _ => (a != b).then(|| format!("{path}: {a} became {b}")),
        }
    }
    first_diff(&a, &b, "avps".into())
        .unwrap_or_else(|| "renders the same; the second encode differs".into())
}

#[test]
fn replay_corpus_regressions_and_vectors() {
    let root = root();
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in [
        "fuzz/corpus/decode",
        "fuzz/corpus/roundtrip",
        "fuzz/regressions",
    ] {
        for p in files(&root.join(dir)) {
            inputs.push((
                format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    let seeds = inputs.len();
    for p in files(&root.join("diameter-codec/tests/vectors"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
    {
        inputs.push((
            format!("vectors/{}", p.file_name().unwrap().to_string_lossy()),
            read_hex(&p),
        ));
    }
    assert!(
        seeds >= 2,
        "no seed corpus found under {}",
        root.join("fuzz").display()
    );
    let mut failures = Vec::new();
    for (name, data) in &inputs {
        let d: &[u8] = data;
        if std::panic::catch_unwind(|| fuzzing::decode(d)).is_err() {
            failures.push(format!(
                "{name}: fuzzing::decode panicked; input {}",
                hex::encode(d)
            ));
        }
        if std::panic::catch_unwind(|| fuzzing::roundtrip(d)).is_err() {
            let why = explain(d);
            let shown = if d.len() <= 512 {
                hex::encode(d)
            } else {
                format!("{} bytes", d.len())
            };
            failures.push(format!(
                "{name}: fuzzing::roundtrip panicked: {why}; input {shown}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs crash:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
}
