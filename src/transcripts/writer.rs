//! The writer thread: the only owner of the writing SQLite connection.
//!
//! Loop: take a batch from the inbox (everything queued, up to the batch
//! size, after waiting out the commit interval since the last commit), write
//! it in one transaction, then run the batch's callbacks in order. This is
//! group commit: under load one commit carries many messages; when idle a
//! lone write waits at most one commit interval.
//!
//! Must never run a callback before the transaction holding its record has
//! committed (that is the durability promise behind `chat:terminated`), and
//! never let a callback's panic or a failed commit stop the thread: a
//! failed batch is retried, then logged and counted, and its callbacks run
//! anyway so that chats still end for their users.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inbox::{Inbox, Op};
use super::store::Writer;

/// Waits before each retry of a failed commit (a busy lock held by a
/// checkpoint or another process, a full disk being cleaned up).
const RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(250),
    Duration::from_secs(1),
];

pub(super) fn spawn(
    mut writer: Writer,
    inbox: Arc<Inbox>,
    commit_interval: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("transcript-writer".into())
        .spawn(move || run(&mut writer, &inbox, commit_interval))
}

fn run(writer: &mut Writer, inbox: &Inbox, commit_interval: Duration) {
    let mut last_commit: Option<Instant> = None;
    while let Some(batch) = inbox.next_batch(last_commit.map(|at| at + commit_interval)) {
        last_commit = Some(Instant::now());
        let committed = commit_with_retries(writer, &batch);
        inbox.batch_done(committed);
        for callback in batch.into_iter().filter_map(Op::take_callback) {
            if catch_unwind(AssertUnwindSafe(callback)).is_err() {
                tracing::error!("a transcript callback panicked; the writer goes on");
            }
        }
    }
    // Leave the next start an empty staging table (not required: reads and
    // a restarted writer see staged rows too).
    if let Err(error) = writer.move_staged() {
        tracing::warn!(%error, "moving staged messages at close failed; they stay staged");
    }
    tracing::debug!("transcript writer stopped");
}

fn commit_with_retries(writer: &mut Writer, batch: &[Op]) -> bool {
    let mut retries = RETRY_BACKOFF.iter();
    loop {
        match writer.commit(batch) {
            Ok(()) => return true,
            Err(error) => match retries.next() {
                Some(wait) => {
                    tracing::warn!(%error, ops = batch.len(), "transcript commit failed; retrying");
                    std::thread::sleep(*wait);
                }
                None => {
                    tracing::error!(
                        %error,
                        ops = batch.len(),
                        "transcript commit failed; these records are lost"
                    );
                    return false;
                }
            },
        }
    }
}
