//! `silt query` reads a data directory directly, also while a server runs on it.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::{SiltProcess, SILT, TEST_LIMITS};

fn query(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(SILT).arg("query").arg("--data-dir").arg(data).args(args).output().unwrap()
}

#[test]
fn query_a_live_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let silt = SiltProcess::start(&data, Some(TEST_LIMITS));
    let http = reqwest::blocking::Client::new();
    let values: Vec<_> = (0..30).map(|i| json!([(1_768_518_000_000_000_000i64 + i * 1_000_000_000).to_string(), format!("line {i}")])).collect();
    let st = http
        .post(format!("{}/loki/api/v1/push", silt.base))
        .header("X-Scope-OrgID", "acme")
        .json(&json!({"streams": [{"stream": {"app": "web"}, "values": values}]}))
        .send()
        .unwrap()
        .status();
    assert_eq!(st.as_u16(), 204);

    let range = ["--org-id", "acme", "--from", "2026-01-15T23:00:00Z", "--to", "2026-01-16T00:00:00Z"];
    // The data is only in the server's WAL and head: the CLI reads the WAL read-only.
    let out = query(&data, &[&range[..], &["--limit", "3", "--output", "raw", r#"{app="web"} != "line 29""#]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "line 28\nline 27\nline 26\n");

    let out = query(&data, &[&range[..], &["--forward", "--limit", "1", "--output", "jsonl", r#"{app="web"}"#]].concat());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"timestamp": "1768518000000000000", "labels": {"app": "web"}, "line": "line 0"}));

    let out = query(&data, &[&range[..], &["--forward", "--limit", "1", r#"{app="web"}"#]].concat());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "2026-01-15T23:00:00Z {app=\"web\"} line 0\n");

    // After a graceful stop the same answers come from the chunks.
    silt.stop();
    let out = query(&data, &[&range[..], &["--limit", "3", "--output", "raw", r#"{app="web"} != "line 29""#]].concat());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "line 28\nline 27\nline 26\n");

    // `| head` exits quietly.
    let mut child = Command::new(SILT)
        .arg("query")
        .arg("--data-dir")
        .arg(&data)
        .args(range)
        .args(["--limit", "30", r#"{app="web"}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_arguments_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (vec![r#"{app="web""#], "parse error at line 1, col 11"),
        (vec!["--since", "forever", r#"{app="web"}"#], "invalid --since"),
        (vec!["--from", "tomorrow", r#"{app="web"}"#], "invalid --from"),
        (vec!["--org-id", "a/b", r#"{app="web"}"#], "invalid --org-id"),
        (vec![r#"{app="web"}"#], "not a silt data directory"),
    ] {
        let out = query(&dir.path().join("missing"), &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("silt: ") && err.contains(want), "{args:?}: {err}");
    }
}
