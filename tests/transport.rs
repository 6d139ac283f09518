//! Transport: upgrade paths, vsn negotiation, subprotocol, HTTP refusals, heartbeat,
//! ref echo (PROTOCOL 1.2, 1.3, 2.3, 3.2).

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Sends a heartbeat encoded in `framing` and expects the exact reply in that framing:
/// proves which framing the server chose for the connection.
async fn assert_speaks(c: &mut Client, framing: Framing) {
    let r = Value::String(c.new_ref());
    c.send_msg(&Value::Null, &r, "phoenix", "heartbeat", &json!({}))
        .await;
    let f = c.next_frame(WAIT).await;
    let expected = match framing {
        Framing::V1 => {
            json!({"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":r})
        }
        Framing::V2 => json!([null, r, "phoenix", "phx_reply", {"status":"ok","response":{}}]),
    };
    assert_eq!(f.value(), expected, "[{}] heartbeat reply", c.name);
}

#[tokio::test]
async fn upgrade_paths_choose_framing_by_vsn() {
    let srv = start_default();
    let cases = [
        ("/ws", Framing::V1),
        ("/ws/websocket?vsn=2.0.0", Framing::V2),
        ("/socket/websocket?vsn=2.0.0", Framing::V2),
        ("/socket/websocket?vsn=1.0.0", Framing::V1),
        ("/ws?vsn=1.0.7", Framing::V1),
        ("/ws/websocket?vsn=2.0.3", Framing::V2),
        ("/ws/websocket", Framing::V1),
        // Client B puts its params in the query string; only vsn counts
        // here (a `token` is checked, PROTOCOL 1.7: tests/identity.rs).
        ("/socket/websocket?name=abc&vsn=2.0.0&userId=3", Framing::V2),
        ("/ws?foo=bar", Framing::V1),
    ];
    for (path, framing) in cases {
        let mut c = connect_path(srv.port, path, framing).await;
        assert_speaks(&mut c, framing).await;
    }
}

/// `/socket` is a MAY in PROTOCOL 1.2 (the brief asks for it).
#[tokio::test]
async fn upgrade_on_bare_socket_path() {
    let srv = start_default();
    let mut c = connect_path(srv.port, "/socket", Framing::V1).await;
    assert_speaks(&mut c, Framing::V1).await;
    let mut c = connect_path(srv.port, "/socket?vsn=2.0.0", Framing::V2).await;
    assert_speaks(&mut c, Framing::V2).await;
}

#[tokio::test]
async fn unsupported_vsn_is_refused_with_403() {
    let srv = start_default();
    for path in [
        "/ws?vsn=3.0.0",
        "/socket/websocket?vsn=3.0.0",
        "/ws/websocket?vsn=2.0",
        "/socket/websocket?vsn=abc",
        "/ws?vsn=1.1.0",
    ] {
        match handshake(srv.port, path, Framing::V1, None).await {
            Handshake::Refused(status) => assert_eq!(status, 403, "{path}: expected 403"),
            Handshake::Ok(..) => panic!("{path}: upgrade accepted, expected 403 (PROTOCOL 1.3)"),
        }
    }
}

#[tokio::test]
async fn unknown_path_is_404() {
    let srv = start_default();
    for path in ["/nope", "/socket/other", "/wss", "/ws/websocket/extra"] {
        match handshake(srv.port, path, Framing::V1, None).await {
            Handshake::Refused(status) => assert_eq!(status, 404, "{path}: expected 404"),
            Handshake::Ok(..) => panic!("{path}: upgrade accepted, expected 404 (PROTOCOL 1.2)"),
        }
    }
}

/// Raw HTTP/1.1 request; returns the status code.
async fn http_status(port: u16, request: &str) -> u16 {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk).await.expect("read response");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let status_line = head.lines().next().unwrap_or_default().to_owned();
        status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no HTTP status line in response: {head:?}"))
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("HTTP request timed out")
}

#[tokio::test]
async fn plain_get_without_upgrade_is_400() {
    let srv = start_default();
    for path in ["/ws", "/socket/websocket", "/ws/websocket"] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            srv.port
        );
        assert_eq!(
            http_status(srv.port, &req).await,
            400,
            "plain GET {path} (PROTOCOL 1.2)"
        );
    }
    let req = format!(
        "GET /nope HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        srv.port
    );
    assert_eq!(http_status(srv.port, &req).await, 404, "plain GET /nope");
}

#[tokio::test]
async fn offered_phoenix_subprotocol_is_selected() {
    let srv = start_default();
    for (offer, framing, path) in [
        ("phoenix", Framing::V1, "/ws"),
        (
            "phoenix, base64url.bearer.phx.c2VjcmV0",
            Framing::V2,
            "/socket/websocket?vsn=2.0.0",
        ),
        (
            "base64url.bearer.phx.c2VjcmV0, phoenix",
            Framing::V2,
            "/ws/websocket?vsn=2.0.0",
        ),
    ] {
        match handshake(srv.port, path, framing, Some(offer)).await {
            Handshake::Ok(mut c, resp) => {
                let chosen = resp
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned());
                assert_eq!(
                    chosen.as_deref(),
                    Some("phoenix"),
                    "offered {offer:?} (PROTOCOL 1.2)"
                );
                assert_speaks(&mut c, framing).await;
            }
            Handshake::Refused(status) => panic!("offer {offer:?} on {path} refused with {status}"),
        }
    }
}

#[tokio::test]
async fn origin_header_is_not_checked() {
    let srv = start_default();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", srv.port))
        .await
        .unwrap();
    let mut req = format!("ws://127.0.0.1:{}/ws", srv.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    let res = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream))
        .await
        .expect("handshake timed out");
    assert!(
        res.is_ok(),
        "upgrade with a foreign Origin must be accepted (PROTOCOL 1.2): {:?}",
        res.err()
    );
}

async fn heartbeat_exact(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    match framing {
        Framing::V1 => {
            c.send_text(r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"12"}"#)
                .await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!({"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"12"})
            );
            // Numeric ref keeps its type.
            c.send_text(r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":6}"#)
                .await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!({"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":6})
            );
        }
        Framing::V2 => {
            c.send_text(r#"[null,"12","phoenix","heartbeat",{}]"#).await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!([null, "12", "phoenix", "phx_reply", {"status":"ok","response":{}}])
            );
            // PROTOCOL 2.3.1: a numeric ref must come back as a number, not "6".
            c.send_text(r#"[null,6,"phoenix","heartbeat",{}]"#).await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!([null, 6, "phoenix", "phx_reply", {"status":"ok","response":{}}])
            );
        }
    }
    // Many heartbeats in a row, each answered in order with its own ref.
    let mut refs = Vec::new();
    for _ in 0..20 {
        let r = Value::String(c.new_ref());
        c.send_msg(&Value::Null, &r, "phoenix", "heartbeat", &json!({}))
            .await;
        refs.push(r);
    }
    for r in refs {
        let f = c.next_frame(WAIT).await;
        assert!(
            f.is_reply_to("phoenix", &r),
            "heartbeat replies in order; expected ref {r}, got {}",
            f.raw
        );
        f.assert_ok_empty();
    }
    c.expect_silence(SILENCE).await;
}

/// Replies echo refs keeping their JSON type, on joins and events too (PROTOCOL 2.3.1).
async fn refs_keep_their_json_type(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    match framing {
        Framing::V1 => {
            c.send_text(r#"{"topic":"presence:teachers","event":"phx_join","payload":{"userId":1,"role":"teacher"},"ref":5}"#).await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!({"topic":"presence:teachers","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":5})
            );
            c.send_text(r#"{"topic":"presence:teachers","event":"claim:student","payload":{"teacherId":1},"ref":77}"#).await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!({"topic":"presence:teachers","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":77})
            );
            c.send_text(
                r#"{"topic":"presence:teachers","event":"phx_leave","payload":{},"ref":78}"#,
            )
            .await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!({"topic":"presence:teachers","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":78})
            );
            // phx_close carries the join ref, i.e. the ref of the phx_join as received.
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!({"topic":"presence:teachers","event":"phx_close","payload":{},"ref":5})
            );
        }
        Framing::V2 => {
            c.send_text(r#"["5",5,"presence:teachers","phx_join",{"userId":1,"role":"teacher"}]"#)
                .await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!(["5", 5, "presence:teachers", "phx_reply", {"status":"ok","response":{}}])
            );
            c.send_text(r#"["5",77,"presence:teachers","claim:student",{"teacherId":1}]"#)
                .await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!(["5", 77, "presence:teachers", "phx_reply", {"status":"ok","response":{}}])
            );
            c.send_text(r#"["5","78","presence:teachers","phx_leave",{}]"#)
                .await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!(["5", "78", "presence:teachers", "phx_reply", {"status":"ok","response":{}}])
            );
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                json!(["5", "5", "presence:teachers", "phx_close", {}])
            );
        }
    }
    c.expect_silence(SILENCE).await;
}

/// Heartbeats are answered while other traffic flows (not behind application work).
async fn heartbeat_interleaved_with_traffic(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let mut refs = Vec::new();
    for i in 0..50 {
        if i % 5 == 0 {
            let r = t.push("phoenix", "heartbeat", json!({})).await;
            refs.push(r);
        } else {
            t.push(
                "presence:teachers",
                "claim:student",
                json!({"teacherId": 1}),
            )
            .await;
        }
    }
    for r in refs {
        t.reply("phoenix", &r).await.assert_ok_empty();
    }
}

crate::both!(
    heartbeat_exact,
    refs_keep_their_json_type,
    heartbeat_interleaved_with_traffic
);
