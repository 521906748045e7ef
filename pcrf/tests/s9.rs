//! The home PCRF's S9 side (TS 29.215) on loopback, with diameter-node clients playing the
//! V-PCRF: an S9 session with two subsessions and the decisions for each, checked AVP by
//! AVP; modification, termination of one subsession then of the session; S9 RAR pushes
//! reaching the V-PCRF; a home AF's Rx session bound to a roaming UE's subsession (its
//! rules by S9 RAR); S9 refused to non-partners; a restarted V-PCRF's sessions cleared;
//! TER; the S9 metrics.

mod common;
#[path = "../../tests/interop/harness.rs"]
mod harness;

use common::*;
use diameter_codec::dict::{base, dcca, gx, nasreq, roaming, s9, ts29229};
use diameter_codec::{AvpRef, Message, MessageBuilder, OwnedAvp, ResultCode};
use diameter_node::node::Node;
use pcrf::rx::rule_name;
use pcrf::{Config, Pcrf, PolicyChange};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// S9.
const S9: u32 = 16_777_267;
/// The partner's realm in the demo configuration (`[[pcrf.roaming_partner]]`).
const VISITED: &str = "visited.test";
/// The V-PCRF the demo configuration accepts.
const VPCRF: &str = "pcrf.visited.test";

/// The demo home PCRF on a free port, with a secondary OCS too, and Origin-Host `host`.
async fn home_pcrf(host: &str) -> Pcrf {
    home_pcrf_capturing(host, None).await
}

/// As [`home_pcrf`], writing its traffic to `capture`.
async fn home_pcrf_capturing(host: &str, capture: Option<std::path::PathBuf>) -> Pcrf {
    let mut cfg = Config::demo();
    cfg.node.capture = capture;
    cfg.node.origin_host = host.to_string();
    cfg.node.listen = diameter_service::tcp_listen("127.0.0.1:0".parse().unwrap());
    cfg.pcrf.admin = None;
    cfg.pcrf.charging.secondary_ocs = Some("aaa://ocs2.home.test:3870;transport=tcp".into());
    Pcrf::start(&cfg).await.unwrap()
}

/// How the V-PCRF answers S9 RARs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum VReply {
    /// 2001.
    Success,
    /// 2001, with Subsession-Enforcement-Info refusing this subsession's rules
    /// (Experimental-Result-Code 5142 DIAMETER_PCC_RULE_EVENT and a Charging-Rule-Report:
    /// INACTIVE, Rule-Failure-Code 10 for every rule it was given).
    RefuseSubsession(u32),
    /// 5002: the V-PCRF no longer knows the S9 session.
    UnknownSession,
}

/// A V-PCRF: an S9 client node connected to the home PCRF, keeping the requests it got
/// (RAR, TER).
struct Vpcrf {
    node: Node,
    host: String,
    realm: String,
    requests: Arc<Mutex<Vec<Message>>>,
}

impl Vpcrf {
    async fn connect(
        host: &str,
        realm: &str,
        pcrf_host: &str,
        addr: SocketAddr,
        osi: Option<u32>,
        reply: VReply,
    ) -> Self {
        let mut cfg = client_config(host, realm, S9, pcrf_host, HOME, addr);
        if let Some(o) = osi {
            cfg.local.origin_state_id = o;
        }
        let node = Node::start(cfg).await.unwrap();
        let requests = keep_requests(&node, S9, move |req| async move {
            match reply {
                VReply::Success => req.answer(ResultCode::DIAMETER_SUCCESS),
                VReply::UnknownSession => req.answer(ResultCode(5002)),
                VReply::RefuseSubsession(n) => {
                    let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
                    let mut v = vec![
                        s9::SUBSESSION_ID.with(n),
                        base::EXPERIMENTAL_RESULT_CODE.with(5142u32),
                    ];
                    for sdi in decision_infos(&req.msg) {
                        if u32_of(&child(&sdi, 2202).unwrap()) != n {
                            continue;
                        }
                        for name in rule_names_in(&sdi) {
                            v.push(gx::CHARGING_RULE_REPORT.with(vec![
                                gx::CHARGING_RULE_NAME.with(bytes::Bytes::from(name)),
                                gx::PCC_RULE_STATUS.with(gx::PccRuleStatus(1)),
                                gx::RULE_FAILURE_CODE.with(gx::RuleFailureCode(10)),
                            ]));
                        }
                    }
                    a.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(v));
                    a
                }
            }
        });
        assert!(
            node.wait_peer(pcrf_host, T).await,
            "PCRF at {addr} not open"
        );
        Self {
            node,
            host: host.to_string(),
            realm: realm.to_string(),
            requests,
        }
    }

    /// An S9 CCR (TS 29.215 §5.6.2): `kind` 1 initial, 2 update, 3 termination.
    fn ccr(
        &self,
        session: &str,
        kind: i32,
        number: u32,
        subsessions: Vec<OwnedAvp>,
    ) -> MessageBuilder {
        let mut b = MessageBuilder::request(272, S9, true);
        b.push(base::SESSION_ID.with(session.to_string()));
        b.push(base::AUTH_APPLICATION_ID.with(S9));
        b.push(base::ORIGIN_HOST.with(self.host.clone()));
        b.push(base::ORIGIN_REALM.with(self.realm.clone()));
        b.push(base::DESTINATION_REALM.with(HOME));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
        b.push(dcca::CC_REQUEST_NUMBER.with(number));
        if kind == 1 {
            b.push(dcca::SUBSCRIPTION_ID.with(vec![
                dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
                dcca::SUBSCRIPTION_ID_DATA.with(IMSI_1.to_string()),
            ]));
        }
        for s in subsessions {
            b.push(s);
        }
        b
    }

    async fn send(&self, req: MessageBuilder) -> Message {
        self.node.request(req).await.expect("answer")
    }

    /// Waits for the `n`th request from the PCRF (1-based).
    async fn nth_request(&self, n: usize) -> Message {
        let end = Instant::now() + T;
        loop {
            if let Some(m) = self.requests.lock().unwrap().get(n - 1) {
                return m.clone();
            }
            assert!(Instant::now() < end, "no request number {n} from the PCRF");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Subsession-Enforcement-Info (TS 29.215 §5.3.2) establishing subsession `id`: a Gx
/// subsession of UE address `ip` on `apn` over E-UTRAN, asking APN-AMBR 80/200 Mbit/s.
fn establish(id: u32, ip: [u8; 4], apn: &str) -> OwnedAvp {
    s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
        s9::SUBSESSION_ID.with(id),
        s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation::ESTABLISHMENT),
        gx::QOS_INFORMATION.with(vec![
            gx::APN_AGGREGATE_MAX_BITRATE_UL.with(80_000_000u32),
            gx::APN_AGGREGATE_MAX_BITRATE_DL.with(200_000_000u32),
        ]),
        nasreq::FRAMED_IP_ADDRESS.with(bytes::Bytes::copy_from_slice(&ip)),
        nasreq::CALLED_STATION_ID.with(apn.to_string()),
        gx::RAT_TYPE.with(gx::RatType(1004)),
    ])
}

/// Subsession-Enforcement-Info with operation `op` for subsession `id`, and `more`.
fn enforcement(id: u32, op: s9::SubsessionOperation, more: Vec<OwnedAvp>) -> OwnedAvp {
    let mut v = vec![
        s9::SUBSESSION_ID.with(id),
        s9::SUBSESSION_OPERATION.with(op),
    ];
    v.extend(more);
    s9::SUBSESSION_ENFORCEMENT_INFO.with(v)
}

/// The Subsession-Decision-Infos of a message.
fn decision_infos(m: &Message) -> Vec<AvpRef<'_>> {
    all(m.avps().flatten(), 2200)
}

/// The Subsession-Decision-Info of subsession `id`.
fn decision_of(m: &Message, id: u32) -> AvpRef<'_> {
    decision_infos(m)
        .into_iter()
        .find(|d| child(d, 2202).is_some_and(|s| u32_of(&s) == id))
        .unwrap_or_else(|| panic!("no Subsession-Decision-Info for subsession {id}"))
}

/// The Charging-Rule-Names of the Charging-Rule-Definitions in a group's
/// Charging-Rule-Install, then its Charging-Rule-Names (predefined).
fn rule_names_in(g: &AvpRef<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for cri in all(g.children().flatten(), 1001) {
        for d in all(cri.children().flatten(), 1003) {
            out.push(String::from_utf8_lossy(child(&d, 1005).unwrap().data).into_owned());
        }
    }
    out
}

/// Predefined rule names (Charging-Rule-Name directly in Charging-Rule-Install).
fn predefined_in(g: &AvpRef<'_>) -> Vec<String> {
    all(g.children().flatten(), 1001)
        .iter()
        .flat_map(|cri| all(cri.children().flatten(), 1005))
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
        .collect()
}

/// Charging-Rule-Names in a group's Charging-Rule-Remove.
fn removed_in(g: &AvpRef<'_>) -> Vec<String> {
    all(g.children().flatten(), 1002)
        .iter()
        .flat_map(|r| all(r.children().flatten(), 1005))
        .map(|n| String::from_utf8_lossy(n.data).into_owned())
        .collect()
}

/// Event-Trigger values in a group.
fn triggers_in(g: &AvpRef<'_>) -> Vec<u32> {
    all(g.children().flatten(), 1006)
        .iter()
        .map(u32_of)
        .collect()
}

fn str_of(a: &AvpRef<'_>) -> String {
    String::from_utf8_lossy(a.data).into_owned()
}

#[tokio::test]
async fn an_s9_session_with_two_subsessions_lives_and_ends() {
    let p = home_pcrf(PCRF_HOST).await;
    let v = Vpcrf::connect(
        VPCRF,
        VISITED,
        PCRF_HOST,
        p.listen_addrs()[0],
        None,
        VReply::Success,
    )
    .await;
    let sid = "pcrf.visited.test;s9;1";
    let a = v
        .send(v.ccr(
            sid,
            1,
            0,
            vec![
                establish(1, [10, 46, 0, 2], "internet"),
                establish(2, [10, 46, 0, 3], "ims"),
            ],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    assert_eq!(a.header().application_id, S9);
    // TS 29.215 §5.6.3: the home OCS at command level, Charging-Information with both.
    let ci = a
        .find(ts29229::CHARGING_INFORMATION.key())
        .expect("Charging-Information");
    assert_eq!(
        str_of(&child(&ci, 618 + 1).unwrap()),
        "aaa://ocs.home.test:3870;transport=tcp"
    );
    assert_eq!(
        str_of(&child(&ci, 620).unwrap()),
        "aaa://ocs2.home.test:3870;transport=tcp"
    );
    assert_eq!(decision_infos(&a).len(), 2);
    for id in [1, 2] {
        let d = decision_of(&a, id);
        // Member order: Subsession-Id first (TS 29.215 §5.3.1 {Subsession-Id}).
        assert_eq!(d.children().flatten().next().unwrap().code, 2202);
        // The subscriber's PCC rules (SPR): dynamic `internet` with its flow, QoS,
        // rating group and precedence; predefined `local-dns`.
        assert_eq!(rule_names_in(&d), ["internet"]);
        assert_eq!(predefined_in(&d), ["local-dns"]);
        let def = all(d.children().flatten(), 1001)
            .iter()
            .flat_map(|c| all(c.children().flatten(), 1003))
            .next()
            .unwrap();
        assert_eq!(u32_of(&child(&def, 432).unwrap()), 10, "Rating-Group");
        assert_eq!(u32_of(&child(&def, 1010).unwrap()), 1000, "Precedence");
        let fi = child(&def, 1058).expect("Flow-Information");
        assert_eq!(
            str_of(&child(&fi, 507).unwrap()),
            "permit out ip from any to any"
        );
        let q = child(&def, 1016).expect("rule QoS-Information");
        assert_eq!(u32_of(&child(&q, 1028).unwrap()), 9, "QCI");
        // Event triggers: the policies' RAT_CHANGE (2) and the profile's
        // USER_LOCATION_CHANGE (13).
        assert_eq!(triggers_in(&d), [2, 13]);
        // Online on, offline off (TS 29.212 §5.3.10, §5.3.9).
        assert_eq!(u32_of(&child(&d, 1009).unwrap()), 1);
        assert_eq!(u32_of(&child(&d, 1008).unwrap()), 0);
        // APN-AMBR: subscribed 50/100 Mbit/s, under the 80/200 asked.
        let q = child(&d, 1016).expect("QoS-Information");
        assert_eq!(u32_of(&child(&q, 1041).unwrap()), 50_000_000);
        assert_eq!(u32_of(&child(&q, 1040).unwrap()), 100_000_000);
        let deb = child(&d, 1049).expect("Default-EPS-Bearer-QoS");
        assert_eq!(u32_of(&child(&deb, 1028).unwrap()), 9);
        // Our Home-OCS-Identity (vendor 32473, M clear) with both OCS identities.
        let h = d
            .children()
            .flatten()
            .find(|c| c.key() == roaming::HOME_OCS_IDENTITY.key())
            .expect("Home-OCS-Identity");
        assert_eq!(str_of(&child(&h, 9).unwrap()), "ocs.home.test");
        assert_eq!(str_of(&child(&h, 10).unwrap()), "ocs2.home.test");
    }
    let s = p.s9_session(sid).await.unwrap().unwrap();
    assert_eq!(
        (s.vpcrf_host.as_str(), s.subscriber.as_str()),
        (VPCRF, "imsi:001010000000001")
    );
    let subs: Vec<u32> = s.subsessions.keys().copied().collect();
    assert_eq!(subs, [1, 2]);
    assert_eq!(s.subsessions[&2].policy.apn.as_deref(), Some("ims"));

    // Modification (TS 29.215 §4.5.2): subsession 1 hands over to UTRAN; the RAT policy
    // swaps its rules. Subsession 2 is not touched and gets no decision.
    let a = v
        .send(v.ccr(
            sid,
            2,
            1,
            vec![enforcement(
                1,
                s9::SubsessionOperation::MODIFICATION,
                vec![
                    gx::RAT_TYPE.with(gx::RatType(1000)),
                    gx::EVENT_TRIGGER.with(gx::EventTrigger(2)),
                ],
            )],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    assert_eq!(decision_infos(&a).len(), 1);
    let d = decision_of(&a, 1);
    assert_eq!(removed_in(&d), ["internet"]);
    assert_eq!(rule_names_in(&d), ["internet-3g"]);
    let s = p.s9_session(sid).await.unwrap().unwrap();
    let one: Vec<&str> = s.subsessions[&1]
        .policy
        .dynamic_rules
        .keys()
        .map(String::as_str)
        .collect();
    let two: Vec<&str> = s.subsessions[&2]
        .policy
        .dynamic_rules
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!((one, two), (vec!["internet-3g"], vec!["internet"]));
    assert_eq!(s.subsessions[&1].policy.rat_type, Some(1000));

    // A subsession the session does not have: DIAMETER_ERROR_SUBSESSION for it, and at
    // command level since it was all the request named.
    let a = v
        .send(v.ccr(
            sid,
            2,
            2,
            vec![enforcement(
                9,
                s9::SubsessionOperation::MODIFICATION,
                vec![],
            )],
        ))
        .await;
    assert_eq!(experimental(&a), Some(5470));
    let d = decision_of(&a, 9);
    assert_eq!(u32_of(&child(&d, 298).unwrap()), 5470);
    // Establishing an id already in use is refused the same way.
    let a = v
        .send(v.ccr(sid, 2, 3, vec![establish(2, [10, 46, 0, 9], "internet")]))
        .await;
    assert_eq!(experimental(&a), Some(5470));

    // Subsession 1 ends (CCR-U, Subsession-Operation TERMINATION, with our
    // DRA-Client-Session-Id naming the visited PCEF's Gx session): the S9 session stays.
    let a = v
        .send(v.ccr(
            sid,
            2,
            4,
            vec![enforcement(
                1,
                s9::SubsessionOperation::TERMINATION,
                vec![roaming::DRA_CLIENT_SESSION_ID.with("pgw.visited.test;gx;1")],
            )],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    assert!(decision_infos(&a).is_empty());
    let s = p.s9_session(sid).await.unwrap().unwrap();
    assert_eq!(s.subsessions.keys().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(s.last_request_number, 4);
    // The last one ends with the S9 session (CCR-T, document 002 embodiment 10).
    let a = v
        .send(v.ccr(
            sid,
            3,
            5,
            vec![enforcement(2, s9::SubsessionOperation::TERMINATION, vec![])],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    assert!(p.s9_session(sid).await.unwrap().is_none());
    assert_eq!(p.s9_sessions().count().await.unwrap(), 0);
    // RFC 6733 §7.1.5: a request on the ended session.
    let a = v
        .send(v.ccr(
            sid,
            2,
            6,
            vec![enforcement(
                2,
                s9::SubsessionOperation::MODIFICATION,
                vec![],
            )],
        ))
        .await;
    assert_eq!(rc(&a), Some(5002));
}

#[tokio::test]
async fn pushes_reach_the_v_pcrf_by_s9_rar() {
    let p = home_pcrf(PCRF_HOST).await;
    let v = Vpcrf::connect(
        VPCRF,
        VISITED,
        PCRF_HOST,
        p.listen_addrs()[0],
        None,
        VReply::RefuseSubsession(1),
    )
    .await;
    let sid = "pcrf.visited.test;s9;push";
    let a = v
        .send(v.ccr(
            sid,
            1,
            0,
            vec![
                establish(1, [10, 46, 1, 2], "internet"),
                establish(2, [10, 46, 1, 3], "internet"),
            ],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    // The operator pushes `video` to subsession 2 only.
    let video = install("video");
    let out = p.push_s9(sid, Some(2), &video).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].subsession, out[0].result_code, out[0].installed),
        (Some(2), 2001, 1)
    );
    let rar = v.nth_request(1).await;
    strictly_valid(&rar);
    // TS 29.215 §5.6.4: on the S9 session, to the V-PCRF that opened it, AUTHORIZE_ONLY.
    assert_eq!(rar.header().command_code, 258);
    assert_eq!(rar.header().application_id, S9);
    assert_eq!(rar.session_id(), Some(sid));
    assert_eq!(
        str_of(&rar.find(base::DESTINATION_HOST.key()).unwrap()),
        VPCRF
    );
    assert_eq!(
        str_of(&rar.find(base::DESTINATION_REALM.key()).unwrap()),
        VISITED
    );
    assert_eq!(
        u32_of(&rar.find(base::RE_AUTH_REQUEST_TYPE.key()).unwrap()),
        0
    );
    assert_eq!(decision_infos(&rar).len(), 1);
    let d = decision_of(&rar, 2);
    assert_eq!(rule_names_in(&d), ["video"]);
    // Online/Offline are not sent in a RAR.
    assert!(child(&d, 1009).is_none());
    let s = p.s9_session(sid).await.unwrap().unwrap();
    assert!(s.subsessions[&2].policy.dynamic_rules.contains_key("video"));
    assert!(!s.subsessions[&1].policy.dynamic_rules.contains_key("video"));

    // To the whole subscriber: both subsessions in one RAR; the V-PCRF refuses subsession
    // 1's rule (Experimental-Result-Code 5142 with a Charging-Rule-Report), which is
    // recorded as a failure and not installed; subsession 2 takes it.
    let voice = install("voice");
    let out = p.push_subscriber(IMSI_1, &voice).await.unwrap();
    assert_eq!(out.len(), 2);
    let by: Vec<(Option<u32>, u32, usize)> = out
        .iter()
        .map(|o| (o.subsession, o.result_code, o.installed))
        .collect();
    assert_eq!(by, [(Some(1), 5142, 0), (Some(2), 2001, 1)]);
    assert_eq!(out[0].failures[0].name, "voice");
    assert_eq!(out[0].failures[0].failure_code, Some(10));
    let rar = v.nth_request(2).await;
    let mut ids: Vec<u32> = decision_infos(&rar)
        .iter()
        .map(|d| u32_of(&child(d, 2202).unwrap()))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    let s = p.s9_session(sid).await.unwrap().unwrap();
    assert!(!s.subsessions[&1].policy.dynamic_rules.contains_key("voice"));
    assert_eq!(s.subsessions[&1].policy.failures[0].name, "voice");
    assert!(s.subsessions[&2].policy.dynamic_rules.contains_key("voice"));
    // A subsession the session lacks, and an unknown rule: refused before any RAR.
    assert!(p.push_s9(sid, Some(7), &video).await.is_err());
    assert!(p.push_s9(sid, None, &install("nope")).await.is_err());
    assert_eq!(v.requests.lock().unwrap().len(), 2);

    // The operator endpoint: the S9 session as JSON, and a push to subsession 2 over HTTP.
    let p = Arc::new(p);
    let (addr, task) = pcrf::admin::serve(p.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let body = http(addr, "GET", "/s9-sessions").await;
    assert!(body.contains(sid), "{body}");
    let body = http(addr, "GET", "/s9-sessions/pcrf.visited.test%3Bs9%3Bpush").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("\"vpcrf_host\":\"pcrf.visited.test\""),
        "{body}"
    );
    let body = http(
        addr,
        "POST",
        "/s9-sessions/pcrf.visited.test%3Bs9%3Bpush/rar?subsession=2&rating_group=77",
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"subsession\":2"), "{body}");
    let rar = v.nth_request(3).await;
    let d = decision_of(&rar, 2);
    let rgs: Vec<u32> = all(d.children().flatten(), 1001)
        .iter()
        .flat_map(|c| all(c.children().flatten(), 1003))
        .map(|def| u32_of(&child(&def, 432).unwrap()))
        .collect();
    assert!(!rgs.is_empty() && rgs.iter().all(|&r| r == 77), "{rgs:?}");
    // Ending subsession 1, then the whole session (Session-Release-Cause 1
    // UE_SUBSCRIPTION_REASON), both answered by the V-PCRF.
    let body = http(
        addr,
        "POST",
        "/s9-sessions/pcrf.visited.test%3Bs9%3Bpush/release?subsession=1&cause=1",
    )
    .await;
    assert!(body.contains("\"result_code\":2001"), "{body}");
    let rar = v.nth_request(4).await;
    strictly_valid(&rar);
    let d = decision_of(&rar, 1);
    assert_eq!(
        u32_of(&child(&d, 1045).unwrap()),
        1,
        "Session-Release-Cause"
    );
    assert!(rar.find(gx::SESSION_RELEASE_CAUSE.key()).is_none());
    assert_eq!(p.release_s9(sid, None, 0).await.unwrap(), 2001);
    let rar = v.nth_request(5).await;
    assert_eq!(
        u32_of(&rar.find(gx::SESSION_RELEASE_CAUSE.key()).unwrap()),
        0
    );
    assert!(decision_infos(&rar).is_empty());
    let body = http(addr, "POST", "/s9-sessions/none/rar?install=video").await;
    assert!(body.starts_with("HTTP/1.1 404"), "{body}");
    let body = http(addr, "POST", "/s9-sessions/x/rar?subsession=z").await;
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    task.abort();
}

#[tokio::test]
async fn an_s9_session_the_v_pcrf_lost_is_forgotten_on_push() {
    let p = home_pcrf(PCRF_HOST).await;
    let v = Vpcrf::connect(
        VPCRF,
        VISITED,
        PCRF_HOST,
        p.listen_addrs()[0],
        None,
        VReply::UnknownSession,
    )
    .await;
    let sid = "pcrf.visited.test;s9;lost";
    let a = v
        .send(v.ccr(sid, 1, 0, vec![establish(1, [10, 46, 2, 2], "internet")]))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let out = p
        .push_s9(
            sid,
            None,
            &PolicyChange {
                remove: vec!["internet".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((out[0].result_code, out[0].removed), (5002, 0));
    assert!(p.s9_session(sid).await.unwrap().is_none());
}

#[tokio::test]
async fn a_home_af_binds_to_a_roaming_subsession_and_its_rules_go_by_s9_rar() {
    let p = home_pcrf(PCRF_HOST).await;
    let addr = p.listen_addrs()[0];
    let v = Vpcrf::connect(VPCRF, VISITED, PCRF_HOST, addr, None, VReply::Success).await;
    let sid = "pcrf.visited.test;s9;rx";
    let a = v
        .send(v.ccr(
            sid,
            1,
            0,
            vec![
                establish(1, [10, 45, 0, 2], "internet"),
                establish(2, [10, 46, 3, 3], "ims"),
            ],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    // No Gx session at home for 10.45.0.2: the AF session binds to subsession 1
    // (TS 29.213 §4.2 by UE address), its PCC rule goes to the V-PCRF by S9 RAR.
    let af = Af::connect("pcscf.ims.test", addr, AfReply::Success).await;
    let af_sid = "pcscf.ims.test;roaming-call";
    let aaa = af
        .send(af.aar(af_sid, [10, 45, 0, 2], vec![audio_component(1)], &[2]))
        .await;
    assert_eq!(rc(&aaa), Some(2001));
    let rar = v.nth_request(1).await;
    strictly_valid(&rar);
    assert_eq!(rar.session_id(), Some(sid));
    let d = decision_of(&rar, 1);
    assert_eq!(rule_names_in(&d), [rule_name(af_sid, 1)]);
    // INDICATION_OF_LOSS_OF_BEARER subscribed: the subsession subscribes to the bearer
    // events that report it (TS 29.213 §5.1), in the same decision.
    assert!(!triggers_in(&d).is_empty());
    let rx = p.rx_session(af_sid).await.unwrap().unwrap();
    assert_eq!(
        rx.gx_session.as_deref(),
        Some(pcrf::s9::subsession_key(sid, 1).as_str())
    );
    let s = p.s9_session(sid).await.unwrap().unwrap();
    assert!(
        s.subsessions[&1]
            .policy
            .dynamic_rules
            .contains_key(&rule_name(af_sid, 1))
    );
    // STR: removed from the subsession, by S9 RAR.
    assert_eq!(rc(&af.send(af.str_(af_sid)).await), Some(2001));
    let rar = v.nth_request(2).await;
    assert_eq!(removed_in(&decision_of(&rar, 1)), [rule_name(af_sid, 1)]);
    // A new AF session subscribed to IP-CAN_CHANGE (6) and INDICATION_OF_LOSS_OF_BEARER
    // (2). Subsession 1 hands over to UTRAN: the AF hears of it with the new RAT-Type
    // (TS 29.214 §4.4.6.x); then subsession 1 ends at the visited network: the AF hears of
    // the loss of its bearer (document 002 steps 914–918) by Rx RAR.
    let af_sid2 = "pcscf.ims.test;roaming-call-2";
    assert_eq!(
        rc(&af
            .send(af.aar(af_sid2, [10, 45, 0, 2], vec![audio_component(1)], &[2, 6]))
            .await),
        Some(2001)
    );
    let a = v
        .send(v.ccr(
            sid,
            2,
            1,
            vec![enforcement(
                1,
                s9::SubsessionOperation::MODIFICATION,
                vec![
                    gx::RAT_TYPE.with(gx::RatType(1000)),
                    gx::EVENT_TRIGGER.with(gx::EventTrigger(2)),
                ],
            )],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let told = af.nth_request(1).await;
    assert_eq!(told.session_id(), Some(af_sid2));
    assert_eq!(
        all(told.avps().flatten(), 513)
            .iter()
            .map(u32_of)
            .collect::<Vec<_>>(),
        [6],
        "IP-CAN_CHANGE"
    );
    assert_eq!(u32_of(&told.find(gx::RAT_TYPE.key()).unwrap()), 1000);
    let a = v
        .send(v.ccr(
            sid,
            2,
            2,
            vec![enforcement(1, s9::SubsessionOperation::TERMINATION, vec![])],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    let told = af.nth_request(2).await;
    assert_eq!(told.session_id(), Some(af_sid2));
    assert_eq!(told.header().command_code, 258);
    assert_eq!(
        all(told.avps().flatten(), 513)
            .iter()
            .map(u32_of)
            .collect::<Vec<_>>(),
        [2],
        "INDICATION_OF_LOSS_OF_BEARER"
    );
    // An address no session has: IP-CAN_SESSION_NOT_AVAILABLE as before.
    let aaa = af
        .send(af.aar(
            "pcscf.ims.test;nowhere",
            [10, 99, 0, 1],
            vec![audio_component(1)],
            &[],
        ))
        .await;
    assert_eq!(experimental(&aaa), Some(5065));
}

#[tokio::test]
async fn s9_features_are_agreed_at_establishment() {
    // TS 29.215 §5.4.1, TS 29.229 §7.2.1: the CCA-I names, per Feature-List-ID of 3GPP's the
    // V-PCRF sent, the features both support (the H-PCRF's defaults: list 1, Rel8 and Rel9);
    // a CCR-I without Supported-Features gets none back.
    let p = home_pcrf(PCRF_HOST).await;
    let v = Vpcrf::connect(
        VPCRF,
        VISITED,
        PCRF_HOST,
        p.listen_addrs()[0],
        None,
        VReply::Success,
    )
    .await;
    let mut with = v.ccr(
        "pcrf.visited.test;s9;features",
        1,
        0,
        vec![establish(1, [10, 46, 0, 9], "internet")],
    );
    for (list_id, list) in [(1u32, 0b101u32), (7, 0b1)] {
        with.push(ts29229::SUPPORTED_FEATURES.with(vec![
            base::VENDOR_ID.with(10415u32),
            ts29229::FEATURE_LIST_ID.with(list_id),
            ts29229::FEATURE_LIST.with(list),
        ]));
    }
    let a = v.send(with).await;
    assert_eq!(rc(&a), Some(2001));
    strictly_valid(&a);
    let agreed: Vec<(u32, u32, u32)> = all(a.avps().flatten(), 628)
        .iter()
        .map(|f| {
            (
                u32_of(&child(f, 266).unwrap()),
                u32_of(&child(f, 629).unwrap()),
                u32_of(&child(f, 630).unwrap()),
            )
        })
        .collect();
    assert_eq!(
        agreed,
        [(10415, 1, 0b1)],
        "Rel8 only: bit 2 is not ours, list 7 unknown"
    );
    let a = v
        .send(v.ccr(
            "pcrf.visited.test;s9;no-features",
            1,
            0,
            vec![establish(1, [10, 46, 0, 10], "internet")],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    assert!(all(a.avps().flatten(), 628).is_empty());
    for sid in [
        "pcrf.visited.test;s9;features",
        "pcrf.visited.test;s9;no-features",
    ] {
        assert_eq!(rc(&v.send(v.ccr(sid, 3, 1, vec![])).await), Some(2001));
    }
}

#[tokio::test]
async fn s9_from_outside_the_roaming_partners_is_refused() {
    let p = home_pcrf(PCRF_HOST).await;
    let addr = p.listen_addrs()[0];
    // A realm with no roaming agreement.
    let stranger = Vpcrf::connect(
        "pcrf.other.test",
        "other.test",
        PCRF_HOST,
        addr,
        None,
        VReply::Success,
    )
    .await;
    let a = stranger
        .send(stranger.ccr(
            "pcrf.other.test;1",
            1,
            0,
            vec![establish(1, [10, 47, 0, 1], "internet")],
        ))
        .await;
    assert_eq!(rc(&a), Some(5003));
    assert!(!a.header().flags.is_error(), "5003 is not a protocol error");
    let msg = str_of(&a.find(base::ERROR_MESSAGE.key()).unwrap());
    assert!(
        msg.contains("other.test") && msg.contains("not a roaming partner"),
        "{msg}"
    );
    assert!(decision_infos(&a).is_empty());
    // The partner's realm, from a peer the agreement does not list.
    let rogue = Vpcrf::connect(
        "rogue.visited.test",
        VISITED,
        PCRF_HOST,
        addr,
        None,
        VReply::Success,
    )
    .await;
    let a = rogue
        .send(rogue.ccr(
            "rogue.visited.test;1",
            1,
            0,
            vec![establish(1, [10, 47, 0, 2], "internet")],
        ))
        .await;
    assert_eq!(rc(&a), Some(5003));
    let msg = str_of(&a.find(base::ERROR_MESSAGE.key()).unwrap());
    assert!(msg.contains("rogue.visited.test"), "{msg}");
    // Nothing kept for either.
    assert_eq!(p.s9_sessions().count().await.unwrap(), 0);
    // The partner itself is served.
    let v = Vpcrf::connect(VPCRF, VISITED, PCRF_HOST, addr, None, VReply::Success).await;
    let a = v
        .send(v.ccr(
            "pcrf.visited.test;ok",
            1,
            0,
            vec![establish(1, [10, 47, 0, 3], "internet")],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
}

#[tokio::test]
async fn a_restarted_v_pcrf_loses_its_s9_sessions() {
    let p = home_pcrf(PCRF_HOST).await;
    let addr = p.listen_addrs()[0];
    let v = Vpcrf::connect(VPCRF, VISITED, PCRF_HOST, addr, Some(100), VReply::Success).await;
    // RFC 6733 §8.16 in the CCRs: a new Origin-State-Id ends the older sessions before the
    // new CCR is handled (a V-PCRF behind a DRA restarts without a peer event of ours).
    let with_osi = |sid: &str, osi: u32, ip: [u8; 4]| {
        let mut b = v.ccr(sid, 1, 0, vec![establish(1, ip, "internet")]);
        b.push(base::ORIGIN_STATE_ID.with(osi));
        b
    };
    assert_eq!(
        rc(&v.send(with_osi("v;old;1", 7, [10, 48, 0, 1])).await),
        Some(2001)
    );
    assert_eq!(
        rc(&v.send(with_osi("v;old;2", 7, [10, 48, 0, 2])).await),
        Some(2001)
    );
    assert_eq!(p.s9_sessions().count().await.unwrap(), 2);
    assert_eq!(
        rc(&v.send(with_osi("v;new;1", 8, [10, 48, 0, 3])).await),
        Some(2001)
    );
    assert!(p.s9_session("v;old;1").await.unwrap().is_none());
    assert!(p.s9_session("v;old;2").await.unwrap().is_none());
    assert!(p.s9_session("v;new;1").await.unwrap().is_some());
    // Through the peer's CER (a directly connected V-PCRF): back with another
    // Origin-State-Id, its sessions go.
    v.node.shutdown(Duration::from_secs(1)).await;
    drop(v);
    let _v2 = Vpcrf::connect(VPCRF, VISITED, PCRF_HOST, addr, Some(101), VReply::Success).await;
    let end = Instant::now() + T;
    while p.s9_sessions().count().await.unwrap() != 0 {
        assert!(
            Instant::now() < end,
            "the restarted V-PCRF's S9 sessions stayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ter_asks_the_v_pcrf_to_establish_s9() {
    let p = home_pcrf(PCRF_HOST).await;
    let v = Vpcrf::connect(
        VPCRF,
        VISITED,
        PCRF_HOST,
        p.listen_addrs()[0],
        None,
        VReply::Success,
    )
    .await;
    let rc = p
        .trigger_establishment(VPCRF, VISITED, IMSI_1, Some("internet"), false)
        .await
        .unwrap();
    assert_eq!(rc, 2001);
    let ter = v.nth_request(1).await;
    strictly_valid(&ter);
    assert_eq!(ter.header().command_code, 8_388_656);
    assert_eq!(ter.header().application_id, S9);
    let sub = ter.find(dcca::SUBSCRIPTION_ID.key()).unwrap();
    assert_eq!(str_of(&child(&sub, 444).unwrap()), IMSI_1);
    assert_eq!(
        str_of(&ter.find(nasreq::CALLED_STATION_ID.key()).unwrap()),
        "internet"
    );
    assert!(ter.find(s9::DRA_BINDING.key()).is_none());
    // DRA-Binding = DRA_BINDING_DELETION (TS 29.215 §5.3.x) when asked.
    assert_eq!(
        p.trigger_establishment(VPCRF, VISITED, IMSI_1, None, true)
            .await
            .unwrap(),
        2001
    );
    let ter = v.nth_request(2).await;
    assert_eq!(u32_of(&ter.find(s9::DRA_BINDING.key()).unwrap()), 0);
}

#[tokio::test]
async fn s9_series_count_sessions_and_ccrs() {
    let rec = diameter_node::metrics::recorder();
    let handle = rec.handle();
    // This test binary's only recorder: other tests' series carry another node label.
    metrics::set_global_recorder(rec).expect("no recorder yet");
    let host = "pcrf-metrics.home.test";
    let p = home_pcrf(host).await;
    let addr = p.listen_addrs()[0];
    let v = Vpcrf::connect(VPCRF, VISITED, host, addr, None, VReply::Success).await;
    for (i, sid) in ["m;1", "m;2"].into_iter().enumerate() {
        let a = v
            .send(v.ccr(
                sid,
                1,
                0,
                vec![establish(1, [10, 49, 0, i as u8 + 1], "internet")],
            ))
            .await;
        assert_eq!(rc(&a), Some(2001));
    }
    assert_eq!(rc(&v.send(v.ccr("m;2", 3, 1, vec![])).await), Some(2001));
    let stranger = Vpcrf::connect(
        "pcrf.other.test",
        "other.test",
        host,
        addr,
        None,
        VReply::Success,
    )
    .await;
    assert_eq!(
        rc(&stranger.send(stranger.ccr("o;1", 1, 0, vec![])).await),
        Some(5003)
    );
    p.push_s9(
        "m;1",
        None,
        &PolicyChange {
            rating_group: Some(20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let text = handle.render();
    for want in [
        "pcrf_s9_sessions{node=\"pcrf-metrics.home.test\"} 1",
        "pcrf_s9_ccr_total{node=\"pcrf-metrics.home.test\",type=\"initial\",result_code=\"2001\"} 2",
        "pcrf_s9_ccr_total{node=\"pcrf-metrics.home.test\",type=\"termination\",result_code=\"2001\"} 1",
        "pcrf_s9_ccr_total{node=\"pcrf-metrics.home.test\",type=\"refused\",result_code=\"5003\"} 1",
        "pcrf_s9_rar_total{node=\"pcrf-metrics.home.test\",result_code=\"2001\"} 1",
        "pcrf_s9_sessions_released_total{node=\"pcrf-metrics.home.test\",reason=\"termination\"} 1",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
}

/// Wireshark's dissector (an implementation nobody here wrote) reads the S9 traffic as we
/// meant it: no malformed packet or expert error, the subsessions' ids, rules, rating
/// groups and the OCS where we put them.
#[tokio::test]
async fn wireshark_reads_the_s9_traffic() {
    if !harness::tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("s9.pcapng");
    let p = home_pcrf_capturing(PCRF_HOST, Some(capture.clone())).await;
    let v = Vpcrf::connect(
        VPCRF,
        VISITED,
        PCRF_HOST,
        p.listen_addrs()[0],
        None,
        VReply::Success,
    )
    .await;
    let sid = "pcrf.visited.test;s9;ws";
    let a = v
        .send(v.ccr(
            sid,
            1,
            0,
            vec![
                establish(1, [10, 50, 0, 1], "internet"),
                establish(2, [10, 50, 0, 2], "ims"),
            ],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    p.push_s9(sid, Some(2), &install("video")).await.unwrap();
    let a = v
        .send(v.ccr(
            sid,
            2,
            1,
            vec![enforcement(1, s9::SubsessionOperation::TERMINATION, vec![])],
        ))
        .await;
    assert_eq!(rc(&a), Some(2001));
    assert_eq!(rc(&v.send(v.ccr(sid, 3, 2, vec![])).await), Some(2001));
    p.shutdown(Duration::from_secs(1)).await;
    drop(p);
    harness::assert_dissects_cleanly(&capture);
    // CCA-I: both subsessions' decisions, the rule's rating group, the OCS.
    let cca = harness::tshark_fields(
        &capture,
        "diameter.Subsession-Decision-Info && diameter.flags.request == 0",
        &[
            "diameter.Subsession-Id",
            "diameter.Rating-Group",
            "diameter.Primary-Event-Charging-Function-Name",
        ],
    );
    assert!(
        cca.contains("1,2\t10,10\taaa://ocs.home.test:3870;transport=tcp"),
        "{cca}"
    );
    // The RAR: subsession 2, the video rule (rating group 20).
    let rar = harness::tshark_fields(
        &capture,
        "diameter.cmd.code == 258 && diameter.flags.request == 1",
        &[
            "diameter.Subsession-Id",
            "diameter.Rating-Group",
            "diameter.applicationId",
        ],
    );
    assert_eq!(rar.trim(), "2\t20\t16777267", "{rar}");
    // The V-PCRF's CCRs: the subsession operations ESTABLISHMENT twice, then TERMINATION.
    let ops = harness::tshark_fields(
        &capture,
        "diameter.Subsession-Operation",
        &["diameter.Subsession-Operation"],
    );
    assert_eq!(ops.lines().collect::<Vec<_>>(), ["1,1", "0"], "{ops}");
}
