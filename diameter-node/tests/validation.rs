//! Validation levels at the node: what field peers send (an M bit against the dictionary, a
//! grouped AVP missing a required member) reaches the handler by default, with its
//! deviations listed, and is answered with the strict Result-Code when the configuration
//! asks for strictness.

use diameter_codec::avp::AvpFlags;
use diameter_codec::dict::{base, dcca};
use diameter_codec::encode::AvpValue;
use diameter_codec::{FindingKind, Message, MessageBuilder, OwnedAvp, ResultCode, Severity};
use diameter_node::node::{Node, NodeConfig, PeerSpec, RequestError, handler_fn, relay_route};
use diameter_node::peer::Application;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{DCCA, any_addr, peer_at};

/// What the handler saw of each request: (kind, AVP path) of every deviation.
type Seen = Arc<Mutex<Vec<Vec<(FindingKind, String)>>>>;

async fn server(host: &str, cfg_edit: impl FnOnce(&mut NodeConfig), seen: Seen) -> Node {
    let mut cfg = NodeConfig::new(host, "server.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only("client.example"));
    cfg_edit(&mut cfg);
    let node = Node::start(cfg).await.unwrap();
    node.register(
        DCCA,
        handler_fn(move |req| {
            assert!(
                req.deviations
                    .iter()
                    .all(|d| d.severity == Severity::Deviation)
            );
            seen.lock().unwrap().push(
                req.deviations
                    .iter()
                    .map(|d| (d.kind, d.path_names.clone()))
                    .collect(),
            );
            async move { req.answer(ResultCode::DIAMETER_SUCCESS) }
        }),
    );
    node
}

async fn client(srv_host: &str, srv: &Node) -> Node {
    let mut cfg = NodeConfig::new("client.example", "client.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.peers = vec![peer_at(srv_host, srv)];
    cfg.routes
        .push(relay_route("server.example", Some(DCCA), &[srv_host]));
    cfg.request_timeout = Duration::from_secs(3);
    let cli = Node::start(cfg).await.unwrap();
    assert!(cli.wait_peer(srv_host, Duration::from_secs(5)).await);
    cli
}

fn ccr(session: &str) -> MessageBuilder {
    common::ccr(
        session,
        "client.example",
        "client.example",
        "server.example",
    )
}

/// A CCR whose Origin-Host lacks the M bit RFC 6733 §6.3 requires (some libraries send it
/// so) and that carries Origin-State-Id without it too.
fn ccr_m_bits(session: &str) -> MessageBuilder {
    let mut b = ccr(session);
    for a in &mut b.avps {
        if a.code == base::ORIGIN_HOST.code() {
            a.flags = AvpFlags(0);
        }
    }
    let mut osi = base::ORIGIN_STATE_ID.with(7u32);
    osi.flags = AvpFlags(0);
    b.push(osi);
    b
}

/// A CCR with a Subscription-Id missing its required Subscription-Id-Data (RFC 4006
/// §8.46): a grammar deviation inside a Grouped AVP.
fn ccr_grouped_deviation(session: &str) -> MessageBuilder {
    let mut b = ccr(session);
    b.push(OwnedAvp::new(
        dcca::SUBSCRIPTION_ID.code(),
        0,
        AvpFlags::MANDATORY,
        AvpValue::Grouped(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        ]),
    ));
    b
}

/// The Result-Code of the answer, whether it came back as an answer or a protocol error.
async fn result_code(cli: &Node, req: MessageBuilder) -> (u32, Option<Message>) {
    match cli.request(req).await {
        Ok(a) => (common::rc(&a), Some(a)),
        Err(RequestError::Protocol {
            result_code,
            answer,
        }) => (result_code.0, Some(answer)),
        Err(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn m_bit_variant_accepted_by_default_and_3009_when_strict() {
    let seen = Seen::default();
    let srv = server("val1.example", |_| {}, seen.clone()).await;
    let cli = client("val1.example", &srv).await;
    let (rc, _) = result_code(&cli, ccr_m_bits("m;1")).await;
    assert_eq!(rc, 2001);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[vec![
            (FindingKind::MBit, "Origin-Host".to_string()),
            (FindingKind::MBit, "Origin-State-Id".to_string()),
        ]]
    );
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;

    let seen = Seen::default();
    let srv = server("val2.example", |c| c.strict_m_bit = true, seen.clone()).await;
    let cli = client("val2.example", &srv).await;
    let (rc, answer) = result_code(&cli, ccr_m_bits("m;2")).await;
    assert_eq!(rc, 3009);
    let answer = answer.unwrap();
    assert!(answer.header().flags.is_error());
    // Failed-AVP: the Origin-Host as received (RFC 6733 §7.1.3 3009).
    let fa = answer.find_all(base::FAILED_AVP.key()).next().unwrap();
    let inner = fa.children().next().unwrap().unwrap();
    assert_eq!((inner.code, inner.flags.0), (base::ORIGIN_HOST.code(), 0));
    assert!(seen.lock().unwrap().is_empty(), "handler not run");
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn grouped_deviation_reaches_the_handler_and_5005_when_strict() {
    let seen = Seen::default();
    let srv = server("val3.example", |_| {}, seen.clone()).await;
    let cli = client("val3.example", &srv).await;
    let (rc, _) = result_code(&cli, ccr_grouped_deviation("g;1")).await;
    assert_eq!(rc, 2001);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[vec![(
            FindingKind::MissingAvp,
            "Subscription-Id/Subscription-Id-Data".to_string()
        )]]
    );
    // A clean request has none.
    let (rc, _) = result_code(&cli, ccr("g;2")).await;
    assert_eq!(rc, 2001);
    assert!(seen.lock().unwrap()[1].is_empty());
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;

    // Strict for this application: 5005 with the missing AVP inside its Subscription-Id.
    let seen = Seen::default();
    let srv = server(
        "val4.example",
        |c| c.strict_validation_applications.push(DCCA),
        seen.clone(),
    )
    .await;
    let cli = client("val4.example", &srv).await;
    let (rc, answer) = result_code(&cli, ccr_grouped_deviation("g;3")).await;
    assert_eq!(rc, 5005);
    let answer = answer.unwrap();
    let fa = answer.find_all(base::FAILED_AVP.key()).next().unwrap();
    let group = fa.children().next().unwrap().unwrap();
    assert_eq!(group.code, dcca::SUBSCRIPTION_ID.code());
    let missing: Vec<_> = group.children().map(Result::unwrap).collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].code, dcca::SUBSCRIPTION_ID_DATA.code());
    assert!(seen.lock().unwrap().is_empty(), "handler not run");
    // The M bit stays tolerated: strictness of the grammar does not imply it.
    let (rc, _) = result_code(&cli, ccr_m_bits("g;4")).await;
    assert_eq!(rc, 2001);
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;
}
