//! The statistics behind `GET /api/stats` and the `/dashboard` page (issue
//! 14): how many chats, how long students waited and chats lasted, which
//! teachers took them and at which hours, and the queue's length over the
//! last hours.
//!
//! Owns the per-chat figures a store hands out ([`Figures`]: one row per
//! chat, newest first, bounded by [`MAX_CHATS`]), how the figures of several
//! nodes merge into one set, and how a set becomes the API's answer
//! ([`summary`]). The queue length samples are kept by [`QueueSampler`].
//!
//! Must never grow with the store: a set of figures holds at most
//! [`MAX_CHATS`] rows (the newest), whatever it was merged from, and teacher
//! ids are kept once per set (rows point at them), which also keeps a set
//! small on the wire between nodes. Percentiles are nearest-rank: the
//! median of 1, 2, 3, 4 is 2, never an average that no chat had.

mod sampler;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use sampler::{sample_queue, QueueSample, QueueSampler, QUEUE_SAMPLES};

/// Most chats whose figures one answer is computed from: the newest this
/// many created since `since` (per node, and again after merging). `chats`
/// still counts every chat.
pub const MAX_CHATS: usize = 100_000;

/// One chat's figures: when it was created (unix ms), how long its student
/// waited (`created_at - queued_at`, if the line time is known), how long it
/// lasted (`finished_at - started_at`, if it started and finished), and its
/// teacher (an index into [`Figures::teachers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRow(pub i64, pub Option<i64>, pub Option<i64>, pub u32);

impl ChatRow {
    pub fn created_at(&self) -> i64 {
        self.0
    }
    pub fn wait_ms(&self) -> Option<i64> {
        self.1
    }
    pub fn length_ms(&self) -> Option<i64> {
        self.2
    }
}

/// The figures of the chats created since some time, as one store (or
/// several, merged) has them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Every chat created since then (not only those in `rows`).
    pub chats: u64,
    /// The teacher ids `rows` point at.
    pub teachers: Vec<String>,
    /// The newest chats, newest first, at most [`MAX_CHATS`].
    pub rows: Vec<ChatRow>,
}

impl Figures {
    /// Adds a chat's figures (for the store building a set). Rows must come
    /// newest first; past [`MAX_CHATS`] rows only the count grows.
    pub fn push(
        &mut self,
        created_at: i64,
        wait_ms: Option<i64>,
        length_ms: Option<i64>,
        teacher: &str,
        index: &mut HashMap<String, u32>,
    ) {
        if self.rows.len() >= MAX_CHATS {
            return;
        }
        let teacher = match index.get(teacher) {
            Some(i) => *i,
            None => self.add_teacher(teacher.to_owned(), index),
        };
        self.rows.push(ChatRow(
            created_at,
            wait_ms.map(|w| w.max(0)),
            length_ms.map(|l| l.max(0)),
            teacher,
        ));
    }

    /// This set and `other` as one: the counts added, the rows of both,
    /// newest first, cut at [`MAX_CHATS`]. Rows of `other` that point at no
    /// teacher of its list (a malformed answer) are dropped.
    pub fn merge(mut self, other: Figures) -> Figures {
        self.chats += other.chats;
        let mut index: HashMap<String, u32> = self
            .teachers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut remap = Vec::with_capacity(other.teachers.len());
        for teacher in other.teachers {
            let i = match index.get(&teacher) {
                Some(i) => *i,
                None => self.add_teacher(teacher, &mut index),
            };
            remap.push(i);
        }
        self.rows.extend(other.rows.into_iter().filter_map(|row| {
            let teacher = *remap.get(row.3 as usize)?;
            Some(ChatRow(row.0, row.1, row.2, teacher))
        }));
        self.rows.sort_by_key(|row| std::cmp::Reverse(row.0));
        self.rows.truncate(MAX_CHATS);
        self
    }

    /// A teacher new to this set: listed once, its index noted in `index`.
    fn add_teacher(&mut self, teacher: String, index: &mut HashMap<String, u32>) -> u32 {
        let i = u32::try_from(self.teachers.len()).unwrap_or(u32::MAX);
        self.teachers.push(teacher.clone());
        index.insert(teacher, i);
        i
    }

    fn teacher(&self, row: &ChatRow) -> Option<&str> {
        self.teachers.get(row.3 as usize).map(String::as_str)
    }
}

/// The live counts of the deployment (the `user:status` snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Live {
    pub waiting: usize,
    pub chatting: usize,
    pub teachers: usize,
}

/// The body of `GET /api/stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub since: i64,
    pub until: i64,
    pub chats: u64,
    pub wait_ms: WaitFigures,
    pub chat_length_ms: LengthFigures,
    pub per_teacher: Vec<TeacherChats>,
    pub busiest_hours: Vec<HourChats>,
    pub queue_length: Vec<QueueSample>,
    pub live: Live,
    /// How many waits fell in each of [`WAIT_BUCKETS_MS`] (for the
    /// dashboard's histogram; an addition to the contract's fields).
    pub wait_histogram: Vec<WaitBucket>,
}

/// The lower bounds of the wait histogram's buckets, in ms: under 30 s,
/// 30 s to 1 min, …, 30 min and more.
pub const WAIT_BUCKETS_MS: [i64; 9] = [
    0, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000,
];

/// Waits from `from_ms` (inclusive) to `to_ms` (exclusive; null: no bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WaitBucket {
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub chats: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WaitFigures {
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LengthFigures {
    pub median: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeacherChats {
    pub teacher: String,
    pub chats: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HourChats {
    pub hour: u8,
    pub chats: u64,
}

/// The answer for the chats of `figures` (created from `since` to `until`),
/// the queue samples and the live counts.
pub fn summary(
    since: i64,
    until: i64,
    figures: &Figures,
    queue_length: Vec<QueueSample>,
    live: Live,
) -> Summary {
    let mut waits: Vec<i64> = figures.rows.iter().filter_map(ChatRow::wait_ms).collect();
    waits.sort_unstable();
    let wait_histogram = WAIT_BUCKETS_MS
        .iter()
        .enumerate()
        .map(|(i, from)| {
            let to = WAIT_BUCKETS_MS.get(i + 1).copied();
            // `waits` is sorted: the bucket is the run between two bounds.
            let start = waits.partition_point(|w| w < from);
            let end = to.map_or(waits.len(), |to| waits.partition_point(|w| *w < to));
            let chats = end.saturating_sub(start) as u64;
            WaitBucket {
                from_ms: *from,
                to_ms: to,
                chats,
            }
        })
        .collect();
    let mut lengths: Vec<i64> = figures.rows.iter().filter_map(ChatRow::length_ms).collect();
    lengths.sort_unstable();

    let mut per_teacher: HashMap<&str, u64> = HashMap::new();
    let mut hours = [0u64; 24];
    for row in &figures.rows {
        if let Some(teacher) = figures.teacher(row) {
            *per_teacher.entry(teacher).or_default() += 1;
        }
        hours[hour_of(row.created_at())] += 1;
    }
    let mut per_teacher: Vec<TeacherChats> = per_teacher
        .into_iter()
        .map(|(teacher, chats)| TeacherChats {
            teacher: teacher.to_owned(),
            chats,
        })
        .collect();
    // Most first; ties by id, so that the order is stable.
    per_teacher.sort_by(|a, b| {
        b.chats
            .cmp(&a.chats)
            .then_with(|| a.teacher.cmp(&b.teacher))
    });

    Summary {
        since,
        until,
        chats: figures.chats,
        wait_ms: WaitFigures {
            median: percentile(&waits, 50),
            p90: percentile(&waits, 90),
        },
        chat_length_ms: LengthFigures {
            median: percentile(&lengths, 50),
        },
        per_teacher,
        busiest_hours: hours
            .iter()
            .enumerate()
            .map(|(hour, chats)| HourChats {
                hour: hour as u8,
                chats: *chats,
            })
            .collect(),
        queue_length,
        live,
        wait_histogram,
    }
}

/// The UTC hour (0..=23) of a unix ms time.
fn hour_of(ms: i64) -> usize {
    (ms.rem_euclid(86_400_000) / 3_600_000) as usize
}

/// The nearest-rank `p`-th percentile of `sorted` (ascending): the smallest
/// value with at least `p`% of the values at or below it. None if empty.
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rows: &[(i64, Option<i64>, Option<i64>, &str)]) -> Figures {
        let mut f = Figures {
            chats: rows.len() as u64,
            ..Figures::default()
        };
        let mut index = HashMap::new();
        for (created, wait, length, teacher) in rows {
            f.push(*created, *wait, *length, teacher, &mut index);
        }
        f
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3], 90), Some(3));
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 90), Some(90));
        assert_eq!(percentile(&hundred, 50), Some(50));
    }

    #[test]
    fn a_summary_counts_teachers_hours_waits_and_lengths() {
        let hour = 3_600_000;
        let f = figures(&[
            (5 * hour + 10, Some(3000), None, "ann"),
            (5 * hour + 5, Some(1000), Some(60_000), "bob"),
            (2 * hour, None, Some(20_000), "ann"),
            (26 * hour, Some(2000), Some(40_000), "ann"),
        ]);
        let s = summary(0, 100 * hour, &f, Vec::new(), Live::default());
        assert_eq!(s.chats, 4);
        assert_eq!(s.wait_ms.median, Some(2000));
        assert_eq!(s.wait_ms.p90, Some(3000));
        assert_eq!(s.chat_length_ms.median, Some(40_000));
        assert_eq!(
            s.per_teacher,
            [
                TeacherChats {
                    teacher: "ann".into(),
                    chats: 3
                },
                TeacherChats {
                    teacher: "bob".into(),
                    chats: 1
                }
            ]
        );
        assert_eq!(s.busiest_hours.len(), 24);
        assert_eq!(s.busiest_hours[5].chats, 2);
        assert_eq!(
            s.busiest_hours[2].chats, 2,
            "26 h after the epoch is 02:00 UTC"
        );
        assert_eq!(s.wait_histogram.len(), WAIT_BUCKETS_MS.len());
        assert_eq!(s.wait_histogram[0].chats, 3, "all under 30 s");
        assert_eq!(s.wait_histogram[0].to_ms, Some(30_000));
        assert_eq!(s.wait_histogram[8].to_ms, None);
    }

    #[test]
    fn a_wait_on_a_bound_counts_in_the_bucket_it_starts() {
        let f = figures(&[
            (1, Some(29_999), None, "t"),
            (2, Some(30_000), None, "t"),
            (3, Some(59_999), None, "t"),
            (4, Some(1_800_000), None, "t"),
            (5, Some(99_000_000), None, "t"),
        ]);
        let s = summary(0, 10, &f, Vec::new(), Live::default());
        let counts: Vec<u64> = s.wait_histogram.iter().map(|b| b.chats).collect();
        assert_eq!(counts, [1, 2, 0, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn an_empty_set_has_no_medians() {
        let s = summary(0, 1, &Figures::default(), Vec::new(), Live::default());
        assert_eq!(s.chats, 0);
        assert_eq!(s.wait_ms.median, None);
        assert_eq!(s.wait_ms.p90, None);
        assert_eq!(s.chat_length_ms.median, None);
        assert!(s.per_teacher.is_empty());
        assert!(s.busiest_hours.iter().all(|h| h.chats == 0));
    }

    #[test]
    fn merging_keeps_the_newest_rows_and_maps_the_teachers() {
        let a = figures(&[(30, Some(1), None, "ann"), (10, Some(2), None, "bob")]);
        let mut b = figures(&[(20, Some(3), None, "bob"), (5, Some(4), None, "cid")]);
        b.chats = 7;
        // A row pointing at no teacher of its set is dropped.
        b.rows.push(ChatRow(1, None, None, 9));
        let merged = a.merge(b);
        assert_eq!(merged.chats, 9);
        let seen: Vec<(i64, &str)> = merged
            .rows
            .iter()
            .map(|r| (r.created_at(), merged.teacher(r).unwrap_or("?")))
            .collect();
        assert_eq!(seen, [(30, "ann"), (20, "bob"), (10, "bob"), (5, "cid")]);
        assert_eq!(merged.teachers, ["ann", "bob", "cid"]);
    }

    #[test]
    fn a_set_is_bounded() {
        let mut f = Figures::default();
        let mut index = HashMap::new();
        for i in 0..(MAX_CHATS as i64 + 10) {
            f.push(1_000_000 - i, Some(i), None, "t", &mut index);
        }
        assert_eq!(f.rows.len(), MAX_CHATS);
        let merged = f.clone().merge(f);
        assert_eq!(merged.rows.len(), MAX_CHATS);
        assert_eq!(merged.teachers, ["t"]);
    }

    /// A full set travels between nodes in one Redis message: well under
    /// the 8 MiB soft limit Redis puts on a subscriber's output buffer, even
    /// with long guest ids (teacher ids go once, rows are numbers).
    #[test]
    fn a_full_set_is_small_on_the_wire() {
        let mut f = Figures::default();
        let mut index = HashMap::new();
        let now = 1_800_000_000_000i64;
        for i in 0..MAX_CHATS as i64 {
            let teacher = format!("Some Teacher Name·{:032x}", i % 500);
            f.push(
                now - i * 997,
                Some(123_456),
                Some(654_321),
                &teacher,
                &mut index,
            );
        }
        let wire = serde_json::to_string(&f).expect("json");
        assert!(wire.len() < 5 * 1024 * 1024, "{} bytes", wire.len());
        let back: Figures = serde_json::from_str(&wire).expect("round trip");
        assert_eq!(back, f);
    }

    #[test]
    fn negative_durations_count_as_zero() {
        let f = figures(&[(10, Some(-5), Some(-1), "t")]);
        assert_eq!(f.rows[0], ChatRow(10, Some(0), Some(0), 0));
    }
}
