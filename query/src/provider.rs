//! The storage engine as a DataFusion table. One table per query: it is built with the
//! query's tenant and stream matchers, and takes time bounds (`ts >= a`, `ts < b`, ...)
//! as exact pushed-down filters, so the scan reads only the streams and time ranges
//! asked for. Each storage scan part becomes one partition, read on a blocking thread
//! and handed to DataFusion through a small bounded channel (backpressure, bounded memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
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
use silt_storage::{log_schema, Labels, Matcher, ScanPart, ScanRequest, Store, TenantId, COL_TS};

/// Streams seen by a scan, by fingerprint: the labels rows refer to.
pub type StreamLabels = Arc<Mutex<HashMap<u64, Labels>>>;

pub struct LogTable {
    store: Store,
    tenant: TenantId,
    matchers: Vec<Matcher>,
    streams: StreamLabels,
}

impl std::fmt::Debug for LogTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTable").field("tenant", &self.tenant).field("matchers", &self.matchers).finish()
    }
}

impl LogTable {
    pub fn new(store: Store, tenant: TenantId, matchers: Vec<Matcher>) -> Self {
        LogTable { store, tenant, matchers, streams: Arc::default() }
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
        log_schema()
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
        let req = ScanRequest { matchers: self.matchers.clone(), start, end, projection: projection.cloned() };
        let scan = self.store.scan(&self.tenant, &req).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.streams.lock().unwrap().extend(scan.streams);
        let schema = match projection {
            Some(p) => Arc::new(log_schema().project(p)?),
            None => log_schema(),
        };
        if scan.parts.is_empty() {
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // At most `target_partitions` streams, each reading its share of the parts in turn:
        // a query over hundreds of chunks keeps two readers busy, not hundreds.
        let n = state.config().target_partitions().clamp(1, scan.parts.len());
        let mut groups: Vec<Vec<ScanPart>> = (0..n).map(|_| Vec::new()).collect();
        for (i, p) in scan.parts.into_iter().enumerate() {
            groups[i % n].push(p);
        }
        let parts: Vec<Arc<dyn PartitionStream>> = groups
            .into_iter()
            .map(|g| Arc::new(PartStream { schema: schema.clone(), parts: Mutex::new(Some(g)) }) as Arc<dyn PartitionStream>)
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(schema, parts, None, [], false, limit)?))
    }
}

/// Storage scan parts read one after another as one DataFusion partition. It can be
/// executed once.
struct PartStream {
    schema: SchemaRef,
    parts: Mutex<Option<Vec<ScanPart>>>,
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
        match parts {
            Some(parts) => {
                tokio::task::spawn_blocking(move || {
                    for b in parts.into_iter().flat_map(ScanPart::execute) {
                        let b = b.map_err(|e| DataFusionError::External(Box::new(e)));
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
