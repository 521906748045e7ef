//! Prometheus series of the OCS, in the style of `diameter_node::metrics` (names start with
//! `ocs_`, counters end in `_total`, durations are seconds, labels are bounded by the
//! protocol).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | [`SESSIONS`] `ocs_sessions` | gauge | |
//! | [`RESERVATIONS`] `ocs_reservations` | gauge | |
//! | [`CCRS`] `ocs_ccr_total` | counter | `type` (initial, update, termination, event; invalid for CCRs that could not be read), `result_code`, `duplicate` |
//! | [`CCR_DURATION`] `ocs_ccr_duration_seconds` | histogram (CCR received to CCA built, the commit included) | `type` |
//! | [`COMMIT_DURATION`] `ocs_store_commit_seconds` | histogram | |
//! | [`BATCH_SIZE`] `ocs_store_batch_size` | histogram (operations per commit) | |
//! | [`COMMIT_FAILURES`] `ocs_store_commit_failures_total` | counter | |
//! | [`FOLD_DURATION`] `ocs_store_fold_seconds` | histogram (journal folded into the tables) | |
//! | [`TCC_EXPIRED`] `ocs_tcc_expired_sessions_total` | counter | |
//! | [`RARS`] `ocs_rar_total` | counter | `result_code` (or `none`) |

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusHandle};
use std::net::SocketAddr;
use std::time::Duration;

/// Live credit-control sessions.
pub const SESSIONS: &str = "ocs_sessions";
/// Reservations held by live sessions.
pub const RESERVATIONS: &str = "ocs_reservations";
/// CCRs answered.
pub const CCRS: &str = "ocs_ccr_total";
/// Time from a CCR's arrival at the handler to its answer, the commit included.
pub const CCR_DURATION: &str = "ocs_ccr_duration_seconds";
/// Time to run and commit one group of store operations.
pub const COMMIT_DURATION: &str = "ocs_store_commit_seconds";
/// Operations per commit (group commit).
pub const BATCH_SIZE: &str = "ocs_store_batch_size";
/// Time to fold the store's journal into its tables (one transaction).
pub const FOLD_DURATION: &str = "ocs_store_fold_seconds";
/// Commits that failed (every operation of the batch failed with them).
pub const COMMIT_FAILURES: &str = "ocs_store_commit_failures_total";
/// Sessions whose reservations the Tcc sweep released.
pub const TCC_EXPIRED: &str = "ocs_tcc_expired_sessions_total";
/// Re-Auth-Requests sent, by answer.
pub const RARS: &str = "ocs_rar_total";
/// Visited role: requests answered by a home OCS, by its host.
pub const HOME_REQUESTS: &str = "ocs_visited_home_requests_total";
/// Visited role: updates answered locally from the held home grant.
pub const LOCAL_REAUTHS: &str = "ocs_visited_local_reauthorisations_total";
/// Visited role: requests the secondary home OCS answered in place of the primary.
pub const HOME_FAILOVERS: &str = "ocs_visited_home_failovers_total";
/// Visited role: requests no home OCS answered.
pub const HOME_UNREACHABLE: &str = "ocs_visited_home_unreachable_total";
/// Home role: what visited OCSs reported (Visited-Credit-Decision, Locally-Absorbed-Usage).
pub const VISITED_REPORTS: &str = "ocs_visited_reports_total";

/// Buckets of [`COMMIT_DURATION`]: 50 µs to 1 s.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.25, 1.0,
];
/// Buckets of [`BATCH_SIZE`].
pub const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Help texts.
pub fn describe() {
    diameter_node::metrics::describe();
    describe_gauge!(SESSIONS, "Live credit-control sessions");
    describe_gauge!(RESERVATIONS, "Reservations held by live sessions");
    describe_counter!(
        CCRS,
        "CCRs answered, by CC-Request-Type, Result-Code and whether it was a retransmission answered from the stored answer"
    );
    describe_histogram!(
        CCR_DURATION,
        metrics::Unit::Seconds,
        "Time from a CCR's arrival at the handler to its answer, the store commit included"
    );
    describe_histogram!(
        COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time to run and commit one group of store operations"
    );
    describe_histogram!(
        BATCH_SIZE,
        "Store operations committed together (group commit)"
    );
    describe_counter!(COMMIT_FAILURES, "Store commits that failed");
    describe_histogram!(
        FOLD_DURATION,
        metrics::Unit::Seconds,
        "Time to fold the store's journal of recent changes into its tables"
    );
    describe_counter!(
        TCC_EXPIRED,
        "Sessions silent past Tcc whose reservations were released"
    );
    describe_counter!(RARS, "Re-Auth-Requests sent, by Result-Code of the answer");
    describe_counter!(
        HOME_REQUESTS,
        "Visited role: requests answered by a home OCS, by home host"
    );
    describe_counter!(
        LOCAL_REAUTHS,
        "Visited role: updates answered locally from the held home grant"
    );
    describe_counter!(
        HOME_FAILOVERS,
        "Visited role: requests answered by a home OCS other than the primary, by home host"
    );
    describe_counter!(
        HOME_UNREACHABLE,
        "Visited role: requests that no home OCS answered"
    );
    describe_counter!(
        VISITED_REPORTS,
        "Home role: Visited-Credit-Decision and Locally-Absorbed-Usage AVPs received, by kind"
    );
}

/// Counts one CCR answered.
pub fn record_ccr(kind: &'static str, result_code: u32, duplicate: bool) {
    let code = result_label(result_code);
    cached(&CCR_COUNTERS, (kind, code, duplicate), || {
        counter!(CCRS, "type" => kind, "result_code" => code, "duplicate" => if duplicate { "true" } else { "false" })
    })
    .increment(1);
}

/// Series handles of the recorder they were registered with, per thread: registering
/// through the facade builds the label list and looks the series up on every call, on the
/// path of every CCR. Keys are bounded (request types × result labels × duplicate).
struct Handles<K, H> {
    recorder: usize,
    map: std::collections::HashMap<K, H>,
}

impl<K, H> Default for Handles<K, H> {
    fn default() -> Self {
        Self {
            recorder: 0,
            map: std::collections::HashMap::new(),
        }
    }
}

type CcrKey = (&'static str, &'static str, bool);

thread_local! {
    static CCR_COUNTERS: std::cell::RefCell<Handles<CcrKey, metrics::Counter>> =
        std::cell::RefCell::default();
    static CCR_HISTOGRAMS: std::cell::RefCell<Handles<&'static str, metrics::Histogram>> =
        std::cell::RefCell::default();
}

fn cached<K, H>(
    cache: &'static std::thread::LocalKey<std::cell::RefCell<Handles<K, H>>>,
    key: K,
    register: impl FnOnce() -> H,
) -> H
where
    K: Eq + std::hash::Hash,
    H: Clone,
{
    let recorder = metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize);
    cache.with_borrow_mut(|c| {
        if c.recorder != recorder {
            *c = Handles {
                recorder,
                ..Handles::default()
            };
        }
        c.map.entry(key).or_insert_with(register).clone()
    })
}

fn result_label(rc: u32) -> &'static str {
    match rc {
        2001 => "2001",
        4010 => "4010",
        4011 => "4011",
        4012 => "4012",
        5002 => "5002",
        5004 => "5004",
        5005 => "5005",
        5012 => "5012",
        5030 => "5030",
        5031 => "5031",
        _ => "other",
    }
}

/// Records how long a CCR took.
pub fn record_ccr_duration(kind: &'static str, elapsed: Duration) {
    cached(
        &CCR_HISTOGRAMS,
        kind,
        || histogram!(CCR_DURATION, "type" => kind),
    )
    .record(elapsed.as_secs_f64());
}

/// Records one commit.
pub fn record_commit(operations: usize, elapsed: Duration, ok: bool) {
    histogram!(BATCH_SIZE).record(operations as f64);
    histogram!(COMMIT_DURATION).record(elapsed.as_secs_f64());
    if !ok {
        counter!(COMMIT_FAILURES).increment(1);
    }
}

/// Records a fold of the store's journal.
pub fn record_fold(elapsed: Duration) {
    histogram!(FOLD_DURATION).record(elapsed.as_secs_f64());
}

/// Sets the size gauges.
pub fn set_sizes(sessions: u64, reservations: u64) {
    gauge!(SESSIONS).set(sessions as f64);
    gauge!(RESERVATIONS).set(reservations as f64);
}

/// Counts sessions expired by Tcc.
pub fn record_tcc_expired(n: u64) {
    counter!(TCC_EXPIRED).increment(n);
}

/// Counts a RAR and its answer.
pub fn record_rar(result_code: Option<u32>) {
    let label = match result_code {
        Some(2001) => "2001",
        Some(5002) => "5002",
        Some(_) => "other",
        None => "none",
    };
    counter!(RARS, "result_code" => label).increment(1);
}

/// Counts a request a home OCS answered.
pub fn record_home_request(host: &str) {
    counter!(HOME_REQUESTS, "home" => host.to_string()).increment(1);
}

/// Counts an update answered locally.
pub fn record_local_reauth() {
    counter!(LOCAL_REAUTHS).increment(1);
}

/// Counts a request the secondary home OCS answered.
pub fn record_home_failover(host: &str) {
    counter!(HOME_FAILOVERS, "home" => host.to_string()).increment(1);
}

/// Counts a request no home OCS answered.
pub fn record_home_unreachable() {
    counter!(HOME_UNREACHABLE).increment(1);
}

/// Counts a report from a visited OCS.
pub fn record_visited_report(kind: &'static str) {
    counter!(VISITED_REPORTS, "kind" => kind).increment(1);
}

/// The running exporter; dropping it stops serving HTTP (the recorder stays installed).
#[derive(Debug)]
pub struct Exporter {
    handle: PrometheusHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// The exposition text, as served.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs the Prometheus recorder as the process's global recorder (the node's buckets
/// plus ours) and serves it on `addr` (`GET /metrics`). Once per process, inside a runtime.
pub fn install(addr: SocketAddr) -> anyhow::Result<Exporter> {
    let (recorder, exporter) = diameter_node::metrics::builder()
        .set_buckets_for_metric(Matcher::Full(COMMIT_DURATION.into()), &COMMIT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(CCR_DURATION.into()), &COMMIT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(FOLD_DURATION.into()), &COMMIT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &BATCH_BUCKETS)?
        .with_http_listener(addr)
        .build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    describe();
    let task = tokio::spawn(async move {
        if let Err(e) = exporter.await {
            tracing::error!(error = ?e, "metrics exporter stopped");
        }
    });
    Ok(Exporter { handle, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_names_render() {
        let rec = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &BATCH_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            record_ccr("update", 2001, false);
            record_ccr("update", 2001, true);
            record_ccr("initial", 4012, false);
            record_commit(7, Duration::from_micros(300), true);
            record_fold(Duration::from_millis(2));
            set_sizes(3, 4);
            record_tcc_expired(2);
            record_rar(Some(2001));
            record_ccr_duration("update", Duration::from_micros(800));
            record_home_request("ocs2.home.test");
            record_home_failover("ocs2.home.test");
            record_local_reauth();
            record_home_unreachable();
            record_visited_report("decision");
        });
        let text = handle.render();
        for name in [
            SESSIONS,
            RESERVATIONS,
            CCRS,
            COMMIT_DURATION,
            FOLD_DURATION,
            TCC_EXPIRED,
            RARS,
            HOME_REQUESTS,
            HOME_FAILOVERS,
            LOCAL_REAUTHS,
            HOME_UNREACHABLE,
            VISITED_REPORTS,
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        assert!(
            text.contains(r#"ocs_visited_home_failovers_total{home="ocs2.home.test"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ocs_ccr_total{type="update",result_code="2001",duplicate="true"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ocs_store_batch_size_bucket{le="8"} 1"#),
            "{text}"
        );
        assert!(text.contains("ocs_sessions 3"), "{text}");
    }
}
