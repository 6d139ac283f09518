//! The office-hours rules (opt-in extensions of issue 14): what a student
//! says it needs help with, the waiting list teachers prepare from, the
//! estimated wait, and whether the queue is open.
//!
//! * A **ticket** is what a waiting student brings: its name (signed-in users),
//!   its question, and when it got in line. It lives with the student's entry
//!   while it waits or chats, and goes with it.
//! * The **question** is trimmed and at most [`QUESTION_LIMIT`] characters.
//! * The **waiting list** is the head of the queue (at most
//!   [`WAITING_LIST_LIMIT`]), in FIFO order, with tickets: for preparing, not
//!   for picking (the claim stays FIFO).
//! * The **estimated wait** comes from the recent service rate: the claims of
//!   the last [`RATE_WINDOW_MS`], once there are [`RATE_MIN_CLAIMS`].
//! * The **queue state**: open, or closed (students already waiting stay), with
//!   an optional message from staff.
//!
//! No clocks here: times are unix milliseconds handed in by the caller.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest question or staff message, in characters, after trimming.
pub const QUESTION_LIMIT: usize = 500;
/// How many students the waiting list shows.
pub const WAITING_LIST_LIMIT: usize = 50;
/// The window the service rate is measured over.
pub const RATE_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Claims in the window before an estimate is given.
pub const RATE_MIN_CLAIMS: usize = 3;
/// The shortest span a rate is measured over: three claims within a second
/// do not mean a teacher serves a student per 300 ms.
const RATE_MIN_SPAN_MS: u64 = 60 * 1000;

/// What a waiting student brings with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The name of a signed-in student (None for tokenless students).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// When it got in line (unix ms).
    pub since: u64,
}

/// Why a text field (a question, a staff message) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextRefusal {
    TooLong,
    NotText,
}

/// Reads an optional text field of a payload: absent, null or blank → None;
/// a string → trimmed, at most [`QUESTION_LIMIT`] characters; anything else
/// is refused.
pub fn optional_text(payload: &Value, field: &str) -> Result<Option<String>, TextRefusal> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.chars().count() > QUESTION_LIMIT {
                Err(TextRefusal::TooLong)
            } else if text.is_empty() {
                Ok(None)
            } else {
                Ok(Some(text.to_owned()))
            }
        }
        Some(_) => Err(TextRefusal::NotText),
    }
}

/// One line of the waiting list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The student's id as it sent it (JSON).
    pub id: Value,
    pub ticket: Option<Ticket>,
    /// Its place, from 1.
    pub position: usize,
    /// Its connection is gone, its place kept (PROTOCOL 6.3).
    pub away: bool,
}

/// The waiting list a teacher sees: the head of the queue and how many wait.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitingList {
    pub students: Vec<Waiting>,
    pub total: usize,
}

impl WaitingList {
    /// The `queue:waiting` payload.
    pub fn to_json(&self) -> String {
        let students: Vec<Value> = self
            .students
            .iter()
            .map(|w| {
                let ticket = w.ticket.clone().unwrap_or_default();
                let mut line = serde_json::json!({
                    "id": w.id,
                    "name": ticket.name,
                    "question": ticket.question,
                    "since": ticket.since,
                    "position": w.position,
                });
                if w.away {
                    line["away"] = Value::Bool(true);
                }
                line
            })
            .collect();
        serde_json::json!({"students": students, "total": self.total}).to_string()
    }
}

/// Recent claims, for the estimated wait.
#[derive(Debug, Default)]
pub struct ServiceRate {
    /// Claim times (unix ms), oldest first, within the window.
    claims: VecDeque<u64>,
}

impl ServiceRate {
    pub fn new() -> Self {
        Self::default()
    }

    /// A claim at `now`.
    pub fn claimed(&mut self, now: u64) {
        self.claims.push_back(now);
        self.forget_before(now);
    }

    fn forget_before(&mut self, now: u64) {
        let start = now.saturating_sub(RATE_WINDOW_MS);
        while self.claims.front().is_some_and(|&at| at < start) {
            self.claims.pop_front();
        }
    }

    /// The estimated wait, in seconds, of the student at `position` (from 1):
    /// None until the window holds enough claims.
    pub fn eta_s(&mut self, position: usize, now: u64) -> Option<u64> {
        self.forget_before(now);
        eta_s(
            self.claims.len(),
            self.claims.front().copied(),
            position,
            now,
        )
    }

    /// How many claims the window holds at `now`, and the oldest of them.
    pub fn window(&mut self, now: u64) -> (usize, Option<u64>) {
        self.forget_before(now);
        (self.claims.len(), self.claims.front().copied())
    }
}

/// The estimate from `count` claims in the window, the oldest at `oldest`:
/// the student at `position` is served after `position` more claims, at the
/// rate of the window (claims per span since the oldest, at least a minute).
pub fn eta_s(count: usize, oldest: Option<u64>, position: usize, now: u64) -> Option<u64> {
    let oldest = oldest?;
    if count < RATE_MIN_CLAIMS || position == 0 {
        return None;
    }
    let span_ms = now.saturating_sub(oldest).max(RATE_MIN_SPAN_MS) as f64;
    let per_ms = count as f64 / span_ms;
    Some((position as f64 / per_ms / 1000.0).round() as u64)
}

/// How many announcements and queue changes one teacher may make within
/// [`STAFF_WINDOW_MS`]: each reaches everyone waiting, so a teacher's client
/// gone wild must not flood them.
pub const STAFF_BURST: usize = 5;
pub const STAFF_WINDOW_MS: u64 = 10_000;

/// The recent announcements and queue changes of each teacher.
#[derive(Debug, Default)]
pub struct StaffBroadcasts {
    recent: std::collections::HashMap<String, VecDeque<u64>>,
}

impl StaffBroadcasts {
    /// Whether `teacher` may broadcast at `now` (unix ms); if so, counted.
    pub fn allow(&mut self, teacher: &str, now: u64) -> bool {
        let start = now.saturating_sub(STAFF_WINDOW_MS);
        self.recent.retain(|_, times| {
            while times.front().is_some_and(|&at| at <= start) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = self.recent.entry(teacher.to_owned()).or_default();
        if times.len() >= STAFF_BURST {
            return false;
        }
        times.push_back(now);
        true
    }
}

/// Whether students may get in line, and what staff said about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    pub open: bool,
    pub message: Option<String>,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            open: true,
            message: None,
        }
    }
}

impl QueueState {
    /// The `queue:state` payload (and the reply to `queue:open` / `queue:close`).
    pub fn to_json(&self) -> String {
        serde_json::json!({"open": self.open, "message": self.message}).to_string()
    }

    /// The `error` reply to a `student:ready` while closed.
    pub fn closed_reply(&self) -> String {
        serde_json::json!({"reason": "queue closed", "message": self.message}).to_string()
    }
}

/// A staff announcement to everyone waiting and every teacher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub message: String,
    /// The teacher's name (signed in) or id.
    pub from: String,
    /// unix ms
    pub at: u64,
}

impl Announcement {
    /// The `queue:announcement` payload.
    pub fn to_json(&self) -> String {
        serde_json::json!({"message": self.message, "from": self.from, "at": self.at}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_question_is_trimmed_bounded_and_optional() {
        let q = |v: Value| optional_text(&json!({ "question": v }), "question");
        assert_eq!(q(json!("  fractions?  ")), Ok(Some("fractions?".into())));
        assert_eq!(q(json!("   ")), Ok(None));
        assert_eq!(q(Value::Null), Ok(None));
        assert_eq!(optional_text(&json!({}), "question"), Ok(None));
        assert_eq!(q(json!("é".repeat(500))), Ok(Some("é".repeat(500))));
        assert_eq!(q(json!("é".repeat(501))), Err(TextRefusal::TooLong));
        assert_eq!(
            q(json!(format!("  {}  ", "x".repeat(500)))),
            Ok(Some("x".repeat(500)))
        );
        assert_eq!(q(json!(5)), Err(TextRefusal::NotText));
        assert_eq!(q(json!({"a": 1})), Err(TextRefusal::NotText));
    }

    #[test]
    fn no_estimate_before_three_claims() {
        let mut rate = ServiceRate::new();
        assert_eq!(rate.eta_s(1, 1_000_000), None);
        rate.claimed(1_000_000);
        rate.claimed(1_010_000);
        assert_eq!(rate.eta_s(1, 1_020_000), None);
        rate.claimed(1_020_000);
        assert!(rate.eta_s(1, 1_020_000).is_some());
    }

    #[test]
    fn the_estimate_follows_the_rate_and_the_position() {
        // Six claims over three minutes: two a minute.
        let mut rate = ServiceRate::new();
        let start = 10_000_000;
        for i in 0..6 {
            rate.claimed(start + i * 36_000);
        }
        let now = start + 180_000;
        assert_eq!(rate.eta_s(1, now), Some(30));
        assert_eq!(rate.eta_s(4, now), Some(120));
        assert_eq!(rate.eta_s(0, now), None);
    }

    #[test]
    fn a_burst_of_claims_counts_as_at_least_a_minute() {
        let mut rate = ServiceRate::new();
        for at in [5_000, 5_001, 5_002] {
            rate.claimed(at);
        }
        // 3 a minute, not 3 per 2 ms.
        assert_eq!(rate.eta_s(3, 5_002), Some(60));
    }

    #[test]
    fn claims_older_than_the_window_are_forgotten() {
        let mut rate = ServiceRate::new();
        for at in [0, 1_000, 2_000] {
            rate.claimed(at);
        }
        assert!(rate.eta_s(1, 3_000).is_some());
        assert_eq!(rate.eta_s(1, RATE_WINDOW_MS + 1_500), None, "two left");
    }

    #[test]
    fn the_waiting_list_payload() {
        let list = WaitingList {
            students: vec![
                Waiting {
                    id: json!(7),
                    ticket: Some(Ticket {
                        name: Some("Ana".into()),
                        question: Some("limits".into()),
                        since: 42,
                    }),
                    position: 1,
                    away: false,
                },
                Waiting {
                    id: json!("8"),
                    ticket: None,
                    position: 2,
                    away: true,
                },
            ],
            total: 9,
        };
        let payload: Value = serde_json::from_str(&list.to_json()).expect("JSON");
        assert_eq!(
            payload,
            json!({"students": [
                {"id": 7, "name": "Ana", "question": "limits", "since": 42, "position": 1},
                {"id": "8", "name": null, "question": null, "since": 0, "position": 2, "away": true},
            ], "total": 9})
        );
    }

    #[test]
    fn a_teacher_may_broadcast_five_times_in_ten_seconds() {
        let mut staff = StaffBroadcasts::default();
        for i in 0..5 {
            assert!(staff.allow("lee", 1_000 + i), "{i}");
        }
        assert!(!staff.allow("lee", 1_005));
        assert!(staff.allow("kim", 1_005), "each teacher has its own");
        assert!(!staff.allow("lee", 10_999));
        assert!(staff.allow("lee", 11_001), "the first one left the window");
    }

    #[test]
    fn queue_state_payloads() {
        let closed = QueueState {
            open: false,
            message: Some("back at 3".into()),
        };
        assert_eq!(closed.to_json(), r#"{"message":"back at 3","open":false}"#);
        assert_eq!(
            closed.closed_reply(),
            r#"{"message":"back at 3","reason":"queue closed"}"#
        );
        assert_eq!(
            QueueState::default().to_json(),
            r#"{"message":null,"open":true}"#
        );
    }
}
