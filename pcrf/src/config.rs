//! The PCRF configuration file (`pcrf --config FILE.toml`) and the built-in home PCRF used
//! when no file is given (`pcrf/examples/home.toml` with `pcrf/examples/spr.toml`).
//!
//! The `[node]` table is the one every server shares ([`diameter_node::config::NodeToml`],
//! documented in `diameter-node/examples/node.toml`). Unknown keys anywhere, in this file
//! and in the SPR file, are errors naming the file, line, column and key. Relative paths
//! are relative to the directory of the configuration file.

use crate::policy::event_trigger_code;
use crate::spr::{Arp, DefaultBearerQos, SprFile, check_arp, check_uri};
use diameter_node::config::{ConfigError, NodeToml};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Diameter node.
    pub node: NodeToml,
    /// The PCRF's own settings.
    #[serde(default)]
    pub pcrf: PcrfSection,
    /// Where subscriber profiles come from.
    pub spr: SprSection,
    /// Policies that react to events the PCEF reports.
    #[serde(default, rename = "policy")]
    pub policies: Vec<EventPolicy>,
    /// Where sessions are kept.
    #[serde(default)]
    pub store: StoreSection,
    /// The SPR file's contents, read by [`Config::load`] (or the built-in one).
    #[serde(skip)]
    pub spr_data: SprFile,
    /// The file this was read from; `None` for the built-in demo.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The role this PCRF plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// H-PCRF: the subscribers' own network (SPR, PCC rules).
    #[default]
    Home,
    /// V-PCRF: S9 towards home, local policy (`[pcrf.visited]`, see [`crate::visited`]).
    Visited,
}

/// `[pcrf]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcrfSection {
    /// `home` or `visited` (then `[pcrf.visited]` is required).
    #[serde(default)]
    pub role: Role,
    /// The operator HTTP endpoint (sessions, policy pushes).
    pub admin: Option<SocketAddr>,
    /// Charging-Information (TS 29.229 §6.3.19, in the Gx CCA of TS 29.212 §5.6.3)
    /// sent in CCA-I; nothing when the section is absent.
    #[serde(default)]
    pub charging: ChargingSection,
    /// Default-EPS-Bearer-QoS for subscribers whose profile has none.
    #[serde(default = "default_bearer")]
    pub default_bearer: DefaultBearerQos,
    /// The Gx features this PCRF supports (TS 29.212 §5.4.1): the answer carries, per
    /// Feature-List-ID the PCEF sent, the features both support.
    #[serde(default = "default_features")]
    pub supported_features: Vec<FeatureList>,
    /// S9 (TS 29.215 §5.4.1, with TS 29.229 §7.2): the features of the S9 application
    /// this PCRF supports. A V-PCRF sends them in every S9 CCR-I; an H-PCRF answers the
    /// lists both support.
    #[serde(default = "default_s9_features")]
    pub s9_supported_features: Vec<FeatureList>,
    /// Rx (TS 29.214): the PCC rules derived from AF sessions, and how the AF hears of the
    /// loss of its IP-CAN session.
    #[serde(default)]
    pub rx: RxSection,
    /// `[[pcrf.roaming_partner]]`: the visited networks whose V-PCRFs may open S9 sessions
    /// (TS 29.215) with this home PCRF. None: every S9 request is refused.
    #[serde(default, rename = "roaming_partner")]
    pub roaming_partners: Vec<RoamingPartner>,
    /// `[pcrf.visited]`: the visited role's settings.
    pub visited: Option<crate::visited::config::VisitedSection>,
    /// `[pcrf.lbo]`: local breakout (document 000), home role; absent: no LBO offered.
    pub lbo: Option<crate::lbo::HomeLboConfig>,
}

/// `[[pcrf.roaming_partner]]`: one visited operator under a roaming agreement. An S9
/// request is accepted when its Origin-Realm is `realm` and the peer it arrived from (the
/// transport connection's Origin-Host from CER, RFC 6733 §5.3: the V-PCRF itself, or the
/// DRA / IPX agent relaying for it) is one of `peers`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoamingPartner {
    /// A name for logs (e.g. the operator's PLMN id).
    pub name: Option<String>,
    /// The partner's Diameter realm (the S9 CCR's Origin-Realm), compared ignoring case.
    pub realm: String,
    /// Diameter identities of the peers S9 from this partner may arrive from (compared
    /// ignoring case, RFC 6733 §4.3.1).
    pub peers: Vec<String>,
}

impl RoamingPartner {
    /// Whether S9 with Origin-Realm `realm` arriving from peer `peer` is this partner's.
    pub fn admits(&self, realm: &str, peer: &str) -> bool {
        self.realm.eq_ignore_ascii_case(realm)
            && self.peers.iter().any(|p| p.eq_ignore_ascii_case(peer))
    }
}

/// How an AF hears that the IP-CAN session its AF session is bound to is gone (Gx CCR-T,
/// a restarted PCEF, a PCEF that no longer knows the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpCanLoss {
    /// An AF that subscribed to INDICATION_OF_LOSS_OF_BEARER or
    /// INDICATION_OF_RELEASE_OF_BEARER gets an Rx RAR with those Specific-Actions (and
    /// Abort-Cause BEARER_RELEASED, every flow listed); any other AF an ASR with
    /// Abort-Cause BEARER_RELEASED. The AF answers and ends its session with STR.
    #[default]
    PerSubscription,
    /// Every AF gets an ASR (TS 29.214 §4.4.6.1 IP-CAN session termination).
    Asr,
}

/// `[pcrf.rx]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RxSection {
    /// Precedence of the derived rules (lower wins; the demo's default rules use 1000).
    #[serde(default = "rx_precedence")]
    pub precedence: u32,
    /// Allocation-Retention-Priority of the derived rules.
    #[serde(default = "rx_arp")]
    pub arp: Arp,
    /// Rating-Group of the derived rules (absent: none, the PCEF's default).
    pub rating_group: Option<u32>,
    /// The QCI of each Media-Type (TS 29.213 §6.3).
    #[serde(default)]
    pub qci: RxQci,
    /// How the AF hears of the loss of its IP-CAN session.
    #[serde(default)]
    pub ip_can_loss: IpCanLoss,
}

fn rx_precedence() -> u32 {
    100
}

fn rx_arp() -> Arp {
    Arp {
        priority_level: 2,
        pre_emption_capability: true,
        pre_emption_vulnerability: false,
    }
}

impl Default for RxSection {
    fn default() -> Self {
        Self {
            precedence: rx_precedence(),
            arp: rx_arp(),
            rating_group: None,
            qci: RxQci::default(),
            ip_can_loss: IpCanLoss::default(),
        }
    }
}

/// `[pcrf.rx.qci]`: the QCI of a media component by its Media-Type (TS 29.213 §6.3 maps
/// service information to a QCI access-independently; the standardised characteristics are
/// TS 23.203 table 6.1.7). Defaults: conversational audio 1, conversational video 2, one-way
/// (Flow-Status ENABLED-UPLINK or ENABLED-DOWNLINK) audio or video 4, application 2
/// (conversational), control 7 (interactive, low delay), data 8, text and message 9
/// (background), other and absent 9, AF signalling flows 5 (IMS signalling).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RxQci {
    /// AUDIO both ways.
    pub audio: u32,
    /// VIDEO both ways.
    pub video: u32,
    /// AUDIO or VIDEO one way.
    pub streaming: u32,
    /// DATA.
    pub data: u32,
    /// APPLICATION.
    pub application: u32,
    /// CONTROL.
    pub control: u32,
    /// TEXT and MESSAGE.
    pub text: u32,
    /// OTHER, or no Media-Type.
    pub other: u32,
    /// A component whose flows are all AF signalling (Flow-Usage AF_SIGNALLING).
    pub signalling: u32,
}

impl Default for RxQci {
    fn default() -> Self {
        Self {
            audio: 1,
            video: 2,
            streaming: 4,
            data: 8,
            application: 2,
            control: 7,
            text: 9,
            other: 9,
            signalling: 5,
        }
    }
}

fn default_bearer() -> DefaultBearerQos {
    DefaultBearerQos {
        qci: 9,
        arp: Arp {
            priority_level: 8,
            pre_emption_capability: false,
            pre_emption_vulnerability: true,
        },
    }
}

fn default_features() -> Vec<FeatureList> {
    // Feature-List-ID 1 with Rel8 (bit 0), Rel9 (bit 1) and Rel10 (bit 3). The bit
    // numbering is marked unverified in protocol.md; configure it to match the peers.
    vec![FeatureList {
        list_id: 1,
        list: 0b1011,
    }]
}

fn default_s9_features() -> Vec<FeatureList> {
    // Feature-List-ID 1 with Rel8 (bit 0) and Rel9 (bit 1); the bit numbering is as
    // unverified as Gx's (protocol.md): configure it to match the roaming partners.
    vec![FeatureList {
        list_id: 1,
        list: 0b11,
    }]
}

impl Default for PcrfSection {
    fn default() -> Self {
        Self {
            role: Role::Home,
            admin: None,
            charging: ChargingSection::default(),
            default_bearer: default_bearer(),
            supported_features: default_features(),
            s9_supported_features: default_s9_features(),
            rx: RxSection::default(),
            roaming_partners: Vec::new(),
            visited: None,
            lbo: None,
        }
    }
}

/// One Feature-List of Supported-Features (TS 29.229 §6.3.29–31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureList {
    /// Feature-List-ID.
    pub list_id: u32,
    /// Feature-List: one bit per feature.
    pub list: u32,
}

/// `[pcrf.charging]`: the charging functions named in Charging-Information (DiameterURIs).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChargingSection {
    /// Primary-Event-Charging-Function-Name: the OCS, for online charging.
    pub primary_ocs: Option<String>,
    /// Secondary-Event-Charging-Function-Name.
    pub secondary_ocs: Option<String>,
    /// Primary-Charging-Collection-Function-Name: the CCF, for offline charging.
    pub primary_ccf: Option<String>,
    /// Secondary-Charging-Collection-Function-Name.
    pub secondary_ccf: Option<String>,
}

/// `[spr]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SprSection {
    /// The SPR file (TOML: `[[rule]]` and `[[subscriber]]`, see `pcrf/examples/spr.toml`).
    pub file: PathBuf,
}

/// `[store]`: where Gx, Rx, Gxx and S9 sessions are kept. In memory by default (lost on a
/// restart); `durable = true` writes every change through to a redb file before it is
/// answered and reads the file back at start ([`crate::durable`]).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Keep sessions in the data file.
    #[serde(default)]
    pub durable: bool,
    /// The data file (relative: beside the configuration file).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("pcrf.redb")
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            durable: false,
            path: default_store_path(),
        }
    }
}

/// `[[policy]]`: what to do when the PCEF reports an event (Event-Trigger in CCR-U).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventPolicy {
    /// The Event-Trigger name (`RAT_CHANGE`, `USER_LOCATION_CHANGE`, …). Sessions subscribe
    /// to it at establishment.
    pub event: String,
    /// Only when the RAT-Type reported with the event is this value (e.g. 1000 UTRAN).
    pub rat_type: Option<i32>,
    /// Only for these subscribers (`imsi:…`, `msisdn:…`, `nai:…` or bare IMSIs), matched
    /// against a session's subscriber as the PCRF keys it: its IMSI when the profile has
    /// one, else its MSISDN, else its NAI. All subscribers when absent.
    pub subscribers: Option<Vec<String>>,
    /// Dynamic rules to install (names of `[[rule]]` in the SPR file).
    #[serde(default)]
    pub install: Vec<String>,
    /// Rules to remove (dynamic or predefined names).
    #[serde(default)]
    pub remove: Vec<String>,
    /// Re-install the session's dynamic rules with this Rating-Group (a modified rule
    /// keeps its name, TS 29.212 §4.5.2).
    pub rating_group: Option<u32>,
}

/// The built-in configuration: also `pcrf/examples/home.toml`.
pub const DEMO: &str = include_str!("../examples/home.toml");
/// The built-in SPR: also `pcrf/examples/spr.toml`.
pub const DEMO_SPR: &str = include_str!("../examples/spr.toml");

impl Config {
    /// Reads a configuration file and the SPR file it names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Self = diameter_node::config::load_config(path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        cfg.spr_data = SprFile::load(&base.join(&cfg.spr.file))?;
        cfg.store.path = base.join(&cfg.store.path);
        cfg.source = Some(path.to_path_buf());
        cfg.check().map_err(|message| ConfigError {
            file: path.to_path_buf(),
            position: None,
            message,
        })?;
        Ok(cfg)
    }

    /// The home PCRF of the README: `examples/home.toml` and `examples/spr.toml` as built
    /// into the binary.
    pub fn demo() -> Self {
        let file = Path::new("(built-in home.toml)");
        let mut cfg: Self =
            diameter_node::config::parse_config(file, DEMO).expect("the demo configuration parses");
        cfg.spr_data = SprFile::parse(Path::new("(built-in spr.toml)"), DEMO_SPR)
            .expect("the demo SPR parses");
        cfg.check().expect("the demo configuration is valid");
        cfg
    }

    /// What serde cannot check: URIs, ARP ranges, policies naming known events and rules.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.pcrf.charging;
        for (v, what) in [
            (&c.primary_ocs, "pcrf.charging.primary_ocs"),
            (&c.secondary_ocs, "pcrf.charging.secondary_ocs"),
            (&c.primary_ccf, "pcrf.charging.primary_ccf"),
            (&c.secondary_ccf, "pcrf.charging.secondary_ccf"),
        ] {
            if let Some(u) = v {
                check_uri(u, what)?;
            }
        }
        check_arp(Some(self.pcrf.default_bearer.arp), "pcrf.default_bearer")?;
        check_arp(Some(self.pcrf.rx.arp), "pcrf.rx.arp")?;
        for (i, p) in self.pcrf.roaming_partners.iter().enumerate() {
            if p.realm.trim().is_empty() {
                return Err(format!("pcrf.roaming_partner[{i}]: empty realm"));
            }
            if p.peers.is_empty() || p.peers.iter().any(|h| h.trim().is_empty()) {
                return Err(format!(
                    "pcrf.roaming_partner[{i}] ({}): needs at least one peer identity, none empty",
                    p.realm
                ));
            }
        }
        match (&self.pcrf.visited, self.pcrf.role) {
            (None, Role::Visited) => {
                return Err("pcrf.role = \"visited\" needs a [pcrf.visited] section".into());
            }
            (Some(v), _) => v.check()?,
            (None, Role::Home) => {}
        }
        if let Some(l) = &self.pcrf.lbo {
            l.check()?;
        }
        for (i, p) in self.policies.iter().enumerate() {
            if event_trigger_code(&p.event).is_none() {
                return Err(format!("policy[{i}]: unknown event `{}`", p.event));
            }
            for r in &p.install {
                if !self.spr_data.rules.iter().any(|d| &d.name == r) {
                    return Err(format!("policy[{i}]: unknown rule `{r}` to install"));
                }
            }
            if p.install.is_empty() && p.remove.is_empty() && p.rating_group.is_none() {
                return Err(format!(
                    "policy[{i}]: needs install, remove or rating_group"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_the_home_pcrf_of_the_readme() {
        let c = Config::demo();
        assert_eq!(c.node.origin_host, "pcrf.home.test");
        assert_eq!(c.node.origin_realm, "home.test");
        assert_eq!(c.node.listen[0].addr, "127.0.0.1:3869".parse().unwrap());
        // Pushes to clients behind the built-in DRA in proxy mode go through it.
        let r = &c.node.routes[0];
        assert_eq!(
            (r.realm.as_str(), r.peers[0].host.as_str()),
            ("*", "dra.home.test")
        );
        assert!(
            c.pcrf
                .charging
                .primary_ocs
                .as_deref()
                .unwrap()
                .contains("ocs.home.test")
        );
        let sub = c
            .spr_data
            .subscribers
            .iter()
            .find(|s| s.imsi.as_deref() == Some("001010000000001"))
            .unwrap();
        assert!(!sub.rules.is_empty());
    }

    #[test]
    fn the_store_is_in_memory_unless_asked_and_its_keys_are_checked() {
        assert!(!Config::demo().store.durable);
        let dir = tempfile::tempdir().unwrap();
        let spr = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spr.toml");
        let head = DEMO.replace("file = \"spr.toml\"", &format!("file = {:?}", spr));
        let path = dir.path().join("pcrf.toml");
        std::fs::write(&path, format!("{head}\n[store]\ndurable = true\n")).unwrap();
        let c = Config::load(&path).unwrap();
        assert!(c.store.durable);
        assert_eq!(
            c.store.path,
            dir.path().join("pcrf.redb"),
            "beside the file"
        );
        std::fs::write(
            &path,
            format!("{head}\n[store]\ndurable = true\nfsync = 1\n"),
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("fsync"), "{e}");
    }

    #[test]
    fn the_example_files_load_from_disk() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/home.toml");
        let c = Config::load(&p).unwrap();
        assert_eq!(c.spr_data, Config::demo().spr_data);
        assert_eq!(c.policies, Config::demo().policies);
    }

    #[test]
    fn roaming_partners_admit_their_realm_through_their_peers() {
        let c = Config::demo();
        let p = &c.pcrf.roaming_partners[0];
        assert!(p.admits("Visited.Test", "PCRF.visited.test"));
        assert!(p.admits("visited.test", "dra.visited.test"));
        assert!(!p.admits("visited.test", "rogue.visited.test"));
        assert!(!p.admits("other.test", "pcrf.visited.test"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spr.toml"), DEMO_SPR).unwrap();
        let path = dir.path().join("pcrf.toml");
        let base =
            "[node]\norigin_host = \"p\"\norigin_realm = \"r\"\n[spr]\nfile = \"spr.toml\"\n";
        std::fs::write(
            &path,
            format!("{base}[[pcrf.roaming_partner]]\nrealm = \"v\"\npeers = []\n"),
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err();
        assert!(e.to_string().contains("roaming_partner[0]"), "{e}");
        std::fs::write(
            &path,
            format!("{base}[[pcrf.roaming_partner]]\nrealm = \"v\"\npeers = [\"a\"]\nkey = 1\n"),
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err();
        assert!(e.message.contains("key") && e.position.is_some(), "{e}");
    }

    #[test]
    fn the_lbo_section_of_the_example_reads() {
        // The commented [pcrf.lbo] of examples/home.toml, uncommented.
        let lbo: String = DEMO
            .lines()
            .skip_while(|l| !l.starts_with("# [pcrf.lbo]"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(""))
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spr.toml"), DEMO_SPR).unwrap();
        let p = dir.path().join("pcrf.toml");
        let base =
            "[node]\norigin_host = \"p\"\norigin_realm = \"r\"\n[spr]\nfile = \"spr.toml\"\n";
        std::fs::write(&p, format!("{base}{lbo}\n")).unwrap();
        let c = Config::load(&p).unwrap();
        let l = c.pcrf.lbo.unwrap();
        assert_eq!(l.home_operator, "00101");
        assert!(l.partner_key("Visited.Test").is_some());
        assert!(l.ott_key("ott-video", "cdn-video").is_some());
        assert!(l.ott_key("ott-video", "cdn-music").is_none());
        assert_eq!(l.presets[0].flows.len(), 2);
        assert_eq!(
            l.local_up("LUP.visited.test").unwrap().steering_policy,
            "to-home-lup"
        );
        // A short key, and a preset flow that is no IPFilterRule, are refused.
        std::fs::write(
            &p,
            format!(
                "{base}{}\n",
                lbo.replace("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "5a5a")
            ),
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(e.message.contains("16 octets"), "{e}");
        std::fs::write(
            &p,
            format!(
                "{base}{}\n",
                lbo.replace("permit out ip from 203.0.113.10 to any", "allow all")
            ),
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(e.message.contains("lbo.preset"), "{e}");
        // examples/visited.toml's agreement matches it: the two examples do LBO together
        // (the preset verifies at the visited side).
        let v = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/visited.toml"))
            .unwrap();
        let policy = v.pcrf.visited.unwrap().lbo.unwrap();
        let a = policy.agreement(&l.home_operator).unwrap();
        assert_eq!(Some(&a.key), l.partner_key("visited.test"));
        let p = &l.presets[0];
        let rule = crate::spr::RuleDef::with_flows(p.name.clone(), p.precedence, p.flows.clone());
        let now = 1_800_000_000;
        let g = crate::lbo::issue_grant(&l, &a.key, &rule, &p.package, "g".into(), now);
        assert_eq!(
            crate::lbo::verify_lbo_rule(&rule, Some(&g), &policy, now),
            Ok(())
        );
        let up = &l.local_up[0];
        assert!(a.local_up_policies.contains(&up.steering_policy));
    }

    #[test]
    fn unknown_keys_and_bad_policies_name_the_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spr.toml"), DEMO_SPR).unwrap();
        let p = dir.path().join("pcrf.toml");
        let base =
            "[node]\norigin_host = \"p\"\norigin_realm = \"r\"\n[spr]\nfile = \"spr.toml\"\n";
        std::fs::write(&p, format!("{base}[pcrf]\nrole = \"home\"\nocs = 1\n")).unwrap();
        let e = Config::load(&p).unwrap_err();
        assert_eq!(e.position, Some((8, 1)), "{e}");
        assert!(
            e.message.contains("unknown key") && e.message.contains("ocs"),
            "{e}"
        );
        std::fs::write(
            &p,
            format!("{base}[[policy]]\nevent = \"RAT_CHANGE\"\ninstall = [\"nope\"]\n"),
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(e.to_string().contains("unknown rule `nope`"), "{e}");
        std::fs::write(
            &p,
            format!("{base}[pcrf.charging]\nprimary_ocs = \"ocs.home.test\"\n"),
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(e.to_string().contains("primary_ocs"), "{e}");
    }
}
