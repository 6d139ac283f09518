//! The HTTP API: guest sign-in and the read API of the transcript store
//! (issues 6 and 11).
//!
//! * `POST /api/session` with `{"name": "…", "role": "student"|"teacher"}`
//!   → `{"token": "…", "user": {"id","name","role"}, "expires_at": s}`: a
//!   guest token for a new user id, `<name>·<32 hex digits of a random
//!   UUID>` (the name cut at 40 characters: the pages show it), valid for
//!   `Config::guest_token_ttl`. 403 if the role is not in
//!   `Config::guest_roles` (never `admin`) or the server has no secret; 400
//!   for a body that is not that JSON or a name that is empty after
//!   trimming, longer than 100 characters or has control characters. The
//!   body is bounded ([`MAX_SESSION_BODY`] bytes; more: 413).
//! * `GET /api/session` → `{"user": {"id","name","role"},
//!   "reconnect_grace_ms": n}`: who the bearer token is, and how long the
//!   server keeps a token user's place after its connection goes (PROTOCOL
//!   6.3; 0 = not at all). The pages read it while connected, so that when
//!   the connection drops they can say until when the place is kept.
//! * `GET /api/chats?teacher=&student=&limit=&before=` →
//!   `{"chats":[chat…],"next":cursor|null}`, newest first; `limit` 1..=500
//!   (default 50); `next` is the `before` of the following page.
//! * `GET /api/chats/{id}/transcript?after=&limit=` →
//!   `{"chat":chat,"messages":[{"seq","sender","payload","at"}…],"next":seq|null}`,
//!   messages in relay order; `limit` 1..=10000 (default 1000); `next` is
//!   the `after` of the following page.
//!
//! * `GET /api/stats?since=<unix ms>` (default: 7 days ago) → the
//!   statistics of issue 14 (`crate::stats::Summary`): `{"since","until",
//!   "chats","wait_ms":{"median","p90"},"chat_length_ms":{"median"},
//!   "per_teacher":[{"teacher","chats"}…],"busiest_hours":[{"hour","chats"}
//!   ×24],"queue_length":[{"at","waiting"}…],"live":{"waiting","chatting",
//!   "teachers"},"wait_histogram":[{"from_ms","to_ms","chats"}…]}`. `chats`
//!   counts every chat created since `since`; the other figures are those of
//!   the newest 100,000 of them. Waits are `created_at − queued_at` (chats
//!   with a known line time), lengths `finished_at − started_at`; median and
//!   p90 are nearest-rank (a value some chat had), null with no chat to
//!   take them from. Hours are UTC. `queue_length` holds the samples of the
//!   live waiting count (one a minute, the last 6 hours, oldest first);
//!   `live` the counts now. For teachers and admins (a student: 403); a
//!   `since` that is not a non-negative integer: 400. On several nodes every
//!   node's figures are gathered and merged first (as the chats list is).
//!
//! Every read needs `Authorization: Bearer <token>` (a token of
//! `crate::identity`): none, or one that does not verify → 401 with
//! `WWW-Authenticate: Bearer`. An admin reads every chat; a teacher only the
//! chats where it is the teacher (its `sub` as a teacher id), a student only
//! those where it is the student. A list filter naming another user in the
//! caller's own role (`?student=` for a student, `?teacher=` for a teacher)
//! is refused with 403; the other filter narrows within the caller's chats.
//! A transcript of a chat that is not the caller's answers 404 exactly as an
//! unknown chat does (existence is not revealed).
//!
//! A chat is `{"id","teacher","student","created_at","started_at",
//! "finished_at","ended_by","question","queued_at"}`; times are unix
//! milliseconds (or null), `ended_by` is `terminated`, `student_left`,
//! `teacher_left`, `interrupted` or null; `question` is what the student
//! asked when it got in line (or null), `queued_at` when it got in line (or
//! null if unknown).
//! Payloads are emitted exactly as stored (raw JSON, never re-encoded).
//! Errors are JSON `{"error": "…"}`: 400 for a bad parameter, 401/403 as
//! above, 404 for an unknown chat, 500 if the store cannot be read. An empty
//! parameter counts as absent; unknown parameters are ignored.
//!
//! Owns query parsing, the access rules of the reads and the JSON shapes.
//! Must never read the store on an async thread (every read goes through
//! `web::block`), never panic on a parameter, an id, a header or a body,
//! and never answer an unbounded body (reads are paged).

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::actors::Hub;
use crate::cluster::FoundChat;
use crate::domain::{ChatId, StudentKey, TeacherKey, UserKey};
use crate::identity::{Claims, Identity, MintError, Role};
use crate::transcripts::{
    unix_ms, ChatCursor, ChatQuery, ChatRecord, StoreError, Transcript, TranscriptQuery,
    Transcripts, MAX_CHAT_PAGE, MAX_TRANSCRIPT_PAGE,
};

/// Largest `POST /api/session` body, in bytes.
pub const MAX_SESSION_BODY: usize = 4096;

/// Registers the API routes; needs `web::Data<Transcripts>` and
/// `web::Data<Hub>` in the app.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/api/session")
            .app_data(web::PayloadConfig::new(MAX_SESSION_BODY))
            .route(web::post().to(sign_in))
            .route(web::get().to(session)),
    );
    config.route("/api/chats", web::get().to(list_chats));
    config.route("/api/chats/{id}/transcript", web::get().to(transcript));
    config.route("/api/stats", web::get().to(stats));
}

#[derive(Deserialize)]
struct SessionRequest {
    name: String,
    role: String,
}

#[derive(Serialize)]
struct SessionBody<'a> {
    token: String,
    user: SessionUser<'a>,
    expires_at: u64,
}

#[derive(Serialize)]
struct SessionUser<'a> {
    id: &'a str,
    name: &'a str,
    role: Role,
}

/// `POST /api/session`: a guest token for a new random id.
async fn sign_in(hub: web::Data<Hub>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<SessionRequest>(&body) else {
        return error(
            HttpResponse::BadRequest(),
            "expected {\"name\": \"…\", \"role\": \"student\"|\"teacher\"}",
        );
    };
    let Ok(role) = request.role.parse::<Role>() else {
        return error(
            HttpResponse::BadRequest(),
            "role must be student or teacher",
        );
    };
    let Some(keys) = &hub.config.tokens else {
        return error(HttpResponse::Forbidden(), "this server issues no tokens");
    };
    if role == Role::Admin || !hub.config.guest_roles.contains(&role) {
        return error(
            HttpResponse::Forbidden(),
            &format!("guest sign-in is not open to the {role} role"),
        );
    }
    let name = request.name.trim();
    let id = guest_id(name);
    let claims = Claims::new(id.as_str(), role, name, hub.config.guest_token_ttl);
    match keys.mint(&claims) {
        Ok(token) => HttpResponse::Ok().json(SessionBody {
            token,
            user: SessionUser {
                id: &id,
                name,
                role,
            },
            expires_at: claims.exp,
        }),
        Err(MintError::Claims(bad)) => error(HttpResponse::BadRequest(), &bad.to_string()),
        Err(MintError::Sign(failure)) => {
            tracing::error!(error = %failure, "cannot sign a guest token");
            error(HttpResponse::InternalServerError(), "cannot sign a token")
        }
    }
}

#[derive(Serialize)]
struct SessionInfo<'a> {
    user: SessionUser<'a>,
    reconnect_grace_ms: u128,
}

/// `GET /api/session`: who the token is, and the grace window of 6.3.
async fn session(Caller(caller): Caller, hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(SessionInfo {
            user: SessionUser {
                id: caller.user().key.as_str(),
                name: caller.name(),
                role: caller.role(),
            },
            reconnect_grace_ms: hub.config.reconnect_grace.as_millis(),
        })
}

/// Longest name prefix of a guest id, in characters (the pages cut names
/// they show at 40 too).
const GUEST_ID_NAME_CHARS: usize = 40;

/// A new guest user id: `<name>·<32 hex digits of a random UUID>`. The
/// random part makes it new; the name prefix (at most 40 characters) is what
/// the pages show for a user, as chat objects carry ids and no names.
fn guest_id(name: &str) -> String {
    let prefix: String = name.chars().take(GUEST_ID_NAME_CHARS).collect();
    let random = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    format!("{}·{}", prefix.trim_end(), random.simple())
}

/// The identity of the request's bearer token, taken by the reads: a request
/// without a valid one is answered 401 (see [`caller`]) before the handler runs.
struct Caller(Identity);

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Caller, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = match req.app_data::<web::Data<Hub>>() {
            Some(hub) => caller(req, hub)
                .map(Caller)
                .map_err(|response| InternalError::from_response("unauthorized", *response).into()),
            None => Err(actix_web::error::ErrorInternalServerError("no hub")),
        };
        std::future::ready(found)
    }
}

/// The identity of the request's `Authorization: Bearer` token, or the 401
/// to answer.
fn caller(req: &HttpRequest, hub: &Hub) -> Result<Identity, Box<HttpResponse>> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return Err(Box::new(unauthorized("a bearer token is required", None)));
    };
    hub.config
        .verify_token(token)
        .map_err(|failure| Box::new(unauthorized(&failure.to_string(), Some("invalid_token"))))
}

fn unauthorized(message: &str, code: Option<&str>) -> HttpResponse {
    let challenge = match code {
        Some(code) => format!("Bearer error=\"{code}\""),
        None => "Bearer".to_owned(),
    };
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .json(serde_json::json!({ "error": message }))
}

fn signed_key(text: &str) -> Option<UserKey> {
    UserKey::new(text).map(|key| key.in_namespace(true))
}

/// `query` narrowed to the chats `caller` may read, or the 403 for a filter
/// naming another user in the caller's own role.
fn scope(query: ChatQuery, caller: &Identity) -> Result<ChatQuery, Box<HttpResponse>> {
    scope_as(query, caller.role(), &caller.user().key).ok_or_else(|| {
        Box::new(error(
            HttpResponse::Forbidden(),
            "you may list only your own chats",
        ))
    })
}

/// As [`scope`], for a caller signed in as `user` with `role`; None for a filter
/// naming another user in the caller's own role.
fn scope_as(mut query: ChatQuery, role: Role, user: &UserKey) -> Option<ChatQuery> {
    match role {
        // An admin's filters find the id among signed-in users and tokenless
        // clients alike.
        Role::Admin => query.any_namespace = true,
        Role::Teacher => {
            let me = TeacherKey(user.clone());
            if query.teacher.as_ref().is_some_and(|asked| *asked != me) {
                return None;
            }
            query.teacher = Some(me);
        }
        Role::Student => {
            let me = StudentKey(user.clone());
            if query.student.as_ref().is_some_and(|asked| *asked != me) {
                return None;
            }
            query.student = Some(me);
        }
    }
    Some(query)
}

/// One node's page of a chats list asked on another node (`crate::cluster`),
/// for a caller signed in as `user` with `role`: the chats as the API lists
/// them, newest first, and whether there are more. Empty for a query this
/// node cannot answer. Touches the disk: not on an async thread.
pub fn chats_page_as(
    store: &Transcripts,
    query: &str,
    role: Role,
    user: &str,
) -> (Vec<FoundChat>, bool) {
    let scoped = parse_chat_query(query)
        .ok()
        .zip(signed_key(user))
        .and_then(|(query, user)| scope_as(query, role, &user));
    let Some(Ok(page)) = scoped.map(|query| store.list_chats(&query)) else {
        return (Vec::new(), false);
    };
    (
        page.chats.iter().filter_map(found).collect(),
        page.next.is_some(),
    )
}

/// A listed chat, as another node merges it.
fn found(chat: &ChatRecord) -> Option<FoundChat> {
    Some(FoundChat {
        created_at: unix_ms(chat.created_at),
        chat: chat.id.to_string(),
        view: serde_json::to_string(&ChatView::from(chat)).ok()?,
    })
}

/// Whether `caller` may read `chat`.
fn may_read(caller: &Identity, chat: &ChatRecord) -> bool {
    match caller.role() {
        Role::Admin => true,
        Role::Teacher => chat.teacher == caller.user().as_teacher(),
        Role::Student => chat.student == caller.user().as_student(),
    }
}

/// As [`may_read`], for a caller signed in on another node as `user` (its
/// token's `sub`) with `role` (`crate::cluster`).
pub fn may_read_as(role: Role, user: &str, chat: &ChatRecord) -> bool {
    let is = |key: &crate::domain::UserKey| key.is_signed() && key.as_str() == user;
    match role {
        Role::Admin => true,
        Role::Teacher => is(&chat.teacher.0),
        Role::Student => is(&chat.student.0),
    }
}

/// A transcript page as the API's JSON body.
pub fn transcript_json(transcript: &Transcript) -> Option<String> {
    serde_json::to_string(&TranscriptBody::from(transcript)).ok()
}

async fn list_chats(
    Caller(caller): Caller,
    req: HttpRequest,
    store: web::Data<Transcripts>,
    hub: web::Data<Hub>,
) -> HttpResponse {
    let query = match parse_chat_query(req.query_string()) {
        Ok(query) => query,
        Err(message) => return error(HttpResponse::BadRequest(), &message),
    };
    let query = match scope(query, &caller) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let limit = query.limit;
    let store = store.get_ref().clone();
    match web::block(move || store.list_chats(&query)).await {
        // Several nodes: each recorded the chats homed on it; their pages are
        // merged, newest first, into one.
        Ok(Ok(page)) if hub.cluster.is_some() => {
            let Some(cluster) = hub.cluster.as_ref() else {
                return error(HttpResponse::InternalServerError(), "no cluster");
            };
            let user = caller.user().key.as_str();
            let (mut chats, mut more) = cluster
                .chats_elsewhere(req.query_string(), caller.role(), user)
                .await;
            chats.extend(page.chats.iter().filter_map(found));
            more |= page.next.is_some();
            chats.sort_by(|a, b| (b.created_at, &b.chat).cmp(&(a.created_at, &a.chat)));
            more |= chats.len() > limit;
            chats.truncate(limit);
            let next = match chats.last() {
                Some(last) if more => format!(r#""{}_{}""#, last.created_at, last.chat),
                _ => "null".to_owned(),
            };
            let views: Vec<&str> = chats.iter().map(|c| c.view.as_str()).collect();
            HttpResponse::Ok()
                .content_type("application/json")
                .body(format!(
                    r#"{{"chats":[{}],"next":{next}}}"#,
                    views.join(",")
                ))
        }
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

async fn transcript(
    Caller(caller): Caller,
    req: HttpRequest,
    store: web::Data<Transcripts>,
    hub: web::Data<Hub>,
) -> HttpResponse {
    let Some(chat) = ChatId::parse(req.match_info().query("id")) else {
        return error(HttpResponse::NotFound(), "unknown chat");
    };
    let query = match parse_transcript_query(req.query_string()) {
        Ok(query) => query,
        Err(message) => return error(HttpResponse::BadRequest(), &message),
    };
    let store = store.get_ref().clone();
    let asked = query;
    match web::block(move || store.transcript(chat, &asked)).await {
        Ok(Ok(Some(transcript))) if may_read(&caller, &transcript.chat) => {
            HttpResponse::Ok().json(TranscriptBody::from(&transcript))
        }
        // Recorded by another node (its home): that node answers.
        Ok(Ok(None)) if hub.cluster.is_some() => {
            let Some(cluster) = hub.cluster.as_ref() else {
                return error(HttpResponse::NotFound(), "unknown chat");
            };
            let user = caller.user().key.as_str();
            match cluster
                .transcript_elsewhere(chat, &query, caller.role(), user)
                .await
            {
                Some(body) => HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body),
                None => error(HttpResponse::NotFound(), "unknown chat"),
            }
        }
        // Not the caller's: answered exactly as an unknown chat.
        Ok(Ok(_)) => error(HttpResponse::NotFound(), "unknown chat"),
        Ok(Err(failure)) => unavailable(&failure),
        Err(_) => error(
            HttpResponse::InternalServerError(),
            "transcript read failed",
        ),
    }
}

/// How far back `GET /api/stats` looks unless given `since`.
pub const DEFAULT_STATS_SPAN: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// `GET /api/stats`: the figures of the chats since `since`, with the queue
/// samples and the live counts; for teachers and admins.
async fn stats(
    Caller(caller): Caller,
    req: HttpRequest,
    store: web::Data<Transcripts>,
    hub: web::Data<Hub>,
) -> HttpResponse {
    if caller.role() == Role::Student {
        return error(
            HttpResponse::Forbidden(),
            "the statistics are for teachers and admins",
        );
    }
    let until = unix_ms(std::time::SystemTime::now());
    let since = match parse_since(req.query_string(), until) {
        Ok(since) => since,
        Err(message) => return error(HttpResponse::BadRequest(), &message),
    };
    let store = store.get_ref().clone();
    let figures = match web::block(move || store.figures(since)).await {
        Ok(Ok(figures)) => figures,
        Ok(Err(failure)) => return unavailable(&failure),
        Err(_) => {
            return error(
                HttpResponse::InternalServerError(),
                "transcript read failed",
            )
        }
    };
    // Several nodes: each recorded the chats homed on it.
    let elsewhere = match &hub.cluster {
        Some(cluster) => Some(cluster.stats_elsewhere(since).await),
        None => None,
    };
    let samples = hub.queue_samples.samples();
    let live = hub.metrics.live();
    // The merge and the percentiles sort up to 2 × MAX_CHATS values: off
    // the async threads too.
    let summary = web::block(move || {
        let figures = match elsewhere {
            Some(elsewhere) => figures.merge(elsewhere),
            None => figures,
        };
        crate::stats::summary(since, until, &figures, samples, live)
    })
    .await;
    match summary {
        Ok(summary) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(summary),
        Err(_) => error(HttpResponse::InternalServerError(), "statistics failed"),
    }
}

/// The `since` of `GET /api/stats` (unix ms), by default
/// [`DEFAULT_STATS_SPAN`] before `now`.
fn parse_since(query: &str, now: i64) -> Result<i64, String> {
    let default = now.saturating_sub(DEFAULT_STATS_SPAN.as_millis() as i64);
    let mut since = default;
    for (name, value) in params(query)? {
        if name == "since" {
            let digits = value.bytes().all(|b| b.is_ascii_digit());
            since = match value.parse::<i64>() {
                Ok(ms) if digits => ms,
                _ => return Err("since must be a time in unix milliseconds".to_owned()),
            };
        }
    }
    Ok(since)
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
            // Filters name signed-in users: the API is read with tokens, and
            // a tokenless id of the same text is someone else.
            "teacher" => parsed.teacher = signed_key(&value).map(TeacherKey),
            "student" => parsed.student = signed_key(&value).map(StudentKey),
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
    question: Option<&'a str>,
    queued_at: Option<i64>,
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
            question: chat.question.as_deref(),
            queued_at: chat.queued_at.map(unix_ms),
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
    fn stats_since() {
        let week = DEFAULT_STATS_SPAN.as_millis() as i64;
        assert_eq!(parse_since("", week + 5), Ok(5));
        assert_eq!(parse_since("since=", week + 5), Ok(5), "empty is absent");
        assert_eq!(parse_since("since=0", 9), Ok(0));
        assert_eq!(
            parse_since("since=1700000000000&x=1", 9),
            Ok(1_700_000_000_000)
        );
        for bad in [
            "since=-1",
            "since=+1",
            "since=1.5",
            "since=abc",
            "since=99999999999999999999999",
            "since=1&since=2",
        ] {
            assert!(parse_since(bad, 9).is_err(), "{bad:?} must be refused");
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
