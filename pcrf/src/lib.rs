//! PCRF: policy and charging rules over Gx (TS 29.212, application 16777238), home role.
//!
//! A library with a thin binary (`pcrf`). Layout, one job per module:
//!
//! - [`spr`]: subscriber profiles and PCC rule definitions behind
//!   [`spr::SubscriberStore`], with the embedded default [`spr::MemorySpr`] loaded from a
//!   TOML file.
//! - [`session`]: Gx session state behind [`session::SessionStore`] (in memory by default,
//!   keyed so Redis can implement it).
//! - [`policy`]: the decisions, as pure functions: what a new session gets, what a reported
//!   event or an operator's push changes.
//! - [`gx`]: CCR into [`gx::GxRequest`], decisions into CCA/RAR AVPs, Supported-Features
//!   negotiation (TS 29.212 §5.4.1), the RAR.
//! - [`server`]: [`server::Pcrf`], the node's Gx handler, RAR pushes, the clean-up of a
//!   restarted PCEF's sessions.
//! - [`admin`]: the operator HTTP endpoint (sessions, pushes).
//! - [`config`]: `pcrf --config FILE.toml` and the built-in home PCRF
//!   (`examples/home.toml`, `examples/spr.toml`).
//! - [`metrics`]: Prometheus series.
//!
//! # Roles and interfaces still to come
//!
//! Only the home role over Gx runs. Gxx (TS 29.212 chapter 4a), Rx (TS 29.214), S9
//! (TS 29.215), the visited role and local breakout come next: they add handlers beside the
//! Gx one, reuse [`policy::decide`] for rule changes and [`gx::decision_avps`] for the
//! PCC-rule AVPs (S9's Subsession-Decision-Info carries the same), and keep their sessions
//! in stores shaped like [`session::SessionStore`]. A Gx session already records the UE
//! address and APN that Rx binding needs, and the SPR already holds each subscriber's LBO
//! service packages.

pub mod admin;
pub mod config;
pub mod gx;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod session;
pub mod spr;

pub use config::Config;
pub use server::{Pcrf, PolicyChange};
