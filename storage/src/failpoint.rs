//! Crash points for tests: with `SILT_CRASH_AT=<name>` in the environment, the process
//! aborts (no unwinding, no cleanup, like `kill -9`) when it reaches the point of that
//! name. The crash tests use this to stop a compaction at each of its steps.

use std::sync::OnceLock;

pub(crate) fn hit(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var("SILT_CRASH_AT").ok()).as_deref() == Some(name) {
        eprintln!("silt: crashing at {name} (SILT_CRASH_AT)");
        std::process::abort();
    }
}
