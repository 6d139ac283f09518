//! Stateless Phoenix Channels wire codec (PROTOCOL.md sections 1.3, 1.4, 2, 3.2-3.5).
//!
//! Owns: choosing the framing from the handshake query (`vsn`), decoding one
//! inbound text frame, and encoding every outbound frame in V1 (JSON object)
//! or V2 (JSON array) framing.
//!
//! Must never: do I/O, hold state between calls, panic on any client input,
//! or interpret payloads (they pass through as raw JSON text). Channel
//! semantics (dispatch, join refs bookkeeping) live elsewhere.

mod decode;
mod encode;
mod vsn;

pub use decode::{decode, is_object, DecodeError, Inbound};
pub use encode::{
    encode_channel_error, encode_close, encode_message, encode_push, encode_reply, error_response,
    ReplyStatus,
};
pub use vsn::{HandshakeParams, UnsupportedVsn};

/// Wire framing of one connection, fixed at handshake time (PROTOCOL 1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// JSON object `{"topic","event","payload","ref"}` (client A, `vsn` absent or 1.0.x).
    V1,
    /// JSON array `[join_ref, ref, topic, event, payload]` (`vsn` 2.0.x).
    V2,
}
