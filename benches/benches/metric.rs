//! `sum by (level) (count_over_time({...} | logfmt [1m]))` and `sum by (service)
//! (count_over_time({...}[1m]))` over a store of generated lines (10M by default; set
//! `SILT_BENCH_LINES` for another size). The data is pushed and flushed once, outside the
//! measurement.
//!
//! `cargo bench -p silt-benches --bench metric`

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use silt_benches::{push_request, Rng};
use silt_query::ast::Expr;
use silt_query::Engine;
use silt_storage::{IngestLimits, Store, StoreConfig, TenantId};
use tokio::runtime::Runtime;

const T0: i64 = 1_768_518_000_000_000_000;

fn metric(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let lines: usize = std::env::var("SILT_BENCH_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.wal_sync = false;
    let store = Store::open(cfg).unwrap();
    let tenant: TenantId = "bench".parse().unwrap();
    let mut rng = Rng::new(5);
    // 30 streams x 1000 lines per push, one line per stream per 10 ms of the timeline.
    let per_push = 30 * 1000;
    let started = Instant::now();
    rt.block_on(async {
        for round in 0..lines.div_ceil(per_push) {
            let req = push_request(&mut rng, 30, 1000, T0 + round as i64 * 1000 * 1_000_000_000);
            store.push(&tenant, req, &IngestLimits::unlimited()).await.unwrap();
            if store.flush_due() {
                store.flush().await.unwrap();
            }
        }
        store.flush().await.unwrap();
    });
    eprintln!("ingested {lines} lines in {:.1}s", started.elapsed().as_secs_f64());
    let span = (lines.div_ceil(per_push) as i64) * 1000 * 1_000_000_000;
    let engine = Engine::new(store);
    let mut g = c.benchmark_group("metric");
    g.sample_size(10);
    g.throughput(Throughput::Elements(lines as u64));
    for (name, q) in [
        ("sum_by_service_count_1m", r#"sum by (service) (count_over_time({env=~".+"}[1m]))"#),
        ("sum_by_level_count_logfmt_1m", r#"sum by (level) (count_over_time({service="worker"} | logfmt [1m]))"#),
    ] {
        let Expr::Metric(m) = silt_query::parse(q).unwrap() else { unreachable!("metric query") };
        let step = (span / 250).max(1_000_000_000);
        g.bench_function(name, |b| b.iter(|| rt.block_on(engine.metric_query(std::slice::from_ref(&tenant), &m, T0, T0 + span, step)).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, metric);
criterion_main!(benches);
