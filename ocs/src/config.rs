//! The OCS configuration file (`ocs --config FILE.toml`) and the built-in demo configuration
//! used when no file is given.
//!
//! The `[node]` table is the one every server shares ([`diameter_node::config::NodeToml`],
//! documented in `diameter-node/examples/node.toml`). Unknown keys anywhere are errors
//! naming the file, line, column and key. Relative paths (the data file, capture, TLS
//! files) are relative to the directory of the configuration file.

use crate::model::{Account, Balance, SubscriptionId, SubscriptionType, UnitKind};
use diameter_node::config::{ConfigError, NodeToml};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Diameter node.
    pub node: NodeToml,
    /// Where balances, sessions and stored answers live.
    #[serde(default)]
    pub store: StoreSection,
    /// Session supervision and the operator endpoint.
    #[serde(default)]
    pub ocs: OcsSection,
    /// Rating groups: units, grant sizing, thresholds, triggers, tariff, final-unit action.
    #[serde(default, rename = "rating_group")]
    pub rating_groups: Vec<RatingGroup>,
    /// Accounts created at start-up when the store does not hold them yet.
    #[serde(default, rename = "account")]
    pub accounts: Vec<AccountConfig>,
    /// The visited role's policy (`[ocs] role = "visited"`).
    pub visited: Option<crate::visited::config::VisitedSection>,
    /// The file this was read from (relative paths of `[node]` are taken from its
    /// directory); `None` for the built-in demo.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The redb data file (relative paths are relative to the working directory).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Most queued operations (all but CCRs, which are decided where they arrive and go
    /// to the disk together) in one round of the store writer.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Sync every commit to disk (fsync). `false` trades durability for speed: commits are
    /// taken to the disk together every `checkpoint_interval`, and a crash loses at most the
    /// changes of the last `checkpoint_interval`.
    #[serde(default = "yes")]
    pub durable: bool,
    /// Seconds: the longest a commit made without an fsync (all of them with `durable =
    /// false`; with `durable = true` the visited role's writes that need not wait for the
    /// disk) waits for a durable commit, which the writer then makes, requests or not.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: f64,
    /// Changes (accounts, sessions, stored answers) the journal holds before it is folded
    /// into the data file's tables. Larger: less work per CCR, longer folds (the batch
    /// that carries one waits for it).
    #[serde(default = "default_fold_changes")]
    pub fold_changes: usize,
    /// Seconds: the longest a change stays in the journal before a fold.
    #[serde(default = "default_fold_interval")]
    pub fold_interval: f64,
}

/// The visited role's data file when `[store] path` is not set.
pub const VISITED_STORE_PATH: &str = "ocs-visited.redb";

fn default_store_path() -> PathBuf {
    PathBuf::from("ocs-data.redb")
}
fn default_max_batch() -> usize {
    512
}
fn yes() -> bool {
    true
}
fn default_checkpoint_interval() -> f64 {
    1.0
}
fn default_fold_changes() -> usize {
    crate::store::redb::RedbOptions::default().fold_changes
}
fn default_fold_interval() -> f64 {
    crate::store::redb::RedbOptions::default()
        .fold_interval
        .as_secs_f64()
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            path: default_store_path(),
            max_batch: default_max_batch(),
            durable: true,
            checkpoint_interval: default_checkpoint_interval(),
            fold_changes: default_fold_changes(),
            fold_interval: default_fold_interval(),
        }
    }
}

/// `[ocs]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcsSection {
    /// Tcc, seconds (RFC 4006 §13): a session with no request for this long has its
    /// reservations released and is forgotten.
    #[serde(default = "default_tcc")]
    pub tcc: f64,
    /// How often the Tcc sweep runs, seconds.
    #[serde(default = "default_sweep")]
    pub sweep_interval: f64,
    /// How long answers are kept for retransmissions, seconds.
    #[serde(default = "default_retention")]
    pub answer_retention: f64,
    /// The operator HTTP endpoint (`GET /accounts/ID`, `POST /accounts/ID/topup`).
    pub admin: Option<SocketAddr>,
    /// The rating group of requests without Multiple-Services-Credit-Control (RFC 4006
    /// single-service credit control: units at command level). None: such requests are
    /// answered 5031 DIAMETER_RATING_FAILED.
    pub single_service_rating_group: Option<u32>,
    /// Credit-Control-Failure-Handling sent in CCA-I (RFC 4006 §8.14): what the client does
    /// when it cannot reach the OCS — `terminate`, `continue` or `retry-and-terminate`.
    /// Absent: not sent (the client's own setting applies).
    pub failure_handling: Option<FailureHandling>,
    /// `home` (the default): charges accounts. `visited`: a visited OCS in front of home
    /// OCSs (document 001), configured by `[visited]`.
    #[serde(default)]
    pub role: Role,
}

/// Which OCS this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The home OCS: accounts, balances, reservations.
    #[default]
    Home,
    /// The visited OCS: a back-to-back Gy agent that rewrites the home decision.
    Visited,
}

/// Credit-Control-Failure-Handling (RFC 4006 §8.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureHandling {
    /// TERMINATE (0).
    Terminate,
    /// CONTINUE (1).
    Continue,
    /// RETRY_AND_TERMINATE (2).
    RetryAndTerminate,
}

impl FailureHandling {
    /// The Credit-Control-Failure-Handling value.
    pub fn code(self) -> i32 {
        match self {
            Self::Terminate => 0,
            Self::Continue => 1,
            Self::RetryAndTerminate => 2,
        }
    }
}

fn default_tcc() -> f64 {
    // RFC 4006 §5.1: Tcc "MAY be set to two times the value of the Validity-Time"; 2 × the
    // demo's 600 s.
    1200.0
}
fn default_sweep() -> f64 {
    1.0
}
fn default_retention() -> f64 {
    600.0
}

impl Default for OcsSection {
    fn default() -> Self {
        Self {
            tcc: default_tcc(),
            sweep_interval: default_sweep(),
            answer_retention: default_retention(),
            admin: None,
            single_service_rating_group: None,
            failure_handling: None,
            role: Role::Home,
        }
    }
}

/// Money per unit for a rating group charged from a money balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    /// Price, in the smallest currency unit …
    pub price: u64,
    /// … for this many service units.
    pub per: u64,
}

impl Tariff {
    /// The price of `units`, rounded up.
    pub fn cost(&self, units: u64) -> u64 {
        let per = self.per.max(1);
        let c = u128::from(units) * u128::from(self.price);
        u64::try_from(c.div_ceil(u128::from(per))).unwrap_or(u64::MAX)
    }

    /// How many units `money` buys.
    pub fn units_for(&self, money: u64) -> u64 {
        if self.price == 0 {
            return u64::MAX;
        }
        let u = u128::from(money) * u128::from(self.per.max(1)) / u128::from(self.price);
        u64::try_from(u).unwrap_or(u64::MAX)
    }
}

/// Final-Unit-Action (RFC 4006 §8.35).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalAction {
    /// TERMINATE (0).
    #[default]
    Terminate,
    /// REDIRECT (1), with `redirect`.
    Redirect,
    /// RESTRICT_ACCESS (2), with `restriction_filter_rules`.
    RestrictAccess,
}

impl FinalAction {
    /// The Final-Unit-Action value.
    pub fn code(self) -> i32 {
        match self {
            Self::Terminate => 0,
            Self::Redirect => 1,
            Self::RestrictAccess => 2,
        }
    }
}

/// Redirect-Address-Type (RFC 4006 §8.38).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedirectAddressType {
    /// IPv4 Address (0).
    Ipv4,
    /// IPv6 Address (1).
    Ipv6,
    /// URL (2).
    Url,
    /// SIP URI (3).
    SipUri,
}

impl RedirectAddressType {
    /// The Redirect-Address-Type value.
    pub fn code(self) -> i32 {
        match self {
            Self::Ipv4 => 0,
            Self::Ipv6 => 1,
            Self::Url => 2,
            Self::SipUri => 3,
        }
    }
}

/// Redirect-Server (RFC 4006 §8.37).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectServer {
    /// Redirect-Address-Type.
    pub address_type: RedirectAddressType,
    /// Redirect-Server-Address.
    pub address: String,
}

/// One `[[rating_group]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingGroup {
    /// Rating-Group.
    pub id: u32,
    /// What it counts: `time`, `total-octets`, `input-octets`, `output-octets`,
    /// `service-specific`.
    pub unit: String,
    /// Units granted when the Requested-Service-Unit names no amount.
    pub grant: u64,
    /// The most granted at once when the request asks for more (default: `grant`).
    pub max_grant: Option<u64>,
    /// Service-Identifier values rated by this group when an MSCC carries no Rating-Group
    /// (RFC 4006 §8.28: a service may be named by Service-Identifier alone).
    #[serde(default)]
    pub service_identifiers: Vec<u32>,
    /// Free of charge: answered 4011 DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE.
    #[serde(default)]
    pub free: bool,
    /// Money per unit, for accounts with a money balance and none of `unit`.
    pub tariff: Option<Tariff>,
    /// Validity-Time, seconds.
    pub validity_time: Option<u32>,
    /// Quota-Holding-Time, seconds (TS 32.299).
    pub quota_holding_time: Option<u32>,
    /// Volume-Quota-Threshold (octets) or Time-Quota-Threshold (seconds) or
    /// Unit-Quota-Threshold, whichever fits `unit` (TS 32.299).
    pub threshold: Option<u32>,
    /// Trigger-Type values the client re-authorises on (TS 32.299 Trigger); an empty list
    /// sends a Trigger with none (all triggers off); absent sends no Trigger.
    pub triggers: Option<Vec<i32>>,
    /// What the client does when the final grant is used up.
    #[serde(default)]
    pub final_unit_action: FinalAction,
    /// For `redirect`.
    pub redirect: Option<RedirectServer>,
    /// For `restrict-access`: IPFilterRule values.
    #[serde(default)]
    pub restriction_filter_rules: Vec<String>,
}

impl RatingGroup {
    /// The unit kind (checked by [`Config::check`]).
    pub fn unit_kind(&self) -> UnitKind {
        UnitKind::parse(&self.unit).unwrap_or(UnitKind::TotalOctets)
    }
}

/// One `[[account]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The account's key.
    pub id: String,
    /// END_USER_IMSI.
    pub imsi: Option<String>,
    /// END_USER_E164.
    pub msisdn: Option<String>,
    /// END_USER_NAI.
    pub nai: Option<String>,
    /// Service denied (4010).
    #[serde(default)]
    pub barred: bool,
    /// Initial balances by unit (`total-octets = 1000000`, `money = 500`, …).
    #[serde(default)]
    pub balance: BTreeMap<String, i64>,
}

impl AccountConfig {
    /// The account this entry creates.
    pub fn to_account(&self) -> Account {
        let mut subscriptions = Vec::new();
        for (kind, v) in [
            (SubscriptionType::Imsi, &self.imsi),
            (SubscriptionType::E164, &self.msisdn),
            (SubscriptionType::Nai, &self.nai),
        ] {
            if let Some(d) = v {
                subscriptions.push(SubscriptionId {
                    kind,
                    data: d.clone(),
                });
            }
        }
        let balances = self
            .balance
            .iter()
            .filter_map(|(k, v)| {
                UnitKind::parse(k).map(|k| {
                    (
                        k,
                        Balance {
                            available: *v,
                            reserved: 0,
                        },
                    )
                })
            })
            .collect();
        Account {
            id: self.id.clone(),
            subscriptions,
            balances,
            barred: self.barred,
        }
    }
}

impl Config {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Self = diameter_node::config::load_config(path)?;
        cfg.finish(path)?;
        Ok(cfg)
    }

    /// Parses and checks TOML text as read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut cfg: Self = diameter_node::config::parse_config(file, text)?;
        cfg.finish(file)?;
        Ok(cfg)
    }

    fn finish(&mut self, file: &Path) -> Result<(), ConfigError> {
        self.check().map_err(|message| ConfigError {
            file: file.to_path_buf(),
            position: None,
            message,
        })?;
        if self.ocs.role == Role::Visited && self.store.path == default_store_path() {
            // Its own file by default, so a home and a visited OCS started from one
            // directory do not contend for one.
            self.store.path = PathBuf::from(VISITED_STORE_PATH);
        }
        if self.store.path.is_relative()
            && let Some(dir) = file.parent()
        {
            self.store.path = dir.join(&self.store.path);
        }
        self.source = Some(file.to_path_buf());
        Ok(())
    }

    /// Checks what serde cannot: unit names, duplicate rating groups, final-unit details.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for rg in &self.rating_groups {
            let kind = UnitKind::parse(&rg.unit)
                .filter(|k| *k != UnitKind::Money)
                .ok_or_else(|| {
                    format!(
                        "rating_group {}: unit: unknown unit `{}` (time, total-octets, input-octets, output-octets, service-specific)",
                        rg.id, rg.unit
                    )
                })?;
            let _ = kind;
            if !seen.insert(rg.id) {
                return Err(format!("rating_group {}: defined twice", rg.id));
            }
            if rg.final_unit_action == FinalAction::Redirect && rg.redirect.is_none() {
                return Err(format!(
                    "rating_group {}: final_unit_action = \"redirect\" needs a redirect table",
                    rg.id
                ));
            }
            if rg.final_unit_action == FinalAction::RestrictAccess
                && rg.restriction_filter_rules.is_empty()
            {
                return Err(format!(
                    "rating_group {}: final_unit_action = \"restrict-access\" needs restriction_filter_rules",
                    rg.id
                ));
            }
            for r in &rg.restriction_filter_rules {
                diameter_codec::types::IpFilterRule::parse(r.as_bytes()).map_err(|e| {
                    format!(
                        "rating_group {}: restriction_filter_rules: `{r}` is not an IPFilterRule: {e}",
                        rg.id
                    )
                })?;
            }
            if rg.tariff.is_some_and(|t| t.per == 0) {
                return Err(format!(
                    "rating_group {}: tariff.per must be above 0",
                    rg.id
                ));
            }
        }
        let mut services = std::collections::HashSet::new();
        for rg in &self.rating_groups {
            for si in &rg.service_identifiers {
                if !services.insert(*si) {
                    return Err(format!(
                        "rating_group {}: service identifier {si} is rated by another group too",
                        rg.id
                    ));
                }
            }
        }
        let mut ids = std::collections::HashSet::new();
        for a in &self.accounts {
            if !ids.insert(a.id.clone()) {
                return Err(format!("account {}: defined twice", a.id));
            }
            for k in a.balance.keys() {
                if UnitKind::parse(k).is_none() {
                    return Err(format!("account {}: balance.{k}: unknown unit", a.id));
                }
            }
        }
        // Durations in seconds: finite, not negative, at most about 31 years.
        let secs = |v: f64, key: &str, zero_ok: bool| -> Result<(), String> {
            if v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) && v <= 1e9 {
                Ok(())
            } else {
                Err(format!("{key}: {v} is not a duration in seconds"))
            }
        };
        secs(self.ocs.tcc, "ocs.tcc", false)?;
        secs(self.ocs.sweep_interval, "ocs.sweep_interval", false)?;
        secs(self.ocs.answer_retention, "ocs.answer_retention", true)?;
        secs(
            self.store.checkpoint_interval,
            "store.checkpoint_interval",
            false,
        )?;
        secs(self.store.fold_interval, "store.fold_interval", false)?;
        if self.store.fold_changes == 0 {
            return Err("store.fold_changes: 0 is not a number of changes".into());
        }
        match (self.ocs.role, &self.visited) {
            (Role::Visited, None) => {
                return Err("[ocs] role = \"visited\" needs a [visited] table".into());
            }
            (Role::Home, Some(_)) => {
                return Err("[visited] is only read with [ocs] role = \"visited\"".into());
            }
            (Role::Visited, Some(v)) => v.check()?,
            (Role::Home, None) => {}
        }

        Ok(())
    }

    /// The store's settings.
    pub fn redb_options(&self) -> crate::store::redb::RedbOptions {
        // Durations were checked by `check`.
        let secs = |v: f64| Duration::try_from_secs_f64(v).unwrap_or(Duration::from_secs(1));
        crate::store::redb::RedbOptions {
            max_batch: self.store.max_batch,
            durable: self.store.durable,
            checkpoint_interval: secs(self.store.checkpoint_interval),
            fold_changes: self.store.fold_changes,
            fold_interval: secs(self.store.fold_interval),
        }
    }

    /// Tcc.
    pub fn tcc(&self) -> Duration {
        Duration::try_from_secs_f64(self.ocs.tcc).unwrap_or(Duration::from_secs(1200))
    }

    /// The built-in home OCS: 127.0.0.1:3870, `ocs.home.test` in `home.test`, with the demo
    /// rating groups and subscribers of the README.
    pub fn demo() -> Self {
        let cfg: Self =
            diameter_node::config::parse_config(Path::new("(built-in demo configuration)"), DEMO)
                .expect("the demo configuration parses");
        cfg.check().expect("the demo configuration is valid");
        cfg
    }
}

/// The demo configuration: also `ocs/examples/home.toml`.
pub const DEMO: &str = include_str!("../examples/home.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_parses_with_imsi_1() {
        let c = Config::demo();
        assert_eq!(c.node.origin_host, "ocs.home.test");
        assert_eq!(c.node.origin_realm, "home.test");
        assert_eq!(c.node.listen[0].addr, "127.0.0.1:3870".parse().unwrap());
        assert!(
            c.accounts
                .iter()
                .any(|a| a.imsi.as_deref() == Some("001010000000001"))
        );
        assert!(c.rating_groups.iter().any(|r| r.id == 1));
    }

    #[test]
    fn visited_example_parses() {
        let file = Path::new("examples/visited.toml");
        let cfg = Config::parse(file, include_str!("../examples/visited.toml")).unwrap();
        assert_eq!(cfg.ocs.role, Role::Visited);
        let v = cfg.visited.as_ref().unwrap();
        let op = v.operator(None, Some("001010000000001")).unwrap();
        assert_eq!(op.secondary.as_deref(), Some("ocs2.home.test"));
        assert_eq!(op.policy(Some(2)).grant_cap, Some(200_000));
        assert_eq!(op.policy(Some(7)).triggers, vec![4, 34, 36]);
        cfg.node.to_node_config(file).unwrap();
        // A [visited] table without the role, and the role without the table, are refused.
        let home = format!("{DEMO}\n[visited]\n");
        assert!(Config::parse(file, &home).is_err());
        let no_table = DEMO.replace("[ocs]\n", "[ocs]\nrole = \"visited\"\n");
        assert!(Config::parse(file, &no_table).is_err());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text =
            "[node]\norigin_host = \"a\"\norigin_realm = \"b\"\n\n[ocs]\ntcc = 5\nbogus = 1\n";
        let e = Config::parse(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:7:1: "), "{e}");
        assert!(e.contains("ocs.bogus"), "{e}");
        assert!(e.contains("unknown key"), "{e}");
    }

    #[test]
    fn bad_unit_and_redirect_without_server_are_refused() {
        let base = "[node]\norigin_host = \"a\"\norigin_realm = \"b\"\n";
        let e = Config::parse(
            Path::new("x.toml"),
            &format!("{base}[[rating_group]]\nid = 1\nunit = \"bytes\"\ngrant = 1\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown unit"), "{e}");
        let e = Config::parse(
            Path::new("x.toml"),
            &format!(
                "{base}[[rating_group]]\nid = 1\nunit = \"time\"\ngrant = 1\nfinal_unit_action = \"redirect\"\n"
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a redirect"), "{e}");
    }

    #[test]
    fn durations_must_be_finite_seconds() {
        let base = "[node]\norigin_host = \"a\"\norigin_realm = \"b\"\n[ocs]\n";
        for bad in [
            "tcc = inf",
            "tcc = nan",
            "tcc = -1",
            "sweep_interval = 0",
            "tcc = 1e300",
        ] {
            let e = Config::parse(Path::new("x.toml"), &format!("{base}{bad}\n")).unwrap_err();
            assert!(e.to_string().contains("not a duration"), "{bad}: {e}");
        }
        let store = "[node]\norigin_host = \"a\"\norigin_realm = \"b\"\n[store]\n";
        for (bad, why) in [
            ("checkpoint_interval = 0", "not a duration"),
            ("checkpoint_interval = -1", "not a duration"),
            ("fold_interval = 0", "not a duration"),
            ("fold_changes = 0", "not a number of changes"),
        ] {
            let e = Config::parse(Path::new("x.toml"), &format!("{store}{bad}\n")).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let c = Config::parse(
            Path::new("x.toml"),
            &format!("{store}fold_changes = 8192\nfold_interval = 0.5\n"),
        )
        .unwrap();
        assert_eq!(c.redb_options().fold_changes, 8192);
        assert_eq!(c.redb_options().fold_interval, Duration::from_millis(500));
        assert_eq!(
            Config::parse(Path::new("x.toml"), store)
                .unwrap()
                .redb_options()
                .fold_changes,
            1024
        );
        let c = Config::parse(
            Path::new("x.toml"),
            &format!("{store}durable = false\ncheckpoint_interval = 0.2\n"),
        )
        .unwrap();
        assert_eq!(
            c.redb_options().checkpoint_interval,
            Duration::from_millis(200)
        );
        Config::parse(
            Path::new("x.toml"),
            &format!("{base}answer_retention = 0\n"),
        )
        .unwrap();
    }

    #[test]
    fn tariff_rounds_up_and_buys_down() {
        let t = Tariff {
            price: 3,
            per: 1000,
        };
        assert_eq!(t.cost(1), 1);
        assert_eq!(t.cost(1000), 3);
        assert_eq!(t.cost(1001), 4);
        assert_eq!(t.units_for(3), 1000);
        assert_eq!(t.units_for(4), 1333);
    }
}
