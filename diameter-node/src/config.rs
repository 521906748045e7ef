//! The node's configuration file: TOML read with serde into plain data ([`NodeToml`]), then
//! turned into the running [`NodeConfig`] (which holds what TOML cannot: the opened capture,
//! TLS configurations, the resolved dictionary).
//!
//! Every binary that runs a node embeds [`NodeToml`] as its `[node]` table and reads its file
//! with [`load_config`], so that a mistake anywhere in the file (a misspelt key, a wrong
//! type) is reported as `FILE:LINE:COLUMN: message naming the key`. The documented example
//! is `diameter-node/examples/node.toml`.
//!
//! Durations are seconds, as TOML integers or decimals (`0.5` is 500 ms). Relative file paths
//! (TLS files, capture, dictionaries) are relative to the directory of the configuration
//! file.

use crate::capture::Capture;
use crate::node::{ListenSpec, NodeConfig, PeerSpec};
use crate::peer::{self, InbandSecurity, Timers, UnknownPeerPolicy};
use crate::routing::{RedirectUsage, Route, RouteAction, RoutePeer};
use crate::transport::{TlsConfig, Transport};
use diameter_codec::{Dictionary, Limits};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A configuration file that cannot be used. Displays as `FILE:LINE:COLUMN: message` when the
/// place is known (syntax, unknown keys, wrong types), else `FILE: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            position: None,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses TOML `text` (read from `file`) into `T`. Errors carry the line and column of the
/// key or value at fault and the dotted path of the key (`node.peers[1].timers.tw`); serde's
/// "unknown field" is reported as an unknown key.
pub fn parse_config<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let located = |e: &toml::de::Error, message: String| ConfigError {
        file: file.to_path_buf(),
        position: e.span().map(|s| line_col(text, s.start)),
        message,
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| located(&e, e.message().trim_end().to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = inner
            .message()
            .trim_end()
            .replacen("unknown field", "unknown key", 1)
            .replacen("missing field", "missing key", 1);
        // The path is "." for errors of the top level itself (a missing top-level key).
        let message = if path == "." {
            what
        } else {
            format!("{path}: {what}")
        };
        located(&inner, message)
    })
}

/// Reads and parses a configuration file into `T`: a server's own configuration struct with
/// a `node: NodeToml` field (and `#[serde(deny_unknown_fields)]`) gets the same
/// `FILE:LINE:COLUMN` errors for its own tables as for the node's.
pub fn load_config<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, format!("cannot read: {e}")))?;
    parse_config(path, &text)
}

/// A file holding only the `[node]` table (diameter-bench's `--config`, tests).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// The node.
    pub node: NodeToml,
}

/// Reads a file holding only a `[node]` table and builds the node's configuration.
pub fn load_node_config(path: impl AsRef<Path>) -> Result<NodeConfig, ConfigError> {
    let path = path.as_ref();
    load_config::<NodeFile>(path)?.node.to_node_config(path)
}

/// A duration in seconds: an integer or a decimal, not negative.
fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = f64::deserialize(d)?;
    Duration::try_from_secs_f64(s)
        .map_err(|_| serde::de::Error::custom(format!("{s} is not a duration in seconds")))
}

fn opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    secs(d).map(Some)
}

/// The `[node]` table. Every key but `origin_host` and `origin_realm` is optional; defaults
/// are those of [`NodeConfig::new`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeToml {
    /// Origin-Host (DiameterIdentity, RFC 6733 §4.3.1).
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Product-Name in CER/CEA.
    pub product_name: Option<String>,
    /// Vendor-Id in CER/CEA.
    pub vendor_id: Option<u32>,
    /// Firmware-Revision in CER/CEA.
    pub firmware_revision: Option<u32>,
    /// Host-IP-Address values in CER/CEA.
    pub host_ip_addresses: Option<Vec<IpAddr>>,
    /// Supported-Vendor-Id values in CER/CEA.
    #[serde(default)]
    pub supported_vendor_ids: Vec<u32>,
    /// Inband-Security-Id handling.
    pub inband_security: Option<InbandSecurityToml>,
    /// CERs from hosts that are not configured peers.
    pub unknown_peer: Option<UnknownPeerToml>,
    /// Applications advertised in CER/CEA.
    #[serde(default)]
    pub applications: Vec<ApplicationToml>,
    /// Whether this node is an agent (relays requests not for it).
    #[serde(default)]
    pub agent: bool,
    /// Validate requests for local handlers against the dictionary.
    pub validate: Option<bool>,
    /// Applications whose requests are validated at the strict level (every grammar at
    /// every depth); the others at the liberal default.
    #[serde(default)]
    pub strict_validation_applications: Vec<u32>,
    /// Answer 3009 to a known AVP whose M bit disagrees with the dictionary.
    #[serde(default)]
    pub strict_m_bit: bool,
    /// The node's TLS files, used by every `tls` listener and peer without its own.
    pub tls: Option<TlsToml>,
    /// Listening addresses.
    #[serde(default)]
    pub listen: Vec<ListenToml>,
    /// Timers every peer starts from.
    pub timers: Option<TimersToml>,
    /// Configured peers.
    #[serde(default)]
    pub peers: Vec<PeerToml>,
    /// Realm routes.
    #[serde(default)]
    pub routes: Vec<RouteToml>,
    /// Diameter host → address, for hosts a redirect names that are not configured peers.
    #[serde(default)]
    pub hosts: HashMap<String, SocketAddr>,
    /// Default deadline of a request, seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub request_timeout: Option<Duration>,
    /// How long a started frame may take to arrive, seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub frame_timeout: Option<Duration>,
    /// TLS handshake and connect deadline of connections we open, seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub handshake_timeout: Option<Duration>,
    /// From accept to the peer's CER (TLS handshake included), seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub cer_timeout: Option<Duration>,
    /// Bytes queued for writing on one connection before the node stops reading from it.
    pub write_queue_bytes: Option<usize>,
    /// How long a connection with messages waiting may write nothing before it is closed,
    /// seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub write_stall_timeout: Option<Duration>,
    /// Most requests in flight from this node.
    pub max_pending: Option<usize>,
    /// Most requests handled at once.
    pub max_concurrent_handlers: Option<usize>,
    /// Per-peer send queue.
    pub peer_queue: Option<usize>,
    /// Most connections at once that have not finished their CER.
    pub max_handshaking: Option<usize>,
    /// The same from one IP address.
    pub max_handshaking_per_source: Option<usize>,
    /// Message limits.
    pub limits: Option<LimitsToml>,
    /// Duplicate detection.
    pub dedup: Option<DedupToml>,
    /// pcapng file to write every message sent and received to.
    pub capture: Option<PathBuf>,
    /// Address of the Prometheus endpoint (`GET /metrics`).
    pub metrics: Option<SocketAddr>,
    /// Dictionary files added to the embedded ones (format: `dictionaries/README.md`).
    #[serde(default)]
    pub dictionaries: Vec<PathBuf>,
}

/// Inband-Security-Id handling (RFC 6733 §6.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InbandSecurityToml {
    /// Omit the AVP.
    Omit,
    /// Advertise and accept only NO_INBAND_SECURITY. (In-band TLS, RFC 6733 §6.10, is
    /// never agreed: use `transport = "tls"`, TLS at connection set-up.)
    NoInbandSecurity,
}

/// What to do with a CER from a host that is not a configured peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownPeerToml {
    /// Accept it as a responder-only peer.
    Accept,
    /// Answer 3010 DIAMETER_UNKNOWN_PEER.
    Reject,
    /// Close without an answer.
    Close,
}

/// Application kind in CER/CEA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppKindToml {
    /// Auth-Application-Id.
    Auth,
    /// Acct-Application-Id.
    Acct,
    /// The Relay application (0xffffffff, RFC 6733 §2.4); takes no id.
    Relay,
}

/// One `[[node.applications]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationToml {
    /// Application-Id (not for `relay`).
    pub id: Option<u32>,
    /// `auth` (default), `acct` or `relay`.
    pub kind: Option<AppKindToml>,
    /// Vendor-Id: advertise inside a Vendor-Specific-Application-Id (RFC 6733 §6.11).
    pub vendor: Option<u32>,
}

/// TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportToml {
    /// Plain TCP.
    #[default]
    Tcp,
    /// TLS at connect (RFC 6733 §13).
    Tls,
}

/// TLS files, PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsToml {
    /// Our certificate chain, end entity first.
    pub cert: PathBuf,
    /// Our private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CAs peers' certificates must chain to.
    pub ca: PathBuf,
}

/// One `[[node.listen]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenToml {
    /// Address and port (port 0 picks a free one).
    pub addr: SocketAddr,
    /// `tcp` (default) or `tls`.
    #[serde(default)]
    pub transport: TransportToml,
    /// TLS files for this listener instead of `[node.tls]`.
    pub tls: Option<TlsToml>,
}

/// Peer timers, seconds; each key left out keeps its default.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersToml {
    /// Tc: between connection attempts (RFC 6733 §12).
    #[serde(default, deserialize_with = "opt_secs")]
    pub tc: Option<Duration>,
    /// Tw: watchdog interval (RFC 3539 §3.4.1; at least 6 s in use).
    #[serde(default, deserialize_with = "opt_secs")]
    pub tw: Option<Duration>,
    /// Each step of connection set-up (connect, CER → CEA).
    #[serde(default, deserialize_with = "opt_secs")]
    pub handshake: Option<Duration>,
    /// Wait for DPA after DPR.
    #[serde(default, deserialize_with = "opt_secs")]
    pub dpa: Option<Duration>,
    /// After answering DPR, wait for the peer to close.
    #[serde(default, deserialize_with = "opt_secs")]
    pub linger: Option<Duration>,
    /// After BUSY or DO_NOT_WANT_TO_TALK_TO_YOU, wait before connecting again.
    #[serde(default, deserialize_with = "opt_secs")]
    pub hold_off: Option<Duration>,
}

impl TimersToml {
    /// Sets the timers this table gives in `t`.
    pub fn apply(&self, t: &mut Timers) {
        let set = |v: Option<Duration>, f: &mut Duration| {
            if let Some(v) = v {
                *f = v;
            }
        };
        set(self.tc, &mut t.tc);
        set(self.tw, &mut t.tw);
        set(self.handshake, &mut t.handshake);
        set(self.dpa, &mut t.dpa);
        set(self.linger, &mut t.linger);
        set(self.hold_off, &mut t.hold_off);
    }
}

/// One `[[node.peers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerToml {
    /// The peer's Origin-Host.
    pub host: String,
    /// Where to connect; left out for a peer that connects to us.
    pub connect: Option<SocketAddr>,
    /// `tcp` (default) or `tls`, for the connection we open.
    #[serde(default)]
    pub transport: TransportToml,
    /// TLS files for this peer instead of `[node.tls]`.
    pub tls: Option<TlsToml>,
    /// Timers for this peer, over `[node.timers]`.
    pub timers: Option<TimersToml>,
    /// An agent (proxy, DRA) that forwards others' requests without advertising the Relay
    /// application: its requests may carry another Origin-Host with Route-Record.
    #[serde(default)]
    pub forwards: bool,
    /// Addresses the peer connects from, besides the IP of `connect`: its connections
    /// handshake outside the anonymous pool (`max_handshaking`).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

/// Route action (RFC 6733 §2.7 Local Action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteActionToml {
    /// Handled here.
    Local,
    /// Relayed.
    Relay,
    /// Proxied.
    Proxy,
    /// Answered 3006 with Redirect-Host.
    Redirect,
}

/// Redirect-Host-Usage (RFC 6733 §6.13), by its value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum RedirectUsageToml {
    DontCache,
    AllSession,
    AllRealm,
    RealmAndApplication,
    AllApplication,
    AllHost,
    AllUser,
}

/// One next hop of a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePeerToml {
    /// The peer's Origin-Host.
    pub host: String,
    /// Lower is preferred; by default the position in the list.
    pub priority: Option<u32>,
    /// Share among peers of equal priority; 1 by default.
    pub weight: Option<u32>,
}

/// One `[[node.routes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteToml {
    /// The realm, or `*` for the default route.
    pub realm: String,
    /// The application; left out for any.
    pub application: Option<u32>,
    /// `local`, `relay`, `proxy` or `redirect`.
    pub action: RouteActionToml,
    /// Next hops, or the hosts a redirect names.
    #[serde(default)]
    pub peers: Vec<RoutePeerToml>,
    /// Redirect-Host-Usage of redirect answers.
    pub redirect_usage: Option<RedirectUsageToml>,
    /// Redirect-Max-Cache-Time of redirect answers, seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub redirect_cache_time: Option<Duration>,
}

/// `[node.limits]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsToml {
    /// Largest Message Length accepted.
    pub max_message_len: Option<u32>,
    /// Deepest nesting of Grouped AVPs.
    pub max_depth: Option<usize>,
    /// Most AVPs in one message.
    pub max_avps: Option<usize>,
}

/// `[node.dedup]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupToml {
    /// How long answers are kept, seconds.
    #[serde(default, deserialize_with = "opt_secs")]
    pub window: Option<Duration>,
    /// How many requests are remembered.
    pub capacity: Option<usize>,
    /// How many bytes of answers are kept.
    pub max_bytes: Option<usize>,
}

impl NodeToml {
    /// The running configuration. `config_file` names the file in errors, and relative paths
    /// are taken from its directory. Opens the capture file, reads the TLS and dictionary
    /// files.
    pub fn to_node_config(&self, config_file: &Path) -> Result<NodeConfig, ConfigError> {
        let base = config_file.parent().unwrap_or(Path::new(""));
        let path = |p: &Path| base.join(p);
        let err = |m: String| ConfigError::new(config_file, m);

        let mut cfg = NodeConfig::new(&self.origin_host, &self.origin_realm);
        let l = &mut cfg.local;
        if let Some(v) = &self.product_name {
            l.product_name.clone_from(v);
        }
        if let Some(v) = self.vendor_id {
            l.vendor_id = v;
        }
        l.firmware_revision = self.firmware_revision;
        if let Some(v) = &self.host_ip_addresses {
            l.host_ip_addresses.clone_from(v);
        }
        l.supported_vendor_ids
            .clone_from(&self.supported_vendor_ids);
        if let Some(v) = self.inband_security {
            l.inband_security = match v {
                InbandSecurityToml::Omit => InbandSecurity::Omit,
                InbandSecurityToml::NoInbandSecurity => InbandSecurity::NoInbandSecurity,
            };
        }
        if let Some(v) = self.unknown_peer {
            l.unknown_peer = match v {
                UnknownPeerToml::Accept => UnknownPeerPolicy::Accept,
                UnknownPeerToml::Reject => UnknownPeerPolicy::Reject,
                UnknownPeerToml::Close => UnknownPeerPolicy::Close,
            };
        }
        for (i, a) in self.applications.iter().enumerate() {
            let kind = a.kind.unwrap_or(AppKindToml::Auth);
            let app = match (kind, a.id) {
                (AppKindToml::Relay, None) => peer::Application::relay(),
                (AppKindToml::Relay, Some(_)) => {
                    return Err(err(format!(
                        "node.applications[{i}]: a relay application takes no id"
                    )));
                }
                (_, None) => return Err(err(format!("node.applications[{i}]: missing key `id`"))),
                (AppKindToml::Auth, Some(id)) => peer::Application {
                    vendor: a.vendor,
                    ..peer::Application::auth(id)
                },
                (AppKindToml::Acct, Some(id)) => peer::Application {
                    vendor: a.vendor,
                    ..peer::Application::acct(id)
                },
            };
            l.applications.push(app);
        }
        cfg.agent = self.agent;
        if let Some(v) = self.validate {
            cfg.validate = v;
        }
        cfg.strict_validation_applications = self.strict_validation_applications.clone();
        cfg.strict_m_bit = self.strict_m_bit;

        // [node.tls] is read once however many listeners and peers use it; a listener's or
        // peer's own table is read for it.
        let mut node_tls: Option<Transport> = None;
        let mut transport = |t: TransportToml,
                             own: Option<&TlsToml>,
                             what: &str|
         -> Result<Transport, ConfigError> {
            let files = match (t, own, &self.tls) {
                (TransportToml::Tcp, None, _) => return Ok(Transport::Tcp),
                (TransportToml::Tcp, Some(_), _) => {
                    return Err(err(format!("{what}: `tls` files given with transport tcp")));
                }
                (TransportToml::Tls, Some(own), _) => own,
                (TransportToml::Tls, None, Some(node)) => {
                    if let Some(t) = &node_tls {
                        return Ok(t.clone());
                    }
                    node
                }
                (TransportToml::Tls, None, None) => {
                    return Err(err(format!(
                        "{what}: transport tls needs its own `tls` table or [node.tls]"
                    )));
                }
            };
            let tls =
                TlsConfig::from_pem_files(&path(&files.ca), &path(&files.cert), &path(&files.key))
                    .map_err(|e| err(format!("{what}: {e}")))?;
            let t = Transport::Tls(Arc::new(tls));
            if own.is_none() {
                node_tls = Some(t.clone());
            }
            Ok(t)
        };
        for (i, s) in self.listen.iter().enumerate() {
            cfg.listen.push(ListenSpec {
                addr: s.addr,
                transport: transport(s.transport, s.tls.as_ref(), &format!("node.listen[{i}]"))?,
            });
        }
        let mut timers = Timers::default();
        if let Some(t) = &self.timers {
            t.apply(&mut timers);
        }
        for (i, p) in self.peers.iter().enumerate() {
            let mut t = timers;
            if let Some(own) = &p.timers {
                own.apply(&mut t);
            }
            cfg.peers.push(PeerSpec {
                host: p.host.clone(),
                connect: p.connect,
                transport: transport(p.transport, p.tls.as_ref(), &format!("node.peers[{i}]"))?,
                timers: t,
                forwards: p.forwards,
                addresses: p.addresses.clone(),
            });
        }
        for r in &self.routes {
            cfg.routes.push(Route {
                realm: r.realm.clone(),
                application: r.application,
                action: match r.action {
                    RouteActionToml::Local => RouteAction::Local,
                    RouteActionToml::Relay => RouteAction::Relay,
                    RouteActionToml::Proxy => RouteAction::Proxy,
                    RouteActionToml::Redirect => RouteAction::Redirect,
                },
                peers: r
                    .peers
                    .iter()
                    .enumerate()
                    .map(|(i, p)| RoutePeer {
                        host: p.host.clone(),
                        priority: p.priority.unwrap_or(i as u32),
                        weight: p.weight.unwrap_or(1),
                    })
                    .collect(),
                redirect_usage: r
                    .redirect_usage
                    .map_or(RedirectUsage::DontCache, RedirectUsageToml::into),
                redirect_cache_time: r.redirect_cache_time.unwrap_or(Duration::ZERO),
            });
        }
        cfg.host_map = self
            .hosts
            .iter()
            .map(|(h, a)| (crate::identity_key(h).into_owned(), *a))
            .collect();

        let set = |v: Option<Duration>, f: &mut Duration| {
            if let Some(v) = v {
                *f = v;
            }
        };
        set(self.request_timeout, &mut cfg.request_timeout);
        set(self.frame_timeout, &mut cfg.frame_timeout);
        set(self.handshake_timeout, &mut cfg.handshake_timeout);
        set(self.cer_timeout, &mut cfg.cer_timeout);
        set(self.write_stall_timeout, &mut cfg.write_stall_timeout);
        let set = |v: Option<usize>, f: &mut usize| {
            if let Some(v) = v {
                *f = v;
            }
        };
        set(self.max_pending, &mut cfg.max_pending);
        set(
            self.max_concurrent_handlers,
            &mut cfg.max_concurrent_handlers,
        );
        set(self.peer_queue, &mut cfg.peer_queue);
        set(self.max_handshaking, &mut cfg.max_handshaking);
        set(
            self.max_handshaking_per_source,
            &mut cfg.max_handshaking_per_source,
        );
        set(self.write_queue_bytes, &mut cfg.write_queue_bytes);
        if let Some(l) = &self.limits {
            let d = Limits::DEFAULT;
            cfg.limits = Limits {
                max_message_len: l.max_message_len.unwrap_or(d.max_message_len),
                max_depth: l.max_depth.unwrap_or(d.max_depth),
                max_avps: l.max_avps.unwrap_or(d.max_avps),
            };
        }
        if let Some(d) = &self.dedup {
            if let Some(w) = d.window {
                cfg.dedup_window = w;
            }
            set(d.capacity, &mut cfg.dedup_capacity);
            set(d.max_bytes, &mut cfg.dedup_max_bytes);
        }
        if let Some(p) = &self.capture {
            let p = path(p);
            let cap = Capture::create(&p)
                .map_err(|e| err(format!("node.capture: cannot create {}: {e}", p.display())))?;
            cfg.capture = Some(Arc::new(cap));
        }
        cfg.metrics = self.metrics;
        if !self.dictionaries.is_empty() {
            cfg.dictionary = load_dictionaries(config_file, &self.dictionaries)?;
        }
        Ok(cfg)
    }
}

impl From<RedirectUsageToml> for RedirectUsage {
    fn from(u: RedirectUsageToml) -> Self {
        match u {
            RedirectUsageToml::DontCache => Self::DontCache,
            RedirectUsageToml::AllSession => Self::AllSession,
            RedirectUsageToml::AllRealm => Self::AllRealm,
            RedirectUsageToml::RealmAndApplication => Self::RealmAndApplication,
            RedirectUsageToml::AllApplication => Self::AllApplication,
            RedirectUsageToml::AllHost => Self::AllHost,
            RedirectUsageToml::AllUser => Self::AllUser,
        }
    }
}

/// The embedded dictionary with the operator's files (relative to the configuration file's
/// directory) added.
///
/// The result is leaked into a `&'static`: the node, its validator and its handlers borrow
/// the dictionary for the whole life of the process, as they borrow the embedded one, so
/// the hot path keeps a plain reference (no reference count, no lifetime parameter on the
/// node). A configuration is loaded once per process; each load with extra files keeps one
/// dictionary alive for good.
pub fn load_dictionaries(
    config_file: &Path,
    files: &[PathBuf],
) -> Result<&'static Dictionary, ConfigError> {
    let base = config_file.parent().unwrap_or(Path::new(""));
    let mut texts = Vec::with_capacity(files.len());
    for f in files {
        let p = base.join(f);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            ConfigError::new(
                config_file,
                format!("node.dictionaries: cannot read {}: {e}", p.display()),
            )
        })?;
        texts.push((p.display().to_string(), text));
    }
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let dict = Dictionary::embedded_with(&refs)
        .map_err(|e| ConfigError::new(config_file, format!("node.dictionaries: {e}")))?;
    Ok(Box::leak(Box::new(dict)))
}
