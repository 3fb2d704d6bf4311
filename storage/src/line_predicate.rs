//! A test on lines that a scan applies as it reads (the query's leading line filters),
//! so that only the rows it keeps are copied out.
//!
//! Chunk lines are then read as `Utf8View`: views into the decompressed Parquet pages
//! instead of a copy of every line into a fresh buffer, which costs about as much as
//! decompressing them. The predicate looks at the views; only the lines of the rows it
//! keeps are copied into the plain `Utf8` column every scan hands out. A scan that keeps
//! one line in a hundred copies one in a hundred.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringViewArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;

/// Which lines a scan keeps. Implemented by the query crate's compiled line filters.
pub trait LinePredicate: Send + Sync + std::fmt::Debug {
    /// Whether each line of `lines` is kept: true or false for every row (a null line is
    /// not kept).
    fn keep(&self, lines: &StringViewArray) -> BooleanArray;
}

/// `batch` cut to the rows whose line (column `line`, `Utf8` or `Utf8View`) `predicate`
/// keeps, with that column as `Utf8` when `plain` (else as it came: for a caller that
/// drops it).
pub(crate) fn apply(predicate: &dyn LinePredicate, batch: RecordBatch, line: usize, plain: bool) -> Result<RecordBatch> {
    let col = batch.column(line);
    let views = match col.data_type() {
        DataType::Utf8View => col.as_string_view().clone(),
        // Views over the same bytes: no line is copied.
        _ => cast(col, &DataType::Utf8View)?.as_string_view().clone(),
    };
    let keep = predicate.keep(&views);
    debug_assert_eq!(keep.len(), batch.num_rows());
    let kept = if keep.true_count() == batch.num_rows() { batch } else { filter_record_batch(&batch, &keep)? };
    if plain {
        as_plain_lines(kept, line)
    } else {
        Ok(kept)
    }
}

/// `batch` with column `line` as `Utf8`: the lines copied out of their pages.
pub(crate) fn as_plain_lines(batch: RecordBatch, line: usize) -> Result<RecordBatch> {
    if batch.column(line).data_type() == &DataType::Utf8 {
        return Ok(batch);
    }
    let mut cols = batch.columns().to_vec();
    cols[line] = cast(&cols[line], &DataType::Utf8)?;
    let schema = with_line_type(&batch.schema(), line, DataType::Utf8);
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// `schema` with the field at `line` of type `dt`.
pub(crate) fn with_line_type(schema: &Schema, line: usize, dt: DataType) -> Arc<Schema> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[line] = fields[line].clone().with_data_type(dt);
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, UInt64Array};

    /// Keeps lines containing an `x`.
    #[derive(Debug)]
    struct HasX;
    impl LinePredicate for HasX {
        fn keep(&self, lines: &StringViewArray) -> BooleanArray {
            lines.iter().map(|l| Some(l.is_some_and(|l| l.contains('x')))).collect()
        }
    }

    fn batch(line_type: DataType) -> RecordBatch {
        let lines = StringArray::from(vec![Some("ax"), Some("b"), None, Some("a line long enough not to be inlined, with x"), Some("")]);
        let lines = cast(&lines, &line_type).unwrap();
        let ids = Arc::new(UInt64Array::from(vec![1, 2, 3, 4, 5]));
        let schema = Schema::new(vec![Field::new("id", DataType::UInt64, false), Field::new("line", line_type, true)]);
        RecordBatch::try_new(Arc::new(schema), vec![ids, lines]).unwrap()
    }

    #[test]
    fn keeps_the_rows_the_predicate_keeps_with_plain_lines() {
        for t in [DataType::Utf8, DataType::Utf8View] {
            let out = apply(&HasX, batch(t.clone()), 1, true).unwrap();
            assert_eq!(out.schema().field(1).data_type(), &DataType::Utf8, "from {t}");
            assert_eq!(out.column(0).as_primitive::<arrow::datatypes::UInt64Type>().values().to_vec(), vec![1, 4]);
            let lines: Vec<_> = out.column(1).as_string::<i32>().iter().collect();
            assert_eq!(lines, vec![Some("ax"), Some("a line long enough not to be inlined, with x")]);
        }
    }
}
