//! The client node every pcef-sim role starts: one peer (the server), one realm route.

use anyhow::{Context, bail};
use diameter_node::node::{Node, NodeConfig, PeerSpec, relay_route};
use diameter_node::peer::{Application, Timers};
use std::net::SocketAddr;
use std::time::Duration;

/// Where to connect and who we are.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's address.
    pub to: SocketAddr,
    /// The server's Origin-Host (the peer we expect in its CEA).
    pub to_host: String,
    /// Destination-Realm of our requests.
    pub dest_realm: String,
    /// Our Origin-Host.
    pub origin_host: String,
    /// Our Origin-Realm.
    pub origin_realm: String,
}

/// Starts a node that connects to `ep` advertising `app` (auth application), routes
/// `ep.dest_realm` to it, and waits (up to 10 s) until the peer is open.
pub async fn connect(ep: &Endpoint, app: u32, request_timeout: Duration) -> anyhow::Result<Node> {
    let mut cfg = NodeConfig::new(&ep.origin_host, &ep.origin_realm);
    cfg.local.product_name = "pcef-sim".into();
    cfg.local.applications.push(Application::auth(app));
    let mut peer = PeerSpec::connect_tcp(ep.to_host.clone(), ep.to);
    // Tc of 1 s: a client started just before its server connects at once.
    peer.timers = Timers {
        tc: Duration::from_secs(1),
        ..Timers::default()
    };
    cfg.peers.push(peer);
    cfg.routes
        .push(relay_route(&ep.dest_realm, Some(app), &[&ep.to_host]));
    cfg.request_timeout = request_timeout;
    let node = Node::start(cfg).await.context("starting the client node")?;
    if !node.wait_peer(&ep.to_host, Duration::from_secs(10)).await {
        node.shutdown(Duration::from_secs(1)).await;
        bail!(
            "no capabilities exchange with {} at {} within 10 s",
            ep.to_host,
            ep.to
        );
    }
    Ok(node)
}
