//! "The newest N entries" (oldest, forward), read piece by piece and no further than
//! needed: a scan's parts are cut into pieces (a stream's rows in one block of a chunk,
//! each with time bounds; see [`ScanPart::pieces`]) and queued newest first. Every
//! partition of the one plan takes the next pieces from the queue, so both cores stay
//! busy until the end. The plan reports the time of each entry it keeps; once N are
//! kept, only pieces that may still hold one sorting before the N-th are handed out, as
//! Loki's iterators merge streams by time and stop at the limit.

use std::collections::{BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::exec_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use silt_storage::ScanPart;

use crate::provider::SaltedPart;

const BLOCK_ROWS: u64 = silt_storage::needle::BLOCK_ROWS as u64;

/// The pieces of one query, in reading order, and what the query has kept so far.
pub struct PieceQueue {
    backward: bool,
    limit: usize,
    state: Mutex<QueueState>,
}

struct QueueState {
    pieces: VecDeque<SaltedPart>,
    /// Rows handed out so far (as estimated by the pieces).
    read: u64,
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
        let state = QueueState { pieces: pieces.into(), read: 0, kept: BinaryHeap::with_capacity(limit.min(1 << 16)) };
        PieceQueue { backward, limit, state: Mutex::new(state) }
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
    pub fn pop(&self) -> Option<Vec<SaltedPart>> {
        let mut s = self.state.lock().unwrap();
        let bound = (s.kept.len() >= self.limit).then(|| s.kept.peek().map(|&k| self.key(k))).flatten();
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

    /// Counts entries the query keeps (before its limit), at times `ts`.
    fn observe(&self, ts: &[i64]) {
        let mut s = self.state.lock().unwrap();
        for &t in ts {
            let k = self.key(t);
            if s.kept.len() < self.limit {
                s.kept.push(k);
            } else if s.kept.peek().is_some_and(|&worst| k < worst) {
                s.kept.pop();
                s.kept.push(k);
            }
        }
    }

    /// Rows handed out so far (as estimated by the pieces).
    pub fn rows_read(&self) -> u64 {
        self.state.lock().unwrap().read
    }
}

/// How many rows the next read should take, given that `read` rows gave `found` of the
/// `limit` entries wanted: a quarter of what the rate seen so far says is missing, so a
/// reader stops close to the end, but at least a block, and at most 16. Before anything
/// is found, a quarter of what was read: a rare match costs a few dozen reads, not
/// hundreds.
fn pop_rows(read: u64, found: usize, limit: usize) -> u64 {
    let missing = limit.saturating_sub(found) as u64;
    let expected = match (found, missing) {
        (_, 0) => 0,
        (0, _) => read,
        _ => missing.saturating_mul(read) / found as u64,
    };
    (expected / 4).clamp(BLOCK_ROWS, 16 * BLOCK_ROWS)
}

/// `keep_time(ts) -> ts`: passes entry times through, telling the [`PieceQueue`] about
/// each entry the plan keeps. Volatile, so the optimizer never drops or moves it.
#[derive(Debug)]
pub struct KeepTimeUdf {
    queue: Arc<PieceQueue>,
    signature: Signature,
}

impl std::fmt::Debug for PieceQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PieceQueue")
    }
}

impl KeepTimeUdf {
    pub fn new(queue: Arc<PieceQueue>) -> Self {
        KeepTimeUdf { queue, signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile) }
    }
}

impl PartialEq for KeepTimeUdf {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.queue, &o.queue)
    }
}
impl Eq for KeepTimeUdf {}
impl Hash for KeepTimeUdf {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.queue) as usize).hash(h)
    }
}

impl ScalarUDFImpl for KeepTimeUdf {
    fn name(&self) -> &str {
        "keep_time"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else { return exec_err!("keep_time takes one argument") };
        let arr = arg.to_array(args.number_rows)?;
        let Some(ts) = arr.as_primitive_opt::<Int64Type>() else { return exec_err!("keep_time expects an Int64 column") };
        if ts.null_count() == 0 {
            self.queue.observe(ts.values());
        } else {
            self.queue.observe(&ts.iter().flatten().collect::<Vec<_>>());
        }
        Ok(ColumnarValue::Array(arr))
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
        assert_eq!(pop_rows(400_000, 50, 100), 16 * b);
        assert_eq!(pop_rows(40_000, 90, 100), b, "nearly there: a block at a time");
        assert_eq!(pop_rows(40_000, 100, 100), b, "all found: a block at a time");
    }
}
