//! Prometheus series of the PCRF, in the style of `diameter_node::metrics`: names start with
//! `pcrf_`, counters end in `_total`, labels are bounded by the protocol, and every series
//! carries `node`, the PCRF's Origin-Host, so several PCRFs in one process (a lab, a test)
//! keep their series apart.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | [`GX_SESSIONS`] `pcrf_gx_sessions` | gauge | `node` |
//! | [`GX_CCRS`] `pcrf_gx_ccr_total` | counter | `node`, `type` (initial, update, termination, event, invalid), `result_code` (Result-Code or Experimental-Result-Code) |
//! | [`RULES_INSTALLED`] `pcrf_rules_installed_total` | counter (rules in Charging-Rule-Install of CCAs and of RARs answered 2001) | `node`, `kind` (dynamic, predefined, base) |
//! | [`RULE_FAILURES`] `pcrf_rule_failures_total` | counter (Charging-Rule-Report entries) | `node`, `rule_failure_code` |
//! | [`RARS`] `pcrf_gx_rar_total` | counter | `node`, `result_code` (or `none` when no answer came) |
//! | [`SESSIONS_RELEASED`] `pcrf_gx_sessions_released_total` | counter | `node`, `reason` (termination, pcef_restart, unknown_at_pcef) |
//! | [`GXX_CCRS`] `pcrf_gxx_ccr_total` | counter | `node`, `type`, `result_code` |
//! | [`GXX_RARS`] `pcrf_gxx_rar_total` | counter (QoS rules pushed to BBERFs) | `node`, `result_code` (or `none`) |
//! | [`S9_SESSIONS`] `pcrf_s9_sessions` | gauge (S9 sessions of V-PCRFs) | `node` |
//! | [`S9_CCRS`] `pcrf_s9_ccr_total` | counter | `node`, `type` (initial, update, termination, event, invalid, refused — not from a roaming partner), `result_code` |
//! | [`S9_RARS`] `pcrf_s9_rar_total` | counter (S9 RARs to V-PCRFs) | `node`, `result_code` (or `none`) |
//! | [`S9_SESSIONS_RELEASED`] `pcrf_s9_sessions_released_total` | counter | `node`, `reason` (termination, vpcrf_restart, unknown_at_vpcrf) |
//! | [`RX_SESSIONS`] `pcrf_rx_sessions` | gauge | `node` |
//! | [`RX_REQUESTS`] `pcrf_rx_request_total` | counter (AAR and STR answered) | `node`, `command` (aar_initial, aar_update, str, invalid), `result_code` |
//! | [`LBO_GRANTS`] `pcrf_lbo_grants_total` | counter (local-breakout grants: AAR or preset, as the visited side and the home checks answered) | `node`, `source` (af, preset; visited: a V-PCRF's check of a pushed LBO rule, `ok` or the refusal's reason), `outcome` (accepted, refused), `reason` (`ok` or `issued` (preset), a [`crate::lbo::LboRefusal::reason`] — also for the V-PCRF's refusal codes —, `no_agreement`, `not_authorized` (no LBO offered, UE not roaming, a modification, a rule the user plane did not install), `ip_can_session_not_available`, `no_answer`, `visited_refused` (an unknown code), `other`) |
//! | [`RX_NOTIFICATIONS`] `pcrf_rx_notification_total` | counter (RAR and ASR sent to AFs) | `node`, `command` (rar, asr), `reason` (ip_can_loss, rule_report, ip_can_change, charging_correlation), `result_code` (or `none`) |

use metrics::{SharedString, counter, describe_counter, describe_gauge, gauge};
use std::sync::Arc;

/// Live Gx sessions.
pub const GX_SESSIONS: &str = "pcrf_gx_sessions";
/// Gx CCRs answered, by CC-Request-Type and result.
pub const GX_CCRS: &str = "pcrf_gx_ccr_total";
/// PCC rules installed (or activated) on PCEFs.
pub const RULES_INSTALLED: &str = "pcrf_rules_installed_total";
/// Rule failures reported by PCEFs.
pub const RULE_FAILURES: &str = "pcrf_rule_failures_total";
/// Gx RARs sent, by the answer's result.
pub const RARS: &str = "pcrf_gx_rar_total";
/// Gx sessions ended, by why.
pub const SESSIONS_RELEASED: &str = "pcrf_gx_sessions_released_total";

/// Live Rx sessions.
pub const RX_SESSIONS: &str = "pcrf_rx_sessions";
/// Rx requests answered.
pub const RX_REQUESTS: &str = "pcrf_rx_request_total";
/// Rx RARs and ASRs sent to AFs.
pub const RX_NOTIFICATIONS: &str = "pcrf_rx_notification_total";

/// Rx bindings made despite a deviation (by kind).
pub const RX_BINDING_DEVIATIONS: &str = "pcrf_rx_binding_deviations_total";

/// Local-breakout grants accepted or refused.
pub const LBO_GRANTS: &str = "pcrf_lbo_grants_total";

/// Gxx CCRs answered.
pub const GXX_CCRS: &str = "pcrf_gxx_ccr_total";
/// Gxx RARs sent.
pub const GXX_RARS: &str = "pcrf_gxx_rar_total";

/// Live S9 sessions.
pub const S9_SESSIONS: &str = "pcrf_s9_sessions";
/// S9 CCRs answered.
pub const S9_CCRS: &str = "pcrf_s9_ccr_total";
/// S9 RARs sent.
pub const S9_RARS: &str = "pcrf_s9_rar_total";
/// S9 sessions ended, by why.
pub const S9_SESSIONS_RELEASED: &str = "pcrf_s9_sessions_released_total";

/// Help texts (after `diameter_node::metrics::install`, which describes the node's).
pub fn describe() {
    describe_gauge!(GX_SESSIONS, "Live Gx sessions");
    describe_counter!(
        GX_CCRS,
        "Gx CCRs answered, by CC-Request-Type and Result-Code or Experimental-Result-Code"
    );
    describe_counter!(
        RULES_INSTALLED,
        "PCC rules installed or activated on PCEFs, by kind"
    );
    describe_counter!(
        RULE_FAILURES,
        "Charging-Rule-Report failures reported by PCEFs, by Rule-Failure-Code"
    );
    describe_counter!(RARS, "Gx Re-Auth-Requests sent, by the answer's result");
    describe_counter!(SESSIONS_RELEASED, "Gx sessions ended, by reason");
    describe_counter!(GXX_CCRS, "Gxx CCRs answered, by CC-Request-Type and result");
    describe_counter!(
        GXX_RARS,
        "Gxx Re-Auth-Requests sent, by the answer's result"
    );
    describe_gauge!(S9_SESSIONS, "Live S9 sessions of V-PCRFs");
    describe_counter!(
        S9_CCRS,
        "S9 CCRs answered, by CC-Request-Type (or refused: not a roaming partner) and result"
    );
    describe_counter!(S9_RARS, "S9 Re-Auth-Requests sent, by the answer's result");
    describe_counter!(S9_SESSIONS_RELEASED, "S9 sessions ended, by reason");
    describe_gauge!(RX_SESSIONS, "Live Rx (AF) sessions");
    describe_counter!(
        RX_REQUESTS,
        "Rx AARs and STRs answered, by kind and Result-Code or Experimental-Result-Code"
    );
    describe_counter!(
        RX_BINDING_DEVIATIONS,
        "AF sessions bound by UE address although the AAR deviated, by kind"
    );
    describe_counter!(
        LBO_GRANTS,
        "Local-breakout grants accepted or refused, by source and reason"
    );
    describe_counter!(
        RX_NOTIFICATIONS,
        "Rx RARs and ASRs sent to AFs, by command, reason and the answer's result"
    );
    crate::visited::describe_metrics();
}

/// The `node` label: the PCRF's Origin-Host, shared by all its series.
#[derive(Debug, Clone)]
pub struct Label(Arc<str>);

/// A result code as a label: the codes a PCRF sends and sees, else `other`, so a peer
/// cannot grow the series.
fn code_label(rc: u32) -> &'static str {
    match rc {
        2001 => "2001",
        2002 => "2002",
        3002 => "3002",
        3004 => "3004",
        4261 => "4261",
        5002 => "5002",
        5003 => "5003",
        5004 => "5004",
        5005 => "5005",
        5012 => "5012",
        5030 => "5030",
        5061 => "5061",
        5062 => "5062",
        5063 => "5063",
        5065 => "5065",
        5142 => "5142",
        5143 => "5143",
        5144 => "5144",
        5470 => "5470",
        4001 => "4001",
        5801 => "5801",
        5802 => "5802",
        5803 => "5803",
        5804 => "5804",
        5805 => "5805",
        5806 => "5806",
        5807 => "5807",
        5808 => "5808",
        5809 => "5809",
        _ => "other",
    }
}

impl Label {
    /// The label of the PCRF whose Origin-Host is `host`.
    pub fn new(host: &str) -> Self {
        Self(host.into())
    }

    fn v(&self) -> SharedString {
        SharedString::from_shared(self.0.clone())
    }

    /// Sets the live session gauge.
    pub fn set_sessions(&self, n: u64) {
        gauge!(GX_SESSIONS, "node" => self.v()).set(n as f64);
    }

    /// Counts one CCR answered.
    pub fn ccr(&self, kind: &'static str, result_code: u32) {
        counter!(GX_CCRS, "node" => self.v(), "type" => kind, "result_code" => code_label(result_code))
            .increment(1);
    }

    /// Counts rules installed.
    pub fn installed(&self, dynamic: usize, predefined: usize, bases: usize) {
        for (kind, n) in [
            ("dynamic", dynamic),
            ("predefined", predefined),
            ("base", bases),
        ] {
            if n > 0 {
                counter!(RULES_INSTALLED, "node" => self.v(), "kind" => kind).increment(n as u64);
            }
        }
    }

    /// Counts one rule failure (Rule-Failure-Code 1–29 named by number, others `other`).
    pub fn rule_failure(&self, code: Option<i32>) {
        const CODES: [&str; 30] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16", "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29",
        ];
        let l = match code {
            Some(c) if (1..30).contains(&c) => CODES[c as usize],
            Some(_) => "other",
            None => "none",
        };
        counter!(RULE_FAILURES, "node" => self.v(), "rule_failure_code" => l).increment(1);
    }

    /// Counts a RAR and its answer.
    pub fn rar(&self, result_code: Option<u32>) {
        let l = result_code.map_or("none", code_label);
        counter!(RARS, "node" => self.v(), "result_code" => l).increment(1);
    }

    /// Counts one Gxx CCR answered.
    pub fn gxx_ccr(&self, kind: &'static str, result_code: u32) {
        counter!(GXX_CCRS, "node" => self.v(), "type" => kind, "result_code" => code_label(result_code))
            .increment(1);
    }

    /// Counts a Gxx RAR and its answer.
    pub fn gxx_rar(&self, result_code: Option<u32>) {
        let l = result_code.map_or("none", code_label);
        counter!(GXX_RARS, "node" => self.v(), "result_code" => l).increment(1);
    }

    /// Sets the live Rx session gauge.
    pub fn set_rx_sessions(&self, n: u64) {
        gauge!(RX_SESSIONS, "node" => self.v()).set(n as f64);
    }

    /// Counts one Rx request answered.
    pub fn rx_request(&self, command: &'static str, result_code: u32) {
        counter!(RX_REQUESTS, "node" => self.v(), "command" => command, "result_code" => code_label(result_code))
            .increment(1);
    }

    /// Counts one AF session bound despite a deviation of kind `kind`.
    pub fn rx_binding_deviation(&self, kind: &'static str) {
        counter!(RX_BINDING_DEVIATIONS, "node" => self.v(), "kind" => kind).increment(1);
    }

    /// Counts one RAR or ASR sent to an AF, and its answer.
    pub fn rx_notification(
        &self,
        command: &'static str,
        reason: &'static str,
        result_code: Option<u32>,
    ) {
        let l = result_code.map_or("none", code_label);
        counter!(RX_NOTIFICATIONS, "node" => self.v(), "command" => command, "reason" => reason, "result_code" => l)
            .increment(1);
    }

    /// Sets the live S9 session gauge.
    pub fn set_s9_sessions(&self, n: u64) {
        gauge!(S9_SESSIONS, "node" => self.v()).set(n as f64);
    }

    /// Counts one S9 CCR answered.
    pub fn s9_ccr(&self, kind: &'static str, result_code: u32) {
        counter!(S9_CCRS, "node" => self.v(), "type" => kind, "result_code" => code_label(result_code))
            .increment(1);
    }

    /// Counts an S9 RAR and its answer.
    pub fn s9_rar(&self, result_code: Option<u32>) {
        let l = result_code.map_or("none", code_label);
        counter!(S9_RARS, "node" => self.v(), "result_code" => l).increment(1);
    }

    /// Counts one local-breakout grant's outcome (`reason` "ok" when accepted).
    pub fn lbo_grant(&self, source: &'static str, accepted: bool, reason: &'static str) {
        let outcome = if accepted { "accepted" } else { "refused" };
        counter!(LBO_GRANTS, "node" => self.v(), "source" => source, "outcome" => outcome, "reason" => reason)
            .increment(1);
    }

    /// Counts S9 sessions released.
    pub fn s9_released(&self, reason: &'static str, n: usize) {
        if n > 0 {
            counter!(S9_SESSIONS_RELEASED, "node" => self.v(), "reason" => reason)
                .increment(n as u64);
        }
    }

    /// Counts sessions released.
    pub fn released(&self, reason: &'static str, n: usize) {
        if n > 0 {
            counter!(SESSIONS_RELEASED, "node" => self.v(), "reason" => reason).increment(n as u64);
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
            let l = Label::new("pcrf.home.test");
            l.set_sessions(3);
            l.ccr("initial", 2001);
            l.ccr("update", 4242);
            l.installed(2, 1, 0);
            l.rule_failure(Some(4));
            l.rule_failure(Some(400));
            l.rar(Some(2001));
            l.rar(None);
            l.released("pcef_restart", 2);
            l.set_rx_sessions(1);
            l.rx_request("aar_initial", 5065);
            l.rx_notification("asr", "ip_can_loss", Some(2001));
            l.gxx_ccr("initial", 2001);
            l.gxx_rar(None);
            l.set_s9_sessions(2);
            l.s9_ccr("refused", 5003);
            l.s9_rar(Some(2001));
            l.s9_released("vpcrf_restart", 1);
        });
        let text = handle.render();
        for want in [
            "pcrf_gx_sessions{node=\"pcrf.home.test\"} 3",
            "pcrf_gx_ccr_total{node=\"pcrf.home.test\",type=\"initial\",result_code=\"2001\"} 1",
            "pcrf_gx_ccr_total{node=\"pcrf.home.test\",type=\"update\",result_code=\"other\"} 1",
            "pcrf_rules_installed_total{node=\"pcrf.home.test\",kind=\"dynamic\"} 2",
            "pcrf_rule_failures_total{node=\"pcrf.home.test\",rule_failure_code=\"4\"} 1",
            "pcrf_rule_failures_total{node=\"pcrf.home.test\",rule_failure_code=\"other\"} 1",
            "pcrf_gx_rar_total{node=\"pcrf.home.test\",result_code=\"none\"} 1",
            "pcrf_gx_sessions_released_total{node=\"pcrf.home.test\",reason=\"pcef_restart\"} 2",
            "pcrf_rx_sessions{node=\"pcrf.home.test\"} 1",
            "pcrf_gxx_ccr_total{node=\"pcrf.home.test\",type=\"initial\",result_code=\"2001\"} 1",
            "pcrf_gxx_rar_total{node=\"pcrf.home.test\",result_code=\"none\"} 1",
            "pcrf_s9_sessions{node=\"pcrf.home.test\"} 2",
            "pcrf_s9_ccr_total{node=\"pcrf.home.test\",type=\"refused\",result_code=\"5003\"} 1",
            "pcrf_s9_rar_total{node=\"pcrf.home.test\",result_code=\"2001\"} 1",
            "pcrf_s9_sessions_released_total{node=\"pcrf.home.test\",reason=\"vpcrf_restart\"} 1",
            "pcrf_rx_request_total{node=\"pcrf.home.test\",command=\"aar_initial\",result_code=\"5065\"} 1",
            "pcrf_rx_notification_total{node=\"pcrf.home.test\",command=\"asr\",reason=\"ip_can_loss\",result_code=\"2001\"} 1",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("kind=\"base\""));
    }
}
