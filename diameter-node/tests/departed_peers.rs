//! Unknown peers that come and go leave nothing behind (issue 9.4): no peer state, no
//! metric series of their own. Its own test binary: the Prometheus recorder is global.

use diameter_codec::MessageBuilder;
use diameter_codec::dict::base;
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn};
use diameter_node::peer::{Application, UnknownPeerPolicy};
use std::time::{Duration, Instant};

mod common;
use common::raw::{Raw, cer};
use common::{DCCA, T, any_addr, rc, scrape};

#[tokio::test]
async fn departed_unknown_peers_leave_no_state_and_no_series() {
    let metrics = diameter_node::metrics::install(any_addr()).unwrap();
    let mut cfg = NodeConfig::new("srv.example", "server.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.local.unknown_peer = UnknownPeerPolicy::Accept;
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only("configured.example"));
    let node = Node::start(cfg).await.unwrap();
    node.register(
        DCCA,
        handler_fn(|req| async move { req.answer(diameter_codec::ResultCode::DIAMETER_SUCCESS) }),
    );
    let addr = node.listen_addrs()[0];
    let mut configured = Raw::connect(addr).await;
    configured.send(&cer("configured.example")).await;
    assert_eq!(rc(&configured.recv().await), 2001);
    for i in 0..40u32 {
        let host = format!("passing{i}.example");
        let mut c = Raw::connect(addr).await;
        c.send(&cer(&host)).await;
        assert_eq!(rc(&c.recv().await), 2001);
        if i % 2 == 0 {
            // Half leave politely with DPR, half just close.
            let dpr = MessageBuilder::request(base::CMD_DISCONNECT_PEER, 0, false)
                .ids(i + 10, i + 10)
                .with(base::ORIGIN_HOST.with(host.clone()))
                .with(base::ORIGIN_REALM.with("client.realm"))
                .with(base::DISCONNECT_CAUSE.with(base::DisconnectCause::REBOOTING));
            c.send(&dpr).await;
            let _ = c.read(T).await;
        }
    }
    // The node forgets them as their connections close.
    let deadline = Instant::now() + T;
    while node.peers() != vec!["configured.example".to_string()] {
        assert!(Instant::now() < deadline, "still known: {:?}", node.peers());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = scrape(metrics.local_addr()).await;
    assert!(
        !text.contains("passing"),
        "series of departed peers left:\n{text}"
    );
    // Counted together while they were there; none now.
    let unconfigured: f64 = text
        .lines()
        .filter(|l| l.starts_with("diameter_unconfigured_peers{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert!(text.contains("diameter_unconfigured_peers{"), "{text}");
    assert_eq!(unconfigured, 0.0, "{text}");
    // The configured peer keeps its series.
    assert!(
        text.contains(r#"peer="configured.example",state="R-Open"} 1"#),
        "{text}"
    );
}
