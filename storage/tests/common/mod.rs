//! Helpers shared by the storage integration tests.

use std::collections::HashMap;

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, UInt64Type};
use silt_storage::{Labels, ScanPart, ScanRequest, Store, TenantId, IDX_LINE, IDX_STREAM, IDX_TS};

/// `(labels, ts, line)` of everything a tenant shows, sorted.
pub fn read_all(store: &Store, tenant: &TenantId) -> Vec<(String, i64, String)> {
    let scan = store.scan(tenant, &ScanRequest { matchers: vec![], start: i64::MIN, end: i64::MAX, projection: None, needles: vec![], fields: None, line_predicate: None }).unwrap();
    collect(&scan.streams, scan.parts)
}

/// `(labels, ts, line)` of what scan parts yield, sorted.
pub fn collect(streams: &HashMap<u64, Labels>, parts: Vec<ScanPart>) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for p in parts {
        for b in p.execute() {
            let b = b.unwrap();
            let fp = b.column(IDX_STREAM).as_primitive::<UInt64Type>();
            let ts = b.column(IDX_TS).as_primitive::<Int64Type>();
            let line = b.column(IDX_LINE).as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push((streams[&fp.value(i)].to_string(), ts.value(i), line.value(i).to_string()));
            }
        }
    }
    out.sort();
    out
}
