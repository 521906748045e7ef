//! # diameter-node
//!
//! A Diameter node on tokio: transport (TCP, TLS), the RFC 6733 peer state machine with
//! the RFC 3539 watchdog, request/answer matching, routing, failover, duplicate detection,
//! capture and metrics.
//!
//! The protocol logic is sans-IO (it takes `now` and events and returns actions) so it is
//! tested under a virtual clock; thin tokio drivers own the sockets and timers.
//!
//! # Layout
//!
//! - [`node`]: [`node::Node`] — listeners, peers, `request()` with deadlines, handlers per
//!   application, relaying, redirects, failover with the T bit, overload answers (3004).
//! - [`peer`]: the sans-IO peer state machine (RFC 6733 §5.6 with election, CER/CEA, DPR/DPA)
//!   and the RFC 3539 watchdog.
//! - [`routing`]: realm/application routes, Destination-Host, loop detection, the client-side
//!   redirect cache.
//! - [`dedup`]: the duplicate-request cache keyed by (Origin-Host, End-to-End).
//! - [`transport`]: TCP and TLS (rustls, mutual authentication, certificate ↔ Origin-Host).
//!   SCTP is not available in the kernel this project builds on; [`transport::Transport`] is
//!   where it would be added.
//! - [`framing`]: the tokio-util codec that checks a frame's header before buffering it.
//! - [`capture`]: pcapng capture of every message sent and received.
//! - [`metrics`]: Prometheus names, recording helpers and the HTTP endpoint.
//!
//! The `diameter-bench` binary (echo server, relay agent, load client) is built on it.

pub mod capture;
pub mod dedup;
pub mod framing;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod routing;
pub mod transport;
