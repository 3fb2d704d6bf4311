//! `silt`: the one binary. `silt serve` runs the Loki-compatible server; the other
//! commands work on a data directory directly (no server needed) or on a server
//! (`--addr`): `query`, `labels`, `series`, `stats` read ([`source`]), `ingest` ships
//! files, `retention`, `compact` and `check` maintain ([`maintenance`]).

mod follow;
mod ingest;
mod maintenance;
mod output;
mod source;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use silt_query::ast::Expr;
use silt_query::duration::parse_duration;
use silt_query::{parse, Direction};
use silt_server::config::{FileConfig, ServerConfig, DEFAULT_DATA_DIR};
use silt_server::Server;

use crate::output::Output;
use crate::source::{Range, Target};

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
        #[arg(long, env = "SILT_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory [default: ./silt-data]
        #[arg(long, env = "SILT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:3100]
        #[arg(long, env = "SILT_LISTEN")]
        listen: Option<String>,
    },
    /// Run a LogQL query, on a data directory (no server needed; safe while one runs) or a
    /// server (--addr).
    ///
    /// Log queries print entries; metric queries print one aligned row per series and
    /// step (`--step`, default as Loki's: the range / 250, at least 1s). `--tail` keeps
    /// printing new entries as they arrive.
    ///
    /// Examples:
    ///   silt query '{service="api"} |= "error"'
    ///   silt query --since 24h --limit 1000 --output jsonl '{env="prod"}'
    ///   silt query --from 2026-01-15T23:00:00Z --to 2026-01-16T00:00:00Z --forward '{job="x"}'
    ///   silt query --since 6h --step 10m 'sum by (level) (count_over_time({job="x"} | logfmt [10m]))'
    ///   silt query --addr http://127.0.0.1:3100 --org-id acme --tail '{job="x"} |= "error"'
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
        /// Keep following: print new entries as they arrive (log queries), until Ctrl-C.
        #[arg(long)]
        tail: bool,
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
    Series(SelectorArgs),
    /// Streams, storage parts, entries and bytes matching a selector (exact counts).
    ///
    /// Example:
    ///   silt stats '{env="prod"}' --since 7d
    #[command(verbatim_doc_comment)]
    Stats(SelectorArgs),
    /// Ship log files (plain or gzip) or standard input as one stream, in batches.
    ///
    /// Each line is an entry. Its time comes from a JSON field (--time-field) or a regex
    /// (--time-regex, first capture group) when asked, else it is the time the line was
    /// read; a line without a readable time takes the previous line's. Progress (lines/s,
    /// MB/s, ETA) is shown on a terminal. An interrupted run continues where it stopped
    /// with --resume.
    ///
    /// Examples:
    ///   silt ingest --labels '{job="nginx"}' /var/log/nginx/access.log
    ///   silt ingest --labels '{job="api"}' --time-field ts app.log.gz --addr http://127.0.0.1:3100
    ///   journalctl -o cat | silt ingest --labels '{job="journal"}' -
    ///   silt ingest --labels '{job="x"}' --time-regex '^(\S+)' --resume big.log
    #[command(verbatim_doc_comment)]
    Ingest(ingest::IngestArgs),
    /// Apply retention now, or show what it would remove (--dry-run), per tenant and rule.
    ///
    /// Retention comes from --config (the server's file), else from what the server last
    /// recorded in the data directory.
    ///
    /// Examples:
    ///   silt retention --dry-run
    ///   silt retention --config silt.toml
    ///   silt retention --addr http://127.0.0.1:3100
    #[command(verbatim_doc_comment)]
    Retention {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
        /// The server's configuration file (limits, [compactor]).
        #[arg(long, env = "SILT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Merge small chunks, apply retention and process due delete requests now.
    ///
    /// On a data directory no server is running on, or on a server (--addr).
    ///
    /// Examples:
    ///   silt compact
    ///   silt compact --addr http://127.0.0.1:3100
    #[command(verbatim_doc_comment)]
    Compact {
        #[command(flatten)]
        target: Target,
        /// The server's configuration file (limits, [compactor]).
        #[arg(long, env = "SILT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Verify every chunk, index, manifest and WAL segment of a data directory.
    ///
    /// Exits non-zero when damage is found. --repair (needs the directory to itself)
    /// moves damaged files to <data-dir>/quarantine and rebuilds indexes and manifests.
    ///
    /// Examples:
    ///   silt check
    ///   silt check --data-dir /var/lib/silt --repair
    #[command(verbatim_doc_comment)]
    Check {
        #[arg(long, env = "SILT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Quarantine damaged files and rebuild what can be rebuilt.
        #[arg(long)]
        repair: bool,
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
        /// Query the chunks as flushed: skip the compaction pass after ingest.
        #[arg(long)]
        no_compact: bool,
        /// Also write the report as JSON here.
        #[arg(long, default_value = "silt-bench.json")]
        out: PathBuf,
    },
}

/// A stream selector, the data and the time range.
#[derive(clap::Args)]
struct SelectorArgs {
    /// Label matchers, for example '{app="web"}'.
    selector: String,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    range: Range,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchFormat {
    Json,
    Protobuf,
    Both,
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
            // One line, whatever the error's own formatting.
            let msg = format!("{e:#}");
            eprintln!("silt: {}", msg.split_whitespace().collect::<Vec<_>>().join(" "));
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
        Cmd::Query { query, target, range, limit, forward, step, output, tail } => {
            let (start, end) = range.resolve()?;
            let expr = parse(&query)?;
            if limit == 0 {
                bail!("--limit must be a positive value");
            }
            match expr {
                Expr::Log(_) if tail => follow::run(&target, &query, start, limit, output).await,
                Expr::Log(_) => {
                    let direction = if forward { Direction::Forward } else { Direction::Backward };
                    let streams = target.open().await?.log_query(&query, start, end, limit, direction).await?;
                    output::print_streams(&streams, direction, output)
                }
                Expr::Metric(_) if tail => bail!("--tail follows log queries only"),
                Expr::Metric(_) => {
                    let step = match step {
                        Some(s) => parse_duration(&s).filter(|d| *d > 0).with_context(|| format!("invalid --step {s:?}: use a duration like 30s or 5m"))?,
                        None => ((end - start) / 250 / 1_000_000_000).max(1) * 1_000_000_000,
                    };
                    if (end - start) / step > 11_000 {
                        bail!("--step is too small for the range: more than 11,000 points per series");
                    }
                    let r = target.open().await?.metric_query(&query, start, end, step).await?;
                    output::print_metric(&r, output)
                }
            }
        }
        Cmd::Labels { name, query, target, range } => {
            let (start, end) = range.resolve()?;
            if let Some(q) = &query {
                silt_query::parse_selector(q)?;
            }
            let list = target.open().await?.labels(name.as_deref(), query.as_deref(), start, end).await?;
            output::print_lines(list)
        }
        Cmd::Series(SelectorArgs { selector, target, range }) => {
            let (start, end) = range.resolve()?;
            silt_query::parse_selector(&selector)?;
            let series = target.open().await?.series(&selector, start, end).await?;
            output::print_lines(series.iter().map(|l| l.to_string()))
        }
        Cmd::Stats(SelectorArgs { selector, target, range }) => {
            let (start, end) = range.resolve()?;
            silt_query::parse_selector(&selector)?;
            let s = target.open().await?.stats(&selector, start, end).await?;
            output::print_lines([format!("streams: {}", s.streams), format!("chunks:  {}", s.chunks), format!("entries: {}", s.entries), format!("bytes:   {}", s.bytes)])
        }
        Cmd::Ingest(args) => ingest::run(args).await,
        Cmd::Retention { dry_run, target, config } => maintenance::retention(&target, config, dry_run).await,
        Cmd::Compact { target, config } => maintenance::compact(&target, config).await,
        Cmd::Check { data_dir, repair } => maintenance::check(data_dir, repair).await,
        Cmd::Bench { lines, hours, seed, clients, format, warm_runs, dir, keep_page_cache, no_compact, out } => {
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
            let opts = e2e::Options { silt, lines, hours, seed, clients, formats, warm_runs, dir, drop_caches: !keep_page_cache, compact: !no_compact };
            let report = e2e::run(&opts).await?;
            std::fs::write(&out, serde_json::to_vec_pretty(&report)?).with_context(|| format!("cannot write {}", out.display()))?;
            print!("{}", e2e::table(&report));
            println!("\nJSON report: {}", out.display());
            Ok(())
        }
    }
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
