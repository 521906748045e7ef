//! Two nodes over mutually authenticated TLS on loopback, with certificates made here by
//! rcgen: the exchange works; a client whose certificate does not vouch for its Origin-Host,
//! or that comes from another CA, never opens the peer; nor does a server whose certificate
//! names another host.

use diameter_codec::MessageBuilder;
use diameter_codec::dict::base;
use diameter_node::node::{ListenSpec, Node, NodeConfig, PeerSpec, relay_route};
use diameter_node::peer::{Application, Timers};
use diameter_node::transport::{TlsConfig, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;
use common::{DCCA, counting_handler};
const CLIENT: &str = "client.example";
const SERVER: &str = "server.example";

/// A certificate authority.
struct Ca {
    pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A leaf for `dns` (subjectAltName dNSName), signed by this CA: (chain PEM, key PEM).
    fn leaf(&self, dns: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, dns);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// TLS for a node trusting `trust`, presenting a leaf for `dns` issued by `issuer`.
fn tls(trust: &Ca, issuer: &Ca, dns: &str) -> Transport {
    let (chain, key) = issuer.leaf(dns);
    Transport::Tls(Arc::new(
        TlsConfig::from_pem(trust.pem.as_bytes(), chain.as_bytes(), key.as_bytes()).unwrap(),
    ))
}

/// A TLS server for DCCA that accepts `client.example`, counting handled requests.
async fn server(transport: Transport) -> (Node, SocketAddr, Arc<AtomicUsize>) {
    let mut cfg = NodeConfig::new(SERVER, "example");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.listen.push(ListenSpec {
        addr: "127.0.0.1:0".parse().unwrap(),
        transport,
    });
    cfg.peers.push(PeerSpec::accept_only(CLIENT));
    cfg.cer_timeout = Duration::from_secs(2);
    let node = Node::start(cfg).await.unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    node.register(DCCA, counting_handler(handled.clone(), Duration::ZERO));
    let addr = node.listen_addrs()[0];
    (node, addr, handled)
}

async fn client(addr: SocketAddr, transport: Transport) -> Node {
    let mut cfg = NodeConfig::new(CLIENT, "client.realm");
    cfg.local.applications.push(Application::auth(DCCA));
    cfg.peers.push(PeerSpec {
        host: SERVER.into(),
        connect: Some(addr),
        transport,
        timers: Timers {
            tc: Duration::from_millis(200),
            ..Timers::default()
        },
        forwards: false,
        addresses: Vec::new(),
    });
    cfg.routes
        .push(relay_route("example", Some(DCCA), &[SERVER]));
    cfg.handshake_timeout = Duration::from_secs(2);
    Node::start(cfg).await.unwrap()
}

fn ccr(session: &str) -> MessageBuilder {
    common::ccr(session, CLIENT, "client.realm", "example")
}

/// Neither side may see the other open for a while (several Tc retries and handshakes).
async fn never_opens(srv: &Node, cli: &Node) {
    assert!(
        !cli.wait_peer(SERVER, Duration::from_millis(1500)).await,
        "client opened the peer"
    );
    assert!(!srv.is_peer_available(CLIENT), "server opened the peer");
    // No cleartext fallback, no route: the request fails locally.
    let r = cli
        .request_with_timeout(ccr("refused"), Duration::from_secs(1))
        .await;
    assert!(r.is_err(), "request went through: {r:?}");
    assert_eq!(cli.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_answer_over_mutual_tls() {
    let ca = Ca::new("Test CA");
    let (srv, addr, handled) = server(tls(&ca, &ca, SERVER)).await;
    let cli = client(addr, tls(&ca, &ca, CLIENT)).await;
    assert!(cli.wait_peer(SERVER, Duration::from_secs(5)).await);
    assert!(srv.wait_peer(CLIENT, Duration::from_secs(5)).await);
    for i in 0..20 {
        let a = cli.request(ccr(&format!("tls;{i}"))).await.unwrap();
        assert_eq!(a.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
        assert_eq!(a.session_id(), Some(format!("tls;{i}").as_str()));
    }
    assert_eq!(handled.load(Ordering::SeqCst), 20);
    assert_eq!(cli.pending(), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_for_another_name_is_refused() {
    let ca = Ca::new("Test CA");
    let (srv, addr, handled) = server(tls(&ca, &ca, SERVER)).await;
    // A valid certificate from the right CA, but for another host than the CER's
    // Origin-Host (client.example): bad-inputs 40 over TLS.
    let cli = client(addr, tls(&ca, &ca, "intruder.example")).await;
    never_opens(&srv, &cli).await;
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_another_ca_is_refused() {
    let ca = Ca::new("Test CA");
    let rogue = Ca::new("Rogue CA");
    let (srv, addr, handled) = server(tls(&ca, &ca, SERVER)).await;
    // The client trusts the server's CA but presents a certificate for the right name
    // issued by another CA.
    let cli = client(addr, tls(&ca, &rogue, CLIENT)).await;
    never_opens(&srv, &cli).await;
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_for_another_name_is_refused() {
    let ca = Ca::new("Test CA");
    let (srv, addr, handled) = server(tls(&ca, &ca, "impostor.example")).await;
    let cli = client(addr, tls(&ca, &ca, CLIENT)).await;
    never_opens(&srv, &cli).await;
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_client_against_tls_listener_is_refused() {
    let ca = Ca::new("Test CA");
    let (srv, addr, handled) = server(tls(&ca, &ca, SERVER)).await;
    let cli = client(addr, Transport::Tcp).await;
    never_opens(&srv, &cli).await;
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    cli.shutdown(Duration::from_secs(1)).await;
    srv.shutdown(Duration::from_secs(1)).await;
}
