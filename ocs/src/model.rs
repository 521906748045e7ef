//! The charging state: accounts, sessions with their reservations, and the credit-control
//! requests and answers as plain data (no Diameter encoding), so the decision logic, the
//! stores and a visited OCS share them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Wall-clock milliseconds since the Unix epoch. Leases and stored answers outlive a restart,
/// so they are kept in wall-clock time, not in a monotonic clock.
pub type UnixMillis = u64;

/// What a balance or a rating group counts (RFC 4006 §8.17 Granted-Service-Unit members,
/// §8.32 CC-Unit-Type), or money for accounts charged through a tariff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitKind {
    /// Seconds (CC-Time).
    Time,
    /// Octets both ways (CC-Total-Octets).
    TotalOctets,
    /// Octets from the user (CC-Input-Octets).
    InputOctets,
    /// Octets to the user (CC-Output-Octets).
    OutputOctets,
    /// Events or other service-specific units (CC-Service-Specific-Units).
    ServiceSpecific,
    /// Money, in the account's smallest currency unit; spent through a rating group's tariff.
    Money,
}

impl UnitKind {
    /// Every kind, in display order.
    pub const ALL: [Self; 6] = [
        Self::Time,
        Self::TotalOctets,
        Self::InputOctets,
        Self::OutputOctets,
        Self::ServiceSpecific,
        Self::Money,
    ];

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::TotalOctets => "total-octets",
            Self::InputOctets => "input-octets",
            Self::OutputOctets => "output-octets",
            Self::ServiceSpecific => "service-specific",
            Self::Money => "money",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Service units as carried in Granted-, Requested- and Used-Service-Unit (RFC 4006 §8.17,
/// §8.18, §8.19); absent members are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    /// CC-Time, seconds.
    pub time: Option<u32>,
    /// CC-Total-Octets.
    pub total_octets: Option<u64>,
    /// CC-Input-Octets.
    pub input_octets: Option<u64>,
    /// CC-Output-Octets.
    pub output_octets: Option<u64>,
    /// CC-Service-Specific-Units.
    pub service_specific: Option<u64>,
}

impl Units {
    /// The amount of `kind`, when present (money is never carried as service units here).
    pub fn get(&self, kind: UnitKind) -> Option<u64> {
        match kind {
            UnitKind::Time => self.time.map(u64::from),
            UnitKind::TotalOctets => self.total_octets,
            UnitKind::InputOctets => self.input_octets,
            UnitKind::OutputOctets => self.output_octets,
            UnitKind::ServiceSpecific => self.service_specific,
            UnitKind::Money => None,
        }
    }

    /// Units with only `kind` set to `amount` (time saturates at u32::MAX seconds).
    pub fn of(kind: UnitKind, amount: u64) -> Self {
        let mut u = Self::default();
        match kind {
            UnitKind::Time => u.time = Some(u32::try_from(amount).unwrap_or(u32::MAX)),
            UnitKind::TotalOctets => u.total_octets = Some(amount),
            UnitKind::InputOctets => u.input_octets = Some(amount),
            UnitKind::OutputOctets => u.output_octets = Some(amount),
            UnitKind::ServiceSpecific => u.service_specific = Some(amount),
            UnitKind::Money => {}
        }
        u
    }

    /// Member-wise sum (several Used-Service-Unit in one MSCC, e.g. around a tariff change).
    pub fn add(&mut self, o: &Self) {
        fn add64(a: &mut Option<u64>, b: Option<u64>) {
            if let Some(b) = b {
                *a = Some(a.unwrap_or(0).saturating_add(b));
            }
        }
        if let Some(t) = o.time {
            self.time = Some(self.time.unwrap_or(0).saturating_add(t));
        }
        add64(&mut self.total_octets, o.total_octets);
        add64(&mut self.input_octets, o.input_octets);
        add64(&mut self.output_octets, o.output_octets);
        add64(&mut self.service_specific, o.service_specific);
    }
}

/// Subscription-Id-Type values we key accounts by (RFC 4006 §8.47).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SubscriptionType {
    /// END_USER_E164 (0): an MSISDN.
    E164,
    /// END_USER_IMSI (1).
    Imsi,
    /// END_USER_SIP_URI (2).
    SipUri,
    /// END_USER_NAI (3).
    Nai,
    /// END_USER_PRIVATE (4).
    Private,
}

impl SubscriptionType {
    /// From the Subscription-Id-Type value.
    pub fn from_code(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::E164,
            1 => Self::Imsi,
            2 => Self::SipUri,
            3 => Self::Nai,
            4 => Self::Private,
            _ => return None,
        })
    }

    /// The Subscription-Id-Type value.
    pub fn code(self) -> i32 {
        match self {
            Self::E164 => 0,
            Self::Imsi => 1,
            Self::SipUri => 2,
            Self::Nai => 3,
            Self::Private => 4,
        }
    }

    /// The prefix of the index key (`imsi:001010000000001`).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::E164 => "msisdn",
            Self::Imsi => "imsi",
            Self::SipUri => "sip",
            Self::Nai => "nai",
            Self::Private => "private",
        }
    }
}

/// A Subscription-Id (RFC 4006 §8.46).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubscriptionId {
    /// Subscription-Id-Type.
    pub kind: SubscriptionType,
    /// Subscription-Id-Data.
    pub data: String,
}

impl SubscriptionId {
    /// The key of the subscriber index: `imsi:…`, `msisdn:…`, `nai:…`.
    pub fn index_key(&self) -> String {
        format!("{}:{}", self.kind.prefix(), self.data)
    }
}

/// One balance of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Spendable now: the balance less what is reserved. Negative only when reported usage
    /// exceeded what was granted and what was left.
    pub available: i64,
    /// Held by grants not yet reported.
    pub reserved: u64,
}

impl Balance {
    /// Available plus reserved: what the account holds.
    pub fn total(&self) -> i64 {
        self.available
            .saturating_add(i64::try_from(self.reserved).unwrap_or(i64::MAX))
    }
}

/// A subscriber's account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's own key.
    pub id: String,
    /// The Subscription-Ids that reach it.
    pub subscriptions: Vec<SubscriptionId>,
    /// Balances by what they count.
    pub balances: BTreeMap<UnitKind, Balance>,
    /// Service denied to this subscriber (4010 DIAMETER_END_USER_SERVICE_DENIED).
    pub barred: bool,
}

/// The service a Multiple-Services-Credit-Control instance is about.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct ServiceKey {
    /// Rating-Group.
    pub rating_group: Option<u32>,
    /// Service-Identifier.
    pub service_id: Option<u32>,
}

/// Credit held for one service of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The service.
    pub service: ServiceKey,
    /// The balance it is held on.
    pub kind: UnitKind,
    /// How much of that balance (money for money balances).
    pub amount: u64,
    /// Units of the service reported used in this session so far: a tariff rounds the
    /// session's total once (cost of the total minus cost of what was charged before), not
    /// every report.
    #[serde(default)]
    pub used: u64,
}

/// A credit-control session (RFC 4006 §5: INITIAL … TERMINATION).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Session-Id.
    pub id: String,
    /// The account charged.
    pub account: String,
    /// The client's Origin-Host and Origin-Realm: where a re-auth request goes.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// The highest CC-Request-Number handled.
    pub highest: u32,
    /// Bit i set: request number `highest - 1 - i` was handled too (out-of-order updates).
    pub window: u64,
    /// Tcc (RFC 4006 §13): the reservations are released when no request arrives by then.
    pub lease_until: UnixMillis,
    /// Credit held per service.
    pub reservations: Vec<Reservation>,
    /// What a visited OCS in front of the client reported (document 001, S314 step 4): the
    /// last Visited-Credit-Decision per rating group, and per rating group the sum of the
    /// Locally-Absorbed-Usage reports. Empty for sessions no visited OCS relays.
    #[serde(default)]
    pub visited: Vec<VisitedReport>,
}

/// How many request numbers below the highest one a session remembers as handled.
pub const NUMBER_WINDOW: u32 = 64;

/// Where a CC-Request-Number stands in a session (RFC 4006 §5.1.2: the client may have several
/// requests outstanding, so updates may arrive out of order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberCheck {
    /// Not handled yet.
    New,
    /// Handled already: the stored answer is the answer.
    Handled,
    /// Older than the window: nothing is known about it.
    TooOld,
}

impl Session {
    /// Whether request `n` is new, handled, or too old to tell.
    pub fn check_number(&self, n: u32) -> NumberCheck {
        if n > self.highest {
            return NumberCheck::New;
        }
        if n == self.highest {
            return NumberCheck::Handled;
        }
        let back = self.highest - n;
        if back > NUMBER_WINDOW {
            return NumberCheck::TooOld;
        }
        if self.window & (1u64 << (back - 1)) != 0 {
            NumberCheck::Handled
        } else {
            NumberCheck::New
        }
    }

    /// Records what a visited OCS reported in a request: a decision replaces the last one of
    /// its rating group; absorbed usage adds to its rating group's.
    pub fn record_visited(&mut self, reports: &[VisitedReport]) {
        for r in reports {
            match r {
                VisitedReport::Decision { rating_group, .. } => {
                    let rg = *rating_group;
                    self.visited.retain(|v| {
                        !matches!(v, VisitedReport::Decision { rating_group, .. } if *rating_group == rg)
                    });
                    self.visited.push(r.clone());
                }
                VisitedReport::Absorbed {
                    rating_group,
                    used,
                    requests,
                } => {
                    let rg = *rating_group;
                    let held = self.visited.iter_mut().find_map(|v| match v {
                        VisitedReport::Absorbed {
                            rating_group,
                            used,
                            requests,
                        } if *rating_group == rg => Some((used, requests)),
                        _ => None,
                    });
                    match held {
                        Some((u, n)) => {
                            u.add(used);
                            *n = n.saturating_add(*requests);
                        }
                        None => self.visited.push(r.clone()),
                    }
                }
            }
        }
    }

    /// Marks request `n` handled.
    pub fn mark_number(&mut self, n: u32) {
        if n > self.highest {
            let shift = n - self.highest;
            self.window = if shift > NUMBER_WINDOW {
                0
            } else {
                // The old highest becomes bit shift-1.
                let moved = if shift >= 64 { 0 } else { self.window << shift };
                moved | (1u64 << (shift - 1))
            };
            self.highest = n;
        } else if n < self.highest {
            let back = self.highest - n;
            if back <= NUMBER_WINDOW {
                self.window |= 1u64 << (back - 1);
            }
        }
    }

    /// The reservation of `service`, if any.
    pub fn reservation(&self, service: ServiceKey) -> Option<&Reservation> {
        self.reservations.iter().find(|r| r.service == service)
    }
}

/// CC-Request-Type (RFC 4006 §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestType {
    /// INITIAL_REQUEST (1).
    Initial,
    /// UPDATE_REQUEST (2).
    Update,
    /// TERMINATION_REQUEST (3).
    Termination,
    /// EVENT_REQUEST (4).
    Event,
}

impl RequestType {
    /// From the CC-Request-Type value.
    pub fn from_code(v: i32) -> Option<Self> {
        Some(match v {
            1 => Self::Initial,
            2 => Self::Update,
            3 => Self::Termination,
            4 => Self::Event,
            _ => return None,
        })
    }

    /// The CC-Request-Type value.
    pub fn code(self) -> i32 {
        match self {
            Self::Initial => 1,
            Self::Update => 2,
            Self::Termination => 3,
            Self::Event => 4,
        }
    }

    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Update => "update",
            Self::Termination => "termination",
            Self::Event => "event",
        }
    }
}

/// One Multiple-Services-Credit-Control of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsccRequest {
    /// Rating-Group and Service-Identifier.
    pub service: ServiceKey,
    /// Requested-Service-Unit, when present (an empty one asks for the server's choice).
    pub requested: Option<Units>,
    /// The sum of the Used-Service-Unit instances.
    pub used: Option<Units>,
}

/// A credit-control request, as the decision logic reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host of the client.
    pub origin_host: String,
    /// Origin-Realm of the client.
    pub origin_realm: String,
    /// CC-Request-Type.
    pub request_type: RequestType,
    /// CC-Request-Number.
    pub request_number: u32,
    /// Subscription-Id instances.
    pub subscriptions: Vec<SubscriptionId>,
    /// Requested-Action of an event request (RFC 4006 §8.41); `None` is DIRECT_DEBITING.
    pub requested_action: Option<i32>,
    /// Multiple-Services-Credit-Control instances.
    pub mscc: Vec<MsccRequest>,
    /// Single-service credit control (RFC 4006 §5.2, no MSCC): the command-level
    /// Requested-Service-Unit, Used-Service-Unit and Service-Identifier, when present.
    pub single: Option<MsccRequest>,
    /// What a visited OCS reported (Visited-Credit-Decision, Locally-Absorbed-Usage), at
    /// command level or inside the MSCCs.
    #[serde(default)]
    pub visited: Vec<VisitedReport>,
}

/// What a visited OCS told the home OCS in a CCR (our vendor AVPs, roaming_vendor.toml §11,
/// §13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VisitedReport {
    /// Visited-Credit-Decision: the decision the PCEF got for a rating group.
    Decision {
        /// Rating-Group.
        rating_group: Option<u32>,
        /// Granted-Service-Unit.
        granted: Option<Units>,
        /// Trigger-Type values.
        triggers: Vec<i32>,
        /// Final-Unit-Action.
        final_unit_action: Option<i32>,
        /// Visited-Decision-Reason.
        reason: Option<String>,
    },
    /// Locally-Absorbed-Usage: the part of the MSCC's Used-Service-Unit that updates
    /// answered by the visited OCS reported.
    Absorbed {
        /// Rating-Group.
        rating_group: Option<u32>,
        /// Used-Service-Unit.
        used: Units,
        /// Absorbed-Request-Count.
        requests: u32,
    },
}

/// Final-Unit-Indication (RFC 4006 §8.34).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalUnit {
    /// Final-Unit-Action: TERMINATE 0, REDIRECT 1, RESTRICT_ACCESS 2.
    pub action: i32,
    /// Redirect-Server (Redirect-Address-Type, Redirect-Server-Address), for REDIRECT.
    pub redirect: Option<(i32, String)>,
    /// Restriction-Filter-Rule values, for RESTRICT_ACCESS.
    pub restrictions: Vec<String>,
}

/// One Multiple-Services-Credit-Control of an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsccAnswer {
    /// The service, as requested.
    pub service: ServiceKey,
    /// Per-service Result-Code.
    pub result_code: u32,
    /// Granted-Service-Unit.
    pub granted: Option<Units>,
    /// Validity-Time, seconds.
    pub validity_time: Option<u32>,
    /// Quota-Holding-Time, seconds (TS 32.299).
    pub quota_holding_time: Option<u32>,
    /// Volume-Quota-Threshold, octets.
    pub volume_threshold: Option<u32>,
    /// Time-Quota-Threshold, seconds.
    pub time_threshold: Option<u32>,
    /// Unit-Quota-Threshold.
    pub unit_threshold: Option<u32>,
    /// Trigger with these Trigger-Type values (TS 32.299 §7.2.225); `None` sends no Trigger.
    pub triggers: Option<Vec<i32>>,
    /// Final-Unit-Indication.
    pub final_unit: Option<FinalUnit>,
}

/// A credit-control answer, as decided (and stored, so a retransmission gets it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcAnswer {
    /// Result-Code.
    pub result_code: u32,
    /// CC-Request-Type, echoed.
    pub request_type: RequestType,
    /// CC-Request-Number, echoed.
    pub request_number: u32,
    /// Multiple-Services-Credit-Control instances.
    pub mscc: Vec<MsccAnswer>,
    /// Error-Message, for failures the result code alone does not explain.
    pub error_message: Option<String>,
    /// Single-service credit control: the grant, Validity-Time and Final-Unit-Indication
    /// go at command level (RFC 4006 §3.2).
    pub single: Option<MsccAnswer>,
    /// Credit-Control-Failure-Handling (RFC 4006 §8.14), in answers to INITIAL.
    pub failure_handling: Option<i32>,
}

impl CcAnswer {
    /// An answer with only a Result-Code.
    pub fn bare(req: &CcRequest, result_code: u32) -> Self {
        Self {
            result_code,
            request_type: req.request_type,
            request_number: req.request_number,
            mscc: Vec::new(),
            error_message: None,
            single: None,
            failure_handling: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            id: "s".into(),
            account: "a".into(),
            origin_host: "h".into(),
            origin_realm: "r".into(),
            highest: 0,
            window: 0,
            lease_until: 0,
            reservations: Vec::new(),
            visited: Vec::new(),
        }
    }

    #[test]
    fn request_numbers_out_of_order_and_duplicates() {
        let mut s = session();
        assert_eq!(s.check_number(0), NumberCheck::Handled);
        assert_eq!(s.check_number(2), NumberCheck::New);
        s.mark_number(2);
        // 1 is still outstanding: a later arrival is new, not a duplicate.
        assert_eq!(s.check_number(1), NumberCheck::New);
        assert_eq!(s.check_number(0), NumberCheck::Handled);
        s.mark_number(1);
        assert_eq!(s.check_number(1), NumberCheck::Handled);
        s.mark_number(100);
        assert_eq!(s.check_number(2), NumberCheck::TooOld);
        assert_eq!(s.check_number(50), NumberCheck::New);
        assert_eq!(s.check_number(99), NumberCheck::New);
        s.mark_number(99);
        assert_eq!(s.check_number(99), NumberCheck::Handled);
        s.mark_number(101);
        assert_eq!(s.check_number(99), NumberCheck::Handled);
        assert_eq!(s.check_number(100), NumberCheck::Handled);
    }
}
