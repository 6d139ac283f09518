//! Identities (PROTOCOL 5.1): user keys, the teacher and student namespaces, chat ids.
//!
//! Owns the one rule that turns a client's `userId` into a key: a JSON integer or a
//! non-empty JSON string, where `7` and `"7"` are the same user. It keeps the JSON text
//! the user sent so the chat object can echo it back unchanged. The server keeps ids
//! (rosters, topics, transcripts), so a string id is bounded: at most `MAX_ID_BYTES`
//! bytes and no control characters.
//!
//! Must never mix the namespaces: teacher 1 and student 1 are different people (the 2015
//! server removed student 1 when teacher 1 left, PROTOCOL 8.7), so a teacher key and a
//! student key are distinct types that cannot be compared or swapped by accident.
//! Must never panic on client input: every parser returns `Option`.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

/// Canonical key of a user id (PROTOCOL 5.1): decimal text of a JSON integer (7 -> "7"),
/// or a non-empty JSON string as is. 7 and "7" are the same user.
///
/// A key is also in one of two namespaces (PROTOCOL 1.7): the ids of connections
/// whose token proved them (`signed`), and the ids tokenless clients assert. The
/// same text in the two is two different people, so a tokenless client can never
/// be found in a roster or a chat as a user who proved who they are.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct UserKey {
    text: Arc<str>,
    signed: bool,
}

impl UserKey {
    /// A key from text already in canonical form, such as the `<sid>` of
    /// `presence:student:<sid>`. None for the empty string, which is never a user.
    pub fn new(text: &str) -> Option<UserKey> {
        if text.is_empty() {
            None
        } else {
            Some(UserKey {
                text: Arc::from(text),
                signed: false,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for the id of a connection whose token proved it.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// This key in the namespace of token-proven users (`signed`) or of
    /// tokenless ids: for records read back from storage, which keep the
    /// namespace beside the text.
    pub fn in_namespace(mut self, signed: bool) -> UserKey {
        self.signed = signed;
        self
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Longest user id the server accepts, in bytes of its key (UTF-8).
pub const MAX_ID_BYTES: usize = 128;

/// Why a JSON value is not a user id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadId {
    /// Not an integer or a non-empty string (PROTOCOL 5.1).
    #[error("not a user id")]
    NotAnId,
    /// A string id longer than `MAX_ID_BYTES`.
    #[error("user id longer than {MAX_ID_BYTES} bytes")]
    TooLong,
    /// A string id with a control character (U+0000-U+001F, U+007F-U+009F).
    #[error("user id with a control character")]
    ControlCharacter,
}

/// The bound on the text of an id a client names, in a `userId` or in a topic
/// such as `presence:student:<sid>`.
pub fn check_id_text(text: &str) -> Result<(), BadId> {
    if text.len() > MAX_ID_BYTES {
        Err(BadId::TooLong)
    } else if text.chars().any(char::is_control) {
        Err(BadId::ControlCharacter)
    } else {
        Ok(())
    }
}

/// A user id as the client sent it: the canonical key plus the JSON text to echo back
/// (e.g. `7` or `"7"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserId {
    pub key: UserKey,
    pub json: Arc<str>,
}

impl UserId {
    /// None for floats, bools, null, objects, arrays, empty strings, integers that do not
    /// fit i64/u64, and strings past the bound of `check_id_text`.
    pub fn from_json(v: &Value) -> Option<UserId> {
        UserId::parse(v).ok()
    }

    /// `from_json`, saying why a value is not an id.
    pub fn parse(v: &Value) -> Result<UserId, BadId> {
        match v {
            // serde_json stores an integer too big for i64/u64 as f64, so `as_i64`/`as_u64`
            // rejecting it is exactly the "does not fit" rule; `7.0` is a float and is
            // rejected the same way.
            Value::Number(n) => {
                let text = if let Some(i) = n.as_i64() {
                    i.to_string()
                } else {
                    n.as_u64().ok_or(BadId::NotAnId)?.to_string()
                };
                let json: Arc<str> = Arc::from(text.as_str());
                Ok(UserId {
                    key: UserKey {
                        text: Arc::from(text),
                        signed: false,
                    },
                    json,
                })
            }
            Value::String(s) if !s.is_empty() => {
                check_id_text(s)?;
                // Re-encoding a string cannot fail; the error arm keeps this path panic-free.
                let json = serde_json::to_string(s).map_err(|_| BadId::NotAnId)?;
                Ok(UserId {
                    key: UserKey {
                        text: Arc::from(s.as_str()),
                        signed: false,
                    },
                    json: Arc::from(json),
                })
            }
            _ => Err(BadId::NotAnId),
        }
    }

    /// This id in the namespace of token-proven users (see [`UserKey`]): only
    /// for an id a connection's token proved.
    pub fn signed(mut self) -> UserId {
        self.key.signed = true;
        self
    }

    /// This user seen as a teacher.
    pub fn as_teacher(&self) -> TeacherKey {
        TeacherKey(self.key.clone())
    }

    /// This user seen as a student.
    pub fn as_student(&self) -> StudentKey {
        StudentKey(self.key.clone())
    }
}

/// A teacher; never equal to a [`StudentKey`] even with the same text.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TeacherKey(pub UserKey);

impl fmt::Display for TeacherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A student; never equal to a [`TeacherKey`] even with the same text.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct StudentKey(pub UserKey);

impl fmt::Display for StudentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Server-generated UUID v4 chat id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ChatId(Uuid);

impl ChatId {
    /// A fresh version-4 (random, RFC variant) chat id drawn from `rng`.
    pub fn random<R: rand::Rng + ?Sized>(rng: &mut R) -> ChatId {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        ChatId(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// Accepts the canonical lowercase hyphenated form only, the one the server hands out:
    /// a topic `chats:<cid>` must name the chat exactly as `new:chat` spelled it, so
    /// `{…}`, uppercase, urn or simple forms are not the same topic and are refused.
    pub fn parse(s: &str) -> Option<ChatId> {
        let canonical = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if !canonical {
            return None;
        }
        Uuid::parse_str(s).ok().map(ChatId)
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Uuid's Display is already the lowercase hyphenated form.
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn id(v: Value) -> Option<UserId> {
        UserId::from_json(&v)
    }

    #[test]
    fn integer_and_string_with_same_text_are_the_same_user() {
        let number = id(json!(7)).expect("7 is valid");
        let string = id(json!("7")).expect("\"7\" is valid");
        assert_eq!(number.key, string.key);
        assert_eq!(number.key.as_str(), "7");
    }

    #[test]
    fn echo_text_keeps_the_json_type_the_user_sent() {
        assert_eq!(&*id(json!(7)).expect("valid").json, "7");
        assert_eq!(&*id(json!("7")).expect("valid").json, "\"7\"");
        assert_eq!(&*id(json!(-3)).expect("valid").json, "-3");
        assert_eq!(
            &*id(json!(u64::MAX)).expect("valid").json,
            "18446744073709551615"
        );
        // Quotes and backslashes in a string id stay valid JSON when echoed.
        let odd = id(json!("a\"b\\c")).expect("valid");
        assert_eq!(odd.key.as_str(), "a\"b\\c");
        assert_eq!(
            serde_json::from_str::<Value>(&odd.json).expect("valid json"),
            json!("a\"b\\c")
        );
    }

    #[test]
    fn invalid_ids_are_refused() {
        for bad in [
            json!(7.5),
            json!(7.0),
            json!(true),
            json!(null),
            json!({"id": 7}),
            json!([7]),
            json!(""),
        ] {
            assert_eq!(id(bad.clone()), None, "{bad} must be refused");
        }
        // Bigger than u64: serde_json turns it into a float, which is refused.
        let huge: Value = serde_json::from_str("18446744073709551616").expect("parses");
        assert_eq!(id(huge), None);
    }

    #[test]
    fn string_ids_are_bounded() {
        let longest = "é".repeat(MAX_ID_BYTES / 2);
        assert_eq!(longest.len(), MAX_ID_BYTES);
        assert!(id(json!(longest)).is_some(), "{MAX_ID_BYTES} bytes is fine");
        let over = format!("{longest}x");
        assert_eq!(UserId::parse(&json!(over)), Err(BadId::TooLong));
        assert_eq!(
            UserId::parse(&json!("x".repeat(31_000))),
            Err(BadId::TooLong)
        );
        for bad in ["a\nb", "\u{0}", "tab\there", "\u{7f}", "\u{85}"] {
            assert_eq!(
                UserId::parse(&json!(bad)),
                Err(BadId::ControlCharacter),
                "{bad:?}"
            );
        }
        // Integers are short by nature; other types are simply not ids.
        assert!(id(json!(i64::MIN)).is_some());
        assert_eq!(UserId::parse(&json!(true)), Err(BadId::NotAnId));
        // Quotes, spaces and non-ASCII letters are not control characters.
        assert!(id(json!("Zoë \"Z\" O'Brien")).is_some());
    }

    #[test]
    fn key_from_topic_text() {
        assert_eq!(UserKey::new(""), None);
        let from_topic = UserKey::new("7").expect("non-empty");
        assert_eq!(from_topic, id(json!(7)).expect("valid").key);
        assert_eq!(from_topic.to_string(), "7");
    }

    #[test]
    fn teacher_and_student_keys_display_their_key() {
        let user = id(json!(1)).expect("valid");
        assert_eq!(user.as_teacher().to_string(), "1");
        assert_eq!(user.as_student().to_string(), "1");
        // Separate namespaces are enforced by the types: `user.as_teacher() ==
        // user.as_student()` does not compile.
    }

    #[test]
    fn random_chat_ids_are_v4_and_round_trip() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = ChatId::random(&mut rng);
        let b = ChatId::random(&mut rng);
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(a.0.get_version_num(), 4);
        assert_eq!(a.0.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(ChatId::parse(&text), Some(a));
    }

    #[test]
    fn chat_id_parse_accepts_only_the_canonical_form() {
        let good = "a17ffb00-ec45-4129-b076-775057324b7d";
        assert!(ChatId::parse(good).is_some());
        for bad in [
            "",
            "A17FFB00-EC45-4129-B076-775057324B7D",
            "a17ffb00ec454129b076775057324b7d",
            "{a17ffb00-ec45-4129-b076-775057324b7d}",
            "urn:uuid:a17ffb00-ec45-4129-b076-775057324b7d",
            "a17ffb00-ec45-4129-b076-775057324b7",
            "a17ffb00-ec45-4129-b076-775057324b7dd",
            "g17ffb00-ec45-4129-b076-775057324b7d",
            "a17ffb00+ec45-4129-b076-775057324b7d",
            "a17ffb00-ec45-4129-b076-775057324b7é",
        ] {
            assert_eq!(ChatId::parse(bad), None, "{bad:?} must be refused");
        }
    }
}
