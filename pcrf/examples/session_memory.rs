//! Bytes the in-memory Gx session store holds per live session, counted by the allocator:
//! sessions established from the demo SPR the way the server's CCR-I does it (the
//! `pcef-sim load --app gx` mix: subscribers 1 and 2 alternately, one Framed-IP-Address
//! each), then put in [`MemorySessions`]. Prints the allocator's live bytes and blocks per
//! session and the sizes of the types involved.
//!
//! `cargo run --release -p pcrf --example session_memory -- [SESSIONS]`

use pcrf::config::Config;
use pcrf::policy::{self, Requested};
use pcrf::session::{GxSession, MemorySessions, SessionStore};
use pcrf::spr::{MemorySpr, SubscriberKey, SubscriberStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("SESSIONS"));
    let cfg = Config::demo();
    let spr = MemorySpr::new(&cfg.spr_data);
    let subs = [
        spr.subscriber(vec![SubscriberKey::parse("001010000000001")])
            .await
            .unwrap()
            .unwrap(),
        spr.subscriber(vec![SubscriberKey::parse("001010000000002")])
            .await
            .unwrap()
            .unwrap(),
    ];
    let store = MemorySessions::new();
    let region = Region::new(GLOBAL);
    for i in 0..n {
        let sub = &subs[(i % 2) as usize];
        let key = sub.profile.keys()[0].as_key();
        let d = policy::establish(sub, &key, &cfg.pcrf, &cfg.policies, Requested::default());
        let mut s = GxSession::new(
            format!("pcef-sim.test;{};{}", 1_700_000_000 + i / 65536, i),
            "pcef-sim.test".into(),
            "test".into(),
            key,
        );
        s.ue_ip = Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
        s.apn = Some("internet".into());
        s.rat_type = Some(1004);
        s.user_location = Some("8200f110000100f1100000000a".into());
        s.last_request_number = 0;
        d.apply(&mut s);
        store.put(s).await.unwrap();
    }
    let c = region.change();
    let bytes = c.bytes_allocated as f64 - c.bytes_deallocated as f64 + c.bytes_reallocated as f64;
    let blocks = c.allocations as f64 - c.deallocations as f64;
    println!(
        "{n} sessions: {:.0} B in {:.2} blocks per session (allocator's count, before malloc overhead)",
        bytes / f64::from(n),
        blocks / f64::from(n)
    );
    println!(
        "size_of: GxSession {} B, RuleDef {} B",
        size_of::<GxSession>(),
        size_of::<pcrf::spr::RuleDef>()
    );
}
