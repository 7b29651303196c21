//! Counting what the broker drops from broadcast queues.
//!
//! A broadcast queue holds at most its backlog ([`AmqpBuilder::backlog`]); past that
//! RabbitMQ drops the oldest message and, as the queue is declared with a
//! dead-letter route, dead-letters it. Every broadcast queue of a connection
//! dead-letters into one queue of that connection, consumed without acks here: each
//! dead letter names its queue in `x-death`, and is counted for the subscription of
//! that queue. One queue and one consumer per connection, not per
//! subscription, so that an idle subscription costs no more.
//!
//! [`AmqpBuilder::backlog`]: crate::AmqpBuilder::backlog

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use pubsub_core::Result;
use tokio::sync::Mutex;

use crate::errors::lapin_error;

/// The count of dropped messages of each broadcast queue, shared by every
/// connection of a backend; each subscription's pump reports its count in its
/// stream, where the hole is: before the next message it receives.
#[derive(Default)]
pub(crate) struct Rings {
    counts: std::sync::Mutex<HashMap<ShortString, Arc<AtomicU64>>>,
}

impl Rings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShortString, Arc<AtomicU64>>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The count of messages `queue` drops from now on.
    pub(crate) fn register(&self, queue: ShortString) -> Arc<AtomicU64> {
        Arc::clone(self.lock().entry(queue).or_default())
    }

    pub(crate) fn unregister(&self, queue: &ShortString) {
        self.lock().remove(queue);
    }

    fn tell(&self, counts: HashMap<ShortString, u64>) {
        let registered = self.lock();
        for (queue, missed) in counts {
            if let Some(count) = registered.get(&queue) {
                count.fetch_add(missed, Ordering::Relaxed);
            }
        }
    }
}

/// One connection's dead-letter queue for broadcast queues, made on first use on a
/// channel of its own (so that a refusal, for want of permissions, closes no other).
pub(crate) struct DeadLetters {
    /// Under the broadcast queues' prefix, so that permissions for those cover it.
    name: ShortString,
    state: Mutex<State>,
}

enum State {
    Unused,
    ConsumedOn(Channel),
    /// The broker refused it: broadcast queues on this connection drop uncounted.
    Refused,
}

impl Default for DeadLetters {
    fn default() -> Self {
        DeadLetters {
            name: ShortString::from(format!(
                "pubsub.subscriber.dropped.{}",
                uuid::Uuid::new_v4().simple()
            )),
            state: Mutex::new(State::Unused),
        }
    }
}

impl DeadLetters {
    /// The queue's name, declared and consumed on `connection` unless it is already;
    /// `None` when the broker refused it.
    pub(crate) async fn queue(
        &self,
        connection: &Connection,
        rings: std::sync::Weak<Rings>,
    ) -> Option<ShortString> {
        let mut state = self.state.lock().await;
        match &*state {
            State::ConsumedOn(channel) if channel.status().connected() => {
                return Some(self.name.clone())
            }
            State::Refused => return None,
            _ => {}
        }
        match self.consume(connection).await {
            Ok((consumer, channel)) => {
                tokio::spawn(count(consumer, rings));
                *state = State::ConsumedOn(channel);
                Some(self.name.clone())
            }
            Err(error) => {
                tracing::warn!(%error, "messages that broadcast queues drop past their backlog will not be counted");
                *state = State::Refused;
                None
            }
        }
    }

    async fn consume(&self, connection: &Connection) -> Result<(Consumer, Channel)> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| lapin_error("open a channel", e))?;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(self.name.clone(), options, FieldTable::default())
            .await
            .map_err(|e| lapin_error("declare the queue of dropped messages", e))?;
        let options = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let consumer = channel
            .basic_consume(
                self.name.clone(),
                ShortString::default(),
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|e| lapin_error("consume the queue of dropped messages", e))?;
        Ok((consumer, channel))
    }
}

/// Counts dead letters by the queue that dropped them, a burst at a time, until the
/// connection goes or the backend does.
async fn count(mut consumer: Consumer, rings: std::sync::Weak<Rings>) {
    while let Some(Ok(first)) = consumer.next().await {
        let mut counts = HashMap::new();
        let mut next = Some(first);
        while let Some(delivery) = next {
            if let Some(queue) = died_in(&delivery) {
                *counts.entry(queue).or_insert(0) += 1;
            }
            next = consumer
                .next()
                .now_or_never()
                .flatten()
                .and_then(Result::ok);
        }
        let Some(rings) = rings.upgrade() else {
            return;
        };
        rings.tell(counts);
    }
}

/// The queue a dead letter last died in: the first entry of its `x-death`.
fn died_in(delivery: &lapin::message::Delivery) -> Option<ShortString> {
    let headers = delivery.properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(death) = deaths.as_slice().first()? else {
        return None;
    };
    match death.inner().get("queue")? {
        AMQPValue::LongString(queue) => Some(ShortString::from(
            String::from_utf8_lossy(queue.as_bytes()).into_owned(),
        )),
        AMQPValue::ShortString(queue) => Some(queue.clone()),
        _ => None,
    }
}
