//! Two tutor-queue nodes of one deployment in the test process (issue 13): two servers
//! started with the same `Config.redis_url` and `Config.redis_deployment`, so they share
//! one queue, one roster and one set of chats. Their Redis is the one
//! `TQ_TEST_REDIS_URL` names (CI's), in a deployment of the test's own, or else a
//! `redis-server` of the test's own ([`TestRedis`]); without one the test skips with a
//! message, and fails under `CI=true`.

use tutor_queue::Config;

use super::redis::TestRedis;
use super::server::{start, Server};

/// Nodes A and B of one deployment. The Redis of the test's own (if it has one) is
/// stopped when this is dropped: keep it alive for the whole test.
pub struct TwoNodes {
    pub a: Server,
    pub b: Server,
    _redis: Option<TestRedis>,
}

impl TwoNodes {
    /// Node A for even `i`, node B for odd `i`, with its name: for users spread over
    /// both nodes in turn.
    pub fn alternate(&self, i: usize) -> (&Server, &'static str) {
        if i.is_multiple_of(2) {
            (&self.a, "A")
        } else {
            (&self.b, "B")
        }
    }
}

/// Two nodes started with `config` (its `redis_url` and `redis_deployment` replaced by
/// the test's own), or None (after saying why) where there is no Redis to run them on.
/// `test` names the test in that message.
pub fn two_nodes(test: &str, config: Config) -> Option<TwoNodes> {
    two_nodes_configured(test, config.clone(), config)
}

/// Like [`two_nodes`], node A started with `a` and node B with `b` (e.g. a data
/// directory each, as on two machines).
pub fn two_nodes_configured(test: &str, a: Config, b: Config) -> Option<TwoNodes> {
    let (url, redis) = match std::env::var("TQ_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let redis = TestRedis::start(test)?;
            (redis.url(), Some(redis))
        }
    };
    let deployment = format!("nodes-{:016x}", rand::random::<u64>());
    let shared = |config: Config| Config {
        redis_url: Some(url.clone()),
        redis_deployment: deployment.clone(),
        ..config
    };
    Some(TwoNodes {
        a: start(shared(a)),
        b: start(shared(b)),
        _redis: redis,
    })
}
