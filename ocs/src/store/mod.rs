//! Where balances, sessions, reservations and stored answers live.
//!
//! [`ChargingStore`] is the narrow interface every store implements: asynchronous, keyed by
//! subscriber (account) and session, with **one atomic operation per CCR** — look up the
//! stored answer of (Session-Id, CC-Request-Number); if there is none, read the session and
//! the account, run the pure decision ([`crate::engine::decide`]) and commit its changes
//! together with the answer. A shared engine implements it the same way: PostgreSQL as one
//! transaction per CCR (session and account rows locked, the answer's unique key making the
//! operation exactly-once), Redis as a script or an optimistic transaction on the session's
//! and account's keys.
//!
//! [`redb::RedbStore`] is the embedded durable default.

pub mod redb;
pub mod wal;

use crate::model::{Account, CcAnswer, CcRequest, Session, UnitKind, UnixMillis};
use std::future::Future;
use std::pin::Pin;

/// A store operation's future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed; nothing of it was applied.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// From any error.
    pub fn from_err(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// The result of one CCR.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The answer.
    pub answer: CcAnswer,
    /// A retransmission: the stored answer of an earlier request with the same key, nothing
    /// applied again.
    pub duplicate: bool,
}

/// A live session of an account: where its re-auth request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// Session-Id.
    pub session_id: String,
    /// The client's Origin-Host.
    pub origin_host: String,
    /// The client's Origin-Realm.
    pub origin_realm: String,
}

/// An operator's change of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// Adds `delta` to a balance (a top-up when positive).
    Adjust {
        /// The balance.
        kind: UnitKind,
        /// What to add.
        delta: i64,
    },
    /// Bars the subscriber (4010 DIAMETER_END_USER_SERVICE_DENIED from the next request
    /// on) or lifts the bar.
    SetBarred(bool),
}

/// What a Tcc sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions whose lease ended: reservations released, session forgotten.
    pub sessions_expired: u64,
    /// Reservations released with them.
    pub reservations_released: u64,
    /// Stored answers past their retention, forgotten.
    pub answers_forgotten: u64,
}

/// Sizes, for gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Live sessions.
    pub sessions: u64,
    /// Reservations held by them.
    pub reservations: u64,
    /// Accounts.
    pub accounts: u64,
}

/// The store interface (see the module documentation).
pub trait ChargingStore: Send + Sync + 'static {
    /// The Origin-State-Id that goes with this state (RFC 6733 §8.16): it changes only when
    /// the state is lost (a new data file), not when the server restarts on kept state, so
    /// clients keep their sessions across an OCS restart.
    fn origin_state_id(&self) -> u32;

    /// One CCR, atomically and durably: the stored answer of (Session-Id,
    /// CC-Request-Number) when there is one; otherwise the decision on the current session
    /// and account, committed with its answer before this returns.
    fn credit_control(&self, req: CcRequest, now: UnixMillis) -> StoreFuture<'_, Applied>;

    /// Releases the reservations of sessions whose Tcc lease ended before `now` and
    /// forgets answers kept past their retention.
    fn sweep(&self, now: UnixMillis) -> StoreFuture<'_, SweepReport>;

    /// Releases the reservations of every session client `origin_host` used last before
    /// `before_ms` and forgets them: the client restarted then (a new Origin-State-Id, RFC
    /// 6733 §8.16) and has lost them; what it opened or used since is its new state (its
    /// first requests may be handled before the restart is noticed).
    fn release_client(
        &self,
        origin_host: String,
        before_ms: UnixMillis,
    ) -> StoreFuture<'_, SweepReport>;

    /// Releases one session's reservations and forgets it (its client answered a
    /// re-auth request with DIAMETER_UNKNOWN_SESSION_ID).
    fn release_session(&self, session_id: String) -> StoreFuture<'_, SweepReport>;

    /// Creates `account` (and its Subscription-Id index entries) unless an account with its
    /// id exists. Returns whether it was created.
    fn provision(&self, account: Account) -> StoreFuture<'_, bool>;

    /// The account with this id or Subscription-Id index key (`imsi:…`, `msisdn:…`,
    /// `nai:…`), or a bare IMSI, MSISDN or NAI.
    fn account(&self, key: String) -> StoreFuture<'_, Option<Account>>;

    /// A live session by Session-Id: its reservations, and what a visited OCS reported.
    fn session(&self, session_id: String) -> StoreFuture<'_, Option<Session>>;

    /// Changes an account (a top-up, a correction, barring) and returns it with its live
    /// sessions, which the caller re-authorises.
    fn modify(
        &self,
        key: String,
        change: AccountChange,
    ) -> StoreFuture<'_, Option<(Account, Vec<SessionRef>)>>;

    /// Sizes.
    fn counts(&self) -> StoreFuture<'_, Counts>;

    /// Finishes what is queued and releases the store (files, connections). Operations
    /// after it fail.
    fn close(&self) -> StoreFuture<'_, ()>;
}
