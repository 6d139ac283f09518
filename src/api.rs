//! The HTTP read API of the transcript store (issue 6):
//!
//! * `GET /api/chats?teacher=&student=&limit=&before=` →
//!   `{"chats":[chat…],"next":cursor|null}`, newest first; `limit` 1..=500
//!   (default 50); `next` is the `before` of the following page.
//! * `GET /api/chats/{id}/transcript?after=&limit=` →
//!   `{"chat":chat,"messages":[{"seq","sender","payload","at"}…],"next":seq|null}`,
//!   messages in relay order; `limit` 1..=10000 (default 1000); `next` is
//!   the `after` of the following page.
//!
//! A chat is `{"id","teacher","student","created_at","started_at",
//! "finished_at","ended_by"}`; times are unix milliseconds (or null),
//! `ended_by` is `terminated`, `student_left`, `teacher_left` or null.
//! Payloads are emitted exactly as stored (raw JSON, never re-encoded).
//! Errors are JSON `{"error": "…"}`: 400 for a bad parameter, 404 for an
//! unknown chat, 500 if the store cannot be read. An empty parameter counts
//! as absent; unknown parameters are ignored.
//!
//! Owns query parsing and the JSON shapes. Must never read the store on an
//! async thread (every read goes through `web::block`), never panic on a
//! parameter or an id, and never answer an unbounded body (reads are paged).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::domain::{ChatId, StudentKey, TeacherKey, UserKey};
use crate::transcripts::{
    unix_ms, ChatCursor, ChatQuery, ChatRecord, StoreError, Transcript, TranscriptQuery,
    Transcripts, MAX_CHAT_PAGE, MAX_TRANSCRIPT_PAGE,
};

/// Registers the API routes; needs `web::Data<Transcripts>` in the app.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/api/chats", web::get().to(list_chats));
    config.route("/api/chats/{id}/transcript", web::get().to(transcript));
}

async fn list_chats(req: HttpRequest, store: web::Data<Transcripts>) -> HttpResponse {
    let query = match parse_chat_query(req.query_string()) {
        Ok(query) => query,
        Err(message) => return error(HttpResponse::BadRequest(), &message),
    };
    let store = store.get_ref().clone();
    match web::block(move || store.list_chats(&query)).await {
        Ok(Ok(page)) => HttpResponse::Ok().json(ChatsBody {
            chats: page.chats.iter().map(ChatView::from).collect(),
            next: page.next.map(|cursor| cursor.to_string()),
        }),
        Ok(Err(failure)) => unavailable(&failure),
        Err(_) => error(
            HttpResponse::InternalServerError(),
            "transcript read failed",
        ),
    }
}

async fn transcript(req: HttpRequest, store: web::Data<Transcripts>) -> HttpResponse {
    let Some(chat) = ChatId::parse(req.match_info().query("id")) else {
        return error(HttpResponse::NotFound(), "unknown chat");
    };
    let query = match parse_transcript_query(req.query_string()) {
        Ok(query) => query,
        Err(message) => return error(HttpResponse::BadRequest(), &message),
    };
    let store = store.get_ref().clone();
    match web::block(move || store.transcript(chat, &query)).await {
        Ok(Ok(Some(transcript))) => HttpResponse::Ok().json(TranscriptBody::from(&transcript)),
        Ok(Ok(None)) => error(HttpResponse::NotFound(), "unknown chat"),
        Ok(Err(failure)) => unavailable(&failure),
        Err(_) => error(
            HttpResponse::InternalServerError(),
            "transcript read failed",
        ),
    }
}

fn error(mut response: actix_web::HttpResponseBuilder, message: &str) -> HttpResponse {
    response.json(serde_json::json!({ "error": message }))
}

fn unavailable(failure: &StoreError) -> HttpResponse {
    tracing::error!(error = %failure, "transcript read failed");
    error(
        HttpResponse::InternalServerError(),
        "transcript read failed",
    )
}

/// The query string as (name, value) pairs; a repeated name is an error
/// (which one would win is not obvious), an empty value counts as absent.
fn params(query: &str) -> Result<Vec<(String, String)>, String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| "malformed query string".to_owned())?
        .into_inner();
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(format!("{name} given twice"));
        }
    }
    Ok(pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect())
}

/// A decimal count in `1..=max`.
fn parse_limit(text: &str, max: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("limit must be an integer from 1 to {max}")),
    }
}

fn parse_chat_query(query: &str) -> Result<ChatQuery, String> {
    let mut parsed = ChatQuery::default();
    for (name, value) in params(query)? {
        match name.as_str() {
            "teacher" => parsed.teacher = UserKey::new(&value).map(TeacherKey),
            "student" => parsed.student = UserKey::new(&value).map(StudentKey),
            "limit" => parsed.limit = parse_limit(&value, MAX_CHAT_PAGE)?,
            "before" => {
                let cursor = value.parse::<ChatCursor>();
                parsed.before = Some(cursor.map_err(|_| "before is not a cursor".to_owned())?);
            }
            _ => {}
        }
    }
    Ok(parsed)
}

fn parse_transcript_query(query: &str) -> Result<TranscriptQuery, String> {
    let mut parsed = TranscriptQuery::default();
    for (name, value) in params(query)? {
        match name.as_str() {
            "limit" => parsed.limit = parse_limit(&value, MAX_TRANSCRIPT_PAGE)?,
            "after" => {
                let digits = value.bytes().all(|b| b.is_ascii_digit());
                parsed.after = match value.parse::<u64>() {
                    Ok(after) if digits => after,
                    _ => return Err("after must be a message seq".to_owned()),
                };
            }
            _ => {}
        }
    }
    Ok(parsed)
}

#[derive(Serialize)]
struct ChatsBody<'a> {
    chats: Vec<ChatView<'a>>,
    next: Option<String>,
}

#[derive(Serialize)]
struct ChatView<'a> {
    id: String,
    teacher: &'a str,
    student: &'a str,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    ended_by: Option<&'static str>,
}

impl<'a> From<&'a ChatRecord> for ChatView<'a> {
    fn from(chat: &'a ChatRecord) -> Self {
        ChatView {
            id: chat.id.to_string(),
            teacher: chat.teacher.0.as_str(),
            student: chat.student.0.as_str(),
            created_at: unix_ms(chat.created_at),
            started_at: chat.started_at.map(unix_ms),
            finished_at: chat.finished_at.map(unix_ms),
            ended_by: chat.ended.map(|how| how.as_str()),
        }
    }
}

#[derive(Serialize)]
struct TranscriptBody<'a> {
    chat: ChatView<'a>,
    messages: Vec<MessageView<'a>>,
    next: Option<u64>,
}

#[derive(Serialize)]
struct MessageView<'a> {
    seq: u64,
    sender: &'static str,
    payload: &'a RawValue,
    at: i64,
}

impl<'a> From<&'a Transcript> for TranscriptBody<'a> {
    fn from(transcript: &'a Transcript) -> Self {
        TranscriptBody {
            chat: ChatView::from(&transcript.chat),
            messages: transcript
                .messages
                .iter()
                .map(|m| MessageView {
                    seq: m.seq,
                    sender: m.sender.as_str(),
                    payload: &m.payload,
                    at: unix_ms(m.at),
                })
                .collect(),
            next: transcript.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_query_defaults_and_filters() {
        assert_eq!(parse_chat_query(""), Ok(ChatQuery::default()));
        assert_eq!(
            parse_chat_query("teacher=&student=&limit=&before="),
            Ok(ChatQuery::default()),
            "empty values count as absent"
        );
        let q = parse_chat_query("teacher=7&student=a%22b&limit=500&other=x").expect("valid");
        assert_eq!(q.teacher.map(|t| t.to_string()).as_deref(), Some("7"));
        assert_eq!(q.student.map(|s| s.to_string()).as_deref(), Some("a\"b"));
        assert_eq!(q.limit, 500);
        let chat = ChatId::random(&mut rand::rng());
        let q = parse_chat_query(&format!("before=12_{chat}")).expect("valid");
        assert_eq!(q.before.map(|c| c.to_string()), Some(format!("12_{chat}")));
    }

    #[test]
    fn bad_chat_queries_are_refused_with_a_reason() {
        for bad in [
            "limit=0",
            "limit=501",
            "limit=-1",
            "limit=+5",
            "limit=abc",
            "limit=99999999999999999999999",
            "before=nope",
            "before=12_xyz",
            "limit=5&limit=6",
        ] {
            assert!(parse_chat_query(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn transcript_queries() {
        assert_eq!(parse_transcript_query(""), Ok(TranscriptQuery::default()));
        assert_eq!(
            parse_transcript_query("after=5&limit=10000"),
            Ok(TranscriptQuery {
                after: 5,
                limit: 10_000
            })
        );
        for bad in ["after=-1", "after=x", "after=+1", "limit=10001", "limit=0"] {
            assert!(
                parse_transcript_query(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
