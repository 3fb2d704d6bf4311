//! silt's benchmarks: the criterion micro-benchmarks' shared generator (below), and the
//! end-to-end load benchmark run by `silt bench` ([`e2e`], over the [`dataset`]).

pub mod dataset;
pub mod e2e;

use silt_storage::{Labels, PushEntry, PushRequest, PushStream};

/// A tiny deterministic PRNG (xorshift64*): the same seed gives the same dataset on every
/// machine, without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const PATHS: &[&str] = &["/api/v1/orders", "/api/v1/products", "/api/v1/users/me", "/healthz", "/api/v1/cart", "/login"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const SERVICES: &[&str] = &["api", "auth", "worker", "db", "frontend", "kubelet"];

/// One line in the style of a service (JSON access log, logfmt, nginx, postgres...).
pub fn line(rng: &mut Rng, service: &str, ts_ns: i64) -> String {
    let path = PATHS[rng.below(PATHS.len() as u64) as usize];
    let status = [200, 200, 200, 201, 204, 404, 500, 503][rng.below(8) as usize];
    let dur = rng.below(5000) as f64 / 10.0;
    match service {
        "api" | "auth" => format!(
            r#"{{"ts":{ts_ns},"level":"info","method":"{}","path":"{path}","status_code":{status},"duration_ms":{dur},"request_id":"{:016x}","user_id":"u-{}"}}"#,
            METHODS[rng.below(METHODS.len() as u64) as usize],
            rng.next_u64(),
            rng.below(100_000)
        ),
        "worker" => format!("level=info msg=\"job done\" queue=payments duration={dur}ms attempt={} job_id={:x}", rng.below(3), rng.next_u64()),
        "db" => format!("LOG:  duration: {dur} ms  statement: SELECT * FROM orders WHERE customer_id = {}", rng.below(10_000)),
        "frontend" => format!(
            "10.0.{}.{} - - \"GET {path} HTTP/1.1\" {status} {} \"-\" \"Mozilla/5.0\"",
            rng.below(255),
            rng.below(255),
            rng.below(20_000)
        ),
        _ => format!("I1115 12:00:00.000000 1 kubelet.go:{}] \"SyncLoop (probe)\" probe=\"readiness\" status=\"ready\" pod=\"p-{}\"", rng.below(3000), rng.below(50)),
    }
}

/// A push of `streams` streams with `per_stream` entries each, one second apart from `t0`.
pub fn push_request(rng: &mut Rng, streams: usize, per_stream: usize, t0: i64) -> PushRequest {
    let streams = (0..streams)
        .map(|s| {
            let service = SERVICES[s % SERVICES.len()];
            let labels = Labels::from_pairs([
                ("service", service.to_string()),
                ("env", if s % 3 == 0 { "staging" } else { "production" }.to_string()),
                ("pod", format!("{service}-{s}")),
            ])
            .expect("generated labels are valid");
            let entries = (0..per_stream)
                .map(|i| {
                    let ts = t0 + (i as i64) * 1_000_000_000 + s as i64;
                    PushEntry { ts, line: line(rng, service, ts), metadata: Vec::new() }
                })
                .collect();
            PushStream { labels, entries }
        })
        .collect();
    PushRequest { streams }
}

/// Raw bytes of log text in a push (what throughput figures are measured against).
pub fn raw_bytes(req: &PushRequest) -> u64 {
    req.streams.iter().flat_map(|s| &s.entries).map(|e| e.line.len() as u64).sum()
}
