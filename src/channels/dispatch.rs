//! The dispatch rules D1–D9 of PROTOCOL 3.1 as one pure function: given the
//! connection's channel table and an inbound message's topic, event and join
//! ref, decide what happens. The first matching rule wins.

use super::table::{ChannelId, ChannelTable};

/// What the session must do with one inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// D1: answer the heartbeat with `ok` `{}` on topic `phoenix`.
    Heartbeat,
    /// D2/D3: route and perform a join. `replaces` is the channel already
    /// joined to this topic (D3): it gets `phx_close` and is dropped first.
    Join { replaces: Option<ChannelId> },
    /// D4: reply `ok`, send `phx_close`, then run the leave effects.
    Leave(ChannelId),
    /// D6: leave of a topic that is not joined: reply `ok`.
    LeaveUnjoined,
    /// D5/D8: a message from an earlier join of this topic: drop it silently.
    Ignore,
    /// D7: event on a topic that is not joined: `error` `unmatched topic`.
    Unmatched,
    /// D9: hand the event to the application handler of this channel.
    Event(ChannelId),
}

/// Applies D1–D9 in order. `join_ref` is the message's raw join ref, if any.
pub fn dispatch(table: &ChannelTable, topic: &str, event: &str, join_ref: Option<&str>) -> Action {
    if topic == "phoenix" && event == "heartbeat" {
        return Action::Heartbeat;
    }
    let joined = table.by_topic(topic);
    match (event, joined) {
        ("phx_join", None) => Action::Join { replaces: None },
        ("phx_join", Some(channel)) => Action::Join {
            replaces: Some(channel.id),
        },
        ("phx_leave", Some(channel)) => {
            if is_current(channel.join_ref.as_deref(), join_ref) {
                Action::Leave(channel.id)
            } else {
                Action::Ignore
            }
        }
        ("phx_leave", None) => Action::LeaveUnjoined,
        (_, None) => Action::Unmatched,
        (_, Some(channel)) => {
            if is_current(channel.join_ref.as_deref(), join_ref) {
                Action::Event(channel.id)
            } else {
                Action::Ignore
            }
        }
    }
}

/// A message belongs to the current channel when it carries no join ref
/// (V1 clients such as client A never send one) or the channel's own.
fn is_current(channel_ref: Option<&str>, message_ref: Option<&str>) -> bool {
    match message_ref {
        None => true,
        Some(sent) => channel_ref == Some(sent),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::channels::{Channel, ChannelKind};
    use crate::domain::UserId;

    fn table_with(topic: &str, join_ref: &str) -> (ChannelTable, ChannelId) {
        let mut table = ChannelTable::new(100);
        let id = ChannelId::next();
        let student = UserId::from_json(&serde_json::json!(7)).expect("valid id");
        table.insert(Channel {
            id,
            topic: Arc::from(topic),
            join_ref: Some(Arc::from(join_ref)),
            kind: ChannelKind::Student { student },
            open: Default::default(),
        });
        (table, id)
    }

    #[test]
    fn d1_heartbeat_even_with_nothing_joined() {
        let table = ChannelTable::new(100);
        assert_eq!(
            dispatch(&table, "phoenix", "heartbeat", None),
            Action::Heartbeat
        );
    }

    #[test]
    fn d2_join_of_new_topic_and_join_of_phoenix_is_routed() {
        let table = ChannelTable::new(100);
        assert_eq!(
            dispatch(&table, "presence:teachers", "phx_join", Some("\"1\"")),
            Action::Join { replaces: None }
        );
        // A join of `phoenix` is routed, and routing finds no route for it.
        assert_eq!(
            dispatch(&table, "phoenix", "phx_join", None),
            Action::Join { replaces: None }
        );
    }

    #[test]
    fn d3_duplicate_join_replaces_the_old_channel() {
        let (table, id) = table_with("presence:student:7", "\"1\"");
        assert_eq!(
            dispatch(&table, "presence:student:7", "phx_join", Some("\"3\"")),
            Action::Join { replaces: Some(id) }
        );
    }

    #[test]
    fn d4_d5_leave_current_or_stale() {
        let (table, id) = table_with("presence:student:7", "\"1\"");
        assert_eq!(
            dispatch(&table, "presence:student:7", "phx_leave", Some("\"1\"")),
            Action::Leave(id)
        );
        assert_eq!(
            dispatch(&table, "presence:student:7", "phx_leave", None),
            Action::Leave(id)
        );
        assert_eq!(
            dispatch(&table, "presence:student:7", "phx_leave", Some("\"9\"")),
            Action::Ignore
        );
    }

    #[test]
    fn d6_d7_unjoined_topics() {
        let table = ChannelTable::new(100);
        assert_eq!(
            dispatch(&table, "chats:x", "phx_leave", None),
            Action::LeaveUnjoined
        );
        assert_eq!(
            dispatch(&table, "chats:x", "teacher:send", None),
            Action::Unmatched
        );
        assert_eq!(
            dispatch(&table, "phoenix", "other", None),
            Action::Unmatched
        );
    }

    #[test]
    fn d8_d9_events_on_joined_topics() {
        let (table, id) = table_with("presence:student:7", "\"1\"");
        assert_eq!(
            dispatch(&table, "presence:student:7", "student:ready", Some("\"1\"")),
            Action::Event(id)
        );
        assert_eq!(
            dispatch(&table, "presence:student:7", "student:ready", None),
            Action::Event(id)
        );
        assert_eq!(
            dispatch(&table, "presence:student:7", "student:ready", Some("\"2\"")),
            Action::Ignore
        );
        // Same text, different JSON type: a different ref.
        assert_eq!(
            dispatch(&table, "presence:student:7", "student:ready", Some("1")),
            Action::Ignore
        );
    }
}
