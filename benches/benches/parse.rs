//! LogQL parsing: the time to parse (and validate) each query of the corpus in
//! `testdata/logql/`, and the whole corpus.
//!
//! `cargo bench -p silt-benches --bench parse`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn corpus() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/logql");
    let mut out = Vec::new();
    for f in ["log_queries.txt", "metric_queries.txt", "template_functions.txt", "ip.txt", "matching.txt"] {
        let text = std::fs::read_to_string(dir.join(f)).expect("corpus file");
        for block in text.split("\n\n") {
            let q: Vec<&str> = block.lines().filter(|l| !l.starts_with("--") && !l.starts_with("=> ") && !l.starts_with("!! ")).collect();
            if !q.is_empty() {
                out.push(q.join("\n"));
            }
        }
    }
    out
}

fn parse(c: &mut Criterion) {
    let queries = corpus();
    assert!(queries.len() > 50);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("corpus", |b| {
        b.iter(|| {
            for q in &queries {
                let _ = black_box(silt_query::parse(black_box(q)));
            }
        })
    });
    g.finish();
    let long = queries.iter().max_by_key(|q| q.len()).unwrap().clone();
    c.bench_function("parse/longest_query", |b| b.iter(|| silt_query::parse(black_box(&long)).unwrap()));
}

criterion_group!(benches, parse);
criterion_main!(benches);
