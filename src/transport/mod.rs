//! The WebSocket transport: one `Session` actor per connection, and the
//! `SessionHandle` the rest of the server uses to reach it.
//!
//! This is the only module that uses `actix-web-actors` (deprecated upstream
//! in favour of `actix-ws`, kept because the project was specified with it):
//! swapping the transport touches nothing else.

mod frame_guard;
mod handle;
mod session;

pub use handle::{Delivery, OutboundBound, SessionHandle, SessionId};
pub use session::{ChannelClosed, Deliver, Evict, Session, Shutdown};

use actix_web::{HttpRequest, HttpResponse};
use actix_web_actors::ws;

use crate::actors::{ConnectionSlot, Hub};
use crate::identity::Identity;
use crate::protocol::Framing;
use frame_guard::{FrameGuard, Refusals};

/// Performs the WebSocket handshake (selecting subprotocol `phoenix` when
/// offered) and starts the connection's session, behind a frame guard that
/// refuses an oversized frame at its header. `identity` is what the
/// upgrade's token proved (None: a tokenless connection).
pub fn accept(
    req: &HttpRequest,
    body: actix_web::web::Payload,
    hub: Hub,
    framing: Framing,
    slot: ConnectionSlot,
    identity: Option<Identity>,
) -> Result<HttpResponse, actix_web::Error> {
    let max_frame = hub.config.max_frame_bytes;
    let refusals = Refusals::default();
    let guarded = FrameGuard::new(body, max_frame, refusals.clone());
    let session = Session::new(hub, framing, slot, identity).guarded_by(refusals);
    ws::WsResponseBuilder::new(session, req, guarded)
        .protocols(&["phoenix"])
        .frame_size(max_frame)
        .start()
}
