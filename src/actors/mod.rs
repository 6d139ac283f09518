//! The actors that own the shared state, and the `Hub` that bundles their
//! addresses with the topic registry. The hub is passed explicitly to every
//! session (no global state), so one process can run many servers.
//!
//! * `TeacherRoster`, `StudentRoster`, `ChatLog` (`parts`): thin owners of
//!   the three parts of the tutoring state (teachers; students, queue and
//!   position watch; chats), each running the closures the steps send it.
//! * `ChatLifetime`: their only writer; one atomic step of `domain::steps`
//!   at a time.
//! * `Admission`: the caps on open WebSocket connections, in all and per
//!   client.

mod admission;
pub mod chat_lifetime;
mod gate;
pub mod parts;

use std::sync::Arc;

use actix::{Actor, Addr};
use dashmap::DashMap;

pub use admission::{Admission, ClientKey, ConnectionSlot, Refused};
pub use chat_lifetime::ChatLifetime;
pub use parts::{ChatLog, RosterParts, StudentRoster, TeacherRoster};

use crate::cluster::Cluster;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::redis_engine::Health;
use crate::stats::{sample_queue, QueueSampler};
use crate::topics::{HoldBounds, Topics};
use crate::transcripts::Transcripts;
use crate::transport::{SessionHandle, SessionId};
use crate::Config;

/// Everything a connection needs to reach the shared state.
#[derive(Clone)]
pub struct Hub {
    pub lifetime: Addr<ChatLifetime>,
    pub topics: Arc<Topics>,
    /// Open connections, for shutdown.
    pub sessions: Arc<DashMap<SessionId, Arc<SessionHandle>>>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// The durable record of chats and relayed messages.
    pub transcripts: Transcripts,
    /// Whether the shared state (Redis) answers; None in memory.
    pub engine_health: Option<Arc<Health>>,
    /// The other nodes of the deployment; None in memory.
    pub cluster: Option<Arc<Cluster>>,
    /// The queue length over the last hours (`GET /api/stats`).
    pub queue_samples: Arc<QueueSampler>,
    /// Connections admitted and not yet closed (the `max_connections` and
    /// per-client bounds).
    admission: Arc<Admission>,
}

impl Hub {
    /// Starts the actors on the current arbiter, over `engine` (None: in memory,
    /// over three part actors started here), and the queue length sampler.
    /// Call inside an actix System.
    pub fn start(
        config: Config,
        transcripts: Transcripts,
        engine: Option<Engine>,
        cluster: Option<Arc<Cluster>>,
    ) -> Hub {
        let topics = Arc::new(Topics::new(HoldBounds {
            messages: config.held_messages,
            bytes: config.held_bytes,
        }));
        let metrics = Arc::new(Metrics::new());
        let engine = engine.unwrap_or_else(|| Engine::memory(RosterParts::start()));
        let engine_health = engine.health();
        let lifetime = ChatLifetime::new(
            engine,
            topics.clone(),
            metrics.clone(),
            transcripts.clone(),
            config.reconnect_grace,
            cluster.clone(),
        )
        .start();
        let queue_samples = Arc::new(QueueSampler::new());
        actix::spawn(sample_queue(
            queue_samples.clone(),
            metrics.clone(),
            config.queue_sample_every,
        ));
        Hub {
            lifetime,
            topics,
            sessions: Arc::new(DashMap::new()),
            metrics,
            admission: Arc::new(Admission::new(
                config.max_connections,
                config.max_connections_per_ip,
                config.max_connections_per_user,
            )),
            config: Arc::new(config),
            transcripts,
            engine_health,
            cluster,
            queue_samples,
        }
    }

    /// A place for one more connection of `client` (None: not counted per
    /// client), or why not.
    pub fn admit_connection(&self, client: Option<ClientKey>) -> Result<ConnectionSlot, Refused> {
        self.admission.admit(client)
    }
}
