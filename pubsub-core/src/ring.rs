//! The one bounded, drop-oldest buffer between a broker and a subscriber.
//!
//! Every backend (and the gateway's outboxes) hands messages to subscribers through a
//! ring: the producer never waits, a consumer that falls `capacity` messages behind
//! loses the oldest ones and is told how many with [`Signal::Lagged`], and a producer
//! that knows messages were lost elsewhere (a reconnect) puts a [`Signal::Gap`] in the
//! stream at the place where it happened. Memory grows with what is buffered, not with
//! the capacity: an idle ring holds no buffer at all.
//!
//! ```
//! use pubsub_core::ring;
//! use pubsub_core::{Received, Signal};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (sender, mut receiver) = ring::channel(2);
//! for i in 0..5 {
//!     sender.push(i).unwrap();
//! }
//! assert!(matches!(receiver.recv().await, Some(Received::Signal(Signal::Lagged { missed: 3 }))));
//! assert!(matches!(receiver.recv().await, Some(Received::Message(3))));
//! assert!(matches!(receiver.recv().await, Some(Received::Message(4))));
//! drop(sender);
//! assert!(receiver.recv().await.is_none());
//! # }
//! ```

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::{Received, Signal};

/// A drained buffer larger than this, and four times larger than the batch it last
/// held, is given back: a burst does not pin its memory, and a steady flow does not
/// reallocate on every batch.
const KEEP_CAPACITY: usize = 64;

/// A ring of `capacity` messages (at least 1): the producing and the consuming half.
pub fn channel<T>(capacity: usize) -> (RingSender<T>, RingReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            messages: 0,
            missed: 0,
            closed: false,
            receiver_gone: false,
            waker: None,
        }),
        senders: AtomicUsize::new(1),
    });
    (
        RingSender {
            shared: Arc::clone(&shared),
        },
        RingReceiver {
            shared,
            batch: VecDeque::new(),
        },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    senders: AtomicUsize,
}

struct State<T> {
    queue: VecDeque<Entry<T>>,
    capacity: usize,
    /// How many entries of `queue` are messages (gaps do not count to the capacity).
    messages: usize,
    /// Dropped since the receiver last looked.
    missed: u64,
    closed: bool,
    receiver_gone: bool,
    waker: Option<Waker>,
}

enum Entry<T> {
    Message(T),
    Gap(String),
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` on the state, then wakes the receiver outside the lock.
    fn update<R>(&self, change: impl FnOnce(&mut State<T>) -> R) -> R {
        let (result, waker) = {
            let mut state = self.lock();
            let result = change(&mut state);
            (result, state.waker.take())
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }
}

/// The producing half of a ring. Clones push into the same ring; the ring ends for
/// its receiver once every sender is dropped or [`close`](Self::close) is called.
pub struct RingSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> RingSender<T> {
    /// Appends `message`, dropping the oldest one when the ring is full (the receiver
    /// is told with [`Signal::Lagged`]). Never waits. Hands the message back when the
    /// receiver is gone or the ring is closed.
    pub fn push(&self, message: T) -> Result<(), T> {
        let dropped = self.shared.update(|state| {
            if state.receiver_gone || state.closed {
                return Err(message);
            }
            let dropped = if state.messages == state.capacity {
                state.missed += 1;
                state.messages -= 1;
                pop_oldest_message(&mut state.queue)
            } else {
                None
            };
            state.messages += 1;
            state.queue.push_back(Entry::Message(message));
            Ok(dropped)
        })?;
        // Dropped outside the lock: a group delivery's drop gives it back to its group.
        drop(dropped);
        Ok(())
    }

    /// Tells the receiver, after what is buffered now, that messages may have been
    /// missed (a reconnect).
    pub fn gap(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.shared.update(|state| {
            if !state.receiver_gone && !state.closed {
                state.queue.push_back(Entry::Gap(reason));
            }
        });
    }

    /// Ends the ring: the receiver gets what is buffered, then `None`.
    pub fn close(&self) {
        self.shared.update(|state| state.closed = true);
    }

    /// Whether the receiver is gone or the ring was closed: pushing is pointless.
    pub fn is_closed(&self) -> bool {
        let state = self.shared.lock();
        state.receiver_gone || state.closed
    }

    /// How many messages wait in the ring.
    pub fn len(&self) -> usize {
        self.shared.lock().messages
    }

    /// Whether no message waits in the ring.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn pop_oldest_message<T>(queue: &mut VecDeque<Entry<T>>) -> Option<T> {
    let at = queue
        .iter()
        .position(|entry| matches!(entry, Entry::Message(_)))?;
    match queue.remove(at) {
        Some(Entry::Message(message)) => Some(message),
        _ => None,
    }
}

impl<T> Clone for RingSender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        RingSender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for RingSender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }
}

impl<T> std::fmt::Debug for RingSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("RingSender")
            .field("buffered", &state.messages)
            .field("capacity", &state.capacity)
            .finish()
    }
}

/// The consuming half of a ring.
///
/// It takes what waits in the ring as a whole batch, under one lock, and hands the
/// batch out without locking again, so a receiver that keeps up costs its producers
/// one lock per batch rather than per message. Messages in a taken batch are no
/// longer counted against the capacity: the ring holds at most `capacity` messages
/// besides the batch being read.
pub struct RingReceiver<T> {
    shared: Arc<Shared<T>>,
    batch: VecDeque<Entry<T>>,
}

impl<T> RingReceiver<T> {
    /// The next message or signal; `None` once the ring is closed and drained.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: nothing is taken from the ring until it returns, so
    /// when it loses a `tokio::select!` race, no message is lost.
    pub async fn recv(&mut self) -> Option<Received<T>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message or signal, registering the task to be woken when
    /// one arrives.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received<T>>> {
        if self.batch.is_empty() {
            let mut state = self.shared.lock();
            if state.missed > 0 {
                let missed = std::mem::take(&mut state.missed);
                return Poll::Ready(Some(Received::Signal(Signal::Lagged { missed })));
            }
            if state.queue.is_empty() {
                if state.closed {
                    return Poll::Ready(None);
                }
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            let spare = std::mem::take(&mut self.batch);
            let taken = std::mem::replace(&mut state.queue, spare);
            state.messages = 0;
            drop(state);
            // The drained buffer goes back to the ring for the next batch, unless it is
            // much larger than batches have become.
            self.batch = taken;
            let mut state = self.shared.lock();
            let spare = &mut state.queue;
            if spare.is_empty()
                && spare.capacity() > KEEP_CAPACITY
                && spare.capacity() > 4 * self.batch.len()
            {
                *spare = VecDeque::new();
            }
        }
        Poll::Ready(self.batch.pop_front().map(|entry| match entry {
            Entry::Message(message) => Received::Message(message),
            Entry::Gap(reason) => Received::Signal(Signal::Gap { reason }),
        }))
    }
}

impl<T> Drop for RingReceiver<T> {
    fn drop(&mut self) {
        let buffered = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            state.messages = 0;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut self.batch),
            )
        };
        // Dropped outside the lock, for the same reason as in `push`.
        drop(buffered);
    }
}

impl<T> std::fmt::Debug for RingReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("RingReceiver")
            .field("buffered", &state.messages)
            .field("capacity", &state.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gap_comes_after_what_was_buffered_before_it() {
        let (sender, mut receiver) = channel(8);
        sender.push(1).unwrap();
        sender.gap("reconnected");
        sender.push(2).unwrap();
        assert!(matches!(receiver.recv().await, Some(Received::Message(1))));
        assert!(matches!(
            receiver.recv().await,
            Some(Received::Signal(Signal::Gap { .. }))
        ));
        assert!(matches!(receiver.recv().await, Some(Received::Message(2))));
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_receiver() {
        let (sender, mut receiver) = channel(1);
        let waiting =
            tokio::spawn(async move { receiver.recv().await.and_then(Received::message) });
        tokio::task::yield_now().await;
        sender.push("hello").unwrap();
        assert_eq!(waiting.await.unwrap(), Some("hello"));
    }

    #[test]
    fn a_push_after_the_receiver_left_is_handed_back() {
        let (sender, receiver) = channel(4);
        drop(receiver);
        assert_eq!(sender.push(7), Err(7));
        assert!(sender.is_closed());
    }

    #[test]
    fn a_drained_ring_gives_its_buffer_back() {
        let (sender, mut receiver) = channel(10_000);
        for i in 0..1000 {
            sender.push(i).unwrap();
        }
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while let Poll::Ready(Some(_)) = receiver.poll_recv(&mut cx) {}
        assert!(receiver.batch.is_empty());
        for i in 0..3 {
            sender.push(i).unwrap();
        }
        while let Poll::Ready(Some(_)) = receiver.poll_recv(&mut cx) {}
        let kept = receiver.shared.lock().queue.capacity() + receiver.batch.capacity();
        assert!(
            kept <= KEEP_CAPACITY,
            "{kept} slots kept after small batches"
        );
    }
}
