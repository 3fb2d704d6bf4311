//! Second opinion: Grafana's editor grammar (`@grafana/lezer-logql`, from npm) and our
//! parser read the corpus in `testdata/lezer/corpus.jsonl` (368 queries: the LogQL corpus,
//! the conformance kit's queries, the printing tests). Every disagreement must be a
//! validation rule (Loki checks it after parsing; an editor grammar does not) or be listed,
//! with its reason, in `testdata/lezer/known_differences.jsonl`.
//!
//! Runs when `node` and `npm` are present (the package is installed once into the target
//! directory); skipped with a message otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/lezer")
}

fn install(dir: &Path) -> Result<PathBuf, String> {
    let modules = dir.join("node_modules");
    if modules.join("@grafana/lezer-logql/package.json").exists() {
        return Ok(modules);
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let out = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .arg("@grafana/lezer-logql@0.3.0")
        .output()
        .map_err(|e| format!("npm: {e}"))?;
    if !out.status.success() {
        return Err(format!("npm install failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(modules)
}

#[test]
fn lezer_grammar_agrees_or_difference_is_explained() {
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let npm_ok = Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok || !npm_ok {
        eprintln!("SKIPPED lezer comparison: node and npm are needed");
        return;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let modules = match install(&target.join("lezer-logql")) {
        Ok(m) => m,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED lezer comparison: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let out = Command::new("node")
        .arg(testdata().join("check.mjs"))
        .arg(&modules)
        .arg(testdata().join("corpus.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let known: BTreeMap<String, String> = std::fs::read_to_string(testdata().join("known_differences.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["query"].as_str().unwrap().to_string(), v["reason"].as_str().unwrap().to_string())
        })
        .collect();

    let mut total = 0;
    let mut unexplained = Vec::new();
    let mut still_different = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let q = v["query"].as_str().unwrap();
        let lezer_ok = v["ok"].as_bool().unwrap();
        total += 1;
        let silt = silt_query::parse(q);
        let validation_only = matches!(&silt, Err(e) if e.line == 0 && e.col == 0);
        if silt.is_ok() == lezer_ok || (lezer_ok && validation_only) {
            continue;
        }
        if known.contains_key(q) {
            still_different.push(q.to_string());
        } else {
            unexplained.push(format!("{q}\n    silt: {}\n    lezer: {}", silt.map(|e| e.to_string()).unwrap_or_else(|e| e.to_string()), if lezer_ok { "ok" } else { "error" }));
        }
    }
    assert!(total >= 300, "corpus has {total} queries");
    assert!(unexplained.is_empty(), "{} unexplained disagreements:\n{}", unexplained.len(), unexplained.join("\n"));
    let stale: Vec<_> = known.keys().filter(|k| !still_different.contains(k)).collect();
    assert!(stale.is_empty(), "listed as different but now agreeing (remove them): {stale:?}");
}
