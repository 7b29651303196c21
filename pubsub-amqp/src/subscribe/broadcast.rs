//! Broadcast subscriptions: an exclusive, auto-delete queue each, bound with the topic
//! or pattern, all consumed on one channel of the connection.
//!
//! Sharing the channel keeps an idle subscription small (a channel per subscription
//! would cost its own buffers and state, and RabbitMQ allows 2047 channels per
//! connection). A refused command closes the channel it was sent on, so the one
//! command that can be refused for one subscription and not another, the binding
//! (permissions, topic authorization, an exchange deleted meanwhile), is tried first
//! on a channel of its own that is then dropped; only then is it repeated on the
//! shared channel.
//!
//! The backlog waits in the broker: the consumer's prefetch is the subscription's
//! buffer, and what the subscriber has read is acknowledged (several at a time, see
//! [`super::acks`]), so the broker sends more only as the subscriber reads, and the
//! ring between them never fills. The queue holds at most the backlog; what the broker drops past that
//! is counted (see [`super::dropped`]).
//!
//! The queue's name is made here rather than by the broker, so that it is the same
//! on every connection the subscription consumes on. When the consumer ends for any
//! reason but the subscriber's going (its channel or connection failed, the broker
//! cancelled it), the subscription declares, binds and consumes again on the open
//! connection, and only then puts a gap in the ring: whatever is published after the
//! gap is heard.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Consumer};
use pubsub_core::backoff::Backoff;
use pubsub_core::ring::{self, RingSender};
use pubsub_core::{Delivery, Result, Subscription};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::acks::{ChannelAcks, Seat};
use super::{bind, declare, resume, Consuming, Topics};
use crate::connection::{Live, Shared};
use crate::errors::lapin_error;
use crate::lost::Liveness;
use crate::properties::to_message;
use crate::quarantine::is_unreadable;
use crate::route::Route;

/// Subscribes along `route`, holding at most `buffer` messages on the client.
pub(super) async fn subscribe(
    shared: &Arc<Shared>,
    route: &Route,
    buffer: u16,
    topics: Topics,
) -> Result<Subscription> {
    let live = shared.live().await?;
    let queue = ShortString::from(format!(
        "pubsub.subscriber.{}",
        uuid::Uuid::new_v4().simple()
    ));
    let runtime = Handle::current();
    let listen = Listen {
        shared: Arc::clone(shared),
        route: route.clone(),
        queue: queue.clone(),
        prefetch: buffer,
        consuming: Consuming::new(),
        dropped: shared.rings.register(queue.clone()),
    };
    // From here on, a failure or a cancelled subscribe deletes the queue again.
    let mut release = Release {
        shared: Arc::clone(shared),
        consuming: Arc::clone(&listen.consuming),
        queue: queue.clone(),
        runtime: runtime.clone(),
        done: None,
    };
    // Room for a gap before each message besides the prefetch: the ring never drops.
    let (sender, receiver) = ring::channel(usize::from(buffer) * 2 + 2);
    let (consumer, seat) = listen.establish(&live).await?;
    let liveness = live.liveness.clone();
    let (done, released) = oneshot::channel();
    release.done = Some(done);
    let consuming = Arc::clone(&listen.consuming);
    consuming.started(runtime.spawn(pump(consumer, seat, liveness, sender, topics, listen)));
    Ok(Subscription::new(receiver)
        .with_guard(release)
        .with_unsubscribe(|| async move {
            // The guard's task deletes the queue; this waits for the broker's word.
            let _ = released.await;
            Ok(())
        }))
}

/// What subscribing takes, the first time and after a failure.
struct Listen {
    shared: Arc<Shared>,
    route: Route,
    queue: ShortString,
    prefetch: u16,
    consuming: Arc<Consuming>,
    /// What the broker dropped from the queue and the subscriber was not told yet.
    dropped: Arc<AtomicU64>,
}

impl Listen {
    /// Tells the subscriber what the broker dropped since it was last told.
    fn tell_dropped(&self, ring: &RingSender<Delivery>) {
        let missed = self.dropped.swap(0, Ordering::Relaxed);
        if missed > 0 {
            ring.gap(format!(
                "the broker dropped the {missed} oldest messages of this subscription's \
                 queue, which holds at most {} (AmqpBuilder::backlog): the subscriber fell \
                 that far behind",
                self.shared.options.backlog
            ));
        }
    }

    /// Declares and binds the queue and consumes it on `live`'s shared channel.
    async fn establish(&self, live: &Live) -> Result<(Consumer, Seat)> {
        let what = format!("consume broadcast queue {:?}", self.queue.as_str());
        live.liveness
            .unless_lost(&what, self.consume_on(live))
            .await
    }

    async fn consume_on(&self, live: &Live) -> Result<(Consumer, Seat)> {
        let (channel, acks) = shared_channel(live).await?;
        self.consuming.on(channel.clone(), live);
        let dead_letters = live
            .dead_letters
            .queue(&live.connection, Arc::downgrade(&self.shared.rings))
            .await;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        // Round trips that do not depend on each other go together: the
        // subscription takes three of them.
        let (probe, declared) = futures::join!(
            open_channel(live),
            declare(&channel, &self.queue, options, self.arguments(dead_letters))
        );
        declared?;
        bind(&probe?, &self.queue, &self.route).await?;
        let seat = acks.seat(&channel, ack_batch(self.prefetch));
        let ((), consumer) = futures::try_join!(
            bind(&channel, &self.queue, &self.route),
            consume(live, &channel, &self.queue, self.prefetch)
        )?;
        self.consuming.consumes(consumer.tag());
        Ok((consumer, seat))
    }

    /// The queue's length limit, and where what it drops goes (if anywhere).
    fn arguments(&self, dead_letters: Option<ShortString>) -> FieldTable {
        let options = &self.shared.options;
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongUInt(options.backlog));
        if let Some(bytes) = options.backlog_bytes {
            arguments.insert("x-max-length-bytes".into(), AMQPValue::LongUInt(bytes));
        }
        if let Some(dead_letters) = dead_letters {
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::default()),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(dead_letters.as_str().into()),
            );
        }
        arguments
    }
}

/// Consumes `queue` with acks and a prefetch of `prefetch`, set on the shared channel
/// for the consumers that follow unless it is already (RabbitMQ applies a channel's
/// non-global prefetch to each consumer made after it).
async fn consume(
    live: &Live,
    channel: &Channel,
    queue: &ShortString,
    prefetch: u16,
) -> Result<Consumer> {
    let mut shared = live.consuming.lock().await;
    if let Some(on) = shared.as_mut().filter(|on| on.channel.id() == channel.id()) {
        if on.prefetch != prefetch {
            on.channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await
                .map_err(|e| lapin_error("set the prefetch", e))?;
            on.prefetch = prefetch;
        }
    }
    channel
        .basic_consume(
            queue.clone(),
            ShortString::default(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| lapin_error(&format!("consume queue {:?}", queue.as_str()), e))
}

/// The channel broadcast subscriptions of a connection share.
#[derive(Debug)]
pub(crate) struct SharedChannel {
    channel: Channel,
    /// The prefetch set on it for the consumers that follow.
    prefetch: u16,
    acks: Arc<ChannelAcks>,
}

/// The channel broadcast subscriptions share, opened again if the broker closed it.
async fn shared_channel(live: &Live) -> Result<(Channel, Arc<ChannelAcks>)> {
    let mut shared = live.consuming.lock().await;
    if let Some(on) = shared.as_ref() {
        if on.channel.status().connected() {
            return Ok((on.channel.clone(), Arc::clone(&on.acks)));
        }
    }
    let channel = open_channel(live).await?;
    let acks = Arc::default();
    *shared = Some(SharedChannel {
        channel: channel.clone(),
        // lapin's default: no prefetch set yet.
        prefetch: 0,
        acks: Arc::clone(&acks),
    });
    Ok((channel, acks))
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

/// Moves deliveries from lapin's buffer to the ring, acknowledging what the
/// subscriber has read, and subscribes again whenever the consumer ends, until the
/// subscription is gone (which aborts this task) or can no longer be made.
async fn pump(
    mut consumer: Consumer,
    mut seat: Seat,
    mut liveness: Liveness,
    ring: RingSender<Delivery>,
    topics: Topics,
    listen: Listen,
) {
    loop {
        let mut reading = Reading::new();
        // A consumer lapin leaves open on a lost connection ends here too; one wait
        // for the loss per connection, not one per delivery.
        let lost = liveness.lost();
        tokio::pin!(lost);
        let unreadable = loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                () = &mut lost => break liveness.unreadable(),
                () = tokio::time::sleep(reading.wait), if reading.unacked() => {
                    reading.acknowledge(&ring, &mut seat, true);
                    continue;
                }
            };
            let mut delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => break is_unreadable(&error),
                None => break false,
            };
            seat.delivered(delivery.delivery_tag);
            let incoming = to_message(
                std::mem::take(&mut delivery.data),
                &delivery.properties,
                false,
            );
            let topic = topics.of_delivery(&delivery, incoming.topic);
            let in_ring = topic.is_some();
            listen.tell_dropped(&ring);
            if let Some(topic) = topic {
                // Fails once the subscription has gone. Its consumer is being
                // cancelled then, and the pump reads on until it ends, so that the
                // channel's ledger sees every delivery it had (see `acks`).
                let _ = ring.push(Delivery::new(topic, incoming.message));
            }
            reading.pushed(delivery.delivery_tag, in_ring);
            reading.acknowledge(&ring, &mut seat, false);
        };
        if listen.consuming.is_stopped() {
            return;
        }
        let what = format!("broadcast queue {:?}", listen.queue.as_str());
        // Boxed: subscribing again is a large future, and an idle subscription's pump
        // would carry its room all the time.
        let resumed = Box::pin(resume(&listen.shared, &what, |live| {
            let listen = &listen;
            async move { listen.establish(&live).await }
        }))
        .await;
        let Some(((resumed, on), live)) = resumed else {
            ring.close();
            return;
        };
        (consumer, seat, liveness) = (resumed, on, live.liveness.clone());
        let address = &live.address;
        // The message itself went with the queue, which was the connection's.
        let why = match unreadable {
            true => {
                "a message that this client cannot read (a property that is not UTF-8?) \
                     ended the subscription's connection"
            }
            false => "the subscription's consumer or connection ended",
        };
        ring.gap(format!(
            "{why} and it subscribed again (on {address}): messages published in between \
             were missed"
        ));
    }
}

/// How many settled deliveries a subscription acks at once, and how many it acks one
/// by one when a neighbour on the shared channel holds them back: a quarter of its
/// prefetch.
fn ack_batch(prefetch: u16) -> usize {
    usize::from(prefetch / 4).max(1)
}

/// Which deliveries the subscriber has read, to acknowledge them.
struct Reading {
    /// Delivery tags in the ring, oldest first, and whether each is there (one that
    /// was not, skipped, counts as read).
    in_ring: VecDeque<(u64, bool)>,
    /// How many of those are there.
    there: usize,
    /// The tags taken out of the ring since the last look (kept for its room).
    read: Vec<u64>,
    /// Whether the seat holds reads it has not acked.
    unflushed: bool,
    /// How long to wait for the subscriber to read before looking again.
    wait: Duration,
    backoff: Backoff,
}

impl Reading {
    fn new() -> Self {
        let mut backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(200));
        Reading {
            in_ring: VecDeque::new(),
            there: 0,
            read: Vec::new(),
            unflushed: false,
            wait: backoff.next_delay(),
            backoff,
        }
    }

    /// Whether anything waits to be read or acknowledged.
    fn unacked(&self) -> bool {
        !self.in_ring.is_empty() || self.unflushed
    }

    fn pushed(&mut self, tag: u64, in_ring: bool) {
        self.in_ring.push_back((tag, in_ring));
        self.there += usize::from(in_ring);
    }

    /// Tells `seat` what the subscriber has taken out of the ring, and when `idle`
    /// (nothing arrived meanwhile) has it ack what is settled.
    fn acknowledge(&mut self, ring: &RingSender<Delivery>, seat: &mut Seat, idle: bool) {
        // Gaps in the ring are not deliveries: counting them as such only acknowledges
        // later.
        let mut taken = self.there.saturating_sub(ring.len());
        while let Some(&(tag, there)) = self.in_ring.front() {
            if there && taken == 0 {
                break;
            }
            self.in_ring.pop_front();
            taken -= usize::from(there);
            self.there -= usize::from(there);
            self.read.push(tag);
        }
        if self.read.is_empty() {
            self.wait = self.backoff.next_delay();
        } else {
            seat.read(&self.read);
            self.read.clear();
            self.unflushed = true;
            self.backoff.reset();
            self.wait = self.backoff.next_delay();
        }
        if idle && self.unflushed {
            self.unflushed = seat.flush();
        }
    }
}

/// Stops the pump, cancels the consumer and deletes the queue when the subscription
/// goes, or when a subscribe fails or is cancelled after declaring the queue.
struct Release {
    shared: Arc<Shared>,
    consuming: Arc<Consuming>,
    queue: ShortString,
    runtime: Handle,
    /// Told when the queue is deleted.
    done: Option<oneshot::Sender<()>>,
}

impl Drop for Release {
    fn drop(&mut self) {
        let super::Stopped { channel, tag, pump } = self.consuming.stop_for_cancel();
        self.shared.rings.unregister(&self.queue);
        let queue = std::mem::take(&mut self.queue);
        let done = self.done.take();
        self.runtime.spawn(async move {
            // Errors mean the channel or connection is gone, and the queue with it.
            if let Some((channel, liveness)) = channel.filter(|(c, _)| c.status().connected()) {
                // The pump reads on until the cancel ends its consumer.
                let delete = async {
                    if let Some(tag) = tag {
                        let _ = channel
                            .basic_cancel(tag, BasicCancelOptions::default())
                            .await;
                    }
                    let deleted = channel.queue_delete(queue, QueueDeleteOptions::default());
                    deleted
                        .await
                        .map_err(|e| lapin_error("delete the queue", e))
                };
                let _ = liveness.unless_lost("delete the queue", delete).await;
            } else {
                // No cancel would end its consumer.
                pump.inspect(JoinHandle::abort);
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    }
}
