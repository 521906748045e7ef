//! Prometheus series of the DRA, in the style of `diameter_node::metrics`: names start with
//! `dra_`, counters end in `_total`, labels are bounded, every series carries `node` (the
//! DRA's Origin-Host).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | [`BINDINGS`] `dra_bindings` | gauge | `node` |
//! | [`SESSIONS`] `dra_bound_sessions` | gauge | `node`, `state` (active, terminated) |
//! | [`REQUESTS`] `dra_requests_total` | counter | `node`, `interface` (gx, gxx, rx, s9), `kind` (establish, update, terminate, subsession_end, pcrf_initiated), `mode` (redirect, proxy), `result` (redirected, proxied, answered_2001, answered_3002, answered_5002, answered_5005, answered_5065, answered_other) |
//! | [`TERMINATIONS`] `dra_terminations_total` | counter (sessions marked terminated) | `node`, `interface` |
//! | [`RELEASED`] `dra_bindings_released_total` | counter | `node`, `reason` (terminated, pcrf_down, client_restart, establishment_failed, aged_out, audit) |
//! | [`AUDITED`] `dra_audit_checks_total` | counter (Session-Status requests of the audit) | `node`, `result` (held, gone, unknown) |
//! | [`BINDING_AGE`] `dra_binding_age_seconds` | histogram (age of entries when deleted) | `node` |

use crate::binding::{Interface, Mode, Stats};
use metrics::{
    Counter, Gauge, Histogram, SharedString, counter, describe_counter, describe_gauge,
    describe_histogram, gauge, histogram,
};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

/// Entries (IP-CAN sessions or UEs) bound.
pub const BINDINGS: &str = "dra_bindings";
/// Sessions bound, by state.
pub const SESSIONS: &str = "dra_bound_sessions";
/// Requests handled.
pub const REQUESTS: &str = "dra_requests_total";
/// Sessions marked terminated.
pub const TERMINATIONS: &str = "dra_terminations_total";
/// Entries deleted, by why.
pub const RELEASED: &str = "dra_bindings_released_total";
/// Session-Status checks of the audit, by verdict.
pub const AUDITED: &str = "dra_audit_checks_total";
/// Age of entries when deleted.
pub const BINDING_AGE: &str = "dra_binding_age_seconds";

/// Help texts.
pub fn describe() {
    describe_gauge!(BINDINGS, "IP-CAN session (or UE) entries bound to a PCRF");
    describe_gauge!(SESSIONS, "Diameter sessions bound, by state");
    describe_counter!(
        REQUESTS,
        "Requests handled, by interface, kind, mode and result"
    );
    describe_counter!(
        TERMINATIONS,
        "Bound sessions marked terminated, by interface"
    );
    describe_counter!(RELEASED, "Binding entries deleted, by reason");
    describe_counter!(
        AUDITED,
        "Sessions checked with their PCRF by the session-status audit, by verdict"
    );
    describe_histogram!(BINDING_AGE, "Age of binding entries when deleted, seconds");
}

/// The `node` label, and the series registered under it.
#[derive(Debug, Clone)]
pub struct Label(Arc<str>, Arc<Handles>);

/// The series already registered, by their other labels: a request, a termination or a
/// change of the gauges then costs a lookup in a small map instead of building and
/// registering the labelled key again. Registered on first use, so under the recorder
/// installed by then.
#[derive(Debug, Default)]
struct Handles {
    /// A short list searched in order: a handful of label sets occur, and comparing them is
    /// cheaper than hashing two strings.
    requests: Mutex<Vec<(RequestLabels, Counter)>>,
    terminations: Mutex<HashMap<Interface, Counter>>,
    released: Mutex<HashMap<&'static str, Counter>>,
    /// Bindings, active sessions, terminated sessions.
    stats: OnceLock<[Gauge; 3]>,
    age: OnceLock<Histogram>,
}

/// Interface, kind, mode and result of a request.
type RequestLabels = (Interface, &'static str, Mode, &'static str);

/// The handle of `key` in `known`, registered by `make` the first time.
fn cached<K: Hash + Eq, V: Clone>(
    known: &Mutex<HashMap<K, V>>,
    key: K,
    make: impl FnOnce() -> V,
) -> Option<V> {
    let mut known = known.lock().ok()?;
    Some(known.entry(key).or_insert_with(make).clone())
}

/// A result as a label.
pub fn answered(rc: u32) -> &'static str {
    match rc {
        2001 => "answered_2001",
        3002 => "answered_3002",
        5002 => "answered_5002",
        5005 => "answered_5005",
        5065 => "answered_5065",
        _ => "answered_other",
    }
}

impl Label {
    /// For the DRA whose Origin-Host is `host`.
    pub fn new(host: &str) -> Self {
        Self(host.into(), Arc::default())
    }

    fn v(&self) -> SharedString {
        SharedString::from_shared(self.0.clone())
    }

    /// Sets the gauges.
    pub fn set_stats(&self, s: Stats) {
        let [bindings, active, terminated] = self.1.stats.get_or_init(|| {
            [
                gauge!(BINDINGS, "node" => self.v()),
                gauge!(SESSIONS, "node" => self.v(), "state" => "active"),
                gauge!(SESSIONS, "node" => self.v(), "state" => "terminated"),
            ]
        });
        bindings.set(s.bindings as f64);
        active.set(s.active_sessions as f64);
        terminated.set(s.terminated_sessions as f64);
    }

    /// Counts one request.
    pub fn request(&self, iface: Interface, kind: &'static str, mode: Mode, result: &'static str) {
        let Ok(mut known) = self.1.requests.lock() else {
            return;
        };
        let labels = (iface, kind, mode, result);
        match known.iter().find(|(l, _)| *l == labels) {
            Some((_, c)) => c.increment(1),
            None => {
                let c = counter!(REQUESTS, "node" => self.v(), "interface" => iface.as_str(), "kind" => kind,
                    "mode" => mode.as_str(), "result" => result);
                c.increment(1);
                known.push((labels, c));
            }
        }
    }

    /// Counts a session marked terminated.
    pub fn terminated(&self, iface: Interface) {
        if let Some(c) = cached(
            &self.1.terminations,
            iface,
            || counter!(TERMINATIONS, "node" => self.v(), "interface" => iface.as_str()),
        ) {
            c.increment(1);
        }
    }

    /// Counts a session checked by the session-status audit.
    pub fn audited(&self, result: &'static str) {
        counter!(AUDITED, "node" => self.v(), "result" => result).increment(1);
    }

    /// Counts entries deleted, with their age.
    pub fn released(&self, reason: &'static str, ages_s: impl IntoIterator<Item = f64>) {
        let age_of = self
            .1
            .age
            .get_or_init(|| histogram!(BINDING_AGE, "node" => self.v()));
        let Some(count) = cached(
            &self.1.released,
            reason,
            || counter!(RELEASED, "node" => self.v(), "reason" => reason),
        ) else {
            return;
        };
        for age in ages_s {
            count.increment(1);
            age_of.record(age);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_the_node_label() {
        let rec = diameter_node::metrics::recorder();
        let handle = rec.handle();
        metrics::with_local_recorder(&rec, || {
            let l = Label::new("dra.home.test");
            l.set_stats(Stats {
                bindings: 2,
                active_sessions: 3,
                terminated_sessions: 1,
            });
            l.request(Interface::Gx, "establish", Mode::Redirect, "redirected");
            l.request(Interface::Rx, "establish", Mode::Proxy, answered(5065));
            l.terminated(Interface::Gx);
            l.released("pcrf_down", [1.5]);
        });
        let text = handle.render();
        for want in [
            "dra_bindings{node=\"dra.home.test\"} 2",
            "dra_bound_sessions{node=\"dra.home.test\",state=\"active\"} 3",
            "dra_requests_total{node=\"dra.home.test\",interface=\"gx\",kind=\"establish\",mode=\"redirect\",result=\"redirected\"} 1",
            "dra_requests_total{node=\"dra.home.test\",interface=\"rx\",kind=\"establish\",mode=\"proxy\",result=\"answered_5065\"} 1",
            "dra_terminations_total{node=\"dra.home.test\",interface=\"gx\"} 1",
            "dra_bindings_released_total{node=\"dra.home.test\",reason=\"pcrf_down\"} 1",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}
