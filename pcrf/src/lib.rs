//! PCRF: policy and charging rules over Gx (TS 29.212, application 16777238), Gxx
//! (TS 29.212 chapter 4a, 16777266) and Rx (TS 29.214, application 16777236), home role.
//!
//! A library with a thin binary (`pcrf`). Layout, one job per module:
//!
//! - [`spr`]: subscriber profiles and PCC rule definitions behind
//!   [`spr::SubscriberStore`], with the embedded default [`spr::MemorySpr`] loaded from a
//!   TOML file.
//! - [`session`]: Gx session state behind [`session::SessionStore`], AF (Rx) session state
//!   behind [`session::RxSessionStore`] and BBERF (Gxx) session state behind
//!   [`session::GxxSessionStore`] (in memory by default, keyed so Redis can implement them).
//! - [`policy`]: the decisions, as pure functions: what a new session gets, what a reported
//!   event or an operator's push changes.
//! - [`gx`]: CCR into [`gx::GxRequest`], decisions into CCA/RAR AVPs, Supported-Features
//!   negotiation (TS 29.212 §5.4.1), the RAR.
//! - [`gxx`]: QoS rules (the bearer half of PCC rules) and the Gxx RAR.
//! - [`rx`]: AAR into [`rx::AaRequest`], media components into PCC rules (TS 29.213 §6.3),
//!   the RAR and ASR to the AF.
//! - [`server`]: [`server::Pcrf`], the node's Gx, Gxx and Rx handlers, RAR pushes, the clean-up
//!   of a restarted PCEF's sessions, the AF told of rule failures and IP-CAN session loss.
//! - [`admin`]: the operator HTTP endpoint (sessions, pushes).
//! - [`config`]: `pcrf --config FILE.toml` and the built-in home PCRF
//!   (`examples/home.toml`, `examples/spr.toml`).
//! - [`metrics`]: Prometheus series.
//!
//! # Roles and interfaces still to come
//!
//! The home role over Gx, Gxx and Rx runs. S9 (TS 29.215), the visited role and local
//! breakout come next: they add handlers beside these,
//! reuse [`policy::decide`] for rule changes and [`gx::decision_avps`] for the PCC-rule
//! AVPs (S9's Subsession-Decision-Info carries the same), and keep their sessions in stores
//! shaped like [`session::SessionStore`]. The SPR already holds each subscriber's LBO
//! service packages.

pub mod admin;
pub mod config;
pub mod gx;
pub mod gxx;
pub mod metrics;
pub mod policy;
pub mod rx;
pub mod server;
pub mod session;
pub mod spr;

pub use config::Config;
pub use server::{Pcrf, PolicyChange};
