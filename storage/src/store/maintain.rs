//! The maintenance pass: retention, delete processing and compaction, per tenant and day.
//!
//! 1. Chunks whose every stream is past its retention are dropped (a manifest swap; the
//!    files go once no query reads them).
//! 2. A chunk is rewritten when enough of it has expired (`min_expired_fraction`, by the
//!    streams' time ranges) or when a delete request whose cancel period has passed
//!    touches it; the rewrite leaves out expired entries and the entries of every due or
//!    processed delete request.
//! 3. A day's small chunks (under half the target size) are merged into chunks of about
//!    the target size, through the same rewrite, so they shed expired and deleted entries
//!    on the way.
//!
//! Every step writes its new chunks first and then swaps the manifest ([`commit`]), so a
//! crash at any point leaves either the old or the new chunk set, never both or neither.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{commit, Store, Tenant};
use crate::chunk::ChunkRef;
use crate::compact;
use crate::deletes::{self, DeleteStatus, LiveDelete};
use crate::error::{Result, StoreError};
use crate::schema::IDX_TS;
use crate::tenant::TenantId;
use crate::visibility::RowFilter;

/// What a maintenance pass does.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// The time retention and cancel periods are measured against (Unix ns).
    pub now: i64,
    /// Merge small chunks.
    pub compact: bool,
    /// Size merged chunks aim for; chunks under half of it count as small.
    pub target_chunk_bytes: u64,
    /// zstd level of the chunks written (see [`crate::DEFAULT_COMPACTION_ZSTD_LEVEL`]).
    pub zstd_level: i32,
    /// Rewrite a partly expired chunk once about this share of its entries has expired
    /// (0: as soon as anything has). Reads never see expired entries either way.
    pub min_expired_fraction: f64,
    /// Process delete requests this long after they were made (until then they can be
    /// cancelled); Loki's `delete_request_cancel_period`.
    pub delete_cancel_period: i64,
    /// Tenants whose delete requests only filter reads and are never processed (Loki's
    /// `deletion_mode: filter-only`).
    pub filter_only_tenants: Vec<TenantId>,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        MaintainOptions {
            now: crate::now_ns(),
            compact: true,
            target_chunk_bytes: 128 << 20,
            zstd_level: crate::DEFAULT_COMPACTION_ZSTD_LEVEL,
            min_expired_fraction: 0.1,
            delete_cancel_period: 24 * 3_600_000_000_000,
            filter_only_tenants: Vec::new(),
        }
    }
}

/// What a maintenance pass did for one tenant.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantMaintenance {
    pub tenant: String,
    pub chunks_before: usize,
    pub chunks_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Chunks dropped whole because everything in them expired.
    pub chunks_expired: usize,
    /// Chunks read by rewrites and merges.
    pub chunks_rewritten: usize,
    /// Chunks those wrote.
    pub chunks_written: usize,
    /// Entries removed from disk (expired or deleted), counting dropped chunks.
    pub entries_removed: u64,
    pub deletes_processed: usize,
}

/// What retention would remove now, per tenant and rule (`silt retention --dry-run`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetentionPreview {
    pub tenant: String,
    /// The rule's selector, or `retention_period` for the tenant default.
    pub rule: String,
    /// Nanoseconds.
    pub period: i64,
    pub streams: usize,
    pub entries: u64,
    /// Chunks that would be dropped whole.
    pub chunks: usize,
}

impl Store {
    /// Runs one maintenance pass over every tenant. When delete requests are due, flushes
    /// first, so that their entries still in the WAL are in chunks and get removed too.
    pub async fn maintain(&self, opts: MaintainOptions) -> Result<Vec<TenantMaintenance>> {
        if self.is_read_only() {
            return Err(StoreError::InvalidInput("the store is open read-only".into()));
        }
        let _one_at_a_time = self.inner.maintain_lock.lock().await;
        let due = self.tenants_list().iter().any(|t| !due_deletes(t, &opts).is_empty());
        if due {
            self.flush().await?;
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let done = store.tenants_list().iter().map(|t| store.maintain_tenant(t, &opts)).collect::<Result<Vec<_>>>();
            crate::trim::release_free_memory();
            done
        })
        .await
        .map_err(|e| StoreError::Io { context: "maintenance task".into(), source: std::io::Error::other(e.to_string()) })?
    }

    fn tenants_list(&self) -> Vec<Arc<Tenant>> {
        self.inner.tenants.read().unwrap().values().cloned().collect()
    }

    fn maintain_tenant(&self, t: &Tenant, opts: &MaintainOptions) -> Result<TenantMaintenance> {
        let policy = self.retention_of(&t.id);
        let chunks: Vec<ChunkRef> = t.state.read().unwrap().chunks.clone();
        let mut report = TenantMaintenance {
            tenant: t.id.as_str().to_string(),
            chunks_before: chunks.len(),
            bytes_before: chunks.iter().map(|c| c.meta.bytes).sum(),
            ..Default::default()
        };
        let due = due_deletes(t, opts);
        // Entries of processed requests are left out of every rewrite too.
        let applied: Vec<Arc<LiveDelete>> =
            t.deletes.read().unwrap().iter().filter(|d| d.req.status == DeleteStatus::Processed || due.iter().any(|x| Arc::ptr_eq(x, d))).cloned().collect();
        let mut cutoffs: HashMap<u64, i64> = HashMap::new();
        let mut cutoff = |fp: u64, labels: &crate::Labels| *cutoffs.entry(fp).or_insert_with(|| policy.cutoff(labels, opts.now));

        let mut expired = Vec::new();
        let mut by_day: BTreeMap<String, Vec<(ChunkRef, bool)>> = BTreeMap::new();
        for c in chunks {
            let mut expired_rows = 0f64;
            let mut all = true;
            for s in &c.index.streams {
                let cut = cutoff(s.fp, &s.labels);
                if s.max_ts >= cut {
                    all = false;
                }
                if s.min_ts < cut {
                    let span = (s.max_ts - s.min_ts).max(1) as f64;
                    expired_rows += s.rows as f64 * ((cut.min(s.max_ts + 1) - s.min_ts) as f64 / span).min(1.0);
                }
            }
            if all {
                expired.push(c);
                continue;
            }
            let share = expired_rows / c.meta.rows.max(1) as f64;
            let by_retention = expired_rows > 0.0 && share >= opts.min_expired_fraction;
            let by_delete = due.iter().any(|d| {
                d.overlaps(c.meta.min_ts, c.meta.max_ts.saturating_add(1))
                    && c.index.streams.iter().any(|s| d.overlaps(s.min_ts, s.max_ts.saturating_add(1)) && d.matches_stream(&s.labels))
            });
            by_day.entry(c.meta.day.clone()).or_default().push((c, by_retention || by_delete));
        }
        if !expired.is_empty() {
            report.chunks_expired = expired.len();
            report.entries_removed += expired.iter().map(|c| c.meta.rows).sum::<u64>();
            commit(t, "retention", &expired, Vec::new(), None, |_| {})?;
        }

        for (_, day) in by_day {
            for group in plan_groups(day, opts) {
                let mut filter = RowFilter::default();
                let mut streams: HashMap<u64, crate::Labels> = HashMap::new();
                for c in &group {
                    for s in &c.index.streams {
                        filter.add_cutoff(s.fp, cutoff(s.fp, &s.labels));
                        streams.entry(s.fp).or_insert_with(|| s.labels.clone());
                    }
                }
                let (lo, hi) = group.iter().fold((i64::MAX, i64::MIN), |(lo, hi), c| (lo.min(c.meta.min_ts), hi.max(c.meta.max_ts)));
                for d in &applied {
                    if d.overlaps(lo, hi.saturating_add(1)) {
                        filter.add_delete(d.clone(), streams.iter().filter(|(_, l)| d.matches_stream(l)).map(|(fp, l)| (*fp, l.clone())).collect());
                    }
                }
                let (out, stats) = compact::merge(&t.dir, &group, &filter, opts.target_chunk_bytes, self.inner.cfg.batch_rows, opts.zstd_level, &self.inner.cache, || self.inner.next_chunk_id())?;
                crate::failpoint::hit("compact-after-write");
                report.chunks_rewritten += group.len();
                report.chunks_written += out.len();
                report.entries_removed += stats.rows_in - stats.rows_out;
                commit(t, "compact", &group, out, None, |_| {})?;
            }
        }

        if !due.is_empty() {
            let mut list = t.deletes.write().unwrap();
            let mut changed = false;
            for d in list.iter_mut() {
                if due.iter().any(|x| x.req.request_id == d.req.request_id) {
                    let mut done = (**d).clone();
                    done.req.status = DeleteStatus::Processed;
                    *d = Arc::new(done);
                    changed = true;
                }
            }
            if changed {
                deletes::store(&t.dir, &list)?;
            }
            report.deletes_processed = due.len();
        }
        let s = t.state.read().unwrap();
        report.chunks_after = s.chunks.len();
        report.bytes_after = s.chunks.iter().map(|c| c.meta.bytes).sum();
        Ok(report)
    }

    /// What retention would remove from disk now, per tenant and rule, without changing
    /// anything. Entries still in the WAL are not counted (reads hide them all the same).
    pub fn retention_preview(&self, now: i64) -> Result<Vec<RetentionPreview>> {
        let mut out = Vec::new();
        for t in self.tenants_list() {
            let policy = self.retention_of(&t.id);
            if policy.is_forever() {
                continue;
            }
            let chunks: Vec<ChunkRef> = t.state.read().unwrap().chunks.clone();
            // Per rule (index into policy.streams, or None for the default): streams, entries, chunks.
            let mut per_rule: BTreeMap<Option<usize>, (std::collections::HashSet<u64>, u64, usize)> = BTreeMap::new();
            for c in &chunks {
                let mut all = true;
                let mut rules_here = Vec::new();
                for (o, s) in c.index.streams.iter().enumerate() {
                    let rule = policy.rule_for(&s.labels);
                    let cut = policy.cutoff(&s.labels, now);
                    if s.max_ts >= cut {
                        all = false;
                    }
                    if s.min_ts >= cut {
                        continue;
                    }
                    let entries = if s.max_ts < cut { s.rows } else { count_before(c, o, cut, self.inner.cfg.batch_rows)? };
                    let e = per_rule.entry(rule).or_default();
                    e.0.insert(s.fp);
                    e.1 += entries;
                    rules_here.push(rule);
                }
                if all {
                    rules_here.sort();
                    rules_here.dedup();
                    for r in rules_here {
                        per_rule.entry(r).or_default().2 += 1;
                    }
                }
            }
            for (rule, (streams, entries, whole)) in per_rule {
                let (name, period) = match rule {
                    Some(i) => (policy.streams[i].selector.clone(), policy.streams[i].period),
                    None => ("retention_period".to_string(), policy.period),
                };
                out.push(RetentionPreview { tenant: t.id.as_str().to_string(), rule: name, period, streams: streams.len(), entries, chunks: whole });
            }
        }
        Ok(out)
    }
}

/// The tenant's delete requests whose cancel period has passed and that are not processed.
fn due_deletes(t: &Tenant, opts: &MaintainOptions) -> Vec<Arc<LiveDelete>> {
    if opts.filter_only_tenants.contains(&t.id) {
        return Vec::new();
    }
    t.deletes
        .read()
        .unwrap()
        .iter()
        .filter(|d| d.req.status == DeleteStatus::Received && d.req.created_at.saturating_add(opts.delete_cancel_period) <= opts.now)
        .cloned()
        .collect()
}

/// Most chunks merged at once: a merge holds one record batch per input in memory.
const MAX_MERGE_INPUTS: usize = 32;

/// Groups one day's chunks for rewriting: each chunk that must be rewritten and is not
/// small alone; small chunks (flagged or not) together, greedily up to the target size.
/// A lone small chunk that needs nothing is left as it is.
fn plan_groups(day: Vec<(ChunkRef, bool)>, opts: &MaintainOptions) -> Vec<Vec<ChunkRef>> {
    let small = |c: &ChunkRef| opts.compact && c.meta.bytes < opts.target_chunk_bytes / 2;
    let mut groups = Vec::new();
    let mut pool: Vec<(ChunkRef, bool)> = Vec::new();
    for (c, needs) in day {
        if small(&c) {
            pool.push((c, needs));
        } else if needs {
            groups.push(vec![c]);
        }
    }
    pool.sort_by_key(|(c, _)| c.meta.min_ts);
    let mut cur: Vec<(ChunkRef, bool)> = Vec::new();
    let mut bytes = 0;
    let close = |cur: &mut Vec<(ChunkRef, bool)>, groups: &mut Vec<Vec<ChunkRef>>| {
        if cur.len() > 1 || cur.iter().any(|(_, n)| *n) {
            groups.push(cur.drain(..).map(|(c, _)| c).collect());
        }
        cur.clear();
    };
    for (c, needs) in pool {
        if !cur.is_empty() && (bytes + c.meta.bytes > opts.target_chunk_bytes || cur.len() >= MAX_MERGE_INPUTS) {
            close(&mut cur, &mut groups);
            bytes = 0;
        }
        bytes += c.meta.bytes;
        cur.push((c, needs));
    }
    close(&mut cur, &mut groups);
    groups
}

/// Entries of stream `ordinal` of a chunk older than `cutoff`.
fn count_before(c: &ChunkRef, ordinal: usize, cutoff: i64, batch_rows: usize) -> Result<u64> {
    let mut n = 0;
    for b in c.scan(&[ordinal], i64::MIN, cutoff, Some(&[IDX_TS]), batch_rows)? {
        n += b?.num_rows() as u64;
    }
    Ok(n)
}

