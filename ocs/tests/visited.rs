//! The visited OCS of document 001 (seeds.md) between a PCEF and home OCSs, all on loopback:
//! two home OCSs (`ocs.home.test` primary, `ocs2.home.test` secondary) over one shared
//! charging store — what a shared engine gives a home network — a visited OCS in front of
//! them, and a diameter-node client as the visited PCEF.
//!
//! - establishment (S310–S316) with the four rewrites: credit cap, a trigger added, a coarser
//!   home location trigger replaced by the finer visited one, the final-unit action replaced;
//! - modification (S410–S417): RAT change and a cell change inside the home area answered
//!   locally, a cell change into a new area sent home (UTRAN LAI/cell and E-UTRAN TAI/ECGI);
//! - every unit the PCEF reports debited at home exactly once;
//! - a home refusal passed through unchanged; failover to the secondary; both home OCSs down.

mod common;

use common::{IMSI_EMPTY, free_addr, rsu};
use diameter_codec::dict::{base, dcca, gi, gy as gyd, roaming};
use diameter_codec::{CommandFlags, Message, MessageBuilder};
use diameter_node::node::{Node, NodeConfig, PeerSpec, RequestError, handler_fn, relay_route};
use diameter_node::peer::Application;
use ocs::config::Config;
use ocs::engine::Policy;
use ocs::model::{Account, CcRequest, UnixMillis};
use ocs::model::{CcAnswer, RequestType, UnitKind, Units, VisitedReport};
use ocs::store::redb::{RedbOptions, RedbStore};
use ocs::store::{
    AccountChange, Applied, ChargingStore, Counts, SessionRef, StoreFuture, SweepReport,
};
use ocs::visited::store::{DurableVisitedStore, VisitedSession, VisitedStore};
use ocs::{Ocs, VisitedOcs};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const PRIMARY: &str = "ocs.home.test";
const SECONDARY: &str = "ocs2.home.test";
const VOCS: &str = "ocs.visited.test";
const PCEF: &str = "pcef.visited.test";
/// A roaming subscriber of home.test with 1.4 MB: a 1 MB grant on rating group 1 leaves
/// 400 kB, so rating group 2's grant (500 kB configured) is the last one, with
/// Final-Unit-Indication.
const IMSI_ROAMER: &str = "001010000000011";
/// A roaming subscriber with plenty of credit.
const IMSI_RICH_ROAMER: &str = "001010000000012";
/// An IMSI of home.test's range that home does not know.
const IMSI_UNKNOWN: &str = "001010000000099";

// Trigger-Type values (TS 32.299 §7.2.226, protocol.md §5).
const QOS: i32 = 2;
const RAT: i32 = 4;
const LAC: i32 = 33;
const CELL: i32 = 34;
const TAC: i32 = 35;
const ECGI: i32 = 36;

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test took longer than 60 s");
}

/// The home network's configuration: the demo OCS with rating group 1 watching QoS and the
/// location area (UTRAN), rating group 2 watching the tracking area (E-UTRAN) and redirecting
/// to the home portal at the end of the credit, and two roaming subscribers.
fn home_config(host: &str, listen: SocketAddr, dir: &std::path::Path) -> Config {
    let text = ocs::config::DEMO
        .replace(
            "origin_host = \"ocs.home.test\"",
            &format!("origin_host = {host:?}"),
        )
        .replace("127.0.0.1:3870", &listen.to_string())
        .replace("admin = \"127.0.0.1:3871\"", "")
        .replace("triggers = [2, 4, 35, 36]", "triggers = [2, 33]")
        .replace(
            "validity_time = 600\nfinal_unit_action = \"redirect\"",
            "validity_time = 600\ntriggers = [35]\nfinal_unit_action = \"redirect\"",
        )
        + &format!(
            r#"
[[account]]
id = "roamer"
imsi = "{IMSI_ROAMER}"
balance = {{ total-octets = 1400000 }}

[[account]]
id = "rich-roamer"
imsi = "{IMSI_RICH_ROAMER}"
balance = {{ total-octets = 1000000000 }}
"#
        );
    let mut cfg = Config::parse(&dir.join("home.toml"), &text).expect("home config");
    cfg.store.path = dir.join("home.redb");
    cfg.ocs.admin = None;
    cfg
}

/// The visited OCS's configuration (the format of ocs/examples/visited.toml).
fn visited_config(
    listen: SocketAddr,
    primary: SocketAddr,
    secondary: SocketAddr,
    failure_handling: &str,
    report_decision: bool,
    home_refresh: f64,
    tcc: f64,
) -> Config {
    let text = format!(
        r#"
[node]
origin_host = "{VOCS}"
origin_realm = "visited.test"
unknown_peer = "accept"
request_timeout = 2

[[node.listen]]
addr = "{listen}"

[[node.peers]]
host = "{PRIMARY}"
connect = "{primary}"
timers = {{ tc = 0.2 }}

[[node.peers]]
host = "{SECONDARY}"
connect = "{secondary}"
timers = {{ tc = 0.2 }}

[[node.routes]]
realm = "home.test"
application = 4
action = "relay"
peers = [{{ host = "{PRIMARY}", priority = 0 }}, {{ host = "{SECONDARY}", priority = 1 }}]

[ocs]
role = "visited"
tcc = {tcc}
sweep_interval = 0.1

[visited]
home_timeout = 2
home_refresh = {home_refresh}
report_decision = {report_decision}
failure_handling = "{failure_handling}"

[[visited.operator]]
realm = "home.test"
imsi_prefixes = ["00101"]
primary = "{PRIMARY}"
secondary = "{SECONDARY}"

[visited.operator.policy]
grant_cap = 300000
triggers = [4, 34, 36]

[[visited.operator.rating_group]]
id = 2
triggers = [4, 34, 36]
final_unit_action = "redirect"
redirect = {{ address_type = "url", address = "http://topup.visited.test/" }}
"#
    );
    Config::parse(std::path::Path::new("visited.toml"), &text).expect("visited config")
}

/// The home network's store, whose answers can be made late: a CCR is applied and
/// committed, then its answer waits `LATE` — what a visited OCS sees of a home OCS that
/// received its request but whose answer did not come back in time.
struct LateStore {
    inner: RedbStore,
    late: Arc<AtomicBool>,
}

const LATE: Duration = Duration::from_millis(2500);

impl ChargingStore for LateStore {
    fn origin_state_id(&self) -> u32 {
        self.inner.origin_state_id()
    }
    fn credit_control(&self, req: CcRequest, now: UnixMillis) -> StoreFuture<'_, Applied> {
        Box::pin(async move {
            let r = self.inner.credit_control(req, now).await;
            if self.late.load(Ordering::SeqCst) {
                tokio::time::sleep(LATE).await;
            }
            r
        })
    }
    fn sweep(&self, now: UnixMillis) -> StoreFuture<'_, SweepReport> {
        self.inner.sweep(now)
    }
    fn release_client(
        &self,
        origin_host: String,
        before_ms: UnixMillis,
    ) -> StoreFuture<'_, SweepReport> {
        self.inner.release_client(origin_host, before_ms)
    }
    fn release_session(&self, session_id: String) -> StoreFuture<'_, SweepReport> {
        self.inner.release_session(session_id)
    }
    fn provision(&self, account: Account) -> StoreFuture<'_, bool> {
        self.inner.provision(account)
    }
    fn account(&self, key: String) -> StoreFuture<'_, Option<Account>> {
        self.inner.account(key)
    }
    fn session(&self, session_id: String) -> StoreFuture<'_, Option<ocs::model::Session>> {
        self.inner.session(session_id)
    }
    fn modify(
        &self,
        key: String,
        change: AccountChange,
    ) -> StoreFuture<'_, Option<(Account, Vec<SessionRef>)>> {
        self.inner.modify(key, change)
    }
    fn counts(&self) -> StoreFuture<'_, Counts> {
        self.inner.counts()
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        ChargingStore::close(&self.inner)
    }
}

/// The visited OCS's durable store with the writes that need not wait for the disk
/// dropped (its memory included): the state a crash right after them leaves.
struct LazyWritesLost(DurableVisitedStore);

impl VisitedStore for LazyWritesLost {
    fn get(&self, id: String) -> StoreFuture<'_, Option<VisitedSession>> {
        self.0.get(id)
    }
    fn put(&self, s: VisitedSession) -> StoreFuture<'_, ()> {
        self.0.put(s)
    }
    fn put_lazy(&self, _: VisitedSession) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn remove(&self, id: String) -> StoreFuture<'_, ()> {
        self.0.remove(id)
    }
    fn by_home(&self, home_session: String) -> StoreFuture<'_, Option<String>> {
        self.0.by_home(home_session)
    }
    fn count(&self) -> StoreFuture<'_, usize> {
        self.0.count()
    }
    fn idle(&self, before: UnixMillis, limit: usize) -> StoreFuture<'_, Vec<String>> {
        self.0.idle(before, limit)
    }
    fn origin_state_id(&self) -> Option<u32> {
        self.0.origin_state_id()
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.0.close()
    }
}

/// Two home OCSs on one store, a visited OCS, a PCEF.
struct Net {
    _dir: tempfile::TempDir,
    home_cfg: Config,
    store: Arc<dyn ChargingStore>,
    late: Arc<AtomicBool>,
    primary: Option<Ocs>,
    secondary: Option<Ocs>,
    primary_addr: SocketAddr,
    vcfg: Config,
    vocs: VisitedOcs,
    pcef: Node,
}

impl Net {
    async fn start(failure_handling: &str, report_decision: bool) -> Self {
        Self::start_with(failure_handling, report_decision, 300.0, 1200.0).await
    }

    async fn start_with(
        failure_handling: &str,
        report_decision: bool,
        home_refresh: f64,
        tcc: f64,
    ) -> Self {
        Self::start_full(failure_handling, report_decision, home_refresh, tcc, None).await
    }

    /// With the visited OCS's traffic written to `capture` (pcapng).
    async fn start_full(
        failure_handling: &str,
        report_decision: bool,
        home_refresh: f64,
        tcc: f64,
        capture: Option<std::path::PathBuf>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let primary_addr = free_addr();
        let secondary_addr = free_addr();
        let home_cfg = home_config(PRIMARY, primary_addr, dir.path());
        let late = Arc::new(AtomicBool::new(false));
        let store: Arc<dyn ChargingStore> = Arc::new(LateStore {
            inner: RedbStore::open(
                &home_cfg.store.path,
                RedbOptions {
                    durable: false,
                    ..RedbOptions::default()
                },
                Arc::new(Policy::from_config(&home_cfg)),
            )
            .unwrap(),
            late: late.clone(),
        });
        let primary = Ocs::start_with_store(&home_cfg, store.clone())
            .await
            .unwrap();
        let secondary = Ocs::start_with_store(
            &home_config(SECONDARY, secondary_addr, dir.path()),
            store.clone(),
        )
        .await
        .unwrap();
        let mut vcfg = visited_config(
            free_addr(),
            primary_addr,
            secondary_addr,
            failure_handling,
            report_decision,
            home_refresh,
            tcc,
        );
        vcfg.node.capture = capture;
        vcfg.store.path = dir.path().join("visited.redb");
        let vocs = VisitedOcs::start(&vcfg).await.unwrap();
        Self::wait_home(&vocs).await;
        let pcef = pcef_node(vocs.listen_addrs()[0]).await;
        Self {
            _dir: dir,
            home_cfg,
            store,
            late,
            primary: Some(primary),
            secondary: Some(secondary),
            primary_addr,
            vcfg,
            vocs,
            pcef,
        }
    }

    async fn wait_home(vocs: &VisitedOcs) {
        for h in [PRIMARY, SECONDARY] {
            assert!(
                vocs.node().wait_peer(h, Duration::from_secs(10)).await,
                "{h} not open"
            );
        }
    }

    /// Stops the visited OCS and starts it again on its data file, as after a crash; with
    /// `lose_lazy`, the writes it makes from then on without waiting for the disk are lost
    /// (what a crash right after them leaves: the writer holds such a record in memory for
    /// a few milliseconds, and the disk gets it with a later durable write).
    async fn restart_vocs(mut self, lose_lazy: bool) -> Self {
        self.vocs.shutdown(Duration::from_secs(1)).await;
        let store = DurableVisitedStore::open(&self.vcfg).await.unwrap();
        let store: Arc<dyn VisitedStore> = if lose_lazy {
            Arc::new(LazyWritesLost(store))
        } else {
            Arc::new(store)
        };
        self.vocs = VisitedOcs::start_with_store(&self.vcfg, store)
            .await
            .unwrap();
        Self::wait_home(&self.vocs).await;
        assert!(
            self.pcef.wait_peer(VOCS, Duration::from_secs(10)).await,
            "the PCEF did not reconnect"
        );
        self
    }

    /// Sends a CCR to the visited OCS; the answer, an error answer included.
    async fn send(&self, b: MessageBuilder) -> Message {
        match self.pcef.request(b).await {
            Ok(m) => m,
            Err(RequestError::Protocol { answer, .. }) => answer,
            Err(e) => panic!("no answer: {e}"),
        }
    }

    async fn cca(&self, r: &Ccr<'_>) -> (Message, CcAnswer) {
        let m = self.send(r.build()).await;
        let a = ocs::gy::parse_cca(&m);
        (m, a)
    }

    /// The account's octets: (available, reserved).
    async fn octets(&self, imsi: &str) -> (i64, u64) {
        let a = self.store.account(imsi.to_string()).await.unwrap().unwrap();
        let b = a.balances[&UnitKind::TotalOctets];
        (b.available, b.reserved)
    }

    /// The visited OCS's session towards home: (its Session-Id, the next CC-Request-Number).
    async fn home_leg(&self, pcef_session: &str) -> (String, u32) {
        let s = self
            .vocs
            .session(pcef_session)
            .await
            .unwrap()
            .expect("visited session");
        (s.home_session, s.home_number)
    }

    /// The home OCS's record of the visited OCS's session.
    async fn home_session(&self, pcef_session: &str) -> ocs::model::Session {
        let (id, _) = self.home_leg(pcef_session).await;
        self.store.session(id).await.unwrap().expect("home session")
    }

    async fn stop_primary(&mut self) {
        // Its node only: the store is shared with the secondary.
        let p = self.primary.take().unwrap();
        p.node().shutdown(Duration::from_secs(1)).await;
    }

    async fn stop_secondary(&mut self) {
        let p = self.secondary.take().unwrap();
        p.node().shutdown(Duration::from_secs(1)).await;
    }

    async fn restart_primary(&mut self) {
        let mut cfg = self.home_cfg.clone();
        cfg.node.listen[0].addr = self.primary_addr;
        self.primary = Some(
            Ocs::start_with_store(&cfg, self.store.clone())
                .await
                .unwrap(),
        );
        assert!(
            self.vocs
                .node()
                .wait_peer(PRIMARY, Duration::from_secs(10))
                .await,
            "primary not open again"
        );
    }
}

/// The visited PCEF: a Gy client connected to the visited OCS at `vocs`.
async fn pcef_node(vocs: SocketAddr) -> Node {
    let mut pc = NodeConfig::new(PCEF, "visited.test");
    pc.local.applications.push(Application::auth(4));
    let mut p = PeerSpec::connect_tcp(VOCS, vocs);
    p.timers = common::fast_timers();
    pc.peers.push(p);
    pc.routes
        .push(relay_route("visited.test", Some(4), &[VOCS]));
    pc.request_timeout = Duration::from_secs(10);
    let pcef = Node::start(pc).await.unwrap();
    assert!(pcef.wait_peer(VOCS, Duration::from_secs(10)).await);
    pcef
}

/// One MSCC of the PCEF's CCR.
#[derive(Clone, Default)]
struct Mscc {
    rg: u32,
    rsu: bool,
    used: Option<u64>,
    /// Trigger-Types that fired (Reporting-Reason RATING_CONDITION_CHANGE).
    fired: Vec<i32>,
}

fn mscc(rg: u32, used: Option<u64>, fired: &[i32]) -> Mscc {
    Mscc {
        rg,
        rsu: true,
        used,
        fired: fired.to_vec(),
    }
}

/// The PCEF's CCR: what pcef-sim sends (S310, S410).
#[derive(Clone, Default)]
struct Ccr<'a> {
    session: &'a str,
    kind: Option<RequestType>,
    number: u32,
    imsi: &'a str,
    home_ocs: Option<(&'a str, &'a str)>,
    uli: Option<Vec<u8>>,
    rat: Option<u8>,
    mscc: Vec<Mscc>,
    retransmit: bool,
}

impl Ccr<'_> {
    fn build(&self) -> MessageBuilder {
        let kind = self.kind.unwrap_or(RequestType::Update);
        let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, 4, true);
        b.push(base::SESSION_ID.with(self.session.to_string()));
        b.push(base::ORIGIN_HOST.with(PCEF.to_string()));
        b.push(base::ORIGIN_REALM.with("visited.test".to_string()));
        b.push(base::DESTINATION_REALM.with("visited.test".to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(4u32));
        b.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind.code())));
        b.push(dcca::CC_REQUEST_NUMBER.with(self.number));
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(1)),
            dcca::SUBSCRIPTION_ID_DATA.with(self.imsi.to_string()),
        ]));
        if let Some((p, s)) = self.home_ocs {
            b.push(roaming::HOME_OCS_IDENTITY.with(vec![
                roaming::HOME_OCS_PRIMARY.with(p.to_string()),
                roaming::HOME_OCS_SECONDARY.with(s.to_string()),
            ]));
        }
        b.push(
            dcca::MULTIPLE_SERVICES_INDICATOR
                .with(dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED),
        );
        for m in &self.mscc {
            let mut c = Vec::new();
            if m.rsu {
                c.push(ocs::gy::requested_avp(&Units::default()));
            }
            if let Some(u) = m.used {
                c.push(ocs::gy::used_avp(&Units {
                    total_octets: Some(u),
                    ..Units::default()
                }));
            }
            c.push(dcca::RATING_GROUP.with(m.rg));
            if !m.fired.is_empty() {
                c.push(gyd::REPORTING_REASON.with(gyd::ReportingReason(6)));
                c.push(
                    gyd::TRIGGER.with(
                        m.fired
                            .iter()
                            .map(|t| gyd::TRIGGER_TYPE.with(gyd::TriggerType(*t)))
                            .collect::<Vec<_>>(),
                    ),
                );
            }
            b.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(c));
        }
        let mut ps = Vec::new();
        if let Some(u) = &self.uli {
            ps.push(gi::TGPP_USER_LOCATION_INFO.with(bytes::Bytes::from(u.clone())));
        }
        if let Some(r) = self.rat {
            ps.push(gi::TGPP_RAT_TYPE.with(bytes::Bytes::from(vec![r])));
        }
        if !ps.is_empty() {
            b.push(gyd::SERVICE_INFORMATION.with(vec![gyd::PS_INFORMATION.with(ps)]));
        }
        b.flags = b.flags.with(CommandFlags::RETRANSMIT, self.retransmit);
        b
    }
}

// MCC 001, MNC 01 in TBCD (TS 24.008 §10.5.1.3).
const PLMN: [u8; 3] = [0x00, 0xf1, 0x10];

/// 3GPP-User-Location-Info, CGI (type 0): UTRAN LAI and cell (TS 29.061 §16.4.7.2).
fn cgi(lac: u16, ci: u16) -> Vec<u8> {
    let mut v = vec![0];
    v.extend(PLMN);
    v.extend(lac.to_be_bytes());
    v.extend(ci.to_be_bytes());
    v
}

/// 3GPP-User-Location-Info, RAI (type 2): UTRAN LAI and routing area; the RAC field is two
/// octets, the RAC then 0xFF (TS 29.274 §8.21.3, TS 29.060 §7.7.51).
fn rai(lac: u16, rac: u8) -> Vec<u8> {
    let mut v = vec![2];
    v.extend(PLMN);
    v.extend(lac.to_be_bytes());
    v.extend([rac, 0xff]);
    v
}

/// 3GPP-User-Location-Info, TAI and ECGI (type 130): E-UTRAN.
fn tai_ecgi(tac: u16, eci: u32) -> Vec<u8> {
    let mut v = vec![130];
    v.extend(PLMN);
    v.extend(tac.to_be_bytes());
    v.extend(PLMN);
    v.extend(eci.to_be_bytes());
    v
}

const UTRAN: u8 = 1;
const HSPA: u8 = 5;
const EUTRAN: u8 = 6;

fn by_rg(a: &CcAnswer, rg: u32) -> &ocs::model::MsccAnswer {
    a.mscc
        .iter()
        .find(|m| m.service.rating_group == Some(rg))
        .unwrap_or_else(|| panic!("no MSCC for rating group {rg} in {a:?}"))
}

fn octets_of(m: &ocs::model::MsccAnswer) -> u64 {
    m.granted
        .and_then(|g| g.total_octets)
        .unwrap_or_else(|| panic!("no octets granted: {m:?}"))
}

/// Establishment (S310–S316) of a session for IMSI_ROAMER with rating groups 1 and 2, in
/// UTRAN cell (LAC 10, CI 1). Returns the answer.
async fn establish(net: &Net, sid: &str) -> CcAnswer {
    let (m, a) = net
        .cca(&Ccr {
            session: sid,
            kind: Some(RequestType::Initial),
            number: 0,
            imsi: IMSI_ROAMER,
            home_ocs: Some((PRIMARY, SECONDARY)),
            uli: Some(cgi(10, 1)),
            rat: Some(UTRAN),
            mscc: vec![mscc(1, None, &[]), mscc(2, None, &[])],
            ..Ccr::default()
        })
        .await;
    diameter_codec::validate(&m).expect("the CCA follows the grammar");
    a
}

#[tokio::test]
async fn establishment_applies_the_four_rewrites() {
    bounded(async {
        let net = Net::start("terminate", true).await;
        let sid = "pcef.visited.test;1;establish";
        let a = establish(&net, sid).await;
        assert_eq!(a.result_code, 2001, "{a:?}");
        assert_eq!(
            (a.request_type, a.request_number),
            (RequestType::Initial, 0)
        );
        // What home decided: 1 MB on rating group 1 (triggers QoS and LAC); 400 kB, the rest
        // of the balance, on rating group 2 (trigger TAC) with REDIRECT to the home portal.
        // The home OCS reserved exactly that.
        assert_eq!(net.octets(IMSI_ROAMER).await, (0, 1_400_000));
        let rg1 = by_rg(&a, 1);
        // 1. Credit: capped at 300 kB; the threshold stays below the capped grant.
        assert_eq!(octets_of(rg1), 300_000);
        assert_eq!(rg1.volume_threshold, Some(100_000));
        // 2. Triggers: RAT change added, the LAC trigger replaced by the cell trigger (the
        // finer UTRAN type), ECGI added for E-UTRAN; home's QoS trigger kept.
        assert_eq!(rg1.triggers.as_deref(), Some(&[QOS, RAT, CELL, ECGI][..]));
        assert!(
            rg1.final_unit.is_none(),
            "700 kB of the home grant still held"
        );
        let rg2 = by_rg(&a, 2);
        assert_eq!(octets_of(rg2), 400_000, "no cap on rating group 2");
        // TAC replaced by ECGI; RAT and cell added.
        assert_eq!(rg2.triggers.as_deref(), Some(&[RAT, CELL, ECGI][..]));
        // 3. Termination action: home's REDIRECT to its portal replaced by the visited one.
        let fui = rg2.final_unit.as_ref().expect("final units");
        assert_eq!(fui.action, 1);
        assert_eq!(
            fui.redirect,
            Some((2, "http://topup.visited.test/".to_string()))
        );
        // The visited OCS's own session towards home: its own Session-Id, request 0 sent.
        let (home_sid, next) = net.home_leg(sid).await;
        assert_ne!(home_sid, sid);
        assert_eq!(next, 1);
        // 4. Home is told the modified decisions on the next request sent there: a cell
        // change into a new location area (S413).
        let (_, u) = net
            .cca(&Ccr {
                session: sid,
                number: 1,
                imsi: IMSI_ROAMER,
                uli: Some(cgi(11, 7)),
                rat: Some(UTRAN),
                mscc: vec![mscc(1, Some(50_000), &[CELL])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(u.result_code, 2001, "{u:?}");
        let home = net.home_session(sid).await;
        assert_eq!(
            home.highest, 1,
            "home saw request 1 of the visited OCS's session"
        );
        let decision = |rg: u32| {
            home.visited.iter().find_map(|r| match r {
                VisitedReport::Decision {
                    rating_group: Some(g),
                    granted,
                    triggers,
                    final_unit_action,
                    reason,
                } if *g == rg => Some((
                    granted.and_then(|u| u.total_octets),
                    triggers.clone(),
                    *final_unit_action,
                    reason.clone(),
                )),
                _ => None,
            })
        };
        let (g1, t1, f1, why1) = decision(1).expect("decision on rating group 1 recorded");
        assert_eq!(g1, Some(300_000));
        assert_eq!(t1, vec![QOS, RAT, CELL, ECGI]);
        assert_eq!(f1, None);
        assert!(why1.unwrap().contains("grant capped at 300000"));
        let (g2, t2, f2, _) = decision(2).expect("decision on rating group 2 recorded");
        assert_eq!(
            (g2, t2, f2),
            (Some(400_000), vec![RAT, CELL, ECGI], Some(1))
        );
        // The operator sees the same on the home OCS's endpoint.
        let (admin, _task) = net
            .primary
            .as_ref()
            .unwrap()
            .admin()
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (home_sid, _) = net.home_leg(sid).await;
        let (status, j) =
            ocs::admin::call(admin, hyper::Method::GET, &format!("/sessions/{home_sid}"))
                .await
                .unwrap();
        assert_eq!(status, 200, "{j}");
        let reported = j["visited"].as_array().expect("visited reports");
        assert!(
            reported
                .iter()
                .any(|r| r["Decision"]["rating_group"] == 2
                    && r["Decision"]["final_unit_action"] == 1),
            "{j}"
        );
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn utran_rat_and_cell_changes_local_area_change_home() {
    bounded(async {
        let net = Net::start("terminate", false).await;
        let sid = "pcef.visited.test;1;utran";
        let imsi = IMSI_RICH_ROAMER;
        let ccr = |n: u32, uli: Vec<u8>, rat: u8, m: Vec<Mscc>| Ccr {
            session: sid,
            kind: Some(if n == 0 {
                RequestType::Initial
            } else {
                RequestType::Update
            }),
            number: n,
            imsi,
            uli: Some(uli),
            rat: Some(rat),
            mscc: m,
            ..Ccr::default()
        };
        let (_, a) = net
            .cca(&ccr(0, cgi(10, 1), UTRAN, vec![mscc(1, None, &[])]))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(octets_of(by_rg(&a, 1)), 300_000);
        // S314: the home decision is stored as home sent it.
        let held = net.vocs.session(sid).await.unwrap().unwrap();
        assert_eq!(
            held.services[0].home.triggers.as_deref(),
            Some(&[QOS, LAC][..])
        );
        assert_eq!(
            held.services[0].home.granted.unwrap().total_octets,
            Some(1_000_000)
        );
        let home = net.home_session(sid).await;
        let reserved_at_home = net.octets(imsi).await.1;
        assert_eq!(reserved_at_home, 1_000_000);

        // S411: RAT change (UTRAN → HSPA); home (QoS, LAC) did not subscribe it: local.
        let (_, a) = net
            .cca(&ccr(
                1,
                cgi(10, 1),
                HSPA,
                vec![mscc(1, Some(100_000), &[RAT])],
            ))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(
            octets_of(by_rg(&a, 1)),
            300_000,
            "900 kB of home's grant left"
        );
        // Cell change inside location area 10: local too.
        let (_, a) = net
            .cca(&ccr(
                2,
                cgi(10, 2),
                HSPA,
                vec![mscc(1, Some(250_000), &[CELL])],
            ))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(octets_of(by_rg(&a, 1)), 300_000);
        // A routing-area report inside the same area: the cell trigger does not fire.
        let (_, a) = net
            .cca(&ccr(3, rai(10, 5), HSPA, vec![mscc(1, Some(350_000), &[])]))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(octets_of(by_rg(&a, 1)), 300_000, "1 MB − 700 kB");
        // Home saw none of them: still only request 0, nothing debited.
        assert_eq!(net.home_session(sid).await.highest, home.highest);
        assert_eq!(net.home_leg(sid).await.1, 1);
        assert_eq!(net.octets(imsi).await.1, 1_000_000);

        // S413: cell change into location area 11: home's LAC trigger — sent home with
        // everything the PCEF reported (100 + 250 + 350 + 120 kB).
        let (_, a) = net
            .cca(&ccr(
                4,
                cgi(11, 9),
                HSPA,
                vec![mscc(1, Some(120_000), &[CELL])],
            ))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(octets_of(by_rg(&a, 1)), 300_000, "a new home grant, capped");
        let home = net.home_session(sid).await;
        assert_eq!(home.highest, 1, "consecutive numbers towards home");
        let absorbed = home.visited.iter().find_map(|r| match r {
            VisitedReport::Absorbed { used, requests, .. } => Some((used.total_octets, *requests)),
            _ => None,
        });
        assert_eq!(absorbed, Some((Some(700_000), 3)), "three updates absorbed");
        let (avail, reserved) = net.octets(imsi).await;
        assert_eq!(reserved, 1_000_000, "home's new grant");
        assert_eq!(
            avail,
            1_000_000_000 - 820_000 - 1_000_000,
            "820 kB debited once"
        );
        // Home's decision again: its LAC trigger fires on the next area, not on cells.
        let (_, a) = net
            .cca(&ccr(
                5,
                cgi(11, 10),
                HSPA,
                vec![mscc(1, Some(1_000), &[CELL])],
            ))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(net.home_session(sid).await.highest, 1, "local");

        // CCR-T: the rest goes home.
        let (_, a) = net
            .cca(&Ccr {
                kind: Some(RequestType::Termination),
                mscc: vec![Mscc {
                    rg: 1,
                    used: Some(2_000),
                    ..Mscc::default()
                }],
                ..ccr(6, cgi(11, 10), HSPA, vec![])
            })
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(net.octets(imsi).await, (1_000_000_000 - 823_000, 0));
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn eutran_ecgi_inside_tai_local_tai_change_home() {
    bounded(async {
        let net = Net::start("terminate", false).await;
        let sid = "pcef.visited.test;1;eutran";
        let imsi = IMSI_RICH_ROAMER;
        let ccr = |n: u32, uli: Vec<u8>, m: Vec<Mscc>| Ccr {
            session: sid,
            kind: Some(if n == 0 {
                RequestType::Initial
            } else {
                RequestType::Update
            }),
            number: n,
            imsi,
            uli: Some(uli),
            rat: Some(EUTRAN),
            mscc: m,
            ..Ccr::default()
        };
        let (_, a) = net
            .cca(&ccr(0, tai_ecgi(0x100, 1), vec![mscc(2, None, &[])]))
            .await;
        assert_eq!(a.result_code, 2001);
        let rg2 = by_rg(&a, 2);
        assert_eq!(rg2.triggers.as_deref(), Some(&[RAT, CELL, ECGI][..]));
        assert_eq!(octets_of(rg2), 500_000);
        assert!(rg2.final_unit.is_none(), "plenty of credit: no final units");
        let held = net.vocs.session(sid).await.unwrap().unwrap();
        assert_eq!(held.services[0].home.triggers.as_deref(), Some(&[TAC][..]));
        // ECGI change inside tracking area 0x100: local.
        let (_, a) = net
            .cca(&ccr(
                1,
                tai_ecgi(0x100, 2),
                vec![mscc(2, Some(100_000), &[ECGI])],
            ))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(
            octets_of(by_rg(&a, 2)),
            400_000,
            "what remains of home's 500 kB"
        );
        assert_eq!(net.home_leg(sid).await.1, 1);
        // Into tracking area 0x101: home (TAC) is asked, told the area and the usage.
        let (_, a) = net
            .cca(&ccr(
                2,
                tai_ecgi(0x101, 3),
                vec![mscc(2, Some(100_000), &[ECGI])],
            ))
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(octets_of(by_rg(&a, 2)), 500_000, "home's new grant");
        assert_eq!(net.home_leg(sid).await.1, 2);
        assert_eq!(net.home_session(sid).await.highest, 1);
        let (_, a) = net
            .cca(&Ccr {
                kind: Some(RequestType::Termination),
                mscc: vec![Mscc {
                    rg: 2,
                    used: Some(5),
                    ..Mscc::default()
                }],
                ..ccr(3, tai_ecgi(0x101, 3), vec![])
            })
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(net.octets(imsi).await, (1_000_000_000 - 200_005, 0));
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn home_debits_exactly_what_the_pcef_reported() {
    bounded(async {
        let net = Net::start("terminate", true).await;
        let imsi = IMSI_RICH_ROAMER;
        let (start, _) = net.octets(imsi).await;
        let mut reported = 0u64;
        // Three sessions, each through a mix of local and home-bound updates, some
        // retransmitted with the T bit.
        for k in 0..3u32 {
            let sid = format!("pcef.visited.test;2;recon{k}");
            let (_, a) = net
                .cca(&Ccr {
                    session: &sid,
                    kind: Some(RequestType::Initial),
                    number: 0,
                    imsi,
                    uli: Some(cgi(20, 1)),
                    rat: Some(UTRAN),
                    mscc: vec![mscc(1, None, &[]), mscc(2, None, &[])],
                    ..Ccr::default()
                })
                .await;
            assert_eq!(a.result_code, 2001);
            let mut n = 0;
            let mut lac = 20;
            for step in 0..12u32 {
                n += 1;
                let used1 = 50_000 + u64::from(step * 1_000 + k);
                let used2 = 30_000 + u64::from(step * 7);
                // Every third update moves to a new area (home), the others change cell or
                // RAT (local); every fourth is retransmitted.
                let (uli, fired) = match step % 3 {
                    2 => {
                        lac += 1;
                        (cgi(lac, 1), vec![CELL])
                    }
                    1 => (cgi(lac, 2 + step as u16), vec![CELL]),
                    _ => (cgi(lac, 2 + step as u16), vec![RAT]),
                };
                let r = Ccr {
                    session: &sid,
                    number: n,
                    imsi,
                    uli: Some(uli),
                    rat: Some(if step % 2 == 0 { UTRAN } else { HSPA }),
                    mscc: vec![mscc(1, Some(used1), &fired), mscc(2, Some(used2), &fired)],
                    ..Ccr::default()
                };
                let (_, a) = net.cca(&r).await;
                assert_eq!(a.result_code, 2001, "step {step}: {a:?}");
                reported += used1 + used2;
                if step % 4 == 3 {
                    let (_, again) = net
                        .cca(&Ccr {
                            retransmit: true,
                            ..r.clone()
                        })
                        .await;
                    assert_eq!(again, a, "a retransmission gets the same answer");
                }
            }
            let (_, a) = net
                .cca(&Ccr {
                    session: &sid,
                    kind: Some(RequestType::Termination),
                    number: n + 1,
                    imsi,
                    mscc: vec![
                        Mscc {
                            rg: 1,
                            used: Some(11),
                            ..Mscc::default()
                        },
                        Mscc {
                            rg: 2,
                            used: Some(13),
                            ..Mscc::default()
                        },
                    ],
                    ..Ccr::default()
                })
                .await;
            assert_eq!(a.result_code, 2001);
            reported += 24;
        }
        let (end, reserved) = net.octets(imsi).await;
        assert_eq!(reserved, 0, "every reservation released");
        assert_eq!(
            u64::try_from(start - end).unwrap(),
            reported,
            "home debited what the PCEF reported"
        );
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

/// RFC 4006 §6.3 one-time events through the visited OCS: relayed home, debited once, and a
/// retransmission (T bit) answered by home's duplicate detection without a second debit.
#[tokio::test]
async fn events_go_home_and_a_retransmitted_one_is_debited_once() {
    bounded(async {
        let net = Net::start("terminate", false).await;
        let imsi = IMSI_RICH_ROAMER;
        let (start, _) = net.octets(imsi).await;
        let event = Ccr {
            session: "pcef.visited.test;9;event1",
            kind: Some(RequestType::Event),
            number: 0,
            imsi,
            mscc: vec![mscc(1, None, &[])],
            ..Ccr::default()
        };
        let (m, a) = net.cca(&event).await;
        assert_eq!(a.result_code, 2001, "{a:?}");
        assert_eq!(a.request_type, RequestType::Event);
        let debited = octets_of(by_rg(&a, 1));
        assert!(debited > 0, "{a:?}");
        assert_eq!(
            m.get(base::SESSION_ID).and_then(Result::ok),
            Some("pcef.visited.test;9;event1"),
            "the PCEF's Session-Id in the answer"
        );
        let (after, reserved) = net.octets(imsi).await;
        assert_eq!((start - after, reserved), (debited as i64, 0));
        let (_, again) = net
            .cca(&Ccr {
                retransmit: true,
                ..event.clone()
            })
            .await;
        assert_eq!(again, a, "the retransmission gets the same answer");
        assert_eq!(net.octets(imsi).await.0, after, "and no second debit");
        // Another event is another debit; nothing stays at the visited OCS.
        let (_, b) = net
            .cca(&Ccr {
                session: "pcef.visited.test;9;event2",
                ..event.clone()
            })
            .await;
        assert_eq!(b.result_code, 2001);
        assert_eq!(net.octets(imsi).await.0, after - debited as i64);
        assert_eq!(net.vocs.store().count().await.unwrap(), 0);
        // Only direct debiting is relayed.
        let mut refund = event.build();
        refund.push(dcca::REQUESTED_ACTION.with(dcca::RequestedAction(3)));
        let m = net.send(refund).await;
        assert_eq!(ocs::gy::parse_cca(&m).result_code, 5012);
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn home_refusals_reach_the_pcef_unchanged() {
    bounded(async {
        let net = Net::start("terminate", false).await;
        // The same requests straight to the home OCS, for comparison.
        let direct = common::Pcef::connect("pcef2.visited.test", net.primary_addr).await;
        for (imsi, code) in [(IMSI_EMPTY, 4012), (IMSI_UNKNOWN, 5030)] {
            let sid = format!("pcef.visited.test;3;{imsi}");
            let (m, a) = net
                .cca(&Ccr {
                    session: &sid,
                    kind: Some(RequestType::Initial),
                    number: 0,
                    imsi,
                    mscc: vec![mscc(1, None, &[])],
                    ..Ccr::default()
                })
                .await;
            assert!(!m.header().flags.is_error());
            assert_eq!(a.result_code, code, "{a:?}");
            let home = direct
                .send(direct.ccr(
                    &format!("direct;{imsi}"),
                    RequestType::Initial,
                    0,
                    Some(imsi),
                    vec![(common::rg(1), rsu(), None)],
                ))
                .await;
            let mut h = ocs::gy::parse_cca(&home);
            assert_eq!(h.result_code, code);
            // Unchanged: Result-Code, MSCCs (per-service Result-Code, no grant),
            // Error-Message; only the PCEF's request number and type are its own.
            h.failure_handling = None;
            assert_eq!(a, h);
            // The PCEF refuses the IP-CAN session (S316): nothing is held anywhere.
            assert!(net.vocs.session(&sid).await.unwrap().is_none());
        }
        // A refusal on an update: the subscriber is barred at home mid-session.
        let sid = "pcef.visited.test;3;barred";
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Initial),
                number: 0,
                imsi: IMSI_RICH_ROAMER,
                uli: Some(cgi(30, 1)),
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        net.primary
            .as_ref()
            .unwrap()
            .modify(IMSI_RICH_ROAMER, AccountChange::SetBarred(true))
            .await
            .unwrap();
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 1,
                imsi: IMSI_RICH_ROAMER,
                uli: Some(cgi(31, 1)),
                mscc: vec![mscc(1, Some(10_000), &[CELL])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 4010, "{a:?}");
        assert_eq!(by_rg(&a, 1).result_code, 4010);
        assert!(by_rg(&a, 1).granted.is_none());
        // Nothing is granted locally from the reservation home released.
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 2,
                imsi: IMSI_RICH_ROAMER,
                uli: Some(cgi(31, 1)),
                mscc: vec![mscc(1, Some(0), &[RAT])],
                ..Ccr::default()
            })
            .await;
        assert!(
            by_rg(&a, 1).granted.is_none() && by_rg(&a, 1).result_code != 2001,
            "{a:?}"
        );
        direct.shutdown().await;
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn fails_over_to_the_secondary_home_ocs() {
    bounded(async {
        let mut net = Net::start("terminate", false).await;
        let sid = "pcef.visited.test;4;failover";
        let imsi = IMSI_RICH_ROAMER;
        let (start, _) = net.octets(imsi).await;
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Initial),
                number: 0,
                imsi,
                uli: Some(cgi(40, 1)),
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        net.stop_primary().await;
        // Into a new area: home is needed; the secondary answers.
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 1,
                imsi,
                uli: Some(cgi(41, 1)),
                mscc: vec![mscc(1, Some(200_000), &[CELL])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001, "{a:?}");
        assert_eq!(octets_of(by_rg(&a, 1)), 300_000);
        let home = net.home_session(sid).await;
        assert_eq!(home.highest, 1);
        // A session opened while the primary is down goes to the secondary from the start.
        let sid2 = "pcef.visited.test;4;failover-2";
        let (_, a) = net
            .cca(&Ccr {
                session: sid2,
                kind: Some(RequestType::Initial),
                number: 0,
                imsi,
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        for (s, n, used) in [(sid, 2, 50_000), (sid2, 1, 70_000)] {
            let (_, a) = net
                .cca(&Ccr {
                    session: s,
                    kind: Some(RequestType::Termination),
                    number: n,
                    imsi,
                    mscc: vec![Mscc {
                        rg: 1,
                        used: Some(used),
                        ..Mscc::default()
                    }],
                    ..Ccr::default()
                })
                .await;
            assert_eq!(a.result_code, 2001);
        }
        assert_eq!(net.octets(imsi).await, (start - 320_000, 0));
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn both_home_ocss_down_never_free_credit() {
    bounded(async {
        // CONTINUE: updates are served from the home grant held, never beyond it.
        let mut net = Net::start("continue", false).await;
        let sid = "pcef.visited.test;5;down";
        let imsi = IMSI_RICH_ROAMER;
        let (start, _) = net.octets(imsi).await;
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Initial),
                number: 0,
                imsi,
                uli: Some(cgi(50, 1)),
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        let mut granted = octets_of(by_rg(&a, 1));
        net.stop_primary().await;
        net.stop_secondary().await;
        // A new session gets no credit at all: 3002, the PCEF applies its CCFH.
        let (m, _) = net
            .cca(&Ccr {
                session: "pcef.visited.test;5;new",
                kind: Some(RequestType::Initial),
                number: 0,
                imsi,
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert!(m.header().flags.is_error());
        assert_eq!(common::result_code(&m), 3002);
        // The running session: area changes would go home; home is down, so the held home
        // grant (1 MB) serves them until it is spent.
        let mut reported = 0;
        let mut served = granted;
        let mut n = 0;
        let mut last = None;
        for lac in 51..60u16 {
            n += 1;
            let r = Ccr {
                session: sid,
                number: n,
                imsi,
                uli: Some(cgi(lac, 1)),
                mscc: vec![mscc(1, Some(granted), &[CELL])],
                ..Ccr::default()
            };
            let m = net.send(r.build()).await;
            if m.header().flags.is_error() {
                assert_eq!(common::result_code(&m), 3002);
                last = Some(r);
                break;
            }
            let a = ocs::gy::parse_cca(&m);
            reported += granted;
            granted = octets_of(by_rg(&a, 1));
            assert!(granted > 0);
            served += granted;
        }
        assert_eq!(
            served, 1_000_000,
            "granted exactly the home grant held: 300 + 300 + 300 + 100 kB"
        );
        assert_eq!(reported, 900_000);
        let last = last.expect("refused once the held grant was spent");
        // The primary comes back; the PCEF retransmits the refused update.
        net.restart_primary().await;
        let (_, a) = net
            .cca(&Ccr {
                retransmit: true,
                ..last.clone()
            })
            .await;
        assert_eq!(a.result_code, 2001, "{a:?}");
        reported += granted;
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Termination),
                number: n + 1,
                imsi,
                mscc: vec![Mscc {
                    rg: 1,
                    used: Some(1),
                    ..Mscc::default()
                }],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        reported += 1;
        assert_eq!(net.octets(imsi).await, (start - reported as i64, 0));
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn home_re_auth_reaches_the_pcef_and_the_next_update_goes_home() {
    bounded(async {
        let net = Net::start("terminate", false).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u32, String)>();
        net.pcef.register(
            4,
            handler_fn(move |req| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((
                        req.msg.header().command_code,
                        req.msg.session_id().unwrap_or("").to_string(),
                    ));
                    let mut a = req.answer(diameter_codec::ResultCode::DIAMETER_SUCCESS);
                    if a.find(base::AUTH_APPLICATION_ID.key()).is_none() {
                        a.push(base::AUTH_APPLICATION_ID.with(4u32));
                    }
                    a
                }
            }),
        );
        let sid = "pcef.visited.test;6;rar";
        let imsi = IMSI_RICH_ROAMER;
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Initial),
                number: 0,
                imsi,
                uli: Some(cgi(60, 1)),
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        // The operator tops up at home: home re-authorises its session (towards the
        // visited OCS), which passes the RAR on with the PCEF's Session-Id.
        let (_, sessions) = net
            .primary
            .as_ref()
            .unwrap()
            .topup(imsi, UnitKind::TotalOctets, 1_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sessions.len(), 1);
        let (cmd, got) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("RAR reached the PCEF")
            .unwrap();
        assert_eq!((cmd, got.as_str()), (258, sid));
        // A RAT change home did not subscribe would be local; after the re-auth request
        // it goes home (RFC 4006 §5.5), with Reporting-Reason FORCED_REAUTHORISATION.
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 1,
                imsi,
                uli: Some(cgi(60, 1)),
                rat: Some(HSPA),
                mscc: vec![mscc(1, Some(1_000), &[RAT])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(net.home_leg(sid).await.1, 2, "sent home");
        // And the next one is local again.
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 2,
                imsi,
                uli: Some(cgi(60, 1)),
                rat: Some(UTRAN),
                mscc: vec![mscc(1, Some(1_000), &[RAT])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(net.home_leg(sid).await.1, 2, "local");
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

/// A child process, killed (SIGKILL) and reaped by its PID when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_ocs(config: &std::path::Path, log: &std::path::Path, metrics: SocketAddr) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_ocs"))
            .arg("--config")
            .arg(config)
            .arg("--metrics")
            .arg(metrics.to_string())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting ocs"),
    )
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// The shipped examples as binaries: `ocs` (home, the demo) and `ocs --config
/// examples/visited.toml` (ports moved to free ones), a PCEF through the visited one, the
/// visited role's Prometheus series, and a `kill -9` of the visited OCS mid-session that
/// loses nothing.
#[tokio::test]
async fn binaries_with_the_shipped_visited_example() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (home_addr, admin, home_metrics) = (free_addr(), free_addr(), free_addr());
        let (vocs_addr, secondary, vocs_metrics) = (free_addr(), free_addr(), free_addr());
        let home_toml = dir.path().join("home.toml");
        std::fs::write(
            &home_toml,
            ocs::config::DEMO
                .replace("127.0.0.1:3870", &home_addr.to_string())
                .replace("127.0.0.1:3871", &admin.to_string())
                .replace(
                    "\"ocs-data.redb\"",
                    &format!("{:?}", dir.path().join("h.redb")),
                ),
        )
        .unwrap();
        let visited_toml = dir.path().join("visited.toml");
        std::fs::write(
            &visited_toml,
            include_str!("../examples/visited.toml")
                .replace("127.0.0.1:3880", &vocs_addr.to_string())
                .replace("127.0.0.1:3870", &home_addr.to_string())
                .replace("127.0.0.1:3872", &secondary.to_string())
                .replace("tc = 5", "tc = 0.2")
                .replace(
                    "\"ocs-visited.redb\"",
                    &format!("{:?}", dir.path().join("v.redb")),
                ),
        )
        .unwrap();
        let _home = spawn_ocs(&home_toml, &dir.path().join("home.log"), home_metrics);
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(home_addr).await.is_err() {
            assert!(std::time::Instant::now() < end, "home ocs not listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut vocs = spawn_ocs(&visited_toml, &dir.path().join("vocs.log"), vocs_metrics);
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(vocs_addr).await.is_err() {
            assert!(std::time::Instant::now() < end, "visited ocs not listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pcef = pcef_node(vocs_addr).await;
        let send = |r: Ccr<'static>| {
            let pcef = pcef.clone();
            async move {
                match pcef.request(r.build()).await {
                    Ok(m) | Err(RequestError::Protocol { answer: m, .. }) => m,
                    Err(e) => panic!("no answer: {e}"),
                }
            }
        };
        let sid = "pcef.visited.test;7;binary";
        let imsi = common::IMSI_RICH;
        let init = Ccr {
            session: sid,
            kind: Some(RequestType::Initial),
            number: 0,
            imsi,
            uli: Some(tai_ecgi(1, 1)),
            rat: Some(EUTRAN),
            mscc: vec![mscc(1, None, &[]), mscc(2, None, &[])],
            ..Ccr::default()
        };
        // Until the visited OCS has its home peer open, it answers 3002.
        let a = loop {
            let m = send(init.clone()).await;
            if !m.header().flags.is_error() {
                break ocs::gy::parse_cca(&m);
            }
            assert!(std::time::Instant::now() < end, "home never reached");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(a.result_code, 2001, "{a:?}");
        let rg1 = by_rg(&a, 1);
        assert_eq!(octets_of(rg1), 300_000, "the example's cap");
        // Home's [2, 4, 35, 36] kept; the visited cell trigger added.
        assert_eq!(
            rg1.triggers.as_deref(),
            Some(&[QOS, RAT, TAC, ECGI, CELL][..])
        );
        // Quota used up, nothing else changed: the 700 kB held serve it here.
        let a = ocs::gy::parse_cca(
            &send(Ccr {
                session: sid,
                number: 1,
                imsi,
                mscc: vec![mscc(1, Some(300_000), &[])],
                ..Ccr::default()
            })
            .await,
        );
        assert_eq!(a.result_code, 2001);
        let text = http_get(vocs_metrics, "/metrics").await;
        assert!(
            text.contains("ocs_visited_local_reauthorisations_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"ocs_visited_home_requests_total{home="ocs.home.test"} 1"#),
            "{text}"
        );
        // kill -9 the visited OCS while it holds 300,000 octets reported by the PCEF and not
        // yet sent home, and start it again on its data file: the session, the usage held
        // and the numbering towards home are still there, and the CCR-T takes that usage
        // home exactly once.
        drop(vocs);
        vocs = spawn_ocs(&visited_toml, &dir.path().join("vocs2.log"), vocs_metrics);
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let up = match tokio::net::TcpStream::connect(vocs_metrics).await {
                Ok(_) => http_get(vocs_metrics, "/metrics").await.lines().any(|l| {
                    l.starts_with("diameter_peers{")
                        && l.contains(r#"peer="ocs.home.test""#)
                        && l.contains("-Open\"}")
                        && l.ends_with(" 1")
                }),
                Err(_) => false,
            };
            if up && pcef.wait_peer(VOCS, Duration::from_millis(100)).await {
                break;
            }
            assert!(
                std::time::Instant::now() < end,
                "restarted visited ocs not connected to home ({up}) and the PCEF: {}",
                std::fs::read_to_string(dir.path().join("vocs2.log")).unwrap_or_default(),
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let a = ocs::gy::parse_cca(
            &send(Ccr {
                session: sid,
                kind: Some(RequestType::Termination),
                number: 2,
                imsi,
                mscc: vec![
                    Mscc {
                        rg: 1,
                        used: Some(10),
                        ..Mscc::default()
                    },
                    Mscc {
                        rg: 2,
                        used: Some(0),
                        ..Mscc::default()
                    },
                ],
                ..Ccr::default()
            })
            .await,
        );
        assert_eq!(
            a.result_code,
            2001,
            "{a:?}\n{}\n{}",
            std::fs::read_to_string(dir.path().join("vocs.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("vocs2.log")).unwrap_or_default(),
        );
        let (status, j) = ocs::admin::call(admin, hyper::Method::GET, &format!("/accounts/{imsi}"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        let b = &j["balances"]["total-octets"];
        assert_eq!(b["available"].as_i64(), Some(1_000_000_000 - 300_010));
        assert_eq!(b["reserved"].as_u64(), Some(0));
        // The restarted process sent one request home: the CCR-T with the usage held.
        let text = http_get(vocs_metrics, "/metrics").await;
        assert!(
            text.contains(r#"ocs_visited_home_requests_total{home="ocs.home.test"} 1"#),
            "{text}"
        );
        drop(vocs);
        let text = http_get(home_metrics, "/metrics").await;
        assert!(
            text.contains(r#"ocs_visited_reports_total{kind="decision"}"#),
            "{text}"
        );
        pcef.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn a_session_silent_at_home_for_home_refresh_goes_home() {
    bounded(async {
        // Home's Tcc lease is renewed only by what reaches it.
        let net = Net::start_with("terminate", false, 1.0, 1200.0).await;
        let sid = "pcef.visited.test;8;refresh";
        let imsi = IMSI_RICH_ROAMER;
        let upd = |n: u32, rat: u8| Ccr {
            session: sid,
            number: n,
            imsi,
            uli: Some(cgi(80, 1)),
            rat: Some(rat),
            mscc: vec![mscc(1, Some(1_000), &[RAT])],
            ..Ccr::default()
        };
        let (_, a) = net
            .cca(&Ccr {
                kind: Some(RequestType::Initial),
                mscc: vec![mscc(1, None, &[])],
                ..upd(0, UTRAN)
            })
            .await;
        assert_eq!(a.result_code, 2001);
        let (_, a) = net.cca(&upd(1, HSPA)).await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(net.home_leg(sid).await.1, 1, "RAT change: local");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (_, a) = net.cca(&upd(2, UTRAN)).await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(
            net.home_leg(sid).await.1,
            2,
            "home silent for 1.2 s > 1 s: sent home"
        );
        assert_eq!(net.octets(imsi).await.0, 1_000_000_000 - 2_000 - 1_000_000);
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn a_request_home_in_doubt_is_settled_before_the_next_one() {
    bounded(async {
        let net = Net::start("terminate", false).await;
        let sid = "pcef.visited.test;9;doubt";
        let imsi = IMSI_RICH_ROAMER;
        let (start, _) = net.octets(imsi).await;
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Initial),
                number: 0,
                imsi,
                uli: Some(cgi(90, 1)),
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        // Local: 100 kB.
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 1,
                imsi,
                uli: Some(cgi(90, 1)),
                rat: Some(HSPA),
                mscc: vec![mscc(1, Some(100_000), &[RAT])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        // Into a new area with 200 kB: home applies it (both addresses) but answers late.
        net.late.store(true, Ordering::SeqCst);
        let m = net
            .send(
                Ccr {
                    session: sid,
                    number: 2,
                    imsi,
                    uli: Some(cgi(91, 1)),
                    mscc: vec![mscc(1, Some(200_000), &[CELL])],
                    ..Ccr::default()
                }
                .build(),
            )
            .await;
        assert!(m.header().flags.is_error());
        assert_eq!(common::result_code(&m), 3002);
        let (_, reserved) = net.octets(imsi).await;
        assert_eq!(
            net.octets(imsi).await.0,
            start - 300_000 - i64::try_from(reserved).unwrap(),
            "home applied it once"
        );
        net.late.store(false, Ordering::SeqCst);
        // The PCEF got no answer for those 200 kB: its CCR-T reports them again, with 50 kB
        // more. Home must end with 350 kB debited, not 550 kB, and not lose the CCR-T.
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Termination),
                number: 3,
                imsi,
                mscc: vec![Mscc {
                    rg: 1,
                    used: Some(250_000),
                    ..Mscc::default()
                }],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001, "{a:?}");
        assert_eq!(net.octets(imsi).await, (start - 350_000, 0));
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

/// An update sent home, its answer given to the PCEF, then a crash that loses the record
/// written after home's answer (it does not wait for the disk): the record written beside
/// the request home holds the usage and that request as in doubt. `retransmit`: the PCEF
/// got no answer and sends the update again (T bit); otherwise it got one and goes on.
/// Either way home debits each unit once.
async fn crash_after_an_update_sent_home(retransmit: bool) {
    let mut net = Net::start("terminate", false).await;
    let sid = if retransmit {
        "pcef.visited.test;9;lazy-retransmit"
    } else {
        "pcef.visited.test;9;lazy-next"
    };
    let imsi = IMSI_RICH_ROAMER;
    let (start, _) = net.octets(imsi).await;
    let (_, a) = net
        .cca(&Ccr {
            session: sid,
            kind: Some(RequestType::Initial),
            number: 0,
            imsi,
            uli: Some(cgi(90, 1)),
            mscc: vec![mscc(1, None, &[])],
            ..Ccr::default()
        })
        .await;
    assert_eq!(a.result_code, 2001);
    net = net.restart_vocs(true).await;
    // Into a new area with 200 kB: sent home and answered; the record written after
    // home's answer is lost.
    let update = Ccr {
        session: sid,
        number: 1,
        imsi,
        uli: Some(cgi(91, 1)),
        mscc: vec![mscc(1, Some(200_000), &[CELL])],
        ..Ccr::default()
    };
    let (_, a) = net.cca(&update).await;
    assert_eq!(a.result_code, 2001, "{a:?}");
    let (home_session, home_number) = net.home_leg(sid).await;
    assert_eq!(
        home_number, 1,
        "the record is the one written before home answered"
    );
    let (available, reserved) = net.octets(imsi).await;
    assert_eq!(
        available,
        start - 200_000 - i64::try_from(reserved).unwrap()
    );
    net = net.restart_vocs(false).await;
    let next = if retransmit {
        let (_, again) = net
            .cca(&Ccr {
                retransmit: true,
                ..update.clone()
            })
            .await;
        assert_eq!(again.result_code, 2001, "{again:?}");
        assert_eq!(by_rg(&again, 1).result_code, 2001);
        assert!(octets_of(by_rg(&again, 1)) > 0, "granted again: {again:?}");
        2
    } else {
        // It got its answer: 30 kB more in yet another area.
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 2,
                imsi,
                uli: Some(cgi(92, 1)),
                mscc: vec![mscc(1, Some(30_000), &[CELL])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001, "{a:?}");
        3
    };
    let (same_session, _) = net.home_leg(sid).await;
    assert_eq!(same_session, home_session);
    let (available, reserved) = net.octets(imsi).await;
    let sent = if retransmit { 200_000 } else { 230_000 };
    assert_eq!(
        available,
        start - sent - i64::try_from(reserved).unwrap(),
        "home applied the request in doubt once"
    );
    let (_, a) = net
        .cca(&Ccr {
            session: sid,
            kind: Some(RequestType::Termination),
            number: next,
            imsi,
            mscc: vec![Mscc {
                rg: 1,
                used: Some(20_000),
                ..Mscc::default()
            }],
            ..Ccr::default()
        })
        .await;
    assert_eq!(a.result_code, 2001, "{a:?}");
    assert_eq!(net.octets(imsi).await, (start - sent - 20_000, 0));
    net.vocs.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_crash_after_answering_loses_nothing_when_the_pcef_retransmits() {
    bounded(crash_after_an_update_sent_home(true)).await;
}

#[tokio::test]
async fn a_crash_after_answering_loses_nothing_when_the_pcef_goes_on() {
    bounded(crash_after_an_update_sent_home(false)).await;
}

#[tokio::test]
async fn a_silent_pcef_s_session_is_ended_towards_home_after_tcc() {
    bounded(async {
        let net = Net::start_with("terminate", false, 300.0, 1.5).await;
        let sid = "pcef.visited.test;10;tcc";
        let imsi = IMSI_RICH_ROAMER;
        let (start, _) = net.octets(imsi).await;
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                kind: Some(RequestType::Initial),
                number: 0,
                imsi,
                uli: Some(cgi(100, 1)),
                mscc: vec![mscc(1, None, &[])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        // Answered locally: the 70 kB are held here…
        let (_, a) = net
            .cca(&Ccr {
                session: sid,
                number: 1,
                imsi,
                uli: Some(cgi(100, 1)),
                rat: Some(HSPA),
                mscc: vec![mscc(1, Some(70_000), &[RAT])],
                ..Ccr::default()
            })
            .await;
        assert_eq!(a.result_code, 2001);
        assert_eq!(net.octets(imsi).await, (start - 1_000_000, 1_000_000));
        // …and the PCEF goes silent: after Tcc the session ends towards home with them.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while net.vocs.store().count().await.unwrap() > 0 {
            assert!(std::time::Instant::now() < end, "session never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(net.octets(imsi).await, (start - 70_000, 0));
        net.vocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

/// Wireshark's dissector reads the visited OCS's traffic both ways — the PCEF's CCRs with
/// Home-OCS-Identity and 3GPP-User-Location-Info, the rewritten CCAs, and its own CCRs home
/// with Locally-Absorbed-Usage and Visited-Credit-Decision (vendor AVPs it does not know) —
/// with no malformed packet and no expert error. Prints `SKIP` without tshark (fails instead
/// when DIAMETER_REQUIRE_TSHARK is set, as in CI).
#[tokio::test]
async fn tshark_decodes_the_visited_ocs_traffic() {
    if std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("DIAMETER_REQUIRE_TSHARK").is_none(),
            "tshark not found and DIAMETER_REQUIRE_TSHARK is set"
        );
        println!("SKIP: tshark not found");
        return;
    }
    bounded(async {
        let capdir = tempfile::tempdir().unwrap();
        let cap = capdir.path().join("vocs.pcapng");
        let net = Net::start_full("terminate", true, 300.0, 1200.0, Some(cap.clone())).await;
        let sid = "pcef.visited.test;11;ws";
        let a = establish(&net, sid).await;
        assert_eq!(a.result_code, 2001);
        let upd = |n: u32, uli: Vec<u8>, fired: &[i32]| Ccr {
            session: sid,
            number: n,
            imsi: IMSI_ROAMER,
            uli: Some(uli),
            rat: Some(HSPA),
            mscc: vec![mscc(1, Some(10_000), fired), mscc(2, Some(5_000), fired)],
            ..Ccr::default()
        };
        assert_eq!(
            net.cca(&upd(1, cgi(10, 1), &[RAT])).await.1.result_code,
            2001
        );
        assert_eq!(
            net.cca(&upd(2, rai(10, 3), &[CELL])).await.1.result_code,
            2001
        );
        assert_eq!(
            net.cca(&upd(3, tai_ecgi(7, 9), &[CELL, ECGI]))
                .await
                .1
                .result_code,
            2001
        );
        let (_, a) = net
            .cca(&Ccr {
                kind: Some(RequestType::Termination),
                mscc: vec![Mscc {
                    rg: 1,
                    used: Some(1),
                    ..Mscc::default()
                }],
                ..upd(4, tai_ecgi(7, 9), &[])
            })
            .await;
        assert_eq!(a.result_code, 2001);
        net.pcef.shutdown(Duration::from_secs(1)).await;
        net.vocs.shutdown(Duration::from_secs(1)).await;
        let path = cap.to_str().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("tshark")
                .args(args)
                .output()
                .expect("tshark");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let bad = run(&[
            "-r",
            path,
            "-Y",
            "_ws.malformed || _ws.expert.severity >= 0x00800000",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ]);
        if !bad.trim().is_empty() {
            let filter = bad
                .lines()
                .map(|n| format!("frame.number == {n}"))
                .collect::<Vec<_>>()
                .join(" || ");
            let detail = run(&["-r", path, "-V", "-Y", &filter]);
            panic!("frames with errors: {bad}\n{detail}");
        }
        let rows = run(&[
            "-r",
            path,
            "-Y",
            "diameter.cmd.code == 272",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "diameter.flags.request",
            "-e",
            "diameter.Origin-Host",
            "-e",
            "diameter.CC-Request-Number",
        ]);
        // The PCEF's five requests and their answers; the visited OCS's requests home
        // (0: CCR-I, 1: the area change, 2: CCR-T) and theirs, consecutively numbered.
        let home_requests: Vec<&str> = rows
            .lines()
            .filter(|r| {
                r.starts_with("1;ocs.visited.test;") || r.starts_with("True;ocs.visited.test;")
            })
            .collect();
        let numbers: Vec<&str> = home_requests
            .iter()
            .map(|r| r.rsplit(';').next().unwrap())
            .collect();
        assert_eq!(numbers, ["0", "1", "2"], "{rows}");
        let text = run(&["-r", path, "-V", "-Y", "diameter.cmd.code == 272"]);
        for needle in [
            "Trigger-Type: CHANGE_IN_RAT (4)",
            "Final-Unit-Action: REDIRECT (1)",
            "http://topup.visited.test/",
            "(32473)",
        ] {
            assert!(text.contains(needle), "tshark shows no `{needle}`");
        }
    })
    .await;
}
