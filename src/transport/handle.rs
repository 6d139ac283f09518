//! The handle through which every other part of the server reaches one
//! connection: its framing, and a bounded way to queue frames to it.
//!
//! The bound lives here, on the producer side, on purpose: an actix WebSocket
//! actor whose client stops reading is no longer polled (actix-web issue
//! 2441), so it cannot police its own queue. Every frame queued through
//! `deliver` counts against `outbound_limit` until the session has written it;
//! the first frame past the limit evicts the connection as a slow consumer.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use actix::Addr;
use bytestring::ByteString;

use super::session::{ChannelClosed, Deliver, Evict, Session};
use crate::channels::ChannelId;
use crate::protocol::Framing;

/// Identifies one connection for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

impl SessionId {
    pub fn next() -> SessionId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What became of a frame handed to `deliver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued in order behind everything queued before it.
    Queued,
    /// This frame crossed the bound: the connection is now evicted and the
    /// caller must report it to `ChatLifetime` as gone.
    Evicted,
    /// The connection is already gone or evicted; the frame was dropped.
    Dropped,
}

/// Shared handle to one connection's session actor.
#[derive(Debug)]
pub struct SessionHandle {
    id: SessionId,
    framing: Framing,
    addr: Addr<Session>,
    limit: usize,
    queued: AtomicUsize,
    evicted: AtomicBool,
}

impl SessionHandle {
    pub fn new(id: SessionId, framing: Framing, addr: Addr<Session>, limit: usize) -> Self {
        SessionHandle {
            id,
            framing,
            addr,
            limit,
            queued: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Queues a frame for `channel`; the session drops it if that channel is
    /// no longer joined when the frame comes up.
    pub fn deliver(&self, channel: ChannelId, frame: ByteString) -> Delivery {
        self.deliver_relayed(channel, frame, None)
    }

    /// `deliver` for a chat message read at `relayed_at`, so the session can
    /// measure the relay latency when it writes it.
    pub fn deliver_relayed(
        &self,
        channel: ChannelId,
        frame: ByteString,
        relayed_at: Option<Instant>,
    ) -> Delivery {
        match self.admit() {
            Delivery::Queued => {
                self.addr.do_send(Deliver {
                    channel,
                    frame,
                    relayed_at,
                });
                Delivery::Queued
            }
            other => other,
        }
    }

    /// Queues a server-side `phx_close` for `channel` (PROTOCOL 3.5): the
    /// session forgets the channel and writes the frame.
    pub fn close_channel(&self, channel: ChannelId, frame: ByteString) -> Delivery {
        match self.admit() {
            Delivery::Queued => {
                self.addr.do_send(ChannelClosed { channel, frame });
                Delivery::Queued
            }
            other => other,
        }
    }

    /// Asks the session to close its connection (server shutdown).
    pub fn addr(&self) -> &Addr<Session> {
        &self.addr
    }

    /// Called by the session once it has written (or dropped) a queued frame.
    pub(super) fn written(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Marks the connection evicted (idempotent); true for the first caller.
    pub fn evict(&self) -> bool {
        let first = !self.evicted.swap(true, Ordering::AcqRel);
        if first {
            self.addr.do_send(Evict);
        }
        first
    }

    fn admit(&self) -> Delivery {
        if self.is_evicted() {
            return Delivery::Dropped;
        }
        let queued = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        if queued <= self.limit {
            return Delivery::Queued;
        }
        self.queued.fetch_sub(1, Ordering::Relaxed);
        if self.evict() {
            Delivery::Evicted
        } else {
            Delivery::Dropped
        }
    }
}
