//! load-client: the bundled load generator of tutor-queue.
//!
//! It simulates students and teachers exactly as the 2015 Phoenix load client
//! (`seejee/node-chat-client`, `--mode elixir`) does, one WebSocket and one tokio task
//! per user, measures throughput and latency, and checks everything it sees against
//! the contract (docs/PROTOCOL.md), counting violations.
//!
//! Modules, each owning one thing:
//!
//! * [`codec`]: its own V1/V2 Phoenix frame codec and payload shapes;
//! * [`conn`]: one user's WebSocket (endpoint rules, refs, join refs);
//! * [`token`]: the tokens users connect with under `--token-secret`;
//! * [`resume`]: `--reconnect` and `--drop-rate`: who drops when, and what a chat
//!   side does on its return (PROTOCOL 6.3);
//! * [`student`], [`teacher`], [`hold`]: the simulated users;
//! * [`watcher`]: `--waiting-watchers`, teachers who only watch the waiting list
//!   (PROTOCOL 6.4), and the arithmetic of their figures;
//! * [`checks`]: the violation checker, pure state machines fed with observed events;
//! * [`stats`]: live counters (atomics), latency histograms, the [`Report`];
//! * this file: [`Config`] and [`run`], which spawns the users, stops the run, and
//!   merges the results.
//!
//! Nothing on the message path takes a lock: counters are atomics, each teacher keeps
//! its own RTT histogram (merged when it ends), and run-wide observations go over one
//! unbounded channel to one collector task that owns the [`checks::Checker`].

pub mod checks;
pub mod codec;
pub mod conn;
mod hold;
pub mod resume;
pub mod stats;
mod student;
mod teacher;
pub mod token;
pub mod watcher;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use checks::{Checker, Event, Micros, Violation};
pub use codec::Framing;
use conn::Conn;
pub use stats::Report;
use stats::{histogram, Counters, ErrorKind, Latencies};

/// Everything a run needs; `Default` is the command line's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server URLs (`--url`, one or more): each connection takes the next one, round
    /// robin; a reconnecting user takes the one after its last.
    pub urls: Vec<String>,
    pub students: u64,
    pub teachers: u64,
    /// Messages the teacher sends per chat (client A's `--messageCount`).
    pub messages: u32,
    /// Teacher and student ids are `id_start + 1 ..= id_start + n` (client A's rule:
    /// teacher 1 and student 1 both exist).
    pub id_start: u64,
    pub framing: Framing,
    /// New connections per second; 0 = no limit.
    pub connect_rate: f64,
    /// Bound on the whole run.
    pub timeout: Duration,
    /// `--hold N`: open N idle users instead of running chats.
    pub hold: u64,
    pub claim_interval: Duration,
    pub heartbeat_interval: Duration,
    /// How long teachers may take to stop by themselves after the last student.
    pub teacher_grace: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// `--token-secret`: every user connects with a token signed with it
    /// (`token` query parameter); None: tokenless, as the 2015 client.
    pub token_secret: Option<String>,
    /// `--reconnect`: a user whose connection drops connects again with a token for
    /// the same `sub` and resumes (PROTOCOL 6.3). Needs `token_secret`.
    pub reconnect: bool,
    /// `--drop-rate`: the fraction of users (of each role) that drop their connection
    /// once, abruptly, at a random point of their script. Needs `reconnect`.
    pub drop_rate: f64,
    /// `--reconnect-grace-s`: the server's grace window. A user back later than this
    /// after its drop is not judged (the server rightly forgot it).
    pub reconnect_grace: Duration,
    /// Seed of the drop plan and pauses (`--seed`); None: a random one.
    pub seed: Option<u64>,
    /// `--waiting-watchers`: extra teachers that join `presence:teachers` with
    /// `"waitingList": true`, never claim, and count the `queue:waiting` pushes.
    /// Their ids follow the teachers' and students'.
    pub waiting_watchers: u64,
    /// `--question`: students send a question with `student:ready`.
    pub question: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            urls: vec!["ws://127.0.0.1:4000/ws".into()],
            students: 1000,
            teachers: 10,
            messages: 50,
            id_start: 0,
            framing: Framing::V1,
            connect_rate: 0.0,
            timeout: Duration::from_secs(300),
            hold: 0,
            claim_interval: Duration::from_millis(10),
            heartbeat_interval: Duration::from_secs(30),
            teacher_grace: Duration::from_secs(5),
            progress: false,
            token_secret: None,
            reconnect: false,
            drop_rate: 0.0,
            reconnect_grace: Duration::from_secs(60),
            seed: None,
            waiting_watchers: 0,
            question: false,
        }
    }
}

/// Most TCP/WebSocket handshakes in flight at once (keeps a connect storm from
/// overflowing the server's listen backlog; it does not limit open connections).
const MAX_CONNECTING: usize = 512;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_ATTEMPTS: u32 = 3;
/// Most stuck students the report describes.
const STUCK_SHOWN: usize = 10;

/// State shared by every task of a run: read-only config, atomics, the event channel.
pub(crate) struct Shared {
    pub config: Config,
    /// The endpoints of `config.urls`.
    urls: Vec<String>,
    next_url: AtomicUsize,
    start: Instant,
    pub counters: Arc<Counters>,
    events: mpsc::UnboundedSender<Event>,
    stop: watch::Receiver<bool>,
    connecting: Semaphore,
    minter: Option<token::Minter>,
    drops: resume::DropPlan,
    /// Seed of the drop plan and of every user's pauses.
    seed: u64,
}

impl Shared {
    pub fn micros(&self, t: Instant) -> Micros {
        t.saturating_duration_since(self.start).as_micros() as u64
    }

    pub fn now_us(&self) -> Micros {
        self.micros(Instant::now())
    }

    pub fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    pub fn violation(&self, kind: Violation) {
        self.emit(Event::Seen(kind));
    }

    pub fn error(&self, kind: ErrorKind) {
        self.counters.error(kind);
    }

    /// The chat object of a `new:chat` frame read just now, and when it was read; a
    /// malformed one is counted as an error.
    pub(crate) fn new_chat(
        &self,
        frame: &codec::Frame<'_>,
    ) -> Option<(codec::ChatObject, Instant)> {
        let now = Instant::now();
        match codec::parse(frame.payload) {
            Ok(chat) => Some((chat, now)),
            Err(_) => {
                self.error(ErrorKind::MalformedFrame);
                None
            }
        }
    }

    /// Takes the push a `phx_reply` answers (matched by ref) out of `pending`.
    /// A reply that answers nothing pending is counted as an error: an
    /// unexpected frame, or an error reply to a push that has no reply on
    /// success (such as a relayed message).
    pub(crate) fn take_pending<P>(
        &self,
        pending: &mut HashMap<u64, P>,
        frame: &codec::Frame<'_>,
        reply: &codec::Reply<'_>,
    ) -> Option<P> {
        let taken = frame
            .msg_ref
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .and_then(|r| pending.remove(&r));
        if taken.is_none() {
            self.error(if reply.is_ok() {
                ErrorKind::UnexpectedFrame
            } else {
                ErrorKind::ErrorReply
            });
        }
        taken
    }

    /// Resolves once the run is being stopped.
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Connects user `id` of `role` (a few attempts), counting a final failure as an
    /// error. With `--token-secret`, with a token for that user.
    pub async fn connect(&self, role: token::Role, id: u64) -> Option<Conn> {
        let first = self.next_url.fetch_add(1, Relaxed);
        self.connect_to(role, id, first).await
    }

    /// [`Shared::connect`] to `--url` number `index` (modulo their count).
    pub async fn connect_to(&self, role: token::Role, id: u64, index: usize) -> Option<Conn> {
        let endpoint = &self.urls[index % self.urls.len()];
        let url = match &self.minter {
            None => std::borrow::Cow::Borrowed(endpoint.as_str()),
            Some(minter) => match minter.mint(role, id) {
                Ok(token) => std::borrow::Cow::Owned(token::with_token(endpoint, &token)),
                Err(_) => {
                    self.error(ErrorKind::Connect);
                    return None;
                }
            },
        };
        for attempt in 1..=CONNECT_ATTEMPTS {
            let result = {
                let _permit = self.connecting.acquire().await.ok()?;
                Conn::connect(&url, self.config.framing, CONNECT_TIMEOUT).await
            };
            match result {
                Ok(mut conn) => {
                    conn.url_index = index;
                    return Some(conn);
                }
                Err(_) if attempt < CONNECT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                Err(_) => {}
            }
        }
        self.error(ErrorKind::Connect);
        None
    }

    /// User `id`'s own random numbers (its pauses), from the run's seed.
    pub fn rng(&self, id: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(self.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// A student finished or gave up.
    pub fn student_done(&self) {
        let done = self.counters.students_done.fetch_add(1, Relaxed) + 1;
        if done == self.config.students {
            self.counters
                .last_student_done_us
                .store(self.now_us(), Relaxed);
        }
    }
}

/// What a user task hands back when it ends.
pub(crate) enum UserResult {
    Teacher {
        rtt: hdrhistogram::Histogram<u64>,
        stopped_by_itself: bool,
        /// Its chats not over when the run stopped.
        stuck: Option<String>,
    },
    Student {
        queue_wait_us: Option<u64>,
        /// Where it stood when the run stopped without it being done.
        stuck: Option<String>,
    },
    Hold,
    Watcher(watcher::WatcherTally),
}

/// Runs the load test described by `config` until it completes or times out.
pub async fn run(config: Config) -> anyhow::Result<Report> {
    run_until(config, std::future::pending()).await
}

/// Like [`run`], but also stops early when `interrupt` resolves (Ctrl-C).
pub async fn run_until(
    config: Config,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<Report> {
    anyhow::ensure!(!config.urls.is_empty(), "no --url");
    let urls = config
        .urls
        .iter()
        .map(|u| conn::endpoint(u, config.framing))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let url = urls[0].clone();
    anyhow::ensure!(
        !config.reconnect || config.token_secret.is_some(),
        "--reconnect needs --token-secret (only token users keep their place)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&config.drop_rate),
        "--drop-rate must be between 0 and 1"
    );
    anyhow::ensure!(
        config.drop_rate == 0.0 || config.reconnect,
        "--drop-rate needs --reconnect"
    );
    anyhow::ensure!(
        config.hold == 0 || config.waiting_watchers == 0,
        "--waiting-watchers does not go with --hold"
    );
    let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let drops = if config.drop_rate > 0.0 && config.hold == 0 {
        let ids = |n: u64| (config.id_start + 1..=config.id_start + n).collect::<Vec<_>>();
        resume::DropPlan::draw(
            &mut rng,
            config.drop_rate,
            &ids(config.students),
            &ids(config.teachers),
            config.messages,
        )
    } else {
        resume::DropPlan::default()
    };
    let minter = config
        .token_secret
        .as_deref()
        .map(token::Minter::new)
        .transpose()?;
    let counters = Arc::new(Counters::default());
    counters.students_pending.store(config.students, Relaxed);
    counters.teachers_running.store(config.teachers, Relaxed);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        config: config.clone(),
        urls: urls.clone(),
        next_url: AtomicUsize::new(0),
        start,
        counters: counters.clone(),
        events: events_tx,
        stop: stop_rx,
        connecting: Semaphore::new(MAX_CONNECTING),
        minter,
        drops,
        seed,
    });
    let collector = tokio::spawn(collect(events_rx, counters.clone()));
    let progress = config
        .progress
        .then(|| tokio::spawn(progress(shared.clone())));
    let spawner = tokio::spawn(spawn_users(shared.clone()));

    // Wait for the end: all students done (and teachers stopped, or their grace over),
    // all teachers stopped (teachers-only run), the timeout, or an interrupt.
    let deadline = tokio::time::sleep(config.timeout);
    tokio::pin!(deadline);
    tokio::pin!(interrupt);
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut students_done_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut interrupted = false;
    let mut announced = false;
    loop {
        tokio::select! {
            () = &mut deadline => { timed_out = true; break; }
            () = &mut interrupt => { interrupted = true; break; }
            _ = poll.tick() => {
                if config.hold > 0 {
                    if !announced && counters.held_open.load(Relaxed) >= config.hold as i64 {
                        announced = true;
                        eprintln!(
                            "load-client: holding {n}/{n} idle users open after {:.1} s; Ctrl-C or --timeout-s ends it",
                            start.elapsed().as_secs_f64(),
                            n = config.hold
                        );
                    }
                    continue;
                }
                let teachers_left = counters.teachers_running.load(Relaxed);
                if config.students == 0 {
                    if teachers_left == 0 {
                        break;
                    }
                    continue;
                }
                if counters.students_done.load(Relaxed) >= config.students {
                    let at = *students_done_at.get_or_insert_with(Instant::now);
                    if teachers_left == 0 || at.elapsed() >= config.teacher_grace {
                        break;
                    }
                }
            }
        }
    }
    let stopped_at = start.elapsed();
    let held_open = counters.held_open.load(Relaxed).max(0) as u64;
    let _ = stop_tx.send(true);

    let mut rtt = histogram();
    let mut queue_wait = histogram();
    let mut teachers_stopped = 0;
    let seed = shared.seed;
    let mut stuck = Vec::new();
    let mut stuck_teachers = Vec::new();
    let mut watchers = Vec::new();
    let handles = spawner.await.unwrap_or_default();
    for handle in handles {
        match handle.await {
            Ok(UserResult::Teacher {
                rtt: h,
                stopped_by_itself,
                stuck: t,
            }) => {
                let _ = rtt.add(&h);
                teachers_stopped += u64::from(stopped_by_itself);
                if let Some(t) = t.filter(|_| timed_out) {
                    stuck_teachers.push(t);
                }
            }
            Ok(UserResult::Student {
                queue_wait_us,
                stuck: s,
            }) => {
                if let Some(us) = queue_wait_us {
                    queue_wait.saturating_record(us.max(1));
                }
                if let Some(s) = s {
                    stuck.push(s);
                }
            }
            Ok(UserResult::Hold) => {}
            Ok(UserResult::Watcher(tally)) => watchers.push(tally),
            Err(_) => counters.error(ErrorKind::TaskFailed),
        }
    }
    if let Some(p) = progress {
        let _ = p.await;
    }
    drop(shared); // the last event sender: the collector ends
    let violations = collector.await.unwrap_or_default().finish();

    let students_finished = counters.students_finished.load(Relaxed);
    let all_done = config.students > 0 && counters.students_done.load(Relaxed) >= config.students;
    let wall = if all_done {
        Duration::from_micros(counters.last_student_done_us.load(Relaxed))
    } else {
        stopped_at
    };
    let wall_s = wall.as_secs_f64();
    let relayed = counters.relayed.load(Relaxed);
    let claims = counters.claims.load(Relaxed);
    let claim_replies = counters.claim_replies.load(Relaxed);
    let per_s = |n: u64| {
        if wall_s > 0.0 {
            (n as f64 / wall_s).round()
        } else {
            0.0
        }
    };
    let mut report = Report {
        mode: if config.hold > 0 { "hold" } else { "run" },
        url,
        urls,
        tokens: config.token_secret.is_some(),
        vsn: match config.framing {
            Framing::V1 => 1,
            Framing::V2 => 2,
        },
        students: if config.hold > 0 { 0 } else { config.students },
        students_finished,
        teachers: if config.hold > 0 { 0 } else { config.teachers },
        teachers_stopped,
        messages: config.messages,
        chats_completed: counters.chats_completed.load(Relaxed),
        claim_replies,
        claims,
        relayed_messages: relayed,
        wall_s: (wall_s * 1000.0).round() / 1000.0,
        msgs_per_s: per_s(relayed),
        claims_per_s: per_s(claims),
        claim_replies_per_s: per_s(claim_replies),
        rtt_samples: 0,
        rtt_p50_us: 0,
        rtt_p90_us: 0,
        rtt_p99_us: 0,
        rtt_p999_us: 0,
        rtt_max_us: 0,
        queue_wait_p50_ms: 0.0,
        queue_wait_p99_ms: 0.0,
        queue_wait_max_ms: 0.0,
        errors: counters.errors(),
        errors_by_kind: counters.errors_by_kind(),
        violations: 0,
        violations_by_kind: Default::default(),
        // A hold ends at the timeout by design; a run that finished all its students
        // while waiting for teachers to stop did not time out.
        timed_out: timed_out && config.hold == 0 && !all_done,
        interrupted,
        hold: config.hold,
        held_open,
        reconnect: config.reconnect,
        drop_rate: config.drop_rate,
        seed,
        stuck_students: stuck.len() as u64,
        stuck: stuck
            .into_iter()
            .take(STUCK_SHOWN)
            .chain(stuck_teachers.into_iter().take(STUCK_SHOWN))
            .collect(),
        drops: counters.drops.load(Relaxed),
        resumes: counters.resumes.load(Relaxed),
        places_kept: counters.places_kept.load(Relaxed),
        chats_resumed: counters.chats_resumed.load(Relaxed),
        held_delivered: counters.held_delivered.load(Relaxed),
        recovered_in_transit: counters.recovered_in_transit.load(Relaxed),
        resent: counters.resent.load(Relaxed),
        away_notices: counters.away_notices.load(Relaxed),
        unavailable_retries: counters.unavailable_retries.load(Relaxed),
        waiting_list: (config.waiting_watchers > 0)
            .then(|| watcher::WaitingListReport::new(config.waiting_watchers, &watchers)),
    };
    report.fill_latencies(&Latencies {
        rtt_us: rtt,
        queue_wait_us: queue_wait,
    });
    report.fill_violations(&violations);
    Ok(report)
}

/// Waiting-list watchers (`--waiting-watchers`) and teachers first, then (100 ms
/// later, as client A does) students; or the idle users of `--hold`. Paced by
/// `--connect-rate`. Returns every task's handle.
async fn spawn_users(shared: Arc<Shared>) -> Vec<JoinHandle<UserResult>> {
    let c = &shared.config;
    let mut handles = Vec::new();
    // User i connects at (pause-adjusted) start + i / rate; a slot already past is
    // taken at once, so the average rate holds even above the timer's 1 ms grain.
    let period = (c.connect_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / c.connect_rate));
    let mut next_slot = tokio::time::Instant::now();
    let ids = |n: u64| c.id_start + 1..=c.id_start + n;
    let mut users: Vec<(u8, u64)> = Vec::new();
    if c.hold > 0 {
        users.extend(ids(c.hold).map(|id| (2, id)));
    } else {
        // Watchers' ids follow everyone else's (id-start + teachers + students + 1 ..).
        let first_watcher = c.id_start + c.teachers + c.students;
        users.extend((1..=c.waiting_watchers).map(|i| (3, first_watcher + i)));
        users.extend(ids(c.teachers).map(|id| (0, id)));
        users.extend(ids(c.students).map(|id| (1, id)));
    }
    let mut first_student = true;
    for (kind, id) in users {
        if *shared.stop.borrow() {
            break;
        }
        if kind == 1 && first_student {
            first_student = false;
            if c.teachers > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                next_slot = next_slot.max(tokio::time::Instant::now());
            }
        }
        if let Some(period) = period {
            tokio::time::sleep_until(next_slot).await;
            next_slot += period;
        }
        let s = shared.clone();
        handles.push(match kind {
            0 => tokio::spawn(teacher::run(s, id)),
            1 => tokio::spawn(student::run(s, id)),
            3 => tokio::spawn(watcher::run(s, id)),
            _ => tokio::spawn(hold::run(s, id)),
        });
    }
    handles
}

/// The one task that owns the checker.
async fn collect(mut events: mpsc::UnboundedReceiver<Event>, counters: Arc<Counters>) -> Checker {
    let mut checker = Checker::new();
    while let Some(event) = events.recv().await {
        let new = checker.observe(event);
        if new > 0 {
            counters.violations_live.fetch_add(new, Relaxed);
        }
    }
    checker
}

/// The progress bar: students finished / total, chats active, relayed msg/s.
async fn progress(shared: Arc<Shared>) {
    let c = &shared.config;
    let counters = &shared.counters;
    let hold = c.hold > 0;
    let bar = ProgressBar::with_draw_target(
        Some(if hold { c.hold } else { c.students }),
        ProgressDrawTarget::stderr(),
    );
    let template = if hold {
        "{elapsed_precise} [{bar:30}] {pos}/{len} idle users open {msg}"
    } else {
        "{elapsed_precise} [{bar:30}] {pos}/{len} students finished | {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.stopped() => break,
        }
        let errors = counters.errors();
        let violations = counters.violations_live.load(Relaxed);
        if hold {
            bar.set_position(counters.held_open.load(Relaxed).max(0) as u64);
            bar.set_message(format!("| errors {errors}"));
            continue;
        }
        let relayed = counters.relayed.load(Relaxed);
        let now = Instant::now();
        let dt = now.duration_since(last.0).as_secs_f64();
        let rate = if dt > 0.0 {
            (relayed - last.1) as f64 / dt
        } else {
            0.0
        };
        last = (now, relayed);
        bar.set_position(counters.students_finished.load(Relaxed));
        bar.set_message(format!(
            "{} chats active | {:.0} msg/s | errors {} | violations {}",
            counters.chats_active.load(Relaxed).max(0),
            rate,
            errors,
            violations
        ));
    }
    bar.finish_and_clear();
}
