//! Keeping one's place (PROTOCOL 6.3, issue 12): a token user whose connection drops is
//! *away* for the grace window instead of gone. A waiting student keeps its place (claims
//! skip it, counts stay), a chat survives either side being away (messages to the away
//! side are held, bounded, and delivered in order on its return), the join replies say
//! where the user stands, the other side may ask to be told (`chat:away`/`chat:back`),
//! and after the window the user vanishes exactly as in 6.1 and 6.2. Several tabs share
//! one presence; a `phx_leave` is a real leave; tokenless users (and every user when the
//! window is 0) keep PROTOCOL 6 as it was. Written from PROTOCOL.md, V1 and V2.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tutor_queue::identity::Role;

use crate::support::auth::*;
use crate::support::*;

/// A window no test outlives: within it, nobody may vanish.
pub(crate) const LONG: Duration = Duration::from_secs(60);
/// A window the tests that watch it end wait out.
const SHORT: Duration = Duration::from_secs(2);

/// A server that takes the test tokens, with a grace window of `grace`.
fn keeping(grace: Duration) -> Config {
    Config {
        tokens: Some(test_keys()),
        reconnect_grace: grace,
        ..Config::default()
    }
}

/// Like [`keeping`], recording transcripts into `dir`.
fn keeping_recorded(grace: Duration, dir: &tempfile::TempDir) -> Config {
    Config {
        data_dir: dir.path().to_owned(),
        ..keeping(grace)
    }
}

/// Join params with one opt-in flag set.
pub(crate) fn with(params: Value, flag: &str) -> Value {
    opting(params, &[flag])
}

/// Join params with these opt-in flags set.
pub(crate) fn opting(params: Value, flags: &[&str]) -> Value {
    let mut params = params;
    for flag in flags {
        params[*flag] = json!(true);
    }
    params
}

/// A new connection whose token proves `sub` as `role` (a new tab, or a reload).
pub(crate) async fn signed_in(srv: &Server, framing: Framing, sub: &str, role: Role) -> Client {
    let path = framing.default_path();
    let sep = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{sep}token={}", token_for(sub, role));
    connect_path(srv.port, &path, framing)
        .await
        .named(format!("{role} {sub} (token)"))
}

/// Joins and asserts the reply is `ok` with exactly `response`.
pub(crate) async fn join_replying(c: &mut Client, topic: &str, params: Value, response: Value) {
    let reply = c.join(topic, params).await;
    assert_eq!(
        reply.payload,
        json!({"status": "ok", "response": response}),
        "[{}] the join reply of {topic} (PROTOCOL 6.3): {}",
        c.name,
        reply.raw
    );
}

/// A signed-in teacher joined to `presence:teachers`, with no chats yet.
pub(crate) async fn signed_teacher(srv: &Server, framing: Framing, tid: &str) -> Client {
    let mut t = signed_in(srv, framing, tid, Role::Teacher).await;
    join_replying(
        &mut t,
        "presence:teachers",
        teacher_params(&json!(tid)),
        json!({"chats": []}),
    )
    .await;
    t
}

/// A signed-in student joined to its presence topic (`params` are its join params),
/// new to the server (or back too late to be anything else), so `present`.
pub(crate) async fn signed_present(
    srv: &Server,
    framing: Framing,
    sid: &str,
    params: Value,
) -> Client {
    let mut s = signed_in(srv, framing, sid, Role::Student).await;
    join_replying(
        &mut s,
        &student_topic(&json!(sid)),
        params,
        json!({"state": "present"}),
    )
    .await;
    s
}

/// Like [`signed_present`], then ready.
pub(crate) async fn signed_student_with(
    srv: &Server,
    framing: Framing,
    sid: &str,
    params: Value,
) -> Client {
    let mut s = signed_present(srv, framing, sid, params).await;
    s.ready(&json!(sid)).await;
    s
}

pub(crate) async fn signed_student(srv: &Server, framing: Framing, sid: &str) -> Client {
    signed_student_with(srv, framing, sid, student_params(&json!(sid))).await
}

/// Both sides of chat `cid` join it (with `params` of their own) and enter it; as token
/// users, nothing was relayed yet and nothing is held.
pub(crate) async fn enter(
    t: &mut Client,
    t_params: Value,
    s: &mut Client,
    s_params: Value,
    cid: &str,
) {
    let topic = chat_topic(cid);
    let sid = s_params["userId"].clone();
    s.wait_for(&student_topic(&sid), "new:chat", WAIT).await;
    let nothing_yet = json!({"seq": 0, "held": 0});
    join_replying(t, &topic, t_params, nothing_yet.clone()).await;
    join_replying(s, &topic, s_params, nothing_yet).await;
    both_enter(t, s, cid).await;
}

/// `s`, a new connection of student `sid` while her chat goes on, joins her presence
/// topic: the reply says she is `chatting`. Returns the reply.
pub(crate) async fn joins_chatting(s: &mut Client, sid: &Value) -> Frame {
    let reply = s.join(&student_topic(sid), student_params(sid)).await;
    assert_eq!(
        reply.response()["state"],
        json!("chatting"),
        "{}",
        reply.raw
    );
    reply
}

/// `tab`, one more connection of student `sid` while she waits in line, joins her
/// presence topic: the reply says she is `waiting`.
pub(crate) async fn another_tab_joins_waiting(tab: &mut Client, sid: &Value) {
    join_replying(
        tab,
        &student_topic(sid),
        student_params(sid),
        json!({"state": "waiting"}),
    )
    .await;
}

/// `tab`, one more connection of student `sid` while she is in chat `cid`, joins her
/// presence topic (`chatting`) and the chat, where nothing is held for her.
pub(crate) async fn another_tab_joins_the_chat(tab: &mut Client, sid: &Value, cid: &str) {
    joins_chatting(tab, sid).await;
    join_replying(
        tab,
        &chat_topic(cid),
        student_params(sid),
        json!({"seq": 0, "held": 0}),
    )
    .await;
}

/// Teacher `tid` back on a new connection: its presence join reply lists exactly the
/// chats `(chat id, student id)`, in any order, each as [`assert_is_chat`] says.
pub(crate) async fn teacher_back_with(
    srv: &Server,
    framing: Framing,
    tid: &str,
    expected: &[(&str, &str)],
) -> Client {
    let mut t = signed_in(srv, framing, tid, Role::Teacher).await;
    let reply = t
        .join("presence:teachers", teacher_params(&json!(tid)))
        .await;
    assert_eq!(reply.status(), "ok", "{}", reply.raw);
    let chats = reply.response()["chats"]
        .as_array()
        .unwrap_or_else(|| panic!("chats in the teacher's join reply: {}", reply.raw));
    assert_eq!(chats.len(), expected.len(), "every chat: {}", reply.raw);
    for (cid, sid) in expected {
        let chat = chats
            .iter()
            .find(|c| c["id"] == json!(cid))
            .unwrap_or_else(|| panic!("chat {cid} with {sid} in {}", reply.raw));
        assert_is_chat(chat, cid, tid, sid);
    }
    t
}

/// Signed-in teacher `t1` in entered chats with `ana` and `ben`, whose chat joins opt
/// into `ana_flags` and `ben_flags`. Returns (teacher, [(ana, chat id), (ben, chat id)]).
async fn t1_with_ana_and_ben(
    srv: &Server,
    framing: Framing,
    ana_flags: &[&str],
    ben_flags: &[&str],
) -> (Client, [(Client, String); 2]) {
    let t1 = json!("t1");
    let mut t = signed_teacher(srv, framing, "t1").await;
    let mut ana = signed_student(srv, framing, "ana").await;
    let mut ben = signed_student(srv, framing, "ben").await;
    let cid_a = t.claim_expect(&t1, &json!("ana")).await;
    let cid_b = t.claim_expect(&t1, &json!("ben")).await;
    for (s, sid, cid, flags) in [
        (&mut ana, "ana", &cid_a, ana_flags),
        (&mut ben, "ben", &cid_b, ben_flags),
    ] {
        let s_params = opting(student_params(&json!(sid)), flags);
        enter(&mut t, teacher_params(&t1), s, s_params, cid).await;
    }
    (t, [(ana, cid_a), (ben, cid_b)])
}

/// Signed-in teacher `tid` and student `sid`, in an entered chat; the teacher's chat
/// channel asked for away notices (so a test knows when the student is away).
async fn signed_chat(
    srv: &Server,
    framing: Framing,
    tid: &str,
    sid: &str,
) -> (Client, Client, String) {
    signed_chat_opting(srv, framing, (tid, &["awayNotices"]), (sid, &[])).await
}

/// Signed-in teacher and student, each `(id, opt-in flags of its chat join)`, in an
/// entered chat.
async fn signed_chat_opting(
    srv: &Server,
    framing: Framing,
    (tid, t_flags): (&str, &[&str]),
    (sid, s_flags): (&str, &[&str]),
) -> (Client, Client, String) {
    let mut t = signed_teacher(srv, framing, tid).await;
    let mut s = signed_student(srv, framing, sid).await;
    let cid = t.claim_expect(&json!(tid), &json!(sid)).await;
    enter(
        &mut t,
        opting(teacher_params(&json!(tid)), t_flags),
        &mut s,
        opting(student_params(&json!(sid)), s_flags),
        &cid,
    )
    .await;
    (t, s, cid)
}

/// The next `user:status` is `expected` (teachers, total, waiting, chatting, finished).
pub(crate) async fn status_is(t: &mut Client, expected: (u64, u64, u64, u64, u64), what: &str) {
    let st = t.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(
        status_tuple(&st.payload),
        expected,
        "[{}] {what}: (teachers, total, waiting, chatting, finished)",
        t.name
    );
}

/// Open WebSocket connections, over both framings, as `/metrics` counts them.
pub(crate) async fn connections(port: u16) -> f64 {
    let metrics = http_get(port, "/metrics").await.text();
    ["v1", "v2"]
        .iter()
        .filter_map(|f| {
            sample(
                &metrics,
                &format!(r#"tutor_queue_connections{{framing="{f}"}}"#),
            )
        })
        .sum()
}

/// Users away now, as `/metrics` counts them (`tutor_queue_users_away`).
async fn users_away(port: u16) -> f64 {
    let metrics = http_get(port, "/metrics").await.text();
    sample(&metrics, "tutor_queue_users_away").unwrap_or(-1.0)
}

/// Drops `c` without a close handshake and waits until `/metrics` counts `away` users.
/// A waiting student's drop shows in nothing a client sees (that is the point), so
/// this is what a test waits for before claiming.
async fn drop_and_wait_away(port: u16, c: Client, away: f64) {
    c.vanish();
    let deadline = Instant::now() + WAIT;
    while users_away(port).await != away {
        assert!(
            Instant::now() < deadline,
            "/metrics does not count {away} users away {WAIT:?} after a drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drops `c` without a close handshake and waits until the server has let go of the
/// connection (a tab closed while another tab of the user stays).
pub(crate) async fn drop_connection(port: u16, c: Client) {
    let before = connections(port).await;
    c.vanish();
    let deadline = Instant::now() + WAIT;
    while connections(port).await >= before {
        assert!(
            Instant::now() < deadline,
            "the server still counts {before} connections {WAIT:?} after one dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Now, in milliseconds since the Unix epoch (the unit of `until`).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Drops `c` (whose chat channel is on `cid`), and waits for the other side's
/// `chat:away` on `notified`, which asked for it; checks role and `until`.
pub(crate) async fn goes_away(
    c: Client,
    role: &str,
    notified: &mut Client,
    cid: &str,
    grace: Duration,
) {
    let topic = chat_topic(cid);
    let before = unix_ms();
    c.vanish();
    let away = notified.wait_for(&topic, "chat:away", WAIT).await;
    let after = unix_ms();
    assert_eq!(away.payload["role"], json!(role), "chat:away: {}", away.raw);
    let until = away.payload["until"]
        .as_u64()
        .unwrap_or_else(|| panic!("chat:away until is unix ms: {}", away.raw));
    let grace = grace.as_millis() as u64;
    assert!(
        before + grace <= until + 1000 && until <= after + grace + 1000,
        "until is the drop + the window ({grace} ms), between {} and {}: {}",
        before + grace,
        after + grace,
        away.raw
    );
    assert_eq!(
        away.payload.as_object().map(|o| o.len()),
        Some(2),
        "{}",
        away.raw
    );
}

/// The next frames on `c` are exactly `event` on `topic` with these payloads, in order.
async fn next_are(c: &mut Client, topic: &str, event: &str, payloads: &[Value]) {
    for (i, expected) in payloads.iter().enumerate() {
        let f = c.next_frame(WAIT).await;
        assert!(
            f.is(topic, event) && &f.payload == expected,
            "[{}] frame {i} after the join reply should be {event} {expected}, got {}",
            c.name,
            f.raw
        );
    }
}

/// The chat object of a join reply is chat `cid` of teacher `tid` and student `sid`,
/// active, with the seven keys of PROTOCOL 5.5.
fn assert_is_chat(chat: &Value, cid: &str, tid: &str, sid: &str) {
    assert_chat_keys(chat);
    assert_eq!(chat["id"], json!(cid), "{chat}");
    assert_eq!(chat["teacher_id"], json!(tid), "{chat}");
    assert_eq!(chat["student_id"], json!(sid), "{chat}");
    assert_eq!(chat["status"], json!("active"), "{chat}");
}

/// The transcript of `cid` once it holds `n` messages (it is committed shortly after
/// the relay), as (sender, payload).
pub(crate) async fn transcript_of(port: u16, cid: &str, n: usize) -> (Value, Vec<(String, Value)>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (chat, messages) = transcript_as(port, cid, &admin_token()).await;
        if messages.len() >= n || Instant::now() >= deadline {
            return (chat, messages);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The transcript of `cid` is exactly these runs of (sender, payloads), in order.
async fn transcript_is(port: u16, cid: &str, runs: &[(&str, &[Value])], what: &str) {
    let expected: Vec<(String, Value)> = runs
        .iter()
        .flat_map(|(sender, payloads)| from(sender, payloads))
        .collect();
    let (_, stored) = transcript_of(port, cid, expected.len()).await;
    assert_eq!(stored, expected, "{what}");
}

/// The other side of a chat.
pub(crate) fn other_side(side: &str) -> &'static str {
    if side == "teacher" {
        "student"
    } else {
        "teacher"
    }
}

/// `from`, the `side` ("teacher" or "student") of the chat on `topic`, sends `live`; it
/// is the very next frame `to` reads.
async fn relayed_next(from: &mut Client, side: &str, to: &mut Client, topic: &str, live: &Value) {
    from.push(topic, &format!("{side}:send"), live.clone())
        .await;
    let receive = format!("{}:receive", other_side(side));
    next_are(to, topic, &receive, std::slice::from_ref(live)).await;
}

/// `back`, the `side` of the chat on `topic` returning from away, joins it with
/// `params`: the reply counts `seq` messages relayed and the `held` ones, which come
/// next, in order.
pub(crate) async fn rejoin_gets_held(
    back: &mut Client,
    side: &str,
    topic: &str,
    params: Value,
    seq: usize,
    held: &[Value],
) {
    let counts = json!({"seq": seq, "held": held.len()});
    join_replying(back, topic, params, counts).await;
    next_are(back, topic, &format!("{side}:receive"), held).await;
}

/// `n` messages `{"message": "<label> <i>"}`, numbered from 1.
pub(crate) fn numbered(label: &str, n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| json!({"message": format!("{label} {i}")}))
        .collect()
}

/// `c`, the `side` of the chat on `topic`, sends `messages`, then waits for a reply on
/// the same channel (to its `<side>:joined`): every send before it has been handled.
pub(crate) async fn send_all(c: &mut Client, side: &str, topic: &str, messages: &[Value]) {
    for m in messages {
        c.push(topic, &format!("{side}:send"), m.clone()).await;
    }
    c.call(topic, &format!("{side}:joined"), json!({}))
        .await
        .assert_ok_empty();
}

/// `what` happened `waited` after a drop: not before the window [`SHORT`] ended (less
/// 100 ms of timer slack).
fn not_before_the_window(waited: Duration, what: &str) {
    assert!(
        waited + Duration::from_millis(100) >= SHORT,
        "{what} {waited:?} after the drop, before the window ({SHORT:?}) ended"
    );
}

/// The next `user:status` on `t` is `expected`, and comes no sooner than the window
/// after `dropped`.
async fn status_after_the_window(
    t: &mut Client,
    dropped: Instant,
    expected: (u64, u64, u64, u64, u64),
    what: &str,
) {
    let st = t
        .wait_for("presence:teachers", "user:status", SHORT + WAIT)
        .await;
    not_before_the_window(dropped.elapsed(), what);
    assert_eq!(status_tuple(&st.payload), expected, "{what}: {}", st.raw);
}

/// Teacher t1, then ready students ana and ben, both in line.
async fn t1_ana_and_ben_waiting(srv: &Server, framing: Framing) -> (Client, Client, Client) {
    let mut t = signed_teacher(srv, framing, "t1").await;
    let ana = signed_student(srv, framing, "ana").await;
    let ben = signed_student(srv, framing, "ben").await;
    status_is(&mut t, (1, 1, 1, 0, 0), "ana ready").await;
    status_is(&mut t, (1, 2, 2, 0, 0), "ben ready").await;
    (t, ana, ben)
}

/// `c` ends the chat on `topic` (`chat:terminate`, replied `ok`) and hears it ended.
pub(crate) async fn ends_the_chat(c: &mut Client, topic: &str) {
    c.call(topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    c.wait_for(topic, "chat:terminated", WAIT).await;
}

fn from(sender: &str, payloads: &[Value]) -> Vec<(String, Value)> {
    payloads
        .iter()
        .map(|p| (sender.to_owned(), p.clone()))
        .collect()
}

// ----- 1. a waiting student who is away keeps its place -----

/// Ana, at place 1, drops. Nothing changes for the teachers; the claim serves Ben, the
/// next present student, and Cara (behind her) still counts her. Ana comes back on a new
/// connection: `waiting`, one `user:status` with the same counts, still first (even
/// after a repeated `student:ready`), and the next claim serves her before Cara.
async fn an_away_waiting_student_keeps_her_place(framing: Framing) {
    let srv = start(keeping(LONG));
    let tid = json!("t1");
    let mut t = signed_teacher(&srv, framing, "t1").await;
    let ana = signed_student(&srv, framing, "ana").await;
    status_is(&mut t, (1, 1, 1, 0, 0), "ana ready").await;
    let _ben = signed_student(&srv, framing, "ben").await;
    status_is(&mut t, (1, 2, 2, 0, 0), "ben ready").await;
    let cara_topic = student_topic(&json!("cara"));
    let mut cara = signed_student_with(
        &srv,
        framing,
        "cara",
        with(student_params(&json!("cara")), "queuePosition"),
    )
    .await;
    status_is(&mut t, (1, 3, 3, 0, 0), "cara ready").await;
    cara.wait_match(
        |f| f.is(&cara_topic, "queue:position") && f.payload["position"] == 3,
        "cara at place 3",
        WAIT,
    )
    .await;
    cara.clear();

    drop_and_wait_away(srv.port, ana, 1.0).await;
    no_status(&mut t, "ana (waiting, with a token) dropped").await;

    t.claim_expect(&tid, &json!("ben")).await;
    status_is(&mut t, (1, 3, 2, 1, 0), "ben taken, ana still waiting").await;
    let moved = cara
        .wait_match(
            |f| f.is(&cara_topic, "queue:position") && f.payload["position"] != 3,
            "cara's place to move",
            WAIT,
        )
        .await;
    assert_eq!(
        moved.payload["position"],
        json!(2),
        "cara still counts the away ana before her: {}",
        moved.raw
    );

    // Ana reloads: a new connection, the same token.
    let ana_topic = student_topic(&json!("ana"));
    let mut ana = signed_in(&srv, framing, "ana", Role::Student).await;
    join_replying(
        &mut ana,
        &ana_topic,
        with(student_params(&json!("ana")), "queuePosition"),
        json!({"state": "waiting"}),
    )
    .await;
    status_is(&mut t, (1, 3, 2, 1, 0), "ana back (same counts)").await;
    no_status(&mut t, "ana back: one user:status").await;
    let place = ana.wait_for(&ana_topic, "queue:position", WAIT).await;
    assert_eq!(
        place.payload,
        json!({"position": 1, "waiting": 2, "teachers": 1, "eta_s": null}),
        "ana is first again: {}",
        place.raw
    );
    ana.ready(&json!("ana")).await;
    no_status(&mut t, "ana's repeated student:ready").await;
    ana.expect_none(
        |f| f.is(&ana_topic, "queue:position") && f.payload["position"] != 1,
        "a queue:position other than 1 after ana's repeated student:ready",
        SILENCE,
    )
    .await;

    t.claim_expect(&tid, &json!("ana")).await;
    ana.wait_for(&ana_topic, "new:chat", WAIT).await;
    status_is(&mut t, (1, 3, 1, 2, 0), "ana taken before cara").await;
    t.claim_expect(&tid, &json!("cara")).await;
}

// ----- 2. after the window, an away waiting student leaves the line -----

async fn an_away_waiting_student_leaves_the_line_after_the_window(framing: Framing) {
    let srv = start(keeping(SHORT));
    let tid = json!("t1");
    let (mut t, ana, _ben) = t1_ana_and_ben_waiting(&srv, framing).await;

    let dropped = Instant::now();
    ana.vanish();
    status_after_the_window(&mut t, dropped, (1, 1, 1, 0, 0), "ana left the line").await;
    no_status(&mut t, "ana's window ended: one user:status").await;
    t.claim_expect(&tid, &json!("ben")).await;
    assert_eq!(t.claim(&tid).await, None, "ana is no longer in the line");

    // Back too late: she starts over.
    signed_present(&srv, framing, "ana", student_params(&json!("ana"))).await;
}

/// Ana drops, comes back (1 s later), drops again: the second spell gets a window of its
/// own, so she leaves the line a full window after the second drop, not the first.
async fn a_second_drop_gets_a_window_of_its_own(framing: Framing) {
    let srv = start(keeping(SHORT));
    let (mut t, ana, _ben) = t1_ana_and_ben_waiting(&srv, framing).await;

    ana.vanish();
    tokio::time::sleep(SHORT / 2).await;
    let mut ana = signed_in(&srv, framing, "ana", Role::Student).await;
    join_replying(
        &mut ana,
        &student_topic(&json!("ana")),
        student_params(&json!("ana")),
        json!({"state": "waiting"}),
    )
    .await;
    status_is(&mut t, (1, 2, 2, 0, 0), "ana back within the window").await;
    let dropped = Instant::now();
    ana.vanish();
    // Not the first spell's window: that one would have ended her second.
    let what = "ana left the line after her second drop";
    status_after_the_window(&mut t, dropped, (1, 1, 1, 0, 0), what).await;
    t.claim_expect(&json!("t1"), &json!("ben")).await;
}

// ----- 3. a chat survives either side being away -----

/// The teacher writes while Ana is away: recorded, held, and on her return (a new
/// connection) her presence join says she is chatting, the chat join says how many were
/// relayed and held, and the held messages come right after that reply, then live ones.
async fn messages_to_an_away_student_wait_for_her(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start(keeping_recorded(LONG, &dir));
    let (mut t, mut s, cid) = signed_chat(&srv, framing, "t1", "ana").await;
    let topic = chat_topic(&cid);
    let q0 = json!({"message": "what is 2+2?"});
    t.push(&topic, "teacher:send", q0.clone()).await;
    s.wait_for(&topic, "student:receive", WAIT).await;
    let a0 = json!({"message": "4"});
    s.push(&topic, "student:send", a0.clone()).await;
    t.wait_for(&topic, "teacher:receive", WAIT).await;

    goes_away(s, "student", &mut t, &cid, LONG).await;
    let held = numbered("while you were away", 4);
    send_all(&mut t, "teacher", &topic, &held[..3]).await;
    t.expect_none(
        |f| f.is(&topic, "phx_reply") && f.status() == "error",
        "an error reply to a message held for ana",
        Duration::ZERO,
    )
    .await;

    let mut s = signed_in(&srv, framing, "ana", Role::Student).await;
    let reply = s
        .join(&student_topic(&json!("ana")), student_params(&json!("ana")))
        .await;
    assert_eq!(reply.status(), "ok", "{}", reply.raw);
    assert_eq!(
        reply.response()["state"],
        json!("chatting"),
        "{}",
        reply.raw
    );
    assert_is_chat(&reply.response()["chat"], &cid, "t1", "ana");
    assert_eq!(
        reply.response().as_object().map(|o| o.len()),
        Some(2),
        "state and chat only: {}",
        reply.raw
    );
    // Back, but not on the chat yet (a page rebuilding itself): still held.
    t.wait_for(&topic, "chat:back", WAIT).await;
    send_all(&mut t, "teacher", &topic, &held[3..]).await;
    let ana = student_params(&json!("ana"));
    rejoin_gets_held(&mut s, "student", &topic, ana, 6, &held).await;
    let live = json!({"message": "welcome back"});
    relayed_next(&mut t, "teacher", &mut s, &topic, &live).await;

    let runs: [(&str, &[Value]); 4] = [
        ("teacher", &[q0]),
        ("student", &[a0]),
        ("teacher", &held),
        ("teacher", &[live]),
    ];
    transcript_is(srv.port, &cid, &runs, "every message, in order").await;
}

/// The same the other way: Ana writes while her teacher is away (reloading), and the
/// teacher's return gets them after its chat join reply.
async fn messages_to_an_away_teacher_wait_for_it(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start(keeping_recorded(LONG, &dir));
    let (tid, sid) = ("t1", "ana");
    let (mut t, mut s, cid) =
        signed_chat_opting(&srv, framing, (tid, &[]), (sid, &["awayNotices"])).await;
    let topic = chat_topic(&cid);
    let q0 = json!({"message": "hello"});
    t.push(&topic, "teacher:send", q0.clone()).await;
    s.wait_for(&topic, "student:receive", WAIT).await;

    goes_away(t, "teacher", &mut s, &cid, LONG).await;
    let held = numbered("are you there?", 2);
    send_all(&mut s, "student", &topic, &held).await;

    let mut t = teacher_back_with(&srv, framing, tid, &[(&cid, sid)]).await;
    let t1 = teacher_params(&json!(tid));
    rejoin_gets_held(&mut t, "teacher", &topic, t1, 3, &held).await;
    let live = json!({"message": "sorry, my wifi"});
    relayed_next(&mut s, "student", &mut t, &topic, &live).await;

    let runs: [(&str, &[Value]); 3] =
        [("teacher", &[q0]), ("student", &held), ("student", &[live])];
    transcript_is(srv.port, &cid, &runs, "every message, in order").await;
}

/// The teacher ends the chat while Ana is away: what was held for her is never
/// delivered; back, she is `finished`, the chat is finished, and she may queue again.
async fn a_chat_ended_while_the_student_is_away(framing: Framing) {
    let srv = start(keeping(LONG));
    let (tid, sid) = ("t1", "ana");
    let (mut t, s, cid) = signed_chat(&srv, framing, tid, sid).await;
    let topic = chat_topic(&cid);
    t.clear();
    goes_away(s, "student", &mut t, &cid, LONG).await;
    t.push(&topic, "teacher:send", json!({"message": "bye"}))
        .await;
    ends_the_chat(&mut t, &topic).await;
    status_is(
        &mut t,
        (1, 1, 0, 0, 1),
        "ana's chat ended while she was away",
    )
    .await;

    let mut s = signed_in(&srv, framing, sid, Role::Student).await;
    join_replying(
        &mut s,
        &student_topic(&json!(sid)),
        student_params(&json!(sid)),
        json!({"state": "finished"}),
    )
    .await;
    s.join(&topic, student_params(&json!(sid)))
        .await
        .assert_error("chat finished");
    s.expect_no_event(&topic, "student:receive", SILENCE).await;
    s.ready(&json!(sid)).await;
    status_is(&mut t, (1, 1, 1, 0, 0), "ana queued again").await;
    t.claim_expect(&json!(tid), &json!(sid)).await;
}

/// Ana's chat ended while she was away and she never returns: her window still ends,
/// and she leaves the roster then (one `user:status`).
async fn a_finished_away_student_leaves_after_the_window(framing: Framing) {
    let srv = start(keeping(SHORT));
    let (tid, sid) = ("t1", "ana");
    let (mut t, s, cid) = signed_chat(&srv, framing, tid, sid).await;
    let topic = chat_topic(&cid);
    t.clear();
    let dropped = Instant::now();
    goes_away(s, "student", &mut t, &cid, SHORT).await;
    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    status_is(
        &mut t,
        (1, 1, 0, 0, 1),
        "ana's chat ended while she was away",
    )
    .await;
    status_after_the_window(&mut t, dropped, (1, 0, 0, 0, 0), "ana left").await;
}

/// Ana, present, leaves the chat channel alone (her page moves on): the chat goes on,
/// and what the teacher sends meanwhile is held for her and delivered when she joins it
/// again.
async fn messages_wait_for_a_present_student_off_the_chat(framing: Framing) {
    let srv = start(keeping(LONG));
    let (mut t, mut s, cid) = signed_chat(&srv, framing, "t1", "ana").await;
    let topic = chat_topic(&cid);
    s.leave(&topic).await;
    let m = json!({"message": "did you see this?"});
    send_all(&mut t, "teacher", &topic, std::slice::from_ref(&m)).await;
    t.expect_no_event(&topic, "chat:away", Duration::ZERO).await;
    join_replying(
        &mut s,
        &topic,
        student_params(&json!("ana")),
        json!({"seq": 1, "held": 1}),
    )
    .await;
    next_are(&mut s, &topic, "student:receive", std::slice::from_ref(&m)).await;
}

/// Ana ends the chat while her teacher is away: back, the teacher has no chats to
/// rebuild, the chat is finished, and its slot is free.
async fn a_chat_the_student_ends_while_the_teacher_is_away(framing: Framing) {
    let srv = start(keeping(LONG));
    let tid = json!("t1");
    let (t, mut s, cid) =
        signed_chat_opting(&srv, framing, ("t1", &[]), ("ana", &["awayNotices"])).await;
    let topic = chat_topic(&cid);
    goes_away(t, "teacher", &mut s, &cid, LONG).await;
    s.push(&topic, "student:send", json!({"message": "never mind"}))
        .await;
    ends_the_chat(&mut s, &topic).await;

    let mut t = signed_teacher(&srv, framing, "t1").await;
    t.join(&topic, teacher_params(&tid))
        .await
        .assert_error("chat finished");
    t.expect_no_event(&topic, "teacher:receive", SILENCE).await;
    let _ben = signed_student(&srv, framing, "ben").await;
    t.claim_expect(&tid, &json!("ben")).await;
}

/// A connection the server closes as idle (PROTOCOL 1.5) is a connection gone too:
/// the student is away, not gone, and her chat goes on.
async fn an_idle_connection_closed_by_the_server_makes_its_user_away(framing: Framing) {
    let srv = start(Config {
        idle_timeout: Duration::from_secs(2),
        ..keeping(LONG)
    });
    let (mut t, mut s, cid) = signed_chat(&srv, framing, "t1", "ana").await;
    let topic = chat_topic(&cid);
    // Ana says nothing from now on; her teacher keeps heart-beating.
    let away = crate::bad_input::wait_keepalive(
        &mut t,
        |f| f.is(&topic, "chat:away"),
        "chat:away after ana's idle connection was closed",
        WAIT,
    )
    .await;
    assert_eq!(away.payload["role"], json!("student"), "{}", away.raw);
    s.wait_close(WAIT).await;
    t.expect_no_event(&topic, "chat:terminated", SILENCE).await;
    t.heartbeat().await;
    let mut s = signed_in(&srv, framing, "ana", Role::Student).await;
    let reply = s
        .join(&student_topic(&json!("ana")), student_params(&json!("ana")))
        .await;
    assert_eq!(
        reply.response()["state"],
        json!("chatting"),
        "{}",
        reply.raw
    );
    let back = t.wait_for(&topic, "chat:back", WAIT).await;
    assert_eq!(back.payload, json!({"role": "student"}), "{}", back.raw);
}

/// PROTOCOL 6.3: a page rebuilding itself shows the transcript's messages with
/// `seq` ≤ `S` and skips the first `H` receive events; so the transcript read as soon
/// as the chat join reply has arrived holds all `S`, or the page shows a gap. Checked
/// with a transcript writer that lags (paused): the reply may wait for it, or the
/// transcript may already hold them, but the reply may not promise what is not there.
async fn the_transcript_holds_what_the_chat_join_reply_counts(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = crate::transcripts::start_server(Config {
        reconnect_grace: LONG,
        ..crate::transcripts::with_data_dir(&dir)
    });
    let srv = Server { port: running.port };
    let (mut t, mut s, cid) = signed_chat(&srv, framing, "t1", "ana").await;
    let topic = chat_topic(&cid);
    let live = json!({"message": "live"});
    t.push(&topic, "teacher:send", live.clone()).await;
    s.wait_for(&topic, "student:receive", WAIT).await;
    goes_away(s, "student", &mut t, &cid, LONG).await;

    running.transcripts.set_paused(true);
    let held = numbered("held", 2);
    send_all(&mut t, "teacher", &topic, &held).await;
    let mut s = signed_in(&srv, framing, "ana", Role::Student).await;
    s.join(&student_topic(&json!("ana")), student_params(&json!("ana")))
        .await;
    let r = json!(s.new_ref());
    s.send_msg(&r, &r, &topic, "phx_join", &student_params(&json!("ana")))
        .await;
    let token = token_for("ana", Role::Student);
    let (reply, stored) = match s
        .try_wait_match(|f| f.is_reply_to(&topic, &r), SILENCE)
        .await
    {
        // Answered while the writer is paused: what the page reads now.
        Some(reply) => {
            let (_, stored) = transcript_as(srv.port, &cid, &token).await;
            running.transcripts.set_paused(false);
            (reply, stored)
        }
        None => {
            running.transcripts.set_paused(false);
            let reply = s.reply(&topic, &r).await;
            let (_, stored) = transcript_as(srv.port, &cid, &token).await;
            (reply, stored)
        }
    };
    assert_eq!(
        reply.payload,
        json!({"status": "ok", "response": {"seq": 3, "held": 2}}),
        "{}",
        reply.raw
    );
    let mut expected = from("teacher", &[live]);
    expected.extend(from("teacher", &held));
    assert_eq!(
        stored, expected,
        "the transcript as the page reads it right after the join reply {}",
        reply.raw
    );
}

/// The teacher writes a burst while Ana, away since before it began, rejoins the chat in
/// the middle of it: she gets every message exactly once, in order: the held ones
/// right after the join reply (as many as it says, all it counts), then the live ones.
async fn a_rejoin_in_the_middle_of_a_burst_loses_and_repeats_nothing(framing: Framing) {
    const N: usize = 400;
    let srv = start(Config {
        held_messages: 10 * N,
        held_bytes: 1 << 20,
        ..keeping(LONG)
    });
    let (mut t, s, cid) = signed_chat(&srv, framing, "t1", "ana").await;
    let topic = chat_topic(&cid);
    goes_away(s, "student", &mut t, &cid, LONG).await;
    let mut s = signed_in(&srv, framing, "ana", Role::Student).await;
    s.join(&student_topic(&json!("ana")), student_params(&json!("ana")))
        .await;
    t.wait_for(&topic, "chat:back", WAIT).await;

    let burst_topic = topic.clone();
    let burst = tokio::spawn(async move {
        for n in 0..N {
            t.push(&burst_topic, "teacher:send", json!({"n": n})).await;
            tokio::task::yield_now().await;
        }
        t.call(&burst_topic, "teacher:joined", json!({}))
            .await
            .assert_ok_empty();
        t
    });
    // Join once the server has held a quarter of the burst, and before it ends.
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = http_get(srv.port, "/metrics").await.text();
        let held = sample(&metrics, "tutor_queue_held_messages_total").unwrap_or(0.0);
        if held >= (N / 4) as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "the server held {held} of {N}");
        tokio::task::yield_now().await;
    }
    let reply = s.join(&topic, student_params(&json!("ana"))).await;
    let (seq, held) = (
        reply.response()["seq"].as_u64(),
        reply.response()["held"].as_u64(),
    );
    assert_eq!(seq, held, "ana was away before the first: {}", reply.raw);
    let mut got = Vec::new();
    while got.len() < N {
        let f = s.next_frame(WAIT).await;
        assert!(f.is(&topic, "student:receive"), "{}", f.raw);
        got.push(f.payload["n"].as_u64().unwrap_or(u64::MAX));
    }
    let expected: Vec<u64> = (0..N as u64).collect();
    assert_eq!(got, expected, "join reply {}", reply.raw);
    let mut t = burst.await.expect("the burst");
    t.expect_none(
        |f| f.is(&topic, "phx_reply") && f.status() == "error",
        "an error reply to the burst",
        Duration::ZERO,
    )
    .await;
    s.expect_no_event(&topic, "student:receive", SILENCE).await;
}

/// A message sent as soon as `chat:away` arrives is held, never relayed to the channel
/// of the connection that went: once the other side hears the user is away, none of
/// its chat channels may still take messages. Many rounds, both ways, since a wrong
/// order inside the server shows only now and then.
async fn a_message_sent_right_after_chat_away_is_held(framing: Framing) {
    let srv = start(keeping(LONG));
    for round in 0..30 {
        let (tid, sid) = (format!("t{round}"), format!("s{round}"));
        let (mut t, mut s) = (
            signed_teacher(&srv, framing, &tid).await,
            signed_student(&srv, framing, &sid).await,
        );
        let cid = t.claim_expect(&json!(tid), &json!(sid)).await;
        let topic = chat_topic(&cid);
        let (t_params, s_params) = (
            with(teacher_params(&json!(tid)), "awayNotices"),
            with(student_params(&json!(sid)), "awayNotices"),
        );
        enter(&mut t, t_params.clone(), &mut s, s_params.clone(), &cid).await;
        let m = json!({"message": format!("round {round}")});
        let (mut stays, role, event, back_as, back_params, presence, back_topic) = if round % 2 == 0
        {
            s.vanish();
            (
                t,
                "teacher",
                "teacher:send",
                Role::Student,
                s_params,
                student_params(&json!(sid)),
                student_topic(&json!(sid)),
            )
        } else {
            t.vanish();
            (
                s,
                "student",
                "student:send",
                Role::Teacher,
                t_params,
                teacher_params(&json!(tid)),
                "presence:teachers".to_owned(),
            )
        };
        let away = stays.wait_for(&topic, "chat:away", WAIT).await;
        stays.push(&topic, event, m.clone()).await;
        let sync = if role == "teacher" {
            "teacher:joined"
        } else {
            "student:joined"
        };
        stays.call(&topic, sync, json!({})).await.assert_ok_empty();
        let back_id = if back_as == Role::Student { &sid } else { &tid };
        let mut back = signed_in(&srv, framing, back_id, back_as).await;
        back.join(&back_topic, presence).await;
        let reply = back.join(&topic, back_params).await;
        assert_eq!(
            reply.response(),
            &json!({"seq": 1, "held": 1}),
            "round {round}: {event} right after {} was relayed to the gone connection, not held: {}",
            away.raw,
            reply.raw
        );
        let receive = if role == "teacher" {
            "student:receive"
        } else {
            "teacher:receive"
        };
        next_are(&mut back, &topic, receive, std::slice::from_ref(&m)).await;
    }
}

// ----- 4. away notices, for the channels that ask -----

/// The teacher's channel asked: `chat:away` when Ana drops, `chat:back` when her
/// presence returns. Ana's plain channel hears nothing when the teacher drops; a channel
/// of hers that asks hears `chat:away` (also right after its join reply, if the teacher
/// is away then) and `chat:back`.
async fn away_notices_reach_the_channels_that_ask(framing: Framing) {
    let srv = start(keeping(LONG));
    let (tid, sid) = ("t1", "ana");
    let (mut t, s, cid) = signed_chat(&srv, framing, tid, sid).await;
    let topic = chat_topic(&cid);

    goes_away(s, "student", &mut t, &cid, LONG).await;
    let mut plain = signed_in(&srv, framing, sid, Role::Student).await;
    plain
        .join(&student_topic(&json!(sid)), student_params(&json!(sid)))
        .await;
    let back = t.wait_for(&topic, "chat:back", WAIT).await;
    assert_eq!(back.payload, json!({"role": "student"}), "{}", back.raw);
    join_replying(
        &mut plain,
        &topic,
        student_params(&json!(sid)),
        json!({"seq": 0, "held": 0}),
    )
    .await;
    // A second tab of ana's that asks for notices.
    let mut asking = new_asking_tab(&srv, framing, sid, &topic).await;

    goes_away(t, "teacher", &mut asking, &cid, LONG).await;
    plain.expect_no_event(&topic, "chat:away", SILENCE).await;
    // A channel joining while the teacher is away hears so right after its reply.
    let mut late = new_asking_tab(&srv, framing, sid, &topic).await;
    let away = late.next_frame(WAIT).await;
    assert!(
        away.is(&topic, "chat:away"),
        "right after the join reply: {}",
        away.raw
    );
    assert_eq!(away.payload["role"], json!("teacher"), "{}", away.raw);

    let mut t = signed_in(&srv, framing, tid, Role::Teacher).await;
    t.join("presence:teachers", teacher_params(&json!(tid)))
        .await;
    for c in [&mut asking, &mut late] {
        let back = c.wait_for(&topic, "chat:back", WAIT).await;
        assert_eq!(back.payload, json!({"role": "teacher"}), "{}", back.raw);
    }
    plain.expect_no_event(&topic, "chat:back", SILENCE).await;
    plain
        .expect_no_event(&topic, "chat:away", Duration::ZERO)
        .await;
}

/// A new tab of student `sid` whose channel on the chat `topic` asks for away notices;
/// nothing was relayed in the chat yet.
async fn new_asking_tab(srv: &Server, framing: Framing, sid: &str, topic: &str) -> Client {
    let mut tab = signed_in(srv, framing, sid, Role::Student).await;
    join_replying(
        &mut tab,
        topic,
        with(student_params(&json!(sid)), "awayNotices"),
        json!({"seq": 0, "held": 0}),
    )
    .await;
    tab
}

// ----- 5. the bound on held messages -----

/// Past `held_messages` the teacher's message is refused with `recipient away`, and it
/// is neither delivered later nor in the transcript.
async fn past_the_held_count_the_sender_is_refused(framing: Framing) {
    let bound = |c| Config {
        held_messages: 3,
        ..c
    };
    refused_past_the_bound(framing, bound, &numbered("m", 5), 3).await;
}

/// The same with `held_bytes`: three messages of about 1 KB with 2500 bytes allowed.
async fn past_the_held_bytes_the_sender_is_refused(framing: Framing) {
    let bound = |c| Config {
        held_bytes: 2500,
        ..c
    };
    let big: Vec<Value> = (1..=4)
        .map(|i| json!({"message": format!("{i}{}", "x".repeat(999))}))
        .collect();
    refused_past_the_bound(framing, bound, &big, 2).await;
}

/// Ana drops; the teacher sends `messages[..fit]` (held), then `messages[fit]`
/// (refused), then Ana returns and gets exactly the held ones; `messages[fit + 1]`,
/// sent live, comes right after them; the transcript has all but the refused one.
/// The server is [`keeping_recorded`] with the `bound` set.
async fn refused_past_the_bound(
    framing: Framing,
    bound: impl FnOnce(Config) -> Config,
    messages: &[Value],
    fit: usize,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = &start(bound(keeping_recorded(LONG, &dir)));
    let (mut t, s, cid) = signed_chat(srv, framing, "t1", "ana").await;
    let topic = chat_topic(&cid);
    goes_away(s, "student", &mut t, &cid, LONG).await;
    for m in &messages[..fit] {
        t.push(&topic, "teacher:send", m.clone()).await;
    }
    let refused = t.call(&topic, "teacher:send", messages[fit].clone()).await;
    refused.assert_error("recipient away");
    t.expect_none(
        |f| f.is(&topic, "phx_reply"),
        "another reply: the messages within the bound are held silently",
        SILENCE,
    )
    .await;

    let mut s = signed_in(srv, framing, "ana", Role::Student).await;
    s.join(&student_topic(&json!("ana")), student_params(&json!("ana")))
        .await;
    let ana = student_params(&json!("ana"));
    rejoin_gets_held(&mut s, "student", &topic, ana, fit, &messages[..fit]).await;
    let live = &messages[fit + 1];
    relayed_next(&mut t, "teacher", &mut s, &topic, live).await;

    let runs: [(&str, &[Value]); 2] = [
        ("teacher", &messages[..fit]),
        ("teacher", std::slice::from_ref(live)),
    ];
    transcript_is(srv.port, &cid, &runs, "the refused message is not in it").await;
}

// ----- 6. after the window, chats end as in 6.1 and 6.2 -----

/// Ana drops mid-chat and does not return: after the window her chat ends (`student
/// left`), the counts drop, and what was held for her is in the transcript but never
/// delivered: back too late, she is just present, and the chat is finished.
async fn an_away_students_chat_ends_after_the_window(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start(keeping_recorded(SHORT, &dir));
    let (tid, sid) = ("t1", "ana");
    let (mut t, s, cid) = signed_chat_opting(
        &srv,
        framing,
        (tid, &["endReason", "awayNotices"]),
        (sid, &[]),
    )
    .await;
    let topic = chat_topic(&cid);
    t.clear();

    let dropped = Instant::now();
    goes_away(s, "student", &mut t, &cid, SHORT).await;
    let held = json!({"message": "are you there?"});
    t.push(&topic, "teacher:send", held.clone()).await;
    let ended = t.wait_for(&topic, "chat:terminated", SHORT + WAIT).await;
    let waited = dropped.elapsed();
    assert_eq!(
        ended.payload,
        json!({"reason": "student left"}),
        "{}",
        ended.raw
    );
    not_before_the_window(waited, "the chat ended");
    status_is(&mut t, (1, 0, 0, 0, 0), "ana gone after the window").await;
    no_status(&mut t, "ana's window ended: one user:status").await;

    let mut s = signed_present(&srv, framing, sid, student_params(&json!(sid))).await;
    s.join(&topic, student_params(&json!(sid)))
        .await
        .assert_error("chat finished");
    s.expect_no_event(&topic, "student:receive", SILENCE).await;
    let (chat, stored) = transcript_of(srv.port, &cid, 1).await;
    assert_eq!(
        stored,
        from("teacher", &[held]),
        "the held message was recorded"
    );
    assert_eq!(chat["ended_by"], "student_left", "{chat}");
}

/// The teacher drops with two chats and does not return: after the window both chats
/// are abandoned (`phx_close`, no `chat:terminated`), Ana and Ben go back to the head of
/// the line before Cara, who was waiting all along, and one `user:status` says so.
async fn an_away_teachers_chats_are_abandoned_after_the_window(framing: Framing) {
    let srv = start(keeping(SHORT));
    let (t, [(mut ana, cid_a), (mut ben, cid_b)]) =
        t1_with_ana_and_ben(&srv, framing, &["awayNotices"], &[]).await;
    let mut other = signed_teacher(&srv, framing, "t2").await;
    let _cara = signed_student(&srv, framing, "cara").await;
    status_is(&mut other, (2, 3, 1, 2, 0), "cara ready").await;

    let dropped = Instant::now();
    goes_away(t, "teacher", &mut ana, &cid_a, SHORT).await;
    for (s, cid) in [(&mut ana, &cid_a), (&mut ben, &cid_b)] {
        let topic = chat_topic(cid);
        let jr = s.join_ref_of(&topic);
        let closed = s.wait_for(&topic, "phx_close", SHORT + WAIT).await;
        assert_eq!(
            Some(closed.r#ref.clone()),
            jr,
            "phx_close of the chat channel: {}",
            closed.raw
        );
        s.forget(&topic);
        s.expect_no_event(&topic, "chat:terminated", Duration::ZERO)
            .await;
    }
    not_before_the_window(dropped.elapsed(), "the chats were abandoned");
    status_is(&mut other, (1, 3, 3, 0, 0), "ana and ben back in line").await;
    no_status(&mut other, "the teacher's window ended: one user:status").await;
    let t2 = json!("t2");
    other.claim_expect(&t2, &json!("ana")).await;
    other.claim_expect(&t2, &json!("ben")).await;
    other.claim_expect(&t2, &json!("cara")).await;

    // Back too late: no chats to rebuild.
    signed_teacher(&srv, framing, "t1").await;
}

// ----- 7. a teacher who comes back gets its chats back -----

/// Teacher t1 drops with two chats: the other teacher's live counts still show it,
/// its students hear `chat:away` and write; back, its presence join reply lists both
/// chats, and each chat join delivers what was held for it, then both chats go on.
async fn a_returning_teacher_gets_its_chats_back(framing: Framing) {
    let srv = start(keeping(LONG));
    let t1 = json!("t1");
    let mut watcher = signed_in(&srv, framing, "t9", Role::Teacher).await;
    join_replying(
        &mut watcher,
        "presence:teachers",
        with(teacher_params(&json!("t9")), "liveStatus"),
        json!({"chats": []}),
    )
    .await;
    let (t, [(mut ana, cid_a), (mut ben, cid_b)]) =
        t1_with_ana_and_ben(&srv, framing, &["awayNotices"], &["awayNotices"]).await;
    let (topic_a, topic_b) = (chat_topic(&cid_a), chat_topic(&cid_b));

    let before = unix_ms();
    t.vanish();
    for (s, topic) in [(&mut ana, &topic_a), (&mut ben, &topic_b)] {
        let away = s.wait_for(topic, "chat:away", WAIT).await;
        assert_eq!(away.payload["role"], json!("teacher"), "{}", away.raw);
        assert!(
            away.payload["until"].as_u64() >= Some(before),
            "{}",
            away.raw
        );
    }
    settle(&mut watcher, (2, 2, 0, 2, 0)).await;
    no_status(&mut watcher, "t1 went away (still counted, live status)").await;
    let from_ana = vec![json!({"message": "a1"}), json!({"message": "a2"})];
    let from_ben = vec![json!({"message": "b1"})];
    for (s, topic, held) in [
        (&mut ana, &topic_a, &from_ana),
        (&mut ben, &topic_b, &from_ben),
    ] {
        send_all(s, "student", topic, held).await;
    }

    let mut t = teacher_back_with(&srv, framing, "t1", &[(&cid_a, "ana"), (&cid_b, "ben")]).await;
    for (s, topic) in [(&mut ana, &topic_a), (&mut ben, &topic_b)] {
        let back = s.wait_for(topic, "chat:back", WAIT).await;
        assert_eq!(back.payload, json!({"role": "teacher"}), "{}", back.raw);
    }
    for (topic, held) in [(&topic_a, &from_ana), (&topic_b, &from_ben)] {
        let params = teacher_params(&t1);
        rejoin_gets_held(&mut t, "teacher", topic, params, held.len(), held).await;
    }

    // Both chats go on.
    let hi = json!({"message": "back"});
    t.push(&topic_b, "teacher:send", hi.clone()).await;
    let got = ben.wait_for(&topic_b, "student:receive", WAIT).await;
    assert_eq!(got.payload, hi);
    t.call(&topic_a, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    ana.wait_for(&topic_a, "chat:terminated", WAIT).await;
}

// ----- 8. several tabs; a phx_leave is a real leave -----

/// Ana with two tabs: one drops while she waits, and nothing changes (no status, still
/// claimable, the other tab hears `new:chat`); in the chat, one more tab drops and the
/// teacher gets no `chat:away`, and her remaining tab gets the next message live.
async fn a_second_tab_keeps_a_student_present(framing: Framing) {
    let srv = start(keeping(LONG));
    let (t1, sid) = (json!("t1"), json!("ana"));
    let mut t = signed_teacher(&srv, framing, "t1").await;
    let first_tab = signed_student(&srv, framing, "ana").await;
    status_is(&mut t, (1, 1, 1, 0, 0), "ana ready").await;
    let mut second_tab = signed_in(&srv, framing, "ana", Role::Student).await;
    another_tab_joins_waiting(&mut second_tab, &sid).await;

    drop_connection(srv.port, first_tab).await;
    no_status(&mut t, "one of ana's two tabs dropped").await;
    assert_eq!(users_away(srv.port).await, 0.0, "ana is not away");
    let cid = t.claim_expect(&t1, &sid).await;
    status_is(&mut t, (1, 1, 0, 1, 0), "ana taken").await;
    enter(
        &mut t,
        with(teacher_params(&t1), "awayNotices"),
        &mut second_tab,
        student_params(&sid),
        &cid,
    )
    .await;
    let chat = chat_topic(&cid);
    let mut third_tab = signed_in(&srv, framing, "ana", Role::Student).await;
    another_tab_joins_the_chat(&mut third_tab, &sid, &cid).await;

    drop_connection(srv.port, second_tab).await;
    t.expect_no_event(&chat, "chat:away", SILENCE).await;
    no_status(&mut t, "one of ana's two tabs dropped mid-chat").await;
    assert_eq!(users_away(srv.port).await, 0.0, "ana is not away");
    let m = json!({"message": "still here?"});
    t.push(&chat, "teacher:send", m.clone()).await;
    next_are(
        &mut third_tab,
        &chat,
        "student:receive",
        std::slice::from_ref(&m),
    )
    .await;
}

/// A `phx_leave` of the last presence channel is a real leave, with no window: a
/// waiting student is out of the line at once, a chatting student's chat ends at once,
/// a teacher's chat is abandoned at once.
async fn a_phx_leave_is_a_real_leave(framing: Framing) {
    let srv = start(keeping(LONG));
    let t1 = json!("t1");
    let mut t = signed_teacher(&srv, framing, "t1").await;
    let mut ana = signed_student(&srv, framing, "ana").await;
    let _ben = signed_student(&srv, framing, "ben").await;
    status_is(&mut t, (1, 1, 1, 0, 0), "ana ready").await;
    status_is(&mut t, (1, 2, 2, 0, 0), "ben ready").await;
    // WAIT is well within LONG: what follows comes without a window.
    ana.leave(&student_topic(&json!("ana"))).await;
    status_is(&mut t, (1, 1, 1, 0, 0), "ana left the line").await;
    t.claim_expect(&t1, &json!("ben")).await;
    assert_eq!(t.claim(&t1).await, None, "ana left the line");

    let (mut t2, mut cara, cid) = signed_chat(&srv, framing, "t2", "cara").await;
    t2.clear();
    cara.leave(&student_topic(&json!("cara"))).await;
    t2.wait_for(&chat_topic(&cid), "chat:terminated", WAIT)
        .await;
    t2.expect_no_event(&chat_topic(&cid), "chat:away", Duration::ZERO)
        .await;

    let (mut t3, mut dan, cid) = signed_chat(&srv, framing, "t3", "dan").await;
    t3.leave("presence:teachers").await;
    let topic = chat_topic(&cid);
    dan.wait_for(&topic, "phx_close", WAIT).await;
    dan.expect_no_event(&topic, "chat:terminated", Duration::ZERO)
        .await;
}

// ----- 9. tokenless users, and a window of 0 -----

/// Tokenless users keep PROTOCOL 6 on a server with a window: join replies `{}` (the
/// helpers assert it), a waiting student that drops is gone at once, a chatting one ends
/// its chat at once.
async fn tokenless_users_vanish_at_once(framing: Framing) {
    let srv = start(keeping(LONG));
    let mut obs = teacher(&srv, framing, 900).await;
    let (mut t, s, cid) = start_chat(&srv, framing, 1, 7).await;
    let s8 = ready_student(&srv, framing, 8).await;
    let _s9 = ready_student(&srv, framing, 9).await;
    settle(&mut obs, (2, 3, 2, 1, 0)).await;
    s8.vanish();
    status_is(
        &mut obs,
        (2, 2, 1, 1, 0),
        "tokenless 8 dropped while waiting",
    )
    .await;
    s.vanish();
    t.wait_for(&chat_topic(&cid), "chat:terminated", WAIT).await;
    status_is(
        &mut obs,
        (2, 1, 1, 0, 0),
        "tokenless 7 dropped while chatting",
    )
    .await;
    obs.claim_expect(&json!(900), &json!(9)).await;
    assert_eq!(obs.claim(&json!(900)).await, None);
}

/// With a window of 0, token users vanish at once too: a waiting student leaves the
/// line, a chatting student's chat ends, a teacher's chat is abandoned.
async fn with_no_window_token_users_vanish_at_once(framing: Framing) {
    let srv = start(keeping(Duration::ZERO));
    let (t1, t2) = (json!("t1"), json!("t2"));
    let mut t = signed_in(&srv, framing, "t1", Role::Teacher).await;
    t.join("presence:teachers", teacher_params(&t1)).await;
    let mut students = Vec::new();
    for sid in ["ana", "ben", "cara"] {
        let mut s = signed_in(&srv, framing, sid, Role::Student).await;
        s.join(&student_topic(&json!(sid)), student_params(&json!(sid)))
            .await;
        s.ready(&json!(sid)).await;
        students.push(s);
    }
    let cara = students.pop().expect("cara");
    let mut ben = students.pop().expect("ben");
    let ana = students.pop().expect("ana");
    status_is(&mut t, (1, 1, 1, 0, 0), "ana ready").await;
    status_is(&mut t, (1, 2, 2, 0, 0), "ben ready").await;
    status_is(&mut t, (1, 3, 3, 0, 0), "cara ready").await;

    ana.vanish();
    status_is(&mut t, (1, 2, 2, 0, 0), "ana dropped, no window").await;
    let cid = t.claim_expect(&t1, &json!("ben")).await;
    status_is(&mut t, (1, 2, 1, 1, 0), "ben taken").await;
    let topic = chat_topic(&cid);
    ben.wait_for(&student_topic(&json!("ben")), "new:chat", WAIT)
        .await;
    t.join(&topic, teacher_params(&t1)).await;
    ben.join(&topic, student_params(&json!("ben"))).await;
    ben.vanish();
    t.wait_for(&topic, "chat:terminated", WAIT).await;
    status_is(&mut t, (1, 1, 1, 0, 0), "ben dropped mid-chat, no window").await;

    let mut other = signed_in(&srv, framing, "t2", Role::Teacher).await;
    other.join("presence:teachers", teacher_params(&t2)).await;
    let cid = t.claim_expect(&t1, &json!("cara")).await;
    status_is(&mut other, (2, 1, 0, 1, 0), "cara taken").await;
    let mut cara = cara;
    let topic = chat_topic(&cid);
    cara.wait_for(&student_topic(&json!("cara")), "new:chat", WAIT)
        .await;
    cara.join(&topic, student_params(&json!("cara"))).await;
    t.vanish();
    cara.wait_for(&topic, "phx_close", WAIT).await;
    status_is(
        &mut other,
        (1, 1, 1, 0, 0),
        "the teacher dropped, no window: cara back in line",
    )
    .await;
    other.claim_expect(&t2, &json!("cara")).await;
}

both!(
    an_away_waiting_student_keeps_her_place,
    an_away_waiting_student_leaves_the_line_after_the_window,
    a_second_drop_gets_a_window_of_its_own,
    messages_to_an_away_student_wait_for_her,
    messages_to_an_away_teacher_wait_for_it,
    a_chat_ended_while_the_student_is_away,
    a_finished_away_student_leaves_after_the_window,
    the_transcript_holds_what_the_chat_join_reply_counts,
    a_rejoin_in_the_middle_of_a_burst_loses_and_repeats_nothing,
    a_message_sent_right_after_chat_away_is_held,
    a_chat_the_student_ends_while_the_teacher_is_away,
    an_idle_connection_closed_by_the_server_makes_its_user_away,
    messages_wait_for_a_present_student_off_the_chat,
    away_notices_reach_the_channels_that_ask,
    past_the_held_count_the_sender_is_refused,
    past_the_held_bytes_the_sender_is_refused,
    an_away_students_chat_ends_after_the_window,
    an_away_teachers_chats_are_abandoned_after_the_window,
    a_returning_teacher_gets_its_chats_back,
    a_second_tab_keeps_a_student_present,
    a_phx_leave_is_a_real_leave,
    tokenless_users_vanish_at_once,
    with_no_window_token_users_vanish_at_once,
);
