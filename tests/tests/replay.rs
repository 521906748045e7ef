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
//! `replay_servers.rs` replays the same requests to our PCRF (Gx) and OCS (Gy) and
//! compares their answers with the recorded ones; what both replays share is in
//! `recorded/`.
//!
//! Without the traces folder the test prints a `SKIP` line and passes. Without `tshark` it
//! does the same, unless `DIAMETER_REQUIRE_TSHARK=1` (CI sets it), where it fails.

mod recorded;

use bytes::{Bytes, BytesMut};
use diameter_codec::dict::{base, rx, ts29229};
use diameter_codec::{
    AvpIter, AvpRef, AvpValue, Dictionary, FindingKind, Message, OwnedAvp, ResultCode,
};
use diameter_node::node::{Node, NodeConfig, handler_fn};
use diameter_node::peer::{Application, UnknownPeerPolicy};
use e2e_tests::tshark_version;
use recorded::{
    APPLICATIONS, DCCA, NODE_HOST, Recorded, VENDOR_3GPP, app_name, clients, extract_all, replay,
    result_of, text_avp, traces_readable,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let Some(dir) = traces_readable() else {
        return;
    };
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
