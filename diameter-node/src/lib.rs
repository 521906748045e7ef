//! # diameter-node
//!
//! A Diameter node on tokio: transport (TCP, TLS), the RFC 6733 peer state machine with
//! the RFC 3539 watchdog, request/answer matching, routing, failover, duplicate detection,
//! capture and metrics.
//!
//! The protocol logic is sans-IO (it takes `now` and events and returns actions) so it is
//! tested under a virtual clock; thin tokio drivers own the sockets and timers.

pub mod capture;
pub mod dedup;
pub mod framing;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod routing;
pub mod transport;
