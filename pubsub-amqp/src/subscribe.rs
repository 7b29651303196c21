//! Broadcast and group subscriptions, each on a channel of its own, so that a
//! refused declare closes only that channel and lapin recovers each channel's
//! topology on its own.
//!
//! - **Broadcast**: an exclusive, auto-delete queue bound with the topic or pattern
//!   and consumed without acks. Its name is made here rather than by the broker,
//!   because lapin's recovery declares a queue again by its name and RabbitMQ refuses
//!   client declares of `amq.gen-*` names. Deliveries go through a bounded ring that
//!   drops the oldest ([`Error::Lagged`] says how many), since a no-ack consumer has
//!   no flow control. A lost connection puts an [`Error::Gap`] on the stream.
//! - **Group**: a durable queue named after group, exchange and topic, with
//!   `x-max-priority`, consumed with manual acks and a prefetch; lapin holds at most
//!   the prefetch, so the buffer is bounded by the broker.

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer, ErrorKind};
use pubsub_core::{Delivery, Error, Message, Result, SubscribeOptions, Subscription};
use tokio::sync::{broadcast, oneshot, watch};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::acker::GroupAcker;
use crate::connection::{declare_exchange, Shared};
use crate::errors::lapin_error;
use crate::properties::{short, to_message};
use crate::route::{group_queue, Route};

/// Subscribes to `topic` along `route`.
pub(crate) async fn subscribe(
    shared: &Arc<Shared>,
    route: Route,
    topic: &str,
    options: SubscribeOptions,
) -> Result<Subscription> {
    let live = shared.live().await?;
    let channel = live
        .connection
        .create_channel()
        .await
        .map_err(|e| lapin_error("open a channel", e))?;
    let closer = Closer(channel.clone());
    let reconnects = live.reconnects();
    declare_exchange(&channel, &route.exchange, route.kind.clone()).await?;
    match options.group {
        None => {
            let buffer = options.buffer.unwrap_or(shared.options.buffer).max(1);
            broadcast_subscription(closer, &route, buffer, reconnects).await
        }
        Some(group) => {
            let queue = group_queue(&group, &route.exchange, topic)?;
            let prefetch = options.prefetch.unwrap_or(shared.options.prefetch).max(1);
            group_subscription(shared, closer, &route, queue, prefetch).await
        }
    }
}

async fn broadcast_subscription(
    closer: Closer,
    route: &Route,
    buffer: usize,
    reconnects: watch::Receiver<u64>,
) -> Result<Subscription> {
    let queue = format!("pubsub.subscriber.{}", uuid::Uuid::new_v4().simple());
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let consumer = consume(
        &closer.0,
        &queue,
        options,
        FieldTable::default(),
        route,
        true,
    )
    .await?;

    let (ring, receiver) = broadcast::channel(buffer);
    let (stop, stopped) = oneshot::channel::<()>();
    let pump = tokio::spawn(pump(consumer, ring, stopped, reconnects, closer));
    let stream = BroadcastStream::new(receiver).map(move |item| {
        // The stream owns `stop`: dropping it stops the pump.
        let _owner = &stop;
        match item {
            Ok(Item::Message(message)) => Ok(Delivery::new(message)),
            Ok(Item::Gap(reason)) => Err(Error::Gap {
                reason: reason.to_string(),
            }),
            Err(BroadcastStreamRecvError::Lagged(missed)) => Err(Error::Lagged { missed }),
        }
    });
    Ok(Subscription::new(stream).with_unsubscribe(|| async move {
        pump.await.map_err(|e| Error::Broker {
            message: "the subscription's task failed".to_owned(),
            source: Some(Box::new(e)),
        })
    }))
}

/// What the ring of a broadcast subscription holds.
#[derive(Clone)]
enum Item {
    Message(Message),
    Gap(Arc<str>),
}

/// Moves deliveries from lapin's unbounded buffer to the bounded ring until the
/// subscription is dropped or the consumer ends, then closes the channel (which
/// deletes the exclusive queue).
async fn pump(
    mut consumer: Consumer,
    ring: broadcast::Sender<Item>,
    mut stopped: oneshot::Receiver<()>,
    mut reconnects: watch::Receiver<u64>,
    closer: Closer,
) {
    let mut watching = true;
    loop {
        let item = tokio::select! {
            _ = &mut stopped => break,
            changed = reconnects.changed(), if watching => match changed {
                Ok(()) => Item::Gap(
                    "the connection to the broker was lost and re-established; messages \
                     published meanwhile were missed"
                        .into(),
                ),
                Err(_) => {
                    watching = false;
                    continue;
                }
            },
            item = consumer.next() => match item {
                Some(Ok(mut delivery)) => Item::Message(to_message(
                    std::mem::take(&mut delivery.data),
                    &delivery.properties,
                    topic_of(&delivery),
                    false,
                )),
                Some(Err(error)) => Item::Gap(
                    format!("the consumer was interrupted ({error}); messages may have been missed").into(),
                ),
                None => break,
            },
        };
        if ring.send(item).is_err() {
            break;
        }
    }
    closer.close().await;
}

async fn group_subscription(
    shared: &Arc<Shared>,
    closer: Closer,
    route: &Route,
    queue: String,
    prefetch: u16,
) -> Result<Subscription> {
    closer
        .0
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| lapin_error("set the prefetch", e))?;
    let mut arguments = FieldTable::default();
    let max_priority = shared.options.max_priority;
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
    let consumer = consume(&closer.0, &queue, options, arguments, route, false)
        .await
        .map_err(|error| conflicting_arguments(error, &queue, max_priority))?;

    let channel = closer.0.clone();
    let shared = Arc::clone(shared);
    let queue: Arc<str> = queue.into();
    let stream = consumer.filter_map(move |item| {
        let _owner = &closer;
        let delivery = match item {
            Ok(delivery) => delivery,
            Err(error) => {
                // lapin consumes again once the connection is back; the broker kept
                // what was not acked, so nothing is lost and there is nothing to say.
                tracing::debug!(%error, queue = &*queue, "group consumer interrupted; recovering");
                return futures::future::ready(None);
            }
        };
        let mut delivery = delivery;
        let message = to_message(
            std::mem::take(&mut delivery.data),
            &delivery.properties,
            topic_of(&delivery),
            delivery.redelivered,
        );
        let acker = GroupAcker {
            acker: delivery.acker,
            shared: Arc::clone(&shared),
            queue: Arc::clone(&queue),
            topic: message.topic_arc().cloned().unwrap_or_else(|| "".into()),
            payload: message.payload().clone(),
            properties: delivery.properties,
            attempt: message.attempt(),
        };
        futures::future::ready(Some(Ok(Delivery::with_acker(message, acker))))
    });
    Ok(Subscription::new(stream).with_unsubscribe(|| async move {
        // Dropping the stream started the close; this waits for the broker's word.
        // A channel already closing answers with an error that means the same.
        let _ = channel.close(200, "unsubscribed".into()).await;
        Ok(())
    }))
}

/// The topic a delivery was published to: its routing key, or for a fanout exchange
/// that foreign clients publish to with an empty key, the exchange's name.
fn topic_of(delivery: &lapin::message::Delivery) -> &str {
    match delivery.routing_key.as_str() {
        "" => delivery.exchange.as_str(),
        key => key,
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
        .basic_consume(name, "".into(), options, FieldTable::default())
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
struct Closer(Channel);

impl Closer {
    async fn close(&self) {
        if self.0.status().connected() {
            let _ = self.0.close(200, "unsubscribed".into()).await;
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        let channel = self.0.clone();
        if channel.status().connected() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = channel.close(200, "unsubscribed".into()).await;
                });
            }
        }
    }
}
