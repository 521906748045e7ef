//! Nodes talking over loopback TCP: capabilities exchange, requests both ways, relaying,
//! routing errors, failover and duplicate detection.

use diameter_codec::dict::{base, dcca};
use diameter_codec::{CommandFlags, Message, MessageBuilder, MessageWriter, ResultCode};
use diameter_node::node::{Node, NodeConfig, PeerSpec, RequestError, handler_fn, relay_route};
use diameter_node::peer::Application;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;
use common::{DCCA, any_addr, counting_handler, peer_at, said_by};

async fn server(host: &str, clients: &[&str], counter: Arc<AtomicUsize>) -> Node {
    let mut cfg = NodeConfig::new(host, "server.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    for c in clients {
        cfg.peers.push(PeerSpec::accept_only(*c));
    }
    let node = Node::start(cfg).await.unwrap();
    let name = host.to_string();
    node.register(
        DCCA,
        handler_fn(move |req| {
            let counter = counter.clone();
            let name = name.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut a = req.answer(ResultCode::DIAMETER_SUCCESS);
                a.push(base::ERROR_MESSAGE.with(format!("answered by {name}")));
                a
            }
        }),
    );
    node
}

fn ccr(session: &str, realm: &str) -> MessageBuilder {
    common::ccr(session, "client.example", "client.example", realm)
}

async fn client(peers: Vec<PeerSpec>, realm: &str, route_to: &[&str]) -> Node {
    let mut cfg = NodeConfig::new("client.example", "client.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.peers = peers;
    cfg.routes.push(relay_route(realm, Some(DCCA), route_to));
    cfg.request_timeout = Duration::from_secs(3);
    Node::start(cfg).await.unwrap()
}

/// A client routing realm server.example to `host`, connected to it and open.
async fn connected_client(host: &str, node: &Node) -> Node {
    let cli = client(vec![peer_at(host, node)], "server.example", &[host]).await;
    assert!(cli.wait_peer(host, Duration::from_secs(5)).await);
    cli
}

#[tokio::test]
async fn request_answer_over_tcp() {
    let n = Arc::new(AtomicUsize::new(0));
    let srv = server("srv1.example", &["client.example"], n.clone()).await;
    let cli = connected_client("srv1.example", &srv).await;
    for i in 0..50 {
        let a = cli
            .request(ccr(&format!("s;{i}"), "server.example"))
            .await
            .unwrap();
        assert_eq!(a.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
        assert_eq!(a.session_id(), Some(format!("s;{i}").as_str()));
    }
    assert_eq!(n.load(Ordering::SeqCst), 50);
    assert_eq!(cli.pending(), 0);
    // Unknown realm: 3003 built locally, with the E bit.
    match cli.request(ccr("x", "nowhere.example")).await {
        Err(RequestError::Protocol {
            result_code,
            answer,
        }) => {
            assert_eq!(result_code, ResultCode::DIAMETER_REALM_NOT_SERVED);
            assert!(answer.header().flags.is_error());
        }
        other => panic!("{other:?}"),
    }
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn encoded_requests_keep_their_end_to_end_and_answers_are_refused() {
    let n = Arc::new(AtomicUsize::new(0));
    let srv = server("srv5.example", &["client.example"], n.clone()).await;
    let cli = connected_client("srv5.example", &srv).await;
    for i in 0..20u32 {
        let mut buf = bytes::BytesMut::new();
        let flags = CommandFlags(CommandFlags::REQUEST | CommandFlags::PROXIABLE);
        let mut w =
            MessageWriter::new(&mut buf, flags, dcca::CMD_CREDIT_CONTROL, DCCA, 0, 7000 + i);
        let session = format!("enc;{i}");
        w.text(base::SESSION_ID, &session)
            .text(base::ORIGIN_HOST, "client.example")
            .text(base::ORIGIN_REALM, "client.example")
            .text(base::DESTINATION_REALM, "server.example")
            .avp(base::AUTH_APPLICATION_ID, DCCA)
            .avp(dcca::SERVICE_CONTEXT_ID, "32251@3gpp.org")
            .avp(dcca::CC_REQUEST_TYPE, dcca::CcRequestType::EVENT_REQUEST)
            .avp(dcca::CC_REQUEST_NUMBER, 0u32);
        let len = w.finish().unwrap();
        let req = Message::from_bytes(buf.split_to(len).freeze()).unwrap();
        let a = cli
            .request_encoded(req, Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(a.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
        assert_eq!(a.header().end_to_end, 7000 + i);
        assert_eq!(a.session_id(), Some(session.as_str()));
    }
    assert_eq!(n.load(Ordering::SeqCst), 20);
    // An answer is not a request.
    let mut ans =
        MessageBuilder::answer_to(&ccr("x", "server.example").build().unwrap(), cli.identity());
    ans.result_code(ResultCode::DIAMETER_SUCCESS);
    let r = cli
        .request_encoded(ans.build().unwrap(), Duration::from_secs(1))
        .await;
    assert!(matches!(r, Err(RequestError::NotARequest)), "{r:?}");
    assert_eq!(cli.pending(), 0);
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn invalid_request_gets_error_answer_and_handler_not_run() {
    let n = Arc::new(AtomicUsize::new(0));
    let srv = server("srv1.example", &["client.example"], n.clone()).await;
    let cli = connected_client("srv1.example", &srv).await;
    let mut bad = ccr("s;bad", "server.example");
    bad.avps
        .retain(|a| a.code != dcca::CC_REQUEST_NUMBER.code());
    let a = cli.request(bad).await.unwrap();
    assert_eq!(a.get(base::RESULT_CODE).unwrap().unwrap(), 5005);
    assert_eq!(n.load(Ordering::SeqCst), 0);
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn relay_agent_appends_route_record_and_fails_over() {
    let n1 = Arc::new(AtomicUsize::new(0));
    let n2 = Arc::new(AtomicUsize::new(0));
    let s1 = server("srv1.example", &["relay.example"], n1.clone()).await;
    let s2 = server("srv2.example", &["relay.example"], n2.clone()).await;
    let mut rcfg = NodeConfig::new("relay.example", "relay.example");
    rcfg.local.applications.push(Application::relay());
    rcfg.agent = true;
    rcfg.listen.push(any_addr().into());
    rcfg.peers.push(PeerSpec::accept_only("client.example"));
    for (h, s) in [("srv1.example", &s1), ("srv2.example", &s2)] {
        rcfg.peers.push(peer_at(h, s));
    }
    rcfg.routes.push(relay_route(
        "server.example",
        None,
        &["srv1.example", "srv2.example"],
    ));
    let relay = Node::start(rcfg).await.unwrap();
    let cli = connected_client("relay.example", &relay).await;
    assert!(
        relay
            .wait_peer("srv1.example", Duration::from_secs(5))
            .await
    );
    assert!(
        relay
            .wait_peer("srv2.example", Duration::from_secs(5))
            .await
    );
    let a = cli.request(ccr("s;r1", "server.example")).await.unwrap();
    assert_eq!(said_by(&a), "answered by srv1.example");
    // srv1 leaves (DPR): the relay routes to srv2.
    s1.shutdown(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = cli.request(ccr("s;r2", "server.example")).await.unwrap();
    assert_eq!(said_by(&a), "answered by srv2.example");
    assert_eq!(relay.pending(), 0);
    // A request that already went through the relay is looped: 3005.
    let mut looped = ccr("s;loop", "server.example");
    looped.push(base::ROUTE_RECORD.with("relay.example"));
    let a = cli.request(looped).await.unwrap();
    assert_eq!(a.get(base::RESULT_CODE).unwrap().unwrap(), 3005);
    assert!(a.header().flags.is_error());
    cli.shutdown(Duration::from_secs(2)).await;
    relay.shutdown(Duration::from_secs(2)).await;
    s2.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn duplicate_requests_run_the_handler_once() {
    let n = Arc::new(AtomicUsize::new(0));
    let srv = server("srv1.example", &["client.example"], n.clone()).await;
    let cli = connected_client("srv1.example", &srv).await;
    let e2e = cli.next_end_to_end();
    let mut first = ccr("s;dup", "server.example");
    first.end_to_end = e2e;
    let a1 = cli.request(first.clone()).await.unwrap();
    let mut again = first;
    again.flags = again.flags.with(CommandFlags::RETRANSMIT, true);
    let a2 = cli.request(again).await.unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(
        a1.get(base::RESULT_CODE).unwrap().unwrap(),
        a2.get(base::RESULT_CODE).unwrap().unwrap()
    );
    assert_eq!(a1.header().end_to_end, a2.header().end_to_end);
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn server_sends_request_on_the_clients_connection() {
    // A PCRF sends RAR over the connection the PCEF opened: requests both ways on one link.
    let n = Arc::new(AtomicUsize::new(0));
    let srv = server("srv1.example", &["client.example"], n.clone()).await;
    let cli = client(
        vec![peer_at("srv1.example", &srv)],
        "server.example",
        &["srv1.example"],
    )
    .await;
    let got = Arc::new(AtomicUsize::new(0));
    cli.register(DCCA, counting_handler(got.clone(), Duration::ZERO));
    assert!(cli.wait_peer("srv1.example", Duration::from_secs(5)).await);
    assert!(
        srv.wait_peer("client.example", Duration::from_secs(5))
            .await
    );
    let mut rar = MessageBuilder::request(base::CMD_RE_AUTH, DCCA, true);
    rar.push(base::SESSION_ID.with("s;rar"));
    rar.push(base::ORIGIN_HOST.with("srv1.example"));
    rar.push(base::ORIGIN_REALM.with("server.example"));
    rar.push(base::DESTINATION_REALM.with("client.example"));
    rar.push(base::DESTINATION_HOST.with("client.example"));
    rar.push(base::AUTH_APPLICATION_ID.with(DCCA));
    rar.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
    let a = srv.request(rar).await.unwrap();
    assert_eq!(a.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    assert_eq!(got.load(Ordering::SeqCst), 1);
    cli.shutdown(Duration::from_secs(2)).await;
    srv.shutdown(Duration::from_secs(2)).await;
}
