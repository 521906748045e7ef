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
//!   A handler decides an [`node::Outcome`]: answer, forward as a proxy (with edits of
//!   request and answer, its own failover list, 3002/3005 when it cannot be delivered), or
//!   redirect (3006). Applications subscribe to [`node::NodeEvent`]s (peer up with its
//!   CER/CEA facts, restarted, down), look up a peer's facts, and add or remove peers at run
//!   time. The client side follows redirects, connecting to hosts it has no connection to
//!   through `NodeConfig::host_map` or the Redirect-Host URI.
//! - [`peer`]: the sans-IO peer state machine (RFC 6733 §5.6 with election, CER/CEA, DPR/DPA)
//!   and the RFC 3539 watchdog.
//! - [`routing`]: realm/application routes, Destination-Host, loop detection, the client-side
//!   redirect cache.
//! - [`dedup`]: the duplicate-request cache keyed by (Origin-Host, End-to-End).
//! - [`transport`]: TCP and TLS (rustls, mutual authentication, certificate ↔ Origin-Host).
//!   SCTP is not available in the kernel this project builds on; [`transport::Transport`] is
//!   where it would be added.
//! - [`framing`]: the tokio-util codec that checks a frame's header before buffering it.
//! - [`config`]: the TOML configuration ([`config::NodeToml`], the `[node]` table of every
//!   server) and [`config::load_config`], whose errors name the file, line and key.
//! - [`capture`]: pcapng capture of every message sent and received.
//! - [`metrics`]: Prometheus names, recording helpers and the HTTP endpoint.
//! - [`busy_poll`]: opt-in polling through the gaps between messages instead of sleeping
//!   (trades a CPU for the wake-up latency of a virtual machine).
//!
//! # How a message travels
//!
//! Each connection has a reader task (framing) and a writer task (several queued messages per
//! write). Each peer has a driver task that owns its state machine. While the peer is open
//! with its watchdog OKAY, application messages take the peer's *express lane*: the reader
//! hands them straight to the node (handlers that answer at once run right there) and
//! answers and requests go straight to the writer, so a request costs no hand-off between
//! tasks on the receiving side and one on the sending side. CER, DWR, DPR and their
//! answers, and every message in any other state, go through the state machine; the
//! driver tells the watchdog about express traffic before it looks at its timers.
//!
//! The `diameter-bench` crate (echo server, relay agent, load client) is built on it.

/// A Diameter identity as the node's maps and caches key it: ASCII lower-case, since
/// DiameterIdentity compares case-insensitively (RFC 6733 §4.3.1). Most identities already
/// are lower-case, so those are borrowed, not copied.
pub(crate) fn identity_key(host: &str) -> std::borrow::Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase().into()
    } else {
        host.into()
    }
}

pub mod busy_poll;
pub mod capture;
pub mod config;
pub mod dedup;
pub mod framing;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod routing;
pub mod transport;
