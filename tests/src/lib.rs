//! End-to-end test crate. Suites live in `tests/tests/*.rs`; shared helpers (free ports,
//! spawning binaries by PID, reading captures through tshark) live here.

pub mod traces;

pub use traces::{
    TraceMessage, TsharkAvp, TsharkMessage, TsharkValue, trace_files, trace_messages, traces_dir,
    tshark_available, tshark_version,
};
