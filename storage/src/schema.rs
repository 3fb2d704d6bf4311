//! The one table every scan produces: a row per log entry. Stream labels are not repeated
//! per row; a row names its stream by fingerprint and the scan hands out the label sets.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Stream fingerprint (see [`crate::Labels::fingerprint`]).
pub const COL_STREAM: &str = "stream";
/// Entry timestamp, Unix nanoseconds.
pub const COL_TS: &str = "ts";
/// The log line.
pub const COL_LINE: &str = "line";
/// Structured metadata, encoded by [`crate::codec::encode_metadata`]; null when none.
pub const COL_METADATA: &str = "metadata";

pub const IDX_STREAM: usize = 0;
pub const IDX_TS: usize = 1;
pub const IDX_LINE: usize = 2;
pub const IDX_METADATA: usize = 3;

pub fn log_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(COL_STREAM, DataType::UInt64, false),
                Field::new(COL_TS, DataType::Int64, false),
                Field::new(COL_LINE, DataType::Utf8, false),
                Field::new(COL_METADATA, DataType::Binary, true),
            ]))
        })
        .clone()
}

/// With field columns asked for (see [`crate::fields`]): whether the row's `| json`
/// labels are exactly the field columns that have a value.
pub const COL_FIELDS_EXACT: &str = "__fields_exact";

/// The name of the `i`-th field column a scan hands out (in the order asked for).
pub fn field_column(i: usize) -> String {
    format!("__field_{i}")
}

/// `base` followed by the field columns for `n` names: `__fields_exact`, then the values.
pub fn with_field_columns(base: &Schema, n: usize) -> SchemaRef {
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(COL_FIELDS_EXACT, DataType::Boolean, false));
    fields.extend((0..n).map(|i| Field::new(field_column(i), DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}
