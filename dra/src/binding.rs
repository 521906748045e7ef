//! Bindings (TS 29.213 §7.3.2): per IP-CAN session (or per UE), the UE identity, UE
//! address, APN and the PCRF selected, with the Diameter sessions (Gx, Gxx, Rx, S9) bound to
//! it by Session-Id.
//!
//! [`Index`] holds bindings with the indexes a DRA looks them up by (Session-Id, UE
//! identity, UE IPv4 address, UE IPv6 /64, PCRF, client) and applies every change as one
//! step that returns what changed ([`Write`]s), so a durable store can write exactly that.

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// When it was bound (Unix milliseconds): a client's restart releases only what it
    /// bound before (RFC 6733 §8.16).
    #[serde(default)]
    pub since_ms: u64,
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
    network_id_of(apn).to_ascii_lowercase()
}

/// The network identifier of an APN as it was written (see [`apn_network_id`]): the part
/// before the first `.mnc` when it ends in `.gprs`, else all of it.
fn network_id_of(apn: &str) -> &str {
    let b = apn.as_bytes();
    if b.len() >= 5
        && b[b.len() - 5..].eq_ignore_ascii_case(b".gprs")
        && let Some(i) = b.windows(4).position(|w| w.eq_ignore_ascii_case(b".mnc"))
    {
        // `i` is at a '.', a character boundary.
        return &apn[..i];
    }
    apn
}

/// Whether two APNs name the same network (see [`apn_network_id`]), without copying
/// either: a new session compares its APN with each entry of its UE.
pub fn apn_matches(a: &str, b: &str) -> bool {
    network_id_of(a).eq_ignore_ascii_case(network_id_of(b))
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

/// The fields an entry is matched on, borrowed from a [`Binding`] or from the index's own
/// form of it, so both match by one rule.
struct Fields<'a> {
    ue: &'a str,
    apn: Option<&'a str>,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Prefix>,
}

impl Fields<'_> {
    /// 29.213 §7.3.2: a session joins the entry of the same UE identity and (per IP-CAN
    /// session) APN, unless an address both carry differs.
    fn matches(&self, key: &UeKey, by: MatchBy) -> bool {
        let Some(ue) = &key.ue else { return false };
        if !ue.eq_ignore_ascii_case(self.ue) {
            return false;
        }
        if by == MatchBy::Ue {
            return true;
        }
        // The addresses first: cheaper than the APN, and as decisive.
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
        match (self.apn, &key.apn) {
            (Some(a), Some(b)) => apn_matches(a, b),
            _ => true,
        }
    }

    /// An Rx session belongs where its address is, and its UE identity and APN when given.
    fn has_address(&self, key: &UeKey) -> bool {
        let by_ip = match (key.ipv4, key.ipv6) {
            (Some(a), _) if self.ipv4 == Some(a) => true,
            (_, Some(p)) => self.ipv6.is_some_and(|mine| mine.contains(p.addr)),
            _ => false,
        };
        let ue_ok = key
            .ue
            .as_ref()
            .is_none_or(|u| u.eq_ignore_ascii_case(self.ue));
        let apn_ok = match (self.apn, &key.apn) {
            (Some(a), Some(b)) => apn_matches(a, b),
            _ => true,
        };
        by_ip && ue_ok && apn_ok
    }
}

impl Binding {
    fn fields(&self) -> Fields<'_> {
        Fields {
            ue: &self.ue,
            apn: self.apn.as_deref(),
            ipv4: self.ipv4,
            ipv6: self.ipv6,
        }
    }

    /// Whether a session of this key joins this entry.
    pub fn matches(&self, key: &UeKey, by: MatchBy) -> bool {
        self.fields().matches(key, by)
    }

    /// Whether an Rx session with this address (and, when given, UE identity and APN)
    /// belongs here.
    pub fn has_address(&self, key: &UeKey) -> bool {
        self.fields().has_address(key)
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
}

/// The id of a new entry: UE identity, APN and address, so it reads well in the operator's
/// listing (`imsi:001010000000001|internet|10.45.0.2`).
pub fn binding_id(ue: &str, key: &UeKey, by: MatchBy, now_ms: u64) -> String {
    if by == MatchBy::Ue {
        return ue.to_ascii_lowercase();
    }
    use std::fmt::Write as _;
    // Written into one string: `ue|apn|address`, lower-cased but the address.
    let apn = key.apn.as_deref().map_or("-", network_id_of);
    let mut id = String::with_capacity(ue.len() + apn.len() + 48);
    id.push_str(ue);
    id.push('|');
    id.push_str(apn);
    id.make_ascii_lowercase();
    id.push('|');
    match (key.ipv4, key.ipv6) {
        (Some(a), _) => {
            let [a, b, c, d] = a.octets();
            for (i, o) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    id.push('.');
                }
                if o >= 100 {
                    id.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    id.push(char::from(b'0' + o / 10 % 10));
                }
                id.push(char::from(b'0' + o % 10));
            }
        }
        (None, Some(p)) => {
            let _ = write!(id, "{}/{}", p.addr, p.len);
        }
        // No address yet (a BBERF before the PCEF): unique by time.
        (None, None) => {
            let _ = write!(id, "t{now_ms}");
        }
    }
    id
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

/// The slot an entry occupies in [`Index`]'s table: what every index points at.
type Slot = u32;

/// One of [`Index`]'s lookups: key hash → slots, 8 bytes an item. The key's 32-bit keyed
/// hash is kept beside the slot, so the table rehashes without reading the entries, and a
/// lookup checks the entry found against the key (a collision costs a comparison, not a
/// wrong binding). Several items may share a hash (a UE with several IP-CAN sessions); the
/// caller adds and removes each item once.
#[derive(Default)]
struct Lookup(HashTable<(u32, Slot)>);

/// hashbrown places by the low bits and tags by the top 7: spread the 32 bits over both.
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Lookup {
    fn add(&mut self, h: u32, slot: Slot) {
        self.0
            .insert_unique(spread(h), (h, slot), |&(h, _)| spread(h));
    }

    fn remove(&mut self, h: u32, slot: Slot) {
        if let Ok(item) = self.0.find_entry(spread(h), |&x| x == (h, slot)) {
            item.remove();
        }
    }

    fn slots(&self, h: u32) -> impl Iterator<Item = Slot> + '_ {
        self.0
            .iter_hash(spread(h))
            .filter(move |&&(x, _)| x == h)
            .map(|&(_, slot)| slot)
    }
}

/// A name many entries share (a PCRF, an APN, a client's Origin-Host), kept once and
/// referred to by number. Counted, so a name goes with the last entry using it (clients and
/// APNs come from requests: an unbounded set over time).
#[derive(Default)]
struct Names {
    by_key: HashMap<Box<str>, u32>,
    /// The name as first seen and how many refer to it; `None` when free.
    names: Vec<Option<(Box<str>, usize)>>,
    free: Vec<u32>,
}

impl Names {
    /// Names compare case-insensitively (Diameter identities, RFC 6733 §4.3.1; APN labels,
    /// TS 23.003 §9.1).
    fn lookup(&self, name: &str) -> Option<u32> {
        self.by_key.get(name.to_ascii_lowercase().as_str()).copied()
    }

    fn acquire(&mut self, name: &str) -> u32 {
        let key = name.to_ascii_lowercase();
        if let Some(&n) = self.by_key.get(key.as_str()) {
            if let Some((_, refs)) = &mut self.names[n as usize] {
                *refs += 1;
            }
            return n;
        }
        let named = Some((Box::from(name), 1));
        let n = match self.free.pop() {
            Some(n) => {
                self.names[n as usize] = named;
                n
            }
            None => {
                self.names.push(named);
                (self.names.len() - 1) as u32
            }
        };
        self.by_key.insert(key.into(), n);
        n
    }

    fn release(&mut self, n: u32) {
        let Some(Some((name, refs))) = self.names.get_mut(n as usize) else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            self.by_key.remove(name.to_ascii_lowercase().as_str());
            self.names[n as usize] = None;
            self.free.push(n);
        }
    }

    fn get(&self, n: u32) -> &str {
        self.names
            .get(n as usize)
            .and_then(Option::as_ref)
            .map_or("", |(name, _)| name)
    }

    fn refs(&self, n: u32) -> usize {
        self.names
            .get(n as usize)
            .and_then(Option::as_ref)
            .map_or(0, |(_, refs)| *refs)
    }
}

/// [`BoundSession`] as the index keeps it: 32 bytes and its Session-Id.
struct Sess {
    session_id: Box<str>,
    since_ms: u64,
    client: u32,
    interface: Interface,
    mode: Mode,
    state: SessionState,
}

/// [`Binding`] as the index keeps it: names by number, boxed strings and slices (no spare
/// capacity), ≈ 100 bytes and its strings.
struct Entry {
    id: Box<str>,
    ue: Box<str>,
    apn: Option<u32>,
    pcrf: u32,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Prefix>,
    created_ms: u64,
    touched_ms: u64,
    sessions: Box<[Sess]>,
}

/// Bindings with their indexes (one lock's worth of state; see the module documentation).
///
/// Laid out for 10^6 entries in a few hundred bytes each: the entries sit in one table
/// addressed by [`Slot`]; the indexes ([`Lookup`]) hold hashes and slots, not keys; PCRFs,
/// APNs and clients are [`Names`]. The operations keep every index and [`Stats`] in step
/// and return the changed entries as [`Binding`]s and [`Write`]s.
#[derive(Default)]
pub struct Index {
    slots: Vec<Option<Entry>>,
    free: Vec<Slot>,
    by_id: Lookup,
    by_session: Lookup,
    by_ue: Lookup,
    by_ipv4: Lookup,
    by_ipv6: Lookup,
    pcrfs: Names,
    apns: Names,
    clients: Names,
    keys: std::collections::hash_map::RandomState,
    stats: Stats,
    /// No [`Write`]s from the per-request operations (bind, attach, termination): for a
    /// store that keeps nothing but this index, where they would be copies of entries
    /// made only to be dropped.
    unjournaled: bool,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index whose per-request operations return no [`Write`]s (an in-memory
    /// store's: nothing to write them to).
    pub fn unjournaled() -> Self {
        Self {
            unjournaled: true,
            ..Self::default()
        }
    }

    /// Loads stored entries (a durable store at start).
    pub fn load(bindings: impl IntoIterator<Item = Binding>) -> Self {
        let mut ix = Self::new();
        for b in bindings {
            ix.insert(&b);
        }
        ix
    }

    /// The keyed hash of a string (case folded for identities) or an address.
    fn hash_str(&self, s: &str, fold: bool) -> u32 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.keys.build_hasher();
        if fold {
            // Folded a buffer at a time: the hasher sees the same bytes as byte by byte (the
            // same hash), in a few calls instead of one per byte.
            let mut buf = [0u8; 64];
            for chunk in s.as_bytes().chunks(buf.len()) {
                let folded = &mut buf[..chunk.len()];
                folded.copy_from_slice(chunk);
                folded.make_ascii_lowercase();
                h.write(folded);
            }
        } else {
            h.write(s.as_bytes());
        }
        h.write_u8(0xff);
        h.finish() as u32
    }

    fn hash_u64(&self, v: u64) -> u32 {
        use std::hash::BuildHasher;
        self.keys.hash_one(v) as u32
    }

    fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn entry_mut(&mut self, slot: Slot) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    fn entries(&self) -> impl Iterator<Item = (Slot, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i as Slot, e.as_ref()?)))
    }

    fn fields<'a>(&'a self, e: &'a Entry) -> Fields<'a> {
        Fields {
            ue: &e.ue,
            apn: e.apn.map(|n| self.apns.get(n)),
            ipv4: e.ipv4,
            ipv6: e.ipv6,
        }
    }

    fn slot_of_id(&self, id: &str) -> Option<Slot> {
        self.by_id
            .slots(self.hash_str(id, false))
            .find(|&s| self.entry(s).is_some_and(|e| &*e.id == id))
    }

    fn session_slot(&self, session_id: &str) -> Option<Slot> {
        self.by_session
            .slots(self.hash_str(session_id, false))
            .find(|&s| {
                self.entry(s)
                    .is_some_and(|e| e.sessions.iter().any(|x| &*x.session_id == session_id))
            })
    }

    /// The entry in `slot` as the API gives it.
    fn binding(&self, slot: Slot) -> Option<Binding> {
        let e = self.entry(slot)?;
        Some(Binding {
            id: e.id.to_string(),
            ue: e.ue.to_string(),
            apn: e.apn.map(|n| self.apns.get(n).to_string()),
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            pcrf: self.pcrfs.get(e.pcrf).to_string(),
            created_ms: e.created_ms,
            touched_ms: e.touched_ms,
            sessions: e
                .sessions
                .iter()
                .map(|s| BoundSession {
                    session_id: s.session_id.to_string(),
                    since_ms: s.since_ms,
                    interface: s.interface,
                    client: self.clients.get(s.client).to_string(),
                    mode: s.mode,
                    state: s.state,
                })
                .collect(),
        })
    }

    /// Places a new entry with no sessions and indexes its keys.
    fn create(&mut self, b: &Binding) -> Slot {
        let e = Entry {
            id: b.id.as_str().into(),
            ue: b.ue.as_str().into(),
            apn: b.apn.as_deref().map(|a| self.apns.acquire(a)),
            pcrf: self.pcrfs.acquire(&b.pcrf),
            ipv4: b.ipv4,
            ipv6: b.ipv6,
            created_ms: b.created_ms,
            touched_ms: b.touched_ms,
            sessions: Box::default(),
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(e);
                slot
            }
            None => {
                self.slots.push(Some(e));
                (self.slots.len() - 1) as Slot
            }
        };
        let h = self.hash_str(&b.id, false);
        self.by_id.add(h, slot);
        let h = self.hash_str(&b.ue, true);
        self.by_ue.add(h, slot);
        if let Some(a) = b.ipv4 {
            let h = self.hash_u64(u64::from(a.to_bits()));
            self.by_ipv4.add(h, slot);
        }
        if let Some(p) = b.ipv6 {
            let h = self.hash_u64(p.slot());
            self.by_ipv6.add(h, slot);
        }
        self.stats.bindings += 1;
        slot
    }

    /// Adds sessions to an entry.
    fn add_sessions<'a>(
        &mut self,
        slot: Slot,
        sessions: impl IntoIterator<Item = &'a BoundSession>,
    ) {
        let mut added = Vec::new();
        for s in sessions {
            let h = self.hash_str(&s.session_id, false);
            self.by_session.add(h, slot);
            match s.state {
                SessionState::Active => self.stats.active_sessions += 1,
                SessionState::Terminated => self.stats.terminated_sessions += 1,
            }
            added.push(Sess {
                session_id: s.session_id.as_str().into(),
                since_ms: s.since_ms,
                client: self.clients.acquire(&s.client),
                interface: s.interface,
                mode: s.mode,
                state: s.state,
            });
        }
        if let Some(e) = self.entry_mut(slot) {
            let mut all = std::mem::take(&mut e.sessions).into_vec();
            all.append(&mut added);
            e.sessions = all.into_boxed_slice();
        }
    }

    /// Takes the sessions `drop` selects off an entry; how many went.
    fn remove_sessions(&mut self, slot: Slot, selected: impl Fn(&Sess) -> bool) -> usize {
        let Some(e) = self.entry_mut(slot) else {
            return 0;
        };
        let (gone, kept): (Vec<Sess>, Vec<Sess>) = std::mem::take(&mut e.sessions)
            .into_vec()
            .into_iter()
            .partition(|s| selected(s));
        e.sessions = kept.into_boxed_slice();
        for s in &gone {
            let h = self.hash_str(&s.session_id, false);
            self.by_session.remove(h, slot);
            self.clients.release(s.client);
            match s.state {
                SessionState::Active => self.stats.active_sessions -= 1,
                SessionState::Terminated => self.stats.terminated_sessions -= 1,
            }
        }
        gone.len()
    }

    /// Deletes the entry in `slot`, unindexed, its names released; returns it.
    fn remove(&mut self, slot: Slot) -> Option<Binding> {
        let b = self.binding(slot)?;
        self.remove_sessions(slot, |_| true);
        let e = self.slots[slot as usize].take()?;
        self.by_id.remove(self.hash_str(&e.id, false), slot);
        self.by_ue.remove(self.hash_str(&e.ue, true), slot);
        if let Some(a) = e.ipv4 {
            self.by_ipv4
                .remove(self.hash_u64(u64::from(a.to_bits())), slot);
        }
        if let Some(p) = e.ipv6 {
            self.by_ipv6.remove(self.hash_u64(p.slot()), slot);
        }
        if let Some(n) = e.apn {
            self.apns.release(n);
        }
        self.pcrfs.release(e.pcrf);
        self.free.push(slot);
        self.stats.bindings -= 1;
        Some(b)
    }

    /// Places a whole entry (loaded from a store), replacing one of the same id.
    fn insert(&mut self, b: &Binding) -> Slot {
        if let Some(old) = self.slot_of_id(&b.id) {
            self.remove(old);
        }
        let slot = self.create(b);
        self.add_sessions(slot, &b.sessions);
        slot
    }

    /// Fills the entry's APN and addresses from a later session's keys (a BBERF's Gxx came
    /// first without an address), indexing what is new.
    fn fill(&mut self, slot: Slot, key: &UeKey) {
        let Some(e) = self.entry(slot) else { return };
        let (apn, ipv4, ipv6) = (
            e.apn.is_none().then_some(key.apn.as_deref()).flatten(),
            e.ipv4.is_none().then_some(key.ipv4).flatten(),
            e.ipv6.is_none().then_some(key.ipv6).flatten(),
        );
        let apn = apn.map(|a| self.apns.acquire(a));
        let h4 = ipv4.map(|a| self.hash_u64(u64::from(a.to_bits())));
        let h6 = ipv6.map(|p| self.hash_u64(p.slot()));
        if let Some(e) = self.entry_mut(slot) {
            e.apn = e.apn.or(apn);
            e.ipv4 = e.ipv4.or(ipv4);
            e.ipv6 = e.ipv6.or(ipv6);
        }
        if let Some(h) = h4 {
            self.by_ipv4.add(h, slot);
        }
        if let Some(h) = h6 {
            self.by_ipv6.add(h, slot);
        }
    }

    fn touch_slot(&mut self, slot: Slot, now_ms: u64) {
        if let Some(e) = self.entry_mut(slot) {
            e.touched_ms = e.touched_ms.max(now_ms);
        }
    }

    /// Writes back a changed entry: deleted when finished, put otherwise. The entry as it
    /// was settled, and whether it went (`None`: no entry in `slot`).
    fn settle(&mut self, slot: Slot, writes: &mut Vec<Write>) -> Option<(Binding, bool)> {
        let finished = self
            .entry(slot)?
            .sessions
            .iter()
            .all(|s| s.state == SessionState::Terminated);
        if finished {
            let b = self.remove(slot)?;
            writes.push(Write::Delete(b.id.clone()));
            Some((b, true))
        } else {
            let b = self.binding(slot)?;
            if !self.unjournaled {
                writes.push(Write::Put(b.clone()));
            }
            Some((b, false))
        }
    }

    /// The entry `id`.
    pub fn get(&self, id: &str) -> Option<Binding> {
        self.binding(self.slot_of_id(id)?)
    }

    /// The entry a session is bound to.
    pub fn by_session(&self, session_id: &str) -> Option<Binding> {
        self.binding(self.session_slot(session_id)?)
    }

    /// The PCRF a session is bound to.
    pub fn pcrf_of_session(&self, session_id: &str) -> Option<String> {
        let e = self.entry(self.session_slot(session_id)?)?;
        Some(self.pcrfs.get(e.pcrf).to_string())
    }

    fn find_slot(&self, key: &UeKey, by: MatchBy) -> Option<Slot> {
        let h = self.hash_str(key.ue.as_ref()?, true);
        // The most recent one when several match (a UE re-attached before its old entry
        // was cleaned up).
        self.by_ue
            .slots(h)
            .filter_map(|s| Some((s, self.entry(s)?)))
            .filter(|(_, e)| self.fields(e).matches(key, by))
            .max_by_key(|(_, e)| e.created_ms)
            .map(|(s, _)| s)
    }

    /// The entry a new session of `key` joins.
    pub fn find(&self, key: &UeKey, by: MatchBy) -> Option<Binding> {
        self.binding(self.find_slot(key, by)?)
    }

    /// The PCRF of the entry a new session of `key` joins.
    pub fn pcrf_for(&self, key: &UeKey, by: MatchBy) -> Option<String> {
        let e = self.entry(self.find_slot(key, by)?)?;
        Some(self.pcrfs.get(e.pcrf).to_string())
    }

    /// The entry an Rx session of this UE address belongs to (29.213 §7.3.2).
    pub fn find_by_address(&self, key: &UeKey) -> Option<Binding> {
        let mut slots: Vec<Slot> = Vec::new();
        if let Some(a) = key.ipv4 {
            slots.extend(self.by_ipv4.slots(self.hash_u64(u64::from(a.to_bits()))));
        }
        if let Some(p) = key.ipv6 {
            slots.extend(self.by_ipv6.slots(self.hash_u64(p.slot())));
        }
        let newest = |it: &mut dyn Iterator<Item = (Slot, &Entry)>| {
            it.filter(|(_, e)| self.fields(e).has_address(key))
                .max_by_key(|(_, e)| e.created_ms)
                .map(|(s, _)| s)
        };
        let found = newest(&mut slots.into_iter().filter_map(|s| Some((s, self.entry(s)?))));
        if found.is_some() || key.ipv6.is_none() {
            return self.binding(found?);
        }
        // Prefixes shorter than /64 are indexed by their first /64 only.
        let short = newest(
            &mut self
                .entries()
                .filter(|(_, e)| e.ipv6.is_some_and(|p| p.len < 64)),
        );
        self.binding(short?)
    }

    /// Binds a session: joins the entry it matches (whose PCRF it gets) or creates one on
    /// `req.pcrf`. A session already bound elsewhere moves. Returns the entry.
    pub fn bind(&mut self, req: BindRequest) -> (Binding, Vec<Write>) {
        let mut writes = Vec::new();
        if let Some(old) = self.session_slot(&req.session.session_id) {
            // CCR-I again for a live Session-Id: it starts over.
            let sid = req.session.session_id.as_str();
            self.remove_sessions(old, |s| &*s.session_id == sid);
            self.settle(old, &mut writes);
        }
        let slot = match self.find_slot(&req.key, req.by) {
            Some(slot) => slot,
            None => {
                let ue = req.key.ue.clone().unwrap_or_default();
                let id = binding_id(&ue, &req.key, req.by, req.now_ms);
                if let Some(same) = self.slot_of_id(&id) {
                    // An entry of the same id that did not match (an address changed):
                    // replaced.
                    self.remove(same);
                    writes.push(Write::Delete(id.clone()));
                }
                self.create(&Binding {
                    id,
                    ue,
                    apn: None,
                    ipv4: None,
                    ipv6: None,
                    pcrf: req.pcrf.clone(),
                    created_ms: req.now_ms,
                    touched_ms: req.now_ms,
                    sessions: Vec::new(),
                })
            }
        };
        self.fill(slot, &req.key);
        self.touch_slot(slot, req.now_ms);
        self.add_sessions(slot, [&req.session]);
        let b = self.binding(slot).expect("the entry just bound");
        if !self.unjournaled {
            writes.push(Write::Put(b.clone()));
        }
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
        let sid = session.session_id.as_str();
        if let Some(old) = self.session_slot(sid)
            && self.entry(old).is_some_and(|e| &*e.id != id)
        {
            self.remove_sessions(old, |s| &*s.session_id == sid);
            self.settle(old, &mut writes);
        }
        let slot = self.slot_of_id(id)?;
        self.remove_sessions(slot, |s| &*s.session_id == sid);
        self.add_sessions(slot, [&session]);
        self.touch_slot(slot, now_ms);
        let b = self.binding(slot)?;
        if !self.unjournaled {
            writes.push(Write::Put(b.clone()));
        }
        Some((b, writes))
    }

    /// Takes a session off its entry (its establishment failed); the entry goes when
    /// nothing active is left.
    pub fn release_session(&mut self, session_id: &str) -> (Option<Binding>, Vec<Write>) {
        let mut writes = Vec::new();
        let Some(slot) = self.session_slot(session_id) else {
            return (None, writes);
        };
        self.remove_sessions(slot, |s| &*s.session_id == session_id);
        let out = self.settle(slot, &mut writes).map(|(b, _)| b);
        (out, writes)
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
            let Some(slot) = self.session_slot(sid) else {
                continue;
            };
            let Some(e) = self.entry_mut(slot) else {
                continue;
            };
            let mut marked = 0;
            for s in e.sessions.iter_mut() {
                if &*s.session_id == sid.as_str() && s.state == SessionState::Active {
                    s.state = SessionState::Terminated;
                    marked += 1;
                }
            }
            e.touched_ms = now_ms;
            self.stats.active_sessions -= marked;
            self.stats.terminated_sessions += marked;
            let Some((after, deleted)) = self.settle(slot, &mut writes) else {
                continue;
            };
            out.push(Terminated {
                session_id: sid.clone(),
                binding: after,
                deleted,
            });
        }
        (out, writes)
    }

    /// Deletes every entry on `pcrf` (it went down or restarted). A scan: rare, and it
    /// spares every entry an index item.
    pub fn release_pcrf(&mut self, pcrf: &str) -> (Vec<Binding>, Vec<Write>) {
        let Some(n) = self.pcrfs.lookup(pcrf) else {
            return (Vec::new(), Vec::new());
        };
        let slots: Vec<Slot> = self
            .entries()
            .filter(|(_, e)| e.pcrf == n)
            .map(|(s, _)| s)
            .collect();
        self.delete_all(&slots)
    }

    /// Takes every session `client` bound before `before_ms` off its entry (the client
    /// restarted then, RFC 6733 §8.16: what it bound since is its new state); entries left
    /// with nothing active go.
    pub fn release_client(&mut self, client: &str, before_ms: u64) -> (usize, Vec<Write>) {
        let mut writes = Vec::new();
        let Some(c) = self.clients.lookup(client) else {
            return (0, writes);
        };
        let slots: Vec<Slot> = self
            .entries()
            .filter(|(_, e)| {
                e.sessions
                    .iter()
                    .any(|s| s.client == c && s.since_ms < before_ms)
            })
            .map(|(s, _)| s)
            .collect();
        let mut n = 0;
        for slot in slots {
            n += self.remove_sessions(slot, |s| s.client == c && s.since_ms < before_ms);
            self.settle(slot, &mut writes);
        }
        (n, writes)
    }

    /// Deletes entries unchanged since before `cutoff_ms` (the age-out audit).
    pub fn expire(&mut self, cutoff_ms: u64) -> (Vec<Binding>, Vec<Write>) {
        let slots: Vec<Slot> = self
            .entries()
            .filter(|(_, e)| e.touched_ms < cutoff_ms)
            .map(|(s, _)| s)
            .collect();
        self.delete_all(&slots)
    }

    /// Entries unchanged since before `cutoff_ms`, oldest first, at most `limit` (the
    /// session-status audit's candidates).
    pub fn idle(&self, cutoff_ms: u64, limit: usize) -> Vec<Binding> {
        let mut v: Vec<(u64, Slot)> = self
            .entries()
            .filter(|(_, e)| e.touched_ms < cutoff_ms)
            .map(|(s, e)| (e.touched_ms, s))
            .collect();
        v.sort_unstable();
        v.into_iter()
            .take(limit)
            .filter_map(|(_, s)| self.binding(s))
            .collect()
    }

    /// Sets an entry's last change to `now_ms` (the PCRF confirmed its sessions). `None`
    /// when the entry is gone.
    pub fn touch(&mut self, id: &str, now_ms: u64) -> (Option<Binding>, Vec<Write>) {
        let Some(slot) = self.slot_of_id(id) else {
            return (None, Vec::new());
        };
        self.touch_slot(slot, now_ms);
        let b = self.binding(slot);
        let writes = b.iter().cloned().map(Write::Put).collect();
        (b, writes)
    }

    fn delete_all(&mut self, slots: &[Slot]) -> (Vec<Binding>, Vec<Write>) {
        let gone: Vec<Binding> = slots.iter().filter_map(|&s| self.remove(s)).collect();
        let writes = gone.iter().map(|b| Write::Delete(b.id.clone())).collect();
        (gone, writes)
    }

    /// Every entry, by id.
    pub fn list(&self) -> Vec<Binding> {
        let mut v: Vec<Binding> = self
            .entries()
            .filter_map(|(s, _)| self.binding(s))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Sizes.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Test support: every index, name count and [`Stats`] agrees with the entries.
    #[cfg(test)]
    fn check(&self) {
        let list = self.list();
        let mut stats = Stats::default();
        for b in &list {
            stats.bindings += 1;
            let (a, t) = b.counts();
            stats.active_sessions += a;
            stats.terminated_sessions += t;
            assert_eq!(self.get(&b.id).as_ref(), Some(b));
            for s in &b.sessions {
                assert_eq!(
                    self.by_session(&s.session_id).map(|x| x.id),
                    Some(b.id.clone())
                );
            }
            if let Some(a) = b.ipv4 {
                let found = self.find_by_address(&key_of_address(a.into()));
                assert!(found.is_some_and(|f| f.ipv4 == Some(a)));
            }
            assert_eq!(
                self.per_pcrf(&b.pcrf),
                list.iter()
                    .filter(|x| x.pcrf.eq_ignore_ascii_case(&b.pcrf))
                    .count()
            );
        }
        assert_eq!(self.stats, stats);
        let sessions: usize = list.iter().map(|b| b.sessions.len()).sum();
        assert_eq!(self.by_session.0.len(), sessions);
        assert_eq!(self.by_id.0.len(), list.len());
        assert_eq!(self.by_ue.0.len(), list.len());
        assert_eq!(
            self.by_ipv4.0.len(),
            list.iter().filter(|b| b.ipv4.is_some()).count()
        );
        let live = |n: &Names| n.names.iter().flatten().count();
        assert_eq!(live(&self.pcrfs), self.pcrfs.by_key.len());
        assert_eq!(live(&self.clients), self.clients.by_key.len());
        if list.is_empty() {
            assert_eq!(
                live(&self.pcrfs) + live(&self.apns) + live(&self.clients),
                0
            );
            assert_eq!(self.free.len(), self.slots.len());
        }
    }

    /// The entries per PCRF (least-loaded selection's tie-break in redirect mode).
    pub fn per_pcrf(&self, pcrf: &str) -> usize {
        self.pcrfs.lookup(pcrf).map_or(0, |n| self.pcrfs.refs(n))
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

    #[test]
    fn binding_ids_lower_case_the_ue_and_apn_and_write_the_address() {
        let mut key = UeKey {
            ue: None,
            ipv4: Some(Ipv4Addr::new(10, 0, 100, 255)),
            ipv6: None,
            apn: Some("Internet.mnc001.mcc001.GPRS".into()),
        };
        let id = |k: &UeKey, by| binding_id("IMSI:001", k, by, 7);
        assert_eq!(
            id(&key, MatchBy::IpCanSession),
            "imsi:001|internet|10.0.100.255"
        );
        assert_eq!(id(&key, MatchBy::Ue), "imsi:001");
        key.ipv4 = Some(Ipv4Addr::new(1, 20, 0, 9));
        key.apn = None;
        assert_eq!(id(&key, MatchBy::IpCanSession), "imsi:001|-|1.20.0.9");
        key.ipv4 = None;
        assert_eq!(id(&key, MatchBy::IpCanSession), "imsi:001|-|t7");
    }

    #[test]
    fn apns_compare_by_network_identifier() {
        assert_eq!(apn_network_id("IMS.MNC001.MCC001.GPRS"), "ims");
        assert_eq!(apn_network_id("Internet"), "internet");
        assert_eq!(apn_network_id("a.mnc1.example"), "a.mnc1.example");
        assert!(apn_matches("Internet", "internet.mnc001.mcc001.gprs"));
        assert!(apn_matches("INTERNET.mnc01.mcc001.GPRS", "internet"));
        assert!(!apn_matches("internet.mnc01", "internet"));
        assert!(!apn_matches("ims", "internet"));
        assert!(apn_matches("", ""));
        assert!(!apn_matches(".gprs", ".mnc.gprs"));
    }

    fn session(id: &str, i: Interface) -> BoundSession {
        BoundSession {
            session_id: id.into(),
            interface: i,
            client: "pcef.test".into(),
            mode: Mode::Proxy,
            state: SessionState::Active,
            since_ms: 1,
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
        // A restart at 0 (before the session was bound at 1) leaves it; one at 2 takes it.
        assert_eq!(ix.release_client("PCEF.test", 0).0, 0);
        assert_eq!(ix.stats().active_sessions, 1);
        assert_eq!(ix.release_client("PCEF.test", 2).0, 1);
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

    use proptest::prelude::*;

    /// One step of a DRA's life on a handful of UEs, addresses and Session-Ids, so steps
    /// collide: re-binds, moves, terminations of unknown sessions, restarts.
    #[derive(Debug, Clone)]
    enum Op {
        Bind {
            ue: u8,
            ip: u8,
            apn: u8,
            sid: u8,
            rx: bool,
            pcrf: u8,
            per_ue: bool,
        },
        Attach {
            ip: u8,
            sid: u8,
        },
        Terminate(Vec<u8>),
        Release(u8),
        Client(u8),
        Pcrf(u8),
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4u8, 0..4u8, 0..2u8, 0..12u8, any::<bool>(), 0..3u8, any::<bool>()).prop_map(
                |(ue, ip, apn, sid, rx, pcrf, per_ue)| Op::Bind { ue, ip, apn, sid, rx, pcrf, per_ue }
            ),
            2 => (0..4u8, 0..12u8).prop_map(|(ip, sid)| Op::Attach { ip, sid }),
            3 => proptest::collection::vec(0..12u8, 1..4).prop_map(Op::Terminate),
            1 => (0..12u8).prop_map(Op::Release),
            1 => (0..2u8).prop_map(Op::Client),
            1 => (0..3u8).prop_map(Op::Pcrf),
            1 => (0..40u64).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Whatever the sequence, the indexes, name counts and stats agree with the
        /// entries, and terminating every session leaves nothing behind.
        #[test]
        fn indexes_follow_every_change(ops in proptest::collection::vec(op(), 1..60)) {
            let mut ix = Index::new();
            for (now, op) in ops.into_iter().enumerate() {
                let now = now as u64;
                match op {
                    Op::Bind { ue, ip, apn, sid, rx, pcrf, per_ue } => {
                        let key = UeKey {
                            ue: Some(format!("IMSI:{ue}")),
                            ipv4: (ip > 0).then(|| Ipv4Addr::new(10, 0, 0, ip)),
                            ipv6: None,
                            apn: Some(["internet", "IMS"][apn as usize].into()),
                        };
                        let mut s = session(&format!("s{sid}"), if rx { Interface::Rx } else { Interface::Gx });
                        s.client = format!("client{}", sid % 2);
                        s.since_ms = now;
                        ix.bind(BindRequest {
                            key,
                            by: if per_ue { MatchBy::Ue } else { MatchBy::IpCanSession },
                            pcrf: format!("pcrf{pcrf}"),
                            session: s,
                            now_ms: now,
                        });
                    }
                    Op::Attach { ip, sid } => {
                        if let Some(b) = ix.find_by_address(&key_of_address(Ipv4Addr::new(10, 0, 0, ip).into())) {
                            let mut s = session(&format!("s{sid}"), Interface::Rx);
                            s.client = "CLIENT1".into();
                            s.since_ms = now;
                            ix.attach(&b.id, s, now);
                        }
                    }
                    Op::Terminate(sids) => {
                        let sids: Vec<String> = sids.iter().map(|s| format!("s{s}")).collect();
                        ix.terminate(&sids, now);
                    }
                    Op::Release(sid) => {
                        ix.release_session(&format!("s{sid}"));
                    }
                    Op::Client(c) => {
                        ix.release_client(&format!("Client{c}"), now);
                    }
                    Op::Pcrf(p) => {
                        ix.release_pcrf(&format!("PCRF{p}"));
                    }
                    Op::Expire(cutoff) => {
                        ix.expire(cutoff);
                    }
                }
                ix.check();
            }
            let all: Vec<String> = (0..12).map(|s| format!("s{s}")).collect();
            ix.terminate(&all, 1_000);
            ix.check();
            prop_assert_eq!(ix.stats(), Stats::default());
            prop_assert!(ix.list().is_empty());
        }
    }
}
