//! The credit-control decision: a pure function of (policy, session, account, request, now)
//! to (answer, new session, new account). No I/O and no clock of its own, so every store
//! runs it inside its own transaction, a visited OCS can run it on its own state, and tests
//! and benchmarks call it directly.
//!
//! Rules (RFC 4006 as updated by RFC 8506; TS 32.299 for the 3GPP members):
//! - §5.2–§5.4: INITIAL opens the session; UPDATE reports Used-Service-Unit and gets a new
//!   grant; TERMINATION reports the last usage and releases what is left; EVENT (§6.3
//!   Direct Debiting) debits at once and keeps no session.
//! - Each Multiple-Services-Credit-Control closes the previous reservation of its service:
//!   the reservation is released, the reported usage debited, and a new grant reserved.
//! - Only an MSCC with Requested-Service-Unit gets a grant (§5.2: the RSU is there "to
//!   indicate that the quota ... is requested"); one without it only reports. A grant is
//!   the rating group's configured size, or what the RSU asks up to `max_grant`, capped by
//!   what the balance buys; a grant that takes the whole remaining balance carries
//!   Final-Unit-Indication (§5.6) with the group's action.
//! - Nothing left: the MSCC gets 4012 DIAMETER_CREDIT_LIMIT_REACHED (§9.1); with a REDIRECT
//!   or RESTRICT_ACCESS action it also carries the Final-Unit-Indication, so the client
//!   applies it at once (the graceful service termination of TS 32.299).
//! - Command-level Result-Code: 2001 when any service was granted or given a final-unit
//!   redirection; otherwise the services' common failure code.

use crate::config::{Config, FinalAction, RatingGroup};
use crate::model::{
    Account, Balance, CcAnswer, CcRequest, FinalUnit, MsccAnswer, MsccRequest, NumberCheck,
    RequestType, Reservation, Session, UnitKind, Units, UnixMillis,
};
use std::collections::HashMap;

/// RFC 6733 / RFC 4006 result codes the decision uses.
pub mod rc {
    /// DIAMETER_SUCCESS.
    pub const SUCCESS: u32 = 2001;
    /// DIAMETER_UNKNOWN_SESSION_ID (RFC 6733 §7.1.4).
    pub const UNKNOWN_SESSION_ID: u32 = 5002;
    /// DIAMETER_UNABLE_TO_COMPLY.
    pub const UNABLE_TO_COMPLY: u32 = 5012;
    /// DIAMETER_END_USER_SERVICE_DENIED (RFC 4006 §9.1).
    pub const END_USER_SERVICE_DENIED: u32 = 4010;
    /// DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE.
    pub const CREDIT_CONTROL_NOT_APPLICABLE: u32 = 4011;
    /// DIAMETER_CREDIT_LIMIT_REACHED.
    pub const CREDIT_LIMIT_REACHED: u32 = 4012;
    /// DIAMETER_USER_UNKNOWN (RFC 4006 §9.2).
    pub const USER_UNKNOWN: u32 = 5030;
    /// DIAMETER_RATING_FAILED (RFC 4006 §9.2).
    pub const RATING_FAILED: u32 = 5031;
}

/// What the decision needs from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Rating groups by Rating-Group.
    pub rating_groups: HashMap<u32, RatingGroup>,
    /// Rating-Group by Service-Identifier, for MSCCs that name no Rating-Group.
    pub by_service: HashMap<u32, u32>,
    /// Tcc, milliseconds.
    pub tcc_ms: u64,
    /// How long answers are kept, milliseconds.
    pub answer_retention_ms: u64,
    /// The rating group of single-service requests (no MSCC).
    pub single_service_rating_group: Option<u32>,
    /// Credit-Control-Failure-Handling for answers to INITIAL.
    pub failure_handling: Option<i32>,
}

impl Policy {
    /// From the configuration.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            rating_groups: cfg
                .rating_groups
                .iter()
                .map(|r| (r.id, r.clone()))
                .collect(),
            by_service: cfg
                .rating_groups
                .iter()
                .flat_map(|r| r.service_identifiers.iter().map(|si| (*si, r.id)))
                .collect(),
            tcc_ms: (cfg.ocs.tcc * 1000.0) as u64,
            answer_retention_ms: (cfg.ocs.answer_retention * 1000.0) as u64,
            single_service_rating_group: cfg.ocs.single_service_rating_group,
            failure_handling: cfg.ocs.failure_handling.map(|f| f.code()),
        }
    }
}

/// What happens to the session record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionWrite {
    /// Unchanged.
    Keep,
    /// Written (created or updated).
    Put(Session),
    /// Removed (terminated).
    Delete,
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The answer.
    pub answer: CcAnswer,
    /// The session change.
    pub session: SessionWrite,
    /// The account as it is after the request, when it changed.
    pub account: Option<Account>,
}

impl Decision {
    fn refuse(req: &CcRequest, code: u32, why: Option<&str>) -> Self {
        let mut answer = CcAnswer::bare(req, code);
        answer.error_message = why.map(str::to_string);
        Self {
            answer,
            session: SessionWrite::Keep,
            account: None,
        }
    }

    /// Whether anything is to be written.
    pub fn changes_state(&self) -> bool {
        self.session != SessionWrite::Keep || self.account.is_some()
    }

    /// Whether the answer is kept for retransmissions: when the request changed state, and
    /// always for INITIAL and EVENT, whose outcome depends on a balance that moves — a copy
    /// of a refused CCR-I arriving after a top-up must not open a session its client
    /// already gave up (a duplicate gets the answer the original got). Refusals of
    /// UPDATE and TERMINATION (5002, 5012) come out the same every time and are not kept.
    pub fn keeps_answer(&self) -> bool {
        self.changes_state()
            || matches!(
                self.answer.request_type,
                RequestType::Initial | RequestType::Event
            )
    }
}

/// Decides one request that is not a retransmission of a stored answer. `session` is the
/// live session of the request's Session-Id; `account` the account of the session (or, with
/// no session, of the request's Subscription-Id).
pub fn decide(
    policy: &Policy,
    req: &CcRequest,
    session: Option<&Session>,
    account: Option<&Account>,
    now: UnixMillis,
) -> Decision {
    // RFC 4006 §5.2: without Multiple-Services-Credit-Control the units are at command
    // level; they are rated as one service of the configured rating group, and the answer's
    // units go back at command level.
    if req.mscc.is_empty()
        && let Some(single) = &req.single
    {
        let mut as_mscc = req.clone();
        as_mscc.single = None;
        let mut svc = single.clone();
        svc.service.rating_group = policy.single_service_rating_group;
        as_mscc.mscc = vec![svc];
        let mut d = decide_services(policy, &as_mscc, session, account, now);
        if let Some(m) = d.answer.mscc.pop() {
            if req.request_type != RequestType::Termination {
                d.answer.result_code = m.result_code;
            }
            d.answer.single = Some(m);
        }
        return d;
    }
    decide_services(policy, req, session, account, now)
}

fn decide_services(
    policy: &Policy,
    req: &CcRequest,
    session: Option<&Session>,
    account: Option<&Account>,
    now: UnixMillis,
) -> Decision {
    match req.request_type {
        RequestType::Initial => initial(policy, req, session, account, now),
        RequestType::Update | RequestType::Termination => {
            update(policy, req, session, account, now)
        }
        RequestType::Event => event(policy, req, account),
    }
}

fn initial(
    policy: &Policy,
    req: &CcRequest,
    session: Option<&Session>,
    account: Option<&Account>,
    now: UnixMillis,
) -> Decision {
    if session.is_some() {
        // A second INITIAL for a live session whose first answer is no longer stored.
        return Decision::refuse(
            req,
            rc::UNABLE_TO_COMPLY,
            Some("CCR-I for a session already open"),
        );
    }
    let Some(account) = account else {
        return Decision::refuse(req, rc::USER_UNKNOWN, None);
    };
    if account.barred {
        return Decision::refuse(req, rc::END_USER_SERVICE_DENIED, None);
    }
    let mut s = Session {
        id: req.session_id.clone(),
        account: account.id.clone(),
        origin_host: req.origin_host.clone(),
        origin_realm: req.origin_realm.clone(),
        highest: req.request_number,
        window: 0,
        lease_until: now.saturating_add(policy.tcc_ms),
        reservations: Vec::new(),
        visited: Vec::new(),
    };
    s.record_visited(&req.visited);
    let mut acct = account.clone();
    let mscc: Vec<MsccAnswer> = req
        .mscc
        .iter()
        .map(|m| service(policy, RequestType::Initial, m, &mut s, &mut acct))
        .collect();
    let result_code = command_result(&mscc);
    let answer = CcAnswer {
        result_code,
        request_type: req.request_type,
        request_number: req.request_number,
        mscc,
        error_message: None,
        single: None,
        failure_handling: policy.failure_handling,
    };
    if result_code != rc::SUCCESS {
        // RFC 4006 §7 (server state machine, Idle): a CCR-I not successfully processed
        // leaves no session; nothing was reserved.
        return Decision {
            answer,
            session: SessionWrite::Keep,
            account: None,
        };
    }
    Decision {
        answer,
        account: (acct != *account).then_some(acct),
        session: SessionWrite::Put(s),
    }
}

fn update(
    policy: &Policy,
    req: &CcRequest,
    session: Option<&Session>,
    account: Option<&Account>,
    now: UnixMillis,
) -> Decision {
    // RFC 4006 §7 (server state machine, Idle): an UPDATE or TERMINATION for a session the
    // server does not know is answered DIAMETER_UNKNOWN_SESSION_ID.
    let Some(session) = session else {
        return Decision::refuse(req, rc::UNKNOWN_SESSION_ID, None);
    };
    match session.check_number(req.request_number) {
        NumberCheck::New => {}
        // Handled before, but its answer is no longer kept (older than the retention):
        // nothing is applied a second time.
        NumberCheck::Handled | NumberCheck::TooOld => {
            return Decision::refuse(
                req,
                rc::UNABLE_TO_COMPLY,
                Some("CC-Request-Number already handled and its answer expired"),
            );
        }
    }
    let Some(account) = account else {
        return Decision::refuse(req, rc::USER_UNKNOWN, Some("account removed"));
    };
    let mut s = session.clone();
    let mut acct = account.clone();
    s.mark_number(req.request_number);
    s.lease_until = now.saturating_add(policy.tcc_ms);
    // Document 001, S314 step 4: the home OCS records what the visited OCS told it.
    s.record_visited(&req.visited);
    let terminating = req.request_type == RequestType::Termination;
    let mut mscc: Vec<MsccAnswer> = req
        .mscc
        .iter()
        .map(|m| service(policy, req.request_type, m, &mut s, &mut acct))
        .collect();
    let result_code = if terminating {
        // RFC 4006 §5.4 (final interrogation): the session ends whatever was reported;
        // everything still reserved goes back to the account.
        for r in std::mem::take(&mut s.reservations) {
            release(&mut acct, &r);
        }
        rc::SUCCESS
    } else if mscc.is_empty() {
        rc::SUCCESS
    } else {
        command_result(&mscc)
    };
    if terminating {
        for m in &mut mscc {
            m.result_code = rc::SUCCESS;
        }
    }
    Decision {
        answer: CcAnswer {
            result_code,
            request_type: req.request_type,
            request_number: req.request_number,
            mscc,
            error_message: None,
            single: None,
            failure_handling: None,
        },
        session: if terminating {
            SessionWrite::Delete
        } else {
            SessionWrite::Put(s)
        },
        account: (acct != *account).then_some(acct),
    }
}

/// Direct debiting (RFC 4006 §6.3): the units of each service are debited at once.
fn event(policy: &Policy, req: &CcRequest, account: Option<&Account>) -> Decision {
    if req.requested_action.is_some_and(|a| a != 0) {
        return Decision::refuse(
            req,
            rc::UNABLE_TO_COMPLY,
            Some("only DIRECT_DEBITING is supported"),
        );
    }
    let Some(account) = account else {
        return Decision::refuse(req, rc::USER_UNKNOWN, None);
    };
    if account.barred {
        return Decision::refuse(req, rc::END_USER_SERVICE_DENIED, None);
    }
    let mut acct = account.clone();
    let mut mscc = Vec::new();
    for m in &req.mscc {
        let mut a = MsccAnswer {
            service: m.service,
            ..MsccAnswer::default()
        };
        let Some(rg) = rating_group(policy, m) else {
            a.result_code = rc::RATING_FAILED;
            mscc.push(a);
            continue;
        };
        if rg.free {
            a.result_code = rc::CREDIT_CONTROL_NOT_APPLICABLE;
            mscc.push(a);
            continue;
        }
        let unit = rg.unit_kind();
        let Some(kind) = balance_kind(&acct, rg) else {
            a.result_code = rc::END_USER_SERVICE_DENIED;
            mscc.push(a);
            continue;
        };
        let units = m
            .requested
            .and_then(|u| u.get(unit))
            .filter(|&u| u > 0)
            .unwrap_or(rg.grant)
            .min(rg.max_grant.unwrap_or(rg.grant));
        let cost = cost(rg, kind, units);
        let bal = acct.balances.entry(kind).or_default();
        if bal.available < i64::try_from(cost).unwrap_or(i64::MAX) {
            a.result_code = rc::CREDIT_LIMIT_REACHED;
        } else {
            bal.available -= cost as i64;
            a.result_code = rc::SUCCESS;
            a.granted = Some(Units::of(unit, units));
        }
        mscc.push(a);
    }
    let result_code = if mscc.is_empty() {
        rc::RATING_FAILED
    } else {
        command_result(&mscc)
    };
    Decision {
        answer: CcAnswer {
            result_code,
            request_type: req.request_type,
            request_number: req.request_number,
            mscc,
            error_message: None,
            single: None,
            failure_handling: None,
        },
        session: SessionWrite::Keep,
        account: (acct != *account).then_some(acct),
    }
}

/// The rating group of a service: its Rating-Group, else the group its Service-Identifier
/// is configured under.
fn rating_group<'p>(policy: &'p Policy, m: &MsccRequest) -> Option<&'p RatingGroup> {
    m.service
        .rating_group
        .or_else(|| {
            m.service
                .service_id
                .and_then(|si| policy.by_service.get(&si).copied())
        })
        .and_then(|id| policy.rating_groups.get(&id))
}

/// The balance a rating group draws on: its own unit, else money through its tariff.
fn balance_kind(acct: &Account, rg: &RatingGroup) -> Option<UnitKind> {
    let unit = rg.unit_kind();
    if acct.balances.contains_key(&unit) {
        Some(unit)
    } else if rg.tariff.is_some() && acct.balances.contains_key(&UnitKind::Money) {
        Some(UnitKind::Money)
    } else {
        None
    }
}

/// What `units` of the rating group's unit cost on balance `kind`.
fn cost(rg: &RatingGroup, kind: UnitKind, units: u64) -> u64 {
    match (kind, rg.tariff) {
        (UnitKind::Money, Some(t)) => t.cost(units),
        _ => units,
    }
}

fn release(acct: &mut Account, r: &Reservation) {
    let b = acct.balances.entry(r.kind).or_default();
    b.reserved = b.reserved.saturating_sub(r.amount);
    b.available = b
        .available
        .saturating_add(i64::try_from(r.amount).unwrap_or(i64::MAX));
}

/// One MSCC of an INITIAL, UPDATE or TERMINATION: release the service's reservation, debit
/// its usage, and (not when terminating) reserve a new grant.
fn service(
    policy: &Policy,
    kind: RequestType,
    m: &MsccRequest,
    s: &mut Session,
    acct: &mut Account,
) -> MsccAnswer {
    // Barred since the session began: usage is still charged, nothing new is granted
    // (RFC 4006 §9.1 DIAMETER_END_USER_SERVICE_DENIED).
    let denied = acct.barred;
    let mut a = MsccAnswer {
        service: m.service,
        ..MsccAnswer::default()
    };
    let rg = rating_group(policy, m);
    let previous = s
        .reservations
        .iter()
        .position(|r| r.service == m.service)
        .map(|i| s.reservations.swap_remove(i));
    if let Some(r) = &previous {
        release(acct, r);
    }
    // Units of this service charged earlier in the session.
    let mut used_before = previous.map_or(0, |r| r.used);
    if let Some(used) = &m.used {
        // The balance the usage is charged to: the reservation's, else the group's.
        let charged = previous
            .map(|r| r.kind)
            .or_else(|| rg.and_then(|rg| balance_kind(acct, rg)));
        match (charged, rg) {
            (Some(k), Some(rg)) => {
                let units = used.get(rg.unit_kind()).unwrap_or(0);
                // Rounded on the session's running total, so a tariff of 1 per MB does not
                // charge a whole unit for every small report.
                let total = used_before.saturating_add(units);
                let c = cost(rg, k, total).saturating_sub(cost(rg, k, used_before));
                used_before = total;
                let b = acct.balances.entry(k).or_default();
                b.available = b
                    .available
                    .saturating_sub(i64::try_from(c).unwrap_or(i64::MAX));
            }
            (Some(k), None) => {
                // The group left the configuration while units were reserved: charge the
                // reported units of the reservation's balance one for one.
                let units = used.get(k).unwrap_or(0);
                let b = acct.balances.entry(k).or_default();
                b.available = b
                    .available
                    .saturating_sub(i64::try_from(units).unwrap_or(i64::MAX));
            }
            (None, _) => {
                tracing::warn!(session = %s.id, service = ?m.service, "usage of a service that cannot be rated");
            }
        }
    }
    // RFC 4006 §5.2: an MSCC "MUST contain the Requested-Service-Unit AVP to indicate that
    // the quota for the associated service/rating-group is requested"; without it the MSCC
    // only reports usage. A TERMINATION asks for nothing.
    if kind == RequestType::Termination || m.requested.is_none() {
        a.result_code = rc::SUCCESS;
        return a;
    }
    if denied {
        a.result_code = rc::END_USER_SERVICE_DENIED;
        return a;
    }
    let Some(rg) = rg else {
        a.result_code = rc::RATING_FAILED;
        return a;
    };
    if rg.free {
        a.result_code = rc::CREDIT_CONTROL_NOT_APPLICABLE;
        return a;
    }
    let unit = rg.unit_kind();
    let Some(bkind) = balance_kind(acct, rg) else {
        a.result_code = rc::END_USER_SERVICE_DENIED;
        return a;
    };
    // Grant sizing: the configured grant, or what the Requested-Service-Unit asks for, up
    // to `max_grant` (the grant itself when unset).
    let want = m
        .requested
        .and_then(|u| u.get(unit))
        .filter(|&u| u > 0)
        .unwrap_or(rg.grant)
        .min(rg.max_grant.unwrap_or(rg.grant));
    let bal: Balance = acct.balances.get(&bkind).copied().unwrap_or_default();
    let left = u64::try_from(bal.available.max(0)).unwrap_or(0);
    let affordable = match (bkind, rg.tariff) {
        (UnitKind::Money, Some(t)) => t.units_for(left),
        _ => left,
    };
    if affordable == 0 || want == 0 {
        a.result_code = rc::CREDIT_LIMIT_REACHED;
        if rg.final_unit_action != FinalAction::Terminate {
            a.final_unit = Some(final_unit(rg));
            a.validity_time = rg.validity_time;
        }
        return a;
    }
    let grant = want.min(affordable);
    let amount = cost(rg, bkind, grant);
    let b = acct.balances.entry(bkind).or_default();
    b.available -= i64::try_from(amount).unwrap_or(i64::MAX);
    b.reserved = b.reserved.saturating_add(amount);
    s.reservations.push(Reservation {
        service: m.service,
        kind: bkind,
        amount,
        used: used_before,
    });
    a.result_code = rc::SUCCESS;
    a.granted = Some(Units::of(unit, grant));
    a.validity_time = rg.validity_time;
    a.quota_holding_time = rg.quota_holding_time;
    match unit {
        UnitKind::Time => a.time_threshold = rg.threshold,
        UnitKind::ServiceSpecific => a.unit_threshold = rg.threshold,
        _ => a.volume_threshold = rg.threshold,
    }
    a.triggers = rg.triggers.clone();
    // RFC 4006 §5.6: the final units are those that use up the balance.
    if grant >= affordable {
        a.final_unit = Some(final_unit(rg));
    }
    a
}

fn final_unit(rg: &RatingGroup) -> FinalUnit {
    FinalUnit {
        action: rg.final_unit_action.code(),
        redirect: match rg.final_unit_action {
            FinalAction::Redirect => rg
                .redirect
                .as_ref()
                .map(|r| (r.address_type.code(), r.address.clone())),
            _ => None,
        },
        restrictions: match rg.final_unit_action {
            FinalAction::RestrictAccess => rg.restriction_filter_rules.clone(),
            _ => Vec::new(),
        },
    }
}

/// The command-level Result-Code from the services' codes.
fn command_result(mscc: &[MsccAnswer]) -> u32 {
    if mscc.is_empty()
        || mscc.iter().any(|m| {
            m.result_code == rc::SUCCESS
                || m.final_unit
                    .as_ref()
                    .is_some_and(|f| f.action != FinalAction::Terminate.code())
        })
    {
        return rc::SUCCESS;
    }
    mscc[0].result_code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceKey, SubscriptionId, SubscriptionType};

    fn policy() -> Policy {
        Policy::from_config(&Config::demo())
    }

    fn account(octets: i64) -> Account {
        let mut a = Account {
            id: "a".into(),
            subscriptions: vec![SubscriptionId {
                kind: SubscriptionType::Imsi,
                data: "1".into(),
            }],
            ..Account::default()
        };
        a.balances.insert(
            UnitKind::TotalOctets,
            Balance {
                available: octets,
                reserved: 0,
            },
        );
        a
    }

    fn req(t: RequestType, n: u32, rg: u32, used: Option<u64>) -> CcRequest {
        CcRequest {
            session_id: "s1".into(),
            origin_host: "pcef".into(),
            origin_realm: "r".into(),
            request_type: t,
            request_number: n,
            subscriptions: Vec::new(),
            requested_action: None,
            single: None,
            visited: Vec::new(),
            mscc: vec![MsccRequest {
                service: ServiceKey {
                    rating_group: Some(rg),
                    service_id: None,
                },
                requested: Some(Units::default()),
                used: used.map(|u| Units::of(UnitKind::TotalOctets, u)),
            }],
        }
    }

    fn octets(a: &Account) -> Balance {
        a.balances[&UnitKind::TotalOctets]
    }

    #[test]
    fn grant_consume_terminate_balances_add_up() {
        let p = policy();
        let acct = account(10_000_000);
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 1, None),
            None,
            Some(&acct),
            0,
        );
        assert_eq!(d.answer.result_code, rc::SUCCESS);
        let granted = d.answer.mscc[0].granted.unwrap().total_octets.unwrap();
        assert_eq!(granted, 1_000_000);
        assert_eq!(d.answer.mscc[0].triggers, Some(vec![2, 4, 35, 36]));
        assert!(d.answer.mscc[0].final_unit.is_none());
        let SessionWrite::Put(s) = d.session else {
            panic!()
        };
        let acct = d.account.unwrap();
        assert_eq!(octets(&acct).reserved, 1_000_000);
        let d = decide(
            &p,
            &req(RequestType::Update, 1, 1, Some(700_000)),
            Some(&s),
            Some(&acct),
            1,
        );
        assert_eq!(d.answer.result_code, rc::SUCCESS);
        let SessionWrite::Put(s) = d.session else {
            panic!()
        };
        let acct = d.account.unwrap();
        assert_eq!(octets(&acct).reserved, 1_000_000);
        assert_eq!(octets(&acct).total(), 10_000_000 - 700_000);
        let d = decide(
            &p,
            &req(RequestType::Termination, 2, 1, Some(300_000)),
            Some(&s),
            Some(&acct),
            2,
        );
        assert_eq!(d.session, SessionWrite::Delete);
        let acct = d.account.unwrap();
        assert_eq!(octets(&acct).reserved, 0);
        assert_eq!(octets(&acct).available, 10_000_000 - 1_000_000);
    }

    #[test]
    fn final_grant_and_limit() {
        let p = policy();
        let acct = account(400_000);
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 1, None),
            None,
            Some(&acct),
            0,
        );
        let m = &d.answer.mscc[0];
        assert_eq!(m.granted.unwrap().total_octets, Some(400_000));
        assert_eq!(m.final_unit.as_ref().unwrap().action, 0);
        let empty = account(0);
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 1, None),
            None,
            Some(&empty),
            0,
        );
        assert_eq!(d.answer.result_code, rc::CREDIT_LIMIT_REACHED);
        assert_eq!(d.session, SessionWrite::Keep);
        // Rating group 2 redirects: 4012 in the MSCC, FUI REDIRECT, command success.
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 2, None),
            None,
            Some(&empty),
            0,
        );
        assert_eq!(d.answer.result_code, rc::SUCCESS);
        let m = &d.answer.mscc[0];
        assert_eq!(m.result_code, rc::CREDIT_LIMIT_REACHED);
        let f = m.final_unit.as_ref().unwrap();
        assert_eq!(f.action, 1);
        assert_eq!(f.redirect.as_ref().unwrap().1, "http://topup.home.test/");
    }

    #[test]
    fn unknown_session_user_and_rating_group() {
        let p = policy();
        let d = decide(&p, &req(RequestType::Update, 1, 1, Some(1)), None, None, 0);
        assert_eq!(d.answer.result_code, rc::UNKNOWN_SESSION_ID);
        assert!(!d.changes_state());
        let d = decide(&p, &req(RequestType::Initial, 0, 1, None), None, None, 0);
        assert_eq!(d.answer.result_code, rc::USER_UNKNOWN);
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 77, None),
            None,
            Some(&account(5)),
            0,
        );
        assert_eq!(d.answer.result_code, rc::RATING_FAILED);
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 9, None),
            None,
            Some(&account(5)),
            0,
        );
        assert_eq!(d.answer.result_code, rc::CREDIT_CONTROL_NOT_APPLICABLE);
    }

    #[test]
    fn grant_sizing_follows_the_request_up_to_max_grant() {
        let p = policy();
        let acct = account(100_000_000);
        let mut r = req(RequestType::Initial, 0, 1, None);
        r.mscc[0].requested = Some(Units::of(UnitKind::TotalOctets, 3_000_000));
        let d = decide(&p, &r, None, Some(&acct), 0);
        assert_eq!(
            d.answer.mscc[0].granted.unwrap().total_octets,
            Some(3_000_000)
        );
        r.mscc[0].requested = Some(Units::of(UnitKind::TotalOctets, 50_000_000));
        let d = decide(&p, &r, None, Some(&acct), 0);
        assert_eq!(
            d.answer.mscc[0].granted.unwrap().total_octets,
            Some(10_000_000)
        );
        // Rating group 2 has no max_grant: its grant is the most.
        r.mscc[0].service.rating_group = Some(2);
        let d = decide(&p, &r, None, Some(&acct), 0);
        assert_eq!(
            d.answer.mscc[0].granted.unwrap().total_octets,
            Some(500_000)
        );
    }

    #[test]
    fn single_service_units_at_command_level() {
        let p = policy();
        let acct = account(10_000_000);
        let mut r = req(RequestType::Initial, 0, 1, None);
        r.single = r.mscc.pop();
        r.single.as_mut().unwrap().service.rating_group = None;
        let d = decide(&p, &r, None, Some(&acct), 0);
        assert_eq!(d.answer.result_code, rc::SUCCESS);
        assert!(d.answer.mscc.is_empty());
        let g = d.answer.single.as_ref().unwrap().granted.unwrap();
        assert_eq!(g.total_octets, Some(1_000_000));
        let SessionWrite::Put(s) = d.session else {
            panic!()
        };
        let acct = d.account.unwrap();
        let mut t = req(RequestType::Termination, 1, 1, Some(10));
        t.single = t.mscc.pop();
        t.single.as_mut().unwrap().service.rating_group = None;
        let d = decide(&p, &t, Some(&s), Some(&acct), 1);
        assert_eq!(d.answer.result_code, rc::SUCCESS);
        assert_eq!(octets(&d.account.unwrap()).available, 10_000_000 - 10);
        // Out of credit: the command-level code is the service's.
        let mut r = req(RequestType::Initial, 0, 1, None);
        r.single = r.mscc.pop();
        let d = decide(&p, &r, None, Some(&account(0)), 0);
        assert_eq!(d.answer.result_code, rc::CREDIT_LIMIT_REACHED);
    }

    #[test]
    fn barred_mid_session_charges_usage_and_grants_nothing() {
        let p = policy();
        let acct = account(10_000_000);
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 1, None),
            None,
            Some(&acct),
            0,
        );
        let SessionWrite::Put(s) = d.session else {
            panic!()
        };
        let mut acct = d.account.unwrap();
        acct.barred = true;
        let d = decide(
            &p,
            &req(RequestType::Update, 1, 1, Some(300)),
            Some(&s),
            Some(&acct),
            1,
        );
        assert_eq!(d.answer.result_code, rc::END_USER_SERVICE_DENIED);
        assert_eq!(d.answer.mscc[0].result_code, rc::END_USER_SERVICE_DENIED);
        let a = d.account.unwrap();
        assert_eq!(octets(&a).reserved, 0);
        assert_eq!(octets(&a).available, 10_000_000 - 300);
    }

    #[test]
    fn service_identifier_alone_is_rated_by_its_group() {
        let p = policy();
        let acct = account(10_000_000);
        let mut r = req(RequestType::Initial, 0, 1, None);
        r.mscc[0].service = ServiceKey {
            rating_group: None,
            service_id: Some(1001),
        };
        let d = decide(&p, &r, None, Some(&acct), 0);
        assert_eq!(d.answer.result_code, rc::SUCCESS);
        assert_eq!(
            d.answer.mscc[0].granted.unwrap().total_octets,
            Some(1_000_000)
        );
        r.mscc[0].service.service_id = Some(999);
        let d = decide(&p, &r, None, Some(&acct), 0);
        assert_eq!(d.answer.result_code, rc::RATING_FAILED);
    }

    #[test]
    fn usage_without_requested_units_is_reported_not_regranted() {
        let p = policy();
        let acct = account(10_000_000);
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 1, None),
            None,
            Some(&acct),
            0,
        );
        let SessionWrite::Put(s) = d.session else {
            panic!()
        };
        let mut u = req(RequestType::Update, 1, 1, Some(400));
        u.mscc[0].requested = None;
        let d = decide(&p, &u, Some(&s), d.account.as_ref(), 1);
        assert_eq!(d.answer.result_code, rc::SUCCESS);
        assert!(d.answer.mscc[0].granted.is_none());
        let a = d.account.unwrap();
        assert_eq!(octets(&a).reserved, 0);
        assert_eq!(octets(&a).available, 10_000_000 - 400);
    }

    #[test]
    fn money_through_tariff() {
        let p = policy();
        let mut acct = account(0);
        acct.balances.clear();
        acct.balances.insert(
            UnitKind::Money,
            Balance {
                available: 3,
                reserved: 0,
            },
        );
        let d = decide(
            &p,
            &req(RequestType::Initial, 0, 1, None),
            None,
            Some(&acct),
            0,
        );
        assert_eq!(
            d.answer.mscc[0].granted.unwrap().total_octets,
            Some(1_000_000)
        );
        let a = d.account.unwrap();
        assert_eq!(a.balances[&UnitKind::Money].reserved, 1);
    }
}
