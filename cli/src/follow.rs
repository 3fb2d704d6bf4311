//! `silt query --tail`: print a log query's newest entries, then keep polling for new
//! ones (once a second) until Ctrl-C. Polling works the same on a data directory (reopened
//! read-only each time, so it sees what a running server wrote) and on a server.

use std::collections::HashSet;
use std::time::Duration;

use silt_query::{Direction, StreamResult};
use silt_server::params::now_ns;

use crate::output::{self, Output};
use crate::source::Target;

const POLL: Duration = Duration::from_secs(1);

pub async fn run(target: &Target, query: &str, start: i64, limit: usize, out: Output) -> anyhow::Result<()> {
    // The newest `limit` entries first, printed oldest first.
    let mut from = start;
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut first = true;
    loop {
        let end = now_ns() + 1;
        let direction = if first { Direction::Backward } else { Direction::Forward };
        let streams = target.open().await?.log_query(query, from, end, limit, direction).await?;
        first = false;
        let fresh = take_new(streams, from, &mut seen);
        if let Some(newest) = fresh.iter().flat_map(|s| s.entries.iter().map(|e| e.ts)).max() {
            if newest > from {
                // Keep only the entries at the new `from` as seen: the next poll starts there.
                let prefix = format!("{newest}:");
                seen.retain(|(k, _)| k.starts_with(&prefix));
                from = newest;
            }
            output::print_streams(&fresh, Direction::Forward, out)?;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Drops entries already printed (those at `from`, the boundary both polls include) and
/// records the rest.
fn take_new(streams: Vec<StreamResult>, from: i64, seen: &mut HashSet<(String, String)>) -> Vec<StreamResult> {
    let mut out = Vec::new();
    for mut s in streams {
        let labels = s.labels.to_string();
        s.entries.retain(|e| {
            let key = (format!("{}:{labels}", e.ts), e.line.clone());
            e.ts >= from && seen.insert(key)
        });
        if !s.entries.is_empty() {
            out.push(s);
        }
    }
    out
}
