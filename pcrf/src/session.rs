//! Gx session state behind [`SessionStore`].
//!
//! A session is keyed by its Session-Id and indexed by the PCEF that opened it (so a
//! restarted PCEF's sessions go at once) and by subscriber (so an operator's policy change
//! reaches every session of a subscriber). The in-memory default, [`MemorySessions`], keeps
//! these three maps under one lock that is never held across an await. A shared engine
//! implements the same operations on Redis: one hash per session (`gx:{Session-Id}`), a set
//! per PCEF and per subscriber, `put` and `remove` as one MULTI or script touching the hash
//! and its two index sets, the hash slot chosen by Session-Id.
//!
//! Changes to a live session are optimistic: [`SessionStore::replace`] writes only over the
//! version that was read (on Redis, a script comparing the version field, or WATCH), so a
//! CCR-U and a policy push that race do not lose each other's changes — the loser reads
//! again and decides again.

use crate::spr::{RuleDef, StoreError, StoreFuture};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

/// A rule the PCEF reported as failed (TS 29.212 §5.3.18 Charging-Rule-Report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleFailure {
    /// Charging-Rule-Name or Charging-Rule-Base-Name.
    pub name: String,
    /// PCC-Rule-Status (0 ACTIVE, 1 INACTIVE, 2 TEMPORARILY_INACTIVE).
    pub status: Option<i32>,
    /// Rule-Failure-Code (§5.3.38).
    pub failure_code: Option<i32>,
}

/// One Gx session (IP-CAN session seen from the PCRF).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GxSession {
    /// Session-Id.
    pub session_id: String,
    /// The PCEF's Origin-Host (where RARs go, as Destination-Host).
    pub pcef_host: String,
    /// The PCEF's Origin-Realm.
    pub pcef_realm: String,
    /// The subscriber (`imsi:…`, see [`crate::spr::SubscriberKey::as_key`]).
    pub subscriber: String,
    /// The UE's IPv4 or IPv6 address (Framed-IP-Address, Framed-IPv6-Prefix).
    pub ue_ip: Option<IpAddr>,
    /// Called-Station-Id: the APN.
    pub apn: Option<String>,
    /// Last RAT-Type reported.
    pub rat_type: Option<i32>,
    /// Last 3GPP-User-Location-Info reported, hex.
    pub user_location: Option<String>,
    /// Highest CC-Request-Number handled.
    pub last_request_number: u32,
    /// Dynamic rules installed, by name.
    pub dynamic_rules: BTreeMap<String, RuleDef>,
    /// Predefined rules active.
    pub predefined_rules: BTreeSet<String>,
    /// Rule bases active.
    pub rule_bases: BTreeSet<String>,
    /// Event triggers subscribed (Event-Trigger values).
    pub event_triggers: BTreeSet<i32>,
    /// Online charging on at session level.
    pub online: bool,
    /// Offline charging on at session level.
    pub offline: bool,
    /// Supported-Features agreed: Feature-List-ID → Feature-List.
    pub features: BTreeMap<u32, u32>,
    /// Rule failures the PCEF reported, latest last (bounded).
    pub failures: Vec<RuleFailure>,
    /// Bumped by every [`SessionStore::replace`].
    pub version: u64,
}

/// Most rule failures kept per session.
pub const MAX_FAILURES_KEPT: usize = 32;

impl GxSession {
    /// Records a failure report, keeping the latest [`MAX_FAILURES_KEPT`].
    pub fn record_failure(&mut self, f: RuleFailure) {
        if self.failures.len() == MAX_FAILURES_KEPT {
            self.failures.remove(0);
        }
        self.failures.push(f);
    }

    /// Rules of every kind now installed.
    pub fn rule_count(&self) -> usize {
        self.dynamic_rules.len() + self.predefined_rules.len() + self.rule_bases.len()
    }
}

/// The session store interface (see the module documentation).
pub trait SessionStore: Send + Sync + 'static {
    /// The session, when it exists.
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<GxSession>>;

    /// Creates or replaces the session (and its index entries). Returns the session it
    /// replaced.
    fn put(&self, session: GxSession) -> StoreFuture<'_, Option<GxSession>>;

    /// Writes `session` over the stored one if that is still at `session.version`, and
    /// bumps the version. `false`, and nothing written, when the session changed meanwhile
    /// or is gone.
    fn replace(&self, session: GxSession) -> StoreFuture<'_, bool>;

    /// Forgets the session.
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<GxSession>>;

    /// Forgets every session opened by PCEF `pcef_host` (compared case-insensitively,
    /// RFC 6733 §4.3.1) and returns them.
    fn remove_by_pcef(&self, pcef_host: String) -> StoreFuture<'_, Vec<GxSession>>;

    /// Session-Ids of a subscriber's live sessions.
    fn by_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<String>>;

    /// Every live Session-Id (the operator endpoint; bounded by the sessions held).
    fn list(&self) -> StoreFuture<'_, Vec<String>>;

    /// Live sessions.
    fn count(&self) -> StoreFuture<'_, u64>;
}

#[derive(Default)]
struct Maps {
    sessions: HashMap<String, GxSession>,
    by_pcef: HashMap<String, BTreeSet<String>>,
    by_subscriber: HashMap<String, BTreeSet<String>>,
}

impl Maps {
    fn unindex(&mut self, s: &GxSession) {
        let pcef = s.pcef_host.to_ascii_lowercase();
        if let Some(set) = self.by_pcef.get_mut(&pcef) {
            set.remove(&s.session_id);
            if set.is_empty() {
                self.by_pcef.remove(&pcef);
            }
        }
        if let Some(set) = self.by_subscriber.get_mut(&s.subscriber) {
            set.remove(&s.session_id);
            if set.is_empty() {
                self.by_subscriber.remove(&s.subscriber);
            }
        }
    }

    fn remove(&mut self, id: &str) -> Option<GxSession> {
        let s = self.sessions.remove(id)?;
        self.unindex(&s);
        Some(s)
    }
}

/// The in-memory default store.
#[derive(Default)]
pub struct MemorySessions {
    maps: Mutex<Maps>,
}

impl MemorySessions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Maps) -> T) -> Result<T, StoreError> {
        let mut m = self
            .maps
            .lock()
            .map_err(|_| StoreError("session map poisoned".into()))?;
        Ok(f(&mut m))
    }
}

impl SessionStore for MemorySessions {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<GxSession>> {
        let r = self.with(|m| m.sessions.get(&session_id).cloned());
        Box::pin(async move { r })
    }

    fn put(&self, session: GxSession) -> StoreFuture<'_, Option<GxSession>> {
        let r = self.with(|m| {
            let old = m.remove(&session.session_id);
            m.by_pcef
                .entry(session.pcef_host.to_ascii_lowercase())
                .or_default()
                .insert(session.session_id.clone());
            m.by_subscriber
                .entry(session.subscriber.clone())
                .or_default()
                .insert(session.session_id.clone());
            m.sessions.insert(session.session_id.clone(), session);
            old
        });
        Box::pin(async move { r })
    }

    fn replace(&self, mut session: GxSession) -> StoreFuture<'_, bool> {
        let r = self.with(|m| match m.sessions.get_mut(&session.session_id) {
            // The PCEF and subscriber of a session never change, so neither do its index
            // entries.
            Some(cur)
                if cur.version == session.version
                    && cur.pcef_host == session.pcef_host
                    && cur.subscriber == session.subscriber =>
            {
                session.version += 1;
                *cur = session;
                true
            }
            _ => false,
        });
        Box::pin(async move { r })
    }

    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<GxSession>> {
        let r = self.with(|m| m.remove(&session_id));
        Box::pin(async move { r })
    }

    fn remove_by_pcef(&self, pcef_host: String) -> StoreFuture<'_, Vec<GxSession>> {
        let r = self.with(|m| {
            let ids = m
                .by_pcef
                .remove(&pcef_host.to_ascii_lowercase())
                .unwrap_or_default();
            ids.iter().filter_map(|id| m.remove(id)).collect()
        });
        Box::pin(async move { r })
    }

    fn by_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<String>> {
        let r = self.with(|m| {
            m.by_subscriber
                .get(&subscriber)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        });
        Box::pin(async move { r })
    }

    fn list(&self) -> StoreFuture<'_, Vec<String>> {
        let r = self.with(|m| {
            let mut v: Vec<String> = m.sessions.keys().cloned().collect();
            v.sort();
            v
        });
        Box::pin(async move { r })
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        let r = self.with(|m| m.sessions.len() as u64);
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, pcef: &str, sub: &str) -> GxSession {
        GxSession {
            session_id: id.into(),
            pcef_host: pcef.into(),
            pcef_realm: "r".into(),
            subscriber: sub.into(),
            ue_ip: None,
            apn: None,
            rat_type: None,
            user_location: None,
            last_request_number: 0,
            dynamic_rules: BTreeMap::new(),
            predefined_rules: BTreeSet::new(),
            rule_bases: BTreeSet::new(),
            event_triggers: BTreeSet::new(),
            online: false,
            offline: false,
            features: BTreeMap::new(),
            failures: Vec::new(),
            version: 0,
        }
    }

    #[tokio::test]
    async fn a_replace_over_a_changed_session_is_refused() {
        let s = MemorySessions::new();
        s.put(session("a", "p", "imsi:1")).await.unwrap();
        let mut first = s.get("a".into()).await.unwrap().unwrap();
        let mut second = first.clone();
        first.rat_type = Some(1000);
        assert!(s.replace(first).await.unwrap());
        second.apn = Some("ims".into());
        assert!(
            !s.replace(second).await.unwrap(),
            "read before the first replace"
        );
        let now = s.get("a".into()).await.unwrap().unwrap();
        assert_eq!((now.rat_type, now.apn, now.version), (Some(1000), None, 1));
        assert!(
            !s.replace(session("b", "p", "imsi:1")).await.unwrap(),
            "no such session"
        );
    }

    #[tokio::test]
    async fn indexes_follow_puts_and_removes() {
        let s = MemorySessions::new();
        s.put(session("a", "PCEF.x", "imsi:1")).await.unwrap();
        s.put(session("b", "pcef.x", "imsi:2")).await.unwrap();
        s.put(session("c", "other", "imsi:1")).await.unwrap();
        assert_eq!(s.by_subscriber("imsi:1".into()).await.unwrap(), ["a", "c"]);
        // Replacing a session moves its index entries.
        s.put(session("c", "other", "imsi:2")).await.unwrap();
        assert_eq!(s.by_subscriber("imsi:1".into()).await.unwrap(), ["a"]);
        let gone = s.remove_by_pcef("pcef.X".into()).await.unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(s.count().await.unwrap(), 1);
        assert_eq!(s.by_subscriber("imsi:2".into()).await.unwrap(), ["c"]);
        assert!(s.remove("c".into()).await.unwrap().is_some());
        assert_eq!(s.count().await.unwrap(), 0);
        assert!(s.maps.lock().unwrap().by_subscriber.is_empty());
    }

    #[test]
    fn failures_are_bounded() {
        let mut s = session("a", "p", "s");
        for i in 0..40 {
            s.record_failure(RuleFailure {
                name: format!("r{i}"),
                status: Some(1),
                failure_code: Some(1),
            });
        }
        assert_eq!(s.failures.len(), MAX_FAILURES_KEPT);
        assert_eq!(s.failures[0].name, "r8");
    }
}
