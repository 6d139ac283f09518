//! `--waiting-watchers N`: teachers who only watch the waiting list (issue 14,
//! PROTOCOL 6.4). Each one opens its own WebSocket, joins `presence:teachers` with
//! `{"userId": id, "role": "teacher", "waitingList": true}`, never claims, counts every
//! `queue:waiting` frame it reads and its bytes, and leaves (`phx_leave`, then a close
//! frame) when the run stops. The `user:status` snapshots every teacher gets (one per
//! change of the rosters, never coalesced: the 2015 protocol) are counted apart, for
//! comparison; replies are read and ignored; heartbeats go out every 30 s.
//!
//! The server pushes the list once right after the join reply and then at most once per
//! 250 ms per node, and only when it changed. So a watcher that watched for `d` seconds
//! can have read at most `4·d + 2` pushes, whatever the queue's churn: more is the
//! violation `waiting_list_flood` (see [`WatcherTally::over_bound`]). The arithmetic
//! (tallies, the bound, the report's figures) is pure and unit-tested here.

use std::time::{Duration, Instant};

use serde::{de::IgnoredAny, Deserialize, Serialize};
use serde_json::json;

use crate::checks::Violation;
use crate::codec::{decode, parse, Reply};
use crate::conn::{Conn, Recv};
use crate::stats::ErrorKind;
use crate::{Shared, UserResult};

const TEACHERS: &str = "presence:teachers";

/// Most students a `queue:waiting` list carries (the head of the queue).
pub const LIST_LIMIT: usize = 50;

/// Pushes per second the server's coalescing allows (one per 250 ms).
pub const PUSHES_PER_S: f64 = 4.0;

/// What one watcher saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WatcherTally {
    /// Its presence join was accepted.
    pub joined: bool,
    /// `queue:waiting` frames read.
    pub frames: u64,
    /// Their size on the wire (WebSocket text payload bytes).
    pub bytes: u64,
    /// The largest `total` among them.
    pub max_total: u64,
    /// `user:status` frames read, and their bytes.
    pub status_frames: u64,
    pub status_bytes: u64,
    /// From its join written to the end of the run (or of its connection).
    pub watched: Duration,
}

impl WatcherTally {
    /// One `queue:waiting` frame of `bytes` bytes announcing `total` students.
    pub fn record(&mut self, bytes: usize, total: u64) {
        self.frames += 1;
        self.bytes += bytes as u64;
        self.max_total = self.max_total.max(total);
    }

    /// One `user:status` frame of `bytes` bytes.
    pub fn record_status(&mut self, bytes: usize) {
        self.status_frames += 1;
        self.status_bytes += bytes as u64;
    }

    /// Most pushes a correct server can have sent in `watched`: the one after the
    /// join, and one per started 250 ms round.
    pub fn bound(&self) -> u64 {
        (self.watched.as_secs_f64() * PUSHES_PER_S).floor() as u64 + 2
    }

    /// More pushes than [`WatcherTally::bound`]: the coalescing is broken.
    pub fn over_bound(&self) -> bool {
        self.frames > self.bound()
    }

    fn per_s(&self, n: u64) -> f64 {
        let s = self.watched.as_secs_f64();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }
}

/// The waiting-list part of the report (present when `--waiting-watchers` > 0).
/// Rates are per watcher, over the time it watched (its join to the end of the run).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WaitingListReport {
    /// Watchers asked for.
    pub watchers: u64,
    /// Watchers whose join was accepted.
    pub watching: u64,
    /// `queue:waiting` frames read, all watchers together.
    pub frames: u64,
    pub bytes: u64,
    pub frames_per_s_mean: f64,
    pub frames_per_s_max: f64,
    pub bytes_per_s_mean: f64,
    pub bytes_per_s_max: f64,
    /// The most frames one watcher read.
    pub frames_max: u64,
    /// The largest `total` any watcher saw.
    pub max_total: u64,
    /// Mean time watched, in seconds.
    pub watched_s: f64,
    /// Watchers that read more than `4·watched_s + 2` pushes.
    pub over_bound: u64,
    /// The `user:status` frames the watchers read meanwhile (all together), and per
    /// watcher per second (mean): what every teacher gets anyway.
    pub status_frames: u64,
    pub status_frames_per_s_mean: f64,
    pub status_bytes_per_s_mean: f64,
}

impl WaitingListReport {
    /// The figures of `watchers` asked for, from the tallies of those that ran.
    pub fn new(watchers: u64, tallies: &[WatcherTally]) -> WaitingListReport {
        let joined: Vec<&WatcherTally> = tallies.iter().filter(|t| t.joined).collect();
        let n = joined.len() as f64;
        let mean = |f: &dyn Fn(&WatcherTally) -> f64| {
            if joined.is_empty() {
                0.0
            } else {
                joined.iter().map(|t| f(t)).sum::<f64>() / n
            }
        };
        let max =
            |f: &dyn Fn(&WatcherTally) -> f64| joined.iter().map(|t| f(t)).fold(0.0, f64::max);
        let round = |x: f64, digits: i32| {
            let p = 10f64.powi(digits);
            (x * p).round() / p
        };
        let frames_per_s = |t: &WatcherTally| t.per_s(t.frames);
        let bytes_per_s = |t: &WatcherTally| t.per_s(t.bytes);
        WaitingListReport {
            watchers,
            watching: joined.len() as u64,
            frames: tallies.iter().map(|t| t.frames).sum(),
            bytes: tallies.iter().map(|t| t.bytes).sum(),
            frames_per_s_mean: round(mean(&frames_per_s), 3),
            frames_per_s_max: round(max(&frames_per_s), 3),
            bytes_per_s_mean: round(mean(&bytes_per_s), 0),
            bytes_per_s_max: round(max(&bytes_per_s), 0),
            frames_max: tallies.iter().map(|t| t.frames).max().unwrap_or(0),
            max_total: tallies.iter().map(|t| t.max_total).max().unwrap_or(0),
            watched_s: round(mean(&|t| t.watched.as_secs_f64()), 3),
            over_bound: tallies.iter().filter(|t| t.over_bound()).count() as u64,
            status_frames: tallies.iter().map(|t| t.status_frames).sum(),
            status_frames_per_s_mean: round(mean(&|t| t.per_s(t.status_frames)), 3),
            status_bytes_per_s_mean: round(mean(&|t| t.per_s(t.status_bytes)), 0),
        }
    }

    /// Every watcher asked for was watching.
    pub fn complete(&self) -> bool {
        self.watching == self.watchers
    }
}

/// The part of a `queue:waiting` payload the watcher judges.
#[derive(Debug, Deserialize)]
pub struct WaitingList {
    pub students: Vec<IgnoredAny>,
    pub total: u64,
}

/// A well-formed list: at most [`LIST_LIMIT`] students, no more than `total`.
pub fn plausible(list: &WaitingList) -> bool {
    list.students.len() <= LIST_LIMIT && list.students.len() as u64 <= list.total
}

/// Watcher `id`, until the run stops.
pub(crate) async fn run(shared: std::sync::Arc<Shared>, id: u64) -> UserResult {
    let mut tally = WatcherTally::default();
    if let Some(conn) = shared.connect(crate::token::Role::Teacher, id).await {
        watch(&shared, conn, id, &mut tally).await;
    }
    if tally.over_bound() {
        shared.violation(Violation::WaitingListFlood);
    }
    UserResult::Watcher(tally)
}

async fn watch(shared: &Shared, mut conn: Conn, id: u64, tally: &mut WatcherTally) {
    let join = json!({"userId": id, "role": "teacher", "waitingList": true});
    let Ok(join_ref) = conn.join(TEACHERS, &join).await else {
        shared.error(ErrorKind::Disconnected);
        return;
    };
    let since = Instant::now();
    let join_ref = join_ref.to_string();
    let mut heartbeat = crate::conn::every(shared.config.heartbeat_interval);
    let stopped = loop {
        tokio::select! {
            recv = conn.recv() => match recv {
                Recv::Text(text) => on_frame(shared, &conn, text.as_str(), &join_ref, tally),
                Recv::Binary => shared.error(ErrorKind::UnexpectedFrame),
                Recv::Closed(_) => break false,
            },
            _ = heartbeat.tick() => {
                if conn.heartbeat().await.is_err() {
                    break false;
                }
            }
            () = shared.stopped() => break true,
        }
    };
    tally.watched = since.elapsed();
    if stopped {
        let _ = conn.leave(TEACHERS).await;
        conn.close().await;
    } else {
        shared.error(ErrorKind::Disconnected);
    }
}

fn on_frame(shared: &Shared, conn: &Conn, text: &str, join_ref: &str, tally: &mut WatcherTally) {
    let Ok(frame) = decode(conn.framing(), text) else {
        shared.error(ErrorKind::MalformedFrame);
        return;
    };
    match (&*frame.topic, &*frame.event) {
        (_, "phx_reply") => match parse::<Reply>(frame.payload) {
            Ok(reply) if !reply.is_ok() => shared.error(ErrorKind::ErrorReply),
            Ok(_) if frame.msg_ref.as_deref() == Some(join_ref) => tally.joined = true,
            Ok(_) => {} // heartbeats
            Err(_) => shared.error(ErrorKind::MalformedFrame),
        },
        (TEACHERS, "queue:waiting") => match parse::<WaitingList>(frame.payload) {
            Ok(list) if plausible(&list) => tally.record(text.len(), list.total),
            _ => shared.error(ErrorKind::MalformedFrame),
        },
        (TEACHERS, "user:status") => tally.record_status(text.len()),
        _ => shared.error(ErrorKind::UnexpectedFrame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(frames: u64, watched_ms: u64) -> WatcherTally {
        WatcherTally {
            joined: true,
            frames,
            bytes: frames * 100,
            watched: Duration::from_millis(watched_ms),
            ..WatcherTally::default()
        }
    }

    #[test]
    fn records_frames_bytes_and_the_largest_total() {
        let mut t = WatcherTally::default();
        t.record(120, 7);
        t.record(3_000, 10_000);
        t.record(80, 2);
        t.record_status(150);
        assert_eq!((t.frames, t.bytes, t.max_total), (3, 3_200, 10_000));
        assert_eq!((t.status_frames, t.status_bytes), (1, 150));
    }

    #[test]
    fn the_bound_is_one_push_per_round_plus_the_join_push() {
        // Nothing watched yet: the join push, and a round that may already be due.
        assert_eq!(tally(0, 0).bound(), 2);
        assert_eq!(tally(0, 249).bound(), 2);
        assert_eq!(tally(0, 250).bound(), 3);
        assert_eq!(tally(0, 60_000).bound(), 242);
        assert!(!tally(242, 60_000).over_bound());
        assert!(tally(243, 60_000).over_bound());
        // A watcher that read nothing is never over.
        assert!(!tally(0, 60_000).over_bound());
    }

    #[test]
    fn report_means_and_maxima_over_the_watchers() {
        let tallies = [
            WatcherTally {
                max_total: 9_000,
                ..tally(40, 20_000)
            },
            WatcherTally {
                max_total: 10_000,
                status_frames: 2_000,
                status_bytes: 300_000,
                ..tally(80, 20_000)
            },
        ];
        let r = WaitingListReport::new(2, &tallies);
        assert_eq!(r.watching, 2);
        assert!(r.complete());
        assert_eq!((r.frames, r.bytes, r.frames_max), (120, 12_000, 80));
        assert_eq!(r.frames_per_s_mean, 3.0);
        assert_eq!(r.frames_per_s_max, 4.0);
        assert_eq!(r.bytes_per_s_mean, 300.0);
        assert_eq!(r.bytes_per_s_max, 400.0);
        assert_eq!(r.max_total, 10_000);
        assert_eq!(r.watched_s, 20.0);
        assert_eq!(r.over_bound, 0);
        assert_eq!(r.status_frames, 2_000);
        assert_eq!(r.status_frames_per_s_mean, 50.0);
        assert_eq!(r.status_bytes_per_s_mean, 7_500.0);
    }

    #[test]
    fn report_counts_floods_and_missing_watchers() {
        let never_joined = WatcherTally::default();
        let tallies = [tally(10, 10_000), tally(43, 10_000), never_joined];
        let r = WaitingListReport::new(3, &tallies);
        assert_eq!(r.watching, 2);
        assert!(!r.complete());
        // 43 > 10 s · 4 + 2.
        assert_eq!(r.over_bound, 1);
        // The rates are over the watchers that watched.
        assert_eq!(r.frames_per_s_mean, 2.65);
    }

    #[test]
    fn no_watchers_no_figures() {
        let r = WaitingListReport::new(0, &[]);
        assert_eq!(r, WaitingListReport::default());
        assert!(r.complete());
    }

    #[test]
    fn plausible_lists() {
        let list = |s: &str| serde_json::from_str::<WaitingList>(s).unwrap();
        assert!(plausible(&list(r#"{"students": [], "total": 0}"#)));
        let one = r#"{"id": 7, "name": null, "question": "limits?", "since": 1, "position": 1}"#;
        assert!(plausible(&list(&format!(
            r#"{{"students": [{one}], "total": 12}}"#
        ))));
        assert!(!plausible(&list(&format!(
            r#"{{"students": [{one}, {one}], "total": 1}}"#
        ))));
        let many = vec![one; LIST_LIMIT + 1].join(",");
        assert!(!plausible(&list(&format!(
            r#"{{"students": [{many}], "total": 100}}"#
        ))));
        assert!(serde_json::from_str::<WaitingList>(r#"{"students": []}"#).is_err());
    }
}
