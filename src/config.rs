//! Every knob of the server, with defaults that need no external service.
//!
//! Tests shorten the timeouts and bounds here instead of waiting on real ones.

use std::path::PathBuf;
use std::time::Duration;

use crate::identity::{Identity, Role, TokenError, TokenKeys};
use crate::transcripts::StoreOptions;

/// Runtime limits and timeouts of one server instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// A connection that sends no frame for this long is closed (PROTOCOL 1.5).
    pub idle_timeout: Duration,
    /// How long data written to a connection may stay unacknowledged (or
    /// unsent behind a zero window) before the kernel drops the connection
    /// (`TCP_USER_TIMEOUT`): what frees a client that stopped reading for
    /// good, whose close frame cannot be written either.
    pub send_timeout: Duration,
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
    /// Open WebSocket connections; upgrades past it get HTTP 503. The binary
    /// lowers it to what the open-file limit allows (`descriptor_caps`).
    pub max_connections: usize,
    /// Connections of any kind (WebSocket or plain HTTP) one worker holds at
    /// once; past it that worker accepts no more and new connections wait in
    /// the listen backlog (actix's `HttpServer::max_connections`). Set from
    /// the open-file limit so the accept loop never meets `EMFILE`.
    pub accept_per_worker: usize,
    /// Open WebSocket connections without a token from one peer IP address
    /// (an IPv6 peer: its /64); upgrades past it get HTTP 429. 0 turns the
    /// cap off.
    pub max_connections_per_ip: usize,
    /// WebSocket connections one signed-in user (a token's role and `sub`)
    /// may have open at once, over all its tabs and devices; past it the
    /// upgrade gets HTTP 429. 0 turns the cap off.
    pub max_connections_per_user: usize,
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
    /// The secret `token`s of the WebSocket upgrade are verified with. None
    /// (the library's default): every upgrade that brings a token is refused
    /// with 401, as nothing can verify it. The binary always sets it, from
    /// `--token-secret` or `<data_dir>/token-secret`.
    pub tokens: Option<TokenKeys>,
    /// Refuse (401) every upgrade that brings no token.
    pub require_token: bool,
    /// The roles `POST /api/session` (guest sign-in) may hand out; empty
    /// turns guest sign-in off (403). Admin is never handed out, even if
    /// listed.
    pub guest_roles: Vec<Role>,
    /// How long a guest token is valid.
    pub guest_token_ttl: Duration,
    /// How long a token user whose connection went stays *away* (keeps its
    /// place in the queue and its chats) before it vanishes (PROTOCOL 6.3).
    /// Zero: it vanishes at once, as tokenless users do.
    pub reconnect_grace: Duration,
    /// Messages held for one away side of one chat; past it the sender gets
    /// `recipient away`.
    pub held_messages: usize,
    /// Payload bytes held for one away side of one chat (same consequence).
    pub held_bytes: usize,
    /// The Redis the tutoring state lives in, shared by every node of the
    /// deployment (`redis://host:port/db`). None: in this process only.
    pub redis_url: Option<String>,
    /// The deployment's name: its keys in Redis are `tq:{<name>}:*`, so one Redis
    /// can hold several deployments (and the tests one each).
    pub redis_deployment: String,
    /// How often the queue length is sampled for `GET /api/stats` (its
    /// `queue_length`; 360 samples are kept: 6 hours at the default minute).
    pub queue_sample_every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            max_frame_bytes: 64 * 1024,
            max_channels: 100,
            outbound_limit: 8192,
            outbound_bytes: 4 * 1024 * 1024,
            max_connections: 50_000,
            // actix's own default.
            accept_per_worker: 25_000,
            max_connections_per_ip: 0,
            max_connections_per_user: 16,
            max_frames_per_sec: 10_000,
            frame_burst: 10_000,
            shutdown_grace: Duration::from_secs(2),
            workers: 0,
            data_dir: PathBuf::from("./data"),
            transcripts: true,
            transcript_store: StoreOptions::default(),
            transcript_wait: Duration::from_secs(5),
            tokens: None,
            require_token: false,
            guest_roles: vec![Role::Student, Role::Teacher],
            guest_token_ttl: Duration::from_secs(12 * 3600),
            reconnect_grace: Duration::from_secs(60),
            held_messages: 100,
            held_bytes: 64 * 1024,
            redis_url: None,
            redis_deployment: "tutor-queue".to_owned(),
            queue_sample_every: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Who `token` says its holder is, checked with `tokens`; every token is
    /// refused when there are none. The one check behind the WebSocket
    /// upgrade and the HTTP API.
    pub fn verify_token(&self, token: &str) -> Result<Identity, TokenError> {
        self.tokens
            .as_ref()
            .ok_or(TokenError::NotAccepted)?
            .verify(token)
    }

    /// Worker threads the server runs: `workers`, or one per core at 0.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Lowers the connection caps to what `nofile` open files allow (see
    /// `descriptor_caps`) and returns them.
    pub fn fit_to_descriptors(&mut self, nofile: u64) -> DescriptorCaps {
        let caps = descriptor_caps(nofile, self.worker_threads(), self.max_connections);
        self.max_connections = caps.websockets;
        self.accept_per_worker = caps.accept_per_worker;
        caps
    }
}

/// Descriptors kept back from connections whatever the number of workers:
/// standard streams, the listener, the accept loop's poller, the main
/// system's, the transcript database (database, WAL and shared memory files
/// for the writer and for each API reader), log files.
pub const RESERVED_DESCRIPTORS: u64 = 64;
/// Descriptors kept back for each worker thread (its poller and waker).
pub const RESERVED_PER_WORKER: u64 = 4;
/// At most this many accepted connections are kept for plain HTTP (the API,
/// health checks, metrics, and the 503 answers themselves) when WebSockets
/// are at their cap.
const MAX_HTTP_ROOM: usize = 1024;

/// How many connections the open-file limit allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorCaps {
    /// Open files the process may have (the soft `RLIMIT_NOFILE`).
    pub nofile: u64,
    /// Descriptors kept back for everything that is not a connection.
    pub reserved: u64,
    /// Connections of any kind one worker accepts at once.
    pub accept_per_worker: usize,
    /// WebSocket connections at once: upgrades past it get 503.
    pub websockets: usize,
}

/// The caps for `nofile` open files, `workers` workers and `max_connections`
/// WebSockets wanted. Every descriptor that is not reserved may hold an
/// accepted connection, split evenly between the workers (actix's cap is per
/// worker); WebSockets get all of them but an eighth (at most 1,024), so that
/// when they are full there are still descriptors to accept an upgrade and
/// answer it 503, and to serve the API and `/healthz`.
pub fn descriptor_caps(nofile: u64, workers: usize, max_connections: usize) -> DescriptorCaps {
    let workers = workers.max(1);
    let workers_u64 = u64::try_from(workers).unwrap_or(u64::MAX);
    let reserved =
        RESERVED_DESCRIPTORS.saturating_add(RESERVED_PER_WORKER.saturating_mul(workers_u64));
    let usable = usize::try_from(nofile.saturating_sub(reserved)).unwrap_or(usize::MAX);
    // At least one per worker, or the server could accept nothing at all.
    let accept_per_worker = (usable / workers).max(1);
    let accepted = accept_per_worker.saturating_mul(workers);
    let http_room = (accepted / 8).clamp(1, MAX_HTTP_ROOM);
    DescriptorCaps {
        nofile,
        reserved,
        accept_per_worker,
        websockets: max_connections.min(accepted.saturating_sub(http_room)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_limit_caps_websockets_below_what_is_accepted() {
        let caps = descriptor_caps(256, 2, 50_000);
        assert_eq!(caps.reserved, 72);
        assert_eq!(caps.accept_per_worker, 92);
        // 184 accepted, 23 of them kept for plain HTTP.
        assert_eq!(caps.websockets, 161);
        assert!(caps.reserved + 2 * caps.accept_per_worker as u64 <= 256);
    }

    #[test]
    fn the_configured_cap_wins_when_descriptors_are_plenty() {
        let caps = descriptor_caps(1_048_576, 4, 50_000);
        assert_eq!(caps.websockets, 50_000);
        assert_eq!(caps.accept_per_worker, (1_048_576 - 64 - 16) / 4);
    }

    #[test]
    fn room_for_plain_http_is_an_eighth_at_most_1024() {
        let caps = descriptor_caps(20_000, 1, usize::MAX);
        let accepted = 20_000 - 68;
        assert_eq!(caps.accept_per_worker, accepted);
        assert_eq!(caps.websockets, accepted - 1024);
        let caps = descriptor_caps(1_100, 1, usize::MAX);
        assert_eq!(caps.websockets, 1_032 - 129);
    }

    #[test]
    fn workers_split_the_accepted_connections() {
        let caps = descriptor_caps(1_024, 8, 50_000);
        assert_eq!(caps.reserved, 96);
        assert_eq!(caps.accept_per_worker, 116);
        assert!(caps.reserved + 8 * caps.accept_per_worker as u64 <= 1_024);
    }

    #[test]
    fn too_few_descriptors_still_accept_one_per_worker_and_refuse_upgrades() {
        let caps = descriptor_caps(50, 2, 50_000);
        assert_eq!(caps.accept_per_worker, 1);
        assert_eq!(caps.websockets, 1);
        let caps = descriptor_caps(0, 0, 50_000);
        assert_eq!(caps.accept_per_worker, 1);
        assert_eq!(caps.websockets, 0);
    }
}
