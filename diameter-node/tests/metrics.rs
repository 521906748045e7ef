//! `/metrics` of two nodes in one process (their own test binary: the Prometheus recorder
//! is global and installed once per process).

use diameter_codec::ResultCode;
use diameter_node::metrics::PEER_STATES;
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn, relay_route};
use diameter_node::peer::Application;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod common;
use common::{DCCA, any_addr, rc, scrape};

/// The samples of `name`: labels → value.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            let labels = labels
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            (labels, value.trim().parse().unwrap())
        })
        .collect()
}

/// Per (node, peer): the states at 1, checking that every `state` label is an RFC spelling.
fn peer_states(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (l, v) in samples(text, "diameter_peers") {
        let state = l["state"].clone();
        assert!(
            PEER_STATES.contains(&state.as_str()),
            "state {state}:\n{text}"
        );
        let e = out
            .entry((l["node"].clone(), l["peer"].clone()))
            .or_default();
        if v == 1.0 {
            e.push(state);
        }
    }
    out
}

#[tokio::test]
async fn peer_states_are_one_series_each_and_nodes_keep_their_series_apart() {
    let metrics = diameter_node::metrics::install(any_addr()).unwrap();
    let mut cfg = NodeConfig::new("srv.example", "server.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(any_addr().into());
    cfg.peers.push(PeerSpec::accept_only("cli.example"));
    let srv = Node::start(cfg).await.unwrap();
    srv.register(
        DCCA,
        handler_fn(|req| async move { req.answer(ResultCode::DIAMETER_SUCCESS) }),
    );
    let mut cfg = NodeConfig::new("cli.example", "client.example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.peers
        .push(PeerSpec::connect_tcp("srv.example", srv.listen_addrs()[0]));
    cfg.routes
        .push(relay_route("server.example", Some(DCCA), &["srv.example"]));
    let cli = Node::start(cfg).await.unwrap();
    assert!(cli.wait_peer("srv.example", Duration::from_secs(5)).await);
    for i in 0..3 {
        let req = common::ccr(
            &format!("m;{i}"),
            "cli.example",
            "client.example",
            "server.example",
        );
        assert_eq!(rc(&cli.request(req).await.unwrap()), 2001);
    }
    let open = scrape(metrics.local_addr()).await;
    let states = peer_states(&open);
    let key = |n: &str, p: &str| (n.to_string(), p.to_string());
    assert_eq!(
        states[&key("cli.example", "srv.example")],
        ["I-Open"],
        "{open}"
    );
    assert_eq!(
        states[&key("srv.example", "cli.example")],
        ["R-Open"],
        "{open}"
    );
    // Requests and answers per node: the client sent 3, the server received 3.
    let count = |text: &str, name: &str, want: &[(&str, &str)]| -> f64 {
        samples(text, name)
            .into_iter()
            .filter(|(l, _)| {
                want.iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    };
    let req = "diameter_requests_total";
    assert_eq!(
        count(
            &open,
            req,
            &[("node", "cli.example"), ("direction", "sent")]
        ),
        3.0
    );
    assert_eq!(
        count(
            &open,
            req,
            &[("node", "srv.example"), ("direction", "received")]
        ),
        3.0
    );
    assert_eq!(
        count(
            &open,
            req,
            &[("node", "cli.example"), ("direction", "received")]
        ),
        0.0
    );
    let ans = "diameter_answers_total";
    assert_eq!(
        count(
            &open,
            ans,
            &[("node", "srv.example"), ("direction", "sent")]
        ),
        3.0
    );
    assert_eq!(
        count(
            &open,
            ans,
            &[("node", "cli.example"), ("direction", "received")]
        ),
        3.0
    );
    // After DPR/DPA both sides show Closed, and only Closed.
    cli.shutdown(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    let closed = loop {
        let text = scrape(metrics.local_addr()).await;
        let s = peer_states(&text);
        if s[&key("srv.example", "cli.example")] == ["Closed"]
            || t0.elapsed() > Duration::from_secs(5)
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let states = peer_states(&closed);
    assert_eq!(
        states[&key("cli.example", "srv.example")],
        ["Closed"],
        "{closed}"
    );
    assert_eq!(
        states[&key("srv.example", "cli.example")],
        ["Closed"],
        "{closed}"
    );
    assert_eq!(states.len(), 2, "{closed}");
    srv.shutdown(Duration::from_secs(1)).await;
}
