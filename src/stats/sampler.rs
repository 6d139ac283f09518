//! The queue length over the last hours: one sample of the live `waiting`
//! count per interval (a minute by default), the last [`QUEUE_SAMPLES`] (6
//! hours of minutes) in a ring in memory.
//!
//! Owns the ring and the task that fills it ([`sample_queue`]). The count
//! it samples is the `user:status` snapshot the node already keeps (the
//! `tutor_queue_queue_length` gauge, set inside every step that changes
//! it): in memory this node's queue; on Redis the deployment's, since every
//! node hears every step's snapshot, so any node's samples are the
//! deployment's. (A node that has just started knows the counts only from
//! the first step it runs or hears: until then it samples 0.)
//!
//! Must never grow: the ring drops its oldest sample for each new one past
//! [`QUEUE_SAMPLES`]. A restarted node starts with an empty ring (the
//! samples are not stored).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::metrics::Metrics;
use crate::transcripts::unix_ms;

/// Samples kept: 6 hours at one a minute.
pub const QUEUE_SAMPLES: usize = 360;

/// The live `waiting` count at `at` (unix ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QueueSample {
    pub at: i64,
    pub waiting: usize,
}

/// The last [`QUEUE_SAMPLES`] samples, oldest first. Cheap to share.
#[derive(Debug, Default)]
pub struct QueueSampler {
    ring: Mutex<VecDeque<QueueSample>>,
}

impl QueueSampler {
    pub fn new() -> Self {
        QueueSampler::default()
    }

    /// Adds a sample, dropping the oldest past [`QUEUE_SAMPLES`].
    pub fn record(&self, sample: QueueSample) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == QUEUE_SAMPLES {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// Every sample kept, oldest first.
    pub fn samples(&self) -> Vec<QueueSample> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().copied().collect()
    }
}

/// Samples the live queue length into `sampler` now and then every `every`,
/// for as long as the runtime it is spawned on runs.
pub async fn sample_queue(sampler: Arc<QueueSampler>, metrics: Arc<Metrics>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        sampler.record(QueueSample {
            at: unix_ms(SystemTime::now()),
            waiting: metrics.live().waiting,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_samples_oldest_first() {
        let sampler = QueueSampler::new();
        assert!(sampler.samples().is_empty());
        for i in 0..(QUEUE_SAMPLES + 5) {
            sampler.record(QueueSample {
                at: i as i64,
                waiting: i,
            });
        }
        let samples = sampler.samples();
        assert_eq!(samples.len(), QUEUE_SAMPLES);
        assert_eq!(samples[0].at, 5);
        assert_eq!(samples[QUEUE_SAMPLES - 1].waiting, QUEUE_SAMPLES + 4);
    }
}
