//! `diameter-bench` as a user runs it: help texts, and short echo ← relay ← load chains
//! (default and busy-polling relay) whose every request is answered 2001.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../diameter-node/tests/common/mod.rs"]
mod common;

const BIN: &str = env!("CARGO_BIN_EXE_diameter-bench");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Killed {
    Killed(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn diameter-bench"),
    )
}

fn wait_listening(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_for_every_subcommand() {
    for sub in ["echo", "relay", "load"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--capture") && text.contains("--metrics"),
            "{sub}: {text}"
        );
    }
}

/// An echo server and a relay in front of it (with `relay_args` added), as child processes.
struct Chain {
    _echo: Killed,
    relay: Killed,
    relay_port: u16,
}

fn chain(relay_args: &[&str]) -> Chain {
    let (pe, pr) = (common::free_addr().port(), common::free_addr().port());
    let echo = spawn(&[
        "echo",
        "--listen",
        &format!("127.0.0.1:{pe}"),
        "--host",
        "echo.bench",
    ]);
    wait_listening(pe);
    let listen = format!("127.0.0.1:{pr}");
    let to = format!("127.0.0.1:{pe}");
    let mut args = vec![
        "relay",
        "--listen",
        &listen,
        "--to",
        &to,
        "--to-host",
        "echo.bench",
        "--host",
        "relay.bench",
        "--realm",
        "relay",
    ];
    args.extend_from_slice(relay_args);
    let relay = spawn(&args);
    wait_listening(pr);
    Chain {
        _echo: echo,
        relay,
        relay_port: pr,
    }
}

/// Runs the load client through the chain's relay and returns its JSON report, checked:
/// answers came back, every one 2001, none lost.
fn load(chain: &Chain, in_flight: u32) -> serde_json::Value {
    let out = Command::new(BIN)
        .args([
            "load",
            "--to",
            &format!("127.0.0.1:{}", chain.relay_port),
            "--to-host",
            "relay.bench",
        ])
        .args(["--in-flight", &in_flight.to_string()])
        .args(["--duration", "1", "--warmup", "0.2", "--json"])
        .args(["--host", "client.bench", "--realm", "client"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(r["answers"].as_u64().unwrap() > 100, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["non_success"], 0, "{r}");
    assert!(r["latency_us"]["p99"].as_u64().unwrap() > 0);
    r
}

/// SIGTERM: the relay disconnects with DPR, flushes its capture and exits 0.
fn stop(chain: &mut Chain) {
    Command::new("kill")
        .args(["-TERM", &chain.relay.0.id().to_string()])
        .status()
        .unwrap();
    let status = chain.relay.0.wait().unwrap();
    assert!(status.success(), "relay exit {status:?}");
}

#[test]
fn load_through_relay_to_echo() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("relay.pcapng");
    let mut chain = chain(&["--capture", capture.to_str().unwrap()]);
    load(&chain, 8);
    stop(&mut chain);
    let file = std::fs::File::open(&capture).unwrap();
    let mut reader = pcap_file::pcapng::PcapNgReader::new(file).expect("a pcapng file");
    let mut packets = 0;
    while let Some(block) = reader.next_block() {
        if matches!(
            block.expect("block"),
            pcap_file::pcapng::Block::EnhancedPacket(_)
        ) {
            packets += 1;
        }
    }
    assert!(packets > 200, "{packets} packets captured");
}

#[test]
fn busy_polling_relay() {
    // Busy polling drives one current-thread runtime; any other runtime is refused.
    let out = Command::new(BIN)
        .args(["relay", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9"])
        .args([
            "--to-host",
            "x.bench",
            "--busy-poll-us",
            "100",
            "--threads",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--busy-poll-us needs --threads 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It relays like the default one, at one and at many requests in flight, and stops
    // cleanly.
    let mut chain = chain(&["--busy-poll-us", "200"]);
    load(&chain, 1);
    load(&chain, 64);
    stop(&mut chain);
}
