//! The Gy server answers Gy clients that nobody here wrote: the `ocs` binary, as a user
//! starts it, driven by python-diameter (the CCAs' content as that library decodes it) and
//! by Erlang/OTP's `diameter` with an RFC 4006 dictionary (OTP's codec checks each CCA
//! against the CCA grammar). Each client is skipped when absent, unless CI requires it
//! (tests/interop/harness.rs).

mod common;
#[path = "../../tests/interop/harness.rs"]
mod interop;

use common::free_addr;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `ocs` binary with the demo subscribers on free ports, killed when dropped.
struct OcsChild {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl OcsChild {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let child = Command::new(env!("CARGO_BIN_EXE_ocs"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--admin")
            .arg(free_addr().to_string())
            .arg("--data")
            .arg(dir.path().join("ocs.redb"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting ocs");
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < end, "ocs not listening on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for OcsChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// python-diameter's CCR-I (MSCC asking for units of rating group 1, IMSI 001010000000001),
/// CCR-U (Used-Service-Unit) and CCR-T, each answered 2001 with the request's
/// CC-Request-Type and CC-Request-Number, Auth-Application-Id 4, and one MSCC for rating
/// group 1 with Result-Code 2001 and a Granted-Service-Unit (none on termination).
#[test]
fn python_diameter_gy_session() {
    let Some(script) = interop::python_diameter_client() else {
        return;
    };
    let ocs = OcsChild::start();
    let (ok, text) = interop::run_bounded(
        Command::new(interop::python())
            .arg(&script)
            .args(["--port", &ocs.addr.port().to_string()])
            .args(["--scenario", "gy", "--imsi", common::IMSI_RICH]),
        Duration::from_secs(60),
    );
    assert!(ok, "{text}");
    assert!(text.contains("0 failed"), "{text}");
    // Every check of the scenario ran (three requests, the MSCC checks of each).
    for what in ["CCR-I", "CCR-U", "CCR-T"] {
        assert!(
            text.contains(&format!("ok   {what}: MSCC Result-Code 2001")),
            "{text}"
        );
    }
}

/// Erlang/OTP's client: CER/CEA by OTP, then CCR-I/U/T; each CCA decodes under OTP's codec
/// for the RFC 4006 CCA grammar without errors, with Result-Code 2001 and a
/// Granted-Service-Unit in the MSCC (none on termination).
#[test]
fn erlang_otp_diameter_gy_session() {
    let Some(script) = interop::erlang_gy_client() else {
        return;
    };
    let ocs = OcsChild::start();
    let work = tempfile::tempdir().unwrap();
    let (ok, text) = interop::run_bounded(
        Command::new("escript")
            .arg(&script)
            .arg(ocs.addr.port().to_string())
            .arg(work.path())
            .arg(common::IMSI_RICH),
        Duration::from_secs(90),
    );
    assert!(ok, "{text}");
    assert!(text.contains("0 failed"), "{text}");
    for what in ["CCR-I", "CCR-U", "CCR-T"] {
        assert!(
            text.contains(&format!(
                "ok   {what}: CCA decodes without errors under the CCA grammar"
            )),
            "{text}"
        );
    }
}
