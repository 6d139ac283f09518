//! Every knob of the server, with defaults that need no external service.
//!
//! Tests shorten the timeouts and bounds here instead of waiting on real ones.

use std::path::PathBuf;
use std::time::Duration;

use crate::transcripts::StoreOptions;

/// Runtime limits and timeouts of one server instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// A connection that sends no frame for this long is closed (PROTOCOL 1.5).
    pub idle_timeout: Duration,
    /// Largest inbound WebSocket message, in bytes; larger ones close with 1009.
    pub max_frame_bytes: usize,
    /// Channels one connection may have joined at once.
    pub max_channels: usize,
    /// Frames queued to one connection but not yet written; past it the
    /// connection is closed as a slow consumer.
    pub outbound_limit: usize,
    /// Bytes of frames queued to one connection but not yet written; past it
    /// the connection is closed as a slow consumer too. A frame that finds
    /// the queue empty always passes, however large.
    pub outbound_bytes: usize,
    /// Open WebSocket connections; upgrades past it get HTTP 503.
    pub max_connections: usize,
    /// Sustained inbound frames per second one connection may send.
    pub max_frames_per_sec: u32,
    /// Frames one connection may send in a burst above that rate; past it
    /// the connection is closed with 1008 "policy violation".
    pub frame_burst: u32,
    /// How long shutdown waits for clients to receive their close frames.
    pub shutdown_grace: Duration,
    /// HTTP worker threads (each runs its connections' sessions); 0 means
    /// one per available core.
    pub workers: usize,
    /// Where the transcript database lives (`transcripts.sqlite3`, created
    /// with the directory if missing).
    pub data_dir: PathBuf,
    /// Record chats and messages (`--no-transcripts` turns it off, for
    /// benchmarks: then nothing is written and the API reads empty).
    pub transcripts: bool,
    /// Bounds and pacing of the transcript writer.
    pub transcript_store: StoreOptions,
    /// How long a sender is held (its connection not read) while the
    /// transcript writer has no room for its message; past it the message
    /// is refused with `transcript backlog`.
    pub transcript_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_timeout: Duration::from_secs(60),
            max_frame_bytes: 64 * 1024,
            max_channels: 100,
            outbound_limit: 8192,
            outbound_bytes: 4 * 1024 * 1024,
            max_connections: 50_000,
            max_frames_per_sec: 10_000,
            frame_burst: 10_000,
            shutdown_grace: Duration::from_secs(2),
            workers: 0,
            data_dir: PathBuf::from("./data"),
            transcripts: true,
            transcript_store: StoreOptions::default(),
            transcript_wait: Duration::from_secs(5),
        }
    }
}
