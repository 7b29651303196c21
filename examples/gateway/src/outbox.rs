//! A socket's outbox: the frames waiting for one client, drained by the socket's
//! writer at the client's pace.
//!
//! Relayed messages go through one core ring per socket ([`pubsub_core::ring`]): binds
//! push without waiting, and a client that falls `socket_buffer` messages behind loses
//! the oldest ones and gets a `lagged` frame where they were dropped. A loss upstream
//! of the outbox (a broker reconnect, or the bind's subscription lagging) goes into
//! the ring as a gap that carries the frame telling the client, so it too arrives
//! where it happened (a client so far behind that the gap itself is dropped has it
//! counted in its `lagged` frame instead). Messages are rendered only when written: a dropped one costs no
//! JSON, and a payload fanned out to many sockets is shared until then.
//!
//! Bind results and errors must never be dropped, so they wait in a small queue of
//! their own, and go out before any message taken after them: a bind's `bound` frame
//! always precedes its messages. An idle outbox holds no buffer at all.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use pubsub_core::ring::{self, RingReceiver, RingSender};
use pubsub_core::{Delivery, Received, Signal};
use tokio::sync::Notify;

use crate::frames;

/// An outbox holding at most `capacity` relayed messages: the binds' side and the
/// writer's side.
pub(crate) fn channel(capacity: usize) -> (Outbox, OutboxReader) {
    let (ring, receiver) = ring::channel(capacity);
    let control = Arc::new(Control::default());
    let outbox = Outbox {
        ring,
        control: Arc::clone(&control),
    };
    let reader = OutboxReader {
        ring: receiver,
        control,
        held: None,
    };
    (outbox, reader)
}

/// Where a session and its binds put frames. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    ring: RingSender<Relayed>,
    control: Arc<Control>,
}

/// Where the socket's writer takes frames from.
#[derive(Debug)]
pub(crate) struct OutboxReader {
    ring: RingReceiver<Relayed>,
    control: Arc<Control>,
    /// Taken from the ring while control frames were waiting: written after them.
    held: Option<Received<Relayed>>,
}

/// A message on its way to the client, rendered when written.
#[derive(Debug)]
struct Relayed {
    exchange: Arc<str>,
    delivery: Delivery,
}

/// The frames that are never dropped; there are few (one per bind, one per bad
/// client frame).
#[derive(Debug, Default)]
struct Control {
    frames: Mutex<VecDeque<String>>,
    ready: Notify,
}

/// The client is gone: nothing more will be written to it.
#[derive(Debug)]
pub(crate) struct Gone;

impl Outbox {
    /// Queues a message from `exchange`, dropping the oldest one when the outbox is
    /// full. Never waits.
    pub(crate) fn relay(&self, exchange: &Arc<str>, delivery: Delivery) -> Result<(), Gone> {
        let relayed = Relayed {
            exchange: Arc::clone(exchange),
            delivery,
        };
        self.ring.push(relayed).map_err(|_| Gone)
    }

    /// Tells the client, after the messages queued now, that messages were lost
    /// upstream: `frame` is the `gap` or `lagged` frame that says so.
    pub(crate) fn lost(&self, frame: String) {
        self.ring.gap(frame);
    }

    /// Queues a frame that is never dropped (a bind's result, an error).
    pub(crate) fn control(&self, frame: String) {
        self.control
            .frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(frame);
        self.control.ready.notify_one();
    }
}

impl OutboxReader {
    /// The next frame to write, waiting for one; `None` once every [`Outbox`] is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a frame is taken from the outbox only when this returns it.
    pub(crate) async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(frame) = self.pop_control() {
                return Some(frame);
            }
            if let Some(item) = self.held.take() {
                return Some(render(item));
            }
            tokio::select! {
                biased;
                () = self.control.ready.notified() => {}
                // Held rather than returned: a control frame queued before this message
                // (its bind's `bound`) is visible now and goes first.
                item = self.ring.recv() => self.held = Some(item?),
            }
        }
    }

    fn pop_control(&self) -> Option<String> {
        self.control
            .frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

fn render(item: Received<Relayed>) -> String {
    match item {
        Received::Message(Relayed { exchange, delivery }) => frames::message(&exchange, &delivery),
        Received::Signal(Signal::Lagged { missed }) => frames::lagged(missed),
        // Only `lost` puts gaps in this ring, each with its whole frame.
        Received::Signal(Signal::Gap { reason }) => reason,
        Received::Signal(other) => frames::gap(None, &other.to_string()),
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

    async fn frame(reader: &mut OutboxReader) -> Value {
        let frame = reader.next().await.expect("a frame");
        serde_json::from_str(&frame).expect("frames are JSON")
    }

    #[tokio::test]
    async fn a_full_outbox_drops_the_oldest_messages_and_says_how_many() {
        let (outbox, mut reader) = channel(2);
        let exchange: Arc<str> = Arc::from("ex");
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
        let (outbox, mut reader) = channel(1);
        let exchange: Arc<str> = Arc::from("ex");
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
        let (outbox, mut reader) = channel(8);
        let exchange: Arc<str> = Arc::from("ex");
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
        let (outbox, reader) = channel(4);
        drop(reader);
        assert!(outbox.relay(&Arc::from("ex"), delivery(1)).is_err());
    }
}
