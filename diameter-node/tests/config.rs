//! The TOML configuration: the documented example loads and every table lands in
//! `NodeConfig`; mistakes are reported with the file, line, column and key; an operator's
//! dictionary file reaches the node's validator; a server embeds `[node]` in its own file.

use diameter_codec::{AvpFlags, AvpValue, Message, MessageBuilder, OwnedAvp};
use diameter_node::config::{ConfigError, NodeToml, load_config, load_node_config, parse_config};
use diameter_node::node::{Node, NodeConfig, PeerSpec, handler_fn};
use diameter_node::peer::{Application, InbandSecurity, UnknownPeerPolicy};
use diameter_node::routing::{RedirectUsage, RouteAction};
use diameter_node::transport::TransportKind;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{DCCA, any_addr, rc};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node.toml")
}

/// Writes `text` to `name` in a fresh directory and loads it as a node file.
fn load_text(name: &str, text: &str) -> (tempfile::TempDir, Result<NodeConfig, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let r = load_node_config(&path);
    (dir, r)
}

fn error_of(text: &str) -> String {
    let (dir, r) = load_text("bad.toml", text);
    let e = r.err().expect("an error");
    let shown = e.to_string();
    let file = dir.path().join("bad.toml").display().to_string();
    assert!(shown.starts_with(&file), "{shown}");
    shown[file.len()..].to_string()
}

const MINIMAL: &str = "[node]\norigin_host = \"a.example\"\norigin_realm = \"example\"\n";

#[test]
fn the_example_loads_and_every_table_lands_in_node_config() {
    let cfg = load_node_config(example()).unwrap();
    let l = &cfg.local;
    assert_eq!(l.origin_host, "pcrf.example.net");
    assert_eq!(l.origin_realm, "example.net");
    assert_eq!(l.product_name, "example-pcrf");
    assert_eq!(l.vendor_id, 10415);
    assert_eq!(l.firmware_revision, Some(1));
    assert_eq!(
        l.host_ip_addresses,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(l.supported_vendor_ids, [10415]);
    assert_eq!(l.inband_security, InbandSecurity::Omit);
    assert_eq!(l.unknown_peer, UnknownPeerPolicy::Reject);
    assert_eq!(
        l.applications,
        [
            Application::vendor_auth(10415, 16_777_238),
            Application::auth(4)
        ]
    );
    assert!(!cfg.agent);
    assert!(cfg.validate);
    assert_eq!(cfg.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(cfg.request_timeout, Duration::from_secs(10));
    assert_eq!(cfg.frame_timeout, Duration::from_secs(10));
    assert_eq!(cfg.handshake_timeout, Duration::from_secs(10));
    assert_eq!(cfg.max_pending, 65_536);
    assert_eq!(cfg.max_concurrent_handlers, 8_192);
    assert_eq!(cfg.peer_queue, 16_384);
    assert_eq!(cfg.max_handshaking, 256);
    assert_eq!(cfg.limits.max_message_len, 65_532);
    assert_eq!(cfg.limits.max_depth, 16);
    assert_eq!(cfg.limits.max_avps, 4_096);
    assert_eq!(cfg.dedup_window, Duration::from_secs(60));
    assert_eq!(cfg.dedup_capacity, 200_000);
    assert!(cfg.capture.is_none());

    assert_eq!(cfg.listen.len(), 1);
    assert_eq!(cfg.listen[0].addr, "0.0.0.0:3868".parse().unwrap());
    assert_eq!(cfg.listen[0].transport.kind(), TransportKind::Tcp);

    assert_eq!(cfg.peers.len(), 2);
    let (p1, p2) = (&cfg.peers[0], &cfg.peers[1]);
    assert_eq!((p1.host.as_str(), p1.connect), ("pcef1.example.net", None));
    assert_eq!(p1.timers.tc, Duration::from_secs(30));
    assert_eq!(p1.timers.tw, Duration::from_secs(30));
    assert_eq!(p1.timers.hold_off, Duration::from_secs(1800));
    assert_eq!(p2.host, "dra1.example.net");
    assert_eq!(p2.connect, Some("192.0.2.10:3868".parse().unwrap()));
    assert_eq!(p2.transport.kind(), TransportKind::Tcp);
    // The peer's own timers over [node.timers].
    assert_eq!(p2.timers.tw, Duration::from_secs(10));
    assert_eq!(p2.timers.tc, Duration::from_secs(5));
    assert_eq!(p2.timers.dpa, Duration::from_secs(5));
    assert_eq!(p2.timers.linger, Duration::from_secs(2));

    assert_eq!(cfg.routes.len(), 3);
    let r = &cfg.routes;
    assert_eq!(
        (r[0].realm.as_str(), r[0].application, r[0].action),
        ("example.net", Some(16_777_238), RouteAction::Local)
    );
    assert_eq!(
        (r[1].realm.as_str(), r[1].action),
        ("*", RouteAction::Relay)
    );
    assert_eq!(r[1].peers[0].host, "dra1.example.net");
    assert_eq!((r[1].peers[0].priority, r[1].peers[0].weight), (0, 1));
    assert_eq!(r[2].action, RouteAction::Redirect);
    assert_eq!(r[2].redirect_usage, RedirectUsage::AllRealm);
    assert_eq!(r[2].redirect_cache_time, Duration::from_secs(600));
    assert_eq!(r[2].peers[0].host, "hpcrf.visited.example.org");

    assert_eq!(
        cfg.host_map.get("hpcrf.visited.example.org"),
        Some(&"198.51.100.7:3868".parse().unwrap())
    );
    // The example's operator dictionary is in the node's dictionary.
    let avp = cfg.dictionary.avp_by_name("Example-Tariff-Class").unwrap();
    assert_eq!((avp.key.code, avp.key.vendor), (9001, 99_999));
    assert!(cfg.dictionary.avp_by_name("CC-Request-Type").is_some());
}

#[test]
fn every_key_changes_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[node]
origin_host = "Agent.Example"
origin_realm = "example"
inband_security = "no-inband-security"
unknown_peer = "close"
agent = true
validate = false
strict_validation_applications = [4, 16777238]
strict_m_bit = true
capture = "out.pcapng"
request_timeout = 2.5
frame_timeout = 0.25
handshake_timeout = 3
cer_timeout = 1.5
write_queue_bytes = 65536
write_stall_timeout = 4
max_pending = 10
max_concurrent_handlers = 11
peer_queue = 12
max_handshaking = 13
max_handshaking_per_source = 2
limits = { max_message_len = 4000, max_depth = 4, max_avps = 100 }
dedup = { window = 7, capacity = 99, max_bytes = 4096 }
hosts = { "Other.Example" = "127.0.0.1:3999" }

[[node.applications]]
kind = "relay"

[[node.applications]]
id = 3
kind = "acct"
vendor = 10415

[[node.peers]]
host = "next.example"
connect = "127.0.0.1:3868"

[[node.routes]]
realm = "r.example"
action = "proxy"
peers = [{ host = "a" }, { host = "b", weight = 3 }]
"#;
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = load_node_config(&path).unwrap();
    assert_eq!(cfg.local.inband_security, InbandSecurity::NoInbandSecurity);
    assert_eq!(cfg.local.unknown_peer, UnknownPeerPolicy::Close);
    assert!(cfg.agent && !cfg.validate);
    assert_eq!(cfg.strict_validation_applications, [4, 16_777_238]);
    assert!(cfg.strict_m_bit);
    assert_eq!(cfg.request_timeout, Duration::from_millis(2500));
    assert_eq!(cfg.frame_timeout, Duration::from_millis(250));
    assert_eq!(cfg.handshake_timeout, Duration::from_secs(3));
    assert_eq!(cfg.cer_timeout, Duration::from_millis(1500));
    assert_eq!(cfg.write_stall_timeout, Duration::from_secs(4));
    assert_eq!(
        (
            cfg.write_queue_bytes,
            cfg.max_handshaking_per_source,
            cfg.dedup_max_bytes
        ),
        (65_536, 2, 4096)
    );
    assert_eq!(
        (
            cfg.max_pending,
            cfg.max_concurrent_handlers,
            cfg.peer_queue,
            cfg.max_handshaking
        ),
        (10, 11, 12, 13)
    );
    assert_eq!(
        (
            cfg.limits.max_message_len,
            cfg.limits.max_depth,
            cfg.limits.max_avps
        ),
        (4000, 4, 100)
    );
    assert_eq!(
        (cfg.dedup_window, cfg.dedup_capacity),
        (Duration::from_secs(7), 99)
    );
    assert_eq!(
        cfg.local.applications,
        [Application::relay(), Application::vendor_acct(10415, 3)]
    );
    // Host names are matched without case (RFC 6733 §4.3.1 DiameterIdentity).
    assert_eq!(
        cfg.host_map.get("other.example"),
        Some(&"127.0.0.1:3999".parse().unwrap())
    );
    let r = &cfg.routes[0];
    assert_eq!(r.action, RouteAction::Proxy);
    assert_eq!((r.peers[1].priority, r.peers[1].weight), (1, 3));
    assert_eq!(r.redirect_usage, RedirectUsage::DontCache);
    // The capture is opened relative to the file's directory.
    assert!(cfg.capture.is_some());
    assert!(dir.path().join("out.pcapng").exists());
    // Unset: the embedded dictionary.
    assert!(std::ptr::eq(
        cfg.dictionary,
        diameter_codec::Dictionary::embedded()
    ));
}

#[test]
fn unknown_keys_are_reported_with_line_and_key() {
    // Top level of [node].
    let e = error_of(&format!("{MINIMAL}max_pendign = 5\n"));
    assert!(e.starts_with(":4:1: "), "{e}");
    assert!(e.contains("unknown key `max_pendign`"), "{e}");
    // Nested: a peer's timers.
    let e = error_of(&format!(
        "{MINIMAL}\n[[node.peers]]\nhost = \"p\"\n\n[node.peers.timers]\ntw = 30\ntx = 5\n"
    ));
    assert!(e.starts_with(":10:1: "), "{e}");
    assert!(e.contains("unknown key `tx`"), "{e}");
    assert!(e.contains("node.peers[0].timers"), "{e}");
    // A table beside [node].
    let e = error_of(&format!("{MINIMAL}\n[nodes]\nx = 1\n"));
    assert!(e.starts_with(":5:"), "{e}");
    assert!(e.contains("unknown key `nodes`"), "{e}");
}

#[test]
fn wrong_types_and_values_name_the_key() {
    let e = error_of(&format!("{MINIMAL}max_pending = \"lots\"\n"));
    assert!(e.starts_with(":4:15: "), "{e}");
    assert!(e.contains("node.max_pending"), "{e}");
    let e = error_of(&format!(
        "{MINIMAL}[[node.listen]]\naddr = \"127.0.0.1:3868\"\ntransport = \"sctp\"\n"
    ));
    assert!(e.starts_with(":6:13: "), "{e}");
    assert!(
        e.contains("node.listen[0].transport") && e.contains("sctp"),
        "{e}"
    );
    let e = error_of(&format!("{MINIMAL}request_timeout = -1\n"));
    assert!(e.starts_with(":4:"), "{e}");
    assert!(e.contains("node.request_timeout"), "{e}");
    let e = error_of("[node]\norigin_host = \"a\"\n");
    assert!(e.contains("missing key `origin_realm`"), "{e}");
    // Syntax errors too.
    let e = error_of(&format!("{MINIMAL}agent = tru\n"));
    assert!(e.starts_with(":4:"), "{e}");
}

#[test]
fn conversion_errors_name_the_file_and_key() {
    let e = error_of(&format!(
        "{MINIMAL}[[node.listen]]\naddr = \"127.0.0.1:0\"\ntransport = \"tls\"\n"
    ));
    assert!(
        e.contains("node.listen[0]") && e.contains("[node.tls]"),
        "{e}"
    );
    let e = error_of(&format!(
        "{MINIMAL}[node.tls]\ncert = \"nope.crt\"\nkey = \"nope.key\"\nca = \"ca.crt\"\n\
         [[node.peers]]\nhost = \"p\"\nconnect = \"127.0.0.1:1\"\ntransport = \"tls\"\n"
    ));
    assert!(e.contains("node.peers[0]") && e.contains("ca.crt"), "{e}");
    let e = error_of(&format!("{MINIMAL}dictionaries = [\"missing.toml\"]\n"));
    assert!(
        e.contains("node.dictionaries") && e.contains("missing.toml"),
        "{e}"
    );
    let e = error_of(&format!(
        "{MINIMAL}[[node.applications]]\nkind = \"auth\"\n"
    ));
    assert!(
        e.contains("node.applications[0]") && e.contains("id"),
        "{e}"
    );
}

#[test]
fn tls_files_are_loaded_for_listeners_and_peers() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["a.example".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("a.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("a.key"), key.serialize_pem()).unwrap();
    let text = format!(
        "{MINIMAL}[node.tls]\ncert = \"a.crt\"\nkey = \"a.key\"\nca = \"a.crt\"\n\
         [[node.listen]]\naddr = \"127.0.0.1:0\"\ntransport = \"tls\"\n\
         [[node.listen]]\naddr = \"127.0.0.1:0\"\n\
         [[node.peers]]\nhost = \"b.example\"\nconnect = \"127.0.0.1:5658\"\ntransport = \"tls\"\n\
         tls = {{ cert = \"a.crt\", key = \"a.key\", ca = \"a.crt\" }}\n"
    );
    let path = dir.path().join("tls.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = load_node_config(&path).unwrap();
    assert_eq!(cfg.listen[0].transport.kind(), TransportKind::Tls);
    assert_eq!(cfg.listen[1].transport.kind(), TransportKind::Tcp);
    assert_eq!(cfg.peers[0].transport.kind(), TransportKind::Tls);
}

/// A server's own file: its tables beside `[node]`, with the same error reporting.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    node: NodeToml,
    policy: Policy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    default_rule: String,
}

#[test]
fn a_server_embeds_the_node_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(
        &path,
        format!("{MINIMAL}\n[policy]\ndefault_rule = \"r1\"\n"),
    )
    .unwrap();
    let f: ServerFile = load_config(&path).unwrap();
    assert_eq!(f.policy.default_rule, "r1");
    assert_eq!(
        f.node.to_node_config(&path).unwrap().local.origin_host,
        "a.example"
    );
    let e = parse_config::<ServerFile>(
        &path,
        &format!("{MINIMAL}\n[policy]\ndefault_rul = \"r1\"\n"),
    )
    .err()
    .unwrap();
    assert_eq!(e.position, Some((6, 1)));
    assert!(e.message.contains("unknown key `default_rul`"), "{e}");
}

/// A CCR carrying the example operator's M-bit AVP.
fn ccr_with_operator_avp() -> MessageBuilder {
    let mut b = common::ccr("c.example;1;1", "client.example", "example", "example.net");
    b.push(OwnedAvp::new(
        9001,
        99_999,
        AvpFlags::MANDATORY | AvpFlags::VENDOR,
        AvpValue::U32(2),
    ));
    b
}

async fn answer_with(cfg_dict: Option<&'static diameter_codec::Dictionary>) -> u32 {
    let mut srv = NodeConfig::new("server.example", "example.net");
    if let Some(d) = cfg_dict {
        srv.dictionary = d;
    }
    srv.local.applications.push(Application::auth(DCCA));
    srv.listen.push(any_addr().into());
    srv.peers.push(PeerSpec::accept_only("client.example"));
    let server = Node::start(srv).await.unwrap();
    server.register(
        DCCA,
        handler_fn(|req| async move { req.answer(diameter_codec::ResultCode::DIAMETER_SUCCESS) }),
    );
    let mut cli = NodeConfig::new("client.example", "example");
    cli.local.applications.push(Application::auth(DCCA));
    cli.peers.push(PeerSpec::connect_tcp(
        "server.example",
        server.listen_addrs()[0],
    ));
    cli.routes.push(diameter_node::node::relay_route(
        "example.net",
        None,
        &["server.example"],
    ));
    cli.validate = false;
    let client = Node::start(cli).await.unwrap();
    assert!(
        client
            .wait_peer("server.example", Duration::from_secs(5))
            .await
    );
    let a: Message = client
        .request_with_timeout(ccr_with_operator_avp(), Duration::from_secs(5))
        .await
        .unwrap();
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
    rc(&a)
}

#[tokio::test]
async fn an_operator_avp_is_known_to_the_nodes_validator() {
    // Without the operator's file: RFC 6733 §6.1.8, an unknown AVP with M set is 5001.
    assert_eq!(answer_with(None).await, 5001);
    let cfg = load_node_config(example()).unwrap();
    assert_eq!(answer_with(Some(cfg.dictionary)).await, 2001);
}

#[tokio::test]
async fn a_node_makes_session_ids_with_its_identity() {
    let mut cfg = NodeConfig::new("pcef.example", "example");
    cfg.listen.push(any_addr().into());
    let node = Node::start(cfg).await.unwrap();
    let (a, b) = (node.session_ids().next_id(), node.session_ids().next_id());
    // RFC 6733 §8.8: <DiameterIdentity>;<high 32 bits>;<low 32 bits>.
    let pa: Vec<&str> = a.split(';').collect();
    let pb: Vec<&str> = b.split(';').collect();
    assert_eq!((pa.len(), pa[0]), (3, "pcef.example"));
    assert_eq!(pa[1], pb[1]);
    assert_eq!(
        pb[2].parse::<u32>().unwrap(),
        pa[2].parse::<u32>().unwrap() + 1
    );
    node.shutdown(Duration::from_secs(1)).await;
}
