//! End-to-end test crate. Suites live in `tests/tests/*.rs`; shared helpers (free ports,
//! spawning binaries by PID) live here.
