//! Storage write path: durable push throughput (WAL append with fsync and group commit,
//! then head insert) and flush throughput (head -> sorted zstd Parquet chunks + index).
//!
//! `cargo bench -p silt-benches --bench storage`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use silt_benches::{push_request, raw_bytes, Rng};
use silt_storage::{IngestLimits, Store, StoreConfig, TenantId};
use tokio::runtime::Runtime;

const T0: i64 = 1_768_518_000_000_000_000;

fn store(dir: &std::path::Path, sync: bool) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.wal_sync = sync;
    cfg.flush_max_bytes = usize::MAX;
    Store::open(cfg).unwrap()
}

fn push(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let tenant: TenantId = "bench".parse().unwrap();
    // ~1 MiB bodies, as promtail and the load benchmark send them: 30 streams x 140 lines.
    let mut rng = Rng::new(7);
    let req = push_request(&mut rng, 30, 140, T0);
    let mut g = c.benchmark_group("push");
    g.throughput(Throughput::Bytes(raw_bytes(&req)));
    g.sample_size(20);
    for (name, sync, clients) in [("fsync_1_client", true, 1usize), ("fsync_4_clients", true, 4), ("no_fsync_1_client", false, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), sync);
        let mut seq = 0i64;
        g.throughput(Throughput::Bytes(raw_bytes(&req) * clients as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // Move each round forward in time so nothing is a duplicate.
                    seq += 1;
                    (0..clients)
                        .map(|c| {
                            let mut r = req.clone();
                            for (i, st) in r.streams.iter_mut().enumerate() {
                                st.labels.set("client", &c.to_string());
                                for e in &mut st.entries {
                                    e.ts += seq * 1_000_000_000_000 + i as i64;
                                }
                            }
                            r
                        })
                        .collect::<Vec<_>>()
                },
                |reqs| {
                    rt.block_on(async {
                        let tasks: Vec<_> = reqs
                            .into_iter()
                            .map(|r| {
                                let (s, t) = (s.clone(), tenant.clone());
                                tokio::spawn(async move { s.push(&t, r, &IngestLimits::unlimited()).await.unwrap() })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    })
                },
                BatchSize::SmallInput,
            )
        });
        drop(s);
    }
    g.finish();
}

fn flush(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let tenant: TenantId = "bench".parse().unwrap();
    let mut rng = Rng::new(11);
    // 100k lines over 31 streams.
    let reqs: Arc<Vec<_>> = Arc::new((0..10).map(|i| push_request(&mut rng, 31, 323, T0 + i * 400_000_000_000)).collect());
    let bytes: u64 = reqs.iter().map(raw_bytes).sum();
    let mut g = c.benchmark_group("flush");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("100k_lines", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let s = store(dir.path(), false);
                rt.block_on(async {
                    for r in reqs.iter() {
                        s.push(&tenant, r.clone(), &IngestLimits::unlimited()).await.unwrap();
                    }
                });
                (dir, s)
            },
            |(dir, s)| {
                let stats = rt.block_on(s.flush()).unwrap();
                assert!(stats.rows > 0);
                (dir, s)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, push, flush);
criterion_main!(benches);
