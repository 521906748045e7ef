//! Diameter messages from packet captures, with tshark's dissection of each.
//!
//! tshark reads the capture (any link type it knows: Ethernet, Linux cooked, NULL/loopback;
//! TCP or SCTP, reassembled) and writes PDML; each `diameter` protocol layer of each packet
//! becomes one [`TraceMessage`]: where it was seen, its exact bytes and what tshark made of it.
//!
//! The bytes are the message as the wire carried it: the header fields and the top-level AVPs
//! tshark shows, each with the bytes it covers, which must follow one another without gap and
//! add up to the Message Length (RFC 6733 §3) — otherwise the message is reported as an error
//! rather than patched up.

use std::path::{Path, PathBuf};
use std::process::Command;
use xml::reader::{EventReader, XmlEvent};

/// The capture folder shared by the project (`../shared/traces` from the workspace root),
/// when present.
pub fn traces_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces");
    dir.is_dir().then_some(dir)
}

/// The capture files (`*.pcap`, `*.pcapng`) of `dir`, sorted by name.
pub fn trace_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| e == "pcap" || e == "pcapng")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Whether `tshark` runs.
pub fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The first line of `tshark --version`.
pub fn tshark_version() -> String {
    Command::new("tshark")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// One Diameter message of a capture.
#[derive(Debug, Clone)]
pub struct TraceMessage {
    /// Frame number (1-based, as Wireshark counts).
    pub frame: u64,
    /// Position among the Diameter messages of that frame (0-based).
    pub index: usize,
    /// `tcp` or `sctp`.
    pub transport: String,
    /// Source address and port, `ip:port` (`[ip]:port` for IPv6).
    pub src: String,
    /// Destination address and port.
    pub dst: String,
    /// The message bytes.
    pub bytes: Vec<u8>,
    /// tshark's reading of it.
    pub tshark: TsharkMessage,
}

/// A Diameter message as tshark shows it.
#[derive(Debug, Clone)]
pub struct TsharkMessage {
    /// Command name as tshark prints it ("Credit-Control", "3GPP-Update-Location", or the
    /// bare code when tshark has no name).
    pub command: String,
    /// Command Code.
    pub code: u32,
    /// Application-Id.
    pub application: u32,
    /// R bit.
    pub request: bool,
    /// Top-level AVPs in order.
    pub avps: Vec<TsharkAvp>,
}

/// An AVP as tshark shows it.
#[derive(Debug, Clone)]
pub struct TsharkAvp {
    /// AVP Code.
    pub code: u32,
    /// Vendor-Id, 0 when the V bit is clear.
    pub vendor: u32,
    /// tshark's name ("Unknown" when its dictionary lacks the AVP).
    pub name: String,
    /// The value field, absent when tshark shows none (an empty payload).
    pub value: Option<TsharkValue>,
    /// The AVPs tshark found inside (Grouped in its dictionary).
    pub children: Vec<Self>,
}

/// The value field of an AVP.
#[derive(Debug, Clone)]
pub struct TsharkValue {
    /// Field name (`diameter.Session-Id`, `diameter.avp.unknown`, ...).
    pub field: String,
    /// The `show` text: a number, a string, a date or colon-separated hex.
    pub show: String,
    /// The payload bytes the field covers.
    pub bytes: Vec<u8>,
    /// Sub-fields tshark adds (e.g. `diameter.Host-IP-Address.IPv4`): name and `show`.
    pub parts: Vec<(String, String)>,
}

/// Every Diameter message of the capture `path`, in frame order.
///
/// SCTP and TCP port 3868 are decoded as Diameter whatever the SCTP payload protocol
/// identifier says (some captures carry 0 instead of 46).
pub fn trace_messages(path: &Path) -> Result<Vec<TraceMessage>, String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-d",
            "sctp.port==3868,diameter",
            "-d",
            "tcp.port==3868,diameter",
            "-Y",
            "diameter",
            "-T",
            "pdml",
        ])
        .output()
        .map_err(|e| format!("run tshark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut messages = Vec::new();
    for packet in packets(&out.stdout)? {
        messages.extend(packet_messages(&packet)?);
    }
    Ok(messages)
}

// ---------------------------------------------------------------------------------------------
// PDML as a tree.
// ---------------------------------------------------------------------------------------------

/// A `<proto>` or `<field>` element with the attributes we read.
#[derive(Debug, Default)]
struct Node {
    name: String,
    showname: String,
    show: String,
    value: String,
    pos: Option<usize>,
    size: Option<usize>,
    children: Vec<Self>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Self> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first element named `name` anywhere below.
    fn find(&self, name: &str) -> Option<&Self> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        hex::decode(&self.value).map_err(|e| format!("field {}: bad hex value: {e}", self.name))
    }
}

/// The `<packet>` elements of a PDML document.
fn packets(pdml: &[u8]) -> Result<Vec<Node>, String> {
    let mut packets = Vec::new();
    let mut stack: Vec<Node> = Vec::new();
    for event in EventReader::new(pdml) {
        match event.map_err(|e| format!("PDML: {e}"))? {
            XmlEvent::StartElement {
                name, attributes, ..
            } => {
                let mut node = Node::default();
                if name.local_name == "packet" {
                    node.name = "packet".into();
                }
                for a in attributes {
                    let v = a.value;
                    match a.name.local_name.as_str() {
                        "name" => node.name = v,
                        "showname" => node.showname = v,
                        "show" => node.show = v,
                        "value" => node.value = v,
                        "pos" => node.pos = v.parse().ok(),
                        "size" => node.size = v.parse().ok(),
                        _ => {}
                    }
                }
                stack.push(node);
            }
            XmlEvent::EndElement { name } => {
                let Some(node) = stack.pop() else { continue };
                if name.local_name == "packet" {
                    packets.push(node);
                } else if let Some(parent) = stack.last_mut() {
                    parent.children.push(node);
                }
            }
            _ => {}
        }
    }
    Ok(packets)
}

// ---------------------------------------------------------------------------------------------
// From the tree to messages.
// ---------------------------------------------------------------------------------------------

/// Diameter header fields in wire order (RFC 6733 §3).
const HEADER_FIELDS: [&str; 7] = [
    "diameter.version",
    "diameter.length",
    "diameter.flags",
    "diameter.cmd.code",
    "diameter.applicationId",
    "diameter.hopbyhopid",
    "diameter.endtoendid",
];

/// Fields of an AVP subtree that are not its value.
const AVP_META: [&str; 5] = [
    "diameter.avp.code",
    "diameter.avp.flags",
    "diameter.avp.len",
    "diameter.avp.vendorId",
    "diameter.avp.pad",
];

fn packet_messages(packet: &Node) -> Result<Vec<TraceMessage>, String> {
    let frame: u64 = packet
        .find("num")
        .and_then(|n| n.show.parse().ok())
        .ok_or("packet without a frame number")?;
    let show = |name: &str| packet.find(name).map(|n| n.show.clone());
    let (src_ip, dst_ip) = match (show("ip.src"), show("ip.dst")) {
        (Some(s), Some(d)) => (s, d),
        _ => (
            show("ipv6.src")
                .map(|a| format!("[{a}]"))
                .unwrap_or_default(),
            show("ipv6.dst")
                .map(|a| format!("[{a}]"))
                .unwrap_or_default(),
        ),
    };
    let (transport, sport, dport) = if packet.child("sctp").is_some() {
        ("sctp", show("sctp.srcport"), show("sctp.dstport"))
    } else {
        ("tcp", show("tcp.srcport"), show("tcp.dstport"))
    };
    let src = format!("{src_ip}:{}", sport.unwrap_or_default());
    let dst = format!("{dst_ip}:{}", dport.unwrap_or_default());
    packet
        .children
        .iter()
        .filter(|p| p.name == "diameter")
        .enumerate()
        .map(|(index, d)| {
            let (bytes, tshark) = message(d).map_err(|e| format!("frame {frame}: {e}"))?;
            Ok(TraceMessage {
                frame,
                index,
                transport: transport.to_string(),
                src: src.clone(),
                dst: dst.clone(),
                bytes,
                tshark,
            })
        })
        .collect()
}

fn number(n: &Node) -> Result<u32, String> {
    let s = n.show.as_str();
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{}: {s:?}: {e}", n.name))
}

/// One `diameter` layer: its bytes and its dissection.
fn message(d: &Node) -> Result<(Vec<u8>, TsharkMessage), String> {
    let mut bytes = Vec::new();
    let mut next: Option<usize> = None;
    let mut append = |n: &Node| -> Result<(), String> {
        let (Some(pos), Some(size)) = (n.pos, n.size) else {
            return Err(format!("{} has no position", n.name));
        };
        if next.is_some_and(|p| p != pos) {
            return Err(format!("{} at {pos}, expected {next:?}", n.name));
        }
        let b = n.bytes()?;
        if b.len() != size {
            return Err(format!("{}: {} bytes for size {size}", n.name, b.len()));
        }
        bytes.extend_from_slice(&b);
        next = Some(pos + size);
        Ok(())
    };
    for f in HEADER_FIELDS {
        append(d.child(f).ok_or(format!("no {f}"))?)?;
    }
    let avp_nodes: Vec<&Node> = d
        .children
        .iter()
        .filter(|c| c.name == "diameter.avp")
        .collect();
    for a in &avp_nodes {
        append(a)?;
    }
    let length = d.child("diameter.length").map(number).transpose()?;
    if length != Some(bytes.len() as u32) {
        return Err(format!(
            "the fields cover {} bytes, Message Length says {length:?}",
            bytes.len()
        ));
    }
    let cmd = d.child("diameter.cmd.code").ok_or("no command code")?;
    let code = number(cmd)?;
    // "Command Code: 3GPP-Update-Location (316)"
    let command = cmd
        .showname
        .strip_prefix("Command Code: ")
        .and_then(|s| s.strip_suffix(&format!(" ({code})")))
        .unwrap_or(&cmd.show)
        .to_string();
    let application = d
        .child("diameter.applicationId")
        .map(number)
        .transpose()?
        .unwrap_or(0);
    let request = d
        .child("diameter.flags")
        .and_then(|f| f.child("diameter.flags.request"))
        .is_some_and(|r| r.show == "1");
    let avps = avp_nodes
        .into_iter()
        .map(avp)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        bytes,
        TsharkMessage {
            command,
            code,
            application,
            request,
            avps,
        },
    ))
}

fn avp(n: &Node) -> Result<TsharkAvp, String> {
    let code_node = n.child("diameter.avp.code").ok_or("AVP without a code")?;
    let code = number(code_node)?;
    // "AVP Code: 263 Session-Id"
    let name = code_node
        .showname
        .strip_prefix(&format!("AVP Code: {code}"))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("Unknown")
        .to_string();
    let vendor = n
        .child("diameter.avp.vendorId")
        .map(number)
        .transpose()?
        .unwrap_or(0);
    let len = n
        .child("diameter.avp.len")
        .map(number)
        .transpose()?
        .ok_or("AVP without a length")? as usize;
    let header = if vendor != 0 { 12 } else { 8 };
    let data_pos = n.pos.map(|p| p + header);
    let data_len = len.saturating_sub(header);
    // The value field covers exactly the payload. Sub-dissector fields may cover the same
    // bytes; the AVP's own field (`diameter.NAME`, no further dot) is preferred.
    let mut candidates: Vec<&Node> = n
        .children
        .iter()
        .filter(|c| {
            c.name.starts_with("diameter.")
                && !AVP_META.contains(&c.name.as_str())
                && c.pos == data_pos
                && c.size == Some(data_len)
        })
        .collect();
    candidates.sort_by_key(|c| c.name["diameter.".len()..].contains('.'));
    let Some(field) = candidates.first() else {
        return Ok(TsharkAvp {
            code,
            vendor,
            name,
            value: None,
            children: Vec::new(),
        });
    };
    let children = field
        .children
        .iter()
        .filter(|c| c.name == "diameter.avp")
        .map(avp)
        .collect::<Result<Vec<_>, _>>()?;
    let parts = field
        .children
        .iter()
        .filter(|c| c.name != "diameter.avp")
        .map(|c| (c.name.clone(), c.show.clone()))
        .collect();
    Ok(TsharkAvp {
        code,
        vendor,
        name,
        value: Some(TsharkValue {
            field: field.name.clone(),
            show: field.show.clone(),
            bytes: field.bytes()?,
            parts,
        }),
        children,
    })
}
