//! The operator commands end to end: `silt ingest` (local and remote, gzip, timestamps,
//! resume), remote reads (`--addr`), `--tail`, `silt compact`, `silt retention`,
//! `silt check`, and compactions killed at each step.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{SiltProcess, SILT, TEST_LIMITS};

fn silt(args: &[&str]) -> Output {
    Command::new(SILT).args(args).env_remove("SILT_ADDR").output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn err(out: Output) -> String {
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `count_over_time` of everything in the data directory for a selector.
fn count(data: &Path, selector: &str) -> u64 {
    let out = ok(silt(&["stats", "--data-dir", p(data), "--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z", selector]));
    out.lines().find_map(|l| l.strip_prefix("entries:")).unwrap().trim().parse().unwrap()
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("silt.toml");
    std::fs::write(&path, format!("{TEST_LIMITS}{extra}")).unwrap();
    path
}

#[test]
fn ingest_files_and_stdin_with_timestamps_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let state = dir.path().join("state");
    let config = write_config(dir.path(), "");
    // JSON lines with their own time, 30s apart, from 2026-01-15T23:00:00Z.
    let json_log = dir.path().join("app.log");
    let mut f = std::fs::File::create(&json_log).unwrap();
    for i in 0..100 {
        writeln!(f, r#"{{"ts":"2026-01-15T23:{:02}:{:02}Z","msg":"request {i}"}}"#, i / 2, (i % 2) * 30).unwrap();
    }
    drop(f);
    // The same content gzip'd, as another stream.
    let gz = dir.path().join("app.log.gz");
    let mut enc = flate2_encoder(std::fs::File::create(&gz).unwrap());
    enc.write_all(&std::fs::read(&json_log).unwrap()).unwrap();
    enc.finish().unwrap();

    let common = ["--data-dir", p(&data), "--config", p(&config), "--state-dir", p(&state), "--quiet"];
    ok(silt(&[&["ingest", "--labels", r#"{job="plain"}"#, "--time-field", "ts"], &common[..], &[p(&json_log)]].concat()));
    ok(silt(&[&["ingest", "--labels", r#"{job="gz"}"#, "--time-regex", r#""ts":"([^"]+)""#], &common[..], &[p(&gz)]].concat()));
    assert_eq!(count(&data, r#"{job="plain"}"#), 100);
    assert_eq!(count(&data, r#"{job="gz"}"#), 100);
    let first = ok(silt(&["query", "--data-dir", p(&data), "--from", "2026-01-15T23:00:00Z", "--to", "2026-01-16T00:00:00Z", "--forward", "--limit", "1", r#"{job="gz"}"#]));
    assert!(first.starts_with("2026-01-15T23:00:00Z {job=\"gz\"} {\"ts\""), "{first}");

    // --resume: a finished file is skipped; a file stopped half-way continues.
    let out = silt(&[&["ingest", "--labels", r#"{job="plain"}"#, "--time-field", "ts", "--resume"], &common[..], &[p(&json_log)]].concat());
    assert!(out.status.success());
    assert_eq!(count(&data, r#"{job="plain"}"#), 100);
    let state_file = state.join("ingest.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let key = std::fs::canonicalize(&json_log).unwrap().display().to_string();
    let half: usize = std::fs::read_to_string(&json_log).unwrap().lines().take(50).map(|l| l.len() + 1).sum();
    st["files"][&key] = json!({"offset": half, "len": std::fs::metadata(&json_log).unwrap().len(), "done": false});
    std::fs::write(&state_file, st.to_string()).unwrap();
    ok(silt(&[&["ingest", "--labels", r#"{job="resumed"}"#, "--time-field", "ts", "--resume"], &common[..], &[p(&json_log)]].concat()));
    assert_eq!(count(&data, r#"{job="resumed"}"#), 50);

    // Standard input, to a server; lines without a time take the time they were read.
    let srv = SiltProcess::start(&dir.path().join("srv"), Some(TEST_LIMITS));
    let mut child = Command::new(SILT)
        .args(["ingest", "--addr", &srv.base, "--org-id", "acme", "--labels", r#"{job="stdin"}"#, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..250 {
        writeln!(stdin, "same line").unwrap();
        if i % 100 == 0 {
            writeln!(stdin, "line {i}").unwrap();
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ingested 253 lines"), "{stderr}");
    let stats = ok(silt(&["stats", "--addr", &srv.base, "--org-id", "acme", "--since", "1h", r#"{job="stdin"}"#]));
    assert!(stats.contains("entries: 253"), "repeated lines are not taken for duplicates: {stats}");

    // Bad arguments: one line, non-zero.
    for (args, want) in [
        (vec!["ingest", "--labels", "job=x", p(&json_log)], "invalid --labels"),
        (vec!["ingest", "--labels", r#"{job="x"}"#, "/nonexistent/file"], "no such file"),
        (vec!["ingest", "--labels", r#"{job="x"}"#, "--time-regex", "(", p(&json_log)], "invalid --time-regex"),
    ] {
        let e = err(silt(&args));
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

fn flate2_encoder(f: std::fs::File) -> flate2::write::GzEncoder<std::fs::File> {
    flate2::write::GzEncoder::new(f, flate2::Compression::default())
}

/// A server with two streams pushed in `flushes` flushes (so as many small chunks).
fn server_with_chunks(data: &Path, config: &str, flushes: usize) -> SiltProcess {
    let srv = SiltProcess::start(data, Some(config));
    let http = reqwest::blocking::Client::new();
    let t0 = 1_768_518_000_000_000_000i64;
    for f in 0..flushes {
        let values = |app: &str| -> Vec<serde_json::Value> {
            (0..20).map(|i| json!([(t0 + ((f * 20 + i) as i64) * 1_000_000_000).to_string(), format!("{app} {f} {i}")])).collect()
        };
        let body = json!({"streams": [{"stream": {"app": "web"}, "values": values("web")}, {"stream": {"app": "db"}, "values": values("db")}]});
        assert_eq!(http.post(format!("{}/loki/api/v1/push", srv.base)).json(&body).send().unwrap().status().as_u16(), 204);
        assert_eq!(http.post(format!("{}/flush", srv.base)).send().unwrap().status().as_u16(), 204);
    }
    srv
}

fn parquet_files(data: &Path) -> Vec<std::path::PathBuf> {
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else if e.path().extension().is_some_and(|x| x == "parquet") {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&data.join("tenants"), &mut out);
    out
}

#[test]
fn remote_reads_tail_compact_retention_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = server_with_chunks(&data, TEST_LIMITS, 6);
    let range = ["--from", "2026-01-15T23:00:00Z", "--to", "2026-01-16T00:00:00Z"];
    // The same answers from the server as from the directory.
    for args in [
        vec!["query", "--limit", "5", r#"{app="web"} |= "web 5""#],
        vec!["query", "--step", "1m", r#"sum by (app) (count_over_time({app=~".+"}[1m]))"#],
        vec!["labels", "app"],
        vec!["series", r#"{app=~".+"}"#],
        vec!["stats", r#"{app="db"}"#],
    ] {
        let local = ok(silt(&[&args[..1], &["--data-dir", p(&data)], &range[..], &args[1..]].concat()));
        let remote = ok(silt(&[&args[..1], &["--addr", &srv.base], &range[..], &args[1..]].concat()));
        assert_eq!(local, remote, "{args:?}");
        assert!(!local.is_empty(), "{args:?}");
    }

    // --tail prints what arrives.
    let mut tail = Command::new(SILT)
        .args(["query", "--addr", &srv.base, "--tail", "--since", "5m", "--output", "raw", r#"{app="tail"}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let http = reqwest::blocking::Client::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    for i in 0..3 {
        let body = json!({"streams": [{"stream": {"app": "tail"}, "values": [[(now + i).to_string(), format!("tailed {i}")]]}]});
        http.post(format!("{}/loki/api/v1/push", srv.base)).json(&body).send().unwrap();
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 3 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(l);
        }
    }
    let _ = tail.kill();
    assert_eq!(got, vec!["tailed 0", "tailed 1", "tailed 2"]);

    // Compaction: refused on a directory a server holds, done through the server.
    let e = err(silt(&["compact", "--data-dir", p(&data)]));
    assert!(e.contains("in use by a running server") && e.contains("--addr"), "{e}");
    let files_before = parquet_files(&data).len();
    assert!(files_before >= 6, "{files_before}");
    let table = ok(silt(&["compact", "--addr", &srv.base]));
    assert!(table.starts_with("TENANT") && table.contains("fake"), "{table}");
    assert_eq!(parquet_files(&data).len(), 1);
    assert_eq!(count(&data, r#"{app=~"web|db"}"#), 240);
    srv.stop();

    // Check: clean, then damage found, repaired, clean again.
    let out = ok(silt(&["check", "--data-dir", p(&data)]));
    assert!(out.contains("no problems"), "{out}");
    // Retention dry run with a config: everything here is older than 24h.
    let config = write_config(dir.path(), "retention_period = \"24h\"\n");
    let preview = ok(silt(&["retention", "--dry-run", "--data-dir", p(&data), "--config", p(&config)]));
    assert!(preview.contains("retention_period") && preview.contains("240"), "{preview}");
    assert_eq!(count(&data, r#"{app=~"web|db"}"#), 240, "a dry run changes nothing");

    // Damage the chunk of the tailed entries (today's), so the old one stays for retention.
    let victim = parquet_files(&data).into_iter().find(|f| !f.to_string_lossy().contains("2026-01-15")).unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&victim, bytes).unwrap();
    let e = err(silt(&["check", "--data-dir", p(&data)]));
    assert!(e.contains("--repair"), "{e}");
    ok(silt(&["check", "--data-dir", p(&data), "--repair"]));
    assert!(ok(silt(&["check", "--data-dir", p(&data)])).contains("no problems"));
    assert!(data.join("quarantine").is_dir());

    // Retention applied: nothing left, and the disk space is back.
    assert_eq!(parquet_files(&data).len(), 1);
    let table = ok(silt(&["retention", "--data-dir", p(&data), "--config", p(&config)]));
    assert!(table.contains("1 -> 0"), "{table}");
    assert!(parquet_files(&data).is_empty());
    assert_eq!(count(&data, r#"{app=~"web|db"}"#), 0);
}

#[test]
fn compaction_killed_at_each_step_loses_and_duplicates_nothing() {
    for point in ["compact-after-write", "compact-before-manifest", "compact-after-manifest", "retention-after-manifest"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let srv = server_with_chunks(&data, TEST_LIMITS, 5);
        // A third stream far in the past, for the retention pass to drop.
        srv.stop();
        let before = ok(silt(&["query", "--data-dir", p(&data), "--from", "2026-01-15T23:00:00Z", "--to", "2026-01-16T00:00:00Z", "--limit", "1000", "--output", "jsonl", r#"{app=~".+"}"#]));
        assert_eq!(before.lines().count(), 200);
        let (cmd, config) = if point.starts_with("retention") {
            ("retention", Some(write_config(dir.path(), "retention_period = \"24h\"\n")))
        } else {
            ("compact", None)
        };
        let mut args = vec![cmd.to_string(), "--data-dir".into(), p(&data).into()];
        if let Some(c) = &config {
            args.extend(["--config".into(), p(c).into()]);
        }
        let out = Command::new(SILT).args(&args).env("SILT_CRASH_AT", point).output().unwrap();
        assert!(!out.status.success(), "{point}: the crash point was not reached: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("crashing at {point}")), "{point}");

        // After the crash: a consistent directory with every entry exactly once (or, for
        // retention, none when the swap happened), then a normal run finishes the job.
        let after = ok(silt(&["query", "--data-dir", p(&data), "--from", "2026-01-15T23:00:00Z", "--to", "2026-01-16T00:00:00Z", "--limit", "1000", "--output", "jsonl", r#"{app=~".+"}"#]));
        if point == "retention-after-manifest" {
            assert_eq!(after.lines().count(), 0, "{point}");
        } else {
            assert_eq!(after, before, "{point}");
        }
        let check = ok(silt(&["check", "--data-dir", p(&data), "--repair"]));
        assert!(check.contains("checked"), "{check}");
        ok(Command::new(SILT).args(&args).output().unwrap());
        assert!(ok(silt(&["check", "--data-dir", p(&data)])).contains("no problems"), "{point}");
        let last = ok(silt(&["query", "--data-dir", p(&data), "--from", "2026-01-15T23:00:00Z", "--to", "2026-01-16T00:00:00Z", "--limit", "1000", "--output", "jsonl", r#"{app=~".+"}"#]));
        if cmd == "retention" {
            assert!(last.is_empty());
            assert!(parquet_files(&data).is_empty(), "{point}");
        } else {
            assert_eq!(last, before, "{point}");
            assert_eq!(parquet_files(&data).len(), 1, "{point}");
        }
    }
}
