//! The handle through which every other part of the server reaches one
//! connection: its framing, and a bounded way to queue frames to it.
//!
//! The bound lives here, on the producer side, on purpose: an actix WebSocket
//! actor whose client stops reading is no longer polled (actix-web issue
//! 2441), so it cannot police its own queue. Every frame queued through
//! `deliver` counts against two bounds until the session has written it: a
//! number of frames (`outbound_limit`) and a number of bytes
//! (`outbound_bytes`, so a few large frames cannot pin hundreds of megabytes).
//! The first frame past either bound evicts the connection as a slow
//! consumer; the eviction is counted in the metrics here, when it happens,
//! since the stalled session may not run again for a long time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use bytestring::ByteString;

use super::session::{ChannelClosed, Deliver, Evict, Session};
use crate::channels::ChannelId;
use crate::metrics::{Metrics, Rejection};
use crate::protocol::Framing;
use crate::Config;

/// Identifies one connection for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

impl SessionId {
    pub fn next() -> SessionId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number, for naming the connection to another node.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The connection another node named (`raw`): it may no longer exist.
    pub fn from_raw(raw: u64) -> SessionId {
        SessionId(raw)
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

/// How much may be queued to one connection and not yet written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboundBound {
    /// Frames (`Config::outbound_limit`).
    pub frames: usize,
    /// Bytes of frame text (`Config::outbound_bytes`). A frame that finds
    /// nothing queued is always admitted, however large, so one frame
    /// bigger than the budget is not an eviction.
    pub bytes: usize,
}

impl OutboundBound {
    pub fn from_config(config: &Config) -> Self {
        OutboundBound {
            frames: config.outbound_limit,
            bytes: config.outbound_bytes,
        }
    }
}

/// Shared handle to one connection's session actor.
#[derive(Debug)]
pub struct SessionHandle {
    id: SessionId,
    framing: Framing,
    addr: Addr<Session>,
    bound: OutboundBound,
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    evicted: AtomicBool,
    metrics: Arc<Metrics>,
}

impl SessionHandle {
    pub fn new(
        id: SessionId,
        framing: Framing,
        addr: Addr<Session>,
        bound: OutboundBound,
        metrics: Arc<Metrics>,
    ) -> Self {
        SessionHandle {
            id,
            framing,
            addr,
            bound,
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            metrics,
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
        match self.admit(frame.len()) {
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
        match self.admit(frame.len()) {
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

    /// Called by the session once it has written (or dropped) a queued frame
    /// of `bytes` bytes: gives back its place under both bounds.
    pub(super) fn written(&self, bytes: usize) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Marks the connection evicted (idempotent); true for the first caller.
    pub fn evict(&self) -> bool {
        let first = !self.evicted.swap(true, Ordering::AcqRel);
        if first {
            self.metrics.rejected(Rejection::SlowConsumer);
            self.addr.do_send(Evict);
        }
        first
    }

    /// Takes a place for a frame of `bytes` bytes under both bounds, or
    /// evicts the connection if it has none left.
    fn admit(&self, bytes: usize) -> Delivery {
        if self.is_evicted() {
            return Delivery::Dropped;
        }
        let queued = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        let before = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if fits(self.bound, queued, before, bytes) {
            return Delivery::Queued;
        }
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        if self.evict() {
            Delivery::Evicted
        } else {
            Delivery::Dropped
        }
    }
}

/// Whether the `queued`-th frame, of `bytes` bytes, queued behind `before`
/// bytes, stays within `bound`.
fn fits(bound: OutboundBound, queued: usize, before: usize, bytes: usize) -> bool {
    queued <= bound.frames && (before == 0 || before.saturating_add(bytes) <= bound.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: OutboundBound = OutboundBound {
        frames: 4,
        bytes: 1000,
    };

    #[test]
    fn frames_count_against_the_frame_bound() {
        assert!(fits(BOUND, 4, 40, 10));
        assert!(!fits(BOUND, 5, 50, 10));
    }

    #[test]
    fn bytes_count_against_the_byte_bound() {
        assert!(fits(BOUND, 2, 600, 400));
        assert!(!fits(BOUND, 2, 600, 401));
    }

    #[test]
    fn one_frame_larger_than_the_budget_passes_an_empty_queue() {
        assert!(fits(BOUND, 1, 0, 5000));
        assert!(!fits(BOUND, 2, 1, 5000));
    }
}
