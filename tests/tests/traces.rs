//! Every Diameter message of the third-party captures in `../shared/traces` (Open5GS, Magma,
//! Kamailio, freeDiameter, commercial charging equipment: Gx, Gy, Rx, S6a, Cx and base
//! messages) decoded with our codec and dictionary and compared with tshark's dissection:
//!
//! - the bytes tshark shows for each message decode as one message with the same command code,
//!   Application-Id and R bit;
//! - the command is named as tshark names it;
//! - the AVP tree has the same shape (same number of AVPs at every level, same code and
//!   Vendor-Id, Grouped for both or for neither), every AVP is named as tshark names it, and
//!   the value field tshark shows covers exactly our payload;
//! - the value is the same for integer, enumerated, float, string, address and time types,
//!   compared as values (numbers as numbers, addresses as IP addresses, times as UTC dates);
//!   OctetString values as bytes, or as text where tshark shows them as text.
//!
//! Where tshark's (Wireshark 4.0) dictionary names something differently from the
//! specification we follow the specification; each such difference is listed in
//! [`COMMAND_NAMES`] or [`AVP_NAMES`] with its reason, and nothing else is accepted.
//!
//! Without the traces folder the test prints a `SKIP` line and passes. Without `tshark` it
//! does the same, unless `DIAMETER_REQUIRE_TSHARK=1` (CI sets it), where it fails.

use bytes::Bytes;
use diameter_codec::dict::AvpDef;
use diameter_codec::types::{Address, DiameterTime, ty};
use diameter_codec::{
    AvpIter, AvpType, DataType, Dictionary, Limits, Message, ValidateOptions, Validator,
};
use e2e_tests::{
    TsharkAvp, trace_files, trace_messages, traces_dir, tshark_available, tshark_version,
};
use std::collections::BTreeMap;

/// A name tshark gives that differs from the specification's, with the reason.
struct Renamed {
    ours: &'static str,
    tshark: &'static str,
    why: &'static str,
}

const S6A_COMMANDS: &str = "TS 29.272 §7.2 names the S6a/S6d and S13 commands without a prefix \
     (Update-Location-Request, ...); Wireshark's dictionary.xml follows the IANA registry \
     entries of RFC 5516, which prefix them with 3GPP-.";

/// Command names that differ (ours from the specification, tshark's from its dictionary).
const COMMAND_NAMES: &[Renamed] = &[
    Renamed {
        ours: "Update-Location",
        tshark: "3GPP-Update-Location",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "Cancel-Location",
        tshark: "3GPP-Cancel-Location",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "Authentication-Information",
        tshark: "3GPP-Authentication-Information",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "Insert-Subscriber-Data",
        tshark: "3GPP-Insert-Subscriber-Data",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "Delete-Subscriber-Data",
        tshark: "3GPP-Delete-Subscriber-Data",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "Purge-UE",
        tshark: "3GPP-Purge-UE",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "Reset",
        tshark: "3GPP-Reset",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "Notify",
        tshark: "3GPP-Notify",
        why: S6A_COMMANDS,
    },
    Renamed {
        ours: "ME-Identity-Check",
        tshark: "3GPP-ME-Identity-Check",
        why: S6A_COMMANDS,
    },
];

const CX_SIP: &str = "TS 29.229 §6.3.8-§6.3.14 names these SIP-*; Wireshark's TGPP.xml prefixes \
     3GPP- to keep them apart from the RFC 4740 SIP-* AVPs (370-390) of its sip.xml.";

/// AVP names that differ.
const AVP_NAMES: &[Renamed] = &[
    Renamed {
        ours: "User-Data",
        tshark: "Cx-User-Data",
        why: "TS 29.229 §6.3.7 names AVP 606 User-Data; Wireshark renames it to keep it apart \
              from the Sh User-Data (702, TS 29.329).",
    },
    Renamed {
        ours: "SIP-Number-Auth-Items",
        tshark: "3GPP-SIP-Number-Auth-Items",
        why: CX_SIP,
    },
    Renamed {
        ours: "SIP-Authentication-Scheme",
        tshark: "3GPP-SIP-Authentication-Scheme",
        why: CX_SIP,
    },
    Renamed {
        ours: "SIP-Authenticate",
        tshark: "3GPP-SIP-Authenticate",
        why: CX_SIP,
    },
    Renamed {
        ours: "SIP-Authorization",
        tshark: "3GPP-SIP-Authorization",
        why: CX_SIP,
    },
    Renamed {
        ours: "SIP-Auth-Data-Item",
        tshark: "3GPP-SIP-Auth-Data-Item",
        why: CX_SIP,
    },
    Renamed {
        ours: "SIP-Item-Number",
        tshark: "3GPP-SIP-Item-Number",
        why: CX_SIP,
    },
    Renamed {
        ours: "Reporting-Reason",
        tshark: "3GPP-Reporting-Reason",
        why: "TS 32.299 names AVP 872 Reporting-Reason; Wireshark's TGPP.xml prefixes 3GPP-.",
    },
];

fn renamed<'a>(list: &'a [Renamed], ours: &str, tshark: &str) -> Option<&'a Renamed> {
    list.iter().find(|r| r.ours == ours && r.tshark == tshark)
}

// ---------------------------------------------------------------------------------------------
// The comparison.
// ---------------------------------------------------------------------------------------------

struct Compare<'a> {
    dict: &'a Dictionary,
    /// "file frame N[#i] CMD" of the message being compared.
    label: String,
    problems: Vec<String>,
    avps: usize,
    values: usize,
    /// Renamed entries used, by tshark name.
    used: BTreeMap<&'static str, usize>,
}

impl Compare<'_> {
    fn problem(&mut self, path: &str, detail: String) {
        self.problems
            .push(format!("{} {path}: {detail}", self.label));
    }

    fn avps(&mut self, path: &str, ours: AvpIter<'_>, theirs: &[TsharkAvp]) {
        let ours: Vec<_> = match ours.collect::<Result<Vec<_>, _>>() {
            Ok(v) => v,
            Err(e) => return self.problem(path, format!("our AVPs do not frame: {e}")),
        };
        if ours.len() != theirs.len() {
            self.problem(
                path,
                format!("{} AVPs ours, {} tshark", ours.len(), theirs.len()),
            );
        }
        for (a, t) in ours.iter().zip(theirs) {
            self.avps += 1;
            let def = self.dict.avp(a.key());
            let name = def.map_or("Unknown", |d| d.name.as_str());
            let here = format!("{path}/{name}");
            if (a.code, a.vendor) != (t.code, t.vendor) {
                self.problem(
                    &here,
                    format!(
                        "ours code {} vendor {}, tshark code {} vendor {} ({})",
                        a.code, a.vendor, t.code, t.vendor, t.name
                    ),
                );
                continue;
            }
            if name != t.name {
                match renamed(AVP_NAMES, name, &t.name) {
                    Some(r) => *self.used.entry(r.tshark).or_default() += 1,
                    None => self.problem(&here, format!("tshark names it {:?}", t.name)),
                }
            }
            let Some(value) = &t.value else {
                if !a.data.is_empty() {
                    self.problem(&here, "tshark shows no value".into());
                }
                continue;
            };
            if value.bytes != a.data {
                self.problem(
                    &here,
                    format!(
                        "tshark's value field {} covers other bytes: {}",
                        value.field,
                        hex::encode(&value.bytes)
                    ),
                );
                continue;
            }
            let Some(def) = def else {
                // Unknown to both: code, vendor and bytes compared above.
                continue;
            };
            match (def.data_type == DataType::Grouped, t.children.is_empty()) {
                (true, false) => self.avps(&here, a.children(), &t.children),
                (true, true) if a.data.is_empty() => {}
                (true, true) => self.problem(&here, "Grouped for us, not for tshark".into()),
                (false, false) => self.problem(&here, "Grouped for tshark, not for us".into()),
                (false, true) => {
                    self.values += 1;
                    if let Err(e) = value_matches(def, a.data, &value.show, &value.parts) {
                        self.problem(&here, e);
                    }
                }
            }
        }
    }
}

/// Whether tshark's `show` text (and sub-fields) says the same as our decoding of `data`.
fn value_matches(
    def: &AvpDef,
    data: &[u8],
    show: &str,
    parts: &[(String, String)],
) -> Result<(), String> {
    let differ = |ours: &dyn std::fmt::Display| {
        Err(format!(
            "ours {ours} ({}), tshark {show:?}",
            def.data_type.name()
        ))
    };
    let theirs_int = || -> Option<i128> {
        match show.strip_prefix("0x") {
            Some(h) => i128::from_str_radix(h, 16).ok(),
            None => show.parse().ok(),
        }
    };
    let e = |e: diameter_codec::ValueError| e.to_string();
    match def.data_type {
        DataType::Integer32 | DataType::Enumerated => {
            let ours = i128::from(ty::Integer32::decode(data).map_err(e)?);
            if theirs_int() != Some(ours) {
                return differ(&ours);
            }
        }
        DataType::Integer64 => {
            let ours = i128::from(ty::Integer64::decode(data).map_err(e)?);
            if theirs_int() != Some(ours) {
                return differ(&ours);
            }
        }
        DataType::Unsigned32 => {
            let ours = i128::from(ty::Unsigned32::decode(data).map_err(e)?);
            if theirs_int() != Some(ours) {
                return differ(&ours);
            }
        }
        DataType::Unsigned64 => {
            let ours = i128::from(ty::Unsigned64::decode(data).map_err(e)?);
            if theirs_int() != Some(ours) {
                return differ(&ours);
            }
        }
        DataType::Float32 => {
            let ours = f64::from(ty::Float32::decode(data).map_err(e)?);
            if show.parse::<f64>().ok() != Some(ours) {
                return differ(&ours);
            }
        }
        DataType::Float64 => {
            let ours = ty::Float64::decode(data).map_err(e)?;
            if show.parse::<f64>().ok() != Some(ours) {
                return differ(&ours);
            }
        }
        DataType::UTF8String
        | DataType::DiameterIdentity
        | DataType::DiameterURI
        | DataType::IPFilterRule => {
            let ours = std::str::from_utf8(data).map_err(|e| e.to_string())?;
            if ours != show {
                return differ(&format!("{ours:?}"));
            }
        }
        DataType::OctetString => {
            // tshark shows bytes as colon-separated hex, except where its dictionary has a
            // text type (OctetStringOrUTF8, UTF8String): then as the text, which it ends at
            // the first NUL (Kamailio's Codec-Data, TS 29.214 §5.3.7, ends in one). The bytes
            // themselves were compared whole before.
            let same = match colon_hex(show) {
                Some(b) => b == data,
                None => {
                    let text = data.split(|&b| b == 0).next().unwrap_or_default();
                    String::from_utf8_lossy(text) == show
                }
            };
            if !same {
                return differ(&hex::encode(data));
            }
        }
        DataType::Address => {
            // tshark shows the whole payload as hex and the address in a sub-field
            // (`NAME.IPv4` / `NAME.IPv6`).
            let addr = Address::parse(data).map_err(e)?;
            let shown_ip = parts
                .iter()
                .find(|(n, _)| n.ends_with(".IPv4") || n.ends_with(".IPv6"))
                .map(|(_, s)| s.as_str());
            match (addr.ip(), shown_ip) {
                (Some(ip), Some(s)) if s.parse::<std::net::IpAddr>().ok() == Some(ip) => {}
                (Some(ip), _) => return differ(&ip),
                (None, _) if colon_hex(show).is_some_and(|b| b == data) => {}
                (None, _) => return differ(&hex::encode(data)),
            }
        }
        DataType::Time => {
            let ours = utc_text(DiameterTime::parse(data).map_err(e)?.to_unix());
            if ours != show {
                return differ(&ours);
            }
        }
        DataType::Grouped => {}
    }
    Ok(())
}

/// `"0a:1b:ff"` → bytes; `""` (an empty payload) → no bytes.
fn colon_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(':')
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect()
}

/// A Unix time as tshark prints an absolute UTC time: `May  5, 2021 20:29:58.000000000 UTC`.
fn utc_text(unix: i64) -> String {
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {day:>2}, {year} {:02}:{:02}:{:02}.000000000 UTC",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[test]
fn utc_text_matches_tshark_format() {
    assert_eq!(utc_text(0), "Jan  1, 1970 00:00:00.000000000 UTC");
    // 2021-05-05 20:29:58 UTC, as tshark shows an Event-Timestamp of the Magma captures.
    assert_eq!(
        utc_text(1_620_246_598),
        "May  5, 2021 20:29:58.000000000 UTC"
    );
    assert_eq!(utc_text(951_782_400), "Feb 29, 2000 00:00:00.000000000 UTC");
}

#[test]
fn every_trace_message_is_named_and_valued_as_tshark_does() {
    let Some(dir) = traces_dir() else {
        println!("SKIP: no traces folder (../shared/traces)");
        return;
    };
    if !tshark_available() {
        let required = std::env::var("DIAMETER_REQUIRE_TSHARK").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "DIAMETER_REQUIRE_TSHARK=1 but tshark was not found on PATH"
        );
        println!("SKIP: tshark not found");
        return;
    }
    let dict = Dictionary::embedded();
    let validator = Validator::new(dict, ValidateOptions::default());
    let files = trace_files(&dir);
    assert!(!files.is_empty(), "no captures in {}", dir.display());

    let mut problems = Vec::new();
    let mut used: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut per_command: BTreeMap<String, usize> = BTreeMap::new();
    let mut invalid: BTreeMap<String, usize> = BTreeMap::new();
    let (mut messages, mut avps, mut values) = (0usize, 0usize, 0usize);
    for file in &files {
        let short = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let trace = trace_messages(file).unwrap_or_else(|e| panic!("{short}: {e}"));
        for m in &trace {
            messages += 1;
            let t = &m.tshark;
            let mut cmp = Compare {
                dict,
                label: format!("{short} frame {}#{} {}", m.frame, m.index, t.command),
                problems: Vec::new(),
                avps: 0,
                values: 0,
                used: BTreeMap::new(),
            };
            let msg = match Message::decode(Bytes::from(m.bytes.clone()), &Limits::DEFAULT) {
                Ok(msg) => msg,
                Err(e) => {
                    cmp.problem("", format!("does not decode: {e}"));
                    problems.append(&mut cmp.problems);
                    continue;
                }
            };
            let h = msg.header();
            if (h.command_code, h.application_id, h.is_request())
                != (t.code, t.application, t.request)
            {
                cmp.problem(
                    "header",
                    format!(
                        "ours {}/{}/{}, tshark {}/{}/{}",
                        h.command_code,
                        h.application_id,
                        h.is_request(),
                        t.code,
                        t.application,
                        t.request
                    ),
                );
            }
            let command = dict
                .command(h.command_code, h.application_id)
                .or_else(|| dict.any_command(h.command_code));
            match command {
                None => cmp.problem("", "no command in our dictionary".into()),
                Some(c) if c.name == t.command => {}
                Some(c) => match renamed(COMMAND_NAMES, &c.name, &t.command) {
                    Some(r) => *used.entry(r.tshark).or_default() += 1,
                    None => cmp.problem("", format!("we name the command {:?}", c.name)),
                },
            }
            *per_command.entry(dict.command_label(h)).or_default() += 1;
            cmp.avps("", msg.avps(), &t.avps);
            avps += cmp.avps;
            values += cmp.values;
            for (k, v) in cmp.used {
                *used.entry(k).or_default() += v;
            }
            problems.append(&mut cmp.problems);
            // Informational: what our validator says of third-party traffic.
            if let Err(e) = validator.validate(&msg) {
                let key = format!(
                    "{} {}: {} {}",
                    dict.command_label(h),
                    e.result_code.0,
                    e.message.as_deref().unwrap_or(""),
                    e.failed_avp
                        .map(|f| format!("(AVP {}/{})", f.code, f.vendor))
                        .unwrap_or_default()
                );
                *invalid.entry(key).or_default() += 1;
            }
        }
    }

    println!(
        "{messages} messages in {} captures, {avps} AVPs compared by name, {values} by value, with {}",
        files.len(),
        tshark_version()
    );
    println!("messages per command: {per_command:?}");
    for r in COMMAND_NAMES.iter().chain(AVP_NAMES) {
        if let Some(n) = used.get(r.tshark) {
            println!(
                "named after the spec, not tshark: {} (tshark {}) x{n} — {}",
                r.ours, r.tshark, r.why
            );
        }
    }
    if !invalid.is_empty() {
        println!("our validator rejects (informational, third-party traffic): {invalid:#?}");
    }
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(80).map(String::as_str).collect();
        panic!(
            "{} disagreement(s) with tshark:\n{}",
            problems.len(),
            shown.join("\n")
        );
    }
}
