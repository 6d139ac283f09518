//! The output gate of `ChatLifetime`: frames leave in the order their steps
//! ran, and none leaves before the transcript commit it must follow.
//!
//! A finished chat's `chat:terminated` may only go out once its transcript is
//! on disk. The step that finishes it puts a **barrier** in the gate; every
//! frame produced after it (by that step or any later one) waits behind it
//! until the transcript writer reports the commit, and then leaves in order.
//! Commits are reported in the order barriers were raised (the writer is
//! FIFO), so releasing always opens the oldest barrier. While no barrier is
//! up, frames pass straight through.
//!
//! Must never reorder frames and never hold one after its barrier opened.
//! The state changes of later steps are not held, only their frames.

use std::collections::VecDeque;

#[derive(Debug)]
enum Held<T> {
    Barrier,
    Item(T),
}

/// Frames of type `T` waiting behind barriers.
#[derive(Debug)]
pub struct Gate<T> {
    held: VecDeque<Held<T>>,
}

impl<T> Default for Gate<T> {
    fn default() -> Self {
        Gate {
            held: VecDeque::new(),
        }
    }
}

impl<T> Gate<T> {
    /// Offers an item: back to the caller to send now if nothing is held,
    /// otherwise kept in line.
    pub fn pass(&mut self, item: T) -> Option<T> {
        if self.held.is_empty() {
            Some(item)
        } else {
            self.held.push_back(Held::Item(item));
            None
        }
    }

    /// Raises a barrier: everything offered from now on waits for `open`.
    pub fn raise(&mut self) {
        self.held.push_back(Held::Barrier);
    }

    /// The oldest barrier's commit arrived: the items up to the next barrier,
    /// in order, to send now.
    pub fn open(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        if matches!(self.held.front(), Some(Held::Barrier)) {
            self.held.pop_front();
        }
        while let Some(Held::Item(_)) = self.held.front() {
            if let Some(Held::Item(item)) = self.held.pop_front() {
                out.push(item);
            }
        }
        out
    }

    #[cfg(test)]
    fn barriers(&self) -> usize {
        self.held
            .iter()
            .filter(|h| matches!(h, Held::Barrier))
            .count()
    }

    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_held_passes_straight_through() {
        let mut gate = Gate::default();
        assert_eq!(gate.pass(1), Some(1));
        assert!(gate.is_open());
    }

    #[test]
    fn items_after_a_barrier_wait_for_its_commit_in_order() {
        let mut gate = Gate::default();
        assert_eq!(gate.pass("before"), Some("before"));
        gate.raise();
        assert_eq!(gate.pass("terminated"), None);
        assert_eq!(gate.pass("status"), None);
        assert_eq!(gate.barriers(), 1);
        assert_eq!(gate.open(), vec!["terminated", "status"]);
        assert!(gate.is_open());
        assert_eq!(gate.pass("after"), Some("after"));
    }

    #[test]
    fn each_commit_opens_only_the_oldest_barrier() {
        let mut gate = Gate::default();
        gate.raise();
        gate.pass(1);
        gate.raise();
        gate.pass(2);
        gate.pass(3);
        assert_eq!(gate.open(), vec![1]);
        // Still held behind the second barrier.
        assert_eq!(gate.pass(4), None);
        assert_eq!(gate.open(), vec![2, 3, 4]);
        assert!(gate.is_open());
    }

    #[test]
    fn a_barrier_with_nothing_behind_it_opens_to_nothing() {
        let mut gate: Gate<u8> = Gate::default();
        gate.raise();
        assert!(gate.open().is_empty());
        assert!(gate.is_open());
        // An extra commit report changes nothing.
        assert!(gate.open().is_empty());
    }
}
