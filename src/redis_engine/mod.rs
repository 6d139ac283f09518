//! The shared engine: the steps of `domain::steps` kept in Redis, so several nodes
//! serve one queue (issue 13, `../shared/SCALE-OUT.md`).
//!
//! Owns the Redis side of the tutoring state and one Lua script per step (`lua/`):
//! each step (join, ready, claim = slot + dequeue + create, enter, terminate, leave,
//! away, the end of an away window, discard) runs atomically inside Redis, in one
//! round trip, with no lock and no read-modify-write across round trips. A script
//! answers what the step did and the `user:status` counts right after it, from the
//! same atomic execution.
//!
//! [`RedisTutoring`] answers exactly what [`crate::domain::Tutoring`] answers for the
//! same steps, value for value: the differential tests (`tests/redis_engine.rs`) run
//! both on the same random steps and compare every answer, so the invariant tests of the
//! in-memory steps hold here too. What the nodes tell each other is `crate::cluster`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tokio::sync::OnceCell;

use crate::cluster::{ChatHome, NodeId};
use crate::domain::office_hours::{QueueState, Ticket, Waiting, WaitingList};
use crate::domain::{
    Abandoned, Arrival, AwaySpell, ChatId, Claimed, Ended, EnterOutcome, JoinCheck, ReadyOutcome,
    Role, StatusNews, StatusSnapshot, Stepped, StudentCounts, StudentKey, StudentReturn,
    StudentState, TeacherKey, UserId, UserKey, Vanished, WaitingQueue,
};

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered something no script of this version writes.
    #[error("unexpected data in redis: {0}")]
    Corrupt(String),
    /// Redis lost the deployment's state (restarted empty, flushed): its epoch is
    /// not the one this node started from. The node must reset, not act on what
    /// it believes.
    #[error("the shared state in redis was reset")]
    Reset,
    /// Another node declared this one dead (it missed its heartbeat deadline)
    /// and handled its users: it may not write again.
    #[error("this node was declared dead by the others and is fenced")]
    Fenced,
}

/// What a tick found: users of a dead node, handled here as if their
/// channels had gone with their connection.
#[derive(Debug)]
pub enum Reaped {
    TeacherAway {
        teacher: TeacherKey,
        spell: AwaySpell,
        chats: Vec<ChatId>,
    },
    TeacherGone {
        teacher: TeacherKey,
        abandoned: Vec<Abandoned>,
        fewer_teachers: bool,
    },
    StudentAway {
        student: StudentKey,
        spell: AwaySpell,
        state: StudentState,
    },
    StudentGone {
        student: StudentKey,
        vanished: Vanished,
    },
}

/// An away window that ended (whichever node ran it): the user vanishes unless
/// it is back or away again in a later spell.
#[derive(Debug)]
pub enum WindowOver {
    Teacher(TeacherKey, AwaySpell),
    Student(StudentKey, AwaySpell),
}

/// One tick: what was reaped, the node declared dead now (if any), the away
/// windows that ended, and the status after it.
#[derive(Debug)]
pub struct Tick {
    pub reaped: Vec<Reaped>,
    pub declared_dead: Option<NodeId>,
    pub windows_over: Vec<WindowOver>,
    pub status: StatusSnapshot,
}

type Step<T> = Result<Stepped<T>, EngineError>;

fn corrupt(what: &str, value: &Value) -> EngineError {
    EngineError::Corrupt(format!("{what}: {value:?}"))
}

/// The scripts, each the shared prelude and its own body.
struct Scripts {
    teacher_join: Script,
    teacher_away: Script,
    teacher_leave: Script,
    student_join: Script,
    student_away: Script,
    student_leave: Script,
    ready: Script,
    claim: Script,
    enter: Script,
    terminate: Script,
    discard: Script,
    authorize: Script,
    chats_of: Script,
    standing: Script,
    sides: Script,
    queue: Script,
    waiting: Script,
    rate: Script,
    queue_state: Script,
    tick: Script,
    home: Script,
}

macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $name, ".lua"))
        ))
    };
}

impl Scripts {
    fn load() -> Scripts {
        Scripts {
            teacher_join: script!("teacher_join"),
            teacher_away: script!("teacher_away"),
            teacher_leave: script!("teacher_leave"),
            student_join: script!("student_join"),
            student_away: script!("student_away"),
            student_leave: script!("student_leave"),
            ready: script!("ready"),
            claim: script!("claim"),
            enter: script!("enter"),
            terminate: script!("terminate"),
            discard: script!("discard"),
            authorize: script!("authorize"),
            chats_of: script!("chats_of"),
            standing: script!("standing"),
            sides: script!("sides"),
            queue: script!("queue"),
            waiting: script!("waiting"),
            rate: script!("rate"),
            queue_state: script!("queue_state"),
            tick: script!("tick"),
            home: script!("home"),
        }
    }
}

/// How long a step waits for Redis (to connect, or to answer) before it fails:
/// clients get an error, not a hang.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether Redis answered the last step, for `/healthz`. Shared with the hub.
#[derive(Debug, Default)]
pub struct Health {
    failure: std::sync::Mutex<Option<String>>,
    /// Declared dead by the other nodes: for good (see [`EngineError::Fenced`]).
    fenced: std::sync::atomic::AtomicBool,
}

impl Health {
    /// Why the last step failed, while steps fail. None when healthy.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether the other nodes declared this one dead: it must stop (a fresh
    /// start is a new node).
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }

    /// Notes a step's outcome; logs once per change of state.
    fn note(&self, outcome: Result<(), &EngineError>) {
        if let Err(EngineError::Fenced) = outcome {
            if !self.fenced.swap(true, Ordering::Relaxed) {
                tracing::error!("the other nodes declared this node dead (it missed its heartbeat deadline) and handled its users: it is fenced and writes nothing more");
            }
        }
        let mut failure = self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match (outcome, failure.is_some()) {
            (Ok(()), true) => {
                tracing::info!("redis answers again");
                *failure = None;
            }
            (Err(error), was_failing) => {
                if !was_failing {
                    tracing::error!(%error, "redis does not answer: steps are refused with `unavailable`");
                }
                *failure = Some(error.to_string());
            }
            (Ok(()), false) => {}
        }
    }
}

/// The steps over one deployment's keys in Redis.
pub struct RedisTutoring {
    health: Arc<Health>,
    client: redis::Client,
    /// Made at the first step (and remade by the manager after a failure).
    conn: OnceCell<ConnectionManager>,
    /// The deployment's epoch this node works in: read (or set, by the first
    /// node) at the first step, forgotten when Redis says it changed.
    epoch: std::sync::Mutex<Option<String>>,
    /// `tq:{<deployment>}`: every key of the deployment, in one hash slot.
    prefix: String,
    scripts: Scripts,
    /// This node: chats it claims are homed here.
    node: NodeId,
    /// See [`RedisTutoring::version`].
    version: AtomicU64,
    /// The grace window (PROTOCOL 6.3), as the ms the away scripts keep.
    grace_ms: String,
}

// ----- how users, chats and states are written in Redis -------------------

/// `u:<id>` for a tokenless user, `s:<id>` for a signed-in one.
fn user_field(user: &UserKey) -> String {
    let namespace = if user.is_signed() { 's' } else { 'u' };
    format!("{namespace}:{}", user.as_str())
}

fn parse_user(field: &str) -> Result<UserKey, EngineError> {
    let (signed, text) = match field.split_at_checked(2) {
        Some(("s:", text)) => (true, text),
        Some(("u:", text)) => (false, text),
        _ => return Err(EngineError::Corrupt(format!("user {field:?}"))),
    };
    UserKey::new(text)
        .map(|key| key.in_namespace(signed))
        .ok_or_else(|| EngineError::Corrupt(format!("user {field:?}")))
}

fn parse_chat(text: &str) -> Result<ChatId, EngineError> {
    ChatId::parse(text).ok_or_else(|| EngineError::Corrupt(format!("chat id {text:?}")))
}

/// `P`, `W|<arrival>`, `C|<arrival>|<chat>`, `F`.
fn parse_state(text: &str) -> Result<StudentState, EngineError> {
    let bad = || EngineError::Corrupt(format!("student state {text:?}"));
    let arrival = |n: &str| n.parse().map(Arrival::from_sequence).map_err(|_| bad());
    let mut parts = text.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("P"), None, None) => Ok(StudentState::Present),
        (Some("F"), None, None) => Ok(StudentState::Finished),
        (Some("W"), Some(n), None) => Ok(StudentState::Waiting(arrival(n)?)),
        (Some("C"), Some(n), Some(chat)) => Ok(StudentState::Chatting {
            chat: parse_chat(chat)?,
            arrival: arrival(n)?,
        }),
        _ => Err(bad()),
    }
}

fn role_code(role: Role) -> &'static str {
    match role {
        Role::Teacher => "t",
        Role::Student => "s",
    }
}

// ----- reading script answers ----------------------------------------------

fn text(value: &Value) -> Result<String, EngineError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|_| corrupt("text", value))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        _ => Err(corrupt("text", value)),
    }
}

fn int(value: &Value) -> Result<i64, EngineError> {
    match value {
        Value::Int(n) => Ok(*n),
        _ => Err(corrupt("integer", value)),
    }
}

/// A ticket as the scripts keep it (JSON).
fn parse_ticket(value: &Value) -> Result<Ticket, EngineError> {
    serde_json::from_str(&text(value)?).map_err(|_| corrupt("ticket", value))
}

/// {open 1|0, message or nil, changed 1|0}
fn parse_queue_state(value: &Value) -> Result<(QueueState, bool), EngineError> {
    let [open, message, changed] = items(value)? else {
        return Err(corrupt("queue state", value));
    };
    let state = QueueState {
        open: int(open)? == 1,
        message: optional(message).map(text).transpose()?,
    };
    Ok((state, int(changed)? == 1))
}

fn items(value: &Value) -> Result<&[Value], EngineError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(corrupt("array", value)),
    }
}

/// `Nil` for a script's `false`.
fn optional(value: &Value) -> Option<&Value> {
    match value {
        Value::Nil => None,
        other => Some(other),
    }
}

fn count(value: &Value) -> Result<usize, EngineError> {
    usize::try_from(int(value)?).map_err(|_| corrupt("count", value))
}

/// The `{teachers, waiting, chatting, finished, version}` every changing script
/// ends with.
fn parse_status(value: &Value) -> Result<(StatusSnapshot, u64), EngineError> {
    let [teachers, waiting, chatting, finished, version] = items(value)? else {
        return Err(corrupt("status", value));
    };
    let snapshot = StatusSnapshot {
        teachers: count(teachers)?,
        students: StudentCounts {
            waiting: count(waiting)?,
            chatting: count(chatting)?,
            finished: count(finished)?,
        },
    };
    let version = u64::try_from(int(version)?).map_err(|_| corrupt("version", value))?;
    Ok((snapshot, version))
}

fn stepped<T>(outcome: T, status: StatusSnapshot, news: StatusNews) -> Stepped<T> {
    Stepped {
        outcome,
        status,
        news,
    }
}

fn spell(value: &Value) -> Result<AwaySpell, EngineError> {
    u64::try_from(int(value)?)
        .map(AwaySpell::from_number)
        .map_err(|_| corrupt("spell", value))
}

/// A chat this node adopted, with the count its dead home last wrote.
fn adopted(relayed: &str, reply: &Value) -> Result<ChatHome, EngineError> {
    let relayed = relayed.parse().map_err(|_| corrupt("adopted", reply))?;
    Ok(ChatHome::Adopted { relayed })
}

/// `{{cid, requeued student or ''}...}`: a vanished teacher's chats.
fn parse_abandoned(value: &Value) -> Result<Vec<Abandoned>, EngineError> {
    let mut abandoned = Vec::new();
    for pair in items(value)? {
        let [chat, requeued] = items(pair)? else {
            return Err(corrupt("abandoned chat", pair));
        };
        let requeued = match text(requeued)?.as_str() {
            "" => None,
            student => Some(StudentKey(parse_user(student)?)),
        };
        abandoned.push(Abandoned {
            chat: parse_chat(&text(chat)?)?,
            requeued,
        });
    }
    Ok(abandoned)
}

fn chat_list(value: &Value) -> Result<Vec<ChatId>, EngineError> {
    text(value)?
        .split(',')
        .filter(|c| !c.is_empty())
        .map(parse_chat)
        .collect()
}

impl RedisTutoring {
    /// The steps over the keys of `deployment` on the Redis at `url`
    /// (`redis://host:port/db`, or `redis+unix:///path`). Only checks the URL: the
    /// connection is made at the first step.
    pub fn new(url: &str, deployment: &str) -> Result<RedisTutoring, EngineError> {
        Ok(RedisTutoring {
            client: redis::Client::open(url)?,
            health: Arc::default(),
            conn: OnceCell::new(),
            epoch: std::sync::Mutex::new(None),
            prefix: format!("tq:{{{deployment}}}"),
            scripts: Scripts::load(),
            node: NodeId::fresh(),
            version: AtomicU64::new(0),
            grace_ms: "60000".to_owned(),
        })
    }

    /// With `grace` as the away window its scripts keep (60 s unless set).
    pub fn with_grace(mut self, grace: Duration) -> RedisTutoring {
        self.grace_ms = grace.as_millis().to_string();
        self
    }

    /// Connects now, to fail a start early when Redis cannot be reached.
    pub async fn connect(&self) -> Result<(), EngineError> {
        self.connection().await.map(|_| ())
    }

    async fn connection(&self) -> Result<ConnectionManager, EngineError> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(2);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    /// Whether Redis answers, shared with whoever reports health.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    fn lock_epoch(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.epoch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The epoch this node works in: the deployment's, set now if this is the
    /// first node to find none.
    async fn epoch(&self, conn: &mut ConnectionManager) -> Result<String, EngineError> {
        if let Some(epoch) = self.lock_epoch().clone() {
            return Ok(epoch);
        }
        let key = format!("{}:epoch", self.prefix);
        let fresh = format!("{:016x}", rand::random::<u64>());
        let (epoch,): (String,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(&fresh)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query_async(conn)
            .await?;
        *self.lock_epoch() = Some(epoch.clone());
        Ok(epoch)
    }

    async fn run(&self, script: &Script, args: &[&str]) -> Result<Value, EngineError> {
        let answer = self.run_in_epoch(script, args).await;
        self.health.note(answer.as_ref().map(|_| ()));
        answer
    }

    async fn run_in_epoch(&self, script: &Script, args: &[&str]) -> Result<Value, EngineError> {
        let mut conn = self.connection().await?;
        let epoch = self.epoch(&mut conn).await?;
        let mut invocation = script.key(&self.prefix);
        for arg in args {
            invocation.arg(*arg);
        }
        invocation.arg(self.node.as_str());
        invocation.arg(&epoch);
        match invocation.invoke_async(&mut conn).await {
            Ok(value) => Ok(value),
            Err(error) if error.code() == Some("TQEPOCH") => {
                // Forget it: the next step works in the deployment's new epoch.
                self.lock_epoch().take();
                Err(EngineError::Reset)
            }
            Err(error) if error.code() == Some("TQFENCED") => Err(EngineError::Fenced),
            Err(error) => Err(error.into()),
        }
    }

    /// A script's answer: its fields, then the status (whose version is kept
    /// as [`RedisTutoring::version`]).
    fn answer<'v>(
        &self,
        value: &'v Value,
        fields: usize,
    ) -> Result<(&'v [Value], StatusSnapshot), EngineError> {
        let all = items(value)?;
        if all.len() != fields + 1 {
            return Err(corrupt("answer", value));
        }
        let (status, version) = parse_status(&all[fields])?;
        self.version.store(version, Ordering::Relaxed);
        Ok((&all[..fields], status))
    }

    /// The version of the `user:status` snapshot the last step answered: versions
    /// follow the order in which Redis ran the steps of every node.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// This node, as the deployment knows it (fresh at every start).
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The client, for the connections of the cluster (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// `tq:{<deployment>}`, the prefix of every key and channel.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The waiting queue as it stands, head first (for queue positions).
    pub async fn queue(&self) -> Result<WaitingQueue, EngineError> {
        let reply = self.run(&self.scripts.queue, &[]).await?;
        let mut queue = WaitingQueue::new();
        for pair in items(&reply)?.chunks(2) {
            let [student, arrival] = pair else {
                return Err(corrupt("queue", &reply));
            };
            let arrival = text(arrival)?
                .parse()
                .map(Arrival::from_sequence)
                .map_err(|_| corrupt("arrival", arrival))?;
            queue.requeue(StudentKey(parse_user(&text(student)?)?), arrival);
        }
        Ok(queue)
    }

    // ----- joins ------------------------------------------------------

    /// As [`crate::domain::Tutoring::teacher_present`].
    pub async fn teacher_present(&self, teacher: TeacherKey) -> Step<bool> {
        let reply = self
            .run(&self.scripts.teacher_join, &[&user_field(&teacher.0)])
            .await?;
        let (fields, status) = self.answer(&reply, 2)?;
        let news = StatusNews::teachers_if(int(&fields[1])? == 1);
        Ok(stepped(int(&fields[0])? == 1, status, news))
    }

    /// As [`crate::domain::Tutoring::student_present`].
    pub async fn student_present(&self, student: UserId) -> Step<StudentReturn> {
        let field = user_field(&student.key);
        let reply = self
            .run(&self.scripts.student_join, &[&field, &student.json])
            .await?;
        let (fields, status) = self.answer(&reply, 2)?;
        let back = int(&fields[0])? == 1;
        let state = parse_state(&text(&fields[1])?)?;
        let news = StatusNews::student_joined(back, &state);
        Ok(stepped(StudentReturn { back, state }, status, news))
    }

    /// As [`crate::domain::Tutoring::authorize_join`].
    pub async fn authorize_join(
        &self,
        chat: ChatId,
        user: Option<(Role, UserKey)>,
    ) -> Result<JoinCheck, EngineError> {
        Ok(self.authorize_join_home(chat, user).await?.0)
    }

    /// As [`RedisTutoring::authorize_join`], with the chat's home node when the
    /// join is allowed.
    pub async fn authorize_join_home(
        &self,
        chat: ChatId,
        user: Option<(Role, UserKey)>,
    ) -> Result<(JoinCheck, ChatHome), EngineError> {
        let chat = chat.to_string();
        let (role, user) = match &user {
            Some((role, user)) => (role_code(*role), user_field(user)),
            None => ("", String::new()),
        };
        let reply = self
            .run(&self.scripts.authorize, &[&chat, role, &user])
            .await?;
        match text(&reply)?.as_str() {
            "U" => Ok((JoinCheck::UnknownChat, ChatHome::Here)),
            "X" => Ok((JoinCheck::Unauthorized, ChatHome::Here)),
            "F" => Ok((JoinCheck::ChatFinished, ChatHome::Here)),
            allowed => match (allowed.strip_prefix("A|"), allowed.strip_prefix("H|")) {
                (Some(home), _) => Ok((
                    JoinCheck::Allowed,
                    match NodeId::parse(home) {
                        Some(home) if home != self.node => ChatHome::At(home),
                        _ => ChatHome::Here,
                    },
                )),
                (_, Some(relayed)) => Ok((JoinCheck::Allowed, adopted(relayed, &reply)?)),
                _ => Err(corrupt("join check", &reply)),
            },
        }
    }

    // ----- application events -------------------------------------------

    /// As [`crate::domain::Tutoring::ready`].
    pub async fn ready(&self, student: &StudentKey, ticket: Ticket) -> Step<ReadyOutcome> {
        let ticket =
            serde_json::to_string(&ticket).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let reply = self
            .run(&self.scripts.ready, &[&user_field(&student.0), &ticket])
            .await?;
        let (fields, status) = self.answer(&reply, 2)?;
        let outcome = match text(&fields[0])?.as_str() {
            "Q" => {
                let arrival =
                    u64::try_from(int(&fields[1])?).map_err(|_| corrupt("arrival", &fields[1]))?;
                ReadyOutcome::Queued(Arrival::from_sequence(arrival))
            }
            "U" => ReadyOutcome::Unchanged,
            "N" => ReadyOutcome::NotPresent,
            "X" => ReadyOutcome::Closed,
            _ => return Err(corrupt("ready", &reply)),
        };
        let news = StatusNews::ready(&outcome);
        Ok(stepped(outcome, status, news))
    }

    /// As [`crate::domain::Tutoring::claim`]; the script takes the time of
    /// the claim from Redis, not `_now`, so that all nodes count on one clock.
    pub async fn claim(&self, teacher: &UserId, chat: ChatId, _now: u64) -> Step<Option<Claimed>> {
        let field = user_field(&teacher.key);
        let chat = chat.to_string();
        let reply = self
            .run(
                &self.scripts.claim,
                &[&field, &chat, &teacher.json, self.node.as_str()],
            )
            .await?;
        let (fields, status) = self.answer(&reply, 1)?;
        let Some(claimed) = optional(&fields[0]) else {
            return Ok(stepped(None, status, StatusNews::None));
        };
        let [student, object, ticket] = items(claimed)? else {
            return Err(corrupt("claim", claimed));
        };
        let claimed = Claimed {
            student: StudentKey(parse_user(&text(student)?)?),
            ticket: optional(ticket).map(parse_ticket).transpose()?,
            object: Arc::from(text(object)?),
        };
        Ok(stepped(Some(claimed), status, StatusNews::Students))
    }

    /// As [`crate::domain::Tutoring::waiting_list`].
    pub async fn waiting_list(&self, limit: usize) -> Result<WaitingList, EngineError> {
        let reply = self
            .run(&self.scripts.waiting, &[&limit.to_string()])
            .await?;
        let [total, list] = items(&reply)? else {
            return Err(corrupt("waiting list", &reply));
        };
        let mut students = Vec::new();
        for (i, line) in items(list)?.iter().enumerate() {
            let [_, id, ticket, away] = items(line)? else {
                return Err(corrupt("waiting list line", line));
            };
            let id = match optional(id) {
                Some(id) => serde_json::from_str(&text(id)?).map_err(|_| corrupt("id", id))?,
                None => serde_json::Value::Null,
            };
            students.push(Waiting {
                id,
                ticket: optional(ticket).map(parse_ticket).transpose()?,
                position: i + 1,
                away: int(away)? == 1,
            });
        }
        let total = usize::try_from(int(total)?).map_err(|_| corrupt("total", total))?;
        Ok(WaitingList { students, total })
    }

    /// The claims of the last ten minutes: how many, the oldest, and now
    /// (unix ms, Redis time): what the estimated wait is made of.
    pub async fn claim_rate(&self) -> Result<(usize, Option<u64>, u64), EngineError> {
        let reply = self.run(&self.scripts.rate, &[]).await?;
        let [count, oldest, now] = items(&reply)? else {
            return Err(corrupt("rate", &reply));
        };
        let count = usize::try_from(int(count)?).map_err(|_| corrupt("count", count))?;
        let oldest = match optional(oldest) {
            Some(at) => Some(
                text(at)?
                    .parse::<f64>()
                    .map_err(|_| corrupt("oldest claim", at))? as u64,
            ),
            None => None,
        };
        let now = u64::try_from(int(now)?).map_err(|_| corrupt("now", now))?;
        Ok((count, oldest, now))
    }

    /// Whether students may get in line.
    pub async fn queue_state(&self) -> Result<QueueState, EngineError> {
        let reply = self.run(&self.scripts.queue_state, &["get"]).await?;
        Ok(parse_queue_state(&reply)?.0)
    }

    /// Opens or closes the queue; true if that changed anything.
    pub async fn set_queue_state(&self, state: QueueState) -> Result<bool, EngineError> {
        let open = if state.open { "1" } else { "0" };
        let message = state.message.as_deref().unwrap_or("");
        let reply = self
            .run(&self.scripts.queue_state, &["set", open, message])
            .await?;
        Ok(parse_queue_state(&reply)?.1)
    }

    /// As [`crate::domain::Tutoring::enter`].
    pub async fn enter(&self, chat: ChatId, role: Role) -> Result<EnterOutcome, EngineError> {
        let chat = chat.to_string();
        let reply = self
            .run(&self.scripts.enter, &[&chat, role_code(role)])
            .await?;
        match text(&reply)?.as_str() {
            "R" => Ok(EnterOutcome::Ready),
            "E" => Ok(EnterOutcome::Entered),
            "N" => Ok(EnterOutcome::NotActive),
            _ => Err(corrupt("enter", &reply)),
        }
    }

    /// As [`crate::domain::Tutoring::terminate`].
    pub async fn terminate(&self, chat: ChatId) -> Step<Option<Ended>> {
        let reply = self
            .run(&self.scripts.terminate, &[&chat.to_string()])
            .await?;
        let (fields, status) = self.answer(&reply, 1)?;
        let Some(ended) = optional(&fields[0]) else {
            return Ok(stepped(None, status, StatusNews::None));
        };
        let [teacher, student] = items(ended)? else {
            return Err(corrupt("terminate", ended));
        };
        let ended = Ended {
            teacher: TeacherKey(parse_user(&text(teacher)?)?),
            student: StudentKey(parse_user(&text(student)?)?),
        };
        Ok(stepped(Some(ended), status, StatusNews::Students))
    }

    // ----- leaving ----------------------------------------------------

    /// As [`crate::domain::Tutoring::student_absent`].
    pub async fn student_absent(&self, student: &StudentKey) -> Step<Option<Vanished>> {
        self.student_gone(student, "").await
    }

    /// As [`crate::domain::Tutoring::student_expired`].
    pub async fn student_expired(
        &self,
        student: &StudentKey,
        spell: AwaySpell,
    ) -> Step<Option<Vanished>> {
        self.student_gone(student, &spell.number().to_string())
            .await
    }

    async fn student_gone(&self, student: &StudentKey, spell: &str) -> Step<Option<Vanished>> {
        let field = user_field(&student.0);
        let reply = self
            .run(&self.scripts.student_leave, &[&field, spell])
            .await?;
        let (fields, status) = self.answer(&reply, 1)?;
        let Some(gone) = optional(&fields[0]) else {
            return Ok(stepped(None, status, StatusNews::None));
        };
        let [was, finished] = items(gone)? else {
            return Err(corrupt("student leave", gone));
        };
        let was = parse_state(&text(was)?)?;
        let finished = match text(finished)?.as_str() {
            "" => None,
            chat => Some(parse_chat(chat)?),
        };
        let news = StatusNews::student_gone(&was);
        Ok(stepped(Some(Vanished { was, finished }), status, news))
    }

    /// As [`crate::domain::Tutoring::student_away`].
    pub async fn student_away(
        &self,
        student: &StudentKey,
    ) -> Step<Option<(AwaySpell, StudentState)>> {
        let reply = self
            .run(
                &self.scripts.student_away,
                &[&user_field(&student.0), &self.grace_ms],
            )
            .await?;
        let (fields, status) = self.answer(&reply, 1)?;
        let away = match optional(&fields[0]) {
            None => None,
            Some(away) => {
                let [number, state] = items(away)? else {
                    return Err(corrupt("student away", away));
                };
                Some((spell(number)?, parse_state(&text(state)?)?))
            }
        };
        Ok(stepped(away, status, StatusNews::None))
    }

    /// As [`crate::domain::Tutoring::teacher_absent`].
    pub async fn teacher_absent(&self, teacher: &TeacherKey) -> Step<Option<Vec<Abandoned>>> {
        self.teacher_gone(teacher, "").await
    }

    /// As [`crate::domain::Tutoring::teacher_expired`].
    pub async fn teacher_expired(
        &self,
        teacher: &TeacherKey,
        spell: AwaySpell,
    ) -> Step<Option<Vec<Abandoned>>> {
        self.teacher_gone(teacher, &spell.number().to_string())
            .await
    }

    async fn teacher_gone(
        &self,
        teacher: &TeacherKey,
        spell: &str,
    ) -> Step<Option<Vec<Abandoned>>> {
        let field = user_field(&teacher.0);
        let reply = self
            .run(&self.scripts.teacher_leave, &[&field, spell])
            .await?;
        let (fields, status) = self.answer(&reply, 3)?;
        let fewer_teachers = int(&fields[2])? == 1;
        if int(&fields[0])? == 0 {
            return Ok(stepped(
                None,
                status,
                StatusNews::teachers_if(fewer_teachers),
            ));
        }
        let abandoned = parse_abandoned(&fields[1])?;
        let news = StatusNews::teacher_gone(&abandoned, fewer_teachers);
        Ok(stepped(Some(abandoned), status, news))
    }

    /// As [`crate::domain::Tutoring::teacher_away`].
    pub async fn teacher_away(
        &self,
        teacher: &TeacherKey,
    ) -> Step<Option<(AwaySpell, Vec<ChatId>)>> {
        let reply = self
            .run(
                &self.scripts.teacher_away,
                &[&user_field(&teacher.0), &self.grace_ms],
            )
            .await?;
        let (fields, status) = self.answer(&reply, 1)?;
        let away = match optional(&fields[0]) {
            None => None,
            Some(away) => {
                let [number, chats] = items(away)? else {
                    return Err(corrupt("teacher away", away));
                };
                Some((spell(number)?, chat_list(chats)?))
            }
        };
        Ok(stepped(away, status, StatusNews::None))
    }

    /// As [`crate::domain::Tutoring::discard`].
    pub async fn discard(&self, chat: ChatId) -> Result<bool, EngineError> {
        let reply = self
            .run(&self.scripts.discard, &[&chat.to_string()])
            .await?;
        Ok(int(&reply)? == 1)
    }

    // ----- liveness -------------------------------------------------------

    /// Every second: this node is alive; a node past its deadline is declared
    /// dead; a batch of a dead node's users is handled (`lua/tick.lua`), users
    /// with a token kept for `grace` when it is not zero.
    pub async fn tick(&self, grace: Duration) -> Result<Tick, EngineError> {
        let grace_ms = grace.as_millis().to_string();
        let reply = self.run(&self.scripts.tick, &[&grace_ms]).await?;
        let (fields, status) = self.answer(&reply, 3)?;
        let declared_dead = NodeId::parse(&text(&fields[1])?);
        let mut windows_over = Vec::new();
        for member in items(&fields[2])? {
            let member = text(member)?;
            let bad = || EngineError::Corrupt(format!("away window {member:?}"));
            let mut parts = member.splitn(3, '|');
            let (Some(kind), Some(number), Some(user)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let spell = AwaySpell::from_number(number.parse().map_err(|_| bad())?);
            let user = parse_user(user)?;
            windows_over.push(match kind {
                "t" => WindowOver::Teacher(TeacherKey(user), spell),
                "s" => WindowOver::Student(StudentKey(user), spell),
                _ => return Err(bad()),
            });
        }
        let mut reaped = Vec::new();
        for outcome in items(&fields[0])? {
            let parts = items(outcome)?;
            let (Some(kind), Some(user)) = (parts.first(), parts.get(1)) else {
                return Err(corrupt("reaped", outcome));
            };
            let user = parse_user(&text(user)?)?;
            let field = |i: usize| parts.get(i).ok_or_else(|| corrupt("reaped", outcome));
            reaped.push(match text(kind)?.as_str() {
                "ta" => Reaped::TeacherAway {
                    teacher: TeacherKey(user),
                    spell: spell(field(2)?)?,
                    chats: chat_list(field(3)?)?,
                },
                "tg" => Reaped::TeacherGone {
                    teacher: TeacherKey(user),
                    abandoned: parse_abandoned(field(2)?)?,
                    fewer_teachers: int(field(3)?)? == 1,
                },
                "sa" => Reaped::StudentAway {
                    student: StudentKey(user),
                    spell: spell(field(2)?)?,
                    state: parse_state(&text(field(3)?)?)?,
                },
                "sg" => {
                    let finished = match text(field(3)?)?.as_str() {
                        "" => None,
                        chat => Some(parse_chat(chat)?),
                    };
                    Reaped::StudentGone {
                        student: StudentKey(user),
                        vanished: Vanished {
                            was: parse_state(&text(field(2)?)?)?,
                            finished,
                        },
                    }
                }
                _ => return Err(corrupt("reaped", outcome)),
            });
        }
        Ok(Tick {
            reaped,
            declared_dead,
            windows_over,
            status,
        })
    }

    /// What a chat's home kept in Redis, for a node adopting the chat: what it
    /// held for each side (`<seq>|<payload>` entries), and the last `fid` it
    /// relayed from each other node (`a:<node>` fields of `:q:<cid>`).
    pub async fn adoption_of(
        &self,
        chat: ChatId,
    ) -> Result<(Vec<(Role, u64, Box<str>)>, crate::engine::Applied), EngineError> {
        let mut conn = self.connection().await?;
        let sides = [Role::Teacher, Role::Student];
        let mut pipe = redis::pipe();
        for side in sides {
            pipe.cmd("LRANGE")
                .arg(crate::cluster::held_key(&self.prefix, chat, side))
                .arg(0)
                .arg(-1);
        }
        pipe.cmd("HGETALL").arg(format!("{}:q:{chat}", self.prefix));
        let (teacher, student, count): (Vec<String>, Vec<String>, Vec<(String, String)>) =
            pipe.query_async(&mut conn).await?;
        let applied = count
            .into_iter()
            .filter_map(|(field, fid)| {
                let node = NodeId::parse(field.strip_prefix("a:")?)?;
                Some((node, fid.parse().ok()?))
            })
            .collect();
        let lists = [teacher, student];
        let mut held = Vec::new();
        for (side, entries) in sides.into_iter().zip(lists) {
            for entry in entries {
                let (seq, payload) = entry
                    .split_once('|')
                    .and_then(|(seq, payload)| Some((seq.parse().ok()?, payload)))
                    .ok_or_else(|| EngineError::Corrupt(format!("held {entry:?}")))?;
                held.push((side, seq, Box::from(payload)));
            }
        }
        Ok((held, applied))
    }

    /// Where an active chat lives now, adopting it if its home was declared
    /// dead (`lua/home.lua`); None if the chat is not active.
    pub async fn home_of(&self, chat: ChatId) -> Result<Option<ChatHome>, EngineError> {
        let reply = self.run(&self.scripts.home, &[&chat.to_string()]).await?;
        let answer = text(&reply)?;
        match answer.as_str() {
            "N" => return Ok(None),
            "F" => return Ok(Some(ChatHome::Finished)),
            _ => {}
        }
        match (answer.strip_prefix("A|"), answer.strip_prefix("H|")) {
            (Some(home), _) => Ok(Some(match NodeId::parse(home) {
                Some(home) if home != self.node => ChatHome::At(home),
                _ => ChatHome::Here,
            })),
            (_, Some(relayed)) => Ok(Some(adopted(relayed, &reply)?)),
            _ => Err(corrupt("home", &reply)),
        }
    }

    // ----- reading --------------------------------------------------------

    /// As [`crate::domain::Tutoring::chats_of`].
    pub async fn chats_of(
        &self,
        teacher: &TeacherKey,
    ) -> Result<Vec<(ChatId, Arc<str>)>, EngineError> {
        let reply = self
            .run(&self.scripts.chats_of, &[&user_field(&teacher.0)])
            .await?;
        items(&reply)?
            .iter()
            .map(|pair| {
                let [chat, object] = items(pair)? else {
                    return Err(corrupt("chat of a teacher", pair));
                };
                Ok((parse_chat(&text(chat)?)?, Arc::from(text(object)?)))
            })
            .collect()
    }

    /// As [`crate::domain::Tutoring::standing`].
    pub async fn standing(
        &self,
        student: &StudentKey,
    ) -> Result<Option<(StudentState, Option<Arc<str>>)>, EngineError> {
        let reply = self
            .run(&self.scripts.standing, &[&user_field(&student.0)])
            .await?;
        let Some(found) = optional(&reply) else {
            return Ok(None);
        };
        let [state, object] = items(found)? else {
            return Err(corrupt("standing", found));
        };
        let object = match optional(object) {
            Some(object) => Some(Arc::from(text(object)?)),
            None => None,
        };
        Ok(Some((parse_state(&text(state)?)?, object)))
    }

    /// As [`crate::domain::Tutoring::sides`].
    pub async fn sides(
        &self,
        chat: ChatId,
    ) -> Result<Option<(TeacherKey, StudentKey)>, EngineError> {
        let reply = self.run(&self.scripts.sides, &[&chat.to_string()]).await?;
        let Some(found) = optional(&reply) else {
            return Ok(None);
        };
        let [teacher, student] = items(found)? else {
            return Err(corrupt("sides", found));
        };
        Ok(Some((
            TeacherKey(parse_user(&text(teacher)?)?),
            StudentKey(parse_user(&text(student)?)?),
        )))
    }
}
