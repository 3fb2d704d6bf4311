//! `kill -9` during continuous pushes from several clients: after a restart, every push
//! that was acknowledged is there.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::SiltProcess;

const CLIENTS: usize = 4;
const PER_PUSH: usize = 5;

fn push_loop(base: String, client: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<BTreeSet<(usize, u64)>>>) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let t0: i64 = 1_700_000_000_000_000_000;
    let mut seq = 0u64;
    // Bounded: stops when told, when the server is gone, or after 20 000 pushes.
    while !stop.load(Ordering::Relaxed) && seq < 20_000 {
        let values: Vec<Value> = (0..PER_PUSH)
            .map(|k| json!([(t0 + (seq * PER_PUSH as u64 + k as u64) as i64 * 1000).to_string(), format!("c{client} s{seq} k{k}")]))
            .collect();
        let body = json!({"streams": [{"stream": {"job": "crash", "client": client.to_string()}, "values": values}]});
        match http.post(format!("{base}/loki/api/v1/push")).json(&body).send() {
            Ok(r) if r.status().as_u16() == 204 => {
                acked.lock().unwrap().insert((client, seq));
            }
            Ok(r) => panic!("push refused: {} {}", r.status(), r.text().unwrap_or_default()),
            Err(_) => return, // the server died mid-request: this push is not acknowledged
        }
        seq += 1;
    }
}

#[test]
fn kill9_during_concurrent_pushes_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = "[limits]\nmax_entries_limit_per_query = 1000000\nreject_old_samples = false\ndiscover_service_name = []\ndiscover_log_levels = false\ningestion_rate_mb = 1024\ningestion_burst_size_mb = 1024\n[storage]\nflush_max_bytes = \"256KiB\"\n";
    let silt = SiltProcess::start(&data, Some(config));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (base, stop, acked) = (silt.base.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || push_loop(base, c, stop, acked))
        })
        .collect();
    // Let the pushes run (and a few size-triggered flushes happen), then crash mid-stream.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 400 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    silt.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 400, "only {} pushes acknowledged", acked.len());

    let silt = SiltProcess::start(&data, Some(config));
    let http = reqwest::blocking::Client::new();
    let mut found = BTreeSet::new();
    for c in 0..CLIENTS {
        let body: Value = http
            .get(format!("{}/loki/api/v1/query_range", silt.base))
            .query(&[
                ("query", format!(r#"{{job="crash", client="{c}"}}"#)),
                ("start", "1699999999000000000".into()),
                ("end", "1700001000000000000".into()),
                ("limit", "1000000".into()),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        for s in body["data"]["result"].as_array().unwrap() {
            for v in s["values"].as_array().unwrap() {
                let line = v[1].as_str().unwrap();
                let mut parts = line.split(' ');
                let client: usize = parts.next().unwrap()[1..].parse().unwrap();
                let seq: u64 = parts.next().unwrap()[1..].parse().unwrap();
                found.insert((client, seq));
            }
        }
    }
    let missing: Vec<_> = acked.difference(&found).collect();
    assert!(missing.is_empty(), "{} acknowledged pushes lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    silt.stop();
}
