//! The web pages in a real browser: `tests/node/browser_pages.mjs` drives
//! headless Chromium through `playwright-core` (pinned by
//! `tests/node/package-lock.json`) against a server on port 0: a teacher page
//! and student pages complete chats, places in line and counts update live,
//! "End chat", a student closing the page, the five-chat limit, and a teacher
//! closing the page; and the teacher's "Past chats" (the transcript store
//! read back through its HTTP API: the server records transcripts into a
//! temporary directory). Sign-in: each page signs in as a guest and keeps
//! its token, so a reloaded teacher page is the same teacher with the same
//! Past chats; "Sign out" makes a new one; a token handed in `#token=`
//! (minted here with the server's secret) signs the page in as its user.
//! Keeping one's place (PROTOCOL 6.3, issue 12): a waiting student who
//! reloads keeps her place; a student whose connection drops mid-chat sees
//! "Reconnecting…" and until when the chat is kept, her messages wait
//! (never shown as sent), the teacher's third message for her is refused
//! (at most two are held here) and shown as not delivered, and after the
//! return the messages both ways arrive in order, once; a teacher who reloads mid-chat gets the pane and
//! its history back; a student offline past the window is told she lost her
//! place. Screenshots of both pages mid-chat, of the teacher's page with a
//! transcript open, of a student reconnecting and of a restored teacher
//! pane are written to `target/screenshots/`.
//!
//! Office hours (issue 14), on a third server with a queue of its own: the
//! page review's fixes (no "next in line" without a teacher, same-name panes
//! told apart, multi-line messages and code, the 2,000-character limit said
//! and never cut, unread badges and "New messages ↓", "End chat" asking first,
//! "Ended chats", the finished count's label) and the page side of the
//! office-hours protocol: the waiting list with questions, the estimated wait
//! after three claims (none before), notifications (granted to the context
//! and observed through `window.Notification`), closing and opening the queue
//! with a message, and announcements reaching a waiting student and a teacher.
//!
//! Needs `node`, `npm` and Chromium (`/usr/bin/chromium`, or the `CHROMIUM`
//! environment variable). Without them the test skips with a message, except
//! under `CI=true`, where a missing program is a failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tutor_queue::identity::{Claims, Role};

use crate::support::auth::test_keys;
use crate::support::nodes::two_nodes_configured;
use crate::support::{self, node};

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// A server for the pages: transcripts recorded into `data`, the test tokens taken,
/// and a grace window of `grace`.
fn signed_pages(data: &tempfile::TempDir, grace: Duration) -> support::Config {
    support::Config {
        data_dir: data.path().to_owned(),
        transcripts: true,
        tokens: Some(test_keys()),
        reconnect_grace: grace,
        ..support::Config::default()
    }
}

#[tokio::test]
async fn student_and_teacher_pages_complete_chats_in_chromium() {
    if let Err(what) = node::ready(&["playwright-core"]).await {
        return node::missing("browser", &what);
    }
    let chromium = chromium();
    if !Path::new(&chromium).is_file() {
        return node::missing("browser", &format!("Chromium at {}", chromium.display()));
    }

    // Transcripts on, in a directory that lives as long as the test. The
    // pages sign in, so every page user keeps its place for the grace
    // window: 2 s on the first server (a closed page is gone soon after,
    // as the steps that close pages need), 120 s on the second (whatever
    // the keep-your-place steps drop or reload comes back well within it).
    let data = tempfile::tempdir().expect("temp dir");
    let server = support::start(signed_pages(&data, Duration::from_secs(2)));
    let keep_data = tempfile::tempdir().expect("temp dir");
    let keep = support::start(support::Config {
        // Two messages held for an away user, so the test sees the third
        // refused ("recipient away") and sent again later.
        held_messages: 2,
        ..signed_pages(&keep_data, Duration::from_secs(120))
    });
    // What an organisation hands its teacher in `#token=`: minted with the
    // server's secret, for an id and name of its own.
    let org_token = test_keys()
        .mint(&Claims::new(
            "org-teacher-42",
            Role::Teacher,
            "Dr Org",
            Duration::from_secs(3600),
        ))
        .expect("mint");
    // Two nodes of one deployment on a Redis, for the pages across nodes.
    let node_dirs = [(); 2].map(|()| tempfile::tempdir().expect("temp dir"));
    let [a, b] = [0, 1].map(|i| signed_pages(&node_dirs[i], Duration::from_secs(120)));
    // Without a redis-server (a developer's machine), only that part skips.
    let nodes = two_nodes_configured("browser: the pages on two nodes", a, b);
    let nodes_token = test_keys()
        .mint(&Claims::new(
            "nodes-teacher",
            Role::Teacher,
            "Ms Nodes",
            Duration::from_secs(3600),
        ))
        .expect("mint");
    let [node_a, node_b] = match &nodes {
        Some(nodes) => [nodes.a.port, nodes.b.port].map(|port| format!("http://127.0.0.1:{port}")),
        None => [String::new(), String::new()],
    };
    // Office hours (issue 14): a queue of its own, a short window.
    let hours_data = tempfile::tempdir().expect("temp dir");
    let hours = support::start(signed_pages(&hours_data, Duration::from_secs(2)));
    let hours_base = format!("http://127.0.0.1:{}", hours.port);
    let base = format!("http://127.0.0.1:{}", server.port);
    let keep_base = format!("http://127.0.0.1:{}", keep.port);
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    const SHOTS: [&str; 11] = [
        "student.png",
        "teacher.png",
        "teacher-past-chats.png",
        "student-reconnecting.png",
        "teacher-restored.png",
        "teacher-unread.png",
        "teacher-ended.png",
        "teacher-waiting-list.png",
        "teacher-office-hours.png",
        "student-queue-closed.png",
        "student-office-hours.png",
    ];
    for shot in SHOTS {
        // A screenshot left over from an earlier run must not count.
        let _ = std::fs::remove_file(screenshots.join(shot));
    }
    node::run_script(
        "browser test",
        "browser_pages.mjs",
        &[
            base.as_ref(),
            screenshots.as_os_str(),
            keep_base.as_ref(),
            hours_base.as_ref(),
        ],
        &[
            ("CHROMIUM", chromium.as_ref()),
            ("ORG_TOKEN", org_token.as_ref()),
            ("NODE_A", node_a.as_ref()),
            ("NODE_B", node_b.as_ref()),
            ("NODES_TOKEN", nodes_token.as_ref()),
        ],
        Duration::from_secs(330),
    )
    .await;
    for shot in SHOTS {
        assert!(
            screenshots.join(shot).is_file(),
            "screenshot {shot} missing"
        );
    }
}

/// A duration as the dashboard writes it (static/dashboard.js `duration`).
fn dashboard_duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "–".to_owned();
    };
    let s = (ms as f64 / 1000.0).round() as i64;
    let m = s / 60;
    let h = m / 60;
    match (s, m) {
        (s, _) if s < 60 => format!("{s} s"),
        (s, m) if m < 60 && s % 60 != 0 => format!("{m} min {} s", s % 60),
        (_, m) if m < 60 => format!("{m} min"),
        (_, m) if m % 60 != 0 => format!("{h} h {} min", m % 60),
        _ => format!("{h} h"),
    }
}

/// The dashboard (issue 14) in Chromium, `tests/node/browser_dashboard.mjs`: a
/// server with real chats (over WebSockets: teacher 1 two, teacher 2 one, one
/// ended) and chats with known waits (written through its store), a student
/// waiting; the page must show what `GET /api/stats` says (a teacher and an
/// admin), follow a student who gets in line within a poll, refuse a student, and
/// be reached from the teacher page's header. Screenshot: `dashboard.png`.
#[tokio::test]
async fn the_dashboard_shows_the_statistics_in_chromium() {
    use serde_json::{json, Value};

    use crate::support::auth::{admin_token, http_get_as, token_for};
    use crate::support::{chat_topic, enter_chat, ready_student, start_chat, Framing, WAIT};

    if let Err(what) = node::ready(&["playwright-core"]).await {
        return node::missing("browser dashboard", &what);
    }
    let chromium = chromium();
    if !Path::new(&chromium).is_file() {
        return node::missing(
            "browser dashboard",
            &format!("Chromium at {}", chromium.display()),
        );
    }
    let data = tempfile::tempdir().expect("temp dir");
    let running = crate::transcripts::start_server(support::Config {
        queue_sample_every: Duration::from_millis(200),
        ..signed_pages(&data, Duration::from_secs(2))
    });
    let srv = support::Server { port: running.port };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64;
    // Known waits: 1 min, 3 min and 5 min, teacher "ann".
    for (i, wait) in [60_000, 180_000, 300_000].into_iter().enumerate() {
        crate::stats::recorded_chat(
            &running.transcripts,
            "ann",
            now - 3_600_000 + i as i64 * 60_000,
            wait,
            600_000,
        );
    }
    // Real chats: teacher 1 takes two (and ends one), teacher 2 one; a fourth
    // student waits.
    let framing = Framing::V2;
    let (mut t1, mut s11, first) = start_chat(&srv, framing, 1, 11).await;
    let mut s12 = ready_student(&srv, framing, 12).await;
    let second = t1.claim_expect(&json!(1), &json!(12)).await;
    enter_chat(&mut t1, &json!(1), &mut s12, &json!(12), &second).await;
    let _t2 = start_chat(&srv, framing, 2, 13).await;
    let _s14 = ready_student(&srv, framing, 14).await;
    let topic = chat_topic(&first);
    t1.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s11.wait_for(&topic, "chat:terminated", WAIT).await;

    // What the API says once everything is recorded and sampled.
    let deadline = std::time::Instant::now() + WAIT;
    let stats = loop {
        let response = http_get_as(srv.port, "/api/stats", &admin_token()).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let body: Value = serde_json::from_str(&response.text()).expect("stats JSON");
        let sampled = body["queue_length"]
            .as_array()
            .and_then(|s| s.last())
            .is_some_and(|last| last["waiting"] == 1);
        if body["chats"] == 6 && body["chat_length_ms"]["median"].is_i64() && sampled {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never settled: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let per_teacher: serde_json::Map<String, Value> = stats["per_teacher"]
        .as_array()
        .expect("per_teacher")
        .iter()
        .map(|t| {
            (
                t["teacher"].as_str().unwrap_or("?").to_owned(),
                t["chats"].clone(),
            )
        })
        .collect();
    assert_eq!(
        Value::Object(per_teacher.clone()),
        json!({"ann": 3, "1": 2, "2": 1})
    );
    let waits: u64 = stats["wait_histogram"]
        .as_array()
        .expect("wait_histogram")
        .iter()
        .map(|b| b["chats"].as_u64().unwrap_or(0))
        .sum();
    let expect = json!({
        "chats": 6,
        "waitMedian": dashboard_duration(stats["wait_ms"]["median"].as_i64()),
        "lengthMedian": dashboard_duration(stats["chat_length_ms"]["median"].as_i64()),
        "perTeacher": per_teacher,
        "waiting": 1,
        "waits": waits,
    });

    let mint = |sub: &str, role: Role, name: &str| {
        test_keys()
            .mint(&Claims::new(sub, role, name, Duration::from_secs(3600)))
            .expect("mint")
    };
    let teacher = mint("stats-teacher", Role::Teacher, "Ms Stats");
    let admin = mint("stats-admin", Role::Admin, "Ada Admin");
    let student = token_for("stats-student", Role::Student);
    let base = format!("http://127.0.0.1:{}", srv.port);
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let _ = std::fs::remove_file(screenshots.join("dashboard.png"));
    node::run_script(
        "browser dashboard test",
        "browser_dashboard.mjs",
        &[base.as_ref(), screenshots.as_os_str()],
        &[
            ("CHROMIUM", chromium.as_ref()),
            ("TEACHER_TOKEN", teacher.as_ref()),
            ("ADMIN_TOKEN", admin.as_ref()),
            ("STUDENT_TOKEN", student.as_ref()),
            ("EXPECT", expect.to_string().as_ref()),
        ],
        Duration::from_secs(120),
    )
    .await;
    assert!(
        screenshots.join("dashboard.png").is_file(),
        "screenshot dashboard.png missing"
    );
}
