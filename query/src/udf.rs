//! LogQL stages that run inside DataFusion plans as scalar UDFs.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};


/// `pipeline(stream, ts, line, metadata) -> {line, labels}`: the query's log pipeline on each
/// row; null where the pipeline drops the row. `labels` is the entry's final label set,
/// encoded like structured metadata, each name prefixed with one byte saying where the
/// label came from (`s` stream, `m` structured metadata, `p` parsed). Volatile, so the optimizer never evaluates it twice
/// or moves it: the plan filters on its result, then keeps the top `limit` rows by time.
pub struct PipelineUdf {
    pipeline: Arc<crate::pipeline::Pipeline>,
    /// The pipeline keeping only the labels its filters read (see
    /// [`crate::pipeline::survival_labels`]): it decides cheaply which rows survive, and
    /// only those go through the full pipeline.
    prefilter: Option<Arc<crate::pipeline::Pipeline>>,
    /// Rows the prefilter has looked at and kept. When most survive, it only adds work,
    /// and is skipped.
    prefiltered: [AtomicU64; 2],
    streams: crate::provider::StreamLabels,
    /// Told the time of every row the pipeline keeps (see [`crate::pieces`]).
    queue: Option<Arc<crate::pieces::PieceQueue>>,
    key: String,
    signature: Signature,
}

impl std::fmt::Debug for PipelineUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PipelineUdf({})", self.key)
    }
}

impl PipelineUdf {
    /// The UDF running `stages` on rows of the `streams`.
    pub fn compile(stages: &[crate::ast::Stage], streams: crate::provider::StreamLabels) -> Result<Self, crate::QueryError> {
        use crate::pipeline::{survival_labels, Pipeline};
        let prefilter = survival_labels(stages).map(|needed| Pipeline::compile(stages).map(|p| Arc::new(p.projected(needed)))).transpose()?;
        Ok(PipelineUdf {
            pipeline: Arc::new(Pipeline::compile(stages)?),
            prefilter,
            prefiltered: Default::default(),
            streams,
            queue: None,
            key: stages.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "),
            signature: Signature::exact(vec![DataType::UInt64, DataType::Int64, DataType::Utf8, DataType::Binary], Volatility::Volatile),
        })
    }

    /// The UDF, telling `queue` the time of every row it keeps.
    pub fn with_queue(mut self, queue: Arc<crate::pieces::PieceQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The prefilter, unless it has been keeping most rows.
    fn prefilter(&self) -> Option<&crate::pipeline::Pipeline> {
        let (seen, kept) = (self.prefiltered[0].load(Ordering::Relaxed), self.prefiltered[1].load(Ordering::Relaxed));
        self.prefilter.as_deref().filter(|_| seen < 4096 || kept * 2 < seen)
    }

    pub fn output_fields() -> arrow::datatypes::Fields {
        arrow::datatypes::Fields::from(vec![
            arrow::datatypes::Field::new("line", DataType::Utf8, false),
            arrow::datatypes::Field::new("labels", DataType::Binary, false),
        ])
    }
}

impl PartialEq for PipelineUdf {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && Arc::ptr_eq(&self.pipeline, &o.pipeline)
    }
}
impl Eq for PipelineUdf {}
impl Hash for PipelineUdf {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key.hash(h)
    }
}

impl ScalarUDFImpl for PipelineUdf {
    fn name(&self) -> &str {
        "pipeline"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Struct(Self::output_fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use arrow::array::{BinaryBuilder, StringBuilder, StructArray};
        use arrow::buffer::NullBuffer;
        let n = args.number_rows;
        let arrays: Vec<_> = args.args.iter().map(|a| a.to_array(n)).collect::<DfResult<_>>()?;
        let [stream, ts, line, meta] = arrays.as_slice() else { return exec_err!("pipeline takes four arguments") };
        let stream = stream.as_primitive::<arrow::datatypes::UInt64Type>();
        let ts = ts.as_primitive::<arrow::datatypes::Int64Type>();
        let line = line.as_string::<i32>();
        let meta = meta.as_binary::<i32>();
        // The labels of the current run of rows: the map is locked once per stream, not
        // for the whole batch (the other partition's pipeline needs it too).
        let mut base: Option<(u64, silt_storage::Labels)> = None;
        let mut out_line = StringBuilder::with_capacity(n, n * 64);
        let mut out_labels = BinaryBuilder::with_capacity(n, n * 64);
        let mut valid = Vec::with_capacity(n);
        let mut buf = Vec::new();
        let prefilter = self.prefilter();
        let (mut seen, mut kept) = (0, 0);
        let mut kept_ts = Vec::new();
        for i in 0..n {
            let fp = stream.value(i);
            if base.as_ref().is_none_or(|(f, _)| *f != fp) {
                let Some(l) = self.streams.lock().unwrap().get(&fp).cloned() else { return exec_err!("row of unknown stream") };
                base = Some((fp, l));
            }
            let Some((_, base)) = &base else { return exec_err!("row of unknown stream") };
            let md = if meta.is_valid(i) { Some(meta.value(i)) } else { None };
            let labels = || crate::pipeline::EntryLabels::new(base.iter(), md.into_iter().flat_map(silt_storage::codec::decode_metadata));
            let survives = match prefilter {
                Some(p) => {
                    seen += 1;
                    let keep = p.process(line.value(i), labels(), ts.value(i)).is_some();
                    kept += keep as u64;
                    keep
                }
                None => true,
            };
            match survives.then(|| self.pipeline.process(line.value(i), labels(), ts.value(i))).flatten() {
                Some((l, ls)) => {
                    out_line.append_value(&l);
                    buf.clear();
                    ls.encode_categorized(&mut buf);
                    out_labels.append_value(&buf);
                    valid.push(true);
                    if self.queue.is_some() {
                        kept_ts.push(ts.value(i));
                    }
                }
                None => {
                    out_line.append_value("");
                    out_labels.append_value(b"");
                    valid.push(false);
                }
            }
        }
        if let Some(q) = &self.queue {
            q.observe(&kept_ts, n);
        }
        self.prefiltered[0].fetch_add(seen, Ordering::Relaxed);
        self.prefiltered[1].fetch_add(kept, Ordering::Relaxed);
        let s = StructArray::new(
            Self::output_fields(),
            vec![Arc::new(out_line.finish()), Arc::new(out_labels.finish())],
            Some(NullBuffer::from(valid)),
        );
        Ok(ColumnarValue::Array(Arc::new(s)))
    }
}
