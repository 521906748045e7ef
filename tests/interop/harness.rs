//! The independent Diameter clients that interop tests drive our servers with (python-diameter,
//! Erlang/OTP's `diameter`): finding them, skipping when absent, running them bounded in time.
//!
//! Included with `#[path]` by the integration tests of every crate whose servers they test
//! (diameter-bench, ocs); those crates sit one directory below the workspace root. When a
//! client is missing a test prints SKIP, unless its DIAMETER_REQUIRE_* variable (set by
//! `.ci/run`) makes it fail.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
