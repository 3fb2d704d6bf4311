//! End-to-end tests of the `silt` binary: a real `silt serve` process on a loopback port
//! (killed with SIGKILL where the test is about crashes), `silt query` on its data
//! directory, and the conformance kit.

mod bench;
mod cli_query;
mod conformance;
mod crash;
mod ops;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SILT: &str = env!("CARGO_BIN_EXE_silt");

/// Limits for tests that push fixed, old timestamps and expect exactly the labels they
/// pushed: old samples kept, no service-name or level discovery.
pub const TEST_LIMITS: &str = "[limits]\nreject_old_samples = false\ndiscover_service_name = []\ndiscover_log_levels = false\n";

/// A `silt serve` child process.
pub struct SiltProcess {
    child: Child,
    pub base: String,
}

impl SiltProcess {
    /// Starts `silt serve` on a free loopback port; `config` is written to a file when given.
    pub fn start(data_dir: &Path, config: Option<&str>) -> SiltProcess {
        let mut cmd = Command::new(SILT);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        if let Some(text) = config {
            let path = data_dir.with_extension("toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("silt starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split_whitespace().find_map(|w| w.strip_prefix("addr=")) {
                    let _ = tx.send(addr.to_string());
                }
                eprintln!("[silt] {line}");
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(120)).expect("silt prints its address");
        SiltProcess { child, base: format!("http://{addr}") }
    }

    /// SIGKILL: no shutdown, no flush, like a crash.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for the graceful shutdown (which flushes).
    pub fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "silt exited with {exit}");
    }
}

impl Drop for SiltProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
