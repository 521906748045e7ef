//! `pcef-sim gx`: the PCEF's Gx side (TS 29.212, application 16777238) for one subscriber's
//! IP-CAN session, with a small flow classifier and, when the PCRF asks for online charging,
//! the Gy session of [`crate::gy`].
//!
//! What it does, in order:
//! 1. CCR-I (TS 29.212 §4.5.1, §5.6.2) with Subscription-Id, Supported-Features
//!    (TS 29.229 §6.3.29, Feature-List-ID 1: Rel8, Rel9, Rel10), Framed-IP-Address,
//!    IP-CAN-Type 3GPP-EPS, RAT-Type, 3GPP-User-Location-Info and Called-Station-Id. A
//!    Result-Code or Experimental-Result other than 2001 refuses the IP-CAN session.
//! 2. The CCA's policy is enforced: Charging-Rule-Install (dynamic rules with their flows,
//!    QoS, precedence, rating group, Online/Offline; predefined rule names and bases),
//!    Charging-Rule-Remove, session Online/Offline, APN-AMBR, Default-EPS-Bearer-QoS,
//!    Event-Trigger (the complete list of armed triggers each time it is sent, §5.3.7) and
//!    Charging-Information (TS 29.229 §6.3.19).
//! 3. With `--ocs`, when Charging-Information names an OCS and online rules are installed,
//!    the Gy session starts with one Multiple-Services-Credit-Control per rating group of
//!    those rules (document 001 S310); the IP-CAN session is accepted only when the OCS
//!    answers its CCA-I with 2001 (S315–S316), otherwise it is ended with CCR-T. When the
//!    online rules change later (a RAR, a policy after an event), the Gy session asks for
//!    the new rating groups and reports the gone ones (FINAL) in its next CCR-U.
//! 4. Bearer events (`--event`): a CCR-U reporting the Event-Trigger (with the new RAT-Type
//!    or 3GPP-User-Location-Info) only when the PCRF armed that trigger (§4.5.2); the CCA's
//!    policy applies.
//! 5. A RAR (§5.6.4) for the session is answered 2001 and its rules installed or removed;
//!    with Session-Release-Cause (§5.3.44) the PCEF ends the IP-CAN session with CCR-T.
//! 6. CCR-T at detach (after `--duration`).
//!
//! The classifier matches synthetic flows (`--flow proto:address:port[/bytes]`) against the
//! installed Flow-Descriptions (TS 29.212 §5.3.53 Flow-Information with Flow-Direction;
//! IPFilterRule syntax of RFC 6733 §4.3.1 restricted by TS 29.214 §5.4.2 to `permit out`,
//! uplink filters written UE → remote, downlink ones remote → UE) and picks the rule with
//! the lowest Precedence (§4.5.2.3: the lowest value is evaluated first).
//!
//! Local breakout (document 000 step 7, issue 12 item 7): a flow whose rule is marked
//! LOCAL_BREAKOUT (our LBO-Indicator) breaks out locally; one whose rule names a traffic
//! steering policy (Traffic-Steering-Policy-Identifier-UL/DL, variant FIG. 6) is steered to
//! the home operator's user plane in the visited network; any other rule's flow is routed
//! home. A flow no rule matches is dropped — except on that home-controlled user plane
//! (`--local-up`), which only classifies: there the rest goes home. The report counts the
//! flows and bytes of each route.

use anyhow::Context;
use diameter_codec::ResultCode;
use diameter_codec::dict::{base, dcca, gi, gx, nasreq, roaming, rx, ts29229};
use diameter_codec::types::IpFilterRule;
use diameter_codec::{AvpRef, AvpType, Message, MessageBuilder, OwnedAvp, TypedAvp};
use diameter_node::node::{RequestError, handler_fn};
use serde::Serialize;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::client::{Endpoint, Upstream};
use crate::gy::{self, Subscriber};

/// 3GPP's Vendor-Id.
const VENDOR_3GPP: u32 = 10_415;

/// A bearer event at a moment of the session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GxEvent {
    /// When, from the session's start.
    #[serde(skip)]
    pub at: Duration,
    /// The Event-Trigger it reports (TS 29.212 §5.3.7).
    pub trigger: i32,
    /// The new RAT-Type of a RAT change (§5.3.31).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rat_type: Option<i32>,
    /// As written on the command line.
    pub name: String,
}

impl GxEvent {
    /// Parses `SECONDS:KIND[:VALUE]`: `rat[:utran|geran|eutran|wlan|N]` (RAT_CHANGE with
    /// the new RAT-Type, UTRAN when none is given), `location` (USER_LOCATION_CHANGE with
    /// another cell), `qos` (QOS_CHANGE), or an Event-Trigger number.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut it = s.splitn(3, ':');
        let at = it
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(|v| Duration::try_from_secs_f64(v).ok())
            .ok_or_else(|| format!("event {s:?}: SECONDS:KIND[:VALUE]"))?;
        let kind = it
            .next()
            .ok_or_else(|| format!("event {s:?}: SECONDS:KIND[:VALUE]"))?;
        let value = it.next();
        let (trigger, rat_type) = match kind {
            "rat" => {
                let rat = match value.unwrap_or("utran") {
                    "wlan" => 0,
                    "utran" => 1000,
                    "geran" => 1001,
                    "eutran" => 1004,
                    n => n
                        .parse()
                        .map_err(|_| format!("event {s:?}: unknown RAT-Type {n:?}"))?,
                };
                (gx::EventTrigger::RAT_CHANGE.0, Some(rat))
            }
            "location" => (gx::EventTrigger::USER_LOCATION_CHANGE.0, None),
            "qos" => (gx::EventTrigger::QOS_CHANGE.0, None),
            n => (
                n.parse()
                    .map_err(|_| format!("event {s:?}: unknown kind {n:?}"))?,
                None,
            ),
        };
        Ok(Self {
            at,
            trigger,
            rat_type,
            name: s.split_once(':').map_or(s, |x| x.1).to_string(),
        })
    }
}

/// A synthetic flow for the classifier: the UE talks to `dst:port` over `proto`, `bytes`
/// octets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassFlow {
    /// As written (`tcp:198.51.100.7:443`, `tcp:203.0.113.10:443/5000`).
    pub name: String,
    /// Octets it carries (both ways), for the per-route counts.
    pub bytes: u64,
    /// IP protocol number.
    pub proto: u8,
    /// The remote end.
    pub dst: IpAddr,
    /// The remote port.
    pub port: u16,
}

impl ClassFlow {
    /// Parses `PROTO:ADDRESS:PORT[/BYTES]`, PROTO `tcp`, `udp`, `icmp` or a number; an
    /// IPv6 address in brackets; BYTES 0 when absent.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("flow {s:?}: PROTO:ADDRESS:PORT[/BYTES]");
        let (flow, bytes) = match s.rsplit_once('/') {
            Some((f, b)) => (f, b.parse().map_err(|_| bad())?),
            None => (s, 0),
        };
        let (proto, rest) = flow.split_once(':').ok_or_else(bad)?;
        let (addr, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let proto = match proto {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            n => n.parse().map_err(|_| bad())?,
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            name: s.to_string(),
            bytes,
            proto,
            dst: addr.parse().map_err(|_| bad())?,
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

/// How to run the session.
#[derive(Debug, Clone)]
pub struct GxOptions {
    /// The PCRF and who we are.
    pub endpoint: Endpoint,
    /// The subscriber.
    pub subscriber: Subscriber,
    /// The UE's IPv4 or IPv6 address (Framed-IP-Address / Framed-IPv6-Prefix).
    pub ue_ip: IpAddr,
    /// Called-Station-Id.
    pub apn: String,
    /// RAT-Type at attach.
    pub rat_type: i32,
    /// Detach after this long.
    pub duration: Duration,
    /// Detach earlier, when this is notified (a caller that orders detaches by events,
    /// not by times).
    pub detach_on: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// Bearer events.
    pub events: Vec<GxEvent>,
    /// Flows to classify.
    pub flows: Vec<ClassFlow>,
    /// The OCS's address for the Gy session, when online charging is asked for.
    pub ocs: Option<std::net::SocketAddr>,
    /// This is the home operator's user plane in a visited network (variant FIG. 6): it
    /// only classifies, and a flow no rule matches goes home instead of being dropped.
    pub local_up: bool,
    /// Deadline of each request.
    pub timeout: Duration,
    /// Print each step on standard output as it happens.
    pub live: bool,
}

/// A Flow-Information of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFlow {
    /// Flow-Description.
    pub description: String,
    /// Flow-Direction (0 unspecified, 1 downlink, 2 uplink, 3 bidirectional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<i32>,
}

/// QoS-Information of a rule (TS 29.212 §5.3.16).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RuleQos {
    /// QoS-Class-Identifier.
    pub qci: Option<i32>,
    /// Max-Requested-Bandwidth-UL.
    pub mbr_ul: Option<u32>,
    /// Max-Requested-Bandwidth-DL.
    pub mbr_dl: Option<u32>,
    /// Guaranteed-Bitrate-UL.
    pub gbr_ul: Option<u32>,
    /// Guaranteed-Bitrate-DL.
    pub gbr_dl: Option<u32>,
    /// Priority-Level of Allocation-Retention-Priority.
    pub arp_priority: Option<u32>,
}

/// An installed rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Charging-Rule-Name or Charging-Rule-Base-Name.
    pub name: String,
    /// "dynamic" (Charging-Rule-Definition), "predefined" (a name the PCEF knows) or
    /// "base" (a rule base).
    pub kind: &'static str,
    /// Precedence.
    pub precedence: Option<u32>,
    /// Rating-Group (the Charging-Key).
    pub rating_group: Option<u32>,
    /// Service-Identifier.
    pub service_id: Option<u32>,
    /// Flow-Information.
    pub flows: Vec<RuleFlow>,
    /// QoS-Information.
    pub qos: Option<RuleQos>,
    /// Online of the rule.
    pub online: Option<bool>,
    /// Offline of the rule.
    pub offline: Option<bool>,
    /// Marked LOCAL_BREAKOUT (our LBO-Indicator): its flows break out locally.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lbo: bool,
    /// Traffic-Steering-Policy-Identifier (UL, else DL): its flows are steered there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering: Option<String>,
}

/// Where a classified flow goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// Broken out locally (an LBO rule).
    LocalBreakout,
    /// Steered to the home operator's user plane in the visited network.
    Steered,
    /// Routed home.
    Home,
    /// Dropped: no rule allows it.
    Dropped,
}

impl Route {
    fn as_str(self) -> &'static str {
        match self {
            Self::LocalBreakout => "local breakout",
            Self::Steered => "steered to the local user plane",
            Self::Home => "home",
            Self::Dropped => "dropped",
        }
    }
}

/// Flows and bytes of one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RouteCount {
    /// Flows.
    pub flows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Flows and bytes per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Breakout {
    /// Broken out locally.
    pub local: RouteCount,
    /// Steered to the local user plane.
    pub steered: RouteCount,
    /// Routed home.
    pub home: RouteCount,
    /// Dropped.
    pub dropped: RouteCount,
}

impl Breakout {
    /// The counts of `hits`.
    pub fn of(hits: &[FlowHit]) -> Self {
        let mut b = Self::default();
        for h in hits {
            let c = match h.route {
                Route::LocalBreakout => &mut b.local,
                Route::Steered => &mut b.steered,
                Route::Home => &mut b.home,
                Route::Dropped => &mut b.dropped,
            };
            c.flows += 1;
            c.bytes += h.bytes;
        }
        b
    }
}

/// Charging-Information (TS 29.229 §6.3.19).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Charging {
    /// Primary-Event-Charging-Function-Name (the OCS).
    pub primary_ocs: Option<String>,
    /// Secondary-Event-Charging-Function-Name.
    pub secondary_ocs: Option<String>,
    /// Primary-Charging-Collection-Function-Name.
    pub primary_ccf: Option<String>,
    /// Secondary-Charging-Collection-Function-Name.
    pub secondary_ccf: Option<String>,
}

/// The policy of one CCA or RAR.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Policy {
    /// Rules installed.
    pub install: Vec<Rule>,
    /// Rule names and bases removed.
    pub remove: Vec<String>,
    /// Event-Trigger values (None: not sent, the armed set stays).
    pub event_triggers: Option<Vec<i32>>,
    /// Online at command level.
    pub online: Option<bool>,
    /// Offline at command level.
    pub offline: Option<bool>,
    /// APN-AMBR (UL, DL) in bit/s.
    pub apn_ambr: Option<(u32, u32)>,
    /// Default-EPS-Bearer-QoS: QCI and ARP priority level.
    pub default_bearer: Option<(Option<i32>, Option<u32>)>,
    /// Charging-Information.
    pub charging: Option<Charging>,
    /// Session-Release-Cause (RAR only).
    pub release_cause: Option<i32>,
    /// Supported-Features: (Feature-List-ID, Feature-List).
    pub features: Vec<(u32, u32)>,
}

/// One CCR and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct GxExchange {
    /// "initial", "update" or "termination".
    pub kind: &'static str,
    /// CC-Request-Number.
    pub number: u32,
    /// Milliseconds from the session's start.
    pub at_ms: u64,
    /// Event-Trigger values reported.
    pub reported: Vec<i32>,
    /// RAT-Type sent.
    pub rat_type: Option<i32>,
    /// Result-Code, or the Experimental-Result-Code.
    pub result_code: Option<u32>,
    /// The answer's policy.
    pub policy: Policy,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Through a DRA, the way the termination went: "proxied", "parallel" or "redirect"
    /// (document 002).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dra_path: Option<&'static str>,
    /// The DRA's own answer to the termination, when it answered apart from the PCRF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dra_result: Option<u32>,
}

/// A RAR received for the session.
#[derive(Debug, Clone, Serialize)]
pub struct RarSeen {
    /// Milliseconds from the session's start.
    pub at_ms: u64,
    /// Its policy.
    pub policy: Policy,
    /// The RAA's Result-Code.
    pub answered: u32,
}

/// Which rule a flow hits.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowHit {
    /// The flow as written.
    pub flow: String,
    /// The rule (none: no installed Flow-Description matches; the packet is dropped,
    /// TS 29.212 §4.5.2.3 / TS 23.203 §6.2.2.2).
    pub rule: Option<String>,
    /// Its Precedence.
    pub precedence: Option<u32>,
    /// Its Rating-Group.
    pub rating_group: Option<u32>,
    /// Charged online (the rule's Online, else the session's).
    pub online: bool,
    /// Where it goes.
    pub route: Route,
    /// Its octets.
    pub bytes: u64,
}

/// What the session did.
#[derive(Debug, Clone, Serialize)]
pub struct GxReport {
    /// Session-Id.
    pub session_id: String,
    /// The IP-CAN session was accepted (CCA-I 2001 and, with Gy, the OCS's CCA-I 2001).
    pub accepted: bool,
    /// "detach", "refused", "refused-by-ocs", "released" (RAR with Session-Release-Cause)
    /// or "error".
    pub ended_by: &'static str,
    /// Every CCR, in order.
    pub exchanges: Vec<GxExchange>,
    /// RARs received, in order.
    pub rars: Vec<RarSeen>,
    /// Rules installed at the end.
    pub rules: Vec<Rule>,
    /// Event-Triggers armed at the end.
    pub event_triggers: Vec<i32>,
    /// Session Online / Offline.
    pub online: Option<bool>,
    /// Session Offline.
    pub offline: Option<bool>,
    /// APN-AMBR (UL, DL).
    pub apn_ambr: Option<(u32, u32)>,
    /// Default-EPS-Bearer-QoS (QCI, ARP priority).
    pub default_bearer: Option<(Option<i32>, Option<u32>)>,
    /// Charging-Information.
    pub charging: Option<Charging>,
    /// The flows classified after the CCA-I.
    pub flows_initial: Vec<FlowHit>,
    /// The flows classified at the end.
    pub flows: Vec<FlowHit>,
    /// Flows and bytes per route at the end (local breakout, steered, home, dropped).
    pub breakout: Breakout,
    /// Bearer events the PCRF had not armed (no CCR-U sent).
    pub events_ignored: Vec<String>,
    /// The Gy session, when one ran.
    pub gy: Option<gy::GyReport>,
    /// The rating groups handed to the Gy session after its start, each time the online
    /// rules changed (it asks for the new ones and reports the gone ones with FINAL).
    pub gy_updates: Vec<Vec<u32>>,
}

impl GxReport {
    /// The summary as text (what is printed after the live lines).
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
        let _ = writeln!(s, "rules installed at the end:");
        for r in &self.rules {
            let _ = writeln!(s, "  {}", rule_line(r, self.online));
        }
        for f in &self.flows {
            let _ = writeln!(s, "  {}", flow_line(f));
        }
        let b = &self.breakout;
        let _ = writeln!(
            s,
            "routes: local breakout {} flows {} bytes, steered {} flows {} bytes, home {} flows {} bytes, dropped {} flows {} bytes",
            b.local.flows,
            b.local.bytes,
            b.steered.flows,
            b.steered.bytes,
            b.home.flows,
            b.home.bytes,
            b.dropped.flows,
            b.dropped.bytes
        );
        if !self.events_ignored.is_empty() {
            let _ = writeln!(
                s,
                "events not armed by the PCRF (no CCR-U): {}",
                self.events_ignored.join(", ")
            );
        }
        if let Some(g) = &self.gy {
            let _ = writeln!(s, "Gy:");
            for l in g.text().lines() {
                let _ = writeln!(s, "  {l}");
            }
        }
        s
    }
}

fn rule_line(r: &Rule, session_online: Option<bool>) -> String {
    use std::fmt::Write as _;
    let mut t = format!("{} ({})", r.name, r.kind);
    if let Some(p) = r.precedence {
        let _ = write!(t, " precedence {p}");
    }
    if let Some(rg) = r.rating_group {
        let _ = write!(t, " rating group {rg}");
    }
    if let Some(sid) = r.service_id {
        let _ = write!(t, " service {sid}");
    }
    if r.kind == "dynamic" {
        let online = r.online.or(session_online) == Some(true);
        let _ = write!(t, " {}", if online { "online" } else { "offline" });
    }
    if let Some(q) = &r.qos {
        let _ = write!(t, " QCI {}", q.qci.map_or("-".into(), |v| v.to_string()));
        if let (Some(u), Some(d)) = (q.mbr_ul, q.mbr_dl) {
            let _ = write!(t, " MBR {u}/{d}");
        }
        if let (Some(u), Some(d)) = (q.gbr_ul, q.gbr_dl) {
            let _ = write!(t, " GBR {u}/{d}");
        }
        if let Some(p) = q.arp_priority {
            let _ = write!(t, " ARP {p}");
        }
    }
    for f in &r.flows {
        let dir = match f.direction {
            Some(1) => "downlink",
            Some(2) => "uplink",
            Some(3) => "bidirectional",
            _ => "unspecified",
        };
        let _ = write!(t, " [{} {dir}]", f.description);
    }
    t
}

fn flow_line(f: &FlowHit) -> String {
    match &f.rule {
        Some(r) => format!(
            "flow {} -> rule {r} (precedence {}, rating group {}, {}) -> {}",
            f.flow,
            f.precedence.map_or("-".into(), |v| v.to_string()),
            f.rating_group.map_or("-".into(), |v| v.to_string()),
            if f.online { "online" } else { "offline" },
            f.route.as_str()
        ),
        None => format!("flow {} -> no rule -> {}", f.flow, f.route.as_str()),
    }
}

fn child<'a, T: AvpType>(g: &AvpRef<'a>, def: TypedAvp<T>) -> Option<T::Value<'a>> {
    g.children()
        .flatten()
        .find(|a| a.key() == def.key())
        .and_then(|a| def.decode(a.data).ok())
}

fn read_qos(q: &AvpRef<'_>) -> RuleQos {
    RuleQos {
        qci: child(q, gx::QOS_CLASS_IDENTIFIER).map(|v| v.0),
        mbr_ul: child(q, rx::MAX_REQUESTED_BANDWIDTH_UL),
        mbr_dl: child(q, rx::MAX_REQUESTED_BANDWIDTH_DL),
        gbr_ul: child(q, gx::GUARANTEED_BITRATE_UL),
        gbr_dl: child(q, gx::GUARANTEED_BITRATE_DL),
        arp_priority: q
            .children()
            .flatten()
            .find(|a| a.key() == gx::ALLOCATION_RETENTION_PRIORITY.key())
            .and_then(|a| child(&a, gx::PRIORITY_LEVEL)),
    }
}

fn read_definition(d: &AvpRef<'_>) -> Rule {
    let mut r = Rule {
        name: String::new(),
        kind: "dynamic",
        precedence: None,
        rating_group: None,
        service_id: None,
        flows: Vec::new(),
        qos: None,
        online: None,
        offline: None,
        lbo: false,
        steering: None,
    };
    for a in d.children().flatten() {
        let k = a.key();
        if k == gx::CHARGING_RULE_NAME.key() {
            r.name = String::from_utf8_lossy(a.data).into_owned();
        } else if k == gx::PRECEDENCE.key() {
            r.precedence = gx::PRECEDENCE.decode(a.data).ok();
        } else if k == dcca::RATING_GROUP.key() {
            r.rating_group = dcca::RATING_GROUP.decode(a.data).ok();
        } else if k == dcca::SERVICE_IDENTIFIER.key() {
            r.service_id = dcca::SERVICE_IDENTIFIER.decode(a.data).ok();
        } else if k == gx::FLOW_INFORMATION.key() {
            if let Some(desc) = child(&a, rx::FLOW_DESCRIPTION) {
                r.flows.push(RuleFlow {
                    description: desc.to_string(),
                    direction: child(&a, gx::FLOW_DIRECTION).map(|v| v.0),
                });
            }
        } else if k == gx::QOS_INFORMATION.key() {
            r.qos = Some(read_qos(&a));
        } else if k == gx::ONLINE.key() {
            r.online = gx::ONLINE.decode(a.data).ok().map(|v| v.0 == 1);
        } else if k == gx::OFFLINE.key() {
            r.offline = gx::OFFLINE.decode(a.data).ok().map(|v| v.0 == 1);
        } else if k == roaming::LBO_INDICATOR.key() {
            r.lbo = roaming::LBO_INDICATOR.decode(a.data).ok()
                == Some(roaming::LboIndicator::LOCAL_BREAKOUT);
        } else if k == gx::TRAFFIC_STEERING_POLICY_IDENTIFIER_UL.key()
            || (k == gx::TRAFFIC_STEERING_POLICY_IDENTIFIER_DL.key() && r.steering.is_none())
        {
            r.steering = Some(String::from_utf8_lossy(a.data).into_owned());
        }
    }
    r
}

fn named(name: String, kind: &'static str) -> Rule {
    Rule {
        name,
        kind,
        precedence: None,
        rating_group: None,
        service_id: None,
        flows: Vec::new(),
        qos: None,
        online: None,
        offline: None,
        lbo: false,
        steering: None,
    }
}

/// Reads the policy AVPs of a Gx CCA (TS 29.212 §5.6.3) or RAR (§5.6.4).
pub fn read_policy(m: &Message) -> Policy {
    let mut p = Policy::default();
    let mut triggers = Vec::new();
    let mut saw_triggers = false;
    for a in m.avps().flatten() {
        let k = a.key();
        if k == gx::CHARGING_RULE_INSTALL.key() {
            for c in a.children().flatten() {
                let ck = c.key();
                if ck == gx::CHARGING_RULE_DEFINITION.key() {
                    p.install.push(read_definition(&c));
                } else if ck == gx::CHARGING_RULE_NAME.key() {
                    p.install.push(named(
                        String::from_utf8_lossy(c.data).into_owned(),
                        "predefined",
                    ));
                } else if ck == gx::CHARGING_RULE_BASE_NAME.key()
                    && let Ok(n) = gx::CHARGING_RULE_BASE_NAME.decode(c.data)
                {
                    p.install.push(named(n.to_string(), "base"));
                }
            }
        } else if k == gx::CHARGING_RULE_REMOVE.key() {
            for c in a.children().flatten() {
                if c.key() == gx::CHARGING_RULE_NAME.key()
                    || c.key() == gx::CHARGING_RULE_BASE_NAME.key()
                {
                    p.remove.push(String::from_utf8_lossy(c.data).into_owned());
                }
            }
        } else if k == gx::EVENT_TRIGGER.key() {
            saw_triggers = true;
            if let Ok(t) = gx::EVENT_TRIGGER.decode(a.data)
                && t != gx::EventTrigger::NO_EVENT_TRIGGERS
            {
                triggers.push(t.0);
            }
        } else if k == gx::ONLINE.key() {
            p.online = gx::ONLINE.decode(a.data).ok().map(|v| v.0 == 1);
        } else if k == gx::OFFLINE.key() {
            p.offline = gx::OFFLINE.decode(a.data).ok().map(|v| v.0 == 1);
        } else if k == gx::QOS_INFORMATION.key() {
            if let (Some(u), Some(d)) = (
                child(&a, gx::APN_AGGREGATE_MAX_BITRATE_UL),
                child(&a, gx::APN_AGGREGATE_MAX_BITRATE_DL),
            ) {
                p.apn_ambr = Some((u, d));
            }
        } else if k == gx::DEFAULT_EPS_BEARER_QOS.key() {
            let q = read_qos(&a);
            p.default_bearer = Some((q.qci, q.arp_priority));
        } else if k == ts29229::CHARGING_INFORMATION.key() {
            let uri =
                |def| child(&a, def).map(|u: diameter_codec::types::DiameterUri<'_>| u.to_string());
            p.charging = Some(Charging {
                primary_ocs: uri(ts29229::PRIMARY_EVENT_CHARGING_FUNCTION_NAME),
                secondary_ocs: uri(ts29229::SECONDARY_EVENT_CHARGING_FUNCTION_NAME),
                primary_ccf: uri(ts29229::PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME),
                secondary_ccf: uri(ts29229::SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME),
            });
        } else if k == gx::SESSION_RELEASE_CAUSE.key() {
            p.release_cause = gx::SESSION_RELEASE_CAUSE.decode(a.data).ok().map(|v| v.0);
        } else if k == ts29229::SUPPORTED_FEATURES.key()
            && let (Some(id), Some(list)) = (
                child(&a, ts29229::FEATURE_LIST_ID),
                child(&a, ts29229::FEATURE_LIST),
            )
        {
            p.features.push((id, list));
        }
    }
    if saw_triggers {
        p.event_triggers = Some(triggers);
    }
    p
}

/// The result of an answer: Result-Code, else Experimental-Result-Code (RFC 6733 §7.6).
fn result_of(m: &Message) -> Option<u32> {
    m.get(base::RESULT_CODE).and_then(Result::ok).or_else(|| {
        m.find(base::EXPERIMENTAL_RESULT.key())
            .and_then(|e| child(&e, base::EXPERIMENTAL_RESULT_CODE))
    })
}

/// The enforcement state of the IP-CAN session.
#[derive(Debug, Default)]
struct Enforced {
    rules: Vec<Rule>,
    armed: Vec<i32>,
    online: Option<bool>,
    offline: Option<bool>,
    apn_ambr: Option<(u32, u32)>,
    default_bearer: Option<(Option<i32>, Option<u32>)>,
    charging: Option<Charging>,
}

impl Enforced {
    /// Removals first, then installs (a rule installed again under the same name replaces
    /// the old one); Event-Trigger replaces the armed set (TS 29.212 §5.3.7: the PCRF sends
    /// the complete list, NO_EVENT_TRIGGERS for none); the rest replaces what it names.
    fn apply(&mut self, p: &Policy) {
        self.rules.retain(|r| !p.remove.contains(&r.name));
        for r in &p.install {
            self.rules.retain(|o| o.name != r.name);
            self.rules.push(r.clone());
        }
        if let Some(t) = &p.event_triggers {
            self.armed = t.clone();
        }
        self.online = p.online.or(self.online);
        self.offline = p.offline.or(self.offline);
        self.apn_ambr = p.apn_ambr.or(self.apn_ambr);
        self.default_bearer = p.default_bearer.or(self.default_bearer);
        if p.charging.is_some() {
            self.charging = p.charging.clone();
        }
    }

    fn online_rule(&self, r: &Rule) -> bool {
        r.kind == "dynamic" && r.online.or(self.online) == Some(true)
    }

    /// The rating groups of the online rules, in install order, each once.
    fn online_rating_groups(&self) -> Vec<u32> {
        let mut v: Vec<u32> = Vec::new();
        for r in self.rules.iter().filter(|r| self.online_rule(r)) {
            if let Some(rg) = r.rating_group
                && !v.contains(&rg)
            {
                v.push(rg);
            }
        }
        v
    }

    /// Each flow's rule and route; `local_up`: unmatched flows go home (module
    /// documentation).
    fn classify(&self, flows: &[ClassFlow], ue: IpAddr, local_up: bool) -> Vec<FlowHit> {
        let mut order: Vec<&Rule> = self.rules.iter().filter(|r| r.kind == "dynamic").collect();
        // The lowest Precedence first (TS 29.212 §5.3.50); rules without one last.
        order.sort_by_key(|r| r.precedence.unwrap_or(u32::MAX));
        flows
            .iter()
            .map(|f| {
                let hit = order.iter().find(|r| {
                    r.flows
                        .iter()
                        .any(|d| description_matches(&d.description, d.direction, f, ue))
                });
                FlowHit {
                    flow: f.name.clone(),
                    rule: hit.map(|r| r.name.clone()),
                    precedence: hit.and_then(|r| r.precedence),
                    rating_group: hit.and_then(|r| r.rating_group),
                    online: hit.is_some_and(|r| self.online_rule(r)),
                    route: match hit {
                        Some(r) if r.lbo => Route::LocalBreakout,
                        Some(r) if r.steering.is_some() => Route::Steered,
                        Some(_) => Route::Home,
                        None if local_up => Route::Home,
                        None => Route::Dropped,
                    },
                    bytes: f.bytes,
                }
            })
            .collect()
    }
}

/// Whether a flow's packets match a Flow-Description: uplink filters (Flow-Direction 2)
/// are written UE → remote, downlink ones (1) remote → UE (TS 29.212 §5.3.65, TS 29.214
/// §5.4.2); a bidirectional or unspecified one matches either way. Only `permit` rules
/// select traffic; an unreadable description matches nothing.
pub fn description_matches(desc: &str, direction: Option<i32>, f: &ClassFlow, ue: IpAddr) -> bool {
    let Ok(r) = IpFilterRule::parse_str(desc) else {
        return false;
    };
    if r.action != diameter_codec::types::FilterAction::Permit {
        return false;
    }
    let local = (ue, gy::UE_PORT);
    let remote = (f.dst, f.port);
    let up = || gy::packet_matches(&r, f.proto, local, remote, ue);
    let down = || gy::packet_matches(&r, f.proto, remote, local, ue);
    match direction {
        Some(2) => up(),
        Some(1) => down(),
        _ => up() || down(),
    }
}

/// Runs the session against the PCRF and returns what happened.
pub async fn run(opts: &GxOptions) -> anyhow::Result<GxReport> {
    let up = Upstream::connect(&opts.endpoint, gx::APP_GX, opts.timeout)
        .await
        .context("connecting to the PCRF")?;
    let node = up.node().clone();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // RFC 6733 §8.8: <DiameterIdentity>;<high 32 bits>;<low 32 bits>.
    let id = format!(
        "{};{epoch};gx{}",
        opts.endpoint.origin_host,
        std::process::id()
    );
    // TS 29.212 §4.5.2: the PCRF's RAR for our session is answered at once (2001) and its
    // policy handed to the session.
    let (tx, rx) = mpsc::unbounded_channel::<Policy>();
    let ours = id.clone();
    node.register(
        gx::APP_GX,
        handler_fn(move |req| {
            let tx = tx.clone();
            let ours = ours.clone();
            async move {
                if req.msg.header().command_code != gx::CMD_RE_AUTH {
                    return req.answer(ResultCode::DIAMETER_COMMAND_UNSUPPORTED);
                }
                if req.msg.session_id() != Some(ours.as_str()) {
                    return req.answer(ResultCode::DIAMETER_UNKNOWN_SESSION_ID);
                }
                let _ = tx.send(read_policy(&req.msg));
                req.answer(ResultCode::DIAMETER_SUCCESS)
            }
        }),
    );
    let mut s = Session {
        up: &up,
        opts,
        id,
        start: Instant::now(),
        number: 0,
        rat_type: opts.rat_type,
        cell: 1,
        enforced: Enforced::default(),
        exchanges: Vec::new(),
        rars: Vec::new(),
        events_ignored: Vec::new(),
        gy_groups: None,
        gy_updates: Vec::new(),
        rx,
    };
    let (ended_by, accepted, flows_initial, gy) = s.drive().await;
    node.shutdown(Duration::from_secs(1)).await;
    let e = &s.enforced;
    let flows = e.classify(&opts.flows, opts.ue_ip, opts.local_up);
    Ok(GxReport {
        session_id: s.id.clone(),
        accepted,
        ended_by,
        breakout: Breakout::of(&flows),
        flows,
        flows_initial,
        exchanges: s.exchanges,
        rars: s.rars,
        rules: e.rules.clone(),
        event_triggers: e.armed.clone(),
        online: e.online,
        offline: e.offline,
        apn_ambr: e.apn_ambr,
        default_bearer: e.default_bearer,
        charging: e.charging.clone(),
        events_ignored: s.events_ignored,
        gy,
        gy_updates: s.gy_updates,
    })
}

struct Session<'a> {
    up: &'a Upstream,
    opts: &'a GxOptions,
    id: String,
    start: Instant,
    number: u32,
    rat_type: i32,
    /// E-UTRAN cell identity sent in 3GPP-User-Location-Info (changes on `location`).
    cell: u32,
    enforced: Enforced,
    exchanges: Vec<GxExchange>,
    rars: Vec<RarSeen>,
    events_ignored: Vec<String>,
    /// The rating groups the Gy session charges and where to tell it of changes, when one
    /// runs.
    gy_groups: Option<(Vec<u32>, tokio::sync::watch::Sender<Vec<gy::Service>>)>,
    gy_updates: Vec<Vec<u32>>,
    rx: mpsc::UnboundedReceiver<Policy>,
}

type Driven = (&'static str, bool, Vec<FlowHit>, Option<gy::GyReport>);

impl Session<'_> {
    fn say(&self, line: String) {
        if self.opts.live {
            println!("{:>7} ms  {line}", self.start.elapsed().as_millis());
        }
    }

    fn say_policy(&self, p: &Policy) {
        for r in &p.remove {
            self.say(format!("  remove {r}"));
        }
        for r in &p.install {
            self.say(format!(
                "  install {}",
                rule_line(r, p.online.or(self.enforced.online))
            ));
        }
        if let Some(t) = &p.event_triggers {
            self.say(format!("  event triggers {t:?}"));
        }
        if p.online.is_some() || p.offline.is_some() {
            self.say(format!(
                "  online {:?} offline {:?}",
                p.online.unwrap_or(false),
                p.offline.unwrap_or(false)
            ));
        }
        if let Some((u, d)) = p.apn_ambr {
            self.say(format!("  APN-AMBR {u}/{d} bit/s"));
        }
        if let Some((q, a)) = p.default_bearer {
            self.say(format!(
                "  default bearer QCI {} ARP {}",
                q.map_or("-".into(), |v| v.to_string()),
                a.map_or("-".into(), |v| v.to_string())
            ));
        }
        if let Some(c) = &p.charging {
            self.say(format!(
                "  charging: OCS {} / {}, CCF {} / {}",
                c.primary_ocs.as_deref().unwrap_or("-"),
                c.secondary_ocs.as_deref().unwrap_or("-"),
                c.primary_ccf.as_deref().unwrap_or("-"),
                c.secondary_ccf.as_deref().unwrap_or("-")
            ));
        }
        if let Some(c) = p.release_cause {
            self.say(format!("  Session-Release-Cause {c}"));
        }
    }

    /// Hands the running Gy session the rating groups of the online rules when they changed
    /// (S310: one MSCC per rating group of the active online rules).
    fn sync_gy(&mut self) {
        let now = self.enforced.online_rating_groups();
        let Some((charged, tx)) = &mut self.gy_groups else {
            return;
        };
        if *charged == now {
            return;
        }
        let _ = tx.send(services(&now));
        *charged = now.clone();
        self.say(format!("Gy: rating groups now {now:?}"));
        self.gy_updates.push(now);
    }

    fn say_flows(&self) -> Vec<FlowHit> {
        let hits = self
            .enforced
            .classify(&self.opts.flows, self.opts.ue_ip, self.opts.local_up);
        for h in &hits {
            self.say(format!("  {}", flow_line(h)));
        }
        hits
    }

    async fn drive(&mut self) -> Driven {
        let (code, policy) = self.exchange(1, None).await;
        if code != Some(2001) {
            self.say(format!(
                "IP-CAN session refused (CCA-I {})",
                code.map_or("unanswered".into(), |c| c.to_string())
            ));
            return (
                if code.is_some() { "refused" } else { "error" },
                false,
                Vec::new(),
                None,
            );
        }
        self.enforced.apply(&policy);
        let flows_initial = self.say_flows();
        // Online charging (S310): one MSCC per rating group of the online rules, the
        // IP-CAN session accepted only after the OCS's CCA-I (S315–S316).
        let mut gy_task = None;
        let rgs = self.enforced.online_rating_groups();
        let ocs = self
            .enforced
            .charging
            .as_ref()
            .and_then(|c| c.primary_ocs.clone());
        if let (Some(addr), Some(uri)) = (self.opts.ocs, ocs) {
            if rgs.is_empty() {
                self.say("no online rule: no Gy session".into());
            } else {
                let host = diameter_codec::types::DiameterUri::parse(uri.as_bytes())
                    .map(|u| u.fqdn.to_string())
                    .unwrap_or(uri.clone());
                self.say(format!("Gy to {host} at {addr}: rating groups {rgs:?}"));
                let (tx, mut initial) = mpsc::unbounded_channel();
                let (watch_tx, watch_rx) = tokio::sync::watch::channel(services(&rgs));
                let gopts = gy::GyOptions {
                    endpoint: Endpoint::direct(
                        addr,
                        host,
                        &self.opts.endpoint.dest_realm,
                        &self.opts.endpoint.origin_host,
                        &self.opts.endpoint.origin_realm,
                    ),
                    subscriber: self.opts.subscriber.clone(),
                    services: services(&rgs),
                    duration: self.opts.duration.saturating_sub(self.start.elapsed()),
                    tick: Duration::from_millis(10),
                    events: Vec::new(),
                    idle: Vec::new(),
                    flows: gy::Flow::defaults(),
                    retransmit: None,
                    timeout: self.opts.timeout,
                    on_initial: Some(tx),
                    services_watch: Some(watch_rx),
                };
                let task = tokio::spawn(async move { gy::run(&gopts).await });
                let answer = initial.recv().await.flatten();
                self.say(format!(
                    "Gy CCA-I {}",
                    answer.map_or("unanswered".into(), |c| c.to_string())
                ));
                if answer != Some(2001) {
                    // The OCS refused (or did not answer): the IP-CAN session is not
                    // established; the PCEF ends the Gx session (TS 29.212 §4.5.6).
                    self.exchange(3, None).await;
                    let gy = task.await.ok().and_then(Result::ok);
                    return ("refused-by-ocs", false, flows_initial, gy);
                }
                gy_task = Some(task);
                self.gy_groups = Some((rgs, watch_tx));
            }
        }
        self.say("IP-CAN session accepted".into());
        let mut events = self.opts.events.clone();
        events.sort_by_key(|e| e.at);
        let mut events = events.into_iter().peekable();
        let detach = self.start + self.opts.duration;
        let detach_on = self.opts.detach_on.clone();
        let ended_by = loop {
            let next = events
                .peek()
                .map_or(detach, |e| (self.start + e.at).min(detach));
            tokio::select! {
                _ = async { detach_on.as_ref().unwrap().notified().await }, if detach_on.is_some() => {
                    break "detach";
                }
                p = self.rx.recv() => {
                    let Some(p) = p else { continue };
                    self.say("RAR from the PCRF, answered 2001".into());
                    self.say_policy(&p);
                    self.enforced.apply(&p);
                    let release = p.release_cause.is_some();
                    self.rars.push(RarSeen {
                        at_ms: self.start.elapsed().as_millis() as u64,
                        policy: p,
                        answered: 2001,
                    });
                    self.say_flows();
                    self.sync_gy();
                    if release {
                        break "released";
                    }
                }
                _ = tokio::time::sleep_until(next.into()) => {
                    if Instant::now() >= detach {
                        break "detach";
                    }
                    let Some(e) = events.next() else { continue };
                    if let Some(r) = e.rat_type {
                        self.rat_type = r;
                    }
                    if e.trigger == gx::EventTrigger::USER_LOCATION_CHANGE.0 {
                        self.cell += 1;
                    }
                    if !self.enforced.armed.contains(&e.trigger) {
                        self.say(format!("event {}: trigger {} not armed, no CCR-U", e.name, e.trigger));
                        self.events_ignored.push(e.name.clone());
                        continue;
                    }
                    let (code, p) = self.exchange(2, Some(&e)).await;
                    if code == Some(2001) {
                        self.enforced.apply(&p);
                        self.say_flows();
                        self.sync_gy();
                    }
                }
            }
        };
        self.exchange(3, None).await;
        let gy = match gy_task {
            Some(t) => t.await.ok().and_then(Result::ok),
            None => None,
        };
        (ended_by, true, flows_initial, gy)
    }

    /// 3GPP-User-Location-Info (TS 29.061 §16.4.7.2): type 130, TAI and ECGI of PLMN 001-01.
    fn location(&self) -> Vec<u8> {
        let plmn = [0x00, 0xf1, 0x10];
        let mut v = vec![130];
        v.extend_from_slice(&plmn);
        v.extend_from_slice(&[0x00, 0x01]);
        v.extend_from_slice(&plmn);
        v.extend_from_slice(&(self.cell & 0x0fff_ffff).to_be_bytes());
        v
    }

    /// Sends one CCR (`kind` 1 initial, 2 update, 3 termination) and returns the answer's
    /// result and policy.
    async fn exchange(&mut self, kind: i32, event: Option<&GxEvent>) -> (Option<u32>, Policy) {
        let number = self.number;
        self.number += 1;
        let ep = &self.opts.endpoint;
        let mut b = MessageBuilder::request(gx::CMD_CREDIT_CONTROL, gx::APP_GX, true);
        b.push(base::SESSION_ID.with(self.id.clone()));
        b.push(base::AUTH_APPLICATION_ID.with(gx::APP_GX));
        b.push(base::ORIGIN_HOST.with(ep.origin_host.clone()));
        b.push(base::ORIGIN_REALM.with(ep.origin_realm.clone()));
        b.push(base::DESTINATION_REALM.with(ep.dest_realm.clone()));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
        b.push(dcca::CC_REQUEST_NUMBER.with(number));
        let mut rat = None;
        let mut reported = Vec::new();
        match kind {
            1 => {
                b.push(dcca::SUBSCRIPTION_ID.with(vec![
                    dcca::SUBSCRIPTION_ID_TYPE
                        .with(dcca::SubscriptionIdType(self.opts.subscriber.kind)),
                    dcca::SUBSCRIPTION_ID_DATA.with(self.opts.subscriber.data.clone()),
                ]));
                // TS 29.212 §5.4.1, Table 5.4.1.1: Rel8 (bit 0), Rel9 (1), Rel10 (3).
                b.push(ts29229::SUPPORTED_FEATURES.with(vec![
                    base::VENDOR_ID.with(VENDOR_3GPP),
                    ts29229::FEATURE_LIST_ID.with(1u32),
                    ts29229::FEATURE_LIST.with(0b1011u32),
                ]));
                b.push(ue_address(self.opts.ue_ip));
                b.push(gx::IP_CAN_TYPE.with(gx::IpCanType::TGPP_EPS));
                b.push(gx::RAT_TYPE.with(gx::RatType(self.rat_type)));
                rat = Some(self.rat_type);
                b.push(gi::TGPP_USER_LOCATION_INFO.with(bytes::Bytes::from(self.location())));
                b.push(nasreq::CALLED_STATION_ID.with(self.opts.apn.clone()));
            }
            2 => {
                if let Some(e) = event {
                    // TS 29.212 §5.3.7: the event reported with the information it changed.
                    b.push(gx::EVENT_TRIGGER.with(gx::EventTrigger(e.trigger)));
                    reported.push(e.trigger);
                    if e.trigger == gx::EventTrigger::RAT_CHANGE.0 {
                        b.push(gx::RAT_TYPE.with(gx::RatType(self.rat_type)));
                        rat = Some(self.rat_type);
                    }
                    if e.trigger == gx::EventTrigger::USER_LOCATION_CHANGE.0 {
                        b.push(
                            gi::TGPP_USER_LOCATION_INFO.with(bytes::Bytes::from(self.location())),
                        );
                    }
                }
            }
            _ => {
                b.push(base::TERMINATION_CAUSE.with(base::TerminationCause::DIAMETER_LOGOUT));
            }
        }
        b.end_to_end = self.up.node().next_end_to_end();
        let name = ["CCR-I", "CCR-U", "CCR-T"][(kind - 1) as usize];
        let at_ms = self.start.elapsed().as_millis() as u64;
        // Through a DRA, the CCR-I records how it handled the session and the CCR-T goes
        // the way that says (document 002).
        let (mut dra_path, mut dra_result) = (None, None);
        let r = match kind {
            1 => self.up.establish(b).await,
            2 => self.up.request(b).await,
            _ => {
                let t = self.up.terminate(b).await;
                (dra_path, dra_result) = (t.path, t.dra_result);
                t.answer
            }
        };
        let (code, policy, error) = match r {
            Ok(m) => (result_of(&m), read_policy(&m), None),
            // An answer with the E bit is still an answer (RFC 6733 §7.2).
            Err(RequestError::Protocol { answer, .. }) => {
                (result_of(&answer), Policy::default(), None)
            }
            Err(e) => (None, Policy::default(), Some(e.to_string())),
        };
        let dra_note = match (dra_path, dra_result) {
            (Some(p), Some(c)) => format!(" (DRA: {p}, DRA answered {c})"),
            (Some(p), None) => format!(" (DRA: {p})"),
            _ => String::new(),
        };
        self.say(format!(
            "{name} #{number}{} -> {}{dra_note}",
            event
                .map(|e| format!(" event {}", e.name))
                .unwrap_or_default(),
            code.map_or_else(|| error.clone().unwrap_or_default(), |c| c.to_string())
        ));
        self.say_policy(&policy);
        self.exchanges.push(GxExchange {
            kind: ["initial", "update", "termination"][(kind - 1) as usize],
            number,
            at_ms,
            reported,
            rat_type: rat,
            result_code: code,
            policy: policy.clone(),
            error,
            dra_path,
            dra_result,
        });
        (code, policy)
    }
}

/// One Gy service per rating group, at the default rates.
fn services(rgs: &[u32]) -> Vec<gy::Service> {
    rgs.iter()
        .map(|&rg| gy::Service {
            rating_group: rg,
            service_id: None,
            rate: None,
        })
        .collect()
}

/// Framed-IP-Address (RFC 7155 §4.4.10.5.1) or, for IPv6, Framed-IPv6-Prefix /64
/// (RFC 3162 §2.3).
pub(crate) fn ue_address(ip: IpAddr) -> OwnedAvp {
    match ip {
        IpAddr::V4(v) => nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(&v.octets())),
        IpAddr::V6(v) => {
            let mut p = vec![0u8, 64];
            p.extend_from_slice(&v.octets()[..8]);
            nasreq::FRAMED_IPV6_PREFIX.with(bytes::Bytes::from(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, precedence: u32, rg: u32, flows: &[(&str, i32)]) -> Rule {
        Rule {
            name: name.into(),
            kind: "dynamic",
            precedence: Some(precedence),
            rating_group: Some(rg),
            service_id: None,
            flows: flows
                .iter()
                .map(|(d, dir)| RuleFlow {
                    description: (*d).into(),
                    direction: Some(*dir),
                })
                .collect(),
            qos: None,
            online: None,
            offline: None,
            lbo: false,
            steering: None,
        }
    }

    #[test]
    fn command_line_forms_parse() {
        let e = GxEvent::parse("1.5:rat").unwrap();
        assert_eq!((e.trigger, e.rat_type), (2, Some(1000)));
        assert_eq!(GxEvent::parse("1:rat:eutran").unwrap().rat_type, Some(1004));
        assert_eq!(GxEvent::parse("1:location").unwrap().trigger, 13);
        assert_eq!(GxEvent::parse("1:26").unwrap().trigger, 26);
        assert!(GxEvent::parse("1:bogus").is_err());
        assert!(GxEvent::parse("x:rat").is_err());
        assert!(GxEvent::parse("1:rat:mars").is_err());
        let f = ClassFlow::parse("tcp:198.51.100.7:443").unwrap();
        assert_eq!((f.proto, f.port), (6, 443));
        let f = ClassFlow::parse("udp:[2001:db8::1]:53").unwrap();
        assert_eq!((f.proto, f.dst), (17, "2001:db8::1".parse().unwrap()));
        assert!(ClassFlow::parse("tcp:nowhere:1").is_err());
        assert!(ClassFlow::parse("sctp:192.0.2.1:1").is_err());
    }

    #[test]
    fn flows_hit_the_lowest_precedence_rule_that_matches() {
        // The demo rules of pcrf/examples/spr.toml.
        let mut e = Enforced {
            online: Some(true),
            ..Enforced::default()
        };
        e.apply(&Policy {
            install: vec![
                rule(
                    "internet",
                    1000,
                    10,
                    &[("permit out ip from any to any", 3)],
                ),
                rule(
                    "video",
                    500,
                    20,
                    &[
                        ("permit out tcp from 198.51.100.0/24 443 to any", 1),
                        ("permit out tcp from any to 198.51.100.0/24 443", 2),
                    ],
                ),
                rule(
                    "voice",
                    100,
                    50,
                    &[("permit out udp from 192.0.2.10 to any", 3)],
                ),
            ],
            ..Policy::default()
        });
        let ue: IpAddr = "10.45.0.2".parse().unwrap();
        let flows: Vec<ClassFlow> = [
            "tcp:198.51.100.7:443",
            "tcp:198.51.100.7:80",
            "udp:192.0.2.10:5060",
            "tcp:192.0.2.10:5060",
        ]
        .iter()
        .map(|s| ClassFlow::parse(s).unwrap())
        .collect();
        let hits: Vec<(Option<String>, Option<u32>)> = e
            .classify(&flows, ue, false)
            .into_iter()
            .map(|h| (h.rule, h.rating_group))
            .collect();
        assert_eq!(
            hits,
            vec![
                (Some("video".into()), Some(20)),
                (Some("internet".into()), Some(10)),
                (Some("voice".into()), Some(50)),
                (Some("internet".into()), Some(10)),
            ]
        );
        // Without the catch-all, a flow no rule allows is dropped.
        e.apply(&Policy {
            remove: vec!["internet".into()],
            ..Policy::default()
        });
        let h = e.classify(&flows[1..2], ue, false);
        assert_eq!(h[0].rule, None);
        assert_eq!(e.online_rating_groups(), vec![20, 50]);
    }

    /// Document 000 step 7: the LBO rule's flows break out, the other rules' go home, by
    /// Precedence; flows and bytes are counted per route. On the home-controlled user plane
    /// (FIG. 6) unmatched flows go home; on a visited PCEF a steering rule steers them.
    #[test]
    fn local_breakout_flows_break_out_and_the_rest_goes_home() {
        let mut e = Enforced::default();
        let mut cdn = rule(
            "lbo-cdn",
            50,
            70,
            &[
                ("permit out tcp from any to 203.0.113.10 443", 2),
                ("permit out tcp from 203.0.113.10 443 to any", 1),
            ],
        );
        cdn.lbo = true;
        e.apply(&Policy {
            install: vec![
                cdn,
                rule(
                    "internet",
                    1000,
                    10,
                    &[("permit out ip from any to any", 3)],
                ),
            ],
            ..Policy::default()
        });
        let ue: IpAddr = "10.45.0.2".parse().unwrap();
        let flows: Vec<ClassFlow> = [
            "tcp:203.0.113.10:443/5000",
            "tcp:203.0.113.10:80/300",
            "tcp:198.51.100.7:443/700",
            "tcp:203.0.113.10:443/1000",
        ]
        .iter()
        .map(|s| ClassFlow::parse(s).unwrap())
        .collect();
        let hits = e.classify(&flows, ue, false);
        let routes: Vec<Route> = hits.iter().map(|h| h.route).collect();
        assert_eq!(
            routes,
            [
                Route::LocalBreakout,
                Route::Home,
                Route::Home,
                Route::LocalBreakout
            ]
        );
        let b = Breakout::of(&hits);
        assert_eq!(
            (b.local, b.home, b.dropped),
            (
                RouteCount {
                    flows: 2,
                    bytes: 6000
                },
                RouteCount {
                    flows: 2,
                    bytes: 1000
                },
                RouteCount::default()
            )
        );
        // The home-controlled user plane holds only the LBO rule: the rest goes home there,
        // where a PCEF would drop it.
        e.apply(&Policy {
            remove: vec!["internet".into()],
            ..Policy::default()
        });
        assert_eq!(e.classify(&flows[2..3], ue, true)[0].route, Route::Home);
        assert_eq!(e.classify(&flows[2..3], ue, false)[0].route, Route::Dropped);
        // A visited PCEF told to steer everything to that user plane.
        let mut steer = rule("lbo-steer", 1, 0, &[("permit out ip from any to any", 3)]);
        steer.steering = Some("to-home-lup".into());
        let mut v = Enforced::default();
        v.apply(&Policy {
            install: vec![steer],
            ..Policy::default()
        });
        assert!(
            v.classify(&flows, ue, false)
                .iter()
                .all(|h| h.route == Route::Steered)
        );
    }

    #[test]
    fn lbo_marks_are_read_from_rule_definitions() {
        let mut b = MessageBuilder::request(gx::CMD_RE_AUTH, gx::APP_GX, true);
        b.push(gx::CHARGING_RULE_INSTALL.with(vec![
            gx::CHARGING_RULE_DEFINITION.with(vec![
                gx::CHARGING_RULE_NAME.with(bytes::Bytes::from_static(b"lbo")),
                roaming::LBO_INDICATOR.with(roaming::LboIndicator::LOCAL_BREAKOUT),
            ]),
            gx::CHARGING_RULE_DEFINITION.with(vec![
                gx::CHARGING_RULE_NAME.with(bytes::Bytes::from_static(b"steer")),
                gx::TRAFFIC_STEERING_POLICY_IDENTIFIER_UL
                    .with(bytes::Bytes::from_static(b"to-home-lup")),
            ]),
        ]));
        let p = read_policy(&b.build().unwrap());
        assert!(p.install[0].lbo && p.install[0].steering.is_none());
        assert!(!p.install[1].lbo);
        assert_eq!(p.install[1].steering.as_deref(), Some("to-home-lup"));
        assert_eq!(
            ClassFlow::parse("tcp:[2001:db8::1]:443/9").unwrap().bytes,
            9
        );
        assert!(ClassFlow::parse("tcp:1.2.3.4:443/x").is_err());
    }

    #[test]
    fn a_one_way_filter_does_not_match_the_other_way() {
        let f = ClassFlow::parse("tcp:198.51.100.7:443").unwrap();
        let ue: IpAddr = "10.45.0.2".parse().unwrap();
        let down = "permit out tcp from 198.51.100.0/24 443 to any";
        assert!(description_matches(down, Some(1), &f, ue));
        assert!(!description_matches(down, Some(2), &f, ue));
        assert!(description_matches(down, None, &f, ue));
        assert!(!description_matches(
            "deny out ip from any to any",
            None,
            &f,
            ue
        ));
        assert!(!description_matches("garbage", None, &f, ue));
        assert!(description_matches(
            "permit out tcp from assigned to 198.51.100.7 443",
            Some(2),
            &f,
            ue
        ));
    }
}
