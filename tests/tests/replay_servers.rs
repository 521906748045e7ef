//! Interop from the real captures against our servers (issue 10, item 3): the requests that
//! the recorded clients sent to their PCRF (Gx CCR, Rx AAR and STR) and to their OCS (Gy/DCCA CCR) in
//! `../shared/traces` are replayed, byte for byte as in `replay.rs`, to our home PCRF and our
//! home OCS, and their answers are compared with the recorded ones.
//!
//! The servers run with their built-in demo configuration plus the subscribers the
//! captures name (every Subscription-Id of the replayed requests), as an operator
//! replacing the recorded servers would provision them: a profile with the demo's
//! `internet` rule in the SPR, an account with ample balance in every unit at the OCS, every
//! rating group charged (the recorded OCS charged group 9, which the demo zero-rates).
//!
//! Each client's requests go in capture order on its own connection (its own CER), the
//! clients one after the other in capture order, so that a session's requests arrive as
//! they did. Requests the servers send on their own (RAR, ASR) are answered 2001 by the
//! replaying client, as the recorded PCEF did. The captures' own RAR and ASR (sent by
//! their PCRF) are not replayed: they are a server's to send.
//!
//! "Comparable" is checked as: every request whose recorded answer was a success
//! (Result-Code or Experimental-Result-Code 2xxx) gets a success from our server, with its
//! End-to-End Identifier and Session-Id; and where the recorded answer carried
//! Multiple-Services-Credit-Control with a per-service Result-Code, ours carries one for
//! the same rating groups, also a success. The table of recorded and our codes is printed.
//!

mod recorded;

use bytes::Bytes;
use diameter_codec::Message;
use diameter_codec::dict::{base, dcca};
use diameter_node::config::{ListenToml, TransportToml};
use recorded::{
    DCCA, GX, PeerConn, RX, Recorded, clients, extract_all, result_of, traces_readable, u32_of,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What clients send their PCRF and OCS: Credit-Control (RFC 4006 §3.1, TS 29.212 §5.6.2),
/// AA (TS 29.214 §5.6.1) and Session-Termination (TS 29.214 §5.6.3).
const CLIENT_COMMANDS: [u32; 3] = [272, 265, 275];

/// The applications replayed to the PCRF.
const PCRF_APPLICATIONS: [u32; 2] = [GX, RX];

/// Subscription-Id-Type (RFC 4006 §8.47).
const END_USER_E164: u32 = 0;
const END_USER_IMSI: u32 = 1;
const END_USER_NAI: u32 = 3;

fn loopback() -> Vec<ListenToml> {
    vec![ListenToml {
        addr: "127.0.0.1:0".parse().expect("an address"),
        transport: TransportToml::Tcp,
        tls: None,
    }]
}

/// The Subscription-Id (type, data) pairs at the top level of `m`.
fn subscriptions(m: &Message) -> Vec<(u32, String)> {
    m.avps()
        .flatten()
        .filter(|a| a.key() == dcca::SUBSCRIPTION_ID.key())
        .filter_map(|s| {
            let mut kind = None;
            let mut data = None;
            for c in s.children().flatten() {
                if c.key() == dcca::SUBSCRIPTION_ID_TYPE.key() {
                    kind = u32_of(&c);
                } else if c.key() == dcca::SUBSCRIPTION_ID_DATA.key() {
                    data = std::str::from_utf8(c.data).ok().map(str::to_string);
                }
            }
            Some((kind?, data?))
        })
        .collect()
}

/// The subscribers of `requests`: each request's Subscription-Ids, one entry per request
/// that names any (the IMSI and MSISDN of one request are one subscriber), deduplicated.
fn subscribers(requests: &[&Recorded]) -> BTreeSet<Vec<(u32, String)>> {
    requests
        .iter()
        .map(|r| {
            let mut ids = subscriptions(&r.msg);
            ids.sort();
            ids
        })
        .filter(|ids| !ids.is_empty())
        .collect()
}

/// TOML lines `imsi = …`, `msisdn = …`, `nai = …` for one subscriber.
fn identity_lines(ids: &[(u32, String)]) -> String {
    let mut out = String::new();
    for (kind, data) in ids {
        let key = match *kind {
            END_USER_IMSI => "imsi",
            END_USER_E164 => "msisdn",
            END_USER_NAI => "nai",
            _ => continue,
        };
        if !out.contains(&format!("{key} =")) {
            out.push_str(&format!("{key} = {data:?}\n"));
        }
    }
    out
}

/// Rating-Group → per-MSCC Result-Code of the Multiple-Services-Credit-Control AVPs of `m`.
fn mscc_results(m: &Message) -> BTreeMap<u32, Option<u32>> {
    m.avps()
        .flatten()
        .filter(|a| a.key() == dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
        .filter_map(|mscc| {
            let mut rg = None;
            let mut rc = None;
            for c in mscc.children().flatten() {
                if c.key() == dcca::RATING_GROUP.key() {
                    rg = u32_of(&c);
                } else if c.key() == base::RESULT_CODE.key() {
                    rc = u32_of(&c);
                }
            }
            Some((rg?, rc))
        })
        .collect()
}

fn success(rc: Option<u32>) -> bool {
    rc.is_some_and(|rc| (2000..3000).contains(&rc))
}

/// What a client's task is asked to do.
enum Command {
    /// Send this request and reply with its answer.
    Send(Bytes, oneshot::Sender<Result<Message, String>>),
    /// Leave with DPR.
    Close(oneshot::Sender<Result<(), String>>),
}

/// A recorded client on its own task: it sends what it is told, and between its requests
/// keeps answering what the server sends it (a PCRF's RAR to the PCEF while the AF's AAR is
/// in progress on another connection), as the recorded peer did.
fn spawn_client(mut conn: PeerConn) -> mpsc::Sender<Command> {
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut byte = [0u8; 1];
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Send(b, reply)) => {
                        let _ = reply.send(conn.exchange(&b).await);
                    }
                    Some(Command::Close(reply)) => {
                        let _ = reply.send(conn.close().await);
                        return;
                    }
                    None => return,
                },
                // `peek` consumes nothing, so losing the race to a command loses no byte;
                // the message is then read whole, outside select.
                peeked = conn.s.peek(&mut byte) => {
                    let served = match peeked {
                        Ok(0) => Err("closed by the server".to_string()),
                        Ok(_) => match conn.read_message().await {
                            Ok(m) if m.header().is_request() => conn.answer_request(m).await,
                            Ok(_) => Ok(()), // a stray answer: nothing waits for it
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    if served.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tx
}

/// Replays `requests` to `addr`: one connection per recorded client (opened before the
/// first request), the requests in capture order across clients, then DPR. The answers in
/// request order.
async fn replay_in_order(addr: SocketAddr, requests: &[&Recorded]) -> Vec<Result<Message, String>> {
    let owned: Vec<Recorded> = requests.iter().map(|r| (*r).clone()).collect();
    let clients = clients(&owned);
    let mut conns = Vec::new();
    for c in &clients {
        conns.push(PeerConn::open(addr, c).await.map(spawn_client));
    }
    let client_of: BTreeMap<usize, usize> = clients
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| c.requests.iter().map(move |(i, _)| (*i, ci)))
        .collect();
    let gone = || "the client's connection is gone".to_string();
    let mut answers = Vec::new();
    for (i, r) in owned.iter().enumerate() {
        let answer = match &conns[client_of[&i]] {
            Ok(conn) => {
                let (reply, answer) = oneshot::channel();
                let bytes = r.msg.as_bytes().clone();
                match conn.send(Command::Send(bytes, reply)).await {
                    Ok(()) => answer.await.unwrap_or_else(|_| Err(gone())),
                    Err(_) => Err(gone()),
                }
            }
            Err(e) => Err(e.clone()),
        };
        answers.push(answer);
    }
    for conn in conns.iter().flatten() {
        let (reply, closed) = oneshot::channel();
        let closed = match conn.send(Command::Close(reply)).await {
            Ok(()) => closed.await.unwrap_or_else(|_| Err(gone())),
            Err(_) => Err(gone()),
        };
        if let Err(e) = closed {
            answers.push(Err(e));
        }
    }
    answers
}

/// Compares our answers with the recorded ones; prints the table, returns the problems.
fn compare(
    server: &str,
    requests: &[&Recorded],
    answers: &[Result<Message, String>],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut table: BTreeMap<(String, Option<u32>, Option<u32>), usize> = BTreeMap::new();
    for (i, a) in answers.iter().enumerate() {
        let Some(r) = requests.get(i) else {
            problems.push(format!("{server}: {:?}", a.as_ref().err()));
            continue;
        };
        let recorded = r.answer.as_ref().and_then(|(_, rc)| *rc);
        let a = match a {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("{server}: {}: {e}", r.label()));
                continue;
            }
        };
        let ours = result_of(a);
        *table
            .entry((format!("{} {}", r.capture, r.command), recorded, ours))
            .or_default() += 1;
        if r.recorded_success() && !success(ours) {
            problems.push(format!(
                "{server}: {} recorded {recorded:?}, ours {ours:?}: {:?}",
                r.label(),
                a.get(base::ERROR_MESSAGE).and_then(Result::ok)
            ));
        }
        if a.header().end_to_end != r.msg.header().end_to_end
            || a.session_id() != r.msg.session_id()
        {
            problems.push(format!(
                "{server}: {}: the answer's End-to-End or Session-Id differs",
                r.label()
            ));
        }
        // The recorded answer's per-service results, where the capture has that answer.
        if let Some(recorded_mscc) = r.answer_msg.as_ref().map(mscc_results) {
            let ours_mscc = mscc_results(a);
            for (rg, rc) in &recorded_mscc {
                let mine = ours_mscc.get(rg).copied().flatten().or(ours);
                if success(*rc) && !success(mine) {
                    problems.push(format!(
                        "{server}: {}: rating group {rg} recorded {rc:?}, ours {mine:?}",
                        r.label()
                    ));
                }
            }
        }
    }
    for ((what, recorded, ours), n) in &table {
        println!("{server}: {n:3} × {what:60} recorded {recorded:?}, ours {ours:?}");
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_requests_get_comparable_answers_from_our_pcrf_and_ocs() {
    let started = Instant::now();
    let Some(dir) = traces_readable() else {
        return;
    };
    let all = tokio::task::spawn_blocking(move || extract_all(&dir))
        .await
        .expect("extraction task")
        .unwrap_or_else(|e| panic!("{e}"));
    let client_sent = |r: &&Recorded| CLIENT_COMMANDS.contains(&r.msg.header().command_code);
    let to_pcrf: Vec<&Recorded> = all
        .iter()
        .filter(|r| PCRF_APPLICATIONS.contains(&r.application()))
        .filter(client_sent)
        .collect();
    let to_ocs: Vec<&Recorded> = all
        .iter()
        .filter(|r| r.application() == DCCA)
        .filter(client_sent)
        .collect();
    assert!(
        !to_pcrf.is_empty() && !to_ocs.is_empty(),
        "no Gx or Gy CCR found"
    );

    // The PCRF: the demo plus the captures' subscribers with the demo's `internet` rule.
    let mut cfg = pcrf::config::Config::demo();
    cfg.node.listen = loopback();
    cfg.pcrf.admin = None;
    for ids in subscribers(&to_pcrf) {
        let profile: pcrf::spr::Profile =
            toml::from_str(&format!("{}rules = [\"internet\"]\n", identity_lines(&ids)))
                .expect("a profile");
        cfg.spr_data.subscribers.push(profile);
    }
    cfg.check().expect("the PCRF configuration is valid");
    let pcrf = pcrf::Pcrf::start(&cfg).await.expect("the PCRF starts");

    // The OCS: the demo plus an account per subscriber of the captures.
    let store = tempfile::tempdir().expect("a temporary directory");
    let mut cfg = ocs::config::Config::demo();
    cfg.node.listen = loopback();
    cfg.ocs.admin = None;
    cfg.store.path = store.path().join("ocs.redb");
    // The recorded OCS charged every rating group the captures use; the demo zero-rates
    // group 9 (answered 4011 DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE, RFC 4006 §9.1), so
    // here it is charged like the others.
    for rg in &mut cfg.rating_groups {
        rg.free = false;
    }
    for (n, ids) in subscribers(&to_ocs).into_iter().enumerate() {
        let account: ocs::config::AccountConfig = toml::from_str(&format!(
            "id = \"capture-{n}\"\n{}balance = {{ total-octets = 1000000000000, \
             time = 100000000, service-specific = 1000000 }}\n",
            identity_lines(&ids)
        ))
        .expect("an account");
        cfg.accounts.push(account);
    }
    let ocs = ocs::Ocs::start(&cfg).await.expect("the OCS starts");

    let (pcrf_answers, ocs_answers) = tokio::join!(
        replay_in_order(pcrf.listen_addrs()[0], &to_pcrf),
        replay_in_order(ocs.listen_addrs()[0], &to_ocs),
    );
    let mut problems = compare("PCRF", &to_pcrf, &pcrf_answers);
    problems.extend(compare("OCS", &to_ocs, &ocs_answers));
    pcrf.shutdown(Duration::from_secs(1)).await;
    ocs.shutdown(Duration::from_secs(1)).await;

    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let elapsed = started.elapsed();
    println!(
        "{} Gx and Rx requests to the PCRF, {} Gy requests to the OCS, in {elapsed:?}",
        to_pcrf.len(),
        to_ocs.len()
    );
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}
