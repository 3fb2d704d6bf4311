//! Delete requests' LogQL: a log query (selector and any pipeline, as Loki 3 accepts)
//! compiled into what the storage engine needs to hide and remove entries. An entry is
//! deleted when its stream matches the selector, it lies in the request's time range, and
//! the pipeline keeps it (so `{app="x"} |= "secret"` deletes the lines with "secret").

use std::sync::Arc;

use silt_storage::codec::decode_metadata;
use silt_storage::{CompiledDelete, DeleteCompiler, EntryPredicate, Labels};

use crate::ast::Expr;
use crate::pipeline::{EntryLabels, Pipeline};

struct PipelinePredicate(Pipeline);

impl EntryPredicate for PipelinePredicate {
    fn matches(&self, labels: &Labels, ts: i64, line: &str, metadata: Option<&[u8]>) -> bool {
        let entry = EntryLabels::new(labels.iter(), metadata.map(decode_metadata).into_iter().flatten());
        self.0.process(line, entry, ts).is_some()
    }
}

/// Compiles a delete request's query; the error is Loki's answer.
pub fn compile_delete_query(query: &str) -> Result<CompiledDelete, String> {
    let invalid = |reason: String| format!("invalid query expression: {reason}");
    let log = match crate::parse(query).map_err(|e| invalid(e.to_string()))? {
        Expr::Log(l) => l,
        Expr::Metric(_) => return Err(invalid("a delete request takes a log query, not a metric query".into())),
    };
    let entries = if log.pipeline.is_empty() {
        None
    } else {
        let p = Pipeline::compile(&log.pipeline).map_err(|e| invalid(e.to_string()))?;
        Some(Arc::new(PipelinePredicate(p)) as Arc<dyn EntryPredicate>)
    };
    Ok(CompiledDelete { matchers: log.selector, entries })
}

/// The compiler to put in [`silt_storage::StoreConfig::delete_compiler`].
pub fn delete_compiler() -> DeleteCompiler {
    DeleteCompiler(Arc::new(compile_delete_query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_decide_what_is_deleted() {
        let labels = Labels::parse(r#"{app="x"}"#).unwrap();
        let d = compile_delete_query(r#"{app="x"} |= "secret" | logfmt | level="error""#).unwrap();
        let p = d.entries.unwrap();
        assert!(p.matches(&labels, 0, "level=error secret=1", None));
        assert!(!p.matches(&labels, 0, "level=info secret=1", None));
        assert!(!p.matches(&labels, 0, "level=error", None));
        let all = compile_delete_query(r#"{app="x"}"#).unwrap();
        assert!(all.entries.is_none());
        assert_eq!(all.matchers.len(), 1);
        for bad in [r#"count_over_time({app="x"}[1m])"#, r#"{app="x""#, r#"{app=~".*"}"#, r#"{app="x"} |~ "(""#] {
            let e = compile_delete_query(bad).err().unwrap();
            assert!(e.starts_with("invalid query expression: "), "{bad}: {e}");
        }
    }
}
