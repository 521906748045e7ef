//! Duplicate detection on the receiving side (RFC 6733 §5.5.4 and §6.1.2 T bit): a request
//! is identified by (Origin-Host, End-to-End Identifier). A retransmission that arrives while
//! the original is being handled waits for its answer; one that arrives afterwards gets the
//! stored answer. Either way the handler runs once (faults.md I2, bad-inputs 38).
//!
//! The cache is bounded in entries, in time and in the bytes of the answers it keeps (they
//! are whole messages, up to the frame limit each), so a peer cannot grow it without limit.
//! Beyond either bound the oldest answers go first.

use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default byte budget of the answers kept: 200,000 answers (the node's default
/// capacity) of about 330 bytes each.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// Distinct Origin-Hosts whose keys share one string. Beyond this (a relay forwarding for
/// very many clients) keys get a string of their own, so the set stays bounded.
const MAX_INTERNED_HOSTS: usize = 4096;

/// The key of a request: RFC 6733 §3: "The combination of the Origin-Host and this field
/// [End-to-End Identifier] is used to detect duplicates."
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DupKey {
    /// Origin-Host of the request, lower-cased (identities compare case-insensitively).
    pub origin_host: Arc<str>,
    /// End-to-End Identifier.
    pub end_to_end: u32,
}

impl DupKey {
    /// A key.
    pub fn new(origin_host: &str, end_to_end: u32) -> Self {
        Self {
            origin_host: origin_host.to_ascii_lowercase().into(),
            end_to_end,
        }
    }
}

enum Entry<W> {
    InFlight(Vec<W>),
    /// Answered: where its answer is in the [`Ring`] (a logical offset) and its length.
    Done {
        at: u64,
        len: u32,
    },
}

/// The answers kept, one after another in one buffer used as a ring. Keeping one is a copy
/// at the end and forgetting the oldest is moving the start: no allocation or free per
/// answer, and the bytes written are the next in line rather than a block the allocator
/// found somewhere in ~100 MiB of answers (cold in the CPU's caches). Offsets are logical,
/// only growing; a byte at offset `o` is at `o % buf.len()`. The buffer grows by doubling,
/// up to the byte budget, only as the answers kept need it.
#[derive(Default)]
struct Ring {
    buf: Vec<u8>,
    /// Offset of the oldest byte kept, and of the next to write.
    start: u64,
    end: u64,
    /// The answers in the ring, oldest first: offset, length, key.
    records: VecDeque<(u64, u32, DupKey)>,
}

impl Ring {
    fn used(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// The two pieces of the buffer holding `len` bytes from offset `at`.
    fn spans(&self, at: u64, len: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let cap = self.buf.len();
        if len == 0 {
            return (0..0, 0..0);
        }
        let from = (at % cap as u64) as usize;
        let first = len.min(cap - from);
        (from..from + first, 0..len - first)
    }

    fn read(&self, at: u64, len: u32) -> Bytes {
        let (a, b) = self.spans(at, len as usize);
        let mut v = Vec::with_capacity(len as usize);
        v.extend_from_slice(&self.buf[a]);
        v.extend_from_slice(&self.buf[b]);
        Bytes::from(v)
    }

    fn write(&mut self, bytes: &[u8]) {
        let (a, b) = self.spans(self.end, bytes.len());
        let split = a.len();
        self.buf[a].copy_from_slice(&bytes[..split]);
        self.buf[b].copy_from_slice(&bytes[split..]);
        self.end += bytes.len() as u64;
    }

    /// Makes the buffer hold at least `need` bytes (at most `max`), keeping what it holds.
    fn reserve(&mut self, need: usize, max: usize) {
        if need <= self.buf.len() {
            return;
        }
        let size = need
            .next_power_of_two()
            .max(self.buf.len() * 2)
            .max(4096)
            .min(max);
        let mut grown = Self {
            buf: vec![0; size],
            start: self.start,
            end: self.start,
            records: std::mem::take(&mut self.records),
        };
        if !self.buf.is_empty() {
            let (a, b) = self.spans(self.start, self.used());
            grown.write(&self.buf[a]);
            grown.write(&self.buf[b]);
        }
        *self = grown;
    }
}

/// What to do with an incoming request.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// First sight: run the handler, then call [`DupCache::complete`].
    New,
    /// The original is still being handled: the waiter was queued.
    Waiting,
    /// Already answered: send this answer again (with the new Hop-by-Hop Identifier).
    Answered(Bytes),
}

/// A bounded duplicate cache; `W` is whatever the caller needs to answer a waiting
/// duplicate later (a reply channel, a connection id and Hop-by-Hop id…).
pub struct DupCache<W> {
    // FxHash rather than SipHash: the cache is on every request's path, and its keys come
    // only from peers that passed the capabilities exchange (and, across realms, TLS).
    entries: FxHashMap<DupKey, Entry<W>>,
    order: VecDeque<(Instant, DupKey)>,
    /// Origin-Hosts seen, so that a key costs no allocation (see [`Self::key`]).
    hosts: FxHashSet<Arc<str>>,
    window: Duration,
    capacity: usize,
    /// The answers kept.
    ring: Ring,
    /// Bytes of the answers kept (those whose entries are live), and the budget of the
    /// ring holding them.
    bytes: usize,
    max_bytes: usize,
}

impl<W> DupCache<W> {
    /// A cache remembering answers for `window`, holding at most `capacity` requests and
    /// [`DEFAULT_MAX_BYTES`] of answers.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            entries: FxHashMap::default(),
            order: VecDeque::new(),
            hosts: FxHashSet::default(),
            window,
            capacity: capacity.max(1),
            ring: Ring::default(),
            bytes: 0,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Keeps at most `max_bytes` of answers: beyond it the oldest answers are forgotten (and
    /// an answer larger than the whole budget is not kept at all).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The key of a request, as [`DupKey::new`] but sharing the Origin-Host string with
    /// earlier keys of the same host.
    pub fn key(&mut self, origin_host: &str, end_to_end: u32) -> DupKey {
        let host = crate::identity_key(origin_host);
        let origin_host = match self.hosts.get(host.as_ref()) {
            Some(h) => h.clone(),
            None => {
                let h: Arc<str> = host.as_ref().into();
                if self.hosts.len() < MAX_INTERNED_HOSTS {
                    self.hosts.insert(h.clone());
                }
                h
            }
        };
        DupKey {
            origin_host,
            end_to_end,
        }
    }

    /// Registers a request. `waiter` is called, and what it returns kept, only when the
    /// original is still in flight.
    pub fn check(&mut self, key: DupKey, now: Instant, waiter: impl FnOnce() -> W) -> Seen {
        self.expire(now);
        // One probe of the table whichever way it goes; a new entry makes room after it
        // is in (the oldest goes, never the newest while older ones are answered).
        match self.entries.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => match e.get_mut() {
                Entry::InFlight(ws) => {
                    ws.push(waiter());
                    Seen::Waiting
                }
                Entry::Done { at, len } => Seen::Answered(self.ring.read(*at, *len)),
            },
            std::collections::hash_map::Entry::Vacant(v) => {
                self.order.push_back((now, v.key().clone()));
                v.insert(Entry::InFlight(Vec::new()));
                // Answers forgotten for bytes leave their keys in `order` until they reach
                // its front: past twice the capacity, the front goes too, so the queue is
                // bounded by the capacity and not by the request rate times the window.
                if self.entries.len() > self.capacity || self.order.len() > 2 * self.capacity {
                    self.evict_oldest();
                    self.trim();
                }
                Seen::New
            }
        }
    }

    /// Stores the answer to a request registered as [`Seen::New`] and returns the
    /// duplicates that waited for it.
    pub fn complete(&mut self, key: &DupKey, answer: Bytes) -> Vec<W> {
        let Some(e) = self.entries.get_mut(key) else {
            return Vec::new();
        };
        let waiters = match std::mem::replace(e, Entry::InFlight(Vec::new())) {
            Entry::InFlight(ws) => ws,
            Entry::Done { len, .. } => {
                self.bytes -= len as usize;
                Vec::new()
            }
        };
        if answer.len() > self.max_bytes {
            // Larger than the whole budget: the older answers make way, as for any answer,
            // and this one is not kept.
            while self.evict_stored() {}
            self.entries.remove(key);
            return waiters;
        }
        while self.ring.used() + answer.len() > self.max_bytes && self.evict_stored() {}
        self.ring
            .reserve(self.ring.used() + answer.len(), self.max_bytes);
        let at = self.ring.end;
        self.ring.write(&answer);
        let len = answer.len() as u32;
        self.ring.records.push_back((at, len, key.clone()));
        self.bytes += answer.len();
        if let Some(e) = self.entries.get_mut(key) {
            *e = Entry::Done { at, len };
        }
        waiters
    }

    /// Forgets a request whose handling failed without an answer, returning its waiters.
    pub fn abandon(&mut self, key: &DupKey) -> Vec<W> {
        match self.remove(key) {
            Some(Entry::InFlight(ws)) => ws,
            _ => Vec::new(),
        }
    }

    /// Number of requests remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the answers kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets an entry, returning its waiters if it was in flight.
    fn remove(&mut self, key: &DupKey) -> Option<Entry<W>> {
        let e = self.entries.remove(key);
        if let Some(Entry::Done { len, .. }) = &e {
            self.bytes -= *len as usize;
        }
        e
    }

    /// Whether the ring's record at offset `at` is still the answer of `key`'s entry.
    fn is_live(&self, key: &DupKey, at: u64) -> bool {
        matches!(self.entries.get(key), Some(Entry::Done { at: a, .. }) if *a == at)
    }

    /// Frees the ring's oldest answer (forgetting its entry if that is still the answer's
    /// owner). Whether there was one.
    fn evict_stored(&mut self) -> bool {
        let Some((at, len, key)) = self.ring.records.pop_front() else {
            return false;
        };
        self.ring.start = at + u64::from(len);
        if self.is_live(&key, at) {
            self.remove(&key);
        }
        true
    }

    /// Moves the ring's start past the answers at its front whose entries are gone, so the
    /// ring holds no more than the answers kept need (plus the holes between them).
    fn trim(&mut self) {
        while let Some((at, _, key)) = self.ring.records.front() {
            if self.is_live(key, *at) {
                break;
            }
            self.evict_stored();
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut expired = false;
        while let Some((t, _)) = self.order.front() {
            if now.duration_since(*t) < self.window {
                break;
            }
            let (_, key) = self.order.pop_front().expect("front exists");
            // Entries still in flight stay: their handler will complete them.
            if let Some(Entry::InFlight(ws)) = self.remove(&key) {
                self.entries.insert(key.clone(), Entry::InFlight(ws));
                self.order.push_back((now, key));
                break;
            }
            expired = true;
        }
        if expired {
            self.trim();
        }
    }

    /// Drops the oldest answered request. In-flight ones are kept while any answered one is
    /// left (their handlers will complete them); when none is, the oldest in-flight one goes.
    fn evict_oldest(&mut self) {
        let mut tries = self.order.len();
        while let Some((t, key)) = self.order.pop_front() {
            match self.remove(&key) {
                // Already forgotten (abandoned after a 3004): nothing to free here.
                None => continue,
                Some(Entry::InFlight(ws)) if tries > 0 => {
                    self.entries.insert(key.clone(), Entry::InFlight(ws));
                    self.order.push_back((t, key));
                    tries -= 1;
                }
                Some(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_then_answered_then_expired() {
        let t0 = Instant::now();
        let mut c: DupCache<u32> = DupCache::new(Duration::from_secs(10), 100);
        let k = DupKey::new("PCEF.example", 7);
        assert_eq!(c.check(k.clone(), t0, || 1), Seen::New);
        let interned = c.key("pcef.EXAMPLE", 7);
        assert_eq!(interned, k);
        assert_eq!(c.check(interned, t0, || 2), Seen::Waiting);
        assert_eq!(c.complete(&k, Bytes::from_static(b"answer")), vec![2]);
        assert_eq!(
            c.check(k.clone(), t0 + Duration::from_secs(5), || 3),
            Seen::Answered(Bytes::from_static(b"answer"))
        );
        assert_eq!(c.check(k, t0 + Duration::from_secs(11), || 4), Seen::New);
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut c: DupCache<()> = DupCache::new(Duration::from_secs(10), 3);
        for i in 0..10 {
            let k = DupKey::new("h", i);
            c.check(k.clone(), t0, || ());
            c.complete(&k, Bytes::new());
        }
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn full_cache_evicts_the_oldest_answered_and_keeps_in_flight() {
        let t0 = Instant::now();
        let mut c: DupCache<()> = DupCache::new(Duration::from_secs(10), 3);
        let k = |i| DupKey::new("h", i);
        c.check(k(1), t0, || ()); // stays in flight
        for i in 2..=3 {
            c.check(k(i), t0, || ());
            c.complete(&k(i), Bytes::from_static(b"a"));
        }
        // Full: the next new request pushes out 2 (the oldest answered), not 1.
        assert_eq!(c.check(k(4), t0, || ()), Seen::New);
        assert_eq!(c.len(), 3);
        assert_eq!(c.check(k(1), t0, || ()), Seen::Waiting);
        assert!(matches!(c.check(k(3), t0, || ()), Seen::Answered(_)));
        assert_eq!(c.check(k(2), t0, || ()), Seen::New);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn abandoned_requests_do_not_keep_the_cache_over_capacity() {
        let t0 = Instant::now();
        let mut c: DupCache<()> = DupCache::new(Duration::from_secs(10), 2);
        let k = |i| DupKey::new("h", i);
        c.check(k(1), t0, || ());
        c.abandon(&k(1)); // a 3004: forgotten, its key still queued
        for i in 2..=5 {
            c.check(k(i), t0, || ());
            c.complete(&k(i), Bytes::from_static(b"a"));
            assert!(c.len() <= 2, "{} entries after {i}", c.len());
        }
    }

    #[test]
    fn answers_are_bounded_in_bytes_oldest_first() {
        let t0 = Instant::now();
        let mut c: DupCache<()> =
            DupCache::new(Duration::from_secs(10), 1000).with_max_bytes(10_000);
        let k = |i| DupKey::new("h", i);
        let answer = Bytes::from(vec![7u8; 3_000]);
        c.check(k(0), t0, || ()); // stays in flight: never evicted for bytes
        for i in 1..=20 {
            c.check(k(i), t0, || ());
            c.complete(&k(i), answer.clone());
            assert!(c.bytes() <= 10_000, "{} bytes after {i}", c.bytes());
        }
        // The three newest answers fit; the older ones went, oldest first.
        assert_eq!(c.bytes(), 9_000);
        for i in 18..=20 {
            assert!(matches!(c.check(k(i), t0, || ()), Seen::Answered(_)), "{i}");
        }
        assert_eq!(c.check(k(17), t0, || ()), Seen::New);
        assert_eq!(c.check(k(0), t0, || ()), Seen::Waiting);
        // An answer larger than the budget is not kept; the others stay.
        c.check(k(30), t0, || ());
        c.complete(&k(30), Bytes::from(vec![0u8; 20_000]));
        assert!(c.bytes() <= 10_000);
        assert_eq!(c.check(k(30), t0, || ()), Seen::New);
        // Expiry gives the bytes back.
        c.abandon(&k(30));
        c.complete(&k(0), Bytes::from_static(b"a"));
        c.complete(&k(17), Bytes::from_static(b"b"));
        assert_eq!(c.bytes(), 2);
        c.check(k(40), t0 + Duration::from_secs(11), || ());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn answers_wrap_around_the_ring_and_come_back_whole() {
        let t0 = Instant::now();
        let mut c: DupCache<()> =
            DupCache::new(Duration::from_secs(10), 1000).with_max_bytes(10_000);
        let k = |i| DupKey::new("h", i);
        for i in 0..100u32 {
            let answer = Bytes::from(vec![i as u8; 700 + i as usize % 13]);
            c.check(k(i), t0, || ());
            c.complete(&k(i), answer.clone());
            assert_eq!(c.check(k(i), t0, || ()), Seen::Answered(answer), "{i}");
            assert!(c.ring.buf.len() <= 10_000 && c.bytes() <= 10_000);
        }
        // The oldest went first: the 14 newest (9,886 bytes) fit, a 15th would not.
        assert_eq!(c.bytes(), 9_886);
        assert_eq!(c.check(k(85), t0, || ()), Seen::New);
        assert!(matches!(c.check(k(86), t0, || ()), Seen::Answered(_)));
    }

    #[test]
    fn answers_forgotten_for_bytes_do_not_grow_the_queue() {
        let t0 = Instant::now();
        let mut c: DupCache<()> = DupCache::new(Duration::from_secs(60), 100).with_max_bytes(1_000);
        let answer = Bytes::from(vec![1u8; 100]);
        for i in 0..10_000 {
            let k = DupKey::new("h", i);
            c.check(k.clone(), t0, || ());
            c.complete(&k, answer.clone());
            assert!(c.order.len() <= 201 && c.ring.records.len() <= 10, "{i}");
        }
        assert_eq!(c.bytes(), 1_000);
    }

    #[test]
    fn a_cache_of_few_entries_keeps_a_small_ring() {
        let t0 = Instant::now();
        let mut c: DupCache<()> = DupCache::new(Duration::from_secs(10), 10);
        let answer = Bytes::from(vec![1u8; 300]);
        for i in 0..10_000 {
            let k = DupKey::new("h", i);
            c.check(k.clone(), t0, || ());
            c.complete(&k, answer.clone());
        }
        assert_eq!(c.bytes(), 3_000);
        assert!(c.ring.buf.len() <= 8192, "{}", c.ring.buf.len());
        // Expired, the answers give their room back.
        c.check(DupKey::new("h", 0), t0 + Duration::from_secs(11), || ());
        assert_eq!((c.bytes(), c.ring.used()), (0, 0));
    }

    #[test]
    fn keys_share_the_host_string_and_the_set_is_bounded() {
        let mut c: DupCache<()> = DupCache::new(Duration::from_secs(10), 10);
        let a = c.key("Client.Example", 1);
        let b = c.key("client.example", 2);
        assert!(Arc::ptr_eq(&a.origin_host, &b.origin_host));
        assert_eq!(&*a.origin_host, "client.example");
        for i in 0..(MAX_INTERNED_HOSTS + 10) {
            let _ = c.key(&format!("h{i}.example"), 0);
        }
        assert_eq!(c.hosts.len(), MAX_INTERNED_HOSTS);
        assert_eq!(&*c.key("late.example", 3).origin_host, "late.example");
    }
}
