//! The load client against the real tutor-queue server, started in-process on port 0
//! (its own thread and actix System), under both framings.

use std::time::Duration;

use load_client::{Config, Framing, Report};

mod support;

use support::{start_server, start_server_with, SECRET};

fn config(url: String, framing: Framing) -> Config {
    Config {
        urls: vec![url],
        students: 30,
        teachers: 3,
        messages: 5,
        framing,
        timeout: Duration::from_secs(30),
        ..Config::default()
    }
}

fn assert_clean(report: &Report) {
    let summary = report.summary();
    assert_eq!(report.violations, 0, "{summary}");
    assert_eq!(report.errors, 0, "{summary}");
    assert_eq!(report.students_finished, 30, "{summary}");
    assert_eq!(report.chats_completed, 30, "{summary}");
    assert_eq!(report.relayed_messages, 30 * 5 * 2, "{summary}");
    // Each student was claimed once; teachers also claim when no one is waiting.
    assert_eq!(report.claims, 30, "{summary}");
    assert!(report.claim_replies >= 30, "{summary}");
    assert!(report.claims_per_s > 0.0, "{summary}");
    assert_eq!(report.rtt_samples, 30 * 5, "{summary}");
    assert_eq!(report.teachers_stopped, 3, "{summary}");
    assert!(!report.timed_out, "{summary}");
    assert!(report.success(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_against_the_real_server() {
    let (port, _data) = start_server();
    let report = load_client::run(config(format!("ws://127.0.0.1:{port}/ws"), Framing::V1))
        .await
        .expect("run");
    assert_eq!(report.vsn, 1);
    assert_clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_against_the_real_server() {
    let (port, _data) = start_server();
    // No path: V2 goes to /socket/websocket?vsn=2.0.0.
    let report = load_client::run(config(format!("ws://127.0.0.1:{port}"), Framing::V2))
        .await
        .expect("run");
    assert_eq!(
        report.url,
        format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0")
    );
    assert_clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teachers_wait_for_rate_limited_students() {
    // Students trickle in (one every 250 ms) while a one-message chat is much shorter:
    // the roster empties between arrivals, and teachers must not stop before the last
    // student is queued.
    let (port, _data) = start_server();
    let mut c = config(format!("ws://127.0.0.1:{port}/ws"), Framing::V1);
    c.students = 4;
    c.teachers = 2;
    c.messages = 1;
    c.connect_rate = 4.0;
    let report = load_client::run(c).await.expect("run");
    assert_eq!(report.students_finished, 4, "{}", report.summary());
    assert_eq!(report.teachers_stopped, 2, "{}", report.summary());
    assert_eq!(report.violations, 0, "{}", report.summary());
    assert!(report.success(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_keeps_idle_users_open() {
    let (port, _data) = start_server();
    let c = Config {
        urls: vec![format!("ws://127.0.0.1:{port}/ws")],
        hold: 50,
        timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let report = load_client::run(c).await.expect("run");
    assert_eq!(report.mode, "hold");
    assert_eq!(report.held_open, 50, "{}", report.summary());
    assert_eq!(report.errors, 0, "{}", report.summary());
    assert!(report.success());
}

/// Tokens are required by the server, so every user of a clean run connected with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_secret_against_a_server_that_requires_tokens() {
    let (port, _data) = start_server_with(|config| {
        config.tokens =
            Some(tutor_queue::identity::TokenKeys::from_secret(SECRET.as_bytes()).expect("keys"));
        config.require_token = true;
    });
    for (url, framing) in [
        (format!("ws://127.0.0.1:{port}/ws"), Framing::V1),
        (format!("ws://127.0.0.1:{port}"), Framing::V2),
    ] {
        let mut c = config(url, framing);
        c.token_secret = Some(SECRET.to_owned());
        let report = load_client::run(c).await.expect("run");
        assert!(report.tokens);
        assert_clean(&report);
    }
    // Another secret: every upgrade is refused.
    let mut c = config(format!("ws://127.0.0.1:{port}/ws"), Framing::V1);
    c.students = 2;
    c.teachers = 1;
    c.timeout = Duration::from_secs(5);
    c.token_secret = Some("not the server's secret, 32+ bytes".to_owned());
    let report = load_client::run(c).await.expect("run");
    assert_eq!(report.students_finished, 0, "{}", report.summary());
    assert!(
        report.errors_by_kind.contains_key("connect"),
        "{}",
        report.summary()
    );
    assert!(!report.success());
}

/// Waiting-list watchers and students with questions (PROTOCOL 6.4): a clean run, and
/// every watcher got the list after its join and never more than the coalescing allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_list_watchers_against_the_real_server() {
    let (port, _data) = start_server();
    for (url, framing) in [
        (format!("ws://127.0.0.1:{port}/ws"), Framing::V1),
        (format!("ws://127.0.0.1:{port}"), Framing::V2),
    ] {
        let mut c = config(url, framing);
        c.waiting_watchers = 4;
        c.question = true;
        let report = load_client::run(c).await.expect("run");
        assert_clean(&report);
        let summary = report.summary();
        let watched = report.waiting_list.as_ref().expect("waiting_list figures");
        assert_eq!((watched.watchers, watched.watching), (4, 4), "{summary}");
        assert!(watched.frames >= 4, "{summary}");
        assert_eq!(watched.over_bound, 0, "{summary}");
        assert!(watched.max_total <= 30, "{summary}");
    }
}
