//! Integration tests of tutor-queue: one test binary (DESIGN.md), each test starts its
//! own server on port 0 and speaks real WebSockets; protocol tests run under V1 and V2.
//! Written from PROTOCOL.md, independently of the server's code.

#[macro_use]
mod support;

mod api_access;
mod bad_input;
mod browser;
mod channels;
mod chat;
mod extensions;
mod identity;
mod identity_binding;
mod keep_place;
mod limits;
mod node_death;
mod nodes;
mod office_hours;
mod operations;
mod phoenix_js;
mod presence;
mod queue;
mod recording;
mod redis_engine;
mod redis_trouble;
mod shutdown;
mod stats;
mod transcripts;
mod transport;
mod transport_limits;
mod web;
