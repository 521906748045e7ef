//! What the capture replays share: the recorded Gx, Gy, Rx and S9 requests of
//! `../shared/traces` with their recorded answers, and recorded peers on the wire (one TCP
//! connection per Origin-Host, its own CER, the requests byte for byte with fresh
//! Hop-by-Hop Identifiers, DWRs and server-initiated requests answered, DPR at the end).
//! Included by `replay.rs` (our node's validation levels) and `replay_servers.rs` (our PCRF
//! and OCS).
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use diameter_codec::dict::base;
use diameter_codec::{AvpRef, LocalIdentity, Message, MessageBuilder, ResultCode, frame_length};
use e2e_tests::{trace_files, trace_messages, traces_dir, tshark_available};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const DCCA: u32 = 4;
pub(crate) const GX: u32 = 16_777_238;
pub(crate) const RX: u32 = 16_777_236;
pub(crate) const S9: u32 = 16_777_267;
pub(crate) const VENDOR_3GPP: u32 = 10_415;

/// The applications replayed, with the names the summary uses.
pub(crate) const APPLICATIONS: [(u32, &str); 4] =
    [(GX, "Gx"), (DCCA, "Gy/DCCA"), (RX, "Rx"), (S9, "S9")];

/// Our node's Origin-Host: no recorded request names it.
pub(crate) const NODE_HOST: &str = "replay-node.example.test";

/// How long one answer may take.
pub(crate) const T: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// What the captures hold
// ---------------------------------------------------------------------------------------------

/// One recorded request and what its recorded answer said.
#[derive(Clone)]
pub(crate) struct Recorded {
    /// Capture file name.
    pub(crate) capture: String,
    pub(crate) frame: u64,
    /// tshark's command name.
    pub(crate) command: String,
    pub(crate) msg: Message,
    pub(crate) origin_host: String,
    pub(crate) origin_realm: String,
    /// Destination-Host, when the request names one.
    pub(crate) destination_host: Option<String>,
    /// The sender's address in the capture (for Host-IP-Address in our CER).
    pub(crate) src_ip: Option<IpAddr>,
    /// The recorded answer: its frame and Result-Code (or Experimental-Result-Code).
    pub(crate) answer: Option<(u64, Option<u32>)>,
    /// The recorded answer itself.
    pub(crate) answer_msg: Option<Message>,
}

impl Recorded {
    pub(crate) fn application(&self) -> u32 {
        self.msg.header().application_id
    }

    /// The recorded server accepted it (RFC 6733 §7.1.2: 2xxx is success).
    pub(crate) fn recorded_success(&self) -> bool {
        matches!(self.answer, Some((_, Some(rc))) if (2000..3000).contains(&rc))
    }

    pub(crate) fn label(&self) -> String {
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

pub(crate) fn app_name(id: u32) -> &'static str {
    APPLICATIONS
        .iter()
        .find(|(a, _)| *a == id)
        .map_or("?", |(_, n)| n)
}

pub(crate) fn text_avp<'m>(avps: impl Iterator<Item = AvpRef<'m>>, code: u32) -> Option<String> {
    avps.filter(|a| a.code == code && a.vendor == 0)
        .find_map(|a| std::str::from_utf8(a.data).ok().map(str::to_string))
}

pub(crate) fn u32_of(a: &AvpRef<'_>) -> Option<u32> {
    Some(u32::from_be_bytes(a.data.try_into().ok()?))
}

/// Result-Code, else Experimental-Result/Experimental-Result-Code (RFC 6733 §7.6).
pub(crate) fn result_of(m: &Message) -> Option<u32> {
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

pub(crate) fn ip_of(addr: &str) -> Option<IpAddr> {
    let host = addr.rsplit_once(':')?.0;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Every request of the replayed applications in `path`, with its recorded answer.
pub(crate) fn recorded_requests(path: &Path) -> Result<Vec<Recorded>, String> {
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
                .then_some((a.frame, am))
        });
        let answer_msg = answer.as_ref().map(|(_, am)| am.clone());
        let answer = answer.map(|(frame, am)| (frame, result_of(&am)));
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
            answer_msg,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// A recorded peer on the wire
// ---------------------------------------------------------------------------------------------

/// One recorded client's connection: Diameter framed by hand over TCP, so the recorded
/// bytes go out exactly as captured.
pub(crate) struct PeerConn {
    pub(crate) s: TcpStream,
    pub(crate) me: LocalIdentity,
    pub(crate) next_hop_by_hop: u32,
    /// Requests the server sent us (RAR, ASR, ...), answered 2001.
    pub(crate) received: Vec<Message>,
}

impl PeerConn {
    pub(crate) async fn send(&mut self, b: &[u8]) -> Result<(), String> {
        self.s.write_all(b).await.map_err(|e| format!("write: {e}"))
    }

    pub(crate) async fn read_message(&mut self) -> Result<Message, String> {
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

    /// The next answer. Requests from the server are answered as a live peer does: DWR
    /// with DWA (RFC 3539 §3.4.1), any other (a PCRF's RAR, an ASR) with 2001 and its
    /// Session-Id (RFC 6733 §6.2), and kept in `received`.
    pub(crate) async fn recv(&mut self) -> Result<Message, String> {
        loop {
            let m = self.read_message().await?;
            if !m.header().is_request() {
                return Ok(m);
            }
            self.answer_request(m).await?;
        }
    }

    /// Answers a request of the server's as [`PeerConn::recv`] does.
    pub(crate) async fn answer_request(&mut self, m: Message) -> Result<(), String> {
        let mut a = MessageBuilder::answer_to(&m, &self.me);
        a.result_code(ResultCode::DIAMETER_SUCCESS);
        self.send(&a.to_bytes()).await?;
        if m.header().command_code != base::CMD_DEVICE_WATCHDOG {
            self.received.push(m);
        }
        Ok(())
    }

    /// Sends `request` with a fresh Hop-by-Hop Identifier (header bytes 12..16, RFC 6733 §3)
    /// and everything else as given; returns the answer to it.
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> Result<Message, String> {
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
pub(crate) struct Client {
    pub(crate) host: String,
    pub(crate) realm: String,
    pub(crate) ip: IpAddr,
    pub(crate) applications: Vec<u32>,
    pub(crate) requests: Vec<(usize, Bytes)>,
}

/// The recorded requests grouped by Origin-Host (case-insensitive, RFC 6733 §6.3), in order
/// of first appearance, each host's requests in capture order.
pub(crate) fn clients(requests: &[Recorded]) -> Vec<Client> {
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
pub(crate) fn cer(c: &Client) -> Bytes {
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

impl PeerConn {
    /// Connects to `addr` as client `c` and exchanges CER/CEA (RFC 6733 §5.3).
    pub(crate) async fn open(addr: SocketAddr, c: &Client) -> Result<Self, String> {
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{}: connect: {e}", c.host))?;
        let mut conn = Self {
            s,
            me: LocalIdentity::new(c.host.clone(), c.realm.clone()),
            next_hop_by_hop: 0x5000_0000,
            received: Vec::new(),
        };
        match conn.exchange(&cer(c)).await {
            Ok(cea) if result_of(&cea) == Some(ResultCode::DIAMETER_SUCCESS.0) => Ok(conn),
            Ok(cea) => Err(format!(
                "{}: CEA with Result-Code {:?}",
                c.host,
                result_of(&cea)
            )),
            Err(e) => Err(format!("{}: CER: {e}", c.host)),
        }
    }

    /// Leaves with DPR/DPA (RFC 6733 §5.4: a peer that leaves says so).
    pub(crate) async fn close(&mut self) -> Result<(), String> {
        let me = self.me.clone();
        let mut dpr = MessageBuilder::request(base::CMD_DISCONNECT_PEER, 0, false).ids(0, 2);
        dpr.push(base::ORIGIN_HOST.with(me.host.clone()));
        dpr.push(base::ORIGIN_REALM.with(me.realm.clone()));
        dpr.push(base::DISCONNECT_CAUSE.with(base::DisconnectCause::REBOOTING));
        self.exchange(&dpr.to_bytes())
            .await
            .map(drop)
            .map_err(|e| format!("{}: DPR: {e}", me.host))
    }
}

/// Runs one client: CER, its requests one after the other, DPR. Returns the answers by
/// request index.
pub(crate) async fn run_client(
    addr: SocketAddr,
    c: Client,
) -> Vec<(usize, Result<Message, String>)> {
    let mut conn = match PeerConn::open(addr, &c).await {
        Ok(conn) => conn,
        Err(why) => {
            return c
                .requests
                .iter()
                .map(|(i, _)| (*i, Err(why.clone())))
                .collect();
        }
    };
    let mut out = Vec::new();
    for (i, bytes) in &c.requests {
        out.push((*i, conn.exchange(bytes).await));
    }
    if let Err(e) = conn.close().await {
        out.push((usize::MAX, Err(e)));
    }
    out
}

/// Replays every request against `addr`, one connection per recorded client, the clients
/// at once. The answers in request order (a DPR failure is reported as an extra error).
pub(crate) async fn replay(
    addr: SocketAddr,
    requests: &[Recorded],
) -> Vec<Result<Message, String>> {
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
/// The requests of every capture in `dir`, in file and frame order; the captures are read
/// two at a time (tshark and the PDML parse dominate the test's time).
pub(crate) fn extract_all(dir: &Path) -> Result<Vec<Recorded>, String> {
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

/// The traces folder, when the captures can be read: without it the test prints SKIP and
/// passes; without tshark it does the same, unless `DIAMETER_REQUIRE_TSHARK=1` (CI sets it),
/// where it fails.
pub(crate) fn traces_readable() -> Option<PathBuf> {
    let Some(dir) = traces_dir() else {
        println!("SKIP: no traces folder (../shared/traces)");
        return None;
    };
    if !tshark_available() {
        let required = std::env::var("DIAMETER_REQUIRE_TSHARK").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "DIAMETER_REQUIRE_TSHARK=1 but tshark was not found on PATH"
        );
        println!("SKIP: tshark not found");
        return None;
    }
    Some(dir)
}
