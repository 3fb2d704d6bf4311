//! Per-tenant limits: the `[limits]` section (defaults for every tenant) and
//! `[overrides.<tenant>]` sections that change any of its keys for one tenant, with Loki's
//! `limits_config` names and defaults.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use silt_query::duration::parse_duration;
use silt_storage::{IngestLimits, LabelLimits, RetentionConfig, RetentionPolicy, StreamRule, TenantId};

/// Loki's default `discover_service_name`: the first of these labels present names the
/// service.
pub const DEFAULT_SERVICE_NAME_LABELS: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Loki's default `log_level_fields`.
pub const DEFAULT_LOG_LEVEL_FIELDS: &[&str] =
    &["level", "LEVEL", "Level", "log.level", "severity", "SEVERITY", "Severity", "SeverityText", "lvl", "LVL", "Lvl", "severity_text", "Severity_Text", "SEVERITY_TEXT"];

/// One tenant's limits as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub ingestion_rate_mb: f64,
    pub ingestion_burst_size_mb: f64,
    #[serde(deserialize_with = "de_size")]
    pub max_line_size: u64,
    pub max_line_size_truncate: bool,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub reject_old_samples: bool,
    #[serde(deserialize_with = "de_duration")]
    pub reject_old_samples_max_age: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub creation_grace_period: Duration,
    pub allow_structured_metadata: bool,
    #[serde(deserialize_with = "de_size")]
    pub max_structured_metadata_size: u64,
    pub max_structured_metadata_entries_count: usize,
    pub max_streams_per_user: usize,
    pub max_global_streams_per_user: usize,
    #[serde(deserialize_with = "de_size")]
    pub per_stream_rate_limit: u64,
    #[serde(deserialize_with = "de_size")]
    pub per_stream_rate_limit_burst: u64,
    pub discover_service_name: Vec<String>,
    pub discover_log_levels: bool,
    pub log_level_fields: Vec<String>,
    pub max_entries_limit_per_query: usize,
    /// Most series a metric query may return (Loki's `max_query_series`).
    pub max_query_series: usize,
    /// Longest `end - start` of a query; 0 = unlimited (Loki: 30d1h).
    #[serde(deserialize_with = "de_duration")]
    pub max_query_length: Duration,
    /// A query running longer fails with 504.
    #[serde(deserialize_with = "de_duration")]
    pub query_timeout: Duration,
    pub max_concurrent_tail_requests: usize,
    /// How long entries live; 0 keeps them forever (Loki's default).
    #[serde(deserialize_with = "de_duration")]
    pub retention_period: Duration,
    /// Per-stream retention rules; a tenant's list replaces the default list.
    pub retention_stream: Vec<RetentionStreamSection>,
    /// `filter-and-delete` (default), `filter-only` or `disabled`, as Loki's.
    pub deletion_mode: DeletionMode,
}

/// One `[[limits.retention_stream]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionStreamSection {
    pub selector: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(deserialize_with = "de_duration")]
    pub period: Duration,
}

/// Loki's `deletion_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeletionMode {
    Disabled,
    FilterOnly,
    #[default]
    FilterAndDelete,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let i = IngestLimits::default();
        LimitsSection {
            ingestion_rate_mb: 4.0,
            ingestion_burst_size_mb: 6.0,
            max_line_size: i.max_line_size as u64,
            max_line_size_truncate: false,
            max_label_names_per_series: i.labels.max_names,
            max_label_name_length: i.labels.max_name_len,
            max_label_value_length: i.labels.max_value_len,
            reject_old_samples: i.reject_old_samples,
            reject_old_samples_max_age: i.reject_old_samples_max_age,
            creation_grace_period: i.creation_grace_period,
            allow_structured_metadata: true,
            max_structured_metadata_size: i.max_structured_metadata_size as u64,
            max_structured_metadata_entries_count: i.max_structured_metadata_entries_count,
            max_streams_per_user: 0,
            max_global_streams_per_user: 5000,
            per_stream_rate_limit: 3 << 20,
            per_stream_rate_limit_burst: 15 << 20,
            discover_service_name: DEFAULT_SERVICE_NAME_LABELS.iter().map(|s| s.to_string()).collect(),
            discover_log_levels: true,
            log_level_fields: DEFAULT_LOG_LEVEL_FIELDS.iter().map(|s| s.to_string()).collect(),
            max_entries_limit_per_query: 5000,
            max_query_series: 500,
            max_query_length: Duration::from_secs(721 * 3600),
            query_timeout: Duration::from_secs(60),
            max_concurrent_tail_requests: 10,
            retention_period: Duration::ZERO,
            retention_stream: Vec::new(),
            deletion_mode: DeletionMode::FilterAndDelete,
        }
    }
}

/// One tenant's limits, resolved for use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub ingest: IngestLimits,
    pub discover_service_name: Vec<String>,
    pub discover_log_levels: bool,
    pub log_level_fields: Vec<String>,
    pub max_entries_limit_per_query: usize,
    pub max_query_series: usize,
    pub max_query_length: Duration,
    pub query_timeout: Duration,
    pub max_concurrent_tail_requests: usize,
    pub retention: RetentionPolicy,
    pub deletion_mode: DeletionMode,
}

impl LimitsSection {
    /// Checks and resolves the section; errors name the offending key.
    fn resolve(self) -> anyhow::Result<Limits> {
        let mut rules = Vec::new();
        for (i, r) in self.retention_stream.iter().enumerate() {
            let matchers = silt_query::parse_selector(&r.selector).map_err(|e| anyhow::anyhow!("retention_stream[{i}]: invalid labels matchers: {e}"))?;
            if r.period < Duration::from_secs(24 * 3600) {
                anyhow::bail!("retention_stream[{i}]: retention period must be >= 24h was {}", silt_query::format::prom_duration(r.period.as_nanos() as i64));
            }
            rules.push(StreamRule { selector: r.selector.clone(), matchers, priority: r.priority, period: nanos(r.period) });
        }
        let retention = RetentionPolicy { period: nanos(self.retention_period), streams: rules };
        let deletion_mode = self.deletion_mode;
        let mut l = Limits::from(self);
        l.retention = retention;
        l.deletion_mode = deletion_mode;
        Ok(l)
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl From<LimitsSection> for Limits {
    /// Without the checks of [`LimitsSection::resolve`] (retention rules are left out).
    fn from(s: LimitsSection) -> Limits {
        const MIB: f64 = 1048576.0;
        // On one node Loki's global and local stream limits are the same; the smaller
        // non-zero one applies.
        let max_streams = match (s.max_streams_per_user, s.max_global_streams_per_user) {
            (0, g) => g,
            (l, 0) => l,
            (l, g) => l.min(g),
        };
        let ingest = IngestLimits {
            labels: LabelLimits { max_names: s.max_label_names_per_series, max_name_len: s.max_label_name_length, max_value_len: s.max_label_value_length },
            max_line_size: usize::try_from(s.max_line_size).unwrap_or(usize::MAX),
            max_line_size_truncate: s.max_line_size_truncate,
            reject_old_samples: s.reject_old_samples,
            reject_old_samples_max_age: s.reject_old_samples_max_age,
            creation_grace_period: s.creation_grace_period,
            allow_structured_metadata: s.allow_structured_metadata,
            max_structured_metadata_size: usize::try_from(s.max_structured_metadata_size).unwrap_or(usize::MAX),
            max_structured_metadata_entries_count: s.max_structured_metadata_entries_count,
            ingestion_rate_bytes: rate_or_unlimited(s.ingestion_rate_mb * MIB),
            ingestion_burst_bytes: s.ingestion_burst_size_mb * MIB,
            max_streams,
            per_stream_rate_bytes: rate_or_unlimited(s.per_stream_rate_limit as f64),
            per_stream_burst_bytes: s.per_stream_rate_limit_burst as f64,
        };
        Limits {
            ingest,
            discover_service_name: s.discover_service_name,
            discover_log_levels: s.discover_log_levels,
            log_level_fields: if s.log_level_fields.is_empty() { DEFAULT_LOG_LEVEL_FIELDS.iter().map(|s| s.to_string()).collect() } else { s.log_level_fields },
            max_entries_limit_per_query: s.max_entries_limit_per_query,
            max_query_series: s.max_query_series,
            max_query_length: s.max_query_length,
            query_timeout: s.query_timeout,
            max_concurrent_tail_requests: s.max_concurrent_tail_requests,
            retention: RetentionPolicy { period: nanos(s.retention_period), streams: Vec::new() },
            deletion_mode: s.deletion_mode,
        }
    }
}

/// A rate of 0 means "no limit" in silt's config (Loki has no such value; a zero rate
/// would refuse everything).
fn rate_or_unlimited(r: f64) -> f64 {
    if r <= 0.0 {
        f64::INFINITY
    } else {
        r
    }
}

/// Every tenant's limits: the defaults and the overrides.
#[derive(Debug, Clone)]
pub struct TenantLimits {
    defaults: Arc<Limits>,
    overrides: HashMap<String, Arc<Limits>>,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits { defaults: Arc::new(LimitsSection::default().into()), overrides: HashMap::new() }
    }
}

impl TenantLimits {
    /// From the raw `[limits]` table and `[overrides.<tenant>]` tables: an override starts
    /// from `[limits]` and replaces the keys it names. Errors name the section and the key.
    pub fn from_tables(limits: &toml::Table, overrides: &BTreeMap<String, toml::Table>) -> anyhow::Result<TenantLimits> {
        let parse = |t: toml::Table, section: &str| -> anyhow::Result<Limits> {
            let s: LimitsSection = toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| anyhow::anyhow!("[{section}]: {}", e.message()))?;
            s.resolve().map_err(|e| anyhow::anyhow!("[{section}]: {e}"))
        };
        let defaults = Arc::new(parse(limits.clone(), "limits")?);
        let mut out = HashMap::new();
        for (tenant, table) in overrides {
            tenant.parse::<TenantId>().map_err(|e| anyhow::anyhow!("[overrides.{tenant}]: {e}"))?;
            let mut merged = limits.clone();
            merged.extend(table.clone());
            out.insert(tenant.clone(), Arc::new(parse(merged, &format!("overrides.{tenant}"))?));
        }
        Ok(TenantLimits { defaults, overrides: out })
    }

    /// The limits that apply to `tenant`.
    pub fn get(&self, tenant: &TenantId) -> &Arc<Limits> {
        self.overrides.get(tenant.as_str()).unwrap_or(&self.defaults)
    }

    /// The limits of a query over several tenants: for each query limit the smallest
    /// non-zero one of theirs, as Loki does.
    pub fn for_tenants(&self, tenants: &[TenantId]) -> Arc<Limits> {
        let mut it = tenants.iter().map(|t| self.get(t));
        let Some(first) = it.next() else { return self.defaults.clone() };
        if tenants.len() == 1 {
            return first.clone();
        }
        let mut l = (**first).clone();
        fn min_nonzero<T: PartialOrd + Default + Copy>(a: T, b: T) -> T {
            let zero = T::default();
            if a == zero || (b != zero && b < a) {
                b
            } else {
                a
            }
        }
        for o in it {
            l.max_entries_limit_per_query = min_nonzero(l.max_entries_limit_per_query, o.max_entries_limit_per_query);
            l.max_query_series = min_nonzero(l.max_query_series, o.max_query_series);
            l.max_query_length = min_nonzero(l.max_query_length, o.max_query_length);
            l.query_timeout = min_nonzero(l.query_timeout, o.query_timeout);
        }
        Arc::new(l)
    }

    pub fn defaults(&self) -> &Arc<Limits> {
        &self.defaults
    }

    /// Every tenant's retention, for the store.
    pub fn retention(&self) -> RetentionConfig {
        RetentionConfig {
            default: self.defaults.retention.clone(),
            tenants: self.overrides.iter().filter_map(|(t, l)| Some((t.parse().ok()?, l.retention.clone()))).collect(),
        }
    }

    /// Those of `tenants` whose delete requests only filter reads and are never processed
    /// (`deletion_mode` other than `filter-and-delete`).
    pub fn filter_only_tenants(&self, tenants: &[TenantId]) -> Vec<TenantId> {
        tenants.iter().filter(|t| self.get(t).deletion_mode != DeletionMode::FilterAndDelete).cloned().collect()
    }

    /// The tenants with overrides and their limits, by tenant id.
    pub fn overrides(&self) -> std::collections::BTreeMap<&str, &Arc<Limits>> {
        self.overrides.iter().map(|(t, l)| (t.as_str(), l)).collect()
    }
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    match parse_duration(&s) {
        Some(ns) if ns >= 0 => Ok(Duration::from_nanos(ns as u64)),
        _ => Err(serde::de::Error::custom(format!("invalid duration {s:?} (examples: 30s, 10m, 1h, 1w)"))),
    }
}

/// A size as Loki's config writes it (`256KB`, `3MB`: units of 1024, case-insensitive), or
/// a plain number of bytes.
pub(crate) fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(u64),
        Str(String),
    }
    match N::deserialize(d)? {
        N::Int(n) => Ok(n),
        N::Str(s) => parse_config_size(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid size {s:?} (examples: 512KB, 64MB, 1GB)"))),
    }
}

/// `datasize` as Loki parses config sizes: an integer and a unit among B, K(B), M(B),
/// G(B), T(B), P(B), E(B), all powers of 1024 (KiB-style spellings accepted too).
pub fn parse_config_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_uppercase();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let shift = match s[digits..].trim() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        "E" | "EB" | "EIB" => 60,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn overrides_start_from_the_defaults_section() {
        let limits = table("max_line_size = \"1KB\"\ningestion_rate_mb = 8\n");
        let overrides = BTreeMap::from([("acme".to_string(), table("ingestion_rate_mb = 16\n"))]);
        let l = TenantLimits::from_tables(&limits, &overrides).unwrap();
        let acme = l.get(&"acme".parse().unwrap());
        assert_eq!(acme.ingest.ingestion_rate_bytes, 16.0 * 1048576.0);
        assert_eq!(acme.ingest.max_line_size, 1024, "inherited from [limits]");
        let other = l.get(&"globex".parse().unwrap());
        assert_eq!(other.ingest.ingestion_rate_bytes, 8.0 * 1048576.0);
        assert_eq!(other.max_entries_limit_per_query, 5000, "Loki's default");
    }

    #[test]
    fn errors_name_the_section_and_key() {
        let e = TenantLimits::from_tables(&table("max_lines = 3\n"), &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("[limits]") && e.contains("max_lines"), "{e}");
        let overrides = BTreeMap::from([("acme".to_string(), table("max_line_size = \"lots\"\n"))]);
        let e = TenantLimits::from_tables(&toml::Table::new(), &overrides).unwrap_err().to_string();
        assert!(e.contains("[overrides.acme]") && e.contains("lots"), "{e}");
    }

    #[test]
    fn retention_rules_are_checked_and_overrides_replace_the_list() {
        let limits = table("retention_period = \"744h\"\n[[retention_stream]]\nselector = '{env=\"staging\"}'\npriority = 1\nperiod = \"720h\"\n");
        let overrides = BTreeMap::from([("acme".to_string(), table("[[retention_stream]]\nselector = '{app=\"x\"}'\nperiod = \"48h\"\n"))]);
        let l = TenantLimits::from_tables(&limits, &overrides).unwrap();
        let r = l.retention();
        assert_eq!(r.default.period, 744 * 3_600_000_000_000);
        assert_eq!(r.default.streams[0].selector, "{env=\"staging\"}");
        let acme = r.for_tenant(&"acme".parse().unwrap());
        assert_eq!((acme.period, acme.streams.len(), acme.streams[0].priority), (744 * 3_600_000_000_000, 1, 0));
        let e = TenantLimits::from_tables(&table("[[retention_stream]]\nselector = '{a=\"b\"}'\nperiod = \"5h\"\n"), &BTreeMap::new()).unwrap_err().to_string();
        assert_eq!(e, "[limits]: retention_stream[0]: retention period must be >= 24h was 5h");
        let e = TenantLimits::from_tables(&table("[[retention_stream]]\nselector = 'nope'\nperiod = \"48h\"\n"), &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("invalid labels matchers"), "{e}");
        let e = TenantLimits::from_tables(&table("deletion_mode = \"sometimes\"\n"), &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("deletion_mode") || e.contains("sometimes"), "{e}");
    }

    #[test]
    fn config_sizes_are_powers_of_1024() {
        assert_eq!(parse_config_size("256KB"), Some(262144));
        assert_eq!(parse_config_size("3mb"), Some(3 << 20));
        assert_eq!(parse_config_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_config_size("12"), Some(12));
        assert_eq!(parse_config_size("1.5MB"), None);
    }
}
