//! Durable sessions (`[store] durable = true`): the Gx, Rx, Gxx and S9 session stores, and
//! the visited role's roaming sessions (its client sessions and S9 sessions towards home),
//! written through to one redb file.
//!
//! The in-memory stores ([`crate::session`]) stay the read path and keep the indexes;
//! [`Durable`] wraps one and writes every changed session record to the file before the
//! change is answered, and the records are read back into memory at start. So a PCRF that
//! restarts (a crash included) still knows its sessions: the PCEF's next CCR-U is served,
//! not refused 5002, and operator pushes and AF sessions still reach it. The file also keeps
//! the Origin-State-Id (RFC 6733 §8.16) the node announces, which changes only when the
//! state is lost, so peers do not clear their sessions with us on a restart.
//!
//! One writer thread owns the file and commits the changes queued meanwhile together
//! (group commit): a commit is synced once for many requests, and none is answered before
//! its change is in a committed transaction (redb's commit is atomic, so a `kill -9` at any
//! moment leaves the last one whole).

use crate::lbo::LboMark;
use crate::session::{
    GxSession, GxxSession, GxxSessionStore, MemoryGxxSessions, MemoryRxSessions, MemoryS9Sessions,
    MemorySessions, RuleSet, RxSession, RxSessionStore, S9Session, S9SessionStore, SessionStore,
};
use crate::spr::{AfFlows, Flow, Metering, RuleDef, RuleQos, StoreError, StoreFuture};
use crate::visited::RoamingSession;
use crate::visited::store::{MemoryRoaming, RoamingStore, S9Lease, S9Record};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// A table of session records: Session-Id → JSON record.
type Records = TableDefinition<'static, &'static str, &'static [u8]>;

const GX: Records = TableDefinition::new("gx_sessions");
const RX: Records = TableDefinition::new("rx_sessions");
const GXX: Records = TableDefinition::new("gxx_sessions");
const S9: Records = TableDefinition::new("s9_sessions");
/// The visited role's client sessions and its S9 sessions towards home.
const ROAMING_CLIENTS: Records = TableDefinition::new("roaming_clients");
const ROAMING_S9: Records = TableDefinition::new("roaming_s9");
/// `origin_state_id`: seconds since the epoch when the state in this file began.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

/// Most queued requests one commit takes.
const MAX_BATCH: usize = 512;

/// Which store a record belongs to.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Gx = 0,
    Rx = 1,
    Gxx = 2,
    S9 = 3,
    RoamingClient = 4,
    RoamingS9 = 5,
}

const KINDS: [(Kind, Records); 6] = [
    (Kind::Gx, GX),
    (Kind::Rx, RX),
    (Kind::Gxx, GXX),
    (Kind::S9, S9),
    (Kind::RoamingClient, ROAMING_CLIENTS),
    (Kind::RoamingS9, ROAMING_S9),
];

/// One change to the file.
enum Op {
    Put(Kind, String, Vec<u8>),
    Remove(Kind, String),
}

type Done = oneshot::Sender<Result<(), StoreError>>;

/// What the writer thread receives.
enum Msg {
    Write(Vec<Op>, Done),
    /// Finish what is queued before it, close the file, then answer.
    Close(oneshot::Sender<()>),
}

fn se(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// The data file and its writer thread.
pub struct Disk {
    queue: mpsc::Sender<Msg>,
    origin_state_id: u32,
}

/// The records found at start, per [`Kind`].
type Loaded = [Vec<Vec<u8>>; 6];

impl Disk {
    /// Opens (or creates) the file, reads its records and starts the writer thread.
    fn open(path: &Path) -> Result<(Self, Loaded), StoreError> {
        let db =
            Database::create(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(se)?;
        let mut loaded: Loaded = Default::default();
        let osi = {
            for (kind, def) in KINDS {
                let t = txn.open_table(def).map_err(se)?;
                for row in t.iter().map_err(se)? {
                    let (_, v) = row.map_err(se)?;
                    loaded[kind as usize].push(v.value().to_vec());
                }
            }
            let mut meta = txn.open_table(META).map_err(se)?;
            let stored = meta.get("origin_state_id").map_err(se)?.map(|v| v.value());
            match stored {
                Some(v) => v,
                None => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    meta.insert("origin_state_id", now).map_err(se)?;
                    now
                }
            }
        };
        txn.commit().map_err(se)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("pcrf-store".into())
            .spawn(move || writer(db, rx))
            .map_err(se)?;
        let disk = Self {
            queue: tx,
            origin_state_id: u32::try_from(osi).unwrap_or(u32::MAX),
        };
        Ok((disk, loaded))
    }

    /// Queues `ops` (in this order among all writes); the receiver answers once committed.
    fn submit(&self, ops: Vec<Op>) -> oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        // A closed store drops `tx`, and the receiver then fails.
        let _ = self.queue.send(Msg::Write(ops, tx));
        rx
    }

    /// The Origin-State-Id kept in the file.
    pub fn origin_state_id(&self) -> u32 {
        self.origin_state_id
    }

    /// Commits what is queued and closes the file cleanly; later writes fail.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer thread: takes what is queued (up to [`MAX_BATCH`]), commits it in one
/// transaction, then answers every request of it.
fn writer(db: Database, queue: mpsc::Receiver<Msg>) {
    while let Ok(first) = queue.recv() {
        let mut batch: Vec<(Vec<Op>, Done)> = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Write(ops, done) => batch.push((ops, done)),
                Msg::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            next = if batch.len() < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            let r = commit(&db, &batch);
            if let Err(e) = &r {
                tracing::error!(error = %e, "session store: commit failed");
            }
            for (_, done) in batch {
                let _ = done.send(r.clone());
            }
        }
        if let Some(done) = close {
            drop(db);
            let _ = done.send(());
            return;
        }
    }
}

fn commit(db: &Database, batch: &[(Vec<Op>, Done)]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(se)?;
    {
        let mut tables = Vec::with_capacity(KINDS.len());
        for (_, def) in KINDS {
            tables.push(txn.open_table(def).map_err(se)?);
        }
        for op in batch.iter().flat_map(|(ops, _)| ops) {
            match op {
                Op::Put(kind, id, record) => {
                    tables[*kind as usize]
                        .insert(id.as_str(), record.as_slice())
                        .map_err(se)?;
                }
                Op::Remove(kind, id) => {
                    tables[*kind as usize].remove(id.as_str()).map_err(se)?;
                }
            }
        }
    }
    txn.commit().map_err(se)
}

/// A dynamic rule as stored: every part, those the SPR file and the operator's view leave
/// out included (AF gating and flows, the local-breakout mark), so that rules derived from
/// AF sessions and LBO rules come back whole. Loaded rules are their own [`Arc`]s, no
/// longer shared with the SPR profile.
#[derive(Serialize, Deserialize)]
struct StoredRule {
    name: String,
    precedence: Option<u32>,
    rating_group: Option<u32>,
    service_identifier: Option<u32>,
    online: Option<bool>,
    offline: Option<bool>,
    metering: Option<Metering>,
    flows: Vec<Flow>,
    qos: Option<RuleQos>,
    monitoring_key: Option<String>,
    flow_status: Option<i32>,
    af_charging_id: Option<String>,
    af_flows: Vec<AfFlows>,
    lbo: Option<LboMark>,
}

impl From<&RuleDef> for StoredRule {
    fn from(r: &RuleDef) -> Self {
        // Spelled out whole, so that a new rule field cannot be forgotten here.
        let RuleDef {
            name,
            precedence,
            rating_group,
            service_identifier,
            online,
            offline,
            metering,
            flows,
            qos,
            monitoring_key,
            flow_status,
            af_charging_id,
            af_flows,
            lbo,
        } = r.clone();
        Self {
            name,
            precedence,
            rating_group,
            service_identifier,
            online,
            offline,
            metering,
            flows,
            qos,
            monitoring_key,
            flow_status,
            af_charging_id,
            af_flows,
            lbo,
        }
    }
}

impl From<StoredRule> for RuleDef {
    fn from(r: StoredRule) -> Self {
        Self {
            name: r.name,
            precedence: r.precedence,
            rating_group: r.rating_group,
            service_identifier: r.service_identifier,
            online: r.online,
            offline: r.offline,
            metering: r.metering,
            flows: r.flows,
            qos: r.qos,
            monitoring_key: r.monitoring_key,
            flow_status: r.flow_status,
            af_charging_id: r.af_charging_id,
            af_flows: r.af_flows,
            lbo: r.lbo,
        }
    }
}

/// A Gx or S9 session record: the session with its rule sets taken out, and those rules
/// whole beside it (by S9 Subsession-Id; 0 for a Gx session).
#[derive(Serialize, Deserialize)]
struct WithRules<S> {
    session: S,
    rules: Vec<(u32, Vec<StoredRule>)>,
}

fn stored_rules(set: &RuleSet) -> Vec<StoredRule> {
    set.values().map(|r| StoredRule::from(&**r)).collect()
}

fn rule_set(rules: Vec<StoredRule>) -> RuleSet {
    let mut set = RuleSet::default();
    for r in rules {
        set.insert(Arc::new(RuleDef::from(r)));
    }
    set
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(se)
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(se)
}

/// How a session type is written to and read from its table: as its own serialisation,
/// unless it says otherwise.
trait Record: Sized + Clone + Serialize + serde::de::DeserializeOwned {
    const KIND: Kind;
    fn id(&self) -> &str;
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode(self)
    }
    fn decode(b: &[u8]) -> Result<Self, StoreError> {
        decode(b)
    }
}

impl Record for GxSession {
    const KIND: Kind = Kind::Gx;
    fn id(&self) -> &str {
        &self.session_id
    }
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        // The session's own serialisation leaves its rules' parts out (and is not read
        // back): they travel beside it.
        encode(&WithRules {
            session: self,
            rules: vec![(0, stored_rules(&self.dynamic_rules))],
        })
    }
    fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let r: WithRules<Self> = decode(b)?;
        let mut s = r.session;
        if let Some((_, rules)) = r.rules.into_iter().next() {
            s.dynamic_rules = rule_set(rules);
        }
        Ok(s)
    }
}

impl Versioned for GxSession {
    fn version_mut(&mut self) -> &mut u64 {
        &mut self.version
    }
}

impl Record for S9Session {
    const KIND: Kind = Kind::S9;
    fn id(&self) -> &str {
        &self.session_id
    }
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let rules = self
            .subsessions
            .iter()
            .map(|(n, sub)| (*n, stored_rules(&sub.policy.dynamic_rules)))
            .collect();
        encode(&WithRules {
            session: self,
            rules,
        })
    }
    fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let r: WithRules<Self> = decode(b)?;
        let mut s = r.session;
        for (n, rules) in r.rules {
            if let Some(sub) = s.subsessions.get_mut(&n) {
                sub.policy.dynamic_rules = rule_set(rules);
            }
        }
        Ok(s)
    }
}

impl Versioned for S9Session {
    fn version_mut(&mut self) -> &mut u64 {
        &mut self.version
    }
}

impl Record for RxSession {
    const KIND: Kind = Kind::Rx;
    fn id(&self) -> &str {
        &self.session_id
    }
}

impl Versioned for RxSession {
    fn version_mut(&mut self) -> &mut u64 {
        &mut self.version
    }
}

impl Record for GxxSession {
    const KIND: Kind = Kind::Gxx;
    fn id(&self) -> &str {
        &self.session_id
    }
}

impl Versioned for GxxSession {
    fn version_mut(&mut self) -> &mut u64 {
        &mut self.version
    }
}

impl Record for RoamingSession {
    const KIND: Kind = Kind::RoamingClient;
    fn id(&self) -> &str {
        &self.session_id
    }
}

impl Record for S9Record {
    const KIND: Kind = Kind::RoamingS9;
    fn id(&self) -> &str {
        &self.session_id
    }
}

impl Versioned for S9Record {
    fn version_mut(&mut self) -> &mut u64 {
        &mut self.version
    }
}

/// A record written over only at the version read (optimistic concurrency).
trait Versioned: Record {
    /// The version a successful `replace` bumps.
    fn version_mut(&mut self) -> &mut u64;
}

/// An in-memory store `M` whose changes are written through to the [`Disk`].
pub struct Durable<M> {
    memory: M,
    disk: Arc<Disk>,
    /// Held while a change is made in memory and queued for the file, so the file sees
    /// the changes of one session in the order memory did; not held while the commit is
    /// awaited, so concurrent requests share it.
    order: tokio::sync::Mutex<()>,
}

impl<M> Durable<M> {
    fn new(memory: M, disk: Arc<Disk>) -> Self {
        Self {
            memory,
            disk,
            order: tokio::sync::Mutex::new(()),
        }
    }

    /// Makes `change` in memory, then writes what `ops` makes of its outcome to the file;
    /// answers once that is committed. A failed commit fails the request (the change stays
    /// in memory, so the session is as the peer will next see it).
    async fn write_through<'a, T>(
        &'a self,
        change: impl FnOnce(&'a M) -> StoreFuture<'a, T>,
        ops: impl FnOnce(&T) -> Result<Vec<Op>, StoreError>,
    ) -> Result<T, StoreError> {
        let (r, done) = {
            let _order = self.order.lock().await;
            let r = change(&self.memory).await?;
            let ops = ops(&r)?;
            let done = (!ops.is_empty()).then(|| self.disk.submit(ops));
            (r, done)
        };
        if let Some(done) = done {
            done.await
                .map_err(|_| StoreError("session store closed".into()))??;
        }
        Ok(r)
    }

    /// `put`: the session record written whole.
    async fn put_record<'a, S: Record + Send + 'a, T>(
        &'a self,
        session: S,
        put: impl FnOnce(&'a M, S) -> StoreFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let op = Op::Put(S::KIND, session.id().to_string(), session.encode()?);
        self.write_through(|m| put(m, session), |_| Ok(vec![op]))
            .await
    }

    /// `replace`: written only when memory took it, at the version memory gives it.
    async fn replace_record<'a, S: Versioned + Send + 'a>(
        &'a self,
        session: S,
        replace: impl FnOnce(&'a M, S) -> StoreFuture<'a, bool>,
    ) -> Result<bool, StoreError> {
        let mut bumped = session.clone();
        *bumped.version_mut() += 1;
        let op = Op::Put(S::KIND, bumped.id().to_string(), bumped.encode()?);
        self.write_through(
            |m| replace(m, session),
            |done| Ok(if *done { vec![op] } else { vec![] }),
        )
        .await
    }

    /// `remove` and its kin: the records of the sessions memory let go.
    async fn remove_records<'a, S: Record + Send + 'a, T>(
        &'a self,
        remove: impl FnOnce(&'a M) -> StoreFuture<'a, T>,
        gone: impl FnOnce(&T) -> Vec<&S>,
    ) -> Result<T, StoreError> {
        self.write_through(remove, |r| {
            Ok(gone(r)
                .into_iter()
                .map(|s| Op::Remove(S::KIND, s.id().to_string()))
                .collect())
        })
        .await
    }
}

impl SessionStore for Durable<MemorySessions> {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<GxSession>> {
        self.memory.get(session_id)
    }
    fn put(&self, session: GxSession) -> StoreFuture<'_, Option<GxSession>> {
        Box::pin(self.put_record(session, |m, s| m.put(s)))
    }
    fn replace(&self, session: GxSession) -> StoreFuture<'_, bool> {
        Box::pin(self.replace_record(session, |m, s| m.replace(s)))
    }
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<GxSession>> {
        Box::pin(self.remove_records(|m| m.remove(session_id), |r| r.iter().collect()))
    }
    fn remove_by_pcef(&self, pcef_host: String) -> StoreFuture<'_, Vec<GxSession>> {
        Box::pin(self.remove_records(|m| m.remove_by_pcef(pcef_host), |r| r.iter().collect()))
    }
    fn by_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<String>> {
        self.memory.by_subscriber(subscriber)
    }
    fn list(&self) -> StoreFuture<'_, Vec<String>> {
        self.memory.list()
    }
    fn count(&self) -> StoreFuture<'_, u64> {
        self.memory.count()
    }
    fn by_ue_ip(&self, ip: IpAddr) -> StoreFuture<'_, Option<String>> {
        self.memory.by_ue_ip(ip)
    }
}

impl RxSessionStore for Durable<MemoryRxSessions> {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<RxSession>> {
        self.memory.get(session_id)
    }
    fn put(&self, session: RxSession) -> StoreFuture<'_, Option<RxSession>> {
        Box::pin(self.put_record(session, |m, s| m.put(s)))
    }
    fn replace(&self, session: RxSession) -> StoreFuture<'_, bool> {
        Box::pin(self.replace_record(session, |m, s| m.replace(s)))
    }
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<RxSession>> {
        Box::pin(self.remove_records(|m| m.remove(session_id), |r| r.iter().collect()))
    }
    fn by_gx(&self, gx_session: String) -> StoreFuture<'_, Vec<RxSession>> {
        self.memory.by_gx(gx_session)
    }
    fn remove_by_af(&self, af_host: String) -> StoreFuture<'_, Vec<RxSession>> {
        Box::pin(self.remove_records(|m| m.remove_by_af(af_host), |r| r.iter().collect()))
    }
    fn list(&self) -> StoreFuture<'_, Vec<String>> {
        self.memory.list()
    }
    fn count(&self) -> StoreFuture<'_, u64> {
        self.memory.count()
    }
}

impl GxxSessionStore for Durable<MemoryGxxSessions> {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<GxxSession>> {
        self.memory.get(session_id)
    }
    fn put(&self, session: GxxSession) -> StoreFuture<'_, Option<GxxSession>> {
        Box::pin(self.put_record(session, |m, s| m.put(s)))
    }
    fn replace(&self, session: GxxSession) -> StoreFuture<'_, bool> {
        Box::pin(self.replace_record(session, |m, s| m.replace(s)))
    }
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<GxxSession>> {
        Box::pin(self.remove_records(|m| m.remove(session_id), |r| r.iter().collect()))
    }
    fn by_gx(&self, gx_session: String) -> StoreFuture<'_, Vec<GxxSession>> {
        self.memory.by_gx(gx_session)
    }
    fn unlinked(&self, subscriber: String) -> StoreFuture<'_, Vec<GxxSession>> {
        self.memory.unlinked(subscriber)
    }
    fn remove_by_bberf(&self, bberf_host: String) -> StoreFuture<'_, Vec<GxxSession>> {
        Box::pin(self.remove_records(|m| m.remove_by_bberf(bberf_host), |r| r.iter().collect()))
    }
    fn count(&self) -> StoreFuture<'_, u64> {
        self.memory.count()
    }
}

impl S9SessionStore for Durable<MemoryS9Sessions> {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<S9Session>> {
        self.memory.get(session_id)
    }
    fn put(&self, session: S9Session) -> StoreFuture<'_, Option<S9Session>> {
        Box::pin(self.put_record(session, |m, s| m.put(s)))
    }
    fn replace(&self, session: S9Session) -> StoreFuture<'_, bool> {
        Box::pin(self.replace_record(session, |m, s| m.replace(s)))
    }
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<S9Session>> {
        Box::pin(self.remove_records(|m| m.remove(session_id), |r| r.iter().collect()))
    }
    fn remove_by_vpcrf(&self, host: String) -> StoreFuture<'_, Vec<S9Session>> {
        Box::pin(self.remove_records(|m| m.remove_by_vpcrf(host), |r| r.iter().collect()))
    }
    fn by_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<String>> {
        self.memory.by_subscriber(subscriber)
    }
    fn by_ue_ip(&self, ip: IpAddr) -> StoreFuture<'_, Option<(String, u32)>> {
        self.memory.by_ue_ip(ip)
    }
    fn list(&self) -> StoreFuture<'_, Vec<String>> {
        self.memory.list()
    }
    fn count(&self) -> StoreFuture<'_, u64> {
        self.memory.count()
    }
}

impl RoamingStore for Durable<MemoryRoaming> {
    fn client(&self, session_id: String) -> StoreFuture<'_, Option<RoamingSession>> {
        self.memory.client(session_id)
    }
    fn put_client(&self, session: RoamingSession) -> StoreFuture<'_, ()> {
        Box::pin(self.put_record(session, |m, s| m.put_client(s)))
    }
    fn remove_client(&self, session_id: String) -> StoreFuture<'_, Option<RoamingSession>> {
        Box::pin(self.remove_records(|m| m.remove_client(session_id), |r| r.iter().collect()))
    }
    fn clients_of(&self, subscriber: String) -> StoreFuture<'_, Vec<RoamingSession>> {
        self.memory.clients_of(subscriber)
    }
    fn clients(&self) -> StoreFuture<'_, Vec<RoamingSession>> {
        self.memory.clients()
    }
    fn s9(&self, session_id: String) -> StoreFuture<'_, Option<S9Record>> {
        self.memory.s9(session_id)
    }
    fn create_s9(&self, record: S9Record) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move {
            // Written only when memory took it (the UE had no S9 session yet).
            let op = Op::Put(S9Record::KIND, record.session_id.clone(), record.encode()?);
            self.write_through(
                |m| m.create_s9(record),
                |existing| Ok(if existing.is_none() { vec![op] } else { vec![] }),
            )
            .await
        })
    }
    fn replace_s9(&self, record: S9Record) -> StoreFuture<'_, bool> {
        Box::pin(self.replace_record(record, |m, r| m.replace_s9(r)))
    }
    fn remove_s9(&self, session_id: String) -> StoreFuture<'_, Option<S9Record>> {
        Box::pin(self.remove_records(|m| m.remove_s9(session_id), |r| r.iter().collect()))
    }
    fn s9_of_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<S9Record>> {
        self.memory.s9_of_subscriber(subscriber)
    }
    fn s9_ids(&self) -> StoreFuture<'_, Vec<String>> {
        self.memory.s9_ids()
    }
    fn lock_s9(&self, session_id: String) -> StoreFuture<'_, S9Lease> {
        self.memory.lock_s9(session_id)
    }
}

/// The session stores on one data file, their sessions loaded.
pub struct DurableStores {
    /// Gx sessions.
    pub gx: Arc<Durable<MemorySessions>>,
    /// Rx sessions.
    pub rx: Arc<Durable<MemoryRxSessions>>,
    /// Gxx sessions.
    pub gxx: Arc<Durable<MemoryGxxSessions>>,
    /// S9 sessions.
    pub s9: Arc<Durable<MemoryS9Sessions>>,
    /// The visited role's roaming sessions.
    pub roaming: Arc<Durable<MemoryRoaming>>,
    /// The file (its Origin-State-Id; closed on shutdown).
    pub disk: Arc<Disk>,
}

/// Decodes every record of `S` found at start.
fn records<S: Record>(loaded: &Loaded) -> impl Iterator<Item = Result<S, StoreError>> + '_ {
    loaded[S::KIND as usize].iter().map(|b| S::decode(b))
}

impl DurableStores {
    /// Opens (or creates) the data file at `path` and loads its sessions.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let (disk, loaded) = Disk::open(path)?;
        let gx = MemorySessions::new();
        for s in records(&loaded) {
            gx.put(s?).await?;
        }
        let rx = MemoryRxSessions::new();
        for s in records(&loaded) {
            rx.put(s?).await?;
        }
        let gxx = MemoryGxxSessions::new();
        for s in records(&loaded) {
            gxx.put(s?).await?;
        }
        let s9 = MemoryS9Sessions::new();
        for s in records(&loaded) {
            s9.put(s?).await?;
        }
        let roaming = MemoryRoaming::new();
        for c in records::<RoamingSession>(&loaded) {
            roaming.put_client(c?).await?;
        }
        for r in records::<S9Record>(&loaded) {
            roaming.create_s9(r?).await?;
        }
        let disk = Arc::new(disk);
        Ok(Self {
            gx: Arc::new(Durable::new(gx, disk.clone())),
            rx: Arc::new(Durable::new(rx, disk.clone())),
            gxx: Arc::new(Durable::new(gxx, disk.clone())),
            s9: Arc::new(Durable::new(s9, disk.clone())),
            roaming: Arc::new(Durable::new(roaming, disk.clone())),
            disk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lbo::{Grant, LboKind};
    use crate::session::{RuleFailure, S9Subsession};
    use crate::spr::Flow;
    use diameter_codec::types::DiameterTime;

    fn gx(id: &str) -> GxSession {
        let mut s = GxSession::new(id.into(), "pcef.x".into(), "r".into(), "imsi:1".into());
        s.ue_ip = Some("10.45.0.2".parse().unwrap());
        let mut rule = RuleDef::with_flows(
            "af-1".into(),
            Some(100),
            vec![Flow {
                description: "permit out 17 from any to 10.45.0.2 5000".into(),
                direction: Default::default(),
            }],
        );
        rule.flow_status = Some(2);
        rule.af_charging_id = Some("icid".into());
        rule.af_flows = vec![AfFlows {
            media_component: 1,
            flow_numbers: vec![1, 2],
        }];
        rule.lbo = Some(LboMark {
            kind: LboKind::SteerToLocalUp("up-1".into()),
            grant: Some(Grant {
                grant_id: "g".into(),
                home_operator: "h".into(),
                package: "p".into(),
                expiry: DiameterTime(42),
                signature: vec![1, 2, 3],
            }),
        });
        s.dynamic_rules.insert(Arc::new(rule));
        s.predefined_rules.insert("local-dns");
        s.failures.push(RuleFailure {
            name: "x".into(),
            status: Some(1),
            failure_code: Some(10),
        });
        s
    }

    #[tokio::test]
    async fn sessions_come_back_whole_with_the_origin_state_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let stores = DurableStores::open(&path).await.unwrap();
        let osi = stores.disk.origin_state_id();
        stores.gx.put(gx("a")).await.unwrap();
        stores.gx.put(gx("b")).await.unwrap();
        let mut a = stores.gx.get("a".into()).await.unwrap().unwrap();
        a.rat_type = Some(1000);
        assert!(stores.gx.replace(a.clone()).await.unwrap());
        assert!(!stores.gx.replace(a).await.unwrap(), "stale: not written");
        stores.gx.remove("b".into()).await.unwrap();
        let s9 = S9Session {
            session_id: "s9".into(),
            vpcrf_host: "vpcrf".into(),
            vpcrf_realm: "v".into(),
            subscriber: "imsi:1".into(),
            last_request_number: 3,
            subsessions: [(
                1,
                S9Subsession {
                    id: 1,
                    policy: gx("s9#1"),
                    client_sessions: vec!["c".into()],
                },
            )]
            .into(),
            version: 0,
        };
        stores.s9.put(s9.clone()).await.unwrap();
        let gxx = GxxSession {
            session_id: "gxx".into(),
            bberf_host: "bberf".into(),
            bberf_realm: "r".into(),
            subscriber: Some("imsi:1".into()),
            ue_ip: None,
            apn: None,
            gx_session: Some("a".into()),
            qos_rules: ["q".to_string()].into(),
            failures: vec![],
            last_request_number: 0,
            version: 0,
        };
        stores.gxx.put(gxx.clone()).await.unwrap();
        let a_now = stores.gx.get("a".into()).await.unwrap().unwrap();
        stores.disk.close().await;
        drop(stores);

        let again = DurableStores::open(&path).await.unwrap();
        assert_eq!(again.disk.origin_state_id(), osi);
        assert_eq!(again.gx.get("a".into()).await.unwrap(), Some(a_now));
        assert_eq!(again.gx.get("b".into()).await.unwrap(), None);
        assert_eq!(again.gx.count().await.unwrap(), 1);
        assert_eq!(
            again
                .gx
                .by_ue_ip("10.45.0.2".parse().unwrap())
                .await
                .unwrap(),
            Some("a".into()),
            "indexes rebuilt"
        );
        assert_eq!(again.s9.get("s9".into()).await.unwrap(), Some(s9));
        assert_eq!(again.gxx.by_gx("a".into()).await.unwrap(), [gxx]);
        again.disk.close().await;
    }
}
