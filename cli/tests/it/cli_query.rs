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

/// Pushes two streams through a server, stops it, and returns the data directory.
fn two_streams(dir: &std::path::Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let silt = SiltProcess::start(&data, Some(TEST_LIMITS));
    let http = reqwest::blocking::Client::new();
    let t0 = 1_768_518_000_000_000_000i64;
    let web: Vec<_> = (0..6).map(|i| json!([(t0 + i * 10_000_000_000).to_string(), format!("level=info n={i}")])).collect();
    let db: Vec<_> = (0..3).map(|i| json!([(t0 + i * 20_000_000_000).to_string(), "level=error slow"])).collect();
    let body = json!({"streams": [
        {"stream": {"app": "web", "env": "prod"}, "values": web},
        {"stream": {"app": "db", "env": "prod"}, "values": db},
    ]});
    let st = http.post(format!("{}/loki/api/v1/push", silt.base)).json(&body).send().unwrap().status();
    assert_eq!(st.as_u16(), 204);
    silt.stop();
    data
}

fn silt(data: &std::path::Path, cmd: &str, args: &[&str]) -> String {
    let range = ["--from", "2026-01-15T23:00:00Z", "--to", "2026-01-16T00:00:00Z"];
    let out = Command::new(SILT).arg(cmd).arg("--data-dir").arg(data).args(range).args(args).output().unwrap();
    assert!(out.status.success(), "silt {cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn metric_queries_print_an_aligned_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = two_streams(dir.path());
    let out = silt(&data, "query", &["--step", "1m", r#"sum by (app) (count_over_time({env="prod"}[1m]))"#]);
    // Steps are at the end of each window: 23:01 counts the entries of (23:00, 23:01].
    let want = "\
2026-01-15T23:00:00Z  {app=\"db\"}   1
2026-01-15T23:01:00Z  {app=\"db\"}   2
2026-01-15T23:00:00Z  {app=\"web\"}  1
2026-01-15T23:01:00Z  {app=\"web\"}  5
";
    assert_eq!(out, want);
    let out = silt(&data, "query", &["--step", "1m", "--output", "jsonl", r#"sum(count_over_time({app="db"}[1m]))"#]);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first, json!({"timestamp": "2026-01-15T23:00:00Z", "labels": "{}", "value": "1"}));
    // A step too small for the range is refused, in one line.
    let out = Command::new(SILT)
        .args(["query", "--data-dir"])
        .arg(&data)
        .args(["--since", "30d", "--step", "1s", r#"count_over_time({app="db"}[1m])"#])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than 11,000 points"));
}

#[test]
fn labels_series_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let data = two_streams(dir.path());
    assert_eq!(silt(&data, "labels", &[]), "app\nenv\n");
    assert_eq!(silt(&data, "labels", &["app"]), "db\nweb\n");
    assert_eq!(silt(&data, "labels", &["app", "--query", r#"{app=~"w.*"}"#]), "web\n");
    assert_eq!(silt(&data, "series", &[r#"{env="prod"}"#]), "{app=\"db\", env=\"prod\"}\n{app=\"web\", env=\"prod\"}\n");
    let stats = silt(&data, "stats", &[r#"{app="web"}"#]);
    assert!(stats.contains("streams: 1\n") && stats.contains("entries: 6\n"), "{stats}");
    let bytes: u64 = stats.lines().find_map(|l| l.strip_prefix("bytes:")).unwrap().trim().parse().unwrap();
    assert_eq!(bytes, (0..6).map(|i| format!("level=info n={i}").len() as u64).sum::<u64>());
}
