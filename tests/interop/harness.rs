//! What the crates' tests need to run our binaries against the python-diameter client
//! (`python_client.py` beside this file): child processes stopped on drop, waiting for a
//! port, finding a Python that has the library, running a scenario. Included with
//! `#[path = "../../tests/interop/harness.rs"] mod harness;` from a crate's `tests/` (every
//! crate sits one level below the workspace root, so the script's path is the same).
#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process, killed and reaped when dropped (also when the test panics).
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Killed {
    /// Stops the process as an operator would (SIGTERM, through kill(1)) and waits up to
    /// 10 s for it to exit; kills it after that. Returns how it exited.
    pub(crate) fn terminate(mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Waits up to 10 s until something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) fn wait_listening(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port that was free a moment ago (for a server started as a child process).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The Python to run interop clients with: `DIAMETER_PYTHON` (CI's virtual environment)
/// or `python3`.
pub(crate) fn python() -> String {
    std::env::var("DIAMETER_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The interop client script (python-diameter), when Python can import that library.
/// Without it the test prints SKIP, unless DIAMETER_REQUIRE_PYTHON=1 (CI) makes it fail.
pub(crate) fn python_diameter_client() -> Option<&'static str> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/interop/python_client.py"
    );
    let ok = Command::new(python())
        .args(["-c", "import diameter.message"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(script);
    }
    assert!(
        std::env::var_os("DIAMETER_REQUIRE_PYTHON").is_none(),
        "DIAMETER_REQUIRE_PYTHON is set but python3 cannot import python-diameter"
    );
    println!("SKIP: python3 with python-diameter not found (pip install python-diameter)");
    None
}

/// Whether tshark can be run. Without it the caller prints SKIP, unless
/// DIAMETER_REQUIRE_TSHARK=1 (CI) makes it fail.
pub(crate) fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !std::env::var("DIAMETER_REQUIRE_TSHARK").is_ok_and(|v| v == "1"),
            "DIAMETER_REQUIRE_TSHARK=1 but tshark was not found on PATH"
        );
        println!("SKIP: tshark not found");
    }
    ok
}

/// tshark's fields `fields` of the packets of `capture` matching display filter `filter`,
/// one line per packet, tab-separated.
pub(crate) fn tshark_fields(capture: &std::path::Path, filter: &str, fields: &[&str]) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(capture)
        .args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `scenario` of the client script against 127.0.0.1:`port` (bounded: the script's
/// socket timeout is 5 s per read) and asserts that every check held; returns its output.
pub(crate) fn run_python_scenario(script: &str, port: u16, scenario: &str) -> String {
    let out = Command::new(python())
        .arg(script)
        .args(["--port", &port.to_string(), "--scenario", scenario])
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scenario {scenario}:\n{text}");
    assert!(text.contains("0 failed"), "scenario {scenario}:\n{text}");
    text
}
