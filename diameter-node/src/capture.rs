//! Traffic capture: every Diameter message a node sends or receives, written to a pcapng
//! file that Wireshark and tshark decode as Diameter without "Decode As".
//!
//! Each message is wrapped in synthetic Ethernet + IP + TCP headers:
//!
//! - **Addresses** are the connection's real local and peer addresses. IPv4 connections get
//!   IPv4 framing (header checksum computed, DF set, an incrementing IP ID); IPv6
//!   connections get IPv6 framing (IPv4-mapped IPv6 addresses, `::ffff:a.b.c.d`, are written
//!   as IPv4). MAC addresses are made up from the IP address (locally administered
//!   `02:00:…`).
//! - **Ports**: the client side keeps its real port; the server side (the one that
//!   accepted the connection) is written as **3868**, the IANA Diameter port (RFC 6733
//!   §11.2), so Wireshark's Diameter dissector picks the stream up by port. TLS connections
//!   are written on 3868 too, not 5658: what we record is the *decrypted* Diameter payload,
//!   and on 5658 tshark dissects it as TLS records and shows no Diameter at all (checked
//!   with tshark 4.x). The transport shows as the pcapng interface instead: interface 0
//!   "diameter-tcp", interface 1 "diameter-tls" (decrypted). No packet comments are
//!   written, since Wireshark reports each as an expert-info item. Two servers on one host both appear as port 3868; their
//!   conversations are still told apart by the client's address and port.
//! - **TCP**: a connection's first message is preceded by a synthetic three-way handshake
//!   (with window scaling, so the advertised window never fills), each message is one or
//!   more segments with PSH|ACK whose sequence numbers advance by the payload length per
//!   direction and whose acknowledgement number is the other direction's next sequence
//!   number, and [`Capture::close`] writes a FIN exchange. Wireshark's TCP analysis
//!   therefore finds no lost, retransmitted or out-of-order segments. TCP checksums are
//!   computed (pseudo-header included).
//! - **Timestamps** are the caller's `SystemTime` (the moment the message was written to or
//!   read from the socket), nanosecond resolution (`if_tsresol` = 9).
//!
//! [`Capture`] is `Sync`: share it as `Arc<Capture>`; a `Mutex` serialises writes into a
//! buffered file. The buffer is flushed by [`Capture::flush`] and on drop.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{DataLink, Endianness};

use crate::transport::{DIAMETER_PORT, Stream, TransportKind};

/// Largest TCP payload written in one synthetic segment (keeps IPv4 Total Length and IPv6
/// Payload Length within 16 bits); larger messages are split, and Wireshark reassembles.
const MAX_SEGMENT: usize = 65_000;
/// Window scale announced in the synthetic SYNs: 65535 << 14 ≈ 1 GiB.
const WINDOW_SCALE: u8 = 14;
const SNAPLEN: u32 = 262_144;

/// Which way a message went, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We wrote it to the peer.
    Sent,
    /// We read it from the peer.
    Received,
}

/// The connection a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaptureConn {
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub peer: SocketAddr,
    /// True when we accepted the connection (our side is written as port 3868).
    pub local_is_server: bool,
    /// TCP or TLS (noted in packet comments).
    pub transport: TransportKind,
}

impl CaptureConn {
    /// Describes a connected [`Stream`].
    pub fn from_stream(stream: &Stream, local_is_server: bool) -> io::Result<Self> {
        Ok(Self {
            local: stream.local_addr()?,
            peer: stream.peer_addr()?,
            local_is_server,
            transport: stream.kind(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct FlowState {
    /// Next sequence number of the client → server direction.
    client_next: u32,
    /// Next sequence number of the server → client direction.
    server_next: u32,
}

struct Inner {
    writer: PcapNgWriter<Box<dyn Write + Send>>,
    flows: HashMap<CaptureConn, FlowState>,
    ip_id: u16,
    packets: u64,
}

/// A pcapng writer of Diameter traffic. See the module documentation.
///
/// Writing takes a short lock and copies the frame into a 64 KiB buffer (about a
/// microsecond per message); the file is written when the buffer fills.
pub struct Capture {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("packets", &self.packets())
            .finish_non_exhaustive()
    }
}

fn pcap_err(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Endpoints as written: (client ip, client port, server ip, server port).
fn endpoints(conn: &CaptureConn) -> (IpAddr, u16, IpAddr, u16) {
    let (client, server) = if conn.local_is_server {
        (conn.peer, conn.local)
    } else {
        (conn.local, conn.peer)
    };
    let norm = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (mut c, mut s) = (norm(client.ip()), norm(server.ip()));
    // A mixed pair cannot occur on one socket, but stay consistent if it does.
    match (c, s) {
        (IpAddr::V4(a), IpAddr::V6(_)) => c = IpAddr::V6(a.to_ipv6_mapped()),
        (IpAddr::V6(_), IpAddr::V4(b)) => s = IpAddr::V6(b.to_ipv6_mapped()),
        _ => {}
    }
    (c, client.port(), s, DIAMETER_PORT)
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Initial sequence numbers: arbitrary but deterministic per flow.
fn isn(conn: &CaptureConn, client_side: bool) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    conn.hash(&mut h);
    client_side.hash(&mut h);
    h.finish() as u32
}

impl Capture {
    /// Creates (truncates) `path` and writes the pcapng section and interface headers.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::new(BufWriter::with_capacity(64 * 1024, File::create(path)?))
    }

    /// Writes to any sink (tests use a `Vec<u8>` behind a shared handle).
    pub fn new<W: Write + Send + 'static>(sink: W) -> io::Result<Self> {
        let section = SectionHeaderBlock {
            endianness: if cfg!(target_endian = "big") {
                Endianness::Big
            } else {
                Endianness::Little
            },
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(
                concat!("diameter-node ", env!("CARGO_PKG_VERSION")),
            ))],
            ..SectionHeaderBlock::default()
        };
        let mut writer =
            PcapNgWriter::with_section_header(Box::new(sink) as Box<dyn Write + Send>, section)
                .map_err(pcap_err)?;
        for (name, description) in [
            (
                "diameter-tcp",
                "Diameter over TCP, synthetic Ethernet/IP/TCP framing",
            ),
            (
                "diameter-tls",
                "Diameter over TLS, decrypted, synthetic Ethernet/IP/TCP framing",
            ),
        ] {
            writer
                .write_pcapng_block(InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: SNAPLEN,
                    options: vec![
                        InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                        InterfaceDescriptionOption::IfDescription(Cow::Borrowed(description)),
                        // pcap-file writes EPB timestamps in nanoseconds.
                        InterfaceDescriptionOption::IfTsResol(9),
                    ],
                })
                .map_err(pcap_err)?;
        }
        Ok(Self {
            inner: Mutex::new(Inner {
                writer,
                flows: HashMap::new(),
                ip_id: 0,
                packets: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one Diameter message (`msg` is the whole frame) that went `dir` on `conn` at
    /// `at`.
    pub fn record(
        &self,
        conn: &CaptureConn,
        dir: Direction,
        at: SystemTime,
        msg: &[u8],
    ) -> io::Result<()> {
        let ts = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let mut g = self.lock();
        let flow = match g.flows.get(conn) {
            Some(f) => *f,
            None => {
                let f = g.handshake(conn, ts)?;
                g.flows.insert(*conn, f);
                f
            }
        };
        // Sent by the client when (we are the client and we sent) or (we are the server
        // and we received).
        let from_client = conn.local_is_server == (dir == Direction::Received);
        let (mut seq, ack) = if from_client {
            (flow.client_next, flow.server_next)
        } else {
            (flow.server_next, flow.client_next)
        };
        for chunk in msg.chunks(MAX_SEGMENT) {
            g.segment(conn, from_client, seq, ack, PSH | ACK, chunk, ts)?;
            seq = seq.wrapping_add(chunk.len() as u32);
        }
        let f = g.flows.get_mut(conn).expect("flow inserted above");
        if from_client {
            f.client_next = seq;
        } else {
            f.server_next = seq;
        }
        Ok(())
    }

    /// Records the end of a connection (FIN exchange, closed by the side that `dir` names:
    /// `Sent` = we closed) and forgets its sequence state. Unknown connections are ignored.
    pub fn close(&self, conn: &CaptureConn, dir: Direction, at: SystemTime) -> io::Result<()> {
        let ts = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let mut g = self.lock();
        let Some(f) = g.flows.remove(conn) else {
            return Ok(());
        };
        let client_first = conn.local_is_server == (dir == Direction::Received);
        let (a_next, b_next) = if client_first {
            (f.client_next, f.server_next)
        } else {
            (f.server_next, f.client_next)
        };
        g.segment(conn, client_first, a_next, b_next, FIN | ACK, &[], ts)?;
        g.segment(
            conn,
            !client_first,
            b_next,
            a_next.wrapping_add(1),
            FIN | ACK,
            &[],
            ts,
        )?;
        g.segment(
            conn,
            client_first,
            a_next.wrapping_add(1),
            b_next.wrapping_add(1),
            ACK,
            &[],
            ts,
        )
    }

    /// Flushes buffered packets to the file.
    pub fn flush(&self) -> io::Result<()> {
        self.lock().writer.get_mut().flush()
    }

    /// Packets written so far (handshakes and FINs included).
    pub fn packets(&self) -> u64 {
        self.lock().packets
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = inner.writer.get_mut().flush() {
            tracing::warn!(error = %e, "capture: flush on drop failed");
        }
    }
}

impl Inner {
    fn handshake(&mut self, conn: &CaptureConn, ts: Duration) -> io::Result<FlowState> {
        let (c, s) = (isn(conn, true), isn(conn, false));
        self.segment(conn, true, c, 0, SYN, &[], ts)?;
        self.segment(conn, false, s, c.wrapping_add(1), SYN | ACK, &[], ts)?;
        self.segment(
            conn,
            true,
            c.wrapping_add(1),
            s.wrapping_add(1),
            ACK,
            &[],
            ts,
        )?;
        Ok(FlowState {
            client_next: c.wrapping_add(1),
            server_next: s.wrapping_add(1),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        conn: &CaptureConn,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
        ts: Duration,
    ) -> io::Result<()> {
        let (cip, cport, sip, sport) = endpoints(conn);
        let (src, sp, dst, dp) = if from_client {
            (cip, cport, sip, sport)
        } else {
            (sip, sport, cip, cport)
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        let frame = build_frame(src, sp, dst, dp, seq, ack, flags, payload, self.ip_id);
        self.packets += 1;
        self.writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: match conn.transport {
                    TransportKind::Tls => 1,
                    _ => 0,
                },
                timestamp: ts,
                original_len: frame.len() as u32,
                data: Cow::Owned(frame),
                options: Vec::new(),
            })
            .map_err(pcap_err)?;
        Ok(())
    }
}

fn mac(ip: IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

/// RFC 1071 one's-complement sum, folded.
fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Builds one Ethernet frame carrying a TCP segment.
#[allow(clippy::too_many_arguments)]
fn build_frame(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
    ip_id: u16,
) -> Vec<u8> {
    // TCP header: 20 bytes, plus MSS + window scale options on SYNs (RFC 7323 §2.2).
    let mut tcp = Vec::with_capacity(32 + payload.len());
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
    let syn = flags & SYN != 0;
    let hdr_len: u8 = if syn { 28 } else { 20 };
    tcp.push((hdr_len / 4) << 4);
    tcp.push(flags);
    tcp.extend_from_slice(&0xffffu16.to_be_bytes()); // window (scaled on non-SYN segments)
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    if syn {
        // MSS 65495 (loopback), NOP, window scale.
        tcp.extend_from_slice(&[2, 4, 0xff, 0xd7, 1, 3, 3, WINDOW_SCALE]);
    }
    tcp.extend_from_slice(payload);
    let tcp_len = tcp.len();

    let mut frame = Vec::with_capacity(14 + 40 + tcp_len);
    let (ethertype, ip_header) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (0x0800u16, ipv4_header(s, d, tcp_len, ip_id)),
        (s, d) => {
            let s6 = to_v6(s);
            let d6 = to_v6(d);
            (0x86dd, ipv6_header(s6, d6, tcp_len))
        }
    };
    // TCP checksum over the pseudo-header (RFC 793 §3.1; RFC 8200 §8.1 for IPv6).
    let mut acc = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut a = ones_sum(0, &s.octets());
            a = ones_sum(a, &d.octets());
            a + 6 + tcp_len as u32
        }
        (s, d) => {
            let mut a = ones_sum(0, &to_v6(s).octets());
            a = ones_sum(a, &to_v6(d).octets());
            a + 6 + tcp_len as u32
        }
    };
    acc = ones_sum(acc, &tcp);
    let ck = fold(acc);
    tcp[16..18].copy_from_slice(&ck.to_be_bytes());

    frame.extend_from_slice(&mac(dst));
    frame.extend_from_slice(&mac(src));
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&ip_header);
    frame.extend_from_slice(&tcp);
    frame
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// IPv4 header (RFC 791 §3.1) with its header checksum.
fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize, id: u16) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[0x40, 0]); // DF, fragment offset 0
    h.extend_from_slice(&[64, 6, 0, 0]); // TTL, protocol TCP, checksum placeholder
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let ck = fold(ones_sum(0, &h));
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h
}

/// IPv6 header (RFC 8200 §3).
fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.extend_from_slice(&[6, 64]); // next header TCP, hop limit
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use diameter_codec::dict::base;
    use diameter_codec::{Message, MessageBuilder, ResultCode};
    use std::process::Command;
    use std::sync::Arc;

    fn cer(hbh: u32) -> Message {
        MessageBuilder::request(257, 0, false)
            .ids(hbh, hbh)
            .with(base::ORIGIN_HOST.with("pcef.example.net"))
            .with(base::ORIGIN_REALM.with("example.net"))
            .with(base::HOST_IP_ADDRESS.with(IpAddr::from([127, 0, 0, 1])))
            .with(base::VENDOR_ID.with(10415u32))
            .with(base::PRODUCT_NAME.with("diameter-node"))
            .build()
            .unwrap()
    }

    fn cea(req: &Message) -> Message {
        let me = diameter_codec::LocalIdentity::new("pcrf.example.net", "example.net");
        let mut b = MessageBuilder::answer_to(req, &me);
        b.result_code(ResultCode(2001));
        b.push(base::HOST_IP_ADDRESS.with(IpAddr::from([127, 0, 0, 2])));
        b.push(base::VENDOR_ID.with(10415u32));
        b.push(base::PRODUCT_NAME.with("diameter-node"));
        b.build().unwrap()
    }

    fn dwr(hbh: u32) -> Message {
        MessageBuilder::request(280, 0, false)
            .ids(hbh, hbh)
            .with(base::ORIGIN_HOST.with("pcef.example.net"))
            .with(base::ORIGIN_REALM.with("example.net"))
            .build()
            .unwrap()
    }

    #[test]
    fn ipv4_checksum_verifies() {
        let h = ipv4_header(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 7),
            100,
            7,
        );
        // Summing a header including its checksum gives 0xffff (folds to 0).
        assert_eq!(fold(ones_sum(0, &h)), 0);
        // RFC 1071 worked example bytes.
        assert_eq!(
            fold(ones_sum(
                0,
                &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
            )),
            !0xddf2
        );
    }

    #[test]
    fn sequence_numbers_advance_per_direction() {
        let cap = Capture::new(io::sink()).unwrap();
        let conn = CaptureConn {
            local: "10.0.0.1:40000".parse().unwrap(),
            peer: "10.0.0.2:3868".parse().unwrap(),
            local_is_server: false,
            transport: TransportKind::Tcp,
        };
        let now = SystemTime::now();
        let req = cer(1);
        cap.record(&conn, Direction::Sent, now, req.as_bytes())
            .unwrap();
        let f0 = *cap.lock().flows.get(&conn).unwrap();
        cap.record(&conn, Direction::Sent, now, req.as_bytes())
            .unwrap();
        cap.record(&conn, Direction::Received, now, cea(&req).as_bytes())
            .unwrap();
        let f1 = *cap.lock().flows.get(&conn).unwrap();
        assert_eq!(
            f1.client_next.wrapping_sub(f0.client_next),
            req.as_bytes().len() as u32
        );
        assert_eq!(
            f1.server_next.wrapping_sub(f0.server_next),
            cea(&req).as_bytes().len() as u32
        );
        assert_eq!(cap.packets(), 3 + 3);
        cap.close(&conn, Direction::Sent, now).unwrap();
        assert_eq!(cap.packets(), 9);
        assert!(cap.lock().flows.is_empty());
    }

    #[test]
    fn endpoints_put_the_server_on_3868() {
        let mapped: SocketAddr = "[::ffff:192.0.2.9]:3999".parse().unwrap();
        let conn = CaptureConn {
            local: mapped,
            peer: "[::ffff:192.0.2.10]:51000".parse().unwrap(),
            local_is_server: true,
            transport: TransportKind::Tls,
        };
        let (c, cp, s, sp) = endpoints(&conn);
        assert_eq!((c, cp), (IpAddr::from([192, 0, 2, 10]), 51000));
        assert_eq!((s, sp), (IpAddr::from([192, 0, 2, 9]), 3868));
    }

    /// Writes a CER/CEA/DWR/DWA exchange on IPv4 (TCP and TLS) and IPv6 connections, plus a
    /// message larger than one segment, from two threads.
    fn write_sample(path: &Path) -> usize {
        let cap = Arc::new(Capture::create(path).unwrap());
        let v4 = CaptureConn {
            local: "127.0.0.1:45123".parse().unwrap(),
            peer: "127.0.0.2:39001".parse().unwrap(),
            local_is_server: false,
            transport: TransportKind::Tcp,
        };
        let tls = CaptureConn {
            local: "127.0.0.1:39002".parse().unwrap(),
            peer: "127.0.0.3:45124".parse().unwrap(),
            local_is_server: true,
            transport: TransportKind::Tls,
        };
        let v6 = CaptureConn {
            local: "[2001:db8::1]:45125".parse().unwrap(),
            peer: "[2001:db8::2]:3868".parse().unwrap(),
            local_is_server: false,
            transport: TransportKind::Tcp,
        };
        let t0 = SystemTime::now();
        let mut handles = Vec::new();
        for (i, conn) in [v4, tls, v6].into_iter().enumerate() {
            let cap = cap.clone();
            handles.push(std::thread::spawn(move || {
                let base_hbh = 100 * i as u32;
                let (out, back) = if conn.local_is_server {
                    (Direction::Received, Direction::Sent)
                } else {
                    (Direction::Sent, Direction::Received)
                };
                let req = cer(base_hbh + 1);
                let t = |ms: u64| t0 + Duration::from_millis(ms);
                cap.record(&conn, out, t(1), req.as_bytes()).unwrap();
                cap.record(&conn, back, t(2), cea(&req).as_bytes()).unwrap();
                for k in 2..5 {
                    let w = dwr(base_hbh + k);
                    cap.record(&conn, out, t(10 * u64::from(k)), w.as_bytes())
                        .unwrap();
                    let a = cea(&w); // any answer with Result-Code does for DWA's shape
                    cap.record(&conn, back, t(10 * u64::from(k) + 1), a.as_bytes())
                        .unwrap();
                }
                cap.close(&conn, out, t(100)).unwrap();
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        // One message bigger than a segment: a CER with a long Product-Name.
        let big_conn = CaptureConn {
            local: "127.0.0.1:45126".parse().unwrap(),
            peer: "127.0.0.4:40000".parse().unwrap(),
            local_is_server: false,
            transport: TransportKind::Tcp,
        };
        let big = MessageBuilder::request(257, 0, false)
            .ids(900, 900)
            .with(base::ORIGIN_HOST.with("pcef.example.net"))
            .with(base::ORIGIN_REALM.with("example.net"))
            .with(base::HOST_IP_ADDRESS.with(IpAddr::from([127, 0, 0, 1])))
            .with(base::VENDOR_ID.with(0u32))
            .with(base::PRODUCT_NAME.with("x".repeat(65_400)))
            .to_bytes();
        assert!(big.len() > MAX_SEGMENT);
        cap.record(&big_conn, Direction::Sent, t0, &big).unwrap();
        drop(cap); // flushes
        3 * 8 + 1
    }

    #[test]
    fn tshark_decodes_every_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diameter.pcapng");
        let expected = write_sample(&path);
        assert!(std::fs::metadata(&path).unwrap().len() > 0);

        let out = match Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args([
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
            ])
            .args(["-T", "fields", "-E", "separator=|"])
            .args([
                "-e",
                "frame.number",
                "-e",
                "diameter.cmd.code",
                "-e",
                "_ws.expert",
                "-e",
                "_ws.malformed",
            ])
            .args([
                "-e",
                "_ws.expert.severity",
                "-e",
                "tcp.analysis.flags",
                "-e",
                "diameter.Origin-Host",
            ])
            .args(["-e", "frame.interface_id"])
            .output()
        {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!("SKIP: tshark not found; the capture was written but not decoded");
                return;
            }
            Err(e) => panic!("running tshark: {e}"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut diameter = 0;
        let mut tls_frames = 0;
        for line in stdout.lines() {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f.len(), 8, "{line}");
            assert!(f[3].is_empty(), "malformed packet: {line}");
            assert!(f[5].is_empty(), "TCP analysis flagged a problem: {line}");
            // Frames carrying Diameter: no expert info at all. SYN/FIN frames: TCP's own
            // Chat ("Connection establish request") and Note ("This frame initiates the
            // connection closing") items only, never Warning or Error.
            if f[1].is_empty() {
                for sev in f[4].split(',').filter(|s| !s.is_empty()) {
                    let sev: u32 = sev.parse().unwrap();
                    assert!(sev <= 0x0040_0000, "expert info above Note: {line}");
                }
            } else {
                assert!(f[2].is_empty(), "expert info on a Diameter frame: {line}");
                diameter += f[1].split(',').count();
                assert!(f[1].split(',').all(|c| c == "257" || c == "280"), "{line}");
                // The values we wrote, as Wireshark reads them.
                assert!(
                    matches!(f[6], "pcef.example.net" | "pcrf.example.net"),
                    "{line}"
                );
                tls_frames += usize::from(f[7] == "1");
            }
        }
        assert_eq!(diameter, expected, "tshark output:\n{stdout}");
        assert_eq!(
            tls_frames, 8,
            "one TLS connection of 8 messages on interface 1"
        );
    }
}
