//! A socket's outbox: the frames waiting for one client, drained by the socket's
//! writer at the client's pace.
//!
//! Binds put relayed messages in without waiting. An outbox holds at most
//! `socket_buffer` messages and `socket_buffer_bytes` bytes of them, and no more than
//! its share of its user's `user_buffer_bytes` (divided among the user's open sockets),
//! so eight sockets of one user that never read hold a bounded amount, whatever the
//! size of the messages. Past a bound the oldest messages are dropped (the newest is
//! always kept) and the client gets a `lagged` frame with their count where they were.
//! A loss upstream of the outbox (a broker reconnect, or the bind's subscription
//! lagging) goes in as the frame telling the client, so it too arrives where it
//! happened (one dropped itself counts as one missed message). Messages are rendered
//! only when written: a dropped one costs no JSON, and a payload fanned out to many
//! sockets is shared until then, though each outbox counts it whole.
//!
//! This is a queue of its own rather than a `pubsub_core::ring`, whose bound counts
//! messages only and which drops for its reader alone.
//!
//! Bind results and errors must never be dropped, so they wait in a small queue of
//! their own, and go out before any message: a bind's `bound` frame (sent when asked)
//! always precedes its messages. An idle outbox holds no buffer at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pubsub_core::Delivery;
use tokio::sync::Notify;

use crate::config::Limits;
use crate::frames::{self, Source};
use crate::meters::FrameCounters;

/// How much one outbox may hold.
#[derive(Debug)]
pub(crate) struct Bounds {
    /// Messages (and upstream losses).
    pub(crate) frames: usize,
    /// Bytes of them.
    pub(crate) bytes: usize,
    /// Bytes for all the sockets of the user.
    pub(crate) user_bytes: usize,
    /// The user's open sockets, which share `user_bytes`.
    pub(crate) user_sockets: Arc<AtomicUsize>,
}

impl Bounds {
    /// The configured bounds for a socket of the user with `user_sockets` open.
    pub(crate) fn new(limits: &Limits, user_sockets: Arc<AtomicUsize>) -> Bounds {
        Bounds {
            frames: limits.socket_buffer.max(1),
            bytes: limits.socket_buffer_bytes,
            user_bytes: limits.user_buffer_bytes,
            user_sockets,
        }
    }

    fn bytes_now(&self) -> usize {
        let sockets = self.user_sockets.load(Ordering::Relaxed).max(1);
        self.bytes.min(self.user_bytes / sockets)
    }
}

/// An outbox within `bounds`: the binds' side and the writer's side, counting what it
/// hands out and what it drops in `counters`.
pub(crate) fn channel(bounds: Bounds, counters: FrameCounters) -> (Outbox, OutboxReader) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            senders: 1,
            ..Queue::default()
        }),
        ready: Notify::new(),
        bounds,
    });
    let outbox = Outbox {
        shared: Arc::clone(&shared),
    };
    let reader = OutboxReader {
        shared,
        counters,
        delivered: 0,
    };
    (outbox, reader)
}

/// Where a session and its binds put frames. Cheap to clone.
#[derive(Debug)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

/// Where the socket's writer takes frames from.
#[derive(Debug)]
pub(crate) struct OutboxReader {
    shared: Arc<Shared>,
    counters: FrameCounters,
    /// Messages written, node-amqp's `deliveryTag` of the last one.
    delivered: u64,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// One waiter, the writer: a notification sent while it is busy waits for it.
    ready: Notify,
    bounds: Bounds,
}

#[derive(Debug, Default)]
struct Queue {
    /// The frames that are never dropped; there are few (one per bind, one per bad
    /// client frame).
    control: VecDeque<String>,
    relayed: VecDeque<Relayed>,
    /// The bytes of `relayed`.
    bytes: usize,
    /// Dropped since the writer last took a frame.
    missed: u64,
    senders: usize,
    reader_gone: bool,
}

/// A message on its way to the client, rendered when written, or the frame of a loss
/// upstream.
#[derive(Debug)]
enum Relayed {
    Message {
        source: Arc<Source>,
        delivery: Delivery,
    },
    Lost(String),
}

impl Relayed {
    fn bytes(&self) -> usize {
        match self {
            Relayed::Message { source, delivery } => {
                let headers: usize = delivery
                    .headers()
                    .map(|(k, v)| {
                        k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len)
                    })
                    .sum();
                source.len() + delivery.topic().len() + delivery.payload().len() + headers
            }
            Relayed::Lost(frame) => frame.len(),
        }
    }
}

/// The client is gone: nothing more will be written to it.
#[derive(Debug)]
pub(crate) struct Gone;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Outbox {
    /// Queues a message of a bind from `source`, dropping the oldest ones when the
    /// outbox is over a bound. Never waits.
    pub(crate) fn relay(&self, source: &Arc<Source>, delivery: Delivery) -> Result<(), Gone> {
        let source = Arc::clone(source);
        self.push(Relayed::Message { source, delivery })
    }

    /// Tells the client, after the messages queued now, that messages were lost
    /// upstream: `frame` is the `gap` or `lagged` frame that says so.
    pub(crate) fn lost(&self, frame: String) {
        let _ = self.push(Relayed::Lost(frame));
    }

    fn push(&self, relayed: Relayed) -> Result<(), Gone> {
        let bytes = relayed.bytes();
        let budget = self.shared.bounds.bytes_now();
        let mut queue = self.shared.lock();
        if queue.reader_gone {
            return Err(Gone);
        }
        queue.bytes += bytes;
        queue.relayed.push_back(relayed);
        let mut dropped = Vec::new();
        while queue.relayed.len() > self.shared.bounds.frames
            || (queue.bytes > budget && queue.relayed.len() > 1)
        {
            let Some(oldest) = queue.relayed.pop_front() else {
                break;
            };
            queue.bytes -= oldest.bytes();
            queue.missed += 1;
            dropped.push(oldest);
        }
        drop(queue);
        self.shared.ready.notify_one();
        // Dropped outside the lock: a payload may be large.
        drop(dropped);
        Ok(())
    }

    /// Queues a frame that is never dropped (a bind's result, an error).
    pub(crate) fn control(&self, frame: String) {
        self.shared.lock().control.push_back(frame);
        self.shared.ready.notify_one();
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Outbox {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.senders -= 1;
        if queue.senders == 0 {
            drop(queue);
            self.shared.ready.notify_one();
        }
    }
}

/// What the writer finds in the outbox.
enum Next {
    Frame(String),
    Message(Relayed),
    Empty,
    Ended,
}

impl OutboxReader {
    /// The next frame to write, waiting for one; `None` once every [`Outbox`] is gone
    /// and what they queued is written.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a frame is taken from the outbox only when this returns it.
    pub(crate) async fn next(&mut self) -> Option<String> {
        loop {
            let frame = match self.take() {
                Next::Frame(frame) => frame,
                Next::Message(Relayed::Message { source, delivery }) => {
                    self.delivered += 1;
                    frames::message(&source, self.delivered, &delivery)
                }
                Next::Message(Relayed::Lost(frame)) => frame,
                Next::Ended => return None,
                Next::Empty => {
                    self.shared.ready.notified().await;
                    continue;
                }
            };
            self.counters.out.increment(1);
            return Some(frame);
        }
    }

    fn take(&self) -> Next {
        let mut queue = self.shared.lock();
        if let Some(frame) = queue.control.pop_front() {
            return Next::Frame(frame);
        }
        // Only the oldest are dropped: the lag goes before every message still here.
        if queue.missed > 0 {
            let missed = std::mem::take(&mut queue.missed);
            self.counters.dropped.increment(missed);
            return Next::Frame(frames::lagged(missed));
        }
        if let Some(relayed) = queue.relayed.pop_front() {
            queue.bytes -= relayed.bytes();
            if queue.relayed.is_empty() && queue.relayed.capacity() > KEEP_CAPACITY {
                queue.relayed = VecDeque::new();
            }
            return Next::Message(relayed);
        }
        if queue.senders == 0 {
            Next::Ended
        } else {
            Next::Empty
        }
    }
}

/// A drained queue larger than this gives its buffer back, so that a burst does not
/// pin its memory.
const KEEP_CAPACITY: usize = 64;

impl Drop for OutboxReader {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.reader_gone = true;
        let relayed = std::mem::take(&mut queue.relayed);
        queue.bytes = 0;
        drop(queue);
        drop(relayed);
    }
}

#[cfg(test)]
mod tests {
    use pubsub_core::{Message, TopicName};
    use serde_json::{json, Value};

    use super::*;

    fn delivery(n: u64) -> Delivery {
        let topic = TopicName::new("t").expect("a topic name");
        Delivery::new(topic, Message::json(&n).expect("JSON"))
    }

    /// `frames` messages, and bytes enough for any number of them.
    fn frames(frames: usize) -> Bounds {
        Bounds {
            frames,
            bytes: usize::MAX,
            user_bytes: usize::MAX,
            user_sockets: Arc::new(AtomicUsize::new(1)),
        }
    }

    /// A message of `n` and about `size` bytes.
    fn sized(n: u64, size: usize) -> Delivery {
        let topic = TopicName::new("t").expect("a topic name");
        let message = Message::json(&json!({"n": n, "pad": "x".repeat(size)}));
        Delivery::new(topic, message.expect("JSON"))
    }

    async fn frame(reader: &mut OutboxReader) -> Value {
        let frame = reader.next().await.expect("a frame");
        serde_json::from_str(&frame).expect("frames are JSON")
    }

    #[tokio::test]
    async fn a_full_outbox_drops_the_oldest_messages_and_says_how_many() {
        let (outbox, mut reader) = channel(frames(2), FrameCounters::default());
        let exchange = Arc::new(Source::new(&Arc::from("ex")));
        for n in 0..5 {
            outbox
                .relay(&exchange, delivery(n))
                .expect("the reader is here");
        }
        assert_eq!(frame(&mut reader).await, json!({"lagged": {"missed": 3}}));
        assert_eq!(frame(&mut reader).await["msg"], 3);
        assert_eq!(frame(&mut reader).await["msg"], 4);
    }

    #[tokio::test]
    async fn control_frames_are_never_dropped_and_go_before_later_messages() {
        let (outbox, mut reader) = channel(frames(1), FrameCounters::default());
        let exchange = Arc::new(Source::new(&Arc::from("ex")));
        outbox.control("\"bound\"".to_owned());
        for n in 0..3 {
            outbox
                .relay(&exchange, delivery(n))
                .expect("the reader is here");
        }
        assert_eq!(frame(&mut reader).await, "bound");
        assert_eq!(frame(&mut reader).await, json!({"lagged": {"missed": 2}}));
        assert_eq!(frame(&mut reader).await["msg"], 2);
    }

    #[tokio::test]
    async fn an_upstream_loss_arrives_where_it_happened() {
        let (outbox, mut reader) = channel(frames(8), FrameCounters::default());
        let exchange = Arc::new(Source::new(&Arc::from("ex")));
        outbox
            .relay(&exchange, delivery(0))
            .expect("the reader is here");
        outbox.lost(frames::lagged(7));
        outbox
            .relay(&exchange, delivery(1))
            .expect("the reader is here");
        assert_eq!(frame(&mut reader).await["msg"], 0);
        assert_eq!(frame(&mut reader).await, json!({"lagged": {"missed": 7}}));
        assert_eq!(frame(&mut reader).await["msg"], 1);
    }

    #[test]
    fn relaying_to_a_closed_socket_says_it_is_gone() {
        let (outbox, reader) = channel(frames(4), FrameCounters::default());
        drop(reader);
        assert!(outbox
            .relay(&Arc::new(Source::new(&Arc::from("ex"))), delivery(1))
            .is_err());
    }

    #[tokio::test]
    async fn the_bytes_bound_drops_the_oldest_but_keeps_the_newest() {
        let bounds = Bounds {
            bytes: 10_000,
            ..frames(100)
        };
        // Three of about 3 KiB fit in 10,000 bytes.
        let (outbox, mut reader, exchange) = ten_of_3_kib_keep_the_newest_three(bounds).await;
        // One larger than the whole bound is still delivered.
        outbox
            .relay(&exchange, sized(10, 50_000))
            .expect("the reader is here");
        assert_eq!(frame(&mut reader).await["msg"]["n"], 10);
    }

    #[tokio::test]
    async fn a_users_sockets_share_its_bytes() {
        let sockets = Arc::new(AtomicUsize::new(4));
        let bounds = Bounds {
            bytes: 1 << 20,
            user_bytes: 40_000,
            user_sockets: Arc::clone(&sockets),
            ..frames(100)
        };
        // A quarter of 40,000 bytes: three messages of about 3 KiB.
        ten_of_3_kib_keep_the_newest_three(bounds).await;
    }

    /// Relays ten messages of about 3 KiB through an outbox bounded by `bounds`, and
    /// checks that the reader gets the newest three after a `lagged` frame for seven.
    async fn ten_of_3_kib_keep_the_newest_three(
        bounds: Bounds,
    ) -> (Outbox, OutboxReader, Arc<Source>) {
        let (outbox, mut reader) = channel(bounds, FrameCounters::default());
        let exchange = Arc::new(Source::new(&Arc::from("ex")));
        for n in 0..10 {
            outbox
                .relay(&exchange, sized(n, 3000))
                .expect("the reader is here");
        }
        assert_eq!(frame(&mut reader).await, json!({"lagged": {"missed": 7}}));
        for n in 7..10 {
            assert_eq!(frame(&mut reader).await["msg"]["n"], n);
        }
        (outbox, reader, exchange)
    }

    #[tokio::test]
    async fn the_reader_ends_once_every_outbox_is_gone_and_drained() {
        let (outbox, mut reader) = channel(frames(4), FrameCounters::default());
        let second = outbox.clone();
        outbox.control("\"last\"".to_owned());
        drop(outbox);
        drop(second);
        assert_eq!(frame(&mut reader).await, "last");
        assert!(reader.next().await.is_none());
    }
}
