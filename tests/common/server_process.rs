//! The `okcvm` binary as a child process on a loopback port, for tests that kill it and for
//! the benchmark; and what a server's data folder takes on disk.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub child: Child,
    pub url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `okcvm serve --config <config>` on `port` and waits until `/healthz` answers;
/// returns the process and how long that took.
pub async fn start(
    binary: &str,
    config: &Path,
    port: u16,
    http: &reqwest::Client,
) -> (ServerProcess, Duration) {
    start_logging(binary, config, port, http, None).await
}

/// [`start`], with the server's log (at `OKCVM_LOG` level `filter`) written to a file.
pub async fn start_logging(
    binary: &str,
    config: &Path,
    port: u16,
    http: &reqwest::Client,
    log: Option<(&Path, &str)>,
) -> (ServerProcess, Duration) {
    let started = Instant::now();
    let (filter, stderr) = match log {
        Some((path, filter)) => (filter, Stdio::from(std::fs::File::create(path).unwrap())),
        None => ("error", Stdio::null()),
    };
    let child = Command::new(binary)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("OKCVM__SERVER__PORT", port.to_string())
        .env("OKCVM_LOG", filter)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    loop {
        if let Ok(response) = http.get(format!("{url}/healthz")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = started.elapsed();
    (ServerProcess { child, url }, ready)
}

/// Bytes of the files under `path` (a store or data folder), unreadable entries counted as 0.
pub fn disk_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .flatten()
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            })
            .sum()
    })
}
