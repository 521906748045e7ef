//! PCRF selection for new bindings: among the PCRFs that are healthy (their connection
//! open, watchdog OKAY, and not reported down by a peer event since), by consistent hash of
//! the UE identity or by least load.

use crate::config::{PcrfToml, Selection};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// One PCRF and what the DRA measures of it.
#[derive(Debug)]
pub struct Pcrf {
    /// Diameter identity.
    pub host: String,
    /// Redirect-Host value.
    pub uri: String,
    /// Consistent-hash weight.
    pub weight: u32,
    /// Reported down by a peer event and not up since.
    down: AtomicBool,
    /// Requests forwarded and not yet answered.
    pending: AtomicU64,
    /// Answer latency, exponentially weighted (µs; 0 until measured).
    latency_us: AtomicU64,
}

impl Pcrf {
    fn new(t: &PcrfToml) -> Self {
        let uri = t.redirect_uri.clone().unwrap_or_else(|| match t.connect {
            Some(a) => format!("aaa://{}:{};transport=tcp", t.host, a.port()),
            None => format!("aaa://{}", t.host),
        });
        Self {
            host: t.host.clone(),
            uri,
            weight: t.weight.max(1),
            down: AtomicBool::new(false),
            pending: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    /// Requests pending.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Measured latency (µs).
    pub fn latency_us(&self) -> u64 {
        self.latency_us.load(Ordering::Relaxed)
    }

    /// Whether a peer event took it out of selection.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

/// Counts a forwarded request until it is answered or fails (dropped with the proxy's
/// answer edit), and measures its latency when answered.
pub struct InFlight {
    pcrf: Arc<Pcrf>,
    sent: Instant,
}

impl InFlight {
    /// The answer came: latency into the average (weight 1/8).
    pub fn answered(&self) {
        let us = self.sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.pcrf.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { old - old / 8 + us / 8 };
        self.pcrf.latency_us.store(new, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pcrf.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The PCRFs of a DRA.
pub struct Pcrfs {
    list: Vec<Arc<Pcrf>>,
    policy: Selection,
}

/// FNV-1a, 64 bits: stable across builds and processes, so every DRA (and a restarted
/// one) hashes a UE to the same PCRF.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // A final mix, so that keys differing in their last byte spread over all bits.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl Pcrfs {
    /// From the configuration.
    pub fn new(list: &[PcrfToml], policy: Selection) -> Self {
        Self {
            list: list.iter().map(|t| Arc::new(Pcrf::new(t))).collect(),
            policy,
        }
    }

    /// Every PCRF.
    pub fn all(&self) -> &[Arc<Pcrf>] {
        &self.list
    }

    /// The PCRF of this identity.
    pub fn get(&self, host: &str) -> Option<&Arc<Pcrf>> {
        self.list.iter().find(|p| p.host.eq_ignore_ascii_case(host))
    }

    /// Whether `host` is one of the PCRFs.
    pub fn contains(&self, host: &str) -> bool {
        self.get(host).is_some()
    }

    /// A peer event: down takes it out of selection, up puts it back.
    pub fn set_down(&self, host: &str, down: bool) -> bool {
        match self.get(host) {
            Some(p) => {
                p.down.store(down, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Chooses a PCRF for a new binding of `ue` among those `open` says are reachable and
    /// no event took down; `bindings(host)` counts a PCRF's bindings (least-loaded's last
    /// tie-break). `None` when none is healthy.
    pub fn select(
        &self,
        ue: &str,
        open: impl Fn(&str) -> bool,
        bindings: impl Fn(&str) -> usize,
    ) -> Option<Arc<Pcrf>> {
        let healthy = self.list.iter().filter(|p| !p.is_down() && open(&p.host));
        match self.policy {
            Selection::ConsistentHash => healthy
                .max_by(|a, b| {
                    let score = |p: &Pcrf| {
                        // Weighted rendezvous hashing: -w / ln(h) with h uniform in (0, 1).
                        let h = fnv1a(&[p.host.to_ascii_lowercase().as_bytes(), ue.as_bytes()]);
                        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                        -f64::from(p.weight) / u.ln()
                    };
                    score(a).total_cmp(&score(b))
                })
                .cloned(),
            Selection::LeastLoaded => healthy
                .min_by_key(|p| {
                    (
                        p.pending(),
                        p.latency_us(),
                        bindings(&p.host),
                        p.host.clone(),
                    )
                })
                .cloned(),
        }
    }

    /// Counts a request forwarded to `pcrf`.
    pub fn in_flight(&self, pcrf: &str) -> Option<InFlight> {
        let p = self.get(pcrf)?.clone();
        p.pending.fetch_add(1, Ordering::Relaxed);
        Some(InFlight {
            pcrf: p,
            sent: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcrfs(n: usize, policy: Selection) -> Pcrfs {
        let list: Vec<PcrfToml> = (0..n)
            .map(|i| PcrfToml {
                host: format!("pcrf{i}.test"),
                connect: Some(format!("127.0.0.1:{}", 4000 + i).parse().unwrap()),
                weight: 1,
                redirect_uri: None,
            })
            .collect();
        Pcrfs::new(&list, policy)
    }

    #[test]
    fn consistent_hash_is_stable_and_moves_only_the_lost_pcrfs_ues() {
        let p = pcrfs(3, Selection::ConsistentHash);
        assert_eq!(p.all()[1].uri, "aaa://pcrf1.test:4001;transport=tcp");
        let ues: Vec<String> = (0..300).map(|i| format!("imsi:00101{i:010}")).collect();
        let before: Vec<String> = ues
            .iter()
            .map(|u| p.select(u, |_| true, |_| 0).unwrap().host.clone())
            .collect();
        for i in 0..3 {
            let n = before
                .iter()
                .filter(|h| **h == format!("pcrf{i}.test"))
                .count();
            assert!((60..=140).contains(&n), "pcrf{i} got {n} of 300");
        }
        p.set_down("pcrf1.test", true);
        for (u, b) in ues.iter().zip(&before) {
            let now = p.select(u, |_| true, |_| 0).unwrap().host.clone();
            assert_ne!(now, "pcrf1.test");
            if b != "pcrf1.test" {
                assert_eq!(&now, b, "{u} moved though its PCRF stayed");
            }
        }
        assert!(p.select("x", |_| false, |_| 0).is_none());
    }

    #[test]
    fn least_loaded_prefers_fewer_pending_then_lower_latency() {
        let p = pcrfs(2, Selection::LeastLoaded);
        let a = p.in_flight("pcrf0.test").unwrap();
        assert_eq!(p.select("u", |_| true, |_| 0).unwrap().host, "pcrf1.test");
        let b = p.in_flight("pcrf1.test").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        b.answered();
        drop(b);
        a.answered();
        drop(a);
        assert_eq!(p.all()[0].pending(), 0);
        // pcrf0 answered later: slower.
        assert_eq!(p.select("u", |_| true, |_| 0).unwrap().host, "pcrf1.test");
    }
}
