//! The waiting queue (PROTOCOL 7.1): students in FIFO order by arrival.
//!
//! Owns the arrival sequence: every `student:ready` the server accepts gets the next
//! number, and the queue is ordered by that number alone. A student whose teacher
//! vanished goes back with its original number, which puts it ahead of everyone who
//! arrived later (PROTOCOL 6.2).
//!
//! Must never order by id (the 2015 server did, so a late student with a low id jumped
//! the queue and `"10"` came before `"2"`, PROTOCOL 8.1), never hold a student twice, and
//! never scan: every operation is O(log n), because teachers claim every 10 ms.

use std::collections::{BTreeMap, HashMap};

use super::ids::StudentKey;

/// When the server accepted a student's `student:ready`: a sequence number, unique and
/// strictly increasing over the life of one queue. Only a queue hands them out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Arrival(u64);

impl Arrival {
    /// The sequence number (for logs and tests; order by comparing arrivals).
    pub fn sequence(self) -> u64 {
        self.0
    }
}

/// Students waiting for a teacher, head first by arrival.
#[derive(Default, Debug)]
pub struct WaitingQueue {
    /// Arrival number → student: the order of service.
    order: BTreeMap<u64, StudentKey>,
    /// Student → its arrival: O(1) membership and the key to remove it from `order`.
    index: HashMap<StudentKey, Arrival>,
    /// The number the next arrival gets.
    next: u64,
}

impl WaitingQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// A new arrival: next sequence number (strictly increasing over the life of the
    /// queue), appended at the tail. If the student is already queued, returns its
    /// existing arrival and changes nothing.
    pub fn enqueue(&mut self, student: StudentKey) -> Arrival {
        if let Some(&arrival) = self.index.get(&student) {
            return arrival;
        }
        let arrival = Arrival(self.next);
        // 2^64 arrivals would take centuries at a billion a second; saturating only keeps
        // a debug build from panicking on arithmetic that cannot be reached.
        self.next = self.next.saturating_add(1);
        self.order.insert(arrival.0, student.clone());
        self.index.insert(student, arrival);
        arrival
    }

    /// Put a student back with its ORIGINAL arrival (teacher vanished, PROTOCOL 6.2): it
    /// lands ahead of everyone who arrived later, i.e. at the head in arrival order.
    ///
    /// If the student is already queued it moves to `arrival`. Returns false and changes
    /// nothing if another student holds that arrival, which only a caller mixing up
    /// arrivals can cause: refusing keeps both students instead of losing one.
    pub fn requeue(&mut self, student: StudentKey, arrival: Arrival) -> bool {
        match self.order.get(&arrival.0) {
            Some(holder) if *holder != student => return false,
            _ => {}
        }
        if let Some(old) = self.index.insert(student.clone(), arrival) {
            self.order.remove(&old.0);
        }
        self.order.insert(arrival.0, student);
        // An arrival from elsewhere must not be handed out again later.
        if arrival.0 >= self.next {
            self.next = arrival.0.saturating_add(1);
        }
        true
    }

    /// The head of the queue (earliest arrival), taken out.
    pub fn pop_front(&mut self) -> Option<(StudentKey, Arrival)> {
        let (sequence, student) = self.order.pop_first()?;
        self.index.remove(&student);
        Some((student, Arrival(sequence)))
    }

    /// The first student in order whom `serve` accepts, taken out; the students before
    /// it stay where they are. Costs one step per student passed over (students who are
    /// away, PROTOCOL 6.3), so it is O(log n) when `serve` accepts the head.
    pub fn take_first(
        &mut self,
        mut serve: impl FnMut(&StudentKey, Arrival) -> bool,
    ) -> Option<(StudentKey, Arrival)> {
        let sequence = self
            .order
            .iter()
            .find(|(&sequence, student)| serve(student, Arrival(sequence)))
            .map(|(&sequence, _)| sequence)?;
        let student = self.order.remove(&sequence)?;
        self.index.remove(&student);
        Some((student, Arrival(sequence)))
    }

    /// Take a student out wherever it stands (it vanished); its arrival if it was queued.
    pub fn remove(&mut self, student: &StudentKey) -> Option<Arrival> {
        let arrival = self.index.remove(student)?;
        self.order.remove(&arrival.0);
        Some(arrival)
    }

    pub fn contains(&self, student: &StudentKey) -> bool {
        self.index.contains_key(student)
    }

    /// The head of the queue, left in place.
    pub fn front(&self) -> Option<(&StudentKey, Arrival)> {
        self.order
            .first_key_value()
            .map(|(&sequence, student)| (student, Arrival(sequence)))
    }

    /// The queue head first, for snapshots and invariant checks.
    pub fn iter(&self) -> impl Iterator<Item = (&StudentKey, Arrival)> + '_ {
        self.order
            .iter()
            .map(|(&sequence, student)| (student, Arrival(sequence)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserKey;

    fn student(text: &str) -> StudentKey {
        StudentKey(UserKey::new(text).expect("non-empty"))
    }

    fn drain(queue: &mut WaitingQueue) -> Vec<String> {
        std::iter::from_fn(|| queue.pop_front())
            .map(|(s, _)| s.to_string())
            .collect()
    }

    #[test]
    fn served_in_arrival_order_not_id_order() {
        let mut queue = WaitingQueue::new();
        for id in ["10", "2", "1", "b", "a"] {
            queue.enqueue(student(id));
        }
        assert_eq!(drain(&mut queue), ["10", "2", "1", "b", "a"]);
    }

    #[test]
    fn arrivals_strictly_increase_even_after_the_queue_empties() {
        let mut queue = WaitingQueue::new();
        let first = queue.enqueue(student("1"));
        queue.pop_front();
        let second = queue.enqueue(student("1"));
        let third = queue.enqueue(student("2"));
        assert!(first < second && second < third);
    }

    #[test]
    fn enqueue_twice_keeps_the_first_place() {
        let mut queue = WaitingQueue::new();
        let first = queue.enqueue(student("1"));
        queue.enqueue(student("2"));
        assert_eq!(queue.enqueue(student("1")), first);
        assert_eq!(queue.len(), 2);
        assert_eq!(drain(&mut queue), ["1", "2"]);
    }

    #[test]
    fn requeue_puts_a_student_back_ahead_of_later_arrivals() {
        let mut queue = WaitingQueue::new();
        queue.enqueue(student("a"));
        queue.enqueue(student("b"));
        let (a, arrival_a) = queue.pop_front().expect("a waits");
        let (b, arrival_b) = queue.pop_front().expect("b waits");
        queue.enqueue(student("c"));
        queue.enqueue(student("d"));
        // Put back in the "wrong" order: the original arrivals decide.
        assert!(queue.requeue(b, arrival_b));
        assert!(queue.requeue(a, arrival_a));
        assert_eq!(drain(&mut queue), ["a", "b", "c", "d"]);
    }

    #[test]
    fn requeue_refuses_an_arrival_held_by_someone_else() {
        let mut queue = WaitingQueue::new();
        let arrival_a = queue.enqueue(student("a"));
        assert!(!queue.requeue(student("b"), arrival_a));
        assert_eq!(queue.len(), 1);
        assert!(!queue.contains(&student("b")));
    }

    #[test]
    fn requeue_of_a_queued_student_moves_it_without_duplicating() {
        let mut queue = WaitingQueue::new();
        let early = queue.enqueue(student("x"));
        queue.pop_front();
        queue.enqueue(student("y"));
        queue.enqueue(student("x"));
        assert!(queue.requeue(student("x"), early));
        assert_eq!(queue.len(), 2);
        assert_eq!(drain(&mut queue), ["x", "y"]);
    }

    #[test]
    fn take_first_passes_over_students_it_does_not_serve_and_leaves_them_in_place() {
        let mut queue = WaitingQueue::new();
        for id in ["away", "1", "2"] {
            queue.enqueue(student(id));
        }
        let away = student("away");
        let taken = queue.take_first(|s, _| *s != away);
        assert_eq!(taken.map(|(s, _)| s.to_string()), Some("1".into()));
        assert_eq!(queue.take_first(|_, _| false), None);
        assert_eq!(drain(&mut queue), ["away", "2"]);
    }

    #[test]
    fn remove_takes_a_student_out_from_the_middle() {
        let mut queue = WaitingQueue::new();
        for id in ["1", "2", "3"] {
            queue.enqueue(student(id));
        }
        assert!(queue.remove(&student("2")).is_some());
        assert_eq!(queue.remove(&student("2")), None);
        assert!(!queue.contains(&student("2")));
        assert_eq!(queue.front().map(|(s, _)| s.to_string()), Some("1".into()));
        assert_eq!(drain(&mut queue), ["1", "3"]);
        assert!(queue.is_empty());
        assert_eq!(queue.pop_front(), None);
    }
}
