//! PCRF: policy and charging rules over Gx (TS 29.212, application 16777238), Gxx
//! (TS 29.212 chapter 4a, 16777266), Rx (TS 29.214, application 16777236) and S9
//! (TS 29.215, 16777267), home and visited roles.
//!
//! A library with a thin binary (`pcrf`). Layout, one job per module:
//!
//! - [`spr`]: subscriber profiles and PCC rule definitions behind
//!   [`spr::SubscriberStore`], with the embedded default [`spr::MemorySpr`] loaded from a
//!   TOML file.
//! - [`session`]: Gx session state behind [`session::SessionStore`], AF (Rx) session state
//!   behind [`session::RxSessionStore`], BBERF (Gxx) session state behind
//!   [`session::GxxSessionStore`] and V-PCRF (S9) session state behind
//!   [`session::S9SessionStore`] (in memory by default, keyed so Redis can implement them).
//! - [`policy`]: the decisions, as pure functions: what a new session gets, what a reported
//!   event or an operator's push changes.
//! - [`gx`]: CCR into [`gx::GxRequest`], decisions into CCA/RAR AVPs, Supported-Features
//!   negotiation (TS 29.212 §5.4.1), the RAR.
//! - [`gxx`]: QoS rules (the bearer half of PCC rules) and the Gxx RAR.
//! - [`rx`]: AAR into [`rx::AaRequest`], media components into PCC rules (TS 29.213 §6.3),
//!   the RAR and ASR to the AF.
//! - [`s9`]: S9 CCR into [`s9::S9Request`] with its subsessions, decisions into
//!   Subsession-Decision-Info, the S9 RAR and TER.
//! - [`server`]: [`server::Pcrf`], the node's Gx, Gxx, Rx and S9 handlers, RAR pushes, the
//!   clean-up of a restarted PCEF's or V-PCRF's sessions, the AF told of rule failures and
//!   IP-CAN session loss, S9 only from roaming partners.
//! - [`lbo`]: local breakout (document 000): the home operator's grant, its HMAC, the
//!   V-PCRF's checks ([`lbo::verify_lbo_rule`]) and the OTT's dynamic key.
//! - [`admin`]: the operator HTTP endpoint (sessions, pushes).
//! - [`config`]: `pcrf --config FILE.toml` and the built-in home PCRF
//!   (`examples/home.toml`, `examples/spr.toml`).
//! - [`metrics`]: Prometheus series.
//! - [`visited`]: the visited role (V-PCRF): roaming subscribers' Gx served over S9 by
//!   their home PCRF, home rules authorised under local policy, the V-OCS chosen.
//!
//! # S9, home role
//!
//! A subsession's policy state is kept in the shape of a Gx session
//! ([`session::S9Subsession::policy`]) under the key [`s9::subsession_key`], so the Gx
//! decisions apply unchanged and an AF session bound to a roaming UE's address names the
//! subsession where it would name a Gx session; a rule change for such a key goes to the
//! V-PCRF by S9 RAR instead of Gx RAR. S9 is served only to `[[pcrf.roaming_partner]]`
//! (Origin-Realm and the peer it arrived from); others get 5003
//! DIAMETER_AUTHORIZATION_REJECTED (3010 DIAMETER_UNKNOWN_PEER is RFC 6733's answer to a CER,
//! not to an application request from a peer that is connected).
//!
//! # Visited role
//!
//! `pcrf.role = "visited"` with a `[pcrf.visited]` section (`examples/visited.toml`): the
//! PCRF serves its own subscribers as above and roaming ones through their home network's
//! PCRF over S9, see [`visited`].
//!
//! # Local breakout, home role (document 000)
//!
//! An AAR marked for local breakout is authenticated (the OTT's dynamic key), checked against
//! the subscriber's LBO packages (SPR), and its rules go marked LOCAL_BREAKOUT and signed to
//! the V-PCRF by S9 RAR; the AAA carries the visited side's answer. Presets per package go
//! into the S9 CCA at subsession establishment; variant FIG. 6 installs on our own user plane
//! in the visited network over Gx and has the V-PCRF steer to it. `[pcrf.lbo]` configures it;
//! [`lbo`] is the pure part both roles share (the V-PCRF's checks are
//! [`lbo::verify_lbo_rule`] / [`lbo::ReadLboRule::verify`], run where the visited role
//! authorises home rules, [`visited::Visited::authorise_home_rules`]).

pub mod admin;
pub mod config;
pub mod durable;
pub mod gx;
pub mod gxx;
pub mod lbo;
pub mod metrics;
pub mod policy;
pub mod rx;
pub mod s9;
pub mod server;
pub mod session;
pub mod spr;
pub mod visited;

pub use config::Config;
pub use server::{Pcrf, PolicyChange};
