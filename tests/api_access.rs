//! Who may read what over the HTTP API (issue 11): the reads need a bearer
//! token, each caller sees only its own chats (an admin every chat), another
//! user's transcript is as unknown as a chat that does not exist; guest
//! sign-in (`POST /api/session`) hands out tokens for the roles it is open to.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tutor_queue::domain::{ChatId, StudentKey, TeacherKey, UserKey};
use tutor_queue::identity::{Claims, Role, TokenKeys};

use crate::support::auth::{admin_token, http_get_as, http_post, test_keys, token_for};
use crate::support::{http_get, Config, HttpResponse};
use crate::transcripts::{start_server, with_data_dir};

fn json_of(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{e}: not JSON: {}", response.text()))
}

/// The ids of the chats `GET path` lists for `token`.
async fn listed(port: u16, path: &str, token: &str) -> Vec<String> {
    let response = http_get_as(port, path, token).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    json_of(&response)["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

/// The key of a signed-in user (what a session with that user's token records).
fn key(text: &str) -> UserKey {
    UserKey::new(text).expect("key").in_namespace(true)
}

#[tokio::test]
async fn api_reads_need_a_token_and_show_each_caller_only_its_own_chats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(with_data_dir(&dir));
    let store = &srv.transcripts;
    let mine = ChatId::random(&mut rand::rng());
    let theirs = ChatId::random(&mut rand::rng());
    let now = SystemTime::now();
    store.chat_created(
        mine,
        &TeacherKey(key("7")),
        &StudentKey(key("s1")),
        now,
        Default::default(),
    );
    store.chat_created(
        theirs,
        &TeacherKey(key("8")),
        &StudentKey(key("s2")),
        now + Duration::from_millis(1),
        Default::default(),
    );
    // A tokenless client that called itself teacher "7" and student "s1": someone
    // else than the signed-in 7 and s1, whose views must not show its chat.
    let impostor = ChatId::random(&mut rand::rng());
    let tokenless = |text: &str| UserKey::new(text).expect("key");
    store.chat_created(
        impostor,
        &TeacherKey(tokenless("7")),
        &StudentKey(tokenless("s1")),
        now + Duration::from_millis(2),
        Default::default(),
    );
    store.flush_async().await;
    let impostor = impostor.to_string();
    for (who, role) in [("7", Role::Teacher), ("s1", Role::Student)] {
        let token = token_for(who, role);
        let seen = listed(srv.port, "/api/chats", &token).await;
        assert!(
            !seen.contains(&impostor),
            "{who} sees a tokenless chat: {seen:?}"
        );
        let response = http_get_as(
            srv.port,
            &format!("/api/chats/{impostor}/transcript"),
            &token,
        )
        .await;
        assert_eq!(response.status, 404, "{who} reads a tokenless chat");
    }
    let all = listed(srv.port, "/api/chats", &admin_token()).await;
    assert!(all.contains(&impostor), "an admin sees every chat");
    let (mine, theirs) = (mine.to_string(), theirs.to_string());
    let port = srv.port;

    // No token, a forged one, an expired one, another scheme: 401.
    let forged = TokenKeys::from_secret(b"another-secret-0123456789abcdef0123")
        .expect("keys")
        .mint(&Claims::new("x", Role::Admin, "X", Duration::from_secs(60)))
        .expect("mint");
    let past = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("now")
        .as_secs()
        - 3600;
    let expired = test_keys()
        .mint(&Claims {
            exp: past,
            iat: Some(past - 60),
            ..Claims::new("x", Role::Admin, "X", Duration::ZERO)
        })
        .expect("mint");
    let transcript_path = format!("/api/chats/{mine}/transcript");
    for path in ["/api/chats", transcript_path.as_str()] {
        let none = http_get(port, path).await;
        assert_eq!(none.status, 401, "{path} without a token");
        assert!(none.header("www-authenticate").starts_with("Bearer"));
        assert!(json_of(&none)["error"].is_string());
        for bad in [
            format!("Bearer {forged}"),
            format!("Bearer {expired}"),
            format!("Basic {}", admin_token()),
            "Bearer not.a.token".to_owned(),
        ] {
            let response = crate::support::http_request(
                port,
                "GET",
                path,
                &format!("Authorization: {bad}\r\n"),
            )
            .await;
            assert_eq!(response.status, 401, "{path} with {bad}");
            assert!(response.header("www-authenticate").starts_with("Bearer"));
        }
    }

    // A student: its own chat only; another's transcript is "unknown chat".
    let student = token_for("s1", Role::Student);
    assert_eq!(
        listed(port, "/api/chats", &student).await,
        vec![mine.clone()]
    );
    assert_eq!(
        listed(port, "/api/chats?teacher=8", &student).await,
        Vec::<String>::new(),
        "the other filter narrows within its own chats"
    );
    let refused = http_get_as(port, "/api/chats?student=s2", &student).await;
    assert_eq!(refused.status, 403, "listing another student's chats");
    let own = http_get_as(port, &transcript_path, &student).await;
    assert_eq!(own.status, 200, "{}", own.text());
    let other = http_get_as(port, &format!("/api/chats/{theirs}/transcript"), &student).await;
    let unknown = http_get_as(
        port,
        &format!("/api/chats/{}/transcript", ChatId::random(&mut rand::rng())),
        &student,
    )
    .await;
    assert_eq!(
        (other.status, json_of(&other)),
        (unknown.status, json_of(&unknown)),
        "another's chat reads exactly as an unknown one"
    );
    assert_eq!(other.status, 404);

    // A teacher: `sub` "7" is the teacher the socket knew as 7.
    let teacher = token_for("7", Role::Teacher);
    assert_eq!(
        listed(port, "/api/chats", &teacher).await,
        vec![mine.clone()]
    );
    assert_eq!(
        http_get_as(port, "/api/chats?teacher=8", &teacher)
            .await
            .status,
        403
    );
    let other = http_get_as(port, &format!("/api/chats/{theirs}/transcript"), &teacher).await;
    assert_eq!(other.status, 404);
    // The role counts, not just the id: a teacher "s1" is not the student s1.
    let namesake = token_for("s1", Role::Teacher);
    assert!(listed(port, "/api/chats", &namesake).await.is_empty());
    assert_eq!(
        http_get_as(port, &transcript_path, &namesake).await.status,
        404
    );

    // An admin: everything, filters as asked.
    let admin = admin_token();
    assert_eq!(
        listed(port, "/api/chats", &admin).await,
        [impostor.clone(), theirs.clone(), mine.clone()]
    );
    assert_eq!(
        listed(port, "/api/chats?teacher=8", &admin).await,
        vec![theirs.clone()]
    );
    let read = http_get_as(port, &format!("/api/chats/{theirs}/transcript"), &admin).await;
    assert_eq!(read.status, 200);
    srv.stopper.shutdown().await;
}

async fn sign_in(port: u16, body: &Value) -> HttpResponse {
    http_post(
        port,
        "/api/session",
        "application/json",
        body.to_string().as_bytes(),
    )
    .await
}

#[tokio::test]
async fn guest_sign_in_hands_out_tokens_for_new_ids_in_the_open_roles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(with_data_dir(&dir));
    let port = srv.port;
    let mut ids = Vec::new();
    for role in ["student", "teacher"] {
        let response = sign_in(port, &json!({"name": "  Ada  ", "role": role})).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let body = json_of(&response);
        assert_eq!(body["user"]["name"], "Ada", "trimmed");
        assert_eq!(body["user"]["role"], role);
        let id = body["user"]["id"].as_str().expect("an id").to_owned();
        let random = id
            .strip_prefix("Ada·")
            .expect("the name, then a random part");
        assert!(
            random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()),
            "a uuid: {id}"
        );
        let identity = test_keys()
            .verify(body["token"].as_str().expect("a token"))
            .expect("the token verifies with the server's secret");
        assert_eq!(identity.user().key.as_str(), id);
        assert_eq!(identity.role().as_str(), role);
        // The token opens the API (its own, empty, list).
        let token = body["token"].as_str().expect("token");
        let list = http_get_as(port, "/api/chats", token).await;
        assert_eq!(
            (list.status, json_of(&list)),
            (200, json!({"chats": [], "next": null}))
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "each sign-in is a new user");

    let admin = sign_in(port, &json!({"name": "Eve", "role": "admin"})).await;
    assert_eq!(admin.status, 403, "never an admin: {}", admin.text());
    assert!(json_of(&admin)["error"].is_string());
    for bad in [
        json!({"name": "", "role": "student"}),
        json!({"name": "   ", "role": "student"}),
        json!({"name": "x".repeat(101), "role": "student"}),
        json!({"name": "a\u{7}b", "role": "student"}),
        json!({"name": "Ada", "role": "boss"}),
        json!({"name": "Ada"}),
        json!({"name": 7, "role": "student"}),
    ] {
        let response = sign_in(port, &bad).await;
        assert_eq!(response.status, 400, "{bad}: {}", response.text());
        assert!(json_of(&response)["error"].is_string(), "{bad}");
    }
    let not_json = http_post(port, "/api/session", "application/json", b"name=Ada").await;
    assert_eq!(not_json.status, 400);
    let huge = json!({"name": "Ada", "role": "student", "pad": "x".repeat(10_000)});
    let too_big = sign_in(port, &huge).await;
    assert_eq!(too_big.status, 413, "the body is bounded");
    srv.stopper.shutdown().await;
}

#[tokio::test]
async fn guest_roles_say_who_may_sign_in_and_empty_turns_it_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(Config {
        guest_roles: vec![Role::Teacher],
        ..with_data_dir(&dir)
    });
    let student = sign_in(srv.port, &json!({"name": "Ada", "role": "student"})).await;
    assert_eq!(student.status, 403);
    let teacher = sign_in(srv.port, &json!({"name": "Ada", "role": "teacher"})).await;
    assert_eq!(teacher.status, 200);
    srv.stopper.shutdown().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(Config {
        guest_roles: Vec::new(),
        ..with_data_dir(&dir)
    });
    for role in ["student", "teacher"] {
        let response = sign_in(srv.port, &json!({"name": "Ada", "role": role})).await;
        assert_eq!(response.status, 403, "{role}: {}", response.text());
    }
    srv.stopper.shutdown().await;
}

#[tokio::test]
async fn the_binary_takes_guest_roles_from_its_flag_and_never_admin() {
    let refused = crate::support::binary::RealServer::builder()
        .arg("--guest-roles")
        .arg("student,admin")
        .output();
    assert!(!refused.status.success(), "admin guests refused at start");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("admin"), "{stderr}");

    let closed = crate::support::binary::RealServer::builder()
        .arg("--guest-roles")
        .arg("")
        .spawn();
    for role in ["student", "teacher"] {
        let response = sign_in(closed.port(), &json!({"name": "Ada", "role": role})).await;
        assert_eq!(response.status, 403, "{role}: {}", response.text());
    }
    let open = crate::support::binary::RealServer::builder().spawn();
    let response = sign_in(open.port(), &json!({"name": "Ada", "role": "teacher"})).await;
    assert_eq!(response.status, 200, "open by default: {}", response.text());
}

#[tokio::test]
async fn get_session_says_who_the_token_is_and_how_long_a_place_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(Config {
        reconnect_grace: Duration::from_secs(90),
        ..with_data_dir(&dir)
    });
    let token = token_for("Ana·1", Role::Student);
    let response = http_get_as(srv.port, "/api/session", &token).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = json_of(&response);
    assert_eq!(body["user"]["id"], "Ana·1");
    assert_eq!(body["user"]["role"], "student");
    assert_eq!(body["reconnect_grace_ms"], 90_000);
    let anonymous = http_get(srv.port, "/api/session").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    srv.stopper.shutdown().await;
}
