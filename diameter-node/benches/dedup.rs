//! The duplicate cache on a server's request path: a new request registered and answered
//! while the cache is full (every request then also evicts the oldest), as at 100k+ requests
//! per second with the default 200,000 entries.
//!
//! ```text
//! cargo bench -p diameter-node --bench dedup
//! ```

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use diameter_node::dedup::{DupCache, Seen};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CAPACITY: usize = 200_000;

fn full_cache() -> (DupCache<()>, u32) {
    let mut c = DupCache::new(Duration::from_secs(60), CAPACITY);
    let answer = Bytes::from(vec![0u8; 120]);
    let now = Instant::now();
    let mut e2e = 0u32;
    for _ in 0..CAPACITY {
        let k = c.key("pcef1.example.net", e2e);
        c.check(k.clone(), now, || ());
        c.complete(&k, answer.clone());
        e2e = e2e.wrapping_add(1);
    }
    (c, e2e)
}

fn bench(cr: &mut Criterion) {
    let (mut c, mut e2e) = full_cache();
    let answer = Bytes::from(vec![0u8; 120]);
    let now = Instant::now();
    cr.bench_function("dedup/new request, answered, cache full", |b| {
        b.iter(|| {
            let k = c.key(black_box("pcef1.example.net"), e2e);
            let seen = c.check(k.clone(), now, || ());
            debug_assert_eq!(seen, Seen::New);
            black_box(c.complete(&k, answer.clone()));
            e2e = e2e.wrapping_add(1);
        })
    });
    cr.bench_function("dedup/retransmission of an answered request", |b| {
        b.iter(|| {
            let k = c.key(black_box("pcef1.example.net"), e2e.wrapping_sub(1000));
            black_box(c.check(k, now, || ()))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
