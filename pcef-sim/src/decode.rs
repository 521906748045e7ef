//! `pcef-sim decode`: reads Diameter messages as hex text or raw bytes and prints them with
//! dictionary names, as text or JSON, together with what validation says of each.

use bytes::Bytes;
use diameter_codec::{
    Dictionary, Finding, Limits, Message, Renderer, ValidateOptions, Validation, Validator,
    frame_length,
};
use serde_json::{Value, json};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Indented text, one line per AVP.
    Text,
    /// A JSON array with one object per message.
    Json,
}

/// Input given as hex (whitespace, `0x` prefixes and `#` comments allowed) is turned into
/// bytes; anything else is taken as raw bytes.
pub fn input_bytes(input: &[u8]) -> Vec<u8> {
    std::str::from_utf8(input)
        .ok()
        .and_then(diameter_codec::hex_text::parse)
        .unwrap_or_else(|| input.to_vec())
}

/// One message found in the input, or why the bytes at `offset` are not one.
pub enum Decoded {
    /// A message that decoded.
    Message(Message),
    /// Bytes that did not.
    Error {
        /// Where in the input.
        offset: usize,
        /// What went wrong.
        error: String,
    },
}

/// Splits `data` into messages by their Message Length and decodes each. Stops at the
/// first framing error (the rest cannot be framed reliably).
pub fn split_messages(data: Vec<u8>, limits: &Limits) -> Vec<Decoded> {
    let data = Bytes::from(data);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let len = match frame_length(rest, limits.max_message_len) {
            Ok(Some(n)) if n <= rest.len() => n,
            Ok(_) => {
                out.push(Decoded::Error {
                    offset: pos,
                    error: format!("truncated: {} bytes left", rest.len()),
                });
                break;
            }
            Err(e) => {
                out.push(Decoded::Error {
                    offset: pos,
                    error: e.to_string(),
                });
                break;
            }
        };
        match Message::decode(data.slice(pos..pos + len), limits) {
            Ok(m) => out.push(Decoded::Message(m)),
            Err(e) => out.push(Decoded::Error {
                offset: pos,
                error: e.to_string(),
            }),
        }
        pos += len;
    }
    out
}

/// Renders every message of `input`, validated at the default (liberal) level.
pub fn render(input: &[u8], format: Format) -> String {
    render_with(input, format, ValidateOptions::default())
}

/// The verdict line of a validation: valid, accepted with deviations, or the error.
fn verdict(v: &Validation) -> String {
    match &v.error {
        None if v.deviations.is_empty() => "valid".to_string(),
        None => format!(
            "accepted with {} deviation{}",
            v.deviations.len(),
            if v.deviations.len() == 1 { "" } else { "s" }
        ),
        Some(e) => format!(
            "invalid: Result-Code {} ({})",
            e.report.result_code,
            e.report.message.as_deref().unwrap_or("")
        ),
    }
}

/// One finding as JSON: what, where (by code, vendor and name), which rule, and the answer
/// strict validation gives for it.
fn finding_json(f: &Finding, dict: &Dictionary) -> Value {
    let path: Vec<Value> = f
        .path
        .iter()
        .map(|k| {
            json!({
                "code": k.code,
                "vendor": k.vendor,
                "name": dict.avp(*k).map(|d| d.name.as_str()),
            })
        })
        .collect();
    json!({
        "severity": f.severity.as_str(),
        "kind": f.kind.as_str(),
        "avp": f.path_names,
        "path": path,
        "rule": f.rule,
        "result_code": f.report.result_code.0,
        "message": f.report.message,
        "failed_avp": f.report.failed_avp.as_ref().map(|a| json!({ "code": a.code, "vendor": a.vendor })),
    })
}

/// Renders every message of `input`, validated with `opts`.
pub fn render_with(input: &[u8], format: Format, opts: ValidateOptions) -> String {
    let dict = Dictionary::embedded();
    let renderer = Renderer::new(dict);
    let validator = Validator::new(dict, opts);
    let decoded = split_messages(input_bytes(input), &Limits::DEFAULT);
    match format {
        Format::Text => {
            let mut s = String::new();
            for d in &decoded {
                match d {
                    Decoded::Message(m) => {
                        s.push_str(&renderer.text(m));
                        let v = validator.check(m);
                        s.push_str(&format!("  => {}\n", verdict(&v)));
                        for f in &v.deviations {
                            s.push_str(&format!(
                                "     - {}: {}\n",
                                f,
                                f.report.message.as_deref().unwrap_or("")
                            ));
                        }
                        if let Some(e) = &v.error
                            && !e.path_names.is_empty()
                        {
                            s.push_str(&format!("     at {} [{}]\n", e.path_names, e.rule));
                        }
                    }
                    Decoded::Error { offset, error } => {
                        s.push_str(&format!("!! at byte {offset}: {error}\n"))
                    }
                }
                s.push('\n');
            }
            s
        }
        Format::Json => {
            let list: Vec<Value> = decoded
                .iter()
                .map(|d| match d {
                    Decoded::Message(m) => {
                        let mut v = renderer.json(m);
                        let c = validator.check(m);
                        let deviations: Vec<Value> =
                            c.deviations.iter().map(|f| finding_json(f, dict)).collect();
                        let mut validation = json!({
                            "valid": c.is_accepted(),
                            "summary": verdict(&c),
                            "deviations": deviations,
                        });
                        if let Some(e) = &c.error {
                            validation["result_code"] = json!(e.report.result_code.0);
                            validation["message"] = json!(e.report.message);
                            validation["failed_avp"] = json!(
                                e.report
                                    .failed_avp
                                    .as_ref()
                                    .map(|f| json!({ "code": f.code, "vendor": f.vendor }))
                            );
                            validation["error"] = finding_json(e, dict);
                        }
                        v["validation"] = validation;
                        v
                    }
                    Decoded::Error { offset, error } => json!({ "error": error, "offset": offset }),
                })
                .collect();
            serde_json::to_string_pretty(&Value::Array(list)).unwrap_or_default() + "\n"
        }
    }
}
