//! The tutoring rules as plain Rust (PROTOCOL sections 5 to 7): no actors, no sockets, no
//! clocks. Only the steps are `async`, to reach their parts through whatever holds them.
//!
//! * [`ids`]: user keys (`7` and `"7"` are one user), the separate teacher and student
//!   namespaces, chat ids.
//! * [`queue`]: the waiting queue, FIFO by arrival; a student whose teacher vanished goes
//!   back at the head.
//! * [`rosters`]: teachers present with their 0 to 5 active chats ([`Teachers`]); students
//!   present with their state and the queue, and the counts `user:status` reports
//!   ([`Students`]).
//! * [`chats`]: each chat's phase (`active → finished | abandoned`), the `chats:<cid>`
//!   join check, and the exactly-once `chat:ready` and finish.
//! * [`status`]: the `user:status` snapshot and its wire text.
//! * [`positions`]: who is told its place in the queue, and when (opt-in
//!   `queue:position`), with the work per queue change bounded.
//! * [`office_hours`]: the opt-in office-hours rules: questions, the waiting list,
//!   the estimated wait, and whether the queue is open.
//! * [`steps`]: the steps (join, ready, claim, enter, terminate, a student or a teacher
//!   vanishing) over the three parts above ([`Tutoring`]), each answering what happened
//!   and which `user:status` it calls for. They reach the parts through
//!   [`TutoringParts`]: in the server, one actor per part; in the invariant tests beside
//!   them and the benchmarks, [`LocalParts`]. `ChatLifetime` runs these very functions,
//!   and the invariant tests drive them in random order.
//!
//! The methods report what changed, so the caller knows which frames to send; they never
//! send anything, never block, and never panic on any input: unknown keys and repeated
//! or late requests are answered with a value.

pub mod chats;
pub mod ids;
pub mod office_hours;
pub mod positions;
pub mod queue;
pub mod rosters;
pub mod status;
pub mod steps;

pub use chats::{ChatPhase, Chats, EndReason, Ended, EnterOutcome, JoinCheck, Role};
pub use ids::{
    check_id_text, BadId, ChatId, StudentKey, TeacherKey, UserId, UserKey, MAX_ID_BYTES,
};
pub use office_hours::{Announcement, QueueState, ServiceRate, Ticket, WaitingList};
pub use positions::{PositionNotice, PositionWatch};
pub use queue::{Arrival, WaitingQueue};
pub use rosters::{
    AssignRefusal, Assigned, AwaySpell, ReadyOutcome, StudentCounts, StudentState, Students,
    Teachers, MAX_CHATS_PER_TEACHER,
};
pub use status::StatusSnapshot;
pub use steps::{
    Abandoned, Claimed, LocalParts, PartGone, StatusNews, Stepped, StudentPart, StudentReturn,
    Tutoring, TutoringParts, Vanished,
};
