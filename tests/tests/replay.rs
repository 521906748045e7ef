//! Interop from the real captures (issue 10, item 3): every Gx (16777238), Gy/DCCA (4), Rx
//! (16777236) and S9 (16777267) request found in `../shared/traces` (Open5GS, Kamailio's
//! P-CSCF, magma, commercial charging equipment) is sent to our node the way the recorded
//! peer would send it:
//!
//! - one TCP connection per Origin-Host of the recorded requests, opened with its own CER
//!   (that Origin-Host and Origin-Realm, the applications it used; 3GPP ones inside
//!   Vendor-Specific-Application-Id with Supported-Vendor-Id 10415, as Open5GS and magma do);
//! - then that host's requests in capture order, each byte for byte as recorded except a
//!   fresh Hop-by-Hop Identifier (RFC 6733 §3: it is per connection); End-to-End,
//!   Destination-Host and Destination-Realm stay as recorded. They name the recorded
//!   receivers (tvm-vocs.magma.com, dgu2.comverse.com, pgw.open-ims.test, ...), not our
//!   node, which is started under an identity of its own: a node that is not an agent
//!   serves the applications it has handlers for whatever Destination-Host says (the
//!   node's routing choice), so a deployment that replaces those servers with ours is not
//!   answered 3002;
//! - DWRs from the node are answered, and the connection ends with DPR/DPA.
//!
//! Each request is paired with its recorded answer (same identifiers, opposite direction)
//! to know whether the peer's own server accepted it (Result-Code or
//! Experimental-Result-Code 2xxx).
//!
//! The node answers through its echo handler (`IncomingRequest::answer(2001)`, as
//! `diameter-bench echo` does). Two passes:
//!
//! 1. **Default (liberal) level**: every request the recorded server accepted gets 2001; the
//!    deviations the node hands to the handler are exactly the ones listed below.
//! 2. **Strict level** for the four applications (and the strict M bit): the deviating
//!    requests are refused with the precise Result-Code and Failed-AVP (RFC 6733 §7.5: the
//!    offending AVP inside its Grouped parents), every other one still gets 2001.
//!
//! The deviations are found here from the specifications, independently of the codec's
//! validator:
//!
//! - Supported-Features without Vendor-Id (`{Vendor-Id}`, TS 29.229 §6.3.29) → 5005
//!   DIAMETER_MISSING_AVP, Failed-AVP `Supported-Features{Vendor-Id}` with a zero-filled
//!   Vendor-Id (RFC 6733 §7.5 for a missing AVP);
//! - more than two Flow-Description in one Media-Sub-Component (`0*2[Flow-Description]`,
//!   TS 29.214 §5.3.18) → 5009 DIAMETER_AVP_OCCURS_TOO_MANY_TIMES, Failed-AVP
//!   `Media-Component-Description{Media-Sub-Component{the third Flow-Description}}` (RFC 6733
//!   §7.5: the first instance beyond the limit).
//!
//! When the PCRF and OCS exist, the same requests will be replayed against them (Gx, Rx,
//! S9 to the PCRF; Gy to the OCS), comparing their answers with the recorded ones.
//!
//! Without the traces folder the test prints a `SKIP` line and passes. Without `tshark` it
//! does the same, unless `DIAMETER_REQUIRE_TSHARK=1` (CI sets it), where it fails.

use bytes::{Bytes, BytesMut};
use diameter_codec::dict::{base, rx, ts29229};
use diameter_codec::{
    AvpIter, AvpRef, AvpValue, Dictionary, FindingKind, LocalIdentity, Message, MessageBuilder,
    OwnedAvp, ResultCode, frame_length,
};
use diameter_node::node::{Node, NodeConfig, handler_fn};
use diameter_node::peer::{Application, UnknownPeerPolicy};
use e2e_tests::{trace_files, trace_messages, traces_dir, tshark_available, tshark_version};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DCCA: u32 = 4;
const GX: u32 = 16_777_238;
const RX: u32 = 16_777_236;
const S9: u32 = 16_777_267;
const VENDOR_3GPP: u32 = 10_415;

/// The applications replayed, with the names the summary uses.
const APPLICATIONS: [(u32, &str); 4] = [(GX, "Gx"), (DCCA, "Gy/DCCA"), (RX, "Rx"), (S9, "S9")];

/// Our node's Origin-Host: no recorded request names it.
const NODE_HOST: &str = "replay-node.example.test";

/// How long one answer may take.
const T: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// What the captures hold
// ---------------------------------------------------------------------------------------------

/// One recorded request and what its recorded answer said.
struct Recorded {
    /// Capture file name.
    capture: String,
    frame: u64,
    /// tshark's command name.
    command: String,
    msg: Message,
    origin_host: String,
    origin_realm: String,
    /// Destination-Host, when the request names one.
    destination_host: Option<String>,
    /// The sender's address in the capture (for Host-IP-Address in our CER).
    src_ip: Option<IpAddr>,
    /// The recorded answer: its frame and Result-Code (or Experimental-Result-Code).
    answer: Option<(u64, Option<u32>)>,
}

impl Recorded {
    fn application(&self) -> u32 {
        self.msg.header().application_id
    }

    /// The recorded server accepted it (RFC 6733 §7.1.2: 2xxx is success).
    fn recorded_success(&self) -> bool {
        matches!(self.answer, Some((_, Some(rc))) if (2000..3000).contains(&rc))
    }

    fn label(&self) -> String {
        format!(
            "{} frame {} ({} {}, from {})",
            self.capture,
            self.frame,
            app_name(self.application()),
            self.command,
            self.origin_host
        )
    }
}

fn app_name(id: u32) -> &'static str {
    APPLICATIONS
        .iter()
        .find(|(a, _)| *a == id)
        .map_or("?", |(_, n)| n)
}

fn text_avp<'m>(avps: impl Iterator<Item = AvpRef<'m>>, code: u32) -> Option<String> {
    avps.filter(|a| a.code == code && a.vendor == 0)
        .find_map(|a| std::str::from_utf8(a.data).ok().map(str::to_string))
}

fn u32_of(a: &AvpRef<'_>) -> Option<u32> {
    Some(u32::from_be_bytes(a.data.try_into().ok()?))
}

/// Result-Code, else Experimental-Result/Experimental-Result-Code (RFC 6733 §7.6).
fn result_of(m: &Message) -> Option<u32> {
    if let Some(rc) = m.find(base::RESULT_CODE.key()).and_then(|a| u32_of(&a)) {
        return Some(rc);
    }
    m.find(base::EXPERIMENTAL_RESULT.key()).and_then(|er| {
        er.children()
            .flatten()
            .find(|a| a.key() == base::EXPERIMENTAL_RESULT_CODE.key())
            .and_then(|a| u32_of(&a))
    })
}

fn ip_of(addr: &str) -> Option<IpAddr> {
    let host = addr.rsplit_once(':')?.0;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Every request of the replayed applications in `path`, with its recorded answer.
fn recorded_requests(path: &Path) -> Result<Vec<Recorded>, String> {
    let capture = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let trace = trace_messages(path)?;
    let mut out = Vec::new();
    for (i, m) in trace.iter().enumerate() {
        let app = m.tshark.application;
        if !m.tshark.request || !APPLICATIONS.iter().any(|(a, _)| *a == app) {
            continue;
        }
        let where_ = format!("{capture} frame {}", m.frame);
        let msg = Message::from_bytes(m.bytes.clone()).map_err(|e| format!("{where_}: {e}"))?;
        let h = *msg.header();
        let origin_host = text_avp(msg.avps().flatten(), base::ORIGIN_HOST.code())
            .ok_or(format!("{where_}: no Origin-Host"))?;
        let origin_realm = text_avp(msg.avps().flatten(), base::ORIGIN_REALM.code())
            .ok_or(format!("{where_}: no Origin-Realm"))?;
        let destination_host = text_avp(msg.avps().flatten(), base::DESTINATION_HOST.code());
        // The answer: same identifiers and command, the other way (RFC 6733 §6.2).
        let answer = trace[i + 1..].iter().find_map(|a| {
            let same = !a.tshark.request
                && a.tshark.code == h.command_code
                && a.src == m.dst
                && a.dst == m.src;
            if !same {
                return None;
            }
            let am = Message::from_bytes(a.bytes.clone()).ok()?;
            (am.header().hop_by_hop == h.hop_by_hop && am.header().end_to_end == h.end_to_end)
                .then(|| (a.frame, result_of(&am)))
        });
        out.push(Recorded {
            capture: capture.clone(),
            frame: m.frame,
            command: m.tshark.command.clone(),
            msg,
            origin_host,
            origin_realm,
            destination_host,
            src_ip: ip_of(&m.src),
            answer,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The deviations, from the specifications
// ---------------------------------------------------------------------------------------------

/// A grammar deviation of a recorded request and the answer strict validation owes it.
#[derive(Debug, Clone, PartialEq)]
struct Deviation {
    kind: FindingKind,
    /// AVP names from the outermost down, `/`-separated, as the validator reports them.
    path: String,
    /// 5005 or 5009.
    result_code: u32,
    /// The single AVP Failed-AVP must hold, encoded.
    failed: Bytes,
}

fn encode(avp: &OwnedAvp) -> Bytes {
    let mut b = BytesMut::new();
    avp.encode(&mut b);
    b.freeze()
}

/// `inner` wrapped in copies of the Grouped AVPs `parents` (outermost first).
fn wrapped(parents: &[AvpRef<'_>], inner: OwnedAvp) -> OwnedAvp {
    parents.iter().rev().fold(inner, |acc, p| OwnedAvp {
        code: p.code,
        flags: p.flags,
        vendor: p.vendor,
        value: AvpValue::Grouped(vec![acc]),
    })
}

/// The deviations of one AVP sequence, depth first in wire order; `parents` are the Grouped
/// AVPs around it.
fn scan<'m>(avps: AvpIter<'m>, parents: &mut Vec<AvpRef<'m>>, out: &mut Vec<Deviation>) {
    for a in avps.flatten() {
        parents.push(a);
        let names = |last: &str| {
            let dict = Dictionary::embedded();
            let mut p: Vec<&str> = parents
                .iter()
                .map(|x| dict.avp(x.key()).map_or("?", |d| d.name.as_str()))
                .collect();
            p.push(last);
            p.join("/")
        };
        if a.key() == ts29229::SUPPORTED_FEATURES.key() {
            // TS 29.229 §6.3.29: Supported-Features ::= < AVP Header: 628 10415 >
            //   { Vendor-Id } { Feature-List-ID } { Feature-List } *[AVP]
            if !a
                .children()
                .flatten()
                .any(|c| c.key() == base::VENDOR_ID.key())
            {
                // RFC 6733 §7.5: "an AVP with the missing AVP code, the missing vendor id,
                // and a zero-filled payload of the minimum required length".
                let missing = OwnedAvp::new(
                    base::VENDOR_ID.code(),
                    0,
                    diameter_codec::AvpFlags::MANDATORY,
                    AvpValue::U32(0),
                );
                out.push(Deviation {
                    kind: FindingKind::MissingAvp,
                    path: names("Vendor-Id"),
                    result_code: ResultCode::DIAMETER_MISSING_AVP.0,
                    failed: encode(&wrapped(parents, missing)),
                });
            }
        }
        if a.key() == rx::MEDIA_SUB_COMPONENT.key() {
            // TS 29.214 §5.3.18: Media-Sub-Component ::= ... 0*2 [ Flow-Description ] ...
            // RFC 6733 §7.5: 5009 names "the first instance of the AVP that exceeded the
            // maximum number of occurrences".
            if let Some(third) = a
                .children()
                .flatten()
                .filter(|c| c.key() == rx::FLOW_DESCRIPTION.key())
                .nth(2)
            {
                out.push(Deviation {
                    kind: FindingKind::TooMany,
                    path: names("Flow-Description"),
                    result_code: ResultCode::DIAMETER_AVP_OCCURS_TOO_MANY_TIMES.0,
                    failed: encode(&wrapped(parents, OwnedAvp::from_ref(&third))),
                });
            }
        }
        if descends_into(&a) {
            scan(a.children(), parents, out);
        }
        parents.pop();
    }
}

/// The Grouped AVPs this scan descends into (the ones that hold the deviations above).
fn descends_into(a: &AvpRef<'_>) -> bool {
    [
        rx::MEDIA_COMPONENT_DESCRIPTION.key(),
        rx::MEDIA_SUB_COMPONENT.key(),
    ]
    .contains(&a.key())
}

fn deviations_of(msg: &Message) -> Vec<Deviation> {
    let mut out = Vec::new();
    scan(msg.avps(), &mut Vec::new(), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// A recorded peer on the wire
// ---------------------------------------------------------------------------------------------

/// One recorded client's connection: Diameter framed by hand over TCP, so the recorded
/// bytes go out exactly as captured.
struct PeerConn {
    s: TcpStream,
    me: LocalIdentity,
    next_hop_by_hop: u32,
}

impl PeerConn {
    async fn send(&mut self, b: &[u8]) -> Result<(), String> {
        self.s.write_all(b).await.map_err(|e| format!("write: {e}"))
    }

    async fn read_message(&mut self) -> Result<Message, String> {
        let mut hdr = [0u8; 20];
        tokio::time::timeout(T, self.s.read_exact(&mut hdr))
            .await
            .map_err(|_| format!("nothing within {T:?}"))?
            .map_err(|e| format!("read: {e}"))?;
        let len = frame_length(&hdr, 1 << 24)
            .map_err(|e| format!("frame: {e}"))?
            .ok_or("short header")?;
        let mut buf = BytesMut::from(&hdr[..]);
        buf.resize(len, 0);
        tokio::time::timeout(T, self.s.read_exact(&mut buf[20..]))
            .await
            .map_err(|_| "truncated message".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        Message::from_bytes(buf.freeze()).map_err(|e| format!("decode: {e}"))
    }

    /// The next message that is not a DWR; DWRs are answered as a live peer does (RFC 3539
    /// §3.4.1).
    async fn recv(&mut self) -> Result<Message, String> {
        loop {
            let m = self.read_message().await?;
            if m.header().is_request() && m.header().command_code == base::CMD_DEVICE_WATCHDOG {
                let mut dwa = MessageBuilder::answer_to(&m, &self.me);
                dwa.result_code(ResultCode::DIAMETER_SUCCESS);
                self.send(&dwa.to_bytes()).await?;
                continue;
            }
            return Ok(m);
        }
    }

    /// Sends `request` with a fresh Hop-by-Hop Identifier (header bytes 12..16, RFC 6733 §3)
    /// and everything else as given; returns the answer to it.
    async fn exchange(&mut self, request: &[u8]) -> Result<Message, String> {
        let hbh = self.next_hop_by_hop;
        self.next_hop_by_hop = hbh.wrapping_add(1);
        let mut b = request.to_vec();
        b[12..16].copy_from_slice(&hbh.to_be_bytes());
        self.send(&b).await?;
        let a = self.recv().await?;
        if a.header().is_request() || a.header().hop_by_hop != hbh {
            return Err(format!(
                "expected the answer to Hop-by-Hop {hbh:#x}, got {}",
                a.command_label()
            ));
        }
        Ok(a)
    }
}

/// One recorded client: its identity and its requests (indices into the request list).
struct Client {
    host: String,
    realm: String,
    ip: IpAddr,
    applications: Vec<u32>,
    requests: Vec<(usize, Bytes)>,
}

/// The recorded requests grouped by Origin-Host (case-insensitive, RFC 6733 §6.3), in order
/// of first appearance, each host's requests in capture order.
fn clients(requests: &[Recorded]) -> Vec<Client> {
    let mut out: Vec<Client> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let c = match out
            .iter_mut()
            .position(|c| c.host.eq_ignore_ascii_case(&r.origin_host))
        {
            Some(p) => &mut out[p],
            None => {
                out.push(Client {
                    host: r.origin_host.clone(),
                    realm: r.origin_realm.clone(),
                    ip: r.src_ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
                    applications: Vec::new(),
                    requests: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if !c.applications.contains(&r.application()) {
            c.applications.push(r.application());
        }
        c.requests.push((i, r.msg.as_bytes().clone()));
    }
    out
}

/// The client's CER (RFC 6733 §5.3.1), as Open5GS and magma write theirs: 3GPP applications
/// inside Vendor-Specific-Application-Id, Supported-Vendor-Id 10415.
fn cer(c: &Client) -> Bytes {
    let mut b = MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false).ids(0, 1);
    b.push(base::ORIGIN_HOST.with(c.host.clone()));
    b.push(base::ORIGIN_REALM.with(c.realm.clone()));
    b.push(base::HOST_IP_ADDRESS.with(c.ip));
    b.push(base::VENDOR_ID.with(0u32));
    b.push(base::PRODUCT_NAME.with("capture replay"));
    if c.applications.iter().any(|a| *a != DCCA) {
        b.push(base::SUPPORTED_VENDOR_ID.with(VENDOR_3GPP));
    }
    for &app in &c.applications {
        if app == DCCA {
            b.push(base::AUTH_APPLICATION_ID.with(app));
        } else {
            b.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
                base::VENDOR_ID.with(VENDOR_3GPP),
                base::AUTH_APPLICATION_ID.with(app),
            ]));
        }
    }
    b.to_bytes()
}

/// Runs one client: CER, its requests one after the other, DPR. Returns the answers by
/// request index.
async fn run_client(addr: SocketAddr, c: Client) -> Vec<(usize, Result<Message, String>)> {
    let fail_all = |why: String| {
        c.requests
            .iter()
            .map(|(i, _)| (*i, Err(why.clone())))
            .collect::<Vec<_>>()
    };
    let s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return fail_all(format!("{}: connect: {e}", c.host)),
    };
    let mut conn = PeerConn {
        s,
        me: LocalIdentity::new(c.host.clone(), c.realm.clone()),
        next_hop_by_hop: 0x5000_0000,
    };
    match conn.exchange(&cer(&c)).await {
        Ok(cea) if result_of(&cea) == Some(ResultCode::DIAMETER_SUCCESS.0) => {}
        Ok(cea) => {
            return fail_all(format!(
                "{}: CEA with Result-Code {:?}",
                c.host,
                result_of(&cea)
            ));
        }
        Err(e) => return fail_all(format!("{}: CER: {e}", c.host)),
    }
    let mut out = Vec::new();
    for (i, bytes) in &c.requests {
        out.push((*i, conn.exchange(bytes).await));
    }
    // RFC 6733 §5.4: a peer that leaves says so.
    let mut dpr = MessageBuilder::request(base::CMD_DISCONNECT_PEER, 0, false).ids(0, 2);
    dpr.push(base::ORIGIN_HOST.with(c.host.clone()));
    dpr.push(base::ORIGIN_REALM.with(c.realm.clone()));
    dpr.push(base::DISCONNECT_CAUSE.with(base::DisconnectCause::REBOOTING));
    if let Err(e) = conn.exchange(&dpr.to_bytes()).await {
        out.push((usize::MAX, Err(format!("{}: DPR: {e}", c.host))));
    }
    out
}

/// Replays every request against `addr`, one connection per recorded client, the clients
/// at once. The answers in request order (a DPR failure is reported as an extra error).
async fn replay(addr: SocketAddr, requests: &[Recorded]) -> Vec<Result<Message, String>> {
    let tasks: Vec<_> = clients(requests)
        .into_iter()
        .map(|c| tokio::spawn(run_client(addr, c)))
        .collect();
    let mut answers: Vec<Result<Message, String>> = (0..requests.len())
        .map(|_| Err("not sent".to_string()))
        .collect();
    let mut extra = Vec::new();
    for t in tasks {
        for (i, a) in t.await.expect("client task") {
            match answers.get_mut(i) {
                Some(slot) => *slot = a,
                None => extra.push(a),
            }
        }
    }
    answers.extend(extra);
    answers
}

// ---------------------------------------------------------------------------------------------
// Our node
// ---------------------------------------------------------------------------------------------

/// What the handler was told about each request: (Origin-Host, End-to-End) → the
/// deviations (kind and AVP path) the node accepted.
type Seen = Arc<Mutex<HashMap<(String, u32), Vec<(FindingKind, String)>>>>;

/// Our node under an identity of its own (no recorded Destination-Host names it), serving
/// the four applications with the echo handler; `strict` validates them at the strict level.
async fn start_node(strict: bool, seen: &Seen) -> Node {
    let mut cfg = NodeConfig::new(NODE_HOST, "example.test");
    for (app, _) in APPLICATIONS {
        cfg.local.applications.push(if app == DCCA {
            Application::auth(app)
        } else {
            Application::vendor_auth(VENDOR_3GPP, app)
        });
    }
    cfg.local.supported_vendor_ids.push(VENDOR_3GPP);
    cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
    cfg.listen
        .push(SocketAddr::from(([127, 0, 0, 1], 0)).into());
    if strict {
        cfg.strict_validation_applications = APPLICATIONS.iter().map(|(a, _)| *a).collect();
        cfg.strict_m_bit = true;
    }
    let node = Node::start(cfg).await.expect("node starts");
    for (app, _) in APPLICATIONS {
        let seen = Arc::clone(seen);
        node.register(
            app,
            handler_fn(move |req| {
                let seen = Arc::clone(&seen);
                async move {
                    let origin = text_avp(req.msg.avps().flatten(), base::ORIGIN_HOST.code())
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let found = req
                        .deviations
                        .iter()
                        .map(|d| (d.kind, d.path_names.clone()))
                        .collect();
                    seen.lock()
                        .expect("seen lock")
                        .insert((origin, req.msg.header().end_to_end), found);
                    req.answer(ResultCode::DIAMETER_SUCCESS)
                }
            }),
        );
    }
    node
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// The single AVP inside the answer's Failed-AVP, padded (RFC 6733 §7.5).
fn failed_avp(a: &Message) -> Option<&[u8]> {
    a.find(base::FAILED_AVP.key()).map(|f| f.data)
}

fn print_summary(requests: &[Recorded]) {
    let success = requests.iter().filter(|r| r.recorded_success()).count();
    println!(
        "{} requests of Gx, Gy/DCCA, Rx and S9 in the captures ({success} with a success \
         answer recorded); {}",
        requests.len(),
        tshark_version()
    );
    let mut by_app: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut by_capture: BTreeMap<(&str, &str, &str), (usize, usize)> = BTreeMap::new();
    for r in requests {
        let s = usize::from(r.recorded_success());
        let e = by_app.entry(app_name(r.application())).or_default();
        *e = (e.0 + 1, e.1 + s);
        let e = by_capture
            .entry((&r.capture, app_name(r.application()), &r.command))
            .or_default();
        *e = (e.0 + 1, e.1 + s);
    }
    for (app, (n, s)) in &by_app {
        println!("  {app:8} {n:3} requests, {s:3} answered with success");
    }
    for ((capture, app, command), (n, s)) in &by_capture {
        println!("  {capture:48} {app:8} {command:24} {n:3} ({s} success)");
    }
    for c in clients(requests) {
        let apps: Vec<&str> = c.applications.iter().map(|a| app_name(*a)).collect();
        println!(
            "  client {} ({}): {} requests, {}",
            c.host,
            c.realm,
            c.requests.len(),
            apps.join(", ")
        );
    }
    let mut dest_hosts: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.destination_host.as_deref())
        .collect();
    dest_hosts.sort_unstable();
    dest_hosts.dedup();
    println!("  Destination-Host as recorded: {}", dest_hosts.join(", "));
    for r in requests.iter().filter(|r| !r.recorded_success()) {
        match r.answer {
            Some((frame, rc)) => println!(
                "  no success: {} answered {rc:?} in frame {frame}",
                r.label()
            ),
            None => println!("  no success: {} has no recorded answer", r.label()),
        }
    }
}

/// The requests of every capture in `dir`, in file and frame order; the captures are read
/// two at a time (tshark and the PDML parse dominate the test's time).
fn extract_all(dir: &Path) -> Result<Vec<Recorded>, String> {
    let files = trace_files(dir);
    let per_file: Vec<Result<Vec<Recorded>, String>> = std::thread::scope(|scope| {
        let halves: Vec<_> = [0, 1]
            .map(|half| {
                let files = &files;
                scope.spawn(move || {
                    files
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % 2 == half)
                        .map(|(i, f)| (i, recorded_requests(f)))
                        .collect::<Vec<_>>()
                })
            })
            .into_iter()
            .collect();
        let mut all: Vec<_> = halves
            .into_iter()
            .flat_map(|h| h.join().expect("extraction thread"))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    Ok(per_file
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect())
}

/// Checks the default-level pass: every request the recorded server accepted answered
/// 2001 with the recorded End-to-End and Session-Id, and the handler told exactly the
/// deviations `expected`. Returns the problems.
fn check_default(
    requests: &[Recorded],
    expected: &[Vec<Deviation>],
    answers: &[Result<Message, String>],
    seen: &HashMap<(String, u32), Vec<(FindingKind, String)>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let (mut accepted, mut elsewhere) = (0, 0);
    for (i, a) in answers.iter().enumerate() {
        let Some(r) = requests.get(i) else {
            problems.push(format!("default level: {:?}", a.as_ref().err()));
            continue;
        };
        let rc = a.as_ref().map(result_of);
        if rc == Ok(Some(ResultCode::DIAMETER_SUCCESS.0)) {
            accepted += 1;
            // A server serves what it has handlers for, whatever Destination-Host the
            // client wrote (no 3002 DIAMETER_UNABLE_TO_DELIVER from a node that is not an
            // agent).
            if r.destination_host
                .as_deref()
                .is_some_and(|h| !h.eq_ignore_ascii_case(NODE_HOST))
            {
                elsewhere += 1;
            }
        } else if r.recorded_success() {
            problems.push(format!("default level: {} answered {rc:?}", r.label()));
        }
        if let Ok(a) = a {
            if a.header().end_to_end != r.msg.header().end_to_end
                || a.session_id() != r.msg.session_id()
            {
                problems.push(format!(
                    "default level: {}: the answer's End-to-End or Session-Id differs",
                    r.label()
                ));
            }
        }
        let key = (
            r.origin_host.to_ascii_lowercase(),
            r.msg.header().end_to_end,
        );
        let want: Vec<(FindingKind, String)> = expected[i]
            .iter()
            .map(|d| (d.kind, d.path.clone()))
            .collect();
        match seen.get(&key) {
            Some(got) if *got == want => {}
            got => problems.push(format!(
                "default level: {}: the handler was told deviations {got:?}, expected {want:?}",
                r.label()
            )),
        }
    }
    println!(
        "default level: {accepted} of {} requests answered 2001 ({} with a recorded success); \
         {} accepted with deviations; {elsewhere} of those answered named a Destination-Host \
         that is not ours",
        requests.len(),
        requests.iter().filter(|r| r.recorded_success()).count(),
        expected.iter().filter(|d| !d.is_empty()).count(),
    );
    problems
}

/// Checks the strict pass: a request with a deviation refused with its Result-Code (no E
/// bit: 5xxx is not a protocol error, RFC 6733 §7.2), Failed-AVP byte for byte and an
/// Error-Message naming the AVP; every other one the recorded server accepted answered 2001.
fn check_strict(
    requests: &[Recorded],
    expected: &[Vec<Deviation>],
    answers: &[Result<Message, String>],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut refused: BTreeMap<(u32, String, &str), usize> = BTreeMap::new();
    let mut accepted = 0;
    for (i, a) in answers.iter().enumerate() {
        let (Some(r), Ok(a)) = (requests.get(i), a) else {
            let which = requests.get(i).map(Recorded::label).unwrap_or_default();
            problems.push(format!("strict level: {which}: {:?}", a.as_ref().err()));
            continue;
        };
        let rc = result_of(a);
        if rc == Some(ResultCode::DIAMETER_SUCCESS.0) {
            accepted += 1;
        }
        let Some(d) = expected[i].first() else {
            if r.recorded_success() && rc != Some(ResultCode::DIAMETER_SUCCESS.0) {
                problems.push(format!("strict level: {} answered {rc:?}", r.label()));
            }
            continue;
        };
        *refused
            .entry((d.result_code, d.path.clone(), &r.capture))
            .or_default() += 1;
        if rc != Some(d.result_code) || a.header().flags.is_error() {
            problems.push(format!(
                "strict level: {}: {} expected {} without the E bit, answered {rc:?} (E bit {})",
                r.label(),
                d.path,
                d.result_code,
                a.header().flags.is_error()
            ));
        }
        if failed_avp(a) != Some(&d.failed[..]) {
            problems.push(format!(
                "strict level: {}: Failed-AVP {:02x?}, expected {} as {:02x?}",
                r.label(),
                failed_avp(a),
                d.path,
                &d.failed[..]
            ));
        }
        let msg = a
            .get(base::ERROR_MESSAGE)
            .and_then(Result::ok)
            .unwrap_or_default();
        let avp = d.path.rsplit('/').next().unwrap_or_default();
        if !msg.contains(avp) {
            problems.push(format!(
                "strict level: {}: Error-Message {msg:?} does not name {avp}",
                r.label()
            ));
        }
    }
    for ((rc, path, capture), n) in &refused {
        println!("strict level: {n} refused with {rc} for {path} ({capture})");
    }
    println!("strict level: {accepted} answered 2001");
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_requests_are_served_as_their_peers_expect() {
    let started = Instant::now();
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
    let requests = tokio::task::spawn_blocking(move || extract_all(&dir))
        .await
        .expect("extraction task")
        .unwrap_or_else(|e| panic!("{e}"));
    print_summary(&requests);
    assert!(!requests.is_empty(), "no Gx, Gy, Rx or S9 request found");
    let expected: Vec<Vec<Deviation>> = requests.iter().map(|r| deviations_of(&r.msg)).collect();

    let seen = Seen::default();
    let node = start_node(false, &seen).await;
    let answers = replay(node.listen_addrs()[0], &requests).await;
    node.shutdown(Duration::from_secs(1)).await;
    let seen = seen.lock().expect("seen lock").clone();
    let mut problems = check_default(&requests, &expected, &answers, &seen);

    let node = start_node(true, &Seen::default()).await;
    let answers = replay(node.listen_addrs()[0], &requests).await;
    node.shutdown(Duration::from_secs(1)).await;
    problems.extend(check_strict(&requests, &expected, &answers));

    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let elapsed = started.elapsed();
    println!("replayed twice in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}
