//! Broadcast and group subscriptions, each on a channel of its own, so that a
//! refused declare closes only that channel and lapin recovers each channel's
//! topology on its own.
//!
//! - **Broadcast**: an exclusive, auto-delete queue bound with the topic or pattern
//!   and consumed without acks. Its name is made here rather than by the broker,
//!   because lapin's recovery declares a queue again by its name and RabbitMQ refuses
//!   client declares of `amq.gen-*` names. A no-ack consumer has no flow control, so
//!   deliveries go through the subscription's ring, which drops the oldest when the
//!   subscriber falls behind. A lost connection puts a gap in the ring.
//! - **Group**: a durable queue named after group, exchange and topic, with
//!   `x-max-priority`, consumed with manual acks and a prefetch; the broker sends at
//!   most the prefetch, so the ring never fills.

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Consumer, ErrorKind};
use pubsub_core::ring::{self, RingSender};
use pubsub_core::{Delivery, Error, Pattern, Result, SubscribeOptions, Subscription, TopicName};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch, RwLock};

use crate::acker::{GroupAcker, Member};
use crate::connection::{declare_exchange, Shared};
use crate::errors::lapin_error;
use crate::properties::{short, to_message};
use crate::publish::Exchange;
use crate::route::{group_queue, Route};

/// Subscribes to `pattern` along `route`.
pub(crate) async fn subscribe(
    shared: &Arc<Shared>,
    route: Route,
    pattern: &Pattern,
    options: SubscribeOptions,
) -> Result<Subscription> {
    let live = shared.live().await?;
    let channel = live
        .connection
        .create_channel()
        .await
        .map_err(|e| lapin_error("open a channel", e))?;
    let runtime = Handle::current();
    let closer = Closer::new(channel.clone(), runtime.clone());
    let reconnects = live.reconnects();
    let exchange = short("exchange name", &route.exchange)?;
    declare_exchange(&channel, &exchange, route.kind.clone()).await?;
    let topics = Topics::of(pattern);
    match options.group {
        None => {
            let buffer = options.buffer.unwrap_or(shared.options.buffer).max(1);
            broadcast_subscription(closer, &route, buffer, topics, reconnects).await
        }
        Some(group) => {
            let queue = group_queue(&group, &route.exchange, pattern.as_str())?;
            let prefetch = options.prefetch.unwrap_or(shared.options.prefetch).max(1);
            let member = Member {
                shared: Arc::clone(shared),
                queue: short("queue name", &queue)?,
                default_exchange: Exchange::default_exchange(),
                runtime,
                releasing: Arc::default(),
            };
            group_subscription(closer, &route, member, prefetch, topics).await
        }
    }
}

/// How a delivery's topic is found: the subscription's own name, or for a pattern
/// the routing key (the exchange's name for a foreign publish to a fanout exchange
/// with an empty key).
enum Topics {
    Fixed(TopicName),
    Routed,
}

impl Topics {
    fn of(pattern: &Pattern) -> Self {
        match pattern.as_name() {
            Some(name) => Topics::Fixed(name),
            None => Topics::Routed,
        }
    }

    /// The topic of `delivery`; `kept` is the topic a requeued copy carries. `None`
    /// (logged) for a routing key that is no topic name.
    fn of_delivery(
        &self,
        delivery: &lapin::message::Delivery,
        kept: Option<String>,
    ) -> Option<TopicName> {
        let parsed = match (kept, self) {
            (Some(kept), _) => TopicName::new(kept),
            (None, Topics::Fixed(name)) => return Some(name.clone()),
            (None, Topics::Routed) => TopicName::new(match delivery.routing_key.as_str() {
                "" => delivery.exchange.as_str(),
                key => key,
            }),
        };
        parsed
            .inspect_err(|error| {
                tracing::debug!(routing_key = delivery.routing_key.as_str(), %error, "AMQP message whose topic is no topic name; skipped");
            })
            .ok()
    }
}

async fn broadcast_subscription(
    mut closer: Closer,
    route: &Route,
    buffer: usize,
    topics: Topics,
    reconnects: watch::Receiver<u64>,
) -> Result<Subscription> {
    let queue = format!("pubsub.subscriber.{}", uuid::Uuid::new_v4().simple());
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let consumer = consume(
        &closer.channel,
        &queue,
        options,
        FieldTable::default(),
        route,
        true,
    )
    .await?;
    let (sender, receiver) = ring::channel(buffer);
    closer
        .runtime
        .spawn(pump_broadcast(consumer, sender, topics, reconnects));
    let closed = closer.watch();
    Ok(Subscription::new(receiver)
        .with_guard(closer)
        .with_unsubscribe(|| async move {
            // The guard closes the channel, which deletes the queue; this waits for
            // the broker's word. A closer that never ran (no runtime) closed nothing.
            let _ = closed.await;
            Ok(())
        }))
}

/// Moves deliveries from lapin's buffer to the ring until the consumer ends (its
/// channel closed) or the subscription is gone.
async fn pump_broadcast(
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
                        break;
                    }
                }
                Some(Err(error)) => ring.gap(format!(
                    "the consumer was interrupted ({error}); messages may have been missed"
                )),
                None => break,
            },
        }
        if ring.is_closed() {
            break;
        }
    }
}

async fn group_subscription(
    mut closer: Closer,
    route: &Route,
    member: Member,
    prefetch: u16,
    topics: Topics,
) -> Result<Subscription> {
    closer
        .channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| lapin_error("set the prefetch", e))?;
    let mut arguments = FieldTable::default();
    let max_priority = member.shared.options.max_priority;
    if max_priority > 0 {
        arguments.insert(
            "x-max-priority".into(),
            AMQPValue::ShortShortUInt(max_priority),
        );
    }
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let queue = member.queue.as_str();
    let consumer = consume(&closer.channel, queue, options, arguments, route, false)
        .await
        .map_err(|error| conflicting_arguments(error, queue, max_priority))?;
    closer.releasing = Some(Arc::clone(&member.releasing));
    // The broker sends at most `prefetch` unacked messages: the ring never drops one.
    let (sender, receiver) = ring::channel(usize::from(prefetch));
    closer
        .runtime
        .spawn(pump_group(consumer, sender, topics, Arc::new(member)));
    let closed = closer.watch();
    Ok(Subscription::new(receiver)
        .with_guard(closer)
        .with_unsubscribe(|| async move {
            let _ = closed.await;
            Ok(())
        }))
}

/// Moves group deliveries to the ring, each with its acker, until the consumer ends
/// or the subscription is gone.
async fn pump_group(
    mut consumer: Consumer,
    ring: RingSender<Delivery>,
    topics: Topics,
    member: Arc<Member>,
) {
    while let Some(item) = consumer.next().await {
        let mut delivery = match item {
            Ok(delivery) => delivery,
            Err(error) => {
                // lapin consumes again once the connection is back; the broker kept
                // what was not acked, so nothing is lost and there is nothing to say.
                tracing::debug!(%error, queue = member.queue.as_str(), "group consumer interrupted; recovering");
                continue;
            }
        };
        let incoming = to_message(
            std::mem::take(&mut delivery.data),
            &delivery.properties,
            delivery.redelivered,
        );
        let Some(topic) = topics.of_delivery(&delivery, incoming.topic) else {
            // Not ours to read; nobody else in the group can either.
            let _ = delivery
                .acker
                .reject(lapin::options::BasicRejectOptions { requeue: false })
                .await;
            continue;
        };
        let acker = GroupAcker {
            acker: delivery.acker,
            member: Arc::clone(&member),
            topic: topic.clone(),
            payload: incoming.message.payload().clone(),
            properties: delivery.properties,
            attempt: incoming.attempt,
        };
        let delivery = Delivery::new(topic, incoming.message)
            .with_attempt(incoming.attempt)
            .with_acker(acker);
        if ring.push(delivery).is_err() {
            break;
        }
    }
}

/// Declares `queue`, binds it along `route` and consumes it; returns after
/// consume-ok, so the subscription is a barrier.
async fn consume(
    channel: &Channel,
    queue: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
    route: &Route,
    no_ack: bool,
) -> Result<Consumer> {
    let name = short("queue name", queue)?;
    channel
        .queue_declare(name.clone(), options, arguments)
        .await
        .map_err(|e| lapin_error(&format!("declare queue {queue:?}"), e))?;
    channel
        .queue_bind(
            name.clone(),
            short("exchange name", &route.exchange)?,
            short("binding key", &route.binding_key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| lapin_error(&format!("bind queue {queue:?} to {:?}", route.exchange), e))?;
    let options = BasicConsumeOptions {
        no_ack,
        ..BasicConsumeOptions::default()
    };
    channel
        .basic_consume(name, ShortString::default(), options, FieldTable::default())
        .await
        .map_err(|e| lapin_error(&format!("consume queue {queue:?}"), e))
}

/// A group queue that exists with other arguments: say which queue and argument.
fn conflicting_arguments(error: Error, queue: &str, max_priority: u8) -> Error {
    let Error::Broker { message, source } = error else {
        return error;
    };
    let refused = source
        .as_deref()
        .and_then(|s| s.downcast_ref::<lapin::Error>())
        .is_some_and(|e| {
            matches!(e.kind(), ErrorKind::ProtocolError(amqp)
                if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
        });
    if !refused {
        return Error::Broker { message, source };
    }
    let asked = match max_priority {
        0 => "no x-max-priority".to_owned(),
        n => format!("x-max-priority = {n}"),
    };
    Error::Broker {
        message: format!(
            "group queue {queue:?} already exists with other arguments than this \
             subscription asks ({asked}); RabbitMQ keeps a queue's arguments, so join it \
             with the same settings (AmqpBuilder::max_priority) or delete it first. \
             The broker said: {message}"
        ),
        source,
    }
}

/// Closes a subscription's channel when the subscription goes: the broker then
/// requeues what the member held and deletes an exclusive queue.
struct Closer {
    channel: Channel,
    runtime: Handle,
    /// A group member's releases under way, which go first.
    releasing: Option<Arc<RwLock<()>>>,
    closed: Option<oneshot::Sender<()>>,
}

impl Closer {
    fn new(channel: Channel, runtime: Handle) -> Self {
        Closer {
            channel,
            runtime,
            releasing: None,
            closed: None,
        }
    }

    /// Resolves once the channel is closed.
    fn watch(&mut self) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.closed = Some(sender);
        receiver
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        let channel = self.channel.clone();
        let releasing = self.releasing.take();
        let closed = self.closed.take();
        self.runtime.spawn(async move {
            if let Some(releasing) = releasing {
                let _releases_done = releasing.write().await;
            }
            if channel.status().connected() {
                // A channel already closing answers with an error that means the same.
                let _ = channel.close(200, "unsubscribed".into()).await;
            }
            if let Some(closed) = closed {
                let _ = closed.send(());
            }
        });
    }
}
