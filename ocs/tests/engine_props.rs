//! Properties of the pure decision (ocs::engine::decide) over random request sequences:
//! balances always add up, and a request applied twice changes nothing the second time.

use ocs::config::Config;
use ocs::engine::{Policy, SessionWrite, decide};
use ocs::model::{
    Account, Balance, CcAnswer, CcRequest, MsccRequest, RequestType, ServiceKey, Session, UnitKind,
    Units,
};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Op {
    /// CCR-I for session i.
    Initial(usize),
    /// CCR-U for session i reporting this share (0..=100 %) of its last grant.
    Update(usize, u8),
    /// CCR-T for session i, likewise.
    Terminate(usize, u8),
    /// The k-th request sent so far, again (a retransmission).
    Replay(usize),
    /// Tcc passes for session i: the sweep releases it.
    Expire(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::Initial),
        (0..3usize, 0..=100u8).prop_map(|(s, f)| Op::Update(s, f)),
        (0..3usize, 0..=100u8).prop_map(|(s, f)| Op::Terminate(s, f)),
        (0..64usize).prop_map(Op::Replay),
        (0..3usize).prop_map(Op::Expire),
    ]
}

/// A store in memory doing what every store does around `decide`.
struct Sim {
    policy: Policy,
    account: Account,
    sessions: HashMap<String, Session>,
    answers: HashMap<(String, u32), CcAnswer>,
}

impl Sim {
    fn apply(&mut self, req: &CcRequest) -> CcAnswer {
        if let Some(a) = self
            .answers
            .get(&(req.session_id.clone(), req.request_number))
        {
            return a.clone();
        }
        let s = self.sessions.get(&req.session_id).cloned();
        let d = decide(&self.policy, req, s.as_ref(), Some(&self.account), 0);
        if d.keeps_answer() {
            match &d.session {
                SessionWrite::Put(n) => {
                    self.sessions.insert(n.id.clone(), n.clone());
                }
                SessionWrite::Delete => {
                    self.sessions.remove(&req.session_id);
                }
                SessionWrite::Keep => {}
            }
            if let Some(a) = d.account {
                self.account = a;
            }
            self.answers.insert(
                (req.session_id.clone(), req.request_number),
                d.answer.clone(),
            );
        }
        d.answer
    }

    fn expire(&mut self, id: &str) {
        if let Some(s) = self.sessions.remove(id) {
            for r in s.reservations {
                let b = self.account.balances.entry(r.kind).or_default();
                b.reserved -= r.amount;
                b.available += r.amount as i64;
            }
        }
    }

    fn octets(&self) -> Balance {
        self.account.balances[&UnitKind::TotalOctets]
    }
}

fn ccr(id: &str, t: RequestType, n: u32, used: Option<u64>) -> CcRequest {
    CcRequest {
        session_id: id.to_string(),
        origin_host: "pcef".into(),
        origin_realm: "visited".into(),
        request_type: t,
        request_number: n,
        subscriptions: Vec::new(),
        requested_action: None,
        mscc: vec![MsccRequest {
            service: ServiceKey {
                rating_group: Some(1),
                service_id: None,
            },
            requested: (t != RequestType::Termination).then(Units::default),
            used: used.map(|u| Units::of(UnitKind::TotalOctets, u)),
        }],
        single: None,
        visited: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn balances_add_up_and_retransmissions_change_nothing(
        initial in 0i64..5_000_000,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut account = Account { id: "a".into(), ..Account::default() };
        account.balances.insert(UnitKind::TotalOctets, Balance { available: initial, reserved: 0 });
        let mut sim = Sim {
            policy: Policy::from_config(&Config::demo()),
            account,
            sessions: HashMap::new(),
            answers: HashMap::new(),
        };
        // Per session slot: its current Session-Id, next request number, last grant.
        let mut generation = [0u32; 3];
        let mut next = [0u32; 3];
        let mut grant = [0u64; 3];
        let mut sent: Vec<CcRequest> = Vec::new();
        let mut used_total: i64 = 0;
        for op in ops {
            let id = |i: usize, g: &[u32; 3]| format!("s{i};{}", g[i]);
            match op {
                Op::Initial(i) => {
                    generation[i] += 1;
                    next[i] = 1;
                    let r = ccr(&id(i, &generation), RequestType::Initial, 0, None);
                    let a = sim.apply(&r);
                    grant[i] = a.mscc.first().and_then(|m| m.granted).and_then(|g| g.total_octets).unwrap_or(0);
                    sent.push(r);
                }
                Op::Update(i, f) | Op::Terminate(i, f) => {
                    let t = if matches!(op, Op::Update(..)) { RequestType::Update } else { RequestType::Termination };
                    let used = grant[i] * u64::from(f) / 100;
                    let sid = id(i, &generation);
                    let live = sim.sessions.contains_key(&sid);
                    let r = ccr(&sid, t, next[i], Some(used));
                    next[i] += 1;
                    let a = sim.apply(&r);
                    if live {
                        used_total += used as i64;
                        prop_assert_ne!(a.result_code, 5002);
                    } else {
                        prop_assert_eq!(a.result_code, 5002);
                    }
                    grant[i] = a.mscc.first().and_then(|m| m.granted).and_then(|g| g.total_octets).unwrap_or(0);
                    sent.push(r);
                }
                Op::Replay(k) => {
                    if let Some(r) = sent.get(k).cloned() {
                        let before = (sim.account.clone(), sim.sessions.clone());
                        let stored = sim.answers.get(&(r.session_id.clone(), r.request_number)).cloned();
                        let a = sim.apply(&r);
                        if let Some(s) = stored {
                            prop_assert_eq!(a, s);
                        }
                        // A request handled before changes nothing the second time.
                        prop_assert_eq!(&before.0, &sim.account);
                        prop_assert_eq!(&before.1, &sim.sessions);
                    }
                }
                Op::Expire(i) => sim.expire(&id(i, &generation)),
            }
            let b = sim.octets();
            let held: u64 = sim.sessions.values().flat_map(|s| &s.reservations).map(|r| r.amount).sum();
            prop_assert_eq!(b.reserved, held, "reserved = the sessions' reservations");
            prop_assert_eq!(b.total(), initial - used_total, "balance = initial - usage");
            prop_assert!(b.available >= 0, "usage within grants never overdraws");
        }
        // Every session gone: nothing stays reserved.
        let ids: Vec<String> = sim.sessions.keys().cloned().collect();
        for id in ids {
            sim.expire(&id);
        }
        prop_assert_eq!(sim.octets(), Balance { available: initial - used_total, reserved: 0 });
    }
}
