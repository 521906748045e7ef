//! Prometheus metrics: names, labels and helpers, and an HTTP exposition endpoint.
//!
//! Every name starts with `diameter_`; counters end in `_total`, durations are in seconds.
//! Labels hold numbers as decimal strings (`application="4"`, `command="272"`,
//! `result_code="2001"`) so that cardinality is bounded by the protocol, not by input.
//! Every series carries `node`, the recording node's Origin-Host ([`NodeLabel`]), so several
//! nodes in one process (a lab, a test) keep their series apart.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | [`PEERS`] `diameter_peers` | gauge (1 for the peer's current state, 0 for the others) | `node`, `peer`, `state` |
//! | [`REQUESTS`] `diameter_requests_total` | counter | `node`, `direction`, `application`, `command` |
//! | [`ANSWERS`] `diameter_answers_total` | counter | `node`, `direction`, `application`, `command`, `result_code` |
//! | [`REQUEST_DURATION`] `diameter_request_duration_seconds` | histogram | `node`, `application`, `command` |
//! | [`UNCONFIGURED_PEERS`] `diameter_unconfigured_peers` | gauge (how many unknown peers accepted by policy are in each state) | `node`, `state` |
//! | [`PENDING_REQUESTS`] `diameter_pending_requests` | gauge | `node`, `peer` |
//! | [`UNKNOWN_ANSWERS`] `diameter_unknown_answers_discarded_total` | counter | `node`, `peer` |
//! | [`TOO_BUSY`] `diameter_too_busy_total` | counter | `node`, `direction` |
//! | [`ACCEPT_ERRORS`] `diameter_accept_errors_total` | counter | `node`, `error` |
//! | [`VALIDATION_DEVIATIONS`] `diameter_validation_deviations_total` | counter | `node`, `application`, `avp`, `kind` |
//!
//! The `state` label of [`PEERS`] takes the RFC 6733 §5.6 spellings of [`PEER_STATES`] and
//! no other, so each peer has exactly one state at 1. Only configured peers (and peers added
//! through the API) have series of their own: the exporter cannot delete a series, so peers
//! that connect by policy and leave are counted together in [`UNCONFIGURED_PEERS`] (and as
//! `peer="unconfigured"` in [`UNKNOWN_ANSWERS`]), which bounds the series any number of
//! passing peers can create (issue 9: 4,000 departed peers grew `/metrics` without bound).
//!
//! The helpers record through the `metrics` facade, so they cost nothing measurable when no
//! recorder is installed, and tests can capture them with `metrics::with_local_recorder`.
//! On hot paths, keep the returned handles (`Counter`, `Histogram`) instead of looking
//! them up per message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::peer::PeerState;

use ::metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Peers by state: 1 for the state a peer is in, 0 for every other (RFC 6733 §5.6).
pub const PEERS: &str = "diameter_peers";

/// Unknown peers accepted by policy, counted by state.
pub const UNCONFIGURED_PEERS: &str = "diameter_unconfigured_peers";

/// The `peer` label value of series recorded for unconfigured peers.
pub const UNCONFIGURED: &str = "unconfigured";
/// Requests sent and received.
pub const REQUESTS: &str = "diameter_requests_total";
/// Answers sent and received, by Result-Code (or Experimental-Result-Code).
pub const ANSWERS: &str = "diameter_answers_total";
/// Time from sending a request to receiving its answer.
pub const REQUEST_DURATION: &str = "diameter_request_duration_seconds";
/// Requests sent and not yet answered.
pub const PENDING_REQUESTS: &str = "diameter_pending_requests";
/// Answers whose Hop-by-Hop Identifier matched no pending request, discarded (RFC 6733 §3:
/// "…the answer message … MUST be discarded" / §6.2.1).
pub const UNKNOWN_ANSWERS: &str = "diameter_unknown_answers_discarded_total";
/// DIAMETER_TOO_BUSY (3004, RFC 6733 §7.1.3) answers sent (load shedding) or received.
pub const TOO_BUSY: &str = "diameter_too_busy_total";
/// Failed accept(2) calls on the listeners, by `error`: `emfile`, `enfile`, `enobufs`,
/// `enomem` (the listener backs off) or `other`.
pub const ACCEPT_ERRORS: &str = "diameter_accept_errors_total";

/// Requests accepted although validation found a deviation (a grammar deviation inside a
/// Grouped AVP, an M bit against the dictionary), by application, AVP name and kind
/// (`diameter_codec::FindingKind::as_str`). AVP names come from the dictionary, so the
/// cardinality is bounded by it.
pub const VALIDATION_DEVIATIONS: &str = "diameter_validation_deviations_total";

/// The peer states of RFC 6733 §5.6, as the `state` label spells them.
pub const PEER_STATES: [&str; 8] = [
    "Closed",
    "Wait-Conn-Ack",
    "Wait-I-CEA",
    "Wait-Conn-Ack/Elect",
    "Wait-Returns",
    "R-Open",
    "I-Open",
    "Closing",
];

/// Histogram buckets for [`REQUEST_DURATION`], in seconds: 50 µs to 30 s (Tx timers are
/// typically a few seconds).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 5.0, 30.0,
];

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by this node.
    Sent,
    /// Received by this node.
    Received,
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Received => "received",
        }
    }
}

/// Registers help texts and units with the installed recorder. Called by [`install`]; call
/// it yourself after installing another recorder.
pub fn describe() {
    describe_gauge!(
        PEERS,
        "Diameter peers by state (1 = the peer is in this state), RFC 6733 section 5.6"
    );
    describe_counter!(
        REQUESTS,
        "Diameter requests by direction, application and command code"
    );
    describe_counter!(
        ANSWERS,
        "Diameter answers by direction, application, command code and result code"
    );
    describe_histogram!(
        REQUEST_DURATION,
        ::metrics::Unit::Seconds,
        "Time from sending a request to receiving its answer"
    );
    describe_gauge!(PENDING_REQUESTS, "Requests sent and not yet answered");
    describe_gauge!(
        UNCONFIGURED_PEERS,
        "Unknown peers accepted by policy, by state (RFC 6733 section 5.6)"
    );
    describe_counter!(
        UNKNOWN_ANSWERS,
        "Answers with an unknown Hop-by-Hop Identifier, discarded"
    );
    describe_counter!(
        TOO_BUSY,
        "DIAMETER_TOO_BUSY (3004) answers sent or received"
    );
    describe_counter!(
        ACCEPT_ERRORS,
        "Failed accepts on the listeners (out of descriptors or memory: backing off)"
    );
    describe_counter!(
        VALIDATION_DEVIATIONS,
        "Requests accepted with a validation deviation, by application, AVP and kind"
    );
}

/// The `node` label: the recording node's Origin-Host. Cheap to clone (one shared string),
/// so every series of a node shares it without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabel(Arc<str>);

impl NodeLabel {
    /// The label of the node whose Origin-Host is `origin_host`.
    pub fn new(origin_host: &str) -> Self {
        Self(origin_host.into())
    }

    /// The label value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn value(&self) -> ::metrics::SharedString {
        ::metrics::SharedString::from_shared(self.0.clone())
    }

    /// Identifies the label in the handle caches without hashing the string; unique while
    /// the cache keeps the label alive.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<u8>() as usize
    }
}

/// The `state` label of a peer state: RFC 6733 §5.6's name, one of [`PEER_STATES`].
pub fn peer_state_name(state: PeerState) -> &'static str {
    PEER_STATES[match state {
        PeerState::Closed => 0,
        PeerState::WaitConnAck => 1,
        PeerState::WaitICea => 2,
        PeerState::WaitConnAckElect => 3,
        PeerState::WaitReturns => 4,
        PeerState::ROpen => 5,
        PeerState::IOpen => 6,
        PeerState::Closing => 7,
    }]
}

/// Sets `peer`'s state as seen by `node`: 1 for `state`, 0 for every other state.
pub fn set_peer_state(node: &NodeLabel, peer: &str, state: PeerState) {
    let current = peer_state_name(state);
    for s in PEER_STATES {
        gauge!(PEERS, "node" => node.value(), "peer" => peer.to_owned(), "state" => s)
            .set(if s == current { 1.0 } else { 0.0 });
    }
}

/// An unconfigured peer moved from state `from` to `to` (`None`: it appeared or left).
pub fn move_unconfigured_peer(node: &NodeLabel, from: Option<PeerState>, to: Option<PeerState>) {
    if let Some(f) = from {
        gauge!(UNCONFIGURED_PEERS, "node" => node.value(), "state" => peer_state_name(f))
            .decrement(1.0);
    }
    if let Some(t) = to {
        gauge!(UNCONFIGURED_PEERS, "node" => node.value(), "state" => peer_state_name(t))
            .increment(1.0);
    }
}

/// A number as a label value without allocating each time: the first 4096 distinct values
/// are kept (commands, applications and result codes are far fewer), the rest are "other",
/// which also bounds the label cardinality a peer can cause.
fn num_label(v: u32) -> metrics::SharedString {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    static CACHE: OnceLock<RwLock<HashMap<u32, &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = cache.read().ok().and_then(|c| c.get(&v).copied()) {
        return metrics::SharedString::const_str(s);
    }
    let Ok(mut c) = cache.write() else {
        return metrics::SharedString::const_str("other");
    };
    if c.len() >= 4096 {
        return metrics::SharedString::const_str("other");
    }
    let s: &'static str = c
        .entry(v)
        .or_insert_with(|| Box::leak(v.to_string().into_boxed_str()));
    metrics::SharedString::const_str(s)
}

/// The request counter of `node` for one (direction, application, command).
pub fn requests(node: &NodeLabel, direction: Direction, application: u32, command: u32) -> Counter {
    counter!(REQUESTS, "node" => node.value(), "direction" => direction.as_str(), "application" => num_label(application), "command" => num_label(command))
}

/// Counts one request of `node`.
pub fn record_request(node: &NodeLabel, direction: Direction, application: u32, command: u32) {
    let series = CounterSeries::Request(direction, application, command);
    COUNTERS.with_borrow_mut(|c| {
        c.with(
            node,
            series,
            || requests(node, direction, application, command),
            |h| h.increment(1),
        );
    });
}

/// The answer counter of `node` for one (direction, application, command, result code).
pub fn answers(
    node: &NodeLabel,
    direction: Direction,
    application: u32,
    command: u32,
    result_code: u32,
) -> Counter {
    counter!(
        ANSWERS,
        "node" => node.value(),
        "direction" => direction.as_str(),
        "application" => num_label(application),
        "command" => num_label(command),
        "result_code" => num_label(result_code)
    )
}

/// Counts one answer of `node`; a 3004 also counts in [`TOO_BUSY`].
pub fn record_answer(
    node: &NodeLabel,
    direction: Direction,
    application: u32,
    command: u32,
    result_code: u32,
) {
    let series = CounterSeries::Answer(direction, application, command, result_code);
    COUNTERS.with_borrow_mut(|c| {
        c.with(
            node,
            series,
            || answers(node, direction, application, command, result_code),
            |h| h.increment(1),
        );
    });
    if result_code == 3004 {
        too_busy(node, direction).increment(1);
    }
}

/// The latency histogram of `node` for one (application, command).
pub fn request_duration(node: &NodeLabel, application: u32, command: u32) -> Histogram {
    histogram!(REQUEST_DURATION, "node" => node.value(), "application" => num_label(application), "command" => num_label(command))
}

/// Records how long a request of `node` waited for its answer.
pub fn record_request_duration(
    node: &NodeLabel,
    application: u32,
    command: u32,
    elapsed: Duration,
) {
    DURATIONS.with_borrow_mut(|c| {
        c.with(
            node,
            (application, command),
            || request_duration(node, application, command),
            |h| h.record(elapsed.as_secs_f64()),
        );
    });
}

/// The per-message counter series, as keys of the handle cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CounterSeries {
    Request(Direction, u32, u32),
    Answer(Direction, u32, u32, u32),
}

/// Series handles kept per thread: registering through the facade builds a label list and
/// looks the series up in the recorder on every call, several times per message. Bounded,
/// like the label values themselves.
const HANDLE_CACHE_MAX: usize = 1024;

/// Handles of one kind of series, valid for the recorder they were registered with. Keyed
/// by node too, through the address of its label's string: the labels of cached handles are
/// kept here, so no other label can reuse that address while the key exists.
struct HandleCache<K, H> {
    recorder: usize,
    handles: rustc_hash::FxHashMap<(usize, K), H>,
    nodes: Vec<NodeLabel>,
}

impl<K, H> Default for HandleCache<K, H> {
    fn default() -> Self {
        Self {
            recorder: 0,
            handles: rustc_hash::FxHashMap::default(),
            nodes: Vec::new(),
        }
    }
}

impl<K: Eq + std::hash::Hash, H> HandleCache<K, H> {
    /// Runs `f` on the handle of `key` for `node`, registered on first use. Handles
    /// registered with another recorder (none yet, or a test's local one) are dropped, not
    /// reused. The handle is lent, not cloned: a clone and its drop are two atomic
    /// operations on every message.
    fn with<R>(
        &mut self,
        node: &NodeLabel,
        key: K,
        register: impl FnOnce() -> H,
        f: impl FnOnce(&H) -> R,
    ) -> R {
        let id = ::metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize);
        if self.recorder != id {
            *self = Self {
                recorder: id,
                ..Self::default()
            };
        }
        let key = (node.id(), key);
        if let Some(h) = self.handles.get(&key) {
            return f(h);
        }
        let h = register();
        if self.handles.len() >= HANDLE_CACHE_MAX {
            return f(&h);
        }
        if !self.nodes.iter().any(|n| n.id() == key.0) {
            self.nodes.push(node.clone());
        }
        f(self.handles.entry(key).or_insert(h))
    }
}

thread_local! {
    static COUNTERS: std::cell::RefCell<HandleCache<CounterSeries, Counter>> =
        std::cell::RefCell::default();
    static DURATIONS: std::cell::RefCell<HandleCache<(u32, u32), Histogram>> =
        std::cell::RefCell::default();
}

/// The pending-requests gauge of `node` for one peer (increment on send, decrement on
/// answer or timeout, set to 0 when the peer's pending requests are failed over).
pub fn pending_requests(node: &NodeLabel, peer: &str) -> Gauge {
    gauge!(PENDING_REQUESTS, "node" => node.value(), "peer" => peer.to_owned())
}

/// Counts an answer `node` discarded for an unknown Hop-by-Hop Identifier (bad-inputs 35).
pub fn record_unknown_answer(node: &NodeLabel, peer: &str) {
    counter!(UNKNOWN_ANSWERS, "node" => node.value(), "peer" => peer.to_owned()).increment(1);
}

/// Counts a failed accept; `error` is one of the labels of [`ACCEPT_ERRORS`].
pub fn record_accept_error(node: &NodeLabel, error: &'static str) {
    counter!(ACCEPT_ERRORS, "node" => node.value(), "error" => error).increment(1);
}

/// The 3004 counter of `node` for one direction.
pub fn too_busy(node: &NodeLabel, direction: Direction) -> Counter {
    counter!(TOO_BUSY, "node" => node.value(), "direction" => direction.as_str())
}

/// Counts one deviation validation accepted in a request of `application` received by
/// `node` (rare: only messages that deviate pay for the lookup).
pub fn record_deviation(node: &NodeLabel, application: u32, avp: &str, kind: &'static str) {
    counter!(VALIDATION_DEVIATIONS, "node" => node.value(), "application" => num_label(application), "avp" => avp.to_owned(), "kind" => kind)
        .increment(1);
}

/// Why the exporter could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The listen address could not be bound, or a recorder is already installed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Port 0 was asked for and no free port could be found.
    #[error("choosing a free port: {0}")]
    Io(#[from] std::io::Error),
}

/// A builder with this crate's histogram buckets.
pub fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION.to_owned()),
            &DURATION_BUCKETS,
        )
        .expect("bucket list is not empty")
}

/// A recorder that is not installed globally (for `metrics::with_local_recorder` in tests,
/// or to combine with other recorders).
pub fn recorder() -> PrometheusRecorder {
    builder().build_recorder()
}

/// The installed exporter.
#[derive(Debug)]
pub struct MetricsHandle {
    addr: SocketAddr,
    prometheus: PrometheusHandle,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsHandle {
    /// Where `GET /metrics` (any path, in fact) is served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The exposition text, as served.
    pub fn render(&self) -> String {
        self.prometheus.render()
    }

    /// The underlying handle.
    pub fn prometheus(&self) -> &PrometheusHandle {
        &self.prometheus
    }
}

impl Drop for MetricsHandle {
    /// Stops serving HTTP. The global recorder stays installed (the `metrics` facade cannot
    /// uninstall it), so recording keeps working.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs the Prometheus recorder as the process's global `metrics` recorder and serves
/// the exposition format over HTTP on `addr`. Must be called inside a tokio runtime; once
/// per process (a second call fails with `BuildError::FailedToSetGlobalRecorder`).
///
/// Port 0 picks a free port (probed just before binding: tests only, there is a small
/// race); [`MetricsHandle::local_addr`] tells which.
pub fn install(addr: SocketAddr) -> Result<MetricsHandle, MetricsError> {
    let addr = if addr.port() == 0 {
        let probe = std::net::TcpListener::bind(addr)?;
        probe.local_addr()?
    } else {
        addr
    };
    let (recorder, exporter) = builder().with_http_listener(addr).build()?;
    let prometheus = recorder.handle();
    ::metrics::set_global_recorder(recorder).map_err(BuildError::from)?;
    describe();
    let task = tokio::spawn(async move {
        if let Err(e) = exporter.await {
            tracing::error!(error = ?e, "metrics exporter stopped");
        }
    });
    Ok(MetricsHandle {
        addr,
        prometheus,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn record_sample() {
        let node = NodeLabel::new("pcef.example.net");
        set_peer_state(&node, "pcrf.example.net", PeerState::IOpen);
        set_peer_state(&node, "pcrf.example.net", PeerState::ROpen);
        record_request(&node, Direction::Sent, 16_777_238, 272);
        record_answer(&node, Direction::Received, 16_777_238, 272, 2001);
        record_answer(&node, Direction::Received, 16_777_238, 272, 3004);
        record_request_duration(&node, 16_777_238, 272, Duration::from_micros(420));
        pending_requests(&node, "pcrf.example.net").set(3.0);
        record_unknown_answer(&node, "pcrf.example.net");
        too_busy(&node, Direction::Sent).increment(1);
        record_deviation(&node, 16_777_238, "Vendor-Id", "missing_avp");
        // A second node in the same process: its own series.
        let other = NodeLabel::new("pcrf.example.net");
        record_request(&other, Direction::Received, 16_777_238, 272);
        record_request(&other, Direction::Received, 16_777_238, 272);
    }

    #[test]
    fn local_recorder_sees_every_name() {
        let rec = recorder();
        let handle = rec.handle();
        ::metrics::with_local_recorder(&rec, record_sample);
        let text = handle.render();
        for name in [
            PEERS,
            REQUESTS,
            ANSWERS,
            PENDING_REQUESTS,
            UNKNOWN_ANSWERS,
            TOO_BUSY,
            VALIDATION_DEVIATIONS,
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(
            text.contains(&format!("{REQUEST_DURATION}_bucket")),
            "{text}"
        );
        assert!(
            text.contains(r#"diameter_peers{node="pcef.example.net",peer="pcrf.example.net",state="R-Open"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"diameter_peers{node="pcef.example.net",peer="pcrf.example.net",state="I-Open"} 0"#),
            "{text}"
        );
        assert!(text.contains(r#"result_code="3004""#), "{text}");
        assert!(
            text.contains(r#"diameter_validation_deviations_total{node="pcef.example.net",application="16777238",avp="Vendor-Id",kind="missing_avp"} 1"#),
            "{text}"
        );
        // The 3004 answer received plus the one we sent.
        assert!(
            text.contains(
                r#"diameter_too_busy_total{node="pcef.example.net",direction="received"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"diameter_too_busy_total{node="pcef.example.net",direction="sent"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"diameter_requests_total{node="pcrf.example.net",direction="received",application="16777238",command="272"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"diameter_requests_total{node="pcef.example.net",direction="sent",application="16777238",command="272"} 1"#),
            "{text}"
        );
    }

    /// The only test that installs the global recorder (once per process).
    #[tokio::test]
    async fn http_endpoint_serves_the_names() {
        let handle = install("127.0.0.1:0".parse().unwrap()).unwrap();
        record_sample();
        let mut s = tokio::net::TcpStream::connect(handle.local_addr())
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        for name in [
            PEERS,
            REQUESTS,
            ANSWERS,
            REQUEST_DURATION,
            PENDING_REQUESTS,
            UNKNOWN_ANSWERS,
            TOO_BUSY,
            VALIDATION_DEVIATIONS,
        ] {
            assert!(body.contains(name), "{name} missing from:\n{body}");
        }
        assert!(body.contains("# HELP diameter_requests_total"), "{body}");
        assert!(body.contains(r#"diameter_request_duration_seconds_bucket{node="pcef.example.net",application="16777238",command="272",le="0.0005"} 1"#), "{body}");
        // A second install fails cleanly.
        assert!(install("127.0.0.1:0".parse().unwrap()).is_err());
    }
}
