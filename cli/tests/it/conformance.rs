//! The conformance kit (`../shared/conformance`): data and answers recorded from a real
//! Grafana Loki, replayed against `silt serve`. This test runs the queries whose features
//! silt implements so far and requires every one of them to pass; the list of features
//! grows with the implementation.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::SiltProcess;

/// Tags of features silt implements. A query runs when all its tags are in this set.
const IMPLEMENTED: &[&str] = &[
    "log", "selector", "line_filter", "limit", "direction", "multi_tenancy", "empty", "boundary", "unicode",
    "long_line", "multiline", "invalid", "metadata", "labels", "label_values", "series",
];

fn kit_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SILT_CONFORMANCE_DIR") {
        return Some(PathBuf::from(d));
    }
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    d.join("run.py").exists().then_some(d)
}

#[test]
fn conformance_kit_implemented_features_pass() {
    let Some(kit) = kit_dir() else {
        if std::env::var_os("CI").is_some() {
            panic!("the conformance kit (../shared/conformance) is missing");
        }
        eprintln!("SKIPPED conformance: ../shared/conformance not found (set SILT_CONFORMANCE_DIR)");
        return;
    };
    let allowed: BTreeSet<&str> = IMPLEMENTED.iter().copied().collect();
    let mut ids = Vec::new();
    for line in std::fs::read_to_string(kit.join("queries.jsonl")).unwrap().lines() {
        let q: serde_json::Value = serde_json::from_str(line).unwrap();
        let tags: Vec<&str> = q["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        if tags.iter().all(|t| allowed.contains(t)) {
            ids.push(q["id"].as_str().unwrap().to_string());
        }
    }
    assert!(ids.len() >= 40, "only {} queries selected", ids.len());

    let dir = tempfile::tempdir().unwrap();
    let silt = SiltProcess::start(&dir.path().join("data"), None);
    let out = Command::new("python3")
        .arg(kit.join("run.py"))
        .args(["--url", &silt.base, "--min-pass-rate", "1.0", "--verbose", "--only", &ids.join(",")])
        .output()
        .expect("python3 runs the kit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "conformance failures among {} queries:\n{stdout}", ids.len());
    silt.stop();
}
