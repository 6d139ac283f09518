//! A real Phoenix client, not ours: `tests/node/phoenix_chat.mjs` drives a full
//! chat (teacher and student sockets, V2 framing) through the `phoenix` npm
//! package, pinned by `tests/node/package-lock.json`, against a server on port 0.
//!
//! Needs `node` and `npm`. Without them the test skips with a message, except
//! under `CI=true`, where a missing program is a failure. Run once on one node,
//! and once with the student on another node of the same deployment (Redis).

use std::time::Duration;

use crate::support::nodes::two_nodes;
use crate::support::{self, node};

#[tokio::test]
async fn phoenix_js_client_completes_a_chat_over_v2() {
    if let Err(what) = node::ready(&["phoenix", "ws"]).await {
        return node::missing("phoenix.js", &what);
    }

    let server = support::start_default();
    let endpoint = format!("ws://127.0.0.1:{}/socket", server.port);
    node::run_script(
        "phoenix.js chat",
        "phoenix_chat.mjs",
        &[endpoint.as_ref()],
        &[],
        Duration::from_secs(30),
    )
    .await;
}

/// The same chat with the teacher on one node and the student on another of
/// the same deployment (README "Several nodes as one"): phoenix.js sees one
/// server.
#[tokio::test]
async fn phoenix_js_clients_on_two_nodes_complete_a_chat() {
    if let Err(what) = node::ready(&["phoenix", "ws"]).await {
        return node::missing("phoenix.js", &what);
    }
    let Some(nodes) = two_nodes("phoenix.js on two nodes", tutor_queue::Config::default()) else {
        return;
    };
    let teacher = format!("ws://127.0.0.1:{}/socket", nodes.a.port);
    let student = format!("ws://127.0.0.1:{}/socket", nodes.b.port);
    node::run_script(
        "phoenix.js chat on two nodes",
        "phoenix_chat.mjs",
        &[teacher.as_ref(), student.as_ref()],
        &[],
        Duration::from_secs(30),
    )
    .await;
}
