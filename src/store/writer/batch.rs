//! How much the writer puts in one commit.
//!
//! Callers that wait for a commit before sending their next request split
//! into two cohorts: while one waits on the fsync, the other's requests
//! queue, so each commit carries about half of the concurrent load (seen
//! while the machine was loaded; on a quiet one the writer is rarely the
//! bottleneck and the wait rarely triggers, see BENCHMARKS.md). A commit
//! costs an fsync (1–4 ms on the VMs measured), so waiting a fraction of it
//! for the cohort just answered can fill the batch. The wait is bounded by a quarter of the last commit's time,
//! only happens while the batch is smaller than the previous one, and stops
//! as soon as a step brings nothing new: a lone caller waits one step.

use super::{MAX_BATCH, Op};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Granularity of the wait.
const STEP: Duration = Duration::from_micros(100);
/// Longest wait, whatever the commit time.
const MAX_WAIT: Duration = Duration::from_millis(2);

/// Remembers the last batch to size the next one.
#[derive(Debug, Default)]
pub(super) struct Batcher {
    last_len: usize,
    last_commit: Duration,
}

impl Batcher {
    /// `first` plus whatever is queued, after the cohort wait.
    pub(super) fn collect(&mut self, rx: &mut mpsc::Receiver<Op>, first: Op) -> Vec<Op> {
        let mut batch = vec![first];
        drain(rx, &mut batch);
        let cap = (self.last_commit / 4).min(MAX_WAIT);
        let started = Instant::now();
        while batch.len() < self.last_len.min(MAX_BATCH) && started.elapsed() + STEP <= cap {
            std::thread::sleep(STEP);
            if !drain(rx, &mut batch) {
                break;
            }
        }
        batch
    }

    /// Records the size and commit time of the batch just written.
    pub(super) fn committed(&mut self, len: usize, took: Duration) {
        self.last_len = len;
        self.last_commit = took;
    }
}

/// Takes whatever is queued, up to [`MAX_BATCH`]; whether anything came.
fn drain(rx: &mut mpsc::Receiver<Op>, batch: &mut Vec<Op>) -> bool {
    let before = batch.len();
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    batch.len() > before
}
