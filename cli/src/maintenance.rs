//! `silt retention`, `silt compact`, `silt check`: maintenance of a data directory, in
//! this process (the directory must not be in use by a server, except for read-only
//! reports) or through a server's `POST /compact` (`--addr`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use silt_server::config::{FileConfig, ServerConfig};
use silt_storage::{Store, StoreError, TenantMaintenance};

use crate::output::{print_lines, print_table};
use crate::source::{open_read_only, Remote, Target};

/// The server configuration for `dir` (from `--config`, else the defaults).
fn server_config(target: &Target, config: Option<&PathBuf>) -> anyhow::Result<ServerConfig> {
    let file = match config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    ServerConfig::resolve(file, Some(target.data_dir.clone()), None)
}

/// Opens the directory for writing (no server may hold it). Retention from `--config`
/// when given (and recorded for later readers); otherwise what the server last recorded
/// stays in force.
/// `create`: a directory that is not a data directory yet becomes one (ingest); otherwise
/// it is refused (maintenance has nothing to do there).
pub async fn open_writable(target: &Target, config: Option<&PathBuf>, create: bool) -> anyhow::Result<(Store, ServerConfig)> {
    let cfg = server_config(target, config)?;
    let store_cfg = cfg.store.clone();
    let dir = target.data_dir.clone();
    if !create && !dir.join("wal").is_dir() && !dir.join("tenants").is_dir() {
        bail!("{} is not a silt data directory", dir.display());
    }
    let store = match tokio::task::spawn_blocking(move || Store::open(store_cfg)).await? {
        Ok(s) => s,
        Err(StoreError::Locked { dir }) => {
            bail!("{} is in use by a running server; use it through --addr (for example --addr http://127.0.0.1:3100)", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", dir.display())),
    };
    if config.is_some() {
        let retention = if cfg.compactor.retention_enabled { cfg.limits.retention() } else { Default::default() };
        store.set_retention(retention)?;
    }
    Ok((store, cfg))
}

fn print_report(report: &[TenantMaintenance]) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = report
        .iter()
        .map(|r| {
            vec![
                r.tenant.clone(),
                format!("{} -> {}", r.chunks_before, r.chunks_after),
                format!("{} -> {}", human(r.bytes_before), human(r.bytes_after)),
                r.chunks_expired.to_string(),
                format!("{} -> {}", r.chunks_rewritten, r.chunks_written),
                r.entries_removed.to_string(),
                r.deletes_processed.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return print_lines(["nothing stored yet"]);
    }
    print_table(&["TENANT", "CHUNKS", "BYTES", "EXPIRED", "REWRITTEN", "ENTRIES REMOVED", "DELETES"], &rows)
}

fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

async fn remote_compact(target: &Target, addr: &str) -> anyhow::Result<()> {
    let r = Remote::new(addr, &target.org_id, target.token.as_deref())?;
    let resp = r.send(r.request(reqwest::Method::POST, "/compact")).await?;
    let report: Vec<TenantMaintenance> = resp.json().await.context("unexpected answer to POST /compact")?;
    print_report(&report)
}

pub async fn compact(target: &Target, config: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(addr) = &target.addr {
        return remote_compact(target, addr).await;
    }
    let (store, cfg) = open_writable(target, config.as_ref(), false).await?;
    store.flush().await?;
    let filter_only = cfg.limits.filter_only_tenants(&store.tenants());
    let report = store.maintain(cfg.compactor.maintain_options(filter_only)).await?;
    print_report(&report)
}

pub async fn retention(target: &Target, config: Option<PathBuf>, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        if target.addr.is_some() {
            bail!("--dry-run reads the data directory: use --data-dir (it is safe while a server runs)");
        }
        let store = open_read_only(target.data_dir.clone()).await?;
        if let Some(p) = &config {
            let cfg = server_config(target, Some(p))?;
            store.set_retention(if cfg.compactor.retention_enabled { cfg.limits.retention() } else { Default::default() })?;
        }
        let preview = store.retention_preview(silt_storage::now_ns())?;
        if preview.is_empty() {
            return print_lines(["nothing to expire"]);
        }
        let rows: Vec<Vec<String>> = preview
            .iter()
            .map(|p| vec![p.tenant.clone(), p.rule.clone(), silt_query::format::prom_duration(p.period), p.streams.to_string(), p.entries.to_string(), p.chunks.to_string()])
            .collect();
        return print_table(&["TENANT", "RULE", "PERIOD", "STREAMS", "ENTRIES", "WHOLE CHUNKS"], &rows);
    }
    if let Some(addr) = &target.addr {
        return remote_compact(target, addr).await;
    }
    let (store, cfg) = open_writable(target, config.as_ref(), false).await?;
    store.flush().await?;
    let mut opts = cfg.compactor.maintain_options(cfg.limits.filter_only_tenants(&store.tenants()));
    // Remove every expired entry now, not only from mostly expired chunks.
    opts.min_expired_fraction = 0.0;
    opts.compact = false;
    print_report(&store.maintain(opts).await?)
}

pub async fn check(data_dir: PathBuf, repair: bool) -> anyhow::Result<()> {
    let dir = data_dir.clone();
    let report = tokio::task::spawn_blocking(move || silt_storage::check(&dir, &silt_storage::CheckOptions { repair }))
        .await?
        .map_err(|e| match e {
            StoreError::Locked { dir } => anyhow::anyhow!("{} is in use by a running server; stop it before --repair", dir.display()),
            e => anyhow::Error::new(e).context(format!("cannot check {}", data_dir.display())),
        })?;
    let mut lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    lines.extend(report.notes.iter().map(|n| format!("note: {n}")));
    lines.push(format!(
        "checked {} tenants, {} chunks, {} entries, {} WAL segments: {}",
        report.tenants,
        report.chunks,
        report.rows,
        report.wal_segments,
        if report.problems.is_empty() { "no problems".to_string() } else { format!("{} problems", report.problems.len()) }
    ));
    print_lines(lines)?;
    let unrepaired = report.problems.iter().filter(|p| p.action.is_none()).count();
    if !report.all_repaired() {
        bail!("{unrepaired} problems{}", if repair { " could not be repaired" } else { " found; --repair quarantines damaged files and rebuilds what it can" });
    }
    Ok(())
}

