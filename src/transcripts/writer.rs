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
//! never drop a write while the store is open: a failed commit (disk full,
//! I/O error, a lock held too long) is retried with a backoff until it
//! succeeds, and meanwhile the store is *failing*: the inbox refuses new
//! messages, so nothing more is relayed that cannot be recorded. The change
//! of state is logged once each way, not once per attempt. Only a store
//! that is closing gives up, `close_grace` after the close, and logs how
//! many writes it did not commit. A callback's panic never stops the thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inbox::{Inbox, Op};
use super::store::Writer;

/// Wait before the first retry of a failed commit; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Longest wait between two attempts: once space returns, the queue
/// commits within this long.
const RETRY_MAX: Duration = Duration::from_secs(1);

pub(super) fn spawn(
    mut writer: Writer,
    inbox: Arc<Inbox>,
    commit_interval: Duration,
    close_grace: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("transcript-writer".into())
        .spawn(move || run(&mut writer, &inbox, commit_interval, close_grace))
}

fn run(writer: &mut Writer, inbox: &Inbox, commit_interval: Duration, close_grace: Duration) {
    let mut last_commit: Option<Instant> = None;
    while let Some(batch) = inbox.next_batch(last_commit.map(|at| at + commit_interval)) {
        last_commit = Some(Instant::now());
        if !commit_until_done(writer, inbox, &batch, close_grace) {
            let lost = inbox.abandon();
            tracing::error!(
                uncommitted = lost,
                "the transcript store is closing and still cannot commit: \
                 {lost} transcript writes are NOT recorded and are lost"
            );
            // The batch's callbacks are dropped unrun: nobody may hear of a
            // chat's end that is not on disk.
            return;
        }
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

/// Commits `batch`, retrying until it succeeds (true) or the store has been
/// closing for `close_grace` (false).
fn commit_until_done(
    writer: &mut Writer,
    inbox: &Inbox,
    batch: &[Op],
    close_grace: Duration,
) -> bool {
    let mut pause = RETRY_FIRST;
    loop {
        let (fail, page_limit) = inbox.faults();
        if let Some(pages) = page_limit {
            if let Err(error) = writer.set_page_limit(pages) {
                tracing::warn!(%error, "cannot change max_page_count (test hook)");
            }
        }
        let outcome = if fail {
            Err(injected_failure())
        } else {
            writer.commit(batch)
        };
        match outcome {
            Ok(()) => {
                if inbox.batch_committed() {
                    tracing::info!(
                        "the transcript store commits again; messages are recorded and relayed"
                    );
                }
                return true;
            }
            Err(error) => {
                let reason = error.to_string();
                if inbox.commit_failed(reason.clone()) {
                    tracing::error!(
                        error = %reason,
                        ops = batch.len(),
                        "the transcript store cannot commit; retrying until it can, \
                         and refusing chat messages (`transcript unavailable`) meanwhile"
                    );
                } else {
                    tracing::debug!(error = %reason, "transcript commit failed again");
                }
                if !inbox.wait_to_retry(pause, close_grace) {
                    return false;
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// What the `fail_commits` test hook makes a commit return: SQLite's error
/// for a full disk.
fn injected_failure() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        Some("database or disk is full (injected by a test)".into()),
    )
}
