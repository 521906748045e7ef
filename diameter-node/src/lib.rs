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
//! - [`task`]: running a future on the caller's task until it waits, then as a task of
//!   its own spawned when it is woken (the node's handlers and forwards, and the servers').
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
//! # Limits
//!
//! What a peer can make the node hold is bounded; each bound is a [`node::NodeConfig`] field.
//!
//! | field | default | bounds |
//! |---|---|---|
//! | `write_queue_bytes` | 4 MiB | bytes queued for writing on one connection. Over it the node stops reading from that connection (the peer meets TCP backpressure) and refuses its own requests for it with 3004 (RFC 6733 §7.1.3); answers are still queued, never dropped |
//! | `write_stall_timeout` | 30 s | how long a connection with messages waiting may take not one byte; then it is closed, its queue dropped, and failover applies |
//! | `peer_queue` | 16,384 messages | messages for a peer's task (the path outside the express lane); full → 3004 |
//! | `dedup_max_bytes` | 64 MiB | answers kept for duplicate detection, oldest out first; also `dedup_capacity` (200,000) and `dedup_window` (60 s) |
//! | `max_handshaking` | 256 | connections from anonymous addresses waiting for their CER |
//! | `max_handshaking_per_source` | 32 | the same, from one IP address; a configured peer's addresses (its `connect` IP and `PeerSpec::addresses`) get this many outside the anonymous pool |
//! | `cer_timeout` | 5 s | from accept to CER, TLS handshake included (RFC 6733 §5.6.1) |
//! | `frame_timeout` | 10 s | for a started frame to arrive whole |
//! | `max_pending`, `max_concurrent_handlers` | 65,536, 8,192 | requests in flight, handlers running; beyond them 3004 |
//!
//! Answers of handlers still running are bounded by `max_concurrent_handlers`, not by the
//! write budget: they join the queue when they finish. When accept(2) fails for want of file
//! descriptors or memory, the listener backs off (10 ms doubling to 1 s), logs the first
//! failure of a run and counts each in [`metrics::ACCEPT_ERRORS`].
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
pub mod task;
pub mod transport;
