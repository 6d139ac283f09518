//! `--hold N`: idle users. Each one opens a WebSocket, joins its
//! `presence:student:<id>` topic (present, but never `student:ready`, so the queue and
//! the teachers see nothing), then only keeps the connection alive with a heartbeat
//! every 30 s, until Ctrl-C or `--timeout-s`. `held_open` counts those whose join was
//! accepted and whose socket is still open.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use serde_json::json;

use crate::codec::{decode, parse, Reply};
use crate::conn::Recv;
use crate::stats::ErrorKind;
use crate::{Shared, UserResult};

pub(crate) async fn run(shared: Arc<Shared>, id: u64) -> UserResult {
    let mut open = false;
    tokio::select! {
        () = hold(&shared, id, &mut open) => {}
        () = shared.stopped() => {}
    }
    UserResult::Hold
}

async fn hold(shared: &Shared, id: u64, open: &mut bool) {
    let Some(mut conn) = shared.connect(crate::token::Role::Student, id).await else {
        return;
    };
    let topic = format!("presence:student:{id}");
    let Ok(join_ref) = conn
        .join(&topic, &json!({"userId": id, "role": "student"}))
        .await
    else {
        shared.error(ErrorKind::Disconnected);
        return;
    };
    let mut heartbeat = crate::conn::every(shared.config.heartbeat_interval);
    let closed = loop {
        tokio::select! {
            recv = conn.recv() => match recv {
                Recv::Text(text) => {
                    let Ok(frame) = decode(conn.framing(), text.as_str()) else {
                        shared.error(ErrorKind::MalformedFrame);
                        continue;
                    };
                    let reply = (frame.event == "phx_reply")
                        .then(|| parse::<Reply>(frame.payload).ok())
                        .flatten();
                    match reply {
                        Some(r) if !r.is_ok() => shared.error(ErrorKind::ErrorReply),
                        Some(_) if frame.msg_ref.as_deref() == Some(&join_ref.to_string()) => {
                            if !*open {
                                *open = true;
                                shared.counters.held_open.fetch_add(1, Relaxed);
                            }
                        }
                        Some(_) => {} // heartbeat replies
                        None => shared.error(ErrorKind::UnexpectedFrame),
                    }
                }
                Recv::Binary => shared.error(ErrorKind::UnexpectedFrame),
                Recv::Closed(_) => break true,
            },
            _ = heartbeat.tick() => {
                if conn.heartbeat().await.is_err() {
                    break true;
                }
            }
        }
    };
    if closed {
        shared.error(ErrorKind::Disconnected);
        if *open {
            *open = false;
            shared.counters.held_open.fetch_sub(1, Relaxed);
        }
    }
}
