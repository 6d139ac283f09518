//! The `user:status` snapshot (PROTOCOL 5.5, 7.3).
//!
//! Owns the snapshot value and its exact wire text. The caller takes it inside the same
//! atomic step as the change it reports, so teachers see snapshots in the true order.
//!
//! Must never read state itself (a snapshot pieced together from two separate reads was
//! how the 2015 server showed teachers stale `waiting` counts, PROTOCOL 8.2), and never
//! let `students.total` disagree with its parts: it is computed from them.

use super::rosters::StudentCounts;

/// The user:status snapshot (PROTOCOL 5.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusSnapshot {
    pub teachers: usize,
    pub students: StudentCounts,
}

impl StatusSnapshot {
    /// `{"teachers":{"total":2},"students":{"total":20,"waiting":10,"chatting":10,"finished":0}}`
    /// (exactly this key order, no spaces)
    pub fn to_json(&self) -> String {
        // Formatted by hand: only integers go in, and the key order is part of the
        // contract that serde_json's sorted maps would not keep.
        format!(
            r#"{{"teachers":{{"total":{}}},"students":{{"total":{},"waiting":{},"chatting":{},"finished":{}}}}}"#,
            self.teachers,
            self.students.total(),
            self.students.waiting,
            self.students.chatting,
            self.students.finished
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_text_matches_the_protocol_example() {
        let snapshot = StatusSnapshot {
            teachers: 2,
            students: StudentCounts {
                waiting: 10,
                chatting: 10,
                finished: 0,
            },
        };
        assert_eq!(
            snapshot.to_json(),
            r#"{"teachers":{"total":2},"students":{"total":20,"waiting":10,"chatting":10,"finished":0}}"#
        );
    }

    #[test]
    fn total_is_the_sum_of_its_parts() {
        let snapshot = StatusSnapshot {
            teachers: 0,
            students: StudentCounts {
                waiting: 1,
                chatting: 2,
                finished: 3,
            },
        };
        let parsed: serde_json::Value =
            serde_json::from_str(&snapshot.to_json()).expect("valid json");
        assert_eq!(parsed["students"]["total"], 6);
        assert_eq!(parsed["teachers"]["total"], 0);
    }
}
