//! What the people who run the server can see inside it: the Prometheus
//! metrics behind `GET /metrics` (through `prometheus-client`).
//!
//! Owns the registry and one handle per metric. Label sets are resolved once,
//! here, so the relay hot path only touches an atomic counter and one
//! uncontended histogram lock. Gauges of shared state (users present, queue
//! length, active chats) are set by `ChatLifetime` inside the step that
//! changed them; connections and the transcript writer's lag are read when a
//! scrape comes in.
//!
//! Must never block a session or grow with the number of users: every label
//! value comes from a fixed list.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::channels::Refusal;
use crate::protocol::Framing;

/// One fixed label, such as `("framing", "v1")`.
type Label = [(&'static str, &'static str); 1];

/// Why a frame or a connection was turned away: the `reason` label of
/// `tutor_queue_frames_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not JSON, or not the connection's framing (close 1007).
    Malformed,
    /// A binary frame (close 1003).
    Binary,
    /// Over the frame size limit (close 1009).
    TooBig,
    /// A WebSocket protocol error: a fragmented or oversized control frame,
    /// an unmasked frame, an unknown opcode... (close 1002).
    Protocol,
    /// Over the inbound frame rate (close 1008).
    RateLimited,
    /// An upgrade past the connection limit (HTTP 503).
    ConnectionLimit,
    /// An upgrade past one client's connection limit (HTTP 429).
    ClientConnectionLimit,
    /// An upgrade with a `token` that is malformed, forged, expired or
    /// names bad claims (HTTP 401).
    BadToken,
    /// An upgrade without a token while tokens are required (HTTP 401).
    TokenRequired,
    /// A connection that stopped reading, closed when its outbound queue
    /// passed `outbound_limit` frames or `outbound_bytes` bytes (close 1008).
    SlowConsumer,
    /// An `error` reply, with the protocol's reason for it.
    Refused(Refusal),
}

impl Rejection {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Binary => "binary",
            Rejection::TooBig => "too_big",
            Rejection::Protocol => "protocol",
            Rejection::RateLimited => "rate_limited",
            Rejection::ConnectionLimit => "connection_limit",
            Rejection::ClientConnectionLimit => "client_connection_limit",
            Rejection::BadToken => "bad_token",
            Rejection::TokenRequired => "token_required",
            Rejection::SlowConsumer => "slow_consumer",
            Rejection::Refused(refusal) => match refusal {
                Refusal::UnmatchedTopic => "unmatched_topic",
                Refusal::Unauthorized => "unauthorized",
                Refusal::UnknownChat => "unknown_chat",
                Refusal::ChatFinished => "chat_finished",
                Refusal::InvalidPayload => "invalid_payload",
                Refusal::UnknownEvent => "unknown_event",
                Refusal::TooManyChannels => "too_many_channels",
                Refusal::TranscriptBacklog => "transcript_backlog",
                Refusal::InvalidId => "invalid_id",
                Refusal::InvalidRef => "invalid_ref",
                Refusal::TranscriptUnavailable => "transcript_unavailable",
                Refusal::RecipientAway => "recipient_away",
                Refusal::Unavailable => "unavailable",
                Refusal::QuestionTooLong => "question_too_long",
                Refusal::MessageTooLong => "message_too_long",
                Refusal::MessageMissing => "message_missing",
                Refusal::QueueClosed => "queue_closed",
                Refusal::TooFrequent => "too_frequent",
            },
        }
    }
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Rejection {
        Rejection::Refused(refusal)
    }
}

/// Every metric the server exports. Cheap to share: `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_v1: Gauge,
    connections_v2: Gauge,
    pub teachers_present: Gauge,
    pub students_present: Gauge,
    pub queue_length: Gauge,
    pub active_chats: Gauge,
    pub chats_completed: Counter,
    pub relayed_messages: Counter,
    pub held_messages: Counter,
    pub users_away: Gauge,
    pub users_back: Counter,
    rejected: Family<Label, Counter>,
    pub queue_wait: Histogram,
    pub relay_latency: Histogram,
    pub transcript_lag: Gauge,
    pub transcript_lag_age_ms: Gauge,
    transcript_failed_commits: Counter,
    pub transcript_failing: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tutor_queue");
        let connections = Family::<Label, Gauge>::default();
        registry.register(
            "connections",
            "Open WebSocket connections, by framing",
            connections.clone(),
        );
        let present = Family::<Label, Gauge>::default();
        registry.register(
            "users_present",
            "Users present, by role (students: those in the roster after student:ready)",
            present.clone(),
        );
        let queue_length = Gauge::default();
        registry.register(
            "queue_length",
            "Students waiting in the queue",
            queue_length.clone(),
        );
        let active_chats = Gauge::default();
        registry.register("active_chats", "Chats in progress", active_chats.clone());
        let chats_completed = Counter::default();
        registry.register(
            "chats_completed",
            "Chats that ended (terminated or student left)",
            chats_completed.clone(),
        );
        let relayed_messages = Counter::default();
        registry.register(
            "relayed_messages",
            "Chat messages relayed from one side to the other",
            relayed_messages.clone(),
        );
        let held_messages = Counter::default();
        registry.register(
            "held_messages",
            "Chat messages held for a side that was away, to deliver when it is back",
            held_messages.clone(),
        );
        let users_away = Gauge::default();
        registry.register(
            "users_away",
            "Token users whose connection dropped, keeping their place until their window ends",
            users_away.clone(),
        );
        let users_back = Counter::default();
        registry.register(
            "users_back",
            "Away users who came back within their window",
            users_back.clone(),
        );
        let rejected = Family::<Label, Counter>::default();
        registry.register(
            "frames_rejected",
            "Frames answered with an error or a close, and upgrades refused, by reason",
            rejected.clone(),
        );
        // 1 ms to ~4.7 h: a queue can be long.
        let queue_wait = Histogram::new(exponential_buckets(0.001, 4.0, 12));
        registry.register(
            "queue_wait_seconds",
            "Time from student:ready to being assigned a teacher",
            queue_wait.clone(),
        );
        // 10 us to ~2.6 s.
        let relay_latency = Histogram::new(exponential_buckets(0.000_01, 4.0, 10));
        registry.register(
            "relay_latency_seconds",
            "Time from reading a chat message to writing it to the other side's connection",
            relay_latency.clone(),
        );
        let transcript_lag = Gauge::default();
        registry.register(
            "transcript_writer_lag",
            "Transcript records queued but not yet committed",
            transcript_lag.clone(),
        );
        let transcript_lag_age_ms = Gauge::default();
        registry.register(
            "transcript_writer_lag_age_ms",
            "Age of the oldest transcript record not yet committed, in milliseconds",
            transcript_lag_age_ms.clone(),
        );
        let transcript_failed_commits = Counter::default();
        registry.register(
            "transcript_failed_commits",
            "Transcript commits that failed (disk full, I/O error); each is retried",
            transcript_failed_commits.clone(),
        );
        let transcript_failing = Gauge::default();
        registry.register(
            "transcript_store_failing",
            "1 while the transcript store cannot commit (chat messages are refused), else 0",
            transcript_failing.clone(),
        );
        Metrics {
            connections_v1: connections.get_or_create_owned(&[("framing", "v1")]),
            connections_v2: connections.get_or_create_owned(&[("framing", "v2")]),
            teachers_present: present.get_or_create_owned(&[("role", "teacher")]),
            students_present: present.get_or_create_owned(&[("role", "student")]),
            registry,
            queue_length,
            active_chats,
            chats_completed,
            relayed_messages,
            held_messages,
            users_away,
            users_back,
            rejected,
            queue_wait,
            relay_latency,
            transcript_lag,
            transcript_lag_age_ms,
            transcript_failed_commits,
            transcript_failing,
        }
    }

    /// Sets the failed-commit counter to the store's own count (which only
    /// grows), read at each scrape.
    pub fn set_transcript_failed_commits(&self, total: u64) {
        self.transcript_failed_commits
            .inner()
            .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
    }

    /// The gauge of open connections of one framing.
    pub fn connections(&self, framing: Framing) -> &Gauge {
        match framing {
            Framing::V1 => &self.connections_v1,
            Framing::V2 => &self.connections_v2,
        }
    }

    /// Counts one rejected frame or refused connection.
    pub fn rejected(&self, reason: Rejection) {
        self.rejected
            .get_or_create(&[("reason", reason.as_str())])
            .inc();
    }

    /// The live counts of the last `user:status` snapshot (the deployment's
    /// on Redis), as the gauges hold them: for `GET /api/stats`.
    pub fn live(&self) -> crate::stats::Live {
        let count = |gauge: &Gauge| usize::try_from(gauge.get()).unwrap_or(0);
        crate::stats::Live {
            waiting: count(&self.queue_length),
            chatting: count(&self.active_chats),
            teachers: count(&self.teachers_present),
        }
    }

    pub fn observe_queue_wait(&self, wait: Duration) {
        self.queue_wait.observe(wait.as_secs_f64());
    }

    pub fn observe_relay(&self, latency: Duration) {
        self.relay_latency.observe(latency.as_secs_f64());
    }

    /// The text exposition format of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric() {
        let metrics = Metrics::new();
        metrics.connections(Framing::V2).inc();
        metrics.relayed_messages.inc();
        metrics.rejected(Rejection::RateLimited);
        metrics.observe_relay(Duration::from_micros(50));
        let text = metrics.encode();
        for line in [
            r#"tutor_queue_connections{framing="v2"} 1"#,
            r#"tutor_queue_connections{framing="v1"} 0"#,
            "tutor_queue_relayed_messages_total 1",
            r#"tutor_queue_frames_rejected_total{reason="rate_limited"} 1"#,
            "tutor_queue_relay_latency_seconds_count 1",
            r#"tutor_queue_users_present{role="teacher"} 0"#,
            "tutor_queue_queue_length 0",
            "tutor_queue_active_chats 0",
            "tutor_queue_chats_completed_total 0",
            "tutor_queue_queue_wait_seconds_count 0",
            "tutor_queue_transcript_writer_lag 0",
            "tutor_queue_transcript_failed_commits_total 0",
            "tutor_queue_transcript_store_failing 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
