//! `diameter-bench` as a user runs it: help texts, and a short echo ← relay ← load chain
//! whose every request is answered 2001.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_diameter-bench");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

#[test]
fn load_through_relay_to_echo() {
    let (pe, pr) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("relay.pcapng");
    let _echo = spawn(&[
        "echo",
        "--listen",
        &format!("127.0.0.1:{pe}"),
        "--host",
        "echo.bench",
    ]);
    wait_listening(pe);
    let mut relay = spawn(&[
        "relay",
        "--listen",
        &format!("127.0.0.1:{pr}"),
        "--to",
        &format!("127.0.0.1:{pe}"),
        "--to-host",
        "echo.bench",
        "--host",
        "relay.bench",
        "--realm",
        "relay",
        "--capture",
        capture.to_str().unwrap(),
    ]);
    wait_listening(pr);
    let out = Command::new(BIN)
        .args([
            "load",
            "--to",
            &format!("127.0.0.1:{pr}"),
            "--to-host",
            "relay.bench",
        ])
        .args([
            "--in-flight",
            "8",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
        ])
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
    // SIGTERM: the relay disconnects with DPR and flushes its capture.
    Command::new("kill")
        .args(["-TERM", &relay.0.id().to_string()])
        .status()
        .unwrap();
    let status = relay.0.wait().unwrap();
    assert!(status.success(), "relay exit {status:?}");
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
