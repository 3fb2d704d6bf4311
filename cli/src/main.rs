//! `silt`: the one binary. `silt serve` runs the Loki-compatible server; `silt query`
//! runs LogQL against a data directory directly, no server needed.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use silt_query::ast::Expr;
use silt_query::duration::parse_duration;
use silt_query::{parse, Direction, Engine, LogQuery};
use silt_server::config::{FileConfig, ServerConfig, DEFAULT_DATA_DIR};
use silt_server::params::{now_ns, parse_time};
use silt_server::Server;
use silt_storage::{Store, StoreConfig, TenantId};

#[derive(Parser)]
#[command(name = "silt", version, about = "A Loki-compatible embedded columnar log store")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (Loki HTTP API: push, query, labels).
    ///
    /// Examples:
    ///   silt serve
    ///   silt serve --data-dir /var/lib/silt --listen 0.0.0.0:3100
    ///   silt serve --config silt.toml
    #[command(verbatim_doc_comment)]
    Serve {
        /// TOML configuration file (see the README for every option).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory [default: ./silt-data]
        #[arg(long, env = "SILT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:3100]
        #[arg(long, env = "SILT_LISTEN")]
        listen: Option<String>,
    },
    /// Run a LogQL query against a data directory (no server needed; safe while one runs).
    ///
    /// Log queries print entries; metric queries print one aligned row per series and
    /// step (`--step`, default as Loki's: the range / 250, at least 1s).
    ///
    /// Examples:
    ///   silt query '{service="api"} |= "error"'
    ///   silt query --since 24h --limit 1000 --output jsonl '{env="prod"}'
    ///   silt query --from 2026-01-15T23:00:00Z --to 2026-01-16T00:00:00Z --forward '{job="x"}'
    ///   silt query --since 6h --step 10m 'sum by (level) (count_over_time({job="x"} | logfmt [10m]))'
    #[command(verbatim_doc_comment)]
    Query {
        /// The LogQL query.
        query: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        range: Range,
        /// Most entries to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Oldest entries first (default: newest first).
        #[arg(long)]
        forward: bool,
        /// Resolution of metric queries (a duration like 30s or 5m).
        #[arg(long)]
        step: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Default)]
        output: Output,
    },
    /// List label names, or the values of one label.
    ///
    /// Examples:
    ///   silt labels
    ///   silt labels service --since 24h --query '{env="prod"}'
    #[command(verbatim_doc_comment)]
    Labels {
        /// Print this label's values instead of the names.
        name: Option<String>,
        /// Only streams matching this selector.
        #[arg(long)]
        query: Option<String>,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        range: Range,
    },
    /// List the streams (label sets) matching a selector.
    ///
    /// Example:
    ///   silt series '{service=~"api|db"}' --since 24h
    #[command(verbatim_doc_comment)]
    Series {
        selector: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        range: Range,
    },
    /// Streams, storage parts, entries and bytes matching a selector (exact counts).
    ///
    /// Example:
    ///   silt stats '{env="prod"}' --since 7d
    #[command(verbatim_doc_comment)]
    Stats {
        selector: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        range: Range,
    },
    /// The end-to-end load benchmark: generate a realistic dataset, run `silt serve` on a
    /// fresh directory, push the data over HTTP, flush, then time a query mix cold and warm.
    ///
    /// Build with `--release` for meaningful numbers. Dropping the page cache before the
    /// cold runs needs root (Linux); otherwise the report says it was not dropped.
    ///
    /// Examples:
    ///   cargo run --release -- bench
    ///   silt bench --lines 10000000 --clients 8 --format protobuf --out bench.json
    #[command(verbatim_doc_comment)]
    Bench {
        /// Lines to generate.
        #[arg(long, default_value_t = 2_000_000)]
        lines: u64,
        /// Hours the lines are spread over (ending now).
        #[arg(long, default_value_t = 6.0)]
        hours: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Concurrent pushing clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Push body format; `both` ingests twice (protobuf, then JSON) and queries the JSON copy.
        #[arg(long, value_enum, default_value_t = BenchFormat::Both)]
        format: BenchFormat,
        /// Warm runs per query; the median is reported.
        #[arg(long, default_value_t = 5)]
        warm_runs: usize,
        /// Working directory [default: a new temporary directory, removed afterwards].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Do not try to drop the page cache before cold runs.
        #[arg(long)]
        keep_page_cache: bool,
        /// Also write the report as JSON here.
        #[arg(long, default_value = "silt-bench.json")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchFormat {
    Json,
    Protobuf,
    Both,
}

/// Which data to read: a data directory and a tenant.
#[derive(clap::Args)]
struct Target {
    #[arg(long, env = "SILT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Tenant to read (X-Scope-OrgID).
    #[arg(long, default_value = silt_storage::DEFAULT_TENANT)]
    org_id: String,
}

impl Target {
    /// The tenant and the data directory opened read-only.
    async fn open(self) -> anyhow::Result<(TenantId, Engine)> {
        let tenant: TenantId = self.org_id.parse().context("invalid --org-id")?;
        let dir = self.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || Store::open_read_only(StoreConfig::new(dir)))
            .await?
            .with_context(|| format!("cannot open {}", self.data_dir.display()))?;
        Ok((tenant, Engine::new(store)))
    }
}

/// The time range: `--from`/`--to`, or the last `--since`.
#[derive(clap::Args)]
struct Range {
    /// Start of the range: RFC3339 or Unix time (s or ns). Default: --to minus --since.
    #[arg(long)]
    from: Option<String>,
    /// End of the range (exclusive). Default: now.
    #[arg(long)]
    to: Option<String>,
    /// How far back from --to to look when --from is not given.
    #[arg(long, default_value = "1h")]
    since: String,
}

impl Range {
    fn resolve(&self) -> anyhow::Result<(i64, i64)> {
        let end = match &self.to {
            Some(t) => parse_time(t).with_context(|| format!("invalid --to {t:?}: use RFC3339 or Unix time"))?,
            None => now_ns(),
        };
        let start = match &self.from {
            Some(t) => parse_time(t).with_context(|| format!("invalid --from {t:?}: use RFC3339 or Unix time"))?,
            None => end - parse_duration(&self.since).with_context(|| format!("invalid --since {:?}: use a duration like 30m or 24h", self.since))?,
        };
        if end < start {
            bail!("--to is before --from");
        }
        Ok((start, end))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    /// `<time> <labels> <line>`
    Default,
    /// The line only.
    Raw,
    /// One JSON object per entry.
    Jsonl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.cmd {
        Cmd::Serve { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("silt: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("silt: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Serve { config, data_dir, listen } => {
            let file = match config {
                Some(p) => FileConfig::load(&p)?,
                None => FileConfig::default(),
            };
            let cfg = ServerConfig::resolve(file, data_dir, listen)?;
            let server = Server::start(cfg).await?;
            server.run_until(shutdown_signal()).await
        }
        Cmd::Query { query, target, range, limit, forward, step, output } => {
            let (start, end) = range.resolve()?;
            let expr = parse(&query)?;
            let (tenant, engine) = target.open().await?;
            let tenants = std::slice::from_ref(&tenant);
            match expr {
                Expr::Log(expr) => {
                    let direction = if forward { Direction::Forward } else { Direction::Backward };
                    let streams = engine.log_query(tenants, &LogQuery { expr, start, end, limit, direction, interval: 0, categorize: false }).await?;
                    print_streams(&streams, direction, output)
                }
                Expr::Metric(m) => {
                    let step = match step {
                        Some(s) => parse_duration(&s).filter(|d| *d > 0).with_context(|| format!("invalid --step {s:?}: use a duration like 30s or 5m"))?,
                        None => ((end - start) / 250 / 1_000_000_000).max(1) * 1_000_000_000,
                    };
                    if (end - start) / step > 11_000 {
                        bail!("--step is too small for the range: more than 11,000 points per series");
                    }
                    let r = engine.metric_query(tenants, &m, start, end, step).await?;
                    print_metric(&r, output)
                }
            }
        }
        Cmd::Labels { name, query, target, range } => {
            let (start, end) = range.resolve()?;
            let matchers = match &query {
                Some(q) => silt_query::parse_selector(q)?,
                None => Vec::new(),
            };
            let (tenant, engine) = target.open().await?;
            let store = engine.store();
            let list = match &name {
                Some(n) => store.label_values(&tenant, n, &matchers, start, end),
                None => store.label_names(&tenant, &matchers, start, end),
            };
            print_lines(list.iter().map(String::as_str))
        }
        Cmd::Series { selector, target, range } => {
            let (start, end) = range.resolve()?;
            let matchers = silt_query::parse_selector(&selector)?;
            let (tenant, engine) = target.open().await?;
            let series: Vec<String> = engine.store().series(&tenant, &matchers, start, end).iter().map(|l| l.to_string()).collect();
            print_lines(series.iter().map(String::as_str))
        }
        Cmd::Stats { selector, target, range } => {
            let (start, end) = range.resolve()?;
            let matchers = silt_query::parse_selector(&selector)?;
            let (tenant, engine) = target.open().await?;
            let (vols, parts) = engine.volumes(std::slice::from_ref(&tenant), &matchers, start, end).await?;
            let entries: u64 = vols.iter().map(|v| v.entries).sum();
            let bytes: u64 = vols.iter().map(|v| v.bytes).sum();
            let parts = if vols.is_empty() { 0 } else { parts };
            print_lines([format!("streams: {}", vols.len()), format!("chunks:  {parts}"), format!("entries: {entries}"), format!("bytes:   {bytes}")].iter().map(String::as_str))
        }
        Cmd::Bench { lines, hours, seed, clients, format, warm_runs, dir, keep_page_cache, out } => {
            use silt_benches::e2e::{self, Format};
            if !(hours > 0.0 && hours.is_finite()) {
                bail!("--hours must be a positive number");
            }
            let temp;
            let dir = match dir {
                Some(d) => d,
                None => {
                    temp = tempfile::Builder::new().prefix("silt-bench-").tempdir()?;
                    temp.path().to_path_buf()
                }
            };
            let formats = match format {
                BenchFormat::Json => vec![Format::Json],
                BenchFormat::Protobuf => vec![Format::Protobuf],
                BenchFormat::Both => vec![Format::Protobuf, Format::Json],
            };
            let silt = std::env::current_exe().context("cannot find the silt binary")?;
            let opts = e2e::Options { silt, lines, hours, seed, clients, formats, warm_runs, dir, drop_caches: !keep_page_cache };
            let report = e2e::run(&opts).await?;
            std::fs::write(&out, serde_json::to_vec_pretty(&report)?).with_context(|| format!("cannot write {}", out.display()))?;
            print!("{}", e2e::table(&report));
            println!("\nJSON report: {}", out.display());
            Ok(())
        }
    }
}

fn print_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    for l in lines {
        writeln!(w, "{l}")?;
    }
    w.flush()?;
    Ok(())
}

/// A metric result as aligned rows (`time  labels  value`), or one JSON object per point.
fn print_metric(r: &silt_query::MetricResult, output: Output) -> anyhow::Result<()> {
    use silt_query::format::float_plain;
    use silt_query::MetricResult as R;
    let rows: Vec<(i64, String, f64)> = match r {
        R::Matrix(series) => series.iter().flat_map(|(l, pts)| pts.iter().map(move |(t, v)| (*t, l.to_string(), *v))).collect(),
        R::Vector(t, samples) => samples.iter().map(|(l, v)| (*t, l.to_string(), *v)).collect(),
        R::Scalar(t, v) => vec![(*t, String::new(), *v)],
    };
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (t, labels, v) in &rows {
        let time = chrono::DateTime::from_timestamp_nanos(*t).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        match output {
            Output::Jsonl => writeln!(w, "{}", serde_json::json!({"timestamp": time, "labels": labels, "value": float_plain(*v)}))?,
            _ => writeln!(w, "{time}  {labels:<width$}  {}", float_plain(*v))?,
        }
    }
    w.flush()?;
    Ok(())
}

/// Prints entries of all streams merged in the query's direction, like logcli.
fn print_streams(streams: &[silt_query::StreamResult], direction: Direction, output: Output) -> anyhow::Result<()> {
    let mut rows: Vec<(i64, usize, &str)> =
        streams.iter().enumerate().flat_map(|(si, s)| s.entries.iter().map(move |e| (e.ts, si, e.line.as_str()))).collect();
    rows.sort_by_key(|r| (r.0, r.1));
    if direction == Direction::Backward {
        rows.reverse();
    }
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    let labels: Vec<String> = streams.iter().map(|s| s.labels.to_string()).collect();
    for (ts, si, line) in rows {
        match output {
            Output::Raw => writeln!(w, "{line}")?,
            Output::Default => {
                let t = chrono::DateTime::from_timestamp_nanos(ts).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                writeln!(w, "{t} {} {line}", labels[si])?
            }
            Output::Jsonl => {
                let labels: serde_json::Map<String, serde_json::Value> =
                    streams[si].labels.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
                let obj = serde_json::json!({ "timestamp": ts.to_string(), "labels": labels, "line": line });
                writeln!(w, "{obj}")?
            }
        }
    }
    w.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
