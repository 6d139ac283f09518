//! One WebSocket of one simulated user: the endpoint URL rules, connecting (with
//! `TCP_NODELAY`), per-socket refs (`"1"`, `"2"`, … as strings, like both Phoenix
//! clients), V2 join refs per topic, sending frames and receiving text frames.
//!
//! Nothing here interprets what the server says; the user tasks do.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::codec::{encode, Framing};

/// Applies the `--url` / `--vsn` rules: a URL without a path gets `/ws` (V1, what the
/// 2015 client uses) or `/socket/websocket` (V2, what phoenix.js builds from
/// `…/socket`); V2 adds `vsn=2.0.0` to the query unless a `vsn` is already there. A
/// `vsn` in the URL that contradicts `--vsn` is an error.
pub fn endpoint(url: &str, framing: Framing) -> anyhow::Result<String> {
    let uri: Uri = url.parse().with_context(|| format!("bad --url {url:?}"))?;
    match uri.scheme_str() {
        Some("ws") => {}
        Some(other) => bail!("--url scheme {other:?} is not supported (use ws://)"),
        None => bail!("--url {url:?} has no scheme (use ws://host:port/path)"),
    }
    let Some(authority) = uri.authority() else {
        bail!("--url {url:?} has no host");
    };
    let path = match uri.path() {
        "" | "/" => match framing {
            Framing::V1 => "/ws",
            Framing::V2 => "/socket/websocket",
        },
        path => path,
    };
    let query = uri.query().unwrap_or("");
    let vsn = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("vsn="))
        .next_back();
    let query = match (framing, vsn) {
        (Framing::V1, None) => query.to_owned(),
        (Framing::V1, Some(v)) if v.starts_with("1.0.") => query.to_owned(),
        (Framing::V2, Some(v)) if v.starts_with("2.0.") => query.to_owned(),
        (Framing::V2, None) if query.is_empty() => "vsn=2.0.0".to_owned(),
        (Framing::V2, None) => format!("{query}&vsn=2.0.0"),
        (_, Some(v)) => bail!("--url asks for vsn={v}, which contradicts --vsn"),
    };
    let mut out = format!("ws://{authority}{path}");
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    Ok(out)
}

/// Per-socket buffers sized for this protocol (frames are a few hundred bytes; the
/// server caps messages at 64 KiB): tungstenite's 128 KiB read buffer per socket would
/// cost over a GiB at 10 000 users.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// What [`Conn::recv`] got.
#[derive(Debug)]
pub enum Recv {
    Text(Utf8Bytes),
    Binary,
    /// Close frame, EOF or a transport error.
    Closed(String),
}

/// A timer ticking every `period`, the first tick one period from now; missed ticks
/// are delayed, not bunched (heartbeats, claims).
pub fn every(period: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    framing: Framing,
    next_ref: u64,
    /// V2 join ref of each joined topic (echoed as `join_ref` on its pushes).
    join_refs: HashMap<String, String>,
    /// Which `--url` this connection went to (a reconnection takes the next one).
    pub url_index: usize,
}

impl Conn {
    /// TCP connect plus WebSocket handshake to an [`endpoint`] URL, bounded in time.
    pub async fn connect(url: &str, framing: Framing, limit: Duration) -> anyhow::Result<Conn> {
        let request = url.into_client_request()?;
        let uri = request.uri();
        let host = uri
            .host()
            .context("url has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let connect = async {
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            let (ws, _response) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                    .await?;
            anyhow::Ok(ws)
        };
        let ws = tokio::time::timeout(limit, connect)
            .await
            .context("connect timed out")??;
        Ok(Conn {
            ws,
            framing,
            next_ref: 0,
            join_refs: HashMap::new(),
            url_index: 0,
        })
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    fn take_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    async fn send<P: Serialize + ?Sized>(
        &mut self,
        join_ref: Option<&str>,
        msg_ref: u64,
        topic: &str,
        event: &str,
        payload: &P,
    ) -> Result<u64, WsError> {
        let msg_ref_text = msg_ref.to_string();
        let text = encode(
            self.framing,
            join_ref,
            Some(&msg_ref_text),
            topic,
            event,
            payload,
        )
        .map_err(|e| WsError::Io(std::io::Error::other(e)))?;
        self.ws.send(Message::text(text)).await?;
        Ok(msg_ref)
    }

    /// `phx_join`; returns its ref (also the channel's join ref).
    pub async fn join<P: Serialize + ?Sized>(
        &mut self,
        topic: &str,
        payload: &P,
    ) -> Result<u64, WsError> {
        let r = self.take_ref();
        let join_ref = r.to_string();
        self.join_refs.insert(topic.to_owned(), join_ref.clone());
        self.send(Some(&join_ref), r, topic, "phx_join", payload)
            .await
    }

    /// An event on a joined topic; returns its ref.
    pub async fn push<P: Serialize + ?Sized>(
        &mut self,
        topic: &str,
        event: &str,
        payload: &P,
    ) -> Result<u64, WsError> {
        let r = self.take_ref();
        let join_ref = self.join_refs.get(topic).cloned();
        self.send(join_ref.as_deref(), r, topic, event, payload)
            .await
    }

    /// `phx_leave`; returns its ref.
    pub async fn leave(&mut self, topic: &str) -> Result<u64, WsError> {
        let r = self.take_ref();
        let join_ref = self.join_refs.remove(topic);
        self.send(join_ref.as_deref(), r, topic, "phx_leave", &json!({}))
            .await
    }

    /// `phoenix` / `heartbeat`, as both clients send every 30 s.
    pub async fn heartbeat(&mut self) -> Result<u64, WsError> {
        let r = self.take_ref();
        self.send(None, r, "phoenix", "heartbeat", &json!({})).await
    }

    /// The next text or binary frame; pings are answered by tungstenite itself.
    pub async fn recv(&mut self) -> Recv {
        loop {
            match self.ws.next().await {
                None => return Recv::Closed("end of stream".into()),
                Some(Err(e)) => return Recv::Closed(e.to_string()),
                Some(Ok(Message::Text(text))) => return Recv::Text(text),
                Some(Ok(Message::Binary(_))) => return Recv::Binary,
                Some(Ok(Message::Close(frame))) => {
                    return Recv::Closed(format!("close frame {frame:?}"))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }

    /// `--drop-rate`: the connection dies as a Wi-Fi drop or a killed tab does: the
    /// TCP socket is closed with no WebSocket close frame (FIN, or RST when unread
    /// data is pending), and whatever the server still sends is lost.
    pub fn drop_abruptly(self) {
        drop(self.ws.into_inner());
    }

    /// Polite close (close frame, bounded wait); errors are irrelevant by then.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_endpoints() {
        let e = |u| endpoint(u, Framing::V1).unwrap();
        assert_eq!(e("ws://127.0.0.1:4000/ws"), "ws://127.0.0.1:4000/ws");
        assert_eq!(e("ws://127.0.0.1:4000"), "ws://127.0.0.1:4000/ws");
        assert_eq!(e("ws://127.0.0.1:4000/"), "ws://127.0.0.1:4000/ws");
        assert_eq!(
            e("ws://localhost:4000/socket/websocket?vsn=1.0.0"),
            "ws://localhost:4000/socket/websocket?vsn=1.0.0"
        );
    }

    #[test]
    fn v2_endpoints() {
        let e = |u| endpoint(u, Framing::V2).unwrap();
        assert_eq!(
            e("ws://127.0.0.1:4000"),
            "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0"
        );
        assert_eq!(
            e("ws://127.0.0.1:4000/ws"),
            "ws://127.0.0.1:4000/ws?vsn=2.0.0"
        );
        assert_eq!(
            e("ws://127.0.0.1:4000/socket/websocket?token=x"),
            "ws://127.0.0.1:4000/socket/websocket?token=x&vsn=2.0.0"
        );
        assert_eq!(
            e("ws://[::1]:4000/ws?vsn=2.0.0"),
            "ws://[::1]:4000/ws?vsn=2.0.0"
        );
    }

    #[test]
    fn bad_urls() {
        assert!(endpoint("http://127.0.0.1:4000/ws", Framing::V1).is_err());
        assert!(endpoint("wss://127.0.0.1:4000/ws", Framing::V1).is_err());
        assert!(endpoint("/ws", Framing::V1).is_err());
        assert!(endpoint("ws://127.0.0.1:4000/ws?vsn=2.0.0", Framing::V1).is_err());
        assert!(endpoint("ws://127.0.0.1:4000/ws?vsn=1.0.0", Framing::V2).is_err());
    }
}
