//! The command line (clap) and its translation into a [`load_client::Config`].

use std::time::Duration;

use clap::Parser;
use load_client::{Config, Framing};

/// Load generator for tutor-queue: simulates the 2015 Phoenix client's students and
/// teachers (one WebSocket each), measures throughput and latency, and counts protocol
/// violations. Exit status 0 only if every student finished before the timeout with
/// no violation.
#[derive(Debug, Parser)]
#[command(name = "load-client", version, about)]
pub struct Args {
    /// Server URL. Without a path, /ws (vsn 1) or /socket/websocket (vsn 2) is used;
    /// vsn 2 adds vsn=2.0.0 to the query. May be given several times: connections
    /// take them round robin, a reconnection the one after its last.
    #[arg(long, default_value = "ws://127.0.0.1:4000/ws")]
    pub url: Vec<String>,
    /// Number of students.
    #[arg(long, default_value_t = 1000)]
    pub students: u64,
    /// Number of teachers.
    #[arg(long, default_value_t = 10)]
    pub teachers: u64,
    /// Messages each teacher sends per chat.
    #[arg(long, default_value_t = 50)]
    pub messages: u32,
    /// Ids are id-start+1 ..= id-start+n, for teachers and students alike.
    #[arg(long, default_value_t = 0)]
    pub id_start: u64,
    /// Framing: 1 (JSON objects, the 2015 client) or 2 (JSON arrays, phoenix.js ≥ 1.7).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub vsn: u8,
    /// New connections per second (0 = no limit).
    #[arg(long, default_value_t = 0.0)]
    pub connect_rate: f64,
    /// Bound on the whole run, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
    /// Open N idle users (presence join + heartbeats only), hold them until Ctrl-C or
    /// --timeout-s, and report how many were open.
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// Print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Teachers' claim:student period, in milliseconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub claim_interval_ms: u64,
    /// Runtime threads (0 = one per core). On a machine shared with the server,
    /// 1 leaves the other cores to it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Connect every user with an HS256 token signed with this secret (the server's
    /// --token-secret): sub = its id, role student/teacher, valid for an hour.
    #[arg(long)]
    pub token_secret: Option<String>,
    /// A user whose connection drops connects again (to the next --url) with a token
    /// for the same sub and resumes where it was (PROTOCOL 6.3). Needs --token-secret.
    #[arg(long, requires = "token_secret")]
    pub reconnect: bool,
    /// Fraction (0..1) of students and of teachers that drop their connection once,
    /// abruptly, at a random point of their run, and reconnect 0.1-2 s later. Needs
    /// --reconnect.
    #[arg(long, default_value_t = 0.0, requires = "reconnect")]
    pub drop_rate: f64,
    /// The server's grace window (its --reconnect-grace-s): a user back later than
    /// this after its drop is not judged.
    #[arg(long, default_value_t = 60)]
    pub reconnect_grace_s: u64,
    /// Seed of the random drop plan and pauses (default: a random seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// N more teachers (ids after the students') that join presence:teachers with
    /// "waitingList": true, never claim, and count the queue:waiting pushes they get
    /// (frames and bytes per second); more than the server's bound (one after the
    /// join, then one per 250 ms) is a violation.
    #[arg(long, default_value_t = 0)]
    pub waiting_watchers: u64,
    /// Students send a question with student:ready (shown in the waiting list).
    #[arg(long)]
    pub question: bool,
}

impl Args {
    pub fn into_config(self, progress: bool) -> anyhow::Result<Config> {
        anyhow::ensure!(
            self.connect_rate.is_finite() && self.connect_rate >= 0.0,
            "--connect-rate must be a number >= 0"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.drop_rate),
            "--drop-rate must be between 0 and 1"
        );
        Ok(Config {
            urls: self.url,
            students: self.students,
            teachers: self.teachers,
            messages: self.messages,
            id_start: self.id_start,
            framing: if self.vsn == 2 {
                Framing::V2
            } else {
                Framing::V1
            },
            connect_rate: self.connect_rate,
            timeout: Duration::from_secs(self.timeout_s),
            hold: self.hold,
            claim_interval: Duration::from_millis(self.claim_interval_ms),
            progress,
            token_secret: self.token_secret,
            reconnect: self.reconnect,
            drop_rate: self.drop_rate,
            reconnect_grace: Duration::from_secs(self.reconnect_grace_s),
            seed: self.seed,
            waiting_watchers: self.waiting_watchers,
            question: self.question,
            ..Config::default()
        })
    }
}
