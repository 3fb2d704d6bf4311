//! Log pipeline throughput on generated lines, one core: substring and regex line filters,
//! and `json` + a numeric label filter.
//!
//! `cargo bench -p silt-benches --bench pipeline`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use silt_benches::{line, Rng};
use silt_query::ast::{Expr, LogExpr};
use silt_query::line_filter::LineFilterChain;
use silt_query::pipeline::{EntryLabels, Needed, Pipeline};

fn lines(service: &str, n: usize) -> Vec<String> {
    let mut rng = Rng::new(3);
    (0..n).map(|i| line(&mut rng, service, i as i64)).collect()
}

fn log_expr(q: &str) -> LogExpr {
    match silt_query::parse(q).unwrap() {
        Expr::Log(l) => l,
        Expr::Metric(_) => unreachable!("a log query"),
    }
}

fn filters(c: &mut Criterion) {
    let data = lines("api", 20_000);
    let bytes: u64 = data.iter().map(|l| l.len() as u64).sum();
    let mut g = c.benchmark_group("line_filter");
    g.throughput(Throughput::Bytes(bytes));
    for (name, q) in [
        ("substring_rare", r#"{a="b"} |= "request_id\":\"ffff""#),
        ("substring_common", r#"{a="b"} |= "status_code""#),
        ("regex", r#"{a="b"} |~ "status_code\":5[0-9]{2}""#),
        ("regex_case_insensitive", r#"{a="b"} |~ "(?i)post /api/v1/orders""#),
    ] {
        let l = log_expr(q);
        let chain = LineFilterChain::compile(l.pipeline.iter().map(|s| match s {
            silt_query::ast::Stage::LineFilter(f) => f,
            _ => unreachable!("line filters only"),
        }))
        .unwrap();
        g.bench_function(name, |b| b.iter(|| data.iter().filter(|l| chain.matches(black_box(l.as_bytes()))).count()));
    }
    g.finish();
}

fn json_pipeline(c: &mut Criterion) {
    let data = lines("api", 20_000);
    let bytes: u64 = data.iter().map(|l| l.len() as u64).sum();
    let p = Pipeline::compile(&log_expr(r#"{a="b"} | json | status_code >= 500 and duration_ms > 100"#).pipeline).unwrap();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("json_label_filter", |b| {
        b.iter(|| {
            data.iter()
                .filter_map(|l| p.process(l.as_str(), EntryLabels::new([("service", "api")], std::iter::empty()), 0))
                .count()
        })
    });
    // As in `sum by (path) (rate({..} | json [5m]))`: only `path` is kept.
    let proj = Pipeline::compile(&log_expr(r#"{a="b"} | json"#).pipeline).unwrap().projected(Needed::new(["path"]));
    g.bench_function("json_projected", |b| {
        b.iter(|| {
            data.iter()
                .filter_map(|l| proj.process(l.as_str(), EntryLabels::new([("service", "api")], std::iter::empty()), 0))
                .count()
        })
    });
    let lf = Pipeline::compile(&log_expr(r#"{a="b"} | logfmt | attempt > 1"#).pipeline).unwrap();
    let wdata = lines("worker", 20_000);
    let wbytes: u64 = wdata.iter().map(|l| l.len() as u64).sum();
    g.throughput(Throughput::Bytes(wbytes));
    g.bench_function("logfmt_label_filter", |b| {
        b.iter(|| {
            wdata
                .iter()
                .filter_map(|l| lf.process(l.as_str(), EntryLabels::new([("service", "worker")], std::iter::empty()), 0))
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, filters, json_pipeline);
criterion_main!(benches);
