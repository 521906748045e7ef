//! Session-Id values (RFC 6733 §8.8).
//!
//! RFC 6733 §8.8: `<DiameterIdentity>;<high 32 bits>;<low 32 bits>[;<optional value>]`, where
//! the two numbers are "the high and low 32 bits of a monotonically increasing 64-bit value";
//! "at startup, the high 32 bits of the 64-bit value MAY be initialized to the time in NTP
//! format, and the low 32 bits MAY be initialized to zero", which keeps the values of one run
//! apart from those of the runs before it as long as a restart takes more than a second.
//!
//! The crate has no clock: the caller passes the start time ([`SessionIdGenerator::new`] takes
//! seconds since the Unix epoch and converts them to NTP seconds).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Makes Session-Id values for one Diameter identity. Shared between tasks by reference:
/// each call takes the next value of one atomic 64-bit counter.
#[derive(Debug)]
pub struct SessionIdGenerator {
    identity: String,
    /// The 64-bit value of §8.8: high half the start time, low half the count since. When the
    /// low half wraps, the carry bumps the high half, so values never repeat within a run.
    next: AtomicU64,
}

impl SessionIdGenerator {
    /// A generator for `identity` (our Origin-Host) started at `unix_secs` seconds since the
    /// Unix epoch: the high 32 bits are that time in NTP seconds (RFC 6733 §8.8), the low 32
    /// bits start at zero.
    pub fn new(identity: impl Into<String>, unix_secs: u64) -> Self {
        let high = (unix_secs + NTP_UNIX_OFFSET) as u32; // NTP seconds wrap in 2036 (RFC 5905)
        Self::with_value(identity, u64::from(high) << 32)
    }

    /// A generator whose next value is `value` (for a value kept in non-volatile memory, the
    /// alternative RFC 6733 §8.8 allows, and for tests).
    pub fn with_value(identity: impl Into<String>, value: u64) -> Self {
        Self {
            identity: identity.into(),
            next: AtomicU64::new(value),
        }
    }

    /// The identity the values start with.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The next Session-Id: `<identity>;<high>;<low>`.
    pub fn next_id(&self) -> String {
        self.make(None)
    }

    /// The next Session-Id with an optional part: `<identity>;<high>;<low>;<optional>`
    /// (implementation specific, RFC 6733 §8.8; a server may put a subscriber or bearer
    /// reference there).
    pub fn next_with(&self, optional: &str) -> String {
        self.make(Some(optional))
    }

    fn make(&self, optional: Option<&str>) -> String {
        let v = self.next.fetch_add(1, Ordering::Relaxed);
        let mut s = String::with_capacity(self.identity.len() + 24 + optional.map_or(0, str::len));
        // Writing into a String cannot fail.
        let _ = write!(s, "{};{};{}", self.identity, v >> 32, v as u32);
        if let Some(o) = optional {
            s.push(';');
            s.push_str(o);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn parts(s: &str) -> Vec<&str> {
        s.split(';').collect()
    }

    #[test]
    fn format_is_identity_high_low() {
        // 2026-01-01T00:00:00Z is 1767225600 Unix seconds, 3976214400 NTP seconds.
        let g = SessionIdGenerator::new("pcef.example.net", 1_767_225_600);
        assert_eq!(g.next_id(), "pcef.example.net;3976214400;0");
        assert_eq!(g.next_id(), "pcef.example.net;3976214400;1");
        let id = g.next_with("bearer=5");
        assert_eq!(
            parts(&id),
            ["pcef.example.net", "3976214400", "2", "bearer=5"]
        );
        assert_eq!(g.identity(), "pcef.example.net");
    }

    #[test]
    fn low_half_wrapping_bumps_the_high_half() {
        let g = SessionIdGenerator::with_value("h", (7u64 << 32) | 0xffff_fffe);
        assert_eq!(g.next_id(), "h;7;4294967294");
        assert_eq!(g.next_id(), "h;7;4294967295");
        assert_eq!(g.next_id(), "h;8;0");
    }

    #[test]
    fn unique_across_calls_threads_and_restarts() {
        let g = std::sync::Arc::new(SessionIdGenerator::new("h.example", 1_800_000_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || (0..10_000).map(|_| g.next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(seen.insert(id.clone()), "{id} issued twice");
            }
        }
        assert_eq!(seen.len(), 40_000);
        // The same node restarted one second later: none of its values were issued before,
        // even though the first run issued 40 000 of them.
        let restarted = SessionIdGenerator::new("h.example", 1_800_000_001);
        for _ in 0..40_000 {
            let id = restarted.next_id();
            assert!(!seen.contains(&id), "{id} repeats the previous run");
        }
        // The 64-bit value increases from run to run.
        let high = |s: &str| parts(s)[1].parse::<u64>().unwrap();
        assert_eq!(high(&restarted.next_id()), high(&g.next_id()) + 1);
    }
}
