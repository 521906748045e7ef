//! Duplicate detection on the receiving side (RFC 6733 §5.5.4 and §6.1.2 T bit): a request
//! is identified by (Origin-Host, End-to-End Identifier). A retransmission that arrives while
//! the original is being handled waits for its answer; one that arrives afterwards gets the
//! stored answer. Either way the handler runs once (faults.md I2, bad-inputs 38).
//!
//! The cache is bounded in entries, in time and in the bytes of the answers it keeps (they
//! are whole messages, up to the frame limit each), so a peer cannot grow it without limit.
//! Beyond either bound the oldest answers go first.
//!
//! Every request probes the table once to be registered and, once the cache is full, once
//! more to forget the oldest: two reads at random places of a table of 200,000 entries,
//! which the CPU's caches do not hold. So the table is kept small (16 bytes an entry): an
//! Origin-Host is a number while requests from it are remembered, and the waiters of the
//! rare duplicate that arrives while its original is in flight sit in a map of their own.

use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default byte budget of the answers kept: 200,000 answers (the node's default
/// capacity) of about 330 bytes each.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

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

/// A request inside the cache: its Origin-Host's number (see [`Hosts`]) in the high half,
/// its End-to-End Identifier in the low half.
type Slot = u64;

fn slot(host: u32, end_to_end: u32) -> Slot {
    (u64::from(host) << 32) | u64::from(end_to_end)
}

fn host_of(slot: Slot) -> u32 {
    (slot >> 32) as u32
}

/// The table's value for a request still being handled; any other value is the number of
/// the [`Ring`] record holding its answer.
const IN_FLIGHT: u64 = u64::MAX;

/// The Origin-Hosts that requests remembered came from, each with a number and a count of
/// those requests. A host goes when its last request does, so the map holds no more hosts
/// than the cache holds requests (a relay forwarding for very many clients cannot grow it).
/// Numbers are not reused: a key left in the expiry queue by a forgotten request can only
/// ever match a request of the same host.
#[derive(Default)]
struct Hosts {
    numbers: FxHashMap<Arc<str>, u32>,
    by_number: FxHashMap<u32, (Arc<str>, u32)>,
    next: u32,
}

impl Hosts {
    fn number(&self, host: &str) -> Option<u32> {
        self.numbers.get(host).copied()
    }

    /// The host's number, counting one more request from it.
    fn acquire(&mut self, host: &Arc<str>) -> u32 {
        let n = match self.numbers.get(&**host) {
            Some(n) => *n,
            None => {
                let n = self.next;
                self.next = self.next.wrapping_add(1);
                self.numbers.insert(host.clone(), n);
                self.by_number.insert(n, (host.clone(), 0));
                n
            }
        };
        if let Some((_, count)) = self.by_number.get_mut(&n) {
            *count += 1;
        }
        n
    }

    /// One request fewer from host `n`; the host goes with its last.
    fn release(&mut self, n: u32) {
        let Some((host, count)) = self.by_number.get_mut(&n) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            let host = host.clone();
            self.by_number.remove(&n);
            self.numbers.remove(&host);
        }
    }

    /// The string of a host with requests remembered, to share with a new key.
    fn shared(&self, host: &str) -> Option<Arc<str>> {
        self.numbers.get_key_value(host).map(|(h, _)| h.clone())
    }
}

/// An answer in the ring: its logical offset and length, its request, and whether that
/// request still owns it. A record stops being live when its entry goes (expired, evicted,
/// answered again): marking it costs no probe of the table, and the ring's front moves past
/// dead records without looking them up.
struct Record {
    at: u64,
    len: u32,
    live: bool,
    slot: Slot,
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
    /// The answers in the ring, oldest first; the front one is record number `first_seq`.
    records: VecDeque<Record>,
    first_seq: u64,
}

impl Ring {
    fn used(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Record number `seq`, if still in the ring.
    fn record(&mut self, seq: u64) -> Option<&mut Record> {
        let i = seq.checked_sub(self.first_seq)?;
        self.records.get_mut(usize::try_from(i).ok()?)
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
            first_seq: self.first_seq,
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
    /// Each request remembered: [`IN_FLIGHT`] or its answer's record number.
    entries: FxHashMap<Slot, u64>,
    /// Duplicates waiting for an original still in flight.
    waiting: FxHashMap<Slot, Vec<W>>,
    order: VecDeque<(Instant, Slot)>,
    hosts: Hosts,
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
            waiting: FxHashMap::default(),
            order: VecDeque::new(),
            hosts: Hosts::default(),
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
    /// the requests remembered from the same host.
    pub fn key(&mut self, origin_host: &str, end_to_end: u32) -> DupKey {
        let host = crate::identity_key(origin_host);
        let origin_host = self
            .hosts
            .shared(&host)
            .unwrap_or_else(|| host.as_ref().into());
        DupKey {
            origin_host,
            end_to_end,
        }
    }

    fn slot_of(&self, key: &DupKey) -> Option<Slot> {
        let n = self.hosts.number(&key.origin_host)?;
        Some(slot(n, key.end_to_end))
    }

    /// Registers a request. `waiter` is called, and what it returns kept, only when the
    /// original is still in flight.
    pub fn check(&mut self, key: DupKey, now: Instant, waiter: impl FnOnce() -> W) -> Seen {
        self.expire(now);
        if let Some(s) = self.slot_of(&key) {
            match self.entries.get(&s).copied() {
                Some(IN_FLIGHT) => {
                    self.waiting.entry(s).or_default().push(waiter());
                    return Seen::Waiting;
                }
                Some(seq) => {
                    if let Some(r) = self.ring.record(seq) {
                        let (at, len) = (r.at, r.len);
                        return Seen::Answered(self.ring.read(at, len));
                    }
                    // Not expected (a Done entry's record stays until the entry goes);
                    // were it to happen, the request is served rather than left waiting.
                    self.remove(s);
                }
                None => {}
            }
        }
        let s = slot(self.hosts.acquire(&key.origin_host), key.end_to_end);
        self.entries.insert(s, IN_FLIGHT);
        self.order.push_back((now, s));
        // A new entry makes room after it is in (the oldest goes, never the newest while
        // older ones are answered). Answers forgotten for bytes leave their keys in `order`
        // until they reach its front: past twice the capacity, the front goes too, so the
        // queue is bounded by the capacity and not by the request rate times the window.
        if self.entries.len() > self.capacity || self.order.len() > 2 * self.capacity {
            self.evict_oldest();
            self.trim();
        }
        Seen::New
    }

    /// Stores the answer to a request registered as [`Seen::New`] and returns the
    /// duplicates that waited for it.
    pub fn complete(&mut self, key: &DupKey, answer: Bytes) -> Vec<W> {
        let Some(s) = self.slot_of(key) else {
            return Vec::new();
        };
        let Some(value) = self.entries.get_mut(&s) else {
            return Vec::new();
        };
        let previous = std::mem::replace(value, IN_FLIGHT);
        let waiters = if previous == IN_FLIGHT {
            self.waiting.remove(&s).unwrap_or_default()
        } else {
            self.release(previous);
            Vec::new()
        };
        if answer.len() > self.max_bytes {
            // Larger than the whole budget: the older answers make way, as for any answer,
            // and this one is not kept.
            while self.evict_stored() {}
            self.remove(s);
            return waiters;
        }
        while self.ring.used() + answer.len() > self.max_bytes && self.evict_stored() {}
        self.ring
            .reserve(self.ring.used() + answer.len(), self.max_bytes);
        let at = self.ring.end;
        self.ring.write(&answer);
        let seq = self.ring.first_seq + self.ring.records.len() as u64;
        self.ring.records.push_back(Record {
            at,
            len: answer.len() as u32,
            live: true,
            slot: s,
        });
        self.bytes += answer.len();
        if let Some(value) = self.entries.get_mut(&s) {
            *value = seq;
        }
        waiters
    }

    /// Forgets a request whose handling failed without an answer, returning its waiters.
    pub fn abandon(&mut self, key: &DupKey) -> Vec<W> {
        self.slot_of(key)
            .and_then(|s| self.remove(s))
            .unwrap_or_default()
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

    /// Forgets a request: `None` if it was not remembered, else the duplicates waiting for
    /// it (none once answered).
    fn remove(&mut self, s: Slot) -> Option<Vec<W>> {
        let value = self.entries.remove(&s)?;
        self.hosts.release(host_of(s));
        if value == IN_FLIGHT {
            Some(self.waiting.remove(&s).unwrap_or_default())
        } else {
            self.release(value);
            Some(Vec::new())
        }
    }

    /// Marks answer record `seq` as no longer owned by its entry, its bytes free.
    fn release(&mut self, seq: u64) {
        if let Some(r) = self.ring.record(seq) {
            r.live = false;
            let len = r.len as usize;
            self.bytes -= len;
        }
    }

    /// Frees the ring's oldest answer (forgetting its request if that still owns it).
    /// Whether there was one.
    fn evict_stored(&mut self) -> bool {
        let Some(front) = self.ring.records.front() else {
            return false;
        };
        if front.live {
            // Forgotten the one way requests are: the record is marked dead, its bytes freed.
            let s = front.slot;
            self.remove(s);
        }
        if let Some(r) = self.ring.records.pop_front() {
            self.ring.first_seq += 1;
            self.ring.start = r.at + u64::from(r.len);
        }
        true
    }

    /// Moves the ring's start past the answers at its front whose entries are gone, so the
    /// ring holds no more than the answers kept need (plus the holes between them).
    fn trim(&mut self) {
        while self.ring.records.front().is_some_and(|r| !r.live) {
            self.evict_stored();
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut expired = false;
        while let Some((t, s)) = self.order.front().copied() {
            if now.duration_since(t) < self.window {
                break;
            }
            self.order.pop_front();
            // Entries still in flight stay: their handler will complete them.
            if self.entries.get(&s) == Some(&IN_FLIGHT) {
                self.order.push_back((now, s));
                break;
            }
            expired |= self.remove(s).is_some();
        }
        if expired {
            self.trim();
        }
    }

    /// Drops the oldest answered request. In-flight ones are kept while any answered one is
    /// left (their handlers will complete them); when none is, the oldest in-flight one goes.
    fn evict_oldest(&mut self) {
        let mut tries = self.order.len();
        while let Some((t, s)) = self.order.pop_front() {
            match self.entries.get(&s) {
                // Already forgotten (abandoned after a 3004): nothing to free here.
                None => continue,
                Some(&IN_FLIGHT) if tries > 0 => {
                    self.order.push_back((t, s));
                    tries -= 1;
                }
                Some(_) => {
                    self.remove(s);
                    return;
                }
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
    fn keys_share_the_host_string_and_hosts_go_with_their_last_request() {
        let t0 = Instant::now();
        let mut c: DupCache<()> = DupCache::new(Duration::from_secs(10), 10);
        let a = c.key("Client.Example", 1);
        assert_eq!(c.check(a.clone(), t0, || ()), Seen::New);
        let b = c.key("client.example", 2);
        assert!(Arc::ptr_eq(&a.origin_host, &b.origin_host));
        assert_eq!(&*a.origin_host, "client.example");
        // Many hosts, one request each: the cache keeps 10 requests and no more hosts.
        for i in 0..1000u32 {
            let k = c.key(&format!("h{i}.example"), 0);
            c.check(k.clone(), t0, || ());
            c.complete(&k, Bytes::from_static(b"a"));
        }
        assert_eq!(c.len(), 10);
        assert!(c.hosts.numbers.len() <= 11 && c.hosts.by_number.len() <= 11);
        // Expired, every host goes.
        c.complete(&a, Bytes::from_static(b"a"));
        c.check(
            DupKey::new("late.example", 3),
            t0 + Duration::from_secs(11),
            || (),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c.hosts.numbers.len(), 1);
        assert_eq!(&*c.key("late.example", 4).origin_host, "late.example");
    }
}

#[cfg(test)]
mod model {
    //! The cache against a plain model, through random sequences of requests, answers,
    //! abandons and clock steps: what it says of a request is always what the model allows,
    //! and its bounds and book-keeping hold after every step.
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Check(u8, u32),
        Complete(u8, u32, u16),
        Abandon(u8, u32),
        Wait(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4u8, 0..12u32).prop_map(|(h, e)| Op::Check(h, e)),
            4 => (0..4u8, 0..12u32, 0..400u16).prop_map(|(h, e, n)| Op::Complete(h, e, n)),
            1 => (0..4u8, 0..12u32).prop_map(|(h, e)| Op::Abandon(h, e)),
            1 => (0..6u8).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_the_model_and_keeps_its_bounds(ops in prop::collection::vec(op(), 1..300)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut c: DupCache<u32> =
                DupCache::new(Duration::from_secs(10), 8).with_max_bytes(1_000);
            // What the model knows: for each key, the answer last stored, if any.
            let mut answered: HashMap<(u8, u32), Bytes> = HashMap::new();
            for (i, op) in ops.into_iter().enumerate() {
                let key = |h: u8, e: u32| DupKey::new(&format!("Host{h}.example"), e);
                match op {
                    Op::Check(h, e) => match c.check(key(h, e), now, || i as u32) {
                        // A stored answer comes back as it was stored.
                        Seen::Answered(a) => prop_assert_eq!(Some(&a), answered.get(&(h, e))),
                        Seen::New => { answered.remove(&(h, e)); }
                        Seen::Waiting => {}
                    },
                    Op::Complete(h, e, n) => {
                        let answer = Bytes::from(vec![h; usize::from(n)]);
                        let before = c.len();
                        c.complete(&key(h, e), answer.clone());
                        prop_assert!(c.len() <= before);
                        if c.check(key(h, e), now, || 0) == Seen::New {
                            c.abandon(&key(h, e));
                        }
                        answered.insert((h, e), answer);
                    }
                    Op::Abandon(h, e) => { c.abandon(&key(h, e)); }
                    Op::Wait(s) => now += Duration::from_secs(u64::from(s)),
                }
                // Bounds: entries, bytes, the expiry queue, the ring.
                prop_assert!(c.len() <= 9, "{} entries", c.len());
                prop_assert!(c.bytes() <= 1_000 && c.ring.used() <= 1_000);
                prop_assert!(c.order.len() <= 17);
                // Book-keeping: the bytes are those of the live records, each live record
                // is its entry's answer, and the hosts are exactly those of the entries.
                let live: usize = c.ring.records.iter().filter(|r| r.live).map(|r| r.len as usize).sum();
                prop_assert_eq!(live, c.bytes());
                for (seq, r) in c.ring.records.iter().enumerate() {
                    if r.live {
                        prop_assert_eq!(c.entries.get(&r.slot), Some(&(c.ring.first_seq + seq as u64)));
                    }
                }
                let mut hosts: Vec<u32> = c.entries.keys().map(|s| host_of(*s)).collect();
                hosts.sort_unstable();
                hosts.dedup();
                prop_assert_eq!(hosts.len(), c.hosts.numbers.len());
                prop_assert_eq!(hosts.len(), c.hosts.by_number.len());
                prop_assert!(c.waiting.keys().all(|s| c.entries.get(s) == Some(&IN_FLIGHT)));
            }
        }
    }
}
