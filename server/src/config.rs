//! `silt serve` configuration: a TOML file (every key optional, unknown keys rejected),
//! then environment variables and flags on top (applied by the CLI).
//!
//! ```toml
//! data_dir = "./silt-data"
//! listen = "127.0.0.1:3100"
//!
//! [storage]
//! wal_sync = true               # fsync before acknowledging a push
//! flush_max_bytes = "64MiB"     # flush heads to chunks at this size...
//! flush_max_age = "10m"         # ...or when their oldest entry is this old
//! out_of_order_window = "1h"    # accept entries this far behind a stream's newest
//!
//! [limits]
//! max_entries_limit_per_query = 5000
//! max_query_series = 500
//! max_label_names_per_series = 15
//! max_label_name_length = 1024
//! max_label_value_length = 2048
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use silt_query::duration::parse_duration;
use silt_query::format::parse_bytes;
use silt_storage::{LabelLimits, StoreConfig};

pub const DEFAULT_DATA_DIR: &str = "./silt-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub limits: LimitsSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub wal_sync: bool,
    #[serde(deserialize_with = "de_bytes")]
    pub flush_max_bytes: u64,
    #[serde(deserialize_with = "de_duration")]
    pub flush_max_age: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub out_of_order_window: Duration,
}

impl Default for StorageSection {
    fn default() -> Self {
        let d = StoreConfig::new("");
        StorageSection {
            wal_sync: d.wal_sync,
            flush_max_bytes: d.flush_max_bytes as u64,
            flush_max_age: d.flush_max_age,
            out_of_order_window: d.out_of_order_window,
        }
    }
}

/// Per-tenant limits (Loki's `limits_config` names); one set for all tenants for now.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_entries_limit_per_query: usize,
    /// Most series a metric query may return (Loki's `max_query_series`).
    pub max_query_series: usize,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = LabelLimits::default();
        LimitsSection {
            max_entries_limit_per_query: 5000,
            max_query_series: 500,
            max_label_names_per_series: l.max_names,
            max_label_name_length: l.max_name_len,
            max_label_value_length: l.max_value_len,
        }
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message()))
    }
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub store: StoreConfig,
    pub limits: LimitsSection,
}

impl ServerConfig {
    /// Resolves a file config with optional overrides (from flags or the environment).
    pub fn resolve(file: FileConfig, data_dir: Option<PathBuf>, listen: Option<String>) -> ServerConfig {
        let data_dir = data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mut store = StoreConfig::new(data_dir);
        store.wal_sync = file.storage.wal_sync;
        store.flush_max_bytes = usize::try_from(file.storage.flush_max_bytes).unwrap_or(usize::MAX);
        store.flush_max_age = file.storage.flush_max_age;
        store.out_of_order_window = file.storage.out_of_order_window;
        store.label_limits = LabelLimits {
            max_names: file.limits.max_label_names_per_series,
            max_name_len: file.limits.max_label_name_length,
            max_value_len: file.limits.max_label_value_length,
        };
        ServerConfig { listen: listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()), store, limits: file.limits }
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    match parse_duration(&s) {
        Some(ns) if ns >= 0 => Ok(Duration::from_nanos(ns as u64)),
        _ => Err(serde::de::Error::custom(format!("invalid duration {s:?} (examples: 30s, 10m, 1h)"))),
    }
}

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(u64),
        Str(String),
    }
    match N::deserialize(d)? {
        N::Int(n) => Ok(n),
        N::Str(s) => parse_bytes(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid size {s:?} (examples: 512KB, 64MiB, 1GB)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses_and_unknown_keys_are_named() {
        let c: FileConfig = toml::from_str(
            "data_dir = \"/x\"\n[storage]\nflush_max_bytes = \"32MiB\"\nflush_max_age = \"5m\"\n[limits]\nmax_entries_limit_per_query = 10\n",
        )
        .unwrap();
        let r = ServerConfig::resolve(c, None, Some("0.0.0.0:1".into()));
        assert_eq!(r.store.flush_max_bytes, 32 << 20);
        assert_eq!(r.store.flush_max_age, Duration::from_secs(300));
        assert_eq!(r.listen, "0.0.0.0:1");
        assert_eq!(r.limits.max_entries_limit_per_query, 10);
        let e = toml::from_str::<FileConfig>("[storage]\nwal_fsync = true\n").unwrap_err().to_string();
        assert!(e.contains("wal_fsync"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("1.5KB"), Some(1500));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("12XB"), None);
    }
}
