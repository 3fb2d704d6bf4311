//! The storage engine as a DataFusion table. One table per query: it is built with the
//! query's tenant and stream matchers, and takes time bounds (`ts >= a`, `ts < b`, ...)
//! as exact pushed-down filters, so the scan reads only the streams and time ranges
//! asked for. Each storage scan part becomes one partition, read on a blocking thread
//! and handed to DataFusion through a small bounded channel (backpressure, bounded memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use arrow::record_batch::RecordBatch;
use silt_storage::fields::FieldRequest;
use silt_storage::{log_schema, with_field_columns, Labels, LinePredicate, Matcher, ScanPart, ScanRequest, Store, TenantId, COL_TS};

use crate::line_filter::LineFilterChain;
use crate::pieces::PieceQueue;

/// A storage part and the salt its stream fingerprints are xor-ed with (see
/// [`tenant_stream`]; 0 in single-tenant queries).
pub type SaltedPart = (ScanPart, u64);

/// Streams seen by a scan, by fingerprint: the labels rows refer to.
pub type StreamLabels = Arc<Mutex<HashMap<u64, Labels>>>;

pub struct LogTable {
    store: Store,
    tenants: Vec<TenantId>,
    matchers: Vec<Matcher>,
    streams: StreamLabels,
    needles: Vec<Vec<String>>,
    /// The leading line filters, applied by the storage scan (see [`LogTable::with_line_filter`]).
    line_filter: Option<Arc<LineFilterChain>>,
    /// JSON field columns to read (see [`LogTable::with_fields`]).
    fields: Option<FieldRequest>,
    /// Pieces resolved before planning, taken from this queue by every partition, and
    /// whether the scan reports the rows it hands out (see [`LogTable::with_queue`]).
    queue: Option<(Arc<PieceQueue>, bool)>,
}

impl std::fmt::Debug for LogTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTable").field("tenants", &self.tenants).field("matchers", &self.matchers).finish()
    }
}

/// The label Loki adds to every stream of a query over several tenants.
pub const TENANT_LABEL: &str = "__tenant_id__";
/// What a stream's own `__tenant_id__` label is renamed to in such a query.
pub const ORIGINAL_TENANT_LABEL: &str = "original___tenant_id__";

/// Loki's multi-tenant query rules: matchers on `__tenant_id__` pick the tenants (and are
/// removed from the selector); a matcher on `original___tenant_id__` is one on the streams'
/// own `__tenant_id__` label. With one tenant nothing changes.
pub fn split_tenant_matchers(tenants: &[TenantId], matchers: &[Matcher]) -> (Vec<TenantId>, Vec<Matcher>) {
    if tenants.len() < 2 {
        return (tenants.to_vec(), matchers.to_vec());
    }
    let (on_tenant, rest): (Vec<&Matcher>, Vec<&Matcher>) = matchers.iter().partition(|m| m.name == TENANT_LABEL);
    let picked = tenants.iter().filter(|t| on_tenant.iter().all(|m| m.matches(t.as_str()))).cloned().collect();
    let rest = rest
        .into_iter()
        .map(|m| {
            let mut m = m.clone();
            if m.name == ORIGINAL_TENANT_LABEL {
                m.name = TENANT_LABEL.to_string();
            }
            m
        })
        .collect();
    (picked, rest)
}

/// A stream of `tenant` as a multi-tenant query sees it: its fingerprint made distinct
/// from other tenants' (the same labels may exist in several), and `__tenant_id__` set.
pub fn tenant_stream(tenant: &TenantId, fp: u64, labels: &Labels) -> (u64, Labels) {
    let pairs = labels.iter().map(|(n, v)| (if n == TENANT_LABEL { ORIGINAL_TENANT_LABEL } else { n }, v)).chain(std::iter::once((TENANT_LABEL, tenant.as_str())));
    let labels = Labels::from_pairs(pairs).unwrap_or_else(|_| labels.clone());
    (fp ^ tenant_salt(tenant), labels)
}

fn tenant_salt(tenant: &TenantId) -> u64 {
    xxhash_rust::xxh3::xxh3_64(tenant.as_str().as_bytes()) | 1
}

impl LogTable {
    /// A table over the streams of `tenants` that `matchers` select. Several tenants are
    /// read as Loki's multi-tenant queries read them (see [`split_tenant_matchers`]).
    pub fn new(store: Store, tenants: &[TenantId], matchers: Vec<Matcher>) -> Self {
        LogTable { store, tenants: tenants.to_vec(), matchers, streams: Arc::default(), needles: Vec::new(), line_filter: None, fields: None, queue: None }
    }

    /// Literals every line read must contain (see [`ScanRequest::needles`]).
    pub fn with_needles(mut self, needles: Vec<Vec<String>>) -> Self {
        self.needles = needles;
        self
    }

    /// Rows whose line `chain` rejects are left out by the storage scan itself, which
    /// then copies only the lines it keeps (see [`silt_storage::LinePredicate`]).
    pub fn with_line_filter(mut self, chain: Arc<LineFilterChain>) -> Self {
        self.line_filter = Some(chain);
        self
    }

    /// Adds the columns `__fields_exact` and `__field_<i>`: what `| json` extracts for
    /// `names`, where compaction stored it (see [`silt_storage::fields`]). The `line` of a
    /// row marked exact may be left empty.
    pub fn with_fields(mut self, names: Vec<String>) -> Self {
        self.fields = Some(FieldRequest { names: Arc::new(names), may_skip_lines: true });
        self
    }

    /// The table, its partitions reading the pieces of `queue` instead of resolving
    /// their own parts: pieces from [`Self::resolve`] of this table (without field
    /// columns), each partition taking the next ones until the queue has none it should
    /// read. The plan's time filters must not be narrower than the range they were
    /// resolved for. With `reports`, the scan tells the queue the time of every row it
    /// hands out: for plans where no later stage drops rows.
    pub fn with_queue(mut self, queue: Arc<PieceQueue>, reports: bool) -> Self {
        self.queue = Some((queue, reports));
        self
    }

    /// Filled in by `scan`: the labels of every stream the plan reads.
    pub fn streams(&self) -> StreamLabels {
        self.streams.clone()
    }
}

/// `ts <op> <int64 literal>` as a half-open bound `[start, end)`.
fn time_bound(e: &Expr) -> Option<(i64, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else { return None };
    let (col, v, op) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(ScalarValue::Int64(Some(v)), _)) => (c, *v, *op),
        (Expr::Literal(ScalarValue::Int64(Some(v)), _), Expr::Column(c)) => (c, *v, op.swap()?),
        _ => return None,
    };
    if col.name != COL_TS {
        return None;
    }
    match op {
        Operator::GtEq => Some((v, i64::MAX)),
        Operator::Gt => Some((v.checked_add(1)?, i64::MAX)),
        Operator::Lt => Some((i64::MIN, v)),
        Operator::LtEq => Some((i64::MIN, v.checked_add(1)?)),
        Operator::Eq => Some((v, v.checked_add(1)?)),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for LogTable {
    fn schema(&self) -> SchemaRef {
        match &self.fields {
            Some(f) => with_field_columns(&log_schema(), f.names.len()),
            None => log_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if time_bound(f).is_some() {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (mut start, mut end) = (i64::MIN, i64::MAX);
        for f in filters {
            if let Some((s, e)) = time_bound(f) {
                start = start.max(s);
                end = end.min(e);
            }
        }
        let schema = match projection {
            Some(p) => Arc::new(self.schema().project(p)?),
            None => self.schema(),
        };
        // Pieces resolved before planning are read as they are: their rows lie in the
        // range the plan filters on (see `with_queue`).
        if let Some((queue, reports)) = &self.queue {
            if self.fields.is_some() {
                return Err(DataFusionError::Internal("queued pieces are read without field columns".into()));
            }
            // Resolved with every column: the projection picks from all of them.
            let parts: Vec<Arc<dyn PartitionStream>> = (0..state.config().target_partitions().max(1))
                .map(|_| Arc::new(PartStream { schema: schema.clone(), parts: Mutex::new(Some(PartSource::Queue(queue.clone(), *reports))), reorder: projection.cloned() }) as Arc<dyn PartitionStream>)
                .collect();
            return Ok(Arc::new(StreamingTableExec::try_new(schema, parts, None, [], false, limit)?));
        }
        let (all_parts, reorder) = self.resolve_projected(projection, start, end)?;
        if all_parts.is_empty() {
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // At most `target_partitions` streams, each reading its share of the rows: a query
        // over hundreds of chunks keeps two readers busy, not hundreds, and one over a
        // single big chunk (a compacted day) keeps two busy too.
        let groups = balance(all_parts, state.config().target_partitions().max(1));
        let parts: Vec<Arc<dyn PartitionStream>> = groups
            .into_iter()
            .map(|g| Arc::new(PartStream { schema: schema.clone(), parts: Mutex::new(Some(PartSource::List(g))), reorder: reorder.clone() }) as Arc<dyn PartitionStream>)
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(schema, parts, None, [], false, limit)?))
    }
}

impl LogTable {
    /// The storage parts a scan of `[start, end)` reads, each with its tenant's salt,
    /// resolved now; the labels of their streams are added to [`Self::streams`]. For
    /// reading in pieces (see [`ScanPart::pieces`]) from a queue (see
    /// [`Self::with_queue`]).
    pub fn resolve(&self, start: i64, end: i64) -> DfResult<Vec<SaltedPart>> {
        Ok(self.resolve_projected(None, start, end)?.0)
    }

    /// The storage's projection for a table projection, and how to reorder the storage
    /// batches' columns (the storage hands out its columns, then every field column).
    fn reorder(&self, projection: Option<&Vec<usize>>) -> (Option<Vec<usize>>, Option<Vec<usize>>) {
        let base = log_schema().fields().len();
        match (&self.fields, projection) {
            (Some(f), Some(p)) => {
                let stored: Vec<usize> = p.iter().copied().filter(|&c| c < base).collect();
                let at = |c: usize| if c < base { stored.iter().position(|&s| s == c).expect("kept above") } else { stored.len() + c - base };
                let reorder: Vec<usize> = p.iter().map(|&c| at(c)).collect();
                let identity = reorder.len() == stored.len() + 1 + f.names.len() && reorder.iter().enumerate().all(|(i, &r)| i == r);
                (Some(stored), (!identity).then_some(reorder))
            }
            (Some(_), None) => (None, None),
            (None, p) => (p.cloned(), None),
        }
    }

    fn resolve_projected(&self, projection: Option<&Vec<usize>>, start: i64, end: i64) -> DfResult<(Vec<SaltedPart>, Option<Vec<usize>>)> {
        let multi = self.tenants.len() > 1;
        let (tenants, matchers) = split_tenant_matchers(&self.tenants, &self.matchers);
        let (storage_projection, reorder) = self.reorder(projection);
        let req = ScanRequest { matchers, start, end, projection: storage_projection, needles: self.needles.clone(), fields: self.fields.clone(), line_predicate: self.line_filter.clone().map(|c| c as Arc<dyn LinePredicate>) };
        let mut all_parts: Vec<SaltedPart> = Vec::new();
        for tenant in &tenants {
            let scan = self.store.scan(tenant, &req).map_err(|e| DataFusionError::External(Box::new(e)))?;
            let mut streams = self.streams.lock().unwrap();
            if multi {
                streams.extend(scan.streams.iter().map(|(fp, l)| tenant_stream(tenant, *fp, l)));
                let salt = tenant_salt(tenant);
                all_parts.extend(scan.parts.into_iter().map(|p| (p, salt)));
            } else {
                streams.extend(scan.streams);
                all_parts.extend(scan.parts.into_iter().map(|p| (p, 0)));
            }
        }
        Ok((all_parts, reorder))
    }
}

/// Deals the parts out to at most `n` partitions of about equal rows: parts bigger than
/// a fair share are split first, then each part, biggest first, goes to the partition
/// with the fewest rows so far.
fn balance(parts: Vec<SaltedPart>, n: usize) -> Vec<Vec<SaltedPart>> {
    let total: u64 = parts.iter().map(|(p, _)| p.estimated_rows()).sum();
    let share = total.div_ceil(n as u64).max(1);
    let mut sized: Vec<(u64, ScanPart, u64)> = Vec::with_capacity(parts.len());
    for (p, salt) in parts {
        let rows = p.estimated_rows();
        let pieces = if rows > share + share / 4 { p.split(rows.div_ceil(share) as usize) } else { vec![p] };
        sized.extend(pieces.into_iter().map(|p| (p.estimated_rows(), p, salt)));
    }
    sized.sort_by_key(|(rows, _, _)| std::cmp::Reverse(*rows));
    let mut groups: Vec<(u64, Vec<SaltedPart>)> = (0..n.min(sized.len())).map(|_| (0, Vec::new())).collect();
    for (rows, p, salt) in sized {
        let g = groups.iter_mut().min_by_key(|g| (g.0, g.1.len())).expect("at least one partition");
        g.0 += rows;
        g.1.push((p, salt));
    }
    groups.into_iter().map(|g| g.1).collect()
}

/// The batch with its stream fingerprints xor-ed with `salt` (see [`tenant_stream`]).
fn salted(b: arrow::record_batch::RecordBatch, salt: u64) -> DfResult<arrow::record_batch::RecordBatch> {
    if salt == 0 {
        return Ok(b);
    }
    let Ok(i) = b.schema().index_of(silt_storage::COL_STREAM) else { return Ok(b) };
    let fp = arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt64Type>(b.column(i));
    let salted: arrow::array::UInt64Array = fp.unary(|v| v ^ salt);
    let mut cols = b.columns().to_vec();
    cols[i] = Arc::new(salted);
    Ok(arrow::record_batch::RecordBatch::try_new(b.schema(), cols)?)
}

/// Storage scan parts read one after another as one DataFusion partition. It can be
/// executed once. Each part comes with the salt its stream fingerprints are xor-ed with
/// (0 in single-tenant queries).
struct PartStream {
    schema: SchemaRef,
    parts: Mutex<Option<PartSource>>,
    /// The storage batches' columns to hand out, when not all in their order.
    reorder: Option<Vec<usize>>,
}

/// What a [`PartStream`] reads: its share of the parts, or pieces from a queue it shares
/// with the other partitions.
enum PartSource {
    List(Vec<SaltedPart>),
    /// With whether to report the times of the rows read (see [`LogTable::with_queue`]).
    Queue(Arc<PieceQueue>, bool),
}

impl std::fmt::Debug for PartStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartStream")
    }
}

impl PartitionStream for PartStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let parts = self.parts.lock().unwrap().take();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let (schema, reorder) = (self.schema.clone(), self.reorder.clone());
        match parts {
            Some(parts) => {
                let (parts, report): (Box<dyn Iterator<Item = SaltedPart> + Send>, _) = match parts {
                    PartSource::List(parts) => (Box::new(parts.into_iter()), None),
                    PartSource::Queue(q, reports) => {
                        let ts = schema.index_of(COL_TS).ok();
                        let tx = tx.clone();
                        // No more pieces once the query stopped reading.
                        (Box::new(std::iter::from_fn({
                            let q = q.clone();
                            move || if tx.is_closed() { None } else { q.pop() }
                        })
                        .flatten()), Some((q, reports.then_some(ts))))
                    }
                };
                tokio::task::spawn_blocking(move || {
                    for (b, salt) in parts.flat_map(|(p, salt)| p.execute().map(move |b| (b, salt))) {
                        let b = b.map_err(|e| DataFusionError::External(Box::new(e))).and_then(|b| salted(b, salt));
                        let b = match &reorder {
                            Some(r) => b.and_then(|b| Ok(RecordBatch::try_new(schema.clone(), r.iter().map(|&c| b.column(c).clone()).collect())?)),
                            None => b,
                        };
                        if let (Some((q, reports)), Ok(b)) = (&report, &b) {
                            q.sent(b.num_rows());
                            match reports {
                                // The rows are the entries: all looked at, and kept.
                                Some(Some(ts)) => q.observe(b.column(*ts).as_primitive::<Int64Type>().values(), b.num_rows()),
                                // Without their times: looked at, none counted.
                                Some(None) => q.observe(&[], b.num_rows()),
                                None => {}
                            }
                        }
                        if tx.blocking_send(b).is_err() {
                            return; // the query stopped reading (limit reached or cancelled)
                        }
                    }
                });
            }
            None => {
                let _ = tx.try_send(Err(DataFusionError::Internal("scan partition executed twice".into())));
            }
        }
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
