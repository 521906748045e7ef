//! Memory per binding and binding operations per second, on the in-memory index the
//! embedded stores share (the durable store adds one redb write per change, group
//! committed). Not a CI test:
//!
//! ```text
//! cargo bench -p dra --bench bindings            # 10^6 bindings
//! cargo bench -p dra --bench bindings -- 100000  # another count
//! ```
//!
//! Each binding is one IP-CAN session as a PCEF and an AF make it: IMSI, IPv4 address,
//! APN, a Gx session and an Rx session with Session-Ids of realistic length.

use dra::binding::{
    BindRequest, BoundSession, Index, Interface, MatchBy, Mode, SessionState, UeKey,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::net::Ipv4Addr;
use std::time::Instant;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn session(id: String, i: Interface, client: &str) -> BoundSession {
    BoundSession {
        session_id: id,
        interface: i,
        client: client.to_string(),
        mode: Mode::Proxy,
        state: SessionState::Active,
        since_ms: 1,
    }
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let region = Region::new(GLOBAL);
    let mut ix = Index::new();
    let t = Instant::now();
    for i in 0..n {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        ix.bind(BindRequest {
            key: UeKey {
                ue: Some(format!("imsi:00101{i:010}")),
                ipv4: Some(ip),
                ipv6: None,
                apn: Some("internet".into()),
            },
            by: MatchBy::IpCanSession,
            pcrf: "pcrf.home.test".into(),
            session: session(
                format!("pgw1.epc.test;1733200000;{i:010}"),
                Interface::Gx,
                "pgw1.epc.test",
            ),
            now_ms: 1,
        });
    }
    let bind = t.elapsed();
    let t = Instant::now();
    for i in 0..n {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        let key = dra::binding::key_of_address(ip.into());
        let id = ix.find_by_address(&key).expect("bound").id.clone();
        ix.attach(
            &id,
            session(
                format!("pcscf.ims.test;1733200000;{i:010}"),
                Interface::Rx,
                "pcscf.ims.test",
            ),
            2,
        );
    }
    let attach = t.elapsed();
    let c = region.change();
    let held = c.bytes_allocated as i64 - c.bytes_deallocated as i64 + c.bytes_reallocated as i64;
    println!(
        "{n} bindings (Gx + Rx each): {:.0} bytes per binding held, bind {:.0}/s, Rx attach by address {:.0}/s",
        held as f64 / f64::from(n),
        f64::from(n) / bind.as_secs_f64(),
        f64::from(n) / attach.as_secs_f64(),
    );
    let t = Instant::now();
    for i in 0..n {
        ix.terminate(
            &[
                format!("pgw1.epc.test;1733200000;{i:010}"),
                format!("pcscf.ims.test;1733200000;{i:010}"),
            ],
            3,
        );
    }
    let term = t.elapsed();
    assert_eq!(ix.stats().bindings, 0);
    println!(
        "terminations (Gx and Rx of each, entry deleted): {:.0} entries/s",
        f64::from(n) / term.as_secs_f64()
    );
}
