//! tutor-queue: a real-time tutoring queue chat server speaking Phoenix
//! Channels. Students wait in a FIFO queue; teachers claim the next student
//! and chat with up to five at once, each chat on its own channel.
//!
//! Layers, from the wire inwards: `transport` (one actor per WebSocket),
//! `protocol` (V1/V2 frame codec), `channels` (Phoenix channel rules),
//! `topics` (broadcast and relay registry), `actors` (the owners of shared
//! state) and `domain` (the tutoring rules as plain Rust). Beside them,
//! `transcripts` keeps the durable record of chats and messages, served by
//! `api` (with `stats`, the figures of `/api/stats`); `web` serves the
//! student, teacher and dashboard pages from `static/`;
//! `metrics` is what operators see. `engine` is the seam between the steps and
//! where the state lives (memory, or Redis: `redis_engine`); with Redis,
//! `cluster` carries what the nodes tell each other.

pub mod actors;
pub mod api;
pub mod channels;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod protocol;
pub mod redis_engine;
pub mod stats;
pub mod topics;
pub mod transcripts;
pub mod transport;
pub mod web;

use std::net::SocketAddr;
use std::time::Instant;

use actix_web::{dev::ServerHandle, App, HttpServer};

pub use config::Config;
pub use transcripts::Transcripts;

use actors::Hub;
use cluster::Cluster;
use engine::Engine;
use redis_engine::RedisTutoring;
use transport::Shutdown;

/// A started server: its address, and a handle to shut it down.
pub struct Server {
    http: actix_web::dev::Server,
    stopper: Stopper,
    local_addr: SocketAddr,
}

/// Shuts a running server down cleanly: every client gets a close frame
/// with 1001 "going away", then the listener and workers stop, then every
/// queued transcript write is committed.
#[derive(Clone)]
pub struct Stopper {
    http: ServerHandle,
    hub: Hub,
}

impl Stopper {
    /// Stops accepting, commits every transcript write queued so far, closes
    /// every client with 1001, stops, and commits what came in meanwhile.
    /// Each wait for the transcript store is bounded by `shutdown_grace`: a
    /// store that cannot commit (disk full) does not hold the exit; what it
    /// has not committed is logged, and given up when the store closes.
    pub async fn shutdown(&self) {
        self.http.pause().await;
        let grace = self.hub.config.shutdown_grace;
        let _ = tokio::time::timeout(grace, self.hub.transcripts.flush_async()).await;
        let sessions: Vec<_> = self
            .hub
            .sessions
            .iter()
            .map(|s| s.value().clone())
            .collect();
        tracing::info!(connections = sessions.len(), "shutting down");
        for session in sessions {
            session.addr().do_send(Shutdown);
        }
        let deadline = Instant::now() + grace;
        while !self.hub.sessions.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.http.stop(true).await;
        let flushed = tokio::time::timeout(grace, self.hub.transcripts.flush_async())
            .await
            .is_ok();
        let lag = self.hub.transcripts.lag();
        if flushed {
            tracing::info!(
                committed = lag.committed,
                failed_commits = lag.failed_commits,
                "transcripts flushed"
            );
        } else {
            tracing::error!(
                uncommitted = lag.uncommitted,
                failed_commits = lag.failed_commits,
                failure = self.hub.transcripts.failure().as_deref().unwrap_or("none"),
                "transcripts NOT flushed: {} writes are not committed and are lost \
                 if the store still cannot commit when it closes",
                lag.uncommitted
            );
        }
    }
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Whether the shared state answers, and whether this node is fenced
    /// (None in memory).
    pub fn engine_health(&self) -> Option<std::sync::Arc<redis_engine::Health>> {
        self.stopper.hub.engine_health.clone()
    }

    /// The server's transcript store (disabled if `Config::transcripts` is off).
    pub fn transcripts(&self) -> &Transcripts {
        &self.stopper.hub.transcripts
    }

    /// Runs until the server is stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        self.http.await
    }
}

/// Starts serving on an already bound listener. Call inside an actix System.
/// Tests bind port 0 and pass the listener in; many servers can share a
/// process because nothing is global. Opens the transcript store in
/// `config.data_dir` unless `config.transcripts` is off; failing to open it
/// fails the start. With `config.redis_url` the tutoring state lives in that
/// Redis (connected at the first step).
pub fn start(listener: std::net::TcpListener, config: Config) -> std::io::Result<Server> {
    let local_addr = listener.local_addr()?;
    let transcripts = if config.transcripts {
        Transcripts::open(&config.data_dir, config.transcript_store.clone())
            .map_err(std::io::Error::other)?
    } else {
        Transcripts::disabled()
    };
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (engine, cluster) = match &config.redis_url {
        Some(url) => {
            let steps = RedisTutoring::new(url, &config.redis_deployment)
                .map_err(std::io::Error::other)?
                .with_grace(config.reconnect_grace);
            let client = steps.client().clone();
            let (cluster, outbox) =
                Cluster::new(steps.node().clone(), steps.prefix(), client.clone());
            (Some(Engine::redis(steps)), Some((cluster, client, outbox)))
        }
        None => (None, None),
    };
    let hub = Hub::start(
        config,
        transcripts.clone(),
        engine,
        cluster.as_ref().map(|(cluster, ..)| cluster.clone()),
    );
    if let Some((cluster, client, outbox)) = cluster {
        let publishing = cluster::publish(client.clone(), outbox, hub.clone());
        actix_web::rt::spawn(publishing);
        actix_web::rt::spawn(cluster::listen(client, cluster, hub.clone()));
    }
    let app_hub = hub.clone();
    let send_timeout = hub.config.send_timeout;
    let http = HttpServer::new(move || {
        App::new()
            .app_data(actix_web::web::Data::new(app_hub.clone()))
            .app_data(actix_web::web::Data::new(transcripts.clone()))
            .configure(http::configure)
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(1)
    // Once a response has ended, actix-web by default lingers up to 1 s
    // reading the rest of an unread request body before closing TCP. A
    // WebSocket's request body never ends, so every close (from either side)
    // took that second; the session runs its own close handshake instead
    // (transport::Session::close), then TCP closes at once. Plain HTTP is
    // unaffected: every route is a GET, and keep-alive is a separate setting.
    .client_disconnect_timeout(std::time::Duration::ZERO)
    .backlog(4096)
    .max_connections(hub.config.accept_per_worker)
    // Chat frames are small and each waits for the other side's answer:
    // with Nagle on, a frame can sit behind a delayed ACK for ~40 ms.
    .tcp_nodelay(true)
    .on_connect(move |connection, _| set_send_timeout(connection, send_timeout))
    .listen(listener)?
    .run();
    let stopper = Stopper {
        http: http.handle(),
        hub,
    };
    Ok(Server {
        http,
        stopper,
        local_addr,
    })
}

/// Bounds how long a connection's written data may go unacknowledged
/// (`TCP_USER_TIMEOUT`). A client that stops reading for good stalls its
/// connection's writer: the session is evicted but not even its close frame
/// can be written, so without this the kernel would keep the connection (its
/// descriptor and its place under `max_connections`) for as long as the
/// client keeps acknowledging zero-window probes, which can be forever.
fn set_send_timeout(connection: &dyn std::any::Any, timeout: std::time::Duration) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(error) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
            tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    let _ = (connection, timeout);
}

/// Serves the tutoring queue on `listener` until the server stops.
pub async fn run(listener: std::net::TcpListener, config: Config) -> std::io::Result<()> {
    start(listener, config)?.wait().await
}
