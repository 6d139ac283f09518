//! `--reconnect` and `--drop-rate` against the real server (PROTOCOL 6.3): users with
//! tokens drop their connections at random points and come back; a correct server
//! keeps every place and every chat (no violation), and one that forgets away users
//! (`--reconnect-grace-s 0`) is caught.

use std::time::Duration;

use load_client::{Config, Framing, Report};

mod support;

use support::{start_token_server, SECRET};

fn dropping(urls: Vec<String>, framing: Framing, seed: u64) -> Config {
    Config {
        urls,
        students: 30,
        teachers: 3,
        messages: 5,
        framing,
        timeout: Duration::from_secs(60),
        token_secret: Some(SECRET.to_owned()),
        reconnect: true,
        drop_rate: 0.3,
        seed: Some(seed),
        ..Config::default()
    }
}

fn assert_kept(report: &Report) {
    let summary = report.summary();
    assert_eq!(report.violations, 0, "{summary}");
    assert_eq!(report.errors, 0, "{summary}");
    // 30% of 30 students and of 3 teachers are planned to drop; every student's
    // drop point is within its script, a teacher's may lie past its last chat.
    assert!(report.drops >= 9, "{summary}");
    assert_eq!(report.resumes, report.drops, "{summary}");
    assert!(report.places_kept > 0, "{summary}");
    assert!(report.chats_resumed > 0, "{summary}");
    assert_eq!(report.students_finished, 30, "{summary}");
    assert_eq!(report.chats_completed, 30, "{summary}");
    assert!(!report.timed_out, "{summary}");
    assert!(report.success(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_users_come_back_to_their_places_and_chats_v1() {
    let (port, _data) = start_token_server(|_| {});
    // Two endpoints: connections alternate, and a user comes back on the other one.
    let urls = vec![
        format!("ws://127.0.0.1:{port}/ws"),
        format!("ws://127.0.0.1:{port}/socket/websocket?vsn=1.0.0"),
    ];
    let report = load_client::run(dropping(urls, Framing::V1, 12))
        .await
        .expect("run");
    assert_eq!(report.urls.len(), 2);
    assert_kept(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_users_come_back_to_their_places_and_chats_v2() {
    let (port, _data) = start_token_server(|_| {});
    let urls = vec![format!("ws://127.0.0.1:{port}")];
    let report = load_client::run(dropping(urls, Framing::V2, 21))
        .await
        .expect("run");
    assert_kept(&report);
}

/// With no grace window a drop does cost the place or the chat: the load-client
/// must say so and fail, and still finish (students that lost their place start over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_forgets_away_users_is_caught() {
    let (port, _data) = start_token_server(|config| {
        config.reconnect_grace = Duration::ZERO;
    });
    let mut c = dropping(vec![format!("ws://127.0.0.1:{port}/ws")], Framing::V1, 12);
    c.drop_rate = 0.5;
    let report = load_client::run(c).await.expect("run");
    let summary = report.summary();
    let lost =
        report.violations_by_kind["place_lost"] + report.violations_by_kind["chat_ended_away"];
    assert!(lost > 0, "{summary}");
    assert!(report.resumes > 0, "{summary}");
    assert!(!report.success(), "{summary}");
    assert!(!report.timed_out, "{summary}");
}
