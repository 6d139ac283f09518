//! Opt-in extensions to the 2015 protocol, asked for in the join params.
//!
//! The web pages need four things the 2015 protocol lacks: a student's place in the
//! queue, live counts for a teacher from the moment it joins, and why a chat ended. A
//! channel gets them only if its join params ask, so the 2015 client, which never asks,
//! sees exactly the traffic it always did:
//!
//! * `"queuePosition": true` on `presence:student:<sid>`: `queue:position` pushes;
//! * `"liveStatus": true` on `presence:teachers`: a `user:status` right after the join
//!   and whenever the number of teachers changes;
//! * `"endReason": true` on `chats:<cid>`: `chat:terminated` carries `{"reason": …}`;
//! * `"awayNotices": true` on `chats:<cid>`: `chat:away` / `chat:back` when the other
//!   side's connection drops and when it is back (PROTOCOL 6.3).
//! * `"waitingList": true` on `presence:teachers`: `queue:waiting`, the head of the
//!   queue with names and questions (office hours);
//! * `"queueState": true` on `presence:teachers` or `presence:student:<sid>`:
//!   `queue:state` (open or closed, and why) and `queue:announcement`.
//!
//! Only the JSON value `true` turns an extension on; anything else leaves it off.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The extensions one channel asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub queue_position: bool,
    pub live_status: bool,
    pub end_reason: bool,
    pub away_notices: bool,
    pub waiting_list: bool,
    pub queue_state: bool,
}

#[derive(Deserialize)]
struct Asked {
    #[serde(rename = "queuePosition", default)]
    queue_position: serde_json::Value,
    #[serde(rename = "liveStatus", default)]
    live_status: serde_json::Value,
    #[serde(rename = "endReason", default)]
    end_reason: serde_json::Value,
    #[serde(rename = "awayNotices", default)]
    away_notices: serde_json::Value,
    #[serde(rename = "waitingList", default)]
    waiting_list: serde_json::Value,
    #[serde(rename = "queueState", default)]
    queue_state: serde_json::Value,
}

impl Extensions {
    /// Reads the extensions from join params; none when the params are not an object.
    pub fn from_params(params: &RawValue) -> Extensions {
        match serde_json::from_str::<Asked>(params.get()) {
            Ok(asked) => Extensions {
                queue_position: asked.queue_position == true,
                live_status: asked.live_status == true,
                end_reason: asked.end_reason == true,
                away_notices: asked.away_notices == true,
                waiting_list: asked.waiting_list == true,
                queue_state: asked.queue_state == true,
            },
            Err(_) => Extensions::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Extensions {
        let raw = RawValue::from_string(json.to_owned()).expect("test JSON is valid");
        Extensions::from_params(&raw)
    }

    #[test]
    fn only_true_turns_an_extension_on() {
        let all = parse(
            r#"{"userId":1,"role":"student","queuePosition":true,"liveStatus":true,"endReason":true,"awayNotices":true}"#,
        );
        assert!(all.queue_position && all.live_status && all.end_reason && all.away_notices);
        assert_eq!(
            parse(r#"{"userId":1,"role":"student"}"#),
            Extensions::default()
        );
        for not_true in [r#"1"#, r#""true""#, r#"null"#, r#"{}"#, r#"false"#] {
            let params = format!(r#"{{"queuePosition":{not_true}}}"#);
            assert!(!parse(&params).queue_position, "{params}");
        }
    }

    #[test]
    fn non_object_params_ask_for_nothing() {
        for params in ["[]", "null", "5", r#""x""#] {
            assert_eq!(parse(params), Extensions::default());
        }
    }
}
