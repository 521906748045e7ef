//! Where the visited OCS keeps its sessions: the [`VisitedStore`] trait, keyed by the
//! PCEF's Session-Id, one record per session read and written whole — what a shared engine
//! (Redis: one hash per session, written with a WATCH/MULTI transaction) can implement —
//! its embedded durable default ([`DurableVisitedStore`]) and an in-memory one.

use super::location::Location;
use super::policy::VisitedDecision;
use crate::config::FailureHandling;
use crate::engine::Policy;
use crate::model::{CcAnswer, MsccAnswer, RequestType, ServiceKey, SubscriptionId, Units};
use crate::store::redb::RedbStore;
use crate::store::{StoreError, StoreFuture};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One MSCC of a request sent home.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeMscc {
    /// Rating-Group and Service-Identifier.
    pub service: ServiceKey,
    /// Requested-Service-Unit.
    pub requested: Option<Units>,
    /// Used-Service-Unit: all the usage of the rating group not yet sent home.
    pub used: Option<Units>,
    /// Reporting-Reason.
    pub reason: Option<i32>,
    /// Trigger-Type values that fired, as home armed them.
    pub triggers: Vec<i32>,
    /// Locally-Absorbed-Usage: the part of `used` reported in updates answered locally, and
    /// in how many.
    pub absorbed: Option<(Units, u32)>,
    /// Visited-Credit-Decision.
    pub decision: Option<VisitedDecision>,
}

/// A request sent home whose answer never came though it may have arrived (a timeout): the
/// next request home is this one again, with the same CC-Request-Number and the T bit, so
/// home's duplicate detection settles whether it was applied (RFC 4006 §5.7, RFC 6733
/// §5.5.4) before anything new is numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InDoubt {
    /// CC-Request-Type (UPDATE or TERMINATION).
    pub kind: RequestType,
    /// The MSCCs as sent.
    pub msccs: Vec<HomeMscc>,
    /// The PCEF's CC-Request-Number whose answer waits for this request home, when the
    /// record was written before home answered (so that a crash cannot lose what the PCEF
    /// was told): the session then holds that request's usage, and the PCEF sending it again
    /// means home's answer to this one answers it. `None`: the PCEF was answered 3002 and
    /// reports that usage again.
    pub pcef_number: Option<u32>,
}

/// One rating group of a visited session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitedService {
    /// Rating-Group and Service-Identifier.
    pub service: ServiceKey,
    /// The home decision, as received (S314: stored).
    pub home: MsccAnswer,
    /// Units the PCEF reported since that decision and not yet sent home: the home grant
    /// less these is what local re-authorisations may still give.
    pub unreported: Units,
    /// The part of `unreported` reported in updates answered locally.
    pub absorbed: Units,
    /// How many such updates.
    pub absorbed_count: u32,
    /// The decision the PCEF got last, to tell home on the next request (when
    /// `report_decision` is on).
    pub to_report: Option<VisitedDecision>,
}

/// A visited session: the PCEF's session and the agent's own session towards home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitedSession {
    /// The PCEF's Session-Id.
    pub pcef_session: String,
    /// The agent's own Session-Id towards home.
    pub home_session: String,
    /// The next CC-Request-Number towards home (consecutive: every request is sent).
    pub home_number: u32,
    /// The home realm.
    pub home_realm: String,
    /// Primary, then secondary home OCS.
    pub home_hosts: Vec<String>,
    /// The operator entry of `[visited]` (its realm).
    pub operator: String,
    /// Subscription-Ids of the CCR-I, sent home again on every request.
    pub subscriptions: Vec<SubscriptionId>,
    /// Where the user is now.
    pub location: Option<Location>,
    /// Where home was last told the user is.
    pub home_location: Option<Location>,
    /// The last 3GPP-User-Location-Info and 3GPP-RAT-Type octets, as sent home.
    pub uli: Option<Vec<u8>>,
    /// 3GPP-RAT-Type.
    pub rat: Option<Vec<u8>>,
    /// Per rating group.
    pub services: Vec<VisitedService>,
    /// The highest CC-Request-Number of the PCEF handled and the last answers by number,
    /// for retransmissions (shared: a session is copied several times per request, its
    /// answers are not).
    pub answers: Vec<(u32, Arc<CcAnswer>)>,
    /// What to do when home cannot be reached.
    pub failure_handling: FailureHandling,
    /// The PCEF's Origin-Host and Origin-Realm: where a re-auth request goes.
    pub pcef_host: String,
    /// The PCEF's Origin-Realm.
    pub pcef_realm: String,
    /// Home asked for re-authorisation (RAR, RFC 4006 §5.5): the next update goes home.
    pub reauth: bool,
    /// When home last answered a request of this session (wall clock, ms).
    pub home_at: crate::model::UnixMillis,
    /// Request `home_number`, sent but not answered (see [`InDoubt`]).
    pub in_doubt: Option<InDoubt>,
    /// When the PCEF's last request was handled (wall clock, ms), for Tcc.
    pub pcef_at: crate::model::UnixMillis,
}

/// How many answers a session keeps for retransmitted requests.
pub const KEPT_ANSWERS: usize = 8;

impl VisitedSession {
    /// The service entry, created on first use.
    pub fn service_mut(&mut self, service: ServiceKey) -> Option<&mut VisitedService> {
        self.services.iter_mut().find(|s| s.service == service)
    }

    /// Remembers an answer for retransmissions.
    pub fn keep_answer(&mut self, n: u32, a: Arc<CcAnswer>) {
        self.answers.retain(|(k, _)| *k != n);
        self.answers.push((n, a));
        if self.answers.len() > KEPT_ANSWERS {
            self.answers.remove(0);
        }
    }

    /// The stored answer to request `n`.
    pub fn answer(&self, n: u32) -> Option<&Arc<CcAnswer>> {
        self.answers.iter().find(|(k, _)| *k == n).map(|(_, a)| a)
    }
}

/// The visited OCS's session store. Callers serialise the requests of one session (the
/// agent holds a per-session lock), so a get-then-put pair is the unit of change.
pub trait VisitedStore: Send + Sync + 'static {
    /// The session of the PCEF's Session-Id.
    fn get(&self, pcef_session: String) -> StoreFuture<'_, Option<VisitedSession>>;
    /// Writes a session whole.
    fn put(&self, session: VisitedSession) -> StoreFuture<'_, ()>;
    /// Writes a session whole without waiting for it to be durable: a crash may lose it and
    /// leave the session as it was last [`VisitedStore::put`]. Only for a change that
    /// durable record lets the agent make again (a request home recorded as in doubt).
    /// [`DurableVisitedStore`] takes it to the disk within `[store] checkpoint_interval`
    /// and answers at once: the write is ordered before the session's next one when this
    /// future ends.
    fn put_lazy(&self, session: VisitedSession) -> StoreFuture<'_, ()> {
        self.put(session)
    }
    /// Forgets a session.
    fn remove(&self, pcef_session: String) -> StoreFuture<'_, ()>;
    /// The PCEF's Session-Id of the session whose Session-Id towards home is this (a
    /// re-auth request from home names the latter).
    fn by_home(&self, home_session: String) -> StoreFuture<'_, Option<String>>;
    /// How many sessions.
    fn count(&self) -> StoreFuture<'_, usize>;
    /// Up to `limit` sessions whose PCEF has sent nothing since `before` (Tcc).
    fn idle(&self, before: crate::model::UnixMillis, limit: usize) -> StoreFuture<'_, Vec<String>>;
    /// RFC 6733 §8.16: the Origin-State-Id this node announces, changed only when its
    /// state is lost. `None`: the state lives as long as the process (the node picks a new
    /// value at each start).
    fn origin_state_id(&self) -> Option<u32> {
        None
    }
    /// Finishes pending writes and lets go of what the store holds open (a data file), so
    /// the next process (or a restart in this one) can open it.
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Sessions in memory only: lost on a restart (the PCEF's next update is then refused 5002
/// and the usage held since the last home request is not reported home). For tests and
/// for [`DurableVisitedStore`]'s reads.
#[derive(Default)]
pub struct MemoryVisitedStore {
    maps: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    /// By the PCEF's Session-Id (shared with the durable store's writer, which encodes
    /// the record on its own thread).
    sessions: HashMap<String, Arc<VisitedSession>>,
    /// The Session-Id towards home → the PCEF's.
    by_home: HashMap<String, String>,
}

impl MemoryVisitedStore {
    fn map(&self) -> Result<std::sync::MutexGuard<'_, Maps>, StoreError> {
        self.maps
            .lock()
            .map_err(|_| StoreError::from_err("visited session map poisoned"))
    }

    /// Keeps a session, replacing what was kept.
    fn insert(&self, s: Arc<VisitedSession>) -> Result<(), StoreError> {
        let old = {
            let mut m = self.map()?;
            if m.by_home.get(&s.home_session) != Some(&s.pcef_session) {
                m.by_home
                    .insert(s.home_session.clone(), s.pcef_session.clone());
            }
            match m.sessions.get_mut(&s.pcef_session) {
                Some(kept) => Some(std::mem::replace(kept, s)),
                None => m.sessions.insert(s.pcef_session.clone(), s),
            }
        };
        // The session replaced is freed outside the lock.
        drop(old);
        Ok(())
    }
}

impl VisitedStore for MemoryVisitedStore {
    fn get(&self, id: String) -> StoreFuture<'_, Option<VisitedSession>> {
        Box::pin(async move { Ok(self.map()?.sessions.get(&id).map(|s| (**s).clone())) })
    }
    fn put(&self, s: VisitedSession) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(self.insert(Arc::new(s))))
    }
    fn remove(&self, id: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut m = self.map()?;
            if let Some(s) = m.sessions.remove(&id) {
                m.by_home.remove(&s.home_session);
            }
            Ok(())
        })
    }
    fn by_home(&self, home_session: String) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move { Ok(self.map()?.by_home.get(&home_session).cloned()) })
    }
    fn idle(&self, before: crate::model::UnixMillis, limit: usize) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            Ok(self
                .map()?
                .sessions
                .values()
                .filter(|s| s.pcef_at < before)
                .take(limit)
                .map(|s| s.pcef_session.clone())
                .collect())
        })
    }
    fn count(&self) -> StoreFuture<'_, usize> {
        Box::pin(async move { Ok(self.map()?.sessions.len()) })
    }
}

/// The embedded durable default: every session record written to the home role's store
/// ([`RedbStore`]: a journal entry in its log, group committed with an fdatasync when
/// `[store] durable`, later folded into its `visited_sessions` table) before the change is
/// visible, and read back at start — so a visited
/// OCS that restarts (a crash included) keeps its sessions: the PCEF's next update is
/// served, and the usage held locally still reaches home exactly once. Reads are served
/// from memory.
pub struct DurableVisitedStore {
    memory: MemoryVisitedStore,
    disk: RedbStore,
}

impl DurableVisitedStore {
    /// Opens (or creates) the data file of `[store]` and loads its sessions.
    pub async fn open(cfg: &crate::config::Config) -> Result<Self, StoreError> {
        let options = cfg.redb_options();
        let policy = Arc::new(Policy::from_config(cfg));
        let disk = RedbStore::open(&cfg.store.path, options, policy)?;
        let memory = MemoryVisitedStore::default();
        for s in disk.visited_records::<VisitedSession>().await? {
            memory.put(s).await?;
        }
        Ok(Self { memory, disk })
    }
}

impl VisitedStore for DurableVisitedStore {
    fn get(&self, id: String) -> StoreFuture<'_, Option<VisitedSession>> {
        self.memory.get(id)
    }
    /// The write is queued for the store's writer when this is called (it goes on without
    /// the future being polled); the future ends once it is on the disk.
    fn put(&self, s: VisitedSession) -> StoreFuture<'_, ()> {
        let s = Arc::new(s);
        let written = self.disk.put_visited(s.pcef_session.clone(), s.clone());
        Box::pin(async move {
            written.await?;
            self.memory.insert(s)
        })
    }
    /// Kept in memory and queued for the writer at once; nobody waits for the disk. The
    /// session's next write is queued after it, so it cannot replace it; the durable record
    /// written before covers a crash in between, and a failed write too (a failed round is
    /// logged by the writer; the next write replaces the record whole).
    fn put_lazy(&self, s: VisitedSession) -> StoreFuture<'_, ()> {
        let s = Arc::new(s);
        self.disk
            .put_visited_lazy(s.pcef_session.clone(), s.clone());
        Box::pin(std::future::ready(self.memory.insert(s)))
    }
    fn remove(&self, id: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.disk.remove_visited(id.clone()).await?;
            self.memory.remove(id).await
        })
    }
    fn by_home(&self, home_session: String) -> StoreFuture<'_, Option<String>> {
        self.memory.by_home(home_session)
    }
    fn idle(&self, before: crate::model::UnixMillis, limit: usize) -> StoreFuture<'_, Vec<String>> {
        self.memory.idle(before, limit)
    }
    fn count(&self) -> StoreFuture<'_, usize> {
        self.memory.count()
    }
    fn origin_state_id(&self) -> Option<u32> {
        // The data file's: the sessions outlive a restart, so home must not clear them as
        // a restarted peer's (it would answer the next request 5002).
        Some(crate::store::ChargingStore::origin_state_id(&self.disk))
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.disk.close().await;
            Ok(())
        })
    }
}
