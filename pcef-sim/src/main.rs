//! The pcef-sim command line.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use diameter_codec::ValidateOptions;
use pcef_sim::decode::{Format, render_with};
use pcef_sim::load::{LoadOptions, Scenario};
use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The EPC test client of the Diameter policy and charging stack.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode Diameter messages and print them with dictionary names.
    ///
    /// The input is hex text (whitespace, 0x prefixes and # comments are ignored) or raw
    /// bytes; several messages may follow each other. Each message is also validated
    /// against the dictionaries and the Result-Code a server would answer is shown; a
    /// message accepted with deviations (grammar inside Grouped AVPs, M bits) lists them.
    ///
    /// Example: pcef-sim decode diameter-codec/tests/vectors/gy_ccr_u.hex
    Decode {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Validate at the strict level: every deviation (grammar at every depth, M bits)
        /// rejects, as a server configured strict would answer.
        #[arg(long)]
        strict: bool,
        /// File to read; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
    /// Load a server with simulated subscribers' sessions and report throughput, latency
    /// percentiles, result codes and CPU per request.
    ///
    /// Gy: each session (one subscriber, one rating group) sends CCR-I, then --updates
    /// CCR-Us reporting Used-Service-Unit (every --interval-ms, or back to back), then
    /// CCR-T. Gx (--app gx): CCR-I with Subscription-Id, Framed-IP-Address, RAT-Type and
    /// Called-Station-Id, --updates CCR-Us reporting a location change, CCR-T (--updates 0:
    /// session setups; --hold: CCR-I only, sessions stay open). --in-flight sessions run at once, each with one request outstanding at most;
    /// --rate caps the request rate of all of them. A progress bar is drawn when standard
    /// error is a terminal.
    ///
    /// Example: pcef-sim load --to 127.0.0.1:3870 --subscribers 1 --in-flight 64 --duration 10
    Load(Box<LoadArgs>),
    /// Run one subscriber's IP-CAN session against an OCS over Gy (RFC 4006, TS 32.299).
    ///
    /// CCR-I with one Multiple-Services-Credit-Control per --rating-group, traffic on each
    /// grant at its rate, CCR-U when a grant is used up, its threshold is reached, its
    /// Validity-Time runs out or a --event matches a Trigger the OCS armed; the
    /// Final-Unit-Action when the final units are used up (TERMINATE: CCR-T; REDIRECT: the
    /// flows go to the Redirect-Server; RESTRICT_ACCESS: only the filter's flows pass); a
    /// CCR-U (FORCED_REAUTHORISATION) after the OCS's Re-Auth-Request; CCR-T at detach
    /// (--duration). Exit status 0 when the session was accepted, 3 when the
    /// OCS refused it (CCA-I other than 2001), 1 on any other failure.
    ///
    /// Example: pcef-sim gy --to 127.0.0.1:3870 --imsi 001010000000001 --rating-group 1
    Gy(Box<GyArgs>),
    /// Run one subscriber's IP-CAN session against a PCRF over Gx (TS 29.212).
    ///
    /// CCR-I with Subscription-Id, Supported-Features, Framed-IP-Address, IP-CAN-Type,
    /// RAT-Type, 3GPP-User-Location-Info and Called-Station-Id; prints the CCA's rules
    /// (names, flows, QoS, rating groups, online/offline), APN-AMBR, default bearer QoS,
    /// event triggers and Charging-Information; classifies each --flow against the installed
    /// Flow-Descriptions by Precedence; answers the PCRF's RARs (2001) and applies them; a
    /// CCR-U for each --event whose trigger the PCRF armed; CCR-T at detach (--duration) or
    /// after a RAR with Session-Release-Cause. With --ocs, when the PCRF names an OCS and
    /// online rules are installed, a Gy session with one MSCC per rating group of those rules
    /// runs beside it and the IP-CAN session is accepted only after the OCS's CCA-I 2001.
    /// Exit status 0 when the session was accepted, 3 when the PCRF (or the OCS) refused it,
    /// 1 on any other failure.
    ///
    /// Example: pcef-sim gx --imsi 001010000000001 --event 1:rat --flow tcp:198.51.100.7:443
    Gx(Box<GxArgs>),
    /// Run a BBERF's gateway control session for one UE over Gxx (TS 29.212 chapter 4a).
    ///
    /// CCR-I with Subscription-Id, Called-Station-Id, IP-CAN-Type, RAT-Type and the UE
    /// address; the PCRF's QoS-rule RARs answered 2001; CCR-T after --duration
    /// (Termination-Cause DIAMETER_LOGOUT, or DIAMETER_USER_MOVED with --moved: a BBERF the
    /// UE left, document 002 embodiments 1, 4, 7). With --dra-termination the server is a
    /// DRA (see `pcef-sim gx --help`). Exit status 0 when the session was accepted and
    /// ended with 2001, 3 when it was refused, 1 otherwise.
    ///
    /// Example: pcef-sim bberf --to 127.0.0.1:3868 --to-host dra.home.test
    /// --dra-termination parallel --peer-addr pcrf.home.test=127.0.0.1:3869
    Bberf(Box<BberfArgs>),
    /// Run an AF session for one UE address over Rx (TS 29.214).
    ///
    /// AAR with Framed-IP-Address (or Framed-IPv6-Prefix) subscribing to
    /// INDICATION_OF_LOSS_OF_BEARER and INDICATION_OF_RELEASE_OF_BEARER; the PCRF's RAR and
    /// ASR answered 2001; STR when the PCRF says the IP-CAN session is gone (document 002
    /// steps 914–918: Termination-Cause DIAMETER_ADMINISTRATIVE) or after --duration
    /// (DIAMETER_LOGOUT). With --dra-termination the server is a DRA (see `pcef-sim gx
    /// --help`). Exit status 0 when the session was accepted and ended with 2001, 3 when it
    /// was refused, 1 otherwise.
    ///
    /// Example: pcef-sim af --ue-ip 10.45.0.2 --duration 30
    Af(Box<AfArgs>),
    /// Play the home application server (H-AS) of document 000, an AF on Rx (TS 29.214): one
    /// AAR for the UE's flow to a server, optionally asking for local breakout.
    ///
    /// The AAR binds an AF session to --ue-ip with one media component whose flows name
    /// --server. With --ott, --package and --ott-key it is a local-breakout request:
    /// LBO-Indicator LOCAL_BREAKOUT and LBO-OTT-Grant with the dynamic key derived from the
    /// OTT's initial key, the package and a fresh nonce (valid --ttl seconds). Prints the
    /// AAA's result (an LBO refusal is an Experimental-Result of vendor 32473: 5801 unknown
    /// home operator, 5802 package not allowed, 5803 destination not allowed, 5804 bad
    /// signature, 5805 grant expired, 5806 grant missing, 5807 OTT without the package,
    /// 5808 OTT key expired, 5809 subscriber without the package; 4001 is a wrong OTT key);
    /// an accepted session ends with STR after --duration. Exit status 0 when accepted, 3
    /// when refused, 1 on any other failure.
    ///
    /// Example: pcef-sim has --server 203.0.113.10:443 --ott ott-video --package cdn-video
    /// --ott-key 0707070707070707070707070707070707070707070707070707070707070707
    Has(Box<HasArgs>),
}

#[derive(clap::Args)]
struct HasArgs {
    /// Address of the PCRF.
    #[arg(long, default_value = "127.0.0.1:3869")]
    to: SocketAddr,
    /// Origin-Host of the PCRF.
    #[arg(long, default_value = "pcrf.home.test")]
    to_host: String,
    /// Destination-Realm of the requests.
    #[arg(long, default_value = "home.test")]
    dest_realm: String,
    /// Our Origin-Host.
    #[arg(long, default_value = "af.sim")]
    host: String,
    /// Our Origin-Realm.
    #[arg(long, default_value = "sim")]
    realm: String,
    /// The UE's address.
    #[arg(long, default_value = "10.45.0.2")]
    ue_ip: std::net::IpAddr,
    /// The server the UE talks to, ADDRESS:PORT (the visited CDN server for LBO).
    #[arg(long, default_value = "203.0.113.10:443")]
    server: SocketAddr,
    /// The flow's protocol: tcp, udp or a number.
    #[arg(long, default_value = "tcp")]
    proto: String,
    /// The OTT provider (LBO-OTT-Id): asks for local breakout.
    #[arg(long, requires_all = ["package", "ott_key"])]
    ott: Option<String>,
    /// The service package (LBO-Service-Package-Id).
    #[arg(long)]
    package: Option<String>,
    /// The OTT's initial key, hex.
    #[arg(long)]
    ott_key: Option<String>,
    /// Seconds the dynamic key is valid.
    #[arg(long, default_value_t = 120, allow_negative_numbers = true)]
    ttl: i64,
    /// Seconds to hold an accepted AF session before STR.
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl HasArgs {
    fn options(&self) -> anyhow::Result<pcef_sim::has::AfOptions> {
        let secs = |what: &str, v: f64| {
            Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("bad {what}: {v}"))
        };
        let lbo = match (&self.ott, &self.package, &self.ott_key) {
            (Some(ott), Some(package), Some(k)) => Some(pcef_sim::has::OttCredential {
                ott: ott.clone(),
                package: package.clone(),
                initial_key: pcrf::lbo::Key::try_from(k.clone())
                    .map_err(|e| anyhow::anyhow!("--ott-key: {e}"))?,
                ttl: self.ttl,
            }),
            _ => None,
        };
        Ok(pcef_sim::has::AfOptions {
            endpoint: pcef_sim::client::Endpoint::direct(
                self.to,
                self.to_host.clone(),
                self.dest_realm.clone(),
                self.host.clone(),
                self.realm.clone(),
            ),
            ue_ip: self.ue_ip,
            server: self.server.ip(),
            port: self.server.port(),
            proto: match self.proto.as_str() {
                "tcp" => 6,
                "udp" => 17,
                n => n.parse().map_err(|_| anyhow::anyhow!("bad --proto: {n}"))?,
            },
            lbo,
            duration: secs("--duration", self.duration)?,
            timeout: secs("--timeout", self.timeout)?,
        })
    }
}

#[derive(clap::Args)]
struct BberfArgs {
    #[command(flatten)]
    server: PolicyServer,
    /// Our Origin-Host.
    #[arg(long, default_value = "bberf.sim")]
    host: String,
    /// Our Origin-Realm.
    #[arg(long, default_value = "sim")]
    realm: String,
    /// The subscriber's IMSI (Subscription-Id END_USER_IMSI).
    #[arg(long, default_value = "001010000000001")]
    imsi: String,
    /// The UE's address, when the BBERF knows it.
    #[arg(long)]
    ue_ip: Option<std::net::IpAddr>,
    /// The APN (Called-Station-Id).
    #[arg(long, default_value = "internet")]
    apn: String,
    /// RAT-Type (TS 29.212 §5.3.31): 1004 EUTRAN, 1000 UTRAN, 1001 GERAN, 0 WLAN.
    #[arg(long, default_value_t = 1004)]
    rat: i32,
    /// Seconds until the CCR-T.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// End with DIAMETER_USER_MOVED: the UE moved to another BBERF.
    #[arg(long)]
    moved: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct AfArgs {
    #[command(flatten)]
    server: PolicyServer,
    /// Our Origin-Host.
    #[arg(long, default_value = "af.sim")]
    host: String,
    /// Our Origin-Realm.
    #[arg(long, default_value = "sim")]
    realm: String,
    /// The UE's address.
    #[arg(long, default_value = "10.45.0.2")]
    ue_ip: std::net::IpAddr,
    /// Seconds to wait for the PCRF's loss notification before ending the session.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn secs(what: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("bad {what}: {v}"))
}

/// The exit status of a session: 0 accepted and ended with 2001, 3 refused, 1 otherwise.
fn session_status(
    established: Option<u32>,
    ended: Option<&pcef_sim::client::TerminationSeen>,
) -> std::process::ExitCode {
    match (established, ended) {
        (Some(2001), Some(t)) if t.result_code == Some(2001) => std::process::ExitCode::SUCCESS,
        (Some(c), _) if c != 2001 => std::process::ExitCode::from(3),
        _ => std::process::ExitCode::FAILURE,
    }
}

/// The policy server a PCEF, BBERF or AF talks to: a PCRF, or a DRA in front of PCRFs.
#[derive(clap::Args)]
struct PolicyServer {
    /// Address of the PCRF (or of the DRA, with --dra-termination).
    #[arg(long, default_value = "127.0.0.1:3869")]
    to: SocketAddr,
    /// Origin-Host of the PCRF (or of the DRA).
    #[arg(long, default_value = "pcrf.home.test")]
    to_host: String,
    /// Destination-Realm of the requests.
    #[arg(long, default_value = "home.test")]
    dest_realm: String,
    /// The server at --to is a DRA (TS 29.213 §7). The client remembers at establishment
    /// whether the DRA redirected it (3006, to a PCRF) or proxied it; a proxied session
    /// ends through the DRA; a redirected one ends either with the termination sent to
    /// the DRA and the PCRF at once (`parallel`), or sent to the DRA, whose redirect is
    /// followed to the PCRF (`redirect`; when the DRA acknowledges the termination itself,
    /// it is then sent to the PCRF of the establishment). Document 002.
    #[arg(long, value_enum, value_name = "BEHAVIOUR")]
    dra_termination: Option<diameter_service::dra_client::TerminationBehaviour>,
    /// With --dra-termination: after a proxy DRA forwarded the establishment, send the
    /// session's updates to the PCRF that answered directly (its termination still goes
    /// through the DRA, which must hear of it).
    #[arg(long, requires = "dra_termination")]
    dra_direct_after_proxy: bool,
    /// Where a host a DRA redirects to listens, HOST=ADDRESS (repeatable), when its name
    /// does not resolve [e.g. pcrf.home.test=127.0.0.1:3869].
    #[arg(long = "peer-addr", value_name = "HOST=ADDRESS", value_parser = pcef_sim::client::parse_peer)]
    peer_addrs: Vec<(String, SocketAddr)>,
}

impl PolicyServer {
    fn endpoint(&self, host: &str, realm: &str) -> pcef_sim::client::Endpoint {
        let mut ep = pcef_sim::client::Endpoint::direct(
            self.to,
            &self.to_host,
            &self.dest_realm,
            host,
            realm,
        );
        ep.peers.clone_from(&self.peer_addrs);
        ep.dra = self.dra_termination;
        ep.dra_direct_after_proxy = self.dra_direct_after_proxy;
        ep
    }
}

#[derive(clap::Args)]
struct GxArgs {
    #[command(flatten)]
    server: PolicyServer,
    /// Our Origin-Host.
    #[arg(long, default_value = "pcef.sim")]
    host: String,
    /// Our Origin-Realm.
    #[arg(long, default_value = "sim")]
    realm: String,
    /// The subscriber's IMSI (Subscription-Id END_USER_IMSI).
    #[arg(long, conflicts_with_all = ["msisdn", "nai"])]
    imsi: Option<String>,
    /// The subscriber's MSISDN (END_USER_E164).
    #[arg(long, conflicts_with = "nai")]
    msisdn: Option<String>,
    /// The subscriber's NAI (END_USER_NAI).
    #[arg(long)]
    nai: Option<String>,
    /// The UE's address (IPv4: Framed-IP-Address; IPv6: Framed-IPv6-Prefix /64).
    #[arg(long, default_value = "10.45.0.2")]
    ue_ip: std::net::IpAddr,
    /// The APN (Called-Station-Id).
    #[arg(long, default_value = "internet")]
    apn: String,
    /// RAT-Type at attach: eutran, utran, geran, wlan or a number.
    #[arg(long, default_value = "eutran")]
    rat: String,
    /// Seconds until detach (CCR-T).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// A bearer event SECONDS:KIND (repeatable): rat[:utran|geran|eutran|wlan|N], location,
    /// qos, or an Event-Trigger number.
    #[arg(long = "event")]
    events: Vec<String>,
    /// A flow to classify, PROTO:ADDRESS:PORT[/BYTES] (repeatable) [tcp:198.51.100.7:443,
    /// tcp:203.0.113.5:80, udp:192.0.2.10:5060]. A flow whose rule is marked local breakout
    /// breaks out locally, one whose rule names a traffic steering policy is steered, any
    /// other rule's goes home; the flows and bytes of each route are reported.
    #[arg(long = "flow")]
    flows: Vec<String>,
    /// Play the home operator's user plane in a visited network (document 000, FIG. 6):
    /// flows no rule matches go home instead of being dropped.
    #[arg(long)]
    local_up: bool,
    /// Address of the OCS the PCRF names in Charging-Information: runs the Gy session.
    #[arg(long)]
    ocs: Option<SocketAddr>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print the report as JSON (instead of the live lines and the summary).
    #[arg(long)]
    json: bool,
}

impl GxArgs {
    fn options(&self) -> anyhow::Result<pcef_sim::gx::GxOptions> {
        use pcef_sim::gx::{ClassFlow, GxEvent};
        use pcef_sim::gy::Subscriber;
        let subscriber = match (&self.imsi, &self.msisdn, &self.nai) {
            (_, Some(m), _) => Subscriber {
                kind: 0,
                data: m.clone(),
            },
            (_, _, Some(n)) => Subscriber {
                kind: 3,
                data: n.clone(),
            },
            (i, _, _) => Subscriber {
                kind: 1,
                data: i.clone().unwrap_or_else(|| "001010000000001".into()),
            },
        };
        let err = |e: String| anyhow::anyhow!(e);
        let rat_type = match self.rat.as_str() {
            "wlan" => 0,
            "utran" => 1000,
            "geran" => 1001,
            "eutran" => 1004,
            n => n.parse().map_err(|_| anyhow::anyhow!("bad --rat: {n}"))?,
        };
        let flows = if self.flows.is_empty() {
            vec![
                "tcp:198.51.100.7:443".to_string(),
                "tcp:203.0.113.5:80".to_string(),
                "udp:192.0.2.10:5060".to_string(),
            ]
        } else {
            self.flows.clone()
        };
        Ok(pcef_sim::gx::GxOptions {
            endpoint: self.server.endpoint(&self.host, &self.realm),
            subscriber,
            ue_ip: self.ue_ip,
            apn: self.apn.clone(),
            rat_type,
            duration: secs("--duration", self.duration)?,
            detach_on: None,
            events: self
                .events
                .iter()
                .map(|s| GxEvent::parse(s).map_err(err))
                .collect::<Result<_, _>>()?,
            flows: flows
                .iter()
                .map(|s| ClassFlow::parse(s).map_err(err))
                .collect::<Result<_, _>>()?,
            ocs: self.ocs,
            local_up: self.local_up,
            timeout: secs("--timeout", self.timeout)?,
            live: !self.json,
        })
    }
}

#[derive(clap::Args)]
struct GyArgs {
    /// Address of the OCS.
    #[arg(long, default_value = "127.0.0.1:3870")]
    to: SocketAddr,
    /// Origin-Host of the OCS.
    #[arg(long, default_value = "ocs.home.test")]
    to_host: String,
    /// Destination-Realm of the requests.
    #[arg(long, default_value = "home.test")]
    dest_realm: String,
    /// Our Origin-Host.
    #[arg(long, default_value = "pcef.sim")]
    host: String,
    /// Our Origin-Realm.
    #[arg(long, default_value = "sim")]
    realm: String,
    /// The subscriber's IMSI (Subscription-Id END_USER_IMSI).
    #[arg(long, conflicts_with_all = ["msisdn", "nai"])]
    imsi: Option<String>,
    /// The subscriber's MSISDN (END_USER_E164).
    #[arg(long, conflicts_with = "nai")]
    msisdn: Option<String>,
    /// The subscriber's NAI (END_USER_NAI).
    #[arg(long)]
    nai: Option<String>,
    /// A charged service: RG, RG:RATE or RG/SERVICE-ID:RATE (repeatable). RATE is units
    /// used per second: octets for volume grants [1000000], events [1], seconds of use per
    /// second for time grants [1].
    #[arg(long = "rating-group", required = true)]
    rating_groups: Vec<String>,
    /// Seconds until detach (CCR-T).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Milliseconds between traffic steps.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// A bearer event SECONDS:TYPE (repeatable); TYPE a Trigger-Type number or qos,
    /// location, rat, mcc, mnc, rac, lac, cell, tai, ecgi.
    #[arg(long = "event")]
    events: Vec<String>,
    /// A period FROM:TO (seconds since the start, repeatable) in which the UE sends
    /// nothing: the Quota-Holding-Time applies.
    #[arg(long = "idle")]
    idle: Vec<String>,
    /// A UE flow NAME=ADDRESS:PORT (repeatable) [web=198.51.100.7:80, portal=192.0.2.10:80].
    #[arg(long = "flow")]
    flows: Vec<String>,
    /// Send the request with this CC-Request-Number again with the T bit and compare the
    /// answers (a duplicate CCR, RFC 6733 §5.5.4).
    #[arg(long)]
    retransmit: Option<u32>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl GyArgs {
    fn options(&self) -> anyhow::Result<pcef_sim::gy::GyOptions> {
        use pcef_sim::gy::{BearerEvent, Flow, Service, Subscriber};
        let subscriber = match (&self.imsi, &self.msisdn, &self.nai) {
            (_, Some(m), _) => Subscriber {
                kind: 0,
                data: m.clone(),
            },
            (_, _, Some(n)) => Subscriber {
                kind: 3,
                data: n.clone(),
            },
            (i, _, _) => Subscriber {
                kind: 1,
                data: i.clone().unwrap_or_else(|| "001010000000001".into()),
            },
        };
        let err = |e: String| anyhow::anyhow!(e);
        Ok(pcef_sim::gy::GyOptions {
            endpoint: pcef_sim::client::Endpoint::direct(
                self.to,
                &self.to_host,
                &self.dest_realm,
                &self.host,
                &self.realm,
            ),
            subscriber,
            services: self
                .rating_groups
                .iter()
                .map(|s| Service::parse(s).map_err(err))
                .collect::<Result<_, _>>()?,
            duration: secs("--duration", self.duration)?,
            tick: Duration::from_millis(self.tick_ms.max(1)),
            events: self
                .events
                .iter()
                .map(|s| BearerEvent::parse(s).map_err(err))
                .collect::<Result<_, _>>()?,
            idle: self
                .idle
                .iter()
                .map(|s| pcef_sim::gy::parse_idle(s).map_err(err))
                .collect::<Result<_, _>>()?,
            flows: if self.flows.is_empty() {
                Flow::defaults()
            } else {
                self.flows
                    .iter()
                    .map(|s| Flow::parse(s).map_err(err))
                    .collect::<Result<_, _>>()?
            },
            retransmit: self.retransmit,
            timeout: secs("--timeout", self.timeout)?,
            on_initial: None,
            services_watch: None,
        })
    }
}

#[derive(clap::Args)]
struct LoadArgs {
    /// What each session does (also --app).
    #[arg(long, alias = "app", value_enum, default_value_t = ScenarioArg::Gy)]
    scenario: ScenarioArg,
    /// Address of the server.
    #[arg(long)]
    to: SocketAddr,
    /// Origin-Host of the server [default: ocs.home.test for gy, pcrf.home.test for gx].
    #[arg(long)]
    to_host: Option<String>,
    /// Destination-Realm of the requests.
    #[arg(long, default_value = "home.test")]
    dest_realm: String,
    /// Our Origin-Host.
    #[arg(long, default_value = "pcef.sim")]
    host: String,
    /// Our Origin-Realm.
    #[arg(long, default_value = "sim")]
    realm: String,
    /// Number of subscribers; sessions take their IMSIs in turn from --imsi-start.
    #[arg(long, default_value_t = 1)]
    subscribers: u64,
    /// The first subscriber's IMSI (the next ones count up from it, same width).
    #[arg(long, default_value = "001010000000001")]
    imsi_start: String,
    /// Sessions run at once.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Target requests per second of all sessions together [default: as fast as answered].
    #[arg(long)]
    rate: Option<f64>,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before measuring, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// CCR-Us per session.
    #[arg(long, default_value_t = 10)]
    updates: u32,
    /// Milliseconds before each CCR-U (0: back to back).
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Rating-Group of the sessions' Multiple-Services-Credit-Control.
    #[arg(long, default_value_t = 1)]
    rating_group: u32,
    /// CC-Total-Octets reported used in each CCR-U and CCR-T.
    #[arg(long, default_value_t = 1000)]
    used_octets: u64,
    /// Seconds to wait for each answer before counting an error.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// PIDs of server processes whose CPU time per request to report (from /proc/PID/stat).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Open at most this many sessions in all; the run ends when they are done.
    #[arg(long)]
    sessions: Option<u64>,
    /// Sessions send CCR-I only and stay open (memory per live session on the server).
    #[arg(long)]
    hold: bool,
    /// The server at --to is a redirect DRA: `count` its 3006 answers (the sessions go on
    /// at the DRA, which releases their bindings at CCR-T), or `follow` them to the PCRF
    /// named (--peer-addr says where it listens). Redirects per second are reported. A
    /// proxy DRA needs no option.
    #[arg(long, value_enum, value_name = "WHAT")]
    redirects: Option<RedirectsArg>,
    /// Where a host a DRA redirects to listens, HOST=ADDRESS (repeatable), when its name
    /// does not resolve [e.g. pcrf.home.test=127.0.0.1:3869].
    #[arg(long = "peer-addr", value_name = "HOST=ADDRESS", value_parser = pcef_sim::client::parse_peer)]
    peer_addrs: Vec<(String, SocketAddr)>,
    /// Runtime threads of the client (0: one per CPU; 1: a single thread, the cheapest
    /// client when the machine's CPUs are shared with the servers measured).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RedirectsArg {
    /// Keep each 3006 as the answer, counted.
    Count,
    /// Follow each 3006 to the PCRF it names, counted.
    Follow,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScenarioArg {
    /// Online charging (RFC 4006): CCR-I, CCR-U..., CCR-T.
    Gy,
    /// Policy control (TS 29.212): Gx CCR-I, CCR-U (location change)..., CCR-T.
    Gx,
}

impl LoadArgs {
    fn options(&self) -> anyhow::Result<LoadOptions> {
        if let Some(r) = self.rate {
            anyhow::ensure!(r.is_finite() && r > 0.0, "bad --rate: {r}");
        }
        Ok(LoadOptions {
            scenario: match self.scenario {
                ScenarioArg::Gy => Scenario::Gy,
                ScenarioArg::Gx => Scenario::Gx,
            },
            to: self.to,
            to_host: self.to_host.clone().unwrap_or_else(|| {
                match self.scenario {
                    ScenarioArg::Gy => "ocs.home.test",
                    ScenarioArg::Gx => "pcrf.home.test",
                }
                .into()
            }),
            dest_realm: self.dest_realm.clone(),
            origin_host: self.host.clone(),
            origin_realm: self.realm.clone(),
            subscribers: self.subscribers,
            imsi_start: self.imsi_start.clone(),
            in_flight: self.in_flight,
            rate: self.rate,
            warmup: secs("--warmup", self.warmup)?,
            duration: secs("--duration", self.duration)?,
            updates: self.updates,
            interval: Duration::from_millis(self.interval_ms),
            rating_group: self.rating_group,
            used_octets: self.used_octets,
            timeout: secs("--timeout", self.timeout)?,
            server_pids: self.server_pids.clone(),
            progress: std::io::stderr().is_terminal(),
            max_sessions: self.sessions,
            hold: self.hold,
            redirects: self.redirects.map(|r| match r {
                RedirectsArg::Count => pcef_sim::load::Redirects::Count,
                RedirectsArg::Follow => pcef_sim::load::Redirects::Follow,
            }),
            peers: self.peer_addrs.clone(),
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

/// Runs a role's future to completion on a multi-threaded runtime.
fn block_on<F: Future>(f: F) -> anyhow::Result<F::Output> {
    block_on_threads(f, 0)
}

/// As [`block_on`] with `threads` worker threads (0: one per CPU; 1: the current thread).
fn block_on_threads<F: Future>(f: F, threads: usize) -> anyhow::Result<F::Output> {
    let rt = match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    Ok(rt.block_on(f))
}

/// Prints a role's report as pretty JSON.
fn print_json(report: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}

/// Prints a role's report: JSON with `--json`, else its `text`.
fn print_report(
    report: &impl serde::Serialize,
    json: bool,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        print_json(report)
    } else {
        print!("{}", text());
        Ok(())
    }
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode {
            format,
            strict,
            file,
        } => {
            let mut input = Vec::new();
            match file.as_deref() {
                None => std::io::stdin()
                    .read_to_end(&mut input)
                    .context("reading standard input")?,
                Some(p) if p.as_os_str() == "-" => std::io::stdin()
                    .read_to_end(&mut input)
                    .context("reading standard input")?,
                Some(p) => {
                    input = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                    input.len()
                }
            };
            let format = match format {
                OutputFormat::Text => Format::Text,
                OutputFormat::Json => Format::Json,
            };
            let opts = if strict {
                ValidateOptions::strict()
            } else {
                ValidateOptions::default()
            };
            print!("{}", render_with(&input, format, opts));
        }
        Command::Load(args) => {
            let opts = args.options()?;
            let report = block_on_threads(pcef_sim::load::run(&opts), args.threads)??;
            print_report(&report, args.json, || report.text())?;
        }
        Command::Gy(args) => {
            let opts = args.options()?;
            let report = block_on(pcef_sim::gy::run(&opts))??;
            print_report(&report, args.json, || report.text())?;
            if !report.accepted {
                return Ok(std::process::ExitCode::from(3));
            }
        }
        Command::Bberf(args) => {
            let opts = pcef_sim::bberf::BberfOptions {
                endpoint: args.server.endpoint(&args.host, &args.realm),
                subscriber: pcef_sim::gy::Subscriber {
                    kind: 1,
                    data: args.imsi.clone(),
                },
                ue_ip: args.ue_ip,
                apn: args.apn.clone(),
                rat_type: args.rat,
                timeout: secs("--timeout", args.timeout)?,
            };
            let report = block_on(pcef_sim::bberf::run(
                &opts,
                secs("--duration", args.duration)?,
                args.moved,
                !args.json,
            ))??;
            if args.json {
                print_json(&report)?;
            }
            return Ok(session_status(
                report.attach_result,
                report.termination.as_ref(),
            ));
        }
        Command::Af(args) => {
            let opts = pcef_sim::af::AfOptions {
                endpoint: args.server.endpoint(&args.host, &args.realm),
                ue_ip: args.ue_ip,
                specific_actions: pcef_sim::af::AfOptions::LOSS.to_vec(),
                timeout: secs("--timeout", args.timeout)?,
            };
            let report = block_on(pcef_sim::af::run(
                &opts,
                secs("--duration", args.duration)?,
                !args.json,
            ))??;
            if args.json {
                print_json(&report)?;
            }
            return Ok(session_status(
                report.aar_result,
                report.termination.as_ref(),
            ));
        }
        Command::Has(args) => {
            let opts = args.options()?;
            let report = block_on(pcef_sim::has::run(&opts))??;
            print_report(&report, args.json, || report.text())?;
            if report.result_code.is_none() {
                return Ok(std::process::ExitCode::from(1));
            }
            if !report.accepted() {
                return Ok(std::process::ExitCode::from(3));
            }
        }
        Command::Gx(args) => {
            let opts = args.options()?;
            let report = block_on(pcef_sim::gx::run(&opts))??;
            print_report(&report, args.json, || report.text())?;
            if !report.accepted && matches!(report.ended_by, "refused" | "refused-by-ocs") {
                return Ok(std::process::ExitCode::from(3));
            }
            if !report.accepted {
                return Ok(std::process::ExitCode::from(1));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
