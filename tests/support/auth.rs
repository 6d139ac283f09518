//! Tokens for tests: one known secret ([`TEST_SECRET`]) that test servers
//! are started with (`Config::tokens`, or `--token-secret` for the binary),
//! tokens minted with it, and HTTP requests that carry one as
//! `Authorization: Bearer` (the transcript API needs it).

use std::time::Duration;

use serde_json::Value;
use tutor_queue::identity::{Claims, Role, TokenKeys};

use super::client::tcp;
use super::http::{http_request, HttpResponse};
use super::WAIT;

/// The secret of every test server that takes tokens.
pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// Keys of [`TEST_SECRET`].
pub fn test_keys() -> TokenKeys {
    TokenKeys::from_secret(TEST_SECRET.as_bytes()).expect("test secret is long enough")
}

/// A token of [`TEST_SECRET`] for `sub` in `role`, valid for an hour.
pub fn token_for(sub: &str, role: Role) -> String {
    test_keys()
        .mint(&Claims::new(sub, role, sub, Duration::from_secs(3600)))
        .expect("mint")
}

/// A token that may read every chat.
pub fn admin_token() -> String {
    token_for("test-admin", Role::Admin)
}

/// `GET path` with `Authorization: Bearer <token>`.
pub async fn http_get_as(port: u16, path: &str, token: &str) -> HttpResponse {
    http_request(
        port,
        "GET",
        path,
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .await
}

/// What `GET /api/chats/<cid>/transcript` holds for `token`: the chat record,
/// and each message as (sender, payload) in relay order.
pub async fn transcript_as(port: u16, cid: &str, token: &str) -> (Value, Vec<(String, Value)>) {
    let response = http_get_as(port, &format!("/api/chats/{cid}/transcript"), token).await;
    let body = response.text();
    assert_eq!(response.status, 200, "transcript of {cid}: {body}");
    let body: Value = serde_json::from_str(&body).expect("transcript JSON");
    let messages = body["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| {
            let sender = m["sender"].as_str().unwrap_or("?").to_owned();
            (sender, m["payload"].clone())
        })
        .collect();
    (body["chat"].clone(), messages)
}

/// `POST path` with `body` as written and `content_type`; the whole response.
pub async fn http_post(port: u16, path: &str, content_type: &str, body: &[u8]) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tcp(port, None).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        // A refused body may be answered (and the socket closed) before it is all sent.
        let _ = s.write_all(body).await;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        raw
    };
    let raw = tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("POST {path}: no response within {WAIT:?}"));
    super::http::parse_response(&raw, "POST", path)
}
