//! The client node every pcef-sim role starts: one peer (the server), one realm route;
//! and [`Upstream`], the way a role's session requests go: straight to the server, or to a
//! DRA with the termination behaviour of document 002
//! ([`diameter_service::dra_client`]).

use anyhow::{Context, bail};
use diameter_codec::dict::base;
use diameter_codec::{Message, MessageBuilder};
use diameter_node::node::{Node, NodeConfig, PeerSpec, RequestError, relay_route};
use diameter_node::peer::{Application, Timers};
use diameter_service::dra_client::{DraClient, TerminationBehaviour};
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
    /// Where hosts met in redirects listen (`[node]` host map): the PCRFs a DRA redirects
    /// to, when their names do not resolve.
    pub peers: Vec<(String, SocketAddr)>,
    /// The server is a DRA; redirected sessions end by this behaviour (document 002).
    pub dra: Option<TerminationBehaviour>,
    /// With `dra`: after a proxied establishment, talk to the PCRF directly (terminations
    /// still through the DRA).
    pub dra_direct_after_proxy: bool,
}

impl Endpoint {
    /// An endpoint straight to the server `to_host` at `to`, no DRA.
    pub fn direct(
        to: SocketAddr,
        to_host: impl Into<String>,
        dest_realm: impl Into<String>,
        origin_host: impl Into<String>,
        origin_realm: impl Into<String>,
    ) -> Self {
        Self {
            to,
            to_host: to_host.into(),
            dest_realm: dest_realm.into(),
            origin_host: origin_host.into(),
            origin_realm: origin_realm.into(),
            peers: Vec::new(),
            dra: None,
            dra_direct_after_proxy: false,
        }
    }
}

/// `HOST=ADDRESS` (`--peer-addr`).
pub fn parse_peer(s: &str) -> Result<(String, SocketAddr), String> {
    let (h, a) = s
        .split_once('=')
        .ok_or_else(|| format!("expected HOST=ADDRESS, got {s:?}"))?;
    let a = a
        .parse()
        .map_err(|_| format!("bad address in {s:?} (expected e.g. 127.0.0.1:3869)"))?;
    Ok((h.to_string(), a))
}

/// A role's session requests: straight to its server, or through a DRA client that
/// remembers how the DRA handled each session and ends it as document 002 says.
pub struct Upstream {
    node: Node,
    dra: Option<DraClient>,
    timeout: Duration,
}

/// A termination's answer and the way it went.
#[derive(Debug)]
pub struct Terminated {
    /// The server's answer (the PCRF's, through a DRA).
    pub answer: Result<Message, RequestError>,
    /// Through a DRA: "proxied", "parallel" or "redirect".
    pub path: Option<&'static str>,
    /// The DRA's own Result-Code when it answered apart (2001 acknowledged, 3006).
    pub dra_result: Option<u32>,
}

/// A Session-Id of `host` (RFC 6733 §8.8: `<DiameterIdentity>;<high>;<low>[;<optional>]`),
/// unique per process and run.
pub fn new_session_id(host: &str, tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{host};{epoch};{tag}{}.{n}", std::process::id())
}

/// The Result-Code, or the Experimental-Result-Code.
pub fn result_of(r: &Result<Message, RequestError>) -> Option<u32> {
    let m = match r {
        Ok(m) => m,
        Err(RequestError::Protocol { answer, .. }) => answer,
        Err(_) => return None,
    };
    m.get(base::RESULT_CODE).and_then(Result::ok).or_else(|| {
        m.find(base::EXPERIMENTAL_RESULT.key()).and_then(|e| {
            e.children()
                .flatten()
                .find(|c| c.code == base::EXPERIMENTAL_RESULT_CODE.key().code)
                .and_then(|c| <[u8; 4]>::try_from(c.data).ok())
                .map(u32::from_be_bytes)
        })
    })
}

/// A termination as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TerminationSeen {
    /// The server's Result-Code (or Experimental-Result-Code).
    pub result_code: Option<u32>,
    /// Through a DRA: "proxied", "parallel" or "redirect".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dra_path: Option<&'static str>,
    /// The DRA's own answer, when it answered apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dra_result: Option<u32>,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Terminated {
    /// What a report shows of it.
    pub fn seen(&self) -> TerminationSeen {
        TerminationSeen {
            result_code: result_of(&self.answer),
            dra_path: self.path,
            dra_result: self.dra_result,
            error: match &self.answer {
                Err(
                    e @ (RequestError::Timeout(_)
                    | RequestError::RedirectLoop
                    | RequestError::Stopped),
                ) => Some(e.to_string()),
                _ => None,
            },
        }
    }

    /// A line for the live output.
    pub fn line(&self) -> String {
        let s = self.seen();
        let mut l = s
            .result_code
            .map_or_else(|| s.error.clone().unwrap_or_default(), |c| c.to_string());
        if let Some(p) = s.dra_path {
            l.push_str(&format!(" (DRA: {p}"));
            if let Some(c) = s.dra_result {
                l.push_str(&format!(", DRA answered {c}"));
            }
            l.push(')');
        }
        l
    }
}

impl Upstream {
    /// Connects as [`connect`] does; with `ep.dra`, through a DRA client of `ep.to_host`.
    pub async fn connect(ep: &Endpoint, app: u32, timeout: Duration) -> anyhow::Result<Self> {
        let node = connect(ep, app, timeout).await?;
        let dra = ep.dra.map(|b| {
            DraClient::new(node.clone(), ep.to_host.clone(), b)
                .with_timeout(timeout)
                .with_direct_after_proxy(ep.dra_direct_after_proxy)
        });
        Ok(Self { node, dra, timeout })
    }

    /// The node (to register handlers for the server's requests, to shut down).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// A session's first request (CCR-I, the AAR opening an Rx session).
    pub async fn establish(&self, req: MessageBuilder) -> Result<Message, RequestError> {
        match &self.dra {
            Some(d) => d.establish(req).await,
            None => self.node.request_with_timeout(req, self.timeout).await,
        }
    }

    /// A request within a session.
    pub async fn request(&self, req: MessageBuilder) -> Result<Message, RequestError> {
        match &self.dra {
            Some(d) => d.request(req).await,
            None => self.node.request_with_timeout(req, self.timeout).await,
        }
    }

    /// A session's termination (CCR-T, STR).
    pub async fn terminate(&self, req: MessageBuilder) -> Terminated {
        match &self.dra {
            Some(d) => {
                let e = d.terminate(req).await;
                let dra_result = e.dra_result();
                Terminated {
                    answer: e.pcrf,
                    path: Some(e.path.as_str()),
                    dra_result,
                }
            }
            None => Terminated {
                answer: self.node.request_with_timeout(req, self.timeout).await,
                path: None,
                dra_result: None,
            },
        }
    }
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
    cfg.host_map.extend(ep.peers.iter().cloned());
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
