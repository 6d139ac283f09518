//! A real Phoenix client, not ours: `tests/node/phoenix_chat.mjs` drives a full
//! chat (teacher and student sockets, V2 framing) through the `phoenix` npm
//! package, pinned by `tests/node/package-lock.json`, against a server on port 0.
//!
//! Needs `node` and `npm`. Without them the test skips with a message, except
//! under `CI=true`, where a missing program is a failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::support;

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (or, under CI, fails) when a needed program is missing.
fn missing(what: &str) {
    if under_ci() {
        panic!("{what} is required for the phoenix.js test under CI=true");
    }
    eprintln!("SKIPPED phoenix.js test: {what} not available");
}

async fn succeeds(command: &mut Command) -> bool {
    matches!(command.stdout(Stdio::null()).stderr(Stdio::null()).status().await, Ok(s) if s.success())
}

#[tokio::test]
async fn phoenix_js_client_completes_a_chat_over_v2() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !succeeds(Command::new("node").arg("--version")).await {
        return missing("node");
    }
    if !dir.join("node_modules/phoenix").is_dir() {
        let installed = succeeds(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )
        .await;
        if !installed {
            return missing("`npm ci` in tests/node (npm or the registry)");
        }
    }

    let server = support::start_default();
    let endpoint = format!("ws://127.0.0.1:{}/socket", server.port);
    let run = Command::new("node")
        .arg("phoenix_chat.mjs")
        .arg(&endpoint)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("phoenix_chat.mjs did not finish within 30 s")
        .expect("could not start node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "phoenix.js chat failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("PASS"), "no PASS line:\n{stdout}");
}
