//! `Rosters`: the actor that owns the [`Tutoring`] state (who teaches, who waits, which
//! chats exist, who watches its place in the queue). It runs one step of
//! `domain::steps` per message, as `ChatLifetime`, its only caller, asks; the rules live
//! in the domain, not here.
//!
//! One message is one whole step, so a step costs one round trip however many parts
//! of the state it touches: the in-memory counterpart of one script per step on a
//! shared store.

use actix::{Actor, Context, Handler, Message, MessageResult};

use crate::domain::Tutoring;

#[derive(Debug, Default)]
pub struct Rosters {
    tutoring: Tutoring,
}

impl Actor for Rosters {
    type Context = Context<Self>;
}

/// One step: a call of a `Tutoring` method, answered with what it returns.
pub struct Step<F>(pub F);

impl<F, R> Message for Step<F>
where
    F: FnOnce(&mut Tutoring) -> R,
    R: 'static,
{
    type Result = R;
}

impl<F, R> Handler<Step<F>> for Rosters
where
    F: FnOnce(&mut Tutoring) -> R,
    R: Send + 'static,
{
    type Result = MessageResult<Step<F>>;
    fn handle(&mut self, Step(step): Step<F>, _: &mut Context<Self>) -> Self::Result {
        MessageResult(step(&mut self.tutoring))
    }
}
