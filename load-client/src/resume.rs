//! `--reconnect` and `--drop-rate`: which users drop their connection and when, and
//! what a side of a chat must do when it rejoins `chats:<cid>` after a drop
//! (PROTOCOL 6.3), judged from the join reply `{"seq": S, "held": H}` against what
//! this side saw before the drop.
//!
//! The 2015 chat is a lock step: the teacher sends message k, the student answers
//! it, the teacher sends k + 1 on reading the answer. So after the teacher's k-th
//! message the chat has relayed `2k - 1` messages, after the answer `2k`, and at
//! most one message is ever in flight. A side that comes back knows what it read and
//! sent; `S` tells it what the server relayed (and recorded) meanwhile, `H` how many
//! of those were held for it. Exactly one of these holds for a correct server:
//!
//! * its own last message never reached the server (lost with the connection):
//!   send it again ([`ChatResume::Resend`]);
//! * nothing is missing: wait, `H` held messages (0 or 1) follow the reply
//!   ([`ChatResume::Wait`]);
//! * the other side's next message was relayed to the dropped connection (the
//!   server wrote it before it saw the drop, so it was not held): take it as read and
//!   go on ([`ChatResume::RecoverLost`]);
//! * anything else contradicts the lock step: messages lost or invented by the
//!   server ([`ChatResume::Mismatch`], a `message_lost` violation).
//!
//! Which users drop, and after which frame, is drawn once per run ([`DropPlan`]).
//! What both sides do alike around a drop lives here too: dropping or losing the
//! connection ([`drop_now`], [`lost`]), the grace window ([`judged`]), chat join
//! params ([`chat_params`]) and what a side tracks per chat ([`ChatAway`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::checks::Violation;
use crate::codec::{parse, ChatStanding};
use crate::conn::Conn;
use crate::stats::ErrorKind;
use crate::Shared;

/// What a side does after its chat rejoin reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatResume {
    /// Nothing to repair; `held` held messages follow the reply.
    Wait { held: u32 },
    /// Send this side's last message again.
    Resend,
    /// The other side's next message went to the dropped connection: take it as read.
    RecoverLost,
    /// `S`/`H` contradict what this side saw.
    Mismatch,
}

/// The student side, having read (and answered) `received` of `messages` teacher
/// messages.
pub fn student_resume(received: u32, messages: u32, seq: u64, held: u64) -> ChatResume {
    let r = u64::from(received);
    match (seq, held) {
        (s, 0) if r >= 1 && s == 2 * r - 1 => ChatResume::Resend,
        (s, 0) if s == 2 * r => ChatResume::Wait { held: 0 },
        (s, 0) if s == 2 * r + 1 && received < messages => ChatResume::RecoverLost,
        (s, 1) if s == 2 * r + 1 && received < messages => ChatResume::Wait { held: 1 },
        _ => ChatResume::Mismatch,
    }
}

/// The teacher side, having sent `sent` messages and still `awaiting` the answer to
/// the last one or not (then it has sent, or is about to send, `chat:terminate`).
pub fn teacher_resume(sent: u32, awaiting: bool, seq: u64, held: u64) -> ChatResume {
    let t = u64::from(sent);
    if sent == 0 || !awaiting {
        return if seq == 2 * t && held == 0 {
            ChatResume::Wait { held: 0 }
        } else {
            ChatResume::Mismatch
        };
    }
    match (seq, held) {
        (s, 0) if s == 2 * t - 2 => ChatResume::Resend,
        (s, 0) if s == 2 * t - 1 => ChatResume::Wait { held: 0 },
        (s, 1) if s == 2 * t => ChatResume::Wait { held: 1 },
        (s, 0) if s == 2 * t => ChatResume::RecoverLost,
        _ => ChatResume::Mismatch,
    }
}

/// The drop plan says: drop the connection now (abruptly, no close frame).
pub(crate) fn drop_now(shared: &Shared, conn: Conn) {
    shared.counters.drops.fetch_add(1, Relaxed);
    conn.drop_abruptly();
}

/// The connection was lost (an error); whether to come back (`--reconnect`).
pub(crate) fn lost(shared: &Shared, conn: Conn) -> bool {
    shared.error(ErrorKind::Disconnected);
    drop(conn);
    shared.config.reconnect
}

/// Whether a side that last dropped at `dropped_at` is judged on its resume: only
/// within the server's grace window.
pub(crate) fn judged(shared: &Shared, dropped_at: Option<Instant>) -> bool {
    dropped_at.is_some_and(|at| at.elapsed() <= shared.config.reconnect_grace)
}

/// Join params of a chat topic for user `id` of `role` (`"student"`, `"teacher"`),
/// with away notices under `--reconnect`.
pub(crate) fn chat_params(shared: &Shared, id: u64, role: &str) -> serde_json::Value {
    if shared.config.reconnect {
        json!({"userId": id, "role": role, "awayNotices": true})
    } else {
        json!({"userId": id, "role": role})
    }
}

/// What a side of a chat tracks about absences, its own and the other side's.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ChatAway {
    /// Held messages still to come right after a (re)join reply.
    pub held_expected: u32,
    /// The other side is away (`chat:away` read, no `chat:back` since).
    pub peer_away: bool,
    /// Joins and rejoins of this chat refused `unavailable` so far (its node
    /// died and the chat is not homed again yet).
    pub retries: u32,
}

/// How often, and how long apart, a chat join or rejoin refused `unavailable` is
/// tried again: a node that died is declared dead within seconds, and the
/// chat then gets a new home (about 10 s in all).
pub(crate) const REJOIN_RETRIES: u32 = 40;
pub(crate) const REJOIN_PAUSE: Duration = Duration::from_millis(250);

/// A chat join or rejoin refused with `unavailable` (its node died and the chat
/// has no new one yet, or Redis did not answer): joins `topic` again after a
/// pause, up to [`REJOIN_RETRIES`] times, counted in `unavailable_retries`;
/// answers the new join's ref, or None when it is not worth trying. The pause
/// holds the user's task: its other chats wait too.
pub(crate) async fn rejoin_unavailable(
    shared: &Shared,
    conn: &mut Conn,
    reply: &crate::codec::Reply<'_>,
    away: &mut ChatAway,
    topic: &str,
    params: &serde_json::Value,
) -> Result<Option<u64>, tokio_tungstenite::tungstenite::Error> {
    if !reply.is_unavailable() || away.retries >= REJOIN_RETRIES {
        return Ok(None);
    }
    away.retries += 1;
    shared.counters.unavailable_retries.fetch_add(1, Relaxed);
    tokio::time::sleep(REJOIN_PAUSE).await;
    conn.join(topic, params).await.map(Some)
}

impl ChatAway {
    /// This side's connection dropped: what it expected on it is void.
    pub fn forget(&mut self) {
        *self = ChatAway::default();
    }

    /// The reply to a first join under `--reconnect`: every message relayed to this
    /// side so far was held for it (it had no channel on the chat).
    pub fn first_join(&mut self, shared: &Shared, response: &serde_json::value::RawValue) {
        match parse::<ChatStanding>(response) {
            Ok(s) if s.seq == s.held => {
                self.held_expected = u32::try_from(s.held).unwrap_or(u32::MAX);
            }
            Ok(_) => shared.violation(Violation::MessageLost),
            Err(_) => shared.error(ErrorKind::MalformedFrame),
        }
    }

    /// A chat frame `event` read, where `relayed` is this side's relayed-message
    /// event: held messages must follow the rejoin reply at once (6.3).
    pub fn read(&mut self, shared: &Shared, event: &str, relayed: &str) {
        if self.held_expected > 0 && event != relayed {
            self.held_expected = 0;
            shared.violation(Violation::MessageLost);
        }
    }

    /// A relayed message read (counted), perhaps one of those held.
    pub fn relayed(&mut self, shared: &Shared) {
        shared.counters.relayed.fetch_add(1, Relaxed);
        if self.held_expected > 0 {
            self.held_expected -= 1;
            shared.counters.held_delivered.fetch_add(1, Relaxed);
        }
    }

    /// `chat:away` or `chat:back` read.
    pub fn notice(&mut self, shared: &Shared, event: &str) {
        shared.counters.away_notices.fetch_add(1, Relaxed);
        self.peer_away = event == "chat:away";
    }
}

/// Shortest and longest pause between a drop and the reconnection: well inside the
/// server's grace window (60 s by default).
pub const PAUSE_MIN: Duration = Duration::from_millis(100);
pub const PAUSE_MAX: Duration = Duration::from_millis(2000);

/// A random pause in `PAUSE_MIN..=PAUSE_MAX`.
pub fn pause(rng: &mut fastrand::Rng) -> Duration {
    let min = PAUSE_MIN.as_millis() as u64;
    let max = PAUSE_MAX.as_millis() as u64;
    Duration::from_millis(rng.u64(min..=max))
}

/// Who drops, and after how many frames read. A student drops after the k-th frame
/// its script reads: half of them right after the `student:ready` reply (k = 2:
/// while it waits, where a student of a busy queue spends most of its time), the
/// others at a k uniform over the `6 + messages` frames of a student's life up to its
/// last answer (presence join reply, ready reply, `new:chat`, chat join reply,
/// `student:joined` reply, `chat:ready`, one frame per message), so drops also land
/// as its chat starts and between any two messages. A teacher counts
/// only the frames of its chats (about `messages + 6` per chat) and drops after a
/// uniform k over its share of the run's chats; a teacher that serves fewer chats
/// than its share may not drop.
#[derive(Debug, Default, Clone)]
pub struct DropPlan {
    /// Student id → drop after this many frames read.
    pub students: HashMap<u64, u32>,
    /// Teacher id → drop after this many frames of its chats read.
    pub teachers: HashMap<u64, u32>,
}

/// A student's second frame is its `student:ready` reply: it is waiting then.
const WHILE_WAITING: u32 = 2;

impl DropPlan {
    /// Exactly `round(rate * n)` users of each role drop, chosen at random.
    pub fn draw(
        rng: &mut fastrand::Rng,
        rate: f64,
        students: &[u64],
        teachers: &[u64],
        messages: u32,
    ) -> DropPlan {
        let pick = |rng: &mut fastrand::Rng, ids: &[u64]| -> Vec<u64> {
            let n = ((rate * ids.len() as f64).round() as usize).min(ids.len());
            let mut ids = ids.to_vec();
            rng.shuffle(&mut ids);
            ids.truncate(n);
            ids
        };
        let student_frames = 6 + messages;
        let share = (students.len() as u64).div_ceil(teachers.len().max(1) as u64);
        let teacher_frames =
            u32::try_from(((messages as u64 + 6) * share).max(1)).unwrap_or(u32::MAX);
        DropPlan {
            students: pick(rng, students)
                .into_iter()
                .map(|id| {
                    let k = if rng.bool() {
                        WHILE_WAITING
                    } else {
                        rng.u32(1..=student_frames)
                    };
                    (id, k)
                })
                .collect(),
            teachers: pick(rng, teachers)
                .into_iter()
                .map(|id| (id, rng.u32(1..=teacher_frames)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChatResume::*;

    #[test]
    fn student_resumes() {
        // Before any message: nothing, or message 1 held, or message 1 lost in transit.
        assert_eq!(student_resume(0, 5, 0, 0), Wait { held: 0 });
        assert_eq!(student_resume(0, 5, 1, 1), Wait { held: 1 });
        assert_eq!(student_resume(0, 5, 1, 0), RecoverLost);
        // Read 3 and answered: the answer was lost, arrived, or message 4 came too.
        assert_eq!(student_resume(3, 5, 5, 0), Resend);
        assert_eq!(student_resume(3, 5, 6, 0), Wait { held: 0 });
        assert_eq!(student_resume(3, 5, 7, 1), Wait { held: 1 });
        assert_eq!(student_resume(3, 5, 7, 0), RecoverLost);
        // The last answer: nothing can follow it.
        assert_eq!(student_resume(5, 5, 10, 0), Wait { held: 0 });
        assert_eq!(student_resume(5, 5, 11, 0), Mismatch);
        // The server forgot messages, invented some, or held the wrong number.
        assert_eq!(student_resume(3, 5, 4, 0), Mismatch);
        assert_eq!(student_resume(3, 5, 0, 0), Mismatch);
        assert_eq!(student_resume(3, 5, 8, 0), Mismatch);
        assert_eq!(student_resume(3, 5, 6, 1), Mismatch);
        assert_eq!(student_resume(3, 5, 7, 2), Mismatch);
    }

    #[test]
    fn teacher_resumes() {
        assert_eq!(teacher_resume(0, false, 0, 0), Wait { held: 0 });
        assert_eq!(teacher_resume(0, false, 1, 0), Mismatch);
        // Sent 3, waiting for its answer.
        assert_eq!(teacher_resume(3, true, 4, 0), Resend);
        assert_eq!(teacher_resume(3, true, 5, 0), Wait { held: 0 });
        assert_eq!(teacher_resume(3, true, 6, 1), Wait { held: 1 });
        assert_eq!(teacher_resume(3, true, 6, 0), RecoverLost);
        assert_eq!(teacher_resume(3, true, 3, 0), Mismatch);
        assert_eq!(teacher_resume(3, true, 7, 0), Mismatch);
        assert_eq!(teacher_resume(3, true, 5, 1), Mismatch);
        // All answers read (terminate sent).
        assert_eq!(teacher_resume(5, false, 10, 0), Wait { held: 0 });
        assert_eq!(teacher_resume(5, false, 9, 0), Mismatch);
    }

    #[test]
    fn the_plan_drops_the_asked_fraction_within_each_life() {
        let mut rng = fastrand::Rng::with_seed(7);
        let students: Vec<u64> = (1..=30).collect();
        let teachers: Vec<u64> = (1..=3).collect();
        let plan = DropPlan::draw(&mut rng, 0.3, &students, &teachers, 5);
        assert_eq!(plan.students.len(), 9);
        assert_eq!(plan.teachers.len(), 1);
        assert!(plan.students.values().all(|&k| (1..=11).contains(&k)));
        let waiting = plan.students.values().filter(|&&k| k == 2).count();
        assert!(waiting > 0 && waiting < 9, "{plan:?}");
        assert!(plan.teachers.values().all(|&k| (1..=110).contains(&k)));
        let none = DropPlan::draw(&mut rng, 0.0, &students, &teachers, 5);
        assert!(none.students.is_empty() && none.teachers.is_empty());
        for _ in 0..100 {
            let p = pause(&mut rng);
            assert!(p >= PAUSE_MIN && p <= PAUSE_MAX);
        }
    }
}
