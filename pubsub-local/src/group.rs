//! Groups: competing consumers on a bounded priority queue with acks.
//!
//! The queue pushes work to its members, as a broker does: each message goes to the
//! next member in turn that has a free prefetch slot, into that member's ring (so one
//! member is woken per message, never all). Settling a delivery frees the slot and
//! sends the next waiting message; a delivery dropped unsettled, or buffered in the
//! ring of a member that left, comes back to the queue with its attempt counted.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use pubsub_core::ring::{self, RingReceiver, RingSender};
use pubsub_core::{Acker, Delivery, Error, Message, Pattern, Result, TopicName};

/// One group's queue for one name or pattern, shared by the group's members. It
/// outlives its members, as a durable broker queue does: messages wait for the next.
#[derive(Debug)]
pub(crate) struct GroupQueue {
    name: String,
    pattern: Pattern,
    capacity: usize,
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: BinaryHeap<Waiting>,
    /// Places promised to publishes that are on their way in.
    reserved: usize,
    in_flight: HashMap<u64, InFlight>,
    members: Vec<Member>,
    /// Where the search for the next member starts: members take turns.
    turn: usize,
    next_seq: u64,
    next_tag: u64,
    next_member: u64,
    closed: bool,
}

#[derive(Debug)]
struct Member {
    id: u64,
    ring: RingSender<Delivery>,
    held: u16,
    prefetch: u16,
}

/// A message waiting in the queue: highest priority first, then oldest first.
#[derive(Debug)]
struct Waiting {
    priority: u8,
    seq: u64,
    attempt: u32,
    topic: TopicName,
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

/// A message out with a member, kept to be requeued at its old place.
#[derive(Debug)]
struct InFlight {
    member: u64,
    waiting: Waiting,
}

impl GroupQueue {
    pub(crate) fn new(name: String, pattern: Pattern, capacity: usize) -> Self {
        GroupQueue {
            name,
            pattern,
            capacity,
            state: Mutex::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Promises a place to a message that is about to be pushed.
    pub(crate) fn reserve(&self) -> Result<()> {
        let mut state = self.lock();
        if state.ready.len() + state.reserved >= self.capacity {
            return Err(Error::QueueFull {
                queue: format!("{}@{}", self.name, self.pattern),
                capacity: self.capacity,
            });
        }
        state.reserved += 1;
        Ok(())
    }

    /// Takes back a promise that will not be used.
    pub(crate) fn unreserve(&self) {
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(1);
    }

    /// Queues a message whose place was [`reserve`](Self::reserve)d.
    pub(crate) fn push_reserved(self: &Arc<Self>, topic: &TopicName, message: Message) {
        let sends = {
            let mut state = self.lock();
            state.reserved = state.reserved.saturating_sub(1);
            state.next_seq += 1;
            let seq = state.next_seq;
            state.ready.push(Waiting {
                priority: message.priority(),
                seq,
                attempt: 1,
                topic: topic.clone(),
                message,
            });
            self.dispatch(&mut state)
        };
        send(sends);
    }

    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for member in state.members.drain(..) {
            member.ring.close();
        }
    }

    /// A new member with `prefetch` slots; its ring never holds more than that, so it
    /// never drops a message.
    pub(crate) fn join(self: &Arc<Self>, prefetch: u16) -> Result<(u64, RingReceiver<Delivery>)> {
        let prefetch = prefetch.max(1);
        let (ring, receiver) = ring::channel(usize::from(prefetch));
        let (id, sends) = {
            let mut state = self.lock();
            if state.closed {
                return Err(Error::Closed);
            }
            state.next_member += 1;
            let id = state.next_member;
            state.members.push(Member {
                id,
                ring,
                held: 0,
                prefetch,
            });
            (id, self.dispatch(&mut state))
        };
        send(sends);
        Ok((id, receiver))
    }

    /// A member leaves; what it holds comes back as its deliveries are dropped.
    pub(crate) fn leave(&self, member: u64) {
        self.lock().members.retain(|m| m.id != member);
    }

    /// Pairs waiting messages with members that have room, in turn. The pushes into
    /// the members' rings happen after the lock is released ([`send`]): a push that
    /// finds its member gone drops the delivery, which comes back here.
    fn dispatch(self: &Arc<Self>, state: &mut QueueState) -> Vec<(RingSender<Delivery>, Delivery)> {
        let mut sends = Vec::new();
        while !state.ready.is_empty() && !state.members.is_empty() {
            let count = state.members.len();
            let Some(at) = (0..count).map(|i| (state.turn + i) % count).find(|&i| {
                let member = &state.members[i];
                member.held < member.prefetch && !member.ring.is_closed()
            }) else {
                break;
            };
            state.turn = (at + 1) % count;
            let Some(waiting) = state.ready.pop() else {
                break;
            };
            state.next_tag += 1;
            let tag = state.next_tag;
            let member = &mut state.members[at];
            member.held += 1;
            let delivery = Delivery::new(waiting.topic.clone(), waiting.message.clone())
                .with_attempt(waiting.attempt)
                .with_acker(GroupAcker {
                    queue: Arc::clone(self),
                    tag,
                });
            sends.push((member.ring.clone(), delivery));
            let member = member.id;
            state.in_flight.insert(tag, InFlight { member, waiting });
        }
        sends
    }

    fn settle(self: &Arc<Self>, tag: u64, requeue: bool) {
        let sends = {
            let mut state = self.lock();
            let Some(flight) = state.in_flight.remove(&tag) else {
                return;
            };
            if let Some(member) = state.members.iter_mut().find(|m| m.id == flight.member) {
                member.held = member.held.saturating_sub(1);
            }
            if requeue && !state.closed {
                let mut waiting = flight.waiting;
                waiting.attempt += 1;
                state.ready.push(waiting);
            }
            self.dispatch(&mut state)
        };
        send(sends);
    }
}

/// Pushes deliveries into members' rings, outside the queue's lock.
fn send(sends: Vec<(RingSender<Delivery>, Delivery)>) {
    for (ring, delivery) in sends {
        // A member that left hands the delivery back; dropping it requeues it.
        drop(ring.push(delivery));
    }
}

struct GroupAcker {
    queue: Arc<GroupQueue>,
    tag: u64,
}

#[async_trait]
impl Acker for GroupAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.queue.settle(self.tag, false);
        Ok(())
    }

    async fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        self.queue.settle(self.tag, requeue);
        Ok(())
    }

    fn release(self: Box<Self>) {
        self.queue.settle(self.tag, true);
    }
}

/// A member's place in its group, released when its subscription ends.
pub(crate) struct Membership {
    pub(crate) queue: Arc<GroupQueue>,
    pub(crate) id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.queue.leave(self.id);
    }
}
