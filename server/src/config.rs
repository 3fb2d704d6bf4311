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
//! index_cache_bytes = "64MiB"   # chunk footers and needle indexes kept in memory
//!
//! [limits]                      # every tenant; Loki's limits_config names (README)
//! max_entries_limit_per_query = 5000
//! ingestion_rate_mb = 4
//!
//! [overrides.acme]               # any [limits] key, for one tenant
//! ingestion_rate_mb = 16
//!
//! [compactor]
//! compaction_interval = "10m"   # retention, deletes and compaction run this often
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use silt_storage::StoreConfig;

use crate::auth::{Auth, AuthSection};
use crate::limits::{de_duration, de_size, TenantLimits};

pub const DEFAULT_DATA_DIR: &str = "./silt-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    /// Require `X-Scope-OrgID` (or a token), as Loki's `auth_enabled`. Off by default.
    #[serde(default)]
    pub auth_enabled: bool,
    /// Accept `a|b` tenant lists on reads (Loki's `querier.multi_tenant_queries_enabled`).
    #[serde(default)]
    pub multi_tenant_queries_enabled: bool,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub compactor: CompactorSection,
    #[serde(default)]
    pub query: QuerySection,
    /// Limits for every tenant (see [`crate::limits::LimitsSection`] for the keys).
    #[serde(default)]
    pub limits: toml::Table,
    /// `[overrides.<tenant>]`: any `[limits]` key, for one tenant.
    #[serde(default)]
    pub overrides: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub wal_sync: bool,
    #[serde(deserialize_with = "de_size")]
    pub flush_max_bytes: u64,
    #[serde(deserialize_with = "de_duration")]
    pub flush_max_age: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub out_of_order_window: Duration,
    #[serde(deserialize_with = "de_size")]
    pub index_cache_bytes: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        let d = StoreConfig::new("");
        StorageSection {
            wal_sync: d.wal_sync,
            flush_max_bytes: d.flush_max_bytes as u64,
            flush_max_age: d.flush_max_age,
            out_of_order_window: d.out_of_order_window,
            index_cache_bytes: d.index_cache_bytes,
        }
    }
}

/// `[query]`: the query engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// Most memory one query may hold (sorts, aggregations, series); a query that needs
    /// more fails with a 400 naming this limit. 0: no limit.
    #[serde(deserialize_with = "de_size")]
    pub max_memory: u64,
}

impl Default for QuerySection {
    fn default() -> Self {
        QuerySection { max_memory: silt_query::DEFAULT_QUERY_MEMORY as u64 }
    }
}

/// `[compactor]`: the maintenance pass (retention, deletes, compaction), with Loki's
/// compactor names where they exist.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactorSection {
    /// How often the pass runs.
    #[serde(deserialize_with = "de_duration")]
    pub compaction_interval: Duration,
    /// Apply `retention_period`/`retention_stream`. On by default in silt (Loki: off),
    /// since silt has no separate compactor to turn on; off keeps everything.
    pub retention_enabled: bool,
    /// Delete requests can be cancelled this long, and are processed after it.
    #[serde(deserialize_with = "de_duration")]
    pub delete_request_cancel_period: Duration,
    /// Merge a day's small chunks into chunks of about this size (silt's own).
    #[serde(deserialize_with = "de_size")]
    pub target_chunk_size: u64,
    /// zstd level (1-22) of the chunks compaction writes (silt's own). Flushes write
    /// level 1, which keeps ingest fast; the chunks compaction merges (or rewrites for
    /// retention and deletes) are recompressed at this level, in the background. A chunk
    /// compaction leaves alone (a day's only chunk, or one already big) keeps level 1.
    pub zstd_level: i32,
}

impl Default for CompactorSection {
    fn default() -> Self {
        CompactorSection {
            compaction_interval: Duration::from_secs(600),
            retention_enabled: true,
            delete_request_cancel_period: Duration::from_secs(24 * 3600),
            target_chunk_size: 128 << 20,
            zstd_level: silt_storage::DEFAULT_COMPACTION_ZSTD_LEVEL,
        }
    }
}

impl CompactorSection {
    pub fn delete_request_cancel_period_ns(&self) -> i64 {
        i64::try_from(self.delete_request_cancel_period.as_nanos()).unwrap_or(i64::MAX)
    }

    /// The options of one maintenance pass now (`filter_only` from the tenants' limits).
    pub fn maintain_options(&self, filter_only_tenants: Vec<silt_storage::TenantId>) -> silt_storage::MaintainOptions {
        silt_storage::MaintainOptions {
            target_chunk_bytes: self.target_chunk_size.max(1),
            zstd_level: self.zstd_level,
            delete_cancel_period: self.delete_request_cancel_period_ns(),
            filter_only_tenants,
            ..Default::default()
        }
    }
}

impl FileConfig {
    /// Reads and checks a config file (also the limits, so that a bad key is reported at
    /// startup with the file's name).
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message()))?;
        TenantLimits::from_tables(&file.limits, &file.overrides).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        Auth::new(file.auth_enabled, file.multi_tenant_queries_enabled, &file.auth).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        if !(1..=22).contains(&file.compactor.zstd_level) {
            anyhow::bail!("config file {}: compactor.zstd_level must be between 1 and 22, not {}", path.display(), file.compactor.zstd_level);
        }
        Ok(file)
    }
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub store: StoreConfig,
    pub limits: TenantLimits,
    pub auth: Arc<Auth>,
    pub compactor: CompactorSection,
    pub query: QuerySection,
}

impl ServerConfig {
    /// Resolves a file config with optional overrides (from flags or the environment).
    pub fn resolve(file: FileConfig, data_dir: Option<PathBuf>, listen: Option<String>) -> anyhow::Result<ServerConfig> {
        let data_dir = data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mut store = StoreConfig::new(data_dir);
        store.wal_sync = file.storage.wal_sync;
        store.flush_max_bytes = usize::try_from(file.storage.flush_max_bytes).unwrap_or(usize::MAX);
        store.flush_max_age = file.storage.flush_max_age;
        store.out_of_order_window = file.storage.out_of_order_window;
        store.index_cache_bytes = file.storage.index_cache_bytes;
        store.delete_compiler = Some(silt_query::delete::delete_compiler());
        let limits = TenantLimits::from_tables(&file.limits, &file.overrides)?;
        let auth = Arc::new(Auth::new(file.auth_enabled, file.multi_tenant_queries_enabled, &file.auth)?);
        Ok(ServerConfig { listen: listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()), store, limits, auth, compactor: file.compactor, query: file.query })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses_and_unknown_keys_are_named() {
        let c: FileConfig = toml::from_str(
            "data_dir = \"/x\"\n[storage]\nflush_max_bytes = \"32MiB\"\nflush_max_age = \"5m\"\nindex_cache_bytes = \"8MiB\"\n[limits]\nmax_entries_limit_per_query = 10\n",
        )
        .unwrap();
        let r = ServerConfig::resolve(c, None, Some("0.0.0.0:1".into())).unwrap();
        assert_eq!(r.store.flush_max_bytes, 32 << 20);
        assert_eq!(r.store.flush_max_age, Duration::from_secs(300));
        assert_eq!(r.store.index_cache_bytes, 8 << 20);
        assert_eq!(r.listen, "0.0.0.0:1");
        assert_eq!(r.limits.defaults().max_entries_limit_per_query, 10);
        let e = toml::from_str::<FileConfig>("[storage]\nwal_fsync = true\n").unwrap_err().to_string();
        assert!(e.contains("wal_fsync"), "{e}");
        let e = toml::from_str::<FileConfig>("[compactor]\nretention_enable = true\n").unwrap_err().to_string();
        assert!(e.contains("retention_enable"), "{e}");
        let c: FileConfig = toml::from_str("[compactor]\ncompaction_interval = \"1m\"\ntarget_chunk_size = \"16MB\"\n").unwrap();
        let r = ServerConfig::resolve(c, None, None).unwrap();
        assert_eq!((r.compactor.compaction_interval, r.compactor.target_chunk_size), (Duration::from_secs(60), 16 << 20));
        assert!(r.compactor.retention_enabled && r.store.delete_compiler.is_some());
    }
}
