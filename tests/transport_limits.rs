//! Transport limits seen from a raw TCP socket: a frame or fragmented message over
//! `max_frame_bytes` is refused with 1009 as soon as its header arrives (not once it
//! has been buffered), a fragmented control frame gets 1002, each is counted in
//! `/metrics`, and a close handshake, from either side, ends with the server closing
//! TCP at once (RFC 6455 §7.1.1), not a second later.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::*;

/// Well over a loopback round trip, and under the linger actix-web adds by default
/// after a response (1 s from a clock cached for up to 500 ms: 500 ms to 1 s).
const PROMPT: Duration = Duration::from_millis(400);

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A client frame header declaring `len` payload bytes (masked, 64-bit length form).
fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&MASK);
    out
}

/// A whole client frame, masked.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, opcode, payload.len() as u64);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

fn close_frame(code: u16) -> Vec<u8> {
    frame(true, CLOSE, &code.to_be_bytes())
}

/// What the server sent.
#[derive(Debug)]
enum Read {
    Frame {
        opcode: u8,
        payload: Vec<u8>,
    },
    /// TCP ended (EOF, or a reset).
    Ended,
}

/// A WebSocket client that writes bytes exactly as given.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    async fn open(port: u16) -> RawWs {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write handshake");
        let mut ws = RawWs {
            stream,
            buf: Vec::new(),
        };
        let end = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    return end + 4;
                }
                assert!(ws.fill().await, "connection ended during the handshake");
            }
        })
        .await
        .expect("handshake timed out");
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "handshake: {head}");
        ws.buf.drain(..end);
        ws
    }

    /// Reads more bytes; false once TCP has ended.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next server frame (unmasked), or the end of TCP, within `timeout`.
    async fn next(&mut self, timeout: Duration) -> Read {
        let read = async {
            loop {
                if self.buf.len() >= 2 {
                    let (len, at) = match self.buf[1] & 0x7f {
                        126 if self.buf.len() >= 4 => {
                            (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                        }
                        127 if self.buf.len() >= 10 => {
                            let mut be = [0u8; 8];
                            be.copy_from_slice(&self.buf[2..10]);
                            (u64::from_be_bytes(be) as usize, 10)
                        }
                        126 | 127 => (usize::MAX, 0),
                        n => (n as usize, 2),
                    };
                    if len != usize::MAX && self.buf.len() >= at + len {
                        let opcode = self.buf[0] & 0x0f;
                        let payload = self.buf[at..at + len].to_vec();
                        self.buf.drain(..at + len);
                        return Read::Frame { opcode, payload };
                    }
                }
                if !self.fill().await {
                    return Read::Ended;
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .unwrap_or_else(|_| panic!("nothing from the server within {timeout:?}"))
    }

    /// Skips other frames up to the server's close frame; returns its code.
    async fn close_code(&mut self, timeout: Duration) -> u16 {
        loop {
            match self.next(timeout).await {
                Read::Frame {
                    opcode: CLOSE,
                    payload,
                } => {
                    assert!(payload.len() >= 2, "close frame without a code");
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
                Read::Frame { .. } => {}
                Read::Ended => panic!("TCP ended without a close frame"),
            }
        }
    }

    /// How long until the server ends TCP (EOF or reset), within `timeout`.
    async fn time_to_end(&mut self, timeout: Duration) -> Duration {
        let started = Instant::now();
        match self.next(timeout).await {
            Read::Ended => started.elapsed(),
            Read::Frame { opcode, .. } => {
                panic!("a frame (opcode {opcode}) after the close handshake")
            }
        }
    }
}

/// The value of one sample of `/metrics`, 0 when absent.
async fn rejected(port: u16, reason: &str) -> f64 {
    let series = format!(r#"tutor_queue_frames_rejected_total{{reason="{reason}"}}"#);
    let text = http_get(port, "/metrics").await.text();
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// A heartbeat, answered: the connection still works.
async fn heartbeat(ws: &mut RawWs) {
    ws.send(&frame(
        true,
        TEXT,
        br#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb"}"#,
    ))
    .await;
    match ws.next(WAIT).await {
        Read::Frame {
            opcode: TEXT,
            payload,
        } => assert!(
            String::from_utf8_lossy(&payload).contains(r#""ref":"hb""#),
            "{}",
            String::from_utf8_lossy(&payload)
        ),
        other => panic!("expected the heartbeat reply, got {other:?}"),
    }
}

/// A header declaring 2^40 bytes, and a little of them: close 1009 at once (the server
/// does not wait for the rest), counted; then, although the client keeps streaming,
/// the server ends TCP.
#[tokio::test]
async fn a_frame_declaring_a_terabyte_is_refused_at_its_header() {
    let srv = start_default();
    let mut ws = RawWs::open(srv.port).await;
    heartbeat(&mut ws).await;
    ws.send(&header(true, TEXT, 1 << 40)).await;
    ws.send(&[b'x'; 4096]).await;
    assert_eq!(ws.close_code(WAIT).await, 1009, "close code");
    assert_eq!(rejected(srv.port, "too_big").await, 1.0);
    // The client goes on streaming its terabyte; the server reads it into nothing and
    // closes TCP anyway.
    let (mut reader, mut writer) = ws.stream.into_split();
    let streaming = tokio::spawn(async move {
        let data = vec![b'x'; 64 * 1024];
        while writer.write_all(&data).await.is_ok() {}
    });
    let mut sink = vec![0u8; 16 * 1024];
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match reader.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server kept the connection open");
    tokio::time::timeout(WAIT, streaming)
        .await
        .expect("writes to a closed connection kept succeeding")
        .expect("the streaming task failed");
}

/// One byte over the limit, declared: 1009 before the frame is complete. The client
/// finishes its frame and answers the close; the server then ends TCP at once.
#[tokio::test]
async fn one_byte_over_the_limit_is_refused_before_it_arrives() {
    let srv = start_default();
    let limit = Config::default().max_frame_bytes;
    let mut ws = RawWs::open(srv.port).await;
    ws.send(&header(true, TEXT, limit as u64 + 1)).await;
    ws.send(&vec![b'x'; 1024]).await;
    assert_eq!(ws.close_code(WAIT).await, 1009, "close code");
    assert_eq!(rejected(srv.port, "too_big").await, 1.0);
    // The rest of the refused frame is read and dropped; then the client's close.
    ws.send(&vec![b'x'; limit + 1 - 1024]).await;
    ws.send(&close_frame(1009)).await;
    let took = ws.time_to_end(WAIT).await;
    assert!(
        took < PROMPT,
        "TCP ended {took:?} after the client answered the close"
    );
}

/// A fragmented message is refused when the running total passes the limit, at the
/// header of the fragment that passes it.
#[tokio::test]
async fn a_fragmented_message_over_the_limit_is_refused_at_the_fragment_that_passes_it() {
    let srv = start_default();
    let limit = Config::default().max_frame_bytes;
    let mut ws = RawWs::open(srv.port).await;
    let first = limit / 2;
    ws.send(&frame(false, TEXT, &vec![b' '; first])).await;
    ws.send(&header(false, CONTINUATION, (limit - first + 1) as u64))
        .await;
    ws.send(&[b' '; 16]).await;
    assert_eq!(ws.close_code(WAIT).await, 1009, "close code");
    assert_eq!(rejected(srv.port, "too_big").await, 1.0);
}

/// Fragments within the limit still make one message, and frames up to the limit
/// still pass.
#[tokio::test]
async fn fragmented_and_large_messages_within_the_limit_still_work() {
    let srv = start_default();
    let limit = Config::default().max_frame_bytes;
    let mut ws = RawWs::open(srv.port).await;
    let message = br#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb"}"#;
    ws.send(&frame(false, TEXT, &message[..10])).await;
    ws.send(&frame(true, PING, b"mid-message ping")).await;
    ws.send(&frame(false, CONTINUATION, &message[10..30])).await;
    ws.send(&frame(true, CONTINUATION, &message[30..])).await;
    let mut pong = false;
    loop {
        match ws.next(WAIT).await {
            Read::Frame { opcode: 0xA, .. } => pong = true,
            Read::Frame {
                opcode: TEXT,
                payload,
            } => {
                assert!(String::from_utf8_lossy(&payload).contains(r#""ref":"hb""#));
                break;
            }
            other => panic!("expected a pong and the heartbeat reply, got {other:?}"),
        }
    }
    assert!(pong, "the ping between fragments was answered");
    // A heartbeat padded with spaces to exactly the limit.
    let mut padded = message.to_vec();
    padded.resize(limit, b' ');
    ws.send(&frame(true, TEXT, &padded)).await;
    match ws.next(WAIT).await {
        Read::Frame { opcode: TEXT, .. } => {}
        other => panic!("a frame of exactly the limit: expected the reply, got {other:?}"),
    }
    assert_eq!(rejected(srv.port, "too_big").await, 0.0);
}

/// A fragmented ping is a protocol error: close 1002, counted as `protocol`.
#[tokio::test]
async fn a_fragmented_ping_is_a_counted_protocol_error() {
    let srv = start_default();
    let mut ws = RawWs::open(srv.port).await;
    ws.send(&frame(false, PING, b"half")).await;
    assert_eq!(ws.close_code(WAIT).await, 1002, "close code");
    assert_eq!(rejected(srv.port, "protocol").await, 1.0);
}

/// Client-initiated close: the server answers and ends TCP at once.
#[tokio::test]
async fn a_client_close_ends_tcp_at_once() {
    let srv = start_default();
    let mut ws = RawWs::open(srv.port).await;
    heartbeat(&mut ws).await;
    ws.send(&close_frame(1000)).await;
    let started = Instant::now();
    assert_eq!(ws.close_code(WAIT).await, 1000, "the echoed close");
    let took = started.elapsed() + ws.time_to_end(WAIT).await;
    assert!(took < PROMPT, "TCP ended {took:?} after the client's close");
}

/// Server-initiated close (idle timeout): once the client answers, TCP ends at once.
#[tokio::test]
async fn a_server_close_ends_tcp_once_answered() {
    let srv = start(Config {
        idle_timeout: Duration::from_secs(1),
        ..Config::default()
    });
    let mut ws = RawWs::open(srv.port).await;
    assert_eq!(ws.close_code(WAIT).await, 1000, "idle timeout");
    ws.send(&close_frame(1000)).await;
    let took = ws.time_to_end(WAIT).await;
    assert!(
        took < PROMPT,
        "TCP ended {took:?} after the client answered the close"
    );
}

/// Closing WebSockets at once leaves plain HTTP keep-alive as it was: two requests
/// on one connection.
#[tokio::test]
async fn http_keep_alive_still_serves_several_requests() {
    let srv = start_default();
    let mut s = TcpStream::connect(("127.0.0.1", srv.port))
        .await
        .expect("connect");
    let mut seen = Vec::new();
    for round in 1..=2 {
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            srv.port
        );
        s.write_all(request.as_bytes()).await.expect("write");
        let answered = tokio::time::timeout(WAIT, async {
            let mut chunk = [0u8; 1024];
            loop {
                let text = String::from_utf8_lossy(&seen).into_owned();
                if text.matches("\r\n\r\nok").count() >= round {
                    return true;
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("no answer");
        assert!(
            answered,
            "request {round} on a kept-alive connection: {}",
            String::from_utf8_lossy(&seen)
        );
    }
}
