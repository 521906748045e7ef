//! Text and JSON rendering of messages with dictionary names, for logs, tools and tests.
//! Rendering never fails: AVPs that are unknown, malformed or nested too deep are shown raw.

use crate::avp::{AvpIter, AvpRef};
use crate::dict::{AvpDef, Dictionary};
use crate::message::{Limits, Message};
use crate::types::{Address, AvpType, DataType, DiameterTime, DiameterUri, IpFilterRule, ty};
use serde_json::{Value, json};
use std::fmt::Write;

/// Renders with a dictionary.
#[derive(Debug, Clone, Copy)]
pub struct Renderer<'d> {
    dict: &'d Dictionary,
    max_depth: usize,
}

/// The value of one AVP as shown to people.
enum Shown {
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    Enum(i32, Option<String>),
    Hex(String),
}

fn hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Shows a string with control characters escaped, so logs cannot be forged or garbled by
/// a peer's text (bad-inputs 27), and cut at 1 KiB.
fn safe_text(s: &str) -> String {
    const MAX: usize = 1024;
    let mut out = String::with_capacity(s.len().min(MAX) + 2);
    for (i, c) in s.chars().enumerate() {
        if i >= MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default())
        } else {
            out.push(c)
        }
    }
    out
}

fn show(def: &AvpDef, data: &[u8]) -> Result<Shown, String> {
    let e = |e: crate::ValueError| e.to_string();
    Ok(match def.data_type {
        DataType::OctetString => Shown::Hex(hex(data)),
        DataType::Integer32 => Shown::Int(ty::Integer32::decode(data).map_err(e)?.into()),
        DataType::Integer64 => Shown::Int(ty::Integer64::decode(data).map_err(e)?),
        DataType::Unsigned32 => Shown::UInt(ty::Unsigned32::decode(data).map_err(e)?.into()),
        DataType::Unsigned64 => Shown::UInt(ty::Unsigned64::decode(data).map_err(e)?),
        DataType::Float32 => Shown::Float(ty::Float32::decode(data).map_err(e)?.into()),
        DataType::Float64 => Shown::Float(ty::Float64::decode(data).map_err(e)?),
        DataType::Enumerated => {
            let v = ty::Integer32::decode(data).map_err(e)?;
            Shown::Enum(v, def.value_name(v).map(str::to_string))
        }
        DataType::Time => Shown::Text(DiameterTime::parse(data).map_err(e)?.to_string()),
        DataType::Address => Shown::Text(Address::parse(data).map_err(e)?.to_string()),
        DataType::DiameterURI => Shown::Text(DiameterUri::parse(data).map_err(e)?.to_string()),
        DataType::IPFilterRule => {
            IpFilterRule::parse(data).map_err(e)?;
            Shown::Text(safe_text(std::str::from_utf8(data).unwrap_or_default()))
        }
        DataType::UTF8String | DataType::DiameterIdentity => {
            def.data_type.check(data).map_err(e)?;
            Shown::Text(safe_text(std::str::from_utf8(data).unwrap_or_default()))
        }
        DataType::Grouped => Shown::Hex(hex(data)),
    })
}

impl<'d> Renderer<'d> {
    /// A renderer over `dict`.
    pub fn new(dict: &'d Dictionary) -> Self {
        Self {
            dict,
            max_depth: Limits::DEFAULT.max_depth,
        }
    }

    /// The embedded dictionary.
    pub fn embedded() -> Renderer<'static> {
        Renderer::new(Dictionary::embedded())
    }

    /// Multi-line text: the header, then one line per AVP, indented by nesting.
    pub fn text(&self, msg: &Message) -> String {
        let h = msg.header();
        let app = self
            .dict
            .application(h.application_id)
            .map_or("", |a| a.name.as_str());
        let mut out = format!(
            "{} ({}) flags={:?} app={} ({}) hbh={:#010x} e2e={:#010x} len={}\n",
            self.dict.command_label(h),
            h.command_code,
            h.flags,
            h.application_id,
            app,
            h.hop_by_hop,
            h.end_to_end,
            h.length
        );
        self.text_seq(&mut out, msg.avps(), 1);
        out
    }

    fn text_seq(&self, out: &mut String, avps: AvpIter<'_>, depth: usize) {
        for avp in avps {
            let pad = "  ".repeat(depth);
            let avp = match avp {
                Ok(a) => a,
                Err(e) => {
                    let _ = writeln!(out, "{pad}!! {e}");
                    return;
                }
            };
            let def = self.dict.avp(avp.key());
            let name = def.map_or("Unknown", |d| d.name.as_str());
            let vendor = if avp.vendor != 0 {
                format!("/{}", avp.vendor)
            } else {
                String::new()
            };
            let _ = write!(out, "{pad}{name} ({}{vendor}) {:?}", avp.code, avp.flags);
            match def {
                Some(d) if d.data_type == DataType::Grouped && depth < self.max_depth => {
                    out.push('\n');
                    self.text_seq(out, avp.children(), depth + 1);
                }
                Some(d) => match show(d, avp.data) {
                    Ok(Shown::Int(v)) => {
                        let _ = writeln!(out, " = {v}");
                    }
                    Ok(Shown::UInt(v)) => {
                        let _ = writeln!(out, " = {v}");
                    }
                    Ok(Shown::Float(v)) => {
                        let _ = writeln!(out, " = {v}");
                    }
                    Ok(Shown::Text(s)) => {
                        let _ = writeln!(out, " = {s:?}");
                    }
                    Ok(Shown::Enum(v, n)) => {
                        let _ = writeln!(out, " = {} ({v})", n.as_deref().unwrap_or("?"));
                    }
                    Ok(Shown::Hex(h)) => {
                        let _ = writeln!(out, " = 0x{h}{}", printable_suffix(avp.data));
                    }
                    Err(e) => {
                        let _ = writeln!(out, " = 0x{} !! {e}", hex(avp.data));
                    }
                },
                None => {
                    let _ = writeln!(out, " = 0x{}", hex(avp.data));
                }
            }
        }
    }

    /// JSON: `{"header": {...}, "avps": [{code, vendor, flags, name, type, value | avps}]}`.
    pub fn json(&self, msg: &Message) -> Value {
        let h = msg.header();
        json!({
            "header": {
                "version": h.version,
                "length": h.length,
                "flags": {
                    "request": h.flags.is_request(),
                    "proxiable": h.flags.is_proxiable(),
                    "error": h.flags.is_error(),
                    "retransmit": h.flags.is_retransmit(),
                },
                "command_code": h.command_code,
                "command": self.dict.command_label(h),
                "application_id": h.application_id,
                "application": self.dict.application(h.application_id).map(|a| a.name.clone()),
                "hop_by_hop": h.hop_by_hop,
                "end_to_end": h.end_to_end,
            },
            "avps": self.json_seq(msg.avps(), 1),
        })
    }

    fn json_seq(&self, avps: AvpIter<'_>, depth: usize) -> Value {
        let mut list = Vec::new();
        for avp in avps {
            match avp {
                Ok(a) => list.push(self.json_avp(&a, depth)),
                Err(e) => {
                    list.push(json!({ "error": e.to_string(), "offset": e.offset }));
                    break;
                }
            }
        }
        Value::Array(list)
    }

    fn json_avp(&self, avp: &AvpRef<'_>, depth: usize) -> Value {
        let def = self.dict.avp(avp.key());
        let mut o = serde_json::Map::new();
        o.insert("code".into(), json!(avp.code));
        o.insert("vendor".into(), json!(avp.vendor));
        o.insert(
            "flags".into(),
            json!({ "vendor": avp.flags.vendor(), "mandatory": avp.flags.mandatory(), "protected": avp.flags.protected() }),
        );
        o.insert("name".into(), def.map_or(Value::Null, |d| json!(d.name)));
        o.insert(
            "type".into(),
            def.map_or(Value::Null, |d| json!(d.data_type.name())),
        );
        match def {
            Some(d) if d.data_type == DataType::Grouped && depth < self.max_depth => {
                o.insert("avps".into(), self.json_seq(avp.children(), depth + 1));
            }
            Some(d) => match show(d, avp.data) {
                Ok(Shown::Int(v)) => {
                    o.insert("value".into(), json!(v));
                }
                Ok(Shown::UInt(v)) => {
                    o.insert("value".into(), json!(v));
                }
                Ok(Shown::Float(v)) => {
                    o.insert("value".into(), json!(v));
                }
                Ok(Shown::Text(s)) => {
                    o.insert("value".into(), json!(s));
                }
                Ok(Shown::Enum(v, n)) => {
                    o.insert("value".into(), json!(v));
                    o.insert("enum".into(), json!(n));
                }
                Ok(Shown::Hex(h)) => {
                    o.insert("value".into(), json!(h));
                }
                Err(e) => {
                    o.insert("data".into(), json!(hex(avp.data)));
                    o.insert("error".into(), json!(e));
                }
            },
            None => {
                o.insert("data".into(), json!(hex(avp.data)));
            }
        }
        Value::Object(o)
    }
}

fn printable_suffix(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| !c.is_control()) => {
            format!(" ({:?})", safe_text(s))
        }
        _ => String::new(),
    }
}
