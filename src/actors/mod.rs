//! The actors that own the shared state, and the `Hub` that bundles their
//! addresses with the topic registry. The hub is passed explicitly to every
//! session (no global state), so one process can run many servers.
//!
//! * `TeacherRoster`, `StudentRoster`, `ChatLog`: thin owners of the domain
//!   structs of the same meaning.
//! * `ChatLifetime`: their only writer; one atomic operation at a time.

pub mod chat_lifetime;
pub mod chat_log;
pub mod student_roster;
pub mod teacher_roster;

use std::sync::Arc;

use actix::{Actor, Addr};
use dashmap::DashMap;

pub use chat_lifetime::ChatLifetime;
pub use chat_log::ChatLog;
pub use student_roster::StudentRoster;
pub use teacher_roster::TeacherRoster;

use crate::topics::Topics;
use crate::transcripts::Transcripts;
use crate::transport::{SessionHandle, SessionId};
use crate::Config;

/// Everything a connection needs to reach the shared state.
#[derive(Clone)]
pub struct Hub {
    pub lifetime: Addr<ChatLifetime>,
    pub topics: Arc<Topics>,
    /// Open connections, for shutdown (and later, metrics).
    pub sessions: Arc<DashMap<SessionId, Arc<SessionHandle>>>,
    pub config: Arc<Config>,
    /// The durable record of chats and relayed messages (issue 6).
    pub transcripts: Transcripts,
}

impl Hub {
    /// Starts the actors on the current arbiter. Call inside an actix System.
    pub fn start(config: Config, transcripts: Transcripts) -> Hub {
        let topics = Arc::new(Topics::new());
        let teachers = TeacherRoster::default().start();
        let students = StudentRoster::default().start();
        let chats = ChatLog::default().start();
        let lifetime = ChatLifetime::new(teachers, students, chats, topics.clone()).start();
        Hub {
            lifetime,
            topics,
            sessions: Arc::new(DashMap::new()),
            config: Arc::new(config),
            transcripts,
        }
    }
}
