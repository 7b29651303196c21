//! Groups: competing consumers on a bounded priority queue with acks.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use pubsub_core::{Acker, Delivery, Error, Message, Pattern, Result, Subscription};
use tokio::sync::Notify;

/// One group's queue for one name or pattern, shared by the group's members. It
/// outlives its members, as a durable broker queue does: messages wait for the next.
#[derive(Debug)]
pub(crate) struct GroupQueue {
    name: String,
    pattern: Pattern,
    capacity: usize,
    state: Mutex<QueueState>,
    /// Wakes members when a message arrives, one is settled, or the queue closes.
    changed: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: BinaryHeap<Waiting>,
    in_flight: HashMap<u64, InFlight>,
    /// Unacknowledged messages per member.
    held: HashMap<u64, u16>,
    next_seq: u64,
    next_tag: u64,
    next_member: u64,
    closed: bool,
}

/// A message waiting in the queue: highest priority first, then oldest first.
#[derive(Debug)]
struct Waiting {
    priority: u8,
    seq: u64,
    message: Message,
}

impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Waiting {}

#[derive(Debug)]
struct InFlight {
    member: u64,
    seq: u64,
    message: Message,
}

impl InFlight {
    /// Back to the queue at its old place, counting one more attempt.
    fn requeue(self) -> Waiting {
        let attempt = self.message.attempt() + 1;
        Waiting {
            priority: self.message.priority(),
            seq: self.seq,
            message: self.message.with_attempt(attempt),
        }
    }
}

impl GroupQueue {
    pub(crate) fn new(name: String, pattern: Pattern, capacity: usize) -> Self {
        GroupQueue {
            name,
            pattern,
            capacity,
            state: Mutex::default(),
            changed: Notify::new(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    pub(crate) fn accepts(&self, topic: &str) -> bool {
        self.pattern.matches(topic)
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, message: Message) -> Result<()> {
        {
            let mut state = self.lock();
            if state.ready.len() >= self.capacity {
                return Err(Error::QueueFull {
                    queue: format!("{}@{}", self.name, self.pattern),
                    capacity: self.capacity,
                });
            }
            state.next_seq += 1;
            let seq = state.next_seq;
            state.ready.push(Waiting {
                priority: message.priority(),
                seq,
                message: message.with_attempt(1),
            });
        }
        self.changed.notify_waiters();
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    fn join(&self) -> u64 {
        let mut state = self.lock();
        state.next_member += 1;
        let member = state.next_member;
        state.held.insert(member, 0);
        member
    }

    /// A member leaves: what it held goes back to the queue for the others.
    fn leave(&self, member: u64) {
        {
            let mut state = self.lock();
            state.held.remove(&member);
            let tags: Vec<u64> = state
                .in_flight
                .iter()
                .filter(|(_, f)| f.member == member)
                .map(|(tag, _)| *tag)
                .collect();
            for tag in tags {
                if let Some(flight) = state.in_flight.remove(&tag) {
                    state.ready.push(flight.requeue());
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// The next message for `member`, if one waits and the member has room for it.
    /// `None` inside `Some` means the queue is closed.
    fn take(self: &Arc<Self>, member: u64, prefetch: u16) -> Option<Option<Delivery>> {
        let mut state = self.lock();
        if state.closed {
            return Some(None);
        }
        if state.held.get(&member).copied().unwrap_or(0) >= prefetch {
            return None;
        }
        let waiting = state.ready.pop()?;
        state.next_tag += 1;
        let tag = state.next_tag;
        *state.held.entry(member).or_default() += 1;
        state.in_flight.insert(
            tag,
            InFlight {
                member,
                seq: waiting.seq,
                message: waiting.message.clone(),
            },
        );
        let acker = GroupAcker {
            queue: Arc::clone(self),
            tag,
        };
        Some(Some(Delivery::with_acker(waiting.message, acker)))
    }

    fn settle(&self, tag: u64, requeue: bool) {
        {
            let mut state = self.lock();
            let Some(flight) = state.in_flight.remove(&tag) else {
                return;
            };
            if let Some(held) = state.held.get_mut(&flight.member) {
                *held = held.saturating_sub(1);
            }
            if requeue {
                state.ready.push(flight.requeue());
            }
        }
        self.changed.notify_waiters();
    }
}

struct GroupAcker {
    queue: Arc<GroupQueue>,
    tag: u64,
}

#[async_trait]
impl Acker for GroupAcker {
    async fn ack(&self) -> Result<()> {
        self.queue.settle(self.tag, false);
        Ok(())
    }

    async fn nack(&self, requeue: bool) -> Result<()> {
        self.queue.settle(self.tag, requeue);
        Ok(())
    }
}

/// A member's place in the group; leaving gives back what it held.
struct Member {
    queue: Arc<GroupQueue>,
    id: u64,
    prefetch: u16,
}

impl Member {
    async fn next(&self) -> Option<Delivery> {
        loop {
            let changed = self.queue.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change between the look and the wait
            // still wakes us.
            changed.as_mut().enable();
            if let Some(found) = self.queue.take(self.id, self.prefetch) {
                return found;
            }
            changed.await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.queue.leave(self.id);
    }
}

pub(crate) fn subscription(queue: Arc<GroupQueue>, prefetch: u16) -> Subscription {
    let id = queue.join();
    let member = Member {
        queue,
        id,
        prefetch,
    };
    Subscription::new(futures::stream::unfold(member, |member| async move {
        let delivery = member.next().await?;
        Some((Ok(delivery), member))
    }))
}
