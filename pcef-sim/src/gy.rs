//! `pcef-sim gy`: the PCEF's Gy side (RFC 4006 as updated by RFC 8506, TS 32.299) for one
//! subscriber's IP-CAN session.
//!
//! The session charges a list of [`Service`]s, one Multiple-Services-Credit-Control per
//! Rating-Group (RFC 4006 §5.1.2, credit control for multiple services; TS 32.299: one
//! MSCC instance per rating group). The list comes
//! from the command line (`--rating-group`, to test an OCS with no PCRF), or from the
//! Charging-Key of the online rules `pcef-sim gx` has installed (document 001 S310,
//! [`crate::gx`]), which may change during the session ([`GyOptions::services_watch`]).
//!
//! What it does, in order:
//! 1. CCR-I with one MSCC per service, each asking for units with an empty
//!    Requested-Service-Unit (RFC 4006 §8.18: the server chooses the amount). A command-level
//!    Result-Code other than 2001 refuses the IP-CAN session (document 001 S316) and ends.
//! 2. Traffic: each service with a grant uses it at its rate (octets or events per second;
//!    seconds of use per second for time grants).
//! 3. CCR-U, one per moment however many services are due (RFC 4006 §5.3, intermediate interrogation; document 003:
//!    one credit request per bearer event), with Used-Service-Unit and the TS 32.299
//!    Reporting-Reason of each due MSCC: QUOTA_EXHAUSTED when the grant is used up,
//!    THRESHOLD when what is left falls to the Volume-/Time-/Unit-Quota-Threshold,
//!    VALIDITY_TIME when the Validity-Time (RFC 4006 §8.33) runs out,
//!    RATING_CONDITION_CHANGE with the Trigger-Type when a bearer event matches a Trigger
//!    the OCS armed for the service, FINAL when the final units (Final-Unit-Indication,
//!    RFC 4006 §8.34) are used up, QHT when the UE sent nothing for the
//!    Quota-Holding-Time (`--idle`; the quota is given back and asked for again when
//!    traffic resumes).
//! 4. The Final-Unit-Action (RFC 4006 §5.6) when the final units are used up: TERMINATE
//!    stops the service (§5.6.1) — the session ends with CCR-T when no service is left;
//!    REDIRECT (§5.6.2) sends the UE's flows to the Redirect-Server; RESTRICT_ACCESS
//!    (§5.6.3) lets only the flows the Restriction-Filter-Rules permit through. A
//!    Validity-Time given with the final units makes the service ask again when it expires.
//! 5. A Re-Auth-Request from the OCS (RFC 4006 §5.5, e.g. after a top-up) is answered 2001
//!    and followed by a CCR-U with Reporting-Reason FORCED_REAUTHORISATION for the rating
//!    groups it names (all when it names none) — also for a service under a redirect or
//!    restriction, which gets its traffic back when credit is granted again.
//! 6. CCR-T at detach (after the session's duration) with the usage not yet reported.
//!
//! Usage counts as reported when the CCR that carried it was answered with Result-Code 2001.

use anyhow::{Context, bail};
use diameter_codec::ResultCode;
use diameter_codec::dict::{base, dcca, gy};
use diameter_codec::types::{FilterAction, FilterAddress, FilterDirection, IpFilterRule};
use diameter_codec::{AvpRef, Message, MessageBuilder};
use diameter_node::node::{Node, RequestError, handler_fn};
use serde::Serialize;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::client::Endpoint;

/// The unit a grant is counted in (RFC 4006 §8.17: Granted-Service-Unit members).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// CC-Total-Octets.
    TotalOctets,
    /// CC-Time (seconds).
    Time,
    /// CC-Service-Specific-Units (events).
    ServiceSpecific,
}

/// One charged service: a Rating-Group (Charging-Key) and optionally its Service-Identifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Rating-Group (RFC 4006 §8.29; the Charging-Key of a PCC rule, TS 29.212).
    pub rating_group: u32,
    /// Service-Identifier (RFC 4006 §8.28), when the rule names one.
    pub service_id: Option<u32>,
    /// Units used per second: octets per second for volume grants, events per second for
    /// service-specific grants, seconds of use per second for time grants. None: 1 MB/s,
    /// 1 event/s, 1 s/s.
    pub rate: Option<f64>,
}

impl Service {
    /// Parses `RG`, `RG:RATE` or `RG/SERVICE-ID:RATE`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (key, rate) = match s.split_once(':') {
            Some((k, r)) => {
                let r: f64 = r.parse().map_err(|_| format!("bad rate in {s:?}"))?;
                if !(r.is_finite() && r > 0.0) {
                    return Err(format!("bad rate in {s:?}"));
                }
                (k, Some(r))
            }
            None => (s, None),
        };
        let (rg, sid) = match key.split_once('/') {
            Some((rg, sid)) => (
                rg,
                Some(
                    sid.parse()
                        .map_err(|_| format!("bad service identifier in {s:?}"))?,
                ),
            ),
            None => (key, None),
        };
        Ok(Self {
            rating_group: rg
                .parse()
                .map_err(|_| format!("bad rating group in {s:?}"))?,
            service_id: sid,
            rate,
        })
    }

    fn rate_for(&self, unit: Unit) -> f64 {
        self.rate.unwrap_or(match unit {
            Unit::TotalOctets => 1_000_000.0,
            Unit::Time | Unit::ServiceSpecific => 1.0,
        })
    }
}

/// A flow of the UE's traffic (uplink to `dst`, the downlink back), used to show what the
/// Final-Unit-Action lets through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// A name for the report.
    pub name: String,
    /// The far end's address.
    pub dst: IpAddr,
    /// The far end's port.
    pub port: u16,
}

impl Flow {
    /// Parses `NAME=ADDRESS:PORT`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, at) = s
            .split_once('=')
            .ok_or_else(|| format!("flow {s:?}: NAME=ADDRESS:PORT"))?;
        let sa: std::net::SocketAddr = at
            .parse()
            .map_err(|_| format!("flow {s:?}: bad ADDRESS:PORT"))?;
        Ok(Self {
            name: name.into(),
            dst: sa.ip(),
            port: sa.port(),
        })
    }

    /// Two flows: a web server and the operator's portal of the demo configuration.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self {
                name: "web".into(),
                dst: IpAddr::from([198, 51, 100, 7]),
                port: 80,
            },
            Self {
                name: "portal".into(),
                dst: IpAddr::from([192, 0, 2, 10]),
                port: 80,
            },
        ]
    }
}

/// A bearer event at a moment of the session (a handover changing RAT, location, QoS).
#[derive(Debug, Clone, PartialEq)]
pub struct BearerEvent {
    /// When, from the session's start.
    pub at: Duration,
    /// The Trigger-Type it matches (TS 32.299: 2 CHANGE_IN_QOS, 3 CHANGE_IN_LOCATION,
    /// 4 CHANGE_IN_RAT, 30–36 location changes of each precision).
    pub trigger_type: i32,
}

impl BearerEvent {
    /// Parses `SECONDS:TYPE`, TYPE a Trigger-Type number or one of qos, location, rat, mcc,
    /// mnc, rac, lac, cell, tai, ecgi.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (at, ty) = s
            .split_once(':')
            .ok_or_else(|| format!("event {s:?}: SECONDS:TYPE"))?;
        let at = at
            .parse::<f64>()
            .ok()
            .and_then(|v| Duration::try_from_secs_f64(v).ok())
            .ok_or_else(|| format!("event {s:?}: bad time"))?;
        let trigger_type = match ty {
            "qos" => 2,
            "location" => 3,
            "rat" => 4,
            "mcc" => 30,
            "mnc" => 31,
            "rac" => 32,
            "lac" => 33,
            "cell" => 34,
            "tai" => 35,
            "ecgi" => 36,
            n => n
                .parse()
                .map_err(|_| format!("event {s:?}: unknown type {n:?}"))?,
        };
        Ok(Self { at, trigger_type })
    }
}

/// Parses an idle period `FROM:TO` in seconds since the session's start.
pub fn parse_idle(s: &str) -> Result<(Duration, Duration), String> {
    let secs = |v: &str| {
        v.parse::<f64>()
            .ok()
            .and_then(|v| Duration::try_from_secs_f64(v).ok())
            .ok_or_else(|| format!("idle {s:?}: FROM:TO in seconds"))
    };
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("idle {s:?}: FROM:TO in seconds"))?;
    let (a, b) = (secs(a)?, secs(b)?);
    if a >= b {
        return Err(format!("idle {s:?}: FROM must come before TO"));
    }
    Ok((a, b))
}

/// The subscriber (RFC 4006 §8.46 Subscription-Id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscriber {
    /// Subscription-Id-Type: 0 E.164 (MSISDN), 1 IMSI, 3 NAI.
    pub kind: i32,
    /// Subscription-Id-Data.
    pub data: String,
}

/// How to run the session.
#[derive(Debug, Clone)]
pub struct GyOptions {
    /// The OCS and who we are.
    pub endpoint: Endpoint,
    /// The subscriber.
    pub subscriber: Subscriber,
    /// The charged services (from the command line, or a Gx role's online rules).
    pub services: Vec<Service>,
    /// Detach after this long (CCR-T), unless the session ends before.
    pub duration: Duration,
    /// How often traffic is advanced.
    pub tick: Duration,
    /// Bearer events.
    pub events: Vec<BearerEvent>,
    /// Periods (from, to, since the session's start) in which the UE sends nothing.
    pub idle: Vec<(Duration, Duration)>,
    /// The UE's flows.
    pub flows: Vec<Flow>,
    /// Send the request with this CC-Request-Number a second time with the T bit, as after
    /// a lost answer (RFC 6733 §5.5.4), and compare the answers.
    pub retransmit: Option<u32>,
    /// Deadline of each request.
    pub timeout: Duration,
    /// Told the CCA-I's command-level Result-Code (None: no answer) as soon as it arrives:
    /// a Gx role accepts the IP-CAN session only after it (document 001 S310–S316).
    pub on_initial: Option<mpsc::UnboundedSender<Option<u32>>>,
    /// The charged services as they change during the session (a Gx role's online rules
    /// installed and removed): a service that appears is asked for units in the next
    /// CCR-U, one that goes reports its usage (Reporting-Reason FINAL) and stops.
    pub services_watch: Option<tokio::sync::watch::Receiver<Vec<Service>>>,
}

/// What the Final-Unit-Indication says (RFC 4006 §8.34).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalUnit {
    /// TERMINATE, REDIRECT or RESTRICT_ACCESS.
    pub action: String,
    /// Redirect-Server-Address (RFC 4006 §8.39) of the Redirect-Server (§8.37).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_server: Option<String>,
    /// Restriction-Filter-Rules (RFC 4006 §8.36).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restriction_filter_rules: Vec<String>,
}

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// "initial", "update" or "termination".
    pub kind: &'static str,
    /// CC-Request-Number.
    pub number: u32,
    /// Sent with the T bit (a retransmission).
    pub retransmission: bool,
    /// Milliseconds from the session's start.
    pub at_ms: u64,
    /// Per MSCC sent: rating group, reporting reason, used units reported.
    pub mscc: Vec<MsccSent>,
    /// Command-level Result-Code (None: no answer).
    pub result_code: Option<u32>,
    /// Per MSCC answered: rating group, Result-Code, units granted.
    pub answered: Vec<MsccAnswered>,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An MSCC of a request.
#[derive(Debug, Clone, Serialize)]
pub struct MsccSent {
    /// Rating-Group.
    pub rating_group: u32,
    /// Reporting-Reason name (TS 32.299), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_reason: Option<&'static str>,
    /// Trigger-Type of a rating condition change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<i32>,
    /// Units reported used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// Units asked for (an empty Requested-Service-Unit).
    pub requested: bool,
}

/// An MSCC of an answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MsccAnswered {
    /// Rating-Group.
    pub rating_group: Option<u32>,
    /// Per-MSCC Result-Code (RFC 4006 §8.16).
    pub result_code: Option<u32>,
    /// Units granted and their kind.
    pub granted: Option<(Unit, u64)>,
    /// Validity-Time in seconds.
    pub validity_time: Option<u32>,
    /// The threshold (Volume-, Time- or Unit-Quota-Threshold).
    pub threshold: Option<u32>,
    /// Quota-Holding-Time in seconds.
    pub quota_holding_time: Option<u32>,
    /// Trigger-Types armed.
    pub triggers: Vec<i32>,
    /// Final-Unit-Indication.
    pub final_unit: Option<FinalUnit>,
}

/// How one service ended.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// Rating-Group.
    pub rating_group: u32,
    /// "active", "blocked" (no grant), "terminated", "redirected", "restricted".
    pub state: &'static str,
    /// The unit of its grants.
    pub unit: Option<Unit>,
    /// Units granted in all.
    pub granted: u64,
    /// Units used.
    pub used: u64,
    /// Units reported in CCRs answered 2001.
    pub reported: u64,
    /// The Final-Unit-Action executed, if any.
    pub final_unit: Option<FinalUnit>,
    /// The UE's flows as this service's state treats them.
    pub flows: Vec<FlowVerdict>,
    /// The last per-MSCC Result-Code.
    pub result_code: Option<u32>,
}

/// What happens to a flow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowVerdict {
    /// The flow's name.
    pub flow: String,
    /// "forwarded", "blocked", "redirected to ADDRESS", "permitted by filter" or "dropped by
    /// filter".
    pub verdict: String,
}

/// The check of a retransmitted request.
#[derive(Debug, Clone, Serialize)]
pub struct RetransmitCheck {
    /// The CC-Request-Number sent twice.
    pub number: u32,
    /// Result-Code of the first answer and of the second.
    pub result_codes: (Option<u32>, Option<u32>),
    /// The two answers carried the same Result-Codes and MSCCs.
    pub same_answer: bool,
}

/// What the session did.
#[derive(Debug, Clone, Serialize)]
pub struct GyReport {
    /// Session-Id.
    pub session_id: String,
    /// The IP-CAN session was accepted (CCA-I 2001, document 001 S315–S316).
    pub accepted: bool,
    /// Why it ended: "detach", "final-unit-action", "refused", "no-service", "error".
    pub ended_by: &'static str,
    /// Every exchange, in order.
    pub exchanges: Vec<Exchange>,
    /// Per service.
    pub services: Vec<ServiceReport>,
    /// Bearer events that matched no armed Trigger (no CCR-U sent for them).
    pub events_ignored: Vec<i32>,
    /// The retransmission check, when asked for.
    pub retransmit: Option<RetransmitCheck>,
    /// Re-Auth-Requests received for the session (each answered 2001).
    pub reauth_requests: u32,
}

impl GyReport {
    /// The report as text.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "session {}: {}, ended by {}",
            self.session_id,
            if self.accepted { "accepted" } else { "refused" },
            self.ended_by
        );
        for e in &self.exchanges {
            let m: Vec<String> = e
                .mscc
                .iter()
                .map(|m| {
                    let mut t = format!("rg {}", m.rating_group);
                    if let Some(r) = m.reporting_reason {
                        let _ = write!(t, " {r}");
                    }
                    if let Some(u) = m.used {
                        let _ = write!(t, " used {u}");
                    }
                    t
                })
                .collect();
            let a: Vec<String> = e
                .answered
                .iter()
                .map(|a| {
                    let mut t = format!(
                        "rg {} {}",
                        a.rating_group.map_or("-".into(), |r| r.to_string()),
                        a.result_code.map_or("-".into(), |r| r.to_string())
                    );
                    if let Some((u, n)) = a.granted {
                        let _ = write!(t, " granted {n} {u:?}");
                    }
                    if let Some(f) = &a.final_unit {
                        let _ = write!(t, " final-unit {}", f.action);
                    }
                    t
                })
                .collect();
            let _ = writeln!(
                s,
                "{:>7} ms  CCR-{}{} #{}  [{}]  -> {}  [{}]",
                e.at_ms,
                &e.kind[..1].to_uppercase(),
                if e.retransmission { " (T)" } else { "" },
                e.number,
                m.join("; "),
                e.result_code
                    .map_or_else(|| e.error.clone().unwrap_or_default(), |c| c.to_string()),
                a.join("; ")
            );
        }
        for v in &self.services {
            let _ = writeln!(
                s,
                "rating group {}: {}, granted {}, used {}, reported {}{}",
                v.rating_group,
                v.state,
                v.granted,
                v.used,
                v.reported,
                v.final_unit
                    .as_ref()
                    .map(|f| format!(", final unit action {}", f.action))
                    .unwrap_or_default()
            );
            for f in &v.flows {
                let _ = writeln!(s, "  flow {}: {}", f.flow, f.verdict);
            }
        }
        if let Some(r) = &self.retransmit {
            let _ = writeln!(
                s,
                "retransmitted #{}: answers {:?} / {:?}, {}",
                r.number,
                r.result_codes.0,
                r.result_codes.1,
                if r.same_answer { "same" } else { "DIFFERENT" }
            );
        }
        s
    }
}

/// The current grant of a service.
#[derive(Debug, Clone)]
struct Grant {
    units: u64,
    used: u64,
    /// Fractional units carried between ticks.
    carry: f64,
    threshold: Option<u64>,
    threshold_reported: bool,
    valid_until: Option<Instant>,
    final_unit: Option<FinalUnit>,
    /// Quota-Holding-Time.
    qht: Option<Duration>,
    /// When traffic last used this grant.
    last_use: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Using its grant.
    Active,
    /// No grant (refused per MSCC, or none given).
    Blocked,
    /// TERMINATE executed.
    Terminated,
    /// REDIRECT executed.
    Redirected,
    /// RESTRICT_ACCESS executed.
    Restricted,
}

/// A service's enforcement state.
struct Svc {
    spec: Service,
    state: State,
    grant: Option<Grant>,
    /// Used and not yet reported.
    unreported: u64,
    /// Used in all.
    used: u64,
    granted: u64,
    reported: u64,
    triggers: Vec<i32>,
    unit: Option<Unit>,
    final_unit: Option<FinalUnit>,
    /// Validity-Time of a final-unit state (ask again when it expires).
    recheck_at: Option<Instant>,
    /// The quota was given back (Quota-Holding-Time): ask when traffic comes back.
    released: bool,
    result_code: Option<u32>,
}

/// Why a service is in the next request.
#[derive(Debug, Clone, Copy)]
struct Due {
    /// None: traffic again after quota was given back (an MSCC asking, no reason).
    reason: Option<gy::ReportingReason>,
    trigger_type: Option<i32>,
    /// Ask for units (not after the final units are used up: RFC 4006 §5.6).
    request: bool,
}

/// Runs the session against the OCS and returns what happened.
pub async fn run(opts: &GyOptions) -> anyhow::Result<GyReport> {
    if opts.services.is_empty() {
        bail!("no rating group to charge");
    }
    let node = crate::client::connect(&opts.endpoint, 4, opts.timeout)
        .await
        .context("connecting to the OCS")?;
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // RFC 6733 §8.8: <DiameterIdentity>;<high 32 bits>;<low 32 bits>.
    let id = format!(
        "{};{epoch};{}",
        opts.endpoint.origin_host,
        std::process::id()
    );
    // RFC 4006 §5.5: the server's Re-Auth-Request for our session is answered at once;
    // the re-authorisation itself is the session's next CCR-U.
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u32>>();
    let ours = id.clone();
    node.register(
        4,
        handler_fn(move |req| {
            let tx = tx.clone();
            let ours = ours.clone();
            async move {
                if req.msg.header().command_code != base::CMD_RE_AUTH {
                    return req.answer(ResultCode::DIAMETER_COMMAND_UNSUPPORTED);
                }
                if req.msg.session_id() != Some(ours.as_str()) {
                    return req.answer(ResultCode::DIAMETER_UNKNOWN_SESSION_ID);
                }
                let groups = req
                    .msg
                    .find_all(dcca::RATING_GROUP.key())
                    .filter_map(|a| dcca::RATING_GROUP.decode(a.data).ok())
                    .collect();
                let _ = tx.send(groups);
                req.answer(ResultCode::DIAMETER_SUCCESS)
            }
        }),
    );
    let r = session(&node, opts, id, rx).await;
    node.shutdown(Duration::from_secs(1)).await;
    Ok(r)
}

struct Session<'a> {
    node: &'a Node,
    opts: &'a GyOptions,
    id: String,
    start: Instant,
    number: u32,
    svcs: Vec<Svc>,
    exchanges: Vec<Exchange>,
    retransmit: Option<RetransmitCheck>,
    rar: mpsc::UnboundedReceiver<Vec<u32>>,
    reauth_requests: u32,
}

async fn session(
    node: &Node,
    opts: &GyOptions,
    id: String,
    rar: mpsc::UnboundedReceiver<Vec<u32>>,
) -> GyReport {
    let start = Instant::now();
    let mut s = Session {
        node,
        opts,
        id,
        rar,
        reauth_requests: 0,
        start,
        number: 0,
        svcs: opts.services.iter().cloned().map(Svc::new).collect(),
        exchanges: Vec::new(),
        retransmit: None,
    };
    let ended_by = s.drive().await;
    GyReport {
        session_id: s.id.clone(),
        accepted: s.exchanges.first().and_then(|e| e.result_code) == Some(2001),
        ended_by,
        exchanges: s.exchanges.clone(),
        services: s.svcs.iter().map(|v| v.report(&opts.flows)).collect(),
        events_ignored: s.ignored_events(),
        retransmit: s.retransmit.clone(),
        reauth_requests: s.reauth_requests,
    }
}

impl Session<'_> {
    async fn drive(&mut self) -> &'static str {
        // CCR-I: every service asks for units (S310).
        let all: Vec<(usize, Option<Due>)> = (0..self.svcs.len()).map(|i| (i, None)).collect();
        let initial = self.exchange(1, &all).await;
        if let Some(tx) = &self.opts.on_initial {
            let _ = tx.send(initial);
        }
        match initial {
            Some(2001) => {}
            Some(_) => return "refused",
            None => return "error",
        }
        let detach = self.start + self.opts.duration;
        let mut events: Vec<BearerEvent> = self.opts.events.clone();
        events.sort_by_key(|e| e.at);
        let mut events = events.into_iter().peekable();
        let mut watch = self.opts.services_watch.clone();
        let mut last = Instant::now();
        loop {
            if self
                .svcs
                .iter()
                .all(|v| matches!(v.state, State::Terminated | State::Blocked))
            {
                // Nothing left to charge: end the session (RFC 4006 §5.6.1).
                let why = if self.svcs.iter().any(|v| v.state == State::Terminated) {
                    "final-unit-action"
                } else {
                    "no-service"
                };
                self.terminate().await;
                return why;
            }
            let now = Instant::now();
            if now >= detach {
                self.terminate().await;
                return "detach";
            }
            // Traffic advances by at most two ticks per step: after a stall (a loaded
            // machine) the UE does not send a burst that jumps over a threshold.
            let dt = (now - last).min(self.opts.tick * 2).as_secs_f64();
            last = now;
            let t = now - self.start;
            let idle = self.opts.idle.iter().any(|(a, b)| *a <= t && t < *b);
            let mut due: Vec<(usize, Option<Due>)> = Vec::new();
            for (i, v) in self.svcs.iter_mut().enumerate() {
                if let Some(d) = v.advance(dt, now, idle) {
                    due.push((i, Some(d)));
                }
            }
            // Re-Auth-Requests: FORCED_REAUTHORISATION for the rating groups named (all
            // when none is), whatever their state but terminated (RFC 4006 §5.5).
            while let Ok(groups) = self.rar.try_recv() {
                self.reauth_requests += 1;
                for (i, v) in self.svcs.iter().enumerate() {
                    let named = groups.is_empty() || groups.contains(&v.spec.rating_group);
                    if named && v.state != State::Terminated && !due.iter().any(|(j, _)| *j == i) {
                        due.push((
                            i,
                            Some(Due {
                                reason: Some(gy::ReportingReason::FORCED_REAUTHORISATION),
                                trigger_type: None,
                                request: true,
                            }),
                        ));
                    }
                }
            }
            // The charged services changed (rules installed or removed over Gx): the new
            // ones ask for units, the gone ones report their usage for the last time
            // (TS 32.299 Reporting-Reason FINAL) and stop.
            let mut removed: Vec<usize> = Vec::new();
            if let Some(w) = watch.as_mut()
                && w.has_changed().unwrap_or(false)
            {
                let list = w.borrow_and_update().clone();
                for (i, v) in self.svcs.iter().enumerate() {
                    let kept = list.iter().any(|s| s.rating_group == v.spec.rating_group);
                    if !kept && v.state != State::Terminated {
                        due.retain(|(j, _)| *j != i);
                        due.push((
                            i,
                            Some(Due {
                                reason: Some(gy::ReportingReason::FINAL),
                                trigger_type: None,
                                request: false,
                            }),
                        ));
                        removed.push(i);
                    }
                }
                for spec in list {
                    let at = self
                        .svcs
                        .iter()
                        .position(|v| v.spec.rating_group == spec.rating_group);
                    let i = match at {
                        Some(i) if self.svcs[i].state == State::Terminated => {
                            self.svcs[i].state = State::Blocked;
                            i
                        }
                        Some(_) => continue,
                        None => {
                            self.svcs.push(Svc::new(spec));
                            self.svcs.len() - 1
                        }
                    };
                    due.retain(|(j, _)| *j != i);
                    due.push((
                        i,
                        Some(Due {
                            reason: None,
                            trigger_type: None,
                            request: true,
                        }),
                    ));
                }
            }
            // A bearer event: one CCR-U for every service whose OCS armed its type
            // (document 003: at most one credit request per bearer event).
            while let Some(e) = events.next_if(|e| self.start + e.at <= now) {
                for (i, v) in self.svcs.iter().enumerate() {
                    if v.state == State::Active
                        && v.triggers.contains(&e.trigger_type)
                        && !due.iter().any(|(j, _)| *j == i)
                    {
                        due.push((
                            i,
                            Some(Due {
                                reason: Some(gy::ReportingReason::RATING_CONDITION_CHANGE),
                                trigger_type: Some(e.trigger_type),
                                request: true,
                            }),
                        ));
                    }
                }
            }
            if self
                .svcs
                .iter()
                .all(|v| matches!(v.state, State::Terminated | State::Blocked))
            {
                // The last service terminated: its usage goes in the CCR-T (top of the loop).
                continue;
            }
            if !due.is_empty() {
                due.sort_by_key(|(i, _)| *i);
                // Unanswered, or a protocol error (RFC 6733 §7.1.3): the session stops here
                // (what the Credit-Control-Failure-Handling would decide is not simulated).
                let r = self.exchange(2, &due).await;
                for i in removed {
                    self.svcs[i].state = State::Terminated;
                    self.svcs[i].grant = None;
                }
                match r {
                    None => return "error",
                    Some(c) if (3000..4000).contains(&c) => return "error",
                    Some(_) => {}
                }
                continue;
            }
            let wait = self.opts.tick.min(detach.saturating_duration_since(now));
            tokio::time::sleep(wait).await;
        }
    }

    fn ignored_events(&self) -> Vec<i32> {
        self.opts
            .events
            .iter()
            .filter(|e| {
                !self.exchanges.iter().any(|x| {
                    x.mscc
                        .iter()
                        .any(|m| m.trigger_type == Some(e.trigger_type))
                })
            })
            .map(|e| e.trigger_type)
            .collect()
    }

    /// CCR-T with the usage not yet reported (RFC 4006 §5.4, final interrogation).
    async fn terminate(&mut self) {
        let all: Vec<(usize, Option<Due>)> = (0..self.svcs.len())
            .filter(|i| self.svcs[*i].used > 0 || self.svcs[*i].granted > 0)
            .map(|i| (i, None))
            .collect();
        self.exchange(3, &all).await;
    }

    /// Sends one CCR (`kind` 1 initial, 2 update, 3 termination) with an MSCC per entry of
    /// `which`, applies the answer, and returns the command-level Result-Code.
    async fn exchange(&mut self, kind: i32, which: &[(usize, Option<Due>)]) -> Option<u32> {
        let number = self.number;
        self.number += 1;
        let mut b = MessageBuilder::request(dcca::CMD_CREDIT_CONTROL, 4, true);
        let ep = &self.opts.endpoint;
        b.push(base::SESSION_ID.with(self.id.clone()));
        b.push(base::ORIGIN_HOST.with(ep.origin_host.clone()));
        b.push(base::ORIGIN_REALM.with(ep.origin_realm.clone()));
        b.push(base::DESTINATION_REALM.with(ep.dest_realm.clone()));
        b.push(base::AUTH_APPLICATION_ID.with(4u32));
        // Service-Context-Id (RFC 4006 §8.42) of PS domain charging (TS 32.251).
        b.push(dcca::SERVICE_CONTEXT_ID.with("32251@3gpp.org"));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
        b.push(dcca::CC_REQUEST_NUMBER.with(number));
        if kind == 3 {
            b.push(base::TERMINATION_CAUSE.with(base::TerminationCause::DIAMETER_LOGOUT));
        }
        // RFC 4006 §8.46: Subscription-Id identifies the user in every request.
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(self.opts.subscriber.kind)),
            dcca::SUBSCRIPTION_ID_DATA.with(self.opts.subscriber.data.clone()),
        ]));
        if kind == 1 {
            b.push(
                dcca::MULTIPLE_SERVICES_INDICATOR
                    .with(dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED),
            );
        }
        let mut sent = Vec::new();
        // Units in this request, per service index, credited as reported on 2001.
        let mut carried: Vec<(usize, u64)> = Vec::new();
        for (i, due) in which {
            let v = &self.svcs[*i];
            let mut c = Vec::new();
            let request = kind != 3 && due.is_none_or(|d| d.request);
            if request {
                c.push(dcca::REQUESTED_SERVICE_UNIT.with(Vec::new()));
            }
            let used = (kind != 1).then_some(v.unreported);
            if let Some(u) = used {
                let unit = v.unit.unwrap_or(Unit::TotalOctets);
                c.push(dcca::USED_SERVICE_UNIT.with(vec![units_avp(unit, u)]));
                carried.push((*i, u));
            }
            if let Some(sid) = v.spec.service_id {
                c.push(dcca::SERVICE_IDENTIFIER.with(sid));
            }
            c.push(dcca::RATING_GROUP.with(v.spec.rating_group));
            if let Some(d) = due {
                if let Some(t) = d.trigger_type {
                    c.push(gy::TRIGGER.with(vec![gy::TRIGGER_TYPE.with(gy::TriggerType(t))]));
                }
                if let Some(r) = d.reason {
                    c.push(gy::REPORTING_REASON.with(r));
                }
            } else if kind == 3 {
                c.push(gy::REPORTING_REASON.with(gy::ReportingReason::FINAL));
            }
            sent.push(MsccSent {
                rating_group: v.spec.rating_group,
                reporting_reason: due
                    .and_then(|d| d.reason)
                    .or((kind == 3).then_some(gy::ReportingReason::FINAL))
                    .and_then(|r| r.name()),
                trigger_type: due.and_then(|d| d.trigger_type),
                used,
                requested: request,
            });
            b.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(c));
        }
        for (i, _) in &carried {
            self.svcs[*i].unreported = 0;
        }
        b.end_to_end = self.node.next_end_to_end();
        let at_ms = self.start.elapsed().as_millis() as u64;
        let retransmit = self.opts.retransmit == Some(number);
        let again = retransmit.then(|| {
            let mut r = b.clone();
            r.flags = r.flags.with(diameter_codec::CommandFlags::RETRANSMIT, true);
            r
        });
        let r = self.node.request_with_timeout(b, self.opts.timeout).await;
        let (code, answered, error) = read_answer(r);
        let mut ex = Exchange {
            kind: ["initial", "update", "termination"][(kind - 1) as usize],
            number,
            retransmission: false,
            at_ms,
            mscc: sent,
            result_code: code,
            answered: answered.clone(),
            error,
        };
        // The usage of a service counts as reported when the OCS processed it: a 2001
        // answer, or an answer with a per-MSCC Result-Code for its rating group (e.g. 4012
        // at both levels: the usage was rated, no new credit given). Otherwise it is still
        // to be reported.
        let protocol_error = code.is_some_and(|c| (3000..4000).contains(&c));
        for (i, u) in &carried {
            let rg = self.svcs[*i].spec.rating_group;
            let processed = code == Some(2001)
                || (code.is_some()
                    && !protocol_error
                    && answered
                        .iter()
                        .any(|a| a.rating_group == Some(rg) && a.result_code.is_some()));
            if processed {
                self.svcs[*i].reported += u;
            } else {
                self.svcs[*i].unreported += u;
            }
        }
        // An application answer (2001 or a refusal) decides each service's next state; a
        // CCR-I refusal ends the session before (S316), a protocol error (3xxx) is the
        // caller's to handle.
        if (kind == 2 && code.is_some() && !protocol_error) || (kind == 1 && code == Some(2001)) {
            let now = Instant::now();
            for (i, due) in which {
                let rg = self.svcs[*i].spec.rating_group;
                let a = answered.iter().find(|a| a.rating_group == Some(rg));
                self.svcs[*i].apply(a, *due, now);
            }
        }
        self.exchanges.push(ex.clone());
        if let Some(again) = again {
            let r = self
                .node
                .request_with_timeout(again, self.opts.timeout)
                .await;
            let (code2, answered2, error2) = read_answer(r);
            self.retransmit = Some(RetransmitCheck {
                number,
                result_codes: (code, code2),
                same_answer: code == code2 && answered == answered2,
            });
            ex.retransmission = true;
            ex.at_ms = self.start.elapsed().as_millis() as u64;
            ex.result_code = code2;
            ex.answered = answered2;
            ex.error = error2;
            self.exchanges.push(ex);
        }
        code
    }
}

fn units_avp(unit: Unit, n: u64) -> diameter_codec::OwnedAvp {
    match unit {
        Unit::TotalOctets => dcca::CC_TOTAL_OCTETS.with(n),
        Unit::Time => dcca::CC_TIME.with(u32::try_from(n).unwrap_or(u32::MAX)),
        Unit::ServiceSpecific => dcca::CC_SERVICE_SPECIFIC_UNITS.with(n),
    }
}

type Answer = (Option<u32>, Vec<MsccAnswered>, Option<String>);

fn read_answer(r: Result<Message, RequestError>) -> Answer {
    let m = match r {
        Ok(m) => m,
        // An answer with the E bit is still an answer (RFC 6733 §7.2).
        Err(RequestError::Protocol { answer, .. }) => answer,
        Err(e) => return (None, Vec::new(), Some(e.to_string())),
    };
    let code = m.get(base::RESULT_CODE).and_then(Result::ok);
    // A command-level Validity-Time applies to every MSCC that has none (RFC 4006 §8.33).
    let top_validity = m.get(dcca::VALIDITY_TIME).and_then(Result::ok);
    let answered = m
        .find_all(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
        .map(|a| {
            let mut x = read_mscc(&a);
            x.validity_time = x.validity_time.or(top_validity);
            x
        })
        .collect();
    (code, answered, None)
}

fn read_mscc(mscc: &AvpRef<'_>) -> MsccAnswered {
    let mut x = MsccAnswered {
        rating_group: None,
        result_code: None,
        granted: None,
        validity_time: None,
        threshold: None,
        quota_holding_time: None,
        triggers: Vec::new(),
        final_unit: None,
    };
    for a in mscc.children().flatten() {
        let k = a.key();
        if k == dcca::RATING_GROUP.key() {
            x.rating_group = dcca::RATING_GROUP.decode(a.data).ok();
        } else if k == base::RESULT_CODE.key() {
            x.result_code = base::RESULT_CODE.decode(a.data).ok();
        } else if k == dcca::GRANTED_SERVICE_UNIT.key() {
            for u in a.children().flatten() {
                let uk = u.key();
                let g = if uk == dcca::CC_TOTAL_OCTETS.key() {
                    dcca::CC_TOTAL_OCTETS
                        .decode(u.data)
                        .ok()
                        .map(|n| (Unit::TotalOctets, n))
                } else if uk == dcca::CC_TIME.key() {
                    dcca::CC_TIME
                        .decode(u.data)
                        .ok()
                        .map(|n| (Unit::Time, u64::from(n)))
                } else if uk == dcca::CC_SERVICE_SPECIFIC_UNITS.key() {
                    dcca::CC_SERVICE_SPECIFIC_UNITS
                        .decode(u.data)
                        .ok()
                        .map(|n| (Unit::ServiceSpecific, n))
                } else {
                    None
                };
                if x.granted.is_none() {
                    x.granted = g;
                }
            }
        } else if k == dcca::VALIDITY_TIME.key() {
            x.validity_time = dcca::VALIDITY_TIME.decode(a.data).ok();
        } else if k == gy::VOLUME_QUOTA_THRESHOLD.key() {
            x.threshold = gy::VOLUME_QUOTA_THRESHOLD.decode(a.data).ok();
        } else if k == gy::TIME_QUOTA_THRESHOLD.key() {
            x.threshold = gy::TIME_QUOTA_THRESHOLD.decode(a.data).ok();
        } else if k == gy::UNIT_QUOTA_THRESHOLD.key() {
            x.threshold = gy::UNIT_QUOTA_THRESHOLD.decode(a.data).ok();
        } else if k == gy::QUOTA_HOLDING_TIME.key() {
            x.quota_holding_time = gy::QUOTA_HOLDING_TIME.decode(a.data).ok();
        } else if k == gy::TRIGGER.key() {
            x.triggers.extend(
                a.children()
                    .flatten()
                    .filter(|t| t.key() == gy::TRIGGER_TYPE.key())
                    .filter_map(|t| gy::TRIGGER_TYPE.decode(t.data).ok())
                    .map(|t| t.0),
            );
        } else if k == dcca::FINAL_UNIT_INDICATION.key() {
            let mut f = FinalUnit {
                action: String::new(),
                redirect_server: None,
                restriction_filter_rules: Vec::new(),
            };
            for c in a.children().flatten() {
                let ck = c.key();
                if ck == dcca::FINAL_UNIT_ACTION.key() {
                    f.action = match dcca::FINAL_UNIT_ACTION.decode(c.data).map(|v| v.0) {
                        Ok(0) => "TERMINATE".into(),
                        Ok(1) => "REDIRECT".into(),
                        Ok(2) => "RESTRICT_ACCESS".into(),
                        Ok(n) => format!("unknown {n}"),
                        Err(_) => "invalid".into(),
                    };
                } else if ck == dcca::REDIRECT_SERVER.key() {
                    f.redirect_server = c
                        .children()
                        .flatten()
                        .find(|r| r.key() == dcca::REDIRECT_SERVER_ADDRESS.key())
                        .map(|r| String::from_utf8_lossy(r.data).into_owned());
                } else if ck == dcca::RESTRICTION_FILTER_RULE.key() {
                    f.restriction_filter_rules
                        .push(String::from_utf8_lossy(c.data).into_owned());
                }
            }
            x.final_unit = Some(f);
        }
    }
    x
}

impl Svc {
    fn new(spec: Service) -> Self {
        Self {
            spec,
            state: State::Blocked,
            grant: None,
            unreported: 0,
            used: 0,
            granted: 0,
            reported: 0,
            triggers: Vec::new(),
            unit: None,
            final_unit: None,
            recheck_at: None,
            released: false,
            result_code: None,
        }
    }

    /// Uses `dt` seconds of traffic; returns why the service needs a request now, if it does.
    fn advance(&mut self, dt: f64, now: Instant, idle: bool) -> Option<Due> {
        let ask = |reason| {
            Some(Due {
                reason: Some(reason),
                trigger_type: None,
                request: true,
            })
        };
        match self.state {
            State::Active => {}
            // RFC 4006 §5.6.2–5.6.3: after a redirect or restriction the client asks again
            // when the Validity-Time of the final units expires.
            State::Redirected | State::Restricted => {
                if self.recheck_at.is_some_and(|t| now >= t) {
                    self.recheck_at = None;
                    return ask(gy::ReportingReason::VALIDITY_TIME);
                }
                return None;
            }
            State::Blocked | State::Terminated => return None,
        }
        let rate = self.spec.rate_for(self.unit.unwrap_or(Unit::TotalOctets));
        let Some(g) = self.grant.as_mut() else {
            // Quota given back after the Quota-Holding-Time: traffic again asks for units.
            return (self.released && !idle).then_some(Due {
                reason: None,
                trigger_type: None,
                request: true,
            });
        };
        if idle {
            // TS 32.299 Quota-Holding-Time: no traffic for that long → report the usage
            // (Reporting-Reason QHT) and give the quota back; 0 disables it.
            if g.qht.is_some_and(|q| !q.is_zero() && now - g.last_use >= q) {
                self.grant = None;
                self.released = true;
                return Some(Due {
                    reason: Some(gy::ReportingReason::QHT),
                    trigger_type: None,
                    request: false,
                });
            }
            if g.valid_until.is_some_and(|t| now >= t) {
                return ask(gy::ReportingReason::VALIDITY_TIME);
            }
            return None;
        }
        g.last_use = now;
        g.carry += rate * dt;
        let whole = g.carry.floor();
        g.carry -= whole;
        let step = (whole as u64).min(g.units - g.used);
        g.used += step;
        self.used += step;
        self.unreported += step;
        if g.used >= g.units {
            if let Some(f) = g.final_unit.clone() {
                // The final units are used up: execute the Final-Unit-Action (RFC 4006
                // §5.6) and report with Reporting-Reason FINAL (TS 32.299).
                self.state = match f.action.as_str() {
                    "REDIRECT" => State::Redirected,
                    "RESTRICT_ACCESS" => State::Restricted,
                    _ => State::Terminated,
                };
                self.recheck_at = g.valid_until;
                self.final_unit = Some(f);
                self.grant = None;
                return Some(Due {
                    reason: Some(gy::ReportingReason::FINAL),
                    trigger_type: None,
                    request: false,
                });
            }
            return ask(gy::ReportingReason::QUOTA_EXHAUSTED);
        }
        if g.valid_until.is_some_and(|t| now >= t) {
            return ask(gy::ReportingReason::VALIDITY_TIME);
        }
        // A threshold asks for more units before these run out (TS 32.299 §7.2,
        // Volume-/Time-/Unit-Quota-Threshold): not
        // for final units (there are no more) and not for a grant at or below it on arrival
        // (set in `apply`).
        if let Some(th) = g.threshold
            && !g.threshold_reported
            && g.final_unit.is_none()
            && g.units - g.used <= th
        {
            g.threshold_reported = true;
            return ask(gy::ReportingReason::THRESHOLD);
        }
        None
    }

    /// Applies the answer's MSCC for this service to a request that asked (or reported).
    fn apply(&mut self, a: Option<&MsccAnswered>, due: Option<Due>, now: Instant) {
        if due.is_some_and(|d| !d.request) {
            // A report that asks for nothing (FINAL: the action is in force; QHT: quota
            // given back); a Validity-Time in the answer sets when to ask again.
            if let Some(v) = a.and_then(|a| a.validity_time) {
                self.recheck_at = Some(now + Duration::from_secs(v.into()));
            }
            self.result_code = a.and_then(|a| a.result_code);
            return;
        }
        let Some(a) = a else {
            // No MSCC for it in the answer: no grant (RFC 4006 §5.1.2).
            self.state = State::Blocked;
            self.grant = None;
            return;
        };
        self.result_code = a.result_code;
        // RFC 4006 §8.16: a per-MSCC Result-Code other than success refuses the service.
        let ok = a.result_code.is_none_or(|c| (2000..3000).contains(&c));
        match (ok, a.granted) {
            (true, Some((unit, n))) if n > 0 || a.final_unit.is_some() => {
                // The new grant replaces what was left of the old one: the used units were
                // reported with the request (RFC 4006 §5.3).
                self.unit = Some(unit);
                self.granted += n;
                self.triggers = a.triggers.clone();
                self.state = State::Active;
                self.final_unit = None;
                self.grant = Some(Grant {
                    units: n,
                    used: 0,
                    carry: 0.0,
                    threshold: a.threshold.map(u64::from),
                    threshold_reported: a.threshold.is_some_and(|t| n <= u64::from(t)),
                    valid_until: a.validity_time.map(|v| now + Duration::from_secs(v.into())),
                    final_unit: a.final_unit.clone(),
                    qht: a.quota_holding_time.map(|v| Duration::from_secs(v.into())),
                    last_use: now,
                });
                self.released = false;
            }
            _ => {
                self.grant = None;
                // No credit. A Final-Unit-Indication with REDIRECT or RESTRICT_ACCESS beside
                // it (RFC 4006 §5.6.2–5.6.3, e.g. with 4012) applies at once; a service
                // already redirected or restricted stays so; anything else is blocked.
                let action = a.final_unit.as_ref().map(|f| f.action.as_str());
                match action {
                    Some("REDIRECT") | Some("RESTRICT_ACCESS") => {
                        self.state = if action == Some("REDIRECT") {
                            State::Redirected
                        } else {
                            State::Restricted
                        };
                        self.final_unit = a.final_unit.clone();
                        self.recheck_at =
                            a.validity_time.map(|v| now + Duration::from_secs(v.into()));
                    }
                    _ if matches!(self.state, State::Redirected | State::Restricted) => {}
                    _ => self.state = State::Blocked,
                }
            }
        }
    }

    fn report(&self, flows: &[Flow]) -> ServiceReport {
        let verdict = |f: &Flow| -> String {
            match self.state {
                State::Active => "forwarded".into(),
                State::Blocked | State::Terminated => "blocked".into(),
                State::Redirected => format!(
                    "redirected to {}",
                    self.final_unit
                        .as_ref()
                        .and_then(|u| u.redirect_server.clone())
                        .unwrap_or_else(|| "(no Redirect-Server)".into())
                ),
                State::Restricted => {
                    let rules = self
                        .final_unit
                        .as_ref()
                        .map(|u| u.restriction_filter_rules.as_slice())
                        .unwrap_or_default();
                    if flow_permitted(rules, f) {
                        "permitted by filter".into()
                    } else {
                        "dropped by filter".into()
                    }
                }
            }
        };
        ServiceReport {
            rating_group: self.spec.rating_group,
            state: match self.state {
                State::Active => "active",
                State::Blocked => "blocked",
                State::Terminated => "terminated",
                State::Redirected => "redirected",
                State::Restricted => "restricted",
            },
            unit: self.unit,
            granted: self.granted,
            used: self.used,
            reported: self.reported,
            final_unit: self.final_unit.clone(),
            flows: flows
                .iter()
                .map(|f| FlowVerdict {
                    flow: f.name.clone(),
                    verdict: verdict(f),
                })
                .collect(),
            result_code: self.result_code,
        }
    }
}

/// The UE's address in flow checks (`assigned` in a rule).
pub const UE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 45, 0, 2));
/// The UE's source port of a flow.
pub const UE_PORT: u16 = 49152;

/// A flow passes a RESTRICT_ACCESS when both of its directions do: the uplink (`in`, from
/// the terminal, RFC 6733 §4.3.1) and the downlink (`out`). Each packet takes the first rule
/// of its direction that matches; none → dropped (only what the rules permit passes,
/// RFC 4006 §5.6.3).
pub fn flow_permitted(rules: &[String], f: &Flow) -> bool {
    let parsed: Vec<IpFilterRule<'_>> = rules
        .iter()
        .filter_map(|r| IpFilterRule::parse_str(r).ok())
        .collect();
    let pass = |dir: FilterDirection, src: (IpAddr, u16), dst: (IpAddr, u16)| {
        parsed
            .iter()
            .filter(|r| r.direction == dir)
            // TCP (6) for the simulated flows.
            .filter(|r| r.protocol.is_none_or(|p| p == 6))
            .find(|r| endpoint_matches(&r.src, src, UE) && endpoint_matches(&r.dst, dst, UE))
            .is_some_and(|r| r.action == FilterAction::Permit)
    };
    pass(FilterDirection::In, (UE, UE_PORT), (f.dst, f.port))
        && pass(FilterDirection::Out, (f.dst, f.port), (UE, UE_PORT))
}

/// Whether a packet of IP protocol `proto` from `src` to `dst` matches an IPFilterRule's
/// protocol, source and destination (RFC 6733 §4.3.1; `assigned` is the UE's address
/// `ue`). The direction and action are the caller's to read.
pub fn packet_matches(
    r: &IpFilterRule<'_>,
    proto: u8,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    ue: IpAddr,
) -> bool {
    r.protocol.is_none_or(|p| p == proto)
        && endpoint_matches(&r.src, src, ue)
        && endpoint_matches(&r.dst, dst, ue)
}

fn endpoint_matches(
    e: &diameter_codec::types::FilterEndpoint<'_>,
    (ip, port): (IpAddr, u16),
    ue: IpAddr,
) -> bool {
    let addr = match e.address {
        FilterAddress::Any => true,
        FilterAddress::Assigned => ip == ue,
        FilterAddress::Net { ip: net, prefix } => in_prefix(ip, net, prefix),
    };
    let ports = e.ports.is_empty() || e.port_ranges().any(|(a, b)| (a..=b).contains(&port));
    (addr != e.negated) && ports
}

fn in_prefix(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_forms_parse() {
        assert_eq!(
            Service::parse("1").unwrap(),
            Service {
                rating_group: 1,
                service_id: None,
                rate: None
            }
        );
        let s = Service::parse("2/1001:5e6").unwrap();
        assert_eq!(
            (s.rating_group, s.service_id, s.rate),
            (2, Some(1001), Some(5e6))
        );
        assert!(Service::parse("x").is_err());
        assert!(Service::parse("1:-3").is_err());
        assert!(Service::parse("1:inf").is_err());
        assert_eq!(BearerEvent::parse("0.5:rat").unwrap().trigger_type, 4);
        assert_eq!(BearerEvent::parse("1:36").unwrap().trigger_type, 36);
        assert!(BearerEvent::parse("1:bogus").is_err());
        assert!(BearerEvent::parse("-1:rat").is_err());
        assert_eq!(
            parse_idle("0.5:2").unwrap(),
            (Duration::from_millis(500), Duration::from_secs(2))
        );
        assert!(parse_idle("2:1").is_err());
        assert!(parse_idle("x:1").is_err());
        let f = Flow::parse("p=192.0.2.10:443").unwrap();
        assert_eq!(f.port, 443);
        assert!(Flow::parse("p=nowhere").is_err());
    }

    #[test]
    fn restriction_rules_let_only_their_flows_through() {
        // The demo configuration's RESTRICT_ACCESS rules: the portal both ways.
        let rules = vec![
            "permit out ip from 192.0.2.10 to any".to_string(),
            "permit in ip from any to 192.0.2.10".to_string(),
        ];
        let flows = Flow::defaults();
        assert!(!flow_permitted(&rules, &flows[0]), "web");
        assert!(flow_permitted(&rules, &flows[1]), "portal");
        // Uplink alone is not a working flow.
        assert!(!flow_permitted(&rules[1..], &flows[1]));
        // First match wins; ports and prefixes count.
        let rules = vec![
            "deny in tcp from any to 192.0.2.0/24 443".to_string(),
            "permit in ip from any to 192.0.2.0/24".to_string(),
            "permit out ip from 192.0.2.0/24 to assigned".to_string(),
        ];
        assert!(flow_permitted(&rules, &flows[1]));
        let https = Flow::parse("s=192.0.2.10:443").unwrap();
        assert!(!flow_permitted(&rules, &https));
        assert!(!flow_permitted(&[], &flows[1]));
        assert!(!flow_permitted(&["not a rule".into()], &flows[1]));
    }
}
