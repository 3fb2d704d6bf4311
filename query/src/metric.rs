//! Metric queries. Samples stream out of the same scan and pipeline as log queries, batch
//! by batch, into per-series, per-step accumulators (count, sum, min, max, Welford mean and
//! variance, first, last): memory grows with series x steps, not with lines. Only
//! `quantile_over_time` and `rate_counter` need the values themselves: each sample is kept
//! once per series (not once per window it falls in), as Loki keeps a window's samples.
//!
//! Windows are Loki's: the value at step `t` covers `(t - offset - range, t - offset]`.

use std::collections::{BTreeMap, HashMap};

use silt_storage::{Labels, MatchOp};

use crate::ast::{BinOp, Grouping, LogRange, RangeOp, UnwrapConv, VectorMatching, VectorOp};
use crate::error::QueryError;

/// Step timestamps of a query: `start + k*step <= end` (one step for an instant query).
#[derive(Debug, Clone)]
pub struct Steps {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Steps {
    pub fn new(start: i64, end: i64, step: i64) -> Steps {
        let n = if step <= 0 { 1 } else { ((end - start) / step) as usize + 1 };
        Steps { start, step, n }
    }
    pub fn at(&self, k: usize) -> i64 {
        self.start + self.step * k as i64
    }
    /// [`Self::covering`], and the last timestamp from `ts` on with the same answer
    /// (entries come in time order per stream, so the next ones usually share it).
    fn covering_until(&self, ts: i64, range: i64, offset: i64) -> (std::ops::Range<usize>, i64) {
        let c = self.covering(ts, range, offset);
        if c.is_empty() || self.step <= 0 {
            return (c, ts);
        }
        // The first step stays while `ts + offset <= start + first*step`; the last while
        // `ts + offset + range - 1 < start + (last+1)*step` (always, at the last step).
        let at = |k: usize| self.start.saturating_add(self.step.saturating_mul(k as i64));
        let first_until = at(c.start).saturating_sub(offset);
        let last_until = if c.end >= self.n { i64::MAX } else { at(c.end).saturating_sub(offset).saturating_sub(range) };
        (c, first_until.min(last_until).max(ts))
    }

    /// The steps whose window `(t - offset - range, t - offset]` holds `ts`.
    fn covering(&self, ts: i64, range: i64, offset: i64) -> std::ops::Range<usize> {
        let lo = ts + offset; // t >= lo
        let hi = ts + offset + range - 1; // t <= hi
        if self.step <= 0 {
            return if self.start >= lo && self.start <= hi { 0..1 } else { 0..0 };
        }
        let first = if lo <= self.start { 0 } else { (lo - self.start + self.step - 1) / self.step };
        if hi < self.start {
            return 0..0;
        }
        let last = ((hi - self.start) / self.step).min(self.n as i64 - 1);
        if first > last {
            return 0..0;
        }
        first as usize..last as usize + 1
    }
}

/// A series' values per step (`None`: no point at that step).
pub type SeriesSet = BTreeMap<Labels, Vec<Option<f64>>>;

#[derive(Debug, Clone)]
pub enum Value {
    Scalar(f64),
    Vector(SeriesSet),
}

/// The state of one window of one series.
#[derive(Debug, Clone, Default)]
pub(crate) struct Acc {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    mean: f64,
    m2: f64,
    first: (i64, f64),
    last: (i64, f64),
}

impl Acc {
    fn add(&mut self, ts: i64, v: f64) {
        if self.n == 0 {
            self.min = v;
            self.max = v;
            self.first = (ts, v);
            self.last = (ts, v);
        } else {
            if v < self.min || self.min.is_nan() {
                self.min = v;
            }
            if v > self.max || self.max.is_nan() {
                self.max = v;
            }
            if ts < self.first.0 {
                self.first = (ts, v);
            }
            if ts >= self.last.0 {
                self.last = (ts, v);
            }
        }
        self.n += 1;
        self.sum += v;
        let d = v - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (v - self.mean);
    }

    /// [`Self::add`] for the functions that read only the count and the sum (counts,
    /// rates, bytes, sums): the other fields stay unset.
    fn add_sum(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
    }

    /// `n` calls of [`Self::add_sum`] whose values sum to `sum`.
    fn add_sums(&mut self, n: u64, sum: f64) {
        self.n += n;
        self.sum += sum;
    }

    /// Adds the samples `o` gathered (Chan et al.'s pairwise update for mean and
    /// variance): what adding them here one by one would give, up to floating-point
    /// rounding; among samples with equal timestamps, `first` keeps this side's and
    /// `last` takes `o`'s, as if `o`'s came after.
    fn merge(&mut self, o: &Acc) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = o.clone();
            return;
        }
        if o.min < self.min || self.min.is_nan() {
            self.min = o.min;
        }
        if o.max > self.max || self.max.is_nan() {
            self.max = o.max;
        }
        if o.first.0 < self.first.0 {
            self.first = o.first;
        }
        if o.last.0 >= self.last.0 {
            self.last = o.last;
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let d = o.mean - self.mean;
        self.mean += d * nb / n;
        self.m2 += o.m2 + d * d * na * nb / n;
        self.sum += o.sum;
        self.n += o.n;
    }

    /// The value of the window. `window` holds its samples in time order, for the two
    /// functions that need them (quantile_over_time, rate_counter); else it may be empty.
    fn finish(&self, op: RangeOp, param: Option<f64>, range_s: f64, unwrapped: bool, window: &[(i64, f64)]) -> f64 {
        use RangeOp::*;
        let var = self.m2 / self.n as f64;
        match op {
            CountOverTime => self.n as f64,
            Rate if unwrapped => self.sum / range_s,
            Rate => self.n as f64 / range_s,
            BytesOverTime | SumOverTime => self.sum,
            BytesRate => self.sum / range_s,
            AvgOverTime => self.mean,
            MinOverTime => self.min,
            MaxOverTime => self.max,
            StdvarOverTime => var,
            StddevOverTime => var.sqrt(),
            FirstOverTime => self.first.1,
            LastOverTime => self.last.1,
            QuantileOverTime => {
                let mut v: Vec<f64> = window.iter().map(|x| x.1).collect();
                quantile(param.unwrap_or(0.5), &mut v)
            }
            RateCounter => rate_counter(window, range_s),
            AbsentOverTime => 1.0,
        }
    }
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
fn quantile(q: f64, v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let rank = q * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let w = rank - rank.floor();
    if v.iter().any(|x| x.is_nan()) {
        // NaN has no rank: order as a full sort that puts it first would.
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Less));
        return v[lo] * (1.0 - w) + v[hi] * w;
    }
    // Two order statistics, not a sort: the windows are quantiled one by one at the end.
    let (_, &mut at_lo, above) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let at_hi = if hi > lo { above.iter().copied().fold(f64::INFINITY, f64::min) } else { at_lo };
    at_lo * (1.0 - w) + at_hi * w
}

/// Loki's `rate_counter`: an extrapolated counter rate with resets (see the spec notes).
fn rate_counter(s: &[(i64, f64)], range_s: f64) -> f64 {
    if s.len() < 2 {
        return 0.0;
    }
    let mut result = s[s.len() - 1].1 - s[0].1;
    let mut last = 0.0;
    for &(_, v) in s {
        if v < last {
            result += last;
        }
        last = v;
    }
    let sampled = (s[s.len() - 1].0 - s[0].0) as f64 / 1e9;
    let avg = sampled / (s.len() - 1) as f64;
    let mut dur_start = range_s;
    if result > 0.0 && s[0].1 >= 0.0 {
        dur_start = dur_start.min(sampled * s[0].1 / result);
    }
    let thr = avg * 1.1;
    let mut ext = sampled;
    ext += if dur_start < thr { dur_start } else { avg / 2.0 };
    ext += if 0.0 < thr { 0.0 } else { avg / 2.0 };
    result * ext / sampled / range_s
}

/// How the samples of a range aggregation are labelled and valued.
pub(crate) struct RangeSpec<'a> {
    pub range: &'a LogRange,
    pub op: RangeOp,
    pub param: Option<f64>,
    pub grouping: Option<&'a Grouping>,
    /// Loki's parsers skip parsing when no label is needed (a bare `sum(...)` above, no
    /// label filter, no unwrap): such queries never see parse errors.
    pub labels_needed: bool,
    /// The grouping of an enclosing `sum`/`min`/`max` that may be applied sample by sample
    /// (see [`merge_grouping`]): series are merged as they are read, so a high-cardinality
    /// inner series set (every line its own series after `| json`) is never held.
    pub merge: Option<Option<&'a Grouping>>,
}

/// A [`RangeSpec`] owning what it refers to, for a worker thread.
#[derive(Debug, Clone)]
pub(crate) struct OwnedRangeSpec {
    range: LogRange,
    op: RangeOp,
    param: Option<f64>,
    grouping: Option<Grouping>,
    labels_needed: bool,
    merge: Option<Option<Grouping>>,
}

impl OwnedRangeSpec {
    pub fn spec(&self) -> RangeSpec<'_> {
        RangeSpec {
            range: &self.range,
            op: self.op,
            param: self.param,
            grouping: self.grouping.as_ref(),
            labels_needed: self.labels_needed,
            merge: self.merge.as_ref().map(Option::as_ref),
        }
    }
}

impl<'a> RangeSpec<'a> {
    pub fn owned(&self) -> OwnedRangeSpec {
        OwnedRangeSpec {
            range: self.range.clone(),
            op: self.op,
            param: self.param,
            grouping: self.grouping.cloned(),
            labels_needed: self.labels_needed,
            merge: self.merge.map(|g| g.cloned()),
        }
    }

    /// The labels a sample's series is a function of, when that is a known set: the
    /// `by` labels of the grouping that decides the series (none at all when every
    /// sample lands in one series). `None` without grouping or with `without`.
    pub fn key_labels(&self) -> Option<Vec<&'a str>> {
        if !self.labels_needed || self.op == RangeOp::AbsentOverTime {
            return Some(Vec::new());
        }
        let by = match self.merge {
            Some(None) => None,
            Some(Some(g)) if !g.without => Some(g),
            _ => match self.grouping {
                Some(g) if !g.without => Some(g),
                _ => return None,
            },
        };
        Some(by.into_iter().flat_map(|g| g.labels.iter().map(String::as_str)).collect())
    }

    /// The labels the samples' series and values can depend on, when that is a known
    /// set: the `by` labels of the grouping that decides the series, the unwrapped label,
    /// and the labels filters read. `None` when any label may matter (no grouping,
    /// `without`, or a stage that reads labels by template, `keep`/`drop`, `unpack`).
    /// Error labels always matter and are not listed.
    pub fn observed_labels(&self) -> Option<Vec<&'a str>> {
        let mut out = self.key_labels()?;
        let r: &'a LogRange = self.range;
        crate::pipeline::filtered_labels(&r.log.pipeline, &mut out)?;
        if let Some(u) = &r.unwrap {
            out.push(&u.label);
            for f in &u.post_filters {
                crate::pipeline::filter_names(f, &mut out);
            }
        }
        Some(out)
    }
}

/// Whether `op by (g) (range_op(...))` equals `range_op` over the samples regrouped by `g`:
/// true for sums of additive range functions and for min/max of min/max. Then the
/// vector aggregation's grouping can be pushed into the range accumulator.
pub(crate) fn merges_samples(vector: VectorOp, range: RangeOp) -> bool {
    use RangeOp::*;
    match vector {
        VectorOp::Sum => matches!(range, CountOverTime | Rate | BytesOverTime | BytesRate | SumOverTime),
        VectorOp::Max => range == MaxOverTime,
        VectorOp::Min => range == MinOverTime,
        _ => false,
    }
}

/// The windows of one series: accumulators for the steps from `first` on, only as many as
/// its samples reach (a short-lived series costs its range, not the whole query).
#[derive(Debug, Default)]
struct SeriesWindows {
    first: usize,
    accs: Vec<Acc>,
    /// Every sample `(ts, value)`, only for the functions that need values.
    samples: Vec<(i64, f64)>,
}

impl SeriesWindows {
    fn merge(&mut self, o: SeriesWindows) {
        for (j, a) in o.accs.iter().enumerate() {
            if a.n > 0 {
                self.slot(o.first + j).merge(a);
            }
        }
        self.samples.extend(o.samples);
    }

    fn slot(&mut self, k: usize) -> &mut Acc {
        if self.accs.is_empty() {
            self.first = k;
        } else if k < self.first {
            self.accs.splice(0..0, std::iter::repeat_with(Acc::default).take(self.first - k));
            self.first = k;
        }
        let i = k - self.first;
        if i >= self.accs.len() {
            self.accs.resize_with(i + 1, Acc::default);
        }
        &mut self.accs[i]
    }
}

/// Accumulates samples of one range aggregation.
pub(crate) struct RangeAccumulator<'a> {
    spec: RangeSpec<'a>,
    steps: Steps,
    /// The last [`Steps::covering_until`] answer: `(from, until, steps)`.
    covering_memo: std::cell::Cell<(i64, i64, usize, usize)>,
    /// Whether the windows need only a count and a sum (see [`Acc::add_sum`]).
    sums_only: bool,
    /// Series by labels (sorted, the order they are returned in), as indices into `windows`.
    series: BTreeMap<Labels, usize>,
    windows: Vec<SeriesWindows>,
    any: Vec<bool>,
    budget: Option<Budget>,
    /// The budgets of merged [`Partial`]s: what they counted is held here now.
    merged_budgets: Vec<Budget>,
    /// The labels the series is a function of (see [`RangeSpec::key_labels`]).
    key_labels: Option<Vec<&'a str>>,
    /// Series of each combination of `key_labels` values seen by [`Self::add_observed`],
    /// by a hash of the values.
    by_key: HashMap<u64, Vec<(Vec<Option<String>>, usize)>, silt_storage::prehashed::Prehashed>,
}

/// The series and windows one [`RangeAccumulator`] gathered (see
/// [`RangeAccumulator::into_partial`]).
pub(crate) struct Partial {
    series: BTreeMap<Labels, usize>,
    windows: Vec<SeriesWindows>,
    any: Vec<bool>,
    budget: Option<Budget>,
}

/// Memory the metric engine holds for one query, counted against the query's pool
/// (reserved in 1 MiB steps, so the pool is not touched per sample).
pub(crate) struct Budget {
    reservation: datafusion::execution::memory_pool::MemoryReservation,
    used: usize,
    limit: usize,
}

impl Budget {
    pub fn new(reservation: datafusion::execution::memory_pool::MemoryReservation, limit: usize) -> Budget {
        Budget { reservation, used: 0, limit }
    }

    pub fn grow(&mut self, bytes: usize) -> Result<(), QueryError> {
        self.used += bytes;
        if self.used > self.reservation.size() {
            let want = (self.used - self.reservation.size()).max(1 << 20);
            self.reservation.try_grow(want).map_err(|_| QueryError::memory_limit(self.limit))?;
        }
        Ok(())
    }
}

impl<'a> RangeAccumulator<'a> {
    pub fn new(spec: RangeSpec<'a>, steps: Steps) -> Self {
        let n = steps.n;
        let key_labels = spec.key_labels();
        use RangeOp::*;
        let sums_only = matches!(spec.op, CountOverTime | Rate | BytesOverTime | BytesRate | SumOverTime | AbsentOverTime);
        RangeAccumulator { spec, steps, covering_memo: std::cell::Cell::new((1, 0, 0, 0)), sums_only, series: BTreeMap::new(), windows: Vec::new(), any: vec![false; n], budget: None, merged_budgets: Vec::new(), key_labels, by_key: HashMap::default() }
    }

    pub fn spec(&self) -> &RangeSpec<'a> {
        &self.spec
    }

    /// Counts the series and samples held against `budget`.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Adds one entry (after the pipeline): its timestamp, line length and labels.
    pub fn add(&mut self, ts: i64, line_len: usize, mut labels: Vec<(String, String)>) -> Result<(), QueryError> {
        let r = self.spec.range;
        if !self.covers(ts) {
            return Ok(());
        }
        let value;
        if let Some(u) = &r.unwrap {
            let Some(raw) = labels.iter().find(|l| l.0 == u.label).map(|l| l.1.clone()) else { return Ok(()) };
            if raw.is_empty() {
                return Ok(());
            }
            match convert(u.conv, &raw) {
                Ok(v) => value = v,
                Err(details) => {
                    value = 0.0;
                    set(&mut labels, crate::pipeline::ERROR_LABEL, "SampleExtractionErr");
                    set(&mut labels, crate::pipeline::ERROR_DETAILS_LABEL, &details);
                }
            }
            if !u.post_filters.is_empty() {
                let el = crate::pipeline::EntryLabels::new(labels.iter().map(|(a, b)| (a.as_str(), b.as_str())), std::iter::empty());
                for f in &u.post_filters {
                    if !crate::pipeline::label_filter_keeps(f, &el) {
                        return Ok(());
                    }
                }
            }
        } else {
            value = self.plain_value(line_len);
        }
        let i = self.series_index(&self.series_key(labels)?)?;
        self.add_at(i, ts, value)
    }

    /// [`Self::add`] for an entry whose labels are those [`RangeSpec::observed_labels`]
    /// names (with stream labels and metadata), without copying them: the series is found
    /// by a hash of the key labels' values. Returns false, adding nothing, when the entry has an
    /// error or its unwrapped value does not convert: its series then names all its
    /// labels, so the caller passes it to [`Self::add`] with the full pipeline's labels.
    pub fn add_observed(&mut self, ts: i64, line_len: usize, labels: &crate::pipeline::EntryLabels<'_>) -> Result<bool, QueryError> {
        if !self.covers(ts) {
            return Ok(true);
        }
        if labels.has_error() {
            return Ok(false);
        }
        let r = self.spec.range;
        let value = match &r.unwrap {
            Some(u) => {
                let Some(raw) = labels.get(&u.label).filter(|v| !v.is_empty()) else { return Ok(true) };
                let Ok(v) = convert(u.conv, raw) else { return Ok(false) };
                if !u.post_filters.iter().all(|f| crate::pipeline::label_filter_keeps(f, labels)) {
                    return Ok(true);
                }
                v
            }
            None => self.plain_value(line_len),
        };
        // The series is a function of the key labels' values: found by a hash of them,
        // a hit confirmed by comparing them.
        let names = self.key_labels.as_deref().ok_or_else(|| QueryError::Internal("add_observed without key labels".into()))?;
        let h = names.iter().fold(0u64, |acc, n| {
            let v = labels.get(n);
            xxhash_rust::xxh3::xxh3_64_with_seed(v.unwrap_or("").as_bytes(), acc.wrapping_add(v.is_some() as u64))
        });
        let hit = self.by_key.get(&h).and_then(|bucket| bucket.iter().find(|(vals, _)| vals.iter().zip(names).all(|(v, n)| v.as_deref() == labels.get(n))));
        let i = match hit {
            Some((_, i)) => *i,
            None => {
                let vals: Vec<Option<String>> = names.iter().map(|n| labels.get(n).map(str::to_string)).collect();
                let pairs: Vec<(String, String)> = labels.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
                let i = self.series_index(&self.series_key(pairs)?)?;
                let bytes = 64 + vals.iter().map(|v| v.as_ref().map_or(0, String::len) + 24).sum::<usize>();
                self.by_key.entry(h).or_default().push((vals, i));
                if let Some(b) = &mut self.budget {
                    b.grow(bytes)?;
                }
                i
            }
        };
        self.add_at(i, ts, value)?;
        Ok(true)
    }

    /// The steps whose windows hold `ts`, remembered for the timestamps after it.
    fn covering(&self, ts: i64) -> std::ops::Range<usize> {
        let (from, until, a, b) = self.covering_memo.get();
        if from <= ts && ts <= until {
            return a..b;
        }
        let r = self.spec.range;
        let (c, until) = self.steps.covering_until(ts, r.range, r.offset);
        self.covering_memo.set((ts, until, c.start, c.end));
        c
    }

    /// Whether a sample at `ts` falls in any step's window (one that does not is not
    /// counted, and creates no series).
    pub fn covers(&self, ts: i64) -> bool {
        !self.covering(ts).is_empty()
    }

    /// The steps whose windows hold a sample at `ts`, and the last timestamp from `ts`
    /// on whose samples fall in the same windows.
    pub fn windows_until(&self, ts: i64) -> (std::ops::Range<usize>, i64) {
        let c = self.covering(ts);
        // `covering` answers from the memo, or computes and memoizes its answer: either
        // way the memo holds it, valid up to `until` from a time at or before `ts`.
        (c, self.covering_memo.get().1)
    }

    /// Whether the windows keep only a count and a sum, so that samples may be added in
    /// bulk ([`Self::add_sums_to`]).
    pub fn sums_only(&self) -> bool {
        self.sums_only
    }

    /// Adds `n` samples summing to `sum` to series `i`, all in the windows of `steps`
    /// (from [`Self::windows_until`]). Only when [`Self::sums_only`]. The sum of plain
    /// values (counts, line lengths) is exact, so this equals `n` calls of
    /// [`Self::add_at`].
    pub fn add_sums_to(&mut self, i: usize, steps: std::ops::Range<usize>, n: u64, sum: f64) -> Result<(), QueryError> {
        debug_assert!(self.sums_only);
        let windows = &mut self.windows[i];
        let slots_before = windows.accs.len();
        for k in steps {
            windows.slot(k).add_sums(n, sum);
            self.any[k] = true;
        }
        if let Some(b) = &mut self.budget {
            let bytes = windows.accs.len().saturating_sub(slots_before) * std::mem::size_of::<Acc>();
            if bytes > 0 {
                b.grow(bytes)?;
            }
        }
        Ok(())
    }

    /// Whether samples need nothing but their labels: no unwrap, no pipeline errors
    /// possible (the caller knows the pipeline is empty). Then [`Self::series_key`] of an
    /// entry's labels can be computed once per distinct label set (its
    /// [`Self::series_index`]), and [`Self::add_at`] called per entry.
    pub fn keyed_by_labels_only(&self) -> bool {
        self.spec.range.unwrap.is_none()
    }

    /// The value an entry contributes without unwrap: 1, or its line length for the
    /// `bytes_*` functions.
    pub fn plain_value(&self, line_len: usize) -> f64 {
        if self.needs_line_len() {
            line_len as f64
        } else {
            1.0
        }
    }

    /// Whether the value needs the line (its length).
    pub fn needs_line_len(&self) -> bool {
        matches!(self.spec.op, RangeOp::BytesOverTime | RangeOp::BytesRate)
    }

    /// The series an entry with `labels` (after the pipeline) is counted in.
    pub fn series_key(&self, labels: Vec<(String, String)>) -> Result<Labels, QueryError> {
        let r = self.spec.range;
        let has_error = labels.iter().any(|l| l.0 == crate::pipeline::ERROR_LABEL);
        // Without needed labels Loki does not parse at all, so there is no error to carry
        // (the engine only clears `labels_needed` when there is no unwrap).
        Ok(if self.spec.op == RangeOp::AbsentOverTime || !self.spec.labels_needed {
            Labels::default()
        } else if has_error {
            Labels::from_pairs(labels).map_err(|e| QueryError::Internal(e.to_string()))?
        } else {
            let mut drop_unwrapped: Vec<&str> = Vec::new();
            if let Some(u) = &r.unwrap {
                if self.spec.grouping.is_none_or(|g| g.without) {
                    drop_unwrapped.push(&u.label);
                }
            }
            let pairs = labels.into_iter().filter(|(n, _)| !drop_unwrapped.contains(&n.as_str()));
            let pairs: Vec<(String, String)> = match self.spec.grouping {
                Some(g) if !g.without => pairs.filter(|(n, _)| g.labels.contains(n)).collect(),
                Some(g) => pairs.filter(|(n, _)| !g.labels.contains(n)).collect(),
                None => pairs.collect(),
            };
            let series = Labels::from_pairs(pairs).map_err(|e| QueryError::Internal(e.to_string()))?;
            match self.spec.merge {
                Some(g) => group_key(&series, g),
                None => series,
            }
        })
    }

    /// The index of series `key` for [`Self::add_at`], created (and counted against the
    /// budget) the first time.
    pub fn series_index(&mut self, key: &Labels) -> Result<usize, QueryError> {
        if let Some(&i) = self.series.get(key) {
            return Ok(i);
        }
        if let Some(b) = &mut self.budget {
            b.grow(128 + key.iter().map(|(n, v)| n.len() + v.len() + 48).sum::<usize>())?;
        }
        let i = self.windows.len();
        self.windows.push(SeriesWindows::default());
        self.series.insert(key.clone(), i);
        Ok(i)
    }

    /// Adds one sample to the series at `i` (from [`Self::series_index`]).
    pub fn add_at(&mut self, i: usize, ts: i64, value: f64) -> Result<(), QueryError> {
        let covering = self.covering(ts);
        if covering.is_empty() {
            return Ok(());
        }
        let keep_values = matches!(self.spec.op, RangeOp::QuantileOverTime | RangeOp::RateCounter);
        let sums_only = self.sums_only;
        let windows = &mut self.windows[i];
        let slots_before = windows.accs.len();
        if keep_values {
            windows.samples.push((ts, value));
        }
        for k in covering {
            if sums_only {
                windows.slot(k).add_sum(value);
            } else {
                windows.slot(k).add(ts, value);
            }
            self.any[k] = true;
        }
        if let Some(b) = &mut self.budget {
            // New step slots, a kept sample.
            let bytes = windows.accs.len().saturating_sub(slots_before) * std::mem::size_of::<Acc>() + if keep_values { 16 } else { 0 };
            if bytes > 0 {
                b.grow(bytes)?;
            }
        }
        Ok(())
    }

    /// What was gathered, without the spec: one worker's share of a query, for
    /// [`Self::merge`] into the query's accumulator.
    pub fn into_partial(self) -> Partial {
        Partial { series: self.series, windows: self.windows, any: self.any, budget: self.budget }
    }

    /// Adds a partial gathered by another accumulator of the same spec and steps.
    pub fn merge(&mut self, p: Partial) -> Result<(), QueryError> {
        if p.any.len() != self.any.len() {
            return Err(QueryError::Internal("merging range aggregations over different steps".into()));
        }
        let mut windows = p.windows;
        for (labels, oi) in p.series {
            let w = std::mem::take(&mut windows[oi]);
            match self.series.get(&labels) {
                Some(&i) => self.windows[i].merge(w),
                None => {
                    self.series.insert(labels, self.windows.len());
                    self.windows.push(w);
                }
            }
        }
        for (a, b) in self.any.iter_mut().zip(p.any) {
            *a |= b;
        }
        self.merged_budgets.extend(p.budget);
        Ok(())
    }

    pub fn finish(self) -> Result<SeriesSet, QueryError> {
        let r = self.spec.range;
        let range_s = r.range as f64 / 1e9;
        if self.spec.op == RangeOp::AbsentOverTime {
            let labels = absent_labels(&r.log.selector);
            let vals: Vec<Option<f64>> = self.any.iter().map(|a| (!a).then_some(1.0)).collect();
            let mut out = SeriesSet::new();
            if vals.iter().any(Option::is_some) {
                out.insert(labels, vals);
            }
            return Ok(out);
        }
        let mut out = SeriesSet::new();
        let mut all_windows = self.windows;
        for (labels, i) in self.series {
            let mut windows = std::mem::take(&mut all_windows[i]);
            if let Some(err) = labels.get(crate::pipeline::ERROR_LABEL) {
                return Err(QueryError::BadRequest(pipeline_error(err, &labels)));
            }
            // Stable: samples with equal timestamps keep their arrival order.
            windows.samples.sort_by_key(|x| x.0);
            let mut vals = vec![None; self.steps.n];
            for (i, a) in windows.accs.iter().enumerate() {
                if a.n > 0 {
                    let k = windows.first + i;
                    // The window at step t: (t - offset - range, t - offset].
                    let hi = self.steps.at(k) - r.offset;
                    let lo = hi - r.range;
                    let from = windows.samples.partition_point(|x| x.0 <= lo);
                    let to = windows.samples.partition_point(|x| x.0 <= hi);
                    vals[k] = Some(a.finish(self.spec.op, self.spec.param, range_s, r.unwrap.is_some(), &windows.samples[from..to]));
                }
            }
            out.insert(labels, vals);
        }
        Ok(out)
    }
}

fn set(labels: &mut Vec<(String, String)>, name: &str, value: &str) {
    match labels.iter_mut().find(|l| l.0 == name) {
        Some(l) => l.1 = value.to_string(),
        None => labels.push((name.to_string(), value.to_string())),
    }
}

/// Unwrap conversions: a float, `bytes()` (humanized sizes), `duration()` and
/// `duration_seconds()` (Go durations, in seconds).
fn convert(conv: UnwrapConv, raw: &str) -> Result<f64, String> {
    match conv {
        UnwrapConv::None => crate::format::parse_float_go(raw),
        UnwrapConv::Bytes => crate::format::parse_bytes_go(raw).map(|b| b as f64),
        UnwrapConv::Duration | UnwrapConv::DurationSeconds => crate::duration::parse_go_duration(raw)
            .map(|ns| ns as f64 / 1e9)
            .ok_or_else(|| format!("time: invalid duration {raw:?}")),
    }
}

/// `absent_over_time` labels: the selector's `=` matchers on labels with no other matcher.
fn absent_labels(selector: &[silt_storage::Matcher]) -> Labels {
    let pairs: Vec<(String, String)> = selector
        .iter()
        .filter(|m| m.op == MatchOp::Eq && selector.iter().filter(|o| o.name == m.name).count() == 1)
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    Labels::from_pairs(pairs).unwrap_or_default()
}

fn pipeline_error(err: &str, series: &Labels) -> String {
    format!(
        "pipeline error: '{err}' for series: '{series}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    )
}

// ------------------------------------------------------------------------------------
// Vector aggregations, binary operators, label_replace
// ------------------------------------------------------------------------------------

fn group_key(labels: &Labels, g: Option<&Grouping>) -> Labels {
    match g {
        None => Labels::default(),
        Some(g) if g.without => {
            Labels::from_pairs(labels.iter().filter(|(n, v)| !g.labels.iter().any(|l| l == n) && !v.is_empty())).unwrap_or_default()
        }
        Some(g) => Labels::from_pairs(labels.iter().filter(|(n, _)| g.labels.iter().any(|l| l == n))).unwrap_or_default(),
    }
}

pub(crate) fn vector_agg(op: VectorOp, param: Option<i64>, grouping: Option<&Grouping>, input: SeriesSet, n: usize) -> SeriesSet {
    let mut out = SeriesSet::new();
    match op {
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => {
            let k = param.unwrap_or(0).max(0) as usize;
            for step in 0..n {
                let mut groups: BTreeMap<Labels, Vec<(&Labels, f64)>> = BTreeMap::new();
                for (l, vals) in &input {
                    if let Some(v) = vals[step] {
                        groups.entry(group_key(l, grouping)).or_default().push((l, v));
                    }
                }
                for (_, mut members) in groups {
                    let desc = op != VectorOp::Bottomk;
                    members.sort_by(|a, b| {
                        let o = a.1.partial_cmp(&b.1).unwrap_or_else(|| if a.1.is_nan() { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater });
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                    for (l, v) in members.into_iter().take(k) {
                        out.entry(l.clone()).or_insert_with(|| vec![None; n])[step] = Some(v);
                    }
                }
            }
        }
        VectorOp::Sort | VectorOp::SortDesc => return input,
        _ => {
            // Per group and step: count, sum, min, max, Welford mean/variance.
            let mut groups: BTreeMap<Labels, Vec<Acc>> = BTreeMap::new();
            for (l, vals) in &input {
                let accs = groups.entry(group_key(l, grouping)).or_insert_with(|| vec![Acc::default(); n]);
                for (k, v) in vals.iter().enumerate() {
                    if let Some(v) = v {
                        accs[k].add(0, *v);
                    }
                }
            }
            for (l, accs) in groups {
                let vals = accs
                    .iter()
                    .map(|a| {
                        (a.n > 0).then(|| match op {
                            VectorOp::Sum => a.sum,
                            VectorOp::Avg => a.mean,
                            VectorOp::Count => a.n as f64,
                            VectorOp::Min => a.min,
                            VectorOp::Max => a.max,
                            VectorOp::Stdvar => a.m2 / a.n as f64,
                            VectorOp::Stddev => (a.m2 / a.n as f64).sqrt(),
                            _ => unreachable!("handled above"),
                        })
                    })
                    .collect();
                out.insert(l, vals);
            }
        }
    }
    out
}

pub(crate) fn arith(op: BinOp, a: f64, b: f64) -> Option<f64> {
    if op.is_comparison() {
        let hit = match op {
            BinOp::Eq => a == b,
            BinOp::Neq => a != b,
            BinOp::Gt => a > b,
            BinOp::Gte => a >= b,
            BinOp::Lt => a < b,
            _ => a <= b,
        };
        return hit.then_some(a);
    }
    Some(crate::parser::fold(op, a, b))
}

/// `vector op scalar` (or `scalar op vector` when `scalar_left`).
pub(crate) fn vector_scalar(op: BinOp, v: SeriesSet, s: f64, scalar_left: bool, return_bool: bool) -> SeriesSet {
    let mut out = SeriesSet::new();
    for (l, vals) in v {
        let vals: Vec<Option<f64>> = vals
            .into_iter()
            .map(|x| {
                let x = x?;
                let (a, b) = if scalar_left { (s, x) } else { (x, s) };
                if op.is_comparison() {
                    let hit = arith(op, a, b).is_some();
                    if return_bool {
                        Some(if hit { 1.0 } else { 0.0 })
                    } else {
                        hit.then_some(x)
                    }
                } else {
                    arith(op, a, b)
                }
            })
            .collect();
        if vals.iter().any(Option::is_some) {
            out.insert(l, vals);
        }
    }
    out
}

fn signature(l: &Labels, m: Option<&VectorMatching>) -> Labels {
    match m {
        Some(m) if m.on => Labels::from_pairs(l.iter().filter(|(n, _)| m.labels.iter().any(|x| x == n))).unwrap_or_default(),
        Some(m) => Labels::from_pairs(l.iter().filter(|(n, _)| !m.labels.iter().any(|x| x == n))).unwrap_or_default(),
        None => l.clone(),
    }
}

/// `vector op vector` with Loki's (Prometheus') matching rules.
pub(crate) fn vector_vector(op: BinOp, lhs: SeriesSet, rhs: SeriesSet, return_bool: bool, m: Option<&VectorMatching>, n: usize) -> Result<SeriesSet, QueryError> {
    let mut out = SeriesSet::new();
    if op.is_set_op() {
        for step in 0..n {
            let rsigs: std::collections::BTreeSet<Labels> = rhs.iter().filter(|(_, v)| v[step].is_some()).map(|(l, _)| signature(l, m)).collect();
            let lsigs: std::collections::BTreeSet<Labels> = lhs.iter().filter(|(_, v)| v[step].is_some()).map(|(l, _)| signature(l, m)).collect();
            for (l, v) in &lhs {
                let Some(x) = v[step] else { continue };
                let keep = match op {
                    BinOp::And => rsigs.contains(&signature(l, m)),
                    BinOp::Unless => !rsigs.contains(&signature(l, m)),
                    _ => true,
                };
                if keep {
                    out.entry(l.clone()).or_insert_with(|| vec![None; n])[step] = Some(x);
                }
            }
            if op == BinOp::Or {
                for (l, v) in &rhs {
                    let Some(x) = v[step] else { continue };
                    if !lsigs.contains(&signature(l, m)) {
                        out.entry(l.clone()).or_insert_with(|| vec![None; n])[step] = Some(x);
                    }
                }
            }
        }
        return Ok(out);
    }
    let group = m.and_then(|m| m.group.as_ref());
    let right_many = group.is_some_and(|g| !g.left);
    let (many, one) = if right_many { (&rhs, &lhs) } else { (&lhs, &rhs) };
    for step in 0..n {
        let mut one_by_sig: BTreeMap<Labels, (&Labels, f64)> = BTreeMap::new();
        for (l, v) in one {
            let Some(x) = v[step] else { continue };
            if one_by_sig.insert(signature(l, m), (l, x)).is_some() {
                let side = if right_many { "left" } else { "right" };
                return Err(QueryError::BadRequest(format!(
                    "found duplicate series on the {side} hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
                )));
            }
        }
        let mut seen: std::collections::BTreeSet<Labels> = std::collections::BTreeSet::new();
        for (l, v) in many {
            let Some(x) = v[step] else { continue };
            let sig = signature(l, m);
            let Some(&(ol, y)) = one_by_sig.get(&sig) else { continue };
            let (a, b) = if right_many { (y, x) } else { (x, y) };
            let value = if op.is_comparison() {
                let hit = arith(op, a, b).is_some();
                if return_bool {
                    Some(if hit { 1.0 } else { 0.0 })
                } else if hit {
                    Some(a)
                } else {
                    None
                }
            } else {
                arith(op, a, b)
            };
            let Some(value) = value else { continue };
            let result_labels = match (m, group) {
                (Some(_), Some(g)) => {
                    let mut rl = l.clone();
                    for name in &g.include {
                        match ol.get(name) {
                            Some(v) if !v.is_empty() => rl.set(name, v),
                            _ => rl = Labels::from_pairs(rl.iter().filter(|(n, _)| n != name)).unwrap_or_default(),
                        }
                    }
                    rl
                }
                (Some(mm), None) => signature(l, Some(mm)),
                (None, _) => l.clone(),
            };
            if !seen.insert(result_labels.clone()) {
                let why = if group.is_some() { "grouping labels must ensure unique matches" } else { "many-to-one matching must be explicit (group_left/group_right)" };
                return Err(QueryError::BadRequest(format!("multiple matches for labels: {why}")));
            }
            out.entry(result_labels).or_insert_with(|| vec![None; n])[step] = Some(value);
        }
    }
    Ok(out)
}

/// `label_replace(v, dst, replacement, src, regex)`.
pub(crate) fn label_replace(input: SeriesSet, dst: &str, replacement: &str, src: &str, regex: &str) -> Result<SeriesSet, QueryError> {
    let re = regex::Regex::new(&format!("^(?s:{regex})$")).map_err(|e| QueryError::BadRequest(format!("invalid regex in label_replace: {e}")))?;
    let mut out = SeriesSet::new();
    for (l, vals) in input {
        let v = l.get(src).unwrap_or("").to_string();
        let nl = match re.captures(&v) {
            Some(c) => {
                let mut res = String::new();
                c.expand(replacement, &mut res);
                if res.is_empty() {
                    Labels::from_pairs(l.iter().filter(|(n, _)| *n != dst)).unwrap_or_default()
                } else {
                    let mut nl = l.clone();
                    nl.set(dst, &res);
                    nl
                }
            }
            None => l,
        };
        out.insert(nl, vals);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn labels(p: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(p.iter().copied()).unwrap()
    }

    #[test]
    fn windows_are_left_open_right_closed() {
        // Loki's example: count_over_time([60s]) at 100s, 130s, 160s; an entry at 100s
        // counts at t=100 and t=130, not at t=160.
        let steps = Steps::new(100 * S, 160 * S, 30 * S);
        assert_eq!(steps.n, 3);
        assert_eq!(steps.covering(100 * S, 60 * S, 0), 0..2);
        assert_eq!(steps.covering(40 * S, 60 * S, 0), 0..0, "(40, 100] excludes 40");
        assert_eq!(steps.covering(160 * S, 60 * S, 0), 2..3);
        // With an offset the window moves back: at t the window is (t-o-r, t-o].
        assert_eq!(steps.covering(70 * S, 60 * S, 30 * S), 0..2);
        // Instant: one step.
        let one = Steps::new(100 * S, 100 * S, 0);
        assert_eq!(one.covering(100 * S, 60 * S, 0), 0..1);
        assert_eq!(one.covering(40 * S, 60 * S, 0), 0..0);
        // covering_until: every timestamp up to the bound has the same steps, the next not.
        for (range, offset) in [(60 * S, 0), (60 * S, 30 * S), (7 * S, 0), (200 * S, 13 * S)] {
            for st in [steps.clone(), one.clone(), Steps::new(0, 1000 * S, 37 * S)] {
                for ts in (-300..1400).map(|x| x * S / 2) {
                    let (c, until) = st.covering_until(ts, range, offset);
                    assert_eq!(c, st.covering(ts, range, offset));
                    assert!(until >= ts);
                    for t in [ts + 1, (ts + until) / 2, until] {
                        assert_eq!(st.covering(t.min(until), range, offset), c, "{ts}..{until} at {t}");
                    }
                    if !c.is_empty() && until < i64::MAX && st.step > 0 {
                        assert_ne!(st.covering(until + 1, range, offset), c, "{ts}: {until} is the last");
                    }
                }
            }
        }
    }

    #[test]
    fn range_functions() {
        let mut a = Acc::default();
        let samples = [(1, 4.0), (2, 1.0), (3, 7.0), (4, 2.0)];
        for (t, v) in samples {
            a.add(t, v);
        }
        let f = |op, param, range_s, unwrapped| a.finish(op, param, range_s, unwrapped, &samples);
        assert_eq!(f(RangeOp::SumOverTime, None, 60.0, true), 14.0);
        assert_eq!(f(RangeOp::AvgOverTime, None, 60.0, true), 3.5);
        assert_eq!(f(RangeOp::MinOverTime, None, 60.0, true), 1.0);
        assert_eq!(f(RangeOp::FirstOverTime, None, 60.0, true), 4.0);
        assert_eq!(f(RangeOp::LastOverTime, None, 60.0, true), 2.0);
        assert_eq!(f(RangeOp::StdvarOverTime, None, 60.0, true), 5.25, "population variance");
        assert_eq!(f(RangeOp::Rate, None, 2.0, false), 2.0, "count / range seconds");
        assert_eq!(f(RangeOp::Rate, None, 2.0, true), 7.0, "with unwrap: sum / range seconds");
        assert_eq!(f(RangeOp::QuantileOverTime, Some(0.5), 60.0, true), 3.0);
        assert_eq!(quantile(1.5, &mut [1.0]), f64::INFINITY);
    }

    /// The two order statistics give what sorting every window gave.
    #[test]
    fn quantile_by_selection_equals_quantile_of_the_sorted_window() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for len in 1..40 {
            for _ in 0..20 {
                let v: Vec<f64> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng % 50) as f64 - 10.0
                    })
                    .collect();
                let mut sorted = v.clone();
                sorted.sort_by(f64::total_cmp);
                for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0] {
                    let rank = q * (len - 1) as f64;
                    let w = rank - rank.floor();
                    let want = sorted[rank.floor() as usize] * (1.0 - w) + sorted[rank.ceil() as usize] * w;
                    assert_eq!(quantile(q, &mut v.clone()), want, "{q} of {v:?}");
                }
            }
        }
    }

    /// Merging samples into the enclosing `sum by`/`max by` groups while reading gives the
    /// same answer as keeping every series and aggregating afterwards.
    #[test]
    fn merged_grouping_equals_aggregating_afterwards() {
        for q in [
            r#"sum by (path) (rate({a="b"} | json [1m]))"#,
            r#"sum without (id) (bytes_over_time({a="b"} | json [1m]))"#,
            r#"sum(count_over_time({a="b"} | json [1m]))"#,
            r#"max by (path) (max_over_time({a="b"} | json | unwrap v [1m]))"#,
        ] {
            let crate::ast::Expr::Metric(crate::ast::MetricExpr::VectorAgg { op, param, inner, grouping }) = crate::parse(q).unwrap() else { panic!("{q}") };
            let crate::ast::MetricExpr::RangeAgg { op: rop, param: rparam, range, grouping: rg } = inner.as_ref() else { panic!("{q}") };
            assert!(merges_samples(op, *rop), "{q}");
            let steps = Steps::new(60 * S, 600 * S, 15 * S);
            let run = |merge| {
                let spec = RangeSpec { range, op: *rop, param: *rparam, grouping: rg.as_ref(), labels_needed: true, merge };
                let mut acc = RangeAccumulator::new(spec, steps.clone());
                let mut rng = 7u64;
                for i in 0..500i64 {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let labels = vec![
                        ("a".to_string(), "b".to_string()),
                        ("id".to_string(), i.to_string()),
                        ("path".to_string(), ["/x", "/y", "/z"][(rng >> 33) as usize % 3].to_string()),
                        ("v".to_string(), ((rng >> 40) % 1000).to_string()),
                    ];
                    acc.add(((rng >> 20) % 600) as i64 * S, (rng % 300) as usize, labels).unwrap();
                }
                vector_agg(op, param, grouping.as_ref(), acc.finish().unwrap(), steps.n)
            };
            let (plain, merged) = (run(None), run(Some(grouping.as_ref())));
            assert_eq!(plain.keys().collect::<Vec<_>>(), merged.keys().collect::<Vec<_>>(), "{q}");
            for (l, vals) in &plain {
                for (a, b) in vals.iter().zip(&merged[l]) {
                    match (a, b) {
                        (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{q} {l}: {a} != {b}"),
                        _ => assert_eq!(a, b, "{q} {l}"),
                    }
                }
            }
        }
    }

    #[test]
    fn vector_matching_rules() {
        let n = 1;
        let mut l = SeriesSet::new();
        l.insert(labels(&[("a", "1"), ("b", "x")]), vec![Some(10.0)]);
        l.insert(labels(&[("a", "2"), ("b", "x")]), vec![Some(20.0)]);
        let mut r = SeriesSet::new();
        r.insert(labels(&[("a", "1"), ("c", "y")]), vec![Some(2.0)]);
        let on = VectorMatching { on: true, labels: vec!["a".into()], group: None };
        let out = vector_vector(BinOp::Div, l.clone(), r.clone(), false, Some(&on), n).unwrap();
        assert_eq!(out.get(&labels(&[("a", "1")])), Some(&vec![Some(5.0)]));
        assert_eq!(out.len(), 1);
        // Two left series with the same signature need group_left.
        let on_b = VectorMatching { on: true, labels: vec!["b".into()], group: None };
        let mut r2 = SeriesSet::new();
        r2.insert(labels(&[("b", "x")]), vec![Some(1.0)]);
        let e = vector_vector(BinOp::Add, l.clone(), r2.clone(), false, Some(&on_b), n).unwrap_err().to_string();
        assert!(e.contains("many-to-one matching must be explicit"), "{e}");
        let gl = VectorMatching { on: true, labels: vec!["b".into()], group: Some(crate::ast::GroupModifier { left: true, include: vec![] }) };
        assert_eq!(vector_vector(BinOp::Add, l.clone(), r2, false, Some(&gl), n).unwrap().len(), 2);
        // Set operators.
        let unless = vector_vector(BinOp::Unless, l.clone(), r.clone(), false, Some(&on), n).unwrap();
        assert_eq!(unless.keys().collect::<Vec<_>>(), vec![&labels(&[("a", "2"), ("b", "x")])]);
        let or = vector_vector(BinOp::Or, l, r, false, Some(&on), n).unwrap();
        assert_eq!(or.len(), 2, "the right series shares a=1 with the left");
    }

    #[test]
    fn comparisons_filter_or_return_bool() {
        let mut v = SeriesSet::new();
        v.insert(labels(&[("a", "1")]), vec![Some(1.0), Some(5.0)]);
        let f = vector_scalar(BinOp::Gt, v.clone(), 2.0, false, false);
        assert_eq!(f[&labels(&[("a", "1")])], vec![None, Some(5.0)]);
        let b = vector_scalar(BinOp::Gt, v, 2.0, false, true);
        assert_eq!(b[&labels(&[("a", "1")])], vec![Some(0.0), Some(1.0)]);
        assert!(crate::parser::fold(BinOp::Div, 1.0, 0.0).is_nan(), "Loki: x/0 is NaN");
    }
}
