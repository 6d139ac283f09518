//! The one seam between the steps and where the tutoring state lives.
//!
//! `ChatLifetime` runs every step through an [`Engine`]: in memory, the steps of
//! `domain::steps` over the three part actors `TeacherRoster`, `StudentRoster` and
//! `ChatLog` (one process serves the queue, the default); or in Redis
//! (`--redis-url`), one Lua script per step, so that several nodes serve one queue
//! ([`crate::redis_engine`]). Both answer the same values for the same steps (the
//! differential tests of `redis_engine` check it), so `ChatLifetime` does not know
//! which one it runs on.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::actors::RosterParts;
use crate::cluster::{ChatHome, NodeId};

/// The last message relayed from each node, by its `fid`.
pub type Applied = std::collections::HashMap<NodeId, u64>;
use crate::domain::{
    Abandoned, AwaySpell, ChatId, Claimed, Ended, EnterOutcome, JoinCheck, PartGone,
    PositionNotice, PositionWatch, ReadyOutcome, Role, Stepped, StudentKey, StudentReturn,
    StudentState, TeacherKey, Tutoring, UserId, UserKey, Vanished,
};
use crate::domain::{QueueState, Ticket, WaitingList};
use crate::redis_engine::{EngineError, Health, RedisTutoring, Tick};

/// Now, in unix milliseconds (as the transcripts count them).
pub fn unix_ms_now() -> u64 {
    u64::try_from(crate::transcripts::unix_ms(std::time::SystemTime::now())).unwrap_or(0)
}

/// Where the state lives, and the steps over it.
pub enum Engine {
    /// In this process: the three part actors.
    Memory(Tutoring<RosterParts>),
    /// In Redis, shared by every node of the deployment. Who watches its place in the
    /// queue is this node's own business, so the watch stays here.
    Redis {
        steps: Box<RedisTutoring>,
        positions: RefCell<PositionWatch>,
        /// A step found the shared state reset (Redis lost it): the node must
        /// reset too.
        reset: Cell<bool>,
    },
}

/// A step that could not run: a part actor gone (shutdown), or Redis failing.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    PartGone(#[from] PartGone),
    #[error(transparent)]
    Shared(#[from] EngineError),
}

type Step<T> = Result<Stepped<T>, StepError>;

/// Runs the same step on whichever engine this is.
macro_rules! on_engine {
    ($engine:expr, $step:ident ( $($arg:expr),* )) => {
        match $engine {
            Engine::Memory(steps) => steps.$step($($arg),*).await.map_err(StepError::from),
            Engine::Redis { steps, reset, .. } => {
                steps.$step($($arg),*).await.map_err(|error| noted(reset, error))
            }
        }
    };
}

/// A Redis step's error, with a reset of the shared state noted.
fn noted(reset: &Cell<bool>, error: EngineError) -> StepError {
    if matches!(error, EngineError::Reset | EngineError::Fenced) {
        reset.set(true);
    }
    StepError::Shared(error)
}

impl Engine {
    /// The steps in memory, over the three part actors.
    pub fn memory(parts: RosterParts) -> Engine {
        Engine::Memory(Tutoring::new(parts))
    }

    /// Whether the shared state answers (None in memory, where it always does).
    pub fn health(&self) -> Option<Arc<Health>> {
        match self {
            Engine::Memory(_) => None,
            Engine::Redis { steps, .. } => Some(steps.health()),
        }
    }

    /// The steps in Redis.
    pub fn redis(steps: RedisTutoring) -> Engine {
        Engine::Redis {
            steps: Box::new(steps),
            positions: RefCell::new(PositionWatch::new()),
            reset: Cell::new(false),
        }
    }

    /// Whether a step since the last call found the shared state reset (Redis
    /// lost it): then every user this node serves must join again.
    pub fn take_reset(&self) -> bool {
        match self {
            Engine::Memory(_) => false,
            Engine::Redis { reset, .. } => reset.take(),
        }
    }

    pub async fn teacher_present(&self, teacher: TeacherKey) -> Step<bool> {
        on_engine!(self, teacher_present(teacher))
    }

    pub async fn student_present(&self, student: UserId) -> Step<StudentReturn> {
        on_engine!(self, student_present(student))
    }

    /// May `user` join the chat; and its home, when it is another node's.
    pub async fn authorize_join(
        &self,
        chat: ChatId,
        user: Option<(Role, UserKey)>,
    ) -> Result<(JoinCheck, ChatHome), StepError> {
        match self {
            Engine::Memory(steps) => Ok((steps.authorize_join(chat, user).await?, ChatHome::Here)),
            Engine::Redis { steps, reset, .. } => steps
                .authorize_join_home(chat, user)
                .await
                .map_err(|error| noted(reset, error)),
        }
    }

    /// On Redis: this node is alive; a dead node's users are handled (see
    /// `RedisTutoring::tick`). None in memory.
    pub async fn tick(&self, grace: std::time::Duration) -> Option<Result<Tick, StepError>> {
        match self {
            Engine::Memory(_) => None,
            Engine::Redis { steps, reset, .. } => {
                Some(steps.tick(grace).await.map_err(|error| noted(reset, error)))
            }
        }
    }

    /// Where an active chat lives now (adopted here if its home is dead);
    /// None if it is not active. Alone, always here.
    pub async fn home_of(&self, chat: ChatId) -> Result<Option<ChatHome>, StepError> {
        match self {
            Engine::Memory(_) => Ok(Some(ChatHome::Here)),
            Engine::Redis { steps, reset, .. } => steps
                .home_of(chat)
                .await
                .map_err(|error| noted(reset, error)),
        }
    }

    /// What a chat's dead home kept in Redis: what it held, by side and seq,
    /// and the last message it relayed from each other node (on Redis;
    /// nothing in memory).
    pub async fn adoption_of(&self, chat: ChatId) -> (Vec<(Role, u64, Box<str>)>, Applied) {
        match self {
            Engine::Memory(_) => Default::default(),
            Engine::Redis { steps, .. } => steps.adoption_of(chat).await.unwrap_or_default(),
        }
    }

    /// This node, when it is one of several (on Redis).
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            Engine::Memory(_) => None,
            Engine::Redis { steps, .. } => Some(steps.node()),
        }
    }

    /// The version of the snapshot the last step answered (on Redis: versions
    /// follow the order in which Redis ran every node's steps). None in memory,
    /// where every step's snapshot is newer than the last.
    pub fn version(&self) -> Option<u64> {
        match self {
            Engine::Memory(_) => None,
            Engine::Redis { steps, .. } => Some(steps.version()),
        }
    }

    pub async fn ready(&self, student: &StudentKey, ticket: Ticket) -> Step<ReadyOutcome> {
        on_engine!(self, ready(student, ticket))
    }

    /// A claim; its time counts toward the service rate (on Redis, by Redis
    /// time).
    pub async fn claim(&self, teacher: &UserId, chat: ChatId) -> Step<Option<Claimed>> {
        on_engine!(self, claim(teacher, chat, unix_ms_now()))
    }

    // ----- office hours ---------------------------------------------------

    /// The head of the queue with tickets.
    pub async fn waiting_list(&self, limit: usize) -> Result<WaitingList, StepError> {
        on_engine!(self, waiting_list(limit))
    }

    /// What the estimated wait is made of: the claims of the last ten
    /// minutes (how many, the oldest) and now, in unix ms (Redis time on Redis).
    pub async fn eta_basis(&self) -> Result<(usize, Option<u64>, u64), StepError> {
        match self {
            Engine::Memory(steps) => Ok(steps.claim_rate(unix_ms_now()).await?),
            Engine::Redis { steps, reset, .. } => {
                steps.claim_rate().await.map_err(|e| noted(reset, e))
            }
        }
    }

    pub async fn queue_state(&self) -> Result<QueueState, StepError> {
        on_engine!(self, queue_state())
    }

    pub async fn set_queue_state(&self, state: QueueState) -> Result<bool, StepError> {
        on_engine!(self, set_queue_state(state))
    }

    pub async fn enter(&self, chat: ChatId, role: Role) -> Result<EnterOutcome, StepError> {
        on_engine!(self, enter(chat, role))
    }

    pub async fn terminate(&self, chat: ChatId) -> Step<Option<Ended>> {
        on_engine!(self, terminate(chat))
    }

    pub async fn student_absent(&self, student: &StudentKey) -> Step<Option<Vanished>> {
        on_engine!(self, student_absent(student))
    }

    pub async fn student_away(
        &self,
        student: &StudentKey,
    ) -> Step<Option<(AwaySpell, StudentState)>> {
        on_engine!(self, student_away(student))
    }

    pub async fn student_expired(
        &self,
        student: &StudentKey,
        spell: AwaySpell,
    ) -> Step<Option<Vanished>> {
        on_engine!(self, student_expired(student, spell))
    }

    pub async fn teacher_absent(&self, teacher: &TeacherKey) -> Step<Option<Vec<Abandoned>>> {
        on_engine!(self, teacher_absent(teacher))
    }

    pub async fn teacher_away(
        &self,
        teacher: &TeacherKey,
    ) -> Step<Option<(AwaySpell, Vec<ChatId>)>> {
        on_engine!(self, teacher_away(teacher))
    }

    pub async fn teacher_expired(
        &self,
        teacher: &TeacherKey,
        spell: AwaySpell,
    ) -> Step<Option<Vec<Abandoned>>> {
        on_engine!(self, teacher_expired(teacher, spell))
    }

    pub async fn discard(&self, chat: ChatId) -> Result<bool, StepError> {
        on_engine!(self, discard(chat))
    }

    pub async fn chats_of(
        &self,
        teacher: &TeacherKey,
    ) -> Result<Vec<(ChatId, Arc<str>)>, StepError> {
        on_engine!(self, chats_of(teacher))
    }

    pub async fn standing(
        &self,
        student: &StudentKey,
    ) -> Result<Option<(StudentState, Option<Arc<str>>)>, StepError> {
        on_engine!(self, standing(student))
    }

    pub async fn sides(&self, chat: ChatId) -> Result<Option<(TeacherKey, StudentKey)>, StepError> {
        on_engine!(self, sides(chat))
    }

    // ----- queue positions ----------------------------------------------

    /// One more channel of `student` asked for `queue:position`, with `teachers`
    /// present: the notice to send it now.
    pub async fn watch_position(
        &self,
        student: StudentKey,
        teachers: usize,
    ) -> Result<PositionNotice, StepError> {
        match self {
            Engine::Memory(steps) => Ok(steps.watch_position(student).await?),
            Engine::Redis {
                steps,
                positions,
                reset,
            } => {
                let queue = steps.queue().await.map_err(|e| noted(reset, e))?;
                Ok(positions.borrow_mut().watch(student, &queue, teachers))
            }
        }
    }

    /// A channel that asked for notices went away.
    pub async fn unwatch_position(&self, student: &StudentKey) -> Result<(), StepError> {
        match self {
            Engine::Memory(steps) => Ok(steps.unwatch_position(student).await?),
            Engine::Redis { positions, .. } => {
                positions.borrow_mut().unwatch(student);
                Ok(())
            }
        }
    }

    /// One coalesced round of notices: those worth sending now. On Redis it reads
    /// the whole queue, so it costs O(waiting) per round (rounds run only while
    /// someone watches).
    pub async fn due_positions(
        &self,
        teachers: usize,
    ) -> Result<Vec<(StudentKey, PositionNotice)>, StepError> {
        match self {
            Engine::Memory(steps) => Ok(steps.due_positions().await?),
            Engine::Redis {
                steps,
                positions,
                reset,
            } => {
                if positions.borrow().is_empty() {
                    return Ok(Vec::new());
                }
                let queue = steps.queue().await.map_err(|e| noted(reset, e))?;
                Ok(positions.borrow_mut().due(&queue, teachers))
            }
        }
    }
}
