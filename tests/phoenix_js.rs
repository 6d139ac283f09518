//! A real Phoenix client, not ours: `tests/node/phoenix_chat.mjs` drives a full
//! chat (teacher and student sockets, V2 framing) through the `phoenix` npm
//! package, pinned by `tests/node/package-lock.json`, against a server on port 0.
//!
//! Needs `node` and `npm`. Without them the test skips with a message, except
//! under `CI=true`, where a missing program is a failure.

use std::time::Duration;

use tokio::process::Command;

use crate::support::{self, node};

#[tokio::test]
async fn phoenix_js_client_completes_a_chat_over_v2() {
    if let Err(what) = node::ready(&["phoenix", "ws"]).await {
        return node::missing("phoenix.js", &what);
    }

    let server = support::start_default();
    let endpoint = format!("ws://127.0.0.1:{}/socket", server.port);
    let run = Command::new("node")
        .arg("phoenix_chat.mjs")
        .arg(&endpoint)
        .current_dir(node::dir())
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
