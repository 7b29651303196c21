//! The one bounded, drop-oldest buffer between a broker and its subscribers.
//!
//! Every backend (and the gateway's outboxes) hands messages to subscribers through a
//! ring: the producer never waits, a reader that falls `capacity` messages behind
//! loses the oldest ones and is told how many with [`Signal::Lagged`], and a producer
//! that knows messages were lost elsewhere (a reconnect) puts a [`Signal::Gap`] in the
//! stream at the place where it happened. Memory grows with what is buffered, not with
//! the capacity: an idle ring holds no buffer at all.
//!
//! A ring has one reader, or several for values that can be cloned
//! ([`RingSender::subscribe`]): then a message is stored once, whatever the number of
//! readers, and each reader clones it when it reads, so a publish to a hundred
//! subscribers costs the producer what a publish to one does.
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

/// A ring of `capacity` messages (at least 1) with one reader.
pub fn channel<T>(capacity: usize) -> (RingSender<T>, RingReceiver<T>) {
    let mut state = State {
        queue: VecDeque::new(),
        head: 0,
        capacity: capacity.max(1),
        readers: Vec::new(),
        live_readers: 0,
        closed: false,
        clone: None,
    };
    let slot = state.add_reader();
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        senders: AtomicUsize::new(1),
    });
    let receiver = RingReceiver::new(Arc::clone(&shared), slot);
    (RingSender { shared }, receiver)
}

struct Shared<T> {
    state: Mutex<State<T>>,
    senders: AtomicUsize,
}

struct State<T> {
    queue: VecDeque<Entry<T>>,
    /// The position of `queue[0]` in the stream since the ring began.
    head: u64,
    capacity: usize,
    /// Each reader's next position and waker, by slot; `None` for a slot set free.
    readers: Vec<Option<Reader>>,
    live_readers: usize,
    closed: bool,
    /// How a reader copies an entry that other readers still need; set by
    /// [`RingSender::subscribe`], which alone makes a second reader.
    clone: Option<fn(&T) -> T>,
}

struct Reader {
    next: u64,
    waker: Option<Waker>,
}

enum Entry<T> {
    Message(T),
    Gap(String),
}

impl<T> State<T> {
    fn tail(&self) -> u64 {
        self.head + self.queue.len() as u64
    }

    fn add_reader(&mut self) -> usize {
        let reader = Reader {
            next: self.tail(),
            waker: None,
        };
        self.live_readers += 1;
        match self.readers.iter().position(Option::is_none) {
            Some(free) => {
                self.readers[free] = Some(reader);
                free
            }
            None => {
                self.readers.push(Some(reader));
                self.readers.len() - 1
            }
        }
    }

    /// Drops the entries every reader has read; returns them, to be dropped outside
    /// the lock.
    fn trim(&mut self) -> VecDeque<Entry<T>> {
        let oldest_unread = self
            .readers
            .iter()
            .flatten()
            .map(|r| r.next)
            .min()
            .unwrap_or_else(|| self.tail());
        let read = (oldest_unread.saturating_sub(self.head) as usize).min(self.queue.len());
        self.head += read as u64;
        match read {
            0 => VecDeque::new(),
            n if n == self.queue.len() => std::mem::take(&mut self.queue),
            n => self.queue.drain(..n).collect(),
        }
    }

    /// Appends an entry, dropping the oldest when full; wakes the waiting readers.
    fn append(&mut self, entry: Entry<T>, wake: &mut Wakers) -> Option<Entry<T>> {
        let dropped = if self.queue.len() == self.capacity {
            self.head += 1;
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.push_back(entry);
        for reader in self.readers.iter_mut().flatten() {
            if let Some(waker) = reader.waker.take() {
                wake.push(waker);
            }
        }
        dropped
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakers collected under the lock and woken after it is released; one waiting reader,
/// the common case, needs no allocation.
#[derive(Default)]
struct Wakers {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Wakers {
    fn push(&mut self, waker: Waker) {
        match self.first {
            None => self.first = Some(waker),
            Some(_) => self.more.push(waker),
        }
    }

    fn wake(self) {
        if let Some(first) = self.first {
            first.wake();
            self.more.into_iter().for_each(Waker::wake);
        }
    }
}

/// The producing half of a ring. Clones push into the same ring; the ring ends for
/// its readers once every sender is dropped or [`close`](Self::close) is called.
pub struct RingSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> RingSender<T> {
    /// Appends `message`, dropping the oldest one when the ring is full (a reader that
    /// had not read it is told with [`Signal::Lagged`]). Never waits. Hands the message
    /// back when no reader is left or the ring is closed.
    pub fn push(&self, message: T) -> Result<(), T> {
        let mut wake = Wakers::default();
        let dropped = {
            let mut state = self.shared.lock();
            if state.live_readers == 0 || state.closed {
                return Err(message);
            }
            state.append(Entry::Message(message), &mut wake)
        };
        // Dropped outside the lock: a group delivery's drop gives it back to its group.
        drop(dropped);
        wake.wake();
        Ok(())
    }

    /// Tells the readers, after what is buffered now, that messages may have been
    /// missed (a reconnect).
    pub fn gap(&self, reason: impl Into<String>) {
        let mut wake = Wakers::default();
        let dropped = {
            let mut state = self.shared.lock();
            if state.live_readers == 0 || state.closed {
                return;
            }
            state.append(Entry::Gap(reason.into()), &mut wake)
        };
        drop(dropped);
        wake.wake();
    }

    /// Ends the ring: readers get what is buffered, then `None`.
    pub fn close(&self) {
        let mut wake = Wakers::default();
        {
            let mut state = self.shared.lock();
            state.closed = true;
            for reader in state.readers.iter_mut().flatten() {
                if let Some(waker) = reader.waker.take() {
                    wake.push(waker);
                }
            }
        }
        wake.wake();
    }

    /// Whether no reader is left or the ring was closed: pushing is pointless.
    pub fn is_closed(&self) -> bool {
        let state = self.shared.lock();
        state.live_readers == 0 || state.closed
    }

    /// How many readers the ring has.
    pub fn receiver_count(&self) -> usize {
        self.shared.lock().live_readers
    }

    /// How many entries wait in the ring for its slowest reader.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Whether nothing waits in the ring.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> RingSender<T> {
    /// Another reader of this ring, which gets what is pushed from now on. Each message
    /// is stored once and cloned by each reader as it reads.
    pub fn subscribe(&self) -> RingReceiver<T> {
        let slot = {
            let mut state = self.shared.lock();
            state.clone = Some(T::clone);
            state.add_reader()
        };
        RingReceiver::new(Arc::clone(&self.shared), slot)
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
            .field("buffered", &state.queue.len())
            .field("capacity", &state.capacity)
            .field("readers", &state.live_readers)
            .finish()
    }
}

/// A reader of a ring.
///
/// It takes what waits for it as a whole batch, under one lock, and hands the batch
/// out without locking again, so a reader that keeps up costs its producers one lock
/// per batch rather than per message. Messages in a taken batch no longer count
/// against the capacity: a ring holds at most `capacity` messages besides the batches
/// being read.
pub struct RingReceiver<T> {
    shared: Arc<Shared<T>>,
    slot: usize,
    batch: VecDeque<Entry<T>>,
}

impl<T> RingReceiver<T> {
    fn new(shared: Arc<Shared<T>>, slot: usize) -> Self {
        RingReceiver {
            shared,
            slot,
            batch: VecDeque::new(),
        }
    }

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
            if let Some(ready) = self.take_batch(cx) {
                return ready;
            }
        }
        Poll::Ready(self.batch.pop_front().map(|entry| match entry {
            Entry::Message(message) => Received::Message(message),
            Entry::Gap(reason) => Received::Signal(Signal::Gap { reason }),
        }))
    }

    /// Moves what waits for this reader into its batch; returns what to answer when
    /// there is nothing to take.
    fn take_batch(&mut self, cx: &mut Context<'_>) -> Option<Poll<Option<Received<T>>>> {
        let mut state = self.shared.lock();
        let (head, tail) = (state.head, state.tail());
        let state = &mut *state;
        let reader = state.readers[self.slot].as_mut()?;
        if reader.next < head {
            let missed = head - reader.next;
            reader.next = head;
            return Some(Poll::Ready(Some(Received::Signal(Signal::Lagged {
                missed,
            }))));
        }
        if reader.next == tail {
            if state.closed {
                return Some(Poll::Ready(None));
            }
            if !reader
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                reader.waker = Some(cx.waker().clone());
            }
            return Some(Poll::Pending);
        }
        let first = (reader.next - head) as usize;
        reader.next = tail;
        match state.clone {
            // Others read these entries too: copy them, then drop what all have read.
            Some(clone) if state.live_readers > 1 => {
                self.batch
                    .extend(state.queue.range(first..).map(|entry| match entry {
                        Entry::Message(message) => Entry::Message(clone(message)),
                        Entry::Gap(reason) => Entry::Gap(reason.clone()),
                    }));
                let read = state.trim();
                drop(read);
            }
            // The only reader takes the buffer itself and leaves its drained one.
            _ => {
                let spare = std::mem::take(&mut self.batch);
                self.batch = std::mem::replace(&mut state.queue, spare);
                self.batch.drain(..first);
                state.head = tail;
                let spare = &mut state.queue;
                if spare.capacity() > KEEP_CAPACITY && spare.capacity() > 4 * self.batch.len() {
                    *spare = VecDeque::new();
                }
            }
        }
        None
    }
}

impl<T> Drop for RingReceiver<T> {
    fn drop(&mut self) {
        let released = {
            let mut state = self.shared.lock();
            if let Some(slot) = state.readers.get_mut(self.slot) {
                if slot.take().is_some() {
                    state.live_readers -= 1;
                }
            }
            state.trim()
        };
        // Dropped outside the lock, for the same reason as in `push`.
        drop((released, std::mem::take(&mut self.batch)));
    }
}

impl<T> std::fmt::Debug for RingReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("RingReceiver")
            .field("buffered", &state.queue.len())
            .field("in_batch", &self.batch.len())
            .field("capacity", &state.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<T>(receiver: &mut RingReceiver<T>) -> Vec<Received<T>> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut items = Vec::new();
        while let Poll::Ready(Some(item)) = receiver.poll_recv(&mut cx) {
            items.push(item);
        }
        items
    }

    fn messages<T>(items: Vec<Received<T>>) -> Vec<T> {
        items.into_iter().filter_map(Received::message).collect()
    }

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
        assert_eq!(drain(&mut receiver).len(), 1000);
        for i in 0..3 {
            sender.push(i).unwrap();
        }
        assert_eq!(drain(&mut receiver).len(), 3);
        let kept = receiver.shared.lock().queue.capacity() + receiver.batch.capacity();
        assert!(
            kept <= KEEP_CAPACITY,
            "{kept} slots kept after small batches"
        );
    }

    #[test]
    fn every_reader_gets_every_message_stored_once() {
        let (sender, mut first) = channel(8);
        let mut second = sender.subscribe();
        for i in 0..3 {
            sender.push(i).unwrap();
        }
        assert_eq!(messages(drain(&mut first)), [0, 1, 2]);
        // What the first has read waits for the second only.
        assert_eq!(sender.len(), 3);
        assert_eq!(messages(drain(&mut second)), [0, 1, 2]);
        assert!(sender.is_empty());
    }

    #[test]
    fn each_reader_lags_on_its_own() {
        let (sender, mut fast) = channel(4);
        let mut slow = sender.subscribe();
        for i in 0..10 {
            sender.push(i).unwrap();
            assert_eq!(messages(drain(&mut fast)), [i]);
        }
        let items = drain(&mut slow);
        assert!(matches!(
            items[0],
            Received::Signal(Signal::Lagged { missed: 6 })
        ));
        assert_eq!(messages(items), [6, 7, 8, 9]);
    }

    #[test]
    fn a_late_reader_gets_nothing_from_before_it_came() {
        let (sender, mut early) = channel(8);
        sender.push(1).unwrap();
        let mut late = sender.subscribe();
        sender.push(2).unwrap();
        assert_eq!(messages(drain(&mut early)), [1, 2]);
        assert_eq!(messages(drain(&mut late)), [2]);
    }

    #[test]
    fn a_reader_that_leaves_releases_what_it_had_not_read() {
        let (sender, mut staying) = channel(8);
        let leaving = sender.subscribe();
        sender.push(1).unwrap();
        assert_eq!(messages(drain(&mut staying)), [1]);
        assert_eq!(sender.len(), 1);
        drop(leaving);
        assert!(sender.is_empty());
        assert_eq!(sender.receiver_count(), 1);
    }
}
