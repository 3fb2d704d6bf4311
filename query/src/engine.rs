//! Runs LogQL on DataFusion. A log query becomes
//! `scan(tenant, matchers, [start, end), leading line filters) -> pipeline -> top-k by time`;
//! the scan is [`LogTable`] (the storage applies the line filters as it reads), the rest
//! of the pipeline one UDF, and DataFusion's sort with a fetch keeps only `limit` rows
//! in memory however many lines match.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool, UnboundedMemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{col, lit, SessionConfig, SessionContext};
use silt_storage::codec::decode_metadata;
use silt_storage::{Labels, ScanPart, Store, TenantId, COL_LINE, COL_METADATA, COL_STREAM, COL_TS, IDX_LINE, IDX_METADATA};

use crate::ast::{LogExpr, Stage};
use crate::error::QueryError;
use crate::line_filter::LineFilterChain;
use crate::provider::{LogTable, SaltedPart};
use crate::pieces::PieceQueue;
use crate::udf::PipelineUdf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A log query over `[start, end)`, Unix ns.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub expr: LogExpr,
    pub start: i64,
    pub end: i64,
    pub limit: usize,
    pub direction: Direction,
    /// Loki's `interval` (ns, 0 = off): after an entry is returned, entries less than this
    /// far past it in the query's direction are skipped (across all streams, as Loki does).
    pub interval: i64,
    /// Loki's `categorize-labels` form: streams keyed by their stream labels only, each
    /// entry with its structured metadata and parsed labels apart.
    pub categorize: bool,
}

/// One entry of a log query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryResult {
    pub ts: i64,
    pub line: String,
    /// Only filled in the categorized form.
    pub metadata: Vec<(String, String)>,
    /// Only filled in the categorized form; includes `__error__` and `__error_details__`.
    pub parsed: Vec<(String, String)>,
}

/// One stream of a log query's answer: its labels (by default stream labels merged with
/// structured metadata and parsed labels, as Loki returns them) and its entries in the
/// query's direction.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    pub labels: Labels,
    pub entries: Vec<EntryResult>,
}

#[derive(Clone)]
pub struct Engine {
    store: Store,
    /// Most bytes one query may hold (DataFusion's sorts and aggregations, and the metric
    /// engine's series); 0: no limit.
    memory_limit: usize,
    /// The pool of the query being run; every session of one query shares it.
    pool: Option<Arc<dyn MemoryPool>>,
}

/// Log queries over 64 of these or less are read in one pass, not in pieces; with an
/// `interval`, the narrowest first window (see [`Engine::log_query`]).
const MIN_WINDOW: i64 = 60_000_000_000;

/// The default per-query memory limit.
pub const DEFAULT_QUERY_MEMORY: usize = 1 << 30;

impl Engine {
    pub fn new(store: Store) -> Self {
        Engine { store, memory_limit: DEFAULT_QUERY_MEMORY, pool: None }
    }

    /// Sets the per-query memory limit (0: none). A query that needs more fails with
    /// [`QueryError::MemoryLimit`]; the process never runs out of memory for one query.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This engine with a fresh memory pool: call once per query.
    fn for_query(&self) -> Engine {
        let pool: Arc<dyn MemoryPool> = if self.memory_limit == 0 { Arc::new(UnboundedMemoryPool::default()) } else { Arc::new(GreedyMemoryPool::new(self.memory_limit)) };
        Engine { store: self.store.clone(), memory_limit: self.memory_limit, pool: Some(pool) }
    }

    pub(crate) fn pool(&self) -> Arc<dyn MemoryPool> {
        self.pool.clone().unwrap_or_else(|| self.for_query().pool.expect("for_query sets a pool"))
    }

    /// The per-query memory limit (0: none).
    pub(crate) fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// A reservation in the query's pool, for memory the engine holds itself.
    pub(crate) fn reservation(&self, name: &str) -> crate::metric::Budget {
        crate::metric::Budget::new(MemoryConsumer::new(name).register(&self.pool()), self.memory_limit)
    }

    fn session(&self) -> SessionContext {
        // Two cores: more partitions than that only adds repartitioning work.
        let cfg = SessionConfig::new().with_target_partitions(2).with_batch_size(self.store.config().batch_rows);
        let runtime = RuntimeEnvBuilder::new().with_memory_pool(self.pool()).build_arc().expect("a runtime with a memory pool builds");
        SessionContext::new_with_config_rt(cfg, runtime)
    }

    /// The start of every plan: the table for the selector, the time range, and the line
    /// filters that come before any other stage, as one cheap predicate on the raw line.
    /// Returns the plan, the stream labels it will see, and the rest of the pipeline.
    pub(crate) fn scan_plan<'e>(
        &self,
        tenants: &[TenantId],
        log: &'e crate::ast::LogExpr,
        start: i64,
        end: i64,
    ) -> Result<(datafusion::dataframe::DataFrame, crate::provider::StreamLabels, &'e [Stage]), QueryError> {
        self.scan_plan_with_fields(tenants, log, start, end, None)
    }

    /// [`Self::scan_plan`], with the JSON field columns for `fields` when given (see
    /// [`LogTable::with_fields`]).
    pub(crate) fn scan_plan_with_fields<'e>(
        &self,
        tenants: &[TenantId],
        log: &'e crate::ast::LogExpr,
        start: i64,
        end: i64,
        fields: Option<Vec<String>>,
    ) -> Result<(datafusion::dataframe::DataFrame, crate::provider::StreamLabels, &'e [Stage]), QueryError> {
        let mut table = self.log_table(tenants, log)?;
        if let Some(names) = fields {
            table = table.with_fields(names);
        }
        self.scan_plan_on(table, log, start, end)
    }

    /// The table a log expression reads: its selector, and its leading line filters
    /// (their needles for the needle index, and the filters the scan applies).
    fn log_table(&self, tenants: &[TenantId], log: &LogExpr) -> Result<LogTable, QueryError> {
        let pre = split_line_filters(&log.pipeline).0;
        let table = LogTable::new(self.store.clone(), tenants, log.selector.clone()).with_needles(needles(pre));
        let filters: Vec<_> = pre.iter().filter_map(|s| if let Stage::LineFilter(f) = s { Some(f) } else { None }).collect();
        if filters.is_empty() {
            return Ok(table);
        }
        Ok(table.with_line_filter(Arc::new(LineFilterChain::compile(filters)?)))
    }

    /// [`Self::scan_plan`] over `table`.
    fn scan_plan_on<'e>(
        &self,
        table: LogTable,
        log: &'e crate::ast::LogExpr,
        start: i64,
        end: i64,
    ) -> Result<(datafusion::dataframe::DataFrame, crate::provider::StreamLabels, &'e [Stage]), QueryError> {
        // The leading line filters are the table's (see `log_table`).
        let rest = split_line_filters(&log.pipeline).1;
        let table = Arc::new(table);
        let streams = table.streams();
        let df = self.session().read_table(table)?;
        let predicate = col(COL_TS).gt_eq(lit(start)).and(col(COL_TS).lt(lit(end)));
        Ok((df.filter(predicate)?, streams, rest))
    }

    pub async fn log_query(&self, tenants: &[TenantId], q: &LogQuery) -> Result<Vec<StreamResult>, QueryError> {
        let engine = self.for_query();
        // A literal the needle index can look up already skips most of the range, and a
        // rare one would make reading in pieces read in vain.
        // A range too long to measure in an i64 is read in one pass.
        let span = q.end.checked_sub(q.start).unwrap_or(0);
        if span <= 64 * MIN_WINDOW || needle_pruned(&q.expr.pipeline) {
            return engine.run_log_query(tenants, q).await;
        }
        if q.interval > 0 {
            return engine.log_query_by_interval(tenants, q, span).await;
        }
        engine.log_query_in_pieces(tenants, q).await
    }

    /// "The newest N entries", reading no more than it must: the pieces of the scan's
    /// parts go into a queue that the plan's partitions read from (see
    /// [`crate::pieces`]), newest first (forward: oldest first), until no piece left can
    /// hold one of the N.
    async fn log_query_in_pieces(&self, tenants: &[TenantId], q: &LogQuery) -> Result<Vec<StreamResult>, QueryError> {
        if q.limit == 0 || q.start >= q.end {
            return Ok(Vec::new());
        }
        let resolver = self.log_table(tenants, &q.expr)?;
        let backward = q.direction == Direction::Backward;
        let pieces: Vec<SaltedPart> = resolver.resolve(q.start, q.end)?.into_iter().flat_map(|(p, salt)| p.pieces().into_iter().map(move |p| (p, salt))).collect();
        let queue = Arc::new(PieceQueue::new(pieces, backward, q.limit));
        // Without a pipeline, the rows the scan hands out are the entries: it reports them.
        let reports = split_line_filters(&q.expr.pipeline).1.is_empty();
        let table = resolver.with_queue(queue.clone(), reports);
        let rows = self.log_rows(table, q, Some(queue.clone())).await?;
        tracing::debug!(rows_read = queue.rows_read(), kept = rows.len(), "log query read in pieces");
        Ok(group_by_stream(rows))
    }

    /// With an `interval`, which entries a sliver keeps depends on the entries before it,
    /// so each try reads the whole sliver from the edge of the range, widening eightfold:
    /// the entries kept from it are the first ones kept from the whole range.
    async fn log_query_by_interval(&self, tenants: &[TenantId], q: &LogQuery, span: i64) -> Result<Vec<StreamResult>, QueryError> {
        let mut w = (span / 64).max(MIN_WINDOW);
        while w < span {
            let mut sub = q.clone();
            match q.direction {
                Direction::Backward => sub.start = q.end - w,
                Direction::Forward => sub.end = q.start + w,
            }
            let r = self.run_log_query(tenants, &sub).await?;
            if r.iter().map(|s| s.entries.len()).sum::<usize>() >= q.limit {
                return Ok(r);
            }
            w = w.saturating_mul(8);
        }
        self.run_log_query(tenants, q).await
    }

    async fn run_log_query(&self, tenants: &[TenantId], q: &LogQuery) -> Result<Vec<StreamResult>, QueryError> {
        if q.limit == 0 || q.start >= q.end {
            return Ok(Vec::new());
        }
        Ok(group_by_stream(self.log_rows(self.log_table(tenants, &q.expr)?, q, None).await?))
    }

    /// The first `limit` entries of `table` for the query, in its order: what
    /// [`Self::log_query`] answers, before grouping by stream. With `queue` (the table
    /// reads from it), the pipeline reports the times of the entries it keeps to it;
    /// without a pipeline, the scan does (see [`LogTable::with_queue`]).
    async fn log_rows(&self, table: LogTable, q: &LogQuery, queue: Option<Arc<PieceQueue>>) -> Result<Vec<Row>, QueryError> {
        let (mut df, streams, rest) = self.scan_plan_on(table, &q.expr, q.start, q.end)?;
        let with_pipeline = !rest.is_empty();
        if with_pipeline {
            let mut pipeline = PipelineUdf::compile(rest, streams.clone())?;
            if let Some(q) = queue {
                pipeline = pipeline.with_queue(q);
            }
            let udf = ScalarUDF::new_from_impl(pipeline);
            df = df.select(vec![
                col(COL_STREAM),
                col(COL_TS),
                udf.call(vec![col(COL_STREAM), col(COL_TS), col(COL_LINE), col(COL_METADATA)]).alias("p"),
            ])?;
            df = df.filter(col("p").is_not_null())?;
        }
        let asc = q.direction == Direction::Forward;
        df = df.sort(vec![col(COL_TS).sort(asc, false), col(COL_STREAM).sort(true, false)])?;
        let batches = if q.interval > 0 {
            // Which entries survive depends on every earlier one: sort all, then thin.
            thin_by_interval(df.execute_stream().await?, q.interval, asc, q.limit).await?
        } else {
            df.limit(0, Some(q.limit))?.collect().await?
        };

        let streams = streams.lock().unwrap();
        let mut out: Vec<Row> = Vec::new();
        let mut add = |stream: Vec<(String, String)>, metadata: Vec<(String, String)>, parsed: Vec<(String, String)>, ts: i64, line: &str| -> Result<(), QueryError> {
            let entry = |metadata, parsed| EntryResult { ts, line: line.to_string(), metadata, parsed };
            let mut labels = Labels::from_pairs(stream).map_err(|e| QueryError::Internal(e.to_string()))?;
            let entry = if q.categorize {
                entry(metadata, parsed)
            } else {
                for (n, v) in metadata.iter().chain(&parsed) {
                    labels.set(n, v);
                }
                entry(Vec::new(), Vec::new())
            };
            out.push(Row { labels, entry });
            Ok(())
        };
        for b in &batches {
            let fp = b.column(0).as_primitive::<UInt64Type>();
            let ts = b.column(1).as_primitive::<Int64Type>();
            if with_pipeline {
                let p = b.column(2).as_struct();
                let line = p.column(0).as_string::<i32>();
                let labels = p.column(1).as_binary::<i32>();
                for i in 0..b.num_rows() {
                    let (mut st, mut md, mut pa) = (Vec::new(), Vec::new(), Vec::new());
                    for (n, v) in decode_metadata(labels.value(i)) {
                        let (cat, name) = n.split_at(1);
                        let target = match cat {
                            "s" => &mut st,
                            "m" => &mut md,
                            _ => &mut pa,
                        };
                        target.push((name.to_string(), v.to_string()));
                    }
                    add(st, md, pa, ts.value(i), line.value(i))?;
                }
                continue;
            }
            let line = b.column(IDX_LINE).as_string::<i32>();
            let meta = b.column(IDX_METADATA).as_binary::<i32>();
            for i in 0..b.num_rows() {
                let f = fp.value(i);
                let base = streams.get(&f).ok_or_else(|| QueryError::Internal(format!("row of unknown stream {f:x}")))?;
                let stream: Vec<(String, String)> = base.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
                let mut md = Vec::new();
                if meta.is_valid(i) {
                    for (n, v) in decode_metadata(meta.value(i)) {
                        // Named like a stream label: renamed, as the pipeline does.
                        let n = if base.get(n).is_some() { format!("{n}_extracted") } else { n.to_string() };
                        md.push((n, v.to_string()));
                    }
                }
                add(stream, md, Vec::new(), ts.value(i), line.value(i))?;
            }
        }
        Ok(out)
    }
}

/// One entry of a log query's answer, with its labels.
struct Row {
    labels: Labels,
    entry: EntryResult,
}

/// Entries in answer order, as streams (each stream's entries in that order).
fn group_by_stream(rows: Vec<Row>) -> Vec<StreamResult> {
    let mut out: BTreeMap<Labels, Vec<EntryResult>> = BTreeMap::new();
    for r in rows {
        out.entry(r.labels).or_default().push(r.entry);
    }
    out.into_iter().map(|(labels, entries)| StreamResult { labels, entries }).collect()
}

/// Pieces of the same chunk that follow each other joined back (one reader each),
/// tenant by tenant.
pub(crate) fn join_pieces(pieces: Vec<SaltedPart>) -> Vec<SaltedPart> {
    let mut by_salt: BTreeMap<u64, Vec<ScanPart>> = BTreeMap::new();
    for (p, salt) in pieces {
        by_salt.entry(salt).or_default().push(p);
    }
    by_salt.into_iter().flat_map(|(salt, parts)| ScanPart::join_pieces(parts).into_iter().map(move |p| (p, salt))).collect()
}

/// Loki's `interval` rule over a time-ordered stream of batches: keep the first entry,
/// then each entry at least `interval` past the last one kept, until `limit` are kept.
async fn thin_by_interval(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    interval: i64,
    forward: bool,
    limit: usize,
) -> Result<Vec<arrow::record_batch::RecordBatch>, QueryError> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut kept = 0usize;
    let mut last: Option<i64> = None;
    while kept < limit {
        let Some(b) = stream.next().await else { break };
        let b = b?;
        let ts = b.column_by_name(COL_TS).ok_or_else(|| QueryError::Internal("no ts column".into()))?.as_primitive::<Int64Type>();
        let mut keep = arrow::array::BooleanBufferBuilder::new(b.num_rows());
        for t in ts.values().iter().copied() {
            // Like Loki, an entry before 1970 never holds back the next one.
            let take = kept < limit
                && match last {
                    None => true,
                    Some(l) if l < 0 => true,
                    Some(l) if forward => t >= l.saturating_add(interval),
                    Some(l) => t <= l.saturating_sub(interval),
                };
            keep.append(take);
            if take {
                kept += 1;
                last = Some(t);
            }
        }
        let mask = arrow::array::BooleanArray::new(keep.finish(), None);
        out.push(arrow::compute::filter_record_batch(&b, &mask)?);
    }
    Ok(out)
}

/// Receives `(ts, line, labels)` of each entry a pipeline lets through.
type EntrySink<'a> = dyn FnMut(i64, &str, Vec<(String, String)>) -> Result<(), QueryError> + Send + 'a;

/// The answer to a metric query.
#[derive(Debug, Clone)]
pub enum MetricResult {
    /// Range query: series with their points `(ts ns, value)`.
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
    /// Instant query: samples at `ts`, in the order to return them.
    Vector(i64, Vec<(Labels, f64)>),
    Scalar(i64, f64),
}

impl Engine {
    /// Runs `log` over `[start, end)` through its pipeline and calls `f(ts, line, labels)`
    /// for every entry that survives, batch by batch.
    async fn for_each_entry(
        &self,
        tenants: &[TenantId],
        log: &crate::ast::LogExpr,
        start: i64,
        end: i64,
        f: &mut EntrySink<'_>,
    ) -> Result<(), QueryError> {
        use futures::StreamExt;
        if start >= end {
            return Ok(());
        }
        let (mut df, streams, rest) = self.scan_plan(tenants, log, start, end)?;
        let udf = ScalarUDF::new_from_impl(PipelineUdf::compile(rest, streams)?);
        df = df.select(vec![col(COL_TS), udf.call(vec![col(COL_STREAM), col(COL_TS), col(COL_LINE), col(COL_METADATA)]).alias("p")])?;
        df = df.filter(col("p").is_not_null())?;
        let mut stream = df.execute_stream().await?;
        while let Some(b) = stream.next().await {
            let b = b?;
            let ts = b.column(0).as_primitive::<Int64Type>();
            let p = b.column(1).as_struct();
            let line = p.column(0).as_string::<i32>();
            let labels = p.column(1).as_binary::<i32>();
            for i in 0..b.num_rows() {
                // Names carry a one-byte origin prefix (see `PipelineUdf`); metrics need none.
                let pairs = decode_metadata(labels.value(i)).map(|(a, b)| (a[1..].to_string(), b.to_string())).collect();
                f(ts.value(i), line.value(i), pairs)?;
            }
        }
        Ok(())
    }

    /// Streams every entry of `log` in `[start, end)` that survives its pipeline, in no
    /// particular order: `f(ts, line, labels)` with stream labels, structured metadata and
    /// parsed labels together. For whole-range summaries (patterns).
    pub async fn scan_entries(
        &self,
        tenants: &[TenantId],
        log: &crate::ast::LogExpr,
        start: i64,
        end: i64,
        f: &mut (dyn FnMut(i64, &str, Vec<(String, String)>) -> Result<(), QueryError> + Send),
    ) -> Result<(), QueryError> {
        self.for_each_entry(tenants, log, start, end, f).await
    }

    /// Evaluates a metric query at `start, start+step, ... <= end` (`step == 0`: instant).
    pub async fn metric_query(&self, tenants: &[TenantId], expr: &crate::ast::MetricExpr, start: i64, end: i64, step: i64) -> Result<MetricResult, QueryError> {
        self.for_query().run_metric_query(tenants, expr, start, end, step).await
    }

    async fn run_metric_query(&self, tenants: &[TenantId], expr: &crate::ast::MetricExpr, start: i64, end: i64, step: i64) -> Result<MetricResult, QueryError> {
        let steps = crate::metric::Steps::new(start, end, step);
        let instant = step == 0;
        let value = self.eval(tenants, expr, &steps, true).await?;
        let sorted = matches!(expr, crate::ast::MetricExpr::VectorAgg { op: crate::ast::VectorOp::Sort | crate::ast::VectorOp::SortDesc, .. });
        let desc = matches!(expr, crate::ast::MetricExpr::VectorAgg { op: crate::ast::VectorOp::SortDesc, .. });
        Ok(match value {
            crate::metric::Value::Scalar(v) if instant => MetricResult::Scalar(start, v),
            crate::metric::Value::Scalar(v) => MetricResult::Matrix(vec![(Labels::default(), (0..steps.n).map(|k| (steps.at(k), v)).collect())]),
            crate::metric::Value::Vector(set) if instant => {
                let mut v: Vec<(Labels, f64)> = set.into_iter().filter_map(|(l, vals)| vals[0].map(|x| (l, x))).collect();
                if sorted {
                    v.sort_by(|a, b| {
                        let o = a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal);
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                }
                MetricResult::Vector(start, v)
            }
            crate::metric::Value::Vector(set) => MetricResult::Matrix(
                set.into_iter()
                    .map(|(l, vals)| (l, vals.into_iter().enumerate().filter_map(|(k, v)| v.map(|x| (steps.at(k), x))).collect::<Vec<_>>()))
                    .filter(|(_, pts)| !pts.is_empty())
                    .collect(),
            ),
        })
    }

    fn eval<'a>(
        &'a self,
        tenants: &'a [TenantId],
        expr: &'a crate::ast::MetricExpr,
        steps: &'a crate::metric::Steps,
        labels_needed: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<crate::metric::Value, QueryError>> + Send + 'a>> {
        use crate::ast::MetricExpr as M;
        use crate::metric::{RangeSpec, Value};
        Box::pin(async move {
            Ok(match expr {
                M::Literal(v) => Value::Scalar(*v),
                M::Vector(v) => {
                    let mut s = crate::metric::SeriesSet::new();
                    s.insert(Labels::default(), vec![Some(*v); steps.n]);
                    Value::Vector(s)
                }
                M::RangeAgg { op, param, range, grouping } => self.range_agg(tenants, steps, RangeSpec { range, op: *op, param: *param, grouping: grouping.as_ref(), labels_needed, merge: None }).await?,
                M::VectorAgg { op, param, inner, grouping } => {
                    // Loki's parsers skip parsing when nothing above needs labels.
                    let needed = !(*op == crate::ast::VectorOp::Sum
                        && grouping.is_none()
                        && matches!(inner.as_ref(), M::RangeAgg { range, .. } if range.unwrap.is_none()
                            && !range.log.pipeline.iter().any(|s| matches!(s, Stage::LabelFilter(_)))));
                    let set = match inner.as_ref() {
                        // Merge samples into the groups while reading when that is exact.
                        M::RangeAgg { op: rop, param: rparam, range, grouping: rgrouping } if crate::metric::merges_samples(*op, *rop) => {
                            let spec = RangeSpec { range, op: *rop, param: *rparam, grouping: rgrouping.as_ref(), labels_needed: needed, merge: Some(grouping.as_ref()) };
                            self.range_agg(tenants, steps, spec).await?
                        }
                        _ => self.eval(tenants, inner, steps, needed).await?,
                    };
                    match set {
                        Value::Vector(set) => Value::Vector(crate::metric::vector_agg(*op, *param, grouping.as_ref(), set, steps.n)),
                        Value::Scalar(_) => return Err(QueryError::BadRequest(format!("expected a vector for {}", op.as_str()))),
                    }
                }
                M::Binary { op, lhs, rhs, return_bool, matching } => {
                    let l = self.eval(tenants, lhs, steps, true).await?;
                    let r = self.eval(tenants, rhs, steps, true).await?;
                    match (l, r) {
                        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(crate::parser::fold(*op, a, b)),
                        (Value::Vector(v), Value::Scalar(s)) => Value::Vector(crate::metric::vector_scalar(*op, v, s, false, *return_bool)),
                        (Value::Scalar(s), Value::Vector(v)) => Value::Vector(crate::metric::vector_scalar(*op, v, s, true, *return_bool)),
                        (Value::Vector(a), Value::Vector(b)) => {
                            Value::Vector(crate::metric::vector_vector(*op, a, b, *return_bool, matching.as_ref(), steps.n)?)
                        }
                    }
                }
                M::LabelReplace { inner, dst, replacement, src, regex } => match self.eval(tenants, inner, steps, true).await? {
                    Value::Vector(set) => Value::Vector(crate::metric::label_replace(set, dst, replacement, src, regex)?),
                    s => s,
                },
            })
        })
    }
}

/// Entries and bytes of one stream in a time range (for `/index/stats` and `/index/volume`).
#[derive(Debug, Clone, Default)]
pub struct StreamVolume {
    pub labels: Labels,
    pub entries: u64,
    pub bytes: u64,
}

impl Engine {
    /// Exact per-stream entry and byte counts of the matching streams in `[start, end)`,
    /// and how many storage parts (chunks and heads) hold them.
    pub async fn volumes(&self, tenants: &[TenantId], matchers: &[silt_storage::Matcher], start: i64, end: i64) -> Result<(Vec<StreamVolume>, usize), QueryError> {
        let (tenants, matchers) = crate::provider::split_tenant_matchers(tenants, matchers);
        let multi = tenants.len() > 1;
        let req = silt_storage::ScanRequest { matchers, start, end, projection: Some(vec![silt_storage::IDX_STREAM, IDX_LINE]), needles: Vec::new(), fields: None, line_predicate: None };
        // Per tenant: its parts, and its streams by fingerprint (labels as the query sees them).
        let mut work = Vec::new();
        let mut parts = 0;
        for tenant in &tenants {
            let scan = self.store.scan(tenant, &req)?;
            parts += scan.parts.len();
            let streams: std::collections::HashMap<u64, Labels> =
                scan.streams.into_iter().map(|(fp, l)| if multi { (fp, crate::provider::tenant_stream(tenant, fp, &l).1) } else { (fp, l) }).collect();
            work.push((scan.parts, streams));
        }
        let out = tokio::task::spawn_blocking(move || -> Result<Vec<StreamVolume>, QueryError> {
            let mut out = Vec::new();
            for (scan_parts, streams) in work {
                let mut acc: std::collections::HashMap<u64, (u64, u64)> = std::collections::HashMap::new();
                for part in scan_parts {
                    for b in part.execute() {
                        let b = b?;
                        let fp = b.column(0).as_primitive::<UInt64Type>();
                        let line = b.column(1).as_string::<i32>();
                        for i in 0..b.num_rows() {
                            let e = acc.entry(fp.value(i)).or_default();
                            e.0 += 1;
                            e.1 += line.value(i).len() as u64;
                        }
                    }
                }
                out.extend(acc.into_iter().filter_map(|(fp, (entries, bytes))| streams.get(&fp).map(|l| StreamVolume { labels: l.clone(), entries, bytes })));
            }
            Ok(out)
        })
        .await
        .map_err(|e| QueryError::Internal(e.to_string()))??;
        let mut out = out;
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok((out, parts))
    }
}

/// The leading line filters of a pipeline (run on the raw line, in the scan) and the rest.
pub(crate) fn split_line_filters(pipeline: &[Stage]) -> (&[Stage], &[Stage]) {
    pipeline.split_at(pipeline.iter().position(|s| !matches!(s, Stage::LineFilter(_))).unwrap_or(pipeline.len()))
}

/// Whether the needle index can prune for the leading line filters: some `|=` (or `|~`)
/// clause has only literals long enough to look up.
fn needle_pruned(pipeline: &[Stage]) -> bool {
    needles(split_line_filters(pipeline).0).iter().any(|clause| clause.iter().all(|lit| !silt_storage::needle::literal_keys(lit.as_bytes()).is_empty()))
}

/// The literals every line must contain for the leading line filters to keep it: one
/// clause per `|=` filter (and per `|~` filter whose patterns all require a literal), its
/// `or` alternatives inside. The storage's needle index uses them to skip blocks; the
/// filters still run on every line read.
fn needles(pre: &[Stage]) -> Vec<Vec<String>> {
    use crate::ast::{LineFilterOp, LineFilterValue};
    pre.iter()
        .filter_map(|s| match s {
            Stage::LineFilter(f) if f.op == LineFilterOp::Contains => {
                f.values.iter().map(|v| if let LineFilterValue::Str(s) = v { Some(s.clone()) } else { None }).collect::<Option<Vec<String>>>()
            }
            Stage::LineFilter(f) if f.op == LineFilterOp::Regex => f
                .values
                .iter()
                .map(|v| if let LineFilterValue::Str(s) = v { crate::line_filter::required_literal(s) } else { None })
                .collect::<Option<Vec<String>>>(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{needles, split_line_filters};

    #[test]
    fn regex_filters_give_the_needle_index_their_required_literals() {
        let n = |q: &str| {
            let crate::ast::Expr::Log(e) = crate::parse(q).unwrap() else { panic!("{q}") };
            needles(split_line_filters(&e.pipeline).0)
        };
        assert_eq!(n(r#"{a="b"} |~ "request_id=[0-9a-f]+ done""#), vec![vec!["request_id=".to_string()]]);
        assert_eq!(n(r#"{a="b"} |~ "abc" or "x(yzw)+""#), vec![vec!["abc".to_string(), "yzw".to_string()]]);
        assert!(n(r#"{a="b"} |~ "abc|def""#).is_empty(), "an alternation requires no one literal");
        assert!(n(r#"{a="b"} |~ "abc" or "(?i)def""#).is_empty(), "every alternative must have one");
        assert!(n(r#"{a="b"} !~ "abcdef""#).is_empty());
        assert_eq!(n(r#"{a="b"} |= "x" |~ "yyy" | json"#), vec![vec!["x".to_string()], vec!["yyy".to_string()]]);
    }
}
