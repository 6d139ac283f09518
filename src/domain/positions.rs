//! Queue-position notices: which watching students are told their place in the queue,
//! and when (the opt-in `queue:position` push of the web pages).
//!
//! Owns, for each student that asked for notices, the last notice it was sent, and the
//! rule that decides whether a new one is worth sending. The rule keeps the work per
//! queue change bounded when 10,000 students wait: a claim moves *every* student one
//! place forward, and telling all of them each time would be O(waiting) frames per claim.
//! So notices are computed in coalesced rounds (the caller runs at most one round per
//! short interval, never one per claim), and within a round:
//!
//! * the first [`EXACT_PLACES`] places get every change of their position or of the
//!   waiting count: they are the ones about to be served, and they watch closely;
//! * a student further back is told only when its position moved by at least a tenth
//!   since the last notice it got (so over a whole wait it gets O(log n) notices, not n);
//! * everyone is told when the number of teachers online changes, and when it enters or
//!   leaves the queue (position becomes a number or `null`).
//!
//! Must never send anything itself, never read a clock, and never keep a student that no
//! longer watches.

use std::collections::HashMap;

use super::ids::StudentKey;
use super::queue::WaitingQueue;

/// Places at the head of the queue whose every change is reported.
pub const EXACT_PLACES: usize = 50;

/// One `queue:position` payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionNotice {
    /// 1-based place in the queue; None when the student is not waiting.
    pub position: Option<usize>,
    pub waiting: usize,
    pub teachers: usize,
}

impl PositionNotice {
    /// `{"position":3,"waiting":10,"teachers":2}`, or `"position":null` when not waiting.
    pub fn to_json(&self) -> String {
        match self.position {
            Some(position) => format!(
                r#"{{"position":{position},"waiting":{},"teachers":{}}}"#,
                self.waiting, self.teachers
            ),
            None => format!(
                r#"{{"position":null,"waiting":{},"teachers":{}}}"#,
                self.waiting, self.teachers
            ),
        }
    }

    /// The payload with the estimated wait (office hours): `"eta_s"`, seconds
    /// or null.
    pub fn to_json_with_eta(&self, eta_s: Option<u64>) -> String {
        let mut json = self.to_json();
        json.pop();
        match eta_s {
            Some(eta) => json.push_str(&format!(r#","eta_s":{eta}}}"#)),
            None => json.push_str(r#","eta_s":null}"#),
        }
        json
    }

    /// Whether `self` is worth sending to a student whose last notice was `last`.
    fn worth_sending_after(&self, last: &PositionNotice) -> bool {
        if self.teachers != last.teachers {
            return true;
        }
        match (self.position, last.position) {
            (None, None) => false,
            (Some(_), None) | (None, Some(_)) => true,
            (Some(now), Some(before)) => {
                if now <= EXACT_PLACES || before <= EXACT_PLACES {
                    now != before || self.waiting != last.waiting
                } else {
                    now.abs_diff(before) * 10 >= before
                }
            }
        }
    }
}

#[derive(Debug)]
struct Watcher {
    /// Channels asking for notices (a student may have several tabs open).
    channels: usize,
    last: Option<PositionNotice>,
}

/// The students watching their place, with the last notice each was sent.
#[derive(Debug, Default)]
pub struct PositionWatch {
    watchers: HashMap<StudentKey, Watcher>,
}

impl PositionWatch {
    pub fn new() -> Self {
        PositionWatch::default()
    }

    /// One more channel of `student` wants notices. Answers the notice to send that
    /// channel at once (the student's place now), recorded as sent.
    pub fn watch(
        &mut self,
        student: StudentKey,
        queue: &WaitingQueue,
        teachers: usize,
    ) -> PositionNotice {
        let notice = PositionNotice {
            position: position_of(queue, &student),
            waiting: queue.len(),
            teachers,
        };
        let watcher = self.watchers.entry(student).or_insert(Watcher {
            channels: 0,
            last: None,
        });
        watcher.channels += 1;
        watcher.last = Some(notice);
        notice
    }

    /// One channel of `student` stopped wanting notices (left or closed).
    pub fn unwatch(&mut self, student: &StudentKey) {
        if let Some(watcher) = self.watchers.get_mut(student) {
            watcher.channels = watcher.channels.saturating_sub(1);
            if watcher.channels == 0 {
                self.watchers.remove(student);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// One round: the notices worth sending now, recorded as sent. One pass over the
    /// queue plus one over the watchers: O(waiting + watchers), however many claims
    /// happened since the last round.
    pub fn due(
        &mut self,
        queue: &WaitingQueue,
        teachers: usize,
    ) -> Vec<(StudentKey, PositionNotice)> {
        let mut due = Vec::new();
        if self.watchers.is_empty() {
            return due;
        }
        let waiting = queue.len();
        let mut offer = |student: &StudentKey,
                         notice: PositionNotice,
                         watchers: &mut HashMap<StudentKey, Watcher>| {
            if let Some(watcher) = watchers.get_mut(student) {
                let send = watcher
                    .last
                    .as_ref()
                    .is_none_or(|last| notice.worth_sending_after(last));
                if send {
                    watcher.last = Some(notice);
                    due.push((student.clone(), notice));
                }
            }
        };
        for (index, (student, _)) in queue.iter().enumerate() {
            let notice = PositionNotice {
                position: Some(index + 1),
                waiting,
                teachers,
            };
            offer(student, notice, &mut self.watchers);
        }
        let not_waiting: Vec<StudentKey> = self
            .watchers
            .keys()
            .filter(|student| !queue.contains(student))
            .cloned()
            .collect();
        for student in not_waiting {
            let notice = PositionNotice {
                position: None,
                waiting,
                teachers,
            };
            offer(&student, notice, &mut self.watchers);
        }
        due
    }
}

/// 1-based place of `student` in the queue, by walking it (used once per new watcher).
fn position_of(queue: &WaitingQueue, student: &StudentKey) -> Option<usize> {
    if !queue.contains(student) {
        return None;
    }
    queue
        .iter()
        .position(|(waiting, _)| waiting == student)
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserKey;

    fn student(n: usize) -> StudentKey {
        StudentKey(UserKey::new(&n.to_string()).expect("non-empty"))
    }

    fn queue_of(n: usize) -> WaitingQueue {
        let mut queue = WaitingQueue::new();
        for i in 1..=n {
            queue.enqueue(student(i));
        }
        queue
    }

    fn positions(due: &[(StudentKey, PositionNotice)]) -> Vec<(String, Option<usize>)> {
        due.iter()
            .map(|(s, n)| (s.to_string(), n.position))
            .collect()
    }

    #[test]
    fn wire_text() {
        let waiting = PositionNotice {
            position: Some(3),
            waiting: 10,
            teachers: 2,
        };
        assert_eq!(
            waiting.to_json(),
            r#"{"position":3,"waiting":10,"teachers":2}"#
        );
        let not = PositionNotice {
            position: None,
            ..waiting
        };
        assert_eq!(
            not.to_json(),
            r#"{"position":null,"waiting":10,"teachers":2}"#
        );
    }

    #[test]
    fn a_new_watcher_is_told_its_place_at_once() {
        let queue = queue_of(3);
        let mut watch = PositionWatch::new();
        let notice = watch.watch(student(2), &queue, 1);
        assert_eq!(notice.position, Some(2));
        assert_eq!(notice.waiting, 3);
        let absent = watch.watch(student(9), &queue, 1);
        assert_eq!(absent.position, None);
        // Nothing changed since: nothing is due.
        assert!(watch.due(&queue, 1).is_empty());
    }

    #[test]
    fn the_second_student_moves_up_when_the_first_is_taken() {
        let mut queue = queue_of(2);
        let mut watch = PositionWatch::new();
        watch.watch(student(1), &queue, 1);
        watch.watch(student(2), &queue, 1);
        queue.pop_front();
        let due = watch.due(&queue, 1);
        assert_eq!(
            positions(&due),
            vec![("2".to_owned(), Some(1)), ("1".to_owned(), None)]
        );
        assert!(watch.due(&queue, 1).is_empty(), "told once");
    }

    #[test]
    fn far_back_students_hear_only_of_a_tenth_moved() {
        let mut queue = queue_of(1000);
        let mut watch = PositionWatch::new();
        watch.watch(student(1000), &queue, 1);
        let mut told = Vec::new();
        for _ in 0..999 {
            queue.pop_front();
            for (_, notice) in watch.due(&queue, 1) {
                told.extend(notice.position);
            }
        }
        // From 1000 down to 1: geometric steps while far back, every step near the head.
        assert_eq!(told.last(), Some(&1));
        assert!(told.len() < 100, "{} notices: {told:?}", told.len());
        assert!(told.windows(2).all(|w| w[1] < w[0]));
        let near: Vec<_> = told.iter().filter(|&&p| p <= EXACT_PLACES).collect();
        assert_eq!(near.len(), EXACT_PLACES, "every place near the head");
    }

    #[test]
    fn one_round_for_many_claims_sends_at_most_one_notice_each() {
        let mut queue = queue_of(10_000);
        let mut watch = PositionWatch::new();
        for i in 1..=10_000 {
            watch.watch(student(i), &queue, 1);
        }
        for _ in 0..10 {
            queue.pop_front();
        }
        let due = watch.due(&queue, 1);
        // The 10 taken hear `null`; the first 50 places hear their new place; of the rest,
        // only those for whom 10 places is a tenth of their old place (up to 100).
        assert!(due.len() <= 10 + 100, "{}", due.len());
        assert!(due.len() >= 10 + EXACT_PLACES);
    }

    #[test]
    fn a_teacher_count_change_reaches_everyone_watching() {
        let queue = queue_of(200);
        let mut watch = PositionWatch::new();
        for i in [1, 150, 300] {
            watch.watch(student(i), &queue, 1);
        }
        assert_eq!(watch.due(&queue, 2).len(), 3);
        assert!(watch.due(&queue, 2).is_empty());
    }

    #[test]
    fn unwatching_the_last_channel_forgets_the_student() {
        let queue = queue_of(2);
        let mut watch = PositionWatch::new();
        watch.watch(student(1), &queue, 0);
        watch.watch(student(1), &queue, 0);
        watch.unwatch(&student(1));
        assert_eq!(watch.len(), 1);
        watch.unwatch(&student(1));
        assert!(watch.is_empty());
        watch.unwatch(&student(1));
        assert!(watch.is_empty());
    }
}
