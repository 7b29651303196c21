//! Flow control shared by every workload, so that a publisher that is faster than
//! its subscribers measures delivered messages, not dropped ones: the publisher
//! waits while it is more than a window ahead of its consumers. Both sides of every
//! comparison pay the same small cost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// How far (in messages) publishers may run ahead; below every client's buffer
/// (1,024), so that nobody lags unless a subscriber is deliberately stalled.
pub const WINDOW: u64 = 512;
/// Counters are shared every this many messages, to keep their cache traffic small.
const BATCH: u64 = 64;

/// Whether each consumer sees every message (broadcast) or the consumers split
/// the messages between them (a group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Every consumer gets every message: progress is the slowest consumer's.
    Each,
    /// Each message goes to one consumer: progress is their sum.
    Split,
}

#[repr(align(64))]
#[derive(Debug, Default)]
struct Padded(AtomicU64);

/// Produced and consumed counts of one run.
#[derive(Debug)]
pub struct Flow {
    share: Share,
    produced: Padded,
    consumed: Box<[Padded]>,
    changed: Notify,
}

impl Flow {
    /// A flow between publishers and `consumers` consumers.
    pub fn new(share: Share, consumers: usize) -> Arc<Self> {
        Arc::new(Flow {
            share,
            produced: Padded::default(),
            consumed: (0..consumers).map(|_| Padded::default()).collect(),
            changed: Notify::new(),
        })
    }

    /// Consumer `index`'s counter.
    pub fn tally(self: &Arc<Self>, index: usize) -> Tally {
        Tally {
            flow: Arc::clone(self),
            index,
            count: 0,
        }
    }

    fn consumed(&self) -> u64 {
        let counts = self.consumed.iter().map(|c| c.0.load(Ordering::Acquire));
        match self.share {
            Share::Each => counts.min().unwrap_or(u64::MAX),
            Share::Split => counts.sum(),
        }
    }

    /// Records `n` more published messages, then waits while publishers are more
    /// than [`WINDOW`] ahead.
    pub async fn produced(&self, n: u64) {
        let produced = self.produced.0.fetch_add(n, Ordering::AcqRel) + n;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so progress made in between still wakes us.
            changed.as_mut().enable();
            if produced.saturating_sub(self.consumed()) <= WINDOW {
                return;
            }
            changed.await;
        }
    }
}

/// One consumer's count of handled messages.
#[derive(Debug)]
pub struct Tally {
    flow: Arc<Flow>,
    index: usize,
    count: u64,
}

impl Tally {
    /// Counts `n` messages handled (or lost).
    pub fn add(&mut self, n: u64) {
        let before = self.count;
        self.count += n;
        if before / BATCH != self.count / BATCH {
            self.share();
        }
    }

    fn share(&self) {
        self.flow.consumed[self.index]
            .0
            .store(self.count, Ordering::Release);
        self.flow.changed.notify_waiters();
    }
}

impl Drop for Tally {
    /// A consumer that is done no longer holds publishers back.
    fn drop(&mut self) {
        // Large, yet summing a few of them cannot overflow.
        self.count = 1 << 50;
        self.share();
    }
}

/// Publishers share their counts with [`Flow::produced`] every this many messages.
pub const PUBLISH_BATCH: u64 = BATCH;
