//! What a push carries once decoded (JSON or protobuf, see the server): per stream a label
//! set and its entries. This is also what a WAL record holds and what replay yields.

use crate::labels::Labels;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushRequest {
    pub streams: Vec<PushStream>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushStream {
    pub labels: Labels,
    pub entries: Vec<PushEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushEntry {
    /// Unix nanoseconds.
    pub ts: i64,
    pub line: String,
    /// Structured metadata, name/value pairs in the order sent.
    pub metadata: Vec<(String, String)>,
}

impl PushRequest {
    pub fn entry_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }
}
