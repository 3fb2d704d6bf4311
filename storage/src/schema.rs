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
