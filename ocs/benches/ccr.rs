//! The OCS's CPU per CCR-U outside the store: reading the CCR, the decision, and building
//! the CCA — what a store's transaction wraps and the network around it.
//!
//! ```text
//! cargo bench -p ocs --bench ccr
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use diameter_codec::{LocalIdentity, MessageBuilder, ResultCode};
use ocs::config::Config;
use ocs::engine::{Policy, SessionWrite, decide};
use ocs::gy::{CcrSpec, encode_cca, parse_ccr};
use ocs::model::{
    Account, Balance, RequestType, ServiceKey, Session, SubscriptionId, SubscriptionType, UnitKind,
    Units,
};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let policy = Policy::from_config(&Config::demo());
    let sub = SubscriptionId {
        kind: SubscriptionType::Imsi,
        data: "001010000000001".into(),
    };
    let mut account = Account {
        id: "demo-1".into(),
        subscriptions: vec![sub.clone()],
        ..Account::default()
    };
    account.balances.insert(
        UnitKind::TotalOctets,
        Balance {
            available: 1 << 50,
            reserved: 0,
        },
    );
    let spec = |t, n, used: Option<u64>| {
        CcrSpec {
            session_id: "pcef.visited.test;1;bench",
            origin_host: "pcef.visited.test",
            origin_realm: "visited.test",
            destination_realm: "home.test",
            request_type: t,
            request_number: n,
            subscription: Some(&sub),
            mscc: vec![(
                ServiceKey {
                    rating_group: Some(1),
                    service_id: None,
                },
                Some(Units::default()),
                used.map(|u| Units::of(UnitKind::TotalOctets, u)),
            )],
        }
        .build()
        .ids(1, 1)
        .build()
        .unwrap()
    };
    let i = parse_ccr(&spec(RequestType::Initial, 0, None)).unwrap();
    let d = decide(&policy, &i, None, Some(&account), 0);
    let SessionWrite::Put(session) = d.session else {
        panic!("CCR-I refused")
    };
    let account = d.account.unwrap();
    let ccr_u = spec(RequestType::Update, 1, Some(500_000));
    let me = LocalIdentity::new("ocs.home.test", "home.test");

    c.bench_function("parse CCR-U", |b| {
        b.iter(|| parse_ccr(black_box(&ccr_u)).unwrap())
    });
    let req = parse_ccr(&ccr_u).unwrap();
    c.bench_function("decide CCR-U", |b| {
        b.iter(|| {
            decide(
                black_box(&policy),
                black_box(&req),
                Some(black_box::<&Session>(&session)),
                Some(&account),
                1,
            )
        })
    });
    let answer = decide(&policy, &req, Some(&session), Some(&account), 1).answer;
    c.bench_function("encode CCA-U", |b| {
        b.iter(|| {
            let mut base = MessageBuilder::answer_to(black_box(&ccr_u), &me);
            base.result_code(ResultCode(answer.result_code));
            encode_cca(base, black_box(&answer)).to_bytes()
        })
    });
    c.bench_function("session and account records (postcard round trip)", |b| {
        b.iter(|| {
            let s = postcard::to_stdvec(black_box(&session)).unwrap();
            let a = postcard::to_stdvec(black_box(&account)).unwrap();
            let s: Session = postcard::from_bytes(&s).unwrap();
            let a: Account = postcard::from_bytes(&a).unwrap();
            (s, a)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
