//! HTTP routes: the WebSocket upgrade paths of PROTOCOL 1.2, with framing
//! chosen by `vsn` (1.3), the transcript API (`api`), and 404 for
//! everything else.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::Hub;
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
    transport::accept(&req, body, hub.get_ref().clone(), framing)
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().body("not found")
}
