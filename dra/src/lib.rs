//! DRA: the Diameter Routing Agent of TS 29.213 §7 for Gx, Gxx, Rx and S9, in redirect or
//! proxy mode, as the home or the visited DRA, with the session-termination marking of
//! document 002 (`../shared/reference/seeds.md`).
//!
//! A library with a thin binary (`dra`). One job per module:
//!
//! - [`binding`]: the IP-CAN session (or UE) entries — UE identity, UE address, APN, the
//!   PCRF, the sessions bound by Session-Id — with their indexes and the changes a DRA
//!   makes to them, as pure code.
//! - [`store`]: [`store::BindingStore`], the narrow asynchronous interface bindings live
//!   behind, with an in-memory store and the embedded durable default (redb).
//! - [`keys`]: what a request means for the binding (establish, update, terminate) and the
//!   keys read from it.
//! - [`select`]: PCRF selection among the healthy PCRFs (consistent hash or least load).
//! - [`server`]: [`server::Dra`], the node's handlers (redirect, proxy, PCRF-initiated
//!   requests, terminations) and its reactions to peer events.
//! - [`admin`]: the operator endpoint (`dra bindings`).
//! - [`config`]: `dra --config FILE.toml` and the built-in home DRA
//!   (`examples/home.toml`).
//! - [`metrics`]: Prometheus series.

pub mod admin;
pub mod binding;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod select;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::Dra;
