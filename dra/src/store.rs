//! Where bindings live: [`BindingStore`], a narrow asynchronous interface, with an
//! in-memory store ([`MemoryStore`]) and the embedded durable default ([`RedbStore`]).
//!
//! Every operation is one atomic step keyed by what a DRA knows when it runs: a Session-Id,
//! a UE identity (with APN and address), a UE address, a PCRF or a client. A shared engine
//! implements the same operations later: on Redis, one hash per entry with its sessions,
//! the entry's key hash-tagged by UE identity (`{imsi:…}|apn|ip`) so an entry and its UE
//! index share a slot, sets indexing Session-Id, UE address and PCRF, and each operation a
//! script (or MULTI over WATCHed keys) that changes the entry and its index entries together,
//! the binding lifetime an expiry on the entry.
//!
//! Both embedded stores keep the entries and their indexes in memory ([`Index`]); the
//! durable one also writes every change to a redb file before the operation returns, from
//! one writer thread that commits what queued up together (group commit), and loads the
//! file at start: a DRA restarted (also after `kill -9`) keeps its bindings.

use crate::binding::{
    BindRequest, Binding, BoundSession, Index, MatchBy, Stats, Terminated, UeKey, Write,
};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// A store operation's future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("binding store: {0}")]
pub struct StoreError(pub String);

fn se(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// The binding store (see the module documentation).
pub trait BindingStore: Send + Sync + 'static {
    /// Binds a new session (Gx, Gxx or S9 establishment): joins the entry its keys match
    /// or creates one on the PCRF given.
    fn bind(&self, req: BindRequest) -> StoreFuture<'_, Binding>;

    /// The entry a new session of `key` would join.
    fn find(&self, key: UeKey, by: MatchBy) -> StoreFuture<'_, Option<Binding>>;

    /// The PCRF of the entry a new session of `key` would join (not a copy of the entry).
    fn pcrf_for<'a>(&'a self, key: &'a UeKey, by: MatchBy) -> StoreFuture<'a, Option<String>>;

    /// The entry of a UE address (Rx, 29.213 §7.3.2).
    fn find_by_address(&self, key: UeKey) -> StoreFuture<'_, Option<Binding>>;

    /// Binds a session to an existing entry; `None` when the entry is gone.
    fn attach(
        &self,
        binding_id: String,
        session: BoundSession,
        now_ms: u64,
    ) -> StoreFuture<'_, Option<Binding>>;

    /// The entry a session is bound to.
    fn by_session(&self, session_id: String) -> StoreFuture<'_, Option<Binding>>;

    /// The PCRF of the entry a session is bound to.
    fn pcrf_of_session<'a>(&'a self, session_id: &'a str) -> StoreFuture<'a, Option<String>>;

    /// [`BindingStore::pcrf_of_session`] without a future, from a store that can answer at
    /// once (one that keeps its index in memory); `None` from one that cannot, whose
    /// caller then awaits [`BindingStore::pcrf_of_session`].
    fn pcrf_of_session_now(&self, session_id: &str) -> Option<Result<Option<String>, StoreError>> {
        let _ = session_id;
        None
    }

    /// Takes a session off its entry (its establishment failed).
    fn release_session(&self, session_id: String) -> StoreFuture<'_, Option<Binding>>;

    /// Marks sessions terminated; entries left with no active session are deleted.
    fn terminate(&self, session_ids: Vec<String>, now_ms: u64) -> StoreFuture<'_, Vec<Terminated>>;

    /// Deletes every entry on a PCRF.
    fn release_pcrf(&self, pcrf: String) -> StoreFuture<'_, Vec<Binding>>;

    /// Takes every session a client bound before `before_ms` off its entry; returns how
    /// many.
    fn release_client(&self, client: String, before_ms: u64) -> StoreFuture<'_, usize>;

    /// Deletes entries unchanged since before `cutoff_ms`.
    fn expire(&self, cutoff_ms: u64) -> StoreFuture<'_, Vec<Binding>>;

    /// Entries unchanged since before `cutoff_ms`, oldest first, at most `limit`.
    fn idle(&self, cutoff_ms: u64, limit: usize) -> StoreFuture<'_, Vec<Binding>>;

    /// Sets an entry's last change to `now_ms`; `None` when it is gone.
    fn touch(&self, binding_id: String, now_ms: u64) -> StoreFuture<'_, Option<Binding>>;

    /// Every entry (the operator's listing).
    fn list(&self) -> StoreFuture<'_, Vec<Binding>>;

    /// Sizes.
    fn stats(&self) -> StoreFuture<'_, Stats>;

    /// Entries per PCRF.
    fn per_pcrf(&self, pcrf: String) -> StoreFuture<'_, usize>;
}

/// Bindings in memory only: lost when the DRA stops.
pub struct MemoryStore {
    ix: Mutex<Index>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            ix: Mutex::new(Index::unjournaled()),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Index) -> T) -> Result<T, StoreError> {
        let mut ix = self.ix.lock().map_err(|_| se("index lock poisoned"))?;
        Ok(f(&mut ix))
    }
}

macro_rules! read_ops {
    () => {
        fn find(&self, key: UeKey, by: MatchBy) -> StoreFuture<'_, Option<Binding>> {
            let r = self.with(|ix| ix.find(&key, by));
            Box::pin(async move { r })
        }
        fn pcrf_for<'a>(&'a self, key: &'a UeKey, by: MatchBy) -> StoreFuture<'a, Option<String>> {
            let r = self.with(|ix| ix.pcrf_for(key, by));
            Box::pin(async move { r })
        }
        fn find_by_address(&self, key: UeKey) -> StoreFuture<'_, Option<Binding>> {
            let r = self.with(|ix| ix.find_by_address(&key));
            Box::pin(async move { r })
        }
        fn pcrf_of_session<'a>(&'a self, session_id: &'a str) -> StoreFuture<'a, Option<String>> {
            let r = self.with(|ix| ix.pcrf_of_session(session_id));
            Box::pin(async move { r })
        }
        fn pcrf_of_session_now(
            &self,
            session_id: &str,
        ) -> Option<Result<Option<String>, StoreError>> {
            Some(self.with(|ix| ix.pcrf_of_session(session_id)))
        }
        fn by_session(&self, session_id: String) -> StoreFuture<'_, Option<Binding>> {
            let r = self.with(|ix| ix.by_session(&session_id));
            Box::pin(async move { r })
        }
        fn idle(&self, cutoff_ms: u64, limit: usize) -> StoreFuture<'_, Vec<Binding>> {
            let r = self.with(|ix| ix.idle(cutoff_ms, limit));
            Box::pin(async move { r })
        }
        fn list(&self) -> StoreFuture<'_, Vec<Binding>> {
            let r = self.with(|ix| ix.list());
            Box::pin(async move { r })
        }
        fn stats(&self) -> StoreFuture<'_, Stats> {
            let r = self.with(|ix| ix.stats());
            Box::pin(async move { r })
        }
        fn per_pcrf(&self, pcrf: String) -> StoreFuture<'_, usize> {
            let r = self.with(|ix| ix.per_pcrf(&pcrf));
            Box::pin(async move { r })
        }
    };
}

impl BindingStore for MemoryStore {
    read_ops!();

    fn bind(&self, req: BindRequest) -> StoreFuture<'_, Binding> {
        let r = self.with(|ix| ix.bind(req).0);
        Box::pin(async move { r })
    }
    fn attach(
        &self,
        binding_id: String,
        session: BoundSession,
        now_ms: u64,
    ) -> StoreFuture<'_, Option<Binding>> {
        let r = self.with(|ix| ix.attach(&binding_id, session, now_ms).map(|x| x.0));
        Box::pin(async move { r })
    }
    fn release_session(&self, session_id: String) -> StoreFuture<'_, Option<Binding>> {
        let r = self.with(|ix| ix.release_session(&session_id).0);
        Box::pin(async move { r })
    }
    fn terminate(&self, session_ids: Vec<String>, now_ms: u64) -> StoreFuture<'_, Vec<Terminated>> {
        let r = self.with(|ix| ix.terminate(&session_ids, now_ms).0);
        Box::pin(async move { r })
    }
    fn release_pcrf(&self, pcrf: String) -> StoreFuture<'_, Vec<Binding>> {
        let r = self.with(|ix| ix.release_pcrf(&pcrf).0);
        Box::pin(async move { r })
    }
    fn release_client(&self, client: String, before_ms: u64) -> StoreFuture<'_, usize> {
        let r = self.with(|ix| ix.release_client(&client, before_ms).0);
        Box::pin(async move { r })
    }
    fn expire(&self, cutoff_ms: u64) -> StoreFuture<'_, Vec<Binding>> {
        let r = self.with(|ix| ix.expire(cutoff_ms).0);
        Box::pin(async move { r })
    }
    fn touch(&self, binding_id: String, now_ms: u64) -> StoreFuture<'_, Option<Binding>> {
        let r = self.with(|ix| ix.touch(&binding_id, now_ms).0);
        Box::pin(async move { r })
    }
}

const BINDINGS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("bindings");

/// Most changes per write transaction.
const MAX_BATCH: usize = 1024;

type Job = (Vec<Write>, oneshot::Sender<Result<(), StoreError>>);

/// The embedded durable store: [`Index`] in memory, every change written to a redb file
/// (see the module documentation).
pub struct RedbStore {
    ix: Mutex<Index>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl RedbStore {
    /// Opens (or creates) the file and loads its entries.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| se(format!("{}: {e}", path.display())))?;
        let mut loaded = Vec::new();
        {
            let tx = db.begin_write().map_err(se)?;
            {
                let t = tx.open_table(BINDINGS).map_err(se)?;
                for row in t.iter().map_err(se)? {
                    let (_, v) = row.map_err(se)?;
                    match postcard::from_bytes::<Binding>(v.value()) {
                        Ok(b) => loaded.push(b),
                        Err(e) => tracing::warn!(error = %e, "unreadable binding skipped"),
                    }
                }
            }
            tx.commit().map_err(se)?;
        }
        tracing::info!(path = %path.display(), bindings = loaded.len(), "binding store opened");
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("dra-store".into())
            .spawn(move || writer(db, rx))
            .map_err(se)?;
        Ok(Self {
            ix: Mutex::new(Index::load(loaded)),
            jobs: Mutex::new(tx),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Index) -> T) -> Result<T, StoreError> {
        let mut ix = self.ix.lock().map_err(|_| se("index lock poisoned"))?;
        Ok(f(&mut ix))
    }

    /// Applies a change in memory and queues its writes in the same order (under the
    /// index lock), then waits for their commit.
    fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Index) -> (T, Vec<Write>),
    ) -> StoreFuture<'_, T> {
        let queued = (|| {
            let mut ix = self.ix.lock().map_err(|_| se("index lock poisoned"))?;
            let (out, writes) = f(&mut ix);
            if writes.is_empty() {
                return Ok((out, None));
            }
            let (tx, rx) = oneshot::channel();
            self.jobs
                .lock()
                .map_err(|_| se("queue lock poisoned"))?
                .send((writes, tx))
                .map_err(|_| se("store writer stopped"))?;
            Ok((out, Some(rx)))
        })();
        Box::pin(async move {
            let (out, rx) = queued?;
            if let Some(rx) = rx {
                rx.await.map_err(|_| se("store writer stopped"))??;
            }
            Ok(out)
        })
    }
}

fn writer(db: Database, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let result = commit(&db, batch.iter().flat_map(|(w, _)| w));
        if let Err(e) = &result {
            tracing::error!(error = %e, "binding store commit failed");
        }
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

fn commit<'a>(db: &Database, writes: impl Iterator<Item = &'a Write>) -> Result<(), StoreError> {
    let mut tx = db.begin_write().map_err(se)?;
    tx.set_durability(Durability::Immediate).map_err(se)?;
    {
        let mut t = tx.open_table(BINDINGS).map_err(se)?;
        for w in writes {
            match w {
                Write::Put(b) => {
                    let bytes = postcard::to_stdvec(b).map_err(se)?;
                    t.insert(b.id.as_str(), bytes.as_slice()).map_err(se)?;
                }
                Write::Delete(id) => {
                    t.remove(id.as_str()).map_err(se)?;
                }
            }
        }
    }
    tx.commit().map_err(se)
}

impl BindingStore for RedbStore {
    read_ops!();

    fn bind(&self, req: BindRequest) -> StoreFuture<'_, Binding> {
        self.change(|ix| ix.bind(req))
    }
    fn attach(
        &self,
        binding_id: String,
        session: BoundSession,
        now_ms: u64,
    ) -> StoreFuture<'_, Option<Binding>> {
        self.change(move |ix| match ix.attach(&binding_id, session, now_ms) {
            Some((b, w)) => (Some(b), w),
            None => (None, Vec::new()),
        })
    }
    fn release_session(&self, session_id: String) -> StoreFuture<'_, Option<Binding>> {
        self.change(move |ix| ix.release_session(&session_id))
    }
    fn terminate(&self, session_ids: Vec<String>, now_ms: u64) -> StoreFuture<'_, Vec<Terminated>> {
        self.change(move |ix| ix.terminate(&session_ids, now_ms))
    }
    fn release_pcrf(&self, pcrf: String) -> StoreFuture<'_, Vec<Binding>> {
        self.change(move |ix| ix.release_pcrf(&pcrf))
    }
    fn release_client(&self, client: String, before_ms: u64) -> StoreFuture<'_, usize> {
        self.change(move |ix| ix.release_client(&client, before_ms))
    }
    fn expire(&self, cutoff_ms: u64) -> StoreFuture<'_, Vec<Binding>> {
        self.change(move |ix| ix.expire(cutoff_ms))
    }
    fn touch(&self, binding_id: String, now_ms: u64) -> StoreFuture<'_, Option<Binding>> {
        self.change(move |ix| ix.touch(&binding_id, now_ms))
    }
}

/// A store from the `[store]` table.
pub fn open(
    kind: crate::config::StoreKind,
    path: &Path,
) -> Result<Arc<dyn BindingStore>, StoreError> {
    Ok(match kind {
        crate::config::StoreKind::Memory => Arc::new(MemoryStore::new()),
        crate::config::StoreKind::Redb => Arc::new(RedbStore::open(path)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::{Interface, Mode, SessionState};

    fn req(sid: &str) -> BindRequest {
        BindRequest {
            key: UeKey {
                ue: Some("imsi:1".into()),
                ipv4: Some("10.0.0.1".parse().unwrap()),
                ipv6: None,
                apn: Some("internet".into()),
            },
            by: MatchBy::IpCanSession,
            pcrf: "pcrf.a".into(),
            session: BoundSession {
                session_id: sid.into(),
                interface: Interface::Gx,
                client: "pcef".into(),
                mode: Mode::Proxy,
                state: SessionState::Active,
                since_ms: 5,
            },
            now_ms: 5,
        }
    }

    #[tokio::test]
    async fn the_durable_store_keeps_bindings_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            s.bind(req("gx1")).await.unwrap();
            s.bind(req("gx2")).await.unwrap();
            let b = s.bind(req("gx3")).await.unwrap();
            assert_eq!(b.sessions.len(), 3);
            s.terminate(vec!["gx1".into()], 6).await.unwrap();
        }
        // The writer thread holds the file until its queue closes.
        let s = loop {
            match RedbStore::open(&path) {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        };
        let b = s.by_session("gx2".into()).await.unwrap().unwrap();
        assert_eq!(b.pcrf, "pcrf.a");
        assert_eq!(
            s.stats().await.unwrap(),
            Stats {
                bindings: 1,
                active_sessions: 2,
                terminated_sessions: 1
            }
        );
        s.terminate(vec!["gx2".into(), "gx3".into()], 7)
            .await
            .unwrap();
        assert_eq!(s.stats().await.unwrap(), Stats::default());
    }
}
