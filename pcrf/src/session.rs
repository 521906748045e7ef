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
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The dynamic rules of a session, by name. A session holds a handful, and most are the
/// definitions of its subscriber's profile: they are shared ([`Arc`]), not copied, and
/// kept sorted by name in a boxed slice (a live session costs a pointer per rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet(Box<[Arc<RuleDef>]>);

impl RuleSet {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|r| r.name.as_str().cmp(name))
    }

    /// The rule named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<RuleDef>> {
        self.find(name).ok().map(|i| &self.0[i])
    }

    /// Whether a rule named `name` is installed.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Installs `rule`, replacing the one of the same name (returned).
    pub fn insert(&mut self, rule: Arc<RuleDef>) -> Option<Arc<RuleDef>> {
        match self.find(&rule.name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i], rule)),
            Err(i) => {
                let mut v = std::mem::take(&mut self.0).into_vec();
                v.insert(i, rule);
                self.0 = v.into_boxed_slice();
                None
            }
        }
    }

    /// Removes the rule named `name`.
    pub fn remove(&mut self, name: &str) -> Option<Arc<RuleDef>> {
        let i = self.find(name).ok()?;
        let mut v = std::mem::take(&mut self.0).into_vec();
        let r = v.remove(i);
        self.0 = v.into_boxed_slice();
        Some(r)
    }

    /// Rule names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|r| &r.name)
    }

    /// The rules, sorted by name.
    pub fn values(&self) -> impl Iterator<Item = &Arc<RuleDef>> {
        self.0.iter()
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is installed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for RuleSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|r| (&r.name, &**r)))
    }
}

/// A small set of names (predefined rules, rule bases), sorted in a boxed slice: a session
/// has a few, and a B-tree node would cost hundreds of bytes for one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSet(Box<[Box<str>]>);

impl NameSet {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|n| (**n).cmp(name))
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Adds `name`; whether it was new.
    pub fn insert(&mut self, name: &str) -> bool {
        let Err(i) = self.find(name) else {
            return false;
        };
        let mut v = std::mem::take(&mut self.0).into_vec();
        v.insert(i, name.into());
        self.0 = v.into_boxed_slice();
        true
    }

    /// Removes `name`; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let Ok(i) = self.find(name) else {
            return false;
        };
        let mut v = std::mem::take(&mut self.0).into_vec();
        v.remove(i);
        self.0 = v.into_boxed_slice();
        true
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|n| &**n)
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: AsRef<str>> Extend<S> for NameSet {
    fn extend<I: IntoIterator<Item = S>>(&mut self, names: I) {
        for n in names {
            self.insert(n.as_ref());
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for NameSet {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        let mut set = Self::default();
        set.extend(names);
        set
    }
}

impl Serialize for NameSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for NameSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d).map(Self::from_iter)
    }
}

/// A rule the PCEF reported as failed (TS 29.212 §5.3.18 Charging-Rule-Report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFailure {
    /// Charging-Rule-Name or Charging-Rule-Base-Name.
    pub name: String,
    /// PCC-Rule-Status (0 ACTIVE, 1 INACTIVE, 2 TEMPORARILY_INACTIVE).
    pub status: Option<i32>,
    /// Rule-Failure-Code (§5.3.38).
    pub failure_code: Option<i32>,
}

/// One Gx session (IP-CAN session seen from the PCRF).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Dynamic rules installed, by name. Not read back from the operator's view (which
    /// leaves out rule parts that are not SPR keys): the durable store keeps them whole
    /// beside the session ([`crate::durable`]).
    #[serde(skip_deserializing)]
    pub dynamic_rules: RuleSet,
    /// Predefined rules active.
    pub predefined_rules: NameSet,
    /// Rule bases active.
    pub rule_bases: NameSet,
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
    /// Access-Network-Charging-Identifier-Value last reported, hex.
    pub charging_id: Option<String>,
    /// Access-Network-Charging-Address last reported.
    pub charging_address: Option<IpAddr>,
    /// Bumped by every [`SessionStore::replace`].
    pub version: u64,
}

/// Most rule failures kept per session.
pub const MAX_FAILURES_KEPT: usize = 32;

impl GxSession {
    /// A session with nothing installed or reported yet.
    pub fn new(
        session_id: String,
        pcef_host: String,
        pcef_realm: String,
        subscriber: String,
    ) -> Self {
        Self {
            session_id,
            pcef_host,
            pcef_realm,
            subscriber,
            ue_ip: None,
            apn: None,
            rat_type: None,
            user_location: None,
            last_request_number: 0,
            dynamic_rules: Default::default(),
            predefined_rules: Default::default(),
            rule_bases: Default::default(),
            event_triggers: Default::default(),
            online: false,
            offline: false,
            features: Default::default(),
            failures: Vec::new(),
            charging_id: None,
            charging_address: None,
            version: 0,
        }
    }

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

    /// The live session of a UE address (Rx session binding, TS 29.213 §4.2 as TS 29.214
    /// §4.4.1 asks for it): an IPv4 address exactly, an IPv6 address by its /64 prefix (the
    /// prefix a UE is given, TS 23.401 §5.3.1.2.2), so an AF's full IPv6 address finds the
    /// session opened with Framed-IPv6-Prefix. The newest session holding the address wins.
    fn by_ue_ip(&self, ip: IpAddr) -> StoreFuture<'_, Option<String>>;
}

/// The binding key of a UE address: IPv4 as is, IPv6 masked to its /64.
pub fn binding_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(a) => {
            let mut o = a.octets();
            o[8..].fill(0);
            IpAddr::V6(o.into())
        }
    }
}

/// The Session-Ids under one index key. Most subscribers have one session at a time, so
/// one id is kept without a set.
enum Ids {
    One(Arc<str>),
    Many(HashSet<Arc<str>>),
}

impl Ids {
    fn insert(&mut self, id: Arc<str>) {
        match self {
            Self::One(a) if *a == id => {}
            Self::One(a) => *self = Self::Many(HashSet::from([a.clone(), id])),
            Self::Many(set) => {
                set.insert(id);
            }
        }
    }

    /// Removes `id`; whether none is left.
    fn remove(&mut self, id: &str) -> bool {
        match self {
            Self::One(a) => **a == *id,
            Self::Many(set) => {
                set.remove(id);
                set.is_empty()
            }
        }
    }

    fn to_vec(&self) -> Vec<Arc<str>> {
        match self {
            Self::One(a) => vec![a.clone()],
            Self::Many(set) => set.iter().cloned().collect(),
        }
    }
}

/// Adds `id` under `key` of `index`.
fn index_id<K: std::hash::Hash + Eq>(index: &mut HashMap<K, Ids>, key: K, id: &Arc<str>) {
    match index.entry(key) {
        std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().insert(id.clone()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Ids::One(id.clone()));
        }
    }
}

/// Removes `id` from under `key` of `index`, and the key once it has none.
fn unindex_id<K, Q>(index: &mut HashMap<K, Ids>, key: &Q, id: &str)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if index.get_mut(key).is_some_and(|ids| ids.remove(id)) {
        index.remove(key);
    }
}

/// The in-memory sessions and their indexes. The Session-Id is kept once, in an [`Arc`]
/// the indexes share: a stored session leaves its `session_id` empty (the map's key holds
/// it) and gets it back when read. Sessions are boxed so that the table, sized for twice
/// the sessions it may hold, costs a pointer per slot.
#[derive(Default)]
struct Maps {
    sessions: HashMap<Arc<str>, Box<GxSession>>,
    by_pcef: HashMap<String, Ids>,
    by_subscriber: HashMap<String, Ids>,
    by_ip: HashMap<IpAddr, Arc<str>>,
}

impl Maps {
    /// The session stored under `id`, whole again.
    fn read(&self, id: &str) -> Option<GxSession> {
        let (k, s) = self.sessions.get_key_value(id)?;
        let mut s = GxSession::clone(s);
        s.session_id = k.to_string();
        Some(s)
    }

    fn unindex(&mut self, id: &str, s: &GxSession) {
        unindex_id(
            &mut self.by_pcef,
            s.pcef_host.to_ascii_lowercase().as_str(),
            id,
        );
        unindex_id(&mut self.by_subscriber, s.subscriber.as_str(), id);
        self.unindex_ip(id, s.ue_ip);
    }

    fn unindex_ip(&mut self, id: &str, ue_ip: Option<IpAddr>) {
        if let Some(ip) = ue_ip {
            let k = binding_key(ip);
            if self.by_ip.get(&k).is_some_and(|held| **held == *id) {
                self.by_ip.remove(&k);
            }
        }
    }

    fn index_ip(&mut self, id: &Arc<str>, ue_ip: Option<IpAddr>) {
        if let Some(ip) = ue_ip {
            self.by_ip.insert(binding_key(ip), id.clone());
        }
    }

    fn remove(&mut self, id: &str) -> Option<GxSession> {
        let (k, mut s) = self.sessions.remove_entry(id)?;
        self.unindex(id, &s);
        s.session_id = k.to_string();
        Some(*s)
    }

    /// Stores `session` under the Session-Id it carries, indexed.
    fn insert(&mut self, mut session: GxSession) {
        let id: Arc<str> = std::mem::take(&mut session.session_id).into();
        index_id(
            &mut self.by_pcef,
            session.pcef_host.to_ascii_lowercase(),
            &id,
        );
        index_id(&mut self.by_subscriber, session.subscriber.clone(), &id);
        self.index_ip(&id, session.ue_ip);
        self.sessions.insert(id, Box::new(session));
    }
}

/// Runs `f` on an in-memory store's maps under their lock (never held across an await); a
/// lock poisoned by a panic is the error `poisoned`.
fn locked<M, T>(
    maps: &Mutex<M>,
    poisoned: &str,
    f: impl FnOnce(&mut M) -> T,
) -> Result<T, StoreError> {
    let mut m = maps.lock().map_err(|_| StoreError(poisoned.into()))?;
    Ok(f(&mut m))
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
        locked(&self.maps, "session map poisoned", f)
    }
}

impl SessionStore for MemorySessions {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<GxSession>> {
        let r = self.with(|m| m.read(&session_id));
        Box::pin(async move { r })
    }

    fn put(&self, session: GxSession) -> StoreFuture<'_, Option<GxSession>> {
        let r = self.with(|m| {
            let old = m.remove(&session.session_id);
            m.insert(session);
            old
        });
        Box::pin(async move { r })
    }

    fn replace(&self, mut session: GxSession) -> StoreFuture<'_, bool> {
        let r = self.with(|m| {
            // The PCEF and subscriber of a session never change, so neither do those index
            // entries; the UE address may (a CCR-U can report it).
            let Some((id, cur)) = m.sessions.get_key_value(session.session_id.as_str()) else {
                return false;
            };
            if cur.version != session.version
                || cur.pcef_host != session.pcef_host
                || cur.subscriber != session.subscriber
            {
                return false;
            }
            let id = id.clone();
            if cur.ue_ip != session.ue_ip {
                let old = cur.ue_ip;
                m.unindex_ip(&id, old);
                m.index_ip(&id, session.ue_ip);
            }
            session.version += 1;
            session.session_id = String::new();
            m.sessions.insert(id, Box::new(session));
            true
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
                .get(&pcef_host.to_ascii_lowercase())
                .map(Ids::to_vec)
                .unwrap_or_default();
            ids.iter().filter_map(|id| m.remove(id)).collect()
        });
        Box::pin(async move { r })
    }

    fn by_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<String>> {
        let r = self.with(|m| {
            let mut ids: Vec<String> = m
                .by_subscriber
                .get(&subscriber)
                .map(|ids| ids.to_vec().iter().map(|id| id.to_string()).collect())
                .unwrap_or_default();
            ids.sort();
            ids
        });
        Box::pin(async move { r })
    }

    fn list(&self) -> StoreFuture<'_, Vec<String>> {
        let r = self.with(|m| {
            let mut v: Vec<String> = m.sessions.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        });
        Box::pin(async move { r })
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        let r = self.with(|m| m.sessions.len() as u64);
        Box::pin(async move { r })
    }

    fn by_ue_ip(&self, ip: IpAddr) -> StoreFuture<'_, Option<String>> {
        let r = self.with(|m| m.by_ip.get(&binding_key(ip)).map(|id| id.to_string()));
        Box::pin(async move { r })
    }
}

/// One Media-Sub-Component of an AF session (TS 29.214 §5.3.18): one IP flow, or the
/// flows of one RTP or RTCP stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubComponent {
    /// Flow-Number.
    pub flow_number: u32,
    /// Flow-Description values, every one the AF sent (TS 29.214 allows two; peers send
    /// more, and all are honoured).
    pub descriptions: Vec<String>,
    /// Flow-Status (TS 29.214 §5.3.11).
    pub flow_status: Option<i32>,
    /// Flow-Usage: 0 NO_INFORMATION, 1 RTCP, 2 AF_SIGNALLING.
    pub flow_usage: Option<i32>,
    /// Max-Requested-Bandwidth-UL of this flow.
    pub mbr_ul: Option<u32>,
    /// Max-Requested-Bandwidth-DL of this flow.
    pub mbr_dl: Option<u32>,
}

/// One Media-Component-Description of an AF session (TS 29.214 §5.3.16), as last provided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaComponent {
    /// Media-Component-Number.
    pub number: u32,
    /// Media-Type (0 AUDIO, 1 VIDEO, … -1 OTHER).
    pub media_type: Option<i32>,
    /// AF-Application-Identifier of the component.
    pub af_application_id: Option<String>,
    /// Max-Requested-Bandwidth-UL.
    pub mbr_ul: Option<u32>,
    /// Max-Requested-Bandwidth-DL.
    pub mbr_dl: Option<u32>,
    /// Min-Requested-Bandwidth-UL.
    pub min_ul: Option<u32>,
    /// Min-Requested-Bandwidth-DL.
    pub min_dl: Option<u32>,
    /// RR-Bandwidth (RTCP receivers).
    pub rr: Option<u32>,
    /// RS-Bandwidth (RTCP senders).
    pub rs: Option<u32>,
    /// Flow-Status of the component.
    pub flow_status: Option<i32>,
    /// Media-Sub-Components by Flow-Number.
    pub sub_components: BTreeMap<u32, SubComponent>,
}

/// One Rx session (an AF session seen from the PCRF, TS 29.214 §4.4), bound to the Gx
/// session of the UE's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RxSession {
    /// Session-Id (the AF's).
    pub session_id: String,
    /// The AF's Origin-Host (where RAR and ASR go, as Destination-Host).
    pub af_host: String,
    /// The AF's Origin-Realm.
    pub af_realm: String,
    /// The Gx session it is bound to; `None` once that IP-CAN session is gone (the AF was
    /// told and is expected to end the Rx session with STR).
    pub gx_session: Option<String>,
    /// The UE address bound on.
    pub ue_ip: IpAddr,
    /// The subscriber of the Gx session.
    pub subscriber: String,
    /// AF-Application-Identifier at command level.
    pub af_application_id: Option<String>,
    /// AF-Charging-Identifier, hex.
    pub af_charging_id: Option<String>,
    /// Specific-Action values the AF subscribed to (TS 29.214 §5.3.13).
    pub specific_actions: BTreeSet<i32>,
    /// Media components by Media-Component-Number.
    pub components: BTreeMap<u32, MediaComponent>,
    /// PCC rules installed over Gx for it: rule name → Media-Component-Number.
    pub rules: BTreeMap<String, u32>,
    /// Bumped by every [`RxSessionStore::replace`].
    pub version: u64,
}

/// The Rx session store, shaped like [`SessionStore`]: keyed by the AF's Session-Id and
/// indexed by the Gx session each is bound to (so the loss of an IP-CAN session reaches
/// every AF session on it). On Redis: a hash per session (`rx:{Session-Id}`) and a set per
/// Gx session, written together by one script.
pub trait RxSessionStore: Send + Sync + 'static {
    /// The session, when it exists.
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<RxSession>>;

    /// Creates or replaces the session (and its index entry). Returns the one it replaced.
    fn put(&self, session: RxSession) -> StoreFuture<'_, Option<RxSession>>;

    /// Writes `session` over the stored one if that is still at `session.version`, and
    /// bumps the version; `false`, nothing written, when it changed meanwhile or is gone.
    fn replace(&self, session: RxSession) -> StoreFuture<'_, bool>;

    /// Forgets the session.
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<RxSession>>;

    /// The AF sessions bound to Gx session `gx_session`.
    fn by_gx(&self, gx_session: String) -> StoreFuture<'_, Vec<RxSession>>;

    /// Forgets every session of AF `af_host` (compared case-insensitively, RFC 6733
    /// §4.3.1) and returns them.
    fn remove_by_af(&self, af_host: String) -> StoreFuture<'_, Vec<RxSession>>;

    /// Every live Session-Id.
    fn list(&self) -> StoreFuture<'_, Vec<String>>;

    /// Live sessions.
    fn count(&self) -> StoreFuture<'_, u64>;
}

#[derive(Default)]
struct RxMaps {
    sessions: HashMap<String, RxSession>,
    by_gx: HashMap<String, BTreeSet<String>>,
    by_af: HashMap<String, BTreeSet<String>>,
}

impl RxMaps {
    fn unindex(&mut self, s: &RxSession) {
        if let Some(gx) = &s.gx_session
            && let Some(set) = self.by_gx.get_mut(gx)
        {
            set.remove(&s.session_id);
            if set.is_empty() {
                self.by_gx.remove(gx);
            }
        }
    }

    fn index(&mut self, s: &RxSession) {
        if let Some(gx) = &s.gx_session {
            self.by_gx
                .entry(gx.clone())
                .or_default()
                .insert(s.session_id.clone());
        }
    }

    fn remove(&mut self, id: &str) -> Option<RxSession> {
        let s = self.sessions.remove(id)?;
        self.unindex(&s);
        let af = s.af_host.to_ascii_lowercase();
        if let Some(set) = self.by_af.get_mut(&af) {
            set.remove(&s.session_id);
            if set.is_empty() {
                self.by_af.remove(&af);
            }
        }
        Some(s)
    }
}

/// The in-memory default Rx store.
#[derive(Default)]
pub struct MemoryRxSessions {
    maps: Mutex<RxMaps>,
}

impl MemoryRxSessions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut RxMaps) -> T) -> Result<T, StoreError> {
        locked(&self.maps, "Rx session map poisoned", f)
    }
}

impl RxSessionStore for MemoryRxSessions {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<RxSession>> {
        let r = self.with(|m| m.sessions.get(&session_id).cloned());
        Box::pin(async move { r })
    }

    fn put(&self, session: RxSession) -> StoreFuture<'_, Option<RxSession>> {
        let r = self.with(|m| {
            let old = m.remove(&session.session_id);
            m.index(&session);
            m.by_af
                .entry(session.af_host.to_ascii_lowercase())
                .or_default()
                .insert(session.session_id.clone());
            m.sessions.insert(session.session_id.clone(), session);
            old
        });
        Box::pin(async move { r })
    }

    fn replace(&self, mut session: RxSession) -> StoreFuture<'_, bool> {
        let r = self.with(|m| {
            let Some(cur) = m.sessions.get(&session.session_id) else {
                return false;
            };
            // The AF of a session never changes, so neither does that index entry.
            if cur.version != session.version || cur.af_host != session.af_host {
                return false;
            }
            let cur = cur.clone();
            m.unindex(&cur);
            m.index(&session);
            session.version += 1;
            m.sessions.insert(session.session_id.clone(), session);
            true
        });
        Box::pin(async move { r })
    }

    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<RxSession>> {
        let r = self.with(|m| m.remove(&session_id));
        Box::pin(async move { r })
    }

    fn by_gx(&self, gx_session: String) -> StoreFuture<'_, Vec<RxSession>> {
        let r = self.with(|m| {
            m.by_gx
                .get(&gx_session)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| m.sessions.get(id).cloned())
                        .collect()
                })
                .unwrap_or_default()
        });
        Box::pin(async move { r })
    }

    fn remove_by_af(&self, af_host: String) -> StoreFuture<'_, Vec<RxSession>> {
        let r = self.with(|m| {
            let ids = m
                .by_af
                .remove(&af_host.to_ascii_lowercase())
                .unwrap_or_default();
            ids.iter().filter_map(|id| m.remove(id)).collect()
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

/// One Gxx session (TS 29.212 chapter 4a): a BBERF's view of an IP-CAN session, linked to
/// its Gx session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GxxSession {
    /// Session-Id (the BBERF's).
    pub session_id: String,
    /// The BBERF's Origin-Host (where Gxx RARs go).
    pub bberf_host: String,
    /// The BBERF's Origin-Realm.
    pub bberf_realm: String,
    /// The subscriber (`imsi:…`), when the CCR named a known one.
    pub subscriber: Option<String>,
    /// The UE address, when the CCR carried it.
    pub ue_ip: Option<IpAddr>,
    /// Called-Station-Id.
    pub apn: Option<String>,
    /// The linked Gx session; `None` while linking is deferred (no Gx session yet,
    /// TS 29.212 §4a.5.1) or after the Gx session ended.
    pub gx_session: Option<String>,
    /// QoS rules installed at the BBERF, by name.
    pub qos_rules: BTreeSet<String>,
    /// QoS rule failures the BBERF reported, latest last (bounded).
    pub failures: Vec<RuleFailure>,
    /// Highest CC-Request-Number handled.
    pub last_request_number: u32,
    /// Bumped by every [`GxxSessionStore::replace`].
    pub version: u64,
}

/// The Gxx session store, shaped like [`SessionStore`]: keyed by the BBERF's Session-Id,
/// indexed by the Gx session each is linked to, by the subscriber of those waiting for one,
/// and by BBERF.
pub trait GxxSessionStore: Send + Sync + 'static {
    /// The session, when it exists.
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<GxxSession>>;
    /// Creates or replaces the session. Returns the one it replaced.
    fn put(&self, session: GxxSession) -> StoreFuture<'_, Option<GxxSession>>;
    /// Writes over the stored session if still at `session.version`; `false` otherwise.
    fn replace(&self, session: GxxSession) -> StoreFuture<'_, bool>;
    /// Forgets the session.
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<GxxSession>>;
    /// The Gxx sessions linked to Gx session `gx_session`.
    fn by_gx(&self, gx_session: String) -> StoreFuture<'_, Vec<GxxSession>>;
    /// The Gxx sessions of `subscriber` not linked to any Gx session.
    fn unlinked(&self, subscriber: String) -> StoreFuture<'_, Vec<GxxSession>>;
    /// Forgets every session of BBERF `bberf_host` (case-insensitive) and returns them.
    fn remove_by_bberf(&self, bberf_host: String) -> StoreFuture<'_, Vec<GxxSession>>;
    /// Live sessions.
    fn count(&self) -> StoreFuture<'_, u64>;
}

/// The in-memory default Gxx store (a map under one lock; the indexes are derived by
/// scanning, which is bounded by the sessions held and fine for a BBERF population of an
/// in-memory store).
#[derive(Default)]
pub struct MemoryGxxSessions {
    sessions: Mutex<HashMap<String, GxxSession>>,
}

impl MemoryGxxSessions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, GxxSession>) -> T,
    ) -> Result<T, StoreError> {
        locked(&self.sessions, "Gxx session map poisoned", f)
    }

    fn select(&self, f: impl Fn(&GxxSession) -> bool) -> Result<Vec<GxxSession>, StoreError> {
        self.with(|m| {
            let mut v: Vec<GxxSession> = m.values().filter(|s| f(s)).cloned().collect();
            v.sort_by(|a, b| a.session_id.cmp(&b.session_id));
            v
        })
    }
}

impl GxxSessionStore for MemoryGxxSessions {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<GxxSession>> {
        let r = self.with(|m| m.get(&session_id).cloned());
        Box::pin(async move { r })
    }

    fn put(&self, session: GxxSession) -> StoreFuture<'_, Option<GxxSession>> {
        let r = self.with(|m| m.insert(session.session_id.clone(), session));
        Box::pin(async move { r })
    }

    fn replace(&self, mut session: GxxSession) -> StoreFuture<'_, bool> {
        let r = self.with(|m| match m.get_mut(&session.session_id) {
            Some(cur) if cur.version == session.version => {
                session.version += 1;
                *cur = session;
                true
            }
            _ => false,
        });
        Box::pin(async move { r })
    }

    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<GxxSession>> {
        let r = self.with(|m| m.remove(&session_id));
        Box::pin(async move { r })
    }

    fn by_gx(&self, gx_session: String) -> StoreFuture<'_, Vec<GxxSession>> {
        let r = self.select(|s| s.gx_session.as_deref() == Some(gx_session.as_str()));
        Box::pin(async move { r })
    }

    fn unlinked(&self, subscriber: String) -> StoreFuture<'_, Vec<GxxSession>> {
        let r = self.select(|s| {
            s.gx_session.is_none() && s.subscriber.as_deref() == Some(subscriber.as_str())
        });
        Box::pin(async move { r })
    }

    fn remove_by_bberf(&self, bberf_host: String) -> StoreFuture<'_, Vec<GxxSession>> {
        let r = self.with(|m| {
            let ids: Vec<String> = m
                .values()
                .filter(|s| s.bberf_host.eq_ignore_ascii_case(&bberf_host))
                .map(|s| s.session_id.clone())
                .collect();
            ids.iter().filter_map(|id| m.remove(id)).collect()
        });
        Box::pin(async move { r })
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        let r = self.with(|m| m.len() as u64);
        Box::pin(async move { r })
    }
}

/// One subsession of an S9 session (TS 29.215 §4.5.1): a Gx or Gxx session of the
/// roaming UE at the visited network, chosen and numbered by the V-PCRF (Subsession-Id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S9Subsession {
    /// Subsession-Id.
    pub id: u32,
    /// Its policy state, in the shape of a Gx session so the same decisions apply
    /// ([`crate::policy::decide`], [`crate::policy::Decision::apply`]): `session_id` is
    /// [`crate::s9::subsession_key`] (what an AF session bound to it names), `pcef_host` and
    /// `pcef_realm` the V-PCRF's, `ue_ip`, `apn`, `rat_type` what the subsession reported.
    pub policy: GxSession,
    /// DRA-Client-Session-Id values (our vendor AVP, DESIGN.md): the visited client's
    /// Session-Ids carried in its Subsession-Enforcement-Info.
    pub client_sessions: Vec<String>,
}

/// One S9 session (TS 29.215): a V-PCRF's session for one roaming UE, carrying its
/// subsessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S9Session {
    /// Session-Id (the V-PCRF's).
    pub session_id: String,
    /// The V-PCRF's Origin-Host (where S9 RARs go, as Destination-Host).
    pub vpcrf_host: String,
    /// The V-PCRF's Origin-Realm (the roaming partner's realm).
    pub vpcrf_realm: String,
    /// The subscriber (`imsi:…`).
    pub subscriber: String,
    /// Highest CC-Request-Number handled.
    pub last_request_number: u32,
    /// Live subsessions by Subsession-Id.
    pub subsessions: BTreeMap<u32, S9Subsession>,
    /// Bumped by every [`S9SessionStore::replace`].
    pub version: u64,
}

/// The S9 session store, shaped like [`SessionStore`]: keyed by the V-PCRF's Session-Id,
/// indexed by V-PCRF (a restarted V-PCRF's sessions go at once), by subscriber (operator
/// pushes) and by the UE address of each subsession (Rx binding, TS 29.213 §4.2). On Redis:
/// a hash per session (`s9:{Session-Id}`) with the subsessions serialised in it, a set per
/// V-PCRF and subscriber, a key per UE address naming session and subsession.
pub trait S9SessionStore: Send + Sync + 'static {
    /// The session, when it exists.
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<S9Session>>;
    /// Creates or replaces the session (and its index entries). Returns the one it replaced.
    fn put(&self, session: S9Session) -> StoreFuture<'_, Option<S9Session>>;
    /// Writes `session` over the stored one if that is still at `session.version`, bumping
    /// the version; `false`, nothing written, when it changed meanwhile or is gone.
    fn replace(&self, session: S9Session) -> StoreFuture<'_, bool>;
    /// Forgets the session.
    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<S9Session>>;
    /// Forgets every session of V-PCRF `host` (case-insensitive) and returns them.
    fn remove_by_vpcrf(&self, host: String) -> StoreFuture<'_, Vec<S9Session>>;
    /// Session-Ids of a subscriber's S9 sessions.
    fn by_subscriber(&self, subscriber: String) -> StoreFuture<'_, Vec<String>>;
    /// The S9 session and Subsession-Id holding a UE address (IPv4 exactly, IPv6 by its
    /// /64, as [`SessionStore::by_ue_ip`]).
    fn by_ue_ip(&self, ip: IpAddr) -> StoreFuture<'_, Option<(String, u32)>>;
    /// Every live Session-Id.
    fn list(&self) -> StoreFuture<'_, Vec<String>>;
    /// Live sessions.
    fn count(&self) -> StoreFuture<'_, u64>;
}

#[derive(Default)]
struct S9Maps {
    sessions: HashMap<String, S9Session>,
    by_vpcrf: HashMap<String, BTreeSet<String>>,
    by_subscriber: HashMap<String, BTreeSet<String>>,
    by_ip: HashMap<IpAddr, (String, u32)>,
}

impl S9Maps {
    fn index(&mut self, s: &S9Session) {
        self.by_vpcrf
            .entry(s.vpcrf_host.to_ascii_lowercase())
            .or_default()
            .insert(s.session_id.clone());
        self.by_subscriber
            .entry(s.subscriber.clone())
            .or_default()
            .insert(s.session_id.clone());
        for sub in s.subsessions.values() {
            if let Some(ip) = sub.policy.ue_ip {
                self.by_ip
                    .insert(binding_key(ip), (s.session_id.clone(), sub.id));
            }
        }
    }

    fn unindex(&mut self, s: &S9Session) {
        let host = s.vpcrf_host.to_ascii_lowercase();
        if let Some(set) = self.by_vpcrf.get_mut(&host) {
            set.remove(&s.session_id);
            if set.is_empty() {
                self.by_vpcrf.remove(&host);
            }
        }
        if let Some(set) = self.by_subscriber.get_mut(&s.subscriber) {
            set.remove(&s.session_id);
            if set.is_empty() {
                self.by_subscriber.remove(&s.subscriber);
            }
        }
        for sub in s.subsessions.values() {
            if let Some(ip) = sub.policy.ue_ip {
                let k = binding_key(ip);
                if self
                    .by_ip
                    .get(&k)
                    .is_some_and(|(id, n)| id == &s.session_id && *n == sub.id)
                {
                    self.by_ip.remove(&k);
                }
            }
        }
    }

    fn remove(&mut self, id: &str) -> Option<S9Session> {
        let s = self.sessions.remove(id)?;
        self.unindex(&s);
        Some(s)
    }
}

/// The in-memory default S9 store (maps under one lock never held across an await).
#[derive(Default)]
pub struct MemoryS9Sessions {
    maps: Mutex<S9Maps>,
}

impl MemoryS9Sessions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut S9Maps) -> T) -> Result<T, StoreError> {
        locked(&self.maps, "S9 session map poisoned", f)
    }
}

impl S9SessionStore for MemoryS9Sessions {
    fn get(&self, session_id: String) -> StoreFuture<'_, Option<S9Session>> {
        let r = self.with(|m| m.sessions.get(&session_id).cloned());
        Box::pin(async move { r })
    }

    fn put(&self, session: S9Session) -> StoreFuture<'_, Option<S9Session>> {
        let r = self.with(|m| {
            let old = m.remove(&session.session_id);
            m.index(&session);
            m.sessions.insert(session.session_id.clone(), session);
            old
        });
        Box::pin(async move { r })
    }

    fn replace(&self, mut session: S9Session) -> StoreFuture<'_, bool> {
        let r = self.with(|m| {
            let Some(cur) = m.sessions.get(&session.session_id) else {
                return false;
            };
            if cur.version != session.version
                || cur.vpcrf_host != session.vpcrf_host
                || cur.subscriber != session.subscriber
            {
                return false;
            }
            let cur = cur.clone();
            m.unindex(&cur);
            m.index(&session);
            session.version += 1;
            m.sessions.insert(session.session_id.clone(), session);
            true
        });
        Box::pin(async move { r })
    }

    fn remove(&self, session_id: String) -> StoreFuture<'_, Option<S9Session>> {
        let r = self.with(|m| m.remove(&session_id));
        Box::pin(async move { r })
    }

    fn remove_by_vpcrf(&self, host: String) -> StoreFuture<'_, Vec<S9Session>> {
        let r = self.with(|m| {
            let ids = m
                .by_vpcrf
                .remove(&host.to_ascii_lowercase())
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

    fn by_ue_ip(&self, ip: IpAddr) -> StoreFuture<'_, Option<(String, u32)>> {
        let r = self.with(|m| m.by_ip.get(&binding_key(ip)).cloned());
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
            dynamic_rules: Default::default(),
            predefined_rules: Default::default(),
            rule_bases: Default::default(),
            event_triggers: BTreeSet::new(),
            online: false,
            offline: false,
            features: BTreeMap::new(),
            failures: Vec::new(),
            charging_id: None,
            charging_address: None,
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

    fn rx(id: &str, gx: Option<&str>) -> RxSession {
        RxSession {
            session_id: id.into(),
            af_host: "af".into(),
            af_realm: "r".into(),
            gx_session: gx.map(str::to_string),
            ue_ip: "10.0.0.1".parse().unwrap(),
            subscriber: "imsi:1".into(),
            af_application_id: None,
            af_charging_id: None,
            specific_actions: BTreeSet::new(),
            components: BTreeMap::new(),
            rules: BTreeMap::new(),
            version: 0,
        }
    }

    #[tokio::test]
    async fn rx_sessions_are_indexed_by_their_gx_session() {
        let s = MemoryRxSessions::new();
        s.put(rx("a", Some("g1"))).await.unwrap();
        s.put(rx("b", Some("g1"))).await.unwrap();
        s.put(rx("c", Some("g2"))).await.unwrap();
        let mut on_g1: Vec<String> = s
            .by_gx("g1".into())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.session_id)
            .collect();
        on_g1.sort();
        assert_eq!(on_g1, ["a", "b"]);
        // Unbinding (the IP-CAN session is gone) leaves the session, out of the index.
        let mut a = s.get("a".into()).await.unwrap().unwrap();
        a.gx_session = None;
        assert!(s.replace(a.clone()).await.unwrap());
        assert!(!s.replace(a).await.unwrap(), "stale version");
        assert_eq!(s.by_gx("g1".into()).await.unwrap().len(), 1);
        assert!(s.remove("b".into()).await.unwrap().is_some());
        assert!(s.by_gx("g1".into()).await.unwrap().is_empty());
        assert_eq!(s.count().await.unwrap(), 2);
        assert!(s.maps.lock().unwrap().by_gx.contains_key("g2"));
        // A restarted AF: all its sessions go at once.
        let gone = s.remove_by_af("AF".into()).await.unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(s.count().await.unwrap(), 0);
        let m = s.maps.lock().unwrap();
        assert!(m.by_gx.is_empty() && m.by_af.is_empty());
    }

    #[tokio::test]
    async fn ue_addresses_bind_ipv4_exactly_and_ipv6_by_prefix() {
        let s = MemorySessions::new();
        let mut a = session("a", "p", "imsi:1");
        a.ue_ip = Some("10.45.0.2".parse().unwrap());
        s.put(a).await.unwrap();
        let mut b = session("b", "p", "imsi:2");
        b.ue_ip = Some("2001:db8:0:1::".parse().unwrap());
        s.put(b).await.unwrap();
        let get = |ip: &str| s.by_ue_ip(ip.parse().unwrap());
        assert_eq!(get("10.45.0.2").await.unwrap().as_deref(), Some("a"));
        assert_eq!(get("10.45.0.3").await.unwrap(), None);
        assert_eq!(
            get("2001:db8:0:1:aaaa::7").await.unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(get("2001:db8:0:2::7").await.unwrap(), None);
        // The address moves with a replace, and goes with the session.
        let mut a = s.get("a".into()).await.unwrap().unwrap();
        a.ue_ip = Some("10.45.0.9".parse().unwrap());
        assert!(s.replace(a).await.unwrap());
        assert_eq!(get("10.45.0.2").await.unwrap(), None);
        assert_eq!(get("10.45.0.9").await.unwrap().as_deref(), Some("a"));
        s.remove("a".into()).await.unwrap();
        assert_eq!(get("10.45.0.9").await.unwrap(), None);
    }

    fn s9(id: &str, host: &str, ips: &[(u32, &str)]) -> S9Session {
        S9Session {
            session_id: id.into(),
            vpcrf_host: host.into(),
            vpcrf_realm: "visited.test".into(),
            subscriber: "imsi:1".into(),
            last_request_number: 0,
            subsessions: ips
                .iter()
                .map(|&(n, ip)| {
                    let mut policy = session(&format!("{id}#{n}"), host, "imsi:1");
                    policy.ue_ip = Some(ip.parse().unwrap());
                    (
                        n,
                        S9Subsession {
                            id: n,
                            policy,
                            client_sessions: vec![],
                        },
                    )
                })
                .collect(),
            version: 0,
        }
    }

    #[tokio::test]
    async fn s9_sessions_index_their_subsessions_addresses() {
        let s = MemoryS9Sessions::new();
        s.put(s9(
            "a",
            "VPCRF.v",
            &[(1, "10.1.0.1"), (2, "2001:db8:1:2::")],
        ))
        .await
        .unwrap();
        s.put(s9("b", "other", &[(7, "10.1.0.9")])).await.unwrap();
        let at = |ip: &str| s.by_ue_ip(ip.parse().unwrap());
        assert_eq!(at("10.1.0.1").await.unwrap(), Some(("a".into(), 1)));
        assert_eq!(
            at("2001:db8:1:2:9::1").await.unwrap(),
            Some(("a".into(), 2))
        );
        assert_eq!(s.by_subscriber("imsi:1".into()).await.unwrap(), ["a", "b"]);
        // A subsession ends: its address goes with it.
        let mut a = s.get("a".into()).await.unwrap().unwrap();
        a.subsessions.remove(&1);
        let stale = a.clone();
        assert!(s.replace(a).await.unwrap());
        assert!(!s.replace(stale).await.unwrap(), "stale version");
        assert_eq!(at("10.1.0.1").await.unwrap(), None);
        // A restarted V-PCRF: its sessions go, with every index entry.
        let gone = s.remove_by_vpcrf("vpcrf.V".into()).await.unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(at("2001:db8:1:2::1").await.unwrap(), None);
        assert_eq!(s.count().await.unwrap(), 1);
        s.remove("b".into()).await.unwrap();
        let m = s.maps.lock().unwrap();
        assert!(m.by_ip.is_empty() && m.by_vpcrf.is_empty() && m.by_subscriber.is_empty());
    }
}
