//! `silt bench` end to end on a small dataset: it must ingest in both formats, find the
//! needle exactly once, and write a complete report. Timings are never asserted.

use std::process::Command;

use crate::SILT;

#[test]
fn bench_runs_end_to_end_on_a_small_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let run = Command::new(SILT)
        .args(["bench", "--lines", "12000", "--hours", "1", "--clients", "2", "--warm-runs", "1", "--keep-page-cache", "--dir"])
        .arg(dir.path().join("work"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let table = String::from_utf8(run.stdout).unwrap();
    assert!(table.contains("ingest json, lines/s") && table.contains("Q10b"), "{table}");

    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(r["lines"], 12000);
    assert_eq!(r["streams"], 31);
    let formats: Vec<&str> = r["ingest"].as_array().unwrap().iter().map(|i| i["format"].as_str().unwrap()).collect();
    assert_eq!(formats, ["protobuf", "json"]);
    for i in r["ingest"].as_array().unwrap() {
        assert!(i["disk_bytes"].as_u64().unwrap() > 0, "{i}");
        // The queries below ran on the compacted store.
        assert!(i["compaction"]["disk_bytes"].as_u64().unwrap() > 0, "{i}");
    }
    let result = |id: &str| {
        let q = r["queries"].as_array().unwrap().iter().find(|q| q["id"] == id).unwrap_or_else(|| panic!("{id} missing"));
        q["result"].as_str().unwrap().to_string()
    };
    assert_eq!(result("Q1"), "1 entries in 1 streams");
    assert_eq!(result("Q2"), "1 entries in 1 streams");
    // detected_level (structured metadata) splits a stream's entries by level.
    assert!(result("Q9").starts_with("100 entries in "), "{}", result("Q9"));
    assert_eq!(result("Q10a"), "6 values", "5 labels and the discovered service_name");
    assert_eq!(result("Q10b"), "31 values");
    assert!(result("Q6").starts_with("6 series"), "{}", result("Q6"));
}
