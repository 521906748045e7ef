//! `pcrf` as a user runs it: the help text, configuration errors, the example
//! configuration, and the built-in home PCRF driven by an independent Gx client
//! (python-diameter) with its metrics and capture checked afterwards.

#[path = "../../tests/interop/harness.rs"]
mod harness;

use harness::{
    Killed, assert_dissects_cleanly, free_port, python_diameter_client, run_python_scenario,
    tshark_available, tshark_fields, wait_listening,
};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pcrf");

fn spawn(args: &[&str]) -> Killed {
    Killed(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pcrf"),
    )
}

/// GET /metrics, the body.
fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

#[test]
fn help_says_how_to_start_and_push() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--config",
        "--capture",
        "--metrics",
        "127.0.0.1:3869",
        "pcrf.home.test",
        "001010000000001",
        "ocs.home.test",
        "/rar?install=",
        "roaming_partner",
        "/s9-sessions/S9-SESSION-ID/rar?subsession=1",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
}

#[test]
fn configuration_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pcrf.toml");
    std::fs::write(
        &path,
        "[node]\norigin_host = \"a\"\norigin_realm = \"b\"\n[spr]\nfile = \"spr.toml\"\nlisten_addr = 1\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:6:1:", path.display())) && err.contains("listen_addr"),
        "{err}"
    );
}

#[test]
fn the_example_home_configuration_runs() {
    let port = free_port();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/home.toml");
    let _pcrf = spawn(&[
        "--config",
        example,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--no-admin",
    ]);
    wait_listening(port);
}

/// A Gx client nobody here wrote (python-diameter) opens, updates (a RAT change the
/// policies react to) and ends a session with demo subscriber 001010000000001 and gets
/// 5030 for an unknown IMSI; it checks the CCAs' rules, QoS, charging and grammar fields.
/// The PCRF's metrics and capture then show that traffic.
#[test]
fn an_independent_gx_client_gets_rules_and_qos_from_the_built_in_pcrf() {
    let Some(script) = python_diameter_client() else {
        return;
    };
    let (port, mport) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("pcrf.pcapng");
    let pcrf = spawn(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--metrics",
        &format!("127.0.0.1:{mport}"),
        "--capture",
        capture.to_str().unwrap(),
        "--no-admin",
    ]);
    wait_listening(port);
    run_python_scenario(&script, port, "gx-pcrf");
    let m = scrape(mport);
    for want in [
        "pcrf_gx_ccr_total{node=\"pcrf.home.test\",type=\"initial\",result_code=\"2001\"} 1",
        "pcrf_gx_ccr_total{node=\"pcrf.home.test\",type=\"initial\",result_code=\"5030\"} 1",
        "pcrf_gx_ccr_total{node=\"pcrf.home.test\",type=\"update\",result_code=\"5002\"} 1",
        "pcrf_gx_ccr_total{node=\"pcrf.home.test\",type=\"termination\",result_code=\"2001\"} 1",
        "pcrf_gx_sessions{node=\"pcrf.home.test\"} 0",
        "pcrf_rules_installed_total{node=\"pcrf.home.test\",kind=\"dynamic\"} 2",
        "pcrf_rules_installed_total{node=\"pcrf.home.test\",kind=\"predefined\"} 1",
        "pcrf_gx_sessions_released_total{node=\"pcrf.home.test\",reason=\"termination\"} 1",
    ] {
        assert!(m.contains(want), "{want} not in\n{m}");
    }
    // A clean stop (SIGTERM) exits 0 with the capture flushed.
    let status = pcrf.terminate().expect("pcrf stops on SIGTERM");
    assert!(status.success(), "{status}");
    let len = std::fs::metadata(&capture).map(|m| m.len()).unwrap_or(0);
    assert!(len > 1000, "capture of {len} bytes");
    // Wireshark reads what we sent as we meant it: no malformed packet, no expert error
    // (severity error is 0x00800000), and the rule, its rating group and the OCS in the
    // CCA-I.
    if tshark_available() {
        assert_dissects_cleanly(&capture);
        let cca = tshark_fields(
            &capture,
            "diameter.Charging-Rule-Install && diameter.Primary-Event-Charging-Function-Name",
            &[
                "diameter.Rating-Group",
                "diameter.Primary-Event-Charging-Function-Name",
                "diameter.QoS-Class-Identifier",
            ],
        );
        assert!(
            cca.contains("10\taaa://ocs.home.test:3870;transport=tcp\t9"),
            "{cca}"
        );
    }
}

/// An independent PCEF and AF (python-diameter, AAR built with the library's AaRequest and
/// MediaComponentDescription) against the built-in PCRF: the AF's media installed on the
/// PCEF by Gx RAR, STR removing it, loss of bearer reported after CCR-T, 5065 without an
/// IP-CAN session. The PCRF's Rx metrics and capture then show that traffic.
#[test]
fn an_independent_af_gets_its_media_installed_on_the_pcef() {
    let Some(script) = python_diameter_client() else {
        return;
    };
    let (port, mport) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("pcrf-rx.pcapng");
    let pcrf = spawn(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--metrics",
        &format!("127.0.0.1:{mport}"),
        "--capture",
        capture.to_str().unwrap(),
        "--no-admin",
    ]);
    wait_listening(port);
    run_python_scenario(&script, port, "rx-pcrf");
    let m = scrape(mport);
    for want in [
        "pcrf_rx_request_total{node=\"pcrf.home.test\",command=\"aar_initial\",result_code=\"2001\"} 2",
        "pcrf_rx_request_total{node=\"pcrf.home.test\",command=\"aar_initial\",result_code=\"5065\"} 1",
        "pcrf_rx_request_total{node=\"pcrf.home.test\",command=\"str\",result_code=\"2001\"} 2",
        "pcrf_rx_notification_total{node=\"pcrf.home.test\",command=\"rar\",reason=\"ip_can_loss\",result_code=\"2001\"} 1",
        "pcrf_rx_sessions{node=\"pcrf.home.test\"} 0",
        "pcrf_gx_rar_total{node=\"pcrf.home.test\",result_code=\"2001\"} 3",
    ] {
        assert!(m.contains(want), "{want} not in\n{m}");
    }
    let status = pcrf.terminate().expect("pcrf stops on SIGTERM");
    assert!(status.success(), "{status}");
    // Wireshark reads the Rx and Gx traffic without a malformed packet or expert error, the
    // AAR's flows in the Gx RAR and the loss of bearer in the Rx RAR.
    if tshark_available() {
        assert_dissects_cleanly(&capture);
        let rar = tshark_fields(
            &capture,
            "diameter.cmd.code == 258 && diameter.applicationId == 16777238 && diameter.Charging-Rule-Install",
            &["diameter.QoS-Class-Identifier", "diameter.Flow-Description"],
        );
        assert!(
            rar.contains("1\tpermit out 17 from 198.51.100.7 40000 to 10.45.0.4 50000"),
            "{rar}"
        );
        let rx = tshark_fields(
            &capture,
            "diameter.cmd.code == 258 && diameter.applicationId == 16777236 && diameter.flags.request == 1",
            &["diameter.Specific-Action", "diameter.Abort-Cause"],
        );
        assert_eq!(rx.trim(), "2\t0", "{rx}");
    }
}
