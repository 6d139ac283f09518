//! HTTP routes: the WebSocket upgrade paths of PROTOCOL 1.2, with framing
//! chosen by `vsn` (1.3) and the connection limits (503 past the server's,
//! 429 past one client's); `/healthz`
//! and `/metrics` for operators; the web pages (`web`); the transcript API
//! (`api`); 404 for everything else.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::{ClientKey, Hub, Refused};
use crate::metrics::Rejection;
use crate::protocol;
use crate::transport;

/// The paths that accept an upgrade: `/ws` for the 2015 client,
/// `<endpoint>/websocket` for current Phoenix clients, `/socket` for symmetry.
pub const SOCKET_PATHS: [&str; 4] = ["/ws", "/ws/websocket", "/socket/websocket", "/socket"];

/// Registers the routes on an actix-web app.
pub fn configure(config: &mut web::ServiceConfig) {
    for path in SOCKET_PATHS {
        config.route(path, web::get().to(upgrade));
    }
    config.route("/healthz", web::get().to(healthz));
    config.route("/metrics", web::get().to(metrics));
    crate::web::configure(config);
    crate::api::configure(config);
    config.default_service(web::to(not_found));
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, actix_web::Error> {
    let framing = match protocol::framing_from_query(req.query_string()) {
        Ok(framing) => framing,
        Err(error) => return Ok(HttpResponse::Forbidden().body(error.to_string())),
    };
    let client = req.peer_addr().map(|peer| ClientKey::peer(peer.ip()));
    match hub.admit_connection(client) {
        Ok(slot) => transport::accept(&req, body, hub.get_ref().clone(), framing, slot),
        Err(Refused::ServerFull) => {
            hub.metrics.rejected(Rejection::ConnectionLimit);
            Ok(HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "5"))
                .body("too many connections"))
        }
        Err(Refused::ClientFull) => {
            hub.metrics.rejected(Rejection::ClientConnectionLimit);
            Ok(HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "5"))
                .body("too many connections from this address"))
        }
    }
}

/// 200 while the server is serving and its transcript store commits; 503
/// with the reason while the store is failing (chat messages are refused
/// then, so the server is not healthy).
async fn healthz(hub: web::Data<Hub>) -> HttpResponse {
    match hub.transcripts.failure() {
        None => HttpResponse::Ok()
            .content_type(ContentType::plaintext())
            .body("ok\n"),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .content_type(ContentType::plaintext())
            .body(format!("transcript store failing: {reason}\n")),
    }
}

fn saturating_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Prometheus text exposition of `crate::metrics`.
async fn metrics(hub: web::Data<Hub>) -> HttpResponse {
    let lag = hub.transcripts.lag();
    let metrics = &hub.metrics;
    metrics.transcript_lag.set(saturating_i64(lag.uncommitted));
    metrics
        .transcript_lag_age_ms
        .set(saturating_i64(lag.oldest.as_millis()));
    metrics.set_transcript_failed_commits(lag.failed_commits);
    metrics.transcript_failing.set(i64::from(lag.failing));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(hub.metrics.encode())
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().body("not found")
}
