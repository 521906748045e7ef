//! What the crates' tests need to run our binaries against clients nobody here wrote
//! (python-diameter, Erlang/OTP's `diameter`; their scripts sit beside this file): child
//! processes stopped on drop, waiting for a port, finding the clients, running them bounded
//! in time, reading captures with tshark. Included with
//! `#[path = "../../tests/interop/harness.rs"] mod harness;` from a crate's `tests/` (every
//! crate sits one level below the workspace root). When a client is missing a test prints
//! SKIP, unless its DIAMETER_REQUIRE_* variable (set by `.ci/run`) makes it fail.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
    // The tests of one binary run in parallel, and the kernel may hand a port this function
    // just let go of to its next caller before the first server has bound it: two servers
    // on one port, one test's client talking to the other's server. No port is given twice.
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if GIVEN.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return port;
        }
    }
}

/// This directory: the client scripts and the dictionary they use.
pub(crate) fn interop_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop"))
}

/// The Python to run interop clients with: `DIAMETER_PYTHON` (CI's virtual environment)
/// or `python3`.
pub(crate) fn python() -> String {
    std::env::var("DIAMETER_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether `cmd` runs and exits 0.
fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// SKIP (None) unless `require` is set, which makes the test fail instead.
fn skip(require: &str, what: &str, hint: &str) -> Option<PathBuf> {
    assert!(
        std::env::var_os(require).is_none(),
        "{require} is set but {what} is not available"
    );
    println!("SKIP: {what} not found ({hint})");
    None
}

/// The python-diameter client script, when Python can import that library.
/// Without it the test prints SKIP, unless DIAMETER_REQUIRE_PYTHON=1 (CI) makes it fail.
pub(crate) fn python_diameter_client() -> Option<PathBuf> {
    if succeeds(Command::new(python()).args(["-c", "import diameter.message"])) {
        return Some(interop_dir().join("python_client.py"));
    }
    skip(
        "DIAMETER_REQUIRE_PYTHON",
        "python3 with python-diameter",
        "pip install python-diameter",
    )
}

/// The Erlang/OTP Gy client escript, when `escript` runs and OTP's `diameter` application
/// can compile a dictionary (its include files come with Debian's erlang-dev).
/// Without them the test prints SKIP, unless DIAMETER_REQUIRE_ERLANG=1 (CI) makes it fail.
pub(crate) fn erlang_gy_client() -> Option<PathBuf> {
    let probe = "case filelib:is_file(filename:join(code:lib_dir(diameter), \
                 \"include/diameter_gen.hrl\")) of true -> halt(0); _ -> halt(1) end.";
    // `escript` exists when it can be started at all (it fails on a missing script).
    let escript = Command::new("escript")
        .arg("/nonexistent.escript")
        .stdin(Stdio::null())
        .output()
        .is_ok();
    if escript && succeeds(Command::new("erl").args(["-noshell", "-eval", probe])) {
        return Some(interop_dir().join("erlang_gy_client.escript"));
    }
    skip(
        "DIAMETER_REQUIRE_ERLANG",
        "Erlang/OTP with the diameter application",
        "apt-get install erlang-base erlang-diameter erlang-dev",
    )
}

/// Runs `cmd` for at most `limit` (then kills it) and returns whether it exited 0, and its
/// standard output followed by its standard error.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    // Read both pipes on their own threads so that a chatty client never blocks on a full
    // pipe while we wait for it.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the client") {
            break Some(s);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = out.join().unwrap_or_default();
    text.push_str(&err.join().unwrap_or_default());
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("{text}\n(killed after {limit:?})")),
    }
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
pub(crate) fn tshark_fields(capture: &Path, filter: &str, fields: &[&str]) -> String {
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

/// Asserts that Wireshark reads every packet of `capture` without a malformed packet or an
/// expert info of severity error (0x00800000).
pub(crate) fn assert_dissects_cleanly(capture: &Path) {
    let bad = tshark_fields(
        capture,
        "_ws.malformed || _ws.expert.severity >= 0x00800000",
        &["frame.number", "_ws.expert.message"],
    );
    assert!(bad.trim().is_empty(), "tshark objects:\n{bad}");
}

/// Runs `scenario` of the python-diameter client against 127.0.0.1:`port` (bounded: 60 s)
/// and asserts that every check held; returns its output.
pub(crate) fn run_python_scenario(script: &Path, port: u16, scenario: &str) -> String {
    let (ok, text) = run_bounded(
        Command::new(python()).arg(script).args([
            "--port",
            &port.to_string(),
            "--scenario",
            scenario,
        ]),
        Duration::from_secs(60),
    );
    assert!(ok, "scenario {scenario}:\n{text}");
    assert!(text.contains("0 failed"), "scenario {scenario}:\n{text}");
    text
}
