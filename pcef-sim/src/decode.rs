//! `pcef-sim decode`: reads Diameter messages as hex text or raw bytes and prints them with
//! dictionary names, as text or JSON, together with what validation says of each.

use bytes::Bytes;
use diameter_codec::{
    Dictionary, Limits, Message, Renderer, ValidateOptions, Validator, frame_length,
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

/// Renders every message of `input`.
pub fn render(input: &[u8], format: Format) -> String {
    let dict = Dictionary::embedded();
    let renderer = Renderer::new(dict);
    let validator = Validator::new(dict, ValidateOptions::default());
    let decoded = split_messages(input_bytes(input), &Limits::DEFAULT);
    match format {
        Format::Text => {
            let mut s = String::new();
            for d in &decoded {
                match d {
                    Decoded::Message(m) => {
                        s.push_str(&renderer.text(m));
                        match validator.validate(m) {
                            Ok(()) => s.push_str("  => valid\n"),
                            Err(e) => s.push_str(&format!(
                                "  => invalid: Result-Code {} ({})\n",
                                e.result_code,
                                e.message.as_deref().unwrap_or("")
                            )),
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
                        let validation = match validator.validate(m) {
                            Ok(()) => json!({ "valid": true }),
                            Err(e) => json!({
                                "valid": false,
                                "result_code": e.result_code.0,
                                "message": e.message,
                                "failed_avp": e.failed_avp.map(|f| json!({ "code": f.code, "vendor": f.vendor })),
                            }),
                        };
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
