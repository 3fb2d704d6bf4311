//! The end-to-end load benchmark behind `silt bench`: generate the dataset, run `silt serve`
//! as a child process on a fresh directory, push the dataset over HTTP from concurrent
//! clients with durable acks, flush, measure the disk, run the compaction pass (which a
//! server runs every `compaction_interval`) and measure the disk again, then run a query
//! mix cold (fresh server, page cache dropped where the OS lets us) and warm (median of
//! N), and report latencies and the server's peak RSS as a table and as JSON.
//!
//! The server runs as its own process so that its memory is measured alone (VmHWM from
//! `/proc`) and so that "cold" really means a new process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::dataset::{Dataset, Slice};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Loki's JSON push body.
    Json,
    /// Loki's protobuf push body, snappy-compressed (what promtail and Alloy send).
    Protobuf,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The `silt` binary that serves.
    pub silt: PathBuf,
    pub lines: u64,
    /// Time span the lines are spread over, ending now.
    pub hours: f64,
    pub seed: u64,
    pub clients: usize,
    /// Each format is ingested into its own directory; the queries run on the last one.
    pub formats: Vec<Format>,
    /// Warm runs per query (the median is reported).
    pub warm_runs: usize,
    /// Working directory (data directories, server logs, config).
    pub dir: PathBuf,
    /// Try to drop the OS page cache before each cold query (Linux, needs root).
    pub drop_caches: bool,
    /// Run the compaction pass after ingest, so the queries see the store as it settles.
    pub compact: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ingest {
    pub format: Format,
    pub bodies: usize,
    pub body_bytes: u64,
    pub seconds: f64,
    pub lines_per_s: f64,
    pub raw_mb_per_s: f64,
    pub flush_seconds: f64,
    pub disk_bytes: u64,
    pub disk_per_raw_byte: f64,
    pub peak_rss_bytes: Option<u64>,
    /// The compaction pass after ingest, when it ran.
    pub compaction: Option<Compaction>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Compaction {
    pub seconds: f64,
    pub disk_bytes: u64,
    pub disk_per_raw_byte: f64,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryTiming {
    pub id: String,
    pub name: String,
    pub request: String,
    pub cold_s: f64,
    pub warm_median_s: f64,
    /// What came back: entries, series or values.
    pub result: String,
    pub loki_s: Option<f64>,
    pub target_s: Option<f64>,
    /// Peak RSS of the server that ran this query (cold and warm runs).
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lines: u64,
    pub raw_bytes: u64,
    pub streams: usize,
    pub hours: f64,
    pub clients: usize,
    pub seed: u64,
    pub ingest: Vec<Ingest>,
    pub page_cache_dropped: bool,
    pub peak_rss_queries_bytes: Option<u64>,
    pub queries: Vec<QueryTiming>,
}

/// Grafana Loki 3.x on a 2-core machine with the same shape of data (issue 7's table):
/// ingest lines/s, disk bytes per raw byte, peak RSS (ingest, queries).
const LOKI_LINES_PER_S: f64 = 126_700.0;
const LOKI_DISK_RATIO: f64 = 0.23;
const TARGET_LINES_PER_S: f64 = 630_000.0;
const TARGET_DISK_RATIO: f64 = 0.10;

/// One query of the mix.
struct Spec {
    id: &'static str,
    name: &'static str,
    req: Request,
    loki_s: f64,
    target_s: f64,
}

enum Request {
    Range { query: String, limit: usize },
    Labels,
    LabelValues(&'static str),
}

impl Request {
    fn describe(&self) -> String {
        match self {
            Request::Range { query, limit } => format!("{query} (limit {limit})"),
            Request::Labels => "GET /loki/api/v1/labels".into(),
            Request::LabelValues(n) => format!("GET /loki/api/v1/label/{n}/values"),
        }
    }
}

fn query_mix(ds: &Dataset) -> Vec<Spec> {
    let needle = ds.needle();
    let range = |query: String, limit| Request::Range { query, limit };
    vec![
        Spec { id: "Q1", name: "needle in one service", req: range(format!(r#"{{service="api"}} |= "{needle}""#), 100), loki_s: 0.64, target_s: 0.010 },
        Spec { id: "Q2", name: "needle across all streams", req: range(format!(r#"{{env=~".+"}} |= "{needle}""#), 100), loki_s: 1.23, target_s: 0.010 },
        Spec {
            id: "Q3",
            name: "regex line filter",
            req: range(r#"{service="nginx"} |~ `/api/v1/(orders|cart)/[0-9]+ HTTP/1\.1" 50[0-9]`"#.into(), 1000),
            loki_s: 0.13,
            target_s: 0.040,
        },
        Spec {
            id: "Q4",
            name: "json + numeric label filters",
            req: range(r#"{service="api"} | json | status >= 500 and duration_ms > 100"#.into(), 100),
            loki_s: 2.12,
            target_s: 0.15,
        },
        Spec {
            id: "Q5",
            name: "logfmt + label filter",
            req: range(r#"{service="worker"} | logfmt | queue="payments" and attempt >= 3"#.into(), 100),
            loki_s: 0.36,
            target_s: 0.10,
        },
        Spec {
            id: "Q6",
            name: "sum by (service) count_over_time 1m",
            req: range(r#"sum by (service) (count_over_time({env=~".+"}[1m]))"#.into(), 100),
            loki_s: 2.11,
            target_s: 0.05,
        },
        Spec {
            id: "Q7",
            name: "topk(5) by path, json, rate 5m",
            req: range(r#"topk(5, sum by (path) (rate({service="api"} | json [5m])))"#.into(), 100),
            loki_s: 2.53,
            target_s: 0.30,
        },
        Spec {
            id: "Q8",
            name: "quantile_over_time 0.99 unwrap 5m",
            req: range(r#"quantile_over_time(0.99, {service="api"} | json | unwrap duration_ms [5m]) by (cluster)"#.into(), 100),
            loki_s: 2.08,
            target_s: 0.30,
        },
        Spec { id: "Q9", name: "newest 100 lines of a stream", req: range(ds.needle_stream().to_string(), 100), loki_s: 0.014, target_s: 0.010 },
        Spec { id: "Q10a", name: "labels", req: Request::Labels, loki_s: 0.002, target_s: 0.002 },
        Spec { id: "Q10b", name: "label values", req: Request::LabelValues("pod"), loki_s: 0.002, target_s: 0.002 },
    ]
}

pub async fn run(opts: &Options) -> Result<Report> {
    if opts.lines == 0 || opts.clients == 0 || opts.formats.is_empty() {
        bail!("need at least one line, one client and one format");
    }
    std::fs::create_dir_all(&opts.dir).with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let now = chrono::Utc::now().timestamp_nanos_opt().context("clock out of range")?;
    let span = (opts.hours * 3600e9) as i64;
    // The data ends a minute ago: recent enough for every default limit on sample age.
    let ds = Dataset::new(opts.seed, opts.lines, now - 60_000_000_000 - span, span);
    let config = opts.dir.join("silt-bench.toml");
    // Durable acks and Loki's defaults, except the rate limits and the query timeout: a
    // load test measures the engine, not the limiter (Loki's figures were taken so too).
    std::fs::write(
        &config,
        "# written by `silt bench`\n[storage]\nwal_sync = true\n[limits]\ningestion_rate_mb = 0\nper_stream_rate_limit = 0\nquery_timeout = \"0\"\n",
    )?;
    let log = opts.dir.join("server.log");

    eprintln!("generating {} lines in {} streams over {}h (seed {})...", ds.lines, ds.streams.len(), opts.hours, ds.seed);
    let slices = generate(&ds);
    let raw_bytes: u64 = slices.iter().map(|s| s.raw_bytes).sum();

    let mut ingests = Vec::new();
    let mut data_dir = PathBuf::new();
    for &format in &opts.formats {
        data_dir = opts.dir.join(format!("data-{}", serde_json::to_value(format)?.as_str().unwrap_or("x")));
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)?;
        }
        let bodies: Vec<Vec<u8>> = slices.iter().map(|s| encode(&ds, s, format)).collect::<Result<_>>()?;
        let body_bytes = bodies.iter().map(|b| b.len() as u64).sum();
        let server = ServerProcess::start(&opts.silt, &data_dir, &config, &log).await?;
        eprintln!("pushing {} {format:?} bodies ({:.0} MB) from {} clients...", bodies.len(), body_bytes as f64 / 1e6, opts.clients);
        let seconds = push_all(&server.base, bodies, format, opts.clients).await?;
        let t = Instant::now();
        let client = reqwest::Client::new();
        let r = client.post(format!("{}/flush", server.base)).send().await?;
        if !r.status().is_success() {
            bail!("flush failed: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        let flush_seconds = t.elapsed().as_secs_f64();
        let peak_rss_bytes = server.stop().await?;
        let disk_bytes = dir_size(&data_dir)?;
        let compaction = if opts.compact { Some(compact(opts, &data_dir, &config, &log, raw_bytes).await?) } else { None };
        ingests.push(Ingest {
            format,
            bodies: slices.len(),
            body_bytes,
            seconds,
            lines_per_s: ds.lines as f64 / seconds,
            raw_mb_per_s: raw_bytes as f64 / 1e6 / seconds,
            flush_seconds,
            disk_bytes,
            disk_per_raw_byte: disk_bytes as f64 / raw_bytes as f64,
            peak_rss_bytes,
            compaction,
        });
    }
    drop(slices);

    let mut queries = Vec::new();
    let mut dropped_all = opts.drop_caches;
    let mut peak_queries: Option<u64> = None;
    let (start, end) = (ds.start_ns, ds.end_ns());
    for spec in query_mix(&ds) {
        if opts.drop_caches {
            dropped_all &= drop_page_cache();
        }
        let server = ServerProcess::start(&opts.silt, &data_dir, &config, &log).await?;
        let client = reqwest::Client::new();
        let (cold_s, result) = run_query(&client, &server.base, &spec.req, start, end).await?;
        let mut warm = Vec::new();
        for _ in 0..opts.warm_runs {
            warm.push(run_query(&client, &server.base, &spec.req, start, end).await?.0);
        }
        warm.sort_by(f64::total_cmp);
        let warm_median_s = warm.get(warm.len() / 2).copied().unwrap_or(cold_s);
        let peak_rss_bytes = server.stop().await?;
        if let Some(p) = peak_rss_bytes {
            peak_queries = Some(peak_queries.map_or(p, |q| q.max(p)));
        }
        eprintln!("{} {:<36} cold {:>9.4}s  warm {:>9.4}s  {result}", spec.id, spec.name, cold_s, warm_median_s);
        queries.push(QueryTiming {
            id: spec.id.into(),
            name: spec.name.into(),
            request: spec.req.describe(),
            cold_s,
            warm_median_s,
            result,
            loki_s: Some(spec.loki_s),
            target_s: Some(spec.target_s),
            peak_rss_bytes,
        });
    }
    Ok(Report {
        lines: ds.lines,
        raw_bytes,
        streams: ds.streams.len(),
        hours: opts.hours,
        clients: opts.clients,
        seed: ds.seed,
        ingest: ingests,
        page_cache_dropped: dropped_all,
        peak_rss_queries_bytes: peak_queries,
        queries,
    })
}

/// Runs the maintenance pass on a fresh server (`POST /compact`): the flushed chunks of
/// each day are merged and recompressed, as a running server does every
/// `compaction_interval`.
async fn compact(opts: &Options, data_dir: &Path, config: &Path, log: &Path, raw_bytes: u64) -> Result<Compaction> {
    let server = ServerProcess::start(&opts.silt, data_dir, config, log).await?;
    eprintln!("compacting...");
    let t = Instant::now();
    let r = reqwest::Client::new().post(format!("{}/compact", server.base)).send().await?;
    if !r.status().is_success() {
        bail!("compaction failed: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let seconds = t.elapsed().as_secs_f64();
    let peak_rss_bytes = server.stop().await?;
    let disk_bytes = dir_size(data_dir)?;
    Ok(Compaction { seconds, disk_bytes, disk_per_raw_byte: disk_bytes as f64 / raw_bytes as f64, peak_rss_bytes })
}

/// The report as a table, next to Loki's figures and silt's targets.
pub fn table(r: &Report) -> String {
    use std::fmt::Write;
    let mb = |b: u64| b as f64 / 1e6;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "silt end-to-end benchmark: {} lines, {:.1} MB raw, {} streams over {}h, {} clients, seed {}",
        r.lines,
        mb(r.raw_bytes),
        r.streams,
        r.hours,
        r.clients,
        r.seed
    );
    let _ = writeln!(s, "\n{:<28} {:>14} {:>14} {:>14}", "measure", "silt", "Loki 3.x", "target");
    for i in &r.ingest {
        let _ = writeln!(
            s,
            "{:<28} {:>14} {:>14} {:>14}",
            format!("ingest {:?}, lines/s", i.format).to_lowercase(),
            format!("{:.0}", i.lines_per_s),
            format!("{LOKI_LINES_PER_S:.0}"),
            format!(">= {TARGET_LINES_PER_S:.0}")
        );
        let _ = writeln!(s, "{:<28} {:>14}", "  raw MB/s", format!("{:.1}", i.raw_mb_per_s));
        let _ = writeln!(s, "{:<28} {:>14}", "  flush after ingest, s", format!("{:.2}", i.flush_seconds));
        // The disk, next to Loki's and the target, as flushed and as compacted.
        let disk = |s: &mut String, when: &str, ratio: f64, bytes: u64| {
            let _ = writeln!(
                s,
                "{:<28} {:>14} {:>14} {:>14}",
                format!("  disk per raw byte, {when}"),
                format!("{ratio:.3}"),
                format!("{LOKI_DISK_RATIO:.2}"),
                format!("<= {TARGET_DISK_RATIO:.2}")
            );
            let _ = writeln!(s, "{:<28} {:>14}", format!("  disk MB, {when}"), format!("{:.1}", mb(bytes)));
        };
        disk(&mut s, "flushed", i.disk_per_raw_byte, i.disk_bytes);
        let _ = writeln!(s, "{:<28} {:>14} {:>14} {:>14}", "  peak RSS ingest, MB", opt_mb(i.peak_rss_bytes), "751", "<= 300");
        if let Some(c) = &i.compaction {
            let _ = writeln!(s, "{:<28} {:>14}", "  compaction after flush, s", format!("{:.2}", c.seconds));
            disk(&mut s, "compacted", c.disk_per_raw_byte, c.disk_bytes);
            let _ = writeln!(s, "{:<28} {:>14}", "  peak RSS compaction, MB", opt_mb(c.peak_rss_bytes));
        }
    }
    let _ = writeln!(s, "{:<28} {:>14} {:>14} {:>14}", "peak RSS queries, MB", opt_mb(r.peak_rss_queries_bytes), "1200", "<= 300");
    let _ = writeln!(
        s,
        "\n{:<6} {:<36} {:>10} {:>10} {:>9} {:>9} {:>7}  result{}",
        "query",
        "",
        "cold s",
        "warm s",
        "Loki s",
        "target",
        "RSS MB",
        if r.page_cache_dropped { "" } else { "   (page cache NOT dropped before cold runs)" }
    );
    for q in &r.queries {
        let _ = writeln!(
            s,
            "{:<6} {:<36} {:>10.4} {:>10.4} {:>9} {:>9} {:>7}  {}",
            q.id,
            q.name,
            q.cold_s,
            q.warm_median_s,
            q.loki_s.map_or(String::new(), |v| format!("{v}")),
            q.target_s.map_or(String::new(), |v| format!("{v}")),
            opt_mb(q.peak_rss_bytes),
            q.result
        );
    }
    s
}

fn opt_mb(b: Option<u64>) -> String {
    b.map_or_else(|| "n/a".into(), |b| format!("{:.0}", b as f64 / 1e6))
}

/// Generates every slice, on all cores.
fn generate(ds: &Dataset) -> Vec<Slice> {
    let n = ds.slices();
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()) as u64;
    let mut parts: Vec<Vec<(u64, Slice)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|t| scope.spawn(move || (t..n).step_by(threads as usize).map(|k| (k, ds.slice(k))).collect())).collect();
        handles.into_iter().map(|h| h.join().expect("generator thread")).collect()
    });
    let mut all: Vec<(u64, Slice)> = parts.iter_mut().flat_map(std::mem::take).collect();
    all.sort_by_key(|(k, _)| *k);
    all.into_iter().map(|(_, s)| s).collect()
}

/// A push body for one slice.
fn encode(ds: &Dataset, slice: &Slice, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Json => {
            #[derive(Serialize)]
            struct Push<'a> {
                streams: Vec<Stream<'a>>,
            }
            #[derive(Serialize)]
            struct Stream<'a> {
                stream: BTreeMap<&'a str, &'a str>,
                values: Vec<(String, &'a str)>,
            }
            let streams = slice
                .streams
                .iter()
                .map(|(s, entries)| Stream {
                    stream: ds.streams[*s].labels.iter().collect(),
                    values: entries.iter().map(|(ts, line)| (ts.to_string(), line.as_str())).collect(),
                })
                .collect();
            Ok(serde_json::to_vec(&Push { streams })?)
        }
        Format::Protobuf => {
            use silt_server::proto::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};
            let req = PushRequest {
                streams: slice
                    .streams
                    .iter()
                    .map(|(s, entries)| StreamAdapter {
                        labels: ds.streams[*s].labels.to_string(),
                        entries: entries
                            .iter()
                            .map(|(ts, line)| EntryAdapter {
                                timestamp: Some(Timestamp { seconds: ts.div_euclid(1_000_000_000), nanos: ts.rem_euclid(1_000_000_000) as i32 }),
                                line: line.as_bytes().to_vec(),
                                structured_metadata: Vec::new(),
                            })
                            .collect(),
                        hash: 0,
                    })
                    .collect(),
            };
            let raw = prost::Message::encode_to_vec(&req);
            Ok(snap::raw::Encoder::new().compress_vec(&raw)?)
        }
    }
}

/// Pushes every body from `clients` concurrent connections; returns the wall time.
async fn push_all(base: &str, bodies: Vec<Vec<u8>>, format: Format, clients: usize) -> Result<f64> {
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(bodies.into_iter().map(bytes::Bytes::from).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let content_type = match format {
        Format::Json => "application/json",
        Format::Protobuf => "application/x-protobuf",
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (bodies, next, url) = (bodies.clone(), next.clone(), format!("{base}/loki/api/v1/push"));
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { return Ok::<(), anyhow::Error>(()) };
                    let r = client.post(&url).header("content-type", content_type).body(body.clone()).send().await?;
                    if r.status().as_u16() != 204 {
                        bail!("push {i} answered {}: {}", r.status(), r.text().await.unwrap_or_default());
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs one request; returns its latency and a summary of the answer.
async fn run_query(client: &reqwest::Client, base: &str, req: &Request, start: i64, end: i64) -> Result<(f64, String)> {
    let (start_s, end_s) = (start.to_string(), end.to_string());
    let mut params: Vec<(&str, String)> = vec![("start", start_s), ("end", end_s)];
    let url = match req {
        Request::Range { query, limit } => {
            params.push(("query", query.clone()));
            params.push(("limit", limit.to_string()));
            format!("{base}/loki/api/v1/query_range")
        }
        Request::Labels => format!("{base}/loki/api/v1/labels"),
        Request::LabelValues(name) => format!("{base}/loki/api/v1/label/{name}/values"),
    };
    let t = Instant::now();
    let r = client.get(&url).query(&params).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    let elapsed = t.elapsed().as_secs_f64();
    if !status.is_success() {
        bail!("{} answered {status}: {}", req.describe(), String::from_utf8_lossy(&body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok((elapsed, summarize(&v)))
}

fn summarize(v: &serde_json::Value) -> String {
    let data = &v["data"];
    match data["resultType"].as_str() {
        Some("streams") => {
            let result = data["result"].as_array().map_or(&[][..], Vec::as_slice);
            let entries: usize = result.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum();
            format!("{entries} entries in {} streams", result.len())
        }
        Some("matrix") => {
            let result = data["result"].as_array().map_or(&[][..], Vec::as_slice);
            let points: usize = result.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum();
            format!("{} series, {points} points", result.len())
        }
        Some(other) => format!("{other}: {}", data["result"].as_array().map_or(0, Vec::len)),
        None => format!("{} values", data.as_array().map_or(0, Vec::len)),
    }
}

/// Total size of the files under `dir`.
fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        total += if meta.is_dir() { dir_size(&e.path())? } else { meta.len() };
    }
    Ok(total)
}

/// Writes dirty pages out and asks Linux to drop clean ones. False where not permitted.
fn drop_page_cache() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        std::fs::write("/proc/sys/vm/drop_caches", "1\n").is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// `silt serve` as a child process.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    async fn start(silt: &Path, data_dir: &Path, config: &Path, log: &Path) -> Result<ServerProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(silt)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot run {}", silt.display()))?;
        let mut server = ServerProcess { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = client.get(format!("{}/ready", server.base)).send().await {
                if r.status().is_success() {
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("silt serve exited with {status}; see {}", log.display());
            }
            if Instant::now() > deadline {
                bail!("silt serve did not become ready in 5 minutes; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident set size so far (Linux: VmHWM).
    fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Stops the server gracefully (SIGTERM: it finishes requests and flushes); returns
    /// its peak RSS.
    async fn stop(mut self) -> Result<Option<u64>> {
        let peak = self.peak_rss();
        #[cfg(unix)]
        {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
        #[cfg(not(unix))]
        let _ = self.child.kill();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("silt serve stopped with {status}");
                }
                return Ok(peak);
            }
            if Instant::now() > deadline {
                bail!("silt serve did not stop within 5 minutes of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only reached with the child still running on an error path.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
