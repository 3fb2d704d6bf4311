//! The per-tenant manifest: the list of live chunks and the WAL checkpoint they cover.
//! It is replaced atomically (write a temp file, fsync, rename, fsync the directory), so a
//! crash leaves either the old or the new list, never a mix. A chunk file that no manifest
//! names is garbage from an interrupted flush and is deleted at startup.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, StoreError};
use crate::wal::sync_dir;

pub(crate) const MANIFEST_FILE: &str = "manifest.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u32,
    /// Every WAL record of this tenant in a segment with id <= this is in `chunks`.
    pub wal_checkpoint: u64,
    pub chunks: Vec<ChunkMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkMeta {
    /// Unique, sortable by creation: file stem of `<id>.parquet` and `<id>.idx`.
    pub id: String,
    /// The UTC day (`YYYY-MM-DD`) every entry of the chunk falls in.
    pub day: String,
    pub min_ts: i64,
    pub max_ts: i64,
    pub rows: u64,
    pub streams: u32,
    /// Size of the Parquet file.
    pub bytes: u64,
}

impl ChunkMeta {
    /// Path of the chunk's files relative to the tenant directory, without extension.
    pub fn stem(&self) -> String {
        format!("chunks/{}/{}", self.day, self.id)
    }
}

impl Manifest {
    pub fn load(tenant_dir: &Path) -> Result<Option<Manifest>> {
        let path = tenant_dir.join(MANIFEST_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path.display())(e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), comment: format!("unreadable manifest: {e}") })?;
        if m.version != VERSION {
            return Err(StoreError::Corrupt { path, comment: format!("unsupported manifest version {}", m.version) });
        }
        Ok(Some(m))
    }

    pub fn new(wal_checkpoint: u64, chunks: Vec<ChunkMeta>) -> Self {
        Manifest { version: VERSION, wal_checkpoint, chunks }
    }

    pub fn store(&self, tenant_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        write_atomic(tenant_dir, MANIFEST_FILE, &bytes)
    }
}

/// Replaces `dir/name` with `bytes` so that readers and crashes see the old or the new
/// content, never a mix.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(io_err(tmp.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io_err(tmp.display()))?;
    drop(f);
    fs::rename(&tmp, &dst).map_err(io_err(dst.display()))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> ChunkMeta {
        ChunkMeta { id: id.into(), day: "2026-01-15".into(), min_ts: 1, max_ts: 2, rows: 3, streams: 1, bytes: 10 }
    }

    #[test]
    fn replace_is_atomic_and_leftover_tmp_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let a = Manifest::new(3, vec![meta("a")]);
        a.store(dir.path()).unwrap();
        // A crash after writing the temp file but before the rename leaves the old state.
        fs::write(dir.path().join("manifest.json.tmp"), b"{\"version\":1,\"half").unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(a.clone()));
        let b = Manifest::new(4, vec![meta("a"), meta("b")]);
        b.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(b));
        assert!(!dir.path().join("manifest.json.tmp").exists());
    }

    #[test]
    fn damaged_manifest_is_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MANIFEST_FILE), b"{not json").unwrap();
        let e = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.json") && e.contains("unreadable manifest"), "{e}");
    }
}
