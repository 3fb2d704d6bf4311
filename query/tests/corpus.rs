//! Corpus tests: `testdata/logql/*.txt` (queries from Loki's LogQL documentation with the
//! canonical form Loki prints, and invalid queries with the error expected), and every
//! query of the conformance kit.

use std::path::PathBuf;

use silt_query::parse;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/logql")
}

/// Blocks separated by blank lines: `query`, then `=> canonical` or `!! error substring`.
/// Lines starting with `--` are comments.
fn cases(file: &str) -> Vec<(String, String, bool)> {
    let text = std::fs::read_to_string(testdata().join(file)).unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with("--") && !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        let (last, query) = lines.split_last().unwrap();
        let query = query.join("\n");
        if let Some(want) = last.strip_prefix("=> ") {
            out.push((query, want.to_string(), true));
        } else if let Some(want) = last.strip_prefix("!! ") {
            out.push((query, want.to_string(), false));
        } else {
            panic!("{file}: block without `=> ` or `!! ` line:\n{block}");
        }
    }
    out
}

/// `SILT_BLESS=1 cargo test -p silt-query --test corpus` fills in the `=> ` lines from the
/// current printer; review the diff before committing it.
fn bless(file: &str) {
    let path = testdata().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().collect();
        let query: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with("--") && !l.starts_with("=> ") && !l.trim().is_empty()).collect();
        let mut b: Vec<String> = lines.iter().filter(|l| !l.starts_with("=> ")).map(|l| l.to_string()).collect();
        if !query.is_empty() && lines.iter().any(|l| l.starts_with("=> ")) {
            let printed = silt_query::parse(&query.join("\n")).map(|e| e.to_string()).unwrap_or_else(|e| format!("ERROR {e}"));
            b.push(format!("=> {printed}"));
        }
        out.push(b.join("\n"));
    }
    let mut text = out.join("\n\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
}

#[test]
fn documentation_examples_print_canonically() {
    let mut n = 0;
    for file in ["log_queries.txt", "metric_queries.txt", "template_functions.txt", "ip.txt", "matching.txt"] {
        if std::env::var_os("SILT_BLESS").is_some() {
            bless(file);
        }
        for (q, want, valid) in cases(file) {
            n += 1;
            match parse(&q) {
                Ok(e) if valid => {
                    assert_eq!(e.to_string(), want, "{file}: {q}");
                    assert_eq!(parse(&e.to_string()).unwrap(), e, "{file}: reprint of {q}");
                }
                Ok(e) => panic!("{file}: {q} parsed as {e}, expected an error containing {want:?}"),
                Err(err) if !valid => assert!(err.to_string().contains(&want), "{file}: {q}: {err}"),
                Err(err) => panic!("{file}: {q}: {err}"),
            }
        }
    }
    assert!(n >= 60, "only {n} corpus cases");
}

#[test]
fn invalid_queries_are_rejected_with_their_message() {
    for (q, want, valid) in cases("invalid.txt") {
        assert!(!valid, "invalid.txt holds errors only");
        let err = parse(&q).expect_err(&q).to_string();
        assert!(err.contains(&want), "{q}: got {err:?}, want {want:?}");
    }
}

/// Errors the kit expects that are not parse errors: they come from the HTTP layer or
/// from evaluation, and are tested there.
const NOT_PARSE_ERRORS: &[&str] =
    &["inv-unwrap-non-number", "inv-instant-log-query", "inv-end-before-start", "inv-too-many-points", "inv-bad-template"];

#[test]
fn conformance_queries_parse() {
    let kit = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/queries.jsonl");
    let Ok(text) = std::fs::read_to_string(&kit) else {
        assert!(std::env::var_os("CI").is_none(), "the conformance kit is missing in CI");
        eprintln!("SKIPPED: {} not found", kit.display());
        return;
    };
    let mut checked = 0;
    for line in text.lines() {
        let q: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(query) = q["params"]["query"].as_str() else { continue };
        let id = q["id"].as_str().unwrap();
        let invalid = q["tags"].as_array().unwrap().iter().any(|t| t == "invalid");
        if q["endpoint"] == "query" || q["endpoint"] == "query_range" {
            checked += 1;
            match (parse(query), invalid && !NOT_PARSE_ERRORS.contains(&id)) {
                (Ok(_), false) | (Err(_), true) => {}
                (Ok(e), true) => panic!("{id}: {query} should be rejected, parsed as {e}"),
                (Err(e), false) => panic!("{id}: {query}: {e}"),
            }
        }
    }
    assert!(checked > 150);
}
