//! Two [`Peer`]s wired by queues under a virtual clock (quinn's `Pair`): every timer of
//! RFC 6733 §5.6 and RFC 3539 §3.4 runs without sockets or real time.

use super::*;
use diameter_codec::{AvpKey, LocalIdentity, MessageBuilder};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const GX: u32 = 16_777_238;
const TGPP: u32 = 10_415;
const SEC: Duration = Duration::from_secs(1);

fn local(host: &str) -> LocalConfig {
    let mut l = LocalConfig::new(host, "example.net");
    l.applications = vec![Application::vendor_auth(TGPP, GX)];
    l.supported_vendor_ids = vec![TGPP];
    l.product_name = "psm-test".into();
    l
}

fn cfg(local: LocalConfig, remote: &str, seed: u64) -> PeerConfig {
    let mut c = PeerConfig::new(Arc::new(local), Some(remote.to_string()));
    c.seed = seed;
    c
}

/// One end: a peer and the node around it.
struct Side {
    peer: Peer,
    /// Connections this side has seen (connected, or received a first message on).
    known: HashSet<ConnId>,
    /// Accepts inbound connections.
    listening: bool,
    /// Outbound connection attempts fail.
    refuse_connect: bool,
    /// The node answers every request at once.
    auto_answer: bool,
    events: Vec<(Instant, PeerEvent)>,
    sent: Vec<(Instant, ConnId, Message)>,
}

impl Side {
    fn new(cfg: PeerConfig) -> Self {
        Self {
            peer: Peer::new(cfg),
            known: HashSet::new(),
            listening: true,
            refuse_connect: false,
            auto_answer: true,
            events: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn local(&self) -> &LocalConfig {
        &self.peer.config().local
    }

    fn count_sent(&self, cmd: u32, request: bool) -> usize {
        self.sent
            .iter()
            .filter(|(_, _, m)| {
                m.header().command_code == cmd && m.header().is_request() == request
            })
            .count()
    }

    fn wd_states(&self) -> Vec<WatchdogState> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                PeerEvent::WatchdogChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    fn states(&self) -> Vec<PeerState> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                PeerEvent::StateChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    fn count(&self, f: impl Fn(&PeerEvent) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }
}

/// Drops the messages it returns true for: (from side, message).
type Filter = Box<dyn FnMut(usize, &Message) -> bool>;

enum Delivery {
    Connected(ConnId),
    ConnectFailed,
    Msg(ConnId, Message),
    Closed(ConnId),
}

struct Conn {
    /// `open[i]`: side i has not closed it.
    open: [bool; 2],
}

struct Pair {
    now: Instant,
    sides: [Side; 2],
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    queue: Vec<(Instant, usize, Delivery)>,
    latency: Duration,
    /// Extra delay of side i's connection attempts.
    connect_delay: [Duration; 2],
    /// Drop everything (messages and closes) in both directions.
    blackhole: bool,
    /// Drop the messages this returns true for: (from side, message).
    filter: Option<Filter>,
}

impl Pair {
    fn new(a: PeerConfig, b: PeerConfig) -> Self {
        Self {
            now: Instant::now(),
            sides: [Side::new(a), Side::new(b)],
            conns: HashMap::new(),
            next_conn: 1,
            queue: Vec::new(),
            latency: Duration::from_millis(10),
            connect_delay: [Duration::ZERO; 2],
            blackhole: false,
            filter: None,
        }
    }

    /// "a.example" and "b.example", both initiating.
    fn default_pair() -> Self {
        Self::new(
            cfg(local("a.example"), "b.example", 1),
            cfg(local("b.example"), "a.example", 2),
        )
    }

    fn a(&mut self) -> &mut Side {
        &mut self.sides[0]
    }
    fn b(&mut self) -> &mut Side {
        &mut self.sides[1]
    }

    fn schedule(&mut self, delay: Duration, to: usize, d: Delivery) {
        self.queue.push((self.now + delay, to, d));
    }

    /// Processes everything the peers want done at the current instant.
    fn drive(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..2 {
                let j = 1 - i;
                while let Some(t) = self.sides[i].peer.poll_transmit() {
                    progress = true;
                    let msg =
                        Message::from_bytes(t.bytes).expect("the PSM sends decodable messages");
                    self.sides[i].sent.push((self.now, t.conn, msg.clone()));
                    let open = self.conns.get(&t.conn).is_some_and(|c| c.open[i]);
                    let dropped =
                        self.blackhole || self.filter.as_mut().is_some_and(|f| f(i, &msg));
                    if open && !dropped {
                        self.schedule(self.latency, j, Delivery::Msg(t.conn, msg));
                    }
                }
                while let Some(a) = self.sides[i].peer.poll_action() {
                    progress = true;
                    match a {
                        PeerAction::Connect => {
                            let id = ConnId(self.next_conn);
                            self.next_conn += 1;
                            let delay = self.latency + self.connect_delay[i];
                            if self.sides[i].refuse_connect
                                || !self.sides[j].listening
                                || self.blackhole
                            {
                                self.schedule(delay, i, Delivery::ConnectFailed);
                            } else {
                                self.conns.insert(id, Conn { open: [true; 2] });
                                self.schedule(delay, i, Delivery::Connected(id));
                            }
                        }
                        PeerAction::Disconnect(c) | PeerAction::Reject(c) => {
                            let was_open = self
                                .conns
                                .get_mut(&c)
                                .is_some_and(|conn| std::mem::replace(&mut conn.open[i], false));
                            if was_open && !self.blackhole {
                                self.schedule(self.latency, j, Delivery::Closed(c));
                            }
                        }
                    }
                }
                while let Some(e) = self.sides[i].peer.poll_event() {
                    progress = true;
                    let request = match &e {
                        PeerEvent::Request { msg, .. } if self.sides[i].auto_answer => Some(msg),
                        _ => None,
                    };
                    if let Some(msg) = request {
                        let me = LocalIdentity::new(
                            self.sides[i].local().origin_host.clone(),
                            "example.net",
                        );
                        let mut ans = MessageBuilder::answer_to(msg, &me);
                        ans.result_code(ResultCode::DIAMETER_SUCCESS);
                        let _ = self.sides[i].peer.send(ans.to_bytes());
                    }
                    self.sides[i].events.push((self.now, e));
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn deliver(&mut self, to: usize, d: Delivery) {
        let now = self.now;
        let open =
            |conns: &HashMap<ConnId, Conn>, c: ConnId| conns.get(&c).is_some_and(|c| c.open[to]);
        match d {
            Delivery::Connected(c) => {
                if open(&self.conns, c) {
                    self.sides[to].known.insert(c);
                    self.sides[to].peer.handle_connected(now, c);
                }
            }
            Delivery::ConnectFailed => self.sides[to].peer.handle_connect_failed(now),
            Delivery::Closed(c) => {
                if let Some(conn) = self.conns.get_mut(&c) {
                    conn.open[to] = false;
                }
                self.sides[to].peer.handle_closed(now, c);
            }
            Delivery::Msg(c, msg) => {
                if !open(&self.conns, c) {
                    return;
                }
                let side = &mut self.sides[to];
                if side.known.insert(c) {
                    // The node's job on a new inbound connection (RFC 6733 §5.6.1).
                    match screen_first_message(side.local(), &msg) {
                        FirstMessage::Cer { origin_host } => {
                            let mine = side.peer.config().remote_host.as_deref();
                            if mine.is_none_or(|h| h.eq_ignore_ascii_case(&origin_host)) {
                                side.peer.handle_incoming(now, c, msg);
                            } else {
                                let ans = unknown_peer_answer(side.local(), &msg);
                                self.node_close(to, c, ans);
                            }
                        }
                        FirstMessage::Answer(b) => self.node_close(to, c, Some(b)),
                        FirstMessage::Close => self.node_close(to, c, None),
                    }
                } else {
                    side.peer.handle_message(now, c, msg);
                }
            }
        }
    }

    /// The node (not the peer) answers and closes a connection.
    fn node_close(&mut self, i: usize, c: ConnId, answer: Option<Bytes>) {
        if let Some(b) = answer {
            let msg = Message::from_bytes(b).unwrap();
            self.sides[i].sent.push((self.now, c, msg.clone()));
            self.schedule(self.latency, 1 - i, Delivery::Msg(c, msg));
        }
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.open[i] = false;
        }
        self.schedule(self.latency, 1 - i, Delivery::Closed(c));
    }

    /// Runs the virtual clock up to `until`, jumping from event to event.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.drive();
            let next = [
                self.sides[0].peer.poll_timeout(),
                self.sides[1].peer.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .chain(self.queue.iter().map(|q| q.0))
            .min();
            let Some(next) = next.filter(|t| *t <= until) else {
                break;
            };
            self.now = self.now.max(next);
            // Deliver in order of arrival, FIFO for equal instants.
            while let Some(pos) = (0..self.queue.len())
                .filter(|&k| self.queue[k].0 <= self.now)
                .min_by_key(|&k| (self.queue[k].0, k))
            {
                let (_, to, d) = self.queue.remove(pos);
                self.deliver(to, d);
                self.drive();
            }
            for i in 0..2 {
                if self.sides[i]
                    .peer
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.sides[i].peer.handle_timeout(self.now);
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn run(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn start_both(&mut self) {
        let now = self.now;
        self.sides[0].peer.start(now);
        self.sides[1].peer.start(now);
    }

    /// Connections open at both ends.
    fn live_conns(&self) -> Vec<ConnId> {
        let mut v: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, c)| c.open == [true, true])
            .map(|(k, _)| *k)
            .collect();
        v.sort();
        v
    }

    /// Side i sends an application request on its open connection.
    fn send_request(&mut self, i: usize, hbh: u32) {
        let host = self.sides[i].local().origin_host.clone();
        let mut b = MessageBuilder::request(272, GX, true).ids(hbh, hbh);
        b.push(OwnedAvp::new(
            263,
            0,
            0x40,
            AvpValue::Bytes(Bytes::from(format!("{host};1;{hbh}"))),
        ));
        b.push(OwnedAvp::new(
            264,
            0,
            0x40,
            AvpValue::Bytes(Bytes::from(host)),
        ));
        self.sides[i].peer.send(b.to_bytes()).expect("open");
    }
}

use diameter_codec::{AvpValue, OwnedAvp, ResultCode};

fn is_open_event(e: &PeerEvent) -> bool {
    matches!(e, PeerEvent::Open { .. })
}

fn rc_of(m: &Message) -> Option<u32> {
    m.find(AvpKey::new(268, 0))
        .map(|a| u32::from_be_bytes(a.data.try_into().unwrap()))
}

// ------------------------------------------------------------------------------------------
// RFC 6733 §5.6 transitions

#[test]
fn initiator_and_responder_open() {
    let mut p = Pair::default_pair();
    let now = p.now;
    p.a().peer.start(now); // only A initiates
    p.run(SEC);
    // Closed → Wait-Conn-Ack → Wait-I-CEA → I-Open on A.
    assert_eq!(
        p.a().states(),
        [
            PeerState::WaitConnAck,
            PeerState::WaitICea,
            PeerState::IOpen
        ]
    );
    // Closed, R-Conn-CER → R-Open on B.
    assert_eq!(p.b().states(), [PeerState::ROpen]);
    for s in &p.sides {
        assert_eq!(s.count(is_open_event), 1);
        assert!(s.peer.is_available());
        assert_eq!(s.peer.watchdog_state(), WatchdogState::Okay);
        let info = s.peer.info().unwrap();
        assert_eq!(info.negotiated.auth, vec![GX]);
        assert_eq!(info.product_name, "psm-test");
    }
    assert_eq!(p.live_conns().len(), 1);
}

#[test]
fn connect_failure_retries_every_tc() {
    let mut p = Pair::default_pair();
    p.b().listening = false;
    let now = p.now;
    p.a().peer.start(now);
    p.run(SEC);
    // Wait-Conn-Ack, I-Rcv-Conn-Nack → Closed.
    assert_eq!(p.a().peer.state(), PeerState::Closed);
    let t = p.a().peer.poll_timeout().unwrap();
    assert_eq!(
        t - now,
        Duration::from_millis(10) + Duration::from_secs(30),
        "Tc = 30 s"
    );
    p.b().listening = true;
    p.run(Duration::from_secs(31));
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
}

#[test]
fn cea_timeout_closes_then_retries() {
    let mut p = Pair::default_pair();
    // B never answers (it drops A's CER): Wait-I-CEA, Timeout → Error → Closed.
    p.filter = Some(Box::new(|from, _| from == 0));
    let now = p.now;
    p.a().peer.start(now);
    p.run(Duration::from_secs(11));
    assert_eq!(p.a().peer.state(), PeerState::Closed);
    assert_eq!(
        p.a().states(),
        [
            PeerState::WaitConnAck,
            PeerState::WaitICea,
            PeerState::Closed
        ]
    );
    p.filter = None;
    p.run(Duration::from_secs(31));
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
}

#[test]
fn stop_before_open_closes_and_does_not_retry() {
    let mut p = Pair::default_pair();
    p.connect_delay[0] = SEC;
    let now = p.now;
    p.a().peer.start(now);
    p.run(Duration::from_millis(100));
    assert_eq!(p.a().peer.state(), PeerState::WaitConnAck);
    let now = p.now;
    p.a().peer.stop(now, DisconnectCause::Rebooting);
    assert_eq!(p.a().peer.state(), PeerState::Closed);
    p.run(Duration::from_secs(120));
    // The late Conn-Ack is disconnected; nothing reconnects.
    assert_eq!(p.a().peer.state(), PeerState::Closed);
    assert!(p.live_conns().is_empty());
    assert_eq!(p.b().peer.state(), PeerState::Closed);
}

#[test]
fn second_connection_from_open_peer_is_rejected() {
    let mut p = Pair::default_pair();
    let now = p.now;
    p.a().peer.start(now);
    p.run(SEC);
    // B now also connects (as after a local restart of its connector): R-Conn-CER in I-Open
    // → R-Reject on A; the original connection stays.
    let before = p.live_conns();
    let cer = messages::cer(p.b().local(), 7, 7);
    let now = p.now;
    p.a()
        .peer
        .handle_incoming(now, ConnId(99), Message::from_bytes(cer).unwrap());
    assert_eq!(
        p.a().peer.poll_action(),
        Some(PeerAction::Reject(ConnId(99)))
    );
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
    assert_eq!(p.live_conns(), before);
}

// ------------------------------------------------------------------------------------------
// Election (RFC 6733 §5.6.4)

/// Both connect at once: exactly one connection survives, the same at both ends, and it is the
/// one the loser (lower Origin-Host) initiated.
fn election_race(host_a: &str, host_b: &str, delays: [Duration; 2], latency: Duration) {
    let mut p = Pair::new(
        cfg(local(host_a), host_b, 11),
        cfg(local(host_b), host_a, 12),
    );
    p.latency = latency;
    p.connect_delay = delays;
    p.start_both();
    p.run(Duration::from_secs(5));
    let live = p.live_conns();
    assert_eq!(live.len(), 1, "{host_a} vs {host_b} {delays:?}: {live:?}");
    let (ca, cb) = (p.sides[0].peer.open_conn(), p.sides[1].peer.open_conn());
    assert_eq!(ca, Some(live[0]));
    assert_eq!(cb, Some(live[0]));
    // The winner (higher host) is the responder on the surviving connection.
    let a_wins = wins_election(host_a, host_b);
    let (sa, sb) = (p.sides[0].peer.state(), p.sides[1].peer.state());
    if a_wins {
        assert_eq!(
            (sa, sb),
            (PeerState::ROpen, PeerState::IOpen),
            "{host_a} vs {host_b} {delays:?}"
        );
    } else {
        assert_eq!(
            (sa, sb),
            (PeerState::IOpen, PeerState::ROpen),
            "{host_a} vs {host_b} {delays:?}"
        );
    }
    for s in &p.sides {
        assert_eq!(s.count(is_open_event), 1);
    }
    // And it stays that way (the loser does not reconnect, the watchdog runs).
    p.run(Duration::from_secs(120));
    assert_eq!(p.live_conns(), live);
}

#[test]
fn election_race_simultaneous() {
    for (a, b) in [("a.example", "b.example"), ("b.example", "a.example")] {
        election_race(a, b, [Duration::ZERO; 2], Duration::from_millis(10));
    }
}

#[test]
fn election_race_hosts_differing_only_by_case() {
    for (a, b) in [
        ("PCRF.example", "pcrf.example"),
        ("pcrf.example", "PCRF.example"),
    ] {
        election_race(a, b, [Duration::ZERO; 2], Duration::from_millis(10));
    }
}

#[test]
fn election_race_every_interleaving() {
    // Connect delays move the peer's CER before or after our Conn-Ack: this walks through
    // Wait-Conn-Ack/Elect (CER before our Conn-Ack) and Wait-Returns (after our CER).
    let steps = [0, 5, 10, 15, 20, 30, 50].map(Duration::from_millis);
    for (a, b) in [("a.example", "b.example"), ("PCRF.example", "pcrf.example")] {
        for da in steps {
            for db in steps {
                election_race(a, b, [da, db], Duration::from_millis(10));
                election_race(b, a, [da, db], Duration::from_millis(7));
            }
        }
    }
}

#[test]
fn wait_conn_ack_elect_then_conn_nack_opens_responder() {
    let mut p = Pair::default_pair();
    // A's own attempt is slow and fails; B's CER arrives first.
    p.connect_delay[0] = Duration::from_millis(200);
    p.a().refuse_connect = true;
    p.start_both();
    p.run(SEC);
    // Wait-Conn-Ack, R-Conn-CER → Wait-Conn-Ack/Elect; I-Rcv-Conn-Nack → R-Snd-CEA → R-Open.
    assert_eq!(
        p.a().states(),
        [
            PeerState::WaitConnAck,
            PeerState::WaitConnAckElect,
            PeerState::ROpen
        ]
    );
    assert_eq!(p.b().peer.state(), PeerState::IOpen);
}

#[test]
fn wait_conn_ack_elect_then_peer_disc_back_to_wait_conn_ack() {
    let mut p = Pair::default_pair();
    p.connect_delay[0] = Duration::from_millis(200);
    p.start_both();
    p.run(Duration::from_millis(50));
    assert_eq!(p.a().peer.state(), PeerState::WaitConnAckElect);
    // B's connection drops: Wait-Conn-Ack/Elect, R-Peer-Disc → Wait-Conn-Ack.
    let c = *p.sides[0].known.iter().next().unwrap();
    let now = p.now;
    p.a().peer.handle_closed(now, c);
    assert_eq!(p.a().peer.state(), PeerState::WaitConnAck);
}

#[test]
fn wait_returns_loser_keeps_its_connection() {
    // b wins; a in Wait-Returns receives its CEA → R-Disc (ELECTION_LOST) → I-Open.
    let mut p = Pair::default_pair();
    p.start_both();
    p.run(SEC);
    assert!(p.a().states().contains(&PeerState::WaitReturns));
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
    assert_eq!(p.b().peer.state(), PeerState::ROpen);
    // Whoever sent a 4003 sent it on the losing connection only.
    let lost = p.sides[0]
        .sent
        .iter()
        .filter(|(_, _, m)| rc_of(m) == Some(4003))
        .count();
    assert!(lost <= 1);
}

// ------------------------------------------------------------------------------------------
// CER processing (RFC 6733 §5.3)

fn responder(local: LocalConfig) -> Peer {
    let mut c = PeerConfig::new(Arc::new(local), None);
    c.connect = false;
    Peer::new(c)
}

/// Feeds `cer` to a fresh responder; returns (answer, action).
fn answer_cer(local: LocalConfig, cer: Bytes) -> (Option<Message>, Option<PeerAction>, Peer) {
    let mut peer = responder(local);
    peer.handle_incoming(Instant::now(), ConnId(1), Message::from_bytes(cer).unwrap());
    let ans = peer
        .poll_transmit()
        .map(|t| Message::from_bytes(t.bytes).unwrap());
    (ans, peer.poll_action(), peer)
}

fn cer_from(l: &LocalConfig) -> Bytes {
    messages::cer(l, 1, 1)
}

/// A CER built by hand, with `skip` left out and `extra` added.
fn raw_cer(skip: u32, extra: Vec<OwnedAvp>) -> Bytes {
    let l = local("client.example");
    let full = Message::from_bytes(cer_from(&l)).unwrap();
    let mut b = MessageBuilder::request(257, 0, false).ids(1, 1);
    for a in full.avps().flatten().filter(|a| a.code != skip) {
        b.push(OwnedAvp::verbatim(&full, &a));
    }
    for a in extra {
        b.push(a);
    }
    b.to_bytes()
}

fn failed_avp_code(m: &Message) -> Option<u32> {
    let f = m.find(AvpKey::new(279, 0))?;
    f.children().flatten().next().map(|a| a.code)
}

#[test]
fn cer_no_common_application_5010() {
    let mut client = local("client.example");
    client.applications = vec![Application::auth(4)];
    let (ans, act, peer) = answer_cer(local("server.example"), cer_from(&client));
    assert_eq!(rc_of(&ans.unwrap()), Some(5010));
    assert_eq!(act, Some(PeerAction::Reject(ConnId(1))));
    assert_eq!(peer.state(), PeerState::Closed);
}

#[test]
fn cer_vendor_inside_vsai_does_not_matter_and_relay_matches() {
    let mut client = local("client.example");
    client.applications = vec![Application::vendor_auth(5535, GX)];
    let (ans, _, peer) = answer_cer(local("server.example"), cer_from(&client));
    assert_eq!(rc_of(&ans.unwrap()), Some(2001));
    assert_eq!(peer.state(), PeerState::ROpen);

    client.applications = vec![Application::relay()];
    let (ans, _, peer) = answer_cer(local("server.example"), cer_from(&client));
    assert_eq!(rc_of(&ans.unwrap()), Some(2001));
    assert!(peer.info().unwrap().negotiated.relay);
}

#[test]
fn cer_unknown_peer_3010_or_silent_close() {
    let mut p = Pair::new(
        cfg(local("a.example"), "b.example", 1),
        cfg(local("b.example"), "someone.else", 2),
    );
    let now = p.now;
    p.a().peer.start(now);
    p.run(SEC);
    let cea = p.sides[1].sent.last().unwrap().2.clone();
    assert_eq!(rc_of(&cea), Some(3010));
    assert!(
        cea.header().flags.is_error(),
        "3xxx carries the E bit (RFC 6733 §7.1.3)"
    );
    assert!(p.sides[0].events.iter().any(|(_, e)| matches!(
        e,
        PeerEvent::CapabilitiesRejected {
            by: Refuser::Remote,
            result_code: ResultCode(3010),
            ..
        }
    )));
    assert_eq!(p.a().peer.state(), PeerState::Closed);
    assert!(p.live_conns().is_empty());

    let mut lb = local("b.example");
    lb.unknown_peer = UnknownPeerPolicy::Close;
    let mut p = Pair::new(
        cfg(local("a.example"), "b.example", 1),
        cfg(lb, "someone.else", 2),
    );
    let now = p.now;
    p.a().peer.start(now);
    p.run(SEC);
    assert!(p.sides[1].sent.is_empty(), "silent close");
    assert_eq!(p.a().peer.state(), PeerState::Closed);
}

#[test]
fn cer_missing_avps_5005_with_failed_avp() {
    for code in [264, 296, 257, 266, 269] {
        let cer = raw_cer(code, vec![]);
        let server = local("server.example");
        let ans = if code == 264 {
            // No Origin-Host: no peer can be found, the node answers (screen_first_message).
            match screen_first_message(&server, &Message::from_bytes(cer).unwrap()) {
                FirstMessage::Answer(b) => Message::from_bytes(b).unwrap(),
                other => panic!("{other:?}"),
            }
        } else {
            answer_cer(server, cer).0.unwrap()
        };
        assert_eq!(rc_of(&ans), Some(5005), "missing {code}");
        assert_eq!(failed_avp_code(&ans), Some(code), "Failed-AVP names {code}");
    }
}

#[test]
fn cer_duplicated_origin_host_5009() {
    let dup = OwnedAvp::new(
        264,
        0,
        0x40,
        AvpValue::Bytes(Bytes::from_static(b"other.example")),
    );
    let cer = Message::from_bytes(raw_cer(0, vec![dup])).unwrap();
    let server = local("server.example");
    let FirstMessage::Answer(b) = screen_first_message(&server, &cer) else {
        panic!()
    };
    let ans = Message::from_bytes(b).unwrap();
    assert_eq!(rc_of(&ans), Some(5009));
    assert_eq!(failed_avp_code(&ans), Some(264));
    // The peer-level check gives the same answer.
    let (ans, act, _) = answer_cer(server, cer.as_bytes().clone());
    assert_eq!(rc_of(&ans.unwrap()), Some(5009));
    assert_eq!(act, Some(PeerAction::Reject(ConnId(1))));
}

#[test]
fn cer_inband_security_tls_is_never_agreed() {
    // RFC 6733 §6.10: no in-band upgrade exists, so TLS is never agreed: a CER offering only
    // TLS is refused with 5017, whatever we are configured with, and says why.
    for setting in [InbandSecurity::Omit, InbandSecurity::NoInbandSecurity] {
        let mut server = local("server.example");
        server.inband_security = setting;
        let tls_only = OwnedAvp::new(299, 0, 0x40, AvpValue::U32(1));
        let (ans, act, _) = answer_cer(server.clone(), raw_cer(299, vec![tls_only]));
        let ans = ans.unwrap();
        assert_eq!(rc_of(&ans), Some(5017), "{setting:?}");
        assert_eq!(act, Some(PeerAction::Reject(ConnId(1))));
        assert_eq!(failed_avp_code(&ans), Some(299));
        let why = messages::find_str(&ans, 281).unwrap();
        assert!(why.contains("in-band TLS"), "{why}");
        // Offering both: NO_INBAND_SECURITY is the common one, and our CEA never offers TLS.
        let both = vec![
            OwnedAvp::new(299, 0, 0x40, AvpValue::U32(1)),
            OwnedAvp::new(299, 0, 0x40, AvpValue::U32(0)),
        ];
        let (ans, _, _) = answer_cer(server.clone(), raw_cer(299, both));
        let ans = ans.unwrap();
        assert_eq!(rc_of(&ans), Some(2001), "{setting:?}");
        assert!(
            ans.find_all(AvpKey::new(299, 0))
                .all(|a| a.data != [0, 0, 0, 1])
        );
        // Nor does our CER.
        let cer = Message::from_bytes(cer_from(&server)).unwrap();
        assert!(
            cer.find_all(AvpKey::new(299, 0))
                .all(|a| a.data != [0, 0, 0, 1])
        );
    }
    // A CEA offering only TLS does not open the connection either.
    let mut cea = MessageBuilder::answer_to(
        &Message::from_bytes(cer_from(&local("client.example"))).unwrap(),
        &LocalIdentity::new("server.example", "example.net"),
    );
    cea.result_code(diameter_codec::ResultCode::DIAMETER_SUCCESS);
    let full = Message::from_bytes(cer_from(&local("server.example"))).unwrap();
    for a in full
        .avps()
        .flatten()
        .filter(|a| a.code != 264 && a.code != 296)
    {
        cea.push(OwnedAvp::verbatim(&full, &a));
    }
    cea.push(OwnedAvp::new(299, 0, 0x40, AvpValue::U32(1)));
    let cea = cea.build().unwrap();
    assert_eq!(
        cer::process_cea(&local("client.example"), Some("server.example"), &cea),
        Err(cer::CeaFailure::Unusable(
            diameter_codec::ResultCode::DIAMETER_NO_COMMON_SECURITY
        ))
    );
}

#[test]
fn first_message_not_cer_is_closed_without_answer() {
    let server = local("server.example");
    let dwr = Message::from_bytes(messages::dwr(&local("client.example"), 1, 1)).unwrap();
    assert_eq!(screen_first_message(&server, &dwr), FirstMessage::Close);
    let mut peer = responder(server);
    peer.handle_incoming(Instant::now(), ConnId(5), dwr);
    assert!(peer.poll_transmit().is_none());
    assert_eq!(peer.poll_action(), Some(PeerAction::Reject(ConnId(5))));
}

#[test]
fn second_cer_on_open_connection_is_refused_and_closed() {
    let mut p = Pair::default_pair();
    let now = p.now;
    p.a().peer.start(now);
    p.run(SEC);
    let c = p.a().peer.open_conn().unwrap();
    let cer = Message::from_bytes(messages::cer(p.a().local(), 5, 5)).unwrap();
    let now = p.now;
    p.b().peer.handle_message(now, c, cer);
    p.run(SEC);
    let ans = p.sides[1]
        .sent
        .iter()
        .rev()
        .find(|(_, _, m)| m.header().command_code == 257)
        .unwrap();
    assert_eq!(rc_of(&ans.2), Some(5012));
    assert!(
        p.b().count(|e| matches!(
            e,
            PeerEvent::Down {
                reason: DownReason::ProtocolError
            }
        )) == 1
    );
}

// ------------------------------------------------------------------------------------------
// Watchdog (RFC 3539 §3.4)

fn open_pair() -> Pair {
    let mut p = Pair::default_pair();
    let now = p.now;
    p.a().peer.start(now);
    p.run(SEC);
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
    p
}

#[test]
fn dwr_after_tw_of_silence_with_jitter() {
    let mut p = open_pair();
    p.run(Duration::from_secs(600));
    let dwrs: Vec<Instant> = p.sides[0]
        .sent
        .iter()
        .filter(|(_, _, m)| m.header().command_code == 280 && m.header().is_request())
        .map(|s| s.0)
        .collect();
    assert!(dwrs.len() >= 10, "{}", dwrs.len());
    for w in dwrs.windows(2) {
        let gap = w[1] - w[0];
        // Tw = 30 s ± 2 s (any traffic, including the peer's DWRs, re-arms the timer, so
        // gaps can only be longer when the peer's DWR came in between).
        assert!(gap >= Duration::from_secs(28), "{gap:?}");
    }
    // Every DWR is answered with a DWA carrying Origin-State-Id.
    let dwa = p.sides[1]
        .sent
        .iter()
        .find(|(_, _, m)| m.header().command_code == 280 && !m.header().is_request())
        .unwrap();
    assert!(dwa.2.find(AvpKey::new(278, 0)).is_some());
    assert_eq!(p.a().peer.watchdog_state(), WatchdogState::Okay);
    assert_eq!(p.a().count(|e| matches!(e, PeerEvent::Failover { .. })), 0);
}

#[test]
fn traffic_counts_as_liveness_no_dwr() {
    let mut p = open_pair();
    // A request every 10 s from A, answered by B: both sides receive traffic well within Tw.
    for k in 0..30 {
        p.send_request(0, 1000 + k);
        p.run(Duration::from_secs(10));
    }
    assert_eq!(p.sides[0].count_sent(280, true), 0);
    assert_eq!(p.sides[1].count_sent(280, true), 0);
    assert_eq!(p.b().count(|e| matches!(e, PeerEvent::Request { .. })), 30);
    assert_eq!(p.a().count(|e| matches!(e, PeerEvent::Answer { .. })), 30);
}

#[test]
fn express_traffic_counts_as_liveness_and_stale_traffic_does_not() {
    let mut p = open_pair();
    let t0 = p.now;
    for s in &p.sides {
        assert!(
            s.peer.express_conn().is_some(),
            "open and OKAY: express lane allowed"
        );
    }
    // Application traffic delivered beside the state machine, reported every 10 s: no DWR.
    for _ in 0..30 {
        p.run(Duration::from_secs(10));
        let now = p.now;
        for s in &mut p.sides {
            s.peer.handle_traffic(now, now);
        }
    }
    assert_eq!(p.sides[0].count_sent(280, true), 0);
    assert_eq!(p.sides[1].count_sent(280, true), 0);
    // Reports of traffic older than the last timer setting change nothing: DWRs resume.
    for _ in 0..6 {
        p.run(Duration::from_secs(10));
        let now = p.now;
        for s in &mut p.sides {
            s.peer.handle_traffic(now, t0);
        }
    }
    // (Whichever side's timer fires first sends the DWR; receiving it re-arms the other.)
    assert!(p.sides[0].count_sent(280, true) + p.sides[1].count_sent(280, true) >= 1);
    assert_eq!(p.a().peer.watchdog_state(), WatchdogState::Okay);
}

#[test]
fn express_lane_closes_when_the_watchdog_suspects() {
    let mut p = open_pair();
    assert!(p.a().peer.express_conn().is_some());
    p.blackhole = true;
    // Tw of silence → DWR; another Tw without DWA → SUSPECT: everything through the PSM again.
    p.run(Duration::from_secs(70));
    assert_ne!(p.a().peer.watchdog_state(), WatchdogState::Okay);
    assert_eq!(p.a().peer.express_conn(), None);
}

#[test]
fn lost_dwas_do_not_fail_over_while_traffic_flows() {
    let mut p = open_pair();
    // Drop every DWA; B alone sends requests, every 20 s: A hears traffic, B hears only answers.
    p.filter = Some(Box::new(|_, m| {
        m.header().command_code == 280 && !m.header().is_request()
    }));
    for k in 0..20 {
        p.send_request(1, 2000 + k);
        p.run(Duration::from_secs(20));
    }
    for s in &p.sides {
        assert_eq!(s.count(|e| matches!(e, PeerEvent::Failover { .. })), 0);
        assert_eq!(s.peer.watchdog_state(), WatchdogState::Okay);
    }
}

#[test]
fn watchdog_loss_suspect_down_reopen_okay() {
    let mut p = open_pair();
    let t0 = p.now;
    p.blackhole = true;
    // OKAY: DWR after Tw; SUSPECT after another Tw (Failover); DOWN after a third (close).
    p.run(Duration::from_secs(100));
    let a = &p.sides[0];
    assert_eq!(
        &a.wd_states()[..3],
        [
            WatchdogState::Okay,
            WatchdogState::Suspect,
            WatchdogState::Down
        ]
    );
    let suspect_at = a
        .events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                PeerEvent::Failover {
                    reason: DownReason::Watchdog
                }
            )
        })
        .unwrap()
        .0;
    let down_at = a
        .events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                PeerEvent::Down {
                    reason: DownReason::Watchdog
                }
            )
        })
        .unwrap()
        .0;
    // faults.md: SUSPECT after ~2·Tw (±jitter), DOWN after another Tw.
    assert!(
        suspect_at - t0 >= Duration::from_secs(56) && suspect_at - t0 <= Duration::from_secs(64)
    );
    assert!(
        down_at - suspect_at >= Duration::from_secs(28)
            && down_at - suspect_at <= Duration::from_secs(32)
    );
    assert_eq!(a.peer.state(), PeerState::Closed);
    // Heal the network; reconnection every Tc until it works, then REOPEN needs 3 DWAs.
    p.blackhole = false;
    p.run(Duration::from_secs(200));
    for s in &p.sides {
        let wd = s.wd_states();
        let reopen = wd
            .iter()
            .position(|w| *w == WatchdogState::Reopen)
            .expect("REOPEN");
        assert_eq!(wd[reopen + 1], WatchdogState::Okay);
        assert_eq!(s.peer.watchdog_state(), WatchdogState::Okay);
        assert!(s.peer.is_available());
        assert_eq!(s.count(is_open_event), 2);
    }
    // The Open after the reconnection came only after three DWAs on that connection.
    let a = &p.sides[0];
    let reopen_at = a
        .events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                PeerEvent::WatchdogChanged {
                    to: WatchdogState::Reopen,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    let open2 = a
        .events
        .iter()
        .filter(|(_, e)| is_open_event(e))
        .nth(1)
        .unwrap()
        .0;
    let conn = a.peer.open_conn().unwrap();
    let dwas = p.sides[1]
        .sent
        .iter()
        .chain(&p.sides[0].sent)
        .filter(|(t, c, m)| {
            *c == conn
                && *t >= reopen_at
                && *t <= open2
                && m.header().command_code == 280
                && !m.header().is_request()
        })
        .count();
    assert!(dwas >= 3, "{dwas}");
    assert_eq!(p.live_conns().len(), 1);
}

#[test]
fn suspect_fails_back_on_any_traffic() {
    let mut p = open_pair();
    // A hears nothing from B (B still hears A's DWRs, so B stays OKAY): A goes SUSPECT after
    // ~2·Tw; then one request from B fails A back (RFC 3539: SUSPECT, receive non-DWA →
    // Failback()).
    p.filter = Some(Box::new(|from, _| from == 1));
    p.run(Duration::from_secs(70));
    assert_eq!(p.a().peer.watchdog_state(), WatchdogState::Suspect);
    p.filter = None;
    p.send_request(1, 77);
    p.run(SEC);
    assert_eq!(p.a().peer.watchdog_state(), WatchdogState::Okay);
    assert_eq!(p.a().count(|e| matches!(e, PeerEvent::Failback { .. })), 1);
}

#[test]
fn tw_is_clamped_to_six_seconds() {
    let mut a = cfg(local("a.example"), "b.example", 3);
    a.timers.tw = SEC;
    let mut b = cfg(local("b.example"), "a.example", 4);
    b.timers.tw = Duration::from_secs(3600);
    assert_eq!(a.timers.effective_tw(), MIN_TW);
    let mut p = Pair::new(a, b);
    let now = p.now;
    p.a().peer.start(now);
    p.run(Duration::from_secs(120));
    let dwrs: Vec<Instant> = p.sides[0]
        .sent
        .iter()
        .filter(|(_, _, m)| m.header().command_code == 280 && m.header().is_request())
        .map(|s| s.0)
        .collect();
    assert!(dwrs.len() >= 14, "{}", dwrs.len());
    for w in dwrs.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_secs(4)
                && gap <= Duration::from_secs(8) + Duration::from_millis(20),
            "{gap:?}"
        );
    }
}

#[test]
fn dwa_with_wrong_ids_is_ignored_safely() {
    let mut p = open_pair();
    let c = p.a().peer.open_conn().unwrap();
    let dwr = Message::from_bytes(messages::dwr(p.b().local(), 0xdead, 0xbeef)).unwrap();
    let b_local = p.sides[1].local().clone();
    for (h, e) in [(0xdead, 0xbeef), (0, 0), (u32::MAX, 1)] {
        let mut dwa = Message::from_bytes(messages::dwa(&b_local, &dwr))
            .unwrap()
            .as_bytes()
            .to_vec();
        dwa[12..16].copy_from_slice(&u32::to_be_bytes(h));
        dwa[16..20].copy_from_slice(&u32::to_be_bytes(e));
        let now = p.now;
        p.a()
            .peer
            .handle_message(now, c, Message::from_bytes(dwa).unwrap());
    }
    p.run(SEC);
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
    assert_eq!(p.a().count(|e| matches!(e, PeerEvent::Answer { .. })), 0);
}

// ------------------------------------------------------------------------------------------
// DPR/DPA (RFC 6733 §5.4)

#[test]
fn stop_sends_dpr_and_closes_on_dpa() {
    let mut p = open_pair();
    let now = p.now;
    p.a().peer.stop(now, DisconnectCause::Rebooting);
    assert_eq!(p.a().peer.state(), PeerState::Closing);
    p.run(SEC);
    // Closing, I-Rcv-DPA → I-Disc → Closed.
    assert_eq!(p.a().peer.state(), PeerState::Closed);
    assert_eq!(p.b().peer.state(), PeerState::Closed);
    assert_eq!(p.sides[0].count_sent(282, true), 1);
    assert_eq!(p.sides[1].count_sent(282, false), 1);
    assert!(
        p.b().count(|e| matches!(
            e,
            PeerEvent::DisconnectRequested {
                cause: DisconnectCause::Rebooting
            }
        )) == 1
    );
    // The stopped side never reconnects; B has `start`ed neither, so it stays Closed too.
    p.run(Duration::from_secs(300));
    assert!(p.live_conns().is_empty());
    assert_eq!(p.a().peer.watchdog_state(), WatchdogState::Initial);
}

#[test]
fn dpa_timeout_closes() {
    let mut p = open_pair();
    p.blackhole = true;
    let now = p.now;
    p.a().peer.stop(now, DisconnectCause::Rebooting);
    p.run(Duration::from_secs(4));
    assert_eq!(p.a().peer.state(), PeerState::Closing);
    p.run(Duration::from_secs(2));
    // Closing, Timeout → Error → Closed (DPA timer 5 s).
    assert_eq!(p.a().peer.state(), PeerState::Closed);
}

#[test]
fn dpr_during_traffic_fails_over_and_loses_no_answer() {
    let mut p = open_pair();
    p.start_both();
    // B holds its answers: A has requests in flight when B sends DPR.
    p.b().auto_answer = false;
    for k in 0..5 {
        p.send_request(0, 3000 + k);
    }
    p.run(Duration::from_millis(50));
    let reqs: Vec<Message> = p.sides[1]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::Request { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 5);
    let now = p.now;
    p.b().peer.stop(now, DisconnectCause::Rebooting);
    // B still answers the requests it received (answers are allowed in Closing).
    let me = LocalIdentity::new("b.example", "example.net");
    for r in &reqs[..2] {
        let mut a = MessageBuilder::answer_to(r, &me);
        a.result_code(ResultCode::DIAMETER_SUCCESS);
        p.b().peer.send(a.to_bytes()).unwrap();
    }
    assert!(
        p.b()
            .peer
            .send(messages::dwr(&local("b.example"), 1, 1))
            .is_err(),
        "no new request after DPR"
    );
    p.run(SEC);
    let a = &p.sides[0];
    let order: Vec<&str> = a
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::Answer { .. } => Some("answer"),
            PeerEvent::DisconnectRequested { .. } => Some("dpr"),
            PeerEvent::Failover { .. } => Some("failover"),
            PeerEvent::Down { .. } => Some("down"),
            _ => None,
        })
        .collect();
    // The node learns to fail over the requests in flight, the two answers B still sent after
    // its DPR are delivered (A keeps reading in Closing), then the connection goes.
    assert_eq!(order, ["dpr", "failover", "answer", "answer", "down"]);
    // REBOOTING: A reconnects after Tc.
    p.run(Duration::from_secs(31));
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
}

#[test]
fn dpr_busy_prevents_reconnect_storm() {
    for cause in [DisconnectCause::Busy, DisconnectCause::DoNotWantToTalkToYou] {
        let mut p = open_pair();
        let now = p.now;
        p.b().peer.stop(now, cause);
        p.run(Duration::from_secs(29 * 60));
        assert_eq!(p.a().peer.state(), PeerState::Closed, "{cause:?}");
        assert_eq!(
            p.a().count(|e| matches!(
                e,
                PeerEvent::StateChanged {
                    to: PeerState::WaitConnAck,
                    ..
                }
            )),
            1
        );
        // Restarting the peer does not shorten the hold-off either.
        let now = p.now;
        p.a().peer.start(now);
        assert_eq!(p.a().peer.state(), PeerState::Closed);
        p.run(Duration::from_secs(2 * 60));
        assert_eq!(
            p.a().peer.state(),
            PeerState::IOpen,
            "{cause:?}: back after hold_off (30 min)"
        );
    }
}

#[test]
fn both_send_dpr_at_once() {
    let mut p = open_pair();
    let now = p.now;
    p.a().peer.stop(now, DisconnectCause::Rebooting);
    p.b().peer.stop(now, DisconnectCause::Rebooting);
    p.run(SEC);
    assert_eq!(p.a().peer.state(), PeerState::Closed);
    assert_eq!(p.b().peer.state(), PeerState::Closed);
}

#[test]
fn restarted_peer_is_reported() {
    let mut p = open_pair();
    // B restarts with a higher Origin-State-Id and reconnects.
    let mut lb = local("b.example");
    lb.origin_state_id = 2;
    let now = p.now;
    let old = p.b().peer.open_conn().unwrap();
    p.b().peer = Peer::new(cfg(lb, "a.example", 9));
    p.conns.get_mut(&old).unwrap().open[1] = false;
    p.schedule(p.latency, 0, Delivery::Closed(old));
    p.b().peer.start(now);
    p.run(Duration::from_secs(60));
    assert_eq!(
        p.a().count(|e| matches!(
            e,
            PeerEvent::Restarted {
                previous: 1,
                current: 2
            }
        )),
        1
    );
}

/// Everything the peer wants done and reports, drained.
fn drain(peer: &mut Peer) -> (Vec<Transmit>, Vec<PeerAction>, Vec<PeerEvent>) {
    let (mut t, mut a, mut e) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(x) = peer.poll_transmit() {
        t.push(x);
    }
    while let Some(x) = peer.poll_action() {
        a.push(x);
    }
    while let Some(x) = peer.poll_event() {
        e.push(x);
    }
    (t, a, e)
}

/// A responder opened by a CER from "client.example" with Origin-State-Id `osi` on `conn`.
fn open_responder(peer: &mut Peer, now: Instant, conn: ConnId, osi: u32) -> Vec<PeerEvent> {
    let mut l = local("client.example");
    l.origin_state_id = osi;
    peer.handle_incoming(now, conn, Message::from_bytes(cer_from(&l)).unwrap());
    drain(peer).2
}

fn a_request() -> Message {
    use diameter_codec::dict::base;
    Message::from_bytes(
        MessageBuilder::request(272, GX, true)
            .ids(77, 77)
            .with(base::ORIGIN_HOST.with("client.example".to_string()))
            .with(base::ORIGIN_REALM.with("example.net".to_string()))
            .to_bytes(),
    )
    .unwrap()
}

#[test]
fn requests_received_in_reopen_are_delivered() {
    // A client reconnects after its connection died without DPR, with the same
    // Origin-State-Id: the watchdog is in REOPEN (RFC 3539 §3.4.1) but its requests reach the
    // node (issue: a reconnecting peer is served).
    let now = Instant::now();
    let mut peer = responder(local("server.example"));
    open_responder(&mut peer, now, ConnId(1), 5);
    peer.handle_closed(now + SEC, ConnId(1));
    drain(&mut peer);
    open_responder(&mut peer, now + 2 * SEC, ConnId(2), 5);
    assert_eq!(peer.state(), PeerState::ROpen);
    assert_eq!(peer.watchdog_state(), WatchdogState::Reopen);
    peer.handle_message(now + 3 * SEC, ConnId(2), a_request());
    let (_, _, events) = drain(&mut peer);
    assert!(
        events.iter().any(|e| matches!(
            e,
            PeerEvent::Request {
                conn: ConnId(2),
                ..
            }
        )),
        "{events:?}"
    );
    // Our answers go out on the new connection while REOPEN lasts.
    assert_eq!(peer.send(Bytes::from_static(&[1, 0, 0, 20])), Ok(ConnId(2)));
}

#[test]
fn restarted_peer_is_fresh_no_reopen() {
    // Same as above, but the client restarted (new Origin-State-Id): no probation at all.
    let now = Instant::now();
    let mut peer = responder(local("server.example"));
    open_responder(&mut peer, now, ConnId(1), 5);
    peer.handle_closed(now + SEC, ConnId(1));
    drain(&mut peer);
    let events = open_responder(&mut peer, now + 2 * SEC, ConnId(2), 6);
    assert_eq!(peer.watchdog_state(), WatchdogState::Okay);
    assert!(peer.is_available());
    assert!(events.iter().any(is_open_event), "{events:?}");
    assert!(events.iter().any(|e| matches!(
        e,
        PeerEvent::Restarted {
            previous: 5,
            current: 6
        }
    )));
}

#[test]
fn cer_with_new_origin_state_replaces_the_open_connection() {
    // The client restarted before we saw its old TCP connection die: its new CER carries a
    // new Origin-State-Id, so the old connection goes and the new one is served.
    let now = Instant::now();
    let mut peer = responder(local("server.example"));
    open_responder(&mut peer, now, ConnId(1), 5);
    assert_eq!(peer.state(), PeerState::ROpen);
    let mut l = local("client.example");
    l.origin_state_id = 6;
    peer.handle_incoming(
        now + SEC,
        ConnId(2),
        Message::from_bytes(cer_from(&l)).unwrap(),
    );
    let (sent, actions, events) = drain(&mut peer);
    assert!(
        actions.contains(&PeerAction::Disconnect(ConnId(1))),
        "{actions:?}"
    );
    assert!(
        !actions.contains(&PeerAction::Reject(ConnId(2))),
        "{actions:?}"
    );
    let cea = sent.iter().find(|t| t.conn == ConnId(2)).expect("CEA");
    assert_eq!(
        rc_of(&Message::from_bytes(cea.bytes.clone()).unwrap()),
        Some(2001)
    );
    assert!(events.iter().any(|e| matches!(e, PeerEvent::Down { .. })));
    assert_eq!(peer.state(), PeerState::ROpen);
    assert_eq!(peer.open_conn(), Some(ConnId(2)));
    assert!(peer.is_available());
    // The same Origin-State-Id again keeps today's R-Reject (bad-inputs 32).
    peer.handle_incoming(
        now + 2 * SEC,
        ConnId(3),
        Message::from_bytes(cer_from(&l)).unwrap(),
    );
    let (_, actions, _) = drain(&mut peer);
    assert_eq!(actions, vec![PeerAction::Reject(ConnId(3))]);
    assert_eq!(peer.open_conn(), Some(ConnId(2)));
}

// ------------------------------------------------------------------------------------------
// Robustness: no input makes the PSM panic.

#[test]
fn unexpected_inputs_never_panic() {
    let la = local("a.example");
    let lb = local("b.example");
    let cer_b = Message::from_bytes(messages::cer(&lb, 9, 9)).unwrap();
    let cer_a = Message::from_bytes(messages::cer(&la, 8, 8)).unwrap();
    let mut msgs = vec![
        cer_b.clone(),
        Message::from_bytes(messages::cea_success(&lb, &cer_a)).unwrap(),
        Message::from_bytes(messages::dwr(&lb, 1, 2)).unwrap(),
        Message::from_bytes(messages::dpr(&lb, 3, 4, DisconnectCause::Busy)).unwrap(),
        Message::from_bytes(messages::dpa(&lb, &cer_a)).unwrap(),
        Message::from_bytes(messages::error_answer(
            &lb,
            &cer_a,
            ResultCode::DIAMETER_UNABLE_TO_COMPLY,
            "x",
        ))
        .unwrap(),
        Message::from_bytes(MessageBuilder::request(272, GX, true).to_bytes()).unwrap(),
        Message::from_bytes(MessageBuilder::request(280, 0, false).to_bytes()).unwrap(), // empty DWR
        Message::from_bytes(MessageBuilder::request(282, 0, false).to_bytes()).unwrap(), // DPR, no cause
    ];
    let dwr = msgs[2].clone();
    msgs.push(Message::from_bytes(messages::dwa(&lb, &dwr)).unwrap());
    let mut rng = watchdog::SplitMix64::new(7);
    for round in 0..200 {
        let mut peer = Peer::new(cfg(la.clone(), "b.example", round));
        let mut now = Instant::now();
        for _ in 0..60 {
            now += Duration::from_millis(rng.next_u64() % 20_000);
            let conn = ConnId(rng.next_u64() % 4);
            let m = msgs[(rng.next_u64() % msgs.len() as u64) as usize].clone();
            match rng.next_u64() % 9 {
                0 => peer.start(now),
                1 => peer.stop(
                    now,
                    DisconnectCause::from_value((rng.next_u64() % 4) as i32),
                ),
                2 => peer.handle_connected(now, conn),
                3 => peer.handle_connect_failed(now),
                4 => peer.handle_incoming(now, conn, m),
                5 => peer.handle_closed(now, conn),
                6 => peer.handle_timeout(now),
                7 => {
                    let _ = peer.send(m.as_bytes().clone());
                }
                _ => peer.handle_message(now, conn, m),
            }
            while peer.poll_transmit().is_some()
                || peer.poll_action().is_some()
                || peer.poll_event().is_some()
            {}
            // Invariants: the open connection is known; Closed holds no connection.
            if peer.state() == PeerState::Closed {
                assert_eq!(peer.open_conn(), None);
            }
            if peer.state().is_open() {
                assert!(peer.open_conn().is_some());
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// DWR/DPR grammar (RFC 6733 §5.5.1, §5.4.1)

/// Sends `req` from B to A on the open connection; returns A's answer to it.
fn a_answers(p: &mut Pair, req: Message) -> Message {
    let c = p.a().peer.open_conn().unwrap();
    let (hbh, code) = (req.header().hop_by_hop, req.header().command_code);
    let now = p.now;
    p.a().peer.handle_message(now, c, req);
    p.run(Duration::from_millis(100));
    p.sides[0]
        .sent
        .iter()
        .rev()
        .map(|(_, _, m)| m)
        .find(|m| {
            !m.header().is_request()
                && m.header().hop_by_hop == hbh
                && m.header().command_code == code
        })
        .cloned()
        .expect("an answer")
}

fn base_request(code: u32, hbh: u32, avps: Vec<OwnedAvp>) -> Message {
    let mut b = MessageBuilder::request(code, 0, false).ids(hbh, hbh);
    for a in avps {
        b.push(a);
    }
    b.build().unwrap()
}

fn text_avp(code: u32, s: &str) -> OwnedAvp {
    OwnedAvp::new(
        code,
        0,
        0x40,
        AvpValue::Bytes(Bytes::copy_from_slice(s.as_bytes())),
    )
}

#[test]
fn dwr_and_dpr_breaking_their_grammar_are_refused() {
    let mut p = open_pair();
    let realm = || text_avp(296, "example.net");
    let host = || text_avp(264, "b.example");
    // DWR without Origin-Host → 5005 with a Failed-AVP naming it.
    let ans = a_answers(&mut p, base_request(280, 0x7001, vec![realm()]));
    assert_eq!(rc_of(&ans), Some(5005));
    assert_eq!(failed_avp_code(&ans), Some(264));
    // DWR with an unknown AVP carrying M → 5001.
    let unknown = OwnedAvp::new(0x00ab_cdef, 0, 0x40, AvpValue::U32(7));
    let ans = a_answers(
        &mut p,
        base_request(280, 0x7002, vec![host(), realm(), unknown]),
    );
    assert_eq!(rc_of(&ans), Some(5001));
    assert_eq!(failed_avp_code(&ans), Some(0x00ab_cdef));
    // A good DWR still gets 2001.
    let ans = a_answers(&mut p, base_request(280, 0x7003, vec![host(), realm()]));
    assert_eq!(rc_of(&ans), Some(2001));
    // DPR without Disconnect-Cause → 5005, and the peer stays open.
    let ans = a_answers(&mut p, base_request(282, 0x7004, vec![host(), realm()]));
    assert_eq!(rc_of(&ans), Some(5005));
    assert_eq!(failed_avp_code(&ans), Some(273));
    assert_eq!(p.a().peer.state(), PeerState::IOpen);
    assert_eq!(
        p.a()
            .count(|e| matches!(e, PeerEvent::DisconnectRequested { .. })),
        0
    );
}
