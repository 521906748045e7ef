//! The DRA configuration file (`dra --config FILE.toml`) and the built-in home DRA used
//! when no file is given (`dra/examples/home.toml`).
//!
//! `[node]` is the table every server shares ([`diameter_node::config::NodeToml`],
//! documented in `diameter-node/examples/node.toml`); `[dra]` the DRA's own settings,
//! `[[dra.pcrf]]` the PCRFs it selects among, `[[mode]]` redirect or proxy per realm and
//! application, `[store]` where bindings live. Unknown keys are errors naming the file,
//! line, column and key. Relative paths are relative to the file's directory.

use crate::binding::Mode;
use diameter_node::config::{ConfigError, NodeToml, RedirectUsageToml};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Diameter node.
    pub node: NodeToml,
    /// The DRA's settings.
    #[serde(default)]
    pub dra: DraSection,
    /// Mode per realm and application, first match wins; `[dra] mode` otherwise.
    #[serde(default, rename = "mode")]
    pub modes: Vec<ModeRule>,
    /// Where bindings live.
    #[serde(default)]
    pub store: StoreSection,
    /// The file this was read from; `None` for the built-in one.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Home or visited DRA (document 002: a vDRA in front of V-PCRFs, an hDRA in front of
/// H-PCRFs, reached over S9 by V-PCRFs). The behaviour is the same; the role names the
/// DRA in logs, metrics and the operator's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// hDRA.
    #[default]
    Home,
    /// vDRA.
    Visited,
}

/// How a new binding's PCRF is chosen among the healthy ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Rendezvous hashing of the UE identity over the healthy PCRFs (weighted): the same
    /// UE lands on the same PCRF, also on another DRA and after a restart.
    #[default]
    ConsistentHash,
    /// Fewest requests pending, then lowest measured latency, then fewest bindings.
    LeastLoaded,
}

/// What a redirect-mode DRA does with a termination (CCR-T, STR) it marked (document 002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Termination {
    /// Answers it itself (CCA-T or STA, 2001): the client sent it to the PCRF too.
    #[default]
    Ack,
    /// Redirects it to the PCRF (3006), which the client then follows.
    Redirect,
}

/// What one entry binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindingScope {
    /// One entry per IP-CAN session: UE identity, APN and address (29.213 §7.3.2).
    #[default]
    IpCanSession,
    /// One entry per UE: every session of a UE reaches one PCRF.
    Ue,
}

/// `[dra]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraSection {
    /// `home` or `visited`.
    #[serde(default)]
    pub role: Role,
    /// The mode when no `[[mode]]` matches: `redirect` or `proxy`.
    #[serde(default)]
    pub mode: Mode,
    /// `consistent-hash` or `least-loaded`.
    #[serde(default)]
    pub selection: Selection,
    /// Redirect mode: `ack` or `redirect`.
    #[serde(default)]
    pub termination: Termination,
    /// `ip-can-session` or `ue`.
    #[serde(default)]
    pub binding: BindingScope,
    /// Redirect-Host-Usage of redirects (RFC 6733 §6.13); ALL_SESSION by default.
    pub redirect_usage: Option<RedirectUsageToml>,
    /// Redirect-Max-Cache-Time, seconds (RFC 6733 §6.14); 600 by default.
    #[serde(default, deserialize_with = "opt_secs")]
    pub redirect_cache_time: Option<Duration>,
    /// Age-out: an entry unchanged for this long is deleted (a termination that never
    /// came). Seconds; none by default.
    #[serde(default, deserialize_with = "opt_secs")]
    pub binding_lifetime: Option<Duration>,
    /// Session-status audit: an entry unchanged for this long has each of its active Gx,
    /// Gxx and Rx sessions checked with its PCRF (a Session-Status request, our experimental
    /// command 16777214 of `dictionaries/roaming_vendor.toml`, which the `pcrf` answers from
    /// its session stores); sessions the PCRF answers 5002 DIAMETER_UNKNOWN_SESSION_ID are
    /// marked terminated (an entry left with none active is deleted), and an entry whose
    /// PCRF still holds its sessions (or cannot tell) is checked again after another
    /// interval. Seconds; none by default.
    #[serde(default, deserialize_with = "opt_secs")]
    pub audit_interval: Option<Duration>,
    /// The operator endpoint (bindings as JSON).
    pub admin: Option<SocketAddr>,
    /// The PCRFs.
    #[serde(default)]
    pub pcrf: Vec<PcrfToml>,
}

impl Default for DraSection {
    fn default() -> Self {
        Self {
            role: Role::Home,
            mode: Mode::Redirect,
            selection: Selection::ConsistentHash,
            termination: Termination::Ack,
            binding: BindingScope::IpCanSession,
            redirect_usage: None,
            redirect_cache_time: None,
            binding_lifetime: None,
            audit_interval: None,
            admin: None,
            pcrf: Vec::new(),
        }
    }
}

fn opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = f64::deserialize(d)?;
    Duration::try_from_secs_f64(s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `[[dra.pcrf]]`: one PCRF.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcrfToml {
    /// Its Diameter identity (Origin-Host).
    pub host: String,
    /// Where to connect; leave out when `[[node.peers]]` has it (TLS, timers) or it
    /// connects to us.
    pub connect: Option<SocketAddr>,
    /// Share of new bindings under consistent hashing; 1 by default.
    #[serde(default = "one")]
    pub weight: u32,
    /// The Redirect-Host sent for it; by default `aaa://HOST:PORT;transport=tcp` with the
    /// port of `connect`, or `aaa://HOST`.
    pub redirect_uri: Option<String>,
}

fn one() -> u32 {
    1
}

/// `[[mode]]`: redirect or proxy for a realm and application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRule {
    /// Destination-Realm of the request, or `*`.
    #[serde(default = "any_realm")]
    pub realm: String,
    /// Application-Id (Gx 16777238, Gxx 16777266, Rx 16777236, S9 16777267); any when
    /// left out.
    pub application: Option<u32>,
    /// `redirect` or `proxy`.
    pub mode: Mode,
}

fn any_realm() -> String {
    "*".into()
}

/// Where bindings live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// The embedded durable store (redb): bindings survive a restart.
    #[default]
    Redb,
    /// Memory only.
    Memory,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `redb` or `memory`.
    #[serde(default)]
    pub kind: StoreKind,
    /// The redb file.
    #[serde(default = "default_store_file")]
    pub file: PathBuf,
}

fn default_store_file() -> PathBuf {
    PathBuf::from("dra-bindings.redb")
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            kind: StoreKind::Redb,
            file: default_store_file(),
        }
    }
}

/// The built-in configuration: also `dra/examples/home.toml`.
pub const DEMO: &str = include_str!("../examples/home.toml");

impl Config {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Self = diameter_node::config::load_config(path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        if cfg.store.file.is_relative() {
            cfg.store.file = base.join(&cfg.store.file);
        }
        cfg.source = Some(path.to_path_buf());
        cfg.check().map_err(|message| ConfigError {
            file: path.to_path_buf(),
            position: None,
            message,
        })?;
        Ok(cfg)
    }

    /// The home DRA of the README: `examples/home.toml` as built into the binary.
    pub fn demo() -> Self {
        let file = Path::new("(built-in home.toml)");
        let cfg: Self =
            diameter_node::config::parse_config(file, DEMO).expect("the demo configuration parses");
        cfg.check().expect("the demo configuration is valid");
        cfg
    }

    /// What serde cannot check.
    pub fn check(&self) -> Result<(), String> {
        if self.dra.pcrf.is_empty() {
            return Err("[dra]: at least one [[dra.pcrf]] is needed".into());
        }
        for (i, p) in self.dra.pcrf.iter().enumerate() {
            if p.weight == 0 {
                return Err(format!("dra.pcrf[{i}] ({}): weight 0", p.host));
            }
            if self.dra.pcrf[..i]
                .iter()
                .any(|q| q.host.eq_ignore_ascii_case(&p.host))
            {
                return Err(format!("dra.pcrf[{i}]: {} listed twice", p.host));
            }
        }
        for (i, m) in self.modes.iter().enumerate() {
            if let Some(a) = m.application
                && crate::binding::Interface::from_application(a).is_none()
            {
                return Err(format!(
                    "mode[{i}]: application {a} is not Gx, Gxx, Rx or S9"
                ));
            }
        }
        Ok(())
    }

    /// The mode for a request to `realm` of `application`.
    pub fn mode_for(&self, realm: &str, application: u32) -> Mode {
        self.modes
            .iter()
            .find(|m| {
                (m.realm == "*" || m.realm.eq_ignore_ascii_case(realm))
                    && m.application.is_none_or(|a| a == application)
            })
            .map_or(self.dra.mode, |m| m.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_the_redirect_dra_of_the_readme() {
        let c = Config::demo();
        assert_eq!(c.node.origin_host, "dra.home.test");
        assert_eq!(c.node.origin_realm, "home.test");
        assert_eq!(c.node.listen[0].addr, "127.0.0.1:3868".parse().unwrap());
        assert_eq!(c.dra.mode, Mode::Redirect);
        assert_eq!(c.dra.pcrf[0].host, "pcrf.home.test");
        assert_eq!(
            c.dra.pcrf[0].connect,
            Some("127.0.0.1:3869".parse().unwrap())
        );
        assert_eq!(c.mode_for("home.test", 16_777_238), Mode::Redirect);
    }

    #[test]
    fn the_example_files_load_and_modes_match_realm_and_application() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for f in ["home.toml", "proxy.toml", "visited.toml"] {
            Config::load(&dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        let p = Config::load(&dir.join("proxy.toml")).unwrap();
        assert_eq!(p.mode_for("home.test", 16_777_238), Mode::Proxy);
        assert_eq!(p.mode_for("home.test", 16_777_236), Mode::Redirect);
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dra.toml");
        std::fs::write(
            &p,
            "[node]\norigin_host = \"d\"\norigin_realm = \"r\"\n[dra]\nmode = \"proxy\"\nbogus = 1\n",
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err();
        assert_eq!(e.position, Some((6, 1)), "{e}");
        assert!(e.message.contains("bogus"), "{e}");
        std::fs::write(
            &p,
            "[node]\norigin_host = \"d\"\norigin_realm = \"r\"\n[dra]\nmode = \"proxy\"\n",
        )
        .unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("dra.pcrf")
        );
    }
}
