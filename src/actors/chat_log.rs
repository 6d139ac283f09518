//! `ChatLog`: the actor that owns [`Chats`], every chat that is active or
//! still has channels joined to it. Exactly-once `chat:ready` and
//! `chat:terminated` are decided here; no message history is kept.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};

use crate::domain::{
    ChatId, Chats, Ended, EnterOutcome, JoinCheck, Role, StudentKey, UserId, UserKey,
};

#[derive(Debug, Default)]
pub struct ChatLog {
    chats: Chats,
}

impl Actor for ChatLog {
    type Context = Context<Self>;
}

/// Claim step 4: create an active chat. Answers the chat object JSON.
#[derive(Message)]
#[rtype(result = "Arc<str>")]
pub struct CreateChat {
    pub chat: ChatId,
    pub teacher: UserId,
    pub student: UserId,
}

impl Handler<CreateChat> for ChatLog {
    type Result = MessageResult<CreateChat>;
    fn handle(&mut self, msg: CreateChat, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.chats.create(msg.chat, &msg.teacher, &msg.student))
    }
}

/// May this user join `chats:<chat>` (PROTOCOL 5.2)? `user` is None when the
/// join params named no valid role and id: unauthorized, if the chat exists.
#[derive(Message)]
#[rtype(result = "JoinCheck")]
pub struct AuthorizeJoin {
    pub chat: ChatId,
    pub user: Option<(Role, UserKey)>,
}

impl Handler<AuthorizeJoin> for ChatLog {
    type Result = MessageResult<AuthorizeJoin>;
    fn handle(&mut self, msg: AuthorizeJoin, _: &mut Context<Self>) -> Self::Result {
        MessageResult(match msg.user {
            Some((role, user)) => self.chats.authorize_join(msg.chat, role, &user),
            None if !self.chats.exists(msg.chat) => JoinCheck::UnknownChat,
            None => JoinCheck::Unauthorized,
        })
    }
}

/// `teacher:joined` / `student:joined`.
#[derive(Message)]
#[rtype(result = "EnterOutcome")]
pub struct EnterChat {
    pub chat: ChatId,
    pub role: Role,
}

impl Handler<EnterChat> for ChatLog {
    type Result = MessageResult<EnterChat>;
    fn handle(&mut self, msg: EnterChat, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.chats.enter(msg.chat, msg.role))
    }
}

/// Finish an active chat; `Some` exactly once per chat.
#[derive(Message)]
#[rtype(result = "Option<Ended>")]
pub struct FinishChat {
    pub chat: ChatId,
}

impl Handler<FinishChat> for ChatLog {
    type Result = Option<Ended>;
    fn handle(&mut self, msg: FinishChat, _: &mut Context<Self>) -> Option<Ended> {
        self.chats.finish(msg.chat)
    }
}

/// The teacher vanished: the chat is abandoned. Answers its student.
#[derive(Message)]
#[rtype(result = "Option<StudentKey>")]
pub struct AbandonChat {
    pub chat: ChatId,
}

impl Handler<AbandonChat> for ChatLog {
    type Result = Option<StudentKey>;
    fn handle(&mut self, msg: AbandonChat, _: &mut Context<Self>) -> Option<StudentKey> {
        self.chats.abandon(msg.chat)
    }
}

/// No channel is joined to the chat any more: forget it unless still active.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct DiscardChat {
    pub chat: ChatId,
}

impl Handler<DiscardChat> for ChatLog {
    type Result = bool;
    fn handle(&mut self, msg: DiscardChat, _: &mut Context<Self>) -> bool {
        self.chats.discard(msg.chat)
    }
}
