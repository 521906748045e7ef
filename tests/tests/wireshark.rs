//! Agreement with Wireshark's Diameter dissector, an implementation nobody here wrote.
//!
//! Every golden vector (`diameter-codec/tests/vectors/*.hex`) and a few hundred messages from a
//! seeded generator are written into one pcap (Ethernet + IPv4 + TCP, server port 3868, one
//! message per frame), decoded by `tshark -T json -x`, and compared message by message:
//!
//! - no `_ws.malformed` and no expert info of severity error anywhere in the packet;
//! - the same header (command, application, flags, identifiers, length);
//! - the same AVP tree, in the same order: code, Vendor-Id, flags, length and the raw bytes of
//!   every AVP, the value for integer and string types (compared by value), and the same
//!   nesting for Grouped AVPs. AVPs Wireshark's dictionary lacks (our vendor 32473) are shown
//!   by it as unknown and compared by code, vendor, length and bytes only.
//!
//! Where our dictionary and Wireshark's genuinely disagree the difference is listed in
//! [`ALLOWED`] with the reason; anything else fails the test.
//!
//! What this comparison cannot see: tshark does not check AVP flag rules against its
//! dictionary, so the M-bit disagreements between our dictionary and Wireshark's XML (for
//! example the TS 29.061 `3GPP-*` AVPs, which Wireshark's TGPP.xml marks `mandatory="must"`
//! while we accept either and send M clear — protocol.md §14 item 2 [D]; and many TS 29.212 /
//! 29.214 AVPs we mark M `mustnot` where the XML says `must` or `may`) never show up here.
//! Types do: a type disagreement shows as a value that tshark renders differently.
//!
//! Without `tshark` the test prints `SKIP: tshark not found` and passes, unless
//! `DIAMETER_REQUIRE_TSHARK=1` (CI sets it).

use bytes::Bytes;
use diameter_codec::dict::{AvpDef, CommandDef, FlagRule, Grammar};
use diameter_codec::{
    AvpIter, AvpValue, CommandFlags, DataType, Dictionary, Message, MessageBuilder, OwnedAvp,
    validate,
};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How many generated messages go into the capture besides the golden vectors.
const GENERATED: usize = 300;
/// Seed of the generator: the messages are the same on every run.
const SEED: u64 = 0x00d1_a3e7_e45e_ed01;

// ---------------------------------------------------------------------------------------------
// Known disagreements between our dictionary and Wireshark's (4.0, dictionary.xml + TGPP.xml).
// ---------------------------------------------------------------------------------------------

/// What kind of difference a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// tshark marked the packet malformed.
    Malformed,
    /// tshark raised an expert info of severity error.
    ExpertError,
    /// Header fields differ.
    Header,
    /// Different number of AVPs at one level of the tree.
    AvpCount,
    /// Code, vendor, flags, length or raw bytes differ.
    AvpHeader,
    /// One dictionary has the AVP as Grouped, the other does not.
    Grouping,
    /// The decoded value differs (or Wireshark decodes it as another type).
    Value,
    /// The frame did not decode as one Diameter message at all.
    Missing,
}

/// A documented, accepted disagreement: an AVP (by our dictionary name) and the kind of
/// difference, with the reason.
struct Allowed {
    avp: &'static str,
    kind: Kind,
    why: &'static str,
}

/// Every accepted disagreement. Each entry names the AVP and says who is right and why.
const ALLOWED: &[Allowed] = &[Allowed {
    avp: "3GPP-Charging-Id",
    kind: Kind::Value,
    why: "TS 29.061 §16.4.7 is inconsistent about the type (protocol.md §6). We follow \
          freeDiameter and ergw_aaa (Unsigned32, 4 octets, as seen in captures); Wireshark's \
          TGPP.xml says OctetStringOrUTF8 and shows the same 4 bytes as hex. The bytes agree.",
}];

// ---------------------------------------------------------------------------------------------
// The messages.
// ---------------------------------------------------------------------------------------------

struct Sample {
    label: String,
    bytes: Bytes,
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../diameter-codec/tests/vectors")
}

fn golden_samples() -> Vec<Sample> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("golden vectors directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no golden vectors in {}",
        vectors_dir().display()
    );
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read vector");
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            Sample {
                label: format!("golden {name}"),
                bytes: Bytes::from(diameter_codec::hex_text::parse(&text).expect("hex")),
            }
        })
        .collect()
}

/// splitmix64: small, seedable, good enough to pick test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const HOSTS: &[&str] = &[
    "pcef1.example.net",
    "pcrf1.example.net",
    "ocs1.example.net",
    "dra1.example.net",
    "af1.example.net",
];
const REALMS: &[&str] = &[
    "epc.mnc001.mcc001.3gppnetwork.org",
    "epc.mnc002.mcc002.3gppnetwork.org",
    "ims.mnc001.mcc001.3gppnetwork.org",
];
const WORDS: &[&str] = &[
    "internet", "ims", "video", "rule", "gold", "silver", "bronze", "portal", "voice", "data",
];
const FILTERS: &[&str] = &[
    "permit out 17 from 192.0.2.10 5060 to 192.0.2.20 5060",
    "permit in 6 from assigned to 192.0.2.80 443",
    "permit out ip from any to assigned",
    "permit out 17 from 2001:db8::1 49000-49010 to 2001:db8::2",
    "deny in ip from assigned to 198.51.100.0/24",
];
const URIS: &[&str] = &[
    "aaa://ocs1.example.net:3868;transport=tcp",
    "aaa://ccf.example.net",
    "aaas://ocs2.example.net:5658",
];
/// Grouped AVPs the generator leaves out: Failed-AVP (`1*{AVP}` — its content is a copy of
/// another AVP, which a random generator cannot choose meaningfully) and E2E-Sequence.
const SKIP: &[&str] = &["Failed-AVP", "E2E-Sequence"];

/// Builds random messages that are valid per our dictionary: every required AVP of the
/// command grammar, random optional ones, values valid for their data type (and, for
/// structured OctetStrings, for their specification), Grouped AVPs nested per their grammars.
struct Generator<'d> {
    dict: &'d Dictionary,
    rng: Rng,
    commands: Vec<&'d CommandDef>,
    serial: u32,
}

impl<'d> Generator<'d> {
    fn new(dict: &'d Dictionary, seed: u64) -> Self {
        // Base, Gy (DCCA), Gx, Rx and S9 commands.
        let apps = [0, 4, 16_777_238, 16_777_236, 16_777_267];
        let commands = dict
            .commands()
            .iter()
            .filter(|c| apps.contains(&c.application))
            .collect();
        Self {
            dict,
            rng: Rng(seed),
            commands,
            serial: 0,
        }
    }

    /// The Application-Id a command travels with. Base session commands (RAR, STR, ASR) are
    /// sent on Gy; ACR on base accounting (3).
    fn header_app(cmd: &CommandDef) -> u32 {
        match (cmd.application, cmd.code) {
            (0, 258 | 274 | 275) => 4,
            (0, 271) => 3,
            (app, _) => app,
        }
    }

    fn message(&mut self) -> Sample {
        loop {
            self.serial += 1;
            let cmd = *self.rng.pick(&self.commands);
            let request = self.rng.chance(50);
            let mut b = MessageBuilder::request(cmd.code, Self::header_app(cmd), cmd.proxiable)
                .ids(0x4000_0000 | self.serial, 0x2000_0000 | self.serial);
            if !request {
                b.flags = CommandFlags(b.flags.0 & !CommandFlags::REQUEST);
            }
            let grammar = if request { &cmd.request } else { &cmd.answer };
            b.avps = self.fill(grammar, 1);
            let bytes = b.to_bytes();
            if bytes.len() > 16_000 {
                continue;
            }
            let label = format!(
                "generated #{} {} ({}, app {})",
                self.serial,
                if request {
                    &cmd.request_abbrev
                } else {
                    &cmd.answer_abbrev
                },
                cmd.name,
                Self::header_app(cmd)
            );
            return Sample { label, bytes };
        }
    }

    fn fill(&mut self, g: &Grammar, depth: usize) -> Vec<OwnedAvp> {
        let mut out = Vec::new();
        for rule in &g.rules {
            let def = self.dict.avp_at(rule.avp);
            if SKIP.contains(&def.name.as_str()) && rule.min == 0 {
                continue;
            }
            let optional_percent = match depth {
                1 => 40,
                2 => 35,
                3 => 25,
                _ => 10,
            };
            let mut n = if rule.min > 0 {
                rule.min
            } else if self.rng.chance(optional_percent) {
                1
            } else {
                0
            };
            if n > 0 && rule.max > n && self.rng.chance(25) {
                n += 1;
            }
            for _ in 0..n.min(rule.max) {
                out.push(self.avp(def, depth));
            }
        }
        out
    }

    fn avp(&mut self, def: &AvpDef, depth: usize) -> OwnedAvp {
        let mandatory = match def.m {
            FlagRule::Must => true,
            FlagRule::MustNot => false,
            FlagRule::May => self.rng.chance(50),
        };
        let value = match def.data_type {
            DataType::Grouped if def.name == "User-Equipment-Info" => self.user_equipment_info(),
            DataType::Grouped => AvpValue::Grouped(
                def.grammar
                    .as_ref()
                    .map(|g| self.fill(g, depth + 1))
                    .unwrap_or_default(),
            ),
            _ => self.value(def),
        };
        OwnedAvp::new(
            def.key.code,
            def.key.vendor,
            if mandatory { 0x40 } else { 0 },
            value,
        )
    }

    /// User-Equipment-Info (RFC 8506 §8.49): the value's format follows the type, IMEISV as 16
    /// ASCII digits or 8 BCD octets, MAC as 6 octets, (modified) EUI-64 as 8 octets.
    fn user_equipment_info(&mut self) -> AvpValue {
        let kind = self.rng.below(5);
        let (ty, value) = match kind {
            0 => (0, self.digits(16).into_bytes()),
            1 => (0, vec![0x53, 0x96, 0x19, 0x10, 0x00, 0x21, 0x03, 0x10]),
            2 => (1, vec![0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]),
            3 => (2, vec![0x02, 0x00, 0x5e, 0xff, 0xfe, 0x10, 0x00, 0x01]),
            _ => (3, vec![0x00, 0x00, 0x5e, 0xff, 0xfe, 0x10, 0x00, 0x01]),
        };
        let dict = self.dict;
        let member = |name: &str| {
            dict.avp_by_name(name)
                .expect("User-Equipment-Info member")
                .key
        };
        let (t, v) = (
            member("User-Equipment-Info-Type"),
            member("User-Equipment-Info-Value"),
        );
        AvpValue::Grouped(vec![
            OwnedAvp::new(t.code, t.vendor, 0, AvpValue::I32(ty)),
            OwnedAvp::new(v.code, v.vendor, 0, AvpValue::Bytes(Bytes::from(value))),
        ])
    }

    fn ipv4(&mut self) -> [u8; 4] {
        [192, 0, 2, 1 + self.rng.below(250) as u8]
    }

    fn ipv6(&mut self) -> [u8; 16] {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            self.rng.below(16) as u16,
            0,
            0,
            0,
            1 + self.rng.below(0xfffe) as u16,
        )
        .octets()
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.rng.below(10) as u8))
            .collect()
    }

    fn text(&mut self) -> String {
        let a = *self.rng.pick(WORDS);
        let b = *self.rng.pick(WORDS);
        format!("{a}-{b}-{}", self.rng.below(1000))
    }

    /// 3GPP-User-Location-Info / the ULI of TS 29.061 §16.4.7.2: CGI, SAI, RAI, TAI, ECGI or
    /// TAI+ECGI with MCC 001 / MNC 01.
    fn uli(&mut self) -> Vec<u8> {
        let plmn = [0x00, 0xf1, 0x10];
        let mut v = Vec::new();
        match self.rng.below(6) {
            0 => v.extend([0u8].iter().chain(&plmn).chain(&[0x00, 0x2a, 0x12, 0x34])), // CGI
            1 => v.extend([1u8].iter().chain(&plmn).chain(&[0x00, 0x2a, 0x01, 0x02])), // SAI
            2 => v.extend([2u8].iter().chain(&plmn).chain(&[0x00, 0x2a, 0x07, 0xff])), // RAI
            3 => v.extend([128u8].iter().chain(&plmn).chain(&[0x00, 0x01])),           // TAI
            4 => v.extend([129u8].iter().chain(&plmn).chain(&[0x00, 0x00, 0x01, 0x01])), // ECGI
            _ => v.extend(
                [130u8]
                    .iter()
                    .chain(&plmn)
                    .chain(&[0x00, 0x01])
                    .chain(&plmn)
                    .chain(&[0x00, 0x00, 0x01, 0x01]),
            ),
        }
        v
    }

    /// Values for AVPs whose content is specified beyond their data type and which
    /// Wireshark dissects further.
    fn special(&mut self, name: &str) -> Option<AvpValue> {
        let b = |v: Vec<u8>| Some(AvpValue::Bytes(Bytes::from(v)));
        let s = |v: String| Some(AvpValue::Bytes(Bytes::from(v)));
        match name {
            "Session-Id" => s(format!(
                "{};{};{}",
                self.rng.pick(HOSTS),
                self.rng.below(100_000),
                self.serial
            )),
            "Origin-Host"
            | "Destination-Host"
            | "Proxy-Host"
            | "Error-Reporting-Host"
            | "Route-Record"
            | "TDF-Destination-Host"
            | "Home-OCS-Primary"
            | "Home-OCS-Secondary"
            | "PCRF-Address" => s(self.rng.pick(HOSTS).to_string()),
            "Origin-Realm" | "Destination-Realm" | "TDF-Destination-Realm" => {
                s(self.rng.pick(REALMS).to_string())
            }
            "Result-Code" => Some(AvpValue::U32(
                *self.rng.pick(&[2001, 2002, 4010, 4012, 5003, 5030, 5031]),
            )),
            "Experimental-Result-Code" => Some(AvpValue::U32(
                *self.rng.pick(&[2001, 4141, 5065, 5142, 5143, 5144]),
            )),
            "Auth-Application-Id" => Some(AvpValue::U32(
                *self.rng.pick(&[4, 16_777_236, 16_777_238, 16_777_267]),
            )),
            "Acct-Application-Id" => Some(AvpValue::U32(3)),
            "Vendor-Id" | "Supported-Vendor-Id" => {
                Some(AvpValue::U32(*self.rng.pick(&[0, 10415, 32473])))
            }
            "Framed-IP-Address" | "Framed-IP-Netmask" | "3GPP-SGSN-Address"
            | "3GPP-GGSN-Address" | "3GPP-CG-Address" => b(self.ipv4().to_vec()),
            "3GPP-SGSN-Ipv6-Address"
            | "3GPP-GGSN-Ipv6-Address"
            | "3GPP-CG-Ipv6-Address"
            | "3GPP-Ipv6-DNS-Servers" => b(self.ipv6().to_vec()),
            // RFC 3162 §2.3: reserved, prefix length, prefix.
            "Framed-IPv6-Prefix" | "UE-Local-IPv6-Prefix" => {
                let mut v = vec![0, 64];
                v.extend_from_slice(&self.ipv6()[..8]);
                b(v)
            }
            "3GPP-User-Location-Info" => b(self.uli()),
            "3GPP-MS-TimeZone" => b(vec![0x40, self.rng.below(3) as u8]),
            // TS 29.061 §16.4.7.2: one octet, the RAT Type of TS 29.274.
            "3GPP-RAT-Type" => b(vec![*self.rng.pick(&[1u8, 2, 6])]),
            "3GPP-NSAPI" => s(format!("{:x}", 5 + self.rng.below(11))),
            "3GPP-Session-Stop-Indicator" => b(vec![0xff]),
            "3GPP-Negotiated-DSCP" | "3GPP-Allocate-IP-Type" => b(vec![self.rng.below(4) as u8]),
            "3GPP-IMEISV" => s(self.digits(16)),
            "3GPP-IMSI" | "Subscription-Id-Data" => s(format!("00101{}", self.digits(10))),
            "3GPP-IMSI-MCC-MNC" | "3GPP-GGSN-MCC-MNC" | "3GPP-SGSN-MCC-MNC" => {
                s("00101".to_string())
            }
            "3GPP-Selection-Mode" => s(self.rng.below(3).to_string()),
            "3GPP-Charging-Characteristics" => s("0800".to_string()),
            "Called-Station-Id" => s(self.rng.pick(&["internet", "ims", "mms"]).to_string()),
            "Bearer-Identifier" => b(vec![5 + self.rng.below(11) as u8]),
            "ToS-Traffic-Class" => b(vec![0x28, 0xff]),
            "Flow-Label" => b(vec![0x00, 0x12, 0x34]),
            "Security-Parameter-Index" => b(vec![0x00, 0x00, 0x10, 0x01]),
            // TS 29.212 §5.3.106: protocol type (S1AP 1, cause type 0 radio network), cause.
            "RAN-NAS-Release-Cause" => b(vec![0x10, 0x05]),
            // TS 29.212 §5.3.109: octets 9 onwards of the TS 29.274 §8.108 Presence Reporting
            // Area Action IE — here one TAI (MCC 001 / MNC 01, TAC 1).
            "Presence-Reporting-Area-Elements-List" => b(vec![
                0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf1, 0x10, 0x00, 0x01,
            ]),
            "Presence-Reporting-Area-Identifier" => b(vec![0x00, 0x00, 0x2a]),
            "TWAN-Identifier" => {
                // TS 29.274 §8.100: flags, SSID length, SSID.
                let ssid = b"operator-wifi";
                let mut v = vec![0, ssid.len() as u8];
                v.extend_from_slice(ssid);
                b(v)
            }
            _ => None,
        }
    }

    fn value(&mut self, def: &AvpDef) -> AvpValue {
        if let Some(v) = self.special(&def.name) {
            return v;
        }
        match def.data_type {
            DataType::Enumerated => {
                let v = if def.values.is_empty() {
                    0
                } else {
                    self.rng.pick(&def.values).0
                };
                AvpValue::I32(v)
            }
            DataType::Integer32 => AvpValue::I32(self.rng.below(2000) as i32 - 1000),
            DataType::Integer64 => AvpValue::I64(self.rng.below(2_000_000) as i64 - 1_000_000),
            DataType::Unsigned32 => AvpValue::U32(self.rng.below(100_000) as u32),
            DataType::Unsigned64 => AvpValue::U64(self.rng.below(1 << 40)),
            DataType::Float32 => AvpValue::F32(0.001 * self.rng.below(100) as f32),
            DataType::Float64 => AvpValue::F64(0.001 * self.rng.below(100) as f64),
            DataType::Time => AvpValue::U32(3_957_768_000 + self.rng.below(86_400) as u32),
            DataType::Address => {
                if self.rng.chance(70) {
                    AvpValue::Address(IpAddr::V4(Ipv4Addr::from(self.ipv4())))
                } else {
                    AvpValue::Address(IpAddr::V6(Ipv6Addr::from(self.ipv6())))
                }
            }
            DataType::DiameterIdentity => {
                AvpValue::Bytes(Bytes::from(self.rng.pick(HOSTS).to_string()))
            }
            DataType::DiameterURI => {
                AvpValue::Bytes(Bytes::from_static(self.rng.pick(URIS).as_bytes()))
            }
            DataType::IPFilterRule => {
                AvpValue::Bytes(Bytes::from_static(self.rng.pick(FILTERS).as_bytes()))
            }
            DataType::UTF8String | DataType::OctetString => {
                AvpValue::Bytes(Bytes::from(self.text()))
            }
            DataType::Grouped => AvpValue::Grouped(Vec::new()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The capture: Ethernet + IPv4 + TCP, one Diameter message per frame.
// ---------------------------------------------------------------------------------------------

const CLIENT: ([u8; 6], [u8; 4], u16) = ([0x02, 0, 0, 0, 0, 0x01], [192, 0, 2, 1], 40_000);
const SERVER: ([u8; 6], [u8; 4], u16) = ([0x02, 0, 0, 0, 0, 0x02], [192, 0, 2, 2], 3868);

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for chunk in chunks {
        for &byte in *chunk {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Synthetic TCP connection: consistent sequence and acknowledgement numbers per direction.
struct Tcp {
    client_seq: u32,
    server_seq: u32,
    ip_id: u16,
}

impl Tcp {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;

    fn frame(&mut self, from_client: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst) = if from_client {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        let (seq, ack) = if from_client {
            (self.client_seq, self.server_seq)
        } else {
            (self.server_seq, self.client_seq)
        };
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&src.2.to_be_bytes());
        tcp.extend_from_slice(&dst.2.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&(if flags & Self::ACK != 0 { ack } else { 0 }).to_be_bytes());
        tcp.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let tcp_len = tcp.len() as u16;
        let pseudo = [&src.1[..], &dst.1[..], &[0, 6], &tcp_len.to_be_bytes()[..]].concat();
        let sum = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());

        let total = 20 + tcp.len() as u16;
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&self.ip_id.to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src.1);
        ip.extend_from_slice(&dst.1);
        let sum = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());

        let mut frame = Vec::with_capacity(14 + ip.len() + tcp.len());
        frame.extend_from_slice(&dst.0);
        frame.extend_from_slice(&src.0);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);

        let advance = payload.len() as u32 + u32::from(flags & Self::SYN != 0);
        if from_client {
            self.client_seq = self.client_seq.wrapping_add(advance);
        } else {
            self.server_seq = self.server_seq.wrapping_add(advance);
        }
        frame
    }
}

/// Writes the capture; returns the frame number of each sample's message.
fn write_pcap(path: &Path, samples: &[Sample]) -> Vec<u64> {
    let file = std::fs::File::create(path).expect("create pcap");
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 65_535,
        ..Default::default()
    };
    let mut w =
        PcapWriter::with_header(std::io::BufWriter::new(file), header).expect("pcap header");
    let mut tcp = Tcp {
        client_seq: 1_000,
        server_seq: 500_000,
        ip_id: 0,
    };
    let mut frames = Vec::new();
    frames.push(tcp.frame(true, Tcp::SYN, &[]));
    frames.push(tcp.frame(false, Tcp::SYN | Tcp::ACK, &[]));
    frames.push(tcp.frame(true, Tcp::ACK, &[]));
    let mut numbers = Vec::with_capacity(samples.len());
    for s in samples {
        let request = s.bytes[4] & CommandFlags::REQUEST != 0;
        frames.push(tcp.frame(request, Tcp::PSH | Tcp::ACK, &s.bytes));
        numbers.push(frames.len() as u64);
    }
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_secs(1_748_779_200) + Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .expect("write packet");
    }
    drop(w);
    numbers
}

// ---------------------------------------------------------------------------------------------
// Reading tshark's JSON (`--no-duplicate-keys`: repeated keys become arrays).
// ---------------------------------------------------------------------------------------------

fn list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    }
}

/// A `_raw` entry is `[hex, offset, length, bitmask, type]`; a repeated field has a list of them.
fn raw_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) if a.first().is_some_and(Value::is_string) => vec![v.unwrap()],
        other => list(other),
    }
}

fn raw_hex(raw: &Value) -> &str {
    raw.get(0).and_then(Value::as_str).unwrap_or_default()
}

fn raw_pos(raw: &Value) -> (u64, u64) {
    (
        raw.get(1).and_then(Value::as_u64).unwrap_or(u64::MAX),
        raw.get(2).and_then(Value::as_u64).unwrap_or(u64::MAX),
    )
}

fn text_of(v: &Value) -> Option<&str> {
    v.as_str()
}

fn number(v: Option<&Value>) -> Option<u64> {
    let s = v?.as_str()?;
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Every expert info and malformed mark anywhere in a packet, with the AVP codes of the
/// subtrees it sits in (`where_` is that path while descending).
fn scan_expert(
    v: &Value,
    where_: &mut Vec<String>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    match v {
        Value::Object(map) => {
            let code = map.get("diameter.avp.code").and_then(Value::as_str);
            if let Some(c) = code {
                where_.push(c.to_string());
            }
            for (k, child) in map {
                if k == "_ws.malformed" {
                    errors.push(format!("malformed at AVP {}: {child}", where_.join("/")));
                }
                if k == "_ws.expert" {
                    for e in list(Some(child)) {
                        let severity = number(e.get("_ws.expert.severity")).unwrap_or(0);
                        let message = e
                            .get("_ws.expert.message")
                            .and_then(Value::as_str)
                            .unwrap_or("?");
                        // Wireshark severities: chat 0x200000, note 0x400000, warn 0x600000,
                        // error 0x800000.
                        if severity >= 0x0080_0000 {
                            errors.push(format!("{message} at AVP {}", where_.join("/")));
                        } else if severity >= 0x0060_0000 {
                            let avp = where_
                                .last()
                                .map_or(String::new(), |c| format!(" (AVP {c})"));
                            let message = message.split(", if you know").next().unwrap_or(message);
                            warnings.push(format!("{message}{avp}"));
                        }
                    }
                }
                scan_expert(child, where_, errors, warnings);
            }
            if code.is_some() {
                where_.pop();
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|c| scan_expert(c, where_, errors, warnings)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Problem {
    message: String,
    path: String,
    /// Our dictionary name of the AVP concerned, when there is one.
    avp: String,
    kind: Kind,
    detail: String,
}

struct Compare<'a> {
    dict: &'a Dictionary,
    label: &'a str,
    /// Offset of the Diameter message in the frame, to match tshark's field positions.
    base: u64,
    problems: Vec<Problem>,
    /// AVP names Wireshark showed differently from ours (informational).
    renamed: BTreeMap<String, String>,
    unknown_to_wireshark: BTreeMap<String, usize>,
}

/// Fields of an AVP subtree that are not its value.
const META: &[&str] = &[
    "diameter.avp.code",
    "diameter.avp.flags",
    "diameter.avp.len",
    "diameter.avp.vendorId",
    "diameter.avp.pad",
];

impl Compare<'_> {
    fn problem(&mut self, path: &str, avp: &str, kind: Kind, detail: String) {
        self.problems.push(Problem {
            message: self.label.to_string(),
            path: path.to_string(),
            avp: avp.to_string(),
            kind,
            detail,
        });
    }

    /// The AVP's value field: the field whose bytes are exactly the AVP payload.
    /// Sub-dissector fields (`diameter.3gpp.…`) may cover the same bytes; the AVP's own field
    /// (`diameter.NAME`, no further dot) is preferred.
    fn value_field<'v>(
        &self,
        t: &'v Value,
        data_pos: u64,
        data_len: u64,
    ) -> Option<(&'v str, &'v Value, &'v Value)> {
        let map = t.as_object()?;
        let mut candidates: Vec<(&'v str, &'v Value, &'v Value)> = map
            .iter()
            .filter_map(|(k, v)| {
                if k.ends_with("_raw")
                    || k.ends_with("_tree")
                    || META.contains(&k.as_str())
                    || !k.starts_with("diameter.")
                {
                    return None;
                }
                let raw = map.get(&format!("{k}_raw"))?;
                let raw = *raw_list(Some(raw)).first()?;
                (raw_pos(raw) == (data_pos, data_len)).then_some((k.as_str(), v, raw))
            })
            .collect();
        candidates.sort_by_key(|(k, _, _)| k["diameter.".len()..].contains('.'));
        candidates.into_iter().next()
    }

    /// The nested AVPs Wireshark shows inside a Grouped AVP (`diameter.NAME_tree`).
    fn grouped_tree(t: &Value) -> Option<&Value> {
        t.as_object()?.iter().find_map(|(k, v)| {
            (k.ends_with("_tree")
                && k != "diameter.avp.flags_tree"
                && v.get("diameter.avp_tree").is_some())
            .then_some(v)
        })
    }

    fn avps(&mut self, path: &str, ours: AvpIter<'_>, theirs: Option<&Value>) {
        let ours: Vec<_> = ours.map(|a| a.expect("our AVPs frame")).collect();
        let trees = list(theirs.and_then(|t| t.get("diameter.avp_tree")));
        let raws = raw_list(theirs.and_then(|t| t.get("diameter.avp_raw")));
        if ours.len() != trees.len() || trees.len() != raws.len() {
            self.problem(
                path,
                "",
                Kind::AvpCount,
                format!(
                    "{} AVPs ours, {} tree / {} raw in tshark",
                    ours.len(),
                    trees.len(),
                    raws.len()
                ),
            );
        }
        for (i, ((a, t), raw)) in ours.iter().zip(&trees).zip(&raws).enumerate() {
            let def = self.dict.avp(a.key());
            let name = def.map_or_else(
                || format!("AVP {}/{}", a.code, a.vendor),
                |d| d.name.clone(),
            );
            let here = format!("{path}/{name}[{i}]");
            let at = self.base + a.offset as u64;

            // Header fields.
            let code = number(t.get("diameter.avp.code"));
            let flags = number(t.get("diameter.avp.flags"));
            let len = number(t.get("diameter.avp.len"));
            let vendor = number(t.get("diameter.avp.vendorId")).unwrap_or(0);
            if code != Some(u64::from(a.code))
                || flags != Some(u64::from(a.flags.0))
                || len != Some(a.raw.len() as u64)
                || vendor != u64::from(a.vendor)
            {
                self.problem(
                    &here,
                    &name,
                    Kind::AvpHeader,
                    format!(
                        "ours code {} flags {:#04x} len {} vendor {}; tshark {code:?} {flags:?} {len:?} {vendor}",
                        a.code,
                        a.flags.0,
                        a.raw.len(),
                        a.vendor
                    ),
                );
                continue;
            }
            // Raw bytes: the whole AVP, padding included.
            let padded = (a.raw.len() + 3) & !3;
            let their_bytes = hex::decode(raw_hex(raw)).unwrap_or_default();
            if raw_pos(raw).0 != at
                || their_bytes.len() < a.raw.len()
                || their_bytes[..a.raw.len()] != *a.raw
                || their_bytes.len() != padded
            {
                self.problem(
                    &here,
                    &name,
                    Kind::AvpHeader,
                    format!(
                        "raw bytes differ: ours {} at {at}, tshark {} at {}",
                        hex::encode(a.raw),
                        raw_hex(raw),
                        raw_pos(raw).0
                    ),
                );
                continue;
            }

            let data_pos = at + a.header_len() as u64;
            let field = self.value_field(t, data_pos, a.data.len() as u64);
            let Some((key, value, value_raw)) = field else {
                if !a.data.is_empty() {
                    self.problem(
                        &here,
                        &name,
                        Kind::Value,
                        "tshark shows no value field".into(),
                    );
                }
                // An empty payload (an empty Grouped AVP such as RSU {}): tshark notes "Data is
                // empty" and shows no value; the header and bytes were compared above.
                continue;
            };
            if hex::decode(raw_hex(value_raw)).unwrap_or_default() != a.data {
                self.problem(
                    &here,
                    &name,
                    Kind::Value,
                    format!("value bytes differ: tshark {}", raw_hex(value_raw)),
                );
            }
            let their_name = key.trim_start_matches("diameter.");
            let unknown = their_name == "avp.unknown" || their_name.starts_with("Unknown");
            if unknown {
                *self.unknown_to_wireshark.entry(name.clone()).or_default() += 1;
            } else if their_name != name {
                self.renamed.insert(name.clone(), their_name.to_string());
            }
            let Some(def) = def else { continue };
            let theirs_grouped = Self::grouped_tree(t);
            if unknown {
                // Code, vendor, flags, length and bytes compared above.
                continue;
            }
            match (def.data_type == DataType::Grouped, theirs_grouped) {
                (true, Some(sub)) => self.avps(&here, a.children(), Some(sub)),
                (true, None) => self.problem(
                    &here,
                    &name,
                    Kind::Grouping,
                    "Grouped for us, not for tshark".into(),
                ),
                (false, Some(_)) => self.problem(
                    &here,
                    &name,
                    Kind::Grouping,
                    "Grouped for tshark, not for us".into(),
                ),
                (false, None) => self.value(&here, &name, def, a.data, value),
            }
        }
    }

    fn value(&mut self, here: &str, name: &str, def: &AvpDef, data: &[u8], theirs: &Value) {
        let shown = text_of(theirs).unwrap_or_default();
        let int = |b: &[u8]| -> Option<i128> {
            Some(match def.data_type {
                DataType::Integer32 | DataType::Enumerated => {
                    i128::from(i32::from_be_bytes(b.try_into().ok()?))
                }
                DataType::Integer64 => i128::from(i64::from_be_bytes(b.try_into().ok()?)),
                DataType::Unsigned32 => i128::from(u32::from_be_bytes(b.try_into().ok()?)),
                DataType::Unsigned64 => i128::from(u64::from_be_bytes(b.try_into().ok()?)),
                _ => return None,
            })
        };
        match def.data_type {
            DataType::Integer32
            | DataType::Integer64
            | DataType::Unsigned32
            | DataType::Unsigned64
            | DataType::Enumerated => {
                let ours = int(data);
                // Fields Wireshark displays in hex (Feature-List, …) come as "0x…".
                let theirs = match shown.strip_prefix("0x") {
                    Some(h) => i128::from_str_radix(h, 16).ok(),
                    None => shown.parse::<i128>().ok(),
                };
                if ours != theirs {
                    self.problem(
                        here,
                        name,
                        Kind::Value,
                        format!("ours {ours:?} ({}), tshark {shown:?}", def.data_type.name()),
                    );
                }
            }
            DataType::UTF8String
            | DataType::DiameterIdentity
            | DataType::DiameterURI
            | DataType::IPFilterRule => {
                let ours = std::str::from_utf8(data).unwrap_or_default();
                if ours != shown {
                    self.problem(
                        here,
                        name,
                        Kind::Value,
                        format!("ours {ours:?} ({}), tshark {shown:?}", def.data_type.name()),
                    );
                }
            }
            // OctetString, Address, Time, Float: the bytes were compared above.
            _ => {}
        }
    }

    fn message(&mut self, msg: &Message, diameter: &Value) {
        let h = msg.header();
        let get = |k: &str| number(diameter.get(k));
        let ours = [
            ("diameter.cmd.code", u64::from(h.command_code)),
            ("diameter.applicationId", u64::from(h.application_id)),
            ("diameter.flags", u64::from(h.flags.0)),
            ("diameter.hopbyhopid", u64::from(h.hop_by_hop)),
            ("diameter.endtoendid", u64::from(h.end_to_end)),
            ("diameter.length", u64::from(h.length)),
        ];
        for (k, v) in ours {
            if get(k) != Some(v) {
                self.problem(
                    "header",
                    "",
                    Kind::Header,
                    format!("{k}: ours {v}, tshark {:?}", diameter.get(k)),
                );
            }
        }
        self.avps("", msg.avps(), Some(diameter));
    }
}

/// Our name for an AVP code as tshark prints it (vendor unknown: the first AVP with the code).
fn avp_name(dict: &Dictionary, code: &str) -> String {
    let Ok(code) = code.parse::<u32>() else {
        return String::new();
    };
    dict.avps()
        .iter()
        .find(|d| d.key.code == code)
        .map_or_else(|| code.to_string(), |d| d.name.clone())
}

fn allowed(p: &Problem) -> Option<&'static Allowed> {
    ALLOWED.iter().find(|a| a.kind == p.kind && a.avp == p.avp)
}

fn tshark_available() -> bool {
    match Command::new("tshark").arg("--version").output() {
        Ok(o) => o.status.success(),
        Err(_) => false,
    }
}

#[test]
fn tshark_decodes_every_message_as_we_do() {
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

    let mut samples = golden_samples();
    let golden = samples.len();
    let mut generator = Generator::new(dict, SEED);
    for _ in 0..GENERATED {
        samples.push(generator.message());
    }
    // Our own side first: every message decodes and validates against our dictionary.
    let messages: Vec<Message> = samples
        .iter()
        .map(|s| {
            let m =
                Message::from_bytes(s.bytes.clone()).unwrap_or_else(|e| panic!("{}: {e}", s.label));
            if let Err(e) = validate(&m) {
                panic!(
                    "{} does not validate: {:?} {:?} {:?}",
                    s.label, e.result_code, e.message, e.failed_avp
                );
            }
            m
        })
        .collect();

    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("diameter.pcap");
    let frame_numbers = write_pcap(&pcap, &samples);
    let out = Command::new("tshark")
        .env("HOME", dir.path()) // no personal preferences or profiles
        .args([
            "-n",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args(["-T", "json", "-x", "--no-duplicate-keys", "-r"])
        .arg(&pcap)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets: Vec<Value> = serde_json::from_slice(&out.stdout).expect("tshark JSON");

    let mut covered = std::collections::BTreeSet::new();
    for m in &messages {
        collect_keys(dict, m.avps(), &mut covered);
    }

    let mut problems = Vec::new();
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    let mut renamed = BTreeMap::new();
    let mut unknown = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        let number = frame_numbers[i];
        let Some(packet) = packets.get(number as usize - 1) else {
            problems.push(Problem {
                message: s.label.clone(),
                path: String::new(),
                avp: String::new(),
                kind: Kind::Missing,
                detail: format!("tshark returned no frame {number}"),
            });
            continue;
        };
        let layers = &packet["_source"]["layers"];
        let mut errors = Vec::new();
        let mut warns = Vec::new();
        scan_expert(layers, &mut Vec::new(), &mut errors, &mut warns);
        for w in warns {
            *warnings.entry(w).or_default() += 1;
        }
        let mut cmp = Compare {
            dict,
            label: &s.label,
            base: 54,
            problems: Vec::new(),
            renamed: BTreeMap::new(),
            unknown_to_wireshark: BTreeMap::new(),
        };
        for e in errors {
            let kind = if e.starts_with("malformed") {
                Kind::Malformed
            } else {
                Kind::ExpertError
            };
            let avp = e
                .rsplit("AVP ")
                .next()
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or_default();
            let avp = avp_name(dict, avp);
            cmp.problem("", &avp, kind, e);
        }
        match layers.get("diameter") {
            Some(d) if d.is_object() => cmp.message(&messages[i], d),
            other => cmp.problem(
                "",
                "",
                Kind::Missing,
                format!("no single Diameter layer: {other:?}"),
            ),
        }
        problems.append(&mut cmp.problems);
        renamed.append(&mut cmp.renamed);
        for (k, v) in cmp.unknown_to_wireshark {
            *unknown.entry(k).or_insert(0usize) += v;
        }
    }

    println!(
        "{golden} golden + {GENERATED} generated messages ({} distinct AVPs of {} in the dictionary) compared with {}",
        covered.len(),
        dict.avps().len(),
        tshark_version()
    );
    if !unknown.is_empty() {
        println!(
            "AVPs Wireshark's dictionary lacks (compared by code, vendor, length and bytes): {unknown:?}"
        );
    }
    if !renamed.is_empty() {
        println!("AVPs Wireshark names differently (ours -> theirs): {renamed:?}");
    }
    if !warnings.is_empty() {
        println!("tshark expert warnings (not failures): {warnings:?}");
    }
    let (accepted, rejected): (Vec<_>, Vec<_>) =
        problems.into_iter().partition(|p| allowed(p).is_some());
    let mut used: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &accepted {
        *used.entry(allowed(p).map_or("", |a| a.avp)).or_default() += 1;
    }
    for a in ALLOWED {
        println!(
            "allowed disagreement {} {:?}: {} occurrence(s) — {}",
            a.avp,
            a.kind,
            used.get(a.avp).copied().unwrap_or(0),
            a.why
        );
    }
    if !rejected.is_empty() {
        let shown: Vec<String> = rejected
            .iter()
            .take(60)
            .map(|p| {
                let detail: String = p.detail.chars().take(400).collect();
                format!(
                    "{} {} [{:?}] {}: {detail}",
                    p.message, p.path, p.kind, p.avp
                )
            })
            .collect();
        panic!(
            "{} disagreement(s) with tshark:\n{}",
            rejected.len(),
            shown.join("\n")
        );
    }
}

/// Every AVP key used in a message, nested ones included.
fn collect_keys(
    dict: &Dictionary,
    avps: AvpIter<'_>,
    out: &mut std::collections::BTreeSet<(u32, u32)>,
) {
    for a in avps.flatten() {
        out.insert((a.code, a.vendor));
        if dict
            .avp(a.key())
            .is_some_and(|d| d.data_type == DataType::Grouped)
        {
            collect_keys(dict, a.children(), out);
        }
    }
}

fn tshark_version() -> String {
    Command::new("tshark")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default()
}
