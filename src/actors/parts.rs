//! The three actors that own the parts of the tutoring state, and the
//! [`TutoringParts`] over their addresses that `ChatLifetime` runs the steps on.
//!
//! * `TeacherRoster` owns [`Teachers`]: who teaches now, and which chats each
//!   teacher holds (at most five).
//! * `StudentRoster` owns [`StudentPart`]: the students present, where each one
//!   stands, the FIFO queue, and who watches its place in it.
//! * `ChatLog` owns [`Chats`]: every chat that is active or still has channels
//!   joined, with its exactly-once `chat:ready` and finish.
//!
//! They are one actor type, [`PartActor`], started three times, each owning one
//! part. Each answers a single message, [`Apply`]: run this closure of a step on
//! your part. The rules live in `domain::steps`, not here; `ChatLifetime` is the
//! only sender, and a step costs one round trip per part it touches.

use std::future::Future;
use std::marker::PhantomData;

use actix::{Actor, Addr, Context, Handler, Message, MessageResult};

use crate::domain::{Chats, PartGone, StudentPart, Teachers, TutoringParts};

/// An actor that owns one part `S` of the tutoring state.
#[derive(Debug, Default)]
pub struct PartActor<S> {
    part: S,
}

/// Owns [`Teachers`].
pub type TeacherRoster = PartActor<Teachers>;
/// Owns [`StudentPart`]: the students, the queue and the position watch.
pub type StudentRoster = PartActor<StudentPart>;
/// Owns [`Chats`].
pub type ChatLog = PartActor<Chats>;

impl<S: Unpin + 'static> Actor for PartActor<S> {
    type Context = Context<Self>;
}

/// One call of a step: run `F` on the part `S`, answer what it returns.
pub struct Apply<S, F>(F, PhantomData<fn(&mut S)>);

impl<S, F, R> Message for Apply<S, F>
where
    F: FnOnce(&mut S) -> R,
    R: 'static,
{
    type Result = R;
}

impl<S, F, R> Handler<Apply<S, F>> for PartActor<S>
where
    S: Unpin + 'static,
    F: FnOnce(&mut S) -> R,
    R: 'static,
{
    type Result = MessageResult<Apply<S, F>>;
    fn handle(&mut self, Apply(f, _): Apply<S, F>, _: &mut Context<Self>) -> Self::Result {
        MessageResult(f(&mut self.part))
    }
}

/// The addresses of the three part actors.
#[derive(Clone)]
pub struct RosterParts {
    pub teachers: Addr<TeacherRoster>,
    pub students: Addr<StudentRoster>,
    pub chats: Addr<ChatLog>,
}

impl RosterParts {
    /// Starts the three actors on the current arbiter.
    pub fn start() -> Self {
        RosterParts {
            teachers: TeacherRoster::default().start(),
            students: StudentRoster::default().start(),
            chats: ChatLog::default().start(),
        }
    }
}

/// Sends `f` to the actor owning `S`. The actors live as long as the server, so
/// a failure here (a mailbox closed at shutdown) is worth a log line; the step
/// then stops where it is rather than guessing.
fn ask<S, F, R>(
    actor: &Addr<PartActor<S>>,
    part: &'static str,
    f: F,
) -> impl Future<Output = Result<R, PartGone>>
where
    S: Unpin + 'static,
    F: FnOnce(&mut S) -> R + Send + 'static,
    R: Send + 'static,
{
    let answer = actor.send(Apply(f, PhantomData));
    async move {
        answer.await.map_err(|error| {
            tracing::error!(%error, part, "a roster actor did not answer");
            PartGone(part)
        })
    }
}

impl TutoringParts for RosterParts {
    fn teachers<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Teachers) -> R + Send + 'static,
    ) -> impl Future<Output = Result<R, PartGone>> {
        ask(&self.teachers, "teacher roster", f)
    }

    fn students<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut StudentPart) -> R + Send + 'static,
    ) -> impl Future<Output = Result<R, PartGone>> {
        ask(&self.students, "student roster", f)
    }

    fn chats<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Chats) -> R + Send + 'static,
    ) -> impl Future<Output = Result<R, PartGone>> {
        ask(&self.chats, "chat log", f)
    }
}
