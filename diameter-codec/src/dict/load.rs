//! Loading dictionary TOML (format: `dictionaries/README.md`) and resolving names.

use super::grammar::{GrammarItem, RuleKind, parse_item};
use super::{
    AppKind, ApplicationDef, AvpDef, CommandDef, Dictionary, EMBEDDED_FILES, FlagRule, Grammar,
    Rule, VendorDef,
};
use crate::avp::AvpKey;
use crate::types::DataType;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Why a dictionary cannot be built. Messages name the file and, for syntax errors, the
/// line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct DictError {
    /// The file (or source name) at fault.
    pub source_name: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    #[allow(dead_code)] // required by the format, not used at run time
    meta: Option<MetaToml>,
    #[serde(default)]
    vendor: Vec<VendorToml>,
    #[serde(default)]
    application: Vec<AppToml>,
    #[serde(default)]
    avp: Vec<AvpToml>,
    #[serde(default)]
    command: Vec<CommandToml>,
    #[serde(default)]
    extend_avp: Vec<ExtendAvpToml>,
    #[serde(default)]
    extend_command: Vec<ExtendCommandToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read for validation of the file's shape
struct MetaToml {
    title: String,
    spec: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorToml {
    id: u32,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppToml {
    id: u32,
    name: String,
    kind: String,
    #[serde(default)]
    vendor: u32,
    #[serde(default)]
    spec: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvpToml {
    name: String,
    code: u32,
    #[serde(default)]
    vendor: u32,
    #[serde(rename = "type")]
    data_type: String,
    m: String,
    v: Option<String>,
    m_send: Option<bool>,
    #[serde(default)]
    spec: String,
    values: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    open: bool,
    grammar: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandToml {
    name: String,
    request_abbrev: String,
    answer_abbrev: String,
    code: u32,
    application: u32,
    proxiable: bool,
    #[serde(default)]
    spec: String,
    request: Vec<String>,
    answer: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendAvpToml {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    spec: String,
    grammar: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendCommandToml {
    name: String,
    application: u32,
    #[serde(default)]
    #[allow(dead_code)]
    spec: String,
    #[serde(default)]
    request: Vec<String>,
    #[serde(default)]
    answer: Vec<String>,
}

/// Collects dictionary files, then resolves them into a [`Dictionary`].
#[derive(Default)]
pub struct DictionaryBuilder {
    files: Vec<(String, FileToml)>,
    errors: Vec<DictError>,
}

impl DictionaryBuilder {
    /// A builder holding the embedded files.
    pub fn with_embedded() -> Self {
        let mut b = Self::default();
        for (name, text) in EMBEDDED_FILES {
            b = b.add_toml(name, text);
        }
        b
    }

    /// Adds one TOML document; `source_name` is used in error messages.
    #[must_use]
    pub fn add_toml(mut self, source_name: &str, text: &str) -> Self {
        match toml::from_str::<FileToml>(text) {
            Ok(f) => self.files.push((source_name.to_string(), f)),
            Err(e) => self.errors.push(DictError {
                source_name: source_name.to_string(),
                message: e.to_string(),
            }),
        }
        self
    }

    /// Resolves every name and builds the dictionary.
    pub fn build(self) -> Result<Dictionary, DictError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let mut d = Dictionary::default();
        let err = |src: &str, message: String| DictError {
            source_name: src.to_string(),
            message,
        };

        // Pass 1: vendors, applications, AVP headers.
        let mut grammars: Vec<(String, Vec<String>)> = Vec::new(); // per AVP index
        for (src, f) in &self.files {
            for v in &f.vendor {
                match d.vendors.iter().find(|x| x.id == v.id) {
                    Some(x) if x.name != v.name => {
                        return Err(err(
                            src,
                            format!("vendor {} named both {:?} and {:?}", v.id, x.name, v.name),
                        ));
                    }
                    Some(_) => {}
                    None => d.vendors.push(VendorDef {
                        id: v.id,
                        name: v.name.clone(),
                    }),
                }
            }
            for a in &f.application {
                let kind = match a.kind.as_str() {
                    "auth" => AppKind::Auth,
                    "acct" => AppKind::Acct,
                    "relay" => AppKind::Relay,
                    k => {
                        return Err(err(
                            src,
                            format!("application {}: unknown kind {k:?}", a.name),
                        ));
                    }
                };
                if d.applications.iter().any(|x| x.id == a.id) {
                    return Err(err(src, format!("application {} defined twice", a.id)));
                }
                d.applications.push(ApplicationDef {
                    id: a.id,
                    name: a.name.clone(),
                    kind,
                    vendor: a.vendor,
                    spec: a.spec.clone(),
                    source: src.clone(),
                });
            }
            for a in &f.avp {
                let data_type = DataType::from_name(&a.data_type).ok_or_else(|| {
                    err(
                        src,
                        format!("AVP {}: unknown type {:?}", a.name, a.data_type),
                    )
                })?;
                let rule = |s: &str| {
                    FlagRule::from_name(s)
                        .ok_or_else(|| err(src, format!("AVP {}: bad flag rule {s:?}", a.name)))
                };
                let m = rule(&a.m)?;
                let v = match &a.v {
                    Some(s) => rule(s)?,
                    None if a.vendor != 0 => FlagRule::Must,
                    None => FlagRule::MustNot,
                };
                if a.vendor == 0 && v == FlagRule::Must {
                    return Err(err(
                        src,
                        format!("AVP {}: V must be set but there is no vendor", a.name),
                    ));
                }
                let mut values = Vec::new();
                if let Some(vals) = &a.values {
                    if data_type != DataType::Enumerated {
                        return Err(err(
                            src,
                            format!("AVP {}: values on a non-Enumerated AVP", a.name),
                        ));
                    }
                    for (name, &v) in vals {
                        // Enumerated is Integer32 on the wire; values written as unsigned
                        // 32-bit numbers (Media-Type OTHER = 0xFFFFFFFF) keep their bits.
                        let v = i32::try_from(v)
                            .or_else(|_| u32::try_from(v).map(|u| u as i32))
                            .map_err(|_| {
                                err(
                                    src,
                                    format!("AVP {}: value {name} = {v} out of range", a.name),
                                )
                            })?;
                        values.push((v, name.clone()));
                    }
                    values.sort();
                    if let Some(w) = values.windows(2).find(|w| w[0].0 == w[1].0) {
                        return Err(err(
                            src,
                            format!("AVP {}: value {} used twice", a.name, w[0].0),
                        ));
                    }
                }
                if (data_type == DataType::Grouped) != a.grammar.is_some() {
                    return Err(err(
                        src,
                        format!(
                            "AVP {}: Grouped AVPs, and only they, have a grammar",
                            a.name
                        ),
                    ));
                }
                let key = AvpKey::new(a.code, a.vendor);
                let idx = d.avps.len() as u32;
                if d.avp_index.insert(key.packed(), idx).is_some() {
                    return Err(err(
                        src,
                        format!("AVP {} ({}/{}) defined twice", a.name, a.code, a.vendor),
                    ));
                }
                if d.avp_names.insert(a.name.clone(), idx).is_some() {
                    return Err(err(src, format!("AVP name {} defined twice", a.name)));
                }
                d.avps.push(AvpDef {
                    name: a.name.clone(),
                    key,
                    data_type,
                    m,
                    v,
                    m_send: a.m_send.unwrap_or(m != FlagRule::MustNot),
                    values,
                    open: a.open,
                    grammar: None,
                    spec: a.spec.clone(),
                    source: src.clone(),
                });
                grammars.push((src.clone(), a.grammar.clone().unwrap_or_default()));
            }
        }

        // Pass 2: extensions of grouped AVPs.
        for (src, f) in &self.files {
            for x in &f.extend_avp {
                let &i = d
                    .avp_names
                    .get(&x.name)
                    .ok_or_else(|| err(src, format!("extend_avp: no AVP {}", x.name)))?;
                if d.avps[i as usize].data_type != DataType::Grouped {
                    return Err(err(src, format!("extend_avp: {} is not Grouped", x.name)));
                }
                grammars[i as usize].1.extend(x.grammar.iter().cloned());
            }
        }
        for (i, (src, items)) in grammars.iter().enumerate() {
            if d.avps[i].data_type == DataType::Grouped {
                let g = resolve(&d, items)
                    .map_err(|m| err(src, format!("AVP {}: {m}", d.avps[i].name)))?;
                d.avps[i].grammar = Some(g);
            }
        }

        // Pass 3: commands and their extensions.
        let mut cmd_items: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for (src, f) in &self.files {
            for c in &f.command {
                let k = (u64::from(c.application) << 32) | u64::from(c.code);
                let idx = d.commands.len() as u32;
                if d.command_index.insert(k, idx).is_some() {
                    return Err(err(
                        src,
                        format!(
                            "command {} ({}) defined twice for application {}",
                            c.name, c.code, c.application
                        ),
                    ));
                }
                d.command_codes.entry(c.code).or_insert(idx);
                d.commands.push(CommandDef {
                    name: c.name.clone(),
                    request_abbrev: c.request_abbrev.clone(),
                    answer_abbrev: c.answer_abbrev.clone(),
                    code: c.code,
                    application: c.application,
                    proxiable: c.proxiable,
                    request: Grammar::default(),
                    answer: Grammar::default(),
                    spec: c.spec.clone(),
                    source: src.clone(),
                });
                cmd_items.push((src.clone(), c.request.clone(), c.answer.clone()));
            }
        }
        for (src, f) in &self.files {
            for x in &f.extend_command {
                let i = d
                    .commands
                    .iter()
                    .position(|c| c.name == x.name && c.application == x.application)
                    .ok_or_else(|| {
                        err(
                            src,
                            format!(
                                "extend_command: no {} for application {}",
                                x.name, x.application
                            ),
                        )
                    })?;
                cmd_items[i].1.extend(x.request.iter().cloned());
                cmd_items[i].2.extend(x.answer.iter().cloned());
            }
        }
        for (i, (src, req, ans)) in cmd_items.iter().enumerate() {
            let name = d.commands[i].name.clone();
            let request = resolve(&d, req).map_err(|m| err(src, format!("{name} request: {m}")))?;
            let answer = resolve(&d, ans).map_err(|m| err(src, format!("{name} answer: {m}")))?;
            d.commands[i].request = request;
            d.commands[i].answer = answer;
        }
        d.checks = d.avps.iter().map(super::AvpCheck::of).collect();
        d.hot = d
            .avps
            .iter()
            .zip(&d.checks)
            .map(|(a, &c)| super::Hot::of(a, c))
            .collect();
        let hot = &d.hot;
        let grouped = d.avps.iter_mut().filter_map(|a| a.grammar.as_mut());
        let commands = d.commands.iter_mut();
        for g in grouped.chain(commands.flat_map(|c| [&mut c.request, &mut c.answer])) {
            g.index(hot);
        }
        Ok(d)
    }
}

fn resolve(d: &Dictionary, items: &[String]) -> Result<Grammar, String> {
    let mut g = Grammar::default();
    let mut fixed_done = false;
    for s in items {
        let GrammarItem {
            kind,
            min,
            max,
            name,
        } = parse_item(s)?;
        if name == "AVP" {
            g.any = true;
            continue;
        }
        let &avp = d
            .avp_names
            .get(&name)
            .ok_or_else(|| format!("unknown AVP {name}"))?;
        let key = d.avps[avp as usize].key;
        if kind == RuleKind::Fixed {
            // Only leading fixed AVPs are supported (every Diameter command puts them first).
            if fixed_done {
                return Err(format!("fixed item {s} after a non-fixed one"));
            }
            g.fixed += 1;
        } else {
            fixed_done = true;
        }
        if g.rules.iter().any(|r| r.key == key) {
            return Err(format!("{name} listed twice"));
        }
        if min > 0 {
            g.required.push(g.rules.len() as u16);
        }
        g.rules.push(Rule {
            key,
            avp,
            kind,
            min,
            max,
        });
    }
    Ok(g)
}
