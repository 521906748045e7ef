//! The home OCS alone, in-process, over loopback Gy: grants, consumption, credit limit,
//! unknown user, final-unit actions, retransmissions, out-of-order updates, Tcc expiry and
//! re-authorisation after a top-up.

mod common;

use common::*;
use diameter_codec::MessageBuilder;
use diameter_codec::dict::{base, dcca};
use diameter_node::node::handler_fn;
use ocs::Ocs;
use ocs::model::{RequestType, UnitKind};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test took longer than 30 s");
}

async fn start(dir: &tempfile::TempDir) -> (Ocs, Pcef) {
    let ocs = Ocs::start(&test_config(dir.path())).await.unwrap();
    let pcef = Pcef::connect("pcef.visited.test", ocs.listen_addrs()[0]).await;
    (ocs, pcef)
}

async fn octets_of(ocs: &Ocs, key: &str) -> (i64, u64) {
    let a = ocs.account(key).await.unwrap().unwrap();
    let b = a.balances[&UnitKind::TotalOctets];
    (b.available, b.reserved)
}

#[tokio::test]
async fn grant_consume_terminate() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        let s = "pcef.visited.test;1;grant";
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(IMSI_RICH),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        assert_eq!(a.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap().0, 1);
        assert_eq!(a.get(dcca::CC_REQUEST_NUMBER).unwrap().unwrap(), 0);
        assert_eq!(a.get(base::AUTH_APPLICATION_ID).unwrap().unwrap(), 4);
        // RETRY_AND_TERMINATE, as configured (RFC 4006 §8.14).
        assert_eq!(
            a.get(dcca::CREDIT_CONTROL_FAILURE_HANDLING)
                .unwrap()
                .unwrap()
                .0,
            2
        );
        diameter_codec::validate(&a).unwrap();
        let m = &msccs(&a)[0];
        assert_eq!(granted_octets(m), Some(1_000_000));
        assert_eq!(child_u64(m, 432, 0), Some(1)); // Rating-Group
        assert_eq!(child_u64(m, 268, 0), Some(2001)); // per-MSCC Result-Code
        assert_eq!(child_u64(m, 448, 0), Some(600)); // Validity-Time
        assert_eq!(child_u64(m, 871, 10415), Some(60)); // Quota-Holding-Time
        assert_eq!(child_u64(m, 869, 10415), Some(100_000)); // Volume-Quota-Threshold
        let trig = child(m, 1264).expect("Trigger");
        let types: Vec<u64> = trig
            .children()
            .flatten()
            .map(|t| u64::from(u32::from_be_bytes(t.data.try_into().unwrap())))
            .collect();
        assert_eq!(types, vec![2, 4, 35, 36]);
        assert!(child(m, 430).is_none(), "no final units yet");
        assert_eq!(
            octets_of(&ocs, IMSI_RICH).await,
            (initial - 1_000_000, 1_000_000)
        );

        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Update,
                1,
                None,
                vec![(rg(1), rsu(), octets(600_000))],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        assert_eq!(granted_octets(&msccs(&a)[0]), Some(1_000_000));
        assert_eq!(
            octets_of(&ocs, IMSI_RICH).await,
            (initial - 600_000 - 1_000_000, 1_000_000)
        );
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Termination,
                2,
                None,
                vec![(rg(1), None, octets(250_000))],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        assert_eq!(octets_of(&ocs, IMSI_RICH).await, (initial - 850_000, 0));
        // The session is gone: an update is answered 5002 (RFC 4006 §7).
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Update,
                3,
                None,
                vec![(rg(1), rsu(), octets(1))],
            ))
            .await;
        assert_eq!(result_code(&a), 5002);
        assert_eq!(octets_of(&ocs, IMSI_RICH).await, (initial - 850_000, 0));
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn refusals_4012_5030_4010_5031_4011_and_5002() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let i = |s: &str, imsi: &str, g: u32| {
            pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(imsi),
                vec![(rg(g), rsu(), None)],
            )
        };
        let a = pcef.send(i("s;empty", IMSI_EMPTY, 1)).await;
        assert_eq!(result_code(&a), 4012);
        assert_eq!(child_u64(&msccs(&a)[0], 268, 0), Some(4012));
        assert!(granted_octets(&msccs(&a)[0]).is_none());
        let a = pcef.send(i("s;nobody", "999990000000000", 1)).await;
        assert_eq!(result_code(&a), 5030);
        let a = pcef.send(i("s;barred", IMSI_BARRED, 1)).await;
        assert_eq!(result_code(&a), 4010);
        let a = pcef.send(i("s;norating", IMSI_RICH, 77)).await;
        assert_eq!(result_code(&a), 5031);
        let a = pcef.send(i("s;free", IMSI_RICH, 9)).await;
        assert_eq!(result_code(&a), 4011);
        // Unknown sessions.
        let a = pcef
            .send(pcef.ccr(
                "s;never",
                RequestType::Update,
                1,
                None,
                vec![(rg(1), rsu(), octets(5))],
            ))
            .await;
        assert_eq!(result_code(&a), 5002);
        let a = pcef
            .send(pcef.ccr("s;never", RequestType::Termination, 2, None, vec![]))
            .await;
        assert_eq!(result_code(&a), 5002);
        // Nothing was reserved by any of them.
        assert_eq!(ocs.store().counts().await.unwrap().sessions, 0);
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn final_unit_terminate_redirect_restrict() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        // IMSI_LOW holds 1.5 MB: 1 MB, then the last 0.5 MB with FUI TERMINATE.
        let s = "s;low";
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(IMSI_LOW),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        assert_eq!(granted_octets(&msccs(&a)[0]), Some(1_000_000));
        assert!(child(&msccs(&a)[0], 430).is_none());
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Update,
                1,
                None,
                vec![(rg(1), rsu(), octets(1_000_000))],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        let m = &msccs(&a)[0];
        assert_eq!(granted_octets(m), Some(500_000));
        let fui = child(m, 430).expect("Final-Unit-Indication");
        assert_eq!(child_u64(&fui, 449, 0), Some(0), "TERMINATE");
        // The final units used: nothing left, 4012.
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Update,
                2,
                None,
                vec![(rg(1), rsu(), octets(500_000))],
            ))
            .await;
        assert_eq!(result_code(&a), 4012);
        pcef.send(pcef.ccr(s, RequestType::Termination, 3, None, vec![]))
            .await;
        assert_eq!(octets_of(&ocs, IMSI_LOW).await, (0, 0));

        // Rating group 2 redirects: with no credit the PCEF is told where to send the user.
        let a = pcef
            .send(pcef.ccr(
                "s;redir",
                RequestType::Initial,
                0,
                Some(IMSI_EMPTY),
                vec![(rg(2), rsu(), None)],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        let m = &msccs(&a)[0];
        assert_eq!(child_u64(m, 268, 0), Some(4012));
        let fui = child(m, 430).expect("Final-Unit-Indication");
        assert_eq!(child_u64(&fui, 449, 0), Some(1), "REDIRECT");
        let rs = child(&fui, 434).expect("Redirect-Server");
        assert_eq!(child_u64(&rs, 433, 0), Some(2), "URL");
        let addr = child(&rs, 435).unwrap();
        assert_eq!(addr.data, b"http://topup.home.test/");

        // Rating group 3 (time) restricts access: 90 s = 60 + the final 30.
        let s = "s;time";
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(IMSI_LOW),
                vec![(rg(3), rsu(), None)],
            ))
            .await;
        assert_eq!(granted_time(&msccs(&a)[0]), Some(60));
        assert_eq!(
            child_u64(&msccs(&a)[0], 868, 10415),
            Some(10),
            "Time-Quota-Threshold"
        );
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Update,
                1,
                None,
                vec![(rg(3), rsu(), seconds(60))],
            ))
            .await;
        let m = &msccs(&a)[0];
        assert_eq!(granted_time(m), Some(30));
        let fui = child(m, 430).expect("Final-Unit-Indication");
        assert_eq!(child_u64(&fui, 449, 0), Some(2), "RESTRICT_ACCESS");
        let rules: Vec<&[u8]> = fui
            .children()
            .flatten()
            .filter(|c| c.code == 438)
            .map(|c| c.data)
            .collect();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0], b"permit out ip from 192.0.2.10 to any");
        diameter_codec::validate(&a).unwrap();
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn retransmissions_are_answered_once_and_charged_once() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        let s = "s;dup";
        pcef.send(pcef.ccr(
            s,
            RequestType::Initial,
            0,
            Some(IMSI_RICH),
            vec![(rg(1), rsu(), None)],
        ))
        .await;
        let mut u = pcef.ccr(
            s,
            RequestType::Update,
            1,
            None,
            vec![(rg(1), rsu(), octets(400_000))],
        );
        u.end_to_end = pcef.node.next_end_to_end();
        let first = pcef.send(u.clone()).await;
        // The same request with the T bit (same End-to-End: a failover copy)…
        let mut t = u.clone();
        t.flags = t.flags.with(diameter_codec::CommandFlags::RETRANSMIT, true);
        let second = pcef.send(t).await;
        // …and a new request with the same Session-Id and CC-Request-Number, no T bit.
        let mut again = u.clone();
        again.end_to_end = pcef.node.next_end_to_end();
        let third = pcef.send(again).await;
        for a in [&second, &third] {
            assert_eq!(result_code(a), result_code(&first));
            assert_eq!(msccs(a)[0].data, msccs(&first)[0].data);
        }
        assert_eq!(
            octets_of(&ocs, IMSI_RICH).await,
            (initial - 400_000 - 1_000_000, 1_000_000),
            "debited once"
        );
        // A retransmitted CCR-T too.
        let tr = pcef.ccr(
            s,
            RequestType::Termination,
            2,
            None,
            vec![(rg(1), None, octets(10))],
        );
        assert_eq!(result_code(&pcef.send(tr.clone()).await), 2001);
        assert_eq!(result_code(&pcef.send(tr).await), 2001);
        assert_eq!(octets_of(&ocs, IMSI_RICH).await, (initial - 400_010, 0));
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn out_of_order_updates_are_each_applied_once() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        let s = "s;order";
        let svc = |g| vec![(rg(g), rsu(), octets(1000 * u64::from(g)))];
        pcef.send(pcef.ccr(
            s,
            RequestType::Initial,
            0,
            Some(IMSI_RICH),
            vec![(rg(1), rsu(), None), (rg(2), rsu(), None)],
        ))
        .await;
        // Update 2 (rating group 2) overtakes update 1 (rating group 1).
        let a2 = pcef
            .send(pcef.ccr(s, RequestType::Update, 2, None, svc(2)))
            .await;
        let a1 = pcef
            .send(pcef.ccr(s, RequestType::Update, 1, None, svc(1)))
            .await;
        assert_eq!(result_code(&a2), 2001);
        assert_eq!(result_code(&a1), 2001);
        // Both again: stored answers, no second debit.
        pcef.send(pcef.ccr(s, RequestType::Update, 1, None, svc(1)))
            .await;
        pcef.send(pcef.ccr(s, RequestType::Update, 2, None, svc(2)))
            .await;
        pcef.send(pcef.ccr(s, RequestType::Termination, 3, None, vec![]))
            .await;
        assert_eq!(octets_of(&ocs, IMSI_RICH).await, (initial - 3000, 0));
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn tcc_expiry_releases_reservations() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(dir.path());
        cfg.ocs.tcc = 1.0;
        cfg.ocs.sweep_interval = 0.1;
        let ocs = Ocs::start(&cfg).await.unwrap();
        let pcef = Pcef::connect("pcef.visited.test", ocs.listen_addrs()[0]).await;
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        let s = "s;silent";
        pcef.send(pcef.ccr(
            s,
            RequestType::Initial,
            0,
            Some(IMSI_RICH),
            vec![(rg(1), rsu(), None)],
        ))
        .await;
        assert_eq!(octets_of(&ocs, IMSI_RICH).await.1, 1_000_000);
        // Silent past Tcc: the reservation goes back to the account.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if octets_of(&ocs, IMSI_RICH).await == (initial, 0) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "reservation outlived Tcc"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let c = ocs.store().counts().await.unwrap();
        assert_eq!((c.sessions, c.reservations), (0, 0));
        // The client comes back too late: its session is unknown.
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Update,
                1,
                None,
                vec![(rg(1), rsu(), octets(10))],
            ))
            .await;
        assert_eq!(result_code(&a), 5002);
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn topup_sends_rar_to_the_session_client() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let (tx, mut rx) = mpsc::unbounded_channel::<(u32, String)>();
        pcef.node.register(
            4,
            handler_fn(move |req| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((
                        req.msg.header().command_code,
                        req.msg.session_id().unwrap_or("").to_string(),
                    ));
                    let mut a: MessageBuilder =
                        req.answer(diameter_codec::ResultCode::DIAMETER_SUCCESS);
                    if a.find(base::AUTH_APPLICATION_ID.key()).is_none() {
                        a.push(base::AUTH_APPLICATION_ID.with(4u32));
                    }
                    a
                }
            }),
        );
        let s = "s;topup";
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(IMSI_EMPTY),
                vec![(rg(2), rsu(), None)],
            ))
            .await;
        assert_eq!(child_u64(&msccs(&a)[0], 268, 0), Some(4012));
        let (acct, sessions) = ocs
            .topup(IMSI_EMPTY, UnitKind::TotalOctets, 2_000_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(acct.balances[&UnitKind::TotalOctets].available, 2_000_000);
        assert_eq!(sessions.len(), 1);
        let (cmd, sid) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("RAR within 5 s")
            .unwrap();
        assert_eq!((cmd, sid.as_str()), (258, s));
        // The client asks again and is granted now.
        let a = pcef
            .send(pcef.ccr(s, RequestType::Update, 1, None, vec![(rg(2), rsu(), None)]))
            .await;
        assert_eq!(granted_octets(&msccs(&a)[0]), Some(500_000));
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn money_account_pays_through_the_tariff() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let s = "s;money";
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(IMSI_MONEY),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        assert_eq!(granted_octets(&msccs(&a)[0]), Some(1_000_000));
        pcef.send(pcef.ccr(
            s,
            RequestType::Termination,
            1,
            None,
            vec![(rg(1), None, octets(1_500_000))],
        ))
        .await;
        let acct = ocs.account(IMSI_MONEY).await.unwrap().unwrap();
        // 1.5 MB at 1 per MB, rounded up: 2.
        assert_eq!(acct.balances[&UnitKind::Money].available, 98);
        assert_eq!(acct.balances[&UnitKind::Money].reserved, 0);
        // An EVENT on rating group 4 (direct debiting) for the rich subscriber.
        let a = pcef
            .send(pcef.ccr(
                "s;event",
                RequestType::Event,
                0,
                Some(IMSI_RICH),
                vec![(rg(4), rsu(), None)],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        let acct = ocs.account(IMSI_RICH).await.unwrap().unwrap();
        assert_eq!(acct.balances[&UnitKind::ServiceSpecific].available, 99);
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

/// A tariff rounds the session's running total, not each report: ten CCR-U of 100 kB at 1
/// per MB cost 1, as one report of 1 MB would (rounding every report cost 10).
#[tokio::test]
async fn small_reports_are_rounded_on_the_session_total() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let s = "s;small-reports";
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(IMSI_MONEY),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        for n in 1..=10 {
            let a = pcef
                .send(pcef.ccr(
                    s,
                    RequestType::Update,
                    n,
                    None,
                    vec![(rg(1), rsu(), octets(100_000))],
                ))
                .await;
            assert_eq!(result_code(&a), 2001, "update {n}");
        }
        pcef.send(pcef.ccr(s, RequestType::Termination, 11, None, vec![]))
            .await;
        let acct = ocs.account(IMSI_MONEY).await.unwrap().unwrap();
        assert_eq!(acct.balances[&UnitKind::Money].available, 99);
        assert_eq!(acct.balances[&UnitKind::Money].reserved, 0);
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn single_service_credit_control_without_mscc() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        let s = "s;single";
        // RFC 4006 §5.2: Requested-Service-Unit at command level, no MSCC.
        let mut i = pcef.ccr(s, RequestType::Initial, 0, Some(IMSI_RICH), vec![]);
        i.push(ocs::gy::requested_avp(&ocs::model::Units::default()));
        let a = pcef.send(i).await;
        assert_eq!(result_code(&a), 2001);
        assert!(msccs(&a).is_empty());
        let gsu = a
            .find(dcca::GRANTED_SERVICE_UNIT.key())
            .expect("GSU at command level");
        assert_eq!(child_u64(&gsu, 421, 0), Some(1_000_000));
        assert_eq!(a.get(dcca::VALIDITY_TIME).unwrap().unwrap(), 600);
        diameter_codec::validate(&a).unwrap();
        let mut t = pcef.ccr(s, RequestType::Termination, 1, None, vec![]);
        t.push(ocs::gy::used_avp(&ocs::model::Units {
            total_octets: Some(123),
            ..Default::default()
        }));
        assert_eq!(result_code(&pcef.send(t).await), 2001);
        assert_eq!(octets_of(&ocs, IMSI_RICH).await, (initial - 123, 0));
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn restarted_client_sessions_are_released() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ocs = Ocs::start(&test_config(dir.path())).await.unwrap();
        let addr = ocs.listen_addrs()[0];
        let host = "pcef.restart.test";
        let pcef = Pcef::start_with_state(host, addr, Duration::from_secs(5), Some(100)).await;
        assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(5)).await);
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        for i in 0..3 {
            let s = format!("{host};{i}");
            let a = pcef
                .send(pcef.ccr(
                    &s,
                    RequestType::Initial,
                    0,
                    Some(IMSI_RICH),
                    vec![(rg(1), rsu(), None)],
                ))
                .await;
            assert_eq!(result_code(&a), 2001);
        }
        // Another client's session is not touched.
        let other = Pcef::connect("pcef.other.test", addr).await;
        other
            .send(other.ccr(
                "other;1",
                RequestType::Initial,
                0,
                Some(IMSI_RICH),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        assert_eq!(octets_of(&ocs, IMSI_RICH).await.1, 4_000_000);
        pcef.shutdown().await;
        // The client comes back with a new Origin-State-Id: it has lost its sessions.
        let pcef = Pcef::start_with_state(host, addr, Duration::from_secs(5), Some(101)).await;
        assert!(pcef.node.wait_peer(OCS_HOST, Duration::from_secs(5)).await);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while octets_of(&ocs, IMSI_RICH).await != (initial - 1_000_000, 1_000_000) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sessions of the restarted client kept"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = pcef
            .send(pcef.ccr(
                &format!("{host};0"),
                RequestType::Update,
                1,
                None,
                vec![(rg(1), rsu(), octets(1))],
            ))
            .await;
        assert_eq!(result_code(&a), 5002);
        assert_eq!(ocs.store().counts().await.unwrap().sessions, 1);
        pcef.shutdown().await;
        other.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn sessions_and_answers_survive_a_clean_restart() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = test_config(dir.path());
        let ocs = Ocs::start(&cfg).await.unwrap();
        let pcef = Pcef::connect("pcef.visited.test", ocs.listen_addrs()[0]).await;
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        let s = "s;restart";
        let i = pcef.ccr(
            s,
            RequestType::Initial,
            0,
            Some(IMSI_RICH),
            vec![(rg(1), rsu(), None)],
        );
        let first = pcef.send(i.clone()).await;
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;

        let ocs = Ocs::start(&cfg).await.unwrap();
        let pcef = Pcef::connect("pcef.visited.test", ocs.listen_addrs()[0]).await;
        assert_eq!(
            octets_of(&ocs, IMSI_RICH).await,
            (initial - 1_000_000, 1_000_000)
        );
        let again = pcef.send(i).await;
        assert_eq!(msccs(&again)[0].data, msccs(&first)[0].data);
        assert_eq!(
            octets_of(&ocs, IMSI_RICH).await,
            (initial - 1_000_000, 1_000_000)
        );
        let a = pcef
            .send(pcef.ccr(
                s,
                RequestType::Termination,
                1,
                None,
                vec![(rg(1), None, octets(5))],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        assert_eq!(octets_of(&ocs, IMSI_RICH).await, (initial - 5, 0));
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

#[tokio::test]
async fn barring_mid_session_reauthorises_and_denies() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ocs, pcef) = start(&dir).await;
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        // The client knows the first session only: it answers the RAR of the second 5002.
        pcef.node.register(
            4,
            handler_fn(move |req| {
                let tx = tx.clone();
                async move {
                    let sid = req.msg.session_id().unwrap_or("").to_string();
                    let rc = if sid.ends_with(";2") {
                        diameter_codec::ResultCode::DIAMETER_UNKNOWN_SESSION_ID
                    } else {
                        diameter_codec::ResultCode::DIAMETER_SUCCESS
                    };
                    let _ = tx.send(sid);
                    let mut a: MessageBuilder = req.answer(rc);
                    if a.find(base::AUTH_APPLICATION_ID.key()).is_none() {
                        a.push(base::AUTH_APPLICATION_ID.with(4u32));
                    }
                    a
                }
            }),
        );
        let (initial, _) = octets_of(&ocs, IMSI_RICH).await;
        for s in ["s;bar;1", "s;bar;2"] {
            pcef.send(pcef.ccr(
                s,
                RequestType::Initial,
                0,
                Some(IMSI_RICH),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        }
        let (acct, sessions) = ocs
            .modify(IMSI_RICH, ocs::store::AccountChange::SetBarred(true))
            .await
            .unwrap()
            .unwrap();
        assert!(acct.barred);
        assert_eq!(sessions.len(), 2);
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort();
        assert_eq!(got, vec!["s;bar;1", "s;bar;2"]);
        // The forgotten session's reservation comes back without waiting for Tcc.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while octets_of(&ocs, IMSI_RICH).await.1 != 1_000_000 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "session forgotten by its client kept"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The other asks again: its usage is charged, nothing more granted.
        let a = pcef
            .send(pcef.ccr(
                "s;bar;1",
                RequestType::Update,
                1,
                None,
                vec![(rg(1), rsu(), octets(300))],
            ))
            .await;
        assert_eq!(result_code(&a), 4010);
        assert_eq!(octets_of(&ocs, IMSI_RICH).await, (initial - 300, 0));
        let a = pcef
            .send(pcef.ccr("s;bar;1", RequestType::Termination, 2, None, vec![]))
            .await;
        assert_eq!(result_code(&a), 2001);
        // A new session is refused.
        let a = pcef
            .send(pcef.ccr(
                "s;bar;3",
                RequestType::Initial,
                0,
                Some(IMSI_RICH),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        assert_eq!(result_code(&a), 4010);
        ocs.modify(IMSI_RICH, ocs::store::AccountChange::SetBarred(false))
            .await
            .unwrap();
        let a = pcef
            .send(pcef.ccr(
                "s;bar;4",
                RequestType::Initial,
                0,
                Some(IMSI_RICH),
                vec![(rg(1), rsu(), None)],
            ))
            .await;
        assert_eq!(result_code(&a), 2001);
        pcef.shutdown().await;
        ocs.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}
