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
    Done(Bytes),
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
    /// Bytes of the answers kept, and their budget.
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
                Entry::Done(a) => Seen::Answered(a.clone()),
            },
            std::collections::hash_map::Entry::Vacant(v) => {
                self.order.push_back((now, v.key().clone()));
                v.insert(Entry::InFlight(Vec::new()));
                if self.entries.len() > self.capacity {
                    self.evict_oldest(false);
                }
                Seen::New
            }
        }
    }

    /// Stores the answer to a request registered as [`Seen::New`] and returns the
    /// duplicates that waited for it.
    pub fn complete(&mut self, key: &DupKey, answer: Bytes) -> Vec<W> {
        let len = answer.len();
        let waiters = match self.entries.get_mut(key) {
            Some(e) => match std::mem::replace(e, Entry::Done(answer)) {
                Entry::InFlight(ws) => ws,
                Entry::Done(old) => {
                    self.bytes -= old.len();
                    Vec::new()
                }
            },
            None => return Vec::new(),
        };
        self.bytes += len;
        while self.bytes > self.max_bytes && self.evict_oldest(true) {}
        waiters
    }

    /// Forgets a request whose handling failed without an answer, returning its waiters.
    pub fn abandon(&mut self, key: &DupKey) -> Vec<W> {
        match self.entries.remove(key) {
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
        if let Some(Entry::Done(a)) = &e {
            self.bytes -= a.len();
        }
        e
    }

    fn expire(&mut self, now: Instant) {
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
        }
    }

    /// Drops the oldest answered request. In-flight ones are kept while any answered one is
    /// left (their handlers will complete them); when none is, the oldest in-flight one goes
    /// unless `answered_only`. Whether one was dropped.
    fn evict_oldest(&mut self, answered_only: bool) -> bool {
        let mut tries = self.order.len();
        while let Some((t, key)) = self.order.pop_front() {
            match self.remove(&key) {
                // Already forgotten (abandoned after a 3004): nothing to free here.
                None => continue,
                Some(Entry::InFlight(ws)) if tries > 0 || answered_only => {
                    self.entries.insert(key.clone(), Entry::InFlight(ws));
                    self.order.push_back((t, key));
                    if tries == 0 {
                        return false;
                    }
                    tries -= 1;
                }
                Some(_) => return true,
            }
        }
        false
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
