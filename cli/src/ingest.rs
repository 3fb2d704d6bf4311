//! `silt ingest`: ships files or standard input as entries of one stream, in batches, to
//! a data directory (this process writes it; no server may hold it) or a server (`--addr`,
//! gzip'd JSON pushes, retried on 429 and on connection or server errors).
//!
//! Timestamps: from a JSON field or a regex when asked, else the time the line is read
//! (kept strictly increasing, so repeated lines are not taken for duplicates). A line
//! whose time cannot be read takes the previous line's (a stack trace stays with its
//! message).
//!
//! Resuming: after every acknowledged batch the input's offset is saved in a state file
//! (`$SILT_STATE_DIR`, else `$XDG_STATE_HOME/silt`, else `~/.local/state/silt`); `--resume`
//! starts each file from there, and skips files that were read to the end and have not
//! changed since.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use silt_server::params::now_ns;
use silt_storage::{Labels, MatchOp, PushEntry, PushRequest, PushStream, Store, TenantId};

use crate::source::{Remote, Target};

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Files to read (plain or gzip); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The stream's labels, for example '{job="nginx", env="prod"}'.
    #[arg(long)]
    labels: String,
    #[command(flatten)]
    target: Target,
    /// The server's configuration file (its limits apply), when writing a data directory.
    #[arg(long, env = "SILT_CONFIG")]
    config: Option<PathBuf>,
    /// Read each line's time from this JSON field (`a.b` for nested fields).
    #[arg(long, conflicts_with = "time_regex")]
    time_field: Option<String>,
    /// Read each line's time from the first capture group of this regex (or its match).
    #[arg(long)]
    time_regex: Option<String>,
    /// Most entries per push.
    #[arg(long, default_value_t = 2000)]
    batch_lines: usize,
    /// Most bytes per push.
    #[arg(long, default_value = "1MiB")]
    batch_size: String,
    /// Continue each file where an earlier run stopped.
    #[arg(long)]
    resume: bool,
    /// Where --resume keeps its state [default: $XDG_STATE_HOME/silt or ~/.local/state/silt].
    #[arg(long, env = "SILT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
}

/// How each line's timestamp is found.
enum TimeSource {
    Read,
    Field(Vec<String>),
    Regex(regex::Regex),
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let labels = parse_labels(&args.labels)?;
    let time = match (&args.time_field, &args.time_regex) {
        (Some(f), _) => TimeSource::Field(f.split('.').map(str::to_string).collect()),
        (None, Some(r)) => TimeSource::Regex(regex::Regex::new(r).map_err(|e| {
            // The regex crate draws a caret under the error on extra lines; keep its last one.
            let msg = e.to_string();
            anyhow::anyhow!("invalid --time-regex {r:?}: {}", msg.lines().last().unwrap_or("").trim_start_matches("error: "))
        })?),
        (None, None) => TimeSource::Read,
    };
    let batch_bytes = silt_server::limits::parse_config_size(&args.batch_size).with_context(|| format!("invalid --batch-size {:?}", args.batch_size))? as usize;
    if args.batch_lines == 0 || batch_bytes == 0 {
        bail!("--batch-lines and --batch-size must be positive");
    }
    for f in &args.files {
        if f.as_os_str() != "-" && !f.is_file() {
            bail!("cannot read {}: no such file", f.display());
        }
    }
    let sink = Sink::open(&args).await?;
    let state_path = state_dir(args.state_dir.as_deref())?.join("ingest.json");
    let mut state = State::load(&state_path);
    let total: u64 = args.files.iter().filter(|f| f.as_os_str() != "-").filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    let progress = Progress::new(total, !args.quiet && io::stderr().is_terminal());
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut ctx = Ctx { labels: &labels, time: &time, sink: &sink, batch_lines: args.batch_lines, batch_bytes, progress: &progress, totals: &mut totals, last_ts: i64::MIN };
    for f in &args.files {
        if f.as_os_str() == "-" {
            let stdin = io::stdin();
            ctx.read(Box::new(stdin.lock()), None, &mut state, &state_path, 0).await?;
            continue;
        }
        let key = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()).display().to_string();
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut skip = 0;
        if args.resume {
            if let Some(s) = state.files.get(&key) {
                if s.done && s.len == len {
                    progress.add_bytes(len);
                    if !args.quiet {
                        eprintln!("silt: {} was ingested already (--resume)", f.display());
                    }
                    continue;
                }
                skip = s.offset;
            }
        }
        let file = File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
        let counted = CountingReader { inner: file, count: progress.counter() };
        let mut buffered = BufReader::with_capacity(1 << 20, counted);
        let gz = buffered.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b])).unwrap_or(false);
        let reader: Box<dyn BufRead> = if gz { Box::new(BufReader::with_capacity(1 << 20, flate2::bufread::MultiGzDecoder::new(buffered))) } else { Box::new(buffered) };
        ctx.read(reader, Some((key, len)), &mut state, &state_path, skip).await?;
    }
    sink.finish().await?;
    progress.finish();
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "silt: ingested {} lines ({:.1} MB) in {:.1}s: {:.0} lines/s, {:.1} MB/s",
            totals.accepted,
            totals.bytes as f64 / 1e6,
            secs,
            totals.accepted as f64 / secs,
            totals.bytes as f64 / 1e6 / secs
        );
    }
    if totals.rejected > 0 {
        eprintln!("silt: {} lines were not accepted: {}", totals.rejected, totals.first_error.as_deref().unwrap_or("see the server's limits"));
    }
    Ok(())
}

/// `{job="x", env="y"}`: equality matchers only.
fn parse_labels(s: &str) -> anyhow::Result<Labels> {
    let bad = || format!("invalid --labels {s:?}: use label pairs like '{{job=\"nginx\"}}'");
    let matchers = silt_query::parse_selector(s).with_context(bad)?;
    if matchers.iter().any(|m| m.op != MatchOp::Eq || m.value.is_empty()) {
        bail!(bad());
    }
    Ok(Labels::from_pairs(matchers.iter().map(|m| (m.name.as_str(), m.value.as_str())))?)
}

#[derive(Default)]
struct Totals {
    accepted: u64,
    rejected: u64,
    bytes: u64,
    first_error: Option<String>,
}

struct Ctx<'a> {
    labels: &'a Labels,
    time: &'a TimeSource,
    sink: &'a Sink,
    batch_lines: usize,
    batch_bytes: usize,
    progress: &'a Progress,
    totals: &'a mut Totals,
    last_ts: i64,
}

impl Ctx<'_> {
    /// Reads one input to its end in batches; after each acknowledged batch records the
    /// offset (when the input is a file, `file` = (state key, length)).
    async fn read(&mut self, mut r: Box<dyn BufRead + '_>, file: Option<(String, u64)>, state: &mut State, state_path: &Path, skip: u64) -> anyhow::Result<()> {
        let mut offset = 0u64;
        if skip > 0 {
            offset = io::copy(&mut (&mut r).take(skip), &mut io::sink())?;
        }
        let mut buf = Vec::new();
        let mut batch: Vec<PushEntry> = Vec::with_capacity(self.batch_lines);
        let mut batch_bytes = 0;
        loop {
            buf.clear();
            let n = r.read_until(b'\n', &mut buf)?;
            offset += n as u64;
            if n > 0 {
                let mut line = &buf[..];
                while let Some((b'\n' | b'\r', rest)) = line.split_last() {
                    line = rest;
                }
                if !line.is_empty() {
                    let line = String::from_utf8_lossy(line).into_owned();
                    let ts = self.timestamp(&line);
                    batch_bytes += line.len();
                    batch.push(PushEntry { ts, line, metadata: Vec::new() });
                }
            }
            let end = n == 0;
            if !batch.is_empty() && (end || batch.len() >= self.batch_lines || batch_bytes >= self.batch_bytes) {
                let entries = std::mem::take(&mut batch);
                let lines = entries.len() as u64;
                let pushed = self.sink.push(self.labels, entries).await?;
                self.totals.accepted += pushed.accepted;
                self.totals.rejected += lines - pushed.accepted;
                self.totals.bytes += batch_bytes as u64;
                if self.totals.first_error.is_none() {
                    self.totals.first_error = pushed.message;
                }
                self.progress.lines(self.totals.accepted);
                batch_bytes = 0;
                if let Some((key, len)) = &file {
                    state.files.insert(key.clone(), FileState { offset, len: *len, done: false });
                    state.store(state_path)?;
                }
            }
            if end {
                break;
            }
        }
        if let Some((key, len)) = file {
            state.files.insert(key, FileState { offset, len, done: true });
            state.store(state_path)?;
        }
        Ok(())
    }

    fn timestamp(&mut self, line: &str) -> i64 {
        let found = match self.time {
            TimeSource::Read => None,
            TimeSource::Field(path) => json_field_time(line, path),
            TimeSource::Regex(re) => re.captures(line).and_then(|c| c.get(1).or_else(|| c.get(0))).and_then(|m| parse_any_time(m.as_str())),
        };
        let ts = match (found, self.time) {
            (Some(t), _) => t,
            (None, TimeSource::Read) => now_ns().max(self.last_ts.saturating_add(1)),
            (None, _) if self.last_ts != i64::MIN => self.last_ts,
            (None, _) => now_ns(),
        };
        self.last_ts = ts;
        ts
    }
}

fn json_field_time(line: &str, path: &[String]) -> Option<i64> {
    if !line.trim_start().starts_with('{') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let mut cur = &v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        serde_json::Value::Number(n) => n.as_f64().and_then(unix_by_magnitude),
        serde_json::Value::String(s) => parse_any_time(s),
        _ => None,
    }
}

/// A Unix time in s, ms, µs or ns, told apart by its size (as promtail and Vector do).
fn unix_by_magnitude(v: f64) -> Option<i64> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    // Whole units and the fraction apart: a float holds about 16 digits, so seconds keep
    // microseconds at best (rounded there), finer units their last digits.
    let (scale, frac_unit) = if v < 1e11 {
        (1_000_000_000i64, 1_000i64)
    } else if v < 1e14 {
        (1_000_000, 1)
    } else if v < 1e17 {
        (1_000, 1)
    } else {
        (1, 1)
    };
    let whole = v.trunc();
    let frac = ((v - whole) * (scale / frac_unit) as f64).round() as i64 * frac_unit;
    (whole < 9.2e18 / scale as f64).then(|| whole as i64 * scale + frac)
}

/// RFC 3339, common log formats (`2026-01-15 23:00:00.123`, nginx's
/// `15/Jan/2026:23:00:00 +0000`), or Unix time. Times without a zone are UTC.
fn parse_any_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z", "%d/%b/%Y:%H:%M:%S %z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
            return t.timestamp_nanos_opt();
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y/%m/%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    s.parse::<f64>().ok().and_then(unix_by_magnitude)
}

/// What a push did.
struct Pushed {
    accepted: u64,
    message: Option<String>,
}

enum Sink {
    Remote(Remote),
    Local { store: Store, tenant: TenantId, limits: silt_server::Limits },
}

impl Sink {
    async fn open(args: &IngestArgs) -> anyhow::Result<Sink> {
        let tenant = args.target.tenant()?;
        if let Some(addr) = &args.target.addr {
            return Ok(Sink::Remote(Remote::new(addr, &args.target.org_id, args.target.token.as_deref())?));
        }
        let (store, cfg) = crate::maintenance::open_writable(&args.target, args.config.as_ref(), true).await?;
        // The tenant's limits, but not its rate limits: those share a server between
        // clients, and here the only client is the operator loading files.
        let mut limits = (**cfg.limits.get(&tenant)).clone();
        limits.ingest.ingestion_rate_bytes = f64::INFINITY;
        limits.ingest.per_stream_rate_bytes = f64::INFINITY;
        Ok(Sink::Local { store, tenant, limits })
    }

    async fn push(&self, labels: &Labels, entries: Vec<PushEntry>) -> anyhow::Result<Pushed> {
        let n = entries.len() as u64;
        let mut req = PushRequest { streams: vec![PushStream { labels: labels.clone(), entries }] };
        match self {
            Sink::Local { store, tenant, limits } => {
                silt_server::discover::apply(&mut req, limits);
                let outcome = store.push(tenant, req, &limits.ingest).await?;
                let message = outcome.refused.as_ref().map(|r| r.message.clone()).or_else(|| outcome.invalid_message());
                Ok(Pushed { accepted: (outcome.accepted as u64).min(n), message })
            }
            Sink::Remote(r) => push_remote(r, &req).await.map(|m| Pushed { accepted: if m.is_some() { 0 } else { n }, message: m }),
        }
    }

    /// Local: writes the heads to chunks, so the directory is complete on disk.
    async fn finish(&self) -> anyhow::Result<()> {
        if let Sink::Local { store, .. } = self {
            store.flush().await?;
        }
        Ok(())
    }
}

/// Pushes a batch as gzip'd JSON. `Ok(None)`: accepted; `Ok(Some(msg))`: refused as
/// invalid (400). Retries 429s, server errors and connection failures with backoff.
async fn push_remote(r: &Remote, req: &PushRequest) -> anyhow::Result<Option<String>> {
    let s = &req.streams[0];
    let stream: serde_json::Map<String, serde_json::Value> = s.labels.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
    let values: Vec<serde_json::Value> = s.entries.iter().map(|e| serde_json::json!([e.ts.to_string(), e.line])).collect();
    let json = serde_json::to_vec(&serde_json::json!({"streams": [{"stream": stream, "values": values}]}))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &json)?;
    let body = gz.finish()?;
    let mut delay = Duration::from_millis(250);
    for attempt in 0.. {
        let sent = r
            .request(reqwest::Method::POST, "/loki/api/v1/push")
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(body.clone())
            .send()
            .await;
        let retry_why = match sent {
            Ok(resp) if resp.status().is_success() => return Ok(None),
            Ok(resp) if resp.status().as_u16() == 429 || resp.status().is_server_error() => format!("{}", resp.status()),
            Ok(resp) => return Ok(Some(resp.text().await.unwrap_or_default().trim().to_string())),
            Err(e) => e.to_string(),
        };
        if attempt >= 8 {
            bail!("giving up after {} attempts: {retry_why} (run again with --resume to continue)", attempt + 1);
        }
        tracing::warn!(attempt, error = %retry_why, "push failed; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    unreachable!()
}

/// Where each file stands, for --resume.
#[derive(Default, Serialize, Deserialize)]
struct State {
    files: BTreeMap<String, FileState>,
}

#[derive(Serialize, Deserialize)]
struct FileState {
    /// Bytes of (decompressed) input acknowledged.
    offset: u64,
    /// The file's length when it was read.
    len: u64,
    done: bool,
}

impl State {
    fn load(path: &Path) -> State {
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn store(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?).and_then(|()| std::fs::rename(&tmp, path)).with_context(|| format!("cannot write {}", path.display()))
    }
}

fn state_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => match (std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME")) {
            (Some(x), _) if !x.is_empty() => PathBuf::from(x).join("silt"),
            (_, Some(h)) => PathBuf::from(h).join(".local/state/silt"),
            _ => std::env::temp_dir().join("silt-state"),
        },
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Counts the bytes read from a file, for the progress bar.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The progress bar on a terminal: bytes of the files read, lines/s, MB/s, ETA.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    read: Arc<AtomicU64>,
    started: Instant,
}

impl Progress {
    fn new(total: u64, show: bool) -> Progress {
        let bar = show.then(|| {
            let bar = if total > 0 { indicatif::ProgressBar::new(total) } else { indicatif::ProgressBar::new_spinner() };
            let template = if total > 0 {
                "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}"
            } else {
                "{spinner} {elapsed_precise} {bytes} {bytes_per_sec} {msg}"
            };
            bar.set_style(indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()).progress_chars("=> "));
            bar
        });
        Progress { bar, read: Arc::default(), started: Instant::now() }
    }

    fn counter(&self) -> Arc<AtomicU64> {
        self.read.clone()
    }

    fn add_bytes(&self, n: u64) {
        self.read.fetch_add(n, Ordering::Relaxed);
    }

    fn lines(&self, lines: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.read.load(Ordering::Relaxed));
            let rate = lines as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{lines} lines, {rate:.0} lines/s"));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.read.load(Ordering::Relaxed));
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_common_forms() {
        let t = 1_768_518_000_000_000_000;
        for s in ["2026-01-15T23:00:00Z", "2026-01-15 23:00:00", "2026-01-15T23:00:00.000", "15/Jan/2026:23:00:00 +0000", "1768518000", "1768518000000", "1768518000000000000"] {
            assert_eq!(parse_any_time(s), Some(t), "{s}");
        }
        assert_eq!(parse_any_time("2026-01-15 23:00:00.5"), Some(t + 500_000_000));
        assert_eq!(parse_any_time("soon"), None);
        assert_eq!(json_field_time(r#"{"a":{"ts":1768518000.25}}"#, &["a".into(), "ts".into()]), Some(t + 250_000_000));
        assert_eq!(json_field_time(r#"{"ts":"2026-01-15T23:00:00Z"}"#, &["ts".into()]), Some(t));
        assert_eq!(json_field_time("not json", &["ts".into()]), None);
        assert!(parse_labels(r#"{job="x", env="y"}"#).is_ok());
        assert!(parse_labels(r#"{job=~"x"}"#).is_err());
        assert!(parse_labels("job=x").is_err());
    }
}
