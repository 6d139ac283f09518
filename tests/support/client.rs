//! One test WebSocket connection: the handshake, sending in its framing, and waiting
//! (always with a timeout) for the frames it expects, with the frames seen in every
//! failure message.

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

use super::frames::{decode, encode, Frame, Framing, Incoming};
use super::server::Server;
use super::WAIT;

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
    /// Connected with a `token` (PROTOCOL 1.7): join replies say where the user
    /// stands (6.3) instead of `{}`.
    pub signed: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.name)
    }
}

pub(super) async fn tcp(port: u16, recv_buffer: Option<u32>) -> TcpStream {
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

/// Upgrades on `path` once a place is free: while the server answers `status`
/// (e.g. 429 at a client's cap) it tries again, for up to `WAIT`.
pub async fn handshake_once_freed(port: u16, path: &str, framing: Framing, status: u16) -> Client {
    let deadline = tokio::time::Instant::now() + super::WAIT;
    loop {
        match handshake(port, path, framing, None).await {
            Handshake::Ok(c, _) => return *c,
            Handshake::Refused(refused)
                if refused == status && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Handshake::Refused(refused) => panic!("still refused ({refused}) after a close"),
        }
    }
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
                signed: path.contains("token="),
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

    /// Joins and asserts the reply is `ok` `{}` (on a connection with a token: `ok`
    /// with an object, PROTOCOL 6.3).
    pub async fn join_ok(&mut self, topic: &str, payload: Value) -> Frame {
        let reply = self.join(topic, payload).await;
        let expected_empty = !self.signed;
        let ok = reply.status() == "ok"
            && reply.response().is_object()
            && (!expected_empty || *reply.response() == json!({}));
        assert!(
            ok,
            "[{}] join of {topic} should succeed: {}",
            self.name, reply.raw
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
}
