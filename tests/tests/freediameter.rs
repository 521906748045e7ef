//! Interoperability with freeDiameterd, a Diameter implementation nobody here wrote.
//!
//! Each test writes a freeDiameterd configuration into a temporary directory (TLS disabled:
//! `SecPort = 0`, no `TLS_Cred`, `No_TLS` on every `ConnectPeer`; no SCTP, no IPv6; the
//! NASREQ, DCCA and 3GPP DCCA dictionaries loaded in that order; incoming peers whitelisted
//! with `acl_wl.fdx`), starts `freeDiameterd -c CONF` on a free port, waits until it listens,
//! and kills it by PID when the test ends, panics included ([`FreeDiameter`]'s `Drop`).
//!
//! - [`capabilities_and_watchdog_both_ways`]: CER/CEA and DWR/DWA with our node connecting to
//!   freeDiameterd and with freeDiameterd connecting to our node.
//! - [`gx_and_gy_relayed_intact`]: our client → freeDiameterd (relay) → our server, Gx CCR/CCA
//!   and RAR/RAA, Gy CCR-I/U/T with several MSCC; every AVP arrives as sent (apart from the
//!   Route-Record the relay appends).
//! - [`disconnect_peer_both_ways`]: DPR/DPA from our `shutdown()`, and from freeDiameterd when
//!   it is stopped with SIGTERM.
//!
//! freeDiameterd (1.2.1 here; current upstream sources do the same) appends a Route-Record
//! naming the peer it received a message from to every routable message, answers included
//! (`fd_msg_source_setrr` in `libfdcore/p_psm.c`), although RFC 6733 §6.1.8 only asks for it in
//! requests. The comparisons therefore ignore Route-Record in answers as well as requests and
//! check separately that each one names the expected peer.
//!
//! The messages each node sent and received are read back from its capture file
//! ([`diameter_node::capture::Capture`], pcapng).
//!
//! `DIAMETER_FREEDIAMETER_LOG=1` prints each daemon's configuration and output (they are
//! printed anyway when a test fails).
//!
//! Without `freeDiameterd` (or its extensions) the tests print `SKIP: freeDiameterd not found`
//! and pass, unless `DIAMETER_REQUIRE_FREEDIAMETER=1` (CI sets it).

use bytes::{Bytes, BytesMut};
use diameter_codec::dict::{base, dcca};
use diameter_codec::{Dictionary, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::capture::Capture;
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn, relay_route};
use diameter_node::peer::{Application, Timers};
use pcap_file::pcapng::{Block, PcapNgReader};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::mpsc;

const GX: u32 = 16_777_238;
const DCCA: u32 = 4;
const VENDOR_3GPP: u32 = 10_415;
const CMD_DWR: u32 = 280;
const CMD_DPR: u32 = 282;
const CMD_CER: u32 = 257;

const RELAY_HOST: &str = "dra.relay.net";
const RELAY_REALM: &str = "relay.net";
const CLIENT_REALM: &str = "client.net";
const SERVER_REALM: &str = "server.net";

// ---------------------------------------------------------------------------------------------
// Finding and running freeDiameterd.
// ---------------------------------------------------------------------------------------------

/// The daemon and its extension directory.
struct Install {
    daemon: PathBuf,
    extensions: PathBuf,
}

const NEEDED_EXTENSIONS: [&str; 4] = [
    "dict_nasreq.fdx",
    "dict_dcca.fdx",
    "dict_dcca_3gpp.fdx",
    "acl_wl.fdx",
];

fn find_install() -> Option<Install> {
    let daemon = match std::env::var_os("FREEDIAMETERD") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
                .map(|d| d.join("freeDiameterd"))
                .find(|p| p.is_file())
        }
    }?;
    let extensions = [
        "/usr/lib/x86_64-linux-gnu/freeDiameter",
        "/usr/lib/aarch64-linux-gnu/freeDiameter",
        "/usr/lib/freeDiameter",
        "/usr/local/lib/freeDiameter",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|d| NEEDED_EXTENSIONS.iter().all(|e| d.join(e).is_file()))?;
    Some(Install { daemon, extensions })
}

/// The installation, or `None` after printing SKIP (panics when CI requires freeDiameterd).
fn install_or_skip() -> Option<Install> {
    let found = find_install();
    if found.is_none() {
        if std::env::var("DIAMETER_REQUIRE_FREEDIAMETER").as_deref() == Ok("1") {
            panic!(
                "freeDiameterd (with {NEEDED_EXTENSIONS:?}) not found and \
                 DIAMETER_REQUIRE_FREEDIAMETER=1"
            );
        }
        println!("SKIP: freeDiameterd not found");
    }
    found
}

/// A peer freeDiameterd connects to (a `ConnectPeer` block).
struct ConnectTo {
    host: &'static str,
    addr: SocketAddr,
    /// Per-peer `TwTimer`, seconds.
    tw: Option<u32>,
}

/// What goes into the generated configuration.
struct FdConfig {
    /// Identities allowed to connect (`acl_wl.fdx`, `ALLOW_IPSEC`: no TLS).
    allow: Vec<&'static str>,
    connect: Vec<ConnectTo>,
    /// Global `TwTimer`, seconds (at least 6).
    tw: u32,
}

/// A free TCP port on every address (the Debian build listens on all of them, whatever
/// `ListenOn` says).
fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A running freeDiameterd. Dropping it kills the process (by PID) and reaps it.
struct FreeDiameter {
    child: Child,
    port: u16,
    log: PathBuf,
    conf: PathBuf,
    _dir: TempDir,
}

impl FreeDiameter {
    /// Starts the daemon; a start that fails (another process took the port between
    /// [`free_port`] and the daemon's bind) is retried on another port.
    fn start(inst: &Install, cfg: &FdConfig) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let mut fd = Self::spawn(inst, cfg);
            match fd.wait_listening(Duration::from_secs(10)) {
                Ok(()) => return fd,
                Err(e) => last = format!("{e}\n{}", fd.log()),
            }
        }
        panic!("freeDiameterd did not start: {last}");
    }

    fn spawn(inst: &Install, cfg: &FdConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let ext = |name: &str| inst.extensions.join(name).display().to_string();
        let acl = dir.path().join("acl_wl.conf");
        let mut acl_text = String::new();
        for host in &cfg.allow {
            writeln!(acl_text, "ALLOW_IPSEC {host}").unwrap();
        }
        std::fs::write(&acl, acl_text).expect("write acl_wl.conf");
        let mut conf = String::new();
        writeln!(conf, "Identity = \"{RELAY_HOST}\";").unwrap();
        writeln!(conf, "Realm = \"{RELAY_REALM}\";").unwrap();
        writeln!(conf, "Port = {port};").unwrap();
        writeln!(conf, "SecPort = 0;").unwrap();
        writeln!(conf, "ListenOn = \"127.0.0.1\";").unwrap();
        writeln!(conf, "No_SCTP;").unwrap();
        writeln!(conf, "No_IPv6;").unwrap();
        writeln!(conf, "TcTimer = 2;").unwrap();
        writeln!(conf, "TwTimer = {};", cfg.tw.max(6)).unwrap();
        for e in ["dict_nasreq.fdx", "dict_dcca.fdx", "dict_dcca_3gpp.fdx"] {
            writeln!(conf, "LoadExtension = \"{}\";", ext(e)).unwrap();
        }
        writeln!(
            conf,
            "LoadExtension = \"{}\" : \"{}\";",
            ext("acl_wl.fdx"),
            acl.display()
        )
        .unwrap();
        for c in &cfg.connect {
            let tw = c.tw.map(|t| format!(" TwTimer = {t};")).unwrap_or_default();
            writeln!(
                conf,
                "ConnectPeer = \"{}\" {{ ConnectTo = \"{}\"; Port = {}; No_TLS; No_SCTP;{tw} }};",
                c.host,
                c.addr.ip(),
                c.addr.port()
            )
            .unwrap();
        }
        let conf_path = dir.path().join("freeDiameter.conf");
        std::fs::write(&conf_path, &conf).expect("write freeDiameter.conf");
        let log = dir.path().join("freeDiameterd.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&inst.daemon)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn freeDiameterd");
        Self {
            child,
            port,
            log,
            conf: conf_path,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The daemon's output so far, with its configuration (for failure messages).
    fn log(&self) -> String {
        format!(
            "--- {} ---\n{}\n--- freeDiameterd output ---\n{}",
            self.conf.display(),
            std::fs::read_to_string(&self.conf).unwrap_or_default(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// Waits until the daemon has a listening socket on its port (read from /proc, so no
    /// stray connection is made).
    fn wait_listening(&mut self, timeout: Duration) -> Result<(), String> {
        let end = Instant::now() + timeout;
        let suffix = format!(":{:04X}", self.port);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("freeDiameterd exited early ({status})"));
            }
            let listening = ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| {
                        let cols: Vec<&str> = l.split_whitespace().collect();
                        cols.len() > 3 && cols[1].ends_with(&suffix) && cols[3] == "0A"
                    })
            });
            if listening {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!("freeDiameterd not listening on {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM (by PID).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits for the process to exit.
    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() > end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// [`FreeDiameter::start`] without stalling the runtime while it polls for the listener.
fn start_fd(inst: &Install, cfg: &FdConfig) -> FreeDiameter {
    tokio::task::block_in_place(|| FreeDiameter::start(inst, cfg))
}

impl Drop for FreeDiameter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("DIAMETER_FREEDIAMETER_LOG").is_some() {
            eprintln!("{}", self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Our nodes and their captures.
// ---------------------------------------------------------------------------------------------

/// A node with a capture file.
struct Ours {
    node: Node,
    capture: Arc<Capture>,
    path: PathBuf,
    _dir: TempDir,
}

fn timers(tw_secs: u64) -> Timers {
    Timers {
        tc: Duration::from_millis(200),
        tw: Duration::from_secs(tw_secs),
        linger: Duration::from_millis(500),
        ..Timers::default()
    }
}

/// Starts a node `host`/`realm` advertising Gx (in Vendor-Specific-Application-Id) and DCCA,
/// listening on loopback, with these peers and realm routes (to freeDiameterd).
async fn start_node(host: &str, realm: &str, peers: Vec<PeerSpec>, routes: &[&str]) -> Ours {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("{host}.pcapng"));
    let capture = Arc::new(Capture::create(&path).expect("capture file"));
    let mut cfg = NodeConfig::new(host, realm);
    cfg.local
        .applications
        .push(Application::vendor_auth(VENDOR_3GPP, GX));
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.local.supported_vendor_ids.push(VENDOR_3GPP);
    cfg.listen
        .push(SocketAddr::from(([127, 0, 0, 1], 0)).into());
    cfg.peers = peers;
    for r in routes {
        cfg.routes.push(relay_route(r, None, &[RELAY_HOST]));
    }
    cfg.request_timeout = Duration::from_secs(5);
    cfg.capture = Some(capture.clone());
    let node = Node::start(cfg).await.expect("start node");
    Ours {
        node,
        capture,
        path,
        _dir: dir,
    }
}

/// The topology of every test here: our server `srv` accepting freeDiameterd, freeDiameterd
/// connecting to it (with Tw `fd_tw` on that connection, its own default otherwise) and
/// allowing our client `cli`, which connects to freeDiameterd with Tw `cli_tw`. Each node is
/// (host, realm, realms routed to freeDiameterd). Returns once both of our nodes have
/// freeDiameterd open.
async fn relay_chain(
    inst: &Install,
    cli: (&'static str, &str, &[&str]),
    srv: (&'static str, &str, &[&str]),
    fd_tw: Option<u32>,
    cli_tw: u64,
) -> (Ours, FreeDiameter, Ours) {
    let srv_node = start_node(srv.0, srv.1, vec![relay_accepted(30)], srv.2).await;
    let fd = start_fd(
        inst,
        &FdConfig {
            allow: vec![cli.0],
            connect: vec![ConnectTo {
                host: srv.0,
                addr: srv_node.node.listen_addrs()[0],
                tw: fd_tw,
            }],
            tw: 30,
        },
    );
    let cli_node = start_node(cli.0, cli.1, vec![relay_connected(&fd, cli_tw)], cli.2).await;
    assert!(
        cli_node
            .node
            .wait_peer(RELAY_HOST, Duration::from_secs(10))
            .await,
        "our client could not open a connection to freeDiameterd: {}",
        summary(&cli_node)
    );
    assert!(
        srv_node
            .node
            .wait_peer(RELAY_HOST, Duration::from_secs(10))
            .await,
        "freeDiameterd did not connect to our server: {}",
        summary(&srv_node)
    );
    (srv_node, fd, cli_node)
}

/// A freeDiameterd peer that connects to us.
fn relay_accepted(tw_secs: u64) -> PeerSpec {
    let mut p = PeerSpec::accept_only(RELAY_HOST);
    p.timers = timers(tw_secs);
    p
}

/// The freeDiameterd peer we connect to.
fn relay_connected(fd: &FreeDiameter, tw_secs: u64) -> PeerSpec {
    let mut p = PeerSpec::connect_tcp(RELAY_HOST, fd.addr());
    p.timers = timers(tw_secs);
    p
}

/// One message of a capture, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    command: u32,
    request: bool,
    origin_host: String,
}

impl Ours {
    /// Every Diameter message in the capture, in order (TCP payloads reassembled per flow).
    fn captured(&self) -> Vec<Message> {
        self.capture.flush().expect("flush capture");
        read_capture(&self.path)
    }

    fn seen(&self) -> Vec<Seen> {
        self.captured()
            .iter()
            .map(|m| Seen {
                command: m.header().command_code,
                request: m.header().flags.is_request(),
                origin_host: m
                    .get(base::ORIGIN_HOST)
                    .and_then(Result::ok)
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect()
    }

    /// Whether the capture has `command` (request or answer) with this Origin-Host.
    fn has(&self, command: u32, request: bool, origin_host: &str) -> bool {
        self.seen().iter().any(|s| {
            s.command == command
                && s.request == request
                && s.origin_host.eq_ignore_ascii_case(origin_host)
        })
    }

    /// Waits until every `(command, request, origin)` is in the capture.
    async fn wait_for(&self, want: &[(u32, bool, &str)], timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if want.iter().all(|(c, r, o)| self.has(*c, *r, o)) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn read_capture(path: &Path) -> Vec<Message> {
    let file = std::fs::File::open(path).expect("open capture");
    let mut reader = PcapNgReader::new(file).expect("pcapng header");
    let mut flows: HashMap<(Vec<u8>, Vec<u8>), BytesMut> = HashMap::new();
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        let Ok(Block::EnhancedPacket(epb)) = block else {
            continue;
        };
        let Some((src, dst, payload)) = tcp_payload(&epb.data) else {
            continue;
        };
        if payload.is_empty() {
            continue;
        }
        let buf = flows.entry((src, dst)).or_default();
        buf.extend_from_slice(payload);
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
            if len < 20 || buf.len() < len {
                break;
            }
            let frame: Bytes = buf.split_to(len).freeze();
            out.push(Message::from_bytes(frame).expect("captured message decodes"));
        }
    }
    out
}

/// (source address+port, destination address+port, TCP payload) of an Ethernet frame.
fn tcp_payload(frame: &[u8]) -> Option<(Vec<u8>, Vec<u8>, &[u8])> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (src, dst, tcp) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if ip.get(9)? != &6 {
                return None;
            }
            (
                ip.get(12..16)?,
                ip.get(16..20)?,
                ip.get(ihl..total.min(ip.len()))?,
            )
        }
        0x86dd => {
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if ip.get(6)? != &6 {
                return None;
            }
            (
                ip.get(8..24)?,
                ip.get(24..40)?,
                ip.get(40..(40 + plen).min(ip.len()))?,
            )
        }
        _ => return None,
    };
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    let mut s = src.to_vec();
    s.extend_from_slice(tcp.get(0..2)?);
    let mut d = dst.to_vec();
    d.extend_from_slice(tcp.get(2..4)?);
    Some((s, d, tcp.get(offset..)?))
}

fn summary(ours: &Ours) -> String {
    ours.seen()
        .iter()
        .map(|s| {
            format!(
                "{}{} from {}",
                s.command,
                if s.request { "R" } else { "A" },
                s.origin_host
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// (a) CER/CEA and DWR/DWA.
// ---------------------------------------------------------------------------------------------

/// Our node `cli.client.net` connects to freeDiameterd; freeDiameterd connects to our node
/// `srv.server.net`. On the first connection our Tw is 6 s and freeDiameterd's 30 s, so we
/// send the DWR and freeDiameterd answers; on the second freeDiameterd's Tw is 6 s (per-peer
/// `TwTimer`) and ours 30 s, so freeDiameterd sends the DWR and we answer. Both peers must stay
/// available the whole time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_and_watchdog_both_ways() {
    let Some(inst) = install_or_skip() else {
        return;
    };
    let (srv, fd, cli) = relay_chain(
        &inst,
        ("cli.client.net", CLIENT_REALM, &[]),
        ("srv.server.net", SERVER_REALM, &[]),
        Some(6),
        6,
    )
    .await;
    // Capabilities exchange, both directions.
    assert!(
        cli.has(CMD_CER, true, "cli.client.net"),
        "{}",
        summary(&cli)
    );
    assert!(cli.has(CMD_CER, false, RELAY_HOST), "{}", summary(&cli));
    assert!(srv.has(CMD_CER, true, RELAY_HOST), "{}", summary(&srv));
    assert!(
        srv.has(CMD_CER, false, "srv.server.net"),
        "{}",
        summary(&srv)
    );

    // Watchdogs: Tw = 6 s with ±2 s jitter, so both exchanges happen within 8 s plus the
    // round trip. Sample availability meanwhile.
    let want_cli = [
        (CMD_DWR, true, "cli.client.net"),
        (CMD_DWR, false, RELAY_HOST),
    ];
    let want_srv = [
        (CMD_DWR, true, RELAY_HOST),
        (CMD_DWR, false, "srv.server.net"),
    ];
    let end = Instant::now() + Duration::from_secs(12);
    loop {
        assert!(cli.node.is_peer_available(RELAY_HOST), "{}", summary(&cli));
        assert!(srv.node.is_peer_available(RELAY_HOST), "{}", summary(&srv));
        let done = want_cli.iter().all(|(c, r, o)| cli.has(*c, *r, o))
            && want_srv.iter().all(|(c, r, o)| srv.has(*c, *r, o));
        if done {
            break;
        }
        assert!(
            Instant::now() < end,
            "no complete DWR/DWA exchange both ways\n client: {}\n server: {}",
            summary(&cli),
            summary(&srv)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A DWA from freeDiameterd carries Result-Code 2001.
    let dwa = cli
        .captured()
        .into_iter()
        .find(|m| m.header().command_code == CMD_DWR && !m.header().flags.is_request())
        .expect("DWA");
    assert_eq!(dwa.get(base::RESULT_CODE).unwrap().unwrap(), 2001);

    cli.node.shutdown(Duration::from_secs(2)).await;
    srv.node.shutdown(Duration::from_secs(2)).await;
    drop(fd);
}

// ---------------------------------------------------------------------------------------------
// (b) Gx and Gy through freeDiameterd as a relay.
// ---------------------------------------------------------------------------------------------

fn vector(name: &str) -> Message {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../diameter-codec/tests/vectors")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let bytes = diameter_codec::hex_text::parse(&text).expect("hex");
    Message::from_bytes(bytes).expect("vector decodes")
}

fn rebuild(name: &str) -> MessageBuilder {
    MessageBuilder::from_message(&vector(name), Dictionary::embedded())
}

/// Replaces the first top-level AVP with the same code and vendor, or appends it.
fn set(b: &mut MessageBuilder, avp: OwnedAvp) {
    match b
        .avps
        .iter_mut()
        .find(|a| a.code == avp.code && a.vendor == avp.vendor)
    {
        Some(a) => *a = avp,
        None => {
            b.push(avp);
        }
    }
}

/// Rewrites the routing AVPs of a vector for our topology.
fn readdress(
    b: &mut MessageBuilder,
    (host, realm): (&str, &str),
    dest: Option<(Option<&str>, &str)>,
) {
    set(b, base::ORIGIN_HOST.with(host.to_string()));
    set(b, base::ORIGIN_REALM.with(realm.to_string()));
    if let Some((dest_host, dest_realm)) = dest {
        set(b, base::DESTINATION_REALM.with(dest_realm.to_string()));
        match dest_host {
            Some(h) => set(b, base::DESTINATION_HOST.with(h.to_string())),
            None => b.avps.retain(|a| a.code != base::DESTINATION_HOST.code()),
        }
    }
    b.hop_by_hop = 0;
    b.end_to_end = 0;
}

fn cc_type_number(b: &mut MessageBuilder, ty: i32, number: u32) {
    set(b, dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(ty)));
    set(b, dcca::CC_REQUEST_NUMBER.with(number));
}

/// Top-level AVPs as (code, vendor, flags, bytes without padding), in order.
type AvpList = Vec<(u32, u32, u8, Vec<u8>)>;

fn avp_list(m: &Message) -> AvpList {
    m.avps()
        .map(|a| a.expect("AVP frames"))
        .map(|a| (a.code, a.vendor, a.flags.0, a.raw.to_vec()))
        .collect()
}

fn without_route_record(list: AvpList) -> AvpList {
    list.into_iter()
        .filter(|(c, v, ..)| !(*c == base::ROUTE_RECORD.code() && *v == 0))
        .collect()
}

/// The Route-Record values of a message, in order.
fn route_records(m: &Message) -> Vec<String> {
    m.find_all(base::ROUTE_RECORD.key())
        .map(|a| String::from_utf8_lossy(a.data).into_owned())
        .collect()
}

/// Panics with the first differing AVP when the lists differ.
fn assert_same_avps(what: &str, got: &AvpList, want: &AvpList) {
    if got == want {
        return;
    }
    let mut msg = format!(
        "{what}: {} AVPs received, {} expected\n",
        got.len(),
        want.len()
    );
    for i in 0..got.len().max(want.len()) {
        let (g, w) = (got.get(i), want.get(i));
        if g != w {
            let show = |x: Option<&(u32, u32, u8, Vec<u8>)>| {
                x.map_or("-".into(), |(c, v, f, b)| {
                    format!("code {c} vendor {v} flags {f:#04x} {}", hex::encode(b))
                })
            };
            writeln!(msg, "  #{i}: got {}\n       want {}", show(g), show(w)).unwrap();
        }
    }
    panic!("{msg}");
}

/// What our server received: the request.
type Received = mpsc::UnboundedSender<Message>;

/// Answers keyed by (application, command, CC-Request-Number).
type Answers = Arc<HashMap<(u32, u32, u32), MessageBuilder>>;

fn serve(answers: Answers, received: Received) -> Arc<dyn diameter_node::node::Handler> {
    handler_fn(move |req| {
        let answers = answers.clone();
        let received = received.clone();
        async move {
            let h = *req.msg.header();
            let n = req
                .msg
                .get(dcca::CC_REQUEST_NUMBER)
                .and_then(Result::ok)
                .unwrap_or(u32::MAX);
            let _ = received.send(req.msg.clone());
            match answers.get(&(h.application_id, h.command_code, n)) {
                Some(a) => a.clone(),
                None => req.answer(ResultCode::DIAMETER_UNABLE_TO_COMPLY),
            }
        }
    })
}

/// Gx CCR-I/CCA-I, CCR-U/CCA-U and a RAR/RAA, and Gy CCR-I/U/T with several MSCC each,
/// between our client and our server through freeDiameterd. The server checks that each
/// request arrives with every AVP the client sent, in order, byte for byte (Route-Record
/// aside), and the client that each answer carries exactly the server's AVPs; the same for the
/// RAR (server → client) and its RAA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gx_and_gy_relayed_intact() {
    let Some(inst) = install_or_skip() else {
        return;
    };
    const CLI: (&str, &str) = ("cli.client.net", CLIENT_REALM);
    const SRV: (&str, &str) = ("srv.server.net", SERVER_REALM);

    // The request/answer pairs, re-addressed for our topology.
    let mut pairs: Vec<(&str, MessageBuilder, MessageBuilder)> = Vec::new();
    for (req, ans, ty, n) in [
        ("gx_ccr_i", "gx_cca_i", 1, 0),
        ("gx_ccr_u_event_trigger", "gx_cca_5_rules", 2, 1),
        ("gy_ccr_i", "gy_cca_fui_triggers", 1, 0),
        ("gy_ccr_u", "gy_cca_fui_triggers", 2, 1),
        ("gy_ccr_t", "gy_cca_fui_triggers", 3, 2),
    ] {
        let mut r = rebuild(req);
        let had_dest_host = r
            .avps
            .iter()
            .any(|a| a.code == base::DESTINATION_HOST.code());
        readdress(
            &mut r,
            CLI,
            Some((had_dest_host.then_some(SRV.0), SERVER_REALM)),
        );
        let mut a = rebuild(ans);
        readdress(&mut a, SRV, None);
        cc_type_number(&mut a, ty, n);
        pairs.push((req, r, a));
    }
    let answers: Answers = Arc::new(
        pairs
            .iter()
            .map(|(_, r, a)| {
                let n = r
                    .build()
                    .expect("request builds")
                    .get(dcca::CC_REQUEST_NUMBER)
                    .and_then(Result::ok)
                    .expect("CC-Request-Number");
                ((r.application_id, r.command_code, n), a.clone())
            })
            .collect(),
    );

    let (srv, fd, cli) = relay_chain(
        &inst,
        (CLI.0, CLI.1, &[SERVER_REALM]),
        (SRV.0, SRV.1, &[CLIENT_REALM]),
        None,
        30,
    )
    .await;
    let (srv_tx, mut srv_rx) = mpsc::unbounded_channel();
    srv.node
        .register(GX, serve(answers.clone(), srv_tx.clone()));
    srv.node.register(DCCA, serve(answers.clone(), srv_tx));
    // The client answers the RAR and remembers the RAA it built.
    let (cli_tx, mut cli_rx) = mpsc::unbounded_channel::<Message>();
    let raa_sent: Arc<Mutex<Option<MessageBuilder>>> = Arc::default();
    {
        let raa_sent = raa_sent.clone();
        cli.node.register(
            GX,
            handler_fn(move |req| {
                let _ = cli_tx.send(req.msg.clone());
                let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
                a.push(base::ORIGIN_STATE_ID.with(7u32));
                *raa_sent.lock().unwrap() = Some(a.clone());
                async move { a }
            }),
        );
    }

    for (name, req, ans) in &pairs {
        let mut req = req.clone();
        req.end_to_end = cli.node.next_end_to_end();
        let sent = req.build().expect("request builds");
        let answer = cli
            .node
            .request(req.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}\n client: {}", summary(&cli)));
        let got = srv_rx
            .try_recv()
            .unwrap_or_else(|_| panic!("{name}: server got nothing"));
        let gh = got.header();
        assert_eq!(gh.command_code, sent.header().command_code, "{name}");
        assert_eq!(gh.application_id, sent.header().application_id, "{name}");
        assert_eq!(
            gh.end_to_end,
            sent.header().end_to_end,
            "{name}: End-to-End"
        );
        assert!(gh.flags.is_request() && gh.flags.is_proxiable(), "{name}");
        assert_same_avps(
            &format!("{name} at the server"),
            &without_route_record(avp_list(&got)),
            &avp_list(&sent),
        );
        // freeDiameterd records the peer it received the request from.
        assert_eq!(route_records(&got), [CLI.0], "{name}: Route-Record");
        // The answer, as the server sent it.
        let ah = answer.header();
        assert!(!ah.flags.is_request() && !ah.flags.is_error(), "{name}");
        assert_eq!(
            ah.end_to_end,
            sent.header().end_to_end,
            "{name}: answer End-to-End"
        );
        assert_eq!(ah.command_code, sent.header().command_code, "{name}");
        assert_eq!(ah.application_id, sent.header().application_id, "{name}");
        assert_same_avps(
            &format!("{name} answer at the client"),
            &without_route_record(avp_list(&answer)),
            &avp_list(&ans.build().unwrap()),
        );
        // freeDiameterd appends a Route-Record to answers too (see the module documentation):
        // at most the one naming the server it received the answer from.
        assert!(
            route_records(&answer).iter().all(|r| r == SRV.0),
            "{name}: answer Route-Record {:?}",
            route_records(&answer)
        );
    }

    // Gx RAR from the server to the client, through freeDiameterd.
    let mut rar = rebuild("gx_rar_charging_rule_install");
    readdress(&mut rar, SRV, Some((Some(CLI.0), CLIENT_REALM)));
    rar.end_to_end = srv.node.next_end_to_end();
    let sent = rar.build().unwrap();
    let raa = srv
        .node
        .request(rar.clone())
        .await
        .unwrap_or_else(|e| panic!("RAR: {e:?}\n server: {}", summary(&srv)));
    let got = cli_rx.try_recv().expect("client got the RAR");
    assert_eq!(got.header().command_code, base::CMD_RE_AUTH);
    assert_eq!(got.header().end_to_end, sent.header().end_to_end);
    assert_same_avps(
        "RAR at the client",
        &without_route_record(avp_list(&got)),
        &avp_list(&sent),
    );
    let raa_built = raa_sent.lock().unwrap().clone().expect("RAA built");
    assert_eq!(raa.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    assert_eq!(route_records(&got), [SRV.0], "RAR Route-Record");
    assert!(
        route_records(&raa).iter().all(|r| r == CLI.0),
        "RAA Route-Record"
    );
    assert_same_avps(
        "RAA at the server",
        &without_route_record(avp_list(&raa)),
        &avp_list(&raa_built.build().unwrap()),
    );

    cli.node.shutdown(Duration::from_secs(2)).await;
    srv.node.shutdown(Duration::from_secs(2)).await;
    drop(fd);
}

// ---------------------------------------------------------------------------------------------
// (c) DPR/DPA.
// ---------------------------------------------------------------------------------------------

/// Our `shutdown()` sends DPR to freeDiameterd and gets its DPA; freeDiameterd stopped with
/// SIGTERM sends DPR to the node it connected to, which answers DPA and marks the peer
/// unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_peer_both_ways() {
    let Some(inst) = install_or_skip() else {
        return;
    };
    let (srv, mut fd, cli) = relay_chain(
        &inst,
        ("cli.client.net", CLIENT_REALM, &[]),
        ("srv.server.net", SERVER_REALM, &[]),
        None,
        30,
    )
    .await;

    // We leave: DPR from us, DPA from freeDiameterd.
    cli.node.shutdown(Duration::from_secs(3)).await;
    assert!(
        cli.wait_for(
            &[
                (CMD_DPR, true, "cli.client.net"),
                (CMD_DPR, false, RELAY_HOST)
            ],
            Duration::from_secs(3)
        )
        .await,
        "no DPR/DPA from our shutdown: {}",
        summary(&cli)
    );
    assert!(!cli.node.is_peer_available(RELAY_HOST));
    let dpa = cli
        .captured()
        .into_iter()
        .find(|m| m.header().command_code == CMD_DPR && !m.header().flags.is_request())
        .expect("DPA");
    assert_eq!(dpa.get(base::RESULT_CODE).unwrap().unwrap(), 2001);

    // freeDiameterd leaves: DPR from it, DPA from us, peer unavailable.
    fd.terminate();
    assert!(
        srv.wait_for(
            &[
                (CMD_DPR, true, RELAY_HOST),
                (CMD_DPR, false, "srv.server.net")
            ],
            Duration::from_secs(10)
        )
        .await,
        "no DPR/DPA on freeDiameterd's SIGTERM: {}",
        summary(&srv)
    );
    let end = Instant::now() + Duration::from_secs(5);
    while srv.node.is_peer_available(RELAY_HOST) && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !srv.node.is_peer_available(RELAY_HOST),
        "peer still available after its DPR"
    );
    let status = fd.wait_exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "freeDiameterd did not exit cleanly after SIGTERM ({status:?})\n{}",
        fd.log()
    );
    srv.node.shutdown(Duration::from_secs(1)).await;
}
