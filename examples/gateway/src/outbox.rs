//! A socket's bounded queue of frames. Binds push without waiting; the socket's writer
//! drains it at the client's pace. When it is full, messages are dropped and counted,
//! and the count takes their place in the queue, so the client learns where it lagged.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use crate::frames;

enum Item {
    Message(String),
    Signal(String),
    Lagged(u64),
}

/// The frames waiting for one socket.
pub struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    capacity: usize,
}

struct Queue {
    items: VecDeque<Item>,
    messages: usize,
}

impl Outbox {
    /// An outbox holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                messages: 0,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn with_queue(&self, f: impl FnOnce(&mut Queue)) {
        f(&mut self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        self.ready.notify_one();
    }

    /// Queues a message frame, or counts it as missed when the queue is full.
    pub fn push_message(&self, frame: String) {
        let capacity = self.capacity;
        self.with_queue(|q| {
            if q.messages >= capacity {
                q.add_lag(1);
            } else {
                q.messages += 1;
                q.items.push_back(Item::Message(frame));
            }
        });
    }

    /// Queues a frame that is never dropped (bind results, errors, gaps): there are few.
    pub fn push_signal(&self, frame: String) {
        self.with_queue(|q| q.items.push_back(Item::Signal(frame)));
    }

    /// Records messages the broker dropped before they reached this socket.
    pub fn push_lag(&self, missed: u64) {
        self.with_queue(|q| q.add_lag(missed));
    }

    /// The next frame, waiting for one. Cancel safe: nothing is taken until it returns.
    pub async fn next(&self) -> String {
        loop {
            if let Some(frame) = self.pop() {
                return frame;
            }
            self.ready.notified().await;
        }
    }

    fn pop(&self) -> Option<String> {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        Some(match q.items.pop_front()? {
            Item::Message(frame) => {
                q.messages -= 1;
                frame
            }
            Item::Signal(frame) => frame,
            Item::Lagged(missed) => frames::lagged(missed),
        })
    }
}

impl Queue {
    /// Consecutive losses make one count, so lag takes bounded room.
    fn add_lag(&mut self, missed: u64) {
        match self.items.back_mut() {
            Some(Item::Lagged(n)) => *n += missed,
            _ => self.items.push_back(Item::Lagged(missed)),
        }
    }
}
