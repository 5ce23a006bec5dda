//! The server with small per-session sandbox limits, for the tests of those limits; bwrap and
//! writable cgroups are required (CI runs as root on a host that has both).

use serde_json::json;

use super::{Reply, TestApp};
use okcvm::tools::sandbox::{Mode, Sandbox};

/// A shell call with its own timeout.
pub fn shell(command: &str, timeout_ms: u64) -> Reply {
    Reply::tool(
        "mshtools-shell",
        json!({"command": command, "timeout": timeout_ms}),
    )
}

/// 64 processes, 256 MiB and half a core per session; panics where the host cannot hold them.
pub fn spawn() -> TestApp {
    let app = TestApp::spawn_with(|c| {
        c.sandbox.allow_unsandboxed = false;
        c.sandbox.max_processes = 64;
        c.sandbox.memory_mb = 256;
        c.sandbox.cpu_percent = 50;
    });
    let sandbox = Sandbox::detect(&app.config.sandbox);
    assert!(
        matches!(sandbox.mode, Mode::Bubblewrap(_)),
        "bubblewrap must work here: {:?}",
        sandbox.mode
    );
    assert!(
        sandbox.cgroups.available(),
        "these tests need writable cgroups (run as root): {}",
        sandbox.cgroups.describe()
    );
    app
}
