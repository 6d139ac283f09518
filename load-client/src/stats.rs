//! Measurements: the live counters every user task updates (atomics only, no lock on
//! the message path), the latency histograms each task keeps for itself and hands back
//! when it ends (merged once, at the end), and the final [`Report`] with its human
//! summary and its one-line JSON form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::checks::ViolationCounts;
use crate::watcher::{WaitingListReport, PUSHES_PER_S};

/// Things that went wrong that are not protocol violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP connect or WebSocket handshake failed (after retries).
    Connect,
    /// The server closed or dropped a connection the user still needed.
    Disconnected,
    /// A frame (or a payload) the codec could not accept.
    MalformedFrame,
    /// An `error` reply to something this client sent.
    ErrorReply,
    /// A well-formed frame this user had no reason to get (binary, unknown topic, …).
    UnexpectedFrame,
    /// A user task panicked (a bug in this client).
    TaskFailed,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Disconnected,
        ErrorKind::MalformedFrame,
        ErrorKind::ErrorReply,
        ErrorKind::UnexpectedFrame,
        ErrorKind::TaskFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::MalformedFrame => "malformed_frame",
            ErrorKind::ErrorReply => "error_reply",
            ErrorKind::UnexpectedFrame => "unexpected_frame",
            ErrorKind::TaskFailed => "task_failed",
        }
    }
}

/// Live counters shared by all tasks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Students that got `chat:terminated` (the 2015 client's `done()`).
    pub students_finished: AtomicU64,
    /// Students finished or given up (connection lost, refused).
    pub students_done: AtomicU64,
    /// Students not yet in the queue (no `student:ready` ACK yet) and not given up.
    pub students_pending: AtomicU64,
    /// Run time (µs) when the last student was done.
    pub last_student_done_us: AtomicU64,
    pub teachers_running: AtomicU64,
    pub chats_active: AtomicI64,
    pub chats_completed: AtomicU64,
    /// `claim:student` replies read (`ok`, with a chat or `{}`).
    pub claim_replies: AtomicU64,
    /// `claim:student` replies that carried a chat: a student assigned.
    pub claims: AtomicU64,
    /// Relayed chat messages read (`student:receive` + `teacher:receive`).
    pub relayed: AtomicU64,
    /// Violations counted so far by the collector (for the progress bar).
    pub violations_live: AtomicU64,
    /// Idle users whose presence join was accepted and whose socket is still open.
    pub held_open: AtomicI64,
    /// Connections dropped on purpose (`--drop-rate`).
    pub drops: AtomicU64,
    /// Users back after a drop (their presence rejoin accepted on a new connection).
    pub resumes: AtomicU64,
    /// Students that came back queued (still waiting, or assigned meanwhile).
    pub places_kept: AtomicU64,
    /// Chats rejoined after a drop (with `{"seq","held"}` checked).
    pub chats_resumed: AtomicU64,
    /// Held messages delivered after a chat rejoin.
    pub held_delivered: AtomicU64,
    /// Messages the server relayed to a connection as it dropped, taken as read from
    /// the rejoin's `seq`.
    pub recovered_in_transit: AtomicU64,
    /// Own messages sent again because the rejoin's `seq` showed they never arrived.
    pub resent: AtomicU64,
    /// `chat:away` and `chat:back` notices read.
    pub away_notices: AtomicU64,
    /// Chat joins sent again after an `unavailable` refusal.
    pub unavailable_retries: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
}

impl Counters {
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn errors(&self) -> u64 {
        self.errors.iter().map(|e| e.load(Relaxed)).sum()
    }

    pub fn errors_by_kind(&self) -> BTreeMap<&'static str, u64> {
        ErrorKind::ALL
            .iter()
            .map(|&k| (k.name(), self.errors[k as usize].load(Relaxed)))
            .collect()
    }
}

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

/// Everything a run measured. Serialized as the JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `run` or `hold`.
    pub mode: &'static str,
    /// The first endpoint.
    pub url: String,
    /// Every endpoint (`--url` given several times), in round-robin order.
    pub urls: Vec<String>,
    /// Users connected with tokens (`--token-secret`).
    pub tokens: bool,
    pub vsn: u8,
    pub students: u64,
    pub students_finished: u64,
    pub teachers: u64,
    /// Teachers that stopped by themselves (saw `students.total` reach 0).
    pub teachers_stopped: u64,
    pub messages: u32,
    pub chats_completed: u64,
    /// `claim:student` replies read (`ok`, with a chat or `{}`): the claims the
    /// server ran, each one step on the state (one script on Redis).
    pub claim_replies: u64,
    /// `claim:student` replies that carried a chat (a student assigned).
    pub claims: u64,
    pub relayed_messages: u64,
    /// Start of the run to the last student done (or to the end of the run).
    pub wall_s: f64,
    pub msgs_per_s: f64,
    /// `claims` over `wall_s`.
    pub claims_per_s: f64,
    /// `claim_replies` over `wall_s`.
    pub claim_replies_per_s: f64,
    pub rtt_samples: u64,
    pub rtt_p50_us: u64,
    pub rtt_p90_us: u64,
    pub rtt_p99_us: u64,
    pub rtt_p999_us: u64,
    pub rtt_max_us: u64,
    pub queue_wait_p50_ms: f64,
    pub queue_wait_p99_ms: f64,
    pub queue_wait_max_ms: f64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    pub violations: u64,
    pub violations_by_kind: BTreeMap<&'static str, u64>,
    pub timed_out: bool,
    pub interrupted: bool,
    /// `--hold` mode: users asked for, and open at the end.
    pub hold: u64,
    pub held_open: u64,
    /// `--reconnect` and `--drop-rate`, and what came of them.
    pub reconnect: bool,
    pub drop_rate: f64,
    /// Seed of the drop plan and pauses (`--seed` repeats a plan).
    pub seed: u64,
    /// Students not done when the run stopped, and where the first few stood.
    pub stuck_students: u64,
    pub stuck: Vec<String>,
    pub drops: u64,
    pub resumes: u64,
    pub places_kept: u64,
    pub chats_resumed: u64,
    pub held_delivered: u64,
    pub recovered_in_transit: u64,
    pub resent: u64,
    pub away_notices: u64,
    /// Chat joins sent again after an `error` `{"reason": "unavailable"}` (the
    /// server could not reach its shared state: nothing changed, try again).
    pub unavailable_retries: u64,
    /// `--waiting-watchers`: what the waiting-list watchers read (absent without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_list: Option<WaitingListReport>,
}

/// The latency part of a report.
pub struct Latencies {
    pub rtt_us: Histogram<u64>,
    pub queue_wait_us: Histogram<u64>,
}

impl Report {
    pub(crate) fn fill_latencies(&mut self, l: &Latencies) {
        let rtt = &l.rtt_us;
        self.rtt_samples = rtt.len();
        if !rtt.is_empty() {
            self.rtt_p50_us = rtt.value_at_quantile(0.50);
            self.rtt_p90_us = rtt.value_at_quantile(0.90);
            self.rtt_p99_us = rtt.value_at_quantile(0.99);
            self.rtt_p999_us = rtt.value_at_quantile(0.999);
            self.rtt_max_us = rtt.max();
        }
        let q = &l.queue_wait_us;
        let ms = |us: u64| us as f64 / 1000.0;
        if !q.is_empty() {
            self.queue_wait_p50_ms = ms(q.value_at_quantile(0.50));
            self.queue_wait_p99_ms = ms(q.value_at_quantile(0.99));
            self.queue_wait_max_ms = ms(q.max());
        }
    }

    pub(crate) fn fill_violations(&mut self, v: &ViolationCounts) {
        self.violations = v.total();
        self.violations_by_kind = v.iter().map(|(k, n)| (k.name(), n)).collect();
    }

    /// Exit status 0: every student finished before the timeout with no violation
    /// (`--hold`: every idle user was still open at the end; `--waiting-watchers`:
    /// and every watcher's join was accepted).
    pub fn success(&self) -> bool {
        if self.mode == "hold" {
            return self.held_open == self.hold && self.violations == 0;
        }
        self.students_finished == self.students
            && self.violations == 0
            && !self.timed_out
            && !self.interrupted
            && self.waiting_list.as_ref().is_none_or(|w| w.complete())
    }

    /// The JSON line (no trailing newline).
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A few human lines.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let verdict = if self.success() { "PASS" } else { "FAIL" };
        if self.mode == "hold" {
            let _ = writeln!(
                s,
                "{verdict}: held {}/{} idle users open for {:.1} s ({}, vsn {})",
                self.held_open, self.hold, self.wall_s, self.url, self.vsn
            );
        } else {
            let _ = writeln!(
                s,
                "{verdict}: {}/{} students finished, {} teachers ({} stopped by themselves), {} messages per chat ({}, vsn {})",
                self.students_finished,
                self.students,
                self.teachers,
                self.teachers_stopped,
                self.messages,
                self.url,
                self.vsn
            );
            let _ = writeln!(
                s,
                "  {} chats completed, {} relayed messages in {:.2} s = {:.0} msg/s",
                self.chats_completed, self.relayed_messages, self.wall_s, self.msgs_per_s
            );
            let _ = writeln!(
                s,
                "  claims: {} with a chat = {:.0}/s, {} replies in all = {:.0}/s",
                self.claims, self.claims_per_s, self.claim_replies, self.claim_replies_per_s
            );
            let _ = writeln!(
                s,
                "  round trip (teacher send -> student reply) us: p50 {} p90 {} p99 {} p99.9 {} max {} ({} samples)",
                self.rtt_p50_us,
                self.rtt_p90_us,
                self.rtt_p99_us,
                self.rtt_p999_us,
                self.rtt_max_us,
                self.rtt_samples
            );
            let _ = writeln!(
                s,
                "  queue wait (ready -> assigned) ms: p50 {} p99 {} max {}",
                self.queue_wait_p50_ms, self.queue_wait_p99_ms, self.queue_wait_max_ms
            );
        }
        if self.reconnect {
            let _ = writeln!(
                s,
                "  drops {} (rate {}), resumes {}, places kept {}, chats resumed {}, held messages delivered {}, recovered in transit {}, resent {}, away notices {}",
                self.drops,
                self.drop_rate,
                self.resumes,
                self.places_kept,
                self.chats_resumed,
                self.held_delivered,
                self.recovered_in_transit,
                self.resent,
                self.away_notices
            );
        }
        if self.unavailable_retries > 0 {
            let _ = writeln!(
                s,
                "  chat joins sent again after an `unavailable` refusal: {}",
                self.unavailable_retries
            );
        }
        if let Some(w) = &self.waiting_list {
            let _ = writeln!(
                s,
                "  waiting list: {}/{} watchers for {:.1} s, {} queue:waiting frames ({} bytes); per watcher {:.2}/s mean, {:.2}/s max (bound {PUSHES_PER_S}/s), {:.0} B/s mean, {:.0} B/s max; largest total {}; over the bound: {}; user:status meanwhile {:.1}/s per watcher",
                w.watching,
                w.watchers,
                w.watched_s,
                w.frames,
                w.bytes,
                w.frames_per_s_mean,
                w.frames_per_s_max,
                w.bytes_per_s_mean,
                w.bytes_per_s_max,
                w.max_total,
                w.over_bound,
                w.status_frames_per_s_mean
            );
        }
        if self.stuck_students > 0 {
            let _ = writeln!(s, "  {} students not done:", self.stuck_students);
            for line in &self.stuck {
                let _ = writeln!(s, "    {line}");
            }
        }
        let nonzero = |m: &BTreeMap<&str, u64>| {
            m.iter()
                .filter(|(_, &n)| n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "  errors {} [{}], violations {} [{}]{}{}",
            self.errors,
            nonzero(&self.errors_by_kind),
            self.violations,
            nonzero(&self.violations_by_kind),
            if self.timed_out { ", TIMED OUT" } else { "" },
            if self.interrupted {
                ", interrupted"
            } else {
                ""
            },
        );
        s
    }
}
