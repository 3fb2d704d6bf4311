//! The end-to-end benchmark's dataset: realistic lines of six services in 31 streams,
//! spread evenly over a time span, generated deterministically from a seed.
//!
//! | service  | format                         | pods | share |
//! |----------|--------------------------------|------|-------|
//! | api      | JSON access log                | 8    | 30 %  |
//! | auth     | JSON                           | 4    | 10 %  |
//! | worker   | logfmt                         | 6    | 20 %  |
//! | postgres | PostgreSQL text log            | 3    | 10 %  |
//! | nginx    | nginx combined log             | 6    | 20 %  |
//! | kubelet  | klog                           | 4    | 10 %  |
//!
//! Streams are labelled `service`, `namespace`, `pod`, `cluster` and `env`. Lines average
//! about 270 bytes. The dataset is cut into slices of [`LINES_PER_SLICE`] consecutive lines
//! (about 1 MiB as a JSON push); each slice has its own seed, so slices can be generated in
//! parallel and the content does not depend on how many clients push it.
//!
//! One api line in the middle carries a request id found nowhere else: [`Dataset::needle`].

use std::fmt::Write;

use silt_storage::Labels;

use crate::Rng;

/// Lines per slice: about 1 MiB as a JSON push body.
pub const LINES_PER_SLICE: u64 = 3_500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Auth,
    Worker,
    Postgres,
    Nginx,
    Kubelet,
}

/// `(service, kind, namespace, pods, share in %)`.
const SERVICES: &[(&str, Kind, &str, usize, u64)] = &[
    ("api", Kind::Api, "shop", 8, 30),
    ("auth", Kind::Auth, "shop", 4, 10),
    ("worker", Kind::Worker, "jobs", 6, 20),
    ("postgres", Kind::Postgres, "db", 3, 10),
    ("nginx", Kind::Nginx, "ingress", 6, 20),
    ("kubelet", Kind::Kubelet, "kube-system", 4, 10),
];

const CLUSTERS: &[&str] = &["eu-west-1", "us-east-1"];

#[derive(Debug, Clone)]
pub struct Stream {
    pub labels: Labels,
    pub kind: Kind,
}

/// One slice: per stream (index into [`Dataset::streams`]) its entries `(ts ns, line)` in
/// time order.
pub struct Slice {
    pub streams: Vec<(usize, Vec<(i64, String)>)>,
    pub lines: u64,
    pub raw_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub seed: u64,
    pub lines: u64,
    pub start_ns: i64,
    pub span_ns: i64,
    pub streams: Vec<Stream>,
    /// Cumulative per-mille weights of the streams, for picking one.
    cumulative: Vec<u64>,
    needle_line: u64,
    needle: String,
}

impl Dataset {
    pub fn new(seed: u64, lines: u64, start_ns: i64, span_ns: i64) -> Dataset {
        let mut rng = Rng::new(seed);
        let mut streams = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0;
        for &(service, kind, namespace, pods, share) in SERVICES {
            for p in 0..pods {
                // The last pod of each stateless service runs in staging.
                let env = if p == pods - 1 && kind != Kind::Postgres { "staging" } else { "prod" };
                let pod = match kind {
                    Kind::Postgres => format!("postgres-{p}"),
                    Kind::Kubelet => format!("node-{p}"),
                    _ => format!("{service}-{:08x}-{}", rng.next_u64() as u32, pod_suffix(&mut rng)),
                };
                let labels = Labels::from_pairs([
                    ("service", service.to_string()),
                    ("namespace", namespace.to_string()),
                    ("pod", pod),
                    ("cluster", CLUSTERS[p % CLUSTERS.len()].to_string()),
                    ("env", env.to_string()),
                ])
                .expect("generated labels are valid");
                streams.push(Stream { labels, kind });
                total += share * 1000 / pods as u64;
                cumulative.push(total);
            }
        }
        let needle = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        Dataset { seed, lines, start_ns, span_ns, streams, cumulative, needle_line: lines / 2, needle }
    }

    /// The request id of exactly one line (an api line in the middle of the time span).
    pub fn needle(&self) -> &str {
        &self.needle
    }

    /// The labels of the stream holding the needle line.
    pub fn needle_stream(&self) -> &Labels {
        &self.streams[0].labels
    }

    pub fn slices(&self) -> u64 {
        self.lines.div_ceil(LINES_PER_SLICE)
    }

    /// Timestamp of line `i`: lines are spread evenly over the span.
    pub fn ts(&self, i: u64) -> i64 {
        self.start_ns + ((i as i128 * self.span_ns as i128) / self.lines.max(1) as i128) as i64
    }

    /// End of the data (exclusive), for query ranges.
    pub fn end_ns(&self) -> i64 {
        self.start_ns + self.span_ns + 1
    }

    pub fn slice(&self, k: u64) -> Slice {
        let mut rng = Rng::new(self.seed ^ (k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let first = k * LINES_PER_SLICE;
        let last = (first + LINES_PER_SLICE).min(self.lines);
        let mut per_stream: Vec<Vec<(i64, String)>> = vec![Vec::new(); self.streams.len()];
        let mut raw_bytes = 0;
        let total = *self.cumulative.last().unwrap_or(&1);
        for i in first..last {
            let ts = self.ts(i);
            let (s, line) = if i == self.needle_line {
                (0, api_line(&mut rng, ts, Some(&self.needle)))
            } else {
                let pick = rng.below(total);
                let s = self.cumulative.partition_point(|&c| c <= pick);
                (s, self.line(&mut rng, s, ts))
            };
            raw_bytes += line.len() as u64;
            per_stream[s].push((ts, line));
        }
        let streams = per_stream.into_iter().enumerate().filter(|(_, e)| !e.is_empty()).collect();
        Slice { streams, lines: last - first, raw_bytes }
    }

    fn line(&self, rng: &mut Rng, stream: usize, ts: i64) -> String {
        match self.streams[stream].kind {
            Kind::Api => api_line(rng, ts, None),
            Kind::Auth => auth_line(rng, ts),
            Kind::Worker => worker_line(rng, ts),
            Kind::Postgres => postgres_line(rng, ts),
            Kind::Nginx => nginx_line(rng, ts),
            Kind::Kubelet => kubelet_line(rng, ts),
        }
    }
}

fn pod_suffix(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char).collect()
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// A latency in ms, log-normally distributed around `median_ms` (p99 about 10x the median).
fn latency_ms(rng: &mut Rng, median_ms: f64) -> f64 {
    // Sum of four uniforms: close enough to a normal for log shapes.
    let z = ((0..4).map(|_| rng.below(1 << 20) as f64 / (1 << 20) as f64).sum::<f64>() - 2.0) * 3f64.sqrt();
    (median_ms * z.exp()).max(0.1)
}

fn status(rng: &mut Rng) -> u16 {
    match rng.below(1000) {
        0..800 => 200,
        800..850 => 201,
        850..880 => 204,
        880..900 => 304,
        900..930 => 400,
        930..950 => 401,
        950..980 => 404,
        980..995 => 500,
        995..998 => 502,
        _ => 503,
    }
}

fn level_for(status: u16) -> &'static str {
    match status {
        500.. => "error",
        400.. => "warn",
        _ => "info",
    }
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ts).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn hex32(rng: &mut Rng) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

const API_PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/orders/items",
    "/api/v1/products",
    "/api/v1/products/search",
    "/api/v1/cart",
    "/api/v1/checkout",
    "/api/v1/users/me",
    "/api/v1/recommendations",
    "/api/v1/inventory",
    "/healthz",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
];

fn api_line(rng: &mut Rng, ts: i64, request_id: Option<&str>) -> String {
    let status = status(rng);
    let rid = request_id.map_or_else(|| hex32(rng), str::to_string);
    format!(
        r#"{{"ts":"{}","level":"{}","msg":"request completed","method":"{}","path":"{}","status":{status},"duration_ms":{:.1},"bytes":{},"request_id":"{rid}","user_id":"u-{}","remote_addr":"10.{}.{}.{}","user_agent":"{}"}}"#,
        rfc3339(ts),
        level_for(status),
        pick(rng, METHODS),
        pick(rng, API_PATHS),
        latency_ms(rng, 25.0),
        rng.below(50_000),
        rng.below(200_000),
        rng.below(4),
        rng.below(256),
        rng.below(256),
        pick(rng, AGENTS),
    )
}

fn auth_line(rng: &mut Rng, ts: i64) -> String {
    let status = if rng.below(100) < 93 { 200 } else { 401 };
    let (msg, grant) = if status == 200 {
        ("token issued", pick(rng, &["password", "refresh_token", "client_credentials", "authorization_code"]))
    } else {
        ("invalid credentials", "password")
    };
    format!(
        r#"{{"ts":"{}","level":"{}","msg":"{msg}","grant_type":"{grant}","client_id":"web-{}","user_id":"u-{}","status":{status},"duration_ms":{:.1},"request_id":"{}","ip":"192.168.{}.{}"}}"#,
        rfc3339(ts),
        if status == 200 { "info" } else { "warn" },
        rng.below(20),
        rng.below(200_000),
        latency_ms(rng, 8.0),
        hex32(rng),
        rng.below(256),
        rng.below(256),
    )
}

fn worker_line(rng: &mut Rng, ts: i64) -> String {
    let attempt = [1, 1, 1, 1, 1, 1, 2, 2, 3, 4][rng.below(10) as usize];
    let failed = attempt > 1 && rng.below(3) == 0;
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        r#"ts={} level={} msg="{}" queue={} job_id={:016x} attempt={attempt} duration={:.0}ms tenant=t-{} worker=w-{}"#,
        rfc3339(ts),
        if failed { "error" } else { "info" },
        if failed { "job failed, will retry" } else { "job completed" },
        pick(rng, &["payments", "emails", "invoices", "exports", "webhooks"]),
        rng.next_u64(),
        latency_ms(rng, 120.0),
        rng.below(500),
        rng.below(16),
    );
    if failed {
        let _ = write!(s, r#" error="upstream timeout after {}s""#, 5 + rng.below(25));
    }
    s
}

fn postgres_line(rng: &mut Rng, ts: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ts).format("%Y-%m-%d %H:%M:%S%.3f UTC");
    let pid = 1000 + rng.below(60_000);
    match rng.below(100) {
        0..2 => format!(
            "{t} [{pid}] app@shop ERROR:  deadlock detected\n\tProcess {pid} waits for ShareLock on transaction {}; blocked by process {}.",
            rng.below(10_000_000),
            1000 + rng.below(60_000)
        ),
        2..5 => format!(
            "{t} [{pid}] LOG:  checkpoint complete: wrote {} buffers ({:.1}%); 0 WAL file(s) added, 0 removed, {} recycled; write={:.3} s, sync={:.3} s",
            rng.below(5000),
            rng.below(1000) as f64 / 10.0,
            rng.below(5),
            latency_ms(rng, 2000.0) / 1000.0,
            latency_ms(rng, 20.0) / 1000.0
        ),
        _ => format!(
            "{t} [{pid}] app@shop LOG:  duration: {:.3} ms  statement: {}",
            latency_ms(rng, 4.0),
            pick(
                rng,
                &[
                    "SELECT id, status, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 50",
                    "UPDATE inventory SET reserved = reserved + $1 WHERE product_id = $2",
                    "INSERT INTO order_items (order_id, product_id, quantity, price) VALUES ($1, $2, $3, $4)",
                    "SELECT p.id, p.name, p.price FROM products p JOIN categories c ON c.id = p.category_id WHERE c.slug = $1",
                ]
            )
        ),
    }
}

fn nginx_line(rng: &mut Rng, ts: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ts).format("%d/%b/%Y:%H:%M:%S +0000");
    let status = status(rng);
    format!(
        r#"10.{}.{}.{} - - [{t}] "{} {}/{} HTTP/1.1" {status} {} "https://shop.example.com/" "{}" rt={:.3} uct=0.001"#,
        rng.below(4),
        rng.below(256),
        rng.below(256),
        pick(rng, METHODS),
        pick(rng, API_PATHS),
        rng.below(10_000),
        rng.below(60_000),
        pick(rng, AGENTS),
        latency_ms(rng, 25.0) / 1000.0,
    )
}

fn kubelet_line(rng: &mut Rng, ts: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ts).format("%m%d %H:%M:%S%.6f");
    let sev = if rng.below(20) == 0 { 'W' } else { 'I' };
    format!(
        r#"{sev}{t}    {} {}] "{}" pod="shop/api-{:08x}-{}" podUID="{}" containerName="{}""#,
        2000 + rng.below(100),
        pick(rng, &["kubelet.go:2457", "prober.go:107", "pod_workers.go:1298", "kuberuntime_manager.go:1052"]),
        pick(rng, &["SyncLoop (probe)", "Probe succeeded", "SyncLoop (PLEG): event for pod", "Container restart backoff"]),
        rng.next_u64() as u32,
        pod_suffix(rng),
        hex32(rng),
        pick(rng, &["api", "auth", "worker", "istio-proxy"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_with_one_needle() {
        let d = Dataset::new(7, 20_000, 1_700_000_000_000_000_000, 3_600_000_000_000);
        assert_eq!(d.streams.len(), 31);
        let a: Vec<_> = (0..d.slices()).map(|k| d.slice(k)).collect();
        let b = d.slice(2);
        assert_eq!(a[2].streams, b.streams);
        let lines: u64 = a.iter().map(|s| s.lines).sum();
        assert_eq!(lines, 20_000);
        let with_needle: usize = a.iter().flat_map(|s| &s.streams).flat_map(|(_, e)| e).filter(|(_, l)| l.contains(d.needle())).count();
        assert_eq!(with_needle, 1);
        let raw: u64 = a.iter().map(|s| s.raw_bytes).sum();
        let avg = raw / lines;
        assert!((200..340).contains(&avg), "average line length {avg}");
        // Every stream gets lines, in time order.
        let mut seen = vec![false; 31];
        for (s, e) in a.iter().flat_map(|s| &s.streams) {
            seen[*s] = true;
            assert!(e.windows(2).all(|w| w[0].0 <= w[1].0));
        }
        assert!(seen.iter().all(|&x| x));
    }
}
