//! Where the CLI reads from: a data directory opened read-only in this process (no server
//! needed, safe while one runs), or a silt/Loki server over its HTTP API (`--addr`).
//! Both answer with the query engine's result types, so printing does not care which.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use silt_query::ast::Expr;
use silt_query::duration::parse_duration;
use silt_query::{Direction, Engine, EntryResult, LogQuery, MetricResult, StreamResult};
use silt_server::config::DEFAULT_DATA_DIR;
use silt_server::params::{now_ns, parse_time};
use silt_storage::{Labels, Store, StoreConfig, TenantId};

/// Which data: a data directory, or a server; and the tenant.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// Data directory to read directly [env: SILT_DATA_DIR].
    #[arg(long, env = "SILT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// A server to ask instead (for example http://127.0.0.1:3100).
    #[arg(long, env = "SILT_ADDR")]
    pub addr: Option<String>,
    /// Tenant (X-Scope-OrgID).
    #[arg(long, env = "SILT_ORG_ID", default_value = silt_storage::DEFAULT_TENANT)]
    pub org_id: String,
    /// Bearer token for the server.
    #[arg(long, env = "SILT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Target {
    pub fn tenant(&self) -> anyhow::Result<TenantId> {
        self.org_id.parse().context("invalid --org-id")
    }

    /// Connects: opens the directory read-only or prepares the HTTP client.
    pub async fn open(&self) -> anyhow::Result<Source> {
        let tenant = self.tenant()?;
        if let Some(addr) = &self.addr {
            return Ok(Source::Remote(Remote::new(addr, &self.org_id, self.token.as_deref())?));
        }
        let store = open_read_only(self.data_dir.clone()).await?;
        Ok(Source::Local { engine: Engine::new(store), tenant })
    }
}

/// Opens a data directory read-only, with the delete-query compiler so that delete
/// requests recorded there hide their entries here too.
pub async fn open_read_only(dir: PathBuf) -> anyhow::Result<Store> {
    let mut cfg = StoreConfig::new(dir.clone());
    cfg.delete_compiler = Some(silt_query::delete::delete_compiler());
    tokio::task::spawn_blocking(move || Store::open_read_only(cfg)).await?.with_context(|| format!("cannot open {}", dir.display()))
}

/// The time range: `--from`/`--to`, or the last `--since`.
#[derive(clap::Args, Clone)]
pub struct Range {
    /// Start of the range: RFC3339 or Unix time (s or ns). Default: --to minus --since.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range (exclusive). Default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// How far back from --to to look when --from is not given.
    #[arg(long, default_value = "1h")]
    pub since: String,
}

impl Range {
    pub fn resolve(&self) -> anyhow::Result<(i64, i64)> {
        let end = match &self.to {
            Some(t) => parse_time(t).with_context(|| format!("invalid --to {t:?}: use RFC3339 or Unix time"))?,
            None => now_ns(),
        };
        let start = match &self.from {
            Some(t) => parse_time(t).with_context(|| format!("invalid --from {t:?}: use RFC3339 or Unix time"))?,
            None => {
                let since = parse_duration(&self.since).filter(|d| *d >= 0).with_context(|| format!("invalid --since {:?}: use a duration like 30m or 24h", self.since))?;
                end.checked_sub(since).with_context(|| format!("--since {:?} reaches too far back", self.since))?
            }
        };
        if end < start {
            bail!("--to is before --from");
        }
        if end.checked_sub(start).is_none() {
            bail!("the time range is too long");
        }
        Ok((start, end))
    }
}

/// Totals of `silt stats`.
pub struct Stats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

pub enum Source {
    Local { engine: Engine, tenant: TenantId },
    Remote(Remote),
}

impl Source {
    pub async fn log_query(&self, query: &str, start: i64, end: i64, limit: usize, direction: Direction) -> anyhow::Result<Vec<StreamResult>> {
        match self {
            Source::Local { engine, tenant } => {
                let Expr::Log(expr) = silt_query::parse(query)? else { bail!("not a log query") };
                let q = LogQuery { expr, start, end, limit, direction, interval: 0, categorize: false };
                Ok(engine.log_query(std::slice::from_ref(tenant), &q).await?)
            }
            Source::Remote(r) => {
                let dir = if direction == Direction::Forward { "forward" } else { "backward" };
                let body = r
                    .get("/loki/api/v1/query_range", &[("query", query), ("start", &start.to_string()), ("end", &end.to_string()), ("limit", &limit.to_string()), ("direction", dir)])
                    .await?;
                parse_streams(&body["data"])
            }
        }
    }

    pub async fn metric_query(&self, query: &str, start: i64, end: i64, step: i64) -> anyhow::Result<MetricResult> {
        match self {
            Source::Local { engine, tenant } => {
                let Expr::Metric(m) = silt_query::parse(query)? else { bail!("not a metric query") };
                Ok(engine.metric_query(std::slice::from_ref(tenant), &m, start, end, step).await?)
            }
            Source::Remote(r) => {
                let step_s = format!("{}", step as f64 / 1e9);
                let body = r.get("/loki/api/v1/query_range", &[("query", query), ("start", &start.to_string()), ("end", &end.to_string()), ("step", &step_s)]).await?;
                parse_metric(&body["data"])
            }
        }
    }

    /// Label names, or the values of `name`, of the streams matching `selector`.
    pub async fn labels(&self, name: Option<&str>, selector: Option<&str>, start: i64, end: i64) -> anyhow::Result<Vec<String>> {
        match self {
            Source::Local { engine, tenant } => {
                let matchers = match selector {
                    Some(q) => silt_query::parse_selector(q)?,
                    None => Vec::new(),
                };
                let store = engine.store();
                Ok(match name {
                    Some(n) => store.label_values(tenant, n, &matchers, start, end),
                    None => store.label_names(tenant, &matchers, start, end),
                })
            }
            Source::Remote(r) => {
                let path = match name {
                    Some(n) => format!("/loki/api/v1/label/{n}/values"),
                    None => "/loki/api/v1/labels".to_string(),
                };
                let (s, e) = (start.to_string(), end.to_string());
                let mut params = vec![("start", s.as_str()), ("end", e.as_str())];
                if let Some(q) = selector {
                    params.push(("query", q));
                }
                let body = r.get(&path, &params).await?;
                Ok(body["data"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default())
            }
        }
    }

    pub async fn series(&self, selector: &str, start: i64, end: i64) -> anyhow::Result<Vec<Labels>> {
        match self {
            Source::Local { engine, tenant } => Ok(engine.store().series(tenant, &silt_query::parse_selector(selector)?, start, end)),
            Source::Remote(r) => {
                let body = r.get("/loki/api/v1/series", &[("match[]", selector), ("start", &start.to_string()), ("end", &end.to_string())]).await?;
                let mut out = Vec::new();
                for s in body["data"].as_array().into_iter().flatten() {
                    out.push(labels_of(s)?);
                }
                out.sort();
                Ok(out)
            }
        }
    }

    pub async fn stats(&self, selector: &str, start: i64, end: i64) -> anyhow::Result<Stats> {
        match self {
            Source::Local { engine, tenant } => {
                let matchers = silt_query::parse_selector(selector)?;
                let (vols, parts) = engine.volumes(std::slice::from_ref(tenant), &matchers, start, end).await?;
                Ok(Stats {
                    streams: vols.len() as u64,
                    chunks: if vols.is_empty() { 0 } else { parts as u64 },
                    entries: vols.iter().map(|v| v.entries).sum(),
                    bytes: vols.iter().map(|v| v.bytes).sum(),
                })
            }
            Source::Remote(r) => {
                let b = r.get("/loki/api/v1/index/stats", &[("query", selector), ("start", &start.to_string()), ("end", &end.to_string())]).await?;
                let n = |k: &str| b[k].as_u64().unwrap_or(0);
                Ok(Stats { streams: n("streams"), chunks: n("chunks"), entries: n("entries"), bytes: n("bytes") })
            }
        }
    }
}

/// A server's HTTP API, with the tenant and token on every request.
pub struct Remote {
    client: reqwest::Client,
    base: String,
    org_id: String,
    token: Option<String>,
}

impl Remote {
    pub fn new(addr: &str, org_id: &str, token: Option<&str>) -> anyhow::Result<Remote> {
        let base = if addr.contains("://") { addr.trim_end_matches('/').to_string() } else { format!("http://{}", addr.trim_end_matches('/')) };
        reqwest::Url::parse(&base).with_context(|| format!("invalid --addr {addr:?}"))?;
        let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Remote { client, base, org_id: org_id.to_string(), token: token.map(str::to_string) })
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.base)).header("X-Scope-OrgID", &self.org_id);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the server's message.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = req.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("the server answered {}: {}", status.as_u16(), text.trim());
        }
        Ok(resp)
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let resp = self.send(self.request(reqwest::Method::GET, path).query(params)).await?;
        resp.json().await.context("the server's answer is not JSON")
    }
}

fn labels_of(v: &Value) -> anyhow::Result<Labels> {
    let obj = v.as_object().context("labels are not an object")?;
    Ok(Labels::from_pairs(obj.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))))?)
}

fn parse_streams(data: &Value) -> anyhow::Result<Vec<StreamResult>> {
    if data["resultType"] != "streams" {
        bail!("expected a log query answer (streams), got {}", data["resultType"]);
    }
    let mut out = Vec::new();
    for s in data["result"].as_array().into_iter().flatten() {
        let labels = labels_of(&s["stream"])?;
        let mut entries = Vec::new();
        for v in s["values"].as_array().into_iter().flatten() {
            let ts = v[0].as_str().and_then(|t| t.parse().ok()).context("bad entry timestamp")?;
            let line = v[1].as_str().unwrap_or("").to_string();
            entries.push(EntryResult { ts, line, metadata: Vec::new(), parsed: Vec::new() });
        }
        out.push(StreamResult { labels, entries });
    }
    Ok(out)
}

fn parse_metric(data: &Value) -> anyhow::Result<MetricResult> {
    let sample = |v: &Value| -> anyhow::Result<(i64, f64)> {
        let t = v[0].as_f64().context("bad sample time")?;
        let x = v[1].as_str().and_then(|s| parse_float(s)).context("bad sample value")?;
        Ok(((t * 1e9).round() as i64, x))
    };
    match data["resultType"].as_str() {
        Some("matrix") => {
            let mut out = Vec::new();
            for s in data["result"].as_array().into_iter().flatten() {
                let pts = s["values"].as_array().into_iter().flatten().map(sample).collect::<anyhow::Result<Vec<_>>>()?;
                out.push((labels_of(&s["metric"])?, pts));
            }
            Ok(MetricResult::Matrix(out))
        }
        Some("vector") => {
            let mut t = 0;
            let mut out = Vec::new();
            for s in data["result"].as_array().into_iter().flatten() {
                let (ts, v) = sample(&s["value"])?;
                t = ts;
                out.push((labels_of(&s["metric"])?, v));
            }
            Ok(MetricResult::Vector(t, out))
        }
        Some("scalar") => {
            let (t, v) = sample(&data["result"])?;
            Ok(MetricResult::Scalar(t, v))
        }
        other => bail!("unexpected result type {other:?}"),
    }
}

/// Prometheus' value strings, including `+Inf`, `-Inf` and `NaN`.
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}
