//! OCS: online charging on Gy (RFC 4006 as updated by RFC 8506, TS 32.299), home role and
//! visited role (document 001 of seeds.md: [`visited`]).
//!
//! A library with a thin binary (`ocs`). Layout, one job per module:
//!
//! - [`model`]: accounts, balances, sessions, reservations; requests and answers as plain
//!   data.
//! - [`engine`]: the decision, a pure function of (policy, session, account, request, now)
//!   to (answer, state changes) — reused by every store, and later by the visited OCS and
//!   the benchmarks.
//! - [`gy`]: CCR into [`model::CcRequest`], [`model::CcAnswer`] into CCA, the RAR, and a
//!   CCR builder for clients.
//! - [`store`]: the [`store::ChargingStore`] trait (one atomic operation per CCR) and its
//!   embedded durable default on redb with group commit.
//! - [`server`]: [`server::Ocs`], the node's Gy handler, the Tcc sweep, the release of a
//!   restarted client's sessions, account changes re-authorised with RAR.
//! - [`admin`]: the operator HTTP endpoint and its client.
//! - [`config`]: `ocs --config FILE.toml` and the built-in demo (`examples/home.toml`).
//! - [`metrics`]: Prometheus series.
//! - [`visited`]: [`visited::VisitedOcs`], the visited role: a back-to-back Gy agent in front
//!   of the home OCSs that applies the visited policy to their decisions.
//!
//! # Retransmissions and request numbers
//!
//! Every answer that changed state, and every answer to an INITIAL or EVENT request, is
//! stored with its key (Session-Id, CC-Request-Number) in the same transaction as the
//! change, and kept `answer_retention` seconds. A request with a stored key gets the stored
//! answer and changes nothing, with or without the T bit and across restarts (RFC 4006
//! §5.7 and RFC 6733 §5.5.4: a client resends what got no answer, with the T bit; RFC 4006
//! §8.2: Session-Id and CC-Request-Number identify a request).
//!
//! Requests may arrive out of order (RFC 4006 §5.1.2: a client may send updates without
//! waiting for answers, and the server "SHOULD NOT consider this an error"): a session
//! remembers the highest number handled and which of the 64 below it were, so a late lower
//! number is processed once. A number handled before whose answer has expired, or more
//! than 64 below the highest, is refused with 5012 DIAMETER_UNABLE_TO_COMPLY and changes
//! nothing; a request with a stored key but another CC-Request-Type is refused the same way.
//!
//! # Credit that nobody reports
//!
//! Reservations are leased: every request renews its session's lease for Tcc (RFC 4006
//! §13), and a sweep releases the reservations of sessions whose lease ended. Leases are in
//! wall-clock time because they outlive restarts. A client that reconnects with a new
//! Origin-State-Id (RFC 6733 §8.16), or answers a re-auth request with 5002, has lost its
//! sessions: they are released at once.

//!
//! # Not supported (yet)
//!
//! Credit-control sub-sessions (CC-Sub-Session-Id: requests are charged to the session),
//! credit pools (G-S-U-Pool-Reference), tariff time changes (Tariff-Time-Change), the
//! event actions other than DIRECT_DEBITING (price enquiry, balance check and refund are
//! answered 5012), Cost-Information, and CC-Money in grants (money balances are spent
//! through the rating group's tariff; grants are service units).

pub mod admin;
pub mod config;
pub mod engine;
pub mod gy;
pub mod metrics;
pub mod model;
pub mod server;
pub mod store;
pub mod visited;

pub use config::Config;
pub use server::Ocs;
pub use visited::VisitedOcs;
