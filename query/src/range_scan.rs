//! Range aggregations read straight from the scan's columns. Each scan partition is
//! read on a blocking thread of its own with its own [`RangeAccumulator`], so the
//! pipeline (parsing every line: the costly part of `| json` or `| logfmt` metrics) and
//! the line filters run on every core; the partial results are merged at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::col;
use silt_storage::codec::decode_metadata;
use silt_storage::{field_column, Labels, TenantId, COL_FIELDS_EXACT, COL_LINE, COL_METADATA, COL_STREAM, COL_TS};

use crate::ast::Stage;
use crate::engine::{split_line_filters, Engine};
use crate::error::QueryError;
use crate::metric::{Budget, RangeAccumulator, RangeSpec, Steps, Value};
use crate::pipeline::{EntryLabels, Needed, Pipeline};
use crate::provider::StreamLabels;

impl Engine {
    /// Evaluates one range aggregation: one pass over its log query, samples added to the
    /// windows they fall in.
    pub(crate) async fn range_agg(&self, tenants: &[TenantId], steps: &Steps, spec: RangeSpec<'_>) -> Result<Value, QueryError> {
        let range = spec.range;
        let owned = Arc::new(spec.owned());
        let mut acc = RangeAccumulator::new(spec, steps.clone()).with_budget(self.reservation("range aggregation"));
        let from = steps.start - range.offset - range.range;
        let to = steps.at(steps.n - 1) - range.offset + 1;
        if from < to {
            let only_line_filters = range.log.pipeline.iter().all(|s| matches!(s, Stage::LineFilter(_)));
            let plain = only_line_filters && acc.keyed_by_labels_only();
            // Structured metadata can only matter to a plain aggregation through the
            // series labels: not when they are `by` labels every stream has (metadata
            // never overrides a stream label), so the column is not read. A stream pushed
            // meanwhile that lacks one makes the workers give up, and the pass is rerun
            // with the column.
            let mut metadata = !plain || !self.stream_labels_decide(tenants, &range.log.selector, from, to, acc.spec().key_labels().as_deref());
            // `| json` metrics that look at a few fields read them from compaction's
            // field columns where they can. An entry whose labels then need more than
            // those fields (an error) and whose line was not read makes the workers give
            // up, and the pass is rerun reading lines.
            let mut fields = if plain { None } else { json_fields(&acc)? };
            let partials = loop {
                let (df, streams, _) = self.scan_plan_with_fields(tenants, &range.log, from, to, fields.clone())?;
                let mut cols = vec![col(COL_STREAM), col(COL_TS)];
                if metadata {
                    cols.push(col(COL_METADATA));
                }
                if !plain || acc.needs_line_len() {
                    cols.push(col(COL_LINE));
                }
                if let Some(names) = &fields {
                    cols.push(col(COL_FIELDS_EXACT));
                    cols.extend((0..names.len()).map(|i| col(field_column(i))));
                }
                let (pool, limit, steps, owned, names) = (self.pool(), self.memory_limit(), steps.clone(), owned.clone(), fields.clone());
                let partials = on_partitions(df.select(cols)?.execute_stream_partitioned().await?, move |batches| {
                    let budget = Budget::new(MemoryConsumer::new("range aggregation").register(&pool), limit);
                    let mut acc = RangeAccumulator::new(owned.spec(), steps.clone()).with_budget(budget);
                    let complete = if plain { plain_rows(&mut acc, &streams, metadata, batches)? } else { pipeline_rows(&mut acc, &streams, batches, names.as_deref())? };
                    Ok(complete.then(|| acc.into_partial()))
                })
                .await?;
                match partials.into_iter().collect::<Option<Vec<_>>>() {
                    Some(p) => break p,
                    None if fields.is_some() => fields = None,
                    None if !metadata => metadata = true,
                    None => return Err(QueryError::Internal("range aggregation incomplete with every column read".into())),
                }
            };
            for p in partials {
                acc.merge(p)?;
            }
        }
        Ok(Value::Vector(acc.finish()?))
    }

    /// Whether every stream the selector matches in `[from, to)` has all the labels
    /// `key` names (a series function of stream labels alone).
    fn stream_labels_decide(&self, tenants: &[TenantId], selector: &[silt_storage::Matcher], from: i64, to: i64, key: Option<&[&str]>) -> bool {
        let ([tenant], Some(key)) = (tenants, key) else { return false };
        self.store().series(tenant, selector, from, to).iter().all(|l| key.iter().all(|k| l.get(k).is_some()))
    }
}

/// Runs `work` on each partition's batches on a blocking thread (the scan decodes on
/// threads of its own) and returns the results in partition order. When one worker
/// fails, or the query is dropped (a timeout, a client gone), the others stop once
/// their scan hands them the next batch.
async fn on_partitions<T, F>(streams: Vec<SendableRecordBatchStream>, work: F) -> Result<Vec<T>, QueryError>
where
    T: Send + 'static,
    F: Fn(Batches) -> Result<T, QueryError> + Send + Sync + 'static,
{
    /// Sets the flag when the query's future is dropped or returns.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let work = Arc::new(work);
    let mut running: futures::stream::FuturesUnordered<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let (work, stop) = (work.clone(), stop.0.clone());
            let h = tokio::task::spawn_blocking(move || work(Batches { stream, stop }));
            async move { (i, h.await) }
        })
        .collect();
    let mut out: Vec<Option<T>> = (0..running.len()).map(|_| None).collect();
    // The first failure returns at once; dropping `stop` then stops the others.
    while let Some((i, r)) = futures::StreamExt::next(&mut running).await {
        out[i] = Some(r.map_err(|e| QueryError::Internal(format!("range aggregation worker failed: {e}")))??);
    }
    Ok(out.into_iter().flatten().collect())
}

/// One partition's batches, read on a worker thread.
struct Batches {
    stream: SendableRecordBatchStream,
    stop: Arc<AtomicBool>,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        use futures::StreamExt;
        if self.stop.load(Ordering::Relaxed) {
            return Some(Err(QueryError::Internal("query stopped".into())));
        }
        futures::executor::block_on(self.stream.next()).map(|r| r.map_err(QueryError::from))
    }
}

/// The labels of a stream, from the scan's map.
fn stream_labels(streams: &StreamLabels, fp: u64) -> Result<Labels, QueryError> {
    streams.lock().unwrap().get(&fp).cloned().ok_or_else(|| QueryError::Internal(format!("row of unknown stream {fp:x}")))
}

/// The JSON keys a range aggregation can read from field columns instead of its lines:
/// when its pipeline is `| json` and label filters, with no line filter (which would
/// need every line), and only some labels can be observed.
fn json_fields(acc: &RangeAccumulator<'_>) -> Result<Option<Vec<String>>, QueryError> {
    let spec = acc.spec();
    let (pre, rest) = split_line_filters(&spec.range.log.pipeline);
    if !pre.is_empty() || acc.needs_line_len() {
        return Ok(None);
    }
    let Some(names) = spec.observed_labels() else { return Ok(None) };
    Ok(Pipeline::compile(rest)?.projected(Needed::new(names)).json_fields())
}

/// Runs the pipeline on every row (columns stream, ts, metadata, line, then the field
/// columns for `fields` when given). When only some labels can be observed, parsers keep
/// only those and the series is found by their values, with nothing copied per entry; an
/// entry with an error runs again through the full pipeline, since its series names
/// every label. False, with the work abandoned, when such an entry's line was not read.
fn pipeline_rows(acc: &mut RangeAccumulator<'_>, streams: &StreamLabels, batches: Batches, fields: Option<&[String]>) -> Result<bool, QueryError> {
    let spec = acc.spec();
    let (_, rest) = split_line_filters(&spec.range.log.pipeline);
    let full = Pipeline::compile(rest)?;
    let projected = spec.observed_labels().map(|names| Pipeline::compile(rest).map(|p| p.projected(Needed::new(names)))).transpose()?;
    let by_fields = match (fields, &projected) {
        (Some(names), Some(p)) => Some((names, p)),
        (None, _) => None,
        (Some(_), None) => return Err(QueryError::Internal("field columns without a projected pipeline".into())),
    };
    // The stream labels of the current run of rows.
    let mut base: Option<(u64, Labels)> = None;
    for b in batches {
        let b = b?;
        let fps = b.column(0).as_primitive::<UInt64Type>();
        let ts = b.column(1).as_primitive::<Int64Type>();
        let meta = b.column(2).as_binary::<i32>();
        let lines = b.column(3).as_string::<i32>();
        let exact = by_fields.map(|_| b.column(4).as_boolean());
        let values: Vec<&StringArray> = match by_fields {
            Some((names, _)) => (0..names.len()).map(|j| b.column(5 + j).as_string::<i32>()).collect(),
            None => Vec::new(),
        };
        let mut found: Vec<(&str, &str)> = Vec::with_capacity(values.len());
        for i in 0..b.num_rows() {
            let t = ts.value(i);
            if !acc.covers(t) {
                continue;
            }
            let fp = fps.value(i);
            if base.as_ref().is_none_or(|(f, _)| *f != fp) {
                base = Some((fp, stream_labels(streams, fp)?));
            }
            let Some((_, labels)) = &base else { continue };
            let md = meta.is_valid(i).then(|| meta.value(i));
            let entry = || EntryLabels::new(labels.iter(), md.into_iter().flat_map(decode_metadata));
            let line = lines.value(i);
            if let (Some((names, p)), Some(exact)) = (by_fields, exact) {
                if exact.value(i) {
                    found.clear();
                    found.extend(names.iter().zip(&values).filter(|(_, v)| v.is_valid(i)).map(|(n, v)| (n.as_str(), v.value(i))));
                    let Some((out, labels)) = p.process_fields(line, entry(), t, &found) else { continue };
                    if acc.add_observed(t, out.len(), &labels)? {
                        continue;
                    }
                    // An exact row's line is never empty (it holds a JSON object): an
                    // empty one was not read.
                    if line.is_empty() {
                        return Ok(false);
                    }
                    if let Some((out, labels)) = full.process(line, entry(), t) {
                        acc.add(t, out.len(), labels.into_pairs())?;
                    }
                    continue;
                }
            }
            if let Some(p) = &projected {
                let Some((out, labels)) = p.process(line, entry(), t) else { continue };
                if acc.add_observed(t, out.len(), &labels)? {
                    continue;
                }
            }
            if let Some((out, labels)) = full.process(line, entry(), t) {
                acc.add(t, out.len(), labels.into_pairs())?;
            }
        }
    }
    Ok(true)
}

/// The rows of a selector with line filters only and no unwrap (columns stream, ts,
/// metadata unless the series cannot depend on it, and line only when its length
/// counts): an entry's labels are its stream's and its structured metadata, so its
/// series is worked out once per distinct (stream, metadata) and each row costs a
/// lookup. False, with the work abandoned, when metadata was not read but a stream
/// lacks a grouping label (so the metadata could have supplied it).
fn plain_rows(acc: &mut RangeAccumulator<'_>, streams: &StreamLabels, metadata: bool, batches: Batches) -> Result<bool, QueryError> {
    // The series of each (stream, metadata bytes) seen, by a hash of the two; the
    // bytes are compared on a hit, so a collision costs a miss, never a wrong series.
    let mut seen: HashMap<u64, Vec<(u64, Vec<u8>, usize)>, silt_storage::prehashed::Prehashed> = HashMap::default();
    // The previous row's stream, metadata and series (the buffer is reused).
    let (mut last_fp, mut last_m, mut last_s) = (None, Vec::new(), 0);
    // Counts and sums of a run of rows of one series in the same windows, added at once:
    // a stream's rows fill one set of windows for hundreds of rows at a time.
    let bulk = acc.sums_only();
    let mut run: Option<(usize, std::ops::Range<usize>, u64, f64)> = None;
    for b in batches {
        let b = b?;
        let fps = b.column(0).as_primitive::<UInt64Type>();
        let ts = b.column(1).as_primitive::<Int64Type>();
        let meta = metadata.then(|| b.column(2).as_binary::<i32>());
        let lines = (b.num_columns() > 2 + metadata as usize).then(|| b.column(2 + metadata as usize).as_string::<i32>());
        let (fv, tv, rows) = (fps.values(), ts.values(), b.num_rows());
        let meta_at = |j: usize| -> &[u8] {
            match meta {
                Some(meta) if meta.is_valid(j) => meta.value(j),
                _ => &[],
            }
        };
        let mut i = 0;
        while i < rows {
            // As the general path: a sample outside every window creates no series.
            let t = tv[i];
            let (steps, until) = acc.windows_until(t);
            if steps.is_empty() {
                i += 1;
                continue;
            }
            let fp = fv[i];
            let m = meta_at(i);
            // Rows come in runs of one stream, often with the same metadata.
            let series = match last_fp {
                Some(lfp) if lfp == fp && last_m.as_slice() == m => last_s,
                _ => {
                    let h = xxhash_rust::xxh3::xxh3_64_with_seed(m, fp);
                    let bucket = seen.entry(h).or_default();
                    let s = match bucket.iter().find(|(f, bm, _)| *f == fp && bm.as_slice() == m) {
                        Some((_, _, s)) => *s,
                        None => {
                            let labels = stream_labels(streams, fp)?;
                            if !metadata && acc.spec().key_labels().is_none_or(|key| key.iter().any(|k| labels.get(k).is_none())) {
                                return Ok(false);
                            }
                            let entry = EntryLabels::new(labels.iter(), decode_metadata(m));
                            let s = acc.series_index(&acc.series_key(entry.into_pairs())?)?;
                            bucket.push((fp, m.to_vec(), s));
                            s
                        }
                    };
                    last_fp = Some(fp);
                    last_m.clear();
                    last_m.extend_from_slice(m);
                    last_s = s;
                    s
                }
            };
            if !bulk {
                acc.add_at(series, t, acc.plain_value(lines.map_or(0, |l| l.value(i).len())))?;
                i += 1;
                continue;
            }
            // The rows after this one of the same series that fall in the same windows
            // (a stream's rows mostly arrive in time order, hundreds to a window; one
            // out of order ends the run): counted in one step, their line lengths summed
            // from the offsets.
            let mut j = i + 1;
            while j < rows && fv[j] == fp && tv[j] >= t && tv[j] <= until && (meta.is_none() || meta_at(j) == m) {
                j += 1;
            }
            let count = (j - i) as u64;
            let sum = match lines {
                Some(l) if acc.needs_line_len() => (l.value_offsets()[j] - l.value_offsets()[i]) as f64,
                _ => count as f64 * acc.plain_value(0),
            };
            i = j;
            match &mut run {
                Some((s, st, n, total)) if *s == series && *st == steps => {
                    *n += count;
                    *total += sum;
                }
                _ => {
                    if let Some((s, st, n, total)) = run.replace((series, steps, count, sum)) {
                        acc.add_sums_to(s, st, n, total)?;
                    }
                }
            }
        }
    }
    if let Some((s, st, n, sum)) = run {
        acc.add_sums_to(s, st, n, sum)?;
    }
    Ok(true)
}
