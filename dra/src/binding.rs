//! Bindings (TS 29.213 §7.3.2): per IP-CAN session (or per UE), the UE identity, UE
//! address, APN and the PCRF selected, with the Diameter sessions (Gx, Gxx, Rx, S9) bound to
//! it by Session-Id.
//!
//! [`Index`] holds bindings with the indexes a DRA looks them up by (Session-Id, UE
//! identity, UE IPv4 address, UE IPv6 /64, PCRF, client) and applies every change as one
//! step that returns what changed ([`Write`]s), so a durable store can write exactly that.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The interface a session belongs to, from its Application-Id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// Gx, TS 29.212 (16777238).
    Gx,
    /// Gxx, TS 29.212 chapter 4a (16777266).
    Gxx,
    /// Rx, TS 29.214 (16777236).
    Rx,
    /// S9, TS 29.215 (16777267).
    S9,
}

impl Interface {
    /// Gx Application-Id.
    pub const GX_APP: u32 = 16_777_238;
    /// Gxx Application-Id.
    pub const GXX_APP: u32 = 16_777_266;
    /// Rx Application-Id.
    pub const RX_APP: u32 = 16_777_236;
    /// S9 Application-Id.
    pub const S9_APP: u32 = 16_777_267;

    /// From an Application-Id (protocol.md §2).
    pub fn from_application(id: u32) -> Option<Self> {
        match id {
            Self::GX_APP => Some(Self::Gx),
            Self::GXX_APP => Some(Self::Gxx),
            Self::RX_APP => Some(Self::Rx),
            Self::S9_APP => Some(Self::S9),
            _ => None,
        }
    }

    /// The Application-Id.
    pub fn application(self) -> u32 {
        match self {
            Self::Gx => Self::GX_APP,
            Self::Gxx => Self::GXX_APP,
            Self::Rx => Self::RX_APP,
            Self::S9 => Self::S9_APP,
        }
    }

    /// Label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gx => "gx",
            Self::Gxx => "gxx",
            Self::Rx => "rx",
            Self::S9 => "s9",
        }
    }

    /// Every interface.
    pub const ALL: [Self; 4] = [Self::Gx, Self::Gxx, Self::Rx, Self::S9];
}

/// How the DRA handled a request: answered with the PCRF's address, or forwarded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// 3006 with Redirect-Host (29.213 §7.4.2).
    #[default]
    Redirect,
    /// Forwarded to the PCRF, the answer relayed back (29.213 §7.4.1).
    Proxy,
}

impl Mode {
    /// Label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redirect => "redirect",
            Self::Proxy => "proxy",
        }
    }
}

/// A bound session's state (document 002: a termination marks it; the entry goes when
/// every session is marked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Live.
    Active,
    /// Its termination reached the DRA.
    Terminated,
}

/// One Diameter session bound to an IP-CAN session entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundSession {
    /// Session-Id.
    pub session_id: String,
    /// Gx, Gxx, Rx or S9.
    pub interface: Interface,
    /// The client's Origin-Host (PCEF, BBERF, AF, V-PCRF): where PCRF-initiated requests
    /// go in proxy mode.
    pub client: String,
    /// How its establishment was handled.
    pub mode: Mode,
    /// Active or terminated.
    pub state: SessionState,
}

/// A UE's IPv6 prefix (Framed-IPv6-Prefix, RFC 3162 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ipv6Prefix {
    /// The prefix, zero past its length.
    pub addr: Ipv6Addr,
    /// Its length in bits.
    pub len: u8,
}

impl Ipv6Prefix {
    /// A prefix, bits past `len` cleared; `None` when `len` > 128.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        if len > 128 {
            return None;
        }
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        };
        Some(Self {
            addr: Ipv6Addr::from(u128::from(addr) & mask),
            len,
        })
    }

    /// From the AVP payload: reserved octet, prefix length, prefix octets.
    pub fn from_avp(data: &[u8]) -> Option<Self> {
        let len = *data.get(1)?;
        let bytes = data.get(2..)?;
        if bytes.len() > 16 || usize::from(len) > bytes.len() * 8 {
            return None;
        }
        let mut a = [0u8; 16];
        a[..bytes.len()].copy_from_slice(bytes);
        Self::new(Ipv6Addr::from(a), len)
    }

    /// Whether `a` lies inside (29.213 §7.3.2: an Rx IPv6 address matches a stored prefix
    /// when it is inside it).
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        Self::new(a, self.len).is_some_and(|p| p.addr == self.addr)
    }

    /// The /64 it falls in: the index key (an EPS UE gets a /64, TS 23.401 §5.3.1.2.2;
    /// shorter prefixes are indexed by their first /64 and found by a scan).
    fn slot(&self) -> u64 {
        (u128::from(self.addr) >> 64) as u64
    }
}

/// What identifies an IP-CAN session, as read from a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UeKey {
    /// UE identity: `imsi:…`, `nai:…`, `msisdn:…` (Subscription-Id).
    pub ue: Option<String>,
    /// Framed-IP-Address.
    pub ipv4: Option<Ipv4Addr>,
    /// Framed-IPv6-Prefix.
    pub ipv6: Option<Ipv6Prefix>,
    /// Called-Station-Id, compared by [`apn_matches`].
    pub apn: Option<String>,
}

/// TS 23.003 §9.1: an APN is its network identifier, optionally followed by the operator
/// identifier (`.mncXXX.mccYYY.gprs`); labels compare case-insensitively. Two APNs match
/// when their network identifiers do (29.213 Annex I leaves the rest to the operator).
pub fn apn_network_id(apn: &str) -> String {
    let lower = apn.to_ascii_lowercase();
    match lower.find(".mnc") {
        Some(i) if lower.ends_with(".gprs") => lower[..i].to_string(),
        _ => lower,
    }
}

/// Whether two APNs name the same network (see [`apn_network_id`]).
pub fn apn_matches(a: &str, b: &str) -> bool {
    apn_network_id(a) == apn_network_id(b)
}

/// How a new session finds the entry it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchBy {
    /// Same UE identity and APN, and no conflicting address (29.213 §7.3.2 per IP-CAN
    /// session).
    IpCanSession,
    /// Same UE identity (per UE; and S9, of which there is one session per UE).
    Ue,
}

/// An IP-CAN session (or UE) entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Its key in the store: the UE identity, APN and address known at creation.
    pub id: String,
    /// UE identity.
    pub ue: String,
    /// APN.
    pub apn: Option<String>,
    /// UE IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// UE IPv6 prefix.
    pub ipv6: Option<Ipv6Prefix>,
    /// The PCRF selected (its Diameter identity).
    pub pcrf: String,
    /// Created (Unix milliseconds).
    pub created_ms: u64,
    /// Last change (Unix milliseconds): the age-out audit's clock.
    pub touched_ms: u64,
    /// The sessions bound to it.
    pub sessions: Vec<BoundSession>,
}

impl Binding {
    /// Whether a session of this key joins this entry.
    pub fn matches(&self, key: &UeKey, by: MatchBy) -> bool {
        let Some(ue) = &key.ue else { return false };
        if !ue.eq_ignore_ascii_case(&self.ue) {
            return false;
        }
        if by == MatchBy::Ue {
            return true;
        }
        match (&self.apn, &key.apn) {
            (Some(a), Some(b)) if !apn_matches(a, b) => return false,
            _ => {}
        }
        if let (Some(a), Some(b)) = (self.ipv4, key.ipv4)
            && a != b
        {
            return false;
        }
        if let (Some(a), Some(b)) = (self.ipv6, key.ipv6)
            && a.addr != b.addr
        {
            return false;
        }
        true
    }

    /// Whether an Rx session with this address (and, when given, UE identity and APN)
    /// belongs here.
    pub fn has_address(&self, key: &UeKey) -> bool {
        let by_ip = match (key.ipv4, key.ipv6) {
            (Some(a), _) if self.ipv4 == Some(a) => true,
            (_, Some(p)) => self.ipv6.is_some_and(|mine| mine.contains(p.addr)),
            _ => false,
        };
        let ue_ok = key
            .ue
            .as_ref()
            .is_none_or(|u| u.eq_ignore_ascii_case(&self.ue));
        let apn_ok = match (&self.apn, &key.apn) {
            (Some(a), Some(b)) => apn_matches(a, b),
            _ => true,
        };
        by_ip && ue_ok && apn_ok
    }

    /// Whether every session is terminated (or none is left).
    pub fn finished(&self) -> bool {
        self.sessions
            .iter()
            .all(|s| s.state == SessionState::Terminated)
    }

    /// Sessions active and terminated.
    pub fn counts(&self) -> (u64, u64) {
        let active = self
            .sessions
            .iter()
            .filter(|s| s.state == SessionState::Active)
            .count() as u64;
        (active, self.sessions.len() as u64 - active)
    }

    fn fill(&mut self, key: &UeKey) {
        if self.apn.is_none() {
            self.apn.clone_from(&key.apn);
        }
        if self.ipv4.is_none() {
            self.ipv4 = key.ipv4;
        }
        if self.ipv6.is_none() {
            self.ipv6 = key.ipv6;
        }
    }
}

/// The id of a new entry: UE identity, APN and address, so it reads well in the operator's
/// listing (`imsi:001010000000001|internet|10.45.0.2`).
pub fn binding_id(ue: &str, key: &UeKey, by: MatchBy, now_ms: u64) -> String {
    if by == MatchBy::Ue {
        return ue.to_ascii_lowercase();
    }
    let apn = key.apn.as_deref().map_or("-".to_string(), apn_network_id);
    let ip = match (key.ipv4, key.ipv6) {
        (Some(a), _) => a.to_string(),
        (None, Some(p)) => format!("{}/{}", p.addr, p.len),
        // No address yet (a BBERF before the PCEF): unique by time.
        (None, None) => format!("t{now_ms}"),
    };
    format!("{}|{apn}|{ip}", ue.to_ascii_lowercase())
}

/// A change to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// The entry as it is now.
    Put(Binding),
    /// The entry is gone.
    Delete(String),
}

/// A new session to bind (see [`Index::bind`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindRequest {
    /// The keys read from the request.
    pub key: UeKey,
    /// How it finds its entry.
    pub by: MatchBy,
    /// The PCRF selected for a new entry (an existing entry keeps its own).
    pub pcrf: String,
    /// The session.
    pub session: BoundSession,
    /// Now (Unix milliseconds).
    pub now_ms: u64,
}

/// What a termination changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Terminated {
    /// The session marked.
    pub session_id: String,
    /// The entry it was bound to, as it is after the change.
    pub binding: Binding,
    /// Whether the entry went with it (every session terminated).
    pub deleted: bool,
}

/// Sizes for gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Entries.
    pub bindings: u64,
    /// Bound sessions active.
    pub active_sessions: u64,
    /// Bound sessions terminated, in entries that still have active ones.
    pub terminated_sessions: u64,
}

/// An entry's id as the indexes hold it: one allocation shared by every index entry.
type Id = Arc<str>;

/// The entries an index key points at: almost always one, a few when a UE has several
/// IP-CAN sessions (or, for the hashed keys, on a 64-bit hash collision).
#[derive(Debug, Clone)]
enum Ids {
    One(Id),
    Many(Vec<Id>),
}

impl Ids {
    fn iter(&self) -> std::slice::Iter<'_, Id> {
        match self {
            Self::One(id) => std::slice::from_ref(id).iter(),
            Self::Many(v) => v.iter(),
        }
    }
}

/// Bindings with their indexes (one lock's worth of state; see the module documentation).
/// The indexes share the entries' ids ([`Id`]) and point at one entry or a few ([`Ids`]);
/// Session-Ids and UE identities are indexed by a 64-bit keyed hash (the entry found is
/// checked against the key, so a collision costs a comparison, not a wrong answer); the
/// entries themselves are boxed, so the table's spare room holds pointers, not entries.
#[derive(Default)]
pub struct Index {
    bindings: HashMap<Id, Box<Binding>>,
    by_session: HashMap<u64, Ids>,
    by_ue: HashMap<u64, Ids>,
    by_ipv4: HashMap<Ipv4Addr, Ids>,
    by_ipv6: HashMap<u64, Ids>,
    by_pcrf: HashMap<String, HashSet<Id>>,
    keys: std::collections::hash_map::RandomState,
    stats: Stats,
}

fn add_to<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Ids>, k: K, id: &Id) {
    match m.entry(k) {
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Ids::One(id.clone()));
        }
        std::collections::hash_map::Entry::Occupied(mut e) => {
            let ids = e.get_mut();
            match ids {
                Ids::One(x) if x != id => *ids = Ids::Many(vec![x.clone(), id.clone()]),
                Ids::Many(v) if !v.contains(id) => v.push(id.clone()),
                _ => {}
            }
        }
    }
}

fn remove_from<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Ids>, k: &K, id: &str) {
    let Some(ids) = m.get_mut(k) else { return };
    match ids {
        Ids::One(x) if &**x == id => {
            m.remove(k);
        }
        Ids::Many(v) => {
            v.retain(|x| &**x != id);
            match v.len() {
                0 => {
                    m.remove(k);
                }
                1 => *ids = Ids::One(v[0].clone()),
                _ => {}
            }
        }
        _ => {}
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads stored entries (a durable store at start).
    pub fn load(bindings: impl IntoIterator<Item = Binding>) -> Self {
        let mut ix = Self::new();
        for b in bindings {
            ix.insert(b);
        }
        ix
    }

    /// The keyed hash of a Session-Id (as is) or a UE identity (case folded).
    fn hash_of(&self, s: &str, fold: bool) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.keys.build_hasher();
        if fold {
            for c in s.bytes() {
                h.write_u8(c.to_ascii_lowercase());
            }
        } else {
            h.write(s.as_bytes());
        }
        h.write_u8(0xff);
        h.finish()
    }

    /// The id of the entry a session is bound to.
    fn session_entry(&self, session_id: &str) -> Option<&Id> {
        self.by_session
            .get(&self.hash_of(session_id, false))?
            .iter()
            .find(|id| {
                self.bindings
                    .get(&***id)
                    .is_some_and(|b| b.sessions.iter().any(|s| s.session_id == session_id))
            })
    }

    fn insert(&mut self, b: Binding) {
        if let Some(old) = self.bindings.remove(b.id.as_str()) {
            self.unindex(&old);
        }
        let id: Id = Arc::from(b.id.as_str());
        for s in &b.sessions {
            let h = self.hash_of(&s.session_id, false);
            add_to(&mut self.by_session, h, &id);
        }
        let h = self.hash_of(&b.ue, true);
        add_to(&mut self.by_ue, h, &id);
        if let Some(a) = b.ipv4 {
            add_to(&mut self.by_ipv4, a, &id);
        }
        if let Some(p) = b.ipv6 {
            add_to(&mut self.by_ipv6, p.slot(), &id);
        }
        self.by_pcrf
            .entry(b.pcrf.to_ascii_lowercase())
            .or_default()
            .insert(id.clone());
        let (a, t) = b.counts();
        self.stats.bindings += 1;
        self.stats.active_sessions += a;
        self.stats.terminated_sessions += t;
        self.bindings.insert(id, Box::new(b));
    }

    fn unindex(&mut self, b: &Binding) {
        for s in &b.sessions {
            let h = self.hash_of(&s.session_id, false);
            remove_from(&mut self.by_session, &h, &b.id);
        }
        let h = self.hash_of(&b.ue, true);
        remove_from(&mut self.by_ue, &h, &b.id);
        if let Some(a) = b.ipv4 {
            remove_from(&mut self.by_ipv4, &a, &b.id);
        }
        if let Some(p) = b.ipv6 {
            remove_from(&mut self.by_ipv6, &p.slot(), &b.id);
        }
        let pcrf = b.pcrf.to_ascii_lowercase();
        if let Some(set) = self.by_pcrf.get_mut(&pcrf) {
            set.remove(b.id.as_str());
            if set.is_empty() {
                self.by_pcrf.remove(&pcrf);
            }
        }
        let (a, t) = b.counts();
        self.stats.bindings -= 1;
        self.stats.active_sessions -= a;
        self.stats.terminated_sessions -= t;
    }

    fn take(&mut self, id: &str) -> Option<Binding> {
        let b = self.bindings.remove(id)?;
        self.unindex(&b);
        Some(*b)
    }

    /// Writes back an entry taken out: deleted when finished, put otherwise.
    fn settle(&mut self, b: Binding, writes: &mut Vec<Write>) -> bool {
        if b.finished() {
            writes.push(Write::Delete(b.id.clone()));
            true
        } else {
            writes.push(Write::Put(b.clone()));
            self.insert(b);
            false
        }
    }

    /// The entry `id`.
    pub fn get(&self, id: &str) -> Option<&Binding> {
        self.bindings.get(id).map(|b| &**b)
    }

    /// The entry a session is bound to.
    pub fn by_session(&self, session_id: &str) -> Option<&Binding> {
        self.session_entry(session_id)
            .and_then(|id| self.bindings.get(id))
            .map(|b| &**b)
    }

    /// The entry a new session of `key` joins.
    pub fn find(&self, key: &UeKey, by: MatchBy) -> Option<&Binding> {
        let ids = self.by_ue.get(&self.hash_of(key.ue.as_ref()?, true))?;
        // The most recent one when several match (a UE re-attached before its old entry
        // was cleaned up).
        ids.iter()
            .filter_map(|id| self.bindings.get(id).map(|b| &**b))
            .filter(|b| b.matches(key, by))
            .max_by_key(|b| b.created_ms)
    }

    /// The entry an Rx session of this UE address belongs to (29.213 §7.3.2).
    pub fn find_by_address(&self, key: &UeKey) -> Option<&Binding> {
        let mut ids: Vec<&Id> = Vec::new();
        if let Some(a) = key.ipv4 {
            ids.extend(self.by_ipv4.get(&a).into_iter().flat_map(Ids::iter));
        }
        if let Some(p) = key.ipv6 {
            ids.extend(self.by_ipv6.get(&p.slot()).into_iter().flat_map(Ids::iter));
        }
        let found = ids
            .into_iter()
            .filter_map(|id| self.bindings.get(&**id).map(|b| &**b))
            .filter(|b| b.has_address(key))
            .max_by_key(|b| b.created_ms);
        if found.is_some() || key.ipv6.is_none() {
            return found;
        }
        // Prefixes shorter than /64 are indexed by their first /64 only.
        self.bindings
            .values()
            .map(|b| &**b)
            .filter(|b| b.ipv6.is_some_and(|p| p.len < 64) && b.has_address(key))
            .max_by_key(|b| b.created_ms)
    }

    /// Binds a session: joins the entry it matches (whose PCRF it gets) or creates one on
    /// `req.pcrf`. A session already bound elsewhere moves. Returns the entry.
    pub fn bind(&mut self, req: BindRequest) -> (Binding, Vec<Write>) {
        let mut writes = Vec::new();
        let sid = req.session.session_id.clone();
        if let Some(old) = self.session_entry(&sid).map(|x| x.to_string()) {
            // CCR-I again for a live Session-Id: it starts over.
            self.detach(&old, &sid, &mut writes);
        }
        let existing = self.find(&req.key, req.by).map(|b| b.id.clone());
        let mut b = match existing.and_then(|id| self.take(&id)) {
            Some(b) => b,
            None => {
                let ue = req.key.ue.clone().unwrap_or_default();
                Binding {
                    id: binding_id(&ue, &req.key, req.by, req.now_ms),
                    ue,
                    apn: None,
                    ipv4: None,
                    ipv6: None,
                    pcrf: req.pcrf.clone(),
                    created_ms: req.now_ms,
                    touched_ms: req.now_ms,
                    sessions: Vec::new(),
                }
            }
        };
        if let Some(same) = self.take(&b.id) {
            // An entry of the same id that did not match (an address changed): replaced.
            writes.push(Write::Delete(same.id));
        }
        b.fill(&req.key);
        b.touched_ms = req.now_ms;
        b.sessions.push(req.session);
        writes.push(Write::Put(b.clone()));
        self.insert(b.clone());
        (b, writes)
    }

    /// Binds a session to the entry `id` (an Rx session following the Gx binding). `None`
    /// when the entry is gone.
    pub fn attach(
        &mut self,
        id: &str,
        session: BoundSession,
        now_ms: u64,
    ) -> Option<(Binding, Vec<Write>)> {
        let mut writes = Vec::new();
        if let Some(old) = self
            .session_entry(&session.session_id)
            .map(|x| x.to_string())
            && old != id
        {
            self.detach(&old, &session.session_id, &mut writes);
        }
        let mut b = self.take(id)?;
        b.sessions.retain(|s| s.session_id != session.session_id);
        b.sessions.push(session);
        b.touched_ms = now_ms;
        writes.push(Write::Put(b.clone()));
        self.insert(b.clone());
        Some((b, writes))
    }

    fn detach(&mut self, id: &str, session_id: &str, writes: &mut Vec<Write>) {
        if let Some(mut b) = self.take(id) {
            b.sessions.retain(|s| s.session_id != session_id);
            self.settle(b, writes);
        }
    }

    /// Takes a session off its entry (its establishment failed); the entry goes when
    /// nothing active is left.
    pub fn release_session(&mut self, session_id: &str) -> (Option<Binding>, Vec<Write>) {
        let mut writes = Vec::new();
        let Some(id) = self.session_entry(session_id).map(|x| x.to_string()) else {
            return (None, writes);
        };
        let Some(mut b) = self.take(&id) else {
            return (None, writes);
        };
        b.sessions.retain(|s| s.session_id != session_id);
        let out = b.clone();
        self.settle(b, &mut writes);
        (Some(out), writes)
    }

    /// Marks sessions terminated (document 002 step 2); an entry whose sessions are all
    /// terminated is deleted (step 4). Unknown Session-Ids are skipped.
    pub fn terminate(
        &mut self,
        session_ids: &[String],
        now_ms: u64,
    ) -> (Vec<Terminated>, Vec<Write>) {
        let mut writes = Vec::new();
        let mut out = Vec::new();
        for sid in session_ids {
            let Some(id) = self.session_entry(sid).map(|x| x.to_string()) else {
                continue;
            };
            let Some(mut b) = self.take(&id) else {
                continue;
            };
            for s in b.sessions.iter_mut().filter(|s| &s.session_id == sid) {
                s.state = SessionState::Terminated;
            }
            b.touched_ms = now_ms;
            let after = b.clone();
            let deleted = self.settle(b, &mut writes);
            out.push(Terminated {
                session_id: sid.clone(),
                binding: after,
                deleted,
            });
        }
        (out, writes)
    }

    /// Deletes every entry on `pcrf` (it went down or restarted).
    pub fn release_pcrf(&mut self, pcrf: &str) -> (Vec<Binding>, Vec<Write>) {
        let ids: Vec<String> = self
            .by_pcrf
            .get(&pcrf.to_ascii_lowercase())
            .map(|s| s.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        self.delete_all(&ids)
    }

    /// Takes every session of `client` off its entry (the client restarted, RFC 6733
    /// §8.16); entries left with nothing active go.
    pub fn release_client(&mut self, client: &str) -> (usize, Vec<Write>) {
        let ids: Vec<String> = self
            .bindings
            .values()
            .filter(|b| {
                b.sessions
                    .iter()
                    .any(|s| s.client.eq_ignore_ascii_case(client))
            })
            .map(|b| b.id.clone())
            .collect();
        let mut writes = Vec::new();
        let mut n = 0;
        for id in ids {
            if let Some(mut b) = self.take(&id) {
                let before = b.sessions.len();
                b.sessions
                    .retain(|s| !s.client.eq_ignore_ascii_case(client));
                n += before - b.sessions.len();
                self.settle(b, &mut writes);
            }
        }
        (n, writes)
    }

    /// Deletes entries unchanged since before `cutoff_ms` (the age-out audit).
    pub fn expire(&mut self, cutoff_ms: u64) -> (Vec<Binding>, Vec<Write>) {
        let ids: Vec<String> = self
            .bindings
            .values()
            .filter(|b| b.touched_ms < cutoff_ms)
            .map(|b| b.id.clone())
            .collect();
        self.delete_all(&ids)
    }

    /// Entries unchanged since before `cutoff_ms`, oldest first, at most `limit` (the
    /// session-status audit's candidates).
    pub fn idle(&self, cutoff_ms: u64, limit: usize) -> Vec<Binding> {
        let mut v: Vec<&Binding> = self
            .bindings
            .values()
            .map(|b| &**b)
            .filter(|b| b.touched_ms < cutoff_ms)
            .collect();
        v.sort_by_key(|b| b.touched_ms);
        v.into_iter().take(limit).cloned().collect()
    }

    /// Sets an entry's last change to `now_ms` (the PCRF confirmed its sessions). `None`
    /// when the entry is gone.
    pub fn touch(&mut self, id: &str, now_ms: u64) -> (Option<Binding>, Vec<Write>) {
        let Some(b) = self.bindings.get_mut(id) else {
            return (None, Vec::new());
        };
        b.touched_ms = b.touched_ms.max(now_ms);
        let b = (**b).clone();
        (Some(b.clone()), vec![Write::Put(b)])
    }

    fn delete_all(&mut self, ids: &[String]) -> (Vec<Binding>, Vec<Write>) {
        let mut gone = Vec::new();
        let mut writes = Vec::new();
        for id in ids {
            if let Some(b) = self.take(id) {
                writes.push(Write::Delete(b.id.clone()));
                gone.push(b);
            }
        }
        (gone, writes)
    }

    /// Every entry, by id.
    pub fn list(&self) -> Vec<Binding> {
        let mut v: Vec<Binding> = self.bindings.values().map(|b| (**b).clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Sizes.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The entries per PCRF (least-loaded selection's tie-break in redirect mode).
    pub fn per_pcrf(&self, pcrf: &str) -> usize {
        self.by_pcrf
            .get(&pcrf.to_ascii_lowercase())
            .map_or(0, HashSet::len)
    }
}

/// An address of either family as an Rx lookup key.
pub fn key_of_address(ip: IpAddr) -> UeKey {
    match ip {
        IpAddr::V4(a) => UeKey {
            ipv4: Some(a),
            ..UeKey::default()
        },
        IpAddr::V6(a) => UeKey {
            ipv6: Ipv6Prefix::new(a, 128),
            ..UeKey::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, i: Interface) -> BoundSession {
        BoundSession {
            session_id: id.into(),
            interface: i,
            client: "pcef.test".into(),
            mode: Mode::Proxy,
            state: SessionState::Active,
        }
    }

    fn key(ip: [u8; 4], apn: &str) -> UeKey {
        UeKey {
            ue: Some("imsi:001".into()),
            ipv4: Some(Ipv4Addr::from(ip)),
            ipv6: None,
            apn: Some(apn.into()),
        }
    }

    fn bind(ix: &mut Index, k: UeKey, sid: &str, i: Interface, pcrf: &str) -> Binding {
        ix.bind(BindRequest {
            key: k,
            by: MatchBy::IpCanSession,
            pcrf: pcrf.into(),
            session: session(sid, i),
            now_ms: 1,
        })
        .0
    }

    #[test]
    fn gxx_and_rx_follow_gx_and_the_entry_goes_with_its_last_session() {
        let mut ix = Index::new();
        let b = bind(
            &mut ix,
            key([10, 0, 0, 1], "internet"),
            "gx1",
            Interface::Gx,
            "p1",
        );
        // Gxx of the same UE and APN joins, and keeps p1 whatever was selected for it.
        let k = UeKey {
            ipv4: None,
            ..key([10, 0, 0, 1], "Internet.mnc001.mcc001.gprs")
        };
        let g = bind(&mut ix, k, "gxx1", Interface::Gxx, "p2");
        assert_eq!((g.id.as_str(), g.pcrf.as_str()), (b.id.as_str(), "p1"));
        // Rx by address only.
        let rx = ix
            .find_by_address(&key_of_address("10.0.0.1".parse().unwrap()))
            .unwrap()
            .id
            .clone();
        ix.attach(&rx, session("rx1", Interface::Rx), 2).unwrap();
        assert_eq!(ix.stats().active_sessions, 3);
        // Another APN is another IP-CAN session.
        let other = bind(
            &mut ix,
            key([10, 0, 0, 2], "ims"),
            "gx2",
            Interface::Gx,
            "p2",
        );
        assert_ne!(other.id, b.id);
        let (t, _) = ix.terminate(&["gx1".into(), "gxx1".into()], 3);
        assert!(t.iter().all(|t| !t.deleted));
        assert_eq!(ix.stats().terminated_sessions, 2);
        let (t, w) = ix.terminate(&["rx1".into(), "nope".into()], 4);
        assert_eq!(t.len(), 1);
        assert!(t[0].deleted);
        assert_eq!(w, vec![Write::Delete(b.id.clone())]);
        assert!(ix.by_session("gx1").is_none());
        assert_eq!(
            ix.stats(),
            Stats {
                bindings: 1,
                active_sessions: 1,
                terminated_sessions: 0
            }
        );
        let (gone, _) = ix.release_pcrf("P2");
        assert_eq!(gone.len(), 1);
        assert_eq!(ix.stats(), Stats::default());
    }

    #[test]
    fn ipv6_addresses_match_inside_the_prefix() {
        let p = Ipv6Prefix::from_avp(&[0, 64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 1]).unwrap();
        assert_eq!(p.addr, "2001:db8:0:1::".parse::<Ipv6Addr>().unwrap());
        assert!(p.contains("2001:db8:0:1::42".parse().unwrap()));
        assert!(!p.contains("2001:db8:0:2::42".parse().unwrap()));
        assert!(Ipv6Prefix::from_avp(&[0, 200, 1]).is_none());
        assert!(Ipv6Prefix::from_avp(&[0]).is_none());
        let mut ix = Index::new();
        let k = UeKey {
            ue: Some("nai:u@h".into()),
            ipv6: Some(p),
            ..UeKey::default()
        };
        bind(&mut ix, k, "gx", Interface::Gx, "p1");
        assert!(
            ix.find_by_address(&key_of_address("2001:db8:0:1::9".parse().unwrap()))
                .is_some()
        );
        assert!(
            ix.find_by_address(&key_of_address("2001:db8:0:3::9".parse().unwrap()))
                .is_none()
        );
    }

    #[test]
    fn a_failed_establishment_and_a_restarted_client_leave_nothing() {
        let mut ix = Index::new();
        bind(
            &mut ix,
            key([10, 0, 0, 1], "internet"),
            "gx1",
            Interface::Gx,
            "p1",
        );
        let (b, w) = ix.release_session("gx1");
        assert!(b.is_some());
        assert!(matches!(w.as_slice(), [Write::Delete(_)]));
        bind(
            &mut ix,
            key([10, 0, 0, 1], "internet"),
            "gx2",
            Interface::Gx,
            "p1",
        );
        assert_eq!(ix.release_client("PCEF.test").0, 1);
        assert_eq!(ix.stats(), Stats::default());
        bind(
            &mut ix,
            key([10, 0, 0, 1], "internet"),
            "gx3",
            Interface::Gx,
            "p1",
        );
        assert_eq!(ix.idle(2, 10).len(), 1);
        assert!(ix.idle(1, 10).is_empty());
        let (b, w) = ix.touch(&ix.idle(2, 10)[0].id.clone(), 5);
        assert_eq!(b.map(|b| b.touched_ms), Some(5));
        assert_eq!(w.len(), 1);
        assert!(ix.idle(2, 10).is_empty());
        assert_eq!(ix.touch("nope", 5), (None, Vec::new()));
        assert_eq!(ix.expire(5).0.len(), 0);
        assert_eq!(ix.expire(6).0.len(), 1);
    }
}
