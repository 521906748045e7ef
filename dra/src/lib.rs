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

//!
//! # How requests go
//!
//! A request from a client (PCEF, BBERF, AF, a V-PCRF over S9) is, for its binding, an
//! establishment (CCR-I; an AAR of an Rx session not bound yet), an update, or a termination
//! (CCR-T, STR; an S9 CCR-U ending subsessions). Establishments bind (or answer 5005, 5065,
//! 3002); the rest follow the binding of their Session-Id (5002 when there is none and no
//! Destination-Host names a PCRF). Then, per realm and application, redirect mode answers
//! 3006 naming the PCRF and proxy mode forwards to it; terminations are marked at once in
//! redirect mode (and acknowledged by the DRA or redirected) and when the answer comes
//! back in proxy mode. A request from a PCRF (RAR, ASR) goes to the client of its session.
//!
//! # The clients' side (document 002)
//!
//! A redirect DRA never sees the requests that follow its redirect (RFC 6733 §2.8.3), so
//! its clients tell it when sessions end. [`diameter_service::dra_client::DraClient`] is
//! that client side, shared by pcef-sim's PCEF, BBERF and AF (`pcef-sim gx|bberf|af
//! --dra-termination parallel|redirect`) and meant for the V-PCRF towards the hDRA:
//!
//! - at establishment it records how the DRA handled the session: redirected to a PCRF,
//!   or proxied;
//! - a proxied session ends through the DRA (marked here when the PCRF's answer comes
//!   back);
//! - a redirected session ends either with the termination sent to this DRA and to the
//!   PCRF at once (`parallel`: the DRA's CCA-T/STA 2001 with `termination = "ack"`, or its
//!   3006 with `termination = "redirect"`, is not followed and says the session is marked),
//!   or sent here only and the redirect followed (`redirect`; against a DRA configured to
//!   `ack`, the client then sends it to the PCRF of the establishment itself, so no side
//!   keeps the session whatever the two configurations);
//! - an establishment the PCRF refuses after this DRA's redirect is followed by a
//!   termination to this DRA alone, which unbinds it (in proxy mode the DRA sees the
//!   refusal itself).
//!
//! `tests/termination.rs` runs every combination end to end (detach in document 002's
//! order with the AF's loss-of-bearer notification, an Rx session ending alone, a BBERF
//! reselection ending the old Gxx session) and checks after each that the operator
//! endpoint lists no binding and the PCRF holds no session; its last test is the control:
//! a client that does not tell a redirect DRA (its CCR-T follows the cached redirect
//! straight to the PCRF) leaves its binding, which then only the audits remove.
//!
//! `tests/roaming.rs` runs the four vDRA/hDRA mode combinations end to end with a PCEF,
//! BBERF per IP-CAN session (one BBERF reselected), an AF, a V-PCRF and an H-PCRF, in both S9
//! session models, and checks that both DRAs' tables end empty.
//!
//! The role (`home`, `visited`) names the DRA; both roles behave the same. The V-PCRF's
//! S9 client towards the hDRA is pcrf's.
//!
//! # No orphans
//!
//! Two audits remove a binding whose termination was lost: the age-out (`binding_lifetime`)
//! and the session-status audit (`audit_interval`, [`server::SESSION_STATUS`]), which asks
//! the PCRF of an idle entry whether it still holds each session and marks those it does
//! not.

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
