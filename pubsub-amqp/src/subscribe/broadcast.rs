//! Broadcast subscriptions: an exclusive, auto-delete queue each, bound with the topic
//! or pattern and consumed without acks, all on one channel of the connection.
//!
//! Sharing the channel keeps an idle subscription small (a channel per subscription
//! would cost its own buffers and state, and RabbitMQ allows 2047 channels per
//! connection). A refused command closes the channel it was sent on, so the one
//! command that can be refused for one subscription and not another, the binding
//! (permissions, topic authorization, an exchange deleted meanwhile), is tried first
//! on a channel of its own that is then dropped; only then is it repeated on the
//! shared channel, whose topology lapin replays after a reconnect.
//!
//! The queue's name is made here rather than by the broker, because lapin's recovery
//! declares a queue again by its name and RabbitMQ refuses client declares of
//! `amq.gen-*` names. A no-ack consumer has no flow control, so deliveries go through
//! the subscription's ring, which drops the oldest when the subscriber falls behind;
//! a reconnect puts a gap in the ring.

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer};
use pubsub_core::ring::{self, RingSender};
use pubsub_core::{Delivery, Result, Subscription};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use super::{bind, declare, Topics};
use crate::connection::{usable, Live, Shared};
use crate::errors::lapin_error;
use crate::properties::to_message;
use crate::route::Route;

/// Subscribes along `route` with a ring of `buffer` messages.
pub(super) async fn subscribe(
    shared: &Arc<Shared>,
    route: &Route,
    buffer: usize,
    topics: Topics,
) -> Result<Subscription> {
    let live = shared.live().await?;
    let channel = shared_channel(live).await?;
    let queue = format!("pubsub.subscriber.{}", uuid::Uuid::new_v4().simple());
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let name = ShortString::from(queue.as_str());
    let runtime = Handle::current();
    // Round trips that do not depend on each other go together: the subscription
    // takes three of them.
    let (probe, declared) = futures::join!(
        open_channel(live),
        declare(&channel, &queue, options, FieldTable::default())
    );
    declared?;
    // From here on, a failure or a cancelled subscribe deletes the queue again.
    let mut release = Release {
        channel: channel.clone(),
        queue: name.clone(),
        tag: None,
        runtime: runtime.clone(),
        done: None,
    };
    bind(&probe?, &queue, route).await?;
    let consume = async {
        let options = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        channel
            .basic_consume(name, ShortString::default(), options, FieldTable::default())
            .await
            .map_err(|e| lapin_error(&format!("consume queue {queue:?}"), e))
    };
    let ((), consumer) = futures::try_join!(bind(&channel, &queue, route), consume)?;
    release.tag = Some(consumer.tag());
    let (done, released) = oneshot::channel();
    release.done = Some(done);
    let (sender, receiver) = ring::channel(buffer);
    runtime.spawn(pump(consumer, sender, topics, live.reconnects()));
    Ok(Subscription::new(receiver)
        .with_guard(release)
        .with_unsubscribe(|| async move {
            // The guard's task deletes the queue; this waits for the broker's word.
            let _ = released.await;
            Ok(())
        }))
}

/// The channel broadcast subscriptions share, opened again if the broker closed it.
async fn shared_channel(live: &Live) -> Result<Channel> {
    let mut consuming = live.consuming.lock().await;
    if let Some(channel) = consuming.as_ref() {
        if usable(channel, &live.connection) {
            return Ok(channel.clone());
        }
    }
    let channel = open_channel(live).await?;
    *consuming = Some(channel.clone());
    Ok(channel)
}

/// A new channel: the shared one, or one of its own for the binding that may be
/// refused, which a refusal closes instead of the shared one. Dropping the last
/// handle of a channel closes it.
async fn open_channel(live: &Live) -> Result<Channel> {
    live.connection
        .create_channel()
        .await
        .map_err(|e| lapin_error("open a channel", e))
}

/// Moves deliveries from lapin's buffer to the ring until the consumer ends
/// (cancelled, or its channel closed) or the subscription is gone.
async fn pump(
    mut consumer: Consumer,
    ring: RingSender<Delivery>,
    topics: Topics,
    mut reconnects: watch::Receiver<u64>,
) {
    let mut watching = true;
    loop {
        tokio::select! {
            changed = reconnects.changed(), if watching => match changed {
                Ok(()) => ring.gap(
                    "the connection to the broker was lost and re-established; messages \
                     published meanwhile were missed",
                ),
                Err(_) => watching = false,
            },
            item = consumer.next() => match item {
                Some(Ok(mut delivery)) => {
                    let incoming = to_message(
                        std::mem::take(&mut delivery.data),
                        &delivery.properties,
                        false,
                    );
                    let Some(topic) = topics.of_delivery(&delivery, incoming.topic) else {
                        continue;
                    };
                    if ring.push(Delivery::new(topic, incoming.message)).is_err() {
                        return;
                    }
                }
                Some(Err(error)) => ring.gap(format!(
                    "the consumer was interrupted ({error}); messages may have been missed"
                )),
                None => return,
            },
        }
    }
}

/// Cancels the consumer and deletes the queue when the subscription goes, or when a
/// subscribe fails or is cancelled after declaring the queue.
struct Release {
    channel: Channel,
    queue: ShortString,
    /// The consumer, once there is one.
    tag: Option<ShortString>,
    runtime: Handle,
    /// Told when the queue is deleted.
    done: Option<oneshot::Sender<()>>,
}

impl Drop for Release {
    fn drop(&mut self) {
        let channel = self.channel.clone();
        let queue = std::mem::take(&mut self.queue);
        let tag = self.tag.take();
        let done = self.done.take();
        self.runtime.spawn(async move {
            // Errors mean the channel or connection is gone, and the queue with it:
            // lapin forgets the topology of a closed channel.
            if channel.status().connected() {
                if let Some(tag) = tag {
                    let _ = channel
                        .basic_cancel(tag, BasicCancelOptions::default())
                        .await;
                }
                // Deleting also drops the queue from what lapin replays on recovery.
                let _ = channel
                    .queue_delete(queue, QueueDeleteOptions::default())
                    .await;
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    }
}
