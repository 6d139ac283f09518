//! Test-side client for the tutor-queue server.
//!
//! It owns its OWN tiny Phoenix codec (V1 objects, V2 arrays): a codec shared with the
//! server would hide a bug common to both. Every frame the server sends is checked
//! against the invariants of PROTOCOL.md 2.1-2.3 as it is decoded (object payloads,
//! exact V1 key set, `ref: null` on pushes/broadcasts, a consistent `user:status`), so
//! every test checks them for free.
//!
//! Every wait has a timeout, and a failed wait panics with the frames it saw.
//!
//! * [`server`]: start a server on port 0 (`start`, `Server`, `Config`).
//! * [`frames`]: the codec and the checks on frames, statuses and chat objects.
//! * [`client`]: one connection (`Client`): handshake, send, wait for frames.
//! * [`roles`]: teachers, students, ready/claim/enter, a chat started end to end.
//! * [`http`]: plain HTTP requests and the transcript API.
//! * [`rng`]: a deterministic PRNG.
//! * [`node`]: running the Node.js scripts of `tests/node/`.
//! * [`nodes`]: two tutor-queue nodes on one Redis (`two_nodes`).

#![allow(dead_code)]

pub mod client;
pub mod frames;
pub mod http;
pub mod node;
pub mod rng;
pub mod roles;
pub mod server;

use std::time::Duration;

pub use client::*;
pub use frames::*;
pub use http::*;
pub use rng::*;
pub use roles::*;
pub use server::*;
pub use tutor_queue::Config;

/// Generous bound for anything the server should send "promptly".
pub const WAIT: Duration = Duration::from_secs(10);
/// Bounded window for "nothing (more) arrives" checks.
pub const SILENCE: Duration = Duration::from_millis(300);

/// Runs `super::<name>(Framing::V1)` and `super::<name>(Framing::V2)` as two tests,
/// `<name>::v1` and `<name>::v2`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test]
            async fn v1() {
                super::$name($crate::support::Framing::V1).await
            }
            #[tokio::test]
            async fn v2() {
                super::$name($crate::support::Framing::V2).await
            }
        }
    )* };
}

/// The real `tutor-queue` binary as a child process (`RealServer`).
pub mod binary;

/// Tokens of a known test secret and requests that carry them (`auth`).
pub mod auth;
/// Two nodes of one deployment on one Redis (`two_nodes`).
pub mod nodes;
pub mod redis;
