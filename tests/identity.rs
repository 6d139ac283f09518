//! Tokens at the WebSocket upgrade (PROTOCOL 1.7): a valid token upgrades, a bad one
//! gets 401 before any connection slot is taken, `--require-token` refuses tokenless
//! upgrades, tokenless clients are otherwise unchanged; the `token` subcommand and the
//! data-directory secret of the real binary.

use std::time::Duration;

use serde_json::json;
use tutor_queue::identity::{Claims, Role, TokenKeys};

use crate::support::binary::{RealServer, Signal};
use crate::support::*;

const SECRET: &str = "an identity test secret, 32+ bytes long";

fn keys() -> TokenKeys {
    TokenKeys::from_secret(SECRET.as_bytes()).expect("keys")
}

fn with_tokens() -> Config {
    Config {
        tokens: Some(keys()),
        ..Config::default()
    }
}

fn token(sub: &str, role: Role) -> String {
    keys()
        .mint(&Claims::new(
            sub,
            role,
            "Someone",
            Duration::from_secs(3600),
        ))
        .expect("mint")
}

/// The framing's default upgrade path with `token` added to its query.
fn path_with_token(framing: Framing, token: &str) -> String {
    let path = framing.default_path();
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}token={token}")
}

async fn refused_with(port: u16, path: &str, framing: Framing) -> u16 {
    match handshake(port, path, framing, None).await {
        Handshake::Refused(status) => status,
        Handshake::Ok(..) => panic!("the upgrade on {path} was accepted"),
    }
}

/// A token-bearing connection speaks the protocol: heartbeat, and a presence join.
async fn assert_serves(c: &mut Client) {
    c.heartbeat().await;
    c.join_ok("presence:teachers", teacher_params(&json!("t-1")))
        .await;
}

async fn a_valid_token_upgrades_and_tokenless_clients_are_unchanged(framing: Framing) {
    let srv = start(with_tokens());
    let mut c = connect_path(
        srv.port,
        &path_with_token(framing, &token("t-1", Role::Teacher)),
        framing,
    )
    .await;
    assert_serves(&mut c).await;
    // A token percent-encoded by a careful client is the same token.
    let encoded = token("t-2", Role::Teacher).replace('.', "%2E");
    let mut c = connect_path(srv.port, &path_with_token(framing, &encoded), framing).await;
    c.heartbeat().await;
    // The 2015 flow without a token, on the same server: a whole chat.
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 2).await;
    let topic = chat_topic(&cid);
    t.push(&topic, "teacher:send", json!({"message": "hi"}))
        .await;
    s.wait_for(&topic, "student:receive", WAIT).await;
}

both!(a_valid_token_upgrades_and_tokenless_clients_are_unchanged);

/// One signed-in user's tabs and devices share `max_connections_per_user`, whatever
/// address they come from: past it, 429; the same id under another role, another user,
/// and tokenless clients (counted per address, here uncapped) are not affected; a closed
/// tab frees its place.
#[tokio::test]
async fn one_user_gets_at_most_its_cap_of_connections() {
    let srv = start(Config {
        max_connections_per_user: 2,
        ..with_tokens()
    });
    let ana = path_with_token(Framing::V2, &token("ana", Role::Teacher));
    let mut first = connect_path(srv.port, &ana, Framing::V2).await;
    let second = connect_path(srv.port, &ana, Framing::V2).await;
    assert_eq!(refused_with(srv.port, &ana, Framing::V2).await, 429);
    let refused = http_get(srv.port, &ana).await;
    assert_eq!(refused.header("retry-after"), "5");
    assert!(refused.text().contains("this user"), "{}", refused.text());
    let as_student = path_with_token(Framing::V2, &token("ana", Role::Student));
    let mut other_role = connect_path(srv.port, &as_student, Framing::V2).await;
    let bo = path_with_token(Framing::V1, &token("bo", Role::Teacher));
    let mut other_user = connect_path(srv.port, &bo, Framing::V1).await;
    let mut tokenless = Vec::new();
    for _ in 0..3 {
        tokenless.push(connect(&srv, Framing::V1).await);
    }
    other_role.heartbeat().await;
    other_user.heartbeat().await;
    for c in &mut tokenless {
        c.heartbeat().await;
    }
    // A closed tab is a place to take.
    second.vanish();
    let mut third = handshake_once_freed(srv.port, &ana, Framing::V2, 429).await;
    third.heartbeat().await;
    first.heartbeat().await;
    let metrics = http_get(srv.port, "/metrics").await.text();
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="client_connection_limit"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_tokens_get_401_with_the_reason_before_a_connection_slot() {
    // One connection slot, taken: a bad token must be told 401, not 503.
    let srv = start(Config {
        max_connections: 1,
        ..with_tokens()
    });
    let mut holder = connect_path(
        srv.port,
        &path_with_token(Framing::V1, &token("s-1", Role::Student)),
        Framing::V1,
    )
    .await;
    holder.heartbeat().await;

    let other = TokenKeys::from_secret(b"some other secret, also 32 bytes long")
        .expect("keys")
        .mint(&Claims::new(
            "s-1",
            Role::Student,
            "S",
            Duration::from_secs(60),
        ))
        .expect("mint");
    let mut expired = Claims::new("s-1", Role::Student, "S", Duration::ZERO);
    expired.exp -= 3600;
    let expired = keys().mint(&expired).expect("mint");
    let valid = token("s-1", Role::Student);
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    let cases = [
        (other.as_str(), "bad token signature"),
        (expired.as_str(), "token expired"),
        ("not-a-token", "malformed token"),
        (tampered.as_str(), "token"),
    ];
    for (bad, reason) in cases {
        for framing in [Framing::V1, Framing::V2] {
            let path = path_with_token(framing, bad);
            assert_eq!(refused_with(srv.port, &path, framing).await, 401, "{path}");
        }
        let answer = http_get(srv.port, &path_with_token(Framing::V1, bad)).await;
        assert_eq!(answer.status, 401);
        assert!(answer.text().contains(reason), "{bad}: {}", answer.text());
    }
    // The slot is still the holder's: a valid token finds the server full.
    assert_eq!(
        refused_with(srv.port, &path_with_token(Framing::V1, &valid), Framing::V1).await,
        503
    );
    holder.heartbeat().await;
    let metrics = http_get(srv.port, "/metrics").await.text();
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="bad_token"}"#
        ),
        Some(12.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn require_token_refuses_tokenless_upgrades_and_admits_valid_tokens() {
    let srv = start(Config {
        require_token: true,
        ..with_tokens()
    });
    for framing in [Framing::V1, Framing::V2] {
        assert_eq!(
            refused_with(srv.port, framing.default_path(), framing).await,
            401
        );
        // An empty token is no token.
        assert_eq!(
            refused_with(srv.port, &path_with_token(framing, ""), framing).await,
            401
        );
        let mut c = connect_path(
            srv.port,
            &path_with_token(framing, &token("t-1", Role::Teacher)),
            framing,
        )
        .await;
        assert_serves(&mut c).await;
    }
    let answer = http_get(srv.port, "/ws").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.text(), "a token is required\n");
    let metrics = http_get(srv.port, "/metrics").await.text();
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="token_required"}"#
        ),
        Some(5.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_server_without_a_secret_refuses_every_token() {
    let srv = start_default();
    let path = path_with_token(Framing::V1, &token("t-1", Role::Teacher));
    assert_eq!(refused_with(srv.port, &path, Framing::V1).await, 401);
    connect(&srv, Framing::V1).await.heartbeat().await;
}

/// `tutor-queue token ...` with the binary's arguments, returning the token it prints.
fn mint_with_binary(data_dir: &std::path::Path, extra: &[&str]) -> String {
    let mut builder = RealServer::builder().data_dir(data_dir);
    for arg in extra {
        builder = builder.arg(*arg);
    }
    let out = builder
        .arg("token")
        .arg("--sub")
        .arg("ops")
        .arg("--role")
        .arg("admin")
        .arg("--name")
        .arg("Ops")
        .arg("--ttl")
        .arg("12h")
        .output();
    assert!(
        out.status.success(),
        "tutor-queue token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).expect("utf-8 token");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "one line, the token: {printed:?}");
    lines[0].to_owned()
}

#[tokio::test]
async fn the_token_subcommand_mints_what_the_server_accepts_across_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // Minting first creates the secret in the data directory, at 0600.
    let minted = mint_with_binary(&data, &[]);
    let secret = data.join("token-secret");
    let mode = std::fs::metadata(&secret)
        .expect("token-secret")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "token-secret mode {mode:o}");

    let mut bin = RealServer::builder().data_dir(&data).spawn();
    let path = path_with_token(Framing::V2, &minted);
    let mut c = connect_path(bin.port(), &path, Framing::V2).await;
    c.heartbeat().await;
    // A token of another secret is refused by this server.
    let foreign = token("ops", Role::Admin);
    let foreign_path = path_with_token(Framing::V2, &foreign);
    assert_eq!(
        refused_with(bin.port(), &foreign_path, Framing::V2).await,
        401
    );
    bin.signal(Signal::TERM);
    assert!(bin.wait_exit(WAIT).await.success());

    // After a restart on the same data directory, the same token still verifies.
    let bin = RealServer::builder().data_dir(&data).spawn();
    let mut c = connect_path(bin.port(), &path, Framing::V2).await;
    c.heartbeat().await;
    assert_eq!(
        mode,
        std::fs::metadata(&secret)
            .expect("kept")
            .permissions()
            .mode()
    );
}

#[tokio::test]
async fn token_secret_flag_signs_and_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let minted = mint_with_binary(dir.path(), &["--token-secret", SECRET]);
    assert!(
        !dir.path().join("token-secret").exists(),
        "with --token-secret no secret file is made"
    );
    // The library's keys of the same secret verify what the binary minted.
    let identity = keys().verify(&minted).expect("verifies");
    assert_eq!(identity.role(), Role::Admin);
    assert_eq!(identity.name(), "Ops");

    let bin = RealServer::builder()
        .data_dir(dir.path())
        .arg("--token-secret")
        .arg(SECRET)
        .arg("--require-token")
        .spawn();
    let mut c = connect_path(
        bin.port(),
        &path_with_token(Framing::V1, &minted),
        Framing::V1,
    )
    .await;
    c.heartbeat().await;
    let mut c = connect_path(
        bin.port(),
        &path_with_token(Framing::V1, &token("t-9", Role::Teacher)),
        Framing::V1,
    )
    .await;
    c.heartbeat().await;
    assert_eq!(refused_with(bin.port(), "/ws", Framing::V1).await, 401);
}

#[tokio::test]
async fn an_exposed_secret_file_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    mint_with_binary(dir.path(), &[]);
    let secret = dir.path().join("token-secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = RealServer::builder().data_dir(dir.path()).output();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}
