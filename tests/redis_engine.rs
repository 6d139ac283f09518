//! The shared engine (`redis_engine`) against the in-memory steps (`domain::steps`): the same steps, in scripted and
//! random orders, on [`RedisTutoring`] and on `Tutoring<LocalParts>`, and every answer
//! (outcome, `user:status` snapshot, who must hear of it) must be the same.
//!
//! Each test starts a `redis-server` of its own (`support::redis`); without one it
//! skips with a message, and fails under `CI=true`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tutor_queue::domain::Ticket;
use tutor_queue::domain::{
    Abandoned, AwaySpell, ChatId, Claimed, Ended, EnterOutcome, LocalParts, PartGone, ReadyOutcome,
    Role, StudentReturn, StudentState, Tutoring, UserId, Vanished,
};
use tutor_queue::redis_engine::{EngineError, RedisTutoring};

use crate::support::redis::TestRedis;

/// A deployment name no other test uses, so tests can share one Redis.
fn deployment() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

fn user(n: u64) -> UserId {
    UserId::from_json(&json!(n)).expect("valid id")
}

fn signed(n: u64) -> UserId {
    UserId::from_json(&json!(format!("s{n}")))
        .expect("valid id")
        .signed()
}

/// Both engines, driven step by step; every answer compared.
struct Twins {
    local: Tutoring<LocalParts>,
    redis: RedisTutoring,
    steps: usize,
}

fn local<T>(answer: Result<T, PartGone>) -> T {
    answer.expect("local parts always answer")
}

fn shared<T>(answer: Result<T, EngineError>) -> T {
    answer.unwrap_or_else(|error| panic!("redis step failed: {error}"))
}

impl Twins {
    async fn new(url: &str) -> Twins {
        Twins {
            local: Tutoring::new(LocalParts::default()),
            redis: RedisTutoring::new(url, &deployment()).expect("a redis URL"),
            steps: 0,
        }
    }

    /// Both answers of one step, which must be equal.
    fn same<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, local: T, redis: T) -> T {
        self.steps += 1;
        assert_eq!(redis, local, "step {}: {what}", self.steps);
        local
    }

    async fn teacher_joins(&mut self, t: &UserId) -> bool {
        let a = local(self.local.teacher_present(t.as_teacher()).await);
        let b = shared(self.redis.teacher_present(t.as_teacher()).await);
        self.same("teacher joins", a, b).outcome
    }

    async fn student_joins(&mut self, s: &UserId) -> StudentReturn {
        let a = local(self.local.student_present(s.clone()).await);
        let b = shared(self.redis.student_present(s.clone()).await);
        self.same("student joins", a, b).outcome
    }

    /// Ready with a question of its own (a repeated ready changes it), then
    /// the waiting lists compared.
    async fn ready(&mut self, s: &UserId) -> ReadyOutcome {
        let ticket = Ticket {
            name: None,
            question: Some(format!("question {} of {}", self.steps, s.key.as_str())),
            since: 1_000 + self.steps as u64,
        };
        let a = local(self.local.ready(&s.as_student(), ticket.clone()).await);
        let b = shared(self.redis.ready(&s.as_student(), ticket).await);
        let outcome = self.same("ready", a, b).outcome;
        self.same_waiting_lists().await;
        outcome
    }

    async fn claim(&mut self, t: &UserId, chat: ChatId) -> Option<Claimed> {
        let a = local(self.local.claim(t, chat, 0).await);
        let b = shared(self.redis.claim(t, chat, 0).await);
        let claimed = self.same("claim", a, b).outcome;
        self.same_waiting_lists().await;
        claimed
    }

    /// The office-hours waiting list (head of the queue with tickets).
    async fn same_waiting_lists(&mut self) {
        let a = local(self.local.waiting_list(50).await);
        let b = shared(self.redis.waiting_list(50).await);
        assert_eq!(b, a, "step {}: waiting list", self.steps);
    }

    async fn enter(&mut self, chat: ChatId, role: Role) -> EnterOutcome {
        let a = local(self.local.enter(chat, role).await);
        let b = shared(self.redis.enter(chat, role).await);
        self.same("enter", a, b)
    }

    async fn terminate(&mut self, chat: ChatId) -> Option<Ended> {
        let a = local(self.local.terminate(chat).await);
        let b = shared(self.redis.terminate(chat).await);
        self.same("terminate", a, b).outcome
    }

    async fn student_leaves(&mut self, s: &UserId) -> Option<Vanished> {
        let a = local(self.local.student_absent(&s.as_student()).await);
        let b = shared(self.redis.student_absent(&s.as_student()).await);
        self.same("student leaves", a, b).outcome
    }

    async fn student_away(&mut self, s: &UserId) -> Option<(AwaySpell, StudentState)> {
        let a = local(self.local.student_away(&s.as_student()).await);
        let b = shared(self.redis.student_away(&s.as_student()).await);
        self.same("student away", a, b).outcome
    }

    async fn student_expires(&mut self, s: &UserId, spell: AwaySpell) -> Option<Vanished> {
        let a = local(self.local.student_expired(&s.as_student(), spell).await);
        let b = shared(self.redis.student_expired(&s.as_student(), spell).await);
        self.same("student's window ends", a, b).outcome
    }

    async fn teacher_leaves(&mut self, t: &UserId) -> Option<Vec<Abandoned>> {
        let a = local(self.local.teacher_absent(&t.as_teacher()).await);
        let b = shared(self.redis.teacher_absent(&t.as_teacher()).await);
        self.same("teacher leaves", a, b).outcome
    }

    async fn teacher_away(&mut self, t: &UserId) -> Option<(AwaySpell, Vec<ChatId>)> {
        let a = local(self.local.teacher_away(&t.as_teacher()).await);
        let b = shared(self.redis.teacher_away(&t.as_teacher()).await);
        self.same("teacher away", a, b).outcome
    }

    async fn teacher_expires(&mut self, t: &UserId, spell: AwaySpell) -> Option<Vec<Abandoned>> {
        let a = local(self.local.teacher_expired(&t.as_teacher(), spell).await);
        let b = shared(self.redis.teacher_expired(&t.as_teacher(), spell).await);
        self.same("teacher's window ends", a, b).outcome
    }

    async fn discard(&mut self, chat: ChatId) -> bool {
        let a = local(self.local.discard(chat).await);
        let b = shared(self.redis.discard(chat).await);
        self.same("discard", a, b)
    }

    async fn reads(&mut self, t: &UserId, s: &UserId, chat: ChatId, role: Role) {
        let a = local(self.local.chats_of(&t.as_teacher()).await);
        let b = shared(self.redis.chats_of(&t.as_teacher()).await);
        self.same("chats of a teacher", a, b);
        let a = local(self.local.standing(&s.as_student()).await);
        let b = shared(self.redis.standing(&s.as_student()).await);
        self.same("standing", a, b);
        let a = local(self.local.sides(chat).await);
        let b = shared(self.redis.sides(chat).await);
        self.same("sides", a, b);
        for user in [
            Some((role, s.key.clone())),
            Some((role, t.key.clone())),
            None,
        ] {
            let a = local(self.local.authorize_join(chat, user.clone()).await);
            let b = shared(self.redis.authorize_join(chat, user).await);
            self.same("authorize a join", a, b);
        }
    }
}

#[tokio::test]
async fn one_chat_with_an_away_student_answers_as_in_memory() {
    let Some(redis) = TestRedis::start("redis engine") else {
        return;
    };
    let mut twins = Twins::new(&redis.url()).await;
    let mut rng = StdRng::seed_from_u64(1);
    let (t, a, b) = (user(1), signed(2), user(3));
    twins.teacher_joins(&t).await;
    for s in [&a, &b] {
        twins.student_joins(s).await;
        twins.ready(s).await;
    }
    let (spell, _) = twins.student_away(&a).await.expect("a's last channel");
    let chat = ChatId::random(&mut rng);
    let claimed = twins.claim(&t, chat).await.expect("b is here");
    assert_eq!(
        claimed.student,
        b.as_student(),
        "the away student is passed over"
    );
    assert!(twins.student_joins(&a).await.back);
    assert_eq!(twins.student_expires(&a, spell).await, None, "a came back");
    assert_eq!(
        twins.enter(chat, Role::Student).await,
        EnterOutcome::Entered
    );
    assert_eq!(twins.enter(chat, Role::Teacher).await, EnterOutcome::Ready);
    twins.reads(&t, &b, chat, Role::Student).await;
    let (spell, chats) = twins.teacher_away(&t).await.expect("t's last channel");
    assert_eq!(chats, [chat]);
    let abandoned = twins.teacher_expires(&t, spell).await.expect("t is gone");
    assert_eq!(abandoned[0].requeued, Some(b.as_student()));
    twins.reads(&t, &b, chat, Role::Teacher).await;
    assert!(
        !twins.discard(chat).await,
        "discarded with the teacher already"
    );
}

/// Random steps over a few users (signed and not), both engines compared at each.
async fn random_run(url: &str, seed: u64) -> usize {
    let mut twins = Twins::new(url).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let teachers: Vec<UserId> = (1..=3).map(user).chain([signed(4)]).collect();
    let students: Vec<UserId> = (10..=25).map(user).chain((26..=30).map(signed)).collect();
    let mut chats: Vec<ChatId> = Vec::new();
    let mut spells: Vec<(bool, UserId, AwaySpell)> = Vec::new();
    for _ in 0..1500 {
        let t = teachers[rng.random_range(0..teachers.len())].clone();
        let s = students[rng.random_range(0..students.len())].clone();
        let role = if rng.random_bool(0.5) {
            Role::Teacher
        } else {
            Role::Student
        };
        let chat = match chats.len() {
            0 => ChatId::random(&mut rng),
            n => chats[rng.random_range(0..n)],
        };
        match rng.random_range(0..100) {
            0..=5 => {
                twins.teacher_joins(&t).await;
            }
            6..=8 => {
                twins.teacher_leaves(&t).await;
            }
            9..=11 => {
                if let Some((spell, _)) = twins.teacher_away(&t).await {
                    spells.push((true, t, spell));
                }
            }
            12..=22 => {
                twins.student_joins(&s).await;
            }
            23..=28 => {
                twins.student_leaves(&s).await;
            }
            29..=33 => {
                if let Some((spell, _)) = twins.student_away(&s).await {
                    spells.push((false, s, spell));
                }
            }
            34..=38 if !spells.is_empty() => {
                let (teacher, who, spell) = spells.swap_remove(rng.random_range(0..spells.len()));
                if teacher {
                    twins.teacher_expires(&who, spell).await;
                } else {
                    twins.student_expires(&who, spell).await;
                }
            }
            39..=58 => {
                twins.ready(&s).await;
            }
            59..=78 => {
                let new = ChatId::random(&mut rng);
                if twins.claim(&t, new).await.is_some() {
                    chats.push(new);
                }
            }
            79..=87 => {
                twins.enter(chat, role).await;
            }
            88..=93 => {
                twins.terminate(chat).await;
            }
            94..=96 => {
                twins.discard(chat).await;
            }
            _ => twins.reads(&t, &s, chat, role).await,
        }
    }
    twins.steps
}

#[tokio::test]
async fn random_steps_answer_as_in_memory() {
    let Some(redis) = TestRedis::start("redis engine") else {
        return;
    };
    let mut steps = 0;
    for seed in 1..=4 {
        steps += random_run(&redis.url(), seed).await;
    }
    assert!(steps > 5000, "{steps} compared answers");
}
