//! Test-side client for the tutor-queue server.
//!
//! It owns its OWN tiny Phoenix codec (V1 objects, V2 arrays): a codec shared with the
//! server would hide a bug common to both. Every frame the server sends is checked
//! against the invariants of PROTOCOL.md 2.1-2.3 as it is decoded (object payloads,
//! exact V1 key set, `ref: null` on pushes/broadcasts, a consistent `user:status`), so
//! every test checks them for free.
//!
//! Every wait has a timeout, and a failed wait panics with the frames it saw.

#![allow(dead_code)]

pub mod node;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

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

// ---------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------

/// A server started on 127.0.0.1:<port> in its own thread and actix System.
/// The thread lives until the test process exits.
pub struct Server {
    pub port: u16,
}

/// Starts a server. Hermetic: a config that keeps the default data directory
/// (`./data`, inside the repository) records no transcripts; a test that
/// wants them points `data_dir` at a temporary directory.
pub fn start(mut config: Config) -> Server {
    if config.data_dir == Config::default().data_dir {
        config.transcripts = false;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    std::thread::Builder::new()
        .name(format!("tutor-queue-{port}"))
        .spawn(move || {
            let result = actix_web::rt::System::new().block_on(tutor_queue::run(listener, config));
            eprintln!("tutor-queue server on port {port} stopped: {result:?}");
        })
        .expect("spawn server thread");
    Server { port }
}

pub fn start_default() -> Server {
    start(Config::default())
}

// ---------------------------------------------------------------------------------
// Framing and frames
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// JSON objects, `/ws`.
    V1,
    /// JSON arrays, `/socket/websocket?vsn=2.0.0`.
    V2,
}

impl Framing {
    pub fn default_path(self) -> &'static str {
        match self {
            Framing::V1 => "/ws",
            Framing::V2 => "/socket/websocket?vsn=2.0.0",
        }
    }
}

/// One decoded server→client message.
#[derive(Clone, Debug)]
pub struct Frame {
    /// V2 only: the first array element (may be `Value::Null`). `None` in V1.
    pub join_ref: Option<Value>,
    pub r#ref: Value,
    pub topic: String,
    pub event: String,
    pub payload: Value,
    /// The text exactly as received.
    pub raw: String,
}

impl Frame {
    pub fn is(&self, topic: &str, event: &str) -> bool {
        self.topic == topic && self.event == event
    }
    pub fn is_reply_to(&self, topic: &str, r: &Value) -> bool {
        self.topic == topic && self.event == "phx_reply" && &self.r#ref == r
    }
    /// `payload.status` of a reply.
    pub fn status(&self) -> &str {
        self.payload["status"].as_str().unwrap_or("")
    }
    /// `payload.response` of a reply.
    pub fn response(&self) -> &Value {
        &self.payload["response"]
    }
    /// `payload.response.reason` of an error reply.
    pub fn reason(&self) -> &str {
        self.payload["response"]["reason"].as_str().unwrap_or("")
    }
    /// The whole frame as a JSON value, for exact comparisons.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.raw).expect("frame was valid JSON when decoded")
    }
    pub fn assert_ok_empty(&self) {
        assert_eq!(
            (self.status(), self.response()),
            ("ok", &json!({})),
            "expected an ok {{}} reply, got {}",
            self.raw
        );
    }
    pub fn assert_error(&self, reason: &str) {
        assert_eq!(
            self.payload,
            json!({"status": "error", "response": {"reason": reason}}),
            "expected an error reply with reason {reason:?}, got {}",
            self.raw
        );
    }
}

/// What the read side produced.
enum Incoming {
    Frame(Frame),
    /// The connection ended; `Some(code)` if a close frame arrived.
    Closed(Option<u16>),
}

/// The canonical key of a user id (PROTOCOL 5.1): decimal text of an integer, or the string.
pub fn key(id: &Value) -> String {
    match id {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not a valid user id: {other}"),
    }
}

pub fn encode(
    framing: Framing,
    join_ref: &Value,
    r: &Value,
    topic: &str,
    event: &str,
    payload: &Value,
) -> String {
    match framing {
        Framing::V1 => {
            json!({"topic": topic, "event": event, "payload": payload, "ref": r}).to_string()
        }
        Framing::V2 => json!([join_ref, r, topic, event, payload]).to_string(),
    }
}

/// Decodes and checks one server→client text frame. `current_join_ref` is the join ref
/// this client holds for the frame's topic (V2 push/broadcast check, PROTOCOL 2.3.3).
fn decode(framing: Framing, raw: &str, current_join_ref: Option<&Value>, who: &str) -> Frame {
    let v: Value = serde_json::from_str(raw).unwrap_or_else(|e| {
        panic!("[{who}] server sent a text frame that is not JSON ({e}): {raw}")
    });
    let frame = match framing {
        Framing::V1 => {
            let obj = v
                .as_object()
                .unwrap_or_else(|| panic!("[{who}] V1 frame is not an object: {raw}"));
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                vec!["event", "payload", "ref", "topic"],
                "[{who}] V1 outbound keys must be exactly topic, event, payload, ref (PROTOCOL 2.1): {raw}"
            );
            Frame {
                join_ref: None,
                r#ref: obj["ref"].clone(),
                topic: obj["topic"]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] topic is not a string: {raw}"))
                    .to_owned(),
                event: obj["event"]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] event is not a string: {raw}"))
                    .to_owned(),
                payload: obj["payload"].clone(),
                raw: raw.to_owned(),
            }
        }
        Framing::V2 => {
            let arr = v
                .as_array()
                .unwrap_or_else(|| panic!("[{who}] V2 frame is not an array: {raw}"));
            assert_eq!(arr.len(), 5, "[{who}] V2 frame must have 5 elements: {raw}");
            assert!(
                arr[0].is_null() || arr[0].is_string(),
                "[{who}] V2 join_ref must be a string or null: {raw}"
            );
            Frame {
                join_ref: Some(arr[0].clone()),
                r#ref: arr[1].clone(),
                topic: arr[2]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] topic is not a string: {raw}"))
                    .to_owned(),
                event: arr[3]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] event is not a string: {raw}"))
                    .to_owned(),
                payload: arr[4].clone(),
                raw: raw.to_owned(),
            }
        }
    };
    assert!(
        frame.payload.is_object(),
        "[{who}] outbound payload must be an object (PROTOCOL 2.3.2): {raw}"
    );
    assert!(
        frame.r#ref.is_null() || frame.r#ref.is_string() || frame.r#ref.is_number(),
        "[{who}] ref must be a string, number or null: {raw}"
    );
    match frame.event.as_str() {
        "phx_reply" => {
            let status = frame.payload["status"].as_str();
            assert!(
                status == Some("ok") || status == Some("error"),
                "[{who}] reply status must be ok or error (PROTOCOL 3.3): {raw}"
            );
            assert!(
                frame.payload["response"].is_object(),
                "[{who}] reply response must be an object (PROTOCOL 3.3): {raw}"
            );
            assert_eq!(
                frame.payload.as_object().map(|o| o.len()),
                Some(2),
                "[{who}] reply payload must be exactly {{status, response}}: {raw}"
            );
        }
        "phx_close" | "phx_error" => {
            // ref carries the channel's join ref; in V2 join_ref == ref.
            if let Some(jr) = &frame.join_ref {
                assert_eq!(
                    jr, &frame.r#ref,
                    "[{who}] V2 {} must be [JR,JR,...]: {raw}",
                    frame.event
                );
            }
        }
        _ => {
            assert!(
                frame.r#ref.is_null(),
                "[{who}] pushes and broadcasts carry ref null (PROTOCOL 2.1/2.3.3): {raw}"
            );
            if let Some(jr) = &frame.join_ref {
                assert!(
                    jr.is_null() || Some(jr) == current_join_ref,
                    "[{who}] V2 push join_ref must be null or the channel's current join ref \
                     ({current_join_ref:?}) (PROTOCOL 2.3.3): {raw}"
                );
            }
        }
    }
    if frame.event == "user:status" {
        check_status(&frame.payload, raw, who);
    }
    frame
}

/// PROTOCOL 5.5: status snapshot shape and `total == waiting + chatting + finished`.
fn check_status(p: &Value, raw: &str, who: &str) {
    let n = |v: &Value| {
        v.as_u64().unwrap_or_else(|| {
            panic!("[{who}] user:status count is not a non-negative integer: {raw}")
        })
    };
    n(&p["teachers"]["total"]);
    let s = &p["students"];
    let (total, w, c, f) = (
        n(&s["total"]),
        n(&s["waiting"]),
        n(&s["chatting"]),
        n(&s["finished"]),
    );
    assert_eq!(
        total,
        w + c + f,
        "[{who}] user:status total != waiting+chatting+finished (PROTOCOL 5.5): {raw}"
    );
}

/// A user:status payload as a tuple (teachers, total, waiting, chatting, finished).
pub fn status_tuple(p: &Value) -> (u64, u64, u64, u64, u64) {
    let s = &p["students"];
    (
        p["teachers"]["total"].as_u64().unwrap(),
        s["total"].as_u64().unwrap(),
        s["waiting"].as_u64().unwrap(),
        s["chatting"].as_u64().unwrap(),
        s["finished"].as_u64().unwrap(),
    )
}

pub fn status_payload(
    teachers: u64,
    total: u64,
    waiting: u64,
    chatting: u64,
    finished: u64,
) -> Value {
    json!({"teachers": {"total": teachers},
           "students": {"total": total, "waiting": waiting, "chatting": chatting, "finished": finished}})
}

/// PROTOCOL 5.5: the chat object has exactly seven keys, a UUID v4 id, echoes the ids as
/// sent in the join params, is active, nobody entered, no messages.
pub fn assert_chat_object(chat: &Value, teacher_id: &Value, student_id: &Value) {
    let obj = chat
        .as_object()
        .unwrap_or_else(|| panic!("chat object is not an object: {chat}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "id",
            "messages",
            "status",
            "student_entered",
            "student_id",
            "teacher_entered",
            "teacher_id"
        ],
        "chat object keys (PROTOCOL 5.5): {chat}"
    );
    let id = chat["id"]
        .as_str()
        .unwrap_or_else(|| panic!("chat id is not a string: {chat}"));
    assert!(is_uuid_v4(id), "chat id must be a UUID v4 string: {chat}");
    assert_eq!(chat["status"], json!("active"), "chat status: {chat}");
    assert_eq!(
        &chat["teacher_id"], teacher_id,
        "chat teacher_id echoes the join value: {chat}"
    );
    assert_eq!(
        &chat["student_id"], student_id,
        "chat student_id echoes the join value: {chat}"
    );
    assert_eq!(
        chat["teacher_entered"],
        json!(false),
        "teacher_entered: {chat}"
    );
    assert_eq!(
        chat["student_entered"],
        json!(false),
        "student_entered: {chat}"
    );
    assert_eq!(chat["messages"], json!([]), "messages: {chat}");
}

pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        };
        if !ok {
            return false;
        }
    }
    b[14] == b'4' && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

// ---------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------

pub type Ws = WebSocketStream<TcpStream>;

/// Result of a refused or failed handshake.
#[derive(Debug)]
pub enum Handshake {
    Ok(Box<Client>, http::Response<Option<Vec<u8>>>),
    Refused(u16),
}

pub struct Client {
    pub framing: Framing,
    pub name: String,
    ws: Ws,
    next_ref: u64,
    /// topic → current join ref (as sent in our phx_join).
    joins: HashMap<String, Value>,
    /// Frames read but not yet consumed by a wait.
    inbox: VecDeque<Frame>,
    /// The last frames read, for failure messages.
    history: VecDeque<String>,
    closed: Option<Option<u16>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.name)
    }
}

async fn tcp(port: u16, recv_buffer: Option<u32>) -> TcpStream {
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let fut = async {
        match recv_buffer {
            None => TcpStream::connect(addr).await,
            Some(size) => {
                let sock = tokio::net::TcpSocket::new_v4()?;
                sock.set_recv_buffer_size(size)?;
                sock.connect(addr).await
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("TCP connect to port {port} timed out"))
        .unwrap_or_else(|e| panic!("TCP connect to port {port} failed: {e}"))
}

/// Opens a WebSocket on `path`; returns the handshake outcome (HTTP status on refusal).
pub async fn handshake(
    port: u16,
    path: &str,
    framing: Framing,
    protocols: Option<&str>,
) -> Handshake {
    handshake_with(port, path, framing, protocols, None).await
}

pub async fn handshake_with(
    port: u16,
    path: &str,
    framing: Framing,
    protocols: Option<&str>,
    recv_buffer: Option<u32>,
) -> Handshake {
    let stream = tcp(port, recv_buffer).await;
    let mut req = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("valid request");
    if let Some(p) = protocols {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            http::HeaderValue::from_str(p).unwrap(),
        );
    }
    let res = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream))
        .await
        .unwrap_or_else(|_| panic!("WebSocket handshake on {path} timed out"));
    match res {
        Ok((ws, resp)) => {
            let client = Client {
                framing,
                name: format!("{framing:?} {path}"),
                ws,
                next_ref: 0,
                joins: HashMap::new(),
                inbox: VecDeque::new(),
                history: VecDeque::new(),
                closed: None,
            };
            Handshake::Ok(Box::new(client), resp)
        }
        Err(WsError::Http(resp)) => Handshake::Refused(resp.status().as_u16()),
        Err(e) => panic!("WebSocket handshake on {path} failed unexpectedly: {e}"),
    }
}

/// Connects with the framing's default path (V1 `/ws`, V2 `/socket/websocket?vsn=2.0.0`).
pub async fn connect(srv: &Server, framing: Framing) -> Client {
    connect_path(srv.port, framing.default_path(), framing).await
}

pub async fn connect_path(port: u16, path: &str, framing: Framing) -> Client {
    match handshake(port, path, framing, None).await {
        Handshake::Ok(c, _) => *c,
        Handshake::Refused(status) => panic!("upgrade on {path} refused with HTTP {status}"),
    }
}

impl Client {
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = format!("{} ({:?})", name.into(), self.framing);
        self
    }

    /// A fresh string ref from this socket's counter: "1", "2", ...
    pub fn new_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub fn join_ref_of(&self, topic: &str) -> Option<Value> {
        self.joins.get(topic).cloned()
    }

    /// Forgets the join ref this client holds for `topic` (as a client does after
    /// phx_close).
    pub fn forget(&mut self, topic: &str) {
        self.joins.remove(topic);
    }

    // ----- sending -----

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        tokio::time::timeout(WAIT, self.ws.send(Message::text(text)))
            .await
            .unwrap_or_else(|_| panic!("[{}] send timed out", self.name))
            .unwrap_or_else(|e| panic!("[{}] send failed: {e}", self.name));
    }

    /// Like `send_text` but tolerates a connection the server already closed.
    pub async fn try_send_text(&mut self, text: impl Into<String>) -> bool {
        let text: String = text.into();
        matches!(
            tokio::time::timeout(WAIT, self.ws.send(Message::text(text))).await,
            Ok(Ok(()))
        )
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        tokio::time::timeout(WAIT, self.ws.send(Message::binary(bytes)))
            .await
            .unwrap_or_else(|_| panic!("[{}] send timed out", self.name))
            .unwrap_or_else(|e| panic!("[{}] send failed: {e}", self.name));
    }

    /// Sends a text-opcode frame whose bytes need not be UTF-8.
    pub async fn send_raw_text_bytes(&mut self, bytes: Vec<u8>) {
        let frame = WsFrame::message(bytes, OpCode::Data(Data::Text), true);
        tokio::time::timeout(WAIT, self.ws.send(Message::Frame(frame)))
            .await
            .unwrap_or_else(|_| panic!("[{}] send timed out", self.name))
            .unwrap_or_else(|e| panic!("[{}] send failed: {e}", self.name));
    }

    pub async fn send_ping(&mut self) {
        tokio::time::timeout(WAIT, self.ws.send(Message::Ping(b"hi".to_vec().into())))
            .await
            .unwrap_or_else(|_| panic!("[{}] ping timed out", self.name))
            .unwrap_or_else(|e| panic!("[{}] ping failed: {e}", self.name));
    }

    /// Encodes and sends one message in this connection's framing.
    pub async fn send_msg(
        &mut self,
        join_ref: &Value,
        r: &Value,
        topic: &str,
        event: &str,
        payload: &Value,
    ) {
        let text = encode(self.framing, join_ref, r, topic, event, payload);
        self.send_text(text).await;
    }

    /// Pushes an event on `topic` with a fresh ref (V2: with the topic's current join
    /// ref, or null if not joined). Returns the ref.
    pub async fn push(&mut self, topic: &str, event: &str, payload: Value) -> Value {
        let r = Value::String(self.new_ref());
        let jr = self.joins.get(topic).cloned().unwrap_or(Value::Null);
        self.send_msg(&jr, &r, topic, event, &payload).await;
        r
    }

    /// Pushes and waits for the reply.
    pub async fn call(&mut self, topic: &str, event: &str, payload: Value) -> Frame {
        let r = self.push(topic, event, payload).await;
        self.reply(topic, &r).await
    }

    /// Sends `phx_join` (V2: join_ref == ref) and waits for its reply. On `ok` the ref
    /// becomes this client's join ref for the topic; on `error` the topic counts as not
    /// joined (D3: a refused duplicate join drops the old channel too).
    pub async fn join(&mut self, topic: &str, payload: Value) -> Frame {
        let r = Value::String(self.new_ref());
        self.send_msg(&r.clone(), &r, topic, "phx_join", &payload)
            .await;
        let reply = self.reply(topic, &r).await;
        if reply.status() == "ok" {
            self.joins.insert(topic.to_owned(), r);
        } else {
            self.joins.remove(topic);
        }
        reply
    }

    /// Joins and asserts the reply is `ok` `{}`.
    pub async fn join_ok(&mut self, topic: &str, payload: Value) -> Frame {
        let reply = self.join(topic, payload).await;
        assert_eq!(
            reply.payload,
            json!({"status": "ok", "response": {}}),
            "[{}] join of {topic} should succeed: {}",
            self.name,
            reply.raw
        );
        reply
    }

    /// Sends `phx_leave`, waits for the `ok` reply and then the `phx_close`.
    pub async fn leave(&mut self, topic: &str) {
        let reply = self.call(topic, "phx_leave", json!({})).await;
        reply.assert_ok_empty();
        self.wait_for(topic, "phx_close", WAIT).await;
        self.joins.remove(topic);
    }

    /// Sends a heartbeat and waits for its reply.
    pub async fn heartbeat(&mut self) {
        self.call("phoenix", "heartbeat", json!({}))
            .await
            .assert_ok_empty();
    }

    // ----- receiving -----

    fn record(&mut self, raw: &str) {
        if self.history.len() == 60 {
            self.history.pop_front();
        }
        let mut s: String = raw.chars().take(400).collect();
        if s.len() < raw.len() {
            s.push('…');
        }
        self.history.push_back(s);
    }

    fn seen(&self) -> String {
        let mut out = String::new();
        for (i, f) in self.history.iter().enumerate() {
            out.push_str(&format!("\n    {i:>2}: {f}"));
        }
        if out.is_empty() {
            out.push_str(" (nothing)");
        }
        if let Some(c) = self.closed {
            out.push_str(&format!(
                "\n    then the connection closed (close code {c:?})"
            ));
        }
        out
    }

    /// Reads one message from the socket before `deadline`. `None` on timeout.
    async fn read_one(&mut self, deadline: Instant) -> Option<Incoming> {
        if let Some(code) = self.closed {
            return Some(Incoming::Closed(code));
        }
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let raw = t.as_str().to_owned();
                    self.record(&raw);
                    let jr = {
                        // Peek at the topic to find our join ref for it.
                        let v: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
                        let topic = match self.framing {
                            Framing::V1 => {
                                v.get("topic").and_then(Value::as_str).map(str::to_owned)
                            }
                            Framing::V2 => v.get(2).and_then(Value::as_str).map(str::to_owned),
                        };
                        topic.and_then(|t| self.joins.get(&t).cloned())
                    };
                    return Some(Incoming::Frame(decode(
                        self.framing,
                        &raw,
                        jr.as_ref(),
                        &self.name,
                    )));
                }
                Some(Ok(Message::Binary(b))) => {
                    panic!(
                        "[{}] server sent a binary frame ({} bytes); only text is allowed",
                        self.name,
                        b.len()
                    )
                }
                Some(Ok(Message::Ping(_)))
                | Some(Ok(Message::Pong(_)))
                | Some(Ok(Message::Frame(_))) => continue,
                Some(Ok(Message::Close(cf))) => {
                    let code = cf.map(|c| u16::from(c.code));
                    self.closed = Some(code);
                    return Some(Incoming::Closed(code));
                }
                Some(Err(_)) | None => {
                    self.closed = Some(None);
                    return Some(Incoming::Closed(None));
                }
            }
        }
    }

    /// The next frame (inbox first), or panic after `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Frame {
        if let Some(f) = self.inbox.pop_front() {
            return f;
        }
        let deadline = Instant::now() + timeout;
        match self.read_one(deadline).await {
            Some(Incoming::Frame(f)) => f,
            Some(Incoming::Closed(code)) => panic!(
                "[{}] connection closed (code {code:?}) while waiting for the next frame; saw:{}",
                self.name,
                self.seen()
            ),
            None => panic!(
                "[{}] no frame within {timeout:?}; saw:{}",
                self.name,
                self.seen()
            ),
        }
    }

    /// Waits for the first frame (inbox first) matching `pred`; frames that do not match
    /// stay in the inbox. `None` on timeout or close.
    pub async fn try_wait_match(
        &mut self,
        pred: impl Fn(&Frame) -> bool,
        timeout: Duration,
    ) -> Option<Frame> {
        if let Some(i) = self.inbox.iter().position(&pred) {
            return self.inbox.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_one(deadline).await {
                Some(Incoming::Frame(f)) => {
                    if pred(&f) {
                        return Some(f);
                    }
                    self.inbox.push_back(f);
                }
                Some(Incoming::Closed(_)) | None => return None,
            }
        }
    }

    /// Like `try_wait_match` but panics with a clear message, including the frames seen.
    pub async fn wait_match(
        &mut self,
        pred: impl Fn(&Frame) -> bool,
        what: &str,
        timeout: Duration,
    ) -> Frame {
        match self.try_wait_match(pred, timeout).await {
            Some(f) => f,
            None => {
                let how = match self.closed {
                    Some(code) => format!("the connection closed (code {code:?})"),
                    None => format!("nothing matched within {timeout:?}"),
                };
                panic!(
                    "[{}] waiting for {what}: {how}; saw:{}",
                    self.name,
                    self.seen()
                )
            }
        }
    }

    pub async fn wait_for(&mut self, topic: &str, event: &str, timeout: Duration) -> Frame {
        let what = format!("{event} on {topic}");
        self.wait_match(|f| f.is(topic, event), &what, timeout)
            .await
    }

    pub async fn reply(&mut self, topic: &str, r: &Value) -> Frame {
        let what = format!("the phx_reply to ref {r} on {topic}");
        self.wait_match(|f| f.is_reply_to(topic, r), &what, WAIT)
            .await
    }

    /// Panics if a frame matching `pred` is in the inbox or arrives within `window`.
    pub async fn expect_none(
        &mut self,
        pred: impl Fn(&Frame) -> bool,
        what: &str,
        window: Duration,
    ) {
        if let Some(f) = self.try_wait_match(&pred, window).await {
            panic!(
                "[{}] expected no {what}, but got {}; saw:{}",
                self.name,
                f.raw,
                self.seen()
            );
        }
    }

    pub async fn expect_no_event(&mut self, topic: &str, event: &str, window: Duration) {
        let what = format!("{event} on {topic}");
        self.expect_none(|f| f.is(topic, event), &what, window)
            .await
    }

    /// Panics if anything is in the inbox or arrives within `window`.
    pub async fn expect_silence(&mut self, window: Duration) {
        if let Some(f) = self.inbox.front() {
            panic!(
                "[{}] expected silence, but an unconsumed frame is pending: {}; saw:{}",
                self.name,
                f.raw,
                self.seen()
            );
        }
        let deadline = Instant::now() + window;
        match self.read_one(deadline).await {
            None => {}
            Some(Incoming::Frame(f)) => {
                panic!(
                    "[{}] expected silence, got {}; saw:{}",
                    self.name,
                    f.raw,
                    self.seen()
                )
            }
            Some(Incoming::Closed(code)) => {
                panic!(
                    "[{}] expected silence, but the connection closed (code {code:?}); saw:{}",
                    self.name,
                    self.seen()
                )
            }
        }
    }

    /// Removes and returns every inbox frame matching `pred`.
    pub fn take_all(&mut self, pred: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let (taken, kept): (Vec<Frame>, Vec<Frame>) = self.inbox.drain(..).partition(|f| pred(f));
        self.inbox = kept.into();
        taken
    }

    /// Drops every unconsumed frame.
    pub fn clear(&mut self) {
        self.inbox.clear();
    }

    /// Reads everything that arrives within `window` into the inbox (never panics on
    /// close).
    pub async fn drain(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        while let Some(Incoming::Frame(f)) = self.read_one(deadline).await {
            self.inbox.push_back(f);
        }
    }

    /// Waits for the connection to end; returns the close code (`None` if it ended
    /// without a close frame). Frames read meanwhile go to the inbox.
    pub async fn wait_close(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_one(deadline).await {
                Some(Incoming::Frame(f)) => self.inbox.push_back(f),
                Some(Incoming::Closed(code)) => return code,
                None => panic!(
                    "[{}] the server did not close the connection within {timeout:?}; saw:{}",
                    self.name,
                    self.seen()
                ),
            }
        }
    }

    /// Asserts that the server closes the connection with `code`.
    pub async fn expect_close_code(&mut self, code: u16, why: &str) {
        let got = self.wait_close(WAIT).await;
        assert_eq!(
            got,
            Some(code),
            "[{}] {why}: expected close code {code}, got {got:?}; saw:{}",
            self.name,
            self.seen()
        );
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Drops the TCP connection without a close frame (a vanished peer).
    pub fn vanish(self) {
        drop(self);
    }

    // ----- application helpers -----

    /// `student:ready` on this student's presence topic; asserts `ok` `{}`.
    pub async fn ready(&mut self, sid: &Value) {
        let topic = format!("presence:student:{}", key(sid));
        let reply = self
            .call(&topic, "student:ready", json!({"userId": sid}))
            .await;
        assert_eq!(
            reply.payload,
            json!({"status": "ok", "response": {}}),
            "[{}] student:ready should be ok: {}",
            self.name,
            reply.raw
        );
    }

    /// `claim:student`; asserts `ok`; returns the chat object if a student was assigned.
    pub async fn claim(&mut self, tid: &Value) -> Option<Value> {
        let reply = self
            .call(
                "presence:teachers",
                "claim:student",
                json!({"teacherId": tid}),
            )
            .await;
        assert_eq!(
            reply.status(),
            "ok",
            "[{}] claim:student should be ok: {}",
            self.name,
            reply.raw
        );
        let resp = reply.response().clone();
        if resp == json!({}) {
            None
        } else {
            Some(resp)
        }
    }

    /// Claims and expects a chat with student `sid`; consumes the `new:chat:<tid>` push.
    /// Returns the chat id.
    pub async fn claim_expect(&mut self, tid: &Value, sid: &Value) -> String {
        let chat = self.claim(tid).await.unwrap_or_else(|| {
            panic!(
                "[{}] claim:student assigned nobody, expected student {sid}",
                self.name
            )
        });
        assert_eq!(
            &chat["student_id"], sid,
            "[{}] claim assigned the wrong student: {chat}",
            self.name
        );
        let ev = format!("new:chat:{}", key(tid));
        let push = self.wait_for("presence:teachers", &ev, WAIT).await;
        assert_eq!(
            push.payload, chat,
            "new:chat:<tid> push and claim reply carry the same chat"
        );
        chat["id"].as_str().unwrap().to_owned()
    }

    /// Joins `chats:<cid>` with the given role and id; asserts `ok`.
    pub async fn join_chat(&mut self, cid: &str, role: &str, id: &Value) {
        self.join_ok(&format!("chats:{cid}"), json!({"userId": id, "role": role}))
            .await;
    }
}

pub fn teacher_params(tid: &Value) -> Value {
    json!({"userId": tid, "role": "teacher"})
}

pub fn student_params(sid: &Value) -> Value {
    json!({"userId": sid, "role": "student"})
}

pub fn student_topic(sid: &Value) -> String {
    format!("presence:student:{}", key(sid))
}

pub fn chat_topic(cid: &str) -> String {
    format!("chats:{cid}")
}

/// A connected teacher joined to `presence:teachers`.
pub async fn teacher(srv: &Server, framing: Framing, tid: impl Into<Value>) -> Client {
    let tid = tid.into();
    let mut c = connect(srv, framing).await.named(format!("teacher {tid}"));
    c.join_ok("presence:teachers", teacher_params(&tid)).await;
    c
}

/// A connected student joined to `presence:student:<sid>` (not ready yet).
pub async fn student(srv: &Server, framing: Framing, sid: impl Into<Value>) -> Client {
    let sid = sid.into();
    let mut c = connect(srv, framing).await.named(format!("student {sid}"));
    c.join_ok(&student_topic(&sid), student_params(&sid)).await;
    c
}

/// A connected student that has sent `student:ready`.
pub async fn ready_student(srv: &Server, framing: Framing, sid: impl Into<Value>) -> Client {
    let sid = sid.into();
    let mut c = student(srv, framing, sid.clone()).await;
    c.ready(&sid).await;
    c
}

/// Both sides join `chats:<cid>`, send `*:joined`, and receive `chat:ready`.
pub async fn enter_chat(t: &mut Client, tid: &Value, s: &mut Client, sid: &Value, cid: &str) {
    let topic = chat_topic(cid);
    s.wait_for(&student_topic(sid), "new:chat", WAIT).await;
    t.join_chat(cid, "teacher", tid).await;
    s.join_chat(cid, "student", sid).await;
    t.call(&topic, "teacher:joined", json!({}))
        .await
        .assert_ok_empty();
    s.call(&topic, "student:joined", json!({}))
        .await
        .assert_ok_empty();
    t.wait_for(&topic, "chat:ready", WAIT).await;
    s.wait_for(&topic, "chat:ready", WAIT).await;
}

/// Teacher `tid` and student `sid` on fresh sockets, through ready → claim → join chat →
/// entered. Returns (teacher, student, chat id).
pub async fn start_chat(
    srv: &Server,
    framing: Framing,
    tid: impl Into<Value>,
    sid: impl Into<Value>,
) -> (Client, Client, String) {
    let (tid, sid) = (tid.into(), sid.into());
    let mut t = teacher(srv, framing, tid.clone()).await;
    let mut s = ready_student(srv, framing, sid.clone()).await;
    let cid = t.claim_expect(&tid, &sid).await;
    enter_chat(&mut t, &tid, &mut s, &sid, &cid).await;
    (t, s, cid)
}

/// A tiny deterministic PRNG (xorshift64*), so tests need no extra crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Random printable-ish text (valid UTF-8, rarely JSON).
    pub fn text(&mut self, n: usize) -> String {
        const ALPHABET: &[char] = &[
            '{',
            '}',
            '[',
            ']',
            '"',
            ':',
            ',',
            'a',
            'z',
            '0',
            '9',
            ' ',
            '\\',
            'é',
            '€',
            '\u{1F600}',
            'n',
            'u',
            'l',
        ];
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// The harness's own checks must not be vacuous: each bad frame below must be rejected
/// by `decode`, and the good ones accepted.
mod selftest {
    use super::*;

    #[test]
    fn decoder_accepts_contract_frames() {
        decode(
            Framing::V1,
            r#"{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"12"}"#,
            None,
            "t",
        );
        decode(
            Framing::V2,
            r#"[null,6,"phoenix","phx_reply",{"status":"ok","response":{}}]"#,
            None,
            "t",
        );
        decode(
            Framing::V2,
            r#"["1","1","presence:student:8","phx_close",{}]"#,
            None,
            "t",
        );
        decode(
            Framing::V2,
            r#"["3",null,"presence:teachers","new:chat:1",{}]"#,
            Some(&json!("3")),
            "t",
        );
        decode(
            Framing::V1,
            r#"{"topic":"presence:teachers","event":"user:status","payload":{"teachers":{"total":1},"students":{"total":3,"waiting":1,"chatting":1,"finished":1}},"ref":null}"#,
            None,
            "t",
        );
        assert!(is_uuid_v4("a17ffb00-ec45-4129-b076-775057324b7d"));
        assert!(!is_uuid_v4("a17ffb00-ec45-1129-b076-775057324b7d"));
    }

    #[test]
    #[should_panic(expected = "exactly topic, event, payload, ref")]
    fn decoder_rejects_v1_join_ref_key() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":null}"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "exactly topic, event, payload, ref")]
    fn decoder_rejects_v1_missing_ref() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"e","payload":{}}"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "payload must be an object")]
    fn decoder_rejects_null_payload() {
        decode(Framing::V2, r#"[null,null,"t","e",null]"#, None, "t");
    }

    #[test]
    #[should_panic(expected = "carry ref null")]
    fn decoder_rejects_push_with_ref() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"new:chat","payload":{},"ref":"3"}"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "current join ref")]
    fn decoder_rejects_foreign_join_ref_on_push() {
        decode(
            Framing::V2,
            r#"["999",null,"t","new:chat",{}]"#,
            Some(&json!("3")),
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "total != waiting+chatting+finished")]
    fn decoder_rejects_inconsistent_status() {
        decode(
            Framing::V2,
            r#"[null,null,"presence:teachers","user:status",{"teachers":{"total":1},"students":{"total":3,"waiting":1,"chatting":1,"finished":0}}]"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "must have 5 elements")]
    fn decoder_rejects_short_v2() {
        decode(Framing::V2, r#"[null,null,"t","e"]"#, None, "t");
    }

    #[test]
    #[should_panic(expected = "reply response must be an object")]
    fn decoder_rejects_reply_without_object_response() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"phx_reply","payload":{"status":"ok","response":null},"ref":"1"}"#,
            None,
            "t",
        );
    }
}

// ---------------------------------------------------------------------------------
// Plain HTTP
// ---------------------------------------------------------------------------------

/// A parsed HTTP/1.1 response: status, headers (lower-cased names), body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method target` with `extra` header lines, exactly as written (no
/// client-side path normalisation), and reads the whole response, bounded by WAIT.
pub async fn http_request(port: u16, method: &str, target: &str, extra: &str) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tcp(port, None).await;
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {target}: no response within {WAIT:?}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {target}: no header end in {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16)
            .expect("chunk size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

/// `GET path`.
pub async fn http_get(port: u16, path: &str) -> HttpResponse {
    http_request(port, "GET", path, "").await
}

/// What `GET /api/chats/<cid>/transcript` holds: the chat record, and each
/// message as (sender, payload) in relay order.
pub async fn transcript_of(port: u16, cid: &str) -> (Value, Vec<(String, Value)>) {
    let response = http_get(port, &format!("/api/chats/{cid}/transcript")).await;
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
