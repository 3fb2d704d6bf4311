//! "The newest N entries" (oldest, forward), read piece by piece and no further than
//! needed: a scan's parts are cut into pieces (a stream's rows in one block of a chunk,
//! each with time bounds; see [`ScanPart::pieces`]) and queued newest first. Every
//! partition of the one plan takes the next pieces from the queue, so both cores stay
//! busy until the end. The plan reports the time of each entry it keeps, where no later
//! stage can drop it: the scan itself, or the pipeline when there is one. Once N are
//! kept, only pieces that may still hold one sorting before the N-th are handed out, as
//! Loki's iterators merge streams by time and stop at the limit.

use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use silt_storage::ScanPart;

use crate::provider::SaltedPart;

const BLOCK_ROWS: u64 = silt_storage::needle::BLOCK_ROWS as u64;
/// How long, and how many times at most, a reader waits for the pipeline to catch up
/// (see [`PieceQueue::pop`]): a bound, so that a stalled plan never stalls its scan.
const PACING_WAIT: Duration = Duration::from_millis(2);
const PACING_WAITS: usize = 50;

/// The pieces of one query, in reading order, and what the query has kept so far.
pub struct PieceQueue {
    backward: bool,
    limit: usize,
    state: Mutex<QueueState>,
    /// Signalled when entries are reported.
    reported: Condvar,
}

struct QueueState {
    pieces: VecDeque<SaltedPart>,
    /// Rows handed out so far (as estimated by the pieces).
    read: u64,
    /// Rows the scan handed to the plan, and rows the plan has looked at since: the
    /// difference is still on its way through the pipeline.
    sent: u64,
    examined: u64,
    /// The `limit` best entry times seen, as keys ([`PieceQueue::key`]): the worst on top.
    kept: BinaryHeap<i64>,
}

impl PieceQueue {
    /// A queue of `pieces` for a query keeping `limit` (> 0) entries, newest first when
    /// `backward`.
    pub fn new(mut pieces: Vec<SaltedPart>, backward: bool, limit: usize) -> PieceQueue {
        pieces.sort_by(|(a, _), (b, _)| {
            let ((a_lo, a_hi), (b_lo, b_hi)) = (a.time_bounds(), b.time_bounds());
            if backward { b_hi.cmp(&a_hi) } else { a_lo.cmp(&b_lo) }
        });
        let state = QueueState { pieces: pieces.into(), read: 0, sent: 0, examined: 0, kept: BinaryHeap::with_capacity(limit.min(1 << 16)) };
        PieceQueue { backward, limit, state: Mutex::new(state), reported: Condvar::new() }
    }

    /// Entry times as heap keys: the larger, the worse for the query.
    fn key(&self, ts: i64) -> i64 {
        if self.backward { !ts } else { ts }
    }

    /// Whether `piece` may hold an entry that sorts before (or ties with) one at `ts`.
    fn may_precede(&self, piece: &ScanPart, ts: i64) -> bool {
        let (lo, hi) = piece.time_bounds();
        if self.backward { hi >= ts } else { lo <= ts }
    }

    /// The next pieces to read, joined where they follow each other in a file; `None`
    /// when no piece left can change the answer.
    ///
    /// Paced: while the rows on their way through the pipeline should hold every entry
    /// still missing (at the rate seen so far), it waits for them to be looked at, a
    /// little at a time, so that the scan does not run far ahead of a slow pipeline.
    pub fn pop(&self) -> Option<Vec<SaltedPart>> {
        let mut s = self.state.lock().unwrap();
        for _ in 0..PACING_WAITS {
            if s.pieces.is_empty() || self.bound(&s).zip(s.pieces.front()).is_some_and(|(b, (p, _))| !self.may_precede(p, b)) {
                // Nothing left worth waiting for.
                break;
            }
            let found = s.kept.len() as u64;
            let in_flight = s.sent.saturating_sub(s.examined);
            let wait = if s.examined == 0 {
                // The first rows read may well hold the answer (the newest block of each
                // stream often does): they are looked at before more are read.
                in_flight > 0
            } else if found == 0 || found >= self.limit as u64 {
                false
            } else {
                in_flight > (self.limit as u64 - found).saturating_mul(s.examined) / found
            };
            if !wait {
                break;
            }
            s = self.reported.wait_timeout(s, PACING_WAIT).unwrap().0;
        }
        let bound = self.bound(&s);
        let budget = pop_rows(s.read, s.kept.len(), self.limit);
        let (mut out, mut rows) = (Vec::new(), 0u64);
        while let Some((p, _)) = s.pieces.front() {
            if bound.is_some_and(|b| !self.may_precede(p, b)) {
                // Pieces are in reading order: none after this one may either.
                s.pieces.clear();
                break;
            }
            let r = p.estimated_rows();
            if !out.is_empty() && rows + r > budget {
                break;
            }
            rows += r;
            out.extend(s.pieces.pop_front());
        }
        s.read += rows;
        (!out.is_empty()).then(|| crate::engine::join_pieces(out))
    }

    /// The time of the `limit`-th entry kept, once there are that many.
    fn bound(&self, s: &QueueState) -> Option<i64> {
        (s.kept.len() >= self.limit).then(|| s.kept.peek().map(|&k| self.key(k))).flatten()
    }

    /// Counts entries the query keeps (before its limit), at times `ts`: what the plan
    /// reports once no later stage can drop them (the scan, or the pipeline).
    /// `examined`: the rows looked at to keep those.
    pub(crate) fn observe(&self, ts: &[i64], examined: usize) {
        let mut s = self.state.lock().unwrap();
        s.examined += examined as u64;
        for &t in ts {
            let k = self.key(t);
            if s.kept.len() < self.limit {
                s.kept.push(k);
            } else if s.kept.peek().is_some_and(|&worst| k < worst) {
                s.kept.pop();
                s.kept.push(k);
            }
        }
        drop(s);
        self.reported.notify_all();
    }

    /// Counts rows the scan hands to the plan.
    pub(crate) fn sent(&self, rows: usize) {
        self.state.lock().unwrap().sent += rows as u64;
    }

    /// Rows handed out so far (as estimated by the pieces).
    pub fn rows_read(&self) -> u64 {
        self.state.lock().unwrap().read
    }
}

/// How many rows the next read should take, given that `read` rows gave `found` of the
/// `limit` entries wanted: a sixteenth of what the rate seen so far says is missing (two
/// readers take turns, and the pipeline may still be looking at rows read before), but at
/// least a block, and at most 16. Before anything is found, a quarter of what was read:
/// a rare match costs a few dozen reads, not hundreds.
fn pop_rows(read: u64, found: usize, limit: usize) -> u64 {
    let missing = limit.saturating_sub(found) as u64;
    let expected = match (found, missing) {
        (_, 0) => 0,
        (0, _) => read / 4,
        _ => missing.saturating_mul(read) / found as u64 / 16,
    };
    expected.clamp(BLOCK_ROWS, 16 * BLOCK_ROWS)
}

impl std::fmt::Debug for PieceQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PieceQueue")
    }
}

#[cfg(test)]
mod tests {
    use super::pop_rows;

    #[test]
    fn reads_shrink_as_the_limit_nears() {
        let b = super::BLOCK_ROWS;
        assert_eq!(pop_rows(0, 0, 100), b, "the first read is one block");
        assert_eq!(pop_rows(1_000_000, 0, 100), 16 * b, "nothing found: reads grow, within bounds");
        assert_eq!(pop_rows(100_000, 0, 100), 25_000);
        assert_eq!(pop_rows(4_000_000, 50, 100), 16 * b);
        assert_eq!(pop_rows(400_000, 50, 100), 25_000, "a sixteenth of what is missing");
        assert_eq!(pop_rows(40_000, 90, 100), b, "nearly there: a block at a time");
        assert_eq!(pop_rows(40_000, 100, 100), b, "all found: a block at a time");
    }
}
