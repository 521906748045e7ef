//! The V-PCRF's roaming state behind [`RoamingStore`]: the client sessions (Gx and Gxx,
//! keyed by the client's Session-Id, document 002 "session id 1") with the S9 session and
//! subsession that carry them, and the S9 sessions (keyed by S9 Session-Id, "session id
//! 2") with their request numbering, subsessions and, per UE, the UE's key.
//!
//! The in-memory default, [`MemoryRoaming`], keeps the maps under one lock never held
//! across an await. A shared engine implements the same operations on Redis: a hash per
//! client session (`vgx:{Session-Id}`) and per S9 session (`s9:{S9 Session-Id}`), a set per
//! subscriber naming its client and S9 sessions, a string per UE key naming its S9 session
//! (`SET NX`, so two V-PCRF instances never open two S9 sessions for one UE), the hash slot
//! chosen by the subscriber so a UE's keys share one slot and a script can change them
//! together.
//!
//! Serialisation per S9 session: an S9 session's requests go one at a time (CC-Request-Number
//! order, subsession ids, "is this the last subsession"). The V-PCRF takes
//! [`RoamingStore::lock_s9`] before it reads the S9 record and holds the lease across the S9
//! exchange; then it writes the record back with [`RoamingStore::replace_s9`], which, as the
//! other stores' `version` fields do, writes only over the version it read. In memory the
//! lease is a per-key async mutex. On Redis it is a lease key (`SET s9lock:{id} token NX
//! PX ttl`, renewed while held, released by a script that deletes it only if it still holds
//! the token); the version check makes a lease that expired under a stalled holder harmless
//! (its write is refused and it starts over), so nothing relies on a process-local object
//! for correctness, only for waiting.

use super::RoamingSession;
use crate::spr::{StoreError, StoreFuture, SubscriberKey};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// One S9 session towards a home network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S9Record {
    /// Its Session-Id.
    pub session_id: String,
    /// The home network's realm (its `[[pcrf.visited.home]]` entry).
    pub home_realm: String,
    /// The H-PCRF that answered the CCR-I (Destination-Host of later requests).
    pub home_host: Option<String>,
    /// The subscriber.
    pub subscriber: SubscriberKey,
    /// The per-UE key, in the per-UE model.
    pub ue_key: Option<String>,
    /// The next CC-Request-Number.
    pub next_number: u32,
    /// The next Subsession-Id.
    pub next_subsession: u32,
    /// Subsession → client Session-Id.
    pub subsessions: BTreeMap<u32, String>,
    /// Whether the CCR-I was answered with success.
    pub opened: bool,
    /// Bumped by every write (optimistic concurrency, as the other stores).
    pub version: u64,
}

/// Held while an S9 session's request is under way; dropping it lets the next one go.
pub struct S9Lease(#[allow(dead_code)] Box<dyn Send + Sync>);

/// Where the V-PCRF keeps its roaming sessions.
pub trait RoamingStore: Send + Sync + 'static {
    /// A client session.
    fn client(&self, session_id: String) -> StoreFuture<'_, Option<RoamingSession>>;
    /// Stores a client session (a new one, or over the one of that Session-Id).
    fn put_client(&self, session: RoamingSession) -> StoreFuture<'_, ()>;
    /// Removes a client session.
    fn remove_client(&self, session_id: String) -> StoreFuture<'_, Option<RoamingSession>>;
    /// The client sessions of a subscriber (as [`SubscriberKey::as_key`]).
    fn clients_of(&self, subscriber: String) -> StoreFuture<'_, Vec<RoamingSession>>;
    /// Every client session (admin, a restarted peer, lookups by address).
    fn clients(&self) -> StoreFuture<'_, Vec<RoamingSession>>;
    /// An S9 session.
    fn s9(&self, session_id: String) -> StoreFuture<'_, Option<S9Record>>;
    /// Stores a new S9 session. With a `ue_key`, only if the UE has none yet: then the
    /// UE's S9 Session-Id is returned and nothing is written.
    fn create_s9(&self, record: S9Record) -> StoreFuture<'_, Option<String>>;
    /// Writes `record` over the stored one if that is still at `record.version`, and bumps
    /// the version; `false`, nothing written, when it changed meanwhile or is gone.
    fn replace_s9(&self, record: S9Record) -> StoreFuture<'_, bool>;
    /// Removes an S9 session (and its UE key, when it still names it).
    fn remove_s9(&self, session_id: String) -> StoreFuture<'_, Option<S9Record>>;
    /// The S9 sessions of a subscriber.
    fn s9_of_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<S9Record>>;
    /// The Session-Ids of every S9 session.
    fn s9_ids(&self) -> StoreFuture<'_, Vec<String>>;
    /// Waits for, and takes, S9 session `session_id`'s lease.
    fn lock_s9(&self, session_id: String) -> StoreFuture<'_, S9Lease>;
}

#[derive(Default)]
struct Maps {
    clients: HashMap<String, RoamingSession>,
    s9: HashMap<String, S9Record>,
    by_ue: HashMap<String, String>,
    /// Subscriber → client Session-Ids.
    clients_by_sub: HashMap<String, BTreeSet<String>>,
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

/// The in-memory default.
#[derive(Default)]
pub struct MemoryRoaming {
    maps: Mutex<Maps>,
}

impl MemoryRoaming {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Maps) -> T) -> Result<T, StoreError> {
        let mut m = self
            .maps
            .lock()
            .map_err(|_| StoreError("roaming store poisoned".into()))?;
        Ok(f(&mut m))
    }
}

fn unindex(m: &mut Maps, s: &RoamingSession) {
    if let Some(set) = m.clients_by_sub.get_mut(&s.subscriber) {
        set.remove(&s.session_id);
        if set.is_empty() {
            m.clients_by_sub.remove(&s.subscriber);
        }
    }
}

impl RoamingStore for MemoryRoaming {
    fn client(&self, session_id: String) -> StoreFuture<'_, Option<RoamingSession>> {
        Box::pin(async move { self.with(|m| m.clients.get(&session_id).cloned()) })
    }

    fn put_client(&self, session: RoamingSession) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.with(|m| {
                if let Some(old) = m.clients.remove(&session.session_id) {
                    unindex(m, &old);
                }
                m.clients_by_sub
                    .entry(session.subscriber.clone())
                    .or_default()
                    .insert(session.session_id.clone());
                m.clients.insert(session.session_id.clone(), session);
            })
        })
    }

    fn remove_client(&self, session_id: String) -> StoreFuture<'_, Option<RoamingSession>> {
        Box::pin(async move {
            self.with(|m| {
                let s = m.clients.remove(&session_id)?;
                unindex(m, &s);
                Some(s)
            })
        })
    }

    fn clients_of(&self, subscriber: String) -> StoreFuture<'_, Vec<RoamingSession>> {
        Box::pin(async move {
            self.with(|m| {
                m.clients_by_sub
                    .get(&subscriber)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| m.clients.get(id).cloned())
                    .collect()
            })
        })
    }

    fn clients(&self) -> StoreFuture<'_, Vec<RoamingSession>> {
        Box::pin(async move { self.with(|m| m.clients.values().cloned().collect()) })
    }

    fn s9(&self, session_id: String) -> StoreFuture<'_, Option<S9Record>> {
        Box::pin(async move { self.with(|m| m.s9.get(&session_id).cloned()) })
    }

    fn create_s9(&self, record: S9Record) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move {
            self.with(|m| {
                if let Some(k) = &record.ue_key {
                    if let Some(existing) = m.by_ue.get(k) {
                        return Some(existing.clone());
                    }
                    m.by_ue.insert(k.clone(), record.session_id.clone());
                }
                m.s9.insert(record.session_id.clone(), record);
                None
            })
        })
    }

    fn replace_s9(&self, mut record: S9Record) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            self.with(|m| match m.s9.get_mut(&record.session_id) {
                Some(cur) if cur.version == record.version => {
                    record.version += 1;
                    *cur = record;
                    true
                }
                _ => false,
            })
        })
    }

    fn remove_s9(&self, session_id: String) -> StoreFuture<'_, Option<S9Record>> {
        Box::pin(async move {
            self.with(|m| {
                m.locks.remove(&session_id);
                let r = m.s9.remove(&session_id)?;
                if let Some(k) = &r.ue_key
                    && m.by_ue.get(k) == Some(&r.session_id)
                {
                    m.by_ue.remove(k);
                }
                Some(r)
            })
        })
    }

    fn s9_of_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<S9Record>> {
        Box::pin(async move {
            self.with(|m| {
                m.s9.values()
                    .filter(|r| r.subscriber.as_key() == subscriber)
                    .cloned()
                    .collect()
            })
        })
    }

    fn s9_ids(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move { self.with(|m| m.s9.keys().cloned().collect()) })
    }

    fn lock_s9(&self, session_id: String) -> StoreFuture<'_, S9Lease> {
        Box::pin(async move {
            // No lock is made for an S9 session that is gone (the caller, reading it next,
            // finds it gone and starts over), so none outlives its session.
            let lock = self.with(|m| {
                m.locks.get(&session_id).cloned().or_else(|| {
                    m.s9.contains_key(&session_id)
                        .then(|| m.locks.entry(session_id).or_default().clone())
                })
            })?;
            Ok(match lock {
                Some(l) => S9Lease(Box::new(l.lock_owned().await)),
                None => S9Lease(Box::new(())),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, ue: Option<&str>) -> S9Record {
        S9Record {
            session_id: id.into(),
            home_realm: "home.test".into(),
            home_host: None,
            subscriber: SubscriberKey::Imsi("001010000000001".into()),
            ue_key: ue.map(str::to_string),
            next_number: 0,
            next_subsession: 1,
            subsessions: BTreeMap::new(),
            opened: false,
            version: 0,
        }
    }

    #[tokio::test]
    async fn one_s9_session_per_ue_key_and_writes_only_over_the_version_read() {
        let st = MemoryRoaming::new();
        assert_eq!(
            st.create_s9(record("s9;1", Some("ue"))).await.unwrap(),
            None
        );
        // A second opening for the UE finds the first.
        assert_eq!(
            st.create_s9(record("s9;2", Some("ue"))).await.unwrap(),
            Some("s9;1".into())
        );
        assert!(st.s9("s9;2".into()).await.unwrap().is_none());
        let mut a = st.s9("s9;1".into()).await.unwrap().unwrap();
        let b = a.clone();
        a.next_number = 1;
        assert!(st.replace_s9(a).await.unwrap());
        // A writer that read before: refused.
        assert!(!st.replace_s9(b).await.unwrap());
        assert_eq!(st.s9("s9;1".into()).await.unwrap().unwrap().version, 1);
        assert_eq!(
            st.s9_of_subscriber("imsi:001010000000001".into())
                .await
                .unwrap()
                .len(),
            1
        );
        st.remove_s9("s9;1".into()).await.unwrap();
        assert_eq!(
            st.create_s9(record("s9;3", Some("ue"))).await.unwrap(),
            None
        );
        assert_eq!(st.s9_ids().await.unwrap(), ["s9;3"]);
    }

    #[tokio::test]
    async fn an_s9_lease_is_held_by_one_at_a_time() {
        let st = Arc::new(MemoryRoaming::new());
        st.create_s9(record("s9;1", None)).await.unwrap();
        let lease = st.lock_s9("s9;1".into()).await.unwrap();
        let st2 = st.clone();
        let waiter = tokio::spawn(async move { st2.lock_s9("s9;1".into()).await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(lease);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // A gone session's lease is free and leaves nothing behind.
        st.remove_s9("s9;1".into()).await.unwrap();
        let _l = st.lock_s9("s9;1".into()).await.unwrap();
        assert!(st.with(|m| m.locks.is_empty()).unwrap());
    }
}
